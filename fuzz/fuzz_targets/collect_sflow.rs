//! Arbitrary sFlow v5 datagrams (after the version word) into one long-lived collector.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{LazyLock, Mutex};

use libfuzzer_sys::fuzz_target;
use netwarden_sensor::collect::{Collector, CollectorConfig, Output};

static COLLECTOR: LazyLock<Mutex<Collector>> =
    LazyLock::new(|| Mutex::new(Collector::new(CollectorConfig::default())));

fuzz_target!(|data: &[u8]| {
    let mut datagram = vec![0, 0, 0, 5];
    datagram.extend_from_slice(data);
    let mut c = COLLECTOR
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let exporter = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    let _ = c.handle(exporter, &datagram, 0, &mut |o| {
        if let Output::Flow(f) = o {
            assert!(f.record.sampling_rate >= 1);
        }
    });
});
