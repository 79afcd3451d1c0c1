"""The RTMP front door, black box: three stock nginx-rtmp origins behind an
rtmp-mode rtmplb with stream_affinity. ffmpeg publishes three streams
through rtmplb; ffmpeg, rtmpdump and GStreamer play each back through
rtmplb. Asserts decoded frames for every pair, where each stream lives
(/stat of every origin), frame-exact equality with a direct play, RTMP
errors for missing streams, and that garbage or stalled clients are cut off
by the deadline without disturbing a live session."""

import os
import signal
import socket
import subprocess
import threading
import time
import unittest

import harness
from harness import (Fleet, access_lines, free_port, nginx_streams, recv_closed, recv_exact,
                     wait_for)

# Stream names that stream_affinity spreads over origin-a, -b and -c (see
# tests/unit/upstream/policy_affinity.c for the hash).
STREAMS = {"s1": "origin-a", "s2": "origin-b", "s4": "origin-c"}


def wait_live(origins, name, timeout=15):
    """The origin (name) where stream `name` is being published."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for oname, o in origins.items():
            st = nginx_streams(o.http_port)
            if name in st and st[name][0]:
                return oname
        time.sleep(0.2)
    raise AssertionError("stream %s never went live" % name)


class FrontDoor(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        f = cls.fleet = Fleet()
        # Runs even when setUpClass fails part way (tearDownClass would not).
        cls.addClassCleanup(f.stop)
        cls.origins = {n: f.nginx_origin(n, free_port(), free_port())
                       for n in ("origin-a", "origin-b", "origin-c")}
        cls.front = free_port()
        cls.passport = free_port()
        nodes = "\n".join("      - {name: %s, address: 127.0.0.1:%d}" % (n, o.rtmp_port)
                          for n, o in cls.origins.items())
        cls.lb = f.rtmplb("""
workers: 2
timeouts: {handshake: 1500ms}
listeners:
  - {name: rtmp, address: 127.0.0.1:%d, mode: rtmp}
  - {name: pass, address: 127.0.0.1:%d, mode: rtmp}
pools:
  origins:
    nodes:
%s
  solo:
    nodes: [{name: origin-a, address: 127.0.0.1:%d}]
  dead:
    nodes: [{name: gone-1, address: 127.0.0.1:%d}, {name: gone-2, address: 127.0.0.1:%d}]
routes:
  - {name: connect-time, match: {listener: pass}, pool: solo, route_on: connect}
  - {name: live, match: {app: live}, pool: origins, policy: stream_affinity}
  - {name: dead, match: {app: deadapp}, pool: dead}
  - {name: unknown-app, match: {app: noapp}, pool: solo}
""" % (cls.front, cls.passport, nodes, cls.origins["origin-a"].rtmp_port, free_port(),
       free_port()), wait_ports=[cls.front])
        cls.pubs = {s: f.publish(cls.url(s), name="publish-" + s) for s in STREAMS}
        cls.live_on = {s: wait_live(cls.origins, s) for s in STREAMS}

    @classmethod
    def url(cls, stream, app="live"):
        return "rtmp://127.0.0.1:%d/%s/%s" % (cls.front, app, stream)

    def test_1_streams_land_where_affinity_says_and_nowhere_else(self):
        for s, want in STREAMS.items():
            self.assertEqual(self.live_on[s], want)
            holders = [n for n, o in self.origins.items() if s in nginx_streams(o.http_port)]
            self.assertEqual(holders, [want], "stream %s on %r" % (s, holders))

    def test_2_every_client_plays_every_stream(self):
        results = {}
        # Players keep playing until they have their frames and the origins
        # have been seen holding all of them at once (or 60 s pass).
        counted = threading.Event()

        def run(client, s):
            kw = {"timeout": 60, "until": counted.is_set}
            if client == "ffmpeg":
                n = self.fleet.play_frames(self.url(s), 40, name="ffmpeg-" + s, **kw)
            elif client == "rtmpdump":
                n = self.fleet.rtmpdump_frames(self.url(s), 40, name="rtmpdump-" + s, **kw)
            else:
                n = self.fleet.gst_frames(self.url(s), 40, name="gst-" + s, **kw)
            results[(client, s)] = n

        threads = [threading.Thread(target=run, args=(c, s))
                   for c in ("ffmpeg", "rtmpdump", "gst") for s in STREAMS]
        for t in threads:
            t.start()
        try:
            # While they play: each stream's origin has publisher + 3 players.
            def all_there():
                st = {s: nginx_streams(self.origins[o].http_port) for s, o in STREAMS.items()}
                return all(st[s].get(s, (0, 0))[1] >= 4 for s in STREAMS) and st
            seen = wait_for(all_there, 40, "publisher + 3 players on every stream's origin", 0.2)
            print("clients per stream at once:", {s: seen[s][s][1] for s in STREAMS})
        finally:
            counted.set()
            for t in threads:
                t.join(90)
        print("frames decoded through rtmplb:", results)
        self.assertEqual(len(results), 9, results)
        for key, n in results.items():
            self.assertGreaterEqual(n, 40, "%s decoded %d frames" % (key, n))
        # rtmplb's access log agrees: every play of s went to s's origin.
        sessions = access_lines(self.fleet.log_text("rtmplb"))
        plays = [x for x in sessions if x.get("role") == "play" and x.get("stream") in STREAMS]
        self.assertGreaterEqual(len(plays), 9)
        for x in plays:
            self.assertEqual(x["node"], STREAMS[x["stream"]], x)
            self.assertIn(x["handshake"], ("simple", "digest"))
        kinds = {x["handshake"] for x in plays}
        self.assertEqual(kinds, {"simple", "digest"})  # ffmpeg digest; librtmp, GStreamer simple

    def test_3_frames_through_rtmplb_equal_frames_from_the_origin(self):
        s = "s2"
        origin = self.origins[STREAMS[s]]
        direct = "rtmp://127.0.0.1:%d/live/%s" % (origin.rtmp_port, s)
        # Each plays until both have 120 frames: they overlap by far more
        # than the 50 compared, however late either starts.
        both = lambda: min(self.fleet.frame_count("via"), self.fleet.frame_count("direct")) >= 120
        t = threading.Thread(target=self.fleet.play_frames, args=(direct, 120),
                             kwargs={"name": "direct", "timeout": 60, "until": both})
        t.start()
        self.fleet.play_frames(self.url(s), 120, name="via", timeout=60, until=both)
        t.join(70)
        a, b = self.fleet.framemd5("via"), self.fleet.framemd5("direct")
        self.assertGreater(len(a), 50)
        # Both joined a live stream at their own keyframe: align on the first
        # frame they share, then they must agree frame for frame.
        common = next(i for i, h in enumerate(a) if h in b)
        j = b.index(a[common])
        n = min(len(a) - common, len(b) - j)
        print("framemd5: %d frames compared, rtmplb vs direct" % n)
        self.assertGreaterEqual(n, 50)
        self.assertEqual(a[common:common + n], b[j:j + n])

    def test_4_missing_stream_is_stream_not_found_at_once(self):
        # The origin's own answer (nginx: idle_streams off), and rtmplb's
        # when no route matches: both NetStream.Play.StreamNotFound.
        probe = os.path.join(os.path.dirname(harness.ARGS.rtmplb), "rtmp_probe")
        for stream, app, desc in (("nosuch", "live", "No such stream"),
                                  ("x", "other", "rtmplb: no route for play other/x")):
            r = subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-i",
                                self.url(stream, app), "-f", "null", "-"],
                               capture_output=True, text=True, timeout=20)
            print("play %s/%s: ffmpeg exited %d: %s"
                  % (app, stream, r.returncode, r.stderr.strip().splitlines()[:1]))
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("Server error: " + desc, r.stderr)
            # An answer, not a timeout: timed around rtmp_probe (a C program
            # that starts in milliseconds, unlike ffmpeg), well inside the 5 s
            # after which the probe would give up waiting and say so.
            start = time.monotonic()
            p = subprocess.run([probe, "127.0.0.1", str(self.front), app, stream],
                               capture_output=True, text=True, timeout=20)
            took = time.monotonic() - start
            self.assertEqual(p.stdout.strip(), "error server said StreamNotFound", p.stderr)
            self.assertLess(took, 4.0)
            d = subprocess.run(["timeout", "10", "rtmpdump", "-V", "--live", "-r",
                                self.url(stream, app), "-o", "/dev/null"],
                               capture_output=True, text=True)
            self.assertRegex(d.stderr, r"code, STRING:\s*NetStream\.Play\.StreamNotFound")
            self.assertRegex(d.stderr, r"level, STRING:\s*error")

    def test_5_garbage_and_stalls_are_cut_off_without_hurting_a_live_play(self):
        f = self.fleet
        by = f.start_play(self.url("s1"), name="bystander")
        try:
            wait_for(lambda: f.frame_count("bystander") >= 25 or by.poll() is not None, 40,
                     "the bystander's first frames")
            self.assertIsNone(by.poll(), "bystander died:\n" + f.log_text("bystander"))
            # Garbage instead of a handshake: closed as bad_handshake (not
            # left to the handshake deadline: the log line says which).
            g = socket.create_connection(("127.0.0.1", self.front), timeout=10)
            g.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            self.assertTrue(recv_closed(g))
            g.close()
            wait_for(lambda: "reason=bad_handshake" in f.log_text("rtmplb"), 10,
                     "the bad_handshake log line")
            # A stall halfway through C1: closed by timeouts.handshake (1.5 s),
            # whose clock starts at accept: time it from before connect, so the
            # window can only be longer than rtmplb's, never shorter.
            start = time.monotonic()
            st = socket.create_connection(("127.0.0.1", self.front), timeout=20)
            st.sendall(b"\x03" + os.urandom(700))
            self.assertTrue(recv_closed(st))
            took = time.monotonic() - start
            st.close()
            print("stalled handshake closed after %.2fs (timeout 1.5 s)" % took)
            self.assertGreater(took, 1.4)
            self.assertLess(took, 10.0)
            # Garbage after a good handshake: the chunk parser refuses it.
            h = socket.create_connection(("127.0.0.1", self.front), timeout=10)
            h.sendall(b"\x03" + bytes(1536))
            recv_exact(h, 3073)  # S0 S1 S2
            h.sendall(bytes(1536) + b"\x03\x00\x00\x00\x7f\xff\xff\x14\x00\x00\x00\x00")
            self.assertTrue(recv_closed(h))  # a 8 MiB command: over the limit
            h.close()
            # The bystander still plays: 50 more frames after all that.
            n0 = f.frame_count("bystander")
            wait_for(lambda: f.frame_count("bystander") >= n0 + 50 or by.poll() is not None, 40,
                     "50 more bystander frames")
            self.assertIsNone(by.poll(), "bystander died:\n" + f.log_text("bystander"))
            print("bystander decoded %d frames meanwhile" % f.frame_count("bystander"))
        finally:
            f.stop_proc(by, signal.SIGINT)
        log = wait_for(lambda: (lambda x: "message longer than the limit" in x and x)(
            f.log_text("rtmplb")), 10, "the chunk parser's refusal in the log")
        self.assertIn("reason=bad_handshake", log)
        self.assertIn("reason=handshake_timeout", log)

    def test_7_obs_style_client_with_early_chunk_size(self):
        # OBS sends Set Chunk Size 4096 before connect and chunks its
        # commands at 4096: the front door must follow, and so must the
        # origin, which gets those bytes replayed verbatim.
        probe = os.path.join(os.path.dirname(harness.ARGS.rtmplb), "rtmp_probe")
        r = subprocess.run([probe, "--obs", "--count", "5", "127.0.0.1", str(self.front), "live",
                            "s4"], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(len([l for l in r.stdout.splitlines() if l.startswith("ok ")]), 5)

    def test_8_route_on_connect_passes_the_origins_answers_through(self):
        url = "rtmp://127.0.0.1:%d/live/s1" % self.passport
        n = self.fleet.play_frames(url, 40, name="pass-play")
        print("route_on: connect: %d frames" % n)
        self.assertGreaterEqual(n, 40)
        d = subprocess.run(["timeout", "4", "rtmpdump", "-V", "--live", "-r", url, "-o", "/dev/null"],
                           capture_output=True, text=True)
        # Exactly one connect answer, and it is nginx's own (rtmplb's local
        # answer has no description).
        self.assertEqual(d.stderr.count("NetConnection.Connect.Success"), 1, d.stderr[-3000:])
        self.assertIn("Connection succeeded.", d.stderr)
        sessions = [x for x in access_lines(self.fleet.log_text("rtmplb"))
                    if x.get("route") == "connect-time"]
        self.assertTrue(sessions)
        self.assertTrue(all(x["node"] == "origin-a" and x["role"] == "-" for x in sessions))

    def test_9_failures_reach_clients_as_rtmp_errors(self):
        def ffmpeg_play(app, stream):
            return subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-i",
                                   self.url(stream, app), "-f", "null", "-"],
                                  capture_output=True, text=True, timeout=20).stderr

        def ffmpeg_publish(app, stream):
            return subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-f",
                                   "lavfi", "-i", "testsrc2=size=160x120:rate=25", "-t", "3",
                                   "-c:v", "libx264", "-preset", "ultrafast", "-f", "flv",
                                   self.url(stream, app)],
                                  capture_output=True, text=True, timeout=30).stderr

        # Every node of the pool refuses: both dials fail.
        err = ffmpeg_play("deadapp", "x")
        self.assertIn("Server error: rtmplb: every node of pool dead failed (2 tried)", err)
        err = ffmpeg_publish("deadapp", "x")
        self.assertIn("Server error: rtmplb: every node of pool dead failed (2 tried)", err)
        # The origin has no such application and hangs up (nginx-rtmp's way).
        err = ffmpeg_play("noapp", "x")
        self.assertRegex(err, r"Server error: origin origin-a"
                              r"( closed the connection|: Connection reset by peer)")
        d = subprocess.run(["timeout", "10", "rtmpdump", "-V", "--live", "-r",
                            self.url("x", "deadapp"), "-o", "/dev/null"],
                           capture_output=True, text=True)
        self.assertRegex(d.stderr, r"code, STRING:\s*NetStream\.Play\.StreamNotFound")
        sessions = access_lines(self.fleet.log_text("rtmplb"))
        reasons = {x["reason"] for x in sessions if x.get("app") in ("deadapp", "noapp")}
        self.assertEqual(reasons, {"dial_failed", "origin_closed"})
        pub = [x for x in sessions if x.get("app") == "deadapp" and x.get("role") == "publish"]
        self.assertTrue(pub)
        self.assertRegex(self.fleet.log_text("rtmplb"), r"rtmp_refused .*reason=dial_failed")

    def test_6_publishers_still_healthy(self):
        for s, p in self.pubs.items():
            self.assertIsNone(p.poll(), "publisher of %s died:\n%s"
                              % (s, self.fleet.log_text("publish-" + s)))


def amf_str(v):
    b = v.encode()
    return b"\x02" + len(b).to_bytes(2, "big") + b


def amf_num(v):
    import struct
    return b"\x00" + struct.pack(">d", v)


def chunked(csid, mtype, payload, msid=0, chunk=128):
    """One message as chunks: fmt0, then fmt3 continuations."""
    out = bytes([csid]) + b"\0\0\0" + len(payload).to_bytes(3, "big") + bytes([mtype]) + \
        msid.to_bytes(4, "little")
    for i in range(0, len(payload), chunk):
        if i:
            out += bytes([0xC0 | csid])
        out += payload[i:i + chunk]
    return out


class SyntheticOrigin(threading.Thread):
    """An origin no real server is: it misbehaves in one chosen way after a
    plain handshake. Real origins never do this; the front door's checks
    must still catch it (RTMP-NOTES.md, "Tests")."""

    def __init__(self, mode):
        super().__init__(daemon=True)
        self.mode = mode
        self.port = free_port()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen(4)
        self.sock.settimeout(30)  # accept() gives up rather than waiting forever
        self.error = None
        self.start()

    def stop(self):
        self.sock.close()
        self.join(10)

    def _recv_until(self, c, data, n):
        while len(data) < n:
            d = c.recv(4096)
            if not d:
                raise EOFError("rtmplb closed after %d of %d bytes" % (len(data), n))
            data += d
        return data

    def run(self):
        try:
            c, _ = self.sock.accept()
        except OSError as e:  # timeout, or stop() closed the socket
            self.error = "accept: %s" % e
            return
        c.settimeout(5)
        try:
            data = self._recv_until(c, b"", 1537)
            c.sendall(b"\x03" + os.urandom(1536) + data[1:1537])
            need = 1537 + 1536
            data = self._recv_until(c, data, need + 50)  # C2 and the replayed commands
            ack = chunked(2, 5, (2500000).to_bytes(4, "big"))
            result = chunked(3, 20, amf_str("_result") + amf_num(1) + b"\x05\x05")
            if self.mode == "stream_id":
                cs = chunked(3, 20, amf_str("_result") + amf_num(2) + b"\x05" + amf_num(3))
                c.sendall(ack + result + cs)
            else:  # a 200-byte message before any Set Chunk Size
                c.sendall(ack + chunked(3, 18, b"\x02\x00\x04junk" + bytes(193)) + result)
            # Stay until rtmplb hangs up (it must): bounded by the timeout.
            while c.recv(4096):
                pass
        except (OSError, EOFError) as e:
            self.error = str(e)
        finally:
            c.close()
            self.sock.close()


class SyntheticOrigins(unittest.TestCase):
    def test_origin_that_breaks_a_check_is_refused_in_rtmp(self):
        probe = os.path.join(os.path.dirname(harness.ARGS.rtmplb), "rtmp_probe")
        for mode, detail in (("stream_id", "gave stream id 3; rtmplb promised 1"),
                             ("oversize", "sent a 200-byte message before its Set Chunk Size")):
            fleet = Fleet()
            origin = None
            try:
                origin = SyntheticOrigin(mode)
                front = free_port()
                fleet.rtmplb("""
listeners: [{name: rtmp, address: 127.0.0.1:%d}]
pools: {p: {nodes: [{name: synth, address: 127.0.0.1:%d}]}}
routes: [{name: r, pool: p}]
""" % (front, origin.port), wait_ports=[front])
                r = subprocess.run([probe, "127.0.0.1", str(front), "live", "x"],
                                   capture_output=True, text=True, timeout=20)
                self.assertEqual(r.stdout.strip(), "error server said StreamNotFound", mode)
                origin.join(15)
                self.assertFalse(origin.is_alive(), "rtmplb kept the origin's connection")
                self.assertIsNone(origin.error, mode)
                log = wait_for(lambda: (lambda x: "reason=origin_protocol" in x and x)(
                    fleet.log_text("rtmplb")), 10, "the origin_protocol log line")
                self.assertIn(detail, log)
            finally:
                if origin is not None:
                    origin.stop()
                fleet.stop()


if __name__ == "__main__":
    harness.main()
