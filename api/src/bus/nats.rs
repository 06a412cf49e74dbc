//! The NATS bus (core NATS publish/subscribe through async-nats).
//!
//! The client reconnects by itself, forever; connecting at start does not fail when the server
//! is down (`retry_on_initial_connect`), so a sensor started before NATS keeps capturing.

use std::time::Duration;

use bytes::Bytes;
use futures::{FutureExt, StreamExt, future::BoxFuture};

use super::{Bus, Message, MessageStream, Publisher, Subscriber};
use crate::{Error, Result};

/// Options of a NATS connection.
#[derive(Debug, Clone)]
pub struct NatsOptions {
    /// Server URL(s), comma-separated (`nats://127.0.0.1:4222`).
    pub url: String,
    /// Client name shown by the server (`netwarden-sensor@node1`).
    pub name: String,
    /// Wait for the first connection instead of retrying in the background.
    pub wait_for_connection: bool,
    /// Messages the client buffers while disconnected before `publish` waits.
    pub client_capacity: usize,
}

impl NatsOptions {
    /// Defaults for `url` and `name`.
    pub fn new(url: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            name: name.into(),
            wait_for_connection: false,
            client_capacity: 4096,
        }
    }
}

/// Publish/subscribe over a NATS connection.
#[derive(Clone)]
pub struct NatsBus {
    client: async_nats::Client,
}

impl NatsBus {
    /// Connects (or starts connecting in the background) to NATS.
    pub async fn connect(options: NatsOptions) -> Result<Self> {
        let mut connect = async_nats::ConnectOptions::new()
            .name(&options.name)
            .client_capacity(options.client_capacity)
            .connection_timeout(Duration::from_secs(5))
            .max_reconnects(None)
            .event_callback(|event| async move {
                match event {
                    async_nats::Event::Connected => tracing::info!("NATS connected"),
                    async_nats::Event::Disconnected => {
                        tracing::warn!("NATS disconnected; reconnecting");
                    }
                    other => tracing::debug!(event = %other, "NATS event"),
                }
            });
        if !options.wait_for_connection {
            connect = connect.retry_on_initial_connect();
        }
        let client = connect
            .connect(options.url.as_str())
            .await
            .map_err(|source| Error::Connect {
                url: options.url.clone(),
                source,
            })?;
        Ok(Self { client })
    }

    /// The underlying client, for JetStream and key-value use.
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }
}

impl Publisher for NatsBus {
    fn publish(&self, subject: String, payload: Bytes) -> BoxFuture<'_, Result<()>> {
        async move {
            self.client
                .publish(subject.clone(), payload)
                .await
                .map_err(|e| Error::Publish {
                    subject,
                    reason: e.to_string(),
                })
        }
        .boxed()
    }

    fn flush(&self) -> BoxFuture<'_, Result<()>> {
        async move {
            self.client
                .flush()
                .await
                .map_err(|e| Error::Flush(e.to_string()))
        }
        .boxed()
    }
}

impl Subscriber for NatsBus {
    fn subscribe(&self, pattern: String) -> BoxFuture<'_, Result<MessageStream>> {
        async move {
            let sub =
                self.client
                    .subscribe(pattern.clone())
                    .await
                    .map_err(|e| Error::Subscribe {
                        subject: pattern,
                        reason: e.to_string(),
                    })?;
            let stream = sub.map(|m| Message {
                subject: m.subject.to_string(),
                payload: m.payload,
            });
            Ok(Box::pin(stream) as MessageStream)
        }
        .boxed()
    }
}

impl Bus for NatsBus {
    fn is_connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    fn kind(&self) -> &'static str {
        "nats"
    }
}
