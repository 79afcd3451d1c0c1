"""RTMPS, black box: certificates made at test time with the openssl CLI (a
test CA, leaves for a.test, b.test and origin.test, an expired one, one
expiring in 3 days, a key that belongs to another certificate). Real clients
over TLS through rtmplb to stock nginx-rtmp origins: ffmpeg publish and play,
rtmpdump, GStreamer rtmp2sink/rtmp2src; SNI picks the certificate; -t
refuses expired and mismatched certificates with the file and the reason;
plain-to-TLS and TLS-to-plain mistakes are closed at once; a tcp-mode TLS
listener forwards plain bytes; rtmplb dials an origin through a TLS
terminator (a second rtmplb in tcp mode with tls) and reports verification
failures as L6_TLS (probe) and as a failed node (session); a reload with a
new certificate serves new sessions while a live TLS play continues; garbage
and truncated ClientHellos neither crash, hang nor grow rtmplb."""

import os
import random
import re
import select
import signal
import socket
import ssl
import subprocess
import threading
import time
import unittest
import urllib.request

import harness
from harness import Fleet, TcpBackend, access_lines, free_port, nginx_streams, wait_for

HS_TIMEOUT_MS = 4000


def openssl(*args, cwd):
    r = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise AssertionError("openssl %s: %s" % (" ".join(args), r.stderr))
    return r.stdout


class Certs:
    """A throw-away PKI in dir (EC P-256 keys: quick to make)."""

    def __init__(self, d):
        self.d = d
        self.ca = self._ca("ca", "rtmplb test CA")
        self.other_ca = self._ca("other-ca", "some other CA")

    def path(self, name):
        return os.path.join(self.d, name)

    def _key(self, name):
        openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-out", name + ".key", cwd=self.d)

    def _ca(self, name, cn):
        self._key(name)
        openssl("req", "-x509", "-new", "-key", name + ".key", "-out", name + ".pem",
                "-days", "30", "-subj", "/CN=" + cn, cwd=self.d)
        return name

    def leaf(self, name, dns, ip=None, days=30, start=None, end=None, ca="ca"):
        """name.pem / name.key signed by ca for DNS name dns (and ip)."""
        self._key(name)
        openssl("req", "-new", "-key", name + ".key", "-out", name + ".csr",
                "-subj", "/CN=" + dns, cwd=self.d)
        san = "subjectAltName=DNS:%s%s\n" % (dns, ",IP:" + ip if ip else "")
        with open(self.path(name + ".ext"), "w") as f:
            f.write(san)
        if start:  # openssl ca sets any validity window, past ones too
            cnf = self.path("ca.cnf")
            with open(cnf, "w") as f:
                f.write("[ca]\ndefault_ca=d\n[d]\ndatabase=%s\nnew_certs_dir=%s\nserial=%s\n"
                        "default_md=sha256\npolicy=p\nunique_subject=no\n[p]\ncommonName=supplied\n"
                        % (self.path("index.txt"), self.d, self.path("serial")))
            if not os.path.exists(self.path("index.txt")):
                open(self.path("index.txt"), "w").close()
                with open(self.path("serial"), "w") as f:
                    f.write("1000\n")
            openssl("ca", "-batch", "-config", cnf, "-cert", ca + ".pem", "-keyfile", ca + ".key",
                    "-in", name + ".csr", "-out", name + ".pem", "-startdate", start,
                    "-enddate", end, "-notext", "-extfile", name + ".ext", cwd=self.d)
        else:
            openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem", "-CAkey",
                    ca + ".key", "-CAcreateserial", "-days", str(days), "-out", name + ".pem",
                    "-extfile", name + ".ext", cwd=self.d)
        return self.path(name + ".pem"), self.path(name + ".key")

    @staticmethod
    def der(pem_path):
        with open(pem_path) as f:
            return ssl.PEM_cert_to_DER_cert(f.read())


def client_ctx():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def served_cert(port, sni=None):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with client_ctx().wrap_socket(raw, server_hostname=sni) as s:
            return s.getpeercert(binary_form=True), s.version()


def closed_within(sock, seconds):
    """Seconds until the peer closed sock (EOF or reset), or None."""
    t0 = time.monotonic()
    sock.settimeout(0.2)
    while time.monotonic() - t0 < seconds:
        try:
            if sock.recv(65536) == b"":
                return time.monotonic() - t0
        except socket.timeout:
            continue
        except OSError:
            return time.monotonic() - t0
    return None


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def metric(text, name, **labels):
    total = 0.0
    found = False
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all('%s="%s"' % (k, v) in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
            found = True
    return total if found else None


class Tls(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        f = cls.fleet = Fleet()
        cls.addClassCleanup(f.stop)
        cls.certs = c = Certs(f.dir)
        cls.a = c.leaf("a", "a.test")
        cls.b = c.leaf("b", "b.test")
        cls.origin_cert = c.leaf("origin", "origin.test", ip="127.0.0.1")
        # the served a.test certificate lives at a fixed path the reload rewrites
        cls.cur = (c.path("cur.pem"), c.path("cur.key"))
        for src, dst in zip(cls.a, cls.cur):
            with open(src, "rb") as i, open(dst, "wb") as o:
                o.write(i.read())

        cls.origins = {n: f.nginx_origin(n, free_port(), free_port())
                       for n in ("origin-a", "origin-b", "origin-c")}
        o = cls.origins
        # The TLS terminator in front of origin-c: a second rtmplb, tcp mode.
        cls.term = free_port()
        f.rtmplb("""
workers: 1
listeners:
  - {name: term, address: 127.0.0.1:%d, mode: tcp, tls: {certificates: [{cert: %s, key: %s}]}}
pools:
  c: {nodes: [{name: origin-c, address: 127.0.0.1:%d}]}
routes: [{name: all, pool: c}]
""" % (cls.term, cls.origin_cert[0], cls.origin_cert[1], o["origin-c"].rtmp_port),
                 name="term", wait_ports=[cls.term])

        cls.backend = TcpBackend("plain-backend")
        f.threads.append(cls.backend)
        cls.echo = TcpBackend("echo", mode="slow_echo")
        f.threads.append(cls.echo)
        cls.rtmps, cls.plain, cls.tcps, cls.admin, cls.echop = (free_port() for _ in range(5))
        ca, other = c.path("ca.pem"), c.path("other-ca.pem")
        cls.conf = """
workers: 2
timeouts: {handshake: %dms, connect: 2s}
admin: {address: 127.0.0.1:%d, public_read: true}
listeners:
  - name: rtmps
    address: 127.0.0.1:%d
    tls:
      certificates:
        - {cert: %s, key: %s}
        - {cert: %s, key: %s}
  - {name: plain, address: 127.0.0.1:%d}
  - {name: tcps, address: 127.0.0.1:%d, mode: tcp, tls: {certificates: [{cert: %s, key: %s}]}}
  - {name: echo, address: 127.0.0.1:%d, mode: tcp, tls: {certificates: [{cert: %s, key: %s}]}}
pools:
  origins:
    nodes:
      - {name: origin-a, address: 127.0.0.1:%d}
      - {name: origin-b, address: 127.0.0.1:%d}
  secure:
    health: {type: rtmp, interval: 500ms, timeout: 400ms}
    nodes: [{name: secure-c, address: 127.0.0.1:%d, tls: {sni: origin.test, ca: %s}}]
  probed:
    health: {type: rtmp, interval: 500ms, timeout: 400ms}
    nodes:
      - {name: wrong-ca, address: 127.0.0.1:%d, tls: {sni: origin.test, ca: %s}}
      - {name: wrong-name, address: 127.0.0.1:%d, tls: {sni: nothere.test, ca: %s}}
  fallthrough:
    nodes:
      - {name: bad-ca, address: 127.0.0.1:%d, weight: 1000, tls: {sni: origin.test, ca: %s}}
      - {name: plain-b, address: 127.0.0.1:%d, weight: 1}
  tcpdest:
    nodes: [{name: backend, address: 127.0.0.1:%d}]
  echo:
    nodes: [{name: echo, address: 127.0.0.1:%d}]
routes:
  - {name: tcp, match: {listener: tcps}, pool: tcpdest}
  - {name: echo, match: {listener: echo}, pool: echo}
  - {name: secure, match: {stream: "sec-*"}, pool: secure}
  - {name: probed, match: {stream: "probed-*"}, pool: probed}
  - {name: fallthrough, match: {stream: "fall-*"}, pool: fallthrough}
  - {name: live, match: {app: live}, pool: origins, policy: stream_affinity}
""" % (HS_TIMEOUT_MS, cls.admin, cls.rtmps, cls.cur[0], cls.cur[1], cls.b[0], cls.b[1],
       cls.plain, cls.tcps, cls.a[0], cls.a[1], cls.echop, cls.a[0], cls.a[1],
       o["origin-a"].rtmp_port,
       o["origin-b"].rtmp_port, cls.term, ca, cls.term, other, cls.term, ca, cls.term, other,
       o["origin-b"].rtmp_port, cls.backend.port, cls.echo.port)
        cls.lb = f.rtmplb(cls.conf, wait_ports=[cls.rtmps])

    def url(self, app, stream, tls=True):
        return "%s://127.0.0.1:%d/%s/%s" % ("rtmps" if tls else "rtmp",
                                              self.rtmps if tls else self.plain, app, stream)

    def log(self):
        return self.fleet.log_text("rtmplb")

    def live_on(self, stream, timeout=20):
        """Origins where stream is being published, once it is live somewhere."""
        def where():
            held = [n for n, o in self.origins.items()
                    if nginx_streams(o.http_port).get(stream, (False, 0))[0]]
            return held or None
        return wait_for(where, timeout, "stream %s live on an origin" % stream, 0.2)

    # ---- clients -------------------------------------------------------

    def test_ffmpeg_publish_and_play_rtmps(self):
        pub = self.fleet.publish(self.url("live", "t1"), name="pub-t1")
        held = self.live_on("t1")
        self.assertEqual(len(held), 1, held)
        n = self.fleet.play_frames(self.url("live", "t1"), 40, name="play-t1")
        self.assertGreaterEqual(n, 40)
        sessions = [x for x in access_lines(self.log()) if x.get("stream") == "t1"]
        roles = {x["role"]: x["node"] for x in sessions}
        self.assertEqual(roles.get("play"), held[0], sessions)
        self.assertIn("listening", self.log())
        self.assertIn("TLS in userspace", self.log())
        self.fleet.stop_proc(pub, signal.SIGINT)

    def test_rtmpdump_and_gstreamer_play_rtmps(self):
        pub = self.fleet.publish(self.url("live", "t2"), name="pub-t2")
        self.live_on("t2")
        n = self.fleet.rtmpdump_frames(self.url("live", "t2"), 30, name="rtmpdump-t2")
        self.assertGreaterEqual(n, 30, "rtmpdump over rtmps")
        n = self.fleet.gst_frames(self.url("live", "t2"), 30, name="gst-t2",
                                  src_props="tls-validation-flags=0")
        self.assertGreaterEqual(n, 30, "GStreamer rtmp2src over rtmps:\n" +
                                self.fleet.log_text("gst-t2")[-2000:])
        self.fleet.stop_proc(pub, signal.SIGINT)

    def test_gstreamer_publishes_rtmps(self):
        p = self.fleet.spawn("gst-pub", [
            "gst-launch-1.0", "-e", "videotestsrc", "is-live=true", "!",
            "video/x-raw,width=320,height=240,framerate=25/1", "!", "openh264enc",
            "gop-size=25", "!", "h264parse", "!", "flvmux", "streamable=true", "!",
            "rtmp2sink", "location=" + self.url("live", "t3"), "tls-validation-flags=0"])
        try:
            self.live_on("t3")
            n = self.fleet.play_frames(self.url("live", "t3"), 30, name="play-t3")
            self.assertGreaterEqual(n, 30)
        finally:
            self.fleet.stop_proc(p, signal.SIGINT)

    # ---- certificates ----------------------------------------------------

    def test_sni_picks_the_certificate(self):
        def subject(sni):
            args = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % self.rtmps]
            if sni:
                args += ["-servername", sni]
            r = subprocess.run(args, input="", capture_output=True, text=True, timeout=20)
            m = re.search(r"subject=(.*)", r.stdout)
            return m.group(1) if m else r.stdout + r.stderr
        self.assertIn("CN = b.test", subject("b.test"))
        self.assertIn("CN = a.test", subject("a.test"))
        self.assertIn("CN = a.test", subject("unknown.test"))  # the first is the default
        self.assertIn("CN = a.test", subject(None))

    def check(self, yaml_text, name):
        path = os.path.join(self.fleet.dir, name + ".yaml")
        with open(path, "w") as f:
            f.write(yaml_text)
        r = subprocess.run([harness.ARGS.rtmplb, "-t", "-c", path], capture_output=True,
                           text=True, timeout=30)
        return r.returncode, r.stderr

    def tls_conf(self, cert, key):
        return """
listeners:
  - {name: s, address: 127.0.0.1:%d, tls: {certificates: [{cert: %s, key: %s}]}}
pools: {o: {nodes: [{name: a, address: 127.0.0.1:1}]}}
routes: [{name: r, pool: o}]
""" % (free_port(), cert, key)

    def test_config_check_of_certificates(self):
        c = self.certs
        expired = c.leaf("expired", "old.test", start="20200101000000Z", end="20200201000000Z")
        soon = c.leaf("soon", "soon.test", days=3)
        rc, err = self.check(self.tls_conf(*self.a), "ok")
        self.assertEqual(rc, 0, err)
        rc, err = self.check(self.tls_conf(*expired), "expired")
        self.assertEqual(rc, 2, err)
        self.assertRegex(err, r"expired\.pem: the certificate expired on 2020-02-01")
        self.assertIn(".yaml:3:", err)  # located
        rc, err = self.check(self.tls_conf(self.a[0], self.b[1]), "mismatch")
        self.assertEqual(rc, 2, err)
        self.assertIn("%s: the key does not match the certificate %s" % (self.b[1], self.a[0]),
                      err)
        rc, err = self.check(self.tls_conf(self.a[0] + ".missing", self.a[1]), "missing")
        self.assertEqual(rc, 2, err)
        self.assertIn("a.pem.missing: cannot be read: No such file or directory", err)
        rc, err = self.check(self.tls_conf(*soon), "soon")
        self.assertEqual(rc, 0, err)
        self.assertRegex(err, r"warning: .*soon\.pem: the certificate expires on .* \(within 14 days\)")

    def test_tls_echo_moves_every_byte_both_ways(self):
        # 8 MiB each way through a TLS leg (client) and a plain leg (a slow
        # echo: what rtmplb holds fills up, backpressure both ways); the
        # close_notify ends it and the backend's EOF marker comes back.
        data = random.Random(5).randbytes(8 << 20)
        got = bytearray()
        with socket.create_connection(("127.0.0.1", self.echop), timeout=20) as raw:
            with client_ctx().wrap_socket(raw, server_hostname="a.test") as s:
                s.setblocking(False)  # one thread: an SSL object is not shared
                sent, deadline = 0, time.monotonic() + 60
                while len(got) < len(data) and time.monotonic() < deadline:
                    if sent < len(data):
                        try:
                            sent += s.send(data[sent:sent + 65536])
                        except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
                            pass
                    try:
                        chunk = s.recv(1 << 16)
                        if not chunk:
                            break
                        got += chunk
                    except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                        select.select([s], [s] if sent < len(data) else [], [], 0.1)
        self.assertEqual(len(got), len(data))
        self.assertTrue(got == data, "the bytes differ")

    def test_tls12_session_resumption_with_tickets(self):
        ctx = client_ctx()
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        with socket.create_connection(("127.0.0.1", self.tcps), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="a.test") as s:
                s.makefile("rb").readline()
                sess = s.session
                self.assertTrue(sess.has_ticket)
        with socket.create_connection(("127.0.0.1", self.tcps), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="a.test", session=sess) as s:
                self.assertTrue(s.session_reused)
                self.assertEqual(s.makefile("rb").readline(), b"plain-backend\n")

    # ---- wrong protocol ----------------------------------------------------

    def test_plain_rtmp_on_tls_listener_is_closed_at_once(self):
        s = socket.create_connection(("127.0.0.1", self.rtmps), timeout=5)
        s.sendall(b"\x03" + bytes(1536))
        took = closed_within(s, HS_TIMEOUT_MS / 1000.0 + 2)
        s.close()
        self.assertIsNotNone(took, "never closed")
        self.assertLess(took, 1.0, "closed after %.2fs" % took)
        wait_for(lambda: "first byte 0x03, plain RTMP" in self.log(), 5, "the log line")
        self.assertIn("reason=not_tls", self.log())

    def test_tls_on_plain_listener_is_closed_at_once(self):
        raw = socket.create_connection(("127.0.0.1", self.plain), timeout=5)
        try:
            t0 = time.monotonic()
            with self.assertRaises((ssl.SSLError, OSError)):
                client_ctx().wrap_socket(raw, server_hostname="a.test")
            self.assertLess(time.monotonic() - t0, 1.0)
        finally:
            raw.close()
        wait_for(lambda: "TLS ClientHello on a plain listener" in self.log(), 5, "the log line")
        self.assertIn("reason=tls_on_plain", self.log())

    def test_tcp_mode_tls_listener_forwards_plain_bytes(self):
        with socket.create_connection(("127.0.0.1", self.tcps), timeout=5) as raw:
            with client_ctx().wrap_socket(raw, server_hostname="a.test") as s:
                line = s.makefile("rb").readline()
        self.assertEqual(line, b"plain-backend\n")

    # ---- to origins over TLS -------------------------------------------------

    def test_origin_behind_tls(self):
        pub = self.fleet.publish(self.url("live", "sec-t5", tls=False), name="pub-t5")
        try:
            held = self.live_on("sec-t5")
            self.assertEqual(held, ["origin-c"])
            n = self.fleet.play_frames(self.url("live", "sec-t5"), 30, name="play-t5")
            self.assertGreaterEqual(n, 30)
            m = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.admin,
                                       timeout=5).read().decode()
            ok = metric(m, "rtmplb_tls_handshakes_total", side="origin", result="ok")
            self.assertGreaterEqual(ok or 0, 2, "origin TLS handshakes")
        finally:
            self.fleet.stop_proc(pub, signal.SIGINT)

    def test_verification_failures(self):
        # The probes say L6_TLS for the wrong CA and the wrong name.
        for node, why in (("wrong-ca", "unable to get local issuer certificate"),
                          ("wrong-name", "hostname mismatch")):
            wait_for(lambda: re.search(r"node=%s.*L6_TLS.*%s" % (node, why), self.log()), 15,
                     "%s reported as L6_TLS" % node)
        # A session's dial fails over to the next candidate.
        pub = self.fleet.publish(self.url("live", "fall-t6", tls=False), name="pub-t6")
        try:
            held = self.live_on("fall-t6")
            self.assertEqual(held, ["origin-b"])
        finally:
            self.fleet.stop_proc(pub, signal.SIGINT)
        line = [l for l in self.log().splitlines() if "dial_failed" in l and "bad-ca" in l]
        self.assertTrue(line, "no dial_failed line for bad-ca")
        self.assertIn("certificate verification failed", line[0])

    # ---- reload ----------------------------------------------------------------

    def test_z_reload_with_a_new_certificate(self):
        pub = self.fleet.publish(self.url("live", "t7"), name="pub-t7")
        try:
            self.live_on("t7")
            player = self.fleet.start_play(self.url("live", "t7"), name="play-t7")
            wait_for(lambda: self.fleet.frame_count("play-t7") >= 25, 30, "play before reload")
            old, _ = served_cert(self.rtmps)
            self.assertEqual(old, Certs.der(self.a[0]))
            new = self.certs.leaf("a2", "a.test")
            # a broken certificate first: the reload is refused, a.pem stays
            with open(self.cur[0], "w") as f:
                f.write("not a certificate\n")
            self.lb.send_signal(signal.SIGHUP)
            wait_for(lambda: "reload_failed" in self.log(), 10, "refused reload")
            self.assertEqual(served_cert(self.rtmps)[0], old)
            for src, dst in zip(new, self.cur):
                with open(src, "rb") as i, open(dst, "wb") as o:
                    o.write(i.read())
            self.lb.send_signal(signal.SIGHUP)
            wait_for(lambda: served_cert(self.rtmps)[0] == Certs.der(new[0]), 10,
                     "the new certificate served")
            before = self.fleet.frame_count("play-t7")
            wait_for(lambda: self.fleet.frame_count("play-t7") >= before + 50, 30,
                     "the live TLS play goes on after the reload")
            self.assertIsNone(player.poll())
            self.fleet._end(player)
        finally:
            self.fleet.stop_proc(pub, signal.SIGINT)

    # ---- garbage --------------------------------------------------------------

    def client_hello(self):
        inb, outb = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = client_ctx().wrap_bio(inb, outb, server_hostname="a.test")
        try:
            obj.do_handshake()
        except ssl.SSLWantReadError:
            pass
        return outb.read()

    def test_garbage_and_truncated_client_hellos(self):
        rnd = random.Random(11)
        hello = self.client_hello()
        self.assertEqual(hello[0], 0x16)
        cases = [hello[:k] for k in (1, 3, 5, 6, 40, len(hello) // 2, len(hello) - 1)]
        cases += [b"\x16" + bytes(rnd.getrandbits(8) for _ in range(rnd.randint(1, 3000)))
                  for _ in range(40)]
        cases += [hello[:5] + bytes(rnd.getrandbits(8) for _ in range(len(hello) - 5))
                  for _ in range(20)]
        cases += [b"\x16\x03\x01\xff\xff" + bytes(600)]  # a record longer than what follows
        rss0 = rss_kib(self.lb.pid)
        socks = []
        for data in cases:
            s = socket.create_connection(("127.0.0.1", self.rtmps), timeout=5)
            s.sendall(data)
            socks.append(s)
        t0 = time.monotonic()
        for s in socks:  # every one is closed by the handshake timeout at the latest
            left = HS_TIMEOUT_MS / 1000.0 + 3 - (time.monotonic() - t0)
            self.assertIsNotNone(closed_within(s, max(left, 0.5)), "a session hung")
            s.close()
        self.assertIsNone(self.lb.poll(), "rtmplb died")
        grew = rss_kib(self.lb.pid) - rss0
        print("RSS growth over %d bad handshakes: %d KiB" % (len(cases), grew))
        # ASan's quarantine keeps freed memory resident: a looser bound there.
        sanitized = "sanitizers" in subprocess.run([harness.ARGS.rtmplb, "-V"],
                                                   capture_output=True, text=True).stdout
        self.assertLess(grew, 65536 if sanitized else 8192, "memory grew")
        self.assertEqual(served_cert(self.rtmps, "b.test")[1] in ("TLSv1.2", "TLSv1.3"), True)
        m = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.admin,
                                   timeout=5).read().decode()
        self.assertGreater(metric(m, "rtmplb_tls_handshakes_total", side="client",
                                  result="error") or 0, 0)
        self.assertGreater(metric(m, "rtmplb_tls_handshakes_total", side="client", result="ok",
                                  version="TLSv1.3") or 0, 0)
        exp = metric(m, "rtmplb_tls_certificate_expiry_seconds", listener="rtmps", index="1")
        self.assertTrue(exp and 20 * 86400 < exp < 31 * 86400, exp)


if __name__ == "__main__":
    harness.main()
