#!/usr/bin/env python3
"""A tiny PROXY-protocol relay for the geo demo (scripts/fleet.sh geo): it
plays the cloud L4 balancer. Every connection accepted on --listen is relayed
to --to with a PROXY v1 header first that names --client as the source, so
rtmplb (a listener with `proxy_protocol: v1|any`) geo-locates the client as
coming from there. Loopback demo tool, not a production proxy.

  scripts/proxy-relay.py --listen 127.0.0.1:1938 --to 127.0.0.1:1937 --client 203.0.113.7
"""
import argparse
import ipaddress
import socket
import threading


def hostport(s):
    host, port = s.rsplit(":", 1)
    return host.strip("[]"), int(port)


def pump(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def serve(conn, peer, to, client):
    try:
        up = socket.create_connection(to, timeout=5)
    except OSError:
        conn.close()
        return
    up.settimeout(None)
    fam = "TCP6" if ipaddress.ip_address(client).version == 6 else "TCP4"
    dst = "::1" if fam == "TCP6" else "127.0.0.1"
    up.sendall(("PROXY %s %s %s %d %d\r\n" % (fam, client, dst, peer[1], to[1])).encode())
    t = threading.Thread(target=pump, args=(up, conn), daemon=True)
    t.start()
    pump(conn, up)
    t.join()
    conn.close()
    up.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--listen", required=True, type=hostport)
    ap.add_argument("--to", required=True, type=hostport)
    ap.add_argument("--client", required=True, help="the source address the header names")
    a = ap.parse_args()
    ipaddress.ip_address(a.client)
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(a.listen)
    ls.listen(64)
    while True:
        conn, peer = ls.accept()
        threading.Thread(target=serve, args=(conn, peer, a.to, a.client), daemon=True).start()


if __name__ == "__main__":
    main()
