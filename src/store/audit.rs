//! Audit events, written in the same transaction as the change they describe, built with
//! [`Audit::new`]: `Audit::new(org, actor, "invite.create", now).target("invite", id).site(site)
//! .after(json)`.

use crate::db::schema::audit_events;
use crate::error::AppResult;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde_json::Value;
use uuid::Uuid;

#[derive(Insertable)]
#[diesel(table_name = audit_events)]
pub struct Audit {
    pub organization_id: Uuid,
    pub actor_id: Option<Uuid>,
    pub action: &'static str,
    pub target_type: &'static str,
    pub target_id: String,
    pub site_id: Option<Uuid>,
    pub before: Option<Value>,
    pub after: Option<Value>,
    pub created_at: DateTime<Utc>,
}

/// An audit event begun with [`Audit::new`]: it says who did what, and when; [`Untargeted::target`]
/// says to what, which every event must.
#[must_use = "an event is recorded only once it has a target"]
pub struct Untargeted {
    organization_id: Uuid,
    actor_id: Option<Uuid>,
    action: &'static str,
    created_at: DateTime<Utc>,
}

impl Audit {
    /// An event in `organization` by `actor` (`None`: the service itself, e.g. a scheduled task),
    /// named `action` (`invite.create`), at `now`. Then `.target(type, id)`, and as needed
    /// `.site(..)`, `.before(..)`, `.after(..)`.
    // An event without a target cannot be recorded: `new` answers the half that `target` completes.
    #[allow(clippy::new_ret_no_self)]
    pub fn new(
        organization: Uuid,
        actor: impl Into<Option<Uuid>>,
        action: &'static str,
        now: DateTime<Utc>,
    ) -> Untargeted {
        Untargeted {
            organization_id: organization,
            actor_id: actor.into(),
            action,
            created_at: now,
        }
    }

    /// The site it happened on (`None`: the organization as a whole, which is the default).
    pub fn site(mut self, site: impl Into<Option<Uuid>>) -> Self {
        self.site_id = site.into();
        self
    }

    /// The target's state before the change.
    pub fn before(mut self, state: impl Into<Option<Value>>) -> Self {
        self.before = state.into();
        self
    }

    /// The target's state after the change, or what the action did.
    pub fn after(mut self, state: impl Into<Option<Value>>) -> Self {
        self.after = state.into();
        self
    }
}

impl Untargeted {
    /// What the event is about: a type (`invite`, `user`, `organization`) and its id.
    pub fn target(self, target_type: &'static str, id: impl ToString) -> Audit {
        Audit {
            organization_id: self.organization_id,
            actor_id: self.actor_id,
            action: self.action,
            target_type,
            target_id: id.to_string(),
            site_id: None,
            before: None,
            after: None,
            created_at: self.created_at,
        }
    }
}

pub fn record(conn: &mut PgConnection, event: Audit) -> AppResult<()> {
    // An event that goes out as a webhook gets its deliveries in the same transaction (the outbox);
    // any other is one insert, as before.
    if !crate::store::webhooks::wanted(std::slice::from_ref(&event)) {
        diesel::insert_into(audit_events::table)
            .values(&event)
            .execute(conn)?;
        return Ok(());
    }
    crate::store::webhooks::atomically(conn, |conn| {
        let row: crate::store::models::AuditEvent = diesel::insert_into(audit_events::table)
            .values(&event)
            .returning(crate::store::models::AuditEvent::as_returning())
            .get_result(conn)?;
        crate::store::webhooks::enqueue_for_events(conn, std::slice::from_ref(&row)).map(|_| ())
    })
}

pub fn record_all(conn: &mut PgConnection, events: Vec<Audit>) -> AppResult<()> {
    if events.is_empty() {
        return Ok(());
    }
    if !crate::store::webhooks::wanted(&events) {
        diesel::insert_into(audit_events::table)
            .values(&events)
            .execute(conn)?;
        return Ok(());
    }
    crate::store::webhooks::atomically(conn, |conn| {
        let rows: Vec<crate::store::models::AuditEvent> = diesel::insert_into(audit_events::table)
            .values(&events)
            .returning(crate::store::models::AuditEvent::as_returning())
            .get_results(conn)?;
        crate::store::webhooks::enqueue_for_events(conn, &rows).map(|_| ())
    })
}
