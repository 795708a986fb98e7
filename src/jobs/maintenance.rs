//! Scheduled maintenance: cron ticks (in every replica) enqueue a task keyed by the tick's time, so
//! the deployment runs each once; a worker runs it. The re-verification sweep emails, in batches,
//! everyone whose period ends within the lead time and who was not reminded for it yet; retention
//! deletes what is past its keeping period. The sweep also re-queues email jobs stuck in a worker.
//! The bulk resume tick (every second, by the service clock) sets running again the bulk invite
//! files paused at their uploader's daily cap whose moment has come, each with a new job.

use crate::background::{MaintenanceJob, Task};
use crate::domain::status::SweepTrigger;
use crate::state::AppState;
use crate::store::{bulk, external, queue, retention};
use apalis::prelude::*;
use apalis_cron::Tick;
use std::sync::Arc;

pub struct MaintenanceContext {
    pub state: AppState,
}

fn boxed(e: crate::error::AppError) -> BoxDynError {
    e.to_string().into()
}

async fn enqueue(ctx: &MaintenanceContext, task: Task, key: String) -> Result<(), BoxDynError> {
    let inserted = ctx
        .state
        .db
        .run(move |c| {
            queue::enqueue_job(
                c,
                &MaintenanceJob {
                    task,
                    trigger: SweepTrigger::Schedule.as_str().into(),
                },
                0.0,
                Some(&key),
            )
        })
        .await
        .map_err(boxed)?;
    tracing::debug!(?task, inserted, "scheduler tick");
    Ok(())
}

pub async fn sweep_tick(tick: Tick, ctx: Data<Arc<MaintenanceContext>>) -> Result<(), BoxDynError> {
    enqueue(&ctx, Task::Sweep, format!("sweep:{}", tick.get_timestamp())).await
}

pub async fn retention_tick(
    tick: Tick,
    ctx: Data<Arc<MaintenanceContext>>,
) -> Result<(), BoxDynError> {
    enqueue(
        &ctx,
        Task::Retention,
        format!("retention:{}", tick.get_timestamp()),
    )
    .await
}

pub async fn bulk_resume_tick(
    _tick: Tick,
    ctx: Data<Arc<MaintenanceContext>>,
) -> Result<(), BoxDynError> {
    let now = ctx.state.clock.now();
    let resumed = ctx
        .state
        .db
        .run(move |c| bulk::resume_due(c, now))
        .await
        .map_err(boxed)?;
    for id in resumed {
        tracing::info!(bulk = %id, "bulk invite resumed");
    }
    Ok(())
}

pub async fn run(
    job: MaintenanceJob,
    ctx: Data<Arc<MaintenanceContext>>,
) -> Result<(), BoxDynError> {
    let st = &ctx.state;
    let started = std::time::Instant::now();
    match job.task {
        Task::Sweep => sweep(st, &job.trigger, started).await,
        Task::BulkInvite(id) => bulk_invite(st, id, started).await,
        Task::Retention => delete_expired(st, started).await,
    }
}

/// Re-verification reminders, then guest lifetimes, then the rescue of stuck email jobs.
async fn sweep(
    st: &AppState,
    trigger: &str,
    started: std::time::Instant,
) -> Result<(), BoxDynError> {
    let now = st.clock.now();
    let lead = st.config.reverify_lead_minutes;
    let domain = st.delivery.message_id_domain.clone();
    // A payload's trigger names a sweep trigger when it is one (`UPLOAD` and `RESUME` are a bulk
    // file's); anything else is the schedule's.
    let trigger = SweepTrigger::parse(trigger).unwrap_or(SweepTrigger::Schedule);
    let emailed = st
        .db
        .run(move |c| external::sweep(c, trigger, lead, &domain, now))
        .await
        .map_err(boxed)?;
    tracing::info!(
        emailed,
        trigger = trigger.as_str(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "re-verification sweep done"
    );
    // Guest lifetimes ride on the same tick: reminders before the end, and the end itself.
    let policy = st.delivery.clone();
    let (reminded, ended) = st
        .db
        .run(move |c| crate::store::lifetimes::run(c, &policy, now))
        .await
        .map_err(boxed)?;
    tracing::info!(reminded, ended, "guest lifetimes done");
    // Invites past their expiry go into the audit trail (and out as `invite.expired` webhooks),
    // once per expiry; then webhook deliveries whose job was lost are queued again.
    let (expired, rescued_webhooks) = st
        .db
        .run(move |c| {
            let mut expired = 0;
            loop {
                let n = crate::store::webhooks::record_expired_invites(c, now)?;
                expired += n;
                if n < 500 {
                    break;
                }
            }
            Ok((expired, crate::store::webhooks::rescue(c, now)?))
        })
        .await
        .map_err(boxed)?;
    tracing::info!(
        expired,
        rescued_webhooks,
        "invite expiries and webhook rescue done"
    );
    // The backstop for "no email is lost": jobs locked far longer than a send can take.
    let rescued = st
        .db
        .run(|c| queue::rescue_stuck_emails(c, queue::STUCK_AFTER_SECS))
        .await
        .map_err(boxed)?;
    if rescued > 0 {
        tracing::warn!(rescued, "email jobs stuck in a worker were queued again");
    }
    Ok(())
}

/// Invites a file's waiting rows, one transaction each, until it is done or paused at the cap.
async fn bulk_invite(
    st: &AppState,
    id: uuid::Uuid,
    started: std::time::Instant,
) -> Result<(), BoxDynError> {
    let (mut invited, mut refused) = (0u32, 0u32);
    let mut paused = None;
    loop {
        let policy = st.delivery.clone();
        let now = st.clock.now();
        match st
            .db
            .run(move |c| bulk::step(c, id, &policy, now))
            .await
            .map_err(boxed)?
        {
            bulk::Step::Row { invited: true, .. } => invited += 1,
            bulk::Step::Row { .. } => refused += 1,
            bulk::Step::Done => break,
            bulk::Step::Paused { until } => {
                paused = Some(until);
                break;
            }
        }
    }
    tracing::info!(
        bulk = %id,
        invited,
        refused,
        resumes_at = paused.map(|t| t.to_rfc3339()),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "{}",
        if paused.is_some() {
            "bulk invite paused at the daily invite cap"
        } else {
            "bulk invite done"
        }
    );
    Ok(())
}

/// Deletes what is past its keeping period.
async fn delete_expired(st: &AppState, started: std::time::Instant) -> Result<(), BoxDynError> {
    let now = st.clock.now();
    let keep = chrono::Duration::days(st.config.retention_days);
    let audit_keep = chrono::Duration::days(st.config.audit_retention_days);
    let report = st
        .db
        .run(move |c| retention::run(c, keep, audit_keep, now))
        .await
        .map_err(boxed)?;
    // Finished webhook deliveries (and their attempts) are kept as long as finished jobs.
    let webhook_deliveries = st
        .db
        .run(move |c| crate::store::webhooks::purge(c, now - keep))
        .await
        .map_err(boxed)?;
    tracing::info!(
        ?report,
        webhook_deliveries,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "retention done"
    );
    Ok(())
}
