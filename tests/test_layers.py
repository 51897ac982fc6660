"""The harness's layers: each module imports only from layers below its own
(README, Layout), and the one-place rules of issue 17 hold."""

import ast
import os
import re
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HARNESS = os.path.join(ROOT, "harness")

# bottom to top; a module may import from a lower layer only
LAYERS = (
    ("paths", "wait", "parsers", "model"),
    ("qmp",),
    ("vm",),
    ("measure", "results", "report", "passes"),
    ("scenarios.base", "bench", "demo"),
    ("scenarios.admin", "scenarios.arm64", "scenarios.dimm", "scenarios.fault", "scenarios.peers",
     "scenarios.pressure", "scenarios.reliability", "scenarios.selftests", "scenarios.vmem"),
    ("scenarios",),
    ("stages",),
    ("__main__",),
)
LAYER = {m: i for i, layer in enumerate(LAYERS) for m in layer}


def read(path):
    with open(path) as f:
        return f.read()


def modules():
    """{module name relative to harness: path}; a package is its __init__."""
    out = {}
    for d, _, files in os.walk(HARNESS):
        for f in files:
            if not f.endswith(".py"):
                continue
            rel = os.path.relpath(os.path.join(d, f), HARNESS)[:-3].replace(os.sep, ".")
            if rel == "__init__":
                continue
            out[rel[:-len(".__init__")] if rel.endswith(".__init__") else rel] = \
                os.path.join(d, f)
    return out


def harness_imports(name, path):
    """The harness modules that module `name` imports."""
    package = name.rsplit(".", 1)[0] if "." in name else ""
    if path.endswith("__init__.py"):
        package = name
    found = set()
    for node in ast.walk(ast.parse(read(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".") if package else []
                base = parts[:len(parts) - (node.level - 1)] if node.level > 1 else parts
                mod = ".".join(base + ([node.module] if node.module else []))
            elif (node.module or "").startswith("harness"):
                mod = node.module[len("harness."):] if node.module != "harness" else ""
            else:
                continue
            for alias in node.names:
                sub = f"{mod}.{alias.name}" if mod else alias.name
                found.add(sub if sub in LAYER else mod)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("harness."):
                    found.add(alias.name[len("harness."):])
    return {m for m in found if m}


class LayerTest(unittest.TestCase):
    def test_every_module_has_a_layer(self):
        self.assertEqual(sorted(set(modules()) - set(LAYER)), [])

    def test_no_module_imports_from_its_layer_or_above(self):
        bad = []
        for name, path in sorted(modules().items()):
            for dep in harness_imports(name, path):
                if dep not in LAYER:
                    bad.append(f"{name} imports unknown {dep}")
                elif LAYER[dep] >= LAYER[name]:
                    bad.append(f"{name} (layer {LAYER[name]}) imports {dep} "
                               f"(layer {LAYER[dep]})")
        self.assertEqual(bad, [])

    def test_the_checker_sees_relative_imports(self):
        mods = modules()
        self.assertIn("measure", harness_imports("bench", mods["bench"]))
        self.assertIn("scenarios.base", harness_imports("scenarios.dimm", mods["scenarios.dimm"]))
        self.assertIn("vm", harness_imports("scenarios.base", mods["scenarios.base"]))


def source(skip=()):
    for name, path in modules().items():
        if name not in skip:
            yield name, read(path)


class OnePlaceTest(unittest.TestCase):
    def test_one_poll_loop(self):
        # time.sleep() inside a while loop is wait_until()'s job
        loops = []
        for name, text in source(skip=("wait",)):
            for m in re.finditer(r"\n( *)while [^\n]*:\n((?:\1 +[^\n]*\n|\s*\n)*)", text):
                if "time.sleep(" in m.group(2):
                    loops.append(f"{name}: {m.group(0).strip().splitlines()[0]}")
        self.assertEqual(loops, [])

    def test_one_marker_table_and_no_timestamp_regex_elsewhere(self):
        for name, text in source(skip=("parsers",)):
            self.assertNotRegex(text, r"ADD_FAILED|VMEM_FAILED|FAILURE_MARKERS|WARN_PATTERNS",
                                name)
            self.assertNotIn(r"\d+\.\d+\]", text, name)

    def test_one_requested_size_call(self):
        hits = [n for n, text in source() for _ in re.finditer(r'"requested-size"', text)]
        self.assertEqual(hits, ["measure"])

    def test_kernel_paths_only_in_passes(self):
        for name, text in source(skip=("passes",)):
            self.assertNotRegex(text, r'"out", "(main|debug|nothp|kasan|stock)', name)
        self.assertNotIn("arch/x86/boot/bzImage", read(os.path.join(ROOT, "Makefile")))


if __name__ == "__main__":
    unittest.main()
