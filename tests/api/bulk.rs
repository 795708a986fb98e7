//! Bulk invites by CSV upload and the guest export: every row checked first, valid rows invited one at
//! a time by a background job under the rules of `inviteUsers`, a result per row; the export's columns,
//! escaping and access.

use crate::common::*;
use guestpass::domain::ProductRole;
use serde_json::{Value, json};
use std::time::Duration;

const STATUS: &str = "query($b: ID!, $s: BulkRowStatus) { bulkInvite(id: $b) { status totalRows pendingRows invitedRows refusedRows invalidRows finishedAt rows(status: $s, first: 100) { totalCount edges { node { line email status code message inviteId } } } } }";

async fn upload(app: &TestApp, token: Option<&str>, site: &str, csv: &[u8]) -> (u16, Value) {
    app.upload_invites(token, site, csv).await
}

/// Polls `bulkInvite` until its job is done.
async fn finished(app: &TestApp, id: &str, status: Option<&str>) -> Value {
    let start = std::time::Instant::now();
    loop {
        let r = data(app.admin(STATUS, json!({ "b": id, "s": status })).await);
        if r["bulkInvite"]["status"] == "DONE" {
            return r["bulkInvite"].clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "bulk invite not done: {r}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn lines(rows: &Value) -> Vec<(i64, String)> {
    rows["rows"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["node"]["line"].as_i64().unwrap(),
                e["node"]["code"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[actix_rt::test]
async fn ninety_five_rows_with_three_bad_ones_make_ninety_two_invites_and_name_the_three() {
    let app = spawn_app().await;
    app.add_user("paid@acme.example", Some(ProductRole::User))
        .await;
    app.set_limits(Some(100), Some(100)).await;
    app.create_space("DOCS").await;
    app.create_group("Partners").await;
    let mut csv = String::from("email,role,space key,group names,personal message\n");
    for i in 0..95 {
        let row = match i {
            10 => "not-an-address,GUEST,DOCS,,\n".to_string(),
            40 => "owner@partner.example,OWNER,,,\n".to_string(),
            70 => "lost@partner.example,GUEST,NOPE,,\n".to_string(),
            i if i % 2 == 0 => format!("g{i}@partner.example,GUEST,DOCS,,\"Hi, welcome\"\n"),
            i => format!("g{i}@partner.example,GUEST,,Partners,\n"),
        };
        csv.push_str(&row);
    }
    let (status, body) = upload(&app, Some(&app.admin_token), &app.site_id, csv.as_bytes()).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["totalRows"], 95);
    assert_eq!(body["validRows"], 92);
    let refused: Vec<(i64, &str)> = body["invalidRows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["line"].as_i64().unwrap(), r["code"].as_str().unwrap()))
        .collect();
    // Line numbers as a spreadsheet shows them: the header is line 1.
    assert_eq!(
        refused,
        vec![
            (12, "INVALID_EMAIL"),
            (42, "INVALID_INPUT"),
            (72, "NOT_FOUND")
        ]
    );

    let id = body["id"].as_str().unwrap();
    let done = finished(&app, id, Some("INVALID")).await;
    assert_eq!(done["invitedRows"], 92);
    assert_eq!(done["refusedRows"], 0);
    assert_eq!(done["invalidRows"], 3);
    assert_eq!(done["pendingRows"], 0);
    assert!(done["finishedAt"].is_string());
    assert_eq!(
        lines(&done),
        vec![
            (12, "INVALID_EMAIL".to_string()),
            (42, "INVALID_INPUT".to_string()),
            (72, "NOT_FOUND".to_string())
        ]
    );
    let messages: Vec<&str> = done["rows"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["message"].as_str().unwrap())
        .collect();
    assert!(messages[1].contains("OWNER"), "{messages:?}");
    assert!(messages[2].contains("NOPE"), "{messages:?}");
    assert_eq!(
        app.db
            .scalar_i64("SELECT count(*) FROM invites WHERE status = 'PENDING'"),
        92
    );
    // Each invite carries what its row said, is the uploader's, and has its email queued.
    assert_eq!(
        app.db.scalar_i64(
            "SELECT count(*) FROM invites i JOIN spaces s ON s.id = i.space_id
             WHERE s.key = 'DOCS' AND i.personal_message = 'Hi, welcome'"
        ),
        45
    );
    assert_eq!(app.db.scalar_i64("SELECT count(*) FROM invite_groups"), 47);
    assert_eq!(
        app.db.scalar_i64(&format!(
            "SELECT count(*) FROM invites WHERE invited_by = '{}'",
            app.admin_id
        )),
        92
    );
    assert_eq!(
        app.db
            .scalar_i64("SELECT count(*) FROM email_deliveries WHERE kind = 'INVITE'"),
        92
    );
    let invited = data(app.admin(STATUS, json!({ "b": id, "s": "INVITED" })).await);
    let first = &invited["bulkInvite"]["rows"]["edges"][0]["node"];
    assert_eq!(first["line"], 2);
    assert_eq!(first["email"], "g0@partner.example");
    assert!(first["inviteId"].is_string());
    assert_eq!(invited["bulkInvite"]["rows"]["totalCount"], 92);
    app.drain_jobs(Duration::from_secs(60)).await;
}

#[actix_rt::test]
async fn a_file_past_the_guest_allowance_invites_exactly_up_to_it_and_refuses_the_rest() {
    let app = spawn_app_with(AppOptions {
        workers: false,
        ..Default::default()
    })
    .await;
    app.add_user("paid@acme.example", Some(ProductRole::User))
        .await;
    app.set_limits(Some(100), Some(5)).await;
    let slots = app.seats().await["remainingGuestSlots"].as_i64().unwrap();
    assert!(slots >= 5, "{slots}");
    let mut csv = String::from("email,role\n");
    for i in 0..slots + 5 {
        csv.push_str(&format!("g{i}@partner.example,GUEST\n"));
    }
    let (status, body) = upload(&app, Some(&app.admin_token), &app.site_id, csv.as_bytes()).await;
    assert_eq!(status, 202, "{body}");
    let id = uuid_of(body["id"].as_str().unwrap());

    // Two workers on the same file at once: rows are taken one at a time, never twice.
    let run = |app: &TestApp| {
        let st = app.state.clone();
        async move {
            loop {
                let policy = st.delivery.clone();
                let now = st.clock.now();
                let step = st
                    .db
                    .run(move |c| guestpass::store::bulk::step(c, id, &policy, now))
                    .await
                    .unwrap();
                if step == guestpass::store::bulk::Step::Done {
                    return;
                }
            }
        }
    };
    futures_util::future::join(run(&app), run(&app)).await;

    let done = finished(&app, &id.to_string(), Some("REFUSED")).await;
    assert_eq!(done["invitedRows"], slots);
    assert_eq!(done["refusedRows"], 5);
    let refused = lines(&done);
    assert_eq!(
        refused,
        (slots + 2..=slots + 6)
            .map(|l| (l, "GUEST_LIMIT_REACHED".to_string()))
            .collect::<Vec<_>>()
    );
    assert_eq!(app.db.scalar_i64("SELECT count(*) FROM invites"), slots);
    let seats = app.seats().await;
    assert_eq!(seats["remainingGuestSlots"], 0, "{seats}");
}

#[actix_rt::test]
async fn an_unusable_upload_is_refused_whole_and_writes_nothing() {
    let app = spawn_app_with(AppOptions {
        workers: false,
        ..Default::default()
    })
    .await;
    let paid = app
        .add_user("paid@acme.example", Some(ProductRole::User))
        .await;
    let paid = app.session_for(&paid).await;
    let good: &[u8] = b"email,role\na@partner.example,GUEST\n";
    /// Token, site, file, expected status and code.
    type Case<'a> = (Option<&'a str>, String, &'a [u8], u16, &'a str);
    let cases: Vec<Case> = vec![
        (None, app.site_id.clone(), good, 401, "UNAUTHENTICATED"),
        (Some(&paid), app.site_id.clone(), good, 403, "FORBIDDEN"),
        (
            Some(&app.admin_token),
            uuid::Uuid::new_v4().to_string(),
            good,
            404,
            "NOT_FOUND",
        ),
        (
            Some(&app.admin_token),
            app.site_id.clone(),
            b"name,role\nx,GUEST\n",
            400,
            "INVALID_INPUT",
        ),
        (
            Some(&app.admin_token),
            app.site_id.clone(),
            b"email,role\n\xff\xfe@partner.example,GUEST\n",
            400,
            "INVALID_INPUT",
        ),
        (
            Some(&app.admin_token),
            app.site_id.clone(),
            b"",
            400,
            "INVALID_INPUT",
        ),
    ];
    for (token, site, csv, status, code) in cases {
        let (s, body) = upload(&app, token, &site, csv).await;
        assert_eq!(
            (s, body["errors"][0]["extensions"]["code"].as_str()),
            (status, Some(code)),
            "{body}"
        );
        assert!(!body.to_string().contains("SELECT"), "{body}");
    }
    // A form upload is answered with what to do instead.
    let mut res = app
        .client()
        .post(format!(
            "{}/admin/invites.csv?siteId={}",
            app.address, app.site_id
        ))
        .insert_header(("Authorization", format!("Bearer {}", app.admin_token)))
        .insert_header(("Content-Type", "multipart/form-data; boundary=x"))
        .send_body("--x--")
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 415);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body["errors"][0]["extensions"]["code"],
        "UNSUPPORTED_MEDIA_TYPE"
    );
    assert_eq!(app.db.scalar_i64("SELECT count(*) FROM bulk_invites"), 0);
    assert_eq!(app.db.scalar_i64("SELECT count(*) FROM apalis.jobs"), 0);
}

#[actix_rt::test]
async fn the_guest_export_lists_guests_and_open_invites_with_formulas_defused() {
    let sink = SmtpSink::start().await;
    let app = spawn_app_with(AppOptions {
        smtp_url: Some(sink.url()),
        ..Default::default()
    })
    .await;
    let paid = app
        .add_user("paid@acme.example", Some(ProductRole::User))
        .await;
    let space = app.create_space("DOCS").await;
    let (guest, session) = app
        .emailed_guest(&sink, "grace@partner.example", json!({ "spaceId": space }))
        .await;
    // A name that a spreadsheet would run as a formula.
    app.db.execute(&format!(
        "UPDATE users SET display_name = '=HYPERLINK(\"http://evil.example\")' WHERE id = '{guest}'"
    ));
    data(
        app.admin(
            "mutation($i: SetSponsorInput!) { setSponsor(input: $i) { sponsorId } }",
            json!({ "i": { "siteId": app.site_id, "userId": guest, "sponsorId": paid } }),
        )
        .await,
    );
    data(app.invite(&["+pending@partner.example"], "GUEST").await);
    data(app.invite(&["colleague@partner.example"], "USER").await);

    let get = |token: Option<String>| {
        let mut req = app.client().get(format!(
            "{}/admin/guests.csv?siteId={}",
            app.address, app.site_id
        ));
        if let Some(t) = token {
            req = req.insert_header(("Authorization", format!("Bearer {t}")));
        }
        req.send()
    };
    let mut res = get(Some(app.admin_token.clone())).await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert!(
        res.headers()
            .get("content-type")
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let body = String::from_utf8(res.body().await.unwrap().to_vec()).unwrap();
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(
        header,
        [
            "email",
            "name",
            "status",
            "space",
            "sponsor",
            "invited by",
            "accepted at",
            "access ends",
            "last active",
            "email delivery"
        ]
    );
    let rows: Vec<Vec<String>> = reader
        .records()
        .map(|r| r.unwrap().iter().map(String::from).collect())
        .collect();
    assert_eq!(rows.len(), 2, "the paid invite is not a guest: {rows:?}");
    // In email order: `+pending` sorts before `grace`.
    let (pending, grace) = (&rows[0], &rows[1]);
    assert_eq!(grace[0], "grace@partner.example");
    assert_eq!(grace[1], "'=HYPERLINK(\"http://evil.example\")");
    assert_eq!(grace[2], "ACTIVE");
    assert_eq!(grace[3], "Space DOCS (DOCS)");
    assert_eq!(grace[4], "paid@acme.example");
    assert_eq!(grace[5], "admin@acme.example");
    assert!(grace[6].ends_with('Z'), "{grace:?}");
    assert_eq!(grace[9], "SENT");
    assert_eq!(pending[0], "'+pending@partner.example");
    assert_eq!(pending[2], "INVITED");
    assert!(pending[6].is_empty());

    for (token, status) in [
        (Some(app.session_for(&paid).await), 403),
        (Some(session), 403),
        (None, 401),
    ] {
        let res = get(token).await.unwrap();
        assert_eq!(res.status().as_u16(), status);
    }
    app.drain_jobs(Duration::from_secs(30)).await;
}

/// Runs a bulk invite's job to the end in this test (the app runs no workers).
async fn run_job(app: &TestApp, id: &str) {
    let id = uuid_of(id);
    loop {
        let (policy, now) = (app.state.delivery.clone(), app.state.clock.now());
        let step = app
            .state
            .db
            .run(move |c| guestpass::store::bulk::step(c, id, &policy, now))
            .await
            .unwrap();
        if step == guestpass::store::bulk::Step::Done {
            return;
        }
    }
}

#[actix_rt::test]
async fn a_site_admins_file_cannot_grant_groups_with_roles_on_other_sites() {
    let app = spawn_app_with(AppOptions {
        workers: false,
        ..Default::default()
    })
    .await;
    let site2 = app.add_site("Second");
    let elsewhere = app.create_group("Second site admins").await;
    app.set_group_role(&elsewhere, &site2, Some("PRODUCT_ADMIN"))
        .await;
    let local = app.create_group("Docs editors").await;
    app.set_group_role(&local, &app.site_id, Some("USER")).await;
    let me = app.add_user("siteadmin@acme.example", None).await;
    let site_admin = app.site_admin_of(&me, &app.site_id).await;

    let csv = b"email,role,groups\n\
        a@partner.example,USER,Second site admins\n\
        b@partner.example,USER,Docs editors\n\
        c@partner.example,USER,\n";
    let (status, body) = upload(&app, Some(&site_admin), &app.site_id, csv).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["validRows"], 2);
    assert_eq!(body["invalidRows"][0]["line"], 2);
    assert_eq!(body["invalidRows"][0]["code"], "FORBIDDEN", "{body}");
    assert!(
        body["invalidRows"][0]["message"]
            .as_str()
            .unwrap()
            .contains("Second site admins"),
        "{body}"
    );

    // Before the job reaches it, the other group gains a role on the second site too: the job
    // refuses that row with the same rule.
    app.set_group_role(&local, &site2, Some("USER")).await;
    let id = body["id"].as_str().unwrap();
    run_job(&app, id).await;
    let done = finished(&app, id, Some("REFUSED")).await;
    assert_eq!(lines(&done), vec![(3, "FORBIDDEN".to_string())]);
    assert_eq!(done["invitedRows"], 1);
    assert_eq!(
        app.db.scalar_i64("SELECT count(*) FROM invites"),
        1,
        "only the row without groups"
    );
    assert_eq!(app.db.scalar_i64("SELECT count(*) FROM invite_groups"), 0);

    // The organization admin's file may name the group.
    let csv = b"email,role,groups\nd@partner.example,USER,Second site admins\n";
    let (status, body) = upload(&app, Some(&app.admin_token), &app.site_id, csv).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["validRows"], 1, "{body}");
    run_job(&app, body["id"].as_str().unwrap()).await;
    assert_eq!(app.db.scalar_i64("SELECT count(*) FROM invite_groups"), 1);
    app.stop().await;
}

const FILES: &str = "query($s: ID!, $first: Int, $after: String) { bulkInvites(siteId: $s, first: $first, after: $after) { totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id status createdAt totalRows pendingRows invitedRows refusedRows invalidRows } } } }";
const PROGRESS: &str = "query($b: ID!) { bulkInvite(id: $b) { id status createdAt totalRows pendingRows invitedRows refusedRows invalidRows } }";

#[actix_rt::test]
async fn a_sites_bulk_invites_page_newest_first_with_their_progress() {
    let app = spawn_app_with(AppOptions {
        workers: false,
        ..Default::default()
    })
    .await;
    let site2 = app.add_site("Second");
    let mut files = Vec::new();
    for (i, day) in [1, 3, 2, 2, 4].into_iter().enumerate() {
        // Files of 1 to 5 rows, one in two of them invalid.
        let mut csv = String::from("email,role\n");
        for r in 0..=i {
            let role = if r % 2 == 1 { "NOT_A_ROLE" } else { "GUEST" };
            csv.push_str(&format!("f{i}r{r}@partner.example,{role}\n"));
        }
        let (status, body) =
            upload(&app, Some(&app.admin_token), &app.site_id, csv.as_bytes()).await;
        assert_eq!(status, 202, "{body}");
        let id = body["id"].as_str().unwrap().to_string();
        app.db.execute(&format!(
            "UPDATE bulk_invites SET created_at = '2026-01-0{day} 12:00:00+00' WHERE id = '{id}'"
        ));
        files.push((day, id));
    }
    // Another site's file is not listed.
    let (status, body) = upload(
        &app,
        Some(&app.admin_token),
        &site2,
        b"email,role\nx@partner.example,GUEST\n",
    )
    .await;
    assert_eq!(status, 202, "{body}");
    // Newest first; two files of the same time by id, descending too.
    files.sort_by_key(|(day, id)| std::cmp::Reverse((*day, uuid_of(id))));
    let expected: Vec<String> = files.into_iter().map(|(_, id)| id).collect();
    let vars = json!({ "s": app.site_id });
    let id = |n: &Value| n["id"].as_str().unwrap().to_string();
    for first in [1, 2] {
        let got = page_through(
            &app,
            Some(&app.admin_token),
            FILES,
            vars.clone(),
            &["bulkInvites"],
            first,
            id,
        )
        .await;
        assert_eq!(got, expected, "{first} at a time");
    }
    // Each file's progress is the one `bulkInvite` answers.
    let r = data(
        app.admin(FILES, json!({ "s": app.site_id, "first": 10 }))
            .await,
    );
    for e in r["bulkInvites"]["edges"].as_array().unwrap() {
        let one = data(app.admin(PROGRESS, json!({ "b": e["node"]["id"] })).await);
        assert_eq!(e["node"], one["bulkInvite"]);
    }
    let last = &r["bulkInvites"]["edges"][4]["node"];
    assert_eq!(
        (
            &last["totalRows"],
            &last["pendingRows"],
            &last["invalidRows"]
        ),
        (&json!(1), &json!(1), &json!(0)),
        "the oldest file: one valid row"
    );

    // Site admins only; a site of no organization of the caller's is not found.
    let paid = app
        .add_user("paid@acme.example", Some(ProductRole::User))
        .await;
    let session = app.session_for(&paid).await;
    let r = app.gql(Some(&session), FILES, vars.clone()).await;
    assert_eq!(code(&r).as_deref(), Some("FORBIDDEN"), "{r}");
    let other = app.add_user("other@acme.example", None).await;
    let other_admin = app.site_admin_of(&other, &site2).await;
    let r = app.gql(Some(&other_admin), FILES, vars.clone()).await;
    assert_eq!(code(&r).as_deref(), Some("FORBIDDEN"), "{r}");
    let r = app
        .gql(Some(&other_admin), FILES, json!({ "s": site2, "first": 5 }))
        .await;
    assert_eq!(data(r)["bulkInvites"]["totalCount"], 1);
    let nowhere = gid("Site", &uuid::Uuid::new_v4().to_string());
    let r = app.admin(FILES, json!({ "s": nowhere })).await;
    assert_eq!(code(&r).as_deref(), Some("NOT_FOUND"), "{r}");
    app.stop().await;
}

const PAUSE: &str = "query($b: ID!) { bulkInvite(id: $b) { status startedAt finishedAt resumesAt totalRows pendingRows invitedRows refusedRows invalidRows } }";

/// Polls `bulkInvite` until it has `status`.
async fn until_status(app: &TestApp, id: &str, status: &str) -> Value {
    let start = std::time::Instant::now();
    loop {
        let r = data(app.admin(PAUSE, json!({ "b": id })).await);
        if r["bulkInvite"]["status"] == status {
            return r["bulkInvite"].clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(180),
            "bulk invite not {status}: {r}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A second processor of the same file beside the app's worker (as another replica's would be):
/// steps until the file is done or paused.
async fn second_replica(app: &TestApp, id: uuid::Uuid) -> u32 {
    use guestpass::store::bulk::{Step, step};
    let mut invited = 0;
    loop {
        let (policy, now) = (app.state.delivery.clone(), app.state.clock.now());
        match app
            .state
            .db
            .run(move |c| step(c, id, &policy, now))
            .await
            .unwrap()
        {
            Step::Row { invited: true, .. } => invited += 1,
            Step::Row { .. } => {}
            Step::Done | Step::Paused { .. } => return invited,
        }
    }
}

/// Microseconds since the epoch of an RFC 3339 time.
fn micros(t: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(t.as_str().unwrap())
        .unwrap()
        .timestamp_micros()
}

#[actix_rt::test]
async fn a_file_past_the_daily_cap_pauses_and_finishes_by_itself_when_the_cap_frees() {
    let app = spawn_app_with(AppOptions {
        configure: Some(|c| c.invites_per_admin_per_day = 500),
        ..Default::default()
    })
    .await;
    app.add_user("paid@acme.example", Some(ProductRole::User))
        .await;
    app.set_limits(Some(1000), Some(1000)).await;
    let mut csv = String::from("email,role\n");
    for i in 0..600 {
        csv.push_str(&format!("g{i}@partner.example,GUEST\n"));
    }
    let (status, body) = upload(&app, Some(&app.admin_token), &app.site_id, csv.as_bytes()).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["validRows"], 600, "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    let uuid = uuid_of(&id);

    // The worker and a second processor race to the cap: 500 invites, then the file pauses.
    second_replica(&app, uuid).await;
    let paused = until_status(&app, &id, "PAUSED").await;
    assert_eq!(paused["invitedRows"], 500, "{paused}");
    assert_eq!(paused["pendingRows"], 100, "{paused}");
    assert_eq!(paused["refusedRows"], 0, "{paused}");
    assert!(paused["startedAt"].is_string(), "{paused}");
    assert!(paused["finishedAt"].is_null(), "{paused}");
    // It resumes when the first invite is a day old: that frees the cap for the next row.
    let first = app
        .db
        .scalar_i64("SELECT (extract(epoch FROM min(created_at)) * 1000000)::bigint FROM invites");
    let resumes = micros(&paused["resumesAt"]);
    assert_eq!(resumes - first, 86_400 * 1_000_000, "{paused}");
    assert_eq!(app.db.scalar_i64("SELECT count(*) FROM invites"), 500);
    // The rows left waiting (mostly the file's last: two processors on one file do not promise the
    // order of the rows at the boundary), remembered to check that they are the ones invited later.
    app.db.execute(
        "CREATE TABLE waited AS SELECT line FROM bulk_invite_rows WHERE status = 'PENDING'",
    );
    assert_eq!(app.db.scalar_i64("SELECT count(*) FROM waited"), 100);
    assert!(
        app.db
            .scalar_i64("SELECT count(*) FROM waited WHERE line > 490")
            >= 90,
        "the waiting rows are the file's last ones, give or take the boundary"
    );

    // Nearly a day later the cap is still full: nothing moves.
    app.clock.advance(chrono::Duration::hours(23));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let still = data(app.admin(PAUSE, json!({ "b": id })).await)["bulkInvite"].clone();
    assert_eq!(still["status"], "PAUSED", "{still}");
    assert_eq!(still["pendingRows"], 100, "{still}");

    // A day after the first invites the file goes on by itself (and a second processor with it).
    app.clock.advance(chrono::Duration::hours(1));
    let start = std::time::Instant::now();
    loop {
        let r = data(app.admin(PAUSE, json!({ "b": id })).await)["bulkInvite"].clone();
        if r["status"] != "PAUSED" {
            assert!(r["resumesAt"].is_null(), "{r}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "not resumed: {r}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    second_replica(&app, uuid).await;
    let done = until_status(&app, &id, "DONE").await;
    assert_eq!(done["invitedRows"], 600, "{done}");
    assert_eq!(
        (&done["pendingRows"], &done["refusedRows"]),
        (&json!(0), &json!(0))
    );
    assert!(done["resumesAt"].is_null(), "{done}");
    assert!(micros(&done["finishedAt"]) >= resumes, "{done}");

    // Nobody invited twice, nobody skipped: 600 addresses, one invite and one email each.
    assert_eq!(app.db.scalar_i64("SELECT count(*) FROM invites"), 600);
    assert_eq!(
        app.db
            .scalar_i64("SELECT count(DISTINCT email_normalized) FROM invites"),
        600
    );
    assert_eq!(
        app.db
            .scalar_i64("SELECT count(*) FROM email_deliveries WHERE kind = 'INVITE'"),
        600
    );
    assert_eq!(
        app.db.scalar_i64(
            "SELECT count(DISTINCT d.invite_id) FROM email_deliveries d WHERE d.kind = 'INVITE'"
        ),
        600
    );
    assert_eq!(
        app.db.scalar_i64(
            "SELECT count(DISTINCT r.invite_id) FROM bulk_invite_rows r
             JOIN invites i ON i.id = r.invite_id AND i.email_normalized = lower(r.email)
             WHERE r.status = 'INVITED'"
        ),
        600,
        "each row's own invite"
    );
    // The rows that waited were invited after the pause, at or after its moment.
    assert_eq!(
        app.db.scalar_i64(
            "SELECT count(*) FROM bulk_invite_rows r JOIN invites i ON i.id = r.invite_id
             WHERE r.line IN (SELECT line FROM waited)
               AND i.created_at >= (SELECT min(created_at) FROM invites) + interval '1 day'"
        ),
        100
    );
    app.drain_jobs(Duration::from_secs(120)).await;
}
