"""The local fleet of scripts/fleet.sh, black box: the script itself starts
it in a temporary run directory on its own ports (--run-dir, --port-base,
--rtmplb: no apt-get, no build), so it never meets a developer's fleet.

From a clean state: every node (two origins, two edges) is up in
/api/v1/upstreams; the script's test stream was published through rtmplb
and sits on the origin stream_affinity picks; a play through the viewers'
listener reaches an edge that relays from that origin (the edge's /stat);
the origin is SIGKILLed by PID (master and workers), the script's publisher
publishes again through rtmplb, the stream lands on the other origin, and
viewers through the edges get frames relayed from it; `stop` leaves none of
the processes it started running. Also `fleet.sh geo`: clients "from JP"
and "from US" (PROXY-protocol relays) land on different lines of
conf/examples/geo-lines.yaml with a generated GeoIP database."""

import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.request
import xml.etree.ElementTree as ET

import harness
from harness import Fleet, nginx_streams, wait_for

NODES = ("origin-a", "origin-b", "edge-1", "edge-2")
# Offsets from --port-base, as scripts/fleet.sh maps them.
OFF = {"pub": 0, "play": 1, "admin": 2, "origin-a": 3, "origin-b": 4, "edge-1": 5, "edge-2": 6,
       "origin-a-http": 7, "origin-b-http": 8, "edge-1-http": 9, "edge-2-http": 10}
SPAN = 14


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) is not running.
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def children(pid):
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def edge_relays(http_port):
    """[(stream, address pulled from)] of an nginx-rtmp edge's /stat."""
    with urllib.request.urlopen("http://127.0.0.1:%d/stat" % http_port, timeout=5) as r:
        root = ET.fromstring(r.read())
    return [(s.findtext("name"), c.findtext("address") or "")
            for s in root.iter("stream") for c in s.iter("client")
            if c.findtext("flashver") == "ngx-local-relay"]


class LocalFleet(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.script = os.path.join(harness.ARGS.source, "scripts", "fleet.sh")
        cls.run_dir = tempfile.mkdtemp(prefix="rtmplb-fleet-")
        cls.base = harness.free_port_block(SPAN)
        cls.port = {k: cls.base + v for k, v in OFF.items()}
        cls.f = Fleet()  # the test's own players and their logs
        cls.addClassCleanup(cls.f.stop)
        cls.addClassCleanup(cls.last_resort)
        cls.started = cls.fleet("start", timeout=180)
        print(cls.started.stdout[-3000:])
        if cls.started.returncode != 0:
            raise AssertionError("fleet.sh start failed (%d):\n%s\n%s" % (
                cls.started.returncode, cls.started.stdout[-4000:], cls.started.stderr[-4000:]))
        with open(os.path.join(cls.run_dir, "admin.token")) as t:
            cls.token = t.read().strip()

    @classmethod
    def fleet(cls, *args, timeout=60):
        return subprocess.run(["bash", cls.script, "--run-dir", cls.run_dir, "--port-base", str(cls.base),
                               "--rtmplb", harness.ARGS.rtmplb] + list(args),
                              capture_output=True, text=True, timeout=timeout)

    @classmethod
    def pids(cls):
        """Every PID the fleet's files name, and their children."""
        out = set()
        for dirpath, _, files in os.walk(cls.run_dir):
            for name in files:
                if name.endswith(".pid"):
                    try:
                        with open(os.path.join(dirpath, name)) as f:
                            pid = int(f.read().strip())
                    except (OSError, ValueError):
                        continue
                    out.add(pid)
                    out.update(children(pid))
        return out

    @classmethod
    def last_resort(cls):
        """Whatever a failed test left: stop by the script, then by PID."""
        left = cls.pids()
        subprocess.run(["bash", cls.script, "--run-dir", cls.run_dir, "stop"], capture_output=True,
                       timeout=60)
        for pid in left:
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
        if not os.environ.get("RTMPLB_KEEP_TEST_DIR"):
            subprocess.run(["rm", "-rf", cls.run_dir])

    def api(self, path):
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.port["admin"], path),
                                     headers={"Authorization": "Bearer " + self.token})
        with urllib.request.urlopen(req, timeout=5) as r:
            return json.loads(r.read())

    def nodes(self):
        return {n["name"]: n for p in self.api("/api/v1/upstreams")["pools"] for n in p["nodes"]}

    def origin_of(self, stream):
        """The origins whose /stat shows stream published (a dead one: no)."""
        out = []
        for o in ("origin-a", "origin-b"):
            try:
                if nginx_streams(self.port[o + "-http"]).get(stream, (False,))[0]:
                    out.append(o)
            except OSError:
                pass
        return out

    def alive_origin(self, name):
        with open(os.path.join(self.run_dir, name, "nginx.pid")) as f:
            return pid_alive(int(f.read()))

    def play_through_edges(self, name, want_origin):
        """ffmpeg plays through the viewers' listener until 50 frames are
        decoded and an edge's /stat shows the relay; returns (frames, relays)."""
        seen = []

        def relay_seen():
            for e in ("edge-1", "edge-2"):
                seen.extend(r for r in edge_relays(self.port[e + "-http"]) if r[0] == "test")
            return bool(seen)
        url = "rtmp://127.0.0.1:%d/live/test" % self.port["play"]
        frames = self.f.play_frames(url, 50, name=name, timeout=60, until=relay_seen)
        return frames, seen

    def test_1_every_node_up_and_the_script_saw_frames(self):
        self.assertIn("frames decoded", self.started.stdout)
        self.assertIn("#token=" + self.token, self.started.stdout)
        nodes = wait_for(lambda: (lambda n: n if all(n[x]["state"] == "up" for x in NODES) else None)(
            self.nodes()), 20, "every node up")
        self.assertEqual(sorted(nodes), sorted(NODES))
        # The status page answers with the token (server-side tables).
        req = urllib.request.Request("http://127.0.0.1:%d/" % self.port["admin"],
                                     headers={"Authorization": "Bearer " + self.token})
        with urllib.request.urlopen(req, timeout=5) as r:
            page = r.read().decode()
        for n in NODES:
            self.assertIn(n, page)

    def test_2_publish_lands_on_an_origin_and_edges_relay_it(self):
        want = self.api("/api/v1/locate?app=live&stream=test&role=publish&listener=publish")["node"]
        on = wait_for(lambda: self.origin_of("test"), 30, "test live on an origin")
        self.assertEqual(on, [want], "stream_affinity's pick holds the stream, and only it")
        frames, seen = self.play_through_edges("edge-play-1", want)
        self.assertGreaterEqual(frames, 50, "frames through the viewers' listener")
        self.assertTrue(seen, "no edge relayed test")
        self.assertEqual({addr for _, addr in seen},
                         {"127.0.0.1:%d/live/test" % self.port[want]})
        # The viewer went through an edge, not straight to the origin.
        with open(os.path.join(self.run_dir, "rtmplb.log")) as f:
            log = f.read()
        self.assertRegex(log, r"compat_answer endpoint=nginx_on_play asking=edge-[12] app=live name=test")
        self.__class__.first_origin = want

    def test_3_geo_demo_jp_and_us_land_on_different_lines(self):
        """`fleet.sh geo`: conf/examples/geo-lines.yaml with a generated test
        database, clients "from JP" and "from US" through PROXY relays."""
        r = self.fleet("geo", timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout[-3000:] + r.stderr[-3000:])
        with open(os.path.join(self.run_dir, "geo", "rtmplb-geo.log")) as f:
            log = f.read()
        self.assertRegex(log, r"routed client=203\.0\.113\.7:\d+ listener=public role=publish app=live "
                              r"stream=from-jp route=japan-korea pool=tokyo node=tyo-1")
        self.assertRegex(log, r"routed client=198\.51\.100\.7:\d+ listener=public role=publish app=live "
                              r"stream=from-us route=everyone-else pool=world node=iad-1")
        self.assertEqual(self.origin_of("from-jp"), ["origin-a"])
        self.assertEqual(self.origin_of("from-us"), ["origin-b"])
        # The demo's publishers end by themselves in 20 s; spare the CPU now.
        for cc in ("jp", "us"):
            with open(os.path.join(self.run_dir, "geo-publish-%s.pid" % cc)) as f:
                pid = int(f.read())
            if pid_alive(pid):
                os.kill(pid, signal.SIGTERM)

    def test_4_origin_killed_stream_republished_elsewhere_reaches_viewers(self):
        first = getattr(self, "first_origin", None) or self.origin_of("test")[0]
        other = "origin-b" if first == "origin-a" else "origin-a"
        with open(os.path.join(self.run_dir, first, "nginx.pid")) as f:
            master = int(f.read())
        workers = children(master)
        os.kill(master, signal.SIGKILL)
        for w in workers:
            os.kill(w, signal.SIGKILL)
        wait_for(lambda: self.nodes()[first]["state"] == "down", 30, first + " down in rtmplb")
        # The script's publisher publishes again through rtmplb: the other origin.
        wait_for(lambda: self.origin_of("test") == [other], 60, "test republished on " + other)
        frames, seen = self.play_through_edges("edge-play-2", other)
        self.assertGreaterEqual(frames, 50, "frames through the edges after %s died" % first)
        self.assertTrue(seen)
        self.assertIn(("test", "127.0.0.1:%d/live/test" % self.port[other]), seen)
        self.assertNotIn(("test", "127.0.0.1:%d/live/test" % self.port[first]), seen[-1:])
        # status names the dead node.
        st = self.fleet("status")
        self.assertRegex(st.stdout, r"DEAD +%s" % first)
        self.assertRegex(st.stdout, r"origins +%s +down" % first)

    def test_5_stop_leaves_nothing_running(self):
        pids = self.pids()
        self.assertGreaterEqual(len(pids), 6, "rtmplb, publisher, nodes: %s" % pids)
        r = self.fleet("stop")
        self.assertEqual(r.returncode, 0, r.stderr)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(pid_alive(p) for p in pids):
            time.sleep(0.1)
        self.assertEqual([p for p in pids if pid_alive(p)], [], "left running after stop")
        ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
        self.assertNotIn(self.run_dir, ps)
        self.assertNotIn("127.0.0.1:%d/live/test" % self.port["pub"], ps)
        for port in (self.port["pub"], self.port["play"], self.port["admin"]):
            with self.assertRaises(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
        self.assertIn("nothing running", self.fleet("status").stdout)


if __name__ == "__main__":
    harness.main()
