"""Result files: JSON, a Markdown table and a PNG chart, all from one run."""

import json
import os
import platform
import subprocess
import time


def machine():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    qemu = subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True,
                          text=True).stdout.splitlines()[:1]
    return {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "host": f"{platform.machine()}, {os.cpu_count()} CPUs, {cpu}",
            "qemu": qemu[0] if qemu else "?"}


def markdown_table(columns, rows):
    """columns: [(key, title)]; rows: [dict].  Missing values print as '-'."""
    out = ["| " + " | ".join(t for _, t in columns) + " |",
           "|" + "|".join("---" for _ in columns) + "|"]
    for r in rows:
        out.append("| " + " | ".join(str(r.get(k, "-")) for k, _ in columns) + " |")
    return "\n".join(out) + "\n"


def write(outdir, name, data, md):
    os.makedirs(outdir, exist_ok=True)
    with open(os.path.join(outdir, f"{name}.json"), "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
    with open(os.path.join(outdir, f"{name}.md"), "w") as f:
        f.write(md)
