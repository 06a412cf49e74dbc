//! DNS-SD service types announced over mDNS (RFC 6763 §4.1, §7; RFC 6762): from every record
//! of a response (answers, authority and additional sections), the `_service._proto` pair of
//! the owner name and of a PTR target (`_services._dns-sd._udp.local PTR _ipp._tcp.local`,
//! `Office._ipp._tcp.local SRV ...`). What a device announces says what it is (a printer
//! announces `_ipp._tcp`, a TV `_airplay._tcp`), which the engine's device types use.
//!
//! Must not: keep more than [`MAX_SERVICES`] types of at most [`MAX_SERVICE_LEN`] bytes, keep
//! anything but `[a-z0-9_-]` (instance names are free text and stay out), or read past the
//! message (names go through [`super::read_name`], bounded in jumps and length).

use super::read_name;
use crate::dpi::util::Reader;

/// Most service types kept per flow.
pub const MAX_SERVICES: usize = 16;
/// Longest service type kept (`_` + a 15-byte service name per RFC 6335 §5.1, plus `._tcp`,
/// with room for the longer names seen in the wild).
pub const MAX_SERVICE_LEN: usize = 64;
/// Most resource records walked in one message.
const MAX_RECORDS: usize = 256;

/// Adds to `out` the service types named in the records of the mDNS response `msg`
/// (deduplicated, bounded). Queries are ignored: asking for a service says nothing about
/// what the asker is.
pub fn services(msg: &[u8], out: &mut Vec<String>) {
    let mut r = Reader::new(msg);
    let (Some(_id), Some(flags), Some(qd), Some(an), Some(ns), Some(ar)) =
        (r.u16(), r.u16(), r.u16(), r.u16(), r.u16(), r.u16())
    else {
        return;
    };
    if flags & 0x8000 == 0 {
        return;
    }
    let mut name = Vec::with_capacity(64);
    for _ in 0..qd {
        name.clear();
        if read_name(msg, &mut r, &mut name).is_none() || r.skip(4).is_none() {
            return;
        }
    }
    let records = (usize::from(an) + usize::from(ns) + usize::from(ar)).min(MAX_RECORDS);
    for _ in 0..records {
        name.clear();
        if read_name(msg, &mut r, &mut name).is_none() {
            return;
        }
        add(&name, out);
        let (Some(ty), Some(_class), Some(_ttl), Some(rdata)) =
            (r.u16(), r.u16(), r.u32(), r.vec16())
        else {
            return;
        };
        if ty == 12 {
            // The PTR target may point back into the message.
            let start = msg.len() - r.rest().len() - rdata.len();
            let mut rr = Reader::new(msg);
            name.clear();
            if rr.skip(start).is_some() && read_name(msg, &mut rr, &mut name).is_some() {
                add(&name, out);
            }
        }
    }
}

/// The `_service._tcp` / `_service._udp` pair at the right of `name`, if any.
pub fn service_type(name: &[u8]) -> Option<String> {
    let labels: Vec<&[u8]> = name.split(|&b| b == b'.').collect();
    let i = labels
        .iter()
        .rposition(|l| l.eq_ignore_ascii_case(b"_tcp") || l.eq_ignore_ascii_case(b"_udp"))?;
    let service = labels.get(i.checked_sub(1)?)?;
    let proto = labels[i];
    let valid = service.len() >= 2
        && service.len() + proto.len() < MAX_SERVICE_LEN
        && service.first() == Some(&b'_')
        && service[1..]
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_');
    // `_services._dns-sd._udp` is the meta-query of RFC 6763 §9, not a service.
    if !valid || service.eq_ignore_ascii_case(b"_dns-sd") {
        return None;
    }
    let mut s = String::with_capacity(service.len() + proto.len() + 1);
    s.push_str(&String::from_utf8_lossy(service).to_ascii_lowercase());
    s.push('.');
    s.push_str(&String::from_utf8_lossy(proto).to_ascii_lowercase());
    Some(s)
}

fn add(name: &[u8], out: &mut Vec<String>) {
    if out.len() >= MAX_SERVICES {
        return;
    }
    if let Some(s) = service_type(name)
        && !out.contains(&s)
    {
        out.push(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_types_from_names() {
        let t = |n: &str| service_type(n.as_bytes());
        assert_eq!(t("Office._ipp._tcp.local").as_deref(), Some("_ipp._tcp"));
        assert_eq!(t("_AirPlay._TCP.local").as_deref(), Some("_airplay._tcp"));
        assert_eq!(
            t("8fb207de._sub._apple-mobdev2._tcp.local").as_deref(),
            Some("_apple-mobdev2._tcp")
        );
        assert_eq!(t("_services._dns-sd._udp.local"), None);
        assert_eq!(t("Lucas-iMac.local"), None);
        assert_eq!(t("_tcp.local"), None);
        assert_eq!(t("x._b<script>._tcp.local"), None);
        let long = format!("_{}._tcp.local", "a".repeat(100));
        assert_eq!(t(&long), None);
    }

    /// A response with a PTR (`_services._dns-sd._udp.local` → `_ipp._tcp.local`, compressed)
    /// and an SRV owned by `Printer._ipp._tcp.local`; then a query, which adds nothing.
    #[test]
    fn services_of_a_response() {
        let mut m = vec![0, 0, 0x84, 0, 0, 0, 0, 2, 0, 0, 0, 0];
        let name = |m: &mut Vec<u8>, labels: &[&str]| {
            for l in labels {
                m.push(l.len() as u8);
                m.extend_from_slice(l.as_bytes());
            }
            m.push(0);
        };
        name(&mut m, &["_services", "_dns-sd", "_udp", "local"]);
        m.extend_from_slice(&[0, 12, 0, 1, 0, 0, 0, 10]);
        let mut target = Vec::new();
        name(&mut target, &["_ipp", "_tcp", "local"]);
        m.extend_from_slice(&(target.len() as u16).to_be_bytes());
        m.extend_from_slice(&target);
        name(&mut m, &["Printer", "_ipp", "_tcp", "local"]);
        m.extend_from_slice(&[0, 33, 0, 1, 0, 0, 0, 10, 0, 0]);
        let mut out = Vec::new();
        services(&m, &mut out);
        assert_eq!(out, vec!["_ipp._tcp".to_owned()]);
        m[2] = 0; // a query
        let mut out = Vec::new();
        services(&m, &mut out);
        assert!(out.is_empty());
        // Cut anywhere: never panics, never more than was there.
        m[2] = 0x84;
        for n in 0..m.len() {
            let mut out = Vec::new();
            services(&m[..n], &mut out);
            assert!(out.len() <= 1);
        }
    }
}
