//! Who may do what: the caller behind a token, their standing on a site, effective roles and seat
//! counts. The role rule itself lives in `domain::roles`; this module only gathers the facts.

use crate::auth::tokens::{TokenKind, hash_token};
use crate::db::schema::*;
use crate::domain::seats::Counts;
use crate::domain::{ProductRole, effective_role};
use crate::error::{AppError, AppResult};
use crate::store::models::{Site, User};
use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, SmallInt, Timestamptz, Uuid as SqlUuid};
use uuid::Uuid;

/// The authenticated person behind a request.
#[derive(Clone, Debug)]
pub struct Caller {
    pub user: User,
    pub org_admin: bool,
    pub via: TokenKind,
    /// The session used, when signed in with a session token.
    pub session_id: Option<Uuid>,
}

/// Looks up an active account by bearer token. Unknown, revoked and expired tokens are all `None`.
/// A session not used for `idle` has ended, whatever its absolute expiry.
pub fn authenticate(
    conn: &mut PgConnection,
    token: &str,
    idle: Duration,
    now: DateTime<Utc>,
) -> AppResult<Option<Caller>> {
    let Some(kind) = TokenKind::of(token) else {
        return Ok(None);
    };
    let hash = hash_token(token);
    let (user_id, session_id) = match kind {
        TokenKind::Session => {
            let row: Option<(Uuid, Uuid, DateTime<Utc>)> = sessions::table
                .filter(sessions::token_hash.eq(&hash))
                .filter(sessions::revoked_at.is_null())
                .filter(sessions::expires_at.gt(now))
                .filter(sessions::last_seen_at.gt(now - idle))
                .select((sessions::id, sessions::user_id, sessions::last_seen_at))
                .first(conn)
                .optional()?;
            let Some((sid, uid, last_seen)) = row else {
                return Ok(None);
            };
            // Activity is recorded cheaply: at most one write per session per minute.
            if now - last_seen > Duration::minutes(1) {
                diesel::update(sessions::table.find(sid))
                    .set(sessions::last_seen_at.eq(now))
                    .execute(conn)?;
            }
            (uid, Some(sid))
        }
        TokenKind::Api => {
            let row: Option<(Uuid, Uuid, Option<DateTime<Utc>>)> = api_tokens::table
                .filter(api_tokens::token_hash.eq(&hash))
                .filter(api_tokens::revoked_at.is_null())
                .filter(
                    api_tokens::expires_at
                        .is_null()
                        .or(api_tokens::expires_at.gt(now)),
                )
                .select((
                    api_tokens::id,
                    api_tokens::user_id,
                    api_tokens::last_used_at,
                ))
                .first(conn)
                .optional()?;
            let Some((tid, uid, last_used)) = row else {
                return Ok(None);
            };
            if last_used.is_none_or(|t| now - t > Duration::minutes(1)) {
                diesel::update(api_tokens::table.find(tid))
                    .set(api_tokens::last_used_at.eq(now))
                    .execute(conn)?;
            }
            (uid, None)
        }
    };
    let user: Option<User> = users::table
        .find(user_id)
        .filter(users::status.eq("ACTIVE"))
        .select(User::as_select())
        .first(conn)
        .optional()?;
    let Some(user) = user else { return Ok(None) };
    if kind == TokenKind::Api && !has_any_access(conn, user.id)? {
        return Ok(None);
    }
    let org_admin = is_org_admin(conn, user.organization_id, user.id)?;
    Ok(Some(Caller {
        user,
        org_admin,
        via: kind,
        session_id,
    }))
}

pub fn is_org_admin(conn: &mut PgConnection, org: Uuid, user: Uuid) -> AppResult<bool> {
    Ok(diesel::select(diesel::dsl::exists(
        org_admins::table
            .filter(org_admins::organization_id.eq(org))
            .filter(org_admins::user_id.eq(user)),
    ))
    .get_result(conn)?)
}

/// A caller's standing on one site.
#[derive(Clone, Debug)]
pub struct SiteAccess {
    pub site: Site,
    pub org_admin: bool,
    pub site_admin: bool,
    pub role: Option<ProductRole>,
    pub guest_space: Option<Uuid>,
    /// Spaces of this site the caller administers (only while they are paid there or an admin).
    pub admin_of_spaces: Vec<Uuid>,
}

impl SiteAccess {
    /// Organization and site admins manage invites, roles, groups and settings.
    pub fn is_admin(&self) -> bool {
        self.org_admin || self.site_admin
    }

    /// Admins and paid users see the whole site (every space, the people directory, the guest list).
    pub fn sees_whole_site(&self) -> bool {
        self.is_admin() || self.role.is_some_and(ProductRole::is_paid)
    }

    /// Admins and product admins manage the site's spaces and may put guests in any of them.
    pub fn manages_spaces(&self) -> bool {
        self.is_admin() || self.role == Some(ProductRole::ProductAdmin)
    }

    /// May assign guests to `space` and take them out of it: space managers, and that space's admins.
    pub fn manages_guests_of(&self, space: Uuid) -> bool {
        self.manages_spaces() || self.admin_of_spaces.contains(&space)
    }

    /// May read and create content in `space`.
    pub fn reaches_space(&self, space: Uuid) -> bool {
        self.sees_whole_site()
            || (self.role == Some(ProductRole::Guest) && self.guest_space == Some(space))
    }

    pub fn require_admin(&self) -> AppResult<()> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(AppError::Forbidden)
        }
    }
}

/// Loads a site of the caller's organization; any other id is `NOT_FOUND`, exactly like a missing one.
pub fn site_in_org(conn: &mut PgConnection, org: Uuid, site_id: Uuid) -> AppResult<Site> {
    sites::table
        .find(site_id)
        .filter(sites::organization_id.eq(org))
        .select(Site::as_select())
        .first(conn)
        .optional()?
        .ok_or(AppError::NotFound("Site"))
}

pub fn site_access(
    conn: &mut PgConnection,
    caller: &Caller,
    site_id: Uuid,
) -> AppResult<SiteAccess> {
    let site = site_in_org(conn, caller.user.organization_id, site_id)?;
    let f: StandingRow = diesel::sql_query(
        "SELECT
           EXISTS (SELECT 1 FROM site_admins WHERE site_id = $1 AND user_id = $2) AS site_admin,
           (SELECT role FROM product_roles WHERE site_id = $1 AND user_id = $2) AS direct,
           (SELECT max(gsr.role) FROM group_site_roles gsr JOIN group_members gm ON gm.group_id = gsr.group_id
             WHERE gsr.site_id = $1 AND gm.user_id = $2) AS best_group,
           EXISTS (SELECT 1 FROM site_paid_history WHERE site_id = $1 AND user_id = $2) AS former_paid,
           (SELECT space_id FROM guest_spaces WHERE site_id = $1 AND user_id = $2) AS guest_space,
           ARRAY(SELECT sa.space_id FROM space_admins sa JOIN spaces sp ON sp.id = sa.space_id
                  WHERE sp.site_id = $1 AND sa.user_id = $2) AS admin_spaces",
    )
    .bind::<SqlUuid, _>(site_id)
    .bind::<SqlUuid, _>(caller.user.id)
    .get_result(conn)?;
    let role = effective_role(
        f.direct.and_then(ProductRole::from_rank),
        f.best_group.and_then(ProductRole::from_rank),
        f.former_paid,
    );
    let admin = caller.org_admin || f.site_admin;
    Ok(SiteAccess {
        site,
        org_admin: caller.org_admin,
        site_admin: f.site_admin,
        role,
        guest_space: f.guest_space.filter(|_| role == Some(ProductRole::Guest)),
        admin_of_spaces: if admin || role.is_some_and(ProductRole::is_paid) {
            f.admin_spaces
        } else {
            Vec::new()
        },
    })
}

#[derive(QueryableByName)]
struct StandingRow {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    site_admin: bool,
    #[diesel(sql_type = Nullable<SmallInt>)]
    direct: Option<i16>,
    #[diesel(sql_type = Nullable<SmallInt>)]
    best_group: Option<i16>,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    former_paid: bool,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    guest_space: Option<Uuid>,
    #[diesel(sql_type = diesel::sql_types::Array<SqlUuid>)]
    admin_spaces: Vec<Uuid>,
}

/// Sites the caller administers as a site admin.
pub fn admin_sites(conn: &mut PgConnection, user: Uuid) -> AppResult<Vec<Uuid>> {
    Ok(site_admins::table
        .filter(site_admins::user_id.eq(user))
        .select(site_admins::site_id)
        .load(conn)?)
}

/// Staff are people who are more than guests somewhere: organization or site admins, or paid users of
/// at least one site. Only staff may look at groups and other people's accounts.
pub fn is_staff(conn: &mut PgConnection, caller: &Caller) -> AppResult<bool> {
    if caller.org_admin {
        return Ok(true);
    }
    let uid = caller.user.id;
    let r: StaffRow = diesel::sql_query(
        "SELECT EXISTS (SELECT 1 FROM site_admins WHERE user_id = $1)
             OR EXISTS (SELECT 1 FROM product_roles WHERE user_id = $1 AND role >= 2)
             OR EXISTS (SELECT 1 FROM group_members gm JOIN group_site_roles gsr ON gsr.group_id = gm.group_id
                        WHERE gm.user_id = $1 AND gsr.role >= 2) AS staff",
    )
    .bind::<SqlUuid, _>(uid)
    .get_result(conn)?;
    Ok(r.staff)
}

#[derive(QueryableByName)]
struct StaffRow {
    #[diesel(sql_type = diesel::sql_types::Bool)]
    staff: bool,
}

/// Whether a person holds any access at all: an admin role, or an effective product role on a site.
/// API tokens of people with none do not work.
pub fn has_any_access(conn: &mut PgConnection, user: Uuid) -> AppResult<bool> {
    let r: StaffRow = diesel::sql_query(
        "SELECT EXISTS (SELECT 1 FROM org_admins WHERE user_id = $1)
             OR EXISTS (SELECT 1 FROM site_admins WHERE user_id = $1)
             OR EXISTS (
                  SELECT 1 FROM (
                    SELECT site_id, role FROM product_roles WHERE user_id = $1
                    UNION ALL
                    SELECT gsr.site_id, gsr.role FROM group_members gm
                      JOIN group_site_roles gsr ON gsr.group_id = gm.group_id WHERE gm.user_id = $1
                  ) r
                  WHERE r.role >= 2
                     OR NOT EXISTS (SELECT 1 FROM site_paid_history h WHERE h.site_id = r.site_id AND h.user_id = $1)
                ) AS staff",
    )
    .bind::<SqlUuid, _>(user)
    .get_result(conn)?;
    Ok(r.staff)
}

#[derive(QueryableByName)]
struct RoleFacts {
    #[diesel(sql_type = Nullable<SmallInt>)]
    direct: Option<i16>,
    #[diesel(sql_type = Nullable<SmallInt>)]
    best_group: Option<i16>,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    former_paid: bool,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    active: bool,
}

/// A user's effective role on a site (`None`: no access, including deactivated accounts).
pub fn effective_role_of(
    conn: &mut PgConnection,
    site_id: Uuid,
    user_id: Uuid,
) -> AppResult<Option<ProductRole>> {
    let f: RoleFacts = diesel::sql_query(
        "SELECT
           (SELECT role FROM product_roles WHERE site_id = $1 AND user_id = $2) AS direct,
           (SELECT max(gsr.role) FROM group_site_roles gsr JOIN group_members gm ON gm.group_id = gsr.group_id
             WHERE gsr.site_id = $1 AND gm.user_id = $2) AS best_group,
           EXISTS (SELECT 1 FROM site_paid_history WHERE site_id = $1 AND user_id = $2) AS former_paid,
           EXISTS (SELECT 1 FROM users WHERE id = $2 AND status = 'ACTIVE') AS active",
    )
    .bind::<SqlUuid, _>(site_id)
    .bind::<SqlUuid, _>(user_id)
    .get_result(conn)?;
    if !f.active {
        return Ok(None);
    }
    Ok(effective_role(
        f.direct.and_then(ProductRole::from_rank),
        f.best_group.and_then(ProductRole::from_rank),
        f.former_paid,
    ))
}

/// Effective roles of every active user with access on a site (`$1` = site id), guests that are
/// former paid excluded. Shared by the seat count and the lists of users and guests.
pub const EFFECTIVE_ROLES: &str = "
  eff AS (
    SELECT g.user_id, max(g.role) AS role
    FROM (
      SELECT user_id, role FROM product_roles WHERE site_id = $1
      UNION ALL
      SELECT gm.user_id, gsr.role FROM group_site_roles gsr
        JOIN group_members gm ON gm.group_id = gsr.group_id
        WHERE gsr.site_id = $1
    ) g
    JOIN users u ON u.id = g.user_id AND u.status = 'ACTIVE'
    GROUP BY g.user_id
    HAVING max(g.role) > 1
        OR NOT EXISTS (SELECT 1 FROM site_paid_history h WHERE h.site_id = $1 AND h.user_id = g.user_id)
  )";

/// Open invites of a site (`$1`) at `$2` with the role accepting would grant there: the invite's own
/// role or the best role its groups hold on the site.
pub const PENDING_ROLES: &str = "
  pending AS (
    SELECT i.id, GREATEST(i.role, (
             SELECT max(gsr.role) FROM invite_groups ig
             JOIN group_site_roles gsr ON gsr.group_id = ig.group_id AND gsr.site_id = $1
             WHERE ig.invite_id = i.id)) AS role
    FROM invites i
    WHERE i.site_id = $1 AND i.status = 'PENDING' AND i.expires_at > $2
  )";

#[derive(QueryableByName)]
struct CountRow {
    #[diesel(sql_type = BigInt)]
    paid: i64,
    #[diesel(sql_type = BigInt)]
    guests: i64,
    #[diesel(sql_type = BigInt)]
    pending_paid: i64,
    #[diesel(sql_type = BigInt)]
    pending_guests: i64,
}

/// What occupies the site at `now`. Call it under [`lock_site`] when the answer decides a write.
pub fn counts(conn: &mut PgConnection, site_id: Uuid, now: DateTime<Utc>) -> AppResult<Counts> {
    let row: CountRow = diesel::sql_query(format!(
        "WITH {EFFECTIVE_ROLES}, {PENDING_ROLES}
         SELECT
           count(*) FILTER (WHERE role >= 2) AS paid,
           count(*) FILTER (WHERE role = 1) AS guests,
           (SELECT count(*) FROM pending WHERE role >= 2) AS pending_paid,
           (SELECT count(*) FROM pending WHERE role = 1) AS pending_guests
         FROM eff"
    ))
    .bind::<SqlUuid, _>(site_id)
    .bind::<Timestamptz, _>(now)
    .get_result(conn)?;
    Ok(Counts {
        paid: row.paid,
        guests: row.guests,
        pending_paid: row.pending_paid,
        pending_guests: row.pending_guests,
    })
}

/// Takes the site's row lock: every change that can add a seat or a guest on a site holds it, so the
/// count-check-write sequence is serialized per site and the seat rules hold under any concurrency.
pub fn lock_site(conn: &mut PgConnection, site_id: Uuid) -> AppResult<Site> {
    Ok(sites::table
        .find(site_id)
        .for_update()
        .select(Site::as_select())
        .first(conn)?)
}

/// Remembers that these users now hold a paid role on the site (they can never be guests there again).
pub fn record_paid(
    conn: &mut PgConnection,
    site_id: Uuid,
    user_ids: &[Uuid],
    now: DateTime<Utc>,
) -> AppResult<()> {
    let rows: Vec<_> = user_ids
        .iter()
        .map(|u| {
            (
                site_paid_history::site_id.eq(site_id),
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

pub fn is_former_paid(conn: &mut PgConnection, site_id: Uuid, user_id: Uuid) -> AppResult<bool> {
    Ok(diesel::select(diesel::dsl::exists(
        site_paid_history::table.find((site_id, user_id)),
    ))
    .get_result(conn)?)
}
