//! One fresh database per test, cloned from a migrated template (built once per migration set and
//! shared by every test binary, guarded by an advisory lock), so tests run in parallel.

use diesel::prelude::*;
use diesel::{Connection, PgConnection, RunQueryDsl};
use std::sync::OnceLock;

/// The server the tests use: `DATABASE_URL` when set, else the local default.
pub fn server_url() -> String {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let mut u = url::Url::parse(&url).expect("DATABASE_URL must be a URL");
    u.set_path("/postgres");
    // Loopback needs no TLS, and libpq's OpenSSL state torn down at process exit while a pool thread
    // still holds a connection can abort the test binary ("double free") after every test passed.
    if !u.query_pairs().any(|(k, _)| k == "sslmode") {
        u.query_pairs_mut().append_pair("sslmode", "disable");
    }
    u.to_string()
}

fn with_db(name: &str) -> String {
    let mut u = url::Url::parse(&server_url()).unwrap();
    u.set_path(&format!("/{name}"));
    u.to_string()
}

fn admin() -> PgConnection {
    PgConnection::establish(&server_url()).unwrap_or_else(|e| {
        panic!(
            "tests need PostgreSQL: cannot connect to {} ({e}). Start PostgreSQL or set DATABASE_URL.",
            guestpass::db::describe_url(&server_url())
        )
    })
}

fn migrations_fingerprint() -> String {
    use sha2::{Digest, Sha256};
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let mut entries: Vec<_> = walk(&dir);
    entries.sort();
    let mut h = Sha256::new();
    for p in entries {
        h.update(p.to_string_lossy().as_bytes());
        h.update(std::fs::read(&p).unwrap());
    }
    hex::encode(&h.finalize()[..6])
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p))
        } else {
            out.push(p)
        }
    }
    out
}

fn exists(conn: &mut PgConnection, name: &str) -> bool {
    diesel::select(diesel::dsl::sql::<diesel::sql_types::Bool>(&format!(
        "EXISTS (SELECT 1 FROM pg_database WHERE datname = '{name}')"
    )))
    .get_result(conn)
    .unwrap()
}

fn template() -> &'static str {
    static T: OnceLock<String> = OnceLock::new();
    T.get_or_init(|| {
        let name = format!("guestpass_tmpl_{}", migrations_fingerprint());
        let mut conn = admin();
        diesel::sql_query("SELECT pg_advisory_lock(7318)")
            .execute(&mut conn)
            .unwrap();
        if !exists(&mut conn, &name) {
            let building = format!("{name}_build");
            diesel::sql_query(format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"))
                .execute(&mut conn)
                .unwrap();
            diesel::sql_query(format!("CREATE DATABASE {building}"))
                .execute(&mut conn)
                .unwrap();
            let url = with_db(&building);
            guestpass::db::migrate(&url).expect("migrations apply");
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let pool = guestpass::jobs::queue_pool(&url, 1).await.unwrap();
                guestpass::jobs::setup_queue(&pool).await.unwrap();
                pool.close().await;
            });
            diesel::sql_query(format!("ALTER DATABASE {building} RENAME TO {name}"))
                .execute(&mut conn)
                .unwrap();
        }
        diesel::sql_query("SELECT pg_advisory_unlock(7318)")
            .execute(&mut conn)
            .unwrap();
        name
    })
}

/// A database of the test's own; dropped when this value is.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub fn new() -> Self {
        // Built on its own thread: it runs a small runtime of its own, and tests call this from async code.
        let tmpl = std::thread::spawn(template)
            .join()
            .expect("template database");
        let name = format!("gp_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = admin();
        // Concurrent clones of one template can collide ("being accessed by other users"): retry.
        for attempt in 0.. {
            match diesel::sql_query(format!("CREATE DATABASE {name} TEMPLATE {tmpl}"))
                .execute(&mut conn)
            {
                Ok(_) => break,
                Err(e) if attempt < 50 => {
                    let _ = e;
                    std::thread::sleep(std::time::Duration::from_millis(50 + attempt * 20));
                }
                Err(e) => panic!("cannot create test database: {e}"),
            }
        }
        Self {
            url: with_db(&name),
            name,
        }
    }

    pub fn conn(&self) -> PgConnection {
        PgConnection::establish(&self.url).unwrap()
    }

    /// Runs a scalar SQL query (test assertions on row counts and states).
    pub fn scalar_i64(&self, sql: &str) -> i64 {
        #[derive(QueryableByName)]
        struct Row {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            v: i64,
        }
        let sql = with_keys(sql);
        let r: Row = diesel::sql_query(format!("SELECT ({sql})::bigint AS v"))
            .get_result(&mut self.conn())
            .unwrap();
        r.v
    }

    /// Runs one or more statements (no parameters).
    /// Runs setup SQL, then the access-change engine's repair, so grants written this way reach the
    /// maintained access state exactly as the engine derives it (see `repair_access`).
    pub fn execute(&self, sql: &str) {
        use diesel::connection::SimpleConnection;
        self.conn().batch_execute(&with_keys(sql)).unwrap();
        self.repair_access();
    }

    /// Derives the maintained access state from the grants (`guestpass check-access --repair`):
    /// what setup shortcuts that write grants directly call, so no test holds state the engine would
    /// not have written.
    pub fn repair_access(&self) {
        guestpass::store::changes::check::run(&mut self.conn(), true, chrono::Utc::now()).unwrap();
    }

    /// Differences between the grants and the maintained access state (`guestpass check-access`).
    pub fn check_access(&self) -> Vec<String> {
        guestpass::store::changes::check::run(&mut self.conn(), false, chrono::Utc::now())
            .unwrap()
            .into_iter()
            .map(|d| d.to_string())
            .collect()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let mut conn = admin();
            let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut conn);
        })
        .join();
    }
}

/// Test SQL names rows by the ids the API answered: each quoted global id (`'VXNlcjo...'`) becomes
/// the key it stands for, so a test can write `WHERE id = '{user}'` with the id it was given.
pub fn with_keys(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut parts = sql.split('\'');
    if let Some(first) = parts.next() {
        out.push_str(first);
    }
    for (i, part) in parts.enumerate() {
        out.push('\'');
        // Odd parts (0-based here) sit inside quotes.
        match guestpass::graphql::ids::decode(part) {
            Some((_, key)) if i % 2 == 0 => out.push_str(&key),
            _ => out.push_str(part),
        }
    }
    out
}
