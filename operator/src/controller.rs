//! The reconcilers, one kube-rs runtime `Controller` per kind, all running [`reconcile`]:
//!
//! read the object → validate (pure, [`netwarden_api::crd::Validate`]) → check references (the
//! Secret of a `NotificationEndpoint`, by name and key only) → publish the [`ConfigEntry`] to
//! `nw-config` → fold the `nw-status` reports ([`crate::desired`]) → server-side apply the status
//! → an event when Ready changes. A finalizer deletes the entry (and its reports) on delete.
//!
//! An invalid spec is not published; whatever the key held (the last valid generation) stays,
//! so a typo in `kubectl apply` does not silently drop live configuration. Secrets never leave
//! the API server: the entry carries the reference, and no log, event or status holds a value.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{FutureExt, StreamExt, future::BoxFuture};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use netwarden_api::crd::{
    AlertExclusion, ConfigKind, ConfigStatus, InterfacePolicy, NotificationEndpoint, ServicePolicy,
    Validate, config_key, parse_status_key, reasons,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::desired::{self, Outcome};
use crate::directory::model::Reporters;
use crate::store::Stores;
use crate::{Error, FINALIZER, MANAGER, Result};
use tokio::sync::watch;

/// What every reconciler shares.
pub struct Context {
    /// The Kubernetes client (a mocked service in tests).
    pub client: Client,
    /// `nw-config` and `nw-status`.
    pub stores: Stores,
    /// Publishes Kubernetes events.
    pub recorder: Recorder,
    /// Reconcile counts, errors and durations.
    pub metrics: Arc<crate::telemetry::Metrics>,
    /// Who is expected to report on `nw-status` (from the directory publisher's Pod and Node
    /// watches); unknown until it has listed them, or when it does not run.
    pub reporters: watch::Receiver<Reporters>,
    /// Consecutive failures per object, for the exponential backoff of [`error_policy`].
    failures: std::sync::Mutex<std::collections::HashMap<String, u32>>,
}

impl Context {
    /// A context for `client` and `stores`; events are reported as `netwarden-operator`. The
    /// expected reporters are unknown (`appliedNodes` counts the reporters that reported).
    pub fn new(client: Client, stores: Stores) -> Arc<Self> {
        Self::with_reporters(client, stores, watch::channel(Reporters::default()).1)
    }

    /// As [`Context::new`], with the expected reporters from the directory publisher.
    pub fn with_reporters(
        client: Client,
        stores: Stores,
        reporters: watch::Receiver<Reporters>,
    ) -> Arc<Self> {
        let reporter = Reporter {
            controller: MANAGER.into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        let recorder = Recorder::new(client.clone(), reporter);
        Arc::new(Self {
            client,
            stores,
            recorder,
            metrics: Arc::default(),
            reporters,
            failures: std::sync::Mutex::default(),
        })
    }
}

/// A kind the operator reconciles: the generic code's view of it.
pub trait Reconciled:
    ConfigKind
    + Resource<DynamicType = ()>
    + Clone
    + Debug
    + Serialize
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
    /// The API of this kind (namespaced in `namespace`, or cluster-scoped).
    fn api(client: Client, namespace: Option<&str>) -> Api<Self>;
    /// The current status.
    fn current_status(&self) -> Option<&ConfigStatus>;
    /// The nodes whose sensors apply this object (`InterfacePolicy`); `None`: every reporter.
    fn node_selector(&self) -> Option<&LabelSelector> {
        None
    }
    /// Checks what the spec references outside itself; `Some(message)` when something is missing.
    fn check_references<'a>(
        &'a self,
        _client: &'a Client,
    ) -> BoxFuture<'a, Result<Option<String>>> {
        futures::future::ready(Ok(None)).boxed()
    }
}

macro_rules! namespaced {
    ($kind:ty) => {
        fn api(client: Client, namespace: Option<&str>) -> Api<Self> {
            Api::namespaced(client, namespace.unwrap_or("default"))
        }
        fn current_status(&self) -> Option<&ConfigStatus> {
            self.status.as_ref()
        }
    };
}

impl Reconciled for AlertExclusion {
    namespaced!(AlertExclusion);
}

impl Reconciled for ServicePolicy {
    namespaced!(ServicePolicy);
}

impl Reconciled for InterfacePolicy {
    fn api(client: Client, _namespace: Option<&str>) -> Api<Self> {
        Api::all(client)
    }
    fn current_status(&self) -> Option<&ConfigStatus> {
        self.status.as_ref()
    }
    fn node_selector(&self) -> Option<&LabelSelector> {
        self.spec.node_selector.as_ref()
    }
}

impl Reconciled for NotificationEndpoint {
    namespaced!(NotificationEndpoint);

    fn check_references<'a>(&'a self, client: &'a Client) -> BoxFuture<'a, Result<Option<String>>> {
        async move {
            let namespace = self.namespace().ok_or(Error::MissingMeta("namespace"))?;
            let reference = &self.spec.secret_key_ref;
            let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
            // Only presence is checked; the value is never read into a log, event or status.
            let found = secrets
                .get_opt(&reference.name)
                .await
                .map_err(Error::Kube)?;
            Ok(match found {
                None => Some(format!(
                    "Secret {namespace}/{} does not exist",
                    reference.name
                )),
                Some(secret)
                    if !secret
                        .data
                        .as_ref()
                        .is_some_and(|d| d.contains_key(&reference.key)) =>
                {
                    Some(format!(
                        "Secret {namespace}/{} has no key {:?}",
                        reference.name, reference.key
                    ))
                }
                Some(_) => None,
            })
        }
        .boxed()
    }
}

/// How often a published object is looked at again even without changes (status reports
/// also trigger a reconcile at once, see [`run`]).
const RESYNC: Duration = Duration::from_secs(300);
/// Requeue of an object whose Secret is missing (Secrets are not watched).
const SECRET_RETRY: Duration = Duration::from_secs(60);

/// Reconciles one object (the finalizer decides between apply and cleanup).
pub async fn reconcile<K: Reconciled>(obj: Arc<K>, ctx: Arc<Context>) -> Result<Action> {
    let key = key_of(obj.as_ref());
    let labels = crate::telemetry::Metrics::labels(K::KIND);
    ctx.metrics.reconciles.get_or_create(&labels).inc();
    let started = std::time::Instant::now();
    let api = K::api(ctx.client.clone(), obj.namespace().as_deref());
    finalizer(&api, FINALIZER, obj, |event| async {
        match event {
            Finalizer::Apply(obj) => apply(obj.as_ref(), &ctx).await,
            Finalizer::Cleanup(obj) => cleanup(obj.as_ref(), &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
    .inspect(|_| {
        ctx.metrics
            .duration
            .get_or_create(&labels)
            .observe(started.elapsed().as_secs_f64());
        ctx.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&key);
    })
}

/// Requeues a failed reconcile with exponential backoff: 5 s, 10 s, 20 s, … at most 5 min,
/// reset by the next success (the runtime coalesces repeated triggers of the same object).
#[allow(clippy::needless_pass_by_value)] // the signature `Controller::run` expects
pub fn error_policy<K: Reconciled>(obj: Arc<K>, error: &Error, ctx: Arc<Context>) -> Action {
    let failures = {
        let mut map = ctx
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = map.entry(key_of(obj.as_ref())).or_insert(0);
        *n = n.saturating_add(1);
        *n
    };
    let delay = backoff(failures);
    ctx.metrics
        .errors
        .get_or_create(&crate::telemetry::Metrics::labels(K::KIND))
        .inc();
    tracing::warn!(kind = K::KIND, name = %obj.name_any(), namespace = ?obj.namespace(), %error, failures, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// The delay before retry number `failures` (1-based).
pub fn backoff(failures: u32) -> Duration {
    let secs = 5u64.saturating_mul(1u64 << failures.saturating_sub(1).min(16));
    Duration::from_secs(secs.min(300))
}

fn key_of<K: Reconciled>(obj: &K) -> String {
    config_key(K::KIND, obj.namespace().as_deref(), &obj.name_any())
}

async fn apply<K: Reconciled>(obj: &K, ctx: &Context) -> Result<Action> {
    let key = key_of(obj);
    let generation = obj.meta().generation.unwrap_or_default();
    let outcome = match Outcome::from_errors(&obj.config_spec().validate()) {
        Some(invalid) => invalid,
        None => match obj.check_references(&ctx.client).await? {
            Some(missing) => Outcome::SecretMissing(missing),
            None => publish(obj, &key, ctx).await,
        },
    };
    tracing::info!(kind = K::KIND, %key, generation, outcome = ?outcome_name(&outcome), "reconciled");
    let reports = read_reports(&key, ctx).await;
    let expected = ctx
        .reporters
        .borrow()
        .expected(K::KIND, obj.node_selector());
    let status = desired::desired_status(
        generation,
        &outcome,
        &reports,
        expected.as_ref(),
        obj.current_status(),
        Timestamp::now(),
    );
    let previous_ready = desired::ready_of(obj.current_status());
    // An unchanged status is not written again (a burst of reports costs reads, not writes).
    if obj.current_status() != Some(&status) {
        patch_status(obj, &status, ctx).await?;
    }
    let ready = desired::ready_of(Some(&status));
    if ready != previous_ready {
        publish_event(obj, &outcome, generation, ctx).await?;
    }
    if let Some(note) = desired::new_failures(obj.current_status(), &status) {
        let event = Event {
            type_: EventType::Warning,
            reason: "ApplyFailed".into(),
            note: Some(note),
            action: "Apply".into(),
            secondary: None,
        };
        ctx.recorder
            .publish(&event, &obj.object_ref(&()))
            .await
            .map_err(Error::Kube)?;
    }
    Ok(match outcome {
        Outcome::Published => Action::requeue(RESYNC),
        Outcome::Invalid(_) => Action::await_change(),
        Outcome::SecretMissing(_) => Action::requeue(SECRET_RETRY),
        Outcome::PublishFailed(reason) => {
            return Err(Error::Kv {
                bucket: netwarden_api::names::CONFIG_BUCKET,
                reason,
            });
        }
    })
}

fn outcome_name(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Published => reasons::PUBLISHED,
        Outcome::Invalid(_) => reasons::INVALID_SPEC,
        Outcome::SecretMissing(_) => reasons::SECRET_MISSING,
        Outcome::PublishFailed(_) => reasons::PUBLISH_FAILED,
    }
}

async fn publish<K: Reconciled>(obj: &K, key: &str, ctx: &Context) -> Outcome {
    let entry = desired::config_entry(obj);
    let json = match serde_json::to_vec(&entry) {
        Ok(json) => json,
        Err(e) => return Outcome::PublishFailed(format!("cannot serialise the entry: {e}")),
    };
    match ctx.stores.config.put(key, Bytes::from(json)).await {
        Ok(()) => Outcome::Published,
        Err(e) => Outcome::PublishFailed(e.to_string()),
    }
}

/// The reports of every reporter on `key`; a malformed report is logged and skipped.
async fn read_reports(key: &str, ctx: &Context) -> Vec<(String, netwarden_api::crd::StatusReport)> {
    let entries = match ctx.stores.status.entries(&format!("{key}.*")).await {
        Ok(entries) => entries,
        Err(e) => {
            tracing::warn!(%key, error = %e, "cannot read nw-status");
            return Vec::new();
        }
    };
    entries
        .into_iter()
        .filter_map(|(k, v)| {
            let (_, reporter) = parse_status_key(&k)?;
            match serde_json::from_slice(&v) {
                Ok(report) => Some((reporter, report)),
                Err(e) => {
                    ctx.metrics.malformed_reports.inc();
                    tracing::error!(key = %k, error = %e, "ignoring a malformed nw-status report");
                    None
                }
            }
        })
        .collect()
}

async fn patch_status<K: Reconciled>(obj: &K, status: &ConfigStatus, ctx: &Context) -> Result<()> {
    let api = K::api(ctx.client.clone(), obj.namespace().as_deref());
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": status,
    });
    api.patch_status(
        &obj.name_any(),
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(patch),
    )
    .await
    .map_err(Error::Kube)?;
    Ok(())
}

async fn publish_event<K: Reconciled>(
    obj: &K,
    outcome: &Outcome,
    generation: i64,
    ctx: &Context,
) -> Result<()> {
    let (type_, note) = match outcome {
        Outcome::Published => (
            EventType::Normal,
            format!("generation {generation} published to nw-config"),
        ),
        Outcome::Invalid(m) | Outcome::SecretMissing(m) | Outcome::PublishFailed(m) => {
            (EventType::Warning, m.clone())
        }
    };
    let event = Event {
        type_,
        reason: outcome_name(outcome).into(),
        note: Some(note.chars().take(1000).collect()),
        action: "Reconcile".into(),
        secondary: None,
    };
    ctx.recorder
        .publish(&event, &obj.object_ref(&()))
        .await
        .map_err(Error::Kube)
}

async fn cleanup<K: Reconciled>(obj: &K, ctx: &Context) -> Result<Action> {
    let key = key_of(obj);
    ctx.stores
        .config
        .delete(&key)
        .await
        .map_err(|e| Error::Kv {
            bucket: "nw-config",
            reason: e.to_string(),
        })?;
    if let Ok(reports) = ctx.stores.status.entries(&format!("{key}.*")).await {
        for (k, _) in reports {
            if let Err(e) = ctx.stores.status.delete(&k).await {
                tracing::warn!(key = %k, error = %e, "cannot delete a nw-status report");
            }
        }
    }
    tracing::info!(kind = K::KIND, %key, "unpublished");
    let event = Event {
        type_: EventType::Normal,
        reason: "Unpublished".into(),
        note: Some(format!("removed {key} from nw-config")),
        action: "Cleanup".into(),
        secondary: None,
    };
    ctx.recorder
        .publish(&event, &obj.object_ref(&()))
        .await
        .map_err(Error::Kube)?;
    Ok(Action::await_change())
}

/// Object references of kind `K` whose `nw-status` reports change (to fold them at once).
async fn status_triggers<K: Reconciled>(
    stores: &Stores,
) -> Result<impl futures::Stream<Item = ObjectRef<K>> + Send + use<K>> {
    let filter = format!("{}.>", K::KIND);
    let changes = stores.status.watch(&filter).await.map_err(|e| Error::Kv {
        bucket: "nw-status",
        reason: e.to_string(),
    })?;
    Ok(changes.filter_map(|change| {
        let key = match &change {
            netwarden_api::bus::KvChange::Put { key, .. }
            | netwarden_api::bus::KvChange::Delete { key } => key,
        };
        let target = parse_status_key(key).map(|(object, _)| {
            let r = ObjectRef::new(&object.name);
            match object.namespace {
                Some(ns) => r.within(&ns),
                None => r,
            }
        });
        std::future::ready(target)
    }))
}

/// How long the runtime waits for an object's triggers to settle before reconciling it: a
/// burst of edits (a GitOps sync, a script in a loop) or of `nw-status` reports (a rollout over
/// 500 nodes) becomes one reconcile. The runtime never runs two reconciles of one object at
/// once and merges triggers that arrive while one runs.
pub const DEBOUNCE: Duration = Duration::from_secs(1);

/// The runtime settings of every controller ([`DEBOUNCE`]; at most 8 reconciles at once).
pub fn controller_config() -> kube::runtime::controller::Config {
    kube::runtime::controller::Config::default()
        .debounce(DEBOUNCE)
        .concurrency(8)
}

/// Runs the controller of kind `K` until shutdown (SIGTERM / Ctrl-C).
pub async fn run_kind<K: Reconciled>(ctx: Arc<Context>) -> Result<()> {
    let api: Api<K> = Api::all(ctx.client.clone());
    let triggers = status_triggers::<K>(&ctx.stores).await?;
    // A sensor or engine Pod that starts or stops changes `M` of every object of the kind.
    let reporters_changed = futures::stream::unfold(ctx.reporters.clone(), |mut rx| async move {
        rx.changed().await.ok()?;
        Some(((), rx))
    });
    Controller::new(api, watcher::Config::default().any_semantic())
        .with_config(controller_config())
        .reconcile_on(triggers)
        .reconcile_all_on(reporters_changed)
        .shutdown_on_signal()
        .run(reconcile::<K>, error_policy::<K>, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(kind = K::KIND, error = %e, "reconcile error");
            }
        })
        .await;
    Ok(())
}

/// Runs the four controllers until shutdown.
pub async fn run(ctx: Arc<Context>) -> Result<()> {
    let (a, b, c, d) = tokio::join!(
        run_kind::<AlertExclusion>(ctx.clone()),
        run_kind::<NotificationEndpoint>(ctx.clone()),
        run_kind::<InterfacePolicy>(ctx.clone()),
        run_kind::<ServicePolicy>(ctx),
    );
    a.and(b).and(c).and(d)
}

#[cfg(test)]
mod tests {
    use super::backoff;
    use std::time::Duration;

    #[test]
    fn backoff_doubles_up_to_five_minutes() {
        let delays: Vec<u64> = (1..=8).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(delays, [5, 10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(backoff(u32::MAX), Duration::from_secs(300));
    }
}
