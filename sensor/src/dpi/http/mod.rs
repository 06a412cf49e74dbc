//! HTTP/1.x (RFC 9112): the first request's line and headers (method, target, Host,
//! User-Agent, Content-Type, Authorization) and the first response's status line and headers
//! (status, Content-Type, Server, the first body bytes), and nDPI's HTTP risks.
//!
//! Must not: buffer more than the configured limit of header bytes per direction, or parse past
//! the first request/response (later messages on a kept-alive connection are not inspected).

pub mod inject;

use netwarden_api::flow::HttpInfo;

use super::util::{MAX_FIELD, MAX_HOST, MAX_URL, is_ip_literal, text};
use super::{Risks, rid};

/// Request methods recognised at the start of a client payload.
const METHODS: &[&str] = &[
    "GET ",
    "POST ",
    "HEAD ",
    "PUT ",
    "DELETE ",
    "OPTIONS ",
    "CONNECT ",
    "PATCH ",
    "TRACE ",
    "PROPFIND ",
    "PROPPATCH ",
    "MKCOL ",
    "COPY ",
    "MOVE ",
    "LOCK ",
    "UNLOCK ",
    "REPORT ",
    "SEARCH ",
];

/// Whether `payload` starts an HTTP/1.x request.
pub fn looks_like_request(payload: &[u8]) -> bool {
    METHODS.iter().any(|m| payload.starts_with(m.as_bytes()))
}

/// Whether `payload` starts an HTTP/1.x response.
pub fn looks_like_response(payload: &[u8]) -> bool {
    payload.starts_with(b"HTTP/1.")
}

/// A parsed header block (request or response), borrowing the bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Head<'a> {
    /// Request method, or empty for a response.
    pub method: &'a [u8],
    /// Request target, or empty.
    pub target: &'a [u8],
    /// Response status, or 0.
    pub status: u16,
    /// Headers in order (name, value), at most 64.
    pub headers: Vec<(&'a [u8], &'a [u8])>,
    /// Bytes after the blank line (start of the body), if the head is complete.
    pub body: Option<&'a [u8]>,
}

impl<'a> Head<'a> {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| *v)
    }
}

/// Most header lines kept per message.
const MAX_HEADERS: usize = 64;

/// Parses a request or response head. Returns `None` when the first line is not HTTP/1.x;
/// an incomplete head parses what is there with `body = None`.
pub fn parse_head(data: &[u8]) -> Option<Head<'_>> {
    let mut lines = data.split(|&b| b == b'\n');
    let first = trim_cr(lines.next()?);
    let mut head = Head::default();
    if first.starts_with(b"HTTP/1.") {
        let code = first.get(9..12)?;
        head.status = std::str::from_utf8(code).ok()?.parse().ok()?;
    } else {
        let mut parts = first.splitn(3, |&b| b == b' ');
        head.method = parts.next()?;
        head.target = parts.next()?;
        let version = parts.next().unwrap_or_default();
        if !looks_like_request(data) || !(version.starts_with(b"HTTP/") || version.is_empty()) {
            return None;
        }
    }
    let mut offset = first.len() + 1;
    for line in lines {
        let end = offset + line.len() + 1;
        let line = trim_cr(line);
        if line.is_empty() {
            head.body = data.get(end.min(data.len())..);
            break;
        }
        offset = end;
        if end > data.len() {
            break; // last, unterminated line
        }
        if head.headers.len() < MAX_HEADERS
            && let Some(colon) = line.iter().position(|&b| b == b':')
        {
            let value = trim_ws(&line[colon + 1..]);
            head.headers.push((trim_ws(&line[..colon]), value));
        }
    }
    Some(head)
}

fn trim_cr(l: &[u8]) -> &[u8] {
    l.strip_suffix(b"\r").unwrap_or(l)
}

fn trim_ws(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// What the HTTP dissector learned about a flow.
#[derive(Debug, Default)]
pub struct HttpFlow {
    /// Record form.
    pub info: HttpInfo,
    /// Host header, lower-cased, port removed.
    pub host: String,
    /// Application learned from the content (e.g. "OCSP").
    pub app_hint: Option<&'static str>,
    raw_host: String,
    req: Option<Vec<u8>>,
    resp: Option<Vec<u8>>,
    request_done: bool,
    response_done: bool,
    /// The response head ended with its segment: look at the next one for an MZ header.
    await_body: bool,
    risks: Risks,
}

impl HttpFlow {
    /// Whether the first request and response were both parsed.
    pub fn is_done(&self) -> bool {
        self.request_done && self.response_done && !self.await_body
    }

    /// Whether a request or response head was parsed.
    pub fn is_confirmed(&self) -> bool {
        !self.info.method.is_empty() || self.info.status != 0
    }

    /// Frees buffered bytes.
    pub fn shrink(&mut self) {
        self.req = None;
        self.resp = None;
    }

    /// Feeds one segment of direction `from_client`.
    pub fn on_payload(&mut self, from_client: bool, payload: &[u8], max: usize) {
        let (done, buf) = if from_client {
            (self.request_done, &mut self.req)
        } else {
            (self.response_done, &mut self.resp)
        };
        if !from_client && self.await_body {
            self.await_body = false;
            if payload.starts_with(b"MZ") {
                self.risks.set(
                    rid::BINARY_APPLICATION_TRANSFER,
                    Some("Found MZ header".into()),
                );
            }
            return;
        }
        if done || payload.is_empty() {
            return;
        }
        let starts = if from_client {
            looks_like_request(payload)
        } else {
            looks_like_response(payload)
        };
        let mut owned = buf.take();
        let data: &[u8] = match &mut owned {
            Some(b) => {
                b.extend_from_slice(&payload[..payload.len().min(max.saturating_sub(b.len()))]);
                b
            }
            None if starts => payload,
            None => return,
        };
        let Some(head) = parse_head(data) else {
            self.mark_done(from_client);
            return;
        };
        if head.body.is_none() && data.len() < max {
            // Head incomplete: keep what we have.
            let keep = data.to_vec();
            if from_client {
                self.req = Some(keep);
            } else {
                self.resp = Some(keep);
            }
            return;
        }
        if from_client {
            self.request(&head);
        } else {
            self.response(&head);
        }
        self.mark_done(from_client);
    }

    fn mark_done(&mut self, from_client: bool) {
        if from_client {
            self.request_done = true;
            self.req = None;
        } else {
            self.response_done = true;
            self.resp = None;
        }
    }

    fn request(&mut self, h: &Head<'_>) {
        self.info.method = text(h.method, 16);
        if let Some(host) = h.header("host") {
            self.raw_host = text(host, MAX_HOST);
            let lower = self.raw_host.to_ascii_lowercase();
            // Strip a port, but not from a bare IPv6 literal.
            self.host = match lower.rsplit_once(':') {
                Some((name, port))
                    if port.bytes().all(|b| b.is_ascii_digit())
                        && (!name.contains(':') || name.ends_with(']')) =>
                {
                    name.trim_start_matches('[')
                        .trim_end_matches(']')
                        .to_owned()
                }
                _ => lower,
            };
        }
        // nDPI prints the URL as host + target.
        let target = text(h.target, MAX_URL);
        self.info.url = if target.starts_with('/') && !self.raw_host.is_empty() {
            let mut u = format!("{}{}", self.raw_host, target);
            super::util::truncate(&mut u, MAX_URL);
            u
        } else {
            target.clone()
        };
        if let Some(ua) = h.header("user-agent") {
            self.info.user_agent = text(ua, MAX_FIELD);
        }
        if let Some(ct) = h.header("content-type") {
            self.info.request_content_type = text(ct, MAX_FIELD);
        }
        let r = &mut self.risks;
        if is_ip_literal(&self.host) {
            r.set(
                rid::NUMERIC_IP_HOST,
                Some(format!("Found host {}", self.host)),
            );
        }
        if self.host.split('.').any(|l| l.starts_with("xn--")) {
            r.set(rid::PUNYCODE_IDN, Some(self.host.clone()));
        }
        let findings = inject::scan_url(&target);
        if findings.xss {
            r.set(rid::URL_POSSIBLE_XSS, Some(target.clone()));
        }
        if findings.sqli {
            r.set(rid::URL_POSSIBLE_SQL_INJECTION, Some(target.clone()));
        }
        if findings.rce {
            r.set(rid::URL_POSSIBLE_RCE_INJECTION, Some(target.clone()));
        }
        if findings.traversal {
            r.set(rid::HTTP_SUSPICIOUS_URL, Some(target.clone()));
        }
        // nDPI: a path segment starting with a dot (`/.env`, `/.git/config`, `/../`).
        if target.starts_with("/.") {
            r.set(rid::POSSIBLE_EXPLOIT, Some("URL starting with dot".into()));
        }
        if let Some(auth) = h.header("authorization")
            && auth.len() >= 6
            && auth[..6].eq_ignore_ascii_case(b"basic ")
        {
            r.set(
                rid::CLEAR_TEXT_CREDENTIALS,
                Some("Found credentials in HTTP Auth Line".into()),
            );
        }
        let ua = self.info.user_agent.clone();
        if h.header("user-agent").is_some() {
            if suspicious_user_agent(&ua) {
                r.set(rid::HTTP_SUSPICIOUS_USER_AGENT, Some(format!("UA {ua}")));
            }
            let lower = ua.to_ascii_lowercase();
            if ["bot", "crawler", "spider", "slurp"]
                .iter()
                .any(|k| lower.contains(k))
            {
                r.set(rid::HTTP_CRAWLER_BOT, Some(format!("UA {ua}")));
            }
        }
        for (name, value) in &h.headers {
            if contains_ci(value, b"jndi:") {
                r.set(rid::POSSIBLE_EXPLOIT, Some("Suspicious Log4J".into()));
                r.set(rid::HTTP_SUSPICIOUS_HEADER, Some(text(name, 64)));
            }
        }
        if contains_ci(h.target, b"jndi:") {
            r.set(rid::POSSIBLE_EXPLOIT, Some("Suspicious Log4J".into()));
        }
    }

    fn response(&mut self, h: &Head<'_>) {
        self.info.status = u32::from(h.status);
        if let Some(ct) = h.header("content-type") {
            self.info.content_type = text(ct, MAX_FIELD);
        }
        if let Some(server) = h.header("server") {
            self.info.server = text(server, MAX_FIELD);
        }
        let r = &mut self.risks;
        if h.status >= 400 {
            r.set(
                rid::ERROR_CODE_DETECTED,
                Some(format!("HTTP Error Code {}", h.status)),
            );
        }
        let ct = self.info.content_type.to_ascii_lowercase();
        let mime = ct.split(';').next().unwrap_or_default().trim();
        let body = h.body.unwrap_or_default();
        self.await_body = body.is_empty() && h.status == 200;
        let mz = body.starts_with(b"MZ");
        let exe_mime = matches!(
            mime,
            "application/x-dosexec"
                | "application/x-msdownload"
                | "application/x-msdos-program"
                | "application/x-executable"
                | "application/java-vm"
                | "application/x-java-vm"
        );
        if exe_mime || mz {
            r.set(
                rid::BINARY_APPLICATION_TRANSFER,
                Some(format!("Found mime exe {mime}")),
            );
        }
        let filename = h
            .header("content-disposition")
            .map(|d| text(d, MAX_FIELD))
            .unwrap_or_default();
        let binary_name = [".exe", ".dll", ".msi", ".bin", ".scr", ".ps1", ".bat"]
            .iter()
            .any(|e| filename.to_ascii_lowercase().contains(e));
        if mime == "application/octet-stream"
            || (exe_mime && mime != "application/java-vm")
            || binary_name
        {
            r.set(
                rid::BINARY_DATA_TRANSFER,
                Some(format!("Found binary mime {mime}")),
            );
        }
        if mime.starts_with("application/ocsp-")
            || self
                .info
                .request_content_type
                .starts_with("application/ocsp-")
        {
            self.app_hint = Some("OCSP");
        }
        if mime == "application/java-vm" && self.info.user_agent.starts_with("Java/") {
            // nDPI: a Java client fetching a class file is what a Log4Shell payload looks like.
            r.set(rid::POSSIBLE_EXPLOIT, Some("Suspicious Log4J".into()));
        }
        if let Some(v) = obsolete_server(&self.info.server) {
            r.set(rid::HTTP_OBSOLETE_SERVER, Some(v));
        }
        if h.header("server")
            .is_some_and(|s| s.iter().any(|b| !(0x20..0x7f).contains(b)))
        {
            r.set(rid::HTTP_SUSPICIOUS_HEADER, Some("Suspicious Agent".into()));
        }
    }

    /// HTTP risks gathered so far.
    pub fn risks(&self, out: &mut Risks) {
        out.merge(&self.risks);
    }
}

fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

/// nDPI-like User-Agent checks: too short, shell-shock/templating braces, or a random-looking
/// single token (letters only, mixed case, no separators, at least 10 long).
pub fn suspicious_user_agent(ua: &str) -> bool {
    let ua = ua.trim();
    if ua.len() < 4 || ua.contains("() {") || ua.contains("${") {
        return true;
    }
    let bytes = ua.as_bytes();
    bytes.len() >= 10
        && bytes.iter().all(u8::is_ascii_alphabetic)
        && bytes.iter().any(u8::is_ascii_uppercase)
        && bytes.iter().any(u8::is_ascii_lowercase)
}

/// Server banners nDPI flags as obsolete: Apache before 2.4 and nginx before 1.20 (detail text
/// as nDPI writes it), `None` otherwise.
pub fn obsolete_server(server: &str) -> Option<String> {
    let (name, rest) = server.split_once('/')?;
    let version: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next()?, parts.next().unwrap_or(0));
    let old = match name {
        "Apache" => major < 2 || (major == 2 && minor < 4),
        "nginx" => major < 1 || (major == 1 && minor < 20),
        _ => false,
    };
    old.then(|| format!("Obsolete {name} server {version}"))
}

#[cfg(test)]
pub(crate) mod tests;
