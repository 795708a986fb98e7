//! Signing in and out: passwords, two-step codes, authenticator apps, password resets, sessions and
//! API tokens. Rate limits apply per client address and per account before any work is done.

use super::ids::{Kind, global as gid};
use super::types::User;
use super::{caller, client_address, parse_id, state};
use crate::auth::password::check_strength;
use crate::domain::status::ChallengeMethod;
use crate::error::{AppError, AppResult};
use crate::store::models;
use crate::store::signin::{self, LoginOutcome};
use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};

/// A password sign-in: which organization, which account, and its password.
#[derive(InputObject)]
pub struct LoginInput {
    /// The organization's id or slug.
    pub organization: String,
    /// The account's email address (surrounding spaces and letter case do not matter).
    pub email: String,
    /// The account's password. A wrong one, an unknown account and a deactivated one all answer
    /// `INVALID_CREDENTIALS`.
    pub password: String,
}

/// Either `sessionToken` is set, or two-step verification applies and `challengeId` is: send the
/// emailed (or authenticator) code with `completeLogin`.
#[derive(SimpleObject, Default)]
pub struct LoginPayload {
    /// The new session's bearer token (send it as `Authorization: Bearer <token>`); null when a
    /// two-step challenge was issued instead.
    pub session_token: Option<String>,
    /// The challenge to answer with `completeLogin`; null when `sessionToken` is set.
    pub challenge_id: Option<ID>,
    /// When the challenge's code stops working (10 minutes after `login`); null without a
    /// challenge.
    pub challenge_expires_at: Option<DateTime<Utc>>,
    /// `EMAIL` or `AUTHENTICATOR`, when there is a challenge.
    pub challenge_method: Option<String>,
}

impl From<LoginOutcome> for LoginPayload {
    fn from(outcome: LoginOutcome) -> Self {
        match outcome {
            LoginOutcome::Session(token) => Self {
                session_token: Some(token),
                ..Default::default()
            },
            LoginOutcome::Challenge {
                id,
                expires_at,
                method,
            } => Self {
                challenge_id: Some(ID(id.to_string())),
                challenge_expires_at: Some(expires_at),
                challenge_method: Some(
                    // The API's words for where the code comes from.
                    match method {
                        ChallengeMethod::Email => "EMAIL", // not a column value
                        ChallengeMethod::Totp => "AUTHENTICATOR",
                    }
                    .into(),
                ),
                ..Default::default()
            },
        }
    }
}

/// The second step of a sign-in: the challenge `login` gave, and its code.
#[derive(InputObject)]
pub struct CompleteLoginInput {
    /// `LoginPayload.challengeId`. An unknown, expired or malformed one is `CODE_INVALID`, like a
    /// wrong code.
    pub challenge_id: ID,
    /// The 6-digit code (emailed or from the authenticator app), or a recovery code.
    pub code: String,
}

/// A new session, after the second step of a sign-in.
#[derive(SimpleObject)]
pub struct CompleteLoginPayload {
    /// The session's bearer token: send it as `Authorization: Bearer <token>`.
    pub session_token: String,
}

/// Whose password to reset. The answer is the same whether or not the account exists.
#[derive(InputObject)]
pub struct RequestPasswordResetInput {
    /// The organization's id or slug.
    pub organization: String,
    /// The account's email address (surrounding spaces and letter case do not matter).
    pub email: String,
}

/// A new password, with the token of the emailed reset link.
#[derive(InputObject)]
pub struct ResetPasswordInput {
    /// The token from the emailed link. An unknown, used or expired one (or one of a deactivated
    /// account) is `LINK_INVALID`.
    pub token: String,
    /// 10 to 1,024 characters, not one of the most common passwords, not the email address and not
    /// one character repeated; otherwise `WEAK_PASSWORD`, with the reason in the message.
    pub new_password: String,
}

/// Payloads that only acknowledge: what changed is not an object the caller can read any more (a
/// session ended, a credential removed) or must not learn about (whether an account exists). One
/// type per mutation, so each can grow without touching the others.
macro_rules! acknowledgements {
    ($($(#[doc = $doc:literal])* $name:ident;)*) => {$(
        $(#[doc = $doc])*
        #[derive(SimpleObject)]
        pub struct $name {
            /// Always true: failures are errors.
            pub ok: bool,
        }
    )*};
}

acknowledgements! {
    /// The session `logout` ended (the one the request was made with).
    LogoutPayload;
    /// `removeAuthenticator` removed the authenticator app and its recovery codes.
    RemoveAuthenticatorPayload;
    /// `requestPasswordReset` gives the same answer whatever happened, so it never tells whether an
    /// account exists.
    RequestPasswordResetPayload;
    /// `resetPassword` set the new password and ended the account's sessions.
    ResetPasswordPayload;
}

/// The session `revokeSession` ended.
#[derive(SimpleObject)]
pub struct RevokeSessionPayload {
    /// Always true: failures are errors.
    pub ok: bool,
    /// The id of the session that ended (it no longer appears in `sessions`).
    pub revoked_session_id: ID,
}

/// Whether one person must give an emailed code at every sign-in.
#[derive(InputObject)]
pub struct SetTwoStepRequiredInput {
    /// The person; an id outside the caller's organization is `NOT_FOUND`.
    pub user_id: ID,
    /// True: a code at every sign-in. False: no longer required of this person (an external user
    /// policy that requires codes, or an authenticator app, still applies).
    pub required: bool,
}

/// A new API token of the caller.
#[derive(InputObject)]
pub struct CreateApiTokenInput {
    /// A label to tell tokens apart: one line, 1 to 100 characters (`INVALID_INPUT` otherwise).
    pub name: String,
    /// Days until it stops working, 1 to 365 (`INVALID_INPUT` otherwise); no expiry when left out.
    pub expires_in_days: Option<i32>,
}

/// A new API token: the secret, this once, and its record.
#[derive(SimpleObject)]
pub struct CreateApiTokenPayload {
    /// The token itself, for `Authorization: Bearer <token>`. Shown once: only its hash is stored.
    pub token: String,
    /// The token's record, as `apiTokens` lists it.
    pub api_token: ApiToken,
}

/// An authenticator app waiting to be confirmed: add the secret to the app (by hand or by QR code),
/// then call `confirmAuthenticator` with the first code it shows.
#[derive(SimpleObject)]
pub struct EnrollAuthenticatorPayload {
    /// The shared secret in base32, for typing into an app.
    pub secret: String,
    /// An `otpauth://` URL (render it as a QR code).
    pub otpauth_url: String,
}

/// The recovery codes of an authenticator app that has just become active.
#[derive(SimpleObject)]
pub struct ConfirmAuthenticatorPayload {
    /// Ten one-time codes for when the app is not at hand. Shown once.
    pub recovery_codes: Vec<String>,
}

pub struct SessionInfo {
    pub(crate) row: models::Session,
    pub(crate) current: bool,
}

/// A signed-in session of the caller.
#[Object(name = "Session")]
impl SessionInfo {
    /// The session's id, for `revokeSession`.
    pub async fn id(&self) -> AppResult<ID> {
        Ok(gid(Kind::Session, self.row.id))
    }
    /// When it started (the sign-in).
    async fn created_at(&self) -> DateTime<Utc> {
        self.row.created_at
    }
    /// When a request last used it (recorded at most once a minute). A session unused for the idle
    /// timeout ends.
    async fn last_seen_at(&self) -> DateTime<Utc> {
        self.row.last_seen_at
    }
    /// When it ends at the latest, however much it is used.
    async fn expires_at(&self) -> DateTime<Utc> {
        self.row.expires_at
    }
    /// The session this request was made with.
    async fn current(&self) -> bool {
        self.current
    }
}

pub struct ApiToken(pub(crate) models::ApiToken);

/// An API token of the caller (never the token itself). It acts as the caller, and stops working
/// when revoked, when it expires, while the caller holds neither an admin role nor a role on any
/// site, and, for an external user, while the organization's policy blocks API tokens.
#[Object]
impl ApiToken {
    /// The token's id, for `revokeApiToken`.
    pub async fn id(&self) -> AppResult<ID> {
        Ok(gid(Kind::ApiToken, self.0.id))
    }
    /// The label given when it was created.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// When it was created.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// When a request last used it (recorded at most once a minute); null: never used.
    async fn last_used_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_used_at
    }
    /// When it stops working; null: it never expires.
    async fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.0.expires_at
    }
}

#[derive(Default)]
pub struct SignInQuery;

#[Object]
impl SignInQuery {
    /// The caller's live sessions, newest first.
    async fn sessions(&self, ctx: &Context<'_>) -> AppResult<Option<Vec<SessionInfo>>> {
        let who = caller(ctx).await?;
        let now = state(ctx).clock.now();
        let uid = who.user.id;
        let rows = state(ctx)
            .db
            .run(move |c| signin::sessions(c, uid, now))
            .await?;
        Ok(Some(
            rows.into_iter()
                .map(|row| SessionInfo {
                    current: who.session_id == Some(row.id),
                    row,
                })
                .collect(),
        ))
    }

    /// The caller's API tokens that are not revoked.
    async fn api_tokens(&self, ctx: &Context<'_>) -> AppResult<Option<Vec<ApiToken>>> {
        let uid = caller(ctx).await?.user.id;
        let rows = state(ctx)
            .db
            .run(move |c| signin::api_tokens(c, uid))
            .await?;
        Ok(Some(rows.into_iter().map(ApiToken).collect()))
    }
}

#[derive(Default)]
pub struct SignInMutation;

#[Object]
impl SignInMutation {
    /// Signs in with a password. A wrong password, an unknown account and a deactivated one all
    /// answer `INVALID_CREDENTIALS`, after the same password work. Attempts are limited per client
    /// address and per account (`RATE_LIMITED`, with `retryAfterSeconds`).
    async fn login(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The organization, the account's email and its password.")]
        input: LoginInput,
    ) -> AppResult<LoginPayload> {
        let st = state(ctx);
        let user = verify_password(
            st,
            &client_address(ctx),
            &input.organization,
            &input.email,
            input.password,
        )
        .await?;
        let (lifetime, policy, now) = (st.session_lifetime(), st.delivery.clone(), st.clock.now());
        let uid = user.id;
        let outcome = st
            .db
            .run(move |c| signin::password_verified(c, uid, lifetime, &policy, now))
            .await?;
        Ok(outcome.into())
    }

    /// Finishes a two-step sign-in. Codes expire after 10 minutes and work once; a challenge dies
    /// after 5 wrong codes. Every failure answers `CODE_INVALID`; attempts are limited per client
    /// address (`RATE_LIMITED`).
    async fn complete_login(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The challenge `login` gave and its code.")] input: CompleteLoginInput,
    ) -> AppResult<CompleteLoginPayload> {
        let st = state(ctx);
        st.limits
            .code_address
            .check(st, &client_address(ctx))
            .await?;
        let id = parse_id(&input.challenge_id, "Challenge").map_err(|_| AppError::CodeInvalid)?;
        let (signer, lifetime, now) = (st.signer.clone(), st.session_lifetime(), st.clock.now());
        let keys = st.secrets.clone();
        let token = st
            .db
            .run(move |c| {
                signin::complete_challenge(c, &signer, &keys, id, &input.code, lifetime, now)
            })
            .await?;
        Ok(CompleteLoginPayload {
            session_token: token,
        })
    }

    /// Ends the session this request was made with. A request made with an API token is
    /// `INVALID_INPUT` (revoke the token with `revokeApiToken`).
    async fn logout(&self, ctx: &Context<'_>) -> AppResult<LogoutPayload> {
        let who = caller(ctx).await?;
        let Some(session) = who.session_id else {
            return Err(AppError::invalid(
                "token",
                "this request used an API token; revoke it with revokeApiToken",
            ));
        };
        let now = state(ctx).clock.now();
        state(ctx)
            .db
            .run(move |c| signin::revoke_session(c, &who.user, session, now))
            .await?;
        Ok(LogoutPayload { ok: true })
    }

    /// Ends one of the caller's sessions.
    async fn revoke_session(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "`Session.id` of one of the caller's live sessions; any other id is `NOT_FOUND`."
        )]
        id: ID,
    ) -> AppResult<RevokeSessionPayload> {
        let who = caller(ctx).await?;
        let id = parse_id(&id, "Session")?;
        let now = state(ctx).clock.now();
        state(ctx)
            .db
            .run(move |c| signin::revoke_session(c, &who.user, id, now))
            .await?;
        Ok(RevokeSessionPayload {
            ok: true,
            revoked_session_id: gid(Kind::Session, id),
        })
    }

    /// Requires (or stops requiring) an emailed code at every sign-in of a person: organization
    /// admins for anyone, site admins for people whose every site is one they administer
    /// (`FORBIDDEN` otherwise).
    async fn set_two_step_required(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The person, and whether a code is required of them.")]
        input: SetTwoStepRequiredInput,
    ) -> AppResult<SetTwoStepRequiredPayload> {
        let who = caller(ctx).await?;
        let id = parse_id(&input.user_id, "User")?;
        let now = state(ctx).clock.now();
        state(ctx)
            .db
            .run(move |c| signin::set_two_step_required(c, &who, id, input.required, now))
            .await
            .map(|u| SetTwoStepRequiredPayload { user: User::new(u) })
    }

    /// Starts enrolling an authenticator app (replacing an unconfirmed enrolment); confirm with its
    /// first code. `INVALID_INPUT` when an app is already active: remove it first.
    async fn enroll_authenticator(
        &self,
        ctx: &Context<'_>,
    ) -> AppResult<EnrollAuthenticatorPayload> {
        let who = caller(ctx).await?;
        let (keys, now) = (state(ctx).secrets.clone(), state(ctx).clock.now());
        let (secret, otpauth_url) = state(ctx)
            .db
            .run(move |c| signin::begin_totp(c, &keys, &who.user, now))
            .await?;
        Ok(EnrollAuthenticatorPayload {
            secret,
            otpauth_url,
        })
    }

    /// Activates the authenticator app with a code from it; from then on sign-ins ask for its codes.
    async fn confirm_authenticator(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "The code the newly added app shows now. A wrong one is `CODE_INVALID`; `INVALID_INPUT` when no enrolment was started or the app is already active."
        )]
        code: String,
    ) -> AppResult<ConfirmAuthenticatorPayload> {
        let who = caller(ctx).await?;
        let (keys, now) = (state(ctx).secrets.clone(), state(ctx).clock.now());
        let recovery_codes = state(ctx)
            .db
            .run(move |c| signin::confirm_totp(c, &keys, &who.user, &code, now))
            .await?;
        Ok(ConfirmAuthenticatorPayload { recovery_codes })
    }

    /// Removes the authenticator app, given one of its codes or a recovery code.
    async fn remove_authenticator(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "A code the app shows now, or one of the unused recovery codes; anything else is `CODE_INVALID`."
        )]
        code: String,
    ) -> AppResult<RemoveAuthenticatorPayload> {
        let who = caller(ctx).await?;
        let (keys, now) = (state(ctx).secrets.clone(), state(ctx).clock.now());
        state(ctx)
            .db
            .run(move |c| signin::remove_totp(c, &keys, &who.user, &code, now))
            .await?;
        Ok(RemoveAuthenticatorPayload { ok: true })
    }

    /// Emails a reset link valid for an hour when the account exists and is active (earlier links
    /// stop working); answers the same either way. Limited per client address and per account
    /// (`RATE_LIMITED`).
    async fn request_password_reset(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The organization and the account's email address.")]
        input: RequestPasswordResetInput,
    ) -> AppResult<RequestPasswordResetPayload> {
        let st = state(ctx);
        st.limits
            .reset_address
            .check(st, &client_address(ctx))
            .await?;
        let email = input.email.trim().to_lowercase();
        st.limits
            .reset_account
            .check(
                st,
                &format!("{}|{email}", input.organization.trim().to_lowercase()),
            )
            .await?;
        let (policy, now) = (st.delivery.clone(), st.clock.now());
        st.db
            .run(move |c| {
                if let Some(user) = signin::find_account(c, &input.organization, &email)? {
                    signin::request_reset(c, &user, &policy, now)?;
                }
                Ok(())
            })
            .await?;
        Ok(RequestPasswordResetPayload { ok: true })
    }

    /// Sets a new password with the emailed link's token (once); every session of the person ends.
    /// `LINK_INVALID` for a bad link, `WEAK_PASSWORD` for a refused password; limited per client
    /// address (`RATE_LIMITED`).
    async fn reset_password(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The emailed link's token and the new password.")]
        input: ResetPasswordInput,
    ) -> AppResult<ResetPasswordPayload> {
        let st = state(ctx);
        st.limits
            .reset_address
            .check(st, &client_address(ctx))
            .await?;
        reset_password(st, input.token, input.new_password).await?;
        Ok(ResetPasswordPayload { ok: true })
    }

    /// Creates an API token acting as the caller; the token is shown once. An external user is
    /// refused with `API_TOKENS_BLOCKED` while the organization's policy blocks API tokens.
    async fn create_api_token(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The token's name and lifetime.")] input: CreateApiTokenInput,
    ) -> AppResult<CreateApiTokenPayload> {
        let who = caller(ctx).await?;
        if who.external
            && who.policy.api_token_access == crate::domain::policy::ApiTokenAccess::Blocked
        {
            return Err(AppError::ApiTokensBlocked);
        }
        let name = crate::domain::text::single_line(&input.name, 100)
            .map_err(|m| AppError::invalid("name", m))?;
        if input
            .expires_in_days
            .is_some_and(|d| !(1..=365).contains(&d))
        {
            return Err(AppError::invalid(
                "expiresInDays",
                "must be between 1 and 365",
            ));
        }
        let now = state(ctx).clock.now();
        let days = input.expires_in_days.map(i64::from);
        let (token, row) = state(ctx)
            .db
            .run(move |c| signin::create_api_token(c, &who.user, &name, days, now))
            .await?;
        Ok(CreateApiTokenPayload {
            token,
            api_token: ApiToken(row),
        })
    }

    /// Revokes one of the caller's API tokens; it stops working on its next request.
    async fn revoke_api_token(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "`ApiToken.id` of one of the caller's tokens not yet revoked; any other id is `NOT_FOUND`."
        )]
        id: ID,
    ) -> AppResult<RevokeApiTokenPayload> {
        let who = caller(ctx).await?;
        let id = parse_id(&id, "ApiToken")?;
        let now = state(ctx).clock.now();
        state(ctx)
            .db
            .run(move |c| signin::revoke_api_token(c, &who.user, id, now))
            .await
            .map(|t| RevokeApiTokenPayload {
                api_token: ApiToken(t),
            })
    }
}

/// The person `setTwoStepRequired` changed.
#[derive(SimpleObject)]
pub struct SetTwoStepRequiredPayload {
    /// The person, as they are now.
    pub user: User,
}

/// The API token `revokeApiToken` revoked.
#[derive(SimpleObject)]
pub struct RevokeApiTokenPayload {
    /// The token, which no longer works and no longer appears in `apiTokens`.
    pub api_token: ApiToken,
}

/// The one password check of a sign-in, shared by `login` and by accepting an invite with an existing
/// account (the mutation and the page), so that guessing through one spends the budget of the other:
/// the per-address and per-account limits are counted before any work; a wrong password, an unknown
/// account and a deactivated one all answer `INVALID_CREDENTIALS` after the same argon2 work; a known
/// account's refusal is audited. What a correct password leads to is `signin::password_verified`'s.
pub async fn verify_password(
    st: &crate::state::AppState,
    client: &str,
    organization: &str,
    email: &str,
    password: String,
) -> AppResult<models::User> {
    st.limits.login_address.check(st, client).await?;
    let email = email.trim().to_lowercase();
    let (org, e) = (organization.to_string(), email.clone());
    let account = st
        .db
        .run(move |c| signin::find_account(c, &org, &e))
        .await?;
    let key = match &account {
        Some(u) => u.id.to_string(),
        None => format!("{}|{email}", organization.trim().to_lowercase()),
    };
    st.limits.login_account.check(st, &key).await?;
    let hash = account.as_ref().and_then(|u| u.password_hash.clone());
    let password_ok = st.passwords.verify(hash, password).await?;
    match account {
        Some(u) if password_ok && u.is_active() => Ok(u),
        Some(u) => {
            let now = st.clock.now();
            st.db
                .run(move |c| signin::record_failed_login(c, &u, now))
                .await?;
            Err(AppError::InvalidCredentials)
        }
        None => Err(AppError::InvalidCredentials),
    }
}

/// Resetting a password, shared by the mutation and the reset page: the new password is checked and
/// hashed off the database's thread, then set in one transaction that re-checks the link.
pub async fn reset_password(
    st: &crate::state::AppState,
    token: String,
    new_password: String,
) -> AppResult<()> {
    let (signer, now) = (st.signer.clone(), st.clock.now());
    let t = token.clone();
    let (_, user) = st
        .db
        .run(move |c| signin::open_reset(c, &signer, &t, now))
        .await?;
    check_strength(&new_password, &user.email).map_err(AppError::WeakPassword)?;
    let hash = st.passwords.hash(new_password).await?;
    let (signer, now) = (st.signer.clone(), st.clock.now());
    st.db
        .run(move |c| signin::reset_password(c, &signer, &token, &hash, now))
        .await?;
    Ok(())
}
