//! Retention: what is kept and for how long. Finished queue jobs, closed invites, challenges, links,
//! reviews and ended sessions go after `keep`; audit events after `audit_keep`. Deletes run in small
//! batches so they never hold long locks on busy tables.

use crate::domain::status::InviteStatus;
use crate::error::AppResult;
use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Text, Timestamptz};

const BATCH: i64 = 5000;

/// How many rows each kind lost.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    pub jobs: usize,
    pub workers: usize,
    pub invites: usize,
    pub challenges: usize,
    pub sessions: usize,
    pub links: usize,
    pub reviews: usize,
    pub sweeps: usize,
    pub bulk_invites: usize,
    pub audit_events: usize,
    /// Rate-limit keys whose budget is whole again.
    pub rate_limits: usize,
}

/// Deletes, batch by batch, the rows `select_ids` names (a `SELECT <key> ... LIMIT n` with `$1` the
/// cutoff, then its `texts`), until none are left.
fn purge(conn: &mut PgConnection, kind: &Purge, cutoff: DateTime<Utc>) -> AppResult<usize> {
    let Purge {
        table,
        key,
        select_ids,
        texts,
    } = kind;
    let mut total = 0;
    loop {
        let mut query = diesel::sql_query(format!(
            "DELETE FROM {table} WHERE {key} IN ({select_ids} LIMIT {BATCH})"
        ))
        .into_boxed::<diesel::pg::Pg>()
        .bind::<Timestamptz, _>(cutoff);
        for text in *texts {
            query = query.bind::<Text, _>(*text);
        }
        let n = query.execute(conn)?;
        total += n;
        if (n as i64) < BATCH {
            return Ok(total);
        }
    }
}

/// One kind of row that goes: its table, its key, and the `SELECT <key>` naming the rows past `$1`.
struct Purge {
    table: &'static str,
    key: &'static str,
    select_ids: &'static str,
    /// Bound as `$2`, `$3`, ...: the stored status values `select_ids` compares with.
    texts: &'static [&'static str],
}

/// Finished queue jobs (killed, done, or failed for good).
const JOBS: Purge = Purge {
    table: "apalis.jobs",
    key: "id",
    select_ids: "SELECT id FROM apalis.jobs WHERE done_at < $1
               AND (status IN ('Done', 'Killed') OR (status = 'Failed' AND attempts >= max_attempts))",
    texts: &[],
};
/// Workers gone quiet that hold no job.
const WORKERS: Purge = Purge {
    table: "apalis.workers",
    key: "id",
    select_ids: "SELECT w.id FROM apalis.workers w WHERE w.last_seen < $1
               AND NOT EXISTS (SELECT 1 FROM apalis.jobs j WHERE j.lock_by = w.id)",
    texts: &[],
};
/// Accepted invites are history (who invited whom); closed ones go, with their deliveries.
const INVITES: Purge = Purge {
    table: "invites",
    key: "id",
    select_ids: "SELECT id FROM invites WHERE status <> $2 AND expires_at < $1
               AND (status <> $3 OR revoked_at < $1)",
    texts: &[
        InviteStatus::Accepted.as_str(),
        InviteStatus::Revoked.as_str(),
    ],
};
const CHALLENGES: Purge = Purge {
    table: "login_challenges",
    key: "id",
    select_ids: "SELECT id FROM login_challenges WHERE expires_at < $1",
    texts: &[],
};
const SESSIONS: Purge = Purge {
    table: "sessions",
    key: "id",
    select_ids: "SELECT id FROM sessions WHERE expires_at < $1 OR revoked_at < $1",
    texts: &[],
};
const PASSWORD_RESETS: Purge = Purge {
    table: "password_resets",
    key: "id",
    select_ids: "SELECT id FROM password_resets WHERE expires_at < $1",
    texts: &[],
};
const REVERIFICATION_LINKS: Purge = Purge {
    table: "reverification_links",
    key: "id",
    select_ids: "SELECT id FROM reverification_links WHERE expires_at < $1",
    texts: &[],
};
const REVIEWS: Purge = Purge {
    table: "policy_reviews",
    key: "id",
    select_ids: "SELECT id FROM policy_reviews WHERE expires_at < $1",
    texts: &[],
};
const SWEEPS: Purge = Purge {
    table: "reverification_sweeps",
    key: "id",
    select_ids: "SELECT id FROM reverification_sweeps WHERE started_at < $1",
    texts: &[],
};
/// A finished file's rows (its invites stay, as invites).
const BULK_INVITES: Purge = Purge {
    table: "bulk_invites",
    key: "id",
    select_ids: "SELECT id FROM bulk_invites WHERE finished_at < $1",
    texts: &[],
};
/// Audit events, after their own (longer) time.
const AUDIT_EVENTS: Purge = Purge {
    table: "audit_events",
    key: "id",
    select_ids: "SELECT id FROM audit_events WHERE created_at < $1",
    texts: &[],
};
/// Rate-limit keys whose budget is whole again (their theoretical arrival time has passed).
const RATE_LIMITS: Purge = Purge {
    table: "rate_limits",
    key: "key",
    select_ids: "SELECT key FROM rate_limits WHERE tat < $1",
    texts: &[],
};

/// Deletes what has been kept long enough, kind by kind, and reports how many rows each lost.
pub fn run(
    conn: &mut PgConnection,
    keep: Duration,
    audit_keep: Duration,
    now: DateTime<Utc>,
) -> AppResult<Report> {
    let cutoff = now - keep;
    // Open invites past their expiry are closed by the engine (freeing their seats) before any goes.
    crate::store::changes::state::close_all_expired(conn, now)?;
    Ok(Report {
        jobs: purge(conn, &JOBS, cutoff)?,
        workers: purge(conn, &WORKERS, cutoff)?,
        invites: purge(conn, &INVITES, cutoff)?,
        challenges: purge(conn, &CHALLENGES, cutoff)?,
        sessions: purge(conn, &SESSIONS, cutoff)?,
        links: purge(conn, &PASSWORD_RESETS, cutoff)? + purge(conn, &REVERIFICATION_LINKS, cutoff)?,
        reviews: purge(conn, &REVIEWS, cutoff)?,
        sweeps: purge(conn, &SWEEPS, cutoff)?,
        bulk_invites: purge(conn, &BULK_INVITES, cutoff)?,
        audit_events: purge(conn, &AUDIT_EVENTS, now - audit_keep)?,
        rate_limits: purge(conn, &RATE_LIMITS, now)?,
    })
}
