"""Nodes that misbehave, black box, with small fake servers in Python.

Health probes: a node that accepts and stays silent, answers HTTP 500,
answers garbage instead of HTTP, answers the RTMP probe's connect with
_error, or sends a bad S0: each is marked down with the right check= and
reason in the log, and down in GET /api/v1/upstreams and /metrics; a node
that answers properly stays up.

Stats documents are untrusted: a 64 MiB body (with and without a
Content-Length), a body trickled at 1 byte/s, the entity-amplification
document and JSON nested 10000 deep: each poll is reported failed with its
reason, and rtmplb's resident memory stays bounded."""

import json
import os
import re
import socket
import time
import unittest
import urllib.request

import harness
import rtmpfake
from harness import Fleet, free_port

INTERVAL, TIMEOUT = 600, 400
# The rtmp pool's probes share the control thread with the 8 MiB stats bodies
# being refused; under ASan on a busy machine those stall it for longer than
# 400 ms, and a good node would time out. Its own, roomier timing.
RTMP_INTERVAL, RTMP_TIMEOUT = 2500, 2000
RSS_BOUND_KIB = 20 * 1024


def read_request(conn, timeout=5.0):
    """Reads an HTTP request head (bounded); returns it."""
    deadline = time.monotonic() + timeout
    got = b""
    while b"\r\n\r\n" not in got and len(got) < 65536:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        conn.sock.settimeout(left)
        d = conn.sock.recv(4096)
        if not d:
            break
        got += d
    return got


def amplification_doc():
    """The audit's kind of document: libxml2's own amplification check lets
    it through, and each stream name is 1 MB once its entities are expanded
    (222 KB in all; 500 MB allocated per poll if expanded)."""
    head = ('<?xml version="1.0"?>\n<!DOCTYPE rtmp [\n<!ENTITY e0 "%s">\n<!ENTITY e1 "%s">\n]>\n'
            '<rtmp><server><application><name>live</name><live>' % ("0" * 100, "&e0;" * 100))
    body = "".join("<stream><name>%s</name><publishing/></stream>" % ("&e1;" * 100)
                   for _ in range(500))
    return (head + body + "</live></application></server></rtmp>\n").encode()


def deep_json():
    return b'{"code":0,"streams":[' + b'{"a":' * 10000 + b'1' + b'}' * 10000 + b']}'


def http_script(mode):
    def script(c):
        if mode == "silent":
            return  # hold: the connection stays open, nothing is said
        read_request(c)
        s = c.sock
        if mode == "500":
            s.sendall(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 5\r\n"
                      b"Connection: close\r\n\r\noops\n")
        elif mode == "garbage":
            s.sendall(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\nProtocol mismatch.\r\n")
        elif mode == "big":  # 64 MiB, no length: read until close
            s.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nConnection: close\r\n\r\n"
                      b"<rtmp>")
            chunk = b"<x/>" * (1 << 18)  # 1 MiB
            for _ in range(64):
                s.sendall(chunk)
        elif mode == "big_cl":
            s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 67108864\r\nConnection: close\r\n\r\n")
            chunk = b" " * (1 << 20)
            for _ in range(64):
                s.sendall(chunk)
        elif mode == "trickle":  # a byte a second, at most 30
            s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n")
            for _ in range(30):
                s.sendall(b" ")
                time.sleep(1.0)
        elif mode in ("amplify", "deep"):
            doc = amplification_doc() if mode == "amplify" else deep_json()
            s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                      % len(doc) + doc)
    return script


def rtmp_script(mode):
    def script(c):
        if mode == "silent":
            return
        c.read_c0c1()
        if mode == "bad_s0":
            c.sock.sendall(b"\x06" + bytes(1536 * 2))
            return
        c.sock.sendall(c.s0s1s2())
        c.read_c2()
        c.read_commands(until=("connect",))
        tid = c.tid_of("connect")
        if mode == "error":
            c.sock.sendall(rtmpfake.command(
                "_error", tid, None,
                {"level": "error", "code": "NetConnection.Connect.Rejected",
                 "description": "no such application"}))
        else:
            c.sock.sendall(rtmpfake.connect_preamble() + rtmpfake.connect_result(tid))
    return script


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class MisbehavingNodes(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        f = cls.fleet = Fleet()
        cls.addClassCleanup(f.stop)
        cls.fakes = {}

        def fake(name, script, hold):
            o = rtmpfake.FakeOrigin(script, name=name, hold=hold)
            f.threads.append(o)
            cls.fakes[name] = o
            return o.port
        http = {m: fake("h-" + m, http_script(m), m == "silent")
                for m in ("silent", "500", "garbage")}
        rtmp = {m: fake("r-" + m, rtmp_script(m), True)
                for m in ("silent", "error", "bad_s0", "ok")}
        stats = {m: fake("s-" + m, http_script(m), False)
                 for m in ("big", "big_cl", "trickle", "amplify", "deep")}
        cls.front, cls.admin = free_port(), free_port()
        unused = free_port()
        lines = ["workers: 1", "log: {level: info}",
                 "admin: {address: 127.0.0.1:%d, public_read: true}" % cls.admin,
                 "listeners: [{name: rtmp, address: 127.0.0.1:%d}]" % cls.front,
                 "pools:",
                 "  httpchk:",
                 "    health: {type: http, url: /health, interval: %dms, timeout: %dms, rise: 1, fall: 1}"
                 % (INTERVAL, TIMEOUT),
                 "    nodes:"]
        for m, port in http.items():
            lines.append('      - {name: h-%s, address: 127.0.0.1:%d, stats: {kind: nginx-rtmp, '
                         'url: "http://127.0.0.1:%d/stat"}}' % (m, unused, port))
        lines += ["  rtmpchk:",
                  "    health: {type: rtmp, app: live, interval: %dms, timeout: %dms, rise: 1, fall: 1}"
                  % (RTMP_INTERVAL, RTMP_TIMEOUT),
                  "    nodes:"]
        for m, port in rtmp.items():
            lines.append("      - {name: r-%s, address: 127.0.0.1:%d}" % (m, port))
        lines += ["  stats:", "    nodes:"]
        for m, port in stats.items():
            kind = "srs" if m == "deep" else "nginx-rtmp"
            path = "/api/v1/streams" if m == "deep" else "/stat"
            lines.append('      - {name: s-%s, address: 127.0.0.1:%d, stats: {kind: %s, '
                         'url: "http://127.0.0.1:%d%s"}}' % (m, unused, kind, port, path))
        lines += ["routes:", "  - {name: all, pool: rtmpchk}", ""]
        cls.t0 = time.monotonic()
        cls.lb = f.rtmplb("\n".join(lines), wait_ports=[cls.front])
        cls.rss_start = rss_kib(cls.lb.pid)

    def log(self):
        return self.fleet.log_text("rtmplb")

    def wait_line(self, pattern, timeout=15):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(pattern, self.log())
            if m:
                return m
            time.sleep(0.05)
        self.fail("no %r in the log within %ss:\n%s" % (pattern, timeout, self.log()[-3000:]))

    def get(self, path):
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (self.admin, path), timeout=10) as r:
            return r.read().decode()

    def node_state(self, pool, node):
        doc = json.loads(self.get("/api/v1/upstreams"))
        pools = doc.get("pools", doc) if isinstance(doc, dict) else doc
        for p in pools:
            if p.get("name") == pool:
                for n in p.get("nodes", []):
                    if n.get("name") == node:
                        return n.get("state")
        self.fail("no %s/%s in /api/v1/upstreams: %s" % (pool, node, doc))

    def assert_down(self, pool, node, check, detail):
        m = self.wait_line(r"node_down pool=%s node=%s check=%s reason=(\"[^\"]*\"|\S+) "
                           r"detail=(\"[^\"]*\"|\S+)" % (pool, re.escape(node), check))
        print("%s/%s: check=%s reason=%s detail=%s" % (pool, node, check, m.group(1), m.group(2)))
        self.assertRegex(m.group(2), detail)
        self.assertEqual(self.node_state(pool, node), "down")
        metrics = self.get("/metrics")
        self.assertRegex(metrics, r'rtmplb_probe_results_total\{[^}]*node="%s"[^}]*result="%s"\} [1-9]'
                         % (re.escape(node), check))

    # -- health probes ---------------------------------------------------------
    def test_http_silent_is_l7_timeout(self):
        self.assert_down("httpchk", "h-silent", "L7_TIMEOUT", r"no answer within \d+ms")

    def test_http_500_is_l7_http_status(self):
        self.assert_down("httpchk", "h-500", "L7_HTTP_STATUS", r"HTTP 500")

    def test_http_garbage_is_l7_http_protocol(self):
        self.assert_down("httpchk", "h-garbage", "L7_HTTP_PROTOCOL", r"HPE_")

    def test_rtmp_silent_is_l7_timeout(self):
        self.assert_down("rtmpchk", "r-silent", "L7_TIMEOUT", r"no answer within \d+ms")

    def test_rtmp_error_to_connect_is_l7_rtmp_reject(self):
        self.assert_down("rtmpchk", "r-error", "L7_RTMP_REJECT",
                         r"_error: NetConnection.Connect.Rejected \(no such application\)")

    def test_rtmp_bad_s0_is_l6_handshake(self):
        self.assert_down("rtmpchk", "r-bad_s0", "L6_RTMP_HANDSHAKE", r"S0")

    def test_rtmp_good_node_stays_up(self):
        # Its neighbours have failed by now; it has passed probe after probe.
        self.wait_line(r"node_down pool=rtmpchk node=r-error ")
        time.sleep(3 * RTMP_INTERVAL / 1000.0)
        self.assertNotRegex(self.log(), r"node_down pool=rtmpchk node=r-ok ")
        self.assertEqual(self.node_state("rtmpchk", "r-ok"), "up")
        self.assertGreaterEqual(self.fakes["r-ok"].accepted(), 3)

    # -- stats documents -------------------------------------------------------------
    def stats_failed(self, node, error, timeout=20):
        m = self.wait_line(r"stats_failed pool=stats node=%s url=\S+ error=(\"[^\"]*\"|\S+)"
                           % re.escape(node), timeout)
        print("%s: stats_failed error=%s (%.1f s after start)"
              % (node, m.group(1), time.monotonic() - self.t0))
        self.assertRegex(m.group(1), error)

    def test_stats_64mib_body(self):
        self.stats_failed("s-big", r"body over 8388608 bytes")

    def test_stats_64mib_content_length(self):
        self.stats_failed("s-big_cl", r"Content-Length 67108864 over 8388608 bytes")

    def test_stats_trickled_body(self):
        self.stats_failed("s-trickle", r"no whole response within \d+ms \(\d+ body bytes so far\)")

    def test_stats_entity_amplification(self):
        self.stats_failed("s-amplify", r"DOCTYPE")

    def test_stats_json_10000_deep(self):
        self.stats_failed("s-deep", r"nested deeper than 16")

    def test_zz_rss_bounded(self):
        # Runs last (names sort): every stats node has failed several polls.
        for n in ("s-big", "s-big_cl", "s-trickle", "s-amplify", "s-deep"):
            self.wait_line(r"stats_failed pool=stats node=%s " % n, 20)
        polls_until = time.monotonic() + 8  # four more polls of each
        while time.monotonic() < polls_until:
            time.sleep(0.5)
        rss = rss_kib(self.lb.pid)
        print("rtmplb RSS: %d KiB at start, %d KiB after the polls (+%d KiB); %d+%d big bodies served"
              % (self.rss_start, rss, rss - self.rss_start, self.fakes["s-big"].accepted(),
                 self.fakes["s-big_cl"].accepted()))
        self.assertGreaterEqual(self.fakes["s-big"].accepted(), 3)
        if os.environ.get("RTMPLB_SANITIZED") != "1":  # ASan's allocator keeps freed memory
            self.assertLess(rss - self.rss_start, RSS_BOUND_KIB)
        self.assertIsNone(self.lb.poll())


if __name__ == "__main__":
    harness.main()
