//! The DPI evaluation harness (`netwarden-sensor eval`): runs the real offline pipeline
//! ([`flows_from_pcap`] with [`FlowConfig::offline`] and the DPI) over a corpus of pcaps that
//! come with nDPI's expected results (`X.pcap`/`X.pcapng` + `X.expected.json`, schema in
//! `testdata/ndpi/README.md`), matches flows and scores the agreement.
//!
//! Flows match by L4 protocol + unordered endpoints + innermost VLAN + tunnel (nDPI's "src"
//! is the side it saw first, not the client). Scores, over matched flows:
//! master and app protocol (nDPI's `master_proto`/`app_proto`, `Unknown` when absent),
//! hostname (where nDPI printed one: ours, lower-cased, starts with nDPI's), risks (nDPI's
//! `risk_keys` against ours by catalogue key, nDPI risk ids only: recall and precision), and
//! JA3 client hash (where nDPI printed one).
//!
//! It measures and never judges: no floors here (tests set them), no special cases by pcap
//! name or flow. Must not: write anything but the report.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use netwarden_api::flow::{FlowRecord, proto};
use netwarden_api::risk;
use serde_json::Value;

use crate::dpi::{Dpi, DpiConfig, Lists};
use crate::flow::{FlowConfig, SharedDpi};
use crate::pipeline::{ProgressMode, SensorConfig, flows_from_pcap};

/// Highest nDPI risk id (`NDPI_MAX_RISK - 1` in nDPI 4.11); ours above it are Netwarden-only
/// and not scored.
const MAX_NDPI_RISK: u16 = 63;

/// Why the harness could not run.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A corpus or list file could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file or folder.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The pipeline could not read a pcap.
    #[error(transparent)]
    Pipeline(#[from] crate::Error),
}

/// The harness's result type.
pub type Result<T> = std::result::Result<T, EvalError>;

fn read_err(path: &Path) -> impl FnOnce(std::io::Error) -> EvalError + '_ {
    move |source| EvalError::Read {
        path: path.to_owned(),
        source,
    }
}

type Endpoint = (IpAddr, u16);
/// L4 protocol, lower endpoint, higher endpoint, VLAN, tunnel.
type Key = (u8, Endpoint, Endpoint, u16, String);

fn key(proto: u8, a: Endpoint, b: Endpoint, vlan: u16, tunnel: &str) -> Key {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    (proto, lo, hi, vlan, tunnel.to_owned())
}

/// `ok` out of `of`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ratio {
    /// Agreements.
    pub ok: usize,
    /// Cases.
    pub of: usize,
}

impl Ratio {
    fn count(&mut self, ok: bool) {
        self.of += 1;
        self.ok += usize::from(ok);
    }

    fn add(&mut self, other: Self) {
        self.ok += other.ok;
        self.of += other.of;
    }

    /// `ok / of` as a fraction (1.0 when there is no case).
    pub fn fraction(&self) -> f64 {
        if self.of == 0 {
            1.0
        } else {
            self.ok as f64 / self.of as f64
        }
    }
}

impl std::fmt::Display for Ratio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.ok, self.of)
    }
}

/// Scores of one pcap, or of the whole corpus.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Score {
    /// nDPI flows matched by one of ours (`of` = nDPI's flows).
    pub flows: Ratio,
    /// Master protocol agreement over matched flows.
    pub master: Ratio,
    /// Application protocol agreement over matched flows.
    pub app: Ratio,
    /// Hostname agreement where nDPI printed one.
    pub hostname: Ratio,
    /// Risk keys both raised.
    pub risk_tp: usize,
    /// Risk keys nDPI raised (recall denominator).
    pub risk_expected: usize,
    /// Risk keys we raised (precision denominator).
    pub risk_raised: usize,
    /// JA3 client agreement where nDPI printed one.
    pub ja3c: Ratio,
    /// HASSH client and server agreement where nDPI printed them (case-insensitive; not a
    /// summary line, in the table).
    pub hassh: Ratio,
}

impl Score {
    fn add(&mut self, o: &Self) {
        self.flows.add(o.flows);
        self.master.add(o.master);
        self.app.add(o.app);
        self.hostname.add(o.hostname);
        self.risk_tp += o.risk_tp;
        self.risk_expected += o.risk_expected;
        self.risk_raised += o.risk_raised;
        self.ja3c.add(o.ja3c);
        self.hassh.add(o.hassh);
    }

    /// Risk recall.
    pub fn risk_recall(&self) -> Ratio {
        Ratio {
            ok: self.risk_tp,
            of: self.risk_expected,
        }
    }

    /// Risk precision.
    pub fn risk_precision(&self) -> Ratio {
        Ratio {
            ok: self.risk_tp,
            of: self.risk_raised,
        }
    }
}

/// One pcap's result.
#[derive(Debug, Clone, Default)]
pub struct PcapResult {
    /// File name.
    pub name: String,
    /// Its scores.
    pub score: Score,
    /// Disagreements, one line each (for `--verbose`).
    pub notes: Vec<String>,
}

/// The whole evaluation.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Per pcap, by file name.
    pub pcaps: Vec<PcapResult>,
    /// Sums over every pcap.
    pub total: Score,
}

impl Report {
    /// The summary lines, exactly as issue 3 specifies them.
    pub fn summary(&self) -> String {
        let t = &self.total;
        format!(
            "flows matched: {}\nmaster protocol agreement: {}\napp protocol agreement: {}\n\
             hostname agreement: {}\nrisk recall: {}\nrisk precision: {}\nja3c agreement: {}\n",
            t.flows,
            t.master,
            t.app,
            t.hostname,
            t.risk_recall(),
            t.risk_precision(),
            t.ja3c
        )
    }

    /// The per-pcap table.
    pub fn table(&self) -> String {
        let mut out = format!(
            "{:<48} {:>9} {:>9} {:>9} {:>9} {:>7} {:>7} {:>7} {:>7} {:>7}\n",
            "pcap", "flows", "master", "app", "host", "risk-tp", "exp", "ours", "ja3c", "hassh"
        );
        for p in &self.pcaps {
            let s = &p.score;
            let _ = writeln!(
                out,
                "{:<48} {:>9} {:>9} {:>9} {:>9} {:>7} {:>7} {:>7} {:>7} {:>7}",
                p.name,
                s.flows.to_string(),
                s.master.to_string(),
                s.app.to_string(),
                s.hostname.to_string(),
                s.risk_tp,
                s.risk_expected,
                s.risk_raised,
                s.ja3c.to_string(),
                s.hassh.to_string()
            );
        }
        out
    }
}

/// The pcaps of `dir` that have an `expected.json`, sorted.
pub fn corpus(dir: &Path) -> Result<Vec<(PathBuf, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_err(dir))? {
        let path = entry.map_err(read_err(dir))?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let Some(stem) = name
            .strip_suffix(".pcapng")
            .or_else(|| name.strip_suffix(".pcap"))
        else {
            continue;
        };
        let expected = dir.join(format!("{stem}.expected.json"));
        if expected.exists() {
            out.push((path, expected));
        }
    }
    out.sort();
    Ok(out)
}

/// The DPI engine the harness uses: defaults, plus the lists of `lists` when given.
pub fn engine(lists: Option<&Path>) -> Result<Dpi> {
    let dpi = Dpi::new(DpiConfig::default());
    Ok(match lists {
        Some(dir) => dpi.with_lists(Lists::load_dir(dir).map_err(read_err(dir))?),
        None => dpi,
    })
}

/// Runs the harness over `corpus_dir` with `dpi`.
pub fn evaluate(corpus_dir: &Path, dpi: Dpi) -> Result<Report> {
    let config = SensorConfig {
        sensor_name: "eval".into(),
        flow: FlowConfig {
            dpi: Some(SharedDpi::new(dpi)),
            ..FlowConfig::offline()
        },
        progress: ProgressMode::Quiet,
        ..SensorConfig::default()
    };
    let mut report = Report::default();
    for (pcap, expected) in corpus(corpus_dir)? {
        let text = std::fs::read_to_string(&expected).map_err(read_err(&expected))?;
        let name = pcap
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let Ok(expected) = serde_json::from_str::<Value>(&text) else {
            tracing::warn!(file = %name, "expected.json does not parse; skipped");
            continue;
        };
        let (records, _) = flows_from_pcap(&pcap, &config, false)?;
        let result = score_pcap(name, &expected, &records);
        report.total.add(&result.score);
        report.pcaps.push(result);
    }
    Ok(report)
}

fn our_key(r: &FlowRecord) -> Option<Key> {
    Some(key(
        u8::try_from(r.l4_proto).ok()?,
        (r.client_addr()?, u16::try_from(r.client_port).ok()?),
        (r.server_addr()?, u16::try_from(r.server_port).ok()?),
        u16::try_from(r.vlan).ok()?,
        &r.tunnel,
    ))
}

fn their_key(f: &Value) -> Option<Key> {
    let l4 = proto::from_name(f["l4_proto"].as_str()?)?;
    let ep = |ip: &str, port: &str| -> Option<Endpoint> {
        let addr = f[ip].as_str()?.parse().ok()?;
        Some((addr, u16::try_from(f[port].as_u64().unwrap_or(0)).ok()?))
    };
    Some(key(
        l4,
        ep("src_ip", "src_port")?,
        ep("dst_ip", "dst_port")?,
        u16::try_from(f["vlan_id"].as_u64().unwrap_or(0)).ok()?,
        f["tunnel"].as_str().unwrap_or(""),
    ))
}

fn or_unknown(s: &str) -> &str {
    if s.is_empty() { "Unknown" } else { s }
}

/// Scores one pcap's records against its expected flows.
pub fn score_pcap(name: String, expected: &Value, records: &[FlowRecord]) -> PcapResult {
    let ours: HashMap<Key, &FlowRecord> = records
        .iter()
        .filter_map(|r| Some((our_key(r)?, r)))
        .collect();
    let mut s = Score::default();
    let mut notes = Vec::new();
    for f in expected["flows"].as_array().into_iter().flatten() {
        let rec = their_key(f).and_then(|k| ours.get(&k).copied());
        s.flows.count(rec.is_some());
        let Some(rec) = rec else {
            notes.push(format!("unmatched: {}", f["raw"].as_str().unwrap_or("?")));
            continue;
        };
        let l7 = rec.l7.clone().unwrap_or_default();
        let what = format!(
            "{} {}:{} <-> {}:{}",
            f["l4_proto"].as_str().unwrap_or("?"),
            f["src_ip"].as_str().unwrap_or("?"),
            f["src_port"],
            f["dst_ip"].as_str().unwrap_or("?"),
            f["dst_port"]
        );
        let mut check = |r: &mut Ratio, field: &str, exp: &str, got: &str, ok: bool| {
            r.count(ok);
            if !ok {
                notes.push(format!("{what}: {field}: expected {exp:?}, got {got:?}"));
            }
        };
        let exp_app = f["app_proto"].as_str().unwrap_or("Unknown");
        let exp_master = f["master_proto"].as_str().unwrap_or(exp_app);
        let got_master = or_unknown(&l7.master_protocol);
        let got_app = or_unknown(&l7.app_protocol);
        check(
            &mut s.master,
            "master",
            exp_master,
            got_master,
            exp_master == got_master,
        );
        check(&mut s.app, "app", exp_app, got_app, exp_app == got_app);
        if let Some(h) = f["hostname"].as_str() {
            let ok = l7
                .hostname
                .to_ascii_lowercase()
                .starts_with(&h.to_ascii_lowercase());
            check(&mut s.hostname, "hostname", h, &l7.hostname, ok);
        }
        if let Some(j) = f["ja3c"].as_str() {
            let got = l7.tls.as_ref().map_or("", |t| t.ja3c.as_str());
            check(&mut s.ja3c, "ja3c", j, got, j == got);
        }
        let ssh = l7.ssh.clone().unwrap_or_default();
        for (field, got) in [
            ("hassh_c", &ssh.hassh_client),
            ("hassh_s", &ssh.hassh_server),
        ] {
            if let Some(h) = f[field].as_str() {
                check(&mut s.hassh, field, h, got, h.eq_ignore_ascii_case(got));
            }
        }
        let theirs: BTreeSet<String> = f["risk_keys"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(|k| k.strip_prefix("NDPI_").unwrap_or(k).to_ascii_lowercase())
            .collect();
        let mine: BTreeSet<String> = rec
            .risk_ids()
            .filter(|id| *id <= MAX_NDPI_RISK)
            .filter_map(|id| risk::by_id(id).map(|r| r.key.to_owned()))
            .collect();
        s.risk_expected += theirs.len();
        s.risk_raised += mine.len();
        s.risk_tp += theirs.intersection(&mine).count();
        for k in theirs.difference(&mine) {
            notes.push(format!("{what}: missed risk {k} ({exp_app})"));
        }
        for k in mine.difference(&theirs) {
            notes.push(format!("{what}: extra risk {k} ({exp_app})"));
        }
    }
    PcapResult {
        name,
        score: s,
        notes,
    }
}
