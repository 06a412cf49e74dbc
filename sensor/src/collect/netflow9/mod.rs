//! NetFlow v9 (RFC 3954): a 20-byte header, then flowsets: templates (id 0), options
//! templates (id 1), and data (id >= 256) described by a template of the same source id.
//!
//! Templates are cached per (exporter, source id, template id) with refresh/replace and
//! expiry. Data that arrives before its template is kept in a small bounded buffer and
//! decoded when the template comes (see [`super::templates::PendingSets`]). Options data
//! carrying sampling (34/35, 48-50) sets the rate of the records that name the sampler
//! (48 FLOW_SAMPLER_ID) or, without a sampler id, of the whole source id. The header
//! sequence number counts datagrams per source id (RFC 3954 section 5.1).

use netwarden_api::flow::FlowSource;

use super::error::{At, ErrorKind};
use super::fields::TimeBase;
use super::templates::{FieldSpec, MAX_TEMPLATE_FIELDS, TemplateKind};
use super::wire::{u16_at, u32_at};
use super::{Cx, Output, Result};

/// Header length.
pub const HEADER_LEN: usize = 20;

/// Decodes one NetFlow v9 datagram.
pub(crate) fn decode(cx: &mut Cx<'_>, d: &[u8], sink: &mut dyn FnMut(Output)) -> Result<()> {
    if d.len() < HEADER_LEN {
        return Err(cx.at.truncated(0, d.len(), "netflow9 header"));
    }
    let h = |o| u32_at(d, o).unwrap_or(0);
    let (uptime, secs, sequence, domain) = (h(4), h(8), h(12), h(16));
    let at = At { domain, ..cx.at };
    cx.sequence(domain, sequence, 1, false);
    let time = TimeBase {
        export_ns: u64::from(secs) * 1_000_000_000,
        uptime_ms: Some(uptime),
        sys_init_ms: None,
    };

    let mut learned: Vec<u16> = Vec::new();
    let mut pos = HEADER_LEN;
    let mut result = Ok(());
    while d.len() - pos >= 4 {
        let id = u16_at(d, pos).unwrap_or(0);
        let len = usize::from(u16_at(d, pos + 2).unwrap_or(0));
        if len < 4 {
            // A zero length would loop forever: the rest of the datagram is unusable.
            result = Err(at.malformed(0, pos + 2, "flowset length"));
            break;
        }
        let Some(body) = d.get(pos + 4..pos + len) else {
            result = Err(at.truncated(0, pos, "flowset"));
            break;
        };
        let body_at = pos + 4;
        let step = match id {
            0 => templates(cx, at, body, body_at, &mut learned),
            1 => options_templates(cx, at, body, body_at, &mut learned),
            2..=255 => Ok(()),
            _ => cx
                .data_or_buffer(domain, id, body, body_at, &time, FlowSource::Netflow9, sink)
                .map(|_| ()),
        };
        if let Err(e) = step {
            result = Err(e);
            break;
        }
        pos += len;
    }
    // Templates learned by this datagram (even one that failed later) release waiting data.
    for id in learned {
        cx.replay(domain, id, FlowSource::Netflow9, sink)?;
    }
    result
}

/// Reads `n` (type, length) pairs at `p` of `body` (which starts at `base` in the datagram).
fn fields(
    at: At,
    id: u16,
    body: &[u8],
    base: usize,
    mut p: usize,
    n: usize,
) -> Result<Vec<FieldSpec>> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let (Some(ty), Some(len)) = (u16_at(body, p), u16_at(body, p + 2)) else {
            return Err(at.truncated(id, base + p, "template field"));
        };
        out.push(FieldSpec {
            id: ty,
            len,
            pen: 0,
        });
        p += 4;
    }
    Ok(out)
}

/// Template flowset (RFC 3954 section 5.2): template id, field count, (type, length) pairs.
fn templates(
    cx: &mut Cx<'_>,
    at: At,
    body: &[u8],
    base: usize,
    learned: &mut Vec<u16>,
) -> Result<()> {
    let mut p = 0;
    while body.len() - p >= 4 {
        let id = u16_at(body, p).unwrap_or(0);
        let count = u16_at(body, p + 2).unwrap_or(0);
        if count > MAX_TEMPLATE_FIELDS {
            return Err(at.err(id, base + p + 2, ErrorKind::TooManyFields(count)));
        }
        if id < 256 {
            return Err(at.malformed(id, base + p, "template id"));
        }
        let specs = fields(at, id, body, base, p + 4, usize::from(count))?;
        cx.learn_specs(at, id, base + p, TemplateKind::Data, 0, specs, learned)?;
        p += 4 + 4 * usize::from(count);
    }
    Ok(())
}

/// Options template flowset (RFC 3954 section 6.1): template id, scope length and option
/// length in bytes, then (type, length) pairs.
fn options_templates(
    cx: &mut Cx<'_>,
    at: At,
    body: &[u8],
    base: usize,
    learned: &mut Vec<u16>,
) -> Result<()> {
    let mut p = 0;
    while body.len() - p >= 6 {
        let id = u16_at(body, p).unwrap_or(0);
        let scope_len = usize::from(u16_at(body, p + 2).unwrap_or(0));
        let option_len = usize::from(u16_at(body, p + 4).unwrap_or(0));
        if id < 256 {
            return Err(at.malformed(id, base + p, "options template id"));
        }
        if scope_len % 4 != 0 || option_len % 4 != 0 {
            return Err(at.malformed(id, base + p + 2, "options template lengths"));
        }
        let count = (scope_len + option_len) / 4;
        if count > usize::from(MAX_TEMPLATE_FIELDS) {
            return Err(at.err(id, base + p + 2, ErrorKind::TooManyFields(count as u16)));
        }
        let specs = fields(at, id, body, base, p + 6, count)?;
        let scope = (scope_len / 4) as u16;
        cx.learn_specs(
            at,
            id,
            base + p,
            TemplateKind::Options,
            scope,
            specs,
            learned,
        )?;
        p += 6 + scope_len + option_len;
    }
    Ok(())
}
