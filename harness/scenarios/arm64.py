"""arm64 with 4, 16 and 64 KiB pages: a pc-dimm into a small guest with
memmap_on_memory=0 and =1, and with the base kernel's =1, on the virt
machine (UEFI, ACPI hotplug).  The base hosts the memmap with 4 KiB pages
only; the series (topic arm64) with every page size."""

from .. import measure, model, parsers
from ..measure import GIB, KIB, MIB
from ..passes import ARM64_PASSES
from .base import (big_dimm, check_console, check_memmap_back, check_memmap_source, check_spans,
                   counters_moved, kib_per_gib, memmap_counters, refused_before_memmap, scenario)

SIZE = 2 * GIB
MEM_MIB = 256


def roundtrip(ctx, res, name, mode, kernel=None):
    """Boot a 256 MiB guest with memmap_on_memory=mode, add a 2 GiB DIMM,
    measure (blocks offline), online it into ZONE_MOVABLE, offline its
    blocks from the zone's edges inwards and remove it.  Returns the
    numbers of measure.hotadd() with: hosted ({block:
    memmap_on_memory_pages}, None where the kernel has no such file), spans
    (measure.offline_edges_first()), after (a settled snapshot after the
    remove), memmap and memmap_after (how far the memmap counters moved
    after the add and after the remove), and no_effect (whether the kernel
    said the mode has no effect)."""
    with ctx.vm(name, f"memory_hotplug.memmap_on_memory={mode}", kernel=kernel,
                mem_mib=MEM_MIB, maxmem_gib=16, slots=2) as vm:
        c0 = memmap_counters(vm)
        r = measure.hotadd(vm, SIZE)
        c1 = memmap_counters(vm)
        r["hosted"] = measure.block_memmap(vm, r["blocks"])
        r["spans"] = measure.offline_edges_first(vm, r["blocks"])
        # a block that did not go offline cannot be removed: the spans say why
        offlined = not any(isinstance(got, str) for _, got, _ in r["spans"])
        r["after"] = measure.remove(vm, r["blocks"], offline=False) if offlined else None
        # the memmap's pages as the kernel counts them, after the add and
        # after the remove
        r["memmap"] = counters_moved(c0, c1)
        r["memmap_after"] = counters_moved(c0, memmap_counters(vm))
        r["no_effect"] = "has no effect" in vm.console()
        check_console(res, name, vm)
    return r


def check_back(res, name, r, page_size):
    check_spans(res, name, r["spans"])
    if r["after"] is None:
        return
    res.check(f"{name}: MemTotal back to its value before the add",
              r["after"]["MemTotal"] == r["memtotal_before"],
              f"{(r['after']['MemTotal'] - r['memtotal_before']) // KIB:+d} KiB")
    check_memmap_back(res, name, r["memmap_after"])
    # the memmap's own pages are counted exactly above
    res.check(f"{name}: free memory back within {measure.free_slack_text(page_size)}",
              abs(r["after"]["Free"] - r["free_before"]) <= measure.free_slack(page_size),
              f"{(r['after']['Free'] - r['free_before']) / KIB:+.0f} KiB")


@scenario("arm64-dimm", "arm64, each page size: a 2 GiB pc-dimm into a 256 MiB guest with =0 "
                        "and =1 (and the base's =1): =1 hosts every block's memmap, leaves at "
                        "least 1 - 64/PAGE_SIZE usable, the zone spans exactly the online "
                        "blocks after each offline, and remove returns everything",
          passes=ARM64_PASSES, topics=("arm64",))
def sc_arm64_dimm(ctx, res):
    page = ctx.page_size
    pmd = model.memmap_pmd(page)
    name = "arm64-dimm"
    r0 = roundtrip(ctx, res, f"{name}-mode0", "0")
    r1 = roundtrip(ctx, res, f"{name}-mode1", "1")
    bs = r1["block_size"]
    # the memmap of the DIMM in pages; free memory with 64 KiB pages is too
    # coarse for 2 GiB (arm64-big measures boot memory per GiB), the
    # counters are exact
    nblocks = SIZE // bs
    memmap = nblocks * model.memmap_pages(bs, page)
    per_block = model.selfhosted_pages(bs, "1", page, pmd)
    check_memmap_source(res, f"{name}-mode0", r0["memmap"], memmap, hosted=False,
                        detail=f"; boot memory {kib_per_gib(r0['consumed_per_gib'])}")
    res.check(f"{name}-mode1: the kernel does not say memmap_on_memory has no effect",
              not r1["no_effect"],
              "it says so: see the console" if r1["no_effect"] else "it does not")
    res.check(f"{name}-mode1: each {bs // MIB} MiB block hosts its memmap ({per_block} pages "
              f"of {page // KIB} KiB)",
              per_block > 0 and set(r1["hosted"].values()) == {per_block},
              f"memmap_on_memory_pages {sorted(set(r1['hosted'].values()), key=str)}")
    check_memmap_source(res, f"{name}-mode1", r1["memmap"], memmap, hosted=True,
                        detail=f"; boot memory {kib_per_gib(r1['consumed_per_gib'])}, "
                        f"=0: {kib_per_gib(r0['consumed_per_gib'])}")
    for mode, r in (("0", r0), ("1", r1)):
        want = model.usable_bytes(SIZE, bs, mode, page, pmd)
        res.check(f"{name}-mode{mode}: MemTotal grows by exactly {want // KIB} KiB",
                  r["memtotal_gain"] == want, f"grew {r['memtotal_gain'] // KIB} KiB")
        res.check(f"{name}-mode{mode}: all {SIZE // bs} blocks online",
                  r["online_blocks"] == len(r["blocks"]) == SIZE // bs,
                  f"{r['online_blocks']} of {len(r['blocks'])} online")
        check_back(res, f"{name}-mode{mode}", r, page)
    floor = model.usable_floor(page)
    share = r1["memtotal_gain"] / SIZE
    res.check(f"{name}-mode1: usable share at least 1 - 64/{page} = {100 * floor:.2f} %",
              share >= floor, f"{100 * share:.3f} %")
    if not ctx.stock_kernel:
        return
    rs = roundtrip(ctx, res, f"{name}-stock-mode1", "1", kernel=ctx.stock_kernel)
    check_back(res, f"{name}-stock-mode1", rs, page)
    # the base has no nr_memmap_on_memory_pages, and counts a self-hosted
    # memmap in nr_memmap_pages (admin 7/9 counts it apart): MemTotal tells
    # where the base's memmap is
    from_allocator = rs["memmap"]["nr_memmap_pages"]
    if ctx.pass_.base_hosts_memmap:
        res.check(f"{name}-stock-mode1: the base hosts the memmap too, as the series does",
                  rs["memtotal_gain"] == r1["memtotal_gain"],
                  f"base grew {rs['memtotal_gain'] // KIB} KiB, series "
                  f"{r1['memtotal_gain'] // KIB} KiB")
    else:
        res.check(f"{name}-stock-mode1: the base takes the memmap from the page allocator "
                  f"({page // KIB} KiB pages), the series from the blocks",
                  rs["memtotal_gain"] == SIZE and from_allocator == memmap,
                  f"base: {from_allocator} pages from the page allocator, boot memory "
                  f"{kib_per_gib(rs['consumed_per_gib'])}, MemTotal "
                  f"+{rs['memtotal_gain'] // KIB} KiB; series: "
                  f"{kib_per_gib(r1['consumed_per_gib'])}")


# The big add: a DIMM whose memmap, from boot memory, would be twice the
# guest's RAM (64 bytes of every page): 32 GiB with 4 KiB pages, 128 GiB
# with 16 KiB, 512 GiB with 64 KiB.  Its size also makes the noise of free
# memory (a slab or per-CPU list refill moves it by a few pages, and a page
# is 64 KiB) small per GiB.
BIG_MEMMAP_OVER_RAM = 2
BIG_KIB_PER_GIB = 64


def big_size(page_size):
    return BIG_MEMMAP_OVER_RAM * MEM_MIB * MIB * page_size // model.STRUCT_PAGE_SIZE


@scenario("arm64-big", "arm64, each page size: a pc-dimm whose memmap is twice the 256 MiB "
                       "guest's RAM: =1 adds and onlines it, =0 refuses it cleanly, and the "
                       "base's =1 fails unless its pages are 4 KiB",
          passes=ARM64_PASSES, topics=("arm64",))
def sc_arm64_big(ctx, res):
    page = ctx.page_size
    size = big_size(page)
    gib = size // GIB
    vm_kw = {"mem_mib": MEM_MIB, "maxmem_gib": gib + 8, "slots": 2}
    name = "arm64-big"
    ok, how, r, vm = big_dimm(ctx, res, f"{name}-mode1", "1", size=size, timeout=900, **vm_kw)
    res.check(f"{name}-mode1: the {gib} GiB add succeeds", ok, how)
    if r:
        bs = r["block_size"]
        res.check(f"{name}-mode1: all {size // bs} blocks online",
                  r["online_blocks"] == len(r["blocks"]) == size // bs,
                  f"{r['online_blocks']} of {len(r['blocks'])} online")
        res.check(f"{name}-mode1: boot memory drops <= {BIG_KIB_PER_GIB} KiB per GiB added",
                  r["consumed_per_gib"] <= BIG_KIB_PER_GIB * KIB,
                  kib_per_gib(r["consumed_per_gib"]))
        want = model.usable_bytes(size, bs, "1", page, model.memmap_pmd(page))
        res.check(f"{name}-mode1: MemTotal grows by exactly {want // KIB} KiB",
                  r["memtotal_gain"] == want, f"grew {r['memtotal_gain'] // KIB} KiB, "
                  f"{100 * r['memtotal_gain'] / size:.3f} % of the DIMM")
    check_console(res, f"{name}-mode1", vm)

    ok, how, _, vm = big_dimm(ctx, res, f"{name}-mode0", "0", size=size, **vm_kw)
    res.check(f"{name}-mode0: refused before any memmap was allocated, the guest answers "
              "(no panic, no OOM kill)",
              not ok and refused_before_memmap(vm.console()) and how.endswith("; guest answers") and
              not any(k in ("panic", "oom") for k, _ in vm.problems()), how)
    check_console(res, f"{name}-mode0", vm)
    if not ctx.stock_kernel:
        return
    ok, how, r, vm = big_dimm(ctx, res, f"{name}-stock-mode1", "1", size=size, timeout=900,
                              kernel=ctx.stock_kernel, **vm_kw)
    if ctx.pass_.base_hosts_memmap:
        res.check(f"{name}-stock-mode1: the base hosts the memmap with 4 KiB pages and "
                  "succeeds too", ok, how)
    else:
        # failed in the kernel (a panic, the OOM killer, or the add's own
        # failure on the console), not by a timeout of the harness
        said = (parsers.add_failure(vm.console(), "dimm") or
                any(k in ("panic", "oom") for k, _ in vm.problems()))
        res.check(f"{name}-stock-mode1: the base, which takes the memmap from boot memory "
                  f"with {page // KIB} KiB pages, fails in the kernel", not ok and bool(said),
                  how if not ok else f"it succeeded: {kib_per_gib(r['consumed_per_gib'])}")
