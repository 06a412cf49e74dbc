//! Every frame of every capture of the nDPI corpus: no panic, and few decode errors.

use std::collections::BTreeMap;

use super::super::{DecodeError, decode, decode_stats_key};
use super::{corpus_dir, read_capture};

#[test]
fn whole_corpus_decodes_with_few_errors() {
    let mut paths: Vec<_> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap" || e == "pcapng"))
        .collect();
    paths.sort();
    assert!(
        paths.len() > 50,
        "corpus not found in {}",
        corpus_dir().display()
    );

    let (mut frames, mut decoded, mut errors, mut not_ip) = (0usize, 0usize, 0usize, 0usize);
    let mut by_key: BTreeMap<(&str, String), usize> = BTreeMap::new();
    for path in &paths {
        let (link, captured) = read_capture(path);
        let link = link.unwrap_or_else(|| panic!("{}: link type not decoded", path.display()));
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        for f in &captured {
            frames += 1;
            match decode(link, &f.data, f.len, 0) {
                Ok(_) => decoded += 1,
                Err(e) => {
                    if matches!(e, DecodeError::NotIp { .. }) {
                        not_ip += 1;
                    } else {
                        errors += 1;
                    }
                    *by_key
                        .entry((decode_stats_key(&e), name.clone()))
                        .or_default() += 1;
                }
            }
        }
    }
    let rate = errors as f64 / frames as f64;
    println!(
        "corpus: {} captures, {frames} frames, {decoded} decoded, {not_ip} not IP, {errors} errors ({:.3}%)",
        paths.len(),
        rate * 100.0
    );
    for ((key, file), n) in &by_key {
        println!("  {key:<20} {n:>6}  {file}");
    }
    assert!(
        rate < 0.02,
        "decode error rate {:.3}% is 2% or more",
        rate * 100.0
    );
}
