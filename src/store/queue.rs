//! Enqueueing jobs from inside our own transactions.
//!
//! apalis' Postgres storage reads `apalis.jobs`; inserting the row with diesel in the same transaction
//! as the write that needs the job gives "no invite without its email, no email for a rolled-back
//! invite". This couples us to apalis' table layout, so apalis is pinned to an exact version and a
//! test round-trips a row through the worker.

use crate::background::{BackgroundJob, EmailJob, MaintenanceJob};
use crate::error::AppResult;
use diesel::prelude::*;
use diesel::sql_types::{Bytea, Double, Integer, Nullable, Text};

/// Queue names (apalis `job_type`) for SQL that names a queue; each payload declares its own.
pub const EMAIL_QUEUE: &str = EmailJob::QUEUE;
/// Scheduled maintenance: the re-verification sweep, retention and bulk invite files.
pub const MAINTENANCE_QUEUE: &str = MaintenanceJob::QUEUE;

/// How often apalis may retry a job that failed inside the worker (crashes, lost connections).
/// Delivery retries with backoff are scheduled by the email job itself, as new rows.
pub const MAX_ATTEMPTS: i32 = 10;

/// Inserts a job, on its payload's queue, to run after `delay_secs` (0: now). With an idempotency
/// key, a second insert of the same key is ignored; returns whether a row was inserted.
pub fn enqueue_job<J: BackgroundJob>(
    conn: &mut PgConnection,
    job: &J,
    delay_secs: f64,
    idempotency_key: Option<&str>,
) -> AppResult<bool> {
    let payload = serde_json::to_vec(job).map_err(crate::error::AppError::internal)?;
    // `now()` is the database's clock, which is what apalis compares `run_at` with.
    let inserted = diesel::sql_query(
        "INSERT INTO apalis.jobs (id, job_type, job, status, attempts, max_attempts, run_at, priority, idempotency_key)
         VALUES (apalis.generate_ulid(), $1, $2, 'Pending', 0, $3,
                 CASE WHEN $4 > 0 THEN clock_timestamp() + make_interval(secs => $4) ELSE now() END, 0, $5)
         ON CONFLICT DO NOTHING",
    )
    .bind::<Text, _>(J::QUEUE)
    .bind::<Bytea, _>(payload)
    .bind::<Integer, _>(MAX_ATTEMPTS)
    .bind::<Double, _>(delay_secs)
    .bind::<Nullable<Text>, _>(idempotency_key)
    .execute(conn)?;
    Ok(inserted == 1)
}

/// Inserts one job per payload, due now, in a single statement (the row shape of [`enqueue_job`]): a
/// change that fans out to many jobs (an event for every subscribed webhook endpoint) costs one
/// statement in its transaction, not one per job.
pub fn enqueue_jobs<J: BackgroundJob>(conn: &mut PgConnection, jobs: &[J]) -> AppResult<()> {
    if jobs.is_empty() {
        return Ok(());
    }
    let payloads = jobs
        .iter()
        .map(serde_json::to_vec)
        .collect::<Result<Vec<_>, _>>()
        .map_err(crate::error::AppError::internal)?;
    diesel::sql_query(
        "INSERT INTO apalis.jobs (id, job_type, job, status, attempts, max_attempts, run_at, priority)
         SELECT apalis.generate_ulid(), $1, j, 'Pending', 0, $2, now(), 0
         FROM unnest($3::bytea[]) AS j",
    )
    .bind::<Text, _>(J::QUEUE)
    .bind::<Integer, _>(MAX_ATTEMPTS)
    .bind::<diesel::sql_types::Array<Bytea>, _>(payloads)
    .execute(conn)?;
    Ok(())
}

/// Inserts one email job per delivery in a single statement (the same row shape as [`enqueue_job`],
/// the payload built in SQL as [`EmailJob`] serializes).
pub fn enqueue_emails(conn: &mut PgConnection, delivery_ids: &[uuid::Uuid]) -> AppResult<()> {
    diesel::sql_query(
        "INSERT INTO apalis.jobs (id, job_type, job, status, attempts, max_attempts, run_at, priority)
         SELECT apalis.generate_ulid(), $1, convert_to(json_build_object('delivery_id', d)::text, 'UTF8'),
                'Pending', 0, $2, now(), 0
         FROM unnest($3::uuid[]) AS d",
    )
    .bind::<Text, _>(EmailJob::QUEUE)
    .bind::<Integer, _>(MAX_ATTEMPTS)
    .bind::<diesel::sql_types::Array<diesel::sql_types::Uuid>, _>(delivery_ids)
    .execute(conn)?;
    Ok(())
}

#[derive(QueryableByName)]
struct JobCount {
    #[diesel(sql_type = Text)]
    job_type: String,
    #[diesel(sql_type = Text)]
    status: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// Jobs by queue and status (for `/metrics`).
pub fn job_counts(conn: &mut PgConnection) -> AppResult<Vec<(String, String, i64)>> {
    let rows: Vec<JobCount> =
        diesel::sql_query("SELECT job_type, status, count(*) AS n FROM apalis.jobs GROUP BY 1, 2")
            .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|r| (r.job_type, r.status, r.n))
        .collect())
}

/// An email job locked this long is stuck, not slow: one attempt takes at most the SMTP timeout plus
/// the two minutes [`crate::jobs`] spends recording a send through a database outage.
pub const STUCK_AFTER_SECS: i64 = 600;

/// Runs again email jobs that a worker locked and never finished, whatever the worker's heartbeat says
/// (an ack lost in a database outage leaves a job locked by a worker that is still alive). Sending is
/// idempotent (the delivery's status and lease decide), so a job that was merely slow costs nothing.
pub fn rescue_stuck_emails(conn: &mut PgConnection, stuck_after_secs: i64) -> AppResult<usize> {
    let n = diesel::sql_query(
        "UPDATE apalis.jobs SET status = 'Pending', lock_by = NULL, lock_at = NULL, done_at = NULL,
                last_result = '{\"Err\": \"Re-enqueued by guestpass: locked too long.\"}'
         WHERE job_type = $1 AND status IN ('Queued', 'Running')
           AND lock_at < now() - make_interval(secs => $2)",
    )
    .bind::<Text, _>(EmailJob::QUEUE)
    .bind::<Double, _>(stuck_after_secs as f64)
    .execute(conn)?;
    Ok(n)
}
