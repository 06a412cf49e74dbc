use super::*;
use crate::dpi::tests::{corpus_flow, expected_risk_keys, risk_keys};

/// nDPI's `ssh.pcap`: the server (port 22) speaks first with OpenSSH 5.3, the client answers
/// with OpenSSH 5.6; both offer arcfour ciphers. nDPI names the first banner it sees the
/// "client signature" (its host name) and the second the server's; we keep them by the TCP
/// handshake's roles, so they come out swapped here. HASSH is by direction in both.
#[test]
fn banners_hassh_and_obsolete_risks_match_ndpi() {
    let (rec, exp) = corpus_flow("ssh.pcap", 58395);
    let l7 = rec.l7.clone().expect("l7");
    assert_eq!(l7.master_protocol, "SSH");
    let ssh = l7.ssh.expect("ssh");
    assert_eq!(Some(ssh.server_banner.as_str()), exp["hostname"].as_str());
    assert_eq!(
        Some(ssh.client_banner.as_str()),
        exp["server_info"].as_str()
    );
    assert_eq!(l7.hostname, ssh.client_banner);
    assert!(
        ssh.hassh_client
            .eq_ignore_ascii_case(exp["hassh_c"].as_str().unwrap())
    );
    assert!(
        ssh.hassh_server
            .eq_ignore_ascii_case(exp["hassh_s"].as_str().unwrap())
    );
    assert_eq!(ssh.hassh_client.len(), 32);
    for key in expected_risk_keys(&exp) {
        assert!(risk_keys(&rec).contains(&key), "{key}");
    }
}

/// The second flow of the capture (port 8000): a current client, an obsolete server only.
#[test]
fn only_the_obsolete_side_is_flagged() {
    let (rec, exp) = corpus_flow("ssh.pcap", 8000);
    let ssh = rec.l7.as_ref().and_then(|l| l.ssh.clone()).expect("ssh");
    assert!(
        ssh.hassh_client
            .eq_ignore_ascii_case(exp["hassh_c"].as_str().unwrap())
    );
    assert!(
        ssh.hassh_server
            .eq_ignore_ascii_case(exp["hassh_s"].as_str().unwrap())
    );
    let keys = risk_keys(&rec);
    assert!(keys.contains(&"NDPI_SSH_OBSOLETE_SERVER_VERSION_OR_CIPHER".to_owned()));
    assert!(!keys.contains(&"NDPI_SSH_OBSOLETE_CLIENT_VERSION_OR_CIPHER".to_owned()));
}

#[test]
fn version_table() {
    let check = |banner: &str| {
        let mut r = Risks::default();
        version_risk(banner, true, &mut r);
        r.has(rid::SSH_OBSOLETE_CLIENT_VERSION_OR_CIPHER)
    };
    assert!(check("SSH-2.0-OpenSSH_5.3"));
    assert!(check("SSH-2.0-OpenSSH_6.6.1p1 Ubuntu-2ubuntu2"));
    assert!(!check("SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.1"));
    assert!(!check("SSH-2.0-OpenSSH_7.0"));
    assert!(check("SSH-2.0-paramiko_2.3.1"));
    assert!(check("SSH-2.0-dropbear_2019.78"));
    assert!(!check("SSH-2.0-dropbear_2022.83"));
    assert!(!check("SSH-2.0-Go"));
    assert!(!check("SSH-2.0-OpenSSH_x"));
}

/// A banner and KEXINIT split at every byte give the same hash as one segment.
#[test]
fn split_segments_reassemble() {
    let mut whole = SshFlow::default();
    let mut kex = b"SSH-2.0-Test_1.0\r\n".to_vec();
    let mut body = vec![20u8];
    body.extend([7u8; 16]);
    for list in [
        &b"curve25519-sha256"[..],
        b"ssh-ed25519",
        b"aes128-ctr,3des-cbc",
        b"aes128-ctr",
        b"hmac-sha2-256",
        b"hmac-sha2-256",
        b"none",
        b"none",
        b"",
        b"",
    ] {
        body.extend(u32::try_from(list.len()).unwrap().to_be_bytes());
        body.extend(list);
    }
    body.extend([0u8; 5]); // first_kex_packet_follows, reserved
    let pad = 4u8;
    let len = u32::try_from(body.len() + 1 + usize::from(pad)).unwrap();
    kex.extend(len.to_be_bytes());
    kex.push(pad);
    kex.extend(&body);
    kex.extend([0u8; 4]);
    whole.on_payload(true, &kex, 16 * 1024);
    assert_eq!(whole.info.client_banner, "SSH-2.0-Test_1.0");
    assert_eq!(whole.info.hassh_client.len(), 32);
    let mut r = Risks::default();
    whole.risks(&mut r);
    assert!(r.has(rid::SSH_OBSOLETE_CLIENT_VERSION_OR_CIPHER));
    for cut in 1..kex.len() {
        let mut split = SshFlow::default();
        split.on_payload(true, &kex[..cut], 16 * 1024);
        split.on_payload(true, &kex[cut..], 16 * 1024);
        assert_eq!(
            split.info.hassh_client, whole.info.hassh_client,
            "cut {cut}"
        );
    }
}

#[test]
fn hostile_input_is_bounded() {
    let mut f = SshFlow::default();
    f.on_payload(true, b"SSH-2.0-x\r\n\xff\xff\xff\xff\x04", 1024);
    assert!(f.stage[0] == Stage::Done && f.buf[0].is_empty());
    let mut f = SshFlow::default();
    for _ in 0..100 {
        f.on_payload(false, &[b'a'; 100], 1024);
    }
    assert!(f.buf[1].len() <= 1024);
    let mut f = SshFlow::default();
    f.on_payload(true, b"SSH-2.0-x\r\n\x00\x00\x01\x00\x04\x14", 512);
    for _ in 0..10 {
        f.on_payload(true, &[0u8; 100], 512);
    }
    assert!(f.buf[0].len() <= 512);
}
