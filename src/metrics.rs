//! Prometheus metrics: request counts and latencies, pool state, queue depth and email outcomes.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EmailLabels {
    pub outcome: String,
}

/// What followed a webhook delivery attempt: `delivered`, `retrying` (failed, tried again later) or
/// `failed` (retries used up).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WebhookLabels {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabels {
    pub queue: String,
    pub status: String,
}

pub struct Metrics {
    registry: Registry,
    /// Webhook delivery attempts by what followed them.
    pub webhook_deliveries: Family<WebhookLabels, Counter>,
    /// How long webhook receivers took to answer (or to fail).
    pub webhook_attempt_duration: Histogram,
    /// Webhook deliveries still to deliver (pending or retrying), deployment-wide.
    pub webhook_queue_depth: Gauge,
    /// Webhook endpoints whose deliveries used up their retries (`FAILING`), deployment-wide.
    pub webhook_endpoints_failing: Gauge,
    pub requests: Family<RequestLabels, Counter>,
    pub latency: Family<RequestLabels, Histogram>,
    pub emails: Family<EmailLabels, Counter>,
    pub pool_connections: Gauge,
    pub pool_idle: Gauge,
    /// SQL statements the API's pool has run (a counter, read at scrape time).
    pub sql_statements: Gauge,
    pub jobs: Family<JobLabels, Gauge>,
    /// 1 while the mail path fails for a reason of our own (authentication, TLS), else 0.
    pub mail_path_broken: Gauge<i64, std::sync::atomic::AtomicI64>,
    /// Times the revocation listener lost its connection (each drop empties the token cache).
    pub revocation_listener_drops: Counter,
    /// 1 while the revocation listener is connected.
    pub revocation_listener_connected: Gauge<i64, std::sync::atomic::AtomicI64>,
    /// Revocation notifications applied to the token cache.
    pub revocations_received: Counter,
    /// 1 while the live events' listener (GraphQL subscriptions) is connected.
    pub events_listener_connected: Gauge<i64, std::sync::atomic::AtomicI64>,
    /// Times the live events' listener lost its connection (subscribers are told to re-read).
    pub events_listener_drops: Counter,
    /// Live event notifications handed to this process's subscribers.
    pub events_received: Counter,
    /// Open GraphQL WebSocket connections (admitted past `connection_init`).
    pub live_connections: Gauge<i64, std::sync::atomic::AtomicI64>,
    /// Running GraphQL subscriptions (admitted by the policy, listening for events).
    pub live_subscriptions: Gauge<i64, std::sync::atomic::AtomicI64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("guestpass");
        let webhook_deliveries = Family::<WebhookLabels, Counter>::default();
        let webhook_attempt_duration = Histogram::new(exponential_buckets(0.005, 2.0, 14));
        let webhook_queue_depth = Gauge::default();
        let webhook_endpoints_failing = Gauge::default();
        registry.register(
            "webhook_deliveries",
            "Webhook delivery attempts by outcome (delivered, retrying, failed)",
            webhook_deliveries.clone(),
        );
        registry.register(
            "webhook_attempt_duration_seconds",
            "How long webhook receivers took to answer a delivery attempt",
            webhook_attempt_duration.clone(),
        );
        registry.register(
            "webhook_queue_depth",
            "Webhook deliveries pending or retrying (read by the workers)",
            webhook_queue_depth.clone(),
        );
        registry.register(
            "webhook_endpoints_failing",
            "Webhook endpoints whose deliveries used up their retries (read by the workers)",
            webhook_endpoints_failing.clone(),
        );
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RequestLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        let emails = Family::<EmailLabels, Counter>::default();
        let pool_connections = Gauge::default();
        let pool_idle = Gauge::default();
        let sql_statements = Gauge::default();
        let jobs = Family::<JobLabels, Gauge>::default();
        let mail_path_broken = Gauge::default();
        let revocation_listener_drops = Counter::default();
        let revocation_listener_connected = Gauge::default();
        let revocations_received = Counter::default();
        let events_listener_connected = Gauge::default();
        let events_listener_drops = Counter::default();
        let events_received = Counter::default();
        let live_connections = Gauge::default();
        let live_subscriptions = Gauge::default();
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency",
            latency.clone(),
        );
        registry.register("emails", "Email send attempts by outcome", emails.clone());
        registry.register(
            "db_pool_connections",
            "Open database connections",
            pool_connections.clone(),
        );
        registry.register(
            "db_pool_idle_connections",
            "Idle database connections",
            pool_idle.clone(),
        );
        registry.register("jobs", "Queue jobs by queue and status", jobs.clone());
        registry.register(
            "db_statements",
            "SQL statements run through the connection pool since start",
            sql_statements.clone(),
        );
        registry.register(
            "mail_path_broken",
            "1 when sending fails because of our own SMTP configuration",
            mail_path_broken.clone(),
        );
        registry.register(
            "revocation_listener_drops",
            "Connections the revocation listener lost (the token cache is emptied each time)",
            revocation_listener_drops.clone(),
        );
        registry.register(
            "revocation_listener_connected",
            "1 while this replica listens for revocations",
            revocation_listener_connected.clone(),
        );
        registry.register(
            "revocations_received",
            "Revocation notifications applied to the token cache",
            revocations_received.clone(),
        );
        registry.register(
            "events_listener_connected",
            "1 while this replica listens for live events (GraphQL subscriptions)",
            events_listener_connected.clone(),
        );
        registry.register(
            "events_listener_drops",
            "Connections the live events' listener lost (subscribers are told to re-read)",
            events_listener_drops.clone(),
        );
        registry.register(
            "events_received",
            "Live event notifications handed to this replica's subscribers",
            events_received.clone(),
        );
        registry.register(
            "live_connections",
            "Open GraphQL WebSocket connections (graphql-transport-ws), past connection_init",
            live_connections.clone(),
        );
        registry.register(
            "live_subscriptions",
            "Running GraphQL subscriptions",
            live_subscriptions.clone(),
        );
        Self {
            registry,
            webhook_deliveries,
            webhook_attempt_duration,
            webhook_queue_depth,
            webhook_endpoints_failing,
            requests,
            latency,
            emails,
            pool_connections,
            pool_idle,
            sql_statements,
            jobs,
            mail_path_broken,
            revocation_listener_drops,
            revocation_listener_connected,
            revocations_received,
            events_listener_connected,
            events_listener_drops,
            events_received,
            live_connections,
            live_subscriptions,
        }
    }

    pub fn observe_request(&self, route: &str, status: u16, seconds: f64) {
        let labels = RequestLabels {
            route: route.to_string(),
            status,
        };
        self.requests.get_or_create(&labels).inc();
        self.latency.get_or_create(&labels).observe(seconds);
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = encode(&mut out, &self.registry);
        out
    }
}
