//! People on a site: the people directory, site settings and seat usage.

use crate::db::schema::*;
use crate::domain::ProductRole;
use crate::domain::seats::{self, Usage};
use crate::error::{AppError, AppResult};
use crate::store::access::{self, Caller};
use crate::store::audit::{self, Audit};
use crate::store::models::{Site, User};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde_json::json;
use uuid::Uuid;

pub fn seat_usage(conn: &mut PgConnection, site: &Site, now: DateTime<Utc>) -> AppResult<Usage> {
    Ok(seats::usage(
        site.limits(),
        access::counts(conn, site.id, now)?,
    ))
}

#[derive(Clone, Debug, Default)]
pub struct SiteSettings {
    pub user_limit: Option<i32>,
    pub guest_ratio: Option<i32>,
    pub invite_expiry_days: Option<i32>,
    /// `Some(None)` removes the maximum.
    pub max_guest_lifetime_days: Option<Option<i32>>,
    pub guest_reminder_days: Option<i32>,
}

/// Changes limits. Never refused for usage: lowering a limit below usage leaves the site over it.
pub fn update_settings(
    conn: &mut PgConnection,
    caller: &Caller,
    site_id: Uuid,
    s: SiteSettings,
    now: DateTime<Utc>,
) -> AppResult<Site> {
    access::site_access(conn, caller, site_id)?.require_admin()?;
    if s.user_limit.is_some_and(|v| !(0..=10_000_000).contains(&v)) {
        return Err(AppError::invalid(
            "userLimit",
            "must be between 0 and 10,000,000",
        ));
    }
    if s.guest_ratio.is_some_and(|v| !(0..=1000).contains(&v)) {
        return Err(AppError::invalid(
            "guestRatio",
            "must be between 0 and 1,000",
        ));
    }
    if s.max_guest_lifetime_days
        .flatten()
        .is_some_and(|v| !(1..=3650).contains(&v))
    {
        return Err(AppError::invalid(
            "maxGuestLifetimeDays",
            "must be between 1 and 3,650",
        ));
    }
    if s.guest_reminder_days
        .is_some_and(|v| !(0..=365).contains(&v))
    {
        return Err(AppError::invalid(
            "guestReminderDays",
            "must be between 0 and 365",
        ));
    }
    if s.invite_expiry_days.is_some_and(|v| !(1..=90).contains(&v)) {
        return Err(AppError::invalid(
            "inviteExpiryDays",
            "must be between 1 and 90",
        ));
    }
    conn.transaction(|conn| {
        let old = access::lock_site(conn, site_id)?;
        let site: Site = diesel::update(sites::table.find(site_id))
            .set((
                sites::user_limit.eq(s.user_limit.unwrap_or(old.user_limit)),
                sites::guest_ratio.eq(s.guest_ratio.unwrap_or(old.guest_ratio)),
                sites::invite_expiry_days.eq(s.invite_expiry_days.unwrap_or(old.invite_expiry_days)),
                sites::max_guest_lifetime_days
                    .eq(s.max_guest_lifetime_days.unwrap_or(old.max_guest_lifetime_days)),
                sites::guest_reminder_days.eq(s.guest_reminder_days.unwrap_or(old.guest_reminder_days)),
            ))
            .returning(Site::as_returning())
            .get_result(conn)?;
        audit::record(
            conn,
            Audit {
                organization_id: site.organization_id,
                actor_id: Some(caller.user.id),
                action: "site.settings",
                target_type: "site",
                target_id: site.id.to_string(),
                site_id: Some(site.id),
                before: Some(json!({ "userLimit": old.user_limit, "guestRatio": old.guest_ratio, "inviteExpiryDays": old.invite_expiry_days, "maxGuestLifetimeDays": old.max_guest_lifetime_days, "guestReminderDays": old.guest_reminder_days })),
                after: Some(json!({ "userLimit": site.user_limit, "guestRatio": site.guest_ratio, "inviteExpiryDays": site.invite_expiry_days, "maxGuestLifetimeDays": site.max_guest_lifetime_days, "guestReminderDays": site.guest_reminder_days })),
                created_at: now,
            },
        )?;
        Ok(site)
    })
}

/// Users with access to a site (optionally only one role, only external or internal people), ordered
/// by email, keyset-paginated on `(email_normalized, id)`: the page walks `site_members_by_email`
/// from the key. Returns each user with their maintained role, and the total (the site's counters
/// when nothing narrows the list).
pub fn users_with_access(
    conn: &mut PgConnection,
    site_id: Uuid,
    only: Option<ProductRole>,
    external: Option<bool>,
    after: Option<(String, Uuid)>,
    limit: i64,
) -> AppResult<(Vec<(User, ProductRole)>, i64)> {
    macro_rules! listed {
        () => {{
            let mut q = site_members::table
                .filter(site_members::site_id.eq(site_id))
                .into_boxed::<diesel::pg::Pg>();
            if let Some(r) = only {
                q = q.filter(site_members::role.eq(r.rank()));
            }
            if let Some(e) = external {
                q = q.filter(site_members::external.eq(e));
            }
            q
        }};
    }
    let mut q = listed!();
    if let Some((e, id)) = after {
        q = q.filter(crate::store::after_key("site_members", e, id));
    }
    // Ids and roles from the index range, then the people by id (see `guests::list`).
    let page: Vec<(Uuid, i16)> = q
        .order((site_members::email_normalized, site_members::user_id))
        .limit(limit)
        .select((site_members::user_id, site_members::role))
        .load(conn)?;
    let ids: Vec<Uuid> = page.iter().map(|(id, _)| *id).collect();
    let people = users_in_order(conn, &ids)?;
    let roles: std::collections::HashMap<Uuid, i16> = page.into_iter().collect();
    let rows: Vec<(User, i16)> = people
        .into_iter()
        .filter_map(|u| Some((roles.get(&u.id).copied()?, u)))
        .map(|(r, u)| (u, r))
        .collect();
    let total = match (only, external) {
        (None | Some(ProductRole::Guest), None) => {
            let c = crate::store::changes::state::stored_counts(conn, site_id)?;
            if only.is_some() {
                c.guests
            } else {
                c.paid + c.guests
            }
        }
        _ => listed!().count().get_result(conn)?,
    };
    let out = rows
        .into_iter()
        .filter_map(|(u, r)| Some((u, ProductRole::from_rank(r)?)))
        .collect();
    Ok((out, total))
}

/// People by id, in the order of `ids` (a page's order); ids of no account are left out.
pub fn users_in_order(conn: &mut PgConnection, ids: &[Uuid]) -> AppResult<Vec<User>> {
    let mut found: std::collections::HashMap<Uuid, User> = users::table
        .filter(users::id.eq_any(ids))
        .select(User::as_select())
        .load(conn)?
        .into_iter()
        .map(|u| (u.id, u))
        .collect();
    Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
}

/// A user of the caller's organization; any other id is `NOT_FOUND`.
pub fn user_in_org(conn: &mut PgConnection, org: Uuid, id: Uuid) -> AppResult<User> {
    users::table
        .find(id)
        .filter(users::organization_id.eq(org))
        .select(User::as_select())
        .first(conn)
        .optional()?
        .ok_or(AppError::NotFound("User"))
}

pub fn users_by_ids(conn: &mut PgConnection, ids: &[Uuid]) -> AppResult<Vec<User>> {
    Ok(users::table
        .filter(users::id.eq_any(ids))
        .select(User::as_select())
        .load(conn)?)
}

/// Narrows the audit trail; every given field applies.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    pub actor_id: Option<Uuid>,
    pub target_id: Option<String>,
    pub action: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

/// One event of an organization's audit trail; any other id is `NOT_FOUND`.
pub fn audit_event_in_org(
    conn: &mut PgConnection,
    org: Uuid,
    id: i64,
) -> AppResult<crate::store::models::AuditEvent> {
    audit_events::table
        .filter(audit_events::organization_id.eq(org))
        .filter(audit_events::id.eq(id))
        .select(crate::store::models::AuditEvent::as_select())
        .first(conn)
        .optional()?
        .ok_or(AppError::NotFound("Audit event"))
}

pub fn audit_events(
    conn: &mut PgConnection,
    org: Uuid,
    filter: &AuditFilter,
    before_id: Option<i64>,
    limit: i64,
) -> AppResult<(Vec<crate::store::models::AuditEvent>, i64)> {
    let filtered = || {
        let mut q = audit_events::table
            .filter(audit_events::organization_id.eq(org))
            .into_boxed();
        if let Some(a) = filter.actor_id {
            q = q.filter(audit_events::actor_id.eq(a));
        }
        if let Some(t) = &filter.target_id {
            q = q.filter(audit_events::target_id.eq(t.clone()));
        }
        if let Some(a) = &filter.action {
            q = q.filter(audit_events::action.eq(a.clone()));
        }
        if let Some(s) = filter.since {
            q = q.filter(audit_events::created_at.ge(s));
        }
        if let Some(u) = filter.until {
            q = q.filter(audit_events::created_at.lt(u));
        }
        q
    };
    let total: i64 = filtered().count().get_result(conn)?;
    let mut q = filtered();
    if let Some(b) = before_id {
        q = q.filter(audit_events::id.lt(b));
    }
    let rows = q
        .order(audit_events::id.desc())
        .limit(limit)
        .select(crate::store::models::AuditEvent::as_select())
        .load(conn)?;
    Ok((rows, total))
}

/// Checks that the caller may read the people directory of a site (admins and paid users).
pub fn require_directory_access(
    conn: &mut PgConnection,
    caller: &Caller,
    site_id: Uuid,
) -> AppResult<Site> {
    let a = access::site_access(conn, caller, site_id)?;
    if !a.sees_whole_site() {
        return Err(AppError::Forbidden);
    }
    Ok(a.site)
}
