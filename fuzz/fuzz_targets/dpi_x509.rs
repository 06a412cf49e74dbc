//! Fuzzes the certificate summary (x509-parser, DN formatting, SAN matching) with DER bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use netwarden_sensor::dpi::tls::cert;

fuzz_target!(|data: &[u8]| {
    if let Some(s) = cert::summarize(data, Some("www.example.com")) {
        assert!(s.cert.san.len() <= netwarden_sensor::dpi::util::MAX_LIST);
        assert_eq!(s.cert.sha1.len(), 40);
    }
    let _ = cert::issuer_of(data);
});
