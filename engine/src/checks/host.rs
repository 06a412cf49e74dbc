//! Host checks: small per-host state machines fed with each flow as it is applied, sliding with
//! flow time (never a batch timer), raising engaged alerts while their condition holds and
//! releasing them after (REFERENCE.md §1c).
//!
//! Counters are sliding windows approximated by two fixed buckets (the previous one weighted by
//! how much of it still overlaps the window), so a host costs a few dozen bytes.

use serde::Deserialize;

use netwarden_api::alert::Roles;

/// Thresholds of the host checks (REFERENCE.md §1c defaults; all are "greater than").
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HostChecksConfig {
    /// Unanswered SYNs per minute, sent (attacker) or received (victim).
    pub syn_scan: u32,
    /// New flows per second, as client (attacker) or as server (victim).
    pub flow_flood: u32,
    /// Incomplete flows per minute as client.
    pub scan_detection: u32,
    /// Client or server score.
    pub score_threshold: u32,
    /// Total score that makes a host dangerous when held for `dangerous_host_secs`.
    pub dangerous_host_score: u32,
    /// Seconds the score must stay above `dangerous_host_score` (ntopng: 5 runs of 60 s).
    pub dangerous_host_secs: u64,
}

impl Default for HostChecksConfig {
    fn default() -> Self {
        Self {
            syn_scan: 256,
            flow_flood: 256,
            scan_detection: 32,
            score_threshold: 5000,
            dangerous_host_score: 1000,
            dangerous_host_secs: 300,
        }
    }
}

const NS: u64 = 1_000_000_000;

/// A sliding-window rate over two buckets of `width_ns`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Window {
    bucket: u64,
    current: u32,
    previous: u32,
}

impl Window {
    /// Adds one event at `t_ns` (events older than the current bucket count in it).
    pub fn add(&mut self, t_ns: u64, width_ns: u64) {
        self.roll(t_ns, width_ns);
        self.current = self.current.saturating_add(1);
    }

    fn roll(&mut self, t_ns: u64, width_ns: u64) {
        let b = t_ns / width_ns;
        if b > self.bucket {
            self.previous = if b == self.bucket + 1 {
                self.current
            } else {
                0
            };
            self.current = 0;
            self.bucket = b;
        }
    }

    /// Events in the window ending at `t_ns`.
    pub fn value(&self, t_ns: u64, width_ns: u64) -> u32 {
        let b = t_ns / width_ns;
        let (cur, prev) = match b.saturating_sub(self.bucket) {
            0 => (self.current, self.previous),
            1 => (0, self.current),
            _ => (0, 0),
        };
        let into = u128::from(t_ns % width_ns);
        let weight = u128::from(width_ns) - into;
        let prev_part = u128::from(prev) * weight / u128::from(width_ns);
        cur.saturating_add(u32::try_from(prev_part).unwrap_or(u32::MAX))
    }
}

/// What one flow told the host checks about one host.
#[derive(Clone, Copy, Debug, Default)]
pub struct FlowFacts {
    /// The host is the flow's client.
    pub as_client: bool,
    /// First record of the flow for this host.
    pub new_flow: bool,
    /// A TCP SYN without SYN/ACK in return (counted once per flow, on its final record).
    pub unanswered_syn: bool,
    /// The flow ended without an answer or without a TCP handshake.
    pub incomplete: bool,
    /// Flow time, ns.
    pub t_ns: u64,
}

/// One host check's state change.
#[derive(Clone, Debug, PartialEq)]
pub struct HostCheckEvent {
    /// Alert type (`syn_scan`...).
    pub alert_type: &'static str,
    /// Which side: `client` or `server` (the attacker and victim variants are distinct alerts).
    pub side: &'static str,
    /// Engaged (true) or released (false).
    pub engaged: bool,
    /// The value measured.
    pub value: u64,
    /// The threshold crossed.
    pub threshold: u64,
    /// Client share of the score, percent.
    pub client_pct: u8,
    /// Attacker/victim flags (client_* stand for the host).
    pub roles: Roles,
}

/// The host checks' state of one host.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostCheckState {
    syn_out: Window,
    syn_in: Window,
    flows_out: Window,
    flows_in: Window,
    incomplete: Window,
    dangerous_since: Option<u64>,
    engaged: u16,
}

/// The checks, each with its bit in `engaged`.
const CHECKS: [(&str, &str); 8] = [
    ("syn_scan", "client"),
    ("syn_scan", "server"),
    ("flow_flood", "client"),
    ("flow_flood", "server"),
    ("scan_detection", "client"),
    ("score_threshold", "client"),
    ("score_threshold", "server"),
    ("dangerous_host", "client"),
];

const MINUTE: u64 = 60 * NS;
const SECOND: u64 = NS;

impl HostCheckState {
    /// Counts one flow's facts.
    pub fn observe(&mut self, f: &FlowFacts) {
        let t = f.t_ns;
        if f.unanswered_syn {
            if f.as_client {
                &mut self.syn_out
            } else {
                &mut self.syn_in
            }
            .add(t, MINUTE);
        }
        if f.new_flow {
            if f.as_client {
                &mut self.flows_out
            } else {
                &mut self.flows_in
            }
            .add(t, SECOND);
        }
        if f.incomplete && f.as_client {
            self.incomplete.add(t, MINUTE);
        }
    }

    /// Whether any alert is engaged.
    pub fn any_engaged(&self) -> bool {
        self.engaged != 0
    }

    /// Evaluates every check at `t_ns` with the host's live client and server scores; returns
    /// the alerts that engage or release now.
    pub fn evaluate(
        &mut self,
        cfg: &HostChecksConfig,
        t_ns: u64,
        client_score: u64,
        server_score: u64,
        enabled: impl Fn(&str) -> bool,
    ) -> Vec<HostCheckEvent> {
        let total = client_score + server_score;
        if total > u64::from(cfg.dangerous_host_score) {
            self.dangerous_since.get_or_insert(t_ns);
        } else {
            self.dangerous_since = None;
        }
        let dangerous_for = self
            .dangerous_since
            .map_or(0, |s| t_ns.saturating_sub(s) / NS);
        let values: [(u64, u64); 8] = [
            (self.syn_out.value(t_ns, MINUTE).into(), cfg.syn_scan.into()),
            (self.syn_in.value(t_ns, MINUTE).into(), cfg.syn_scan.into()),
            (
                self.flows_out.value(t_ns, SECOND).into(),
                cfg.flow_flood.into(),
            ),
            (
                self.flows_in.value(t_ns, SECOND).into(),
                cfg.flow_flood.into(),
            ),
            (
                self.incomplete.value(t_ns, MINUTE).into(),
                cfg.scan_detection.into(),
            ),
            (client_score, cfg.score_threshold.into()),
            (server_score, cfg.score_threshold.into()),
            (
                if dangerous_for > cfg.dangerous_host_secs {
                    total
                } else {
                    0
                },
                cfg.dangerous_host_score.into(),
            ),
        ];
        let mut out = Vec::new();
        for (i, ((t, side), (value, threshold))) in CHECKS.iter().zip(values).enumerate() {
            let bit = 1u16 << i;
            let was = self.engaged & bit != 0;
            let now = value > threshold && enabled(t);
            if was == now {
                continue;
            }
            self.engaged ^= bit;
            let client = *side == "client";
            out.push(HostCheckEvent {
                alert_type: t,
                side,
                engaged: now,
                value,
                threshold,
                client_pct: if client { 100 } else { 0 },
                roles: Roles {
                    client_attacker: client,
                    client_victim: !client,
                    ..Roles::default()
                },
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(as_client: bool, t_ns: u64) -> FlowFacts {
        FlowFacts {
            as_client,
            new_flow: true,
            unanswered_syn: true,
            incomplete: true,
            t_ns,
        }
    }

    fn on(_: &str) -> bool {
        true
    }

    #[test]
    fn window_slides() {
        let mut w = Window::default();
        for i in 0..10 {
            w.add(i * NS, MINUTE);
        }
        assert_eq!(w.value(10 * NS, MINUTE), 10);
        // Half a minute into the next bucket, half of the previous one still counts.
        assert_eq!(w.value(90 * NS, MINUTE), 5);
        assert_eq!(w.value(200 * NS, MINUTE), 0);
    }

    #[test]
    fn syn_scan_engages_as_attacker_then_releases() {
        let cfg = HostChecksConfig::default();
        let mut s = HostCheckState::default();
        // 300 unanswered SYNs over 30 s: spread so that the flow flood does not fire.
        for i in 0..300u64 {
            s.observe(&facts(true, i * 100_000_000));
        }
        let ev = s.evaluate(&cfg, 30 * NS, 0, 0, on);
        let syn = ev.iter().find(|e| e.alert_type == "syn_scan").unwrap();
        assert!(syn.engaged && syn.roles.client_attacker && !syn.roles.client_victim);
        assert_eq!((syn.value, syn.threshold, syn.client_pct), (300, 256, 100));
        assert!(ev.iter().any(|e| e.alert_type == "scan_detection"));
        assert!(!ev.iter().any(|e| e.alert_type == "flow_flood"), "{ev:?}");
        // Same state, evaluated again: nothing new (idempotent).
        assert!(s.evaluate(&cfg, 30 * NS, 0, 0, on).is_empty());
        // Three minutes later the window is empty: released.
        let ev = s.evaluate(&cfg, 210 * NS, 0, 0, on);
        assert!(ev.iter().all(|e| !e.engaged));
        assert!(ev.iter().any(|e| e.alert_type == "syn_scan"));
        assert!(!s.any_engaged());
    }

    #[test]
    fn victim_side_and_below_threshold() {
        let cfg = HostChecksConfig::default();
        let mut s = HostCheckState::default();
        for i in 0..200u64 {
            s.observe(&facts(false, i * 100_000_000));
        }
        assert!(
            s.evaluate(&cfg, 20 * NS, 0, 0, on).is_empty(),
            "200 is below 256"
        );
        for i in 0..100u64 {
            s.observe(&facts(false, 20 * NS + i * 100_000_000));
        }
        let ev = s.evaluate(&cfg, 30 * NS, 0, 0, on);
        assert_eq!(ev.len(), 1, "{ev:?}");
        assert!(ev[0].roles.client_victim && ev[0].side == "server" && ev[0].client_pct == 0);
    }

    #[test]
    fn flow_flood_within_a_second() {
        let cfg = HostChecksConfig::default();
        let mut s = HostCheckState::default();
        for i in 0..300u64 {
            s.observe(&FlowFacts {
                as_client: true,
                new_flow: true,
                t_ns: 5 * NS + i * 1_000_000,
                ..FlowFacts::default()
            });
        }
        let ev = s.evaluate(&cfg, 5 * NS + 300_000_000, 0, 0, on);
        assert_eq!(ev.len(), 1);
        assert_eq!((ev[0].alert_type, ev[0].value), ("flow_flood", 300));
        assert!(!s.evaluate(&cfg, 5 * NS + 300_000_000, 0, 0, |t| t != "flow_flood")[0].engaged);
    }

    #[test]
    fn score_threshold_and_dangerous_host() {
        let cfg = HostChecksConfig::default();
        let mut s = HostCheckState::default();
        let ev = s.evaluate(&cfg, 0, 100, 5001, on);
        assert_eq!(ev.len(), 1);
        assert!(ev[0].alert_type == "score_threshold" && ev[0].roles.client_victim);
        assert!(
            s.evaluate(&cfg, 200 * NS, 100, 5001, on).is_empty(),
            "not sustained yet"
        );
        let ev = s.evaluate(&cfg, 301 * NS, 100, 5001, on);
        assert_eq!(ev[0].alert_type, "dangerous_host");
        assert!(ev[0].roles.client_attacker);
        let ev = s.evaluate(&cfg, 302 * NS, 0, 0, on);
        assert_eq!(ev.iter().filter(|e| !e.engaged).count(), 2);
    }
}
