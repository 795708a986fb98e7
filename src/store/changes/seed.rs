//! A realistic dataset for benchmarks, built with set-based SQL so that 10,000 users take a second
//! and a million external users well under a minute. It lives in the engine because it bulk-loads
//! grant tables (which only the engine writes), then derives the maintained state from them with the
//! engine's own repair (`check::run_for`).

use crate::domain::EmailAddress;
use crate::error::AppResult;
use crate::store::org;
use chrono::{DateTime, Utc};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use uuid::Uuid;

#[derive(Clone, Debug)]
pub struct SeedInput {
    pub users: i64,
    pub guests: i64,
    pub sites: i64,
    pub spaces: i64,
    pub groups: i64,
    pub pending_invites: i64,
    pub audit_events: i64,
    /// Admins besides the bootstrap one (the invite benchmark runs one client per admin).
    pub extra_admins: i64,
    /// Large mode: external users without access, for the re-verification sweep.
    pub external: i64,
    /// Of those, how many are due (their 30-day period ended).
    pub external_due: i64,
}

impl Default for SeedInput {
    fn default() -> Self {
        Self {
            users: 10_000,
            guests: 2_000,
            sites: 3,
            spaces: 200,
            groups: 50,
            pending_invites: 500,
            audit_events: 20_000,
            extra_admins: 7,
            external: 0,
            external_due: 0,
        }
    }
}

/// What a benchmark needs to drive the dataset.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Seeded {
    pub organization: String,
    pub site_id: Uuid,
    pub admin_tokens: Vec<String>,
    /// A paid user's session (for `me`), when the dataset has paid users.
    pub session_token: Option<String>,
}

/// Seeds one new organization (a fresh name each time, so seeds never collide) as `s` describes, and
/// answers what a benchmark needs to drive it.
pub fn seed(conn: &mut PgConnection, s: &SeedInput, now: DateTime<Utc>) -> AppResult<Seeded> {
    let name = format!("Bench {}", Uuid::new_v4().simple());
    let b = org::bootstrap(
        conn,
        org::BootstrapInput {
            org_name: name,
            site_name: "Main".into(),
            admin_email: EmailAddress::parse("admin@bench.example").expect("valid"),
            user_limit: Some(10_000_000),
            verified_domains: vec!["bench.example".into()],
        },
        now,
    )?;
    let (org, site, admin) = (b.organization.id, b.site.id, b.admin.id);
    bulk_load(conn, s, org, site, admin)?;
    let mut admin_tokens = vec![b.api_token];
    admin_tokens.extend(extra_admins(conn, org, s.extra_admins, now)?);
    // The grants above were bulk-loaded; the engine's repair derives the maintained state from them
    // with the same rules and writers as every other change.
    crate::store::changes::check::run_for(conn, Some(org), true, now)?;
    let session_token = member_session(conn, org, now)?;
    Ok(Seeded {
        organization: b.organization.slug,
        site_id: site,
        admin_tokens,
        session_token,
    })
}

/// The dataset itself, loaded into the grant tables and the rest with set-based statements in one
/// transaction, then analyzed: the sites, spaces, paid users and guests (most of them in a space),
/// groups, pending invites, audit events and the external users of large mode.
fn bulk_load(
    conn: &mut PgConnection,
    s: &SeedInput,
    org: Uuid,
    site: Uuid,
    admin: Uuid,
) -> AppResult<()> {
    let paid = s.users - s.guests;
    // Every statement below is set-based; the whole seed is one transaction.
    conn.batch_execute(&format!(
        "BEGIN;
         UPDATE sites SET guest_ratio = 100 WHERE id = '{site}';
         INSERT INTO sites (organization_id, name, user_limit, created_at)
           SELECT '{org}', 'Site ' || i, 100000, now() FROM generate_series(2, {sites}) i;
         INSERT INTO spaces (site_id, key, name, created_at)
           SELECT '{site}', 'S' || i, 'Space ' || i, now() FROM generate_series(1, {spaces}) i;
         INSERT INTO users (organization_id, email, email_normalized, display_name, invited_by, created_at, verified_at)
           SELECT '{org}', e, e, 'Member ' || i, '{admin}', now() - interval '100 days', now() - interval '1 day'
           FROM (SELECT i, 'member' || i || '@bench.example' AS e FROM generate_series(1, {paid}) i) m;
         INSERT INTO users (organization_id, email, email_normalized, display_name, invited_by, created_at, verified_at)
           SELECT '{org}', e, e, 'Guest ' || i, '{admin}', now() - interval '10 days', now() - interval '1 day'
           FROM (SELECT i, 'guest' || i || '@partner' || (i % 20) || '.example' AS e FROM generate_series(1, {guests}) i) g;
         INSERT INTO product_roles (site_id, user_id, role, granted_at)
           SELECT '{site}', id, CASE WHEN random() < 0.05 THEN 3 ELSE 2 END, now()
           FROM users WHERE organization_id = '{org}' AND email LIKE 'member%';
         INSERT INTO site_paid_history (site_id, user_id, first_paid_at)
           SELECT site_id, user_id, now() FROM product_roles WHERE site_id = '{site}' AND role >= 2
           ON CONFLICT DO NOTHING;
         INSERT INTO product_roles (site_id, user_id, role, granted_at)
           SELECT '{site}', id, 1, now() FROM users WHERE organization_id = '{org}' AND email LIKE 'guest%';
         INSERT INTO guest_spaces (site_id, user_id, space_id, assigned_at)
           SELECT '{site}', u.id, s.id, now()
           FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM users
                 WHERE organization_id = '{org}' AND email LIKE 'guest%') u
           JOIN (SELECT id, row_number() OVER (ORDER BY key) - 1 AS n FROM spaces WHERE site_id = '{site}') s
             ON s.n = u.n % {spaces}
           WHERE u.n % 10 <> 0;
         INSERT INTO groups (organization_id, name, name_normalized, created_at)
           SELECT '{org}', 'Group ' || i, 'group ' || i, now() FROM generate_series(1, {groups}) i;
         INSERT INTO group_members (group_id, user_id, added_by, added_at)
           SELECT g.id, u.id, '{admin}', now()
           FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM users WHERE organization_id = '{org}') u
           JOIN (SELECT id, row_number() OVER (ORDER BY name) - 1 AS n FROM groups WHERE organization_id = '{org}') g
             ON g.n = u.n % {groups};
         INSERT INTO invites (site_id, email, email_normalized, role, invited_by, token_nonce, status, created_at, expires_at)
           SELECT '{site}', e, e, 1, '{admin}', uuid_send(gen_random_uuid()), '{pending_status}', now(), now() + interval '7 days'
           FROM (SELECT 'pending' || i || '@partner.example' AS e FROM generate_series(1, {pending}) i) p;
         INSERT INTO audit_events (organization_id, actor_id, action, target_type, target_id, site_id, created_at)
           SELECT '{org}', '{admin}', 'access.change', 'user', i::text, '{site}', now() - (i || ' minutes')::interval
           FROM generate_series(1, {audit}) i;
         INSERT INTO users (organization_id, email, email_normalized, display_name, created_at, verified_at)
           SELECT '{org}', e, e, 'External ' || i, now() - interval '40 days',
                  CASE WHEN i <= {due} THEN NULL ELSE now() - interval '1 day' END
           FROM (SELECT i, 'ext' || i || '@outside.example' AS e FROM generate_series(1, {external}) i) x;
         COMMIT;
         ANALYZE;",
        sites = s.sites.max(1),
        spaces = s.spaces.max(1),
        groups = s.groups.max(1),
        guests = s.guests,
        pending = s.pending_invites,
        pending_status = crate::domain::status::InviteStatus::Pending.as_str(),
        audit = s.audit_events,
        external = s.external,
        due = s.external_due,
    ))?;
    Ok(())
}

/// `count` more organization admins (the invite benchmark runs one client per admin), each with an
/// API token, answered in order.
fn extra_admins(
    conn: &mut PgConnection,
    org: Uuid,
    count: i64,
    now: DateTime<Utc>,
) -> AppResult<Vec<String>> {
    let mut tokens = Vec::new();
    for i in 0..count {
        let id: Uuid = diesel::sql_query(format!(
            "INSERT INTO users (organization_id, email, email_normalized, display_name, created_at)
             VALUES ('{org}', 'admin{i}@bench.example', 'admin{i}@bench.example', 'Admin {i}', now())
             RETURNING id"
        ))
        .get_result::<IdRow>(conn)?
        .id;
        conn.batch_execute(&format!(
            "INSERT INTO org_admins (organization_id, user_id, granted_at) VALUES ('{org}', '{id}', now());"
        ))?;
        tokens.push(org::create_api_token(conn, id, "bench", None, now)?);
    }
    Ok(tokens)
}

/// A session of the first paid user (for `me`), when the dataset has paid users.
fn member_session(
    conn: &mut PgConnection,
    org: Uuid,
    now: DateTime<Utc>,
) -> AppResult<Option<String>> {
    let member: Option<IdRow> = diesel::sql_query(format!(
        "SELECT id FROM users WHERE organization_id = '{org}' AND email = 'member1@bench.example'"
    ))
    .get_result(conn)
    .optional()?;
    member
        .map(|m| org::create_session(conn, m.id, chrono::Duration::days(30), now))
        .transpose()
}

#[derive(QueryableByName)]
struct IdRow {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    id: Uuid,
}
