import io
import unittest

from harness.results import Results


class SkipTest(unittest.TestCase):
    def setUp(self):
        self.out = io.StringIO()
        self.res = Results(out=self.out)

    def test_declared_skip_passes_with_its_reason(self):
        self.res.expect_skips({"vmem-bbm: unplug while busy": "too little memory"})
        self.res.prefix = "debug: "
        self.res.skip("vmem-bbm: unplug while busy", "not on the debug kernel")
        self.assertEqual(self.res.items[0]["status"], "pass")
        self.assertIn("skipped as declared: too little memory", self.res.items[0]["detail"])
        self.assertEqual(self.res.closing_line(), "1 passed, 0 failed")

    def test_undeclared_skip_fails(self):
        self.res.expect_skips({"a: b": "why"})
        self.res.skip("kunit-mode1: memory_hotplug_memmap.hotplug_movable_test",
                      "no range given")
        self.assertEqual(self.res.items[0]["status"], "fail")
        self.assertIn("no skip is declared: no range given", self.res.items[0]["detail"])
        self.assertEqual(self.res.closing_line(), "0 passed, 1 failed")

    def test_ktap_skip_goes_through_the_same_rule(self):
        self.res.record("kselftest-mode1: memmap_on_memory.sh", "skip", "no offline block")
        self.assertEqual(self.res.count("fail"), 1)

    def test_declarations_end_with_the_scenario(self):
        self.res.expect_skips({"x: y": "why"})
        self.res.expect_skips({})
        self.res.skip("x: y", "why")
        self.assertEqual(self.res.count("fail"), 1)


if __name__ == "__main__":
    unittest.main()
