//! Email delivery rows: what the worker claims, what it renders from, and how each attempt ends.
//! Every step is idempotent, so a job that runs twice (a worker killed mid-send) sends at most the
//! same message again, with the same `Message-ID`.

use crate::background::EmailJob;
use crate::db::schema::*;
use crate::domain::status::DeliveryStatus;
use crate::error::AppResult;
use crate::store::models::{
    DeliverySubject, EmailDelivery, Invite, InviteStatus, LoginChallenge, Notice, Organization,
    PasswordReset, ReverificationLink, Site, Space, User,
};
use crate::store::queue;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

/// What an email is about, loaded when its delivery is claimed (it travels boxed, in `Claim::Send`).
#[allow(clippy::large_enum_variant)]
pub enum Content {
    Invite {
        invite: Invite,
        site: Site,
        organization: Organization,
        inviter: User,
        space: Option<Space>,
    },
    LoginCode {
        user: User,
        organization: Organization,
        challenge: LoginChallenge,
    },
    PasswordReset {
        user: User,
        organization: Organization,
        reset: PasswordReset,
    },
    Reverify {
        user: User,
        organization: Organization,
        link: ReverificationLink,
        /// When their current verification period ends (under the organization's policy).
        until: DateTime<Utc>,
    },
    Notice {
        notice: Notice,
        site: Site,
        organization: Organization,
        guest: User,
        recipient: User,
    },
}

/// A claimed delivery and what to render.
pub struct ToSend {
    pub delivery: EmailDelivery,
    pub content: Content,
}

/// How long a worker holds a delivery it is sending. A worker that dies mid-send delays that email
/// by this much; a live one records its outcome well within it (outages shorter than it never cause a
/// second send).
pub const SEND_LEASE_SECS: i64 = 15;

pub enum Claim {
    /// Send this now (the row is `SENDING`, its attempt counted).
    Send(Box<ToSend>),
    /// Nothing to do: already sent or finished, or its subject no longer wants it (row now `CANCELLED`).
    Skip(&'static str),
}

fn organization(conn: &mut PgConnection, id: Uuid) -> AppResult<Organization> {
    Ok(organizations::table
        .find(id)
        .select(Organization::as_select())
        .first(conn)?)
}

fn user(conn: &mut PgConnection, id: Uuid) -> AppResult<User> {
    Ok(users::table
        .find(id)
        .select(User::as_select())
        .first(conn)?)
}

/// Loads what a delivery is about, or `None` when it should no longer be sent: an invite revoked,
/// accepted, expired or superseded by a resend; a challenge used, expired or dead; a reset link used,
/// expired or replaced; a reminder to someone no longer active.
fn subject(
    conn: &mut PgConnection,
    d: &EmailDelivery,
    now: DateTime<Utc>,
) -> AppResult<Option<Content>> {
    let nonce = d.token_nonce.as_deref();
    match d.subject {
        DeliverySubject::Invite(id) => invite(conn, id, nonce, now),
        DeliverySubject::LoginCode(id) => login_code(conn, id, nonce, now),
        DeliverySubject::PasswordReset(id) => password_reset(conn, id, nonce, now),
        DeliverySubject::Reverify(id) => reverify(conn, id, nonce, now),
        DeliverySubject::Notice(id) => notice(conn, id),
    }
}

fn site(conn: &mut PgConnection, id: Uuid) -> AppResult<Site> {
    Ok(sites::table
        .find(id)
        .select(Site::as_select())
        .first(conn)?)
}

fn invite(
    conn: &mut PgConnection,
    id: Uuid,
    nonce: Option<&[u8]>,
    now: DateTime<Utc>,
) -> AppResult<Option<Content>> {
    let Some(invite) = invites::table
        .find(id)
        .select(Invite::as_select())
        .first(conn)
        .optional()?
    else {
        return Ok(None);
    };
    if invite.status_at(now) != InviteStatus::Pending || nonce != Some(&invite.token_nonce[..]) {
        return Ok(None);
    }
    let site = site(conn, invite.site_id)?;
    let organization = organization(conn, site.organization_id)?;
    let inviter = user(conn, invite.invited_by)?;
    let space = match invite.space_id {
        Some(s) => spaces::table
            .find(s)
            .select(Space::as_select())
            .first(conn)
            .optional()?,
        None => None,
    };
    Ok(Some(Content::Invite {
        invite,
        site,
        organization,
        inviter,
        space,
    }))
}

fn login_code(
    conn: &mut PgConnection,
    id: Uuid,
    nonce: Option<&[u8]>,
    now: DateTime<Utc>,
) -> AppResult<Option<Content>> {
    let Some(challenge) = login_challenges::table
        .find(id)
        .select(LoginChallenge::as_select())
        .first(conn)
        .optional()?
    else {
        return Ok(None);
    };
    if challenge.consumed_at.is_some()
        || challenge.expires_at <= now
        || challenge.failed_attempts >= crate::store::signin::MAX_CODE_ATTEMPTS
        || nonce != Some(&challenge.code_nonce[..])
    {
        return Ok(None);
    }
    let user = user(conn, challenge.user_id)?;
    let organization = organization(conn, user.organization_id)?;
    Ok(Some(Content::LoginCode {
        user,
        organization,
        challenge,
    }))
}

fn password_reset(
    conn: &mut PgConnection,
    id: Uuid,
    nonce: Option<&[u8]>,
    now: DateTime<Utc>,
) -> AppResult<Option<Content>> {
    let Some(reset) = password_resets::table
        .find(id)
        .select(PasswordReset::as_select())
        .first(conn)
        .optional()?
    else {
        return Ok(None);
    };
    if reset.used_at.is_some() || reset.expires_at <= now || nonce != Some(&reset.token_nonce[..]) {
        return Ok(None);
    }
    let user = user(conn, reset.user_id)?;
    let organization = organization(conn, user.organization_id)?;
    Ok(Some(Content::PasswordReset {
        user,
        organization,
        reset,
    }))
}

fn reverify(
    conn: &mut PgConnection,
    id: Uuid,
    nonce: Option<&[u8]>,
    now: DateTime<Utc>,
) -> AppResult<Option<Content>> {
    let Some(link) = reverification_links::table
        .find(id)
        .select(ReverificationLink::as_select())
        .first(conn)
        .optional()?
    else {
        return Ok(None);
    };
    if link.used_at.is_some() || link.expires_at <= now || nonce != Some(&link.token_nonce[..]) {
        return Ok(None);
    }
    let user = user(conn, link.user_id)?;
    if !user.is_active() {
        return Ok(None);
    }
    let organization = organization(conn, user.organization_id)?;
    let policy = crate::store::external::policy(conn, organization.id)?;
    let until = crate::domain::policy::verified_until(user.verified_at, user.created_at, &policy);
    Ok(Some(Content::Reverify {
        user,
        organization,
        link,
        until,
    }))
}

fn notice(conn: &mut PgConnection, id: Uuid) -> AppResult<Option<Content>> {
    let Some(notice) = notices::table
        .find(id)
        .select(Notice::as_select())
        .first(conn)
        .optional()?
    else {
        return Ok(None);
    };
    let recipient = user(conn, notice.recipient_id)?;
    if !recipient.is_active() {
        return Ok(None);
    }
    let guest = user(conn, notice.guest_id)?;
    let site = site(conn, notice.site_id)?;
    let organization = organization(conn, site.organization_id)?;
    Ok(Some(Content::Notice {
        notice,
        site,
        organization,
        guest,
        recipient,
    }))
}

/// Claims a delivery for one attempt.
pub fn claim(conn: &mut PgConnection, delivery_id: Uuid, now: DateTime<Utc>) -> AppResult<Claim> {
    conn.transaction(|conn| {
        let Some(d) = email_deliveries::table
            .find(delivery_id)
            .for_update()
            .select(EmailDelivery::as_select())
            .first(conn)
            .optional()?
        else {
            return Ok(Claim::Skip("delivery no longer exists"));
        };
        if d.status.is_final() {
            return Ok(Claim::Skip("delivery already finished"));
        }
        // Another worker holds it (its job may look orphaned while the database was away). Look
        // again when its lease ends: if it died mid-send, the email goes out then.
        if d.status == DeliveryStatus::Sending
            && let Some(until) = d.next_attempt_at.filter(|t| *t > now)
        {
            let wait = (until - now).to_std().unwrap_or_default();
            queue::enqueue_job(
                conn,
                &EmailJob { delivery_id: d.id },
                wait.as_secs_f64() + 0.5,
                None,
            )?;
            return Ok(Claim::Skip("another worker is sending it"));
        }
        let Some(content) = subject(conn, &d, now)? else {
            diesel::update(email_deliveries::table.find(d.id))
                .set((
                    email_deliveries::status.eq(DeliveryStatus::Cancelled),
                    email_deliveries::next_attempt_at.eq(None::<DateTime<Utc>>),
                ))
                .execute(conn)?;
            return Ok(Claim::Skip("its subject no longer wants this email"));
        };
        let delivery: EmailDelivery = diesel::update(email_deliveries::table.find(d.id))
            .set((
                email_deliveries::status.eq(DeliveryStatus::Sending),
                email_deliveries::attempts.eq(email_deliveries::attempts + 1),
                // The lease: while it runs, nobody else sends this email.
                email_deliveries::next_attempt_at
                    .eq(now + chrono::Duration::seconds(SEND_LEASE_SECS)),
            ))
            .returning(EmailDelivery::as_returning())
            .get_result(conn)?;
        Ok(Claim::Send(Box::new(ToSend { delivery, content })))
    })
}

pub fn mark_sent(conn: &mut PgConnection, id: Uuid, now: DateTime<Utc>) -> AppResult<()> {
    diesel::update(email_deliveries::table.find(id))
        .set((
            email_deliveries::status.eq(DeliveryStatus::Sent),
            email_deliveries::sent_at.eq(now),
            email_deliveries::last_error.eq(None::<String>),
            email_deliveries::next_attempt_at.eq(None::<DateTime<Utc>>),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn mark_failed(conn: &mut PgConnection, id: Uuid, error: &str) -> AppResult<()> {
    conn.transaction(|conn| {
        let failed: Option<EmailDelivery> = diesel::update(
            email_deliveries::table
                .find(id)
                .filter(email_deliveries::status.ne(DeliveryStatus::Failed)),
        )
        .set((
            email_deliveries::status.eq(DeliveryStatus::Failed),
            email_deliveries::last_error.eq(truncate(error)),
            email_deliveries::next_attempt_at.eq(None::<DateTime<Utc>>),
        ))
        .returning(EmailDelivery::as_returning())
        .get_result(conn)
        .optional()?;
        match failed {
            Some(d) => record_invite_email_failed(conn, &d),
            None => Ok(()),
        }
    })
}

/// An invite whose email failed for good is an event of the audit trail (`invite.deliveryFailed`,
/// and so the `invite.delivery_failed` webhook), recorded once, when the delivery turns `FAILED`.
fn record_invite_email_failed(conn: &mut PgConnection, d: &EmailDelivery) -> AppResult<()> {
    let crate::store::models::DeliverySubject::Invite(invite_id) = d.subject else {
        return Ok(());
    };
    let site: Option<Uuid> = invites::table
        .find(invite_id)
        .select(invites::site_id)
        .first(conn)
        .optional()?;
    crate::store::audit::record(
        conn,
        // The worker's give-up has no service-clock reading to pass down; the wall clock.
        crate::store::audit::Audit::new(
            d.organization_id,
            None,
            "invite.deliveryFailed",
            Utc::now(),
        )
        .target("invite", invite_id)
        .site(site)
        .after(serde_json::json!({
            "email": d.recipient,
            "status": DeliveryStatus::Failed.as_str(),
            "attempts": d.attempts
        })),
    )
}

/// Schedules another attempt after `delay` (a new job row, so the wait survives restarts).
pub fn schedule_retry(
    conn: &mut PgConnection,
    id: Uuid,
    error: &str,
    delay: std::time::Duration,
    now: DateTime<Utc>,
) -> AppResult<()> {
    conn.transaction(|conn| {
        let next = now + chrono::Duration::from_std(delay).unwrap_or_default();
        diesel::update(email_deliveries::table.find(id))
            .set((
                email_deliveries::status.eq(DeliveryStatus::Retrying),
                email_deliveries::last_error.eq(truncate(error)),
                email_deliveries::next_attempt_at.eq(next),
            ))
            .execute(conn)?;
        queue::enqueue_job(
            conn,
            &EmailJob { delivery_id: id },
            delay.as_secs_f64(),
            None,
        )?;
        Ok(())
    })
}

fn truncate(s: &str) -> String {
    s.chars().take(1000).collect()
}
