//! A short-lived cache of who a bearer token belongs to, so the cheapest requests need no database
//! round trip. Correctness rules:
//! - an entry lives at most `ttl` (one second by default) of real time, and only while the service's
//!   clock has not moved further than that either;
//! - every request that may change access (any mutation, the invite/reset/verify forms) empties the
//!   cache of this process when it ends, so revocations are exact within one replica;
//! - every change that can end access anywhere notifies all replicas (`auth::revocation`), which
//!   drop the entries of the person or organization concerned as the notification arrives;
//! - if that notification channel is down, `ttl` still bounds how long another replica's change
//!   can go unseen;
//! - an answer looked up while any of this happened is not stored (the epoch moved meanwhile).

use crate::auth::revocation::Revoked;
use crate::store::access::Caller;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Past this many entries the cache starts over (it refills within a second).
const MAX_ENTRIES: usize = 100_000;

struct Entry {
    at: Instant,
    clock_at: DateTime<Utc>,
    caller: Option<Caller>,
}

pub struct AuthCache {
    ttl: Duration,
    epoch: AtomicU64,
    entries: Mutex<HashMap<Vec<u8>, Entry>>,
}

impl AuthCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            epoch: AtomicU64::new(0),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The generation to store a lookup under: read it before the lookup, so that a change made
    /// meanwhile leaves the stored answer stale.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// `Some(answer)` when a fresh answer is cached (`Some(None)`: the token is known not to work).
    pub fn get(&self, token_hash: &[u8], now: DateTime<Utc>) -> Option<Option<Caller>> {
        if self.ttl.is_zero() {
            return None;
        }
        let entries = self.entries.lock().ok()?;
        let e = entries.get(token_hash)?;
        let clock_moved = (now - e.clock_at).abs() > chrono::Duration::from_std(self.ttl).ok()?;
        (e.at.elapsed() < self.ttl && !clock_moved).then(|| e.caller.clone())
    }

    pub fn put(&self, token_hash: Vec<u8>, epoch: u64, now: DateTime<Utc>, caller: Option<Caller>) {
        if self.ttl.is_zero() {
            return;
        }
        if let Ok(mut entries) = self.entries.lock() {
            // Checked under the lock that every drop takes too: nothing dropped since the lookup
            // began can come back.
            if self.epoch() != epoch {
                return;
            }
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
            entries.insert(
                token_hash,
                Entry {
                    at: Instant::now(),
                    clock_at: now,
                    caller,
                },
            );
        }
    }

    /// Forgets everything (after anything that may have changed who can do what).
    pub fn invalidate(&self) {
        if let Ok(mut entries) = self.entries.lock() {
            self.epoch.fetch_add(1, Ordering::SeqCst);
            entries.clear();
        }
    }

    /// Forgets the answers for one person's tokens, or for everyone of one organization.
    pub fn forget(&self, who: Revoked) {
        if let Ok(mut entries) = self.entries.lock() {
            self.epoch.fetch_add(1, Ordering::SeqCst);
            entries.retain(|_, e| match (&e.caller, who) {
                (Some(c), Revoked::User(id)) => c.user.id != id,
                (Some(c), Revoked::Organization(id)) => c.user.organization_id != id,
                (None, _) => true,
            });
        }
    }

    pub fn len(&self) -> usize {
        self.entries.lock().map_or(0, |e| e.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
