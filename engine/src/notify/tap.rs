//! Where the notifier meets the engine: [`TapBus`] wraps the bus the engine publishes alerts
//! on and hands every alert this engine publishes (`nw.alerts.<entity>.<type>`) to
//! [`Notifier::on_alert`] before passing the message on. So each replica notifies about the
//! alerts it raised itself (no replica sees another's), the ingest shell needs no change, and
//! standalone and cluster share the path. `on_alert` never blocks the publisher.

use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use netwarden_api::alert::Alert;
use netwarden_api::bus::{Bus, MessageStream, Publisher, Subscriber};
use netwarden_api::names::ALERTS_PREFIX;

use super::Notifier;

/// A bus that shows published alerts to a notifier.
pub struct TapBus {
    inner: Arc<dyn Bus>,
    notifier: Notifier,
}

impl TapBus {
    /// Wraps `inner`.
    pub fn wrap(inner: Arc<dyn Bus>, notifier: Notifier) -> Arc<dyn Bus> {
        Arc::new(Self { inner, notifier })
    }
}

impl Publisher for TapBus {
    fn publish(&self, subject: String, payload: Bytes) -> BoxFuture<'_, netwarden_api::Result<()>> {
        if subject
            .strip_prefix(ALERTS_PREFIX)
            .is_some_and(|rest| rest.starts_with('.'))
        {
            match serde_json::from_slice::<Alert>(&payload) {
                Ok(alert) => self.notifier.on_alert(&alert),
                Err(e) => tracing::debug!(error = %e, "an alert on the bus does not decode"),
            }
        }
        self.inner.publish(subject, payload)
    }

    fn flush(&self) -> BoxFuture<'_, netwarden_api::Result<()>> {
        self.inner.flush()
    }
}

impl Subscriber for TapBus {
    fn subscribe(&self, pattern: String) -> BoxFuture<'_, netwarden_api::Result<MessageStream>> {
        self.inner.subscribe(pattern)
    }
}

impl Bus for TapBus {
    fn is_connected(&self) -> bool {
        self.inner.is_connected()
    }

    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
}
