#!/usr/bin/env python3
"""Replays the UDP payloads of a flow-export capture to 127.0.0.1:PORT, COUNT datagrams in all
(cycling through the capture), paced at RATE datagrams per second (0: as fast as one core sends).

    send-datagrams.py PCAP PORT COUNT [RATE]

PCAP is a pcap/pcapng capture of export datagrams (Ethernet, IPv4/IPv6, UDP), converted with
editcap (wireshark-common) when needed; or a file written by `record-datagrams.py` (.dgrams).
Prints one JSON line on stdout: datagrams sent, seconds, achieved datagrams/s, and the capture's
datagram count."""
import json
import socket
import struct
import subprocess
import sys
import tempfile
import time


def load(path):
    if path.endswith(".dgrams"):
        data, out, off = open(path, "rb").read(), [], 0
        while off + 4 <= len(data):
            (n,) = struct.unpack("!I", data[off:off + 4])
            out.append(data[off + 4:off + 4 + n])
            off += 4 + n
        return out
    tmp = tempfile.NamedTemporaryFile(suffix=".pcap")
    subprocess.run(["editcap", "-F", "pcap", path, tmp.name], check=True)
    d = open(tmp.name, "rb").read()
    off, out = 24, []
    while off + 16 <= len(d):
        _, _, incl, _ = struct.unpack("<IIII", d[off:off + 16])
        frame = d[off + 16:off + 16 + incl]
        off += 16 + incl
        ethertype = struct.unpack("!H", frame[12:14])[0]
        if ethertype == 0x0800 and frame[23] == 17:
            ihl = (frame[14] & 15) * 4
            out.append(frame[14 + ihl + 8:])
        elif ethertype == 0x86DD and frame[20] == 17:
            out.append(frame[14 + 40 + 8:])
    return out


def main():
    path, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rate = float(sys.argv[4]) if len(sys.argv) > 4 else 0.0
    grams = load(path)
    if not grams:
        sys.exit(f"{path}: no UDP datagram")
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    dest = ("127.0.0.1", port)
    # Send in chunks of about a millisecond's worth, sleeping when ahead of the schedule.
    chunk = max(1, int(rate / 1000)) if rate > 0 else 64
    n, i, start = 0, 0, time.perf_counter()
    sendto, ng = s.sendto, len(grams)
    while n < count:
        for _ in range(min(chunk, count - n)):
            try:
                sendto(grams[i], dest)
            except BlockingIOError:
                pass
            i += 1
            if i == ng:
                i = 0
            n += 1
        if rate > 0:
            ahead = start + n / rate - time.perf_counter()
            if ahead > 0:
                time.sleep(ahead)
    secs = time.perf_counter() - start
    print(json.dumps({"sent": n, "seconds": round(secs, 3), "rate": round(n / secs),
                      "capture_datagrams": ng}))


if __name__ == "__main__":
    main()
