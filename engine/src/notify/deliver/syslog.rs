//! Syslog delivery: the target is `udp://host:port`, `tcp://host:port` (default port 514) or
//! `tls://host:port` (default 6514), with `?format=plain` for text instead of ECS JSON. The host
//! goes through the SSRF guard and the socket connects to the checked address. UDP: one
//! datagram per message (RFC 5426); TCP: octet-counted frames (RFC 6587); TLS: the same frames
//! over TLS (RFC 5425, the server's certificate checked against the platform's roots and
//! `--notify-ca-file`, the host as server name); one connection per batch, every step under the
//! timeout.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::AsyncWriteExt as _;

use super::DeliveryError;
use crate::notify::format::syslog::{Payload, frame};
use crate::notify::guard::Guard;
use crate::notify::secrets::SecretValue;

/// Largest message sent over UDP (a larger one is cut at a character boundary).
pub const MAX_UDP: usize = 8192;

/// The transport of a syslog target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// RFC 5426.
    Udp,
    /// RFC 6587, octet counting.
    Tcp,
    /// RFC 5425: octet counting over TLS.
    Tls,
}

/// A parsed syslog target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// UDP or TCP.
    pub transport: Transport,
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// What MSG carries.
    pub payload: Payload,
}

/// Parses `udp://host:514`, `tcp://[::1]:6514?format=plain`.
pub fn parse_target(value: &SecretValue) -> Result<Target, DeliveryError> {
    let bad = |why: &str| DeliveryError::permanent(format!("the syslog target {why}"));
    let text = value.expose();
    let (scheme, rest) = text.split_once("://").ok_or_else(|| bad("has no scheme"))?;
    let transport = match scheme {
        "udp" => Transport::Udp,
        "tcp" => Transport::Tcp,
        "tls" => Transport::Tls,
        _ => return Err(bad("is not udp://, tcp:// or tls://")),
    };
    let (authority, query) = rest.split_once('?').unwrap_or((rest, ""));
    let authority = authority.trim_end_matches('/');
    let payload = match query {
        "" | "format=ecs" => Payload::Ecs,
        "format=plain" => Payload::Plain,
        _ => return Err(bad("has an unknown option (format=ecs|plain)")),
    };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, p) = v6
            .split_once(']')
            .ok_or_else(|| bad("has a bad IPv6 host"))?;
        (h, p.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let default_port = if transport == Transport::Tls {
        6514
    } else {
        514
    };
    let port = port
        .map_or(Ok(default_port), str::parse)
        .map_err(|_| bad("has a bad port"))?;
    if host.is_empty() {
        return Err(bad("has no host"));
    }
    Ok(Target {
        transport,
        host: host.to_owned(),
        port,
        payload,
    })
}

/// Sends `messages` to `target`.
pub async fn send(
    guard: &Guard,
    tls: &tokio_rustls::TlsConnector,
    target: &Target,
    messages: &[String],
    timeout: Duration,
) -> Result<(), DeliveryError> {
    let addrs = guard.resolve(&target.host, target.port).await?;
    let addr: SocketAddr = addrs[0];
    let timed =
        |what: &'static str| move |_| DeliveryError::retry(format!("syslog {what} timed out"));
    let io = |what: &'static str| {
        move |e: std::io::Error| DeliveryError::retry(format!("syslog {what}: {e}"))
    };
    match target.transport {
        Transport::Udp => {
            let bind: SocketAddr = if addr.is_ipv4() {
                ([0, 0, 0, 0], 0).into()
            } else {
                (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
            };
            let socket = tokio::net::UdpSocket::bind(bind)
                .await
                .map_err(io("bind"))?;
            socket.connect(addr).await.map_err(io("connect"))?;
            for m in messages {
                let mut end = m.len().min(MAX_UDP);
                while !m.is_char_boundary(end) {
                    end -= 1;
                }
                tokio::time::timeout(timeout, socket.send(&m.as_bytes()[..end]))
                    .await
                    .map_err(timed("send"))?
                    .map_err(io("send"))?;
            }
        }
        Transport::Tcp | Transport::Tls => {
            let stream = tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr))
                .await
                .map_err(timed("connect"))?
                .map_err(io("connect"))?;
            let mut out = Vec::new();
            for m in messages {
                out.extend_from_slice(&frame(m));
            }
            if target.transport == Transport::Tls {
                let name =
                    rustls::pki_types::ServerName::try_from(target.host.clone()).map_err(|_| {
                        DeliveryError::permanent("the syslog host is not a TLS server name")
                    })?;
                let mut stream = tokio::time::timeout(timeout, tls.connect(name, stream))
                    .await
                    .map_err(timed("TLS handshake"))?
                    .map_err(|e| DeliveryError::retry(format!("syslog TLS: {e}")))?;
                write_all(&mut stream, &out, timeout).await?;
            } else {
                let mut stream = stream;
                write_all(&mut stream, &out, timeout).await?;
            }
        }
    }
    Ok(())
}

async fn write_all(
    stream: &mut (impl tokio::io::AsyncWrite + Unpin),
    bytes: &[u8],
    timeout: Duration,
) -> Result<(), DeliveryError> {
    tokio::time::timeout(timeout, async {
        stream.write_all(bytes).await?;
        stream.shutdown().await
    })
    .await
    .map_err(|_| DeliveryError::retry("syslog write timed out"))?
    .map_err(|e| DeliveryError::retry(format!("syslog write: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let t = parse_target(&SecretValue::new("udp://logs.example:5514")).unwrap();
        assert_eq!(
            (t.transport, t.host.as_str(), t.port),
            (Transport::Udp, "logs.example", 5514)
        );
        assert_eq!(t.payload, Payload::Ecs);
        let t = parse_target(&SecretValue::new("tcp://[::1]?format=plain")).unwrap();
        assert_eq!(
            (t.transport, t.host.as_str(), t.port, t.payload),
            (Transport::Tcp, "::1", 514, Payload::Plain)
        );
        let t = parse_target(&SecretValue::new("tls://logs.example")).unwrap();
        assert_eq!((t.transport, t.port), (Transport::Tls, 6514));
        assert!(parse_target(&SecretValue::new("http://x")).is_err());
        assert!(parse_target(&SecretValue::new("udp://:514")).is_err());
        assert!(parse_target(&SecretValue::new("udp://h:99999")).is_err());
    }
}
