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


def free_port():
    """A loopback TCP port nobody listens on now (and we have not handed out)."""
    for _ in range(100):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port not in _used_ports:
            _used_ports.add(port)
            return port
    raise RuntimeError("no free port")


def wait_port(port, timeout=10.0, host="127.0.0.1", proc=None):
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
            deadline = time.monotonic() + 10
            while not re.search(r' started |"event":"started"', self.log_text(name)):
                if p.poll() is not None:
                    raise AssertionError("rtmplb exited with %s:\n%s" % (p.returncode, self.log_text(name)))
                if time.monotonic() > deadline:
                    raise AssertionError("rtmplb did not start:\n" + self.log_text(name))
                time.sleep(0.02)
        return p

    # -- nginx-rtmp origins ---------------------------------------------
    def nginx_origin(self, name, rtmp_port, http_port, extra_app="idle_streams off;",
                     listen_extra=""):
        prefix = os.path.join(self.dir, "nginx-" + name)
        os.makedirs(os.path.join(prefix, "logs"), exist_ok=True)
        conf = os.path.join(prefix, "nginx.conf")
        with open(conf, "w") as f:
            f.write(NGINX_CONF.format(module=NGINX_RTMP_MODULE, prefix=prefix, rtmp=rtmp_port,
                                      http=http_port, extra_app=extra_app,
                                      listen_extra=listen_extra))
        p = self.spawn("nginx-" + name, ["nginx", "-p", prefix, "-c", conf])
        wait_port(rtmp_port, proc=p)
        wait_port(http_port, proc=p)
        p.http_port = http_port
        p.rtmp_port = rtmp_port
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

    def play_frames(self, url, seconds, name="play"):
        """Plays url for a wall-clock window, ends it with SIGINT, returns
        the video frames decoded (framemd5 lines)."""
        out = os.path.join(self.dir, name + ".framemd5")
        p = self.spawn(name, ["ffmpeg", "-hide_banner", "-nostats", "-loglevel", "warning",
                              "-rw_timeout", "5000000", "-i", url, "-map", "0:v:0",
                              "-f", "framemd5", "-y", out])
        try:
            p.wait(seconds)
        except subprocess.TimeoutExpired:
            p.send_signal(signal.SIGINT)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if not os.path.exists(out):
            return 0
        with open(out) as f:
            return sum(1 for line in f if line.strip() and not line.startswith("#"))


    def framemd5(self, name):
        path = os.path.join(self.dir, name + ".framemd5")
        if not os.path.exists(path):
            return []
        with open(path) as f:
            return [l.split(",")[-1].strip() for l in f if l.strip() and not l.startswith("#")]

    def _run_window(self, p, seconds, sig=signal.SIGINT):
        try:
            p.wait(seconds)
        except subprocess.TimeoutExpired:
            p.send_signal(sig)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def rtmpdump_frames(self, url, seconds, name="rtmpdump", extra=()):
        """Plays url with rtmpdump (librtmp) for a window, then decodes what it
        saved; returns the video frames decoded."""
        flv = os.path.join(self.dir, name + ".flv")
        p = self.spawn(name, ["rtmpdump", "-r", url, "--live", "-o", flv, *extra])
        self._run_window(p, seconds)
        if not os.path.exists(flv) or os.path.getsize(flv) == 0:
            return 0
        r = subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-i", flv, "-map", "0:v:0",
                            "-f", "framemd5", "-"], capture_output=True, text=True, timeout=60)
        return sum(1 for l in r.stdout.splitlines() if l.strip() and not l.startswith("#"))

    def gst_frames(self, url, seconds, name="gst"):
        """Plays url with GStreamer's rtmp2src for a window; returns the video
        frames decoded (one 'chain' message each on the video sink)."""
        q = "queue max-size-time=0 max-size-buffers=0 max-size-bytes=0"
        pipeline = ("rtmp2src location=%s timeout=10 ! flvdemux name=d "
                    "d.video ! %s ! h264parse ! avdec_h264 ! fakesink name=vsink silent=false "
                    "sync=false async=false d.audio ! %s ! fakesink sync=false async=false"
                    % (url, q, q))
        p = self.spawn(name, ["gst-launch-1.0", "-e", "-v", *pipeline.split()])
        self._run_window(p, seconds)
        return sum(1 for l in self.log_text(name).splitlines()
                   if "vsink" in l and "last-message = chain" in l)

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
    }}
}}
"""


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


def access_lines(text):
    """Parses rtmplb's text access-log lines into dicts."""
    out = []
    for line in text.splitlines():
        if " session " not in line:
            continue
        fields = dict(re.findall(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)', line))
        out.append({k: v.strip('"') for k, v in fields.items()})
    return out
