"""Scenarios in places where the series could make the base kernel worse:
a hot-add with memmap_on_memory=0 while the page cache fills memory, and
virtio-mem memory in kernel zones.  Each checks what the series must do;
with a stock kernel given (make test-full) it also runs on the untouched
base, records its outcome next to ours and checks that ours is no worse."""

import os
import subprocess
import tempfile
import time

from .. import measure, model
from ..measure import GIB, KIB, MIB
from ..vm import VMError
from .base import check_console, scenario

# files that the guest reads to fill its page cache: more than its memory
PAGECACHE_FILES = 5
PAGECACHE_FILE_MIB = 64


def pagecache_image(ctx):
    """An ext2 image with PAGECACHE_FILES files of random data, made once
    next to the initramfs (build/guest/), read-only for the guests."""
    path = os.path.join(os.path.dirname(os.path.abspath(ctx.initrd)), "pagecache.img")
    if os.path.exists(path):
        return path
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tempfile.TemporaryDirectory(dir=os.path.dirname(path)) as tmp:
        data = os.path.join(tmp, "data")
        os.mkdir(data)
        for i in range(PAGECACHE_FILES):
            with open(os.path.join(data, f"f{i}"), "wb") as f:
                for _ in range(PAGECACHE_FILE_MIB):
                    f.write(os.urandom(MIB))
        size = PAGECACHE_FILES * PAGECACHE_FILE_MIB + 32
        img = os.path.join(tmp, "pagecache.img")
        subprocess.run(["mke2fs", "-q", "-F", "-t", "ext2", "-d", data, img, f"{size}M"],
                       check=True, stdout=subprocess.DEVNULL,
                       env=dict(os.environ, PATH="/usr/sbin:/sbin:" +
                                            os.environ.get("PATH", "")))
        os.rename(img, path)
    return path


def fill_pagecache(vm):
    """Mount the disk, read every file once, then keep reading them in the
    background: the page cache takes all memory it can get and kswapd
    keeps free memory near the watermarks, the steady state of a machine
    that serves files.  Returns MemFree, Cached and the kernel zones' high
    watermarks, in bytes, read with the reader running."""
    vm.run("mkdir -p /mnt/pc && { grep -q ' /mnt/pc ' /proc/mounts || "
           "mount -t ext2 -o ro /dev/vda /mnt/pc; } && cat /mnt/pc/f* >/dev/null", timeout=300)
    vm.run("(while :; do cat /mnt/pc/f* >/dev/null; done) </dev/null >/dev/null 2>&1 & "
           "echo $! >/tmp/pagecache.pid")
    # kswapd may have reclaimed past the watermarks when the reader starts
    # (seen in a make test run: 16 MiB free): wait up to 30 s for the page
    # cache to fill memory again; the caller checks the state it got
    state = {}

    def full():
        info = measure.meminfo(vm)
        state.update(MemFree=info["MemFree"], Cached=info["Cached"], high=high_watermarks(vm))
        return pagecache_full(state)
    time.sleep(2)
    measure.wait_guest(vm, full, 28, poll=2)
    return state


def high_watermarks(vm):
    """Bytes: the high watermarks of the kernel zones."""
    zones = measure.zoneinfo(vm)
    return sum(z.get("high", 0) for (_, name), z in zones.items() if name != "Movable") * 4096


def pagecache_full(state):
    return state["Cached"] >= 96 * MIB and state["MemFree"] <= state["high"] + 8 * MIB


def pagecache_state_ok(res, name, state):
    """The state the scenario is about: page cache fills memory, free memory
    is near the watermarks."""
    return res.check(f"{name}: page cache fills memory before the add",
                     pagecache_full(state),
                     f"Cached {state['Cached'] // MIB} MiB, MemFree {state['MemFree'] // KIB} KiB, "
                     f"high watermarks {state['high'] // KIB} KiB")


def pagecache_dimm(vm, size):
    """Add a `size` pc-dimm and wait until all its blocks are online."""
    bs = measure.block_size(vm)
    before = measure.meminfo(vm)
    b0 = measure.linked_blocks(vm)
    measure.add_dimm(vm, "d0", size)
    new = measure.wait_new_blocks(vm, b0, size // bs, timeout=120)
    measure.wait_online(vm, new)
    gain = measure.meminfo(vm)["MemTotal"] - before["MemTotal"]
    if gain != size:
        raise VMError(f"MemTotal grew by {gain // KIB} KiB, not {size // KIB}")
    return f"added, {len(new)} blocks online, MemTotal +{gain // MIB} MiB"


def pagecache_vmem(vm, size):
    """Grow the virtio-mem device by `size`; its blocks come online movable."""
    before = measure.meminfo(vm)
    measure.set_virtio_mem(vm, "vm0", size, timeout=180, stall=45)
    time.sleep(1)
    gain = measure.meminfo(vm)["MemTotal"] - before["MemTotal"]
    if gain != size:
        raise VMError(f"plugged, but MemTotal grew by {gain // KIB} KiB, not {size // KIB}")
    return f"plugged and online, MemTotal +{gain // MIB} MiB"


# (label, how, size, extra boot parameters, virtio-mem devices)
PAGECACHE_CASES = (
    ("128 MiB pc-dimm", pagecache_dimm, 128 * MIB, "", ()),
    ("1 GiB pc-dimm", pagecache_dimm, GIB, "", ()),
    ("virtio-mem +1 GiB", pagecache_vmem, GIB, "", ({"id": "vm0", "size": "1G"},)),
)


def pagecache_case(ctx, kernel, label, how, size, append, devices, name):
    """One add into a fresh guest whose page cache fills memory.  Returns
    (ok, what happened, the page cache state before the add, vm)."""
    image = pagecache_image(ctx)
    vm = ctx.vm(name, "memory_hotplug.memmap_on_memory=0 memhp_default_state=online_movable "
                + append, kernel=kernel, virtio_mem=devices, disks=[image])
    with vm:
        state = fill_pagecache(vm)
        try:
            what = how(vm, size)
            ok = vm.run("kill $(cat /tmp/pagecache.pid) && echo alive",
                        check=False)[1].strip() == "alive"
        except (VMError, OSError) as e:
            what = str(e).splitlines()[0]
            said = [ln.strip() for ln in vm.step_console().splitlines() if "memmap" in ln]
            ok, what = False, what + (f"; guest: {said[0]}" if said else "")
    return ok, what, state, vm


@scenario("pagecache-add", "memmap_on_memory=0 while the page cache fills memory: a 128 MiB "
                           "and a 1 GiB pc-dimm and virtio-mem +1 GiB are added and onlined "
                           "(the stock kernel, if given, in the same guests)",
          passes=("main", "debug", "nothp"), topics=("admin",))
def sc_pagecache_add(ctx, res):
    name = "pagecache-add"
    for label, how, size, append, devices in PAGECACHE_CASES:
        tag = label.split()[0] + "-" + label.split()[-1].replace("+", "")
        ok, what, state, vm = pagecache_case(ctx, ctx.kernel, label, how, size, append, devices,
                                             f"{name}-{tag}")
        if not pagecache_state_ok(res, f"{name}: {label}", state):
            continue
        res.check(f"{name}: {label} added and onlined with =0", ok, what)
        check_console(res, f"{name}: {label}", vm)
        if not ctx.stock_kernel:
            continue
        s_ok, s_what, s_state, s_vm = pagecache_case(ctx, ctx.stock_kernel, label, how, size,
                                                     append, devices, f"{name}-{tag}-stock")
        res.check(f"{name}: {label}: no worse than the stock kernel", ok or not s_ok,
                  f"ours: {what}; stock: {s_what} (Cached {s_state['Cached'] // MIB} MiB, "
                  f"MemFree {s_state['MemFree'] // KIB} KiB)")


# Slab that a shrinker frees fills memory: negative dentries of the
# read-only ext2 disk (tmpfs keeps no negative dentries), made with the
# shell's builtin test, no fork per lookup.  Then a pc-dimm whose memmap
# needs more than free memory and the page cache together: the base kernel
# shrinks the dentry cache and adds it.  An earlier admin 9/9 estimated what
# is free or reclaimable and refused it: with SLUB_TINY (the main config)
# no slab is accounted as reclaimable, and SReclaimable stays 0.
SLAB_DIMM = 4 * GIB          # 64 MiB of memmap
SLAB_FILL = ("cd /mnt/pc && i=0; while [ $i -lt {n} ]; do [ -e n$i ]; i=$((i + 1)); done; "
             "echo done")


def fill_slab(vm, batch=100000, rounds=20):
    """Make negative dentries in batches until slab is at least 96 MiB and
    free memory and the page cache together are at most half the memmap
    of the DIMM.  Returns the state."""
    vm.run("mkdir -p /mnt/pc && { grep -q ' /mnt/pc ' /proc/mounts || "
           "mount -t ext2 -o ro /dev/vda /mnt/pc; }", timeout=60)
    state = {}
    for r in range(rounds):
        vm.run(SLAB_FILL.replace("n$i", f"n{r}x$i").format(n=batch), timeout=600)
        info = measure.meminfo(vm)
        state = {"MemFree": info["MemFree"], "Slab": info["Slab"],
                 "SReclaimable": info["SReclaimable"], "Cached": info["Cached"],
                 "high": high_watermarks(vm)}
        if slab_full(state):
            break
    return state


def slab_full(state):
    """Slab fills memory: the memmap of the DIMM needs at least twice what
    is free or cached, so the add goes through only if the dentry cache
    gives memory back.  Free memory does not reach the high watermarks:
    kswapd, woken at the low ones, reclaims past the high ones (boosted
    after fragmentation), and the fill settled at 14-15 MiB free with
    2.5 MiB of high watermarks on the nothp kernel (2026-12-06, twice)."""
    return (state["Slab"] >= 96 * MIB
            and state["MemFree"] + state["Cached"] <= SLAB_DIMM // 64 // 2)


def slab_case(ctx, kernel, name):
    image = pagecache_image(ctx)
    vm = ctx.vm(name, "memory_hotplug.memmap_on_memory=0 memhp_default_state=online_movable",
                kernel=kernel, disks=[image])
    with vm:
        state = fill_slab(vm)
        try:
            what = pagecache_dimm(vm, SLAB_DIMM)
            ok = vm.run("echo alive", check=False)[1].strip() == "alive"
        except (VMError, OSError) as e:
            what = str(e).splitlines()[0]
            said = [ln.strip() for ln in vm.step_console().splitlines() if "memmap" in ln]
            ok, what = False, what + (f"; guest: {said[0]}" if said else "")
    return ok, what, state, vm


def slab_state_text(state):
    return (f"Slab {state.get('Slab', 0) // MIB} MiB (SReclaimable "
            f"{state.get('SReclaimable', 0) // MIB} MiB), MemFree "
            f"{state.get('MemFree', 0) // KIB} KiB, Cached {state.get('Cached', 0) // MIB} MiB, "
            f"high watermarks {state.get('high', 0) // KIB} KiB")


@scenario("slab-add", "memmap_on_memory=0 while slab (negative dentries) fills memory: a "
                      "4 GiB pc-dimm, whose 64 MiB memmap fits only once the dentry cache "
                      "shrinks, is added and onlined (the stock kernel, if given, too)",
          passes=("main", "debug", "nothp"), topics=("admin",))
def sc_slab_add(ctx, res):
    name = "slab-add"
    ok, what, state, vm = slab_case(ctx, ctx.kernel, name)
    if res.check(f"{name}: slab fills memory, free memory and page cache are at most half the "
                 "memmap", slab_full(state), slab_state_text(state)):
        res.check(f"{name}: 4 GiB pc-dimm added and onlined with =0", ok, what)
    check_console(res, name, vm)
    if ctx.stock_kernel:
        s_ok, s_what, s_state, _ = slab_case(ctx, ctx.stock_kernel, f"{name}-stock")
        res.check(f"{name}: no worse than the stock kernel", ok or not s_ok,
                  f"ours: {what}; stock: {s_what} ({slab_state_text(s_state)})")


# virtio-mem in kernel zones: grow, then ask for 0.  Memory in a kernel zone
# may hold unmovable allocations, so the driver may keep some blocks; it
# must give back as much as the base does.  What a block left behind costs
# is its plugged memory plus its memmap wherever that is: inside the block
# with memmap on memory, in boot memory otherwise (the base's virtio-mem).
VMEM_KERNEL_SIZE = 2 * GIB
# the base leaves one 128 MiB block of 16 plugged (2 GiB, BBM, 'online'),
# some allocation of the kernel's is in it; without a stock kernel to
# compare with, the series must give back all but two blocks (the series
# at 23 patches gave back 0 % and 81 % with 4 MiB pageblocks)
VMEM_KERNEL_MIN_SHARE = 0.875
VMEM_KERNEL_CASES = (
    ("bbm-online", "memhp_default_state=online virtio_mem.force_bbm=1"),
    ("sbm-online", "memhp_default_state=online"),
    ("bbm-auto-movable", "memhp_default_state=online memory_hotplug.online_policy=auto-movable "
                         "virtio_mem.force_bbm=1"),
    ("sbm-auto-movable", "memhp_default_state=online memory_hotplug.online_policy=auto-movable"),
)


def vmem_kernel_case(ctx, kernel, case, append, name):
    """Grow to VMEM_KERNEL_SIZE with the blocks onlined by the kernel's
    policy, ask for 0, and see how much comes back.  Returns a dict."""
    with ctx.vm(name, "memory_hotplug.memmap_on_memory=1 " + append, kernel=kernel,
                virtio_mem=[{"id": "vm0", "size": "2G"}]) as vm:
        base = measure.snapshot(vm)
        b0 = measure.linked_blocks(vm)
        measure.set_virtio_mem(vm, "vm0", VMEM_KERNEL_SIZE, timeout=300, stall=60)
        states = measure.blocks(vm)
        zones = {}
        for b in states:
            if b not in b0:
                z = states[b]["zones"][0] if states[b]["state"] == "online" else "offline"
                zones[z] = zones.get(z, 0) + 1
        measure.request_virtio_mem(vm, "vm0", 0)
        plugged = measure.settle_virtio_mem(vm, "vm0", quiet=10)
        info = measure.meminfo(vm)
        left = sorted(measure.linked_blocks(vm) - set(b0))
        # pages that hold the memmap inside these blocks (admin 6/9's file)
        inside = sum(n or 0 for n in measure.block_memmap(vm, left).values()) * 4096
        shown = info["MemTotal"] - base["MemTotal"] + inside
        # what the blocks left still cost: their plugged memory, and the
        # memmap that the base keeps for them in boot memory (ours keeps
        # it inside the blocks, counted in the plugged size already)
        kept = plugged + len(left) * model.memmap_bytes(measure.block_size(vm)) - inside
        alive = vm.run("echo alive", check=False)[1].strip() == "alive"
        return {"zones": zones, "plugged": plugged, "left": len(left), "shown": shown,
                "kept": kept, "share": 1 - kept / VMEM_KERNEL_SIZE, "alive": alive, "vm": vm}


def share_text(r):
    zones = ", ".join(f"{k} {v}" for k, v in sorted(r["zones"].items()))
    return (f"gave back {r['share'] * 100:.1f} %: {r['plugged'] // MIB} MiB still plugged in "
            f"{r['left']} blocks, {r['kept'] // MIB} MiB kept counting their memmap "
            f"(grown into: {zones})")


def median_case(ctx, kernel, case, append, name, repeats):
    """vmem_kernel_case `repeats` times; the run with the median share."""
    runs = [vmem_kernel_case(ctx, kernel, case, append, f"{name}-{i}" if repeats > 1 else name)
            for i in range(repeats)]
    return sorted(runs, key=lambda r: r["share"])[len(runs) // 2], runs


@scenario("vmem-kernel", "virtio-mem, =1, blocks onlined to kernel zones ('online', "
                         "auto-movable), BBM and SBM: grow to 2 GiB, ask for 0, compare "
                         "what comes back (with the stock kernel, if given)",
          # its kernel-zone unplug depends on the pageblock size, not on
          # what the debug kernel checks
          passes=("main", "nothp"), topics=("virtio-mem-sbm",))
def sc_vmem_kernel(ctx, res):
    name = "vmem-kernel"
    # which block a kernel allocation pins is chance: against the stock
    # kernel, compare the medians of 3 runs each
    repeats = 3 if ctx.stock_kernel else 1
    for case, append in VMEM_KERNEL_CASES:
        label = f"{name}: {case}"
        r, runs = median_case(ctx, ctx.kernel, case, append, f"{name}-{case}", repeats)
        res.check(f"{label}: grows to 2 GiB, every block online",
                  all("offline" not in x["zones"] and sum(x["zones"].values()) > 0
                      for x in runs),
                  ", ".join(f"{k} {v}" for k, v in sorted(r["zones"].items())))
        res.check(f"{label}: gives back >= {VMEM_KERNEL_MIN_SHARE * 100:.1f} % on a shrink to 0",
                  all(x["share"] >= VMEM_KERNEL_MIN_SHARE for x in runs),
                  "; ".join(share_text(x) for x in runs))
        res.check(f"{label}: device and guest agree after the shrink",
                  all(x["plugged"] == x["shown"] and x["alive"] for x in runs),
                  "; ".join(f"device {x['plugged'] // KIB} KiB, guest {x['shown'] // KIB} KiB"
                            for x in runs))
        for i, x in enumerate(runs):
            check_console(res, f"{label}" + (f" (run {i + 1})" if repeats > 1 else ""), x["vm"])
        if ctx.stock_kernel:
            s, _ = median_case(ctx, ctx.stock_kernel, case, append, f"{name}-{case}-stock",
                               repeats)
            res.check(f"{label}: gives back at least what the stock kernel does (medians "
                      f"of {repeats})", r["share"] >= s["share"],
                      f"ours {share_text(r)}; stock {share_text(s)}")


# CMA: cma_alloc() with no alignment asks alloc_contig_range() for ranges
# that start inside a pageblock, which pageblock 1/4 teaches to tell from ranges
# that follow a self-hosted memmap.  That question is asked on any memory,
# whatever memmap_on_memory says; CMA areas are boot memory.  Fill the guest
# with tmpfs first so that the CMA area holds movable pages, then ask for
# more than the area has free: those pages have to be migrated out of it.
CMA_APPEND = "cma=64M"
CMA_MEM_MIB = 512
# tmpfs data in chunks until the area holds CMA_HOLD_MIB of it, or until one
# more chunk could leave the memory available outside the area (MemAvailable
# minus CmaFree: MemAvailable has the high watermarks and lowmem reserves
# taken off already, but counts the area's free pages, which migration out
# of the area cannot use) smaller than what the area holds: that is where it
# has to migrate to.  A fill that stopped on MemAvailable alone left the
# KASAN guest 7-14 MiB outside the area, under its 22 MiB min watermark, and
# the OOM killer took the agent (2026-12-05).
CMA_CHUNK_MIB = 4
# while the guest is far from that, larger chunks: a quarter of the room
# left, no more than the area could still take below CMA_HOLD_MIB, at most
# this (the KASAN guest wrote 150 chunks of 4 MiB before its area started
# to fill: 15 minutes in TCG)
CMA_CHUNK_MAX_MIB = 16
CMA_HOLD_MIB = 16
CMA_ALLOCS = 256
# after the single pages, sizes that end inside a pageblock, then as many
# allocations of CMA_LARGE pages as it takes to ask for CMA_MARGIN_MIB more
# than the area has free (at most CMA_LARGE_MAX: the whole request fits in
# the 64 MiB area)
CMA_SIZES = (3, 5, 7, 129, 511, 513)
CMA_LARGE = 2047
CMA_LARGE_MAX = 7
CMA_MARGIN_MIB = 2
CMA_CASES = (("mode0", "memory_hotplug.memmap_on_memory=0"),
             ("mode1", "memory_hotplug.memmap_on_memory=1"))


def cma_sizes(cma_free):
    """The sizes in pages to allocate after the single pages: the odd ones,
    then enough large ones that the total exceeds `cma_free` bytes by the
    margin."""
    sizes = list(CMA_SIZES)
    while len(sizes) < len(CMA_SIZES) + CMA_LARGE_MAX and (
            (CMA_ALLOCS + sum(sizes)) * 4 * KIB <= cma_free + CMA_MARGIN_MIB * MIB):
        sizes.append(CMA_LARGE)
    return sizes


def fill_cma(vm, area_bytes):
    """Write tmpfs chunks until the CMA area holds CMA_HOLD_MIB, or until
    one more chunk could leave too little outside the area for migrating
    what it holds; returns the number of chunks and the last /proc/meminfo."""
    chunks = 0
    for i in range(256):
        info = measure.meminfo(vm)
        held = area_bytes - info.get("CmaFree", 0)
        outside = info["MemAvailable"] - info.get("CmaFree", 0)
        room = outside - held - 2 * CMA_CHUNK_MIB * MIB
        if held >= CMA_HOLD_MIB * MIB or room < 0:
            break
        fit = min(room // 4, CMA_HOLD_MIB * MIB - held) // MIB
        mib = max(CMA_CHUNK_MIB, min(CMA_CHUNK_MAX_MIB, fit // CMA_CHUNK_MIB * CMA_CHUNK_MIB))
        vm.run(f"dd if=/dev/urandom of=/cmafill/f{i} bs=1M count={mib} 2>/dev/null",
               timeout=120)
        chunks += 1
    if chunks:
        vm.run("md5sum /cmafill/f* > /cmafill.md5", timeout=300)
    return chunks, measure.meminfo(vm)


def cma_case(ctx, kernel, append, name):
    """Single-page and odd-sized cma_alloc()s through debugfs from a CMA
    area full of tmpfs pages; returns a dict of what happened."""
    with ctx.vm(name, f"{CMA_APPEND} {append}", kernel=kernel,
                mem_mib=ctx.boot_mib(CMA_MEM_MIB)) as vm:
        vm.run("grep -q ' /sys/kernel/debug ' /proc/mounts || "
               "mount -t debugfs none /sys/kernel/debug")
        area = vm.run("ls -d /sys/kernel/debug/cma/*/ 2>/dev/null | head -n 1").strip().rstrip("/")
        out = {"area": area, "vm": vm}
        if not area:
            out["error"] = "no CMA area in /sys/kernel/debug/cma"
            return out
        out["count"] = int(vm.run(f"cat {area}/count").strip())
        vm.run("mkdir -p /cmafill && mount -t tmpfs -o size=100% cmafill /cmafill")
        out["chunks"], info = fill_cma(vm, out["count"] * 4 * KIB)
        out["cma_free_before"] = info.get("CmaFree", 0)
        # what the migrations out of the area can go to (diagnostics)
        out["outside_before"] = info["MemAvailable"] - out["cma_free_before"]
        out["high"] = high_watermarks(vm)
        if not out["chunks"]:
            out["error"] = (f"no room for tmpfs data: {out['outside_before'] // KIB} KiB "
                            f"available outside the area")
            return out
        out["sizes"] = cma_sizes(out["cma_free_before"])
        out["want"] = CMA_ALLOCS + len(out["sizes"])
        out["want_pages"] = CMA_ALLOCS + sum(out["sizes"])
        t0 = time.monotonic()
        # single pages, then sizes that end inside a pageblock: every start
        # after the first is inside a pageblock
        script = (f"ok=0; i=0; while [ $i -lt {CMA_ALLOCS} ]; do "
                  f"echo 1 > {area}/alloc 2>/dev/null && ok=$((ok + 1)); i=$((i + 1)); done; "
                  f"for n in {' '.join(map(str, out['sizes']))}; do echo $n > {area}/alloc "
                  f"2>/dev/null && ok=$((ok + 1)); done; echo $ok")
        out["ok"] = int(vm.run(script, timeout=600).strip())
        out["seconds"] = time.monotonic() - t0
        out["used"] = int(vm.run(f"cat {area}/used").strip())
        vm.run(f"echo {out['used']} > {area}/free", timeout=300)
        out["used_after_free"] = int(vm.run(f"cat {area}/used").strip())
        out["intact"] = vm.run("md5sum -c /cmafill.md5 >/dev/null 2>&1 && echo same || "
                               "echo differs").strip() == "same"
        return out


@scenario("cma", "cma_alloc() of single pages and odd sizes, ranges that start inside a "
                 "pageblock, from a CMA area full of tmpfs pages, with =0 and =1: all succeed "
                 "and free (the stock kernel, if given, in the same guests)",
          passes=("main", "debug", "nothp", "kasan"), topics=("pageblock",))
def sc_cma(ctx, res):
    for tag, append in CMA_CASES:
        name = f"cma/{tag}"
        r = cma_case(ctx, ctx.kernel, append, f"cma-{tag}")
        if "error" in r:
            res.fail(f"{name}: a CMA area", r["error"])
            continue
        res.check(f"{name}: the CMA area held tmpfs pages before the allocations",
                  r["cma_free_before"] < r["count"] * 4 * KIB,
                  f"CmaFree {r['cma_free_before'] // KIB} KiB of {r['count'] * 4} KiB; "
                  f"{r['outside_before'] // KIB} KiB available outside it, high watermarks "
                  f"{r['high'] // KIB} KiB, {r['chunks']} chunks written")
        res.check(f"{name}: the request exceeds what the area has free by "
                  f"{CMA_MARGIN_MIB} MiB",
                  r["want_pages"] * 4 * KIB > r["cma_free_before"] + CMA_MARGIN_MIB * MIB,
                  f"{r['want_pages'] * 4} KiB asked for ({len(r['sizes']) - len(CMA_SIZES)} of "
                  f"{CMA_LARGE} pages), CmaFree {r['cma_free_before'] // KIB} KiB")
        res.check(f"{name}: every cma_alloc() succeeds", r["ok"] == r["want"],
                  f"{r['ok']} of {r['want']}, {r['used']} pages used, {r['seconds']:.1f}s")
        res.check(f"{name}: the pages allocated are the pages asked for",
                  r["used"] == r["want_pages"], f"{r['used']} of {r['want_pages']}")
        # no swap: tmpfs pages in the area can only be migrated out of it
        res.check(f"{name}: more was allocated than was free: tmpfs pages were migrated",
                  r["used"] * 4 * KIB > r["cma_free_before"],
                  f"{r['used'] * 4} KiB allocated, CmaFree was {r['cma_free_before'] // KIB} KiB")
        res.check(f"{name}: every page goes back", r["used_after_free"] == 0,
                  f"{r['used_after_free']} still used")
        res.check(f"{name}: the tmpfs data is intact after migration", r["intact"])
        check_console(res, name, r["vm"])
        if not ctx.stock_kernel:
            continue
        s = cma_case(ctx, ctx.stock_kernel, append, f"cma-{tag}-stock")
        res.check(f"{name}: no worse than the stock kernel (allocations that failed)",
                  "error" not in s and r["want"] - r["ok"] <= s["want"] - s["ok"],
                  f"ours {r['ok']} of {r['want']} in {r['seconds']:.1f}s; stock "
                  + (s.get("error") or f"{s['ok']} of {s['want']} in {s['seconds']:.1f}s"))
