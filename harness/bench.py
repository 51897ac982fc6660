"""`make bench`: the stock base (no series) against ours, on every hot-add
path, in a 256 MiB guest.  Writes bench.json, bench.md and bench.png.

Three sets, each one run of its own:
  main:  the main config (2 MiB pageblocks); stock =0, stock =1, ours =1
         (memory_hotplug.memmap_on_memory) on pc-dimm (ACPI), virtio-mem
         Sub Block Mode and virtio-mem Big Block Mode;
  nothp: the config without THP and HUGETLB (4 MiB pageblocks); stock =1,
         stock =force, ours =1 on pc-dimm;
  arm64: arm64 (virt, UEFI, ACPI) with 4, 16 and 64 KiB pages, a kernel
         pair for each; stock =0, stock =1, ours =1 on pc-dimm.
Every sample boots a fresh guest.  The variants take turns within each
repetition, so that a slow spell of the machine hits them alike.

  1. boot memory consumed per GiB added, at 16 and 64 GiB;
  2. share of the added memory in MemTotal after onlining;
  3. the largest add a 256 MiB guest survives (16, 32, ... 256 GiB);
  4. virtio-mem grow to 64 GiB and shrink to 0: seconds per GiB each way,
     share of the memory given back;
  5. seconds to add and online per GiB, as a ratio to the set's first
     variant (main: stock =0).
"""

import json
import os
import statistics
import sys
import time

from . import measure, report
from .measure import GIB, KIB
from .paths import ROOT, file_sha256, shell_line
from .passes import ARM64_PAGE_KIB
from .vm import VM, VMError

VARIANTS = (("stock", "0"), ("stock", "1"), ("ours", "1"))
PATHS = ("pc-dimm", "vmem-sbm", "vmem-bbm")
# the arm64 set: pc-dimm on the kernels of each page size
ARM64_PATHS = tuple(f"pc-dimm-{kib}k" for kib in ARM64_PAGE_KIB)
SETS = {
    "main": {"variants": VARIANTS, "paths": PATHS, "kernels": {"ours": "main", "stock": "stock"},
             "title": "main config (THP: 2 MiB pageblocks)"},
    # 4 MiB pageblocks: stock =1 has no effect, stock =force pads
    "nothp": {"variants": (("stock", "1"), ("stock", "force"), ("ours", "1")),
              "paths": ("pc-dimm",), "kernels": {"ours": "nothp", "stock": "stock-nothp"},
              "title": "config without THP and HUGETLB (4 MiB pageblocks)"},
    # a kernel pair per path: the path is the page size
    "arm64": {"variants": VARIANTS, "paths": ARM64_PATHS,
              "kernels": {"ours": {f"pc-dimm-{k}k": f"arm64-{k}k" for k in ARM64_PAGE_KIB},
                          "stock": {f"pc-dimm-{k}k": f"stock-arm64-{k}k"
                                    for k in ARM64_PAGE_KIB}},
              "title": "arm64 configs (4, 16 and 64 KiB pages)"},
}
PATH_TITLES = {"pc-dimm": "pc-dimm", "vmem-sbm": "virtio-mem SBM", "vmem-bbm": "virtio-mem BBM",
               **{f"pc-dimm-{k}k": f"pc-dimm, {k} KiB pages" for k in ARM64_PAGE_KIB}}
# the guest of a path: (architecture, page size)
PATH_GUEST = {f"pc-dimm-{k}k": ("arm64", k << 10) for k in ARM64_PAGE_KIB}


def is_dimm(path):
    return path == "pc-dimm" or path.startswith("pc-dimm-")


def floor_pct(page_size=4096):
    """The usable share memmap on memory leaves at the least: the memmap
    takes 64 bytes of every page."""
    return 100 * (1 - 64 / page_size)
COST_GIB = (16, 64)
# up to 512 GiB: its self-hosted memmap (8 GiB) is written, so the host
# gives the guest that much RAM
LADDER_GIB = (16, 32, 64, 128, 256, 512)
GROW_GIB = 64
TIMING_GIB = 4
GUEST_MIB = 256
SHOWN_GIB = COST_GIB   # metric 1 and 2 columns
# The guest's side of the timing, one agent command sent right after the
# QMP command: it returns once {want} memory blocks are online, the ones
# online before plus every block of the add.  It counts blocks, not
# MemTotal, because what a block adds to MemTotal depends on the mode
# (stock =force pads the memmap to a whole 4 MiB pageblock).  Only shell
# builtins read the state files, with 2 ms sleeps in between (busybox
# runs usleep without forking); the host times from before the QMP
# command until the answer arrives
ONLINE_WAIT = ("while n=0; for f in /sys/devices/system/memory/memory*/state; do "
               "read -r s <$f; [ \"$s\" = online ] && n=$((n + 1)); done; "
               "[ $n -lt {want} ]; do usleep 2000; done; echo online")


def add_timeout(size_gib):
    """Seconds an add of size_gib may take in TCG before it counts as
    failed: adding and onlining grow faster than the size (measured
    2026-12-05, pc-dimm onlined to ZONE_MOVABLE: 128 GiB 38 s, 256 GiB
    164-252 s, 512 GiB more than 600 s)."""
    return max(600, 5 * size_gib)


class ResumeError(Exception):
    pass


def load_samples(path, identity):
    """Read an interrupted run's samples file for --resume.  Returns (its
    lines, the start times of its runs, {(kind, variant, path, size_gib, tag):
    sample}).  The samples must come from the same kernels and set
    (`identity`); a line cut short by the interruption is dropped."""
    runs, heads, kept, found = [], [], [], {}
    with open(path) as f:
        lines = f.read().splitlines()
    for n, line in enumerate(lines, 1):
        try:
            x = json.loads(line)
        except ValueError:
            if n == len(lines):
                break           # the run was stopped while writing it
            raise ResumeError(f"{path}:{n}: not a JSON line; start afresh without --resume")
        if x.get("kind") == "run":
            differ = sorted(k for k in identity if x.get(k) != identity[k])
            if differ:
                raise ResumeError(f"{path}:{n}: the samples were taken with another "
                                  f"{', '.join(differ)}; start afresh without --resume")
            heads.append(x)
            kept.append(x)
            runs.append(x.get("started", "?"))
            continue
        if not heads:
            raise ResumeError(f"{path}: no line says which kernels took the samples; start "
                              "afresh without --resume")
        s = {k: v for k, v in x.items() if k not in ("kind", "variant", "path")}
        found[(x["kind"], x["variant"], x["path"], x["size_gib"], x["tag"])] = s
        kept.append(x)
    return kept, runs, found


def vname(variant):
    return f"{variant[0]} ={variant[1]}"


def spread(values):
    """median, min, max and count of the values (None when there are none)."""
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values)}


def fmt_spread(s, digits=1, scale=1.0, total=None, failed=None):
    """'median (min-max, n=N)'; with `total` samples of which some failed,
    'n=2 of 3; 1 of 3 failed: why'."""
    if s is None:
        return f"failed: {failed}" if failed else "-"
    med, lo, hi = (round(s[k] * scale, digits) for k in ("median", "min", "max"))
    n = f"n={s['n']}" + (f" of {total}; {failed}" if failed and total else "")
    return f"{med:g} ({lo:g}-{hi:g}, {n})" if lo != hi else f"{med:g} ({n})"


def verdict(samples):
    """What the samples of one size say: None if none failed, else
    'k of n failed: why', or, where the failures differ,
    'k of n failed: 2x why; 1x other why' (most frequent first)."""
    bad = [s for s in samples if not s["ok"]]
    if not bad:
        return None
    whys = {}
    for s in bad:
        whys[s["why"]] = whys.get(s["why"], 0) + 1
    if len(whys) == 1:
        return f"{len(bad)} of {len(samples)} failed: {bad[0]['why']}"
    ranked = sorted(whys.items(), key=lambda kv: -kv[1])
    return f"{len(bad)} of {len(samples)} failed: " + "; ".join(f"{k}x {w}" for w, k in ranked)


def ladder(points):
    """points: {size_gib: [samples]} of the ladder sizes tried.  A size is
    survived when every sample of it succeeded.  Returns (largest size
    survived before the first that was not, or None; (size, verdict) of
    that first one, or None)."""
    best, failed = None, None
    for size in sorted(points):
        why = verdict(points[size])
        if why is None and points[size]:
            best = size
        else:
            failed = (size, why or "no sample")
            break
    return best, failed


class Bench:
    def __init__(self, kernels, initrd, rundir, accel="tcg", repeat=3, timing_repeat=5,
                 paths=PATHS, log=print, variants=VARIANTS, samples_file=None, resume=False,
                 identity=None):
        # {"stock": bzImage, "ours": bzImage}, or per path (the arm64 set):
        # {"stock": {path: Image}, "ours": {path: Image}}
        self.kernels = kernels
        self.initrd = initrd
        self.rundir = rundir
        self.accel = accel
        self.repeat = repeat
        self.timing_repeat = timing_repeat
        self.paths = paths
        self.variants = variants
        self.log = log
        self.commands = {}              # "variant path": one exact QEMU command line
        # every sample is appended here as it comes, one JSON object a line,
        # after a line of kind "run" that says what took them
        self.samples_file = samples_file
        # (kind, variant, path, size_gib, tag) -> a sample an earlier,
        # interrupted run of the same kernels took (resume)
        self.recorded = {}
        self.runs = []                  # start times of the runs the samples come from
        if samples_file:
            os.makedirs(os.path.dirname(samples_file), exist_ok=True)
            header = {"kind": "run", "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                      **(identity or {})}
            lines = []
            if resume and os.path.exists(samples_file):
                lines, self.runs, self.recorded = load_samples(samples_file, identity or {})
            self.runs.append(header["started"])
            with open(samples_file, "w") as f:
                f.writelines(json.dumps(x, sort_keys=True) + "\n" for x in lines + [header])

    # ---- one sample ----------------------------------------------------
    def vm(self, variant, path, size_gib, tag, online=False):
        append = f"memory_hotplug.memmap_on_memory={variant[1]}"
        kw = {}
        if not is_dimm(path) or online:
            # virtio-mem stops adding while 1 GiB of its memory is offline,
            # so its blocks are onlined as they come (pc-dimm: measured
            # offline, except for the timing)
            append += " memhp_default_state=online_movable"
        if not is_dimm(path):
            if path == "vmem-bbm":
                append += " virtio_mem.force_bbm=1"
            kw["virtio_mem"] = [{"id": "vm0", "size": f"{size_gib}G"}]
        name = f"{variant[0]}{variant[1]}-{path}-{size_gib}g-{tag}"
        kernel = self.kernels[variant[0]]
        if isinstance(kernel, dict):
            kernel = kernel[path]
        target, page_size = PATH_GUEST.get(path, ("x86_64", 4096))
        return VM(name, kernel, self.initrd, os.path.join(self.rundir, name),
                  append=append, mem_mib=GUEST_MIB, accel=self.accel,
                  maxmem_gib=max(300, size_gib + 64), target=target, page_size=page_size, **kw)

    def keep(self, kind, variant, path, s):
        """Log the sample and append it to the samples file."""
        if not s["ok"]:
            what = f"failed: {s['why']}"
        elif "consumed_kib_per_gib" in s:
            what = (f"{s['consumed_kib_per_gib']:.1f} KiB/GiB, {s['usable_pct']:.3f} % usable, "
                    f"{s['seconds']:.2f} s")
        else:
            what = f"{s['seconds']:.3f} s"
        self.log(f"#   {vname(variant)} {path} {s['size_gib']} GiB ({kind}): {what}")
        if self.samples_file:
            with open(self.samples_file, "a") as f:
                f.write(json.dumps({"kind": kind, "variant": vname(variant), "path": path,
                                    **s}, sort_keys=True) + "\n")
        return s

    def take_recorded(self, kind, variant, path, size_gib, tag):
        """The sample an interrupted run took already, or None."""
        rec = self.recorded.pop((kind, vname(variant), path, size_gib, tag), None)
        if rec is not None:
            self.log(f"#   {vname(variant)} {path} {size_gib} GiB ({kind}): taken by the run "
                     "being resumed")
        return rec

    def sample(self, variant, path, size_gib, tag, shrink=False, kind="cost"):
        """Boot, add size_gib through path, online; returns a dict with ok and
        either the numbers or why it failed.  A guest that does not boot is
        a failed sample too."""
        vm = self.vm(variant, path, size_gib, tag)
        self.commands.setdefault(f"{vname(variant)} {path}", shell_line(vm.command_line()))
        rec = self.take_recorded(kind, variant, path, size_gib, tag)
        if rec is not None:
            return rec
        size = size_gib * GIB
        out = {"ok": False, "size_gib": size_gib, "tag": tag}
        try:
            with vm:
                if is_dimm(path):
                    r = measure.hotadd(vm, size, zone="online_movable",
                                       timeout=add_timeout(size_gib))
                    if r["online_blocks"] != len(r["blocks"]):
                        raise VMError(f"{r['online_blocks']} of {len(r['blocks'])} blocks online")
                    out.update(consumed=r["consumed"], gain=r["memtotal_gain"],
                               seconds=r["add_seconds"] + r["online_seconds"])
                else:
                    base = measure.settled(vm)
                    _, gain, consumed, secs = measure.virtio_mem_grow(
                        vm, "vm0", size, base, timeout=add_timeout(size_gib))
                    out.update(consumed=consumed, gain=gain, seconds=secs)
                    if shrink:
                        _, left, _, back = measure.virtio_mem_grow(
                            vm, "vm0", 0, base, timeout=add_timeout(size_gib))
                        out.update(shrink_seconds=back, returned=gain - left)
        except (VMError, OSError, TimeoutError) as e:
            out["why"] = measure.failure_text(vm, e)
            return self.keep(kind, variant, path, out)
        out["ok"] = True
        out["consumed_kib_per_gib"] = out["consumed"] / KIB / size_gib
        out["usable_pct"] = 100 * out["gain"] / size
        out["seconds_per_gib"] = out["seconds"] / size_gib
        if shrink:
            out["shrink_seconds_per_gib"] = out["shrink_seconds"] / size_gib
            out["returned_pct"] = 100 * out["returned"] / out["gain"] if out["gain"] else 0.0
        return self.keep(kind, variant, path, out)

    def timing_sample(self, variant, path, tag):
        """Seconds from the QMP command that adds TIMING_GIB until the guest
        says every block is online, on the host's clock."""
        rec = self.take_recorded("timing", variant, path, TIMING_GIB, tag)
        if rec is not None:
            return rec
        size = TIMING_GIB * GIB
        vm = self.vm(variant, path, TIMING_GIB, tag, online=True)
        out = {"ok": False, "size_gib": TIMING_GIB, "tag": tag}
        try:
            with vm:
                want = measure.online_count(vm) + size // measure.block_size(vm)
                t0 = time.monotonic()
                if is_dimm(path):
                    measure.add_dimm(vm, "d0", size)
                else:
                    measure.request_virtio_mem(vm, "vm0", size)
                said = vm.run(ONLINE_WAIT.format(want=want), timeout=600).strip()
                secs = time.monotonic() - t0
                if said != "online":
                    raise VMError(f"the guest's wait said {said!r}")
        except (VMError, OSError, TimeoutError) as e:
            out["why"] = measure.failure_text(vm, e)
            return self.keep("timing", variant, path, out)
        out.update(ok=True, seconds=secs, seconds_per_gib=secs / TIMING_GIB)
        return self.keep("timing", variant, path, out)

    # ---- the run ---------------------------------------------------------
    def run(self):
        """Every repetition of every add runs, whatever the others did: a
        failure shows in its cell next to the samples that succeeded."""
        keys = [(v, p) for p in self.paths for v in self.variants]
        cost = {(v, p, g): [] for v, p in keys for g in COST_GIB}
        for rep in range(self.repeat):
            for g in COST_GIB:
                self.log(f"# cost: {g} GiB, repetition {rep + 1} of {self.repeat}")
                for v, p in keys:
                    cost[(v, p, g)].append(
                        self.sample(v, p, g, f"r{rep}", shrink=not is_dimm(p) and g == GROW_GIB))
        ladders = {}
        for v, p in keys:
            # the cost sizes are ladder points already, with all their samples
            points = {g: list(cost[(v, p, g)]) for g in COST_GIB}
            for g in LADDER_GIB:
                if ladder({k: x for k, x in points.items() if k <= g})[1]:
                    break
                if g not in points:
                    self.log(f"# ladder: {vname(v)} {p} {g} GiB")
                    points[g] = [self.sample(v, p, g, "ladder", kind="ladder")]
            ladders[(v, p)] = points
        timing = {(v, p): [] for v, p in keys}
        for rep in range(self.timing_repeat):
            self.log(f"# timing: {TIMING_GIB} GiB, repetition {rep + 1} of {self.timing_repeat}")
            for v, p in keys:
                timing[(v, p)].append(self.timing_sample(v, p, f"t{rep}"))
        return summarize(keys, cost, ladders, timing)


def ok_values(samples, key):
    return [s[key] for s in samples if s["ok"]]


def summarize(keys, cost, ladders, timing):
    """Everything the report shows, from the samples alone."""
    rows = []
    for v, p in keys:
        row = {"variant": vname(v), "path": p}
        for g in SHOWN_GIB:
            ss = cost[(v, p, g)]
            row[f"cost_{g}"] = spread(ok_values(ss, "consumed_kib_per_gib"))
            row[f"usable_{g}"] = spread(ok_values(ss, "usable_pct"))
            row[f"failed_{g}"] = verdict(ss)
            row[f"n_{g}"] = len(ss)
        if not is_dimm(p):
            ss = cost[(v, p, GROW_GIB)]
            row["grow_s_per_gib"] = spread(ok_values(ss, "seconds_per_gib"))
            row["shrink_s_per_gib"] = spread(ok_values(ss, "shrink_seconds_per_gib"))
            row["returned_pct"] = spread(ok_values(ss, "returned_pct"))
        best, failed = ladder(ladders[(v, p)])
        row["largest_gib"] = best
        row["next_failed"] = ({"size_gib": failed[0], "why": failed[1]} if failed else None)
        row["timing_s_per_gib"] = spread(ok_values(timing[(v, p)], "seconds_per_gib"))
        row["timing_failed"] = verdict(timing[(v, p)])
        row["n_timing"] = len(timing[(v, p)])
        rows.append(row)
    for (v, p), row in zip(keys, rows):
        # the set's first variant on the same path, repetition by repetition
        # (the variants take turns within each): the spread of the ratios
        ref_v = next(k for k in keys if k[1] == p)[0]
        ratios = [a["seconds"] / b["seconds"] for a, b in zip(timing[(v, p)], timing[(ref_v, p)])
                  if a["ok"] and b["ok"] and b["seconds"]]
        row["timing_ref"] = vname(ref_v)
        row["timing_ratio"] = spread(ratios)
    samples = {"cost": {f"{vname(v)}|{p}|{g}": cost[(v, p, g)] for v, p in keys for g in COST_GIB},
               "ladder": {f"{vname(v)}|{p}": {str(g): s for g, s in ladders[(v, p)].items()}
                          for v, p in keys},
               "timing": {f"{vname(v)}|{p}": timing[(v, p)] for v, p in keys}}
    return rows, samples


# ---- report -----------------------------------------------------------------
def table(out, head, lines):
    """Append a Markdown table: head is the titles, lines the rows' cells."""
    out.append(report.markdown_table(list(enumerate(head)),
                                     [dict(enumerate(cells)) for cells in lines]).rstrip("\n"))


def floors(rows):
    """The usable-share floor of the rows' page sizes, as the report says it."""
    pages = sorted({PATH_GUEST.get(r["path"], ("x86_64", 4096))[1] for r in rows})
    return "; ".join(f"1 - 64/{p} = {floor_pct(p):.2f} %"
                     + (f" with {p >> 10} KiB pages" if len(pages) > 1 else "") for p in pages)


def markdown(rows, info, commands, repeat, timing_repeat, title=SETS["main"]["title"]):
    out = [f"Kernels built with the {title}. "
           f"Run of {info['date']} on {info['host']}; {info['qemu']}, accel {info['accel']}; "
           + (f"resumed, so its samples come from the runs started {', '.join(info['runs'])}; "
              if len(info.get("runs", ())) > 1 else "") +
           f"guest {GUEST_MIB} MiB, fresh per sample; command `{info['command']}`. "
           f"Figures: median (min-max, n samples that succeeded of all); {repeat} "
           f"repetitions of each add, {timing_repeat} of the timing; every repetition runs, "
           "and a cell names the failures among them.\n"]
    out.append("### 1-2. Boot memory consumed and usable share\n")
    how = ("pc-dimm: blocks still offline; virtio-mem: blocks onlined to ZONE_MOVABLE as "
           "they come, because the driver stops adding while 1 GiB of its memory is offline"
           if any(not is_dimm(r["path"]) for r in rows) else "blocks still offline")
    out.append(f"Boot memory consumed: free memory before the add minus after it ({how}), per "
               "GiB added.  Usable: MemTotal gained over the size added, after onlining; the "
               f"floor is {floors(rows)}.\n")
    head = ["variant", "path"]
    for g in SHOWN_GIB:
        head += [f"KiB/GiB at {g} GiB", f"usable % at {g} GiB"]
    lines = []
    for r in rows:
        cells = [r["variant"], PATH_TITLES[r["path"]]]
        for g in SHOWN_GIB:
            cells += [fmt_spread(r[f"cost_{g}"], total=r[f"n_{g}"], failed=r[f"failed_{g}"]),
                      fmt_spread(r[f"usable_{g}"], 3)]
        lines.append(cells)
    table(out, head, lines)
    out.append(f"\n### 3. Largest hot-add a {GUEST_MIB} MiB guest survives\n")
    out.append(f"Sizes {', '.join(str(g) for g in LADDER_GIB)} GiB in turn, each into a fresh "
               f"guest, until one fails; at {' and '.join(str(g) for g in COST_GIB)} GiB every "
               "sample of metric 1 counts, and one failure among them is a failure.\n")
    table(out, ["variant", "path", "largest that succeeded", "how the next one failed"],
          [[r["variant"], PATH_TITLES[r["path"]],
            f"{r['largest_gib']} GiB" if r["largest_gib"] else "none",
            f"{r['next_failed']['size_gib']} GiB: {r['next_failed']['why']}"
            if r["next_failed"] else "none failed"] for r in rows])
    if any(not is_dimm(r["path"]) for r in rows):
        out.append(f"\n### 4. virtio-mem: 256 MiB -> {GROW_GIB} GiB -> 0 plugged, "
                   "online_movable\n")
        table(out, ["variant", "path", "grow (s/GiB)", "shrink (s/GiB)",
                    "share given back (%)"],
              [[r["variant"], PATH_TITLES[r["path"]],
                fmt_spread(r["grow_s_per_gib"], 2, total=r[f"n_{GROW_GIB}"],
                           failed=r[f"failed_{GROW_GIB}"]),
                fmt_spread(r["shrink_s_per_gib"], 2), fmt_spread(r["returned_pct"], 3)]
               for r in rows if not is_dimm(r["path"])])
    ref = rows[0]["timing_ref"]
    out.append(f"\n### 5. Seconds to add and online per GiB ({TIMING_GIB} GiB), "
               f"ratio to {ref} in the same run\n")
    vmem = any(not is_dimm(r["path"]) for r in rows)
    out.append("One clock, the host's: from the QMP command (device_add"
               + (", or the virtio-mem request" if vmem else "") + ") until the guest answers that every block is online (the guest "
               "onlines them itself, memhp_default_state=online_movable; one agent command "
               "waits in the guest until their state files say online, nothing else "
               "runs meanwhile).  "
               "The ratio is taken repetition by repetition, the variants taking turns "
               "within each.\n")
    table(out, ["variant", "path", "s/GiB", f"ratio to {ref}"],
          [[r["variant"], PATH_TITLES[r["path"]],
            fmt_spread(r["timing_s_per_gib"], 3, total=r["n_timing"], failed=r["timing_failed"]),
            fmt_spread(r["timing_ratio"], 2)]
           for r in rows])
    out.append("\n<details><summary>QEMU command lines (one per variant and path; the "
               "sizes differ per sample)</summary>\n")
    for k in sorted(commands):
        out.append(f"- {k}: `{commands[k]}`")
    out.append("\n</details>\n")
    return "\n".join(out)


COLORS = {"stock =0": "#c0392b", "stock =1": "#e67e22", "stock =force": "#8e44ad",
          "ours =1": "#27ae60"}


def chart(path, rows, title=SETS["main"]["title"]):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = list(dict.fromkeys(r["path"] for r in rows))
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    fig, axes = plt.subplots(1, 2, figsize=(14, 4.6), gridspec_kw={"width_ratios": [2, 1]})
    width = 0.8 / len(variants)
    # metric 1: KiB per GiB at each size, log scale, min-max as error bars
    ax = axes[0]
    groups = [(p, g) for p in paths for g in SHOWN_GIB]
    for j, v in enumerate(variants):
        for i, (p, g) in enumerate(groups):
            r = next(r for r in rows if r["path"] == p and r["variant"] == v)
            s = r[f"cost_{g}"]
            x = i + (j - (len(variants) - 1) / 2) * width
            if s:
                ax.bar(x, s["median"], width, color=COLORS[v],
                       yerr=[[s["median"] - s["min"]], [s["max"] - s["median"]]], capsize=2,
                       label=v if i == 0 else None)
                ax.text(x, s["max"] * 1.15, f"{s['median']:.0f}", ha="center", fontsize=6)
            else:
                ax.bar(x, 0, width, color=COLORS[v], label=v if i == 0 else None)
                ax.text(x, 12, "failed", ha="center", va="bottom", fontsize=6, rotation=90)
    ax.set_yscale("log")
    ax.set_ylim(10, 1e5)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels([f"{PATH_TITLES[p]}\n{g} GiB" for p, g in groups], fontsize=7)
    ax.set_ylabel("KiB of boot memory per GiB added (log)")
    ax.set_title("1. Cost of the hot-add (lower is better)", fontsize=10)
    ax.legend(fontsize=8)
    # metric 3: the largest add survived
    ax = axes[1]
    for j, v in enumerate(variants):
        for i, p in enumerate(paths):
            r = next(r for r in rows if r["path"] == p and r["variant"] == v)
            x = i + (j - (len(variants) - 1) / 2) * width
            best = r["largest_gib"] or 0
            ax.bar(x, best, width, color=COLORS[v], label=v if i == 0 else None)
            ax.text(x, max(best, 1) * 1.1, f"{best} GiB" if best else "none",
                    ha="center", fontsize=7)
    ax.set_yscale("log", base=2)
    ax.set_ylim(1, 16384)   # headroom for the legend
    ax.set_xticks(range(len(paths)))
    ax.set_xticklabels([PATH_TITLES[p] for p in paths], fontsize=8)
    ax.set_ylabel("GiB (log2)")
    ax.set_title(f"3. Largest add a {GUEST_MIB} MiB guest survives\n(of "
                 f"{', '.join(str(g) for g in LADDER_GIB)} GiB)", fontsize=10)
    ax.legend(fontsize=8)
    fig.suptitle("Stock Linux 6.12.117 against the series, memory_hotplug.memmap_on_memory, "
                 f"{title}, {GUEST_MIB} MiB TCG guest", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def flat_kernels(kernels):
    """{"ours": path} as it is; {"ours": {path: kernel}} as {"ours path": kernel}."""
    return {(f"{who} {p}" if isinstance(k, dict) else who): x
            for who, k in kernels.items()
            for p, x in (k.items() if isinstance(k, dict) else [(None, k)])}


def file_digest(path):
    """sha256 of a file, the first 16 hex digits (which kernel took a sample)."""
    return file_sha256(path)[:16]


def bench(kernels, initrd, rundir, accel, outdir, repeat, timing_repeat, paths, command,
          set_name="main", full=True, resume=False):
    """`full`: the default run (every path, default repetitions, default
    folder); only that one rewrites the README.  `resume`: take over the
    samples an interrupted run of the same kernels left in samples.jsonl."""
    spec = SETS[set_name]
    flat = flat_kernels(kernels)
    identity = {"set": set_name, "accel": accel,
                "kernels": {k: file_digest(p) for k, p in sorted(flat.items())}}
    try:
        b = Bench(kernels, initrd, rundir, accel, repeat, timing_repeat, paths,
                  variants=spec["variants"], samples_file=os.path.join(outdir, "samples.jsonl"),
                  resume=resume, identity=identity)
    except ResumeError as e:
        print(f"harness: error: {e}", file=sys.stderr)
        return 2
    t0 = time.monotonic()
    rows, samples = b.run()
    info = report.machine()
    info.update(accel=accel, command=command, seconds=round(time.monotonic() - t0),
                kernels={k: os.path.relpath(p, ROOT) for k, p in flat.items()},
                kernel_digests=identity["kernels"], set=set_name,
                runs=b.runs)
    md = markdown(rows, info, b.commands, repeat, timing_repeat, spec["title"])
    report.write(outdir, "bench", {"machine": info, "repeat": repeat,
                                   "timing_repeat": timing_repeat, "rows": rows,
                                   "samples": samples, "qemu": b.commands}, md)
    chart(os.path.join(outdir, "bench.png"), rows, spec["title"])
    readme = os.path.join(ROOT, "README.md")
    rel = os.path.relpath(outdir, os.path.dirname(readme))
    if not full:
        print(f"# not the default run: {outdir} written, README.md left as it is")
    elif set_name == "main":
        report.update_readme(readme, "bench-chart",
                             f"![benchmark chart]({rel}/bench.png)\n\n"
                             f"Measured by `make bench` ({info['date']}, accel {accel}): boot "
                             "memory a hot-add costs, and the largest add a 256 MiB guest "
                             "survives, stock kernel against the series.  Tables and method: "
                             "[Benchmarks](#benchmarks).")
        report.update_readme(readme, "bench", md)
    else:
        report.update_readme(readme, f"bench-{set_name}",
                             f"![benchmark chart, {set_name}]({rel}/bench.png)\n\n" + md)
    print(md)
    print(f"# wrote {outdir}/bench.json, bench.md, bench.png in {info['seconds']} s")
    return 0
