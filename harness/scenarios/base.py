"""The scenario registry, the context a scenario runs in, and the checks
scenarios share.  A scenario declares here, in its registration, the
passes it runs on, its sizes per pass and the skips it expects."""

import os
from typing import Callable, NamedTuple

from .. import measure, parsers
from ..measure import GIB
from ..passes import BUILD, INITRD, INITRDS, PASSES, PEERS_INITRD, kernel_image, pass_kernel
from ..vm import VM, VMError

ALL_PASSES = tuple(PASSES)


class Scenario(NamedTuple):
    name: str
    doc: str
    fn: Callable
    passes: tuple
    sizes: dict
    skips: tuple
    topics: tuple
    full_only: tuple = ()


SCENARIOS = {}


def scenario(name, doc, passes=("main", "debug"), sizes=None, skips=(), topics=(), full_only=()):
    """Register a scenario.  `passes`: the passes it runs on (see
    passes.PASSES).  `sizes`: {"*": {key: value}, PASS: {key: value}}, what
    ctx.size(key) gives on each pass.  `skips`: (passes, check, reason) for
    each check it skips on purpose on those passes; those skips pass, any
    other skip fails the run (Results.expect_skips).  `topics`: the topic
    series of patches/ whose changes it tests (run --topic, make
    check-series TOPIC=).  `full_only`: the passes on which `harness test`
    runs it only with --full (make test-full), to keep CI's make test
    within its time; named on the command line, or through `harness run`,
    it runs on every pass it declares."""
    unknown = [p for p in passes if p not in PASSES]
    unknown += [p for ps, _, _ in skips for p in ps if p not in PASSES]
    if unknown:
        raise ValueError(f"scenario {name}: unknown pass {', '.join(unknown)}")
    stray = [p for p in full_only if p not in passes]
    if stray:
        raise ValueError(f"scenario {name}: full_only names {', '.join(stray)}, a pass it "
                         "does not run on")
    if not topics:
        raise ValueError(f"scenario {name}: names no topic")

    def reg(fn):
        SCENARIOS[name] = Scenario(name, doc, fn, tuple(passes), dict(sizes or {}),
                                   tuple(skips), tuple(topics), tuple(full_only))
        return fn
    return reg


def expected_skips(sc, pass_name):
    """{check: reason} of the skips scenario `sc` declares for a pass."""
    return {check: reason for passes, check, reason in sc.skips if pass_name in passes}


class Context:
    """The pass a scenario runs in: its kernel, the image, where the runs
    go, and the running scenario's sizes and declared skips."""

    def __init__(self, pass_name, rundir, initrd=INITRD, accel="tcg", soak_cycles=20,
                 stock=False, kernel=None, tree=None, on_vm=None):
        self.label = pass_name
        self.pass_ = PASSES[pass_name]
        self.kernel = kernel or kernel_image(self.pass_.kernel)
        # the untouched base with the same configs (make test-full): the
        # scenarios that compare with it boot it too
        self.stock_kernel = (kernel_image(self.pass_.stock) if stock and self.pass_.stock
                             else None)
        # the kernel tree with the series (kunit.py runs in it)
        self.tree = tree or os.path.join(BUILD, "linux")
        # the architecture and page size of the pass's kernel; its guests
        # boot the image of that architecture
        self.arch = pass_kernel(pass_name).arch
        self.page_size = pass_kernel(pass_name).page_size
        self.initrd = INITRDS[self.arch] if initrd == INITRD else initrd
        self.rundir = rundir
        self.accel = accel
        self.soak_cycles = soak_cycles
        self.sizes = {}
        self.skips = {}
        # called with each VM a scenario creates (harness shell)
        self.on_vm = on_vm

    def enter(self, sc):
        """Set up for scenario `sc`: its sizes and declared skips here."""
        self.sizes = dict(sc.sizes.get("*", {}), **sc.sizes.get(self.label, {}))
        self.skips = expected_skips(sc, self.label)

    def size(self, key):
        return self.sizes[key]

    def declared_skip(self, check):
        """The reason the running scenario declares for skipping `check` on
        this pass, or None."""
        return self.skips.get(check)

    def vm(self, name, append="", kernel=None, initrd=None, **kw):
        kw.setdefault("kmemleak", self.pass_.kmemleak)
        kw.setdefault("exact_free", self.pass_.exact_free)
        append = f"{self.pass_.append} {append}".strip()
        kw.setdefault("target", self.arch)
        kw.setdefault("page_size", self.page_size)
        vm = VM(name, kernel or self.kernel, initrd or self.initrd,
                os.path.join(self.rundir, name), append=append, accel=self.accel, **kw)
        return self.on_vm(vm) if self.on_vm else vm

    def boot_mib(self, mib):
        """Boot memory for a guest that wants `mib`, scaled for the pass
        (KASAN: its shadow of what a scenario onlines, 1/8 of it, comes
        from memory already online)."""
        return self.pass_.boot_scale * mib

    @property
    def peers_initrd(self):
        """The initramfs with the peer suites (scripts/peers.sh)."""
        if self.initrd == INITRD:
            return PEERS_INITRD
        return os.path.join(os.path.dirname(os.path.abspath(self.initrd)), "initrd-peers.cpio")


# Generic KASAN holds on to memory after frees: freed slab objects wait in
# its quarantine (up to 1/32 of memory), and its stack depot and the shadow
# of vmalloc'd stacks grow.  A KASAN guest that only forks (5000 times, no
# hotplug) lost 8204 KiB of free memory, Slab +1548 KiB of it
# (2026-12-04), so on the KASAN pass free memory does not return to its
# value after a step that freed what it allocated (measured: admin -9768
# KiB, pgtable-fail -572 KiB).  There the checks compare everything else,
# and the free-memory comparison is a declared skip; the main, debug and
# nothp passes make it.
QUARANTINE = ("KASAN holds on to freed memory (quarantine, stack depot, vmalloc shadow): a "
              "guest that only forks loses 8 MiB of free memory; the main, debug and nothp "
              "passes compare free memory")


def quarantine_skip(check):
    """The declared skip of a free-memory comparison on the KASAN pass."""
    return (("kasan",), check, QUARANTINE)


def free_compared(res, vm, check):
    """False (and the check recorded as a skip) where free memory cannot be
    compared; True where the caller compares it."""
    if vm.exact_free:
        return True
    res.skip(check, "free memory is not compared under KASAN")
    return False


VMEM_APPEND = "memory_hotplug.memmap_on_memory=1 memhp_default_state=online_movable"


def check_console(res, name, vm, allow=()):
    """The console of the whole run has no splat (parsers.MARKERS); on a
    kernel with kmemleak, the hotplug paths leaked nothing."""
    bad = [p for p in vm.problems() if p[0] not in allow]
    res.check(f"{name}: console has no oops, WARN, BUG, lockup, stall or OOM", not bad,
              "; ".join(f"{k}: {line}" for k, line in bad[:3]) or vm.console_path)
    if vm.kmemleak and vm.alive():
        report = vm.leak_scan()
        with open(os.path.join(vm.rundir, "kmemleak.txt"), "w") as f:
            f.write(report)
        leaks = parsers.parse_kmemleak(report)
        ours = [o for o in leaks if o["hotplug"]]
        res.check(f"{name}: kmemleak: no unreferenced object from the hotplug paths",
                  not ours, f"{len(ours)} of {len(leaks)} new unreferenced objects"
                  + (f"; first: {ours[0]['size']} bytes from "
                     f"{' < '.join(ours[0]['backtrace'][:4])}" if ours else "")
                  + f" ({os.path.relpath(os.path.join(vm.rundir, 'kmemleak.txt'))})")


def check_spans(res, name, spans):
    """measure.offline_edges_first()'s spans: every offline succeeds, and
    after each the zone spans exactly the blocks still online (pageblock
    2/4: with a memmap smaller than a subsection the base's walks left it
    off, and the next offline at that edge failed with EBUSY)."""
    bad = [f"memory{b}: {g}" if isinstance(g, str) else
           f"memory{b}: start_pfn {g[0]:#x} spanned {g[1]:#x}, want {w[0]:#x} {w[1]:#x}"
           for b, g, w in spans if g != w]
    res.check(f"{name}: offlining the blocks at the zone's edges, one by one, leaves "
              "ZONE_MOVABLE spanning exactly the blocks still online",
              not bad, "; ".join(bad[:2]) or f"{len(spans)} offlines")


# vmstat's counts of memmap pages (admin 7/9): from the page allocator, and
# inside hot-added blocks that host their own
MEMMAP_COUNTERS = ("nr_memmap_pages", "nr_memmap_on_memory_pages")


def memmap_counters(vm):
    v = measure.vmstat(vm)
    return {k: v.get(k, 0) for k in MEMMAP_COUNTERS}


def counters_moved(before, now):
    return {k: now[k] - before[k] for k in MEMMAP_COUNTERS}


def check_memmap_source(res, name, moved, memmap, hosted, detail=""):
    """The counters `moved` by exactly the `memmap` pages of an add: inside
    the blocks if `hosted`, else from the page allocator."""
    want = {"nr_memmap_pages": 0 if hosted else memmap,
            "nr_memmap_on_memory_pages": memmap if hosted else 0}
    where = ("comes from the blocks, none from the page allocator" if hosted else
             "comes from the page allocator")
    res.check(f"{name}: the memmap ({memmap} pages) {where}", moved == want,
              f"{moved}{detail}")


def check_memmap_back(res, name, moved):
    """After the remove: the counters as before the add."""
    left = {k: v for k, v in moved.items() if v}
    res.check(f"{name}: the memmap counters back to their values before the add",
              not left, f"{left} pages left" if left else "")


def kib_per_gib(v):
    return f"{v / 1024:.1f} KiB/GiB"


def big_dimm(ctx, res, name, mode, size=64 * GIB, timeout=300, reader=None, **vm_kw):
    """One DIMM of `size` (64 GiB) into a small guest (256 MiB): returns
    (ok, how, numbers, vm).
    `reader`: a guest command started before the add.  After a failed add
    `how` ends with whether the guest still answers ("; guest answers").
    `vm_kw`: for ctx.vm() (kernel, mem_mib, maxmem_gib, ...)."""
    vm = ctx.vm(name, f"memory_hotplug.memmap_on_memory={mode}", **vm_kw)
    with vm:
        if reader:
            vm.run(reader)
        try:
            r = measure.hotadd(vm, size, timeout=timeout)
        except (VMError, OSError) as e:
            problems = vm.problems()
            kinds = sorted({k for k, _ in problems})
            if not vm.alive():
                how = "QEMU exited" + (" (guest panic)" if "panic" in kinds else "")
            else:
                how = "online failed" if isinstance(e, measure.OnlineFailed) else "add failed"
            first = parsers.failure_marker(vm.step_console(), str(e).splitlines()[0])
            how = f"{how}: {first}" + (f" [{', '.join(kinds)}]" if kinds else "")
            if vm.alive():
                try:
                    answer = vm.run("echo alive", timeout=30, check=False)[1].strip()
                except (VMError, OSError):
                    answer = ""
                how += "; guest answers" if answer == "alive" else "; guest does not answer"
            return False, how, None, vm
        if reader:
            r["reader"] = vm.run("kill $(cat /tmp/reader.pid) && echo alive",
                                 check=False)[1].strip()
        return True, "added and onlined", r, vm


def refused_before_memmap(console):
    """Whether the kernel refused an add because its memmap cannot fit (admin
    9/9), before any memmap was allocated."""
    return (parsers.marked(console, "refused") is not None
            and "vmemmap alloc failure" not in console)
