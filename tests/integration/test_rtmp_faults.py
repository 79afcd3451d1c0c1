"""Fault matrices for the RTMP front door, black box (issue 9 items 4 and 7):
scripted fake origins that misbehave in one way each, raw clients that
misbehave in one way each, the error linger, half-close, send_proxy with a
long IPv6 address and many stalled PROXY headers. Each case asserts what the
client sees (the RTMP error, or media) and the access log's reason=.

The raw client and the fake origin are in rtmpfake.py (written for these
tests; loopback only, every socket operation bounded)."""

import os
import re
import resource
import socket
import struct
import time
import unittest
from concurrent.futures import ThreadPoolExecutor

import harness
from harness import Fleet, access_lines, free_port
import rtmpfake as rf

STREAM_NOT_FOUND = "NetStream.Play.StreamNotFound"
PUBLISH_DENIED = "NetStream.Publish.Denied"


class FrontDoorCase(harness.FleetCase):
    """One rtmplb per test method, fake origins as needed."""

    def origin(self, script, name="fake", hold=True):
        o = rf.FakeOrigin(script, name=name, hold=hold)
        self.origins.append(o)
        return o

    def start(self, body, timeouts="{handshake: 3s, connect: 1s}", limits="{}", workers=1):
        self.front = free_port()
        self.lb = self.fleet.rtmplb("""
workers: %d
log: {level: info}
timeouts: %s
limits: %s
listeners: [{name: rtmp, address: 127.0.0.1:%d}]
%s
""" % (workers, timeouts, limits, self.front, body), wait_ports=[self.front])
        return self.lb

    def log(self):
        return self.fleet.log_text("rtmplb")

    def session(self, timeout=8.0, **match):
        """The access-log line whose fields match (client= may be given as a
        port number), waiting for it up to timeout."""
        port = match.pop("port", None)
        # Client ports come round again: only lines written after that
        # client connected can be its session's.
        since = getattr(self, "_marks", {}).get(port, 0)
        deadline = time.monotonic() + timeout
        while True:
            for x in access_lines(self.log())[since:]:
                if port is not None and not x.get("client", "").endswith(":%d" % port):
                    continue
                if all(x.get(k) == v for k, v in match.items()):
                    return x
            if time.monotonic() > deadline:
                return None
            time.sleep(0.05)

    def client(self, timeout=10.0, source=None):
        mark = len(access_lines(self.log()))
        c = rf.RawClient(self.front, timeout=timeout, source=source)
        self.addCleanup(c.close)
        if not hasattr(self, "_marks"):
            self._marks = {}
        self._marks[c.sock.getsockname()[1]] = mark
        return c


# ---- 1. scripted fake origins ---------------------------------------------------

def healthy(chunk=4096, stream_id=1, status=None):
    """An nginx-like origin: handshake, read the replay, answer everything,
    then NetStream.Play.Start (or Publish.Start) and a little media."""
    def script(c):
        c.handshake()
        c.read_commands()
        c.sock.sendall(healthy_reply(c, chunk, stream_id, status))
    return script


def healthy_reply(c, chunk=4096, stream_id=1, status=None):
    publish = any(x[0] == "publish" for x in c.commands)
    code = status or ("NetStream.Publish.Start" if publish else "NetStream.Play.Start")
    out = rf.connect_preamble() + rf.set_chunk_size_msg(chunk)
    out += rf.connect_result(c.tid_of("connect"), chunk_size=chunk)
    out += rf.create_stream_result(c.tid_of("createStream"), stream_id, chunk_size=chunk)
    out += rf.stream_begin_msg(1, chunk)
    out += rf.on_status(code, "origin %s: %s" % (c.origin.name, c.stream_name()), chunk_size=chunk)
    if not publish:
        out += rf.chunk_message(6, rf.AUDIO, b"\xaf\x01" + bytes(200), msid=1, chunk_size=chunk)
    return out


def script_silent(c):
    pass  # accepts, never answers; held until the proxy closes


def script_bad_s0(c):
    c.read_c0c1()
    c.sock.sendall(c.s0s1s2(version=6))


def script_close_at_once(c):
    c.sock.close()


def script_close_after_s0s1s2(c):
    c.read_c0c1()
    c.sock.sendall(c.s0s1s2())
    c.sock.close()


def script_close_after_commands(c):
    c.handshake()
    c.read_commands()
    c.sock.close()


def script_error_connect(c):
    c.handshake()
    c.read_commands()
    c.sock.sendall(rf.connect_preamble() + rf.command(
        "_error", c.tid_of("connect"), None,
        {"level": "error", "code": "NetConnection.Connect.Rejected",
         "description": "origin says no"}))


def script_error_create_stream(c):
    c.handshake()
    c.read_commands()
    c.sock.sendall(rf.connect_preamble() + rf.set_chunk_size_msg(4096) +
                   rf.connect_result(c.tid_of("connect"), chunk_size=4096) +
                   rf.command("_error", c.tid_of("createStream"), None,
                              {"level": "error", "code": "NetStream.Failed",
                               "description": "no stream for you"}, chunk_size=4096))


def script_compressed(csid, fmt):
    """The origin's first message on a chunk stream rtmplb already used
    towards the client (2: control, 3: connect/createStream replies) comes
    with a compressed header: the client would inherit rtmplb's header."""
    def script(c):
        c.handshake()
        c.read_commands()
        if csid == 2:
            first = rf.chunk_message(2, rf.WIN_ACK, (5000000).to_bytes(4, "big"), fmt=fmt)
            rest = rf.connect_result(c.tid_of("connect"))
        else:
            body = rf.amf_encode_all("_result", c.tid_of("connect"), None,
                                     {"level": "status", "code": "NetConnection.Connect.Success"})
            first = rf.connect_preamble() + rf.chunk_message(3, rf.COMMAND_AMF0, body, fmt=fmt)
            rest = b""
        c.sock.sendall(first + rest + rf.create_stream_result(c.tid_of("createStream")))
    return script


def script_bad_chunk_size(value):
    def script(c):
        c.handshake()
        c.read_commands()
        c.sock.sendall(rf.connect_preamble() + rf.set_chunk_size_msg(value) +
                       rf.connect_result(c.tid_of("connect")) +
                       rf.create_stream_result(c.tid_of("createStream")) +
                       rf.on_status("NetStream.Play.Start", "should not get here"))
    return script


def script_stream_id(n):
    def script(c):
        c.handshake()
        c.read_commands()
        c.sock.sendall(rf.connect_preamble() + rf.set_chunk_size_msg(4096) +
                       rf.connect_result(c.tid_of("connect"), chunk_size=4096) +
                       rf.create_stream_result(c.tid_of("createStream"), n, chunk_size=4096))
    return script


# (app, script, reason, detail regex in the client's description)
ORIGIN_FAULTS = [
    ("silent", script_silent, ("origin_timeout", "dial_failed"),
     r"did not answer|failed|time"),
    ("bads0", script_bad_s0, ("origin_protocol",), r"bad handshake"),
    ("closenow", script_close_at_once, ("origin_closed", "dial_failed"),
     r"closed the connection|reset by peer|failed"),
    ("closehs", script_close_after_s0s1s2, ("origin_closed",),
     r"closed the connection|reset by peer"),
    ("closecmd", script_close_after_commands, ("origin_closed",),
     r"closed the connection|reset by peer"),
    ("errconnect", script_error_connect, ("origin_rejected",), r"rejected connect"),
    ("errcs", script_error_create_stream, ("origin_rejected",), r"rejected createStream"),
    ("fmt1cs2", script_compressed(2, 1), ("origin_protocol",), r"compressed a header on chunk stream 2|lacks a message header"),
    ("fmt2cs2", script_compressed(2, 2), ("origin_protocol",), r"compressed a header on chunk stream 2|lacks a message header"),
    ("fmt3cs2", script_compressed(2, 3), ("origin_protocol",), r"compressed a header on chunk stream 2|lacks a message header"),
    ("fmt1cs3", script_compressed(3, 1), ("origin_protocol",), r"compressed a header on chunk stream 3|lacks a message header"),
    ("fmt2cs3", script_compressed(3, 2), ("origin_protocol",), r"compressed a header on chunk stream 3|lacks a message header"),
    ("fmt3cs3", script_compressed(3, 3), ("origin_protocol",), r"compressed a header on chunk stream 3|lacks a message header"),
    ("scs0", script_bad_chunk_size(0), ("origin_protocol",), r"chunk size"),
    ("scs80000000", script_bad_chunk_size(0x80000000), ("origin_protocol",), r"chunk size"),
    ("scsffffffff", script_bad_chunk_size(0xffffffff), ("origin_protocol",), r"chunk size"),
    ("streamid3", script_stream_id(3), ("origin_protocol",), r"gave stream id 3; rtmplb promised 1"),
    ("streamid0", script_stream_id(0), ("origin_protocol",), r"gave stream id 0; rtmplb promised 1"),
]


class OriginFaults(FrontDoorCase):
    """Each origin breaks one way after accept; the client must get an RTMP
    error naming the cause, and the access log the reason."""

    def test_1_each_origin_fault_is_an_rtmp_error_with_its_reason(self):
        pools, routes = [], []
        for app, script, _, _ in ORIGIN_FAULTS:
            o = self.origin(script, name=app)
            pools.append("  %s: {nodes: [{name: %s, address: 127.0.0.1:%d}]}" % (app, app, o.port))
            routes.append("  - {name: %s, match: {app: %s}, pool: %s}" % (app, app, app))
        self.start("pools:\n%s\nroutes:\n%s\n" % ("\n".join(pools), "\n".join(routes)))
        for app, _, reasons, detail in ORIGIN_FAULTS:
            for role in ("play", "publish"):
                with self.subTest(case=app, role=role):
                    c = self.client(timeout=12)
                    start = time.monotonic()
                    o = getattr(c, role)(app, "s-" + role)
                    took = time.monotonic() - start
                    port = c.sock.getsockname()[1]
                    c.close()
                    want = STREAM_NOT_FOUND if role == "play" else PUBLISH_DENIED
                    # Client ports come round again: match the stream too.
                    x = self.session(port=port, timeout=6, app=app, stream="s-" + role)
                    print("%-12s %-7s -> %s in %.2fs; log reason=%s" % (
                        app, role, o, took, x and x.get("reason")))
                    self.assertEqual((o.kind, o.code, o.level), ("status", want, "error"), repr(o))
                    self.assertRegex(o.description or "", detail)
                    self.assertIsNotNone(x, "no access-log line for %s/%s" % (app, role))
                    self.assertIn(x["reason"], reasons)
                    self.assertEqual(x["node"], app)

    def test_2_replies_one_byte_at_a_time_still_hand_over(self):
        def script(c):
            c.handshake()
            c.read_commands()
            rf.send_bytewise(c.sock, healthy_reply(c))
        o = self.origin(script)
        self.start("pools: {p: {nodes: [{name: bytewise, address: 127.0.0.1:%d}]}}\n"
                   "routes: [{name: r, pool: p}]" % o.port, timeouts="{handshake: 10s, connect: 2s}")
        for role, code in (("play", "NetStream.Play.Start"), ("publish", "NetStream.Publish.Start")):
            with self.subTest(role=role):
                c = self.client(timeout=15)
                r = getattr(c, role)("live", "bw-" + role)
                self.assertEqual((r.kind, r.code), ("status", code), repr(r))
                if role == "play":  # the media after the status
                    a = c.read_messages(lambda m: m.type == rf.AUDIO, timeout=5)
                    self.assertEqual(a.kind, "done", repr(a))
                port = c.sock.getsockname()[1]
                c.close()
                x = self.session(port=port)
                self.assertIsNotNone(x)
                self.assertEqual(x["reason"], "client_closed")


def fmt3_offsets(msg, chunk, header=12):
    """Offsets just after each continuation (fmt 3) header byte of a message
    written by rf.chunk_message with a 1-byte csid and fmt 0."""
    out, pos = [], header + chunk
    while pos < len(msg):
        out.append(pos + 1)
        pos += 1 + chunk
    return out


def patch_blob(chunk, tid_connect=1.0, tid_cs=2.0):
    """What a patch-test origin sends before its onStatus: control
    messages, Set Chunk Size, a connect _result spanning two or more
    chunks, the createStream _result. Returns (bytes, fmt3 offsets)."""
    head = rf.connect_preamble() + rf.set_chunk_size_msg(chunk)
    base = len(rf.amf_encode_all("_result", 1.0, None,
                                 {"level": "status", "code": "NetConnection.Connect.Success",
                                  "description": "origin: connected"}))
    pad = max(0, max(100, chunk + 20) - base)
    res = rf.connect_result(tid_connect, pad=pad, chunk_size=chunk)
    cs = rf.create_stream_result(tid_cs, chunk_size=chunk)
    offs = [len(head) + o for o in fmt3_offsets(res, chunk)]
    offs += [len(head) + len(res) + o for o in fmt3_offsets(cs, chunk)]
    return head + res + cs, offs


def patch_origin_script(c):
    """Stream name 'cs<N>-whole', 'cs<N>-at<K>' (one split at K) or
    'cs<N>-bytes' (one byte at a time)."""
    c.handshake()
    c.read_commands()
    m = re.match(r"cs(\d+)-(whole|bytes|at(\d+))$", c.stream_name())
    chunk = int(m.group(1))
    blob, _ = patch_blob(chunk, c.tid_of("connect"), c.tid_of("createStream"))
    tail = rf.stream_begin_msg(1, chunk) + rf.on_status("NetStream.Play.Start", "patched " + c.stream_name(),
                                                 chunk_size=chunk)
    tail += rf.chunk_message(6, rf.AUDIO, b"\xaf\x01" + bytes(300), msid=1, chunk_size=chunk)
    if m.group(2) == "bytes":
        rf.send_bytewise(c.sock, blob, pause=0.001)
        c.sock.sendall(tail)
    elif m.group(3):
        rf.send_split(c.sock, blob + tail, [int(m.group(3))], pause=0.03)
    else:
        c.sock.sendall(blob + tail)


CHUNK_SIZES = (1, 2, 7, 31, 64, 128)


class PatcherSplits(FrontDoorCase):
    """The origin's connect _result spans chunks (its chunk size is small)
    and its writes are cut anywhere: the replies must still reach the client
    with their transaction ids zeroed, and the session must hand over."""

    def setUp(self):
        super().setUp()
        o = self.origin(patch_origin_script, name="patch")
        self.start("pools: {p: {nodes: [{name: patch, address: 127.0.0.1:%d}]}}\n"
                   "routes: [{name: r, pool: p}]" % o.port, timeouts="{handshake: 3s, connect: 2s}",
                   workers=2)

    def play(self, stream):
        """None if fine, else what went wrong."""
        c = rf.RawClient(self.front, timeout=8)
        try:
            o = c.play("live", stream)
            if (o.kind, o.code) != ("status", "NetStream.Play.Start"):
                return "%s: %r" % (stream, o)
            a = c.read_messages(lambda m: m.type == rf.AUDIO, timeout=5)
            if a.kind != "done":
                return "%s: Play.Start but no media: %r" % (stream, a)
            tids = sorted(x[1] for x in o.commands if x[0] == "_result")
            # rtmplb's own answers (1, 2) and the origin's, patched to 0.
            if tids != [0.0, 0.0, 1.0, 2.0]:
                return "%s: _result transaction ids %r (want [0, 0, 1, 2])" % (stream, tids)
            origin_connect = [x for x in o.commands if x[0] == "_result" and len(x) > 3 and
                              isinstance(x[3], dict) and
                              x[3].get("description", "").startswith("origin: connected")]
            if len(origin_connect) != 1 or origin_connect[0][1] != 0.0:
                return "%s: origin's connect _result not patched: %r" % (stream, origin_connect)
            return None
        finally:
            c.close()

    def run_all(self, streams, batch=12):
        """Plays the streams, batch at a time; stops after the first batch
        with failures (today they wait out the deadline). Returns failures."""
        bad = []
        with ThreadPoolExecutor(batch) as ex:
            for i in range(0, len(streams), batch):
                bad += [r for r in ex.map(self.play, streams[i:i + batch]) if r]
                if bad:
                    break
        return bad

    def test_1_result_spanning_chunks_whole_writes(self):
        for chunk in CHUNK_SIZES:
            with self.subTest(chunk=chunk):
                bad = self.play("cs%d-whole" % chunk)
                print("chunk size %d, whole writes: %s" % (chunk, bad or "ok"))
                self.assertIsNone(bad)

    def test_2_result_spanning_chunks_written_one_byte_at_a_time(self):
        for chunk in CHUNK_SIZES:
            with self.subTest(chunk=chunk):
                bad = self.play("cs%d-bytes" % chunk)
                print("chunk size %d, one byte at a time: %s" % (chunk, bad or "ok"))
                self.assertIsNone(bad)

    def test_3_split_right_after_each_continuation_header(self):
        for chunk in CHUNK_SIZES:
            with self.subTest(chunk=chunk):
                _, offs = patch_blob(chunk)
                bad = self.run_all(["cs%d-at%d" % (chunk, k) for k in offs])
                print("chunk size %d: %d splits after a fmt3 header; failures: %s" % (
                    chunk, len(offs), bad[:3] or "none"))
                self.assertEqual(bad, [])
                x = self.session(stream="cs%d-at%d" % (chunk, offs[0]), timeout=1)
                if x:
                    self.assertNotIn(x["reason"], ("origin_timeout", "origin_protocol"), x)

    def test_4_split_at_every_other_offset(self):
        for chunk in CHUNK_SIZES:
            with self.subTest(chunk=chunk):
                blob, offs = patch_blob(chunk)
                rest = [k for k in range(1, len(blob) + 1) if k not in offs]
                bad = self.run_all(["cs%d-at%d" % (chunk, k) for k in rest])
                print("chunk size %d: %d other split offsets; failures: %s" % (
                    chunk, len(rest), bad[:3] or "none"))
                self.assertEqual(bad, [])


class SilentFailover(FrontDoorCase):
    def test_silent_first_node_then_a_working_one_serves_within_the_deadline(self):
        silent = self.origin(script_silent, name="silent")
        good = self.origin(healthy(), name="good")
        # weighted, silent first: its weight makes it the first pick for
        # the first session of the worker.
        self.start("""pools:
  p:
    health: {type: tcp, interval: 30s, timeout: 1s, rise: 1, fall: 1}
    nodes:
      - {name: silent, address: 127.0.0.1:%d, weight: 1000}
      - {name: good, address: 127.0.0.1:%d, weight: 1}
routes: [{name: r, pool: p}]""" % (silent.port, good.port),
                   timeouts="{handshake: 10s, connect: 1s}")
        c = self.client(timeout=15)
        start = time.monotonic()
        o = c.play("live", "failover")
        took = time.monotonic() - start
        print("silent first node: %r after %.2fs; silent accepted %d, good accepted %d" % (
            o, took, silent.accepted(), good.accepted()))
        self.assertEqual((o.kind, o.code), ("status", "NetStream.Play.Start"), repr(o))
        self.assertIn("origin good", o.description)
        self.assertLess(took, 8.0)  # connect (1 s) per candidate, not the 10 s handshake
        port = c.sock.getsockname()[1]
        c.close()
        x = self.session(port=port)
        self.assertIsNotNone(x)
        self.assertEqual(x["node"], "good")
        self.assertEqual(x["dials"], "2")
        # The silent node counted as a passive failure (fall: 1 -> down).
        self.assertRegex(self.log(), r"node_down .*node=silent")


# ---- 2. raw clients against a healthy origin ------------------------------------------

def junk_audio(total, chunk=128, csid=4):
    """Audio messages (never publish/play) of exactly total bytes: whole
    messages, the last one cut short (it stays incomplete)."""
    out = bytearray()
    while len(out) < total:
        out += rf.chunk_message(csid, rf.AUDIO, b"\xaf\x01" + os.urandom(998), msid=1, chunk_size=chunk)
    return bytes(out[:total])


class ClientFaults(FrontDoorCase):
    PREROUTE = 16384

    def setUp(self):
        super().setUp()
        o = self.origin(healthy(), name="good")
        self.start("pools: {p: {nodes: [{name: good, address: 127.0.0.1:%d}]}}\n"
                   "routes: [{name: r, pool: p}]" % o.port,
                   timeouts="{handshake: 2s, connect: 1s}",
                   limits="{preroute_bytes: %d}" % self.PREROUTE)

    def run_case(self, send, expect_reason, read_timeout=6):
        """A fresh client: handshake, then send(c); then read until the end.
        Returns (outcome, access-log line)."""
        c = self.client(timeout=10)
        port = c.sock.getsockname()[1]
        try:
            send(c)
        except OSError:
            pass
        o = c.read_messages(lambda m: False, timeout=read_timeout)
        c.close()
        x = self.session(port=port, timeout=6)
        print("%-45s -> client %s, reason=%s" % (expect_reason, o.kind, x and x.get("reason")))
        return o, x

    def test_1_client_protocol_reasons(self):
        bad_amf = rf.chunk_message(3, rf.COMMAND_AMF0, b"\x02\x00\x07connect\x00\x3f\xf0")
        deep = rf.chunk_message(3, rf.COMMAND_AMF0, rf.amf_encode_all("connect", 1.0) + b"\x03\x00\x01a" * 40)
        cases = [
            ("client_protocol:chunk_size", lambda c: rf.set_chunk_size_msg(0)),
            ("client_protocol:chunk_size", lambda c: rf.set_chunk_size_msg(0x7fffffff)),
            ("client_protocol:amf", lambda c: bad_amf),
            ("client_protocol:amf", lambda c: deep),
            ("client_protocol:createStream_before_connect", lambda c: c.create_stream_msg()),
            ("client_protocol:publish_before_connect", lambda c: c.publish_msg("x")),
            ("client_protocol:publish_before_connect", lambda c: c.play_msg("x")),
            # Five commands started at once on five chunk streams (first
            # chunks only): more than rtmplb reassembles at a time.
            ("client_protocol:interleaved_commands", lambda c: b"".join(
                rf.command("releaseStream", 0, None, "x" * 200, csid=cs)[:140] for cs in range(3, 8))),
            ("client_protocol:too_many_commands",
             lambda c: c.connect_msg() + b"".join(c.create_stream_msg() for _ in range(10))),
            # Chunk decoder errors: a fresh chunk stream without a message
            # header, and a command over max_message_size.
            ("client_protocol", lambda c: b"\x85\x00\x00\x00"),
            ("client_protocol", lambda c: b"\x03\x00\x00\x00\x7f\xff\xff\x14\x00\x00\x00\x00"),
        ]
        for reason, make in cases:
            with self.subTest(reason=reason):
                def send(c, make=make):
                    c.handshake()
                    c.send(make(c))
                o, x = self.run_case(send, reason)
                self.assertIn(o.kind, ("eof", "reset", "error"), repr(o))
                self.assertIsNotNone(x)
                self.assertEqual(x["reason"], reason)

    def test_2_bad_handshake_byte(self):
        for c0 in (6, 0, 0x47):
            with self.subTest(c0=c0):
                o, x = self.run_case(lambda c: c.send(bytes([c0]) + bytes(1536)), "bad_handshake")
                self.assertIn(o.kind, ("eof", "reset"))
                self.assertEqual(x and x["reason"], "bad_handshake")

    def test_3_preroute_overflow(self):
        def send(c):
            c.handshake()
            c.send(c.connect_msg())
            c.send(junk_audio(self.PREROUTE + 8192))
        o, x = self.run_case(send, "preroute_limit")
        self.assertIn(o.kind, ("eof", "reset", "error"))
        self.assertEqual(x and x["reason"], "preroute_limit")
        self.assertIn("limits.preroute_bytes", self.log())

    def test_4_preroute_boundary_is_preroute_limit_not_internal_error(self):
        # Between preroute_bytes - 4 KiB and preroute_bytes after C2, then
        # (after a pause, so it is read on its own) more to go past the
        # limit: the end is preroute_limit, never internal_error.
        got = {}
        for n in (self.PREROUTE - 4096 + 1, self.PREROUTE - 3000, self.PREROUTE - 1024,
                  self.PREROUTE - 1, self.PREROUTE):
            def send(c, n=n):
                c.handshake()
                stream = junk_audio(n + 8192)  # one valid chunk stream, sent in two parts
                c.send(stream[:n])
                time.sleep(0.4)
                c.send(stream[n:])
            o, x = self.run_case(send, "preroute_limit (%d bytes)" % n)
            got[n] = x and x["reason"]
        print("reasons by bytes sent before the pause: %s" % got)
        self.assertEqual(got, {n: "preroute_limit" for n in got})

    def test_5_closing_in_each_state(self):
        cases = [
            ("mid C0C1", "client_closed_in_handshake", lambda c: c.send(c.c0c1()[:700])),
            ("after C0C1", "client_closed_in_handshake",
             lambda c: (c.send(c.c0c1()), rf.recv_exact(c.sock, 3073, c.deadline()))),
            ("after C2", "client_closed", lambda c: c.handshake()),
            ("after connect", "client_closed",
             lambda c: (c.handshake(), c.send(c.connect_msg()), c.wait_result(1))),
            ("after createStream", "client_closed",
             lambda c: (c.handshake(), c.send(c.connect_msg() + c.create_stream_msg()),
                        c.wait_result(2))),
        ]
        for what, reason, send in cases:
            with self.subTest(state=what):
                c = self.client(timeout=5)
                port = c.sock.getsockname()[1]
                send(c)
                c.close()
                x = self.session(port=port, timeout=1.5)  # well before the 2 s deadline
                print("close %-20s -> reason=%s" % (what, x and x.get("reason")))
                self.assertIsNotNone(x, what)
                self.assertEqual(x["reason"], reason)

    def test_6_stalls_end_in_handshake_timeout(self):
        cases = [
            ("nothing", lambda c: None),
            ("half a C1", lambda c: c.send(c.c0c1()[:800])),
            ("C0C1, no C2", lambda c: (c.send(c.c0c1()), rf.recv_exact(c.sock, 3073, c.deadline()))),
            ("connect only", lambda c: (c.handshake(), c.send(c.connect_msg()))),
        ]
        for what, send in cases:
            with self.subTest(stall=what):
                c = self.client(timeout=10)
                port = c.sock.getsockname()[1]
                start = time.monotonic()
                send(c)
                o = c.read_messages(lambda m: False, timeout=8)
                took = time.monotonic() - start
                c.close()
                x = self.session(port=port, timeout=3)
                print("stall %-14s -> %s after %.2fs, reason=%s" % (what, o.kind, took,
                                                                      x and x.get("reason")))
                self.assertIn(o.kind, ("eof", "reset"))
                self.assertGreater(took, 1.5)
                self.assertEqual(x and x["reason"], "handshake_timeout")


# ---- 3. error linger ---------------------------------------------------------------------

class ErrorLinger(FrontDoorCase):
    """After an RTMP error rtmplb must shut down its write side and discard
    what the client still sends for a short linger: the client reads the
    error and then a clean EOF, and its writes meanwhile do not fail (a
    publisher whose write fails with EPIPE/ECONNRESET reports that, not the
    error). Today it closes with unread client bytes: a reset."""

    def test_error_is_read_intact_then_eof_while_the_client_keeps_sending(self):
        o = self.origin(healthy(), name="good")
        self.start("pools: {p: {nodes: [{name: good, address: 127.0.0.1:%d}]}}\n"
                   "routes: [{name: r, match: {app: live}, pool: p}]" % o.port)
        for mode in ("one write", "1 KiB writes"):
            with self.subTest(mode=mode):
                c = self.client(timeout=10)
                c.handshake()
                # play on an app no route matches, then 64 KiB of audio before
                # reading anything (a client that pipelines, a publisher that
                # starts pushing).
                cmds = c.connect_msg("nosuchapp") + c.create_stream_msg() + c.play_msg("x")
                junk = junk_audio(64 * 1024)
                send_error = None
                try:
                    if mode == "one write":
                        c.send(cmds + junk)
                    else:
                        c.send(cmds)
                        for i in range(0, len(junk), 1024):
                            c.send(junk[i:i + 1024])
                            time.sleep(0.002)
                except OSError as e:
                    send_error = e
                time.sleep(0.3)
                r = c.wait_status(5)
                after = c.read_messages(lambda m: False, timeout=5)
                c.close()
                print("linger, %s: %r, then %s; client's writes: %s" % (
                    mode, r, after.kind, send_error or "all accepted"))
                self.assertEqual((r.kind, r.code, r.level), ("status", STREAM_NOT_FOUND, "error"),
                                 repr(r))
                self.assertEqual(r.description, "rtmplb: no route for play nosuchapp/x")
                self.assertEqual(after.kind, "eof", "after the error: %r (want a clean EOF)" % after)
                self.assertIsNone(send_error)


# ---- 4. half-close ---------------------------------------------------------------------------

def script_keeps_talking(c):
    """Answers like nginx, then never closes: after the proxy's FIN it keeps
    sending a small message every 100 ms; records when a send fails."""
    c.handshake()
    c.read_commands()
    c.sock.sendall(healthy_reply(c))
    c.notes["eof_at"] = c.wait_eof(20)
    end = time.monotonic() + 20
    while time.monotonic() < end:
        try:
            c.sock.sendall(rf.chunk_message(6, rf.AUDIO, b"\xaf\x01" + bytes(50), msid=1, chunk_size=4096))
        except OSError as e:
            c.notes["send_failed_at"] = (time.monotonic(), str(e))
            return
        time.sleep(0.1)


class HalfClose(FrontDoorCase):
    def half_close(self, timeouts, bound):
        o = self.origin(script_keeps_talking, name="talker", hold=False)
        self.start("pools: {p: {nodes: [{name: talker, address: 127.0.0.1:%d}]}}\n"
                   "routes: [{name: r, pool: p}]" % o.port, timeouts=timeouts)
        c = self.client(timeout=10)
        r = c.play("live", "hc")
        self.assertEqual((r.kind, r.code), ("status", "NetStream.Play.Start"), repr(r))
        port = c.sock.getsockname()[1]
        c.sock.shutdown(socket.SHUT_WR)
        shut = time.monotonic()
        end = c.read_messages(lambda m: False, timeout=bound)  # media until rtmplb closes
        client_end = time.monotonic() - shut
        x = self.session(port=port, timeout=1)
        conn = o.conns[0]
        failed = conn.notes.get("send_failed_at")
        print("half-close: client saw %s after %.2fs; session line: %s; origin eof %s; "
              "origin send failed %s" % (end.kind, client_end, x and x.get("reason"),
                                         conn.notes.get("eof_at") and "yes",
                                         failed and "%.2fs after the client's FIN" % (failed[0] - shut)))
        self.assertIn(end.kind, ("eof", "reset"), "session still open %.1fs after the half-close"
                      % bound)
        self.assertIsNotNone(x)
        # The upstream leg is gone too: the origin's writes fail.
        deadline = time.monotonic() + 3
        while "send_failed_at" not in conn.notes and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertIn("send_failed_at", conn.notes, "the origin's side is still open")

    def test_1_half_close_1s(self):
        self.half_close("{handshake: 3s, connect: 1s, idle: 60s, half_close: 1s}", bound=5)

    def test_2_half_close_default_5s(self):
        self.half_close("{handshake: 3s, connect: 1s, idle: 60s}", bound=10)


# ---- 5. send_proxy v1 with a long IPv6 client address -------------------------------------

SRC6 = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe"
DST6 = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffd"


def proxy_v2(src, dst, sport, dport):
    body = socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst) + \
        struct.pack(">HH", sport, dport)
    return b"\r\n\r\n\x00\r\nQUIT\n" + b"\x21\x21" + len(body).to_bytes(2, "big") + body


class SendProxy(FrontDoorCase):
    def backend(self):
        def script(c):
            deadline = time.monotonic() + 5
            while b"hello" not in c.received and time.monotonic() < deadline:
                c.sock.settimeout(max(0.01, deadline - time.monotonic()))
                try:
                    d = c.sock.recv(4096)
                except socket.timeout:
                    break
                if not d:
                    break
                c.received += d
            c.sock.sendall(b"bye")
        return self.origin(script, name="tcp", hold=False)

    def run_v6(self, src, dst):
        b = self.backend()
        self.front = free_port()
        self.fleet.rtmplb("""
listeners: [{name: l4, address: 127.0.0.1:%d, mode: tcp, proxy_protocol: v2}]
pools: {p: {nodes: [{name: tcp, address: 127.0.0.1:%d, send_proxy: v1}]}}
routes: [{name: r, pool: p}]
""" % (self.front, b.port), wait_ports=[self.front])
        s = socket.create_connection(("127.0.0.1", self.front), timeout=5)
        self.addCleanup(s.close)
        s.sendall(proxy_v2(src, dst, 65535, 65534) + b"hello")
        try:
            s.recv(100)
        except OSError:
            pass
        deadline = time.monotonic() + 5
        while b.accepted() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(b.accepted(), 1, "the backend was never dialed")
        deadline = time.monotonic() + 5
        while b.conns[0].ended_at is None and time.monotonic() < deadline:
            time.sleep(0.05)
        return bytes(b.conns[0].received)

    def test_1_short_ipv6_header_control(self):
        got = self.run_v6("2001:db8::1", "2001:db8::2")
        self.assertEqual(got, b"PROXY TCP6 2001:db8::1 2001:db8::2 65535 65534\r\nhello")

    def test_2_longest_ipv6_header(self):
        got = self.run_v6(SRC6, DST6)
        want = ("PROXY TCP6 %s %s 65535 65534\r\n" % (SRC6, DST6)).encode()
        print("backend received %r" % got[:120])
        self.assertEqual(got, want + b"hello")


# ---- 6. many stalled partial PROXY headers ---------------------------------------------------

class StalledProxyHeaders(FrontDoorCase):
    N = 5000

    def test_cpu_stays_low_with_5000_stalled_proxy_headers(self):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = min(hard, 20000)
        if soft < want:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        self.assertGreaterEqual(resource.getrlimit(resource.RLIMIT_NOFILE)[0], self.N + 200)
        o = self.origin(healthy(), name="good")
        self.front = free_port()
        lb = self.fleet.rtmplb("""
workers: 2
timeouts: {handshake: 120s}
listeners: [{name: pp, address: 0.0.0.0:%d, proxy_protocol: v1}]
pools: {p: {nodes: [{name: good, address: 127.0.0.1:%d}]}}
routes: [{name: r, pool: p}]
""" % (self.front, o.port), wait_ports=[self.front], nofile=want)
        socks = []
        self.addCleanup(lambda: [s.close() for s in socks])
        for i in range(self.N):
            s = socket.socket()
            s.bind(("127.0.0.%d" % (2 + i % 8), 0))
            s.settimeout(5)
            s.connect(("127.0.0.1", self.front))
            s.sendall(b"PROXY ")
            socks.append(s)
        time.sleep(1.0)
        tck = os.sysconf("SC_CLK_TCK")

        def cpu():
            with open("/proc/%d/stat" % lb.pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return int(fields[11]) + int(fields[12])  # utime + stime

        a, t0 = cpu(), time.monotonic()
        time.sleep(5)
        b, t1 = cpu(), time.monotonic()
        share = (b - a) / tck / (t1 - t0)
        print("rtmplb CPU with %d stalled PROXY headers: %.1f%% of one core" % (self.N, share * 100))
        self.assertIsNone(lb.poll(), "rtmplb died")
        # Still serving meanwhile: a stalled header does not block others.
        ok = socket.create_connection(("127.0.0.1", self.front), timeout=5)
        ok.sendall(b"PROXY TCP4 192.0.2.1 192.0.2.2 1000 1935\r\n")
        ok.close()
        self.assertLess(share, 0.10)


if __name__ == "__main__":
    harness.main()
