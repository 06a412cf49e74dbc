//! Leader election with a `coordination.k8s.io/v1` Lease, so two replicas can run: one
//! reconciles, the other waits and takes over when the leader stops renewing.
//!
//! The decision is a pure function ([`decide`]); the Lease writes use the object's
//! `resourceVersion`, so two candidates racing for an expired Lease cannot both win (the
//! loser gets 409 Conflict and waits).

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Client;
use kube::api::{Api, PostParams};

use crate::{Error, Result};

/// What a candidate does with the Lease it read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// No Lease yet: create it, holding it.
    Create,
    /// We hold it: renew.
    Renew,
    /// Someone else held it and stopped renewing: take it over.
    TakeOver,
    /// Someone else holds it: wait.
    Wait,
}

/// Decides from the current Lease (if any), our identity and the time.
pub fn decide(lease: Option<&LeaseSpec>, me: &str, now: Timestamp) -> Decision {
    let Some(spec) = lease else {
        return Decision::Create;
    };
    match spec.holder_identity.as_deref() {
        Some(holder) if holder == me => Decision::Renew,
        None | Some("") => Decision::TakeOver,
        Some(_) => {
            let ttl =
                SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(15)));
            match &spec.renew_time {
                Some(MicroTime(renewed)) if *renewed + ttl > now => Decision::Wait,
                _ => Decision::TakeOver,
            }
        }
    }
}

/// A Lease-based lock held by `identity`.
pub struct LeaderLock {
    api: Api<Lease>,
    name: String,
    identity: String,
    ttl: Duration,
}

impl LeaderLock {
    /// A lock on the Lease `name` in `namespace`.
    pub fn new(client: Client, namespace: &str, name: &str, identity: &str, ttl: Duration) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.into(),
            identity: identity.into(),
            ttl,
        }
    }

    /// One attempt to acquire or renew; `Ok(true)` while we are the leader.
    pub async fn try_acquire(&self) -> Result<bool> {
        let now = Timestamp::now();
        let current = self.api.get_opt(&self.name).await.map_err(Error::Kube)?;
        let decision = decide(
            current.as_ref().and_then(|l| l.spec.as_ref()),
            &self.identity,
            now,
        );
        let ttl = i32::try_from(self.ttl.as_secs()).unwrap_or(i32::MAX);
        let result = match (decision, current) {
            (Decision::Wait, _) => return Ok(false),
            (Decision::Create, _) | (_, None) => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(self.identity.clone()),
                        lease_duration_seconds: Some(ttl),
                        acquire_time: Some(MicroTime(now)),
                        renew_time: Some(MicroTime(now)),
                        lease_transitions: Some(0),
                        ..LeaseSpec::default()
                    }),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
            (decision, Some(mut lease)) => {
                let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
                if decision == Decision::TakeOver {
                    spec.holder_identity = Some(self.identity.clone());
                    spec.acquire_time = Some(MicroTime(now));
                    spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
                    tracing::info!(lease = %self.name, "taking over the leader lease");
                }
                spec.renew_time = Some(MicroTime(now));
                spec.lease_duration_seconds = Some(ttl);
                // `replace` sends our resourceVersion: a concurrent writer makes this a 409.
                self.api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await
            }
        };
        match result {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(e) => Err(Error::Kube(e)),
        }
    }

    /// Waits until this candidate leads (retrying every third of the TTL).
    pub async fn acquire(&self) -> Result<()> {
        loop {
            match self.try_acquire().await {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "leader election attempt failed"),
            }
            tokio::time::sleep(self.ttl / 3).await;
        }
    }

    /// Renews every third of the TTL; returns when leadership is lost (the caller exits so a
    /// restarted replica never reconciles next to a new leader).
    pub async fn keep(&self) {
        loop {
            tokio::time::sleep(self.ttl / 3).await;
            match self.try_acquire().await {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => tracing::warn!(error = %e, "cannot renew the leader lease"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: &str, renewed: i64, ttl: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            renew_time: Some(MicroTime(Timestamp::from_second(renewed).unwrap())),
            lease_duration_seconds: Some(ttl),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn decisions() {
        let now = Timestamp::from_second(1000).unwrap();
        assert_eq!(decide(None, "a", now), Decision::Create);
        assert_eq!(decide(Some(&spec("a", 999, 15)), "a", now), Decision::Renew);
        assert_eq!(decide(Some(&spec("b", 990, 15)), "a", now), Decision::Wait);
        assert_eq!(
            decide(Some(&spec("b", 980, 15)), "a", now),
            Decision::TakeOver
        );
        assert_eq!(
            decide(Some(&LeaseSpec::default()), "a", now),
            Decision::TakeOver
        );
    }
}
