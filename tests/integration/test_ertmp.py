"""Enhanced RTMP (veovera E-RTMP v2) through the front door, black box.

A synthetic E-RTMP encoder (Python, over rtmpfake) connects through rtmplb
with fourCcList [hvc1, av01, Opus], videoFourCcInfoMap, audioFourCcInfoMap
and capsEx, checks that rtmplb's own connect _result echoes them (pools with
ertmp: forward) or answers as a legacy server (ertmp: off), then publishes
HEVC as extended video tags (ExVideoTagHeader, FourCC hvc1: SequenceStart,
CodedFrames with a composition time, CodedFramesX) and Opus as extended audio
tags (ExAudioTagHeader, FourCC Opus: SequenceStart, CodedFrames) to a stock
nginx-rtmp origin. A player through rtmplb, joined before the publisher
(nginx-rtmp keeps no codec header for codecs it does not know, so a late
player never gets the sequence start), reads the media back: every payload
must equal what was sent, in order.

What stock nginx-rtmp 1.2.2 does with these tags (ngx_rtmp_live_av): it
relays them unparsed, except that with `wait_key on` (its default) a new
player's first video message must have frame-type nibble 1, and an
ExVideoTagHeader's high nibble is 8|frameType (9 for a key frame): every
E-RTMP video message is then skipped for every player, while the audio
passes. The origin that must relay video runs `wait_key off`; a second
origin with the defaults checks exactly that drop (audio identical, no
video), so the documentation of it stays true."""

import struct
import time
import unittest

import harness
import rtmpfake as rf
from harness import Fleet, free_port

FOURCCS = ["hvc1", "av01", "Opus"]
VIDEO_MAP = {"hvc1": 3.0, "av01": 3.0}   # CanDecode | CanEncode
AUDIO_MAP = {"Opus": 3.0}
CAPS_EX = 0x02 | 0x10                     # Multitrack, and a bit no spec defines

# ExVideoTagHeader: bit 7 = IsExHeader, bits 4-6 = frame type, bits 0-3 = PacketType
V_KEY, V_INTER = 1, 2
V_SEQ_START, V_CODED, V_CODED_X = 0, 1, 3
# ExAudioTagHeader: SoundFormat 9 (ExHeader) in bits 4-7, AudioPacketType in 0-3
A_SEQ_START, A_CODED = 0, 1


def ex_video(frame_type, packet_type, body, cto=None):
    head = bytes([0x80 | frame_type << 4 | packet_type]) + b"hvc1"
    if packet_type == V_CODED:  # SI24 composition time offset
        head += (cto & 0xffffff).to_bytes(3, "big")
    return head + body


def ex_audio(packet_type, body):
    return bytes([9 << 4 | packet_type]) + b"Opus" + body


def nalu(kind, size, seed):
    """A length-prefixed HEVC NAL unit of `kind`, with deterministic filler."""
    head = bytes([kind << 1, 1])
    fill = bytes((seed * 31 + i * 7) & 0xff for i in range(size - 2))
    return len(head + fill).to_bytes(4, "big") + head + fill


def media_plan(frames=40):
    """[(type, ts, payload)]: a 25 fps HEVC stream (a key frame every 20)
    and 20 ms Opus packets, interleaved by timestamp."""
    # HEVCDecoderConfigurationRecord-shaped bytes (version 1, Main profile,
    # VPS/SPS/PPS arrays); the origin never parses them.
    hvcc = bytes([1, 1, 0x60, 0, 0, 0, 0x90, 0, 0, 0, 0, 0, 93, 0xf0, 0, 0xfc, 0xfd, 0xf8, 0xf8,
                  0, 0, 0x0f, 3])
    for kind, n in ((32, 24), (33, 40), (34, 8)):
        hvcc += bytes([0x80 | kind]) + (1).to_bytes(2, "big") + n.to_bytes(2, "big") + \
            bytes((kind + i) & 0xff for i in range(n))
    # OpusHead (RFC 7845 5.1): stereo, 312 samples pre-skip, 48 kHz, family 0
    opus_head = b"OpusHead" + bytes([1, 2]) + struct.pack("<HIhB", 312, 48000, 0, 0)
    plan = [(rf.VIDEO, 0, ex_video(V_KEY, V_SEQ_START, hvcc)),
            (rf.AUDIO, 0, ex_audio(A_SEQ_START, opus_head))]
    events = []
    for i in range(frames):
        ts = i * 40
        key = i % 20 == 0
        body = nalu(19 if key else 1, 6000 if key else 900 + 37 * i, i)
        if i % 2:   # CodedFramesX: composition time implied 0
            v = ex_video(V_INTER, V_CODED_X, body)
        else:
            v = ex_video(V_KEY if key else V_INTER, V_CODED, body, cto=80 if not key else 0)
        events.append((ts, 0, rf.VIDEO, v))
    for j in range(frames * 2):
        ts = j * 20
        toc = bytes([0xfc, (j * 13) & 0xff])  # a 20 ms CELT frame's TOC, then filler
        events.append((ts, 1, rf.AUDIO, ex_audio(A_CODED, toc + bytes((j + k) & 0xff
                                                                      for k in range(60 + j % 9)))))
    events.sort(key=lambda e: (e[0], e[1]))
    plan += [(t, ts, p) for ts, _, t, p in events]
    return plan


def ertmp_connect(client, app, tc_host, caps=True):
    props = {"app": app, "type": "nonprivate", "flashVer": "FMLE/3.0 (compatible; ertmp-test)",
             "tcUrl": "rtmp://%s/%s" % (tc_host, app)}
    if caps:
        props.update({"fourCcList": FOURCCS, "videoFourCcInfoMap": VIDEO_MAP,
                      "audioFourCcInfoMap": AUDIO_MAP, "capsEx": float(CAPS_EX)})
    return rf.command("connect", client.next_tid(), props, chunk_size=client.chunk_size)


class Session:
    """One raw client through rtmplb: handshake, an E-RTMP connect, then
    createStream; .connect_reply is the [_result, tid, props, info] it got."""

    def __init__(self, port, app="live", caps=True):
        self.c = rf.RawClient(port, timeout=15)
        self.c.handshake()
        self.c.send(ertmp_connect(self.c, app, "127.0.0.1:%d" % port, caps))
        o = self.c.wait_result(1)
        if o.kind != "done":
            raise AssertionError("connect through rtmplb: %r" % o)
        self.connect_reply = o.message.command()
        self.connect_len = len(o.message.payload)
        self.c.send(self.c.create_stream_msg())
        o = self.c.wait_result(2)
        if o.kind != "done":
            raise AssertionError("createStream: %r" % o)
        self.msid = int(o.message.command()[3])

    def close(self):
        self.c.close()


def props_of(reply):
    return reply[2] if isinstance(reply[2], dict) else {}


class ERtmp(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        f = cls.fleet = Fleet()
        cls.addClassCleanup(f.stop)
        # idle_streams on: a player may join before the publisher (the test's
        # way to see every message from the sequence start on).
        cls.relay = f.nginx_origin("relay", free_port(), free_port(),
                                   extra_app="idle_streams on; wait_key off;")
        cls.stock = f.nginx_origin("stock", free_port(), free_port(),
                                   extra_app="idle_streams on;")
        cls.p_relay, cls.p_stock, cls.p_off = free_port(), free_port(), free_port()
        f.rtmplb("""
workers: 2
listeners:
  - {name: relay, address: 127.0.0.1:%d, mode: rtmp}
  - {name: stock, address: 127.0.0.1:%d, mode: rtmp}
  - {name: legacy, address: 127.0.0.1:%d, mode: rtmp}
pools:
  relay: {nodes: [{name: relay, address: 127.0.0.1:%d}]}
  stock: {ertmp: forward, nodes: [{name: stock, address: 127.0.0.1:%d}]}
  legacy: {ertmp: 'off', nodes: [{name: relay-legacy, address: 127.0.0.1:%d}]}
routes:
  - {name: relay, match: {listener: relay}, pool: relay}
  - {name: stock, match: {listener: stock}, pool: stock}
  - {name: legacy-play, match: {listener: legacy, role: play}, pool: relay}
  - {name: legacy-publish, match: {listener: legacy, role: publish}, pool: legacy}
""" % (cls.p_relay, cls.p_stock, cls.p_off, cls.relay.rtmp_port, cls.stock.rtmp_port,
       cls.relay.rtmp_port), wait_ports=[cls.p_relay])

    # -- the connect reply ----------------------------------------------
    def test_1_connect_result_echoes_capabilities(self):
        s = Session(self.p_relay)
        try:
            reply = s.connect_reply
            self.assertEqual(reply[0], "_result")
            self.assertEqual(reply[3].get("code"), "NetConnection.Connect.Success")
            p = props_of(reply)
            self.assertEqual(p.get("fourCcList"), FOURCCS)
            # What a forwarding server can promise for each codec listed: CanForward.
            self.assertEqual(p.get("videoFourCcInfoMap"), {"hvc1": 4.0, "av01": 4.0})
            self.assertEqual(p.get("audioFourCcInfoMap"), {"Opus": 4.0})
            self.assertEqual(p.get("capsEx"), float(CAPS_EX & 0x0f))
            self.assertGreater(s.connect_len, 128)  # so it spanned chunks, and decoded
            self.assertEqual(s.msid, 1)
        finally:
            s.close()

    def test_2_ertmp_off_answers_as_a_legacy_server(self):
        # A publish on this listener would reach the ertmp: off pool: no promise.
        s = Session(self.p_off)
        try:
            p = props_of(s.connect_reply)
            self.assertEqual(s.connect_reply[3].get("code"), "NetConnection.Connect.Success")
            for k in ("fourCcList", "videoFourCcInfoMap", "audioFourCcInfoMap", "capsEx"):
                self.assertNotIn(k, p)
            self.assertLessEqual(s.connect_len, 128)
        finally:
            s.close()
        # A legacy client gets the legacy reply from a forward pool too.
        s = Session(self.p_relay, caps=False)
        try:
            self.assertNotIn("fourCcList", props_of(s.connect_reply))
            self.assertLessEqual(s.connect_len, 128)
        finally:
            s.close()

    # -- media ----------------------------------------------------------
    def play(self, port, stream):
        pl = Session(port)
        pl.c.send(pl.c.play_msg(stream, msid=pl.msid))
        o = pl.c.wait_status(15)
        self.assertEqual((o.kind, o.code), ("status", "NetStream.Play.Start"), o)
        return pl

    def publish(self, port, stream, plan):
        pub = Session(port)
        pub.c.send(pub.c.publish_msg(stream, msid=pub.msid))
        o = pub.c.wait_status(15)
        self.assertEqual((o.kind, o.code), ("status", "NetStream.Publish.Start"), o)
        # Larger chunks from here on, as encoders do; the origin reads them
        # through rtmplb's splice.
        pub.c.send(rf.set_chunk_size_msg(4096))
        csid = {rf.AUDIO: 4, rf.VIDEO: 6}
        for i, (mtype, ts, payload) in enumerate(plan):
            pub.c.send(rf.chunk_message(csid[mtype], mtype, payload, msid=pub.msid, ts=ts,
                                        chunk_size=4096))
            if i % 8 == 7:
                time.sleep(0.01)  # stay far below nginx's out_queue on the player side
        return pub

    def read_media(self, pl, want_audio, want_video, timeout=20):
        """(audio payloads, video payloads) the player got, once it has the
        counts wanted or the time is up."""
        got = {rf.AUDIO: [], rf.VIDEO: []}

        def enough(m):
            if m.type in got and m.msid == pl.msid:
                got[m.type].append(m.payload)
            return len(got[rf.AUDIO]) >= want_audio and len(got[rf.VIDEO]) >= want_video

        o = pl.c.read_messages(enough, timeout)
        self.assertIn(o.kind, ("done", "timeout"), o)
        return got[rf.AUDIO], got[rf.VIDEO]

    def sent(self, plan, mtype):
        return [p for t, _, p in plan if t == mtype]

    def test_3_hevc_and_opus_arrive_byte_identical(self):
        plan = media_plan()
        pl = self.play(self.p_relay, "ex1")
        pub = self.publish(self.p_relay, "ex1", plan)
        try:
            audio, video = self.read_media(pl, len(self.sent(plan, rf.AUDIO)),
                                           len(self.sent(plan, rf.VIDEO)))
            self.assertEqual(len(video), len(self.sent(plan, rf.VIDEO)))
            self.assertEqual(len(audio), len(self.sent(plan, rf.AUDIO)))
            self.assertEqual(video, self.sent(plan, rf.VIDEO), "video payloads differ")
            self.assertEqual(audio, self.sent(plan, rf.AUDIO), "audio payloads differ")
            # the first of each is the sequence start, the FourCC form intact
            self.assertEqual(video[0][:5], bytes([0x90]) + b"hvc1")
            self.assertEqual(audio[0][:5], bytes([0x90]) + b"Opus")
        finally:
            pub.close()
            pl.close()

    def test_4_stock_nginx_drops_ertmp_video_but_relays_audio(self):
        plan = media_plan(frames=20)
        pl = self.play(self.p_stock, "ex2")
        pub = self.publish(self.p_stock, "ex2", plan)
        try:
            want_audio = len(self.sent(plan, rf.AUDIO))
            # Wait for all the audio, and a while past it for any video.
            audio, video = self.read_media(pl, want_audio, 1, timeout=8)
            self.assertEqual(audio, self.sent(plan, rf.AUDIO), "audio payloads differ")
            self.assertEqual(video, [], "nginx-rtmp with wait_key on (its default) skips every "
                             "ExVideoTagHeader message for players; it relayed %d" % len(video))
        finally:
            pub.close()
            pl.close()

    def test_5_publish_through_an_ertmp_off_pool_still_passes_media(self):
        # ertmp: off changes only what rtmplb promises at connect.
        plan = media_plan(frames=10)
        pl = self.play(self.p_relay, "ex3")
        pub = self.publish(self.p_off, "ex3", plan)
        try:
            audio, video = self.read_media(pl, len(self.sent(plan, rf.AUDIO)),
                                           len(self.sent(plan, rf.VIDEO)))
            self.assertEqual(video, self.sent(plan, rf.VIDEO))
            self.assertEqual(audio, self.sent(plan, rf.AUDIO))
        finally:
            pub.close()
            pl.close()


if __name__ == "__main__":
    harness.main()
