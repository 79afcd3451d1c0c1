#!/usr/bin/env python3
"""Chaos soak (issue 12 item 6): not part of ctest; loopback only; bounded.

N nginx-rtmp origins behind rtmplb (rtmp health checks, nginx-rtmp stats,
publishers placed by stream_affinity, players by stream_location, an admin
API), P ffmpeg publishers (stream copy of a small generated FLV, restarted
when they end) and V players (tests/soak/soak_player.c, one process, each
player reconnects when its session ends) for --minutes. Meanwhile, every
60 s one origin is SIGKILLed (master and workers) and restarted 10 s later,
every 45 s rtmplb gets a SIGHUP (the config alternates between two valid
versions), every 90 s one live origin is set `draining` through the admin
API and `enabled` again 20 s later. Then the chaos stops, the fleet settles
and the script prints:
  - rtmplb crashes (exit status, sanitizer reports): must be 0;
  - open fds and RSS of rtmplb at start and end (same live sessions both
    times): fds may grow by at most --fd-slack (default 32), RSS by at most
    --rss-slack-mib (default 64; 512 for a sanitizer build);
  - sessions (players with media, publishers) that ended without their
    origin having been killed: must be 0;
  - sessions accepted while a node was down (node_down .. node_up in
    rtmplb's log) that went to a healthy node on their first dial: must be
    100%;
  - reconnect-to-first-frame p50/p99 for players whose origin died;
  - refused sessions and session ends by reason (from /metrics).
Exit status 0 when every must-hold holds, 1 otherwise, 2 on a setup error.

  TMPDIR=/work/tmp-soak python3 tests/soak/soak.py --rtmplb build-release/rtmplb --minutes 5
"""
import argparse
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(SOURCE, "tests", "integration"))
import harness  # noqa: E402
from harness import Fleet, free_port, wait_for  # noqa: E402

TOKEN = "soak-token-0123456789"


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rtmplb", default=os.path.join(SOURCE, "build-release", "rtmplb"),
                   help="the rtmplb binary (a Release or an ASan build)")
    p.add_argument("--minutes", type=float, default=30.0, help="chaos duration (default 30)")
    p.add_argument("--origins", type=int, default=4)
    p.add_argument("--publishers", type=int, default=8)
    p.add_argument("--players", type=int, default=400)
    p.add_argument("--kill-every", type=float, default=60.0)
    p.add_argument("--down-for", type=float, default=10.0, help="seconds a killed origin stays down")
    p.add_argument("--hup-every", type=float, default=45.0)
    p.add_argument("--drain-every", type=float, default=90.0)
    p.add_argument("--drain-for", type=float, default=20.0)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--fd-slack", type=int, default=32)
    p.add_argument("--rss-slack-mib", type=float, default=None)
    p.add_argument("--keep", action="store_true", help="keep the run's directory (logs)")
    return p.parse_args()


def log(msg):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


def http(url, body=None, timeout=5):
    req = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode(),
                                 method="GET" if body is None else "POST")
    if body is not None:
        req.add_header("Authorization", "Bearer " + TOKEN)
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.read().decode()


def metrics(admin):
    """{(name, frozenset(labels)): value} from /metrics."""
    out = {}
    for line in http("http://127.0.0.1:%d/metrics" % admin).splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'([a-zA-Z_:][\w:]*)(\{(.*)\})?\s+(\S+)$', line)
        if not m:
            continue
        labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        try:
            out[(m.group(1), labels)] = float(m.group(4))
        except ValueError:
            pass
    return out


def by_label(ms, name, label):
    return {dict(k[1]).get(label): v for k, v in ms.items() if k[0] == name and v}


def proc_usage(pid):
    fds = len(os.listdir("/proc/%d/fd" % pid))
    with open("/proc/%d/status" % pid) as f:
        rss = int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))
    return fds, rss / 1024.0


def pct(xs, q):
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def parse_ts(s):
    """rtmplb's log time (UTC, ms) as wall seconds."""
    import calendar
    base, ms = s.rstrip("Z").split(".")
    return calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S")) + int(ms) / 1000.0


class Soak:
    def __init__(self, a):
        self.a = a
        self.f = Fleet()
        self.lock = threading.Lock()
        self.where = {}       # stream -> origin name (nginx /stat, latest)
        self.kills = []       # (wall time, origin, set of streams on it)
        self.pub_ends = []    # (wall time, stream, origin or None, exit status)
        self.failures = []
        self.stop_poll = threading.Event()

    # -- fleet ---------------------------------------------------------------
    def config(self, variant):
        a = self.a
        nodes = "\n".join(
            "      - {name: %s, address: 127.0.0.1:%d, stats: {kind: nginx-rtmp, url: \"http://127.0.0.1:%d/stat\"}}"
            % (n, r, h) for n, (r, h) in self.ports.items())
        return """workers: %d
log: {format: json, level: info, access_log: %s}
timeouts: {connect: 1s, idle: %ds, drain: 2s}
listeners: [{name: rtmp, address: 127.0.0.1:%d}]
admin: {address: 127.0.0.1:%d, token_file: %s, public_read: true}
pools:
  origins:
    health: {type: rtmp, app: live, interval: 500ms, timeout: 400ms, rise: 2, fall: 2}
    nodes:
%s
routes:
  - {name: publish, match: {role: publish}, pool: origins, policy: stream_affinity}
  - {name: play, match: {role: play}, pool: origins, policy: stream_location}
""" % (a.workers, self.access, 60 + variant, self.front, self.admin, self.token_file, nodes)

    def start_origin(self, name):
        r, h = self.ports[name]
        p = self.f.nginx_origin(name, r, h)
        self.origins[name] = p

    def fixture(self):
        path = os.path.join(self.f.dir, "fixture.flv")
        subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
                        "testsrc2=size=320x240:rate=25", "-f", "lavfi", "-i",
                        "sine=frequency=440:sample_rate=44100", "-t", "10", "-c:v", "libx264",
                        "-preset", "ultrafast", "-b:v", "150k", "-g", "50", "-sc_threshold", "0",
                        "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "32k", "-f", "flv", "-y", path],
                       check=True, timeout=120)
        return path

    def start_publisher(self, i):
        name = "pub%d-%d" % (i, self.pub_gen[i])
        self.pub_gen[i] += 1
        self.pubs[i] = self.f.spawn(name, [
            "ffmpeg", "-hide_banner", "-nostats", "-loglevel", "error", "-re", "-stream_loop", "-1",
            "-i", self.flv, "-c", "copy", "-f", "flv",
            "rtmp://127.0.0.1:%d/live/s%d" % (self.front, i)])

    def poll_stats(self):
        """Every second: which origin carries which stream (nginx /stat)."""
        while not self.stop_poll.wait(1.0):
            seen = {}
            for name, (_, h) in self.ports.items():
                try:
                    for s, (publishing, _) in harness.nginx_streams(h).items():
                        if publishing:
                            seen[s] = name
                except Exception:
                    pass
            with self.lock:
                self.where.update(seen)

    def streams_on(self, origin):
        r, h = self.ports[origin]
        try:
            live = {s for s, (pub, _) in harness.nginx_streams(h).items() if pub}
        except Exception:
            live = set()
        with self.lock:
            return live | {s for s, o in self.where.items() if o == origin}

    def player_stats(self):
        last = None
        try:
            with open(self.player_out) as f:
                for line in f:
                    if line.startswith("stat "):
                        last = line.split()
        except OSError:
            pass
        return (int(last[2]), int(last[3])) if last else (0, 0)

    def all_publishing(self):
        with self.lock:
            self.where.clear()
        seen = set()
        for name, (_, h) in self.ports.items():
            try:
                seen |= {s for s, (pub, _) in harness.nginx_streams(h).items() if pub}
            except Exception:
                pass
        return all("s%d" % i in seen for i in range(self.a.publishers))

    def check_pubs(self):
        now = time.time()
        for i, p in enumerate(self.pubs):
            if p.poll() is not None:
                s = "s%d" % i
                with self.lock:
                    origin = self.where.get(s)
                self.pub_ends.append((now, s, origin, p.returncode))
                self.start_publisher(i)

    # -- the run ---------------------------------------------------------------
    def run(self):
        a = self.a
        harness.ARGS = argparse.Namespace(rtmplb=os.path.abspath(a.rtmplb), source=SOURCE)
        exe = os.path.join(self.f.dir, "soak_player")
        subprocess.run(["cc", "-std=c11", "-D_GNU_SOURCE", "-O2", "-Wall", "-Wextra", "-Werror",
                        "-Wno-unused-parameter", "-I", SOURCE, os.path.join(HERE, "soak_player.c"),
                        *(os.path.join(SOURCE, "lb", "rtmp", x) for x in ("handshake.c", "chunk.c", "amf.c")),
                        "-lcrypto", "-o", exe], check=True)
        self.flv = self.fixture()
        self.ports = {"o%d" % k: (free_port(), free_port()) for k in range(a.origins)}
        self.origins = {}
        for name in self.ports:
            self.start_origin(name)
        self.front, self.admin = free_port(), free_port()
        self.access = os.path.join(self.f.dir, "access.log")
        self.token_file = os.path.join(self.f.dir, "token")
        with open(self.token_file, "w") as f:
            f.write(TOKEN + "\n")
        os.chmod(self.token_file, 0o600)
        self.variant = 0
        self.lb = self.f.rtmplb(self.config(0), wait_ports=[self.front])
        self.lb_path = self.lb.conf_path
        wait_for(lambda: all(v == 1 for v in by_label(metrics(self.admin), "rtmplb_node_up", "node").values())
                 and len(by_label(metrics(self.admin), "rtmplb_node_up", "node")) == a.origins,
                 30, "every origin up in rtmplb", 0.2)
        self.pubs = [None] * a.publishers
        self.pub_gen = [0] * a.publishers
        for i in range(a.publishers):
            self.start_publisher(i)
        wait_for(self.all_publishing, 60, "every publisher live on an origin", 0.5)
        threading.Thread(target=self.poll_stats, daemon=True).start()
        time.sleep(2)
        self.player_out = os.path.join(self.f.dir, "players.txt")
        self.player = self.f.spawn("players", [
            exe, "--players", str(a.players), "127.0.0.1", str(self.front), "live",
            ",".join("s%d" % i for i in range(a.publishers))], stdout=open(self.player_out, "w"))
        wait_for(lambda: self.player_stats()[0] == a.players, 120 + a.players / 10.0,
                 "every player playing", 0.5)
        time.sleep(5)
        self.start_usage = proc_usage(self.lb.pid)
        self.start_metrics = metrics(self.admin)
        log("warm: %d players, %d publishers; rtmplb fds %d, RSS %.1f MiB"
            % (a.players, a.publishers, self.start_usage[0], self.start_usage[1]))

        t0 = self.t0 = time.time()
        end = t0 + a.minutes * 60
        next_kill, next_hup, next_drain = t0 + min(30, a.kill_every), t0 + a.hup_every, t0 + a.drain_every
        restart_at, enable_at = {}, {}
        kill_idx = drain_idx = 0
        self.hups = self.drains = 0
        names = list(self.ports)
        while time.time() < end:
            now = time.time()
            if self.lb.poll() is not None:
                log("rtmplb exited with %s" % self.lb.returncode)
                break
            self.check_pubs()
            if self.player.poll() is not None:
                raise RuntimeError("soak_player exited with %s" % self.player.returncode)
            for name, at in list(restart_at.items()):
                if now >= at:
                    self.start_origin(name)
                    del restart_at[name]
                    log("origin %s restarted" % name)
            for name, at in list(enable_at.items()):
                if now >= at:
                    http("http://127.0.0.1:%d/api/v1/pools/origins/nodes/%s" % (self.admin, name),
                         {"state": "enabled"})
                    del enable_at[name]
                    log("origin %s enabled" % name)
            if now >= next_kill:
                next_kill += a.kill_every
                # Round-robin, preferring an origin that carries a stream.
                live = [n for n in names if n not in restart_at]
                order = names[kill_idx:] + names[:kill_idx]
                pick = next((n for n in order if n in live and self.streams_on(n)),
                            next((n for n in order if n in live), None))
                if pick:
                    kill_idx = (names.index(pick) + 1) % len(names)
                    streams = self.streams_on(pick)
                    self.kills.append((time.time(), pick, streams))
                    self.f.kill_nginx(self.origins[pick])
                    restart_at[pick] = time.time() + a.down_for
                    log("origin %s SIGKILLed (streams %s)" % (pick, ",".join(sorted(streams)) or "-"))
            if now >= next_hup:
                next_hup += a.hup_every
                self.variant ^= 1
                with open(self.lb_path, "w") as f:
                    f.write(self.config(self.variant))
                self.lb.send_signal(signal.SIGHUP)
                self.hups += 1
                log("SIGHUP (config variant %d)" % self.variant)
            if now >= next_drain:
                next_drain += a.drain_every
                live = [n for n in names if n not in restart_at and n not in enable_at]
                if live:
                    pick = live[drain_idx % len(live)]
                    drain_idx += 1
                    http("http://127.0.0.1:%d/api/v1/pools/origins/nodes/%s" % (self.admin, pick),
                         {"state": "draining"})
                    enable_at[pick] = time.time() + a.drain_for
                    self.drains += 1
                    log("origin %s draining" % pick)
            time.sleep(0.2)
        self.chaos_end = time.time()
        # Settle: every origin back and enabled, every player and publisher live.
        for name in restart_at:
            self.start_origin(name)
        for name in enable_at:
            http("http://127.0.0.1:%d/api/v1/pools/origins/nodes/%s" % (self.admin, name),
                 {"state": "enabled"})
        settled = False
        deadline = time.time() + 120
        while time.time() < deadline and self.lb.poll() is None:
            self.check_pubs()
            if self.player_stats()[0] == a.players:
                settled = True
                break
            time.sleep(0.5)
        if not settled:
            self.failures.append("players did not all play again within 120 s after the chaos (%d of %d)"
                                 % (self.player_stats()[0], a.players))
        time.sleep(6)  # a stat line after the last reconnect; closes to settle
        if self.lb.poll() is None:
            self.end_usage = proc_usage(self.lb.pid)
            self.end_metrics = metrics(self.admin)
        else:
            self.end_usage, self.end_metrics = None, {}
        self.player.send_signal(signal.SIGTERM)
        self.player.wait(20)
        for p in self.pubs:
            self.f.stop_proc(p, signal.SIGINT)
        self.stop_poll.set()
        self.lb_rc = self.f.stop_proc(self.lb, signal.SIGTERM, timeout=30) if self.lb.poll() is None \
            else self.lb.returncode

    # -- the report ------------------------------------------------------------
    def report(self):
        a = self.a
        ok = True

        def must(cond, text):
            nonlocal ok
            print(("  ok    " if cond else "  FAIL  ") + text)
            ok = ok and cond

        print("\n== soak report: %.1f min of chaos, %d origins, %d publishers, %d players, binary %s"
              % ((self.chaos_end - self.t0) / 60, a.origins,
                 a.publishers, a.players, a.rtmplb))
        print("   %d origin kills, %d SIGHUPs, %d drain/enable cycles"
              % (len(self.kills), self.hups, self.drains))
        text = self.f.log_text("rtmplb")
        sanitizer = [m for m in harness.SANITIZER_MARKERS if m in text]
        crashed = self.lb_rc not in (0,) or bool(sanitizer)
        must(not crashed, "rtmplb crashes: %d (exit status %s%s)"
             % (1 if crashed else 0, self.lb_rc, ", sanitizer: " + ",".join(sanitizer) if sanitizer else ""))

        # A sanitizer build: gcc links libasan.so, clang links it in.
        linked = subprocess.run(["ldd", a.rtmplb], capture_output=True, text=True).stdout
        asan = "libasan" in linked or "__asan_init" in subprocess.run(
            ["nm", "-D", a.rtmplb], capture_output=True, text=True).stdout
        slack = a.rss_slack_mib if a.rss_slack_mib is not None else (512.0 if asan else 64.0)
        if self.end_usage:
            (f0, r0), (f1, r1) = self.start_usage, self.end_usage
            must(f1 <= f0 + a.fd_slack, "rtmplb fds: start %d, end %d (bound: +%d)" % (f0, f1, a.fd_slack))
            must(r1 <= r0 + slack, "rtmplb RSS: start %.1f MiB, end %.1f MiB (bound: +%.0f MiB%s)"
                 % (r0, r1, slack, ", sanitizer build" if asan else ""))
        else:
            must(False, "rtmplb fds/RSS at the end: rtmplb was not running")

        # Player and publisher ends, explained by a kill of their origin or not.
        events = []
        with open(self.player_out) as f:
            for line in f:
                w = line.split()
                if w and w[0] in ("first", "end"):
                    events.append(w)

        def killed(stream, t):
            for tk, origin, streams in self.kills:
                if stream in streams and tk - 1 <= t <= tk + 60:
                    return (tk, origin)
            return None

        player_ends = [(int(w[1]) / 1000.0, w[3], w[6]) for w in events if w[0] == "end" and w[5] == "1"]
        disturbed = [(t, s, why) for t, s, why in player_ends if not killed(s, t)]
        pub_disturbed = [(t, s, o, rc) for t, s, o, rc in self.pub_ends if not killed(s, t)]
        expected = len(player_ends) - len(disturbed)
        must(not disturbed and not pub_disturbed,
             "sessions disturbed on surviving origins: %d players, %d publishers "
             "(%d player and %d publisher sessions ended with their origin's kill)"
             % (len(disturbed), len(pub_disturbed), expected, len(self.pub_ends) - len(pub_disturbed)))
        for t, s, why in disturbed[:10]:
            print("        player of %s ended %s at %s" % (s, why, time.strftime("%H:%M:%S", time.localtime(t))))
        for t, s, o, rc in pub_disturbed[:10]:
            print("        publisher of %s (on %s) exited %s at %s"
                  % (s, o, rc, time.strftime("%H:%M:%S", time.localtime(t))))

        # Sessions routed while a node was known down.
        downs, checks = {}, {}
        windows = []
        for line in text.splitlines():
            if not line.startswith("{"):
                continue
            try:
                e = json.loads(line)
            except ValueError:
                continue
            if e.get("event") == "node_down":
                downs.setdefault(e["node"], parse_ts(e["ts"]))
                checks[e.get("check")] = checks.get(e.get("check"), 0) + 1
            elif e.get("event") == "node_up" and e.get("node") in downs:
                windows.append((e["node"], downs.pop(e["node"]), parse_ts(e["ts"])))
        for node, t in downs.items():
            windows.append((node, t, time.time()))
        inside = good = 0
        bad = []
        with open(self.access) as f:
            for line in f:
                try:
                    e = json.loads(line)
                except ValueError:
                    continue
                if e.get("event") != "session" or e.get("preroute_ms") is None:
                    continue
                # A new session: accepted after the node_down line (2 ms for
                # the log's millisecond rounding); in-flight ones are not new.
                accepted = parse_ts(e["ts"]) - e["duration_ms"] / 1000.0
                for node, t0, t1 in windows:
                    if t0 + 0.002 <= accepted < t1:
                        inside += 1
                        if e.get("node") != node and e.get("dials", 1) <= 1:
                            good += 1
                        else:
                            bad.append((node, e))
                        break
        print("  info  node_down lines by check: %s (origin kills: %d)"
              % (", ".join("%s=%d" % kv for kv in sorted(checks.items())) or "none", len(self.kills)))
        detect = []
        for tk, origin, _ in self.kills:
            after = [t0 for node, t0, _ in windows if node == origin and t0 >= tk]
            if after:
                detect.append(int((min(after) - tk) * 1000))
        if detect:
            print("  info  kill to node_down: n=%d p50=%d ms max=%d ms" % (len(detect), pct(detect, 0.5), max(detect)))
        share = 100.0 * good / inside if inside else 100.0
        must(inside == good, "new sessions while a node was down that went to a healthy node first: "
             "%d of %d (%.1f%%) over %d down windows" % (good, inside, share, len(windows)))
        for node, e in bad[:5]:
            print("        while %s was down: %s" % (node, json.dumps(e)))

        reconnect = [int(w[5]) for w in events if w[0] == "first" and int(w[5]) >= 0
                     and killed(w[3], int(w[1]) / 1000.0)]
        if reconnect:
            print("  info  reconnect to first frame, players whose origin died: n=%d p50=%d ms p99=%d ms max=%d ms"
                  % (len(reconnect), pct(reconnect, 0.5), pct(reconnect, 0.99), max(reconnect)))
        else:
            print("  info  reconnect to first frame: no player lost its origin")
            ok = ok and not self.kills
        m0, m1 = self.start_metrics, self.end_metrics
        refused = by_label(m1, "rtmplb_sessions_refused_total", "reason")
        print("  info  refused sessions by reason (/metrics): %s"
              % (", ".join("%s=%d" % kv for kv in sorted(refused.items())) or "none"))
        ends = by_label(m1, "rtmplb_session_ends_total", "reason")
        print("  info  session ends by reason (/metrics): %s"
              % ", ".join("%s=%d" % kv for kv in sorted(ends.items())))
        reloads = by_label(m1, "rtmplb_reloads_total", "result")
        must(reloads.get("ok", 0) >= self.hups and not reloads.get("failed"),
             "reloads: ok %d, failed %d (SIGHUPs sent %d)"
             % (reloads.get("ok", 0), reloads.get("failed", 0), self.hups))
        for msg in self.failures:
            must(False, msg)
        print("== soak %s" % ("PASSED" if ok else "FAILED"))
        return ok


def main():
    a = parse_args()
    if not os.access(a.rtmplb, os.X_OK):
        print("soak: no rtmplb binary at %s (build it, or pass --rtmplb)" % a.rtmplb, file=sys.stderr)
        return 2
    s = Soak(a)
    try:
        s.run()
        ok = s.report()
    except Exception as e:  # setup failed: say what, keep the logs
        import traceback
        traceback.print_exc()
        print("soak: setup error: %s; logs in %s" % (e, s.f.dir), file=sys.stderr)
        a.keep = True
        ok = None
    finally:
        s.stop_poll.set()
        if a.keep:
            os.environ["RTMPLB_KEEP_TEST_DIR"] = "1"
        try:
            s.f.stop()
        except AssertionError as e:  # a sanitizer report at shutdown
            print(e)
            ok = False if ok is not None else ok
    return 2 if ok is None else (0 if ok else 1)


if __name__ == "__main__":
    sys.exit(main())
