//! The in-process bus: tokio channels, for standalone mode and tests.
//!
//! Delivery is lossless: a publisher waits while a subscriber's queue is full (backpressure),
//! as a JetStream consumer would make it. A subscriber whose stream was dropped is forgotten.

use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use futures::{FutureExt, future::BoxFuture};
use tokio::sync::mpsc;
use tokio_stream_shim::ReceiverStream;

use super::{Bus, Message, MessageStream, Publisher, Subscriber};
use crate::names::subject_matches;

/// Default queue length of each subscriber, in messages.
pub const DEFAULT_CAPACITY: usize = 1024;

struct Subscription {
    pattern: String,
    tx: mpsc::Sender<Message>,
}

/// In-process publish/subscribe.
#[derive(Clone)]
pub struct MemoryBus {
    subs: Arc<Mutex<Vec<Subscription>>>,
    capacity: usize,
}

impl Default for MemoryBus {
    fn default() -> Self {
        Self::new(DEFAULT_CAPACITY)
    }
}

impl MemoryBus {
    /// A bus whose subscribers queue up to `capacity` messages each.
    pub fn new(capacity: usize) -> Self {
        Self {
            subs: Arc::new(Mutex::new(Vec::new())),
            capacity: capacity.max(1),
        }
    }

    fn matching(&self, subject: &str) -> Vec<mpsc::Sender<Message>> {
        let mut subs = self.subs.lock().unwrap_or_else(PoisonError::into_inner);
        subs.retain(|s| !s.tx.is_closed());
        subs.iter()
            .filter(|s| subject_matches(&s.pattern, subject))
            .map(|s| s.tx.clone())
            .collect()
    }
}

impl Publisher for MemoryBus {
    fn publish(&self, subject: String, payload: Bytes) -> BoxFuture<'_, crate::Result<()>> {
        let targets = self.matching(&subject);
        async move {
            let msg = Message { subject, payload };
            for tx in targets {
                // A subscriber that went away between matching and sending is not an error.
                let _ = tx.send(msg.clone()).await;
            }
            Ok(())
        }
        .boxed()
    }

    fn flush(&self) -> BoxFuture<'_, crate::Result<()>> {
        async { Ok(()) }.boxed()
    }
}

impl Subscriber for MemoryBus {
    fn subscribe(&self, pattern: String) -> BoxFuture<'_, crate::Result<MessageStream>> {
        let (tx, rx) = mpsc::channel(self.capacity);
        self.subs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Subscription { pattern, tx });
        async move { Ok(Box::pin(ReceiverStream::new(rx)) as MessageStream) }.boxed()
    }
}

impl Bus for MemoryBus {
    fn is_connected(&self) -> bool {
        true
    }

    fn kind(&self) -> &'static str {
        "memory"
    }
}

/// A minimal `Stream` over an mpsc receiver (what tokio-stream's wrapper does, without the crate).
mod tokio_stream_shim {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use tokio::sync::mpsc;

    pub struct ReceiverStream<T>(mpsc::Receiver<T>);

    impl<T> ReceiverStream<T> {
        pub fn new(rx: mpsc::Receiver<T>) -> Self {
            Self(rx)
        }
    }

    impl<T> futures::Stream for ReceiverStream<T> {
        type Item = T;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
            self.0.poll_recv(cx)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    #[tokio::test]
    async fn delivers_to_matching_subscribers_only() {
        let bus = MemoryBus::new(8);
        let mut all = bus.subscribe("nw.flows.>".into()).await.unwrap();
        let mut three = bus.subscribe("nw.flows.3".into()).await.unwrap();
        bus.publish("nw.flows.1".into(), Bytes::from_static(b"a"))
            .await
            .unwrap();
        bus.publish("nw.flows.3".into(), Bytes::from_static(b"b"))
            .await
            .unwrap();
        assert_eq!(all.next().await.unwrap().payload, "a");
        assert_eq!(all.next().await.unwrap().payload, "b");
        let m = three.next().await.unwrap();
        assert_eq!(
            (m.subject.as_str(), &m.payload[..]),
            ("nw.flows.3", &b"b"[..])
        );
    }

    #[tokio::test]
    async fn dropped_subscribers_do_not_block_publishers() {
        let bus = MemoryBus::new(1);
        let sub = bus.subscribe(">".into()).await.unwrap();
        drop(sub);
        for _ in 0..10 {
            bus.publish("x".into(), Bytes::new()).await.unwrap();
        }
    }
}
