#!/usr/bin/env python3
"""Replays the UDP payloads of a NetFlow/IPFIX capture ROUNDS times to 127.0.0.1:PORT
(usage: send-datagrams.py PCAP PORT ROUNDS). Needs editcap (wireshark-common)."""
import socket, struct, sys, subprocess, tempfile, time
pcap, port, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
tmp = tempfile.NamedTemporaryFile(suffix=".pcap"); subprocess.run(["editcap","-F","pcap",pcap,tmp.name],check=True)
d = open(tmp.name,"rb").read(); off=24; dgrams=[]
while off+16 <= len(d):
    _,_,incl,_ = struct.unpack("<IIII", d[off:off+16]); frame=d[off+16:off+16+incl]; off+=16+incl
    ihl=(frame[14]&15)*4; dgrams.append(frame[14+ihl+8:])
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)
n=0
for r in range(rounds):
    for g in dgrams:
        s.sendto(g,("127.0.0.1",port)); n+=1
    if r % 20 == 0: time.sleep(0.01)
print(n, "datagrams", file=sys.stderr)
