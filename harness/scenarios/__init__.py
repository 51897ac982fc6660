"""Scenario tests: each boots guests, does what a VM operator would do, and
records checks.  The modules register themselves in base.SCENARIOS, in
the order they run; none of them imports another but base."""

from . import dimm, selftests, vmem, admin, fault, pressure, reliability, peers, arm64
from .base import SCENARIOS, Context, Scenario, expected_skips, scenario

__all__ = ["SCENARIOS", "Context", "Scenario", "expected_skips", "scenario", "dimm",
           "selftests", "vmem", "admin", "fault", "pressure", "reliability", "peers", "arm64"]
