//! Guests and their one space per site: the guest list, and assigning, moving and unassigning.

use crate::db::schema::*;
use crate::domain::ProductRole;
use crate::error::{AppError, AppResult};
use crate::store::access::{self, Caller};
use crate::store::audit::{self, Audit};
use crate::store::changes::{self, Reach};
use crate::store::content;
use crate::store::models::{Space, User};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Nullable, Text, Uuid as SqlUuid};
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

/// The guest list's filters on the maintained rows (`site_members` joined with `users`), as a boxed
/// query diesel prepares once per connection.
macro_rules! guests_of {
    ($site:expr, $filter:expr) => {{
        let f: &GuestFilter = $filter;
        let mut q = site_members::table
            .inner_join(users::table)
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
            q = q.filter(
                site_members::user_id.eq_any(
                    guest_terms::table
                        .filter(guest_terms::site_id.eq($site))
                        .filter(guest_terms::sponsor_id.eq(sponsor))
                        .select(guest_terms::user_id),
                ),
            );
        }
        if let Some(t) = f.inactive_before {
            q = q.filter(
                users::last_active_at
                    .lt(t)
                    .or(users::last_active_at.is_null().and(users::created_at.lt(t))),
            );
        }
        q
    }};
}

/// All guests of a site that `filter` keeps, by email (for lists that are not paged: a sponsor's
/// guests, the guests outside the domain rules).
pub fn all(conn: &mut PgConnection, site_id: Uuid, filter: &GuestFilter) -> AppResult<Vec<User>> {
    Ok(guests_of!(site_id, filter)
        .order((site_members::email_normalized, site_members::user_id))
        .select(User::as_select())
        .load(conn)?)
}

/// The guests of a site (active accounts whose maintained role is GUEST), by email,
/// keyset-paginated: the page walks `site_members_guests` from the key and stops at `limit`.
pub fn list(
    conn: &mut PgConnection,
    site_id: Uuid,
    filter: &GuestFilter,
    after: Option<(String, Uuid)>,
    limit: i64,
) -> AppResult<Vec<User>> {
    let mut q = guests_of!(site_id, filter);
    if let Some((e, id)) = after {
        q = q.filter(crate::store::after_key("site_members", e, id));
    }
    Ok(
        q.order((site_members::email_normalized, site_members::user_id))
            .limit(limit)
            .select(User::as_select())
            .load(conn)?,
    )
}

/// How many guests the list holds with these filters (asked only when a client selects
/// `totalCount`): the site's counter when nothing narrows the list.
pub fn count(conn: &mut PgConnection, site_id: Uuid, filter: &GuestFilter) -> AppResult<i64> {
    let unfiltered = filter.space_id.is_none()
        && !filter.without_space
        && search_pattern(filter).is_none()
        && filter.external.is_none()
        && filter.inactive_before.is_none()
        && filter.sponsor.is_none();
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
                events.push(Audit {
                    organization_id: caller.user.organization_id,
                    actor_id: Some(caller.user.id),
                    action: "guest.assignSpace",
                    target_type: "user",
                    target_id: u.id.to_string(),
                    site_id: Some(space.site_id),
                    before: Some(json!({ "space": prev.as_ref().map(|p| p.id) })),
                    after: Some(json!({ "space": space.id })),
                    created_at: now,
                });
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
                    events.push(Audit {
                        organization_id: caller.user.organization_id,
                        actor_id: Some(caller.user.id),
                        action: "guest.unassignSpace",
                        target_type: "user",
                        target_id: u.id.to_string(),
                        site_id: Some(site_id),
                        before: Some(json!({ "space": p.id })),
                        after: Some(json!({ "space": null })),
                        created_at: now,
                    });
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
/// accepted yet (status `INVITED`, no name).
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
    #[diesel(sql_type = Text)]
    pub status: String,
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
    #[diesel(sql_type = Nullable<Text>)]
    pub delivery: Option<String>,
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
        "(SELECT u.id, u.email, u.email_normalized, u.display_name AS name, 'ACTIVE' AS status,
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
        (SELECT i.id, i.email, i.email_normalized, '' AS name, 'INVITED' AS status,
                sp.name || ' (' || sp.key || ')' AS space, NULL AS sponsor, inviter.email AS invited_by,
                NULL::timestamptz AS accepted_at, i.access_ends_at, NULL::timestamptz AS last_active_at,
                d.status AS delivery
         FROM invites i
         LEFT JOIN spaces sp ON sp.id = i.space_id
         LEFT JOIN users inviter ON inviter.id = i.invited_by
         LEFT JOIN LATERAL (SELECT ed.status FROM email_deliveries ed WHERE ed.invite_id = i.id
                            ORDER BY ed.created_at DESC LIMIT 1) d ON true
         WHERE i.site_id = $1 AND i.status = 'PENDING' AND i.expires_at > $5
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
    .load(conn)?)
}
