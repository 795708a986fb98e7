//! Abuse limits, HTTP hygiene switches and retention (issue: hardening).

use crate::common::*;
use guestpass::domain::ProductRole;
use serde_json::{Value, json};

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
    let resend = "mutation($i: ID!) { resendInvite(id: $i) { invite { __typename } } }";
    let r = app.admin(resend, json!({ "i": id })).await;
    assert_eq!(code(&r).as_deref(), Some("RATE_LIMITED"));
    data(
        app.admin(
            "mutation($i: ID!) { revokeInvite(id: $i) { invite { __typename } } }",
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

// GraphQL over HTTP (issue 17): media types, statuses and persisted queries on /graphql.

const GRAPHQL_RESPONSE: &str = "application/graphql-response+json";

/// What `/graphql` answered: status, `Content-Type`, `Allow` and the body (null when not JSON).
struct Answer {
    status: u16,
    content_type: String,
    allow: Option<String>,
    body: Value,
}

async fn call(req: awc::ClientRequest, body: Option<String>) -> Answer {
    let sent = match body {
        Some(b) => req.send_body(b),
        None => req.send(),
    };
    let mut res = sent.await.unwrap();
    let header = |name: &str| {
        res.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (content_type, allow) = (header("content-type").unwrap_or_default(), header("allow"));
    let status = res.status().as_u16();
    let bytes = res.body().limit(1 << 24).await.unwrap();
    Answer {
        status,
        content_type,
        allow,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

/// A POST to /graphql as the admin, with these `Accept` and `Content-Type` (none when `None`).
async fn post_as(
    app: &TestApp,
    accept: Option<&str>,
    content_type: Option<&str>,
    body: &Value,
) -> Answer {
    let mut req = app
        .client()
        .post(format!("{}/graphql", app.address))
        .insert_header(("Authorization", format!("Bearer {}", app.admin_token)));
    if let Some(a) = accept {
        req = req.insert_header(("Accept", a));
    }
    if let Some(c) = content_type {
        req = req.insert_header(("Content-Type", c));
    }
    call(req, Some(body.to_string())).await
}

async fn post_accepting(app: &TestApp, accept: Option<&str>, body: &Value) -> Answer {
    post_as(app, accept, Some("application/json"), body).await
}

/// A GET of /graphql as the admin, with these query parameters.
async fn get_as(app: &TestApp, accept: Option<&str>, params: &[(&str, &str)]) -> Answer {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    let mut req = app
        .client()
        .get(format!("{}/graphql?{query}", app.address))
        .insert_header(("Authorization", format!("Bearer {}", app.admin_token)));
    if let Some(a) = accept {
        req = req.insert_header(("Accept", a));
    }
    call(req, None).await
}

#[actix_rt::test]
async fn graphql_response_json_answers_400_when_nothing_ran_and_200_once_execution_started() {
    let app = spawn_app_with(AppOptions {
        workers: false,
        ..Default::default()
    })
    .await;
    let gr = Some(GRAPHQL_RESPONSE);
    // A field error: execution started, so 200 and `data`, with the failed (nullable) field present
    // as null in its place (`graphql::nulls`).
    let field_error = json!({ "query": "{ user(id: \"nope\") { id } }" });
    let a = post_accepting(&app, gr, &field_error).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(
        a.content_type.starts_with(GRAPHQL_RESPONSE),
        "{}",
        a.content_type
    );
    assert_eq!(a.body["data"], json!({ "user": null }), "{}", a.body);
    assert_eq!(a.body["errors"][0]["path"], json!(["user"]), "{}", a.body);
    assert_eq!(code(&a.body).as_deref(), Some("NOT_FOUND"));
    let both = json!({ "query": "{ user(id: \"nope\") { id } me { id } }" });
    let a = post_accepting(&app, gr, &both).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        a.body["data"],
        json!({ "user": null, "me": { "id": gid("User", &app.admin_id) } }),
        "{}",
        a.body
    );
    assert_eq!(code(&a.body).as_deref(), Some("NOT_FOUND"));
    // Validation and syntax errors: nothing ran, 400 and no `data` at all.
    for (query, want) in [
        ("{ noSuchField }", "GRAPHQL_VALIDATION_FAILED"),
        ("{ me { id }", "GRAPHQL_PARSE_FAILED"),
        (
            "query A { me { id } } query B { me { id } }",
            "GRAPHQL_VALIDATION_FAILED",
        ),
    ] {
        let a = post_accepting(&app, gr, &json!({ "query": query })).await;
        assert_eq!(a.status, 400, "{query}: {}", a.body);
        assert!(a.content_type.starts_with(GRAPHQL_RESPONSE));
        assert!(a.body.get("data").is_none(), "{query}: {}", a.body);
        assert_eq!(code(&a.body).as_deref(), Some(want), "{query}: {}", a.body);
    }
    // The HTTP layer's own refusals: 400 too, even the one JSON clients get with 200.
    let deep = format!("{{ {}x{} }}", "a { ".repeat(20), " }".repeat(20));
    let a = post_accepting(&app, gr, &json!({ "query": deep })).await;
    assert_eq!(
        (a.status, code(&a.body).as_deref()),
        (400, Some("QUERY_TOO_DEEP"))
    );
    assert!(a.body.get("data").is_none() && a.content_type.starts_with(GRAPHQL_RESPONSE));
    let aliases: String = (0..40).map(|i| format!("a{i}: __typename ")).collect();
    let a = post_accepting(&app, gr, &json!({ "query": format!("{{ {aliases} }}") })).await;
    assert_eq!(
        (a.status, code(&a.body).as_deref()),
        (400, Some("TOO_MANY_ALIASES"))
    );
    let a = post_accepting(&app, gr, &json!([])).await;
    assert_eq!(
        (a.status, code(&a.body).as_deref()),
        (400, Some("BATCH_TOO_LARGE"))
    );
    assert!(a.content_type.starts_with(GRAPHQL_RESPONSE));
    // A batch that ran: 200, and the operation that did not run has no `data`.
    let a = post_accepting(
        &app,
        gr,
        &json!([{ "query": "{ me { id } }" }, { "query": "{ noSuchField }" }]),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        a.body[0]["data"]["me"]["id"],
        json!(gid("User", &app.admin_id))
    );
    assert!(
        a.body[1].get("data").is_none() && a.body[1]["errors"].is_array(),
        "{}",
        a.body
    );

    // application/json, or no Accept, or */*: as before, 200 with `data: null`, and the limits'
    // own codes.
    for accept in [
        None,
        Some("application/json"),
        Some("*/*"),
        Some("application/*"),
    ] {
        let a = post_accepting(&app, accept, &json!({ "query": "{ noSuchField }" })).await;
        assert_eq!(a.status, 200, "{accept:?}");
        assert_eq!(a.content_type, "application/json", "{accept:?}");
        assert!(a.body["data"].is_null() && a.body.get("data").is_some());
        assert_eq!(code(&a.body).as_deref(), Some("GRAPHQL_VALIDATION_FAILED"));
    }
    let a = post_accepting(&app, None, &json!({ "query": deep })).await;
    assert_eq!(
        (a.status, code(&a.body).as_deref()),
        (200, Some("QUERY_TOO_DEEP"))
    );
    let a = post_accepting(&app, None, &json!([])).await;
    assert_eq!(
        (a.status, a.content_type.as_str()),
        (400, "application/json")
    );

    // Negotiation: quality first, then the more specific range, then the order of the list.
    for (accept, graphql) in [
        (
            "application/graphql-response+json, application/json;q=0.9",
            true,
        ),
        ("application/json, application/graphql-response+json", false),
        ("application/graphql-response+json, application/json", true),
        (
            "application/json;q=0.5, application/graphql-response+json",
            true,
        ),
        (
            "application/graphql-response+json;q=0.5, application/json",
            false,
        ),
        ("application/graphql-response+json, */*", true),
        ("*/*, application/graphql-response+json", true),
        ("application/json;q=0, */*", true),
        (
            "text/html, application/graphql-response+json;charset=utf-8;q=0.8",
            true,
        ),
        ("APPLICATION/JSON", false),
        ("application/graphql-response+json;q=1.000", true),
    ] {
        let a = post_accepting(&app, Some(accept), &json!({ "query": "{ noSuchField }" })).await;
        let want = if graphql {
            (400, GRAPHQL_RESPONSE)
        } else {
            (200, "application/json")
        };
        assert_eq!(a.status, want.0, "{accept}");
        assert!(
            a.content_type.starts_with(want.1),
            "{accept}: {}",
            a.content_type
        );
    }
    // GET answers the same way.
    let a = get_as(&app, gr, &[("query", "{ noSuchField }")]).await;
    assert_eq!(a.status, 400);
    assert!(a.body.get("data").is_none());
    let a = get_as(&app, gr, &[("query", "{ me { id } }")]).await;
    assert_eq!(a.status, 200);
    assert!(a.content_type.starts_with(GRAPHQL_RESPONSE));
    assert!(a.body["data"]["me"]["id"].is_string());
    app.stop().await;
}

#[actix_rt::test]
async fn an_accept_that_allows_neither_json_type_is_406() {
    let app = spawn_app_with(AppOptions {
        workers: false,
        ..Default::default()
    })
    .await;
    let body = json!({ "query": "{ me { id } }" });
    for accept in [
        "text/html",
        "text/*",
        "application/xml, text/plain;q=0.5",
        "application/graphql-response+json;q=0",
        "application/json;q=0, application/graphql-response+json;q=0, */*;q=0.5",
        "application/json;q=2",
    ] {
        let a = post_accepting(&app, Some(accept), &body).await;
        assert_eq!(a.status, 406, "{accept}: {}", a.body);
        assert_eq!(a.content_type, "application/json");
        assert_eq!(code(&a.body).as_deref(), Some("NOT_ACCEPTABLE"), "{accept}");
        let a = get_as(&app, Some(accept), &[("query", "{ me { id } }")]).await;
        assert_eq!(
            (a.status, code(&a.body).as_deref()),
            (406, Some("NOT_ACCEPTABLE"))
        );
    }
    app.stop().await;
}

#[actix_rt::test]
async fn a_post_whose_body_is_not_declared_json_is_415_and_runs_nothing() {
    let app = spawn_app_with(AppOptions {
        workers: false,
        ..Default::default()
    })
    .await;
    // What a cross-site form or fetch may send without a preflight: the request must not run.
    let rename = json!({ "query": "mutation { createGroup(input: { name: \"Pwned\" }) { group { __typename } } }" });
    for content_type in [
        None,
        Some("text/plain"),
        Some("text/plain;charset=UTF-8"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some("application/json; charset=iso-8859-1"),
        Some("application/graphql"),
        Some("application/jsonp"),
    ] {
        let a = post_as(&app, None, content_type, &rename).await;
        assert_eq!(a.status, 415, "{content_type:?}: {}", a.body);
        assert_eq!(
            code(&a.body).as_deref(),
            Some("UNSUPPORTED_MEDIA_TYPE"),
            "{content_type:?}"
        );
    }
    let a = post_as(&app, Some(GRAPHQL_RESPONSE), Some("text/plain"), &rename).await;
    assert_eq!(a.status, 415);
    assert!(a.content_type.starts_with(GRAPHQL_RESPONSE));
    assert_eq!(pwned(&app), 0);
    for content_type in [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON;charset=\"UTF-8\"",
    ] {
        let a = post_as(
            &app,
            None,
            Some(content_type),
            &json!({ "query": "{ me { id } }" }),
        )
        .await;
        assert_eq!(a.status, 200, "{content_type}");
        assert!(
            a.body["data"]["me"]["id"].is_string(),
            "{content_type}: {}",
            a.body
        );
    }
    app.stop().await;
}

#[actix_rt::test]
async fn methods_graphql_does_not_serve_are_405_with_allow() {
    let app = spawn_app_with(AppOptions {
        workers: false,
        ..Default::default()
    })
    .await;
    let url = format!("{}/graphql", app.address);
    for method in [
        awc::http::Method::PUT,
        awc::http::Method::DELETE,
        awc::http::Method::PATCH,
    ] {
        let req = app
            .client()
            .request(method.clone(), &url)
            .insert_header(("Content-Type", "application/json"));
        let a = call(req, Some(json!({ "query": "{ me { id } }" }).to_string())).await;
        assert_eq!(a.status, 405, "{method}");
        assert_eq!(a.allow.as_deref(), Some("GET, HEAD, POST"), "{method}");
        assert_eq!(
            code(&a.body).as_deref(),
            Some("METHOD_NOT_ALLOWED"),
            "{method}"
        );
    }
    // A GET that would run a mutation: 405, POST allowed; and the mutation did not run.
    for accept in [None, Some(GRAPHQL_RESPONSE)] {
        let a = get_as(
            &app,
            accept,
            &[(
                "query",
                "mutation { createGroup(input: { name: \"Pwned\" }) { group { __typename } } }",
            )],
        )
        .await;
        assert_eq!(a.status, 405, "{accept:?}");
        assert_eq!(a.allow.as_deref(), Some("POST"));
        assert_eq!(code(&a.body).as_deref(), Some("METHOD_NOT_ALLOWED"));
    }
    assert_eq!(pwned(&app), 0);
    // HEAD is still served (as GET).
    let head = app
        .client()
        .head(format!("{url}?query=%7B__typename%7D"))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    app.stop().await;
}

#[actix_rt::test]
async fn a_get_is_judged_by_the_operation_it_selects() {
    let app = spawn_app_with(AppOptions {
        workers: false,
        ..Default::default()
    })
    .await;
    let doc = "query Me { me { id } } mutation Rename { createGroup(input: { name: \"Pwned\" }) { group { __typename } } }";
    // The query runs, though the document holds a mutation.
    let a = get_as(&app, None, &[("query", doc), ("operationName", "Me")]).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        a.body["data"]["me"]["id"],
        json!(gid("User", &app.admin_id)),
        "{}",
        a.body
    );
    // Selecting the mutation is refused.
    let a = get_as(&app, None, &[("query", doc), ("operationName", "Rename")]).await;
    assert_eq!(
        (a.status, a.allow.as_deref()),
        (405, Some("POST")),
        "{}",
        a.body
    );
    // With no operationName nothing runs (the engine asks for one): not a 405.
    let a = get_as(&app, None, &[("query", doc)]).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(
        a.body["data"].is_null() && a.body["errors"].is_array(),
        "{}",
        a.body
    );
    // A lone mutation, named or not, is the one that would run.
    let a = get_as(
        &app,
        None,
        &[(
            "query",
            "mutation Rename { createGroup(input: { name: \"Pwned\" }) { group { __typename } } }",
        )],
    )
    .await;
    assert_eq!(a.status, 405, "{}", a.body);
    assert_eq!(pwned(&app), 0);
    app.stop().await;
}

/// Groups named "Pwned": what the mutations these tests send would create.
fn pwned(app: &TestApp) -> i64 {
    app.db
        .scalar_i64("SELECT count(*) FROM groups WHERE name = 'Pwned'")
}

fn sha256_hex(query: &str) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(query.as_bytes()))
}

fn persisted(hash: &str) -> Value {
    json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } })
}

#[actix_rt::test]
async fn automatic_persisted_queries_round_trip_over_post_and_get() {
    let app = spawn_app_with(AppOptions {
        workers: false,
        ..Default::default()
    })
    .await;
    let me = json!(gid("User", &app.admin_id));
    let query = "query Apq { me { id } }";
    let hash = sha256_hex(query);
    let not_found = |a: &Answer| {
        a.body["errors"][0]["message"] == "PersistedQueryNotFound"
            && code(&a.body).as_deref() == Some("PERSISTED_QUERY_NOT_FOUND")
    };
    // The hash alone, unknown: Apollo's message and code, 200 in JSON, 400 and no data otherwise.
    let only = json!({ "extensions": persisted(&hash) });
    let a = post_accepting(&app, None, &only).await;
    assert_eq!(a.status, 200);
    assert!(not_found(&a), "{}", a.body);
    let a = post_accepting(&app, Some(GRAPHQL_RESPONSE), &only).await;
    assert_eq!(a.status, 400);
    assert!(not_found(&a) && a.body.get("data").is_none(), "{}", a.body);
    // With the query: it runs and is remembered; the hash alone then runs it.
    let full = json!({ "query": query, "extensions": persisted(&hash) });
    let a = post_accepting(&app, None, &full).await;
    assert_eq!(a.body["data"]["me"]["id"], me, "{}", a.body);
    let a = post_accepting(&app, None, &only).await;
    assert_eq!(a.body["data"]["me"]["id"], me, "{}", a.body);
    let a = post_accepting(&app, Some(GRAPHQL_RESPONSE), &only).await;
    assert_eq!(
        (a.status, &a.body["data"]["me"]["id"]),
        (200, &me),
        "{}",
        a.body
    );
    // In a batch, each operation on its own.
    let a = post_accepting(
        &app,
        None,
        &json!([only, { "extensions": persisted(&sha256_hex("{ nothing }")) }]),
    )
    .await;
    assert_eq!(a.body[0]["data"]["me"]["id"], me, "{}", a.body);
    assert_eq!(
        code(&a.body[1]).as_deref(),
        Some("PERSISTED_QUERY_NOT_FOUND")
    );
    // A hash that is not the query's: refused, and nothing is remembered under it.
    let other = "query Other { __typename }";
    let wrong = sha256_hex("query Else { __typename }");
    let a = post_accepting(
        &app,
        None,
        &json!({ "query": other, "extensions": persisted(&wrong) }),
    )
    .await;
    assert_eq!(
        (a.status, code(&a.body).as_deref()),
        (400, Some("BAD_REQUEST")),
        "{}",
        a.body
    );
    assert_eq!(
        a.body["errors"][0]["message"],
        "provided sha does not match query"
    );
    let a = post_accepting(&app, None, &json!({ "extensions": persisted(&wrong) })).await;
    assert!(not_found(&a), "{}", a.body);
    for bad in [
        json!({ "persistedQuery": { "version": 2, "sha256Hash": hash } }),
        json!({ "persistedQuery": { "version": 1 } }),
        json!({ "persistedQuery": "x" }),
    ] {
        let a = post_accepting(&app, None, &json!({ "extensions": bad })).await;
        assert_eq!(
            (a.status, code(&a.body).as_deref()),
            (400, Some("BAD_REQUEST")),
            "{bad}"
        );
    }

    // Over GET, as Apollo sends hashed queries: unknown, registered, then by hash alone.
    let get_query = "query ApqGet { me { id } }";
    let get_hash = sha256_hex(get_query);
    let ext = persisted(&get_hash).to_string();
    let a = get_as(&app, None, &[("extensions", &ext)]).await;
    assert_eq!(a.status, 200);
    assert!(not_found(&a), "{}", a.body);
    let a = get_as(&app, None, &[("query", get_query), ("extensions", &ext)]).await;
    assert_eq!(a.body["data"]["me"]["id"], me, "{}", a.body);
    let a = get_as(
        &app,
        None,
        &[("extensions", &ext), ("operationName", "ApqGet")],
    )
    .await;
    assert_eq!(a.body["data"]["me"]["id"], me, "{}", a.body);
    let a = get_as(&app, Some(GRAPHQL_RESPONSE), &[("extensions", &ext)]).await;
    assert_eq!(
        (a.status, &a.body["data"]["me"]["id"]),
        (200, &me),
        "{}",
        a.body
    );
    // The one registered over POST too.
    let a = get_as(&app, None, &[("extensions", &persisted(&hash).to_string())]).await;
    assert_eq!(a.body["data"]["me"]["id"], me, "{}", a.body);

    // A mutation known by its hash is still a mutation: GET refuses it, POST runs it.
    let mutation =
        "mutation Make { createGroup(input: { name: \"Pwned\" }) { group { __typename } } }";
    let m_hash = sha256_hex(mutation);
    let a = post_accepting(
        &app,
        None,
        &json!({ "query": mutation, "extensions": persisted(&m_hash) }),
    )
    .await;
    assert!(
        a.body["data"]["createGroup"]["group"].is_object(),
        "{}",
        a.body
    );
    assert_eq!(pwned(&app), 1);
    let a = get_as(
        &app,
        None,
        &[("extensions", &persisted(&m_hash).to_string())],
    )
    .await;
    assert_eq!(
        (a.status, a.allow.as_deref()),
        (405, Some("POST")),
        "{}",
        a.body
    );
    assert_eq!(pwned(&app), 1);

    // The limits judge the query a hash stands for: a refused query is not remembered.
    let deep = format!("query Deep {{ {}x{} }}", "a { ".repeat(20), " }".repeat(20));
    let deep_hash = sha256_hex(&deep);
    let a = post_accepting(
        &app,
        None,
        &json!({ "query": deep, "extensions": persisted(&deep_hash) }),
    )
    .await;
    assert_eq!(
        code(&a.body).as_deref(),
        Some("QUERY_TOO_DEEP"),
        "{}",
        a.body
    );
    let a = post_accepting(&app, None, &json!({ "extensions": persisted(&deep_hash) })).await;
    assert!(not_found(&a), "{}", a.body);
    app.stop().await;
}

#[actix_rt::test]
async fn persisted_queries_are_bounded_least_recently_used_first() {
    let app = spawn_app_with(AppOptions {
        workers: false,
        ..Default::default()
    })
    .await;
    let register = |i: usize| {
        let query = format!("query Q{i} {{ __typename }}");
        json!({ "query": query, "extensions": persisted(&sha256_hex(&query)) })
    };
    let by_hash = |i: usize| json!({ "extensions": persisted(&sha256_hex(&format!("query Q{i} {{ __typename }}"))) });
    for i in 0..1_000 {
        let a = post_accepting(&app, None, &register(i)).await;
        assert_eq!(a.body["data"]["__typename"], "QueryRoot", "{}", a.body);
        if i == 500 {
            // Q0 is used again: Q1 is now the least recently used.
            let a = post_accepting(&app, None, &by_hash(0)).await;
            assert_eq!(a.body["data"]["__typename"], "QueryRoot", "{}", a.body);
        }
    }
    // One more than the store holds: the least recently used leaves.
    post_accepting(&app, None, &register(1_000)).await;
    let a = post_accepting(&app, None, &by_hash(1)).await;
    assert_eq!(
        code(&a.body).as_deref(),
        Some("PERSISTED_QUERY_NOT_FOUND"),
        "{}",
        a.body
    );
    for i in [0, 2, 999, 1_000] {
        let a = post_accepting(&app, None, &by_hash(i)).await;
        assert_eq!(a.body["data"]["__typename"], "QueryRoot", "{i}: {}", a.body);
    }
    app.stop().await;
}

// --- Security state shared by replicas (issue 18) ---

const SIGN_IN: &str = "mutation($i: LoginInput!) { login(input: $i) { sessionToken challengeId } }";

async fn sign_in_on(
    app: &TestApp,
    replica: Option<&crate::common::Replica>,
    password: &str,
) -> Value {
    let vars = json!({ "i": { "organization": "acme", "email": "target@acme.example", "password": password } });
    match replica {
        Some(r) => r.gql(None, SIGN_IN, vars).await,
        None => app.gql(None, SIGN_IN, vars).await,
    }
}

#[actix_rt::test]
async fn login_attempts_spread_over_two_replicas_share_one_budget_that_outlives_them() {
    fn limits(c: &mut guestpass::config::Config) {
        c.login_limit_per_account = 6;
        c.login_limit_per_address = 1000;
    }
    let app = spawn_app_with(AppOptions {
        configure: Some(limits),
        ..Default::default()
    })
    .await;
    let id = app
        .add_user("target@acme.example", Some(ProductRole::User))
        .await;
    app.set_password(&id, "correct horse battery staple").await;
    let b = app.replica(limits).await;
    let mut refused_at = None;
    for i in 0..12 {
        let on_b = i % 2 == 1;
        let r = sign_in_on(&app, on_b.then_some(&b), "wrong password here").await;
        match code(&r).as_deref() {
            Some("INVALID_CREDENTIALS") => assert!(refused_at.is_none(), "{i}: {r}"),
            Some("RATE_LIMITED") => {
                refused_at.get_or_insert(i);
            }
            other => panic!("unexpected {other:?}: {r}"),
        }
    }
    assert_eq!(
        refused_at,
        Some(6),
        "six attempts in all, not six per replica"
    );
    // Two fresh processes (nothing in their memory) still refuse, even the right password.
    b.stop().await;
    let c = app.replica(limits).await;
    let d = app.replica(limits).await;
    for r in [&c, &d] {
        let res = sign_in_on(&app, Some(r), "correct horse battery staple").await;
        assert_eq!(code(&res).as_deref(), Some("RATE_LIMITED"), "{res}");
    }
    // The budget is in one row per key, holding no address or email.
    assert_eq!(
        app.db.scalar_i64(
            "SELECT count(*) FROM rate_limits WHERE position('target' in encode(key, 'escape')) > 0"
        ),
        0
    );
    // An interval later (15 min / 6) one attempt fits again, on any replica.
    app.clock.advance(chrono::Duration::seconds(151));
    let ok = sign_in_on(&app, Some(&d), "correct horse battery staple").await;
    assert!(data(ok)["login"]["sessionToken"].is_string());
    // The retention job forgets keys whose budget is whole again.
    app.clock.advance(chrono::Duration::hours(1));
    let now = app.clock.now();
    let report = app
        .state
        .db
        .run(move |c| {
            guestpass::store::retention::run(
                c,
                chrono::Duration::days(30),
                chrono::Duration::days(365),
                now,
            )
        })
        .await
        .unwrap();
    assert!(report.rate_limits >= 2, "{report:?}");
    assert_eq!(app.db.scalar_i64("SELECT count(*) FROM rate_limits"), 0);
    c.stop().await;
    d.stop().await;
    app.stop().await;
}

/// Polls `replica` with `token` until `refused` accepts its error code; the time it took after the
/// change committed (the mutation had answered).
async fn until_refused(
    replica: &crate::common::Replica,
    token: &str,
    refused: &str,
    since: std::time::Instant,
    bound: std::time::Duration,
) -> std::time::Duration {
    loop {
        let r = replica.gql(Some(token), "{ me { id } }", json!({})).await;
        if code(&r).as_deref() == Some(refused) {
            return since.elapsed();
        }
        assert!(r["data"]["me"]["id"].is_string(), "{r}");
        assert!(
            since.elapsed() < bound,
            "still answered after {:?}: {r}",
            since.elapsed()
        );
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
}

/// A long cache: only the notification can explain a fast refusal on the other replica.
fn long_cache(c: &mut guestpass::config::Config) {
    c.auth_cache_ms = 60_000;
}

#[actix_rt::test]
async fn access_ended_on_one_replica_is_refused_on_the_other_within_100_ms() {
    let app = spawn_app_with(AppOptions {
        configure: Some(long_cache),
        ..Default::default()
    })
    .await;
    let b = app.replica(long_cache).await;
    let bound = std::time::Duration::from_millis(100);
    let me = "{ me { id } }";

    // A session ended by signing out on replica A.
    let user = app
        .add_user("s@acme.example", Some(ProductRole::User))
        .await;
    let session = app.session_for(&user).await;
    data(b.gql(Some(&session), me, json!({})).await);
    data(
        app.gql(Some(&session), "mutation { logout { ok } }", json!({}))
            .await,
    );
    let took = until_refused(
        &b,
        &session,
        "UNAUTHENTICATED",
        std::time::Instant::now(),
        bound,
    )
    .await;
    println!("session revoked: refused on the other replica after {took:?}");

    // An account deactivated on replica A: its API token stops on B.
    let user = app
        .add_user("d@acme.example", Some(ProductRole::User))
        .await;
    let token = app.api_token_for(&user).await;
    data(b.gql(Some(&token), me, json!({})).await);
    data(
        app.admin(
            "mutation($u: ID!) { deactivateUser(id: $u) { user { status } } }",
            json!({ "u": user }),
        )
        .await,
    );
    let took = until_refused(
        &b,
        &token,
        "UNAUTHENTICATED",
        std::time::Instant::now(),
        bound,
    )
    .await;
    println!("account deactivated: refused on the other replica after {took:?}");

    // An external guest's API token, blocked by a policy change on replica A.
    let ext = app
        .add_user("ext@partner.example", Some(ProductRole::Guest))
        .await;
    let token = app.api_token_for(&ext).await;
    data(b.gql(Some(&token), me, json!({})).await);
    let policy = json!({ "twoStepVerification": "OFF", "reverificationInterval": 43200, "apiTokenAccess": "BLOCKED" });
    let review = data(app.admin(
        "mutation($i: ExternalUserSecurityInput!) { previewExternalUserSecurityChange(input: $i) { reviewId } }",
        json!({ "i": policy }),
    ).await)["previewExternalUserSecurityChange"]["reviewId"]
        .clone();
    let mut input = policy.clone();
    input["reviewId"] = review;
    data(app.admin(
        "mutation($i: UpdateExternalUserSecurityInput!) { updateExternalUserSecurity(input: $i) { externalUserSecurity { apiTokenAccess } } }",
        json!({ "i": input }),
    ).await);
    let took = until_refused(
        &b,
        &token,
        "API_TOKENS_BLOCKED",
        std::time::Instant::now(),
        bound,
    )
    .await;
    println!("tokens blocked: refused on the other replica after {took:?}");
    assert!(b.state.metrics.revocations_received.get() >= 3);
    b.stop().await;
    app.stop().await;
}

/// The listeners' connections (one per replica).
fn listeners(app: &TestApp) -> i64 {
    app.db.scalar_i64(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query = 'LISTEN \"guestpass_access\"'",
    )
}

async fn wait_for_listeners(app: &TestApp, n: i64) {
    let start = std::time::Instant::now();
    while listeners(app) != n {
        assert!(start.elapsed() < std::time::Duration::from_secs(10));
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[actix_rt::test]
async fn a_killed_listener_reconnects_and_revocations_still_arrive() {
    fn short_cache(c: &mut guestpass::config::Config) {
        c.auth_cache_ms = 2_000;
    }
    let app = spawn_app_with(AppOptions {
        configure: Some(short_cache),
        ..Default::default()
    })
    .await;
    let b = app.replica(short_cache).await;
    wait_for_listeners(&app, 2).await;
    let user = app
        .add_user("s@acme.example", Some(ProductRole::User))
        .await;
    let first = app.session_for(&user).await;
    let second = app.session_for(&user).await;
    data(b.gql(Some(&first), "{ me { id } }", json!({})).await);

    app.db.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
          WHERE datname = current_database() AND query = 'LISTEN \"guestpass_access\"'",
    );
    // Revoked at once: still refused on B within the cache's time bound.
    data(
        app.gql(Some(&first), "mutation { logout { ok } }", json!({}))
            .await,
    );
    until_refused(
        &b,
        &first,
        "UNAUTHENTICATED",
        std::time::Instant::now(),
        std::time::Duration::from_millis(2_500),
    )
    .await;
    // The listeners come back, the drop is counted, and notifications flow again.
    wait_for_listeners(&app, 2).await;
    let start = std::time::Instant::now();
    while b.state.metrics.revocation_listener_connected.get() != 1 {
        assert!(start.elapsed() < std::time::Duration::from_secs(10));
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(b.state.metrics.revocation_listener_drops.get() >= 1);
    let metrics = b.state.metrics.render();
    assert!(
        metrics.contains("guestpass_revocation_listener_drops_total"),
        "{metrics}"
    );
    data(b.gql(Some(&second), "{ me { id } }", json!({})).await);
    data(
        app.gql(Some(&second), "mutation { logout { ok } }", json!({}))
            .await,
    );
    until_refused(
        &b,
        &second,
        "UNAUTHENTICATED",
        std::time::Instant::now(),
        std::time::Duration::from_millis(100),
    )
    .await;
    b.stop().await;
    app.stop().await;
}
