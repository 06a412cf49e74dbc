//! Helpers shared by the engine's integration tests.

use std::sync::Arc;
use std::time::{Duration, Instant};

use netwarden_api::bus::Bus;
use netwarden_engine::Launched;
use netwarden_engine::state::StateConfig;
use tokio::sync::watch;

/// Launches the engine on `bus` with the default state and the HTTP API on a free local port.
pub async fn launch_engine(bus: Arc<dyn Bus>, shutdown: watch::Receiver<bool>) -> Launched {
    netwarden_engine::launch(
        bus,
        &StateConfig::default(),
        "127.0.0.1:0".parse().unwrap(),
        |_| {},
        shutdown,
    )
    .await
    .unwrap()
}

/// Polls `done` until it holds; fails the test after `timeout`, naming `what`.
pub async fn wait_for(what: &str, timeout: Duration, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
