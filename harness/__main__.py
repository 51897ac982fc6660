"""Command line: python3 -m harness {test,demo,list} ..."""

import argparse
import os
import signal
import sys
import time
import unittest

from .results import Results
from .scenarios import SCENARIOS, Context

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build")
DEFAULT_KERNEL = os.path.join(BUILD, "out", "main", "arch", "x86", "boot", "bzImage")
DEFAULT_INITRD = os.path.join(BUILD, "guest", "initrd.cpio")
DEFAULT_FAULT_KERNEL = os.path.join(BUILD, "out", "fault", "arch", "x86", "boot", "bzImage")


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
        t0 = time.monotonic()
        try:
            fn(ctx, res)
        except Exception as e:  # the scenario could not finish: that is a failure
            res.fail(f"{name}: scenario ran to the end", f"{type(e).__name__}: {e}")
        print(f"# {name}: {time.monotonic() - t0:.0f}s", flush=True)


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
    t.add_argument("--fault-kernel", default=DEFAULT_FAULT_KERNEL,
                   help="kernel with fault injection (configs/fault.config) for the "
                        "allocation-failure scenarios")
    t.add_argument("scenarios", nargs="*", metavar="SCENARIO")
    d = sub.add_parser("demo", help="measure =0 against =1 and write the report")
    common(d)
    d.add_argument("--out", default=os.path.join(ROOT, "results", "demo"))
    d.add_argument("--sizes-gib", default="2,16",
                   help="comma-separated DIMM sizes in GiB (default 2,16)")
    sub.add_parser("list", help="list the scenarios")
    args = ap.parse_args(argv)

    if args.cmd == "list":
        for name, (_, doc) in SCENARIOS.items():
            print(f"{name:14s} {doc}")
        return 0

    if args.cmd == "test":
        unknown = [s for s in args.scenarios if s not in SCENARIOS]
        if unknown:
            print(f"harness: error: unknown scenario {', '.join(unknown)}; "
                  f"known: {' '.join(SCENARIOS)}", file=sys.stderr)
            return 2
    for path in (args.kernel, args.initrd):
        if not os.path.exists(path):
            print(f"harness: error: {path} does not exist; run 'make kernel initramfs' first",
                  file=sys.stderr)
            return 2
    ctx = Context(args.kernel, args.initrd, args.rundir, args.accel,
                  getattr(args, "fault_kernel", None))

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

    res = Results()
    if not args.no_unit:
        run_unit(res)
    run_scenarios(ctx, args.scenarios or list(SCENARIOS), res)
    print(res.closing_line(), flush=True)
    return 1 if res.count("fail") else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt as e:
        print(f"harness: interrupted ({e or 'keyboard'}); every guest was stopped",
              file=sys.stderr)
        sys.exit(130)
