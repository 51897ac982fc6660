"""QMPClient against a fake QEMU on a socketpair."""

import socket
import time
import unittest

from harness.qmp import QMPClient

GREETING = b'{"QMP": {"version": {}, "capabilities": []}}\n'
EVENT = b'{"event": "VSERPORT_CHANGE", "data": {"open": true}, "timestamp": {}}\n'


class GreetingTest(unittest.TestCase):
    def client_with(self, data):
        ours, theirs = socket.socketpair()
        self.addCleanup(ours.close)
        self.addCleanup(theirs.close)
        theirs.sendall(data)
        c = QMPClient("unused")
        c.sock = ours
        return c, theirs

    def test_plain_greeting(self):
        c, _peer = self.client_with(GREETING)
        self.assertIn("QMP", c.wait_greeting(time.monotonic() + 5))
        self.assertEqual(c.events, [])

    def test_event_before_greeting_is_kept(self):
        c, _peer = self.client_with(EVENT + GREETING)
        c.wait_greeting(time.monotonic() + 5)
        self.assertEqual([e["event"] for e in c.events], ["VSERPORT_CHANGE"])

    def test_reply_instead_of_greeting_is_an_error(self):
        c, _peer = self.client_with(b'{"return": {}}\n')
        with self.assertRaisesRegex(RuntimeError, "expected a greeting, got return"):
            c.wait_greeting(time.monotonic() + 5)

    def test_silence_times_out(self):
        c, _peer = self.client_with(b"")
        with self.assertRaises(TimeoutError):
            c.wait_greeting(time.monotonic() + 0.2)


if __name__ == "__main__":
    unittest.main()
