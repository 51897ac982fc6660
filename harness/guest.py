"""Memory-hotplug operations on a running VM: host side (QMP) and guest side
(sysfs through the agent)."""

import time

from .parsers import (console_problems, parse_blocks, parse_meminfo,
                      parse_vmstat, parse_zoneinfo)
from .vm import VMError

SYS_MEM = "/sys/devices/system/memory"
PROBE = f"{SYS_MEM}/probe"
BLOCKS_CMD = (f'for d in {SYS_MEM}/memory*; do '
              'echo "${d##*/} $(cat $d/state) $(cat $d/valid_zones 2>/dev/null)"; done')
GIB = 1 << 30
MIB = 1 << 20
KIB = 1 << 10


def meminfo(vm):
    return parse_meminfo(vm.run("cat /proc/meminfo"))


def vmstat(vm):
    return parse_vmstat(vm.run("cat /proc/vmstat"))


def zoneinfo(vm):
    return parse_zoneinfo(vm.run("cat /proc/zoneinfo"))


def free_bytes(vm, node=None, movable=True):
    """Free memory including the per-CPU lists, with the per-CPU vmstat
    deltas folded first: MemFree alone moves by hundreds of KiB as pages
    wander between the buddy and the per-CPU lists.  Of one node if given;
    without ZONE_MOVABLE if not `movable`."""
    zones = parse_zoneinfo(vm.run("echo 1 >/proc/sys/vm/stat_refresh; cat /proc/zoneinfo"))
    return sum(z.get("free", 0) + z["pcp"] for (n, zone), z in zones.items()
               if (node is None or n == node) and (movable or zone != "Movable")) * 4096


def managed_bytes(vm, node):
    """What a node contributes to MemTotal: its zones' managed pages."""
    zones = zoneinfo(vm)
    return sum(z.get("managed", 0) for (n, _), z in zones.items() if n == node) * 4096


def blocks(vm):
    return parse_blocks(vm.run(BLOCKS_CMD))


def block_size(vm):
    return int(vm.run(f"cat {SYS_MEM}/block_size_bytes").strip(), 16)


def pageblock_order(vm):
    for line in vm.run("cat /proc/pagetypeinfo").splitlines():
        if line.startswith("Page block order:"):
            return int(line.split(":")[1])
    raise VMError("no 'Page block order' in /proc/pagetypeinfo")


def param(vm, name):
    return vm.run(f"cat /sys/module/memory_hotplug/parameters/{name}").strip()


def block_memmap(vm, ids):
    """{block: memmap_on_memory_pages} for the given blocks (None where the
    file cannot be read)."""
    out = vm.run("; ".join(f"echo {i} $(cat {SYS_MEM}/memory{i}/memmap_on_memory_pages "
                           "2>/dev/null)" for i in sorted(ids)))
    got = {}
    for line in out.splitlines():
        parts = line.split()
        if parts and parts[0].isdigit():
            got[int(parts[0])] = int(parts[1]) if len(parts) == 2 and parts[1].isdigit() else None
    return got


def set_blocks_state(vm, ids, state, timeout=600):
    """Write state ('online_movable', 'online_kernel', 'online', 'offline')
    to each block; returns guest seconds taken.  Fails on the first error."""
    if not ids:
        return 0.0
    listing = " ".join(f"memory{i}" for i in sorted(ids))
    script = (
        "read t0 _ </proc/uptime\n"
        f"for b in {listing}; do\n"
        f"  echo {state} >{SYS_MEM}/$b/state || {{ echo \"FAILED $b\"; exit 1; }}\n"
        "done\n"
        "read t1 _ </proc/uptime\n"
        'echo "SECONDS $t0 $t1"\n')
    out = vm.run(script, timeout=timeout)
    for line in out.splitlines():
        if line.startswith("SECONDS"):
            _, t0, t1 = line.split()
            return float(t1) - float(t0)
    raise VMError(f"no timing from guest: {out}")


# ---- pc-dimm ----------------------------------------------------------
def add_dimm(vm, dev, size, node=None):
    vm.begin_step()
    vm.qmp.execute("object-add", **{"qom-type": "memory-backend-ram", "id": f"mem-{dev}",
                                    "size": size, "reserve": False})
    args = {"driver": "pc-dimm", "id": dev, "memdev": f"mem-{dev}"}
    if node is not None:
        args["node"] = node
    vm.qmp.execute("device_add", **args)


ADD_FAILED = ("add_memory failed", "acpi_memory_enable_device", "adding memory failed")


# Blocks that exist and are linked to their node.  A block is linked to its
# node only after every block of the range exists, so a new block that is
# linked belongs to an add that is complete.  (Until patch 18 the block's
# nid was NUMA_NO_NODE until then, and reading its valid_zones in between
# dereferenced NODE_DATA(NUMA_NO_NODE); big-mode1 reads them on purpose.)
LINKED_CMD = (f"cd {SYS_MEM} && for d in memory*; do set -- $d/node*; "
              '[ -e "$1" ] && echo "${d#memory}"; done; true')


PRESENT_CMD = f"cd {SYS_MEM} && for d in memory*; do echo ${{d#memory}}; done"


def linked_blocks(vm):
    return {int(x) for x in vm.run(LINKED_CMD).split()}


def present_blocks(vm):
    """Blocks that exist, linked to their node or not (the link is made
    after every block of a range exists, and a failure to make it is only
    logged)."""
    return {int(x) for x in vm.run(PRESENT_CMD).split()}


def wait_new_blocks(vm, before, count, timeout=300, poll=0.5):
    """Wait until `count` blocks beyond the set `before` exist and are linked
    to their node (the add is complete).  Returns the new block ids.
    Raises VMError if the guest reports that adding failed, dies, or the
    blocks do not appear in time."""
    deadline = time.monotonic() + timeout
    while True:
        new = linked_blocks(vm) - set(before)
        if len(new) >= count:
            return sorted(new)
        con = vm.step_console()
        for marker in ADD_FAILED:
            if marker in con:
                raise VMError(f"guest reported '{marker}' after {len(new)} of {count} blocks")
        if time.monotonic() > deadline:
            raise VMError(f"only {len(new)} of {count} new memory blocks after {timeout}s")
        time.sleep(poll)


def remove_dimm(vm, dev, timeout=120):
    vm.begin_step()
    vm.qmp.execute("device_del", id=dev)
    try:
        vm.qmp.wait_event("DEVICE_DELETED", timeout, lambda d: d.get("device") == dev)
    except (TimeoutError, OSError) as e:
        said = "; ".join(f"{k}: {line.strip()}"
                         for k, line in console_problems(vm.step_console())[:2])
        raise VMError(f"{dev}: the guest did not release it within {timeout}s ({e}); "
                      f"console: {said or 'nothing'}") from e
    vm.qmp.execute("object-del", id=f"mem-{dev}")


# ---- virtio-mem -------------------------------------------------------
def virtio_mem_size(vm, dev):
    return vm.qmp.execute("qom-get", path=f"/machine/peripheral/{dev}", property="size")


def request_virtio_mem(vm, dev, size):
    """Set the device's requested size; the guest's answer is a new step."""
    vm.begin_step()
    vm.qmp.execute("qom-set", path=f"/machine/peripheral/{dev}",
                   property="requested-size", value=size)


def settle_virtio_mem(vm, dev, quiet=20, timeout=300):
    """Wait until the device's plugged size has not changed for `quiet`
    seconds (the driver gave up for now); returns it."""
    start = time.monotonic()
    last, moved = virtio_mem_size(vm, dev), start
    while True:
        vm._check_alive("virtio-mem settle")
        time.sleep(1)
        got = virtio_mem_size(vm, dev)
        now = time.monotonic()
        if got != last:
            last, moved = got, now
        elif now - moved >= quiet or now - start > timeout:
            return got


def set_virtio_mem(vm, dev, size, timeout=600, stall=60, poll=0.5):
    """Ask the guest for `size` bytes plugged and wait until the device
    reports it.  Returns the size reached.  Raises when the plugged size
    has not moved for `stall` seconds (the driver retries a failed add
    forever) or after `timeout` seconds, quoting the driver's last word
    since the request."""
    request_virtio_mem(vm, dev, size)
    start = time.monotonic()
    last, moved = None, start
    while True:
        vm._check_alive("virtio-mem resize")
        got = virtio_mem_size(vm, dev)
        if got == size:
            return got
        now = time.monotonic()
        if got != last:
            last, moved = got, now
        if now - moved > stall or now - start > timeout:
            said = [line for line in vm.step_console().splitlines() if "virtio_mem" in line]
            how = (f"no progress for {now - moved:.0f}s" if now - moved > stall
                   else f"still moving after {timeout}s")
            raise VMError(f"virtio-mem {dev}: plugged {got >> 20} MiB of {size >> 20} MiB, "
                          f"{how}; guest: "
                          f"{said[-1].strip() if said else 'nothing'}")
        time.sleep(poll)
