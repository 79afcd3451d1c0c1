"""tcp-mode balancing, black box: weights, dead nodes, backups, max_sessions,
byte integrity, half-close, idle timeout, drain on SIGTERM, reload on SIGHUP."""

import concurrent.futures
import hashlib
import os
import re
import signal
import socket
import time
import unittest

import harness
from harness import (Fleet, TcpBackend, ask_name, access_lines, free_port, recv_closed, recv_exact,
                     wait_for)


def config(front, nodes, extra="", policy="weighted", workers=2):
    lines = ["workers: %d" % workers, extra,
             "listeners:",
             "  - {name: front, address: 127.0.0.1:%d, mode: tcp}" % front,
             "pools:", "  p:", "    nodes:"]
    for n in nodes:
        lines.append("      - {%s}" % ", ".join("%s: %s" % kv for kv in n.items()))
    lines += ["routes:", "  - {name: all, pool: p, policy: %s}" % policy, ""]
    return "\n".join(lines)


def node(name, port, **kw):
    d = {"name": name, "address": "127.0.0.1:%d" % port}
    d.update(kw)
    return d


class TcpBalance(unittest.TestCase):
    def setUp(self):
        self.fleet = Fleet()
        self.front = free_port()

    def tearDown(self):
        self.fleet.stop()

    def backend(self, name, **kw):
        b = TcpBackend(name, **kw)
        self.fleet.threads.append(b)
        return b

    def names(self, n, workers=16):
        with concurrent.futures.ThreadPoolExecutor(workers) as ex:
            return list(ex.map(lambda _: ask_name(self.front), range(n)))

    def test_weights_3_2_1_over_600_connections(self):
        a, b, c = self.backend("a"), self.backend("b"), self.backend("c")
        self.fleet.rtmplb(config(self.front, [node("a", a.port, weight=3),
                                              node("b", b.port, weight=2),
                                              node("c", c.port, weight=1)]),
                          wait_ports=[self.front])
        got = self.names(600)
        counts = {n: got.count(n) for n in "abc"}
        print("600 connections:", counts)
        self.assertEqual(sum(counts.values()), 600)
        for n, want in (("a", 300), ("b", 200), ("c", 100)):
            self.assertLessEqual(abs(counts[n] - want), want * 0.05, counts)

    def test_closed_node_is_skipped_without_hang(self):
        b = self.backend("b")
        dead = free_port()  # nothing listens here
        lb = self.fleet.rtmplb(config(self.front, [node("dead", dead, weight=5),
                                                   node("b", b.port)]),
                               wait_ports=[self.front])
        t0 = time.monotonic()
        for _ in range(20):
            # A refused dial is immediate: the client must not wait out the
            # 3 s connect timeout. ask_name's own 10 s timeout bounds a hang.
            start = time.monotonic()
            self.assertEqual(ask_name(self.front, timeout=10), "b")
            self.assertLess(time.monotonic() - start, 2.9)
        print("20 connections past a refused node in %.2fs" % (time.monotonic() - t0))
        self.fleet.stop_proc(lb)
        log = self.fleet.log_text("rtmplb")
        self.assertIn("dial_failed", log)
        self.assertIn("node=dead", log)
        sessions = access_lines(log)
        self.assertEqual(len(sessions), 20)
        self.assertTrue(all(s["node"] == "b" for s in sessions))
        self.assertTrue(any(s["dials"] == "2" for s in sessions))

    def test_all_nodes_dead_closes_client(self):
        lb = self.fleet.rtmplb(config(self.front, [node("x", free_port()), node("y", free_port())]),
                               wait_ports=[self.front])
        s = socket.create_connection(("127.0.0.1", self.front), timeout=10)
        self.assertTrue(recv_closed(s))  # closed, not hung (socket.timeout otherwise)
        s.close()
        self.fleet.stop_proc(lb)
        sessions = access_lines(self.fleet.log_text("rtmplb"))
        self.assertEqual(sessions[-1]["reason"], "dial_failed")
        self.assertEqual(sessions[-1]["dials"], "2")

    def test_connect_timeout_moves_on(self):
        b = self.backend("b")
        # A listener with a full backlog never completes the handshake: a
        # black hole on loopback. 198.18.0.0/15 would leave the box; don't.
        hole = socket.socket()
        hole.bind(("127.0.0.1", free_port()))
        hole.listen(0)
        fillers = []
        for _ in range(8):  # fill the accept queue and SYN backlog
            f = socket.socket()
            f.setblocking(False)
            f.connect_ex(hole.getsockname())
            fillers.append(f)
        try:
            self.fleet.rtmplb(config(self.front, [node("hole", hole.getsockname()[1], weight=9),
                                                  node("b", b.port)],
                                     extra="timeouts: {connect: 300ms}"),
                              wait_ports=[self.front])
            start = time.monotonic()
            self.assertEqual(ask_name(self.front, timeout=20), "b")
            took = time.monotonic() - start
            print("dial through a black hole fell over in %.2fs" % took)
            # One 300 ms dial timeout (the hole is picked first 9 times in
            # 10), not the 3 s default nor a hang.
            self.assertLess(took, 2.9)
        finally:
            for f in fillers:
                f.close()
            hole.close()

    def test_backups_only_when_every_primary_is_closed(self):
        a, b, k = self.backend("a"), self.backend("b"), self.backend("k")
        self.fleet.rtmplb(config(self.front, [node("a", a.port), node("b", b.port),
                                              node("k", k.port, backup="true")]),
                          wait_ports=[self.front])
        got = self.names(60)
        self.assertEqual(got.count("k"), 0)
        self.assertEqual(got.count("a") + got.count("b"), 60)
        a.stop()
        got = self.names(20)
        self.assertEqual(set(got), {"b"})  # one primary left: still no backup
        b.stop()
        got = self.names(20)
        self.assertEqual(set(got), {"k"})  # every primary closed: the backup
        a.start()
        got = self.names(20)
        self.assertEqual(set(got), {"a"})  # a primary is back: backup idle again

    def test_max_sessions_spills_to_next_node(self):
        a, b = self.backend("a"), self.backend("b")
        self.fleet.rtmplb(config(self.front, [node("a", a.port, weight=100, max_sessions=2),
                                              node("b", b.port)], workers=1),
                          wait_ports=[self.front])
        held = []
        for _ in range(4):
            s = socket.create_connection(("127.0.0.1", self.front), timeout=5)
            held.append((s, s.makefile("rb").readline().strip()))
        names = [n for _, n in held]
        self.assertEqual(names.count(b"a"), 2, names)
        self.assertEqual(names.count(b"b"), 2, names)
        for s, _ in held:
            s.close()
        # Slots are freed when rtmplb sees the closes: a soon comes first again.
        wait_for(lambda: ask_name(self.front, timeout=10) == "a", 10, "a slot of a to free up", 0.1)

    def test_bytes_intact_both_ways_with_half_close(self):
        e = self.backend("e", mode="echo")
        lb = self.fleet.rtmplb(config(self.front, [node("e", e.port)]), wait_ports=[self.front])
        payload = os.urandom(24 << 20)

        def run():
            s = socket.create_connection(("127.0.0.1", self.front), timeout=30)
            got = bytearray()

            def reader():
                while True:
                    d = s.recv(1 << 16)
                    if not d:
                        return
                    got.extend(d)

            import threading
            t = threading.Thread(target=reader)
            t.start()
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)  # half-close: the echo must still come back
            t.join(60)
            s.close()
            return bytes(got)

        with concurrent.futures.ThreadPoolExecutor(4) as ex:
            results = list(ex.map(lambda _: run(), range(4)))
        want = hashlib.sha256(payload + b"EOF").hexdigest()
        for r in results:
            self.assertEqual(len(r), len(payload) + 3)
            self.assertEqual(hashlib.sha256(r).hexdigest(), want)
        self.fleet.stop_proc(lb)
        sessions = access_lines(self.fleet.log_text("rtmplb"))
        self.assertEqual(len(sessions), 4)
        for s in sessions:
            self.assertEqual(int(s["bytes_in"]), len(payload))
            self.assertEqual(int(s["bytes_out"]), len(payload) + 3)
            self.assertEqual(s["reason"], "client_closed")

    def test_copy_fallback_when_pipes_run_out(self):
        """Under a 200-descriptor limit the pipe budget is 4 pipes per worker.
        The backend does not read for a second, so all 16 sessions hold
        bytes in flight at once: most must fall back to copying, intact."""
        e = self.backend("e", mode="slow_echo")
        lb = self.fleet.rtmplb(config(self.front, [node("e", e.port)]), wait_ports=[self.front],
                               nofile=200)
        payload = os.urandom(4 << 20)

        def run(_):
            s = socket.create_connection(("127.0.0.1", self.front), timeout=30)
            got = bytearray()
            import threading
            t = threading.Thread(target=lambda: [got.extend(d) for d in iter(lambda: s.recv(1 << 16), b"")])
            t.start()
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)
            t.join(60)
            s.close()
            return hashlib.sha256(bytes(got)).hexdigest()

        with concurrent.futures.ThreadPoolExecutor(16) as ex:
            digests = list(ex.map(run, range(16)))
        want = hashlib.sha256(payload + b"EOF").hexdigest()
        self.assertEqual(digests, [want] * 16)
        self.assertEqual(self.fleet.stop_proc(lb), 0)
        log = self.fleet.log_text("rtmplb")
        self.assertIn("open-file limit 200", log)
        copied = [int(n) for n in re.findall(r"(\d+) transfers copied for want of a pipe", log)]
        print("pipes ran out; transfers copied instead:", copied)
        self.assertEqual(len(copied), 2)  # one line per worker
        self.assertGreater(sum(copied), 0)

    def test_idle_sessions_hold_no_pipes(self):
        e = self.backend("e", mode="echo")
        lb = self.fleet.rtmplb(config(self.front, [node("e", e.port)]), wait_ports=[self.front])
        held = []
        for i in range(300):
            s = socket.create_connection(("127.0.0.1", self.front), timeout=10)
            s.sendall(b"x")  # both directions borrow a pipe once
            self.assertEqual(s.recv(1), b"x")
            held.append(s)
        kinds = {}
        for fd in os.listdir("/proc/%d/fd" % lb.pid):
            try:
                target = os.readlink("/proc/%d/fd/%s" % (lb.pid, fd))
            except OSError:
                continue
            kind = target.split(":")[0] if ":" in target else "file"
            kinds[kind] = kinds.get(kind, 0) + 1
        print("300 idle sessions, rtmplb descriptors:", kinds)
        self.assertGreaterEqual(kinds.get("socket", 0), 600)
        # Only the per-worker idle pools keep pipes (64 each, 2 fds a pipe),
        # never the sessions: 300 sessions holding theirs would be 1200 fds.
        self.assertLessEqual(kinds.get("pipe", 0), 2 * 64 * 2)
        for s in held:
            s.close()

    def test_backpressure_from_a_backend_that_stops_reading(self):
        """A backend that accepts and never reads: the client's writes must
        stall after socket buffers plus one pipe, not pile up in rtmplb."""
        sink = socket.socket()
        sink.bind(("127.0.0.1", free_port()))
        sink.listen(4)
        sink.settimeout(10)
        lb = self.fleet.rtmplb(config(self.front, [node("sink", sink.getsockname()[1])]),
                               wait_ports=[self.front])
        try:
            c = socket.create_connection(("127.0.0.1", self.front), timeout=5)
            conn, _ = sink.accept()  # accepted, never read
            c.setblocking(False)
            chunk = b"\0" * (1 << 16)
            sent = 0
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline and sent < (512 << 20):
                try:
                    sent += c.send(chunk)
                except BlockingIOError:
                    time.sleep(0.01)
            rss_kb = int(open("/proc/%d/status" % lb.pid).read().split("VmRSS:")[1].split()[0])
            print("backend not reading: client got %.1f MiB in before stalling; rtmplb RSS %d KiB"
                  % (sent / 1048576, rss_kb))
            # Kernel socket buffers on both sides plus one pipe: tens of MiB
            # at most. A proxy that buffered without bound would take it all.
            self.assertLess(sent, 64 << 20)
            self.assertLess(rss_kb, 64 * 1024)
            c.close()
            conn.close()
        finally:
            sink.close()

    def test_json_log_lines(self):
        import json
        b = self.backend("b")
        lb = self.fleet.rtmplb(config(self.front, [node("b", b.port)],
                                      extra="log: {format: json}"),
                               wait_ports=[self.front])
        self.assertEqual(ask_name(self.front), "b")
        # Stop only once the session has ended (else it ends by the shutdown).
        wait_for(lambda: '"event":"session"' in self.fleet.log_text("rtmplb").replace(" ", ""),
                 10, "the session's log line")
        self.assertEqual(self.fleet.stop_proc(lb), 0)
        lines = [json.loads(l) for l in self.fleet.log_text("rtmplb").splitlines()]
        events = [l["event"] for l in lines]
        self.assertIn("started", events)
        self.assertIn("stopped", events)
        session = [l for l in lines if l["event"] == "session"]
        self.assertEqual(len(session), 1)
        s = session[0]
        self.assertEqual(s["node"], "b")
        self.assertEqual(s["pool"], "p")
        self.assertEqual(s["listener"], "front")
        self.assertEqual(s["bytes_out"], 2)  # "b\n"
        self.assertEqual(s["reason"], "client_closed")
        self.assertIsInstance(s["duration_ms"], int)
        self.assertRegex(s["ts"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")

    def test_idle_timeout(self):
        b = self.backend("b")
        lb = self.fleet.rtmplb(config(self.front, [node("b", b.port)],
                                      extra="timeouts: {idle: 1s}"),
                               wait_ports=[self.front])
        # The idle clock starts with the session, after our connect begins:
        # timed from before connect, the window is never shorter than 1 s.
        start = time.monotonic()
        s = socket.create_connection(("127.0.0.1", self.front), timeout=20)
        self.assertEqual(s.makefile("rb").readline(), b"b\n")
        self.assertTrue(recv_closed(s))
        took = time.monotonic() - start
        print("idle session closed after %.2fs (idle timeout 1 s)" % took)
        self.assertGreater(took, 0.95)
        self.assertLess(took, 10.0)
        s.close()
        self.fleet.stop_proc(lb)
        self.assertEqual(access_lines(self.fleet.log_text("rtmplb"))[-1]["reason"], "idle_timeout")

    def test_sigterm_drains_live_sessions(self):
        e = self.backend("e", mode="echo")
        lb = self.fleet.rtmplb(config(self.front, [node("e", e.port)],
                                      extra="timeouts: {drain: 20s}"),
                               wait_ports=[self.front])
        s = socket.create_connection(("127.0.0.1", self.front), timeout=10)
        s.sendall(b"ping")
        self.assertEqual(recv_exact(s, 4), b"ping")
        lb.send_signal(signal.SIGTERM)
        # The signal is handled (and the live sessions counted) before any
        # probe of the listener below could become a session of its own.
        wait_for(lambda: "no longer accepting" in self.fleet.log_text("rtmplb"), 10,
                 "the SIGTERM line", 0.05)
        self.assertIn("draining 1 sessions", self.fleet.log_text("rtmplb"))

        def refused():
            try:
                socket.create_connection(("127.0.0.1", self.front), timeout=2).close()
                return False
            except OSError:
                return True
        # No longer accepting (once the signal is handled)...
        wait_for(refused, 10, "the listener to close", 0.1)
        # ...but the live session still flows.
        s.sendall(b"pong")
        self.assertEqual(recv_exact(s, 4), b"pong")
        self.assertIsNone(lb.poll())
        s.close()
        self.assertEqual(lb.wait(10), 0)

    def test_drain_deadline_closes_stragglers(self):
        e = self.backend("e", mode="echo")
        lb = self.fleet.rtmplb(config(self.front, [node("e", e.port)],
                                      extra="timeouts: {drain: 1s}"),
                               wait_ports=[self.front])
        s = socket.create_connection(("127.0.0.1", self.front), timeout=5)
        s.sendall(b"x")
        self.assertEqual(s.recv(1), b"x")
        start = time.monotonic()
        lb.send_signal(signal.SIGTERM)
        self.assertEqual(lb.wait(20), 0)
        took = time.monotonic() - start
        # Timed from before the signal: never shorter than rtmplb's 1 s.
        print("drain deadline: rtmplb exited %.2fs after SIGTERM (drain 1 s)" % took)
        self.assertGreater(took, 0.95)
        self.assertLess(took, 10.0)
        self.assertEqual(access_lines(self.fleet.log_text("rtmplb"))[-1]["reason"], "shutdown")
        s.close()

    def test_sighup_reload_changes_weights_keeps_sessions(self):
        a, b = self.backend("a"), self.backend("b")
        text = config(self.front, [node("a", a.port), node("b", b.port, weight=1000)], workers=1)
        lb = self.fleet.rtmplb(text, wait_ports=[self.front])
        held = socket.create_connection(("127.0.0.1", self.front), timeout=5)
        self.assertEqual(held.makefile("rb").readline(), b"b\n")
        got = self.names(20, workers=1)
        self.assertGreaterEqual(got.count("b"), 19)
        with open(lb.conf_path, "w") as f:
            f.write(config(self.front, [node("a", a.port, weight=1000), node("b", b.port)],
                           workers=1))
        lb.send_signal(signal.SIGHUP)
        wait_for(lambda: "reloaded" in self.fleet.log_text("rtmplb"), 10, "the reload")
        got = self.names(20, workers=1)
        self.assertGreaterEqual(got.count("a"), 19)
        # A broken file is refused and the running config stays.
        with open(lb.conf_path, "w") as f:
            f.write("workers: [\n")
        lb.send_signal(signal.SIGHUP)
        wait_for(lambda: "reload_failed" in self.fleet.log_text("rtmplb"), 10, "the refused reload")
        self.assertGreaterEqual(self.names(10, workers=1).count("a"), 9)
        self.assertIsNone(lb.poll())
        held.close()

    def test_max_sessions_refuses_cleanly(self):
        e = self.backend("e", mode="echo")
        lb = self.fleet.rtmplb(config(self.front, [node("e", e.port)],
                                      extra="limits: {max_sessions: 3}"),
                               wait_ports=[self.front])
        held = [socket.create_connection(("127.0.0.1", self.front), timeout=5) for _ in range(3)]
        for s in held:
            s.sendall(b"a")
            self.assertEqual(s.recv(1), b"a")
        extra = socket.create_connection(("127.0.0.1", self.front), timeout=5)
        self.assertEqual(extra.recv(1), b"")  # refused: closed at once
        extra.close()
        for s in held:  # the others are untouched
            s.sendall(b"b")
            self.assertEqual(s.recv(1), b"b")
            s.close()
        self.fleet.stop_proc(lb)
        self.assertIn("session_refused", self.fleet.log_text("rtmplb"))


if __name__ == "__main__":
    harness.main()
