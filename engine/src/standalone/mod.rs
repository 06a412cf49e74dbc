//! Standalone mode: the sensor and the engine in one process over the in-process bus
//! (DESIGN.md section 9) — the cluster's code path except for the transport.
//!
//! The only place the engine uses the sensor (as a library). Order matters: the engine
//! subscribes before the sensor publishes, flow listeners (`--netflow`) and interfaces run until
//! shutdown and drop when the queue is full, pcap inputs block on a full queue instead of dropping
//! (nothing is lost in-process), and the report is printed only once the engine has applied
//! every batch the sensor published.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use netwarden_api::bus::{Bus, MemoryBus};
use netwarden_sensor::export::OverflowPolicy;
use netwarden_sensor::metrics::SensorMetrics;
use netwarden_sensor::pipeline::{self, Input, ProgressMode, SensorConfig};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::report::{Report, ReportFormat};
use crate::state::StateConfig;
use crate::{Error, Result};

/// How long to wait for the engine to apply what the sensor published before reporting anyway.
pub const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(120);

/// What to run.
#[derive(Clone, Debug)]
pub struct StandaloneOptions {
    /// Pcap files to replay, in order.
    pub pcaps: Vec<PathBuf>,
    /// Interfaces to capture live.
    pub interfaces: Vec<String>,
    /// Configuration directory (`--config DIR`): analysis settings and alert exclusions.
    pub config: Option<PathBuf>,
    /// UDP addresses to collect NetFlow v5/v9, IPFIX and sFlow v5 on.
    pub netflow: Vec<SocketAddr>,
    /// TCP addresses to collect IPFIX over TCP on (RFC 7011 section 10.4).
    pub ipfix_tcp: Vec<SocketAddr>,
    /// Merge window of one-way exported records, ms (0: off; see docs/collect.md).
    pub merge_window_ms: u64,
    /// sFlow sampled headers through flow tables and DPI (see docs/collect.md).
    pub sflow_flows: bool,
    /// API address.
    pub listen: SocketAddr,
    /// Exit after the report instead of serving until Ctrl-C.
    pub exit: bool,
    /// Report format.
    pub report: ReportFormat,
    /// Shards of the (in-process) cluster.
    pub shards: u32,
    /// Table sizes.
    pub state: StateConfig,
    /// The persistent store (`--data DIR`); with no input, standalone serves what it holds.
    pub data: Option<crate::store::db::StoreConfig>,
    /// API authentication (open unless `--tokens`).
    pub auth: Arc<crate::auth::Auth>,
    /// Notifications of the `NotificationEndpoint`s in `--config DIR` (none: no notifications).
    pub notifier: Option<crate::notify::Notifier>,
    /// Business metrics on `/metrics` and OTLP export (none: neither).
    pub telemetry: Option<crate::telemetry::Telemetry>,
}

/// Runs sensor and engine until the inputs are consumed (pcaps) or `shutdown` turns true (live),
/// writes the report to stdout, then serves the API until `shutdown` unless `exit` was asked.
/// Returns the report.
pub async fn run(options: StandaloneOptions, shutdown: watch::Receiver<bool>) -> Result<Report> {
    let bus = MemoryBus::default();
    let dyn_bus: Arc<dyn Bus> = Arc::new(bus);
    let analysis = options
        .config
        .as_deref()
        .map(crate::config::files::analysis_config)
        .transpose()
        .map_err(Error::Config)?;
    let sensor_metrics = Arc::new(SensorMetrics::default());
    let config_metrics = Arc::new(crate::config::ConfigMetrics::default());
    let policy_metrics = Arc::new(netwarden_sensor::policy::PolicyMetrics::default());
    let state = StateConfig {
        shards: options.shards,
        ..options.state.clone()
    };
    // Alerts the engine publishes go past the notifier (the sensor's flows do not).
    let engine_bus = match &options.notifier {
        Some(n) => crate::notify::tap::TapBus::wrap(Arc::clone(&dyn_bus), n.clone()),
        None => Arc::clone(&dyn_bus),
    };
    let launched = crate::launch_secured(
        engine_bus,
        &state,
        options.data.as_ref(),
        options.listen,
        |r| {
            sensor_metrics.register(r);
            config_metrics.register(r);
            policy_metrics.register(r);
            if let Some(n) = &options.notifier {
                n.metrics().register(r);
            }
            if let Some(t) = &options.telemetry {
                t.register(r);
            }
        },
        Arc::clone(&options.auth),
        shutdown.clone(),
    )
    .await?;
    let exporter = options
        .telemetry
        .as_ref()
        .map(|t| t.start(launched.engine.clone(), shutdown.clone()));
    // Exclusions made in the web UI are written to the configuration directory.
    launched.ui.set_config_dir(options.config.clone());
    if let Some(config) = analysis {
        info!("analysis configuration loaded");
        launched
            .engine
            .state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .configure_analysis(config, crate::exclusions::Exclusions::default());
    }
    // Exclusions (and the other kinds) come through nw-config, as in a cluster.
    let live_config = match options.config.as_deref() {
        Some(dir) => Some(
            crate::config::start_dir(
                launched.engine.clone(),
                dir,
                config_metrics,
                shutdown.clone(),
            )
            .await,
        ),
        None => None,
    };
    if let Some(n) = &options.notifier {
        let _ = launched.engine.notifier.set(n.clone());
    }
    let _notify = match (&options.notifier, &live_config) {
        (Some(n), Some(live)) => Some(n.follow(live.snapshot.clone(), shutdown.clone())),
        _ => None,
    };
    if options.report == ReportFormat::Text {
        // stderr: stdout belongs to the report.
        eprintln!("API on http://{}", launched.addr);
    }

    let live = !options.interfaces.is_empty()
        || !options.netflow.is_empty()
        || !options.ipfix_tcp.is_empty();
    let inputs: Vec<Input> = options
        .pcaps
        .iter()
        .cloned()
        .map(Input::Pcap)
        .chain(options.interfaces.iter().cloned().map(Input::Interface))
        .chain(options.netflow.iter().copied().map(Input::Netflow))
        .chain(options.ipfix_tcp.iter().copied().map(Input::IpfixTcp))
        .collect();
    let mut listener = netwarden_sensor::collect::ListenerConfig::default();
    listener.collector.merge_window_ms = options.merge_window_ms;
    listener.collector.sflow_flow_table = options.sflow_flows;
    let config = SensorConfig {
        listener,
        sensor_name: pipeline::default_sensor_name(),
        shards: options.shards,
        // A file can wait for the engine; a live interface must not stall the capture.
        overflow: if live {
            SensorConfig::default().overflow
        } else {
            OverflowPolicy::Block
        },
        progress: if options.report == ReportFormat::Json {
            ProgressMode::Quiet
        } else {
            ProgressMode::Auto
        },
        ..SensorConfig::default()
    };
    // A live run (interfaces, flow listeners) also applies the `InterfacePolicy` entries of
    // `--config DIR` to this machine, through the sensor's policy follower; a replay does not.
    let policies = match (&live_config, live && options.pcaps.is_empty()) {
        (Some(lc), true) => lc.buckets.clone().map(|(config_kv, status_kv)| {
            tokio::spawn(netwarden_sensor::policy::run(
                netwarden_sensor::policy::Buckets::Given {
                    config: Arc::new(config_kv),
                    status: Arc::new(status_kv),
                },
                netwarden_sensor::policy::PolicyOptions {
                    node: config.sensor_name.clone(),
                    labels: None,
                    labels_file: None,
                    host_ip: None,
                },
                config.clone(),
                Arc::clone(&dyn_bus),
                Arc::clone(&sensor_metrics),
                policy_metrics,
                shutdown.clone(),
            ))
        }),
        _ => None,
    };
    // No input (only `--data DIR`): report and serve what the store holds.
    let summary = if inputs.is_empty() {
        info!("no input: serving the stored alerts and flow history");
        None
    } else {
        let summary = pipeline::run(
            inputs,
            config,
            Arc::clone(&dyn_bus),
            sensor_metrics,
            shutdown.clone(),
        )
        .await
        .map_err(|e| Error::Sensor(e.into()))?;
        if let Some(policies) = policies {
            // Stopped by the same shutdown: their flows are flushed before the report.
            let records = policies.await.unwrap_or_default();
            info!(records, "policy captures stopped");
        }
        info!(
            packets = summary.packets,
            flows = summary.flows,
            batches = summary.batches_published,
            "sensor finished; waiting for the engine to catch up"
        );
        wait_caught_up(
            &launched.engine,
            summary.batches_published,
            CATCH_UP_TIMEOUT,
        )
        .await;
        Some(summary)
    };

    let report = {
        let state = launched.engine.read();
        Report::build(
            &state,
            launched.engine.batches_ingested(),
            launched.engine.status.decode_errors(),
            summary,
        )
    };
    let mut stdout = std::io::stdout().lock();
    match options.report {
        ReportFormat::Text => report.write_text(&mut stdout)?,
        ReportFormat::Json => report.write_json(&mut stdout)?,
    }
    drop(stdout);

    if !options.exit {
        if options.report == ReportFormat::Text {
            eprintln!("serving http://{} until Ctrl-C", launched.addr);
        }
        let mut shutdown = shutdown;
        while !*shutdown.borrow() {
            if shutdown.changed().await.is_err() {
                break;
            }
        }
    }
    if let Some(exporter) = exporter {
        exporter.finish().await;
    }
    launched.ingest.abort();
    launched.server.abort();
    launched.engine.close().await;
    Ok(report)
}

/// Waits until the engine has applied `published` batches, or `timeout`.
async fn wait_caught_up(engine: &crate::Engine, published: u64, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while engine.batches_ingested() < published {
        if Instant::now() >= deadline {
            warn!(
                published,
                ingested = engine.batches_ingested(),
                "engine did not apply every batch in time"
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
