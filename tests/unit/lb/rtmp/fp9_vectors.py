#!/usr/bin/env python3
"""Independent FP9 (complex) handshake vectors for tests/unit/lb/rtmp/handshake.c.

Written from ../shared/RTMP-NOTES.md ("Complex (FP9) digest") with Python's
hmac/hashlib only, sharing nothing with lb/rtmp/handshake.c. Prints the C
constants pasted into handshake.c; re-run after changing an input pattern:
    python3 tests/unit/lb/rtmp/fp9_vectors.py

Inputs (the C test builds the same bytes):
  C1[i]  = (i * 7 + 3) & 0xff, then version 9.0.124.2 at C1[4..7], then the
           client digest (FP key, 30 bytes) written at the scheme's offset.
  rnd(p, n) fills p[i] = (i * 31 + n) & 0xff: the server's random bytes
           (S1[8..1536) with n = 1528, S2[0..1504) with n = 1504), whatever
           order it asks for them in.
Server: S1 = time 0, version 0D 0E 0A 0D, random; the FMS key (36 bytes)
digest at the client's scheme. S2 = R(1504) | HMAC(HMAC(FMS68, C1 digest), R).
"""
import hashlib
import hmac

TAIL = bytes.fromhex("F0EEC24A8068BEE82E00D0D1029E7E576EEC5D2D29806FAB93B8E636CFEB31AE")
FP62 = b"Genuine Adobe Flash Player 001" + TAIL
FMS68 = b"Genuine Adobe Flash Media Server 001" + TAIL
assert len(FP62) == 62 and len(FMS68) == 68


def offset(buf, base):
    return sum(buf[base:base + 4]) % 728 + base + 4


def digest(buf, off, key):
    return hmac.new(key, bytes(buf[:off]) + bytes(buf[off + 32:]), hashlib.sha256).digest()


def rnd(n):
    return bytearray((i * 31 + n) & 0xff for i in range(n))


def c_array(name, b):
    rows = ["    " + ", ".join("0x%02x" % x for x in b[i:i + 12]) for i in range(0, len(b), 12)]
    return "static const uint8_t %s[%d] = {\n%s};" % (name, len(b), ",\n".join(rows))


for base in (772, 8):
    c1 = bytearray((i * 7 + 3) & 0xff for i in range(1536))
    c1[4:8] = bytes([9, 0, 124, 2])
    coff = offset(c1, base)
    cdig = digest(c1, coff, FP62[:30])
    c1[coff:coff + 32] = cdig

    s1 = bytearray(1536)
    s1[4:8] = bytes([0x0D, 0x0E, 0x0A, 0x0D])
    s1[8:] = rnd(1528)
    soff = offset(s1, base)
    sdig = digest(s1, soff, FMS68[:36])
    r = rnd(1504)
    key2 = hmac.new(FMS68, cdig, hashlib.sha256).digest()
    s2dig = hmac.new(key2, bytes(r), hashlib.sha256).digest()

    print("/* scheme %d: C1 digest at %d, S1 digest at %d */" % (base, coff, soff))
    print(c_array("c1_digest_%d" % base, cdig))
    print(c_array("s1_digest_%d" % base, sdig))
    print(c_array("s2_digest_%d" % base, s2dig))
