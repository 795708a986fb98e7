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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabels {
    pub queue: String,
    pub status: String,
}

pub struct Metrics {
    registry: Registry,
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
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("guestpass");
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
        Self {
            registry,
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
