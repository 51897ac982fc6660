"""Command line: python3 -m harness {test,demo,list} ..."""

import argparse
import os
import shlex
import signal
import sys
import time
import unittest

from .bench import SETS as BENCH_SETS
from .results import Results
from .scenarios import DEBUG_ONLY, NOT_ON_DEBUG, SCENARIOS, Context, expected_skips

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build")
DEFAULT_KERNEL = os.path.join(BUILD, "out", "main", "arch", "x86", "boot", "bzImage")
DEFAULT_INITRD = os.path.join(BUILD, "guest", "initrd.cpio")
DEFAULT_DEBUG_KERNEL = os.path.join(BUILD, "out", "debug", "arch", "x86", "boot", "bzImage")
DEFAULT_STOCK_KERNEL = os.path.join(BUILD, "out", "stock", "arch", "x86", "boot", "bzImage")
DEFAULT_NOTHP_KERNEL = os.path.join(BUILD, "out", "nothp", "arch", "x86", "boot", "bzImage")
DEFAULT_KASAN_KERNEL = os.path.join(BUILD, "out", "kasan", "arch", "x86", "boot", "bzImage")
# The scenarios the kernel without THP and HUGETLB runs again: its 4 MiB
# pageblocks are twice the 2 MiB memmap of a 128 MiB block.  Of virtio-mem
# it runs vmem-kernel: Big Block Mode blocks host their memmap there, and in
# kernel zones the pageblock shared by the memmap and the first onlined
# pages must not keep the driver from unplugging (Sub Block Mode's 4 MiB
# subblocks keep the memmap in other memory; vmem-sbm-odd covers that on
# main).
NOTHP_SCENARIOS = ("kunit", "kselftest", "dimm-mode1", "dimm-force", "big-mode1", "admin",
                   "cycles", "busy-offline", "pagecache-add", "slab-add", "vmem-kernel", "peers",
                   "cma")
# The scenarios that add little memory run again on the KASAN and kmemleak
# kernel (make kernel-kasan): KASAN's shadow of what a guest onlines is 1/8
# of it, taken from memory already online.  check_console() scans for leaks
# at the end of each.
KASAN_SCENARIOS = ("admin", "cycles", "soak", "fault-sweep", "pgtable-fail", "bad-input", "cma")
NOTHP_PAGEBLOCK_ORDER = 10


class _Recorder(unittest.TestResult):
    """Feeds unittest outcomes into Results, one line per test."""

    def __init__(self, res):
        super().__init__()
        self.res = res

    def addSuccess(self, test):
        self.res.passed(f"unit: {test.id().split('.', 1)[1]}")

    def addFailure(self, test, err):
        self.res.fail(f"unit: {test.id().split('.', 1)[1]}", str(err[1]).splitlines()[0])

    addError = addFailure

    def addSkip(self, test, reason):
        self.res.skip(f"unit: {test.id().split('.', 1)[1]}", reason)


def run_unit(res):
    suite = unittest.defaultTestLoader.discover(os.path.join(ROOT, "tests"), top_level_dir=ROOT)
    if suite.countTestCases() == 0:
        res.fail("unit: tests found", "no unit tests discovered under tests/")
        return
    suite.run(_Recorder(res))


def run_scenarios(ctx, names, res):
    for name in names:
        fn, doc = SCENARIOS[name]
        print(f"# {name}: {doc}", flush=True)
        if name in DEBUG_ONLY and not (ctx.debug_kernel and os.path.exists(ctx.debug_kernel)):
            res.fail(f"{name}: debug kernel present", f"missing {ctx.debug_kernel}; "
                     "run 'make kernel-debug'")
            continue
        t0 = time.monotonic()
        res.expect_skips(expected_skips(name, ctx.label))
        try:
            fn(ctx, res)
        except Exception as e:  # the scenario could not finish: that is a failure
            res.fail(f"{name}: scenario ran to the end", f"{type(e).__name__}: {e}")
        res.expect_skips({})
        print(f"# {name}: {time.monotonic() - t0:.0f}s", flush=True)


def run_pass(args, res, label, kernel, target, names, before=None, **ctx_kw):
    """The scenarios `names` again on another kernel, their checks named
    'LABEL: ...'; `before(ctx, res)` first checks the kernel is the one meant."""
    if not names:
        return
    print(f"# the scenarios again on the {label} kernel {kernel}", flush=True)
    res.prefix = f"{label}: "
    if not os.path.exists(kernel):
        res.fail(f"{label} kernel present", f"missing {kernel}; run 'make {target}'")
    else:
        ctx = Context(kernel, args.initrd, os.path.join(args.rundir, label), args.accel,
                      args.debug_kernel, args.soak_cycles, label=label, **ctx_kw)
        if before:
            before(ctx, res)
        run_scenarios(ctx, names, res)
    res.prefix = ""


def check_pageblock_order(ctx, res, order):
    """The pass is only worth its name if the kernel has these pageblocks."""
    from . import guest
    with ctx.vm("pageblock") as vm:
        got = guest.pageblock_order(vm)
    res.check(f"pageblocks are {(4096 << order) >> 20} MiB (order {order})", got == order,
              f"order {got}")


def common(p):
    p.add_argument("--kernel", default=DEFAULT_KERNEL)
    p.add_argument("--initrd", default=DEFAULT_INITRD)
    p.add_argument("--rundir", default=os.path.join(BUILD, "runs"))
    p.add_argument("--accel", default="tcg", choices=["tcg", "kvm"])


def _terminate(signum, frame):
    # turn SIGTERM (timeout, CI) into an exception so that every VM's
    # context manager kills its QEMU on the way out
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv=None):
    signal.signal(signal.SIGTERM, _terminate)
    ap = argparse.ArgumentParser(prog="harness")
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("test", help="unit tests, then scenarios (default: all)")
    common(t)
    t.add_argument("--no-unit", action="store_true", help="skip the harness's own unit tests")
    t.add_argument("--debug-kernel", default=DEFAULT_DEBUG_KERNEL,
                   help="debug kernel (configs/debug.config: fault injection, lockdep, "
                        "DEBUG_VM, ...) for the reliability scenarios")
    t.add_argument("--no-debug-pass", action="store_true",
                   help="run the scenarios on the main kernel only, not again on the debug "
                        "kernel")
    t.add_argument("--nothp-kernel", default=DEFAULT_NOTHP_KERNEL,
                   help="kernel without THP and HUGETLB (configs/nothp.config, 4 MiB "
                        "pageblocks) for a third pass of the memmap scenarios")
    t.add_argument("--no-nothp-pass", action="store_true",
                   help="do not run the scenarios again on the nothp kernel")
    t.add_argument("--kasan-kernel", default=DEFAULT_KASAN_KERNEL,
                   help="debug kernel with generic KASAN and kmemleak (configs/kasan.config) "
                        f"for a pass of {', '.join(KASAN_SCENARIOS)}")
    t.add_argument("--no-kasan-pass", action="store_true",
                   help="do not run the small-add scenarios on the KASAN kernel")
    t.add_argument("--stock-kernel", default=None,
                   help="the base without the series, main config (make kernel-stock): "
                        "scenarios that compare with the base run it too (make test-full)")
    t.add_argument("--stock-nothp-kernel", default=None,
                   help="the same for the nothp pass (make kernel-stock-nothp)")
    t.add_argument("--passes", default="main,debug,nothp,kasan",
                   help="comma-separated passes to run, of main, debug, nothp, kasan "
                        "(default: all; --no-X-pass drops one)")
    t.add_argument("--exclude", default="",
                   help="comma-separated scenarios not to run (make test: kunit-tool, whose "
                        "own kernel costs CI a cold build; make test-full runs it)")
    t.add_argument("--soak-cycles", type=int, default=20,
                   help="cycles per path in the soak scenario (default 20; make soak: 1000)")
    t.add_argument("scenarios", nargs="*", metavar="SCENARIO")
    d = sub.add_parser("demo", help="measure =0 against =1 and write the report")
    common(d)
    d.add_argument("--out", default=os.path.join(ROOT, "results", "demo"))
    d.add_argument("--sizes-gib", default="2,16",
                   help="comma-separated DIMM sizes in GiB (default 2,16)")
    b = sub.add_parser("bench", help="stock =0, stock =1 and ours =1 on every path; write "
                                     "results/bench/ and the README's benchmark section")
    common(b)
    b.add_argument("--stock-kernel", default=DEFAULT_STOCK_KERNEL,
                   help="the base built without the series (make kernel-stock)")
    b.add_argument("--out", default=None,
                   help="results folder (default: results/bench, results/bench-nothp)")
    b.add_argument("--repeat", type=int, default=3,
                   help="samples of each add for metrics 1, 2 and 4 (default 3)")
    b.add_argument("--timing-repeat", type=int, default=5,
                   help="samples of the timing, metric 5 (default 5)")
    b.add_argument("--set", default="main", choices=sorted(BENCH_SETS),
                   help="main: stock =0, stock =1, ours =1 on every path (default); nothp: "
                        "the kernels without THP and HUGETLB, stock =1, stock =force, ours =1 "
                        "on pc-dimm")
    b.add_argument("--resume", action="store_true",
                   help="take over the samples an interrupted run left in samples.jsonl and "
                        "take only the missing ones (the same kernels and set, or it refuses)")
    b.add_argument("--paths", default=None,
                   help="comma-separated, some of the set's paths (default: all of them)")
    sub.add_parser("list", help="list the scenarios")
    args = ap.parse_args(argv)

    if args.cmd == "list":
        for name, (_, doc) in SCENARIOS.items():
            where = ("debug kernel only" if name in DEBUG_ONLY else
                     "main" if name in NOT_ON_DEBUG else "main, then debug kernel")
            if name in NOTHP_SCENARIOS:
                where += ", then nothp"
            if name in KASAN_SCENARIOS:
                where += ", then kasan"
            print(f"{name:18s} [{where}] {doc}")
        return 0

    if args.cmd == "test":
        excluded = [x for x in args.exclude.split(",") if x]
        unknown = [s for s in args.scenarios + excluded if s not in SCENARIOS]
        if unknown:
            print(f"harness: error: unknown scenario {', '.join(unknown)}; "
                  f"known: {' '.join(SCENARIOS)}", file=sys.stderr)
            return 2
        for opt, target in (("stock_kernel", "kernel-stock"),
                            ("stock_nothp_kernel", "kernel-stock-nothp")):
            path = getattr(args, opt)
            if path is not None and not os.path.exists(path):
                print(f"harness: error: --{opt.replace('_', '-')} {path} does not exist; run "
                      f"'make {target}' first", file=sys.stderr)
                return 2
        if args.soak_cycles < 2:
            print(f"harness: error: --soak-cycles {args.soak_cycles}: give 2 or more "
                  "(the first cycle is the reference)", file=sys.stderr)
            return 2
    if args.cmd == "bench":
        set_paths = BENCH_SETS[args.set]["paths"]
        given = args.paths if args.paths is not None else ",".join(set_paths)
        paths = [p for p in given.split(",") if p]
        bad = [p for p in paths if p not in set_paths]
        for n, v in (("--repeat", args.repeat), ("--timing-repeat", args.timing_repeat)):
            if not 1 <= v <= 20:
                print(f"harness: error: {n} {v}: give 1..20", file=sys.stderr)
                return 2
        if bad or not paths:
            print(f"harness: error: --paths '{given}': give some of "
                  f"{','.join(set_paths)} (set {args.set})", file=sys.stderr)
            return 2
        if not os.path.exists(args.stock_kernel):
            print(f"harness: error: {args.stock_kernel} does not exist; run 'make "
                  "kernel-stock' first", file=sys.stderr)
            return 2
    for path in (args.kernel, args.initrd):
        if not os.path.exists(path):
            print(f"harness: error: {path} does not exist; run 'make kernel initramfs' first",
                  file=sys.stderr)
            return 2
    ctx = Context(args.kernel, args.initrd, args.rundir, args.accel,
                  getattr(args, "debug_kernel", None), getattr(args, "soak_cycles", 20),
                  stock_kernel=getattr(args, "stock_kernel", None))

    if args.cmd == "demo":
        from .demo import demo
        try:
            sizes = [int(x) for x in args.sizes_gib.split(",")]
            if not sizes or any(s < 1 or s > 256 for s in sizes):
                raise ValueError
        except ValueError:
            print(f"harness: error: --sizes-gib '{args.sizes_gib}': give sizes 1..256 "
                  "separated by commas", file=sys.stderr)
            return 2
        return demo(ctx, args.out, sizes)

    if args.cmd == "bench":
        from .bench import bench
        sub_dir = "bench" if args.set == "main" else f"bench-{args.set}"
        out = args.out or os.path.join(ROOT, "results", sub_dir)
        return bench({"stock": args.stock_kernel, "ours": args.kernel}, args.initrd,
                     os.path.join(args.rundir, sub_dir), args.accel, out, args.repeat,
                     args.timing_repeat, tuple(p for p in set_paths if p in paths),
                     "python3 -m harness " + shlex.join(sys.argv[1:] if argv is None else argv),
                     args.set, full=(args.paths is None and args.out is None and
                                     args.repeat == 3 and args.timing_repeat == 5),
                     resume=args.resume)

    passes = {p for p in args.passes.split(",") if p}
    bad = passes - {"main", "debug", "nothp", "kasan"}
    if bad or not passes:
        print(f"harness: error: --passes '{args.passes}': give some of main,debug,nothp,kasan",
              file=sys.stderr)
        return 2
    args.no_debug_pass |= "debug" not in passes
    args.no_nothp_pass |= "nothp" not in passes
    args.no_kasan_pass |= "kasan" not in passes
    res = Results()
    if not args.no_unit:
        run_unit(res)
    # scenarios named on the command line run even if excluded by default
    names = args.scenarios or [n for n in SCENARIOS if n not in args.exclude.split(",")]
    if "main" in passes:
        run_scenarios(ctx, names, res)
    if not args.no_debug_pass:
        # lockdep, DEBUG_VM and DEBUG_LIST reports fail the scenarios
        # through their console checks
        run_pass(args, res, "debug", args.debug_kernel, "kernel-debug",
                 [n for n in names if n not in DEBUG_ONLY and n not in NOT_ON_DEBUG],
                 debug_pass=True)
    if not args.no_nothp_pass:
        run_pass(args, res, "nothp", args.nothp_kernel, "kernel-nothp",
                 [n for n in names if n in NOTHP_SCENARIOS],
                 before=lambda c, r: check_pageblock_order(c, r, NOTHP_PAGEBLOCK_ORDER),
                 stock_kernel=args.stock_nothp_kernel)
    if not args.no_kasan_pass:
        # the debug-only scenarios (soak, fault-sweep, pgtable-fail) boot
        # ctx.debug_kernel: the KASAN kernel is a debug kernel too
        args_kasan = argparse.Namespace(**vars(args))
        args_kasan.debug_kernel = args.kasan_kernel
        run_pass(args_kasan, res, "kasan", args.kasan_kernel, "kernel-kasan",
                 [n for n in names if n in KASAN_SCENARIOS], debug_pass=True)
    print(res.closing_line(), flush=True)
    return 1 if res.count("fail") else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt as e:
        print(f"harness: interrupted ({e or 'keyboard'}); every guest was stopped",
              file=sys.stderr)
        sys.exit(130)
