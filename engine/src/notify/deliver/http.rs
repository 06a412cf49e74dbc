//! HTTP delivery: one shared client whose resolver is the SSRF guard (the address checked is
//! the address connected to), redirects not followed, proxies from the environment ignored,
//! TLS by rustls on ring with the platform's roots, and a timeout on every request.

use std::error::Error as _;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;

use super::DeliveryError;
use crate::notify::guard::{Guard, GuardError, GuardedResolver, Refused};
use crate::notify::secrets::SecretValue;

/// The shared client.
pub fn client(guard: Arc<Guard>, timeout: Duration) -> Result<reqwest::Client, DeliveryError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(rustls_platform_verifier::BuilderVerifierExt::with_platform_verifier)
        .map_err(|e| DeliveryError::permanent(format!("TLS setup: {e}")))?
        .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(timeout)
        .connect_timeout(timeout)
        .dns_resolver(Arc::new(GuardedResolver(guard)))
        .user_agent(concat!("netwarden/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| DeliveryError::permanent(format!("HTTP client: {}", e.without_url())))
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
    if url.host_str().is_none() {
        return Err(DeliveryError::permanent("the target has no host"));
    }
    Ok(url)
}

/// Checks a literal address in `url` (names are checked by the client's resolver).
pub fn check_literal(guard: &Guard, url: &Url) -> Result<(), DeliveryError> {
    let host = url.host_str().unwrap_or_default();
    match host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
    {
        Ok(ip) => guard.check(ip).map_err(|r| refused(&r)),
        Err(_) => Ok(()),
    }
}

fn refused(r: &Refused) -> DeliveryError {
    DeliveryError::permanent(r.to_string())
}

/// POSTs `body` (JSON) to `url` with `headers`; 2xx is success.
pub async fn post_json(
    client: &reqwest::Client,
    guard: &Guard,
    url: Url,
    body: Vec<u8>,
    headers: &[(&str, String)],
) -> Result<(), DeliveryError> {
    check_literal(guard, &url)?;
    let mut req = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json");
    for (name, value) in headers {
        req = req.header(*name, value);
    }
    let resp = req.body(body).send().await.map_err(classify)?;
    let status = resp.status();
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

/// A reqwest error as a delivery error: the URL stripped, a guard refusal permanent.
fn classify(e: reqwest::Error) -> DeliveryError {
    let e = e.without_url();
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(GuardError::Refused(r)) = s.downcast_ref::<GuardError>() {
            return refused(r);
        }
        source = s.source();
    }
    if e.is_timeout() {
        return DeliveryError::retry("timed out");
    }
    let mut reason = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        reason.push_str(": ");
        reason.push_str(&s.to_string());
        source = s.source();
    }
    DeliveryError::retry(reason)
}
