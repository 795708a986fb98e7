//! Outbound safety for webhook deliveries (issue 20): `guestpass::outbound` against a real HTTP
//! receiver (actix-web on loopback, started here). Answers are read only to the limit, redirects are
//! not followed, slow receivers time out within the bound, and with private targets not allowed
//! loopback, metadata and private names are refused before anything is sent.

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use guestpass::outbound::{Attempt, BODY_LIMIT, Outbound, OutboundPolicy, Refusal, check_target};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A request the receiver got.
#[derive(Clone, Debug)]
struct Seen {
    path: String,
    user_agent: String,
    webhook_id: String,
    body: Vec<u8>,
}

type Log = web::Data<Mutex<Vec<Seen>>>;

/// How long `/slow` takes to answer; tests give the client much less.
const SLOW: Duration = Duration::from_secs(10);

async fn receive(req: HttpRequest, body: web::Bytes, log: Log) -> HttpResponse {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    log.lock().unwrap().push(Seen {
        path: req.path().to_string(),
        user_agent: header("user-agent"),
        webhook_id: header("webhook-id"),
        body: body.to_vec(),
    });
    match req.path() {
        // Ten times the limit, each byte telling its position.
        "/big" => HttpResponse::Ok().body(big_body()),
        // An answer that never ends: reading it whole would never finish.
        "/endless" => HttpResponse::Ok().streaming(futures_util::stream::repeat_with(|| {
            Ok::<_, actix_web::Error>(web::Bytes::from_static(&[b'z'; 4096]))
        })),
        "/redirect" => HttpResponse::Found()
            .insert_header(("location", "/target"))
            .body("moved"),
        "/slow" => {
            tokio::time::sleep(SLOW).await;
            HttpResponse::Ok().finish()
        }
        _ => HttpResponse::Ok().body("ok"),
    }
}

fn big_body() -> Vec<u8> {
    (0..BODY_LIMIT * 10)
        .map(|i| b'a' + (i % 26) as u8)
        .collect()
}

/// A receiver on 127.0.0.1 (and on ::1 where the machine has IPv6), recording what it gets.
struct Receiver {
    port: u16,
    v6_port: Option<u16>,
    log: Log,
}

impl Receiver {
    async fn start() -> Self {
        let log: Log = web::Data::new(Mutex::new(Vec::new()));
        let v4 = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let v6 = std::net::TcpListener::bind("[::1]:0").ok();
        let port = v4.local_addr().unwrap().port();
        let v6_port = v6.as_ref().map(|l| l.local_addr().unwrap().port());
        let data = log.clone();
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::to(receive))
        })
        .workers(1)
        .disable_signals()
        .listen(v4)
        .unwrap();
        if let Some(v6) = v6 {
            server = server.listen(v6).unwrap();
        }
        actix_rt::spawn(server.run());
        Self { port, v6_port, log }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn seen(&self) -> Vec<Seen> {
        self.log.lock().unwrap().clone()
    }
}

/// The test configuration's policy (http and private targets allowed), with short timeouts.
fn dev_policy() -> OutboundPolicy {
    OutboundPolicy {
        allow_http: true,
        allow_private: true,
        connect_timeout: Duration::from_secs(2),
        response_timeout: Duration::from_secs(5),
        body_limit: BODY_LIMIT,
    }
}

/// Http allowed (loopback receivers speak plain http) but private targets not: what the address
/// rules alone refuse.
fn public_only() -> OutboundPolicy {
    OutboundPolicy {
        allow_private: false,
        ..dev_policy()
    }
}

fn headers() -> Vec<(String, String)> {
    vec![
        ("content-type".into(), "application/json".into()),
        ("webhook-id".into(), "msg_2Kp7".into()),
    ]
}

async fn post(policy: OutboundPolicy, url: &str) -> Attempt {
    Outbound::new(policy)
        .post(url, &headers(), b"{\"type\":\"invite.created\"}".to_vec())
        .await
}

#[actix_rt::test]
async fn an_answer_is_read_only_to_the_limit_and_the_request_arrives_whole() {
    let receiver = Receiver::start().await;
    let attempt = post(dev_policy(), &receiver.url("/big")).await;
    assert_eq!(attempt.status, Some(200), "{attempt:?}");
    assert!(attempt.succeeded(), "{attempt:?}");
    assert_eq!(attempt.error, None);
    assert_eq!(attempt.body_prefix.len(), BODY_LIMIT);
    assert_eq!(attempt.body_prefix.as_bytes(), &big_body()[..BODY_LIMIT]);

    let seen = receiver.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].user_agent,
        format!("Guestpass-Webhooks/{}", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(seen[0].webhook_id, "msg_2Kp7");
    assert_eq!(seen[0].body, b"{\"type\":\"invite.created\"}");

    // An answer that never ends: the limit is read and the attempt is over, long before the timeout.
    let attempt = post(dev_policy(), &receiver.url("/endless")).await;
    assert!(attempt.succeeded(), "{attempt:?}");
    assert_eq!(attempt.body_prefix, "z".repeat(BODY_LIMIT));
    assert!(attempt.duration < Duration::from_secs(2), "{attempt:?}");

    // A smaller limit is honoured too.
    let small = OutboundPolicy {
        body_limit: 10,
        ..dev_policy()
    };
    let attempt = post(small, &receiver.url("/big")).await;
    assert_eq!(attempt.body_prefix, "abcdefghij");
}

#[actix_rt::test]
async fn a_redirect_is_an_answer_not_followed_and_not_a_success() {
    let receiver = Receiver::start().await;
    let attempt = post(dev_policy(), &receiver.url("/redirect")).await;
    assert_eq!(attempt.status, Some(302), "{attempt:?}");
    assert!(!attempt.succeeded());
    assert_eq!(attempt.body_prefix, "moved");
    assert!(
        attempt
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("redirect"),
        "{attempt:?}"
    );
    // Give a follower time to have followed: the target never got a request.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let paths: Vec<String> = receiver.seen().into_iter().map(|s| s.path).collect();
    assert_eq!(paths, vec!["/redirect".to_string()]);
}

#[actix_rt::test]
async fn a_slow_receiver_times_out_within_the_bound() {
    let receiver = Receiver::start().await;
    let policy = OutboundPolicy {
        response_timeout: Duration::from_millis(500),
        ..dev_policy()
    };
    let started = Instant::now();
    let attempt = post(policy, &receiver.url("/slow")).await;
    let took = started.elapsed();
    assert_eq!(attempt.status, None, "{attempt:?}");
    assert!(!attempt.succeeded());
    assert_eq!(
        attempt.error.as_deref(),
        Some("no complete answer within 500 ms")
    );
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(3),
        "took {took:?}"
    );
    assert!(attempt.duration <= took);
    assert_eq!(receiver.seen().len(), 1, "the request itself was sent");
}

#[actix_rt::test]
async fn a_closed_port_is_a_connect_failure_in_words_for_admins() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let attempt = post(dev_policy(), &format!("http://127.0.0.1:{port}/")).await;
    assert_eq!(attempt.status, None);
    let error = attempt.error.unwrap();
    assert!(error.starts_with("could not connect: "), "{error}");
    assert!(error.to_lowercase().contains("refused"), "{error}");
}

#[actix_rt::test]
async fn with_private_targets_allowed_loopback_names_and_addresses_are_reached() {
    let receiver = Receiver::start().await;
    let policy = dev_policy();
    let url = format!("http://localhost:{}/ok", receiver.port);
    assert_eq!(
        check_target(&policy, &url).await.unwrap().as_str(),
        url.as_str()
    );
    // Through the client's own resolver, which puts the URL's port on what it resolved.
    let attempt = post(policy, &url).await;
    assert!(attempt.succeeded(), "{attempt:?}");
    assert_eq!(attempt.body_prefix, "ok");
    assert_eq!(receiver.seen().len(), 1);
}

#[actix_rt::test]
async fn loopback_metadata_and_private_names_are_refused_before_anything_is_sent() {
    let receiver = Receiver::start().await;
    let policy = public_only();
    let mut targets = vec![
        (receiver.url("/ok"), "127.0.0.1 is a loopback address"),
        (
            "http://169.254.169.254/latest/meta-data/iam/security-credentials/".to_string(),
            "169.254.169.254 is a link-local (or cloud metadata) address",
        ),
        (
            format!("http://localhost:{}/ok", receiver.port),
            "localhost resolves to a loopback address",
        ),
        (
            format!("http://[::ffff:127.0.0.1]:{}/ok", receiver.port),
            "::ffff:127.0.0.1 is a loopback address",
        ),
        // Other spellings of 127.0.0.1 are read as the URL standard reads them.
        (
            format!("http://2130706433:{}/ok", receiver.port),
            "127.0.0.1 is a loopback address",
        ),
        (
            "http://10.0.0.8/".to_string(),
            "10.0.0.8 is a private-network address",
        ),
        ("http://0.0.0.0/".to_string(), "0.0.0.0 is an unspecified"),
    ];
    targets.push((
        format!("http://[::1]:{}/ok", receiver.v6_port.unwrap_or(9)),
        "::1 is a loopback address",
    ));
    let outbound = Outbound::new(policy.clone());
    for (url, says) in &targets {
        let refusal = check_target(&policy, url).await.unwrap_err();
        assert!(
            matches!(refusal, Refusal::PrivateAddress { .. }),
            "{url}: {refusal:?}"
        );
        assert!(refusal.to_string().starts_with(says), "{url}: {refusal}");

        let started = Instant::now();
        let attempt = outbound.post(url, &headers(), b"{}".to_vec()).await;
        assert_eq!(attempt.status, None, "{url}: {attempt:?}");
        assert!(!attempt.succeeded());
        let error = attempt.error.unwrap();
        assert!(error.starts_with(says), "{url}: {error}");
        // Refused at once (a connection attempt to the metadata address would hang).
        assert!(started.elapsed() < Duration::from_secs(1), "{url}");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        receiver.seen().is_empty(),
        "the receiver got {:?}",
        receiver.seen()
    );
}

#[actix_rt::test]
async fn a_refusal_is_a_coded_error_that_names_the_reason_and_not_the_address() {
    let refusal = check_target(&public_only(), "http://localhost/hooks")
        .await
        .unwrap_err();
    let Refusal::PrivateAddress { ref host, address } = refusal else {
        panic!("{refusal:?}");
    };
    assert_eq!(host, "localhost");
    assert!(address.is_loopback());
    let error: async_graphql::Error = guestpass::error::AppError::from(refusal).into();
    assert_eq!(
        error.message,
        "This webhook URL is not allowed: localhost resolves to a loopback address, which webhooks may not reach."
    );
    let ext = serde_json::to_value(error.extensions.unwrap()).unwrap();
    assert_eq!(ext["code"], "TARGET_NOT_ALLOWED");
    assert_eq!(ext["reason"], "PRIVATE_ADDRESS");
    assert!(!error.message.contains(&address.to_string()));
}

#[actix_rt::test]
async fn plain_http_is_refused_unless_allowed_and_other_schemes_always() {
    let production = OutboundPolicy {
        allow_http: false,
        allow_private: false,
        ..dev_policy()
    };
    for url in [
        "http://hooks.example.com/guestpass",
        "ftp://hooks.example.com/",
        "file:///etc/passwd",
    ] {
        assert_eq!(
            check_target(&production, url).await.unwrap_err(),
            Refusal::NotHttps,
            "{url}"
        );
        let attempt = post(production.clone(), url).await;
        assert_eq!(
            attempt.error.as_deref(),
            Some("the URL must use https"),
            "{url}"
        );
    }
    // Allowed for development, but not schemes other than http.
    assert_eq!(
        check_target(&dev_policy(), "gopher://127.0.0.1/")
            .await
            .unwrap_err(),
        Refusal::NotHttps
    );
    for url in ["not a url", "https://", "https://exa mple.com/"] {
        assert!(
            matches!(
                check_target(&production, url).await,
                Err(Refusal::InvalidUrl(_))
            ),
            "{url}"
        );
    }
    let long = format!("https://hooks.example.com/{}", "a".repeat(3000));
    assert!(matches!(
        check_target(&production, &long).await,
        Err(Refusal::InvalidUrl(_))
    ));
}

#[actix_rt::test]
async fn a_name_that_does_not_resolve_is_unresolvable() {
    // `.invalid` never resolves (RFC 6761).
    let url = "https://hooks.guestpass-receiver.invalid/events";
    let refusal = check_target(&public_only(), url).await.unwrap_err();
    assert_eq!(
        refusal,
        Refusal::Unresolvable {
            host: "hooks.guestpass-receiver.invalid".into()
        }
    );
    let attempt = post(public_only(), url).await;
    assert_eq!(attempt.status, None);
    assert_eq!(
        attempt.error.as_deref(),
        Some("hooks.guestpass-receiver.invalid does not resolve to an address")
    );
}

#[test]
fn the_configuration_refuses_by_default_and_tests_allow_loopback() {
    let defaults = OutboundPolicy::from_config(&guestpass::config::Config::defaults());
    assert!(!defaults.allow_http);
    assert!(!defaults.allow_private);
    assert_eq!(defaults.connect_timeout, Duration::from_millis(5_000));
    assert_eq!(defaults.response_timeout, Duration::from_millis(15_000));
    assert_eq!(defaults.body_limit, BODY_LIMIT);
}

#[actix_rt::test]
async fn the_test_server_state_carries_a_client_that_reaches_loopback() {
    let app = crate::common::spawn_app().await;
    let receiver = Receiver::start().await;
    let policy = app.state.outbound.policy();
    assert!(policy.allow_http && policy.allow_private);
    let attempt = app
        .state
        .outbound
        .post(&receiver.url("/ok"), &headers(), b"{}".to_vec())
        .await;
    assert!(attempt.succeeded(), "{attempt:?}");
    app.stop().await;
}
