//! Abuse limits, HTTP hygiene switches and retention (issue: hardening).

mod common;

use common::*;
use guestpass::domain::ProductRole;
use serde_json::json;

#[actix_rt::test]
async fn an_admin_has_a_daily_invite_cap_and_an_address_a_cooldown() {
    let app = spawn_app_with(AppOptions {
        workers: false,
        configure: Some(|c| {
            c.invites_per_admin_per_day = 12;
            c.recipient_cooldown_secs = 60;
        }),
        ..Default::default()
    })
    .await;
    let ten: Vec<String> = (0..10).map(|i| format!("a{i}@partner.example")).collect();
    data(
        app.invite(&ten.iter().map(String::as_str).collect::<Vec<_>>(), "USER")
            .await,
    );
    let r = app
        .invite(
            &[
                "b1@partner.example",
                "b2@partner.example",
                "b3@partner.example",
            ],
            "USER",
        )
        .await;
    assert_eq!(code(&r).as_deref(), Some("RATE_LIMITED"), "{r}");
    let wait = r["errors"][0]["extensions"]["retryAfterSeconds"]
        .as_i64()
        .unwrap();
    assert!((86_000..=86_400).contains(&wait), "{wait}");
    data(
        app.invite(&["b1@partner.example", "b2@partner.example"], "USER")
            .await,
    );
    // Tomorrow the window has moved on.
    app.clock.advance(chrono::Duration::hours(25));

    // The same address cannot be emailed again within a minute: neither resent nor re-invited.
    let r = data(app.invite(&["c@partner.example"], "GUEST").await);
    let id = r["inviteUsers"]["invites"][0]["id"].clone();
    let resend = "mutation($i: ID!) { resendInvite(id: $i) { id } }";
    let r = app.admin(resend, json!({ "i": id })).await;
    assert_eq!(code(&r).as_deref(), Some("RATE_LIMITED"));
    data(
        app.admin(
            "mutation($i: ID!) { revokeInvite(id: $i) { id } }",
            json!({ "i": id }),
        )
        .await,
    );
    let r = app.invite(&["C@Partner.example"], "GUEST").await;
    assert_eq!(
        code(&r).as_deref(),
        Some("RATE_LIMITED"),
        "case-insensitively"
    );
    app.clock.advance(chrono::Duration::seconds(61));
    data(app.invite(&["c@partner.example"], "GUEST").await);
    app.stop().await;
}

#[actix_rt::test]
async fn accepting_invites_is_limited_per_client_address() {
    let app = spawn_app_with(AppOptions {
        workers: false,
        configure: Some(|c| c.accept_limit_per_address = 3),
        ..Default::default()
    })
    .await;
    let accept = "mutation($i: AcceptInviteInput!) { acceptInvite(input: $i) { sessionToken } }";
    let bad = json!({ "i": { "token": "gpi_guess", "displayName": "X", "password": "a long enough passphrase" } });
    for _ in 0..3 {
        assert_eq!(
            code(&app.gql(None, accept, bad.clone()).await).as_deref(),
            Some("INVITE_INVALID")
        );
    }
    let r = app.gql(None, accept, bad).await;
    assert_eq!(code(&r).as_deref(), Some("RATE_LIMITED"));
    let page = app
        .client()
        .get(format!("{}/invite/gpi_guess", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 429);
    assert!(page.headers().get("retry-after").is_some());
    app.stop().await;
}

#[actix_rt::test]
async fn introspection_graphiql_and_cors_follow_configuration() {
    let app = spawn_app_with(AppOptions {
        workers: false,
        configure: Some(|c| {
            c.graphql_introspection = false;
            c.graphiql = false;
            c.cors_origins = vec!["https://app.example.com".into()];
        }),
        ..Default::default()
    })
    .await;
    let r = app
        .admin(
            "{ __schema { types { name } } __type(name: \"User\") { name } }",
            json!({}),
        )
        .await;
    assert_eq!(
        r["data"],
        json!({ "__schema": null, "__type": null }),
        "{r}"
    );
    data(app.admin("{ me { id } }", json!({})).await);
    let page = app
        .client()
        .get(format!("{}/graphiql", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 404);

    let preflight = |origin: &'static str| {
        app.client()
            .request(
                awc::http::Method::OPTIONS,
                format!("{}/graphql", app.address),
            )
            .insert_header(("Origin", origin))
            .insert_header(("Access-Control-Request-Method", "POST"))
            .insert_header((
                "Access-Control-Request-Headers",
                "authorization, content-type",
            ))
            .send()
    };
    let ok = preflight("https://app.example.com").await.unwrap();
    assert_eq!(
        ok.headers().get("access-control-allow-origin").unwrap(),
        "https://app.example.com"
    );
    let refused = preflight("https://evil.example").await.unwrap();
    assert!(
        refused
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    app.stop().await;
}

#[actix_rt::test]
async fn retention_deletes_what_is_past_its_period_and_keeps_the_rest() {
    let app = spawn_app_with(AppOptions {
        workers: false,
        ..Default::default()
    })
    .await;
    let user = app
        .add_user("u@acme.example", Some(ProductRole::User))
        .await;
    let live = app.session_for(&user).await;
    let org = app.org_id.clone();
    let site = app.site_id.clone();
    // Old: a revoked invite, an ended session, a used challenge, a 500-day-old audit event, a done job.
    app.db.execute(&format!(
        "INSERT INTO invites (site_id, email, email_normalized, role, invited_by, token_nonce, status, created_at, expires_at, revoked_at)
           VALUES ('{site}', 'old@partner.example', 'old@partner.example', 1, '{user}', '\\x00000000000000000000000000000000', 'REVOKED',
                   now() - interval '90 days', now() - interval '83 days', now() - interval '89 days');
         INSERT INTO invites (site_id, email, email_normalized, role, invited_by, token_nonce, status, created_at, expires_at, accepted_at)
           VALUES ('{site}', 'kept@partner.example', 'kept@partner.example', 1, '{user}', '\\x00000000000000000000000000000000', 'ACCEPTED',
                   now() - interval '90 days', now() - interval '83 days', now() - interval '89 days');
         INSERT INTO sessions (user_id, token_hash, created_at, last_seen_at, expires_at)
           VALUES ('{user}', sha256('old'), now() - interval '90 days', now() - interval '90 days', now() - interval '76 days');
         INSERT INTO login_challenges (user_id, method, code_nonce, created_at, expires_at)
           VALUES ('{user}', 'EMAIL', '\\x00000000000000000000000000000000', now() - interval '60 days', now() - interval '60 days');
         INSERT INTO audit_events (organization_id, action, target_type, target_id, created_at)
           VALUES ('{org}', 'ancient', 'user', 'x', now() - interval '500 days'),
                  ('{org}', 'recent', 'user', 'x', now() - interval '100 days');
         INSERT INTO apalis.jobs (id, job_type, job, status, attempts, max_attempts, run_at, done_at, priority)
           VALUES (apalis.generate_ulid(), 'guestpass::email', '\\x7b7d', 'Done', 1, 10, now() - interval '40 days', now() - interval '40 days', 0),
                  (apalis.generate_ulid(), 'guestpass::email', '\\x7b7d', 'Done', 1, 10, now() - interval '1 day', now() - interval '1 day', 0);
         INSERT INTO bulk_invites (id, organization_id, site_id, status, created_at, finished_at)
           VALUES (gen_random_uuid(), '{org}', '{site}', 'DONE', now() - interval '40 days', now() - interval '40 days'),
                  (gen_random_uuid(), '{org}', '{site}', 'DONE', now() - interval '2 days', now() - interval '2 days'),
                  (gen_random_uuid(), '{org}', '{site}', 'RUNNING', now() - interval '40 days', NULL);"
    ));
    let now = app.clock.now();
    let report = app
        .state
        .db
        .run(move |c| {
            guestpass::store::retention::run(
                c,
                chrono::Duration::days(30),
                chrono::Duration::days(400),
                now,
            )
        })
        .await
        .unwrap();
    assert_eq!(
        (
            report.invites,
            report.sessions,
            report.challenges,
            report.audit_events,
            report.jobs,
            report.bulk_invites
        ),
        (1, 1, 1, 1, 1, 1),
        "{report:?}"
    );
    assert_eq!(
        app.db
            .scalar_i64("SELECT count(*) FROM invites WHERE status = 'ACCEPTED'"),
        1
    );
    assert_eq!(
        app.db
            .scalar_i64("SELECT count(*) FROM audit_events WHERE action = 'recent'"),
        1
    );
    assert_eq!(app.db.scalar_i64("SELECT count(*) FROM apalis.jobs"), 1);
    assert_eq!(app.db.scalar_i64("SELECT count(*) FROM bulk_invites"), 2);
    data(app.gql(Some(&live), "{ me { id } }", json!({})).await);
    app.stop().await;
}
