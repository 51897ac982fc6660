"""A small QMP client over a unix socket (QEMU Machine Protocol)."""

import json
import socket
import time

from .parsers import parse_qmp_message


class QMPClient:
    def __init__(self, path, timeout=30, log=None):
        self.path = path
        self.log = log
        self.timeout = timeout
        self.sock = None
        self.buf = b""
        self.events = []

    def connect(self, deadline):
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(self.path)
                break
            except OSError:
                self.sock.close()
                self.sock = None
                if time.monotonic() > deadline:
                    raise TimeoutError(f"QMP socket {self.path} never accepted")
                time.sleep(0.1)
        self.wait_greeting(deadline)
        self.execute("qmp_capabilities")

    def wait_greeting(self, deadline):
        """Read up to the greeting.  QEMU may send an event before it (a
        serial port opening, for one: the CI once failed a boot on that);
        such events are kept like any other."""
        while True:
            kind, value = self._read_message(deadline)
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
        while True:
            line = self._read_line(deadline).strip()
            if line:
                return parse_qmp_message(line)[0:2]

    def execute(self, command, timeout=None, **arguments):
        deadline = time.monotonic() + (timeout or self.timeout)
        req = {"execute": command}
        if arguments:
            req["arguments"] = arguments
        if self.log:
            self.log.write("-> " + json.dumps(req) + "\n")
        self.sock.sendall(json.dumps(req).encode() + b"\n")
        while True:
            kind, value = self._read_message(deadline)
            if kind == "event":
                self.events.append(value)
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
            kind, value = self._read_message(deadline)
            if kind == "event":
                self.events.append(value)

    def close(self):
        if self.log:
            self.log.close()
            self.log = None
        if self.sock:
            self.sock.close()
            self.sock = None
