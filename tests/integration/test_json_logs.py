"""log.format: json gives one JSON object per line, and numbers are JSON
numbers: a short run (a tcp session, RTMP sessions that route, fail to find
their stream and never route, a reload, a stop) is parsed line by line with
json.loads, and every numeric field is checked for its type."""

import json
import os
import signal
import socket
import subprocess
import unittest

import harness
from harness import Fleet, TcpBackend, ask_name, free_port, wait_for

# Fields that are numbers wherever they appear; a value that is missing is
# null, never "-".
NUMERIC = ("bytes_in", "bytes_out", "duration_ms", "dials", "preroute_ms", "attempt",
           "generation", "pools", "routes", "checks", "streams", "failed_polls")
# Each of these must appear at least once, so the check is not vacuous.
MUST_SEE = ("bytes_in", "bytes_out", "duration_ms", "dials", "preroute_ms", "attempt")


class JsonLogs(unittest.TestCase):
    def test_every_line_parses_and_numbers_are_numbers(self):
        f = Fleet()
        self.addCleanup(f.stop)
        rp, hp = free_port(), free_port()
        f.nginx_origin("origin", rp, hp)
        backend = TcpBackend("backend-1")
        f.threads.append(backend)
        tcp_port, rtmp_port = free_port(), free_port()
        lb = f.rtmplb("""
workers: 1
log: {format: json, level: info, access_log: stderr}
listeners:
  - {name: tcp, address: 127.0.0.1:%d, mode: tcp}
  - {name: rtmp, address: 127.0.0.1:%d}
pools:
  backends:
    nodes: [{name: backend-1, address: 127.0.0.1:%d}]
  origins:
    health: {type: rtmp, app: live, interval: 500ms, timeout: 300ms}
    nodes: [{name: origin, address: 127.0.0.1:%d, stats: {kind: nginx-rtmp, url: "http://127.0.0.1:%d/stat"}}]
routes:
  - {name: tcp, match: {listener: tcp}, pool: backends}
  - {name: rtmp, match: {listener: rtmp}, pool: origins, policy: stream_affinity}
""" % (tcp_port, rtmp_port, backend.port, rp, hp), wait_ports=[tcp_port])
        probe = os.path.join(os.path.dirname(harness.ARGS.rtmplb), "rtmp_probe")

        self.assertEqual(ask_name(tcp_port), "backend-1")
        r = subprocess.run([probe, "--publish", "--hold", "500", "127.0.0.1", str(rtmp_port),
                            "live", "cam"], capture_output=True, text=True, timeout=30)
        self.assertTrue(r.stdout.startswith("ok "), r.stdout + r.stderr)
        r = subprocess.run([probe, "127.0.0.1", str(rtmp_port), "live", "nothing-here"],
                           capture_output=True, text=True, timeout=30)
        self.assertIn("StreamNotFound", r.stdout)
        # An RTMP client that leaves before routing: no pre-route time.
        s = socket.create_connection(("127.0.0.1", rtmp_port), timeout=5)
        s.close()
        lb.send_signal(signal.SIGHUP)
        wait_for(lambda: '"event":"reloaded"' in f.log_text("rtmplb"), 20, "the reload")
        wait_for(lambda: f.log_text("rtmplb").count('"event":"session"') >= 4, 20,
                 "four session lines")
        self.assertEqual(f.stop_proc(lb), 0)

        seen = {}
        lines = [l for l in f.log_text("rtmplb").splitlines() if l.strip()]
        self.assertGreater(len(lines), 8)
        for line in lines:
            with self.subTest(line=line):
                obj = json.loads(line)
                self.assertIsInstance(obj, dict)
                for key in ("ts", "level", "event"):
                    self.assertIsInstance(obj.get(key), str)
                for key in NUMERIC:
                    if key in obj:
                        v = obj[key]
                        self.assertTrue(v is None or (isinstance(v, (int, float))
                                                      and not isinstance(v, bool)),
                                        "%s is %r, not a number" % (key, v))
                        seen.setdefault(key, []).append(v)
        for key in MUST_SEE:
            self.assertIn(key, seen, "no line had " + key)
        self.assertTrue(any(isinstance(v, (int, float)) for v in seen["preroute_ms"]))
        self.assertIn(None, seen["preroute_ms"], "the unrouted session's preroute_ms is null")
        sessions = [json.loads(l) for l in lines if '"event":"session"' in l]
        routed = [x for x in sessions if x.get("node") == "backend-1"]
        self.assertTrue(routed and routed[0]["bytes_out"] >= len("backend-1\n"))


if __name__ == "__main__":
    harness.main()
