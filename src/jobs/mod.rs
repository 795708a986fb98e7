//! Background jobs on apalis (Postgres-backed): the workers that run the payloads of
//! [`crate::background`] (ids only; the rows they name say what to do, so a job that runs twice does
//! no harm), and the schedulers that enqueue maintenance.

mod compose;
mod email;
mod maintenance;
pub mod webhooks;

use crate::background::{BackgroundJob, EmailJob, MaintenanceJob, WebhookJob};
use crate::email::Mailer;
use crate::state::AppState;
use apalis::prelude::*;
use apalis_postgres::{Config as QueueConfig, PostgresStorage};
use sqlx::postgres::{PgPool, PgPoolOptions};
use std::sync::Arc;
use std::time::Duration;

/// The schedule's next firing after `now` (`None` when the expression does not parse).
pub fn next_sweep(
    schedule: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<chrono::DateTime<chrono::Utc>> {
    use std::str::FromStr;
    cron::Schedule::from_str(schedule).ok()?.after(&now).next()
}

fn schedule(expr: &str, setting: &str) -> std::io::Result<cron::Schedule> {
    use std::str::FromStr;
    cron::Schedule::from_str(expr).map_err(|e| {
        std::io::Error::other(format!(
            "{setting} is not a cron expression with seconds (e.g. \"0 */15 * * * *\"): {e}"
        ))
    })
}

/// When paused bulk invite files are looked at (every second: one indexed query finding none, most
/// of the time); a file resumes within a second of its moment on the service clock.
const BULK_RESUME_SCHEDULE: &str = "* * * * * *";

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

/// The cron schedules, read from the configuration before any worker starts.
struct Schedules {
    sweep: cron::Schedule,
    retention: cron::Schedule,
    bulk_resume: cron::Schedule,
}

impl Schedules {
    fn read(config: &crate::config::Config) -> std::io::Result<Self> {
        Ok(Self {
            sweep: schedule(&config.reverify_schedule, "GUESTPASS_REVERIFY_SCHEDULE")?,
            retention: schedule(&config.retention_schedule, "GUESTPASS_RETENTION_SCHEDULE")?,
            bulk_resume: schedule(BULK_RESUME_SCHEDULE, "the bulk resume schedule")?,
        })
    }
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
    let schedules = Schedules::read(&state.config)?;
    let maintenance = Arc::new(maintenance::MaintenanceContext {
        state: state.clone(),
    });
    let webhook = Arc::new(webhooks::WebhookContext::new(state.clone()));
    let email = Arc::new(email::EmailContext {
        state,
        mailer,
        from,
        retry_base: opts.retry_base,
    });
    let instance = uuid::Uuid::new_v4().simple().to_string();
    let monitor = queue_workers(
        Monitor::new(),
        &instance,
        &pool,
        &opts,
        email,
        maintenance.clone(),
    );
    let monitor = webhook_worker(monitor, &instance, &pool, &opts, webhook);
    schedulers(monitor, &instance, schedules, maintenance)
        .should_restart(|ctx, err| {
            tracing::warn!(worker = %ctx.name(), error = %err, "worker stopped; restarting");
            true
        })
        .shutdown_timeout(Duration::from_secs(30))
        .run_with_signal(shutdown)
        .await
        .map_err(std::io::Error::other)
}

/// The queue's settings for the workers of `J`'s queue.
fn queue_config<J: BackgroundJob>(opts: &WorkerOptions) -> QueueConfig {
    QueueConfig::default()
        .queue(J::QUEUE)
        .heartbeat_interval(opts.heartbeat)
        .missed_heartbeats(3)
}

/// The workers of the two queues: emails and maintenance tasks.
fn queue_workers(
    monitor: Monitor,
    instance: &str,
    pool: &PgPool,
    opts: &WorkerOptions,
    email: Arc<email::EmailContext>,
    maintenance: Arc<maintenance::MaintenanceContext>,
) -> Monitor {
    let (e_pool, e_instance, e_opts) = (pool.clone(), instance.to_string(), opts.clone());
    let (m_pool, m_instance, m_opts) = (pool.clone(), instance.to_string(), opts.clone());
    monitor
        // A restarted worker takes a new name (`-run-N`): jobs the old run had locked and never acked
        // (its acks fail while the database is away) then belong to a worker whose heartbeat stops,
        // and apalis runs them again after three missed heartbeats. Under the old name they would
        // stay locked by a worker that looks alive, and their emails would never go out.
        .register(move |restarts| {
            let backend = PostgresStorage::<EmailJob>::new(&e_pool)
                .with_config(queue_config::<EmailJob>(&e_opts))
                .with_pubsub()
                .poll_with_interval(e_opts.poll);
            WorkerBuilder::new(format!("guestpass-email-{e_instance}-run-{restarts}"))
                .backend(backend)
                .concurrency(e_opts.email_concurrency.max(1))
                .data(email.clone())
                .build(email::deliver)
        })
        .register(move |restarts| {
            let backend = PostgresStorage::<MaintenanceJob>::new(&m_pool)
                .with_config(queue_config::<MaintenanceJob>(&m_opts))
                .with_pubsub()
                .poll_with_interval(m_opts.poll);
            WorkerBuilder::new(format!("guestpass-maintenance-{m_instance}-run-{restarts}"))
                .backend(backend)
                .concurrency(1)
                .data(maintenance.clone())
                .build(maintenance::run)
        })
}

/// How often each process looks for webhook deliveries due (one indexed query when none is).
const WEBHOOK_POLL: Duration = Duration::from_millis(250);

/// The webhook deliveries' workers (`GUESTPASS_WEBHOOK_CONCURRENCY` at once), named per run as the
/// email workers are, so jobs a dead run had claimed are run again after its missed heartbeats.
fn webhook_worker(
    monitor: Monitor,
    instance: &str,
    pool: &PgPool,
    opts: &WorkerOptions,
    webhook: Arc<webhooks::WebhookContext>,
) -> Monitor {
    let (pool, instance, opts) = (pool.clone(), instance.to_string(), opts.clone());
    let concurrency = webhook.state.config.webhook_concurrency.max(1);
    // Notifications wake the workers at once, but one that arrives while a fetch is under way can
    // be folded into it and missed: the poll bounds that wait (and a retry's lateness), so it is
    // shorter here than for emails, whose senders wait seconds anyway (BENCHMARKS.md, session 9).
    let poll = opts.poll.min(WEBHOOK_POLL);
    monitor.register(move |restarts| {
        let backend = PostgresStorage::<WebhookJob>::new(&pool)
            .with_config(queue_config::<WebhookJob>(&opts))
            .with_pubsub()
            .poll_with_interval(poll);
        WorkerBuilder::new(format!("guestpass-webhook-{instance}-run-{restarts}"))
            .backend(backend)
            .concurrency(concurrency)
            .data(webhook.clone())
            .build(webhooks::deliver)
    })
}

/// The cron schedulers, which enqueue maintenance tasks or resume paused bulk invite files.
fn schedulers(
    monitor: Monitor,
    instance: &str,
    schedules: Schedules,
    maintenance: Arc<maintenance::MaintenanceContext>,
) -> Monitor {
    let Schedules {
        sweep,
        retention,
        bulk_resume,
    } = schedules;
    let (s_instance, r_instance, b_instance) = (
        instance.to_string(),
        instance.to_string(),
        instance.to_string(),
    );
    let (m_sweep, m_retention, m_bulk) = (maintenance.clone(), maintenance.clone(), maintenance);
    monitor
        .register(move |_restarts| {
            // Every replica ticks; each tick only enqueues a task keyed by its time, so it runs once.
            WorkerBuilder::new(format!("guestpass-sweep-scheduler-{s_instance}"))
                .backend(apalis_cron::CronScheduler::new(sweep.clone()))
                .data(m_sweep.clone())
                .build(maintenance::sweep_tick)
        })
        .register(move |_restarts| {
            WorkerBuilder::new(format!("guestpass-retention-scheduler-{r_instance}"))
                .backend(apalis_cron::CronScheduler::new(retention.clone()))
                .data(m_retention.clone())
                .build(maintenance::retention_tick)
        })
        .register(move |_restarts| {
            // Every replica ticks; the resume's update gives each paused file to one of them.
            WorkerBuilder::new(format!("guestpass-bulk-resume-scheduler-{b_instance}"))
                .backend(apalis_cron::CronScheduler::new(bulk_resume.clone()))
                .data(m_bulk.clone())
                .build(maintenance::bulk_resume_tick)
        })
}
