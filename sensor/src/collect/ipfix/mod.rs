//! IPFIX (RFC 7011 message format, RFC 7012 information elements, RFC 5103 biflows).
//!
//! A 16-byte message header, then sets: templates (2), options templates (3), data (>= 256).
//! Field specifiers may carry the enterprise bit and a PEN: RFC 5103 reverse elements
//! (PEN 29305) fill the reverse direction, other enterprise elements are skipped. Variable
//! length fields (RFC 7011 section 7) are walked. Templates are keyed by (exporter,
//! observation domain, template id) and can be withdrawn (field count 0, section 8.1).
//! Time fields in every encoding are read (see [`super::fields`]); relative ones need
//! `systemInitTimeMilliseconds` (160) from the record or from options data.
//! The header sequence number counts data records per observation domain (section 3.1);
//! records of sets that are still waiting for their template cannot be counted, so a
//! missing template shows as a gap once.

use netwarden_api::flow::FlowSource;

use super::error::{At, ErrorKind};
use super::fields::TimeBase;
use super::templates::{FieldSpec, MAX_TEMPLATE_FIELDS, TemplateKind};
use super::wire::{u16_at, u32_at};
use super::{Cx, Output, Result};

/// Message header length.
pub const HEADER_LEN: usize = 16;

/// Decodes one IPFIX message.
pub(crate) fn decode(cx: &mut Cx<'_>, d: &[u8], sink: &mut dyn FnMut(Output)) -> Result<()> {
    if d.len() < HEADER_LEN {
        return Err(cx.at.truncated(0, d.len(), "ipfix header"));
    }
    let length = usize::from(u16_at(d, 2).unwrap_or(0));
    let (secs, sequence, domain) = (
        u32_at(d, 4).unwrap_or(0),
        u32_at(d, 8).unwrap_or(0),
        u32_at(d, 12).unwrap_or(0),
    );
    let at = At { domain, ..cx.at };
    if length < HEADER_LEN {
        return Err(at.malformed(0, 2, "message length"));
    }
    let Some(msg) = d.get(..length) else {
        return Err(at.truncated(0, d.len(), "message"));
    };
    let time = TimeBase {
        export_ns: u64::from(secs) * 1_000_000_000,
        uptime_ms: None,
        sys_init_ms: None,
    };

    let mut learned = Vec::new();
    let mut records = 0u32;
    let mut pos = HEADER_LEN;
    let mut result = Ok(());
    while msg.len() - pos >= 4 {
        let id = u16_at(msg, pos).unwrap_or(0);
        let len = usize::from(u16_at(msg, pos + 2).unwrap_or(0));
        if len < 4 {
            result = Err(at.malformed(0, pos + 2, "set length"));
            break;
        }
        let Some(body) = msg.get(pos + 4..pos + len) else {
            result = Err(at.truncated(0, pos, "set"));
            break;
        };
        let body_at = pos + 4;
        let step = match id {
            2 => templates(cx, at, body, body_at, false, &mut learned),
            3 => templates(cx, at, body, body_at, true, &mut learned),
            0..=255 => Ok(()),
            _ => cx
                .data_or_buffer(domain, id, body, body_at, &time, FlowSource::Ipfix, sink)
                .map(|n| records += n),
        };
        if let Err(e) = step {
            result = Err(e);
            break;
        }
        pos += len;
    }
    cx.sequence(domain, sequence, records, true);
    for id in learned {
        cx.replay(domain, id, FlowSource::Ipfix, sink)?;
    }
    result
}

/// Template set (RFC 7011 section 3.4.1) or options template set (section 3.4.2.2).
fn templates(
    cx: &mut Cx<'_>,
    at: At,
    body: &[u8],
    base: usize,
    options: bool,
    learned: &mut Vec<u16>,
) -> Result<()> {
    let kind = if options {
        TemplateKind::Options
    } else {
        TemplateKind::Data
    };
    let mut p = 0;
    // Fewer than 4 bytes left is padding.
    while body.len() - p >= 4 {
        let id = u16_at(body, p).unwrap_or(0);
        let count = u16_at(body, p + 2).unwrap_or(0);
        p += 4;
        if count == 0 {
            // Withdrawal (section 8.1): the set id itself withdraws every template of its kind.
            match id {
                2 | 3 => cx.withdraw_all(at.domain, kind),
                256.. => cx.withdraw(at.domain, id),
                _ => return Err(at.malformed(id, base + p - 4, "withdrawn template id")),
            }
            continue;
        }
        if id < 256 {
            return Err(at.malformed(id, base + p - 4, "template id"));
        }
        if count > MAX_TEMPLATE_FIELDS {
            return Err(at.err(id, base + p - 2, ErrorKind::TooManyFields(count)));
        }
        let scope = if options {
            let scope =
                u16_at(body, p).ok_or_else(|| at.truncated(id, base + p, "scope field count"))?;
            if scope == 0 || scope > count {
                return Err(at.malformed(id, base + p, "scope field count"));
            }
            p += 2;
            scope
        } else {
            0
        };
        let mut specs = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            let (Some(raw), Some(len)) = (u16_at(body, p), u16_at(body, p + 2)) else {
                return Err(at.truncated(id, base + p, "template field"));
            };
            p += 4;
            let pen = if raw & 0x8000 != 0 {
                let pen = u32_at(body, p)
                    .ok_or_else(|| at.truncated(id, base + p, "enterprise number"))?;
                p += 4;
                pen
            } else {
                0
            };
            specs.push(FieldSpec {
                id: raw & 0x7fff,
                len,
                pen,
            });
        }
        cx.learn_specs(at, id, base + p, kind, scope, specs, learned)?;
    }
    Ok(())
}
