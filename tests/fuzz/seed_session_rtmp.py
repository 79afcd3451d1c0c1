#!/usr/bin/env python3
"""Writes seeds for fuzz_session_rtmp (its event format: see the target's
header comment) into a directory: whole sessions built from the plays of
seed_front_rtmp.py (client bytes, a healthy origin's answers), delivered
whole, cut in small pieces, after a failed dial, and with the client
leaving. Run once to make tests/fuzz/corpus/fuzz_session_rtmp/ seeds:
  python3 tests/fuzz/seed_session_rtmp.py DIR"""
import os
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def play(kind):
    raw = subprocess.run([sys.executable, os.path.join(HERE, "seed_front_rtmp.py")] + kind,
                         capture_output=True, check=True).stdout
    n = struct.unpack(">H", raw[:2])[0]
    return raw[2:2 + n], raw[2 + n:]


def data(side, b, piece):
    """Events delivering bytes b from a side (0 client, 1 origin), piece bytes at a time;
    a leading plain handshake becomes the target's one-byte handshake event."""
    out = b""
    hs = b"\x03" + bytes(3072)
    if b.startswith(hs):
        out, b = bytes([side + 8 * 30]), b[len(hs):]
    for i in range(0, len(b), piece):
        p = b[i:i + piece]
        n = len(p) - 1
        out += bytes([side + 8 * 1, n & 0xFF, n >> 8]) + p
    return out


FLUSH_ALL = bytes([3 + 8 * 31, 4 + 8 * 31])
CONNECT, FAIL = bytes([7]), bytes([7 + 8])
CLOCK = bytes([2 + 8 * 3])  # one second


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    seeds = {}
    for kind in ([], ["ertmp"]):
        c, o = play(kind)
        tag = kind[0] if kind else "play"
        seeds[tag + "-whole"] = data(0, c, 65536) + FLUSH_ALL + CONNECT + data(1, o, 65536) + FLUSH_ALL
        seeds[tag + "-pieces"] = (data(0, c, 97) + FLUSH_ALL + CLOCK + CONNECT + FLUSH_ALL
                                  + data(1, o, 61) + FLUSH_ALL)
        seeds[tag + "-failover"] = (data(0, c, 1537) + FLUSH_ALL + FAIL + CONNECT
                                    + data(1, o, 300) + FLUSH_ALL)
        seeds[tag + "-client-leaves"] = data(0, c[:3200], 3200) + CONNECT + bytes([5]) + CLOCK * 8
        seeds[tag + "-origin-silent"] = data(0, c, 65536) + CONNECT + CLOCK * 12
    for name, b in seeds.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(b)


if __name__ == "__main__":
    main()
