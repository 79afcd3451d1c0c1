#!/usr/bin/env python3
"""Writes the first seeds of the protocol-level fuzz targets (handshake,
chunk, message, amf, proxy) into tests/fuzz/corpus/<target>/, from the whole
play that seed_front_rtmp.py builds: C0C1+C2, the chunk stream of connect /
createStream / play, a connect command body, PROXY v1 and v2 headers. The
campaign (campaign.sh) grows and minimises the corpus from there.
  python3 tests/fuzz/seed_basic.py [CORPUS_DIR]"""
import os
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def amf_str(s):
    b = s.encode()
    return b"\x02" + struct.pack(">H", len(b)) + b


def main():
    corpus = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "corpus")
    raw = subprocess.run([sys.executable, os.path.join(HERE, "seed_front_rtmp.py")],
                         capture_output=True, check=True).stdout
    n = struct.unpack(">H", raw[:2])[0]
    client = raw[2:2 + n]
    hs, chunks = client[:3073], client[3073:]
    connect = (amf_str("connect") + b"\x00" + struct.pack(">d", 1) + b"\x03"
               + b"".join(struct.pack(">H", len(k)) + k.encode() + amf_str(v)
                          for k, v in (("app", "live"), ("flashVer", "LNX 9,0,124,2"),
                                       ("tcUrl", "rtmp://h/live?x=1")))
               + b"\x00\x00\x09" + b"\x05")
    v2 = (b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + struct.pack(">H", 12)
          + bytes([203, 0, 113, 7, 127, 0, 0, 1]) + struct.pack(">HH", 40000, 1935))
    seeds = {
        "fuzz_handshake": {"c0c1c2-whole": b"\xff" + hs, "c0c1c2-bytes": b"\x01" + hs,
                           "c0c1c2-cut": b"\x61" + hs},
        "fuzz_chunk": {"play": b"\x80\x00" + chunks, "play-bytes": b"\x01\x01" + chunks},
        "fuzz_message": {"play": b"\x00" + chunks, "play-spans": b"\x02" + chunks,
                         "play-keep": b"\x01" + chunks},
        "fuzz_amf": {"connect": b"\x00" + connect},
        "fuzz_proxy": {"v1": b"\x00PROXY TCP4 203.0.113.7 127.0.0.1 40000 1935\r\n",
                       "v1-v6": b"\x02PROXY TCP6 2001:db8::1 ::1 40000 1935\r\n",
                       "v2": b"\x01" + v2, "unknown": b"\x02PROXY UNKNOWN\r\n"},
    }
    for target, files in seeds.items():
        d = os.path.join(corpus, target)
        os.makedirs(d, exist_ok=True)
        for name, b in files.items():
            with open(os.path.join(d, name), "wb") as f:
                f.write(b)


if __name__ == "__main__":
    main()
