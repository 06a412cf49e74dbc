#!/usr/bin/env python3
"""Turns tshark's decode of a flow-export capture into the compact JSON the collector tests read.

    python3 testdata/netflow/expected.py [--port P ...] CAPTURE.pcap > CAPTURE.expected.json

Runs `tshark -n -r CAPTURE -T json` (with `-d udp.port==P,cflow` for non-standard NetFlow/IPFIX
ports), single pass in file order like a streaming collector, and keeps per datagram:
  frame, exporter (UDP source), protocol, and
  cflow: one entry per data record tshark decoded: src, dst, sport, dport, proto, packets,
         octets (plus rev_packets/rev_octets for RFC 5103 biflows), first_ms/last_ms (absolute,
         from sysUpTime-relative v5/v9 times or IPFIX absolute times), sampling_interval and
         sampler_id when the record carries them; options records are counted apart.
  sflow: one entry per flow sample (rate, frame_length, and the sampled header's addresses,
         protocol, ports, vlan) and per generic interface counter record.
Tests compare against this file only: tshark is not needed to run them (tshark 4.0.17 here).
"""
import argparse
import datetime
import decimal
import json
import subprocess
import sys


def pairs(items):
    """Keeps duplicate keys (tshark repeats them) as lists."""
    out = {}
    for k, v in items:
        if k in out:
            if not isinstance(out[k], list) or not out[k] or not isinstance(out[k], list):
                out[k] = [out[k]]
            out[k].append(v)
        else:
            out[k] = v
    return out


def first(d, key):
    """First value of `key` anywhere under d (depth-first)."""
    if isinstance(d, dict):
        if key in d:
            v = d[key]
            return v[0] if isinstance(v, list) else v
        for v in d.values():
            r = first(v, key)
            if r is not None:
                return r
    elif isinstance(d, list):
        for v in d:
            r = first(v, key)
            if r is not None:
                return r
    return None


def num(v):
    if v is None:
        return None
    if isinstance(v, str) and v.startswith("0x"):
        return int(v, 16)
    try:
        return int(v)
    except ValueError:
        return None


def abstime_ns(s):
    """'Feb 28, 2023 09:46:01.088000000 UTC' -> ns."""
    if s is None:
        return None
    date, frac = s.replace(" UTC", "").split(".")
    t = datetime.datetime.strptime(date, "%b %d, %Y %H:%M:%S").replace(tzinfo=datetime.timezone.utc)
    return int(t.timestamp()) * 10**9 + int(frac.ljust(9, "0")[:9])


def records(node, label=None):
    """Yields (label, dict) of every 'Flow N' / 'pdu N/M' object."""
    if isinstance(node, list):
        for v in node:
            yield from records(v, label)
    elif isinstance(node, dict):
        if label is not None and (label.startswith("Flow ") or label.startswith("pdu ")):
            yield label, node
            return
        for k, v in node.items():
            yield from records(v, k)


SYS_INIT_NS = {}  # IPFIX systemInitTimeMilliseconds from options data, per (exporter, domain)


def direct(r, key):
    """Values of `key` directly in record r: [forward] or [forward, reverse] (RFC 5103)."""
    v = r.get(key)
    if v is None:
        return []
    return v if isinstance(v, list) else [v]


def cflow(layer, exporter):
    header = {
        "version": num(first(layer, "cflow.version")),
        "sysuptime": first(layer, "cflow.sysuptime"),
        "unix_secs": num(first(layer, "cflow.unix_secs")),
        "unix_nsecs": num(first(layer, "cflow.unix_nsecs")) or 0,
        "sequence": num(first(layer, "cflow.sequence")),
        "domain": num(first(layer, "cflow.source_id") or first(layer, "cflow.od_id")),
    }
    out, options = [], 0
    for _, r in records(layer):
        src = first(r, "cflow.srcaddr") or first(r, "cflow.srcaddrv6")
        dst = first(r, "cflow.dstaddr") or first(r, "cflow.dstaddrv6")
        if src is None or dst is None:
            options += 1
            init = first(r, "cflow.sys_init_time")
            if init is not None:
                SYS_INIT_NS[(exporter, header["domain"])] = abstime_ns(init)
            continue
        rec = {
            "src": src,
            "dst": dst,
            "sport": num(first(r, "cflow.srcport")) or 0,
            "dport": num(first(r, "cflow.dstport")) or 0,
            "proto": num(first(r, "cflow.protocol")) or 0,
            "packets": num(first(r, "cflow.packets") or first(r, "cflow.packets64")
                           or first(r, "cflow.packets_total")) or 0,
            "octets": num(first(r, "cflow.octets") or first(r, "cflow.octets64")
                          or first(r, "cflow.octets_total")) or 0,
        }
        pk, oc = direct(r, "cflow.packets"), direct(r, "cflow.octets")
        if len(pk) == 2 or len(oc) == 2:
            rec["packets"], rec["octets"] = num(pk[0]) or 0, num(oc[0]) or 0
            rec["rev_packets"] = num(pk[1]) if len(pk) == 2 else 0
            rec["rev_octets"] = num(oc[1]) if len(oc) == 2 else 0
        start, end = first(r, "cflow.abstimestart"), first(r, "cflow.abstimeend")
        if start is not None or end is not None:
            rec["first_ns"], rec["last_ns"] = abstime_ns(start or end), abstime_ns(end or start)
        else:
            ts, te = first(r, "cflow.timestart"), first(r, "cflow.timeend")
            if ts is not None and header["sysuptime"] is not None and header["unix_secs"] is not None:
                export_ms = decimal.Decimal(header["unix_secs"]) * 1000 + decimal.Decimal(header["unix_nsecs"]) / 10**6
                up = decimal.Decimal(header["sysuptime"])
                rec["first_ms"] = int(export_ms - (up - decimal.Decimal(ts)) * 1000)
                rec["last_ms"] = int(export_ms - (up - decimal.Decimal(te or ts)) * 1000)
            elif ts is not None and (exporter, header["domain"]) in SYS_INIT_NS:
                init = decimal.Decimal(SYS_INIT_NS[(exporter, header["domain"])])
                rec["first_ns"] = int(init + decimal.Decimal(ts) * 10**9)
                rec["last_ns"] = int(init + decimal.Decimal(te or ts) * 10**9)
        for key, name in (("sampling_interval", "cflow.sampling_interval"), ("sampler_id", "cflow.sampler_id")):
            v = num(first(r, name))
            if v is not None:
                rec[key] = v
        out.append(rec)
    return header, out, options


def sflow(layer):
    header = {
        "agent": first(layer, "sflow_245.agent") or first(layer, "sflow_245.agent.v6"),
        "sub_agent": num(first(layer, "sflow_245.sub_agent_id")),
        "sequence": num(first(layer, "sflow_245.sequence_number")),
    }
    flows, counters = [], []
    for label, sample in layer.items():
        for s in sample if isinstance(sample, list) else [sample]:
            if not isinstance(s, dict):
                continue
            if "flow sample" in label.lower():
                tree = first(s, "sflow_245.header_tree") or {}
                rec = {
                    "rate": num(first(s, "sflow.flow_sample.sampling_rate")),
                    "frame_length": num(first(s, "sflow_245.header.frame_length")),
                }
                ip = first(tree, "ip.src") or first(tree, "ipv6.src")
                if ip is not None:
                    rec.update({
                        "src": ip,
                        "dst": first(tree, "ip.dst") or first(tree, "ipv6.dst"),
                        "proto": num(first(tree, "ip.proto") or first(tree, "ipv6.nxt")),
                        "sport": num(first(tree, "tcp.srcport") or first(tree, "udp.srcport")) or 0,
                        "dport": num(first(tree, "tcp.dstport") or first(tree, "udp.dstport")) or 0,
                    })
                flows.append(rec)
            elif "counters sample" in label.lower():
                for k, rec in s.items():
                    for c in rec if isinstance(rec, list) else [rec]:
                        if k.startswith("Generic interface counters") and isinstance(c, dict):
                            counters.append({
                                "if_index": num(first(c, "sflow_245.ifindex")),
                                "in_octets": num(first(c, "sflow_245.ifinoct")),
                                "out_octets": num(first(c, "sflow_245.ifoutoct")),
                            })
    return header, flows, counters


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", action="append", default=[], help="UDP port to decode as cflow")
    ap.add_argument("capture")
    args = ap.parse_args()
    cmd = ["tshark", "-n", "-r", args.capture, "-T", "json"]
    for p in args.port:
        cmd += ["-d", f"udp.port=={p},cflow"]
    raw = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    packets = json.loads(raw, object_pairs_hook=pairs)
    out = []
    for pkt in packets:
        layers = pkt["_source"]["layers"]
        entry = {
            "frame": num(first(layers["frame"], "frame.number")),
            "exporter": first(layers.get("ip", layers.get("ipv6", {})), "ip.src")
            or first(layers.get("ipv6", {}), "ipv6.src"),
        }
        if "cflow" in layers:
            layer = layers["cflow"]
            layer = layer[0] if isinstance(layer, list) else layer
            header, recs, options = cflow(layer, entry["exporter"])
            entry.update({"protocol": "cflow", "header": header, "records": recs, "options_records": options})
        elif "sflow" in layers:
            layer = layers["sflow"]
            layer = layer[0] if isinstance(layer, list) else layer
            header, flows, counters = sflow(layer)
            entry.update({"protocol": "sflow", "header": header, "flow_samples": flows, "counters": counters})
        else:
            entry["protocol"] = None
        out.append(entry)
    json.dump({"tshark": "4.0.17", "capture": args.capture.split("/")[-1], "ports": args.port, "packets": out},
              sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
