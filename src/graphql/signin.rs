//! Signing in and out: passwords, two-step codes, authenticator apps, password resets, sessions and
//! API tokens. Rate limits apply per client address and per account before any work is done.

use super::types::User;
use super::{caller, client_address, parse_id, state};
use crate::auth::password::check_strength;
use crate::error::{AppError, AppResult};
use crate::store::models;
use crate::store::signin::{self, LoginOutcome};
use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};

#[derive(InputObject)]
pub struct LoginInput {
    /// The organization's id or slug.
    pub organization: String,
    pub email: String,
    pub password: String,
}

/// Either `sessionToken` is set, or two-step verification applies and `challengeId` is: send the
/// emailed (or authenticator) code with `completeLogin`.
#[derive(SimpleObject, Default)]
pub struct LoginPayload {
    pub session_token: Option<String>,
    pub challenge_id: Option<ID>,
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
                challenge_method: Some(method.into()),
                ..Default::default()
            },
        }
    }
}

#[derive(InputObject)]
pub struct CompleteLoginInput {
    pub challenge_id: ID,
    /// The 6-digit code (emailed or from the authenticator app), or a recovery code.
    pub code: String,
}

#[derive(SimpleObject)]
pub struct SessionTokenPayload {
    pub session_token: String,
}

#[derive(InputObject)]
pub struct RequestPasswordResetInput {
    pub organization: String,
    pub email: String,
}

#[derive(InputObject)]
pub struct ResetPasswordInput {
    /// The token from the emailed link.
    pub token: String,
    pub new_password: String,
}

/// The same answer whatever happened, so it never tells whether an account exists.
#[derive(SimpleObject)]
pub struct DonePayload {
    pub ok: bool,
}

#[derive(InputObject)]
pub struct SetTwoStepRequiredInput {
    pub user_id: ID,
    pub required: bool,
}

#[derive(InputObject)]
pub struct CreateApiTokenInput {
    pub name: String,
    /// 1 to 365; no expiry when left out.
    pub expires_in_days: Option<i32>,
}

#[derive(SimpleObject)]
pub struct CreateApiTokenPayload {
    /// Shown once: only its hash is stored.
    pub token: String,
    pub api_token: ApiToken,
}

#[derive(SimpleObject)]
pub struct AuthenticatorEnrollment {
    /// The shared secret in base32, for typing into an app.
    pub secret: String,
    /// An `otpauth://` URL (render it as a QR code).
    pub otpauth_url: String,
}

#[derive(SimpleObject)]
pub struct RecoveryCodesPayload {
    /// Ten one-time codes for when the app is not at hand. Shown once.
    pub recovery_codes: Vec<String>,
}

/// A signed-in session of the caller.
pub struct SessionInfo {
    row: models::Session,
    current: bool,
}

#[Object(name = "Session")]
impl SessionInfo {
    async fn id(&self) -> ID {
        ID(self.row.id.to_string())
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.row.created_at
    }
    async fn last_seen_at(&self) -> DateTime<Utc> {
        self.row.last_seen_at
    }
    async fn expires_at(&self) -> DateTime<Utc> {
        self.row.expires_at
    }
    /// The session this request was made with.
    async fn current(&self) -> bool {
        self.current
    }
}

/// An API token of the caller (never the token itself).
pub struct ApiToken(models::ApiToken);

#[Object]
impl ApiToken {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn last_used_at(&self) -> Option<DateTime<Utc>> {
        self.0.last_used_at
    }
    async fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.0.expires_at
    }
}

#[derive(Default)]
pub struct SignInQuery;

#[Object]
impl SignInQuery {
    /// The caller's live sessions, newest first.
    async fn sessions(&self, ctx: &Context<'_>) -> AppResult<Vec<SessionInfo>> {
        let who = caller(ctx).await?;
        let now = state(ctx).clock.now();
        let uid = who.user.id;
        let rows = state(ctx)
            .db
            .run(move |c| signin::sessions(c, uid, now))
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| SessionInfo {
                current: who.session_id == Some(row.id),
                row,
            })
            .collect())
    }

    /// The caller's API tokens that are not revoked.
    async fn api_tokens(&self, ctx: &Context<'_>) -> AppResult<Vec<ApiToken>> {
        let uid = caller(ctx).await?.user.id;
        let rows = state(ctx)
            .db
            .run(move |c| signin::api_tokens(c, uid))
            .await?;
        Ok(rows.into_iter().map(ApiToken).collect())
    }
}

#[derive(Default)]
pub struct SignInMutation;

#[Object]
impl SignInMutation {
    /// Signs in with a password. A wrong password, an unknown account and a deactivated one all
    /// answer `INVALID_CREDENTIALS`, after the same password work.
    async fn login(&self, ctx: &Context<'_>, input: LoginInput) -> AppResult<LoginPayload> {
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
    /// after 5 wrong codes. Every failure answers `CODE_INVALID`.
    async fn complete_login(
        &self,
        ctx: &Context<'_>,
        input: CompleteLoginInput,
    ) -> AppResult<SessionTokenPayload> {
        let st = state(ctx);
        st.limits.code_address.check(&client_address(ctx))?;
        let id = parse_id(&input.challenge_id, "Challenge").map_err(|_| AppError::CodeInvalid)?;
        let (signer, lifetime, now) = (st.signer.clone(), st.session_lifetime(), st.clock.now());
        let token = st
            .db
            .run(move |c| signin::complete_challenge(c, &signer, id, &input.code, lifetime, now))
            .await?;
        Ok(SessionTokenPayload {
            session_token: token,
        })
    }

    /// Ends the session this request was made with.
    async fn logout(&self, ctx: &Context<'_>) -> AppResult<DonePayload> {
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
        Ok(DonePayload { ok: true })
    }

    /// Ends one of the caller's sessions.
    async fn revoke_session(&self, ctx: &Context<'_>, id: ID) -> AppResult<DonePayload> {
        let who = caller(ctx).await?;
        let id = parse_id(&id, "Session")?;
        let now = state(ctx).clock.now();
        state(ctx)
            .db
            .run(move |c| signin::revoke_session(c, &who.user, id, now))
            .await?;
        Ok(DonePayload { ok: true })
    }

    /// Requires (or stops requiring) an emailed code at every sign-in of a person (admins).
    async fn set_two_step_required(
        &self,
        ctx: &Context<'_>,
        input: SetTwoStepRequiredInput,
    ) -> AppResult<User> {
        let who = caller(ctx).await?;
        let id = parse_id(&input.user_id, "User")?;
        let now = state(ctx).clock.now();
        state(ctx)
            .db
            .run(move |c| signin::set_two_step_required(c, &who, id, input.required, now))
            .await
            .map(User::new)
    }

    /// Starts enrolling an authenticator app; confirm with its first code.
    async fn enroll_authenticator(&self, ctx: &Context<'_>) -> AppResult<AuthenticatorEnrollment> {
        let who = caller(ctx).await?;
        let now = state(ctx).clock.now();
        let (secret, otpauth_url) = state(ctx)
            .db
            .run(move |c| signin::begin_totp(c, &who.user, now))
            .await?;
        Ok(AuthenticatorEnrollment {
            secret,
            otpauth_url,
        })
    }

    /// Activates the authenticator app with a code from it; from then on sign-ins ask for its codes.
    async fn confirm_authenticator(
        &self,
        ctx: &Context<'_>,
        code: String,
    ) -> AppResult<RecoveryCodesPayload> {
        let who = caller(ctx).await?;
        let now = state(ctx).clock.now();
        let recovery_codes = state(ctx)
            .db
            .run(move |c| signin::confirm_totp(c, &who.user, &code, now))
            .await?;
        Ok(RecoveryCodesPayload { recovery_codes })
    }

    /// Removes the authenticator app, given one of its codes or a recovery code.
    async fn remove_authenticator(
        &self,
        ctx: &Context<'_>,
        code: String,
    ) -> AppResult<DonePayload> {
        let who = caller(ctx).await?;
        let now = state(ctx).clock.now();
        state(ctx)
            .db
            .run(move |c| signin::remove_totp(c, &who.user, &code, now))
            .await?;
        Ok(DonePayload { ok: true })
    }

    /// Emails a reset link valid for an hour when the account exists; answers the same either way.
    async fn request_password_reset(
        &self,
        ctx: &Context<'_>,
        input: RequestPasswordResetInput,
    ) -> AppResult<DonePayload> {
        let st = state(ctx);
        st.limits.reset_address.check(&client_address(ctx))?;
        let email = input.email.trim().to_lowercase();
        st.limits.reset_account.check(&format!(
            "{}|{email}",
            input.organization.trim().to_lowercase()
        ))?;
        let (policy, now) = (st.delivery.clone(), st.clock.now());
        st.db
            .run(move |c| {
                if let Some(user) = signin::find_account(c, &input.organization, &email)? {
                    signin::request_reset(c, &user, &policy, now)?;
                }
                Ok(())
            })
            .await?;
        Ok(DonePayload { ok: true })
    }

    /// Sets a new password with the emailed link's token (once); every session of the person ends.
    async fn reset_password(
        &self,
        ctx: &Context<'_>,
        input: ResetPasswordInput,
    ) -> AppResult<DonePayload> {
        let st = state(ctx);
        st.limits.reset_address.check(&client_address(ctx))?;
        reset_password(st, input.token, input.new_password).await?;
        Ok(DonePayload { ok: true })
    }

    /// Creates an API token acting as the caller; the token is shown once.
    async fn create_api_token(
        &self,
        ctx: &Context<'_>,
        input: CreateApiTokenInput,
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
    async fn revoke_api_token(&self, ctx: &Context<'_>, id: ID) -> AppResult<ApiToken> {
        let who = caller(ctx).await?;
        let id = parse_id(&id, "ApiToken")?;
        let now = state(ctx).clock.now();
        state(ctx)
            .db
            .run(move |c| signin::revoke_api_token(c, &who.user, id, now))
            .await
            .map(ApiToken)
    }
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
    st.limits.login_address.check(client)?;
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
    st.limits.login_account.check(&key)?;
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
