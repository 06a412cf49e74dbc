//! A bus wrapper for the sharded mode: the shard runtime consumes the flow subjects from
//! JetStream itself, so the default ingest's core subscription to `nw.flows.>` must receive
//! nothing (else every flow would be applied twice). Its subscription is refused until the
//! runtime has taken its first shards (so `/readyz` says ready only then), and from then on
//! it is a stream that never yields. Everything else goes to the wrapped bus.

use std::sync::Arc;

use bytes::Bytes;
use futures::{FutureExt, future::BoxFuture};
use netwarden_api::bus::{Bus, MessageStream, Publisher, Subscriber};
use netwarden_api::names::{FLOWS_PREFIX, subject_matches};
use tokio::sync::watch;

/// See the module documentation.
pub struct ShardedBus {
    inner: Arc<dyn Bus>,
    ready: watch::Receiver<bool>,
}

impl ShardedBus {
    /// Wraps `inner`; flow subscriptions succeed once `ready` is true.
    pub fn wrap(inner: Arc<dyn Bus>, ready: watch::Receiver<bool>) -> Arc<dyn Bus> {
        Arc::new(Self { inner, ready })
    }
}

fn is_flow_pattern(pattern: &str) -> bool {
    let probe = format!("{FLOWS_PREFIX}.0");
    subject_matches(pattern, &probe)
}

impl Publisher for ShardedBus {
    fn publish(&self, subject: String, payload: Bytes) -> BoxFuture<'_, netwarden_api::Result<()>> {
        self.inner.publish(subject, payload)
    }

    fn flush(&self) -> BoxFuture<'_, netwarden_api::Result<()>> {
        self.inner.flush()
    }
}

impl Subscriber for ShardedBus {
    fn subscribe(&self, pattern: String) -> BoxFuture<'_, netwarden_api::Result<MessageStream>> {
        if !is_flow_pattern(&pattern) {
            return self.inner.subscribe(pattern);
        }
        let ready = *self.ready.borrow();
        async move {
            if ready {
                Ok(Box::pin(futures::stream::pending()) as MessageStream)
            } else {
                Err(netwarden_api::Error::Subscribe {
                    subject: pattern,
                    reason: "the shard consumers are not running yet".to_owned(),
                })
            }
        }
        .boxed()
    }
}

impl Bus for ShardedBus {
    fn is_connected(&self) -> bool {
        self.inner.is_connected()
    }

    fn kind(&self) -> &'static str {
        "nats-jetstream-sharded"
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use futures::StreamExt;
    use netwarden_api::bus::MemoryBus;

    use super::*;

    #[tokio::test]
    async fn flow_subscriptions_wait_for_the_runtime_then_stay_silent() {
        let inner = Arc::new(MemoryBus::default());
        let (tx, rx) = watch::channel(false);
        let bus = ShardedBus::wrap(inner.clone(), rx);
        assert!(bus.subscribe("nw.flows.>".into()).await.is_err());
        let mut other = bus.subscribe("nw.alerts.>".into()).await.unwrap();
        tx.send(true).unwrap();
        let mut flows = bus.subscribe("nw.flows.>".into()).await.unwrap();
        bus.publish("nw.flows.3".into(), Bytes::from_static(b"x"))
            .await
            .unwrap();
        bus.publish("nw.alerts.host.x".into(), Bytes::from_static(b"a"))
            .await
            .unwrap();
        assert_eq!(
            other.next().await.unwrap().payload,
            Bytes::from_static(b"a")
        );
        let nothing =
            tokio::time::timeout(std::time::Duration::from_millis(50), flows.next()).await;
        assert!(nothing.is_err(), "the flow subscription must stay silent");
    }
}
