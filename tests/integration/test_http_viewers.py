"""HTTP-FLV and HLS viewers through mode: http listeners: routed by the
stream named in the path, with the same policies as RTMP plays; errors as
HTTP; keep-alive requests for another stream routed anew; X-Forwarded-For
used only where trusted. Real parts: ffmpeg players, stock nginx-rtmp
origins writing HLS served by their own nginx, and (Debian has no HTTP-FLV
origin module) a small Python origin relaying an ffmpeg-made FLV."""
import json
import os
import re
import socket
import subprocess
import time
import unittest
import urllib.request

import harness
from harness import Fleet, free_port, wait_for
from httporigin import HttpOrigin


def make_flv(path, seconds=8):
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
                    "testsrc2=size=320x240:rate=25", "-f", "lavfi", "-i",
                    "sine=frequency=440:sample_rate=44100", "-t", str(seconds), "-c:v", "libx264",
                    "-preset", "ultrafast", "-g", "50", "-pix_fmt", "yuv420p", "-c:a", "aac",
                    "-f", "flv", "-y", path], check=True, timeout=120)
    with open(path, "rb") as f:
        return f.read()


def read_response(sock_file):
    """(status, headers, body) of one Content-Length answer, or of one that
    ends at the close."""
    line = sock_file.readline()
    if not line:
        return None, {}, b""
    status = int(line.split()[1])
    headers = {}
    while True:
        h = sock_file.readline()
        if h in (b"\r\n", b"\n", b""):
            break
        k, v = h.decode().split(":", 1)
        headers[k.strip().lower()] = v.strip()
    if "content-length" in headers:
        body = sock_file.read(int(headers["content-length"]))
    else:
        body = sock_file.read()
    return status, headers, body


def request(port, raw, timeout=10):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(raw)
        return read_response(s.makefile("rb"))
    finally:
        s.close()


class HttpFlv(unittest.TestCase):
    def setUp(self):
        f = self.fleet = Fleet()
        self.addCleanup(f.stop)
        flv = make_flv(os.path.join(f.dir, "fixture.flv"))
        self.a = HttpOrigin("a", flv=flv)
        self.b = HttpOrigin("b", flv=flv)
        self.c = HttpOrigin("c", flv=flv)
        for o in (self.a, self.b, self.c):
            f.threads.append(o)
        self.web, self.trusted, self.admin = free_port(), free_port(), free_port()
        self.secure = free_port()
        # https:// viewers: the same phase behind the TLS transport.
        self.cert, key = os.path.join(f.dir, "web.pem"), os.path.join(f.dir, "web.key")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", self.cert,
                        "-days", "2", "-subj", "/CN=web.test"], check=True, capture_output=True)
        dead = free_port()  # nobody listens there
        node = lambda n, o: "{name: %s, address: 127.0.0.1:%d, http: {address: 127.0.0.1:%d}}" % (
            n, free_port(), o.port)
        f.rtmplb("""
workers: 2
timeouts: {handshake: 2s, connect: 1s}
listeners:
  - {name: web, address: 127.0.0.1:%d, mode: http, http: {add_forwarded: both}}
  - {name: trusted, address: 127.0.0.1:%d, mode: http, http: {trust_x_forwarded_for: true}}
  - name: secure
    address: 127.0.0.1:%d
    mode: http
    http: {add_forwarded: forwarded}
    tls: {certificates: [{cert: %s, key: %s}]}
admin: {address: 127.0.0.1:%d, public_read: true}
pools:
  origins:
    nodes: [%s, %s]
  cams:
    nodes: [%s]
  dead:
    nodes: [{name: gone, address: 127.0.0.1:%d, http: {address: 127.0.0.1:%d}}]
routes:
  - {name: cams, match: {stream: "cam*"}, pool: cams}
  - {name: dead, match: {stream: "dead*"}, pool: dead}
  - {name: located, match: {stream: "loc*"}, pool: origins, policy: stream_location, require_live: true}
  - {name: live, pool: origins, policy: stream_affinity}
""" % (self.web, self.trusted, self.secure, self.cert, key, self.admin, node("a", self.a),
       node("b", self.b),
       node("c", self.c), dead, dead), wait_ports=[self.web])

    def flv_paths(self, origin, name):
        return [p for p in origin.paths() if p.startswith("/live/%s.flv" % name)]

    def test_flv_viewers_decode_frames_from_one_origin_with_forwarded_headers(self):
        for name, query in (("room", ""), ("hall", "?chunked=1")):
            frames = self.fleet.play_frames("http://127.0.0.1:%d/live/%s.flv%s" % (self.web, name, query),
                                            100, name="flv-" + name, timeout=40)
            self.assertGreaterEqual(frames, 100, "%s: %d frames" % (name, frames))
            got = [o.name for o in (self.a, self.b, self.c) if self.flv_paths(o, name)]
            self.assertEqual(len(got), 1, "%s reached %s" % (name, got))
            self.assertNotEqual(got, ["c"])
        # GStreamer's HTTP client too (souphttpsrc ! flvdemux).
        frames = self.fleet.gst_frames("http://127.0.0.1:%d/live/gst.flv" % self.web, 50,
                                       timeout=40, src="souphttpsrc location={url}")
        self.assertGreaterEqual(frames, 50)
        hdrs = [h for o in (self.a, self.b) for h in o.headers()]
        self.assertTrue(hdrs)
        for h in hdrs:
            self.assertEqual(h.get("x-forwarded-for"), "127.0.0.1")
            self.assertEqual(h.get("forwarded"), "for=127.0.0.1;proto=http")
        # The same stream from another connection reaches the same origin
        # (stream_affinity, as playlist and segments must).
        first = [o for o in (self.a, self.b) if self.flv_paths(o, "room")][0]
        for i in range(4):
            st, _, body = request(self.web, b"GET /live/room-%d.ts HTTP/1.1\r\nHost: x\r\n"
                                            b"Connection: close\r\n\r\n" % i)
            self.assertEqual(st, 200)
            self.assertEqual(body.decode().split()[0], first.name)

    def test_https_viewers(self):
        # ffmpeg over TLS (it does not verify by default) decodes frames; the
        # node is told the viewer came by https; plain HTTP to the TLS
        # listener is closed at once.
        frames = self.fleet.play_frames("https://127.0.0.1:%d/live/sec.flv" % self.secure, 100,
                                        name="flv-sec", timeout=40)
        self.assertGreaterEqual(frames, 100)
        hdrs = [h for o in (self.a, self.b) for h in o.headers() if "forwarded" in h]
        self.assertIn("for=127.0.0.1;proto=https", [h["forwarded"] for h in hdrs])
        t0 = time.monotonic()
        try:
            st, _, _ = request(self.secure, b"GET /live/sec.flv HTTP/1.1\r\nHost: x\r\n\r\n")
        except ConnectionResetError:  # closed with our request unread: a reset
            st = None
        self.assertIsNone(st, "plain HTTP on the TLS listener gets no HTTP answer")
        self.assertLess(time.monotonic() - t0, 5, "... and is closed at once")
        # A player's "swap line" list for this listener offers https:// URLs.
        with urllib.request.urlopen("http://127.0.0.1:%d/api/v1/lines?app=live&stream=sec"
                                    "&listener=secure&format=flv" % self.admin, timeout=10) as r:
            urls = [l["url"] for l in json.load(r)["lines"]]
        self.assertTrue(urls)
        for u in urls:
            self.assertTrue(u.startswith("https://127.0.0.1:%d/live/sec.flv" % self.secure), u)

    def test_a_dead_origin_is_skipped(self):
        req = b"GET /live/room.m3u8 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        st, _, body = request(self.web, req)
        self.assertEqual(st, 200)
        first = {"a": self.a, "b": self.b}[body.decode().split()[0]]
        other = self.b if first is self.a else self.a
        first.stop()
        for _ in range(3):
            st, _, body = request(self.web, req)
            self.assertEqual(st, 200)
            self.assertEqual(body.decode().split()[0], other.name)
        self.assertIn("dial_failed", self.fleet.log_text("rtmplb"))

    def test_keepalive_request_for_another_stream_is_routed_anew(self):
        s = socket.create_connection(("127.0.0.1", self.web), timeout=10)
        self.addCleanup(s.close)
        sf = s.makefile("rb")
        bodies = []
        s.sendall(b"GET /live/room.m3u8 HTTP/1.1\r\nHost: x\r\n\r\n")
        bodies.append(read_response(sf))
        s.sendall(b"GET /live/cam1.m3u8 HTTP/1.1\r\nHost: x\r\n\r\n")
        bodies.append(read_response(sf))
        # Pipelined: two requests in one write, answered in order.
        s.sendall(b"GET /live/cam1-7.ts HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"GET /live/room-3.ts?line=x HTTP/1.1\r\nHost: x\r\n\r\n")
        bodies.append(read_response(sf))
        bodies.append(read_response(sf))
        self.assertEqual([b[0] for b in bodies], [200] * 4)
        names = [b[2].decode().split() for b in bodies]
        self.assertIn(names[0][0], ("a", "b"))
        self.assertEqual(names[0][1], "/live/room.m3u8")
        self.assertEqual(names[1], ["c", "/live/cam1.m3u8"])
        self.assertEqual(names[2], ["c", "/live/cam1-7.ts"])
        self.assertEqual(names[3], [names[0][0], "/live/room-3.ts"])
        # Still open: one more answer on the same connection.
        s.sendall(b"GET /live/cam2.m3u8 HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(read_response(sf)[2].decode().split()[0], "c")

    def test_errors_are_http_and_bad_clients_do_not_hurt_a_viewer(self):
        viewer = self.fleet.start_play("http://127.0.0.1:%d/live/room.flv" % self.web, "viewer")
        st, h, body = request(self.web, b"GET /favicon.ico HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(st, 404, body)
        st, h, body = request(self.web, b"GET /live/loc1.m3u8 HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(st, 404, body)
        self.assertIn(b"not live", body)
        st, h, body = request(self.web, b"GET /live/dead1.flv HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(st, 503, body)
        self.assertEqual(h.get("retry-after"), "5")
        st, h, body = request(self.web, b"POST /live/room.flv HTTP/1.1\r\nHost: x\r\n"
                                        b"Content-Length: 0\r\n\r\n")
        self.assertEqual(st, 405)
        st, h, body = request(self.web, b"GARBAGE\x01 / HTTP/9\r\n\r\n")
        self.assertEqual(st, 400)
        big = b"GET /live/room.m3u8 HTTP/1.1\r\nHost: x\r\n" + b"X-Pad: %s\r\n" % (b"p" * 1000) * 66
        s = socket.create_connection(("127.0.0.1", self.web), timeout=10)
        try:
            try:
                s.sendall(big + b"\r\n")
            except OSError:
                pass  # refused before it all went out
            st, h, body = read_response(s.makefile("rb"))
        finally:
            s.close()
        self.assertEqual(st, 431)
        # Slowloris: a header byte every 0.3 s is cut off at timeouts.handshake.
        s = socket.create_connection(("127.0.0.1", self.web), timeout=15)
        t0 = time.monotonic()
        try:
            s.sendall(b"GET /live/room.m3u8 HTTP/1.1\r\n")
            st = None
            for _ in range(40):
                try:
                    s.sendall(b"X")
                except OSError:
                    break
                s.settimeout(0.3)
                try:
                    d = s.recv(4096)
                except socket.timeout:
                    continue
                if d:
                    st = int(d.split()[1])
                break
        finally:
            s.close()
        self.assertEqual(st, 408)
        self.assertLess(time.monotonic() - t0, 10)
        self.fleet._play_until(viewer, lambda: self.fleet.frame_count("viewer"), 100, 40, None)
        self.assertGreaterEqual(self.fleet.frame_count("viewer"), 100)
        lines = harness.access_lines(self.fleet.log_text("rtmplb"))
        reasons = [x["reason"] for x in lines]
        for r in ("not_found", "dial_failed", "client_protocol:http", "handshake_timeout"):
            self.assertIn(r, reasons)
        dead = [x for x in lines if x.get("stream") == "dead1"]
        self.assertEqual(len(dead), 1)
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.admin, timeout=5) as r:
            metrics = r.read().decode()
        self.assertRegex(metrics, r'reason="not_found"\} [1-9]')

    def test_x_forwarded_for_only_where_trusted(self):
        req = (b"GET /live/room.m3u8 HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 198.51.100.1, "
               b"203.0.113.7\r\nConnection: close\r\n\r\n")
        self.assertEqual(request(self.web, req)[0], 200)
        self.assertEqual(request(self.trusted, req)[0], 200)
        wait_for(lambda: len(harness.access_lines(self.fleet.log_text("rtmplb"))) >= 2, 10,
                 "two access lines")
        lines = harness.access_lines(self.fleet.log_text("rtmplb"))
        by = {x["listener"]: x["client"] for x in lines}
        self.assertTrue(by["web"].startswith("127.0.0.1:"), by)
        self.assertTrue(by["trusted"].startswith("203.0.113.7"), by)
        # The untrusted listener adds what it saw to the list the node gets.
        xffs = [h.get("x-forwarded-for") for o in (self.a, self.b) for h in o.headers()]
        self.assertIn("198.51.100.1, 203.0.113.7, 127.0.0.1", xffs)
        # locate and lines give http:// URLs for an http listener.
        url = "http://127.0.0.1:%d/api/v1/locate?app=live&stream=room&listener=web" % self.admin
        with urllib.request.urlopen(url, timeout=5) as r:
            loc = json.load(r)
        node = {"a": self.a, "b": self.b}[loc["node"]]
        self.assertEqual(loc["url"], "http://127.0.0.1:%d/live/room.flv" % node.port)
        url = "http://127.0.0.1:%d/api/v1/lines?app=live&stream=room&listener=web" % self.admin
        with urllib.request.urlopen(url, timeout=5) as r:
            lines = json.load(r)
        self.assertIn("http://127.0.0.1:%d/live/room.flv" % self.web, json.dumps(lines))


HLS_APP = ("hls on; hls_path {prefix}/hls; hls_fragment 1s; hls_playlist_length 6s; "
           "idle_streams off;")
HLS_HTTP = ("access_log {prefix}/logs/access.log; "
            "location /live/ { alias {prefix}/hls/; "
            "types { application/vnd.apple.mpegurl m3u8; video/mp2t ts; } }")


class Hls(unittest.TestCase):
    def setUp(self):
        f = self.fleet = Fleet()
        self.addCleanup(f.stop)
        self.origins = {}
        # nginx's workers (not root) write and serve the HLS files.
        os.chmod(f.dir, 0o755)
        for n in ("o1", "o2", "o3"):
            hls = os.path.join(f.dir, "nginx-" + n, "hls")
            os.makedirs(hls)
            os.chmod(hls, 0o777)
            self.origins[n] = f.nginx_origin(n, free_port(), free_port(), extra_app=HLS_APP,
                                             http_extra=HLS_HTTP)
        self.web, self.admin = free_port(), free_port()
        nodes = ", ".join(
            "{name: %s, address: 127.0.0.1:%d, http: {address: 127.0.0.1:%d}, "
            "stats: {kind: nginx-rtmp, url: \"http://127.0.0.1:%d/stat\"}}"
            % (n, p.rtmp_port, p.http_port, p.http_port) for n, p in self.origins.items())
        f.rtmplb("""
listeners:
  - {name: web, address: 127.0.0.1:%d, mode: http}
admin: {address: 127.0.0.1:%d, public_read: true}
pools:
  origins:
    health: {type: tcp, interval: 300ms, timeout: 200ms, rise: 1, fall: 2}
    nodes: [%s]
routes:
  - {name: play, pool: origins, policy: stream_location}
""" % (self.web, self.admin, nodes), wait_ports=[self.web])

    def origin_requests(self, name, stream):
        path = os.path.join(self.origins[name].prefix, "logs", "access.log")
        try:
            with open(path) as f:
                return re.findall(r'"GET (/live/%s[^ ]*) ' % re.escape(stream), f.read())
        except OSError:
            return []

    def test_hls_playlist_and_segments_reach_the_origin_holding_the_stream(self):
        # Live on o2 only (published to it directly): the stats poll finds it.
        o2 = self.origins["o2"]
        self.fleet.publish("rtmp://127.0.0.1:%d/live/show" % o2.rtmp_port)
        wait_for(lambda: os.path.exists(os.path.join(o2.prefix, "hls", "show.m3u8")), 30,
                 "o2 writing HLS for show", 0.2)

        def located():
            url = ("http://127.0.0.1:%d/api/v1/locate?app=live&stream=show&listener=web"
                   % self.admin)
            with urllib.request.urlopen(url, timeout=5) as r:
                return json.load(r).get("node") == "o2"
        wait_for(located, 30, "the router to locate show on o2", 0.1)
        frames = self.fleet.play_frames("http://127.0.0.1:%d/live/show.m3u8" % self.web, 50,
                                        name="hls", timeout=60)
        self.assertGreaterEqual(frames, 50)
        # GStreamer's hlsdemux (through playbin) too.
        p = self.fleet.spawn("gst-hls", [
            "gst-launch-1.0", "-e", "-v", "playbin",
            "uri=http://127.0.0.1:%d/live/show.m3u8" % self.web,
            "video-sink=fakesink name=vsink silent=false sync=false",
            "audio-sink=fakesink sync=false"])

        def gst_count():
            return sum(1 for l in self.fleet.log_text("gst-hls").splitlines()
                       if "vsink" in l and "last-message = chain" in l)
        self.fleet._play_until(p, gst_count, 25, 60, None)
        self.assertGreaterEqual(gst_count(), 25, self.fleet.log_text("gst-hls")[-2000:])
        on_o2 = self.origin_requests("o2", "show")
        self.assertTrue(any(p.endswith(".m3u8") for p in on_o2), on_o2)
        self.assertGreaterEqual(sum(1 for p in on_o2 if p.endswith(".ts")), 2, on_o2)
        self.assertEqual(self.origin_requests("o1", "show") + self.origin_requests("o3", "show"), [])
        lines = [x for x in harness.access_lines(self.fleet.log_text("rtmplb"))
                 if x.get("stream") == "show"]
        self.assertTrue(lines)
        self.assertEqual({x["node"] for x in lines}, {"o2"})


if __name__ == "__main__":
    harness.main()
