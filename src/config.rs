//! Configuration, loaded once from the environment (and flags) by clap.

use std::fmt;
use std::path::PathBuf;

/// A secret that never shows up in `Debug` output or logs.
#[derive(Clone)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl std::str::FromStr for Secret {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.len() < 32 {
            return Err(
                "GUESTPASS_SECRET must be at least 32 characters (e.g. `openssl rand -hex 32`)"
                    .into(),
            );
        }
        Ok(Self(s.to_string()))
    }
}

#[derive(clap::Args, Clone, Debug)]
pub struct Config {
    /// PostgreSQL connection URL; the database is created when it does not exist yet.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/guestpass",
        hide_env_values = true
    )]
    pub database_url: String,

    /// Connections in the r2d2 pool used for our data.
    #[arg(long, env = "GUESTPASS_DB_POOL_SIZE", default_value_t = 10)]
    pub db_pool_size: u32,

    /// Connections in the job workers' own r2d2 pool (emails, maintenance).
    #[arg(long, env = "GUESTPASS_WORKER_DB_POOL_SIZE", default_value_t = 6)]
    pub worker_db_pool_size: u32,

    /// Address the HTTP server listens on.
    #[arg(long, env = "GUESTPASS_BIND", default_value = "127.0.0.1:8080")]
    pub bind: String,

    /// Base URL of links in emails (no trailing slash).
    #[arg(
        long,
        env = "GUESTPASS_PUBLIC_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub public_url: String,

    /// The frontend application, linked from the pages shown after accepting an invite.
    #[arg(long, env = "GUESTPASS_APP_URL")]
    pub app_url: Option<String>,

    /// SMTP server: `smtp://user:pass@host:587?tls=required` (STARTTLS), `smtps://host:465` (implicit
    /// TLS), `smtp://host:25` (plain). Unset: emails are written to GUESTPASS_OUTBOX_DIR.
    #[arg(long, env = "GUESTPASS_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,

    /// Where emails go as `.eml` files when no SMTP server is configured.
    #[arg(long, env = "GUESTPASS_OUTBOX_DIR", default_value = "outbox")]
    pub outbox_dir: PathBuf,

    /// Sender of every email.
    #[arg(
        long,
        env = "GUESTPASS_EMAIL_FROM",
        default_value = "Guestpass <guestpass@localhost>"
    )]
    pub email_from: String,

    /// Server key from which emailed tokens are derived (at least 32 characters). Required by
    /// `serve` unless `--dev` or `--demo` is given.
    #[arg(long, env = "GUESTPASS_SECRET", hide_env_values = true)]
    pub secret: Option<Secret>,

    /// The server key before the current one, while rotating it: authenticator secrets sealed
    /// under it still open; `guestpass rotate-secrets` re-seals them under GUESTPASS_SECRET.
    #[arg(long, env = "GUESTPASS_SECRET_PREVIOUS", hide_env_values = true)]
    pub secret_previous: Option<Secret>,

    /// Log filter (tracing's EnvFilter syntax), e.g. `info` or `guestpass=debug`.
    #[arg(long, env = "GUESTPASS_LOG", default_value = "info")]
    pub log: String,

    /// Emails sent concurrently by one worker process.
    #[arg(long, env = "GUESTPASS_EMAIL_CONCURRENCY", default_value_t = 16)]
    pub email_concurrency: usize,

    /// How long transient email failures are retried, in seconds (always within the invite's lifetime).
    #[arg(long, env = "GUESTPASS_EMAIL_RETRY_FOR_SECS", default_value_t = 86_400)]
    pub email_retry_for_secs: u64,

    /// First retry delay in milliseconds; doubles each attempt (with jitter), capped at one hour.
    #[arg(long, env = "GUESTPASS_EMAIL_RETRY_BASE_MS", default_value_t = 30_000)]
    pub email_retry_base_ms: u64,

    /// How often a worker reports it is alive; jobs of a worker silent for 3 intervals are run again.
    #[arg(long, env = "GUESTPASS_WORKER_HEARTBEAT_SECS", default_value_t = 10)]
    pub worker_heartbeat_secs: u64,

    /// Largest accepted request body, in bytes.
    #[arg(long, env = "GUESTPASS_MAX_BODY_BYTES", default_value_t = 256 * 1024)]
    pub max_body_bytes: usize,

    /// Session lifetime after sign-in, in hours.
    #[arg(long, env = "GUESTPASS_SESSION_HOURS", default_value_t = 24 * 14)]
    pub session_hours: i64,

    /// A session not used for this many minutes ends (its absolute lifetime is `session_hours`).
    #[arg(long, env = "GUESTPASS_SESSION_IDLE_MINUTES", default_value_t = 24 * 60)]
    pub session_idle_minutes: i64,

    /// Password attempts (`login`, and accepting an invite with an existing account) per account in
    /// 15 minutes.
    #[arg(long, env = "GUESTPASS_LOGIN_LIMIT_PER_ACCOUNT", default_value_t = 10)]
    pub login_limit_per_account: u32,

    /// The same password attempts per client address in 15 minutes.
    #[arg(long, env = "GUESTPASS_LOGIN_LIMIT_PER_ADDRESS", default_value_t = 100)]
    pub login_limit_per_address: u32,

    /// Two-step code checks per client address in 15 minutes (each challenge also dies after 5 wrong codes).
    #[arg(long, env = "GUESTPASS_CODE_LIMIT_PER_ADDRESS", default_value_t = 50)]
    pub code_limit_per_address: u32,

    /// Password reset requests per account in an hour.
    #[arg(long, env = "GUESTPASS_RESET_LIMIT_PER_ACCOUNT", default_value_t = 5)]
    pub reset_limit_per_account: u32,

    /// How long (milliseconds) this process may reuse who a token belongs to; changes made through
    /// this process apply at once, those made through another replica within this time. 0 disables it.
    #[arg(long, env = "GUESTPASS_AUTH_CACHE_MS", default_value_t = 1000)]
    pub auth_cache_ms: u64,

    /// Deepest query nesting accepted.
    #[arg(long, env = "GUESTPASS_GRAPHQL_MAX_DEPTH", default_value_t = 12)]
    pub graphql_max_depth: usize,

    /// Highest query complexity accepted (each field 1; lists count by their `first`).
    #[arg(long, env = "GUESTPASS_GRAPHQL_MAX_COMPLEXITY", default_value_t = 2000)]
    pub graphql_max_complexity: usize,

    /// Most aliased fields in one operation (each alias is a separate call: an alias bomb multiplies work).
    #[arg(long, env = "GUESTPASS_GRAPHQL_MAX_ALIASES", default_value_t = 30)]
    pub graphql_max_aliases: usize,

    /// Most operations in one batched request.
    #[arg(long, env = "GUESTPASS_GRAPHQL_MAX_BATCH", default_value_t = 10)]
    pub graphql_max_batch: usize,

    /// Serve schema introspection (`__schema`, `__type`); switch off to hide the schema.
    #[arg(long, env = "GUESTPASS_GRAPHQL_INTROSPECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub graphql_introspection: bool,

    /// Serve the GraphiQL explorer at /graphiql.
    #[arg(long, env = "GUESTPASS_GRAPHIQL", default_value_t = true, action = clap::ArgAction::Set)]
    pub graphiql: bool,

    /// Origins allowed to call the API from a browser (comma-separated, e.g.
    /// `https://app.example.com`); none by default.
    #[arg(long, env = "GUESTPASS_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,

    /// Proxies whose `X-Forwarded-For` is believed (comma-separated IP addresses); without it the
    /// client address is the connection's.
    #[arg(long, env = "GUESTPASS_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<std::net::IpAddr>,

    /// Invites one admin may create per 24 hours.
    #[arg(
        long,
        env = "GUESTPASS_INVITES_PER_ADMIN_PER_DAY",
        default_value_t = 500
    )]
    pub invites_per_admin_per_day: i64,

    /// Seconds before the same address may be sent another invite email (a new invite or a resend).
    #[arg(long, env = "GUESTPASS_RECIPIENT_COOLDOWN_SECS", default_value_t = 60)]
    pub recipient_cooldown_secs: i64,

    /// Invite acceptances and invite-page submissions per client address per hour.
    #[arg(long, env = "GUESTPASS_ACCEPT_LIMIT_PER_ADDRESS", default_value_t = 60)]
    pub accept_limit_per_address: u32,

    /// Finished queue jobs, used or expired invites, challenges, links and ended sessions are deleted
    /// after this many days.
    #[arg(long, env = "GUESTPASS_RETENTION_DAYS", default_value_t = 30)]
    pub retention_days: i64,

    /// Audit events are deleted after this many days.
    #[arg(long, env = "GUESTPASS_AUDIT_RETENTION_DAYS", default_value_t = 400)]
    pub audit_retention_days: i64,

    /// When the retention job runs (cron with seconds); once per deployment per tick.
    #[arg(
        long,
        env = "GUESTPASS_RETENTION_SCHEDULE",
        default_value = "0 30 3 * * *"
    )]
    pub retention_schedule: String,

    /// When the re-verification sweep runs: a cron expression with seconds
    /// (`sec min hour day month weekday`). Every replica's scheduler fires; the sweep runs once per tick.
    #[arg(
        long,
        env = "GUESTPASS_REVERIFY_SCHEDULE",
        default_value = "0 */15 * * * *"
    )]
    pub reverify_schedule: String,

    /// How many minutes before a verification period ends the reminder is emailed (default: the
    /// smaller of 3 days and a fifth of the organization's interval).
    #[arg(long, env = "GUESTPASS_REVERIFY_LEAD_MINUTES")]
    pub reverify_lead_minutes: Option<i32>,

    /// Password reset requests, and uses of reset links, per client address in an hour.
    #[arg(long, env = "GUESTPASS_RESET_LIMIT_PER_ADDRESS", default_value_t = 30)]
    pub reset_limit_per_address: u32,

    /// Live GraphQL WebSocket connections (subscriptions) one session or API token may hold open on
    /// this server; the next is closed at `connection_init` (close code 1013, "try again later").
    #[arg(long, env = "GUESTPASS_SUBSCRIPTIONS_PER_TOKEN", default_value_t = 5)]
    pub subscriptions_per_token: usize,

    /// Allow webhook URLs with plain `http` (development only: a delivery in plain text can be read
    /// and changed on its way). Off: only `https` is accepted.
    #[arg(long, env = "GUESTPASS_WEBHOOK_ALLOW_HTTP")]
    pub webhook_allow_http: bool,

    /// Allow webhook URLs that resolve to loopback, private, link-local (cloud metadata) or other
    /// non-public addresses: for tests and on-premise receivers. Off: such targets are refused at
    /// registration and again at every delivery, after DNS resolution.
    #[arg(long, env = "GUESTPASS_WEBHOOK_ALLOW_PRIVATE_TARGETS")]
    pub webhook_allow_private_targets: bool,

    /// How long a webhook delivery may take to connect (DNS, TCP and TLS), in milliseconds.
    #[arg(
        long,
        env = "GUESTPASS_WEBHOOK_CONNECT_TIMEOUT_MS",
        default_value_t = 5_000
    )]
    pub webhook_connect_timeout_ms: u64,

    /// How long a webhook delivery may take in all, from connecting to the end of the answer, in
    /// milliseconds.
    #[arg(long, env = "GUESTPASS_WEBHOOK_TIMEOUT_MS", default_value_t = 15_000)]
    pub webhook_timeout_ms: u64,

    /// Webhook deliveries sent at once per worker process.
    #[arg(long, env = "GUESTPASS_WEBHOOK_CONCURRENCY", default_value_t = 16)]
    pub webhook_concurrency: usize,

    /// Wait before a failed webhook delivery's first retry, in milliseconds; each later wait is four
    /// times longer (with jitter), at most 12 hours apart.
    #[arg(
        long,
        env = "GUESTPASS_WEBHOOK_RETRY_FIRST_MS",
        default_value_t = 30_000
    )]
    pub webhook_retry_first_ms: u64,

    /// How long after its event a webhook delivery is retried before it fails for good (and its
    /// endpoint is marked failing), in seconds.
    #[arg(
        long,
        env = "GUESTPASS_WEBHOOK_RETRY_FOR_SECS",
        default_value_t = 259_200
    )]
    pub webhook_retry_for_secs: u64,
}

impl Config {
    /// A configuration with every default, for tests and tools.
    pub fn defaults() -> Self {
        #[derive(clap::Parser)]
        struct Wrapper {
            #[command(flatten)]
            config: Config,
        }
        <Wrapper as clap::Parser>::parse_from(["guestpass"]).config
    }
}
