//! Benchmark (not a timed test; run explicitly): commit-to-SMTP latency of invite emails.
//!
//! `cargo test --release --test api email_latency -- --ignored --nocapture`
//! Invites one guest at a time (each commit followed by its email job) and measures from the
//! mutation's response (the commit has happened) to the SMTP sink receiving the message.

use crate::common::smtp::SmtpSink;
use crate::common::*;
use serde_json::json;
use std::time::{Duration, Instant};

#[actix_rt::test]
#[ignore = "benchmark: run with --ignored --nocapture"]
async fn commit_to_smtp_latency() {
    let sink = SmtpSink::start().await;
    let app = spawn_app_with(AppOptions {
        smtp_url: Some(sink.url()),
        user_limit: 10_000,
        ..Default::default()
    })
    .await;
    data(app.admin("mutation($s: ID!) { updateSiteSettings(input: { siteId: $s, guestRatio: 1000 }) { site { id } } }", json!({ "s": app.site_id })).await);
    let n = 200;
    let mut lat = Vec::with_capacity(n);
    for i in 0..n {
        let email = format!("lat{i}@partner.example");
        data(
            app.admin(
                INVITE,
                json!({ "input": { "siteId": app.site_id, "emails": [email], "role": "GUEST" } }),
            )
            .await,
        );
        let committed = Instant::now();
        sink.wait_for(i + 1, Duration::from_secs(10)).await;
        let got = sink.messages()[i].at;
        lat.push(got.saturating_duration_since(committed));
        tokio::time::sleep(Duration::from_millis(10)).await; // ~100 invites/s, each from an idle worker
    }
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    eprintln!(
        "commit-to-SMTP (message received by the sink) over {n} invites: p50 {:?}, p95 {:?}, p99 {:?}, max {:?}",
        pct(0.50),
        pct(0.95),
        pct(0.99),
        lat[lat.len() - 1]
    );
}
