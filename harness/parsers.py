"""Parsers for what the guest and QEMU print.  Pure functions, no I/O."""

import json
import re
from typing import NamedTuple

MEMINFO_LINE = re.compile(r"^(\w+(?:\(\w+\))?):\s+(\d+)(?:\s+kB)?$")


def parse_meminfo(text):
    """/proc/meminfo -> {field: bytes} (fields without a unit stay counts)."""
    out = {}
    for line in text.splitlines():
        m = MEMINFO_LINE.match(line.strip())
        if not m:
            continue
        value = int(m.group(2))
        out[m.group(1)] = value * 1024 if line.rstrip().endswith("kB") else value
    return out


def parse_vmstat(text):
    """/proc/vmstat -> {counter: int}."""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out


ZONE_HEAD = re.compile(r"^Node (\d+), zone\s+(\w+)")


def parse_zoneinfo(text):
    """/proc/zoneinfo -> {(node, zone): {field: int}} for the per-zone
    counters and watermarks ('min', 'low', 'high'); 'pcp' is the sum of the
    per-CPU free lists ('count:'), pages that are free but not in the buddy
    and so not in MemFree."""
    zones = {}
    cur = None
    for line in text.splitlines():
        m = ZONE_HEAD.match(line)
        if m:
            cur = zones.setdefault((int(m.group(1)), m.group(2)), {"pcp": 0})
            continue
        if cur is None:
            continue
        parts = line.split()
        if parts[:1] == ["start_pfn:"]:
            parts[0] = "start_pfn"
        if len(parts) == 2 and parts[0] == "count:" and parts[1].isdigit():
            cur["pcp"] += int(parts[1])
            continue
        if len(parts) == 2 and parts[1].isdigit() and parts[0] in (
                "spanned", "present", "managed", "start_pfn", "free", "cma", "min", "low",
                "high"):
            cur[parts[0]] = int(parts[1])
        elif len(parts) == 3 and parts[0] == "pages" and parts[1] == "free":
            cur["free"] = int(parts[2])
    return zones


def parse_blocks(text):
    """measure.BLOCKS_CMD's lines 'memoryN/state:STATE' and
    'memoryN/valid_zones:ZONES' (or lines 'memoryN STATE ZONES', as older
    recordings have them) -> {N: {'state': ..., 'zones': [...]}}; a block
    without valid_zones (it has holes) has no zones."""
    blocks = {}
    for line in text.splitlines():
        m = re.match(r"memory(\d+)/(state|valid_zones):(.*)$", line.strip())
        if m:
            b = blocks.setdefault(int(m.group(1)), {"state": "", "zones": []})
            if m.group(2) == "state":
                b["state"] = m.group(3).strip()
            else:
                b["zones"] = m.group(3).split()
            continue
        parts = line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith("memory"):
            continue
        idx = parts[0][len("memory"):]
        if not idx.isdigit():
            continue
        blocks[int(idx)] = {
            "state": parts[1],
            "zones": parts[2].split() if len(parts) > 2 else [],
        }
    return {n: b for n, b in blocks.items() if b["state"]}


class QMPError(Exception):
    """A QMP command answered with an error object."""

    def __init__(self, cls, desc):
        super().__init__(f"{cls}: {desc}")
        self.cls = cls
        self.desc = desc


def parse_qmp_message(line):
    """One QMP line -> ('return', value) | ('error', QMPError) | ('event', msg)
    | ('greeting', msg).  Raises ValueError for anything else."""
    msg = json.loads(line)
    if not isinstance(msg, dict):
        raise ValueError(f"QMP message is not an object: {line!r}")
    if "return" in msg:
        return "return", msg["return"]
    if "error" in msg:
        err = msg["error"]
        return "error", QMPError(err.get("class", "?"), err.get("desc", "?"))
    if "event" in msg:
        return "event", msg
    if "QMP" in msg:
        return "greeting", msg
    raise ValueError(f"unknown QMP message: {line!r}")


# KTAP (Documentation/dev-tools/ktap.rst), as KUnit and kselftest print it.
KTAP_VERSION = re.compile(r"^\s*(?:KTAP|TAP) version \d+")
KTAP_PLAN = re.compile(r"^\s*1\.\.(\d+)")
KTAP_RESULT = re.compile(
    r"^(\s*)(ok|not ok)\s+(\d+)\s*(?:-\s*)?([^#]*?)\s*(?:#\s*(\w+)\s*(.*))?$")
# a suite header that KUnit printed without a version line of its own
# (kernels before KTAP v1, and the kunit_tool fixtures) opens a level too
KTAP_SUBTEST = re.compile(r"^\s*# Subtest: ")
# printk's "[    1.234567] ", and with CONFIG_PRINTK_CALLER "[    1.234567][    T1] "
# (a task) or "[    1.234567][    C0] " (a CPU in interrupt context); the
# caller id alone when printk.time=0
CONSOLE_PREFIX = re.compile(r"^(?:\[\s*\d+\.\d+\](?:\[\s*[TC]\d+\])?|\[\s*[TC]\d+\])\s?")


def strip_console(line):
    return CONSOLE_PREFIX.sub("", line.rstrip("\r\n"))


def parse_ktap(text):
    """Find KTAP documents in console or program output.

    Returns a list of top-level results: dicts with number, name, status
    ('pass'|'fail'|'skip'), directive text and subtests (same shape).  A
    level whose plan promises more results than it printed (a crash
    mid-run) ends in a 'fail' entry named '<missing N of M>' so that a
    truncated run cannot pass.

    Nesting follows indentation: a version line or a '# Subtest:' header
    indented deeper than the current level opens the next one.
    """
    lines = [strip_console(line) for line in text.splitlines()]
    results = []
    i = 0
    while i < len(lines):
        if KTAP_VERSION.match(lines[i]):
            indent = len(lines[i]) - len(lines[i].lstrip())
            doc, i = _parse_level(lines, i + 1, indent)
            results.extend(doc)
        else:
            i += 1
    return results


def _parse_level(lines, i, indent):
    """Parse results at one indentation level starting after its version
    line or '# Subtest:' header."""
    results = []
    plan = None
    pending = []  # subtests seen for the next result at this level
    while i < len(lines):
        line = lines[i]
        stripped = line.lstrip()
        ind = len(line) - len(stripped)
        if not stripped:
            i += 1
            continue
        opens = KTAP_VERSION.match(line) or KTAP_SUBTEST.match(line)
        if opens and ind > indent:
            sub, i = _parse_level(lines, i + 1, ind)
            pending = sub
            continue
        if KTAP_VERSION.match(line) and ind <= indent:
            break  # next document at this level
        if opens and ind < indent:
            break  # a sibling of an enclosing level
        m = KTAP_PLAN.match(line)
        if m and ind == indent and plan is None and not results:
            plan = int(m.group(1))
            i += 1
            continue
        m = KTAP_RESULT.match(line)
        if m and len(m.group(1)) == indent:
            directive = (m.group(5) or "").upper()
            status = "pass" if m.group(2) == "ok" else "fail"
            if directive == "SKIP":
                status = "skip"
            elif directive == "TODO":
                status = "pass" if status == "pass" else "skip"
            results.append({
                "number": int(m.group(3)),
                "name": m.group(4).strip(),
                "status": status,
                "directive": (m.group(6) or "").strip(),
                "subtests": pending,
            })
            pending = []
            i += 1
            if plan is not None and len(results) >= plan:
                break
            continue
        if m and len(m.group(1)) < indent:
            break  # a result of an enclosing level
        i += 1
    if plan is not None and len(results) < plan:
        results.append({"number": len(results) + 1,
                        "name": f"<missing {plan - len(results)} of {plan}>",
                        "status": "fail", "directive": "truncated output",
                        "subtests": pending})
    return results, i


def ktap_totals(results):
    """Count top-level results by status."""
    totals = {"pass": 0, "fail": 0, "skip": 0}
    for r in results:
        totals[r["status"]] += 1
    return totals


class Marker(NamedTuple):
    """A console line the harness looks for.  `splat`: the line means the run
    is broken (console_problems()).  `fails`: the hot-add paths ("dimm",
    "vmem") whose failure the line reports (add_failure()).  `why`: its
    rank as the reason a hot-add failed, 1 the most telling (0: not a
    reason), and `label`: what a report says then (None: the line)."""
    kind: str
    rx: re.Pattern
    splat: bool = False
    fails: tuple = ()
    why: int = 0
    label: str = None


# Every console line the harness looks for, in one table.  The splats come
# first, the most specific kind first (a soft lockup also says "BUG: "); the
# formats are the 6.12 printk strings, and tests/samples/splats.log has a
# recorded line of each.
MARKERS = (
    Marker("panic", re.compile(r"Kernel panic - not syncing"), splat=True),
    Marker("oops", re.compile(r"\bOops: |general protection fault"), splat=True),
    Marker("lockup", re.compile(r"BUG: soft lockup - CPU#|Watchdog detected hard LOCKUP"),
           splat=True),
    Marker("hung-task", re.compile(r"INFO: task .+:\d+ blocked for more than \d+ seconds"),
           splat=True),
    Marker("rcu-stall", re.compile(r"INFO: \w+ (?:self-)?detected (?:expedited )?stalls? on|"
                                   r"\w+ kthread starved for \d+ jiffies"), splat=True),
    # dump_page() also explains a failed offline ("unmovable page",
    # "isolation failed", "migration failure"): memory in use refuses to go
    # offline, which the scenarios and peer suites that offline busy memory
    # expect, and which fails a scenario that expects the offline to succeed
    Marker("bad-page", re.compile(r"BUG: Bad page (?:state|map|cache)|page dumped because: "
                                  r"(?!unmovable page$|isolation failed$|migration failure$)"),
           splat=True),
    Marker("kasan", re.compile(r"BUG: KASAN"), splat=True),
    Marker("bug", re.compile(r"\bBUG: |kernel BUG at"), splat=True),
    Marker("warn", re.compile(r"WARNING: CPU: \d+ PID: \d+|------------\[ cut here \]"),
           splat=True),
    Marker("oom", re.compile(r"invoked oom-killer|Out of memory"), splat=True),
    Marker("lockdep", re.compile(r"possible (?:recursive|circular) locking|INFO: possible|"
                                 r"inconsistent lock state|suspicious RCU usage|"
                                 r"bad unlock balance|lock held when returning"), splat=True),
    Marker("corruption", re.compile(r"list_(?:add|del) corruption"), splat=True),
    # a failed hot-add: admin 9/9 refuses an add whose memmap can never fit,
    # the base drains memory and panics; ACPI and virtio-mem say they failed
    Marker("refused", re.compile(r"memmap does not fit"), why=1),
    Marker("deadlock", re.compile(r"System is deadlocked on memory"), why=2,
           label="System is deadlocked on memory"),
    # as a reason only the OOM killer's "Out of memory" line, not the line
    # that says it was invoked
    Marker("out-of-memory", re.compile(r"Out of memory"), why=3, label="Out of memory"),
    Marker("dimm-failed", re.compile(r"add_memory failed"), fails=("dimm",), why=4,
           label="add_memory failed"),
    Marker("acpi-enable", re.compile(r"acpi_memory_enable_device"), fails=("dimm",)),
    Marker("vmem-failed", re.compile(r"adding memory failed"), fails=("dimm", "vmem")),
    Marker("vmem-broken", re.compile(r"marking device broken"), fails=("vmem",)),
)
MARKER = {m.kind: m for m in MARKERS}


def console_problems(text):
    """Return [(kind, line)] for every splat line in a console log."""
    found = []
    for line in text.splitlines():
        for m in MARKERS:
            if m.splat and m.rx.search(line):
                found.append((m.kind, strip_console(line)))
                break
    return found


def marked(text, kind):
    """The first line of `text` that marker `kind` matches, or None."""
    rx = MARKER[kind].rx
    return next((strip_console(ln) for ln in text.splitlines() if rx.search(ln)), None)


def add_failure(text, path):
    """The first line of `text` that says a hot-add through `path` ("dimm",
    "vmem") failed, or None."""
    kinds = [m for m in MARKERS if path in m.fails]
    return next((strip_console(ln) for ln in text.splitlines()
                 if any(m.rx.search(ln) for m in kinds)), None)


def failure_marker(console, default):
    """Why a hot-add failed, from the most telling marker line on `console`
    (its label, or the line), else `default`."""
    for m in sorted((m for m in MARKERS if m.why), key=lambda m: m.why):
        line = marked(console, m.kind)
        if line is not None:
            return m.label or line
    return default


KUNIT_TOOL_SUMMARY = re.compile(r"Testing complete\. Ran (\d+) tests?(?:: (.*))?$")


def kunit_tool_summary(text):
    """kunit.py's closing line -> {'total': N, 'passed': N, 'failed': N,
    'crashed': N, 'skipped': N, 'errors': N}, or None without one."""
    for line in reversed(text.splitlines()):
        m = KUNIT_TOOL_SUMMARY.search(line.strip())
        if not m:
            continue
        out = dict.fromkeys(("passed", "failed", "crashed", "skipped", "errors"), 0)
        out["total"] = int(m.group(1))
        for part in (m.group(2) or "").split(","):
            key, _, value = part.strip().partition(": ")
            if key in out and value.isdigit():
                out[key] = int(value)
        return out
    return None


def kunit_tool_cases(doc, prefix=""):
    """kunit.py --json output (KernelCI groups) -> [(suite.case, status)],
    status 'pass', 'fail' or 'skip' (ERROR, a crash, is a failure)."""
    out = []
    name = doc.get("name", "")
    here = prefix + name + "." if prefix or name != "KUnit Test Group" else ""
    for case in doc.get("test_cases", []):
        status = {"PASS": "pass", "SKIP": "skip"}.get(case.get("status"), "fail")
        out.append((here + case.get("name", "?"), status))
    for group in doc.get("sub_groups", []):
        out.extend(kunit_tool_cases(group, here))
    return out


def kunit_source_cases(c_text, cases_array):
    """The KUNIT_CASE()s of one case array (static struct kunit_case
    NAME[] = { ... }) of a C file -> [case name], in order; [] when the
    file has no such array."""
    m = re.search(r"struct\s+kunit_case\s+" + re.escape(cases_array) + r"\s*\[\]\s*=\s*\{(.*?)\};",
                  c_text, re.S)
    return re.findall(r"KUNIT_CASE\w*\(\s*(\w+)", m.group(1)) if m else []


def stress_ng_ops(yaml_text):
    """stress-ng --yaml output -> {stressor: bogo ops} (its metrics list)."""
    ops, name = {}, None
    for line in yaml_text.splitlines():
        key, _, value = line.strip().lstrip("- ").partition(":")
        value = value.strip()
        if key == "stressor":
            name = value
        elif key == "bogo-ops" and name and value.isdigit():
            ops[name] = int(value)
    return ops


KMEMLEAK_OBJECT = re.compile(r"^unreferenced object (0x[0-9a-f]+) \(size (\d+)\):")
# a leak whose backtrace runs through these is one of the hotplug paths'
KMEMLEAK_HOTPLUG = re.compile(
    r"memory_hotplug|add_memory|remove_memory|online_pages|offline_pages|memory_block|"
    r"memory_dev|memmap|vmemmap|altmap|sparse_|section_|virtio_mem|acpi_memory|probe_store|"
    r"firmware_map|init_memory_mapping|kernel_physical_mapping|arch_add_memory|"
    r"__add_pages|move_pfn_range|hotplug")


def parse_kmemleak(text):
    """/sys/kernel/debug/kmemleak -> [{'address', 'size', 'backtrace': [...],
    'hotplug': bool}], one per unreferenced object."""
    objects, cur, in_bt = [], None, False
    for line in text.splitlines():
        m = KMEMLEAK_OBJECT.match(line.strip())
        if m:
            cur = {"address": m.group(1), "size": int(m.group(2)), "backtrace": [],
                   "hotplug": False}
            objects.append(cur)
            in_bt = False
            continue
        if cur is None:
            continue
        if line.strip().startswith("backtrace"):
            in_bt = True
            continue
        if in_bt and line.strip():
            frame = re.sub(r"^\[<[0-9a-f]+>\]\s*", "", line.strip())
            cur["backtrace"].append(frame)
            if KMEMLEAK_HOTPLUG.search(frame):
                cur["hotplug"] = True
    return objects


def parse_slabinfo(text):
    """/proc/slabinfo -> {cache: bytes in its slabs} (num_slabs x pages per
    slab x 4 KiB)."""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 16 or parts[0].startswith("#") or parts[0] == "slabinfo":
            continue
        try:
            pages_per_slab = int(parts[5])
            num_slabs = int(parts[parts.index("slabdata") + 2])
        except (ValueError, IndexError):
            continue
        out[parts[0]] = num_slabs * pages_per_slab * 4096
    return out


# the /proc/meminfo fields that say where kernel memory went
KERNEL_FIELDS = ("Slab", "SReclaimable", "SUnreclaim", "KernelStack", "PageTables",
                 "SecPageTables", "VmallocUsed", "Percpu", "Cached", "Buffers", "AnonPages",
                 "Shmem")


def growth(before, after, top=5):
    """The `top` largest increases between two {name: bytes} maps."""
    keys = set(before) | set(after)
    deltas = sorted(((after.get(k, 0) - before.get(k, 0), k) for k in keys), reverse=True)
    return [(k, d) for d, k in deltas[:top] if d > 0]
