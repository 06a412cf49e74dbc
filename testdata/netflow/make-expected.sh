#!/usr/bin/env bash
# Regenerates <capture>.expected.json beside every corpus capture in this folder with
# expected.py (tshark 4.0.17). The generated/ captures have their own make.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
exp() { local pcap="$1"; shift; python3 expected.py "$@" "$pcap" >"${pcap%.pcap}.expected.json"; }
exp ndpi/netflowv9.pcap --port 2057
exp ndpi/netflow-fritz.pcap
exp ndpi/sflow.pcap
for f in tcpdump/*.pcap; do exp "$f"; done
for f in pmacct/*/traffic-*.pcap; do
  case "$f" in *104-*) exp "$f" --port 9992 ;; *) exp "$f" --port 9991 ;; esac
done
