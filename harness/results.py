"""Test results: every check is one line and counts in the closing totals."""

import json
import os
import sys
import time


class Results:
    def __init__(self, out=sys.stdout):
        self.items = []
        self.out = out
        self.prefix = ""    # e.g. "debug: " while the suite runs on the debug kernel
        self.expected = {}  # {check: reason}: the skips the running scenario declares
        self.scenario = ""  # the scenario running, for results.json
        self.pass_name = ""  # and the pass it runs in
        self.last = time.monotonic()

    def expect_skips(self, skips):
        """The skips the scenario about to run declares ({check: reason},
        names without the pass prefix).  A declared skip passes, with its
        reason; any other skip fails: a skipped check is a check that did
        not run, and only the scenario's own declaration makes that fine."""
        self.expected = dict(skips)

    def record(self, name, status, detail=""):
        if status == "skip":
            if name in self.expected:
                status, detail = "pass", f"skipped as declared: {self.expected[name]}"
            else:
                status, detail = "fail", f"skipped, and no skip is declared: {detail}"
        name = self.prefix + name
        now = time.monotonic()
        # seconds since the check before: what it took to come to this one
        self.items.append({"name": name, "status": status, "detail": detail,
                           "scenario": self.scenario, "pass": self.pass_name,
                           "seconds": round(now - self.last, 1)})
        self.last = now
        mark = {"pass": "ok  ", "fail": "FAIL"}[status]
        # one write: lines of two lanes (harness test --lanes 2) stay whole
        (self.out or sys.stdout).write(f"{mark} {name}" + (f" -- {detail}" if detail else "")
                                       + "\n")
        (self.out or sys.stdout).flush()

    def check(self, name, cond, detail=""):
        self.record(name, "pass" if cond else "fail", detail)
        return bool(cond)

    def passed(self, name, detail=""):
        self.record(name, "pass", detail)

    def fail(self, name, detail=""):
        self.record(name, "fail", detail)

    def skip(self, name, reason):
        self.record(name, "skip", reason)

    def count(self, status):
        return sum(1 for i in self.items if i["status"] == status)

    def closing_line(self):
        return f"{self.count('pass')} passed, {self.count('fail')} failed"

    def start(self, scenario, pass_name=""):
        """The checks recorded from now on belong to `scenario` on pass
        `pass_name`; their names get the prefix "PASS: " except on main."""
        self.scenario, self.pass_name, self.last = scenario, pass_name, time.monotonic()
        self.prefix = f"{pass_name}: " if pass_name not in ("", "main") else ""

    def write_json(self, path, **extra):
        """Every check so far (name, verdict, detail, scenario, pass,
        seconds) and the closing line, to `path`; written after each
        scenario, so that an interrupted run leaves what it did."""
        os.makedirs(os.path.dirname(path), exist_ok=True)
        doc = {"closing_line": self.closing_line(), **extra,
               "checks": [{"name": i["name"], "verdict": i["status"], "detail": i["detail"],
                           "scenario": i["scenario"], "pass": i["pass"],
                           "seconds": i["seconds"]} for i in self.items]}
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")
        os.replace(tmp, path)
