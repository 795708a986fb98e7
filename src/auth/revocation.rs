//! Instant revocation across replicas. Every change that can end what a bearer token may do
//! (a session or token revoked, an account deactivated or its password reset, access removed, the
//! external-user policy changed) notifies the channel [`CHANNEL`] from a trigger in its own
//! transaction (migration `shared_limits_and_revocation`), so it is sent at commit and never for a
//! rollback, whatever path made the change. Each replica listens on a connection of its own and drops
//! the cached token answers of the person or organization named.
//!
//! Notifications are not queued for a listener that is not connected, so after any loss of the
//! connection the whole cache is dropped once the listener is back, and reconnection is retried
//! with backoff (`crate::listener`); meanwhile the cache's time-to-live bounds how stale an answer
//! can be. Losses are counted in `/metrics` (`guestpass_revocation_listener_drops`).
//!
//! Live connections (GraphQL subscriptions over WebSocket) hear the same notifications as
//! [`Recheck`]s, after the cache has forgotten the answers concerned, and authenticate their token
//! again: one whose session or token no longer signs in is closed.

use crate::auth::cache::AuthCache;
use crate::listener::Handler;
use crate::metrics::Metrics;
use std::sync::Arc;
use tokio::sync::{broadcast, watch};
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

/// What a live connection hears: whose tokens may have stopped signing in, so it authenticates its
/// own again (see the module's documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recheck {
    /// The person or organization a notification named.
    Only(Revoked),
    /// Anyone's: the listener was (re)connected, so notifications may have been missed.
    Everyone,
}

/// Applies the notifications to the cache, and tells live connections.
struct Revocations {
    cache: Arc<AuthCache>,
    metrics: Arc<Metrics>,
    rechecks: broadcast::Sender<Recheck>,
}

impl Handler for Revocations {
    fn connected(&mut self) {
        // Whatever was sent while no one listened is lost: start over.
        self.cache.invalidate();
        self.metrics.revocation_listener_connected.set(1);
        // No live connection may be listening (an error then): nothing to tell.
        let _ = self.rechecks.send(Recheck::Everyone);
    }

    fn notified(&mut self, payload: &str) {
        match Revoked::parse(payload) {
            Some(who) => {
                self.cache.forget(who);
                self.metrics.revocations_received.inc();
                let _ = self.rechecks.send(Recheck::Only(who));
            }
            None => tracing::warn!(payload, "unexpected notification"),
        }
    }

    fn lost(&mut self) {
        self.metrics.revocation_listener_connected.set(0);
        self.metrics.revocation_listener_drops.inc();
        self.cache.invalidate();
    }
}

/// Listens until `stop` flips: applies each notification to `cache` and tells `rechecks`,
/// reconnects with backoff.
pub async fn listen(
    database_url: String,
    cache: Arc<AuthCache>,
    metrics: Arc<Metrics>,
    rechecks: broadcast::Sender<Recheck>,
    stop: watch::Receiver<bool>,
) {
    let handler = Revocations {
        cache,
        metrics,
        rechecks,
    };
    crate::listener::listen(database_url, CHANNEL, handler, stop).await
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
}
