//! Webhooks (issue 20): a real HTTP receiver on loopback records what the server sends and answers
//! scripted statuses. Signatures are verified by the Standard Webhooks authors' own
//! implementations, the Rust crate and the npm package (`tests/tools/verify-webhooks.mjs`), never by
//! code of ours.

use crate::common::*;
use guestpass::domain::ProductRole;
use serde_json::{Value, json};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(30);

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Received {
    headers: BTreeMap<String, String>,
    body: String,
    at: Instant,
}

impl Received {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

/// What the receiver answers to the next request.
#[derive(Clone, Copy, Debug)]
enum Answer {
    Status(u16),
    /// Takes the request and never answers (until the sender goes away).
    Hold,
}

#[derive(Default)]
struct Shared {
    got: Mutex<Vec<Received>>,
    script: Mutex<VecDeque<Answer>>,
}

/// An actix-web server on 127.0.0.1:0 that records every POST to `/hook` and answers from its
/// script (200 once the script is used up).
struct Receiver {
    url: String,
    shared: Arc<Shared>,
    handle: actix_web::dev::ServerHandle,
}

async fn hook(
    req: actix_web::HttpRequest,
    body: actix_web::web::Bytes,
    shared: actix_web::web::Data<Arc<Shared>>,
) -> actix_web::HttpResponse {
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    shared.got.lock().unwrap().push(Received {
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        at: Instant::now(),
    });
    let answer = shared
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or(Answer::Status(200));
    match answer {
        Answer::Status(s) => {
            actix_web::HttpResponse::build(actix_web::http::StatusCode::from_u16(s).unwrap())
                .body(format!("receiver says {s}"))
        }
        Answer::Hold => {
            tokio::time::sleep(Duration::from_secs(600)).await;
            actix_web::HttpResponse::Ok().finish()
        }
    }
}

impl Receiver {
    async fn start() -> Self {
        let shared = Arc::new(Shared::default());
        let data = actix_web::web::Data::new(shared.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = actix_web::HttpServer::new(move || {
            actix_web::App::new()
                .app_data(data.clone())
                .route("/hook", actix_web::web::post().to(hook))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        actix_rt::spawn(server);
        Self {
            url: format!("http://127.0.0.1:{port}/hook"),
            shared,
            handle,
        }
    }

    fn script(&self, answers: &[Answer]) {
        self.shared.script.lock().unwrap().extend(answers);
    }

    fn got(&self) -> Vec<Received> {
        self.shared.got.lock().unwrap().clone()
    }

    async fn wait_for(&self, n: usize) -> Vec<Received> {
        let start = Instant::now();
        loop {
            let got = self.got();
            if got.len() >= n {
                return got;
            }
            assert!(
                start.elapsed() < WAIT,
                "{} of {n} requests after {WAIT:?}: {got:?}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn stop(self) {
        self.handle.stop(false).await;
    }
}

/// Verifies with the `standardwebhooks` crate (the Standard Webhooks authors' Rust library).
fn verify_with_crate(secret: &str, r: &Received) -> Result<(), String> {
    let wh = standardwebhooks::Webhook::new(secret).map_err(|e| e.to_string())?;
    let mut headers = http::HeaderMap::new();
    for (k, v) in &r.headers {
        headers.insert(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    wh.verify(r.body.as_bytes(), &headers)
        .map_err(|e| e.to_string())
}

/// Verifies with the npm `standardwebhooks` package (their TypeScript library), through
/// `tests/tools/verify-webhooks.mjs`: each `(secret, request, valid)` must verify exactly when
/// `valid`.
async fn verify_with_node(cases: &[(&str, &Received, bool)]) {
    use std::io::Write;
    let root = env!("CARGO_MANIFEST_DIR");
    assert!(
        std::path::Path::new(&format!("{root}/tests/tools/node_modules/standardwebhooks")).exists(),
        "the npm standardwebhooks package is not installed: run scripts/ensure-node-tools"
    );
    let input = serde_json::to_vec(
        &cases
            .iter()
            .map(|(secret, r, valid)| json!({ "secret": secret, "headers": r.headers, "body": r.body, "valid": valid }))
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let script = format!("{root}/tests/tools/verify-webhooks.mjs");
    let out = actix_rt::task::spawn_blocking(move || {
        let mut child = std::process::Command::new("node")
            .arg(script)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("node (scripts/ensure-node-tools installs it)");
        child.stdin.take().unwrap().write_all(&input).unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "the npm standardwebhooks package refused: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

const CREATE: &str = "mutation($i: CreateWebhookEndpointInput!) { createWebhookEndpoint(input: $i) { secret endpoint { id url events status enabled } } }";
const DELIVERIES: &str = "query($e: ID!, $s: WebhookDeliveryStatus) { webhookDeliveries(endpointId: $e, status: $s, first: 50) { totalCount edges { node { id webhookId eventId eventType status attemptCount nextAttemptAt deliveredAt payload endpoint { id } attempts { number responseStatus durationMs responseBodyPrefix error succeeded } } } } }";
const ENDPOINT: &str = "query($id: ID!) { webhookEndpoint(id: $id) { id status enabled failingSince previousSecretExpiresAt updatedAt events } }";

const INVITE_EVENTS: [&str; 6] = [
    "INVITE_CREATED",
    "INVITE_RESENT",
    "INVITE_REVOKED",
    "INVITE_ACCEPTED",
    "INVITE_EXPIRED",
    "INVITE_DELIVERY_FAILED",
];

/// Registers an endpoint as the bootstrap admin; answers its id and secret.
async fn register(app: &TestApp, url: &str, events: &[&str]) -> (String, String) {
    let r = data(
        app.admin(
            CREATE,
            json!({ "i": { "url": url, "events": events, "description": "test receiver" } }),
        )
        .await,
    )["createWebhookEndpoint"]
        .clone();
    assert_eq!(r["endpoint"]["status"], "ACTIVE", "{r}");
    let secret = r["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"), "{secret}");
    (r["endpoint"]["id"].as_str().unwrap().to_string(), secret)
}

async fn deliveries(app: &TestApp, endpoint: &str, status: Option<&str>) -> Vec<Value> {
    let r = data(
        app.admin(DELIVERIES, json!({ "e": endpoint, "s": status }))
            .await,
    );
    r["webhookDeliveries"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"].clone())
        .collect()
}

/// Waits until the endpoint has `n` deliveries, all with `status`.
async fn wait_deliveries(app: &TestApp, endpoint: &str, n: usize, status: &str) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let all = deliveries(app, endpoint, None).await;
        if all.len() == n && all.iter().all(|d| d["status"] == status) {
            return all;
        }
        assert!(start.elapsed() < WAIT, "not {n} {status}: {all:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn invite_id(r: &Value) -> String {
    r["inviteUsers"]["invites"][0]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Acceptance 1: registered for invite events, an invite and its acceptance send exactly those two
/// events, each signed so that both Standard Webhooks implementations verify it; invites rolled
/// back (a batch with a bad address, one refused by the seats) send nothing.
#[actix_rt::test]
async fn an_invite_and_its_acceptance_arrive_signed_and_a_rolled_back_invite_sends_nothing() {
    let sink = SmtpSink::start().await;
    let app = spawn_app_with(AppOptions {
        smtp_url: Some(sink.url()),
        ..Default::default()
    })
    .await;
    let receiver = Receiver::start().await;
    let (endpoint, secret) = register(&app, &receiver.url, &INVITE_EVENTS).await;

    let (user, _session) = app
        .emailed_guest(&sink, "kim@partner.example", json!({}))
        .await;
    let got = receiver.wait_for(2).await;
    app.drain_jobs(WAIT).await;

    // Rolled back: a batch holding one bad address, and an invite the seats refuse.
    let r = app
        .invite(&["fine@partner.example", "not an address"], "GUEST")
        .await;
    assert_eq!(code(&r).as_deref(), Some("INVALID_EMAIL"), "{r}");
    app.set_limits(Some(2), None).await;
    let r = app.invite(&["over@partner.example"], "USER").await;
    assert_eq!(code(&r).as_deref(), Some("SEAT_LIMIT_REACHED"), "{r}");
    app.drain_jobs(WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got_after = receiver.got();
    assert_eq!(got_after.len(), 2, "exactly two events: {got_after:#?}");

    // Exactly the invite's creation and acceptance (not the role change the acceptance made, which
    // the endpoint did not ask for), about this invite and this person.
    let mut bodies: Vec<Value> = got.iter().map(Received::json).collect();
    bodies.sort_by_key(|b| b["type"].as_str().unwrap().to_string());
    let types: Vec<&str> = bodies.iter().map(|b| b["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["invite.accepted", "invite.created"]);
    let (accepted, created) = (&bodies[0], &bodies[1]);
    let invite = created["target"]["id"].as_str().unwrap();
    assert_eq!(accepted["target"]["id"], invite);
    assert_eq!(created["target"]["type"], "invite");
    assert_eq!(created["version"], 1);
    assert_eq!(created["organizationId"], gid("Organization", &app.org_id));
    assert_eq!(created["siteId"], gid("Site", &app.site_id));
    assert_eq!(created["actor"]["id"], gid("User", &app.admin_id));
    assert_eq!(created["data"]["email"], "kim@partner.example");
    assert_eq!(created["data"]["role"], "GUEST");
    assert_eq!(accepted["data"]["user"], user);
    assert_eq!(accepted["actor"]["id"], user);
    assert_eq!(accepted["data"]["changes"]["status"]["from"], "PENDING");
    for b in &bodies {
        let text = b.to_string().to_lowercase();
        for secret_word in ["token", "nonce", "password", "hash"] {
            assert!(!text.contains(secret_word), "{secret_word} in {b}");
        }
    }

    // The Standard Webhooks headers, each event with its own stable id.
    for r in &got {
        assert_eq!(r.header("content-type"), "application/json");
        assert!(r.header("webhook-id").starts_with("msg_"), "{r:?}");
        let ts: i64 = r.header("webhook-timestamp").parse().unwrap();
        assert!((chrono::Utc::now().timestamp() - ts).abs() < 60);
        assert!(r.header("webhook-signature").starts_with("v1,"), "{r:?}");
        assert_eq!(r.header("webhook-signature").split(' ').count(), 1);
        verify_with_crate(&secret, r).unwrap();
        // A body changed on its way, or another secret, does not verify.
        let mut tampered = r.clone();
        tampered.body.push(' ');
        assert!(verify_with_crate(&secret, &tampered).is_err());
        let other = format!("whsec_{}", "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=");
        assert!(verify_with_crate(&other, r).is_err());
    }
    assert_ne!(got[0].header("webhook-id"), got[1].header("webhook-id"));
    verify_with_node(&[(&secret, &got[0], true), (&secret, &got[1], true)]).await;

    // The log agrees: two deliveries, each delivered at its first attempt, with what was sent.
    let log = deliveries(&app, &endpoint, Some("DELIVERED")).await;
    assert_eq!(log.len(), 2, "{log:#?}");
    for d in &log {
        assert_eq!(d["attemptCount"], 1);
        assert_eq!(d["attempts"][0]["responseStatus"], 200);
        assert_eq!(d["attempts"][0]["succeeded"], true);
        assert_eq!(d["attempts"][0]["responseBodyPrefix"], "receiver says 200");
        let sent = got
            .iter()
            .find(|r| r.header("webhook-id") == d["webhookId"])
            .unwrap();
        assert_eq!(d["payload"], sent.body.as_str());
        assert_eq!(d["eventId"], sent.json()["id"]);
    }
    assert_eq!(
        app.db
            .scalar_i64("SELECT count(*) FROM webhook_deliveries WHERE status <> 'DELIVERED'"),
        0
    );
    receiver.stop().await;
    app.stop().await;
}

/// Acceptance 2: a receiver answering 500 three times, then 200, gets the event four times with one
/// `webhook-id` and one body; the log shows one delivered delivery with three failed attempts and a
/// success, and `/metrics` counts them.
#[actix_rt::test]
async fn three_failures_then_a_success_deliver_once_with_one_webhook_id() {
    let app = spawn_app_with(AppOptions {
        configure: Some(|c| c.webhook_retry_first_ms = 100),
        ..Default::default()
    })
    .await;
    let receiver = Receiver::start().await;
    receiver.script(&[Answer::Status(500); 3]);
    let (endpoint, secret) = register(&app, &receiver.url, &["INVITE_CREATED"]).await;
    let started = Instant::now();
    data(app.invite(&["retry@partner.example"], "GUEST").await);

    let got = receiver.wait_for(4).await;
    let log = wait_deliveries(&app, &endpoint, 1, "DELIVERED").await;
    app.drain_jobs(WAIT).await;
    assert_eq!(receiver.got().len(), 4, "no fifth request");
    eprintln!("4 attempts in {:?}", started.elapsed());
    let ids: Vec<&str> = got.iter().map(|r| r.header("webhook-id")).collect();
    assert!(ids.iter().all(|i| *i == ids[0]), "{ids:?}");
    assert!(got.iter().all(|r| r.body == got[0].body));
    for r in &got {
        verify_with_crate(&secret, r).unwrap();
    }
    // The waits grow: 100 ms, then about 400, then about 1600 (each within a fifth).
    let gaps: Vec<u128> = got
        .windows(2)
        .map(|w| (w[1].at - w[0].at).as_millis())
        .collect();
    assert!(
        gaps[0] >= 80 && gaps[1] >= 320 && gaps[2] >= 1280,
        "{gaps:?}"
    );

    let d = &log[0];
    assert_eq!(d["webhookId"], ids[0]);
    assert_eq!(d["attemptCount"], 4);
    assert!(d["nextAttemptAt"].is_null() && d["deliveredAt"].is_string());
    let attempts = d["attempts"].as_array().unwrap();
    let statuses: Vec<i64> = attempts
        .iter()
        .map(|a| a["responseStatus"].as_i64().unwrap())
        .collect();
    assert_eq!(statuses, [500, 500, 500, 200]);
    let numbers: Vec<i64> = attempts
        .iter()
        .map(|a| a["number"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers, [1, 2, 3, 4]);
    let ok: Vec<bool> = attempts
        .iter()
        .map(|a| a["succeeded"].as_bool().unwrap())
        .collect();
    assert_eq!(ok, [false, false, false, true]);
    assert!(attempts.iter().all(|a| a["durationMs"].is_i64()));
    assert_eq!(attempts[0]["responseBodyPrefix"], "receiver says 500");
    assert_eq!(deliveries(&app, &endpoint, Some("FAILED")).await.len(), 0);

    let metrics = app
        .client()
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap()
        .body()
        .await
        .unwrap();
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(
        metrics.contains("guestpass_webhook_deliveries_total{outcome=\"retrying\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("guestpass_webhook_deliveries_total{outcome=\"delivered\"} 1"),
        "{metrics}"
    );
    receiver.stop().await;
    app.stop().await;
}

/// A worker process killed (SIGKILL) while a receiver holds its request loses no event: the job
/// it had claimed runs again on another replica once the dead worker's heartbeat stops and its
/// lease ends, and the receiver gets the same event, with the same `webhook-id`, again.
#[actix_rt::test]
async fn a_worker_killed_mid_delivery_loses_no_event() {
    let app = spawn_app_with(AppOptions {
        workers: false,
        ..Default::default()
    })
    .await;
    let receiver = Receiver::start().await;
    receiver.script(&[Answer::Hold]);
    let (endpoint, secret) = register(&app, &receiver.url, &["INVITE_CREATED"]).await;
    data(app.invite(&["killed@partner.example"], "GUEST").await);

    let mut worker = std::process::Command::new(env!("CARGO_BIN_EXE_guestpass"))
        .args(["serve", "--workers-only"])
        .env("DATABASE_URL", &app.db.url)
        .env(
            "GUESTPASS_SECRET",
            "test-secret-test-secret-test-secret-0123",
        )
        .env("GUESTPASS_PUBLIC_URL", &app.address)
        .env("GUESTPASS_OUTBOX_DIR", &app.outbox)
        .env("GUESTPASS_WORKER_HEARTBEAT_SECS", "1")
        .env("GUESTPASS_WEBHOOK_ALLOW_HTTP", "true")
        .env("GUESTPASS_WEBHOOK_ALLOW_PRIVATE_TARGETS", "true")
        .env("GUESTPASS_WEBHOOK_TIMEOUT_MS", "3000")
        .env("GUESTPASS_LOG", "error")
        .spawn()
        .unwrap();
    let first = receiver.wait_for(1).await;
    worker.kill().unwrap(); // SIGKILL, mid-request
    let _ = worker.wait();
    let killed_at = Instant::now();
    let held = deliveries(&app, &endpoint, None).await;
    assert_eq!(held[0]["status"], "PENDING", "{held:#?}");
    assert_eq!(held[0]["attempts"][0]["durationMs"], Value::Null);

    let replica = app.replica(|c| c.webhook_timeout_ms = 3000).await;
    let got = receiver.wait_for(2).await;
    let log = wait_deliveries(&app, &endpoint, 1, "DELIVERED").await;
    eprintln!(
        "delivered again {:?} after the kill",
        got[1].at.duration_since(killed_at)
    );
    assert_eq!(got[1].header("webhook-id"), first[0].header("webhook-id"));
    assert_eq!(got[1].body, first[0].body);
    verify_with_crate(&secret, &got[1]).unwrap();
    let attempts = log[0]["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{log:#?}");
    assert!(
        attempts[0]["error"]
            .as_str()
            .unwrap()
            .contains("interrupted"),
        "{log:#?}"
    );
    assert_eq!(attempts[1]["responseStatus"], 200);
    replica.stop().await;
    receiver.stop().await;
    app.stop().await;
}

/// Every column of every table (ours and the queue's) that could hold a copy of `secret` in any
/// form (the `whsec_` text, its base64, hex, or the raw bytes): the places that do.
fn where_the_secret_is(app: &TestApp, whsec: &str) -> Vec<String> {
    use base64::Engine;
    use diesel::prelude::*;
    use diesel::sql_types::{BigInt, Bytea, Text};
    #[derive(QueryableByName)]
    struct Column {
        #[diesel(sql_type = Text)]
        place: String,
        #[diesel(sql_type = Text)]
        d: String,
    }
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let b64 = whsec.strip_prefix("whsec_").unwrap();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    let texts = [whsec.to_string(), b64.to_string(), hex::encode(&raw)];
    let mut conn = app.db.conn();
    let columns: Vec<Column> = diesel::sql_query(
        "SELECT format('%I.%I.%I', c.table_schema, c.table_name, c.column_name) AS place,
                c.data_type::text AS d
         FROM information_schema.columns c
         JOIN information_schema.tables t USING (table_schema, table_name)
         WHERE t.table_type = 'BASE TABLE' AND c.table_schema NOT IN ('pg_catalog', 'information_schema')
           AND c.data_type IN ('text', 'character varying', 'bytea', 'json', 'jsonb', 'ARRAY')",
    )
    .load(&mut conn)
    .unwrap();
    let mut hits = Vec::new();
    for Column { place, d } in columns {
        let (table, column) = place.rsplit_once('.').unwrap();
        let from = format!("SELECT count(*) AS n FROM {table}");
        let mut found = 0;
        for text in &texts {
            let q = if d == "bytea" {
                format!("{from} WHERE position(convert_to($1, 'UTF8') IN {column}) > 0")
            } else {
                format!("{from} WHERE strpos({column}::text, $1) > 0")
            };
            found += diesel::sql_query(&q)
                .bind::<Text, _>(text)
                .get_result::<Count>(&mut conn)
                .unwrap()
                .n;
        }
        if d == "bytea" {
            let q = format!("{from} WHERE position($1 IN {column}) > 0");
            found += diesel::sql_query(&q)
                .bind::<Bytea, _>(&raw)
                .get_result::<Count>(&mut conn)
                .unwrap()
                .n;
        }
        if found > 0 {
            hits.push(place);
        }
    }
    hits
}

/// The signing secret is stored sealed (nowhere in any form in the database); a rotation signs
/// with the new and the old secret, both verifying, until the overlap ends, and a second rotation
/// drops the oldest at once.
#[actix_rt::test]
async fn secrets_are_sealed_and_a_rotation_signs_with_both_until_the_overlap_ends() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    let (endpoint, old) = register(&app, &receiver.url, &["INVITE_CREATED"]).await;
    assert_eq!(where_the_secret_is(&app, &old), Vec::<String>::new());
    assert_eq!(
        app.db.scalar_i64(
            "SELECT count(*) FROM webhook_endpoints
             WHERE octet_length(secret_sealed) = 24 + 32 + 16 AND previous_secret_sealed IS NULL"
        ),
        1
    );

    let rotate = "mutation($id: ID!) { rotateWebhookSecret(id: $id) { secret previousSecretExpiresAt endpoint { id previousSecretExpiresAt } } }";
    let r = data(app.admin(rotate, json!({ "id": endpoint })).await)["rotateWebhookSecret"].clone();
    let new = r["secret"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    let until: chrono::DateTime<chrono::Utc> = r["previousSecretExpiresAt"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let hours = (until - chrono::Utc::now()).num_minutes() as f64 / 60.0;
    assert!((23.9..=24.0).contains(&hours), "{hours}");
    assert_eq!(
        r["endpoint"]["previousSecretExpiresAt"],
        r["previousSecretExpiresAt"]
    );
    assert_eq!(where_the_secret_is(&app, &new), Vec::<String>::new());
    assert_eq!(where_the_secret_is(&app, &old), Vec::<String>::new());

    data(app.invite(&["overlap@partner.example"], "GUEST").await);
    let during = receiver.wait_for(1).await[0].clone();
    assert_eq!(during.header("webhook-signature").split(' ').count(), 2);
    verify_with_crate(&old, &during).unwrap();
    verify_with_crate(&new, &during).unwrap();

    // The overlap ends: only the new secret signs.
    app.db
        .execute("UPDATE webhook_endpoints SET previous_until = now() - interval '1 second'");
    data(app.invite(&["after@partner.example"], "GUEST").await);
    let after = receiver.wait_for(2).await[1].clone();
    assert_eq!(after.header("webhook-signature").split(' ').count(), 1);
    verify_with_crate(&new, &after).unwrap();
    assert!(verify_with_crate(&old, &after).is_err());
    let r = data(app.admin(ENDPOINT, json!({ "id": endpoint })).await);
    assert!(r["webhookEndpoint"]["previousSecretExpiresAt"].is_null());

    // Rotating twice in a row: the newest two sign, the oldest no longer does.
    let r = data(app.admin(rotate, json!({ "id": endpoint })).await);
    let newer = r["rotateWebhookSecret"]["secret"]
        .as_str()
        .unwrap()
        .to_string();
    data(app.admin(rotate, json!({ "id": endpoint })).await);
    let r = data(app.admin(rotate, json!({ "id": endpoint })).await);
    let newest = r["rotateWebhookSecret"]["secret"]
        .as_str()
        .unwrap()
        .to_string();
    data(app.invite(&["twice@partner.example"], "GUEST").await);
    let twice = receiver.wait_for(3).await[2].clone();
    assert_eq!(twice.header("webhook-signature").split(' ').count(), 2);
    verify_with_crate(&newest, &twice).unwrap();
    assert!(verify_with_crate(&newer, &twice).is_err());
    assert!(verify_with_crate(&new, &twice).is_err());

    verify_with_node(&[
        (&old, &during, true),
        (&new, &during, true),
        (&new, &after, true),
        (&old, &after, false),
        (&newest, &twice, true),
        (&new, &twice, false),
    ])
    .await;
    receiver.stop().await;
    app.stop().await;
}

/// `guestpass rotate-secrets` re-seals endpoint secrets with the authenticator secrets, and a
/// replica that knows only the new server secret signs with the same webhook secret as before.
#[actix_rt::test]
async fn rotate_secrets_reseals_endpoint_secrets_and_signatures_stay_the_same() {
    const OLD: &str = "test-secret-test-secret-test-secret-0123";
    const NEW: &str = "rotated-secret-rotated-secret-rotated-0456";
    let app = spawn_app_with(AppOptions {
        workers: false,
        ..Default::default()
    })
    .await;
    let receiver = Receiver::start().await;
    let (_, secret) = register(&app, &receiver.url, &["INVITE_CREATED"]).await;
    let rotate = |previous: Option<&str>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_guestpass"));
        cmd.arg("rotate-secrets")
            .env("DATABASE_URL", &app.db.url)
            .env("GUESTPASS_SECRET", NEW)
            .env("GUESTPASS_LOG", "error");
        if let Some(p) = previous {
            cmd.env("GUESTPASS_SECRET_PREVIOUS", p);
        }
        cmd.output().unwrap()
    };
    let out = rotate(Some(OLD));
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 stored secrets re-sealed"),
        "{out:?}"
    );
    let new_key = guestpass::secrets::SecretKeys::new(NEW, None)
        .current_id()
        .to_string();
    assert_eq!(
        app.db.scalar_i64(&format!(
            "SELECT count(*) FROM webhook_endpoints WHERE secret_key_id = '{new_key}'"
        )),
        1
    );
    let out = rotate(Some(OLD));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("0 stored secrets re-sealed"),
        "{out:?}"
    );

    let replica = app
        .replica(|c| c.secret = Some(guestpass::config::Secret(NEW.into())))
        .await;
    data(app.invite(&["resealed@partner.example"], "GUEST").await);
    let got = receiver.wait_for(1).await;
    verify_with_crate(&secret, &got[0]).unwrap();
    replica.stop().await;
    receiver.stop().await;
    app.stop().await;
}

/// Only organization admins see or manage endpoints and deliveries, whatever the path: a site
/// admin who is not one and a guest get `FORBIDDEN` (null data) from the lists, the lookups,
/// `node(id:)` and every mutation, which change nothing; another organization's admin gets
/// `NOT_FOUND`.
#[actix_rt::test]
async fn only_organization_admins_see_and_manage_webhooks() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    let (endpoint, _) = register(&app, &receiver.url, &["INVITE_CREATED"]).await;
    data(app.invite(&["seen@partner.example"], "GUEST").await);
    let delivery = wait_deliveries(&app, &endpoint, 1, "DELIVERED").await[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let before = data(app.admin(ENDPOINT, json!({ "id": endpoint })).await);

    let site_admin = app
        .add_user("sa@acme.example", Some(ProductRole::User))
        .await;
    let site_admin = app.site_admin_of(&site_admin, &app.site_id).await;
    let guest = app
        .add_user("guest@partner.example", Some(ProductRole::Guest))
        .await;
    let guest = app.session_for(&guest).await;
    let other = app
        .bootstrap(
            "Other Org",
            "Other",
            "boss@other.example",
            &["other.example"],
        )
        .await
        .api_token;

    let reads = [
        (
            "{ webhookEndpoints(first: 5) { totalCount } }",
            "webhookEndpoints",
        ),
        (
            "query($e: ID!) { webhookEndpoint(id: $e) { id url } }",
            "webhookEndpoint",
        ),
        (
            "query($e: ID!) { webhookDeliveries(endpointId: $e) { totalCount } }",
            "webhookDeliveries",
        ),
        (
            "query($e: ID!) { node(id: $e) { id ... on WebhookEndpoint { url } } }",
            "node",
        ),
        (
            "query($d: ID!) { node(id: $d) { id ... on WebhookDelivery { payload } } }",
            "node",
        ),
    ];
    let writes = [
        (
            "mutation { createWebhookEndpoint(input: { url: \"http://127.0.0.1:1/x\", events: [INVITE_CREATED] }) { secret } }",
            "createWebhookEndpoint",
        ),
        (
            "mutation($e: ID!) { updateWebhookEndpoint(input: { id: $e, enabled: false }) { endpoint { id } } }",
            "updateWebhookEndpoint",
        ),
        (
            "mutation($e: ID!) { rotateWebhookSecret(id: $e) { secret } }",
            "rotateWebhookSecret",
        ),
        (
            "mutation($d: ID!) { redeliverWebhook(deliveryId: $d) { delivery { id } } }",
            "redeliverWebhook",
        ),
        (
            "mutation($e: ID!) { deleteWebhookEndpoint(id: $e) { deletedWebhookEndpointId } }",
            "deleteWebhookEndpoint",
        ),
    ];
    let vars = json!({ "e": endpoint, "d": delivery });
    for (who, token) in [("site admin", &site_admin), ("guest", &guest)] {
        for (q, field) in reads.iter().chain(writes.iter()) {
            let r = app.gql(Some(token), q, vars.clone()).await;
            assert_eq!(code(&r).as_deref(), Some("FORBIDDEN"), "{who}, {q}: {r}");
            assert!(
                r["data"].is_null() || r["data"][field].is_null(),
                "{who}, {q}: {r}"
            );
        }
        let r = app
            .gql(
                Some(token),
                "query($e: ID!, $d: ID!) { nodes(ids: [$e, $d]) { id } }",
                vars.clone(),
            )
            .await;
        assert_eq!(r["data"]["nodes"], json!([null, null]), "{who}: {r}");
    }
    // Another organization's admin: the ids name nothing of theirs; their own list is empty.
    for (q, _) in reads.iter().skip(1).chain(writes.iter().skip(1)) {
        let r = app.gql(Some(&other), q, vars.clone()).await;
        assert_eq!(code(&r).as_deref(), Some("NOT_FOUND"), "{q}: {r}");
    }
    let r = data(app.gql(Some(&other), reads[0].0, json!({})).await);
    assert_eq!(r["webhookEndpoints"]["totalCount"], 0);

    // Nothing changed: the endpoint, its secret's time, its one delivery of one attempt.
    assert_eq!(
        data(app.admin(ENDPOINT, json!({ "id": endpoint })).await),
        before
    );
    let log = deliveries(&app, &endpoint, None).await;
    assert_eq!(log.len(), 1);
    assert_eq!(log[0]["attemptCount"], 1);
    assert_eq!(
        app.db.scalar_i64("SELECT count(*) FROM webhook_endpoints"),
        1
    );
    receiver.stop().await;
    app.stop().await;
}

/// Retries used up: the delivery fails and its endpoint is failing (admins see since when); a
/// redelivery that succeeds makes it active again. Bad input is refused with its code, changing
/// nothing; a disabled endpoint gets nothing.
#[actix_rt::test]
async fn an_endpoint_that_keeps_failing_is_marked_failing_until_a_delivery_succeeds() {
    let app = spawn_app_with(AppOptions {
        configure: Some(|c| {
            c.webhook_retry_first_ms = 50;
            c.webhook_retry_for_secs = 1;
        }),
        ..Default::default()
    })
    .await;
    let receiver = Receiver::start().await;
    receiver.script(&[Answer::Status(503); 20]);
    let (endpoint, _) = register(&app, &receiver.url, &["INVITE_CREATED", "INVITE_REVOKED"]).await;
    let invite = invite_id(&data(app.invite(&["down@partner.example"], "GUEST").await));
    let failed = wait_deliveries(&app, &endpoint, 1, "FAILED").await;
    let tries = failed[0]["attemptCount"].as_i64().unwrap();
    assert!((2..=5).contains(&tries), "{failed:#?}");
    assert_eq!(receiver.got().len() as i64, tries);
    let e = data(app.admin(ENDPOINT, json!({ "id": endpoint })).await)["webhookEndpoint"].clone();
    assert_eq!(e["status"], "FAILING", "{e}");
    assert!(e["failingSince"].is_string() && e["enabled"] == true, "{e}");

    // A failing endpoint still receives; the receiver is back, and a redelivery succeeds.
    receiver.shared.script.lock().unwrap().clear();
    let r = data(
        app.admin(
            "mutation($d: ID!) { redeliverWebhook(deliveryId: $d) { delivery { id status webhookId } } }",
            json!({ "d": failed[0]["id"] }),
        )
        .await,
    );
    assert_eq!(r["redeliverWebhook"]["delivery"]["status"], "PENDING");
    assert_eq!(
        r["redeliverWebhook"]["delivery"]["webhookId"],
        failed[0]["webhookId"]
    );
    wait_deliveries(&app, &endpoint, 1, "DELIVERED").await;
    let last = receiver.got().last().unwrap().clone();
    assert_eq!(last.header("webhook-id"), failed[0]["webhookId"]);
    let e = data(app.admin(ENDPOINT, json!({ "id": endpoint })).await)["webhookEndpoint"].clone();
    assert_eq!(e["status"], "ACTIVE", "{e}");
    assert!(e["failingSince"].is_null());

    // Disabled: nothing is queued for it.
    let update = "mutation($i: UpdateWebhookEndpointInput!) { updateWebhookEndpoint(input: $i) { endpoint { status enabled events } } }";
    let r = data(
        app.admin(update, json!({ "i": { "id": endpoint, "enabled": false } }))
            .await,
    );
    assert_eq!(r["updateWebhookEndpoint"]["endpoint"]["status"], "DISABLED");
    data(
        app.admin(
            "mutation($id: ID!) { revokeInvite(id: $id) { invite { id } } }",
            json!({ "id": invite }),
        )
        .await,
    );
    app.drain_jobs(WAIT).await;
    assert_eq!(deliveries(&app, &endpoint, None).await.len(), 1);
    let r = data(app.admin(update, json!({ "i": { "id": endpoint, "enabled": true, "events": ["INVITE_REVOKED", "INVITE_CREATED", "INVITE_CREATED"] } })).await);
    assert_eq!(
        r["updateWebhookEndpoint"]["endpoint"]["events"],
        json!(["INVITE_CREATED", "INVITE_REVOKED"])
    );

    // Refused input, each with its code, changing nothing.
    for (input, code_, field) in [
        (
            json!({ "url": "not a url", "events": ["INVITE_CREATED"] }),
            "INVALID_INPUT",
            "url",
        ),
        (
            json!({ "url": "https://u:p@hooks.example/x", "events": ["INVITE_CREATED"] }),
            "INVALID_INPUT",
            "url",
        ),
        (
            json!({ "url": receiver.url, "events": [] }),
            "INVALID_INPUT",
            "events",
        ),
        (
            json!({ "url": receiver.url, "events": ["INVITE_CREATED"], "description": "a\nb" }),
            "INVALID_INPUT",
            "description",
        ),
    ] {
        let r = app.admin(CREATE, json!({ "i": input })).await;
        assert_eq!(code(&r).as_deref(), Some(code_), "{input}: {r}");
        assert_eq!(r["errors"][0]["extensions"]["field"], field, "{r}");
    }
    for _ in 1..20 {
        register(&app, &receiver.url, &["INVITE_CREATED"]).await;
    }
    let r = app
        .admin(
            CREATE,
            json!({ "i": { "url": receiver.url, "events": ["INVITE_CREATED"] } }),
        )
        .await;
    assert_eq!(
        code(&r).as_deref(),
        Some("TOO_MANY_WEBHOOK_ENDPOINTS"),
        "{r}"
    );
    assert_eq!(r["errors"][0]["extensions"]["max"], 20);
    assert_eq!(
        app.db.scalar_i64("SELECT count(*) FROM webhook_endpoints"),
        20
    );
    receiver.stop().await;
    app.stop().await;
}

/// Events Guestpass records by itself go out too: an invite email refused for good
/// (`invite.delivery_failed`), an invite past its expiry (`invite.expired`, once however often the
/// scheduler runs) and a re-verification reminder (`reverification.due`), each without an actor.
#[actix_rt::test]
async fn what_the_scheduler_and_the_mail_worker_record_goes_out_too() {
    let sink = SmtpSink::start_with(smtp::Mode::RejectRecipients).await;
    let app = spawn_app_with(AppOptions {
        smtp_url: Some(sink.url()),
        ..Default::default()
    })
    .await;
    let receiver = Receiver::start().await;
    let (endpoint, _) = register(
        &app,
        &receiver.url,
        &[
            "INVITE_EXPIRED",
            "INVITE_DELIVERY_FAILED",
            "REVERIFICATION_DUE",
        ],
    )
    .await;
    let invite = invite_id(&data(
        app.invite(&["bounce@partner.example"], "GUEST").await,
    ));
    let got = receiver.wait_for(1).await;
    let failed = got[0].json();
    assert_eq!(failed["type"], "invite.delivery_failed");
    assert_eq!(failed["target"]["id"], invite);
    assert!(failed["actor"].is_null());
    assert_eq!(failed["data"]["email"], "bounce@partner.example");

    // An external person due for re-verification, and the invite expired: the sweep records both.
    let external = app
        .add_user("due@partner.example", Some(ProductRole::Guest))
        .await;
    app.clock.advance(chrono::Duration::days(15));
    let verified = app.clock.now() - chrono::Duration::days(28);
    app.db.execute(&format!(
        "UPDATE users SET verified_at = '{}' WHERE id = '{}'",
        verified.to_rfc3339(),
        uuid_of(&external)
    ));
    let sweep = "mutation { runReverificationSweep { queued } }";
    data(app.admin(sweep, json!({})).await);
    let got = receiver.wait_for(3).await;
    app.drain_jobs(WAIT).await;
    data(app.admin(sweep, json!({})).await);
    app.drain_jobs(WAIT).await;
    let got_after = receiver.got();
    assert_eq!(got_after.len(), 3, "once each: {got_after:#?}");
    let by_type: BTreeMap<String, Value> = got
        .iter()
        .map(|r| (r.json()["type"].as_str().unwrap().to_string(), r.json()))
        .collect();
    let expired = &by_type["invite.expired"];
    assert_eq!(expired["target"]["id"], invite);
    assert_eq!(expired["data"]["status"], "EXPIRED");
    assert!(expired["actor"].is_null());
    let due = &by_type["reverification.due"];
    assert_eq!(due["target"]["id"], external);
    let until: chrono::DateTime<chrono::Utc> = due["data"]["verifiedUntil"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        ((until - verified).num_seconds() - 30 * 86_400).abs() <= 1,
        "the default 30-day period: {until} after {verified}"
    );
    assert_eq!(
        deliveries(&app, &endpoint, Some("DELIVERED")).await.len(),
        3
    );
    receiver.stop().await;
    app.stop().await;
}

/// The delivery row is the source of truth: one whose job was lost (deleted here by hand) goes out
/// after the scheduler's next sweep, once it is overdue by the rescue's margin.
#[actix_rt::test]
async fn a_delivery_whose_job_was_lost_goes_out_after_the_next_sweep() {
    let app = spawn_app().await;
    let receiver = Receiver::start().await;
    let (endpoint, _) = register(&app, &receiver.url, &["INVITE_CREATED"]).await;
    // A delivery as the outbox writes one, but without its job.
    app.db.execute(
        "INSERT INTO webhook_deliveries (endpoint_id, audit_event_id, event_type, payload, created_at,
                                         next_attempt_at)
         SELECT id, 1, 'invite.created', '{\"id\":\"evt_1\",\"type\":\"invite.created\"}', now(), now()
         FROM webhook_endpoints",
    );
    let sweep = "mutation { runReverificationSweep { queued } }";
    data(app.admin(sweep, json!({})).await);
    app.drain_jobs(WAIT).await;
    assert!(receiver.got().is_empty(), "not overdue yet: left alone");
    assert_eq!(deliveries(&app, &endpoint, Some("PENDING")).await.len(), 1);

    app.clock.advance(chrono::Duration::minutes(11));
    data(app.admin(sweep, json!({})).await);
    let got = receiver.wait_for(1).await;
    assert_eq!(got[0].json()["id"], "evt_1");
    wait_deliveries(&app, &endpoint, 1, "DELIVERED").await;
    receiver.stop().await;
    app.stop().await;
}
