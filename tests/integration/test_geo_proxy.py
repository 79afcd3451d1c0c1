"""Geo routing and PROXY protocol, black box: a MaxMind database built at
test time (Debian's libmaxmind-db-writer-perl), real nginx-rtmp origins, and
a test client that sends PROXY headers claiming addresses in Japan, the US,
Germany, or nowhere. Where each publish lands is read from the origins' own
/stat pages."""

import os
import re
import signal
import socket
import subprocess
import threading
import time
import unittest

import harness
from harness import Fleet, access_lines, free_port, nginx_streams, recv_closed, wait_for

JP, US, DE, HK, NOWHERE = "203.0.113.7", "198.51.100.7", "192.0.2.7", "100.64.0.7", "100.100.1.1"


closed = recv_closed


def make_mmdb(path, *args):
    script = os.path.join(harness.ARGS.source, "tests", "geo", "make_test_mmdb.pl")
    subprocess.run(["perl", script, path, *args], check=True, timeout=60)


class GeoProxy(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        f = cls.fleet = Fleet()
        cls.addClassCleanup(f.stop)
        cls.mmdb = os.path.join(f.dir, "geo.mmdb")
        make_mmdb(cls.mmdb)
        cls.o = {n: f.nginx_origin(n, free_port(), free_port(), extra_app="")
                 for n in ("origin-jp", "origin-us", "origin-eu")}
        cls.o["origin-pp"] = f.nginx_origin("origin-pp", free_port(), free_port(), extra_app="",
                                            listen_extra=" proxy_protocol")
        cls.port = {n: free_port() for n in ("edge", "strict", "near", "relay")}
        addr = lambda n: "127.0.0.1:%d" % cls.o[n].rtmp_port
        cls.conf_text = """
workers: 2
timeouts: {handshake: 2s}
geo: {database: %s}
listeners:
  - {name: edge, address: 127.0.0.1:%d, proxy_protocol: any}
  - {name: strict, address: 127.0.0.1:%d, proxy_protocol: v2}
  - {name: near, address: 127.0.0.1:%d, proxy_protocol: any}
  - {name: relay, address: 127.0.0.1:%d, proxy_protocol: v1}
pools:
  tokyo: {nodes: [{name: origin-jp, address: %s}]}
  us: {nodes: [{name: origin-us, address: %s}]}
  eu: {nodes: [{name: origin-eu, address: %s}]}
  world:
    nodes:
      - {name: origin-eu, address: %s, location: {lat: 50.11, lon: 8.68}}
      - {name: origin-jp, address: %s, location: {country: JP}}
      - {name: origin-us, address: %s, location: {lat: 39.04, lon: -77.49}}
  relay: {nodes: [{name: origin-pp, address: %s, send_proxy: v1}]}
routes:
  - {name: relay, match: {listener: relay}, pool: relay}
  - {name: nearest, match: {listener: near}, pool: world, policy: geo_nearest}
  - {name: asia, match: {country: [JP, KR]}, pool: tokyo}
  - {name: america, match: {continent: [NA]}, pool: us}
  - {name: default, pool: eu}
""" % (cls.mmdb, cls.port["edge"], cls.port["strict"], cls.port["near"], cls.port["relay"],
       addr("origin-jp"), addr("origin-us"), addr("origin-eu"), addr("origin-eu"),
       addr("origin-jp"), addr("origin-us"), addr("origin-pp"))
        cls.lb = f.rtmplb(cls.conf_text, wait_ports=[cls.port["edge"]])
    def publish(self, listener, claim, stream, version=1, hold_ms=6000):
        """Publishes through rtmplb claiming `claim`; returns the probe (a
        fleet process: stopped by PID even if the test fails first). The hold
        outlasts where()'s patience on a busy machine; a probe whose session
        ends before the hold does prints an error, not "ok"."""
        return self.fleet.probe(["--proxy-v%d" % version, claim, "--publish", "--hold",
                                 str(hold_ms), "127.0.0.1", str(self.port[listener]), "live",
                                 stream], name="probe-" + stream)

    def held_ok(self, p, what):
        rc, out = self.fleet.probe_result(p)
        self.assertEqual(rc, 0, "%s: %s" % (what, out))
        self.assertTrue(out.startswith("ok "), "%s: %s" % (what, out))

    def where(self, stream, timeout=10):
        """The origins where stream is being published."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [n for n, o in self.o.items()
                     if stream in nginx_streams(o.http_port) and nginx_streams(o.http_port)[stream][0]]
            if found:
                return found
            time.sleep(0.1)
        return []

    def check_lands(self, listener, cases, version=1):
        probes = [(self.publish(listener, claim, stream, version), stream, want)
                  for claim, stream, want in cases]
        try:
            for p, stream, want in probes:
                self.assertEqual(self.where(stream), [want], stream)
        finally:
            for p, stream, want in probes:
                self.held_ok(p, stream)

    def test_1_publishes_land_on_the_line_for_their_country(self):
        self.check_lands("edge", [(JP, "g-jp", "origin-jp"), (US, "g-us", "origin-us"),
                                  (DE, "g-de", "origin-eu"), (NOWHERE, "g-none", "origin-eu")])
        # PROXY v2 on the same "any" listener.
        self.check_lands("edge", [(JP, "g2-jp", "origin-jp"), (US, "g2-us", "origin-us")], version=2)
        sessions = {x["stream"]: x for x in access_lines(self.fleet.log_text("rtmplb"))
                    if x.get("stream", "").startswith("g")}
        self.assertEqual(sessions["g-jp"]["client"], JP + ":40000")  # the claimed address
        self.assertEqual(sessions["g-jp"]["country"], "JP")
        self.assertEqual(sessions["g-jp"]["route"], "asia")
        self.assertEqual(sessions["g-us"]["route"], "america")
        self.assertEqual(sessions["g-none"]["country"], "-")  # unmapped: first non-geo route
        self.assertEqual(sessions["g-none"]["route"], "default")

    def test_2_geo_nearest_orders_by_distance(self):
        # origin-jp declares only its country: it sits at JP's centroid from
        # the database. HK has no location in it, nor does NOWHERE: those
        # clients get config order (origin-eu first).
        self.check_lands("near", [(JP, "n-jp", "origin-jp"), (US, "n-us", "origin-us"),
                                  (DE, "n-de", "origin-eu"), (HK, "n-hk", "origin-eu"),
                                  (NOWHERE, "n-none", "origin-eu")])

    def test_3_missing_or_wrong_header_is_refused_and_logged(self):
        for listener, first, why in (
                ("edge", b"\x03" + bytes(1536), "no PROXY header"),
                ("strict", b"PROXY TCP4 203.0.113.7 127.0.0.1 1 2\r\n\x03", "no PROXY v2 header"),
                ("edge", b"PROXY TCP4 203.0.113 127.0.0.1 1 2\r\n", "PROXY v1 address is not IPv4")):
            s = socket.create_connection(("127.0.0.1", self.port[listener]), timeout=10)
            s.sendall(first)
            self.assertTrue(closed(s))  # closed, no RTMP answer
            s.close()
            # Refused for this reason (at once, not by the 2 s deadline).
            pattern = r"proxy_protocol .*listener=%s error=\"%s\"" % (listener, why)
            wait_for(lambda: re.search(pattern, self.fleet.log_text("rtmplb")), 10, pattern)
        # A header that never completes: the handshake deadline (2 s) ends it.
        # Its clock starts at accept: time it from before connect.
        start = time.monotonic()
        s = socket.create_connection(("127.0.0.1", self.port["edge"]), timeout=20)
        s.sendall(b"PROXY TCP4 203.0.113.7 ")
        self.assertTrue(closed(s))
        took = time.monotonic() - start
        s.close()
        self.assertGreater(took, 1.9)
        self.assertLess(took, 12.0)

    def test_4_send_proxy_shows_the_real_client_to_the_origin(self):
        p = self.publish("relay", "203.0.113.50", "via-relay")
        try:
            self.assertEqual(self.where("via-relay"), ["origin-pp"])
            import urllib.request
            with urllib.request.urlopen("http://127.0.0.1:%d/stat" % self.o["origin-pp"].http_port) as r:
                stat = r.read().decode()
            self.assertIn("<address>203.0.113.50</address>", stat)
        finally:
            self.held_ok(p, "via-relay")

    def test_4b_send_proxy_v2_through_a_second_rtmplb(self):
        # nginx-rtmp reads only v1, so v2 is checked against rtmplb itself:
        # outer (send_proxy: v2) -> inner (proxy_protocol: v2, tcp) -> origin.
        inner_port, outer_port = free_port(), free_port()
        self.fleet.rtmplb("""
listeners: [{name: in, address: 127.0.0.1:%d, mode: tcp, proxy_protocol: v2}]
pools: {o: {nodes: [{name: origin-eu, address: 127.0.0.1:%d}]}}
routes: [{name: r, pool: o}]
""" % (inner_port, self.o["origin-eu"].rtmp_port), name="inner", wait_ports=[inner_port])
        self.fleet.rtmplb("""
listeners: [{name: out, address: 127.0.0.1:%d, proxy_protocol: v1}]
pools: {i: {nodes: [{name: inner, address: 127.0.0.1:%d, send_proxy: v2}]}}
routes: [{name: r, pool: i}]
""" % (outer_port, inner_port), name="outer", wait_ports=[outer_port])
        p = self.fleet.probe(["--proxy-v1", "203.0.113.77", "--publish", "--hold", "6000",
                              "127.0.0.1", str(outer_port), "live", "chain"], name="probe-chain")
        try:
            self.assertEqual(self.where("chain"), ["origin-eu"])
        finally:
            self.held_ok(p, "chain")
        inner = wait_for(lambda: access_lines(self.fleet.log_text("inner")), 10,
                         "the inner rtmplb's access-log line")
        self.assertEqual(inner[-1]["client"], "203.0.113.77:40000")  # came through v2

    def test_5_sighup_reloads_the_database_without_dropping_sessions(self):
        held = self.publish("edge", JP, "r-held", hold_ms=15000)
        self.assertEqual(self.where("r-held"), ["origin-jp"])
        moved = os.path.join(self.fleet.dir, "geo-moved.mmdb")
        make_mmdb(moved, "moved")
        os.replace(moved, self.mmdb)
        loaded = self.fleet.log_text("rtmplb").count("geo database")
        self.lb.send_signal(signal.SIGHUP)
        wait_for(lambda: self.fleet.log_text("rtmplb").count("geo database") > loaded, 10,
                 "the reloaded geo database")
        # New sessions follow the new database: 203.0.113.0/24 is now in the US.
        self.check_lands("edge", [(JP, "r-after", "origin-us")])
        # The session from before the reload is still publishing.
        self.assertEqual(self.where("r-held"), ["origin-jp"])
        # The held session lasted its whole hold across the reload.
        self.held_ok(held, "r-held")
        make_mmdb(self.mmdb)  # restore for other tests
        loaded = self.fleet.log_text("rtmplb").count("geo database")
        self.lb.send_signal(signal.SIGHUP)
        wait_for(lambda: self.fleet.log_text("rtmplb").count("geo database") > loaded, 10,
                 "the restored geo database")

    def test_6_bad_database_fails_check_and_start(self):
        cfg = os.path.join(self.fleet.dir, "bad.yaml")
        junk = os.path.join(self.fleet.dir, "junk.mmdb")
        with open(junk, "wb") as fh:
            fh.write(os.urandom(4096))
        for db, why in (("/nonexistent/geo.mmdb", "Error opening the specified MaxMind DB file"),
                        (junk, "The MaxMind DB file contains invalid metadata")):
            with open(cfg, "w") as fh:
                fh.write(self.conf_text.replace(self.mmdb, db))
            r = subprocess.run([harness.ARGS.rtmplb, "-t", "-c", cfg], capture_output=True,
                               text=True, timeout=20)
            self.assertEqual(r.returncode, 2, r.stderr)
            self.assertRegex(r.stderr, r"bad.yaml:4:17: geo.database: cannot open %s: %s"
                             % (re.escape(db), why))
            r = subprocess.run([harness.ARGS.rtmplb, "-c", cfg], capture_output=True, text=True,
                               timeout=20)
            self.assertEqual(r.returncode, 2)
            self.assertIn("geo.database: cannot open " + db, r.stderr)


if __name__ == "__main__":
    harness.main()
