//! The analysis sections of the report: hosts ranked by score with why in words, alerts by
//! type and severity with attackers and victims, anomalies.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;

use netwarden_api::alert::{AlertState, Entity, Severity};
use serde::Serialize;

use crate::score::ScoreValues;
use crate::state::State;

/// Hosts, types and anomalies listed.
pub const TOP: usize = 10;

/// A host ranked by score.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ScoredHost {
    /// Address.
    pub ip: IpAddr,
    /// VLAN id.
    pub vlan: u32,
    /// Points earned over the run.
    pub accumulated: u64,
    /// The live score at the end of the run (flow contributions leave when flows end).
    pub live: ScoreValues,
    /// Why, in words: the alert types that earned the points, most first.
    pub why: String,
}

/// One alert type's rows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AlertTypeRow {
    /// Alert type.
    pub alert_type: String,
    /// Flow or host alert.
    pub entity: Entity,
    /// Rows.
    pub alerts: u64,
    /// Highest severity seen.
    pub severity: Severity,
    /// Score of one alert.
    pub score: u32,
    /// Attackers (up to 3, most alerts first).
    pub attackers: Vec<IpAddr>,
    /// Victims (up to 3).
    pub victims: Vec<IpAddr>,
}

/// The analysis part of the report.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AnalysisSection {
    /// Flow alerts raised.
    pub flow_alerts: u64,
    /// Host alerts engaged over the run.
    pub host_alerts: u64,
    /// Host alerts still engaged.
    pub engaged: u64,
    /// Alerts dropped by exclusions.
    pub excluded: u64,
    /// Alerts per severity.
    pub by_severity: BTreeMap<String, u64>,
    /// Alert types, most rows first.
    pub by_type: Vec<AlertTypeRow>,
    /// Hosts ranked by points earned.
    pub top_hosts_by_score: Vec<ScoredHost>,
    /// Anomaly alerts (messages).
    pub anomalies: Vec<String>,
}

/// Per type: entity, rows, highest severity, score, attackers and victims with counts.
type TypeAcc = (
    Entity,
    u64,
    Severity,
    u32,
    BTreeMap<IpAddr, u64>,
    BTreeMap<IpAddr, u64>,
);

fn top3(m: BTreeMap<IpAddr, u64>) -> Vec<IpAddr> {
    let mut v: Vec<_> = m.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v.into_iter().take(3).map(|(ip, _)| ip).collect()
}

impl AnalysisSection {
    /// Builds the section from the state.
    pub fn build(state: &State) -> Self {
        let an = &state.analysis;
        let now = an.now_ns;
        let mut s = Self {
            flow_alerts: an.counters.flow_alerts,
            host_alerts: an.counters.host_alerts_engaged,
            excluded: an.counters.excluded,
            ..Self::default()
        };
        let mut types: BTreeMap<String, TypeAcc> = BTreeMap::new();
        for row in an.store.iter() {
            let a = &row.alert;
            s.engaged += u64::from(a.state == AlertState::Engaged);
            let sev = serde_json::to_value(a.severity)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            *s.by_severity.entry(sev).or_default() += 1;
            let t = types.entry(a.alert_type.clone()).or_insert_with(|| {
                (
                    a.entity,
                    0,
                    a.severity,
                    a.score,
                    BTreeMap::new(),
                    BTreeMap::new(),
                )
            });
            t.1 += 1;
            t.2 = t.2.max(a.severity);
            let (client, server) = match &a.flow {
                Some(f) => (f.client_addr(), f.server_addr()),
                None => (a.entity_value.parse().ok(), None),
            };
            let r = a.roles;
            for (ip, attacker, victim) in [
                (client, r.client_attacker, r.client_victim),
                (server, r.server_attacker, r.server_victim),
            ] {
                let Some(ip) = ip else { continue };
                if attacker {
                    *t.4.entry(ip).or_default() += 1;
                }
                if victim {
                    *t.5.entry(ip).or_default() += 1;
                }
            }
            // Every DES alert: host score/flows/bytes/peers and observation-point series.
            if a.anomaly.is_some() && s.anomalies.len() < TOP {
                s.anomalies
                    .push(format!("{}: {}", a.entity_value, a.message));
            }
        }
        s.by_type = types
            .into_iter()
            .map(
                |(alert_type, (entity, alerts, severity, score, att, vic))| AlertTypeRow {
                    alert_type,
                    entity,
                    alerts,
                    severity,
                    score,
                    attackers: top3(att),
                    victims: top3(vic),
                },
            )
            .collect();
        s.by_type.sort_by(|a, b| {
            b.alerts
                .cmp(&a.alerts)
                .then_with(|| a.alert_type.cmp(&b.alert_type))
        });
        let mut hosts: Vec<ScoredHost> = an
            .scores
            .hosts()
            .filter(|(_, h)| h.accumulated > 0)
            .map(|(k, h)| {
                let mut by = h.accumulated_by.clone();
                by.sort_by(|a, b| {
                    b.points
                        .cmp(&a.points)
                        .then_with(|| a.alert_type.cmp(&b.alert_type))
                });
                let mut why = String::new();
                for (i, a) in by.iter().take(4).enumerate() {
                    if i > 0 {
                        why.push_str("; ");
                    }
                    let side = if a.as_client {
                        "as client"
                    } else {
                        "as server"
                    };
                    let plural = if a.alerts == 1 { "" } else { "s" };
                    let _ = write!(
                        why,
                        "{} pts from {} {} alert{plural} {side}",
                        a.points, a.alerts, a.alert_type
                    );
                }
                if by.len() > 4 {
                    let _ = write!(why, "; {} more types", by.len() - 4);
                }
                ScoredHost {
                    ip: k.ip,
                    vlan: k.vlan,
                    accumulated: h.accumulated,
                    live: h.gauges.values(now),
                    why,
                }
            })
            .collect();
        hosts.sort_by(|a, b| {
            b.accumulated
                .cmp(&a.accumulated)
                .then_with(|| (a.ip, a.vlan).cmp(&(b.ip, b.vlan)))
        });
        hosts.truncate(TOP);
        s.top_hosts_by_score = hosts;
        s
    }

    /// Writes the section as text.
    pub fn write_text(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        writeln!(out, "Alerts")?;
        writeln!(
            out,
            "  flow alerts {}, host alerts {} ({} engaged), excluded {}",
            self.flow_alerts, self.host_alerts, self.engaged, self.excluded
        )?;
        let sev: Vec<String> = self
            .by_severity
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        writeln!(
            out,
            "  by severity: {}",
            if sev.is_empty() {
                "none".to_owned()
            } else {
                sev.join(", ")
            }
        )?;
        writeln!(
            out,
            "  {:<38} {:>6} {:>9} {:>5}  attackers -> victims",
            "type", "alerts", "severity", "score"
        )?;
        for t in &self.by_type {
            let ips = |v: &[IpAddr]| {
                if v.is_empty() {
                    "-".to_owned()
                } else {
                    v.iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(" ")
                }
            };
            let sev = serde_json::to_value(t.severity)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            writeln!(
                out,
                "  {:<38} {:>6} {:>9} {:>5}  {} -> {}",
                t.alert_type,
                t.alerts,
                sev,
                t.score,
                ips(&t.attackers),
                ips(&t.victims)
            )?;
        }
        writeln!(out)?;
        writeln!(out, "Top hosts by score")?;
        writeln!(out, "  {:<40} {:>7} {:>6}  why", "host", "points", "live")?;
        for h in &self.top_hosts_by_score {
            writeln!(
                out,
                "  {:<40} {:>7} {:>6}  {}",
                h.ip.to_string(),
                h.accumulated,
                h.live.total,
                h.why
            )?;
        }
        writeln!(out)?;
        if !self.anomalies.is_empty() {
            writeln!(out, "Anomalies")?;
            for a in &self.anomalies {
                writeln!(out, "  {a}")?;
            }
            writeln!(out)?;
        }
        Ok(())
    }
}
