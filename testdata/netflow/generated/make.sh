#!/usr/bin/env bash
# Regenerates the captures of real exporter output in this folder (see README.md).
#
#   testdata/netflow/generated/make.sh
#
# For each case: softflowd (Debian 1.1.0) reads an nDPI test pcap and exports to a UDP port on
# loopback while tcpdump captures the export datagrams; then ../expected.py turns tshark's
# decode of the capture into <case>.expected.json. Needs root (tcpdump on lo), softflowd,
# tcpdump, tshark, capinfos (scripts/bootstrap --test installs them).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
input="$here/../../ndpi/iphone.pcap"
packets="$(capinfos -c -M "$input" | awk '/Number of packets/ {print $NF}')"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# case name, UDP port, softflowd export options
cases=(
  "softflowd-v5 19905 -v 5"
  "softflowd-v9 19909 -v 9 -6"
  "softflowd-v9-sampled 19919 -v 9 -6 -s 4"
  "softflowd-ipfix 19910 -v 10 -6"
  "softflowd-ipfix-sec 19911 -v 10 -6 -A sec"
  "softflowd-ipfix-micro 19912 -v 10 -6 -A micro"
  "softflowd-ipfix-nano 19913 -v 10 -6 -A nano"
  "softflowd-ipfix-biflow 19914 -v 10 -6 -b"
)

for spec in "${cases[@]}"; do
  read -r name port opts <<<"$spec"
  tcpdump -i lo -U -s 0 -w "$work/$name.pcap" "udp dst port $port" >/dev/null 2>&1 &
  dump=$!
  sleep 1
  # shellcheck disable=SC2086 # opts are words
  softflowd -d -r "$input" $opts -n "127.0.0.1:$port" -c "$work/ctl" -p "$work/pid" >/dev/null 2>&1 &
  flowd=$!
  # softflowd -r may block on its control socket between batches (TOOLS.md quirk 1): poll
  # until every packet is processed or ignored, then shut it down (it may exit by itself
  # at the end of the capture first).
  for _ in $(seq 100); do
    kill -0 "$flowd" 2>/dev/null || break
    seen="$(softflowctl -c "$work/ctl" statistics 2>/dev/null \
      | awk '/^Packets processed:/ {n += $3} /^Ignored packets:/ {n += $3} END {print n + 0}' || true)"
    if [ "${seen:-0}" -ge "$packets" ]; then
      softflowctl -c "$work/ctl" shutdown >/dev/null 2>&1 || true
      break
    fi
    sleep 0.1
  done
  wait "$flowd" || true
  sleep 1
  kill -TERM "$dump"
  wait "$dump" || true
  cp "$work/$name.pcap" "$here/$name.pcap"
  python3 "$here/../expected.py" --port "$port" "$here/$name.pcap" >"$here/$name.expected.json"
  echo "$name: $(capinfos -c -M "$here/$name.pcap" | awk '/Number of packets/ {print $NF}') datagrams"
done
