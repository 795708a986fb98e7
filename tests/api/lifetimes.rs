//! Guest lifetimes, sponsors, and the guest's own view (issue: lifetimes and sponsors), with a moved
//! clock and an SMTP sink.

use crate::common::*;
use guestpass::domain::ProductRole;
use serde_json::{Value, json};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

/// Invites and accepts a guest with the given invite options; returns (user id, session).
async fn guest(app: &TestApp, sink: &SmtpSink, email: &str, extra: Value) -> (String, String) {
    app.emailed_guest(sink, email, extra).await
}

/// Runs the scheduled work now (the sweep tick also handles lifetimes) and waits for its emails.
async fn tick(app: &TestApp) {
    data(
        app.admin("mutation { runReverificationSweep { queued } }", json!({}))
            .await,
    );
    app.drain_jobs(WAIT).await;
}

fn to(sink: &SmtpSink, from: usize) -> Vec<(String, String)> {
    sink.messages()[from..]
        .iter()
        .map(|m| (m.to[0].clone(), m.header("Subject").unwrap_or_default()))
        .collect()
}

#[actix_rt::test]
async fn a_ten_day_guest_is_reminded_on_day_five_and_removed_on_day_ten() {
    let sink = SmtpSink::start().await;
    let app = spawn_app_with(AppOptions {
        smtp_url: Some(sink.url()),
        ..Default::default()
    })
    .await;
    let space = app.create_space("DOCS").await;
    let (id, session) = guest(
        &app,
        &sink,
        "grace@partner.example",
        json!({ "accessDays": 10, "spaceId": space }),
    )
    .await;

    // The guest's own view: space, sponsor (the inviter, by name only), end of access, next
    // verification.
    let me = data(app.gql(Some(&session), "{ me { access { site { name } role space { key } sponsor { displayName } accessEndsAt verifiedUntil } } }", json!({})).await);
    let access = &me["me"]["access"][0];
    assert_eq!(access["role"], "GUEST");
    assert_eq!(access["space"]["key"], "DOCS");
    assert_eq!(access["sponsor"]["displayName"], "admin");
    let r = app
        .gql(
            Some(&session),
            "{ me { access { sponsor { email } } } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&r).as_deref(), Some("FORBIDDEN"));
    assert!(!r.to_string().contains("admin@acme.example"));
    assert!(access["accessEndsAt"].is_string() && access["verifiedUntil"].is_string());
    // Other people stay out of reach.
    let r = app
        .gql(
            Some(&session),
            "query($u: ID!) { user(id: $u) { email } }",
            json!({ "u": app.admin_id }),
        )
        .await;
    assert_eq!(code(&r).as_deref(), Some("FORBIDDEN"));

    let start = sink.messages().len();
    app.clock.advance(chrono::Duration::days(4));
    tick(&app).await;
    assert!(to(&sink, start).is_empty(), "no reminder on day 4");
    app.clock
        .advance(chrono::Duration::days(1) + chrono::Duration::minutes(1));
    tick(&app).await;
    tick(&app).await;
    let mut got = to(&sink, start);
    got.sort();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].0, "admin@acme.example");
    assert_eq!(got[1].0, "grace@partner.example");
    assert!(got[1].1.contains("ends soon"));

    app.clock.advance(chrono::Duration::days(5));
    tick(&app).await;
    assert_eq!(
        app.guest_ids(json!(null)).await.1,
        0,
        "the guest left the guest list"
    );
    let r = app.gql(Some(&session), "{ me { id } }", json!({})).await;
    assert_eq!(
        code(&r).as_deref(),
        Some("UNAUTHENTICATED"),
        "their sessions ended"
    );
    let ended = app.db.scalar_i64(&format!(
        "SELECT count(*) FROM audit_events WHERE action = 'guest.lifetimeEnded' AND target_id = '{id}'"
    ));
    assert_eq!(ended, 1);
    assert_eq!(to(&sink, start).len(), 2, "no more emails");
    app.stop().await;
}

#[actix_rt::test]
async fn extending_moves_the_end_without_a_second_reminder_and_stops_at_the_maximum() {
    let sink = SmtpSink::start().await;
    let app = spawn_app_with(AppOptions {
        smtp_url: Some(sink.url()),
        ..Default::default()
    })
    .await;
    data(app.admin("mutation($s: ID!) { updateSiteSettings(input: { siteId: $s, maxGuestLifetimeDays: 30 }) { site { maxGuestLifetimeDays } } }", json!({ "s": app.site_id })).await);
    let (id, _) = guest(
        &app,
        &sink,
        "grace@partner.example",
        json!({ "accessDays": 10 }),
    )
    .await;
    let start = sink.messages().len();
    app.clock.advance(chrono::Duration::days(6));
    tick(&app).await;
    assert_eq!(to(&sink, start).len(), 2, "reminded once for day 10");

    let extend =
        "mutation($i: ExtendGuestAccessInput!) { extendGuestAccess(input: $i) { accessEndsAt } }";
    let new_end = app.clock.now() + chrono::Duration::days(14);
    let r = data(
        app.admin(
            extend,
            json!({ "i": { "siteId": app.site_id, "userId": id, "endsAt": new_end.to_rfc3339() } }),
        )
        .await,
    );
    assert!(r["extendGuestAccess"]["accessEndsAt"].is_string());
    // The payload holds the guest's terms as they are now, with the objects they name.
    let terms = "mutation($i: ExtendGuestAccessInput!) { extendGuestAccess(input: $i) { __typename accessEndsAt userId user { id } site { id } } }";
    let r = data(
        app.admin(
            terms,
            json!({ "i": { "siteId": app.site_id, "userId": id, "endsAt": new_end.to_rfc3339() } }),
        )
        .await,
    )["extendGuestAccess"]
        .clone();
    assert_eq!(r["__typename"], "ExtendGuestAccessPayload");
    let ends = chrono::DateTime::parse_from_rfc3339(r["accessEndsAt"].as_str().unwrap()).unwrap();
    assert!(
        (ends.with_timezone(&chrono::Utc) - new_end)
            .num_milliseconds()
            .abs()
            < 1,
        "{r}"
    );
    assert_eq!(
        (&r["userId"], &r["user"]["id"], &r["site"]["id"]),
        (&json!(id), &json!(id), &json!(gid("Site", &app.site_id)))
    );
    // Day 10 passes: nothing happens for the old date.
    app.clock.advance(chrono::Duration::days(5));
    tick(&app).await;
    assert_eq!(to(&sink, start).len(), 2, "no reminder for the old date");
    assert_eq!(
        app.guest_ids(json!(null)).await.1,
        1,
        "still a guest after day 10"
    );
    // Beyond the site's maximum: refused.
    let too_far = app.clock.now() + chrono::Duration::days(31);
    let r = app
        .admin(
            extend,
            json!({ "i": { "siteId": app.site_id, "userId": id, "endsAt": too_far.to_rfc3339() } }),
        )
        .await;
    assert_eq!(code(&r).as_deref(), Some("EXTENSION_NOT_ALLOWED"));
    assert_eq!(r["errors"][0]["extensions"]["maxDays"], 30);
    // The new date gets its own reminder, once.
    app.clock.advance(chrono::Duration::days(5));
    tick(&app).await;
    tick(&app).await;
    assert_eq!(
        to(&sink, start).len(),
        4,
        "one reminder each for the new date"
    );
    app.stop().await;
}

#[actix_rt::test]
async fn a_guest_asks_their_sponsor_for_time_and_can_leave_at_once() {
    let sink = SmtpSink::start().await;
    let app = spawn_app_with(AppOptions {
        smtp_url: Some(sink.url()),
        ..Default::default()
    })
    .await;
    let space = app.create_space("DOCS").await;
    let (_, session) = guest(
        &app,
        &sink,
        "grace@partner.example",
        json!({ "accessDays": 10, "spaceId": space }),
    )
    .await;
    let start = sink.messages().len();
    let ask = "mutation($s: ID!) { requestExtension(input: { siteId: $s, message: \"Two more weeks, please:\\nthe audit runs late.\" }) { __typename ok } }";
    let r = data(
        app.gql(Some(&session), ask, json!({ "s": app.site_id }))
            .await,
    );
    assert_eq!(
        r["requestExtension"],
        json!({ "__typename": "RequestExtensionPayload", "ok": true })
    );
    let msgs = sink.wait_for(start + 1, WAIT).await;
    let m = &msgs[start];
    assert_eq!(m.to, vec!["admin@acme.example".to_string()]);
    assert!(m.header("Subject").unwrap().contains("asks for more time"));
    assert!(m.decoded().contains("the audit runs late."));

    let spaces = "query($s: ID!) { spaces(siteId: $s) { id } }";
    data(
        app.gql(Some(&session), spaces, json!({ "s": app.site_id }))
            .await,
    );
    let r = data(
        app.gql(
            Some(&session),
            "mutation($s: ID!) { leaveSite(siteId: $s) { __typename ok } }",
            json!({ "s": app.site_id }),
        )
        .await,
    );
    assert_eq!(
        r["leaveSite"],
        json!({ "__typename": "LeaveSitePayload", "ok": true })
    );
    let r = app
        .gql(Some(&session), spaces, json!({ "s": app.site_id }))
        .await;
    assert_eq!(
        code(&r).as_deref(),
        Some("FORBIDDEN"),
        "access ends at once"
    );
    assert_eq!(app.guest_ids(json!(null)).await.1, 0);
    assert_eq!(app.db.scalar_i64("SELECT count(*) FROM audit_events WHERE action IN ('guest.leave', 'guest.requestExtension')"), 2);
    app.drain_jobs(WAIT).await;
    app.stop().await;
}

#[actix_rt::test]
async fn guests_of_a_removed_sponsor_are_listed_for_reassignment() {
    let sink = SmtpSink::start().await;
    let app = spawn_app_with(AppOptions {
        smtp_url: Some(sink.url()),
        ..Default::default()
    })
    .await;
    let sponsor = app
        .add_user("sponsor@acme.example", Some(ProductRole::User))
        .await;
    let (g1, _) = guest(&app, &sink, "g1@partner.example", json!({})).await;
    let (g2, _) = guest(&app, &sink, "g2@partner.example", json!({})).await;
    let set = "mutation($i: SetSponsorInput!) { setSponsor(input: $i) { sponsorId } }";
    // The payload holds the guest's terms as they are now: the new sponsor, by id and as an object.
    let r = data(
        app.admin(
            "mutation($i: SetSponsorInput!) { setSponsor(input: $i) { __typename sponsorId sponsor { id displayName } user { id } site { id } } }",
            json!({ "i": { "siteId": app.site_id, "userId": g1, "sponsorId": sponsor } }),
        )
        .await,
    )["setSponsor"]
        .clone();
    assert_eq!(r["__typename"], "SetSponsorPayload");
    assert_eq!(
        (&r["sponsorId"], &r["sponsor"]["id"]),
        (&json!(sponsor), &json!(sponsor))
    );
    assert!(r["sponsor"]["displayName"].is_string(), "{r}");
    assert_eq!(
        (&r["user"]["id"], &r["site"]["id"]),
        (&json!(g1), &json!(gid("Site", &app.site_id)))
    );
    let session = app.session_for(&sponsor).await;
    let mine = data(
        app.gql(
            Some(&session),
            "query($s: ID!) { sponsoredGuests(siteId: $s) { nodes { id } } }",
            json!({ "s": app.site_id }),
        )
        .await,
    );
    assert_eq!(mine["sponsoredGuests"]["nodes"], json!([{ "id": g1 }]));
    let orphans = "query($s: ID!) { guestsWithoutSponsor(siteId: $s) { nodes { id } } }";
    assert_eq!(
        data(app.admin(orphans, json!({ "s": app.site_id })).await)["guestsWithoutSponsor"]["nodes"],
        json!([])
    );
    // A sponsor must be someone who can answer for guests.
    let r = app
        .admin(
            set,
            json!({ "i": { "siteId": app.site_id, "userId": g2, "sponsorId": g1 } }),
        )
        .await;
    assert_eq!(code(&r).as_deref(), Some("INVALID_INPUT"));

    data(
        app.admin(
            "mutation($i: RemoveProductAccessInput!) { removeProductAccess(input: $i) { dryRun } }",
            json!({ "i": { "siteId": app.site_id, "userId": sponsor } }),
        )
        .await,
    );
    let r = data(app.admin(orphans, json!({ "s": app.site_id })).await);
    assert_eq!(r["guestsWithoutSponsor"]["nodes"], json!([{ "id": g1 }]));
    data(
        app.admin(
            set,
            json!({ "i": { "siteId": app.site_id, "userId": g1, "sponsorId": app.admin_id } }),
        )
        .await,
    );
    assert_eq!(
        data(app.admin(orphans, json!({ "s": app.site_id })).await)["guestsWithoutSponsor"]["nodes"],
        json!([])
    );
    app.drain_jobs(WAIT).await;
    app.stop().await;
}

#[actix_rt::test]
async fn a_sponsor_who_loses_their_paid_role_stops_acting_for_their_guests() {
    let app = spawn_app().await;
    let site = app.site_id.clone();
    let wiki = app.create_site("Wiki").await;
    let sponsor = app
        .add_user("sponsor@acme.example", Some(ProductRole::User))
        .await;
    // A role on another site keeps the sponsor signed in once they are off this one.
    app.set_role(&wiki, &sponsor, Some("USER")).await;
    let guest = app
        .add_user("g@partner.example", Some(ProductRole::Guest))
        .await;
    data(
        app.admin(
            "mutation($i: SetSponsorInput!) { setSponsor(input: $i) { sponsorId } }",
            json!({ "i": { "siteId": site, "userId": guest, "sponsorId": sponsor } }),
        )
        .await,
    );
    let session = app.session_for(&sponsor).await;
    let mine = "query($s: ID!) { sponsoredGuests(siteId: $s) { nodes { id } } }";
    let orphans = "query($s: ID!) { guestsWithoutSponsor(siteId: $s) { nodes { id } } }";
    let extend =
        "mutation($i: ExtendGuestAccessInput!) { extendGuestAccess(input: $i) { accessEndsAt } }";
    let extend_to = |days: i64| json!({ "i": { "siteId": site, "userId": guest, "endsAt": (app.clock.now() + chrono::Duration::days(days)).to_rfc3339() } });
    let terms = format!(
        "SELECT coalesce(extract(epoch FROM ends_at), 0) FROM guest_terms WHERE user_id = '{guest}'"
    );
    let extensions = "SELECT count(*) FROM audit_events WHERE action = 'guest.extend'";

    // While paid here, the sponsor acts for the guest.
    let r = data(app.gql(Some(&session), mine, json!({ "s": site })).await);
    assert_eq!(r["sponsoredGuests"]["nodes"], json!([{ "id": guest }]));
    data(app.gql(Some(&session), extend, extend_to(10)).await);

    // Two ways to lose the paid role here: taken off the site, or the direct role set to none.
    for how in ["removeProductAccess", "setProductRole"] {
        if how == "removeProductAccess" {
            data(
                app.admin(
                    "mutation($i: RemoveProductAccessInput!) { removeProductAccess(input: $i) { dryRun } }",
                    json!({ "i": { "siteId": site, "userId": sponsor } }),
                )
                .await,
            );
        } else {
            app.set_role(&site, &sponsor, None).await;
        }
        data(app.gql(Some(&session), "{ me { id } }", json!({})).await);
        let (ends, extended) = (app.db.scalar_i64(&terms), app.db.scalar_i64(extensions));
        let r = app.gql(Some(&session), extend, extend_to(20)).await;
        assert_eq!(code(&r).as_deref(), Some("FORBIDDEN"), "{how}: {r}");
        assert_eq!(
            app.db.scalar_i64(&terms),
            ends,
            "{how}: the end did not move"
        );
        assert_eq!(app.db.scalar_i64(extensions), extended, "{how}");
        let r = app.gql(Some(&session), mine, json!({ "s": site })).await;
        assert_eq!(code(&r).as_deref(), Some("FORBIDDEN"), "{how}: {r}");
        let r = data(app.admin(orphans, json!({ "s": site })).await);
        assert_eq!(
            r["guestsWithoutSponsor"]["nodes"],
            json!([{ "id": guest }]),
            "{how}"
        );

        // Paid again, the sponsorship acts again: the lists and the checks agree.
        app.set_role(&site, &sponsor, Some("USER")).await;
        let r = data(app.gql(Some(&session), mine, json!({ "s": site })).await);
        assert_eq!(
            r["sponsoredGuests"]["nodes"],
            json!([{ "id": guest }]),
            "{how}"
        );
        let r = data(app.admin(orphans, json!({ "s": site })).await);
        assert_eq!(r["guestsWithoutSponsor"]["nodes"], json!([]), "{how}");
        data(app.gql(Some(&session), extend, extend_to(5)).await);
    }
    app.stop().await;
}

fn id_of(node: &Value) -> String {
    node["id"].as_str().unwrap().to_string()
}

const SPONSORED: &str = "query($s: ID!, $first: Int, $after: String) { sponsoredGuests(siteId: $s, first: $first, after: $after) { totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id } } } }";
const ORPHANS: &str = "query($s: ID!, $first: Int, $after: String) { guestsWithoutSponsor(siteId: $s, first: $first, after: $after) { totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id } } } }";

#[actix_rt::test]
async fn sponsored_and_orphaned_guests_page_by_email() {
    let app = spawn_app().await;
    let site = app.site_id.clone();
    let sponsor = app
        .add_user("sponsor@acme.example", Some(ProductRole::User))
        .await;
    let leaving = app
        .add_user("leaving@acme.example", Some(ProductRole::User))
        .await;
    let set = "mutation($i: SetSponsorInput!) { setSponsor(input: $i) { sponsorId } }";
    // Added out of email order: the lists are by email whatever the order of creation.
    let (mut mine, mut orphans) = (Vec::new(), Vec::new());
    for (email, who) in [
        ("g5@partner.example", Some(&sponsor)),
        ("g1@partner.example", Some(&sponsor)),
        ("o3@partner.example", None),
        ("g3@partner.example", Some(&sponsor)),
        ("o1@partner.example", Some(&leaving)),
        ("g2@partner.example", Some(&sponsor)),
        ("o2@partner.example", None),
        ("g4@partner.example", Some(&sponsor)),
    ] {
        let g = app.add_user(email, Some(ProductRole::Guest)).await;
        if let Some(s) = who {
            data(
                app.admin(
                    set,
                    json!({ "i": { "siteId": site, "userId": g, "sponsorId": s } }),
                )
                .await,
            );
        }
        if who == Some(&sponsor) {
            mine.push((email, g));
        } else {
            orphans.push((email, g));
        }
    }
    // The sponsor of o1 is deactivated: nobody answers for o1 any more.
    data(
        app.admin(
            "mutation($u: ID!) { deactivateUser(id: $u) { user { id } } }",
            json!({ "u": leaving }),
        )
        .await,
    );
    mine.sort();
    orphans.sort();
    let mine: Vec<String> = mine.into_iter().map(|(_, g)| g).collect();
    let orphans: Vec<String> = orphans.into_iter().map(|(_, g)| g).collect();
    let session = app.session_for(&sponsor).await;
    let vars = json!({ "s": site });
    for first in [1, 2] {
        let got = page_through(
            &app,
            Some(&session),
            SPONSORED,
            vars.clone(),
            &["sponsoredGuests"],
            first,
            id_of,
        )
        .await;
        assert_eq!(got, mine, "sponsoredGuests, {first} at a time");
        let got = page_through(
            &app,
            Some(&app.admin_token),
            ORPHANS,
            vars.clone(),
            &["guestsWithoutSponsor"],
            first,
            id_of,
        )
        .await;
        assert_eq!(got, orphans, "guestsWithoutSponsor, {first} at a time");
    }
    // Anything but a cursor of the list is refused.
    let r = app
        .admin(
            ORPHANS,
            json!({ "s": site, "first": 1, "after": "not a cursor" }),
        )
        .await;
    assert_eq!(code(&r).as_deref(), Some("INVALID_INPUT"), "{r}");
    app.stop().await;
}

/// The list of guests nobody answers for and the check of one sponsor (`me.access.sponsor`, which
/// names the sponsor only while they may sponsor) evaluate one rule: they agree on every kind of
/// sponsor.
#[actix_rt::test]
async fn the_orphan_list_and_the_check_of_each_sponsor_agree() {
    let app = spawn_app().await;
    let site = app.site_id.clone();
    let wiki = app.create_site("Wiki").await;
    let set = "mutation($i: SetSponsorInput!) { setSponsor(input: $i) { sponsorId } }";
    let sponsor_of = |g: String, s: String| {
        let app = &app;
        let site = site.clone();
        async move {
            data(
                app.admin(
                    set,
                    json!({ "i": { "siteId": site, "userId": g, "sponsorId": s } }),
                )
                .await,
            );
        }
    };
    let user = |email: &'static str, role| app.add_user(email, role);
    let paid = user("paid@acme.example", Some(ProductRole::User)).await;
    let padmin = user("padmin@acme.example", Some(ProductRole::ProductAdmin)).await;
    let site_admin = user("siteadmin@acme.example", None).await;
    app.site_admin_of(&site_admin, &site).await;
    let wiki_admin = user("wikiadmin@acme.example", Some(ProductRole::User)).await;
    let gone = user("gone@acme.example", Some(ProductRole::User)).await;
    let demoted = user("demoted@acme.example", Some(ProductRole::User)).await;
    app.set_role(&wiki, &demoted, Some("USER")).await;

    let g = |email: &'static str| user(email, Some(ProductRole::Guest));
    let no_terms = g("a-no-terms@partner.example").await;
    let no_sponsor = g("b-no-sponsor@partner.example").await;
    let by_paid = g("c-paid@partner.example").await;
    let by_padmin = g("d-padmin@partner.example").await;
    let by_site_admin = g("e-siteadmin@partner.example").await;
    let by_org_admin = g("f-orgadmin@partner.example").await;
    let by_gone = g("g-gone@partner.example").await;
    let by_demoted = g("h-demoted@partner.example").await;
    let by_guest = g("i-guest@partner.example").await;
    let by_other_site_admin = g("j-wikiadmin@partner.example").await;
    let guests = [
        &no_terms,
        &no_sponsor,
        &by_paid,
        &by_padmin,
        &by_site_admin,
        &by_org_admin,
        &by_gone,
        &by_demoted,
        &by_guest,
        &by_other_site_admin,
    ];
    // Terms without a sponsor: an admin moved the end only.
    data(
        app.admin(
            "mutation($i: ExtendGuestAccessInput!) { extendGuestAccess(input: $i) { accessEndsAt } }",
            json!({ "i": { "siteId": site, "userId": no_sponsor, "endsAt": (app.clock.now() + chrono::Duration::days(9)).to_rfc3339() } }),
        )
        .await,
    );
    for (g, s) in [
        (&by_paid, &paid),
        (&by_padmin, &padmin),
        (&by_site_admin, &site_admin),
        (&by_org_admin, &app.admin_id),
        (&by_gone, &gone),
        (&by_demoted, &demoted),
        (&by_other_site_admin, &paid),
    ] {
        sponsor_of(g.clone(), s.clone()).await;
    }
    // Sponsors who lost their footing: deactivated; paid only on another site now; a guest (written
    // directly: `setSponsor` refuses one); an admin of another site only.
    data(
        app.admin(
            "mutation($u: ID!) { deactivateUser(id: $u) { user { id } } }",
            json!({ "u": gone }),
        )
        .await,
    );
    app.set_role(&site, &demoted, None).await;
    app.db.execute(&format!(
        "INSERT INTO guest_terms (site_id, user_id, sponsor_id, updated_at)
           VALUES ('{site}', '{by_guest}', '{by_paid}', now())"
    ));
    app.site_admin_of(&wiki_admin, &wiki).await;
    app.set_role(&site, &wiki_admin, None).await;
    app.db.execute(&format!(
        "UPDATE guest_terms SET sponsor_id = '{wiki_admin}' WHERE user_id = '{by_other_site_admin}'"
    ));

    let listed = page_through(
        &app,
        Some(&app.admin_token),
        ORPHANS,
        json!({ "s": site }),
        &["guestsWithoutSponsor"],
        3,
        id_of,
    )
    .await;
    let orphans = [
        &no_terms,
        &no_sponsor,
        &by_gone,
        &by_demoted,
        &by_guest,
        &by_other_site_admin,
    ];
    assert_eq!(listed.iter().collect::<Vec<_>>(), orphans, "by email");
    for g in guests {
        let session = app.session_for(g).await;
        let r = data(
            app.gql(
                Some(&session),
                "{ me { access { sponsor { id } } } }",
                json!({}),
            )
            .await,
        );
        let sponsor = &r["me"]["access"][0]["sponsor"];
        assert_eq!(
            sponsor.is_null(),
            listed.contains(g),
            "{g}: listed exactly when nobody acts as their sponsor ({r})"
        );
    }
    app.stop().await;
}
