"""Unit tests of the benchmark's bookkeeping: summaries, the ladder, the
report, on made-up samples (no guest)."""

import json
import os
import tempfile
import unittest

from harness import bench, measure
from harness.vm import VMError


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

    def test_a_failure_shows_in_the_cell(self):
        samples = [ok(16, 30), failed(16, "deadlocked"), ok(16, 32)]
        why = bench.verdict(samples)
        self.assertEqual(why, "1 of 3 failed: deadlocked")
        self.assertEqual(bench.fmt_spread(bench.spread([30, 32]), total=3, failed=why),
                         "31 (30-32, n=2 of 3; 1 of 3 failed: deadlocked)")
        self.assertEqual(bench.fmt_spread(None, failed="3 of 3 failed: x"),
                         "failed: 3 of 3 failed: x")
        self.assertIsNone(bench.verdict([ok(16, 1)]))

    def test_each_reason_shows(self):
        samples = [failed(16, "deadlocked"), failed(16, "add_memory failed"),
                   failed(16, "deadlocked")]
        self.assertEqual(bench.verdict(samples),
                         "3 of 3 failed: 2x deadlocked; 1x add_memory failed")


class LadderTest(unittest.TestCase):
    def test_stops_at_the_first_failure(self):
        points = {16: [ok(16, 30)], 64: [ok(64, 30)], 32: [ok(32, 30)],
                  128: [failed(128, "panic")], 256: [ok(256, 30)]}
        self.assertEqual(bench.ladder(points), (64, (128, "1 of 1 failed: panic")))

    def test_every_sample_counts(self):
        # the second repetition of 64 GiB failed: 64 GiB is not survived
        points = {16: [ok(16, 1)] * 3, 64: [ok(64, 1), failed(64, "oom"), ok(64, 1)]}
        self.assertEqual(bench.ladder(points), (16, (64, "1 of 3 failed: oom")))

    def test_nothing_survived(self):
        self.assertEqual(bench.ladder({16: [failed(16, "x")]}), (None, (16, "1 of 1 failed: x")))

    def test_all_survived(self):
        self.assertEqual(bench.ladder({g: [ok(g, 1)] for g in bench.LADDER_GIB}), (512, None))


def made_up_run(variants=bench.VARIANTS, paths=bench.PATHS):
    """ours and stock =1 on pc-dimm succeed everywhere; stock =1 on virtio-mem
    SBM fails one of three at 64 GiB; the rest fails every time."""
    keys = [(v, p) for p in paths for v in variants]
    cost, ladders, timing = {}, {}, {}
    for v, p in keys:
        good = v[0] == "ours" or (bench.is_dimm(p) and v[1] == "1")
        flaky = v == ("stock", "1") and p == "vmem-sbm"
        for g in bench.COST_GIB:
            extra = ({"shrink_seconds_per_gib": 0.5, "returned_pct": 100.0}
                     if not bench.is_dimm(p) else {})
            if good or (flaky and g == 16):
                cost[(v, p, g)] = [ok(g, 30 + i, seconds=g / 8, **extra) for i in range(3)]
            elif flaky:
                cost[(v, p, g)] = [ok(g, 30, seconds=g / 8, **extra), failed(g, "oom"),
                                   ok(g, 32, seconds=g / 8, **extra)]
            else:
                cost[(v, p, g)] = [failed(g, "deadlocked")] * 3
        ladders[(v, p)] = {g: list(cost[(v, p, g)]) for g in bench.COST_GIB}
        timing[(v, p)] = [ok(4, 30, seconds=s) for s in ((1.0, 1.2, 0.8) if good
                                                         else (2.0, 2.4, 1.6))]
    return keys, cost, ladders, timing


class SummaryTest(unittest.TestCase):
    def test_rows(self):
        rows, samples = bench.summarize(*made_up_run())
        self.assertEqual(len(rows), len(bench.PATHS) * len(bench.VARIANTS))
        ours = next(r for r in rows if r["variant"] == "ours =1" and r["path"] == "vmem-sbm")
        self.assertEqual(ours["cost_16"]["median"], 31)
        self.assertEqual(ours["largest_gib"], 64)
        self.assertEqual(ours["timing_ratio"], {"median": 0.5, "min": 0.5, "max": 0.5, "n": 3})
        self.assertEqual(ours["timing_ref"], "stock =0")
        stock = next(r for r in rows if r["variant"] == "stock =0" and r["path"] == "pc-dimm")
        self.assertIsNone(stock["cost_16"])
        self.assertEqual(stock["failed_16"], "3 of 3 failed: deadlocked")
        self.assertEqual(stock["next_failed"], {"size_gib": 16, "why": "3 of 3 failed: deadlocked"})
        flaky = next(r for r in rows if r["variant"] == "stock =1" and r["path"] == "vmem-sbm")
        self.assertEqual(flaky["largest_gib"], 16)
        self.assertEqual(flaky["failed_64"], "1 of 3 failed: oom")
        self.assertEqual(flaky["cost_64"]["n"], 2)
        self.assertIn("ours =1|vmem-bbm|64", samples["cost"])

    def test_report_and_chart(self):
        rows, _ = bench.summarize(*made_up_run())
        info = {"date": "d", "host": "h", "qemu": "q", "accel": "tcg", "command": "c"}
        md = bench.markdown(rows, info, {"ours =1 pc-dimm": "qemu-system-x86_64 -m 256M"}, 3, 5)
        self.assertIn("| ours =1 | virtio-mem SBM | 31 (30-32, n=3) | 98.438 (n=3) | "
                      "31 (30-32, n=3) | 98.438 (n=3) |", md)
        self.assertIn("| stock =1 | virtio-mem SBM | 31 (30-32, n=3) | 98.438 (n=3) | "
                      "31 (30-32, n=2 of 3; 1 of 3 failed: oom) | 98.438 (n=2) |", md)
        self.assertIn("| stock =0 | pc-dimm | none | 16 GiB: 3 of 3 failed: deadlocked |", md)
        self.assertIn("| stock =0 | pc-dimm | failed: 3 of 3 failed: deadlocked | - "
                      "| failed: 3 of 3 failed: deadlocked | - |", md)
        self.assertIn("| ours =1 | pc-dimm | 0.25 (0.2-0.3, n=3) | 0.5 (n=3) |", md)
        import matplotlib  # noqa: F401  (make deps installs it: no skip)
        with tempfile.TemporaryDirectory() as d:
            bench.chart(os.path.join(d, "bench.png"), rows)
            self.assertGreater(os.path.getsize(os.path.join(d, "bench.png")), 10000)

    def test_arm64_set(self):
        # a kernel pair per page size; every path is a pc-dimm one
        rows, _ = bench.summarize(*made_up_run(paths=bench.ARM64_PATHS))
        info = {"date": "d", "host": "h", "qemu": "q", "accel": "tcg", "command": "c"}
        md = bench.markdown(rows, info, {}, 3, 5, bench.SETS["arm64"]["title"])
        self.assertIn("1 - 64/65536 = 99.90 % with 64 KiB pages", md)
        self.assertIn("1 - 64/4096 = 98.44 % with 4 KiB pages", md)
        self.assertIn("| ours =1 | pc-dimm, 16 KiB pages |", md)
        self.assertNotIn("virtio-mem", md)
        kernels = {who: {p: f"{who}-{p}" for p in bench.ARM64_PATHS} for who in ("ours", "stock")}
        b = bench.Bench(kernels, "initrd", "/tmp/r", log=lambda *a: None,
                        paths=bench.ARM64_PATHS)
        vm = b.vm(("stock", "1"), "pc-dimm-64k", 16, "r0")
        self.assertEqual((vm.kernel, vm.target, vm.page_size),
                         ("stock-pc-dimm-64k", "arm64", 65536))
        self.assertEqual(bench.flat_kernels(kernels)["ours pc-dimm-4k"], "ours-pc-dimm-4k")
        self.assertEqual(bench.flat_kernels({"ours": "a"}), {"ours": "a"})

    def test_samples_are_written_as_they_come(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "samples.jsonl")
            b = bench.Bench({}, "", d, samples_file=path, log=lambda *a: None)
            b.keep("cost", ("ours", "1"), "pc-dimm", failed(16, "guest did not boot"))
            b.keep("timing", ("stock", "0"), "vmem-sbm", ok(4, 30))
            with open(path) as f:
                lines = [json.loads(x) for x in f]
        self.assertEqual(lines[0]["kind"], "run")
        self.assertEqual([(x["kind"], x["variant"], x["ok"]) for x in lines[1:]],
                         [("cost", "ours =1", False), ("timing", "stock =0", True)])


class ResumeTest(unittest.TestCase):
    ID = {"set": "main", "accel": "tcg", "kernels": {"ours": "aa", "stock": "bb"}}

    def interrupted(self, d, identity=None):
        """A samples file as a run killed while writing its third line leaves it."""
        path = os.path.join(d, "samples.jsonl")
        b = bench.Bench({}, "", d, samples_file=path, log=lambda *a: None,
                        identity=identity or self.ID)
        b.keep("cost", ("ours", "1"), "pc-dimm", dict(ok(16, 45), tag="r0"))
        b.keep("ladder", ("stock", "1"), "pc-dimm", dict(failed(512, "timed out"), tag="ladder"))
        with open(path, "a") as f:
            f.write('{"kind": "timing", "ok": tr')
        return path

    def test_resume_takes_over_the_samples_and_boots_no_guest_for_them(self):
        log = []
        with tempfile.TemporaryDirectory() as d:
            path = self.interrupted(d)
            missing = os.path.join(d, "no-such-bzImage")
            b = bench.Bench({"ours": missing, "stock": missing}, "", d, samples_file=path,
                            log=log.append, resume=True, identity=self.ID)
            self.assertEqual(len(b.runs), 2)
            # no kernel exists: a guest boot would fail, so these come from the file
            s = b.sample(("ours", "1"), "pc-dimm", 16, "r0")
            self.assertEqual((s["ok"], s["consumed_kib_per_gib"]), (True, 45))
            s = b.sample(("stock", "1"), "pc-dimm", 512, "ladder", kind="ladder")
            self.assertEqual((s["ok"], s["why"]), (False, "timed out"))
            self.assertIsNone(b.take_recorded("cost", ("ours", "1"), "pc-dimm", 16, "r1"))
            self.assertIsNone(b.take_recorded("timing", ("ours", "1"), "pc-dimm", 4, "t0"))
            with open(path) as f:
                lines = [json.loads(x) for x in f]
        # the cut line is gone, the samples stay, a second run line follows
        self.assertEqual([x["kind"] for x in lines], ["run", "cost", "ladder", "run"])
        self.assertIn("taken by the run being resumed", log[0])
        # the report still shows the command line of each variant and path
        self.assertEqual(sorted(b.commands), ["ours =1 pc-dimm", "stock =1 pc-dimm"])

    def test_other_kernels_are_refused_and_the_file_is_left_alone(self):
        with tempfile.TemporaryDirectory() as d:
            path = self.interrupted(d)
            with open(path) as f:
                before = f.read()
            other = dict(self.ID, kernels={"ours": "cc", "stock": "bb"})
            with self.assertRaisesRegex(bench.ResumeError, "another kernels"):
                bench.Bench({}, "", d, samples_file=path, resume=True, identity=other)
            with self.assertRaisesRegex(bench.ResumeError, "another set"):
                bench.Bench({}, "", d, samples_file=path, resume=True,
                            identity=dict(self.ID, set="nothp"))
            with open(path) as f:
                self.assertEqual(f.read(), before)

    def test_a_broken_line_before_the_end_is_refused(self):
        with tempfile.TemporaryDirectory() as d:
            path = self.interrupted(d)
            with open(path, "a") as f:
                f.write("\n{}\n")
            with self.assertRaisesRegex(bench.ResumeError, "not a JSON line"):
                bench.Bench({}, "", d, samples_file=path, resume=True, identity=self.ID)

    def test_without_resume_the_file_starts_afresh(self):
        with tempfile.TemporaryDirectory() as d:
            path = self.interrupted(d)
            b = bench.Bench({}, "", d, samples_file=path, identity=self.ID)
            self.assertEqual(len(b.runs), 1)
            self.assertIsNone(b.take_recorded("cost", ("ours", "1"), "pc-dimm", 16, "r0"))
            with open(path) as f:
                self.assertEqual([json.loads(x)["kind"] for x in f], ["run"])

    def test_the_report_says_it_was_resumed(self):
        rows, _ = bench.summarize(*made_up_run())
        info = {"date": "d", "host": "h", "qemu": "q", "accel": "tcg", "command": "c",
                "runs": ["2026-12-05 06:15 UTC", "2026-12-05 08:00 UTC"]}
        md = bench.markdown(rows, info, {}, 3, 5)
        self.assertIn("resumed, so its samples come from the runs started "
                      "2026-12-05 06:15 UTC, 2026-12-05 08:00 UTC;", md)
        info["runs"] = info["runs"][:1]
        self.assertNotIn("resumed", bench.markdown(rows, info, {}, 3, 5))


class NothpSetTest(unittest.TestCase):
    def test_ratio_to_the_first_variant_and_no_virtio_mem_table(self):
        spec = bench.SETS["nothp"]
        rows, _ = bench.summarize(*made_up_run(spec["variants"], spec["paths"]))
        self.assertEqual([r["variant"] for r in rows], ["stock =1", "stock =force", "ours =1"])
        # made_up_run: stock =1 on pc-dimm is good, so it is the reference
        self.assertEqual({r["timing_ref"] for r in rows}, {"stock =1"})
        self.assertEqual(rows[0]["timing_ratio"]["median"], 1.0)
        info = {"date": "d", "host": "h", "qemu": "q", "accel": "tcg", "command": "c"}
        md = bench.markdown(rows, info, {}, 3, 5, spec["title"])
        self.assertIn("4 MiB pageblocks", md)
        self.assertIn("ratio to stock =1 |", md)
        self.assertNotIn("virtio-mem: 256 MiB", md)


if __name__ == "__main__":
    unittest.main()


class FailureTextTest(unittest.TestCase):
    """A stopped guest is not a panicked one: the label comes from the
    console, and a guest's own failure line wins over the harness's."""

    class Stopped:
        def __init__(self, text):
            self.text = text

        def console(self, since=0):
            return self.text

        def step_console(self):
            return self.text

        def alive(self):
            return False

    def test_timeout_is_not_a_panic(self):
        vm = self.Stopped("[    6.4] Built 1 zonelists, mobility grouping on.\n")
        why = measure.failure_text(vm, TimeoutError("timed out during 'read t0'\nmore"))
        self.assertEqual(why, "timed out during 'read t0'")

    def test_panic_is_labelled(self):
        vm = self.Stopped("[   12.5] Kernel panic - not syncing: System is deadlocked on memory\n")
        why = measure.failure_text(vm, VMError("QEMU exited"))
        self.assertTrue(why.endswith(" (guest panicked)"), why)
        self.assertIn("System is deadlocked on memory", why)
        self.assertNotIn("12.5", why)

    def test_timeout_grows_with_the_size(self):
        self.assertEqual(bench.add_timeout(16), 600)
        self.assertGreater(bench.add_timeout(512), 2 * 600)


class OnlineWaitTest(unittest.TestCase):
    def test_counts_blocks_not_memtotal(self):
        # what a block adds to MemTotal depends on the mode (=force pads the
        # memmap), so the wait counts online blocks
        cmd = bench.ONLINE_WAIT.format(want=34)
        self.assertIn("[ $n -lt 34 ]", cmd)
        self.assertIn("memory*/state", cmd)
        self.assertNotIn("meminfo", cmd)
