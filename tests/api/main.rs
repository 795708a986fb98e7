//! The integration tests: one binary (each test binary links the whole crate, and on 2 cores linking
//! was most of the suite's time), a module per area. Every test gets its own database cloned from a
//! migrated template, the real server on port 0, and where mail matters a real SMTP sink.
//! The tests that need the machine to themselves (PostgreSQL restarts, peak memory) are in
//! `tests/isolated/`.

#[path = "../common/mod.rs"]
mod common;

mod access;
mod authorization;
mod browser;
mod bulk;
mod cli;
mod email;
mod email_latency;
mod exposure;
mod external;
mod foundation;
mod hostile;
mod invites;
mod lifetimes;
mod limits;
mod outbound;
mod properties;
mod signin;
mod statements;
mod subscriptions;
mod webhooks;
