"""Unit tests of the guest-side readings that only parse what the guest
prints, with a stand-in for the VM."""

import unittest

from harness import measure, parsers
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


if __name__ == "__main__":
    unittest.main()


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
