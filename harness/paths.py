"""Where this checkout is, and command lines fit to be written down.  At the
bottom of the layers: everything may know where the checkout is."""

import hashlib
import os
import re
import shlex

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# where trees, kernels, images and runs go; BUILD in the environment moves
# it, as for scripts/lib.sh (make check-series TOPIC= builds a topic apart)
BUILD = os.path.abspath(os.environ.get("BUILD") or os.path.join(ROOT, "build"))


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


def series_topics(root=ROOT):
    """The topic series of patches/series in order: [(name, [needs])], from
    its lines '# topic NAME; needs: A B' ('needs: base' for none)."""
    topics = []
    with open(os.path.join(root, "patches", "series")) as f:
        for line in f:
            m = re.match(r"# topic ([a-z0-9.-]+); needs: (.*)$", line.strip())
            if m:
                topics.append((m.group(1), [n for n in m.group(2).split() if n != "base"]))
    return topics
