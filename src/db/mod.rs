//! The one place that opens database connections: the r2d2 pool, migrations, and the async boundary
//! (`Db::run` / `Db::tx`) that moves every blocking diesel call off the async runtime.

pub mod schema;

use crate::error::{AppError, AppResult};
use diesel::pg::PgConnection;
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, Pool};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Advisory lock key held while migrating, so replicas starting together migrate once.
const MIGRATION_LOCK: i64 = 0x6775_6573_7470_6173; // "guestpas"

pub type PgPool = Pool<ConnectionManager<PgConnection>>;

/// Why the database could not be used at start-up, in words an operator can act on.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(
        "cannot connect to PostgreSQL at {target}: {reason}. Start PostgreSQL (e.g. `pg_ctlcluster 15 main start`) or set DATABASE_URL to a reachable server."
    )]
    Unreachable { target: String, reason: String },
    #[error("DATABASE_URL is not a valid PostgreSQL URL: {0}")]
    BadUrl(String),
    #[error("applying database migrations failed: {0}")]
    Migration(String),
}

/// `user@host:port/db`, without the password: safe to print.
pub fn describe_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => format!(
            "{}@{}:{}{}",
            u.username(),
            u.host_str().unwrap_or("localhost"),
            u.port().unwrap_or(5432),
            u.path()
        ),
        Err(_) => "(unparseable DATABASE_URL)".into(),
    }
}

fn database_name(url: &str) -> Result<(String, String), SetupError> {
    let mut u = url::Url::parse(url).map_err(|e| SetupError::BadUrl(e.to_string()))?;
    let name = u.path().trim_start_matches('/').to_string();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(SetupError::BadUrl(format!(
            "unsupported database name {name:?}"
        )));
    }
    u.set_path("/postgres");
    Ok((name, u.to_string()))
}

/// Creates the database named in `url` when it does not exist yet.
pub fn ensure_database(url: &str) -> Result<(), SetupError> {
    if PgConnection::establish(url).is_ok() {
        return Ok(());
    }
    let (name, admin_url) = database_name(url)?;
    let mut conn = PgConnection::establish(&admin_url).map_err(|e| SetupError::Unreachable {
        target: describe_url(url),
        reason: first_line(&e.to_string()),
    })?;
    let exists: bool = diesel::select(diesel::dsl::sql::<diesel::sql_types::Bool>(&format!(
        "EXISTS (SELECT 1 FROM pg_database WHERE datname = '{name}')"
    )))
    .get_result(&mut conn)
    .map_err(|e| SetupError::Migration(e.to_string()))?;
    if !exists {
        // The name was checked above to hold only [A-Za-z0-9_-].
        match diesel::sql_query(format!("CREATE DATABASE \"{name}\"")).execute(&mut conn) {
            Ok(_) => tracing::info!(database = %name, "created database"),
            Err(e) if e.to_string().contains("already exists") => {}
            Err(e) => return Err(SetupError::Migration(e.to_string())),
        }
    }
    PgConnection::establish(url)
        .map(|_| ())
        .map_err(|e| SetupError::Unreachable {
            target: describe_url(url),
            reason: first_line(&e.to_string()),
        })
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").trim().to_string()
}

/// Applies pending migrations (ours, then the job queue's tables) under an advisory lock.
pub fn migrate(url: &str) -> Result<usize, SetupError> {
    ensure_database(url)?;
    let mut conn = PgConnection::establish(url).map_err(|e| SetupError::Unreachable {
        target: describe_url(url),
        reason: first_line(&e.to_string()),
    })?;
    let m = |e: &dyn std::fmt::Display| SetupError::Migration(e.to_string());
    diesel::sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))
        .execute(&mut conn)
        .map_err(|e| m(&e))?;
    let applied = conn.run_pending_migrations(MIGRATIONS).map(|v| v.len());
    let _ = diesel::sql_query(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"))
        .execute(&mut conn);
    let applied = applied.map_err(|e| m(&e))?;
    if applied > 0 {
        tracing::info!(applied, "applied database migrations");
        // A migration may add or change maintained access state: derive it from the grants now, so
        // an upgraded database is correct from its first request.
        let repaired = crate::store::changes::check::run(&mut conn, true, chrono::Utc::now())
            .map_err(|e| m(&e))?;
        if !repaired.is_empty() {
            tracing::info!(
                differences = repaired.len(),
                "derived the maintained access state"
            );
        }
    }
    Ok(applied)
}

/// [`migrate`], then the migrations' one step that needs the server secret: sealing authenticator
/// secrets still stored in plain text (`store::signin::seal_legacy_totp`, whose comment says why it
/// is Rust and not SQL). Every command that migrates calls this. Without the secret (`keys` is
/// `None`) the step waits for a process that has it, and says so when something waits.
pub fn migrate_and_seal(
    url: &str,
    keys: Option<&crate::secrets::SecretKeys>,
) -> Result<usize, SetupError> {
    let applied = migrate(url)?;
    let mut conn = PgConnection::establish(url).map_err(|e| SetupError::Unreachable {
        target: describe_url(url),
        reason: first_line(&e.to_string()),
    })?;
    let m = |e: crate::error::AppError| SetupError::Migration(format!("sealing secrets: {e:?}"));
    match keys {
        Some(keys) => {
            let sealed = crate::store::signin::seal_legacy_totp(&mut conn, keys).map_err(m)?;
            if sealed > 0 {
                tracing::info!(
                    sealed,
                    key_id = keys.current_id(),
                    "sealed the authenticator secrets stored in plain text"
                );
            }
        }
        None => {
            let waiting = crate::store::signin::unsealed_totp_count(&mut conn).map_err(m)?;
            if waiting > 0 {
                tracing::warn!(
                    waiting,
                    "authenticator secrets are stored in plain text until a command runs with GUESTPASS_SECRET (e.g. `guestpass migrate`)"
                );
            }
        }
    }
    Ok(applied)
}

/// True when the schema is current (used by `/readyz`).
pub fn migrations_current(conn: &mut PgConnection) -> bool {
    matches!(conn.has_pending_migration(MIGRATIONS), Ok(false))
}

pub fn build_pool(url: &str, size: u32) -> PgPool {
    counted_pool(url, size, Arc::new(AtomicU64::new(0)))
}

/// A pool whose connections count every statement they run into `statements` (for `/metrics` and
/// the benchmarks' statements-per-request).
pub fn counted_pool(url: &str, size: u32, statements: Arc<AtomicU64>) -> PgPool {
    Pool::builder()
        .max_size(size)
        .min_idle(Some(1))
        // A burst queues for a connection rather than failing; a dead database fails within this.
        .connection_timeout(Duration::from_secs(5))
        // After PostgreSQL restarts, every idle connection is dead; checking each on check-out (one
        // `SELECT 1` round trip) keeps a request from being handed one. Without it, each pool
        // failed one request per dead connection (the fault test's restart).
        .test_on_check_out(true)
        .connection_customizer(Box::new(CountStatements(statements)))
        .build_unchecked(ConnectionManager::new(url))
}

#[derive(Debug)]
struct CountStatements(Arc<AtomicU64>);

impl diesel::r2d2::CustomizeConnection<PgConnection, diesel::r2d2::Error> for CountStatements {
    fn on_acquire(&self, conn: &mut PgConnection) -> Result<(), diesel::r2d2::Error> {
        use diesel::connection::{Connection, InstrumentationEvent};
        let counter = self.0.clone();
        conn.set_instrumentation(move |event: InstrumentationEvent<'_>| {
            if let InstrumentationEvent::FinishQuery { .. } = event {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        });
        Ok(())
    }
}

/// The async boundary around the pool.
#[derive(Clone)]
pub struct Db {
    pool: PgPool,
    statements: Arc<AtomicU64>,
}

impl Db {
    /// A pool of `size` connections to `url` that counts the statements it runs.
    pub fn connect(url: &str, size: u32) -> Self {
        let statements = Arc::new(AtomicU64::new(0));
        Self {
            pool: counted_pool(url, size, statements.clone()),
            statements,
        }
    }

    /// A pool of its own to the same database, counting into the same statement counter: the job
    /// workers take theirs from it, so a burst of API requests never makes an email wait for a
    /// connection (nor the other way round).
    pub fn own_pool(&self, url: &str, size: u32) -> Self {
        Self {
            pool: counted_pool(url, size, self.statements.clone()),
            statements: self.statements.clone(),
        }
    }

    /// Statements run through this pool so far.
    pub fn statements(&self) -> u64 {
        self.statements.load(Ordering::Relaxed)
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Runs `f` with a pooled connection on the blocking thread pool (checkout included, which may wait).
    pub async fn run<T, F>(&self, f: F) -> AppResult<T>
    where
        F: FnOnce(&mut PgConnection) -> AppResult<T> + Send + 'static,
        T: Send + 'static,
    {
        let pool = self.pool.clone();
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            let mut conn = pool.get().map_err(|e| {
                tracing::warn!(error = %e, "no database connection");
                AppError::Unavailable
            })?;
            f(&mut conn)
        })
        .await
        .map_err(|e| AppError::internal(format!("blocking task failed: {e}")))?
    }

    /// Like [`Db::run`], inside one transaction: everything `f` writes commits together or not at all.
    pub async fn tx<T, F>(&self, f: F) -> AppResult<T>
    where
        F: FnOnce(&mut PgConnection) -> AppResult<T> + Send + 'static,
        T: Send + 'static,
    {
        self.run(move |conn| conn.transaction(f)).await
    }
}
