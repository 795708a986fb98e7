//! The email job: claim the delivery, compose and render it, send, and record the outcome. Transient
//! failures are retried with exponential backoff and jitter as new delayed jobs; permanent ones are
//! not (the decision: [`crate::domain::email::next_step`]).

use super::compose::compose;
use crate::background::EmailJob;
use crate::domain::email::{Backoff, Deadline, NextStep, next_step};
use crate::email::{Mailer, SendError, build_message};
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::store::emails::{self, Claim, Content, ToSend};
use apalis::prelude::*;
use lettre::message::Mailbox;
use rand::Rng;
use std::sync::Arc;
use std::time::Duration;

pub struct EmailContext {
    pub state: AppState,
    pub mailer: Arc<Mailer>,
    pub from: Mailbox,
    pub retry_base: Duration,
}

/// Retry delays from `base`: `base x 2^(attempt-1)`, capped at an hour, with +-25% jitter so the
/// retries of a burst spread out.
fn backoff(base: Duration) -> Backoff {
    Backoff {
        base,
        jitter: rand::rng().random_range(0.75..1.25),
    }
}

pub async fn deliver(job: EmailJob, ctx: Data<Arc<EmailContext>>) -> Result<(), BoxDynError> {
    let span = tracing::info_span!("email", delivery = %job.delivery_id);
    let _e = span.enter();
    ctx.process(job)
        .await
        .map_err(|e| -> BoxDynError { e.to_string().into() })
}

/// How long the outcome of a send is retried while the database is unreachable.
const RECORD_FOR: Duration = Duration::from_secs(120);

impl EmailContext {
    /// Records what happened to a send. The email is already out: losing the record would send it
    /// again, so failures (a database outage) are waited out with backoff instead of failing the job.
    async fn record<F>(&self, f: F) -> AppResult<()>
    where
        F: Fn(&mut diesel::PgConnection) -> AppResult<()> + Clone + Send + 'static,
    {
        let started = std::time::Instant::now();
        let mut wait = Duration::from_millis(100);
        loop {
            match self.state.db.run(f.clone()).await {
                // Every recording step is idempotent, so any failure (an outage surfaces as many
                // different errors while the server restarts) is retried rather than re-sending.
                Err(e) if started.elapsed() < RECORD_FOR => {
                    tracing::warn!(
                        error = ?e,
                        retry_in_ms = wait.as_millis() as u64,
                        "cannot record a sent email yet"
                    );
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(2));
                }
                other => return other,
            }
        }
    }

    async fn process(&self, job: EmailJob) -> AppResult<()> {
        let st = &self.state;
        let id = job.delivery_id;
        let now = st.clock.now();
        let item = match st.db.run(move |c| emails::claim(c, id, now)).await? {
            Claim::Skip(why) => {
                tracing::debug!(why, "nothing to send");
                return Ok(());
            }
            Claim::Send(item) => item,
        };
        let rendered = compose(&item.content, &st.signer, &st.config.public_url, now)
            .render()
            .map_err(AppError::internal)?;
        let delivery = &item.delivery;
        let message = match build_message(
            &self.from,
            &delivery.recipient,
            &delivery.message_id,
            rendered,
        ) {
            Ok(m) => m,
            Err(e) => {
                st.db.run(move |c| emails::mark_failed(c, id, &e)).await?;
                return Ok(());
            }
        };
        let result = self.mailer.send(&id.to_string(), message).await;
        self.count(&result);
        let now = st.clock.now();
        match result {
            Ok(()) => self.record(move |c| emails::mark_sent(c, id, now)).await,
            Err(e) => self.failed(&item, e, now).await,
        }
    }

    /// Counts a send's outcome, and says whether the mail path itself is broken.
    fn count(&self, result: &Result<(), SendError>) {
        let metrics = &self.state.metrics;
        let outcome = match result {
            Ok(()) => "sent",
            Err(SendError::Permanent(_)) => "permanent_failure",
            Err(SendError::Transient(_)) => "transient_failure",
            Err(SendError::Configuration(_)) => "configuration_failure",
        };
        metrics
            .emails
            .get_or_create(&crate::metrics::EmailLabels {
                outcome: outcome.into(),
            })
            .inc();
        match result {
            Ok(()) | Err(SendError::Permanent(_)) => {
                metrics.mail_path_broken.set(0);
            }
            Err(SendError::Configuration(_)) => {
                metrics.mail_path_broken.set(1);
            }
            Err(SendError::Transient(_)) => {}
        }
    }

    /// Records a failed send: given up, or another attempt scheduled.
    async fn failed(
        &self,
        item: &ToSend,
        error: SendError,
        now: chrono::DateTime<chrono::Utc>,
    ) -> AppResult<()> {
        let id = item.delivery.id;
        let attempts = item.delivery.attempts;
        let give_up_at = item.delivery.give_up_at;
        let deadline = Deadline {
            give_up_at,
            // Past this the email is useless (the invite, code or link has expired).
            useless_at: match &item.content {
                Content::Invite { invite, .. } => invite.expires_at,
                _ => give_up_at,
            },
        };
        match &error {
            SendError::Permanent(e) => {
                tracing::warn!(error = %e, "recipient refused; not retrying")
            }
            // Not the invite's fault: keep retrying (within the invite's lifetime) and make it visible.
            SendError::Configuration(e) => tracing::error!(
                error = %e,
                "mail path broken by configuration (SMTP authentication or TLS)"
            ),
            SendError::Transient(_) => {}
        }
        match next_step(&error, attempts, now, deadline, backoff(self.retry_base)) {
            NextStep::Fail(msg) => self.record(move |c| emails::mark_failed(c, id, &msg)).await,
            NextStep::Retry { error: e, delay } => {
                if matches!(error, SendError::Transient(_)) {
                    tracing::info!(error = %e, retry_in_ms = delay.as_millis() as u64, "send failed; will retry");
                }
                self.record(move |c| emails::schedule_retry(c, id, &e, delay, now))
                    .await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::email::MAX_RETRY_DELAY;

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let base = Duration::from_secs(30);
        let first = backoff(base).after(1);
        assert!(first >= Duration::from_millis(22_500) && first <= Duration::from_millis(37_500));
        let third = backoff(base).after(3);
        assert!(third >= Duration::from_secs(90) && third <= Duration::from_secs(150));
        assert!(backoff(base).after(30) <= MAX_RETRY_DELAY.mul_f64(1.25));
    }
}
