//! Pure functions: from an object (and what the sensors and engines reported) to its
//! `nw-config` entry and its status. No I/O, no clock: the caller passes `now`.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::{Resource, ResourceExt};
use netwarden_api::crd::{
    ConfigEntry, ConfigKind, ConfigStatus, FieldError, NodeError, StatusReport, condition_types,
    reasons, validate::describe,
};

/// What the reconciler did with the spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Valid and written to `nw-config`.
    Published,
    /// Breaks a rule; not published. The message names the fields.
    Invalid(String),
    /// A referenced Secret or key is missing; not published.
    SecretMissing(String),
    /// Valid, but the KV write failed (retried with backoff).
    PublishFailed(String),
}

impl Outcome {
    /// From validation errors: [`Outcome::Invalid`] when there are any.
    pub fn from_errors(errors: &[FieldError]) -> Option<Self> {
        (!errors.is_empty()).then(|| Self::Invalid(describe(errors)))
    }

    /// `(status, reason, message)` of the Ready condition.
    fn ready(&self) -> (&'static str, &'static str, String) {
        match self {
            Self::Published => (
                "True",
                reasons::PUBLISHED,
                "validated and published to nw-config".into(),
            ),
            Self::Invalid(m) => ("False", reasons::INVALID_SPEC, m.clone()),
            Self::SecretMissing(m) => ("False", reasons::SECRET_MISSING, m.clone()),
            Self::PublishFailed(m) => ("False", reasons::PUBLISH_FAILED, m.clone()),
        }
    }
}

/// The `nw-config` entry of a valid object.
pub fn config_entry<K>(obj: &K) -> ConfigEntry<K::Spec>
where
    K: ConfigKind + Resource<DynamicType = ()>,
{
    ConfigEntry {
        api_version: K::api_version(&()).into_owned(),
        kind: K::KIND.to_string(),
        namespace: obj.namespace(),
        name: obj.name_any(),
        generation: obj.meta().generation.unwrap_or_default(),
        spec: obj.config_spec().clone(),
    }
}

/// Reports folded for one generation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    /// Reporters that applied this generation.
    pub applied: u32,
    /// Reporters that reported on this generation (applied or failed).
    pub reported: u32,
    /// Reporters still on an older generation.
    pub stale: u32,
    /// Expected reporters without any report (sorted); empty when the expected set is unknown.
    pub missing: Vec<String>,
    /// `M` of `appliedNodes: N/M`: the expected reporters when known, else every reporter
    /// that reported (this generation or an older one).
    pub total: u32,
    /// Failures, by reporter (sorted).
    pub errors: Vec<NodeError>,
}

/// Folds `(reporter, report)` pairs into counts for `generation`.
///
/// `expected`: the reporters that should apply the object (the nodes of Running sensor Pods
/// its `nodeSelector` selects, or the Running engine Pods; see [`crate::directory::model::Reporters`]).
/// When known, reports of other reporters (a deleted node, a node the policy does not select)
/// are ignored and expected reporters without a report count as not applied. When unknown
/// (`None`), the reporters that reported are the denominator.
pub fn fold_reports(
    generation: i64,
    reports: &[(String, StatusReport)],
    expected: Option<&BTreeSet<String>>,
) -> Applied {
    let mut out = Applied::default();
    let mut seen = BTreeSet::new();
    for (reporter, report) in reports {
        if expected.is_some_and(|e| !e.contains(reporter)) || !seen.insert(reporter.as_str()) {
            continue;
        }
        if report.generation != generation {
            out.stale += 1;
            continue;
        }
        out.reported += 1;
        if report.applied {
            out.applied += 1;
        } else {
            out.errors.push(NodeError {
                node: reporter.clone(),
                message: report
                    .message
                    .as_deref()
                    .unwrap_or("failed without a message")
                    .chars()
                    .take(MAX_ERROR_MESSAGE)
                    .collect(),
            });
        }
    }
    out.errors.sort_by(|a, b| a.node.cmp(&b.node));
    out.errors.truncate(MAX_ERRORS);
    out.total = match expected {
        Some(e) => {
            out.missing = e
                .iter()
                .filter(|r| !seen.contains(r.as_str()))
                .cloned()
                .collect();
            e.len() as u32
        }
        None => out.reported + out.stale,
    };
    out
}

/// At most this many per-node errors go into a status (a bad BPF filter on 500 nodes is one
/// problem; the count is in `appliedNodes`).
pub const MAX_ERRORS: usize = 20;
/// A reporter's message is cut to this many characters in the status.
pub const MAX_ERROR_MESSAGE: usize = 512;

fn condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    generation: i64,
    now: Timestamp,
    previous: &[Condition],
) -> Condition {
    // Keep the transition time while the status stays the same (Kubernetes API conventions).
    let last_transition_time = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map_or(Time(now), |c| c.last_transition_time.clone());
    Condition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: reason.to_string(),
        message,
        observed_generation: Some(generation),
        last_transition_time,
    }
}

/// The status of an object: Ready / Invalid / Applied conditions for `generation`, and where
/// it applied (`expected`: see [`fold_reports`]). `previous` is the current status (for
/// transition times).
pub fn desired_status(
    generation: i64,
    outcome: &Outcome,
    reports: &[(String, StatusReport)],
    expected: Option<&BTreeSet<String>>,
    previous: Option<&ConfigStatus>,
    now: Timestamp,
) -> ConfigStatus {
    let prev = previous
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let (ready, reason, message) = outcome.ready();
    let mut conditions = vec![condition(
        condition_types::READY,
        ready,
        reason,
        message.clone(),
        generation,
        now,
        prev,
    )];
    let invalid = matches!(outcome, Outcome::Invalid(_));
    conditions.push(if invalid {
        condition(
            condition_types::INVALID,
            "True",
            reasons::INVALID_SPEC,
            message,
            generation,
            now,
            prev,
        )
    } else {
        condition(
            condition_types::INVALID,
            "False",
            reasons::VALID,
            "the spec is valid".into(),
            generation,
            now,
            prev,
        )
    });
    let applied = fold_reports(generation, reports, expected);
    let (status, reason, message) = if applied.total == 0 || applied.reported == 0 {
        let mut m = if expected.is_some() && applied.total == 0 {
            "no sensor or engine is expected to apply it (none running, or none selected)"
                .to_string()
        } else {
            "no sensor or engine has reported this generation yet".to_string()
        };
        if applied.total > 0 {
            let _ = write!(m, " (0/{})", applied.total);
        }
        ("Unknown", reasons::NO_REPORTS, m)
    } else if applied.applied == applied.total {
        (
            "True",
            reasons::ALL_APPLIED,
            format!("applied on {}/{}", applied.applied, applied.total),
        )
    } else {
        let mut m = format!("applied on {}/{}", applied.applied, applied.total);
        if applied.stale > 0 {
            let _ = write!(m, ", {} still on an older generation", applied.stale);
        }
        if !applied.missing.is_empty() {
            let names: Vec<&str> = applied.missing.iter().take(5).map(String::as_str).collect();
            let more = applied.missing.len().saturating_sub(names.len());
            let _ = write!(m, ", no report from {}", names.join(", "));
            if more > 0 {
                let _ = write!(m, " and {more} more");
            }
        }
        if let Some(first) = applied.errors.first() {
            let _ = write!(m, "; {}: {}", first.node, first.message);
        }
        ("False", reasons::PARTIALLY_APPLIED, m)
    };
    conditions.push(condition(
        condition_types::APPLIED,
        status,
        reason,
        message,
        generation,
        now,
        prev,
    ));
    ConfigStatus {
        observed_generation: Some(generation),
        conditions,
        applied_nodes: (applied.total > 0)
            .then(|| format!("{}/{}", applied.applied, applied.total)),
        applied_count: applied.applied,
        reported_count: applied.reported,
        errors: applied.errors,
    }
}

/// The note of an `ApplyFailed` warning event when `next` has failures `previous` did not
/// (a reporter that newly failed, or failed with another message); `None` otherwise, so a
/// failure is announced once, not on every reconcile.
pub fn new_failures(previous: Option<&ConfigStatus>, next: &ConfigStatus) -> Option<String> {
    let before = previous.map(|s| s.errors.as_slice()).unwrap_or_default();
    let fresh: Vec<&NodeError> = next.errors.iter().filter(|e| !before.contains(e)).collect();
    let first = fresh.first()?;
    let mut note = format!(
        "generation {}: {}: {}",
        next.observed_generation.unwrap_or_default(),
        first.node,
        first.message
    );
    if fresh.len() > 1 {
        let _ = write!(note, " (and {} more)", fresh.len() - 1);
    }
    Some(note.chars().take(1000).collect())
}

/// The Ready condition of a status, as `(status, reason)`, to decide whether to emit an event.
pub fn ready_of(status: Option<&ConfigStatus>) -> Option<(String, String, Option<i64>)> {
    status?
        .conditions
        .iter()
        .find(|c| c.type_ == condition_types::READY)
        .map(|c| (c.status.clone(), c.reason.clone(), c.observed_generation))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(generation: i64, applied: bool, message: Option<&str>) -> StatusReport {
        StatusReport {
            generation,
            applied,
            message: message.map(Into::into),
        }
    }

    #[test]
    fn two_of_three_nodes_applied() {
        let reports = vec![
            ("node-a".to_string(), report(3, true, None)),
            ("node-b".to_string(), report(3, true, None)),
            (
                "node-c".to_string(),
                report(3, false, Some("interface ens9 does not exist")),
            ),
        ];
        let status = desired_status(
            3,
            &Outcome::Published,
            &reports,
            None,
            None,
            Timestamp::UNIX_EPOCH,
        );
        assert_eq!(status.applied_nodes.as_deref(), Some("2/3"));
        assert_eq!(
            status.errors,
            vec![NodeError {
                node: "node-c".into(),
                message: "interface ens9 does not exist".into()
            }]
        );
        let applied = status
            .conditions
            .iter()
            .find(|c| c.type_ == "Applied")
            .unwrap();
        assert_eq!(applied.status, "False");
        assert!(
            applied
                .message
                .contains("applied on 2/3; node-c: interface ens9 does not exist"),
            "{}",
            applied.message
        );
        assert!(
            status
                .conditions
                .iter()
                .all(|c| c.observed_generation == Some(3))
        );
    }

    #[test]
    fn older_generations_are_not_counted_as_applied() {
        let reports = vec![
            ("a".to_string(), report(1, true, None)),
            ("b".to_string(), report(2, true, None)),
        ];
        let status = desired_status(
            2,
            &Outcome::Published,
            &reports,
            None,
            None,
            Timestamp::UNIX_EPOCH,
        );
        assert_eq!(status.applied_nodes.as_deref(), Some("1/2"));
    }

    #[test]
    fn expected_reporters_are_the_denominator() {
        let expected: BTreeSet<String> = ["node-a", "node-b", "node-c", "node-d"]
            .map(String::from)
            .into();
        let reports = vec![
            ("node-a".to_string(), report(4, true, None)),
            ("node-b".to_string(), report(3, true, None)),
            (
                "node-c".to_string(),
                report(4, false, Some("bad BPF filter")),
            ),
            // A node that left the cluster (or is not selected): ignored.
            ("node-gone".to_string(), report(4, true, None)),
        ];
        let status = desired_status(
            4,
            &Outcome::Published,
            &reports,
            Some(&expected),
            None,
            Timestamp::UNIX_EPOCH,
        );
        assert_eq!(status.applied_nodes.as_deref(), Some("1/4"));
        assert_eq!((status.applied_count, status.reported_count), (1, 2));
        let applied = &status.conditions[2];
        assert_eq!(
            applied.message,
            "applied on 1/4, 1 still on an older generation, no report from node-d; node-c: bad BPF filter"
        );
        let nobody = desired_status(
            4,
            &Outcome::Published,
            &[],
            Some(&BTreeSet::new()),
            None,
            Timestamp::UNIX_EPOCH,
        );
        assert_eq!(nobody.applied_nodes, None);
        assert_eq!(nobody.conditions[2].reason, "NoReports");
        let all = desired_status(
            4,
            &Outcome::Published,
            &[("node-a".to_string(), report(4, true, None))],
            Some(&["node-a".to_string()].into()),
            None,
            Timestamp::UNIX_EPOCH,
        );
        assert_eq!(
            (
                all.applied_nodes.as_deref(),
                all.conditions[2].status.as_str()
            ),
            (Some("1/1"), "True")
        );
    }

    #[test]
    fn new_failures_are_announced_once() {
        let failing = |errors: &[(&str, &str)]| ConfigStatus {
            observed_generation: Some(3),
            errors: errors
                .iter()
                .map(|(n, m)| NodeError {
                    node: (*n).into(),
                    message: (*m).into(),
                })
                .collect(),
            ..ConfigStatus::default()
        };
        let one = failing(&[("node-c", "no ens9")]);
        assert_eq!(
            new_failures(None, &one).as_deref(),
            Some("generation 3: node-c: no ens9")
        );
        assert_eq!(new_failures(Some(&one), &one), None);
        let two = failing(&[
            ("node-a", "bad filter"),
            ("node-c", "no ens9"),
            ("node-d", "x"),
        ]);
        assert_eq!(
            new_failures(Some(&one), &two).as_deref(),
            Some("generation 3: node-a: bad filter (and 1 more)")
        );
        assert_eq!(new_failures(Some(&two), &failing(&[])), None);
    }

    #[test]
    fn invalid_specs_say_why_and_keep_transition_times() {
        let outcome = Outcome::Invalid("spec.hosts[0].cidr: bad".into());
        let first = desired_status(1, &outcome, &[], None, None, Timestamp::UNIX_EPOCH);
        let ready = &first.conditions[0];
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "InvalidSpec")
        );
        assert_eq!(first.conditions[1].status, "True");
        let later = Timestamp::from_second(1000).unwrap();
        let second = desired_status(1, &outcome, &[], None, Some(&first), later);
        assert_eq!(
            second.conditions[0].last_transition_time,
            Time(Timestamp::UNIX_EPOCH)
        );
        let fixed = desired_status(2, &Outcome::Published, &[], None, Some(&second), later);
        assert_eq!(fixed.conditions[0].last_transition_time, Time(later));
        assert_eq!(fixed.conditions[2].status, "Unknown");
    }
}
