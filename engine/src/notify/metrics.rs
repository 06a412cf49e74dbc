//! Metrics of the notification pipeline (`netwarden_engine_notify_*`), per endpoint
//! (`namespace/name`, bounded by the number of `NotificationEndpoint`s) and type.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Labels of the per-endpoint metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    /// `namespace/name` of the `NotificationEndpoint`.
    pub endpoint: String,
    /// Its type: `slack`, `webhook`, `teams`, `discord`, `telegram`, `email`, `syslog`.
    pub kind: String,
}

/// Labels of the drop counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DropLabels {
    /// `namespace/name`.
    pub endpoint: String,
    /// `queue_full` or `rate_limited`.
    pub reason: String,
}

/// The metrics.
#[derive(Debug, Default)]
pub struct NotifyMetrics {
    /// Alerts delivered.
    pub sent: Family<EndpointLabels, Counter>,
    /// Notifications (messages) delivered.
    pub messages: Family<EndpointLabels, Counter>,
    /// Alerts given up after the last retry (or a permanent error).
    pub failed: Family<EndpointLabels, Counter>,
    /// Alerts dropped: queue full or rate limited.
    pub dropped: Family<DropLabels, Counter>,
    /// Delivery attempts retried.
    pub retries: Family<EndpointLabels, Counter>,
    /// Alerts not sent again within the dedup window.
    pub deduplicated: Family<EndpointLabels, Counter>,
    /// Alerts waiting in the endpoint's queue.
    pub queue_depth: Family<EndpointLabels, Gauge>,
    /// Endpoints in force.
    pub endpoints: Gauge,
}

impl NotifyMetrics {
    /// Registers under `netwarden_engine_notify_`.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("netwarden_engine_notify");
        r.register(
            "sent_alerts",
            "Alerts delivered, per endpoint",
            self.sent.clone(),
        );
        r.register(
            "sent_messages",
            "Notifications delivered, per endpoint",
            self.messages.clone(),
        );
        r.register(
            "failed_alerts",
            "Alerts given up after retries or a permanent error",
            self.failed.clone(),
        );
        r.register(
            "dropped_alerts",
            "Alerts dropped (queue full, rate limited)",
            self.dropped.clone(),
        );
        r.register("retries", "Delivery attempts retried", self.retries.clone());
        r.register(
            "deduplicated_alerts",
            "Alerts not sent again within the dedup window",
            self.deduplicated.clone(),
        );
        r.register(
            "queue_depth",
            "Alerts waiting in the endpoint's queue",
            self.queue_depth.clone(),
        );
        r.register(
            "endpoints",
            "Notification endpoints in force",
            self.endpoints.clone(),
        );
    }
}
