//! Live updates: a Server-Sent Events stream of the headline numbers, at most one event per
//! [`PERIOD`] per connection (and a heartbeat every [`HEARTBEAT`] when nothing changed). The
//! page's script updates the numbers it shows and re-renders the page's main part when the
//! data changed (at most every few seconds), so pages stay current without a reload.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::Ui;

/// Shortest time between two events of one stream.
pub const PERIOD: Duration = Duration::from_secs(2);
/// Longest silence: an unchanged snapshot is sent again after this.
pub const HEARTBEAT: Duration = Duration::from_secs(20);
/// Streams open at once at most (each polls the state every [`PERIOD`]); more get a 503 and
/// the browser's `EventSource` retries.
pub const MAX_STREAMS: usize = 64;

/// Streams open now.
static OPEN: AtomicUsize = AtomicUsize::new(0);

/// Counts one open stream until dropped (with the stream).
struct Slot;

impl Slot {
    fn take() -> Option<Self> {
        OPEN.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < MAX_STREAMS).then_some(n + 1)
        })
        .ok()
        .map(|_| Self)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        OPEN.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What one event carries.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    /// Records applied so far (changes whenever data arrives).
    pub records: u64,
    /// Latest flow time, ns.
    pub now_ns: u64,
    /// The network's score.
    pub score: u64,
    /// Alerts kept in memory.
    pub alerts: u64,
    /// Hosts.
    pub hosts: u64,
    /// Flows seen.
    pub flows: u64,
}

/// The headline numbers now.
pub fn snapshot(ui: &Ui) -> Snapshot {
    let st = ui.api.engine.read();
    let now = st.analysis.now_ns;
    Snapshot {
        records: st.totals.records,
        now_ns: now,
        score: st.analysis.scores.total.values(now).total,
        alerts: st.analysis.store.len() as u64,
        hosts: st.hosts.len() as u64,
        flows: st.totals.flows,
    }
}

/// `GET /ui/live`.
pub async fn stream(State(ui): State<Ui>) -> Response {
    let Some(slot) = Slot::take() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "too many live streams").into_response();
    };
    let s = futures::stream::unfold(
        (ui, None::<Snapshot>, Duration::ZERO, slot),
        |(ui, last, quiet, slot)| async move {
            let mut quiet = quiet;
            loop {
                if last.is_some() {
                    tokio::time::sleep(PERIOD).await;
                }
                let snap = snapshot(&ui);
                if last.as_ref() != Some(&snap) || quiet >= HEARTBEAT {
                    let ev = Event::default()
                        .event("snapshot")
                        .json_data(&snap)
                        .unwrap_or_else(|_| Event::default().comment("unencodable"));
                    return Some((
                        Ok::<_, Infallible>(ev),
                        (ui, Some(snap), Duration::ZERO, slot),
                    ));
                }
                quiet += PERIOD;
            }
        },
    );
    Sse::new(s).keep_alive(KeepAlive::default()).into_response()
}
