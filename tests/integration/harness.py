"""Black-box test harness: the real rtmplb binary, real nginx-rtmp origins,
real ffmpeg, plain TCP backends; loopback only. Every process a test starts
is recorded and stopped by PID; every temp dir is removed."""

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

ARGS = None
NGINX_RTMP_MODULE = "/usr/lib/nginx/modules/ngx_rtmp_module.so"
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "WARNING: ThreadSanitizer")


def parse_args():
    """Takes --rtmplb and --source off argv; the rest goes to unittest."""
    global ARGS
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--rtmplb", required=True)
    p.add_argument("--source", required=True)
    ARGS, rest = p.parse_known_args()
    return [sys.argv[0]] + rest


def main():
    """Runs the file's tests; exits non-zero on any failure and also when no
    test ran at all (a wrong -k filter, a renamed class, all skipped): a file
    that tests nothing must not count as a pass."""
    argv = parse_args()
    prog = unittest.main(argv=argv, verbosity=2, exit=False)
    result = prog.result
    ran = result.testsRun - len(result.skipped)
    if not result.wasSuccessful():
        sys.exit(1)
    if ran <= 0:
        print("FAIL: no test ran (%d collected, %d skipped)" % (result.testsRun, len(result.skipped)),
              file=sys.stderr)
        sys.exit(5)
    sys.exit(0)


_used_ports = set()
PORT_CURSOR = os.path.join(tempfile.gettempdir(), "rtmplb-test-ports.cursor")


def _port_range():
    """Test ports come from below the kernel's ephemeral range, so no
    outgoing connection (ours, rtmplb's, nginx's) is ever handed one of them
    as its local port, and a port nobody listens on stays that way."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
    except (OSError, ValueError):
        lo, hi = 32768, 60999
    first, last = 20000, min(32000, lo - 1)
    if last - first < 2000:  # an unusual range: use what lies above it
        first, last = hi + 1, 65535
    if last - first < 2000:
        raise RuntimeError("no room for test ports outside %d-%d" % (lo, hi))
    return first, last


def _next_port_from_cursor(first, last, span=1):
    """The next port of the range from a cursor file shared (under flock) by
    every test process of this machine: tests that ctest runs one after
    another, or in parallel, never start from the same port, so none binds
    a port the previous one left in TIME_WAIT. With span > 1 the cursor
    moves past the whole block port..port+span-1, so a test running in
    parallel is never handed a port inside it."""
    import fcntl
    fd = os.open(PORT_CURSOR, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        raw = os.read(fd, 32).decode("ascii", "replace").strip()
        try:
            port = int(raw)
        except ValueError:
            port = first + os.getpid() % (last - first)
        if not first <= port <= last - span + 1:
            port = first
        nxt = port + span if port + span <= last else first
        os.lseek(fd, 0, os.SEEK_SET)
        os.ftruncate(fd, 0)
        os.write(fd, str(nxt).encode())
        return port
    finally:
        os.close(fd)  # releases the lock


def _port_is_free(port):
    """Nothing bound there, not even a TIME_WAIT leftover (no SO_REUSEADDR)."""
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def free_port():
    """A loopback TCP port outside the ephemeral range that nobody uses now
    and that this run has not handed out before."""
    first, last = _port_range()
    for _ in range(500):
        port = _next_port_from_cursor(first, last)
        if port in _used_ports or not _port_is_free(port):
            continue
        _used_ports.add(port)
        return port
    raise RuntimeError("no free test port in %d-%d" % (first, last))


def free_port_block(span):
    """span consecutive free loopback ports (the first is returned), taken
    from the shared cursor as one block: for a script that numbers its
    ports from a base (scripts/fleet.sh --port-base)."""
    first, last = _port_range()
    for _ in range(200):
        base = _next_port_from_cursor(first, last, span)
        block = range(base, base + span)
        if any(p in _used_ports for p in block) or not all(_port_is_free(p) for p in block):
            continue
        _used_ports.update(block)
        return base
    raise RuntimeError("no %d consecutive free test ports in %d-%d" % (span, first, last))


def recv_exact(sock, n):
    """Exactly n bytes from sock; fails (never spins) when the peer closes
    first. The socket's own timeout bounds each recv."""
    out = b""
    while len(out) < n:
        d = sock.recv(n - len(out))
        if not d:
            raise AssertionError("peer closed after %d of %d bytes" % (len(out), n))
        out += d
    return out


def recv_closed(sock):
    """True once the peer has closed (EOF, or a reset: closing with our bytes
    unread makes the kernel send RST); data before the close is skipped.
    Bounded by the socket's timeout (socket.timeout propagates) and by a
    byte budget, so a peer that keeps talking fails the test."""
    got = 0
    while got < (1 << 20):
        try:
            d = sock.recv(4096)
        except ConnectionResetError:
            return True
        if not d:
            return True
        got += len(d)
    return False


def wait_for(cond, timeout, what, interval=0.05):
    """Polls cond() until it returns something true (returned), or fails the
    test after timeout seconds saying what was awaited."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.0fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def wait_port(port, timeout=20.0, host="127.0.0.1", proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError("process exited with %s before listening on %d" % (proc.returncode, port))
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("nothing listening on %s:%d after %.1fs" % (host, port, timeout))


class Fleet:
    """Processes and files of one test; stop() tears everything down."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="rtmplb-test-")
        self.procs = []  # (name, Popen)
        self.rtmplb_names = []
        self.extra_pids = []
        self.threads = []

    # -- processes ------------------------------------------------------
    def spawn(self, name, argv, **kw):
        with open(os.path.join(self.dir, name + ".log"), "wb") as log:
            p = subprocess.Popen(argv, stdout=kw.pop("stdout", log), stderr=log,
                                 stdin=subprocess.DEVNULL, **kw)
        self.procs.append((name, p))
        return p

    def log_text(self, name):
        with open(os.path.join(self.dir, name + ".log"), "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop_proc(self, p, sig=signal.SIGTERM, timeout=10):
        if p.poll() is None:
            p.send_signal(sig)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        return p.returncode

    def stop(self):
        for name, p in reversed(self.procs):
            if name.startswith("nginx-"):
                self.kill_nginx(p, clean=True)
            else:
                self.stop_proc(p)
        for pid in self.extra_pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for t in self.threads:
            t.stop()
        reports = []
        for name in self.rtmplb_names:
            text = self.log_text(name)
            for marker in SANITIZER_MARKERS:
                if marker in text:
                    reports.append("%s:\n%s" % (name, text[text.index(marker) - 200:][:6000]))
                    break
        if os.environ.get("RTMPLB_KEEP_TEST_DIR"):
            print("kept", self.dir, file=sys.stderr)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)
        if reports:
            raise AssertionError("sanitizer report from rtmplb:\n" + "\n".join(reports))

    # -- rtmplb ----------------------------------------------------------
    def rtmplb(self, yaml_text, name="rtmplb", wait_ports=(), nofile=None):
        path = os.path.join(self.dir, name + ".yaml")
        with open(path, "w") as f:
            f.write(yaml_text)
        kw = {}
        if nofile:
            import resource
            kw["preexec_fn"] = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
        p = self.spawn(name, [ARGS.rtmplb, "-c", path], **kw)
        self.rtmplb_names.append(name)
        p.conf_path = path
        if wait_ports:
            # Wait for the start-up line rather than probing the port: a
            # probe would be a session of its own in the access log.
            deadline = time.monotonic() + 20
            while not re.search(r' started |"event":"started"', self.log_text(name)):
                if p.poll() is not None:
                    raise AssertionError("rtmplb exited with %s:\n%s" % (p.returncode, self.log_text(name)))
                if time.monotonic() > deadline:
                    raise AssertionError("rtmplb did not start:\n" + self.log_text(name))
                time.sleep(0.02)
        return p

    # -- nginx-rtmp origins ---------------------------------------------
    def nginx_origin(self, name, rtmp_port, http_port, extra_app="idle_streams off;",
                     listen_extra="", http_extra=""):
        """http_extra goes into the http server block; {prefix} in it and in
        extra_app is the origin's own directory."""
        prefix = os.path.join(self.dir, "nginx-" + name)
        os.makedirs(os.path.join(prefix, "logs"), exist_ok=True)
        conf = os.path.join(prefix, "nginx.conf")
        with open(conf, "w") as f:
            f.write(NGINX_CONF.format(module=NGINX_RTMP_MODULE, prefix=prefix, rtmp=rtmp_port,
                                      http=http_port,
                                      extra_app=extra_app.replace("{prefix}", prefix),
                                      listen_extra=listen_extra,
                                      http_extra=http_extra.replace("{prefix}", prefix)))
        p = self.spawn("nginx-" + name, ["nginx", "-p", prefix, "-c", conf])
        wait_port(rtmp_port, proc=p)
        wait_port(http_port, proc=p)
        p.http_port = http_port
        p.rtmp_port = rtmp_port
        p.prefix = prefix
        return p

    def kill_nginx(self, p, clean=False):
        """SIGKILL of the master leaves workers listening: kill both (by PID)."""
        if p.poll() is not None:
            return
        workers = subprocess.run(["ps", "-o", "pid=", "--ppid", str(p.pid)],
                                 capture_output=True, text=True).stdout.split()
        if clean:
            self.stop_proc(p, signal.SIGTERM, timeout=10)
        else:
            p.kill()
            p.wait()
        for w in workers:
            try:
                os.kill(int(w), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass

    # -- ffmpeg -----------------------------------------------------------
    def publish(self, url, name="publish"):
        """A live test pattern (2 s GOP) pushed to url until stopped."""
        return self.spawn(name, [
            "ffmpeg", "-hide_banner", "-nostats", "-loglevel", "warning", "-re",
            "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
            "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
            "-g", "50", "-sc_threshold", "0", "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-b:a", "64k", "-f", "flv", url])

    # -- players: run until enough frames are decoded, not for a window ----
    def _count_lines(self, path):
        try:
            with open(path) as f:
                return sum(1 for line in f if line.strip() and not line.startswith("#"))
        except OSError:
            return 0

    def _play_until(self, p, count, want, timeout, until):
        """Lets player p run until count() >= want and until() holds (when
        given), or timeout seconds pass, or p exits; then ends it with SIGINT
        (a clean end for ffmpeg, rtmpdump and gst-launch -e). Nothing here
        asserts: the caller asserts on the frames decoded."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and p.poll() is None:
            if count() >= want and (until is None or until()):
                break
            time.sleep(0.25)
        self._end(p)

    def _end(self, p, sig=signal.SIGINT):
        if p.poll() is None:
            p.send_signal(sig)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def start_play(self, url, name="play"):
        """An ffmpeg player decoding url's video to NAME.framemd5 until
        stopped; frame_count(name) says how far it got."""
        out = os.path.join(self.dir, name + ".framemd5")
        return self.spawn(name, ["ffmpeg", "-hide_banner", "-nostats", "-loglevel", "warning",
                                 "-rw_timeout", "5000000", "-i", url, "-map", "0:v:0",
                                 "-f", "framemd5", "-flush_packets", "1", "-y", out])

    def frame_count(self, name):
        return self._count_lines(os.path.join(self.dir, name + ".framemd5"))

    def play_frames(self, url, want, name="play", timeout=40, until=None):
        """Plays url with ffmpeg until `want` video frames are decoded (and
        until() holds), at most timeout seconds; returns the frames decoded."""
        p = self.start_play(url, name)
        self._play_until(p, lambda: self.frame_count(name), want, timeout, until)
        return self.frame_count(name)

    def framemd5(self, name):
        path = os.path.join(self.dir, name + ".framemd5")
        if not os.path.exists(path):
            return []
        with open(path) as f:
            return [l.split(",")[-1].strip() for l in f if l.strip() and not l.startswith("#")]

    def _flv_frames(self, flv):
        if not os.path.exists(flv) or os.path.getsize(flv) == 0:
            return 0
        r = subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "quiet", "-i", flv, "-map", "0:v:0",
                            "-f", "framemd5", "-"], capture_output=True, text=True, timeout=60)
        return sum(1 for l in r.stdout.splitlines() if l.strip() and not l.startswith("#"))

    def rtmpdump_frames(self, url, want, name="rtmpdump", extra=(), timeout=40, until=None):
        """Plays url with rtmpdump (librtmp) until what it saved decodes to
        `want` video frames (and until() holds), at most timeout seconds;
        returns the video frames decoded."""
        flv = os.path.join(self.dir, name + ".flv")
        p = self.spawn(name, ["rtmpdump", "-r", url, "--live", "-o", flv, *extra])
        last = [0.0, 0]

        def count():  # decoding the partial file costs: at most once a second
            if time.monotonic() - last[0] >= 1.0:
                last[0], last[1] = time.monotonic(), self._flv_frames(flv)
            return last[1]
        self._play_until(p, count, want, timeout, until)
        return self._flv_frames(flv)

    def gst_frames(self, url, want, name="gst", timeout=40, until=None,
                   src="rtmp2src location={url} timeout=10", src_props=""):
        """Plays url with GStreamer's rtmp2src (or another FLV source: src,
        e.g. "souphttpsrc location={url}" for HTTP-FLV) until `want` video
        frames are decoded (one 'chain' message each on the video sink), and
        until() holds, at most timeout seconds; returns the video frames
        decoded."""
        q = "queue max-size-time=0 max-size-buffers=0 max-size-bytes=0"
        pipeline = ("%s ! flvdemux name=d "
                    "d.video ! %s ! h264parse ! avdec_h264 ! fakesink name=vsink silent=false "
                    "sync=false async=false d.audio ! %s ! fakesink sync=false async=false"
                    % (src.format(url=url) + (" " + src_props if src_props else ""), q, q))
        p = self.spawn(name, ["gst-launch-1.0", "-e", "-v", *pipeline.split()])

        def count():
            return sum(1 for l in self.log_text(name).splitlines()
                       if "vsink" in l and "last-message = chain" in l)
        self._play_until(p, count, want, timeout, until)
        return count()

    # -- rtmp_probe --------------------------------------------------------
    def probe(self, args, name):
        """Starts tests/bench/rtmp_probe with args, its stdout piped (text),
        recorded like every other process so stop() ends it by PID even when
        the test fails first. probe_result() collects what it printed."""
        exe = os.path.join(os.path.dirname(ARGS.rtmplb), "rtmp_probe")
        return self.spawn(name, [exe, *args], stdout=subprocess.PIPE, text=True)

    @staticmethod
    def probe_result(p, timeout=60):
        """(exit status, stdout) of a probe started by probe()."""
        out, _ = p.communicate(timeout=timeout)
        return p.returncode, out


NGINX_CONF = """
daemon off;
master_process on;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log warn;
load_module {module};
events {{ worker_connections 1024; }}
rtmp {{
    server {{
        listen 127.0.0.1:{rtmp}{listen_extra};
        chunk_size 4096;
        application live {{
            live on;
            record off;
            {extra_app}
        }}
    }}
}}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    server {{
        listen 127.0.0.1:{http};
        location /stat {{ rtmp_stat all; }}
        {http_extra}
    }}
}}
"""


class FleetCase(unittest.TestCase):
    """A test case with a Fleet and a list of fake origins (anything with
    stop()); tearDown stops the origins, then the fleet."""

    def setUp(self):
        self.fleet = Fleet()
        self.origins = []

    def tearDown(self):
        for o in self.origins:
            o.stop()
        self.fleet.stop()


def nginx_streams(http_port):
    """Live stream names on an nginx-rtmp origin, from its /stat page:
    {name: (publishing, n_clients)}."""
    import urllib.request
    import xml.etree.ElementTree as ET
    with urllib.request.urlopen("http://127.0.0.1:%d/stat" % http_port, timeout=5) as r:
        root = ET.fromstring(r.read())
    out = {}
    for stream in root.iter("stream"):
        name = stream.findtext("name")
        publishing = stream.find("publishing") is not None
        out[name] = (publishing, int(stream.findtext("nclients") or 0))
    return out


class TcpBackend:
    """A plain TCP server on a loopback port, in a thread.
    mode "name": sends its name and a newline, then waits for the client to close.
    mode "echo": echoes everything; after the client's FIN, sends "EOF" and closes.
    mode "slow_echo": the same after not reading for a second (so what the
    proxy holds for it fills up: pipes are held, buffers are needed)."""

    def __init__(self, name, port=None, mode="name"):
        self.name = name
        self.mode = mode
        self.port = port or free_port()
        self.accepted = 0
        self.sock = None
        self.stopped = threading.Event()
        self.start()

    def start(self):
        self.stopped.clear()
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(512)
        s.settimeout(0.2)
        self.sock = s
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopped.is_set():
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        try:
            c.settimeout(30)
            if self.mode == "name":
                c.sendall(self.name.encode() + b"\n")
                while c.recv(65536):
                    pass
            else:
                if self.mode == "slow_echo":
                    time.sleep(1.0)
                while True:
                    d = c.recv(1 << 16)
                    if not d:
                        break
                    c.sendall(d)
                c.sendall(b"EOF")
        except OSError:
            pass
        finally:
            c.close()

    def stop(self):
        self.stopped.set()
        if self.sock:
            self.sock.close()
            self.sock = None
        self.thread.join(2)


def ask_name(port, timeout=5.0):
    """Connects through the proxy, returns the backend's name line."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        f = s.makefile("rb")
        return f.readline().decode().strip()
    finally:
        s.close()


def metric(admin_port, series):
    """The value of one series of rtmplb's /metrics, given as it is written
    there: a name, or a name with its labels in order
    ('rtmplb_node_sessions{pool="p",node="n"}'). Absent: AssertionError."""
    import urllib.request
    text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % admin_port,
                                  timeout=10).read().decode()
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    raise AssertionError("%s not in /metrics" % series)


def access_lines(text):
    """Parses rtmplb's text access-log lines into dicts. A last line without
    its newline is still being written (the log writer thread may be mid-
    line when the file is read): it is left for the next read."""
    out = []
    lines = text.split("\n")
    lines.pop()  # "" after a final newline, or the line being written
    for line in lines:
        if " session " not in line:
            continue
        fields = dict(re.findall(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)', line))
        out.append({k: v.strip('"') for k, v in fields.items()})
    return out
