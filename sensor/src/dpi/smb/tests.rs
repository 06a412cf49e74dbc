use super::*;
use crate::dpi::tests::{corpus_flow, expected_risk_keys, risk_keys};

/// nDPI's `smbv1.pcap`: an SMBv1 session on 445 (`NetBIOS.SMBv1`, insecure version, unsafe,
/// and NetBIOS's port 139 expected).
#[test]
fn smbv1_session_matches_ndpi() {
    let (rec, exp) = corpus_flow("smbv1.pcap", 445);
    let l7 = rec.l7.clone().expect("l7");
    assert_eq!(l7.master_protocol, "NetBIOS");
    assert_eq!(Some(l7.app_protocol.as_str()), exp["app_proto"].as_str());
    assert_eq!(risk_keys(&rec), expected_risk_keys(&exp));
    assert_eq!(l7.smb.map(|s| s.dialect).as_deref(), Some("SMBv1"));
}

/// nDPI's `smb_deletefile.pcap`: SMB2/3 on 445 (compound CREATE/FIND/CLOSE), no risk. The
/// capture starts mid-session (no NEGOTIATE, checked with tshark), so no dialect is claimed.
#[test]
fn smb2_session_without_negotiate() {
    let (rec, exp) = corpus_flow("smb_deletefile.pcap", 445);
    let l7 = rec.l7.clone().expect("l7");
    assert_eq!(Some(l7.app_protocol.as_str()), exp["app_proto"].as_str());
    assert_eq!(risk_keys(&rec), expected_risk_keys(&exp));
    assert_eq!(l7.smb, None);
}

#[test]
fn dialect_from_negotiate() {
    // MS-SMB2 2.2.3 request offering 2.0.2, 2.1, 3.0, 3.0.2, 3.1.1 (DialectCount 5).
    let mut req = vec![0u8; 4];
    let mut smb = b"\xfeSMB".to_vec();
    smb.resize(64, 0);
    let mut body = vec![36, 0, 5, 0];
    body.resize(36, 0);
    for d in [0x0202u16, 0x0210, 0x0300, 0x0302, 0x0311] {
        body.extend(d.to_le_bytes());
    }
    smb.extend(&body);
    req[3] = u8::try_from(smb.len()).unwrap();
    req.extend(&smb);
    let mut flow = SmbFlow::probe(&req).expect("smb2");
    assert_eq!(flow.version, Version::V23);
    flow.on_payload(true, &req);
    assert_eq!(flow.dialect, "SMB 3.1.1");
    assert!(!flow.is_done());
    // 2.2.4 response choosing 3.0.2.
    let mut resp = vec![0u8; 4];
    let mut smb = b"\xfeSMB".to_vec();
    smb.resize(64, 0);
    smb.extend([65, 0, 1, 0, 0x02, 0x03]);
    resp[3] = u8::try_from(smb.len()).unwrap();
    resp.extend(&smb);
    flow.on_payload(false, &resp);
    assert_eq!(flow.dialect, "SMB 3.0.2");
    assert!(flow.is_done());
}

#[test]
fn hostile_messages_are_bounded() {
    assert!(SmbFlow::probe(b"\x00\x00\x00\x05\xffSMB\x72").is_none());
    assert!(SmbFlow::probe(b"\x00\xff\xff\xff\xfeSMB").is_none());
    let mut flow =
        SmbFlow::probe(&[&[0u8, 0, 0, 40][..], b"\xffSMB", &[0u8; 36]].concat()).expect("smb1");
    for n in 0..200 {
        let mut p = vec![0u8, 0, 0, 255, 0xfe, b'S', b'M', b'B'];
        p.resize(n + 8, 0xff);
        flow.on_payload(n % 2 == 0, &p);
        let mut p = vec![0u8, 0, 0, 255, 0xff, b'S', b'M', b'B', 0x72];
        p.resize(n + 9, 0xff);
        flow.on_payload(true, &p);
    }
}
