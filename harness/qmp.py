"""A small QMP client over a unix socket (QEMU Machine Protocol)."""

import json
import socket
import time

from .parsers import parse_qmp_message
from .wait import wait_until


class QMPClient:
    def __init__(self, path, timeout=30, log=None):
        self.path = path
        self.log = log
        self.timeout = timeout
        self.sock = None
        self.buf = b""
        self.events = []
        self.seq = 0  # the id of the last command sent

    def connect(self, deadline):
        def attempt():
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(self.path)
                return sock
            except OSError:
                sock.close()
                return None
        self.sock = wait_until(attempt, deadline - time.monotonic(), poll=0.1,
                               what=f"QMP socket {self.path} never accepted")
        self.wait_greeting(deadline)
        self.execute("qmp_capabilities")

    def wait_greeting(self, deadline):
        """Read up to the greeting.  QEMU may send an event before it (a
        serial port opening, for one: the CI once failed a boot on that);
        such events are kept like any other."""
        while True:
            kind, value, _ = self._read_message(deadline)
            if kind == "greeting":
                return value
            if kind != "event":
                raise RuntimeError(f"QMP: expected a greeting, got {kind}: {value}")
            self.events.append(value)

    def _read_line(self, deadline):
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("QMP: no reply in time")
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("QMP: QEMU closed the socket")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        if self.log:
            self.log.write("<- " + line.decode().strip() + "\n")
            self.log.flush()
        return line.decode()

    def _read_message(self, deadline):
        """-> (kind, value, id): id is what a reply echoes of its
        command's, None for anything else."""
        while True:
            line = self._read_line(deadline).strip()
            if line:
                kind, value = parse_qmp_message(line)[0:2]
                msg_id = json.loads(line).get("id") if kind in ("return", "error") else None
                return kind, value, msg_id

    def execute(self, command, timeout=None, arguments=None, **kw):
        """Run a command with `arguments` (a dict, for names that are
        Python keywords or this method's own) and `kw`; its return value,
        or QMPError.  Each command carries an id of its own and only the
        reply that echoes it answers it: a command that timed out may still
        be answered later, and that late reply must not be taken for the
        next command's."""
        arguments = dict(arguments or {}, **kw)
        deadline = time.monotonic() + (timeout or self.timeout)
        self.seq += 1
        req = {"execute": command, "id": self.seq}
        if arguments:
            req["arguments"] = arguments
        if self.log:
            self.log.write("-> " + json.dumps(req) + "\n")
        self.sock.sendall(json.dumps(req).encode() + b"\n")
        while True:
            try:
                kind, value, msg_id = self._read_message(deadline)
            except TimeoutError:
                raise TimeoutError(f"QMP: no reply to {command} in time") from None
            if kind == "event":
                self.events.append(value)
            elif kind in ("return", "error") and msg_id != self.seq:
                if self.log:
                    self.log.write(f"   (not the reply to {self.seq}: dropped)\n")
            elif kind == "error":
                raise value
            elif kind == "return":
                return value

    def wait_event(self, name, timeout, match=None):
        """Wait for an event called name (optionally match(data) true)."""
        deadline = time.monotonic() + timeout
        while True:
            for i, ev in enumerate(self.events):
                if ev["event"] == name and (match is None or match(ev.get("data", {}))):
                    return self.events.pop(i)
            kind, value, _ = self._read_message(deadline)
            if kind == "event":
                self.events.append(value)

    def close(self):
        if self.log:
            self.log.close()
            self.log = None
        if self.sock:
            self.sock.close()
            self.sock = None
