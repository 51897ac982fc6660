"""virtio-mem: Big Block and Sub Block Mode round trips, sizes that split
blocks, memory-less NUMA nodes and the auto-movable policy."""

import statistics

from .. import measure, model
from ..measure import GIB, KIB, MIB
from ..vm import VMError
from .base import VMEM_APPEND, check_console, kib_per_gib, scenario

# The longest scenarios take smaller sizes on the debug pass (about 3x
# slower in TCG)
ROUNDTRIP_SIZES = {"*": {"gib": 64, "cycles": 10}, "debug": {"gib": 16, "cycles": 3}}


def vmem_unplug_busy(vm, res, name, base, b0, dev="vm0"):
    """Grow to 2 GiB, let userspace hold 4 blocks offline and fill 1 GiB of
    tmpfs, then ask for 0: the driver takes what it can.  Whatever is left,
    the device's plugged size must be what the guest shows: the MemTotal it
    gained plus the memmap of the blocks that are left.  Then release."""
    bs = measure.block_size(vm)
    measure.virtio_mem_grow(vm, dev, 2 * GIB, base)
    new = sorted(measure.linked_blocks(vm) - set(b0))
    held = new[:4]
    measure.set_blocks_state(vm, held, "offline")
    vm.run("mkdir -p /busy && mount -t tmpfs -o size=1200m busy /busy && "
           "dd if=/dev/zero of=/busy/fill bs=1M count=1024 2>&1 | tail -1", timeout=300)
    measure.request_virtio_mem(vm, dev, 0)
    for _ in range(3):
        plugged = measure.settle_virtio_mem(vm, dev)
        info = measure.meminfo(vm)
        left = measure.linked_blocks(vm) - set(b0)
        if measure.virtio_mem_size(vm, dev) == plugged:
            break
    shown = info["MemTotal"] - base["MemTotal"] + len(left) * model.memmap_bytes(bs)
    res.check(f"{name}: unplug while busy stops short (1 GiB held)", plugged >= 512 * MIB,
              f"device {plugged // MIB} MiB plugged")
    res.check(f"{name}: blocks held offline are unplugged first",
              not (set(held) & left), f"{len(set(held) & left)} of {len(held)} still there")
    res.check(f"{name}: device and guest agree while busy", plugged == shown,
              f"device {plugged // KIB} KiB, guest {shown // KIB} KiB "
              f"(MemTotal {(info['MemTotal'] - base['MemTotal']) // KIB:+d} KiB, "
              f"{len(left)} blocks)")
    vm.run("rm /busy/fill && umount /busy")
    now, gain, _, secs = measure.virtio_mem_grow(vm, dev, 0, base)
    res.check(f"{name}: released, shrinks to 0 plugged, MemTotal as before", gain == 0,
              f"{gain // KIB:+d} KiB, {secs:.1f}s")


def grow_checked(vm, res, name, size):
    """Grow vm0 from nothing to `size`, the guest onlining what comes:
    MemTotal grows by exactly the usable share, boot memory pays <= 64
    KiB per GiB.  Returns (block size, snapshot before, blocks before,
    {new block: state}, seconds)."""
    bs = measure.block_size(vm)
    base = measure.settled(vm)
    b0 = measure.linked_blocks(vm)
    _, gain, consumed, secs = measure.virtio_mem_grow(vm, "vm0", size, base)
    want = model.usable_bytes(size, bs, "1")
    res.check(f"{name}: MemTotal grows by exactly {want // MIB} MiB", gain == want,
              f"grew {gain // MIB} MiB in {secs:.1f}s")
    res.check(f"{name}: boot memory consumed <= 64 KiB per GiB",
              consumed <= 64 * size // GIB * KIB, kib_per_gib(consumed / (size / GIB)))
    states = measure.blocks(vm)
    return bs, base, b0, {b: s for b, s in states.items() if b not in b0}, secs


def vmem_roundtrip(ctx, res, name, append, devices):
    """A 256 MiB guest grows to 64 GiB and back through virtio-mem with
    every block in ZONE_MOVABLE, then 10 cycles, then unplug while busy
    (16 GiB and 3 cycles on the debug pass: ROUNDTRIP_SIZES)."""
    size, cycles = ctx.size("gib") * GIB, ctx.size("cycles")
    with ctx.vm(name, append, virtio_mem=devices) as vm:
        bs, base, b0, new, secs = grow_checked(vm, res, name, size)
        plugged = measure.virtio_mem_size(vm, "vm0")
        res.check(f"{name}: the device reports {size // GIB} GiB plugged", plugged == size,
                  f"{plugged // MIB} MiB after {secs:.1f}s")
        movable = [b for b, s in new.items()
                   if s["state"] == "online" and s["zones"] == ["Movable"]]
        res.check(f"{name}: every added block online in ZONE_MOVABLE",
                  len(new) == size // bs and len(movable) == len(new),
                  f"{len(movable)} of {len(new)} blocks")
        now, gain, _, secs = measure.virtio_mem_grow(vm, "vm0", 0, base)
        res.check(f"{name}: shrinks back to 0 plugged, MemTotal as before", gain == 0,
                  f"{gain // KIB:+d} KiB, {secs:.1f}s")
        first = None
        worst = 0
        for i in range(cycles):
            measure.virtio_mem_grow(vm, "vm0", 8 * GIB, base)
            now, gain, _, _ = measure.virtio_mem_grow(vm, "vm0", 0, base)
            if first is None:
                first = now
            if now["MemTotal"] != first["MemTotal"]:
                worst = max(worst, 2 * MIB)
            worst = max(worst, abs(now["Free"] - first["Free"]))
        res.check(f"{name}: {cycles} grow/shrink cycles of 8 GiB leak nothing",
                  worst <= MIB and now["MemTotal"] == base["MemTotal"],
                  f"MemTotal {now['MemTotal'] - base['MemTotal']:+d} B, free memory drifts "
                  f"at most {worst / KIB:.0f} KiB")
        plugged = measure.virtio_mem_size(vm, "vm0")
        res.check(f"{name}: device and guest agree on 0 plugged", plugged == 0 and
                  not (set(measure.linked_blocks(vm)) - set(b0)), f"device {plugged}")
        skip = ctx.declared_skip(f"{name}: unplug while busy")
        if skip:
            res.skip(f"{name}: unplug while busy", skip)
        else:
            vmem_unplug_busy(vm, res, name, base, b0)
        check_console(res, name, vm)


def busy_skip(name):
    """The skip vmem_roundtrip makes on the debug pass: the driver unplugs
    every block it can empty, so the busy guest ends at its OOM edge; with
    the debug kernel's larger footprint the OOM killer once took the agent
    (CI, 2026-11-26)."""
    return (("debug",), f"{name}: unplug while busy",
            "an unplug that meets 1 GiB of tmpfs leaves the debug kernel too little memory "
            "to answer")


@scenario("vmem-bbm", "virtio-mem Big Block Mode, =1, online_movable: 256 MiB grows to "
                      "64 GiB and back, 10 cycles, unplug while busy",
          sizes=ROUNDTRIP_SIZES, skips=[busy_skip("vmem-bbm")], topics=("virtio-mem-bbm",))
def sc_vmem_bbm(ctx, res):
    vmem_roundtrip(ctx, res, "vmem-bbm", VMEM_APPEND + " virtio_mem.force_bbm=1",
                   [{"id": "vm0", "size": "64G"}])


@scenario("vmem-sbm", "virtio-mem Sub Block Mode (2 MiB subblocks), =1, online_movable: "
                      "256 MiB grows to 64 GiB and back, 10 cycles, unplug while busy",
          sizes=ROUNDTRIP_SIZES, skips=[busy_skip("vmem-sbm")], topics=("virtio-mem-sbm",))
def sc_vmem_sbm(ctx, res):
    vmem_roundtrip(ctx, res, "vmem-sbm", VMEM_APPEND, [{"id": "vm0", "size": "64G"}])


FALLBACK_MSG = "memmap on memory not used"


@scenario("vmem-sbm-odd", "virtio-mem SBM, =1: sizes that do not fill memory blocks, "
                          "and 4 MiB subblocks (larger than the memmap)",
          topics=("virtio-mem-sbm",))
def sc_vmem_sbm_odd(ctx, res):
    name = "vmem-sbm-odd"
    with ctx.vm(name, VMEM_APPEND, virtio_mem=[{"id": "vm0", "size": "4G"}]) as vm:
        bs = measure.block_size(vm)
        memmap = model.memmap_bytes(bs)
        base = measure.settled(vm)
        b0 = measure.linked_blocks(vm)
        for mib in (300, 130, 2, 258, 0):
            size = mib * MIB
            try:
                now, gain, _, secs = measure.virtio_mem_grow(vm, "vm0", size, base, timeout=120)
            except VMError as e:
                res.fail(f"{name}: {mib} MiB reached", str(e))
                break
            left = len(measure.linked_blocks(vm) - set(b0))
            # each block left holds its memmap (2 MiB) or keeps it elsewhere
            ok = (size - left * memmap <= gain <= size and (size - gain) % memmap == 0
                  and (left == 0) == (size == 0))
            res.check(f"{name}: {mib} MiB reached, the guest shows it",
                      ok, f"MemTotal {gain // KIB:+d} KiB in {left} blocks, {secs:.1f}s")
        res.check(f"{name}: the memmap fits 2 MiB subblocks: nothing said",
                  FALLBACK_MSG not in vm.console())
        check_console(res, name, vm)
    name = "vmem-sbm-4m"
    with ctx.vm(name, VMEM_APPEND, virtio_mem=[{"id": "vm0", "size": "4G",
                                                 "block_size": "4M"}]) as vm:
        base = measure.settled(vm)
        now, gain, consumed, secs = measure.virtio_mem_grow(vm, "vm0", GIB, base)
        res.check(f"{name}: 4 MiB subblocks: the memmap stays elsewhere, MemTotal + 1 GiB",
                  gain == GIB and consumed >= 15 * MIB, f"MemTotal {gain // KIB:+d} KiB, "
                  f"{kib_per_gib(consumed)} of boot memory")
        measure.virtio_mem_grow(vm, "vm0", 0, base)
        measure.virtio_mem_grow(vm, "vm0", GIB, base)
        said = [line for line in vm.console().splitlines() if FALLBACK_MSG in line]
        res.check(f"{name}: says so once", len(said) == 1,
                  said[0].strip() if len(said) == 1 else f"{len(said)} times")
        check_console(res, name, vm)


def node1_cost(ctx, res, mode, path, size):
    """Add `size` to memory-less NUMA node 1 by `path` ('dimm' or 'vmem'):
    what it takes from node 0, and what node 1 gains."""
    name = f"node1-{path}-mode{mode}"
    append = f"memory_hotplug.memmap_on_memory={mode} memhp_default_state=online_movable"
    devices = [{"id": "vm0", "size": f"{size // GIB}G", "node": 1}] if path == "vmem" else []
    with ctx.vm(name, append, numa_nodes=2, virtio_mem=devices) as vm:
        bs = measure.block_size(vm)
        res.check(f"{name}: node 1 starts without memory", measure.managed_bytes(vm, 1) == 0,
                  f"{measure.managed_bytes(vm, 1) // KIB} KiB")
        b0 = measure.linked_blocks(vm)
        free0 = statistics.median(measure.free_bytes(vm, 0) for _ in range(3))
        if path == "dimm":
            measure.add_dimm(vm, "d1", size, node=1)
            measure.wait_new_blocks(vm, b0, size // bs)
        else:
            measure.set_virtio_mem(vm, "vm0", size)
        # the blocks are onlined (memhp_default_state) after they are linked
        measure.wait_guest(vm, lambda: measure.managed_bytes(vm, 1) >= size * 63 // 64, 60)
        taken = free0 - statistics.median(measure.free_bytes(vm, 0) for _ in range(3))
        gained = measure.managed_bytes(vm, 1)
        want = model.usable_bytes(size, bs, mode)
        res.check(f"{name}: node 1 MemTotal is {want // MIB} MiB", gained == want,
                  f"{gained // KIB} KiB")
        if mode == "1":
            budget = ctx.size("kib_per_gib")
            res.check(f"{name}: takes <= {budget} KiB per GiB from node 0",
                      taken <= budget * KIB * size // GIB, f"{taken // KIB} KiB")
        else:
            memmap = size // 64
            res.check(f"{name}: the memmap ({memmap // MIB} MiB) comes from node 0",
                      taken >= memmap * 9 // 10, f"{taken // KIB} KiB")
        check_console(res, name, vm)


@scenario("numa", "memory-less NUMA node 1: a pc-dimm and virtio-mem, 4 GiB with =0 "
                  "and 16 GiB with =1: where the memmap comes from",
          # lock debugging makes every block's device, kobject and kernfs
          # nodes bigger: measured 280 KiB for 4 GiB on the debug kernel
          sizes={"*": {"kib_per_gib": 64}, "debug": {"kib_per_gib": 96}},
          topics=("virtio-mem-sbm",))
def sc_numa(ctx, res):
    # =1 is judged per GiB, and a 4 GiB add was too small for that: what
    # node 0 gives beyond the memmap does not all grow with the size (node
    # 1's first memory, the ACPI memory device): 160-232 KiB with =0, and
    # 176-276 KiB with =1 against a budget of 256 (276 failed CI on
    # 2026-12-05).  At 16 GiB those one-off costs weigh a quarter as much.
    # =0 stays at 4 GiB: its 64 MiB memmap has to fit node 0.
    for path in ("dimm", "vmem"):
        for mode, size in (("0", 4 * GIB), ("1", 16 * GIB)):
            node1_cost(ctx, res, mode, path, size)


@scenario("vmem-auto-movable", "virtio-mem SBM, =1, online_policy=auto-movable: "
                               "4 GiB in, then ask for 0", topics=("virtio-mem-sbm",))
def sc_vmem_auto_movable(ctx, res):
    name = "vmem-auto-movable"
    size = 4 * GIB
    append = ("memory_hotplug.memmap_on_memory=1 memhp_default_state=online "
              "memory_hotplug.online_policy=auto-movable")
    with ctx.vm(name, append, virtio_mem=[{"id": "vm0", "size": "4G"}]) as vm:
        bs, base, b0, new, _ = grow_checked(vm, res, name, size)
        zones = {}
        for s in new.values():
            zone = s["zones"][0] if s["state"] == "online" else "offline"
            zones[zone] = zones.get(zone, 0) + 1
        res.check(f"{name}: every block online, the policy picks the zones",
                  "offline" not in zones and len(new) == size // bs and zones.get("Movable", 0) > 0,
                  ", ".join(f"{k}: {v}" for k, v in sorted(zones.items())))
        # kernel-zone blocks may hold unmovable allocations: what stays
        # plugged must be what the guest shows, and no Movable block stays
        measure.request_virtio_mem(vm, "vm0", 0)
        plugged = measure.settle_virtio_mem(vm, "vm0", quiet=15)
        info = measure.meminfo(vm)
        states = measure.blocks(vm)
        left = [b for b in states if b not in b0]
        zones = sorted({states[b]["zones"][0] if states[b]["state"] == "online" else "offline"
                        for b in left})
        shown = info["MemTotal"] - base["MemTotal"] + len(left) * model.memmap_bytes(bs)
        res.check(f"{name}: shrink to 0 leaves no Movable block behind", "Movable" not in zones,
                  f"{len(left)} blocks left ({', '.join(zones) or 'none'}), "
                  f"{plugged // MIB} MiB plugged")
        res.check(f"{name}: device and guest agree after the shrink", plugged == shown,
                  f"device {plugged // KIB} KiB, guest {shown // KIB} KiB")
        check_console(res, name, vm)


