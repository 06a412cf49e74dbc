//! The nDPI corpus (`testdata/ndpi`): every pcap replayed, each flow compared with nDPI's
//! expected result on master/app protocol, hostname, JA3C and risks.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use super::*;

#[derive(Default, Debug)]
struct Score {
    flows: usize,
    matched: usize,
    master: (usize, usize),
    app: (usize, usize),
    host: (usize, usize),
    ja3c: (usize, usize),
    ja4: (usize, usize),
    risk_tp: usize,
    risk_fn: usize,
    risk_fp: usize,
}

fn pct((ok, n): (usize, usize)) -> f64 {
    if n == 0 {
        100.0
    } else {
        ok as f64 * 100.0 / n as f64
    }
}

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/ndpi")
}

#[test]
fn ndpi_corpus_agreement() {
    let dpi = Dpi::new(DpiConfig::default());
    let verbose = std::env::var_os("DPI_CORPUS_VERBOSE").is_some();
    let mut score = Score::default();
    let mut per_risk: BTreeMap<&str, (usize, usize, usize)> = BTreeMap::new();
    let mut entries: Vec<_> = std::fs::read_dir(corpus_dir())
        .expect("corpus")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    for exp_path in entries
        .iter()
        .filter(|p| p.to_string_lossy().ends_with(".expected.json"))
    {
        let exp: serde_json::Value =
            serde_json::from_slice(&std::fs::read(exp_path).expect("read")).expect("json");
        let pcap = corpus_dir().join(exp["pcap"].as_str().unwrap_or_default());
        let records = replay(&dpi, &pcap);
        for f in exp["flows"].as_array().into_iter().flatten() {
            let l4 = match f["l4_proto"].as_str() {
                Some("TCP") => 6u8,
                Some("UDP") => 17,
                _ => continue,
            };
            if f.get("tunnel").is_some() {
                continue;
            }
            score.flows += 1;
            let ep = |ip: &str, port: &serde_json::Value| -> Option<(IpAddr, u16)> {
                Some((ip.parse().ok()?, u16::try_from(port.as_u64()?).ok()?))
            };
            let (Some(a), Some(b)) = (
                ep(f["src_ip"].as_str().unwrap_or_default(), &f["src_port"]),
                ep(f["dst_ip"].as_str().unwrap_or_default(), &f["dst_port"]),
            ) else {
                continue;
            };
            let key = if a <= b { (l4, a, b) } else { (l4, b, a) };
            let Some(rec) = records.get(&key) else {
                continue;
            };
            score.matched += 1;
            let l7 = rec.l7.clone().unwrap_or_default();
            let name = exp_path
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .replace(".expected.json", "");
            let exp_app = f["app_proto"].as_str().unwrap_or("Unknown");
            let exp_master = f["master_proto"].as_str().unwrap_or(exp_app);
            let got_master = if l7.master_protocol.is_empty() {
                "Unknown"
            } else {
                &l7.master_protocol
            };
            let got_app = if l7.app_protocol.is_empty() {
                "Unknown"
            } else {
                &l7.app_protocol
            };
            let check = |slot: &mut (usize, usize), ok: bool, what: &str, e: &str, g: &str| {
                slot.1 += 1;
                if ok {
                    slot.0 += 1;
                } else if verbose {
                    println!(
                        "{name}: {what}: expected {e:?} got {g:?} ({} {a:?} {b:?})",
                        f["app_proto"]
                    );
                }
            };
            check(
                &mut score.master,
                exp_master == got_master,
                "master",
                exp_master,
                got_master,
            );
            check(&mut score.app, exp_app == got_app, "app", exp_app, got_app);
            if let Some(h) = f["hostname"].as_str() {
                let ok = l7
                    .hostname
                    .to_ascii_lowercase()
                    .starts_with(&h.to_ascii_lowercase());
                check(&mut score.host, ok, "hostname", h, &l7.hostname);
            }
            let tls = l7.tls.clone().unwrap_or_default();
            if let Some(j) = f["ja3c"].as_str() {
                check(&mut score.ja3c, j == tls.ja3c, "ja3c", j, &tls.ja3c);
            }
            if let Some(j) = f["ja4"].as_str() {
                check(&mut score.ja4, j == tls.ja4, "ja4", j, &tls.ja4);
            }
            let expected: Vec<u16> = f["risk_keys"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|k| risk::by_key(k.as_str()?).map(|r| r.id))
                .filter(|id| IN_SCOPE.contains(id))
                .collect();
            let got: Vec<u16> = rec.risk_ids().filter(|id| IN_SCOPE.contains(id)).collect();
            for id in &expected {
                let key = risk::by_id(*id).map_or("?", |r| r.key);
                let e = per_risk.entry(key).or_default();
                if got.contains(id) {
                    score.risk_tp += 1;
                    e.0 += 1;
                } else {
                    score.risk_fn += 1;
                    e.1 += 1;
                    if verbose {
                        println!(
                            "{name}: missed risk {key} ({exp_app} {a:?} {b:?}) info={:?}",
                            f["risk_info"]
                        );
                    }
                }
            }
            for id in got.iter().filter(|id| !expected.contains(id)) {
                let key = risk::by_id(*id).map_or("?", |r| r.key);
                score.risk_fp += 1;
                per_risk.entry(key).or_default().2 += 1;
                if verbose {
                    println!(
                        "{name}: extra risk {key} ({exp_app} {a:?} {b:?}) details={:?}",
                        rec.risk_details
                    );
                }
            }
        }
    }
    let recall = score.risk_tp as f64 * 100.0 / (score.risk_tp + score.risk_fn).max(1) as f64;
    let precision = score.risk_tp as f64 * 100.0 / (score.risk_tp + score.risk_fp).max(1) as f64;
    println!(
        "corpus: {} TCP/UDP flows, {} matched by the harness",
        score.flows, score.matched
    );
    println!(
        "master {:.1}% ({}/{}), app {:.1}% ({}/{}), hostname {:.1}% ({}/{}), ja3c {:.1}% ({}/{}), ja4 {:.1}% ({}/{})",
        pct(score.master),
        score.master.0,
        score.master.1,
        pct(score.app),
        score.app.0,
        score.app.1,
        pct(score.host),
        score.host.0,
        score.host.1,
        pct(score.ja3c),
        score.ja3c.0,
        score.ja3c.1,
        pct(score.ja4),
        score.ja4.0,
        score.ja4.1
    );
    println!(
        "risks (in scope): recall {recall:.1}% precision {precision:.1}% (tp {} fn {} fp {})",
        score.risk_tp, score.risk_fn, score.risk_fp
    );
    for (k, (tp, fneg, fp)) in &per_risk {
        println!("  {k:40} tp {tp:4} fn {fneg:4} fp {fp:4}");
    }
    // Floors just below what the engine achieves (raise them when it improves): measured
    // 1095/1111 matched, master 99.6%, app 98.7%, hostname 98.7%, JA3C and JA4 98.7%, risks
    // in scope 98.2% recall and 96.4% precision (the packet-only harness: no flow-table risks).
    assert!(
        score.matched * 100 >= score.flows * 98,
        "harness matched too few flows"
    );
    for (what, ratio, floor) in [
        ("master", score.master, 99.0),
        ("app", score.app, 98.0),
        ("hostname", score.host, 98.0),
        ("ja3c", score.ja3c, 97.0),
        ("ja4", score.ja4, 97.0),
    ] {
        assert!(pct(ratio) >= floor, "{what}: {:.1}% < {floor}%", pct(ratio));
    }
    assert!(
        recall >= 97.5 && precision >= 95.5,
        "risks: {recall:.1}% / {precision:.1}%"
    );
}
