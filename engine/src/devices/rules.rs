//! Facts → evidence: the rules, pure and table-driven, in one place so docs/devices.md can
//! list them. Each rule reads one untrusted string, matches lower-cased substrings or exact
//! lists, and returns bounded [`Evidence`]. Weights are deliberately modest: one source alone
//! rarely gives more than 0.7, agreement between sources is what makes a confident guess.
//!
//! Sources of the rules: ntopng (`src/Mac.cpp` OUIs and Apple models, `src/Flow.cpp` mDNS
//! services, `src/Utils.cpp` `getDeviceTypeFromOsDetail`), Fingerbank-style DHCP option-55 lists
//! for the common systems, and the vendor-class strings those systems send.

use super::{DeviceType as T, Evidence, Source};

/// Makers whose name (lower-cased, substring) says what their devices are, with the weight.
/// Makers of everything (Apple, Samsung, HP, Dell…) are absent: they only say who made it.
const VENDORS: &[(&str, T, f32)] = &[
    ("brother industries", T::Printer, 0.6),
    ("seiko epson", T::Printer, 0.6),
    ("canon inc", T::Printer, 0.4),
    ("kyocera", T::Printer, 0.6),
    ("lexmark", T::Printer, 0.6),
    ("xerox", T::Printer, 0.5),
    ("ricoh", T::Printer, 0.5),
    ("konica minolta", T::Printer, 0.5),
    ("zebra technologies", T::Printer, 0.5),
    ("synology", T::Nas, 0.7),
    ("qnap", T::Nas, 0.7),
    ("asustor", T::Nas, 0.7),
    ("buffalo", T::Nas, 0.4),
    ("cisco", T::Networking, 0.5),
    ("juniper", T::Networking, 0.6),
    ("ubiquiti", T::Networking, 0.5),
    ("routerboard", T::Networking, 0.7),
    ("mikrotik", T::Networking, 0.7),
    ("netgear", T::Networking, 0.4),
    ("tp-link", T::Networking, 0.4),
    ("arista", T::Networking, 0.6),
    ("fortinet", T::Networking, 0.6),
    ("palo alto networks", T::Networking, 0.6),
    ("zyxel", T::Networking, 0.5),
    ("d-link", T::Networking, 0.4),
    ("avm audiovisuelles", T::Networking, 0.6),
    ("extreme networks", T::Networking, 0.6),
    ("ruckus", T::Wifi, 0.6),
    ("aerohive", T::Wifi, 0.6),
    ("cambium networks", T::Wifi, 0.5),
    ("meraki", T::Wifi, 0.5),
    ("aruba", T::Wifi, 0.5),
    ("sonos", T::Multimedia, 0.7),
    ("roku", T::Multimedia, 0.7),
    ("bose corporation", T::Multimedia, 0.6),
    ("denon", T::Multimedia, 0.5),
    ("harman", T::Multimedia, 0.4),
    ("nintendo", T::Multimedia, 0.6),
    ("sony interactive", T::Multimedia, 0.6),
    ("vizio", T::Tv, 0.7),
    ("hisense", T::Tv, 0.5),
    ("tcl king", T::Tv, 0.5),
    ("espressif", T::Iot, 0.6),
    ("tuya", T::Iot, 0.7),
    ("shelly", T::Iot, 0.7),
    ("allterco", T::Iot, 0.7),
    ("signify", T::Iot, 0.6),
    ("philips lighting", T::Iot, 0.6),
    ("nest labs", T::Iot, 0.6),
    ("ring llc", T::Iot, 0.6),
    ("ecobee", T::Iot, 0.7),
    ("wyze", T::Iot, 0.6),
    ("hikvision", T::Iot, 0.6),
    ("dahua", T::Iot, 0.6),
    ("axis communications", T::Iot, 0.5),
    ("raspberry pi", T::Iot, 0.3),
    ("silicon laboratories", T::Iot, 0.3),
    ("supermicro", T::Server, 0.5),
    ("super micro", T::Server, 0.5),
];

/// Evidence from the maker of an Ethernet address (`vendor` from the OUI registry).
pub fn vendor(name: &str) -> Evidence {
    let lower = name.to_ascii_lowercase();
    VENDORS
        .iter()
        .find(|(k, _, _)| lower.contains(k))
        .map_or_else(
            || Evidence::new(Source::MacVendor, T::Unknown, 0.0, name),
            |&(_, t, w)| Evidence::new(Source::MacVendor, t, w, name),
        )
}

/// Evidence from a hypervisor's address range: a virtual machine, most often a server.
pub fn virtual_machine(hypervisor: &str) -> Evidence {
    Evidence::new(Source::VirtualMac, T::Server, 0.5, hypervisor)
}

/// Evidence from a locally administered address: phones, tablets and laptops randomise theirs
/// on Wi-Fi ("private address"); containers and VMs use them too, so it is weak.
pub fn random_mac(mac: &str) -> Evidence {
    Evidence::new(Source::RandomMac, T::Phone, 0.15, mac)
}

/// Known DHCP option-55 lists (parameter request lists), exact.
const FINGERPRINTS: &[(&str, T, f32, &str)] = &[
    (
        "1,121,3,6,15,119,252,95,44,46",
        T::Workstation,
        0.5,
        "macOS",
    ),
    (
        "1,121,3,6,15,114,119,252,95,44,46",
        T::Workstation,
        0.5,
        "macOS",
    ),
    ("1,121,3,6,15,119,252", T::Phone, 0.4, "iOS"),
    ("1,121,3,6,15,114,119,252", T::Phone, 0.4, "iOS"),
    ("1,3,6,15,119,252", T::Phone, 0.4, "iOS"),
    (
        "1,3,6,15,31,33,43,44,46,47,119,121,249,252",
        T::Workstation,
        0.5,
        "Windows",
    ),
    (
        "1,15,3,6,44,46,47,31,33,121,249,43",
        T::Workstation,
        0.5,
        "Windows",
    ),
    ("1,3,6,15,26,28,51,58,59,43", T::Phone, 0.5, "Android"),
    ("1,3,6,15,26,28,51,58,59,43,114", T::Phone, 0.5, "Android"),
    ("1,33,3,6,15,28,51,58,59", T::Phone, 0.4, "Android"),
    ("1,121,33,3,6,15,28,51,58,59,119", T::Phone, 0.4, "Android"),
    ("1,3,6,12,15,28,42", T::Iot, 0.3, "embedded Linux (udhcpc)"),
    (
        "1,3,6,12,15,28,40,41,42",
        T::Iot,
        0.3,
        "embedded Linux (udhcpc)",
    ),
    (
        "1,28,2,3,15,6,119,12,44,47,26,121,42",
        T::Workstation,
        0.2,
        "Linux (dhclient)",
    ),
    (
        "1,3,6,15,44,46,47,31,33,249,43,252",
        T::Workstation,
        0.4,
        "Windows",
    ),
];

/// Evidence from a DHCP parameter request list (`1,3,6,…`).
pub fn dhcp_fingerprint(list: &str) -> Evidence {
    FINGERPRINTS
        .iter()
        .find(|(f, _, _, _)| *f == list)
        .map_or_else(
            || Evidence::new(Source::DhcpFingerprint, T::Unknown, 0.0, list),
            |&(_, t, w, os)| Evidence::new(Source::DhcpFingerprint, t, w, &format!("{os}: {list}")),
        )
}

/// Evidence from a DHCP vendor class (option 60).
pub fn dhcp_vendor_class(class: &str) -> Evidence {
    let l = class.to_ascii_lowercase();
    let (t, w) = if l.starts_with("msft") {
        (T::Workstation, 0.4)
    } else if l.starts_with("android-dhcp") {
        (T::Phone, 0.5)
    } else if l.contains("jetdirect") || l.contains("laserjet") || l.contains("printer") {
        (T::Printer, 0.7)
    } else if l.contains("cisco ap") || l.contains("aruba ap") || l.contains("airespace") {
        (T::Wifi, 0.7)
    } else if l.starts_with("udhcp") {
        (T::Iot, 0.3)
    } else if l.starts_with("dhcpcd") {
        (T::Workstation, 0.15)
    } else {
        (T::Unknown, 0.0)
    };
    Evidence::new(Source::DhcpVendorClass, t, w, class)
}

/// Host-name words (lower-cased, substring) and what they say; the first match wins, so
/// specific words come first.
const NAMES: &[(&str, T, f32)] = &[
    ("iphone", T::Phone, 0.7),
    ("ipad", T::Tablet, 0.7),
    ("macbook", T::Laptop, 0.7),
    ("imac", T::Workstation, 0.7),
    ("mac-mini", T::Workstation, 0.6),
    ("macmini", T::Workstation, 0.6),
    ("mac-pro", T::Workstation, 0.6),
    ("appletv", T::Tv, 0.7),
    ("apple-tv", T::Tv, 0.7),
    ("homepod", T::Multimedia, 0.7),
    ("galaxy-tab", T::Tablet, 0.6),
    ("galaxy", T::Phone, 0.5),
    ("android", T::Phone, 0.5),
    ("pixel", T::Phone, 0.4),
    ("laptop", T::Laptop, 0.6),
    ("notebook", T::Laptop, 0.5),
    ("desktop", T::Workstation, 0.5),
    ("chromecast", T::Multimedia, 0.7),
    ("roku", T::Multimedia, 0.6),
    ("firetv", T::Tv, 0.6),
    ("bravia", T::Tv, 0.6),
    ("webostv", T::Tv, 0.6),
    ("smarttv", T::Tv, 0.6),
    ("samsung-tv", T::Tv, 0.6),
    ("sonos", T::Multimedia, 0.6),
    ("playstation", T::Multimedia, 0.6),
    ("xbox", T::Multimedia, 0.6),
    ("printer", T::Printer, 0.6),
    ("laserjet", T::Printer, 0.7),
    ("officejet", T::Printer, 0.7),
    ("deskjet", T::Printer, 0.7),
    ("epson", T::Printer, 0.5),
    ("diskstation", T::Nas, 0.7),
    ("synology", T::Nas, 0.6),
    ("qnap", T::Nas, 0.6),
    ("nas", T::Nas, 0.3),
    ("echo", T::Iot, 0.3),
    ("esp_", T::Iot, 0.5),
    ("esp-", T::Iot, 0.5),
    ("shelly", T::Iot, 0.6),
    ("tasmota", T::Iot, 0.6),
    ("camera", T::Iot, 0.4),
    ("router", T::Networking, 0.5),
    ("-ap-", T::Wifi, 0.3),
    ("server", T::Server, 0.4),
    ("srv", T::Server, 0.3),
];

/// Evidence from a host name the device gave itself (DHCP option 12, NetBIOS). `source` is
/// where it was read; NetBIOS names are weaker (often set by people).
pub fn host_name(source: Source, name: &str) -> Evidence {
    let l = name.to_ascii_lowercase();
    let scale = if source == Source::Netbios { 0.8 } else { 1.0 };
    NAMES.iter().find(|(k, _, _)| l.contains(k)).map_or_else(
        || Evidence::new(source, T::Unknown, 0.0, name),
        |&(_, t, w)| Evidence::new(source, t, w * scale, name),
    )
}

/// DNS-SD service types and what announcing them says (ntopng `Flow.cpp` plus common ones).
const SERVICES: &[(&str, T, f32)] = &[
    ("_ipp.", T::Printer, 0.6),
    ("_ipps.", T::Printer, 0.6),
    ("_printer.", T::Printer, 0.6),
    ("_pdl-datastream.", T::Printer, 0.7),
    ("_uscan.", T::Printer, 0.4),
    ("_uscans.", T::Printer, 0.4),
    ("_scanner.", T::Printer, 0.4),
    ("_airplay.", T::Multimedia, 0.5),
    ("_raop.", T::Multimedia, 0.4),
    ("_googlecast.", T::Multimedia, 0.6),
    ("_spotify-connect.", T::Multimedia, 0.4),
    ("_sonos.", T::Multimedia, 0.7),
    ("_amzn-wplay.", T::Tv, 0.5),
    ("_hap.", T::Iot, 0.7),
    ("_matter.", T::Iot, 0.6),
    ("_matterc.", T::Iot, 0.6),
    ("_smb.", T::Nas, 0.3),
    ("_afpovertcp.", T::Nas, 0.3),
    ("_adisk.", T::Nas, 0.3),
    ("_nfs.", T::Nas, 0.3),
    ("_ssh.", T::Workstation, 0.3),
    ("_sftp-ssh.", T::Workstation, 0.3),
    ("_rfb.", T::Workstation, 0.3),
    ("_workstation.", T::Workstation, 0.4),
    ("_sleep-proxy.", T::Networking, 0.3),
    ("_airport.", T::Wifi, 0.6),
];

/// Evidence from an mDNS service type the device announced (`_ipp._tcp`).
pub fn mdns_service(service: &str) -> Evidence {
    let l = format!("{}.", service.to_ascii_lowercase());
    SERVICES
        .iter()
        .find(|(k, _, _)| l.starts_with(k))
        .map_or_else(
            || Evidence::new(Source::Mdns, T::Unknown, 0.0, service),
            |&(_, t, w)| Evidence::new(Source::Mdns, t, w, service),
        )
}

/// Evidence from an HTTP `User-Agent` the device sent: the operating system it names
/// (ntopng `getDeviceTypeFromOsDetail`, plus TVs and consoles).
pub fn user_agent(ua: &str) -> Evidence {
    let l = ua.to_ascii_lowercase();
    let (t, w) = if l.contains("ipad") {
        (T::Tablet, 0.6)
    } else if l.contains("iphone") {
        (T::Phone, 0.6)
    } else if l.contains("crkey") {
        (T::Multimedia, 0.7)
    } else if l.contains("appletv")
        || l.contains("tvos")
        || l.contains("smart-tv")
        || l.contains("smarttv")
        || l.contains("tizen")
        || l.contains("web0s")
        || l.contains("webos")
        || l.contains("bravia")
    {
        (T::Tv, 0.7)
    } else if l.contains("playstation")
        || l.contains("xbox")
        || l.contains("nintendo")
        || l.contains("roku")
    {
        (T::Multimedia, 0.6)
    } else if l.contains("android") && l.contains("mobile") {
        (T::Phone, 0.5)
    } else if l.contains("android") {
        (T::Tablet, 0.3)
    } else if l.contains("windows nt") || l.contains("macintosh") || l.contains("mac os x") {
        (T::Workstation, 0.4)
    } else if l.contains("captivenetworksupport") {
        // Apple's captive-portal probe: iOS and macOS both send it, iOS far more often.
        (T::Phone, 0.3)
    } else if l.contains("cros") || l.contains("x11; linux") {
        (T::Workstation, 0.3)
    } else {
        (T::Unknown, 0.0)
    };
    Evidence::new(Source::HttpUserAgent, t, w, ua)
}

/// Evidence from an HTTP `Server` header the device answered with (embedded web servers of
/// printers, NAS and cameras).
pub fn http_server(server: &str) -> Evidence {
    let l = server.to_ascii_lowercase();
    let (t, w) = if l.contains("cups")
        || l.contains("hp http server")
        || l.contains("epson")
        || l.contains("brother")
        || l.contains("kyocera")
        || l.contains("lexmark")
    {
        (T::Printer, 0.5)
    } else if l.contains("synology") || l.contains("qnap") {
        (T::Nas, 0.5)
    } else if l.contains("hikvision") || l.contains("dahua") || l.contains("webcam") {
        (T::Iot, 0.5)
    } else if l.contains("routeros") || l.contains("mini_httpd") || l.contains("lighttpd") {
        (T::Networking, 0.2)
    } else {
        (T::Unknown, 0.0)
    };
    Evidence::new(Source::HttpServer, t, w, server)
}

/// A service a host was seen answering, by UDP/TCP port, and what it says.
pub fn serves(l4: u8, port: u16) -> Option<Evidence> {
    serves_fact(l4, port).map(|(t, w, what)| Evidence::new(Source::Behaviour, t, w, what))
}

/// [`serves`] without allocating: the type, weight and detail.
pub fn serves_fact(l4: u8, port: u16) -> Option<(T, f32, &'static str)> {
    Some(match (l4, port) {
        (17, 67) => (T::Networking, 0.6, "answers DHCP (udp/67)"),
        (17 | 6, 53) => (T::Networking, 0.4, "answers DNS (53)"),
        (17, 123) => (T::Server, 0.3, "answers NTP (udp/123)"),
        (6, 631) => (T::Printer, 0.5, "answers IPP (tcp/631)"),
        (6, 9100) => (T::Printer, 0.6, "answers raw printing (tcp/9100)"),
        (6, 515) => (T::Printer, 0.5, "answers LPD (tcp/515)"),
        (6, 8009) => (T::Multimedia, 0.4, "answers Cast (tcp/8009)"),
        (6, 7000) => (T::Multimedia, 0.2, "answers AirPlay (tcp/7000)"),
        (6, 548) => (T::Nas, 0.3, "answers AFP (tcp/548)"),
        (6, 179) => (T::Networking, 0.6, "answers BGP (tcp/179)"),
        (6, 389 | 636 | 88) => (T::Server, 0.5, "answers LDAP/Kerberos"),
        (6, 25 | 465 | 587) => (T::Server, 0.4, "answers SMTP"),
        _ => return None,
    })
}

/// Evidence that a host's Ethernet address carries the traffic of `remote` remote addresses:
/// it routes (a gateway).
pub fn gateway(remote: usize) -> Evidence {
    Evidence::new(
        Source::Behaviour,
        T::Networking,
        0.6,
        &format!("routes for remote addresses (its Ethernet address carries {remote}+)"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_read_the_usual_strings() {
        assert_eq!(
            user_agent("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0)").device_type,
            T::Phone
        );
        assert_eq!(
            user_agent("Mozilla/5.0 (Linux; Android 14; Pixel 8) Mobile").device_type,
            T::Phone
        );
        assert_eq!(
            user_agent("Mozilla/5.0 (Windows NT 10.0; Win64; x64)").device_type,
            T::Workstation
        );
        assert_eq!(user_agent("curl/8.0").device_type, T::Unknown);
        assert_eq!(
            host_name(Source::DhcpHostname, "Lucas-iPhone").device_type,
            T::Phone
        );
        assert_eq!(
            host_name(Source::DhcpHostname, "Lucas-iMac").device_type,
            T::Workstation
        );
        assert_eq!(
            host_name(Source::DhcpHostname, "DESKTOP-1A2B3C").device_type,
            T::Workstation
        );
        assert_eq!(mdns_service("_ipp._tcp").device_type, T::Printer);
        assert_eq!(mdns_service("_ippusb._tcp").device_type, T::Unknown);
        assert_eq!(mdns_service("_hap._tcp").device_type, T::Iot);
        assert_eq!(
            dhcp_fingerprint("1,121,3,6,15,119,252").device_type,
            T::Phone
        );
        assert_eq!(
            dhcp_fingerprint("1,121,3,6,15,119,252,95,44,46").device_type,
            T::Workstation
        );
        assert_eq!(dhcp_vendor_class("MSFT 5.0").device_type, T::Workstation);
        assert_eq!(dhcp_vendor_class("android-dhcp-14").device_type, T::Phone);
        assert_eq!(vendor("Seiko Epson Corporation").device_type, T::Printer);
        assert_eq!(vendor("Apple, Inc.").device_type, T::Unknown);
        assert_eq!(serves(17, 67).map(|e| e.device_type), Some(T::Networking));
        assert_eq!(serves(6, 443), None);
    }
}
