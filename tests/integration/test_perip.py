"""Per-address limits (limits.max_handshakes_per_ip, max_sessions_per_ip),
black box with a real nginx-rtmp origin and real ffmpeg clients: one address
holding thousands of idle connections cannot take the session slots of
another; the PROXY header's address is the one that counts; refusals are
counted in /metrics and logged at most once a second, not once per
connection."""

import os
import re
import resource
import socket
import time
import unittest
import urllib.request

import harness
from harness import Fleet, free_port, nginx_streams, wait_for

ATTACKER = "127.0.0.2"  # loopback: any 127.0.0.0/8 source works


def metric(admin_port, name, labels):
    return harness.metric(admin_port, name + "{" + labels + "}")


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Stalled:
    """Up to `want` connections from ATTACKER that send nothing; those rtmplb
    closes are opened again, at most `rate` per second (a flood that
    reconnects as it is refused). Bounded by the caller's run()."""

    def __init__(self, port, want, rate, header=b""):
        self.port, self.want, self.rate, self.header = port, want, rate, header
        self.socks = []
        self.sent = set()  # fds whose header went
        self.opened = 0

    def _open(self):
        s = socket.socket()
        s.setblocking(False)
        s.bind((ATTACKER, 0))
        try:
            s.connect(("127.0.0.1", self.port))
        except BlockingIOError:
            pass
        self.socks.append(s)
        self.opened += 1

    def reap(self):
        """Drops the connections rtmplb has closed; returns how many."""
        alive, gone = [], 0
        for s in self.socks:
            try:
                if s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b"":
                    self.sent.discard(s.fileno())
                    s.close()
                    gone += 1
                    continue
            except BlockingIOError:
                pass
            except OSError:
                self.sent.discard(s.fileno())
                s.close()
                gone += 1
                continue
            alive.append(s)
        self.socks = alive
        return gone

    def send_headers(self):
        for s in self.socks:
            if s.fileno() not in self.sent:
                try:
                    s.send(self.header)
                    self.sent.add(s.fileno())
                except OSError:
                    pass

    def run(self, seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            t0 = time.monotonic()
            self.reap()
            for _ in range(min(self.want - len(self.socks), self.rate // 10)):
                self._open()
            if self.header:
                time.sleep(0.02)
                self.send_headers()
            time.sleep(max(0.0, 0.1 - (time.monotonic() - t0)))

    def close(self):
        for s in self.socks:
            s.close()
        self.socks = []


class PerIpLimits(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 12000), hard))
        f = cls.fleet = Fleet()
        cls.addClassCleanup(f.stop)
        cls.origin = f.nginx_origin("o", free_port(), free_port())
        cls.port, cls.pp_port, cls.admin = free_port(), free_port(), free_port()
        cls.lb = f.rtmplb("""
workers: 2
timeouts: {handshake: 10s}
limits: {max_handshakes_per_ip: 20, max_sessions_per_ip: 100}
admin: {address: 127.0.0.1:%d, public_read: true}
listeners:
  - {name: front, address: 127.0.0.1:%d}
  - {name: pp, address: 127.0.0.1:%d, proxy_protocol: v1}
pools:
  origins: {nodes: [{name: o, address: 127.0.0.1:%d}]}
routes:
  - {name: all, pool: origins}
""" % (cls.admin, cls.port, cls.pp_port, cls.origin.rtmp_port), wait_ports=[cls.port])
        cls.pub = f.publish("rtmp://127.0.0.1:%d/live/room" % cls.port)
        wait_for(lambda: "room" in nginx_streams(cls.origin.http_port), 30, "publish on origin")

    def play_rate(self, name):
        """Frames a player from 127.0.0.1 decodes between its 2nd and its
        10th second: the live rate, without the start-up burst."""
        f = self.fleet
        p = f.start_play("rtmp://127.0.0.1:%d/live/room" % self.port, name)
        try:
            wait_for(lambda: f.frame_count(name) > 0, 30, name + " first frame")
            time.sleep(2)
            a = f.frame_count(name)
            time.sleep(8)
            b = f.frame_count(name)
        finally:
            f._end(p)
        return b - a

    def test_a_flood_from_one_address_leaves_others_alone(self):
        quiet = self.play_rate("quiet")
        self.assertGreater(quiet, 100, "a quiet play decodes the live rate (25 fps)")

        flood = Stalled(self.port, want=5000, rate=1000)
        refused0 = metric(self.admin, "rtmplb_sessions_refused_total", 'reason="per_ip_handshakes"')
        cpu0, t0 = cpu_seconds(self.lb.pid), time.monotonic()
        try:
            flood.run(6)  # the flood is up: 20 held, the rest refused and reopened
            f = self.fleet
            p = f.start_play("rtmp://127.0.0.1:%d/live/room" % self.port, "flooded")
            try:
                wait_for(lambda: f.frame_count("flooded") > 0, 30, "first frame under the flood")
                flood.run(2)
                a = f.frame_count("flooded")
                flood.run(8)
                b = f.frame_count("flooded")
            finally:
                f._end(p)
            cpu = (cpu_seconds(self.lb.pid) - cpu0) / (time.monotonic() - t0)
            held = len(flood.socks)
        finally:
            flood.close()
        under = b - a
        refused = metric(self.admin, "rtmplb_sessions_refused_total",
                         'reason="per_ip_handshakes"') - refused0
        print("quiet %d frames, flooded %d frames; %d connections opened by the flood, %d "
              "refused, %d held at the end; rtmplb CPU %.1f%% of a core"
              % (quiet, under, flood.opened, refused, held, 100 * cpu))
        self.assertGreaterEqual(flood.opened, 5000, "the flood reached its size")
        self.assertGreaterEqual(refused, flood.opened - 20 - held - 50,
                                "every connection beyond the limit was refused")
        self.assertGreaterEqual(under, 0.95 * quiet, "the other address's play kept its rate")
        # The 5% target is measured in the note; this bound only catches a spin.
        self.assertLess(cpu, 0.5, "refusing costs little")
        # Logged at most once a second, with the count of the others.
        log = self.fleet.log_text("rtmplb")
        lines = re.findall(r"per_ip_limit.*", log)
        self.assertTrue(lines, "refusals are logged")
        self.assertLess(len(lines), 40, "refusals are rate-limited in the log")
        self.assertIn("max_handshakes_per_ip=20", lines[0])
        self.assertNotIn("reason=per_ip_handshakes", log, "no access-log line per refusal")
        wait_for(lambda: self._addresses() <= 2, 30,
                 "the flood's address entry goes with its sessions")

    def _addresses(self):
        text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.admin,
                                      timeout=10).read().decode()
        m = re.search(r"^rtmplb_client_addresses (\d+)", text, re.M)
        return int(m.group(1))

    def test_sessions_per_address(self):
        # Its own rtmplb with max_sessions_per_ip: 3 (the shared one's flood
        # test needs room for 20 handshakes): 127.0.0.1 has a publisher and
        # two players, a fourth session is refused, and once one ends the
        # address plays again.
        f = self.fleet
        port, admin = free_port(), free_port()
        f.rtmplb("""
limits: {max_sessions_per_ip: 3}
admin: {address: 127.0.0.1:%d, public_read: true}
listeners: [{name: front, address: 127.0.0.1:%d}]
pools: {origins: {nodes: [{name: o, address: 127.0.0.1:%d}]}}
routes: [{name: all, pool: origins}]
""" % (admin, port, self.origin.rtmp_port), name="rtmplb-s", wait_ports=[port])
        url = "rtmp://127.0.0.1:%d/live/s" % port
        pub = f.publish(url, name="pub-s")
        wait_for(lambda: "s" in nginx_streams(self.origin.http_port), 30, "publish s")
        p1 = f.start_play(url, "s1")
        p2 = f.start_play(url, "s2")
        try:
            wait_for(lambda: f.frame_count("s1") > 0 and f.frame_count("s2") > 0, 30,
                     "two plays from one address")
            third = f.play_frames(url, 10, name="s3", timeout=15)
            self.assertEqual(third, 0, "a fourth session of the address is refused")
            self.assertGreater(metric(admin, "rtmplb_sessions_refused_total",
                                      'reason="per_ip_sessions"'), 0)
        finally:
            f._end(p1)
            f._end(p2)
        # Once the address has room again, it plays.
        self.assertGreater(f.play_frames(url, 10, name="s4", timeout=30), 0)
        f._end(pub)
        self.assertIn("max_sessions_per_ip=3 reached", f.log_text("rtmplb-s"))

    def test_proxy_header_address_counts(self):
        # 40 stalled sessions claiming 198.51.100.9 through the PROXY listener
        # (each sends its header, then nothing): 20 are held, 20 refused.
        flood = Stalled(self.pp_port, want=40, rate=400,
                        header=b"PROXY TCP4 198.51.100.9 127.0.0.1 40000 1935\r\n")
        try:
            flood.run(3)
            time.sleep(1)
            flood.reap()
            self.assertLessEqual(len(flood.socks), 30, "the claimed address is limited")
            # Same TCP source, another claimed address: served.
            p = self.fleet.probe(["--proxy-v1", "203.0.113.5", "127.0.0.1", str(self.pp_port),
                                  "live", "room"], name="probe-other")
            rc, out = self.fleet.probe_result(p)
            self.assertEqual(rc, 0, out)
            self.assertTrue(out.startswith("ok"), out)
            # The limited claimed address: refused.
            p = self.fleet.probe(["--proxy-v1", "198.51.100.9", "127.0.0.1", str(self.pp_port),
                                  "live", "room"], name="probe-limited")
            rc, out = self.fleet.probe_result(p)
            self.assertNotEqual(rc, 0, out)
        finally:
            flood.close()
        log = self.fleet.log_text("rtmplb")
        self.assertIn("refused 198.51.100.9", log)


if __name__ == "__main__":
    harness.main()
