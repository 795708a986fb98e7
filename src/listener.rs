//! One PostgreSQL `LISTEN` per channel and replica, kept open by a task of its own: the revocation
//! listener (`auth::revocation`) and the live events of subscriptions (`events`) both run [`listen`].
//!
//! PostgreSQL does not queue notifications for a listener that is not connected, so a lost
//! connection can lose some: [`Handler::connected`] is told each time the listener is (again) in
//! place, and handlers start over from there (drop a cache, tell subscribers to re-read). The
//! connection is not re-established silently underneath (sqlx's `eager_reconnect` is off): a lost
//! one is [`Handler::lost`], then retried with [`Backoff`].

use rand::Rng;
use sqlx::postgres::PgListener;
use std::time::Duration;
use tokio::sync::watch;

/// What a listener does with its connection's life and its notifications.
pub trait Handler: Send {
    /// The listener is in place (at start, and after each reconnection): anything notified while it
    /// was not is lost.
    fn connected(&mut self);
    /// A notification's payload, in commit order.
    fn notified(&mut self, payload: &str);
    /// The connection was lost; [`Handler::connected`] follows once it is back.
    fn lost(&mut self);
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

/// Listens on `channel` until `stop` flips, handing everything to `handler`; reconnects with backoff.
pub async fn listen(
    database_url: String,
    channel: &'static str,
    mut handler: impl Handler,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::new();
    loop {
        let connected = tokio::select! {
            r = connect(&database_url, channel) => r,
            _ = stop.wait_for(|s| *s) => return,
        };
        match connected {
            Ok(mut listener) => {
                handler.connected();
                backoff.reset();
                loop {
                    let next = tokio::select! {
                        r = listener.try_recv() => r,
                        _ = stop.wait_for(|s| *s) => return,
                    };
                    match next {
                        Ok(Some(n)) => handler.notified(n.payload()),
                        Ok(None) => {
                            tracing::warn!(channel, "listener lost its connection");
                            break;
                        }
                        Err(e) => {
                            tracing::warn!(channel, error = %e, "listener failed");
                            break;
                        }
                    }
                }
                handler.lost();
            }
            Err(e) => tracing::warn!(channel, error = %e, "listener cannot connect"),
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff.wait()) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

async fn connect(database_url: &str, channel: &str) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect(database_url).await?;
    // A lost connection is ours to handle (tell the handler, back off), not re-established silently.
    listener.eager_reconnect(false);
    listener.listen(channel).await?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

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
