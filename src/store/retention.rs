//! Retention: what is kept and for how long. Finished queue jobs, closed invites, challenges, links,
//! reviews and ended sessions go after `keep`; audit events after `audit_keep`. Deletes run in small
//! batches so they never hold long locks on busy tables.

use crate::error::AppResult;
use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use diesel::sql_types::Timestamptz;

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
/// cutoff), until none are left.
fn purge(
    conn: &mut PgConnection,
    table: &str,
    key: &str,
    select_ids: &str,
    cutoff: DateTime<Utc>,
) -> AppResult<usize> {
    let mut total = 0;
    loop {
        let n = diesel::sql_query(format!(
            "DELETE FROM {table} WHERE {key} IN ({select_ids} LIMIT {BATCH})"
        ))
        .bind::<Timestamptz, _>(cutoff)
        .execute(conn)?;
        total += n;
        if (n as i64) < BATCH {
            return Ok(total);
        }
    }
}

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
        jobs: purge(
            conn,
            "apalis.jobs",
            "id",
            "SELECT id FROM apalis.jobs WHERE done_at < $1
               AND (status IN ('Done', 'Killed') OR (status = 'Failed' AND attempts >= max_attempts))",
            cutoff,
        )?,
        workers: purge(
            conn,
            "apalis.workers",
            "id",
            "SELECT w.id FROM apalis.workers w WHERE w.last_seen < $1
               AND NOT EXISTS (SELECT 1 FROM apalis.jobs j WHERE j.lock_by = w.id)",
            cutoff,
        )?,
        // Accepted invites are history (who invited whom); closed ones go, with their deliveries.
        invites: purge(
            conn,
            "invites",
            "id",
            "SELECT id FROM invites WHERE status <> 'ACCEPTED' AND expires_at < $1
               AND (status <> 'REVOKED' OR revoked_at < $1)",
            cutoff,
        )?,
        challenges: purge(
            conn,
            "login_challenges",
            "id",
            "SELECT id FROM login_challenges WHERE expires_at < $1",
            cutoff,
        )?,
        sessions: purge(
            conn,
            "sessions",
            "id",
            "SELECT id FROM sessions WHERE expires_at < $1 OR revoked_at < $1",
            cutoff,
        )?,
        links: purge(
            conn,
            "password_resets",
            "id",
            "SELECT id FROM password_resets WHERE expires_at < $1",
            cutoff,
        )? + purge(
            conn,
            "reverification_links",
            "id",
            "SELECT id FROM reverification_links WHERE expires_at < $1",
            cutoff,
        )?,
        reviews: purge(
            conn,
            "policy_reviews",
            "id",
            "SELECT id FROM policy_reviews WHERE expires_at < $1",
            cutoff,
        )?,
        sweeps: purge(
            conn,
            "reverification_sweeps",
            "id",
            "SELECT id FROM reverification_sweeps WHERE started_at < $1",
            cutoff,
        )?,
        // A finished file's rows (its invites stay, as invites).
        bulk_invites: purge(
            conn,
            "bulk_invites",
            "id",
            "SELECT id FROM bulk_invites WHERE finished_at < $1",
            cutoff,
        )?,
        audit_events: purge(
            conn,
            "audit_events",
            "id",
            "SELECT id FROM audit_events WHERE created_at < $1",
            now - audit_keep,
        )?,
        rate_limits: purge(
            conn,
            "rate_limits",
            "key",
            "SELECT key FROM rate_limits WHERE tat < $1",
            now,
        )?,
    })
}
