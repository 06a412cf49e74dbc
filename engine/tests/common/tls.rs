//! A real TLS 1.2 session for generated captures: rustls on both ends, in memory, with a
//! certificate rcgen makes on the spot.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

/// A client that trusts exactly one certificate (pinning), checking the handshake signatures.
#[derive(Debug)]
pub struct Pinned(
    pub rustls::pki_types::CertificateDer<'static>,
    pub Arc<CryptoProvider>,
);

impl rustls::client::danger::ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.0.as_ref() {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General("not the pinned certificate".into()))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.1.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.1.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.1.signature_verification_algorithms.supported_schemes()
    }
}

/// A real TLS 1.2 session (rustls on both ends, in memory) with a certificate rcgen just made:
/// for `name` (its CN replaced by `common_name` when given): the bytes each side wrote, in order, `true` for client to server.
pub fn tls_session(name: &str, common_name: Option<&str>) -> Vec<(bool, Vec<u8>)> {
    use std::io::{Read, Write};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut params = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap();
    if let Some(cn) = common_name {
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
    }
    let key_pair = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key_pair).unwrap().der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(key_pair.serialize_der().into());
    let server_cfg = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    let client_cfg = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned(cert, provider)))
        .with_no_client_auth();
    let mut client =
        rustls::ClientConnection::new(Arc::new(client_cfg), name.to_owned().try_into().unwrap())
            .unwrap();
    let mut server = rustls::ServerConnection::new(Arc::new(server_cfg)).unwrap();
    client
        .writer()
        .write_all(format!("GET / HTTP/1.1\r\nHost: {name}\r\n\r\n").as_bytes())
        .unwrap();
    let mut flights = Vec::new();
    let mut answered = false;
    for _ in 0..20 {
        let mut c2s = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut c2s).unwrap();
        }
        if !c2s.is_empty() {
            server.read_tls(&mut c2s.as_slice()).unwrap();
            server.process_new_packets().unwrap();
            flights.push((true, c2s));
        }
        let mut request = Vec::new();
        let _ = server.reader().read_to_end(&mut request);
        if !request.is_empty() && !answered {
            server
                .writer()
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                .unwrap();
            answered = true;
        }
        let mut s2c = Vec::new();
        while server.wants_write() {
            server.write_tls(&mut s2c).unwrap();
        }
        if s2c.is_empty() && answered && !client.wants_write() {
            break;
        }
        if !s2c.is_empty() {
            client.read_tls(&mut s2c.as_slice()).unwrap();
            client.process_new_packets().unwrap();
            flights.push((false, s2c));
        }
    }
    assert!(
        answered && !client.is_handshaking(),
        "the handshake completed"
    );
    flights
}
