//! SSH (RFC 4253): the identification strings of both sides (§4.2), each side's
//! `SSH_MSG_KEXINIT` (§7.1) and the HASSH fingerprints computed from them (Salesforce HASSH:
//! MD5 of `kex;encryption;mac;compression` in the sender's direction), plus nDPI's obsolete
//! version and cipher risks (`ssh_obsolete_client_version_or_cipher` and its server twin).
//!
//! Per-flow state: the two banners, the two hashes and a small per-direction buffer for a
//! banner or KEXINIT split over segments (bounded by the engine's reassembly limit; freed by
//! [`SshFlow::shrink`]). Must not: trust a length from the wire (every one is bounds-checked).

use md5::{Digest as _, Md5};
use netwarden_api::flow::SshInfo;

use super::util::{MAX_FIELD, Reader, hex, text};
use super::{Risks, rid};

/// SSH message number of the key exchange init (RFC 4253 §12).
const MSG_KEXINIT: u8 = 20;
/// Largest binary packet accepted (RFC 4253 §6.1 requires 35000 to be handled).
const MAX_PACKET: usize = 35_000;
/// Longest identification line (RFC 4253 §4.2: 255 characters including CR LF).
const MAX_BANNER: usize = 255;

/// Obsolete ciphers (nDPI's list, after OpenSSH's deprecations).
const OBSOLETE_CIPHERS: &[&str] = &[
    "arcfour256",
    "arcfour128",
    "3des-cbc",
    "blowfish-cbc",
    "cast128-cbc",
    "arcfour",
];

/// Implementations and the first version that is not obsolete (nDPI's table).
const MIN_VERSIONS: &[(&str, [u32; 3])] = &[
    ("OpenSSH_", [7, 0, 0]),
    ("APACHE-SSHD-", [2, 5, 1]),
    ("FileZilla_", [3, 40, 0]),
    ("paramiko_", [2, 4, 0]),
    ("dropbear_", [2020, 0, 0]),
];

/// Per-direction parsing progress.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Waiting for the identification line.
    #[default]
    Banner,
    /// Waiting for `SSH_MSG_KEXINIT`.
    KexInit,
    /// Done (hash computed, or the stream is not what we expected).
    Done,
}

/// SSH state of one flow.
#[derive(Debug, Default)]
pub struct SshFlow {
    /// Banners and HASSH fingerprints.
    pub info: SshInfo,
    stage: [Stage; 2],
    buf: [Vec<u8>; 2],
    risks: Risks,
}

impl SshFlow {
    /// Feeds one payload of direction `from_client`; `max` bounds the bytes buffered.
    pub fn on_payload(&mut self, from_client: bool, payload: &[u8], max: usize) {
        let dir = usize::from(!from_client);
        if self.stage[dir] == Stage::Done {
            return;
        }
        let buffered = !self.buf[dir].is_empty();
        if buffered {
            if self.buf[dir].len() + payload.len() > max {
                self.stage[dir] = Stage::Done;
                self.buf[dir] = Vec::new();
                return;
            }
            self.buf[dir].extend_from_slice(payload);
        }
        let data: &[u8] = if buffered { &self.buf[dir] } else { payload };
        let (used, stage) = step(
            self.stage[dir],
            data,
            from_client,
            &mut self.info,
            &mut self.risks,
        );
        let remaining = data.len().saturating_sub(used);
        self.stage[dir] = stage;
        if stage == Stage::Done || remaining == 0 {
            self.buf[dir] = Vec::new();
        } else if remaining > max {
            self.stage[dir] = Stage::Done;
            self.buf[dir] = Vec::new();
        } else if buffered {
            self.buf[dir].drain(..used);
        } else {
            self.buf[dir].extend_from_slice(&payload[used..]);
        }
    }

    /// Whether both sides' KEXINIT were parsed (or can no longer be).
    pub fn is_done(&self) -> bool {
        self.stage == [Stage::Done; 2]
    }

    /// Whether at least one identification line was seen.
    pub fn has_banner(&self) -> bool {
        !self.info.client_banner.is_empty() || !self.info.server_banner.is_empty()
    }

    /// The flow's SSH risks.
    pub fn risks(&self, out: &mut Risks) {
        out.merge(&self.risks);
    }

    /// Frees the reassembly buffers.
    pub fn shrink(&mut self) {
        self.buf = Default::default();
    }
}

/// Parses as much of `data` as possible from `stage`; returns the bytes consumed and the new
/// stage.
fn step(
    mut stage: Stage,
    data: &[u8],
    from_client: bool,
    info: &mut SshInfo,
    risks: &mut Risks,
) -> (usize, Stage) {
    let mut used = 0;
    loop {
        let rest = data.get(used..).unwrap_or_default();
        match stage {
            Stage::Banner => {
                // RFC 4253 §4.2: a server may send other lines before its identification.
                let Some(end) = rest.iter().position(|&b| b == b'\n') else {
                    if rest.len() > MAX_BANNER * 4 {
                        return (used, Stage::Done);
                    }
                    return (used, stage);
                };
                let line = &rest[..end];
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                used += end + 1;
                if line.starts_with(b"SSH-") {
                    let banner = text(line, MAX_FIELD);
                    version_risk(&banner, from_client, risks);
                    if from_client {
                        info.client_banner = banner;
                    } else {
                        info.server_banner = banner;
                    }
                    stage = Stage::KexInit;
                } else if used > MAX_BANNER * 4 {
                    return (used, Stage::Done);
                }
            }
            Stage::KexInit => {
                // RFC 4253 §6: uint32 packet_length, byte padding_length, payload, padding.
                let mut r = Reader::new(rest);
                let (Some(len), Some(pad)) = (r.u32(), r.u8()) else {
                    return (used, stage);
                };
                let len = len as usize;
                if !(2..=MAX_PACKET).contains(&len) || usize::from(pad) >= len {
                    return (used, Stage::Done);
                }
                let Some(packet) = rest.get(5..4 + len) else {
                    return (used, stage);
                };
                used += 4 + len;
                let payload = &packet[..packet.len() - usize::from(pad)];
                if payload.first() == Some(&MSG_KEXINIT) {
                    if let Some(hash) = kexinit(&payload[1..], from_client, risks) {
                        if from_client {
                            info.hassh_client = hash;
                        } else {
                            info.hassh_server = hash;
                        }
                    }
                    return (used, Stage::Done);
                }
            }
            Stage::Done => return (used, stage),
        }
    }
}

/// HASSH of a KEXINIT body (after the message number): cookie, then ten name-lists (RFC 4253
/// §7.1). Raises the obsolete-cipher risk for the sender's own encryption list.
fn kexinit(body: &[u8], from_client: bool, risks: &mut Risks) -> Option<String> {
    let mut r = Reader::new(body);
    r.skip(16)?;
    let mut lists: [&[u8]; 8] = [&[]; 8];
    for l in &mut lists {
        let n = r.u32()? as usize;
        *l = r.take(n)?;
    }
    // kex, host key, enc c→s, enc s→c, mac c→s, mac s→c, comp c→s, comp s→c.
    let (enc, mac, comp) = if from_client {
        (lists[2], lists[4], lists[6])
    } else {
        (lists[3], lists[5], lists[7])
    };
    if let Some(c) = enc
        .split(|&b| b == b',')
        .find_map(|c| OBSOLETE_CIPHERS.iter().find(|o| o.as_bytes() == c))
    {
        risks.set(
            obsolete_risk(from_client),
            Some(format!("Found cipher {c}")),
        );
    }
    let mut md5 = Md5::new();
    for (i, part) in [lists[0], enc, mac, comp].iter().enumerate() {
        if i > 0 {
            md5.update(b";");
        }
        md5.update(part);
    }
    Some(hex(&md5.finalize()))
}

fn obsolete_risk(from_client: bool) -> u16 {
    if from_client {
        rid::SSH_OBSOLETE_CLIENT_VERSION_OR_CIPHER
    } else {
        rid::SSH_OBSOLETE_SERVER_VERSION_OR_CIPHER
    }
}

/// Raises the obsolete-version risk when `banner` names a known implementation older than
/// the first version nDPI considers current.
fn version_risk(banner: &str, from_client: bool, risks: &mut Risks) {
    // "SSH-protoversion-softwareversion SP comments" (RFC 4253 §4.2).
    let Some(software) = banner
        .splitn(3, '-')
        .nth(2)
        .and_then(|s| s.split(' ').next())
    else {
        return;
    };
    for (prefix, min) in MIN_VERSIONS {
        let Some(v) = software.strip_prefix(prefix) else {
            continue;
        };
        // Up to three dot-separated leading numbers, as sscanf("%d.%d.%d") reads them.
        let mut got = [0u32; 3];
        let mut n = 0;
        for (i, part) in v.split('.').take(3).enumerate() {
            let digits: &str = &part[..part.bytes().take_while(u8::is_ascii_digit).count()];
            let Ok(x) = digits.parse() else { break };
            got[i] = x;
            n = i + 1;
            if digits.len() != part.len() {
                break;
            }
        }
        if n >= 2 && got < *min {
            risks.set(
                obsolete_risk(from_client),
                Some(format!("Obsolete SSH version {banner}")),
            );
        }
        return;
    }
}

#[cfg(test)]
mod tests;
