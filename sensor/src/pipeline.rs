//! The sensor pipeline: capture → decode → flow table → export, for the binary and for the
//! engine's `standalone` mode (which calls [`run`] with an in-process bus).
//!
//! Threads: one capture thread for all pcap files (read one after the other into one flow
//! table, time from packets) and one per live interface (each with its own table); decode and
//! the flow table run in that thread, per frame. Flow listeners ([`Input::Netflow`]) are async
//! tasks, one per address, each with its own collector. Every record, captured or collected,
//! crosses the same bounded queue to the async publisher task (batching, shard copies,
//! overflow policy); a listener never waits on that queue: when full it drops and counts.

use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use netwarden_api::bus::Bus;
use netwarden_api::flow::FlowRecord;
use tokio::sync::watch;

use crate::capture::Frame;
use crate::capture::file::CaptureFile;
use crate::capture::live::{CaptureStats, LiveCapture, LiveOptions, Poll};
use crate::collect::{
    CollectorConfig, Listener, ListenerConfig, ListenerStats, Output, TcpCollector,
    TcpListenerConfig,
};
use crate::decode::{LinkType, decode, decode_stats_key};
use crate::error::{Error, Result};
use crate::export::{self, ExportConfig, ExportCounters, OverflowPolicy, RecordSender};
use crate::flow::{self, FlowStats, FlowTable};
use crate::metrics::SensorMetrics;
use tracing::Instrument as _;

pub use crate::capture::file::FileSummary;

/// Where packets come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A pcap or pcapng file.
    Pcap(PathBuf),
    /// A live network interface.
    Interface(String),
    /// A UDP flow-collection listener on this address: NetFlow v5/v9, IPFIX and sFlow v5
    /// (the protocol is detected per datagram, so one port takes them all).
    Netflow(SocketAddr),
    /// An IPFIX-over-TCP listener on this address (RFC 7011 §10.4; a collector per connection).
    IpfixTcp(SocketAddr),
}

/// How progress is shown while reading pcap files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProgressMode {
    /// A progress bar when stderr is a terminal, plain log lines otherwise.
    #[default]
    Auto,
    /// A progress bar (indicatif).
    Bar,
    /// A `tracing` info line every few seconds.
    Lines,
    /// Nothing (tests).
    Quiet,
}

/// Settings of a sensor run.
#[derive(Debug, Clone)]
pub struct SensorConfig {
    /// Name of this sensor (node name): observation point and batch header.
    pub sensor_name: String,
    /// Flow-table timeouts and bounds.
    pub flow: flow::FlowConfig,
    /// Number of shards of the cluster.
    pub shards: u32,
    /// What to do when the export queue is full (`Auto`: block for files, drop for live).
    pub overflow: export::OverflowPolicy,
    /// Records the export queue holds.
    pub queue_capacity: usize,
    /// Bytes of encoded batches held while NATS is unreachable (oldest dropped beyond).
    pub outage_buffer_bytes: usize,
    /// Bytes captured per frame on live interfaces.
    pub snaplen: i32,
    /// Promiscuous mode on live interfaces.
    pub promiscuous: bool,
    /// BPF filter applied to every input.
    pub bpf_filter: Option<String>,
    /// Progress display for pcap files.
    pub progress: ProgressMode,
    /// Settings of flow listeners (`SO_RCVBUF`, decoder limits); the address comes from each
    /// [`Input::Netflow`] and the observation points' sensor from `sensor_name`.
    pub listener: ListenerConfig,
}

impl Default for SensorConfig {
    fn default() -> Self {
        Self {
            sensor_name: default_sensor_name(),
            flow: flow::FlowConfig::default(),
            shards: netwarden_api::names::DEFAULT_SHARDS,
            overflow: OverflowPolicy::Auto,
            queue_capacity: 65_536,
            outage_buffer_bytes: export::DEFAULT_OUTAGE_BUFFER_BYTES,
            snaplen: 65_535,
            promiscuous: true,
            bpf_filter: None,
            progress: ProgressMode::Auto,
            listener: ListenerConfig::default(),
        }
    }
}

/// `$NODE_NAME` (Kubernetes downward API), else `$HOSTNAME`, else "sensor".
pub fn default_sensor_name() -> String {
    ["NODE_NAME", "HOSTNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "sensor".into())
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RunSummary {
    /// Frames captured (decoded or not).
    pub packets: u64,
    /// Their wire bytes.
    pub bytes: u64,
    /// Frames that did not decode (including `not_ip_frames`).
    pub decode_errors: u64,
    /// Of those, frames that are not IP at all (ARP, STP, EAPOL, LLDP…): nothing to analyse,
    /// not damage.
    pub not_ip_frames: u64,
    /// Flows created.
    pub flows: u64,
    /// Flow records published (or returned, for [`flows_from_pcap`]).
    pub records_exported: u64,
    /// Batches published.
    pub batches_published: u64,
    /// Batches that could not be published.
    pub batches_dropped: u64,
    /// Records lost (queue full or batch dropped).
    pub records_dropped: u64,
    /// Per pcap file: name, frames, and the error that cut it short, if any.
    pub files: Vec<FileSummary>,
    /// Export datagrams received by flow listeners.
    pub collected_datagrams: u64,
    /// Flow records decoded by flow listeners (part of `records_exported` or `records_dropped`).
    pub collected_records: u64,
}

impl RunSummary {
    fn add_capture(&mut self, part: &CaptureTotals) {
        self.packets += part.frames;
        self.bytes += part.bytes;
        self.decode_errors += part.stats.decode_errors;
        self.not_ip_frames += part
            .stats
            .decode_errors_by_kind
            .get("not_ip")
            .copied()
            .unwrap_or(0);
        self.flows += part.stats.flows_created;
        self.files.extend(part.files.iter().cloned());
    }

    fn add_listener(&mut self, stats: &ListenerStats) {
        self.collected_datagrams += stats.collector.totals.datagrams;
        self.collected_records += stats.collector.totals.records;
    }
}

/// Totals of one capture thread.
#[derive(Debug, Default)]
pub(crate) struct CaptureTotals {
    frames: u64,
    bytes: u64,
    stats: FlowStats,
    files: Vec<FileSummary>,
}

/// Decode + flow table for one capture thread, with metric updates in deltas.
struct Processor {
    table: FlowTable,
    frames: u64,
    bytes: u64,
    reported: FlowStats,
}

impl Processor {
    fn new(config: &SensorConfig) -> Self {
        Self {
            table: FlowTable::new(config.flow.clone(), config.sensor_name.clone()),
            frames: 0,
            bytes: 0,
            reported: FlowStats::default(),
        }
    }

    #[inline]
    fn frame(&mut self, link: LinkType, frame: Frame<'_>, sink: &mut impl FnMut(FlowRecord)) {
        self.frames += 1;
        self.bytes += u64::from(frame.wire_len);
        match decode(link, frame.data, frame.wire_len, frame.ts_ns) {
            Ok(view) => self.table.process(&view, sink),
            Err(e) => self.table.count_decode_error(decode_stats_key(&e)),
        }
    }

    /// Adds what the table counted since the last call to `metrics`.
    fn sync_metrics(&mut self, metrics: &SensorMetrics) {
        let now = self.table.stats();
        let was = &self.reported;
        metrics.packets.inc_by(now.packets - was.packets);
        metrics.bytes.inc_by(now.bytes - was.bytes);
        metrics
            .flows_created
            .inc_by(now.flows_created - was.flows_created);
        metrics.flows_expired.inc_by(now.expired - was.expired);
        metrics.flows_evicted.inc_by(now.evicted - was.evicted);
        metrics
            .fragments_unmatched
            .inc_by(now.fragments_unmatched - was.fragments_unmatched);
        metrics
            .flows_active
            .inc_by(now.flows_active as i64 - was.flows_active as i64);
        if now.decode_errors != was.decode_errors {
            for (kind, n) in &now.decode_errors_by_kind {
                let before = was.decode_errors_by_kind.get(kind).copied().unwrap_or(0);
                if *n > before {
                    metrics.decode_error(kind, n - before);
                }
            }
        }
        self.reported = now.clone();
    }

    fn totals(&self, files: Vec<FileSummary>) -> CaptureTotals {
        CaptureTotals {
            frames: self.frames,
            bytes: self.bytes,
            stats: self.table.stats().clone(),
            files,
        }
    }
}

/// Progress of pcap reading: a bar, log lines, or nothing.
struct Progress {
    mode: ProgressMode,
    bar: Option<indicatif::ProgressBar>,
    last_line: Instant,
    name: String,
}

impl Progress {
    const LINE_EVERY: Duration = Duration::from_secs(5);

    fn new(mode: ProgressMode) -> Self {
        let mode = match mode {
            ProgressMode::Auto if std::io::stderr().is_terminal() => ProgressMode::Bar,
            ProgressMode::Auto => ProgressMode::Lines,
            other => other,
        };
        Self {
            mode,
            bar: None,
            last_line: Instant::now(),
            name: String::new(),
        }
    }

    fn start_file(&mut self, file: &CaptureFile) {
        self.name = file
            .path()
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        if self.mode == ProgressMode::Bar {
            let bar = indicatif::ProgressBar::new(file.size());
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{spinner} {prefix} [{bar:30}] {bytes}/{total_bytes} {msg} ({elapsed})",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_prefix(self.name.clone());
            self.bar = Some(bar);
        }
    }

    fn update(&mut self, bytes_read: u64, packets: u64, flows: u64) {
        match self.mode {
            ProgressMode::Bar => {
                if let Some(bar) = &self.bar {
                    bar.set_position(bytes_read.min(bar.length().unwrap_or(u64::MAX)));
                    bar.set_message(format!("{packets} packets, {flows} flows"));
                }
            }
            ProgressMode::Lines if self.last_line.elapsed() >= Self::LINE_EVERY => {
                self.last_line = Instant::now();
                tracing::info!(file = %self.name, bytes_read, packets, flows, "reading pcap");
            }
            _ => {}
        }
    }

    fn finish_file(&mut self, summary: &FileSummary, flows: u64) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        if self.mode != ProgressMode::Quiet {
            tracing::info!(file = %summary.name, packets = summary.packets, flows, "pcap read");
        }
    }
}

/// How often (in frames) a capture loop checks the clock, shutdown and metrics.
const CHECK_EVERY: u64 = 4096;

/// Reads every file into one flow table, sending records to `sink(record, at_end)`; `at_end`
/// is true for the records of the table's end of capture.
fn read_files(
    files: Vec<CaptureFile>,
    config: &SensorConfig,
    metrics: Option<&SensorMetrics>,
    shutdown: Option<&watch::Receiver<bool>>,
    sink: &mut impl FnMut(FlowRecord, bool),
) -> CaptureTotals {
    let mut proc = Processor::new(config);
    let mut progress = Progress::new(config.progress);
    let mut summaries = Vec::new();
    let mut stopped = false;
    for file in files {
        if stopped {
            break;
        }
        let _span = tracing::info_span!("pcap", file = %file.path().display()).entered();
        let link = file.link();
        proc.table.set_interface(
            &file
                .path()
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        );
        progress.start_file(&file);
        let (mut packets, mut bytes_read) = (0u64, 0u64);
        let summary = file.for_each(|frame| {
            proc.frame(link, frame, &mut |r| sink(r, false));
            packets += 1;
            bytes_read += frame.data.len() as u64 + 16;
            if packets % CHECK_EVERY == 0 {
                progress.update(bytes_read, packets, proc.table.stats().flows_created);
                if let Some(m) = metrics {
                    proc.sync_metrics(m);
                }
                if shutdown.is_some_and(|s| *s.borrow()) {
                    stopped = true;
                    return ControlFlow::Break(());
                }
            }
            ControlFlow::Continue(())
        });
        progress.finish_file(&summary, proc.table.stats().flows_created);
        summaries.push(summary);
    }
    proc.table.finish(&mut |r| sink(r, true));
    if let Some(m) = metrics {
        proc.sync_metrics(m);
    }
    proc.totals(summaries)
}

/// Captures on one interface until shutdown (or the interface fails). Also run, one per
/// interface, by the captures `InterfacePolicy` entries ask for (`crate::policy`).
pub(crate) fn capture_live(
    mut cap: LiveCapture,
    config: &SensorConfig,
    metrics: &SensorMetrics,
    shutdown: &watch::Receiver<bool>,
    sender: &RecordSender,
) -> CaptureTotals {
    let _span = tracing::info_span!("capture", interface = %cap.name()).entered();
    tracing::info!("capture started");
    let link = cap.link();
    let name = cap.name().to_owned();
    let mut proc = Processor::new(config);
    proc.table.set_interface(&name);
    let mut sink = |r: FlowRecord| sender.send(r);
    let mut last_check = Instant::now();
    let mut reported = CaptureStats::default();
    let mut since_check = 0u64;
    loop {
        let idle = match cap.poll() {
            Poll::Frame(frame) => {
                proc.frame(link, frame, &mut sink);
                since_check += 1;
                false
            }
            Poll::Idle => true,
            Poll::Failed(reason) => {
                tracing::warn!(%reason, "capture stopped");
                break;
            }
        };
        if idle || since_check >= CHECK_EVERY {
            since_check = 0;
            if *shutdown.borrow() {
                break;
            }
            if last_check.elapsed() >= Duration::from_secs(1) {
                last_check = Instant::now();
                // Time moves on for idle flows even without packets.
                proc.table.advance(wall_clock_ns(), &mut sink);
                proc.sync_metrics(metrics);
                if let Some(stats) = cap.stats() {
                    let label = [("interface", name.clone())];
                    metrics
                        .capture_dropped
                        .get_or_create(&label)
                        .inc_by(stats.dropped.saturating_sub(reported.dropped));
                    metrics
                        .capture_if_dropped
                        .get_or_create(&label)
                        .inc_by(stats.if_dropped.saturating_sub(reported.if_dropped));
                    reported = stats;
                }
            }
            if idle {
                std::thread::sleep(LiveCapture::IDLE_SLEEP);
            }
        }
    }
    let deadline = sender.final_deadline();
    proc.table.finish(&mut |r| sender.send_final(r, deadline));
    proc.sync_metrics(metrics);
    tracing::info!(
        packets = proc.frames,
        flows = proc.table.stats().flows_created,
        "capture stopped"
    );
    proc.totals(Vec::new())
}

fn wall_clock_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Runs capture → decode → flow table → export until the inputs end (files) or `shutdown`
/// flips to true (live). Every input is opened before anything runs, so a missing file or
/// interface fails the run at once. A bus that is down never fails or hangs the run: batches
/// that cannot be published are counted as dropped.
pub async fn run(
    inputs: Vec<Input>,
    config: SensorConfig,
    bus: Arc<dyn Bus>,
    metrics: Arc<SensorMetrics>,
    shutdown: watch::Receiver<bool>,
) -> Result<RunSummary> {
    if inputs.is_empty() {
        return Err(Error::NoInput);
    }
    let mut files = Vec::new();
    let mut interfaces = Vec::new();
    let mut listeners = Vec::new();
    let mut tcp_listeners = Vec::new();
    let live_options = LiveOptions {
        snaplen: config.snaplen,
        promiscuous: config.promiscuous,
        bpf_filter: config.bpf_filter.clone(),
        ..LiveOptions::default()
    };
    // Per-observation-point loss and templates of every collector, published as nw.stats.<sensor>.
    let point_board = crate::collect::PointBoard::default();
    for input in &inputs {
        match input {
            Input::Pcap(path) => files.push(CaptureFile::open(path, config.bpf_filter.as_deref())?),
            Input::Interface(name) => interfaces.push(LiveCapture::open(name, &live_options)?),
            Input::Netflow(address) => {
                let listener_config = ListenerConfig {
                    address: *address,
                    collector: CollectorConfig {
                        sensor: config.sensor_name.clone(),
                        // Disjoint flow ids per listener: one exporter may reach several.
                        flow_id_base: ((listeners.len() + tcp_listeners.len()) as u64) << 48,
                        points: Some(point_board.clone()),
                        ..config.listener.collector.clone()
                    },
                    ..config.listener.clone()
                };
                listeners.push(Listener::bind(listener_config).map_err(|source| {
                    Error::BindListener {
                        address: *address,
                        source,
                    }
                })?);
            }
            Input::IpfixTcp(address) => {
                let mut tcp = TcpListenerConfig {
                    address: *address,
                    collector: config.listener.collector.clone(),
                    ..TcpListenerConfig::default()
                };
                tcp.collector.sensor.clone_from(&config.sensor_name);
                tcp.collector.flow_id_base = ((listeners.len() + tcp_listeners.len()) as u64) << 48;
                tcp.collector.points = Some(point_board.clone());
                // A connection's collector goes at close: nothing may wait in its merge table.
                tcp.collector.merge_window_ms = 0;
                tcp_listeners.push(TcpCollector::bind(tcp).await.map_err(|source| {
                    Error::BindListener {
                        address: *address,
                        source,
                    }
                })?);
            }
        }
    }
    let live = !interfaces.is_empty() || !listeners.is_empty() || !tcp_listeners.is_empty();
    let export_config = ExportConfig {
        sensor_name: config.sensor_name.clone(),
        shards: config.shards,
        overflow: config.overflow.resolve(live),
        queue_capacity: config.queue_capacity,
        outage_buffer_bytes: config.outage_buffer_bytes,
        ..ExportConfig::default()
    };
    tracing::info!(
        files = files.len(),
        interfaces = interfaces.len(),
        listeners = listeners.len(),
        bus = bus.kind(),
        overflow = ?export_config.overflow,
        "sensor pipeline starting"
    );
    let (sender, receiver) = export::queue(&export_config, metrics.clone());
    let point_stats = crate::point_stats::start(
        !listeners.is_empty() || !tcp_listeners.is_empty(),
        &point_board,
        &config.sensor_name,
        Arc::clone(&bus),
    );
    // The publisher gets a thread of its own (a blocking thread driving the future): woken by
    // a busy listener task it would otherwise wait in that worker's LIFO slot, which no other
    // worker steals, and publish only when the listener yields (measured: ~50 batches/s).
    let runtime = tokio::runtime::Handle::current();
    let publisher = tokio::task::spawn_blocking(move || {
        runtime.block_on(export::publish(receiver, bus, export_config))
    });
    let config = Arc::new(config);
    let mut jobs = Vec::new();
    if !files.is_empty() {
        let (config, metrics, shutdown, sender) = (
            config.clone(),
            metrics.clone(),
            shutdown.clone(),
            sender.clone(),
        );
        jobs.push((
            "pcap files".to_owned(),
            tokio::task::spawn_blocking(move || {
                let mut deadline = None;
                read_files(
                    files,
                    &config,
                    Some(&metrics),
                    Some(&shutdown),
                    &mut |r, at_end| {
                        if at_end {
                            sender.send_final(
                                r,
                                *deadline.get_or_insert_with(|| sender.final_deadline()),
                            );
                        } else {
                            sender.send(r);
                        }
                    },
                )
            }),
        ));
    }
    for cap in interfaces {
        let (config, metrics, shutdown, sender) = (
            config.clone(),
            metrics.clone(),
            shutdown.clone(),
            sender.clone(),
        );
        jobs.push((
            cap.name().to_owned(),
            tokio::task::spawn_blocking(move || {
                capture_live(cap, &config, &metrics, &shutdown, &sender)
            }),
        ));
    }
    let collecting: Vec<_> = listeners
        .into_iter()
        .map(|l| spawn_listener(l, sender.clone(), metrics.clone(), shutdown.clone()))
        .chain(
            tcp_listeners
                .into_iter()
                .map(|l| spawn_tcp_listener(l, sender.clone(), metrics.clone(), shutdown.clone())),
        )
        .collect();
    drop(sender);
    let mut summary = RunSummary::default();
    let mut failure = None;
    for (input, job) in jobs {
        match job.await {
            Ok(totals) => summary.add_capture(&totals),
            Err(e) => {
                failure = Some(Error::CaptureThread {
                    input,
                    reason: e.to_string(),
                });
            }
        }
    }
    for (address, job) in collecting {
        match job.await {
            Ok(stats) => summary.add_listener(&stats),
            Err(e) => {
                failure = Some(Error::CaptureThread {
                    input: format!("flow listener {address}"),
                    reason: e.to_string(),
                });
            }
        }
    }
    point_stats.finish().await;
    let counters = publisher.await.map_err(|e| Error::CaptureThread {
        input: "publisher".into(),
        reason: e.to_string(),
    })?;
    fill_export(&mut summary, &counters);
    if let Some(e) = failure {
        return Err(e);
    }
    tracing::info!(?summary, "sensor pipeline finished");
    Ok(summary)
}

/// How often a flow listener's counters are added to the metrics.
const COLLECT_METRICS_EVERY: Duration = Duration::from_secs(1);

/// The sink of a flow listener (UDP or TCP): the records of a batch of outputs are encoded
/// into their shards' batches under one lock and never wait (a full export queue drops and
/// counts: the returned number), sFlow interface counters go to the metrics.
fn record_sink(
    sender: RecordSender,
    metrics: Arc<SensorMetrics>,
) -> impl Fn(&mut Vec<Output>) -> u64 + Clone + Send + Sync + 'static {
    move |outputs: &mut Vec<Output>| {
        let dropped = sender.try_send_all(outputs.iter().filter_map(|output| match output {
            Output::Flow(flow) => Some(&flow.record),
            Output::Counters(_) => None,
        }));
        for output in outputs.iter() {
            if let Output::Counters(counters) = output {
                metrics.collect.report_interface(counters);
            }
        }
        dropped
    }
}

/// Runs one flow listener until shutdown: exported records go to the export queue without
/// waiting (a full queue drops and counts), sFlow interface counters to the metrics.
pub(crate) fn spawn_listener(
    listener: Listener,
    sender: RecordSender,
    metrics: Arc<SensorMetrics>,
    shutdown: watch::Receiver<bool>,
) -> (SocketAddr, tokio::task::JoinHandle<ListenerStats>) {
    let address = listener.local_addr();
    let (stats, exporters) = (listener.stats_handle(), listener.exporters_handle());
    let report_metrics = Arc::clone(&metrics);
    let report = move || {
        let stats = *stats
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let exporters = exporters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        report_metrics.collect.report_listener(&stats, &exporters);
    };
    let sink = record_sink(sender, metrics);
    // A thread of its own (a blocking thread driving the future): a busy listener on a runtime
    // worker would hold that worker between forced yields, and the tasks it wakes (the NATS
    // connection) would wait in the worker's LIFO slot, which no other worker steals.
    let runtime = tokio::runtime::Handle::current();
    let task = async move {
        let run = listener.run(sink, stopped(shutdown));
        tokio::pin!(run);
        let mut tick = tokio::time::interval(COLLECT_METRICS_EVERY);
        let stats = loop {
            tokio::select! {
                stats = &mut run => break stats,
                _ = tick.tick() => report(),
            }
        };
        report();
        tracing::info!(
            datagrams = stats.collector.totals.datagrams,
            records = stats.collector.totals.records,
            sink_dropped = stats.collector.global.sink_dropped,
            "flow listener stopped"
        );
        stats
    }
    .instrument(tracing::info_span!("collect", listener = %address));
    let job = tokio::task::spawn_blocking(move || runtime.block_on(task));
    (address, job)
}

/// Runs one IPFIX-over-TCP listener until shutdown, like [`spawn_listener`] (same sink, same
/// metrics; every connection's records go to the export queue without waiting).
fn spawn_tcp_listener(
    listener: TcpCollector,
    sender: RecordSender,
    metrics: Arc<SensorMetrics>,
    shutdown: watch::Receiver<bool>,
) -> (SocketAddr, tokio::task::JoinHandle<ListenerStats>) {
    let address = listener.local_addr();
    let (read, exporters) = (listener.stats_reader(), listener.exporters_handle());
    let report_metrics = Arc::clone(&metrics);
    let report = move || {
        let exporters = exporters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let (stats, tcp) = read();
        report_metrics.collect.report_listener(&stats, &exporters);
        report_metrics.collect.report_tcp(address, &tcp);
    };
    let sink = record_sink(sender, metrics);
    let sink = move |mut outputs: Vec<Output>| sink(&mut outputs);
    let job = tokio::spawn(
        async move {
            let run = listener.run(sink, stopped(shutdown));
            tokio::pin!(run);
            let mut tick = tokio::time::interval(COLLECT_METRICS_EVERY);
            let (stats, tcp) = loop {
                tokio::select! {
                    stats = &mut run => break stats,
                    _ = tick.tick() => report(),
                }
            };
            report();
            tracing::info!(
                messages = tcp.messages,
                records = stats.collector.totals.records,
                connections = tcp.accepted,
                refused = tcp.refused,
                bad_frames = tcp.bad_frames,
                sink_dropped = stats.collector.global.sink_dropped,
                "IPFIX TCP listener stopped"
            );
            stats
        }
        .instrument(tracing::info_span!("collect_tcp", listener = %address)),
    );
    (address, job)
}

/// Completes when `shutdown` turns true or its sender is gone.
async fn stopped(mut shutdown: watch::Receiver<bool>) {
    while !*shutdown.borrow_and_update() {
        if shutdown.changed().await.is_err() {
            return;
        }
    }
}

fn fill_export(summary: &mut RunSummary, counters: &ExportCounters) {
    summary.records_exported = ExportCounters::get(&counters.records_exported);
    summary.records_dropped = ExportCounters::get(&counters.records_dropped);
    summary.batches_published = ExportCounters::get(&counters.batches_published);
    summary.batches_dropped = ExportCounters::get(&counters.batches_dropped);
}

/// Pure offline helper: every FINAL record of a pcap file (plus periodic ones if `updates`),
/// in the order the flow table emitted them, no bus. A truncated file yields what was read
/// before the cut and names the error in `summary.files[0].error`.
pub fn flows_from_pcap(
    path: &Path,
    config: &SensorConfig,
    updates: bool,
) -> Result<(Vec<FlowRecord>, RunSummary)> {
    let file = CaptureFile::open(path, config.bpf_filter.as_deref())?;
    let mut records = Vec::new();
    let totals = read_files(vec![file], config, None, None, &mut |r, _| {
        if updates || r.is_final() {
            records.push(r);
        }
    });
    let mut summary = RunSummary::default();
    summary.add_capture(&totals);
    summary.records_exported = records.len() as u64;
    Ok((records, summary))
}
