//! The benchmark suite: seeds a realistic dataset, starts the release server against it with a local
//! SMTP sink, runs each scenario for a fixed time at a fixed concurrency, checks every response (a
//! GraphQL response with `errors` is a failure), and prints one table.
//!
//! Run it with `scripts/bench` (builds in release mode first). Options:
//!   --duration SECS     per scenario (default 10)
//!   --connections N     for the read scenarios (default 32)
//!   --skip-large        skip the 1,000,000-user sweep
//!   --login-only        only the sign-in scenarios (8, 8b), on the 10,000-user seed
//!   --webhooks-only     only the webhook scenarios (9a-9f), on the 10,000-user seed
//!   --binary PATH       the server binary to measure (default target/release/guestpass), e.g. an
//!                       earlier release's, to compare the same scenario before and after a change
//! `DATABASE_URL` names the server (the database `guestpass_bench` is recreated there).

#[path = "../tests/common/smtp.rs"]
#[allow(dead_code)]
mod smtp;

use serde_json::{Value, json};
use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The server binary (`--binary`).
static BINARY: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn bin() -> &'static str {
    BINARY
        .get()
        .map_or("target/release/guestpass", String::as_str)
}

struct Args {
    duration: Duration,
    connections: usize,
    skip_large: bool,
    login_only: bool,
    webhooks_only: bool,
    admin_url: String,
    db_url: String,
}

fn args() -> Args {
    let mut a = Args {
        duration: Duration::from_secs(10),
        connections: 32,
        skip_large: false,
        login_only: false,
        webhooks_only: false,
        admin_url: std::env::var("DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into()),
        db_url: String::new(),
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        match argv[i].as_str() {
            "--duration" => {
                a.duration = Duration::from_secs(argv[i + 1].parse().expect("seconds"));
                i += 1;
            }
            "--connections" => {
                a.connections = argv[i + 1].parse().expect("a number");
                i += 1;
            }
            "--skip-large" => a.skip_large = true,
            "--login-only" => a.login_only = true,
            "--webhooks-only" => a.webhooks_only = true,
            "--binary" => {
                BINARY.set(argv[i + 1].clone()).expect("one --binary");
                i += 1;
            }
            other => panic!("unknown option {other}"),
        }
        i += 1;
    }
    let mut u = url::Url::parse(&a.admin_url).expect("DATABASE_URL");
    u.set_path("/guestpass_bench");
    a.db_url = u.to_string();
    a
}

/// One scenario's measurements.
#[derive(Default)]
struct Row {
    name: String,
    connections: usize,
    requests: usize,
    errors: usize,
    elapsed: Duration,
    latencies_us: Vec<u64>,
    statements: Option<f64>,
    peak_rss_mb: f64,
    note: String,
}

impl Row {
    fn pct(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let mut v = self.latencies_us.clone();
        v.sort_unstable();
        let i = ((v.len() as f64 * p).ceil() as usize).clamp(1, v.len()) - 1;
        v[i] as f64 / 1000.0
    }
    fn rps(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }
}

struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn peak_rss_mb(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    }
}

fn start_server(db_url: &str, smtp: &str) -> Server {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(bin())
        .arg("serve")
        .env("DATABASE_URL", db_url)
        .env("GUESTPASS_BIND", format!("127.0.0.1:{port}"))
        .env("GUESTPASS_PUBLIC_URL", format!("http://127.0.0.1:{port}"))
        .env(
            "GUESTPASS_SECRET",
            "benchmark-secret-benchmark-secret-0123456",
        )
        .env("GUESTPASS_SMTP_URL", smtp)
        .env("GUESTPASS_LOG", "error")
        .env("GUESTPASS_DB_POOL_SIZE", "24")
        .env("GUESTPASS_EMAIL_CONCURRENCY", "32")
        // Volume, not abuse: the limits are raised for the run (each has its own test).
        .env("GUESTPASS_RECIPIENT_COOLDOWN_SECS", "0")
        .env("GUESTPASS_INVITES_PER_ADMIN_PER_DAY", "100000000")
        .env("GUESTPASS_LOGIN_LIMIT_PER_ADDRESS", "100000000")
        .env("GUESTPASS_LOGIN_LIMIT_PER_ACCOUNT", "100000000")
        .env("GUESTPASS_REVERIFY_SCHEDULE", "0 0 0 1 1 *")
        // The webhook scenarios' receiver listens on loopback, over plain http.
        .env("GUESTPASS_WEBHOOK_ALLOW_HTTP", "true")
        .env("GUESTPASS_WEBHOOK_ALLOW_PRIVATE_TARGETS", "true")
        .stdout(Stdio::null())
        .spawn()
        .expect("run scripts/bench (it builds the release binary first)");
    Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
    }
}

async fn wait_ready(client: &awc::Client, base: &str) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await
            && r.status() == 200
        {
            return;
        }
        actix_rt::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the server did not become ready");
}

async fn statements(client: &awc::Client, base: &str) -> f64 {
    let mut r = client.get(format!("{base}/metrics")).send().await.unwrap();
    let body = String::from_utf8(r.body().limit(1 << 24).await.unwrap().to_vec()).unwrap();
    body.lines()
        .find(|l| l.starts_with("guestpass_db_statements "))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// Runs `connections` clients for `duration`, each sending `body(worker, i)` with `token(worker)`.
async fn run<B, T>(
    server: &Server,
    name: &str,
    connections: usize,
    duration: Duration,
    token: T,
    body: B,
) -> Row
where
    B: Fn(usize, usize) -> Value + Clone + 'static,
    T: Fn(usize) -> Option<String>,
{
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .finish();
    let before = statements(&client, &server.base).await;
    let start = Instant::now();
    let tasks: Vec<_> = (0..connections)
        .map(|w| {
            let (client, url, token, body) = (
                client.clone(),
                format!("{}/graphql", server.base),
                token(w),
                body.clone(),
            );
            actix_rt::spawn(async move {
                let (mut lat, mut errors, mut i) = (Vec::new(), 0usize, 0usize);
                while start.elapsed() < duration {
                    let t0 = Instant::now();
                    let mut req = client.post(&url);
                    if let Some(t) = &token {
                        req = req.insert_header(("Authorization", format!("Bearer {t}")));
                    }
                    let ok = match req.send_json(&body(w, i)).await {
                        Ok(mut r) if r.status() == 200 => {
                            match r.json::<Value>().limit(1 << 24).await {
                                Ok(v) => v.get("errors").is_none_or(Value::is_null),
                                Err(_) => false,
                            }
                        }
                        _ => false,
                    };
                    lat.push(t0.elapsed().as_micros() as u64);
                    if !ok {
                        errors += 1;
                    }
                    i += 1;
                }
                (lat, errors)
            })
        })
        .collect();
    let mut row = Row {
        name: name.into(),
        connections,
        ..Default::default()
    };
    for t in tasks {
        let (lat, errors) = t.await.unwrap();
        row.requests += lat.len();
        row.errors += errors;
        row.latencies_us.extend(lat);
    }
    row.elapsed = start.elapsed();
    let after = statements(&client, &server.base).await;
    row.statements = Some((after - before) / row.requests.max(1) as f64);
    row.peak_rss_mb = server.peak_rss_mb();
    row
}

fn psql(db_url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([db_url, "-Atc", sql])
        .output()
        .expect("psql");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn seed(db_url: &str, extra: &[&str]) -> Value {
    let out = Command::new(bin())
        .arg("seed")
        .args(extra)
        .env("DATABASE_URL", db_url)
        .env("GUESTPASS_LOG", "error")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The statements of one guest-list request (scenario 1), for pgbench: the database's ceiling. The
/// same statements the server runs for it (read off PostgreSQL's statement log of one request,
/// session 6: the page, its count and what its rows' fields ask for, prefetched in one call), with the
/// page's ids as literals; pgbench runs them prepared, as diesel does. Not included: the pool's
/// `SELECT 1` on each connection check-out.
fn pgbench_script(db_url: &str, seeded: &Value) -> String {
    let site = seeded["siteId"].as_str().unwrap();
    let token = seeded["adminTokens"][0].as_str().unwrap();
    let admin = psql(
        db_url,
        &format!("SELECT user_id FROM api_tokens WHERE token_hash = sha256('{token}')"),
    );
    let org = psql(
        db_url,
        &format!("SELECT organization_id FROM sites WHERE id = '{site}'"),
    );
    let ids = |extra: &str| {
        psql(
            db_url,
            &format!(
                "SELECT '{{' || string_agg(u::text, ',') || '}}' FROM ((SELECT user_id AS u FROM site_members \
                 WHERE site_id = '{site}' AND role = 1 ORDER BY email_normalized, user_id LIMIT 50){extra}) p"
            ),
        )
    };
    let page = ids("");
    // The page's people and their inviter, whose facts the server loads in one statement.
    let page_and_inviter = ids(&format!(" UNION ALL SELECT '{admin}'::uuid"));
    let people = |ids: &str| {
        format!(
            "SELECT u.id, u.organization_id, oa.user_id FROM users u LEFT JOIN org_admins oa ON oa.user_id = u.id AND oa.organization_id = u.organization_id WHERE u.id = ANY('{ids}');
SELECT user_id, site_id FROM person_sites WHERE user_id = ANY('{ids}');
"
        )
    };
    format!(
        "SELECT id, user_id, last_used_at FROM api_tokens WHERE token_hash = sha256('{token}') AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now()) LIMIT 1;
SELECT u.*, EXISTS (SELECT 1 FROM org_admins oa WHERE oa.organization_id = u.organization_id AND oa.user_id = u.id), EXISTS (SELECT 1 FROM site_members WHERE user_id = u.id), p.two_step FROM users u LEFT JOIN external_user_policies p ON p.organization_id = u.organization_id WHERE u.id = '{admin}';
SELECT s.id, sm.role, sm.guest_space_id, sa.user_id FROM sites s LEFT JOIN site_members sm ON sm.site_id = s.id AND sm.user_id = '{admin}' LEFT JOIN site_admins sa ON sa.site_id = s.id AND sa.user_id = '{admin}' WHERE s.organization_id = '{org}' ORDER BY s.id;
SELECT sp.site_id, sa.space_id FROM space_admins sa JOIN spaces sp ON sa.space_id = sp.id WHERE sa.user_id = '{admin}';
SELECT * FROM sites WHERE id = '{site}' AND organization_id = '{org}' LIMIT 1;
SELECT u.* FROM site_members sm JOIN users u ON u.id = sm.user_id WHERE sm.site_id = '{site}' AND sm.role = 1 ORDER BY sm.email_normalized, sm.user_id LIMIT 51;
SELECT paid, guests, pending_paid, pending_guests FROM site_counters WHERE site_id = '{site}' LIMIT 1;
SELECT * FROM users WHERE id = ANY('{{{admin}}}');
{people}SELECT gs.site_id, gs.user_id, s.* FROM guest_spaces gs JOIN spaces s ON s.id = gs.space_id WHERE gs.user_id = ANY('{page}');
SELECT gm.user_id, g.* FROM group_members gm JOIN groups g ON g.id = gm.group_id WHERE gm.user_id = ANY('{page}') ORDER BY g.name_normalized, g.id;
",
        people = people(&page_and_inviter),
    )
}

/// The profile of scenario 1 on the database side: each statement's planning and execution time
/// (`EXPLAIN ANALYZE`, the median of 15 runs on an idle server), to show where a request's time goes.
fn statement_profile(db_url: &str, script: &str) {
    eprintln!("profiling scenario 1's statements...");
    println!();
    println!("| scenario 1 statement | planning ms | execution ms |");
    println!("|---|---|---|");
    for stmt in script.split(";\n").map(str::trim).filter(|s| !s.is_empty()) {
        let (mut plan, mut exec) = (Vec::new(), Vec::new());
        for _ in 0..15 {
            let out = psql(db_url, &format!("EXPLAIN (ANALYZE, SUMMARY) {stmt}"));
            let time = |label: &str| {
                out.lines()
                    .find_map(|l| l.trim().strip_prefix(label))
                    .and_then(|v| v.trim().trim_end_matches(" ms").parse::<f64>().ok())
                    .unwrap_or(0.0)
            };
            plan.push(time("Planning Time:"));
            exec.push(time("Execution Time:"));
        }
        plan.sort_by(f64::total_cmp);
        exec.sort_by(f64::total_cmp);
        let short: String = stmt.chars().take(70).collect();
        println!(
            "| `{}…` | {:.2} | {:.2} |",
            short.replace('|', "/"),
            plan[7],
            exec[7]
        );
    }
    println!();
}

fn pgbench(db_url: &str, script: &str, connections: usize, duration: Duration) -> f64 {
    let path = std::env::temp_dir().join("guestpass-bench.sql");
    std::fs::write(&path, script).unwrap();
    let pgbench = std::fs::read_dir("/usr/lib/postgresql")
        .ok()
        .and_then(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path().join("bin/pgbench"))
                .find(|p| p.exists())
        })
        .unwrap_or_else(|| "pgbench".into());
    let out = Command::new(pgbench)
        .args([
            "-n",
            "-M",
            "prepared",
            "-c",
            &connections.to_string(),
            "-j",
            "2",
            "-T",
            &duration.as_secs().to_string(),
            "-f",
        ])
        .arg(&path)
        .arg(db_url)
        .output()
        .expect("pgbench (apt-get install postgresql)");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "pgbench said: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
}

/// Rows are printed as soon as they are measured (a long run that fails later keeps what it had).
/// 8. Signing in with a password: argon2 plus the two shared rate-limit checks (per address, per
/// account), at 4 connections (the password hash bounds it on 2 cores). 8b: the check's statement
/// alone, in pgbench, with random keys (skipped when the binary predates shared limits).
async fn sign_in_rows(server: &Server, db_url: &str, d: Duration) -> Vec<Row> {
    const PASSWORD: &str = "benchmark password for sign-in";
    let who = psql(
        db_url,
        "SELECT organization_id || '|' || email_normalized FROM users
          WHERE NOT external AND status = 'ACTIVE' ORDER BY email_normalized LIMIT 1",
    );
    let (org, email) = who.split_once('|').expect("a seeded user");
    let hash = guestpass::auth::password::PasswordPool::new(1)
        .hash(PASSWORD.into())
        .await
        .expect("argon2");
    psql(
        db_url,
        &format!("UPDATE users SET password_hash = '{hash}' WHERE email_normalized = '{email}'"),
    );
    let vars = json!({ "i": { "organization": org, "email": email, "password": PASSWORD } });
    let mut rows = vec![
        run(
            server,
            "8 `login` (argon2 + 2 shared limit checks)",
            4,
            d,
            |_| None,
            move |_, _| {
                json!({ "query": "mutation($i: LoginInput!) { login(input: $i) { sessionToken challengeId } }", "variables": vars })
            },
        )
        .await,
    ];
    if psql(db_url, "SELECT to_regclass('rate_limits') IS NOT NULL") == "t" {
        let sql = guestpass::ratelimit::CHECK
            .replace("$1", "sha256(:k::text::bytea)")
            .replace("$2", "now()")
            .replace("$3", "150000000")
            .replace("$4", "900000000");
        let tps = pgbench(
            db_url,
            &format!("\\set k random(1, 100000)\n{sql};\n"),
            4,
            d,
        );
        rows.push(Row {
            name: "8b pgbench: one shared rate-limit check (its statement)".into(),
            connections: 4,
            requests: (tps * d.as_secs_f64()) as usize,
            elapsed: d,
            note: format!("{:.3} ms per check at 4 connections", 4000.0 / tps.max(1.0)),
            ..Default::default()
        });
    }
    rows
}

struct Printed(Vec<Row>);

impl Printed {
    fn push(&mut self, r: Row) {
        println!(
            "| {} | {} | {} | {:.0} | {:.1} | {:.1} | {:.1} | {} | {} | {:.0} | {} |",
            r.name,
            r.connections,
            r.requests,
            r.rps(),
            r.pct(0.50),
            r.pct(0.95),
            r.pct(0.99),
            r.errors,
            r.statements.map_or("-".into(), |s| format!("{s:.1}")),
            r.peak_rss_mb,
            if r.name.starts_with("5 ") {
                format!("{:.1} s; {}", r.elapsed.as_secs_f64(), r.note)
            } else {
                r.note.clone()
            }
        );
        self.0.push(r);
    }
}

fn main() {
    actix_rt::System::new().block_on(async_main());
}

async fn async_main() {
    let a = args();
    eprintln!("recreating guestpass_bench and seeding...");
    psql(
        &a.admin_url,
        "DROP DATABASE IF EXISTS guestpass_bench WITH (FORCE)",
    );
    let seeded = seed(&a.db_url, &[]);
    let site = seeded["siteId"].as_str().unwrap().to_string();
    let admins: Vec<String> = seeded["adminTokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    let session = seeded["sessionToken"].as_str().unwrap().to_string();
    if a.webhooks_only {
        let sink = smtp::SmtpSink::start().await;
        let server = start_server(&a.db_url, &sink.url());
        let client = awc::Client::builder()
            .timeout(Duration::from_secs(60))
            .finish();
        wait_ready(&client, &server.base).await;
        println!(
            "| scenario | conns | requests | req/s | p50 ms | p95 ms | p99 ms | errors | SQL/req | peak RSS MB | note |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|---|");
        let mut rows = Printed(Vec::new());
        for r in webhook_rows(&server, &a.db_url, &seeded, a.duration).await {
            rows.push(r);
        }
        return;
    }
    if a.login_only {
        let sink = smtp::SmtpSink::start().await;
        let server = start_server(&a.db_url, &sink.url());
        let client = awc::Client::builder()
            .timeout(Duration::from_secs(60))
            .finish();
        wait_ready(&client, &server.base).await;
        println!(
            "| scenario | conns | requests | req/s | p50 ms | p95 ms | p99 ms | errors | SQL/req | peak RSS MB | note |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|---|");
        let mut rows = Printed(Vec::new());
        for r in sign_in_rows(&server, &a.db_url, a.duration).await {
            rows.push(r);
        }
        return;
    }
    // The same organization shape, ten times larger: what a read costs must not follow the site.
    eprintln!("seeding the 100,000-user site...");
    let large = seed(
        &a.db_url,
        &[
            "--users",
            "100000",
            "--guests",
            "20000",
            "--sites",
            "3",
            "--spaces",
            "200",
            "--groups",
            "50",
            "--invites",
            "500",
            "--audit",
            "0",
            "--admins",
            "0",
        ],
    );
    let large_site = large["siteId"].as_str().unwrap().to_string();
    let large_admin = large["adminTokens"][0].as_str().unwrap().to_string();
    let sink = smtp::SmtpSink::start().await;
    let server = start_server(&a.db_url, &sink.url());
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(60))
        .finish();
    wait_ready(&client, &server.base).await;
    let (d, c) = (a.duration, a.connections);
    println!(
        "| scenario | conns | requests | req/s | p50 ms | p95 ms | p99 ms | errors | SQL/req | peak RSS MB | note |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let mut rows = Printed(Vec::new());

    // 6a. The framework's ceiling.
    let warm = run(
        &server,
        "warm-up",
        c,
        Duration::from_secs(2),
        |_| None,
        |_, _| json!({ "query": "{ __typename }" }),
    )
    .await;
    drop(warm);
    let ceiling = run(
        &server,
        "6a `{ __typename }` (ceiling)",
        c,
        d,
        |_| None,
        |_, _| json!({ "query": "{ __typename }" }),
    )
    .await;
    rows.push(ceiling);
    // 2. The cheapest authenticated request.
    let s2 = session.clone();
    rows.push(
        run(
            &server,
            "2 `me` (session)",
            c,
            d,
            move |_| Some(s2.clone()),
            |_, _| json!({ "query": "{ me { id displayName } }" }),
        )
        .await,
    );
    // 1. The admin's guest list.
    let q1 = "query($s: ID!) { guests(siteId: $s, first: 50) { totalCount edges { node { id email displayName space(siteId: $s) { key name } invitedBy { displayName } groups { name } } } } }";
    let (admin0, site1) = (admins[0].clone(), site.clone());
    rows.push(
        run(
            &server,
            "1 `guests(first: 50)` + space, invitedBy, groups",
            c,
            d,
            move |_| Some(admin0.clone()),
            move |_, _| json!({ "query": q1, "variables": { "s": site1 } }),
        )
        .await,
    );
    // 6b. The database's ceiling for scenario 1's statements.
    let script = pgbench_script(&a.db_url, &seeded);
    let tps = pgbench(&a.db_url, &script, c, d);
    rows.push(Row {
        name: "6b pgbench: scenario 1's statements (ceiling)".into(),
        connections: c,
        requests: (tps * d.as_secs_f64()) as usize,
        elapsed: d,
        note: "transactions/s of the same SQL".into(),
        ..Default::default()
    });
    // 7. The same guest list, seat usage and a lone admin's invites on the 10,000- and 100,000-user
    // sites, side by side.
    for (label, tok, st) in [
        ("10,000", admins[0].clone(), site.clone()),
        ("100,000", large_admin.clone(), large_site.clone()),
    ] {
        let (t1, s1) = (tok.clone(), st.clone());
        rows.push(
            run(
                &server,
                &format!("7 {label} users: `guests(first: 50)` (scenario 1)"),
                c,
                d,
                move |_| Some(t1.clone()),
                move |_, _| json!({ "query": q1, "variables": { "s": s1 } }),
            )
            .await,
        );
        let (t2, s2) = (tok.clone(), st.clone());
        rows.push(
            run(&server, &format!("7 {label} users: `seatUsage`"), 1, d,
                move |_| Some(t2.clone()),
                move |_, _| json!({ "query": "query($s: ID!) { seatUsage(siteId: $s) { paidUsers guests remainingSeats } }", "variables": { "s": s2 } }))
            .await,
        );
        let (t3, s3, l3) = (tok.clone(), st.clone(), label.replace(',', ""));
        rows.push(
            run(&server, &format!("7 {label} users: `inviteUsers` x10, one admin"), 1, d,
                move |_| Some(t3.clone()),
                move |w, i| {
                    let emails: Vec<String> = (0..10).map(|k| format!("s{l3}w{w}x{i}x{k}@load.example")).collect();
                    json!({ "query": "mutation($i: InviteUsersInput!) { inviteUsers(input: $i) { invites { id } } }", "variables": { "i": { "siteId": s3, "emails": emails, "role": "GUEST" } } })
                })
            .await,
        );
    }
    let script_large = pgbench_script(&a.db_url, &large);
    let tps = pgbench(&a.db_url, &script_large, c, d);
    rows.push(Row {
        name: "7 pgbench: scenario 1's statements on the 100,000-user site (ceiling)".into(),
        connections: c,
        requests: (tps * d.as_secs_f64()) as usize,
        elapsed: d,
        note: "transactions/s of the same SQL".into(),
        ..Default::default()
    });
    // 3. Invites: 8 admins in parallel, 10 addresses each, one site.
    let tokens = admins.clone();
    let q3 = "mutation($i: InviteUsersInput!) { inviteUsers(input: $i) { invites { id } } }";
    let site3 = site.clone();
    let mut r3 = run(&server, "3 `inviteUsers` x10, 8 admins", 8, d, move |w| Some(tokens[w % tokens.len()].clone()), move |w, i| {
        let emails: Vec<String> = (0..10).map(|k| format!("b{w}x{i}x{k}@load.example")).collect();
        json!({ "query": q3, "variables": { "i": { "siteId": site3, "emails": emails, "role": "GUEST" } } })
    })
    .await;
    let usage = psql(
        &a.db_url,
        &format!("SELECT user_limit FROM sites WHERE id = '{site}'"),
    );
    let r = client
        .post(format!("{}/graphql", server.base))
        .insert_header(("Authorization", format!("Bearer {}", admins[0])))
        .send_json(&json!({ "query": "query($s: ID!) { seatUsage(siteId: $s) { remainingSeats overGuestAllowanceBy } }", "variables": { "s": site } }))
        .await;
    let v: Value = r.unwrap().json().await.unwrap();
    let ok = v["data"]["seatUsage"]["remainingSeats"]
        .as_i64()
        .unwrap_or(-1)
        >= 0
        && v["data"]["seatUsage"]["overGuestAllowanceBy"] == 0;
    r3.note = format!(
        "seat rules after the run: {} (user limit {usage})",
        if ok { "held" } else { "BROKEN" }
    );
    rows.push(r3);

    // 4a. Email throughput: 10,000 invites committed at once, delivered to the sink.
    eprintln!("waiting for scenario 3's emails to drain...");
    let drain_start = Instant::now();
    while psql(
        &a.db_url,
        "SELECT count(*) FROM email_deliveries WHERE status IN ('QUEUED', 'SENDING', 'RETRYING')",
    ) != "0"
        && drain_start.elapsed() < Duration::from_secs(600)
    {
        actix_rt::time::sleep(Duration::from_millis(200)).await;
    }
    let before = sink.messages().len();
    let admin_id = psql(
        &a.db_url,
        &format!(
            "SELECT user_id FROM api_tokens WHERE token_hash = sha256('{}')",
            admins[0]
        ),
    );
    let t0 = Instant::now();
    psql(&a.db_url, &format!(
        "WITH inv AS (
           INSERT INTO invites (site_id, email, email_normalized, role, invited_by, token_nonce, status, created_at, expires_at)
           SELECT '{site}', e, e, 1, '{admin_id}', uuid_send(gen_random_uuid()), 'PENDING', now(), now() + interval '7 days'
           FROM (SELECT 'burst' || i || '@load.example' AS e FROM generate_series(1, 10000) i) x
           RETURNING id, email, token_nonce),
         d AS (
           INSERT INTO email_deliveries (organization_id, kind, invite_id, token_nonce, recipient, status, message_id, created_at, give_up_at)
           SELECT (SELECT organization_id FROM sites WHERE id = '{site}'), 'INVITE', id, token_nonce, email, 'QUEUED',
                  '<burst.' || id || '@bench>', now(), now() + interval '1 day' FROM inv
           RETURNING id)
         INSERT INTO apalis.jobs (id, job_type, job, status, attempts, max_attempts, run_at, priority)
         SELECT apalis.generate_ulid(), 'guestpass::email', convert_to(json_build_object('delivery_id', id)::text, 'UTF8'), 'Pending', 0, 10, now(), 0 FROM d"
    ));
    let committed = t0.elapsed();
    let got = sink
        .wait_for(before + 10_000, Duration::from_secs(600))
        .await
        .len()
        - before;
    let took = t0.elapsed();
    rows.push(Row {
        name: "4a email throughput: 10,000 invites".into(),
        connections: 32,
        requests: got,
        errors: 10_000 - got.min(10_000),
        elapsed: took,
        note: format!("emails/s from commit ({committed:.1?} to commit) to the last SMTP DATA"),
        peak_rss_mb: server.peak_rss_mb(),
        ..Default::default()
    });
    // 4b. Commit-to-SMTP latency at 100 invites/s.
    let before = sink.messages().len();
    // One invite every 10 ms, each on its own task, so a slow answer never lowers the rate.
    let paced = Instant::now();
    let mut n = 0;
    let q4 = "mutation($i: InviteUsersInput!) { inviteUsers(input: $i) { invites { id } } }";
    let mut tasks = Vec::new();
    while paced.elapsed() < d {
        let email = format!("paced{n}@load.example");
        let (client, url, token, site) = (
            client.clone(),
            format!("{}/graphql", server.base),
            admins[1 % admins.len()].clone(),
            site.clone(),
        );
        tasks.push(actix_rt::spawn(async move {
            let r = client
                .post(url)
                .insert_header(("Authorization", format!("Bearer {token}")))
                .send_json(&json!({ "query": q4, "variables": { "i": { "siteId": site, "emails": [email.clone()], "role": "GUEST" } } }))
                .await;
            let mut r = r.ok()?;
            let v: Value = r.json().await.ok()?;
            v["errors"].is_null().then(|| (email, Instant::now()))
        }));
        n += 1;
        let next = paced + Duration::from_millis(10 * n as u64);
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            actix_rt::time::sleep(wait).await;
        }
    }
    let mut sent_at: HashMap<String, Instant> = HashMap::new();
    for t in tasks {
        if let Ok(Some((email, at))) = t.await {
            sent_at.insert(email, at);
        }
    }
    let msgs = sink
        .wait_for(before + sent_at.len(), Duration::from_secs(60))
        .await;
    let mut r4 = Row {
        name: "4b commit-to-SMTP latency at 100 invites/s".into(),
        connections: 1,
        requests: sent_at.len(),
        elapsed: d,
        note: "latency = commit answered to SMTP DATA received".into(),
        peak_rss_mb: server.peak_rss_mb(),
        ..Default::default()
    };
    for m in &msgs[before..] {
        if let Some(t) = sent_at.get(&m.to[0]) {
            r4.latencies_us
                .push(m.at.saturating_duration_since(*t).as_micros() as u64);
        }
    }
    r4.errors = sent_at.len() - r4.latencies_us.len();
    rows.push(r4);
    for r in sign_in_rows(&server, &a.db_url, d).await {
        rows.push(r);
    }
    for r in webhook_rows(&server, &a.db_url, &seeded, d).await {
        rows.push(r);
    }
    drop(server);

    // 5. The re-verification sweep over 1,000,000 external users, 100,000 due.
    if !a.skip_large {
        eprintln!("seeding 1,000,000 external users...");
        let t = Instant::now();
        seed(
            &a.db_url,
            &[
                "--users",
                "0",
                "--guests",
                "0",
                "--sites",
                "1",
                "--spaces",
                "1",
                "--groups",
                "1",
                "--invites",
                "0",
                "--audit",
                "0",
                "--admins",
                "0",
                "--external",
                "1000000",
                "--due",
                "100000",
            ],
        );
        eprintln!("seeded in {:.1?}", t.elapsed());
        let t = Instant::now();
        let out = Command::new("/usr/bin/time")
            .args(["-f", "%M", bin(), "reverify-now"])
            .env("DATABASE_URL", &a.db_url)
            .env("GUESTPASS_LOG", "error")
            .output()
            .expect("/usr/bin/time (apt-get install time)");
        let took = t.elapsed();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let rss_kb: f64 = String::from_utf8_lossy(&out.stderr)
            .lines()
            .last()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or(0.0);
        rows.push(Row {
            name: "5 sweep: 1,000,000 external, 100,000 due".into(),
            connections: 1,
            requests: 1,
            elapsed: took,
            note: format!(
                "time to find and enqueue ({}); peak RSS of `reverify-now`",
                stdout.trim()
            ),
            peak_rss_mb: rss_kb / 1024.0,
            ..Default::default()
        });
    }

    statement_profile(&a.db_url, &script);
    eprintln!("{} scenarios measured", rows.0.len());
}

/// What the webhook scenarios' receiver got: each request's invite address (`data.email`, empty for
/// other events), when it arrived, and how long after the change it reports (`occurredAt`, the
/// server's clock on this same machine, read at the start of the change's transaction).
#[derive(Default)]
struct Hooks {
    got: std::sync::Mutex<Vec<(String, Instant, Option<Duration>)>>,
}

async fn bench_hook(
    body: actix_web::web::Bytes,
    hooks: actix_web::web::Data<std::sync::Arc<Hooks>>,
) -> actix_web::HttpResponse {
    let (at, wall) = (Instant::now(), chrono::Utc::now());
    let v: Value = serde_json::from_slice(&body).unwrap_or_default();
    let email = v["data"]["email"].as_str().unwrap_or("").to_string();
    let since = v["occurredAt"]
        .as_str()
        .and_then(|t| t.parse::<chrono::DateTime<chrono::Utc>>().ok())
        .and_then(|t| (wall - t).to_std().ok());
    hooks.got.lock().unwrap().push((email, at, since));
    actix_web::HttpResponse::NoContent().finish()
}

/// A webhook receiver on loopback (actix-web, one worker thread): answers 204 to every POST.
fn start_receiver() -> (String, std::sync::Arc<Hooks>) {
    let hooks = std::sync::Arc::new(Hooks::default());
    let data = actix_web::web::Data::new(hooks.clone());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = actix_web::HttpServer::new(move || {
        actix_web::App::new()
            .app_data(data.clone())
            .route("/hook", actix_web::web::post().to(bench_hook))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    actix_rt::spawn(server);
    (format!("http://127.0.0.1:{port}/hook"), hooks)
}

/// The webhook scenarios, 9: (a) the receiver's own rate for plain POSTs of an event-sized body
/// from the client the server sends with (reqwest, at the server's delivery concurrency): the
/// ceiling; (b, d) one admin's `inviteUsers` without and with a subscribed endpoint (what the outbox
/// adds to a change); (c) the outbox statement alone in pgbench, for an organization without
/// endpoints; (e) 10,000 deliveries committed at once, drained to the receiver: events/s; (f) an
/// invite every 20 ms, the latency from the invite's transaction to its `invite.created` webhook.
async fn webhook_rows(server: &Server, db_url: &str, seeded: &Value, d: Duration) -> Vec<Row> {
    let (url, hooks) = start_receiver();
    let site = seeded["siteId"].as_str().unwrap().to_string();
    let admin = seeded["adminTokens"][0].as_str().unwrap().to_string();
    let mut rows = Vec::new();
    let body = serde_json::to_vec(&json!({ "id": "evt_1", "type": "invite.created", "version": 1,
        "occurredAt": "2026-12-06T09:30:00Z", "organizationId": "T3JnYW5pemF0aW9uOjBiNWUwMDAwLTAwMDAtNDAwMC04MDAwLTAwMDAwMDAwMDAwMQ",
        "siteId": "U2l0ZTo1MTc1MDAwMC0wMDAwLTQwMDAtODAwMC0wMDAwMDAwMDAwMDI", "actor": { "id": "VXNlcjphZDMxMDAwMC0wMDAwLTQwMDAtODAwMC0wMDAwMDAwMDAwMDM" },
        "target": { "type": "invite", "id": "SW52aXRlOjFhNzEwMDAwLTAwMDAtNDAwMC04MDAwLTAwMDAwMDAwMDAwNQ" },
        "data": { "email": "", "role": "GUEST", "status": "PENDING", "expiresAt": "2026-12-20T09:30:00Z" } }))
    .unwrap();
    // 9a. The ceiling.
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let start = Instant::now();
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (client, url, body) = (client.clone(), url.clone(), body.clone());
            actix_rt::spawn(async move {
                let mut lat = Vec::new();
                while start.elapsed() < d {
                    let t0 = Instant::now();
                    let ok = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await
                        .is_ok_and(|r| r.status().is_success());
                    lat.push((t0.elapsed().as_micros() as u64, ok));
                }
                lat
            })
        })
        .collect();
    let mut ceiling = Row {
        name: "9a receiver: plain POSTs, reqwest, 16 at once (ceiling)".into(),
        connections: 16,
        note: "the same body size as an event, no signing, no database".into(),
        ..Default::default()
    };
    for t in tasks {
        for (us, ok) in t.await.unwrap() {
            ceiling.requests += 1;
            ceiling.errors += usize::from(!ok);
            ceiling.latencies_us.push(us);
        }
    }
    ceiling.elapsed = start.elapsed();
    rows.push(ceiling);
    hooks.got.lock().unwrap().clear();

    // 9b, 9c, 9d. What the outbox adds to a change.
    let invite_one = |label: &'static str, tag: &'static str| {
        let (t, s) = (admin.clone(), site.clone());
        run(
            server,
            label,
            1,
            d,
            move |_| Some(t.clone()),
            move |w, i| {
                json!({ "query": "mutation($i: InviteUsersInput!) { inviteUsers(input: $i) { invites { id } } }",
                    "variables": { "i": { "siteId": s, "emails": [format!("{tag}w{w}x{i}@load.example")], "role": "GUEST" } } })
            },
        )
    };
    rows.push(invite_one("9b `inviteUsers` x1, one admin, no endpoint", "hooka").await);
    let org = psql(
        db_url,
        &format!("SELECT organization_id FROM sites WHERE id = '{site}'"),
    );
    let outbox = format!(
        "INSERT INTO webhook_deliveries (endpoint_id, audit_event_id, event_type, payload, status, next_attempt_at, created_at)
         SELECT e.id, ev.audit_id, ev.event_type, ev.payload, 'PENDING', ev.created_at, ev.created_at
         FROM unnest(ARRAY['{org}']::uuid[], ARRAY[1]::bigint[], ARRAY['invite.created']::text[], ARRAY['{{}}']::text[], ARRAY[now()]::timestamptz[])
              AS ev(org, audit_id, event_type, payload, created_at)
         JOIN webhook_endpoints e ON e.organization_id = ev.org AND e.status <> 'DISABLED' AND ev.event_type = ANY (e.event_types)
         ON CONFLICT (endpoint_id, audit_event_id) DO NOTHING RETURNING id;\n"
    );
    let tps = pgbench(db_url, &outbox, 1, d);
    rows.push(Row {
        name: "9c pgbench: the outbox statement, no endpoint".into(),
        connections: 1,
        requests: (tps * d.as_secs_f64()) as usize,
        elapsed: d,
        note: format!("{:.3} ms per audited change", 1000.0 / tps),
        ..Default::default()
    });
    let register = json!({ "query": "mutation($i: CreateWebhookEndpointInput!) { createWebhookEndpoint(input: $i) { endpoint { id } } }",
        "variables": { "i": { "url": url, "events": ["INVITE_CREATED"] } } });
    let http = awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .finish();
    let v: Value = http
        .post(format!("{}/graphql", server.base))
        .insert_header(("Authorization", format!("Bearer {admin}")))
        .send_json(&register)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(v["errors"].is_null(), "{v}");
    rows.push(
        invite_one(
            "9d `inviteUsers` x1, one admin, endpoint subscribed",
            "hookb",
        )
        .await,
    );
    wait_webhooks_drained(db_url).await;

    // 9e. Throughput: 10,000 deliveries committed at once.
    hooks.got.lock().unwrap().clear();
    let t0 = Instant::now();
    psql(db_url, "WITH d AS (
           INSERT INTO webhook_deliveries (endpoint_id, audit_event_id, event_type, payload, status, next_attempt_at, created_at)
           SELECT e.id, -i, 'invite.created', '{\"id\":\"evt_' || i || '\",\"type\":\"invite.created\",\"data\":{\"email\":\"burst' || i || '@load.example\"}}', 'PENDING', now(), now()
           FROM webhook_endpoints e, generate_series(1, 10000) i
           RETURNING id)
         INSERT INTO apalis.jobs (id, job_type, job, status, attempts, max_attempts, run_at, priority)
         SELECT apalis.generate_ulid(), 'guestpass::webhook', convert_to(json_build_object('delivery_id', id)::text, 'UTF8'), 'Pending', 0, 10, now(), 0 FROM d");
    let committed = t0.elapsed();
    let drained = wait_for_hooks(&hooks, 10_000, Duration::from_secs(600)).await;
    let took = t0.elapsed();
    rows.push(Row {
        name: "9e webhook throughput: 10,000 deliveries".into(),
        connections: 16,
        requests: drained,
        errors: 10_000 - drained.min(10_000),
        elapsed: took,
        note: format!("events/s from commit ({committed:.1?} to commit) to the last received, signed and recorded"),
        peak_rss_mb: server.peak_rss_mb(),
        ..Default::default()
    });
    wait_webhooks_drained(db_url).await;

    // 9f. Change-to-receipt latency at 50 invites/s (about half of what one admin's invites sustain,
    // 9b: above it, invites wait for the site's lock and the latency is theirs, not the webhooks').
    hooks.got.lock().unwrap().clear();
    let paced = Instant::now();
    let mut tasks = Vec::new();
    let mut n = 0;
    while paced.elapsed() < d {
        let email = format!("hooked{n}@load.example");
        let (http, url, token, site) = (
            http.clone(),
            format!("{}/graphql", server.base),
            admin.clone(),
            site.clone(),
        );
        tasks.push(actix_rt::spawn(async move {
            let mut r = http
                .post(url)
                .insert_header(("Authorization", format!("Bearer {token}")))
                .send_json(&json!({ "query": "mutation($i: InviteUsersInput!) { inviteUsers(input: $i) { invites { id } } }",
                                    "variables": { "i": { "siteId": site, "emails": [email.clone()], "role": "GUEST" } } }))
                .await
                .ok()?;
            let v: Value = r.json().await.ok()?;
            v["errors"].is_null().then(|| (email, Instant::now()))
        }));
        n += 1;
        let next = paced + Duration::from_millis(20 * n as u64);
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            actix_rt::time::sleep(wait).await;
        }
    }
    let mut answered_at: HashMap<String, Instant> = HashMap::new();
    for t in tasks {
        if let Ok(Some((email, at))) = t.await {
            answered_at.insert(email, at);
        }
    }
    wait_for_hooks(&hooks, answered_at.len(), Duration::from_secs(60)).await;
    let mut r = Row {
        name: "9f change-to-receipt latency at 50 invites/s".into(),
        connections: 1,
        requests: answered_at.len(),
        elapsed: d,
        peak_rss_mb: server.peak_rss_mb(),
        ..Default::default()
    };
    let (mut before_answer, mut after_answer) = (0, Vec::new());
    for (email, at, since) in hooks.got.lock().unwrap().iter() {
        if let (Some(t), Some(since)) = (answered_at.get(email), since) {
            r.latencies_us.push(since.as_micros() as u64);
            match at.checked_duration_since(*t) {
                Some(after) => after_answer.push(after.as_micros() as u64),
                None => before_answer += 1,
            }
        }
    }
    after_answer.sort_unstable();
    let p50_after = after_answer
        .get(after_answer.len() / 2)
        .map_or(0.0, |us| *us as f64 / 1000.0);
    r.note = format!(
        "latency = the change's transaction (`occurredAt`) to the webhook received; {before_answer} of {} arrived before the API's answer did, the rest {p50_after:.1} ms (p50) after it",
        r.latencies_us.len()
    );
    r.errors = answered_at.len() - r.latencies_us.len();
    rows.push(r);
    rows
}

async fn wait_for_hooks(hooks: &Hooks, n: usize, within: Duration) -> usize {
    let start = Instant::now();
    loop {
        let got = hooks.got.lock().unwrap().len();
        if got >= n || start.elapsed() > within {
            return got;
        }
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_webhooks_drained(db_url: &str) {
    let start = Instant::now();
    while psql(
        db_url,
        "SELECT count(*) FROM webhook_deliveries WHERE status IN ('PENDING', 'RETRYING')",
    ) != "0"
        && start.elapsed() < Duration::from_secs(600)
    {
        actix_rt::time::sleep(Duration::from_millis(200)).await;
    }
}
