"""Hot-add when allocations fail: the add must fail cleanly, roll back
everything, and succeed when tried again.  Needs the debug kernel
(configs/debug.config: fault injection)."""

import time

from .. import measure, model, parsers
from ..measure import GIB, KIB, MIB
from ..vm import VMError, dimm_base
from .base import check_console, free_compared, quarantine_skip, scenario

FAIL_PAGE_ALLOC = "/sys/kernel/debug/fail_page_alloc"
COLD_DIMM_ADDR = dimm_base(256)


def rolled_back(vm):
    """What measure.differences() compares, for a check's name."""
    return ("MemTotal, free memory within 256 KiB, blocks, /proc/iomem" if vm.exact_free
            else "MemTotal, blocks, /proc/iomem")


def free_skip(res, vm, name):
    """On the KASAN pass: the declared skip of the free-memory part."""
    free_compared(res, vm, f"{name}: free memory within 256 KiB after each failure")


def probe_failing_nth(vm, addr, nth):
    """Probe `addr` from a shell whose nth failable allocation fails (only
    allocations that cannot sleep count).  Returns (added, injected, error)."""
    out = vm.run(
        f"echo {nth} > /proc/thread-self/fail-nth; "
        f"if echo {addr:#x} > {measure.SYS_MEM}/probe 2>/tmp/probe.err; then rc=0; else rc=1; fi; "
        "read left < /proc/thread-self/fail-nth; echo 0 > /proc/thread-self/fail-nth; "
        'echo "rc=$rc left=$left"; cat /tmp/probe.err')
    lines = out.strip().splitlines()
    status = dict(kv.split("=", 1) for kv in lines[0].split())
    return status["rc"] == "0", status["left"] == "0", " ".join(lines[1:]).strip()


def pgtable_fail_probe(ctx, res, name, direct_map, max_nth):
    # A 16 GiB DIMM present at boot but left unadded; the first block of
    # each GiB is probed from a shell.  Without GiB pages the direct map of
    # a new GiB needs page-table pages, allocated with GFP_ATOMIC.  An add
    # that survives an injected failure (other non-sleeping allocations on
    # the way have fallbacks) moves on to the next GiB.
    append = (f"acpi_no_memhotplug {direct_map} memory_hotplug.memmap_on_memory=1 "
              "memhp_default_state=offline")
    gibs = 16
    with ctx.vm(name, append, slots=2, maxmem_gib=32,
                dimms=[{"id": "cold", "size": gibs * GIB}]) as vm:
        addr = vm.qmp.execute("query-memory-devices")[0]["data"]["addr"]
        if addr != COLD_DIMM_ADDR:
            res.fail(f"{name}: DIMM where expected", f"at {addr:#x}")
            return
        bs = measure.block_size(vm)
        vm.run(f"echo 0 > {FAIL_PAGE_ALLOC}/min-order; echo Y > {FAIL_PAGE_ALLOC}/ignore-gfp-wait")
        before = measure.snapshot(vm)
        failed, tolerated, bad, g, trace = 0, 0, [], 0, []
        added = injected = False
        for nth in range(1, max_nth + 1):
            if g == gibs:
                break
            target = addr + g * GIB
            added, injected, err = probe_failing_nth(vm, target, nth)
            trace.append(f"#{nth}@{g}:" + ("absorbed" if added and injected else
                                            "added" if added else
                                            "failed" if injected else "error"))
            if added:
                tolerated += injected
                if not injected:
                    break
                g += 1
                before = measure.snapshot(vm)
                continue
            if not injected:
                bad.append(f"#{nth}: failed without an injected failure: {err}")
                break
            failed += 1
            if "Cannot allocate memory" not in err:
                bad.append(f"#{nth}: error '{err}'")
            diff = measure.differences(before, measure.snapshot(vm))
            if diff:
                bad.append(f"#{nth}: not rolled back: {', '.join(diff)}")
        reached = failed + tolerated
        res.check(f"{name}: an injected failure made an add fail", failed > 0,
                  f"{reached} injection points reached: {failed} failed the add, "
                  f"{tolerated} were absorbed ({' '.join(trace)})")
        res.check(f"{name}: each failure is ENOMEM and rolls back everything "
                  f"({rolled_back(vm)})", not bad,
                  "; ".join(bad[:3]) or f"{failed} failures, all rolled back")
        block = (addr + g * GIB) // bs
        res.check(f"{name}: the add succeeds once nothing is injected",
                  added and not injected and block in measure.linked_blocks(vm),
                  f"GiB {g} after {reached} injections")
        if added and not injected:
            pages = int(vm.run(f"cat {measure.SYS_MEM}/memory{block}/memmap_on_memory_pages"))
            t0 = measure.meminfo(vm)["MemTotal"]
            measure.set_blocks_state(vm, [block], "online_movable")
            gain = measure.meminfo(vm)["MemTotal"] - t0
            res.check(f"{name}: the block then onlines with its memmap on it",
                      pages == model.memmap_pages(bs) and gain == bs - pages * 4096,
                      f"memmap_on_memory_pages {pages}, MemTotal {gain // KIB:+d} KiB")
        free_skip(res, vm, name)
        check_console(res, name, vm)



# The page tables that a direct map without GiB pages needs first in a new
# GiB, and where their allocations come from: PMD tables with 2 MiB pages
# (nogbpages), PTE tables with 4 KiB pages (debug_pagealloc=on).  The last
# number bounds the probe sweep: a 128 MiB block mapped with 4 KiB pages
# needs 64 PTE tables and a PMD table, each a point to inject at.
DIRECT_MAPS = (("nogbpages", "phys_pud_init", 40), ("debug_pagealloc=on", "phys_pmd_init", 120))
PGTABLE_BUDGET = 1000


def pgtable_fail_count(ctx, res, name, direct_map, caller):
    """One ACPI hot-add of 4 GiB with =0: a single arch_add_memory() over four
    GiB, each needing page tables of its own.  Every page-table allocation
    made from `caller` fails (fail_page_alloc with a stack filter, all of
    them, counted by its `times` budget).  The add must fail after the first
    one and roll back: a walk that goes on maps the next GiB (and allocates
    for it) before the undo."""
    append = f"{direct_map} memory_hotplug.memmap_on_memory=0 memhp_default_state=offline"
    with ctx.vm(f"{name}-count", append, slots=2, maxmem_gib=32) as vm:
        start, end = function_range(vm, caller)
        f = FAIL_PAGE_ALLOC
        vm.run("; ".join([
            f"echo 0 > {f}/min-order", f"echo N > {f}/ignore-gfp-wait",
            f"echo N > {f}/ignore-gfp-highmem", f"echo 0 > {f}/space",
            f"echo 1 > {f}/interval", f"echo {start:#x} > {f}/require-start",
            f"echo {end:#x} > {f}/require-end", f"echo 32 > {f}/stacktrace-depth",
            f"echo {PGTABLE_BUDGET} > {f}/times", f"echo 100 > {f}/probability"]))
        before = measure.snapshot(vm)
        con0 = vm.begin_step()
        measure.add_dimm(vm, "big", 4 * GIB)
        said = measure.wait_guest(vm, lambda: parsers.add_failure(vm.console(con0), "dimm"),
                                  60)
        left = int(vm.run(f"echo 0 > {f}/probability; cat {f}/times"))
        failed = PGTABLE_BUDGET - left
        res.check(f"{name}: a 4 GiB add stops at the first page table that cannot "
                  "be allocated", failed == 1 and bool(said),
                  f"{failed} page-table allocations from {caller}() failed, "
                  f"guest said {said or 'nothing'}")
        diff = measure.differences(before, measure.snapshot(vm))
        res.check(f"{name}: the failed 4 GiB add left nothing behind ({rolled_back(vm)})",
                  not diff, ", ".join(diff) or "as before")
        free_skip(res, vm, f"{name}-count")
        check_console(res, f"{name}-count", vm)


@scenario("pgtable-fail", "x86 direct-map page tables cannot be allocated during hot-add, "
                          "with 2 MiB (nogbpages) and 4 KiB (debug_pagealloc=on) direct maps: "
                          "-ENOMEM at the first failure, full rollback, a later add succeeds",
          passes=("debug", "kasan"),
          skips=[quarantine_skip(f"pgtable-fail-{d.split('=')[0]}{c}: free memory within 256 "
                                 "KiB after each failure")
                 for d, _, _ in DIRECT_MAPS for c in ("", "-count")], topics=("fixes",))
def sc_pgtable_fail(ctx, res):
    for direct_map, caller, max_nth in DIRECT_MAPS:
        name = "pgtable-fail-" + direct_map.split("=")[0]
        pgtable_fail_probe(ctx, res, name, direct_map, max_nth)
        pgtable_fail_count(ctx, res, name, direct_map, caller)


# ---- fault-injection sweep over the hot-add paths ----------------------
#
# pc-dimm (ACPI) and virtio-mem add memory from kernel workers, not from a
# task the harness controls.  fail-nth can be written for any task, and
# both fault attributes (page allocator, slab) can be told to count only
# allocations whose stack passes through one function.  So every kworker
# gets fail-nth = N and the filter is add_memory_resource(): whichever
# worker runs the add fails its N-th allocation inside it (sleeping or not,
# any order), and no other allocation is touched.

FAILSLAB = "/sys/kernel/debug/failslab"
SWEEP_ANCHOR = "add_memory_resource"
SWEEP_MAX = 300

ARM_CMD = ("for t in /proc/[0-9]*/task/[0-9]*; do read c < $t/comm 2>/dev/null || continue; "
           "case $c in kworker*) echo {n} > $t/fail-nth 2>/dev/null && echo ${{t##*/}};; esac; "
           "done; true")
# a worker can exit between any two commands: busybox sh gives up on the
# whole loop when a redirection fails (rc 2, make test-full 2026-12-05), so
# each worker's read and write go in a subshell of their own
DISARM_CMD = ("for t in {tids}; do f=/proc/$t/task/$t/fail-nth; "
              "( read v < $f && echo 0 > $f && echo $t $v ) 2>/dev/null; done; true")


def function_range(vm, symbol):
    """[start, end) of a kernel function: its address and the next higher
    one in /proc/kallsyms (fixed-width hex addresses sort as text)."""
    rows = [line.split() for line in
            vm.run(f"sort /proc/kallsyms | grep -A8 ' [tT] {symbol}$'").splitlines()
            if line.strip()]
    start = int(rows[0][0], 16) if rows else 0
    end = next((int(r[0], 16) for r in rows[1:] if int(r[0], 16) > start), 0)
    if not start or not end:
        raise VMError(f"no address range for {symbol} in /proc/kallsyms: {rows[:2]}")
    return start, end


def target_allocations(vm, start, end):
    """Let fail-nth count only allocations made under [start, end):
    sleeping ones too, every order, slab and page allocator."""
    cmds = [f"echo 0 > {FAIL_PAGE_ALLOC}/min-order"]
    for d in (FAIL_PAGE_ALLOC, FAILSLAB):
        cmds += [f"echo {start:#x} > {d}/require-start", f"echo {end:#x} > {d}/require-end",
                 f"echo 32 > {d}/stacktrace-depth", f"echo N > {d}/ignore-gfp-wait",
                 f"echo 1 > {d}/verbose"]
    vm.run("; ".join(cmds))


class Sweep:
    """One hot-add path under injection: attempt(n) adds with the n-th
    allocation inside the add failing, decides what happened, checks the
    guest and puts it back to where it was."""

    def __init__(self, vm, size):
        self.vm = vm
        self.size = size
        self.bs = measure.block_size(vm)
        self.unlinked = 0   # absorbed adds whose blocks have no node link
        self.base = measure.snapshot(vm)
        # one add without injection first: what the first add of a boot
        # allocates for good (caches, the driver's bitmaps) is not a leak
        outcome, said = self.start()(vm.begin_step())
        if outcome != "added":
            raise VMError(f"the add without injection did not succeed: {outcome} {said}")
        self.undo(outcome)
        self.base = measure.snapshot(vm)
        # and one failed add: the first failure of a boot grows slab caches
        # for good (measured with virtio-mem: +308 KiB SUnreclaim once, then
        # nothing over repeated failures at the same or other points)
        self.attempt(1)
        self.unlinked = 0

    def arm(self, n):
        return self.vm.run(ARM_CMD.format(n=n)).split()

    def disarm(self, tids):
        """{tid: fail-nth left} of the armed workers, all set back to 0."""
        out = self.vm.run(DISARM_CMD.format(tids=" ".join(tids)))
        return {t: int(v) for t, v in (line.split() for line in out.splitlines() if line.strip())}

    def wait(self, con0, done, timeout=90):
        """Until done() holds on two looks a second apart (the add has
        finished: its last steps leave no other trace) or the console says
        the add through this path failed."""
        def look():
            if done():
                time.sleep(1)
                if done():
                    return "added", ""
            said = parsers.add_failure(self.vm.console(con0), self.path)
            return ("failed", said) if said else None
        return (measure.wait_guest(self.vm, look, timeout, poll=0.3)
                or ("stuck", f"neither added nor failed after {timeout}s"))

    def attempt(self, n):
        """Returns (outcome, used, problems): outcome 'added' / 'failed' /
        'stuck', used = allocations counted in the add (None if no armed
        worker ran it), problems = what is wrong with the guest after it."""
        before = self.base
        tids = self.arm(n)
        con0 = self.vm.begin_step()
        outcome, said = self.start()(con0)
        left = self.disarm(tids)
        ran = [v for v in left.values() if v != n]
        used = n - ran[0] if ran else None
        problems = []
        if outcome == "added":
            new = measure.present_blocks(self.vm) - set(before["blocks"])
            self.unlinked += bool(new - measure.linked_blocks(self.vm))
        if outcome == "failed":
            problems += self.failed_state(before, said)
        elif outcome == "stuck":
            problems.append(said)
        self.undo(outcome)
        now = measure.snapshot(self.vm)
        diff = measure.differences(before, now)
        if diff:
            problems.append("after cleanup: " + ", ".join(diff))
        self.base = now
        return outcome, used, problems

    def wait_blocks_back(self, what):
        measure.wait_guest(self.vm, lambda: measure.present_blocks(self.vm) ==
                           set(self.base["blocks"]), 60, what=what, poll=0.3)

    def failed_state(self, before, said):
        now = measure.snapshot(self.vm)
        return [f"not rolled back ({said}): " + ", ".join(d)
                for d in [measure.differences(before, now)] if d]


class DimmSweep(Sweep):
    dev = "fi"
    path = "dimm"

    def start(self):
        b0 = set(self.base["blocks"])
        want = self.size // self.bs
        measure.add_dimm(self.vm, self.dev, self.size)
        return lambda con0: self.wait(con0, lambda: self.bound(b0, want))

    def bound(self, b0, want):
        """The ACPI memory handler binds the blocks to the DIMM's ACPI
        device (memoryN/firmware_node) once the add returned success."""
        new = measure.present_blocks(self.vm) - b0
        return len(new) >= want and self.vm.run(
            "; ".join(f"[ -e {measure.SYS_MEM}/memory{b}/firmware_node ]" for b in new),
            check=False)[0] == 0

    def undo(self, outcome):
        measure.remove_dimm(self.vm, self.dev, timeout=60)
        self.wait_blocks_back("blocks of the removed DIMM are still there after 60s")


class VmemSweep(Sweep):
    dev = "vm0"
    path = "vmem"

    def start(self):
        want = self.size // self.bs
        b0 = set(self.base["blocks"])
        measure.request_virtio_mem(self.vm, self.dev, self.size)
        return lambda con0: self.wait(
            con0,
            lambda: measure.virtio_mem_size(self.vm, self.dev) == self.size and
            len(measure.present_blocks(self.vm) - b0) >= want)

    def failed_state(self, before, said):
        problems = super().failed_state(before, said)
        if "broken" in said:
            problems.append(f"the driver gave up on the device: {said}")
        measure.wait_guest(self.vm, lambda: not measure.virtio_mem_size(self.vm, self.dev), 10,
                           poll=0.3)
        plugged = measure.virtio_mem_size(self.vm, self.dev)
        if plugged:
            problems.append(f"device still has {plugged >> 20} MiB plugged")
        return problems

    def undo(self, outcome):
        # asking for 0 also cancels the driver's retry timer
        measure.set_virtio_mem(self.vm, self.dev, 0, timeout=90, stall=30)
        self.wait_blocks_back("virtio-mem blocks still there after unplugging to 0")


def sweep(res, name, sw):
    """n = 1, 2, ... until an armed add no longer reaches its n-th allocation."""
    counts = {"failed": 0, "absorbed": 0}
    bad, trace, n, unarmed = [], [], 1, 0
    clean = None
    while n <= SWEEP_MAX:
        outcome, used, problems = sw.attempt(n)
        if used is None and outcome != "stuck":
            unarmed += 1            # a worker spawned after arming ran it: again
            if unarmed > 5:
                bad.append(f"#{n}: no armed worker ran the add, 5 times")
                break
            continue
        hit = used == n
        bad += [f"#{n}: {p}" for p in problems]
        if outcome == "added" and not hit:
            clean = used
            break
        if outcome == "added":
            counts["absorbed"] += 1
            trace.append(f"{n}a")
        elif outcome == "failed" and hit:
            counts["failed"] += 1
        else:
            bad.append(f"#{n}: {outcome} with {used} of {n} allocations counted")
        if len(bad) > 20:
            break
        n += 1
    res.check(f"{name}: the sweep ends with an add that no injection reached",
              clean is not None,
              f"{clean} allocations in an add; {n - 1} injection points: "
              f"{counts['failed']} failed the add, {counts['absorbed']} absorbed"
              + (f", {sw.unlinked} of them left blocks without a node link (logged)"
                 if sw.unlinked else "")
              + (f" ({' '.join(trace[:12])})" if trace else "") if clean is not None
              else f"stopped at #{n}")
    res.check(f"{name}: every injected failure fails the add with an error and rolls "
              f"back ({rolled_back(sw.vm)})",
              counts["failed"] > 0 and not bad,
              "; ".join(bad[:3]) or f"{counts['failed']} failures rolled back")
    return n - 1


@scenario("fault-sweep", "fault injection over pc-dimm and virtio-mem hot-add, memmap on "
                         "memory on and off: the N-th allocation of the add fails, N = 1, 2, ...",
          passes=("debug", "kasan"),
          skips=[quarantine_skip(f"fault-sweep/{p}-mode{m}: free memory within 256 KiB after "
                                 "each failure") for m in "10" for p in ("dimm", "vmem")],
          topics=("fixes",))
def sc_fault_sweep(ctx, res):
    name = "fault-sweep"
    for mode in ("1", "0"):
        append = (f"nogbpages memory_hotplug.memmap_on_memory={mode} "
                  "memhp_default_state=offline")
        for path in ("dimm", "vmem"):
            sub = f"{name}/{path}-mode{mode}"
            kw = {"virtio_mem": [{"id": "vm0", "size": "4G"}]} if path == "vmem" else {}
            with ctx.vm(sub.replace("/", "-"), append, **kw) as vm:
                start, end = function_range(vm, SWEEP_ANCHOR)
                target_allocations(vm, start, end)
                sw = (DimmSweep(vm, 2 * 128 * MIB) if path == "dimm"
                      else VmemSweep(vm, 128 * MIB))
                sweep(res, sub, sw)
                free_skip(res, vm, sub)
                check_console(res, sub, vm)
