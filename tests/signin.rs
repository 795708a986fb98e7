//! Sign-in (issue: passwords, emailed two-step codes, password reset, sessions, API tokens), against
//! the real server, database and an SMTP sink.

mod common;

use common::smtp::Received;
use common::*;
use guestpass::domain::ProductRole;
use serde_json::{Value, json};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);
const PASSWORD: &str = GUEST_PASSWORD;
const LOGIN: &str = "mutation($i: LoginInput!) { login(input: $i) { sessionToken challengeId challengeExpiresAt challengeMethod } }";
const COMPLETE: &str =
    "mutation($i: CompleteLoginInput!) { completeLogin(input: $i) { sessionToken } }";
const ME: &str = "{ me { id email } }";

async fn login(app: &TestApp, email: &str, password: &str) -> Value {
    app.gql(
        None,
        LOGIN,
        json!({ "i": { "organization": "acme", "email": email, "password": password } }),
    )
    .await
}

async fn complete(app: &TestApp, challenge: &Value, code: &str) -> Value {
    app.gql(
        None,
        COMPLETE,
        json!({ "i": { "challengeId": challenge, "code": code } }),
    )
    .await
}

/// The 6-digit code in a received sign-in email.
fn code_in(m: &Received) -> String {
    let subject = m.header("Subject").unwrap();
    let code: String = subject.chars().take_while(char::is_ascii_digit).collect();
    assert_eq!(code.len(), 6, "subject: {subject}");
    assert!(m.decoded().contains(&code));
    code
}

/// A guest who accepted an invite through the emailed link, with `PASSWORD`.
async fn accepted_guest(app: &TestApp, sink: &SmtpSink, email: &str) -> String {
    app.emailed_guest(sink, email, json!({})).await.0
}

#[actix_rt::test]
async fn a_guest_signs_in_with_a_password_and_an_emailed_code() {
    let sink = SmtpSink::start().await;
    let app = spawn_app_with(AppOptions {
        smtp_url: Some(sink.url()),
        ..Default::default()
    })
    .await;
    let guest = accepted_guest(&app, &sink, "grace@partner.example").await;

    // Without two-step verification: a session straight away, and it works.
    let r = data(login(&app, "Grace@Partner.example", PASSWORD).await)["login"].clone();
    assert_eq!(r["challengeId"], Value::Null);
    let token = r["sessionToken"].as_str().unwrap().to_string();
    assert_eq!(
        data(app.gql(Some(&token), ME, json!({})).await)["me"]["id"],
        json!(guest)
    );

    data(
        app.admin(
            "mutation($i: SetTwoStepRequiredInput!) { setTwoStepRequired(input: $i) { user { id } } }",
            json!({ "i": { "userId": guest, "required": true } }),
        )
        .await,
    );

    // The code from the received email completes the sign-in, once.
    let r = data(login(&app, "grace@partner.example", PASSWORD).await)["login"].clone();
    assert_eq!(r["sessionToken"], Value::Null);
    assert_eq!(r["challengeMethod"], "EMAIL");
    let challenge = r["challengeId"].clone();
    let msgs = sink.wait_for(2, WAIT).await;
    let sent = code_in(&msgs[1]);
    assert_eq!(msgs[1].to, vec!["grace@partner.example".to_string()]);
    let wrong = if sent == "000000" { "111111" } else { "000000" };
    assert_eq!(
        code(&complete(&app, &challenge, wrong).await).as_deref(),
        Some("CODE_INVALID")
    );
    let r = data(complete(&app, &challenge, &sent).await);
    let session = r["completeLogin"]["sessionToken"]
        .as_str()
        .unwrap()
        .to_string();
    data(app.gql(Some(&session), ME, json!({})).await);
    assert_eq!(
        code(&complete(&app, &challenge, &sent).await).as_deref(),
        Some("CODE_INVALID"),
        "a used code works once"
    );

    // Five wrong codes kill the challenge: the right one no longer works.
    let r = data(login(&app, "grace@partner.example", PASSWORD).await)["login"].clone();
    let challenge = r["challengeId"].clone();
    let sent = code_in(&sink.wait_for(3, WAIT).await[2]);
    let wrong = if sent == "000000" { "111111" } else { "000000" };
    for _ in 0..5 {
        assert_eq!(
            code(&complete(&app, &challenge, wrong).await).as_deref(),
            Some("CODE_INVALID")
        );
    }
    assert_eq!(
        code(&complete(&app, &challenge, &sent).await).as_deref(),
        Some("CODE_INVALID")
    );

    // An expired code fails.
    let r = data(login(&app, "grace@partner.example", PASSWORD).await)["login"].clone();
    let challenge = r["challengeId"].clone();
    let sent = code_in(&sink.wait_for(4, WAIT).await[3]);
    app.clock.advance(chrono::Duration::minutes(11));
    assert_eq!(
        code(&complete(&app, &challenge, &sent).await).as_deref(),
        Some("CODE_INVALID")
    );

    let audit = |a: &str| {
        app.db.scalar_i64(&format!(
            "SELECT count(*) FROM audit_events WHERE action = '{a}'"
        ))
    };
    assert_eq!(audit("login.success"), 2);
    assert_eq!(audit("login.challenge"), 3);
    assert_eq!(audit("login.failure"), 1 + 5);
    app.drain_jobs(WAIT).await;
    app.stop().await;
}

#[actix_rt::test]
async fn wrong_password_unknown_and_deactivated_accounts_look_the_same() {
    let app = spawn_app().await;
    let alice = app
        .add_user("alice@acme.example", Some(ProductRole::User))
        .await;
    app.set_password(&alice, PASSWORD).await;
    let gone = app
        .add_user("gone@acme.example", Some(ProductRole::User))
        .await;
    app.set_password(&gone, PASSWORD).await;
    data(
        app.admin(
            "mutation($u: ID!) { deactivateUser(id: $u) { user { id } } }",
            json!({ "u": gone }),
        )
        .await,
    );

    let mut answers = Vec::new();
    let mut times = Vec::new();
    for (email, password) in [
        ("alice@acme.example", "not the password at all"),
        ("nobody@acme.example", PASSWORD),
        ("gone@acme.example", PASSWORD),
    ] {
        let start = std::time::Instant::now();
        let mut r = login(&app, email, password).await;
        times.push(start.elapsed());
        r["errors"][0].as_object_mut().unwrap().remove("locations");
        answers.push(r);
    }
    assert_eq!(code(&answers[0]).as_deref(), Some("INVALID_CREDENTIALS"));
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[1], answers[2]);
    // All three do the same argon2 work: none is much faster than the others.
    let (min, max) = (times.iter().min().unwrap(), times.iter().max().unwrap());
    assert!(
        max.as_secs_f64() < min.as_secs_f64() * 3.0 + 0.05,
        "{times:?}"
    );
    // The organization may also be given by id.
    let r = app
        .gql(None, LOGIN, json!({ "i": { "organization": app.org_id, "email": "alice@acme.example", "password": PASSWORD } }))
        .await;
    assert!(data(r)["login"]["sessionToken"].is_string());
    app.stop().await;
}

#[actix_rt::test]
async fn a_reset_link_sets_a_new_password_once_and_ends_old_sessions() {
    let sink = SmtpSink::start().await;
    let app = spawn_app_with(AppOptions {
        smtp_url: Some(sink.url()),
        ..Default::default()
    })
    .await;
    let guest = accepted_guest(&app, &sink, "grace@partner.example").await;
    let old = data(login(&app, "grace@partner.example", PASSWORD).await)["login"]["sessionToken"]
        .as_str()
        .unwrap()
        .to_string();
    let reset =
        "mutation($i: RequestPasswordResetInput!) { requestPasswordReset(input: $i) { ok } }";
    let known = app
        .gql(
            None,
            reset,
            json!({ "i": { "organization": "acme", "email": "grace@partner.example" } }),
        )
        .await;
    let unknown = app
        .gql(
            None,
            reset,
            json!({ "i": { "organization": "acme", "email": "nobody@partner.example" } }),
        )
        .await;
    assert_eq!(
        known, unknown,
        "the answer never tells whether an account exists"
    );
    let msgs = sink.wait_for(2, WAIT).await;
    assert_eq!(msgs[1].to, vec!["grace@partner.example".to_string()]);
    let link = msgs[1].invite_link();
    assert!(link.contains("/reset/gpr_"), "{link}");

    // The page works in a browser-like exchange: GET sets the CSRF cookie, POST sets the password.
    let client = app.client();
    let (status, cookie, csrf) = app.open_form(&link).await;
    assert_eq!(status, 200);
    let weak = client
        .post(&link)
        .insert_header(("Cookie", cookie.clone()))
        .send_form(&[
            ("csrf", csrf.as_str()),
            ("password", "password1"),
            ("password_confirmation", "password1"),
        ])
        .await
        .unwrap();
    assert_eq!(weak.status(), 422);
    let mut done = client
        .post(&link)
        .insert_header(("Cookie", cookie.clone()))
        .send_form(&[
            ("csrf", csrf.as_str()),
            ("password", "a brand new passphrase"),
            ("password_confirmation", "a brand new passphrase"),
        ])
        .await
        .unwrap();
    assert_eq!(done.status(), 200);
    assert!(
        String::from_utf8(done.body().await.unwrap().to_vec())
            .unwrap()
            .contains("password is set")
    );

    // Old sessions end; the old password fails, the new one works; the link works once.
    assert_eq!(
        code(&app.gql(Some(&old), ME, json!({})).await).as_deref(),
        Some("UNAUTHENTICATED")
    );
    assert_eq!(
        code(&login(&app, "grace@partner.example", PASSWORD).await).as_deref(),
        Some("INVALID_CREDENTIALS")
    );
    let r = data(login(&app, "grace@partner.example", "a brand new passphrase").await);
    assert!(r["login"]["sessionToken"].is_string());
    let again = client.get(&link).send().await.unwrap();
    assert_eq!(again.status(), 404);
    let token = link.rsplit('/').next().unwrap();
    let r = app
        .gql(
            None,
            "mutation($i: ResetPasswordInput!) { resetPassword(input: $i) { ok } }",
            json!({ "i": { "token": token, "newPassword": "yet another passphrase" } }),
        )
        .await;
    assert_eq!(code(&r).as_deref(), Some("LINK_INVALID"));
    assert_eq!(app.db.scalar_i64(&format!("SELECT count(*) FROM audit_events WHERE action = 'password.reset' AND target_id = '{guest}'")), 1);
    app.drain_jobs(WAIT).await;
    app.stop().await;
}

#[actix_rt::test]
async fn an_api_token_acts_as_its_owner_until_revoked() {
    let app = spawn_app().await;
    let paid = app
        .add_user("paid@acme.example", Some(ProductRole::User))
        .await;
    let session = app.session_for(&paid).await;
    let r = data(
        app.gql(
            Some(&session),
            "mutation { createApiToken(input: { name: \"laptop\", expiresInDays: 30 }) { token apiToken { id name expiresAt } } }",
            json!({}),
        )
        .await,
    );
    let token = r["createApiToken"]["token"].as_str().unwrap().to_string();
    let id = r["createApiToken"]["apiToken"]["id"].clone();
    assert!(token.starts_with("gp_"));
    assert_eq!(
        data(app.gql(Some(&token), ME, json!({})).await)["me"]["id"],
        json!(paid)
    );
    let list = data(
        app.gql(
            Some(&session),
            "{ apiTokens { id name lastUsedAt } }",
            json!({}),
        )
        .await,
    );
    assert_eq!(list["apiTokens"][0]["name"], "laptop");
    assert!(list["apiTokens"][0]["lastUsedAt"].is_string());
    // Someone else cannot revoke it.
    let other = app
        .session_for(
            &app.add_user("other@acme.example", Some(ProductRole::User))
                .await,
        )
        .await;
    let r = app
        .gql(
            Some(&other),
            "mutation($i: ID!) { revokeApiToken(id: $i) { apiToken { id } } }",
            json!({ "i": id }),
        )
        .await;
    assert_eq!(code(&r).as_deref(), Some("NOT_FOUND"));
    data(app.gql(Some(&token), ME, json!({})).await);
    data(
        app.gql(
            Some(&session),
            "mutation($i: ID!) { revokeApiToken(id: $i) { apiToken { id } } }",
            json!({ "i": id }),
        )
        .await,
    );
    assert_eq!(
        code(&app.gql(Some(&token), ME, json!({})).await).as_deref(),
        Some("UNAUTHENTICATED")
    );

    // Sessions: listed, one ended by id, the current one by logout.
    let s2 = app.session_for(&paid).await;
    let list = data(
        app.gql(Some(&session), "{ sessions { id current } }", json!({}))
            .await,
    );
    let sessions = list["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    let other_id = sessions.iter().find(|s| s["current"] == false).unwrap()["id"].clone();
    data(
        app.gql(
            Some(&session),
            "mutation($i: ID!) { revokeSession(id: $i) { ok } }",
            json!({ "i": other_id }),
        )
        .await,
    );
    assert_eq!(
        code(&app.gql(Some(&s2), ME, json!({})).await).as_deref(),
        Some("UNAUTHENTICATED")
    );
    data(
        app.gql(Some(&session), "mutation { logout { ok } }", json!({}))
            .await,
    );
    assert_eq!(
        code(&app.gql(Some(&session), ME, json!({})).await).as_deref(),
        Some("UNAUTHENTICATED")
    );
    let audit = |a: &str| {
        app.db.scalar_i64(&format!(
            "SELECT count(*) FROM audit_events WHERE action = '{a}'"
        ))
    };
    assert_eq!((audit("apiToken.create"), audit("apiToken.revoke")), (1, 1));
    app.stop().await;
}

#[actix_rt::test]
async fn repeated_wrong_logins_are_limited_per_account_not_for_others() {
    let app = spawn_app_with(AppOptions {
        configure: Some(|c| {
            c.login_limit_per_account = 20;
            c.login_limit_per_address = 60;
        }),
        ..Default::default()
    })
    .await;
    for who in ["target@acme.example", "bystander@acme.example"] {
        let id = app.add_user(who, Some(ProductRole::User)).await;
        app.set_password(&id, PASSWORD).await;
    }
    let mut limited = None;
    for i in 0..50 {
        let r = login(&app, "target@acme.example", "wrong password here").await;
        match code(&r).as_deref() {
            Some("INVALID_CREDENTIALS") => {}
            Some("RATE_LIMITED") => {
                assert!(
                    r["errors"][0]["extensions"]["retryAfterSeconds"]
                        .as_i64()
                        .unwrap()
                        > 0
                );
                limited.get_or_insert(i);
            }
            other => panic!("unexpected {other:?}: {r}"),
        }
    }
    assert_eq!(
        limited,
        Some(20),
        "the 21st attempt for the account is refused"
    );
    // The right password is refused too while limited; another account from the same address works.
    assert_eq!(
        code(&login(&app, "target@acme.example", PASSWORD).await).as_deref(),
        Some("RATE_LIMITED")
    );
    let r = data(login(&app, "bystander@acme.example", PASSWORD).await);
    assert!(r["login"]["sessionToken"].is_string());
    app.stop().await;
}

#[actix_rt::test]
async fn an_authenticator_app_replaces_emailed_codes_with_recovery_codes_as_backup() {
    let sink = SmtpSink::start().await;
    let app = spawn_app_with(AppOptions {
        smtp_url: Some(sink.url()),
        ..Default::default()
    })
    .await;
    let id = app
        .add_user("totp@acme.example", Some(ProductRole::User))
        .await;
    app.set_password(&id, PASSWORD).await;
    let session = app.session_for(&id).await;
    let r = data(
        app.gql(
            Some(&session),
            "mutation { enrollAuthenticator { secret otpauthUrl } }",
            json!({}),
        )
        .await,
    );
    let secret = r["enrollAuthenticator"]["secret"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        r["enrollAuthenticator"]["otpauthUrl"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/")
    );
    let totp = totp_rs::Builder::new()
        .with_secret(totp_rs::Secret::try_from_base32(&secret).unwrap())
        .build_noncompliant();
    let now = || app.clock.now().timestamp() as u64;
    let confirm = "mutation($c: String!) { confirmAuthenticator(code: $c) { recoveryCodes } }";
    let r = data(
        app.gql(
            Some(&session),
            confirm,
            json!({ "c": totp.generate(now()).to_string() }),
        )
        .await,
    );
    let recovery: Vec<String> = r["confirmAuthenticator"]["recoveryCodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    assert_eq!(recovery.len(), 10);

    // Sign-in now asks for the app's code; nothing is emailed.
    app.clock.advance(chrono::Duration::seconds(60));
    let r = data(login(&app, "totp@acme.example", PASSWORD).await)["login"].clone();
    assert_eq!(r["challengeMethod"], "AUTHENTICATOR");
    let code_now = totp.generate(now()).to_string();
    data(complete(&app, &r["challengeId"], &code_now).await);
    // The same code cannot be replayed in another sign-in.
    let r = data(login(&app, "totp@acme.example", PASSWORD).await)["login"].clone();
    assert_eq!(
        code(&complete(&app, &r["challengeId"], &code_now).await).as_deref(),
        Some("CODE_INVALID")
    );
    // A recovery code works once.
    data(complete(&app, &r["challengeId"], &recovery[0]).await);
    let r = data(login(&app, "totp@acme.example", PASSWORD).await)["login"].clone();
    assert_eq!(
        code(&complete(&app, &r["challengeId"], &recovery[0]).await).as_deref(),
        Some("CODE_INVALID")
    );
    app.drain_jobs(WAIT).await;
    assert!(
        sink.messages().is_empty(),
        "no codes emailed to authenticator users"
    );
    app.stop().await;
}

/// Enrolls and confirms an authenticator app for a user (through the API, with a session of theirs);
/// returns the app, for generating codes.
async fn with_authenticator(app: &TestApp, user: &str) -> totp_rs::Totp {
    let session = app.session_for(user).await;
    let r = data(
        app.gql(
            Some(&session),
            "mutation { enrollAuthenticator { secret } }",
            json!({}),
        )
        .await,
    );
    let secret = r["enrollAuthenticator"]["secret"].as_str().unwrap();
    let totp = totp_rs::Builder::new()
        .with_secret(totp_rs::Secret::try_from_base32(secret).unwrap())
        .build_noncompliant();
    let code = totp
        .generate(app.clock.now().timestamp() as u64)
        .to_string();
    data(
        app.gql(
            Some(&session),
            "mutation($c: String!) { confirmAuthenticator(code: $c) { recoveryCodes } }",
            json!({ "c": code }),
        )
        .await,
    );
    // The confirming code's time step is used: the next code comes from a later one.
    app.clock.advance(chrono::Duration::seconds(60));
    totp
}

const ACCEPT: &str = "mutation($i: AcceptInviteInput!) { acceptInvite(input: $i) { user { id } sessionToken challengeId challengeMethod } }";
const ACCEPT_SESSION: &str =
    "mutation($i: AcceptInviteInput!) { acceptInvite(input: $i) { sessionToken } }";

/// Invites an address to the test site as a paid user; returns the link token.
async fn invite_token_for(app: &TestApp, email: &str) -> String {
    let r = data(app.invite(&[email], "USER").await);
    app.invite_token(r["inviteUsers"]["invites"][0]["id"].as_str().unwrap())
        .await
}

fn sessions_of(app: &TestApp, user: &str) -> i64 {
    app.db.scalar_i64(&format!(
        "SELECT count(*) FROM sessions WHERE user_id = '{user}'"
    ))
}

#[actix_rt::test]
async fn accepting_as_an_existing_account_with_an_authenticator_asks_for_its_code() {
    let app = spawn_app_with(AppOptions {
        workers: false,
        ..Default::default()
    })
    .await;
    let id = app.add_user("totp@acme.example", None).await;
    app.set_password(&id, PASSWORD).await;
    let totp = with_authenticator(&app, &id).await;
    let token = invite_token_for(&app, "totp@acme.example").await;
    let sessions = sessions_of(&app, &id);

    // The password alone answers the same challenge login would, and no session.
    let r = data(
        app.gql(
            None,
            ACCEPT,
            json!({ "i": { "token": token, "password": PASSWORD } }),
        )
        .await,
    )["acceptInvite"]
        .clone();
    assert_eq!(r["sessionToken"], Value::Null, "{r}");
    assert_eq!(r["challengeMethod"], "AUTHENTICATOR");
    assert_eq!(sessions_of(&app, &id), sessions, "no session was started");
    // The invite is used (once): its grant waits for nobody, the session waits for the code.
    assert_eq!(
        code(
            &app.gql(
                None,
                ACCEPT,
                json!({ "i": { "token": token, "password": PASSWORD } })
            )
            .await
        )
        .as_deref(),
        Some("INVITE_INVALID")
    );

    // completeLogin finishes it: a wrong code is refused, the app's code gives the session.
    let challenge = r["challengeId"].clone();
    let now_code = totp
        .generate(app.clock.now().timestamp() as u64)
        .to_string();
    let wrong = if now_code == "000000" {
        "111111"
    } else {
        "000000"
    };
    assert_eq!(
        code(&complete(&app, &challenge, wrong).await).as_deref(),
        Some("CODE_INVALID")
    );
    let r = data(complete(&app, &challenge, &now_code).await);
    let session = r["completeLogin"]["sessionToken"].as_str().unwrap();
    assert_eq!(
        data(app.gql(Some(session), ME, json!({})).await)["me"]["id"],
        json!(id)
    );
    assert_eq!(
        app.db.scalar_i64(&format!(
            "SELECT count(*) FROM invites WHERE status = 'ACCEPTED' AND accepted_user_id = '{id}'"
        )),
        1
    );
    assert_eq!(
        app.db.scalar_i64(&format!(
            "SELECT count(*) FROM product_roles WHERE user_id = '{id}' AND site_id = '{}' AND role = 2",
            app.site_id
        )),
        1
    );
    app.stop().await;
}

#[actix_rt::test]
async fn wrong_passwords_on_accept_invite_and_login_share_one_per_account_limit() {
    let app = spawn_app_with(AppOptions {
        workers: false,
        configure: Some(|c| {
            c.login_limit_per_account = 5;
            c.login_limit_per_address = 100;
        }),
        ..Default::default()
    })
    .await;
    for who in ["first@acme.example", "second@acme.example"] {
        let id = app.add_user(who, None).await;
        app.set_password(&id, PASSWORD).await;
    }

    // Guessing through acceptInvite spends login's budget for the account...
    let token = invite_token_for(&app, "first@acme.example").await;
    for _ in 0..5 {
        let r = app
            .gql(
                None,
                ACCEPT_SESSION,
                json!({ "i": { "token": token, "password": "a wrong guess here" } }),
            )
            .await;
        assert_eq!(code(&r).as_deref(), Some("INVALID_CREDENTIALS"), "{r}");
    }
    assert_eq!(
        code(&login(&app, "first@acme.example", PASSWORD).await).as_deref(),
        Some("RATE_LIMITED")
    );

    // ...and guessing through login spends acceptInvite's: the right password is refused too.
    for _ in 0..5 {
        let r = login(&app, "second@acme.example", "a wrong guess here").await;
        assert_eq!(code(&r).as_deref(), Some("INVALID_CREDENTIALS"), "{r}");
    }
    let token = invite_token_for(&app, "second@acme.example").await;
    let r = app
        .gql(
            None,
            ACCEPT_SESSION,
            json!({ "i": { "token": token, "password": PASSWORD } }),
        )
        .await;
    assert_eq!(code(&r).as_deref(), Some("RATE_LIMITED"), "{r}");
    assert_eq!(
        app.db
            .scalar_i64("SELECT count(*) FROM invites WHERE status = 'PENDING'"),
        2,
        "neither invite was used"
    );
    app.stop().await;
}

/// Submits the accept page's form like a browser (GET for the CSRF cookie, then POST).
async fn submit_accept_page(app: &TestApp, link: &str, password: &str) -> (u16, String) {
    let (_, cookie, csrf) = app.open_form(link).await;
    let mut res = app
        .client()
        .post(link)
        .insert_header(("Cookie", cookie))
        .send_form(&[("csrf", csrf.as_str()), ("password", password)])
        .await
        .unwrap();
    let body = String::from_utf8(res.body().await.unwrap().to_vec()).unwrap();
    (res.status().as_u16(), body)
}

#[actix_rt::test]
async fn the_accept_page_for_an_existing_account_starts_no_session_and_shares_the_login_limit() {
    let app = spawn_app_with(AppOptions {
        workers: false,
        configure: Some(|c| {
            c.login_limit_per_account = 3;
            c.login_limit_per_address = 100;
        }),
        ..Default::default()
    })
    .await;
    let link = |token: String| format!("{}/invite/{token}", app.address);

    // The right password accepts the invite and sends the person to sign in, where the
    // authenticator app is asked for: the page itself signs nobody in.
    let id = app.add_user("totp@acme.example", None).await;
    app.set_password(&id, PASSWORD).await;
    with_authenticator(&app, &id).await;
    let sessions = sessions_of(&app, &id);
    let page = link(invite_token_for(&app, "totp@acme.example").await);
    let (status, body) = submit_accept_page(&app, &page, PASSWORD).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(sessions_of(&app, &id), sessions, "no session");
    assert!(body.contains("authenticator app"), "{body}");
    assert_eq!(
        app.db.scalar_i64(&format!(
            "SELECT count(*) FROM login_challenges WHERE user_id = '{id}'"
        )),
        0,
        "nor a challenge nobody can answer here"
    );
    assert_eq!(
        app.db.scalar_i64(&format!(
            "SELECT count(*) FROM invites WHERE status = 'ACCEPTED' AND accepted_user_id = '{id}'"
        )),
        1
    );

    // Wrong passwords count toward login's limit for the account, then the page refuses.
    let other = app.add_user("other@acme.example", None).await;
    app.set_password(&other, PASSWORD).await;
    let page = link(invite_token_for(&app, "other@acme.example").await);
    for _ in 0..3 {
        assert_eq!(
            submit_accept_page(&app, &page, "a wrong guess here")
                .await
                .0,
            422
        );
    }
    assert_eq!(submit_accept_page(&app, &page, PASSWORD).await.0, 429);
    assert_eq!(
        code(&login(&app, "other@acme.example", PASSWORD).await).as_deref(),
        Some("RATE_LIMITED")
    );
    assert_eq!(
        app.db
            .scalar_i64("SELECT count(*) FROM invites WHERE status = 'PENDING'"),
        1
    );
    app.stop().await;
}
