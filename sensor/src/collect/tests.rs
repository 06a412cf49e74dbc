//! Crafted datagrams for what real captures do not show: malformed and hostile input,
//! ordering (data before template), template life cycle, limits. Real exports are tested in
//! `sensor/tests/collect_corpus.rs`.

#![allow(clippy::unwrap_used, clippy::many_single_char_names)]

use std::net::{IpAddr, Ipv4Addr};

use proptest::prelude::*;

use super::*;

const EXP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
const SEC: u64 = 1_000_000_000;

fn be16(v: &mut Vec<u8>, x: u16) {
    v.extend_from_slice(&x.to_be_bytes());
}
fn be32(v: &mut Vec<u8>, x: u32) {
    v.extend_from_slice(&x.to_be_bytes());
}

/// A NetFlow v9 datagram with the given flowsets `(id, body)`.
fn v9(seq: u32, source_id: u32, sets: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let mut d = Vec::new();
    be16(&mut d, 9);
    be16(&mut d, sets.len() as u16);
    be32(&mut d, 100_000); // uptime ms
    be32(&mut d, 1_700_000_000);
    be32(&mut d, seq);
    be32(&mut d, source_id);
    for (id, body) in sets {
        be16(&mut d, *id);
        be16(&mut d, (body.len() + 4) as u16);
        d.extend_from_slice(body);
    }
    d
}

/// An IPFIX message with the given sets.
fn ipfix(seq: u32, domain: u32, sets: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let mut d = Vec::new();
    be16(&mut d, 10);
    be16(&mut d, 0);
    be32(&mut d, 1_700_000_000);
    be32(&mut d, seq);
    be32(&mut d, domain);
    for (id, body) in sets {
        be16(&mut d, *id);
        be16(&mut d, (body.len() + 4) as u16);
        d.extend_from_slice(body);
    }
    let len = d.len() as u16;
    d[2..4].copy_from_slice(&len.to_be_bytes());
    d
}

/// Template body: id, then (type, len) pairs.
fn v9_template(id: u16, fields: &[(u16, u16)]) -> Vec<u8> {
    let mut b = Vec::new();
    be16(&mut b, id);
    be16(&mut b, fields.len() as u16);
    for (t, l) in fields {
        be16(&mut b, *t);
        be16(&mut b, *l);
    }
    b
}

/// src, dst, sport, dport, proto, packets, octets.
const V4_FIELDS: &[(u16, u16)] = &[(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (2, 4), (1, 4)];

fn v4_record(
    src: [u8; 4],
    dst: [u8; 4],
    sport: u16,
    dport: u16,
    packets: u32,
    octets: u32,
) -> Vec<u8> {
    let mut r = Vec::new();
    r.extend_from_slice(&src);
    r.extend_from_slice(&dst);
    be16(&mut r, sport);
    be16(&mut r, dport);
    r.push(6);
    be32(&mut r, packets);
    be32(&mut r, octets);
    r
}

fn run(c: &mut Collector, d: &[u8], now: u64) -> (Vec<ExportedFlow>, Result<Protocol>) {
    let mut flows = Vec::new();
    let r = c.handle(EXP, d, now, &mut |o| {
        if let Output::Flow(f) = o {
            flows.push(f);
        }
    });
    (flows, r)
}

#[test]
fn detects_every_protocol_by_version() {
    assert_eq!(Protocol::detect(&[0, 5, 0, 0]), Protocol::Netflow5);
    assert_eq!(Protocol::detect(&[0, 9]), Protocol::Netflow9);
    assert_eq!(Protocol::detect(&[0, 10]), Protocol::Ipfix);
    assert_eq!(Protocol::detect(&[0, 0, 0, 5]), Protocol::Sflow);
    assert_eq!(Protocol::detect(&[0, 0, 0, 4]), Protocol::Unknown);
    assert_eq!(Protocol::detect(&[]), Protocol::Unknown);
    let mut c = Collector::new(CollectorConfig::default());
    let e = run(&mut c, &[0, 7, 1, 2], 0).1.unwrap_err();
    assert_eq!(e.kind, ErrorKind::UnknownVersion(7));
    assert_eq!(c.stats().global.errors_unknown_version, 1);
    assert_eq!(c.stats().exporters, 0, "garbage does not create exporters");
}

#[test]
fn v9_template_before_data_and_well_known_port_heuristic() {
    let mut c = Collector::new(CollectorConfig::default());
    let data = v4_record([10, 0, 0, 2], [10, 0, 0, 1], 443, 50000, 3, 300);
    let d = v9(1, 7, &[(0, v9_template(256, V4_FIELDS)), (256, data)]);
    let (flows, r) = run(&mut c, &d, SEC);
    assert_eq!(r.unwrap(), Protocol::Netflow9);
    assert_eq!(flows.len(), 1);
    let f = &flows[0];
    assert!(f.extras.swapped);
    assert_eq!(
        f.record.client_addr(),
        Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)))
    );
    assert_eq!((f.record.client_port, f.record.server_port), (50000, 443));
    assert_eq!(
        f.record.s2c.as_ref().unwrap().bytes,
        300,
        "server-to-client counters"
    );
    assert_eq!(f.record.observation_point.as_ref().unwrap().domain_id, 7);
}

#[test]
fn v9_data_before_template_is_buffered_then_decoded() {
    let mut c = Collector::new(CollectorConfig::default());
    let data = v4_record([10, 0, 0, 1], [10, 0, 0, 2], 40000, 53, 1, 60);
    let (flows, r) = run(&mut c, &v9(1, 0, &[(256, data.clone())]), SEC);
    assert!(flows.is_empty() && r.is_ok());
    assert_eq!(c.stats().totals.pending_buffered, 1);
    // Inside one datagram too: data first, template after.
    let (flows, _) = run(
        &mut c,
        &v9(2, 0, &[(256, data), (0, v9_template(256, V4_FIELDS))]),
        2 * SEC,
    );
    assert_eq!(
        flows.len(),
        2,
        "both buffered sets decoded once the template came"
    );
    let s = c.stats().totals;
    assert_eq!(
        (s.pending_replayed, s.missing_template, s.lost_datagrams),
        (2, 2, 0)
    );
}

#[test]
fn v9_buffered_data_expires_and_overflows_counted() {
    let cfg = CollectorConfig {
        pending_max_sets: 2,
        pending_max_age_ms: 1000,
        ..CollectorConfig::default()
    };
    let mut c = Collector::new(cfg);
    let data = v4_record([10, 0, 0, 1], [10, 0, 0, 2], 1, 2, 1, 1);
    for i in 0..3 {
        let _ = run(&mut c, &v9(i, 0, &[(256 + i as u16, data.clone())]), SEC);
    }
    assert_eq!(c.stats().totals.pending_dropped, 1);
    let _ = run(&mut c, &v9(3, 0, &[]), 10 * SEC);
    assert_eq!(c.stats().totals.pending_expired, 2);
    let (flows, _) = run(
        &mut c,
        &v9(4, 0, &[(0, v9_template(257, V4_FIELDS))]),
        11 * SEC,
    );
    assert!(flows.is_empty());
}

#[test]
fn v9_template_refresh_replace_and_expiry() {
    let cfg = CollectorConfig {
        template_timeout_secs: 60,
        ..CollectorConfig::default()
    };
    let mut c = Collector::new(cfg);
    let t = (0, v9_template(300, V4_FIELDS));
    let _ = run(&mut c, &v9(1, 0, std::slice::from_ref(&t)), SEC);
    let _ = run(&mut c, &v9(2, 0, std::slice::from_ref(&t)), 30 * SEC);
    // Replaced: same id, ports swapped order.
    let mut other = V4_FIELDS.to_vec();
    other.swap(2, 3);
    let _ = run(
        &mut c,
        &v9(3, 0, &[(0, v9_template(300, &other))]),
        40 * SEC,
    );
    let data = v4_record([10, 0, 0, 1], [10, 0, 0, 2], 53, 40000, 1, 1);
    let (flows, _) = run(&mut c, &v9(4, 0, &[(300, data.clone())]), 50 * SEC);
    assert_eq!(
        flows[0].record.server_port, 53,
        "the replaced template reads ports the other way"
    );
    let (flows, _) = run(&mut c, &v9(5, 0, &[(300, data)]), 200 * SEC);
    assert!(flows.is_empty());
    let s = c.stats();
    assert_eq!(
        (
            s.totals.templates_learned,
            s.totals.templates_refreshed,
            s.totals.templates_replaced,
            s.totals.templates_expired
        ),
        (1, 1, 1, 1)
    );
    assert_eq!(s.templates, 0);
}

#[test]
fn v9_options_sampler_id_applies_to_records_naming_it() {
    let mut c = Collector::new(CollectorConfig::default());
    // Options template 400: scope system (1, 4 bytes), FLOW_SAMPLER_ID (48, 1), SAMPLER_RANDOM_INTERVAL (50, 4).
    let mut ot = Vec::new();
    be16(&mut ot, 400);
    be16(&mut ot, 4);
    be16(&mut ot, 8);
    for (t, l) in [(1u16, 4u16), (48, 1), (50, 4)] {
        be16(&mut ot, t);
        be16(&mut ot, l);
    }
    let mut od = vec![0, 0, 0, 0, 5];
    be32(&mut od, 100);
    od.extend_from_slice(&[0, 0, 0]); // padding
    let mut fields = V4_FIELDS.to_vec();
    fields.push((48, 1));
    let mut rec = v4_record([10, 0, 0, 1], [10, 0, 0, 2], 40000, 80, 2, 100);
    rec.push(5);
    let mut unknown = v4_record([10, 0, 0, 1], [10, 0, 0, 2], 40000, 80, 2, 100);
    unknown.push(9);
    let d = v9(
        1,
        0,
        &[
            (1, ot),
            (400, od),
            (0, v9_template(256, &fields)),
            (256, [rec, unknown].concat()),
        ],
    );
    let (flows, r) = run(&mut c, &d, SEC);
    r.unwrap();
    assert_eq!(flows[0].record.sampling_rate, 100);
    assert_eq!(flows[0].record.c2s.as_ref().unwrap().packets, 200);
    assert_eq!(flows[1].record.sampling_rate, 1, "sampler 9 unknown");
    assert_eq!(c.stats().totals.options_records, 1);
}

#[test]
fn zero_length_flowset_is_an_error_not_a_loop() {
    let mut c = Collector::new(CollectorConfig::default());
    let mut d = v9(1, 0, &[]);
    d.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]);
    let e = run(&mut c, &d, 0).1.unwrap_err();
    assert_eq!(
        (e.kind, e.offset),
        (ErrorKind::Malformed("flowset length"), 22)
    );
    let mut m = ipfix(1, 0, &[]);
    m.extend_from_slice(&[1, 0, 0, 0]);
    let len = m.len() as u16;
    m[2..4].copy_from_slice(&len.to_be_bytes());
    assert_eq!(
        run(&mut c, &m, 0).1.unwrap_err().kind,
        ErrorKind::Malformed("set length")
    );
    assert_eq!(c.stats().global.errors_malformed, 2);
}

#[test]
fn template_with_65535_fields_is_refused() {
    let mut c = Collector::new(CollectorConfig::default());
    let mut t = Vec::new();
    be16(&mut t, 256);
    be16(&mut t, 65535);
    t.extend(std::iter::repeat_n(0u8, 4000));
    for d in [v9(1, 0, &[(0, t.clone())]), ipfix(1, 0, &[(2, t)])] {
        let e = run(&mut c, &d, 0).1.unwrap_err();
        assert_eq!(e.kind, ErrorKind::TooManyFields(65535));
        assert_eq!(e.template, 256);
        assert!(e.to_string().contains("template 256"), "{e}");
    }
    assert_eq!(c.stats().templates, 0);
}

#[test]
fn templates_of_zero_length_fields_are_refused() {
    let mut c = Collector::new(CollectorConfig::default());
    let d = v9(1, 0, &[(0, v9_template(256, &[(1, 0), (2, 0)]))]);
    assert_eq!(
        run(&mut c, &d, 0).1.unwrap_err().kind,
        ErrorKind::Malformed("template without length")
    );
}

#[test]
fn ipfix_enterprise_variable_length_withdrawal_and_biflow() {
    let mut c = Collector::new(CollectorConfig::default());
    let mut t = Vec::new();
    be16(&mut t, 256);
    be16(&mut t, 7);
    for (ie, len) in [(8u16, 4u16), (12, 4), (4, 1), (1, 8)] {
        be16(&mut t, ie);
        be16(&mut t, len);
    }
    // Unknown enterprise field, variable length (Gigamon-like), then RFC 5103 reverse octets/packets.
    for (ie, len, pen) in [(999u16, 65535u16, 26866u32), (1, 8, 29305), (2, 4, 29305)] {
        be16(&mut t, ie | 0x8000);
        be16(&mut t, len);
        be32(&mut t, pen);
    }
    let mut r = vec![10, 0, 0, 1, 10, 0, 0, 2, 17];
    r.extend_from_slice(&500u64.to_be_bytes());
    r.extend_from_slice(&[255, 0, 3, b'a', b'b', b'c']); // long-form varlen
    r.extend_from_slice(&700u64.to_be_bytes());
    be32(&mut r, 7);
    let (flows, res) = run(&mut c, &ipfix(0, 3, &[(2, t), (256, r.clone())]), SEC);
    res.unwrap();
    let f = &flows[0].record;
    assert_eq!(
        (
            f.c2s.as_ref().unwrap().bytes,
            f.s2c.as_ref().unwrap().bytes,
            f.s2c.as_ref().unwrap().packets
        ),
        (500, 700, 7)
    );
    // Withdrawal, then data is buffered (no template).
    let mut w = Vec::new();
    be16(&mut w, 256);
    be16(&mut w, 0);
    let (flows, _) = run(&mut c, &ipfix(1, 3, &[(2, w), (256, r)]), 2 * SEC);
    assert!(flows.is_empty());
    let s = c.stats().totals;
    assert_eq!(
        (s.templates_withdrawn, s.missing_template, s.lost_records),
        (1, 1, 0)
    );
}

#[test]
fn ipfix_sequence_counts_records_and_gaps() {
    let mut c = Collector::new(CollectorConfig::default());
    let t = (2, v9_template(256, V4_FIELDS));
    let rec = v4_record([10, 0, 0, 1], [10, 0, 0, 2], 1, 2, 1, 1);
    let _ = run(
        &mut c,
        &ipfix(0, 0, &[t, (256, [rec.clone(), rec.clone()].concat())]),
        SEC,
    );
    let _ = run(&mut c, &ipfix(2, 0, &[(256, rec.clone())]), SEC);
    let _ = run(&mut c, &ipfix(8, 0, &[(256, rec)]), SEC);
    assert_eq!(c.stats().totals.lost_records, 5);
}

#[test]
fn netflow5_times_sampling_and_sequence() {
    let mut c = Collector::new(CollectorConfig::default());
    let mk = |seq: u32, count: u16| {
        let mut d = Vec::new();
        be16(&mut d, 5);
        be16(&mut d, count);
        be32(&mut d, 10_000); // uptime
        be32(&mut d, 1_700_000_000);
        be32(&mut d, 500_000_000);
        be32(&mut d, seq);
        d.extend_from_slice(&[1, 2]);
        be16(&mut d, 0x4000 | 0xa); // mode 1, interval 10
        for _ in 0..count {
            let mut r = vec![10, 0, 0, 1, 10, 0, 0, 2, 0, 0, 0, 0, 0, 1, 0, 2];
            be32(&mut r, 3);
            be32(&mut r, 180);
            be32(&mut r, 9_000); // first: 1 s before export
            be32(&mut r, 9_500);
            be16(&mut r, 40000);
            be16(&mut r, 22);
            r.extend_from_slice(&[0, 0x12, 6, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            d.extend_from_slice(&r);
        }
        d
    };
    let (flows, r) = run(&mut c, &mk(100, 2), SEC);
    r.unwrap();
    let f = &flows[0].record;
    assert_eq!(f.sampling_rate, 10);
    assert_eq!(f.c2s.as_ref().unwrap().packets, 30);
    assert_eq!(f.first_seen_ns, 1_699_999_999_500_000_000);
    assert_eq!(f.last_seen_ns, 1_700_000_000_000_000_000);
    assert_eq!(f.observation_point.as_ref().unwrap().domain_id, 0x0102);
    let _ = run(&mut c, &mk(105, 1), SEC);
    assert_eq!(c.stats().totals.lost_records, 3);
    let mut short = mk(106, 2);
    short.truncate(24 + 48 + 10);
    let (flows, r) = run(&mut c, &short, SEC);
    assert_eq!(flows.len(), 1, "records before the truncation stand");
    assert_eq!(r.unwrap_err().offset, 72);
}

#[test]
fn every_truncation_of_real_datagrams_is_safe_and_counted() {
    let real: Vec<Vec<u8>> = vec![
        v9(
            1,
            0,
            &[
                (0, v9_template(256, V4_FIELDS)),
                (256, v4_record([1, 2, 3, 4], [5, 6, 7, 8], 1, 2, 3, 4)),
            ],
        ),
        ipfix(
            1,
            0,
            &[
                (2, v9_template(256, V4_FIELDS)),
                (256, v4_record([1, 2, 3, 4], [5, 6, 7, 8], 1, 2, 3, 4)),
            ],
        ),
    ];
    for d in real {
        for cut in 0..d.len() {
            let mut c = Collector::new(CollectorConfig::default());
            let (_, r) = run(&mut c, &d[..cut], 0);
            let s = c.stats();
            if r.is_err() {
                assert_eq!(
                    s.totals.errors + s.global.errors_unknown_version,
                    1,
                    "cut {cut}"
                );
            }
        }
    }
}

#[test]
fn exporter_and_template_floods_are_bounded() {
    let cfg = CollectorConfig {
        max_exporters: 8,
        max_templates_per_exporter: 4,
        max_templates_total: 20,
        ..CollectorConfig::default()
    };
    let mut c = Collector::new(cfg);
    for i in 0..100u32 {
        let ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
        let sets: Vec<_> = (0..10)
            .map(|t| (0, v9_template(256 + t, V4_FIELDS)))
            .collect();
        c.handle(ip, &v9(i, 0, &sets), u64::from(i), &mut |_| {})
            .unwrap();
    }
    let s = c.stats();
    assert_eq!(s.exporters, 8);
    assert_eq!(s.global.exporters_evicted, 92);
    assert!(s.templates <= 20, "{s:?}");
    assert!(s.totals.templates_evicted > 0);
    // Total limit: 3 exporters × 4 templates > 10 allowed.
    let mut c = Collector::new(CollectorConfig {
        max_templates_total: 10,
        max_templates_per_exporter: 4,
        ..CollectorConfig::default()
    });
    for i in 0..3u32 {
        let ip = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i));
        let sets: Vec<_> = (0..4)
            .map(|t| (0, v9_template(256 + t, V4_FIELDS)))
            .collect();
        c.handle(ip, &v9(0, 0, &sets), 0, &mut |_| {}).unwrap();
    }
    assert_eq!(c.stats().templates, 10);
    assert_eq!(c.stats().totals.templates_rejected, 2);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Arbitrary datagrams, after a valid template so data sets are walked, never panic.
    #[test]
    fn arbitrary_datagrams_never_panic(version in prop::sample::select(vec![5u16, 9, 10, 0]), body in prop::collection::vec(any::<u8>(), 0..600)) {
        let mut c = Collector::new(CollectorConfig::default());
        let _ = run(&mut c, &v9(0, 0, &[(0, v9_template(256, V4_FIELDS))]), 0);
        let mut d = version.to_be_bytes().to_vec();
        if version == 0 {
            d.extend_from_slice(&[0, 5]);
        }
        d.extend_from_slice(&body);
        let _ = run(&mut c, &d, 1);
    }
}

#[test]
fn point_board_collects_loss_and_templates_per_point_across_collectors() {
    let board = PointBoard::default();
    let cfg = CollectorConfig {
        points: Some(board.clone()),
        ..CollectorConfig::default()
    };
    let mut a = Collector::new(cfg.clone());
    let mut b = Collector::new(cfg);
    let t = (0, v9_template(256, V4_FIELDS));
    let t2 = (0, v9_template(257, V4_FIELDS));
    let rec = v4_record([10, 0, 0, 1], [10, 0, 0, 2], 1, 2, 1, 1);
    // v9 counts datagrams: 1, 2, 5 on source id 7 = 2 lost; then 4 is late.
    let _ = run(&mut a, &v9(1, 7, &[t.clone(), (256, rec.clone())]), SEC);
    let _ = run(&mut a, &v9(2, 7, &[t2]), SEC);
    let _ = run(&mut a, &v9(5, 7, &[(256, rec.clone())]), SEC);
    let _ = run(&mut a, &v9(4, 7, &[(256, rec.clone())]), SEC);
    // A second collector (another listener) hears the same exporter and domain.
    let _ = run(&mut b, &v9(10, 7, &[t]), SEC);
    let _ = run(&mut b, &v9(12, 7, &[(256, rec.clone())]), SEC);
    // IPFIX domain 3 counts records: 2 records then sequence 5 = 3 lost.
    let it = (2, v9_template(256, V4_FIELDS));
    let _ = run(
        &mut a,
        &ipfix(0, 3, &[it, (256, [rec.clone(), rec.clone()].concat())]),
        SEC,
    );
    let _ = run(&mut a, &ipfix(5, 3, &[(256, rec)]), SEC);
    // sFlow: the point is the agent address, not the UDP source.
    let sflow = |seq: u32| {
        let mut d = Vec::new();
        for w in [5u32, 1, u32::from_be_bytes([192, 0, 2, 7]), 2, seq, 0, 0] {
            be32(&mut d, w);
        }
        d
    };
    for seq in [1, 2, 3, 7] {
        let _ = run(&mut a, &sflow(seq), SEC);
    }
    let points = board.snapshot();
    let find = |exp: &str, domain: u32| {
        points
            .iter()
            .find(|p| p.exporter == exp && p.domain_id == domain)
            .cloned()
            .unwrap_or_else(|| panic!("no point {exp}/{domain} in {points:?}"))
    };
    let v9p = find(&EXP.to_string(), 7);
    assert_eq!(
        (
            v9p.datagrams,
            v9p.lost_datagrams,
            v9p.lost_records,
            v9p.sequence_late
        ),
        (6, 3, 0, 1),
        "{v9p:?}"
    );
    // Collector a holds templates 256 and 257, b holds 256: a gauge over both.
    assert_eq!(v9p.templates, 3);
    let ip = find(&EXP.to_string(), 3);
    assert_eq!((ip.datagrams, ip.lost_records, ip.templates), (2, 3, 1));
    let sf = find("192.0.2.7", 2);
    assert_eq!((sf.datagrams, sf.lost_datagrams), (4, 3));
    assert_eq!(points.len(), 3, "{points:?}");
    let v = board.version();
    // A collector that goes (a closed TCP connection) takes its templates back.
    drop(b);
    assert_ne!(board.version(), v);
    assert_eq!(find_templates(&board, 7), 2);
    drop(a);
    assert_eq!(find_templates(&board, 7), 0);
    assert_eq!(board.untracked(), 0);
}

fn find_templates(board: &PointBoard, domain: u32) -> u64 {
    board
        .snapshot()
        .iter()
        .find(|p| p.domain_id == domain)
        .map_or(u64::MAX, |p| p.templates)
}
