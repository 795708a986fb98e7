//! GraphQL subscriptions over a real WebSocket, driven by graphql-ws's reference client
//! (`tests/tools/subscribe.mjs`; `scripts/ensure-node-tools` installs it): events made on one replica
//! reach a subscriber on another, the policy judges every subscription and every event, a revoked
//! session's socket is closed, and a token's connections are bounded.

use crate::common::{
    AppOptions, Replica, SmtpSink, TestApp, code, data, gid, spawn_app, spawn_app_with, spawn_demo,
};
use guestpass::domain::ProductRole;
use serde_json::{Value, json};
use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const DELIVERIES: &str = "subscription($site: ID!) { inviteDeliveryChanged(siteId: $site) { invite { id email status } delivery { status recipient attempts sentAt } } }";
const PROGRESS: &str = "subscription($id: ID!) { bulkInviteProgress(id: $id) { status totalRows pendingRows invitedRows invalidRows } }";
const ACCESS: &str =
    "subscription($site: ID!) { accessChanged(siteId: $site) { action targetType site { id } } }";

/// How long any one expected line may take.
const WITHIN: Duration = Duration::from_secs(10);

/// One `subscribe.mjs` process: a graphql-ws client with one subscription, and the lines it prints.
struct Subscriber {
    child: Child,
    lines: tokio::sync::mpsc::UnboundedReceiver<(Instant, Value)>,
    seen: Vec<Value>,
}

impl Subscriber {
    fn start(address: &str, token: &str, query: &str, variables: Value) -> Self {
        let root = env!("CARGO_MANIFEST_DIR");
        assert!(
            std::path::Path::new(&format!("{root}/tests/tools/node_modules/graphql-ws")).exists(),
            "graphql-ws is not installed: run scripts/ensure-node-tools (scripts/test does)"
        );
        let mut child = Command::new("node")
            .arg(format!("{root}/tests/tools/subscribe.mjs"))
            .arg(format!(
                "{}/graphql",
                address.replacen("http://", "ws://", 1)
            ))
            .arg(token)
            .arg(query)
            .arg(variables.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node (scripts/ensure-node-tools installs it)");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                let value = serde_json::from_str(&line).unwrap_or(json!({ "unparsed": line }));
                if tx.send((Instant::now(), value)).is_err() {
                    return;
                }
            }
        });
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The next line, and when it was printed.
    async fn next(&mut self) -> (Instant, Value) {
        match tokio::time::timeout(WITHIN, self.lines.recv()).await {
            Ok(Some((at, line))) => {
                self.seen.push(line.clone());
                (at, line)
            }
            Ok(None) => panic!("the client ended; it printed {:?}", self.seen),
            Err(_) => panic!(
                "nothing within {WITHIN:?}; the client printed {:?}",
                self.seen
            ),
        }
    }

    /// Skips lines until one `wanted`, and answers it.
    async fn until(&mut self, wanted: impl Fn(&Value) -> bool) -> (Instant, Value) {
        loop {
            let (at, line) = self.next().await;
            if wanted(&line) {
                return (at, line);
            }
        }
    }

    async fn connected(&mut self) {
        let (_, line) = self.next().await;
        assert_eq!(line, json!({ "connected": true }));
    }

    /// The next event's payload.
    async fn event(&mut self) -> (Instant, Value) {
        let (at, line) = self.next().await;
        assert!(line.get("next").is_some(), "not an event: {line}");
        (at, line["next"].clone())
    }

    /// The close the socket ended with.
    async fn closed(&mut self) -> (Instant, Value) {
        let (at, line) = self.until(|l| l.get("closed").is_some()).await;
        (at, line["closed"].clone())
    }

    /// Nothing printed for `quiet`.
    async fn silent_for(&mut self, quiet: Duration) {
        if let Ok(Some((_, line))) = tokio::time::timeout(quiet, self.lines.recv()).await {
            panic!("expected nothing, got {line}; before it: {:?}", self.seen);
        }
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until `metrics` counts `n` running subscriptions (each listens before it is counted).
async fn running(metrics: &guestpass::metrics::Metrics, n: i64) {
    let start = Instant::now();
    while metrics.live_subscriptions.get() != n {
        assert!(
            start.elapsed() < WITHIN,
            "{} subscriptions running, not {n}",
            metrics.live_subscriptions.get()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn connections(metrics: &guestpass::metrics::Metrics, n: i64) {
    let start = Instant::now();
    while metrics.live_connections.get() != n {
        assert!(
            start.elapsed() < WITHIN,
            "{} connections open, not {n}",
            metrics.live_connections.get()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn status(event: &Value) -> String {
    event["data"]["inviteDeliveryChanged"]["delivery"]["status"]
        .as_str()
        .unwrap_or_else(|| panic!("no delivery status: {event}"))
        .to_string()
}

/// A replica serving the API alone: nothing there sends emails or runs bulk files.
async fn api_only(app: &TestApp) -> Replica {
    app.replica_with(|_| {}, |run| run.workers = false).await
}

/// Workers alone (no API), sending through `smtp` when given.
async fn workers_only(app: &TestApp, smtp: Option<String>) -> Replica {
    app.replica_with(move |c| c.smtp_url = smtp, |run| run.api = false)
        .await
}

#[actix_rt::test]
async fn an_invite_made_on_one_replica_is_seen_queued_then_sent_on_another() {
    let sink = SmtpSink::start().await;
    // Replica A takes the invite; B serves the subscriber; neither sends email, so the invite is
    // seen QUEUED for sure, until a workers-only process starts.
    let app = spawn_app_with(AppOptions {
        workers: false,
        ..Default::default()
    })
    .await;
    let b = api_only(&app).await;
    let mut sub = Subscriber::start(
        &b.address,
        &app.admin_token,
        DELIVERIES,
        json!({ "site": gid("Site", &app.site_id) }),
    );
    sub.connected().await;
    running(&b.state.metrics, 1).await;

    let invited = data(app.invite(&["ada@partner.example"], "GUEST").await);
    let invite_id = invited["inviteUsers"]["invites"][0]["id"].clone();
    let (_, queued) = sub.event().await;
    assert_eq!(status(&queued), "QUEUED", "{queued}");
    let change = &queued["data"]["inviteDeliveryChanged"];
    assert_eq!(change["invite"]["id"], invite_id);
    assert_eq!(change["invite"]["email"], "ada@partner.example");
    assert_eq!(change["delivery"]["recipient"], "ada@partner.example");
    assert_eq!(change["delivery"]["attempts"], 0);
    assert!(queued.get("errors").is_none(), "{queued}");

    // Emails start going out: SENDING may be seen on the way, then SENT, and nothing else.
    let started = Instant::now();
    let workers = workers_only(&app, Some(sink.url())).await;
    let mut statuses = vec![status(&queued)];
    while statuses.last().map(String::as_str) != Some("SENT") {
        let (_, event) = sub.event().await;
        statuses.push(status(&event));
        if statuses.last().map(String::as_str) == Some("SENT") {
            assert!(
                event["data"]["inviteDeliveryChanged"]["delivery"]["sentAt"].is_string(),
                "{event}"
            );
        }
    }
    println!(
        "QUEUED to SENT seen on B {:?} after the workers started",
        started.elapsed()
    );
    assert!(
        matches!(
            statuses.iter().map(String::as_str).collect::<Vec<_>>()[..],
            ["QUEUED", "SENT"] | ["QUEUED", "SENDING", "SENT"]
        ),
        "{statuses:?}"
    );
    assert_eq!(sink.wait_for(1, WITHIN).await.len(), 1);
    assert!(b.state.metrics.events_received.get() >= 2);
    drop(sub);
    workers.stop().await;
    b.stop().await;
    app.stop().await;
}

/// How long an invite made on replica A takes to reach a subscriber on replica B: from the moment
/// the mutation is sent, and from its answer (the event may come first: the notification leaves at
/// commit, before the answer does).
#[actix_rt::test]
async fn events_cross_replicas_within_milliseconds() {
    let app = spawn_app_with(AppOptions {
        workers: false,
        ..Default::default()
    })
    .await;
    let b = api_only(&app).await;
    let mut sub = Subscriber::start(
        &b.address,
        &app.admin_token,
        DELIVERIES,
        json!({ "site": gid("Site", &app.site_id) }),
    );
    sub.connected().await;
    running(&b.state.metrics, 1).await;
    let (mut from_sent, mut from_answer) = (Vec::new(), Vec::new());
    for i in 0..20 {
        let email = format!("lat{i}@partner.example");
        let sent = Instant::now();
        data(app.invite(&[&email], "USER").await);
        let answered = Instant::now();
        let (at, event) = sub.event().await;
        assert_eq!(
            event["data"]["inviteDeliveryChanged"]["invite"]["email"],
            email.as_str()
        );
        from_sent.push(at - sent);
        from_answer.push(at.saturating_duration_since(answered));
    }
    from_sent.sort();
    from_answer.sort();
    println!(
        "inviteUsers on A to the event on B, 20 invites: from the request p50 {:?}, max {:?}; \
         from the answer p50 {:?}, max {:?}",
        from_sent[10], from_sent[19], from_answer[10], from_answer[19]
    );
    assert!(from_sent[19] < Duration::from_secs(1), "{from_sent:?}");
    drop(sub);
    b.stop().await;
    app.stop().await;
}

#[actix_rt::test]
async fn the_policy_judges_every_subscription_and_every_event() {
    let app = spawn_app_with(AppOptions {
        workers: false,
        ..Default::default()
    })
    .await;
    let site = gid("Site", &app.site_id);
    let other_site = gid("Site", &app.add_site("Elsewhere"));
    let guest = app
        .add_user("gus@partner.example", Some(ProductRole::Guest))
        .await;
    let guest_session = app.session_for(&guest).await;

    // A guest is refused another site's invites, and their own site's (admins only), with the code
    // the query `invites` answers; a site that does not exist is NOT_FOUND.
    for (subscription, variables, expected) in [
        (DELIVERIES, json!({ "site": other_site }), "FORBIDDEN"),
        (DELIVERIES, json!({ "site": site }), "FORBIDDEN"),
        (ACCESS, json!({ "site": site }), "FORBIDDEN"),
        (
            DELIVERIES,
            json!({ "site": gid("Site", &uuid::Uuid::new_v4().to_string()) }),
            "NOT_FOUND",
        ),
    ] {
        let mut sub = Subscriber::start(&app.address, &guest_session, subscription, variables);
        sub.connected().await;
        let (_, refused) = sub.event().await;
        assert_eq!(code(&refused).as_deref(), Some(expected), "{refused}");
        assert!(refused["data"].is_null(), "{refused}");
        let (_, done) = sub.next().await;
        assert_eq!(done, json!({ "complete": true }));
    }

    // A site admin sees the site's invites as long as they are one: each event is judged again.
    let admin = app
        .add_user("sam@acme.example", Some(ProductRole::User))
        .await;
    let session = app.site_admin_of(&admin, &app.site_id).await;
    let mut theirs = Subscriber::start(&app.address, &session, DELIVERIES, json!({ "site": site }));
    let mut ours = Subscriber::start(
        &app.address,
        &app.admin_token,
        DELIVERIES,
        json!({ "site": site }),
    );
    theirs.connected().await;
    ours.connected().await;
    running(&app.state.metrics, 2).await;
    data(app.invite(&["first@partner.example"], "GUEST").await);
    for sub in [&mut theirs, &mut ours] {
        let (_, event) = sub.event().await;
        assert_eq!(
            event["data"]["inviteDeliveryChanged"]["invite"]["email"],
            "first@partner.example"
        );
    }
    data(
        app.admin(
            "mutation($i: SetAdminRoleInput!) { setAdminRole(input: $i) { user { id } } }",
            json!({ "i": { "userId": admin, "role": "SITE_ADMIN", "siteId": app.site_id, "granted": false } }),
        )
        .await,
    );
    // Their session still signs in (they are a paid user of the site): the socket stays open.
    data(app.invite(&["second@partner.example"], "GUEST").await);
    let (_, event) = ours.event().await;
    assert_eq!(
        event["data"]["inviteDeliveryChanged"]["invite"]["email"],
        "second@partner.example"
    );
    let (_, refused) = theirs.event().await;
    assert_eq!(code(&refused).as_deref(), Some("FORBIDDEN"), "{refused}");
    assert!(refused["data"].is_null(), "{refused}");
    assert_eq!(theirs.next().await.1, json!({ "complete": true }));
    theirs.silent_for(Duration::from_millis(300)).await;
    assert!(
        !theirs
            .seen
            .iter()
            .any(|l| l.to_string().contains("second@")),
        "{:?}",
        theirs.seen
    );
    app.stop().await;
}

#[actix_rt::test]
async fn signing_out_on_one_replica_closes_the_session_s_socket_on_another() {
    let app = spawn_app_with(AppOptions {
        workers: false,
        ..Default::default()
    })
    .await;
    let b = api_only(&app).await;
    let admin = app
        .add_user("sam@acme.example", Some(ProductRole::User))
        .await;
    let session = app.site_admin_of(&admin, &app.site_id).await;
    let other = app.session_for(&admin).await;
    let site = json!({ "site": gid("Site", &app.site_id) });
    let mut sub = Subscriber::start(&b.address, &session, DELIVERIES, site.clone());
    let mut stays = Subscriber::start(&b.address, &other, DELIVERIES, site);
    sub.connected().await;
    stays.connected().await;
    running(&b.state.metrics, 2).await;

    let mut took = Vec::new();
    let asked = Instant::now();
    data(
        app.gql(Some(&session), "mutation { logout { ok } }", json!({}))
            .await,
    );
    let (at, closed) = sub.closed().await;
    took.push(at - asked);
    assert_eq!(closed["code"], 4403, "{closed}");
    assert!(
        closed["reason"]
            .as_str()
            .is_some_and(|r| r.contains("UNAUTHENTICATED")),
        "{closed}"
    );
    // The same person's other session is not concerned: still there, still hearing.
    running(&b.state.metrics, 1).await;
    data(app.invite(&["still@partner.example"], "GUEST").await);
    assert_eq!(
        stays.event().await.1["data"]["inviteDeliveryChanged"]["invite"]["email"],
        "still@partner.example"
    );
    // An account deactivated on A: its sessions' sockets close on B too.
    let asked = Instant::now();
    data(
        app.admin(
            "mutation($u: ID!) { deactivateUser(id: $u) { user { status } } }",
            json!({ "u": admin }),
        )
        .await,
    );
    let (at, closed) = stays.closed().await;
    took.push(at - asked);
    assert_eq!(closed["code"], 4403, "{closed}");
    connections(&b.state.metrics, 0).await;
    println!("revocation on A to the socket closed on B: {took:?} (sign-out, deactivation)");
    for t in took {
        assert!(t < Duration::from_secs(2), "{t:?}");
    }
    b.stop().await;
    app.stop().await;
}

#[actix_rt::test]
async fn a_token_holds_a_bounded_number_of_connections_and_a_bad_one_none() {
    fn two(c: &mut guestpass::config::Config) {
        c.subscriptions_per_token = 2;
    }
    let app = spawn_app_with(AppOptions {
        configure: Some(two),
        workers: false,
        ..Default::default()
    })
    .await;
    let site = json!({ "site": gid("Site", &app.site_id) });
    let mut first = Subscriber::start(&app.address, &app.admin_token, DELIVERIES, site.clone());
    let mut second = Subscriber::start(&app.address, &app.admin_token, DELIVERIES, site.clone());
    first.connected().await;
    second.connected().await;
    connections(&app.state.metrics, 2).await;

    let mut third = Subscriber::start(&app.address, &app.admin_token, DELIVERIES, site.clone());
    let (_, closed) = third.closed().await;
    assert_eq!(closed["code"], 1013, "{closed}");
    assert!(
        closed["reason"]
            .as_str()
            .is_some_and(|r| r.contains("at most 2")),
        "{closed}"
    );
    assert!(!third.seen.contains(&json!({ "connected": true })));
    // Another token of the same person has places of its own.
    let other_token = app.session_for(&app.admin_id).await;
    let mut other = Subscriber::start(&app.address, &other_token, DELIVERIES, site.clone());
    other.connected().await;
    // A place comes back when a connection ends.
    drop(first);
    connections(&app.state.metrics, 2).await;
    let mut again = Subscriber::start(&app.address, &app.admin_token, DELIVERIES, site.clone());
    again.connected().await;

    // A token that signs no one in is refused at connection_init, and so is none at all.
    for token in ["gp_not-a-token", "-"] {
        let mut refused = Subscriber::start(&app.address, token, DELIVERIES, site.clone());
        let (_, closed) = refused.closed().await;
        assert_eq!(closed["code"], 4403, "{token}: {closed}");
    }
    // Queries and mutations go over HTTP; subscriptions obey the HTTP layer's limits (aliases here).
    let spare = app.session_for(&app.admin_id).await;
    let mut query = Subscriber::start(&app.address, &spare, "{ me { id } }", json!({}));
    query.connected().await;
    assert_eq!(code(&query.event().await.1).as_deref(), Some("BAD_REQUEST"));
    let aliases: Vec<String> = (0..31).map(|i| format!("a{i}: action")).collect();
    let aliased = format!(
        "subscription($site: ID!) {{ accessChanged(siteId: $site) {{ {} }} }}",
        aliases.join(" ")
    );
    let mut aliased = Subscriber::start(&app.address, &spare, &aliased, site.clone());
    aliased.connected().await;
    assert_eq!(
        code(&aliased.event().await.1).as_deref(),
        Some("TOO_MANY_ALIASES")
    );
    drop((second, other, again, query, aliased));
    // And a subscription sent as a request is pointed to the socket, not left waiting.
    let over_http = app.admin(DELIVERIES, site).await;
    assert_eq!(
        code(&over_http).as_deref(),
        Some("BAD_REQUEST"),
        "{over_http}"
    );
    assert!(
        over_http["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("WebSocket")),
        "{over_http}"
    );
    app.stop().await;
}

#[actix_rt::test]
async fn a_bulk_file_s_progress_is_coalesced_and_ends_done() {
    let app = spawn_app_with(AppOptions {
        workers: false,
        ..Default::default()
    })
    .await;
    let mut csv = String::from("email,role\n");
    for i in 0..40 {
        csv.push_str(&format!("user{i}@partner.example,USER\n"));
    }
    csv.push_str("not-an-address,USER\n");
    let (status, body) = app
        .upload_invites(Some(&app.admin_token), &app.site_id, csv.as_bytes())
        .await;
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    let mut sub = Subscriber::start(
        &app.address,
        &app.admin_token,
        PROGRESS,
        json!({ "id": id }),
    );
    sub.connected().await;
    // Its state first.
    let (_, now) = sub.event().await;
    assert_eq!(
        now["data"]["bulkInviteProgress"],
        json!({ "status": "QUEUED", "totalRows": 41, "pendingRows": 40, "invitedRows": 0, "invalidRows": 1 })
    );
    let started = Instant::now();
    let workers = workers_only(&app, None).await;
    let mut events = Vec::new();
    loop {
        let (_, line) = sub.next().await;
        if line == json!({ "complete": true }) {
            break;
        }
        let progress = line["next"]["data"]["bulkInviteProgress"].clone();
        assert!(!progress.is_null(), "{line}");
        events.push(progress);
    }
    let took = started.elapsed();
    let last = events.last().expect("progress until done");
    assert_eq!(last["status"], "DONE", "{events:?}");
    assert_eq!(last["invitedRows"], 40);
    assert_eq!(last["pendingRows"], 0);
    // Never backwards, and coalesced: at most one event per 250 ms (and one to start).
    for pair in events.windows(2) {
        assert!(
            pair[0]["invitedRows"].as_i64() <= pair[1]["invitedRows"].as_i64(),
            "{events:?}"
        );
    }
    let most = took.as_millis() as usize / 250 + 2;
    println!(
        "40 rows: {} progress events in {took:?} (at most {most})",
        events.len()
    );
    assert!(events.len() <= most, "{} events in {took:?}", events.len());
    running(&app.state.metrics, 0).await;
    drop(sub);
    workers.stop().await;
    app.stop().await;
}

#[actix_rt::test]
async fn access_changes_on_a_site_reach_its_subscribers_and_no_other_site_s() {
    let app = spawn_app().await;
    let site = gid("Site", &app.site_id);
    let other_site = app.add_site("Elsewhere");
    let user = app.add_user("pat@acme.example", None).await;
    let mut sub = Subscriber::start(
        &app.address,
        &app.admin_token,
        ACCESS,
        json!({ "site": site }),
    );
    sub.connected().await;
    running(&app.state.metrics, 1).await;

    // On the other site first, then on this one: the first event is this site's.
    app.set_role(&other_site, &user, Some("USER")).await;
    app.set_role(&app.site_id, &user, Some("USER")).await;
    let (_, event) = sub.event().await;
    let change = &event["data"]["accessChanged"];
    assert_eq!(change["site"]["id"], site, "{event}");
    assert_eq!(change["targetType"], "user", "{event}");
    assert!(change["action"].is_string());
    // Content is not access: a space created on the site sends nothing, then a role taken away does.
    app.create_space("ENG").await;
    app.set_role(&other_site, &user, None).await;
    app.set_role(&app.site_id, &user, None).await;
    let mut seen = vec![event];
    loop {
        let (_, next) = sub.event().await;
        let change = next["data"]["accessChanged"].clone();
        assert_eq!(change["site"]["id"], site, "{next}");
        assert_ne!(change["targetType"], "space", "{next}");
        seen.push(next);
        if seen.len() >= 2 && change["targetType"] == "user" {
            break;
        }
    }
    sub.silent_for(Duration::from_millis(300)).await;

    // Organization admins only, as for `auditEvents`.
    let admin = app
        .add_user("sam@acme.example", Some(ProductRole::User))
        .await;
    let session = app.site_admin_of(&admin, &app.site_id).await;
    let mut refused = Subscriber::start(&app.address, &session, ACCESS, json!({ "site": site }));
    refused.connected().await;
    assert_eq!(code(&refused.event().await.1).as_deref(), Some("FORBIDDEN"));
    app.stop().await;
}

#[actix_rt::test]
async fn after_the_events_listener_loses_its_connection_subscribers_are_told_and_caught_up() {
    let app = spawn_app_with(AppOptions {
        workers: false,
        ..Default::default()
    })
    .await;
    let site = json!({ "site": gid("Site", &app.site_id) });
    let mut deliveries =
        Subscriber::start(&app.address, &app.admin_token, DELIVERIES, site.clone());
    let mut access = Subscriber::start(&app.address, &app.admin_token, ACCESS, site);
    deliveries.connected().await;
    access.connected().await;
    running(&app.state.metrics, 2).await;
    let metrics = &app.state.metrics;
    assert_eq!(metrics.events_listener_connected.get(), 1);

    let dropped = Instant::now();
    app.db.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
          WHERE datname = current_database() AND query = 'LISTEN \"guestpass_events\"'",
    );
    // Made while the listener may be away: the audit trail makes it up to `accessChanged`.
    let user = app.add_user("pat@acme.example", None).await;
    app.set_role(&app.site_id, &user, Some("USER")).await;
    let (at, missed) = deliveries.event().await;
    assert_eq!(code(&missed).as_deref(), Some("EVENTS_MISSED"), "{missed}");
    println!("listener dropped to subscribers told: {:?}", at - dropped);
    assert!(metrics.events_listener_drops.get() >= 1);
    assert_eq!(metrics.events_listener_connected.get(), 1);
    let (_, caught) = access.event().await;
    assert_eq!(
        caught["data"]["accessChanged"]["targetType"], "user",
        "{caught}"
    );
    // Once, however it came (caught up or heard).
    access.silent_for(Duration::from_millis(300)).await;

    // And events flow again.
    data(app.invite(&["again@partner.example"], "GUEST").await);
    let (_, event) = deliveries.event().await;
    assert_eq!(status(&event), "QUEUED");
    app.stop().await;
}

/// The README's subscription examples (fenced as ```graphql subscription, so the HTTP example test
/// leaves them to this one) run against the demo over WebSocket, as GraphiQL sends them, and each
/// hears an invite made on the demo's site.
#[actix_rt::test]
async fn every_subscription_example_in_the_readme_runs_against_the_demo() {
    let (app, demo) = spawn_demo().await;
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let mut blocks = Vec::new();
    let mut open: Option<String> = None;
    for line in readme.lines() {
        match open.take() {
            None if line.trim_end() == "```graphql subscription" => open = Some(String::new()),
            None => {}
            Some(block) if line.trim_end() == "```" => blocks.push(block),
            Some(mut block) => {
                block.push_str(line);
                block.push('\n');
                open = Some(block);
            }
        }
    }
    assert!(blocks.len() >= 2, "{} subscription examples", blocks.len());
    let mut subs = Vec::new();
    for block in &blocks {
        let mut sub = Subscriber::start(
            &app.address,
            &demo.admin_token,
            block,
            demo.variables.clone(),
        );
        sub.connected().await;
        subs.push(sub);
    }
    running(&app.state.metrics, blocks.len() as i64).await;
    data(
        app.gql(
            Some(&demo.admin_token),
            "mutation($site: ID!) { inviteUsers(input: { siteId: $site, emails: [\"readme@partner.example\"], role: USER }) { invites { id } } }",
            demo.variables.clone(),
        )
        .await,
    );
    for (sub, block) in subs.iter_mut().zip(&blocks) {
        let (_, event) = sub.event().await;
        assert!(event.get("errors").is_none(), "{event}\n{block}");
        assert!(event["data"].is_object(), "{event}\n{block}");
    }
    app.stop().await;
}
