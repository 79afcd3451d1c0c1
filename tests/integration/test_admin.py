"""The admin API, black box: auth, overrides (weight, state, route pool),
their persistence across SIGHUP and restarts, all-or-nothing reload over
the API, live sessions from the workers, /metrics (promtool and a real
Prometheus), locate, and bad input. RTMP cases use real nginx-rtmp origins
and ffmpeg."""

import concurrent.futures
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import unittest
import urllib.parse
import urllib.request

import harness
from harness import (Fleet, TcpBackend, access_lines, ask_name, free_port, nginx_streams,
                     wait_for, wait_port)

TOKEN = "s3cret-token-for-tests"


class Api:
    """A tiny client of the admin API (one request per connection)."""

    def __init__(self, port, token=TOKEN):
        self.port = port
        self.token = token

    def call(self, method, path, body=None, token=None, raw=None, headers=None):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=15)
        h = dict(headers or {})
        tok = self.token if token is None else token
        if tok:
            h["Authorization"] = "Bearer " + tok
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        if data is not None:
            h["Content-Type"] = "application/json"
        try:
            c.request(method, path, body=data, headers=h)
            r = c.getresponse()
            text = r.read().decode("utf-8", "replace")
        finally:
            c.close()
        try:
            doc = json.loads(text)
        except ValueError:
            doc = text
        return r.status, doc

    def get(self, path, **kw):
        return self.call("GET", path, **kw)

    def post(self, path, body, **kw):
        return self.call("POST", path, body, **kw)

    def node(self, pool, node):
        st, doc = self.get("/api/v1/upstreams")
        assert st == 200, doc
        for p in doc["pools"]:
            for n in p["nodes"]:
                if p["name"] == pool and n["name"] == node:
                    return n
        raise AssertionError("no node %s/%s" % (pool, node))


def admin_section(port, fleet, state=True, extra=""):
    tok = os.path.join(fleet.dir, "token")
    if not os.path.exists(tok):
        with open(tok, "w") as f:
            f.write(TOKEN + "\n")
        os.chmod(tok, 0o600)
    lines = ["admin:", "  address: 127.0.0.1:%d" % port, "  token_file: %s" % tok]
    if state:
        lines.append("  state_file: %s" % os.path.join(fleet.dir, "state.json"))
    if extra:
        lines.append(extra)
    return "\n".join(lines)


def tcp_config(front, admin, nodes, access_log=None, workers=2, health=None):
    lines = ["workers: %d" % workers, admin]
    if access_log:
        lines += ["log:", "  access_log: %s" % access_log]
    lines += ["listeners:", "  - {name: front, address: 127.0.0.1:%d, mode: tcp}" % front,
              "pools:", "  p:"]
    if health:
        lines.append("    health: %s" % health)
    lines.append("    nodes:")
    for name, port in nodes:
        lines.append("      - {name: %s, address: 127.0.0.1:%d}" % (name, port))
    lines += ["routes:", "  - {name: all, pool: p, policy: weighted}", ""]
    return "\n".join(lines)


class AdminTcp(unittest.TestCase):
    def setUp(self):
        self.fleet = Fleet()
        self.front = free_port()
        self.aport = free_port()
        self.api = Api(self.aport)

    def tearDown(self):
        self.fleet.stop()

    def backend(self, name):
        b = TcpBackend(name)
        self.fleet.threads.append(b)
        return b

    def start(self, nodes, access_log=None, name="rtmplb", health=None):
        cfg = tcp_config(self.front, admin_section(self.aport, self.fleet), nodes, access_log,
                         health=health)
        p = self.fleet.rtmplb(cfg, name=name, wait_ports=[self.front])
        wait_port(self.aport, proc=p)
        return p

    def names(self, n):
        with concurrent.futures.ThreadPoolExecutor(16) as ex:
            return list(ex.map(lambda _: ask_name(self.front), range(n)))

    def test_every_mutation_needs_the_token(self):
        a = self.backend("a")
        self.start([("a", a.port)])
        mutations = [("POST", "/api/v1/pools/p/nodes/a", {"weight": 2}),
                     ("POST", "/api/v1/routes/all", {"policy": "least_sessions"}),
                     ("DELETE", "/api/v1/overrides", None),
                     ("POST", "/api/v1/reload", None)]
        for method, path, body in mutations:
            st, doc = self.api.call(method, path, body, token="")
            self.assertEqual(st, 401, (path, doc))
            self.assertIn("error", doc)
            st, doc = self.api.call(method, path, body, token="wrong-token")
            self.assertEqual(st, 403, (path, doc))
        # GET needs it too without public_read.
        self.assertEqual(self.api.get("/api/v1/upstreams", token="")[0], 401)
        self.assertEqual(self.api.get("/api/v1/upstreams")[0], 200)
        # Nothing changed.
        self.assertEqual(self.api.node("p", "a")["weight"], 1)
        ovr = self.api.get("/api/v1/overrides")[1]
        self.assertEqual((ovr["nodes"], ovr["routes"]), ([], []))

    def test_weight_override_in_wrr_and_survives_sighup_and_restart(self):
        a, b = self.backend("a"), self.backend("b")
        lb = self.start([("a", a.port), ("b", b.port)])
        st, doc = self.api.post("/api/v1/pools/p/nodes/a", {"weight": 3})
        self.assertEqual(st, 200, doc)
        self.assertEqual(doc["override"], {"weight": 3})
        got = self.names(300)
        counts = {n: got.count(n) for n in "ab"}
        print("300 tcp sessions with a at weight 3:", counts)
        self.assertEqual(sum(counts.values()), 300)
        self.assertLessEqual(abs(counts["a"] - 225), 225 * 0.05, counts)

        lb.send_signal(signal.SIGHUP)
        wait_for(lambda: "reloaded" in self.fleet.log_text("rtmplb"), 10, "reload")
        node = self.api.node("p", "a")
        self.assertEqual((node["weight"], node["config_weight"]), (3, 1))
        self.assertEqual(node["overridden"], ["weight"])

        self.fleet.stop_proc(lb)
        with open(os.path.join(self.fleet.dir, "state.json")) as f:
            saved = json.load(f)
        self.assertEqual(saved["nodes"][0]["weight"], 3)
        self.start([("a", a.port), ("b", b.port)], name="rtmplb2")
        self.assertEqual(self.api.node("p", "a")["weight"], 3)
        got = self.names(300)
        self.assertLessEqual(abs(got.count("a") - 225), 225 * 0.05, got.count("a"))
        # Cleared: back to the file's values, and the state file says so.
        st, doc = self.api.call("DELETE", "/api/v1/overrides")
        self.assertEqual((st, doc["cleared"]), (200, 1))
        self.assertEqual(self.api.node("p", "a")["weight"], 1)
        with open(os.path.join(self.fleet.dir, "state.json")) as f:
            self.assertEqual(json.load(f)["nodes"], [])

    def test_disable_closes_sessions_with_admin_disabled(self):
        a, b = self.backend("a"), self.backend("b")
        log = os.path.join(self.fleet.dir, "access.log")
        self.start([("a", a.port), ("b", b.port)], access_log=log)
        socks = []
        for _ in range(6):
            s = socket.create_connection(("127.0.0.1", self.front), timeout=10)
            s.makefile("rb").readline()
            socks.append(s)
        # Each worker rotates on its own: the node's counter says how many
        # went to a, and the workers' own lists must agree.
        on_a = self.api.node("p", "a")["sessions"]
        self.assertGreaterEqual(on_a, 1)
        st, doc = self.api.get("/api/v1/sessions?node=a")
        self.assertEqual(st, 200, doc)
        self.assertEqual(doc["total"], on_a, doc)
        self.assertTrue(all(x["node"] == "a" and x["state"] == "splicing" for x in doc["sessions"]))
        self.assertLessEqual({x["worker"] for x in self.api.get("/api/v1/sessions")[1]["sessions"]},
                             {0, 1})
        st, doc = self.api.get("/api/v1/sessions?limit=2&offset=1")
        self.assertEqual((doc["total"], len(doc["sessions"])), (6, 2))

        st, doc = self.api.post("/api/v1/pools/p/nodes/a", {"state": "disabled"})
        self.assertEqual(st, 200, doc)
        wait_for(lambda: self.api.node("p", "a")["sessions"] == 0, 10, "a's sessions closed")
        closed = 0
        for s in socks:
            s.settimeout(0.5)
            try:
                if s.recv(10) == b"":
                    closed += 1
            except socket.timeout:
                pass
            s.close()
        self.assertEqual(closed, on_a)
        wait_for(lambda: os.path.exists(log) and
                 sum(1 for l in access_lines(open(log).read())
                     if l.get("reason") == "admin_disabled") == on_a, 10, "admin_disabled lines")
        lines = access_lines(open(log).read())
        self.assertTrue(all(l["node"] == "a" for l in lines if l["reason"] == "admin_disabled"))
        # New sessions avoid it.
        self.assertEqual(set(self.names(20)), {"b"})
        st, ev = self.api.get("/api/v1/events")
        self.assertTrue(any(e["kind"] == "override" and e.get("node") == "a"
                            for e in ev["events"]), ev)

    def test_refused_reload_over_the_api_changes_nothing(self):
        a, b = self.backend("a"), self.backend("b")
        log = os.path.join(self.fleet.dir, "access.log")
        health = "{type: tcp, interval: 300ms, timeout: 200ms, rise: 1, fall: 1}"
        lb = self.start([("a", a.port)], access_log=log, health=health)
        with open(lb.conf_path) as f:
            good = f.read()
        # Bad YAML: located errors, 4xx.
        with open(lb.conf_path, "w") as f:
            f.write(good.replace("pools:", "pools: [oops\n"))
        st, doc = self.api.post("/api/v1/reload", None)
        self.assertGreaterEqual(st, 400, doc)
        self.assertLess(st, 500, doc)
        self.assertTrue(any(re.match(r".+\.yaml:\d+:\d+: ", e) for e in doc["errors"]), doc)
        # An access log that cannot be opened, in a file that adds node b.
        bad = tcp_config(self.front, admin_section(self.aport, self.fleet),
                         [("a", a.port), ("b", b.port)],
                         access_log=os.path.join(self.fleet.dir, "no", "such", "dir.log"),
                         health=health)
        with open(lb.conf_path, "w") as f:
            f.write(bad)
        st, doc = self.api.post("/api/v1/reload", None)
        self.assertEqual(st, 422, doc)
        self.assertIn("access_log", doc["error"])
        st, up = self.api.get("/api/v1/upstreams")
        self.assertEqual([n["name"] for n in up["pools"][0]["nodes"]], ["a"])
        self.assertEqual(set(self.names(10)), {"a"})
        wait_for(lambda: len(access_lines(open(log).read())) >= 10, 10, "old log still written")
        time.sleep(1.0)  # three probe intervals: a node only in the refused file is never probed
        self.assertEqual(b.accepted, 0)
        st, m = self.api.get("/metrics")
        self.assertIn('rtmplb_reloads_total{result="failed"} 2', m)
        ok_probes = re.search(r'rtmplb_probe_results_total\{pool="p",node="a",result="OK"\} (\d+)', m)
        self.assertTrue(ok_probes and int(ok_probes.group(1)) >= 1, m)
        self.assertIn("rtmplb_probe_duration_seconds_count", m)
        r = subprocess.run(["promtool", "check", "metrics"], input=m, capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertGreater(a.accepted, 10)
        # A good file again: accepted.
        with open(lb.conf_path, "w") as f:
            f.write(good)
        st, doc = self.api.post("/api/v1/reload", None)
        self.assertEqual(st, 200, doc)

    def test_reload_keeps_probes_of_unchanged_nodes(self):
        a = self.backend("a")
        lb = self.start([("a", a.port)], health="{type: tcp, interval: 5s, timeout: 1s}")
        wait_for(lambda: a.accepted >= 1, 10, "first probe")
        time.sleep(0.3)
        before = a.accepted
        for _ in range(10):
            st, doc = self.api.post("/api/v1/reload", None)
            self.assertEqual(st, 200, doc)
        lb.send_signal(signal.SIGHUP)
        time.sleep(1.0)
        # A reload that does not touch the node does not restart its probes:
        # no new probe before the 5 s interval is over.
        self.assertLessEqual(a.accepted - before, 1, "probes restarted by reloads")

    def test_bad_input_is_refused_clearly(self):
        a = self.backend("a")
        self.start([("a", a.port)])
        for body, want in ((b"not json", "not JSON"), (b'{"weight": 2} x', "not JSON"),
                           (b"[1]", "object"), (b'{"weigth": 2}', "unknown"),
                           (b'{"weight": -1}', "weight"), (b'{"weight": 1001}', "weight"),
                           (b'{"state": "sleeping"}', "state"), (b"{}", "")):
            st, doc = self.api.call("POST", "/api/v1/pools/p/nodes/a", raw=body)
            self.assertEqual(st, 400, (body, doc))
            self.assertIn(want, doc["error"])
        self.assertEqual(self.api.post("/api/v1/pools/p/nodes/zz", {"weight": 2})[0], 404)
        self.assertEqual(self.api.post("/api/v1/routes/none", {"pool": "p"})[0], 404)
        self.assertEqual(self.api.post("/api/v1/routes/all", {"pool": "nope"})[0], 400)
        self.assertEqual(self.api.get("/api/v1/nothing")[0], 404)
        self.assertEqual(self.api.call("PUT", "/api/v1/upstreams")[0], 405)
        self.assertEqual(self.api.get("/api/v1/sessions?limit=-1")[0], 400)
        # 1 MiB of headers: 431, and the server goes on.
        s = socket.create_connection(("127.0.0.1", self.aport), timeout=10)
        try:
            s.sendall(b"GET /api/v1/upstreams HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (1 << 20))
        except OSError:
            pass  # the server may close before it all went
        try:
            head = s.recv(200)
        except OSError:
            head = b""
        s.close()
        self.assertTrue(head.startswith(b"HTTP/1.1 431"), head)
        self.assertEqual(self.api.get("/api/v1/upstreams")[0], 200)
        self.assertEqual(self.api.node("p", "a")["weight"], 1)

    def test_keepalive_and_many_connections(self):
        a = self.backend("a")
        self.start([("a", a.port)])
        c = http.client.HTTPConnection("127.0.0.1", self.aport, timeout=10)
        c.connect()
        peer = c.sock.getsockname()
        for i in range(1000):
            c.request("GET", "/api/v1/routes", headers={"Authorization": "Bearer " + TOKEN})
            r = c.getresponse()
            r.read()
            self.assertEqual(r.status, 200)
        self.assertEqual(c.sock.getsockname(), peer)  # one connection
        c.close()

        def one(_):
            try:
                return self.api.get("/api/v1/upstreams")[0]
            except OSError as e:
                return str(e)
        with concurrent.futures.ThreadPoolExecutor(200) as ex:
            got = list(ex.map(one, range(200)))
        print("200 concurrent admin connections:", {s: got.count(s) for s in set(got)})
        self.assertTrue(all(s in (200, 503) for s in got), got)
        self.assertGreaterEqual(got.count(200), 64)
        self.assertEqual(ask_name(self.front), "a")

    def test_metrics_promtool_and_prometheus(self):
        a, b = self.backend("a"), self.backend("b")
        self.start([("a", a.port), ("b", b.port)])
        socks = []
        for _ in range(4):
            s = socket.create_connection(("127.0.0.1", self.front), timeout=10)
            s.makefile("rb").readline()
            socks.append(s)
        # Each worker rotates on its own: ask the API where they went.
        on_a, on_b = self.api.node("p", "a")["sessions"], self.api.node("p", "b")["sessions"]
        self.assertEqual(on_a + on_b, 4)
        st, text = self.api.get("/metrics")
        self.assertEqual(st, 200)
        self.assertIn('rtmplb_node_sessions{pool="p",node="a"} %d' % on_a, text)
        self.assertIn('rtmplb_node_sessions{pool="p",node="b"} %d' % on_b, text)
        self.assertIn('rtmplb_listener_accepted_total{listener="front"} 4', text)
        self.assertIn('rtmplb_route_sessions_total{route="all",role="tcp"} 4', text)
        self.assertIn("rtmplb_preroute_seconds_count 4", text)
        r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

        self.assertIn("rtmplb_pipes_in_use ", text)
        prom = shutil.which("prometheus")
        self.assertIsNotNone(prom, "prometheus is installed by scripts/deps.sh test")
        pport = free_port()
        pdir = os.path.join(self.fleet.dir, "prom")
        os.makedirs(pdir)
        tok = os.path.join(self.fleet.dir, "token")
        with open(os.path.join(pdir, "prometheus.yml"), "w") as f:
            f.write("global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
                    "scrape_configs:\n"
                    "  - job_name: rtmplb\n"
                    "    authorization: {credentials_file: %s}\n"
                    "    static_configs: [{targets: ['127.0.0.1:%d']}]\n" % (tok, self.aport))
        p = self.fleet.spawn("prometheus", [
            prom, "--config.file=" + os.path.join(pdir, "prometheus.yml"),
            "--storage.tsdb.path=" + os.path.join(pdir, "data"),
            "--web.listen-address=127.0.0.1:%d" % pport])
        wait_port(pport, timeout=60, proc=p)
        q = urllib.parse.quote('rtmplb_node_sessions{pool="p",node="b"}')
        url = "http://127.0.0.1:%d/api/v1/query?query=%s" % (pport, q)

        def value():
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    doc = json.load(r)
            except OSError:
                return None
            res = doc.get("data", {}).get("result", [])
            return res[0]["value"][1] if res else None
        wait_for(lambda: value() is not None, 60, "prometheus scraped rtmplb")
        self.assertEqual(value(), str(on_b))
        for s in socks:
            s.close()
        wait_for(lambda: value() == "0", 30, "prometheus sees the sessions end")


# ---- RTMP, with nginx-rtmp origins and ffmpeg -------------------------------

def rtmp_config(front, admin, origins, access_log, workers=2):
    lines = ["workers: %d" % workers, admin, "log:", "  access_log: %s" % access_log,
             "listeners:", "  - {name: rtmp, address: 127.0.0.1:%d, mode: rtmp}" % front,
             "pools:"]
    for pool, nodes in origins.items():
        lines += ["  %s:" % pool, "    nodes:"]
        for name, o in nodes:
            lines.append("      - {name: %s, address: 127.0.0.1:%d}" % (name, o.rtmp_port))
    lines += ["routes:",
              "  - {name: pub, match: {role: publish}, pool: hk, policy: stream_affinity}",
              "  - {name: play, match: {role: play}, pool: hk, policy: stream_location}", ""]
    return "\n".join(lines)


class AdminRtmp(unittest.TestCase):
    def setUp(self):
        self.fleet = Fleet()
        self.front = free_port()
        self.aport = free_port()
        self.api = Api(self.aport)
        self.log = os.path.join(self.fleet.dir, "access.log")

    def tearDown(self):
        self.fleet.stop()

    def origin(self, name):
        return self.fleet.nginx_origin(name, free_port(), free_port())

    def start(self, origins):
        cfg = rtmp_config(self.front, admin_section(self.aport, self.fleet), origins, self.log)
        p = self.fleet.rtmplb(cfg, wait_ports=[self.front])
        wait_port(self.aport, proc=p)
        return p

    def url(self, stream):
        return "rtmp://127.0.0.1:%d/live/%s" % (self.front, stream)

    def where(self, origins, stream, timeout=20):
        """The origin whose /stat shows stream published."""
        found = []

        def look():
            found[:] = [o for o in origins
                        if nginx_streams(o.http_port).get(stream, (False, 0))[0]]
            return found
        wait_for(look, timeout, "%s published on an origin" % stream)
        return found[0]

    def test_admin_abuse_never_stalls_a_play(self):
        a = self.origin("a")
        self.start({"hk": [("a", a)]})
        self.fleet.publish(self.url("cam"), name="pub-cam")
        self.where([a], "cam")
        player = self.fleet.start_play(self.url("cam"), name="viewer")
        self.addCleanup(self.fleet.stop_proc, player)
        wait_for(lambda: self.fleet.frame_count("viewer") >= 25, 40, "the play to start", 0.2)
        before = self.fleet.frame_count("viewer")
        # Slow, huge and broken admin clients, and a crowd, all at once.
        slow = [socket.create_connection(("127.0.0.1", self.aport), timeout=10) for _ in range(20)]
        for c in slow:
            c.sendall(b"GET /api/v1/upstreams HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        big = socket.create_connection(("127.0.0.1", self.aport), timeout=10)
        try:
            big.sendall(b"GET /metrics HTTP/1.1\r\nX-Big: " + b"a" * (1 << 20))
        except OSError:
            pass
        junk = socket.create_connection(("127.0.0.1", self.aport), timeout=10)
        junk.sendall(b"\x16\x03\x01 not http at all\r\n\r\n")

        def one(_):
            try:
                return self.api.get("/metrics")[0]
            except OSError as e:
                return str(e)
        with concurrent.futures.ThreadPoolExecutor(200) as ex:
            got = list(ex.map(one, range(400)))
        for c in slow + [big, junk]:
            c.close()
        self.assertTrue(all(x in (200, 503) for x in got), set(got))
        # The play went on decoding all along, and still does.
        wait_for(lambda: self.fleet.frame_count("viewer") >= before + 50, 40,
                 "50 more frames while the admin server was abused", 0.2)
        self.assertIsNone(player.poll())
        self.assertEqual(self.api.get("/api/v1/upstreams")[0], 200)

    def test_drain_swap_and_locate(self):
        a, b, c = self.origin("a"), self.origin("b"), self.origin("c")
        self.start({"hk": [("a", a), ("b", b)], "sg": [("c", c)]})
        # locate agrees with where real publishes land.
        for i in range(3):
            name = "loc%d" % i
            st, loc = self.api.get("/api/v1/locate?app=live&stream=%s&role=publish" % name)
            self.assertEqual(st, 200, loc)
            self.fleet.publish(self.url(name), name="pub-" + name)
            o = self.where([a, b], name)
            self.assertEqual(loc["url"], "rtmp://127.0.0.1:%d/live/%s" % (o.rtmp_port, name), loc)
        # A play through rtmplb of a stream on a (stream_location).
        on_a = next(n for n in ("loc0", "loc1", "loc2")
                    if nginx_streams(a.http_port).get(n, (False, 0))[0]) \
            if any(nginx_streams(a.http_port).get(n, (False, 0))[0]
                   for n in ("loc0", "loc1", "loc2")) else None
        if on_a is None:
            self.fleet.publish("rtmp://127.0.0.1:%d/live/direct" % a.rtmp_port, name="pub-direct")
            wait_for(lambda: nginx_streams(a.http_port).get("direct", (False, 0))[0], 20,
                     "direct publish on a")
            on_a = "direct"
        play = self.fleet.start_play(self.url(on_a), name="play")
        wait_for(lambda: self.fleet.frame_count("play") >= 25, 40, "play decodes frames")
        st, ss = self.api.get("/api/v1/sessions?node=a")
        self.assertTrue(any(s["role"] == "play" and s["stream"] == on_a for s in ss["sessions"]),
                        ss)
        # Drain a: the play continues, new publishes avoid a.
        st, doc = self.api.post("/api/v1/pools/hk/nodes/a",
                                {"state": "draining", "close_after": "6s"})
        self.assertEqual(st, 200, doc)
        before = self.fleet.frame_count("play")
        for i in range(3):
            name = "after%d" % i
            self.fleet.publish(self.url(name), name="pub-" + name)
            self.assertIs(self.where([a, b], name), b)
        self.assertGreater(self.fleet.frame_count("play"), before)
        st, loc = self.api.get("/api/v1/locate?app=live&stream=zz&role=publish")
        self.assertIn({"node": "a", "reason": "draining"}, loc["skipped"])
        # The deadline ends the play with admin_drained.
        wait_for(lambda: "admin_drained" in open(self.log).read(), 30, "drain deadline")
        lines = [l for l in access_lines(open(self.log).read()) if l["reason"] == "admin_drained"]
        self.assertTrue(any(l["role"] == "play" and l["node"] == "a" for l in lines), lines)
        wait_for(lambda: play.poll() is not None or
                 self.fleet.frame_count("play") > 0, 5, "player saw the end")
        # Swap the publish route onto line sg: the next publish lands on c.
        st, doc = self.api.post("/api/v1/routes/pub", {"pool": "sg"})
        self.assertEqual((st, doc["pool"]), (200, "sg"), doc)
        self.fleet.publish(self.url("swapped"), name="pub-swapped")
        self.assertIs(self.where([a, b, c], "swapped"), c)
        st, routes = self.api.get("/api/v1/routes")
        pub = next(r for r in routes["routes"] if r["name"] == "pub")
        self.assertEqual((pub["pool"], pub["overridden"]), ("sg", True))
        st, streams = self.api.get("/api/v1/streams")
        sw = [s for s in streams["streams"] if s["stream"] == "swapped"]
        self.assertTrue(sw and sw[0]["node"] == "c" and "routed" in sw[0]["sources"], streams)


# ---- viewer line choice: routes on args, GET /api/v1/lines -------------------

class AdminLines(unittest.TestCase):
    """Two lines (pools) a and b, each one nginx-rtmp origin; a route on
    args {line: b} before the catch-all. A viewer's ?line=b lands on b, no
    arg on a, and /api/v1/lines lists both with the URL that selects each."""

    def setUp(self):
        self.fleet = Fleet()
        self.front = free_port()
        self.aport = free_port()
        self.api = Api(self.aport)
        self.log = os.path.join(self.fleet.dir, "access.log")

    def tearDown(self):
        self.fleet.stop()

    def test_args_pick_the_line_and_lines_lists_them(self):
        a = self.fleet.nginx_origin("a", free_port(), free_port())
        b = self.fleet.nginx_origin("b", free_port(), free_port())
        cfg = "\n".join([
            "workers: 2", admin_section(self.aport, self.fleet, state=False),
            "log:", "  access_log: %s" % self.log,
            "listeners:", "  - {name: rtmp, address: 127.0.0.1:%d, mode: rtmp}" % self.front,
            "pools:",
            "  line-a: {nodes: [{name: a, address: 127.0.0.1:%d}]}" % a.rtmp_port,
            "  line-b: {nodes: [{name: b, address: 127.0.0.1:%d}]}" % b.rtmp_port,
            "routes:",
            "  - {name: choose-b, match: {app: live, args: {line: b}}, pool: line-b}",
            "  - {name: rest, match: {}, pool: line-a}", ""])
        p = self.fleet.rtmplb(cfg, wait_ports=[self.front])
        wait_port(self.aport, proc=p)
        base = "rtmp://127.0.0.1:%d/live/room1" % self.front

        # The lines a viewer of live/room1 may choose between.
        st, doc = self.api.get("/api/v1/lines?app=live&stream=room1")
        self.assertEqual(st, 200, doc)
        got = [(l["pool"], l["route"], l["args"], l["url"], l["default"], l["nodes"])
               for l in doc["lines"]]
        one = {"up": 1, "total": 1, "available": 1}
        self.assertEqual(got, [("line-b", "choose-b", {"line": "b"}, base + "?line=b", False, one),
                               ("line-a", "rest", {}, base, True, one)], doc)
        self.assertEqual((doc["app"], doc["stream"], doc["listener"]), ("live", "room1", "rtmp"))
        # Another app: only the catch-all may serve it.
        st, doc = self.api.get("/api/v1/lines?app=vod&stream=room1")
        self.assertEqual([l["pool"] for l in doc["lines"]], ["line-a"], doc)
        for bad in ("/api/v1/lines?app=live", "/api/v1/lines?stream=room1",
                    "/api/v1/lines?app=&stream=x", "/api/v1/lines"):
            st, doc = self.api.get(bad)
            self.assertEqual(st, 400, (bad, doc))
            self.assertIn("required", doc["error"])
        st, doc = self.api.get("/api/v1/lines?app=live&stream=room1&listener=nope")
        self.assertEqual(st, 404, doc)
        st, doc = self.api.get("/api/v1/lines?app=live&stream=room1", token="")
        self.assertEqual(st, 401, doc)

        # Publishers meet on the normalised name: room1?line=b is room1 on b.
        self.fleet.publish(base + "?line=b", name="pub-b")
        wait_for(lambda: nginx_streams(b.http_port).get("room1", (False, 0))[0], 20,
                 "room1 published on b")
        self.assertNotIn("room1", nginx_streams(a.http_port))
        self.fleet.publish(base, name="pub-a")
        wait_for(lambda: nginx_streams(a.http_port).get("room1", (False, 0))[0], 20,
                 "room1 published on a")

        # Each line's URL from /lines, played by ffmpeg, lands on its origin.
        for line, origin, node, route in (("line-b", b, "b", "choose-b"),
                                          ("line-a", a, "a", "rest")):
            url = next(l["url"] for l in self.api.get(
                "/api/v1/lines?app=live&stream=room1")[1]["lines"] if l["pool"] == line)
            seen = {}

            def on_node(node=node, origin=origin, seen=seen):
                st, ss = self.api.get("/api/v1/sessions?stream=live/room1")
                plays = [s for s in ss["sessions"] if s["role"] == "play"]
                seen["plays"] = plays
                seen["nclients"] = nginx_streams(origin.http_port).get("room1", (False, 0))[1]
                return (len(plays) == 1 and plays[0]["node"] == node and
                        seen["nclients"] >= 2)  # its publisher and this player
            frames = self.fleet.play_frames(url, 25, name="play-" + line, until=on_node)
            self.assertGreaterEqual(frames, 25, url)
            self.assertTrue(seen["plays"] and seen["plays"][0]["node"] == node, seen)
            self.assertEqual((seen["plays"][0]["route"], seen["plays"][0]["stream"]),
                             (route, "room1"), seen)
            self.assertGreaterEqual(seen["nclients"], 2, seen)
            wait_for(lambda: not any(s["role"] == "play" for s in self.api.get(
                "/api/v1/sessions?stream=live/room1")[1]["sessions"]), 15, "the play ended")
        # The access log names the node, the route and the normalised stream.
        def logged_plays():
            with open(self.log) as f:
                return [l for l in access_lines(f.read()) if l.get("role") == "play"]
        wait_for(lambda: len(logged_plays()) >= 2, 15, "play lines logged")
        plays = logged_plays()
        self.assertEqual(sorted((l["node"], l["route"], l["stream"]) for l in plays),
                         [("a", "rest", "room1"), ("b", "choose-b", "room1")], plays)


if __name__ == "__main__":
    harness.main()
