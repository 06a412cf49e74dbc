//! `netwarden-sensor`: capture flows from interfaces or pcap files and collect NetFlow/IPFIX/
//! sFlow exports, and publish them on NATS; print the flows of a pcap or of a flow listener;
//! benchmark decode + flow table.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};
use netwarden_api::bus::{Bus, NatsBus, nats::NatsOptions};
use netwarden_api::flow::{FlowRecord, proto};
use netwarden_sensor::collect::{
    Listener, ListenerConfig, Output, TcpCollector, TcpListenerConfig,
};
use netwarden_sensor::export::OverflowPolicy;
use netwarden_sensor::flow::FlowConfig;
use netwarden_sensor::metrics::SensorMetrics;
use netwarden_sensor::pipeline::{self, Input, ProgressMode, SensorConfig};
use tokio::sync::watch;

#[derive(Debug, Parser)]
#[command(
    name = "netwarden-sensor",
    version,
    about = "Netwarden sensor: packets to flow records on the bus"
)]
struct Cli {
    /// Log filter (`info`, `debug`, `netwarden_sensor=trace`...); overrides RUST_LOG.
    #[arg(long, global = true)]
    log_level: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Capture from interfaces or pcap files and/or collect NetFlow/IPFIX/sFlow, and publish
    /// flow batches on NATS (cluster mode).
    Run(Box<RunArgs>),
    /// Print the flow records of a pcap file.
    Flows(FlowsArgs),
    /// Print the flow records exporters send to a listener until Ctrl-C (like `nfdump`).
    Collect(CollectArgs),
    /// Measure decode + flow table + DPI throughput on pcap files replayed from memory.
    Bench(BenchArgs),
    /// Score the DPI against nDPI's expected results (`X.pcap` + `X.expected.json`).
    Eval(EvalArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Overflow {
    /// Block for pcap files, drop for live interfaces.
    Auto,
    /// Wait for the bus (lossless).
    Block,
    /// Drop and count when the export queue is full.
    Drop,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Progress {
    Auto,
    Bar,
    Lines,
    Quiet,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("input").multiple(true).args(["interface", "pcap", "netflow", "ipfix_tcp"])))]
struct RunArgs {
    /// Network interface(s) to capture on.
    #[arg(long, num_args = 1.., conflicts_with = "pcap")]
    interface: Vec<String>,
    /// Pcap/pcapng file(s) to read, one after the other.
    #[arg(long, num_args = 1..)]
    pcap: Vec<PathBuf>,
    /// UDP address(es) to collect NetFlow v5/v9, IPFIX and sFlow v5 on (`0.0.0.0:2055`).
    #[arg(long, num_args = 1.., alias = "sflow")]
    netflow: Vec<SocketAddr>,
    /// TCP address(es) to collect IPFIX over TCP on (RFC 7011 §10.4, `0.0.0.0:4739`).
    #[arg(long, num_args = 1..)]
    ipfix_tcp: Vec<SocketAddr>,
    /// `SO_RCVBUF` requested for flow listeners (the kernel caps it at `net.core.rmem_max`).
    #[arg(long, default_value_t = ListenerConfig::default().recv_buffer_bytes)]
    recv_buffer: usize,
    /// Merge the two one-way NetFlow/IPFIX records of a conversation arriving within this many
    /// milliseconds into one bidirectional flow (UDP listeners; 0: off). See docs/collect.md.
    #[arg(long, default_value_t = 0)]
    merge_window_ms: u64,
    /// sFlow sampled packet headers through a flow table and DPI per observation point
    /// (counters scaled by the sampling rate) instead of one record per sample.
    #[arg(long)]
    sflow_flows: bool,
    /// NATS server URL(s).
    #[arg(long, env = "NATS_URL")]
    nats: String,
    /// Sensor name (default: $NODE_NAME, $HOSTNAME).
    #[arg(long)]
    sensor_name: Option<String>,
    /// Number of shards of the cluster.
    #[arg(long, default_value_t = netwarden_api::names::DEFAULT_SHARDS)]
    shards: u32,
    /// BPF filter.
    #[arg(long)]
    bpf: Option<String>,
    /// Serve Prometheus metrics on this address (`/metrics`).
    #[arg(long)]
    metrics_listen: Option<SocketAddr>,
    /// Bytes captured per frame on interfaces.
    #[arg(long, default_value_t = 65_535)]
    snaplen: i32,
    /// Do not put interfaces in promiscuous mode.
    #[arg(long)]
    no_promisc: bool,
    /// What to do when the export queue is full.
    #[arg(long, value_enum, default_value_t = Overflow::Auto)]
    overflow: Overflow,
    /// Records the export queue holds.
    #[arg(long, default_value_t = 65_536)]
    queue_capacity: usize,
    /// Bytes of encoded flow batches held while NATS is unreachable; the oldest are dropped
    /// (and counted) beyond this.
    #[arg(long, default_value_t = netwarden_sensor::export::DEFAULT_OUTAGE_BUFFER_BYTES)]
    outage_buffer_bytes: usize,
    #[command(flatten)]
    jetstream: netwarden_sensor::export::jetstream::JetStreamArgs,
    /// Most flows in the flow table.
    #[arg(long, default_value_t = 262_144)]
    max_flows: usize,
    /// Progress display for pcap files.
    #[arg(long, value_enum, default_value_t = Progress::Auto)]
    progress: Progress,
    /// Node name: the reporter of `nw-status` reports (default: the sensor name).
    #[arg(long, env = "NODE_NAME")]
    node: Option<String>,
    /// Node labels for `InterfacePolicy` node selectors (`k=v,k2=v2`).
    #[arg(long, env = "NODE_LABELS")]
    node_labels: Option<String>,
    /// File of node labels, one `key=value` per line (read again every 2 s).
    #[arg(long, env = "NODE_LABELS_FILE")]
    node_labels_file: Option<PathBuf>,
    /// The node's address (`status.hostIP`): node labels are read from its `nw-directory`
    /// entry, which the operator writes (the DaemonSet case; no API access needed).
    #[arg(long, env = "HOST_IP")]
    host_ip: Option<std::net::IpAddr>,
    /// Do not follow `InterfacePolicy` entries of `nw-config` (only the inputs given here run).
    #[arg(long)]
    no_config: bool,
    /// Folder of DPI threat lists (nDPI formats, see docs/dpi.md), reloaded when a file changes.
    #[arg(long)]
    dpi_lists: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    /// One JSON flow record per line.
    Jsonl,
    /// A human-readable table.
    Table,
    /// Nothing per record, only the statistics at exit (to measure the collector itself).
    None,
}

#[derive(Debug, Args)]
struct FlowsArgs {
    /// The pcap/pcapng file.
    #[arg(long)]
    pcap: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Jsonl)]
    format: Format,
    /// Also print periodic (active-timeout) records, not only final ones.
    #[arg(long)]
    updates: bool,
    /// Never split flows on time (as ndpiReader reads a pcap).
    #[arg(long)]
    no_timeouts: bool,
    /// Folder of DPI threat lists (nDPI formats, see docs/dpi.md).
    #[arg(long)]
    dpi_lists: Option<PathBuf>,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("listeners").required(true).multiple(true).args(["listen", "ipfix_tcp"])))]
struct CollectArgs {
    /// UDP address(es) to listen on; each takes NetFlow v5/v9, IPFIX and sFlow v5.
    #[arg(long, num_args = 1.., alias = "netflow", alias = "sflow")]
    listen: Vec<SocketAddr>,
    /// TCP address(es) to take IPFIX over TCP on (RFC 7011 §10.4).
    #[arg(long, num_args = 1..)]
    ipfix_tcp: Vec<SocketAddr>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Jsonl)]
    format: Format,
    /// Stop after this many seconds without a datagram (once one arrived).
    #[arg(long)]
    exit_after_idle: Option<f64>,
    /// `SO_RCVBUF` requested (the kernel caps it at `net.core.rmem_max`).
    #[arg(long, default_value_t = ListenerConfig::default().recv_buffer_bytes)]
    recv_buffer: usize,
    /// Merge the two one-way NetFlow/IPFIX records of a conversation arriving within this many
    /// milliseconds into one bidirectional flow (UDP listeners; 0: off). See docs/collect.md.
    #[arg(long, default_value_t = 0)]
    merge_window_ms: u64,
    /// sFlow sampled packet headers through a flow table and DPI per observation point
    /// (counters scaled by the sampling rate) instead of one record per sample.
    #[arg(long)]
    sflow_flows: bool,
    /// Sensor name written in the observation points.
    #[arg(long)]
    sensor_name: Option<String>,
}

#[derive(Debug, Args)]
struct BenchArgs {
    /// Pcap/pcapng file(s), concatenated in memory.
    #[arg(long, num_args = 1.., required = true)]
    pcap: Vec<PathBuf>,
    /// Passes over the in-memory packets.
    #[arg(long, default_value_t = 5)]
    repeat: u32,
    /// Decode + flow table only, without DPI.
    #[arg(long)]
    no_dpi: bool,
}

#[derive(Debug, Args)]
struct EvalArgs {
    /// Folder of `X.pcap`/`X.pcapng` files with their `X.expected.json`.
    #[arg(long)]
    corpus: PathBuf,
    /// Folder of nDPI list files (default: `CORPUS/lists` when it exists).
    #[arg(long)]
    lists: Option<PathBuf>,
    /// Print every disagreement under its pcap.
    #[arg(long)]
    verbose: bool,
}

fn init_logging(level: Option<&str>) {
    let filter = match level {
        Some(level) => tracing_subscriber::EnvFilter::new(level),
        None => tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    init_logging(cli.log_level.as_deref());
    match cli.command {
        Command::Run(args) => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(run(*args))
        }
        Command::Flows(args) => flows(&args),
        Command::Collect(args) => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(collect(args))
        }
        Command::Bench(args) => bench(&args),
        Command::Eval(args) => eval(&args),
    }
}

async fn run(args: RunArgs) -> Result<()> {
    let config = SensorConfig {
        sensor_name: args
            .sensor_name
            .clone()
            .unwrap_or_else(pipeline::default_sensor_name),
        flow: FlowConfig {
            max_flows: args.max_flows,
            dpi: dpi_engine(args.dpi_lists.as_deref())?,
            ..FlowConfig::default()
        },
        shards: args.shards,
        overflow: match args.overflow {
            Overflow::Auto => OverflowPolicy::Auto,
            Overflow::Block => OverflowPolicy::Block,
            Overflow::Drop => OverflowPolicy::Drop,
        },
        queue_capacity: args.queue_capacity,
        outage_buffer_bytes: args.outage_buffer_bytes,
        snaplen: args.snaplen,
        promiscuous: !args.no_promisc,
        bpf_filter: args.bpf.clone(),
        progress: match args.progress {
            Progress::Auto => ProgressMode::Auto,
            Progress::Bar => ProgressMode::Bar,
            Progress::Lines => ProgressMode::Lines,
            Progress::Quiet => ProgressMode::Quiet,
        },
        listener: {
            let mut l = ListenerConfig {
                recv_buffer_bytes: args.recv_buffer,
                ..ListenerConfig::default()
            };
            l.collector.merge_window_ms = args.merge_window_ms;
            l.collector.sflow_flow_table = args.sflow_flows;
            l
        },
    };
    let inputs: Vec<Input> = args
        .interface
        .iter()
        .cloned()
        .map(Input::Interface)
        .chain(args.pcap.iter().cloned().map(Input::Pcap))
        .chain(args.netflow.iter().copied().map(Input::Netflow))
        .chain(args.ipfix_tcp.iter().copied().map(Input::IpfixTcp))
        .collect();
    let metrics = Arc::new(SensorMetrics::new());
    let policy_metrics = Arc::new(netwarden_sensor::policy::PolicyMetrics::default());
    let js_metrics = Arc::new(netwarden_sensor::export::jetstream::JetStreamMetrics::default());
    if let Some(addr) = args.metrics_listen {
        serve_metrics(addr, &metrics, &policy_metrics, &js_metrics).await?;
    }
    // Connecting does not wait for NATS: a sensor started before NATS keeps capturing.
    let nats = NatsBus::connect(NatsOptions::new(
        args.nats.clone(),
        format!("netwarden-sensor@{}", config.sensor_name),
    ))
    .await
    .context("NATS client")?;
    // The cluster path: acknowledged publishes to NW_FLOWS (docs/deploy.md).
    let jetstream =
        if args.jetstream.publish == netwarden_sensor::export::jetstream::PublishMode::Jetstream {
            Some(
                netwarden_sensor::export::jetstream::JetStreamExport::start(&nats, &args.jetstream)
                    .await,
            )
        } else {
            None
        };
    let bus: Arc<dyn Bus> = match &jetstream {
        Some(js) => {
            js.follow(Arc::clone(&js_metrics));
            js.bus()
        }
        None => Arc::new(nats.clone()),
    };
    // A node's sensor follows InterfacePolicy entries; a pcap replay does not.
    let follow = !args.no_config && args.pcap.is_empty();
    anyhow::ensure!(
        follow || !inputs.is_empty(),
        "nothing to do: give --interface, --pcap or --netflow, or drop --no-config"
    );
    let (stop, shutdown) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down: flushing flows");
        let _ = stop.send(true);
    });
    let policies = follow.then(|| {
        let options = netwarden_sensor::policy::PolicyOptions {
            node: args
                .node
                .clone()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| config.sensor_name.clone()),
            labels: args.node_labels.clone(),
            labels_file: args.node_labels_file.clone(),
            host_ip: args.host_ip,
        };
        tracing::info!(node = %options.node, "following InterfacePolicy entries of nw-config");
        tokio::spawn(netwarden_sensor::policy::run(
            netwarden_sensor::policy::Buckets::Nats(nats),
            options,
            config.clone(),
            Arc::clone(&bus),
            Arc::clone(&metrics),
            policy_metrics,
            shutdown.clone(),
        ))
    });
    if inputs.is_empty() {
        if let Some(policies) = policies {
            let records = policies.await.context("interface policies")?;
            tracing::info!(records, "policy captures stopped");
        }
        return Ok(());
    }
    let summary = pipeline::run(inputs, config, bus, metrics, shutdown).await?;
    if let Some(policies) = policies {
        let records = policies.await.context("interface policies")?;
        tracing::info!(records, "policy captures stopped");
    }
    for file in summary.files.iter().filter(|f| f.error.is_some()) {
        tracing::warn!(file = %file.name, packets = file.packets, error = ?file.error, "file cut short");
    }
    eprintln!("{}", serde_json::to_string_pretty(&summary)?);
    if let Some(js) = &jetstream {
        eprintln!("jetstream: {}", serde_json::to_string(&js.summary())?);
    }
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn serve_metrics(
    addr: SocketAddr,
    metrics: &SensorMetrics,
    policy: &netwarden_sensor::policy::PolicyMetrics,
    jetstream: &netwarden_sensor::export::jetstream::JetStreamMetrics,
) -> Result<()> {
    use axum::http::header::CONTENT_TYPE;
    let mut registry = prometheus_client::registry::Registry::default();
    metrics.register(&mut registry);
    policy.register(&mut registry);
    jetstream.register(&mut registry);
    let registry = Arc::new(registry);
    let app = axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(move || {
                let registry = registry.clone();
                async move {
                    let mut body = String::new();
                    match prometheus_client::encoding::text::encode(&mut body, &registry) {
                        Ok(()) => (
                            axum::http::StatusCode::OK,
                            [(
                                CONTENT_TYPE,
                                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                            )],
                            body,
                        ),
                        Err(e) => (
                            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                            [(CONTENT_TYPE, "text/plain")],
                            e.to_string(),
                        ),
                    }
                }
            }),
        )
        .route("/healthz", axum::routing::get(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    tracing::info!(%addr, "serving /metrics");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "metrics server stopped");
        }
    });
    Ok(())
}

/// The DPI engine: the default one, or one with the lists of `dir` (reloaded on change).
fn dpi_engine(dir: Option<&std::path::Path>) -> Result<Option<netwarden_sensor::flow::SharedDpi>> {
    netwarden_sensor::dpi::reload::engine(dir)
        .with_context(|| format!("DPI lists in {}", dir.unwrap_or(".".as_ref()).display()))
}

fn flows(args: &FlowsArgs) -> Result<()> {
    let config = SensorConfig {
        flow: FlowConfig {
            dpi: dpi_engine(args.dpi_lists.as_deref())?,
            ..if args.no_timeouts {
                FlowConfig::offline()
            } else {
                FlowConfig::default()
            }
        },
        progress: ProgressMode::Quiet,
        ..SensorConfig::default()
    };
    let (records, summary) = pipeline::flows_from_pcap(&args.pcap, &config, args.updates)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    match args.format {
        Format::Jsonl => {
            for r in &records {
                serde_json::to_writer(&mut out, r)?;
                writeln!(out)?;
            }
        }
        Format::Table => print_table(&mut out, &records)?,
        Format::None => {}
    }
    out.flush()?;
    if let Some(error) = summary.files.first().and_then(|f| f.error.as_ref()) {
        tracing::warn!(%error, packets = summary.packets, "the file ends early; flows read so far were printed");
    }
    Ok(())
}

fn print_table(out: &mut impl std::io::Write, records: &[FlowRecord]) -> Result<()> {
    print_table_header(out)?;
    for r in records {
        print_table_row(out, r)?;
    }
    Ok(())
}

fn print_table_header(out: &mut impl std::io::Write) -> Result<()> {
    writeln!(
        out,
        "{:>6} {:<6} {:<46} {:<46} {:>5} {:<6} {:>8} {:>10} {:>8} {:>10} {:<14}",
        "id",
        "proto",
        "client",
        "server",
        "vlan",
        "tunnel",
        "c2s_pkts",
        "c2s_bytes",
        "s2c_pkts",
        "s2c_bytes",
        "end"
    )?;
    Ok(())
}

fn print_table_row(out: &mut impl std::io::Write, r: &FlowRecord) -> Result<()> {
    let ep = |ip: Option<std::net::IpAddr>, port: u32| match ip {
        Some(std::net::IpAddr::V6(v6)) => format!("[{v6}]:{port}"),
        Some(ip) => format!("{ip}:{port}"),
        None => "?".into(),
    };
    let (c2s, s2c) = (r.c2s.unwrap_or_default(), r.s2c.unwrap_or_default());
    let end = netwarden_api::flow::EndReason::try_from(r.end_reason).map_or_else(
        |_| r.end_reason.to_string(),
        |e| {
            e.as_str_name()
                .trim_start_matches("END_REASON_")
                .to_lowercase()
        },
    );
    writeln!(
        out,
        "{:>6} {:<6} {:<46} {:<46} {:>5} {:<6} {:>8} {:>10} {:>8} {:>10} {:<14}",
        r.flow_id,
        proto::name(r.l4_proto as u8),
        ep(r.client_addr(), r.client_port),
        ep(r.server_addr(), r.server_port),
        r.vlan,
        r.tunnel,
        c2s.packets,
        c2s.bytes,
        s2c.packets,
        s2c.bytes,
        end
    )?;
    Ok(())
}

/// `collect`: listeners print what exporters send, one line per record, until Ctrl-C or
/// `--exit-after-idle`; the listeners' statistics go to stderr as JSON at the end.
async fn collect(args: CollectArgs) -> Result<()> {
    let sensor = args
        .sensor_name
        .clone()
        .unwrap_or_else(pipeline::default_sensor_name);
    let (stop, shutdown) = watch::channel(false);
    // Batches of outputs (one per listener read burst, up to a few thousand records each).
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Output>>(256);
    let mut jobs = Vec::new();
    for address in &args.listen {
        let mut config = ListenerConfig {
            address: *address,
            recv_buffer_bytes: args.recv_buffer,
            ..ListenerConfig::default()
        };
        config.collector.sensor.clone_from(&sensor);
        config.collector.merge_window_ms = args.merge_window_ms;
        config.collector.sflow_flow_table = args.sflow_flows;
        let listener =
            Listener::bind(config).with_context(|| format!("cannot listen on {address}"))?;
        eprintln!(
            "listening on {} (NetFlow v5/v9, IPFIX, sFlow v5)",
            listener.local_addr()
        );
        let mut shutdown = shutdown.clone();
        jobs.push(listener.spawn(tx.clone(), async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        }));
    }
    let mut tcp_jobs = Vec::new();
    for address in &args.ipfix_tcp {
        let mut config = TcpListenerConfig {
            address: *address,
            ..TcpListenerConfig::default()
        };
        config.collector.sensor.clone_from(&sensor);
        let listener = TcpCollector::bind(config)
            .await
            .with_context(|| format!("cannot listen on tcp {address}"))?;
        eprintln!("listening on tcp {} (IPFIX)", listener.local_addr());
        let mut shutdown = shutdown.clone();
        tcp_jobs.push(listener.spawn(tx.clone(), async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        }));
    }
    drop(tx);
    let idle = args
        .exit_after_idle
        .map(|s| std::time::Duration::from_secs_f64(s.max(0.0)));
    let signal = wait_for_signal();
    tokio::pin!(signal);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if matches!(args.format, Format::Table) {
        print_table_header(&mut out)?;
    }
    let mut heard = false;
    loop {
        let next = async {
            match idle {
                Some(idle) if heard => tokio::time::timeout(idle, rx.recv()).await.ok(),
                _ => Some(rx.recv().await),
            }
        };
        let output = tokio::select! {
            () = &mut signal => break,
            output = next => output,
        };
        let Some(Some(output)) = output else {
            break;
        };
        heard = true;
        for output in &output {
            write_output(&mut out, output, args.format)?;
        }
        if rx.is_empty() {
            out.flush()?;
        }
    }
    let _ = stop.send(true);
    while let Some(outputs) = rx.recv().await {
        for output in &outputs {
            write_output(&mut out, output, args.format)?;
        }
    }
    out.flush()?;
    for job in jobs {
        let stats = job.await.context("flow listener task")?;
        eprintln!("{}", serde_json::to_string(&stats)?);
    }
    for job in tcp_jobs {
        let (stats, tcp) = job.await.context("IPFIX TCP listener task")?;
        eprintln!("{}", serde_json::json!({"listener": stats, "tcp": tcp}));
    }
    Ok(())
}

fn eval(args: &EvalArgs) -> Result<()> {
    use netwarden_sensor::eval;
    let lists = args
        .lists
        .clone()
        .or_else(|| Some(args.corpus.join("lists")).filter(|d| d.is_dir()));
    let report = eval::evaluate(&args.corpus, eval::engine(lists.as_deref())?)?;
    print!("{}", report.table());
    if args.verbose {
        for p in report.pcaps.iter().filter(|p| !p.notes.is_empty()) {
            println!("== {}", p.name);
            for n in &p.notes {
                println!("   {n}");
            }
        }
    }
    print!("{}", report.summary());
    Ok(())
}

/// One collected output: a flow record as a JSON line or a table row; sFlow interface
/// counters as a JSON line `{"interface_counters": {...}}` in either format.
fn write_output(out: &mut impl std::io::Write, output: &Output, format: Format) -> Result<()> {
    match (output, format) {
        (_, Format::None) => return Ok(()),
        (Output::Flow(flow), Format::Table) => return print_table_row(out, &flow.record),
        (Output::Flow(flow), Format::Jsonl) => serde_json::to_writer(&mut *out, &flow.record)?,
        (Output::Counters(counters), _) => serde_json::to_writer(
            &mut *out,
            &serde_json::json!({ "interface_counters": counters }),
        )?,
    }
    writeln!(out)?;
    Ok(())
}

fn bench(args: &BenchArgs) -> Result<()> {
    use netwarden_sensor::bench::{Corpus, run_pass};
    let corpus = Corpus::load(&args.pcap)?;
    println!(
        "loaded {} packets, {} wire bytes from {} file(s)",
        corpus.packets(),
        corpus.wire_bytes(),
        args.pcap.len()
    );
    let config = FlowConfig {
        dpi: if args.no_dpi {
            None
        } else {
            FlowConfig::default().dpi
        },
        ..FlowConfig::default()
    };
    let mut best: Option<netwarden_sensor::bench::Pass> = None;
    let mut total = std::time::Duration::ZERO;
    let mut total_packets = 0u64;
    for i in 0..args.repeat.max(1) {
        let pass = run_pass(&corpus, &config);
        total += pass.elapsed;
        total_packets += pass.packets;
        let secs = pass.elapsed.as_secs_f64();
        println!(
            "pass {:>2}: {:>10.0} packets/s {:>6.2} Mpps {:>10.0} flows/s {:>7.2} Gbit/s {:>7.1} ns/packet  ({} flows, {} records, {} decode errors)",
            i + 1,
            pass.packets as f64 / secs,
            pass.packets as f64 / secs / 1e6,
            pass.flows as f64 / secs,
            pass.bytes as f64 * 8.0 / secs / 1e9,
            secs * 1e9 / pass.packets.max(1) as f64,
            pass.flows,
            pass.records,
            pass.decode_errors
        );
        if best.is_none_or(|b| pass.elapsed < b.elapsed) {
            best = Some(pass);
        }
    }
    if let Some(b) = best {
        let secs = b.elapsed.as_secs_f64();
        println!(
            "best:    {:.2} Mpps, {:.2} Gbit/s, {:.1} ns/packet, {:.0} flows/s ({:.2} µs per flow), {} flows, {:.0} B DPI state/flow; mean {:.2} Mpps over {} passes",
            b.packets as f64 / secs / 1e6,
            b.bytes as f64 * 8.0 / secs / 1e9,
            secs * 1e9 / b.packets.max(1) as f64,
            b.flows as f64 / secs,
            secs * 1e6 / b.flows.max(1) as f64,
            b.flows,
            b.dpi_bytes_per_flow,
            total_packets as f64 / total.as_secs_f64() / 1e6,
            args.repeat.max(1)
        );
    }
    Ok(())
}
