//! Direct grants: product roles, removal from a site, admin roles, space admins, and account
//! (de)activation. Role-affecting changes run through the access-change engine (`changes`).

use crate::db::schema::*;
use crate::domain::ProductRole;
use crate::domain::removal::{self, GroupsElsewhere};
use crate::domain::status::UserStatus;
use crate::error::{AddressError, AppError, AppResult, ErrorCode};
use crate::store::access::{self, Caller};
use crate::store::audit::{self, Audit};
use crate::store::changes::{self, AccessChange, Reach, Snapshot};
use crate::store::content;
use crate::store::directory::user_in_org;
use crate::store::models::{Space, User};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde_json::json;
use uuid::Uuid;

fn paid_cannot_be_guest(u: &User) -> AppError {
    AppError::Addresses(vec![AddressError {
        email: u.email.clone(),
        code: ErrorCode::PaidUserCannotBeGuest,
    }])
}

/// Sets (or with `None` removes) a person's direct role on a site.
pub fn set_product_role(
    conn: &mut PgConnection,
    caller: &Caller,
    site_id: Uuid,
    user_id: Uuid,
    role: Option<ProductRole>,
    dry_run: bool,
    now: DateTime<Utc>,
) -> AppResult<AccessChange> {
    let a = access::site_access(conn, caller, site_id)?;
    let user = user_in_org(conn, caller.user.organization_id, user_id)?;
    a.require_admin()?;
    changes::run(conn, dry_run, |conn| {
        changes::lock_org(conn, a.site.organization_id, Reach::OneSite)?;
        let sites = changes::lock_sites(conn, &[site_id])?;
        if role == Some(ProductRole::Guest) {
            let current = access::effective_role_of(conn, site_id, user_id)?;
            if current.is_some_and(ProductRole::is_paid)
                || access::is_former_paid(conn, site_id, user_id)?
            {
                return Err(paid_cannot_be_guest(&user));
            }
        }
        let before = Snapshot::take(conn, sites, vec![user_id], now)?;
        let old: Option<i16> = product_roles::table
            .find((site_id, user_id))
            .select(product_roles::role)
            .first(conn)
            .optional()?;
        changes::grants::set_direct_role(conn, site_id, user_id, role, now)?;
        let ctx = changes::Context::new(
            a.site.organization_id,
            Some(caller.user.id),
            "role.set",
            now,
        )
        .detail(
            json!({ "directBefore": old.and_then(ProductRole::from_rank), "directAfter": role }),
        );
        let ctx = if role.is_none() {
            ctx.never_refused()
        } else {
            ctx
        };
        let mut out = changes::finish(conn, before, &ctx)?;
        out.dry_run = dry_run;
        Ok(out)
    })
}

/// Takes a person off a site: their direct role, their memberships of groups that grant a role only
/// there, their guest space and pending invites for it. It changes nothing elsewhere: a group that
/// also grants on another site is refused (`GROUP_REACHES_OTHER_SITES`), and sessions end only when
/// the person is left with access nowhere. Someone with nothing on the site is `INVALID_INPUT`.
/// Never refused for seats.
pub fn remove_product_access(
    conn: &mut PgConnection,
    caller: &Caller,
    site_id: Uuid,
    user_id: Uuid,
    dry_run: bool,
    now: DateTime<Utc>,
) -> AppResult<AccessChange> {
    let a = access::site_access(conn, caller, site_id)?;
    let user = user_in_org(conn, caller.user.organization_id, user_id)?;
    a.require_admin()?;
    remove_access(
        conn,
        Removal::by(Some(caller.user.id), "access.remove"),
        site_id,
        &user,
        dry_run,
        now,
    )
}

/// Who removes someone's access and why, for the audit trail.
pub struct Removal<'a> {
    pub actor: Option<Uuid>,
    /// `access.remove`, `guest.leave`, `guest.lifetimeEnded`, `guest.remove`.
    pub action: &'static str,
    pub reason: Option<&'a str>,
    /// Whether groups that also grant on other sites refuse the removal or are left anyway.
    pub groups_elsewhere: GroupsElsewhere,
}

impl Removal<'_> {
    /// A removal someone asked for: groups reaching other sites refuse it.
    pub fn by(actor: Option<Uuid>, action: &'static str) -> Self {
        Self {
            actor,
            action,
            reason: None,
            groups_elsewhere: GroupsElsewhere::Refuse,
        }
    }
}

/// A group (id, name) and every site it grants a role on.
type GroupReach = ((Uuid, String), Vec<Uuid>);

/// The person's groups that grant a role on the site, each with every site it grants on.
fn groups_on_site(
    conn: &mut PgConnection,
    site_id: Uuid,
    user_id: Uuid,
) -> AppResult<Vec<GroupReach>> {
    let groups: Vec<(Uuid, String)> = group_members::table
        .inner_join(groups::table)
        .inner_join(
            group_site_roles::table.on(group_site_roles::group_id.eq(group_members::group_id)),
        )
        .filter(group_members::user_id.eq(user_id))
        .filter(group_site_roles::site_id.eq(site_id))
        .order(groups::name_normalized.asc())
        .select((groups::id, groups::name))
        .load(conn)?;
    let reach: Vec<(Uuid, Uuid)> = group_site_roles::table
        .filter(group_site_roles::group_id.eq_any(groups.iter().map(|(g, _)| *g)))
        .select((group_site_roles::group_id, group_site_roles::site_id))
        .load(conn)?;
    Ok(groups
        .into_iter()
        .map(|(id, name)| {
            let sites = reach
                .iter()
                .filter(|(g, _)| *g == id)
                .map(|(_, s)| *s)
                .collect();
            ((id, name), sites)
        })
        .collect())
}

/// The removal itself, already authorized: by an admin, by the guest leaving, or by the scheduler
/// when a guest's lifetime ends (`action` says which, in the audit trail).
pub fn remove_access(
    conn: &mut PgConnection,
    by: Removal<'_>,
    site_id: Uuid,
    user: &User,
    dry_run: bool,
    now: DateTime<Utc>,
) -> AppResult<AccessChange> {
    let Removal {
        actor,
        action,
        reason,
        groups_elsewhere,
    } = by;
    let org = user.organization_id;
    let user_id = user.id;
    changes::run(conn, dry_run, |conn| {
        changes::lock_org(conn, org, Reach::Organization)?;
        let (groups, site_ids) = leaving_groups(conn, site_id, user_id, groups_elsewhere)?;
        let sites = changes::lock_sites(conn, &site_ids)?;
        let before = Snapshot::take(conn, sites, vec![user_id], now)?;
        let revoked = take_grants(conn, site_id, user, &groups, now)?;
        // What is left anywhere is read from the maintained state: bring it up to date first.
        changes::state::refresh(conn, &site_ids, &[user_id], now)?;
        // Sessions belong to the account, not to a site: they end only if nothing is left anywhere.
        let ended = if removal::ends_sessions(
            action == "guest.leave",
            access::has_access_anywhere(conn, user_id)?,
        ) {
            changes::end_sessions(conn, &[user_id], now)?
        } else {
            0
        };
        let ctx = changes::Context::new(org, actor, action, now)
            .detail(json!({ "groupsLeft": groups, "invitesRevoked": revoked }))
            .never_refused();
        let mut out = changes::finish(conn, before, &ctx)?;
        audit::record(
            conn,
            Audit::new(org, actor, action, now)
                .target("user", user_id)
                .site(site_id)
                .after(json!({
                    "groupsLeft": groups,
                    "invitesRevoked": revoked,
                    "sessionsEnded": ended,
                    "reason": reason,
                })),
        )?;
        out.dry_run = dry_run;
        Ok(out)
    })
}

/// The person's groups that a removal from the site leaves ([`removal::groups_to_leave`] decides;
/// `GROUP_REACHES_OTHER_SITES` names those it refuses), and the sites whose counts it checks: this
/// one and every site those groups reach.
fn leaving_groups(
    conn: &mut PgConnection,
    site_id: Uuid,
    user_id: Uuid,
    elsewhere: GroupsElsewhere,
) -> AppResult<(Vec<Uuid>, Vec<Uuid>)> {
    let on_site = groups_on_site(conn, site_id, user_id)?;
    let mut site_ids: Vec<Uuid> = on_site.iter().flat_map(|(_, s)| s.clone()).collect();
    let groups: Vec<Uuid> = removal::groups_to_leave(site_id, on_site, elsewhere)
        .map_err(|wide| AppError::GroupReachesOtherSites {
            groups: wide.into_iter().map(|(_, name)| name).collect(),
        })?
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    site_ids.push(site_id);
    Ok((groups, site_ids))
}

/// Takes away everything the person holds on the site: their direct role, the `groups`, their guest
/// space and terms, and their pending invites there (answered, their waiting emails cancelled).
/// `INVALID_INPUT` when none of it was there: a removal of nothing does not "succeed".
fn take_grants(
    conn: &mut PgConnection,
    site_id: Uuid,
    user: &User,
    groups: &[Uuid],
    now: DateTime<Utc>,
) -> AppResult<Vec<Uuid>> {
    let mut removed = changes::grants::remove_direct_role(conn, site_id, user.id)?;
    removed += changes::grants::leave_groups(conn, user.id, groups)?;
    removed += changes::grants::unassign_space(conn, site_id, &[user.id])?;
    // Terms kept from an earlier guest access (a role set to none leaves them) are not access:
    // they go with the rest, but alone they do not make the removal one of something.
    diesel::delete(guest_terms::table.find((site_id, user.id))).execute(conn)?;
    let revoked = changes::grants::revoke_pending_for(conn, site_id, &user.email_normalized, now)?;
    changes::state::refresh_invites(conn, &revoked)?;
    if removed + revoked.len() == 0 {
        // Nothing of theirs is on this site: say so rather than "succeed" at nothing.
        return Err(AppError::invalid(
            "userId",
            format!("{} has no access to this site", user.email),
        ));
    }
    crate::store::invites::cancel_waiting_deliveries(conn, &revoked)?;
    Ok(revoked)
}

/// Admin roles that are not product roles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, async_graphql::Enum)]
pub enum AdminRole {
    /// Manages the whole organization.
    OrgAdmin,
    /// Manages one site.
    SiteAdmin,
}

/// Refuses a change that would leave the organization without an active organization admin. Call it
/// after the change, inside the transaction that holds the organization row lock.
fn require_an_org_admin(conn: &mut PgConnection, org: Uuid) -> AppResult<()> {
    let n: i64 = org_admins::table
        .inner_join(users::table.on(users::id.eq(org_admins::user_id)))
        .filter(org_admins::organization_id.eq(org))
        .filter(users::status.eq(UserStatus::Active))
        .count()
        .get_result(conn)?;
    if n == 0 {
        Err(AppError::LastOrgAdmin)
    } else {
        Ok(())
    }
}

fn lock_org_row(conn: &mut PgConnection, org: Uuid) -> AppResult<()> {
    organizations::table
        .find(org)
        .for_update()
        .select(organizations::id)
        .first::<Uuid>(conn)?;
    Ok(())
}

/// Grants or revokes an admin role. Organization admins manage both; a site admin may manage the
/// site admins of their own site.
pub fn set_admin_role(
    conn: &mut PgConnection,
    caller: &Caller,
    user_id: Uuid,
    role: AdminRole,
    site_id: Option<Uuid>,
    granted: bool,
    now: DateTime<Utc>,
) -> AppResult<User> {
    let org = caller.user.organization_id;
    let user = user_in_org(conn, org, user_id)?;
    let site = admin_role_site(conn, caller, role, site_id)?;
    conn.transaction(|conn| {
        lock_org_row(conn, org)?;
        let changed = write_admin_role(conn, org, site, user_id, role, granted, now)?;
        if changed > 0 {
            audit::record(
                conn,
                Audit::new(
                    org,
                    caller.user.id,
                    if granted {
                        "admin.grant"
                    } else {
                        "admin.revoke"
                    },
                    now,
                )
                .target("user", user_id)
                .site(site)
                .after(json!({ "role": format!("{role:?}"), "granted": granted })),
            )?;
        }
        Ok(user)
    })
}

/// The site an admin role change is about (`None` for an organization admin role), once the caller
/// may make it: organization admin roles are the organization admins' to give, and need no site;
/// site admin roles are for whoever administers that site, and need one.
fn admin_role_site(
    conn: &mut PgConnection,
    caller: &Caller,
    role: AdminRole,
    site_id: Option<Uuid>,
) -> AppResult<Option<Uuid>> {
    match (role, site_id) {
        (AdminRole::SiteAdmin, Some(s)) => {
            let a = access::site_access(conn, caller, s)?;
            a.require_admin()?;
            Ok(Some(s))
        }
        (AdminRole::SiteAdmin, None) => {
            if !caller.org_admin {
                return Err(AppError::Forbidden);
            }
            Err(AppError::invalid(
                "siteId",
                "a site admin role needs a site",
            ))
        }
        (AdminRole::OrgAdmin, _) => {
            if !caller.org_admin {
                return Err(AppError::Forbidden);
            }
            if site_id.is_some() {
                return Err(AppError::invalid(
                    "siteId",
                    "an organization admin role applies to every site",
                ));
            }
            Ok(None)
        }
    }
}

/// Grants or revokes the admin role (under the organization row's lock); answers how many rows
/// changed (0: they already had it, or did not). Revoking an organization admin is refused when it
/// leaves the organization without an active one.
fn write_admin_role(
    conn: &mut PgConnection,
    org: Uuid,
    site: Option<Uuid>,
    user_id: Uuid,
    role: AdminRole,
    granted: bool,
    now: DateTime<Utc>,
) -> AppResult<usize> {
    Ok(match (role, granted) {
        (AdminRole::OrgAdmin, true) => diesel::insert_into(org_admins::table)
            .values((
                org_admins::organization_id.eq(org),
                org_admins::user_id.eq(user_id),
                org_admins::granted_at.eq(now),
            ))
            .on_conflict_do_nothing()
            .execute(conn)?,
        (AdminRole::OrgAdmin, false) => {
            let n = diesel::delete(org_admins::table.find((org, user_id))).execute(conn)?;
            require_an_org_admin(conn, org)?;
            n
        }
        (AdminRole::SiteAdmin, true) => diesel::insert_into(site_admins::table)
            .values((
                site_admins::site_id.eq(site.unwrap_or_default()),
                site_admins::user_id.eq(user_id),
                site_admins::granted_at.eq(now),
            ))
            .on_conflict_do_nothing()
            .execute(conn)?,
        (AdminRole::SiteAdmin, false) => {
            diesel::delete(site_admins::table.find((site.unwrap_or_default(), user_id)))
                .execute(conn)?
        }
    })
}

/// Makes a paid user (or an admin) an admin of one space, or takes it away.
pub fn set_space_admin(
    conn: &mut PgConnection,
    caller: &Caller,
    space_id: Uuid,
    user_id: Uuid,
    granted: bool,
    now: DateTime<Utc>,
) -> AppResult<Space> {
    let (space, a) = content::space_with_access(conn, caller, space_id)?;
    let user = user_in_org(conn, caller.user.organization_id, user_id)?;
    if !a.manages_spaces() {
        return Err(AppError::Forbidden);
    }
    conn.transaction(|conn| {
        changes::lock_org(conn, user.organization_id, Reach::OneSite)?;
        changes::lock_sites(conn, &[space.site_id])?;
        let changed = if granted {
            let role = access::effective_role_of(conn, space.site_id, user_id)?;
            let admin = access::is_org_admin(conn, user.organization_id, user_id)?
                || access::admin_sites(conn, user_id)?.contains(&space.site_id);
            if !(admin || role.is_some_and(ProductRole::is_paid)) {
                return Err(AppError::invalid(
                    "userId",
                    "space admins must be paid users or admins of the site",
                ));
            }
            diesel::insert_into(space_admins::table)
                .values((
                    space_admins::space_id.eq(space_id),
                    space_admins::user_id.eq(user_id),
                    space_admins::granted_at.eq(now),
                ))
                .on_conflict_do_nothing()
                .execute(conn)?
        } else {
            diesel::delete(space_admins::table.find((space_id, user_id))).execute(conn)?
        };
        if changed > 0 {
            audit::record(
                conn,
                Audit::new(
                    user.organization_id,
                    caller.user.id,
                    if granted {
                        "spaceAdmin.add"
                    } else {
                        "spaceAdmin.remove"
                    },
                    now,
                )
                .target("space", space_id)
                .site(space.site_id)
                .after(json!({ "user": user_id })),
            )?;
        }
        Ok(space)
    })
}

/// Sites on which a person holds any grant, directly or through a group.
fn granted_sites(conn: &mut PgConnection, user_id: Uuid) -> AppResult<Vec<Uuid>> {
    let mut direct: Vec<Uuid> = product_roles::table
        .filter(product_roles::user_id.eq(user_id))
        .select(product_roles::site_id)
        .load(conn)?;
    let via_groups: Vec<Uuid> = group_members::table
        .inner_join(
            group_site_roles::table.on(group_site_roles::group_id.eq(group_members::group_id)),
        )
        .filter(group_members::user_id.eq(user_id))
        .select(group_site_roles::site_id)
        .load(conn)?;
    direct.extend(via_groups);
    Ok(direct)
}

/// Deactivates or reactivates an account (organization admins). A deactivated account keeps its
/// grants but can do nothing and holds no seat; reactivating takes the seats back and is refused if a
/// site cannot take them.
pub fn set_active(
    conn: &mut PgConnection,
    caller: &Caller,
    user_id: Uuid,
    active: bool,
    now: DateTime<Utc>,
) -> AppResult<(User, AccessChange)> {
    let org = caller.user.organization_id;
    user_in_org(conn, org, user_id)?;
    if !caller.org_admin {
        return Err(AppError::Forbidden);
    }
    changes::run(conn, false, |conn| {
        lock_org_row(conn, org)?;
        changes::lock_org(conn, org, Reach::Organization)?;
        let granted = granted_sites(conn, user_id)?;
        let sites = changes::lock_sites(conn, &granted)?;
        let before = Snapshot::take(conn, sites, vec![user_id], now)?;
        let status = if active {
            UserStatus::Active
        } else {
            UserStatus::Deactivated
        };
        let user: User = diesel::update(users::table.find(user_id))
            .set(users::status.eq(status))
            .returning(User::as_returning())
            .get_result(conn)?;
        if !active {
            require_an_org_admin(conn, org)?;
            changes::end_sessions(conn, &[user_id], now)?;
        }
        let action = if active {
            "user.reactivate"
        } else {
            "user.deactivate"
        };
        let ctx = changes::Context::new(org, Some(caller.user.id), action, now);
        let ctx = if active { ctx } else { ctx.never_refused() };
        let out = changes::finish(conn, before, &ctx)?;
        audit::record(
            conn,
            Audit::new(org, caller.user.id, action, now)
                .target("user", user_id)
                .after(json!({ "status": status.as_str() })),
        )?;
        Ok((user, out))
    })
}
