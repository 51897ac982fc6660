"""Suites written by others, in a guest whose hot-added memory hosts its own
memmap: the kernel's memory-hotplug/mem-on-off-test.sh (with the memory
notifier error injection), the mm selftests of hugetlb, compaction,
migration and memory failure, set up as their runner run_vmtests.sh sets
them up, and Debian's stress-ng with --memhotplug next to its memory
stressors.  Each suite's own verdicts count.  With a stock kernel given
(make test-full) the same guest boots the untouched base too, the table of
both goes to results/peers/ and the README, and ours must pass whatever
the stock kernel passes."""

import os
import shlex

from .. import measure, parsers
from ..measure import GIB, MIB
from ..report import markdown_table, update_readme, write
from ..paths import ROOT
from ..vm import VMError
from .base import check_console, scenario
# hot-added to node 1, offline: mem-on-off-test.sh's first step onlines
# every offline block, so it onlines these (a guest that onlined them itself
# made it print "SKIPPED - no hot-pluggable memory in offline state").  It
# writes "online", which puts them in ZONE_NORMAL of node 1: the suites'
# allocations of every kind can land there (in ZONE_MOVABLE compaction_test
# mlocks MemFree's worth of movable memory until the kernel's own page tables
# find no room, and the OOM killer stops it, on the stock kernel as on ours)
PEERS_SIZE = GIB
PEERS_BOOT_MIB = 1024          # run_vmtests.sh wants 256 MiB of huge pages
# migration's tests want two threads besides the one that migrates, or they
# skip ("Not enough threads or NUMA nodes available")
PEERS_CPUS = 3
MM_DIR = "/kselftest/mm"
MEM_ON_OFF = "/kselftest/memory-hotplug/mem-on-off-test.sh"
# The mm selftests of the categories hugetlb (with the memory-failure tests
# that run_vmtests.sh runs with -d), compaction and migration, each with the
# huge pages run_vmtests.sh gives it (256 MiB for the simple hugetlb tests),
# after dropping caches and compacting as it does.  Not run_vmtests.sh
# itself: its hugetlb category also runs the hugetlb cgroup charging tests,
# which hang in this guest (killed after 1500 s, on a kernel with the
# series); on a kernel without HugeTLB it stops at once.
# (test, huge pages, its arguments on a kernel without THP and HugeTLB, or
# None where it does not run there: without THP and HugeTLB only migration's
# two tests of plain anonymous memory can run; its others would skip or fail
# on the stock kernel as on ours)
MM_TESTS = (
    ("hugepage-mmap", 128, None), ("hugepage-shm", 128, None), ("map_hugetlb", 128, None),
    ("hugepage-mremap", 128, None), ("hugepage-vmemmap", 128, None),
    ("hugetlb-madvise", 128, None), ("hugetlb_dio", 128, None),
    ("hugetlb_fault_after_madv", 1, None), ("hugetlb_madv_vs_map", 1, None),
    ("compaction_test", 0, None), ("hugetlb-soft-offline", 8, None),
    ("migration", 4, "-t private_anon -t shared_anon"),
)
# Left out: hugetlb-read-hwpoison dies of SIGBUS (exit 135) on the stock
# kernel as on ours, every time, also run alone: its MADV_HWPOISON of a
# dirty shared hugetlb page kills the caller (make test-full, 2026-12-04)
MM_SETUP = ("echo 3 > /proc/sys/vm/drop_caches; echo 1 > /proc/sys/vm/compact_memory; "
            "[ ! -w /proc/sys/vm/nr_hugepages ] || echo {pages} > /proc/sys/vm/nr_hugepages; "
            "echo 268435456 > /proc/sys/kernel/shmmax; echo 4194304 > /proc/sys/kernel/shmall; "
            "cd " + MM_DIR + " && ./{test} {args}")
# (--numa: Debian's stress-ng 0.15 finds no NUMA nodes in the guest and skips)
STRESSORS = ("memhotplug", "vm", "mmap")
STRESS_CMD = ("cd /tmp && /usr/bin/stress-ng --memhotplug 1 --vm 1 --vm-bytes 192M --mmap 1 "
              "--mmap-bytes 64M --timeout {secs}s --metrics-brief "
              "--yaml /tmp/stress.yaml")
STRESS_SECS = 60


def add_memory(vm):
    """Hot-add 1 GiB to node 1, left offline: returns (its blocks, all of
    them offline, what was seen, MemTotal before)."""
    bs = measure.block_size(vm)
    before = measure.meminfo(vm)["MemTotal"]
    b0 = measure.linked_blocks(vm)
    measure.add_dimm(vm, "d0", PEERS_SIZE, node=1)
    new = measure.wait_new_blocks(vm, b0, PEERS_SIZE // bs, timeout=120)
    states = measure.blocks(vm)
    offline = sum(1 for b in new if states[b]["state"] == "offline")
    return new, offline == len(new), f"{offline} of {len(new)} blocks offline", before


def onlined(vm, new, before, hosting):
    """After mem-on-off-test.sh: (every new block online in ZONE_NORMAL,
    hosting its memmap if `hosting` and else not, what was seen)."""
    states = measure.blocks(vm)
    normal = sum(1 for b in new if states[b]["state"] == "online"
                 and states[b]["zones"] == ["Normal"])
    gain = measure.meminfo(vm)["MemTotal"] - before
    # a self-hosted memmap is 1/64 of the block: MemTotal grows by the rest
    want = PEERS_SIZE - PEERS_SIZE // 64 if hosting else PEERS_SIZE
    return (normal == len(new) and gain == want,
            f"{normal} of {len(new)} blocks online in Normal, MemTotal +{gain // MIB} MiB "
            f"(want +{want // MIB})")


def run_bounded(vm, cmd, secs, name):
    """Run `cmd` in the guest under `timeout`, its output kept in a file, so
    that a suite that hangs still shows how far it got.  Returns (exit
    status, output); 137 (KILL) when it ran out of time."""
    rc, text = vm.run(f"timeout -s KILL {secs} sh -c {shlex.quote(cmd)} >/tmp/{name}.log 2>&1; "
                      f"rc=$?; cat /tmp/{name}.log; exit $rc", timeout=secs + 120, check=False)
    save(vm, f"{name}.log", text)
    return rc, text


def mem_on_off(vm):
    """mem-on-off-test.sh as kselftest runs it: (status, detail).  Its own
    skips ("SKIPPED - ...", "skip all tests: ...", "skip extra tests: ...")
    exit 0; here they are skips."""
    return mem_on_off_verdict(*run_bounded(vm, f"bash {MEM_ON_OFF}", 900, "mem-on-off-test"))


def mem_on_off_verdict(rc, text):
    skipped = [ln.strip() for ln in text.splitlines()
               if "SKIPPED" in ln or ln.lstrip().startswith("skip ")]
    status = exit_status(rc)
    if status == "pass" and skipped:
        status = "skip"
    return status, f"exit {rc}" + (f": {skipped[0]}" if skipped else "")


def mm_test(vm, test, pages, args):
    """One mm selftest: (status, detail).  A KTAP skip or failure inside a
    test that exits 0 counts as its own."""
    return mm_verdict(*run_bounded(vm, MM_SETUP.format(pages=pages, test=test, args=args),
                                   600, test))


def mm_verdict(rc, text):
    ktap = parsers.ktap_totals(parsers.parse_ktap(text))
    status = exit_status(rc)
    if status == "pass" and ktap["fail"]:
        status = "fail"
    elif status == "pass" and ktap["skip"]:
        status = "skip"
    why = next((f"{r['name']}: {r['directive']}" for r in parsers.parse_ktap(text)
                if r["status"] == "skip"), "") if status == "skip" else ""
    return status, f"exit {rc}" + (
        f"; {ktap['pass']} passed, {ktap['fail']} failed, {ktap['skip']} skipped"
        if sum(ktap.values()) else "") + (f": {why}" if why else "")


def run_suites(vm, hugetlb, first):
    """{suite test: (status, detail)} for every peer suite's own results;
    `first` is mem-on-off-test.sh's, which ran before."""
    out = {"mem-on-off-test.sh": first}
    for test, pages, plain_args in MM_TESTS:
        if not hugetlb and plain_args is None:
            continue
        out[f"mm/{test}"] = mm_test(vm, test, pages, "" if hugetlb else plain_args)
    rc, text = run_bounded(vm, STRESS_CMD.format(secs=STRESS_SECS), STRESS_SECS + 240,
                           "stress-ng")
    failed = [ln.split("fail:", 1)[1].strip() for ln in text.splitlines() if " fail:" in ln]
    out["stress-ng"] = ({0: "pass", 3: "skip"}.get(rc, "fail"),
                        f"exit {rc}" + (f": {failed[0]}" if failed else ""))
    ops = parsers.stress_ng_ops(vm.run("cat /tmp/stress.yaml 2>/dev/null; true"))
    for s in STRESSORS:
        n = ops.get(s)
        out[f"stress-ng/{s}"] = ("pass" if n else "fail",
                                 f"{n} bogo ops" if n is not None else "not in the YAML")
    return out


def exit_status(rc):
    """kselftest exit codes: 0 pass, 4 skip, anything else fail."""
    return {0: "pass", 4: "skip"}.get(rc, "fail")


def save(vm, name, text):
    with open(os.path.join(vm.rundir, name), "w") as f:
        f.write(text)


def one_kernel(ctx, res, name, kernel, hugetlb, hosting=True):
    """Boot, add, run the suites; returns {test: (status, detail)} or None.
    `hosting`: whether this kernel puts the memmap on the added memory
    (the base does not where pageblocks are larger than the memmap)."""
    vm = ctx.vm(name, "memory_hotplug.memmap_on_memory=1 memhp_default_state=offline",
                kernel=kernel, initrd=ctx.peers_initrd, mem_mib=PEERS_BOOT_MIB, numa_nodes=2,
                smp=PEERS_CPUS)
    try:
        with vm:
            new, offline, what, before = add_memory(vm)
            res.check(f"{name}: 1 GiB hot-added to node 1, offline", offline, what)
            first = mem_on_off(vm)
            ok, what = onlined(vm, new, before, hosting)
            res.check(f"{name}: mem-on-off-test.sh onlined it to ZONE_NORMAL, "
                      + ("hosting its memmap" if hosting else "its memmap in boot memory"),
                      ok, what)
            got = run_suites(vm, hugetlb, first)
            check_console(res, name, vm)
            return got
    except VMError as e:
        res.fail(f"{name}: the suites ran to the end", str(e).splitlines()[0])
        return None


@scenario("peers", "suites written by others on 1 GiB hot-added with its memmap on it: "
                   "mem-on-off-test.sh, the mm selftests (hugetlb, compaction, migration, "
                   "memory failure), stress-ng --memhotplug; against stock in make test-full",
          passes=("main", "nothp"), topics=("tests",),
          # 6.5 minutes of CI's make test, which ran 84 minutes of 75 (2026-12-06)
          full_only=("main", "nothp"))
def sc_peers(ctx, res):
    hugetlb = ctx.pass_.hugetlb
    if not os.path.exists(ctx.peers_initrd):
        res.fail("peers: the peer-suite initramfs", f"missing {ctx.peers_initrd}; run "
                 "'make initramfs'")
        return
    ours = one_kernel(ctx, res, "peers", ctx.kernel, hugetlb)
    if ours is None:
        return
    stock = one_kernel(ctx, res, "peers-stock", ctx.stock_kernel, hugetlb,
                       ctx.pass_.base_hosts_memmap) if ctx.stock_kernel else None
    for test, (status, detail) in sorted(ours.items()):
        res.record(f"peers: {test}", status, detail)
        if stock is not None:
            s_status = stock.get(test, ("missing", ""))[0]
            res.check(f"peers: {test}: no worse than the stock kernel",
                      status == "pass" or s_status != "pass",
                      f"ours {status}, stock {s_status}")
    if stock is not None:
        report(ctx, ours, stock)


def report(ctx, ours, stock):
    """results/peers/LABEL.{json,md} and the README's table for this pass."""
    rows = [{"test": t, "ours": ours.get(t, ("-",))[0], "stock": stock.get(t, ("-",))[0]}
            for t in sorted(set(ours) | set(stock))]
    md = markdown_table([("test", "test"), ("stock", "stock kernel"), ("ours", "with the series")],
                        rows)
    write(os.path.join(ROOT, "results", "peers"), ctx.label, {"rows": rows}, md)
    update_readme(os.path.join(ROOT, "README.md"), f"peers-{ctx.label}", md)
