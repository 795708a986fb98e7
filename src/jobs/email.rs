//! The email job: claim the delivery, render, send, and record the outcome. Transient failures are
//! retried with exponential backoff and jitter as new delayed jobs; permanent ones are not.

use super::EmailJob;
use crate::auth::tokens::LinkPurpose;
use crate::email::{
    CodeEmail, InviteEmail, Mailer, NoticeEmail, ResetEmail, ReverifyEmail, SendError,
    build_message,
};
use crate::state::AppState;
use crate::store::emails::{self, Claim, Content};
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

const MAX_DELAY: Duration = Duration::from_secs(3600);

/// `base x 2^(attempt-1)`, capped at an hour, with +-25% jitter so retries of a burst spread out.
pub fn backoff(base: Duration, attempt: i32) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.clamp(1, 20).saturating_sub(1).min(20) as u32);
    let capped = exp.min(MAX_DELAY);
    let jitter = rand::rng().random_range(0.75..1.25);
    capped.mul_f64(jitter)
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
    async fn record<F>(&self, f: F) -> crate::error::AppResult<()>
    where
        F: Fn(&mut diesel::PgConnection) -> crate::error::AppResult<()> + Clone + Send + 'static,
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

    async fn process(&self, job: EmailJob) -> crate::error::AppResult<()> {
        let st = &self.state;
        let id = job.delivery_id;
        let now = st.clock.now();
        let claim = st.db.run(move |c| emails::claim(c, id, now)).await?;
        let item = match claim {
            Claim::Skip(why) => {
                tracing::debug!(why, "nothing to send");
                return Ok(());
            }
            Claim::Send(item) => item,
        };
        let base = st.config.public_url.trim_end_matches('/').to_string();
        let rendered = match &item.content {
            Content::Invite {
                invite,
                site,
                organization,
                inviter,
                space,
            } => {
                let token = st
                    .signer
                    .sign(LinkPurpose::Invite, invite.id, &invite.token_nonce);
                InviteEmail {
                    inviter: inviter.display_name.clone(),
                    organization: organization.name.clone(),
                    site: site.name.clone(),
                    space: space.as_ref().map(|s| s.name.clone()),
                    role: invite.role().map_or("a member", |r| r.describe()),
                    message: invite.personal_message.clone(),
                    link: format!("{base}/invite/{token}"),
                    expires: invite
                        .expires_at
                        .format("%-d %B %Y at %H:%M UTC")
                        .to_string(),
                }
                .render()
            }
            Content::LoginCode {
                user,
                organization,
                challenge,
            } => CodeEmail {
                purpose: if challenge.purpose == "REVERIFY" {
                    "verify your email address for"
                } else {
                    "finish signing in to"
                },
                name: user.display_name.clone(),
                organization: organization.name.clone(),
                code: st.signer.code(challenge.id, &challenge.code_nonce),
                minutes: (challenge.expires_at - now).num_minutes().max(1),
            }
            .render(),
            Content::PasswordReset {
                user,
                organization,
                reset,
            } => {
                let token =
                    st.signer
                        .sign(LinkPurpose::PasswordReset, reset.id, &reset.token_nonce);
                ResetEmail {
                    name: user.display_name.clone(),
                    organization: organization.name.clone(),
                    link: format!("{base}/reset/{token}"),
                    minutes: (reset.expires_at - now).num_minutes().max(1),
                }
                .render()
            }
            Content::Notice {
                notice,
                site,
                organization,
                guest,
                recipient,
            } => NoticeEmail {
                request: notice.kind == "EXTENSION_REQUEST",
                to_guest: recipient.id == guest.id,
                recipient: recipient.display_name.clone(),
                guest: guest.display_name.clone(),
                guest_email: guest.email.clone(),
                site: site.name.clone(),
                organization: organization.name.clone(),
                ends: notice
                    .ends_at
                    .map(|t| t.format("%-d %B %Y at %H:%M UTC").to_string()),
                message: notice.message.clone(),
            }
            .render(),
            Content::Reverify {
                user,
                organization,
                link,
            } => {
                let token = st
                    .signer
                    .sign(LinkPurpose::Reverify, link.id, &link.token_nonce);
                let policy = st
                    .db
                    .run({
                        let org = organization.id;
                        move |c| crate::store::external::policy(c, org)
                    })
                    .await?;
                let until = crate::domain::policy::verified_until(
                    user.verified_at,
                    user.created_at,
                    &policy,
                );
                ReverifyEmail {
                    name: user.display_name.clone(),
                    organization: organization.name.clone(),
                    link: format!("{base}/verify/{token}"),
                    until: until.format("%-d %B %Y at %H:%M UTC").to_string(),
                }
                .render()
            }
        }
        .map_err(crate::error::AppError::internal)?;
        let message = match build_message(
            &self.from,
            &item.delivery.recipient,
            &item.delivery.message_id,
            rendered,
        ) {
            Ok(m) => m,
            Err(e) => {
                st.db.run(move |c| emails::mark_failed(c, id, &e)).await?;
                return Ok(());
            }
        };
        let result = self.mailer.send(&id.to_string(), message).await;
        let now = st.clock.now();
        let attempts = item.delivery.attempts;
        let give_up_at = item.delivery.give_up_at;
        // Past this the email is useless (the invite, code or link has expired).
        let expires_at = match &item.content {
            Content::Invite { invite, .. } => invite.expires_at,
            _ => give_up_at,
        };
        let outcome = match &result {
            Ok(()) => "sent",
            Err(SendError::Permanent(_)) => "permanent_failure",
            Err(SendError::Transient(_)) => "transient_failure",
            Err(SendError::Configuration(_)) => "configuration_failure",
        };
        st.metrics
            .emails
            .get_or_create(&crate::metrics::EmailLabels {
                outcome: outcome.into(),
            })
            .inc();
        match result {
            Ok(()) => {
                st.metrics.mail_path_broken.set(0);
                self.record(move |c| emails::mark_sent(c, id, now)).await
            }
            Err(SendError::Permanent(e)) => {
                st.metrics.mail_path_broken.set(0);
                tracing::warn!(error = %e, "recipient refused; not retrying");
                self.record(move |c| emails::mark_failed(c, id, &e)).await
            }
            Err(SendError::Transient(e)) => {
                let delay = backoff(self.retry_base, attempts);
                if now + chrono::Duration::from_std(delay).unwrap_or_default() > give_up_at {
                    let msg = format!("gave up after {attempts} attempts: {e}");
                    self.record(move |c| emails::mark_failed(c, id, &msg)).await
                } else {
                    tracing::info!(error = %e, retry_in_ms = delay.as_millis() as u64, "send failed; will retry");
                    self.record(move |c| emails::schedule_retry(c, id, &e, delay, now))
                        .await
                }
            }
            Err(SendError::Configuration(e)) => {
                // Not the invite's fault: keep retrying (within the invite's lifetime) and make it visible.
                st.metrics.mail_path_broken.set(1);
                tracing::error!(error = %e, "mail path broken by configuration (SMTP authentication or TLS)");
                let delay = backoff(self.retry_base, attempts);
                if now + chrono::Duration::from_std(delay).unwrap_or_default() > expires_at {
                    let msg = format!("expired before the mail server accepted it: {e}");
                    self.record(move |c| emails::mark_failed(c, id, &msg)).await
                } else {
                    self.record(move |c| emails::schedule_retry(c, id, &e, delay, now))
                        .await
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let base = Duration::from_secs(30);
        let first = backoff(base, 1);
        assert!(first >= Duration::from_millis(22_500) && first <= Duration::from_millis(37_500));
        let third = backoff(base, 3);
        assert!(third >= Duration::from_secs(90) && third <= Duration::from_secs(150));
        assert!(backoff(base, 30) <= MAX_DELAY.mul_f64(1.25));
    }
}
