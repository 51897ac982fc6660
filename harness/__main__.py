"""Command line: python3 -m harness STAGE ...; the stages are in stages.py.

  build KERNEL...     kernels of passes.KERNELS (make kernel, kernel-debug, ...)
  image               the guest initramfs and the one with the peer suites
  unit                the harness's own unit tests
  test                unit tests, then scenarios on passes (make test, test-full)
  run                 build the kernels the chosen passes need, run scenarios (make run)
  shell SCENARIO      boot that scenario's guest and get a shell on it
  parse FILE...       re-judge saved consoles: KTAP and the splat check
  demo, bench         measurements with committed result files
  list                the scenarios and where they run
"""

import argparse
import os
import sys

from .bench import SETS as BENCH_SETS, flat_kernels
from .passes import BUILD, INITRD, INITRDS, KERNELS, PASSES, TEST_PASSES, kernel_image, \
    pass_kernel
from .results import Results
from .scenarios import SCENARIOS
from .paths import ROOT, series_topics, shell_line
from . import stages


def _terminate(signum, frame):
    # turn SIGTERM (timeout, CI) into an exception so that every VM's
    # context manager kills its QEMU on the way out
    raise KeyboardInterrupt(f"signal {signum}")


def error(msg):
    print(f"harness: error: {msg}", file=sys.stderr)
    return 2


def common(p):
    p.add_argument("--initrd", default=INITRD)
    p.add_argument("--rundir", default=os.path.join(BUILD, "runs"))
    p.add_argument("--accel", default="tcg", choices=["tcg", "kvm"])


def scenario_args(p, default_passes):
    p.add_argument("--passes", default=",".join(default_passes),
                   help=f"comma-separated passes, of {','.join(PASSES)} "
                        f"(default: {','.join(default_passes)})")
    p.add_argument("--stock", action="store_true",
                   help="the scenarios that compare with the base boot the stock kernel of "
                        "their pass too (make test-full)")
    p.add_argument("--exclude", default="", help="comma-separated scenarios not to run")
    p.add_argument("--topic", default=None,
                   help="only the scenarios that test this topic series of patches/")
    p.add_argument("--soak-cycles", type=int, default=20,
                   help="cycles per path in the soak scenario (default 20; make soak: 1000)")
    p.add_argument("scenarios", nargs="*", metavar="SCENARIO")


def parser():
    ap = argparse.ArgumentParser(prog="harness", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build kernels")
    b.add_argument("kernels", nargs="+", metavar="KERNEL",
                   help=f"of {', '.join(KERNELS)}")
    sub.add_parser("image", help="build the guest initramfs and the peer-suite one")
    sub.add_parser("unit", help="the harness's own unit tests")
    t = sub.add_parser("test", help="unit tests, then the scenarios on the passes")
    common(t)
    t.add_argument("--no-unit", action="store_true", help="leave out the unit tests")
    t.add_argument("--lanes", type=int, default=1, choices=(1, 2),
                   help="2: the KASAN pass runs next to the others, a guest in each lane "
                        "(make test-full)")
    t.add_argument("--full", action="store_true",
                   help="also the scenarios that run on some passes only in make test-full "
                        "(the long ones: see harness list)")
    t.add_argument("--build", action="store_true",
                   help="build the kernels lane by lane: the KASAN lane's first, then its "
                        "guests run while the other lane builds (make test-full)")
    scenario_args(t, TEST_PASSES)
    r = sub.add_parser("run", help="build the kernels the passes need, then run the scenarios")
    common(r)
    r.add_argument("--no-build", action="store_true", help="run on the kernels as they are")
    scenario_args(r, ("main",))
    s = sub.add_parser("shell", help="boot a scenario's guest and get a shell on its agent")
    common(s)
    s.add_argument("scenario", metavar="SCENARIO")
    s.add_argument("--pass", dest="pass_name", default=None,
                   help="the pass whose kernel boots (default: the scenario's first)")
    s.add_argument("--guest", type=int, default=1,
                   help="the N-th guest the scenario boots (default 1; the scenario runs as "
                        "usual up to it)")
    p = sub.add_parser("parse", help="re-judge saved console logs: KTAP and the splat check")
    p.add_argument("files", nargs="+", metavar="FILE")
    d = sub.add_parser("demo", help="measure =0 against =1 and write the report")
    common(d)
    d.add_argument("--out", default=os.path.join(ROOT, "results", "demo"))
    d.add_argument("--sizes-gib", default="2,16",
                   help="comma-separated DIMM sizes in GiB (default 2,16)")
    b = sub.add_parser("bench", help="stock against ours on every hot-add path; write "
                                     "results/bench*/ and the README's benchmark section")
    common(b)
    b.add_argument("--set", default="main", choices=sorted(BENCH_SETS),
                   help="main: stock =0, stock =1, ours =1 on every path (default); nothp: "
                        "the kernels without THP and HUGETLB, stock =1, stock =force, ours =1 "
                        "on pc-dimm; arm64: stock =0, stock =1, ours =1 on pc-dimm with 4, 16 "
                        "and 64 KiB pages")
    b.add_argument("--kernel", default=None, help="ours (default: the set's kernel)")
    b.add_argument("--stock-kernel", default=None, help="stock (default: the set's)")
    b.add_argument("--out", default=None,
                   help="results folder (default: results/bench, results/bench-SET)")
    b.add_argument("--repeat", type=int, default=3,
                   help="samples of each add for metrics 1, 2 and 4 (default 3)")
    b.add_argument("--timing-repeat", type=int, default=5,
                   help="samples of the timing, metric 5 (default 5)")
    b.add_argument("--resume", action="store_true",
                   help="take over the samples an interrupted run left in samples.jsonl and "
                        "take only the missing ones (the same kernels and set, or it refuses)")
    b.add_argument("--paths", default=None,
                   help="comma-separated, some of the set's paths (default: all of them)")
    sub.add_parser("list", help="list the scenarios and the passes they run on")
    return ap


def checked_plan(args):
    """{pass: [scenario]} from the arguments, or an error message."""
    passes = [p for p in args.passes.split(",") if p]
    bad = [p for p in passes if p not in PASSES]
    if bad or not passes:
        return None, f"--passes '{args.passes}': give some of {','.join(PASSES)}"
    excluded = [x for x in args.exclude.split(",") if x]
    unknown = [s for s in args.scenarios + excluded if s not in SCENARIOS]
    if unknown:
        return None, f"unknown scenario {', '.join(unknown)}; known: {' '.join(SCENARIOS)}"
    if args.soak_cycles < 2:
        return None, (f"--soak-cycles {args.soak_cycles}: give 2 or more (the first cycle is "
                      "the reference)")
    topics = [t for t, _ in series_topics()]
    if args.topic is not None and args.topic not in topics:
        return None, f"--topic '{args.topic}': patches/series has the topics {' '.join(topics)}"
    # scenarios named on the command line run even if excluded
    names = args.scenarios or [n for n in SCENARIOS if n not in excluded]
    if args.topic is not None:
        other = [n for n in args.scenarios if args.topic not in SCENARIOS[n].topics]
        if other:
            return None, f"{', '.join(other)}: not a scenario of the topic {args.topic}"
        names = [n for n in names if args.topic in SCENARIOS[n].topics]
    nowhere = [n for n in args.scenarios if not set(SCENARIOS[n].passes) & set(passes)]
    if nowhere:
        return None, "; ".join(f"{n} runs on {', '.join(SCENARIOS[n].passes)}, not on "
                               f"{args.passes}" for n in nowhere)
    todo = stages.plan(names, [p for p in PASSES if p in passes])
    if args.cmd == "test" and not args.full:
        # the long scenarios run there only in make test-full, unless named
        todo = {p: [n for n in ns if n in args.scenarios or p not in SCENARIOS[n].full_only]
                for p, ns in todo.items()}
    return todo, None


def run_plan(args, argv, unit):
    todo, why = checked_plan(args)
    if why:
        return error(why)
    if not os.path.exists(args.initrd):
        return error(f"{args.initrd} does not exist; run 'make initramfs' first")
    # the passes of another architecture boot its image (Context)
    arches = {pass_kernel(p).arch for p, names in todo.items() if names} - {"x86_64"}
    for arch in sorted(arches) if args.initrd == INITRD else ():
        if not os.path.exists(INITRDS[arch]):
            return error(f"{INITRDS[arch]} does not exist; run 'make initramfs-{arch}' first")
    kernels = stages.kernels_needed(todo, args.stock)
    if args.cmd == "run" and not args.no_build:
        for r in stages.build(kernels):
            print(f"# {r.stage}: {'ok' if r.ok else 'FAILED'} in {r.seconds:.0f}s: {r.detail}",
                  flush=True)
            if not r.ok:
                return 1
    build_kernels = args.cmd == "test" and args.build
    missing = [k for k in kernels if not os.path.exists(kernel_image(k))]
    if missing and not build_kernels:
        return error(f"no {', '.join(os.path.relpath(kernel_image(k), ROOT) for k in missing)}; "
                     f"run 'make {' '.join(stages.make_target(k) for k in missing)}' first")
    stages.manifest(args.rundir, ["python3", "-m", "harness", *argv], kernels,
                    passes={p: n for p, n in todo.items() if n})
    res = Results()
    if unit:
        stages.unit(res)
    r = stages.exec_passes(res, todo, args.rundir, args.initrd, args.accel, args.soak_cycles,
                           args.stock, lanes=getattr(args, "lanes", 1),
                           build_kernels=build_kernels)
    stages.manifest(args.rundir, ["python3", "-m", "harness", *argv], kernels,
                    passes={p: n for p, n in todo.items() if n}, seconds=r.seconds,
                    closing_line=res.closing_line())
    print(f"# results: {os.path.relpath(os.path.join(args.rundir, 'results.json'))}", flush=True)
    print(res.closing_line(), flush=True)
    return 1 if res.count("fail") else 0


def pass_kernel_arch(spec):
    """The architecture of a bench set's kernels."""
    ours = spec["kernels"]["ours"]
    return KERNELS[next(iter(ours.values())) if isinstance(ours, dict) else ours].arch


def bench_cmd(args, argv):
    from .bench import bench
    spec = BENCH_SETS[args.set]
    set_paths = spec["paths"]
    given = args.paths if args.paths is not None else ",".join(set_paths)
    paths = [p for p in given.split(",") if p]
    if [p for p in paths if p not in set_paths] or not paths:
        return error(f"--paths '{given}': give some of {','.join(set_paths)} (set {args.set})")
    for n, v in (("--repeat", args.repeat), ("--timing-repeat", args.timing_repeat)):
        if not 1 <= v <= 20:
            return error(f"{n} {v}: give 1..20")
    per_path = isinstance(spec["kernels"]["ours"], dict)
    if per_path and (args.kernel or args.stock_kernel):
        return error(f"--kernel, --stock-kernel: the set {args.set} has a kernel pair per path")
    if per_path:
        kernels = {who: {p: kernel_image(spec["kernels"][who][p]) for p in paths}
                   for who in ("ours", "stock")}
    else:
        kernels = {"ours": args.kernel or kernel_image(spec["kernels"]["ours"]),
                   "stock": args.stock_kernel or kernel_image(spec["kernels"]["stock"])}
    for who, path in flat_kernels(kernels).items():
        if not os.path.exists(path):
            return error(f"{path} ({who}) does not exist; run 'make bench-{args.set}' to build it")
    # the set's guests boot the image of their architecture
    arch = pass_kernel_arch(spec)
    if args.initrd == INITRD and arch != "x86_64":
        args.initrd = INITRDS[arch]
    if not os.path.exists(args.initrd):
        return error(f"{args.initrd} does not exist; run 'make "
                     f"{'initramfs' if arch == 'x86_64' else 'initramfs-' + arch}' first")
    sub_dir = "bench" if args.set == "main" else f"bench-{args.set}"
    out = args.out or os.path.join(ROOT, "results", sub_dir)
    return bench(kernels, args.initrd, os.path.join(args.rundir, sub_dir), args.accel, out,
                 args.repeat, args.timing_repeat, tuple(p for p in set_paths if p in paths),
                 shell_line(["python3", "-m", "harness", *argv]), args.set,
                 full=(args.paths is None and args.out is None and args.repeat == 3 and
                       args.timing_repeat == 5 and args.kernel is None and
                       args.stock_kernel is None),
                 resume=args.resume)


def main(argv=None):
    import signal
    signal.signal(signal.SIGTERM, _terminate)
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser().parse_args(argv)

    if args.cmd == "list":
        for name, sc in SCENARIOS.items():
            full = f" (on {', '.join(sc.full_only)}: make test-full only)" if sc.full_only else ""
            print(f"{name:18s} [{', '.join(sc.passes)}]{full} {sc.doc}")
        return 0
    if args.cmd == "build":
        bad = [k for k in args.kernels if k not in KERNELS]
        if bad:
            return error(f"unknown kernel {', '.join(bad)}; known: {', '.join(KERNELS)}")
        results = stages.build(args.kernels)
        for r in results:
            print(f"# {r.stage}: {'ok' if r.ok else 'FAILED'} in {r.seconds:.0f}s: {r.detail}")
        return 0 if all(r.ok for r in results) and len(results) == len(args.kernels) else 1
    if args.cmd == "image":
        r = stages.image()
        print(f"# {r.stage}: {'ok' if r.ok else 'FAILED'} in {r.seconds:.0f}s: {r.detail}")
        return 0 if r.ok else 1
    if args.cmd == "unit":
        res = Results()
        stages.unit(res)
        print(res.closing_line())
        return 1 if res.count("fail") else 0
    if args.cmd in ("test", "run"):
        return run_plan(args, argv, unit=args.cmd == "test" and not args.no_unit)
    if args.cmd == "parse":
        res = Results()
        stages.parse(args.files, res)
        print(res.closing_line())
        return 1 if res.count("fail") else 0
    if args.cmd == "shell":
        sc = SCENARIOS.get(args.scenario)
        if sc is None:
            return error(f"unknown scenario {args.scenario}; known: {' '.join(SCENARIOS)}")
        pass_name = args.pass_name or sc.passes[0]
        if pass_name not in sc.passes:
            return error(f"{args.scenario} runs on {', '.join(sc.passes)}, not on {pass_name}")
        if args.guest < 1:
            return error(f"--guest {args.guest}: give 1 or more")
        kernel = kernel_image(PASSES[pass_name].kernel)
        for path in (kernel, args.initrd):
            if not os.path.exists(path):
                return error(f"{path} does not exist; run 'make run PASSES={pass_name} "
                             f"SCENARIOS={args.scenario}' or 'make initramfs' first")
        r = stages.shell(args.scenario, pass_name, args.rundir, args.guest, args.initrd,
                         args.accel)
        print(f"# {r.detail}")
        return 0 if r.ok else 1
    if args.cmd == "demo":
        from .demo import demo
        try:
            sizes = [int(x) for x in args.sizes_gib.split(",")]
            if not sizes or any(s < 1 or s > 256 for s in sizes):
                raise ValueError
        except ValueError:
            return error(f"--sizes-gib '{args.sizes_gib}': give sizes 1..256 separated by "
                         "commas")
        kernel = kernel_image("main")
        for path in (kernel, args.initrd):
            if not os.path.exists(path):
                return error(f"{path} does not exist; run 'make kernel initramfs' first")
        return demo(kernel, args.initrd, args.rundir, args.accel, args.out, sizes)
    if args.cmd == "bench":
        return bench_cmd(args, argv)
    return error(f"unknown command {args.cmd}")


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt as e:
        print(f"harness: interrupted ({e or 'keyboard'}); every guest was stopped",
              file=sys.stderr)
        sys.exit(130)
