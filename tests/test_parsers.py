"""Unit tests of the harness parsers, on output recorded from real guests
and QEMU (tests/samples/) plus hand-made edge cases."""

import os
import unittest

from harness import parsers
from harness.parsers import QMPError

SAMPLES = os.path.join(os.path.dirname(__file__), "samples")


def sample(name):
    with open(os.path.join(SAMPLES, name)) as f:
        return f.read()


class MeminfoTest(unittest.TestCase):
    def test_recorded(self):
        m = parsers.parse_meminfo(sample("meminfo.txt"))
        self.assertGreater(m["MemTotal"], 128 << 20)
        self.assertEqual(m["MemTotal"] % 1024, 0)          # kB became bytes
        self.assertLessEqual(m["MemFree"], m["MemTotal"])
        self.assertIn("HugePages_Total", m)
        self.assertLess(m["HugePages_Total"], 1024)         # a count, not bytes

    def test_units(self):
        m = parsers.parse_meminfo("MemTotal:  1000 kB\nHugePages_Free:  3\nbogus line\n")
        self.assertEqual(m, {"MemTotal": 1024000, "HugePages_Free": 3})


class VmstatTest(unittest.TestCase):
    def test_recorded(self):
        v = parsers.parse_vmstat(sample("vmstat.txt"))
        self.assertIn("nr_free_pages", v)
        self.assertIn("nr_memmap_pages", v)
        self.assertTrue(all(isinstance(x, int) for x in v.values()))

    def test_ignores_garbage(self):
        self.assertEqual(parsers.parse_vmstat("a 1\nb\nc x\nd -2\n"), {"a": 1, "d": -2})


class ZoneinfoTest(unittest.TestCase):
    def test_recorded(self):
        z = parsers.parse_zoneinfo(sample("zoneinfo.txt"))
        self.assertIn((0, "Normal"), z)
        self.assertIn((0, "Movable"), z)
        n = z[(0, "Normal")]
        self.assertLessEqual(n["managed"], n["present"])
        self.assertLessEqual(n["present"], n["spanned"])
        self.assertIn("free", n)
        self.assertGreater(z[(0, "Movable")]["pcp"], 0)   # per-CPU lists summed
        # watermarks, not the per-CPU lists' 'high:' lines
        d = z[(0, "DMA32")]
        self.assertEqual((d["min"], d["low"], d["high"]), (419, 523, 627))
        # 'start_pfn:' has a colon, the counters do not
        self.assertEqual(d["start_pfn"], 1)
        self.assertEqual(z[(0, "Movable")]["start_pfn"], 1048576)

    def test_pcp_sum(self):
        text = ("Node 0, zone   Normal\n  pages free     10\n  pagesets\n    cpu: 0\n"
                "              count: 3\n    cpu: 1\n              count: 4\n"
                "Node 1, zone  Movable\n  pages free     7\n        managed  9\n")
        z = parsers.parse_zoneinfo(text)
        self.assertEqual(z[(0, "Normal")], {"pcp": 7, "free": 10})
        self.assertEqual(z[(1, "Movable")], {"pcp": 0, "free": 7, "managed": 9})


class BlocksTest(unittest.TestCase):
    def test_recorded(self):
        b = parsers.parse_blocks(sample("blocks.txt"))
        self.assertTrue(b)
        self.assertTrue(all(v["state"] in ("online", "offline") for v in b.values()))
        self.assertTrue(any(v["state"] == "offline" for v in b.values()))

    def test_line(self):
        b = parsers.parse_blocks("memory32 online Movable\nmemory5 offline\nmemoryX y\n")
        self.assertEqual(b, {32: {"state": "online", "zones": ["Movable"]},
                             5: {"state": "offline", "zones": []}})

    def test_grep_lines(self):
        # measure.BLOCKS_CMD: grep -H over every state, then every valid_zones
        b = parsers.parse_blocks("memory32/state:online\nmemory5/state:offline\n"
                                 "memory7/state:online\n"
                                 "memory32/valid_zones:Movable\n"
                                 "memory5/valid_zones:DMA32 Normal Movable\n"
                                 "memory9/valid_zones:Normal\n")
        self.assertEqual(b, {32: {"state": "online", "zones": ["Movable"]},
                             5: {"state": "offline", "zones": ["DMA32", "Normal", "Movable"]},
                             7: {"state": "online", "zones": []}})


class QMPTest(unittest.TestCase):
    def test_recorded(self):
        kinds = [parsers.parse_qmp_message(line)[0]
                 for line in sample("qmp.jsonl").splitlines() if line.strip()]
        self.assertEqual(kinds[0], "greeting")
        for k in ("return", "error", "event"):
            self.assertIn(k, kinds)

    def test_error_object(self):
        kind, err = parsers.parse_qmp_message(
            '{"error": {"class": "GenericError", "desc": "no such device"}}')
        self.assertEqual(kind, "error")
        self.assertIsInstance(err, QMPError)
        self.assertEqual(err.desc, "no such device")

    def test_rejects_unknown(self):
        with self.assertRaises(ValueError):
            parsers.parse_qmp_message('{"what": 1}')
        with self.assertRaises(ValueError):
            parsers.parse_qmp_message("[1, 2]")


class KTAPTest(unittest.TestCase):
    def test_kunit_console(self):
        suites = parsers.parse_ktap(sample("console-kunit.log"))
        self.assertTrue(suites)
        s = suites[0]
        self.assertEqual(s["status"], "pass")
        self.assertTrue(s["subtests"])
        self.assertTrue(all(t["status"] == "pass" for t in s["subtests"]))

    def test_failed_and_skipped(self):
        text = """KTAP version 1
1..2
    KTAP version 1
    # Subtest: a
    1..2
    ok 1 one
    not ok 2 two
not ok 1 a
    KTAP version 1
    # Subtest: b
    1..1
    ok 1 only # SKIP no range given
ok 2 b # SKIP no range given
"""
        r = parsers.parse_ktap(text)
        self.assertEqual([x["status"] for x in r], ["fail", "skip"])
        self.assertEqual([t["status"] for t in r[0]["subtests"]], ["pass", "fail"])
        self.assertEqual(r[1]["directive"], "no range given")
        self.assertEqual(parsers.ktap_totals(r), {"pass": 0, "fail": 1, "skip": 1})

    def test_truncated_run_fails(self):
        r = parsers.parse_ktap("KTAP version 1\n1..3\nok 1 a\n[   1.0] Kernel panic\n")
        self.assertEqual([x["status"] for x in r], ["pass", "fail"])
        self.assertIn("missing 2 of 3", r[1]["name"])

    def test_kselftest_output(self):
        text = ("TAP version 13\n1..3\nok 1 first\nnot ok 2 second\n"
                "ok 3 third # SKIP nothing to do\n")
        r = parsers.parse_ktap(text)
        self.assertEqual([(x["name"], x["status"]) for x in r],
                         [("first", "pass"), ("second", "fail"), ("third", "skip")])

    def test_no_ktap(self):
        self.assertEqual(parsers.parse_ktap("just a boot log\nok 1 not ktap\n"), [])

    def test_printk_caller_prefix(self):
        # CONFIG_PRINTK_CALLER: a task id, or a CPU id in interrupt context
        text = ("[    0.060000][    T1] KTAP version 1\n"
                "[    0.060000][    T1] 1..1\n"
                "[    0.061000][    T1]     KTAP version 1\n"
                "[    0.061000][    T1]     # Subtest: suite\n"
                "[    0.061000][    T1]     1..3\n"
                "[    0.062000][    C0]     ok 1 - one\n"
                "[    0.063000][   T42]     not ok 2 two\n"
                "[    0.063500][  C123] irq noise at column 0\n"
                "[    0.064000][T12345]     ok 3 three # SKIP why\n"
                "[    0.065000][    T1] not ok 1 suite\n")
        r = parsers.parse_ktap(text)
        self.assertEqual([(x["name"], x["status"]) for x in r], [("suite", "fail")])
        self.assertEqual([(t["name"], t["status"]) for t in r[0]["subtests"]],
                         [("one", "pass"), ("two", "fail"), ("three", "skip")])
        # printk.time=0 leaves the caller id alone
        r = parsers.parse_ktap("[     T1] KTAP version 1\n[     T1] 1..1\n[     T1] ok 1 a\n")
        self.assertEqual([(x["name"], x["status"]) for x in r], [("a", "pass")])

    def test_strip_console_prefixes(self):
        for line in ("[    1.000000] x y", "[    1.000000][    T1] x y",
                     "[12345.678901][    C3] x y", "[     T1] x y", "x y"):
            self.assertEqual(parsers.strip_console(line + "\r\n"), "x y", line)
        # only printk's own brackets go
        self.assertEqual(parsers.strip_console("[mem 0x1000] x"), "[mem 0x1000] x")

    def test_subtest_header_without_version_line(self):
        # KUnit before KTAP v1: a suite opens with '# Subtest:' alone
        text = ("TAP version 14\n1..2\n"
                "\t# Subtest: a\n\t1..2\n\tok 1 - x\n"
                "kunit a: not KTAP, at column 0\n"
                "\tok 2 - y # SKIP no device\nok 1 - a\n"
                "\t# Subtest: b\n\t1..3\n\tok 1 - z\n")
        r = parsers.parse_ktap(text)
        self.assertEqual([(x["name"], x["status"]) for x in r],
                         [("a", "pass"), ("<missing 1 of 2>", "fail")])
        self.assertEqual([t["status"] for t in r[0]["subtests"]], ["pass", "skip"])
        self.assertEqual([t["name"] for t in r[1]["subtests"]], ["z", "<missing 2 of 3>"])


class ConsoleTest(unittest.TestCase):
    def test_clean_boot(self):
        self.assertEqual(parsers.console_problems(sample("console-kunit.log")), [])

    def test_splats(self):
        text = ("[    5.1] ------------[ cut here ]------------\n"
                "[    5.2] WARNING: CPU: 0 PID: 1 at mm/x.c:1 f+0x1/0x2\n"
                "[    6.0] bash invoked oom-killer: gfp_mask=0x0\n"
                "[    7.0] Kernel panic - not syncing: System is deadlocked on memory\n")
        kinds = [k for k, _ in parsers.console_problems(text)]
        self.assertEqual(kinds, ["warn", "warn", "oom", "panic"])

    def test_debug_kernel_reports(self):
        # the first line of each report the debug kernel's checkers print
        text = ("[    1.0] WARNING: inconsistent lock state\n"
                "[    2.0] WARNING: suspicious RCU usage\n"
                "[    3.0] list_add corruption. prev->next should be next (ffff8880)\n"
                "[    4.0] BUG: Bad page state in process sh  pfn:1234\n"
                "[    5.0] FAULT_INJECTION: forcing a failure.\n"
                "[    6.0] acpi PNP0C80:00: add_memory failed\n")
        kinds = [k for k, _ in parsers.console_problems(text)]
        self.assertEqual(kinds, ["lockdep", "lockdep", "corruption", "bad-page"])


class RecordedSplatTest(unittest.TestCase):
    """tests/samples/splats.log: one console line per report kind, as
    'KIND<TAB>line'; see its header for which were recorded and how."""

    def test_each_recorded_line_is_caught_as_its_kind(self):
        path = os.path.join(os.path.dirname(__file__), "samples", "splats.log")
        with open(path) as f:
            entries = [line.rstrip("\n").split("\t", 1) for line in f
                       if line.strip() and not line.startswith("#")]
        kinds = set()
        for kind, line in entries:
            with self.subTest(line=line):
                found = parsers.console_problems(line)
                self.assertEqual([k for k, _ in found], [kind])
                kinds.add(kind)
        # every kind the issue names has a line
        self.assertLessEqual({"oops", "hung-task", "rcu-stall", "lockup", "bad-page"}, kinds)

    def test_quiet_lines_are_not_splats(self):
        for line in ("[    1.0] rcu: Hierarchical RCU implementation.",
                     "[    2.0] watchdog: Disabling watchdog on nohz_full cores by default",
                     "[    3.0] INFO: lockdep is turned off.",
                     "[    4.0] page_owner is disabled",
                     # a failed offline of memory in use, not a bad page
                     "[ 1516.949710] page dumped because: unmovable page",
                     "[  812.100200] page dumped because: migration failure",
                     "[  812.100300] page dumped because: isolation failed"):
            self.assertEqual(parsers.console_problems(line), [], line)


class FailureMarkerTest(unittest.TestCase):
    def test_refusal_wins_and_is_quoted(self):
        text = ("[    4.1] Hotplug memory [mem 0x100000000-0x10ffffffff]: memmap does not "
                "fit: [mem 0x100000000-0x10ffffffff] needs 1048576 KiB, 171220 KiB are free "
                "or reclaimable above the min watermarks\n"
                "[    4.2] acpi PNP0C80:00: add_memory failed\n")
        self.assertEqual(parsers.failure_marker(text, "x"),
                         "Hotplug memory [mem 0x100000000-0x10ffffffff]: memmap does not fit: "
                         "[mem 0x100000000-0x10ffffffff] needs 1048576 KiB, 171220 KiB are free "
                         "or reclaimable above the min watermarks")

    def test_panic_before_generic_failure(self):
        text = ("[    4.2] acpi PNP0C80:00: add_memory failed\n"
                "[    5.0] Kernel panic - not syncing: System is deadlocked on memory\n")
        self.assertEqual(parsers.failure_marker(text, "x"), "System is deadlocked on memory")

    def test_default(self):
        self.assertEqual(parsers.failure_marker("[ 1.0] all quiet\n", "timeout"), "timeout")


class KernelMemoryTest(unittest.TestCase):
    SLABINFO = ("slabinfo - version: 2.1\n"
                "# name            <active_objs> <num_objs> <objsize> <objperslab> "
                "<pagesperslab> : tunables <limit> <batchcount> <sharedfactor> : slabdata "
                "<active_slabs> <num_slabs> <sharedavail>\n"
                "kernfs_node_cache  25000  25024    128   32    1 : tunables    0    0    0 "
                ": slabdata    782    782      0\n"
                "kmalloc-2k           96    112   2048   16    8 : tunables    0    0    0 "
                ": slabdata      7      7      0\n")

    def test_slabinfo(self):
        self.assertEqual(parsers.parse_slabinfo(self.SLABINFO),
                         {"kernfs_node_cache": 782 * 4096, "kmalloc-2k": 7 * 8 * 4096})

    def test_growth(self):
        self.assertEqual(parsers.growth({"a": 10, "b": 5, "c": 7}, {"a": 30, "b": 1, "d": 4}),
                         [("a", 20), ("d", 4)])

    def test_kmemleak(self):
        text = ("unreferenced object 0xffff888003a8e000 (size 2048):\n"
                "  comm \"sh\", pid 1, jiffies 4294892396\n"
                "  hex dump (first 32 bytes):\n"
                "    00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00  ................\n"
                "  backtrace (crc 5d1b3c5a):\n"
                "    [<ffffffff8132a1b4>] __kmalloc_noprof+0x1d9/0x3a0\n"
                "    [<ffffffff81890abc>] add_memory_block+0x8c/0x260\n"
                "unreferenced object 0xffff888004000000 (size 64):\n"
                "  comm \"swapper/0\", pid 1, jiffies 4294892000\n"
                "  backtrace (crc 1):\n"
                "    [<ffffffff8132a1b4>] kmalloc_trace_noprof+0x2a/0x40\n"
                "    [<ffffffff81111111>] acpi_ns_evaluate+0x10/0x20\n")
        objs = parsers.parse_kmemleak(text)
        self.assertEqual([(o["size"], o["hotplug"]) for o in objs], [(2048, True), (64, False)])
        self.assertEqual(objs[0]["backtrace"][1], "add_memory_block+0x8c/0x260")
        self.assertEqual(parsers.parse_kmemleak(""), [])


class KunitToolTest(unittest.TestCase):
    # the closing lines kunit.py prints (kunit_parser.print_summary_line)
    def test_summary(self):
        out = ("[12:00:01] ======== memory_hotplug_memmap (9 subtests) ========\n"
               "[12:00:09] Testing complete. Ran 21 tests: passed: 19, failed: 1, skipped: 1\n")
        self.assertEqual(parsers.kunit_tool_summary(out),
                         {"total": 21, "passed": 19, "failed": 1, "skipped": 1, "crashed": 0,
                          "errors": 0})

    def test_summary_all_passed_and_none(self):
        self.assertEqual(parsers.kunit_tool_summary(
            "[1:2:3] Testing complete. Ran 3 tests: passed: 3")["passed"], 3)
        self.assertIsNone(parsers.kunit_tool_summary("[1:2:3] Building KUnit Kernel ..."))

    def test_source_cases(self):
        src = ("static struct kunit_case other_cases[] = {\n\tKUNIT_CASE(x_test),\n\t{}\n};\n"
               "static struct kunit_case memory_hotplug_memmap_cases[] = {\n"
               "\tKUNIT_CASE(memmap_size_test),\n\tKUNIT_CASE_SLOW(hotplug_kernel_test),\n"
               "\t{}\n};\n")
        self.assertEqual(parsers.kunit_source_cases(src, "memory_hotplug_memmap_cases"),
                         ["memmap_size_test", "hotplug_kernel_test"])
        self.assertEqual(parsers.kunit_source_cases(src, "virtio_mem_cases"), [])

    def test_json_cases(self):
        doc = {"name": "KUnit Test Group", "test_cases": [], "sub_groups": [
            {"name": "memory_hotplug_memmap", "sub_groups": [], "test_cases": [
                {"name": "layout_test", "status": "PASS"},
                {"name": "hotplug_movable_test", "status": "SKIP"},
                {"name": "hotplug_kernel_test", "status": "ERROR"}]},
            {"name": "virtio_mem_sbm", "test_cases": [], "sub_groups": [
                {"name": "walk", "sub_groups": [], "test_cases": [
                    {"name": "param-0", "status": "FAIL"}]}]}]}
        self.assertEqual(parsers.kunit_tool_cases(doc), [
            ("memory_hotplug_memmap.layout_test", "pass"),
            ("memory_hotplug_memmap.hotplug_movable_test", "skip"),
            ("memory_hotplug_memmap.hotplug_kernel_test", "fail"),
            ("virtio_mem_sbm.walk.param-0", "fail")])


if __name__ == "__main__":
    unittest.main()
