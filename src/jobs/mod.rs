//! Background jobs on apalis (Postgres-backed): job payloads carry ids only; the rows they name say
//! what to do, so a job that runs twice does no harm.

mod email;
mod sweep;

use crate::email::Mailer;
use crate::state::AppState;
use apalis::prelude::*;
use apalis_postgres::{Config as QueueConfig, PostgresStorage};
use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgPool, PgPoolOptions};
use std::sync::Arc;
use std::time::Duration;

/// Send (or re-try) one email delivery.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EmailJob {
    pub delivery_id: uuid::Uuid,
}

/// Run a re-verification sweep (`SCHEDULE` or `MANUAL`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SweepJob {
    pub trigger: String,
}

/// The schedule's next firing after `now` (`None` when the expression does not parse).
pub fn next_sweep(
    schedule: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<chrono::DateTime<chrono::Utc>> {
    use std::str::FromStr;
    cron::Schedule::from_str(schedule).ok()?.after(&now).next()
}

fn state_schedule(state: &AppState) -> std::io::Result<cron::Schedule> {
    use std::str::FromStr;
    cron::Schedule::from_str(&state.config.reverify_schedule).map_err(|e| {
        std::io::Error::other(format!(
            "GUESTPASS_REVERIFY_SCHEDULE is not a cron expression with seconds (e.g. \"0 */15 * * * *\"): {e}"
        ))
    })
}

/// Worker settings.
#[derive(Clone, Debug)]
pub struct WorkerOptions {
    pub email_concurrency: usize,
    /// How often workers report they are alive; a worker silent for 3 intervals has its jobs re-run.
    pub heartbeat: Duration,
    /// Safety-net poll (delayed retries become due without a notification).
    pub poll: Duration,
    pub retry_base: Duration,
}

/// The queue's own connection pool (sqlx, inside apalis), and its tables.
pub async fn queue_pool(database_url: &str, size: u32) -> Result<PgPool, String> {
    let pool = PgPoolOptions::new()
        .max_connections(size)
        .acquire_timeout(Duration::from_secs(10))
        .connect(database_url)
        .await
        .map_err(|e| format!("cannot connect the job queue to PostgreSQL: {e}"))?;
    Ok(pool)
}

/// Creates the queue's tables (idempotent; `migrate` runs it).
pub async fn setup_queue(pool: &PgPool) -> Result<(), String> {
    PostgresStorage::setup(pool)
        .await
        .map_err(|e| format!("cannot set up the job queue tables: {e}"))
}

/// Runs the workers until `shutdown` resolves, then lets in-flight jobs finish (up to 30 s).
pub async fn run_workers<S>(
    state: AppState,
    pool: PgPool,
    mailer: Arc<Mailer>,
    opts: WorkerOptions,
    shutdown: S,
) -> std::io::Result<()>
where
    S: std::future::Future<Output = std::io::Result<()>> + Send + 'static,
{
    let from = state.config.email_from.parse().map_err(|e| {
        std::io::Error::other(format!("GUESTPASS_EMAIL_FROM is not a valid mailbox: {e}"))
    })?;
    let ctx = Arc::new(email::EmailContext {
        state,
        mailer,
        from,
        retry_base: opts.retry_base,
    });
    let schedule: cron::Schedule = state_schedule(&ctx.state)?;
    let sweeper = Arc::new(sweep::SweepContext {
        state: ctx.state.clone(),
    });
    let instance = uuid::Uuid::new_v4().simple().to_string();
    let (sweep_pool, sweep_instance, tick_instance) =
        (pool.clone(), instance.clone(), instance.clone());
    let (sweeper_a, sweeper_b) = (sweeper.clone(), sweeper);
    Monitor::new()
        .register(move |_restarts| {
            let backend = PostgresStorage::<EmailJob>::new(&pool)
                .with_config(
                    QueueConfig::default()
                        .queue(crate::store::queue::EMAIL_QUEUE)
                        .heartbeat_interval(opts.heartbeat)
                        .missed_heartbeats(3),
                )
                .with_pubsub()
                .poll_with_interval(opts.poll);
            WorkerBuilder::new(format!("guestpass-email-{instance}"))
                .backend(backend)
                .concurrency(opts.email_concurrency.max(1))
                .data(ctx.clone())
                .build(email::deliver)
        })
        .register(move |_restarts| {
            let backend = PostgresStorage::<SweepJob>::new(&sweep_pool)
                .with_config(
                    QueueConfig::default()
                        .queue(crate::store::queue::SWEEP_QUEUE)
                        .heartbeat_interval(opts.heartbeat)
                        .missed_heartbeats(3),
                )
                .with_pubsub()
                .poll_with_interval(opts.poll);
            WorkerBuilder::new(format!("guestpass-sweep-{sweep_instance}"))
                .backend(backend)
                .concurrency(1)
                .data(sweeper_a.clone())
                .build(sweep::run)
        })
        .register(move |_restarts| {
            // Every replica ticks; each tick only enqueues a sweep keyed by its time, so it runs once.
            WorkerBuilder::new(format!("guestpass-scheduler-{tick_instance}"))
                .backend(apalis_cron::CronScheduler::new(schedule.clone()))
                .data(sweeper_b.clone())
                .build(sweep::tick)
        })
        .should_restart(|ctx, err| {
            tracing::warn!(worker = %ctx.name(), error = %err, "worker stopped; restarting");
            true
        })
        .shutdown_timeout(Duration::from_secs(30))
        .run_with_signal(shutdown)
        .await
        .map_err(std::io::Error::other)
}
