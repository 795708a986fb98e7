//! Tests that need the machine to themselves: the fault tests stop and restart a PostgreSQL cluster of
//! their own and kill worker processes, with timing bounds on recovery; the sweep measures the
//! process's peak memory. They run one at a time (`serially`), in a binary of their own, so that the
//! rest of the suite's load neither shares their process nor skews their bounds.

#[path = "../common/mod.rs"]
mod common;

mod faults;
mod sweep_scale;

/// Held by each test of this binary for its whole run: they never overlap, whatever
/// `--test-threads` says.
pub async fn serially() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}
