use super::*;
use crate::dpi::tests::{corpus_flow, risk_keys};

const CREDS: &str = "NDPI_CLEAR_TEXT_CREDENTIALS";

/// Each corpus login nDPI flags: same risk, same user name in the detail.
#[test]
fn corpus_logins_match_ndpi() {
    for (pcap, port) in [
        ("ftp.pcap", 50694),
        ("ftp_failed.pcap", 21),
        ("pop3.pcap", 35287),
        ("imap.pcap", 143),
        ("irc.pcap", 8000),
    ] {
        let (rec, exp) = corpus_flow(pcap, port);
        assert!(risk_keys(&rec).contains(&CREDS.to_owned()), "{pcap}");
        let info = exp["risk_info"].as_str().unwrap_or_default();
        let ours = rec
            .risk_details
            .iter()
            .find(|d| d.risk == u32::from(rid::CLEAR_TEXT_CREDENTIALS))
            .map(|d| d.detail.clone())
            .unwrap_or_default();
        assert!(
            info.contains(&ours),
            "{pcap}: {ours:?} not in nDPI's {info:?}"
        );
    }
}

/// POP3 sessions that only ask for capabilities carry no credentials; one that logs in with
/// `AUTH PLAIN` (base64 user and password in clear, RFC 4616) does — nDPI 4.11 misses it.
#[test]
fn pop3_auth_plain_but_not_capa() {
    for port in [26272, 26304] {
        let (rec, _) = corpus_flow("pop3.pcap", port);
        assert!(!risk_keys(&rec).contains(&CREDS.to_owned()), "{port}");
    }
    let (rec, exp) = corpus_flow("pop3.pcap", 26383);
    assert!(risk_keys(&rec).contains(&CREDS.to_owned()));
    assert!(!exp["risk_keys"].to_string().contains(CREDS));
}

/// SMTP: the greeting's domain is the host name; `AUTH LOGIN` sends base64 credentials in
/// clear (emotet.pcap's submission on 587 — nDPI 4.11 does not flag it; we do).
#[test]
fn smtp_greeting_and_auth_login() {
    let (rec, exp) = corpus_flow("smtp.pcap", 25);
    assert_eq!(
        rec.l7.as_ref().map(|l| l.hostname.as_str()),
        exp["hostname"].as_str()
    );
    assert!(!risk_keys(&rec).contains(&CREDS.to_owned()));
    let (rec, exp) = corpus_flow("emotet.pcap", 57309);
    assert_eq!(
        rec.l7.as_ref().map(|l| l.hostname.as_str()),
        exp["hostname"].as_str()
    );
    assert!(risk_keys(&rec).contains(&CREDS.to_owned()));
}

/// telnet.pcap: a character-mode login ("fake"), then a password.
#[test]
fn telnet_login() {
    let (rec, _) = corpus_flow("telnet.pcap", 23);
    let l7 = rec.l7.clone().expect("l7");
    assert_eq!(l7.master_protocol, "Telnet");
    assert!(risk_keys(&rec).contains(&"NDPI_UNSAFE_PROTOCOL".to_owned()));
    let detail = rec
        .risk_details
        .iter()
        .find(|d| d.risk == u32::from(rid::CLEAR_TEXT_CREDENTIALS))
        .map(|d| d.detail.clone());
    assert_eq!(detail.as_deref(), Some("Found Telnet username (fake)"));
}

#[test]
fn lines_split_anywhere() {
    let session: &[u8] = b"a1 CAPABILITY\r\na2 LOGIN \"bob\" secret\r\n";
    for cut in 0..session.len() {
        let mut f = TextFlow::new(Dialect::Imap);
        f.on_payload(true, &session[..cut]);
        f.on_payload(true, &session[cut..]);
        assert_eq!(f.user, "bob", "cut {cut}");
    }
}

#[test]
fn long_lines_are_dropped_not_kept() {
    let mut f = TextFlow::new(Dialect::Ftp);
    for _ in 0..100 {
        f.on_payload(true, &[b'A'; 1000]);
    }
    assert!(f.line[0].len() <= MAX_LINE);
    f.on_payload(true, b"\r\nUSER eve\r\n");
    assert_eq!(f.user, "eve");
    let mut t = TextFlow::new(Dialect::Telnet);
    t.on_payload(false, b"login: ");
    for _ in 0..1000 {
        t.on_payload(true, b"x");
    }
    assert!(t.line[0].len() <= 64);
    assert_eq!(
        strip_iac(b"\xff\xfb\x01a\xff\xffb\xff\xfa\x18\x01\xff\xf0c\xff"),
        b"a\xffbc"
    );
}
