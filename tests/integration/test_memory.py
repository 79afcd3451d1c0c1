"""Memory per session before routing (issue: pre-route memory was 2.3x
limits.preroute_bytes, and a session stalled mid-handshake held 17.5 KiB).
Measured as rtmplb's resident memory growth over many sessions held open
at once, after a warm-up, on one worker."""
import os
import socket
import time
import unittest

import harness
from harness import Fleet, free_port, recv_exact
import rtmpfake as rf

PREROUTE = 64 * 1024


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def audio_stream(total):
    """Whole audio messages (never publish or play), cut to total bytes."""
    out = bytearray()
    while len(out) < total:
        out += rf.chunk_message(4, rf.AUDIO, b"\xaf\x01" + os.urandom(998), msid=1)
    return bytes(out[:total])


class PrerouteMemory(unittest.TestCase):
    def setUp(self):
        self.fleet = Fleet()
        self.port = free_port()
        self.lb = self.fleet.rtmplb("""
workers: 1
listeners: [{name: r, address: 127.0.0.1:%d}]
limits: {preroute_bytes: 64KiB, max_message_size: 16KiB}
timeouts: {handshake: 120s}
log: {access_log: "off"}
pools: {p: {nodes: [{name: a, address: 127.0.0.1:1}]}}
routes: [{name: r, pool: p}]
""" % self.port, wait_ports=[self.port])
        self.socks = []
        self.warm_up()

    def tearDown(self):
        for s in self.socks:
            s.close()
        self.fleet.stop()

    def connect(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        self.socks.append(s)
        return s

    def warm_up(self):
        # Allocator arenas and libuv structures settle before measuring.
        for _ in range(2):
            for _ in range(60):
                self.connect().sendall(b"\x03" + bytes(700))
            time.sleep(0.5)
            self.release()

    def held(self, n, prepare):
        """The marginal memory of one more session: rss with n + 2n sessions
        open, less rss with n open, over 2n. Fixed costs (thread stacks,
        arenas, the first sessions) cancel out."""
        for _ in range(n):
            prepare(self.connect())
        time.sleep(1.0)
        first = rss_kib(self.lb.pid)
        for _ in range(2 * n):
            prepare(self.connect())
        time.sleep(1.0)
        self.assertIsNone(self.lb.poll())
        grown = rss_kib(self.lb.pid) - first
        # Every session measured must still be held, not closed by rtmplb.
        for sock in self.socks:
            sock.settimeout(0)
            try:
                self.assertNotEqual(sock.recv(1), b"",
                                    "rtmplb closed a session that was being measured")
            except BlockingIOError:
                pass
        return grown / (2 * n)

    def release(self):
        for s in self.socks:
            s.close()
        self.socks = []
        time.sleep(0.5)

    def handshake(self, s):
        s.sendall(b"\x03" + bytes(1536))
        recv_exact(s, 3073)
        s.sendall(bytes(1536))

    def test_1_stalled_mid_handshake_holds_under_8_kib(self):
        per = self.held(200, lambda s: s.sendall(b"\x03" + bytes(700)))
        print("a session stalled mid-C0C1: %.2f KiB" % per)
        self.assertLess(per, 8.0)
        self.assertTrue(self.lb.poll() is None)

    def test_2_preroute_holds_under_1_2x_the_budget(self):
        budget = 1.2 * PREROUTE / 1024 + 8
        junk = audio_stream(PREROUTE - 1024)

        def fill(s):
            self.handshake(s)
            s.sendall(junk)
        per = self.held(60, fill)
        print("a session with %d bytes before routing: %.2f KiB (budget %.1f)" % (
            len(junk), per, budget))
        self.assertLess(per, budget)
        self.release()

        # A big command in progress (declared 16 KiB, 15 KiB sent), then
        # audio up to the budget: the command is assembled from what the
        # session holds, not copied twice.
        def command_then_audio(s):
            self.handshake(s)
            body = b"\x02\x00\x04play" + os.urandom(16 * 1024 - 7)
            cmd = rf.chunk_message(3, rf.COMMAND_AMF0, body)
            cut = 12 + 128 + 119 * 129  # 120 whole chunks: 15 KiB of the 16 KiB command
            s.sendall(cmd[:cut] + audio_stream(PREROUTE - 1024 - cut))
        per = self.held(60, command_then_audio)
        print("a session with a 15 KiB command in progress: %.2f KiB (budget %.1f)" % (per, budget))
        self.assertLess(per, budget)


if __name__ == "__main__":
    harness.main()
