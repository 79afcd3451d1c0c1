"""Health checks, failover and the stream index, black box, with real
nginx-rtmp origins: SIGKILL an origin (master and workers) and time how long
rtmplb takes to mark it down; restart it and time its return; close every
primary and see the backup serve; publish straight to an origin and see a
play through rtmplb (stream_location) find it there."""

import os
import re
import signal
import subprocess
import time
import unittest

import harness
from harness import Fleet, access_lines, free_port, nginx_streams, wait_for

INTERVAL, TIMEOUT, JITTER, RISE, FALL = 500, 300, 50, 2, 2


class Health(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        f = cls.fleet = Fleet()
        cls.addClassCleanup(f.stop)
        cls.ports = {n: (free_port(), free_port()) for n in ("origin-a", "origin-b", "spare")}
        cls.o = {n: f.nginx_origin(n, *p) for n, p in cls.ports.items()}
        cls.front = free_port()
        cls.locport = free_port()
        node = lambda n, extra="": "{name: %s, address: 127.0.0.1:%d, stats: {kind: nginx-rtmp, url: \"http://127.0.0.1:%d/stat\"}%s}" % (
            n, cls.ports[n][0], cls.ports[n][1], extra)
        cls.lb = f.rtmplb("""
workers: 2
log: {level: info}
listeners: [{name: rtmp, address: 127.0.0.1:%d}, {name: loc, address: 127.0.0.1:%d}]
pools:
  origins:
    health: {type: rtmp, app: live, interval: %dms, timeout: %dms, jitter: %dms, rise: %d, fall: %d}
    nodes:
      - %s
      - %s
      - %s
  http-checked:
    health: {type: http, url: /stat, interval: %dms, timeout: %dms, rise: %d, fall: %d}
    nodes: [%s]
routes:
  - {name: located, match: {listener: loc}, pool: origins, policy: stream_location}
  - {name: live, match: {app: live}, pool: origins, policy: stream_affinity}
  - {name: http, match: {app: httpchk}, pool: http-checked}
""" % (cls.front, cls.locport, INTERVAL, TIMEOUT, JITTER, RISE, FALL, node("origin-a"), node("origin-b"),
       node("spare", ", backup: true"), INTERVAL, TIMEOUT, RISE, FALL, node("origin-b")),
            wait_ports=[cls.front])
        cls.probe = os.path.join(os.path.dirname(harness.ARGS.rtmplb), "rtmp_probe")

    def publish(self, stream, app="live", hold=1500):
        r = subprocess.run([self.probe, "--publish", "--hold", str(hold), "127.0.0.1",
                            str(self.front), app, stream], capture_output=True, text=True,
                           timeout=30)
        return r.stdout.strip()

    def node_of(self, stream, seen=set()):
        """The access-log line of the newest session of stream not yet
        returned (written when rtmplb closes it: wait a little for it)."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            for i, x in reversed(list(enumerate(access_lines(self.fleet.log_text("rtmplb"))))):
                if x.get("stream") == stream and i not in seen:
                    seen.add(i)
                    return x
            time.sleep(0.05)
        self.fail("no access-log line for " + stream)

    def wait_log(self, pattern, start_len, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.fleet.log_text("rtmplb")[start_len:]
            if re.search(pattern, text):
                return time.monotonic()
            time.sleep(0.02)
        self.fail("no %r in the log within %ss" % (pattern, timeout))

    def restart(self, name):
        rp, hp = self.ports[name]
        self.o[name] = self.fleet.nginx_origin(name, rp, hp)

    def test_1_kill_detect_route_around_restart(self):
        # Streams that stream_affinity puts on origin-a (see policy_affinity
        # tests for the hash): s1, cam2.
        self.assertTrue(self.publish("s1").startswith("ok "))
        self.assertEqual(self.node_of("s1")["node"], "origin-a")

        mark = len(self.fleet.log_text("rtmplb"))
        # The node is dead once its last worker is: time from there (the ps
        # call that finds the workers comes before, outside the window).
        self.fleet.kill_nginx(self.o["origin-a"])  # SIGKILL master and workers
        t0 = time.monotonic()
        t1 = self.wait_log(r"node_down pool=origins node=origin-a check=L4_REFUSED", mark, 15)
        detect = t1 - t0
        bound = FALL * (INTERVAL + JITTER) + TIMEOUT
        print("origin-a SIGKILLed: marked down after %.0f ms (bound interval*fall+timeout "
              "with jitter: %d ms)" % (detect * 1000, bound))
        # Generous on a busy machine, yet far below what a checker that
        # ignored interval/fall (or only noticed at the next session) shows.
        self.assertLess(detect * 1000, bound + 2000)

        # New publishes go only to live origins, with no failed dial first.
        for s in ("s1", "cam2", "s2", "s4"):
            self.assertTrue(self.publish(s, hold=300).startswith("ok "), s)
            x = self.node_of(s)
            self.assertIn(x["node"], ("origin-b",), x)
            self.assertEqual(x["dials"], "1")

        mark = len(self.fleet.log_text("rtmplb"))
        self.restart("origin-a")  # returns once it listens: the window starts there
        t0 = time.monotonic()
        t1 = self.wait_log(r"node_up pool=origins node=origin-a", mark, 15)
        print("origin-a restarted: marked up after %.0f ms (rise %d x interval %d ms)"
              % ((t1 - t0) * 1000, RISE, INTERVAL))
        self.assertLess((t1 - t0) * 1000, (RISE + 1) * (INTERVAL + JITTER) + TIMEOUT + 2000)
        self.assertTrue(self.publish("s1", hold=300).startswith("ok "))
        self.assertEqual(self.node_of("s1")["node"], "origin-a")  # it takes sessions again

    def test_2_backup_serves_when_every_primary_is_down(self):
        mark = len(self.fleet.log_text("rtmplb"))
        self.fleet.kill_nginx(self.o["origin-a"])
        self.fleet.kill_nginx(self.o["origin-b"])
        self.wait_log(r"node_down pool=origins node=origin-a", mark, 10)
        self.wait_log(r"node_down pool=origins node=origin-b", mark, 10)
        self.assertTrue(self.publish("b1", hold=300).startswith("ok "))
        self.assertEqual(self.node_of("b1")["node"], "spare")
        # The HTTP probe saw origin-b go too.
        self.wait_log(r"node_down pool=http-checked node=origin-b check=L4_REFUSED", mark, 10)
        mark = len(self.fleet.log_text("rtmplb"))
        self.restart("origin-a")
        self.restart("origin-b")
        self.wait_log(r"node_up pool=origins node=origin-a", mark, 10)
        self.wait_log(r"node_up pool=origins node=origin-b", mark, 10)
        self.wait_log(r"node_up pool=http-checked node=origin-b", mark, 10)
        self.assertTrue(self.publish("b2", hold=300).startswith("ok "))
        self.assertNotEqual(self.node_of("b2")["node"], "spare")  # backup released

    def test_3_stream_location_finds_a_stream_published_elsewhere(self):
        # cam2 hashes to origin-a; publish it straight to origin-b, bypassing
        # rtmplb. Only origin-b's stats can tell rtmplb where it is.
        rp = self.ports["origin-b"][0]
        pub = self.fleet.publish("rtmp://127.0.0.1:%d/live/cam2" % rp, name="direct-pub")
        wait_for(lambda: nginx_streams(self.ports["origin-b"][1]).get("cam2", (False,))[0], 20,
                 "cam2 live on origin-b", 0.2)

        # rtmplb learns where cam2 is from origin-b's stats, at its next poll:
        # wait for a play through the stream_location listener to find it.
        def found():
            r = subprocess.run([self.probe, "127.0.0.1", str(self.locport), "live", "cam2"],
                               capture_output=True, text=True, timeout=20)
            return r.stdout.startswith("ok ")
        wait_for(found, 20, "a located play of cam2", 0.2)
        n = self.fleet.play_frames("rtmp://127.0.0.1:%d/live/cam2" % self.locport, 40,
                                   name="located-play")
        print("stream_location play of live/cam2: %d frames" % n)
        self.assertGreaterEqual(n, 40)
        plays = [x for x in access_lines(self.fleet.log_text("rtmplb"))
                 if x.get("route") == "located" and x.get("role") == "play"]
        self.assertEqual(plays[-1]["node"], "origin-b")
        # Without the index the same play would go to origin-a (affinity).
        r = subprocess.run([self.probe, "127.0.0.1", str(self.front), "live", "cam2"],
                           capture_output=True, text=True, timeout=20)
        self.assertEqual(r.stdout.strip(), "error server said StreamNotFound")
        self.fleet.stop_proc(pub)

    def test_4_passive_failures_mark_a_node_down(self):
        # A pool whose probes are slow (60 s): only failed dials can see the
        # node die in time.
        f = Fleet()
        try:
            good_o = f.nginx_origin("good", free_port(), free_port())
            dead, good = free_port(), good_o.rtmp_port
            front = free_port()
            f.rtmplb("""
listeners: [{name: r, address: 127.0.0.1:%d}]
pools:
  p:
    health: {type: tcp, interval: 60s, timeout: 1s, rise: 1, fall: 3}
    nodes:
      - {name: dead, address: 127.0.0.1:%d, weight: 100}
      - {name: good, address: 127.0.0.1:%d}
routes: [{name: r, pool: p}]
""" % (front, dead, good), wait_ports=[front])
            for i in range(6):
                r = subprocess.run([self.probe, "--publish", "--hold", "100", "127.0.0.1",
                                    str(front), "live", "p%d" % i], capture_output=True,
                                   text=True, timeout=30)
                self.assertTrue(r.stdout.startswith("ok "), r.stdout)
            wait_for(lambda: len(access_lines(f.log_text("rtmplb"))) >= 6, 10,
                     "6 access-log lines")
            log = f.log_text("rtmplb")
            self.assertRegex(log, r"node_down pool=p node=dead check=PASSIVE "
                                  r"reason=\"3 sessions in a row failed to reach it\"")
            dials = [int(x["dials"]) for x in access_lines(log)]
            print("dials per session while 'dead' is found out:", dials)
            self.assertEqual(dials[:3], [2, 2, 2])  # tried dead first, then good
            self.assertEqual(dials[3:], [1, 1, 1])  # dead is down: skipped
        finally:
            f.stop()


if __name__ == "__main__":
    harness.main()
