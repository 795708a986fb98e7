//! The organization's guest domain rules: which email domains may be invited as guests.

use crate::db::schema::*;
use crate::domain::domains::{self, DomainMode};
use crate::error::{AppError, AppResult};
use crate::store::access::{self, Caller};
use crate::store::audit::{self, Audit};
use crate::store::guests::GuestFilter;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde_json::json;
use uuid::Uuid;

/// The mode and patterns of an organization.
pub fn rules(conn: &mut PgConnection, org: Uuid) -> AppResult<(DomainMode, Vec<String>)> {
    let mode: DomainMode = organizations::table
        .find(org)
        .select(organizations::guest_domain_mode)
        .first(conn)?;
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
            .set(organizations::guest_domain_mode.eq(mode))
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
            Audit::new(org, caller.user.id, "guestDomainRules.set", now)
                .target("organization", org)
                .before(json!({ "mode": before.0.as_str(), "domains": before.1 }))
                .after(json!({ "mode": mode.as_str(), "domains": patterns })),
        )?;
        Ok((mode, patterns.clone()))
    })
}

/// Whether an address may be invited as a guest now, by its domain (`EmailAddress::domain` for a new
/// address, the stored `users.email_domain` for a user: the same reading, the text after the last `@`).
pub fn allows(mode: DomainMode, patterns: &[String], email_domain: &str) -> bool {
    domains::allowed(mode, patterns, email_domain)
}

/// The filter of a site's guests whose address the current rules would refuse (site admins;
/// `guests::list` pages them in email order): listed for review, never removed by a rule change.
pub fn outside(conn: &mut PgConnection, caller: &Caller, site_id: Uuid) -> AppResult<GuestFilter> {
    access::site_access(conn, caller, site_id)?.require_admin()?;
    let rules = rules(conn, caller.user.organization_id)?;
    Ok(GuestFilter {
        refused_by: Some(rules),
        ..Default::default()
    })
}

/// The addresses `mode` and `patterns` refuse ([`allows`] false), as one SQL condition on
/// `users.email_domain`, so a list of the guests outside the rules is paged in SQL. The translation
/// is exact, not an approximation: a stored pattern is lower case letters, digits, `-` and `.`
/// (`domains::parse_pattern`), none of them special to LIKE; `example.com` matches by equality, as
/// `domains::matches` compares; `*.example.com` matches `domain LIKE '%_.example.com'`: at least one
/// character, then `.example.com` at the end, which is `matches`' "a non-empty head ending with a
/// dot". Both read the same stored column, byte for byte. `tests/api/external.rs` checks the two agree.
pub(crate) fn refused(
    mode: DomainMode,
    patterns: &[String],
) -> diesel::expression::SqlLiteral<
    diesel::sql_types::Bool,
    impl diesel::query_builder::QueryFragment<diesel::pg::Pg> + diesel::query_builder::QueryId,
> {
    use diesel::sql_types::{Array, Bool, Text};
    let (mut exact, mut under) = (Vec::new(), Vec::new());
    for p in patterns {
        match p.strip_prefix("*.") {
            Some(suffix) => {
                let mut like = String::from("%_.");
                for c in suffix.chars() {
                    if matches!(c, '%' | '_' | '\\') {
                        like.push('\\');
                    }
                    like.push(c);
                }
                under.push(like);
            }
            None => exact.push(p.clone()),
        }
    }
    // ALLOW refuses the addresses no pattern matches, BLOCK those one matches, NONE nobody.
    diesel::dsl::sql::<Bool>("(")
        .bind::<Bool, _>(mode != DomainMode::None)
        .sql(" AND ((users.email_domain = ANY(")
        .bind::<Array<Text>, _>(exact)
        .sql(") OR users.email_domain LIKE ANY(")
        .bind::<Array<Text>, _>(under)
        .sql(")) = ")
        .bind::<Bool, _>(mode == DomainMode::Block)
        .sql("))")
}
