"""Early dial (listeners[].early_dial), black box with a real nginx-rtmp
origin: when a listener's route cannot depend on what the client says
next, rtmplb dials the node as soon as the client's C0C1 arrives, so the
node's TCP and RTMP handshakes overlap the client's; the play then goes
out on that connection. The origin's own counter of accepted connections
(/stat naccepted) shows when it was dialled. Also: a client that leaves
after its handshake costs the origin one connection that rtmplb closes;
an early dial to a dead node is tried on the next candidate, and with none
left the play is routed afresh (and told the truth); early_dial: false
(the default) dials on the play as before; every outcome is counted in
/metrics."""

import json
import os
import re
import socket
import time
import unittest
import urllib.request
import xml.etree.ElementTree as ET

import harness
from harness import free_port, wait_for
import rtmpfake as rf


def naccepted(http_port):
    with urllib.request.urlopen("http://127.0.0.1:%d/stat" % http_port, timeout=5) as r:
        root = ET.fromstring(r.read())
    return int(root.findtext("naccepted"))


def early(admin_port, listener, outcome):
    return int(harness.metric(admin_port, 'rtmplb_early_dials_total{listener="%s",outcome="%s"}'
                              % (listener, outcome)))


def connections_to(port):
    """Established TCP connections to 127.0.0.1:port, counted at the
    connecting end (/proc/net/tcp: remote address, state 01)."""
    want = "0100007F:%04X" % port
    with open("/proc/net/tcp") as f:
        rows = [l.split() for l in f.readlines()[1:]]
    return sum(1 for r in rows if r[2] == want and r[3] == "01")


def dead_port():
    """A loopback port nothing listens on (bound, never listening)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    return s, port


def publish_cam(cls):
    """ffmpeg publishes live/cam straight to the class's origin."""
    cls.fleet.publish("rtmp://127.0.0.1:%d/live/cam" % cls.rtmp, name="pub")
    wait_for(lambda: harness.nginx_streams(cls.http).get("cam", (False,))[0], 20,
             "the publish on the origin")


class EarlyDial(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.fleet = harness.Fleet()
        try:
            cls.rtmp, cls.http = free_port(), free_port()
            cls.origin = cls.fleet.nginx_origin("o", cls.rtmp, cls.http)
            cls.hold, cls.dead = dead_port()
            cls.port, cls.off, cls.deadl, cls.admin = free_port(), free_port(), free_port(), free_port()
            cls.lb = cls.fleet.rtmplb("""
admin: {address: 127.0.0.1:%d, public_read: true}
limits: {max_early_dials: 3}
listeners:
  - {name: early, address: 127.0.0.1:%d, early_dial: true}
  - {name: late, address: 127.0.0.1:%d}
  - {name: dead, address: 127.0.0.1:%d, early_dial: true}
pools:
  origins: {nodes: [{name: o, address: 127.0.0.1:%d}]}
  deadpool:   # checked too rarely to be marked down: the early dial finds it dead
    health: {type: tcp, interval: 1h, fall: 10}
    nodes: [{name: gone, address: 127.0.0.1:%d}]
routes:
  - {name: dead, match: {listener: dead}, pool: deadpool}
  - {name: all, match: {}, pool: origins, policy: least_sessions}
""" % (cls.admin, cls.port, cls.off, cls.deadl, cls.rtmp, cls.dead), wait_ports=[cls.port])
            publish_cam(cls)
        except Exception:
            cls.fleet.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.fleet.stop()
        cls.hold.close()

    def accepted_after(self, before, timeout):
        """naccepted once it passed `before`, or its value after timeout."""
        deadline = time.monotonic() + timeout
        n = naccepted(self.http)
        while n <= before and time.monotonic() < deadline:
            time.sleep(0.02)
            n = naccepted(self.http)
        return n

    def test_1_origin_dialled_during_the_handshake_and_the_play_uses_it(self):
        adopted0 = early(self.admin, "early", "adopted")
        n0 = naccepted(self.http)
        c = rf.RawClient(self.port, timeout=10)
        self.addCleanup(c.close)
        c.handshake()  # C0C1 -> S0S1S2, C2: no command yet
        n1 = self.accepted_after(n0, 5)
        print("origin connections: %d before the handshake, %d after it (no command sent)" % (n0, n1))
        self.assertEqual(n1, n0 + 1, "the origin was not dialled during the client's handshake")
        # A player that waits for each answer, as ffmpeg does.
        c.send(c.connect_msg("live"))
        self.assertEqual(c.wait_result(1).kind, "done")
        c.send(c.create_stream_msg())
        self.assertEqual(c.wait_result(2).kind, "done")
        c.send(c.play_msg("cam"))
        o = c.wait_status(10)
        self.assertEqual((o.kind, o.code), ("status", "NetStream.Play.Start"), repr(o))
        got = c.read_messages(lambda m: m.type in (rf.AUDIO, rf.VIDEO), timeout=10)
        self.assertEqual(got.kind, "done", "no media: %r" % got)
        self.assertEqual(naccepted(self.http), n1, "the play dialled the origin again")
        wait_for(lambda: early(self.admin, "early", "adopted") == adopted0 + 1, 5,
                 "the adopted early dial counted")

    def test_2_real_players_through_early_dial(self):
        adopted0 = early(self.admin, "early", "adopted")
        url = "rtmp://127.0.0.1:%d/live/cam" % self.port
        n = self.fleet.play_frames(url, 25, name="ffmpeg-early")
        print("ffmpeg through early dial: %d frames" % n)
        self.assertGreaterEqual(n, 25)
        n = self.fleet.rtmpdump_frames(url, 25, name="rtmpdump-early")
        print("rtmpdump through early dial: %d frames" % n)
        self.assertGreaterEqual(n, 25)
        self.assertEqual(early(self.admin, "early", "adopted"), adopted0 + 2)

    def test_3_client_gone_after_its_handshake_leaves_no_origin_connection(self):
        unused0 = early(self.admin, "early", "unused")
        n0 = naccepted(self.http)
        # Only the publisher's (earlier tests' players are gone).
        wait_for(lambda: connections_to(self.rtmp) == 1, 5, "the publisher's connection alone")
        c = rf.RawClient(self.port, timeout=10)
        c.handshake()
        self.assertEqual(self.accepted_after(n0, 5), n0 + 1)
        self.assertEqual(connections_to(self.rtmp), 2)
        c.close()
        wait_for(lambda: early(self.admin, "early", "unused") == unused0 + 1, 5,
                 "the unused early dial counted")
        # rtmplb closed its connection to the origin: only the publisher's
        # is left.
        wait_for(lambda: connections_to(self.rtmp) == 1, 5, "rtmplb's origin connection closed")

    def test_4_early_dial_off_by_default_dials_on_the_play(self):
        n0 = naccepted(self.http)
        c = rf.RawClient(self.off, timeout=10)
        self.addCleanup(c.close)
        c.handshake()
        c.send(c.connect_msg("live"))
        self.assertEqual(c.wait_result(1).kind, "done")
        time.sleep(0.3)
        self.assertEqual(naccepted(self.http), n0, "a listener without early_dial dialled before the play")
        c.send(c.create_stream_msg())
        self.assertEqual(c.wait_result(2).kind, "done")
        c.send(c.play_msg("cam"))
        o = c.wait_status(10)
        self.assertEqual((o.kind, o.code), ("status", "NetStream.Play.Start"), repr(o))
        self.assertEqual(naccepted(self.http), n0 + 1)
        for outcome in ("adopted", "dropped", "unused", "failed"):
            self.assertEqual(early(self.admin, "late", outcome), 0)

    def test_5_dead_node_the_play_still_gets_the_truth(self):
        failed0 = early(self.admin, "dead", "failed")
        c = rf.RawClient(self.deadl, timeout=15)
        self.addCleanup(c.close)
        o = c.play("live", "cam", pipelined=False)
        print("play on a pool whose only node is dead: %r" % o)
        self.assertEqual((o.kind, o.code), ("status", "NetStream.Play.StreamNotFound"), repr(o))
        self.assertRegex(o.description or "", r"every node of pool deadpool failed")
        wait_for(lambda: early(self.admin, "dead", "failed") == failed0 + 1, 5,
                 "the failed early dial counted")
        log = self.fleet.log_text("rtmplb")
        self.assertRegex(log, r"dial_failed .*node=gone")

    def test_6_early_dials_are_bounded(self):
        """limits.max_early_dials: clients that stop after their handshake
        hold at most that many origin connections; the next ones dial on
        their play, and every one plays."""
        adopted0 = early(self.admin, "early", "adopted")
        n0 = naccepted(self.http)
        clients = []
        for _ in range(5):
            c = rf.RawClient(self.port, timeout=10)
            self.addCleanup(c.close)
            c.handshake()
            clients.append(c)
        wait_for(lambda: naccepted(self.http) >= n0 + 3, 5, "three early dials")
        time.sleep(0.3)
        print("5 clients in their handshake: %d origin connections, %d pending" % (
            naccepted(self.http) - n0, gauge(self.admin, "rtmplb_early_dials_pending")))
        self.assertEqual(naccepted(self.http), n0 + 3)
        self.assertEqual(gauge(self.admin, "rtmplb_early_dials_pending"), 3)
        for c in clients:
            o = c.play("live", "cam", pipelined=True, handshake=False)
            self.assertEqual((o.kind, o.code), ("status", "NetStream.Play.Start"), repr(o))
        self.assertEqual(naccepted(self.http), n0 + 5)
        self.assertEqual(early(self.admin, "early", "adopted"), adopted0 + 3)
        self.assertEqual(gauge(self.admin, "rtmplb_early_dials_pending"), 0)


TOKEN = "early-dial-test-token-0123456789"


class EarlyDialPools(unittest.TestCase):
    """Pools of two nodes (two names for the one nginx-rtmp origin, told
    apart by the routed log lines): the early dial keeps the policy's
    spread, does not count against the node's max_sessions at the play,
    and a node the operator disables while a client is in its handshake
    costs that client nothing."""

    @classmethod
    def setUpClass(cls):
        cls.fleet = harness.Fleet()
        try:
            cls.rtmp, cls.http = free_port(), free_port()
            cls.origin = cls.fleet.nginx_origin("o", cls.rtmp, cls.http)
            tok = cls.fleet.dir + "/token"
            with open(tok, "w") as f:
                f.write(TOKEN + "\n")
            os.chmod(tok, 0o600)
            cls.wrr, cls.one, cls.dis, cls.admin = free_port(), free_port(), free_port(), free_port()
            o = cls.rtmp
            cls.fleet.rtmplb("""
workers: 1
admin: {address: 127.0.0.1:%d, public_read: true, token_file: %s}
listeners:
  - {name: wrr, address: 127.0.0.1:%d, early_dial: true}
  - {name: one, address: 127.0.0.1:%d, early_dial: true}
  - {name: dis, address: 127.0.0.1:%d, early_dial: true}
pools:
  wrr: {nodes: [{name: w1, address: 127.0.0.1:%d}, {name: w2, address: 127.0.0.1:%d}]}
  one: {nodes: [{name: o1, address: 127.0.0.1:%d, max_sessions: 1}]}
  dis: {nodes: [{name: d1, address: 127.0.0.1:%d}, {name: d2, address: 127.0.0.1:%d}]}
routes:
  - {name: wrr, match: {listener: wrr}, pool: wrr, policy: weighted}
  - {name: one, match: {listener: one}, pool: one, policy: stream_affinity}
  - {name: dis, match: {listener: dis}, pool: dis, policy: least_sessions}
""" % (cls.admin, tok, cls.wrr, cls.one, cls.dis, o, o, o, o, o), wait_ports=[cls.wrr])
            publish_cam(cls)
        except Exception:
            cls.fleet.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.fleet.stop()

    def routed_nodes(self, listener):
        return re.findall(r"routed .*listener=%s .*node=(\w+)" % listener,
                          self.fleet.log_text("rtmplb"))

    def play_ok(self, port, name="cam"):
        c = rf.RawClient(port, timeout=10)
        try:
            o = c.play("live", name, pipelined=False)
            self.assertEqual((o.kind, o.code), ("status", "NetStream.Play.Start"), repr(o))
        finally:
            c.close()

    def test_1_weighted_spread_is_kept(self):
        for _ in range(10):
            self.play_ok(self.wrr)
        wait_for(lambda: len(self.routed_nodes("wrr")) >= 10, 5, "ten routed lines")
        nodes = self.routed_nodes("wrr")
        print("10 plays, weighted 1:1, early dial: w1 %d, w2 %d" % (nodes.count("w1"),
                                                                     nodes.count("w2")))
        # One worker rotates w1, w2, w1, ...: an even split.
        self.assertEqual((nodes.count("w1"), nodes.count("w2")), (5, 5))
        self.assertGreaterEqual(early(self.admin, "wrr", "adopted"), 10)

    def test_2_max_sessions_one_still_plays(self):
        """The early dial holds the node's only session slot: the play
        itself must take it, not be refused for it."""
        self.play_ok(self.one)
        # The slot comes back once the first session has ended.
        wait_for(lambda: node_sessions(self.admin, "one", "o1") == 0, 5, "o1's slot free")
        self.play_ok(self.one)
        self.assertGreaterEqual(early(self.admin, "one", "adopted"), 2)

    def test_3_node_disabled_during_the_handshake(self):
        c = rf.RawClient(self.dis, timeout=10)
        self.addCleanup(c.close)
        c.handshake()  # dialled early to d1 (least_sessions: ties go in pool order)
        wait_for(lambda: gauge(self.admin, "rtmplb_early_dials_pending") == 1, 5,
                 "the early dial")
        req = urllib.request.Request(
            "http://127.0.0.1:%d/api/v1/pools/dis/nodes/d1" % self.admin,
            data=json.dumps({"state": "disabled"}).encode(), method="POST",
            headers={"Authorization": "Bearer " + TOKEN, "Content-Type": "application/json"})
        urllib.request.urlopen(req, timeout=10).read()
        self.addCleanup(lambda: urllib.request.urlopen(urllib.request.Request(
            "http://127.0.0.1:%d/api/v1/pools/dis/nodes/d1" % self.admin,
            data=json.dumps({"state": None}).encode(), method="POST",
            headers={"Authorization": "Bearer " + TOKEN}), timeout=10).read())
        wait_for(lambda: gauge(self.admin, "rtmplb_early_dials_pending") == 0, 5,
                 "the early leg let go")
        o = c.play("live", "cam", pipelined=False, handshake=False)
        print("client in its handshake while its early node was disabled: %r" % o)
        self.assertEqual((o.kind, o.code), ("status", "NetStream.Play.Start"), repr(o))
        wait_for(lambda: self.routed_nodes("dis"), 5, "the routed line")
        self.assertEqual(self.routed_nodes("dis")[-1], "d2")
        self.assertGreaterEqual(early(self.admin, "dis", "dropped"), 1)


def node_sessions(admin_port, pool, node):
    return int(harness.metric(admin_port, 'rtmplb_node_sessions{pool="%s",node="%s"}' % (pool, node)))


def gauge(admin_port, name):
    return int(harness.metric(admin_port, name))


if __name__ == "__main__":
    harness.main()
