//! Rate limits on anything guessable (sign-in, codes, reset links), keyed by account and by client
//! address. GCRA from `governor`: a burst of `n`, refilled evenly over the window.
//!
//! Limits are kept in each process's memory: with several replicas behind a load balancer each holds
//! its own budget, so the effective limit is `n x replicas`, still a small constant against guessing.

use crate::config::Config;
use crate::error::AppError;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// One keyed limit: at most `n` calls per `window` for each key.
pub struct Limit {
    limiter: DefaultKeyedRateLimiter<String>,
    calls: AtomicU32,
}

impl Limit {
    pub fn new(n: u32, window: Duration) -> Self {
        let n = NonZeroU32::new(n.max(1)).expect("at least 1");
        let quota = Quota::with_period(window / n.get())
            .expect("a non-zero period")
            .allow_burst(n);
        Self {
            limiter: RateLimiter::keyed(quota),
            calls: AtomicU32::new(0),
        }
    }

    /// Counts one call for `key`; `RATE_LIMITED` with the wait when the budget is spent.
    pub fn check(&self, key: &str) -> Result<(), AppError> {
        // Forget idle keys now and then so memory stays bounded.
        if self.calls.fetch_add(1, Ordering::Relaxed) % 4096 == 4095 {
            self.limiter.retain_recent();
        }
        self.limiter
            .check_key(&key.to_string())
            .map_err(|not_until| {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                AppError::RateLimited {
                    retry_after_seconds: wait.as_secs() + 1,
                }
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
    pub fn from_config(c: &Config) -> Self {
        let quarter = Duration::from_secs(15 * 60);
        let hour = Duration::from_secs(3600);
        Self {
            login_account: Arc::new(Limit::new(c.login_limit_per_account, quarter)),
            login_address: Arc::new(Limit::new(c.login_limit_per_address, quarter)),
            code_address: Arc::new(Limit::new(c.code_limit_per_address, quarter)),
            reset_account: Arc::new(Limit::new(c.reset_limit_per_account, hour)),
            reset_address: Arc::new(Limit::new(c.reset_limit_per_address, hour)),
            accept_address: Arc::new(Limit::new(c.accept_limit_per_address, hour)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_gets_its_burst_then_waits_and_other_keys_are_unaffected() {
        let l = Limit::new(3, Duration::from_secs(900));
        for _ in 0..3 {
            assert!(l.check("a").is_ok());
        }
        match l.check("a") {
            Err(AppError::RateLimited {
                retry_after_seconds,
            }) => assert!((1..=301).contains(&retry_after_seconds)),
            other => panic!("expected RATE_LIMITED, got {other:?}"),
        }
        assert!(l.check("b").is_ok());
    }
}
