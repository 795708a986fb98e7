//! What live subscriptions load for the events they hear (`graphql::subscription`): the rows an event
//! names, on the subscribed site only, in one statement for a whole burst of events.

use crate::db::schema::{audit_events, email_deliveries, invites};
use crate::error::AppResult;
use crate::store::models::{AuditEvent, EmailDelivery, Invite};
use diesel::prelude::*;
use uuid::Uuid;

/// The deliveries among `ids` of invites to `site`, each with its invite, oldest first.
pub fn invite_deliveries(
    conn: &mut PgConnection,
    site: Uuid,
    ids: &[Uuid],
) -> AppResult<Vec<(EmailDelivery, Invite)>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(email_deliveries::table
        .inner_join(invites::table)
        .filter(email_deliveries::id.eq_any(ids))
        .filter(invites::site_id.eq(site))
        .order((email_deliveries::created_at, email_deliveries::id))
        .select((EmailDelivery::as_select(), Invite::as_select()))
        .load(conn)?)
}

/// The audit events among `ids` that concern `site`, in the order they were recorded.
pub fn site_audit_events(
    conn: &mut PgConnection,
    site: Uuid,
    ids: &[i64],
) -> AppResult<Vec<AuditEvent>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(audit_events::table
        .filter(audit_events::id.eq_any(ids))
        .filter(audit_events::site_id.eq(site))
        .order(audit_events::id)
        .select(AuditEvent::as_select())
        .load(conn)?)
}

/// At most `limit` audit events concerning `site` recorded after the event `after`, in order (what a
/// subscriber missed; the key's index walks only the events since).
pub fn site_audit_events_after(
    conn: &mut PgConnection,
    site: Uuid,
    after: i64,
    limit: i64,
) -> AppResult<Vec<AuditEvent>> {
    Ok(audit_events::table
        .filter(audit_events::id.gt(after))
        .filter(audit_events::site_id.eq(site))
        .order(audit_events::id)
        .limit(limit)
        .select(AuditEvent::as_select())
        .load(conn)?)
}

/// The last audit event recorded so far, of any organization (0 when none): where a subscriber that
/// starts now begins.
pub fn last_audit_event(conn: &mut PgConnection) -> AppResult<i64> {
    Ok(audit_events::table
        .select(diesel::dsl::max(audit_events::id))
        .first::<Option<i64>>(conn)?
        .unwrap_or(0))
}
