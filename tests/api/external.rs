//! External user security (issue: periodic re-verification on a scheduler, two-step enforcement,
//! API-token blocking, review before change), against the real server, database and an SMTP sink.

use crate::common::smtp::Received;
use crate::common::*;
use guestpass::domain::ProductRole;
use serde_json::{Value, json};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);
const PASSWORD: &str = GUEST_PASSWORD;
const PREVIEW: &str = "mutation($i: ExternalUserSecurityInput!) { previewExternalUserSecurityChange(input: $i) { reviewId counts { people mustReverify mustUseTwoStep tokensStop sessionsEnd } people(first: 100) { totalCount nodes { user { email } mustReverify mustUseTwoStep tokensStop sessionsEnd } } } }";
const UPDATE: &str = "mutation($i: UpdateExternalUserSecurityInput!) { updateExternalUserSecurity(input: $i) { externalUserSecurity { twoStepVerification reverificationInterval apiTokenAccess sessionIdleTimeoutMinutes } } }";

fn policy(two_step: &str, interval: i32, tokens: &str) -> Value {
    json!({ "twoStepVerification": two_step, "reverificationInterval": interval, "apiTokenAccess": tokens })
}

async fn preview(app: &TestApp, p: &Value) -> Value {
    data(app.admin(PREVIEW, json!({ "i": p })).await)["previewExternalUserSecurityChange"].clone()
}

async fn apply(app: &TestApp, p: &Value, review: &Value) -> Value {
    let mut input = p.clone();
    input["reviewId"] = review.clone();
    app.admin(UPDATE, json!({ "i": input })).await
}

/// Previews and applies a policy, as an admin would.
async fn set_policy(app: &TestApp, p: Value) {
    let review = preview(app, &p).await["reviewId"].clone();
    data(apply(app, &p, &review).await);
}

/// A guest who accepted an emailed invite (so verified now), with a session.
async fn guest(app: &TestApp, sink: &SmtpSink, email: &str) -> (String, String) {
    app.emailed_guest(sink, email, json!({})).await
}

fn to(m: &Received) -> &str {
    &m.to[0]
}

#[actix_rt::test]
async fn an_overdue_guest_reaches_only_me_until_they_follow_the_emailed_link() {
    let sink = SmtpSink::start().await;
    let app = spawn_app_with(AppOptions {
        smtp_url: Some(sink.url()),
        ..Default::default()
    })
    .await;
    let (id, session) = guest(&app, &sink, "ext@partner.example").await;
    set_policy(&app, policy("OFF", 15, "ALLOWED")).await;
    let sites = "query { sites { id } }";
    data(app.gql(Some(&session), sites, json!({})).await);
    let me = "{ me { id isExternal verifiedUntil } }";
    let r = data(app.gql(Some(&session), me, json!({})).await);
    assert_eq!(r["me"]["isExternal"], true);

    // 13 minutes on, within the lead time (a fifth of 15 minutes): the sweep, run by hand, emails them.
    app.clock.advance(chrono::Duration::minutes(13));
    let run = "mutation { runReverificationSweep { queued } }";
    assert_eq!(
        data(app.admin(run, json!({})).await)["runReverificationSweep"]["queued"],
        true
    );
    let msgs = sink.wait_for(2, WAIT).await;
    assert_eq!(to(&msgs[1]), "ext@partner.example");
    assert!(
        msgs[1]
            .header("Subject")
            .unwrap()
            .contains("confirm your email address")
    );
    // Run again: once per period, so nothing more.
    data(app.admin(run, json!({})).await);
    app.drain_jobs(WAIT).await;
    assert_eq!(sink.messages().len(), 2);
    let status = data(
        app.admin(
            "{ reverificationStatus { lastRunAt nextRunAt lastRunEmailed pending } }",
            json!({}),
        )
        .await,
    );
    assert_eq!(status["reverificationStatus"]["lastRunEmailed"], 0);
    assert!(status["reverificationStatus"]["nextRunAt"].is_string());

    // Past the period: everything but `me` answers REVERIFICATION_REQUIRED.
    app.clock.advance(chrono::Duration::minutes(3));
    let r = app.gql(Some(&session), sites, json!({})).await;
    assert_eq!(code(&r).as_deref(), Some("REVERIFICATION_REQUIRED"));
    let r = data(app.gql(Some(&session), me, json!({})).await);
    assert_eq!(r["me"]["id"], json!(id));
    let status = data(
        app.admin("{ reverificationStatus { pending } }", json!({}))
            .await,
    );
    assert_eq!(status["reverificationStatus"]["pending"], 1);

    // The emailed link: the page asks to confirm (a scanner's GET verifies nobody), the POST does it.
    let link = msgs[1].invite_link();
    assert!(link.contains("/verify/gpv_"), "{link}");
    let client = app.client();
    let (status, cookie, csrf) = app.open_form(&link).await;
    assert_eq!(status, 200);
    assert_eq!(
        code(&app.gql(Some(&session), sites, json!({})).await).as_deref(),
        Some("REVERIFICATION_REQUIRED")
    );
    let done = client
        .post(&link)
        .insert_header(("Cookie", cookie.clone()))
        .send_form(&[("csrf", csrf.as_str())])
        .await
        .unwrap();
    assert_eq!(done.status(), 200);
    data(app.gql(Some(&session), sites, json!({})).await);
    let r = data(app.gql(Some(&session), me, json!({})).await);
    let until: chrono::DateTime<chrono::Utc> =
        r["me"]["verifiedUntil"].as_str().unwrap().parse().unwrap();
    let expected = app.clock.now() + chrono::Duration::minutes(15);
    assert!(
        (until - expected).num_seconds().abs() < 10,
        "{until} vs {expected}"
    );
    let again = client
        .post(&link)
        .insert_header(("Cookie", cookie))
        .send_form(&[("csrf", csrf.as_str())])
        .await
        .unwrap();
    assert_eq!(again.status(), 404, "a link works once");

    // Another interval later, the emailed code does the same.
    app.clock.advance(chrono::Duration::minutes(16));
    assert_eq!(
        code(&app.gql(Some(&session), sites, json!({})).await).as_deref(),
        Some("REVERIFICATION_REQUIRED")
    );
    let r = data(
        app.gql(
            Some(&session),
            "mutation { requestReverificationCode { __typename expiresAt } }",
            json!({}),
        )
        .await,
    );
    assert_eq!(
        r["requestReverificationCode"]["__typename"],
        "RequestReverificationCodePayload"
    );
    let msgs = sink.wait_for(3, WAIT).await;
    let subject = msgs[2].header("Subject").unwrap();
    let code_sent: String = subject.chars().take_while(char::is_ascii_digit).collect();
    assert!(msgs[2].decoded().contains("verify your email address for"));
    let complete = "mutation($c: String!) { completeReverification(input: { code: $c }) { __typename verifiedUntil } }";
    let wrong = if code_sent == "000000" {
        "111111"
    } else {
        "000000"
    };
    assert_eq!(
        code(
            &app.gql(Some(&session), complete, json!({ "c": wrong }))
                .await
        )
        .as_deref(),
        Some("CODE_INVALID")
    );
    let r = data(
        app.gql(Some(&session), complete, json!({ "c": code_sent }))
            .await,
    );
    assert_eq!(
        r["completeReverification"]["__typename"],
        "CompleteReverificationPayload"
    );
    data(app.gql(Some(&session), sites, json!({})).await);
    let reverified = app
        .db
        .scalar_i64("SELECT count(*) FROM audit_events WHERE action = 'user.reverify'");
    assert_eq!(reverified, 2);
    app.drain_jobs(WAIT).await;
    app.stop().await;
}

#[actix_rt::test]
async fn two_replicas_ticking_every_second_email_each_due_person_once() {
    let sink = SmtpSink::start().await;
    let app = spawn_app_with(AppOptions {
        smtp_url: Some(sink.url()),
        configure: Some(|c| c.reverify_schedule = "* * * * * *".into()),
        ..Default::default()
    })
    .await;
    // 500 external users whose 30-day period ended, and 20 internal ones.
    app.db.execute(&format!(
        "INSERT INTO users (organization_id, email, email_normalized, display_name, created_at)
         SELECT '{org}', 'due' || i || '@partner.example', 'due' || i || '@partner.example', 'Due ' || i,
                now() - interval '31 days'
         FROM generate_series(1, 500) i;
         INSERT INTO users (organization_id, email, email_normalized, display_name, created_at)
         SELECT '{org}', 'staff' || i || '@acme.example', 'staff' || i || '@acme.example', 'Staff ' || i,
                now() - interval '31 days'
         FROM generate_series(1, 20) i;",
        org = app.org_id
    ));
    // A second `serve` process on the same database.
    let smtp = sink.url();
    let second = app
        .replica(|c| {
            c.smtp_url = Some(smtp);
            c.reverify_schedule = "* * * * * *".into();
        })
        .await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    second.stop().await;
    // The sweeps of the 10 s window (the first replica keeps ticking while the queue drains, and on
    // a loaded machine draining can take seconds).
    let window_ticks = app
        .db
        .scalar_i64("SELECT count(*) FROM apalis.jobs WHERE job_type = 'guestpass::maintenance'");
    app.drain_jobs(WAIT).await;
    let msgs = sink.messages();
    let mut recipients: Vec<&str> = msgs.iter().map(to).collect();
    recipients.sort();
    let total = recipients.len();
    recipients.dedup();
    assert_eq!(recipients.len(), total, "someone got two emails");
    assert_eq!(total, 500);
    assert!(recipients.iter().all(|r| r.ends_with("@partner.example")));
    // Every tick of both replicas became at most one sweep.
    let ticks = app
        .db
        .scalar_i64("SELECT count(*) FROM apalis.jobs WHERE job_type = 'guestpass::maintenance'");
    let keys = app.db.scalar_i64("SELECT count(DISTINCT idempotency_key) FROM apalis.jobs WHERE job_type = 'guestpass::maintenance'");
    assert_eq!(ticks, keys);
    assert!(
        (5..=13).contains(&window_ticks),
        "{window_ticks} sweeps in 10 s"
    );
    app.stop().await;
}

#[actix_rt::test]
async fn blocking_api_tokens_stops_external_tokens_only_and_unblocking_restores_them() {
    let sink = SmtpSink::start().await;
    let app = spawn_app_with(AppOptions {
        smtp_url: Some(sink.url()),
        ..Default::default()
    })
    .await;
    let (ext, ext_session) = guest(&app, &sink, "ext@partner.example").await;
    let ext_token = app.api_token_for(&ext).await;
    let internal = app
        .add_user("staff@acme.example", Some(ProductRole::User))
        .await;
    let int_token = app.api_token_for(&internal).await;
    let me = "{ me { id } }";
    data(app.gql(Some(&ext_token), me, json!({})).await);

    let blocked = policy("OFF", 43200, "BLOCKED");
    let p = preview(&app, &blocked).await;
    assert_eq!(p["counts"]["tokensStop"], 1);
    assert_eq!(
        p["people"]["nodes"][0]["user"]["email"],
        "ext@partner.example"
    );
    data(apply(&app, &blocked, &p["reviewId"]).await);
    let r = app.gql(Some(&ext_token), me, json!({})).await;
    assert_eq!(code(&r).as_deref(), Some("API_TOKENS_BLOCKED"));
    assert!(
        r["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("blocked API tokens for external users")
    );
    data(app.gql(Some(&int_token), me, json!({})).await);
    let create = "mutation { createApiToken(input: { name: \"again\" }) { token } }";
    assert_eq!(
        code(&app.gql(Some(&ext_session), create, json!({})).await).as_deref(),
        Some("API_TOKENS_BLOCKED")
    );
    data(app.gql(Some(&ext_session), me, json!({})).await);

    set_policy(&app, policy("OFF", 43200, "ALLOWED")).await;
    data(app.gql(Some(&ext_token), me, json!({})).await);
    let audit = |a: &str| {
        app.db.scalar_i64(&format!(
            "SELECT count(*) FROM audit_events WHERE action = '{a}'"
        ))
    };
    assert_eq!(
        (
            audit("policy.apiTokensBlocked"),
            audit("policy.apiTokensAllowed")
        ),
        (1, 1)
    );
    let filtered = data(
        app.admin(
            "query { auditEvents(filter: { action: \"policy.update\" }) { totalCount edges { node { action actorId } } } }",
            json!({}),
        )
        .await,
    );
    assert_eq!(filtered["auditEvents"]["totalCount"], 2);
    assert_eq!(
        filtered["auditEvents"]["edges"][0]["node"]["actorId"],
        json!(gid("User", &app.admin_id))
    );
    app.stop().await;
}

#[actix_rt::test]
async fn a_review_goes_stale_when_the_affected_people_change() {
    let sink = SmtpSink::start().await;
    let app = spawn_app_with(AppOptions {
        smtp_url: Some(sink.url()),
        ..Default::default()
    })
    .await;
    guest(&app, &sink, "a@partner.example").await;
    guest(&app, &sink, "b@partner.example").await;
    app.add_user("staff@acme.example", Some(ProductRole::User))
        .await;
    let required = policy("REQUIRED", 43200, "ALLOWED");
    let p = preview(&app, &required).await;
    let mut emails: Vec<&str> = p["people"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["user"]["email"].as_str().unwrap())
        .collect();
    emails.sort();
    assert_eq!(emails, ["a@partner.example", "b@partner.example"]);
    assert_eq!(p["counts"]["mustUseTwoStep"], 2);

    // A review of another policy, and a made-up one, are refused.
    let other = policy("REQUIRED", 1440, "ALLOWED");
    assert_eq!(
        code(&apply(&app, &other, &p["reviewId"]).await).as_deref(),
        Some("REVIEW_STALE")
    );
    // A new external user appears: the review no longer says who is affected.
    app.add_user("c@partner.example", Some(ProductRole::Guest))
        .await;
    let audit_before = app.db.scalar_i64("SELECT count(*) FROM audit_events");
    assert_eq!(
        code(&apply(&app, &required, &p["reviewId"]).await).as_deref(),
        Some("REVIEW_STALE")
    );
    let current = data(
        app.admin(
            "{ externalUserSecurity { twoStepVerification } }",
            json!({}),
        )
        .await,
    );
    assert_eq!(
        current["externalUserSecurity"]["twoStepVerification"],
        "OFF"
    );
    assert_eq!(
        app.db.scalar_i64("SELECT count(*) FROM audit_events"),
        audit_before
    );

    let p = preview(&app, &required).await;
    assert_eq!(p["counts"]["people"], 3);
    data(apply(&app, &required, &p["reviewId"]).await);
    assert_eq!(
        code(&apply(&app, &required, &p["reviewId"]).await).as_deref(),
        Some("REVIEW_STALE"),
        "a review is used once"
    );
    // Expired reviews are refused too.
    let back = policy("OFF", 43200, "ALLOWED");
    let p = preview(&app, &back).await;
    app.clock.advance(chrono::Duration::minutes(31));
    assert_eq!(
        code(&apply(&app, &back, &p["reviewId"]).await).as_deref(),
        Some("REVIEW_STALE")
    );

    // Two-step now applies to external users at sign-in.
    let (ext, _) = ("a@partner.example", ());
    let r = data(
        app.gql(
            None,
            "mutation($i: LoginInput!) { login(input: $i) { sessionToken challengeMethod } }",
            json!({ "i": { "organization": "acme", "email": ext, "password": PASSWORD } }),
        )
        .await,
    );
    assert_eq!(r["login"]["challengeMethod"], "EMAIL");
    assert_eq!(r["login"]["sessionToken"], Value::Null);

    // Resetting external sessions ends theirs and nobody else's.
    let staff = app
        .add_user("staff2@acme.example", Some(ProductRole::User))
        .await;
    let staff_session = app.session_for(&staff).await;
    let r = data(
        app.admin(
            "mutation { resetExternalUserSessions { __typename count } }",
            json!({}),
        )
        .await,
    );
    assert_eq!(
        r["resetExternalUserSessions"]["count"], 2,
        "the two accepted guests' sessions"
    );
    assert_eq!(
        r["resetExternalUserSessions"]["__typename"],
        "ResetExternalUserSessionsPayload"
    );
    data(
        app.gql(Some(&staff_session), "{ me { id } }", json!({}))
            .await,
    );
    app.drain_jobs(WAIT).await;
    app.stop().await;
}

#[actix_rt::test]
async fn the_csv_export_defuses_formulas_and_is_for_organization_admins() {
    let app = spawn_app().await;
    let id = app
        .add_user("evil@partner.example", Some(ProductRole::Guest))
        .await;
    app.db.execute(&format!(
        "UPDATE users SET display_name = '=HYPERLINK(\"x\")' WHERE id = '{id}'"
    ));
    app.add_user("staff@acme.example", Some(ProductRole::User))
        .await;
    let url = format!("{}/admin/external-users.csv", app.address);
    let mut res = app
        .client()
        .get(&url)
        .insert_header(("Authorization", format!("Bearer {}", app.admin_token)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body = String::from_utf8(res.body().await.unwrap().to_vec()).unwrap();
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(
        lines[0],
        "email,name,site roles,space,last active,verified until,two-step"
    );
    assert_eq!(lines.len(), 2, "only the external user: {body}");
    assert!(
        lines[1].starts_with("evil@partner.example,\"'=HYPERLINK(\"\"x\"\")\",Docs: GUEST,"),
        "{}",
        lines[1]
    );
    assert!(
        !body
            .lines()
            .any(|l| l.split(',').any(|c| c.starts_with('=')))
    );

    let staff = app
        .session_for(
            &app.add_user("paid@acme.example", Some(ProductRole::User))
                .await,
        )
        .await;
    let res = app
        .client()
        .get(&url)
        .insert_header(("Authorization", format!("Bearer {staff}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let res = app.client().get(&url).send().await.unwrap();
    assert_eq!(res.status(), 401);
    app.stop().await;
}

/// An address whose quoted local part holds `@` has one domain, the text after its last `@`, for every
/// rule: `"bob@acme.example@"@evil.example` is external (not acme.example, the text after its first
/// `@`) to the directory filter, `isExternal`, the CSV, a policy review and API-token blocking alike.
/// New addresses like it are refused; one stored before that (inserted directly here) is still external.
#[actix_rt::test]
async fn an_at_sign_in_a_quoted_local_part_never_makes_an_external_user_internal() {
    let app = spawn_app().await;
    let email = r#""bob@acme.example@"@evil.example"#;
    let id = uuid::Uuid::new_v4().to_string();
    app.db.execute(&format!(
        "INSERT INTO users (id, organization_id, email, email_normalized, display_name, created_at)
         VALUES ('{id}', '{}', '{email}', '{email}', 'Bob', now())",
        app.org_id
    ));
    app.db.execute(&format!(
        "INSERT INTO product_roles (site_id, user_id, role, granted_at) VALUES ('{}', '{id}', {}, now())",
        app.site_id,
        ProductRole::Guest.rank()
    ));
    app.add_user("staff@acme.example", Some(ProductRole::User))
        .await;

    let listed = data(
        app.admin(
            "query($s: ID!) { users(siteId: $s, external: true) { totalCount edges { node { user { id email isExternal } } } } }",
            json!({ "s": app.site_id }),
        )
        .await,
    );
    assert_eq!(listed["users"]["totalCount"], 1, "{listed}");
    let user = &listed["users"]["edges"][0]["node"]["user"];
    assert_eq!(user["id"], json!(gid("User", &id)));
    assert_eq!(user["email"], email);
    assert_eq!(user["isExternal"], true);
    let internal = data(
        app.admin(
            "query($s: ID!) { users(siteId: $s, external: false) { edges { node { user { email } } } } }",
            json!({ "s": app.site_id }),
        )
        .await,
    );
    let internal: Vec<&str> = internal["users"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["user"]["email"].as_str().unwrap())
        .collect();
    assert_eq!(internal, ["admin@acme.example", "staff@acme.example"]);

    let mut res = app
        .client()
        .get(format!("{}/admin/external-users.csv", app.address))
        .insert_header(("Authorization", format!("Bearer {}", app.admin_token)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body = String::from_utf8(res.body().await.unwrap().to_vec()).unwrap();
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines.len(), 2, "only the external user: {body}");
    assert!(
        lines[1].starts_with(r#""""bob@acme.example@""@evil.example",Bob,Docs: GUEST,"#),
        "{}",
        lines[1]
    );

    // The policy review counts them and token blocking reaches them (the request's standing).
    let token = app.api_token_for(&id).await;
    data(app.gql(Some(&token), "{ me { id } }", json!({})).await);
    let blocked = policy("OFF", 43200, "BLOCKED");
    let p = preview(&app, &blocked).await;
    assert_eq!(p["counts"]["people"], 1);
    assert_eq!(p["people"]["nodes"][0]["user"]["email"], email);
    data(apply(&app, &blocked, &p["reviewId"]).await);
    let r = app.gql(Some(&token), "{ me { id } }", json!({})).await;
    assert_eq!(code(&r).as_deref(), Some("API_TOKENS_BLOCKED"));

    // Such an address is no longer accepted as new: refused like any other invalid address.
    let r = app.invite(&[email], "GUEST").await;
    assert_eq!(code(&r).as_deref(), Some("INVALID_EMAIL"), "{r}");
    assert_eq!(
        r["errors"][0]["extensions"]["addresses"],
        json!([{ "email": email, "code": "INVALID_EMAIL" }])
    );
    assert_eq!(
        app.db
            .scalar_i64("SELECT count(*) FROM invites WHERE email_normalized LIKE '%evil.example'"),
        0
    );
    app.stop().await;
}

const PREVIEW_PAGE: &str = "mutation($i: ExternalUserSecurityInput!, $first: Int, $after: String) { previewExternalUserSecurityChange(input: $i) { counts { people mustUseTwoStep } people(first: $first, after: $after) { totalCount pageInfo { hasNextPage endCursor } edges { cursor node { user { email } mustUseTwoStep } } } } }";

#[actix_rt::test]
async fn a_preview_pages_through_the_people_it_affects_by_email() {
    let app = spawn_app().await;
    let mut affected = Vec::new();
    for email in [
        "e@partner.example",
        "b@partner.example",
        "d@other.example",
        "a@partner.example",
        "c@other.example",
    ] {
        app.add_user(email, Some(ProductRole::Guest)).await;
        affected.push(email.to_string());
    }
    // Internal people are not affected.
    app.add_user("staff@acme.example", Some(ProductRole::User))
        .await;
    affected.sort();
    let required = json!({ "i": policy("REQUIRED", 43200, "ALLOWED") });
    let email = |n: &Value| n["user"]["email"].as_str().unwrap().to_string();
    let path = ["previewExternalUserSecurityChange", "people"];
    for first in [1, 2] {
        let got = page_through(
            &app,
            Some(&app.admin_token),
            PREVIEW_PAGE,
            required.clone(),
            &path,
            first,
            email,
        )
        .await;
        assert_eq!(got, affected, "{first} at a time");
    }
    // The counts stay the totals, whatever the page.
    let mut v = required.clone();
    v["first"] = json!(2);
    let p = data(app.admin(PREVIEW_PAGE, v).await);
    let p = &p["previewExternalUserSecurityChange"];
    assert_eq!(p["counts"], json!({ "people": 5, "mustUseTwoStep": 5 }));
    assert_eq!(p["people"]["edges"].as_array().unwrap().len(), 2);
    let mut v = required.clone();
    v["after"] = json!("not a cursor");
    let r = app.admin(PREVIEW_PAGE, v).await;
    assert_eq!(code(&r).as_deref(), Some("INVALID_INPUT"), "{r}");
    app.stop().await;
}

const OUTSIDE: &str = "query($s: ID!, $first: Int, $after: String) { guestsOutsideDomainRules(siteId: $s, first: $first, after: $after) { totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id email } } } }";

/// The list of guests outside the rules matches the patterns in SQL; the invite check matches them
/// in Rust (`domains::allowed`). On addresses chosen to sit on each edge of a pattern, both agree.
#[actix_rt::test]
async fn guests_outside_the_domain_rules_page_by_email_and_agree_with_the_invite_check() {
    let app = spawn_app().await;
    let addresses = [
        "a@partner.example",
        "b@eu.partner.example",
        "c@a.b.partner.example",
        "d@evilpartner.example",
        "e@partner.example.com",
        "f@other.example",
        "g@sub.other.example",
        "h@xother.example",
        "i@unrelated.example",
        "j@eu.partner.example",
        "k@other.example",
    ];
    for email in addresses {
        app.add_user(email, Some(ProductRole::Guest)).await;
    }
    // Paid people are not guests: the rules do not list them.
    app.add_user("paid@unrelated.example", Some(ProductRole::User))
        .await;
    let set = "mutation($i: SetGuestDomainRulesInput!) { setGuestDomainRules(input: $i) { guestDomainRules { mode domains } } }";
    let vars = json!({ "s": app.site_id });
    let email = |n: &Value| n["email"].as_str().unwrap().to_string();
    for (mode, rule) in [
        ("ALLOW", guestpass::domain::domains::DomainMode::Allow),
        ("BLOCK", guestpass::domain::domains::DomainMode::Block),
    ] {
        let r = data(
            app.admin(
                set,
                json!({ "i": { "mode": mode, "domains": ["*.partner.example", "other.example"] } }),
            )
            .await,
        );
        let patterns: Vec<String> =
            serde_json::from_value(r["setGuestDomainRules"]["guestDomainRules"]["domains"].clone())
                .unwrap();
        let expected: Vec<String> = addresses
            .iter()
            .filter(|a| {
                let domain = a.rsplit('@').next().unwrap();
                !guestpass::domain::domains::allowed(rule, &patterns, domain)
            })
            .map(|a| a.to_string())
            .collect();
        assert!(!expected.is_empty() && expected.len() < addresses.len());
        for first in [1, 2] {
            let got = page_through(
                &app,
                Some(&app.admin_token),
                OUTSIDE,
                vars.clone(),
                &["guestsOutsideDomainRules"],
                first,
                email,
            )
            .await;
            assert_eq!(got, expected, "{mode}, {first} at a time");
        }
    }
    data(
        app.admin(set, json!({ "i": { "mode": "NONE", "domains": [] } }))
            .await,
    );
    let got = page_through(
        &app,
        Some(&app.admin_token),
        OUTSIDE,
        vars,
        &["guestsOutsideDomainRules"],
        2,
        email,
    )
    .await;
    assert!(got.is_empty(), "no rule refuses nobody");
    app.stop().await;
}
