//! Deep packet inspection: names the application protocol of a flow from its first payload
//! packets and learns its metadata (TLS handshake and certificate, HTTP request/response, DNS
//! query/answers, SSH banners, DHCP facts) and nDPI's flow risks.
//!
//! The flow table owns one [`FlowDpi`] per flow and calls [`Dpi::inspect`] for the first payload
//! packets of each direction until it returns `true`, then [`Dpi::shrink`]; [`Dpi::fill`] writes
//! what was learned into every exported record. The engine is pure: no I/O, no clock (times come
//! from packets), no allocation until a dissector claims the flow.
//!
//! Protocol decision: payload first (a dissector that parsed its protocol's messages gives
//! `CONFIDENCE_DPI`); otherwise a default-port guess (`CONFIDENCE_PORT`). Names, categories and
//! default ports come from `protocols.csv`, hostname → application suffixes from `hosts.csv`.
//!
//! Layout: one folder per protocol family (`tls/`, `quic/`, `dns/`, `http/`, `misc/` for one-packet
//! signatures); `table.rs` for the data files; `util.rs` for bounded readers and text.

pub mod cleartext;
pub mod dns;
pub mod http;
pub mod lists;
pub mod misc;
pub mod netbios;
pub mod quic;
pub mod reload;
pub mod rtp;
pub mod smb;
pub mod ssh;
pub mod table;
pub mod tls;
pub mod util;

#[cfg(test)]
pub(crate) mod tests;

use netwarden_api::flow::{Confidence, DhcpInfo, FlowRecord, L7Info, SmbInfo};

use self::cleartext::{Dialect, TextFlow};
use self::dns::DnsFlow;
use self::http::HttpFlow;
pub use self::lists::Lists;
use self::quic::QuicFlow;
use self::rtp::{RtpFlow, Verdict};
use self::smb::SmbFlow;
use self::ssh::SshFlow;
use self::table::{AppInfo, Breed, ProtoId, ProtoInfo, Tables};
use self::tls::TlsFlow;

/// DPI limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DpiConfig {
    /// Payload packets inspected per flow, both directions together (nDPI's harness: 32).
    pub max_packets: u32,
    /// Bytes buffered per direction for reassembly (TLS records and handshake, HTTP heads).
    pub max_reassembly: usize,
}

impl Default for DpiConfig {
    fn default() -> Self {
        Self {
            max_packets: 32,
            max_reassembly: 16 * 1024,
        }
    }
}

/// What the flow table knows about a packet handed to [`Dpi::inspect`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketCtx {
    /// Whether the packet goes from the flow's client to its server.
    pub from_client: bool,
    /// IANA transport protocol (6 TCP, 17 UDP).
    pub l4_proto: u8,
    /// Client port.
    pub client_port: u16,
    /// Server port.
    pub server_port: u16,
    /// Packet time, nanoseconds since the Unix epoch (certificate validity is judged against it).
    pub ts_ns: u64,
    /// TCP sequence number of the first payload byte, for TCP.
    pub tcp_seq: Option<u32>,
    /// Whether the payload is the first fragment of a fragmented IP packet (the rest of the
    /// message is not seen: a cut-short message is not malformed).
    pub fragmented: bool,
}

/// The DPI engine: configuration and static tables. Shared by every flow (`Send + Sync`).
/// The lists can be swapped while flows run ([`Dpi::set_lists`], [`reload`]).
#[derive(Debug)]
pub struct Dpi {
    config: DpiConfig,
    tables: Tables,
    ids: Ids,
    lists: std::sync::RwLock<std::sync::Arc<Lists>>,
}

/// Protocol ids the engine refers to directly.
#[derive(Debug, Clone, Copy)]
struct Ids {
    tls: Option<ProtoId>,
    dtls: Option<ProtoId>,
    dns: Option<ProtoId>,
    mdns: Option<ProtoId>,
    llmnr: Option<ProtoId>,
    http: Option<ProtoId>,
    ssh: Option<ProtoId>,
    dhcp: Option<ProtoId>,
    netbios: Option<ProtoId>,
    smbv1: Option<ProtoId>,
    smbv23: Option<ProtoId>,
    stun: Option<ProtoId>,
    rtp: Option<ProtoId>,
}

/// Per-flow DPI state: 16 bytes until a dissector claims the flow.
#[derive(Debug, Default)]
pub struct FlowDpi {
    packets: u32,
    done: bool,
    /// An RTP candidate was rejected: do not propose RTP again.
    no_rtp: bool,
    meta: Option<Box<Meta>>,
}

/// What is known once a dissector claimed the flow.
#[derive(Debug)]
struct Meta {
    proto: Option<ProtoId>,
    /// A sub-protocol of the table carried by `proto` (`NetBIOS.SMBv1`).
    sub: Option<ProtoId>,
    confidence: Confidence,
    app: Option<AppInfo>,
    kind: Kind,
    /// A host name read by a one-packet signature (SSDP, NetBIOS).
    host: String,
    /// DHCP facts, one per client hardware address (the flow's first, then others sharing
    /// the flow: requests from 0.0.0.0 to the broadcast address), at most [`MAX_DHCP_CLIENTS`].
    dhcp: Vec<DhcpInfo>,
}

/// Most DHCP clients remembered per flow.
pub const MAX_DHCP_CLIENTS: usize = 9;

#[derive(Debug)]
enum Kind {
    None,
    Tls(Box<TlsFlow>),
    Dns(Box<DnsFlow>),
    Http(Box<HttpFlow>),
    Quic(Box<QuicFlow>),
    Ssh(Box<SshFlow>),
    Smb(Box<SmbFlow>),
    Text(Box<TextFlow>),
    Rtp(RtpFlow),
}

/// Adds the DHCP facts of one more packet: merged into the entry of the same client address
/// (filling what it lacked, as a DISCOVER then a REQUEST), else a new entry while there is room.
/// Server replies (no request list, no vendor class, no host name) add nothing.
fn add_dhcp_client(list: &mut Vec<DhcpInfo>, info: DhcpInfo) {
    if info.mac.is_empty()
        || (info.fingerprint.is_empty() && info.vendor_class.is_empty() && info.hostname.is_empty())
    {
        return;
    }
    if let Some(known) = list.iter_mut().find(|d| d.mac == info.mac) {
        for (have, new) in [
            (&mut known.hostname, info.hostname),
            (&mut known.fingerprint, info.fingerprint),
            (&mut known.vendor_class, info.vendor_class),
        ] {
            if have.is_empty() {
                *have = new;
            }
        }
    } else if list.len() < MAX_DHCP_CLIENTS {
        list.push(info);
    }
}

/// Risk ids used by the dissectors (nDPI `ndpi_risk_enum` values, as in `api::risk`; a test
/// checks each against the catalogue).
pub mod rid {
    #![allow(missing_docs)]
    pub const URL_POSSIBLE_XSS: u16 = 1;
    pub const URL_POSSIBLE_SQL_INJECTION: u16 = 2;
    pub const URL_POSSIBLE_RCE_INJECTION: u16 = 3;
    pub const BINARY_APPLICATION_TRANSFER: u16 = 4;
    pub const KNOWN_PROTOCOL_ON_NON_STANDARD_PORT: u16 = 5;
    pub const TLS_SELFSIGNED_CERTIFICATE: u16 = 6;
    pub const TLS_OBSOLETE_VERSION: u16 = 7;
    pub const TLS_WEAK_CIPHER: u16 = 8;
    pub const TLS_CERTIFICATE_EXPIRED: u16 = 9;
    pub const TLS_CERTIFICATE_MISMATCH: u16 = 10;
    pub const HTTP_SUSPICIOUS_USER_AGENT: u16 = 11;
    pub const NUMERIC_IP_HOST: u16 = 12;
    pub const HTTP_SUSPICIOUS_URL: u16 = 13;
    pub const HTTP_SUSPICIOUS_HEADER: u16 = 14;
    pub const TLS_NOT_CARRYING_HTTPS: u16 = 15;
    pub const SUSPICIOUS_DGA_DOMAIN: u16 = 16;
    pub const MALFORMED_PACKET: u16 = 17;
    pub const SSH_OBSOLETE_CLIENT_VERSION_OR_CIPHER: u16 = 18;
    pub const SSH_OBSOLETE_SERVER_VERSION_OR_CIPHER: u16 = 19;
    pub const SMB_INSECURE_VERSION: u16 = 20;
    pub const TLS_SUSPICIOUS_ESNI_USAGE: u16 = 21;
    pub const UNSAFE_PROTOCOL: u16 = 22;
    pub const DNS_SUSPICIOUS_TRAFFIC: u16 = 23;
    pub const TLS_MISSING_SNI: u16 = 24;
    pub const RISKY_DOMAIN: u16 = 27;
    pub const DESKTOP_OR_FILE_SHARING_SESSION: u16 = 30;
    pub const MALICIOUS_FINGERPRINT: u16 = 28;
    pub const MALICIOUS_SHA1_CERTIFICATE: u16 = 29;
    pub const TLS_UNCOMMON_ALPN: u16 = 31;
    pub const TLS_CERT_VALIDITY_TOO_LONG: u16 = 32;
    pub const TLS_SUSPICIOUS_EXTENSION: u16 = 33;
    pub const TLS_FATAL_ALERT: u16 = 34;
    pub const CLEAR_TEXT_CREDENTIALS: u16 = 36;
    pub const DNS_LARGE_PACKET: u16 = 37;
    pub const INVALID_CHARACTERS: u16 = 39;
    pub const POSSIBLE_EXPLOIT: u16 = 40;
    pub const TLS_CERTIFICATE_ABOUT_TO_EXPIRE: u16 = 41;
    pub const PUNYCODE_IDN: u16 = 42;
    pub const ERROR_CODE_DETECTED: u16 = 43;
    pub const ANONYMOUS_SUBSCRIBER: u16 = 45;
    pub const HTTP_CRAWLER_BOT: u16 = 44;
    pub const HTTP_OBSOLETE_SERVER: u16 = 47;
    pub const TLS_ALPN_SNI_MISMATCH: u16 = 52;
    pub const MALWARE_HOST_CONTACTED: u16 = 53;
    pub const BINARY_DATA_TRANSFER: u16 = 54;
}

/// Protocols and applications nDPI flags with `desktop_or_file_sharing_session`.
const DESKTOP_SHARING: &[&str] = &["RDP", "VNC", "Radmin", "AnyDesk", "TeamViewer"];

/// A small set of risks with their details, as the dissectors raise them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Risks {
    bits: u128,
    details: Vec<(u16, String)>,
}

impl Risks {
    /// Raises `id` (ids ≥ 128 are ignored) with an optional detail; the first detail wins.
    pub fn set(&mut self, id: u16, detail: Option<String>) {
        if id >= 128 || self.has(id) {
            return;
        }
        self.bits |= 1 << id;
        if let Some(mut d) = detail {
            util::truncate(&mut d, util::MAX_FIELD);
            self.details.push((id, d));
        }
    }

    /// Whether `id` is raised.
    pub fn has(&self, id: u16) -> bool {
        id < 128 && self.bits & (1 << id) != 0
    }

    /// Adds every risk of `other`.
    pub fn merge(&mut self, other: &Self) {
        for id in other.ids() {
            let detail = other
                .details
                .iter()
                .find(|(i, _)| *i == id)
                .map(|(_, d)| d.clone());
            self.set(id, detail);
        }
    }

    /// Raised ids, increasing.
    pub fn ids(&self) -> impl Iterator<Item = u16> + '_ {
        (0..128u16).filter(|i| self.bits & (1 << i) != 0)
    }

    /// Writes the risks into `record` (risks already set there are not duplicated).
    pub fn apply(&self, record: &mut FlowRecord) {
        for id in self.ids() {
            if record.has_risk(id) {
                continue;
            }
            let detail = self
                .details
                .iter()
                .find(|(i, _)| *i == id)
                .map(|(_, d)| d.clone());
            record.set_risk(id, detail);
        }
    }
}

impl Dpi {
    /// Builds the engine and parses its tables.
    pub fn new(config: DpiConfig) -> Self {
        let tables = Tables::load();
        let ids = Ids {
            tls: tables.id("TLS"),
            dtls: tables.id("DTLS"),
            dns: tables.id("DNS"),
            mdns: tables.id("MDNS"),
            llmnr: tables.id("LLMNR"),
            http: tables.id("HTTP"),
            ssh: tables.id("SSH"),
            dhcp: tables.id("DHCP"),
            netbios: tables.id("NetBIOS"),
            smbv1: tables.id("SMBv1"),
            smbv23: tables.id("SMBv23"),
            stun: tables.id("STUN"),
            rtp: tables.id("RTP"),
        };
        Self {
            config,
            tables,
            ids,
            lists: std::sync::RwLock::default(),
        }
    }

    /// The engine with threat-intelligence `lists` (list-driven risks).
    #[must_use]
    pub fn with_lists(self, lists: Lists) -> Self {
        self.set_lists(lists);
        self
    }

    /// Replaces the lists; records filled from now on are judged against the new ones.
    pub fn set_lists(&self, lists: Lists) {
        let mut slot = self
            .lists
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *slot = std::sync::Arc::new(lists);
    }

    /// The lists in force.
    pub fn lists(&self) -> std::sync::Arc<Lists> {
        std::sync::Arc::clone(
            &self
                .lists
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// The configuration.
    pub fn config(&self) -> &DpiConfig {
        &self.config
    }

    /// The static tables.
    pub fn tables(&self) -> &Tables {
        &self.tables
    }

    /// Feeds one packet's transport payload; returns true once the flow needs no more packets.
    pub fn inspect(&self, flow: &mut FlowDpi, ctx: &PacketCtx, payload: &[u8]) -> bool {
        if flow.done {
            return true;
        }
        if payload.is_empty() {
            return false;
        }
        flow.packets += 1;
        if flow.meta.is_none() {
            flow.meta = self.probe(ctx, payload).map(Box::new);
            if flow.meta.is_none() && ctx.l4_proto == 17 && !flow.no_rtp {
                flow.meta = RtpFlow::probe(ctx.from_client, payload).map(|r| {
                    Box::new(Meta {
                        proto: self.ids.rtp,
                        sub: None,
                        confidence: Confidence::Unknown,
                        app: None,
                        kind: Kind::Rtp(r),
                        host: String::new(),
                        dhcp: Vec::new(),
                    })
                });
            }
        }
        let mut not_rtp = false;
        let max = self.config.max_reassembly;
        if let Some(meta) = flow.meta.as_deref_mut() {
            let tcp = ctx.l4_proto == 6;
            // RFC 7983: STUN and DTLS share a port (WebRTC); DTLS after STUN names the flow.
            if !tcp
                && meta.proto == self.ids.stun
                && matches!(meta.kind, Kind::None)
                && tls::looks_like_dtls(payload)
            {
                meta.proto = self.ids.dtls;
                meta.kind = Kind::Tls(Box::new(TlsFlow::new(true)));
                meta.confidence = Confidence::Unknown;
            }
            // STARTTLS (RFC 3207, 2595, 4217): a clear-text mail or FTP session that turns
            // into TLS continues as its secure variant, with the TLS dissector.
            if tcp
                && matches!(meta.kind, Kind::None | Kind::Text(_))
                && tls::looks_like_tls(payload)
                && let Some(secure) = self.starttls_variant(meta.proto)
            {
                meta.proto = Some(secure);
                meta.kind = Kind::Tls(Box::new(TlsFlow::new(false)));
            }
            let complete = match &mut meta.kind {
                Kind::Tls(t) => {
                    t.on_payload(ctx.from_client, ctx.tcp_seq, payload, ctx.ts_ns, max);
                    if t.is_confirmed() {
                        meta.confidence = Confidence::Dpi;
                    }
                    if meta.app.is_none() {
                        meta.app = t.sni.as_deref().and_then(|h| self.tables.app_for_host(h));
                    }
                    t.is_done()
                }
                Kind::Dns(d) => {
                    d.on_payload(tcp, ctx.fragmented, payload, max);
                    if meta.app.is_none() && !d.host.is_empty() && meta.proto == self.ids.dns {
                        meta.app = self.tables.app_for_host(&d.host);
                    }
                    d.is_done()
                }
                Kind::Http(h) => {
                    h.on_payload(ctx.from_client, payload, max);
                    if meta.app.is_none() && !h.host.is_empty() {
                        meta.app = self.tables.app_for_host(&h.host);
                    }
                    h.is_done()
                }
                Kind::Quic(q) => {
                    q.on_payload(payload, max);
                    if meta.app.is_none() {
                        meta.app = q
                            .tls
                            .sni
                            .as_deref()
                            .and_then(|h| self.tables.app_for_host(h));
                    }
                    q.is_done()
                }
                Kind::Ssh(s) => {
                    s.on_payload(ctx.from_client, payload, max);
                    s.is_done()
                }
                Kind::Smb(s) => {
                    s.on_payload(ctx.from_client, payload);
                    s.is_done()
                }
                Kind::Text(t) => {
                    t.on_payload(ctx.from_client, payload);
                    t.is_done() && self.starttls_variant(meta.proto).is_none()
                }
                Kind::Rtp(r) => match r.on_payload(ctx.from_client, payload) {
                    Verdict::Confirmed => {
                        meta.confidence = Confidence::Dpi;
                        true
                    }
                    Verdict::Pending => false,
                    Verdict::Rejected => {
                        not_rtp = true;
                        false
                    }
                },
                Kind::None if meta.proto.is_some() && meta.proto == self.ids.dhcp => {
                    // Several clients' requests (0.0.0.0 → broadcast) share one flow: keep
                    // reading until the packet budget, one entry per client address.
                    if flow.packets > 1
                        && let Some(misc::Hit::Dhcp(info)) =
                            misc::detect(ctx.l4_proto, ctx.client_port, ctx.server_port, payload)
                    {
                        add_dhcp_client(&mut meta.dhcp, *info);
                    }
                    false
                }
                Kind::None => {
                    self.starttls_variant(meta.proto).is_none() && meta.proto != self.ids.stun
                }
            };
            if complete {
                flow.done = true;
            }
        }
        if not_rtp {
            // Back to probing: a later datagram may still be recognised.
            flow.meta = None;
            flow.no_rtp = true;
        }
        if flow.packets >= self.config.max_packets {
            flow.done = true;
        }
        flow.done
    }

    /// The secure variant a clear-text protocol becomes after STARTTLS, if it has one.
    fn starttls_variant(&self, proto: Option<ProtoId>) -> Option<ProtoId> {
        let name = self.tables.proto(proto?)?.name;
        let secure = match name {
            "IMAP" => "IMAPS",
            "POP3" => "POPS",
            "SMTP" => "SMTPS",
            "FTP_CONTROL" => "FTPS",
            _ => return None,
        };
        self.tables.id(secure)
    }

    /// TLS on the default port of a protocol's TLS variant is named after it (nDPI:
    /// `IMAPS` for TLS on 993).
    fn tls_port_variant(&self, sport: u16, cport: u16) -> Option<&ProtoInfo> {
        const PORTS: &[(u16, &str)] =
            &[(993, "IMAPS"), (995, "POPS"), (465, "SMTPS"), (990, "FTPS")];
        let name = PORTS.iter().find(|(p, _)| *p == sport || *p == cport)?.1;
        self.tables.proto(self.tables.id(name)?)
    }

    /// Decides which dissector (if any) claims a flow from its first payload.
    fn probe(&self, ctx: &PacketCtx, payload: &[u8]) -> Option<Meta> {
        let meta = |proto, kind| Meta {
            proto,
            sub: None,
            confidence: Confidence::Dpi,
            app: None,
            kind,
            host: String::new(),
            dhcp: Vec::new(),
        };
        let port = |p: u16| ctx.server_port == p || ctx.client_port == p;
        match ctx.l4_proto {
            6 => {
                if tls::looks_like_tls(payload) {
                    let mut m = meta(self.ids.tls, Kind::Tls(Box::new(TlsFlow::new(false))));
                    m.confidence = Confidence::Unknown;
                    return Some(m);
                }
                if matches!(payload, [0x17, 3, 1..=4, ..]) && payload.len() > 5 {
                    // Mid-stream capture: TLS application data without the handshake.
                    let mut m = meta(self.ids.tls, Kind::None);
                    m.confidence = Confidence::DpiPartial;
                    return Some(m);
                }
                if http::looks_like_request(payload) || http::looks_like_response(payload) {
                    return Some(meta(self.ids.http, Kind::Http(Box::default())));
                }
                if port(53) && payload.len() > 14 && dns::looks_like_dns(&payload[2..]) {
                    return Some(meta(self.ids.dns, Kind::Dns(Box::default())));
                }
                if let Some(smb) = SmbFlow::probe(payload) {
                    return Some(meta(self.ids.netbios, Kind::Smb(Box::new(smb))));
                }
            }
            17 => {
                if tls::looks_like_dtls(payload) {
                    let mut m = meta(self.ids.dtls, Kind::Tls(Box::new(TlsFlow::new(true))));
                    m.confidence = Confidence::Unknown;
                    return Some(m);
                }
                let dns_port = if port(5353) {
                    self.ids.mdns
                } else if port(5355) {
                    self.ids.llmnr
                } else if port(53) {
                    self.ids.dns
                } else {
                    None
                };
                if dns_port.is_some() && dns::looks_like_dns(payload) {
                    let mut flow = DnsFlow::default();
                    flow.check_size = dns_port == self.ids.dns;
                    flow.mdns = dns_port == self.ids.mdns;
                    return Some(meta(dns_port, Kind::Dns(Box::new(flow))));
                }
            }
            _ => return None,
        }
        match misc::detect(ctx.l4_proto, ctx.client_port, ctx.server_port, payload)? {
            misc::Hit::Proto("QUIC") => Some(meta(
                self.tables.id("QUIC"),
                Kind::Quic(Box::new(QuicFlow::new(payload))),
            )),
            misc::Hit::Proto("SSH") => Some(meta(self.ids.ssh, Kind::Ssh(Box::default()))),
            misc::Hit::Proto(name) => {
                let kind = match Dialect::of(name) {
                    Some(d) if ctx.l4_proto == 6 => Kind::Text(Box::new(TextFlow::new(d))),
                    _ => Kind::None,
                };
                Some(meta(self.tables.id(name), kind))
            }
            misc::Hit::Named(name, host) => {
                let mut m = meta(self.tables.id(name), Kind::None);
                m.host = host;
                Some(m)
            }
            misc::Hit::Sub(name, sub, host) => {
                let mut m = meta(self.tables.id(name), Kind::None);
                m.sub = self.tables.id(sub);
                m.host = host;
                Some(m)
            }
            misc::Hit::Dhcp(info) => {
                let mut m = meta(self.ids.dhcp, Kind::None);
                m.dhcp = vec![*info];
                Some(m)
            }
        }
    }

    /// Writes what was learned into the record: `l7` and risks. Cheap; called for every
    /// exported record of the flow.
    pub fn fill(&self, flow: &FlowDpi, record: &mut FlowRecord) {
        self.fill_l7(flow, record);
        let lists = self.lists();
        if !lists.is_empty() {
            Self::list_risks(&lists, record);
        }
    }

    /// The list-driven risks, from what `record` says (hostname, JA3, certificate, client
    /// and server addresses).
    fn list_risks(lists: &Lists, record: &mut FlowRecord) {
        let mut risks = Risks::default();
        let server = record.server_addr();
        let host = record.l7.as_ref().map_or("", |l| l.hostname.as_str());
        if let Some(tls) = record.l7.as_ref().and_then(|l| l.tls.as_ref()) {
            if lists.malicious_ja3(&tls.ja3c) {
                risks.set(rid::MALICIOUS_FINGERPRINT, Some(tls.ja3c.clone()));
            }
            if let Some(cert) = &tls.certificate
                && lists.malicious_sha1(&cert.sha1)
            {
                risks.set(rid::MALICIOUS_SHA1_CERTIFICATE, Some(cert.sha1.clone()));
            }
        }
        if lists.risky_domain(host) {
            risks.set(rid::RISKY_DOMAIN, Some(host.to_owned()));
        }
        if lists.malware_host(host, server) {
            risks.set(rid::MALWARE_HOST_CONTACTED, None);
        }
        if lists.anonymous(record.client_addr()) {
            risks.set(rid::ANONYMOUS_SUBSCRIBER, None);
        }
        risks.apply(record);
    }

    fn fill_l7(&self, flow: &FlowDpi, record: &mut FlowRecord) {
        let l4 = u8::try_from(record.l4_proto).unwrap_or(0);
        let (sport, cport) = (record.server_port as u16, record.client_port as u16);
        let Some(meta) = flow
            .meta
            .as_deref()
            .filter(|m| m.proto.is_some() && m.confidence != Confidence::Unknown)
        else {
            // Nothing claimed the flow (or a TLS-looking start never parsed): the network
            // protocol names it (ICMP, ICMPv6, IGMP, as nDPI does), else a port guess.
            let by_l4 = match l4 {
                1 => Some("ICMP"),
                2 => Some("IGMP"),
                58 => Some("ICMPV6"),
                _ => None,
            };
            if let Some(p) =
                by_l4.and_then(|n| self.tables.id(n).and_then(|id| self.tables.proto(id)))
            {
                let l7 = record.l7.get_or_insert_with(L7Info::default);
                p.name.clone_into(&mut l7.master_protocol);
                p.name.clone_into(&mut l7.app_protocol);
                p.category.clone_into(&mut l7.category);
                l7.confidence = Confidence::Dpi as i32;
            } else if let Some(p) = self
                .tables
                .guess_by_port(l4, sport, cport)
                .and_then(|id| self.tables.proto(id))
            {
                let l7 = record.l7.get_or_insert_with(L7Info::default);
                p.name.clone_into(&mut l7.master_protocol);
                p.name.clone_into(&mut l7.app_protocol);
                p.category.clone_into(&mut l7.category);
                l7.confidence = Confidence::Port as i32;
            }
            return;
        };
        let Some(mut proto) = meta.proto.and_then(|id| self.tables.proto(id)) else {
            return;
        };
        if meta.proto == self.ids.tls
            && let Some(p) = self.tls_port_variant(sport, cport)
        {
            proto = p;
        }
        let mut risks = Risks::default();
        let mut l7 = L7Info {
            master_protocol: proto.name.to_owned(),
            confidence: meta.confidence as i32,
            ..L7Info::default()
        };
        let mut app = meta.app.map(|a| (a.name, a.category));
        match &meta.kind {
            Kind::Tls(t) => {
                l7.hostname = t.sni.clone().unwrap_or_default();
                l7.tls = Some(t.info.clone());
                t.risks(&mut risks);
                if app.is_none() && l4 == 6 && (sport == 853 || cport == 853) {
                    app = Some(("DoH_DoT", "Network"));
                }
            }
            Kind::Dns(d) => {
                l7.hostname.clone_from(&d.host);
                l7.dns = Some(d.info.clone());
                d.risks(meta.app.is_some(), &mut risks);
            }
            Kind::Http(h) => {
                l7.hostname.clone_from(&h.host);
                l7.http = Some(h.info.clone());
                h.risks(&mut risks);
                if app.is_none() {
                    app = h.app_hint.map(|a| (a, "Web"));
                }
            }
            Kind::Quic(q) => {
                l7.hostname = q.tls.sni.clone().unwrap_or_default();
                l7.tls = Some(q.tls.info.clone());
                q.tls.risks(&mut risks);
                // DNS over QUIC (RFC 9250): UDP 853, and 784 of its drafts.
                if app.is_none() && [784, 853].iter().any(|p| *p == sport || *p == cport) {
                    app = Some(("DoH_DoT", "Network"));
                }
            }
            Kind::Ssh(s) => {
                // nDPI's host name of an SSH flow is the client's banner.
                l7.hostname.clone_from(&s.info.client_banner);
                l7.ssh = Some(s.info.clone());
                s.risks(&mut risks);
            }
            Kind::Smb(s) => {
                l7.smb = (!s.dialect.is_empty()).then(|| SmbInfo {
                    dialect: s.dialect.clone(),
                });
            }
            Kind::Text(t) => {
                l7.hostname.clone_from(&t.host);
                t.risks(&mut risks);
            }
            Kind::Rtp(_) | Kind::None => {}
        }
        if !meta.host.is_empty() {
            l7.hostname.clone_from(&meta.host);
        }
        let sub = match &meta.kind {
            Kind::Smb(s) => match s.version {
                smb::Version::V1 => self.ids.smbv1,
                smb::Version::V23 => self.ids.smbv23,
            },
            _ => meta.sub,
        }
        .and_then(|id| self.tables.proto(id));
        if matches!(&meta.kind, Kind::Smb(s) if s.version == smb::Version::V1) {
            risks.set(rid::SMB_INSECURE_VERSION, Some("Found SMBv1".into()));
        }
        if let Some(sub) = sub {
            app = Some((sub.name, sub.category));
        }
        if let Some((dhcp, others)) = meta.dhcp.split_first() {
            l7.hostname.clone_from(&dhcp.hostname);
            l7.dhcp = Some(dhcp.clone());
            l7.dhcp_clients = others.to_vec();
        }
        // DNS keeps its own category for DNS.<app>, like nDPI.
        let master_category = meta.proto == self.ids.dns || meta.proto == self.ids.mdns;
        if let Some((name, category)) = app {
            l7.app_protocol = format!("{}.{name}", proto.name);
            let cat = if master_category {
                proto.category
            } else {
                category
            };
            cat.clone_into(&mut l7.category);
        } else {
            proto.name.clone_into(&mut l7.app_protocol);
            proto.category.clone_into(&mut l7.category);
        }
        // Port checks, only for what the payload decided. A sub-protocol with default ports
        // of its own (SMBv23 on 445) is judged by them, else by its carrier's (NetBIOS).
        if meta.confidence == Confidence::Dpi {
            let ports = match sub.map(|p| p.ports(l4)) {
                Some(p) if !p.is_empty() => p,
                _ => proto.ports(l4),
            };
            if !ports.is_empty() && !ports.contains(&sport) && !ports.contains(&cport) {
                risks.set(
                    rid::KNOWN_PROTOCOL_ON_NON_STANDARD_PORT,
                    Some(format!("Expected on port {}", ports[0])),
                );
            }
            if [Some(proto), sub].into_iter().flatten().any(|p| {
                matches!(
                    p.breed,
                    Breed::Unsafe | Breed::PotentiallyDangerous | Breed::Dangerous
                )
            }) {
                risks.set(rid::UNSAFE_PROTOCOL, None);
            }
        }
        // nDPI flags remote desktop and file sharing sessions by protocol.
        if DESKTOP_SHARING.contains(&proto.name)
            || app.is_some_and(|(name, _)| DESKTOP_SHARING.contains(&name))
        {
            risks.set(rid::DESKTOP_OR_FILE_SHARING_SESSION, None);
        }
        record.l7 = Some(l7);
        risks.apply(record);
    }

    /// Frees per-flow state that is no longer needed (reassembly buffers).
    pub fn shrink(&self, flow: &mut FlowDpi) {
        if let Some(meta) = flow.meta.as_deref_mut() {
            match &mut meta.kind {
                Kind::Tls(t) => t.shrink(),
                Kind::Dns(d) => d.shrink(),
                Kind::Http(h) => h.shrink(),
                Kind::Quic(q) => q.shrink(),
                Kind::Ssh(s) => s.shrink(),
                Kind::Text(t) => t.shrink(),
                Kind::Smb(_) | Kind::Rtp(_) | Kind::None => {}
            }
        }
    }
}

impl FlowDpi {
    /// Payload packets inspected so far.
    pub fn packets(&self) -> u32 {
        self.packets
    }

    /// Whether inspection is over.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Bytes of DPI state this flow holds: the inline 16 bytes plus the boxed dissector state
    /// (struct sizes; metadata strings and reassembly buffers still held are not counted).
    pub fn state_bytes(&self) -> usize {
        use std::mem::size_of;
        size_of::<Self>()
            + self.meta.as_deref().map_or(0, |m| {
                size_of::<Meta>()
                    + match &m.kind {
                        // RTP's state is inline in `Kind`.
                        Kind::None | Kind::Rtp(_) => 0,
                        Kind::Tls(_) => size_of::<TlsFlow>(),
                        Kind::Dns(_) => size_of::<DnsFlow>(),
                        Kind::Http(_) => size_of::<HttpFlow>(),
                        Kind::Quic(_) => size_of::<QuicFlow>(),
                        Kind::Ssh(_) => size_of::<SshFlow>(),
                        Kind::Smb(_) => size_of::<SmbFlow>(),
                        Kind::Text(_) => size_of::<TextFlow>(),
                    }
                    + m.dhcp.capacity() * size_of::<DhcpInfo>()
            })
    }
}
