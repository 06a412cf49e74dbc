//! In-memory benchmark of decode + flow table + DPI (`netwarden-sensor bench`): frames are read once
//! from pcap files into one buffer, then replayed single-threaded, without I/O, any number of
//! times. What it measures is the per-packet hot path of the sensor.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::capture::file::CaptureFile;
use crate::decode::{LinkType, decode, decode_stats_key};
use crate::error::Result;
use crate::flow::{FlowConfig, FlowTable};

#[derive(Debug, Clone, Copy)]
struct FrameRef {
    link: LinkType,
    start: usize,
    len: u32,
    wire_len: u32,
    ts_ns: u64,
}

/// Frames of one or more pcap files, in memory.
#[derive(Debug, Default)]
pub struct Corpus {
    data: Vec<u8>,
    frames: Vec<FrameRef>,
    wire_bytes: u64,
}

impl Corpus {
    /// Reads every frame of `paths`, one file after the other.
    pub fn load(paths: &[PathBuf]) -> Result<Self> {
        let mut corpus = Self::default();
        for path in paths {
            let file = CaptureFile::open(path, None)?;
            let link = file.link();
            let summary = file.for_each(|frame| {
                corpus.frames.push(FrameRef {
                    link,
                    start: corpus.data.len(),
                    len: frame.data.len() as u32,
                    wire_len: frame.wire_len,
                    ts_ns: frame.ts_ns,
                });
                corpus.data.extend_from_slice(frame.data);
                corpus.wire_bytes += u64::from(frame.wire_len);
                std::ops::ControlFlow::Continue(())
            });
            if let Some(error) = summary.error {
                tracing::warn!(file = %path.display(), %error, "using the frames read before the error");
            }
        }
        Ok(corpus)
    }

    /// Frames loaded.
    pub fn packets(&self) -> u64 {
        self.frames.len() as u64
    }

    /// Their wire bytes.
    pub fn wire_bytes(&self) -> u64 {
        self.wire_bytes
    }
}

/// One pass over the corpus.
#[derive(Debug, Clone, Copy)]
pub struct Pass {
    /// Frames processed.
    pub packets: u64,
    /// Their wire bytes.
    pub bytes: u64,
    /// Flows created.
    pub flows: u64,
    /// Records emitted (periodic and final).
    pub records: u64,
    /// Frames that did not decode.
    pub decode_errors: u64,
    /// DPI state held by the table's flows just before the end of the pass, per flow (bytes).
    pub dpi_bytes_per_flow: f64,
    /// Wall time of the pass.
    pub elapsed: Duration,
}

/// Decodes every frame and runs it through a fresh flow table (with the DPI of `config`),
/// then ends the table.
pub fn run_pass(corpus: &Corpus, config: &FlowConfig) -> Pass {
    let mut table = FlowTable::new(config.clone(), "bench");
    let mut records = 0u64;
    let mut sink = |r: netwarden_api::flow::FlowRecord| {
        records += 1;
        std::hint::black_box(r);
    };
    let start = Instant::now();
    for f in &corpus.frames {
        let data = &corpus.data[f.start..f.start + f.len as usize];
        match decode(f.link, data, f.wire_len, f.ts_ns) {
            Ok(view) => table.process(&view, &mut sink),
            Err(e) => table.count_decode_error(decode_stats_key(&e)),
        }
    }
    // Not part of the hot path: timed apart and left out.
    let probe = Instant::now();
    let flows_held = table.len().max(1);
    let dpi_bytes = table.dpi_state_bytes();
    let probe = probe.elapsed();
    table.finish(&mut sink);
    let elapsed = start.elapsed().saturating_sub(probe);
    let stats = table.stats();
    Pass {
        packets: corpus.packets(),
        bytes: corpus.wire_bytes,
        flows: stats.flows_created,
        records,
        decode_errors: stats.decode_errors,
        dpi_bytes_per_flow: dpi_bytes as f64 / flows_held as f64,
        elapsed,
    }
}
