"""Where this checkout is, and command lines fit to be written down.  At the
bottom of the layers: everything may know where the checkout is."""

import hashlib
import os
import shlex

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(ROOT, "build")


def shell_line(args, root=ROOT):
    """A command line that can be pasted into a shell (shlex.join), with this
    checkout's absolute path made relative, so that no path of the machine
    reaches a committed file."""
    return shlex.join(args).replace(root + os.sep, "")


def file_sha256(path):
    """sha256 of a file in hex, or None if there is none."""
    if not os.path.exists(path):
        return None
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
