#!/usr/bin/env python3
"""Writes a seed for fuzz_front_rtmp: a whole play (client handshake,
connect, createStream, play) and a healthy origin's answers, in the
target's input format (2-byte client length, client bytes, origin bytes).
With the argument "ertmp": an Enhanced RTMP publish instead (a connect with
fourCcList, [video|audio]FourCcInfoMap and capsEx, then publish)."""
import struct
import sys


def amf_str(s):
    b = s.encode()
    return b"\x02" + struct.pack(">H", len(b)) + b


def amf_num(v):
    return b"\x00" + struct.pack(">d", v)


def amf_val(v):
    if isinstance(v, str):
        return amf_str(v)
    if isinstance(v, list):
        return b"\x0a" + struct.pack(">I", len(v)) + b"".join(amf_val(x) for x in v)
    if isinstance(v, dict):
        return amf_obj(v)
    return amf_num(v)


def amf_obj(d):
    out = b"\x03"
    for k, v in d.items():
        kb = k.encode()
        out += struct.pack(">H", len(kb)) + kb + amf_val(v)
    return out + b"\x00\x00\x09"


def chunked(csid, mtype, payload, msid=0, chunk=128):
    out = bytes([csid]) + b"\0\0\0" + len(payload).to_bytes(3, "big") + bytes([mtype]) + \
        msid.to_bytes(4, "little")
    for i in range(0, len(payload), chunk):
        if i:
            out += bytes([0xC0 | csid])
        out += payload[i:i + chunk]
    return out


ertmp = sys.argv[1:] == ["ertmp"]
props = {"app": "live", "tcUrl": "rtmp://x/live"}
if ertmp:
    props.update({"fourCcList": ["hvc1", "av01", "Opus"],
                  "videoFourCcInfoMap": {"*": 4, "hvc1": 3}, "audioFourCcInfoMap": {"Opus": 3},
                  "capsEx": 3})
client = b"\x03" + bytes(1536) + bytes(1536)
client += chunked(3, 20, amf_str("connect") + amf_num(1) + amf_obj(props))
client += chunked(3, 20, amf_str("createStream") + amf_num(2) + b"\x05")
if ertmp:
    client += chunked(8, 20, amf_str("publish") + amf_num(3) + b"\x05" + amf_str("s") +
                      amf_str("live"), msid=1)
else:
    client += chunked(8, 20, amf_str("play") + amf_num(3) + b"\x05" + amf_str("s"), msid=1)
origin = b"\x03" + bytes(1536) + bytes(1536)
origin += chunked(2, 1, struct.pack(">I", 64))
origin += chunked(3, 20, amf_str("_result") + amf_num(1) +
                  amf_obj({"fmsVer": "FMS/3,0,1,123"}) +
                  amf_obj({"level": "status", "code": "NetConnection.Connect.Success"}), chunk=64)
origin += chunked(3, 20, amf_str("_result") + amf_num(2) + b"\x05" + amf_num(1), chunk=64)
sys.stdout.buffer.write(struct.pack(">H", len(client)) + client + origin)
