"""parse_ktap against the kernel's own KTAP parser (kunit_tool's
kunit_parser.py) on kunit_tool's fixtures, read from the kernel tree at run
time: both must find the same verdict and the same leaf counts, so that a
log format KUnit's tools understand cannot slip past ours."""

import glob
import importlib
import inspect
import io
import os
import re
import sys
import unittest
from unittest import mock

from harness import parsers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# where scripts/lib.sh puts the tree: $BUILD/linux, BUILD defaulting to build/
TREE = os.path.join(ROOT, os.environ.get("BUILD", "build"), "linux")
KUNIT_DIR = os.path.join(TREE, "tools", "testing", "kunit")
FIXTURES = os.path.join(KUNIT_DIR, "test_data")
SAMPLES = os.path.join(ROOT, "tests", "samples")
MISSING = re.compile(r"^<missing (\d+) of \d+>$")


def load_kunit_parser():
    """Import kunit_parser (and its kunit_printer) from the tree, leaving
    sys.path as it was."""
    sys.path.insert(0, KUNIT_DIR)
    try:
        return importlib.import_module("kunit_parser"), importlib.import_module("kunit_printer")
    finally:
        sys.path.remove(KUNIT_DIR)


def our_leaves(results, counts=None):
    """{'pass', 'fail', 'skip'} over the results without subtests.  A
    '<missing N of M>' entry stands for N cases that never reported, which
    kunit_parser counts one by one as crashed."""
    counts = counts if counts is not None else {"pass": 0, "fail": 0, "skip": 0}
    for r in results:
        if r["subtests"]:
            our_leaves(r["subtests"], counts)
            continue
        m = MISSING.match(r["name"])
        counts[r["status"]] += int(m.group(1)) if m else 1
    return counts


def our_failed(results):
    """Whether the run failed for the harness.  Output without a single
    result (parse_ktap returns []) is a failure, as the kunit and kselftest
    scenarios take it and as kunit_parser does (NO_TESTS, or
    FAILURE_TO_PARSE_TESTS without any KTAP).  A parent's own 'not ok'
    counts as well as its cases' (kunit_parser judges by the cases alone;
    no fixture has a parent that disagrees with its cases)."""
    def any_fail(rs):
        return any(r["status"] == "fail" or any_fail(r["subtests"]) for r in rs)
    return not results or any_fail(results)


def kunit_failed(test):
    """Whether the run failed for kunit_parser.  Test.ok_status() takes
    SKIPPED as ok, like the harness, which records an all-skipped run as a
    skip (kunit.py itself exits non-zero for it)."""
    return not test.ok_status()


def kunit_leaves(test):
    """kunit_parser's leaf counts in our terms: a crash (a case the plan
    promised that never reported) is a failure.  Its 'errors' are parse
    complaints (a missing plan, say), not outcomes, and are left out."""
    c = test.counts
    return {"pass": c.passed, "fail": c.failed + c.crashed, "skip": c.skipped}


@unittest.skipUnless(os.path.isdir(FIXTURES),
                     f"no kunit_tool fixtures at {FIXTURES}: the kernel tree is made by "
                     "'make tree' (or set BUILD to the folder that holds linux/)")
class KunitFixturesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.kunit_parser, printer = load_kunit_parser()
        cls.quiet = printer.Printer(io.StringIO())

    def kunit_parse(self, text):
        """kunit_parser's Test tree for a log, as 'kunit.py parse' gets it;
        what it reports as it parses goes nowhere."""
        kp = self.kunit_parser
        lines = text.splitlines(keepends=True)
        if len(inspect.signature(kp.parse_run_tests).parameters) > 1:
            return kp.parse_run_tests(lines, self.quiet)  # later versions take it
        with mock.patch.object(kp, "stdout", self.quiet):
            return kp.parse_run_tests(lines)

    def compare(self, paths):
        bad = []
        for path in paths:
            name = os.path.basename(path)
            with self.subTest(log=name):
                bad.append(name)  # until both parsers are seen to agree
                with open(path, errors="replace") as f:
                    text = f.read()
                test = self.kunit_parse(text)
                ours = parsers.parse_ktap(text)
                self.assertEqual(our_failed(ours), kunit_failed(test),
                                 f"verdict: kunit_parser says {test.status.name}")
                self.assertEqual(our_leaves(ours), kunit_leaves(test), "leaf counts")
                bad.remove(name)
        # the runner of 'make test' (harness/__main__.py) records no failed
        # subtest: fail the test itself too
        if bad:
            self.fail(f"the parsers disagree on {', '.join(bad)}")

    def test_fixtures_agree(self):
        paths = sorted(glob.glob(os.path.join(FIXTURES, "*.log")))
        self.assertTrue(paths, f"no *.log in {FIXTURES}")
        self.compare(paths)

    def test_recorded_samples_agree(self):
        """Our own recorded guest output, too."""
        self.compare(sorted(glob.glob(os.path.join(SAMPLES, "*.log"))))


if __name__ == "__main__":
    unittest.main()
