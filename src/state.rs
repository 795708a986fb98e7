//! Shared application state, built once at start-up.

use crate::auth::password::PasswordPool;
use crate::auth::tokens::LinkSigner;
use crate::clock::Clock;
use crate::config::Config;
use crate::db::Db;
use crate::metrics::Metrics;
use crate::store::invites::DeliveryPolicy;
use std::sync::Arc;

/// The host part of our `Message-ID`s: the public URL's host.
pub fn message_id_domain(public_url: &str) -> String {
    url::Url::parse(public_url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_else(|| "guestpass.invalid".into())
}

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub clock: Clock,
    pub config: Arc<Config>,
    pub signer: LinkSigner,
    pub passwords: PasswordPool,
    pub delivery: DeliveryPolicy,
    pub metrics: Arc<Metrics>,
    pub limits: crate::ratelimit::Limits,
    pub auth_cache: Arc<crate::auth::cache::AuthCache>,
    /// Seals and opens the secrets stored for reading back (authenticator apps' TOTP secrets).
    pub secrets: Arc<crate::secrets::SecretKeys>,
    /// What live GraphQL subscriptions share in this process: events, rechecks, connections per token.
    pub live: crate::events::Live,
    /// Sends webhook deliveries, only to targets the outbound policy allows (see `crate::outbound`).
    pub outbound: crate::outbound::Outbound,
}

impl AppState {
    pub fn new(config: Config, db: Db, clock: Clock, secret: &str) -> Self {
        let host = message_id_domain(&config.public_url);
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            db,
            clock,
            signer: LinkSigner::new(secret),
            secrets: Arc::new(crate::secrets::SecretKeys::new(
                secret,
                config.secret_previous.as_ref().map(|s| s.0.as_str()),
            )),
            passwords: PasswordPool::new(workers),
            delivery: DeliveryPolicy {
                retry_for: chrono::Duration::seconds(config.email_retry_for_secs as i64),
                message_id_domain: host,
                invites_per_admin_per_day: config.invites_per_admin_per_day,
                recipient_cooldown: chrono::Duration::seconds(config.recipient_cooldown_secs),
            },
            metrics: Arc::new(Metrics::new()),
            limits: crate::ratelimit::Limits::from_config(&config),
            live: crate::events::Live::new(),
            outbound: crate::outbound::Outbound::new(crate::outbound::OutboundPolicy::from_config(
                &config,
            )),
            auth_cache: Arc::new(crate::auth::cache::AuthCache::new(
                std::time::Duration::from_millis(config.auth_cache_ms),
            )),
            config: Arc::new(config),
        }
    }

    pub fn session_lifetime(&self) -> chrono::Duration {
        chrono::Duration::hours(self.config.session_hours)
    }

    pub fn session_idle(&self) -> chrono::Duration {
        chrono::Duration::minutes(self.config.session_idle_minutes)
    }
}
