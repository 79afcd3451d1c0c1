"""The stream index forgets a node whose stats stop answering: a stream
published straight to origin-a is located there through origin-a's /stat;
when that stats source stops answering (its port closed, the origin itself
still up), after the pool's `fall` failed polls rtmplb clears origin-a's
entries, logs it with key=value fields, and a play routed by stream_location
falls back to stream_affinity (origin-b) instead of a stale location."""

import re
import signal
import socket
import subprocess
import os
import threading
import time
import unittest

import harness
from harness import Fleet, access_lines, free_port, nginx_streams, wait_for

FALL = 2
INTERVAL_MS = 300


class Relay:
    """A TCP relay on a loopback port to another one, in threads; stop()
    closes the listening socket, so new connections are refused."""

    def __init__(self, target_port):
        self.target = target_port
        self.port = free_port()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopped.is_set():
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        try:
            u = socket.create_connection(("127.0.0.1", self.target), timeout=5)
        except OSError:
            c.close()
            return
        for a, b in ((c, u), (u, c)):
            threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a, b):
        try:
            a.settimeout(10)
            while True:
                d = a.recv(65536)
                if not d:
                    break
                b.sendall(d)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            a.close()

    def stop(self):
        self.stopped.set()
        self.sock.close()
        self.thread.join(2)


class StatsIndex(unittest.TestCase):
    def setUp(self):
        f = self.fleet = Fleet()
        self.addCleanup(f.stop)
        self.ports = {n: (free_port(), free_port()) for n in ("origin-a", "origin-b")}
        for n, p in self.ports.items():
            f.nginx_origin(n, *p)
        self.relay = Relay(self.ports["origin-a"][1])
        self.addCleanup(self.relay.stop)
        self.front = free_port()
        # origin-b outweighs origin-a, so stream_affinity (stream_location's
        # fallback) sends the test stream to origin-b; the test checks that
        # first rather than trusting the hash.
        self.lb = f.rtmplb("""
workers: 1
log: {level: info}
listeners: [{name: rtmp, address: 127.0.0.1:%d}]
pools:
  origins:
    health: {type: tcp, interval: %dms, timeout: 200ms, rise: 1, fall: %d}
    nodes:
      - {name: origin-a, address: 127.0.0.1:%d, weight: 1, stats: {kind: nginx-rtmp, url: "http://127.0.0.1:%d/stat"}}
      - {name: origin-b, address: 127.0.0.1:%d, weight: 1000, stats: {kind: nginx-rtmp, url: "http://127.0.0.1:%d/stat"}}
routes:
  - {name: play, match: {role: play}, pool: origins, policy: stream_location}
""" % (self.front, INTERVAL_MS, FALL, self.ports["origin-a"][0], self.relay.port,
       self.ports["origin-b"][0], self.ports["origin-b"][1]), wait_ports=[self.front])
        self.probe = os.path.join(os.path.dirname(harness.ARGS.rtmplb), "rtmp_probe")
        self.seen = set()

    def play_node(self, stream):
        """One rtmp_probe play through rtmplb; the node its session went to
        (from the access-log line written when it closes)."""
        subprocess.run([self.probe, "127.0.0.1", str(self.front), "live", stream],
                       capture_output=True, text=True, timeout=30)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            for i, x in enumerate(access_lines(self.fleet.log_text("rtmplb"))):
                if x.get("stream") == stream and i not in self.seen:
                    self.seen.add(i)
                    return x.get("node")
            time.sleep(0.05)
        self.fail("no access-log line for a play of " + stream)

    def test_stale_stats_leave_the_index(self):
        # Nothing published yet: the fallback is origin-b.
        self.assertEqual(self.play_node("cam"), "origin-b")

        # Published straight to origin-a: only origin-a's stats say so.
        pub = self.fleet.publish("rtmp://127.0.0.1:%d/live/cam" % self.ports["origin-a"][0],
                                 name="direct-pub")
        wait_for(lambda: nginx_streams(self.ports["origin-a"][1]).get("cam", (False,))[0], 30,
                 "cam live on origin-a", 0.2)
        wait_for(lambda: self.play_node("cam") == "origin-a", 30,
                 "a play located on origin-a by its stats", 0.2)

        # origin-a's stats stop answering; origin-a itself (and cam) stay up.
        self.relay.stop()
        log_at = len(self.fleet.log_text("rtmplb"))

        def cleared():
            return re.search(r"stats_cleared pool=origins node=origin-a streams=1 failed_polls=%d"
                             % FALL, self.fleet.log_text("rtmplb")[log_at:])
        wait_for(cleared, 30, "origin-a's stream index entries cleared")
        text = self.fleet.log_text("rtmplb")[log_at:]
        self.assertRegex(text, r"warn  stats_failed pool=origins node=origin-a "
                               r"url=http://127\.0\.0\.1:%d/stat error=(\"[^\"]+\"|\S+) "
                               r"failed_polls=1\n"
                         % self.relay.port)
        self.assertTrue(nginx_streams(self.ports["origin-a"][1]).get("cam", (False,))[0],
                        "cam must still be live on origin-a: only its stats went away")
        # No stale location: the play falls back to affinity (origin-b).
        self.assertEqual(self.play_node("cam"), "origin-b")
        self.assertTrue(pub.poll() is None, "the direct publish must still run")
        self.fleet.stop_proc(pub)

    def test_a_reload_that_drops_the_stats_drops_their_streams(self):
        pub = self.fleet.publish("rtmp://127.0.0.1:%d/live/cam" % self.ports["origin-a"][0],
                                 name="direct-pub")
        wait_for(lambda: nginx_streams(self.ports["origin-a"][1]).get("cam", (False,))[0], 30,
                 "cam live on origin-a", 0.2)
        wait_for(lambda: self.play_node("cam") == "origin-a", 30,
                 "a play located on origin-a by its stats", 0.2)
        # The new config keeps origin-a but no longer polls its stats: what
        # they said must go (nothing would ever refresh it). A node the
        # reload removes outright is no candidate anyway.
        path = self.lb.conf_path
        with open(path) as f:
            text = f.read()
        text = re.sub(r"(name: origin-a, [^\n]*weight: 1), stats: \{[^}]*\}", r"\1", text)
        self.assertNotIn("127.0.0.1:%d/stat" % self.relay.port, text)
        with open(path, "w") as f:
            f.write(text)
        log_at = len(self.fleet.log_text("rtmplb"))
        self.lb.send_signal(signal.SIGHUP)
        wait_for(lambda: re.search(r" reloaded ", self.fleet.log_text("rtmplb")[log_at:]), 20,
                 "the reload")
        self.assertNotIn("reload_failed", self.fleet.log_text("rtmplb")[log_at:])
        self.assertEqual(self.play_node("cam"), "origin-b")
        self.fleet.stop_proc(pub)


if __name__ == "__main__":
    harness.main()
