//! Micro-benchmark of the collector (ignored by default; run it once in release):
//!
//!     cargo test --release -p netwarden-sensor --test collect_bench -- --ignored --nocapture
//!
//! Replays the data datagrams of real NetFlow v9 / IPFIX / v5 captures in memory into one
//! collector (templates learned once) and prints records per second on one core.

#![allow(clippy::unwrap_used, missing_docs)]

mod collect_support;

use std::time::Instant;

use collect_support::{collector, datagrams, testdata};
use netwarden_sensor::collect::Output;

fn bench(rel: &str) {
    let grams = datagrams(&testdata(rel));
    let mut c = collector();
    // Learn templates (and options) once.
    for d in &grams {
        let _ = c.handle(d.src, &d.payload, d.ts_ns, &mut |_| {});
    }
    let rounds = 20_000usize.div_ceil(grams.len()).max(1) * 10;
    let mut records = 0u64;
    let mut bytes = 0u64;
    let start = Instant::now();
    for _ in 0..rounds {
        for d in &grams {
            let _ = c.handle(d.src, &d.payload, d.ts_ns, &mut |o| {
                if let Output::Flow(f) = o {
                    records += 1;
                    bytes += f.record.total_bytes() & 1;
                }
            });
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let datagrams = (rounds * grams.len()) as f64;
    println!(
        "{rel}: {records} records from {datagrams} datagrams in {secs:.3} s: {:.2} M records/s, {:.0} k datagrams/s ({bytes})",
        records as f64 / secs / 1e6,
        datagrams / secs / 1e3
    );
}

#[test]
#[ignore = "benchmark: run in release with --ignored --nocapture"]
fn collector_records_per_second() {
    bench("generated/softflowd-v9.pcap");
    bench("generated/softflowd-ipfix.pcap");
    bench("generated/softflowd-v5.pcap");
    bench("pmacct/101-NFv9-CISCO-cust_primitives/traffic-00.pcap");
}
