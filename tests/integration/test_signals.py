"""Signals an operator sends: SIGUSR1 (what logrotate sends) reopens the
access log and nothing else: rtmplb keeps running, a live session keeps
moving bytes, and after the file is renamed the next lines go to a new file
at the configured path. (SIGUSR2, the binary upgrade: test_upgrade.py.)"""

import os
import re
import signal
import socket
import time
import unittest

from harness import Fleet, TcpBackend, free_port, wait_for
import harness


def recv_n(s, n):
    out = b""
    deadline = time.monotonic() + 10
    while len(out) < n and time.monotonic() < deadline:
        d = s.recv(n - len(out))
        if not d:
            break
        out += d
    return out


def session_lines(path):
    try:
        with open(path) as f:
            return [l for l in f if " session " in l]
    except FileNotFoundError:
        return []


class Signals(unittest.TestCase):
    def setUp(self):
        f = self.fleet = Fleet()
        self.addCleanup(f.stop)
        self.backend = TcpBackend("echo", mode="echo")
        f.threads.append(self.backend)
        self.port = free_port()
        self.access = os.path.join(f.dir, "access.log")
        self.lb = f.rtmplb("""
workers: 1
log: {access_log: %s}
listeners: [{name: tcp, address: 127.0.0.1:%d, mode: tcp}]
pools:
  backends:
    nodes: [{name: echo, address: 127.0.0.1:%d}]
routes: [{name: all, pool: backends}]
""" % (self.access, self.port, self.backend.port), wait_ports=[self.port])

    def echo(self, s, data):
        s.sendall(data)
        self.assertEqual(recv_n(s, len(data)), data)

    def test_usr1_reopens_the_access_log_and_keeps_sessions(self):
        live = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        self.addCleanup(live.close)
        self.echo(live, b"before rotation\n")
        short = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        self.echo(short, b"short\n")
        short.close()
        wait_for(lambda: len(session_lines(self.access)) == 1, 20, "the first session line")

        # logrotate: rename, then SIGUSR1.
        os.rename(self.access, self.access + ".1")
        log_at = len(self.fleet.log_text("rtmplb"))
        self.lb.send_signal(signal.SIGUSR1)
        wait_for(lambda: "logs_reopened" in self.fleet.log_text("rtmplb")[log_at:], 20,
                 "the logs_reopened line")
        self.assertIsNone(self.lb.poll(), "SIGUSR1 must not stop rtmplb")
        self.assertTrue(os.path.exists(self.access), "a new file at the configured path")

        # The live session still moves bytes both ways, and its line (when
        # it ends) goes to the new file, not the renamed one.
        self.echo(live, b"after rotation\n")
        live.shutdown(socket.SHUT_WR)
        self.assertEqual(recv_n(live, 3), b"EOF")
        live.close()
        wait_for(lambda: len(session_lines(self.access)) == 1, 20, "a line in the new file")
        self.assertEqual(len(session_lines(self.access + ".1")), 1)
        self.assertRegex(session_lines(self.access)[0], r"bytes_in=%d " % (
            len(b"before rotation\n") + len(b"after rotation\n")))
        self.assertIsNone(self.lb.poll())
        self.assertEqual(self.fleet.stop_proc(self.lb), 0)


class ReloadAccessLog(unittest.TestCase):
    """Switching the access log between a file, off and stderr by reload
    must not leak descriptors (it leaked one per switch: +10 after 20)."""

    def test_switching_the_access_log_does_not_leak_descriptors(self):
        f = Fleet()
        self.addCleanup(f.stop)
        port = free_port()
        access = os.path.join(f.dir, "access.log")
        text = """
workers: 1
log: {access_log: %s}
listeners: [{name: tcp, address: 127.0.0.1:%d, mode: tcp}]
pools: {p: {nodes: [{name: n, address: 127.0.0.1:1}]}}
routes: [{name: all, pool: p}]
"""
        lb = f.rtmplb(text % (access, port), wait_ports=[port])
        fds = lambda: len(os.listdir("/proc/%d/fd" % lb.pid))
        before = fds()
        for i, target in enumerate(["off", access, "stderr", access] * 5):
            with open(lb.conf_path, "w") as c:
                c.write(text % (target, port))
            lb.send_signal(signal.SIGHUP)
            wait_for(lambda: len(re.findall(r"reloaded", f.log_text("rtmplb"))) > i, 10,
                     "reload %d" % (i + 1))
        after = fds()
        print("descriptors before %d, after 20 reloads switching the access log: %d"
              % (before, after))
        self.assertLessEqual(after, before + 1)
        self.assertIsNone(lb.poll())


if __name__ == "__main__":
    harness.main()
