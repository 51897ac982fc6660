"""The measurement layer: what the guest shows (snapshots, blocks,
counters), the hot-plug operations (pc-dimm add and remove, virtio-mem
resize) and the waits for them.  Host side through QMP, guest side through
sysfs and /proc over the agent.  The tests, `make bench` and `make demo`
all measure through here; it knows nothing of them."""

import statistics
import time

from . import parsers
from .parsers import parse_blocks, parse_meminfo, parse_vmstat, parse_zoneinfo
from .vm import VMError
from .wait import wait_until

SYS_MEM = "/sys/devices/system/memory"
PROBE = f"{SYS_MEM}/probe"
AUTO_ONLINE = f"{SYS_MEM}/auto_online_blocks"
MODE = "/sys/module/memory_hotplug/parameters/memmap_on_memory"
# one grep for every block's files, not two cats per block: at 512 GiB
# (4096 blocks) the loop of cats outlived its two-minute timeout in TCG.  A
# block removed between the glob and grep's open makes grep exit 2: that
# block is gone, which is what the caller asked.
BLOCKS_CMD = f"cd {SYS_MEM} && {{ grep -s -H . memory*/state memory*/valid_zones; true; }}"
GIB = 1 << 30
MIB = 1 << 20
KIB = 1 << 10

# Blocks that exist and are linked to their node.  A block is linked to its
# node only after every block of the range exists, so a new block that is
# linked belongs to an add that is complete.  (Until stable-6.12 1/1 the block's
# nid was NUMA_NO_NODE until then, and reading its valid_zones in between
# dereferenced NODE_DATA(NUMA_NO_NODE); big-mode1 reads them on purpose.)
LINKED_CMD = (f"cd {SYS_MEM} && for d in memory*; do set -- $d/node*; "
              '[ -e "$1" ] && echo "${d#memory}"; done; true')
PRESENT_CMD = f"cd {SYS_MEM} && for d in memory*; do echo ${{d#memory}}; done"


def wait_guest(vm, probe, timeout, what=None, poll=0.5):
    """wait_until() for a guest: a dead guest ends the wait at once, and a
    timeout is a VMError."""
    return wait_until(probe, timeout, poll, what, alive=lambda: vm._check_alive("a wait"),
                      error=VMError)


# ---- readings ---------------------------------------------------------
def meminfo(vm):
    return parse_meminfo(vm.run("cat /proc/meminfo"))


def vmstat(vm):
    return parse_vmstat(vm.run("cat /proc/vmstat"))


def zoneinfo(vm):
    return parse_zoneinfo(vm.run("cat /proc/zoneinfo"))


def zone_free(zones, node=None, movable=True, page_size=4096):
    """Free bytes of /proc/zoneinfo's zones, the per-CPU lists included."""
    return sum(z.get("free", 0) + z["pcp"] for (n, zone), z in zones.items()
               if (node is None or n == node) and (movable or zone != "Movable")) * page_size


def free_bytes(vm, node=None, movable=True):
    """Free memory including the per-CPU lists, with the per-CPU vmstat
    deltas folded first: MemFree alone moves by hundreds of KiB as pages
    wander between the buddy and the per-CPU lists.  Of one node if given;
    without ZONE_MOVABLE if not `movable`."""
    zones = parse_zoneinfo(vm.run("echo 1 >/proc/sys/vm/stat_refresh; cat /proc/zoneinfo"))
    return zone_free(zones, node, movable, vm.page_size)


def managed_bytes(vm, node):
    """What a node contributes to MemTotal: its zones' managed pages."""
    zones = zoneinfo(vm)
    return sum(z.get("managed", 0) for (n, _), z in zones.items() if n == node) * vm.page_size


def blocks(vm):
    return parse_blocks(vm.run(BLOCKS_CMD))


def online_count(vm):
    return sum(1 for b in blocks(vm).values() if b["state"] == "online")


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
    if not ids:
        return {}
    out = vm.run("; ".join(f"echo {i} $(cat {SYS_MEM}/memory{i}/memmap_on_memory_pages "
                           "2>/dev/null)" for i in sorted(ids)))
    got = {}
    for line in out.splitlines():
        parts = line.split()
        if parts and parts[0].isdigit():
            got[int(parts[0])] = int(parts[1]) if len(parts) == 2 and parts[1].isdigit() else None
    return got


def block_ids(vm, cmd):
    """The block numbers `cmd` lists.  An answer that is not a list of
    numbers is the guest's failure (seen: a guest whose agent the OOM killer
    had just killed answered 't7'), raised as VMError like any other."""
    out = vm.run(cmd)
    try:
        return {int(x) for x in out.split()}
    except ValueError:
        raise VMError(f"the guest's list of memory blocks is garbled: {out[:80]!r}") from None


def linked_blocks(vm):
    return block_ids(vm, LINKED_CMD)


def present_blocks(vm):
    """Blocks that exist, linked to their node or not (the link is made
    after every block of a range exists, and a failure to make it is only
    logged)."""
    return block_ids(vm, PRESENT_CMD)


# ---- the snapshot -----------------------------------------------------
# meminfo first, then the vmstat fold right before the zoneinfo that Free
# comes from (nothing between them)
SNAP_CMD = ("cat /proc/meminfo; echo @zones; echo 1 >/proc/sys/vm/stat_refresh; "
            "cat /proc/zoneinfo; echo @blocks; " + PRESENT_CMD +
            "; echo @iomem; grep -i 'system ram' /proc/iomem; true")


def snapshot(vm, reads=1, pause=0.2):
    """What the guest's memory looks like, in one guest command per read:
    every /proc/meminfo field, 'Free' (free pages with the per-CPU lists,
    vmstat folded: see free_bytes), the blocks that exist ('blocks'), the
    System RAM lines of /proc/iomem ('iomem'), and whether free memory can
    be compared at all on this kernel ('exact_free', not under KASAN).
    With `reads` > 1, MemFree and Free are the median of that many reads
    `pause` seconds apart (they move by a few pages from one read to the
    next)."""
    samples = []
    for i in range(reads):
        if i:
            time.sleep(pause)
        out = vm.run(SNAP_CMD)
        head, rest = out.split("@zones", 1)
        zones_txt, rest = rest.split("@blocks", 1)
        blocks_txt, iomem_txt = rest.split("@iomem", 1)
        snap = parse_meminfo(head)
        snap.update(Free=zone_free(parse_zoneinfo(zones_txt), page_size=vm.page_size),
                    blocks=sorted(int(x) for x in blocks_txt.split()),
                    iomem=sorted(ln.strip() for ln in iomem_txt.splitlines() if ln.strip()),
                    exact_free=vm.exact_free)
        samples.append(snap)
    snap = dict(samples[-1])
    for key in ("MemFree", "Free"):
        snap[key] = statistics.median(s[key] for s in samples)
    return snap


def settled(vm):
    """A snapshot whose free figures are the median of three reads."""
    return snapshot(vm, reads=3)


def differences(before, now, free_slack=256 * KIB):
    """What changed between two snapshots: MemTotal, the blocks, /proc/iomem,
    and free memory beyond `free_slack` where it can be compared."""
    out = [k for k in ("MemTotal", "blocks") if before[k] != now[k]]
    if before["iomem"] != now["iomem"]:
        gone = set(before["iomem"]) - set(now["iomem"])
        new = set(now["iomem"]) - set(before["iomem"])
        out.append(f"/proc/iomem lost {sorted(gone)}, gained {sorted(new)}")
    if before["exact_free"] and abs(before["Free"] - now["Free"]) > free_slack:
        out.append(f"free memory {(now['Free'] - before['Free']) // KIB:+d} KiB")
    return out


# A slab or per-CPU list refill moves free memory by a few pages from one
# look to the next: 1 MiB covers it with 4 KiB pages.  With 64 KiB pages it
# moves by up to 3 MiB, without a trend (measured 2026-12-06: 20 cycles on
# arm64-64k drifted between -256 and +2048 KiB in one run, between -3136
# and -1152 KiB in another; a removal came back 1984 KiB short): 64 pages
# covers it.  A leak of 256 KiB per cycle still shows within 20 cycles.
FREE_SLACK_PAGES = 64


def free_slack(page_size):
    """How far free memory may move between two looks at the same state."""
    return max(MIB, FREE_SLACK_PAGES * page_size)


def free_slack_text(page_size):
    s = free_slack(page_size)
    return f"{s // MIB} MiB" if s % MIB == 0 else f"{s // KIB} KiB"


# ---- blocks -----------------------------------------------------------
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


def wait_blocks(vm, base, extra=0, timeout=60, poll=0.3):
    """Wait until the linked blocks are `base` plus `extra` new ones;
    returns the new ones."""
    base, seen = set(base), {}

    def look():
        now = linked_blocks(vm)
        seen["new"] = now - base
        return now >= base and len(now) == len(base) + extra
    wait_guest(vm, look, timeout, poll=poll,
               what=lambda _: f"{len(seen['new'])} new blocks, want {extra}, after {timeout}s")
    return seen["new"]


def wait_online(vm, ids, timeout=120, poll=0.5):
    """Wait until every block in `ids` is online (memhp_default_state)."""
    def offline():
        states = blocks(vm)
        return [b for b in ids if states.get(b, {}).get("state") != "online"]
    wait_guest(vm, lambda: not offline(), timeout, poll=poll,
         what=lambda _: f"{len(offline())} of {len(ids)} blocks not online after {timeout}s")


# ---- pc-dimm ----------------------------------------------------------
def add_dimm(vm, dev, size, node=None):
    vm.begin_step()
    vm.qmp.execute("object-add", **{"qom-type": "memory-backend-ram", "id": f"mem-{dev}",
                                    "size": size, "reserve": False})
    args = {"driver": "pc-dimm", "id": dev, "memdev": f"mem-{dev}"}
    if node is not None:
        args["node"] = node
    vm.qmp.execute("device_add", **args)


def wait_new_blocks(vm, before, count, timeout=300, poll=0.5):
    """Wait until `count` blocks beyond the set `before` exist and are linked
    to their node (the add is complete).  Returns the new block ids.
    Raises VMError if the guest reports that adding failed, dies, or the
    blocks do not appear in time."""
    seen = {"new": set()}

    def look():
        seen["new"] = linked_blocks(vm) - set(before)
        if len(seen["new"]) >= count:
            return True
        said = parsers.add_failure(vm.step_console(), "dimm")
        if said:
            raise VMError(f"guest reported '{said}' after {len(seen['new'])} of {count} blocks")
        return False
    wait_guest(vm, look, timeout, poll=poll,
               what=lambda _: f"only {len(seen['new'])} of {count} new memory blocks after "
                              f"{timeout}s")
    return sorted(seen["new"])


def remove_dimm(vm, dev, timeout=120):
    vm.begin_step()
    vm.qmp.execute("device_del", id=dev)
    try:
        vm.qmp.wait_event("DEVICE_DELETED", timeout, lambda d: d.get("device") == dev)
    except (TimeoutError, OSError) as e:
        said = "; ".join(f"{k}: {line.strip()}"
                         for k, line in parsers.console_problems(vm.step_console())[:2])
        raise VMError(f"{dev}: the guest did not release it within {timeout}s ({e}); "
                      f"console: {said or 'nothing'}") from e
    vm.qmp.execute("object-del", id=f"mem-{dev}")


class OnlineFailed(VMError):
    """hotadd(): the blocks were added, but onlining them failed."""


def hotadd(vm, size, zone="online_movable", dev="d0", timeout=300, poll=0.5):
    """Hot-add a pc-dimm, measure, online it.  Returns a dict of numbers.
    `poll`: seconds between looks for the new blocks (add_seconds is that
    coarse)."""
    bs = block_size(vm)
    before = settled(vm)
    b0 = linked_blocks(vm)
    t0 = time.monotonic()
    add_dimm(vm, dev, size)
    new = wait_new_blocks(vm, b0, size // bs, timeout, poll)
    add_s = time.monotonic() - t0
    added = settled(vm)
    try:
        online_s = set_blocks_state(vm, new, zone, timeout)
    except VMError as e:
        raise OnlineFailed(str(e)) from e
    online = settled(vm)
    states = blocks(vm)
    return {
        "size": size, "block_size": bs, "blocks": new,
        "memtotal_before": before["MemTotal"], "memfree_before": before["MemFree"],
        "free_before": before["Free"],
        "consumed": before["Free"] - added["Free"],
        "consumed_per_gib": (before["Free"] - added["Free"]) / (size / GIB),
        "memfree_drop": before["MemFree"] - added["MemFree"],
        "memtotal_gain": online["MemTotal"] - before["MemTotal"],
        "add_seconds": add_s, "online_seconds": online_s,
        "online_blocks": sum(1 for b in new if states[b]["state"] == "online"),
    }


def offline_edges_first(vm, ids, zone="Movable", node=0, timeout=300):
    """Offline the blocks `ids`, which must be all the zone holds, one at a
    time: the first, then the last, then the next first, and so on, so that
    each offline takes a block at an edge of the zone and makes the kernel
    find the zone's new start or end.  After each, the zone must span exactly
    the blocks still online, and after the last it must be empty (spanned
    and present 0).  Returns a list of (block, seen, wanted), one per
    offline tried: (start_pfn, spanned) pairs, or for an offline that failed
    seen is the error's first line, and the walk stops there."""
    per_block = block_size(vm) // vm.page_size
    left, seen = sorted(ids), []
    take_first = True
    while left:
        b = left.pop(0 if take_first else -1)
        take_first = not take_first
        want = ((left[0] * per_block, (left[-1] + 1 - left[0]) * per_block)
                if left else (0, 0))
        try:
            set_blocks_state(vm, [b], "offline", timeout)
        except VMError as e:
            lines = [ln for ln in str(e).splitlines() if "error" in ln.lower()]
            seen.append((b, f"offline failed: {(lines or [str(e)])[0].strip()}", want))
            break
        z = zoneinfo(vm).get((node, zone), {})
        # an empty zone has no start_pfn line: its span and present pages
        # say it is empty
        got = ((z.get("start_pfn", 0), z.get("spanned", 0)) if left else
               (0, z.get("spanned", 0) + z.get("present", 0)))
        seen.append((b, got, want))
    return seen


def remove(vm, ids, dev="d0", timeout=300, offline=True):
    """Offline the blocks (unless they are), unplug the DIMM, wait until its
    blocks are gone; returns a settled snapshot."""
    if offline:
        set_blocks_state(vm, ids, "offline", timeout)
    remove_dimm(vm, dev, timeout)
    wait_guest(vm, lambda: not set(ids) & linked_blocks(vm), timeout,
         what=f"blocks of {dev} still present {timeout}s after device_del")
    return settled(vm)


# ---- virtio-mem -------------------------------------------------------
def virtio_mem_size(vm, dev):
    return vm.qmp.execute("qom-get", path=f"/machine/peripheral/{dev}", property="size")


def request_virtio_mem(vm, dev, size):
    """Set the device's requested size; the guest's answer is a new step.
    QEMU refuses a size the device cannot take (QMPError)."""
    vm.begin_step()
    vm.qmp.execute("qom-set", path=f"/machine/peripheral/{dev}",
                   property="requested-size", value=size)


def settle_virtio_mem(vm, dev, quiet=20, timeout=300):
    """Wait until the device's plugged size has not changed for `quiet`
    seconds (the driver gave up for now), at most `timeout`; returns it."""
    seen = {"size": virtio_mem_size(vm, dev), "moved": time.monotonic()}

    def still():
        got = virtio_mem_size(vm, dev)
        if got != seen["size"]:
            seen.update(size=got, moved=time.monotonic())
        return time.monotonic() - seen["moved"] >= quiet
    wait_guest(vm, still, timeout, poll=1)
    return seen["size"]


def set_virtio_mem(vm, dev, size, timeout=600, stall=60, poll=0.5):
    """Ask the guest for `size` bytes plugged and wait until the device
    reports it.  Returns the size reached.  Raises when the plugged size
    has not moved for `stall` seconds (the driver retries a failed add
    forever) or after `timeout` seconds, quoting the driver's last word
    since the request."""
    request_virtio_mem(vm, dev, size)
    start = time.monotonic()
    seen = {"size": None, "moved": start}

    def reached():
        got = virtio_mem_size(vm, dev)
        now = time.monotonic()
        if got == size:
            return True
        if got != seen["size"]:
            seen.update(size=got, moved=now)
        if now - seen["moved"] > stall:
            raise VMError(why(f"no progress for {now - seen['moved']:.0f}s"))
        return False

    def why(how):
        said = [line for line in vm.step_console().splitlines() if "virtio_mem" in line]
        return (f"virtio-mem {dev}: plugged {(seen['size'] or 0) >> 20} MiB of {size >> 20} "
                f"MiB, {how}; guest: {parsers.strip_console(said[-1]) if said else 'nothing'}")
    wait_guest(vm, reached, timeout, poll=poll,
               what=lambda _: why(f"still moving after {timeout}s"))
    return size


def virtio_mem_grow(vm, dev, size, base, timeout=600, poll=0.5):
    """Resize a virtio-mem device whose memory the guest onlines itself
    (memhp_default_state=online_movable) and measure against `base` (a
    settled snapshot): (snapshot now, MemTotal gained, boot memory it
    cost, seconds)."""
    t0 = time.monotonic()
    set_virtio_mem(vm, dev, size, timeout, poll=poll)
    seconds = time.monotonic() - t0
    now = settled(vm)
    gain = now["MemTotal"] - base["MemTotal"]
    # what the resize cost: memory that came in minus memory that is free
    consumed = gain - (now["Free"] - base["Free"])
    return now, gain, consumed, seconds


# ---- why a step failed ------------------------------------------------
def failure_text(vm, e):
    """Why a hot-add failed: the guest's most telling line since the step
    began if it printed one, else the harness's; "(guest panicked)" when
    the console shows a panic (the guest may be stopped by the time this
    runs, so whether QEMU is alive says nothing)."""
    why = parsers.failure_marker(vm.step_console(),
                                 (str(e).splitlines() or [type(e).__name__])[0])
    return why + (" (guest panicked)" if parsers.marked(vm.console(), "panic") else "")
