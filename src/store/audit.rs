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
    diesel::insert_into(audit_events::table)
        .values(&event)
        .execute(conn)?;
    Ok(())
}

pub fn record_all(conn: &mut PgConnection, events: Vec<Audit>) -> AppResult<()> {
    if !events.is_empty() {
        diesel::insert_into(audit_events::table)
            .values(&events)
            .execute(conn)?;
    }
    Ok(())
}
