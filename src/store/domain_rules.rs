//! The organization's guest domain rules: which email domains may be invited as guests.

use crate::db::schema::*;
use crate::domain::domains::{self, DomainMode};
use crate::error::{AppError, AppResult};
use crate::store::access::{self, Caller};
use crate::store::audit::{self, Audit};
use crate::store::models::User;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde_json::json;
use uuid::Uuid;

/// The mode and patterns of an organization.
pub fn rules(conn: &mut PgConnection, org: Uuid) -> AppResult<(DomainMode, Vec<String>)> {
    let mode: String = organizations::table
        .find(org)
        .select(organizations::guest_domain_mode)
        .first(conn)?;
    let mode = DomainMode::parse(&mode);
    if mode == DomainMode::None {
        return Ok((mode, Vec::new()));
    }
    let patterns = guest_domain_rules::table
        .filter(guest_domain_rules::organization_id.eq(org))
        .order(guest_domain_rules::pattern.asc())
        .select(guest_domain_rules::pattern)
        .load(conn)?;
    Ok((mode, patterns))
}

/// Replaces the rules (organization admins). `NONE` clears the list; guests already invited are not
/// touched (see [`outside`]).
pub fn set_rules(
    conn: &mut PgConnection,
    caller: &Caller,
    mode: DomainMode,
    raw: &[String],
    now: DateTime<Utc>,
) -> AppResult<(DomainMode, Vec<String>)> {
    if !caller.org_admin {
        return Err(AppError::Forbidden);
    }
    let mut patterns = raw
        .iter()
        .map(|p| domains::parse_pattern(p).map_err(|m| AppError::invalid("domains", m)))
        .collect::<AppResult<Vec<_>>>()?;
    patterns.sort();
    patterns.dedup();
    if patterns.len() > 500 {
        return Err(AppError::invalid("domains", "at most 500 patterns"));
    }
    if mode == DomainMode::None && !patterns.is_empty() {
        return Err(AppError::invalid("domains", "a NONE mode takes no domains"));
    }
    if mode == DomainMode::Allow && patterns.is_empty() {
        return Err(AppError::invalid(
            "domains",
            "an allow list needs at least one domain",
        ));
    }
    let org = caller.user.organization_id;
    conn.transaction(|conn| {
        let before = rules(conn, org)?;
        diesel::update(organizations::table.find(org))
            .set(organizations::guest_domain_mode.eq(mode.as_str()))
            .execute(conn)?;
        diesel::delete(
            guest_domain_rules::table.filter(guest_domain_rules::organization_id.eq(org)),
        )
        .execute(conn)?;
        let rows: Vec<_> = patterns
            .iter()
            .map(|p| {
                (
                    guest_domain_rules::organization_id.eq(org),
                    guest_domain_rules::pattern.eq(p),
                    guest_domain_rules::created_at.eq(now),
                )
            })
            .collect();
        if !rows.is_empty() {
            diesel::insert_into(guest_domain_rules::table)
                .values(&rows)
                .execute(conn)?;
        }
        audit::record(
            conn,
            Audit {
                organization_id: org,
                actor_id: Some(caller.user.id),
                action: "guestDomainRules.set",
                target_type: "organization",
                target_id: org.to_string(),
                site_id: None,
                before: Some(json!({ "mode": before.0.as_str(), "domains": before.1 })),
                after: Some(json!({ "mode": mode.as_str(), "domains": patterns })),
                created_at: now,
            },
        )?;
        Ok((mode, patterns.clone()))
    })
}

/// Whether an address may be invited as a guest now, by its domain (`EmailAddress::domain` for a new
/// address, the stored `users.email_domain` for a user: the same reading, the text after the last `@`).
pub fn allows(mode: DomainMode, patterns: &[String], email_domain: &str) -> bool {
    domains::allowed(mode, patterns, email_domain)
}

/// Guests of a site whose address the current rules would refuse (site admins): listed for review,
/// never removed by a rule change.
pub fn outside(conn: &mut PgConnection, caller: &Caller, site_id: Uuid) -> AppResult<Vec<User>> {
    access::site_access(conn, caller, site_id)?.require_admin()?;
    let (mode, patterns) = rules(conn, caller.user.organization_id)?;
    if mode == DomainMode::None {
        return Ok(Vec::new());
    }
    let guests = crate::store::guests::all(conn, site_id, &Default::default())?;
    Ok(guests
        .into_iter()
        .filter(|u| !allows(mode, &patterns, &u.email_domain))
        .collect())
}
