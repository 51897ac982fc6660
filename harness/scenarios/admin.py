"""The administrator's interface: the memmap_on_memory switch at runtime,
the probe interface, each block's memmap_on_memory_pages file and the
memmap counters in /proc/vmstat, with exact expected values after every
add, online, offline and remove."""

from .. import measure, model
from ..measure import MIB, MODE
from .base import check_console, free_compared, quarantine_skip, scenario

COUNTERS = ("nr_memmap_pages", "nr_memmap_boot_pages", "nr_memmap_on_memory_pages")
# words the parameter must refuse, each leaving the mode as it was.  It
# parses as the base kernel does, "force"/"FORCE" or else kstrtobool(),
# which reads only the first characters: "yess" is Y there, not an error.
BAD_MODES = ("bogus", "2", "-1", "''", "o", "ox", "x1")
# (written, reads back): what the base accepts, "yess" and "forcee" included
GOOD_MODES = (("force", "force"), ("1", "Y"), ("off", "N"), ("YES", "Y"), ("False", "N"),
              ("FORCE", "force"), ("yess", "Y"), ("forcee", "N"), ("y", "Y"))


def counters(vm):
    v = measure.vmstat(vm)
    return {k: v.get(k) for k in COUNTERS}


def write_mode(vm, value):
    """Write the parameter; returns (accepted, what it reads back)."""
    rc, _ = vm.run(f"echo {value} > {MODE}", check=False)
    return rc == 0, vm.run(f"cat {MODE}").strip()


class Ledger:
    """What the counters and the blocks' files must say: updated by each
    step, compared exactly after it."""

    def __init__(self, vm, res, name, per_block):
        self.vm, self.res, self.name = vm, res, name
        self.per_block = per_block
        self.want = counters(vm)
        self.files = {}

    def added(self, ids, self_hosted):
        key = "nr_memmap_on_memory_pages" if self_hosted else "nr_memmap_pages"
        self.want[key] += self.per_block * len(ids)
        for i in ids:
            self.files[i] = self.per_block if self_hosted else 0

    def removed(self, ids):
        for i in ids:
            key = "nr_memmap_on_memory_pages" if self.files.pop(i) else "nr_memmap_pages"
            self.want[key] -= self.per_block

    def check(self, what):
        got = counters(self.vm)
        files = measure.block_memmap(self.vm, self.files) if self.files else {}
        bad = [f"{k} {got[k]} (want {self.want[k]})" for k in COUNTERS if got[k] != self.want[k]]
        bad += [f"memory{i} {files.get(i)} (want {n})" for i, n in self.files.items()
                if files.get(i) != n]
        self.res.check(f"{self.name}: after {what}: counters and memmap_on_memory_pages exact",
                       not bad, "; ".join(bad) or
                       f"on memory {got['nr_memmap_on_memory_pages']}, "
                       f"elsewhere {got['nr_memmap_pages']} pages")


def probe(vm, addr):
    rc, out = vm.run(f"echo {addr:#x} > {measure.PROBE}", check=False)
    return rc == 0, out.strip()


def online_offline(vm, res, name, ledger, ids, want_gain):
    before = measure.meminfo(vm)["MemTotal"]
    measure.set_blocks_state(vm, ids, "online_movable")
    gain = measure.meminfo(vm)["MemTotal"] - before
    res.check(f"{name}: online adds {want_gain // 1024} KiB to MemTotal", gain == want_gain,
              f"{gain // 1024:+d} KiB")
    ledger.check("online")
    measure.set_blocks_state(vm, ids, "offline")
    ledger.check("offline")


@scenario("admin", "runtime memmap_on_memory switch, probe, memmap_on_memory_pages and "
                   "the vmstat memmap counters, exact after every step",
          passes=("main", "debug", "nothp", "kasan"),
          skips=[quarantine_skip("admin: free memory as before the pc-dimms")], topics=("admin",))
def sc_admin(ctx, res):
    name = "admin"
    # RAM above mem= is left for the probe interface; the firmware reserves
    # the top of low RAM, so keep the probed blocks below it
    low = ctx.boot_mib(256)
    append = f"mem={low}M memory_hotplug.memmap_on_memory=1 memhp_default_state=offline"
    with ctx.vm(name, append, mem_mib=low + 512) as vm:
        bs = measure.block_size(vm)
        per_block = model.memmap_pages(bs)
        ledger = Ledger(vm, res, name, per_block)
        res.check(f"{name}: nothing hot-added yet: nr_memmap_on_memory_pages is 0",
                  ledger.want["nr_memmap_on_memory_pages"] == 0, str(ledger.want))

        # probe under =1, force and =0, the mode switched at runtime
        for addr, mode in ((low * MIB, "Y"), ((low + 128) * MIB, "force"),
                           ((low + 256) * MIB, "N")):
            ok, now = write_mode(vm, mode)
            res.check(f"{name}: the mode switches to {mode} at runtime", ok and now == mode, now)
            ok, out = probe(vm, addr)
            res.check(f"{name}: probe {addr:#x} with {mode}", ok, out)
            if not ok:
                return
            block = addr // bs
            # force pads nothing: it reserves what =1 does
            ledger.added([block], mode != "N")
            ledger.check(f"probe with {mode}")
            online_offline(vm, res, f"{name}: probed block ({mode})", ledger, [block],
                           bs - (per_block * 4096 if mode != "N" else 0))

        # invalid writes change nothing
        for value in BAD_MODES:
            ok, now = write_mode(vm, value)
            res.check(f"{name}: the mode rejects {value}", not ok and now == "N",
                      f"{'accepted' if ok else 'rejected'}, reads {now}")
        for value, reads in GOOD_MODES:
            ok, now = write_mode(vm, value)
            res.check(f"{name}: the mode takes {value}", ok and now == reads, now)
        res.check(f"{name}: no memmap_on_memory_pages file at the root (dropped: the "
                  "per-block file of that name means something else)",
                  vm.run(f"test -e {measure.SYS_MEM}/memmap_on_memory_pages && echo yes || echo no"
                         ).strip() == "no")
        res.check(f"{name}: the kernel log does not say the mode has no effect",
                  "has no effect" not in vm.console())

        # DIMMs under both modes, removed under the other mode
        base = measure.settled(vm)
        dimms = {}
        for dev, mode in (("d0", "N"), ("d1", "Y")):
            write_mode(vm, mode)
            before = measure.linked_blocks(vm)
            measure.add_dimm(vm, dev, 2 * bs)
            dimms[dev] = measure.wait_new_blocks(vm, before, 2)
            ledger.added(dimms[dev], mode == "Y")
            ledger.check(f"pc-dimm {dev} added with {mode}")
        online_offline(vm, res, f"{name}: both pc-dimms", ledger, dimms["d0"] + dimms["d1"],
                       4 * bs - 2 * per_block * 4096)
        for dev, mode in (("d0", "Y"), ("d1", "N")):
            write_mode(vm, mode)
            measure.remove_dimm(vm, dev)
            gone = measure.linked_blocks(vm)
            res.check(f"{name}: pc-dimm {dev} removed with the mode at {mode}",
                      not set(dimms[dev]) & gone, f"blocks {dimms[dev]}")
            ledger.removed(dimms[dev])
            ledger.check(f"pc-dimm {dev} removed with {mode}")
        after = measure.settled(vm)
        res.check(f"{name}: MemTotal as before the pc-dimms",
                  after["MemTotal"] == base["MemTotal"],
                  f"MemTotal {after['MemTotal'] - base['MemTotal']:+d} B")
        if free_compared(res, vm, f"{name}: free memory as before the pc-dimms"):
            res.check(f"{name}: free memory as before the pc-dimms",
                      abs(after["Free"] - base["Free"]) <= MIB,
                      f"free {(after['Free'] - base['Free']) // 1024:+d} KiB")
        check_console(res, name, vm)
