"""The series' own kernel tests: its KUnit suites at boot and through
tools/testing/kunit/kunit.py, and its kselftest memmap_on_memory.sh."""

import json
import os
import re
import shutil
import subprocess
import sys

from .. import measure, parsers
from ..measure import AUTO_ONLINE, MIB
from ..parsers import ktap_totals, parse_ktap
from ..passes import ARM64_PASSES, KUNIT_BUILD_DIR
from ..paths import shell_line
from ..vm import TARGET, TARGETS, dimm_base
from .base import check_console, scenario


def record_ktap(res, prefix, results, expand=()):
    """One test per top-level KTAP result; suites named in `expand` count
    each of their cases instead."""
    for r in results:
        if r["name"] in expand and r["subtests"]:
            for c in r["subtests"]:
                # a parameterised case passes with some parameters skipped
                skipped = [p["name"] for p in c["subtests"] if p["status"] == "skip"]
                status = "skip" if c["status"] == "pass" and skipped else c["status"]
                detail = c["directive"] or (f"skipped: {', '.join(skipped)}" if skipped else "")
                res.record(f"{prefix}: {r['name']}.{c['name']}", status, detail)
            continue
        detail = ""
        if r["subtests"]:
            t = ktap_totals(r["subtests"])
            detail = f"{t['pass']} passed, {t['fail']} failed, {t['skip']} skipped"
        if r["directive"]:
            detail = (detail + f" ({r['directive']})").strip()
        res.record(f"{prefix}: {r['name']}", r["status"], detail)


KUNIT_SUITE = "memory_hotplug_memmap"
KUNIT_SOURCE = "mm/memory_hotplug_kunit.c"
# suites that do not depend on the mode: required once, counted per case
KUNIT_ONCE = ("virtio_mem_sbm",)
# 3 GiB of RAM: q35 puts 2 GiB below 4 GiB and 1 GiB at 4-5 GiB, so the guest
# boots with a ZONE_NORMAL of its own.  Without one, a block the tests online
# into ZONE_NORMAL is the only memory GFP_KERNEL prefers, every slab refill in
# the meantime lands in it, and offlining it fails with -EBUSY now and then
# (seen on the series as landed, in =0 and =1 alike).  With boot memory in the
# zone the onlined pages go to the tail of the free lists and stay unused.
KUNIT_MEM_MIB = 3072
KUNIT_DIMM_ADDR = dimm_base(KUNIT_MEM_MIB)
# arm64 (virt): RAM from 1 GiB on, ZONE_NORMAL from 4 GiB on, so 4 GiB of
# RAM for 1 GiB of ZONE_NORMAL; the DIMM is one memory block, 512 MiB with
# 64 KiB pages.  QEMU also describes a cold-plugged DIMM in the device tree
# it gives the firmware, which may then report it as boot RAM: mem= keeps
# the boot memory to the guest's RAM, so the DIMM is left for the test
KUNIT_ARM64_MEM_MIB = 4096


def kunit_guest(ctx):
    """(RAM in MiB, the DIMM's address, its size, boot parameters) of the
    kunit scenario's guest on the pass's architecture."""
    if ctx.arch == "x86_64":
        return KUNIT_MEM_MIB, KUNIT_DIMM_ADDR, 128 * MIB, ""
    block = 512 * MIB if ctx.page_size == 64 << 10 else 128 * MIB
    return (KUNIT_ARM64_MEM_MIB, dimm_base(KUNIT_ARM64_MEM_MIB, TARGETS[ctx.arch]), block,
            f"mem={KUNIT_ARM64_MEM_MIB}M")


@scenario("kunit", "KUnit at boot, per memmap_on_memory mode, with a cold-plugged DIMM "
                   "left unadded for the hotplug cases",
          passes=("main", "debug", "nothp") + ARM64_PASSES, topics=("admin", "arm64"))
def sc_kunit(ctx, res):
    mem_mib, want_addr, dimm_size, extra = kunit_guest(ctx)
    for i, mode in enumerate(("1", "0", "force")):
        name = f"kunit-mode{mode}"
        append = (f"acpi_no_memhotplug memory_hotplug_kunit.start={want_addr:#x} "
                  f"memory_hotplug.memmap_on_memory={mode} {extra}").strip()
        with ctx.vm(name, append, mem_mib=mem_mib, slots=2, maxmem_gib=8,
                    dimms=[{"id": "kunit", "size": dimm_size}]) as vm:
            addr = vm.qmp.execute("query-memory-devices")[0]["data"]["addr"]
            con = vm.console()
        if addr != want_addr:
            res.fail(f"{name}: DIMM at the address given to the test",
                     f"QEMU put it at {addr:#x}, not {want_addr:#x}")
            continue
        results = parse_ktap(con)
        if not results:
            res.fail(f"{name}: KTAP output on the console", f"none in {vm.console_path}")
            continue
        if not any(r["name"] == KUNIT_SUITE for r in results):
            res.fail(f"{name}: suite {KUNIT_SUITE} ran", "not in the KTAP output "
                     "(CONFIG_MEMORY_HOTPLUG_KUNIT_TEST missing from the kernel?)")
        # the other suites do not depend on the mode: count them once
        shown = results if i == 0 else [r for r in results if r["name"] == KUNIT_SUITE]
        if i == 0:
            for suite in KUNIT_ONCE:
                if not any(r["name"] == suite for r in results):
                    res.fail(f"{name}: suite {suite} ran", "not in the KTAP output")
        record_ktap(res, name, shown, expand=(KUNIT_SUITE,) + KUNIT_ONCE)
        check_console(res, name, vm)


KUNITCONFIGS = ("mm/memory_hotplug.kunitconfig", "drivers/virtio/virtio_mem.kunitconfig")
# the guest kunit.py boots: the kunit scenario's, the DIMM at KUNIT_DIMM_ADDR
KUNIT_TOOL_QEMU = (f"-M {TARGET['machine']} -cpu {TARGET['cpu']} -accel tcg "
                   f"-m {KUNIT_MEM_MIB},slots=2,maxmem=8G "
                   "-object memory-backend-ram,id=kunit,size=128M "
                   "-device pc-dimm,id=kunit,memdev=kunit")


def kunit_tool(ctx, mode, build_dir, out_dir):
    """tools/testing/kunit/kunit.py run on the series' tree for one mode;
    returns (exit status, its output, its JSON or None)."""
    os.makedirs(out_dir, exist_ok=True)
    json_path = os.path.abspath(os.path.join(out_dir, "kunit.json"))
    if os.path.exists(json_path):
        os.unlink(json_path)
    cmd = [sys.executable, "tools/testing/kunit/kunit.py", "run", "--arch=x86_64",
           *(f"--kunitconfig={k}" for k in KUNITCONFIGS), f"--build_dir={build_dir}",
           f"--jobs={os.cpu_count()}", "--timeout=900",
           "--make_options", "CC=ccache gcc" if shutil.which("ccache") else "CC=gcc",
           "--qemu_args", KUNIT_TOOL_QEMU,
           "--kernel_args", "acpi_no_memhotplug",
           "--kernel_args", f"memory_hotplug_kunit.start={KUNIT_DIMM_ADDR:#x}",
           "--kernel_args", f"memory_hotplug.memmap_on_memory={mode}",
           f"--json={json_path}"]
    env = dict(os.environ, CCACHE_BASEDIR=os.path.dirname(os.path.dirname(ctx.tree)),
               CCACHE_NOHASHDIR="1")
    with open(os.path.join(out_dir, "kunit.cmd"), "w") as f:
        f.write(shell_line(cmd) + "\n")
    proc = subprocess.run(cmd, cwd=ctx.tree, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=3600)
    with open(os.path.join(out_dir, "kunit.log"), "w") as f:
        f.write(proc.stdout)
    doc = None
    if os.path.exists(json_path):
        with open(json_path) as f:
            doc = json.load(f)
    return proc.returncode, proc.stdout, doc


@scenario("kunit-tool", "the hotplug KUnit suites through tools/testing/kunit/kunit.py run "
                        f"with {' and '.join(KUNITCONFIGS)}, per memmap_on_memory mode, on a "
                        "kernel it builds itself", passes=("main",), topics=("admin",))
def sc_kunit_tool(ctx, res):
    build_dir = KUNIT_BUILD_DIR
    missing = [k for k in KUNITCONFIGS if not os.path.exists(os.path.join(ctx.tree, k))]
    if missing:
        res.fail("kunit-tool: the .kunitconfig files in the tree",
                 f"missing in {ctx.tree}: {' '.join(missing)}")
        return
    # every case of the suite the tree has must run (a topic before
    # pageblock has fewer than the whole series)
    with open(os.path.join(ctx.tree, KUNIT_SOURCE)) as f:
        in_source = parsers.kunit_source_cases(f.read(), KUNIT_SUITE + "_cases")
    if not in_source:
        res.fail("kunit-tool: the suite's cases in the tree",
                 f"no {KUNIT_SUITE}_cases[] in {KUNIT_SOURCE}")
        return
    for i, mode in enumerate(("1", "0", "force")):
        name = f"kunit-tool-mode{mode}"
        rc, out, doc = kunit_tool(ctx, mode, build_dir, os.path.join(ctx.rundir, name))
        summary = parsers.kunit_tool_summary(out)
        if summary is None or doc is None:
            tail = " | ".join(out.strip().splitlines()[-3:])
            res.fail(f"{name}: kunit.py ran the suites", f"exit {rc}: {tail}")
            continue
        cases = parsers.kunit_tool_cases(doc)
        # the mode-independent suite once, as in the kunit scenario
        shown = [c for c in cases if i == 0 or c[0].startswith(KUNIT_SUITE + ".")]
        for case, status in shown:
            res.record(f"{name}: {case}", status)
        hotplug = [c for c in cases if c[0].startswith(KUNIT_SUITE + ".")]
        res.check(f"{name}: kunit.py's summary: every case passed, exit 0",
                  rc == 0 and summary["passed"] == summary["total"] == len(cases)
                  and len(hotplug) == len(in_source) and not summary["errors"],
                  f"exit {rc}, ran {summary['total']}: " +
                  ", ".join(f"{k} {v}" for k, v in summary.items() if k != "total" and v)
                  + f"; {len(hotplug)} of the {len(in_source)} {KUNIT_SUITE} cases in the tree")


KSELFTEST = "/kselftest/memory-hotplug/memmap_on_memory.sh"


# RAM beyond mem= that the kselftest adds itself with probe: q35 puts 2 GiB
# of the 3 GiB below 4 GiB and 1 GiB at 4-5 GiB; mem= keeps 512 MiB of that
# (boot memory in ZONE_NORMAL, so that the blocks the test onlines into it
# can be offlined again) and leaves 4.5-5 GiB, four blocks, to probe
KSELFTEST_MEM_MIB = 3072
KSELFTEST_APPEND = "mem=4608M"


@scenario("kselftest", "memory-hotplug/memmap_on_memory.sh, with =1 and =0: it adds memory "
                       "above mem= with probe itself, and leaves every block offline",
          passes=("main", "debug", "nothp"), topics=("tests",))
def sc_kselftest(ctx, res):
    for mode in ("1", "0"):
        name = f"kselftest-mode{mode}"
        with ctx.vm(name, f"{KSELFTEST_APPEND} memory_hotplug.memmap_on_memory={mode}",
                    mem_mib=KSELFTEST_MEM_MIB) as vm:
            if vm.run(f"[ -x {KSELFTEST} ] && echo yes || echo no").strip() != "yes":
                res.fail(f"{name}: {KSELFTEST} in the guest image",
                         "missing: the series does not add it?")
                continue
            b0 = measure.blocks(vm)
            # the test must keep its blocks offline while it probes and give
            # the policy back afterwards
            vm.run(f"echo online_movable > {AUTO_ONLINE}")
            # probing is the test's opt-in: the guest's RAM above mem= is free
            rc, out = vm.run(f"PROBE_BLOCKS=2 {KSELFTEST}", timeout=600, check=False)
            after = measure.blocks(vm)
            auto = vm.run(f"cat {AUTO_ONLINE}").strip()
            res.check(f"{name}: auto_online_blocks as it was (online_movable)",
                      auto == "online_movable", auto)
            judge_kselftest(ctx, res, name, rc, out)
            probed = sorted(set(after) - set(b0))
            res.check(f"{name}: the test added its own blocks with probe",
                      len(probed) >= 2 and "added with probe" in out,
                      f"{len(probed)} new blocks: {' '.join(map(str, probed))}")
            changed = [b for b in after if b in b0 and after[b]["state"] != b0[b]["state"]]
            online = [b for b in probed if after[b]["state"] != "offline"]
            res.check(f"{name}: every block as the test found it, the ones it added offline",
                      not changed and not online,
                      f"changed: {changed or 'none'}, added and not offline: {online or 'none'}")
            if mode == "1" and len(probed) >= 2:
                kselftest_found_and_killed(vm, res, name, probed)
            check_console(res, name, vm)


def judge_kselftest(ctx, res, name, rc, out, skip=True):
    """One run of the kselftest: its output saved, each KTAP result one
    test, and its exit status agreeing with them; exit 4 (it skipped) is a
    skip where `skip` allows it, else a failure."""
    with open(os.path.join(ctx.rundir, name, "kselftest.log"), "w") as f:
        f.write(out)
    results = parse_ktap(out)
    if rc == 4 and skip:
        res.skip(f"{name}: memmap_on_memory.sh", out.strip().splitlines()[-1])
    elif not results or rc == 4:
        res.fail(f"{name}: memmap_on_memory.sh printed KTAP results",
                 f"exit {rc}: {out.strip()[-300:]}")
    else:
        record_ktap(res, name, results)
        res.check(f"{name}: exit status agrees with its results",
                  (rc == 0) == all(r["status"] != "fail" for r in results), f"exit {rc}")


def kselftest_found_and_killed(vm, res, name, probed):
    """The kselftest again, without PROBE_BLOCKS: it takes the blocks it
    added before, now offline, as found ones (at most MAX_FOUND).  Then
    twice killed with SIGTERM (the kselftest runner's timeout): stopped
    while a block is online in its walk, and while it probes with
    auto_online_blocks set to offline; every block and the policy must be
    as they were."""
    rc, out = vm.run(f"MAX_FOUND=1 {KSELFTEST}", timeout=600, check=False)
    results = parse_ktap(out)
    record_ktap(res, f"{name}-found", results)
    res.check(f"{name}-found: took MAX_FOUND=1 of the blocks it found offline",
              rc == 0 and re.search(r"\b1 blocks of .* found offline", out) is not None,
              f"exit {rc}: {out.strip()[-200:]}")
    states = " ".join(f"/sys/devices/system/memory/memory{b}/state" for b in probed)
    for what, env, when in (
            ("while a block it found is online", "",
             f"grep -q '^online' {states}"),
            ("while it probes, auto_online_blocks set to offline", "PROBE_BLOCKS=1 ",
             f"grep -qx offline {AUTO_ONLINE}")):
        auto = vm.run(f"cat {AUTO_ONLINE}").strip()
        before = measure.blocks(vm)
        # stop the test when the condition holds, check it still holds
        # while it is stopped, then SIGTERM and let it go on to its trap
        said = vm.run(f"{env}{KSELFTEST} > /tmp/killed.log 2>&1 & pid=$!; n=0; "
                      f"until {when} || [ $n -ge 20000 ]; do n=$((n + 1)); usleep 200; done; "
                      f"kill -STOP $pid; if {when}; then echo held; else echo missed; fi; "
                      "kill -TERM $pid; kill -CONT $pid; wait $pid; echo rc=$?",
                      timeout=180, check=False)[1].split()
        after = measure.blocks(vm)
        left = [b for b in after if after[b]["state"] != before.get(b, {}).get("state", "offline")]
        now = vm.run(f"cat {AUTO_ONLINE}").strip()
        res.check(f"{name}-killed {what}: exit 143, every block offline or as it was, "
                  f"auto_online_blocks as it was ({auto})",
                  said[:1] == ["held"] and said[-1:] == ["rc=143"] and not left and now == auto,
                  f"{' '.join(said)}; changed: {left or 'none'}; auto_online_blocks {now}")




# arm64 has no probe interface: the kselftest takes the blocks of a DIMM
# hot-added through ACPI and left offline
KSELFTEST_ARM64_APPEND = "memhp_default_state=offline"


@scenario("kselftest-found", "arm64: memory-hotplug/memmap_on_memory.sh, with =1 and =0, on "
                             "the two blocks of a DIMM hot-added and left offline",
          passes=ARM64_PASSES, topics=("tests", "arm64"))
def sc_kselftest_found(ctx, res):
    for mode in ("1", "0"):
        name = f"kselftest-found-mode{mode}"
        with ctx.vm(name, f"{KSELFTEST_ARM64_APPEND} memory_hotplug.memmap_on_memory={mode}",
                    slots=2, maxmem_gib=8) as vm:
            if vm.run(f"[ -x {KSELFTEST} ] && echo yes || echo no").strip() != "yes":
                res.fail(f"{name}: {KSELFTEST} in the guest image",
                         "missing: the series does not add it?")
                continue
            before = measure.linked_blocks(vm)
            measure.add_dimm(vm, "ks", 2 * measure.block_size(vm))
            added = measure.wait_new_blocks(vm, before, 2, timeout=120)
            b0 = measure.blocks(vm)
            offline = sorted(b for b, v in b0.items() if v["state"] == "offline")
            res.check(f"{name}: the DIMM's 2 blocks are there, offline", offline == added,
                      f"added {added}, offline blocks: {offline or 'none'}")
            rc, out = vm.run(f"MAX_FOUND=2 {KSELFTEST}", timeout=600, check=False)
            after = measure.blocks(vm)
            # it has memory to test: a skip is a failure
            judge_kselftest(ctx, res, name, rc, out, skip=False)
            res.check(f"{name}: it took the 2 blocks it found offline",
                      re.search(r"\b2 blocks of .* found offline", out) is not None,
                      out.strip()[-200:])
            changed = [b for b in after if after[b]["state"] != b0.get(b, {}).get("state")]
            res.check(f"{name}: every block as the test found it", not changed,
                      f"changed: {changed or 'none'}")
            check_console(res, name, vm)
