"""The kernels and the passes, as data: the one place that says how each
kernel is built, where it lands, and what a pass on it means.  The
Makefile builds through `python3 -m harness build NAME`."""

import os
from typing import NamedTuple

from .paths import BUILD
from .vm import TARGETS
INITRD = os.path.join(BUILD, "guest", "initrd.cpio")
PEERS_INITRD = os.path.join(BUILD, "guest", "initrd-peers.cpio")
# the same image for arm64 guests: Debian's arm64 busybox-static
# (scripts/initramfs.sh -a arm64, make initramfs-arm64)
INITRDS = {"x86_64": INITRD, "arm64": os.path.join(BUILD, "guest", "initrd-arm64.cpio")}


class Kernel(NamedTuple):
    """configs: the fragments of configs/ merged onto tinyconfig, in order;
    tree: the kernel tree under build/ (stock: the untouched base, which
    lacks the series' own options, hence built with --partial); arch: the
    architecture (vm.TARGETS) it is built for and boots on; page_size: its
    base page size in bytes."""
    configs: tuple
    tree: str = "linux"
    doc: str = ""
    arch: str = "x86_64"
    page_size: int = 4096


KERNELS = {
    "main": Kernel(("main",), doc="the main test kernel"),
    "debug": Kernel(("main", "debug"), doc="lockdep, DEBUG_VM, fault injection"),
    "nothp": Kernel(("main", "nothp"), doc="no THP and HUGETLB: 4 MiB pageblocks"),
    "kasan": Kernel(("main", "debug", "kasan"), doc="the debug kernel with generic KASAN and "
                                                    "kmemleak"),
    "stock": Kernel(("main",), tree="stock", doc="the base without the series, main config"),
    "stock-nothp": Kernel(("main", "nothp"), tree="stock",
                          doc="the base without the series, nothp config"),
}
# arm64, cross-built, one kernel per page size, and the base with each
ARM64_PAGE_KIB = (4, 16, 64)
for _kib in ARM64_PAGE_KIB:
    KERNELS[f"arm64-{_kib}k"] = Kernel(("arm64", f"arm64-{_kib}k"), arch="arm64",
                                       page_size=_kib << 10,
                                       doc=f"arm64 with {_kib} KiB pages")
    KERNELS[f"stock-arm64-{_kib}k"] = Kernel(("arm64", f"arm64-{_kib}k"), tree="stock",
                                             arch="arm64", page_size=_kib << 10,
                                             doc=f"the base, arm64 with {_kib} KiB pages")


def kernel_dir(name):
    return os.path.join(BUILD, "out", name)


def kernel_image(name):
    """Where `make kernel-NAME` (harness build NAME) puts the kernel."""
    return os.path.join(kernel_dir(name), TARGETS[KERNELS[name].arch]["image"])


def kernel_config(name):
    return os.path.join(kernel_dir(name), ".config")


# where kunit.py builds the kernel of the kunit-tool scenario
KUNIT_BUILD_DIR = kernel_dir("kunit")


class Pass(NamedTuple):
    """One run of the scenarios on one kernel.  stock: the base with the
    same configs, which the scenarios that compare with it boot too (make
    test-full); kmemleak: scan for leaks after each scenario;
    exact_free: free memory can be compared before and after a step (not
    under KASAN: its quarantine keeps freed memory); append: boot
    parameters every guest of the pass gets; boot_scale: boot memory
    factor for the scenarios that ask for it (KASAN's shadow of what they
    online comes from memory already online); hugetlb: the kernel has THP
    and HugeTLB; pageblock_order: what the pass checks before it runs;
    base_hosts_memmap: the stock kernel with these configs puts the memmap
    of a 128 MiB block on the block with memmap_on_memory=1 (the base
    refuses where the memmap does not fill whole pageblocks); lane: where
    the pass runs when passes run side by side (harness test --lanes 2)."""
    kernel: str
    stock: str = None
    kmemleak: bool = False
    exact_free: bool = True
    append: str = ""
    boot_scale: int = 1
    hugetlb: bool = True
    pageblock_order: int = None
    base_hosts_memmap: bool = True
    lane: int = 0
    doc: str = ""


PASSES = {
    "main": Pass("main", stock="stock", doc="the main config"),
    # lockdep, DEBUG_VM and DEBUG_LIST reports fail the scenarios through
    # their console checks
    "debug": Pass("debug", doc="lock, list and VM debugging and fault injection; the longest "
                               "scenarios use smaller sizes (about 3x slower in TCG)"),
    # 4 MiB pageblocks, twice the 2 MiB memmap of a 128 MiB block
    "nothp": Pass("nothp", stock="stock-nothp", hugetlb=False, pageblock_order=10,
                  base_hosts_memmap=False,
                  doc="without THP and HUGETLB: the memmap of a block ends inside a "
                      "pageblock"),
    # 4-level paging under KASAN: with LA57 (-cpu max has it), an interrupt
    # while identify_cpu() has cleared the boot CPU's feature bits sees
    # 4-level KASAN_SHADOW_START, and the base reports a false
    # "wild-memory-access" at boot, once in some tens of boots (upstream's
    # "kasan: Fix false-positive wild-memory-access on x86 under 5-level
    # paging", LKML June 2026).  The other passes keep 5-level paging.
    # its own lane in make test-full: the longest pass (81 minutes on
    # 2026-12-04) next to all the others
    "kasan": Pass("kasan", kmemleak=True, exact_free=False, append="no5lvl", boot_scale=2,
                  lane=1,
                  doc="generic KASAN and kmemleak, small adds only"),
}
# arm64 under TCG, one pass per page size, booted through UEFI for ACPI's
# DIMM hotplug.  Pageblocks are as large as a PMD (THP and HUGETLB): 2 MiB,
# 32 MiB, and with 64 KiB pages 512 MiB, the whole memory block.  The base
# hosts the memmap with 4 KiB pages only (its generic PMD rule).
for _kib, _order in ((4, 9), (16, 11), (64, 13)):
    PASSES[f"arm64-{_kib}k"] = Pass(
        f"arm64-{_kib}k", stock=f"stock-arm64-{_kib}k", pageblock_order=_order,
        base_hosts_memmap=_kib == 4,
        doc=f"arm64 (virt, UEFI, ACPI) with {_kib} KiB pages")
ARM64_PASSES = tuple(f"arm64-{kib}k" for kib in ARM64_PAGE_KIB)
# make test runs these; make test-full all of PASSES, with the stock kernels
TEST_PASSES = ("main", "debug", "nothp")


def kernel_arch(name):
    return KERNELS[name].arch


def pass_kernel(pass_name):
    """The Kernel a pass boots."""
    return KERNELS[PASSES[pass_name].kernel]
