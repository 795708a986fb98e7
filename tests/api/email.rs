//! Invite emails over real sockets: the queue, the SMTP conversation, faults, and the accept page.

use crate::common::smtp::{Mode, Received, SmtpSink};
use crate::common::*;
use serde_json::{Value, json};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

async fn invite_with_message(app: &TestApp, emails: &[&str], message: &str) -> Value {
    app.admin(
        INVITE,
        json!({ "input": { "siteId": app.site_id, "emails": emails, "role": "GUEST", "personalMessage": message } }),
    )
    .await
}

fn between<'a>(s: &'a str, start: &str, end: &str) -> &'a str {
    let i = s
        .find(start)
        .unwrap_or_else(|| panic!("{start} not in {s}"))
        + start.len();
    let j = s[i..].find(end).unwrap() + i;
    &s[i..j]
}

async fn get_page(app: &TestApp, url: &str) -> (u16, String, Option<String>) {
    let mut res = app.client().get(url).send().await.unwrap();
    let cookie = res
        .headers()
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string());
    assert_eq!(res.headers().get("referrer-policy").unwrap(), "no-referrer");
    assert!(
        res.headers()
            .get("content-security-policy")
            .unwrap()
            .to_str()
            .unwrap()
            .contains("default-src 'none'")
    );
    let body = crate::common::smtp::normalize_entities(
        std::str::from_utf8(&res.body().await.unwrap()).unwrap(),
    );
    (res.status().as_u16(), body, cookie)
}

async fn wait_delivery(app: &TestApp, invite_id: &str, status: &str) -> Value {
    let q = "query($s: ID!) { invites(siteId: $s, first: 100) { edges { node { id emailDelivery { status attempts lastError sentAt nextAttemptAt } } } } }";
    let start = std::time::Instant::now();
    loop {
        let d = data(app.admin(q, json!({ "s": app.site_id })).await);
        let node = d["invites"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["node"]["id"] == invite_id)
            .unwrap()["node"]
            .clone();
        if node["emailDelivery"]["status"] == status {
            return node["emailDelivery"].clone();
        }
        assert!(
            start.elapsed() < WAIT,
            "delivery never reached {status}: {node}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_rt::test]
async fn three_invites_three_emails_and_the_link_accepts() {
    let sink = SmtpSink::start().await;
    let app = spawn_app_with(AppOptions {
        smtp_url: Some(sink.url()),
        ..Default::default()
    })
    .await;
    let res = data(
        invite_with_message(
            &app,
            &[
                "ada@partner.example",
                "bob@partner.example",
                "cy@partner.example",
            ],
            "Hello <b>team</b> & co\nSecond line",
        )
        .await,
    );
    let ids: Vec<String> = res["inviteUsers"]["invites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect();
    let msgs = sink.wait_for(3, WAIT).await;
    app.drain_jobs(WAIT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let msgs: Vec<Received> = if sink.messages().len() == 3 {
        msgs
    } else {
        panic!("expected exactly 3 messages, got {}", sink.messages().len())
    };
    let mut to: Vec<String> = msgs.iter().flat_map(|m| m.to.clone()).collect();
    to.sort();
    assert_eq!(
        to,
        [
            "ada@partner.example",
            "bob@partner.example",
            "cy@partner.example"
        ]
    );
    for m in &msgs {
        assert_eq!(
            m.header("Subject").unwrap(),
            "admin invited you to Docs (Acme)"
        );
        let body = m.decoded();
        assert!(
            body.contains("Content-Type: text/plain") && body.contains("Content-Type: text/html")
        );
        assert!(
            body.contains("Hello &lt;b&gt;team&lt;/b&gt; &amp; co<br>Second line<br>"),
            "{body}"
        );
        assert!(
            body.contains("> Hello <b>team</b> & co\r\n> Second line"),
            "{body}"
        );
        assert!(body.contains("expires on") && body.contains("UTC"));
        assert!(m.header("Message-ID").unwrap().starts_with("<invite."));
    }
    for id in &ids {
        let d = wait_delivery(&app, id, "SENT").await;
        assert_eq!(d["attempts"], 1);
    }

    // Follow Ada's link: the page, then the form.
    let ada = msgs
        .iter()
        .find(|m| m.to == ["ada@partner.example"])
        .unwrap();
    let link = ada.invite_link();
    assert!(
        link.starts_with(&format!("{}/invite/gpi_", app.address)),
        "{link}"
    );
    let (status, page, cookie) = get_page(&app, &link).await;
    assert_eq!(status, 200);
    assert!(
        page.contains("Hello &lt;b&gt;team&lt;/b&gt; &amp; co")
            && page.contains("admin")
            && page.contains("Docs")
    );
    let csrf = between(&page, "name=\"csrf\" value=\"", "\"").to_string();
    let cookie = cookie.expect("a CSRF cookie");

    // without the cookie (a cross-site post), nothing happens
    let res = app
        .client()
        .post(&link)
        .send_form(&[
            ("csrf", csrf.as_str()),
            ("display_name", "Ada L"),
            ("password", "correct horse battery"),
            ("password_confirmation", "correct horse battery"),
        ])
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let mut res = app
        .client()
        .post(&link)
        .insert_header(("Cookie", cookie.clone()))
        .send_form(&[
            ("csrf", csrf.as_str()),
            ("display_name", "Ada Lovelace"),
            ("password", "correct horse battery"),
            ("password_confirmation", "correct horse battery"),
        ])
        .await
        .unwrap();
    let body = String::from_utf8(res.body().await.unwrap().to_vec()).unwrap();
    assert_eq!(res.status(), 200, "{body}");
    assert!(body.contains("Welcome, Ada Lovelace"));
    assert_eq!(app.db.scalar_i64("SELECT count(*) FROM users WHERE display_name = 'Ada Lovelace' AND email_normalized = 'ada@partner.example'"), 1);
    assert_eq!(
        app.db.scalar_i64(&format!(
            "SELECT count(*) FROM invites WHERE id = '{}' AND status = 'ACCEPTED'",
            ids[0]
        )),
        1
    );
    // the link is used now: the same invalid page as any other bad link
    let (status, page, _) = get_page(&app, &link).await;
    assert_eq!(status, 404);
    assert!(page.contains("not valid"));
    let (status2, page2, _) = get_page(
        &app,
        &format!("{}/invite/gpi_{}", app.address, "0".repeat(64)),
    )
    .await;
    assert_eq!((status2, page2), (status, page));

    // Bob accepts through the mutation and signs in with the session.
    let bob = msgs
        .iter()
        .find(|m| m.to == ["bob@partner.example"])
        .unwrap();
    let token = bob.invite_link().rsplit('/').next().unwrap().to_string();
    let res = data(
        app.gql(None, "mutation($i: AcceptInviteInput!) { acceptInvite(input: $i) { sessionToken } }", json!({ "i": { "token": token, "displayName": "Bob", "password": "another fine passphrase" } }))
            .await,
    );
    let session = res["acceptInvite"]["sessionToken"].as_str().unwrap();
    let me = data(app.gql(Some(session), "{ me { email } }", json!({})).await);
    assert_eq!(me["me"]["email"], "bob@partner.example");
}

#[actix_rt::test]
async fn rolled_back_batches_leave_no_job_and_send_nothing() {
    let sink = SmtpSink::start().await;
    let app = spawn_app_with(AppOptions {
        smtp_url: Some(sink.url()),
        user_limit: 3,
        ..Default::default()
    })
    .await;
    let res = invite_with_message(
        &app,
        &[
            "a@partner.example",
            "b@partner.example",
            "c@partner.example",
        ],
        "hi",
    )
    .await;
    assert_eq!(code(&res).as_deref(), Some("SEAT_LIMIT_REACHED"));
    assert_eq!(app.db.scalar_i64("SELECT count(*) FROM apalis.jobs"), 0);
    assert_eq!(
        app.db.scalar_i64("SELECT count(*) FROM email_deliveries"),
        0
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(sink.messages().is_empty());
}

#[actix_rt::test]
async fn hostile_messages_arrive_as_inert_text_with_exactly_the_expected_headers() {
    let sink = SmtpSink::start().await;
    let app = spawn_app_with(AppOptions {
        smtp_url: Some(sink.url()),
        ..Default::default()
    })
    .await;
    let hostile = "Hi\r\nBcc: evil@example.com\r\nSubject: hacked\r\n\r\n<script>alert(1)</script>\nX-Evil: 1";
    data(invite_with_message(&app, &["target@partner.example"], hostile).await);
    let msgs = sink.wait_for(1, WAIT).await;
    let m = &msgs[0];
    assert_eq!(m.to, ["target@partner.example"]);
    let head = m
        .data
        .split("\r\n\r\n")
        .next()
        .unwrap()
        .replace("\r\n ", " ");
    let mut names: Vec<&str> = head.lines().map(|l| l.split(':').next().unwrap()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "Content-Type",
            "Date",
            "From",
            "MIME-Version",
            "Message-ID",
            "Subject",
            "To"
        ]
    );
    assert_eq!(
        m.header("Subject").unwrap(),
        "admin invited you to Docs (Acme)"
    );
    let body = m.decoded();
    assert!(
        !body.contains("<script>alert(1)</script><br>")
            && body.contains("&lt;script&gt;alert(1)&lt;/script&gt;<br>")
    );
    assert!(body.contains("> Bcc: evil@example.com") && body.contains("> X-Evil: 1"));
}

#[actix_rt::test]
async fn an_smtp_outage_delays_but_loses_nothing() {
    // a port with nothing listening yet
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let app = spawn_app_with(AppOptions {
        smtp_url: Some(format!("smtp://127.0.0.1:{port}")),
        retry_base_ms: 200,
        ..Default::default()
    })
    .await;
    let res = data(
        invite_with_message(
            &app,
            &["late1@partner.example", "late2@partner.example"],
            "soon",
        )
        .await,
    );
    let id = res["inviteUsers"]["invites"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let d = wait_delivery(&app, &id, "RETRYING").await;
    assert!(d["attempts"].as_i64().unwrap() >= 1);
    assert!(
        d["lastError"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("connect"),
        "{d}"
    );
    assert!(d["nextAttemptAt"].is_string());
    let sink = SmtpSink::start_on(port, Mode::Accept).await;
    let msgs = sink.wait_for(2, WAIT).await;
    assert_eq!(msgs.len(), 2);
    wait_delivery(&app, &id, "SENT").await;
    app.drain_jobs(WAIT).await;
    assert_eq!(sink.messages().len(), 2, "an email was sent twice");
}

#[actix_rt::test]
async fn a_refused_recipient_fails_for_good() {
    let sink = SmtpSink::start_with(Mode::RejectRecipients).await;
    let app = spawn_app_with(AppOptions {
        smtp_url: Some(sink.url()),
        retry_base_ms: 100,
        ..Default::default()
    })
    .await;
    let res = data(invite_with_message(&app, &["nobody@partner.example"], "x").await);
    let id = res["inviteUsers"]["invites"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let d = wait_delivery(&app, &id, "FAILED").await;
    assert!(d["lastError"].as_str().unwrap().contains("550"), "{d}");
    assert_eq!(d["attempts"], 1);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let d = wait_delivery(&app, &id, "FAILED").await;
    assert_eq!(d["attempts"], 1, "a permanent failure was retried");
    app.drain_jobs(WAIT).await;
}

#[actix_rt::test]
async fn revoked_and_superseded_invites_send_nothing() {
    let sink = SmtpSink::start().await;
    // workers off while we change the invites, so their jobs are still waiting
    let app = spawn_app_with(AppOptions {
        smtp_url: Some(sink.url()),
        workers: false,
        ..Default::default()
    })
    .await;
    let res =
        data(invite_with_message(&app, &["r@partner.example", "s@partner.example"], "x").await);
    let revoke = res["inviteUsers"]["invites"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let resend = res["inviteUsers"]["invites"][1]["id"]
        .as_str()
        .unwrap()
        .to_string();
    data(
        app.admin(
            "mutation($id: ID!) { revokeInvite(id: $id) { invite { id } } }",
            json!({ "id": revoke }),
        )
        .await,
    );
    data(
        app.admin(
            "mutation($id: ID!) { resendInvite(id: $id) { invite { id } } }",
            json!({ "id": resend }),
        )
        .await,
    );
    let token = app.invite_token(&resend).await;
    // now a worker runs over the three jobs
    let mut config = test_config(
        &app.db,
        &AppOptions {
            smtp_url: Some(sink.url()),
            ..Default::default()
        },
        &app.outbox,
    );
    config.public_url = app.address.clone();
    let mut run = guestpass::app::RunOptions::from_config(&config);
    run.api = false;
    let workers = guestpass::app::start(config, run, app.clock.clone(), None)
        .await
        .unwrap();
    app.drain_jobs(WAIT).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let msgs = sink.messages();
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    assert_eq!(msgs[0].to, ["s@partner.example"]);
    assert!(msgs[0].invite_link().ends_with(&token));
    let states = data(app.admin("query($s: ID!) { invites(siteId: $s) { edges { node { email status emailDeliveries { status } } } } }", json!({ "s": app.site_id })).await);
    for e in states["invites"]["edges"].as_array().unwrap() {
        let statuses: Vec<&str> = e["node"]["emailDeliveries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["status"].as_str().unwrap())
            .collect();
        match e["node"]["email"].as_str().unwrap() {
            "r@partner.example" => assert_eq!(statuses, ["CANCELLED"]),
            _ => assert_eq!(statuses, ["SENT", "CANCELLED"]),
        }
    }
    workers.stop().await;
}

#[actix_rt::test]
async fn a_misconfigured_mail_server_is_reported_and_not_blamed_on_the_invite() {
    let sink = SmtpSink::start_with(Mode::RejectAuth).await;
    let url = format!("smtp://user:wrong@127.0.0.1:{}", sink.port);
    let app = spawn_app_with(AppOptions {
        smtp_url: Some(url),
        retry_base_ms: 200,
        ..Default::default()
    })
    .await;
    let res = data(invite_with_message(&app, &["patient@partner.example"], "x").await);
    let id = res["inviteUsers"]["invites"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let d = wait_delivery(&app, &id, "RETRYING").await;
    let err = d["lastError"].as_str().unwrap().to_lowercase();
    assert!(err.contains("535") || err.contains("authentication"), "{d}");
    let mut res = app
        .client()
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap();
    let metrics = String::from_utf8(res.body().await.unwrap().to_vec()).unwrap();
    assert!(
        metrics.contains("guestpass_mail_path_broken 1"),
        "{metrics}"
    );
    let mut res = app
        .client()
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["mail"], "failing");
    // still retrying, never FAILED for it (retries come about every 200 ms; a loaded machine may be slower)
    let start = std::time::Instant::now();
    let d = loop {
        let d = wait_delivery(&app, &id, "RETRYING").await;
        if d["attempts"].as_i64().unwrap() >= 2 || start.elapsed() > WAIT {
            break d;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(d["attempts"].as_i64().unwrap() >= 2, "{d}");
}

#[actix_rt::test]
async fn without_smtp_emails_are_written_to_the_outbox() {
    let app = spawn_app().await;
    let res = data(invite_with_message(&app, &["offline@partner.example"], "see you").await);
    let id = res["inviteUsers"]["invites"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_delivery(&app, &id, "SENT").await;
    let files: Vec<_> = std::fs::read_dir(&app.outbox)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].extension().unwrap(), "eml");
    let raw = std::fs::read_to_string(&files[0]).unwrap();
    assert!(raw.contains("To: offline@partner.example"));
    let token = app.invite_token(&id).await;
    assert!(
        raw.replace("=\r\n", "").contains(&token),
        "the .eml holds the accept link"
    );
}

/// A job whose ack was lost (a database outage) stays locked by a worker that is still alive, so
/// apalis' heartbeat rescue never runs it; the sweep queues it again once it is locked far too long.
#[actix_rt::test]
async fn an_email_job_stuck_in_a_live_worker_goes_out_after_the_next_sweep() {
    let sink = SmtpSink::start().await;
    let app = spawn_app_with(AppOptions {
        smtp_url: Some(sink.url()),
        ..Default::default()
    })
    .await;
    let res = data(invite_with_message(&app, &["stuck@partner.example"], "hi").await);
    let id = res["inviteUsers"]["invites"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    sink.wait_for(1, WAIT).await;
    wait_delivery(&app, &id, "SENT").await;
    app.drain_jobs(WAIT).await;

    // Rewind: as if the worker had locked the job eleven minutes ago and its ack never landed.
    app.db.execute(&format!(
        "UPDATE email_deliveries SET status = 'QUEUED', sent_at = NULL WHERE invite_id = '{id}';
         INSERT INTO apalis.jobs (id, job_type, job, status, attempts, max_attempts, run_at, priority, lock_by, lock_at)
         SELECT apalis.generate_ulid(), 'guestpass::email',
                convert_to(json_build_object('delivery_id', d.id)::text, 'UTF8'), 'Running', 1, 10, now(), 0,
                (SELECT w.id FROM apalis.workers w WHERE w.worker_type = 'guestpass::email' ORDER BY w.last_seen DESC LIMIT 1),
                now() - interval '11 minutes'
         FROM email_deliveries d WHERE d.invite_id = '{id}';"
    ));
    // Its worker keeps beating, so nothing happens by itself.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(sink.messages().len(), 1);
    assert_eq!(
        app.db
            .scalar_i64("SELECT count(*) FROM apalis.jobs WHERE status = 'Running'"),
        1
    );

    let run = "mutation { runReverificationSweep { queued } }";
    data(app.admin(run, json!({})).await);
    let msgs = sink.wait_for(2, WAIT).await;
    assert_eq!(msgs[1].to, vec!["stuck@partner.example".to_string()]);
    assert_eq!(msgs[0].header("Message-ID"), msgs[1].header("Message-ID"));
    wait_delivery(&app, &id, "SENT").await;
    app.drain_jobs(WAIT).await;
}
