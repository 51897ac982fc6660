"""Unit tests of the guest-side readings that only parse what the guest
prints, with a stand-in for the VM."""

import re
import unittest

from harness import measure, parsers
from harness.scenarios import base
from tests.test_parsers import sample


class FakeVM:
    """Answers every command with the same text."""

    def __init__(self, text, page_size=4096):
        self.text = text
        self.page_size = page_size
        self.commands = []

    def run(self, script, timeout=120, check=True):
        self.commands.append(script)
        return self.text


def two_nodes():
    """The recorded zoneinfo as node 0, and a copy of it as node 1."""
    text = sample("zoneinfo.txt")
    return text + text.replace("Node 0, zone", "Node 1, zone")


class PerNodeTest(unittest.TestCase):
    def test_free_bytes_per_node(self):
        zones = parsers.parse_zoneinfo(sample("zoneinfo.txt"))
        one = sum(z.get("free", 0) + z["pcp"] for z in zones.values()) * 4096
        vm = FakeVM(two_nodes())
        self.assertEqual(measure.free_bytes(vm, 0), one)
        self.assertEqual(measure.free_bytes(vm, 1), one)
        self.assertEqual(measure.free_bytes(vm), 2 * one)
        self.assertEqual(measure.free_bytes(vm, 2), 0)
        movable = zones[(0, "Movable")]
        self.assertEqual(measure.free_bytes(vm, 0, movable=False),
                         one - (movable["free"] + movable["pcp"]) * 4096)
        self.assertIn("stat_refresh", vm.commands[0])

    def test_managed_bytes_per_node(self):
        zones = parsers.parse_zoneinfo(sample("zoneinfo.txt"))
        one = sum(z.get("managed", 0) for z in zones.values()) * 4096
        self.assertGreater(one, 0)
        vm = FakeVM(two_nodes())
        self.assertEqual(measure.managed_bytes(vm, 1), one)
        self.assertEqual(measure.managed_bytes(vm, 3), 0)

    def test_pages_counted_in_the_guest_page_size(self):
        # arm64 with 64 KiB pages: zoneinfo counts pages of 64 KiB
        vm4, vm64 = FakeVM(two_nodes()), FakeVM(two_nodes(), page_size=65536)
        self.assertEqual(measure.free_bytes(vm64), 16 * measure.free_bytes(vm4))
        self.assertEqual(measure.managed_bytes(vm64, 0), 16 * measure.managed_bytes(vm4, 0))


class BlockMemmapTest(unittest.TestCase):
    def test_parses_and_tolerates_missing_files(self):
        vm = FakeVM("2 512\n3 0\n4\ncat: can't open\n")
        self.assertEqual(measure.block_memmap(vm, [2, 3, 4]), {2: 512, 3: 0, 4: None})
        self.assertIn("memory2/memmap_on_memory_pages", vm.commands[0])


class KasanPagingTest(unittest.TestCase):
    """The KASAN pass boots with 4-level paging (passes.PASSES), the others
    keep what the CPU model offers."""

    def append(self, label):
        from harness.scenarios import Context
        ctx = Context(label, "/nonexistent", "initrd.cpio", kernel="bzImage")
        vm = ctx.vm("x", append="memory_hotplug.memmap_on_memory=1")
        cmdline = vm.command_line()
        return cmdline[cmdline.index("-append") + 1].split()

    def test_kasan_pass_has_no5lvl(self):
        words = self.append("kasan")
        self.assertIn("no5lvl", words)
        self.assertIn("memory_hotplug.memmap_on_memory=1", words)

    def test_other_passes_keep_5level(self):
        for label in ("main", "debug", "nothp"):
            self.assertNotIn("no5lvl", self.append(label))


class DisarmTest(unittest.TestCase):
    """The fault sweep's disarm loop, run by busybox sh as in the guest: a
    worker that exited after it was armed is left out, and the loop goes
    on (it died with rc 2 when a kworker exited between its check and its
    write, make test-full 2026-12-05)."""

    def test_a_worker_gone_is_skipped(self):
        import shutil
        import subprocess
        from harness.scenarios import fault
        sh = shutil.which("busybox")
        if not sh:
            self.fail("no busybox (scripts/deps.sh installs busybox-static)")
        gone = "2147483646 2147483645"
        out = subprocess.run([sh, "sh", "-c", fault.DISARM_CMD.format(tids=gone)],
                             capture_output=True, text=True)
        self.assertEqual((out.returncode, out.stdout, out.stderr), (0, "", ""))


class BlockIdsTest(unittest.TestCase):
    def test_numbers(self):
        self.assertEqual(measure.linked_blocks(FakeVM("8\n9\n10\n")), {8, 9, 10})

    def test_garbled_answer_is_the_guests_failure(self):
        # a guest whose agent the OOM killer had just killed answered 't7'
        with self.assertRaises(measure.VMError):
            measure.present_blocks(FakeVM("8\nt7\n"))


class ZoneSpanVM:
    """A guest whose ZONE_MOVABLE holds blocks 8 to 11 (128 MiB, 4 KiB
    pages) and answers offline writes and /proc/zoneinfo; `skew` pages
    added to the zone's start after an offline, as the base's zone shrinking
    did with a memmap smaller than a subsection."""

    def __init__(self, skew=0, busy=None):
        self.page_size = 4096
        self.online = {8, 9, 10, 11}
        self.skew = skew
        self.busy = busy

    def run(self, script, timeout=120, check=True):
        if "block_size_bytes" in script:
            return "8000000\n"
        if "echo offline" in script:
            blocks = {int(b) for b in re.findall(r"memory(\d+)", script)}
            if self.busy in blocks:
                raise measure.VMError(f"guest command failed (rc 1): {script}\n"
                                      "sh: write error: Device or resource busy\n"
                                      f"FAILED memory{self.busy}")
            self.online -= blocks
            return "SECONDS 1.0 2.0\n"
        if "zoneinfo" in script:
            per = 0x8000000 // 4096
            start = min(self.online) * per + self.skew if self.online else 0
            spanned = (max(self.online) + 1) * per - start if self.online else 0
            return (f"Node 0, zone  Movable\n  pages free     0\n        spanned  {spanned}\n"
                    f"  start_pfn:           {start}\n")
        raise AssertionError(f"unexpected command {script!r}")


class OfflineEdgesFirstTest(unittest.TestCase):
    def test_order_and_exact_spans(self):
        seen = measure.offline_edges_first(ZoneSpanVM(), [8, 9, 10, 11])
        self.assertEqual([b for b, _, _ in seen], [8, 11, 9, 10])
        self.assertTrue(all(got == want for _, got, want in seen), seen)
        self.assertEqual(seen[-1][2], (0, 0))

    def test_a_failed_offline_is_reported_and_ends_the_walk(self):
        seen = measure.offline_edges_first(ZoneSpanVM(busy=9), [8, 9, 10, 11])
        self.assertEqual([b for b, _, _ in seen], [8, 11, 9])
        self.assertEqual(seen[-1][1], "offline failed: sh: write error: Device or resource busy")

    def test_a_skewed_start_is_seen(self):
        seen = measure.offline_edges_first(ZoneSpanVM(skew=8), [8, 9, 10, 11])
        self.assertTrue(any(got != want for _, got, want in seen[:-1]), seen)


class BigDimmLabelTest(unittest.TestCase):
    """base.big_dimm() names what failed: the add, the online, or QEMU (and
    says guest panic only when the console shows one)."""

    class VM:
        def __init__(self, alive, console=""):
            self._alive, self._console = alive, console

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def alive(self):
            return self._alive

        def console(self):
            return self._console

        step_console = console

        def problems(self):
            return parsers.console_problems(self._console)

        def run(self, script, timeout=120, check=True):
            return 0, "alive\n"

    class Ctx:
        def __init__(self, vm):
            self.made = vm

        def vm(self, name, append="", **kw):
            return self.made

    def how(self, vm, error):
        def failing_hotadd(*args, **kw):
            raise error
        real, measure.hotadd = measure.hotadd, failing_hotadd
        try:
            ok, how, numbers, _ = base.big_dimm(self.Ctx(vm), None, "t", "1")
        finally:
            measure.hotadd = real
        self.assertFalse(ok)
        self.assertIsNone(numbers)
        return how

    def test_online_failure_is_not_an_add_failure(self):
        how = self.how(self.VM(True), measure.OnlineFailed("FAILED memory40"))
        self.assertTrue(how.startswith("online failed: "), how)
        self.assertTrue(how.endswith("; guest answers"), how)

    def test_add_failure(self):
        how = self.how(self.VM(True), measure.VMError("2 new blocks, want 512, after 300s"))
        self.assertTrue(how.startswith("add failed: "), how)

    def test_qemu_exit_is_a_panic_only_with_one_on_the_console(self):
        panic = "Kernel panic - not syncing: System is deadlocked on memory\n"
        how = self.how(self.VM(False, panic), measure.VMError("QEMU exited"))
        self.assertTrue(how.startswith("QEMU exited (guest panic): "), how)
        how = self.how(self.VM(False), measure.VMError("QEMU exited"))
        self.assertTrue(how.startswith("QEMU exited: "), how)


if __name__ == "__main__":
    unittest.main()
