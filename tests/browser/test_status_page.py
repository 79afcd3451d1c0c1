"""The status page at GET / in a real Chromium (Debian's, driven by npm's
playwright-core through driver.js), in front of real nginx-rtmp origins
with real ffmpeg publishes and plays. Asserts on what the page shows after
real events: the fleet and a live stream, an origin SIGKILLed shown down,
drain clicked then a publish landing on the other node (origins' /stat), a
route's line swapped from the page moving the next publish, a wrong token's
refusal text, no sideways overflow at phone width, and the server-side
tables with JavaScript off. Screenshots of each step go to
$RTMPLB_ARTIFACTS (build/artifacts/browser)."""

import http.client
import json
import os
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import harness  # noqa: E402
from harness import Fleet, free_port, nginx_streams, wait_for, wait_port  # noqa: E402

TOKEN = "page-test-token-7f3a"
# Probes every second, down after 2 failures; the page refreshes every 2 s.
# The bounds below are many times that (a shared, busy machine).
HEALTH = "{type: rtmp, app: live, interval: 1000ms, timeout: 800ms, jitter: 0ms, rise: 2, fall: 2}"


class Browser:
    """driver.js as a child process: one JSON command, one JSON answer."""

    def __init__(self, log_path):
        self.log = open(log_path, "wb")
        self.p = subprocess.Popen(["node", os.path.join(HERE, "driver.js")], cwd=HERE,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=self.log)

    def do(self, op, **kw):
        kw["op"] = op
        self.p.stdin.write((json.dumps(kw) + "\n").encode())
        self.p.stdin.flush()
        line = self.p.stdout.readline()
        if not line:
            raise AssertionError("the browser driver exited (%s)" % self.p.poll())
        r = json.loads(line)
        if not r["ok"]:
            raise AssertionError("browser %s failed: %s" % (op, r["error"]))
        return r["value"]

    def eval(self, name, expr):
        return self.do("eval", name=name, expr=expr)

    def wait_eval(self, name, expr, timeout, what):
        got = []

        def cond():
            got[:] = [self.eval(name, expr)]
            return got[0]
        try:
            wait_for(cond, timeout, what, 0.25)
        except AssertionError:
            raise AssertionError("%s; last value %r; page text:\n%s" % (
                what, got and got[0], self.eval(name, "document.body.innerText")[:4000]))
        return got[0]

    def close(self):
        if self.p.poll() is None:
            try:
                self.do("quit")
            except (AssertionError, OSError, ValueError):
                pass
            try:
                self.p.wait(20)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.log.close()


def row_text(table_sel, key):
    """JS: the text of the row whose data-key is key in table_sel, or ''."""
    return ("(function(){var t=document.querySelector(%s); if(!t) return '';"
            "var r=t.querySelector('tr[data-key=' + JSON.stringify(%s) + ']');"
            "return r ? r.innerText : '';})()" % (json.dumps(table_sel), json.dumps(key)))


def cell_text(table_sel, key, idx):
    """JS: the text of cell idx of that row, or ''."""
    return ("(function(){var t=document.querySelector(%s); if(!t) return '';"
            "var r=t.querySelector('tr[data-key=' + JSON.stringify(%s) + ']');"
            "return r ? r.cells[%d].innerText : '';})()" % (json.dumps(table_sel), json.dumps(key),
                                                            idx))


class StatusPage(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        subprocess.run([os.path.join(harness.ARGS.source, "scripts", "browser-deps.sh")],
                       check=True, timeout=600)
        cls.art = os.environ.get("RTMPLB_ARTIFACTS") or os.path.join(os.getcwd(), "artifacts",
                                                                     "browser")
        os.makedirs(cls.art, exist_ok=True)
        f = cls.fleet = Fleet()
        try:
            cls.o = {n: f.nginx_origin(n, free_port(), free_port()) for n in ("a", "b", "x", "c")}
            cls.front = free_port()
            cls.aport = free_port()
            tok = os.path.join(f.dir, "token")
            with open(tok, "w") as fh:
                fh.write(TOKEN + "\n")
            os.chmod(tok, 0o600)
            node = lambda n: "{name: %s, address: 127.0.0.1:%d}" % (n, cls.o[n].rtmp_port)
            cls.lb = f.rtmplb("""
workers: 2
admin: {address: 127.0.0.1:%d, token_file: %s}
listeners: [{name: rtmp, address: 127.0.0.1:%d, mode: rtmp}]
pools:
  hk:
    health: %s
    nodes: [%s, %s, %s]
  sg:
    health: %s
    nodes: [%s]
routes:
  - {name: pub, match: {role: publish}, pool: hk, policy: weighted}
  - {name: play, match: {role: play}, pool: hk, policy: stream_location}
""" % (cls.aport, tok, cls.front, HEALTH, node("a"), node("b"), node("x"), HEALTH, node("c")),
                wait_ports=[cls.front])
            wait_port(cls.aport, proc=cls.lb)
            cls.browser = Browser(os.path.join(f.dir, "browser.log"))
        except BaseException:
            f.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        if getattr(cls, "browser", None):
            cls.browser.close()
        cls.fleet.stop()

    # -- helpers ------------------------------------------------------------
    def url(self, token=TOKEN):
        return "http://127.0.0.1:%d/%s" % (self.aport, "#token=" + token if token else "")

    def rtmp(self, stream):
        return "rtmp://127.0.0.1:%d/live/%s" % (self.front, stream)

    def shot(self, name, page="main"):
        path = os.path.join(self.art, name + ".png")
        self.browser.do("screenshot", name=page, path=path)
        self.assertGreater(os.path.getsize(path), 1000)

    def open_live(self, name="main", width=1280, height=800, token=TOKEN):
        st = self.browser.do("open", name=name, url=self.url(token), width=width, height=height)
        self.assertEqual(st["status"], 200)
        self.browser.wait_eval(name, "!document.getElementById('live').hidden && "
                               "document.querySelectorAll('#lines tr[data-key]').length >= 4",
                               30, "the page to load the fleet")

    def where(self, stream, names, timeout=30):
        found = []

        def look():
            found[:] = [n for n in names
                        if nginx_streams(self.o[n].http_port).get(stream, (False, 0))[0]]
            return found
        wait_for(look, timeout, "%s published on one of %s" % (stream, names), 0.25)
        return found

    def api(self, method, path, body=None):
        c = http.client.HTTPConnection("127.0.0.1", self.aport, timeout=15)
        try:
            c.request(method, path, body=json.dumps(body) if body is not None else None,
                      headers={"Authorization": "Bearer " + TOKEN})
            r = c.getresponse()
            return r.status, json.loads(r.read())
        finally:
            c.close()

    # -- the steps, in order (one fleet) -------------------------------------
    def test_1_fleet_stream_kill_drain_swap(self):
        b = self.browser
        self.open_live()
        # (a) The fleet: both lines, every node up, both routes.
        for pool, node in (("hk", "a"), ("hk", "b"), ("hk", "x"), ("sg", "c")):
            b.wait_eval("main", "(%s).indexOf('\\u2714 up') >= 0" % row_text("#pool-" + pool, node),
                        30, "node %s/%s shown up" % (pool, node))
        for route, pool in (("pub", "hk"), ("play", "hk")):
            t = b.eval("main", row_text("#routes", route))
            self.assertIn(route, t)
            self.assertIn(pool, t)
        proc = b.eval("main", "document.getElementById('process').innerText")
        self.assertRegex(proc, r"Config\s+\S+\.yaml, hash [0-9a-f]{16}")
        self.assertIn("Descriptors", proc)
        # A real publish and a real play: the stream shows, with a player.
        self.fleet.publish(self.rtmp("cam1"), name="pub-cam1")
        first = self.where("cam1", ["a", "b", "x"])[0]
        viewer = self.fleet.start_play(self.rtmp("cam1"), name="viewer1")
        wait_for(lambda: self.fleet.frame_count("viewer1") >= 25, 60, "the play to decode", 0.25)
        key = "live/cam1@hk/" + first
        txt = b.wait_eval("main", row_text("#streams", key) + ".split('\\t').length >= 4 && "
                          "/\\b1\\b/.test(%s.split('\\t')[3]) && %s" % (
                              row_text("#streams", key), row_text("#streams", key)),
                          30, "the stream cam1 on hk/%s with a player" % first)
        self.assertIn("routed", txt)
        b.wait_eval("main", "document.querySelectorAll('#sessions tbody tr').length >= 2", 30,
                    "two live sessions listed")
        sess = b.eval("main", "document.getElementById('sessions').innerText")
        self.assertIn("publish", sess)
        self.assertIn("play", sess)
        self.assertRegex(sess, r"\d+(\.\d+)? (B|KiB|MiB)")
        # The node's bitrate, with its unit, from the byte counters.
        b.wait_eval("main", "/[1-9][0-9.]* (kbit|Mbit)\\/s/.test(%s)" % row_text("#pool-hk", first),
                    30, "a bitrate on the node the publish went to")
        self.shot("1-fleet-and-stream")
        self.fleet.stop_proc(viewer, sig=2)

        # (b) SIGKILL origin x (ours, by PID): shown down, with the probe's failure.
        self.fleet.kill_nginx(self.o["x"])
        t = b.wait_eval("main", "(function(){var t=%s; return t.indexOf('DOWN') >= 0 ? t : '';})()"
                        % row_text("#pool-hk", "x"), 45, "node x shown DOWN")
        self.assertRegex(t, r"L4|L6|L7")  # the last probe's layer
        self.assertNotIn("DOWN", b.eval("main", row_text("#pool-hk", "a")))
        self.shot("2-origin-killed")

        # (c) Drain a from the page (the confirm dialog accepted): the next
        # publish goes to b, as the origins' /stat shows.
        b.do("select", name="main", selector="#pool-hk tr[data-key=a] select.deadline", value="")
        r = b.do("click", name="main", selector="#pool-hk tr[data-key=a] button.drain",
                 dialog="accept")
        self.assertEqual(len(r["dialogs"]), 1)
        self.assertIn("Drain hk/a", r["dialogs"][0])
        b.wait_eval("main", "/draining .*override/.test(%s)" % cell_text("#pool-hk", "a", 2), 20,
                    "node a shown draining (override)")
        self.assertEqual(self.api("GET", "/api/v1/overrides")[0], 200)
        for i in range(3):
            name = "drained%d" % i
            self.fleet.publish(self.rtmp(name), name="pub-" + name)
            self.assertEqual(self.where(name, ["a", "b"]), ["b"])
        self.shot("3-drained")

        # A dismissed confirm changes nothing.
        r = b.do("click", name="main", selector="#pool-hk tr[data-key=b] button.disable",
                 dialog="dismiss")
        self.assertEqual(len(r["dialogs"]), 1)
        time.sleep(1)
        self.assertEqual(b.eval("main", cell_text("#pool-hk", "b", 2)), "enabled")

        # (d) Swap route pub to line sg from the page: the next publish is on c.
        b.do("select", name="main", selector="#routes tr[data-key=pub] select.pool", value="sg")
        r = b.do("click", name="main", selector="#routes tr[data-key=pub] button.swap",
                 dialog="accept")
        self.assertIn("Swap route pub to line sg", r["dialogs"][0])
        b.wait_eval("main", "/sg/.test(%s) && /yes/.test(%s)" % (
            row_text("#routes", "pub"), row_text("#routes", "pub")), 20,
            "route pub shown on sg, overridden")
        self.fleet.publish(self.rtmp("swapped"), name="pub-swapped")
        self.assertEqual(self.where("swapped", ["a", "b", "c"]), ["c"])
        b.wait_eval("main", "(%s).length > 0" % row_text("#streams", "live/swapped@sg/c"), 30,
                    "the swapped stream shown on sg/c")
        self.shot("4-route-swapped")

        # Clear every override from the page (confirmed): back to config.
        r = b.do("click", name="main", selector="#clearall", dialog="accept")
        self.assertEqual(len(r["dialogs"]), 1)
        b.wait_eval("main", "(%s) === 'enabled' && (%s) === 'no'" % (
            cell_text("#pool-hk", "a", 2), cell_text("#routes", "pub", 4)), 20,
            "overrides cleared")
        st, doc = self.api("GET", "/api/v1/overrides")
        self.assertEqual(st, 200)
        self.assertFalse(doc.get("nodes") or doc.get("routes"), doc)

    def test_2_wrong_token_shows_refusal(self):
        b = self.browser
        st = b.do("open", name="bad", url=self.url("not-the-token"), width=1280, height=800)
        self.assertEqual(st["status"], 200)
        t = b.wait_eval("bad", "(function(){var m=document.getElementById('msg');"
                        "return m.hidden ? '' : m.innerText;})()", 20, "the refusal shown")
        # The API's own error text, and its status.
        self.assertIn("403", t)
        self.assertIn("wrong token", t)
        self.assertFalse(b.eval("bad", "document.getElementById('tokenform').hidden"))
        # No state leaked into the page.
        self.assertTrue(b.eval("bad", "document.getElementById('live').hidden"))
        self.shot("5-wrong-token", page="bad")
        # Typing the right token in the form brings the page to life.
        b.do("fill", name="bad", selector="#token", value=TOKEN)
        b.do("click", name="bad", selector="#tokensave")
        b.wait_eval("bad", "!document.getElementById('live').hidden", 20, "the page after the token")
        b.do("close", name="bad")

    def test_3_phone_width(self):
        b = self.browser
        self.open_live(name="phone", width=390, height=844)
        sizes = b.eval("phone", "[document.documentElement.scrollWidth, document.body.scrollWidth,"
                       " window.innerWidth]")
        self.assertLessEqual(sizes[0], sizes[2], sizes)
        self.assertLessEqual(sizes[1], sizes[2], sizes)
        # Every node row is readable as a card: its cells carry their labels.
        labels = b.eval("phone", "getComputedStyle(document.querySelector('#pool-hk td'),"
                        "'::before').content")
        self.assertIn("Node", labels)
        self.shot("6-phone", page="phone")
        b.do("close", name="phone")

    def test_4_no_javascript_snapshot(self):
        b = self.browser
        # Without a token: the shell says one is needed, and shows no state.
        b.do("open", name="nojs", url=self.url(None), js=False)
        t = b.eval("nojs", "document.body.innerText")
        self.assertIn("admin token is needed", t)
        self.assertNotIn("127.0.0.1:%d" % self.o["a"].rtmp_port, t)
        self.shot("7-nojs-no-token", page="nojs")
        b.do("close", name="nojs")
        # With the header (what curl sends, or a text browser behind a proxy
        # that adds it): the server-side tables.
        c = http.client.HTTPConnection("127.0.0.1", self.aport, timeout=15)
        c.request("GET", "/", headers={"Authorization": "Bearer " + TOKEN})
        r = c.getresponse()
        html = r.read().decode()
        c.close()
        self.assertEqual(r.status, 200)
        self.assertIn("text/html", r.getheader("Content-Type"))
        self.assertIn('data-state="filled"', html)
        for n in ("a", "b", "x", "c"):
            self.assertIn('<tr data-node="%s">' % n, html)
        self.assertIn("<h2>Routes</h2>", html)
        # The same in Chromium with JavaScript off, the header set by the context.
        st = b.do("open", name="nojs3", url=self.url(None), js=False,
                  headers={"Authorization": "Bearer " + TOKEN})
        self.assertEqual(st["status"], 200)
        t = b.eval("nojs3", "document.getElementById('snapshot').innerText")
        self.assertIn("Lines (pools) and nodes", t)
        self.assertIn("Line hk", t)
        self.assertIn("Line sg", t)
        self.assertRegex(t, r"Routes\s")
        self.assertIn("\u2714 up", t)
        self.assertTrue(b.eval("nojs3", "document.getElementById('live').hidden"))
        self.shot("8-nojs-snapshot", page="nojs3")
        b.do("close", name="nojs3")


if __name__ == "__main__":
    harness.main()
