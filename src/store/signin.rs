//! Sign-in: password logins, two-step challenges (emailed codes or an authenticator app with recovery
//! codes), password resets, sessions and API tokens. Password hashing itself happens before these
//! functions, on the password pool; everything here is one transaction each.

use crate::auth::tokens::{
    LinkPurpose, LinkSigner, TokenKind, hash_token, new_bearer, random_nonce,
};
use crate::background::EmailJob;
use crate::db::schema::*;
use crate::domain::authorization::{Action, may_change};
use crate::domain::status::{ChallengeMethod, ChallengePurpose, DeliveryStatus};
use crate::error::{AppError, AppResult};
use crate::secrets::SecretKeys;
use crate::store::audit::{self, Audit};
use crate::store::changes::end_sessions;
use crate::store::invites::DeliveryPolicy;
use crate::store::models::{
    ApiToken, DeliverySubject, LoginChallenge, Organization, PasswordReset, Session, User,
};
use crate::store::{org, queue};
use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use serde_json::json;
use uuid::Uuid;

/// Emailed codes and authenticator challenges live this long.
pub const CODE_LIFETIME_MINUTES: i64 = 10;
/// A challenge dies after this many wrong codes.
pub const MAX_CODE_ATTEMPTS: i32 = 5;
/// Reset links live this long.
pub const RESET_LIFETIME_MINUTES: i64 = 60;
/// How many recovery codes an authenticator enrolment hands out.
pub const RECOVERY_CODES: usize = 10;

/// An organization by id or slug.
pub fn organization_by_ref(conn: &mut PgConnection, r: &str) -> AppResult<Option<Organization>> {
    let r = r.trim();
    let mut q = organizations::table.into_boxed();
    q = match Uuid::try_parse(r) {
        Ok(id) => q.filter(organizations::id.eq(id)),
        Err(_) => q.filter(organizations::slug.eq(r.to_lowercase())),
    };
    Ok(q.select(Organization::as_select()).first(conn).optional()?)
}

/// The account an `(organization, email)` pair names, whatever its status.
pub fn find_account(
    conn: &mut PgConnection,
    organization: &str,
    email_normalized: &str,
) -> AppResult<Option<User>> {
    let Some(o) = organization_by_ref(conn, organization)? else {
        return Ok(None);
    };
    Ok(users::table
        .filter(users::organization_id.eq(o.id))
        .filter(users::email_normalized.eq(email_normalized))
        .select(User::as_select())
        .first(conn)
        .optional()?)
}

/// Records a refused sign-in of a known account (unknown accounts have no organization to log to).
pub fn record_failed_login(
    conn: &mut PgConnection,
    user: &User,
    now: DateTime<Utc>,
) -> AppResult<()> {
    audit::record(
        conn,
        Audit::new(user.organization_id, user.id, "login.failure", now)
            .target("user", user.id)
            .after(json!({ "reason": "password" })),
    )
}

/// What a correct password leads to.
pub enum LoginOutcome {
    Session(String),
    Challenge {
        id: Uuid,
        expires_at: DateTime<Utc>,
        /// Where the code comes from: emailed now, or the person's authenticator app.
        method: ChallengeMethod,
    },
}

fn has_authenticator(conn: &mut PgConnection, user: Uuid) -> AppResult<bool> {
    Ok(diesel::select(diesel::dsl::exists(
        totp_credentials::table
            .find(user)
            .filter(totp_credentials::confirmed_at.is_not_null()),
    ))
    .get_result(conn)?)
}

/// After the password was verified: a session, or, when two-step verification applies, a challenge
/// (a code emailed through the queue, or a request for the authenticator app's code).
pub fn password_verified(
    conn: &mut PgConnection,
    user_id: Uuid,
    session_lifetime: Duration,
    policy: &DeliveryPolicy,
    now: DateTime<Utc>,
) -> AppResult<LoginOutcome> {
    conn.transaction(|conn| {
        let user: User = users::table
            .find(user_id)
            .select(User::as_select())
            .first(conn)?;
        if !user.is_active() {
            return Err(AppError::InvalidCredentials);
        }
        let authenticator = has_authenticator(conn, user.id)?;
        let (external, org_policy) = crate::store::external::standing_of(conn, &user)?;
        let two_step =
            crate::domain::policy::two_step_applies(user.two_step_required, external, &org_policy);
        if !(two_step || authenticator) {
            let token = org::create_session(conn, user.id, session_lifetime, now)?;
            audit::record(
                conn,
                Audit::new(user.organization_id, user.id, "login.success", now)
                    .target("user", user.id)
                    .after(json!({ "twoStep": false })),
            )?;
            return Ok(LoginOutcome::Session(token));
        }
        let method = if authenticator {
            ChallengeMethod::Totp
        } else {
            ChallengeMethod::Email
        };
        let expires_at = now + Duration::minutes(CODE_LIFETIME_MINUTES);
        let nonce = random_nonce().to_vec();
        let id: Uuid = diesel::insert_into(login_challenges::table)
            .values((
                login_challenges::user_id.eq(user.id),
                login_challenges::method.eq(method),
                login_challenges::code_nonce.eq(&nonce),
                login_challenges::created_at.eq(now),
                login_challenges::expires_at.eq(expires_at),
            ))
            .returning(login_challenges::id)
            .get_result(conn)?;
        if method == ChallengeMethod::Email {
            queue_code_email(conn, &user, id, &nonce, expires_at, policy, now)?;
        }
        audit::record(
            conn,
            Audit::new(user.organization_id, user.id, "login.challenge", now)
                .target("user", user.id)
                .after(json!({ "challenge": id, "method": method.as_str() })),
        )?;
        Ok(LoginOutcome::Challenge {
            id,
            expires_at,
            method,
        })
    })
}

enum Subject<'a> {
    Challenge(Uuid, &'a [u8]),
    Reset(Uuid, &'a [u8]),
}

/// Queues the email carrying a challenge's code (sign-in or re-verification).
pub fn queue_code_email(
    conn: &mut PgConnection,
    user: &User,
    challenge: Uuid,
    nonce: &[u8],
    expires_at: DateTime<Utc>,
    policy: &DeliveryPolicy,
    now: DateTime<Utc>,
) -> AppResult<Uuid> {
    queue_email(
        conn,
        user,
        Subject::Challenge(challenge, nonce),
        expires_at,
        policy,
        now,
    )
}

/// A delivery row and its job, in the caller's transaction (the email is sent only if it commits).
fn queue_email(
    conn: &mut PgConnection,
    user: &User,
    subject: Subject<'_>,
    give_up_at: DateTime<Utc>,
    policy: &DeliveryPolicy,
    now: DateTime<Utc>,
) -> AppResult<Uuid> {
    let (subject, nonce, tag) = match subject {
        Subject::Challenge(id, n) => (
            DeliverySubject::LoginCode(id),
            n,
            format!("code.{}", id.simple()),
        ),
        Subject::Reset(id, n) => (
            DeliverySubject::PasswordReset(id),
            n,
            format!("reset.{}", id.simple()),
        ),
    };
    let id: Uuid = diesel::insert_into(email_deliveries::table)
        .values((
            email_deliveries::organization_id.eq(user.organization_id),
            subject.values(),
            email_deliveries::token_nonce.eq(nonce),
            email_deliveries::recipient.eq(&user.email),
            email_deliveries::status.eq(DeliveryStatus::Queued),
            email_deliveries::message_id.eq(format!("<{tag}@{}>", policy.message_id_domain)),
            email_deliveries::created_at.eq(now),
            email_deliveries::give_up_at.eq(give_up_at),
        ))
        .returning(email_deliveries::id)
        .get_result(conn)?;
    queue::enqueue_job(conn, &EmailJob { delivery_id: id }, 0.0, None)?;
    Ok(id)
}

/// The authenticator of a secret, as RFC 6238 apps expect it (SHA-1, 6 digits, 30 s, one step of skew).
fn authenticator(secret: Vec<u8>, account: &str) -> AppResult<totp_rs::Totp> {
    totp_rs::Builder::new()
        .with_secret(secret)
        .with_account_name(account.replace(':', ""))
        .with_issuer(Some("Guestpass"))
        .build()
        .map_err(AppError::internal)
}

/// How a `totp_credentials` row holds its secret: `(secret_plaintext, secret_sealed, key_id)`.
type StoredSecret = (Option<Vec<u8>>, Option<Vec<u8>>, Option<String>);

const STORED_SECRET: (
    totp_credentials::secret_plaintext,
    totp_credentials::secret_sealed,
    totp_credentials::key_id,
) = (
    totp_credentials::secret_plaintext,
    totp_credentials::secret_sealed,
    totp_credentials::key_id,
);

/// The secret of `user`'s row, opened.
fn open_secret(keys: &SecretKeys, user: Uuid, stored: StoredSecret) -> AppResult<Vec<u8>> {
    match stored {
        (None, Some(sealed), Some(key_id)) => keys.open(user, &sealed, &key_id),
        // Written before secrets were sealed, and not sealed yet: only a database upgraded by
        // processes without GUESTPASS_SECRET (`serve --dev`) holds such rows (`seal_legacy_totp`).
        (Some(plain), None, None) => Ok(plain),
        _ => Err(AppError::internal(format!(
            "totp_credentials row of {user} holds no secret in a known form"
        ))),
    }
}

/// Checks an authenticator code and burns its time step (a code is accepted once).
fn check_totp(
    conn: &mut PgConnection,
    keys: &SecretKeys,
    user: &User,
    code: &str,
    now: DateTime<Utc>,
) -> AppResult<bool> {
    let Some((stored, last)): Option<(StoredSecret, Option<i64>)> = totp_credentials::table
        .find(user.id)
        .filter(totp_credentials::confirmed_at.is_not_null())
        .select((STORED_SECRET, totp_credentials::last_used_step))
        .first(conn)
        .optional()?
    else {
        return Ok(false);
    };
    let totp = authenticator(open_secret(keys, user.id, stored)?, &user.email)?;
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    match totp.check(&code, now.timestamp().max(0) as u64) {
        Some(step) if last.is_none_or(|l| (step as i64) > l) => {
            diesel::update(totp_credentials::table.find(user.id))
                .set(totp_credentials::last_used_step.eq(step as i64))
                .execute(conn)?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// Uses one recovery code, if it is one of the person's unused ones.
fn use_recovery_code(
    conn: &mut PgConnection,
    user: Uuid,
    code: &str,
    now: DateTime<Utc>,
) -> AppResult<bool> {
    let normalized = code.trim().to_lowercase();
    let n = diesel::update(
        recovery_codes::table
            .filter(recovery_codes::user_id.eq(user))
            .filter(recovery_codes::code_hash.eq(hash_token(&normalized)))
            .filter(recovery_codes::used_at.is_null()),
    )
    .set(recovery_codes::used_at.eq(now))
    .execute(conn)?;
    Ok(n == 1)
}

/// Completes a two-step challenge. A wrong code counts against the challenge (and is committed);
/// wrong, expired and used codes and dead challenges all answer `CODE_INVALID`.
pub fn complete_challenge(
    conn: &mut PgConnection,
    signer: &LinkSigner,
    keys: &SecretKeys,
    challenge_id: Uuid,
    code: &str,
    session_lifetime: Duration,
    now: DateTime<Utc>,
) -> AppResult<String> {
    conn.transaction::<AppResult<String>, AppError, _>(|conn| {
        let Some(ch) = login_challenges::table
            .find(challenge_id)
            .filter(login_challenges::purpose.eq(ChallengePurpose::Login))
            .for_update()
            .select(LoginChallenge::as_select())
            .first(conn)
            .optional()?
        else {
            return Ok(Err(AppError::CodeInvalid));
        };
        if ch.consumed_at.is_some()
            || ch.expires_at <= now
            || ch.failed_attempts >= MAX_CODE_ATTEMPTS
        {
            return Ok(Err(AppError::CodeInvalid));
        }
        let user: User = users::table
            .find(ch.user_id)
            .select(User::as_select())
            .first(conn)?;
        let ok = user.is_active()
            && match ch.method {
                ChallengeMethod::Email => signer.code_ok(ch.id, &ch.code_nonce, code),
                ChallengeMethod::Totp => {
                    check_totp(conn, keys, &user, code, now)?
                        || use_recovery_code(conn, user.id, code, now)?
                }
            };
        if !ok {
            diesel::update(login_challenges::table.find(ch.id))
                .set(login_challenges::failed_attempts.eq(login_challenges::failed_attempts + 1))
                .execute(conn)?;
            audit::record(
                conn,
                Audit::new(user.organization_id, user.id, "login.failure", now)
                    .target("user", user.id)
                    .after(json!({ "reason": "code", "challenge": ch.id })),
            )?;
            return Ok(Err(AppError::CodeInvalid));
        }
        diesel::update(login_challenges::table.find(ch.id))
            .set(login_challenges::consumed_at.eq(now))
            .execute(conn)?;
        if ch.method == ChallengeMethod::Email {
            // An emailed code proves the address: a new verification period starts.
            diesel::update(users::table.find(user.id))
                .set(users::verified_at.eq(now))
                .execute(conn)?;
        }
        let token = org::create_session(conn, user.id, session_lifetime, now)?;
        audit::record(
            conn,
            Audit::new(user.organization_id, user.id, "login.success", now)
                .target("user", user.id)
                .after(json!({ "twoStep": true, "method": ch.method.as_str() })),
        )?;
        Ok(Ok(token))
    })?
}

/// The caller's live sessions, newest first.
pub fn sessions(
    conn: &mut PgConnection,
    user: Uuid,
    now: DateTime<Utc>,
) -> AppResult<Vec<Session>> {
    Ok(sessions::table
        .filter(sessions::user_id.eq(user))
        .filter(sessions::revoked_at.is_null())
        .filter(sessions::expires_at.gt(now))
        .order((sessions::created_at.desc(), sessions::id.desc()))
        .select(Session::as_select())
        .load(conn)?)
}

/// Ends one of the caller's own sessions (any other id is `NOT_FOUND`).
pub fn revoke_session(
    conn: &mut PgConnection,
    user: &User,
    id: Uuid,
    now: DateTime<Utc>,
) -> AppResult<()> {
    let n = diesel::update(
        sessions::table
            .find(id)
            .filter(sessions::user_id.eq(user.id))
            .filter(sessions::revoked_at.is_null()),
    )
    .set(sessions::revoked_at.eq(now))
    .execute(conn)?;
    if n == 0 {
        return Err(AppError::NotFound("Session"));
    }
    audit::record(
        conn,
        Audit::new(user.organization_id, user.id, "session.revoke", now)
            .target("user", user.id)
            .after(json!({ "session": id })),
    )
}

/// Creates an API token for the caller; the token is returned once.
pub fn create_api_token(
    conn: &mut PgConnection,
    user: &User,
    name: &str,
    expires_in_days: Option<i64>,
    now: DateTime<Utc>,
) -> AppResult<(String, ApiToken)> {
    conn.transaction(|conn| {
        let expires = expires_in_days.map(|d| now + Duration::days(d));
        let (token, hash) = new_bearer(TokenKind::Api);
        let row: ApiToken = diesel::insert_into(api_tokens::table)
            .values((
                api_tokens::user_id.eq(user.id),
                api_tokens::name.eq(name),
                api_tokens::token_hash.eq(hash),
                api_tokens::created_at.eq(now),
                api_tokens::expires_at.eq(expires),
            ))
            .returning(ApiToken::as_returning())
            .get_result(conn)?;
        audit::record(
            conn,
            Audit::new(user.organization_id, user.id, "apiToken.create", now)
                .target("user", user.id)
                .after(json!({ "token": row.id, "name": name })),
        )?;
        Ok((token, row))
    })
}

pub fn api_tokens(conn: &mut PgConnection, user: Uuid) -> AppResult<Vec<ApiToken>> {
    Ok(api_tokens::table
        .filter(api_tokens::user_id.eq(user))
        .filter(api_tokens::revoked_at.is_null())
        .order((api_tokens::created_at.desc(), api_tokens::id.desc()))
        .select(ApiToken::as_select())
        .load(conn)?)
}

pub fn revoke_api_token(
    conn: &mut PgConnection,
    user: &User,
    id: Uuid,
    now: DateTime<Utc>,
) -> AppResult<ApiToken> {
    conn.transaction(|conn| {
        let row: ApiToken = diesel::update(
            api_tokens::table
                .find(id)
                .filter(api_tokens::user_id.eq(user.id))
                .filter(api_tokens::revoked_at.is_null()),
        )
        .set(api_tokens::revoked_at.eq(now))
        .returning(ApiToken::as_returning())
        .get_result(conn)
        .optional()?
        .ok_or(AppError::NotFound("ApiToken"))?;
        audit::record(
            conn,
            Audit::new(user.organization_id, user.id, "apiToken.revoke", now)
                .target("user", user.id)
                .after(json!({ "token": id })),
        )?;
        Ok(row)
    })
}

/// Sends a reset link to an active account (earlier unused links stop working). Callers answer the
/// same way whether or not the account exists.
pub fn request_reset(
    conn: &mut PgConnection,
    user: &User,
    policy: &DeliveryPolicy,
    now: DateTime<Utc>,
) -> AppResult<()> {
    if !user.is_active() {
        return Ok(());
    }
    conn.transaction(|conn| {
        diesel::update(
            password_resets::table
                .filter(password_resets::user_id.eq(user.id))
                .filter(password_resets::used_at.is_null()),
        )
        .set(password_resets::used_at.eq(now))
        .execute(conn)?;
        let nonce = random_nonce().to_vec();
        let expires_at = now + Duration::minutes(RESET_LIFETIME_MINUTES);
        let id: Uuid = diesel::insert_into(password_resets::table)
            .values((
                password_resets::user_id.eq(user.id),
                password_resets::token_nonce.eq(&nonce),
                password_resets::created_at.eq(now),
                password_resets::expires_at.eq(expires_at),
            ))
            .returning(password_resets::id)
            .get_result(conn)?;
        queue_email(
            conn,
            user,
            Subject::Reset(id, &nonce),
            expires_at,
            policy,
            now,
        )?;
        audit::record(
            conn,
            Audit::new(
                user.organization_id,
                user.id,
                "password.resetRequested",
                now,
            )
            .target("user", user.id)
            .after(json!({ "reset": id })),
        )
    })
}

/// The reset a link names, if it is still usable; anything else is `LINK_INVALID`.
pub fn open_reset(
    conn: &mut PgConnection,
    signer: &LinkSigner,
    token: &str,
    now: DateTime<Utc>,
) -> AppResult<(PasswordReset, User)> {
    let (id, tag) =
        LinkSigner::parse(LinkPurpose::PasswordReset, token).ok_or(AppError::LinkInvalid)?;
    let reset: PasswordReset = password_resets::table
        .find(id)
        .select(PasswordReset::as_select())
        .first(conn)
        .optional()?
        .ok_or(AppError::LinkInvalid)?;
    let user: User = users::table
        .find(reset.user_id)
        .select(User::as_select())
        .first(conn)?;
    if !signer.verify(LinkPurpose::PasswordReset, id, &reset.token_nonce, &tag)
        || reset.used_at.is_some()
        || reset.expires_at <= now
        || !user.is_active()
    {
        return Err(AppError::LinkInvalid);
    }
    Ok((reset, user))
}

/// Sets the new password (hashed by the caller) once, and ends every session of the person.
pub fn reset_password(
    conn: &mut PgConnection,
    signer: &LinkSigner,
    token: &str,
    password_hash: &str,
    now: DateTime<Utc>,
) -> AppResult<User> {
    conn.transaction(|conn| {
        let (reset, user) = open_reset(conn, signer, token, now)?;
        let claimed = diesel::update(
            password_resets::table
                .find(reset.id)
                .filter(password_resets::used_at.is_null()),
        )
        .set(password_resets::used_at.eq(now))
        .execute(conn)?;
        if claimed == 0 {
            return Err(AppError::LinkInvalid);
        }
        diesel::update(users::table.find(user.id))
            .set(users::password_hash.eq(password_hash))
            .execute(conn)?;
        let ended = end_sessions(conn, &[user.id], now)?;
        audit::record(
            conn,
            Audit::new(user.organization_id, user.id, "password.reset", now)
                .target("user", user.id)
                .after(json!({ "reset": reset.id, "sessionsEnded": ended })),
        )?;
        Ok(user)
    })
}

/// A new authenticator secret waiting for its first code (replaces an unconfirmed one).
pub fn begin_totp(
    conn: &mut PgConnection,
    keys: &SecretKeys,
    user: &User,
    now: DateTime<Utc>,
) -> AppResult<(String, String)> {
    let mut secret = vec![0u8; 20];
    rand::Rng::fill(&mut rand::rng(), &mut secret[..]);
    let (sealed, key_id) = keys.seal(user.id, &secret)?;
    let totp = authenticator(secret.clone(), &user.email)?;
    let url = totp.to_url().map_err(AppError::internal)?;
    let base32 = totp_rs::Secret::from(secret).to_base32();
    conn.transaction(|conn| {
        if has_authenticator(conn, user.id)? {
            return Err(AppError::invalid(
                "authenticator",
                "an authenticator app is already enrolled; remove it first",
            ));
        }
        diesel::insert_into(totp_credentials::table)
            .values((
                totp_credentials::user_id.eq(user.id),
                totp_credentials::secret_sealed.eq(&sealed),
                totp_credentials::key_id.eq(&key_id),
                totp_credentials::created_at.eq(now),
            ))
            .on_conflict(totp_credentials::user_id)
            .do_update()
            .set((
                totp_credentials::secret_plaintext.eq(None::<Vec<u8>>),
                totp_credentials::secret_sealed.eq(&sealed),
                totp_credentials::key_id.eq(&key_id),
                totp_credentials::created_at.eq(now),
                totp_credentials::last_used_step.eq(None::<i64>),
            ))
            .execute(conn)?;
        Ok((base32, url))
    })
}

fn new_recovery_code() -> String {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    let mut rng = rand::rng();
    let mut s = String::with_capacity(11);
    for i in 0..10 {
        if i == 5 {
            s.push('-');
        }
        s.push(ALPHABET[rand::Rng::random_range(&mut rng, 0..ALPHABET.len())] as char);
    }
    s
}

/// Activates the pending authenticator with its first code; returns fresh recovery codes (shown once).
pub fn confirm_totp(
    conn: &mut PgConnection,
    keys: &SecretKeys,
    user: &User,
    code: &str,
    now: DateTime<Utc>,
) -> AppResult<Vec<String>> {
    conn.transaction(|conn| {
        let (stored, confirmed): (StoredSecret, Option<DateTime<Utc>>) = totp_credentials::table
            .find(user.id)
            .for_update()
            .select((STORED_SECRET, totp_credentials::confirmed_at))
            .first(conn)
            .optional()?
            .ok_or_else(|| AppError::invalid("code", "start with enrollAuthenticator"))?;
        if confirmed.is_some() {
            return Err(AppError::invalid(
                "code",
                "the authenticator is already active",
            ));
        }
        let totp = authenticator(open_secret(keys, user.id, stored)?, &user.email)?;
        let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
        let step = totp
            .check(&code, now.timestamp().max(0) as u64)
            .ok_or(AppError::CodeInvalid)?;
        diesel::update(totp_credentials::table.find(user.id))
            .set((
                totp_credentials::confirmed_at.eq(now),
                totp_credentials::last_used_step.eq(step as i64),
            ))
            .execute(conn)?;
        diesel::delete(recovery_codes::table.filter(recovery_codes::user_id.eq(user.id)))
            .execute(conn)?;
        let codes: Vec<String> = (0..RECOVERY_CODES).map(|_| new_recovery_code()).collect();
        let rows: Vec<_> = codes
            .iter()
            .map(|c| {
                (
                    recovery_codes::user_id.eq(user.id),
                    recovery_codes::code_hash.eq(hash_token(c)),
                    recovery_codes::created_at.eq(now),
                )
            })
            .collect();
        diesel::insert_into(recovery_codes::table)
            .values(&rows)
            .execute(conn)?;
        audit::record(
            conn,
            Audit::new(user.organization_id, user.id, "authenticator.enroll", now)
                .target("user", user.id)
                .after(json!({})),
        )?;
        Ok(codes)
    })
}

/// Removes the authenticator after checking one of its codes (or a recovery code).
pub fn remove_totp(
    conn: &mut PgConnection,
    keys: &SecretKeys,
    user: &User,
    code: &str,
    now: DateTime<Utc>,
) -> AppResult<()> {
    conn.transaction(|conn| {
        if !(check_totp(conn, keys, user, code, now)?
            || use_recovery_code(conn, user.id, code, now)?)
        {
            return Err(AppError::CodeInvalid);
        }
        diesel::delete(totp_credentials::table.find(user.id)).execute(conn)?;
        diesel::delete(recovery_codes::table.filter(recovery_codes::user_id.eq(user.id)))
            .execute(conn)?;
        audit::record(
            conn,
            Audit::new(user.organization_id, user.id, "authenticator.remove", now)
                .target("user", user.id)
                .after(json!({})),
        )
    })
}

/// Seals every authenticator secret still stored in plain text and clears the plain text, in one
/// transaction; answers how many it sealed.
///
/// This is the part of migration `2026-12-06-000014_sealed_secrets` that SQL cannot do: the key is
/// derived from GUESTPASS_SECRET, which the database never sees. So it runs in Rust right after the
/// schema migrations, wherever they run with the server secret (`serve`, `migrate` and the other
/// commands that migrate: `db::migrate_and_seal`), every time: it is idempotent (nothing to do once
/// no plain text is left, and two replicas starting together lock the rows, so the second finds
/// them sealed). A process without GUESTPASS_SECRET (`serve --dev` with a random one) never runs it,
/// since a random key would lose the secrets at restart; until then such rows are read as they are.
pub fn seal_legacy_totp(conn: &mut PgConnection, keys: &SecretKeys) -> AppResult<usize> {
    conn.transaction(|conn| {
        let rows: Vec<(Uuid, Option<Vec<u8>>)> = totp_credentials::table
            .filter(totp_credentials::secret_plaintext.is_not_null())
            .select((
                totp_credentials::user_id,
                totp_credentials::secret_plaintext,
            ))
            .for_update()
            .load(conn)?;
        let mut sealed_rows = 0;
        for (user, plain) in rows {
            let Some(plain) = plain else { continue };
            write_sealed(conn, keys, user, &plain)?;
            sealed_rows += 1;
        }
        Ok(sealed_rows)
    })
}

/// Re-seals under the current key every authenticator secret sealed under another one (and seals
/// any left in plain text), in one transaction; answers how many it wrote (`guestpass
/// rotate-secrets`). Idempotent: a second run finds nothing to do. A secret under a key that is
/// neither GUESTPASS_SECRET's nor GUESTPASS_SECRET_PREVIOUS's fails the whole run, changing nothing.
pub fn reseal_totp(conn: &mut PgConnection, keys: &SecretKeys) -> AppResult<usize> {
    conn.transaction(|conn| {
        let rows: Vec<(Uuid, StoredSecret)> = totp_credentials::table
            .filter(
                totp_credentials::key_id
                    .ne(keys.current_id())
                    .or(totp_credentials::key_id.is_null()),
            )
            .select((totp_credentials::user_id, STORED_SECRET))
            .for_update()
            .load(conn)?;
        let n = rows.len();
        for (user, stored) in rows {
            let plain = open_secret(keys, user, stored)?;
            write_sealed(conn, keys, user, &plain)?;
        }
        Ok(n)
    })
}

fn write_sealed(
    conn: &mut PgConnection,
    keys: &SecretKeys,
    user: Uuid,
    plain: &[u8],
) -> AppResult<()> {
    let (sealed, key_id) = keys.seal(user, plain)?;
    diesel::update(totp_credentials::table.find(user))
        .set((
            totp_credentials::secret_plaintext.eq(None::<Vec<u8>>),
            totp_credentials::secret_sealed.eq(sealed),
            totp_credentials::key_id.eq(key_id),
        ))
        .execute(conn)?;
    Ok(())
}

/// Authenticator secrets still stored in plain text (a process without GUESTPASS_SECRET left them).
pub fn unsealed_totp_count(conn: &mut PgConnection) -> AppResult<i64> {
    Ok(totp_credentials::table
        .filter(totp_credentials::secret_plaintext.is_not_null())
        .count()
        .get_result(conn)?)
}

/// Sets whether two-step verification is required for a person: organization admins for anyone,
/// site admins only for people whose every site is one they administer (the policy's
/// `Action::SetTwoStepRequired`), so nobody changes how someone else's site is signed into.
pub fn set_two_step_required(
    conn: &mut PgConnection,
    caller: &crate::store::access::Caller,
    user_id: Uuid,
    required: bool,
    now: DateTime<Utc>,
) -> AppResult<User> {
    let target = crate::store::directory::user_in_org(conn, caller.user.organization_id, user_id)?;
    let person = crate::store::access::person(conn, target.id)?;
    let viewer = crate::store::access::viewer(conn, caller)?;
    if !may_change(&viewer, Action::SetTwoStepRequired(&person)) {
        return Err(AppError::Forbidden);
    }
    conn.transaction(|conn| {
        let user: User = diesel::update(users::table.find(target.id))
            .set(users::two_step_required.eq(required))
            .returning(User::as_returning())
            .get_result(conn)?;
        audit::record(
            conn,
            Audit::new(
                user.organization_id,
                caller.user.id,
                "user.twoStepRequired",
                now,
            )
            .target("user", user.id)
            .before(json!({ "required": target.two_step_required }))
            .after(json!({ "required": required })),
        )?;
        Ok(user)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_codes_are_long_and_unambiguous() {
        let c = new_recovery_code();
        assert_eq!(c.len(), 11);
        assert_eq!(&c[5..6], "-");
        assert!(!c.contains(['0', 'o', '1', 'l', 'i']));
        assert_ne!(new_recovery_code(), c);
    }
}
