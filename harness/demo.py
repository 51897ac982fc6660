"""`make demo`: boot a 256 MiB guest with memmap_on_memory=0 and =1, hot-add
one pc-dimm in each, and report what it cost and what it gave."""

import os

from . import measure, report
from .measure import GIB, KIB, MIB
from .paths import ROOT, shell_line
from .vm import VM, VMError

MODES = ("0", "1")


def sample(kernel, initrd, rundir, accel, mode, size):
    name = f"demo-mode{mode}-{size // GIB}g"
    vm = VM(name, kernel, initrd, os.path.join(rundir, name),
            append=f"memory_hotplug.memmap_on_memory={mode}", accel=accel)
    row = {"mode": f"memmap_on_memory={mode}", "added_gib": size // GIB,
           "qemu": shell_line(vm.command_line())}
    with vm:
        try:
            r = measure.hotadd(vm, size, zone="online_movable")
        except VMError as e:
            why = measure.failure_text(vm, e)
            row.update(ok=False, panicked=why.endswith("(guest panicked)"),
                       result=f"failed: {why}")
            return row
    row.update(ok=True, result="ok",
               consumed_kib_per_gib=round(r["consumed_per_gib"] / KIB, 1),
               memtotal_gain_mib=round(r["memtotal_gain"] / MIB, 1),
               usable_pct=round(100 * r["memtotal_gain"] / size, 3),
               online_seconds=round(r["online_seconds"], 2),
               add_seconds=round(r["add_seconds"], 2))
    return row


def chart(path, rows, sizes):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    width = 0.38
    colors = {"0": "#c0392b", "1": "#27ae60"}
    panels = [("consumed_kib_per_gib", "KiB of boot memory per GiB added (log)",
               "Cost of the hot-add (lower is better)", True),
              ("usable_pct", "% of the added memory in MemTotal",
               "Usable after onlining (higher is better)", False)]
    for ax, (key, ylabel, title, log) in zip(axes, panels):
        for j, mode in enumerate(MODES):
            xs, vals, notes = [], [], []
            for i, size in enumerate(sizes):
                r = next(r for r in rows if r["mode"].endswith("=" + mode)
                         and r["added_gib"] == size)
                xs.append(i + (j - 0.5) * width)
                vals.append(r.get(key) or 0)
                notes.append(f"{r[key]:g}" if r["ok"] else
                             "guest\npanicked" if r.get("panicked") else "add\nrefused")
            ax.bar(xs, vals, width, color=colors[mode], label=f"memmap_on_memory={mode}")
            for x, v, n in zip(xs, vals, notes):
                ax.text(x, v if v else (12 if log else 1), n, ha="center", va="bottom",
                        fontsize=8)
        ax.set_xticks(range(len(sizes)))
        ax.set_xticklabels([f"{s} GiB pc-dimm" for s in sizes])
        if log:
            ax.set_yscale("log")
            ax.set_ylim(10, 1e5)
        else:
            ax.set_ylim(0, 125)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend(fontsize=8, loc="upper center", ncol=2)
    fig.suptitle("Hot-add into a 256 MiB guest: memmap from boot memory (=0) "
                 "vs. memmap on the added memory (=1)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


COLUMNS = [("mode", "boot parameter"), ("added_gib", "GiB added"), ("result", "result"),
           ("consumed_kib_per_gib", "boot memory consumed (KiB/GiB)"),
           ("memtotal_gain_mib", "MemTotal gained (MiB)"), ("usable_pct", "usable %"),
           ("online_seconds", "seconds to online")]


def demo(kernel, initrd, rundir, accel, outdir, sizes):
    rows = []
    for size_gib in sizes:
        for mode in MODES:
            print(f"# demo: memmap_on_memory={mode}, {size_gib} GiB pc-dimm into a 256 MiB guest",
                  flush=True)
            rows.append(sample(kernel, initrd, rundir, accel, mode, size_gib * GIB))
            print("#   " + ", ".join(f"{k}={v}" for k, v in rows[-1].items() if k != "qemu"),
                  flush=True)
    info = report.machine()
    info["accel"] = accel
    md = (f"One pc-dimm hot-added into a fresh 256 MiB guest per row "
          f"({info['date']}; {info['host']}; {info['qemu']}, accel {accel}).\n\n"
          + report.markdown_table(COLUMNS, rows)
          + "\nBoot memory consumed: free memory (MemFree plus the per-CPU free lists, "
            "vmstat folded) before the add minus after it, blocks still offline.  "
            "MemTotal gained: after onlining every new block into ZONE_MOVABLE.  "
            "Seconds to online: guest clock, writing `online_movable` to each block.\n")
    report.write(outdir, "demo", {"machine": info, "sizes_gib": sizes, "rows": rows}, md)
    chart(os.path.join(outdir, "demo.png"), rows, sizes)
    readme = os.path.join(ROOT, "README.md")
    rel = os.path.relpath(outdir, os.path.dirname(readme))
    report.update_readme(readme, "demo", f"![demo chart]({rel}/demo.png)\n\n{md}")
    print(md)
    print(f"# wrote {os.path.relpath(outdir)}/demo.json, demo.md, demo.png")
    return 0 if any(r["ok"] for r in rows) else 1
