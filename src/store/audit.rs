//! Audit events, written in the same transaction as the change they describe.

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
