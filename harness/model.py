"""What the kernel should do, in numbers: the memmap arithmetic the tests
hold the guest to.  Pure functions."""

PAGE_SIZE = 4096
STRUCT_PAGE_SIZE = 64          # x86_64, with or without MEMCG (16-byte aligned)
PMD_SIZE = 2 << 20


def div_round_up(a, b):
    return -(-a // b)


def memmap_bytes(block_bytes, page_size=PAGE_SIZE):
    """Bytes of struct page needed to describe one memory block."""
    return block_bytes // page_size * STRUCT_PAGE_SIZE


def memmap_pages(block_bytes, page_size=PAGE_SIZE):
    return div_round_up(memmap_bytes(block_bytes, page_size), page_size)


def selfhosted_pages(block_bytes, mode, page_size=PAGE_SIZE, pmd_size=PMD_SIZE):
    """Pages at the start of each hot-added block that hold its memmap, as
    the series decides it (mm/memory_hotplug.c,
    mhp_memmap_on_memory_why_not()).  mode is '0', '1' or 'force'.  The
    memmap need not fill whole pageblocks, and 'force' no longer pads it:
    the pageblock size does not matter.  `pmd_size`: the PMDs the memmap
    must fill, 0 where the architecture maps it with base pages (arm64
    with 16 KiB and 64 KiB pages)."""
    if mode == "0":
        return 0
    nr = memmap_pages(block_bytes, page_size)
    if memmap_bytes(block_bytes, page_size) % page_size or nr >= block_bytes // page_size:
        return 0
    if pmd_size and memmap_bytes(block_bytes, page_size) % pmd_size:
        return 0
    return nr


def memmap_pmd(page_size=PAGE_SIZE):
    """The PMDs a self-hosted memmap must fill with the series: 2 MiB with
    4 KiB pages (x86-64, arm64: vmemmap mapped with PMDs), none with
    arm64's 16 and 64 KiB pages (base pages: topic arm64)."""
    return PMD_SIZE if page_size == 4096 else 0


def usable_bytes(size, block_bytes, mode, page_size=PAGE_SIZE, pmd_size=PMD_SIZE):
    """MemTotal gained when `size` bytes of blocks are onlined."""
    nblocks = size // block_bytes
    return size - nblocks * selfhosted_pages(block_bytes, mode, page_size, pmd_size) * page_size


def usable_floor(page_size=PAGE_SIZE):
    """The share of an added range that memmap on memory leaves usable at
    the least: all of it but the memmap, 64 bytes of every page."""
    return 1 - STRUCT_PAGE_SIZE / page_size


def mode_from_param(value):
    """/sys/module/memory_hotplug/parameters/memmap_on_memory -> mode."""
    v = value.strip()
    if v == "force":
        return "force"
    return "1" if v == "Y" else "0"


def slope(values):
    """Least-squares change per step of a series of numbers (0 for fewer
    than two): a soak's free-memory drift per cycle, leak or noise."""
    n = len(values)
    if n < 2:
        return 0.0
    mx = (n - 1) / 2
    my = sum(values) / n
    return (sum((i - mx) * (v - my) for i, v in enumerate(values)) /
            sum((i - mx) ** 2 for i in range(n)))
