//! The device table: bounded evidence per local address and per Ethernet address, the
//! address ↔ Ethernet bindings, manual overrides, and the cached verdict per address.
//!
//! Evidence about an Ethernet address (its maker, DHCP facts keyed by the DHCP client address)
//! counts for the local addresses bound to it, unless the Ethernet address is shared by more
//! than [`MAX_LOCAL_PER_MAC`] local addresses (a router in front of a routed subnet): then it
//! says nothing about any of them. An Ethernet address seen carrying remote addresses is a
//! gateway's, and its own local address (at most two) is networking.

use std::collections::HashMap;
use std::net::IpAddr;

use netwarden_api::directory::{DirectoryEntry, EndpointKind};
use netwarden_api::flow::FlowRecord;
use serde::Serialize;

use super::{DeviceType, Evidence, Source, Verdict, add_evidence, classify, oui, policy, rules};
use crate::bounded::BoundedMap;
use crate::checks::{ChecksConfig, FlowAlert};

/// Local addresses beyond which an Ethernet address is "shared" and its evidence unused.
pub const MAX_LOCAL_PER_MAC: usize = 4;
/// Distinct remote addresses behind one Ethernet address that make it a gateway's.
pub const GATEWAY_MIN_REMOTE: usize = 3;

/// Sizes and thresholds of the device table.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DeviceConfig {
    /// Most local addresses tracked (least recently seen evicted first).
    pub max_hosts: usize,
    /// Most Ethernet addresses tracked.
    pub max_macs: usize,
    /// Most manual overrides.
    pub max_overrides: usize,
    /// `device_protocol_not_allowed` judges only types guessed with at least this confidence.
    pub min_confidence: f32,
}

impl Default for DeviceConfig {
    fn default() -> Self {
        Self {
            max_hosts: 65_536,
            max_macs: 65_536,
            max_overrides: 65_536,
            min_confidence: 0.5,
        }
    }
}

#[derive(Debug, Default)]
struct HostFacts {
    mac: Option<[u8; 6]>,
    evidence: Vec<Evidence>,
    first_seen_ns: u64,
    last_seen_ns: u64,
    /// The cached verdict without directory and override (cleared when evidence changes).
    verdict: Option<Verdict>,
}

#[derive(Debug, Default)]
struct MacFacts {
    /// Local addresses bound to it (at most `MAX_LOCAL_PER_MAC + 1`: one more means shared).
    local: Vec<IpAddr>,
    /// Distinct remote addresses seen behind it (at most `GATEWAY_MIN_REMOTE`).
    remote: Vec<IpAddr>,
    evidence: Vec<Evidence>,
}

impl MacFacts {
    fn shared(&self) -> bool {
        self.local.len() > MAX_LOCAL_PER_MAC
    }
    fn gateway(&self) -> bool {
        self.remote.len() >= GATEWAY_MIN_REMOTE && self.local.len() <= 2
    }
}

/// What the engine says about one local address.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DeviceView {
    /// The address.
    #[schema(value_type = String)]
    pub ip: IpAddr,
    /// Its Ethernet address, when seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// The maker of the Ethernet address (IEEE registry).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub vendor: Option<&'static str>,
    /// The type.
    pub device_type: DeviceType,
    /// Confidence in [0, 1].
    pub confidence: f32,
    /// Whether an operator set the type.
    pub manual: bool,
    /// The evidence, strongest first.
    pub evidence: Vec<Evidence>,
    /// First seen, ns since the Unix epoch.
    pub first_seen_ns: u64,
    /// Last seen, ns since the Unix epoch.
    pub last_seen_ns: u64,
}

/// Counters of the table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DeviceCounters {
    /// Addresses evicted to make room.
    pub hosts_evicted: u64,
    /// Ethernet addresses evicted to make room.
    pub macs_evicted: u64,
    /// Evidence items recorded.
    pub evidence: u64,
}

/// The device table.
pub struct DeviceTable {
    config: DeviceConfig,
    hosts: BoundedMap<IpAddr, HostFacts>,
    macs: BoundedMap<[u8; 6], MacFacts>,
    overrides: HashMap<IpAddr, DeviceType>,
    /// Where the overrides are kept across restarts (`--data DIR`; [`super::persist`]).
    overrides_file: Option<std::path::PathBuf>,
    /// What was evicted and recorded.
    pub counters: DeviceCounters,
}

impl Default for DeviceTable {
    fn default() -> Self {
        Self::new(DeviceConfig::default())
    }
}

impl DeviceTable {
    /// An empty table sized by `config`.
    pub fn new(config: DeviceConfig) -> Self {
        Self {
            config,
            hosts: BoundedMap::new(config.max_hosts),
            macs: BoundedMap::new(config.max_macs),
            overrides: HashMap::new(),
            overrides_file: None,
            counters: DeviceCounters::default(),
        }
    }

    /// The table's configuration.
    pub fn config(&self) -> &DeviceConfig {
        &self.config
    }

    /// Local addresses tracked.
    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    /// Whether no address is tracked.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// A table for `max_hosts` local addresses (and as many Ethernet addresses).
    pub fn sized(max_hosts: usize) -> Self {
        Self::new(DeviceConfig {
            max_hosts,
            max_macs: max_hosts,
            ..DeviceConfig::default()
        })
    }

    /// Observes `r` (see [`Self::observe`]) and adds the `device_protocol_not_allowed` alert to
    /// the record's flow `alerts` (kept predominant first) when a local endpoint of a confident
    /// type speaks a protocol its type's policy denies.
    pub fn apply(
        &mut self,
        r: &FlowRecord,
        checks: &ChecksConfig,
        mut alerts: Vec<FlowAlert>,
    ) -> Vec<FlowAlert> {
        self.observe(r, |ip| checks.is_local(ip));
        let name = r.l7.as_ref().map_or("", |l| {
            if l.app_protocol.is_empty() {
                l.master_protocol.as_str()
            } else {
                l.app_protocol.as_str()
            }
        });
        if name.is_empty() || !policy::is_watched(name) || !checks.enabled(policy::ALERT_TYPE) {
            return alerts;
        }
        let (Some(c), Some(s), Some(def)) = (
            r.client_addr(),
            r.server_addr(),
            crate::checks::def(policy::ALERT_TYPE),
        ) else {
            return alerts;
        };
        let min = self.config.min_confidence;
        let mut judged = |ip: IpAddr| {
            if !checks.is_local(ip) {
                return None;
            }
            self.verdict(ip)
                .filter(|v| v.confidence >= min)
                .map(|v| v.device_type)
        };
        let (ct, st) = (judged(c), judged(s));
        if let Some(a) = policy::check(def, name, ct, st)
            && !alerts.iter().any(|x| x.alert_type == a.alert_type)
        {
            alerts.push(a);
            alerts.sort_by(|a, b| b.score.cmp(&a.score).then(a.alert_type.cmp(b.alert_type)));
        }
        alerts
    }

    /// Reads what `r` says about its local endpoints (`is_local` decides which are). Cheap
    /// for records without device facts: one or two lookups.
    pub fn observe(&mut self, r: &FlowRecord, is_local: impl Fn(IpAddr) -> bool) {
        let (Some(c), Some(s)) = (r.client_addr(), r.server_addr()) else {
            return;
        };
        let cmac = oui::from_bytes(&r.client_mac);
        let smac = oui::from_bytes(&r.server_mac);
        // A group Ethernet address means a broadcast or multicast destination (a subnet's
        // broadcast address looks local), not a device.
        let group = |m: Option<[u8; 6]>| m.is_some_and(oui::is_multicast);
        let cl = usable(c) && !group(cmac) && is_local(c);
        let sl = usable(s) && !group(smac) && is_local(s);
        let cmac = cmac.filter(|m| !oui::is_multicast(*m));
        let smac = smac.filter(|m| !oui::is_multicast(*m));
        let t = r.last_seen_ns;
        if cl {
            self.touch(c, cmac, t);
        } else if let Some(m) = cmac
            && usable(c)
        {
            self.remote_behind(m, c);
        }
        if sl {
            self.touch(s, smac, t);
        } else if let Some(m) = smac
            && usable(s)
        {
            self.remote_behind(m, s);
        }
        let l4 = u8::try_from(r.l4_proto).unwrap_or(0);
        let sent = |d: &Option<netwarden_api::flow::DirectionStats>| {
            d.as_ref().is_some_and(|d| d.packets > 0)
        };
        if sl
            && sent(&r.s2c)
            && let Ok(port) = u16::try_from(r.server_port)
        {
            self.serves(s, l4, port);
        }
        // DHCP's two ports are both "server" ports, so a server's reply seen before (or
        // without) the request makes the DHCP server the flow's client.
        if cl && l4 == 17 && r.client_port == 67 && r.server_port == 68 && sent(&r.c2s) {
            self.serves(c, 17, 67);
        }
        let Some(l7) = r.l7.as_ref() else {
            return;
        };
        for d in l7.dhcp.iter().chain(&l7.dhcp_clients).take(16) {
            let items = [
                (!d.fingerprint.is_empty()).then(|| rules::dhcp_fingerprint(&d.fingerprint)),
                (!d.vendor_class.is_empty()).then(|| rules::dhcp_vendor_class(&d.vendor_class)),
                (!d.hostname.is_empty())
                    .then(|| rules::host_name(Source::DhcpHostname, &d.hostname)),
            ];
            let chaddr = oui::parse(&d.mac).filter(|m| *m != [0; 6] && !oui::is_multicast(*m));
            for e in items.into_iter().flatten() {
                match chaddr.or(cmac) {
                    Some(mac) => self.mac_evidence(mac, e),
                    None if cl => self.host_evidence(c, e),
                    None => {}
                }
            }
        }
        if let Some(dns) = &l7.dns
            && !dns.mdns_services.is_empty()
        {
            // A multicast answer comes from the client of its flow; a unicast one from the
            // server (the responder to a unicast query).
            let (sender, local) = if s.is_multicast() { (c, cl) } else { (s, sl) };
            if local {
                for svc in dns.mdns_services.iter().take(super::MAX_EVIDENCE) {
                    self.host_evidence(sender, rules::mdns_service(svc));
                }
            }
        }
        if let Some(h) = &l7.http {
            if cl && !h.user_agent.is_empty() && !self.has(c, Source::HttpUserAgent, &h.user_agent)
            {
                self.host_evidence(c, rules::user_agent(&h.user_agent));
            }
            if sl && !h.server.is_empty() && !self.has(s, Source::HttpServer, &h.server) {
                self.host_evidence(s, rules::http_server(&h.server));
            }
        }
        if cl
            && !l7.hostname.is_empty()
            && l7.master_protocol.starts_with("NetBIOS")
            && (r.server_port == 138 || r.client_port == 138)
        {
            self.host_evidence(c, rules::host_name(Source::Netbios, &l7.hostname));
        }
    }

    fn touch(&mut self, ip: IpAddr, mac: Option<[u8; 6]>, t: u64) {
        let (h, evicted) = self.hosts.get_or_insert_with(ip, || HostFacts {
            first_seen_ns: t,
            ..HostFacts::default()
        });
        h.last_seen_ns = h.last_seen_ns.max(t);
        h.first_seen_ns = h.first_seen_ns.min(t);
        let rebind = mac.filter(|m| h.mac != Some(*m));
        if rebind.is_some() {
            h.mac = rebind;
            h.verdict = None;
        }
        if evicted.is_some() {
            self.counters.hosts_evicted += 1;
        }
        if let Some(m) = rebind {
            let (f, evicted) = self.macs.get_or_insert_with(m, MacFacts::default);
            if !f.local.contains(&ip) && f.local.len() <= MAX_LOCAL_PER_MAC {
                f.local.push(ip);
            }
            let bound = f.local.clone();
            if evicted.is_some() {
                self.counters.macs_evicted += 1;
            }
            self.invalidate(&bound);
        }
    }

    fn remote_behind(&mut self, mac: [u8; 6], ip: IpAddr) {
        let (f, evicted) = self.macs.get_or_insert_with(mac, MacFacts::default);
        if evicted.is_some() {
            self.counters.macs_evicted += 1;
        }
        if f.remote.len() < GATEWAY_MIN_REMOTE && !f.remote.contains(&ip) {
            f.remote.push(ip);
            if f.remote.len() == GATEWAY_MIN_REMOTE {
                let bound = f.local.clone();
                self.invalidate(&bound);
            }
        }
    }

    fn invalidate(&mut self, ips: &[IpAddr]) {
        for ip in ips {
            if let Some(h) = self.hosts.get_mut(ip) {
                h.verdict = None;
            }
        }
    }

    /// Whether `ip` already holds evidence of `source` with exactly `detail` (a cheap test
    /// before building evidence from a string seen again in a later record of the flow).
    fn has(&self, ip: IpAddr, source: Source, detail: &str) -> bool {
        self.hosts.peek(&ip).is_some_and(|h| {
            h.evidence
                .iter()
                .any(|e| e.source == source && e.detail == detail)
        })
    }

    fn serves(&mut self, ip: IpAddr, l4: u8, port: u16) {
        let Some((t, w, what)) = rules::serves_fact(l4, port) else {
            return;
        };
        if !self.has(ip, Source::Behaviour, what) {
            self.host_evidence(ip, Evidence::new(Source::Behaviour, t, w, what));
        }
    }

    fn host_evidence(&mut self, ip: IpAddr, e: Evidence) {
        if let Some(h) = self.hosts.get_mut(&ip)
            && add_evidence(&mut h.evidence, e)
        {
            h.verdict = None;
            self.counters.evidence += 1;
        }
    }

    fn mac_evidence(&mut self, mac: [u8; 6], e: Evidence) {
        let (f, evicted) = self.macs.get_or_insert_with(mac, MacFacts::default);
        if evicted.is_some() {
            self.counters.macs_evicted += 1;
        }
        if add_evidence(&mut f.evidence, e) {
            self.counters.evidence += 1;
            let bound = f.local.clone();
            self.invalidate(&bound);
        }
    }

    /// Sets (`Some`) or clears (`None`) the type of `ip` by hand. `false` when the table of
    /// overrides is full.
    pub fn set_override(&mut self, ip: IpAddr, t: Option<DeviceType>) -> bool {
        match t {
            Some(t) => {
                if !self.overrides.contains_key(&ip)
                    && self.overrides.len() >= self.config.max_overrides
                {
                    return false;
                }
                self.overrides.insert(ip, t);
            }
            None => {
                self.overrides.remove(&ip);
            }
        }
        true
    }

    /// Every manual override, in no particular order.
    pub fn overrides(&self) -> impl Iterator<Item = (IpAddr, DeviceType)> + '_ {
        self.overrides.iter().map(|(ip, t)| (*ip, *t))
    }

    /// Keeps the overrides in `path` from now on (`None`: in memory only).
    pub fn set_overrides_file(&mut self, path: Option<std::path::PathBuf>) {
        self.overrides_file = path;
    }

    /// Writes the overrides to their file, when there is one (after a change).
    pub fn save_overrides(&self) -> Result<(), String> {
        self.overrides_file
            .as_deref()
            .map_or(Ok(()), |p| super::persist::save(self, p))
    }

    /// The override of `ip`, if any.
    pub fn override_of(&self, ip: IpAddr) -> Option<DeviceType> {
        self.overrides.get(&ip).copied()
    }

    /// Every evidence item about `ip` (without directory and override), strongest first.
    fn evidence_of(&self, ip: IpAddr) -> Vec<Evidence> {
        let Some(h) = self.hosts.peek(&ip) else {
            return Vec::new();
        };
        let mut ev = h.evidence.clone();
        if let Some(mac) = h.mac {
            let facts = self.macs.peek(&mac);
            if facts.is_none_or(|f| !f.shared()) {
                ev.extend(mac_evidence(mac));
                if let Some(f) = facts {
                    ev.extend(f.evidence.iter().cloned());
                    if f.gateway() {
                        ev.push(rules::gateway(f.remote.len()));
                    }
                }
            }
        }
        ev.sort_by(|a, b| b.weight.total_cmp(&a.weight).then(a.source.cmp(&b.source)));
        ev
    }

    /// The verdict for `ip` from traffic alone (cached; recomputed when evidence changed).
    pub fn verdict(&mut self, ip: IpAddr) -> Option<Verdict> {
        if let Some(t) = self.overrides.get(&ip) {
            return Some(Verdict {
                device_type: *t,
                confidence: 1.0,
            });
        }
        if let Some(v) = self.hosts.peek(&ip)?.verdict {
            return Some(v);
        }
        let v = classify(&self.evidence_of(ip));
        if let Some(h) = self.hosts.get_mut(&ip) {
            h.verdict = Some(v);
        }
        Some(v)
    }

    /// The full view of `ip`, with the directory's entry deciding for Kubernetes endpoints.
    /// `None` for an address never seen as a local endpoint.
    pub fn view(&self, ip: IpAddr, dir: Option<&DirectoryEntry>) -> Option<DeviceView> {
        let h = self.hosts.peek(&ip)?;
        let mut ev = Vec::new();
        let manual = self.overrides.get(&ip).copied();
        if let Some(t) = manual {
            ev.push(Evidence::new(Source::Manual, t, 1.0, "set through the API"));
        }
        if let Some(e) = dir {
            let t = match e.kind {
                EndpointKind::Pod => DeviceType::KubernetesPod,
                EndpointKind::Node => DeviceType::KubernetesNode,
                EndpointKind::Service => DeviceType::KubernetesService,
            };
            ev.push(Evidence::new(
                Source::Directory,
                t,
                1.0,
                &format!("{} {}", e.kind.as_str(), e.display_name()),
            ));
        }
        ev.extend(self.evidence_of(ip));
        let v = classify(&ev);
        Some(DeviceView {
            ip,
            mac: h.mac.map(oui::format),
            vendor: h.mac.and_then(oui::vendor),
            device_type: v.device_type,
            confidence: v.confidence,
            manual: manual.is_some(),
            evidence: ev,
            first_seen_ns: h.first_seen_ns,
            last_seen_ns: h.last_seen_ns,
        })
    }

    /// Every tracked address, in no particular order.
    pub fn addresses(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.hosts.iter().map(|(ip, _)| *ip)
    }
}

/// What an Ethernet address says by itself: maker, hypervisor range, or randomised.
fn mac_evidence(mac: [u8; 6]) -> Vec<Evidence> {
    let mut ev = Vec::new();
    if let Some(vm) = oui::virtual_machine(mac) {
        ev.push(rules::virtual_machine(vm));
    } else if oui::is_local(mac) {
        ev.push(rules::random_mac(&oui::format(mac)));
    } else if let Some(v) = oui::vendor(mac) {
        ev.push(rules::vendor(v));
    }
    ev
}

/// Whether an address can be a device: not unspecified, multicast or broadcast.
fn usable(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => !(a.is_unspecified() || a.is_multicast() || a.is_broadcast()),
        IpAddr::V6(a) => !(a.is_unspecified() || a.is_multicast()),
    }
}
