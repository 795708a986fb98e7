//! Guestpass: a guest-access server. Admins invite people from outside their organization as guests
//! confined to one space, within seat limits, under an external-user security policy.
//!
//! Layout: `domain` (pure rules), `store` (all database access, called through `db::Db`), `graphql`
//! (thin resolvers), `http` (routes and pages), `jobs` + `email` (the queue and what it sends).

pub mod app;
pub mod auth;
pub mod background;
pub mod cli;
pub mod clock;
pub mod config;
pub mod db;
pub mod demo;
pub mod domain;
pub mod email;
pub mod error;
pub mod events;
pub mod graphql;
pub mod http;
pub mod jobs;
pub mod listener;
pub mod metrics;
pub mod outbound;
pub mod ratelimit;
pub mod secrets;
pub mod state;
pub mod store;
