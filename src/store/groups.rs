//! Groups: an organization's named sets of people, each holding at most one product role per site.
//! Every change to a group's roles or members is an access change (see `changes`).

use crate::db::schema::*;
use crate::domain::ProductRole;
use crate::domain::authorization::{Action, Object, Sight, may_change, may_see};
use crate::error::{AppError, AppResult};
use crate::store::access::{self, Caller};
use crate::store::audit::{self, Audit};
use crate::store::changes::{self, AccessChange, Reach, Snapshot};
use crate::store::models::{Group, User};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde_json::json;
use uuid::Uuid;

/// At most this many people are added or removed in one call.
pub const MAX_MEMBERS_PER_CALL: usize = 200;

/// A group of the caller's organization; any other id is `NOT_FOUND`.
pub fn group_in_org(conn: &mut PgConnection, org: Uuid, id: Uuid) -> AppResult<Group> {
    groups::table
        .find(id)
        .filter(groups::organization_id.eq(org))
        .select(Group::as_select())
        .first(conn)
        .optional()?
        .ok_or(AppError::NotFound("Group"))
}

/// Sites on which a group holds a role, with the role.
pub fn site_roles(conn: &mut PgConnection, group: Uuid) -> AppResult<Vec<(Uuid, ProductRole)>> {
    let rows: Vec<(Uuid, i16)> = group_site_roles::table
        .filter(group_site_roles::group_id.eq(group))
        .order(group_site_roles::site_id)
        .select((group_site_roles::site_id, group_site_roles::role))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|(s, r)| Some((s, ProductRole::from_rank(r)?)))
        .collect())
}

/// Sites on which each of `groups` holds a role: `(group, site, role)`, by group then site.
pub fn site_roles_of(
    conn: &mut PgConnection,
    groups: &[Uuid],
) -> AppResult<Vec<(Uuid, Uuid, ProductRole)>> {
    let rows: Vec<(Uuid, Uuid, i16)> = group_site_roles::table
        .filter(group_site_roles::group_id.eq_any(groups))
        .order((group_site_roles::group_id, group_site_roles::site_id))
        .select((
            group_site_roles::group_id,
            group_site_roles::site_id,
            group_site_roles::role,
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|(g, s, r)| Some((g, s, ProductRole::from_rank(r)?)))
        .collect())
}

/// May the caller manage the group (rename, delete, change members, let an invite add people)?
/// The policy decides (`Action::ManageGroup`): organization admins always, site admins only when
/// every site the group holds a role on is one they administer, and never a group that reaches no
/// site yet (it may later reach any).
pub fn require_manage(conn: &mut PgConnection, caller: &Caller, group: Uuid) -> AppResult<()> {
    let sites: Vec<Uuid> = site_roles(conn, group)?
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    let v = access::viewer(conn, caller)?;
    let org = caller.user.organization_id;
    if may_change(&v, Action::ManageGroup { org, sites: &sites }) {
        Ok(())
    } else {
        Err(AppError::Forbidden)
    }
}

/// [`require_manage`] as a yes or no, for callers that leave out what the person may not manage
/// instead of refusing (an accepted invite skips the groups its inviter can no longer grant).
pub fn may_manage(conn: &mut PgConnection, caller: &Caller, group: Uuid) -> AppResult<bool> {
    match require_manage(conn, caller, group) {
        Ok(()) => Ok(true),
        Err(AppError::Forbidden) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Only staff (admins, paid users) may see groups.
pub fn require_view(conn: &mut PgConnection, caller: &Caller) -> AppResult<()> {
    let v = access::viewer(conn, caller)?;
    let org = caller.user.organization_id;
    if may_see(&v, Object::Group { org }) == Sight::Full {
        Ok(())
    } else {
        Err(AppError::Forbidden)
    }
}

fn require_creator(conn: &mut PgConnection, caller: &Caller) -> AppResult<()> {
    let v = access::viewer(conn, caller)?;
    let org = caller.user.organization_id;
    if may_change(&v, Action::CreateGroup { org }) {
        Ok(())
    } else {
        Err(AppError::Forbidden)
    }
}

fn name_taken(name: &str) -> AppError {
    AppError::invalid("name", format!("a group named {name} already exists"))
}

pub fn create(
    conn: &mut PgConnection,
    caller: &Caller,
    name: &str,
    now: DateTime<Utc>,
) -> AppResult<Group> {
    require_creator(conn, caller)?;
    let org = caller.user.organization_id;
    conn.transaction(|conn| {
        let g: Group = diesel::insert_into(groups::table)
            .values((
                groups::organization_id.eq(org),
                groups::name.eq(name),
                groups::name_normalized.eq(name.to_lowercase()),
                groups::created_at.eq(now),
            ))
            .on_conflict_do_nothing()
            .returning(Group::as_returning())
            .get_result(conn)
            .optional()?
            .ok_or_else(|| name_taken(name))?;
        audit::record(
            conn,
            Audit::new(org, caller.user.id, "group.create", now)
                .target("group", g.id)
                .after(json!({ "name": g.name })),
        )?;
        Ok(g)
    })
}

pub fn rename(
    conn: &mut PgConnection,
    caller: &Caller,
    id: Uuid,
    name: &str,
    now: DateTime<Utc>,
) -> AppResult<Group> {
    let old = group_in_org(conn, caller.user.organization_id, id)?;
    require_manage(conn, caller, id)?;
    conn.transaction(|conn| {
        let taken: bool = diesel::select(diesel::dsl::exists(
            groups::table
                .filter(groups::organization_id.eq(old.organization_id))
                .filter(groups::name_normalized.eq(name.to_lowercase()))
                .filter(groups::id.ne(id)),
        ))
        .get_result(conn)?;
        if taken {
            return Err(name_taken(name));
        }
        let g: Group = diesel::update(groups::table.find(id))
            .set((
                groups::name.eq(name),
                groups::name_normalized.eq(name.to_lowercase()),
            ))
            .returning(Group::as_returning())
            .get_result(conn)?;
        audit::record(
            conn,
            Audit::new(g.organization_id, caller.user.id, "group.rename", now)
                .target("group", id)
                .before(json!({ "name": old.name }))
                .after(json!({ "name": g.name })),
        )?;
        Ok(g)
    })
}

fn member_ids(conn: &mut PgConnection, group: Uuid) -> AppResult<Vec<Uuid>> {
    Ok(group_members::table
        .filter(group_members::group_id.eq(group))
        .select(group_members::user_id)
        .load(conn)?)
}

/// Locks the organization (a group reaches every site it holds a role on) and the group's sites.
fn lock_group_sites(
    conn: &mut PgConnection,
    group: &Group,
    extra_site: Option<Uuid>,
) -> AppResult<Vec<crate::store::models::Site>> {
    changes::lock_org(conn, group.organization_id, Reach::Organization)?;
    let mut sites: Vec<Uuid> = site_roles(conn, group.id)?
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    sites.extend(extra_site);
    changes::lock_sites(conn, &sites)
}

/// Deletes a group; its members' roles are recomputed (never refused: it only takes access away).
pub fn delete(
    conn: &mut PgConnection,
    caller: &Caller,
    id: Uuid,
    dry_run: bool,
    now: DateTime<Utc>,
) -> AppResult<AccessChange> {
    let g = group_in_org(conn, caller.user.organization_id, id)?;
    require_manage(conn, caller, id)?;
    changes::run(conn, dry_run, |conn| {
        let sites = lock_group_sites(conn, &g, None)?;
        let members = member_ids(conn, g.id)?;
        let before = Snapshot::take(conn, sites, members, now)?.with_invites_of(conn, &[g.id])?;
        // Pending invites naming the group keep their own role only.
        changes::grants::delete_group(conn, g.id)?;
        let ctx =
            changes::Context::new(g.organization_id, Some(caller.user.id), "group.delete", now)
                .detail(json!({ "group": g.id, "name": g.name }))
                .never_refused();
        let mut out = changes::finish(conn, before, &ctx)?;
        audit::record(
            conn,
            Audit::new(g.organization_id, caller.user.id, "group.delete", now)
                .target("group", g.id)
                .before(json!({ "name": g.name })),
        )?;
        out.dry_run = dry_run;
        Ok(out)
    })
}

/// Gives a group a role on a site, changes it, or (`None`) takes it away.
pub fn set_site_role(
    conn: &mut PgConnection,
    caller: &Caller,
    group_id: Uuid,
    site_id: Uuid,
    role: Option<ProductRole>,
    dry_run: bool,
    now: DateTime<Utc>,
) -> AppResult<AccessChange> {
    let g = group_in_org(conn, caller.user.organization_id, group_id)?;
    access::site_in_org(conn, g.organization_id, site_id)?;
    changes::run(conn, dry_run, |conn| {
        changes::lock_org(conn, g.organization_id, Reach::Organization)?;
        // Decided under the organization's lock, so the group cannot gain a site meanwhile.
        let reached: Vec<Uuid> = site_roles(conn, g.id)?
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        let v = access::viewer(conn, caller)?;
        let action = Action::SetGroupRole {
            org: g.organization_id,
            sites: &reached,
            site: site_id,
        };
        if !may_change(&v, action) {
            return Err(AppError::Forbidden);
        }
        let sites = changes::lock_sites(conn, &[site_id])?;
        let members = member_ids(conn, g.id)?;
        let before = Snapshot::take(conn, sites, members, now)?.with_invites_of(conn, &[g.id])?;
        let old: Option<i16> = group_site_roles::table
            .find((g.id, site_id))
            .select(group_site_roles::role)
            .first(conn)
            .optional()?;
        changes::grants::set_group_role(conn, g.id, site_id, role)?;
        let ctx = changes::Context::new(
            g.organization_id,
            Some(caller.user.id),
            "group.setSiteRole",
            now,
        )
        .detail(json!({ "group": g.id, "role": role }));
        let ctx = if role.is_none() {
            ctx.never_refused()
        } else {
            ctx
        };
        let mut out = changes::finish(conn, before, &ctx)?;
        audit::record(
            conn,
            Audit::new(g.organization_id, caller.user.id, "group.setSiteRole", now)
                .target("group", g.id)
                .site(site_id)
                .before(json!({ "role": old.and_then(ProductRole::from_rank) }))
                .after(json!({ "role": role })),
        )?;
        out.dry_run = dry_run;
        Ok(out)
    })
}

fn check_member_ids(conn: &mut PgConnection, org: Uuid, ids: &[Uuid]) -> AppResult<()> {
    if ids.is_empty() {
        return Err(AppError::invalid("userIds", "give at least one user"));
    }
    if ids.len() > MAX_MEMBERS_PER_CALL {
        return Err(AppError::invalid(
            "userIds",
            format!("at most {MAX_MEMBERS_PER_CALL} users per call"),
        ));
    }
    let found: i64 = users::table
        .filter(users::id.eq_any(ids))
        .filter(users::organization_id.eq(org))
        .count()
        .get_result(conn)?;
    if found as usize != ids.len() {
        return Err(AppError::NotFound("User"));
    }
    Ok(())
}

/// Adds people to a group; refused as a whole if any site the group reaches cannot take them.
pub fn add_members(
    conn: &mut PgConnection,
    caller: &Caller,
    group_id: Uuid,
    user_ids: Vec<Uuid>,
    dry_run: bool,
    now: DateTime<Utc>,
) -> AppResult<AccessChange> {
    change_members(conn, caller, group_id, user_ids, true, dry_run, now)
}

/// Removes people from a group (never refused for seats: it only takes access away).
pub fn remove_members(
    conn: &mut PgConnection,
    caller: &Caller,
    group_id: Uuid,
    user_ids: Vec<Uuid>,
    dry_run: bool,
    now: DateTime<Utc>,
) -> AppResult<AccessChange> {
    change_members(conn, caller, group_id, user_ids, false, dry_run, now)
}

fn change_members(
    conn: &mut PgConnection,
    caller: &Caller,
    group_id: Uuid,
    mut user_ids: Vec<Uuid>,
    add: bool,
    dry_run: bool,
    now: DateTime<Utc>,
) -> AppResult<AccessChange> {
    let g = group_in_org(conn, caller.user.organization_id, group_id)?;
    user_ids.sort();
    user_ids.dedup();
    check_member_ids(conn, g.organization_id, &user_ids)?;
    require_manage(conn, caller, group_id)?;
    changes::run(conn, dry_run, |conn| {
        let sites = lock_group_sites(conn, &g, None)?;
        let before = Snapshot::take(conn, sites, user_ids.clone(), now)?;
        let touched: Vec<Uuid> = if add {
            changes::grants::add_group_members(conn, g.id, &user_ids, Some(caller.user.id), now)?
        } else {
            changes::grants::remove_group_members(conn, g.id, &user_ids)?
        };
        let action = if add {
            "group.addMembers"
        } else {
            "group.removeMembers"
        };
        let mut ctx = changes::Context::new(g.organization_id, Some(caller.user.id), action, now)
            .detail(json!({ "group": g.id }));
        ctx.never_refused = !add;
        let mut out = changes::finish(conn, before, &ctx)?;
        let events: Vec<Audit> = touched
            .iter()
            .map(|u| {
                Audit::new(g.organization_id, caller.user.id, action, now)
                    .target("group", g.id)
                    .after(json!({ "user": u }))
            })
            .collect();
        audit::record_all(conn, events)?;
        out.dry_run = dry_run;
        Ok(out)
    })
}

/// Groups of an organization by name, keyset-paginated on `(name_normalized, id)`.
pub fn list(
    conn: &mut PgConnection,
    org: Uuid,
    after: Option<(String, Uuid)>,
    limit: i64,
) -> AppResult<(Vec<Group>, i64)> {
    let total: i64 = groups::table
        .filter(groups::organization_id.eq(org))
        .count()
        .get_result(conn)?;
    let mut q = groups::table
        .filter(groups::organization_id.eq(org))
        .into_boxed();
    if let Some((n, id)) = after {
        q = q.filter(
            groups::name_normalized
                .gt(n.clone())
                .or(groups::name_normalized.eq(n).and(groups::id.gt(id))),
        );
    }
    let rows = q
        .order((groups::name_normalized.asc(), groups::id.asc()))
        .limit(limit)
        .select(Group::as_select())
        .load(conn)?;
    Ok((rows, total))
}

/// Members of a group by email, keyset-paginated on `(email_normalized, id)`.
pub fn members(
    conn: &mut PgConnection,
    group: Uuid,
    after: Option<(String, Uuid)>,
    limit: i64,
) -> AppResult<(Vec<User>, i64)> {
    let total: i64 = group_members::table
        .filter(group_members::group_id.eq(group))
        .count()
        .get_result(conn)?;
    let mut q = users::table
        .inner_join(group_members::table)
        .filter(group_members::group_id.eq(group))
        .into_boxed();
    if let Some((e, id)) = after {
        q = q.filter(
            users::email_normalized
                .gt(e.clone())
                .or(users::email_normalized.eq(e).and(users::id.gt(id))),
        );
    }
    let rows = q
        .order((users::email_normalized.asc(), users::id.asc()))
        .limit(limit)
        .select(User::as_select())
        .load(conn)?;
    Ok((rows, total))
}

/// The groups of many users at once (the `User.groups` data loader).
pub fn groups_of(conn: &mut PgConnection, users: &[Uuid]) -> AppResult<Vec<(Uuid, Group)>> {
    Ok(group_members::table
        .inner_join(groups::table)
        .filter(group_members::user_id.eq_any(users))
        .order((groups::name_normalized.asc(), groups::id.asc()))
        .select((group_members::user_id, Group::as_select()))
        .load(conn)?)
}
