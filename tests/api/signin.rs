//! Sign-in (issue: passwords, emailed two-step codes, password reset, sessions, API tokens), against
//! the real server, database and an SMTP sink.

use crate::common::smtp::Received;
use crate::common::*;
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

// ---- Secrets at rest (issue 18): authenticator secrets are sealed under a key derived from
// GUESTPASS_SECRET, with its key id beside them; rotation and the sealing of legacy rows.

/// The secret `test_config` gives every test app.
const SECRET_A: &str = "test-secret-test-secret-test-secret-0123";
const SECRET_B: &str = "rotated-secret-rotated-secret-rotated-0456";

fn key_id(secret: &str) -> String {
    guestpass::secrets::SecretKeys::new(secret, None)
        .current_id()
        .to_string()
}

/// Every place in the database a copy of a secret could sit, and which of them hold one: each
/// text, varchar, char, bytea, JSON and array column of every table (ours and the job queue's) is
/// searched for the base32 the person was shown, its hex and base64, case-insensitively, and bytea
/// columns for the raw bytes and those texts' bytes. Answers the searched columns and the hits.
fn where_the_secret_is(app: &TestApp, base32: &str, raw: &[u8]) -> (Vec<String>, Vec<String>) {
    use base64::Engine;
    use diesel::prelude::*;
    use diesel::sql_types::{BigInt, Bytea, Text};
    #[derive(QueryableByName)]
    struct Column {
        #[diesel(sql_type = Text)]
        s: String,
        #[diesel(sql_type = Text)]
        t: String,
        #[diesel(sql_type = Text)]
        c: String,
        #[diesel(sql_type = Text)]
        d: String,
    }
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let mut conn = app.db.conn();
    let columns: Vec<Column> = diesel::sql_query(
        "SELECT c.table_schema::text AS s, c.table_name::text AS t, c.column_name::text AS c,
                c.data_type::text AS d
         FROM information_schema.columns c
         JOIN information_schema.tables t USING (table_schema, table_name)
         WHERE t.table_type = 'BASE TABLE'
           AND c.table_schema NOT IN ('pg_catalog', 'information_schema')
           AND c.data_type IN ('text', 'character varying', 'character', 'bytea', 'json', 'jsonb',
                               'ARRAY', 'USER-DEFINED')",
    )
    .load(&mut conn)
    .unwrap();
    let texts = [
        base32.to_string(),
        hex::encode(raw),
        base64::engine::general_purpose::STANDARD.encode(raw),
    ];
    let (mut searched, mut hits) = (Vec::new(), Vec::new());
    for Column { s, t, c, d } in columns {
        let place = format!("{s}.{t}.{c}");
        let from = format!("SELECT count(*) AS n FROM \"{s}\".\"{t}\"");
        let mut found = 0;
        if d == "bytea" {
            let q = format!("{from} WHERE position($1 IN \"{c}\") > 0");
            found += diesel::sql_query(&q)
                .bind::<Bytea, _>(raw)
                .get_result::<Count>(&mut conn)
                .unwrap()
                .n;
            for text in &texts {
                let q = format!(
                    "{from} WHERE position(convert_to(upper($1), 'UTF8') IN \"{c}\") > 0
                        OR position(convert_to(lower($1), 'UTF8') IN \"{c}\") > 0"
                );
                found += diesel::sql_query(&q)
                    .bind::<Text, _>(text)
                    .get_result::<Count>(&mut conn)
                    .unwrap()
                    .n;
            }
        } else {
            for text in &texts {
                let q = format!("{from} WHERE strpos(upper(\"{c}\"::text), upper($1)) > 0");
                found += diesel::sql_query(&q)
                    .bind::<Text, _>(text)
                    .get_result::<Count>(&mut conn)
                    .unwrap()
                    .n;
            }
        }
        if found > 0 {
            hits.push(place.clone());
        }
        searched.push(place);
    }
    (searched, hits)
}

async fn gql_at(app: &TestApp, address: &str, query: &str, variables: Value) -> Value {
    let mut res = app
        .client()
        .post(format!("{address}/graphql"))
        .send_json(&json!({ "query": query, "variables": variables }))
        .await
        .unwrap();
    res.json::<Value>().await.unwrap()
}

/// Signs in at `address` with the password and the app's code of a fresh time step; answers
/// `completeLogin`'s whole response.
async fn sign_in_with_app(
    app: &TestApp,
    address: &str,
    email: &str,
    totp: &totp_rs::Totp,
) -> Value {
    app.clock.advance(chrono::Duration::seconds(60));
    let r = data(
        gql_at(
            app,
            address,
            LOGIN,
            json!({ "i": { "organization": "acme", "email": email, "password": PASSWORD } }),
        )
        .await,
    )["login"]
        .clone();
    assert_eq!(r["challengeMethod"], "AUTHENTICATOR", "{r}");
    let code = totp
        .generate(app.clock.now().timestamp() as u64)
        .to_string();
    gql_at(
        app,
        address,
        COMPLETE,
        json!({ "i": { "challengeId": r["challengeId"], "code": code } }),
    )
    .await
}

fn signed_in(r: &Value) -> bool {
    r["data"]["completeLogin"]["sessionToken"].is_string()
}

/// Another `serve` process on the test app's database (no workers), with these secrets; answers
/// it and its address.
async fn another_instance(
    app: &TestApp,
    secret: &str,
    previous: Option<&str>,
) -> (guestpass::app::Running, String) {
    use guestpass::config::Secret;
    let mut config = test_config(&app.db, &AppOptions::default(), &app.outbox);
    config.secret = Some(Secret(secret.into()));
    config.secret_previous = previous.map(|p| Secret(p.into()));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    config.public_url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let mut run = guestpass::app::RunOptions::from_config(&config);
    run.workers = false;
    let running = guestpass::app::start(config, run, app.clock.clone(), Some(listener))
        .await
        .unwrap();
    let address = format!("http://127.0.0.1:{}", running.port.unwrap());
    (running, address)
}

/// Enrolls and confirms an authenticator app for a user at `address`; returns the app.
async fn enroll_at(app: &TestApp, address: &str, user: &str) -> totp_rs::Totp {
    let session = app.session_for(user).await;
    let mut req = app
        .client()
        .post(format!("{address}/graphql"))
        .insert_header(("Authorization", format!("Bearer {session}")));
    let r: Value = req
        .send_json(&json!({ "query": "mutation { enrollAuthenticator { secret } }" }))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let secret = data(r)["enrollAuthenticator"]["secret"]
        .as_str()
        .unwrap()
        .to_string();
    let totp = totp_rs::Builder::new()
        .with_secret(totp_rs::Secret::try_from_base32(&secret).unwrap())
        .build_noncompliant();
    let code = totp
        .generate(app.clock.now().timestamp() as u64)
        .to_string();
    req = app
        .client()
        .post(format!("{address}/graphql"))
        .insert_header(("Authorization", format!("Bearer {session}")));
    let r: Value = req
        .send_json(&json!({
            "query": "mutation($c: String!) { confirmAuthenticator(code: $c) { recoveryCodes } }",
            "variables": { "c": code },
        }))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    data(r);
    totp
}

fn rotate_secrets(app: &TestApp, secret: &str, previous: Option<&str>) -> std::process::Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_guestpass"));
    cmd.arg("rotate-secrets")
        .env("DATABASE_URL", &app.db.url)
        .env("GUESTPASS_SECRET", secret)
        .env("GUESTPASS_LOG", "warn")
        .env_remove("GUESTPASS_SECRET_PREVIOUS");
    if let Some(p) = previous {
        cmd.env("GUESTPASS_SECRET_PREVIOUS", p);
    }
    cmd.output().unwrap()
}

fn rows_under(app: &TestApp, key: &str) -> i64 {
    app.db.scalar_i64(&format!(
        "SELECT count(*) FROM totp_credentials WHERE key_id = '{key}'"
    ))
}

#[actix_rt::test]
async fn an_authenticator_secret_is_stored_sealed_and_nowhere_in_plain_text() {
    let app = spawn_app_with(AppOptions {
        workers: false,
        ..Default::default()
    })
    .await;
    let id = app
        .add_user("sealed@acme.example", Some(ProductRole::User))
        .await;
    app.set_password(&id, PASSWORD).await;
    let session = app.session_for(&id).await;
    let base32 = data(
        app.gql(
            Some(&session),
            "mutation { enrollAuthenticator { secret } }",
            json!({}),
        )
        .await,
    )["enrollAuthenticator"]["secret"]
        .as_str()
        .unwrap()
        .to_string();
    let raw = totp_rs::Secret::try_from_base32(&base32)
        .unwrap()
        .as_bytes()
        .to_vec();
    assert_eq!(raw.len(), 20);

    // Waiting for its first code: sealed under the configured key, no plain text anywhere.
    let (searched, hits) = where_the_secret_is(&app, &base32, &raw);
    assert!(
        hits.is_empty(),
        "the secret is stored in plain text in {hits:?}"
    );
    for place in [
        "public.totp_credentials.secret_sealed",
        "public.totp_credentials.secret_plaintext",
        "public.audit_events.after",
        "public.users.email",
    ] {
        assert!(searched.iter().any(|s| s == place), "{place} not searched");
    }
    assert!(
        searched.iter().any(|s| s.starts_with("apalis.")),
        "the job queue's tables are searched too: {searched:?}"
    );
    assert_eq!(rows_under(&app, &key_id(SECRET_A)), 1);
    assert_eq!(
        app.db.scalar_i64(&format!(
            "SELECT count(*) FROM totp_credentials WHERE user_id = '{id}'
               AND secret_plaintext IS NULL AND octet_length(secret_sealed) = 24 + 20 + 16"
        )),
        1
    );

    // Its codes verify: confirming, then signing in (which also writes audit events).
    let totp = totp_rs::Builder::new()
        .with_secret(totp_rs::Secret::try_from_base32(&base32).unwrap())
        .build_noncompliant();
    data(
        app.gql(
            Some(&session),
            "mutation($c: String!) { confirmAuthenticator(code: $c) { recoveryCodes } }",
            json!({ "c": totp.generate(app.clock.now().timestamp() as u64).to_string() }),
        )
        .await,
    );
    let r = sign_in_with_app(&app, &app.address, "sealed@acme.example", &totp).await;
    assert!(signed_in(&r), "{r}");
    let (_, hits) = where_the_secret_is(&app, &base32, &raw);
    assert!(
        hits.is_empty(),
        "the secret is stored in plain text in {hits:?}"
    );

    // A sealed value moved to another person's row does not open there: their sign-in fails
    // (internal error, logged), it never verifies against someone else's secret.
    let other = app
        .add_user("other@acme.example", Some(ProductRole::User))
        .await;
    app.set_password(&other, PASSWORD).await;
    app.db.execute(&format!(
        "INSERT INTO totp_credentials (user_id, secret_sealed, key_id, created_at, confirmed_at)
         SELECT '{other}', secret_sealed, key_id, now(), now() FROM totp_credentials
         WHERE user_id = '{id}'"
    ));
    let r = sign_in_with_app(&app, &app.address, "other@acme.example", &totp).await;
    assert_eq!(code(&r).as_deref(), Some("INTERNAL"), "{r}");

    // The search finds what it looks for: the raw bytes in a bytea column, the base32 in a text one.
    app.db.execute(&format!(
        "UPDATE totp_credentials SET secret_plaintext = '\\x{}', secret_sealed = NULL, key_id = NULL
           WHERE user_id = '{other}';
         UPDATE users SET display_name = 'key {}' WHERE id = '{other}'",
        hex::encode(&raw),
        base32.to_lowercase()
    ));
    let (_, mut hits) = where_the_secret_is(&app, &base32, &raw);
    hits.sort();
    assert_eq!(
        hits,
        [
            "public.totp_credentials.secret_plaintext",
            "public.users.display_name"
        ],
        "the control copies are found"
    );
    app.stop().await;
}

#[actix_rt::test]
async fn rotating_the_secret_keeps_authenticators_working_and_reseals_every_secret() {
    let app = spawn_app_with(AppOptions {
        workers: false,
        ..Default::default()
    })
    .await;
    let (a, b) = (key_id(SECRET_A), key_id(SECRET_B));
    assert_ne!(a, b);
    let id = app
        .add_user("rotate@acme.example", Some(ProductRole::User))
        .await;
    app.set_password(&id, PASSWORD).await;
    let totp = with_authenticator(&app, &id).await;
    assert_eq!(rows_under(&app, &a), 1);

    // Another process with the new secret and the old one as previous: old codes still verify,
    // and what it seals uses the new key.
    let (rotating, address) = another_instance(&app, SECRET_B, Some(SECRET_A)).await;
    let r = sign_in_with_app(&app, &address, "rotate@acme.example", &totp).await;
    assert!(signed_in(&r), "{r}");
    let late = app
        .add_user("late@acme.example", Some(ProductRole::User))
        .await;
    app.set_password(&late, PASSWORD).await;
    let late_totp = enroll_at(&app, &address, &late).await;
    assert_eq!((rows_under(&app, &a), rows_under(&app, &b)), (1, 1));

    // `guestpass rotate-secrets` re-seals what the old key sealed, once.
    let out = rotate_secrets(&app, SECRET_B, Some(SECRET_A));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout.contains("1 stored secrets re-sealed"), "{stdout}");
    assert_eq!((rows_under(&app, &a), rows_under(&app, &b)), (0, 2));
    let out = rotate_secrets(&app, SECRET_B, Some(SECRET_A));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("0 stored secrets re-sealed"),
        "{out:?}"
    );
    rotating.stop().await;

    // With only the new secret configured, both people's codes verify.
    let (rotated, address) = another_instance(&app, SECRET_B, None).await;
    let r = sign_in_with_app(&app, &address, "rotate@acme.example", &totp).await;
    assert!(signed_in(&r), "{r}");
    let r = sign_in_with_app(&app, &address, "late@acme.example", &late_totp).await;
    assert!(signed_in(&r), "{r}");
    rotated.stop().await;

    // A process left with only the old secret cannot open them: an internal error, not a panic.
    let r = sign_in_with_app(&app, &app.address, "rotate@acme.example", &totp).await;
    assert_eq!(code(&r).as_deref(), Some("INTERNAL"), "{r}");

    // Rotating to a third secret without naming the current one as previous changes nothing and
    // says what to set.
    let out = rotate_secrets(&app, "a-third-secret-a-third-secret-a-third-789", None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{out:?}");
    assert!(stderr.contains("GUESTPASS_SECRET_PREVIOUS"), "{stderr}");
    assert_eq!(rows_under(&app, &b), 2);
    app.stop().await;
}

#[actix_rt::test]
async fn secrets_stored_in_plain_text_before_the_upgrade_are_sealed_at_start() {
    use diesel::connection::SimpleConnection;
    let app = spawn_app_with(AppOptions {
        workers: false,
        ..Default::default()
    })
    .await;
    let id = app
        .add_user("legacy@acme.example", Some(ProductRole::User))
        .await;
    app.set_password(&id, PASSWORD).await;
    let raw: [u8; 20] = rand::random();
    let totp = totp_rs::Builder::new()
        .with_secret(totp_rs::Secret::from(raw))
        .build_noncompliant();
    // A row as the migration leaves one written before it: the secret in plain text only.
    app.db.execute(&format!(
        "INSERT INTO totp_credentials (user_id, secret_plaintext, created_at, confirmed_at)
         VALUES ('{id}', '\\x{}', now(), now())",
        hex::encode(raw)
    ));
    // A row holds one form or the other, never both nor neither.
    for bad in [
        format!(
            "UPDATE totp_credentials SET secret_sealed = '\\x00', key_id = 'k' WHERE user_id = '{id}'"
        ),
        format!("UPDATE totp_credentials SET secret_plaintext = NULL WHERE user_id = '{id}'"),
    ] {
        assert!(
            app.db
                .conn()
                .batch_execute(&crate::common::db::with_keys(&bad))
                .is_err(),
            "{bad}"
        );
    }
    // Until it is sealed, it is read as it is.
    let r = sign_in_with_app(&app, &app.address, "legacy@acme.example", &totp).await;
    assert!(signed_in(&r), "{r}");

    // Starting Guestpass (the step after the migrations) seals it and clears the plain text.
    let (second, _) = another_instance(&app, SECRET_A, None).await;
    second.stop().await;
    assert_eq!(
        app.db
            .scalar_i64("SELECT count(*) FROM totp_credentials WHERE secret_plaintext IS NOT NULL"),
        0
    );
    assert_eq!(rows_under(&app, &key_id(SECRET_A)), 1);
    assert_eq!(
        app.db.scalar_i64(&format!(
            "SELECT count(*) FROM totp_credentials WHERE position('\\x{}'::bytea IN secret_sealed) > 0",
            hex::encode(raw)
        )),
        0
    );
    // It verifies, and the step is idempotent.
    let r = sign_in_with_app(&app, &app.address, "legacy@acme.example", &totp).await;
    assert!(signed_in(&r), "{r}");
    let keys = guestpass::secrets::SecretKeys::new(SECRET_A, None);
    assert_eq!(
        guestpass::store::signin::seal_legacy_totp(&mut app.db.conn(), &keys).unwrap(),
        0
    );
    guestpass::db::migrate_and_seal(&app.db.url, Some(&keys)).unwrap();
    assert_eq!(rows_under(&app, &key_id(SECRET_A)), 1);
    app.stop().await;
}
