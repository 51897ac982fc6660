"""Test results: every check is one line and counts in the closing totals."""

import sys


class Results:
    def __init__(self, out=sys.stdout):
        self.items = []
        self.out = out
        self.prefix = ""    # e.g. "debug: " while the suite runs on the debug kernel

    def record(self, name, status, detail=""):
        name = self.prefix + name
        self.items.append({"name": name, "status": status, "detail": detail})
        mark = {"pass": "ok  ", "fail": "FAIL", "skip": "skip"}[status]
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
        line = f"{self.count('pass')} passed, {self.count('fail')} failed"
        if self.count("skip"):
            line += f", {self.count('skip')} skipped"
        return line
