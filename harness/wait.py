"""The one poll loop of the harness.  Below every other module, because the
VM's own connection waits use it as much as the measurements do."""

import time


def wait_until(probe, timeout, poll=0.5, what=None, alive=None, error=TimeoutError):
    """Call probe() every `poll` seconds until it returns something true,
    and return that.  When `timeout` seconds have passed: raise
    error(what) if `what` is given (a string, or a function of the last
    value that makes one), else return the last value, false.
    `alive()`, if given, runs before each look and raises when the guest is
    gone, so that a dead guest is not waited on for the whole timeout."""
    deadline = time.monotonic() + timeout
    while True:
        if alive is not None:
            alive()
        got = probe()
        if got:
            return got
        if time.monotonic() >= deadline:
            if what is None:
                return got
            raise error(what(got) if callable(what) else what)
        time.sleep(poll)
