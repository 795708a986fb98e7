//! The re-verification sweep over a large population: it works in batches, so memory stays bounded.
//! The process's peak memory is reset when it starts (`/proc/self/clear_refs`), and no other test runs
//! meanwhile (`serially`), so the peak measured is this test's alone.

use crate::common::*;
use guestpass::domain::status::SweepTrigger;
use std::time::Instant;

fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb / 1024.0
}

#[actix_rt::test]
async fn a_sweep_over_100_000_external_users_stays_small() {
    let _serial = crate::serially().await;
    // Earlier tests of this binary do not count: start the peak from what the process holds now.
    std::fs::write("/proc/self/clear_refs", "5").expect("reset the peak RSS");
    let app = spawn_app_with(AppOptions {
        workers: false,
        ..Default::default()
    })
    .await;
    // 100,000 external users: 10,000 whose 30-day period ended, 90,000 verified recently.
    app.db.execute(&format!(
        "INSERT INTO users (organization_id, email, email_normalized, display_name, created_at, verified_at)
         SELECT '{org}', 'u' || i || '@partner.example', 'u' || i || '@partner.example', 'User ' || i,
                now() - interval '40 days',
                CASE WHEN i % 10 = 0 THEN NULL ELSE now() - interval '1 day' END
         FROM generate_series(1, 100000) i;
         ANALYZE users;",
        org = app.org_id
    ));
    let start = Instant::now();
    let domain = "guestpass.test".to_string();
    let now = app.clock.now();
    let emailed = app
        .state
        .db
        .run(move |c| {
            guestpass::store::external::sweep(c, SweepTrigger::Manual, None, &domain, now)
        })
        .await
        .unwrap();
    let elapsed = start.elapsed();
    assert_eq!(emailed, 10_000);
    assert_eq!(
        app.db
            .scalar_i64("SELECT count(*) FROM email_deliveries WHERE kind = 'REVERIFY'"),
        10_000
    );
    assert_eq!(
        app.db
            .scalar_i64("SELECT count(*) FROM apalis.jobs WHERE job_type = 'guestpass::email'"),
        10_000
    );
    // Once per period: a second sweep finds nobody.
    let now = app.clock.now();
    let again = app
        .state
        .db
        .run(move |c| {
            guestpass::store::external::sweep(c, SweepTrigger::Manual, None, "guestpass.test", now)
        })
        .await
        .unwrap();
    assert_eq!(again, 0);
    let peak = peak_rss_mb();
    eprintln!("sweep of 100,000 (10,000 due): {elapsed:?}, peak RSS {peak:.0} MB");
    assert!(peak < 150.0, "peak RSS {peak:.0} MB");
    app.stop().await;
}
