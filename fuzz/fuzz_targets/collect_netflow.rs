//! Arbitrary NetFlow v5/v9 and IPFIX datagrams into one long-lived collector, so templates
//! learned from earlier inputs are used (and replaced, expired, evicted) by later ones.
//! Input: one selector byte (exporter, protocol, clock), then the datagram body.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{LazyLock, Mutex};

use libfuzzer_sys::fuzz_target;
use netwarden_sensor::collect::{Collector, CollectorConfig};

static COLLECTOR: LazyLock<Mutex<(Collector, u64)>> = LazyLock::new(|| {
    let config = CollectorConfig {
        template_timeout_secs: 5,
        max_exporters: 4,
        max_templates_per_exporter: 16,
        max_templates_total: 32,
        pending_max_sets: 4,
        ..CollectorConfig::default()
    };
    Mutex::new((Collector::new(config), 0))
});

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    let version: u16 = match sel & 3 {
        0 => 5,
        1 | 2 => 9,
        _ => 10,
    };
    let mut datagram = version.to_be_bytes().to_vec();
    datagram.extend_from_slice(body);
    let exporter = IpAddr::V4(Ipv4Addr::new(192, 0, 2, (sel >> 2) & 7));
    let mut guard = COLLECTOR
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let (collector, clock) = &mut *guard;
    *clock += u64::from(sel >> 5) * 1_000_000_000;
    let _ = collector.handle(exporter, &datagram, *clock, &mut |_| {});
});
