//! Invites: creating batches under the seat rules, resending, revoking, accepting; and each invite's
//! email delivery rows, enqueued in the same transaction.

use crate::auth::tokens::{LinkPurpose, LinkSigner, random_nonce};
use crate::db::schema::*;
use crate::domain::access as rules;
use crate::domain::seats;
use crate::domain::{EmailAddress, ProductRole};
use crate::error::{AddressError, AppError, AppResult, ErrorCode};
use crate::store::access::{self, Caller};
use crate::store::audit::{self, Audit};
use crate::store::changes::{self, Reach};
use crate::store::models::{EmailDelivery, Invite, NewUser, Site, User};
use crate::store::signin::{self, LoginOutcome};
use crate::store::{org, queue};
use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use serde_json::json;
use uuid::Uuid;

pub const MAX_BATCH: usize = 10;
pub const MAX_MESSAGE_CHARS: usize = 1000;

/// Settings the store needs from configuration.
#[derive(Clone, Debug)]
pub struct DeliveryPolicy {
    /// How long transient failures are retried (capped by the invite's expiry).
    pub retry_for: Duration,
    /// The host part of `Message-ID`s.
    pub message_id_domain: String,
    /// Invites one admin may create in 24 hours.
    pub invites_per_admin_per_day: i64,
    /// How soon the same address may be sent another invite email.
    pub recipient_cooldown: Duration,
}

/// A validated `inviteUsers` request.
#[derive(Clone, Debug)]
pub struct NewInvites {
    pub site_id: Uuid,
    pub emails: Vec<EmailAddress>,
    /// The direct role accepting grants; may be left out when the groups give one on the site.
    pub role: Option<ProductRole>,
    /// Groups the invitee joins on acceptance.
    pub group_ids: Vec<Uuid>,
    pub space_id: Option<Uuid>,
    pub personal_message: Option<String>,
    pub expires_in_days: Option<i32>,
    /// For guests: when their access ends (a date), or...
    pub access_ends_at: Option<DateTime<Utc>>,
    /// ...how many days after accepting.
    pub access_days: Option<i32>,
}

/// Parses and de-duplicates the addresses of a batch: `TOO_MANY_INVITES` first, then every invalid one.
pub fn parse_batch(raw: &[String]) -> AppResult<Vec<EmailAddress>> {
    let mut seen = std::collections::HashSet::new();
    let mut unique: Vec<&str> = Vec::new();
    for e in raw {
        let key = e.trim().to_lowercase();
        if seen.insert(key) {
            unique.push(e.as_str());
        }
    }
    if unique.len() > MAX_BATCH {
        return Err(AppError::TooManyInvites { max: MAX_BATCH });
    }
    if unique.is_empty() {
        return Err(AppError::invalid("emails", "give at least one address"));
    }
    let mut ok = Vec::new();
    let mut bad = Vec::new();
    for e in unique {
        match EmailAddress::parse(e) {
            Ok(a) => ok.push(a),
            Err(_) => bad.push(AddressError {
                email: e.chars().take(254).collect(),
                code: ErrorCode::InvalidEmail,
            }),
        }
    }
    if !bad.is_empty() {
        return Err(AppError::Addresses(bad));
    }
    Ok(ok)
}

fn message_id(policy: &DeliveryPolicy, invite: Uuid, nonce: &[u8]) -> String {
    format!(
        "<invite.{}.{}@{}>",
        invite.simple(),
        hex::encode(nonce),
        policy.message_id_domain
    )
}

fn rate_limited(wait: Duration) -> AppError {
    AppError::RateLimited {
        retry_after_seconds: wait.num_seconds().max(1) as u64,
    }
}

/// Refuses a batch that would take the admin past their daily invite cap.
fn check_daily_cap(
    conn: &mut PgConnection,
    admin: Uuid,
    adding: i64,
    policy: &DeliveryPolicy,
    now: DateTime<Utc>,
) -> AppResult<()> {
    let since = now - crate::domain::bulk::CAP_WINDOW;
    let recent: i64 = invites::table
        .filter(invites::invited_by.eq(admin))
        .filter(invites::created_at.gt(since))
        .count()
        .get_result(conn)?;
    let over = recent + adding - policy.invites_per_admin_per_day;
    if over > 0 {
        // Room appears as the oldest invites of the window age out: the `over`-th oldest decides.
        let frees: Option<DateTime<Utc>> = invites::table
            .filter(invites::invited_by.eq(admin))
            .filter(invites::created_at.gt(since))
            .order(invites::created_at.asc())
            .offset(over - 1)
            .select(invites::created_at)
            .first(conn)
            .optional()?;
        let window = crate::domain::bulk::CAP_WINDOW;
        let wait = frees.map_or(window, |t| t + window - now);
        return Err(rate_limited(wait));
    }
    Ok(())
}

/// When the invites that count against an admin's daily cap now were made, oldest first (what
/// [`check_daily_cap`] counts; bulk files pace themselves with it).
pub(crate) fn daily_cap_window(
    conn: &mut PgConnection,
    admin: Uuid,
    now: DateTime<Utc>,
) -> AppResult<Vec<DateTime<Utc>>> {
    Ok(invites::table
        .filter(invites::invited_by.eq(admin))
        .filter(invites::created_at.gt(now - crate::domain::bulk::CAP_WINDOW))
        .order(invites::created_at.asc())
        .select(invites::created_at)
        .load(conn)?)
}

/// Refuses to email an address again within the cooldown (the newest email to it decides).
fn check_cooldown(
    conn: &mut PgConnection,
    recipients: &[&str],
    policy: &DeliveryPolicy,
    now: DateTime<Utc>,
) -> AppResult<()> {
    if policy.recipient_cooldown <= Duration::zero() {
        return Ok(());
    }
    let lowered: Vec<String> = recipients.iter().map(|r| r.to_lowercase()).collect();
    let latest: Option<DateTime<Utc>> = email_deliveries::table
        .filter(diesel::dsl::sql::<diesel::sql_types::Text>("lower(recipient)").eq_any(&lowered))
        .filter(email_deliveries::kind.eq("INVITE"))
        .filter(email_deliveries::created_at.gt(now - policy.recipient_cooldown))
        .select(diesel::dsl::max(email_deliveries::created_at))
        .first(conn)?;
    match latest {
        Some(t) => Err(rate_limited(t + policy.recipient_cooldown - now)),
        None => Ok(()),
    }
}

/// Closes pending invites of a site whose expiry has passed, so they stop blocking new invites and
/// free the seats they held (the engine's closing).
fn close_expired(conn: &mut PgConnection, site_id: Uuid, now: DateTime<Utc>) -> AppResult<()> {
    changes::state::close_expired(conn, site_id, now)
}

/// Inserts the email delivery rows for these invites' current tokens and their jobs: three
/// statements however many invites.
fn queue_invite_emails(
    conn: &mut PgConnection,
    invites: &[Invite],
    org_id: Uuid,
    policy: &DeliveryPolicy,
    now: DateTime<Utc>,
) -> AppResult<()> {
    if invites.is_empty() {
        return Ok(());
    }
    let rows: Vec<_> = invites
        .iter()
        .map(|invite| {
            (
                email_deliveries::organization_id.eq(org_id),
                email_deliveries::kind.eq("INVITE"),
                email_deliveries::invite_id.eq(invite.id),
                email_deliveries::token_nonce.eq(&invite.token_nonce),
                email_deliveries::recipient.eq(&invite.email),
                email_deliveries::status.eq("QUEUED"),
                email_deliveries::message_id.eq(message_id(policy, invite.id, &invite.token_nonce)),
                email_deliveries::created_at.eq(now),
                email_deliveries::give_up_at.eq((now + policy.retry_for).min(invite.expires_at)),
            )
        })
        .collect();
    let ids: Vec<Uuid> = diesel::insert_into(email_deliveries::table)
        .values(&rows)
        .returning(email_deliveries::id)
        .get_results(conn)?;
    queue::enqueue_emails(conn, &ids)
}

/// Stops deliveries that were waiting to send these invites' current tokens.
pub fn cancel_waiting_deliveries(conn: &mut PgConnection, invite_ids: &[Uuid]) -> AppResult<()> {
    diesel::update(
        email_deliveries::table
            .filter(email_deliveries::invite_id.eq_any(invite_ids))
            .filter(email_deliveries::status.eq_any(["QUEUED", "RETRYING"])),
    )
    .set((
        email_deliveries::status.eq("CANCELLED"),
        email_deliveries::next_attempt_at.eq(None::<DateTime<Utc>>),
    ))
    .execute(conn)?;
    Ok(())
}

fn invite_json(i: &Invite, now: DateTime<Utc>) -> serde_json::Value {
    json!({
        "email": i.email,
        "role": i.role(),
        "space": i.space_id,
        "status": i.status_at(now).as_str(),
        "expiresAt": i.expires_at,
    })
}

/// Creates a batch of invites atomically, after checking who may, the addresses and the seat rules.
pub fn invite_users(
    conn: &mut PgConnection,
    caller: &Caller,
    req: NewInvites,
    policy: &DeliveryPolicy,
    now: DateTime<Utc>,
) -> AppResult<Vec<Invite>> {
    conn.transaction(|conn| {
        let reach = if req.group_ids.is_empty() {
            Reach::OneSite
        } else {
            Reach::Organization
        };
        let known: i64 = if req.group_ids.is_empty() {
            0
        } else {
            groups::table
                .filter(groups::id.eq_any(&req.group_ids))
                .filter(groups::organization_id.eq(caller.user.organization_id))
                .count()
                .get_result(conn)?
        };
        if known as usize != req.group_ids.len() {
            return Err(AppError::NotFound("Group"));
        }
        changes::lock_org(conn, caller.user.organization_id, reach)?;
        // Accepting joins the groups, which grants their roles on every site they reach: the caller
        // must be one who could add the members themselves (the rule of `addGroupMembers`).
        for g in &req.group_ids {
            crate::store::groups::require_manage(conn, caller, *g)?;
        }
        let site = access::lock_site(conn, req.site_id)?;
        close_expired(conn, site.id, now)?;
        let days = req.expires_in_days.unwrap_or(site.invite_expiry_days);
        let normalized: Vec<&str> = req.emails.iter().map(|e| e.normalized()).collect();
        let Some(granted) = granted_role(conn, site.id, req.role, &req.group_ids)? else {
            return Err(AppError::invalid(
                "role",
                "give a role, or groups that hold a role on this site",
            ));
        };
        if req.space_id.is_some() && granted != ProductRole::Guest {
            return Err(AppError::invalid(
                "spaceId",
                "only guests are invited to a space",
            ));
        }
        if (req.access_ends_at.is_some() || req.access_days.is_some())
            && granted != ProductRole::Guest
        {
            return Err(AppError::invalid(
                "accessEndsAt",
                "only guests' access has an end",
            ));
        }

        // Per-address refusals, each address with its own (first applicable) code.
        let existing: Vec<User> = users::table
            .filter(users::organization_id.eq(site.organization_id))
            .filter(users::email_normalized.eq_any(&normalized))
            .select(User::as_select())
            .load(conn)?;
        let pending: Vec<String> = invites::table
            .filter(invites::site_id.eq(site.id))
            .filter(invites::status.eq("PENDING"))
            .filter(invites::email_normalized.eq_any(&normalized))
            .select(invites::email_normalized)
            .load(conn)?;
        let mut problems = Vec::new();
        for email in &req.emails {
            let user = existing
                .iter()
                .find(|u| u.email_normalized == email.normalized());
            let code = if let Some(u) = user {
                if access::effective_role_of(conn, site.id, u.id)?.is_some() {
                    Some(ErrorCode::AlreadyHasAccess)
                } else if pending.iter().any(|p| p == email.normalized()) {
                    Some(ErrorCode::InvitePending)
                } else if granted == ProductRole::Guest
                    && access::is_former_paid(conn, site.id, u.id)?
                {
                    Some(ErrorCode::PaidUserCannotBeGuest)
                } else {
                    None
                }
            } else if pending.iter().any(|p| p == email.normalized()) {
                Some(ErrorCode::InvitePending)
            } else {
                None
            };
            if let Some(code) = code {
                problems.push(AddressError {
                    email: email.as_str().to_string(),
                    code,
                });
            }
        }
        if granted == ProductRole::Guest {
            let (mode, patterns) = crate::store::domain_rules::rules(conn, site.organization_id)?;
            for email in &req.emails {
                if !crate::store::domain_rules::allows(mode, &patterns, email.domain())
                    && !problems.iter().any(|p| p.email == email.as_str())
                {
                    problems.push(AddressError {
                        email: email.as_str().to_string(),
                        code: ErrorCode::DomainNotAllowed,
                    });
                }
            }
        }
        if !problems.is_empty() {
            return Err(AppError::Addresses(problems));
        }

        check_daily_cap(conn, caller.user.id, req.emails.len() as i64, policy, now)?;
        check_cooldown(conn, &normalized, policy, now)?;
        let before = access::counts(conn, site.id, now)?;
        let added = rules::new_invites_delta(granted, req.emails.len() as i64);
        let after = rules::add(before, added);
        seats::check_change(site.limits(), before, after)?;

        let rows: Vec<changes::grants::NewInvite> = req
            .emails
            .iter()
            .map(|email| changes::grants::NewInvite {
                site_id: site.id,
                email: email.as_str(),
                email_normalized: email.normalized(),
                role: req.role.map(ProductRole::rank),
                space_id: req.space_id,
                personal_message: req.personal_message.as_deref(),
                invited_by: caller.user.id,
                token_nonce: random_nonce().to_vec(),
                status: "PENDING",
                created_at: now,
                expires_at: now + Duration::days(days.into()),
                access_ends_at: req.access_ends_at,
                access_days: req.access_days,
            })
            .collect();
        let created = changes::grants::create_invites(conn, &rows, &req.group_ids)?;
        let ids: Vec<Uuid> = created.iter().map(|i| i.id).collect();
        changes::state::refresh_invites(conn, &ids)?;
        queue_invite_emails(conn, &created, site.organization_id, policy, now)?;
        let events = created
            .iter()
            .map(|invite| Audit {
                organization_id: site.organization_id,
                actor_id: Some(caller.user.id),
                action: "invite.create",
                target_type: "invite",
                target_id: invite.id.to_string(),
                site_id: Some(site.id),
                before: None,
                after: Some(invite_json(invite, now)),
                created_at: now,
            })
            .collect();
        audit::record_all(conn, events)?;
        Ok(created)
    })
}

/// An invite of the caller's organization with the caller's standing on its site; admins only.
fn invite_for_admin(
    conn: &mut PgConnection,
    caller: &Caller,
    id: Uuid,
) -> AppResult<(Invite, Site)> {
    let invite: Invite = invites::table
        .inner_join(sites::table)
        .filter(invites::id.eq(id))
        .filter(sites::organization_id.eq(caller.user.organization_id))
        .select(Invite::as_select())
        .first(conn)
        .optional()?
        .ok_or(AppError::NotFound("Invite"))?;
    let a = access::site_access(conn, caller, invite.site_id)?;
    a.require_admin()?;
    Ok((invite, a.site))
}

/// Issues a new token (the old link stops working), renews the expiry and queues a fresh email.
pub fn resend(
    conn: &mut PgConnection,
    caller: &Caller,
    id: Uuid,
    policy: &DeliveryPolicy,
    now: DateTime<Utc>,
) -> AppResult<Invite> {
    let (_, site) = invite_for_admin(conn, caller, id)?;
    conn.transaction(|conn| {
        changes::lock_org(conn, site.organization_id, Reach::OneSite)?;
        let site = access::lock_site(conn, site.id)?;
        close_expired(conn, site.id, now)?;
        let old: Invite = invites::table
            .find(id)
            .for_update()
            .select(Invite::as_select())
            .first(conn)?;
        match old.status_at(now) {
            crate::store::models::InviteStatus::Pending => {}
            crate::store::models::InviteStatus::Expired => {
                // An expired invite holds no seat: renewing it takes one again.
                let before = access::counts(conn, site.id, now)?;
                let mut after = before;
                if pending_role(conn, &old)?.is_some_and(ProductRole::is_paid) {
                    after.pending_paid += 1;
                } else {
                    after.pending_guests += 1;
                }
                seats::check_change(site.limits(), before, after)?;
                let taken: bool = diesel::select(diesel::dsl::exists(
                    invites::table
                        .filter(invites::site_id.eq(site.id))
                        .filter(invites::status.eq("PENDING"))
                        .filter(invites::email_normalized.eq(&old.email_normalized)),
                ))
                .get_result(conn)?;
                if taken {
                    return Err(AppError::Addresses(vec![AddressError {
                        email: old.email.clone(),
                        code: ErrorCode::InvitePending,
                    }]));
                }
            }
            _ => {
                return Err(AppError::invalid(
                    "id",
                    "only pending or expired invites can be resent",
                ));
            }
        }
        check_cooldown(conn, &[old.email_normalized.as_str()], policy, now)?;
        cancel_waiting_deliveries(conn, &[id])?;
        let invite = changes::grants::renew_invite(
            conn,
            id,
            random_nonce().to_vec(),
            now + Duration::days(site.invite_expiry_days.into()),
        )?;
        changes::state::refresh_invites(conn, &[id])?;
        queue_invite_emails(
            conn,
            std::slice::from_ref(&invite),
            site.organization_id,
            policy,
            now,
        )?;
        audit::record(
            conn,
            Audit {
                organization_id: site.organization_id,
                actor_id: Some(caller.user.id),
                action: "invite.resend",
                target_type: "invite",
                target_id: id.to_string(),
                site_id: Some(site.id),
                before: Some(invite_json(&old, now)),
                after: Some(invite_json(&invite, now)),
                created_at: now,
            },
        )?;
        Ok(invite)
    })
}

/// Ends an invite; never refused for seat reasons (it only frees a seat).
pub fn revoke(
    conn: &mut PgConnection,
    caller: &Caller,
    id: Uuid,
    now: DateTime<Utc>,
) -> AppResult<Invite> {
    let (_, site) = invite_for_admin(conn, caller, id)?;
    conn.transaction(|conn| {
        let old: Invite = invites::table
            .find(id)
            .for_update()
            .select(Invite::as_select())
            .first(conn)?;
        if !matches!(old.status.as_str(), "PENDING" | "EXPIRED") {
            return Err(AppError::invalid(
                "id",
                "only pending invites can be revoked",
            ));
        }
        cancel_waiting_deliveries(conn, &[id])?;
        let invite = changes::grants::revoke_invite(conn, id, now)?;
        changes::state::refresh_invites(conn, &[id])?;
        audit::record(
            conn,
            Audit {
                organization_id: site.organization_id,
                actor_id: Some(caller.user.id),
                action: "invite.revoke",
                target_type: "invite",
                target_id: id.to_string(),
                site_id: Some(site.id),
                before: Some(invite_json(&old, now)),
                after: Some(invite_json(&invite, now)),
                created_at: now,
            },
        )?;
        Ok(invite)
    })
}

/// A pending invite named by a link token, with what the accept page shows.
#[derive(Clone, Debug)]
pub struct OpenInvite {
    pub invite: Invite,
    pub site: Site,
    pub organization: crate::store::models::Organization,
    pub inviter: User,
    pub space: Option<crate::store::models::Space>,
    /// The organization's account with this address, when there is one (accepting then asks for
    /// its current password).
    pub existing_account: Option<User>,
}

/// Resolves a link token to its pending invite; unknown, expired, revoked, used and superseded
/// tokens are all `INVITE_INVALID`.
pub fn open(
    conn: &mut PgConnection,
    signer: &LinkSigner,
    token: &str,
    now: DateTime<Utc>,
) -> AppResult<OpenInvite> {
    let (id, tag) = LinkSigner::parse(LinkPurpose::Invite, token).ok_or(AppError::InviteInvalid)?;
    let invite: Invite = invites::table
        .find(id)
        .select(Invite::as_select())
        .first(conn)
        .optional()?
        .ok_or(AppError::InviteInvalid)?;
    if !signer.verify(LinkPurpose::Invite, id, &invite.token_nonce, &tag)
        || invite.status_at(now) != crate::store::models::InviteStatus::Pending
    {
        return Err(AppError::InviteInvalid);
    }
    let site: Site = sites::table
        .find(invite.site_id)
        .select(Site::as_select())
        .first(conn)?;
    let organization = org::organization(conn, site.organization_id)?;
    let inviter: User = users::table
        .find(invite.invited_by)
        .select(User::as_select())
        .first(conn)?;
    let space = match invite.space_id {
        Some(s) => spaces::table
            .find(s)
            .select(crate::store::models::Space::as_select())
            .first(conn)
            .optional()?,
        None => None,
    };
    let existing_account = users::table
        .filter(users::organization_id.eq(site.organization_id))
        .filter(users::email_normalized.eq(&invite.email_normalized))
        .select(User::as_select())
        .first(conn)
        .optional()?;
    Ok(OpenInvite {
        invite,
        site,
        organization,
        inviter,
        space,
        existing_account,
    })
}

/// How the accepting person proves who they are: a new password for a new account (already hashed,
/// off the database's thread), or the existing account's password, already verified.
pub enum Credential {
    NewAccount {
        display_name: String,
        password_hash: String,
    },
    /// `set_password_hash` is given only when the account has no password yet (e.g. a bootstrapped admin).
    ExistingAccount {
        user_id: Uuid,
        set_password_hash: Option<String>,
    },
}

/// Signing the person in once the invite is accepted (the API); without it (the accept page, which
/// has no way to hand a session over) nothing is started and the person signs in as usual.
pub struct SignIn<'a> {
    pub session_lifetime: Duration,
    /// For the emailed code, when two-step verification applies.
    pub policy: &'a DeliveryPolicy,
}

/// The role an invite grants on its site: its own role or the best role its groups hold there,
/// whichever is higher (`None`: neither gives one).
fn granted_role(
    conn: &mut PgConnection,
    site_id: Uuid,
    own: Option<ProductRole>,
    groups: &[Uuid],
) -> AppResult<Option<ProductRole>> {
    if groups.is_empty() {
        return Ok(own);
    }
    let best_group: Option<i16> = group_site_roles::table
        .filter(group_site_roles::group_id.eq_any(groups))
        .filter(group_site_roles::site_id.eq(site_id))
        .select(diesel::dsl::max(group_site_roles::role))
        .first(conn)?;
    Ok(own
        .into_iter()
        .chain(best_group.and_then(ProductRole::from_rank))
        .max())
}

fn invite_group_ids(conn: &mut PgConnection, invite: Uuid) -> AppResult<Vec<Uuid>> {
    Ok(invite_groups::table
        .filter(invite_groups::invite_id.eq(invite))
        .select(invite_groups::group_id)
        .load(conn)?)
}

/// The role an open invite would grant on its site (what the seat counts hold for it).
fn pending_role(conn: &mut PgConnection, invite: &Invite) -> AppResult<Option<ProductRole>> {
    let groups = invite_group_ids(conn, invite.id)?;
    granted_role(conn, invite.site_id, invite.role(), &groups)
}

/// Accepts an invite: re-checks the token and the seat rules on every site the grant reaches (as if
/// the invite were made now), creates the account (or adds the grants to the existing one), and, when
/// asked to, signs the person in.
///
/// Signing in an existing account goes through login's own step after the password
/// (`signin::password_verified`): a session only when no second step applies, otherwise the same
/// challenge `login` answers (an emailed code or the authenticator app), which `completeLogin`
/// completes. The invite itself is accepted now, in this transaction, so it stays single-use and its
/// grant never waits on a challenge that may be abandoned; the session is what waits, so a password
/// alone never yields one for an account that has a second step. A new account gets its session at
/// once: it has no second factor yet, and following the emailed link just proved the address.
///
/// Joining a group grants its roles on every site it reaches, and the group may have gained roles, or
/// the inviter lost rights, since the invite was made. So the invite's groups are re-checked with the
/// rule of `addGroupMembers` as the inviter stands now: only the memberships the inviter could still
/// add are added. The others are skipped, not refused, so the person still gets the invite's own role
/// on its site, and the `invite.accept` audit event lists them under `groupsSkipped`.
pub fn accept(
    conn: &mut PgConnection,
    signer: &LinkSigner,
    token: &str,
    credential: Credential,
    sign_in: Option<SignIn<'_>>,
    now: DateTime<Utc>,
) -> AppResult<(User, Option<LoginOutcome>)> {
    let (id, tag) = LinkSigner::parse(LinkPurpose::Invite, token).ok_or(AppError::InviteInvalid)?;
    let site_id: Uuid = invites::table
        .find(id)
        .select(invites::site_id)
        .first(conn)
        .optional()?
        .ok_or(AppError::InviteInvalid)?;
    conn.transaction(|conn| {
        let org: Uuid = sites::table
            .find(site_id)
            .select(sites::organization_id)
            .first(conn)?;
        let groups = invite_group_ids(conn, id)?;
        let reach = if groups.is_empty() {
            Reach::OneSite
        } else {
            Reach::Organization
        };
        changes::lock_org(conn, org, reach)?;
        let mut site_ids: Vec<Uuid> = group_site_roles::table
            .filter(group_site_roles::group_id.eq_any(&groups))
            .select(group_site_roles::site_id)
            .load(conn)?;
        site_ids.push(site_id);
        let sites = changes::lock_sites(conn, &site_ids)?;
        let site = sites
            .iter()
            .find(|s| s.id == site_id)
            .cloned()
            .ok_or(AppError::InviteInvalid)?;
        let invite: Invite = invites::table
            .find(id)
            .for_update()
            .select(Invite::as_select())
            .first(conn)?;
        if !signer.verify(LinkPurpose::Invite, id, &invite.token_nonce, &tag)
            || invite.status_at(now) != crate::store::models::InviteStatus::Pending
        {
            return Err(AppError::InviteInvalid);
        }
        // What the seat counts hold for the invite (discounted below), and what accepting grants.
        let granted = granted_role(conn, site.id, invite.role(), &groups)?;
        let inviter = access::acting_as(conn, invite.invited_by)?;
        let (mut joining, mut skipped) = (Vec::new(), Vec::new());
        for g in &groups {
            let may = match &inviter {
                Some(c) => crate::store::groups::may_manage(conn, c, *g)?,
                None => false,
            };
            if may {
                joining.push(*g);
            } else {
                skipped.push(*g);
            }
        }
        let granting = granted_role(conn, site.id, invite.role(), &joining)?;

        let existing = matches!(credential, Credential::ExistingAccount { .. });
        let user: User = match credential {
            Credential::ExistingAccount {
                user_id,
                set_password_hash,
            } => {
                let u: User = users::table
                    .find(user_id)
                    .select(User::as_select())
                    .first(conn)?;
                if u.organization_id != site.organization_id
                    || u.email_normalized != invite.email_normalized
                    || !u.is_active()
                {
                    return Err(AppError::InviteInvalid);
                }
                if let Some(hash) = set_password_hash {
                    let updated = diesel::update(
                        users::table
                            .find(user_id)
                            .filter(users::password_hash.is_null()),
                    )
                    .set(users::password_hash.eq(hash))
                    .execute(conn)?;
                    if updated == 0 {
                        return Err(AppError::InvalidCredentials);
                    }
                }
                u
            }
            Credential::NewAccount {
                display_name,
                password_hash,
            } => {
                let inserted: Option<User> = diesel::insert_into(users::table)
                    .values(&NewUser {
                        organization_id: site.organization_id,
                        email: &invite.email,
                        email_normalized: &invite.email_normalized,
                        display_name: &display_name,
                        password_hash: Some(&password_hash),
                        invited_by: Some(invite.invited_by),
                        created_at: now,
                        external: crate::store::changes::state::is_external(
                            conn,
                            site.organization_id,
                            crate::domain::email::domain_of(&invite.email_normalized),
                        )?,
                    })
                    .on_conflict_do_nothing()
                    .returning(User::as_returning())
                    .get_result(conn)
                    .optional()?;
                // An account appeared for this address meanwhile: it must be accepted with its password.
                inserted.ok_or(AppError::InvalidCredentials)?
            }
        };
        if granting == Some(ProductRole::Guest) && access::is_former_paid(conn, site.id, user.id)? {
            return Err(AppError::Addresses(vec![AddressError {
                email: invite.email.clone(),
                code: ErrorCode::PaidUserCannotBeGuest,
            }]));
        }

        let mut before = changes::Snapshot::take(conn, sites, vec![user.id], now)?;
        before.invites = vec![invite.id];
        if let Some(role) = invite.role() {
            changes::grants::raise_direct_role(conn, site.id, user.id, role, now)?;
        }
        for g in &joining {
            changes::grants::add_group_members(conn, *g, &[user.id], Some(invite.invited_by), now)?;
        }
        let accepted = changes::grants::accept_invite(conn, invite.id, user.id, now)?;
        // Seats as if this invite were being made now: the rules are re-checked at acceptance.
        let discount = rules::invite_delta(None, granted);
        let mut ctx =
            changes::Context::new(site.organization_id, Some(user.id), "invite.accept", now)
                .detail(json!({ "invite": invite.id }));
        ctx.discount = Some((site.id, discount));
        changes::finish(conn, before, &ctx)?;
        let role_after = access::effective_role_of(conn, site.id, user.id)?;
        if role_after == Some(ProductRole::Guest) {
            crate::store::lifetimes::set_on_accept(conn, &site, &invite, user.id, now)?;
        }
        if role_after == Some(ProductRole::Guest)
            && let Some(space) = invite.space_id
        {
            changes::grants::assign_space(conn, site.id, &[user.id], space, now)?;
            changes::state::refresh(conn, &[site.id], &[user.id], now)?;
        }

        // Following the emailed link proved the address: the verification period starts now.
        diesel::update(users::table.find(user.id))
            .set(users::verified_at.eq(now))
            .execute(conn)?;
        audit::record(
            conn,
            Audit {
                organization_id: site.organization_id,
                actor_id: Some(user.id),
                action: "invite.accept",
                target_type: "invite",
                target_id: invite.id.to_string(),
                site_id: Some(site.id),
                before: Some(invite_json(&invite, now)),
                after: Some(json!({
                    "status": accepted.status,
                    "user": user.id,
                    "role": role_after,
                    "groupsSkipped": skipped,
                })),
                created_at: now,
            },
        )?;
        let signed_in = match sign_in {
            None => None,
            Some(s) if existing => Some(signin::password_verified(
                conn,
                user.id,
                s.session_lifetime,
                s.policy,
                now,
            )?),
            Some(s) => Some(LoginOutcome::Session(org::create_session(
                conn,
                user.id,
                s.session_lifetime,
                now,
            )?)),
        };
        Ok((user, signed_in))
    })
}

/// An invite of an organization's site; any other id is `NOT_FOUND`, exactly like a missing one.
pub fn invite_in_org(conn: &mut PgConnection, org: Uuid, id: Uuid) -> AppResult<Invite> {
    invites::table
        .inner_join(sites::table)
        .filter(invites::id.eq(id))
        .filter(sites::organization_id.eq(org))
        .select(Invite::as_select())
        .first(conn)
        .optional()?
        .ok_or(AppError::NotFound("Invite"))
}

/// Invites of a site, newest first, with keyset pagination on `(created_at, id)`.
pub fn list(
    conn: &mut PgConnection,
    site_id: Uuid,
    status: Option<crate::store::models::InviteStatus>,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
    now: DateTime<Utc>,
) -> AppResult<(Vec<Invite>, i64)> {
    use crate::store::models::InviteStatus as S;
    let filtered = || {
        let mut q = invites::table
            .filter(invites::site_id.eq(site_id))
            .into_boxed();
        q = match status {
            None => q,
            Some(S::Pending) => q
                .filter(invites::status.eq("PENDING"))
                .filter(invites::expires_at.gt(now)),
            Some(S::Expired) => q.filter(
                invites::status.eq("EXPIRED").or(invites::status
                    .eq("PENDING")
                    .and(invites::expires_at.le(now))),
            ),
            Some(S::Accepted) => q.filter(invites::status.eq("ACCEPTED")),
            Some(S::Revoked) => q.filter(invites::status.eq("REVOKED")),
        };
        q
    };
    let total: i64 = filtered().count().get_result(conn)?;
    let mut q = filtered();
    if let Some((t, id)) = after {
        q = q.filter(
            invites::created_at
                .lt(t)
                .or(invites::created_at.eq(t).and(invites::id.lt(id))),
        );
    }
    let rows = q
        .order((invites::created_at.desc(), invites::id.desc()))
        .limit(limit)
        .select(Invite::as_select())
        .load(conn)?;
    Ok((rows, total))
}

/// Email deliveries of an invite, newest first.
pub fn deliveries(conn: &mut PgConnection, invite_id: Uuid) -> AppResult<Vec<EmailDelivery>> {
    Ok(email_deliveries::table
        .filter(email_deliveries::invite_id.eq(invite_id))
        .order((
            email_deliveries::created_at.desc(),
            email_deliveries::id.desc(),
        ))
        .select(EmailDelivery::as_select())
        .load(conn)?)
}

/// Site, organization and space names of an invite the user just accepted (for the welcome page).
pub fn accepted_summary(
    conn: &mut PgConnection,
    token: &str,
    user_id: Uuid,
) -> AppResult<(String, String, Option<String>)> {
    let (id, _) = LinkSigner::parse(LinkPurpose::Invite, token).ok_or(AppError::InviteInvalid)?;
    let invite: Invite = invites::table
        .find(id)
        .filter(invites::accepted_user_id.eq(user_id))
        .select(Invite::as_select())
        .first(conn)?;
    let site: Site = sites::table
        .find(invite.site_id)
        .select(Site::as_select())
        .first(conn)?;
    let organization = org::organization(conn, site.organization_id)?;
    let space: Option<String> = match invite.space_id {
        Some(s) => spaces::table
            .find(s)
            .select(spaces::name)
            .first(conn)
            .optional()?,
        None => None,
    };
    Ok((site.name, organization.name, space))
}
