"""The peer suites' verdicts: a skip inside a suite that exits 0 is a skip."""

import unittest

from harness.scenarios.peers import mem_on_off_verdict, mm_verdict
from tests.test_parsers import sample


class PeerVerdictTest(unittest.TestCase):
    def test_mm_all_skipped_is_a_skip(self):
        # recorded: migration in a 2-CPU guest exits 0 with 6 of 6 skipped
        status, detail = mm_verdict(0, sample("migration-skips.log"))
        self.assertEqual(status, "skip")
        self.assertIn("0 passed, 0 failed, 6 skipped", detail)
        self.assertIn("Not enough threads or NUMA nodes available", detail)

    def test_mm_pass(self):
        text = "TAP version 13\n1..2\nok 1 a\nok 2 b\n"
        self.assertEqual(mm_verdict(0, text)[0], "pass")

    def test_mm_failure_inside_exit_0(self):
        text = "TAP version 13\n1..2\nok 1 a\nnot ok 2 b\n"
        self.assertEqual(mm_verdict(0, text)[0], "fail")

    def test_mm_exit_codes(self):
        self.assertEqual(mm_verdict(1, "")[0], "fail")
        self.assertEqual(mm_verdict(4, "")[0], "skip")
        self.assertEqual(mm_verdict(137, "")[0], "fail")

    def test_mem_on_off_skipped_step(self):
        # recorded: every hot-added block already online when it started
        status, detail = mem_on_off_verdict(0, sample("mem-on-off-skipped.log"))
        self.assertEqual(status, "skip")
        self.assertIn("no hot-pluggable memory in offline state", detail)

    def test_mem_on_off_extra_tests_skipped(self):
        text = "skip extra tests: memory-notifier-error-inject module is not available\n"
        self.assertEqual(mem_on_off_verdict(0, text)[0], "skip")

    def test_mem_on_off_pass_and_fail(self):
        text = "\t online all hot-pluggable memory in offline state:\noffline->online memory40\n"
        self.assertEqual(mem_on_off_verdict(0, text)[0], "pass")
        self.assertEqual(mem_on_off_verdict(1, text)[0], "fail")


if __name__ == "__main__":
    unittest.main()
