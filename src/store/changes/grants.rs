//! The grant tables' one writer. Who holds what on a site is decided by these rows (direct roles,
//! group roles and memberships, guest spaces, paid history, invites and the groups they join), and
//! the maintained state ([`super::state`]) is derived from them. Only the access-change engine's
//! operations call these functions, inside the transaction that then brings the maintained state up
//! to date ([`super::finish`], [`super::state::refresh`], [`super::state::refresh_invites`]); the
//! source scan in `changes::tests` refuses a write to these tables anywhere else in `src/`.

use crate::db::schema::*;
use crate::domain::ProductRole;
use crate::error::AppResult;
use crate::store::models::{Invite, InviteStatus};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

/// Gives `user` the direct `role` on `site` (replacing the one they had), or takes it away (`None`).
pub fn set_direct_role(
    conn: &mut PgConnection,
    site: Uuid,
    user: Uuid,
    role: Option<ProductRole>,
    now: DateTime<Utc>,
) -> AppResult<()> {
    match role {
        Some(r) => {
            diesel::insert_into(product_roles::table)
                .values((
                    product_roles::site_id.eq(site),
                    product_roles::user_id.eq(user),
                    product_roles::role.eq(r.rank()),
                    product_roles::granted_at.eq(now),
                ))
                .on_conflict((product_roles::site_id, product_roles::user_id))
                .do_update()
                .set(product_roles::role.eq(r.rank()))
                .execute(conn)?;
        }
        None => {
            remove_direct_role(conn, site, user)?;
        }
    }
    Ok(())
}

/// Gives `user` the direct `role` on `site` unless they already hold a higher one directly (an
/// accepted invite never lowers a role).
pub fn raise_direct_role(
    conn: &mut PgConnection,
    site: Uuid,
    user: Uuid,
    role: ProductRole,
    now: DateTime<Utc>,
) -> AppResult<()> {
    diesel::insert_into(product_roles::table)
        .values((
            product_roles::site_id.eq(site),
            product_roles::user_id.eq(user),
            product_roles::role.eq(role.rank()),
            product_roles::granted_at.eq(now),
        ))
        .on_conflict((product_roles::site_id, product_roles::user_id))
        .do_update()
        .set(
            product_roles::role.eq(diesel::dsl::sql::<diesel::sql_types::SmallInt>(
                "GREATEST(product_roles.role, excluded.role)",
            )),
        )
        .execute(conn)?;
    Ok(())
}

/// Takes `user`'s direct role on `site` away; how many rows went (0 or 1).
pub fn remove_direct_role(conn: &mut PgConnection, site: Uuid, user: Uuid) -> AppResult<usize> {
    Ok(diesel::delete(product_roles::table.find((site, user))).execute(conn)?)
}

/// Gives `group` the `role` on `site`, or takes it away (`None`).
pub fn set_group_role(
    conn: &mut PgConnection,
    group: Uuid,
    site: Uuid,
    role: Option<ProductRole>,
) -> AppResult<()> {
    match role {
        Some(r) => {
            diesel::insert_into(group_site_roles::table)
                .values((
                    group_site_roles::group_id.eq(group),
                    group_site_roles::site_id.eq(site),
                    group_site_roles::role.eq(r.rank()),
                ))
                .on_conflict((group_site_roles::group_id, group_site_roles::site_id))
                .do_update()
                .set(group_site_roles::role.eq(r.rank()))
                .execute(conn)?;
        }
        None => {
            diesel::delete(group_site_roles::table.find((group, site))).execute(conn)?;
        }
    }
    Ok(())
}

/// Deletes a group, with its memberships and site roles (by cascade).
pub fn delete_group(conn: &mut PgConnection, group: Uuid) -> AppResult<()> {
    diesel::delete(groups::table.find(group)).execute(conn)?;
    Ok(())
}

/// Adds `users` to `group`; returns those who were not members yet.
pub fn add_group_members(
    conn: &mut PgConnection,
    group: Uuid,
    users: &[Uuid],
    added_by: Option<Uuid>,
    now: DateTime<Utc>,
) -> AppResult<Vec<Uuid>> {
    let rows: Vec<_> = users
        .iter()
        .map(|u| {
            (
                group_members::group_id.eq(group),
                group_members::user_id.eq(*u),
                group_members::added_by.eq(added_by),
                group_members::added_at.eq(now),
            )
        })
        .collect();
    Ok(diesel::insert_into(group_members::table)
        .values(&rows)
        .on_conflict_do_nothing()
        .returning(group_members::user_id)
        .get_results(conn)?)
}

/// Takes `users` out of `group`; returns those who were members.
pub fn remove_group_members(
    conn: &mut PgConnection,
    group: Uuid,
    users: &[Uuid],
) -> AppResult<Vec<Uuid>> {
    Ok(diesel::delete(
        group_members::table
            .filter(group_members::group_id.eq(group))
            .filter(group_members::user_id.eq_any(users)),
    )
    .returning(group_members::user_id)
    .get_results(conn)?)
}

/// Takes `user` out of each of `groups`; how many memberships went.
pub fn leave_groups(conn: &mut PgConnection, user: Uuid, groups: &[Uuid]) -> AppResult<usize> {
    Ok(diesel::delete(
        group_members::table
            .filter(group_members::user_id.eq(user))
            .filter(group_members::group_id.eq_any(groups)),
    )
    .execute(conn)?)
}

/// Puts `users` in `space` on `site` (moving them from the space they had there).
pub fn assign_space(
    conn: &mut PgConnection,
    site: Uuid,
    users: &[Uuid],
    space: Uuid,
    now: DateTime<Utc>,
) -> AppResult<()> {
    let rows: Vec<_> = users
        .iter()
        .map(|u| {
            (
                guest_spaces::site_id.eq(site),
                guest_spaces::user_id.eq(*u),
                guest_spaces::space_id.eq(space),
                guest_spaces::assigned_at.eq(now),
            )
        })
        .collect();
    diesel::insert_into(guest_spaces::table)
        .values(&rows)
        .on_conflict((guest_spaces::site_id, guest_spaces::user_id))
        .do_update()
        .set((
            guest_spaces::space_id.eq(space),
            guest_spaces::assigned_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// Takes `users` out of their space on `site`; how many had one.
pub fn unassign_space(conn: &mut PgConnection, site: Uuid, users: &[Uuid]) -> AppResult<usize> {
    Ok(diesel::delete(
        guest_spaces::table
            .filter(guest_spaces::site_id.eq(site))
            .filter(guest_spaces::user_id.eq_any(users)),
    )
    .execute(conn)?)
}

/// Remembers that these users now hold a paid role on the site (they can never be guests there again).
pub fn record_paid(
    conn: &mut PgConnection,
    site: Uuid,
    users: &[Uuid],
    now: DateTime<Utc>,
) -> AppResult<()> {
    let rows: Vec<_> = users
        .iter()
        .map(|u| {
            (
                site_paid_history::site_id.eq(site),
                site_paid_history::user_id.eq(*u),
                site_paid_history::first_paid_at.eq(now),
            )
        })
        .collect();
    diesel::insert_into(site_paid_history::table)
        .values(&rows)
        .on_conflict_do_nothing()
        .execute(conn)?;
    Ok(())
}

/// A new invite's row.
#[derive(Insertable)]
#[diesel(table_name = invites)]
pub struct NewInvite<'a> {
    pub site_id: Uuid,
    pub email: &'a str,
    pub email_normalized: &'a str,
    /// The direct role it grants (`ProductRole::rank`), if any (groups may grant the rest).
    pub role: Option<i16>,
    pub space_id: Option<Uuid>,
    pub personal_message: Option<&'a str>,
    pub invited_by: Uuid,
    pub token_nonce: Vec<u8>,
    pub status: InviteStatus,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub access_ends_at: Option<DateTime<Utc>>,
    pub access_days: Option<i32>,
}

/// Creates invites, and the groups each joins on acceptance.
pub fn create_invites(
    conn: &mut PgConnection,
    rows: &[NewInvite<'_>],
    groups: &[Uuid],
) -> AppResult<Vec<Invite>> {
    let created: Vec<Invite> = diesel::insert_into(invites::table)
        .values(rows)
        .returning(Invite::as_returning())
        .get_results(conn)?;
    if !groups.is_empty() {
        let links: Vec<_> = created
            .iter()
            .flat_map(|invite| {
                groups.iter().map(|g| {
                    (
                        invite_groups::invite_id.eq(invite.id),
                        invite_groups::group_id.eq(*g),
                    )
                })
            })
            .collect();
        diesel::insert_into(invite_groups::table)
            .values(&links)
            .execute(conn)?;
    }
    Ok(created)
}

/// Opens an invite again under a new token until `expires_at` (a resend).
pub fn renew_invite(
    conn: &mut PgConnection,
    id: Uuid,
    token_nonce: Vec<u8>,
    expires_at: DateTime<Utc>,
) -> AppResult<Invite> {
    Ok(diesel::update(invites::table.find(id))
        .set((
            invites::token_nonce.eq(token_nonce),
            invites::status.eq(InviteStatus::Pending),
            invites::expires_at.eq(expires_at),
        ))
        .returning(Invite::as_returning())
        .get_result(conn)?)
}

/// Revokes one invite.
pub fn revoke_invite(conn: &mut PgConnection, id: Uuid, now: DateTime<Utc>) -> AppResult<Invite> {
    Ok(diesel::update(invites::table.find(id))
        .set((
            invites::status.eq(InviteStatus::Revoked),
            invites::revoked_at.eq(now),
        ))
        .returning(Invite::as_returning())
        .get_result(conn)?)
}

/// Revokes the pending invites of an address on a site; returns their ids.
pub fn revoke_pending_for(
    conn: &mut PgConnection,
    site: Uuid,
    email_normalized: &str,
    now: DateTime<Utc>,
) -> AppResult<Vec<Uuid>> {
    Ok(diesel::update(
        invites::table
            .filter(invites::site_id.eq(site))
            .filter(invites::email_normalized.eq(email_normalized))
            .filter(invites::status.eq(InviteStatus::Pending)),
    )
    .set((
        invites::status.eq(InviteStatus::Revoked),
        invites::revoked_at.eq(now),
    ))
    .returning(invites::id)
    .get_results(conn)?)
}

/// Marks an invite accepted by `user`.
pub fn accept_invite(
    conn: &mut PgConnection,
    id: Uuid,
    user: Uuid,
    now: DateTime<Utc>,
) -> AppResult<Invite> {
    Ok(diesel::update(invites::table.find(id))
        .set((
            invites::status.eq(InviteStatus::Accepted),
            invites::accepted_at.eq(now),
            invites::accepted_user_id.eq(user),
        ))
        .returning(Invite::as_returning())
        .get_result(conn)?)
}
