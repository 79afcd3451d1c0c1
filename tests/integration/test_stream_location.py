"""stream_location plays a stream from where it is live, even from a
backup origin while the primary is up (the defect: such a play went to the
primary and waited forever on an empty stream)."""
import json
import unittest
import urllib.request

import harness
from harness import Fleet, free_port, nginx_streams, wait_for


class StreamOnBackup(unittest.TestCase):
    def setUp(self):
        f = self.fleet = Fleet()
        self.addCleanup(f.stop)
        self.primary = (free_port(), free_port())
        self.backup = (free_port(), free_port())
        f.nginx_origin("primary", *self.primary)
        f.nginx_origin("backup", *self.backup)
        self.front = free_port()
        self.admin = free_port()
        node = lambda n, p, extra: ("{name: %s, address: 127.0.0.1:%d, %sstats: {kind: nginx-rtmp, "
                                    "url: \"http://127.0.0.1:%d/stat\"}}" % (n, p[0], extra, p[1]))
        f.rtmplb("""
listeners: [{name: rtmp, address: 127.0.0.1:%d}]
admin: {address: 127.0.0.1:%d, public_read: true}
pools:
  origins:
    health: {type: tcp, interval: 300ms, timeout: 200ms, rise: 1, fall: 2}
    nodes:
      - %s
      - %s
routes:
  - {name: play, match: {role: play}, pool: origins, policy: stream_location}
""" % (self.front, self.admin, node("primary", self.primary, ""), node("backup", self.backup, "backup: true, ")),
                 wait_ports=[self.front])

    def test_a_stream_live_only_on_the_backup_is_played_from_it(self):
        # Published straight to the backup origin, not through rtmplb: only
        # the backup's stats say where it is.
        self.fleet.publish("rtmp://127.0.0.1:%d/live/class1" % self.backup[0])
        wait_for(lambda: nginx_streams(self.backup[1]).get("class1", (False,))[0], 30,
                 "class1 live on the backup origin", 0.2)
        # Once the stats poll has seen it there (the router's own answer,
        # through the admin API), players keep coming while the primary is
        # up, and every one must get the stream.
        def located():
            url = "http://127.0.0.1:%d/api/v1/locate?app=live&stream=class1&role=play" % self.admin
            with urllib.request.urlopen(url, timeout=5) as r:
                return json.load(r).get("node") == "backup"
        wait_for(located, 30, "the router to locate class1 on the backup", 0.1)
        for i in range(3):
            frames = self.fleet.play_frames("rtmp://127.0.0.1:%d/live/class1" % self.front, 25,
                                            name="viewer%d" % i, timeout=40)
            self.assertGreaterEqual(frames, 25, "viewer %d decoded %d frames" % (i, frames))
        self.assertNotIn("class1", nginx_streams(self.primary[1]))
        sessions = [x for x in harness.access_lines(self.fleet.log_text("rtmplb"))
                    if x.get("stream") == "class1"]
        self.assertEqual([x["node"] for x in sessions], ["backup"] * len(sessions))
        self.assertEqual(len(sessions), 3)


if __name__ == "__main__":
    harness.main()
