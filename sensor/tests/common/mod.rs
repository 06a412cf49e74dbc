//! Helpers shared by the sensor's tests against a real nats-server.

use std::sync::Arc;

use netwarden_api::bus::nats::NatsOptions;
use netwarden_api::bus::{Bus, MessageStream, NatsBus, Publisher as _, Subscriber as _};
use netwarden_api::names::FLOWS_ALL;
use netwarden_testkit::NatsServer;

/// Connects to `server` twice: a test subscriber already subscribed to every flow subject
/// (keep it alive as long as its stream is read) and the bus a sensor publishes on.
pub async fn nats_flows(server: &NatsServer) -> (NatsBus, MessageStream, Arc<dyn Bus>) {
    let connect = |name: &str| {
        let mut options = NatsOptions::new(server.url(), name);
        options.wait_for_connection = true;
        NatsBus::connect(options)
    };
    let subscriber = connect("test-subscriber").await.unwrap();
    let stream = subscriber.subscribe(FLOWS_ALL.into()).await.unwrap();
    subscriber.flush().await.unwrap();
    let bus: Arc<dyn Bus> = Arc::new(connect("sensor").await.unwrap());
    (subscriber, stream, bus)
}
