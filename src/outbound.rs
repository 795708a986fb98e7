//! Requests the server sends on its own (webhook deliveries), safe against server-side request
//! forgery: an admin chooses the URL, so the server must not become their way into what only it can
//! reach (its loopback services, the private network behind it, a cloud's metadata endpoint).
//!
//! - Only `https` (plain `http` when [`OutboundPolicy::allow_http`] is set, for development).
//! - Every address a target resolves to must be public ([`crate::domain::outbound`] decides), unless
//!   [`OutboundPolicy::allow_private`] is set (tests, on-premise receivers). Registration checks it
//!   with [`check_target`]; every delivery checks it again inside the client's own DNS resolver, so
//!   the addresses checked are the addresses connected to (no window for DNS rebinding), and a URL
//!   with a literal address is checked before sending (the client does not resolve those).
//! - Redirects are never followed (a 3xx is the receiver's answer, and not a success), no proxy from
//!   the environment is used (it would resolve names where we cannot check them), and no retries
//!   happen inside the client (the delivery queue retries, and counts and logs each attempt).
//! - Connecting and the whole exchange are bounded by timeouts; at most [`BODY_LIMIT`] bytes of an
//!   answer are read (the rest is never read: the connection is dropped).

use crate::config::Config;
use crate::domain::outbound as rule;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bytes of a receiver's answer read and kept for the delivery log. Receivers answer a status; a body
/// is only a hint for the admin reading the log, so a small prefix is enough, and reading no more
/// keeps a hostile receiver from making a worker read (or store) a large body.
pub const BODY_LIMIT: usize = 1024;

/// Longest URL accepted as a target.
pub const MAX_URL_LEN: usize = 2048;

/// Longest error text in an [`Attempt`].
const MAX_ERROR_LEN: usize = 300;

/// What outbound requests may reach, and how long they may take.
#[derive(Clone, Debug)]
pub struct OutboundPolicy {
    /// Plain `http` targets are accepted (development only).
    pub allow_http: bool,
    /// Targets resolving to loopback, private, link-local or other non-public addresses are accepted.
    pub allow_private: bool,
    /// Bound on connecting: DNS, TCP and TLS.
    pub connect_timeout: Duration,
    /// Bound on the whole exchange, from connecting to the end of the (limited) answer.
    pub response_timeout: Duration,
    /// Bytes of an answer read and kept.
    pub body_limit: usize,
}

impl OutboundPolicy {
    pub fn from_config(c: &Config) -> Self {
        Self {
            allow_http: c.webhook_allow_http,
            allow_private: c.webhook_allow_private_targets,
            connect_timeout: Duration::from_millis(c.webhook_connect_timeout_ms),
            response_timeout: Duration::from_millis(c.webhook_timeout_ms),
            body_limit: BODY_LIMIT,
        }
    }
}

/// Why a target is refused (at registration, or at send time). The messages name the reason and the
/// host the admin gave, never the address a name resolved to (that would let an admin map the
/// server's internal DNS).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Not a URL, too long, or without a host.
    #[error("the URL is not valid: {0}")]
    InvalidUrl(String),
    /// Not `https` (or `http` where allowed).
    #[error("the URL must use https")]
    NotHttps,
    /// The host is, or resolves to, a non-public address and private targets are not allowed.
    /// `address` is for the server's log.
    #[error("{}", private_message(host, address))]
    PrivateAddress { host: String, address: IpAddr },
    /// The name does not resolve (in time) to any address.
    #[error("{host} does not resolve to an address")]
    Unresolvable { host: String },
}

fn private_message(host: &str, address: &IpAddr) -> String {
    let kind = rule::classify(*address).map_or("a non-public", rule::NonPublic::describe);
    if host.parse::<IpAddr>().is_ok() {
        format!("{host} is {kind} address, which webhooks may not reach")
    } else {
        format!("{host} resolves to {kind} address, which webhooks may not reach")
    }
}

impl Refusal {
    /// A stable name for the reason (`extensions.reason` next to `TARGET_NOT_ALLOWED`).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::InvalidUrl(_) => "INVALID_URL",
            Self::NotHttps => "NOT_HTTPS",
            Self::PrivateAddress { .. } => "PRIVATE_ADDRESS",
            Self::Unresolvable { .. } => "UNRESOLVABLE",
        }
    }
}

impl From<Refusal> for crate::error::AppError {
    fn from(r: Refusal) -> Self {
        Self::TargetNotAllowed {
            reason: r.reason(),
            message: r.to_string(),
        }
    }
}

/// The host of a target as the refusals name it: a name, or an address without brackets.
enum Target {
    Name(String),
    Address(IpAddr),
}

/// Parse, length, scheme and host: everything about a target that needs no DNS.
fn parse_target(policy: &OutboundPolicy, url: &str) -> Result<(url::Url, Target), Refusal> {
    if url.len() > MAX_URL_LEN {
        return Err(Refusal::InvalidUrl(format!(
            "longer than {MAX_URL_LEN} characters"
        )));
    }
    let parsed = url::Url::parse(url.trim()).map_err(|e| Refusal::InvalidUrl(e.to_string()))?;
    if !rule::scheme_allowed(parsed.scheme(), policy.allow_http) {
        return Err(Refusal::NotHttps);
    }
    let target = match parsed.host() {
        Some(url::Host::Domain(name)) => Target::Name(name.to_string()),
        Some(url::Host::Ipv4(ip)) => Target::Address(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => Target::Address(IpAddr::V6(ip)),
        None => return Err(Refusal::InvalidUrl("it has no host".into())),
    };
    Ok((parsed, target))
}

fn check_address(policy: &OutboundPolicy, address: IpAddr) -> Result<(), Refusal> {
    match rule::first_refused([address], policy.allow_private) {
        Some(address) => Err(Refusal::PrivateAddress {
            host: address.to_string(),
            address,
        }),
        None => Ok(()),
    }
}

/// Resolves `host` (bounded by `timeout`) and answers its addresses when every one may be reached.
async fn resolve_checked(
    host: &str,
    port: u16,
    allow_private: bool,
    timeout: Duration,
) -> Result<Vec<SocketAddr>, Refusal> {
    let unresolvable = || Refusal::Unresolvable {
        host: host.to_string(),
    };
    let addrs: Vec<SocketAddr> =
        tokio::time::timeout(timeout, tokio::net::lookup_host((host, port)))
            .await
            .map_err(|_| unresolvable())?
            .map_err(|_| unresolvable())?
            .collect();
    if addrs.is_empty() {
        return Err(unresolvable());
    }
    match rule::first_refused(addrs.iter().map(SocketAddr::ip), allow_private) {
        Some(address) => Err(Refusal::PrivateAddress {
            host: host.to_string(),
            address,
        }),
        None => Ok(addrs),
    }
}

/// Checks a target as registration must: the URL parses, its scheme is allowed, and its host is (or
/// resolves to) only addresses that may be reached. Answers the parsed URL.
pub async fn check_target(policy: &OutboundPolicy, url: &str) -> Result<url::Url, Refusal> {
    let (parsed, target) = parse_target(policy, url)?;
    match target {
        Target::Address(address) => check_address(policy, address)?,
        Target::Name(name) => {
            let port = parsed.port_or_known_default().unwrap_or(443);
            resolve_checked(&name, port, policy.allow_private, policy.connect_timeout).await?;
        }
    }
    Ok(parsed)
}

/// The client's DNS resolver: it answers only addresses that may be reached, so a name that resolves
/// to a private address at send time (DNS changed since registration, or answers differently each
/// time) is refused before any connection is made.
struct CheckedResolver {
    allow_private: bool,
    timeout: Duration,
}

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let (allow_private, timeout) = (self.allow_private, self.timeout);
        let host = name.as_str().to_string();
        Box::pin(async move {
            // Port 0: the connector puts the URL's port in.
            let addrs = resolve_checked(&host, 0, allow_private, timeout).await?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// One delivery attempt, as the delivery log records it.
#[derive(Clone, Debug)]
pub struct Attempt {
    /// The receiver's HTTP status, when it answered.
    pub status: Option<u16>,
    /// From the start of the attempt to its end (answer read, refusal or failure).
    pub duration: Duration,
    /// The first [`OutboundPolicy::body_limit`] bytes of the answer, as lossy UTF-8.
    pub body_prefix: String,
    /// Why the attempt did not get a complete answer, or why the answer is not a success: a refused
    /// target, a failure to connect, a timeout, a redirect. Short, and safe to show to admins.
    pub error: Option<String>,
}

impl Attempt {
    /// The receiver accepted the delivery: a 2xx status, and its answer arrived in full (up to the
    /// limit) in time.
    pub fn succeeded(&self) -> bool {
        self.error.is_none() && self.status.is_some_and(|s| (200..300).contains(&s))
    }

    fn failed(started: Instant, error: String) -> Self {
        Self {
            status: None,
            duration: started.elapsed(),
            body_prefix: String::new(),
            error: Some(truncate(error, MAX_ERROR_LEN)),
        }
    }
}

/// The HTTP client for webhook deliveries: built once, cheap to clone, shared by every worker.
#[derive(Clone)]
pub struct Outbound {
    client: reqwest::Client,
    policy: Arc<OutboundPolicy>,
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbound")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Outbound {
    pub fn new(policy: OutboundPolicy) -> Self {
        let client = reqwest::Client::builder()
            .dns_resolver(Arc::new(CheckedResolver {
                allow_private: policy.allow_private,
                timeout: policy.connect_timeout,
            }))
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .retry(reqwest::retry::never())
            .https_only(!policy.allow_http)
            .connect_timeout(policy.connect_timeout)
            .timeout(policy.response_timeout)
            .user_agent(concat!("Guestpass-Webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            // Fails only when the TLS backend cannot start, and with rustls, ring and the bundled
            // roots fixed at build time it always can: a start-up invariant, not a runtime error.
            .expect("the webhook HTTP client builds");
        Self {
            client,
            policy: Arc::new(policy),
        }
    }

    pub fn policy(&self) -> &OutboundPolicy {
        &self.policy
    }

    /// POSTs `body` to `url` with `headers`, checking the target again (a literal address here, a
    /// name in the resolver at connect time), never following a redirect, within the timeouts, and
    /// reading at most `body_limit` bytes of the answer. Never fails: the outcome is the [`Attempt`].
    pub async fn post(&self, url: &str, headers: &[(String, String)], body: Vec<u8>) -> Attempt {
        let started = Instant::now();
        let parsed = match parse_target(&self.policy, url) {
            Ok((parsed, Target::Address(address))) => match check_address(&self.policy, address) {
                Ok(()) => parsed,
                Err(refusal) => return Attempt::failed(started, refusal.to_string()),
            },
            Ok((parsed, Target::Name(_))) => parsed,
            Err(refusal) => return Attempt::failed(started, refusal.to_string()),
        };
        let mut request = self.client.post(parsed).body(body);
        for (name, value) in headers {
            let header = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .ok()
                .zip(reqwest::header::HeaderValue::from_str(value).ok());
            let Some((name, value)) = header else {
                return Attempt::failed(started, format!("the header {name:?} is not valid"));
            };
            request = request.header(name, value);
        }
        let mut response = match request.send().await {
            Ok(response) => response,
            Err(e) => return Attempt::failed(started, self.describe(&e)),
        };
        let status = response.status();
        let mut body = Vec::new();
        let mut error = None;
        while body.len() < self.policy.body_limit {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let room = self.policy.body_limit - body.len();
                    body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                }
                Ok(None) => break,
                Err(e) => {
                    error = Some(truncate(self.describe(&e), MAX_ERROR_LEN));
                    break;
                }
            }
        }
        drop(response);
        if error.is_none() && status.is_redirection() {
            error = Some("the receiver answered with a redirect, which is not followed: register the URL it points to".into());
        }
        Attempt {
            status: Some(status.as_u16()),
            duration: started.elapsed(),
            body_prefix: String::from_utf8_lossy(&body).into_owned(),
            error,
        }
    }

    /// A failed exchange in a sentence for admins: a refused target as the refusal says, a timeout
    /// with its bound, otherwise the innermost cause (an OS or TLS error, e.g. "Connection refused",
    /// "invalid peer certificate: UnknownIssuer"), which names nothing of the server's.
    fn describe(&self, e: &reqwest::Error) -> String {
        let mut innermost: &(dyn std::error::Error + 'static) = e;
        while let Some(source) = innermost.source() {
            if let Some(refusal) = source.downcast_ref::<Refusal>() {
                return refusal.to_string();
            }
            innermost = source;
        }
        if e.is_timeout() && e.is_connect() {
            format!(
                "could not connect within {} ms",
                self.policy.connect_timeout.as_millis()
            )
        } else if e.is_timeout() {
            format!(
                "no complete answer within {} ms",
                self.policy.response_timeout.as_millis()
            )
        } else if e.is_connect() {
            format!("could not connect: {innermost}")
        } else {
            format!("the request failed: {innermost}")
        }
    }
}

fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}
