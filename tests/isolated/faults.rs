//! Faults: the database going away and coming back, and a worker process killed mid-batch.

use crate::common::smtp::SmtpSink;
use crate::common::*;
use serde_json::json;
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// A PostgreSQL cluster of the test's own, so stopping it disturbs no other test.
/// `initdb` refuses to run as root, so as root the cluster runs as the `postgres` user.
struct PrivatePg {
    dir: PathBuf,
    port: u16,
}

fn pg_bin(name: &str) -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server binaries in /usr/lib/postgresql (apt-get install postgresql)")
        .map(|e| e.unwrap().path())
        .collect();
    versions.sort();
    versions.last().unwrap().join("bin").join(name)
}

fn as_owner(args: &[&str]) -> Command {
    let root = unsafe { libc_geteuid() } == 0;
    let mut c = if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]);
        c.args(args);
        c
    } else {
        let mut c = Command::new(args[0]);
        c.args(&args[1..]);
        c
    };
    c.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    c
}

unsafe extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

impl PrivatePg {
    fn start_new() -> Self {
        let dir = std::env::temp_dir().join(format!("gp-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        if unsafe { libc_geteuid() } == 0 {
            assert!(
                Command::new("chown")
                    .args(["postgres:postgres", dir.to_str().unwrap()])
                    .status()
                    .unwrap()
                    .success()
            );
        }
        let initdb = pg_bin("initdb");
        let ok = as_owner(&[
            initdb.to_str().unwrap(),
            "-D",
            dir.join("data").to_str().unwrap(),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
        ])
        .status()
        .unwrap();
        assert!(ok.success(), "initdb failed");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let pg = Self { dir, port };
        pg.start();
        pg
    }

    fn url(&self, db: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{db}?sslmode=disable",
            self.port
        )
    }

    fn start(&self) {
        let pg_ctl = pg_bin("pg_ctl");
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.display()
        );
        let ok = as_owner(&[
            pg_ctl.to_str().unwrap(),
            "-D",
            self.dir.join("data").to_str().unwrap(),
            "-o",
            &opts,
            "-l",
            self.dir.join("log").to_str().unwrap(),
            "-w",
            "start",
        ])
        .status()
        .unwrap();
        assert!(ok.success(), "pg_ctl start failed");
    }

    fn stop(&self) {
        let pg_ctl = pg_bin("pg_ctl");
        let _ = as_owner(&[
            pg_ctl.to_str().unwrap(),
            "-D",
            self.dir.join("data").to_str().unwrap(),
            "-m",
            "immediate",
            "-w",
            "stop",
        ])
        .status();
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn readyz(client: &awc::Client, base: &str) -> u16 {
    match client
        .get(format!("{base}/readyz"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
    {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

async fn wait_ready(client: &awc::Client, base: &str, want: u16, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        if readyz(client, base).await == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "/readyz did not answer {want} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[actix_rt::test]
async fn readiness_follows_the_database_without_a_restart() {
    let _serial = crate::serially().await;
    let pg = PrivatePg::start_new();
    let mut config = guestpass::config::Config::defaults();
    config.database_url = pg.url("guestpass");
    config.secret = Some(guestpass::config::Secret(
        "test-secret-test-secret-test-secret-0123".into(),
    ));
    config.db_pool_size = 4;
    let mut run = guestpass::app::RunOptions::from_config(&config);
    run.workers = false;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let app = guestpass::app::start(config, run, Default::default(), Some(listener))
        .await
        .unwrap();
    let base = format!("http://127.0.0.1:{}", app.port.unwrap());
    let token = app
        .state
        .db
        .run(|c| {
            guestpass::store::org::bootstrap(
                c,
                guestpass::store::org::BootstrapInput {
                    org_name: "Acme".into(),
                    site_name: "Docs".into(),
                    admin_email: guestpass::domain::EmailAddress::parse("admin@acme.example")
                        .unwrap(),
                    user_limit: None,
                    verified_domains: vec![],
                },
                chrono::Utc::now(),
            )
        })
        .await
        .unwrap()
        .api_token;
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .finish();
    let me = |client: awc::Client, base: String, token: String| async move {
        let mut r = client
            .post(format!("{base}/graphql"))
            .insert_header(("Authorization", format!("Bearer {token}")))
            .send_json(&json!({ "query": "{ me { email } }" }))
            .await
            .unwrap();
        r.json::<serde_json::Value>().await.unwrap()
    };
    assert_eq!(readyz(&client, &base).await, 200);
    assert_eq!(
        me(client.clone(), base.clone(), token.clone()).await["data"]["me"]["email"],
        "admin@acme.example"
    );

    pg.stop();
    let took = wait_ready(&client, &base, 503, Duration::from_secs(10)).await;
    assert!(
        took < Duration::from_secs(5),
        "readyz took {took:?} to notice"
    );
    // Who a token belongs to may be answered from a one-second cache: wait it out.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let res = me(client.clone(), base.clone(), token.clone()).await;
    let code = res["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(code == "UNAVAILABLE", "{res}");
    let text = res.to_string().to_lowercase();
    assert!(
        !text.contains("sql") && !text.contains("connection refused") && !text.contains("postgres"),
        "{res}"
    );

    pg.start();
    wait_ready(&client, &base, 200, Duration::from_secs(15)).await;
    // requests work again, on fresh connections, without restarting Guestpass
    let start = Instant::now();
    loop {
        let res = me(client.clone(), base.clone(), token.clone()).await;
        if res["data"]["me"]["email"] == "admin@acme.example" {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "still failing: {res}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.stop().await;
}

struct Worker(Child);

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn worker_process(app: &TestApp, smtp_url: &str) -> Worker {
    Worker(
        Command::new(env!("CARGO_BIN_EXE_guestpass"))
            .args(["serve", "--workers-only"])
            .env("DATABASE_URL", &app.db.url)
            .env(
                "GUESTPASS_SECRET",
                "test-secret-test-secret-test-secret-0123",
            )
            .env("GUESTPASS_SMTP_URL", smtp_url)
            .env("GUESTPASS_PUBLIC_URL", &app.address)
            .env("GUESTPASS_WORKER_HEARTBEAT_SECS", "1")
            .env("GUESTPASS_EMAIL_CONCURRENCY", "4")
            .env("GUESTPASS_LOG", "error")
            .spawn()
            .unwrap(),
    )
}

#[actix_rt::test]
async fn a_worker_killed_mid_batch_leaves_no_email_unsent() {
    let _serial = crate::serially().await;
    let sink = SmtpSink::start().await;
    let app = spawn_app_with(AppOptions {
        smtp_url: Some(sink.url()),
        workers: false,
        user_limit: 300,
        ..Default::default()
    })
    .await;
    data(app.admin("mutation($s: ID!) { updateSiteSettings(input: { siteId: $s, guestRatio: 300 }) { site { id } } }", json!({ "s": app.site_id })).await);
    let mut all = Vec::new();
    for batch in 0..20 {
        let emails: Vec<String> = (0..10)
            .map(|i| format!("k{batch}x{i}@partner.example"))
            .collect();
        data(
            app.admin(
                INVITE,
                json!({ "input": { "siteId": app.site_id, "emails": emails, "role": "GUEST" } }),
            )
            .await,
        );
        all.extend(emails);
    }
    let mut first = worker_process(&app, &sink.url());
    sink.wait_for(20, Duration::from_secs(30)).await;
    first.0.kill().unwrap(); // SIGKILL
    let _ = first.0.wait();
    let sent_before_kill = sink.messages().len();
    assert!(
        sent_before_kill < 200,
        "the batch finished before the kill; nothing was tested"
    );

    let _second = worker_process(&app, &sink.url());
    let start = Instant::now();
    loop {
        let got: std::collections::HashSet<String> =
            sink.messages().iter().flat_map(|m| m.to.clone()).collect();
        if all.iter().all(|e| got.contains(e)) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{} of 200 addresses got their email",
            got.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.drain_jobs(Duration::from_secs(30)).await;
    // duplicates can only come from the kill, and carry the same Message-ID
    let msgs = sink.messages();
    let mut by_address: std::collections::HashMap<String, Vec<String>> = Default::default();
    for m in &msgs {
        by_address
            .entry(m.to[0].clone())
            .or_default()
            .push(m.header("Message-ID").unwrap());
    }
    let duplicates: usize = by_address.values().map(|v| v.len() - 1).sum();
    // The kill left the maintained access state what the grants say.
    assert_eq!(app.db.check_access(), Vec::<String>::new());
    for (addr, ids) in &by_address {
        assert!(
            ids.iter().all(|i| i == &ids[0]),
            "{addr} got different messages: {ids:?}"
        );
    }
    assert!(
        duplicates <= 4,
        "{duplicates} duplicates; at most the killed worker's in-flight sends (concurrency 4)"
    );
    assert_eq!(
        app.db
            .scalar_i64("SELECT count(*) FROM email_deliveries WHERE status <> 'SENT'"),
        0
    );
    eprintln!("killed after {sent_before_kill} emails; duplicates: {duplicates}");
}

/// A full `serve` process (API, workers, scheduler) on its own port.
fn replica(db_url: &str, smtp_url: &str, port: u16) -> Worker {
    Worker(
        Command::new(env!("CARGO_BIN_EXE_guestpass"))
            .arg("serve")
            .env("DATABASE_URL", db_url)
            .env("GUESTPASS_BIND", format!("127.0.0.1:{port}"))
            .env("GUESTPASS_PUBLIC_URL", format!("http://127.0.0.1:{port}"))
            .env(
                "GUESTPASS_SECRET",
                "test-secret-test-secret-test-secret-0123",
            )
            .env("GUESTPASS_SMTP_URL", smtp_url)
            .env("GUESTPASS_WORKER_HEARTBEAT_SECS", "1")
            .env("GUESTPASS_EMAIL_CONCURRENCY", "4")
            .env("GUESTPASS_EMAIL_RETRY_BASE_MS", "200")
            .env("GUESTPASS_RECIPIENT_COOLDOWN_SECS", "0")
            .env("GUESTPASS_INVITES_PER_ADMIN_PER_DAY", "1000000")
            .env("GUESTPASS_DB_POOL_SIZE", "6")
            .env("GUESTPASS_LOG", "error")
            .spawn()
            .unwrap(),
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Mixed load on two replicas while Postgres restarts and one replica is killed: every committed
/// invite's email arrives (a duplicate only from the killed replica, with the same Message-ID), the seat
/// rules hold, and errors stop within 5 s of Postgres coming back.
#[actix_rt::test]
async fn the_fault_run() {
    let _serial = crate::serially().await;
    let pg = PrivatePg::start_new();
    let sink = SmtpSink::start().await;
    let url = pg.url("guestpass");
    let out = Command::new(env!("CARGO_BIN_EXE_guestpass"))
        .args([
            "bootstrap",
            "--org",
            "Acme",
            "--site",
            "Docs",
            "--admin-email",
            "admin@acme.example",
            "--user-limit",
            "100000",
        ])
        .env("DATABASE_URL", &url)
        .env("GUESTPASS_LOG", "error")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let token = stdout.lines().last().unwrap().to_string();
    let site = stdout
        .lines()
        .find(|l| l.starts_with("site:"))
        .and_then(|l| l.split('(').nth(1))
        .unwrap()
        .trim_end_matches(')')
        .to_string();
    let ports = [free_port(), free_port()];
    let _survivor = replica(&url, &sink.url(), ports[0]);
    let mut victim = replica(&url, &sink.url(), ports[1]);
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(5))
        .finish();
    for p in ports {
        wait_ready(
            &client,
            &format!("http://127.0.0.1:{p}"),
            200,
            Duration::from_secs(60),
        )
        .await;
    }

    let start = Instant::now();
    let outage = std::sync::Arc::new(std::sync::Mutex::new((None::<Duration>, None::<Duration>)));
    let killed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = (0..8).map(|w| {
        let (client, token, site, killed) = (client.clone(), token.clone(), site.clone(), killed.clone());
        async move {
            let mut results = Vec::new();
            let mut i = 0;
            while start.elapsed() < Duration::from_secs(14) {
                i += 1;
                let to_victim = w % 2 == 1 && !killed.load(std::sync::atomic::Ordering::SeqCst);
                let port = if to_victim { ports[1] } else { ports[0] };
                let email = format!("w{w}n{i}@partner.example");
                let body = if i % 3 == 0 {
                    json!({ "query": "{ me { id } }" })
                } else {
                    json!({ "query": INVITE, "variables": { "input": { "siteId": site, "emails": [email], "role": "USER" } } })
                };
                let res = client
                    .post(format!("http://127.0.0.1:{port}/graphql"))
                    .insert_header(("Authorization", format!("Bearer {token}")))
                    .send_json(&body)
                    .await;
                let outcome = match res {
                    Ok(mut r) => match r.json::<serde_json::Value>().await {
                        Ok(v) if v["errors"].is_null() => Ok(()),
                        Ok(v) => Err(v["errors"][0]["extensions"]["code"].as_str().unwrap_or("?").to_string()),
                        Err(_) => Err("BAD_BODY".to_string()),
                    },
                    Err(_) => Err("NO_RESPONSE".to_string()),
                };
                results.push((start.elapsed(), to_victim, outcome));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            results
        }
    });
    let chaos = {
        let (pg, outage, killed) = (&pg, outage.clone(), killed.clone());
        async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            outage.lock().unwrap().0 = Some(start.elapsed());
            pg.stop();
            tokio::time::sleep(Duration::from_secs(2)).await;
            pg.start();
            outage.lock().unwrap().1 = Some(start.elapsed());
            tokio::time::sleep(Duration::from_secs(5)).await;
            killed.store(true, std::sync::atomic::Ordering::SeqCst);
            victim.0.kill().unwrap(); // SIGKILL, mid-batch
            let _ = victim.0.wait();
        }
    };
    let (results, ()) =
        futures_util::future::join(futures_util::future::join_all(load), chaos).await;
    let results: Vec<_> = results.into_iter().flatten().collect();
    let (down, back) = *outage.lock().unwrap();
    let back = back.unwrap();
    let errors_during = results
        .iter()
        .filter(|(t, _, o)| o.is_err() && *t >= down.unwrap() && *t <= back)
        .count();
    // Errors from live replicas stop within 5 s of Postgres coming back.
    let late: Vec<_> = results
        .iter()
        .filter(|(t, to_victim, o)| o.is_err() && *t > back + Duration::from_secs(5) && !to_victim)
        .collect();
    assert!(late.is_empty(), "errors after recovery: {late:?}");
    assert!(
        errors_during > 0,
        "the outage was not noticed: nothing was tested"
    );
    for (_, _, o) in &results {
        if let Err(code) = o {
            assert!(
                ["UNAVAILABLE", "NO_RESPONSE", "BAD_BODY", "INTERNAL"].contains(&code.as_str()),
                "unexpected refusal {code}"
            );
        }
    }

    // Every committed invite's email arrives; duplicates only from the killed replica, same Message-ID.
    let mut conn = diesel::PgConnection::establish(&url).unwrap();
    use diesel::prelude::*;
    let committed: Vec<String> = guestpass::db::schema::invites::table
        .select(guestpass::db::schema::invites::email_normalized)
        .load(&mut conn)
        .unwrap();
    let ok_invites = results.iter().filter(|(_, _, o)| o.is_ok()).count();
    assert!(
        committed.len() >= ok_invites * 2 / 3 / 2,
        "{} committed",
        committed.len()
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got: std::collections::HashSet<String> =
            sink.messages().iter().flat_map(|m| m.to.clone()).collect();
        let missing = committed.iter().filter(|e| !got.contains(*e)).count();
        if missing == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} of {} committed invites got no email",
            committed.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut by_address: std::collections::HashMap<String, Vec<String>> = Default::default();
    for m in sink.messages() {
        by_address
            .entry(m.to[0].clone())
            .or_default()
            .push(m.header("Message-ID").unwrap());
    }
    let duplicates: usize = by_address.values().map(|v| v.len() - 1).sum();
    for (addr, ids) in &by_address {
        assert!(
            ids.iter().all(|i| i == &ids[0]),
            "{addr} got different messages: {ids:?}"
        );
    }
    assert!(duplicates <= 4, "{duplicates} duplicates");
    // The seat rules hold.
    let over: i64 = diesel::select(diesel::dsl::sql::<diesel::sql_types::BigInt>(
        "(SELECT count(*) FROM invites WHERE status = 'PENDING') + (SELECT count(*) FROM product_roles) - (SELECT user_limit FROM sites LIMIT 1)",
    ))
    .get_result(&mut conn)
    .unwrap();
    assert!(over <= 0);
    eprintln!(
        "fault run: {} requests, {} errors during the outage, {} invites committed, {} duplicates",
        results.len(),
        errors_during,
        committed.len(),
        duplicates
    );
}
