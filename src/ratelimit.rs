//! Rate limits on anything guessable (sign-in, codes, reset links, invite links), keyed by account
//! and by client address, shared by every replica: the state is one row per key in PostgreSQL
//! (`rate_limits`), so N replicas hold one budget between them and a restart resets nothing.
//!
//! The algorithm is GCRA (the one `governor` implemented in memory before): a burst of `n`, refilled
//! evenly over the window, held as one timestamp per key, the *theoretical arrival time* (TAT). A
//! check is one statement (`INSERT ... ON CONFLICT DO UPDATE ... WHERE ... RETURNING`), atomic under
//! concurrency because the upsert locks the key's row. Keys whose TAT has passed (a whole budget)
//! are deleted by the retention job. [`decide`] is the rule in Rust; the statement
//! does the same arithmetic, and a test holds the two together.

use crate::db::Db;
use crate::error::{AppError, AppResult};
use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Bytea, Int8, Nullable, Timestamptz};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// What one call at `now` gets, given the key's stored TAT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Allowed; the key's TAT becomes `tat`.
    Allowed { tat: DateTime<Utc> },
    /// Refused; the next call will be allowed after `wait`.
    Limited { wait: Duration },
}

/// GCRA: each call moves the TAT one `interval` later (from now, if it lies in the past); a call is
/// allowed while the moved TAT stays within `burst` intervals of now.
pub fn decide(
    tat: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    interval: Duration,
    burst: u32,
) -> Decision {
    let next = tat.map_or(now, |t| t.max(now)) + interval;
    let limit = now + interval * burst as i32;
    if next <= limit {
        Decision::Allowed { tat: next }
    } else {
        Decision::Limited { wait: next - limit }
    }
}

/// The check as one statement. `$1` key, `$2` now, `$3` interval and `$4` burst x interval (both in
/// microseconds). `granted` is the new TAT when allowed, NULL when refused; `stored` is the TAT the
/// statement's snapshot saw (for the refusal's wait).
pub const CHECK: &str = "WITH stored AS (SELECT tat FROM rate_limits WHERE key = $1),
     granted AS (
       INSERT INTO rate_limits AS r (key, tat)
       VALUES ($1, $2 + $3 * interval '1 microsecond')
       ON CONFLICT (key) DO UPDATE
          SET tat = GREATEST(r.tat, $2) + $3 * interval '1 microsecond'
        WHERE GREATEST(r.tat, $2) + $3 * interval '1 microsecond'
              <= $2 + $4 * interval '1 microsecond'
       RETURNING tat)
SELECT (SELECT tat FROM granted) AS granted, (SELECT tat FROM stored) AS stored";

#[derive(QueryableByName)]
struct Checked {
    #[diesel(sql_type = Nullable<Timestamptz>)]
    granted: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    stored: Option<DateTime<Utc>>,
}

/// One keyed limit: at most `burst` calls per `window` for each key, across all replicas.
pub struct Limit {
    name: &'static str,
    burst: u32,
    interval: Duration,
}

impl Limit {
    pub fn new(name: &'static str, n: u32, window: std::time::Duration) -> Self {
        let burst = n.max(1);
        let window = Duration::from_std(window).unwrap_or(Duration::hours(1));
        Self {
            name,
            burst,
            interval: window / burst as i32,
        }
    }

    /// The row's key: the limit's name and the caller's key, hashed (no address or email is stored).
    fn row_key(&self, key: &str) -> Vec<u8> {
        let mut h = Sha256::new();
        h.update(self.name.as_bytes());
        h.update([0]);
        h.update(key.as_bytes());
        h.finalize().to_vec()
    }

    /// Counts one call for `key` now (the service's clock); `RATE_LIMITED` with the wait when the
    /// budget is spent.
    pub async fn check(&self, st: &crate::state::AppState, key: &str) -> AppResult<()> {
        self.check_at(&st.db, st.clock.now(), key).await
    }

    /// [`Limit::check`] at a given time.
    pub async fn check_at(&self, db: &Db, now: DateTime<Utc>, key: &str) -> AppResult<()> {
        let row_key = self.row_key(key);
        let interval = self.interval.num_microseconds().unwrap_or(i64::MAX);
        let span = (self.interval * self.burst as i32)
            .num_microseconds()
            .unwrap_or(i64::MAX);
        let checked: Checked = db
            .run(move |c| {
                Ok(diesel::sql_query(CHECK)
                    .bind::<Bytea, _>(row_key)
                    .bind::<Timestamptz, _>(now)
                    .bind::<Int8, _>(interval)
                    .bind::<Int8, _>(span)
                    .get_result(c)?)
            })
            .await?;
        if checked.granted.is_some() {
            return Ok(());
        }
        let wait = match decide(checked.stored, now, self.interval, self.burst) {
            Decision::Limited { wait } => wait,
            // Another call moved the TAT between the snapshot and the upsert: wait one interval.
            Decision::Allowed { .. } => self.interval,
        };
        Err(AppError::RateLimited {
            retry_after_seconds: wait.num_seconds().max(0) as u64 + 1,
        })
    }
}

/// Every limit of the service, built once from configuration.
#[derive(Clone)]
pub struct Limits {
    pub login_account: Arc<Limit>,
    pub login_address: Arc<Limit>,
    pub code_address: Arc<Limit>,
    pub reset_account: Arc<Limit>,
    pub reset_address: Arc<Limit>,
    pub accept_address: Arc<Limit>,
}

impl Limits {
    pub fn from_config(c: &crate::config::Config) -> Self {
        let quarter = std::time::Duration::from_secs(15 * 60);
        let hour = std::time::Duration::from_secs(3600);
        let limit = |name, n, window| Arc::new(Limit::new(name, n, window));
        Self {
            login_account: limit("login_account", c.login_limit_per_account, quarter),
            login_address: limit("login_address", c.login_limit_per_address, quarter),
            code_address: limit("code_address", c.code_limit_per_address, quarter),
            reset_account: limit("reset_account", c.reset_limit_per_account, hour),
            reset_address: limit("reset_address", c.reset_limit_per_address, hour),
            accept_address: limit("accept_address", c.accept_limit_per_address, hour),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn run(tat: &mut Option<DateTime<Utc>>, now: DateTime<Utc>) -> Decision {
        let d = decide(*tat, now, Duration::seconds(300), 3);
        if let Decision::Allowed { tat: t } = d {
            *tat = Some(t);
        }
        d
    }

    #[test]
    fn a_key_gets_its_burst_then_waits_for_one_interval() {
        let mut tat = None;
        for _ in 0..3 {
            assert!(matches!(run(&mut tat, t0()), Decision::Allowed { .. }));
        }
        assert_eq!(
            run(&mut tat, t0()),
            Decision::Limited {
                wait: Duration::seconds(300)
            }
        );
        // One interval later exactly one more call fits.
        let later = t0() + Duration::seconds(300);
        assert!(matches!(run(&mut tat, later), Decision::Allowed { .. }));
        assert!(matches!(run(&mut tat, later), Decision::Limited { .. }));
    }

    #[test]
    fn an_idle_key_gets_its_whole_burst_back_and_no_more() {
        let mut tat = None;
        for _ in 0..3 {
            run(&mut tat, t0());
        }
        let much_later = t0() + Duration::days(1);
        for _ in 0..3 {
            assert!(matches!(
                run(&mut tat, much_later),
                Decision::Allowed { .. }
            ));
        }
        assert!(matches!(
            run(&mut tat, much_later),
            Decision::Limited { .. }
        ));
    }

    #[test]
    fn a_refused_call_does_not_spend_budget() {
        let mut tat = None;
        for _ in 0..3 {
            run(&mut tat, t0());
        }
        let before = tat;
        for _ in 0..10 {
            assert!(matches!(run(&mut tat, t0()), Decision::Limited { .. }));
        }
        assert_eq!(tat, before);
    }

    #[test]
    fn a_clock_moved_back_never_grants_more_than_the_burst() {
        let mut tat = None;
        for _ in 0..3 {
            run(&mut tat, t0());
        }
        let earlier = t0() - Duration::hours(1);
        assert!(matches!(run(&mut tat, earlier), Decision::Limited { .. }));
    }
}
