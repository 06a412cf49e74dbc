#!/usr/bin/env python3
"""Records the UDP datagrams that reach 127.0.0.1:PORT into OUT (4-byte big-endian length, then
the payload, per datagram) until IDLE seconds pass without one (after the first).

    record-datagrams.py PORT OUT [IDLE=2]

Used to keep an exporter's output (e.g. pmacctd's sFlow) for send-datagrams.py."""
import socket
import struct
import sys

port, out = int(sys.argv[1]), sys.argv[2]
idle = float(sys.argv[3]) if len(sys.argv) > 3 else 2.0
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
s.bind(("127.0.0.1", port))
n = 0
with open(out, "wb") as f:
    s.settimeout(None)
    while True:
        try:
            d = s.recv(65535)
        except socket.timeout:
            break
        f.write(struct.pack("!I", len(d)) + d)
        n += 1
        s.settimeout(idle)
print(n, "datagrams", file=sys.stderr)
