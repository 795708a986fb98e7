use super::signin::LoginPayload;
use super::types::*;
use super::{caller, parse_id, state};
use crate::domain::{ProductRole, text};
use crate::error::{AppError, AppResult};
use crate::store::directory::{self, SiteSettings};
use crate::store::invites::{self, Credential, NewInvites};
use crate::store::signin::LoginOutcome;
use crate::store::{content, models};
use async_graphql::{Context, ID, InputObject, Object, SimpleObject};

#[derive(Default)]
pub struct CoreMutation;

/// A new space on a site.
#[derive(InputObject)]
pub struct CreateSpaceInput {
    /// The site (global id): `NOT_FOUND` unless it is one of the caller's organization, `FORBIDDEN`
    /// unless the caller administers it or is a product admin there.
    pub site_id: ID,
    /// Upper-case letters and digits, starting with a letter (at most 32).
    pub key: String,
    /// The space's name: one line, 1 to 200 characters once trimmed (`INVALID_INPUT` otherwise).
    pub name: String,
}

/// A new page in a space.
#[derive(InputObject)]
pub struct CreatePageInput {
    /// The space (global id): one the caller reaches (a guest: their own space), `FORBIDDEN`
    /// otherwise; `NOT_FOUND` unless it is one of the caller's organization.
    pub space_id: ID,
    /// One line, 1 to 200 characters once trimmed (`INVALID_INPUT` otherwise).
    pub title: String,
    /// Plain text, at most 100,000 characters; line breaks are kept (stored as `\n`), other control
    /// characters are `INVALID_INPUT`. May be empty.
    pub body: String,
}

/// Who to invite to a site, and the access they get on accepting.
#[derive(InputObject)]
pub struct InviteUsersInput {
    /// The site (global id): `NOT_FOUND` unless it is one of the caller's organization, `FORBIDDEN`
    /// unless the caller administers it.
    pub site_id: ID,
    /// 1 to 10 addresses; duplicates (ignoring case) count once.
    pub emails: Vec<String>,
    /// The role accepting grants; may be left out when `groupIds` give a role on the site.
    pub role: Option<ProductRole>,
    /// Groups the invitee joins on acceptance; the seat checks use the role that results. As for
    /// `addGroupMembers`, a site admin may name only groups whose roles are all on sites they
    /// administer (`FORBIDDEN` otherwise), and accepting skips the groups the inviter can no longer add.
    #[graphql(default)]
    pub group_ids: Vec<ID>,
    /// For guests: the space they get on acceptance.
    pub space_id: Option<ID>,
    /// Plain text shown in the email, at most 1,000 characters; line breaks are kept.
    pub personal_message: Option<String>,
    /// Defaults to the site's `inviteExpiryDays`.
    pub expires_in_days: Option<i32>,
    /// For guests: the day their access ends (capped by the site's maximum lifetime)...
    pub access_ends_at: Option<chrono::DateTime<chrono::Utc>>,
    /// ...or how many days after accepting it ends.
    pub access_days: Option<i32>,
}

/// The invites `inviteUsers` created.
#[derive(SimpleObject)]
pub struct InviteUsersPayload {
    /// One pending invite per address, its email queued (see `emailDelivery`).
    pub invites: Vec<Invite>,
    /// The site's seats with the new invites pending.
    pub seat_usage: SeatUsage,
}

/// The space `createSpace` created.
#[derive(SimpleObject)]
pub struct CreateSpacePayload {
    /// The new space.
    pub space: Space,
}

/// The page `createPage` created.
#[derive(SimpleObject)]
pub struct CreatePagePayload {
    /// The new page.
    pub page: Page_,
}

/// The invite `resendInvite` renewed.
#[derive(SimpleObject)]
pub struct ResendInvitePayload {
    /// The invite, pending again with its new expiry and a new email queued (`emailDelivery`).
    pub invite: Invite,
}

/// The invite `revokeInvite` ended, and the seat it freed.
#[derive(SimpleObject)]
pub struct RevokeInvitePayload {
    /// The invite, now `REVOKED`.
    pub invite: Invite,
    /// The site's seats without it (one more `remainingSeats`, or `remainingGuestSlots` for a guest).
    pub seat_usage: SeatUsage,
}

/// Accepting an invitation: its token, and the account's name and password.
#[derive(InputObject)]
pub struct AcceptInviteInput {
    /// The token from the invitation link.
    pub token: String,
    /// Your name, for a new account (ignored for an existing one).
    pub display_name: Option<String>,
    /// A new password for a new account; the current password for an existing account.
    pub password: String,
}

/// The invite is accepted either way. For a new account, or an existing one without a second step,
/// `sessionToken` is set; for an existing account whose sign-in takes a second step (an emailed code or
/// the authenticator app), `challengeId` is, exactly as `login` answers: `completeLogin` gives the session.
#[derive(SimpleObject)]
pub struct AcceptInvitePayload {
    /// The account that accepted: the new one, or the existing account with the invited address.
    pub user: User,
    #[graphql(flatten)]
    pub sign_in: LoginPayload,
}

/// New limits for a site; a field left out keeps its current value.
#[derive(InputObject)]
pub struct UpdateSiteSettingsInput {
    /// The site (global id): `NOT_FOUND` unless it is one of the caller's organization, `FORBIDDEN`
    /// unless the caller administers it.
    pub site_id: ID,
    /// Seats: paid users plus guests (pending invites included) may never exceed it; 0 to 10,000,000
    /// (`INVALID_INPUT` otherwise).
    pub user_limit: Option<i32>,
    /// Guests allowed per paid user, 0 to 1,000 (`INVALID_INPUT` otherwise).
    pub guest_ratio: Option<i32>,
    /// Default lifetime of new invites, 1 to 90 days (`INVALID_INPUT` otherwise).
    pub invite_expiry_days: Option<i32>,
    /// Every guest's access ends at most this many days after it starts (null: no maximum).
    #[graphql(default)]
    pub max_guest_lifetime_days: async_graphql::MaybeUndefined<i32>,
    /// How many days before a guest's access ends the guest and their sponsor are reminded.
    pub guest_reminder_days: Option<i32>,
}

/// The site's new settings, and its seats under them.
#[derive(SimpleObject)]
pub struct UpdateSiteSettingsPayload {
    /// The site, with its new settings.
    pub site: Site,
    /// Seat usage under the new settings (negative `remainingSeats` when a lowered limit left the site
    /// over it).
    pub seat_usage: SeatUsage,
}

fn field(name: &str, r: Result<String, String>) -> AppResult<String> {
    r.map_err(|m| AppError::invalid(name, m))
}

#[Object]
impl CoreMutation {
    /// Creates a space (admins and product admins of the site).
    async fn create_space(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The site, the key and the name.")] input: CreateSpaceInput,
    ) -> AppResult<CreateSpacePayload> {
        let who = caller(ctx).await?;
        let site = parse_id(&input.site_id, "Site")?;
        let key = input.key.trim().to_string();
        if key.is_empty()
            || key.len() > 32
            || !key.starts_with(|c: char| c.is_ascii_uppercase())
            || !key
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        {
            return Err(AppError::invalid(
                "key",
                "use 1 to 32 upper-case letters and digits, starting with a letter",
            ));
        }
        let name = field("name", text::single_line(&input.name, 200))?;
        let now = state(ctx).clock.now();
        state(ctx)
            .db
            .run(move |c| content::create_space(c, &who, site, &key, &name, now))
            .await
            .map(|space| CreateSpacePayload {
                space: Space(space),
            })
    }

    /// Creates a page in a space the caller reaches (a guest: their own space).
    async fn create_page(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The space, the title and the body.")] input: CreatePageInput,
    ) -> AppResult<CreatePagePayload> {
        let who = caller(ctx).await?;
        let space = parse_id(&input.space_id, "Space")?;
        let title = field("title", text::single_line(&input.title, 200))?;
        let body = text::multi_line(&input.body, 100_000)
            .map_err(|m| AppError::invalid("body", m))?
            .unwrap_or_default();
        let now = state(ctx).clock.now();
        state(ctx)
            .db
            .run(move |c| content::create_page(c, &who, space, &title, &body, now))
            .await
            .map(|page| CreatePagePayload { page: Page_(page) })
    }

    /// Invites 1 to 10 people to a site, atomically; each gets one personalized email.
    async fn invite_users(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The site, the addresses and the access they get.")]
        input: InviteUsersInput,
    ) -> AppResult<InviteUsersPayload> {
        let who = caller(ctx).await?;
        let site_id = parse_id(&input.site_id, "Site")?;
        let space_id = input
            .space_id
            .as_ref()
            .map(|s| parse_id(s, "Space"))
            .transpose()?;
        let mut group_ids = input
            .group_ids
            .iter()
            .map(|g| parse_id(g, "Group"))
            .collect::<AppResult<Vec<_>>>()?;
        group_ids.sort();
        group_ids.dedup();
        let st = state(ctx);
        let now = st.clock.now();
        let policy = st.delivery.clone();
        let (rows, usage) = st
            .db
            .run(move |c| {
                // Precedence: NOT_FOUND, FORBIDDEN, then input errors, then the rules.
                let a = crate::store::access::site_access(c, &who, site_id)?;
                if let Some(space) = space_id {
                    let s = content::space_in_org(c, who.user.organization_id, space)?;
                    if s.site_id != site_id {
                        return Err(AppError::NotFound("Space"));
                    }
                }
                for g in &group_ids {
                    crate::store::groups::group_in_org(c, who.user.organization_id, *g)?;
                }
                a.require_admin()?;
                let emails = crate::domain::invites::parse_batch(&input.emails)?;
                let terms = crate::domain::invites::Terms {
                    personal_message: input.personal_message.as_deref(),
                    access_ends_at: input.access_ends_at,
                    access_days: input.access_days,
                    expires_in_days: input.expires_in_days,
                };
                let personal_message = crate::domain::invites::check_terms(&terms, now)?;
                let rows = invites::invite_users(
                    c,
                    &who,
                    NewInvites {
                        site_id,
                        emails,
                        role: input.role,
                        group_ids,
                        space_id,
                        personal_message,
                        expires_in_days: input.expires_in_days,
                        access_ends_at: input.access_ends_at,
                        access_days: input.access_days,
                    },
                    &policy,
                    now,
                )?;
                let usage = directory::seat_usage(c, &a.site, now)?;
                Ok((rows, usage))
            })
            .await?;
        Ok(InviteUsersPayload {
            invites: rows.into_iter().map(Invite).collect(),
            seat_usage: SeatUsage::new(site_id, usage),
        })
    }

    /// Issues a new link (the old one stops working), renews the expiry and sends a fresh email.
    async fn resend_invite(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "The invite (global id): a pending or expired one (`INVALID_INPUT` otherwise). `NOT_FOUND` unless it is one of the caller's organization, `FORBIDDEN` unless the caller administers its site."
        )]
        id: ID,
    ) -> AppResult<ResendInvitePayload> {
        let who = caller(ctx).await?;
        let id = parse_id(&id, "Invite")?;
        let st = state(ctx);
        let (now, policy) = (st.clock.now(), st.delivery.clone());
        st.db
            .run(move |c| invites::resend(c, &who, id, &policy, now))
            .await
            .map(|invite| ResendInvitePayload {
                invite: Invite(invite),
            })
    }

    /// Ends a pending invite; its link stops working and its seat is freed.
    async fn revoke_invite(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "The invite (global id): a pending or expired one (`INVALID_INPUT` otherwise). `NOT_FOUND` unless it is one of the caller's organization, `FORBIDDEN` unless the caller administers its site."
        )]
        id: ID,
    ) -> AppResult<RevokeInvitePayload> {
        let who = caller(ctx).await?;
        let id = parse_id(&id, "Invite")?;
        let now = state(ctx).clock.now();
        let (invite, usage) = state(ctx)
            .db
            .run(move |c| {
                let invite = invites::revoke(c, &who, id, now)?;
                let site =
                    crate::store::access::site_in_org(c, who.user.organization_id, invite.site_id)?;
                let usage = directory::seat_usage(c, &site, now)?;
                Ok((invite, usage))
            })
            .await?;
        Ok(RevokeInvitePayload {
            seat_usage: SeatUsage::new(invite.site_id, usage),
            invite: Invite(invite),
        })
    }

    /// Accepts an invite (no sign-in needed: the token is the proof) and signs the person in: a new
    /// account at once; an existing account through the same steps as `login` (its password check and
    /// limits, then a session or a two-step challenge).
    async fn accept_invite(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The token from the link, and the account's name and password.")]
        input: AcceptInviteInput,
    ) -> AppResult<AcceptInvitePayload> {
        let st = state(ctx);
        let client = super::client_address(ctx);
        st.limits.accept_address.check(st, &client).await?;
        let (user, signed_in) = accept(
            st,
            &client,
            input.token,
            input.display_name,
            input.password,
            true,
        )
        .await?;
        let sign_in = signed_in
            .ok_or_else(|| AppError::internal("an accept asked to sign in started nothing"))?;
        Ok(AcceptInvitePayload {
            user: User::signed_in(user),
            sign_in: sign_in.into(),
        })
    }

    /// Changes a site's limits. Never refused for usage: a lower limit leaves the site over it.
    async fn update_site_settings(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The site, and the settings to change.")] input: UpdateSiteSettingsInput,
    ) -> AppResult<UpdateSiteSettingsPayload> {
        let who = caller(ctx).await?;
        let site_id = parse_id(&input.site_id, "Site")?;
        let now = state(ctx).clock.now();
        let (site, usage) = state(ctx)
            .db
            .run(move |c| {
                let site = directory::update_settings(
                    c,
                    &who,
                    site_id,
                    SiteSettings {
                        user_limit: input.user_limit,
                        guest_ratio: input.guest_ratio,
                        invite_expiry_days: input.invite_expiry_days,
                        max_guest_lifetime_days: match input.max_guest_lifetime_days {
                            async_graphql::MaybeUndefined::Undefined => None,
                            async_graphql::MaybeUndefined::Null => Some(None),
                            async_graphql::MaybeUndefined::Value(v) => Some(Some(v)),
                        },
                        guest_reminder_days: input.guest_reminder_days,
                    },
                    now,
                )?;
                let usage = directory::seat_usage(c, &site, now)?;
                Ok((site, usage))
            })
            .await?;
        Ok(UpdateSiteSettingsPayload {
            site: Site(site),
            seat_usage: SeatUsage::new(site_id, usage),
        })
    }
}

/// Accepting an invite, shared by the mutation and the accept page: the password work (argon2) runs
/// on its own bounded pool before the transaction, which then re-checks everything under the site lock.
/// An existing account's password goes through `login`'s own check (`verify_password`: the same
/// limits for this client and this account, the same answers). With `sign_in` the person is then
/// signed in as `login` would (see `invites::accept`); without it (the page) nothing is started.
pub async fn accept(
    st: &crate::state::AppState,
    client: &str,
    token: String,
    display_name: Option<String>,
    password: String,
    sign_in: bool,
) -> AppResult<(models::User, Option<LoginOutcome>)> {
    let now = st.clock.now();
    let signer = st.signer.clone();
    let t = token.clone();
    let open = st
        .db
        .run(move |c| invites::open(c, &signer, &t, now))
        .await?;
    let credential = match open.existing_account {
        Some(account) if account.password_hash.is_some() => {
            let user = super::signin::verify_password(
                st,
                client,
                &account.organization_id.to_string(),
                &account.email_normalized,
                password,
            )
            .await?;
            Credential::ExistingAccount {
                user_id: user.id,
                set_password_hash: None,
            }
        }
        Some(account) => {
            crate::auth::password::check_strength(&password, &account.email)
                .map_err(AppError::WeakPassword)?;
            Credential::ExistingAccount {
                user_id: account.id,
                set_password_hash: Some(st.passwords.hash(password).await?),
            }
        }
        None => {
            let name = text::single_line(display_name.as_deref().unwrap_or(""), 200)
                .map_err(|m| AppError::invalid("displayName", m))?;
            crate::auth::password::check_strength(&password, &open.invite.email)
                .map_err(AppError::WeakPassword)?;
            Credential::NewAccount {
                display_name: name,
                password_hash: st.passwords.hash(password).await?,
            }
        }
    };
    let signer = st.signer.clone();
    let (lifetime, policy) = (st.session_lifetime(), st.delivery.clone());
    let now = st.clock.now();
    st.db
        .run(move |c| {
            let sign_in = sign_in.then_some(invites::SignIn {
                session_lifetime: lifetime,
                policy: &policy,
            });
            invites::accept(c, &signer, &token, credential, sign_in, now)
        })
        .await
}
