"""Unit tests of the benchmark's bookkeeping: summaries, the ladder, the
report, on made-up samples (no guest)."""

import os
import tempfile
import unittest

from harness import bench


def ok(size, kib, usable=98.4375, seconds=2.0, **extra):
    s = {"ok": True, "size_gib": size, "consumed_kib_per_gib": kib, "usable_pct": usable,
         "seconds": seconds, "seconds_per_gib": seconds / size}
    s.update(extra)
    return s


def failed(size, why):
    return {"ok": False, "size_gib": size, "why": why}


class SpreadTest(unittest.TestCase):
    def test_median_min_max(self):
        self.assertEqual(bench.spread([3, 1, 2]), {"median": 2, "min": 1, "max": 3, "n": 3})
        self.assertIsNone(bench.spread([]))

    def test_format(self):
        self.assertEqual(bench.fmt_spread(bench.spread([30.04, 29.0, 31.0])),
                         "30 (29-31, n=3)")
        self.assertEqual(bench.fmt_spread(bench.spread([5.0])), "5 (n=1)")
        self.assertEqual(bench.fmt_spread(None), "-")


class LadderTest(unittest.TestCase):
    def test_stops_at_the_first_failure(self):
        points = {16: ok(16, 30), 64: ok(64, 30), 32: ok(32, 30), 128: failed(128, "panic"),
                  256: ok(256, 30)}
        self.assertEqual(bench.ladder(points), (64, (128, "panic")))

    def test_nothing_survived(self):
        self.assertEqual(bench.ladder({16: failed(16, "x")}), (None, (16, "x")))

    def test_all_survived(self):
        self.assertEqual(bench.ladder({g: ok(g, 1) for g in bench.LADDER_GIB}), (256, None))


def made_up_run(variants=bench.VARIANTS, paths=bench.PATHS):
    keys = [(v, p) for p in paths for v in variants]
    cost, ladders, timing = {}, {}, {}
    for v, p in keys:
        good = v[0] == "ours" or (p == "pc-dimm" and v[1] == "1")
        for g in bench.COST_GIB:
            if good:
                extra = ({"shrink_seconds_per_gib": 0.5, "returned_pct": 100.0}
                         if p != "pc-dimm" else {})
                cost[(v, p, g)] = [ok(g, 30 + i, seconds=g / 8, **extra) for i in range(3)]
            else:
                cost[(v, p, g)] = [failed(g, "deadlocked")] if g == 16 else []
        ladders[(v, p)] = {g: (ok(g, 30) if good else failed(g, "deadlocked"))
                           for g in (16,)}
        timing[(v, p)] = [ok(4, 30, seconds=s) for s in ((1.0, 1.2, 0.8) if good
                                                         else (2.0, 2.4, 1.6))]
    return keys, cost, ladders, timing


class SummaryTest(unittest.TestCase):
    def test_rows(self):
        rows, samples = bench.summarize(*made_up_run())
        self.assertEqual(len(rows), len(bench.PATHS) * len(bench.VARIANTS))
        ours = next(r for r in rows if r["variant"] == "ours =1" and r["path"] == "vmem-sbm")
        self.assertEqual(ours["cost_16"]["median"], 31)
        self.assertEqual(ours["largest_gib"], 16)
        self.assertEqual(ours["timing_ratio"], 0.5)
        self.assertEqual(ours["timing_ref"], "stock =0")
        stock = next(r for r in rows if r["variant"] == "stock =0" and r["path"] == "pc-dimm")
        self.assertIsNone(stock["cost_16"])
        self.assertEqual(stock["failed_16"], "deadlocked")
        self.assertFalse(stock["tried_64"])
        self.assertEqual(stock["next_failed"], {"size_gib": 16, "why": "deadlocked"})
        self.assertIn("ours =1|vmem-bbm|64", samples["cost"])

    def test_report_and_chart(self):
        rows, _ = bench.summarize(*made_up_run())
        info = {"date": "d", "host": "h", "qemu": "q", "accel": "tcg", "command": "c"}
        md = bench.markdown(rows, info, {"ours =1 pc-dimm": "qemu-system-x86_64 -m 256M"}, 3, 5)
        self.assertIn("| ours =1 | virtio-mem SBM | 30 (n=3) | 98.438 (n=3) | 31 (30-32, n=3) |", md)
        self.assertIn("| stock =0 | pc-dimm | none | 16 GiB: deadlocked |", md)
        self.assertIn("| stock =0 | pc-dimm | 30 (n=3) | 98.438 (n=3) | failed: deadlocked "
                      "| - | not tried (a smaller add failed) | - |", md)
        self.assertIn("| ours =1 | pc-dimm | 30 (n=3) | 98.438 (n=3) | 31 (30-32, n=3) "
                      "| 98.438 (n=3) |", md)
        self.assertIn("| ours =1 | pc-dimm | 0.25 (0.2-0.3, n=3) | 0.50 |", md)
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            self.skipTest("matplotlib not installed")
        with tempfile.TemporaryDirectory() as d:
            bench.chart(os.path.join(d, "bench.png"), rows)
            self.assertGreater(os.path.getsize(os.path.join(d, "bench.png")), 10000)


class NothpSetTest(unittest.TestCase):
    def test_ratio_to_the_first_variant_and_no_virtio_mem_table(self):
        spec = bench.SETS["nothp"]
        rows, _ = bench.summarize(*made_up_run(spec["variants"], spec["paths"]))
        self.assertEqual([r["variant"] for r in rows], ["stock =1", "stock =force", "ours =1"])
        # made_up_run: stock =1 on pc-dimm is good, so it is the reference
        self.assertEqual({r["timing_ref"] for r in rows}, {"stock =1"})
        self.assertEqual(rows[0]["timing_ratio"], 1.0)
        info = {"date": "d", "host": "h", "qemu": "q", "accel": "tcg", "command": "c"}
        md = bench.markdown(rows, info, {}, 3, 5, spec["title"])
        self.assertIn("4 MiB pageblocks", md)
        self.assertIn("ratio to stock =1 (medians)", md)
        self.assertNotIn("virtio-mem: 256 MiB", md)


if __name__ == "__main__":
    unittest.main()
