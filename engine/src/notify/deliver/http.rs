//! HTTP delivery on hyper and tokio-rustls, with no connection pool and no proxy: the target's
//! host goes through the SSRF guard, the socket connects to the very address the guard checked
//! (no second lookup, so no DNS rebinding), TLS is rustls on ring with the platform's roots and
//! the URL's host as server name, one HTTP/1.1 POST is sent, redirects are not followed (a 3xx
//! is a failure), and the whole exchange runs under the timeout. User info in the URL becomes
//! basic auth.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::Request;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, USER_AGENT};
use hyper_util::rt::TokioIo;
use url::Url;

use super::DeliveryError;
use crate::notify::guard::Guard;
use crate::notify::secrets::SecretValue;

/// Response bytes read at most (then dropped: only the status matters).
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// The TLS side of every HTTPS delivery.
#[derive(Clone)]
pub struct HttpClient {
    tls: tokio_rustls::TlsConnector,
    timeout: Duration,
}

impl HttpClient {
    /// The TLS connector (syslog over TLS uses it too).
    pub fn tls(&self) -> &tokio_rustls::TlsConnector {
        &self.tls
    }
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The client: rustls on ring, the platform verifier (plus `extra_roots`, `--notify-ca-file`).
pub fn client(
    timeout: Duration,
    extra_roots: &[rustls::pki_types::CertificateDer<'static>],
) -> Result<HttpClient, DeliveryError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let setup = |e: rustls::Error| DeliveryError::permanent(format!("TLS setup: {e}"));
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(setup)?;
    let tls = if extra_roots.is_empty() {
        rustls_platform_verifier::BuilderVerifierExt::with_platform_verifier(builder)
            .map_err(setup)?
            .with_no_client_auth()
    } else {
        let verifier = rustls_platform_verifier::Verifier::new_with_extra_roots(
            extra_roots.iter().cloned(),
            provider,
        )
        .map_err(setup)?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth()
    };
    Ok(HttpClient {
        tls: tokio_rustls::TlsConnector::from(Arc::new(tls)),
        timeout,
    })
}

/// Parses a target URL (http or https only); the error never shows the URL.
pub fn parse_target(value: &SecretValue) -> Result<Url, DeliveryError> {
    let url = Url::parse(value.expose())
        .map_err(|e| DeliveryError::permanent(format!("the target is not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(DeliveryError::permanent(format!(
            "the target's scheme {:?} is not http or https",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(DeliveryError::permanent("the target has no host"));
    }
    Ok(url)
}

/// Standard base64 (RFC 4648 section 4), for basic auth.
pub fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Ok(v) = u8::from_str_radix(s.get(i + 1..i + 3).unwrap_or("zz"), 16)
        {
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// POSTs `body` (JSON) to `url` with `headers`; 2xx is success.
pub async fn post_json(
    client: &HttpClient,
    guard: &Guard,
    url: &Url,
    body: Vec<u8>,
    headers: &[(&str, String)],
) -> Result<(), DeliveryError> {
    tokio::time::timeout(client.timeout, post(client, guard, url, body, headers))
        .await
        .map_err(|_| DeliveryError::retry("timed out"))?
}

async fn post(
    client: &HttpClient,
    guard: &Guard,
    url: &Url,
    body: Vec<u8>,
    headers: &[(&str, String)],
) -> Result<(), DeliveryError> {
    let host = url.host_str().unwrap_or_default();
    let https = url.scheme() == "https";
    let port = url
        .port_or_known_default()
        .unwrap_or(if https { 443 } else { 80 });
    let addrs = guard.resolve(host, port).await?;
    let mut last = None;
    let mut stream = None;
    for addr in addrs {
        match tokio::net::TcpStream::connect(addr).await {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    let Some(stream) = stream else {
        return Err(DeliveryError::retry(format!(
            "cannot connect: {}",
            last.map_or_else(|| "no address".into(), |e| e.kind().to_string())
        )));
    };
    let _ = stream.set_nodelay(true);
    let mut path = url.path().to_owned();
    if let Some(q) = url.query() {
        path.push('?');
        path.push_str(q);
    }
    let authority = match url.port() {
        Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_owned(),
    };
    let mut req = Request::post(path)
        .header(HOST, authority)
        .header(CONTENT_TYPE, "application/json")
        .header(USER_AGENT, concat!("netwarden/", env!("CARGO_PKG_VERSION")));
    if !url.username().is_empty() {
        let mut creds = percent_decode(url.username());
        creds.push(b':');
        creds.extend(percent_decode(url.password().unwrap_or_default()));
        req = req.header(AUTHORIZATION, format!("Basic {}", base64(&creds)));
    }
    for (name, value) in headers {
        req = req.header(*name, value);
    }
    let req = req
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| DeliveryError::permanent(format!("bad request: {e}")))?;
    let status = if https {
        let name = rustls::pki_types::ServerName::try_from(
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
        )
        .map_err(|_| DeliveryError::permanent("the target's host is not a TLS server name"))?;
        let tls = client
            .tls
            .connect(name, stream)
            .await
            .map_err(|e| DeliveryError::retry(format!("TLS: {e}")))?;
        exchange(TokioIo::new(tls), req).await?
    } else {
        exchange(TokioIo::new(stream), req).await?
    };
    if status.is_success() {
        return Ok(());
    }
    let reason = format!("the receiver answered {status}");
    if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408 {
        Err(DeliveryError::retry(reason))
    } else {
        Err(DeliveryError::permanent(reason))
    }
}

async fn exchange<T>(
    io: TokioIo<T>,
    req: Request<Full<Bytes>>,
) -> Result<hyper::StatusCode, DeliveryError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| DeliveryError::retry(format!("HTTP: {e}")))?;
    let conn = tokio::spawn(conn);
    let result = async {
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| DeliveryError::retry(format!("HTTP: {e}")))?;
        let status = resp.status();
        // Read (a bounded part of) the answer so the receiver is not cut off mid-write.
        let _ = Limited::new(resp.into_body(), MAX_RESPONSE_BYTES)
            .collect()
            .await;
        Ok(status)
    }
    .await;
    conn.abort();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
        assert_eq!(percent_decode("a%40b%zz"), b"a@b%zz");
    }

    #[test]
    fn targets_are_http_urls() {
        assert!(parse_target(&SecretValue::new("https://hooks.slack.com/services/x")).is_ok());
        for bad in ["ftp://x/", "not a url", "file:///etc/passwd"] {
            let e = parse_target(&SecretValue::new(bad)).unwrap_err();
            assert!(!e.reason.contains("passwd"), "the target is not echoed");
        }
    }
}
