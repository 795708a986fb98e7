//! The webhook job: claim the delivery (the row decides whether an attempt is due, and leases it),
//! sign it with the Standard Webhooks headers, POST it through the outbound client, record the
//! attempt and what follows ([`crate::domain::webhooks::after_attempt`]: delivered, another attempt
//! later as a delayed job, or failed for good).
//!
//! At least once: a worker killed mid-delivery leaves its job claimed by a worker whose heartbeat
//! stops, so apalis runs it again on a live worker, which waits out the dead one's lease and sends
//! the same body with the same `webhook-id`. Per-endpoint ordering is not promised: retries and
//! concurrent workers deliver out of order, and receivers order by the payload's `occurredAt`.

use crate::background::WebhookJob;
use crate::domain::webhooks::{self as rules, Outcome, RetrySchedule};
use crate::error::AppResult;
use crate::state::AppState;
use crate::store::webhooks::{self, AttemptResult, Claim, ToSend};
use apalis::prelude::*;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct WebhookContext {
    pub state: AppState,
    pub schedule: RetrySchedule,
    /// How long a worker holds a delivery it is sending: the longest an attempt can take, and a
    /// margin to record it.
    pub lease: chrono::Duration,
    /// When the deployment-wide gauges were last read (at most once a second per process).
    gauges_read: Mutex<Option<Instant>>,
}

impl WebhookContext {
    pub fn new(state: AppState) -> Self {
        let c = &state.config;
        let schedule = RetrySchedule {
            first: Duration::from_millis(c.webhook_retry_first_ms.max(1)),
            give_up_after: Duration::from_secs(c.webhook_retry_for_secs),
            ..RetrySchedule::default()
        };
        let timeout = state.outbound.policy().response_timeout;
        let lease = chrono::Duration::from_std(timeout + Duration::from_secs(5))
            .unwrap_or(chrono::Duration::minutes(1));
        Self {
            state,
            schedule,
            lease,
            gauges_read: Mutex::new(None),
        }
    }
}

pub async fn deliver(job: WebhookJob, ctx: Data<Arc<WebhookContext>>) -> Result<(), BoxDynError> {
    let span = tracing::info_span!("webhook", delivery = %job.delivery_id);
    let _e = span.enter();
    ctx.process(job)
        .await
        .map_err(|e| -> BoxDynError { e.to_string().into() })
}

/// How long the outcome of an attempt is retried while the database is unreachable (the receiver
/// has the event already: losing the record would send it again).
const RECORD_FOR: Duration = Duration::from_secs(120);

impl WebhookContext {
    async fn process(&self, job: WebhookJob) -> AppResult<()> {
        let st = &self.state;
        let (id, lease, now) = (job.delivery_id, self.lease, st.clock.now());
        let keys = st.secrets.clone();
        let send = match st
            .db
            .run(move |c| webhooks::claim(c, &keys, id, lease, now))
            .await?
        {
            Claim::Skip(why) => {
                tracing::debug!(why, "nothing to deliver");
                return Ok(());
            }
            Claim::Send(send) => send,
        };
        let attempt = self.send(&send).await;
        let now = st.clock.now();
        let outcome = rules::after_attempt(
            &self.schedule,
            attempt.succeeded(),
            id,
            send.number,
            now,
            send.first_at,
        );
        self.count(&attempt, outcome);
        let result = AttemptResult {
            response_status: attempt.status,
            duration_ms: attempt.duration.as_millis().min(i32::MAX as u128) as i32,
            body_prefix: attempt.body_prefix,
            error: attempt.error,
        };
        let number = send.number;
        self.record(move |c| webhooks::record_attempt(c, id, number, &result, outcome, now))
            .await?;
        self.read_gauges().await;
        Ok(())
    }

    /// Signs and POSTs one attempt: the same body and `webhook-id` every time, a fresh timestamp,
    /// and a signature per secret that signs now.
    async fn send(&self, send: &ToSend) -> crate::outbound::Attempt {
        let msg_id = rules::message_id(send.delivery_id);
        let timestamp = self.state.clock.now().timestamp();
        let secrets: Vec<&[u8]> = send.secrets.iter().map(Vec::as_slice).collect();
        let signature = rules::signature(&secrets, &msg_id, timestamp, &send.payload);
        let headers = [
            ("content-type", "application/json".to_string()),
            ("webhook-id", msg_id),
            ("webhook-timestamp", timestamp.to_string()),
            ("webhook-signature", signature),
        ]
        .map(|(k, v)| (k.to_string(), v));
        self.state
            .outbound
            .post(&send.url, &headers, send.payload.clone().into_bytes())
            .await
    }

    fn count(&self, attempt: &crate::outbound::Attempt, outcome: Outcome) {
        let metrics = &self.state.metrics;
        let outcome = match outcome {
            Outcome::Delivered => "delivered",
            Outcome::Retry(_) => "retrying",
            Outcome::Failed => "failed",
        };
        metrics
            .webhook_deliveries
            .get_or_create(&crate::metrics::WebhookLabels {
                outcome: outcome.into(),
            })
            .inc();
        metrics
            .webhook_attempt_duration
            .observe(attempt.duration.as_secs_f64());
        if outcome != "delivered" {
            tracing::info!(
                outcome,
                status = attempt.status,
                error = attempt.error.as_deref().unwrap_or(""),
                "webhook attempt failed"
            );
        }
    }

    /// Records an attempt; failures (a database outage) are waited out with backoff rather than
    /// failing the job, which would send the event again.
    async fn record<F>(&self, f: F) -> AppResult<()>
    where
        F: Fn(&mut diesel::PgConnection) -> AppResult<()> + Clone + Send + 'static,
    {
        let started = Instant::now();
        let mut wait = Duration::from_millis(100);
        loop {
            match self.state.db.run(f.clone()).await {
                Err(e) if started.elapsed() < RECORD_FOR => {
                    tracing::warn!(error = ?e, retry_in_ms = wait.as_millis() as u64, "cannot record a webhook attempt yet");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(2));
                }
                other => return other,
            }
        }
    }

    /// Reads the queue depth and the failing endpoints into `/metrics`, at most once a second.
    async fn read_gauges(&self) {
        {
            let Ok(mut last) = self.gauges_read.lock() else {
                return;
            };
            if last.is_some_and(|t| t.elapsed() < Duration::from_secs(1)) {
                return;
            }
            *last = Some(Instant::now());
        }
        read_gauges(&self.state).await;
    }
}

/// Reads the deployment-wide webhook gauges (deliveries still to deliver, failing endpoints) into
/// this process's `/metrics`; an unreachable database leaves the last values.
pub async fn read_gauges(state: &AppState) {
    if let Ok((open, failing)) = state.db.run(webhooks::gauges).await {
        state.metrics.webhook_queue_depth.set(open);
        state.metrics.webhook_endpoints_failing.set(failing);
    }
}
