"""Hot-add when allocations fail: the add must fail cleanly, roll back
everything, and succeed when tried again.  Needs the kernel built with
configs/fault.config (fault injection)."""

import os

from . import guest, model
from .guest import GIB, KIB
from .scenarios import check_console, scenario, settled_meminfo

FAIL_PAGE_ALLOC = "/sys/kernel/debug/fail_page_alloc"
COLD_DIMM_ADDR = 4 << 30     # where QEMU puts the first DIMM of a small q35 guest


def snapshot(vm):
    info = settled_meminfo(vm)
    return {"MemTotal": info["MemTotal"], "Free": info["Free"],
            "blocks": sorted(guest.linked_blocks(vm)),
            # the lines, without blank ones the agent may pass on
            "iomem": sorted(line.strip() for line in
                            vm.run("grep -i 'system ram' /proc/iomem").splitlines()
                            if line.strip())}


def differences(before, now):
    out = [k for k in ("MemTotal", "blocks") if before[k] != now[k]]
    if before["iomem"] != now["iomem"]:
        gone = set(before["iomem"]) - set(now["iomem"])
        new = set(now["iomem"]) - set(before["iomem"])
        out.append(f"/proc/iomem lost {sorted(gone)}, gained {sorted(new)}")
    if abs(before["Free"] - now["Free"]) > 256 * KIB:
        out.append(f"free memory {(now['Free'] - before['Free']) // KIB:+d} KiB")
    return out


def probe_failing_nth(vm, addr, nth):
    """Probe `addr` from a shell whose nth failable allocation fails (only
    allocations that cannot sleep count).  Returns (added, injected, error)."""
    out = vm.run(
        f"echo {nth} > /proc/thread-self/fail-nth; "
        f"if echo {addr:#x} > {guest.SYS_MEM}/probe 2>/tmp/probe.err; then rc=0; else rc=1; fi; "
        "read left < /proc/thread-self/fail-nth; echo 0 > /proc/thread-self/fail-nth; "
        'echo "rc=$rc left=$left"; cat /tmp/probe.err')
    lines = out.strip().splitlines()
    status = dict(kv.split("=", 1) for kv in lines[0].split())
    return status["rc"] == "0", status["left"] == "0", " ".join(lines[1:]).strip()


@scenario("pgtable-fail", "x86 direct-map page tables cannot be allocated during hot-add: "
                          "-ENOMEM, full rollback, a later add succeeds")
def sc_pgtable_fail(ctx, res):
    name = "pgtable-fail"
    if not ctx.fault_kernel or not os.path.exists(ctx.fault_kernel):
        res.fail(f"{name}: kernel with fault injection", f"missing {ctx.fault_kernel}; "
                 "run 'make kernel-fault'")
        return
    # A 16 GiB DIMM present at boot but left unadded; the first block of
    # each GiB is probed from a shell.  nogbpages: the direct map of a new
    # GiB then needs a page-table page, allocated with GFP_ATOMIC.  An add
    # that survives an injected failure (other non-sleeping allocations on
    # the way have fallbacks) moves on to the next GiB.
    append = ("acpi_no_memhotplug nogbpages memory_hotplug.memmap_on_memory=1 "
              "memhp_default_state=offline")
    gibs = 16
    with ctx.vm(name, append, kernel=ctx.fault_kernel, slots=2, maxmem_gib=32,
                dimms=[{"id": "cold", "size": gibs * GIB}]) as vm:
        addr = vm.qmp.execute("query-memory-devices")[0]["data"]["addr"]
        if addr != COLD_DIMM_ADDR:
            res.fail(f"{name}: DIMM where expected", f"at {addr:#x}")
            return
        bs = guest.block_size(vm)
        vm.run(f"echo 0 > {FAIL_PAGE_ALLOC}/min-order; echo Y > {FAIL_PAGE_ALLOC}/ignore-gfp-wait")
        before = snapshot(vm)
        failed, tolerated, bad, g, trace = 0, 0, [], 0, []
        added = injected = False
        for nth in range(1, 41):
            if g == gibs:
                break
            target = addr + g * GIB
            added, injected, err = probe_failing_nth(vm, target, nth)
            trace.append(f"#{nth}@{g}:" + ("absorbed" if added and injected else
                                            "added" if added else
                                            "failed" if injected else "error"))
            if added:
                tolerated += injected
                if not injected:
                    break
                g += 1
                before = snapshot(vm)
                continue
            if not injected:
                bad.append(f"#{nth}: failed without an injected failure: {err}")
                break
            failed += 1
            if "Cannot allocate memory" not in err:
                bad.append(f"#{nth}: error '{err}'")
            diff = differences(before, snapshot(vm))
            if diff:
                bad.append(f"#{nth}: not rolled back: {', '.join(diff)}")
        reached = failed + tolerated
        res.check(f"{name}: an injected failure made an add fail", failed > 0,
                  f"{reached} injection points reached: {failed} failed the add, "
                  f"{tolerated} were absorbed ({' '.join(trace)})")
        res.check(f"{name}: each failure is ENOMEM and rolls back everything "
                  "(MemTotal, free memory within 256 KiB, blocks, /proc/iomem)", not bad,
                  "; ".join(bad[:3]) or f"{failed} failures, all rolled back")
        block = (addr + g * GIB) // bs
        res.check(f"{name}: the add succeeds once nothing is injected",
                  added and not injected and block in guest.linked_blocks(vm),
                  f"GiB {g} after {reached} injections")
        if added and not injected:
            pages = int(vm.run(f"cat {guest.SYS_MEM}/memory{block}/memmap_on_memory_pages"))
            t0 = guest.meminfo(vm)["MemTotal"]
            guest.set_blocks_state(vm, [block], "online_movable")
            gain = guest.meminfo(vm)["MemTotal"] - t0
            res.check(f"{name}: the block then onlines with its memmap on it",
                      pages == model.memmap_pages(bs) and gain == bs - pages * 4096,
                      f"memmap_on_memory_pages {pages}, MemTotal {gain // KIB:+d} KiB")
        check_console(res, name, vm)
