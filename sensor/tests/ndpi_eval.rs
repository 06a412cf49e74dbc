//! The DPI evaluation harness (`netwarden-sensor eval`) on nDPI's development corpus
//! (testdata/ndpi) with nDPI's lists: the real offline pipeline, scored against nDPI's
//! expected results. Fails below the floors, which sit just under what the sensor achieves
//! (raise them when it improves; docs/dpi.md has the numbers).

#![allow(clippy::unwrap_used)]

use netwarden_sensor::eval::{self, Ratio};

/// (what, floor): measured 1135/1135, 1131/1135, 1121/1135, 956/968, 2749/2794, 2749/2823,
/// 84/85.
const FLOORS: &[(&str, f64)] = &[
    ("flows matched", 0.995),
    ("master protocol agreement", 0.995),
    ("app protocol agreement", 0.985),
    ("hostname agreement", 0.985),
    ("risk recall", 0.98),
    ("risk precision", 0.97),
    ("ja3c agreement", 0.985),
];

#[test]
fn dpi_agrees_with_ndpi_on_its_corpus() {
    let dir = netwarden_testkit::testdata("ndpi");
    let dpi = eval::engine(Some(&dir.join("lists"))).unwrap();
    assert!(!dpi.lists().is_empty(), "nDPI lists not loaded");
    let report = eval::evaluate(&dir, dpi).unwrap();
    assert!(
        report.pcaps.len() >= 90,
        "corpus: {} pcaps",
        report.pcaps.len()
    );
    let summary = report.summary();
    println!("{}{summary}", report.table());
    let t = &report.total;
    let got: [(&str, Ratio); 7] = [
        ("flows matched", t.flows),
        ("master protocol agreement", t.master),
        ("app protocol agreement", t.app),
        ("hostname agreement", t.hostname),
        ("risk recall", t.risk_recall()),
        ("risk precision", t.risk_precision()),
        ("ja3c agreement", t.ja3c),
    ];
    for ((name, ratio), (floor_name, floor)) in got.iter().zip(FLOORS) {
        assert_eq!(name, floor_name);
        assert!(
            summary.contains(&format!("{name}: {ratio}\n")),
            "summary line for {name} missing:\n{summary}"
        );
        assert!(ratio.of > 0, "{name}: nothing to score");
        assert!(
            ratio.fraction() >= *floor,
            "{name}: {ratio} ({:.1}%) below the floor {:.1}%",
            ratio.fraction() * 100.0,
            floor * 100.0
        );
    }
    // HASSH (not a summary line): every client and server fingerprint nDPI printed (4/4).
    assert!(t.hassh.of >= 4, "hassh: {}", t.hassh);
    assert_eq!(t.hassh.ok, t.hassh.of, "hassh: {}", t.hassh);
}

#[test]
fn summary_has_exactly_the_seven_lines() {
    let summary = eval::Report::default().summary();
    let lines: Vec<&str> = summary
        .lines()
        .map(|l| l.split(':').next().unwrap())
        .collect();
    assert_eq!(
        lines,
        [
            "flows matched",
            "master protocol agreement",
            "app protocol agreement",
            "hostname agreement",
            "risk recall",
            "risk precision",
            "ja3c agreement"
        ]
    );
}
