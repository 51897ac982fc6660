"""The harness in stages, one function each, as kunit_tool has them:
build (kernels), image (the guest initramfs), unit (the harness's own
tests), exec (scenarios on passes), parse (re-judge a saved console),
shell (a scenario's guest, interactively).  Each returns a StageResult
with its elapsed time; __main__ only parses arguments and calls them."""

import json
import os
import subprocess
import sys
import threading
import time
import unittest
from typing import NamedTuple

from . import parsers
from .passes import BUILD, INITRD, KERNELS, PASSES, PEERS_INITRD, kernel_config, kernel_dir, \
    kernel_image
from .results import Results
from .scenarios import SCENARIOS, Context
from .paths import ROOT, file_sha256, shell_line
from .vm import QEMU


class StageResult(NamedTuple):
    stage: str
    ok: bool
    seconds: float
    detail: str = ""


def _timed(stage, fn):
    t0 = time.monotonic()
    ok, detail = fn()
    return StageResult(stage, ok, round(time.monotonic() - t0, 1), detail)


# ---- build ------------------------------------------------------------
def build(names):
    """Build the kernels `names` (passes.KERNELS) with scripts/build.sh;
    the stock ones get their tree (scripts/stock.sh) first.  Stops at the
    first that fails."""
    out = []
    stock_ready = False
    for name in names:
        k = KERNELS[name]

        def one():
            nonlocal stock_ready
            if k.tree == "stock" and not stock_ready:
                if subprocess.run([os.path.join(ROOT, "scripts", "stock.sh")]).returncode:
                    return False, "scripts/stock.sh failed"
                stock_ready = True
            cmd = [os.path.join(ROOT, "scripts", "build.sh"), "-a", k.arch, "-o",
                   kernel_dir(name)]
            for c in k.configs:
                cmd += ["-c", c]
            if k.tree != "linux":
                cmd += ["-t", os.path.join(BUILD, k.tree), "--partial"]
            rc = subprocess.run(cmd).returncode
            return rc == 0, os.path.relpath(kernel_image(name), ROOT) if rc == 0 else \
                f"scripts/build.sh exited {rc}"
        out.append(_timed(f"build {name}", one))
        if not out[-1].ok:
            break
    return out


def image():
    """The guest initramfs and the one with the peer suites."""
    def make():
        for cmd in ([os.path.join(ROOT, "scripts", "initramfs.sh"), INITRD],
                    [os.path.join(ROOT, "scripts", "peers.sh"), INITRD, PEERS_INITRD]):
            rc = subprocess.run(cmd).returncode
            if rc:
                return False, f"{os.path.basename(cmd[0])} exited {rc}"
        return True, os.path.relpath(INITRD, ROOT)
    return _timed("image", make)


# ---- unit -------------------------------------------------------------
class _Recorder(unittest.TestResult):
    """Feeds unittest outcomes into Results, one line per test, and one per
    failing subTest (unittest then reports neither success nor failure of
    the test itself, so without addSubTest the failure would be lost)."""

    def __init__(self, res):
        super().__init__()
        self.res = res

    @staticmethod
    def name(test):
        return f"unit: {test.id().split('.', 1)[1]}"

    def addSuccess(self, test):
        self.res.passed(self.name(test))

    def addFailure(self, test, err):
        self.res.fail(self.name(test), str(err[1]).splitlines()[0])

    addError = addFailure

    def addSkip(self, test, reason):
        self.res.skip(self.name(test), reason)

    def addSubTest(self, test, subtest, err):
        if err is not None:
            self.addFailure(subtest, err)


def unit(res):
    """The harness's own unit tests (tests/), each a check in `res`."""
    def run():
        res.start("unit")
        suite = unittest.defaultTestLoader.discover(os.path.join(ROOT, "tests"),
                                                    top_level_dir=ROOT)
        if suite.countTestCases() == 0:
            res.fail("unit: tests found", "no unit tests discovered under tests/")
            return False, "none found"
        before = res.count("fail")
        suite.run(_Recorder(res))
        return res.count("fail") == before, f"{suite.countTestCases()} tests"
    return _timed("unit", run)


# ---- exec -------------------------------------------------------------
def plan(names, passes):
    """{pass: [scenario]} in run order: each named scenario on each of the
    given passes it declares."""
    return {p: [n for n in names if p in SCENARIOS[n].passes] for p in passes}


def kernels_needed(todo, stock):
    """The kernels a plan boots: each pass's, and its stock kernel if asked."""
    out = []
    for p, names in todo.items():
        if names:
            out.append(PASSES[p].kernel)
            if stock and PASSES[p].stock:
                out.append(PASSES[p].stock)
    return list(dict.fromkeys(out))


def run_scenarios(ctx, names, res, save=None, stopping=None):
    """Each of `names` on `ctx`'s pass, its checks into `res`; `save()`
    after each; none once `stopping` is set."""
    label = "" if ctx.label in ("", "main") else f"{ctx.label}: "
    for name in names:
        if stopping is not None and stopping.is_set():
            return
        sc = SCENARIOS[name]
        print(f"# {label}{name}: {sc.doc}", flush=True)
        ctx.enter(sc)
        res.start(name, ctx.label)
        res.expect_skips(ctx.skips)
        t0 = time.monotonic()
        try:
            sc.fn(ctx, res)
        except Exception as e:  # the scenario could not finish: that is a failure
            res.fail(f"{name}: scenario ran to the end", f"{type(e).__name__}: {e}")
        res.expect_skips({})
        print(f"# {label}{name}: {time.monotonic() - t0:.0f}s", flush=True)
        if save:
            save()


def check_pageblock_order(ctx, res, order):
    """The nothp pass is only worth its name if the kernel has these
    pageblocks."""
    from . import measure
    res.start("pageblock", ctx.label)
    with ctx.vm("pageblock") as vm:
        got = measure.pageblock_order(vm)
    return res.check(f"pageblocks are {(ctx.page_size << order) >> 20} MiB (order {order})",
                     got == order, f"order {got}")


def lanes_of(todo, lanes):
    """The passes of `todo` that have scenarios, grouped into lanes that
    run side by side: with `lanes` > 1 each pass goes to the lane its
    Pass.lane names (the KASAN pass: its own), otherwise all to one."""
    out = {}
    for p, names in todo.items():
        if names:
            out.setdefault(min(PASSES[p].lane, lanes - 1), []).append(p)
    return [out[k] for k in sorted(out)]


def exec_passes(res, todo, rundir, initrd=INITRD, accel="tcg", soak_cycles=20, stock=False,
                lanes=1, build_kernels=False):
    """Run the plan `todo` ({pass: [scenario]}), pass by pass; the main pass
    in `rundir`, every other in rundir/PASS.  With `lanes` > 1 the lanes of
    lanes_of() run at the same time, each with its own Results, merged into
    `res` in lane order at the end.  results.json is rewritten after each
    scenario, with what every lane has so far.  `build_kernels`: each lane
    builds its kernels first, the other lanes' before they start, the first
    lane's while they run, so that guests run while kernels build but never
    two builds run at once; a build that fails is a failed check and its
    lane runs nothing."""
    results_json = os.path.join(rundir, "results.json")
    groups = lanes_of(todo, lanes)
    lane_res = [res] + [Results(out=res.out) for _ in groups[1:]]
    lock = threading.Lock()
    # an interrupt reaches the main thread only: it stops every lane and
    # kills every guest of theirs, so that nothing runs on after the harness
    stopping = threading.Event()
    guests = []

    def on_vm(vm):
        with lock:
            guests.append(vm)
        if stopping.is_set():
            raise KeyboardInterrupt("stopping")
        return vm

    def save():
        with lock:
            merged = Results(out=None)
            merged.items = [i for r in lane_res for i in r.items]
            merged.write_json(results_json)

    def run_pass(p, names, r):
        spec = PASSES[p]
        kernel = kernel_image(spec.kernel)
        print(f"# pass {p} ({spec.doc}): {os.path.relpath(kernel, ROOT)}", flush=True)
        r.start("", p)
        if not os.path.exists(kernel):
            r.fail(f"{p} kernel present", f"missing {os.path.relpath(kernel, ROOT)}; run "
                   f"'make {make_target(spec.kernel)}'")
            return
        ctx = Context(p, rundir if p == "main" else os.path.join(rundir, p), initrd, accel,
                      soak_cycles, stock=stock, on_vm=on_vm)
        if ctx.stock_kernel and not os.path.exists(ctx.stock_kernel):
            r.fail(f"{spec.stock} kernel present", f"missing {ctx.stock_kernel}; run "
                   f"'make {make_target(spec.stock)}'")
            return
        if spec.pageblock_order is not None:
            try:
                check_pageblock_order(ctx, r, spec.pageblock_order)
            except Exception as e:  # its guest did not boot: neither would the pass's
                r.fail("pageblock order read", f"{type(e).__name__}: {e}")
                return
        run_scenarios(ctx, names, r, save, stopping)

    def run_lane(passes, r, in_main_thread=False):
        try:
            for p in passes:
                if not stopping.is_set():
                    run_pass(p, todo[p], r)
        except Exception as e:  # a lane that dies is a failure, not a lost thread
            r.fail(f"lane of {', '.join(passes)} ran to the end", f"{type(e).__name__}: {e}")
        except KeyboardInterrupt:
            if in_main_thread:
                raise
            # a guest of this lane was started while the main thread stops the run

    def built(passes, r):
        if not build_kernels:
            return True
        for b in build(kernels_needed({p: todo[p] for p in passes}, stock)):
            print(f"# {b.stage}: {'ok' if b.ok else 'FAILED'} in {b.seconds:.0f}s: {b.detail}",
                  flush=True)
            if not b.ok:
                r.start("", passes[0])
                r.fail(f"{b.stage}", f"{b.detail}; the passes {', '.join(passes)} did not run")
                return False
        return True

    def run():
        threads = []
        try:
            for i, (g, r) in enumerate(zip(groups[1:], lane_res[1:]), 1):
                if built(g, r):
                    threads.append(threading.Thread(target=run_lane, args=(g, r),
                                                    name=f"lane {i}", daemon=True))
                    threads[-1].start()
            if groups and built(groups[0], res):
                run_lane(groups[0], res, in_main_thread=True)
            for t in threads:
                t.join()
        except KeyboardInterrupt:
            stopping.set()
            with lock:
                live = list(guests)
            for vm in live:
                vm.kill()
            for t in threads:
                t.join(30)
            raise
        for r in lane_res[1:]:
            res.items.extend(r.items)
        res.start("")
        res.write_json(results_json)
        return res.count("fail") == 0, res.closing_line()
    return _timed("exec", run)


def make_target(kernel):
    return "kernel" if kernel == "main" else f"kernel-{kernel}"


# ---- records ----------------------------------------------------------
def _git(*args):
    p = subprocess.run(["git", "-C", ROOT, *args], capture_output=True, text=True)
    return p.stdout.strip() if p.returncode == 0 else None


def manifest(rundir, argv, kernels, **extra):
    """Write rundir/manifest.json: what this run ran, so that a result can
    be traced back: the harness's git HEAD (and whether the checkout had
    changes), the series digest build/linux was made from (scripts/lib.sh
    series_digest, stamped by make tree and make export), the sha256 of
    each kernel and its .config and of the images, the QEMU version, and
    the command line.  Paths are relative to the checkout."""
    stamp = os.path.join(BUILD, "linux", ".git", "series.applied")
    digest = tree_head = None
    if os.path.exists(stamp):
        with open(stamp) as f:
            digest, tree_head = (f.read().split() + [None, None])[:2]
    try:
        qemu = subprocess.run([QEMU, "--version"], capture_output=True, text=True).stdout
    except OSError:
        qemu = ""
    doc = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "command": shell_line(argv),
        "git_head": _git("rev-parse", "HEAD"),
        "git_changes": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "series_digest": digest, "tree_head": tree_head,
        "kernels": {k: {"image": os.path.relpath(kernel_image(k), ROOT),
                        "sha256": file_sha256(kernel_image(k)),
                        "config_sha256": file_sha256(kernel_config(k))} for k in kernels},
        "images": {os.path.relpath(p, ROOT): file_sha256(p) for p in (INITRD, PEERS_INITRD)},
        "qemu": qemu.splitlines()[0] if qemu else None,
        **extra,
    }
    os.makedirs(rundir, exist_ok=True)
    with open(os.path.join(rundir, "manifest.json"), "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    return doc


# ---- parse ------------------------------------------------------------
def parse(paths, res):
    """Re-judge saved consoles: each file's KTAP results (one check per
    top-level result) and the splat check; a kmemleak.txt next to a file
    is judged as check_console() judges it."""
    def run():
        for path in paths:
            name = os.path.relpath(path)
            res.start(name)
            try:
                with open(path, errors="replace") as f:
                    text = f.read()
            except OSError as e:
                res.fail(f"{name}: readable", str(e))
                continue
            for r in parsers.parse_ktap(text):
                t = parsers.ktap_totals(r["subtests"]) if r["subtests"] else None
                detail = (f"{t['pass']} passed, {t['fail']} failed, {t['skip']} skipped"
                          if t else "") + (f" ({r['directive']})" if r["directive"] else "")
                # judged as a run judges it: a skip nobody declared fails
                res.record(f"{name}: KTAP {r['name']}", r["status"], detail.strip())
            bad = parsers.console_problems(text)
            res.check(f"{name}: no oops, WARN, BUG, lockup, stall or OOM", not bad,
                      "; ".join(f"{k}: {line}" for k, line in bad[:3]))
            leaks = os.path.join(os.path.dirname(path), "kmemleak.txt")
            if os.path.exists(leaks):
                with open(leaks) as f:
                    ours = [o for o in parsers.parse_kmemleak(f.read()) if o["hotplug"]]
                res.check(f"{name}: kmemleak: no unreferenced object from the hotplug paths",
                          not ours, f"{len(ours)} from the hotplug paths")
        return res.count("fail") == 0, res.closing_line()
    return _timed("parse", run)


# ---- shell ------------------------------------------------------------
class ShellDone(BaseException):
    """The interactive shell ended; the scenario stops here (a BaseException,
    so that no scenario's "except Exception" keeps it from stopping)."""


SHELL_WRAP = ('cd "$(cat /tmp/.shell-cwd 2>/dev/null || echo /)"\n{line}\n'
              'rc=$?; pwd >/tmp/.shell-cwd; exit $rc\n')


def interact(vm, stdin=sys.stdin, out=sys.stdout):
    """A shell on the guest's agent: each line runs in the guest (the
    working directory carries over), 'qmp CMD [JSON]' goes to QEMU's
    monitor, 'exit' or end of input ends it."""
    tty = stdin.isatty()
    print(f"# guest {vm.name} booted: {shell_line(vm.command_line())}\n"
          f"# console: {os.path.relpath(vm.console_path)}; 'qmp CMD [JSON-ARGS]' talks to "
          "QEMU; 'exit' or ^D leaves", file=out, flush=True)
    while True:
        if tty:
            out.write("guest# ")
            out.flush()
        line = stdin.readline()
        if not line or line.strip() == "exit":
            return
        line = line.rstrip("\n")
        if not line.strip():
            continue
        try:
            if line.startswith("qmp "):
                cmd, _, args = line[4:].strip().partition(" ")
                got = vm.qmp.execute(cmd, arguments=json.loads(args) if args.strip() else None)
                print(json.dumps(got, indent=1), file=out, flush=True)
                continue
            rc, text = vm.run(SHELL_WRAP.format(line=line), timeout=3600, check=False)
            out.write(text)
            if rc:
                print(f"[exit {rc}]", file=out)
            out.flush()
        except Exception as e:  # a bad command must not end the session
            print(f"# {type(e).__name__}: {e}", file=out, flush=True)


def shell(name, pass_name, rundir, guest=1, initrd=INITRD, accel="tcg"):
    """Boot the `guest`-th guest that scenario `name` boots on `pass_name`,
    with exactly its QEMU command line, and give a shell on it.  The
    scenario runs as usual up to that guest (its checks are printed) and
    stops once the shell ends."""
    seen = {"n": 0}

    def on_vm(vm):
        seen["n"] += 1
        if seen["n"] == guest:
            start = vm.start

            def start_and_interact():
                # VM.__enter__ runs this, so VM.__exit__ will not: stop the
                # guest here, also on ^C
                start()
                try:
                    interact(vm)
                finally:
                    vm.stop()
                raise ShellDone()
            vm.start = start_and_interact
        return vm

    def run():
        ctx = Context(pass_name, os.path.join(rundir, "shell", pass_name), initrd, accel,
                      on_vm=on_vm)
        sc = SCENARIOS[name]
        ctx.enter(sc)
        res = Results()
        res.start(name, pass_name)
        res.expect_skips(ctx.skips)
        try:
            sc.fn(ctx, res)
        except ShellDone:
            return True, f"shell on guest {guest} of {name} ended"
        return False, f"{name} boots {seen['n']} guests on {pass_name}, not {guest}"
    return _timed("shell", run)
