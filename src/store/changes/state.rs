//! The maintained access state (`site_members`, `site_counters`, `invites.holds_role`,
//! `users.external`): derived from the grants by `domain::access` and written only here, by the
//! access-change engine, in the transaction of the change that causes it.
//!
//! Writers call [`refresh`] (people) or [`refresh_invites`] (open invites) after touching grants;
//! both recompute from the grants, write only what differs, and move the site counters by the
//! difference, so a change costs what it touches. Readers use [`roles`], [`role_of`] and [`counts`],
//! which read stored rows and never re-derive a rule.

use crate::db::schema::*;
use crate::domain::ProductRole;
use crate::domain::access::{self, Access, Facts};
use crate::domain::seats::Counts;
use crate::domain::status::{InviteStatus, UserStatus};
use crate::error::AppResult;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, Bool, Nullable, SmallInt, Text, Uuid as SqlUuid};
use std::collections::{BTreeMap, HashMap};
use uuid::Uuid;

#[derive(QueryableByName)]
struct FactsRow {
    #[diesel(sql_type = SqlUuid)]
    site_id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    user_id: Uuid,
    #[diesel(sql_type = Bool)]
    active: bool,
    #[diesel(sql_type = Bool)]
    external: bool,
    #[diesel(sql_type = Text)]
    email_normalized: String,
    #[diesel(sql_type = Nullable<SmallInt>)]
    direct: Option<i16>,
    #[diesel(sql_type = Array<SqlUuid>)]
    group_ids: Vec<Uuid>,
    #[diesel(sql_type = Array<SmallInt>)]
    group_roles: Vec<i16>,
    #[diesel(sql_type = Bool)]
    former_paid: bool,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    guest_space: Option<Uuid>,
}

/// The grants of `users` on `sites` (every pair), in one statement: the facts `domain::access` reads.
pub(crate) fn facts(
    conn: &mut PgConnection,
    sites: &[Uuid],
    users: &[Uuid],
) -> AppResult<Vec<(Uuid, Uuid, String, Facts)>> {
    if sites.is_empty() || users.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<FactsRow> = diesel::sql_query(
        "SELECT s.site_id, u.id AS user_id, u.status = $3 AS active, u.external, u.email_normalized,
           (SELECT role FROM product_roles pr WHERE pr.site_id = s.site_id AND pr.user_id = u.id) AS direct,
           ARRAY(SELECT gsr.group_id FROM group_members gm JOIN group_site_roles gsr ON gsr.group_id = gm.group_id
                  WHERE gm.user_id = u.id AND gsr.site_id = s.site_id ORDER BY gsr.group_id) AS group_ids,
           ARRAY(SELECT gsr.role FROM group_members gm JOIN group_site_roles gsr ON gsr.group_id = gm.group_id
                  WHERE gm.user_id = u.id AND gsr.site_id = s.site_id ORDER BY gsr.group_id) AS group_roles,
           EXISTS (SELECT 1 FROM site_paid_history h WHERE h.site_id = s.site_id AND h.user_id = u.id) AS former_paid,
           (SELECT space_id FROM guest_spaces gs WHERE gs.site_id = s.site_id AND gs.user_id = u.id) AS guest_space
         FROM unnest($1::uuid[]) AS s(site_id) CROSS JOIN users u
         WHERE u.id = ANY($2)",
    )
    .bind::<Array<SqlUuid>, _>(sites)
    .bind::<Array<SqlUuid>, _>(users)
    .bind::<Text, _>(UserStatus::Active)
    .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let f = Facts {
                active: r.active,
                direct: r.direct.and_then(ProductRole::from_rank),
                groups: r
                    .group_ids
                    .into_iter()
                    .zip(r.group_roles)
                    .filter_map(|(g, role)| Some((g, ProductRole::from_rank(role)?)))
                    .collect(),
                former_paid: r.former_paid,
                guest_space: r.guest_space,
                external: r.external,
            };
            (r.site_id, r.user_id, r.email_normalized, f)
        })
        .collect())
}

/// A stored `site_members` row.
#[derive(Queryable, Selectable, Clone, Debug, PartialEq, Eq)]
#[diesel(table_name = site_members, check_for_backend(diesel::pg::Pg))]
pub struct MemberRow {
    pub site_id: Uuid,
    pub user_id: Uuid,
    pub role: i16,
    pub direct: bool,
    pub via_groups: Vec<Uuid>,
    pub guest_space_id: Option<Uuid>,
    pub external: bool,
    pub email_normalized: String,
}

impl MemberRow {
    pub(crate) fn new(site: Uuid, user: Uuid, email: String, a: &Access) -> Self {
        Self {
            site_id: site,
            user_id: user,
            role: a.role.rank(),
            direct: a.direct,
            via_groups: a.via_groups.clone(),
            guest_space_id: a.guest_space,
            external: a.external,
            email_normalized: email,
        }
    }

    pub fn role(&self) -> Option<ProductRole> {
        ProductRole::from_rank(self.role)
    }
}

/// Stored rows of `users` on `sites`, locked for the write that follows.
fn stored(
    conn: &mut PgConnection,
    sites: &[Uuid],
    users: &[Uuid],
) -> AppResult<HashMap<(Uuid, Uuid), MemberRow>> {
    let rows: Vec<MemberRow> = site_members::table
        .filter(site_members::site_id.eq_any(sites))
        .filter(site_members::user_id.eq_any(users))
        .select(MemberRow::as_select())
        .for_update()
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|r| ((r.site_id, r.user_id), r))
        .collect())
}

/// The stored effective roles of `users` on `sites` (every pair; `None`: no access).
pub fn roles(
    conn: &mut PgConnection,
    sites: &[Uuid],
    users: &[Uuid],
) -> AppResult<HashMap<(Uuid, Uuid), Option<ProductRole>>> {
    let rows: Vec<(Uuid, Uuid, i16)> = site_members::table
        .filter(site_members::site_id.eq_any(sites))
        .filter(site_members::user_id.eq_any(users))
        .select((
            site_members::site_id,
            site_members::user_id,
            site_members::role,
        ))
        .load(conn)?;
    let mut out: HashMap<(Uuid, Uuid), Option<ProductRole>> = sites
        .iter()
        .flat_map(|s| users.iter().map(move |u| ((*s, *u), None)))
        .collect();
    for (s, u, r) in rows {
        out.insert((s, u), ProductRole::from_rank(r));
    }
    Ok(out)
}

/// A person's stored effective role on a site (`None`: no access, including deactivated accounts).
pub fn role_of(conn: &mut PgConnection, site: Uuid, user: Uuid) -> AppResult<Option<ProductRole>> {
    let r: Option<i16> = site_members::table
        .find((site, user))
        .select(site_members::role)
        .first(conn)
        .optional()?;
    Ok(r.and_then(ProductRole::from_rank))
}

/// Writes rows that differ from what is stored (`None`: delete) and moves the counters by the
/// difference (unless `counters` is false: the repair sets them outright). Shared by [`refresh`]
/// and the repair of `check-access`.
pub(crate) fn write_members(
    conn: &mut PgConnection,
    stored: &HashMap<(Uuid, Uuid), MemberRow>,
    wanted: &HashMap<(Uuid, Uuid), Option<MemberRow>>,
    now: DateTime<Utc>,
    counters: bool,
) -> AppResult<()> {
    let mut deltas: BTreeMap<Uuid, Counts> = BTreeMap::new();
    let mut upserts = Vec::new();
    let mut deletes: BTreeMap<Uuid, Vec<Uuid>> = BTreeMap::new();
    for (key, want) in wanted {
        let have = stored.get(key);
        if have == want.as_ref() {
            continue;
        }
        let d = access::member_delta(
            have.and_then(MemberRow::role),
            want.as_ref().and_then(MemberRow::role),
        );
        let e = deltas.entry(key.0).or_default();
        *e = access::add(*e, d);
        match want {
            Some(row) => upserts.push(row.clone()),
            None => deletes.entry(key.0).or_default().push(key.1),
        }
    }
    for (site, users) in deletes {
        diesel::delete(
            site_members::table
                .filter(site_members::site_id.eq(site))
                .filter(site_members::user_id.eq_any(users)),
        )
        .execute(conn)?;
    }
    for chunk in upserts.chunks(5000) {
        let values: Vec<_> = chunk
            .iter()
            .map(|r| {
                (
                    site_members::site_id.eq(r.site_id),
                    site_members::user_id.eq(r.user_id),
                    site_members::role.eq(r.role),
                    site_members::direct.eq(r.direct),
                    site_members::via_groups.eq(&r.via_groups),
                    site_members::guest_space_id.eq(r.guest_space_id),
                    site_members::external.eq(r.external),
                    site_members::email_normalized.eq(&r.email_normalized),
                    site_members::updated_at.eq(now),
                )
            })
            .collect();
        use diesel::upsert::excluded;
        diesel::insert_into(site_members::table)
            .values(&values)
            .on_conflict((site_members::site_id, site_members::user_id))
            .do_update()
            .set((
                site_members::role.eq(excluded(site_members::role)),
                site_members::direct.eq(excluded(site_members::direct)),
                site_members::via_groups.eq(excluded(site_members::via_groups)),
                site_members::guest_space_id.eq(excluded(site_members::guest_space_id)),
                site_members::external.eq(excluded(site_members::external)),
                site_members::email_normalized.eq(excluded(site_members::email_normalized)),
                site_members::updated_at.eq(now),
            ))
            .execute(conn)?;
    }
    if counters {
        for (site, d) in deltas {
            move_counters(conn, site, d)?;
        }
    }
    Ok(())
}

/// Recomputes what `users` hold on `sites` from their grants, writes what changed and moves the
/// counters. Returns the effective roles after (every pair).
pub fn refresh(
    conn: &mut PgConnection,
    sites: &[Uuid],
    users: &[Uuid],
    now: DateTime<Utc>,
) -> AppResult<HashMap<(Uuid, Uuid), Option<ProductRole>>> {
    let facts = facts(conn, sites, users)?;
    let keys: Vec<Uuid> = facts.iter().map(|(_, u, _, _)| *u).collect();
    let have = stored(conn, sites, &keys)?;
    let mut roles = HashMap::with_capacity(facts.len());
    let mut wanted = HashMap::with_capacity(facts.len());
    for (site, user, email, f) in facts {
        let row = access::derive(&f).map(|a| MemberRow::new(site, user, email, &a));
        roles.insert((site, user), row.as_ref().and_then(MemberRow::role));
        wanted.insert((site, user), row);
    }
    write_members(conn, &have, &wanted, now, true)?;
    Ok(roles)
}

/// Adds `d` to a site's counters (creating the row on first use).
fn move_counters(conn: &mut PgConnection, site: Uuid, d: Counts) -> AppResult<()> {
    if d == Counts::default() {
        return Ok(());
    }
    // The row is made first (zeros), then moved: the CHECKs hold for the proposed row of an insert
    // too, so a negative delta cannot go through `ON CONFLICT DO UPDATE`.
    diesel::insert_into(site_counters::table)
        .values(site_counters::site_id.eq(site))
        .on_conflict_do_nothing()
        .execute(conn)?;
    diesel::update(site_counters::table.find(site))
        .set((
            site_counters::paid.eq(site_counters::paid + d.paid),
            site_counters::guests.eq(site_counters::guests + d.guests),
            site_counters::pending_paid.eq(site_counters::pending_paid + d.pending_paid),
            site_counters::pending_guests.eq(site_counters::pending_guests + d.pending_guests),
        ))
        .execute(conn)?;
    Ok(())
}

/// The stored counters of a site, as they are (open invites past their expiry still counted).
pub(crate) fn stored_counts(conn: &mut PgConnection, site: Uuid) -> AppResult<Counts> {
    let row: Option<(i64, i64, i64, i64)> = site_counters::table
        .find(site)
        .select((
            site_counters::paid,
            site_counters::guests,
            site_counters::pending_paid,
            site_counters::pending_guests,
        ))
        .first(conn)
        .optional()?;
    Ok(
        row.map_or_else(Counts::default, |(paid, guests, pp, pg)| Counts {
            paid,
            guests,
            pending_paid: pp,
            pending_guests: pg,
        }),
    )
}

/// What occupies the site at `now`: its counters, less open invites whose expiry has passed but that
/// the engine has not closed yet (an index range that is empty once they are closed). Under the
/// site's lock, after [`close_expired`], that is the counters row alone.
pub fn counts(conn: &mut PgConnection, site: Uuid, now: DateTime<Utc>) -> AppResult<Counts> {
    let mut c = stored_counts(conn, site)?;
    let lapsed: Vec<Option<i16>> = invites::table
        .filter(invites::site_id.eq(site))
        .filter(invites::status.eq(InviteStatus::Pending))
        .filter(invites::expires_at.le(now))
        .select(invites::holds_role)
        .load(conn)?;
    for r in lapsed {
        let d = access::invite_delta(r.and_then(ProductRole::from_rank), None);
        c = access::add(c, d);
    }
    Ok(c)
}

/// Closes a site's open invites whose expiry has passed (status `EXPIRED`), freeing what they held.
/// The engine calls it whenever it locks a site, and the scheduler's sweep calls [`close_all_expired`].
pub fn close_expired(conn: &mut PgConnection, site: Uuid, now: DateTime<Utc>) -> AppResult<()> {
    let freed: Vec<(Uuid, Option<i16>)> = diesel::sql_query(
        "WITH closed AS (
           SELECT id, holds_role FROM invites
           WHERE site_id = $1 AND status = $3 AND expires_at <= $2 FOR UPDATE)
         UPDATE invites i SET status = $4, holds_role = NULL FROM closed
         WHERE i.id = closed.id RETURNING i.site_id, closed.holds_role",
    )
    .bind::<SqlUuid, _>(site)
    .bind::<diesel::sql_types::Timestamptz, _>(now)
    .bind::<Text, _>(InviteStatus::Pending)
    .bind::<Text, _>(InviteStatus::Expired)
    .load::<Freed>(conn)?
    .into_iter()
    .map(|f| (f.site_id, f.holds_role))
    .collect();
    free(conn, freed)
}

#[derive(QueryableByName)]
struct Freed {
    #[diesel(sql_type = SqlUuid)]
    site_id: Uuid,
    #[diesel(sql_type = Nullable<SmallInt>)]
    holds_role: Option<i16>,
}

fn free(conn: &mut PgConnection, freed: Vec<(Uuid, Option<i16>)>) -> AppResult<()> {
    let mut deltas: BTreeMap<Uuid, Counts> = BTreeMap::new();
    for (site, r) in freed {
        let e = deltas.entry(site).or_default();
        *e = access::add(
            *e,
            access::invite_delta(r.and_then(ProductRole::from_rank), None),
        );
    }
    for (site, d) in deltas {
        move_counters(conn, site, d)?;
    }
    Ok(())
}

/// Closes every expired open invite (the scheduler's sweep), site by site under each site's lock so
/// it never races a seat decision.
pub fn close_all_expired(conn: &mut PgConnection, now: DateTime<Utc>) -> AppResult<usize> {
    let sites: Vec<Uuid> = invites::table
        .filter(invites::status.eq(InviteStatus::Pending))
        .filter(invites::expires_at.le(now))
        .select(invites::site_id)
        .distinct()
        .load(conn)?;
    for site in &sites {
        conn.transaction(|conn| {
            crate::store::access::lock_site(conn, *site)?;
            close_expired(conn, *site, now)
        })?;
    }
    Ok(sites.len())
}

#[derive(QueryableByName)]
struct InviteFacts {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = SqlUuid)]
    site_id: Uuid,
    #[diesel(sql_type = Bool)]
    open: bool,
    #[diesel(sql_type = Nullable<SmallInt>)]
    role: Option<i16>,
    #[diesel(sql_type = Nullable<SmallInt>)]
    holds_role: Option<i16>,
    #[diesel(sql_type = Array<SmallInt>)]
    group_roles: Vec<i16>,
}

/// One invite's seat: `(id, site, stored, wanted)`.
pub(crate) type Holding = (Uuid, Uuid, Option<ProductRole>, Option<ProductRole>);

/// What each invite holds by the rule, beside what is stored.
pub(crate) fn invite_holdings(
    conn: &mut PgConnection,
    ids: Option<&[Uuid]>,
    site: Option<Uuid>,
) -> AppResult<Vec<Holding>> {
    let rows: Vec<InviteFacts> = diesel::sql_query(
        "SELECT i.id, i.site_id, i.status = $3 AS open, i.role, i.holds_role,
           ARRAY(SELECT gsr.role FROM invite_groups ig
                 JOIN group_site_roles gsr ON gsr.group_id = ig.group_id AND gsr.site_id = i.site_id
                 WHERE ig.invite_id = i.id) AS group_roles
         FROM invites i
         WHERE ($1::uuid[] IS NULL OR i.id = ANY($1))
           AND ($2::uuid IS NULL OR (i.site_id = $2 AND (i.status = $3 OR i.holds_role IS NOT NULL)))
         FOR UPDATE OF i",
    )
    .bind::<Nullable<Array<SqlUuid>>, _>(ids)
    .bind::<Nullable<SqlUuid>, _>(site)
    .bind::<Text, _>(InviteStatus::Pending)
    .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let want = access::invite_holds(
                r.open,
                r.role.and_then(ProductRole::from_rank),
                r.group_roles.into_iter().filter_map(ProductRole::from_rank),
            );
            (
                r.id,
                r.site_id,
                r.holds_role.and_then(ProductRole::from_rank),
                want,
            )
        })
        .collect())
}

/// Writes what invites hold where it differs and moves the counters (shared with the repair).
pub(crate) fn write_holdings(
    conn: &mut PgConnection,
    holdings: &[Holding],
    counters: bool,
) -> AppResult<()> {
    let mut deltas: BTreeMap<Uuid, Counts> = BTreeMap::new();
    // One statement per role written, however many invites (a batch of 10 invites was 10 updates).
    let mut by_role: BTreeMap<Option<i16>, Vec<Uuid>> = BTreeMap::new();
    for (id, site, have, want) in holdings {
        if have == want {
            continue;
        }
        by_role
            .entry(want.map(ProductRole::rank))
            .or_default()
            .push(*id);
        let e = deltas.entry(*site).or_default();
        *e = access::add(*e, access::invite_delta(*have, *want));
    }
    for (role, ids) in by_role {
        diesel::update(invites::table.filter(invites::id.eq_any(&ids)))
            .set(invites::holds_role.eq(role))
            .execute(conn)?;
    }
    if counters {
        for (site, d) in deltas {
            move_counters(conn, site, d)?;
        }
    }
    Ok(())
}

/// Recomputes what these invites hold (after creating, revoking, resending or accepting them, or
/// changing their groups' roles) and moves the counters.
pub fn refresh_invites(conn: &mut PgConnection, ids: &[Uuid]) -> AppResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let h = invite_holdings(conn, Some(ids), None)?;
    write_holdings(conn, &h, true)
}

/// Open invites that join any of these groups (their seat follows the groups' roles).
pub fn open_invites_of_groups(conn: &mut PgConnection, groups: &[Uuid]) -> AppResult<Vec<Uuid>> {
    Ok(invite_groups::table
        .inner_join(invites::table)
        .filter(invite_groups::group_id.eq_any(groups))
        .filter(invites::status.eq(InviteStatus::Pending))
        .select(invites::id)
        .distinct()
        .load(conn)?)
}

/// The rule for one address: external unless its domain is one of the organization's verified ones.
pub fn is_external(conn: &mut PgConnection, org: Uuid, email_domain: &str) -> AppResult<bool> {
    let domains = crate::store::org::verified_domains(conn, org)?;
    Ok(crate::domain::policy::is_external(email_domain, &domains))
}

/// A domain was verified or released: everyone of the organization at that domain flips, in
/// `users` and in every site they hold access on.
pub fn domain_changed(conn: &mut PgConnection, org: Uuid, domain: &str) -> AppResult<()> {
    let external = is_external(conn, org, domain)?;
    let ids: Vec<Uuid> = diesel::update(
        users::table
            .filter(users::organization_id.eq(org))
            .filter(users::email_domain.eq(domain))
            .filter(users::external.ne(external)),
    )
    .set(users::external.eq(external))
    .returning(users::id)
    .get_results(conn)?;
    for chunk in ids.chunks(10_000) {
        diesel::update(site_members::table.filter(site_members::user_id.eq_any(chunk)))
            .set(site_members::external.eq(external))
            .execute(conn)?;
    }
    Ok(())
}

/// Whether a person holds anything anywhere: an admin grant or a role on some site (the rule of
/// `domain::access::has_any_access` over stored rows).
pub fn has_access_anywhere(conn: &mut PgConnection, user: Uuid) -> AppResult<bool> {
    let active: bool = diesel::select(diesel::dsl::exists(
        users::table
            .find(user)
            .filter(users::status.eq(UserStatus::Active)),
    ))
    .get_result(conn)?;
    if !active {
        return Ok(false);
    }
    let admin: bool = diesel::select(
        diesel::dsl::exists(org_admins::table.filter(org_admins::user_id.eq(user))).or(
            diesel::dsl::exists(site_admins::table.filter(site_admins::user_id.eq(user))),
        ),
    )
    .get_result(conn)?;
    let roles: Vec<i16> = site_members::table
        .filter(site_members::user_id.eq(user))
        .select(site_members::role)
        .limit(1)
        .load(conn)?;
    Ok(access::has_any_access(
        admin,
        roles.into_iter().filter_map(ProductRole::from_rank),
    ))
}
