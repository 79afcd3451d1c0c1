"""Logs never block a worker, black box: rtmplb's stderr (main log and
access log) is a pipe nobody reads. 1000 sessions later an established
session still moves bytes and new sessions are still accepted; once the
pipe is read again, rtmplb says how many lines it dropped, and
/metrics counts them."""

import concurrent.futures
import fcntl
import os
import socket
import subprocess
import time
import unittest
import urllib.request

import harness
from harness import Fleet, TcpBackend, free_port, recv_exact

TOKEN = "nonblocking-logs-token-0123456789"
SESSIONS = 1000


class NonBlockingLogs(unittest.TestCase):
    def setUp(self):
        self.fleet = Fleet()
        self.addCleanup(self.fleet.stop)

    def read_some(self, fd, want, timeout):
        """Reads the pipe until `want` is in what was read, or timeout."""
        got = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and want not in got:
            try:
                d = os.read(fd, 1 << 16)
            except BlockingIOError:
                time.sleep(0.02)
                continue
            if not d:
                break
            got += d
        return got

    def one_session(self, payload):
        s = socket.create_connection(("127.0.0.1", self.front), timeout=5)
        try:
            s.sendall(payload)
            return recv_exact(s, len(payload))
        finally:
            s.close()

    def test_stderr_pipe_nobody_reads(self):
        f = self.fleet
        echo = TcpBackend("echo", mode="echo")
        f.threads.append(echo)
        self.front, admin = free_port(), free_port()
        tok = os.path.join(f.dir, "token")
        with open(tok, "w") as t:
            t.write(TOKEN + "\n")
        os.chmod(tok, 0o600)
        conf = os.path.join(f.dir, "rtmplb.yaml")
        with open(conf, "w") as c:
            c.write("""workers: 2
log: {level: info, access_log: stderr}
admin: {address: 127.0.0.1:%d, token_file: %s}
listeners: [{name: front, address: 127.0.0.1:%d, mode: tcp}]
pools:
  p:
    nodes: [{name: echo, address: 127.0.0.1:%d}]
routes: [{name: all, pool: p}]
""" % (admin, tok, self.front, echo.port))
        p = subprocess.Popen([harness.ARGS.rtmplb, "-c", conf], stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        f.procs.append(("rtmplb-pipe", p))
        fd = p.stderr.fileno()
        os.set_blocking(fd, False)
        # The smallest pipe the kernel allows (one page): the sink is full
        # after a few lines, not after 64 KiB.
        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), 4096)
        started = self.read_some(fd, b" started ", 20)
        self.assertIn(b" started ", started, started.decode(errors="replace"))

        # An established session, then nobody reads stderr any more.
        held = socket.create_connection(("127.0.0.1", self.front), timeout=5)
        self.addCleanup(held.close)
        held.sendall(b"before")
        self.assertEqual(recv_exact(held, 6), b"before")

        t0 = time.monotonic()
        deadline = t0 + 90
        failures = []

        def worker(k):
            done = 0
            for i in range(k, SESSIONS, 16):
                if failures or time.monotonic() > deadline:
                    return done
                try:
                    msg = b"session %d" % i
                    if self.one_session(msg) != msg:
                        failures.append("session %d: wrong echo" % i)
                    done += 1
                except OSError as e:
                    failures.append("session %d: %s" % (i, e))
            return done
        with concurrent.futures.ThreadPoolExecutor(16) as ex:
            done = sum(ex.map(worker, range(16)))
        took = time.monotonic() - t0
        print("%d sessions with stderr unread in %.2f s" % (done, took))
        self.assertEqual(failures, [])
        self.assertEqual(done, SESSIONS)

        # The old session still moves bytes; a new one is accepted.
        held.sendall(b"after")
        self.assertEqual(recv_exact(held, 5), b"after")
        self.assertEqual(self.one_session(b"one more"), b"one more")

        # Read again: rtmplb says how many lines it dropped.
        text = self.read_some(fd, b"log lines dropped", 15).decode(errors="replace")
        self.assertIn("log lines dropped", text)
        dropped = [int(l.split("dropped=")[1].split()[0]) for l in text.splitlines()
                   if " log_dropped " in l]
        print("dropped lines reported:", dropped, "sum", sum(dropped))
        self.assertTrue(dropped and all(n > 0 for n in dropped))
        req = urllib.request.Request("http://127.0.0.1:%d/metrics" % admin,
                                     headers={"Authorization": "Bearer " + TOKEN})
        with urllib.request.urlopen(req, timeout=5) as r:
            metrics = r.read().decode()
        line = [l for l in metrics.splitlines()
                if l.startswith("rtmplb_log_lines_dropped_total ")]
        self.assertEqual(len(line), 1, metrics[-2000:])
        self.assertGreaterEqual(int(float(line[0].split()[1])), sum(dropped))

        # Stops promptly even so (the writer flushes in bounded time).
        held.close()
        drain = []
        t1 = time.monotonic()
        p.terminate()
        while p.poll() is None and time.monotonic() - t1 < 15:
            drain.append(self.read_some(fd, b"\0", 0.2))
        self.assertIsNotNone(p.poll())
        print("stopped %.2f s after SIGTERM" % (time.monotonic() - t1))


if __name__ == "__main__":
    harness.main()
