"""Raw RTMP in Python for black-box fault tests: AMF0, a chunk encoder and a
resumable chunk decoder (any chunk size, 1/2/3-byte csids, extended
timestamps), a raw client that does what a real client does (C0C1 simple,
S0S1S2, C2, connect, createStream, publish/play) and reports the server's
answer, and a scripted fake origin whose every connection runs a Python
function. Loopback only; every socket operation has a deadline."""

import os
import socket
import struct
import threading
import time

HS_SIZE = 1536

# Message types
SET_CHUNK_SIZE, ABORT, ACK, USER_CONTROL, WIN_ACK, PEER_BW = 1, 2, 3, 4, 5, 6
AUDIO, VIDEO, DATA_AMF0, COMMAND_AMF3, COMMAND_AMF0 = 8, 9, 18, 17, 20


# ---- AMF0 ------------------------------------------------------------------

class Undefined:
    def __repr__(self):
        return "undefined"


UNDEFINED = Undefined()


class EcmaArray(dict):
    pass


def _amf_key(k):
    b = k.encode()
    return len(b).to_bytes(2, "big") + b


def amf_encode(v):
    """One AMF0 value: float/int (number), bool, str, None (null),
    UNDEFINED, dict (object), EcmaArray, list (strict array)."""
    if isinstance(v, bool):
        return b"\x01" + (b"\x01" if v else b"\x00")
    if isinstance(v, (int, float)):
        return b"\x00" + struct.pack(">d", float(v))
    if isinstance(v, str):
        b = v.encode()
        if len(b) > 0xffff:
            return b"\x0c" + len(b).to_bytes(4, "big") + b
        return b"\x02" + len(b).to_bytes(2, "big") + b
    if v is None:
        return b"\x05"
    if v is UNDEFINED:
        return b"\x06"
    if isinstance(v, EcmaArray):
        return (b"\x08" + len(v).to_bytes(4, "big") +
                b"".join(_amf_key(k) + amf_encode(x) for k, x in v.items()) + b"\x00\x00\x09")
    if isinstance(v, dict):
        return b"\x03" + b"".join(_amf_key(k) + amf_encode(x) for k, x in v.items()) + b"\x00\x00\x09"
    if isinstance(v, (list, tuple)):
        return b"\x0a" + len(v).to_bytes(4, "big") + b"".join(amf_encode(x) for x in v)
    raise TypeError("no AMF0 encoding for %r" % (v,))


def amf_encode_all(*values):
    return b"".join(amf_encode(v) for v in values)


class AmfError(ValueError):
    pass


def _need(data, pos, n):
    if pos + n > len(data):
        raise AmfError("AMF0 truncated at %d (need %d of %d)" % (pos, n, len(data)))


def _amf_pairs(data, pos, depth):
    out = {}
    while True:
        _need(data, pos, 3)
        n = int.from_bytes(data[pos:pos + 2], "big")
        if n == 0 and data[pos + 2] == 9:
            return out, pos + 3
        pos += 2
        _need(data, pos, n)
        key = data[pos:pos + n].decode("utf-8", "replace")
        pos += n
        out[key], pos = amf_decode_one(data, pos, depth + 1)


def amf_decode_one(data, pos=0, depth=0):
    """Returns (value, next position). Raises AmfError on bad input."""
    if depth > 32:
        raise AmfError("AMF0 nested too deep")
    _need(data, pos, 1)
    t = data[pos]
    pos += 1
    if t == 0x00:
        _need(data, pos, 8)
        return struct.unpack(">d", data[pos:pos + 8])[0], pos + 8
    if t == 0x01:
        _need(data, pos, 1)
        return data[pos] != 0, pos + 1
    if t == 0x02:
        _need(data, pos, 2)
        n = int.from_bytes(data[pos:pos + 2], "big")
        _need(data, pos + 2, n)
        return data[pos + 2:pos + 2 + n].decode("utf-8", "replace"), pos + 2 + n
    if t == 0x0c:
        _need(data, pos, 4)
        n = int.from_bytes(data[pos:pos + 4], "big")
        _need(data, pos + 4, n)
        return data[pos + 4:pos + 4 + n].decode("utf-8", "replace"), pos + 4 + n
    if t == 0x03:
        return _amf_pairs(data, pos, depth)
    if t == 0x08:
        _need(data, pos, 4)
        d, pos = _amf_pairs(data, pos + 4, depth)
        return EcmaArray(d), pos
    if t == 0x0a:
        _need(data, pos, 4)
        n = int.from_bytes(data[pos:pos + 4], "big")
        pos += 4
        out = []
        for _ in range(n):
            v, pos = amf_decode_one(data, pos, depth + 1)
            out.append(v)
        return out, pos
    if t == 0x05:
        return None, pos
    if t == 0x06:
        return UNDEFINED, pos
    if t == 0x0b:
        _need(data, pos, 10)
        return struct.unpack(">d", data[pos:pos + 8])[0], pos + 10
    raise AmfError("AMF0 type 0x%02x not supported" % t)


def amf_decode_all(data):
    out, pos = [], 0
    while pos < len(data):
        v, pos = amf_decode_one(data, pos)
        out.append(v)
    return out


# ---- chunks ------------------------------------------------------------------

def basic_header(fmt, csid):
    if 2 <= csid <= 63:
        return bytes([fmt << 6 | csid])
    if 64 <= csid <= 319:
        return bytes([fmt << 6, csid - 64])
    return bytes([fmt << 6 | 1]) + (csid - 64).to_bytes(2, "little")


def chunk_message(csid, mtype, payload, msid=0, ts=0, chunk_size=128, fmt=0):
    """One message as chunks: a header of format fmt (0 full, 1 no msid,
    2 timestamp delta only, 3 none), then fmt3 continuations."""
    ext = ts >= 0xffffff
    field = (0xffffff if ext else ts).to_bytes(3, "big")
    if fmt == 0:
        mh = field + len(payload).to_bytes(3, "big") + bytes([mtype]) + msid.to_bytes(4, "little")
    elif fmt == 1:
        mh = field + len(payload).to_bytes(3, "big") + bytes([mtype])
    elif fmt == 2:
        mh = field
    else:
        mh = b""
    ext_b = ts.to_bytes(4, "big") if ext and fmt < 3 else b""
    out = bytearray(basic_header(fmt, csid) + mh + ext_b)
    for i in range(0, max(len(payload), 1), chunk_size):
        if i:
            out += basic_header(3, csid)
        out += payload[i:i + chunk_size]
    return bytes(out)


def command(name, tid, *args, csid=3, msid=0, chunk_size=128):
    return chunk_message(csid, COMMAND_AMF0, amf_encode_all(name, tid, *args), msid=msid,
                         chunk_size=chunk_size)


def set_chunk_size_msg(size):
    return chunk_message(2, SET_CHUNK_SIZE, (size & 0xffffffff).to_bytes(4, "big"))


def win_ack_msg(size=2500000):
    return chunk_message(2, WIN_ACK, size.to_bytes(4, "big"))


def peer_bw_msg(size=2500000, limit=2):
    return chunk_message(2, PEER_BW, size.to_bytes(4, "big") + bytes([limit]))


def stream_begin_msg(msid=1, chunk_size=128):
    return chunk_message(2, USER_CONTROL, b"\x00\x00" + msid.to_bytes(4, "big"), chunk_size=chunk_size)


def on_status(code, description, level="status", msid=1, csid=5, chunk_size=128):
    return chunk_message(csid, COMMAND_AMF0,
                         amf_encode_all("onStatus", 0, None, {"level": level, "code": code,
                                                              "description": description}),
                         msid=msid, chunk_size=chunk_size)


class ChunkError(ValueError):
    pass


class Message:
    __slots__ = ("csid", "fmt", "type", "msid", "ts", "payload")

    def __init__(self, csid, fmt, mtype, msid, ts, payload):
        self.csid, self.fmt, self.type, self.msid, self.ts, self.payload = \
            csid, fmt, mtype, msid, ts, payload

    def command(self):
        """[name, tid, ...] for a command message, else None."""
        if self.type == COMMAND_AMF0:
            return amf_decode_all(self.payload)
        if self.type == COMMAND_AMF3 and self.payload[:1] == b"\x00":
            return amf_decode_all(self.payload[1:])
        return None

    def __repr__(self):
        return "Message(csid=%d type=%d msid=%d len=%d)" % (self.csid, self.type, self.msid,
                                                           len(self.payload))


class ChunkDecoder:
    """Resumable: feed(bytes) returns the whole messages completed so far.
    Applies Set Chunk Size messages itself (RTMP: from the next chunk)."""

    def __init__(self, chunk_size=128, max_len=16 << 20):
        self.chunk_size = chunk_size
        self.max_len = max_len
        self.buf = bytearray()
        self.cs = {}  # csid -> dict(ts, delta, len, type, msid, ext, data, fmt)

    def feed(self, data):
        self.buf += data
        out = []
        while True:
            m = self._one()
            if m is None:
                return out
            if m is not True:
                out.append(m)

    def _one(self):
        b = self.buf
        if not b:
            return None
        fmt, low = b[0] >> 6, b[0] & 0x3f
        pos = 1
        if low == 0:
            if len(b) < 2:
                return None
            csid, pos = 64 + b[1], 2
        elif low == 1:
            if len(b) < 3:
                return None
            csid, pos = 64 + b[1] + 256 * b[2], 3
        else:
            csid = low
        mh = (11, 7, 3, 0)[fmt]
        if len(b) < pos + mh:
            return None
        st = self.cs.get(csid)
        if st is None:
            if fmt >= 2:
                raise ChunkError("first chunk on csid %d has fmt %d" % (csid, fmt))
            st = {"ts": 0, "delta": 0, "len": 0, "type": 0, "msid": 0, "ext": False,
                  "data": None, "fmt": 0}
        st = dict(st)
        starts = st["data"] is None
        if not starts and fmt != 3:
            raise ChunkError("new header fmt %d in the middle of a message on csid %d" % (fmt, csid))
        field = None
        if fmt <= 2:
            field = int.from_bytes(b[pos:pos + 3], "big")
            st["ext"] = field == 0xffffff
        if fmt <= 1:
            st["len"] = int.from_bytes(b[pos + 3:pos + 6], "big")
            st["type"] = b[pos + 6]
        if fmt == 0:
            st["msid"] = int.from_bytes(b[pos + 7:pos + 11], "little")
        pos += mh
        if st["ext"]:
            if len(b) < pos + 4:
                return None
            v = int.from_bytes(b[pos:pos + 4], "big")
            if fmt <= 2 or starts:
                field = v
                st["extv"] = v
                pos += 4
            elif v == st.get("extv"):
                pos += 4
        if starts:
            if fmt == 0:
                st["ts"], st["delta"] = field, 0
            elif fmt <= 2:
                st["delta"] = field
                st["ts"] += field
            else:
                st["ts"] += st["delta"]
            if st["len"] > self.max_len:
                raise ChunkError("message of %d bytes" % st["len"])
            st["data"] = bytearray()
            st["fmt"] = fmt
        take = min(self.chunk_size, st["len"] - len(st["data"]))
        if len(b) < pos + take:
            return None
        st["data"] += b[pos:pos + take]
        del self.buf[:pos + take]
        msg = True
        if len(st["data"]) == st["len"]:
            msg = Message(csid, st["fmt"], st["type"], st["msid"], st["ts"], bytes(st["data"]))
            st["data"] = None
            if msg.type == SET_CHUNK_SIZE and len(msg.payload) >= 4:
                v = int.from_bytes(msg.payload[:4], "big") & 0x7fffffff
                if v < 1:
                    raise ChunkError("Set Chunk Size %d" % v)
                self.chunk_size = v
        self.cs[csid] = st
        return msg


# ---- sockets -------------------------------------------------------------------

class Deadline(Exception):
    pass


def recv_exact(sock, n, deadline):
    """n bytes before the monotonic deadline; raises EOFError, Deadline or
    OSError (a reset)."""
    out = bytearray()
    while len(out) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            raise Deadline("got %d of %d bytes" % (len(out), n))
        sock.settimeout(left)
        try:
            d = sock.recv(n - len(out))
        except socket.timeout:
            raise Deadline("got %d of %d bytes" % (len(out), n))
        if not d:
            raise EOFError("EOF after %d of %d bytes" % (len(out), n))
        out += d
    return bytes(out)


def send_split(sock, data, splits=(), pause=0.03):
    """Writes data in pieces cut at the given offsets, pausing between them
    (TCP_NODELAY is set, so each piece leaves on its own)."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    last = 0
    for cut in sorted(set(c for c in splits if 0 < c < len(data))):
        sock.sendall(data[last:cut])
        time.sleep(pause)
        last = cut
    sock.sendall(data[last:])


def send_bytewise(sock, data, pause=0.002):
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for i in range(len(data)):
        sock.sendall(data[i:i + 1])
        time.sleep(pause)


# ---- the raw client --------------------------------------------------------------

class Outcome:
    """What a client saw. kind: 'status' (an onStatus; code, description,
    level), 'error' (an _error; code, description), 'eof', 'reset',
    'timeout'. messages: every message decoded."""

    def __init__(self, kind, code=None, description=None, level=None, detail=None):
        self.kind, self.code, self.description, self.level, self.detail = \
            kind, code, description, level, detail
        self.messages = []
        self.commands = []

    def __repr__(self):
        return "Outcome(%s %s %r %s)" % (self.kind, self.code, self.description,
                                          self.detail or "")


class RawClient:
    """A raw RTMP client, driven step by step so a test can stop or misbehave
    at any point."""

    def __init__(self, port, host="127.0.0.1", timeout=10.0, source=None):
        self.timeout = timeout
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if source:
            self.sock.bind((source, 0))
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        self.dec = ChunkDecoder()
        self.chunk_size = 128  # ours, outgoing
        self.tid = 0
        self.messages = []
        self.commands = []
        self.pending = []  # decoded, not yet looked at by read_messages
        self.stream_id = None

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def deadline(self, timeout=None):
        return time.monotonic() + (self.timeout if timeout is None else timeout)

    def send(self, data):
        self.sock.sendall(data)

    # -- handshake
    def c0c1(self):
        return b"\x03" + struct.pack(">II", int(time.time()) & 0xffffffff, 0) + os.urandom(HS_SIZE - 8)

    def handshake(self):
        c1 = self.c0c1()
        self.send(c1)
        s = recv_exact(self.sock, 1 + 2 * HS_SIZE, self.deadline())
        if s[0] != 3:
            raise ChunkError("S0 is %d" % s[0])
        self.send(s[1:1 + HS_SIZE])  # C2 = S1
        return s

    # -- commands
    def next_tid(self):
        self.tid += 1
        return self.tid

    def connect_msg(self, app="live", tid=None):
        return command("connect", self.next_tid() if tid is None else tid,
                       {"app": app, "flashVer": "LNX 9,0,124,2", "tcUrl": "rtmp://127.0.0.1/" + app,
                        "fpad": False, "capabilities": 15.0, "audioCodecs": 4071.0,
                        "videoCodecs": 252.0, "videoFunction": 1.0},
                       chunk_size=self.chunk_size)

    def create_stream_msg(self):
        return command("createStream", self.next_tid(), None, chunk_size=self.chunk_size)

    def play_msg(self, stream, msid=1):
        return command("play", 0, None, stream, -2000.0, csid=8, msid=msid, chunk_size=self.chunk_size)

    def publish_msg(self, stream, msid=1):
        return command("publish", 0, None, stream, "live", csid=8, msid=msid,
                       chunk_size=self.chunk_size)

    # -- reading
    def read_messages(self, until, timeout=None):
        """Reads until until(msg) is true for a message; returns an Outcome:
        'done' (with .message), or what ended the wait."""
        deadline = self.deadline(timeout)
        while True:
            while self.pending:
                o = self._look(self.pending.pop(0), until)
                if o is not None:
                    return o
            left = deadline - time.monotonic()
            if left <= 0:
                return self._outcome(Outcome("timeout"))
            self.sock.settimeout(left)
            try:
                d = self.sock.recv(65536)
            except socket.timeout:
                return self._outcome(Outcome("timeout"))
            except ConnectionResetError as e:
                return self._outcome(Outcome("reset", detail=str(e)))
            except OSError as e:
                return self._outcome(Outcome("reset", detail=str(e)))
            if not d:
                return self._outcome(Outcome("eof"))
            try:
                self.pending += self.dec.feed(d)
            except (ChunkError, AmfError) as e:
                return self._outcome(Outcome("garbled", detail=str(e)))

    def _look(self, m, until):
        """Records one message; an Outcome if it ends the wait, else None."""
        self.messages.append(m)
        try:
            cmd = m.command()
        except AmfError as e:
            return self._outcome(Outcome("garbled", detail=str(e)))
        if cmd is not None:
            self.commands.append(cmd)
        if until(m):
            o = Outcome("done")
            o.message = m
            return self._outcome(o)
        ev = _error_event(cmd)
        if ev is not None:
            return self._outcome(ev)
        return None

    def _outcome(self, o):
        o.messages = self.messages
        o.commands = self.commands
        return o

    def wait_result(self, tid, timeout=None):
        return self.read_messages(lambda m: _is_reply(m, tid), timeout)

    def play(self, app, stream, timeout=None, pipelined=True, extra=b"", handshake=True):
        """connect, createStream, play as a player does (ffmpeg waits for
        each reply; pipelined=True sends them at once, like a replay).
        Returns the Outcome: 'status' for the first onStatus of the
        stream (Play.Start or an error), 'error' for _error.
        handshake=False: the caller did it already."""
        return self._go(app, stream, self.play_msg, timeout, pipelined, extra, handshake)

    def publish(self, app, stream, timeout=None, pipelined=True, extra=b"", handshake=True):
        return self._go(app, stream, self.publish_msg, timeout, pipelined, extra, handshake)

    def _go(self, app, stream, verb, timeout, pipelined, extra, handshake=True):
        deadline = self.deadline(timeout)
        try:
            if handshake:
                self.handshake()
            if pipelined:
                self.send(self.connect_msg(app) + self.create_stream_msg() + verb(stream) + extra)
            else:
                self.send(self.connect_msg(app))
                o = self.wait_result(1, deadline - time.monotonic())
                if o.kind != "done":
                    return o
                self.send(self.create_stream_msg())
                o = self.wait_result(2, deadline - time.monotonic())
                if o.kind != "done":
                    return o
                self.send(verb(stream) + extra)
        except (EOFError, ) as e:
            return self._outcome(Outcome("eof", detail=str(e)))
        except Deadline as e:
            return self._outcome(Outcome("timeout", detail=str(e)))
        except OSError as e:
            return self._outcome(Outcome("reset", detail=str(e)))
        return self.wait_status(deadline - time.monotonic())

    def wait_status(self, timeout):
        o = self.read_messages(lambda m: _status_of(m) is not None, max(timeout, 0.01))
        if o.kind == "done":
            st = _status_of(o.message)
            o2 = Outcome("status", st.get("code"), st.get("description"), st.get("level"))
            o2.message = o.message
            return self._outcome(o2)
        return o


def _is_reply(m, tid):
    cmd = m.command()
    return bool(cmd) and cmd[0] in ("_result", "_error") and len(cmd) > 1 and cmd[1] == float(tid)


def _status_of(m):
    cmd = m.command()
    if cmd and cmd[0] == "onStatus":
        for v in cmd[2:]:
            if isinstance(v, dict) and "code" in v:
                return v
    return None


def _error_event(cmd):
    """An _error to a command (connect rejected): an 'error' Outcome."""
    if cmd and cmd[0] == "_error":
        info = next((v for v in cmd[2:] if isinstance(v, dict)), {})
        return Outcome("error", info.get("code"), info.get("description"), info.get("level"))
    return None


# ---- the fake origin ----------------------------------------------------------------

class OriginConn:
    """One accepted connection of a FakeOrigin, handed to the script."""

    def __init__(self, origin, sock, index):
        self.origin = origin
        self.sock = sock
        self.index = index
        self.dec = ChunkDecoder(max_len=1 << 24)
        self.commands = []   # decoded commands the proxy replayed to us
        self.received = bytearray()  # every byte after C2 (raw)
        self.c0c1 = b""
        self.proxy_header = b""
        self.eof = False
        self.ended_at = None
        self.notes = {}
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def deadline(self, timeout=10.0):
        return time.monotonic() + timeout

    def read_c0c1(self, timeout=10.0):
        self.c0c1 = recv_exact(self.sock, 1 + HS_SIZE, self.deadline(timeout))
        return self.c0c1

    def s0s1s2(self, version=3):
        return bytes([version]) + bytes(8) + os.urandom(HS_SIZE - 8) + self.c0c1[1:]

    def read_c2(self, timeout=10.0):
        return recv_exact(self.sock, HS_SIZE, self.deadline(timeout))

    def handshake(self, timeout=10.0):
        self.read_c0c1(timeout)
        self.sock.sendall(self.s0s1s2())
        self.read_c2(timeout)

    def read_commands(self, until=("play", "publish"), timeout=10.0):
        """Reads the replayed client bytes until a command named in until;
        returns the commands so far."""
        deadline = self.deadline(timeout)
        while not any(c and c[0] in until for c in self.commands):
            left = deadline - time.monotonic()
            if left <= 0:
                raise Deadline("no %s from the proxy; got %r" % (until, self.commands))
            self.sock.settimeout(left)
            d = self.sock.recv(65536)
            if not d:
                self.eof = True
                raise EOFError("proxy closed; commands %r" % self.commands)
            self.received += d
            for m in self.dec.feed(d):
                c = m.command()
                if c is not None:
                    self.commands.append(c)
        return self.commands

    def stream_name(self):
        for c in self.commands:
            if c and c[0] in ("play", "publish") and len(c) > 3:
                return c[3]
        return None

    def tid_of(self, name):
        for c in self.commands:
            if c and c[0] == name:
                return c[1]
        return None

    def wait_eof(self, timeout):
        """Reads (and keeps) until EOF; returns the time EOF came, or None."""
        deadline = self.deadline(timeout)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                d = self.sock.recv(65536)
            except socket.timeout:
                return None
            except OSError:
                d = b""
            if not d:
                self.eof = True
                return time.monotonic()
            self.received += d


class FakeOrigin:
    """A scripted origin on a loopback port: each accepted connection runs
    script(conn) in its own thread. Exceptions in scripts are kept in
    .errors (a test may assert on them). stop() closes everything."""

    def __init__(self, script, name="fake", host="127.0.0.1", hold=True):
        self.script = script
        self.name = name
        self.conns = []
        self.errors = []
        self.hold = hold
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((host, 0))
        self.lsock.listen(256)
        self.lsock.settimeout(0.2)
        self.port = self.lsock.getsockname()[1]
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.stopped.is_set():
            try:
                s, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                c = OriginConn(self, s, len(self.conns))
                self.conns.append(c)
            threading.Thread(target=self._run, args=(c,), daemon=True).start()

    def _run(self, c):
        try:
            self.script(c)
            if self.hold:  # keep the connection until the proxy closes it
                c.wait_eof(30)
        except Exception as e:  # noqa: BLE001 - recorded for the test
            with self.lock:
                self.errors.append((c.index, repr(e)))
        finally:
            c.ended_at = time.monotonic()
            try:
                c.sock.close()
            except OSError:
                pass

    def accepted(self):
        with self.lock:
            return len(self.conns)

    def stop(self):
        self.stopped.set()
        try:
            self.lsock.close()
        except OSError:
            pass
        with self.lock:
            conns = list(self.conns)
        for c in conns:
            try:
                c.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.thread.join(2)


# ---- origin replies ----------------------------------------------------------------

def connect_result(tid, pad=0, chunk_size=128, description="origin: connected"):
    """A connect _result of 108 bytes (one chunk at the default size, so it
    may precede a Set Chunk Size); pad lengthens the description so the
    message spans several chunks."""
    return command("_result", tid, None,
                   {"level": "status", "code": "NetConnection.Connect.Success",
                    "description": description + "." * pad},
                   chunk_size=chunk_size)


def create_stream_result(tid, stream_id=1, chunk_size=128):
    return command("_result", tid, None, float(stream_id), chunk_size=chunk_size)


def connect_preamble():
    return win_ack_msg(5000000) + peer_bw_msg(5000000, 2)
