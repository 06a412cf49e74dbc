//! SMB over TCP (direct hosting on 445 or NetBIOS session service on 139, RFC 1002 §4.3.1):
//! names the version from the header's protocol id (`\xffSMB` SMBv1, MS-CIFS 2.2.3.1;
//! `\xfeSMB` SMB2/3, MS-SMB2 2.2.1; `\xfdSMB` an SMB3 transform header, MS-SMB2 2.2.41) and
//! reads the dialect from the NEGOTIATE exchange (MS-SMB2 2.2.3 request dialects, 2.2.4
//! response `DialectRevision`; MS-CIFS 2.2.4.52 for SMBv1's dialect strings).
//!
//! nDPI names these `NetBIOS.SMBv1` (raising `smb_insecure_version`) and `NetBIOS.SMBv23`.
//! Per-flow state is the version and dialect only; nothing is buffered (a NEGOTIATE fits in
//! one segment).

use super::util::Reader;

/// The SMB family a session speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// SMB 1 / CIFS.
    V1,
    /// SMB 2 or 3.
    V23,
}

/// SMB state of one flow.
#[derive(Debug)]
pub struct SmbFlow {
    /// The version of the first SMB message.
    pub version: Version,
    /// Dialect: negotiated (server's answer) or the highest the client offered.
    pub dialect: String,
    /// Whether the server's NEGOTIATE response was read.
    negotiated: bool,
    messages: u8,
}

/// The SMB message of a NetBIOS session message, if `p` holds one: (version, SMB message).
pub fn message(p: &[u8]) -> Option<(Version, &[u8])> {
    // Session message type 0, 17-bit length (RFC 1002 §4.3.1; 24 bits for direct hosting,
    // MS-SMB2 2.1).
    let [0, a, b, c, ..] = p else { return None };
    let len = usize::from(*a) << 16 | usize::from(*b) << 8 | usize::from(*c);
    let msg = p.get(4..)?;
    if len < 32 || msg.len() < 32 {
        return None;
    }
    let msg = msg.get(..len).unwrap_or(msg);
    let version = match msg.get(..4)? {
        b"\xffSMB" => Version::V1,
        b"\xfeSMB" | b"\xfdSMB" | b"\xfcSMB" => Version::V23,
        _ => return None,
    };
    Some((version, msg))
}

impl SmbFlow {
    /// A flow whose first payload is an SMB message, else `None`.
    pub fn probe(p: &[u8]) -> Option<Self> {
        let (version, msg) = message(p)?;
        // The first message is small and whole: its length must be the segment's.
        if msg.len() + 4 != p.len() {
            return None;
        }
        Some(Self {
            version,
            dialect: String::new(),
            negotiated: false,
            messages: 0,
        })
    }

    /// Feeds one payload.
    pub fn on_payload(&mut self, from_client: bool, p: &[u8]) {
        self.messages = self.messages.saturating_add(1);
        let Some((version, msg)) = message(p) else {
            return;
        };
        match version {
            Version::V1 => self.smb1(from_client, msg),
            Version::V23 => self.smb2(from_client, msg),
        }
    }

    /// Whether the dialect is known (or will not be: enough messages seen).
    pub fn is_done(&self) -> bool {
        self.negotiated || self.messages >= 8
    }

    fn smb1(&mut self, from_client: bool, msg: &[u8]) {
        // MS-CIFS 2.2.3.1: command at 4; NEGOTIATE is 0x72. The request's data block is a
        // list of 0x02-prefixed NUL-terminated dialect strings.
        if msg.get(4) != Some(&0x72) || !self.dialect.is_empty() {
            return;
        }
        if !from_client {
            if self.dialect.is_empty() {
                "SMBv1".clone_into(&mut self.dialect);
            }
            self.negotiated = true;
            return;
        }
        let mut r = Reader::new(msg);
        let (Some(()), Some(words)) = (r.skip(32), r.u8()) else {
            return;
        };
        if r.skip(usize::from(words) * 2).is_none() {
            return;
        }
        let Some(count) = r
            .take(2)
            .map(|b| usize::from(u16::from_le_bytes([b[0], b[1]])))
        else {
            return;
        };
        let data = r.take(count).unwrap_or(r.rest());
        // A client that offers SMB 2 in an SMBv1 NEGOTIATE ("SMB 2.002", "SMB 2.???") is
        // about to switch; otherwise the session is SMBv1.
        let offers_smb2 = data
            .split(|&b| b == 0)
            .any(|d| d.starts_with(b"\x02SMB 2."));
        let dialect = if offers_smb2 { "SMB 2.???" } else { "SMBv1" };
        dialect.clone_into(&mut self.dialect);
    }

    fn smb2(&mut self, from_client: bool, msg: &[u8]) {
        // MS-SMB2 2.2.1: header of 64 bytes; Command at 12 (LE); NEGOTIATE is 0.
        let Some(cmd) = msg.get(12..14) else { return };
        if cmd != [0, 0] {
            return;
        }
        let body = msg.get(64..).unwrap_or_default();
        let mut r = Reader::new(body);
        if from_client {
            // 2.2.3: StructureSize 36, DialectCount, …, Dialects at offset 36.
            let (Some(()), Some(count)) = (r.skip(2), r.take(2)) else {
                return;
            };
            let count = usize::from(u16::from_le_bytes([count[0], count[1]])).min(64);
            let Some(list) = body.get(36..36 + count * 2) else {
                return;
            };
            if let Some(best) = list
                .chunks_exact(2)
                .map(|d| u16::from_le_bytes([d[0], d[1]]))
                .filter(|d| *d != 0x02ff && dialect_name(*d).is_some())
                .max()
                .and_then(dialect_name)
                && !self.negotiated
            {
                best.clone_into(&mut self.dialect);
            }
        } else {
            // 2.2.4: StructureSize 65, SecurityMode, DialectRevision.
            let (Some(()), Some(rev)) = (r.skip(4), r.take(2)) else {
                return;
            };
            if let Some(name) = dialect_name(u16::from_le_bytes([rev[0], rev[1]])) {
                name.clone_into(&mut self.dialect);
                self.negotiated = true;
            }
        }
    }
}

/// MS-SMB2 2.2.3 dialect revision numbers.
fn dialect_name(d: u16) -> Option<&'static str> {
    Some(match d {
        0x0202 => "SMB 2.0.2",
        0x0210 => "SMB 2.1",
        0x0300 => "SMB 3.0",
        0x0302 => "SMB 3.0.2",
        0x0311 => "SMB 3.1.1",
        0x02ff => "SMB 2.???",
        _ => return None,
    })
}

#[cfg(test)]
mod tests;
