"""Publisher takeover (issue 12 item 4), against real nginx-rtmp and ffmpeg.

The OBS case: an encoder's network blips, its old TCP connection stays open
and silent (here: the old ffmpeg frozen with SIGSTOP, so its socket stays
open and sends nothing; the kernel keeps acking), and the encoder republishes
at once. An origin keeps the old publish until its ping timeout (nginx-rtmp:
60 s + 30 s) and answers the republish NetStream.Publish.BadName. (A
SIGKILLed encoder is no such case: the kernel closes its socket, rtmplb
passes the close on, and nginx-rtmp lets the name go at once; checked.)

- test_0: straight to nginx-rtmp, the republish is refused (the problem).
- test_1: through rtmplb with publish_conflict: auto (same address): the
  republish succeeds the first time, on the SAME origin (a weighted route
  would have sent it to the other one), and players through rtmplb decode
  frames after the takeover.
- test_2: publish_conflict: reject: rtmplb refuses the republish with
  BadName and a readable description; the old publish is untouched and
  plays again once it resumes.
- test_3: auto, another address (127.0.0.2): refused; then the same
  address (127.0.0.1) takes over; a raw client sees Publish.Start.
"""

import os
import re
import signal
import subprocess
import time
import unittest
import urllib.request

import harness
import rtmpfake
from harness import Fleet, free_port, nginx_streams, wait_for


def metrics(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
        return r.read().decode()


def metric(text, name, **labels):
    want = ",".join('%s="%s"' % kv for kv in sorted(labels.items()))
    for line in text.splitlines():
        m = re.match(r'^%s(?:\{([^}]*)\})? (\S+)$' % re.escape(name), line)
        if m and ",".join(sorted((m.group(1) or "").split(","))) == want:
            return float(m.group(2))
    return None


TOKEN = "takeover-test-token"


def set_node_state(admin, node, state):
    body = ('{"state": "%s"}' % state).encode()
    req = urllib.request.Request("http://127.0.0.1:%d/api/v1/pools/origins/nodes/%s" % (admin, node),
                                 data=body, method="POST",
                                 headers={"Authorization": "Bearer " + TOKEN,
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as r:
        assert r.status == 200, r.status


def where_published(origins, stream):
    """Names of the origins whose /stat shows stream with a publisher."""
    out = []
    for name, o in origins.items():
        try:
            st = nginx_streams(o.http_port)
        except OSError:
            continue
        if st.get(stream, (False, 0))[0]:
            out.append(name)
    return out


class Takeover(unittest.TestCase):
    def setUp(self):
        self.fleet = Fleet()
        self.frozen = []

    def tearDown(self):
        for p in self.frozen:  # a stopped process ignores SIGTERM until resumed
            if p.poll() is None:
                os.kill(p.pid, signal.SIGCONT)
        self.fleet.stop()

    def origins(self, n=2):
        out = {}
        for i in range(n):
            name = "o%d" % (i + 1)
            # idle_streams on (nginx's default): a player waits through a
            # publisher change instead of being dropped.
            out[name] = self.fleet.nginx_origin(name, free_port(), free_port(), extra_app="")
        return out

    def rtmplb(self, origins, conflict, policy="weighted", stats=False):
        self.port, self.admin = free_port(), free_port()
        st = ', stats: {kind: nginx-rtmp, url: "http://127.0.0.1:%d/stat"}'
        nodes = ", ".join("{name: %s, address: 127.0.0.1:%d%s}"
                          % (n, o.rtmp_port, st % o.http_port if stats else "")
                          for n, o in origins.items())
        health = "health: {type: tcp, interval: 1s, timeout: 500ms}, " if stats else ""
        conflict_line = "    publish_conflict: %s\n" % conflict if conflict else ""
        tok = os.path.join(self.fleet.dir, "token")
        with open(tok, "w") as f:
            f.write(TOKEN + "\n")
        os.chmod(tok, 0o600)
        yaml = ("workers: 2\n"
                "listeners: [{name: rtmp, address: 127.0.0.1:%d}]\n"
                "admin: {address: 127.0.0.1:%d, public_read: true, token_file: %s}\n"
                "timeouts: {takeover: 5s}\n"
                "pools:\n  origins: {%snodes: [%s]}\n"
                "routes:\n"
                "  - name: pub\n"
                "    match: {role: publish}\n"
                "    pool: origins\n"
                "    policy: %s\n%s"
                "  - {name: play, match: {role: play}, pool: origins, policy: stream_location}\n"
                % (self.port, self.admin, tok, health, nodes, policy, conflict_line))
        self.fleet.rtmplb(yaml, wait_ports=[self.port])

    def url(self, stream):
        return "rtmp://127.0.0.1:%d/live/%s" % (self.port, stream)

    def publish_and_wait(self, url, origins, stream, name):
        p = self.fleet.publish(url, name=name)
        wait_for(lambda: where_published(origins, stream), 20, "%s publishing" % stream)
        return p

    def freeze(self, p):
        """The OBS blackhole: the old encoder's TCP stays open and silent."""
        os.kill(p.pid, signal.SIGSTOP)
        self.frozen.append(p)

    def test_0_straight_to_nginx_the_republish_is_refused(self):
        origins = self.origins(1)
        o = origins["o1"]
        url = "rtmp://127.0.0.1:%d/live/cam0" % o.rtmp_port
        old = self.publish_and_wait(url, origins, "cam0", "old")
        self.freeze(old)
        new = self.fleet.publish(url, name="new")
        try:
            new.wait(20)
        except subprocess.TimeoutExpired:
            pass
        # The origin keeps the frozen publish: the republish is refused.
        self.assertIsNotNone(new.poll(), "the republish straight to nginx was not refused")
        self.assertNotEqual(new.returncode, 0)
        # ffmpeg shows the origin's refusal (onStatus BadName "Already publishing").
        self.assertIn("Server error: Already publishing", self.fleet.log_text("new"))

    def test_1_takeover_republish_succeeds_on_the_same_node(self):
        origins = self.origins(2)
        self.rtmplb(origins, "auto")
        url = self.url("cam1")
        # cam1 goes to o1 (o2 takes nothing new); then the operator drains
        # o1: any fresh routing of a publish now goes to o2.
        set_node_state(self.admin, "o2", "disabled")
        old = self.publish_and_wait(url, origins, "cam1", "old")
        self.assertEqual(where_published(origins, "cam1"), ["o1"])
        node = "o1"
        set_node_state(self.admin, "o2", "enabled")
        set_node_state(self.admin, "o1", "draining")
        player = self.fleet.start_play(url, name="before")
        wait_for(lambda: self.fleet.frame_count("before") >= 25, 30, "frames before the blip")

        self.freeze(old)
        t0 = time.monotonic()
        new = self.fleet.publish(url, name="new")
        # The republish succeeds the first time: rtmplb logs the takeover,
        # the new ffmpeg keeps running, and the old session ends.
        wait_for(lambda: " takeover " in self.fleet.log_text("rtmplb") or
                 '"takeover"' in self.fleet.log_text("rtmplb"), 15, "the takeover line")
        took = time.monotonic() - t0
        at_takeover = self.fleet.frame_count("before")
        log = self.fleet.log_text("rtmplb")
        line = [l for l in log.splitlines() if " takeover " in l][0]
        self.assertIn("node=%s" % node, line)
        self.assertIn("old_client=127.0.0.1:", line)
        self.assertIn("wait=delay", line)
        wait_for(lambda: "reason=taken_over" in self.fleet.log_text("rtmplb"), 10,
                 "the old session's end")
        # Not re-hashed: routed afresh, this publish would go to o2 (o1 is
        # draining); it is back on the old node, where its players are.
        wait_for(lambda: where_published(origins, "cam1") == [node], 15,
                 "cam1 published on %s" % node)
        time.sleep(3)
        self.assertIsNone(new.poll(), "the republish ended:\n" + self.fleet.log_text("new"))
        self.assertNotIn("already publishing", self.fleet.log_text("new").lower())
        self.assertEqual(where_published(origins, "cam1"), [node])
        routed = [l for l in self.fleet.log_text("rtmplb").splitlines()
                  if " routed " in l and "role=publish" in l]
        self.assertEqual(len(routed), 2, routed)
        self.assertTrue(all("node=%s" % node in l for l in routed), routed)
        # The control: a fresh stream now goes to o2 indeed.
        other = self.publish_and_wait(self.url("fresh"), origins, "fresh", "fresh")
        self.assertEqual(where_published(origins, "fresh"), ["o2"])
        self.fleet._end(other)

        # Players through rtmplb decode frames after the takeover (the old
        # encoder is frozen: every one of them comes from the new one).
        got = self.fleet.play_frames(url, 50, name="after", timeout=40)
        self.assertGreaterEqual(got, 50)
        # The player that was watching before the blip resumes too (nginx
        # keeps it subscribed; the old encoder is frozen, so its new frames
        # are the new encoder's).
        later = self.fleet.frame_count("before")
        wait_for(lambda: self.fleet.frame_count("before") >= later + 25, 30,
                 "the first player's frames after the takeover")
        self.assertIsNone(player.poll())
        self.fleet._end(player)
        m = metrics(self.admin)
        self.assertEqual(metric(m, "rtmplb_publish_conflicts_total", outcome="takeover"), 1)
        self.assertEqual(metric(m, "rtmplb_publish_conflicts_total", outcome="reject"), 0)
        self.assertEqual(metric(m, "rtmplb_session_ends_total", reason="taken_over"), 1)
        # Only cam1 is published now (fresh ended; its session may linger
        # up to timeouts.half_close).
        wait_for(lambda: metric(metrics(self.admin), "rtmplb_publishes") == 1, 15,
                 "one registered publish")
        print("takeover: republish to takeover line %.2fs; first player frames %d at the "
              "takeover, %d at the end; new player frames %d"
              % (took, at_takeover, self.fleet.frame_count("before"), got))

    def test_2_reject_refuses_the_republish_and_keeps_the_old(self):
        origins = self.origins(1)
        self.rtmplb(origins, "reject")
        url = self.url("cam2")
        old = self.publish_and_wait(url, origins, "cam2", "old")
        self.freeze(old)
        new = self.fleet.publish(url, name="new")
        new.wait(20)
        self.assertNotEqual(new.returncode, 0)
        log = self.fleet.log_text("rtmplb")
        self.assertIn("publish_conflict", log)
        self.assertIn("reason=publish_conflict", log)
        self.assertNotIn("taken_over", log)
        # ffmpeg shows rtmplb's description.
        self.assertIn("already being published", self.fleet.log_text("new"))
        # The old publish is untouched: it resumes, and plays.
        os.kill(old.pid, signal.SIGCONT)
        self.assertEqual(where_published(origins, "cam2"), ["o1"])
        got = self.fleet.play_frames(url, 25, name="play", timeout=40)
        self.assertGreaterEqual(got, 25)
        self.assertIsNone(old.poll())
        m = metrics(self.admin)
        self.assertEqual(metric(m, "rtmplb_publish_conflicts_total", outcome="reject"), 1)
        self.assertEqual(metric(m, "rtmplb_publish_conflicts_total", outcome="takeover"), 0)

    def test_3_auto_takes_over_only_from_the_same_address(self):
        origins = self.origins(1)
        self.rtmplb(origins, None)  # the default: auto
        url = self.url("cam3")
        old = self.publish_and_wait(url, origins, "cam3", "old")
        self.freeze(old)
        # Another address: BadName from rtmplb, the old publish stays.
        c = rtmpfake.RawClient(self.port, source="127.0.0.2", timeout=10)
        try:
            o = c.publish("live", "cam3", pipelined=False)
        finally:
            c.close()
        self.assertEqual(o.kind, "status", o)
        self.assertEqual(o.code, "NetStream.Publish.BadName", o)
        self.assertIn("already being published", o.description)
        self.assertIn("publish_conflict: auto", o.description)
        self.assertNotIn("taken_over", self.fleet.log_text("rtmplb"))
        # The same address (the encoder reconnecting): taken over.
        c = rtmpfake.RawClient(self.port, source="127.0.0.1", timeout=10)
        try:
            o = c.publish("live", "cam3", pipelined=False)
            self.assertEqual(o.kind, "status", o)
            self.assertEqual(o.code, "NetStream.Publish.Start", o)
            wait_for(lambda: "reason=taken_over" in self.fleet.log_text("rtmplb"), 10,
                     "the old session's end")
        finally:
            c.close()
        m = metrics(self.admin)
        self.assertEqual(metric(m, "rtmplb_publish_conflicts_total", outcome="reject"), 1)
        self.assertEqual(metric(m, "rtmplb_publish_conflicts_total", outcome="takeover"), 1)

    def test_4_takeover_waits_for_the_origin_stats(self):
        # With stats, rtmplb waits until the origin's /stat no longer lists
        # the old publish (the next poll after the old leg closed).
        origins = self.origins(1)
        self.rtmplb(origins, "takeover", stats=True)
        url = self.url("cam4")
        old = self.publish_and_wait(url, origins, "cam4", "old")
        # The stream index has the origin's word for it, not only ours.
        time.sleep(2.5)
        self.freeze(old)
        new = self.fleet.publish(url, name="new")
        wait_for(lambda: " takeover " in self.fleet.log_text("rtmplb"), 15, "the takeover line")
        line = [l for l in self.fleet.log_text("rtmplb").splitlines() if " takeover " in l][0]
        self.assertIn("wait=stats ", line)
        waited = int(re.search(r"waited_ms=(\d+)", line).group(1))
        self.assertLess(waited, 5000)  # timeouts.takeover
        got = self.fleet.play_frames(url, 25, name="after", timeout=40)
        self.assertGreaterEqual(got, 25)
        self.assertIsNone(new.poll(), self.fleet.log_text("new"))
        print("takeover with stats: waited %d ms" % waited)


if __name__ == "__main__":
    harness.main()
