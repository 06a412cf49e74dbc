//! `netwarden-engine`: the engine of a cluster (`run`) or sensor and engine in one process
//! (`standalone`).

use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use netwarden_api::bus::nats::NatsOptions;
use netwarden_api::bus::{Bus, NatsBus};
use netwarden_engine::report::ReportFormat;
use netwarden_engine::standalone::{self, StandaloneOptions};
use netwarden_engine::state::StateConfig;
use tokio::sync::watch;
use tracing_subscriber::EnvFilter;

/// Netwarden engine.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Log level when `RUST_LOG` is not set (error, warn, info, debug, trace).
    #[arg(
        long,
        global = true,
        default_value = "info",
        env = "NETWARDEN_LOG_LEVEL"
    )]
    log_level: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Cluster mode: ingest flows from NATS and serve the API.
    Run(RunArgs),
    /// Sensor and engine in one process: replay pcaps, capture interfaces or collect NetFlow/
    /// IPFIX/sFlow; report, serve.
    Standalone(StandaloneArgs),
    /// API tokens: create (prints the token once), list, revoke.
    Token(netwarden_engine::auth::cli::TokenArgs),
}

/// Table sizes, shared by both modes.
#[derive(Debug, Args)]
struct TableArgs {
    /// Most hosts kept in memory.
    #[arg(long, default_value_t = StateConfig::default().max_hosts)]
    max_hosts: usize,
    /// Most active flows kept in memory.
    #[arg(long, default_value_t = StateConfig::default().max_active_flows)]
    max_active_flows: usize,
    /// Ended flows kept for drill-down.
    #[arg(long, default_value_t = StateConfig::default().history)]
    history: usize,
    /// Shards of the cluster (must match the sensors').
    #[arg(long, default_value_t = netwarden_api::names::DEFAULT_SHARDS)]
    shards: u32,
    /// Service-map learning period (`3600`, `30m`, `2h`, `7d`): new edges are allowed while it
    /// runs, undecided (a `new_service` alert) after it.
    #[arg(long, default_value = "2h", value_parser = netwarden_engine::store::db::config::parse_duration_secs)]
    servicemap_learning: u64,
    /// Most service-map edges (0: an eighth of --max-active-flows, at least 1024).
    #[arg(long, default_value_t = 0)]
    servicemap_max_edges: usize,
    /// Service-map edges idle this long (flow time) are forgotten.
    #[arg(long, default_value = "1d", value_parser = netwarden_engine::store::db::config::parse_duration_secs)]
    servicemap_idle: u64,
}

impl TableArgs {
    fn config(&self) -> StateConfig {
        StateConfig {
            max_hosts: self.max_hosts,
            max_active_flows: self.max_active_flows,
            history: self.history,
            shards: self.shards,
            servicemap: netwarden_engine::servicemap::ServiceMapConfig {
                max_edges: self.servicemap_max_edges,
                learning_secs: self.servicemap_learning,
                idle_secs: self.servicemap_idle,
                ..netwarden_engine::servicemap::ServiceMapConfig::default()
            },
        }
    }
}

/// The persistent store (alerts and ended flows on disk), shared by both modes.
#[derive(Debug, Args)]
struct StoreArgs {
    /// Data directory: alerts and a bounded history of ended flows persist there (SQLite,
    /// `DIR/netwarden.db`) and are served after a restart. Without it, they live in memory.
    #[arg(long, value_name = "DIR", env = "NETWARDEN_DATA")]
    data: Option<PathBuf>,
    /// Alert rows kept on disk (oldest deleted first).
    #[arg(long, default_value_t = netwarden_engine::store::db::config::DEFAULT_MAX_ALERTS)]
    retention_alerts: u64,
    /// Ended flows kept on disk (oldest deleted first).
    #[arg(long, default_value_t = netwarden_engine::store::db::config::DEFAULT_MAX_FLOWS)]
    retention_flows: u64,
    /// Age kept on disk, in flow time (`3600`, `12h`, `7d`, `2w`).
    #[arg(long, default_value = "7d", value_parser = netwarden_engine::store::db::config::parse_duration_secs)]
    retention_age: u64,
    /// Database size kept (`500M`, `2G`): over it the oldest flows, then alerts, go first.
    #[arg(long, default_value = "2G", value_parser = netwarden_engine::store::db::config::parse_bytes)]
    retention_size: u64,
}

impl StoreArgs {
    fn config(&self) -> Option<netwarden_engine::store::db::StoreConfig> {
        self.data
            .as_ref()
            .map(|dir| netwarden_engine::store::db::StoreConfig {
                dir: dir.clone(),
                max_alerts: self.retention_alerts,
                max_flows: self.retention_flows,
                max_age_secs: self.retention_age,
                max_bytes: self.retention_size,
                ..netwarden_engine::store::db::StoreConfig::default()
            })
    }
}

#[derive(Debug, Args)]
struct RunArgs {
    /// NATS server URL(s), comma-separated.
    #[arg(long, env = "NETWARDEN_NATS", default_value = "nats://127.0.0.1:4222")]
    nats: String,
    /// API address.
    #[arg(long, env = "NETWARDEN_LISTEN", default_value = "0.0.0.0:8080")]
    listen: SocketAddr,
    /// This replica's name in `nw-status` reports (default: $POD_NAME, $HOSTNAME, `engine`).
    #[arg(long, env = "POD_NAME")]
    replica: Option<String>,
    #[command(flatten)]
    tables: TableArgs,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    auth: netwarden_engine::auth::cli::AuthArgs,
    #[command(flatten)]
    notify: netwarden_engine::notify::cli::NotifyArgs,
    #[command(flatten)]
    shard: netwarden_engine::shard::cli::ShardArgs,
    #[command(flatten)]
    telemetry: netwarden_engine::telemetry::TelemetryArgs,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("input").required(true).multiple(true).args(["pcap", "interface", "netflow", "ipfix_tcp", "data"]))]
struct StandaloneArgs {
    /// Pcap files to replay, in order.
    #[arg(long, num_args = 1..)]
    pcap: Vec<PathBuf>,
    /// Interfaces to capture live.
    #[arg(long, num_args = 1..)]
    interface: Vec<String>,
    /// UDP addresses to collect NetFlow v5/v9, IPFIX and sFlow v5 on (until Ctrl-C).
    #[arg(long, num_args = 1.., alias = "sflow")]
    netflow: Vec<SocketAddr>,
    /// TCP addresses to collect IPFIX over TCP on (RFC 7011 section 10.4, until Ctrl-C).
    #[arg(long, num_args = 1..)]
    ipfix_tcp: Vec<SocketAddr>,
    /// Merge the two one-way NetFlow/IPFIX records of a conversation arriving within this many
    /// milliseconds into one bidirectional flow (UDP listeners; 0: off).
    #[arg(long, default_value_t = 0)]
    merge_window_ms: u64,
    /// sFlow sampled packet headers through a flow table and DPI per observation point.
    #[arg(long)]
    sflow_flows: bool,
    /// Directory of YAML configuration: `AlertExclusion` documents (the CRD spec shape) and
    /// one `kind: Analysis` document (checks, local networks, blocklists, DES); see docs/checks.md.
    #[arg(long)]
    config: Option<PathBuf>,
    /// API address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Exit after printing the report instead of serving until Ctrl-C.
    #[arg(long)]
    exit: bool,
    /// Report format; with `json`, stdout carries the JSON document only.
    #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
    report: ReportFormat,
    #[command(flatten)]
    tables: TableArgs,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    auth: netwarden_engine::auth::cli::AuthArgs,
    #[command(flatten)]
    notify: netwarden_engine::notify::cli::NotifyArgs,
    #[command(flatten)]
    telemetry: netwarden_engine::telemetry::TelemetryArgs,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&cli.log_level))
        .context("invalid --log-level")?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    if let Command::Token(args) = &cli.command {
        return netwarden_engine::auth::cli::run(
            args,
            &mut std::io::stdout().lock(),
            &mut std::io::stderr().lock(),
        )
        .context("token command failed");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start tokio")?;
    runtime.block_on(async move {
        match cli.command {
            Command::Run(args) => run(args).await,
            Command::Standalone(args) => standalone(args).await,
            Command::Token(_) => Ok(()),
        }
    })
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    // Before anything else: a cluster engine without tokens must not start by mistake.
    let auth = Arc::new(args.auth.for_run().context("API authentication")?);
    let (tx, rx) = watch::channel(false);
    tokio::spawn(signals(tx));
    let bus = NatsBus::connect(NatsOptions::new(args.nats.clone(), "netwarden-engine"))
        .await
        .with_context(|| format!("cannot connect to NATS at {}", args.nats))?;
    let nats = bus.clone();
    let bus: Arc<dyn Bus> = Arc::new(bus);
    // Notifications: every alert this replica publishes goes past the notifier.
    let notifier = netwarden_engine::notify::Notifier::new(
        args.notify.config()?,
        Arc::new(netwarden_engine::notify::metrics::NotifyMetrics::default()),
    )?;
    let bus = netwarden_engine::notify::tap::TapBus::wrap(bus, notifier.clone());
    // Sharded mode (docs/deploy.md): the shard runtime consumes NW_FLOWS; the default ingest
    // is kept away from the flow subjects.
    let sharded = args.shard.ingest == netwarden_engine::shard::cli::IngestMode::Jetstream;
    let (shard_ready, shard_ready_rx) = watch::channel(false);
    let shard_metrics = Arc::new(netwarden_engine::shard::metrics::ShardMetrics::default());
    let alerts_bus = bus.clone();
    let bus = if sharded {
        netwarden_engine::shard::bus::ShardedBus::wrap(bus, shard_ready_rx)
    } else {
        bus
    };
    let config_metrics = Arc::new(netwarden_engine::config::ConfigMetrics::default());
    let directory_metrics = Arc::new(netwarden_engine::directory::DirectoryMetrics::default());
    let telemetry = netwarden_engine::telemetry::Telemetry::new(args.telemetry.clone(), "run")
        .map_err(anyhow::Error::msg)?;
    let launched = netwarden_engine::launch_secured(
        bus,
        &args.tables.config(),
        args.store.config().as_ref(),
        args.listen,
        |r| {
            config_metrics.register(r);
            directory_metrics.register(r);
            notifier.metrics().register(r);
            shard_metrics.register(r);
            telemetry.register(r);
        },
        auth,
        rx.clone(),
    )
    .await
    .context("cannot start the engine")?;
    let replica = args
        .replica
        .filter(|r| !r.is_empty())
        .unwrap_or_else(netwarden_engine::config::default_replica_name);
    let shards = sharded.then(|| {
        netwarden_engine::shard::spawn(
            launched.engine.clone(),
            nats.client().clone(),
            alerts_bus,
            args.shard
                .options(&replica, launched.addr, args.tables.shards),
            shard_metrics,
            shard_ready,
            rx.clone(),
        )
    });
    // The service map is shared with the other replicas (nw-servicemap, docs/servicemap.md).
    let _servicemap = netwarden_engine::servicemap::share::spawn_nats(
        launched.engine.state.clone(),
        nats.client().clone(),
        &replica,
        rx.clone(),
    );
    // Who addresses are (nw-directory), then the live configuration: exclusions from
    // nw-config (pod selectors resolved through the directory), reports to nw-status.
    let directory = launched.engine.directory.clone();
    let directory_changed = netwarden_engine::directory::spawn_nats(
        directory.clone(),
        &nats,
        directory_metrics,
        rx.clone(),
    );
    let notify_shutdown = rx.clone();
    let exporter = telemetry.start(launched.engine.clone(), rx.clone());
    let live = netwarden_engine::config::spawn_nats(
        launched.engine.clone(),
        &nats,
        &replica,
        config_metrics,
        Arc::new(netwarden_engine::directory::DirectoryPods(directory)),
        Some(directory_changed),
        rx,
    );
    notifier.set_namespaces(Arc::new(
        netwarden_engine::notify::filter::DirectoryNamespaces(launched.engine.directory.clone()),
    ));
    let _notify = notifier.follow(live.snapshot.clone(), notify_shutdown);
    let _ = launched.engine.notifier.set(notifier.clone());
    tracing::info!(addr = %launched.addr, nats = %args.nats, %replica, "engine running");
    launched
        .server
        .await
        .context("API task failed")?
        .context("API server failed")?;
    let _ = launched.ingest.await;
    if let Some(shards) = shards {
        let _ = shards.await;
    }
    exporter.finish().await;
    launched.engine.close().await;
    tracing::info!("engine stopped");
    Ok(())
}

async fn standalone(args: StandaloneArgs) -> anyhow::Result<()> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(signals(tx));
    let options = StandaloneOptions {
        pcaps: args.pcap,
        interfaces: args.interface,
        config: args.config,
        netflow: args.netflow,
        ipfix_tcp: args.ipfix_tcp,
        merge_window_ms: args.merge_window_ms,
        sflow_flows: args.sflow_flows,
        listen: args.listen,
        exit: args.exit,
        report: args.report,
        shards: args.tables.shards,
        state: args.tables.config(),
        data: args.store.config(),
        auth: Arc::new(
            args.auth
                .for_standalone(args.listen)
                .context("API authentication")?,
        ),
        notifier: Some(netwarden_engine::notify::Notifier::new(
            args.notify.config()?,
            Arc::new(netwarden_engine::notify::metrics::NotifyMetrics::default()),
        )?),
        telemetry: Some(
            netwarden_engine::telemetry::Telemetry::new(args.telemetry, "standalone")
                .map_err(anyhow::Error::msg)?,
        ),
    };
    standalone::run(options, rx)
        .await
        .context("standalone run failed")?;
    Ok(())
}

/// Turns Ctrl-C or SIGTERM into the shutdown signal.
async fn signals(tx: watch::Sender<bool>) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot listen for SIGTERM");
                    let _ = ctrl_c.await;
                    let _ = tx.send(true);
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down");
    let _ = tx.send(true);
}
