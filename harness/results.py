"""Test results: every check is one line and counts in the closing totals."""

import sys


class Results:
    def __init__(self, out=sys.stdout):
        self.items = []
        self.out = out
        self.prefix = ""    # e.g. "debug: " while the suite runs on the debug kernel
        self.expected = {}  # {check: reason}: the skips the running scenario declares

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
        self.items.append({"name": name, "status": status, "detail": detail})
        mark = {"pass": "ok  ", "fail": "FAIL"}[status]
        print(f"{mark} {name}" + (f" -- {detail}" if detail else ""), file=self.out, flush=True)

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
