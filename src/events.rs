//! Live events for GraphQL subscriptions, on every replica. A change a subscription follows notifies
//! the channel [`CHANNEL`] from a trigger in the change's own transaction (migration
//! `event_notifications`: sent at commit, never for a rollback) with ids only; each replica listens
//! on a connection of its own ([`listen`]) and hands each notification, as an [`Event`], to every
//! subscriber of the process through one broadcast channel ([`Live`]). Each subscriber then loads what
//! the event names and yields it only if its caller may see it (`graphql::subscription`).
//!
//! What is promised: a live signal, at most once. Notifications sent while a replica's listener is
//! not connected are lost (PostgreSQL keeps none for an absent listener), and a subscriber that falls
//! more than [`BUFFER`] events behind loses the oldest; either way subscribers are told
//! ([`Event::Missed`]: sent each time the listener is (again) in place, and seen by a subscriber that
//! fell behind) and re-read the current state or say so (the README's "Subscriptions"). A client
//! that reconnects queries the current state again.

use crate::auth::revocation::Recheck;
use crate::listener::Handler;
use crate::metrics::Metrics;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::{broadcast, watch};
use uuid::Uuid;

/// The channel the triggers notify.
pub const CHANNEL: &str = "guestpass_events";

/// Events the broadcast channel holds for a subscriber that has not read them yet: past this, the
/// subscriber loses the oldest and is told so ([`Event::Missed`]).
pub const BUFFER: usize = 8192;

/// What a notification names (ids only: subscribers load the rest). The site comes with the id, so a
/// subscriber skips the events of other sites without loading them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// `d:<id>:<site>`: an invite's email was queued, or its delivery changed status.
    Delivery { id: Uuid, site: Uuid },
    /// `b:<id>`: a bulk invite file, or the outcome of one of its rows, changed.
    Bulk(Uuid),
    /// `a:<id>:<site>`: an audit event concerning a site was recorded.
    Audit { id: i64, site: Uuid },
    /// Events may have been missed (the listener was not connected for a while, or this subscriber
    /// fell behind): re-read the current state.
    Missed,
}

impl Event {
    /// The payload a trigger sent; `None` for anything else.
    pub fn parse(payload: &str) -> Option<Self> {
        let mut parts = payload.split(':');
        let (kind, id, site) = (parts.next()?, parts.next()?, parts.next());
        if parts.next().is_some() {
            return None;
        }
        let site_id = || site.and_then(|s| Uuid::parse_str(s).ok());
        match kind {
            "d" => Some(Self::Delivery {
                id: Uuid::parse_str(id).ok()?,
                site: site_id()?,
            }),
            "b" if site.is_none() => Uuid::parse_str(id).ok().map(Self::Bulk),
            "a" => Some(Self::Audit {
                id: id.parse().ok()?,
                site: site_id()?,
            }),
            _ => None,
        }
    }
}

/// This process's live state, shared by its subscriptions: the events and the revocations they hear,
/// the live connections of each token, and the signal that closes them at shutdown. Clones share it.
#[derive(Clone)]
pub struct Live(Arc<Inner>);

struct Inner {
    events: broadcast::Sender<Event>,
    rechecks: broadcast::Sender<Recheck>,
    /// Live connections by the SHA-256 of their token (never the token).
    connections: Mutex<HashMap<Vec<u8>, usize>>,
    closing: watch::Sender<bool>,
}

impl Default for Live {
    fn default() -> Self {
        Self::new()
    }
}

impl Live {
    pub fn new() -> Self {
        Self(Arc::new(Inner {
            events: broadcast::channel(BUFFER).0,
            rechecks: broadcast::channel(1024).0,
            connections: Mutex::default(),
            closing: watch::channel(false).0,
        }))
    }

    /// Every event from now on.
    pub fn events(&self) -> broadcast::Receiver<Event> {
        self.0.events.subscribe()
    }

    /// Where the revocation listener tells live connections to check their token again.
    pub fn recheck_sender(&self) -> broadcast::Sender<Recheck> {
        self.0.rechecks.clone()
    }

    /// Every recheck from now on.
    pub fn rechecks(&self) -> broadcast::Receiver<Recheck> {
        self.0.rechecks.subscribe()
    }

    /// A place for one more live connection of the token whose SHA-256 is `token_hash`, unless it
    /// holds `most` already. The place is given back when the [`Permit`] is dropped.
    pub fn admit(&self, token_hash: Vec<u8>, most: usize) -> Option<Permit> {
        let mut open = self
            .0
            .connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let n = open.entry(token_hash.clone()).or_default();
        if *n >= most {
            return None;
        }
        *n += 1;
        Some(Permit {
            live: self.clone(),
            token_hash,
        })
    }

    /// Closes every live connection (the process is stopping): they are told to go elsewhere.
    pub fn close_all(&self) {
        self.0.closing.send_replace(true);
    }

    /// Flips to true when the process stops.
    pub fn closing(&self) -> watch::Receiver<bool> {
        self.0.closing.subscribe()
    }
}

/// One live connection's place among its token's ([`Live::admit`]).
pub struct Permit {
    live: Live,
    token_hash: Vec<u8>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut open = self
            .live
            .0
            .connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = open.get_mut(&self.token_hash) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.token_hash);
            }
        }
    }
}

/// Hands the notifications to the subscribers.
struct Fanout {
    live: Live,
    metrics: Arc<Metrics>,
}

impl Handler for Fanout {
    fn connected(&mut self) {
        self.metrics.events_listener_connected.set(1);
        // Anything notified while no one listened is lost: subscribers re-read. (No subscriber at
        // all is an error of `send`, and nothing to tell.)
        let _ = self.live.0.events.send(Event::Missed);
    }

    fn notified(&mut self, payload: &str) {
        match Event::parse(payload) {
            Some(event) => {
                self.metrics.events_received.inc();
                let _ = self.live.0.events.send(event);
            }
            None => tracing::warn!(payload, "unexpected event notification"),
        }
    }

    fn lost(&mut self) {
        self.metrics.events_listener_connected.set(0);
        self.metrics.events_listener_drops.inc();
    }
}

/// Listens until `stop` flips, handing every event to `live`'s subscribers; reconnects with backoff.
pub async fn listen(
    database_url: String,
    live: Live,
    metrics: Arc<Metrics>,
    stop: watch::Receiver<bool>,
) {
    crate::listener::listen(database_url, CHANNEL, Fanout { live, metrics }, stop).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_name_a_delivery_a_bulk_file_or_an_audit_event() {
        let (id, site) = (Uuid::new_v4(), Uuid::new_v4());
        assert_eq!(
            Event::parse(&format!("d:{id}:{site}")),
            Some(Event::Delivery { id, site })
        );
        assert_eq!(Event::parse(&format!("b:{id}")), Some(Event::Bulk(id)));
        assert_eq!(
            Event::parse(&format!("a:42:{site}")),
            Some(Event::Audit { id: 42, site })
        );
        for wrong in [
            format!("d:{id}"),
            format!("d:{id}:"),
            format!("d:not-a-uuid:{site}"),
            format!("b:{id}:{site}"),
            "a:42".to_string(),
            format!("a:not-a-number:{site}"),
            format!("a:42:{site}:more"),
            format!("u:{id}"),
            String::new(),
        ] {
            assert_eq!(Event::parse(&wrong), None, "{wrong}");
        }
    }

    #[test]
    fn a_token_holds_at_most_its_places_and_gets_them_back() {
        let live = Live::new();
        let token = vec![1u8; 32];
        let a = live.admit(token.clone(), 2).expect("first");
        let b = live.admit(token.clone(), 2).expect("second");
        assert!(live.admit(token.clone(), 2).is_none(), "a third is refused");
        assert!(
            live.admit(vec![2u8; 32], 2).is_some(),
            "another token is not"
        );
        drop(a);
        let c = live.admit(token.clone(), 2).expect("a place came back");
        drop((b, c));
        assert!(live.0.connections.lock().unwrap().get(&token).is_none());
    }
}
