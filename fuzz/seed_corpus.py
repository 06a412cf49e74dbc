#!/usr/bin/env python3
"""Seeds fuzz/corpus/decode_packet with the first frames of each nDPI corpus capture.

Each seed is one selector byte (the index of the capture's LinkType in the fuzz target's LINKS
table) followed by the frame. pcapng files are converted with `editcap -F pcap` (Wireshark).
Usage: python3 fuzz/seed_corpus.py [frames_per_capture]
"""
import os, struct, subprocess, sys, tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "..", "testdata", "ndpi")
OUT = os.path.join(HERE, "corpus", "decode_packet")
# pcap link type -> index in LINKS (fuzz_targets/decode_packet.rs)
SELECTOR = {1: 0, 0: 1, 108: 1, 101: 2, 12: 2, 14: 2, 228: 3, 229: 4, 113: 5, 276: 6}


def frames(path):
    with open(path, "rb") as f:
        data = f.read()
    magic = data[:4]
    endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    linktype = struct.unpack(endian + "I", data[20:24])[0] & 0xFFFF
    off = 24
    while off + 16 <= len(data):
        _, _, caplen, _ = struct.unpack(endian + "IIII", data[off:off + 16])
        yield linktype, data[off + 16:off + 16 + caplen]
        off += 16 + caplen


def main():
    per_capture = int(sys.argv[1]) if len(sys.argv) > 1 else 8
    os.makedirs(OUT, exist_ok=True)
    written = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name in sorted(os.listdir(CORPUS)):
            path = os.path.join(CORPUS, name)
            if name.endswith(".pcapng"):
                converted = os.path.join(tmp, name + ".pcap")
                done = subprocess.run(["editcap", "-F", "pcap", path, converted],
                                      stderr=subprocess.DEVNULL, check=False)
                if done.returncode != 0:
                    continue  # e.g. several link types in one pcapng
                path = converted
            elif not name.endswith(".pcap"):
                continue
            for i, (linktype, frame) in enumerate(frames(path)):
                if i >= per_capture or linktype not in SELECTOR:
                    break
                with open(os.path.join(OUT, f"{name}-{i + 1}"), "wb") as out:
                    out.write(bytes([SELECTOR[linktype]]) + frame)
                written += 1
    print(f"{written} seeds in {OUT}")


if __name__ == "__main__":
    main()
