#!/usr/bin/env python3
"""Builds demo.pcap from nDPI test captures (see README.md here). Needs editcap.

Each capture keeps its packets and their relative timing, except that gaps longer than
10 minutes inside a capture are shortened to 5 seconds (several nDPI captures are splices
of traffic recorded years apart); captures are laid one after the other, 7 seconds apart,
starting 2025-11-27 08:00:00 UTC, so the demo looks like one morning of traffic.
"""
import struct, subprocess, sys, tempfile, pathlib

SOURCES = ["iphone", "tls_certificate_too_long", "malware", "emotet", "bad-dns-traffic",
           "sql_injection", "xss", "ssh", "ftp", "telnet", "smbv1", "exe_download", "tor",
           "dns_doh", "chrome", "443-curl", "quic-29", "snmp", "netbios"]
START = 1764230400.0
MAX_GAP, SHORT_GAP, BETWEEN = 600.0, 5.0, 7.0

def records(path):
    # Some nDPI ".pcap" files are pcapng: let editcap (wireshark-common) normalise them.
    with tempfile.NamedTemporaryFile(suffix=".pcap") as tmp:
        subprocess.run(["editcap", "-F", "pcap", str(path), tmp.name], check=True)
        data = pathlib.Path(tmp.name).read_bytes()
    magic = data[:4]
    endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    assert linktype == 1, f"{path}: not Ethernet"
    off = 24
    while off + 16 <= len(data):
        sec, frac, incl, orig = struct.unpack(endian + "IIII", data[off:off + 16])
        ts = sec + frac / (1e9 if nano else 1e6)
        yield ts, orig, data[off + 16:off + 16 + incl]
        off += 16 + incl

def main():
    here = pathlib.Path(__file__).resolve().parent
    corpus = here.parent / "ndpi"
    out, cur = [], START
    for name in SOURCES:
        prev, t = None, cur
        for ts, orig, frame in records(corpus / f"{name}.pcap"):
            if prev is not None:
                gap = ts - prev
                t += SHORT_GAP if gap > MAX_GAP else max(gap, 0.0)
            prev = ts
            out.append((t, orig, frame))
        cur = t + BETWEEN
    out.sort(key=lambda r: r[0])
    with open(here / "demo.pcap", "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        for t, orig, frame in out:
            sec = int(t); usec = int(round((t - sec) * 1e6))
            if usec == 1000000: sec, usec = sec + 1, 0
            f.write(struct.pack("<IIII", sec, usec, len(frame), orig)); f.write(frame)
    print(f"demo.pcap: {len(out)} packets, {out[-1][0] - out[0][0]:.0f} s", file=sys.stderr)

if __name__ == "__main__":
    main()
