//! The re-verification scheduler: a cron tick (in every replica) enqueues a sweep keyed by the tick's
//! time, so the deployment runs it once; the sweep job emails, in batches, everyone whose period ends
//! within the lead time and who was not reminded for it yet.

use super::SweepJob;
use crate::state::AppState;
use crate::store::external;
use apalis::prelude::*;
use apalis_cron::Tick;
use std::sync::Arc;

pub struct SweepContext {
    pub state: AppState,
}

pub async fn tick(tick: Tick, ctx: Data<Arc<SweepContext>>) -> Result<(), BoxDynError> {
    let key = format!("tick:{}", tick.get_timestamp());
    let inserted = ctx
        .state
        .db
        .run(move |c| external::enqueue_sweep(c, "SCHEDULE", Some(&key)))
        .await
        .map_err(|e| -> BoxDynError { e.to_string().into() })?;
    tracing::debug!(inserted, "scheduler tick");
    Ok(())
}

pub async fn run(job: SweepJob, ctx: Data<Arc<SweepContext>>) -> Result<(), BoxDynError> {
    let st = &ctx.state;
    let now = st.clock.now();
    let lead = st.config.reverify_lead_minutes;
    let domain = st.delivery.message_id_domain.clone();
    let trigger = if job.trigger == "MANUAL" {
        "MANUAL"
    } else {
        "SCHEDULE"
    };
    let started = std::time::Instant::now();
    let emailed = st
        .db
        .run(move |c| external::sweep(c, trigger, lead, &domain, now))
        .await
        .map_err(|e| -> BoxDynError { e.to_string().into() })?;
    tracing::info!(
        emailed,
        trigger,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "re-verification sweep done"
    );
    Ok(())
}
