"""Binary upgrade (SIGUSR2) with live sessions, black box: a real nginx-rtmp
origin, 200 held plays and loops of new plays through rtmplb while it
re-executes itself. The new process inherits the listening sockets, the old
one drains its own sessions; nothing is dropped or refused. A new process
that cannot start (a broken config) leaves the old one serving."""

import os
import re
import signal
import socket
import time
import unittest
import urllib.request

import harness
from harness import Fleet, free_port, nginx_streams, wait_for

PLAYS = 200
HOLD_MS = 25000


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class Upgrade(unittest.TestCase):
    def setUp(self):
        f = self.fleet = Fleet()
        self.addCleanup(f.stop)
        self.origin = f.nginx_origin("o", free_port(), free_port())
        self.port, self.admin = free_port(), free_port()
        self.conf = """
workers: 2
timeouts: {handshake: 10s}
admin: {address: 127.0.0.1:%d, public_read: true}
listeners: [{name: front, address: 127.0.0.1:%d}]
pools: {origins: {nodes: [{name: o, address: 127.0.0.1:%d}]}}
routes: [{name: all, pool: origins}]
""" % (self.admin, self.port, self.origin.rtmp_port)
        # systemd's notify socket, as systemd would pass it.
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(self.notify.close)
        self.notify.bind(os.path.join(f.dir, "notify.sock"))
        os.environ["NOTIFY_SOCKET"] = os.path.join(f.dir, "notify.sock")
        try:
            self.lb = f.rtmplb(self.conf, wait_ports=[self.port])
        finally:
            del os.environ["NOTIFY_SOCKET"]

    def notifications(self):
        self.notify.settimeout(5)
        out = []
        try:
            while True:
                out.append(self.notify.recv(256).decode())
                self.notify.settimeout(0.2)
        except socket.timeout:
            pass
        return out

    def new_pid(self):
        m = re.search(r"pid (\d+) serves now", self.fleet.log_text("rtmplb"))
        return int(m.group(1)) if m else None

    def stop_new(self, pid):
        """The new process is not our child: stop it by PID, wait until gone."""
        self.fleet.extra_pids.append(pid)  # SIGKILL at cleanup if it lingers
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not alive(pid), 30, "the new process exits on SIGTERM")

    def probe(self, name, *args):
        return self.fleet.probe([*args, "127.0.0.1", str(self.port), "live", "up"], name=name)

    def sessions(self):
        text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.admin,
                                      timeout=10).read().decode()
        return int(re.search(r"^rtmplb_sessions (\d+)", text, re.M).group(1))

    def test_a_failed_start_keeps_the_old_process(self):
        # A config the new process rejects: it exits, the old one serves on.
        with open(self.lb.conf_path, "w") as f:
            f.write(self.conf + "bogus_key: 1\n")
        self.lb.send_signal(signal.SIGUSR2)
        wait_for(lambda: "before it was ready" in self.fleet.log_text("rtmplb"), 30,
                 "the failed upgrade is logged")
        log = self.fleet.log_text("rtmplb")
        self.assertIn("keeps serving", log)
        self.assertIn("bogus_key", log, "the new process's own errors are in the log")
        self.assertIsNone(self.lb.poll(), "the old process still runs")
        with open(self.lb.conf_path, "w") as f:
            f.write(self.conf)
        pub = self.probe("pub", "--publish", "--hold", "8000")
        wait_for(lambda: "up" in nginx_streams(self.origin.http_port), 20, "publish")
        rc, out = self.fleet.probe_result(self.probe("after-failure"))
        self.assertEqual((rc, out.split()[0]), (0, "ok"), out)
        self.fleet._end(pub, signal.SIGTERM)

    def test_b_upgrade_with_live_plays(self):
        f = self.fleet
        pub = self.probe("pub", "--publish", "--hold", "120000")
        wait_for(lambda: "up" in nginx_streams(self.origin.http_port), 20, "publish")
        holds = [self.probe("hold%d" % i, "--hold", str(HOLD_MS)) for i in range(PLAYS)]
        wait_for(lambda: self.sessions() >= PLAYS + 1, 60, "%d plays live" % PLAYS)
        # Loops of new plays across the upgrade: each connects, plays to the
        # first media message and closes, one after another.
        loops = [self.probe("loop%d" % i, "--count", "60") for i in range(4)]
        time.sleep(1)
        old_pid = self.lb.pid
        self.lb.send_signal(signal.SIGUSR2)
        wait_for(lambda: self.new_pid(), 30, "the new process serves")
        new = self.new_pid()
        self.assertNotEqual(new, old_pid)
        try:
            loop_out = [f.probe_result(p, timeout=180) for p in loops]
            for i, (rc, out) in enumerate(loop_out):
                lines = out.split("\n")[:-1]
                self.assertEqual(len(lines), 60, "loop%d: %s" % (i, out[-300:]))
                bad = [l for l in lines if not l.startswith("ok")]
                self.assertEqual(bad, [], "loop%d: new plays refused or failed" % i)
                self.assertEqual(rc, 0)
            dropped = []
            for i, p in enumerate(holds):
                rc, out = f.probe_result(p, timeout=120)
                if rc != 0 or not out.startswith("ok"):
                    dropped.append("hold%d: %s" % (i, out.strip()))
            self.assertEqual(dropped, [], "live plays dropped by the upgrade")
            # The old process drains: it still has the publisher. The new
            # one serves new plays meanwhile.
            self.assertIsNone(self.lb.poll(), "the old process drains its publisher")
            rc, out = f.probe_result(self.probe("on-new"))
            self.assertEqual((rc, out.split()[0]), (0, "ok"), out)
            f._end(pub, signal.SIGTERM)
            self.assertEqual(self.lb.wait(30), 0, "the old process exits once drained")
            self.assertTrue(alive(new), "the new process outlives the old")
            log = f.log_text("rtmplb")
            self.assertIn("took over the listening sockets from pid %d" % old_pid, log)
            self.assertIn("2 inherited", log)
            self.assertEqual(self.notifications(),
                             ["READY=1\nMAINPID=%d" % old_pid, "READY=1\nMAINPID=%d" % new],
                             "systemd is told when each process is ready, and who is main")
            # The admin API is the new process's: its uptime is younger.
            text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.admin,
                                          timeout=10).read().decode()
            self.assertRegex(text, r"(?m)^rtmplb_sessions 0$")
            # A second upgrade from the new process works the same way.
            os.kill(new, signal.SIGUSR2)
            wait_for(lambda: len(re.findall(r"serves now", f.log_text("rtmplb"))) == 2, 30,
                     "a second upgrade")
            newer = int(re.findall(r"pid (\d+) serves now", f.log_text("rtmplb"))[-1])
            wait_for(lambda: not alive(new), 30, "the first new process exits (no sessions)")
            pub = self.probe("pub2", "--publish", "--hold", "6000")
            wait_for(lambda: "up" in nginx_streams(self.origin.http_port), 20, "publish again")
            rc, out = f.probe_result(self.probe("on-newer"))
            self.assertEqual((rc, out.split()[0]), (0, "ok"), out)
            f._end(pub, signal.SIGTERM)
            self.stop_new(newer)
        finally:
            for pid in (new,):
                if alive(pid):
                    self.fleet.extra_pids.append(pid)


if __name__ == "__main__":
    harness.main()
