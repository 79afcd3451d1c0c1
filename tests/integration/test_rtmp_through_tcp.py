"""Real RTMP through a tcp-mode rtmplb: two stock nginx-rtmp origins, ffmpeg
publishing a test pattern through rtmplb and ffmpeg playing it back through
rtmplb, frames decoded. Then the primary origin dies (master and workers
killed) and the backup origin takes new sessions."""

import time
import unittest

import harness
from harness import Fleet, access_lines, free_port, nginx_streams


def wait_stream(http_port, name, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        streams = nginx_streams(http_port)
        if name in streams and streams[name][0]:
            return streams
        time.sleep(0.2)
    raise AssertionError("stream %s never published on :%d (have %r)"
                         % (name, http_port, nginx_streams(http_port)))


class RtmpThroughTcp(unittest.TestCase):
    def setUp(self):
        self.fleet = Fleet()

    def tearDown(self):
        self.fleet.stop()

    def test_publish_and_play_through_rtmplb_then_failover(self):
        f = self.fleet
        a = f.nginx_origin("a", free_port(), free_port())
        b = f.nginx_origin("b", free_port(), free_port())
        front = free_port()
        lb = f.rtmplb("""
workers: 2
listeners:
  - {name: rtmp, address: 127.0.0.1:%d, mode: tcp}
pools:
  origins:
    nodes:
      - {name: origin-a, address: 127.0.0.1:%d}
      - {name: origin-b, address: 127.0.0.1:%d, backup: true}
routes:
  - {name: all, pool: origins}
""" % (front, a.rtmp_port, b.rtmp_port), wait_ports=[front])

        url = "rtmp://127.0.0.1:%d/live/test1" % front
        pub = f.publish(url, name="publish1")
        wait_stream(a.http_port, "test1")
        frames = f.play_frames(url, 50, name="play1")
        print("through rtmplb to origin-a: %d frames decoded" % frames)
        self.assertGreaterEqual(frames, 50)  # played until 50 frames, or 40 s passed

        # The stream lives on origin-a only, and the play reached it there.
        self.assertIn("test1", nginx_streams(a.http_port))
        self.assertNotIn("test1", nginx_streams(b.http_port))
        self.assertIsNone(pub.poll(), "publisher died:\n" + f.log_text("publish1"))
        f.stop_proc(pub, timeout=10)

        # origin-a dies hard; new sessions go to the backup.
        f.kill_nginx(a)
        pub2 = f.publish("rtmp://127.0.0.1:%d/live/test2" % front, name="publish2")
        wait_stream(b.http_port, "test2")
        frames = f.play_frames("rtmp://127.0.0.1:%d/live/test2" % front, 50, name="play2")
        print("after origin-a died, via origin-b: %d frames decoded" % frames)
        self.assertGreaterEqual(frames, 50)
        f.stop_proc(pub2, timeout=10)

        self.assertEqual(f.stop_proc(lb), 0)
        log = f.log_text("rtmplb")
        sessions = access_lines(log)
        by_node = {}
        for s in sessions:
            by_node.setdefault(s["node"], []).append(s)
        self.assertEqual(len(by_node.get("origin-a", [])), 2, sessions)  # publish1 + play1
        self.assertEqual(len(by_node.get("origin-b", [])), 2, sessions)  # publish2 + play2
        # Real media went through: megabytes in from the publisher, out to the player.
        self.assertTrue(any(int(s["bytes_in"]) > 200000 for s in by_node["origin-a"]))
        self.assertTrue(any(int(s["bytes_out"]) > 200000 for s in by_node["origin-a"]))
        self.assertIn("dial_failed", log)


if __name__ == "__main__":
    harness.main()
