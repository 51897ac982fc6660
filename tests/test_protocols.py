"""The two wire protocols against scripted peers on a socketpair, no QEMU:
QMP (QMPClient) and the guest's command agent (VM.run, guest/agent).  The
point is what happens out of order: events before a reply, and a reply that
comes only after its command timed out, which must never answer the next
command."""

import base64
import json
import socket
import tempfile
import threading
import time
import types
import unittest

from harness.parsers import QMPError
from harness.qmp import QMPClient
from harness.vm import VM, VMError

GREETING = b'{"QMP": {"version": {}, "capabilities": []}}\n'


def event(name, **data):
    return json.dumps({"event": name, "data": data, "timestamp": {}}).encode() + b"\n"


def reply(req, value=None, error=None):
    """QEMU's answer to `req`, echoing its id as QEMU does."""
    msg = {"error": {"class": error[0], "desc": error[1]}} if error else {"return": value}
    if "id" in req:
        msg["id"] = req["id"]
    return json.dumps(msg).encode() + b"\n"


class Peer(threading.Thread):
    """The far end of a socketpair: for each request line it reads, sends
    the pieces `answer(line)` returns, a moment apart so that they come in
    separate reads."""

    def __init__(self, sock, answer):
        super().__init__(daemon=True)
        self.sock = sock
        self.answer = answer
        self.requests = []

    def run(self):
        try:
            for line in self.sock.makefile("rb"):
                self.requests.append(line)
                for piece in self.answer(line):
                    self.sock.sendall(piece)
                    time.sleep(0.02)
        except OSError:
            pass  # the test closed its end


class QMPTest(unittest.TestCase):
    def client(self, answer, first=b""):
        """A QMPClient talking to a fake QEMU that sends `first` at once and
        answers each command with answer(request)."""
        ours, theirs = socket.socketpair()
        theirs.sendall(first)
        peer = Peer(theirs, lambda line: answer(json.loads(line)))
        peer.start()
        c = QMPClient("unused", timeout=5)
        c.sock = ours
        self.addCleanup(peer.join, 2)
        self.addCleanup(theirs.close)
        self.addCleanup(ours.close)
        return c, peer

    def test_greeting_then_commands(self):
        def answer(req):
            if req["execute"] == "query-memory-devices":
                return [reply(req, [{"type": "dimm", "data": {"addr": 4096}}])]
            return [reply(req, {})]
        c, peer = self.client(answer, GREETING)
        self.assertIn("QMP", c.wait_greeting(time.monotonic() + 5))
        self.assertEqual(c.execute("qmp_capabilities"), {})
        devs = c.execute("query-memory-devices")
        self.assertEqual(devs[0]["data"]["addr"], 4096)
        ids = [json.loads(line)["id"] for line in peer.requests]
        self.assertEqual(len(set(ids)), 2, "each command carries an id of its own")

    def test_arguments_are_sent(self):
        c, peer = self.client(lambda req: [reply(req, {})])
        c.execute("device_del", id="dimm1")
        self.assertEqual(json.loads(peer.requests[0])["arguments"], {"id": "dimm1"})

    def test_error_reply_raises(self):
        c, _ = self.client(lambda req: [reply(req, error=("DeviceNotFound", "no nosuch"))])
        with self.assertRaises(QMPError) as cm:
            c.execute("device_del", id="nosuch")
        self.assertEqual((cm.exception.cls, cm.exception.desc), ("DeviceNotFound", "no nosuch"))

    def test_event_before_the_return_is_kept(self):
        def answer(req):
            return [event("ACPI_DEVICE_OST", info={"device": "dimm1"}), reply(req, {})]
        c, _ = self.client(answer)
        self.assertEqual(c.execute("device_del", id="dimm1"), {})
        self.assertEqual([e["event"] for e in c.events], ["ACPI_DEVICE_OST"])
        # wait_event finds it among the kept ones, without reading further
        ev = c.wait_event("ACPI_DEVICE_OST", 0.1, match=lambda d: d["info"]["device"] == "dimm1")
        self.assertEqual(ev["data"]["info"]["device"], "dimm1")
        self.assertEqual(c.events, [])

    def test_wait_event_reads_until_a_match(self):
        def answer(req):
            return [reply(req, {}), event("DEVICE_DELETED", device="other"),
                    event("MEMORY_DEVICE_SIZE_CHANGE", id="vm0", size=1),
                    event("DEVICE_DELETED", device="dimm1")]
        c, _ = self.client(answer)
        c.execute("device_del", id="dimm1")
        ev = c.wait_event("DEVICE_DELETED", 5, match=lambda d: d.get("device") == "dimm1")
        self.assertEqual(ev["data"]["device"], "dimm1")
        # the others stay for whoever waits for them
        self.assertEqual([e["event"] for e in c.events],
                         ["DEVICE_DELETED", "MEMORY_DEVICE_SIZE_CHANGE"])
        with self.assertRaises(TimeoutError):
            c.wait_event("DEVICE_DELETED", 0.2, match=lambda d: d.get("device") == "dimm2")

    def test_late_reply_does_not_answer_the_next_command(self):
        held = []

        def answer(req):
            if req["execute"] == "slow":
                held.append(req)  # answered only after the client gave up
                return []
            return [reply(held.pop(), {"from": "slow"}), reply(req, {"from": "fast"})]
        c, _ = self.client(answer)
        t0 = time.monotonic()
        with self.assertRaisesRegex(TimeoutError, "slow"):
            c.execute("slow", timeout=0.3)
        self.assertLess(time.monotonic() - t0, 2)
        self.assertEqual(c.execute("fast"), {"from": "fast"})

    def test_late_error_is_not_raised_for_the_next_command(self):
        held = []

        def answer(req):
            if req["execute"] == "slow":
                held.append(req)
                return []
            return [reply(held.pop(), error=("GenericError", "late")), reply(req, [1])]
        c, _ = self.client(answer)
        with self.assertRaises(TimeoutError):
            c.execute("slow", timeout=0.3)
        self.assertEqual(c.execute("fast"), [1])


class AgentTest(unittest.TestCase):
    def vm(self, answer, first=b""):
        """A VM whose agent socket leads to a scripted guest (no QEMU): it
        sends `first` at once and answers each request with the pieces
        answer(tok, script) returns."""
        rundir = tempfile.TemporaryDirectory()
        self.addCleanup(rundir.cleanup)
        vm = VM("proto", "no-kernel", "no-initrd", rundir.name)
        # a QEMU that is still running, as far as _check_alive can tell
        vm.proc = types.SimpleNamespace(poll=lambda: None, returncode=None)
        vm.agent, theirs = socket.socketpair()
        theirs.sendall(first)

        def decode(line):
            tok, b64 = line.decode().split()
            return answer(tok, base64.b64decode(b64).decode())
        peer = Peer(theirs, decode)
        peer.start()
        self.addCleanup(peer.join, 2)
        self.addCleanup(theirs.close)
        self.addCleanup(vm.agent.close)
        return vm

    @staticmethod
    def done(tok, out, rc=0):
        """What guest/agent sends when a script finishes."""
        return f"{out}@@{tok} {rc}@@\n".encode()

    def test_boot_marker_then_a_command(self):
        vm = self.vm(lambda tok, script: [self.done(tok, "hello\n")],
                     first=b"agent noise\n@@READY@@\n")
        before = vm._wait_agent("@@READY@@", time.monotonic() + 5, "boot")
        self.assertEqual(before, "agent noise\n")
        self.assertEqual(vm.run("echo hello"), "hello\n")

    def test_output_and_rc(self):
        def answer(tok, script):
            if script == "false":
                return [self.done(tok, "", 1)]
            # the output comes in pieces, the end line split too
            return [b"line 1\r\nline", b" 2\n@@", f"{tok} 0@".encode(), b"@\n"]
        vm = self.vm(answer)
        self.assertEqual(vm.run("two lines"), "line 1\nline 2\n")
        self.assertEqual(vm.run("false", check=False), (1, ""))

    def test_output_without_a_final_newline(self):
        vm = self.vm(lambda tok, script: [self.done(tok, "no newline")])
        self.assertEqual(vm.run("printf 'no newline'"), "no newline")
        self.assertEqual(vm.run("printf 'no newline'", check=False), (0, "no newline"))

    def test_failed_command_raises_with_check(self):
        vm = self.vm(lambda tok, script: [self.done(tok, "cat: nosuch: No such file\n", 1)])
        with self.assertRaisesRegex(VMError, r"rc 1\).*cat /nosuch(.|\n)*No such file"):
            vm.run("cat /nosuch")

    def test_late_reply_is_dropped(self):
        def answer(tok, script):
            if script == "sleep 600":
                return [b"late "]  # part of it before the timeout
            return [b"text\n@@t1", b" 0@@\n", self.done(tok, "own\n")]
        vm = self.vm(answer)
        t0 = time.monotonic()
        with self.assertRaisesRegex(VMError, "timed out during 'sleep 600'"):
            vm.run("sleep 600", timeout=0.3)
        self.assertLess(time.monotonic() - t0, 2)
        self.assertEqual(vm.run("echo own"), "own\n")

    def test_late_reply_in_one_piece_is_dropped(self):
        def answer(tok, script):
            if script == "slow":
                return []
            return [b"late text\n@@t1 0@@\n" + self.done(tok, "own\n", 2)]
        vm = self.vm(answer)
        with self.assertRaises(VMError):
            vm.run("slow", timeout=0.3)
        self.assertEqual(vm.run("fast", check=False), (2, "own\n"))

    def test_closed_connection_and_dead_qemu(self):
        vm = self.vm(lambda tok, script: [])
        vm.agent.shutdown(socket.SHUT_RD)
        with self.assertRaisesRegex(VMError, "agent connection closed"):
            vm.run("true", timeout=5)
        vm.proc = types.SimpleNamespace(poll=lambda: 1, returncode=1)
        with self.assertRaisesRegex(VMError, "QEMU exited"):
            vm.run("true", timeout=5)


if __name__ == "__main__":
    unittest.main()
