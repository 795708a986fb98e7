//! `guestpass check-access [--repair]`: recomputes the maintained access state from the grants with
//! the same rules the engine uses, reports every difference and, on request, writes the recomputed
//! state (the engine's own writers, so the counters move with the rows). `migrate` runs the repair,
//! so an upgraded database is correct from its first request.

use crate::db::schema::*;
use crate::domain::access;
use crate::domain::seats::Counts;
use crate::error::AppResult;
use crate::store::changes::state::{self, MemberRow};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use std::collections::HashMap;
use uuid::Uuid;

/// One difference between the maintained state and what the grants say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Difference {
    pub what: String,
    pub stored: String,
    pub expected: String,
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: stored {}, expected {}",
            self.what, self.stored, self.expected
        )
    }
}

fn describe(r: Option<&MemberRow>) -> String {
    match r {
        None => "no access".into(),
        Some(r) => format!(
            "role {} direct {} groups {:?} space {:?} external {} email {}",
            r.role, r.direct, r.via_groups, r.guest_space_id, r.external, r.email_normalized
        ),
    }
}

/// Compares (and with `repair`, rewrites) the whole database, organization by organization. Each
/// site is checked under its lock, so a check never races the engine.
pub fn run(
    conn: &mut PgConnection,
    repair: bool,
    now: DateTime<Utc>,
) -> AppResult<Vec<Difference>> {
    run_for(conn, None, repair, now)
}

/// [`run`] for one organization only (`None`: all of them).
pub fn run_for(
    conn: &mut PgConnection,
    only: Option<Uuid>,
    repair: bool,
    now: DateTime<Utc>,
) -> AppResult<Vec<Difference>> {
    let mut out = Vec::new();
    let orgs: Vec<Uuid> = organizations::table
        .filter(
            organizations::id
                .nullable()
                .eq(only)
                .or(only.is_none().into_sql::<diesel::sql_types::Bool>()),
        )
        .select(organizations::id)
        .order(organizations::id)
        .load(conn)?;
    for org in orgs {
        conn.transaction(|conn| {
            crate::store::changes::lock_org(conn, org, crate::store::changes::Reach::Organization)?;
            check_external(conn, org, repair, &mut out)?;
            let sites: Vec<Uuid> = sites::table
                .filter(sites::organization_id.eq(org))
                .select(sites::id)
                .order(sites::id)
                .load(conn)?;
            for site in sites {
                crate::store::access::lock_site(conn, site)?;
                check_site(conn, site, repair, now, &mut out)?;
            }
            AppResult::Ok(())
        })?;
    }
    Ok(out)
}

fn check_external(
    conn: &mut PgConnection,
    org: Uuid,
    repair: bool,
    out: &mut Vec<Difference>,
) -> AppResult<()> {
    let domains = crate::store::org::verified_domains(conn, org)?;
    let people: Vec<(Uuid, String, bool)> = users::table
        .filter(users::organization_id.eq(org))
        .select((users::id, users::email_domain, users::external))
        .load(conn)?;
    let mut flips: HashMap<String, ()> = HashMap::new();
    for (id, domain, stored) in people {
        let expected = crate::domain::policy::is_external(&domain, &domains);
        if stored != expected {
            out.push(Difference {
                what: format!("users {id} external"),
                stored: stored.to_string(),
                expected: expected.to_string(),
            });
            flips.insert(domain, ());
        }
    }
    if repair {
        for domain in flips.keys() {
            state::domain_changed(conn, org, domain)?;
        }
    }
    Ok(())
}

fn check_site(
    conn: &mut PgConnection,
    site: Uuid,
    repair: bool,
    now: DateTime<Utc>,
    out: &mut Vec<Difference>,
) -> AppResult<()> {
    let people: Vec<Uuid> = diesel::sql_query(PEOPLE_OF_SITE)
        .bind::<diesel::sql_types::Uuid, _>(site)
        .load::<IdRow>(conn)?
        .into_iter()
        .map(|r| r.id)
        .collect();
    let stored: HashMap<(Uuid, Uuid), MemberRow> = site_members::table
        .filter(site_members::site_id.eq(site))
        .select(MemberRow::as_select())
        .load(conn)?
        .into_iter()
        .map(|r| ((r.site_id, r.user_id), r))
        .collect();
    let mut wanted = HashMap::new();
    let mut expected = Counts::default();
    for chunk in people.chunks(20_000) {
        for (s, u, email, f) in state::facts(conn, &[site], chunk)? {
            let row = access::derive(&f).map(|a| MemberRow::new(s, u, email, &a));
            expected = access::add(
                expected,
                access::member_delta(None, row.as_ref().and_then(MemberRow::role)),
            );
            if stored.get(&(s, u)) != row.as_ref() {
                out.push(Difference {
                    what: format!("site_members ({s}, {u})"),
                    stored: describe(stored.get(&(s, u))),
                    expected: describe(row.as_ref()),
                });
            }
            wanted.insert((s, u), row);
        }
    }
    let holdings = state::invite_holdings(conn, None, Some(site))?;
    for (id, _, have, want) in &holdings {
        expected = access::add(expected, access::invite_delta(None, *want));
        if have != want {
            out.push(Difference {
                what: format!("invites {id} holds_role"),
                stored: format!("{have:?}"),
                expected: format!("{want:?}"),
            });
        }
    }
    let counters = state::stored_counts(conn, site)?;
    if counters != expected {
        out.push(Difference {
            what: format!("site_counters {site}"),
            stored: format!("{counters:?}"),
            expected: format!("{expected:?}"),
        });
    }
    if repair {
        // Rows first (the counters follow them by difference), then the counters themselves are set
        // to what the grants say, whatever the rows' deltas left.
        state::write_members(conn, &stored, &wanted, now, false)?;
        state::write_holdings(conn, &holdings, false)?;
        set_counters(conn, site, expected)?;
    }
    Ok(())
}

/// Everyone a site's check looks at: whoever holds a grant there (direct, through a group, or a
/// guest space), or has a stored row there (which may be one too many).
const PEOPLE_OF_SITE: &str = "SELECT user_id AS id FROM product_roles WHERE site_id = $1
         UNION SELECT gm.user_id FROM group_site_roles gsr JOIN group_members gm ON gm.group_id = gsr.group_id
               WHERE gsr.site_id = $1
         UNION SELECT user_id FROM guest_spaces WHERE site_id = $1
         UNION SELECT user_id FROM site_members WHERE site_id = $1";

/// Sets a site's counters to `counts`, whatever the rows' deltas left (the repair's last word).
fn set_counters(conn: &mut PgConnection, site: Uuid, counts: Counts) -> AppResult<()> {
    diesel::insert_into(site_counters::table)
        .values((
            site_counters::site_id.eq(site),
            site_counters::paid.eq(counts.paid),
            site_counters::guests.eq(counts.guests),
            site_counters::pending_paid.eq(counts.pending_paid),
            site_counters::pending_guests.eq(counts.pending_guests),
        ))
        .on_conflict(site_counters::site_id)
        .do_update()
        .set((
            site_counters::paid.eq(counts.paid),
            site_counters::guests.eq(counts.guests),
            site_counters::pending_paid.eq(counts.pending_paid),
            site_counters::pending_guests.eq(counts.pending_guests),
        ))
        .execute(conn)?;
    Ok(())
}

#[derive(QueryableByName)]
struct IdRow {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    id: Uuid,
}
