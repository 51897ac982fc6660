"""The stages and the records: which scenario runs on which pass, the
results file, the manifest, re-judging a saved console, the interactive
shell, the one wait helper and the marker table (no guest)."""

import contextlib
import io
import json
import os
import re
import tempfile
import threading
import time
import unittest
from unittest import mock

from harness import __main__ as cli, measure, parsers, stages, wait
from harness.passes import ARM64_PASSES, INITRDS, KERNELS, PASSES, TEST_PASSES, kernel_image
from harness.results import Results
from harness.scenarios import SCENARIOS, Scenario, base
from harness.paths import ROOT, series_topics, shell_line
from harness.vm import TARGETS, VM, VMError, dimm_base
from tests.test_parsers import sample

SAMPLES = os.path.join(ROOT, "tests", "samples")


def quiet():
    return Results(out=io.StringIO())


class PlanTest(unittest.TestCase):
    def args(self, *argv):
        return cli.parser().parse_args(["test", *argv])

    def test_every_scenario_on_its_declared_passes(self):
        todo, why = cli.checked_plan(self.args("--passes", ",".join(PASSES), "--full"))
        self.assertIsNone(why)
        for name, sc in SCENARIOS.items():
            self.assertEqual({p for p, names in todo.items() if name in names}, set(sc.passes))

    def test_make_test_leaves_the_long_ones_to_make_test_full(self):
        todo, _ = cli.checked_plan(self.args("--passes", "main,debug,nothp"))
        full, _ = cli.checked_plan(self.args("--passes", "main,debug,nothp", "--full"))
        for p in todo:
            self.assertEqual(set(full[p]) - set(todo[p]),
                             {n for n in full[p] if p in SCENARIOS[n].full_only}, p)
        self.assertNotIn("peers", todo["main"] + todo["nothp"])
        self.assertNotIn("vmem-sbm-churn", todo["main"])
        self.assertIn("vmem-sbm-churn", todo["debug"])
        self.assertIn("peers", full["nothp"])
        # named, it runs; and `harness run` runs it on every pass it declares
        todo, _ = cli.checked_plan(self.args("--passes", "main", "peers"))
        self.assertEqual(todo, {"main": ["peers"]})
        todo, _ = cli.checked_plan(cli.parser().parse_args(["run", "--passes", "main"]))
        self.assertIn("peers", todo["main"])

    def test_full_only_names_passes_the_scenario_runs_on(self):
        with self.assertRaisesRegex(ValueError, "full_only names debug"):
            base.scenario("x", "x", passes=("main",), topics=("tests",), full_only=("debug",))

    def test_the_old_lists_in_one_place(self):
        # what NOTHP_SCENARIOS, KASAN_SCENARIOS and the debug flags said
        todo, _ = cli.checked_plan(self.args("--passes", "main,debug,nothp,kasan", "--full"))
        self.assertEqual(todo["kasan"], ["admin", "pgtable-fail", "fault-sweep", "cma", "soak",
                                         "cycles", "bad-input"])
        self.assertEqual(todo["nothp"], ["dimm-mode1", "dimm-force", "big-mode1", "kunit",
                                         "kselftest", "admin", "pagecache-add", "slab-add",
                                         "vmem-kernel", "cma", "cycles", "busy-offline",
                                         "peers"])
        self.assertNotIn("soak", todo["main"])
        self.assertIn("soak", todo["debug"])
        self.assertNotIn("kunit-tool", todo["debug"])

    def test_a_scenario_named_for_a_pass_it_does_not_run_on_is_an_error(self):
        todo, why = cli.checked_plan(self.args("--passes", "main", "soak"))
        self.assertIsNone(todo)
        self.assertIn("soak runs on debug, kasan, not on main", why)

    def test_bad_passes_and_names_are_errors(self):
        for argv, text in ((("--passes", "mian"), "give some of"),
                           (("bogus",), "unknown scenario bogus"),
                           (("--soak-cycles", "1"), "give 2 or more")):
            todo, why = cli.checked_plan(self.args(*argv))
            self.assertIsNone(todo)
            self.assertIn(text, why)

    def test_every_scenario_tests_topics_that_patches_series_has(self):
        topics = [t for t, _ in series_topics()]
        for name, sc in SCENARIOS.items():
            self.assertTrue(sc.topics, name)
            self.assertLessEqual(set(sc.topics), set(topics), name)
        # and every topic has scenarios that test it
        self.assertEqual({t for sc in SCENARIOS.values() for t in sc.topics}, set(topics))

    def test_a_topic_selects_its_scenarios(self):
        todo, why = cli.checked_plan(self.args("--passes", "main", "--topic", "virtio-mem-bbm"))
        self.assertIsNone(why)
        self.assertEqual(todo, {"main": ["vmem-bbm"]})
        for argv, text in ((("--topic", "bogus"), "patches/series has the topics fixes "),
                           (("--topic", "fixes", "vmem-bbm"),
                            "vmem-bbm: not a scenario of the topic fixes")):
            todo, why = cli.checked_plan(self.args(*argv))
            self.assertIsNone(todo)
            self.assertIn(text, why)

    def test_only_the_kernels_the_plan_needs(self):
        todo, _ = cli.checked_plan(self.args("--passes", "main,debug", "soak"))
        self.assertEqual(stages.kernels_needed(todo, stock=False), ["debug"])
        todo, _ = cli.checked_plan(self.args("--passes", "main,nothp", "admin"))
        self.assertEqual(stages.kernels_needed(todo, stock=True),
                         ["main", "stock", "nothp", "stock-nothp"])

    def test_make_test_passes_and_kernels_exist_in_the_tables(self):
        self.assertEqual(TEST_PASSES, ("main", "debug", "nothp"))
        for p in PASSES.values():
            self.assertIn(p.kernel, KERNELS)
            self.assertIn(p.stock or p.kernel, KERNELS)
        self.assertTrue(kernel_image("nothp").endswith("build/out/nothp/arch/x86/boot/bzImage"))

    def test_sizes_per_pass(self):
        from harness.scenarios import Context
        ctx = Context("debug", "/nonexistent")
        ctx.enter(SCENARIOS["big-mode0"])
        self.assertEqual(ctx.size("tries"), 3)
        ctx = Context("main", "/nonexistent")
        ctx.enter(SCENARIOS["big-mode0"])
        self.assertEqual(ctx.size("tries"), 10)
        ctx = Context("debug", "/nonexistent")
        ctx.enter(SCENARIOS["vmem-bbm"])
        self.assertTrue(ctx.declared_skip("vmem-bbm: unplug while busy"))
        ctx = Context("main", "/nonexistent")
        ctx.enter(SCENARIOS["vmem-bbm"])
        self.assertIsNone(ctx.declared_skip("vmem-bbm: unplug while busy"))


class RecordsTest(unittest.TestCase):
    def test_results_json_has_every_check(self):
        res = quiet()
        res.start("dimm-mode1", "main")
        res.check("dimm-mode1: ok", True, "fine")
        res.start("dimm-mode1", "debug")
        res.check("dimm-mode1: ok", False, "not")
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "runs", "results.json")
            res.write_json(path)
            with open(path) as f:
                doc = json.load(f)
        self.assertEqual(doc["closing_line"], "1 passed, 1 failed")
        self.assertEqual([(c["name"], c["verdict"], c["pass"]) for c in doc["checks"]],
                         [("dimm-mode1: ok", "pass", "main"),
                          ("debug: dimm-mode1: ok", "fail", "debug")])
        self.assertTrue(all(isinstance(c["seconds"], float) for c in doc["checks"]))

    def test_command_lines_paste_into_a_shell_without_machine_paths(self):
        line = shell_line(["qemu", "-append", "a b", os.path.join(ROOT, "build", "x y")])
        self.assertEqual(line, "qemu -append 'a b' 'build/x y'")
        vm = VM("t", os.path.join(ROOT, "build", "bzImage"), "initrd", os.path.join(ROOT, "r"))
        self.assertNotIn(ROOT, shell_line(vm.command_line()))

    def test_manifest(self):
        with tempfile.TemporaryDirectory() as d:
            doc = stages.manifest(d, ["python3", "-m", "harness", "test", "--passes", "main"],
                                  ["main"])
            with open(os.path.join(d, "manifest.json")) as f:
                self.assertEqual(json.load(f), doc)
        self.assertEqual(doc["command"], "python3 -m harness test --passes main")
        self.assertEqual(doc["kernels"]["main"]["image"], "build/out/main/arch/x86/boot/bzImage")
        for key in ("git_head", "series_digest", "qemu", "images", "started"):
            self.assertIn(key, doc)
        self.assertNotIn(ROOT, json.dumps(doc))

    def test_committed_results_hold_no_machine_path(self):
        # this checkout's path, or any absolute path into a build folder
        rx = re.compile(re.escape(ROOT) + r"|/[^\s\"'`(]*/build/(?:out|runs|guest|linux)/")
        files = [os.path.join(d, f) for d, _, fs in os.walk(os.path.join(ROOT, "results"))
                 for f in fs if f.endswith((".json", ".md", ".jsonl"))]
        bad = []
        for path in files + [os.path.join(ROOT, "README.md")]:
            with open(path) as fh:
                m = rx.search(fh.read())
            if m:
                bad.append(f"{os.path.relpath(path, ROOT)}: {m.group(0)}")
        self.assertEqual(bad, [])


class FakeContext:
    """A pass's context as exec_passes makes it, without a guest."""

    def __init__(self, label, *args, on_vm=None, **kw):
        self.label, self.stock_kernel, self.on_vm = label, None, on_vm


def exec_lanes(todo, fake_run, res, patches=(), **kw):
    """stages.exec_passes on `todo` with `fake_run` for run_scenarios, no
    kernels, no guests, its output swallowed; returns (result, results.json)."""
    with tempfile.TemporaryDirectory() as d, contextlib.ExitStack() as stack:
        for target, value in (("run_scenarios", fake_run), ("Context", FakeContext),
                              ("kernel_image", lambda k: __file__), *patches):
            stack.enter_context(mock.patch.object(stages, target, value))
        stack.enter_context(mock.patch("sys.stdout", io.StringIO()))
        r = stages.exec_passes(res, todo, d, **kw)
        with open(os.path.join(d, "results.json")) as f:
            return r, json.load(f)


class LanesTest(unittest.TestCase):
    """harness test --lanes 2 (make test-full): the KASAN pass runs next to
    the others, and the checks of both end up in one closing line."""

    def run_plan(self, lanes, barrier=None):
        todo = {"main": ["admin"], "debug": ["admin"], "kasan": ["admin"]}
        seen = []

        def fake_run(ctx, names, res, save, stopping=None):
            seen.append((ctx.label, threading.current_thread().name))
            if barrier and ctx.label in ("main", "kasan"):
                barrier.wait(timeout=5)   # both lanes are in a scenario at once
            res.start(names[0], ctx.label)
            res.check("admin: ran", True)
            save()

        res = quiet()
        r, doc = exec_lanes(todo, fake_run, res, lanes=lanes)
        return r, res, seen, doc

    def test_lanes_of(self):
        todo = {"main": ["a"], "debug": ["a"], "nothp": [], "kasan": ["a"]}
        self.assertEqual(stages.lanes_of(todo, 1), [["main", "debug", "kasan"]])
        self.assertEqual(stages.lanes_of(todo, 2), [["main", "debug"], ["kasan"]])
        self.assertEqual(stages.lanes_of({"kasan": ["a"]}, 2), [["kasan"]])

    def test_two_lanes_run_at_once_and_merge(self):
        r, res, seen, doc = self.run_plan(2, threading.Barrier(2))
        self.assertTrue(r.ok)
        threads = dict(seen)
        self.assertNotEqual(threads["main"], threads["kasan"])
        self.assertEqual(threads["main"], threads["debug"])
        self.assertEqual([i["pass"] for i in res.items], ["main", "debug", "kasan"])
        self.assertEqual(res.closing_line(), "3 passed, 0 failed")
        self.assertEqual(doc["closing_line"], "3 passed, 0 failed")

    def test_one_lane_runs_in_order(self):
        r, res, seen, _ = self.run_plan(1)
        self.assertEqual([p for p, _ in seen], ["main", "debug", "kasan"])
        self.assertEqual(len({t for _, t in seen}), 1)
        self.assertEqual(res.closing_line(), "3 passed, 0 failed")

    def test_an_interrupt_stops_every_lane_and_kills_their_guests(self):
        todo = {"main": ["admin"], "kasan": ["admin", "cma"]}
        started = threading.Event()
        killed, ran = [], []

        class Guest:
            def __init__(self, label):
                self.label = label

            def kill(self):
                killed.append(self.label)

        def fake_run(ctx, names, res, save, stopping=None):
            for n in names:
                if stopping.is_set():
                    return
                ran.append((ctx.label, n))
                ctx.on_vm(Guest(ctx.label))
                if ctx.label == "main":
                    started.wait(5)
                    raise KeyboardInterrupt("signal 15")
                started.set()
                while not killed:
                    time.sleep(0.01)

        with self.assertRaises(KeyboardInterrupt):
            exec_lanes(todo, fake_run, quiet(), lanes=2)
        self.assertEqual(sorted(killed), ["kasan", "main"])
        self.assertEqual(ran, [("main", "admin"), ("kasan", "admin")] if ran[0][0] == "main"
                         else [("kasan", "admin"), ("main", "admin")])

    def test_build_lane_by_lane(self):
        todo = {"main": ["admin"], "debug": ["admin"], "kasan": ["admin"]}
        events, building = [], []
        kasan_running = threading.Event()

        def fake_build(names):
            self.assertFalse(building, "two builds at once")
            if names != ["kasan"]:
                kasan_running.wait(5)
            building.append(names)
            events.append(("build", tuple(names), kasan_running.is_set()))
            building.pop()
            return [stages.StageResult(f"build {n}", n != "debug", 1.0, "x") for n in names]

        def fake_run(ctx, names, res, save, stopping=None):
            events.append(("run", ctx.label))
            if ctx.label == "kasan":
                kasan_running.set()
                time.sleep(0.2)   # still running while the other lane builds
            res.start(names[0], ctx.label)
            res.check("admin: ran", True)

        res = quiet()
        r, _ = exec_lanes(todo, fake_run, res, patches=(("build", fake_build),), stock=True,
                          lanes=2, build_kernels=True)
        self.assertEqual(events[0], ("build", ("kasan",), False))
        # the first lane builds once the KASAN lane runs: main and its stock
        # kernel, then debug, whose build fails, so that lane runs nothing
        builds = [e for e in events if e[0] == "build"]
        self.assertEqual(builds[1], ("build", ("main", "stock", "debug"), True))
        self.assertNotIn(("run", "main"), events)
        self.assertFalse(r.ok)
        self.assertEqual([(i["name"], i["status"]) for i in res.items],
                         [("build debug", "fail"), ("kasan: admin: ran", "pass")])

    def test_a_lane_that_dies_fails(self):
        todo = {"main": ["admin"], "kasan": ["admin"]}
        res = quiet()
        with tempfile.TemporaryDirectory() as d, \
                mock.patch.object(stages, "kernel_image", lambda k: __file__), \
                mock.patch.object(stages, "Context", side_effect=RuntimeError("lost")), \
                mock.patch("sys.stdout", io.StringIO()):
            r = stages.exec_passes(res, todo, d, lanes=2)
        self.assertFalse(r.ok)
        self.assertEqual([i["name"] for i in res.items],
                         ["lane of main ran to the end", "kasan: lane of kasan ran to the end"])
        self.assertIn("RuntimeError: lost", res.out.getvalue())


class ParseStageTest(unittest.TestCase):
    def test_a_recorded_kunit_console(self):
        res = quiet()
        r = stages.parse([os.path.join(SAMPLES, "console-kunit.log")], res)
        self.assertTrue(r.ok, r)
        names = [i["name"] for i in res.items]
        self.assertTrue(any("KTAP list-kunit-test" in n for n in names), names)
        self.assertTrue(any("no oops" in n for n in names))

    def test_a_splat_fails(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "console.log")
            with open(path, "w") as f:
                f.write(sample("splats.log"))
            res = quiet()
            r = stages.parse([path], res)
        self.assertFalse(r.ok)
        self.assertEqual(res.count("fail"), 1)

    def test_a_missing_file_fails(self):
        res = quiet()
        self.assertFalse(stages.parse(["/nonexistent/console.log"], res).ok)


class FakeVM:
    name = "fake"
    console_path = "/nonexistent/console.log"

    def __init__(self):
        self.scripts = []
        self.qmp = self

    def command_line(self):
        return ["qemu-system-x86_64", "-m", "256M"]

    def run(self, script, timeout=120, check=True):
        self.scripts.append(script)
        return (0 if "true" in script else 1), "out\n"

    def execute(self, cmd, **args):
        if cmd == "fail":
            raise parsers.QMPError("GenericError", "no")
        return {"cmd": cmd, "args": args}


class ShellTest(unittest.TestCase):
    def test_lines_go_to_the_guest_and_qmp(self):
        vm, out = FakeVM(), io.StringIO()
        stages.interact(vm, io.StringIO('true\nfalse\nqmp query-x {"a": 1}\nqmp fail\n'
                                        'exit\nnot reached\n'), out)
        text = out.getvalue()
        self.assertEqual(len(vm.scripts), 2)
        self.assertIn("\ntrue\n", vm.scripts[0])
        self.assertIn("/tmp/.shell-cwd", vm.scripts[0])
        self.assertIn("[exit 1]", text)
        self.assertIn('"a": 1', text)
        self.assertIn("QMPError", text)
        self.assertIn("qemu-system-x86_64 -m 256M", text)

    def test_end_of_input_ends_it(self):
        vm = FakeVM()
        stages.interact(vm, io.StringIO(""), io.StringIO())
        self.assertEqual(vm.scripts, [])


class ShellStageTest(unittest.TestCase):
    """harness shell: the scenario runs up to the guest asked for, the shell
    runs on it, the guest is stopped (VM.__exit__ does not run when
    __enter__ raises), and the scenario goes no further."""

    def run_shell(self, guest):
        events = []

        class FakeVM:
            def __init__(self, name, *args, **kw):
                self.name = name

            def start(self):
                events.append(f"start {self.name}")
                return self

            def stop(self):
                events.append(f"stop {self.name}")

            def __enter__(self):
                return self.start()

            def __exit__(self, *exc):
                self.stop()

        def fn(ctx, res):
            for i in (1, 2):
                with ctx.vm(f"g{i}"):
                    events.append(f"work {i}")
            events.append("after")
        fake = Scenario("fake", "a fake", fn, ("main",), {}, (), ("tests",))
        shell = mock.patch.object(stages, "interact",
                                  lambda vm: events.append(f"shell {vm.name}"))
        with tempfile.TemporaryDirectory() as d, mock.patch.object(base, "VM", FakeVM), \
                shell, mock.patch.dict(SCENARIOS, {"fake": fake}):
            r = stages.shell("fake", "main", d, guest=guest)
        return r, events

    def test_second_guest(self):
        r, events = self.run_shell(2)
        self.assertTrue(r.ok, r)
        self.assertEqual(events, ["start g1", "work 1", "stop g1", "start g2", "shell g2",
                                  "stop g2"])

    def test_a_guest_the_scenario_does_not_boot(self):
        r, events = self.run_shell(3)
        self.assertFalse(r.ok)
        self.assertIn("boots 2 guests", r.detail)
        self.assertEqual(events[-1], "after")


class WaitTest(unittest.TestCase):
    def test_returns_the_first_true_value(self):
        seq = iter([0, None, "yes"])
        self.assertEqual(wait.wait_until(lambda: next(seq), 5, poll=0), "yes")

    def test_timeout_raises_with_the_message_or_returns_false(self):
        t0 = time.monotonic()
        with self.assertRaises(VMError) as e:
            wait.wait_until(lambda: 0, 0.05, poll=0.01, what=lambda v: f"got {v}",
                            error=VMError)
        self.assertEqual(str(e.exception), "got 0")
        self.assertFalse(wait.wait_until(lambda: [], 0.05, poll=0.01))
        self.assertLess(time.monotonic() - t0, 2)

    def test_a_dead_guest_ends_the_wait_at_once(self):
        def dead():
            raise VMError("QEMU exited")
        with self.assertRaises(VMError):
            wait.wait_until(lambda: 0, 60, alive=dead)


class MarkerTest(unittest.TestCase):
    def test_failed_adds_per_path(self):
        con = ("[    5.1] acpi PNP0C80:00: add_memory failed\n"
               "[    6.2] virtio_mem virtio5: adding memory failed: -12\n")
        self.assertEqual(parsers.add_failure(con, "dimm"), "acpi PNP0C80:00: add_memory failed")
        self.assertEqual(parsers.add_failure(con.splitlines()[1], "vmem"),
                         "virtio_mem virtio5: adding memory failed: -12")
        self.assertIsNone(parsers.add_failure("[ 1.0] virtio_mem: marking device broken",
                                              "dimm"))
        self.assertIsNotNone(parsers.add_failure("[ 1.0] virtio_mem: marking device broken",
                                                 "vmem"))

    def test_every_kind_is_named_once(self):
        kinds = [m.kind for m in parsers.MARKERS]
        self.assertEqual(len(kinds), len(set(kinds)))

    def test_failure_text_names_a_panic_from_the_console(self):
        class Stopped:
            def step_console(self):
                return "[ 9.0] Kernel panic - not syncing: System is deadlocked on memory\n"
            console = step_console
        why = measure.failure_text(Stopped(), VMError("QEMU exited"))
        self.assertEqual(why, "System is deadlocked on memory (guest panicked)")


class QemuLayoutTest(unittest.TestCase):
    def test_first_dimm_slot(self):
        # recorded: QEMU 7.2 put the kunit DIMM (3 GiB guest) at 5 GiB and a
        # 256 MiB guest's at 4 GiB
        self.assertEqual(dimm_base(3072), 5 << 30)
        self.assertEqual(dimm_base(256), 4 << 30)
        self.assertEqual(dimm_base(2048), 4 << 30)

    def test_arm64_virt(self):
        # virt: RAM at 1 GiB, the DIMM slots at the next GiB after it
        arm64 = TARGETS["arm64"]
        self.assertEqual(dimm_base(256, arm64), 2 << 30)
        self.assertEqual(dimm_base(4096, arm64), 5 << 30)
        self.assertEqual(dimm_base(1536, arm64), 3 << 30)

    def test_arm64_command_line(self):
        vm = VM("t", "Image", "initrd", "/tmp/r", append="x=1", target="arm64",
                page_size=65536)
        args = vm.command_line()
        self.assertEqual(args[0], "qemu-system-aarch64")
        self.assertEqual(args[args.index("-M") + 1], "virt")
        self.assertEqual(args[args.index("-bios") + 1], TARGETS["arm64"]["firmware"])
        self.assertNotIn("-vga", args)
        self.assertIn("virtconsole,chardev=agent", args)
        append = args[args.index("-append") + 1].split()
        self.assertIn("console=ttyAMA0", append)
        self.assertIn("agent=/dev/hvc0", append)
        self.assertIn("acpi=force", append)
        self.assertEqual(append[-1], "x=1")
        # x86-64 as before: the agent on the second serial port
        x86 = VM("t", "bzImage", "initrd", "/tmp/r").command_line()
        self.assertEqual(x86.count("-serial"), 2)
        self.assertNotIn("agent=/dev/hvc0", x86[x86.index("-append") + 1])

    def test_arm64_passes_boot_arm64_kernels_and_image(self):
        for p in ARM64_PASSES:
            ctx = base.Context(p, "/tmp/r")
            self.assertEqual((ctx.arch, ctx.kernel.endswith("arch/arm64/boot/Image")),
                             ("arm64", True))
            self.assertEqual(ctx.initrd, INITRDS["arm64"])
            self.assertEqual(KERNELS[PASSES[p].stock].tree, "stock")
        self.assertEqual(base.Context("main", "/tmp/r").initrd, INITRDS["x86_64"])


if __name__ == "__main__":
    unittest.main()
