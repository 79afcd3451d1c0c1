"""Stock origins and edges ask rtmplb where streams are (lb/admin/COMPAT.md),
black box.

nginx-rtmp: two stock origins A and B behind rtmplb (stream_location, stats
polled from their /stat), and one stock nginx-rtmp edge whose `application
live` has `on_play`/`on_publish` pointing at rtmplb's /nginx/* endpoints and
no `pull` line. A stream published straight to B is played from the edge
with ffmpeg, rtmpdump and GStreamer (each decodes frames), the edge's /stat
shows the relay from B; B is SIGKILLed, the stream republished to A, and a
new edge play pulls from A. A publish to the edge is pushed to the origin
the route picks. Also: on_publish by GET and POST, the oclp pull form, 2xx
for the node that holds the stream, 404 for a stream that is nowhere.

SRS http_hooks: the documented JSON posted by hand (SRS is not a Debian
package); an on_publish makes a play through rtmplb (stream_location) land on
the node before any stats poll (the stats interval is two minutes), an
on_unpublish removes it, malformed/oversized bodies and a wrong secret are
refused, and a burst of 1000 hooks is answered `0` with RSS and the index
sane afterwards."""

import http.client as httpc
import json
import os
import re
import signal
import sys
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET

import harness
from harness import Fleet, free_port, nginx_streams, wait_for


def req(method, port, path, body=None, headers=None, timeout=10):
    """(status, headers dict lowercased, body text) of one request."""
    c = httpc.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read().decode()
    finally:
        c.close()


def form(**kw):
    return urllib.parse.urlencode(kw)


FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def edge_relays(http_port):
    """nginx-rtmp's /stat: ([(stream, relay address)], the XML). A relay the
    edge pulls shows as a publishing client whose flashver is
    "ngx-local-relay" and whose address is "IP:PORT/app/name" it pulls from."""
    with urllib.request.urlopen("http://127.0.0.1:%d/stat" % http_port, timeout=5) as r:
        text = r.read().decode()
    root = ET.fromstring(text)
    out = []
    for stream in root.iter("stream"):
        for client in stream.iter("client"):
            if client.findtext("flashver") == "ngx-local-relay":
                out.append((stream.findtext("name"), client.findtext("address") or ""))
    return out, text


class NginxRtmp(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        f = cls.fleet = Fleet()
        cls.addClassCleanup(f.stop)
        cls.origins = {n: f.nginx_origin(n, free_port(), free_port()) for n in ("origin-a", "origin-b")}
        cls.front, cls.admin = free_port(), free_port()
        nodes = "\n".join(
            "      - {name: %s, address: 127.0.0.1:%d, stats: {kind: nginx-rtmp, url: "
            "'http://127.0.0.1:%d/stat'}}" % (n, o.rtmp_port, o.http_port)
            for n, o in cls.origins.items())
        cls.lb = f.rtmplb("""
log: {level: debug}
listeners:
  - {name: rtmp, address: 127.0.0.1:%d, mode: rtmp}
admin: {address: 127.0.0.1:%d, public_read: true}
pools:
  origins:
    health: {type: tcp, interval: 500ms, timeout: 400ms, rise: 1, fall: 2}
    nodes:
%s
routes:
  - {name: live, match: {app: live}, pool: origins, policy: stream_location}
""" % (cls.front, cls.admin, nodes), wait_ports=[cls.front])
        hooks = ("on_play http://127.0.0.1:%d/nginx/on_play?node=edge; "
                 "on_publish http://127.0.0.1:%d/nginx/on_publish?node=edge;" % (cls.admin, cls.admin))
        # The edge logs at info: its notify, pull and push lines explain a failure.
        conf = harness.NGINX_CONF
        harness.NGINX_CONF = conf.replace("logs/error.log warn", "logs/error.log info")
        try:
            cls.edge = f.nginx_origin("edge", free_port(), free_port(), extra_app=hooks)
        finally:
            harness.NGINX_CONF = conf

    def edge_url(self, stream):
        return "rtmp://127.0.0.1:%d/live/%s" % (self.edge.rtmp_port, stream)

    def origin_url(self, name, stream):
        return "rtmp://127.0.0.1:%d/live/%s" % (self.origins[name].rtmp_port, stream)

    def located(self, stream, node):
        """rtmplb's stream index says stream is live on node (from its stats;
        locate would not do: it falls back to affinity)."""
        st, _, body = req("GET", self.admin, "/api/v1/streams")
        return st == 200 and any(s["stream"] == stream and s["node"] == node
                                 for s in json.loads(body)["streams"])

    def test_1_play_from_edge_relays_from_b_then_from_a_after_b_dies(self):
        f = self.fleet
        pub = f.publish(self.origin_url("origin-b", "cam"), name="publish-b")
        wait_for(lambda: nginx_streams(self.origins["origin-b"].http_port).get("cam", (False,))[0],
                 20, "cam live on origin-b")
        wait_for(lambda: self.located("cam", "origin-b"), 20, "rtmplb's index to hold cam on origin-b")
        # What the edge will be told.
        st, hd, body = req("POST", self.admin, "/nginx/on_play?node=edge",
                            form(call="play", app="live", name="cam", addr="127.0.0.1"), FORM)
        self.assertEqual(st, 302, body)
        self.assertEqual(hd["location"], self.origin_url("origin-b", "cam"))

        seen = []

        def relay_seen():  # the edge's /stat while a player plays
            relays, text = edge_relays(self.edge.http_port)
            if relays:
                seen.append(relays)
            return bool(seen)
        ff = f.play_frames(self.edge_url("cam"), 50, name="edge-ffmpeg", until=relay_seen)
        self.assertGreaterEqual(ff, 50, "ffmpeg decoded %d frames through the edge" % ff)
        rd = f.rtmpdump_frames(self.edge_url("cam"), 30, name="edge-rtmpdump")
        self.assertGreaterEqual(rd, 30, "rtmpdump decoded %d frames through the edge" % rd)
        gs = f.gst_frames(self.edge_url("cam"), 30, name="edge-gst")
        self.assertGreaterEqual(gs, 30, "GStreamer decoded %d frames through the edge" % gs)
        # The edge pulled from B: a relay in its /stat.
        self.assertTrue(seen, "no relay in the edge's /stat while ffmpeg played")
        self.assertEqual(seen[0], [("cam", "127.0.0.1:%d/live/cam" % self.origins["origin-b"].rtmp_port)])
        self.assertFalse(nginx_streams(self.origins["origin-a"].http_port).get("cam"),
                         "origin-a never had cam")
        self.assertIn("compat_answer endpoint=nginx_on_play asking=edge app=live name=cam",
                      f.log_text("rtmplb"))

        # What B's hooks said goes when B goes down (no secret here: open).
        hook = {"action": "on_publish", "client_id": "1", "ip": "127.0.0.1", "vhost": "v",
                "app": "live", "stream": "hooked", "param": "", "tcUrl": "rtmp://b/live",
                "server_id": "vid-1"}
        self.assertEqual(req("POST", self.admin, "/api/v1/hooks/srs?node=origin-b",
                             json.dumps(hook))[0::2], (200, "0"))
        self.assertTrue(self.located("hooked", "origin-b"))
        # B dies; the stream comes back on A; a new edge play pulls from A.
        f.kill_nginx(self.origins["origin-b"])
        f.stop_proc(pub)
        wait_for(lambda: not self.located("cam", "origin-b"), 30, "rtmplb to forget cam on origin-b")
        wait_for(lambda: not self.located("hooked", "origin-b"), 30,
                 "rtmplb to forget origin-b's hook entry once it is down")
        f.publish(self.origin_url("origin-a", "cam"), name="publish-a")
        wait_for(lambda: self.located("cam", "origin-a"), 30, "rtmplb's index to hold cam on origin-a")
        seen.clear()
        ff2 = f.play_frames(self.edge_url("cam"), 50, name="edge-ffmpeg-2", until=relay_seen)
        self.assertGreaterEqual(ff2, 50, "ffmpeg decoded %d frames through the edge after B died" % ff2)
        self.assertTrue(seen, "no relay in the edge's /stat while ffmpeg played")
        self.assertEqual(seen[0], [("cam", "127.0.0.1:%d/live/cam" % self.origins["origin-a"].rtmp_port)])

    def test_2_publish_to_edge_is_pushed_to_the_route_pick(self):
        f = self.fleet
        st, hd, body = req("GET", self.admin,
                            "/nginx/on_publish?node=edge&" + form(call="publish", app="live",
                                                                  name="pushed", type="live"))
        self.assertEqual(st, 302, body)
        want = json.loads(body)["node"]
        self.assertIsNone(self.origins[want].poll(), "the route picked %s, which is dead" % want)
        self.assertEqual(hd["location"], self.origin_url(want, "pushed"))
        pub = f.publish(self.edge_url("pushed"), name="publish-edge")
        wait_for(lambda: nginx_streams(self.origins[want].http_port).get("pushed", (False,))[0],
                 30, "the edge to push 'pushed' to %s" % want)
        f.stop_proc(pub)

    def test_3_answers(self):
        # on_publish by POST (nginx's default) and GET agree, and match locate.
        _, _, loc = req("GET", self.admin, "/api/v1/locate?app=live&stream=newcam&role=publish")
        want = json.loads(loc)["url"]
        st, hd, body = req("POST", self.admin, "/nginx/on_publish?node=edge",
                            form(call="publish", app="live", name="newcam", type="live",
                                 addr="198.51.100.9", tcurl="rtmp://edge/live"), FORM)
        self.assertEqual((st, hd.get("location")), (302, want), body)
        st, hd, body = req("GET", self.admin, "/nginx/on_publish?node=edge&call=publish&app=live&name=newcam")
        self.assertEqual((st, hd.get("location")), (302, want), body)
        node = json.loads(body)["node"]
        # The node the route picks, asking itself: serve it (2xx).
        st, _, body = req("GET", self.admin, "/nginx/on_publish?node=%s&call=publish&app=live&name=newcam" % node)
        self.assertEqual(st, 200, body)
        # The oclp pull form, for a stream that is live somewhere.
        live_on = wait_for(lambda: next((n for n, o in self.origins.items() if o.poll() is None
                                         and self.located("cam", n)), None), 30, "cam somewhere")
        st, hd, body = req("GET", self.admin, "/oclp/v1/pull?call=pull&app=live&name=cam&domain=x")
        self.assertEqual(st, 302, body)
        self.assertEqual(hd["location"], self.origin_url(live_on, "cam"))
        # Unknown stream: 404 with a JSON error, no Location.
        st, hd, body = req("POST", self.admin, "/nginx/on_play?node=edge",
                            form(call="play", app="live", name="ghost"), FORM)
        self.assertEqual(st, 404, body)
        self.assertNotIn("location", hd)
        self.assertIn("not live on any node", json.loads(body)["error"])
        # And a real edge play of it gets nothing.
        self.assertEqual(self.fleet.play_frames(self.edge_url("ghost"), 1, name="ghost", timeout=8), 0)
        # No route (an app no route matches): 403; bad requests: 400.
        st, _, body = req("POST", self.admin, "/nginx/on_play", form(call="play", app="vod", name="x"), FORM)
        self.assertEqual(st, 403, body)
        st, _, body = req("POST", self.admin, "/nginx/on_play", form(call="publish", app="live", name="x"), FORM)
        self.assertEqual(st, 400, body)
        st, _, body = req("POST", self.admin, "/nginx/on_play", "app=live&name=%zz", FORM)
        self.assertEqual(st, 400, body)
        st, _, body = req("POST", self.admin, "/nginx/on_play", form(call="play", app="live"), FORM)
        self.assertEqual(st, 400, body)


SRS_PUBLISH = {
    "server_id": "vid-0xk989d", "service_id": "plnp5j0q", "action": "on_publish",
    "client_id": "341w361a", "ip": "127.0.0.1", "vhost": "__defaultVhost__", "app": "live",
    "tcUrl": "rtmp://127.0.0.1:1935/live", "stream": "livestream", "param": "",
    "stream_url": "/live/livestream", "stream_id": "vid-124q9y3"}


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


class SrsHooks(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        f = cls.fleet = Fleet()
        cls.addClassCleanup(f.stop)
        # nginx-rtmp origins stand in for SRS's media side (the hooks are
        # posted by hand, as SRS documents them).
        cls.origins = {n: f.nginx_origin(n, free_port(), free_port()) for n in ("srs-a", "srs-b")}
        cls.front, cls.admin = free_port(), free_port()
        cls.secret = "h00k-s3cret"
        sfile = cls.sfile = os.path.join(f.dir, "hooks.secret")
        with open(sfile, "w") as s:
            s.write(cls.secret + "\n")
        os.chmod(sfile, 0o600)
        nodes = "\n".join(
            "      - {name: %s, address: 127.0.0.1:%d, stats: {kind: nginx-rtmp, url: "
            "'http://127.0.0.1:%d/stat'}}" % (n, o.rtmp_port, o.http_port)
            for n, o in cls.origins.items())
        # Stats are polled at start and then every two minutes: anything
        # the index learns during the test comes from the hooks.
        cls.lb = f.rtmplb("""
listeners:
  - {name: rtmp, address: 127.0.0.1:%d, mode: rtmp}
admin: {address: 127.0.0.1:%d, public_read: true, hooks_secret_file: %s}
pools:
  origins:
    health: {type: tcp, interval: 120s, timeout: 1s}
    nodes:
%s
routes:
  - {name: live, match: {app: live}, pool: origins, policy: stream_location}
""" % (cls.front, cls.admin, sfile, nodes), wait_ports=[cls.front])

    def hook(self, doc, node="srs-b", secret=None, conn=None):
        path = "/api/v1/hooks/srs?node=%s&secret=%s" % (node, urllib.parse.quote(secret or self.secret))
        body = doc if isinstance(doc, (str, bytes)) else json.dumps(doc)
        if conn is None:
            st, _, text = req("POST", self.admin, path, body, {"Content-Type": "application/json"})
            return st, text
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        return r.status, r.read().decode()

    def streams(self):
        _, _, body = req("GET", self.admin, "/api/v1/streams")
        return json.loads(body)["streams"]

    def test_1_on_publish_finds_the_node_before_any_stats_poll(self):
        f = self.fleet
        # A name stream_affinity would send to srs-a (so landing on srs-b
        # proves the hook), published straight to srs-b.
        name = next("h%d" % i for i in range(200)
                    if json.loads(req("GET", self.admin, "/api/v1/locate?app=live&stream=h%d&role=play" % i)[2])
                    ["node"] == "srs-a")
        f.publish("rtmp://127.0.0.1:%d/live/%s" % (self.origins["srs-b"].rtmp_port, name), name="pub-b")
        wait_for(lambda: nginx_streams(self.origins["srs-b"].http_port).get(name, (False,))[0], 20,
                 "%s live on srs-b" % name)
        doc = dict(SRS_PUBLISH, stream=name)
        self.assertEqual(self.hook(doc), (200, "0"))
        entry = [s for s in self.streams() if s["stream"] == name]
        self.assertEqual(len(entry), 1, entry)
        self.assertEqual((entry[0]["node"], entry[0]["sources"]), ("srs-b", ["hook"]))
        # A play through rtmplb lands on srs-b and decodes.
        seen_on_b = []

        def player_on_b():  # the publisher and our player, while it plays
            if nginx_streams(self.origins["srs-b"].http_port)[name][1] >= 2:
                seen_on_b.append(True)
            return bool(seen_on_b)
        frames = f.play_frames("rtmp://127.0.0.1:%d/live/%s" % (self.front, name), 30, name="play-hook",
                               until=player_on_b)
        self.assertGreaterEqual(frames, 30)
        self.assertTrue(seen_on_b, "the play through rtmplb never showed on srs-b")
        self.assertFalse(nginx_streams(self.origins["srs-a"].http_port).get(name))
        # on_play / on_stop are answered 0 and change nothing.
        self.assertEqual(self.hook(dict(doc, action="on_play", client_id=1985)), (200, "0"))
        self.assertEqual(self.hook(dict(doc, action="on_stop")), (200, "0"))
        # on_unpublish removes it: locate is back to affinity.
        self.assertEqual(self.hook(dict(doc, action="on_unpublish")), (200, "0"))
        self.assertEqual([s for s in self.streams() if s["stream"] == name], [])
        st, _, body = req("GET", self.admin, "/api/v1/locate?app=live&stream=%s&role=play" % name)
        self.assertEqual(json.loads(body)["node"], "srs-a")
        self.assertIn("srs_hook pool=origins node=srs-b action=on_publish app=live stream=%s" % name,
                      f.log_text("rtmplb"))

    def test_2_refusals(self):
        ok = dict(SRS_PUBLISH, stream="refused")
        cases = [
            ("{\"action\":", 400, "not JSON"),
            ("[]", 400, "JSON object"),
            (json.dumps({"action": "on_publish", "app": "live"}), 400, "\"stream\" is required"),
            (json.dumps(dict(ok, action="on_fire")), 400, "unknown action"),
            (json.dumps(dict(ok, app=5)), 400, "must be a string"),
        ]
        for doc, status, why in cases:
            st, text = self.hook(doc)
            self.assertEqual(st, status, doc)
            self.assertIn(why, json.loads(text)["error"])
        st, text = self.hook(ok, node="nobody")
        self.assertEqual(st, 404, text)
        st, text = self.hook(ok, secret="wrong")
        self.assertEqual(st, 403, text)
        st, _, text = req("POST", self.admin, "/api/v1/hooks/srs?node=srs-b", json.dumps(ok))
        self.assertEqual(st, 403, text)
        self.assertIn("secret", json.loads(text)["error"])
        st, _, text = req("POST", self.admin, "/api/v1/hooks/srs?secret=" + self.secret, json.dumps(ok))
        self.assertEqual(st, 400, text)
        self.assertIn("?node=", json.loads(text)["error"])
        # Oversized: the admin server's body cap (64 KiB).
        big = json.dumps(dict(ok, param="x" * 70000))
        st, text = self.hook(big)
        self.assertEqual(st, 413, text)
        # The secret guards the nginx endpoints too.
        st, _, text = req("GET", self.admin, "/nginx/on_play?call=play&app=live&name=x")
        self.assertEqual(st, 403, text)
        # None of these reached the index.
        self.assertEqual([s for s in self.streams() if s["stream"] == "refused"], [])

    def test_3_burst_of_1000(self):
        pid = self.lb.pid
        before = rss_kib(pid)
        answers = []
        conn = httpc.HTTPConnection("127.0.0.1", self.admin, timeout=10)
        try:
            for i in range(500):  # keep-alive
                answers.append(self.hook(dict(SRS_PUBLISH, stream="burst%d" % i, client_id="c%d" % i),
                                         conn=conn))
        finally:
            conn.close()
        for i in range(500, 1000):  # a connection each
            answers.append(self.hook(dict(SRS_PUBLISH, stream="burst%d" % i)))
        self.assertEqual(answers, [(200, "0")] * 1000)
        burst = [s for s in self.streams() if s["stream"].startswith("burst")]
        self.assertEqual(len(burst), 1000)
        self.assertTrue(all(s["sources"] == ["hook"] and s["node"] == "srs-b" for s in burst))
        conn = httpc.HTTPConnection("127.0.0.1", self.admin, timeout=10)
        try:
            gone = [self.hook(dict(SRS_PUBLISH, action="on_unpublish", stream="burst%d" % i), conn=conn)
                    for i in range(1000)]
        finally:
            conn.close()
        self.assertEqual(gone, [(200, "0")] * 1000)
        self.assertEqual([s for s in self.streams() if s["stream"].startswith("burst")], [])
        after = rss_kib(pid)
        print("burst: 1000 on_publish + 1000 on_unpublish answered 0; rtmplb RSS %d -> %d KiB"
              % (before, after), file=sys.stderr)
        self.assertLess(after - before, 32 * 1024, "RSS grew from %d to %d KiB" % (before, after))
        self.assertIsNone(self.lb.poll(), "rtmplb exited")
        st, _, _ = req("GET", self.admin, "/api/v1/upstreams")
        self.assertEqual(st, 200)

    def test_4_secret_follows_reload_all_or_nothing(self):
        f = self.fleet
        doc = dict(SRS_PUBLISH, action="on_stop", stream="r")
        old = self.secret
        with open(self.sfile, "w") as s:
            s.write("n3w-secret\n")
        before = f.log_text("rtmplb").count("reload_changes")
        self.lb.send_signal(signal.SIGHUP)
        wait_for(lambda: f.log_text("rtmplb").count("reload_changes") > before, 20, "the reload")
        self.assertEqual(self.hook(doc, secret=old)[0], 403)
        self.assertEqual(self.hook(doc, secret="n3w-secret"), (200, "0"))
        # A world-readable secret file refuses the whole reload: the secret
        # in force stays (the endpoints never open up).
        os.chmod(self.sfile, 0o644)
        failed = f.log_text("rtmplb").count("reload_failed")
        self.lb.send_signal(signal.SIGHUP)
        wait_for(lambda: f.log_text("rtmplb").count("reload_failed") > failed, 20, "the refused reload")
        self.assertIn("admin.hooks_secret_file", f.log_text("rtmplb").split("reload_failed")[-1])
        self.assertEqual(self.hook(doc, secret="n3w-secret"), (200, "0"))
        self.assertEqual(self.hook(doc, secret=old)[0], 403)
        os.chmod(self.sfile, 0o600)
        with open(self.sfile, "w") as s:
            s.write(old + "\n")
        before = f.log_text("rtmplb").count("reload_changes")
        self.lb.send_signal(signal.SIGHUP)
        wait_for(lambda: f.log_text("rtmplb").count("reload_changes") > before, 20, "the reload")
        self.assertEqual(self.hook(doc), (200, "0"))


if __name__ == "__main__":
    harness.main()
