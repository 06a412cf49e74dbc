//! Decode errors. Each names the exporter, the protocol, the observation domain, the template
//! (0 when none is involved) and the byte offset in the datagram, and is counted by kind.

use std::fmt;
use std::net::IpAddr;

use super::Protocol;

/// What went wrong, without the where. [`ErrorKind::label`] is the metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The datagram ended inside a structure (`.0` names it).
    Truncated(&'static str),
    /// A length or count is impossible (`.0` says which).
    Malformed(&'static str),
    /// Not NetFlow v5/v9, IPFIX or sFlow v5: the first bytes carry this version.
    UnknownVersion(u32),
    /// A template declares more fields than [`super::templates::MAX_TEMPLATE_FIELDS`].
    TooManyFields(u16),
}

impl ErrorKind {
    /// Stable snake_case name for metrics.
    pub const fn label(self) -> &'static str {
        match self {
            Self::Truncated(_) => "truncated",
            Self::Malformed(_) => "malformed",
            Self::UnknownVersion(_) => "unknown_version",
            Self::TooManyFields(_) => "too_many_fields",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated(what) => write!(f, "truncated {what}"),
            Self::Malformed(what) => write!(f, "malformed {what}"),
            Self::UnknownVersion(v) => write!(f, "unknown version {v}"),
            Self::TooManyFields(n) => write!(f, "template with {n} fields"),
        }
    }
}

/// A datagram (or the rest of it) that could not be decoded. Records decoded before the error
/// have already been emitted; the error is counted in the exporter's and the collector's stats.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{protocol} exporter {exporter} domain {domain} template {template}: {kind} at byte {offset}"
)]
pub struct CollectError {
    /// UDP source address of the datagram.
    pub exporter: IpAddr,
    /// Protocol the datagram was decoded as.
    pub protocol: Protocol,
    /// Observation domain / source id / sub-agent id (0 before the header was read).
    pub domain: u32,
    /// Template id involved, 0 when none.
    pub template: u16,
    /// Byte offset in the datagram where decoding stopped.
    pub offset: usize,
    /// What went wrong.
    pub kind: ErrorKind,
}

/// Where a decoder is, to build a [`CollectError`] in one call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct At {
    pub exporter: IpAddr,
    pub protocol: Protocol,
    pub domain: u32,
}

impl At {
    /// Builds the error for `template` at `offset`.
    pub(crate) fn err(self, template: u16, offset: usize, kind: ErrorKind) -> CollectError {
        CollectError {
            exporter: self.exporter,
            protocol: self.protocol,
            domain: self.domain,
            template,
            offset,
            kind,
        }
    }

    /// A truncation error.
    pub(crate) fn truncated(
        self,
        template: u16,
        offset: usize,
        what: &'static str,
    ) -> CollectError {
        self.err(template, offset, ErrorKind::Truncated(what))
    }

    /// A malformed-structure error.
    pub(crate) fn malformed(
        self,
        template: u16,
        offset: usize,
        what: &'static str,
    ) -> CollectError {
        self.err(template, offset, ErrorKind::Malformed(what))
    }
}
