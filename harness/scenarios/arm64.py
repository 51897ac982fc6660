"""arm64 with 4, 16 and 64 KiB pages: a pc-dimm into a small guest with
memmap_on_memory=0 and =1, and with the base kernel's =1, on the virt
machine (UEFI, ACPI hotplug).  The base hosts the memmap with 4 KiB pages
only; the series (topic arm64) with every page size."""

from .. import measure, model
from ..measure import GIB, KIB, MIB
from ..passes import ARM64_PASSES
from .base import check_console, kib_per_gib, scenario

SIZE = 2 * GIB
MEM_MIB = 256


def roundtrip(ctx, res, name, mode, kernel=None):
    """Boot a 256 MiB guest with memmap_on_memory=mode, add a 2 GiB DIMM,
    measure (blocks offline), online it into ZONE_MOVABLE, offline and
    remove it.  Returns the numbers of measure.hotadd() with: hosted
    ({block: memmap_on_memory_pages}, None where the kernel has no such
    file), after (a settled snapshot after the remove), and
    no_effect (whether the kernel said the mode has no effect)."""
    with ctx.vm(name, f"memory_hotplug.memmap_on_memory={mode}", kernel=kernel,
                mem_mib=MEM_MIB, maxmem_gib=16, slots=2) as vm:
        r = measure.hotadd(vm, SIZE)
        r["hosted"] = measure.block_memmap(vm, r["blocks"])
        r["after"] = measure.remove(vm, r["blocks"])
        r["no_effect"] = "has no effect" in vm.console()
        check_console(res, name, vm)
    return r


def check_back(res, name, r):
    res.check(f"{name}: MemTotal back to its value before the add",
              r["after"]["MemTotal"] == r["memtotal_before"],
              f"{(r['after']['MemTotal'] - r['memtotal_before']) // KIB:+d} KiB")
    res.check(f"{name}: free memory back within 1 MiB",
              abs(r["after"]["Free"] - r["free_before"]) <= MIB,
              f"{(r['after']['Free'] - r['free_before']) / KIB:+.0f} KiB")


@scenario("arm64-dimm", "arm64, each page size: a 2 GiB pc-dimm into a 256 MiB guest with =0 "
                        "and =1 (and the base's =1): =1 hosts every block's memmap, leaves at "
                        "least 1 - 64/PAGE_SIZE usable, and remove returns everything",
          passes=ARM64_PASSES, topics=("arm64",))
def sc_arm64_dimm(ctx, res):
    page = ctx.page_size
    pmd = model.memmap_pmd(page)
    name = "arm64-dimm"
    r0 = roundtrip(ctx, res, f"{name}-mode0", "0")
    r1 = roundtrip(ctx, res, f"{name}-mode1", "1")
    bs = r1["block_size"]
    # what the memmap of a GiB takes where it comes from boot memory
    memmap_per_gib = model.memmap_bytes(GIB, page)
    per_block = model.selfhosted_pages(bs, "1", page, pmd)
    res.check(f"{name}-mode0: boot memory drops by at least 90 % of the memmap "
              f"({memmap_per_gib // KIB} KiB per GiB)",
              r0["consumed_per_gib"] >= 0.9 * memmap_per_gib, kib_per_gib(r0["consumed_per_gib"]))
    res.check(f"{name}-mode1: the kernel does not say memmap_on_memory has no effect",
              not r1["no_effect"], "it says so: see the console")
    res.check(f"{name}-mode1: each {bs // MIB} MiB block hosts its memmap ({per_block} pages "
              f"of {page // KIB} KiB)",
              per_block > 0 and set(r1["hosted"].values()) == {per_block},
              f"memmap_on_memory_pages {sorted(set(r1['hosted'].values()), key=str)}")
    res.check(f"{name}-mode1: boot memory drops <= 128 KiB per GiB added",
              r1["consumed_per_gib"] <= 128 * KIB,
              f"{kib_per_gib(r1['consumed_per_gib'])}, =0: {kib_per_gib(r0['consumed_per_gib'])}")
    for mode, r in (("0", r0), ("1", r1)):
        want = model.usable_bytes(SIZE, bs, mode, page, pmd)
        res.check(f"{name}-mode{mode}: MemTotal grows by exactly {want // KIB} KiB",
                  r["memtotal_gain"] == want, f"grew {r['memtotal_gain'] // KIB} KiB")
        res.check(f"{name}-mode{mode}: all {SIZE // bs} blocks online",
                  r["online_blocks"] == len(r["blocks"]) == SIZE // bs,
                  f"{r['online_blocks']} of {len(r['blocks'])} online")
        check_back(res, f"{name}-mode{mode}", r)
    floor = model.usable_floor(page)
    share = r1["memtotal_gain"] / SIZE
    res.check(f"{name}-mode1: usable share at least 1 - 64/{page} = {100 * floor:.2f} %",
              share >= floor, f"{100 * share:.3f} %")
    if not ctx.stock_kernel:
        return
    rs = roundtrip(ctx, res, f"{name}-stock-mode1", "1", kernel=ctx.stock_kernel)
    check_back(res, f"{name}-stock-mode1", rs)
    if ctx.pass_.base_hosts_memmap:
        res.check(f"{name}-stock-mode1: the base hosts the memmap too, as the series does",
                  rs["memtotal_gain"] == r1["memtotal_gain"],
                  f"base grew {rs['memtotal_gain'] // KIB} KiB, series "
                  f"{r1['memtotal_gain'] // KIB} KiB")
    else:
        res.check(f"{name}-stock-mode1: the base takes the memmap from boot memory "
                  f"({page // KIB} KiB pages), the series from the block",
                  rs["memtotal_gain"] == SIZE and
                  rs["consumed_per_gib"] >= 0.9 * memmap_per_gib,
                  f"base: {kib_per_gib(rs['consumed_per_gib'])}, MemTotal "
                  f"+{rs['memtotal_gain'] // KIB} KiB; series: "
                  f"{kib_per_gib(r1['consumed_per_gib'])}")
