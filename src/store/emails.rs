//! Email delivery rows: what the worker claims, what it renders from, and how each attempt ends.
//! Every step is idempotent, so a job that runs twice (a worker killed mid-send) sends at most the
//! same message again, with the same `Message-ID`.

use crate::db::schema::*;
use crate::error::AppResult;
use crate::jobs::EmailJob;
use crate::store::models::{EmailDelivery, Invite, InviteStatus, Organization, Site, Space, User};
use crate::store::queue;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

/// What to send, loaded when a delivery is claimed.
pub struct InviteToSend {
    pub delivery: EmailDelivery,
    pub invite: Invite,
    pub site: Site,
    pub organization: Organization,
    pub inviter: User,
    pub space: Option<Space>,
}

pub enum Claim {
    /// Send this now (the row is `SENDING`, its attempt counted).
    Send(Box<InviteToSend>),
    /// Nothing to do: already sent or finished, or the invite no longer wants it (row now `CANCELLED`).
    Skip(&'static str),
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
        if matches!(d.status.as_str(), "SENT" | "FAILED" | "CANCELLED") {
            return Ok(Claim::Skip("delivery already finished"));
        }
        let invite: Invite = invites::table
            .find(d.invite_id.unwrap_or_default())
            .select(Invite::as_select())
            .first(conn)?;
        // Revoked, accepted, expired, or superseded by a resend: send nothing.
        if invite.status_at(now) != InviteStatus::Pending
            || d.token_nonce.as_deref() != Some(&invite.token_nonce[..])
        {
            diesel::update(email_deliveries::table.find(d.id))
                .set((
                    email_deliveries::status.eq("CANCELLED"),
                    email_deliveries::next_attempt_at.eq(None::<DateTime<Utc>>),
                ))
                .execute(conn)?;
            return Ok(Claim::Skip("invite no longer pending with this token"));
        }
        let delivery: EmailDelivery = diesel::update(email_deliveries::table.find(d.id))
            .set((
                email_deliveries::status.eq("SENDING"),
                email_deliveries::attempts.eq(email_deliveries::attempts + 1),
                email_deliveries::next_attempt_at.eq(None::<DateTime<Utc>>),
            ))
            .returning(EmailDelivery::as_returning())
            .get_result(conn)?;
        let site: Site = sites::table
            .find(invite.site_id)
            .select(Site::as_select())
            .first(conn)?;
        let organization: Organization = organizations::table
            .find(site.organization_id)
            .select(Organization::as_select())
            .first(conn)?;
        let inviter: User = users::table
            .find(invite.invited_by)
            .select(User::as_select())
            .first(conn)?;
        let space = match invite.space_id {
            Some(s) => spaces::table
                .find(s)
                .select(Space::as_select())
                .first(conn)
                .optional()?,
            None => None,
        };
        Ok(Claim::Send(Box::new(InviteToSend {
            delivery,
            invite,
            site,
            organization,
            inviter,
            space,
        })))
    })
}

pub fn mark_sent(conn: &mut PgConnection, id: Uuid, now: DateTime<Utc>) -> AppResult<()> {
    diesel::update(email_deliveries::table.find(id))
        .set((
            email_deliveries::status.eq("SENT"),
            email_deliveries::sent_at.eq(now),
            email_deliveries::last_error.eq(None::<String>),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn mark_failed(conn: &mut PgConnection, id: Uuid, error: &str) -> AppResult<()> {
    diesel::update(email_deliveries::table.find(id))
        .set((
            email_deliveries::status.eq("FAILED"),
            email_deliveries::last_error.eq(truncate(error)),
            email_deliveries::next_attempt_at.eq(None::<DateTime<Utc>>),
        ))
        .execute(conn)?;
    Ok(())
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
                email_deliveries::status.eq("RETRYING"),
                email_deliveries::last_error.eq(truncate(error)),
                email_deliveries::next_attempt_at.eq(next),
            ))
            .execute(conn)?;
        queue::enqueue(
            conn,
            queue::EMAIL_QUEUE,
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
