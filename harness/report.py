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


def update_readme(readme, marker, text):
    """Replace what stands between <!-- MARKER:begin --> and <!-- MARKER:end -->
    in the README with text, so that it always shows the last run."""
    begin, end = f"<!-- {marker}:begin -->", f"<!-- {marker}:end -->"
    with open(readme) as f:
        doc = f.read()
    if begin not in doc or end not in doc:
        raise ValueError(f"{readme} has no {begin} ... {end} section")
    head, rest = doc.split(begin, 1)
    _, tail = rest.split(end, 1)
    with open(readme, "w") as f:
        f.write(f"{head}{begin}\n{text.strip()}\n{end}{tail}")
