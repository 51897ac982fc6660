"""Reliability: many add/remove cycles leave nothing behind, a guest that
has almost no memory left can still grow, and bad input changes nothing."""

import os
import statistics
import time

from .. import measure, model, parsers
from ..measure import GIB, KIB, MIB, wait_blocks
from ..passes import ARM64_PASSES
from ..vm import VMError
from .base import VMEM_APPEND, check_console, free_compared, quarantine_skip, scenario

SOAK_SIZE = 256 * MIB          # two memory blocks per cycle
ZONES = ("online_kernel", "online_movable")


# ---- soak ---------------------------------------------------------------
def dimm_cycle(vm, n, zone):
    """Two memory blocks: 256 MiB on x86-64, 1 GiB with arm64's 64 KiB
    pages."""
    dev = f"s{n % 2}"
    b0 = measure.linked_blocks(vm)
    bs = measure.block_size(vm)
    measure.add_dimm(vm, dev, 2 * bs)
    new = measure.wait_new_blocks(vm, b0, 2, timeout=60)
    online_offline(vm, new, zone)
    measure.remove_dimm(vm, dev, timeout=60)
    wait_blocks(vm, b0)


def vmem_cycle(vm, n, zone):
    b0 = measure.linked_blocks(vm)
    measure.set_virtio_mem(vm, "vm0", SOAK_SIZE, timeout=60, stall=30)
    new = sorted(wait_blocks(vm, b0, SOAK_SIZE // measure.block_size(vm)))
    online_offline(vm, new, zone)
    measure.set_virtio_mem(vm, "vm0", 0, timeout=60, stall=30)
    wait_blocks(vm, b0)


def online_offline(vm, ids, zone):
    measure.set_blocks_state(vm, ids, zone, timeout=60)
    # a block in ZONE_NORMAL may have taken an unmovable allocation since
    # it was onlined; the kernel then refuses to offline it (EBUSY), which
    # is correct: retry after the page is freed, a bounded number of times
    for _ in range(20):
        try:
            measure.set_blocks_state(vm, ids, "offline", timeout=60)
            return
        except VMError:
            vm.run("echo 3 > /proc/sys/vm/drop_caches; sleep 0.5")
    raise VMError(f"blocks {ids} ({zone}) could not be offlined in 20 tries")


BREAKDOWN_CMD = "cat /proc/meminfo; echo @slab; cat /proc/slabinfo 2>/dev/null; true"


def breakdown(vm):
    """Where kernel memory is: the meminfo fields of parsers.KERNEL_FIELDS
    and, where the kernel has /proc/slabinfo (debug kernels), every cache."""
    info, _, slab = vm.run(BREAKDOWN_CMD).partition("@slab")
    mem = parsers.parse_meminfo(info)
    return ({k: mem[k] for k in parsers.KERNEL_FIELDS if k in mem},
            parsers.parse_slabinfo(slab))


def explain_drift(vm, ref, end, drift):
    """Write what grew between the reference and the end (meminfo fields,
    slab caches) to breakdown.txt; returns a short summary."""
    fields = parsers.growth(ref[0], end[0], top=len(parsers.KERNEL_FIELDS))
    caches = parsers.growth(ref[1], end[1], top=10)
    with open(os.path.join(vm.rundir, "breakdown.txt"), "w") as f:
        f.write(f"free memory drift {drift // KIB:+d} KiB from the first cycle to the last\n")
        f.write("meminfo fields that grew (KiB):\n")
        f.writelines(f"  {k} {d // KIB:+d}\n" for k, d in fields)
        f.write("slab caches that grew (KiB):\n" if ref[1] else "no /proc/slabinfo\n")
        f.writelines(f"  {k} {d // KIB:+d}\n" for k, d in caches)
    parts = [f"{k} {d // KIB:+d}" for k, d in fields if k not in ("Slab", "SReclaimable")][:3]
    parts += [f"slab {k} {d // KIB:+d}" for k, d in caches[:3]]
    return ", ".join(parts) + " KiB" if parts else "nothing in meminfo or slabinfo grew"


def soak(res, name, vm, cycle, cycles):
    """Run `cycles` cycles; from the first one on, MemTotal must stay
    identical and free memory within 1 MiB (more with larger pages:
    measure.free_slack()).  Returns seconds per cycle."""
    t0 = time.monotonic()
    slack, within = measure.free_slack(vm.page_size), measure.free_slack_text(vm.page_size)
    ref, worst, bad, done, drifts, stopped = None, 0, [], 0, [], ""
    for n in range(cycles):
        try:
            cycle(vm, n, ZONES[n % 2])
        except VMError as e:
            stopped = f"cycle {n + 1}: {str(e).splitlines()[0]}"
            break
        done += 1
        now = measure.snapshot(vm)
        if ref is None:
            ref, ref_breakdown = now, breakdown(vm)
            continue
        drift = now["Free"] - ref["Free"]
        drifts.append(drift)
        worst = max(worst, abs(drift))
        if now["MemTotal"] != ref["MemTotal"]:
            bad.append(f"cycle {n + 1}: MemTotal "
                       f"{(now['MemTotal'] - ref['MemTotal']) // KIB:+d} KiB")
        if abs(drift) > slack and vm.exact_free:
            bad.append(f"cycle {n + 1}: free memory {drift // KIB:+d} KiB")
    per = (time.monotonic() - t0) / max(done, 1)
    grew = explain_drift(vm, ref_breakdown, breakdown(vm), drifts[-1]) if drifts else ""
    # the drift after every cycle, to tell a slow leak from noise
    with open(os.path.join(vm.rundir, "drift.txt"), "w") as f:
        f.write("".join(f"{i + 2} {d // KIB}\n" for i, d in enumerate(drifts)))
    # a cache that fills up (slab, stack depot) bends the whole-run trend;
    # a leak keeps the second half's trend where it was
    trend = model.slope(drifts) * 100 / KIB
    late = model.slope(drifts[len(drifts) // 2:]) * 100 / KIB
    res.check(f"{name}: {cycles} cycles of add, online ({' / '.join(ZONES)}), offline, remove",
              done == cycles, f"{done} done, {per:.1f}s per cycle" +
              (f"; {stopped}" if stopped else ""))
    # judged on the cycles that ran, so that a cycle that failed counts once,
    # in the check above; with fewer than two there is nothing to compare
    if done >= 2 and not vm.exact_free:
        res.check(f"{name}: after the first cycle MemTotal identical at every cycle", not bad,
                  "; ".join(bad[:3]) or f"free memory {drifts[-1] // KIB:+d} KiB at the end, "
                  f"not compared; grew: {grew}")
        free_compared(res, vm, f"{name}: free memory within {within} at every cycle")
    elif done >= 2:
        res.check(f"{name}: after the first cycle MemTotal identical and free memory "
                  f"within {within} at every cycle", not bad,
                  "; ".join(bad[:3]) or
                  f"largest free-memory drift {worst // KIB} KiB, "
                  f"{drifts[-1] // KIB:+d} KiB at the end, trend {trend:+.0f} KiB per "
                  f"100 cycles ({late:+.0f} over the second half; "
                  f"{os.path.relpath(os.path.join(vm.rundir, 'drift.txt'))}); grew: {grew}"
                  + ("" if done == cycles else f"; over the {done} cycles that ran"))
    check_console(res, name, vm)
    return per


@scenario("soak", "debug kernel, memmap on memory: N cycles of add, online (kernel and movable "
                  "in turn), offline, remove for pc-dimm and virtio-mem (make soak: 1000)",
          passes=("debug", "kasan"),
          skips=[quarantine_skip(f"soak/{p}: free memory within 1 MiB at every cycle")
                 for p in ("dimm", "vmem")], topics=("pageblock",))
def sc_soak(ctx, res):
    name = "soak"
    append = ("memory_hotplug.memmap_on_memory=1 memhp_default_state=offline "
              "debug_pagealloc=on")
    for path, cycle, kw in (("dimm", dimm_cycle, {}),
                            ("vmem", vmem_cycle, {"virtio_mem": [{"id": "vm0", "size": "4G"}]})):
        sub = f"{name}/{path}"
        # 3 GiB: QEMU puts 1 GiB of it above 4 GiB, so ZONE_NORMAL exists at
        # boot.  In a guest whose RAM is all below 4 GiB the first block
        # onlined to a kernel zone creates ZONE_NORMAL, every kernel
        # allocation then prefers it, and the block can never be offlined
        # again (correctly: it holds page tables and slab).
        with ctx.vm(f"{name}-{path}", append, mem_mib=3072,
                    **kw) as vm:
            soak(res, sub, vm, cycle, ctx.soak_cycles)


CYCLES = 100


@scenario("cycles", f"memmap on memory: {CYCLES} cycles of a two-block pc-dimm add, online "
                    "(kernel and movable in turn), offline, remove: no leak, no splat",
          # the debug kernel runs the soak scenario instead; the KASAN pass
          # (a debug kernel, about 3x slower) runs 20, and so do the arm64
          # passes.  arm64's ZONE_NORMAL starts at 4 GiB and its RAM at 1
          # GiB: 4 GiB of RAM for 1 GiB of ZONE_NORMAL at boot
          passes=("main", "nothp", "kasan") + ARM64_PASSES,
          sizes={"*": {"cycles": CYCLES, "mem_mib": 3072}, "kasan": {"cycles": 20},
                 **{p: {"cycles": 20, "mem_mib": 4096} for p in ARM64_PASSES}},
          skips=[quarantine_skip("cycles/dimm: free memory within 1 MiB at every cycle")],
          topics=("pageblock", "arm64"))
def sc_cycles(ctx, res):
    """The soak's pc-dimm cycle on the kernel of the pass, for the memmap
    layouts of its configuration (on the nothp kernel: a memmap that ends
    inside a pageblock).  The debug kernel has the soak scenario."""
    name = "cycles"
    append = "memory_hotplug.memmap_on_memory=1 memhp_default_state=offline"
    # 3 GiB for ZONE_NORMAL at boot, as in the soak (arm64: 4 GiB)
    with ctx.vm(name, append, mem_mib=ctx.size("mem_mib")) as vm:
        # the mode is set and the kernel does not say it has no effect
        mode = vm.run("cat /sys/module/memory_hotplug/parameters/memmap_on_memory").strip()
        res.check(f"{name}: a block hot-added now hosts its memmap",
                  mode == "Y" and "has no effect" not in vm.console(), f"mode {mode}")
        soak(res, f"{name}/dimm", vm, dimm_cycle, ctx.size("cycles"))


# ---- offlining moves what uses the pageblock the memmap ends in ----------
KPF_LRU = 1 << 5
KPF_BUDDY = 1 << 10
BUSY_DIR = "/busy"


def page_flags(vm, pfn, count):
    """/proc/kpageflags of `count` pages from `pfn`."""
    out = vm.run(f"dd if=/proc/kpageflags bs=8 skip={pfn} count={count} 2>/dev/null | "
                 "od -An -tu8 -v")
    flags = [int(x) for x in out.split()]
    if len(flags) != count:
        raise VMError(f"read {len(flags)} page flags of {count} at pfn {pfn:#x}")
    return flags


@scenario("busy-offline", "memmap on memory: a block in ZONE_MOVABLE whose first pageblock "
                          "holds busy tmpfs pages after the memmap offlines, the pages migrate "
                          "intact; the memmap pages stay",
          passes=("main", "debug", "nothp") + ARM64_PASSES,
          # 512 MiB: offlining migrates the block's ~126 MiB into DMA32,
          # which must still have that much free after the fill spilled
          # over (with 256 MiB the debug kernel's footprint left 2 MiB:
          # offlining waited on); arm64's 64 KiB pages make the block 512
          # MiB, a single pageblock
          sizes={"*": {"mem_mib": 512}, **{p: {"mem_mib": 1536} for p in ARM64_PASSES}},
          topics=("pageblock", "arm64"))
def sc_busy_offline(ctx, res):
    name = "busy-offline"
    append = "memory_hotplug.memmap_on_memory=1 memhp_default_state=offline"
    page = ctx.page_size
    with ctx.vm(name, append, mem_mib=ctx.size("mem_mib")) as vm:
        r = measure.hotadd(vm, measure.block_size(vm), zone="online_movable")
        (block,) = r["blocks"]
        bs = r["block_size"]
        pfn = block * bs // page
        memmap = int(vm.run(f"cat {measure.SYS_MEM}/memory{block}/memmap_on_memory_pages"))
        pb = 1 << measure.pageblock_order(vm)
        want = model.selfhosted_pages(bs, "1", page, model.memmap_pmd(page))
        res.check(f"{name}: the block hosts its memmap", memmap == want,
                  f"{memmap} pages, pageblock {pb} pages")
        # ZONE_MOVABLE is the first choice of tmpfs pages: more than the
        # block holds fills it, down to its watermarks
        fill = (bs - memmap * page) // MIB + 32
        vm.run(f"mkdir -p {BUSY_DIR} && mount -t tmpfs -o size=100% busy {BUSY_DIR} && "
               f"dd if=/dev/urandom of={BUSY_DIR}/f bs=1M count={fill} 2>/dev/null && "
               f"md5sum {BUSY_DIR}/f > /md5", timeout=300)
        # the pages after the memmap up to the end of its pageblock (the
        # whole first pageblock after it if the memmap fills pageblocks)
        first = pfn + memmap
        last = (first // pb + 1) * pb
        flags = page_flags(vm, first, last - first)
        busy = sum(1 for f in flags if f & KPF_LRU)
        res.check(f"{name}: tmpfs pages in use after the memmap, in the pageblock it ends in",
                  busy >= (last - first) // 8, f"{busy} of {last - first} on the LRU")
        # in use by the kernel: never handed to the page allocator
        memmap_flags = page_flags(vm, pfn, memmap)
        res.check(f"{name}: the memmap pages are neither free nor on the LRU",
                  not any(f & (KPF_LRU | KPF_BUDDY) for f in memmap_flags))
        t0 = time.monotonic()
        rc, out = vm.run(f"echo offline > {measure.SYS_MEM}/memory{block}/state", timeout=300,
                         check=False)
        res.check(f"{name}: the busy block offlines", rc == 0,
                  f"{time.monotonic() - t0:.1f}s" if rc == 0 else out.strip()[-200:])
        state = vm.run(f"cat {measure.SYS_MEM}/memory{block}/state").strip()
        res.check(f"{name}: the block is offline", state == "offline", state)
        res.check(f"{name}: the tmpfs data is intact after migration",
                  vm.run("md5sum -c /md5 >/dev/null 2>&1 && echo same || echo differs")
                  .strip() == "same")
        vm.run(f"rm -f {BUSY_DIR}/f")
        after = measure.remove(vm, r["blocks"], offline=False) if state == "offline" else None
        if after is not None:
            res.check(f"{name}: MemTotal back to its value before the add",
                      after["MemTotal"] == r["memtotal_before"],
                      f"{(after['MemTotal'] - r['memtotal_before']) // KIB:+d} KiB")
        check_console(res, name, vm)


# ---- hot-add into a guest that has almost no memory left ----------------
HOG_DIR = "/hog"


def fill_memory(vm, share=0.96, rounds=4):
    """Fill tmpfs (no swap: it stays) until `share` of MemTotal is in use;
    returns the share in use. MemAvailable counts reclaimable caches and
    slab by estimate, so one dd can land short of the target (CI: 95.0 %
    wanted >= 95 % on the debug kernel): top up, a bounded number of times."""
    vm.run(f"mkdir -p {HOG_DIR} && mount -t tmpfs -o size=100% hog {HOG_DIR}")
    for i in range(rounds):
        info = measure.meminfo(vm)
        want_free = int(info["MemTotal"] * (1 - share))
        fill = info["MemAvailable"] - want_free
        if fill < 64 * KIB:
            break
        vm.run(f"dd if=/dev/zero of={HOG_DIR}/fill{i} bs=64k count={fill // (64 * KIB)} "
               f"2>&1 | tail -1", timeout=300)
    info = measure.meminfo(vm)
    return 1 - info["MemAvailable"] / info["MemTotal"]


@scenario("lowmem", "16 GiB pc-dimm and 16 GiB virtio-mem added while the guest uses >= 95 % "
                    "of its memory: with memmap on memory both succeed and online",
          topics=("admin",))
def sc_lowmem(ctx, res):
    name = "lowmem"
    size = 16 * GIB
    append = "memory_hotplug.memmap_on_memory=1 memhp_default_state=online_movable"
    for path in ("dimm", "vmem"):
        sub = f"{name}/{path}"
        kw = {"virtio_mem": [{"id": "vm0", "size": "16G"}]} if path == "vmem" else {}
        with ctx.vm(f"{name}-{path}", append, **kw) as vm:
            bs = measure.block_size(vm)
            used = fill_memory(vm)
            res.check(f"{sub}: the guest uses >= 95 % of its memory before the add",
                      used >= 0.95, f"{used * 100:.1f} % in use (MemAvailable)")
            before = measure.settled(vm)
            b0 = measure.linked_blocks(vm)
            try:
                if path == "dimm":
                    measure.add_dimm(vm, "d0", size)
                    measure.wait_new_blocks(vm, b0, size // bs, timeout=300)
                else:
                    measure.set_virtio_mem(vm, "vm0", size, timeout=600)
                wait_blocks(vm, b0, size // bs, timeout=120)
                ok = ""
            except VMError as e:
                ok = str(e).splitlines()[0]
            new = measure.linked_blocks(vm) - set(b0)
            # the blocks are onlined (memhp_default_state) after they are linked
            try:
                measure.wait_online(vm, new, timeout=120, poll=1)
            except VMError:
                pass
            states = measure.blocks(vm)
            online = sum(1 for b in new if states[b]["state"] == "online")
            res.check(f"{sub}: the 16 GiB add succeeds and every block onlines",
                      not ok and online == size // bs, ok or f"{online} of {len(new)} online")
            gain = measure.meminfo(vm)["MemTotal"] - before["MemTotal"]
            want = model.usable_bytes(size, bs, "1")
            res.check(f"{sub}: MemTotal grows by exactly {want // MIB} MiB", gain == want,
                      f"{gain // KIB:+d} KiB")
            check_console(res, sub, vm)


# ---- bad input ------------------------------------------------------------
# (what, guest command) pairs, each must fail and change nothing
def bad_sysfs_writes(block, addr):
    blk = f"{measure.SYS_MEM}/memory{block}"
    return [
        ("state 'bogus'", f"echo bogus > {blk}/state"),
        ("state 'online_movablex'", f"echo online_movablex > {blk}/state"),
        ("state ''", f"echo > {blk}/state"),
        ("online '2'", f"echo 2 > {blk}/online"),
        ("online 'maybe'", f"echo maybe > {blk}/online"),
        ("memmap_on_memory_pages (read-only)", f"echo 0 > {blk}/memmap_on_memory_pages"),
        ("mode 'bogus'", "echo bogus > /sys/module/memory_hotplug/parameters/memmap_on_memory"),
        ("probe 'zero' (not a number)", f"echo zero > {measure.PROBE}"),
        ("probe unaligned 0x10000001", f"echo 0x10000001 > {measure.PROBE}"),
        ("probe of boot RAM 0x0", f"echo 0x0 > {measure.PROBE}"),
        ("probe of the block already added", f"echo {addr:#x} > {measure.PROBE}"),
        ("probe beyond the physical address space", f"echo 0x7ffffff8000000 > {measure.PROBE}"),
    ]


def guest_state(vm):
    """What a refused write must leave as it was: the snapshot's MemTotal,
    blocks and /proc/iomem, every block's state and zones, the mode."""
    snap = measure.snapshot(vm)
    return {"MemTotal": snap["MemTotal"], "blocks": snap["blocks"], "iomem": snap["iomem"],
            "zones": measure.blocks(vm), "mode": measure.param(vm, "memmap_on_memory")}


@scenario("bad-input", "invalid writes to memoryN/state, memoryN/online, the mode parameter and "
                       "probe, and bad virtio-mem requests from the host: an error, no change, "
                       "no splat", passes=("main", "debug", "kasan"), topics=("admin",))
def sc_bad_input(ctx, res):
    name = "bad-input"
    low = ctx.boot_mib(256)
    append = f"mem={low}M memory_hotplug.memmap_on_memory=1 memhp_default_state=offline"
    with ctx.vm(name, append, mem_mib=low + 384,
                virtio_mem=[{"id": "vm0", "size": "1G"}]) as vm:
        addr = low * MIB
        rc, out = vm.run(f"echo {addr:#x} > {measure.PROBE}", check=False)
        if rc:
            res.fail(f"{name}: probe a block to write to", out.strip())
            return
        block = addr // measure.block_size(vm)
        measure.set_virtio_mem(vm, "vm0", 128 * MIB)
        before = guest_state(vm)
        for what, cmd in bad_sysfs_writes(block, addr):
            rc, out = vm.run(cmd, check=False)
            now = guest_state(vm)
            changed = [k for k in before if before[k] != now[k]]
            res.check(f"{name}: {what} is refused and changes nothing", rc != 0 and not changed,
                      f"{'refused' if rc else 'accepted'}: {out.strip() or '-'}"
                      + (f"; changed {', '.join(changed)}" if changed else ""))
        # the host asks virtio-mem for what the device cannot give
        for what, value in (("unaligned (1 MiB + 4 KiB)", MIB + 4 * KIB),
                            ("larger than the device (2 GiB)", 2 * GIB),
                            ("negative (-1)", -1)):
            try:
                measure.request_virtio_mem(vm, "vm0", value)
                err = ""
            except Exception as e:  # QMP error reply
                err = str(e)
            time.sleep(2)
            now = guest_state(vm)
            plugged = measure.virtio_mem_size(vm, "vm0")
            changed = [k for k in before if before[k] != now[k]]
            res.check(f"{name}: virtio-mem request {what} is refused and changes nothing",
                      err and not changed and plugged == 128 * MIB,
                      f"{err.splitlines()[0] if err else 'accepted'}; plugged {plugged >> 20} MiB"
                      + (f"; changed {', '.join(changed)}" if changed else ""))
        check_console(res, name, vm)


# ---- virtio-mem SBM: +-2 MiB requests around a size that splits a block --
CHURN_REQUESTS = 100
BLOCK_INODES = f"cd {measure.SYS_MEM} && ls -1di memory*"


def device_blocks(vm, ids):
    """{block: sysfs inode} of the blocks in `ids` that exist: a block
    removed and added back between two looks comes back with a new inode."""
    words = vm.run(BLOCK_INODES).split()
    got = {int(name[6:]): int(ino) for ino, name in zip(words[::2], words[1::2])}
    return {b: ino for b, ino in got.items() if b in ids}


def churn_request(vm, size, ids, seen, quiet=1, timeout=60, poll=0.3):
    """Ask vm0 for `size`; wait until its plugged size and the device's
    blocks have not changed for `quiet` seconds with the size reached (or
    one 2 MiB subblock above, best effort), for 5 x `quiet` otherwise, or
    `timeout`.  `seen`: the last look at the blocks (device_blocks), taken
    before the request (the guest may be done before a look after it).
    Returns (plugged, last look, blocks removed, blocks added, seconds),
    the blocks counted over every look."""
    measure.request_virtio_mem(vm, "vm0", size)
    start = time.monotonic()
    st = {"plugged": None, "moved": start, "seen": seen, "removed": 0, "added": 0}

    def settled():
        plugged, now_blocks = measure.virtio_mem_size(vm, "vm0"), device_blocks(vm, ids)
        gone = {b for b in st["seen"] if now_blocks.get(b) != st["seen"][b]}
        new = {b for b in now_blocks if st["seen"].get(b) != now_blocks[b]}
        st.update(removed=st["removed"] + len(gone), added=st["added"] + len(new),
                  seen=now_blocks)
        now = time.monotonic()
        if plugged != st["plugged"] or gone or new:
            st.update(plugged=plugged, moved=now)
            return False
        return now - st["moved"] >= (quiet if size <= plugged <= size + 2 * MIB else 5 * quiet)
    time.sleep(poll)
    measure.wait_guest(vm, settled, timeout - poll, poll=poll)
    return st["plugged"], st["seen"], st["removed"], st["added"], time.monotonic() - start


def memmap_elsewhere(vm, ids):
    """Blocks of `ids` whose memmap is not on them (in boot memory)."""
    return sum(1 for pages in measure.block_memmap(vm, ids).values() if pages == 0)


def boot_free(vm, reads=3):
    """Free memory outside ZONE_MOVABLE (the device's blocks are all there),
    the median of a few reads."""
    samples = []
    for _ in range(reads):
        samples.append(measure.free_bytes(vm, movable=False))
        time.sleep(0.2)
    return statistics.median(samples)


def churn(vm, res, name, base, ids, requests):
    """Grow vm0 to `base`, then `requests` requests alternating
    base - 2 MiB and base; check what they removed, added and cost."""
    plugged, seen, _, _, secs = churn_request(vm, base, ids, device_blocks(vm, ids),
                                              timeout=300)
    sub = f"{name}/{base // MIB}"
    ids_start = set(seen)
    if not res.check(f"{sub}: grows to {base // MIB} MiB", plugged >= base and ids_start,
                     f"plugged {plugged / MIB:g} MiB in {len(ids_start)} blocks, {secs:.1f}s"):
        return
    elsewhere0, free0 = memmap_elsewhere(vm, ids_start), boot_free(vm)
    removed = added = exact = above = 0
    bad, t0 = [], time.monotonic()
    for n in range(requests):
        size = base - 2 * MIB if n % 2 == 0 else base
        plugged, seen, gone, new, secs = churn_request(vm, size, ids, seen)
        removed, added = removed + gone, added + new
        exact += plugged == size
        above += plugged == size + 2 * MIB
        if not size <= plugged <= size + 2 * MIB:
            bad.append(f"request {n + 1} ({size // MIB} MiB): {plugged / MIB:g} MiB "
                       f"after {secs:.0f}s")
    per = (time.monotonic() - t0) / requests
    ids_end = set(seen)
    elsewhere1, free1 = memmap_elsewhere(vm, ids_end), boot_free(vm)
    res.check(f"{sub}: {requests} requests of {(base - 2 * MIB) // MIB} and "
              f"{base // MIB} MiB remove and add no block", removed + added == 0,
              f"{removed} removed, {added} added; {per:.1f}s per request")
    res.check(f"{sub}: no block without its memmap appeared", elsewhere1 <= elsewhere0,
              f"{elsewhere0} of {len(ids_start)} blocks keep it in boot memory at the start, "
              f"{elsewhere1} of {len(ids_end)} at the end")
    res.check(f"{sub}: free boot memory drops <= 512 KiB", free0 - free1 <= 512 * KIB,
              f"{(free1 - free0) / KIB:+.0f} KiB ({free0 // KIB:.0f} -> {free1 // KIB:.0f} KiB, "
              "outside ZONE_MOVABLE)")
    res.check(f"{sub}: every request settles at its size or 2 MiB above", not bad,
              f"{exact} exactly, {above} 2 MiB above, {len(bad)} neither"
              + (f": {'; '.join(bad[:3])}" if bad else ""))


@scenario("vmem-sbm-churn", "virtio-mem SBM, =1, online_movable: 100 requests of -2 MiB and "
                            "back around 4 MiB, 20 around 260 and 300 MiB: no block removed "
                            "and re-added, no boot memory spent, each request met",
          sizes={"*": {"requests": None}, "debug": {"requests": 10}}, topics=("virtio-mem-sbm",),
          # make test: the debug pass's 10 requests (1 minute); all of them
          # (4 minutes) in make test-full
          full_only=("main",))
def sc_vmem_sbm_churn(ctx, res):
    name = "vmem-sbm-churn"
    with ctx.vm(name, VMEM_APPEND, virtio_mem=[{"id": "vm0", "size": "4G"}]) as vm:
        bs = measure.block_size(vm)
        addr = vm.qmp.execute("qom-get", path="/machine/peripheral/vm0", property="memaddr")
        ids = set(range(addr // bs, (addr + 4 * GIB) // bs))
        # 4 MiB: the only block holds its memmap and one subblock, so no
        # other block can give the 2 MiB (the version before issue 15
        # removed it, unplugged its memmap too, and plugged 2 MiB back into
        # a new block with its memmap in boot memory); 260 MiB: the same
        # last block behind two full ones; 300 MiB: a fuller last block
        for base, n in ((4 * MIB, CHURN_REQUESTS), (2 * bs + 4 * MIB, 20), (300 * MIB, 20)):
            churn(vm, res, name, base, ids, n if ctx.size("requests") is None
                  else ctx.size("requests"))
        check_console(res, name, vm)
