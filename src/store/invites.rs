//! Invites: creating batches under the seat rules, resending, revoking, accepting; and each invite's
//! email delivery rows, enqueued in the same transaction. The decisions are `domain::invites`'s: these
//! functions load the facts, ask, and write the answer.

use crate::auth::tokens::{LinkPurpose, LinkSigner, random_nonce};
use crate::db::schema::*;
use crate::domain::invites::{self as rules, AddressRefusal, InputError, InviteState, Refusal};
use crate::domain::status::{DeliveryStatus, EmailKind};
use crate::domain::{EmailAddress, ProductRole};
use crate::error::{AddressError, AppError, AppResult, ErrorCode};
use crate::store::access::{self, Caller};
use crate::store::audit::{self, Audit};
use crate::store::changes::{self, Reach};
use crate::store::models::{
    DeliverySubject, EmailDelivery, Invite, InviteStatus, NewUser, Site, User,
};
use crate::store::signin::{self, LoginOutcome};
use crate::store::{org, queue};
use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use serde_json::json;
use uuid::Uuid;

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

/// An `inviteUsers` input the rules refuse, as the API answers it.
impl From<InputError> for AppError {
    fn from(e: InputError) -> Self {
        match e {
            InputError::TooMany { max } => Self::TooManyInvites { max },
            InputError::InvalidEmails(list) => Self::Addresses(
                list.into_iter()
                    .map(|email| AddressError {
                        email,
                        code: ErrorCode::InvalidEmail,
                    })
                    .collect(),
            ),
            InputError::Field { field, message } => Self::invalid(field, message),
        }
    }
}

/// What the invite rules refuse, as the API answers it (the addresses keep their order).
impl From<Refusal> for AppError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::Invalid { field, message } => Self::invalid(field, message),
            Refusal::Addresses(list) => Self::Addresses(
                list.into_iter()
                    .map(|(email, why)| AddressError {
                        email,
                        code: match why {
                            AddressRefusal::AlreadyHasAccess => ErrorCode::AlreadyHasAccess,
                            AddressRefusal::InvitePending => ErrorCode::InvitePending,
                            AddressRefusal::PaidUserCannotBeGuest => {
                                ErrorCode::PaidUserCannotBeGuest
                            }
                            AddressRefusal::DomainNotAllowed => ErrorCode::DomainNotAllowed,
                        },
                    })
                    .collect(),
            ),
            Refusal::RateLimited { wait } => rate_limited(wait),
            Refusal::Seats(v) => v.into(),
            Refusal::InviteInvalid => Self::InviteInvalid,
        }
    }
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

/// The admin's invites within the daily cap's window, and when the one whose ageing out makes room
/// for `adding` more was made (looked up only when they do not fit now).
fn daily_cap(
    conn: &mut PgConnection,
    admin: Uuid,
    adding: i64,
    policy: &DeliveryPolicy,
    now: DateTime<Utc>,
) -> AppResult<rules::DailyCap> {
    let since = now - crate::domain::bulk::CAP_WINDOW;
    let mine = || {
        invites::table
            .filter(invites::invited_by.eq(admin))
            .filter(invites::created_at.gt(since))
    };
    let recent: i64 = mine().count().get_result(conn)?;
    let cap = policy.invites_per_admin_per_day;
    let over = rules::cap_overflow(cap, recent, adding);
    let frees_at = if over > 0 {
        mine()
            .order(invites::created_at.asc())
            .offset(over - 1)
            .select(invites::created_at)
            .first(conn)
            .optional()?
    } else {
        None
    };
    Ok(rules::DailyCap {
        cap,
        recent,
        frees_at,
    })
}

/// When the invites that count against an admin's daily cap now were made, oldest first (what
/// [`daily_cap`] counts; bulk files pace themselves with it).
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

/// The newest invite email to any of these addresses within the cooldown (none looked up when there
/// is no cooldown).
fn cooldown(
    conn: &mut PgConnection,
    recipients: &[&str],
    policy: &DeliveryPolicy,
    now: DateTime<Utc>,
) -> AppResult<rules::Cooldown> {
    let length = policy.recipient_cooldown;
    let last_emailed = if rules::Cooldown::applies(length) {
        let lowered: Vec<String> = recipients.iter().map(|r| r.to_lowercase()).collect();
        email_deliveries::table
            .filter(
                diesel::dsl::sql::<diesel::sql_types::Text>("lower(recipient)").eq_any(&lowered),
            )
            .filter(email_deliveries::kind.eq(EmailKind::Invite))
            .filter(email_deliveries::created_at.gt(now - length))
            .select(diesel::dsl::max(email_deliveries::created_at))
            .first(conn)?
    } else {
        None
    };
    Ok(rules::Cooldown {
        length,
        last_emailed,
    })
}

/// A site's seats now (under its lock) and its limits.
fn seats_of(conn: &mut PgConnection, site: &Site, now: DateTime<Utc>) -> AppResult<rules::Seats> {
    Ok(rules::Seats {
        counts: access::counts(conn, site.id, now)?,
        limits: site.limits(),
    })
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
                DeliverySubject::Invite(invite.id).values(),
                email_deliveries::token_nonce.eq(&invite.token_nonce),
                email_deliveries::recipient.eq(&invite.email),
                email_deliveries::status.eq(DeliveryStatus::Queued),
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
            .filter(
                email_deliveries::status.eq_any([DeliveryStatus::Queued, DeliveryStatus::Retrying]),
            ),
    )
    .set((
        email_deliveries::status.eq(DeliveryStatus::Cancelled),
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

/// Creates a batch of invites atomically, after checking who may, the addresses and the seat rules
/// (the decision and its order: [`rules::plan`]).
pub fn invite_users(
    conn: &mut PgConnection,
    caller: &Caller,
    req: NewInvites,
    policy: &DeliveryPolicy,
    now: DateTime<Utc>,
) -> AppResult<Vec<Invite>> {
    conn.transaction(|conn| {
        let site = lock_for_batch(conn, caller, &req, now)?;
        let facts = batch_facts(conn, caller, &site, &req, policy, now)?;
        let batch = rules::Batch {
            emails: &req.emails,
            role: req.role,
            space: req.space_id.is_some(),
            access_end: req.access_ends_at.is_some() || req.access_days.is_some(),
            expires_in_days: req.expires_in_days,
        };
        let plan = rules::plan(&batch, &facts, now)?;
        let created = create_batch(conn, caller, &site, &req, &plan, now)?;
        queue_invite_emails(conn, &created, site.organization_id, policy, now)?;
        record_created(conn, caller, &site, &created, now)?;
        Ok(created)
    })
}

/// What a change joining `groups` locks: one site, or the organization when groups (which may reach
/// other sites) are joined.
fn reach_of(groups: &[Uuid]) -> Reach {
    if groups.is_empty() {
        Reach::OneSite
    } else {
        Reach::Organization
    }
}

/// Checks the batch's groups (`NOT_FOUND` unless all are the organization's; `FORBIDDEN` unless the
/// caller could add members to each, the rule of `addGroupMembers`, since accepting joins them), takes
/// the locks and closes the site's expired invites. Answers the locked site.
fn lock_for_batch(
    conn: &mut PgConnection,
    caller: &Caller,
    req: &NewInvites,
    now: DateTime<Utc>,
) -> AppResult<Site> {
    let org = caller.user.organization_id;
    let known: i64 = if req.group_ids.is_empty() {
        0
    } else {
        groups::table
            .filter(groups::id.eq_any(&req.group_ids))
            .filter(groups::organization_id.eq(org))
            .count()
            .get_result(conn)?
    };
    if known as usize != req.group_ids.len() {
        return Err(AppError::NotFound("Group"));
    }
    changes::lock_org(conn, org, reach_of(&req.group_ids))?;
    for g in &req.group_ids {
        crate::store::groups::require_manage(conn, caller, *g)?;
    }
    let site = access::lock_site(conn, req.site_id)?;
    close_expired(conn, site.id, now)?;
    Ok(site)
}

/// Everything [`rules::plan`] decides a batch on, loaded under the site's lock.
fn batch_facts(
    conn: &mut PgConnection,
    caller: &Caller,
    site: &Site,
    req: &NewInvites,
    policy: &DeliveryPolicy,
    now: DateTime<Utc>,
) -> AppResult<rules::BatchFacts> {
    let normalized: Vec<&str> = req.emails.iter().map(|e| e.normalized()).collect();
    let (domain_mode, domain_patterns) =
        crate::store::domain_rules::rules(conn, site.organization_id)?;
    let group_roles = group_roles_on(conn, site.id, &req.group_ids)?;
    Ok(rules::BatchFacts {
        group_roles: group_roles.into_iter().map(|(_, r)| r).collect(),
        addresses: address_facts(conn, site, &req.emails)?,
        domain_mode,
        domain_patterns,
        daily_cap: daily_cap(conn, caller.user.id, normalized.len() as i64, policy, now)?,
        cooldown: cooldown(conn, &normalized, policy, now)?,
        seats: seats_of(conn, site, now)?,
        default_expiry_days: site.invite_expiry_days,
    })
}

/// For each address, in order: the organization's account with it (its role on the site, whether it
/// was ever paid there) and whether an invite to the site is pending for it.
fn address_facts(
    conn: &mut PgConnection,
    site: &Site,
    emails: &[EmailAddress],
) -> AppResult<Vec<rules::AddressFacts>> {
    let normalized: Vec<&str> = emails.iter().map(|e| e.normalized()).collect();
    let accounts: Vec<(Uuid, String)> = users::table
        .filter(users::organization_id.eq(site.organization_id))
        .filter(users::email_normalized.eq_any(&normalized))
        .select((users::id, users::email_normalized))
        .load(conn)?;
    let pending: Vec<String> = invites::table
        .filter(invites::site_id.eq(site.id))
        .filter(invites::status.eq(InviteStatus::Pending))
        .filter(invites::email_normalized.eq_any(&normalized))
        .select(invites::email_normalized)
        .load(conn)?;
    let mut facts = Vec::with_capacity(emails.len());
    for n in normalized {
        let account = match accounts.iter().find(|(_, e)| e == n) {
            Some((id, _)) => Some(rules::Account {
                role: access::effective_role_of(conn, site.id, *id)?,
                former_paid: access::is_former_paid(conn, site.id, *id)?,
            }),
            None => None,
        };
        let pending = pending.iter().any(|p| p == n);
        facts.push(rules::AddressFacts { account, pending });
    }
    Ok(facts)
}

/// Writes the planned invites (with their groups) and their maintained state.
fn create_batch(
    conn: &mut PgConnection,
    caller: &Caller,
    site: &Site,
    req: &NewInvites,
    plan: &rules::Plan,
    now: DateTime<Utc>,
) -> AppResult<Vec<Invite>> {
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
            status: InviteStatus::Pending,
            created_at: now,
            expires_at: plan.expires_at,
            access_ends_at: req.access_ends_at,
            access_days: req.access_days,
        })
        .collect();
    let created = changes::grants::create_invites(conn, &rows, &req.group_ids)?;
    let ids: Vec<Uuid> = created.iter().map(|i| i.id).collect();
    changes::state::refresh_invites(conn, &ids)?;
    Ok(created)
}

/// One `invite.create` audit event per invite.
fn record_created(
    conn: &mut PgConnection,
    caller: &Caller,
    site: &Site,
    created: &[Invite],
    now: DateTime<Utc>,
) -> AppResult<()> {
    let events = created
        .iter()
        .map(|invite| {
            Audit::new(site.organization_id, caller.user.id, "invite.create", now)
                .target("invite", invite.id)
                .site(site.id)
                .after(invite_json(invite, now))
        })
        .collect();
    audit::record_all(conn, events)
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

/// Issues a new token (the old link stops working), renews the expiry and queues a fresh email (the
/// decision: [`rules::resend`]).
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
        let old = locked_invite(conn, id)?;
        let renewal = rules::resend(&resend_facts(conn, &site, &old, policy, now)?, now)?;
        cancel_waiting_deliveries(conn, &[id])?;
        let invite =
            changes::grants::renew_invite(conn, id, random_nonce().to_vec(), renewal.expires_at)?;
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
            Audit::new(site.organization_id, caller.user.id, "invite.resend", now)
                .target("invite", id)
                .site(site.id)
                .before(invite_json(&old, now))
                .after(invite_json(&invite, now)),
        )?;
        Ok(invite)
    })
}

/// An invite, locked for the change.
fn locked_invite(conn: &mut PgConnection, id: Uuid) -> AppResult<Invite> {
    Ok(invites::table
        .find(id)
        .for_update()
        .select(Invite::as_select())
        .first(conn)?)
}

/// Everything [`rules::resend`] decides on, loaded under the site's lock.
fn resend_facts<'a>(
    conn: &mut PgConnection,
    site: &Site,
    old: &'a Invite,
    policy: &DeliveryPolicy,
    now: DateTime<Utc>,
) -> AppResult<rules::ResendFacts<'a>> {
    let groups = invite_group_ids(conn, old.id)?;
    let group_roles = group_roles_on(conn, site.id, &groups)?;
    let other_pending: bool = diesel::select(diesel::dsl::exists(
        invites::table
            .filter(invites::site_id.eq(site.id))
            .filter(invites::status.eq(InviteStatus::Pending))
            .filter(invites::email_normalized.eq(&old.email_normalized))
            .filter(invites::id.ne(old.id)),
    ))
    .get_result(conn)?;
    Ok(rules::ResendFacts {
        email: &old.email,
        state: state_of(old, now),
        own_role: old.role(),
        group_roles: group_roles.into_iter().map(|(_, r)| r).collect(),
        other_pending,
        seats: seats_of(conn, site, now)?,
        cooldown: cooldown(conn, &[old.email_normalized.as_str()], policy, now)?,
        expiry_days: site.invite_expiry_days,
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
        if !matches!(old.status, InviteStatus::Pending | InviteStatus::Expired) {
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
            Audit::new(site.organization_id, caller.user.id, "invite.revoke", now)
                .target("invite", id)
                .site(site.id)
                .before(invite_json(&old, now))
                .after(invite_json(&invite, now)),
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
    rules::link_opens(
        signer.verify(LinkPurpose::Invite, id, &invite.token_nonce, &tag),
        state_of(&invite, now),
    )?;
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

/// The roles these groups hold on a site, by group (no lookup for no groups).
fn group_roles_on(
    conn: &mut PgConnection,
    site_id: Uuid,
    groups: &[Uuid],
) -> AppResult<Vec<(Uuid, ProductRole)>> {
    if groups.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<(Uuid, i16)> = group_site_roles::table
        .filter(group_site_roles::group_id.eq_any(groups))
        .filter(group_site_roles::site_id.eq(site_id))
        .select((group_site_roles::group_id, group_site_roles::role))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|(g, r)| ProductRole::from_rank(r).map(|r| (g, r)))
        .collect())
}

fn invite_group_ids(conn: &mut PgConnection, invite: Uuid) -> AppResult<Vec<Uuid>> {
    Ok(invite_groups::table
        .filter(invite_groups::invite_id.eq(invite))
        .select(invite_groups::group_id)
        .load(conn)?)
}

/// Where an invite stands, as the rules read it.
fn state_of(invite: &Invite, now: DateTime<Utc>) -> InviteState {
    match invite.status_at(now) {
        InviteStatus::Pending => InviteState::Pending,
        InviteStatus::Expired => InviteState::Expired,
        InviteStatus::Accepted | InviteStatus::Revoked => InviteState::Closed,
    }
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
        let l = lock_for_accept(conn, site_id, id)?;
        let acceptance = rules::accept(&accept_facts(conn, signer, &l, &tag, now)?)?;
        let existing = matches!(credential, Credential::ExistingAccount { .. });
        let user = accepting_account(conn, &l.site, &l.invite, credential, now)?;
        acceptance
            .check_grantee(access::is_former_paid(conn, l.site.id, user.id)?)
            .map_err(|why| Refusal::Addresses(vec![(l.invite.email.clone(), why)]))?;
        let (accepted, role_after) = grant_accepted(conn, &l, &user, &acceptance, now)?;
        record_accepted(
            conn,
            &l,
            &user,
            &accepted,
            role_after,
            &acceptance.skipped,
            now,
        )?;
        let signed_in = sign_in_after(conn, sign_in, existing, user.id, now)?;
        Ok((user, signed_in))
    })
}

/// What accepting an invite holds locked: its site (and every site its groups reach), the invite.
struct Locked {
    site: Site,
    sites: Vec<Site>,
    invite: Invite,
    groups: Vec<Uuid>,
}

/// Takes the locks accepting needs: the organization's (as wide as the invite's groups reach), every
/// site the grant reaches, then the invite.
fn lock_for_accept(conn: &mut PgConnection, site_id: Uuid, id: Uuid) -> AppResult<Locked> {
    let org: Uuid = sites::table
        .find(site_id)
        .select(sites::organization_id)
        .first(conn)?;
    let groups = invite_group_ids(conn, id)?;
    changes::lock_org(conn, org, reach_of(&groups))?;
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
    let invite = locked_invite(conn, id)?;
    Ok(Locked {
        site,
        sites,
        invite,
        groups,
    })
}

/// Everything [`rules::accept`] decides on: the link, the invite's state and role, and each of its
/// groups' role on the site and whether the inviter, as they stand now, may still add members to it.
fn accept_facts(
    conn: &mut PgConnection,
    signer: &LinkSigner,
    l: &Locked,
    tag: &[u8],
    now: DateTime<Utc>,
) -> AppResult<rules::AcceptFacts> {
    let roles = group_roles_on(conn, l.site.id, &l.groups)?;
    let inviter = access::acting_as(conn, l.invite.invited_by)?;
    let mut groups = Vec::with_capacity(l.groups.len());
    for g in &l.groups {
        let inviter_may_add = match &inviter {
            Some(c) => crate::store::groups::may_manage(conn, c, *g)?,
            None => false,
        };
        groups.push(rules::InviteGroup {
            id: *g,
            role_on_site: roles.iter().find(|(id, _)| id == g).map(|(_, r)| *r),
            inviter_may_add,
        });
    }
    Ok(rules::AcceptFacts {
        link_matches: signer.verify(LinkPurpose::Invite, l.invite.id, &l.invite.token_nonce, tag),
        state: state_of(&l.invite, now),
        own_role: l.invite.role(),
        groups,
    })
}

/// The account accepting: the existing one (checked with [`rules::account_may_accept`], given its
/// first password when it has none) or a new one with the invited address.
fn accepting_account(
    conn: &mut PgConnection,
    site: &Site,
    invite: &Invite,
    credential: Credential,
    now: DateTime<Utc>,
) -> AppResult<User> {
    match credential {
        Credential::ExistingAccount {
            user_id,
            set_password_hash,
        } => {
            let u: User = users::table
                .find(user_id)
                .select(User::as_select())
                .first(conn)?;
            rules::account_may_accept(
                u.organization_id == site.organization_id,
                u.email_normalized == invite.email_normalized,
                u.is_active(),
            )?;
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
            Ok(u)
        }
        Credential::NewAccount {
            display_name,
            password_hash,
        } => new_account(conn, site, invite, &display_name, &password_hash, now),
    }
}

/// Creates the invited person's account; `INVALID_CREDENTIALS` when one appeared for the address
/// meanwhile (it must be accepted with its password).
fn new_account(
    conn: &mut PgConnection,
    site: &Site,
    invite: &Invite,
    display_name: &str,
    password_hash: &str,
    now: DateTime<Utc>,
) -> AppResult<User> {
    let external = changes::state::is_external(
        conn,
        site.organization_id,
        crate::domain::email::domain_of(&invite.email_normalized),
    )?;
    let inserted: Option<User> = diesel::insert_into(users::table)
        .values(&NewUser {
            organization_id: site.organization_id,
            email: &invite.email,
            email_normalized: &invite.email_normalized,
            display_name,
            password_hash: Some(password_hash),
            invited_by: Some(invite.invited_by),
            created_at: now,
            external,
        })
        .on_conflict_do_nothing()
        .returning(User::as_returning())
        .get_result(conn)
        .optional()?;
    inserted.ok_or(AppError::InvalidCredentials)
}

/// Writes an acceptance through the access-change engine, which checks the seat rules on every site
/// the grant reaches with what the invite held discounted; then what follows for a guest
/// ([`rules::after_accept`]). Answers the accepted invite and the person's role afterwards.
fn grant_accepted(
    conn: &mut PgConnection,
    l: &Locked,
    user: &User,
    a: &rules::Acceptance,
    now: DateTime<Utc>,
) -> AppResult<(Invite, Option<ProductRole>)> {
    let (site, invite) = (&l.site, &l.invite);
    let mut before = changes::Snapshot::take(conn, l.sites.clone(), vec![user.id], now)?;
    before.invites = vec![invite.id];
    if let Some(role) = a.direct {
        changes::grants::raise_direct_role(conn, site.id, user.id, role, now)?;
    }
    for g in &a.joining {
        changes::grants::add_group_members(conn, *g, &[user.id], Some(invite.invited_by), now)?;
    }
    let accepted = changes::grants::accept_invite(conn, invite.id, user.id, now)?;
    let mut ctx = changes::Context::new(site.organization_id, Some(user.id), "invite.accept", now)
        .detail(json!({ "invite": invite.id }));
    ctx.discount = Some((site.id, a.discount()));
    changes::finish(conn, before, &ctx)?;
    let role_after = access::effective_role_of(conn, site.id, user.id)?;
    let after = rules::after_accept(role_after, invite.space_id);
    if after.guest_terms {
        crate::store::lifetimes::set_on_accept(conn, site, invite, user.id, now)?;
    }
    if let Some(space) = after.space {
        changes::grants::assign_space(conn, site.id, &[user.id], space, now)?;
        changes::state::refresh(conn, &[site.id], &[user.id], now)?;
    }
    Ok((accepted, role_after))
}

/// Following the emailed link proved the address: the verification period starts now. And the
/// `invite.accept` audit event, with the groups skipped.
fn record_accepted(
    conn: &mut PgConnection,
    l: &Locked,
    user: &User,
    accepted: &Invite,
    role_after: Option<ProductRole>,
    skipped: &[Uuid],
    now: DateTime<Utc>,
) -> AppResult<()> {
    diesel::update(users::table.find(user.id))
        .set(users::verified_at.eq(now))
        .execute(conn)?;
    audit::record(
        conn,
        Audit::new(l.site.organization_id, user.id, "invite.accept", now)
            .target("invite", l.invite.id)
            .site(l.site.id)
            .before(invite_json(&l.invite, now))
            .after(json!({
                "status": accepted.status.as_str(),
                "user": user.id,
                "role": role_after,
                "groupsSkipped": skipped,
            })),
    )
}

/// Signs the person in when asked: an existing account as `login` would after its password (maybe a
/// second step), a new account at once.
fn sign_in_after(
    conn: &mut PgConnection,
    sign_in: Option<SignIn<'_>>,
    existing: bool,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> AppResult<Option<LoginOutcome>> {
    Ok(match sign_in {
        None => None,
        Some(s) if existing => Some(signin::password_verified(
            conn,
            user_id,
            s.session_lifetime,
            s.policy,
            now,
        )?),
        Some(s) => Some(LoginOutcome::Session(org::create_session(
            conn,
            user_id,
            s.session_lifetime,
            now,
        )?)),
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
    status: Option<InviteStatus>,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
    now: DateTime<Utc>,
) -> AppResult<(Vec<Invite>, i64)> {
    use InviteStatus as S;
    let filtered = || {
        let mut q = invites::table
            .filter(invites::site_id.eq(site_id))
            .into_boxed();
        q = match status {
            None => q,
            Some(S::Pending) => q
                .filter(invites::status.eq(InviteStatus::Pending))
                .filter(invites::expires_at.gt(now)),
            Some(S::Expired) => q.filter(
                invites::status.eq(InviteStatus::Expired).or(invites::status
                    .eq(InviteStatus::Pending)
                    .and(invites::expires_at.le(now))),
            ),
            Some(S::Accepted) => q.filter(invites::status.eq(InviteStatus::Accepted)),
            Some(S::Revoked) => q.filter(invites::status.eq(InviteStatus::Revoked)),
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
