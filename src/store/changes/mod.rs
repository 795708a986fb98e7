//! The access-change engine: every operation that can change who has which role on which site runs
//! through here, so seat rules, paid history, guest-space clean-up, audit events and dry runs are
//! handled once, the same way for a direct role, a group, a deletion or a deactivation.
//!
//! An operation locks what it touches, takes a [`Snapshot`] of the effective roles of the people it
//! affects, makes its writes, and calls [`finish`]. `finish` compares, refuses the whole change if it
//! adds a seat or a guest that a site cannot take, and records the consequences. [`run`] wraps it in
//! a transaction that is rolled back for a dry run, so a dry run answers exactly what the real call
//! would do, because it *is* the real call, undone.
//!
//! Locking (deadlock-free by construction): every access change takes the organization's advisory
//! lock, shared for changes confined to one site (invites, direct roles, guest spaces) and exclusive
//! for changes that can reach several sites (groups, removal, (de)activation); then the rows of the
//! sites whose counts it checks, in id order.

use crate::db::schema::*;
use crate::domain::ProductRole;
use crate::domain::roles::{RoleChange, diff_roles};
use crate::domain::seats::{self, Counts, Usage};
use crate::error::{AppError, AppResult};
use crate::store::access;

pub mod check;
pub mod grants;
pub mod seed;
pub mod state;
use crate::store::audit::{self, Audit};
use crate::store::models::{Site, User};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::Uuid as SqlUuid;
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use uuid::Uuid;

/// How far an operation's effects can reach, which decides the organization lock it takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reach {
    /// Only the sites it locks explicitly and only through direct grants.
    OneSite,
    /// Group memberships, group roles or account status: possibly many sites.
    Organization,
}

/// Takes the organization's access-change lock for this transaction.
pub fn lock_org(conn: &mut PgConnection, org: Uuid, reach: Reach) -> AppResult<()> {
    let f = match reach {
        Reach::OneSite => "pg_advisory_xact_lock_shared",
        Reach::Organization => "pg_advisory_xact_lock",
    };
    diesel::sql_query(format!("SELECT {f}(1735816290, hashtext($1::text))::text"))
        .bind::<SqlUuid, _>(org)
        .execute(conn)?;
    Ok(())
}

/// Locks sites in id order (so two changes never wait on each other in a cycle) and returns them.
pub fn lock_sites(conn: &mut PgConnection, ids: &[Uuid]) -> AppResult<Vec<Site>> {
    let mut ids = ids.to_vec();
    ids.sort();
    ids.dedup();
    ids.iter().map(|id| access::lock_site(conn, *id)).collect()
}

/// Effective roles and seat counts of the affected people and sites, before or after a change.
pub struct Snapshot {
    pub sites: Vec<Site>,
    pub users: Vec<Uuid>,
    pub roles: HashMap<(Uuid, Uuid), Option<ProductRole>>,
    pub counts: HashMap<Uuid, Counts>,
    /// Open invites whose seat the change may move (their groups' roles change).
    pub invites: Vec<Uuid>,
}

impl Snapshot {
    /// Takes the snapshot from the maintained state; `sites` must already be locked. Their expired
    /// invites are closed first, so the counters are exact.
    pub fn take(
        conn: &mut PgConnection,
        sites: Vec<Site>,
        users: Vec<Uuid>,
        now: DateTime<Utc>,
    ) -> AppResult<Self> {
        let ids: Vec<Uuid> = sites.iter().map(|s| s.id).collect();
        let mut counts = HashMap::new();
        for s in &ids {
            state::close_expired(conn, *s, now)?;
            counts.insert(*s, state::stored_counts(conn, *s)?);
        }
        let roles = state::roles(conn, &ids, &users)?;
        Ok(Self {
            sites,
            users,
            roles,
            counts,
            invites: Vec::new(),
        })
    }

    /// Also follows the open invites that join these groups (a change to the groups' roles moves
    /// the seats those invites hold).
    pub fn with_invites_of(mut self, conn: &mut PgConnection, groups: &[Uuid]) -> AppResult<Self> {
        self.invites = state::open_invites_of_groups(conn, groups)?;
        Ok(self)
    }
}

/// One person's role change on one site, with the rows the payload shows.
#[derive(Clone, Debug)]
pub struct ChangedAccess {
    pub user: User,
    pub site: Site,
    pub change: RoleChange,
}

/// What an access change did (or, for a dry run, would do).
#[derive(Clone, Debug)]
pub struct AccessChange {
    pub dry_run: bool,
    pub changes: Vec<ChangedAccess>,
    /// Usage after the change, one per affected site.
    pub usage: Vec<(Site, Usage)>,
}

/// What the operation was, for the audit trail.
pub struct Context {
    pub organization_id: Uuid,
    pub actor_id: Option<Uuid>,
    pub action: &'static str,
    pub now: DateTime<Utc>,
    /// Details of the operation itself (recorded on each role-change event).
    pub detail: serde_json::Value,
    /// Seats not to count as held before the change (an invite being accepted is re-checked as if new).
    pub discount: Option<(Uuid, Counts)>,
    /// The operation only takes access away, so it is never refused, even if it shifts pending invites
    /// from paid to guest and leaves a site over its allowance.
    pub never_refused: bool,
}

impl Context {
    pub fn new(org: Uuid, actor: Option<Uuid>, action: &'static str, now: DateTime<Utc>) -> Self {
        Self {
            organization_id: org,
            actor_id: actor,
            action,
            now,
            detail: json!({}),
            discount: None,
            never_refused: false,
        }
    }

    pub fn never_refused(mut self) -> Self {
        self.never_refused = true;
        self
    }

    pub fn detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = detail;
        self
    }
}

/// Compares with `before`, enforces the seat rules on every affected site (the whole change is refused
/// if one site cannot take what it adds), and records the consequences: paid history for anyone now
/// paid, guest spaces dropped for anyone no longer a guest, one audit event per role change.
pub fn finish(conn: &mut PgConnection, before: Snapshot, ctx: &Context) -> AppResult<AccessChange> {
    let site_ids: Vec<Uuid> = before.sites.iter().map(|s| s.id).collect();
    let after_roles = state::refresh(conn, &site_ids, &before.users, ctx.now)?;
    state::refresh_invites(conn, &before.invites)?;
    let usage = check_seats(conn, &before, ctx)?;
    let diffs = diff_roles(&before.roles, &after_roles);
    record_paid_history(conn, &diffs, ctx.now)?;
    start_guest_terms(conn, &before.sites, &diffs, ctx)?;
    drop_guest_spaces(conn, &after_roles)?;
    let users: Vec<User> = crate::store::directory::users_by_ids(
        conn,
        &diffs.iter().map(|d| d.user_id).collect::<Vec<_>>(),
    )?;
    audit_changes(conn, &diffs, ctx)?;
    let changes = diffs
        .into_iter()
        .filter_map(|d| {
            Some(ChangedAccess {
                user: users.iter().find(|u| u.id == d.user_id)?.clone(),
                site: before.sites.iter().find(|s| s.id == d.site_id)?.clone(),
                change: d,
            })
        })
        .collect();
    Ok(AccessChange {
        dry_run: false,
        changes,
        usage,
    })
}

/// Each affected site's usage after the change, refusing the change (unless it is never refused)
/// when a site cannot take what it adds; the counts before leave out what `ctx.discount` says.
fn check_seats(
    conn: &mut PgConnection,
    before: &Snapshot,
    ctx: &Context,
) -> AppResult<Vec<(Site, Usage)>> {
    let mut usage = Vec::with_capacity(before.sites.len());
    for site in &before.sites {
        let was = match ctx.discount {
            Some((s, held)) if s == site.id => before.counts[&site.id].without(held),
            _ => before.counts[&site.id],
        };
        let now_counts = state::stored_counts(conn, site.id)?;
        if !ctx.never_refused {
            seats::check_change(site.limits(), was, now_counts)?;
        }
        usage.push((site.clone(), seats::usage(site.limits(), now_counts)));
    }
    Ok(usage)
}

/// Paid history for everyone paid after the change, one write per site.
fn record_paid_history(
    conn: &mut PgConnection,
    diffs: &[RoleChange],
    now: DateTime<Utc>,
) -> AppResult<()> {
    let mut by_site: BTreeMap<Uuid, Vec<Uuid>> = BTreeMap::new();
    for d in diffs.iter().filter(|d| d.now_paid()) {
        by_site.entry(d.site_id).or_default().push(d.user_id);
    }
    for (site, users) in &by_site {
        grants::record_paid(conn, *site, users, now)?;
    }
    Ok(())
}

/// New guests get their terms: whoever made them a guest answers for them (the sponsor), and the
/// site's maximum lifetime, if it has one, applies.
fn start_guest_terms(
    conn: &mut PgConnection,
    sites: &[Site],
    diffs: &[RoleChange],
    ctx: &Context,
) -> AppResult<()> {
    let new_terms: Vec<_> = diffs
        .iter()
        .filter(|d| d.became_guest())
        .filter_map(|d| {
            let site = sites.iter().find(|s| s.id == d.site_id)?;
            Some((
                guest_terms::site_id.eq(d.site_id),
                guest_terms::user_id.eq(d.user_id),
                guest_terms::sponsor_id.eq(ctx.actor_id),
                guest_terms::ends_at.eq(site
                    .max_guest_lifetime_days
                    .map(|days| ctx.now + chrono::Duration::days(days.into()))),
                guest_terms::updated_at.eq(ctx.now),
            ))
        })
        .collect();
    if !new_terms.is_empty() {
        diesel::insert_into(guest_terms::table)
            .values(&new_terms)
            .on_conflict_do_nothing()
            .execute(conn)?;
    }
    Ok(())
}

/// Only guests hold a guest space: it goes for everyone active who is not a guest after the change
/// (a paid person reaches every space, someone without access none). Deactivated accounts keep their
/// grants and their space for when they come back; the change that reactivates them applies the rule
/// to the role they come back with (the property test found a guest put in a paid group while
/// deactivated coming back paid with their space).
fn drop_guest_spaces(
    conn: &mut PgConnection,
    after: &HashMap<(Uuid, Uuid), Option<ProductRole>>,
) -> AppResult<()> {
    let (sites, users): (Vec<Uuid>, Vec<Uuid>) = after
        .iter()
        .filter(|(_, role)| **role != Some(ProductRole::Guest))
        .map(|(key, _)| *key)
        .unzip();
    if sites.is_empty() {
        return Ok(());
    }
    diesel::sql_query(
        "DELETE FROM guest_spaces g USING users u, unnest($1::uuid[], $2::uuid[]) AS t(site_id, user_id)
         WHERE g.site_id = t.site_id AND g.user_id = t.user_id AND u.id = t.user_id AND u.status = $3",
    )
    .bind::<diesel::sql_types::Array<diesel::sql_types::Uuid>, _>(&sites)
    .bind::<diesel::sql_types::Array<diesel::sql_types::Uuid>, _>(&users)
    .bind::<diesel::sql_types::Text, _>(crate::domain::status::UserStatus::Active)
    .execute(conn)?;
    Ok(())
}

/// One `access.change` event per role change, naming the operation that made it.
fn audit_changes(conn: &mut PgConnection, diffs: &[RoleChange], ctx: &Context) -> AppResult<()> {
    let events: Vec<Audit> = diffs
        .iter()
        .map(|d| Audit::new(ctx.organization_id, ctx.actor_id, "access.change", ctx.now)
.target("user", d.user_id)
.site(d.site_id)
.before(json!({ "role": d.before }))
.after(json!({ "role": d.after, "lostAccess": d.lost_access(), "by": ctx.action, "detail": ctx.detail })))
        .collect();
    audit::record_all(conn, events)
}

enum TxEnd<T> {
    Failed(AppError),
    DryRun(T),
}

impl<T> From<diesel::result::Error> for TxEnd<T> {
    fn from(e: diesel::result::Error) -> Self {
        Self::Failed(e.into())
    }
}

/// Runs `f` in a transaction; a dry run returns what it produced and rolls every write back.
pub fn run<T>(
    conn: &mut PgConnection,
    dry_run: bool,
    f: impl FnOnce(&mut PgConnection) -> AppResult<T>,
) -> AppResult<T> {
    let r = conn.transaction::<T, TxEnd<T>, _>(|conn| {
        let out = f(conn).map_err(TxEnd::Failed)?;
        if dry_run {
            Err(TxEnd::DryRun(out))
        } else {
            Ok(out)
        }
    });
    match r {
        Ok(v) | Err(TxEnd::DryRun(v)) => Ok(v),
        Err(TxEnd::Failed(e)) => Err(e),
    }
}

/// Ends every session of these users (removal, deactivation): access ends at once, not at expiry.
pub fn end_sessions(
    conn: &mut PgConnection,
    users: &[Uuid],
    now: DateTime<Utc>,
) -> AppResult<usize> {
    Ok(diesel::update(
        sessions::table
            .filter(sessions::user_id.eq_any(users))
            .filter(sessions::revoked_at.is_null()),
    )
    .set(sessions::revoked_at.eq(now))
    .execute(conn)?)
}

#[cfg(test)]
mod tests {
    /// The grants and the maintained access state have one writer: this module (`grants` for the
    /// grant tables, `state` for what is derived from them). A write to those tables (or columns)
    /// anywhere else in `src/` is a bug that `check-access` would find later; this finds it now.
    /// Whitespace is ignored, so a call split over lines is found too.
    #[test]
    fn only_the_engine_writes_grants_and_the_maintained_state() {
        let mut writes: Vec<String> = [
            "invites::holds_role.eq",
            "users::external.eq",
            "SETholds_role",
            // Creating or renaming a group grants nothing; deleting one takes its roles away.
            "delete(groups::table",
            "DELETEFROMgroups",
        ]
        .map(String::from)
        .to_vec();
        for table in [
            "site_members",
            "site_counters",
            "product_roles",
            "group_site_roles",
            "group_members",
            "guest_spaces",
            "site_paid_history",
            "invites",
            "invite_groups",
        ] {
            for w in ["insert_into(", "update(", "delete("] {
                writes.push(format!("{w}{table}::table"));
            }
            for w in ["INSERTINTO", "UPDATE", "DELETEFROM"] {
                writes.push(format!("{w}{table}("));
                writes.push(format!("{w}{table}SET"));
                writes.push(format!("{w}{table}WHERE"));
            }
        }
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
        let mut stack = vec![std::path::PathBuf::from(root)];
        let mut offenders = Vec::new();
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    if !path.ends_with("store/changes") {
                        stack.push(path);
                    }
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text: String = std::fs::read_to_string(&path)
                        .unwrap()
                        .chars()
                        .filter(|c| !c.is_whitespace())
                        .collect();
                    for w in &writes {
                        if text.contains(w.as_str()) {
                            offenders.push(format!("{}: {w}", path.display()));
                        }
                    }
                }
            }
        }
        assert!(offenders.is_empty(), "{offenders:?}");
    }
}
