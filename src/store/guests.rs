//! Guests and their one space per site: the guest list, and assigning, moving and unassigning.

use crate::db::schema::*;
use crate::domain::ProductRole;
use crate::domain::domains::DomainMode;
use crate::domain::status::{DeliveryStatus, InviteStatus};
use crate::error::{AppError, AppResult};
use crate::store::access::{self, Caller};
use crate::store::audit::{self, Audit};
use crate::store::changes::{self, Reach};
use crate::store::content;
use crate::store::models::{Space, User};
use crate::store::order::{After, ListKey, ListOrder, SortField};
use chrono::{DateTime, Utc};
use diesel::expression::SqlLiteral;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::HashMap;
use uuid::Uuid;

/// At most this many guests are assigned or unassigned in one call.
pub const MAX_GUESTS_PER_CALL: usize = 200;

/// Filters of the guest list.
#[derive(Clone, Debug, Default)]
pub struct GuestFilter {
    pub space_id: Option<Uuid>,
    pub without_space: bool,
    /// Matched case-insensitively against email and display name.
    pub search: Option<String>,
    /// Only external (true) or internal (false) guests.
    pub external: Option<bool>,
    /// Only guests not active since (their last activity, or their account's creation).
    pub inactive_before: Option<DateTime<Utc>>,
    /// Only guests this person sponsors on the site.
    pub sponsor: Option<Uuid>,
    /// Only guests nobody answers for: no sponsor, or one who may no longer sponsor on the site
    /// (the rule is [`crate::store::lifetimes::sponsor_acts`]).
    pub without_acting_sponsor: bool,
    /// Only guests whose address these guest domain rules refuse (the rule in SQL is
    /// [`crate::store::domain_rules::refused`]).
    pub refused_by: Option<(DomainMode, Vec<String>)>,
}

impl GuestFilter {
    /// Whether the filter keeps nobody whatever the site holds (domain rules of mode `NONE` refuse
    /// no address): the list and its count are empty without a read.
    fn keeps_nobody(&self) -> bool {
        matches!(&self.refused_by, Some((DomainMode::None, _)))
    }
}

/// `%term%` for LIKE, with the pattern characters of the term taken literally.
fn like_pattern(term: &str) -> String {
    let mut p = String::from("%");
    for c in term.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

fn search_pattern(filter: &GuestFilter) -> Option<String> {
    filter
        .search
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(like_pattern)
}

/// The guest list's filters on the maintained rows (`site_members` joined with `users`, or `from` a
/// join that holds both), as a boxed query diesel prepares once per connection.
macro_rules! guests_of {
    (from $from:expr; $site:expr, $filter:expr) => {{
        let f: &GuestFilter = $filter;
        let mut q = $from
            .filter(site_members::site_id.eq($site))
            .filter(site_members::role.eq(ProductRole::Guest.rank()))
            .into_boxed::<diesel::pg::Pg>();
        if let Some(space) = f.space_id {
            q = q.filter(site_members::guest_space_id.eq(space));
        }
        if f.without_space {
            q = q.filter(site_members::guest_space_id.is_null());
        }
        if let Some(p) = search_pattern(f) {
            q = q.filter(users::email_normalized.like(p.clone()).or(
                diesel::dsl::sql::<Bool>("lower(users.display_name) LIKE ").bind::<Text, _>(p),
            ));
        }
        if let Some(e) = f.external {
            q = q.filter(site_members::external.eq(e));
        }
        if let Some(sponsor) = f.sponsor {
            // In SQL with its own alias: `from` may join guest_terms already.
            q = q.filter(
                diesel::dsl::sql::<Bool>(
                    "EXISTS (SELECT 1 FROM guest_terms gsp WHERE gsp.site_id = site_members.site_id \
                     AND gsp.user_id = site_members.user_id AND gsp.sponsor_id = ",
                )
                .bind::<SqlUuid, _>(sponsor)
                .sql(")"),
            );
        }
        if let Some(t) = f.inactive_before {
            q = q.filter(
                users::last_active_at
                    .lt(t)
                    .or(users::last_active_at.is_null().and(users::created_at.lt(t))),
            );
        }
        if f.without_acting_sponsor {
            // No terms row whose sponsor acts: no row, no sponsor, or a sponsor who may not.
            q = q.filter(diesel::dsl::sql::<Bool>(&format!(
                "NOT EXISTS (SELECT 1 FROM guest_terms gts WHERE gts.site_id = site_members.site_id \
                 AND gts.user_id = site_members.user_id AND {})",
                crate::store::lifetimes::sponsor_acts("gts.sponsor_id", "gts.site_id")
            )));
        }
        if let Some((mode, patterns)) = &f.refused_by {
            q = q.filter(crate::store::domain_rules::refused(*mode, patterns));
        }
        q
    }};
    ($site:expr, $filter:expr) => {
        guests_of!(from site_members::table.inner_join(users::table); $site, $filter)
    };
}

/// What the guest list is sorted by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum GuestSort {
    /// The normalized address (`site_members_guests`).
    #[default]
    Email,
    /// The display name, letter case aside (`users_org_display_name`).
    DisplayName,
    /// The last activity; never active counts as the earliest (`users_org_last_active`).
    LastActiveAt,
    /// The end of access on the site; no end counts as the latest (`guest_terms_site_ends`, and
    /// `site_members_guests_by_id` for guests without terms).
    AccessEndsAt,
}

/// The guest list's order and cursors ([`ListOrder`], [`ListKey`]: the directory's too).
pub type GuestOrder = ListOrder<GuestSort>;
pub type GuestKey = ListKey<GuestSort>;

impl SortField for GuestSort {
    fn is_text(self) -> bool {
        matches!(self, GuestSort::Email | GuestSort::DisplayName)
    }
}

impl GuestOrder {
    /// The cursor of a guest in this order (`ends_at`: their end of access on the site).
    fn key(self, u: &User, ends_at: Option<DateTime<Utc>>) -> GuestKey {
        let (text, time) = match self.by {
            GuestSort::Email => (Some(u.email_normalized.clone()), None),
            GuestSort::DisplayName => (Some(u.display_name.clone()), None),
            GuestSort::LastActiveAt => (None, u.last_active_at),
            GuestSort::AccessEndsAt => (None, ends_at),
        };
        self.key_of(text, time, u.id)
    }
}

/// `(key, id) > (value, after)` (`<` descending) as one row comparison on text, so the page walks
/// the order's index from the cursor; `wrap` applies the key's function to the cursor's value.
pub(crate) fn after_text(
    key: &str,
    wrap: &str,
    id: &str,
    desc: bool,
    value: String,
    after: Uuid,
) -> SqlLiteral<
    Bool,
    impl diesel::query_builder::QueryFragment<diesel::pg::Pg> + diesel::query_builder::QueryId,
> {
    let op = if desc { "<" } else { ">" };
    diesel::dsl::sql::<Bool>(&format!("({key}, {id}) {op} ({wrap}("))
        .bind::<Text, _>(value)
        .sql("), ")
        .bind::<SqlUuid, _>(after)
        .sql(")")
}

/// The same on a time key whose nulls stand for `missing` (`-infinity` or `infinity`).
pub(crate) fn after_time(
    key: &str,
    missing: &str,
    id: &str,
    desc: bool,
    value: Option<DateTime<Utc>>,
    after: Uuid,
) -> SqlLiteral<
    Bool,
    impl diesel::query_builder::QueryFragment<diesel::pg::Pg> + diesel::query_builder::QueryId,
> {
    let op = if desc { "<" } else { ">" };
    diesel::dsl::sql::<Bool>(&format!("({key}, {id}) {op} (COALESCE("))
        .bind::<Nullable<Timestamptz>, _>(value)
        .sql(&format!("::timestamptz, '{missing}'::timestamptz), "))
        .bind::<SqlUuid, _>(after)
        .sql(")")
}

/// The display name as the list sorts it (letter case aside), in `users_org_display_name`.
pub(crate) const NAME_KEY: &str = "lower(users.display_name)";
/// The last activity as the list sorts it (never active: the earliest), in `users_org_last_active`.
pub(crate) const ACTIVE_KEY: &str = "COALESCE(users.last_active_at, '-infinity'::timestamptz)";
/// The end of access as the list sorts it (no end: the latest), in `guest_terms_site_ends`.
const ENDS_KEY: &str = "COALESCE(guest_terms.ends_at, 'infinity'::timestamptz)";

/// The guests of a site (active accounts whose maintained role is GUEST) that `filter` keeps, in
/// `order`, keyset-paginated: each guest with the cursor that continues after them. A page walks one
/// index from the cursor and stops at `limit`:
/// - `EMAIL`: `site_members_guests`, the site's guests by address.
/// - `DISPLAY_NAME`, `LAST_ACTIVE_AT`: the organization's people in that order
///   (`users_org_display_name`, `users_org_last_active`), each looked up in `site_members` by key;
///   the planner may instead sort the site's guests when they are few.
/// - `ACCESS_ENDS_AT`: two walks of at most `limit` each, merged: the site's terms by end
///   (`guest_terms_site_ends`) and the guests without terms by id (`site_members_guests_by_id`, all
///   of them at "no end").
///
/// A cursor of another order is `INVALID_INPUT`.
pub fn list(
    conn: &mut PgConnection,
    site_id: Uuid,
    filter: &GuestFilter,
    order: GuestOrder,
    after: Option<GuestKey>,
    limit: i64,
) -> AppResult<Vec<(GuestKey, User)>> {
    let after = after.map(|k| order.after(k)).transpose()?;
    if filter.keeps_nobody() {
        return Ok(Vec::new());
    }
    let desc = order.descending;
    let rows: Vec<(User, Option<DateTime<Utc>>)> = match order.by {
        GuestSort::Email => email_page(conn, site_id, filter, desc, after, limit)?,
        GuestSort::DisplayName => name_page(conn, site_id, filter, desc, after, limit)?,
        GuestSort::LastActiveAt => active_page(conn, site_id, filter, desc, after, limit)?,
        GuestSort::AccessEndsAt => ends_page(conn, site_id, filter, desc, after, limit)?,
    };
    Ok(rows
        .into_iter()
        .map(|(u, ends)| (order.key(&u, ends), u))
        .collect())
}

/// The person belongs to the site's organization: the condition that lets the planner walk the
/// organization's people in an order (`users_org_display_name`, `users_org_last_active`).
macro_rules! in_org_of {
    ($site:expr) => {
        users::organization_id.nullable().eq(sites::table
            .find($site)
            .select(sites::organization_id)
            .single_value())
    };
}

/// A page of guests by address: `site_members_guests` from the cursor.
fn email_page(
    conn: &mut PgConnection,
    site_id: Uuid,
    filter: &GuestFilter,
    desc: bool,
    after: Option<After>,
    limit: i64,
) -> AppResult<Vec<(User, Option<DateTime<Utc>>)>> {
    let mut q = guests_of!(site_id, filter);
    if let Some(a) = after {
        q = q.filter(after_text(
            "site_members.email_normalized",
            "",
            "site_members.user_id",
            desc,
            a.text,
            a.id,
        ));
    }
    q = if desc {
        q.order((
            site_members::email_normalized.desc(),
            site_members::user_id.desc(),
        ))
    } else {
        q.order((site_members::email_normalized, site_members::user_id))
    };
    let users: Vec<User> = q.limit(limit).select(User::as_select()).load(conn)?;
    Ok(users.into_iter().map(|u| (u, None)).collect())
}

/// A page of guests by display name: the organization's people in `users_org_display_name`'s
/// order, each looked up in `site_members`.
fn name_page(
    conn: &mut PgConnection,
    site_id: Uuid,
    filter: &GuestFilter,
    desc: bool,
    after: Option<After>,
    limit: i64,
) -> AppResult<Vec<(User, Option<DateTime<Utc>>)>> {
    let mut q = guests_of!(site_id, filter).filter(in_org_of!(site_id));
    if let Some(a) = after {
        q = q.filter(after_text(
            NAME_KEY, "lower", "users.id", desc, a.text, a.id,
        ));
    }
    let key = diesel::dsl::sql::<Text>(NAME_KEY);
    q = if desc {
        q.order((key.desc(), users::id.desc()))
    } else {
        q.order((key.asc(), users::id.asc()))
    };
    let users: Vec<User> = q.limit(limit).select(User::as_select()).load(conn)?;
    Ok(users.into_iter().map(|u| (u, None)).collect())
}

/// A page of guests by last activity: the organization's people in `users_org_last_active`'s
/// order, each looked up in `site_members`.
fn active_page(
    conn: &mut PgConnection,
    site_id: Uuid,
    filter: &GuestFilter,
    desc: bool,
    after: Option<After>,
    limit: i64,
) -> AppResult<Vec<(User, Option<DateTime<Utc>>)>> {
    let mut q = guests_of!(site_id, filter).filter(in_org_of!(site_id));
    if let Some(a) = after {
        q = q.filter(after_time(
            ACTIVE_KEY,
            "-infinity",
            "users.id",
            desc,
            a.time,
            a.id,
        ));
    }
    let key = diesel::dsl::sql::<Timestamptz>(ACTIVE_KEY);
    q = if desc {
        q.order((key.desc(), users::id.desc()))
    } else {
        q.order((key.asc(), users::id.asc()))
    };
    let users: Vec<User> = q.limit(limit).select(User::as_select()).load(conn)?;
    Ok(users.into_iter().map(|u| (u, None)).collect())
}

/// A page of guests by end of access: the guests with terms on the site by their end (no end: the
/// latest), and the guests without terms (whose access does not end either) by id, each walk
/// stopping at `limit`, merged in the order's sense.
fn ends_page(
    conn: &mut PgConnection,
    site_id: Uuid,
    filter: &GuestFilter,
    desc: bool,
    after: Option<After>,
    limit: i64,
) -> AppResult<Vec<(User, Option<DateTime<Utc>>)>> {
    let with_terms = site_members::table.inner_join(users::table).inner_join(
        guest_terms::table.on(guest_terms::site_id
            .eq(site_members::site_id)
            .and(guest_terms::user_id.eq(site_members::user_id))),
    );
    let mut q = guests_of!(from with_terms; site_id, filter);
    if let Some(a) = &after {
        q = q.filter(after_time(
            ENDS_KEY,
            "infinity",
            "guest_terms.user_id",
            desc,
            a.time,
            a.id,
        ));
    }
    let key = diesel::dsl::sql::<Timestamptz>(ENDS_KEY);
    q = if desc {
        q.order((key.desc(), guest_terms::user_id.desc()))
    } else {
        q.order((key.asc(), guest_terms::user_id.asc()))
    };
    let mut rows: Vec<(User, Option<DateTime<Utc>>)> = q
        .limit(limit)
        .select((User::as_select(), guest_terms::ends_at))
        .load(conn)?;

    // The guests without terms all sort at "no end", between each other by id: after a cursor with
    // an end they all follow it ascending and precede it descending.
    let bare_after = match &after {
        None => Some(None),
        Some(a) if a.time.is_none() => Some(Some(a.id)),
        Some(_) if desc => None,
        Some(_) => Some(None),
    };
    if let Some(bare_after) = bare_after {
        let mut q = guests_of!(site_id, filter).filter(diesel::dsl::sql::<Bool>(
            "NOT EXISTS (SELECT 1 FROM guest_terms gtn WHERE gtn.site_id = site_members.site_id \
             AND gtn.user_id = site_members.user_id)",
        ));
        q = match (bare_after, desc) {
            (Some(id), false) => q.filter(site_members::user_id.gt(id)),
            (Some(id), true) => q.filter(site_members::user_id.lt(id)),
            (None, _) => q,
        };
        q = if desc {
            q.order(site_members::user_id.desc())
        } else {
            q.order(site_members::user_id.asc())
        };
        let bare: Vec<User> = q.limit(limit).select(User::as_select()).load(conn)?;
        rows.extend(bare.into_iter().map(|u| (u, None)));
    }
    // Ascending: an end before no end, then by id (the uuid order is the database's, byte by byte).
    rows.sort_by(|(a, ae), (b, be)| {
        let o = (ae.is_none(), ae, a.id).cmp(&(be.is_none(), be, b.id));
        if desc { o.reverse() } else { o }
    });
    rows.truncate(usize::try_from(limit).unwrap_or(0));
    Ok(rows)
}

/// How many guests the list holds with these filters (asked only when a client selects
/// `totalCount`): the site's counter when nothing narrows the list.
pub fn count(conn: &mut PgConnection, site_id: Uuid, filter: &GuestFilter) -> AppResult<i64> {
    if filter.keeps_nobody() {
        return Ok(0);
    }
    let unfiltered = filter.space_id.is_none()
        && !filter.without_space
        && search_pattern(filter).is_none()
        && filter.external.is_none()
        && filter.inactive_before.is_none()
        && filter.sponsor.is_none()
        && !filter.without_acting_sponsor
        && filter.refused_by.is_none();
    if unfiltered {
        return Ok(changes::state::stored_counts(conn, site_id)?.guests);
    }
    Ok(guests_of!(site_id, filter).count().get_result(conn)?)
}

/// How many guests of its site are in each space (only spaces with guests appear).
pub fn guest_counts(conn: &mut PgConnection, space_ids: &[Uuid]) -> AppResult<HashMap<Uuid, i64>> {
    let rows: Vec<(Option<Uuid>, i64)> = site_members::table
        .filter(site_members::guest_space_id.eq_any(space_ids))
        .group_by(site_members::guest_space_id)
        .select((site_members::guest_space_id, diesel::dsl::count_star()))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|(s, n)| Some((s?, n)))
        .collect())
}

/// The spaces of many `(site, user)` pairs at once (the `User.space(siteId)` data loader).
pub fn spaces_of(
    conn: &mut PgConnection,
    keys: &[(Uuid, Uuid)],
) -> AppResult<Vec<((Uuid, Uuid), Space)>> {
    let users: Vec<Uuid> = keys.iter().map(|k| k.1).collect();
    let rows: Vec<(Uuid, Uuid, Space)> = guest_spaces::table
        .inner_join(spaces::table.on(spaces::id.eq(guest_spaces::space_id)))
        .filter(guest_spaces::user_id.eq_any(&users))
        .select((
            guest_spaces::site_id,
            guest_spaces::user_id,
            Space::as_select(),
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter(|(s, u, _)| keys.contains(&(*s, *u)))
        .map(|(s, u, sp)| ((s, u), sp))
        .collect())
}

/// One guest's move.
#[derive(Clone, Debug)]
pub struct Assignment {
    pub user: User,
    pub space: Option<Space>,
    pub previous: Option<Space>,
}

fn load_guests(conn: &mut PgConnection, org: Uuid, user_ids: &[Uuid]) -> AppResult<Vec<User>> {
    if user_ids.is_empty() {
        return Err(AppError::invalid("userIds", "give at least one user"));
    }
    if user_ids.len() > MAX_GUESTS_PER_CALL {
        return Err(AppError::invalid(
            "userIds",
            format!("at most {MAX_GUESTS_PER_CALL} users per call"),
        ));
    }
    let users: Vec<User> = users::table
        .filter(users::id.eq_any(user_ids))
        .filter(users::organization_id.eq(org))
        .select(User::as_select())
        .load(conn)?;
    if users.len() != user_ids.len() {
        return Err(AppError::NotFound("User"));
    }
    Ok(users)
}

fn current_spaces(
    conn: &mut PgConnection,
    site_id: Uuid,
    user_ids: &[Uuid],
) -> AppResult<HashMap<Uuid, Space>> {
    let rows: Vec<(Uuid, Space)> = guest_spaces::table
        .inner_join(spaces::table.on(spaces::id.eq(guest_spaces::space_id)))
        .filter(guest_spaces::site_id.eq(site_id))
        .filter(guest_spaces::user_id.eq_any(user_ids))
        .select((guest_spaces::user_id, Space::as_select()))
        .load(conn)?;
    Ok(rows.into_iter().collect())
}

/// Refuses the batch if someone in it is not a guest of the site right now.
fn require_guests(conn: &mut PgConnection, site_id: Uuid, users: &[User]) -> AppResult<()> {
    let ids: Vec<Uuid> = users.iter().map(|u| u.id).collect();
    let roles = changes::state::roles(conn, &[site_id], &ids)?;
    let not_guests: Vec<&str> = users
        .iter()
        .filter(|u| roles.get(&(site_id, u.id)).copied().flatten() != Some(ProductRole::Guest))
        .map(|u| u.email.as_str())
        .collect();
    if not_guests.is_empty() {
        Ok(())
    } else {
        Err(AppError::invalid(
            "userIds",
            format!("not guests of this site: {}", not_guests.join(", ")),
        ))
    }
}

/// Puts guests in a space, moving those who had another one on the site.
pub fn assign(
    conn: &mut PgConnection,
    caller: &Caller,
    space_id: Uuid,
    mut user_ids: Vec<Uuid>,
    now: DateTime<Utc>,
) -> AppResult<Vec<Assignment>> {
    let (space, a) = content::space_with_access(conn, caller, space_id)?;
    user_ids.sort();
    user_ids.dedup();
    let users = load_guests(conn, caller.user.organization_id, &user_ids)?;
    if !a.manages_guests_of(space.id) {
        return Err(AppError::Forbidden);
    }
    conn.transaction(|conn| {
        changes::lock_org(conn, caller.user.organization_id, Reach::OneSite)?;
        changes::lock_sites(conn, &[space.site_id])?;
        let previous = current_spaces(conn, space.site_id, &user_ids)?;
        // A space admin may only take guests into their space, never out of someone else's.
        if !a.manages_spaces() && previous.values().any(|p| p.id != space.id) {
            return Err(AppError::Forbidden);
        }
        require_guests(conn, space.site_id, &users)?;
        changes::grants::assign_space(conn, space.site_id, &user_ids, space.id, now)?;
        let mut out = Vec::with_capacity(users.len());
        let mut events = Vec::new();
        for u in users {
            let prev = previous.get(&u.id).cloned();
            if prev.as_ref().map(|p| p.id) != Some(space.id) {
                events.push(
                    Audit::new(
                        caller.user.organization_id,
                        caller.user.id,
                        "guest.assignSpace",
                        now,
                    )
                    .target("user", u.id)
                    .site(space.site_id)
                    .before(json!({ "space": prev.as_ref().map(|p| p.id) }))
                    .after(json!({ "space": space.id })),
                );
            }
            out.push(Assignment {
                user: u,
                space: Some(space.clone()),
                previous: prev,
            });
        }
        changes::state::refresh(conn, &[space.site_id], &user_ids, now)?;
        audit::record_all(conn, events)?;
        Ok(out)
    })
}

/// Takes guests out of their space on a site; they stay guests (listed) but reach no content.
pub fn unassign(
    conn: &mut PgConnection,
    caller: &Caller,
    site_id: Uuid,
    mut user_ids: Vec<Uuid>,
    now: DateTime<Utc>,
) -> AppResult<Vec<Assignment>> {
    let a = access::site_access(conn, caller, site_id)?;
    user_ids.sort();
    user_ids.dedup();
    let users = load_guests(conn, caller.user.organization_id, &user_ids)?;
    if !a.manages_spaces() && a.admin_of_spaces.is_empty() {
        return Err(AppError::Forbidden);
    }
    conn.transaction(|conn| {
        changes::lock_org(conn, caller.user.organization_id, Reach::OneSite)?;
        changes::lock_sites(conn, &[site_id])?;
        let previous = current_spaces(conn, site_id, &user_ids)?;
        if !a.manages_spaces() && previous.values().any(|p| !a.manages_guests_of(p.id)) {
            return Err(AppError::Forbidden);
        }
        require_guests(conn, site_id, &users)?;
        changes::grants::unassign_space(conn, site_id, &user_ids)?;
        let mut events = Vec::new();
        let out: Vec<Assignment> = users
            .into_iter()
            .map(|u| {
                let prev = previous.get(&u.id).cloned();
                if let Some(p) = &prev {
                    events.push(
                        Audit::new(
                            caller.user.organization_id,
                            caller.user.id,
                            "guest.unassignSpace",
                            now,
                        )
                        .target("user", u.id)
                        .site(site_id)
                        .before(json!({ "space": p.id }))
                        .after(json!({ "space": null })),
                    );
                }
                Assignment {
                    user: u,
                    space: None,
                    previous: prev,
                }
            })
            .collect();
        changes::state::refresh(conn, &[site_id], &user_ids, now)?;
        audit::record_all(conn, events)?;
        Ok(out)
    })
}

/// Removes many guests at once (site admins): all or none, each exactly as `removeProductAccess`
/// does, each with its own audit event carrying the reason.
pub fn remove_many(
    conn: &mut PgConnection,
    caller: &Caller,
    site_id: Uuid,
    mut user_ids: Vec<Uuid>,
    reason: Option<&str>,
    now: DateTime<Utc>,
) -> AppResult<Vec<User>> {
    // Precedence as everywhere: unknown ids (another organization's) first, then the right.
    let a = access::site_access(conn, caller, site_id)?;
    user_ids.sort();
    user_ids.dedup();
    let users = load_guests(conn, caller.user.organization_id, &user_ids)?;
    a.require_admin()?;
    conn.transaction(|conn| {
        require_guests(conn, site_id, &users)?;
        for u in &users {
            crate::store::grants::remove_access(
                conn,
                crate::store::grants::Removal {
                    actor: Some(caller.user.id),
                    action: "guest.remove",
                    reason,
                    groups_elsewhere: crate::domain::removal::GroupsElsewhere::Refuse,
                },
                site_id,
                u,
                false,
                now,
            )?;
        }
        Ok(users)
    })
}

/// One line of the guest export: a guest of the site, or an address invited as a guest who has not
/// accepted yet (`invited`, no name).
#[derive(QueryableByName, Debug)]
pub struct GuestExportRow {
    #[diesel(sql_type = SqlUuid)]
    pub id: Uuid,
    #[diesel(sql_type = Text)]
    pub email: String,
    #[diesel(sql_type = Text)]
    pub email_normalized: String,
    #[diesel(sql_type = Text)]
    pub name: String,
    /// An open invite rather than a guest.
    #[diesel(sql_type = Bool)]
    pub invited: bool,
    #[diesel(sql_type = Nullable<Text>)]
    pub space: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub sponsor: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub invited_by: Option<String>,
    #[diesel(sql_type = Nullable<diesel::sql_types::Timestamptz>)]
    pub accepted_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<diesel::sql_types::Timestamptz>)]
    pub access_ends_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<diesel::sql_types::Timestamptz>)]
    pub last_active_at: Option<DateTime<Utc>>,
    /// How the latest invite email went.
    #[diesel(sql_type = Nullable<Text>)]
    pub delivery: Option<DeliveryStatus>,
}

/// A page of the guest export in email order. Each half (guests, open guest invites) walks its own
/// index from the key and stops at `limit`, so a page costs the same wherever it starts.
pub fn export_page(
    conn: &mut PgConnection,
    site_id: Uuid,
    after: Option<(String, Uuid)>,
    limit: i64,
    now: DateTime<Utc>,
) -> AppResult<Vec<GuestExportRow>> {
    let (after_email, after_id) = after.map_or((None, None), |(e, i)| (Some(e), Some(i)));
    Ok(diesel::sql_query(
        "(SELECT u.id, u.email, u.email_normalized, u.display_name AS name, false AS invited,
                sp.name || ' (' || sp.key || ')' AS space, sponsor.email AS sponsor,
                inviter.email AS invited_by, inv.accepted_at, gt.ends_at AS access_ends_at,
                u.last_active_at, d.status AS delivery
         FROM site_members sm JOIN users u ON u.id = sm.user_id
         LEFT JOIN spaces sp ON sp.id = sm.guest_space_id
         LEFT JOIN guest_terms gt ON gt.site_id = $1 AND gt.user_id = u.id
         LEFT JOIN users sponsor ON sponsor.id = gt.sponsor_id
         LEFT JOIN LATERAL (SELECT i.id, i.invited_by, i.accepted_at FROM invites i
                            WHERE i.site_id = $1 AND i.accepted_user_id = u.id
                            ORDER BY i.accepted_at DESC LIMIT 1) inv ON true
         LEFT JOIN users inviter ON inviter.id = inv.invited_by
         LEFT JOIN LATERAL (SELECT ed.status FROM email_deliveries ed WHERE ed.invite_id = inv.id
                            ORDER BY ed.created_at DESC LIMIT 1) d ON true
         WHERE sm.site_id = $1 AND sm.role = 1
           AND ($2::text IS NULL OR (sm.email_normalized, sm.user_id) > ($2, $3))
         ORDER BY sm.email_normalized, sm.user_id
         LIMIT $4)
        UNION ALL
        (SELECT i.id, i.email, i.email_normalized, '' AS name, true AS invited,
                sp.name || ' (' || sp.key || ')' AS space, NULL AS sponsor, inviter.email AS invited_by,
                NULL::timestamptz AS accepted_at, i.access_ends_at, NULL::timestamptz AS last_active_at,
                d.status AS delivery
         FROM invites i
         LEFT JOIN spaces sp ON sp.id = i.space_id
         LEFT JOIN users inviter ON inviter.id = i.invited_by
         LEFT JOIN LATERAL (SELECT ed.status FROM email_deliveries ed WHERE ed.invite_id = i.id
                            ORDER BY ed.created_at DESC LIMIT 1) d ON true
         WHERE i.site_id = $1 AND i.status = $6 AND i.expires_at > $5
           AND ($2::text IS NULL OR (i.email_normalized, i.id) > ($2, $3))
           AND i.holds_role = 1
         ORDER BY i.email_normalized, i.id
         LIMIT $4)
        ORDER BY email_normalized, id
        LIMIT $4",
    )
    .bind::<SqlUuid, _>(site_id)
    .bind::<Nullable<Text>, _>(after_email)
    .bind::<Nullable<SqlUuid>, _>(after_id)
    .bind::<BigInt, _>(limit)
    .bind::<diesel::sql_types::Timestamptz, _>(now)
    .bind::<Text, _>(InviteStatus::Pending)
    .load(conn)?)
}
