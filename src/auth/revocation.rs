//! Instant revocation across replicas. Every change that can end what a bearer token may do
//! (a session or token revoked, an account deactivated or its password reset, access removed, the
//! external-user policy changed) notifies the channel [`CHANNEL`] from a trigger in its own
//! transaction (migration `shared_limits_and_revocation`), so it is sent at commit and never for a
//! rollback, whatever path made the change. Each replica listens on a connection of its own and drops
//! the cached token answers of the person or organization named.
//!
//! Notifications are not queued for a listener that is not connected, so after any loss of the
//! connection the whole cache is dropped once the listener is back, and reconnection is retried
//! with backoff; meanwhile the cache's time-to-live bounds how stale an answer can be. Losses are
//! counted in `/metrics` (`guestpass_revocation_listener_drops`).

use crate::auth::cache::AuthCache;
use crate::metrics::Metrics;
use rand::Rng;
use sqlx::postgres::PgListener;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use uuid::Uuid;

/// The channel the triggers notify.
pub const CHANNEL: &str = "guestpass_access";

/// Whose cached answers a notification drops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Revoked {
    /// `u:<id>`: one person's sessions, tokens or standing changed.
    User(Uuid),
    /// `o:<id>`: the organization's external-user policy changed.
    Organization(Uuid),
}

impl Revoked {
    /// The payload a trigger sent; `None` for anything else.
    pub fn parse(payload: &str) -> Option<Self> {
        let (kind, id) = payload.split_once(':')?;
        let id = Uuid::parse_str(id).ok()?;
        match kind {
            "u" => Some(Self::User(id)),
            "o" => Some(Self::Organization(id)),
            _ => None,
        }
    }
}

/// Waits between reconnection attempts: doubling from 100 ms to 10 s, each with up to 50 % jitter so
/// that replicas do not reconnect in step after a database restart.
struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(100);
    const MOST: Duration = Duration::from_secs(10);

    fn new() -> Self {
        Self { next: Self::FIRST }
    }

    fn reset(&mut self) {
        self.next = Self::FIRST;
    }

    fn wait(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(Self::MOST);
        base + base.mul_f64(rand::rng().random_range(0.0..0.5))
    }
}

/// Listens until `stop` flips: applies each notification to `cache`, reconnects with backoff.
pub async fn listen(
    database_url: String,
    cache: Arc<AuthCache>,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::new();
    loop {
        let connected = tokio::select! {
            r = connect(&database_url) => r,
            _ = stop.wait_for(|s| *s) => return,
        };
        match connected {
            Ok(mut listener) => {
                // Whatever was sent while no one listened is lost: start over.
                cache.invalidate();
                metrics.revocation_listener_connected.set(1);
                backoff.reset();
                loop {
                    let next = tokio::select! {
                        r = listener.try_recv() => r,
                        _ = stop.wait_for(|s| *s) => return,
                    };
                    match next {
                        Ok(Some(n)) => match Revoked::parse(n.payload()) {
                            Some(who) => {
                                cache.forget(who);
                                metrics.revocations_received.inc();
                            }
                            None => {
                                tracing::warn!(payload = n.payload(), "unexpected notification")
                            }
                        },
                        Ok(None) => {
                            tracing::warn!("revocation listener lost its connection");
                            break;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "revocation listener failed");
                            break;
                        }
                    }
                }
                metrics.revocation_listener_connected.set(0);
                metrics.revocation_listener_drops.inc();
                cache.invalidate();
            }
            Err(e) => tracing::warn!(error = %e, "revocation listener cannot connect"),
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff.wait()) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

async fn connect(database_url: &str) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect(database_url).await?;
    // A lost connection is ours to handle (drop the cache, back off), not re-established silently.
    listener.eager_reconnect(false);
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_name_a_person_or_an_organization() {
        let id = Uuid::new_v4();
        assert_eq!(Revoked::parse(&format!("u:{id}")), Some(Revoked::User(id)));
        assert_eq!(
            Revoked::parse(&format!("o:{id}")),
            Some(Revoked::Organization(id))
        );
        assert_eq!(Revoked::parse(&format!("x:{id}")), None);
        assert_eq!(Revoked::parse("u:not-a-uuid"), None);
        assert_eq!(Revoked::parse(""), None);
    }

    #[test]
    fn backoff_doubles_with_jitter_up_to_its_ceiling_and_resets() {
        let mut b = Backoff::new();
        let first = b.wait();
        assert!(first >= Duration::from_millis(100) && first < Duration::from_millis(150));
        let second = b.wait();
        assert!(second >= Duration::from_millis(200) && second < Duration::from_millis(300));
        for _ in 0..20 {
            assert!(b.wait() < Duration::from_secs(15));
        }
        b.reset();
        assert!(b.wait() < Duration::from_millis(150));
    }
}
