//! Invites and the seat rules (issue: guest invites and seat rules), against the real server and database.

use crate::common::*;
use guestpass::domain::ProductRole;
use serde_json::{Value, json};

fn counts(app: &TestApp) -> (i64, i64, i64, i64, i64) {
    (
        app.db.scalar_i64("SELECT count(*) FROM invites"),
        app.db.scalar_i64("SELECT count(*) FROM email_deliveries"),
        app.db.scalar_i64("SELECT count(*) FROM apalis.jobs"),
        app.db.scalar_i64("SELECT count(*) FROM audit_events"),
        app.db.scalar_i64("SELECT count(*) FROM users"),
    )
}

fn emails(prefix: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("{prefix}{i}@partner.example"))
        .collect()
}

async fn invite_n(app: &TestApp, list: &[String], role: &str, days: Option<i32>) -> Value {
    app.admin(INVITE, json!({ "input": { "siteId": app.site_id, "emails": list, "role": role, "expiresInDays": days } }))
        .await
}

const ACCEPT: &str = "mutation($i: AcceptInviteInput!) { acceptInvite(input: $i) { sessionToken user { email displayName } } }";

#[actix_rt::test]
async fn guest_allowance_revoke_and_expiry_free_slots() {
    let app = spawn_app_with(AppOptions {
        user_limit: 20,
        workers: false,
        ..Default::default()
    })
    .await;
    app.add_user("paid@acme.example", Some(ProductRole::User))
        .await;
    let s = app.seats().await;
    assert_eq!(
        (
            s["paidUsers"].as_i64(),
            s["guestAllowance"].as_i64(),
            s["remainingGuestSlots"].as_i64()
        ),
        (Some(2), Some(10), Some(10))
    );

    // 9 long-lived guest invites and 1 that expires after a day
    let res = data(invite_n(&app, &emails("g", 9), "GUEST", Some(30)).await);
    assert_eq!(res["inviteUsers"]["invites"].as_array().unwrap().len(), 9);
    let short = data(invite_n(&app, &["short@partner.example".into()], "GUEST", Some(1)).await);
    let s = app.seats().await;
    assert_eq!(
        (
            s["pendingGuestInvites"].as_i64(),
            s["remainingGuestSlots"].as_i64(),
            s["remainingSeats"].as_i64()
        ),
        (Some(10), Some(0), Some(8))
    );

    // the 11th guest is refused, with how many are left
    let res = invite_n(&app, &["eleven@partner.example".into()], "GUEST", None).await;
    assert_eq!(code(&res).as_deref(), Some("GUEST_LIMIT_REACHED"));
    assert_eq!(res["errors"][0]["extensions"]["remaining"], 0);

    // revoking one frees a slot
    let list = data(app.admin("query($s: ID!) { invites(siteId: $s, status: PENDING, first: 50) { totalCount edges { node { id email } } } }", json!({ "s": app.site_id })).await);
    assert_eq!(list["invites"]["totalCount"], 10);
    let victim = list["invites"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["node"]["email"] == "g0@partner.example")
        .unwrap()["node"]["id"]
        .clone();
    let revoked = data(
        app.admin(
            "mutation($id: ID!) { revokeInvite(id: $id) { invite { status } } }",
            json!({ "id": victim }),
        )
        .await,
    );
    assert_eq!(revoked["revokeInvite"]["invite"]["status"], "REVOKED");
    assert_eq!(app.seats().await["remainingGuestSlots"], 1);
    data(invite_n(&app, &["eleven@partner.example".into()], "GUEST", Some(30)).await);
    assert_eq!(app.seats().await["remainingGuestSlots"], 0);

    // an expired invite stops holding its slot
    app.clock.advance(chrono::Duration::days(2));
    let s = app.seats().await;
    assert_eq!(
        (
            s["pendingGuestInvites"].as_i64(),
            s["remainingGuestSlots"].as_i64()
        ),
        (Some(9), Some(1))
    );
    let expired_id = short["inviteUsers"]["invites"][0]["id"].clone();
    let got = data(app.admin("query($s: ID!) { invites(siteId: $s, status: EXPIRED) { edges { node { id status } } } }", json!({ "s": app.site_id })).await);
    assert_eq!(got["invites"]["edges"][0]["node"]["id"], expired_id);
    assert_eq!(got["invites"]["edges"][0]["node"]["status"], "EXPIRED");
    data(invite_n(&app, &["twelve@partner.example".into()], "GUEST", None).await);
    let s = app.seats().await;
    assert_eq!(
        (
            s["pendingGuestInvites"].as_i64(),
            s["remainingGuestSlots"].as_i64(),
            s["overGuestAllowanceBy"].as_i64()
        ),
        (Some(10), Some(0), Some(0))
    );
}

#[actix_rt::test]
async fn fifty_concurrent_invites_for_three_seats() {
    let app = spawn_app_with(AppOptions {
        user_limit: 5,
        workers: false,
        ..Default::default()
    })
    .await;
    app.add_user("paid@acme.example", Some(ProductRole::User))
        .await;
    assert_eq!(app.seats().await["remainingSeats"], 3);
    let calls = (0..50).map(|i| {
        let app = &app;
        async move { invite_n(app, &[format!("racer{i}@partner.example")], "GUEST", None).await }
    });
    let results = futures_util::future::join_all(calls).await;
    let ok = results
        .iter()
        .filter(|r| r.get("errors").is_none_or(Value::is_null))
        .count();
    let refused: Vec<_> = results.iter().filter_map(code).collect();
    assert_eq!(ok, 3, "{results:?}");
    assert_eq!(refused.len(), 47);
    assert!(
        refused.iter().all(|c| c == "SEAT_LIMIT_REACHED"),
        "{refused:?}"
    );
    let s = app.seats().await;
    assert_eq!(
        (
            s["pendingGuestInvites"].as_i64(),
            s["remainingSeats"].as_i64(),
            s["remainingGuestSlots"].as_i64()
        ),
        (Some(3), Some(0), Some(0))
    );
    assert_eq!(app.db.scalar_i64("SELECT count(*) FROM invites"), 3);
    assert_eq!(app.db.check_access(), Vec::<String>::new());
}

#[actix_rt::test]
async fn twenty_concurrent_accepts_of_one_token() {
    let app = spawn_app_with(AppOptions {
        workers: false,
        ..Default::default()
    })
    .await;
    let inv = data(invite_n(&app, &["once@partner.example".into()], "GUEST", None).await);
    let token = app
        .invite_token(inv["inviteUsers"]["invites"][0]["id"].as_str().unwrap())
        .await;
    let calls = (0..20).map(|i| {
        let (app, token) = (&app, token.clone());
        async move {
            app.gql(None, ACCEPT, json!({ "i": { "token": token, "displayName": format!("Racer {i}"), "password": "a long enough passphrase" } }))
                .await
        }
    });
    let results = futures_util::future::join_all(calls).await;
    let ok: Vec<_> = results
        .iter()
        .filter(|r| r.get("errors").is_none_or(Value::is_null))
        .collect();
    assert_eq!(ok.len(), 1, "{results:?}");
    let codes: Vec<_> = results.iter().filter_map(code).collect();
    assert_eq!(codes.len(), 19);
    assert!(codes.iter().all(|c| c == "INVITE_INVALID"), "{codes:?}");
    assert_eq!(
        app.db.scalar_i64(
            "SELECT count(*) FROM users WHERE email_normalized = 'once@partner.example'"
        ),
        1
    );
    // the session works, and the invite says ACCEPTED
    let session = ok[0]["data"]["acceptInvite"]["sessionToken"]
        .as_str()
        .unwrap();
    let me = data(app.gql(Some(session), "{ me { email } }", json!({})).await);
    assert_eq!(me["me"]["email"], "once@partner.example");
    let s = app.seats().await;
    assert_eq!(
        (s["guests"].as_i64(), s["pendingGuestInvites"].as_i64()),
        (Some(1), Some(0))
    );
}

#[actix_rt::test]
async fn paid_users_cannot_become_guests() {
    let app = spawn_app_with(AppOptions {
        workers: false,
        ..Default::default()
    })
    .await;
    app.add_user("paid@acme.example", Some(ProductRole::User))
        .await;
    let res = invite_n(&app, &["PAID@acme.example".into()], "GUEST", None).await;
    assert_eq!(code(&res).as_deref(), Some("ALREADY_HAS_ACCESS"));
    assert_eq!(
        res["errors"][0]["extensions"]["addresses"],
        json!([{ "email": "PAID@acme.example", "code": "ALREADY_HAS_ACCESS" }])
    );
    // a former paid user: their paid role was removed (set up directly in the database)
    let former = app
        .add_user("former@acme.example", Some(ProductRole::User))
        .await;
    app.db.execute(&format!(
        "DELETE FROM product_roles WHERE user_id = '{former}'"
    ));
    let res = invite_n(&app, &["former@acme.example".into()], "GUEST", None).await;
    assert_eq!(code(&res).as_deref(), Some("PAID_USER_CANNOT_BE_GUEST"));
    // they may be invited back as paid
    data(invite_n(&app, &["former@acme.example".into()], "USER", None).await);
}

#[actix_rt::test]
async fn refused_batches_name_every_address_and_write_nothing() {
    let app = spawn_app_with(AppOptions {
        workers: false,
        ..Default::default()
    })
    .await;
    app.add_user("member@acme.example", Some(ProductRole::User))
        .await;
    data(invite_n(&app, &["pending@partner.example".into()], "GUEST", None).await);
    let member = app
        .add_user("plain@acme.example", Some(ProductRole::User))
        .await;
    let before = counts(&app);

    let res = invite_n(&app, &emails("many", 11), "GUEST", None).await;
    assert_eq!(code(&res).as_deref(), Some("TOO_MANY_INVITES"));

    let res = invite_n(
        &app,
        &[
            "ok@partner.example".into(),
            "not an address".into(),
            "x@y@z".into(),
        ],
        "GUEST",
        None,
    )
    .await;
    assert_eq!(code(&res).as_deref(), Some("INVALID_EMAIL"));
    assert_eq!(
        res["errors"][0]["extensions"]["addresses"],
        json!([{ "email": "not an address", "code": "INVALID_EMAIL" }, { "email": "x@y@z", "code": "INVALID_EMAIL" }])
    );

    let res = invite_n(
        &app,
        &[
            "new@partner.example".into(),
            "Pending@partner.example".into(),
            "member@acme.example".into(),
        ],
        "GUEST",
        None,
    )
    .await;
    assert_eq!(code(&res).as_deref(), Some("ALREADY_HAS_ACCESS"));
    assert_eq!(
        res["errors"][0]["extensions"]["addresses"],
        json!([{ "email": "Pending@partner.example", "code": "INVITE_PENDING" }, { "email": "member@acme.example", "code": "ALREADY_HAS_ACCESS" }])
    );
    let res = invite_n(&app, &["pending@partner.example".into()], "GUEST", None).await;
    assert_eq!(code(&res).as_deref(), Some("INVITE_PENDING"));

    // not an admin, and another organization's site
    let token = app.session_for(&member).await;
    let res = app.gql(Some(&token), INVITE, json!({ "input": { "siteId": app.site_id, "emails": ["a@b.example"], "role": "GUEST" } })).await;
    assert_eq!(code(&res).as_deref(), Some("FORBIDDEN"));
    let res = app.admin(INVITE, json!({ "input": { "siteId": uuid::Uuid::new_v4().to_string(), "emails": ["a@b.example"], "role": "GUEST" } })).await;
    assert_eq!(code(&res).as_deref(), Some("NOT_FOUND"));
    // line breaks are fine in the message, control characters are not
    let res = app.admin(INVITE, json!({ "input": { "siteId": app.site_id, "emails": ["m@partner.example"], "role": "GUEST", "personalMessage": "x".repeat(1001) } })).await;
    assert_eq!(code(&res).as_deref(), Some("INVALID_INPUT"));
    assert_eq!(res["errors"][0]["extensions"]["field"], "personalMessage");

    assert_eq!(counts(&app), before, "a refused batch wrote something");
}

#[actix_rt::test]
async fn resend_replaces_the_token() {
    let app = spawn_app_with(AppOptions {
        workers: false,
        ..Default::default()
    })
    .await;
    let inv = data(invite_n(&app, &["resend@partner.example".into()], "GUEST", None).await);
    let id = inv["inviteUsers"]["invites"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let old = app.invite_token(&id).await;
    let res = data(
        app.admin(
            "mutation($id: ID!) { resendInvite(id: $id) { invite { status emailDeliveries { status } } } }",
            json!({ "id": id }),
        )
        .await,
    );
    assert_eq!(res["resendInvite"]["invite"]["status"], "PENDING");
    assert_eq!(
        res["resendInvite"]["invite"]["emailDeliveries"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let new = app.invite_token(&id).await;
    assert_ne!(old, new);
    let res = app.gql(None, ACCEPT, json!({ "i": { "token": old, "displayName": "Old", "password": "a long enough passphrase" } })).await;
    assert_eq!(code(&res).as_deref(), Some("INVITE_INVALID"));
    let res = data(app.gql(None, ACCEPT, json!({ "i": { "token": new, "displayName": "New Person", "password": "a long enough passphrase" } })).await);
    assert_eq!(res["acceptInvite"]["user"]["displayName"], "New Person");
    // used, unknown and garbage tokens: one answer
    for t in [
        new.clone(),
        format!("gpi_{}", "0".repeat(64)),
        "nonsense".into(),
    ] {
        let res = app.gql(None, ACCEPT, json!({ "i": { "token": t, "displayName": "X", "password": "a long enough passphrase" } })).await;
        assert_eq!(code(&res).as_deref(), Some("INVITE_INVALID"));
    }
}

#[actix_rt::test]
async fn pending_paid_invites_do_not_raise_the_guest_allowance() {
    let app = spawn_app_with(AppOptions {
        workers: false,
        ..Default::default()
    })
    .await;
    let before = app.seats().await["remainingGuestSlots"].as_i64().unwrap();
    let inv = data(invite_n(&app, &["newpaid@acme.example".into()], "USER", None).await);
    let s = app.seats().await;
    assert_eq!(s["remainingGuestSlots"].as_i64().unwrap(), before);
    assert_eq!(s["pendingPaidInvites"], 1);
    let token = app
        .invite_token(inv["inviteUsers"]["invites"][0]["id"].as_str().unwrap())
        .await;
    data(app.gql(None, ACCEPT, json!({ "i": { "token": token, "displayName": "Paid", "password": "a long enough passphrase" } })).await);
    let s = app.seats().await;
    assert_eq!(
        (s["paidUsers"].as_i64(), s["remainingGuestSlots"].as_i64()),
        (Some(2), Some(before + 5))
    );
}

#[actix_rt::test]
async fn lowering_limits_is_never_refused_but_blocks_additions() {
    let app = spawn_app_with(AppOptions {
        workers: false,
        ..Default::default()
    })
    .await;
    data(invite_n(&app, &emails("g", 4), "GUEST", None).await);
    let res = data(app.admin(
        "mutation($s: ID!) { updateSiteSettings(input: { siteId: $s, guestRatio: 2, userLimit: 3 }) { site { guestRatio } seatUsage { remainingSeats overGuestAllowanceBy remainingGuestSlots } } }",
        json!({ "s": app.site_id }),
    ).await);
    let u = &res["updateSiteSettings"]["seatUsage"];
    assert_eq!(
        (
            u["remainingSeats"].as_i64(),
            u["overGuestAllowanceBy"].as_i64(),
            u["remainingGuestSlots"].as_i64()
        ),
        (Some(-2), Some(2), Some(0))
    );
    let res = invite_n(&app, &["more@partner.example".into()], "GUEST", None).await;
    assert_eq!(code(&res).as_deref(), Some("SEAT_LIMIT_REACHED"));
    assert_eq!(res["errors"][0]["extensions"]["remaining"], 0);
    let res = app.admin("mutation($s: ID!) { updateSiteSettings(input: { siteId: $s, guestRatio: -1 }) { site { guestRatio } } }", json!({ "s": app.site_id })).await;
    assert_eq!(code(&res).as_deref(), Some("INVALID_INPUT"));
}

#[actix_rt::test]
async fn accepting_with_an_existing_account_asks_for_its_password() {
    let app = spawn_app_with(AppOptions {
        workers: false,
        ..Default::default()
    })
    .await;
    // an account from a first invite
    let first = data(invite_n(&app, &["twice@partner.example".into()], "GUEST", None).await);
    let t1 = app
        .invite_token(first["inviteUsers"]["invites"][0]["id"].as_str().unwrap())
        .await;
    data(app.gql(None, ACCEPT, json!({ "i": { "token": t1, "displayName": "Twice", "password": "the first passphrase" } })).await);
    // a second site invites the same address
    let site2 = {
        let org: uuid::Uuid = app.org_id.parse().unwrap();
        app.db.execute(&format!("INSERT INTO sites (organization_id, name, user_limit, created_at) VALUES ('{org}', 'Second', 10, now())"));
        app.db.execute(&format!("INSERT INTO product_roles (site_id, user_id, role, granted_at) SELECT id, '{}', 3, now() FROM sites WHERE name = 'Second'", app.admin_id));
        app.db.execute("INSERT INTO site_paid_history (site_id, user_id, first_paid_at) SELECT site_id, user_id, now() FROM product_roles WHERE role = 3 ON CONFLICT DO NOTHING");
        let mut c = app.db.conn();
        use diesel::prelude::*;
        guestpass::db::schema::sites::table
            .filter(guestpass::db::schema::sites::name.eq("Second"))
            .select(guestpass::db::schema::sites::id)
            .first::<uuid::Uuid>(&mut c)
            .unwrap()
    };
    let second = data(app.admin(INVITE, json!({ "input": { "siteId": site2.to_string(), "emails": ["TWICE@partner.example"], "role": "GUEST" } })).await);
    let t2 = app
        .invite_token(second["inviteUsers"]["invites"][0]["id"].as_str().unwrap())
        .await;
    let res = app
        .gql(
            None,
            ACCEPT,
            json!({ "i": { "token": t2, "password": "not the right one" } }),
        )
        .await;
    assert_eq!(code(&res).as_deref(), Some("INVALID_CREDENTIALS"));
    let res = data(
        app.gql(
            None,
            ACCEPT,
            json!({ "i": { "token": t2, "password": "the first passphrase" } }),
        )
        .await,
    );
    assert_eq!(res["acceptInvite"]["user"]["displayName"], "Twice");
    assert_eq!(
        app.db.scalar_i64(
            "SELECT count(*) FROM users WHERE email_normalized = 'twice@partner.example'"
        ),
        1
    );
    assert_eq!(app.db.scalar_i64("SELECT count(*) FROM product_roles pr JOIN users u ON u.id = pr.user_id WHERE u.email_normalized = 'twice@partner.example'"), 2);
}

#[actix_rt::test]
async fn domain_rules_refuse_a_batch_naming_each_address_and_list_earlier_guests() {
    let app = spawn_app_with(AppOptions {
        workers: false,
        ..Default::default()
    })
    .await;
    let earlier = app
        .add_user("old@other.example", Some(ProductRole::Guest))
        .await;
    let set = "mutation($i: SetGuestDomainRulesInput!) { setGuestDomainRules(input: $i) { guestDomainRules { mode domains } } }";
    let r = data(
        app.admin(
            set,
            json!({ "i": { "mode": "ALLOW", "domains": ["*.Partner.example"] } }),
        )
        .await,
    );
    assert_eq!(
        r["setGuestDomainRules"]["guestDomainRules"],
        json!({ "mode": "ALLOW", "domains": ["*.partner.example"] })
    );
    let before = counts(&app);
    let r = app
        .invite(&["a@eu.partner.example", "b@other.example"], "GUEST")
        .await;
    assert_eq!(code(&r).as_deref(), Some("DOMAIN_NOT_ALLOWED"), "{r}");
    assert_eq!(
        r["errors"][0]["extensions"]["addresses"],
        json!([{ "email": "b@other.example", "code": "DOMAIN_NOT_ALLOWED" }])
    );
    assert_eq!(counts(&app), before, "nothing written");
    data(app.invite(&["a@eu.partner.example"], "GUEST").await);
    // Paid users are not guests: the rules do not apply to them.
    data(app.invite(&["c@other.example"], "USER").await);
    let outside = "query($s: ID!) { guestsOutsideDomainRules(siteId: $s) { nodes { id } } }";
    let r = data(app.admin(outside, json!({ "s": app.site_id })).await);
    assert_eq!(
        r["guestsOutsideDomainRules"]["nodes"],
        json!([{ "id": earlier }]),
        "listed, not removed"
    );
    let r = app
        .admin(
            set,
            json!({ "i": { "mode": "BLOCK", "domains": ["not a domain"] } }),
        )
        .await;
    assert_eq!(code(&r).as_deref(), Some("INVALID_INPUT"));
    app.stop().await;
}

/// A group holding `PRODUCT_ADMIN` on a second site, and a site admin of the first site only.
struct Elsewhere {
    site2: String,
    group: String,
    site_admin: String,
}

async fn product_admins_elsewhere(app: &TestApp) -> Elsewhere {
    let site2 = app.add_site("Second");
    let group = app.create_group("Second site admins").await;
    app.set_group_role(&group, &site2, Some("PRODUCT_ADMIN"))
        .await;
    let me = app.add_user("siteadmin@acme.example", None).await;
    let site_admin = app.site_admin_of(&me, &app.site_id).await;
    Elsewhere {
        site2,
        group,
        site_admin,
    }
}

#[actix_rt::test]
async fn a_site_admin_cannot_invite_into_a_group_with_roles_on_sites_they_do_not_administer() {
    let app = spawn_app_with(AppOptions {
        workers: false,
        ..Default::default()
    })
    .await;
    let w = product_admins_elsewhere(&app).await;
    let invite = |groups: Vec<&String>| json!({ "input": { "siteId": app.site_id, "emails": ["new@partner.example"], "role": "USER", "groupIds": groups } });

    // The same rule as addGroupMembers: the group reaches a site the caller does not run.
    let someone = app
        .add_user("someone@acme.example", Some(ProductRole::User))
        .await;
    let r = app
        .gql(
            Some(&w.site_admin),
            "mutation($i: GroupMembersInput!) { addGroupMembers(input: $i) { dryRun } }",
            json!({ "i": { "groupId": w.group, "userIds": [someone] } }),
        )
        .await;
    assert_eq!(code(&r).as_deref(), Some("FORBIDDEN"));
    let before = counts(&app);
    let r = app
        .gql(Some(&w.site_admin), INVITE, invite(vec![&w.group]))
        .await;
    assert_eq!(code(&r).as_deref(), Some("FORBIDDEN"), "{r}");
    assert_eq!(counts(&app), before, "nothing written");
    assert_eq!(app.db.scalar_i64("SELECT count(*) FROM invite_groups"), 0);

    // A group whose roles are all on the admin's own site is theirs to invite into.
    let local = app.create_group("Docs editors").await;
    app.set_group_role(&local, &app.site_id, Some("USER")).await;
    data(
        app.gql(Some(&w.site_admin), INVITE, invite(vec![&local]))
            .await,
    );

    // An organization admin administers every site, so may.
    let r = app
        .admin(
            INVITE,
            json!({ "input": { "siteId": app.site_id, "emails": ["other@partner.example"], "role": "USER", "groupIds": [w.group] } }),
        )
        .await;
    data(r);
    assert_eq!(
        app.db.scalar_i64(&format!(
            "SELECT count(*) FROM invite_groups WHERE group_id = '{}'",
            w.group
        )),
        1
    );
    app.stop().await;
}

#[actix_rt::test]
async fn accepting_skips_groups_the_inviter_can_no_longer_grant_and_records_it() {
    let app = spawn_app_with(AppOptions {
        workers: false,
        ..Default::default()
    })
    .await;
    let w = product_admins_elsewhere(&app).await;
    // A group on the site admin's site only: they may invite into it (a group with no role at all
    // is organization admins' alone)...
    let later = app.create_group("Later").await;
    app.set_group_role(&later, &app.site_id, Some("USER")).await;
    let r = data(
        app.gql(
            Some(&w.site_admin),
            INVITE,
            json!({ "input": { "siteId": app.site_id, "emails": ["late@partner.example"], "role": "USER", "groupIds": [later] } }),
        )
        .await,
    );
    let by_site_admin = app
        .invite_token(r["inviteUsers"]["invites"][0]["id"].as_str().unwrap())
        .await;
    // ...and the organization admin invites someone else into it.
    let r = data(
        app.admin(
            INVITE,
            json!({ "input": { "siteId": app.site_id, "emails": ["kept@partner.example"], "role": "USER", "groupIds": [later] } }),
        )
        .await,
    );
    let by_org_admin = app
        .invite_token(r["inviteUsers"]["invites"][0]["id"].as_str().unwrap())
        .await;
    // Before either is accepted, the group becomes product admin of the second site.
    app.set_group_role(&later, &w.site2, Some("PRODUCT_ADMIN"))
        .await;

    let r = data(
        app.gql(
            None,
            ACCEPT,
            json!({ "i": { "token": by_site_admin, "displayName": "Late", "password": "a long enough passphrase" } }),
        )
        .await,
    );
    assert!(r["acceptInvite"]["sessionToken"].is_string());
    let member = |email: &str| {
        app.db.scalar_i64(&format!(
            "SELECT count(*) FROM group_members gm JOIN users u ON u.id = gm.user_id
             WHERE u.email_normalized = '{email}' AND gm.group_id = '{later}'"
        ))
    };
    assert_eq!(member("late@partner.example"), 0, "membership skipped");
    // The invite's own role on its site is granted; nothing on the second site.
    assert_eq!(
        app.db.scalar_i64(&format!(
            "SELECT count(*) FROM product_roles pr JOIN users u ON u.id = pr.user_id
             WHERE u.email_normalized = 'late@partner.example' AND pr.site_id = '{}' AND pr.role = 2",
            app.site_id
        )),
        1
    );
    assert_eq!(
        app.db.scalar_i64(&format!(
            "SELECT count(*) FROM audit_events WHERE action = 'invite.accept'
             AND after->'groupsSkipped' = '[\"{}\"]'::jsonb",
            uuid_of(&later)
        )),
        1,
        "the accept event says which groups were skipped"
    );

    // The organization admin could still add the membership: it is added.
    data(
        app.gql(
            None,
            ACCEPT,
            json!({ "i": { "token": by_org_admin, "displayName": "Kept", "password": "a long enough passphrase" } }),
        )
        .await,
    );
    assert_eq!(member("kept@partner.example"), 1);
    app.stop().await;
}

/// Every mutation answers a payload holding what it changed, in its new state, with ids, so a
/// normalized client cache (Relay, Apollo) updates from the answer alone (issue 17).
#[actix_rt::test]
async fn each_payload_carries_the_objects_it_changed_in_their_new_state() {
    let app = spawn_app().await;
    app.set_limits(Some(20), Some(5)).await;
    let m = |q: &'static str, v: Value| {
        let app = &app;
        async move { data(app.admin(q, v).await) }
    };

    // An invite and the seat it holds; revoking it frees the seat in the same answer.
    let r = m(
        "mutation($i: InviteUsersInput!) { inviteUsers(input: $i) { invites { id status } seatUsage { siteId pendingGuestInvites remainingGuestSlots } } }",
        json!({ "i": { "siteId": app.site_id, "emails": ["p1@partner.example"], "role": "GUEST" } }),
    )
    .await;
    let invited = &r["inviteUsers"];
    assert_eq!(invited["invites"][0]["status"], "PENDING");
    assert_eq!(
        invited["seatUsage"]["siteId"],
        json!(gid("Site", &app.site_id))
    );
    assert_eq!(invited["seatUsage"]["pendingGuestInvites"], 1);
    let slots = invited["seatUsage"]["remainingGuestSlots"]
        .as_i64()
        .unwrap();
    let invite = invited["invites"][0]["id"].as_str().unwrap().to_string();
    let r = m(
        "mutation($i: ID!) { resendInvite(id: $i) { invite { id status } } }",
        json!({ "i": invite }),
    )
    .await;
    assert_eq!(r["resendInvite"]["invite"]["id"], json!(invite));
    assert_eq!(r["resendInvite"]["invite"]["status"], "PENDING");
    let r = m(
        "mutation($i: ID!) { revokeInvite(id: $i) { invite { id status } seatUsage { pendingGuestInvites remainingGuestSlots } } }",
        json!({ "i": invite }),
    )
    .await;
    let revoked = &r["revokeInvite"];
    assert_eq!(revoked["invite"]["id"], json!(invite));
    assert_eq!(revoked["invite"]["status"], "REVOKED");
    assert_eq!(revoked["seatUsage"]["pendingGuestInvites"], 0);
    assert_eq!(revoked["seatUsage"]["remainingGuestSlots"], slots + 1);

    // Content.
    let r = m(
        "mutation($s: ID!) { createSpace(input: { siteId: $s, key: \"PAY\", name: \"Payloads\" }) { space { id key name } } }",
        json!({ "s": app.site_id }),
    )
    .await;
    let space = r["createSpace"]["space"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(r["createSpace"]["space"]["key"], "PAY");
    let r = m(
        "mutation($s: ID!) { createPage(input: { spaceId: $s, title: \"Plan\", body: \"b\" }) { page { id title spaceId } } }",
        json!({ "s": space }),
    )
    .await;
    assert_eq!(r["createPage"]["page"]["title"], "Plan");
    assert_eq!(r["createPage"]["page"]["spaceId"], json!(space));

    // Groups.
    let r = m(
        "mutation { createGroup(input: { name: \"Writers\" }) { group { id name } } }",
        json!({}),
    )
    .await;
    let group = r["createGroup"]["group"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = m(
        "mutation($g: ID!) { renameGroup(input: { id: $g, name: \"Editors\" }) { group { id name } } }",
        json!({ "g": group }),
    )
    .await;
    assert_eq!(r["renameGroup"]["group"]["id"], json!(group));
    assert_eq!(r["renameGroup"]["group"]["name"], "Editors");

    // People: admin roles, space admins, activation (the seat comes back in the same answer).
    let paid = app
        .add_user("paid@acme.example", Some(ProductRole::User))
        .await;
    let r = m(
        "mutation($u: ID!, $s: ID!) { setAdminRole(input: { userId: $u, role: SITE_ADMIN, siteId: $s, granted: true }) { user { id } } }",
        json!({ "u": paid, "s": app.site_id }),
    )
    .await;
    assert_eq!(r["setAdminRole"]["user"]["id"], json!(paid));
    for (mutation, field) in [
        (
            "mutation($s: ID!, $u: ID!) { addSpaceAdmin(input: { spaceId: $s, userId: $u }) { space { id } user { id } } }",
            "addSpaceAdmin",
        ),
        (
            "mutation($s: ID!, $u: ID!) { removeSpaceAdmin(input: { spaceId: $s, userId: $u }) { space { id } user { id } } }",
            "removeSpaceAdmin",
        ),
    ] {
        let r = m(mutation, json!({ "s": space, "u": paid })).await;
        assert_eq!(r[field]["space"]["id"], json!(space), "{r}");
        assert_eq!(r[field]["user"]["id"], json!(paid), "{r}");
    }
    let before = app.seats().await["paidUsers"].as_i64().unwrap();
    let r = m(
        "mutation($u: ID!) { deactivateUser(id: $u) { user { id status } seatUsage { siteId paidUsers } } }",
        json!({ "u": paid }),
    )
    .await;
    assert_eq!(r["deactivateUser"]["user"]["status"], "DEACTIVATED");
    assert_eq!(r["deactivateUser"]["seatUsage"][0]["paidUsers"], before - 1);
    let r = m(
        "mutation($u: ID!) { reactivateUser(id: $u) { user { id status } seatUsage { paidUsers } } }",
        json!({ "u": paid }),
    )
    .await;
    assert_eq!(r["reactivateUser"]["user"]["status"], "ACTIVE");
    assert_eq!(r["reactivateUser"]["seatUsage"][0]["paidUsers"], before);
    let r = m(
        "mutation($u: ID!) { setTwoStepRequired(input: { userId: $u, required: true }) { user { id } } }",
        json!({ "u": paid }),
    )
    .await;
    assert_eq!(r["setTwoStepRequired"]["user"]["id"], json!(paid));

    // Credentials.
    let r = m(
        "mutation { createApiToken(input: { name: \"ci\" }) { apiToken { id } } }",
        json!({}),
    )
    .await;
    let token = r["createApiToken"]["apiToken"]["id"].clone();
    let r = m(
        "mutation($t: ID!) { revokeApiToken(id: $t) { apiToken { id name } } }",
        json!({ "t": token }),
    )
    .await;
    assert_eq!(r["revokeApiToken"]["apiToken"]["id"], token);
    assert_eq!(r["revokeApiToken"]["apiToken"]["name"], "ci");

    // Organization policy: the organization comes back with its new state.
    let r = m(
        "mutation { addVerifiedDomain(input: { domain: \"acme-labs.example\" }) { organization { id verifiedDomains } verifiedDomains } }",
        json!({}),
    )
    .await;
    let added = &r["addVerifiedDomain"];
    assert!(added["organization"]["id"].is_string());
    assert!(
        added["organization"]["verifiedDomains"]
            .as_array()
            .unwrap()
            .contains(&json!("acme-labs.example")),
        "{r}"
    );
    assert_eq!(
        added["verifiedDomains"],
        added["organization"]["verifiedDomains"]
    );
    let r = m(
        "mutation { removeVerifiedDomain(input: { domain: \"acme-labs.example\" }) { organization { verifiedDomains } } }",
        json!({}),
    )
    .await;
    assert!(
        !r["removeVerifiedDomain"]["organization"]["verifiedDomains"]
            .as_array()
            .unwrap()
            .contains(&json!("acme-labs.example"))
    );
    let r = m(
        "mutation { setGuestDomainRules(input: { mode: BLOCK, domains: [\"blocked.example\"] }) { guestDomainRules { mode domains } organization { id } } }",
        json!({}),
    )
    .await;
    assert_eq!(
        r["setGuestDomainRules"]["guestDomainRules"]["mode"],
        "BLOCK"
    );
    assert!(r["setGuestDomainRules"]["organization"]["id"].is_string());
    let policy = json!({ "twoStepVerification": "OFF", "reverificationInterval": 43200, "apiTokenAccess": "ALLOWED" });
    let review = m(
        "mutation($i: ExternalUserSecurityInput!) { previewExternalUserSecurityChange(input: $i) { reviewId } }",
        json!({ "i": policy }),
    )
    .await["previewExternalUserSecurityChange"]["reviewId"]
        .clone();
    let mut input = policy.clone();
    input["reviewId"] = review;
    let r = m(
        "mutation($i: UpdateExternalUserSecurityInput!) { updateExternalUserSecurity(input: $i) { externalUserSecurity { reverificationInterval } } }",
        json!({ "i": input }),
    )
    .await;
    assert_eq!(
        r["updateExternalUserSecurity"]["externalUserSecurity"]["reverificationInterval"],
        43200
    );
    let r = m("mutation { runReverificationSweep { queued } }", json!({})).await;
    assert_eq!(r["runReverificationSweep"]["queued"], true);
    app.stop().await;
}

/// Objects where ids were, and the site's lists hung off `Site` (issue 17): a client follows the graph
/// instead of joining ids by hand, and each object comes back with its global id.
#[actix_rt::test]
async fn objects_and_site_lists_are_reached_through_the_graph() {
    let app = spawn_app().await;
    app.set_limits(Some(20), Some(5)).await;
    let site = gid("Site", &app.site_id);
    let space = app.create_space("GRAPH").await;
    for title in ["one", "two", "three"] {
        data(
            app.admin(
                "mutation($s: ID!, $t: String!) { createPage(input: { spaceId: $s, title: $t, body: \"b\" }) { page { id } } }",
                json!({ "s": space, "t": title }),
            )
            .await,
        );
    }
    let invite = data(app.invite(&["g1@partner.example"], "GUEST").await)["inviteUsers"]["invites"]
        [0]["id"]
        .clone();
    let group = app.create_group("Readers").await;
    data(
        app.admin(
            "mutation($g: ID!, $s: ID!) { setGroupProductRole(input: { groupId: $g, siteId: $s, role: USER }) { dryRun } }",
            json!({ "g": group, "s": app.site_id }),
        )
        .await,
    );
    let bulk = app.bulk_invite_id("bulk@partner.example").await;
    let guest = app
        .add_user("kept@partner.example", Some(ProductRole::Guest))
        .await;

    let r = data(
        app.admin(
            "query($s: ID!, $i: ID!, $sp: ID!, $g: ID!) {
               site(id: $s) {
                 id
                 spaces { key site { id } }
                 users { totalCount }
                 invites(status: PENDING) { totalCount nodes { id site { id } } }
                 bulkInvites { totalCount nodes { id site { id } } }
                 seatUsage { site { id } }
                 guests(orderBy: { field: EMAIL, direction: DESC }) { totalCount nodes { id } }
                 inactiveGuests(inactiveForDays: 1) { totalCount }
               }
               invite(id: $i) { site { id } }
               space(id: $sp) { site { id } pages(first: 2) { totalCount pageInfo { hasNextPage endCursor } nodes { title space { id } } } }
               group(id: $g) { siteRoles { role site { id } } }
               auditEvents(first: 50) { nodes { action actor { id } site { id } target { __typename id } } }
             }",
            json!({ "s": site, "i": invite, "sp": space, "g": group }),
        )
        .await,
    );
    let s = &r["site"];
    assert_eq!(s["id"], json!(site));
    assert!(
        s["spaces"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["key"] == "GRAPH" && x["site"]["id"] == json!(site)),
        "{s}"
    );
    assert!(s["users"]["totalCount"].as_i64().unwrap() >= 1);
    let listed = s["invites"]["nodes"].as_array().unwrap();
    assert!(listed.iter().any(|i| i["id"] == invite), "{listed:?}");
    assert!(
        listed.iter().all(|i| i["site"]["id"] == json!(site)),
        "{listed:?}"
    );
    assert_eq!(s["bulkInvites"]["totalCount"], 1);
    assert_eq!(s["bulkInvites"]["nodes"][0]["id"], json!(bulk));
    assert_eq!(s["bulkInvites"]["nodes"][0]["site"]["id"], json!(site));
    assert_eq!(s["seatUsage"]["site"]["id"], json!(site));
    assert_eq!(s["guests"]["totalCount"], 1);
    assert_eq!(s["guests"]["nodes"][0]["id"], json!(guest));
    assert_eq!(s["inactiveGuests"]["totalCount"], 0, "just created: active");
    assert_eq!(r["invite"]["site"]["id"], json!(site));
    assert_eq!(r["space"]["site"]["id"], json!(site));
    assert_eq!(r["group"]["siteRoles"][0]["site"]["id"], json!(site));

    // The space's pages page by creation, oldest first.
    let pages = &r["space"]["pages"];
    assert_eq!(pages["totalCount"], 3);
    assert_eq!(pages["pageInfo"]["hasNextPage"], true);
    let titles: Vec<&str> = pages["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["one", "two"]);
    assert_eq!(pages["nodes"][0]["space"]["id"], json!(space));
    let rest = data(
        app.admin(
            "query($sp: ID!, $a: String!) { space(id: $sp) { pages(first: 2, after: $a) { pageInfo { hasNextPage } nodes { title } } } }",
            json!({ "sp": space, "a": pages["pageInfo"]["endCursor"] }),
        )
        .await,
    );
    assert_eq!(
        rest["space"]["pages"]["nodes"],
        json!([{ "title": "three" }])
    );
    assert_eq!(rest["space"]["pages"]["pageInfo"]["hasNextPage"], false);

    // The audit trail names people and objects: the invite's creation points at the invite, by the
    // admin, on the site; a group's creation at the group.
    let events = r["auditEvents"]["nodes"].as_array().unwrap();
    let created = events
        .iter()
        .find(|e| e["target"]["id"] == invite)
        .unwrap_or_else(|| panic!("no event targets the invite: {events:?}"));
    assert_eq!(created["target"]["__typename"], "Invite");
    assert_eq!(created["actor"]["id"], json!(gid("User", &app.admin_id)));
    assert_eq!(created["site"]["id"], json!(site));
    assert!(
        events
            .iter()
            .any(|e| e["target"]["__typename"] == "Group" && e["target"]["id"] == json!(group)),
        "{events:?}"
    );
    app.stop().await;
}
