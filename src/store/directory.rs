//! People on a site: the people directory, site settings and seat usage.

use crate::db::schema::*;
use crate::domain::ProductRole;
use crate::domain::seats::{self, Usage};
use crate::error::{AppError, AppResult};
use crate::store::access::{self, Caller};
use crate::store::audit::{self, Audit};
use crate::store::guests;
use crate::store::models::{Site, User};
use crate::store::order::{After, ListKey, ListOrder, SortField};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
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
            Audit::new(site.organization_id, caller.user.id, "site.settings", now)
.target("site", site.id)
.site(site.id)
.before(json!({ "userLimit": old.user_limit, "guestRatio": old.guest_ratio, "inviteExpiryDays": old.invite_expiry_days, "maxGuestLifetimeDays": old.max_guest_lifetime_days, "guestReminderDays": old.guest_reminder_days }))
.after(json!({ "userLimit": site.user_limit, "guestRatio": site.guest_ratio, "inviteExpiryDays": site.invite_expiry_days, "maxGuestLifetimeDays": site.max_guest_lifetime_days, "guestReminderDays": site.guest_reminder_days })),
        )?;
        Ok(site)
    })
}

/// What the people directory is sorted by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum UserSort {
    /// The normalized address (`site_members_by_email`).
    #[default]
    Email,
    /// The display name, letter case aside (`users_org_display_name`).
    DisplayName,
    /// The last activity; never active counts as the earliest (`users_org_last_active`).
    LastActiveAt,
}

/// The directory's order and cursors (the guest list's shape: [`ListOrder`], [`ListKey`]).
pub type UserOrder = ListOrder<UserSort>;
pub type UserKey = ListKey<UserSort>;

impl SortField for UserSort {
    fn is_text(self) -> bool {
        matches!(self, UserSort::Email | UserSort::DisplayName)
    }
}

impl UserOrder {
    /// The cursor of a user in this order.
    fn key(self, u: &User) -> UserKey {
        let (text, time) = match self.by {
            UserSort::Email => (Some(u.email_normalized.clone()), None),
            UserSort::DisplayName => (Some(u.display_name.clone()), None),
            UserSort::LastActiveAt => (None, u.last_active_at),
        };
        self.key_of(text, time, u.id)
    }
}

/// A user of the directory: the cursor that continues after them, the user and their role.
pub type Listed = (UserKey, User, ProductRole);

/// What narrows the directory: the site, and optionally one role and external or internal people.
#[derive(Clone, Copy)]
struct Narrowing {
    site_id: Uuid,
    only: Option<ProductRole>,
    external: Option<bool>,
}

/// The directory's narrowing on the maintained rows (`site_members`, or `from` a join that holds
/// it), as a boxed query.
macro_rules! listed {
    ($from:expr, $narrow:expr) => {{
        let n: Narrowing = $narrow;
        let mut q = $from
            .filter(site_members::site_id.eq(n.site_id))
            .into_boxed::<diesel::pg::Pg>();
        if let Some(r) = n.only {
            q = q.filter(site_members::role.eq(r.rank()));
        }
        if let Some(e) = n.external {
            q = q.filter(site_members::external.eq(e));
        }
        q
    }};
}

/// Users with access to a site (optionally only one role, only external or internal people), in
/// `order`, keyset-paginated: each user with the cursor that continues after them and their
/// maintained role, and the total (the site's counters when nothing narrows the list). A page walks
/// one index from the cursor and stops at `limit`:
/// - `EMAIL`: `site_members_by_email`, the site's members by address.
/// - `DISPLAY_NAME`, `LAST_ACTIVE_AT`: the organization's people in that order
///   (`users_org_display_name`, `users_org_last_active`), each looked up in `site_members` by key,
///   with the sort expressions of the guest list (`guests::NAME_KEY`, `guests::ACTIVE_KEY`).
///
/// A cursor of another order is `INVALID_INPUT`.
pub fn users_with_access(
    conn: &mut PgConnection,
    site_id: Uuid,
    only: Option<ProductRole>,
    external: Option<bool>,
    order: UserOrder,
    after: Option<UserKey>,
    limit: i64,
) -> AppResult<(Vec<Listed>, i64)> {
    let after = after.map(|k| order.after(k)).transpose()?;
    let narrow = Narrowing {
        site_id,
        only,
        external,
    };
    let rows = match order.by {
        UserSort::Email => by_email(conn, narrow, order.descending, after, limit)?,
        UserSort::DisplayName | UserSort::LastActiveAt => {
            by_person(conn, narrow, order, after, limit)?
        }
    };
    let total = match (only, external) {
        (None | Some(ProductRole::Guest), None) => {
            let c = crate::store::changes::state::stored_counts(conn, site_id)?;
            if only.is_some() {
                c.guests
            } else {
                c.paid + c.guests
            }
        }
        _ => listed!(site_members::table, narrow)
            .count()
            .get_result(conn)?,
    };
    let out = rows
        .into_iter()
        .filter_map(|(u, r)| Some((order.key(&u), u, ProductRole::from_rank(r)?)))
        .collect();
    Ok((out, total))
}

/// A page of the directory by address: ids and roles from `site_members_by_email`'s range, then the
/// people by id (see `guests::list`).
fn by_email(
    conn: &mut PgConnection,
    narrow: Narrowing,
    desc: bool,
    after: Option<After>,
    limit: i64,
) -> AppResult<Vec<(User, i16)>> {
    let mut q = listed!(site_members::table, narrow);
    match after {
        Some(a) if !desc => {
            q = q.filter(crate::store::after_key("site_members", a.text, a.id));
        }
        Some(a) => {
            q = q.filter(guests::after_text(
                "site_members.email_normalized",
                "",
                "site_members.user_id",
                true,
                a.text,
                a.id,
            ));
        }
        None => {}
    }
    q = if desc {
        q.order((
            site_members::email_normalized.desc(),
            site_members::user_id.desc(),
        ))
    } else {
        q.order((site_members::email_normalized, site_members::user_id))
    };
    // Ids and roles from the index range, then the people by id (see `guests::list`).
    let page: Vec<(Uuid, i16)> = q
        .limit(limit)
        .select((site_members::user_id, site_members::role))
        .load(conn)?;
    let ids: Vec<Uuid> = page.iter().map(|(id, _)| *id).collect();
    let people = users_in_order(conn, &ids)?;
    let roles: std::collections::HashMap<Uuid, i16> = page.into_iter().collect();
    Ok(people
        .into_iter()
        .filter_map(|u| Some((roles.get(&u.id).copied()?, u)))
        .map(|(r, u)| (u, r))
        .collect())
}

/// A page of the directory by display name or last activity: the organization's people in that
/// order (`users_org_display_name`, `users_org_last_active`), each looked up in `site_members`.
fn by_person(
    conn: &mut PgConnection,
    narrow: Narrowing,
    order: UserOrder,
    after: Option<After>,
    limit: i64,
) -> AppResult<Vec<(User, i16)>> {
    let desc = order.descending;
    let in_org = users::organization_id.nullable().eq(sites::table
        .find(narrow.site_id)
        .select(sites::organization_id)
        .single_value());
    let mut q = listed!(site_members::table.inner_join(users::table), narrow).filter(in_org);
    let (key, time) = match order.by {
        UserSort::DisplayName => (guests::NAME_KEY, false),
        _ => (guests::ACTIVE_KEY, true),
    };
    if let Some(a) = after {
        q = if time {
            q.filter(guests::after_time(
                key,
                "-infinity",
                "users.id",
                desc,
                a.time,
                a.id,
            ))
        } else {
            q.filter(guests::after_text(
                key, "lower", "users.id", desc, a.text, a.id,
            ))
        };
    }
    // The key's SQL type only matters to the ORDER BY clause, which diesel writes as is.
    let sort = diesel::dsl::sql::<diesel::sql_types::Text>(key);
    q = if desc {
        q.order((sort.desc(), users::id.desc()))
    } else {
        q.order((sort.asc(), users::id.asc()))
    };
    Ok(q.limit(limit)
        .select((User::as_select(), site_members::role))
        .load(conn)?)
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
