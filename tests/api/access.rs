//! Managing access over time (issue: groups, single-space guests, role changes with dry runs,
//! removal, admin roles), against the real server and database.

use crate::common::*;
use guestpass::domain::ProductRole;
use serde_json::{Value, json};

fn set_role_q() -> String {
    format!(
        "mutation($i: SetProductRoleInput!) {{ setProductRole(input: $i) {{ {ACCESS_CHANGE} }} }}"
    )
}
fn members_q(op: &str) -> String {
    format!("mutation($i: GroupMembersInput!) {{ {op}(input: $i) {{ {ACCESS_CHANGE} }} }}")
}
fn group_role_q() -> String {
    format!(
        "mutation($i: SetGroupProductRoleInput!) {{ setGroupProductRole(input: $i) {{ {ACCESS_CHANGE} }} }}"
    )
}
fn remove_q() -> String {
    format!(
        "mutation($i: RemoveProductAccessInput!) {{ removeProductAccess(input: $i) {{ {ACCESS_CHANGE} }} }}"
    )
}
const ROLE_OF: &str = "query($u: ID!, $s: ID!) { user(id: $u) { effectiveRole(siteId: $s) isFormerPaid(siteId: $s) space(siteId: $s) { id } groups { name } } }";

async fn role_of(app: &TestApp, user: &str) -> Value {
    data(
        app.admin(ROLE_OF, json!({ "u": user, "s": app.site_id }))
            .await,
    )["user"]
        .clone()
}

/// Everything but the dry-run flag: a dry run must answer exactly what the real call does.
fn without_flag(mut v: Value) -> Value {
    v.as_object_mut().unwrap().remove("dryRun");
    v
}

#[actix_rt::test]
async fn paid_users_stay_paid_or_lose_access_and_group_changes_match_their_dry_runs() {
    let app = spawn_app().await;
    let site = app.site_id.clone();

    // A paid user whose direct role is removed is former paid: never a guest again, by any route.
    let paid = app
        .add_user("paid@acme.example", Some(ProductRole::User))
        .await;
    let r = data(
        app.admin(
            &set_role_q(),
            json!({ "i": { "siteId": site, "userId": paid, "role": null } }),
        )
        .await,
    );
    let ch = &r["setProductRole"]["changes"];
    assert_eq!(ch.as_array().unwrap().len(), 1);
    assert_eq!(ch[0]["roleBefore"], "USER");
    assert_eq!(ch[0]["roleAfter"], Value::Null);
    assert_eq!(ch[0]["lostAccess"], true);
    let r = app
        .admin(
            &set_role_q(),
            json!({ "i": { "siteId": site, "userId": paid, "role": "GUEST" } }),
        )
        .await;
    assert_eq!(code(&r).as_deref(), Some("PAID_USER_CANNOT_BE_GUEST"));
    let r = app.invite(&["paid@acme.example"], "GUEST").await;
    assert_eq!(code(&r).as_deref(), Some("PAID_USER_CANNOT_BE_GUEST"));
    let guest_group = app.create_group("Partners").await;
    data(
        app.admin(
            &group_role_q(),
            json!({ "i": { "groupId": guest_group, "siteId": site, "role": "GUEST" } }),
        )
        .await,
    );
    let r = data(
        app.admin(
            &members_q("addGroupMembers"),
            json!({ "i": { "groupId": guest_group, "userIds": [paid] } }),
        )
        .await,
    );
    assert_eq!(r["addGroupMembers"]["changes"], json!([]));
    let p = role_of(&app, &paid).await;
    assert_eq!(p["effectiveRole"], Value::Null);
    assert_eq!(p["isFormerPaid"], true);
    assert_eq!(p["groups"], json!([{ "name": "Partners" }]));
    assert!(!app.guest_ids(json!(null)).await.0.contains(&paid));

    // A guest added to a USER group becomes paid; the dry run said exactly that and changed nothing.
    let space = app.create_space("ENG").await;
    let guest = app
        .add_user("guest@partner.example", Some(ProductRole::Guest))
        .await;
    data(app.assign(&space, std::slice::from_ref(&guest)).await);
    let users_group = app.create_group("Staff").await;
    data(
        app.admin(
            &group_role_q(),
            json!({ "i": { "groupId": users_group, "siteId": site, "role": "USER" } }),
        )
        .await,
    );
    let seats_before = app.seats().await;
    let audit_before = app.db.scalar_i64("SELECT count(*) FROM audit_events");
    let dry = data(
        app.admin(
            &members_q("addGroupMembers"),
            json!({ "i": { "groupId": users_group, "userIds": [guest], "dryRun": true } }),
        )
        .await,
    )["addGroupMembers"]
        .clone();
    assert_eq!(dry["dryRun"], true);
    assert_eq!(dry["changes"][0]["roleBefore"], "GUEST");
    assert_eq!(dry["changes"][0]["roleAfter"], "USER");
    assert_eq!(
        dry["seatUsage"][0]["paidUsers"].as_i64().unwrap(),
        seats_before["paidUsers"].as_i64().unwrap() + 1
    );
    assert_eq!(
        dry["seatUsage"][0]["guests"].as_i64().unwrap(),
        seats_before["guests"].as_i64().unwrap() - 1
    );
    assert_eq!(app.seats().await, seats_before, "a dry run changes nothing");
    assert_eq!(
        app.db.scalar_i64("SELECT count(*) FROM audit_events"),
        audit_before
    );
    assert_eq!(role_of(&app, &guest).await["effectiveRole"], "GUEST");
    assert_eq!(
        app.db.scalar_i64("SELECT count(*) FROM group_members"),
        1,
        "only the first group's member"
    );

    let real = data(
        app.admin(
            &members_q("addGroupMembers"),
            json!({ "i": { "groupId": users_group, "userIds": [guest] } }),
        )
        .await,
    )["addGroupMembers"]
        .clone();
    assert_eq!(real["dryRun"], false);
    assert_eq!(without_flag(real), without_flag(dry));
    assert!(!app.guest_ids(json!(null)).await.0.contains(&guest));
    let g = role_of(&app, &guest).await;
    assert_eq!(g["effectiveRole"], "USER");
    assert_eq!(g["space"], Value::Null, "paid users have no guest space");

    // The group loses its role: the former guest is now former paid, with no access at all.
    let r = data(
        app.admin(
            &group_role_q(),
            json!({ "i": { "groupId": users_group, "siteId": site, "role": null } }),
        )
        .await,
    );
    assert_eq!(r["setGroupProductRole"]["changes"][0]["lostAccess"], true);
    let g = role_of(&app, &guest).await;
    assert_eq!(
        (g["effectiveRole"].clone(), g["isFormerPaid"].clone()),
        (Value::Null, json!(true))
    );
    assert!(!app.guest_ids(json!(null)).await.0.contains(&guest));
    let audit: i64 = app
        .db
        .scalar_i64("SELECT count(*) FROM audit_events WHERE action = 'access.change'");
    assert_eq!(audit, 3, "paid->none, guest->user, user->none");
    app.stop().await;
}

#[actix_rt::test]
async fn a_guest_group_that_does_not_fit_is_refused_as_a_whole() {
    let app = spawn_app().await;
    // 4 paid users x ratio 5 = 20 guest slots.
    for i in 0..3 {
        app.add_user(&format!("staff{i}@acme.example"), Some(ProductRole::User))
            .await;
    }
    app.set_limits(Some(100), Some(5)).await;
    assert_eq!(app.seats().await["remainingGuestSlots"], 20);
    let group = app.create_group("Contractors").await;
    let mut members = Vec::new();
    for i in 0..30 {
        members.push(app.add_user(&format!("c{i}@partner.example"), None).await);
    }
    data(
        app.admin(
            &members_q("addGroupMembers"),
            json!({ "i": { "groupId": group, "userIds": members } }),
        )
        .await,
    );
    let seats = app.seats().await;
    for dry in [true, false] {
        let r = app
            .admin(
                &group_role_q(),
                json!({ "i": { "groupId": group, "siteId": app.site_id, "role": "GUEST", "dryRun": dry } }),
            )
            .await;
        assert_eq!(code(&r).as_deref(), Some("GUEST_LIMIT_REACHED"), "{r}");
        assert_eq!(r["errors"][0]["extensions"]["remaining"], 20);
    }
    assert_eq!(app.seats().await, seats);
    assert_eq!(app.guest_ids(json!(null)).await.1, 0);
    assert_eq!(
        app.db.scalar_i64("SELECT count(*) FROM group_site_roles"),
        0
    );
    // Ten fewer members fit exactly.
    data(
        app.admin(
            &members_q("removeGroupMembers"),
            json!({ "i": { "groupId": group, "userIds": members[20..] } }),
        )
        .await,
    );
    let r = data(
        app.admin(
            &group_role_q(),
            json!({ "i": { "groupId": group, "siteId": app.site_id, "role": "GUEST" } }),
        )
        .await,
    );
    assert_eq!(
        r["setGroupProductRole"]["changes"]
            .as_array()
            .unwrap()
            .len(),
        20
    );
    assert_eq!(
        r["setGroupProductRole"]["seatUsage"][0]["remainingGuestSlots"],
        0
    );
    // People added later become guests too, and one more does not fit.
    let late = app.add_user("late@partner.example", None).await;
    let r = app
        .admin(
            &members_q("addGroupMembers"),
            json!({ "i": { "groupId": group, "userIds": [late] } }),
        )
        .await;
    assert_eq!(code(&r).as_deref(), Some("GUEST_LIMIT_REACHED"));
    // Deleting the group only takes access away: never refused, and everyone loses access.
    app.set_limits(Some(1), None).await;
    let r = data(
        app.admin(
            &format!("mutation($g: ID!) {{ deleteGroup(id: $g) {{ {ACCESS_CHANGE} }} }}"),
            json!({ "g": group }),
        )
        .await,
    );
    let changes = r["deleteGroup"]["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 20);
    assert!(changes.iter().all(|c| c["lostAccess"] == true));
    assert_eq!(app.guest_ids(json!(null)).await.1, 0);
    app.stop().await;
}

#[actix_rt::test]
async fn bulk_assignment_moves_guests_and_the_counts_agree() {
    let app = spawn_app().await;
    let a = app.create_space("ALPHA").await;
    let b = app.create_space("BETA").await;
    let mut guests = Vec::new();
    for i in 0..30 {
        guests.push(
            app.add_user(
                &format!("g{i:02}@partner.example"),
                Some(ProductRole::Guest),
            )
            .await,
        );
    }
    data(app.assign(&a, &guests[0..10]).await);
    data(app.assign(&b, &guests[10..15]).await);
    // 25 guests: 10 from ALPHA, 5 already in BETA, 10 without a space; 5 others stay without one.
    let batch = guests[0..25].to_vec();
    let paid = app
        .add_user("paid@acme.example", Some(ProductRole::User))
        .await;
    let mut with_paid = batch.clone();
    with_paid.push(paid.clone());
    let r = app.assign(&b, &with_paid).await;
    assert_eq!(code(&r).as_deref(), Some("INVALID_INPUT"), "{r}");
    assert!(
        r["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("paid@acme.example")
    );
    assert_eq!(
        app.guest_ids(json!({ "spaceId": a })).await.1,
        10,
        "nothing moved"
    );

    let r = data(app.assign(&b, &batch).await);
    let list = r["assignGuestSpace"]["assignments"].as_array().unwrap();
    assert_eq!(list.len(), 25);
    let prev = |id: &str| {
        list.iter().find(|x| x["user"]["id"] == id).unwrap()["previousSpace"]["id"].clone()
    };
    for g in &guests[0..10] {
        assert_eq!(prev(g), json!(a));
    }
    for g in &guests[10..15] {
        assert_eq!(prev(g), json!(b));
    }
    for g in &guests[15..25] {
        assert_eq!(prev(g), Value::Null);
    }
    assert!(list.iter().all(|x| x["space"]["id"] == json!(b)));

    let (without, n) = app.guest_ids(json!({ "withoutSpace": true })).await;
    assert_eq!(n, 5);
    let mut expected = guests[25..30].to_vec();
    expected.sort();
    let mut without = without;
    without.sort();
    assert_eq!(without, expected);
    let q = "query($a: ID!, $b: ID!) { a: space(id: $a) { guestCount } b: space(id: $b) { guestCount } }";
    let r = data(app.admin(q, json!({ "a": a, "b": b })).await);
    assert_eq!(
        (r["a"]["guestCount"].as_i64(), r["b"]["guestCount"].as_i64()),
        (Some(0), Some(25))
    );
    assert_eq!(app.guest_ids(json!({ "spaceId": b })).await.1, 25);
    assert_eq!(app.guest_ids(json!(null)).await.1, 30);
    assert_eq!(app.guest_ids(json!({ "search": "G0" })).await.1, 10);
    assert_eq!(
        app.db
            .scalar_i64("SELECT count(*) FROM audit_events WHERE action = 'guest.assignSpace'"),
        15 + 20,
        "one event per guest whose space changed"
    );
    app.stop().await;
}

#[actix_rt::test]
async fn unassigned_guests_reach_nothing_and_removed_guests_lose_their_sessions() {
    let app = spawn_app().await;
    let space = app.create_space("DOCS").await;
    let guest = app
        .add_user("g@partner.example", Some(ProductRole::Guest))
        .await;
    data(app.assign(&space, std::slice::from_ref(&guest)).await);
    let session = app.session_for(&guest).await;
    let token = app.api_token_for(&guest).await;
    let content = "query($s: ID!, $site: ID!) { space(id: $s) { name pages { nodes { title } } } spaces(siteId: $site) { id } }";
    let vars = json!({ "s": space, "site": app.site_id });
    data(app.gql(Some(&session), content, vars.clone()).await);
    let create = "mutation($i: CreatePageInput!) { createPage(input: $i) { page { id } } }";
    let page = json!({ "i": { "spaceId": space, "title": "Notes", "body": "hi" } });
    data(app.gql(Some(&session), create, page.clone()).await);

    let r = data(
        app.admin(
            "mutation($i: UnassignGuestSpaceInput!) { unassignGuestSpace(input: $i) { assignments { previousSpace { id } space { id } } } }",
            json!({ "i": { "siteId": app.site_id, "userIds": [guest] } }),
        )
        .await,
    );
    assert_eq!(
        r["unassignGuestSpace"]["assignments"][0]["previousSpace"]["id"],
        json!(space)
    );
    assert_eq!(
        app.guest_ids(json!({ "withoutSpace": true })).await.0,
        vec![guest.clone()]
    );
    for (q, v) in [
        (
            "query($s: ID!) { space(id: $s) { name } }",
            json!({ "s": space }),
        ),
        (
            "query($site: ID!) { spaces(siteId: $site) { id } }",
            json!({ "site": app.site_id }),
        ),
        (create, page.clone()),
    ] {
        let r = app.gql(Some(&session), q, v).await;
        assert_eq!(code(&r).as_deref(), Some("FORBIDDEN"), "{q}: {r}");
    }
    data(app.gql(Some(&session), "{ me { id } }", json!({})).await);

    // A pending invite for the person is revoked with their access.
    let site2_invite = app.invite(&["g@partner.example"], "USER").await;
    assert_eq!(code(&site2_invite).as_deref(), Some("ALREADY_HAS_ACCESS"));
    let dry = data(
        app.admin(
            &remove_q(),
            json!({ "i": { "siteId": app.site_id, "userId": guest, "dryRun": true } }),
        )
        .await,
    )["removeProductAccess"]
        .clone();
    assert_eq!(dry["changes"][0]["lostAccess"], true);
    data(app.gql(Some(&session), "{ me { id } }", json!({})).await);
    let real = data(
        app.admin(
            &remove_q(),
            json!({ "i": { "siteId": app.site_id, "userId": guest } }),
        )
        .await,
    )["removeProductAccess"]
        .clone();
    assert_eq!(without_flag(real), without_flag(dry));
    assert_eq!(app.guest_ids(json!(null)).await.1, 0);
    for t in [&session, &token] {
        let r = app.gql(Some(t), "{ me { id } }", json!({})).await;
        assert_eq!(code(&r).as_deref(), Some("UNAUTHENTICATED"), "{r}");
    }
    assert_eq!(
        app.db
            .scalar_i64("SELECT count(*) FROM audit_events WHERE action = 'access.remove'"),
        1
    );
    app.stop().await;
}

#[actix_rt::test]
async fn concurrent_role_changes_never_pass_the_guest_allowance() {
    let app = spawn_app().await;
    app.set_limits(Some(100), Some(3)).await; // 1 paid (the admin) x 3
    let mut people = Vec::new();
    for i in 0..12 {
        people.push(app.add_user(&format!("p{i}@partner.example"), None).await);
    }
    let group = app.create_group("Late").await;
    let q = set_role_q();
    let calls = people[..10].iter().map(|u| {
        app.admin(
            &q,
            json!({ "i": { "siteId": app.site_id, "userId": u, "role": "GUEST" } }),
        )
    });
    let group_call = async {
        data(
            app.admin(
                &group_role_q(),
                json!({ "i": { "groupId": group, "siteId": app.site_id, "role": "GUEST" } }),
            )
            .await,
        );
        app.admin(
            &members_q("addGroupMembers"),
            json!({ "i": { "groupId": group, "userIds": people[10..] } }),
        )
        .await
    };
    let (results, group_result) =
        futures_util::future::join(futures_util::future::join_all(calls), group_call).await;
    let ok = results.iter().filter(|r| code(r).is_none()).count()
        + usize::from(code(&group_result).is_none()) * 2;
    for r in results.iter().chain([&group_result]) {
        if let Some(c) = code(r) {
            assert_eq!(c, "GUEST_LIMIT_REACHED", "{r}");
        }
    }
    assert!(ok <= 3, "{ok} guests admitted for 3 slots");
    assert_eq!(app.guest_ids(json!(null)).await.1 as usize, ok);
    assert_eq!(app.seats().await["overGuestAllowanceBy"], 0);
    assert_eq!(app.db.check_access(), Vec::<String>::new());
    app.stop().await;
}

#[actix_rt::test]
async fn admin_roles_keep_one_org_admin_and_deactivation_frees_the_seat() {
    let app = spawn_app().await;
    let set_admin = "mutation($i: SetAdminRoleInput!) { setAdminRole(input: $i) { user { id } } }";
    let r = app
        .admin(
            set_admin,
            json!({ "i": { "userId": app.admin_id, "role": "ORG_ADMIN", "granted": false } }),
        )
        .await;
    assert_eq!(code(&r).as_deref(), Some("LAST_ORG_ADMIN"));
    let r = app
        .admin(
            "mutation($u: ID!) { deactivateUser(id: $u) { user { id } } }",
            json!({ "u": app.admin_id }),
        )
        .await;
    assert_eq!(code(&r).as_deref(), Some("LAST_ORG_ADMIN"));

    // A second admin makes revoking possible; a site admin manages their site but not the org.
    let second = app
        .add_user("second@acme.example", Some(ProductRole::User))
        .await;
    data(
        app.admin(
            set_admin,
            json!({ "i": { "userId": second, "role": "SITE_ADMIN", "siteId": app.site_id, "granted": true } }),
        )
        .await,
    );
    let site_admin = app.session_for(&second).await;
    let r = app
        .gql(
            Some(&site_admin),
            set_admin,
            json!({ "i": { "userId": second, "role": "ORG_ADMIN", "granted": true } }),
        )
        .await;
    assert_eq!(code(&r).as_deref(), Some("FORBIDDEN"));
    data(
        app.admin(
            set_admin,
            json!({ "i": { "userId": second, "role": "ORG_ADMIN", "granted": true } }),
        )
        .await,
    );

    // Deactivation: grants kept, seat freed, sessions ended; reactivation needs the seat back.
    let guest = app
        .add_user("g@partner.example", Some(ProductRole::Guest))
        .await;
    let session = app.session_for(&guest).await;
    let before = app.seats().await;
    let deactivate = "mutation($u: ID!) { deactivateUser(id: $u) { user { status } } }";
    let r = data(
        app.gql(Some(&site_admin), deactivate, json!({ "u": guest }))
            .await,
    );
    assert_eq!(r["deactivateUser"]["user"]["status"], "DEACTIVATED");
    assert_eq!(
        app.seats().await["guests"].as_i64().unwrap(),
        before["guests"].as_i64().unwrap() - 1
    );
    let r = app.gql(Some(&session), "{ me { id } }", json!({})).await;
    assert_eq!(code(&r).as_deref(), Some("UNAUTHENTICATED"));
    assert_eq!(
        app.db
            .scalar_i64("SELECT count(*) FROM product_roles WHERE role = 1"),
        1
    );
    app.set_limits(Some(100), Some(0)).await;
    let reactivate = "mutation($u: ID!) { reactivateUser(id: $u) { user { status } } }";
    let r = app
        .gql(Some(&site_admin), reactivate, json!({ "u": guest }))
        .await;
    assert_eq!(code(&r).as_deref(), Some("GUEST_LIMIT_REACHED"));
    app.set_limits(Some(100), Some(5)).await;
    let r = data(
        app.gql(Some(&site_admin), reactivate, json!({ "u": guest }))
            .await,
    );
    assert_eq!(r["reactivateUser"]["user"]["status"], "ACTIVE");
    assert_eq!(app.seats().await, before);

    // With a second organization admin, the first may step down.
    data(
        app.admin(
            set_admin,
            json!({ "i": { "userId": app.admin_id, "role": "ORG_ADMIN", "granted": false } }),
        )
        .await,
    );
    let r = app.invite(&["x@partner.example"], "GUEST").await;
    assert_eq!(code(&r).as_deref(), Some("FORBIDDEN"));
    app.stop().await;
}

#[actix_rt::test]
async fn invites_with_groups_count_and_grant_the_role_the_groups_give() {
    let app = spawn_app().await;
    let group = app.create_group("Writers").await;
    data(
        app.admin(
            &group_role_q(),
            json!({ "i": { "groupId": group, "siteId": app.site_id, "role": "USER" } }),
        )
        .await,
    );
    // A guest invite into a USER group takes a paid seat, not a guest slot.
    let r = data(
        app.admin(
            INVITE,
            json!({ "input": { "siteId": app.site_id, "emails": ["w@partner.example"], "role": "GUEST", "groupIds": [group] } }),
        )
        .await,
    );
    let invite = r["inviteUsers"]["invites"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let seats = app.seats().await;
    assert_eq!(
        (
            seats["pendingPaidInvites"].as_i64(),
            seats["pendingGuestInvites"].as_i64()
        ),
        (Some(1), Some(0))
    );
    // No role and no group role on the site: nothing to grant.
    let empty = app.create_group("Empty").await;
    let r = app
        .admin(
            INVITE,
            json!({ "input": { "siteId": app.site_id, "emails": ["x@partner.example"], "groupIds": [empty] } }),
        )
        .await;
    assert_eq!(code(&r).as_deref(), Some("INVALID_INPUT"));
    let token = app.invite_token(&invite).await;
    let r = data(
        app.gql(
            None,
            "mutation($i: AcceptInviteInput!) { acceptInvite(input: $i) { user { id } } }",
            json!({ "i": { "token": token, "displayName": "W", "password": "a fine long passphrase" } }),
        )
        .await,
    );
    let user = r["acceptInvite"]["user"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let u = role_of(&app, &user).await;
    assert_eq!(u["effectiveRole"], "USER");
    assert_eq!(u["groups"], json!([{ "name": "Writers" }]));
    let seats = app.seats().await;
    assert_eq!(
        (
            seats["paidUsers"].as_i64(),
            seats["pendingPaidInvites"].as_i64()
        ),
        (Some(2), Some(0))
    );
    app.stop().await;
}

#[actix_rt::test]
async fn billing_names_the_group_that_made_a_guest_paid() {
    let app = spawn_app().await;
    let guest = app
        .add_user("g@partner.example", Some(ProductRole::Guest))
        .await;
    let group = app.create_group("Staff").await;
    data(
        app.admin(
            &group_role_q(),
            json!({ "i": { "groupId": group, "siteId": app.site_id, "role": "USER" } }),
        )
        .await,
    );
    let q = "query($u: ID!, $s: ID!) { user(id: $u) { billing(siteId: $s) { billable reason group { name } isFormerPaid } } }";
    let vars = json!({ "u": guest, "s": app.site_id });
    let b = data(app.admin(q, vars.clone()).await)["user"]["billing"].clone();
    assert_eq!(
        b,
        json!({ "billable": false, "reason": "GUEST_WITHIN_ALLOWANCE", "group": null, "isFormerPaid": false })
    );
    data(
        app.admin(
            &members_q("addGroupMembers"),
            json!({ "i": { "groupId": group, "userIds": [guest] } }),
        )
        .await,
    );
    let b = data(app.admin(q, vars.clone()).await)["user"]["billing"].clone();
    assert_eq!(
        b,
        json!({ "billable": true, "reason": "GROUP", "group": { "name": "Staff" }, "isFormerPaid": true })
    );
    data(
        app.admin(
            &format!("mutation($g: ID!) {{ deleteGroup(id: $g) {{ {ACCESS_CHANGE} }} }}"),
            json!({ "g": group }),
        )
        .await,
    );
    let b = data(app.admin(q, vars.clone()).await)["user"]["billing"].clone();
    assert_eq!(
        b,
        json!({ "billable": false, "reason": "NONE", "group": null, "isFormerPaid": true })
    );
    // Only admins see it.
    let session = app.session_for(&guest).await;
    let r = app.gql(Some(&session), q, vars).await;
    assert_eq!(code(&r).as_deref(), Some("FORBIDDEN"));
    let admin = data(
        app.admin(q, json!({ "u": app.admin_id, "s": app.site_id }))
            .await,
    );
    assert_eq!(admin["user"]["billing"]["reason"], "DIRECT_ROLE");
    app.stop().await;
}

#[actix_rt::test]
async fn inactive_guests_are_found_by_last_activity_and_removed_together() {
    let app = spawn_app().await;
    let mut g = Vec::new();
    for i in 0..4 {
        g.push(
            app.add_user(&format!("g{i}@partner.example"), Some(ProductRole::Guest))
                .await,
        );
    }
    let paid = app
        .add_user("paid@acme.example", Some(ProductRole::User))
        .await;
    let active = app.api_token_for(&g[2]).await;
    // Day 25: g2 works; the others have not been seen since day 0.
    app.clock.advance(chrono::Duration::days(25));
    data(app.gql(Some(&active), "{ me { id } }", json!({})).await);
    app.clock.advance(chrono::Duration::days(10));
    let q = "query($s: ID!, $d: Int!) { inactiveGuests(siteId: $s, inactiveForDays: $d, first: 50) { edges { node { id lastActiveAt } } } }";
    let r = data(app.admin(q, json!({ "s": app.site_id, "d": 30 })).await);
    let mut idle: Vec<String> = r["inactiveGuests"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["id"].as_str().unwrap().to_string())
        .collect();
    idle.sort();
    let mut expected = vec![g[0].clone(), g[1].clone(), g[3].clone()];
    expected.sort();
    assert_eq!(idle, expected);
    let r = data(app.admin(q, json!({ "s": app.site_id, "d": 5 })).await);
    assert_eq!(r["inactiveGuests"]["edges"].as_array().unwrap().len(), 4);

    let remove = "mutation($i: RemoveGuestsInput!) { removeGuests(input: $i) { removed { id } } }";
    let mut with_paid = idle.clone();
    with_paid.push(paid.clone());
    let r = app.admin(remove, json!({ "i": { "siteId": app.site_id, "userIds": with_paid, "reason": "access review" } })).await;
    assert_eq!(code(&r).as_deref(), Some("INVALID_INPUT"), "{r}");
    assert_eq!(app.guest_ids(json!(null)).await.1, 4, "nothing removed");
    let r = data(
        app.admin(
            remove,
            json!({ "i": { "siteId": app.site_id, "userIds": idle, "reason": "access review" } }),
        )
        .await,
    );
    assert_eq!(r["removeGuests"]["removed"].as_array().unwrap().len(), 3);
    assert_eq!(app.guest_ids(json!(null)).await.0, vec![g[2].clone()]);
    assert_eq!(
        app.db.scalar_i64("SELECT count(*) FROM audit_events WHERE action = 'guest.remove' AND after->>'reason' = 'access review'"),
        3
    );
    app.stop().await;
}

/// Each access change answers the object it acted on beside what changed: as it is after the change,
/// or after a dry run as it still is.
#[actix_rt::test]
async fn each_access_change_answers_the_object_it_acted_on_in_its_new_state() {
    let app = spawn_app().await;
    let site = app.site_id.clone();
    let site_gid = gid("Site", &site);
    let group = app.create_group("Reviewers").await;
    let person = app.add_user("rev@acme.example", None).await;
    const GROUP: &str =
        "group { id name siteRoles { siteId role } members { totalCount nodes { id } } }";

    // setGroupProductRole: the group with its role on the site (none yet after the dry run).
    let q = format!(
        "mutation($i: SetGroupProductRoleInput!) {{ setGroupProductRole(input: $i) {{ __typename dryRun {GROUP} }} }}"
    );
    for dry in [true, false] {
        let r = data(
            app.admin(
                &q,
                json!({ "i": { "groupId": group, "siteId": site, "role": "USER", "dryRun": dry } }),
            )
            .await,
        )["setGroupProductRole"]
            .clone();
        assert_eq!(r["__typename"], "SetGroupProductRolePayload");
        assert_eq!(r["dryRun"], dry);
        assert_eq!(
            (&r["group"]["id"], &r["group"]["name"]),
            (&json!(group), &json!("Reviewers"))
        );
        let roles = if dry {
            json!([])
        } else {
            json!([{ "siteId": site_gid, "role": "USER" }])
        };
        assert_eq!(r["group"]["siteRoles"], roles, "dry run {dry}");
    }

    // addGroupMembers: the group with its new member, who is now a paid user through it.
    let q = format!(
        "mutation($i: GroupMembersInput!) {{ addGroupMembers(input: $i) {{ __typename dryRun changes {{ user {{ id }} roleAfter }} {GROUP} }} }}"
    );
    for dry in [true, false] {
        let r = data(
            app.admin(
                &q,
                json!({ "i": { "groupId": group, "userIds": [person], "dryRun": dry } }),
            )
            .await,
        )["addGroupMembers"]
            .clone();
        assert_eq!(r["__typename"], "AddGroupMembersPayload");
        assert_eq!(
            r["changes"],
            json!([{ "user": { "id": person }, "roleAfter": "USER" }])
        );
        assert_eq!(r["group"]["id"], json!(group));
        let members = if dry {
            json!([])
        } else {
            json!([{ "id": person }])
        };
        assert_eq!(r["group"]["members"]["nodes"], members, "dry run {dry}");
        assert_eq!(r["group"]["members"]["totalCount"], if dry { 0 } else { 1 });
    }

    // removeGroupMembers: the group without them.
    let q = format!(
        "mutation($i: GroupMembersInput!) {{ removeGroupMembers(input: $i) {{ __typename changes {{ lostAccess }} {GROUP} }} }}"
    );
    let r = data(
        app.admin(
            &q,
            json!({ "i": { "groupId": group, "userIds": [person] } }),
        )
        .await,
    )["removeGroupMembers"]
        .clone();
    assert_eq!(r["__typename"], "RemoveGroupMembersPayload");
    assert_eq!(r["changes"], json!([{ "lostAccess": true }]));
    assert_eq!(r["group"]["id"], json!(group));
    assert_eq!(r["group"]["members"]["totalCount"], 0);
    assert_eq!(r["group"]["members"]["nodes"], json!([]));

    // setProductRole and removeProductAccess: the person with their role on the site now.
    let q = "mutation($i: SetProductRoleInput!, $s: ID!) { setProductRole(input: $i) { __typename dryRun user { id effectiveRole(siteId: $s) } } }";
    for (dry, role) in [(true, Value::Null), (false, json!("USER"))] {
        let r = data(
            app.admin(
                q,
                json!({ "i": { "siteId": site, "userId": person, "role": "USER", "dryRun": dry }, "s": site }),
            )
            .await,
        )["setProductRole"]
            .clone();
        assert_eq!(r["__typename"], "SetProductRolePayload");
        assert_eq!(
            r["user"],
            json!({ "id": person, "effectiveRole": role }),
            "dry run {dry}"
        );
    }
    let q = "mutation($i: RemoveProductAccessInput!, $s: ID!) { removeProductAccess(input: $i) { __typename dryRun user { id effectiveRole(siteId: $s) } } }";
    for (dry, role) in [(true, json!("USER")), (false, Value::Null)] {
        let r = data(
            app.admin(
                q,
                json!({ "i": { "siteId": site, "userId": person, "dryRun": dry }, "s": site }),
            )
            .await,
        )["removeProductAccess"]
            .clone();
        assert_eq!(r["__typename"], "RemoveProductAccessPayload");
        assert_eq!(
            r["user"],
            json!({ "id": person, "effectiveRole": role }),
            "dry run {dry}"
        );
    }

    // deleteGroup: the id of the group it deleted (after a dry run, the group is still there).
    let q = "mutation($g: ID!, $dry: Boolean!) { deleteGroup(id: $g, dryRun: $dry) { __typename dryRun deletedGroupId } }";
    let find = "query($g: ID!) { group(id: $g) { id } }";
    for dry in [true, false] {
        let r = data(app.admin(q, json!({ "g": group, "dry": dry })).await)["deleteGroup"].clone();
        assert_eq!(r["__typename"], "DeleteGroupPayload");
        assert_eq!(r["deletedGroupId"], json!(group));
        let found = app.admin(find, json!({ "g": group })).await;
        if dry {
            assert_eq!(data(found)["group"]["id"], json!(group));
        } else {
            assert_eq!(code(&found).as_deref(), Some("NOT_FOUND"), "{found}");
        }
    }

    // removeGuests: the site's seats after the removal, one guest fewer.
    let guest = app
        .add_user("leaving@partner.example", Some(ProductRole::Guest))
        .await;
    let before = app.seats().await;
    let q = "mutation($i: RemoveGuestsInput!) { removeGuests(input: $i) { removed { id } seatUsage { siteId guests remainingSeats } } }";
    let r = data(
        app.admin(q, json!({ "i": { "siteId": site, "userIds": [guest] } }))
            .await,
    )["removeGuests"]
        .clone();
    assert_eq!(r["removed"], json!([{ "id": guest }]));
    let seats = &r["seatUsage"];
    assert_eq!(seats["siteId"], json!(site_gid));
    assert_eq!(
        seats["guests"].as_i64().unwrap(),
        before["guests"].as_i64().unwrap() - 1
    );
    assert_eq!(
        seats["remainingSeats"].as_i64().unwrap(),
        before["remainingSeats"].as_i64().unwrap() + 1
    );
    let after = app.seats().await;
    assert_eq!(
        (&seats["guests"], &seats["remainingSeats"]),
        (&after["guests"], &after["remainingSeats"])
    );
    app.stop().await;
}

/// What a person holds, as fingerprints of their rows: direct roles, group memberships, guest spaces
/// and terms, live sessions, and the audit trail. Equal before and after means nothing changed.
fn holdings(app: &TestApp, user: &str) -> Vec<i64> {
    [
        format!("SELECT hashtext(coalesce(string_agg(site_id::text || ':' || role, ',' ORDER BY site_id), '')) FROM product_roles WHERE user_id = '{user}'"),
        format!("SELECT hashtext(coalesce(string_agg(group_id::text, ',' ORDER BY group_id), '')) FROM group_members WHERE user_id = '{user}'"),
        format!("SELECT count(*) FROM guest_spaces WHERE user_id = '{user}'"),
        format!("SELECT count(*) FROM guest_terms WHERE user_id = '{user}'"),
        format!("SELECT count(*) FROM sessions WHERE user_id = '{user}' AND revoked_at IS NULL"),
        "SELECT count(*) FROM audit_events".to_string(),
    ]
    .iter()
    .map(|q| app.db.scalar_i64(q))
    .collect()
}

async fn role_on(app: &TestApp, user: &str, site: &str) -> Value {
    data(app.admin(ROLE_OF, json!({ "u": user, "s": site })).await)["user"]["effectiveRole"].clone()
}

const ME: &str = "{ me { id } }";

#[actix_rt::test]
async fn removal_refuses_a_group_that_also_grants_on_another_site_and_changes_nothing() {
    let app = spawn_app().await;
    let wiki = app.create_site("Wiki").await;
    let person = app
        .add_user("both@acme.example", Some(ProductRole::User))
        .await;
    let both = app.create_group("Writers").await;
    app.set_group_role(&both, &app.site_id, Some("USER")).await;
    app.set_group_role(&both, &wiki, Some("USER")).await;
    app.add_members(&both, &[&person]).await;
    let session = app.session_for(&person).await;
    let before = holdings(&app, &person);

    for dry_run in [true, false] {
        let r = app
            .admin(
                &remove_q(),
                json!({ "i": { "siteId": app.site_id, "userId": person, "dryRun": dry_run } }),
            )
            .await;
        assert_eq!(
            code(&r).as_deref(),
            Some("GROUP_REACHES_OTHER_SITES"),
            "dry run {dry_run}: {r}"
        );
        let message = r["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains("Writers"), "{message}");
        assert_eq!(r["errors"][0]["extensions"]["groups"], json!(["Writers"]));
        assert_eq!(holdings(&app, &person), before, "dry run {dry_run}");
    }
    assert_eq!(role_on(&app, &person, &app.site_id).await, "USER");
    assert_eq!(role_on(&app, &person, &wiki).await, "USER");
    data(app.gql(Some(&session), ME, json!({})).await);

    // Once the group no longer reaches this site, the removal takes only the direct role here.
    app.set_group_role(&both, &app.site_id, None).await;
    let r = data(
        app.admin(
            &remove_q(),
            json!({ "i": { "siteId": app.site_id, "userId": person } }),
        )
        .await,
    );
    assert_eq!(r["removeProductAccess"]["changes"][0]["lostAccess"], true);
    assert_eq!(role_on(&app, &person, &app.site_id).await, Value::Null);
    assert_eq!(role_on(&app, &person, &wiki).await, "USER");
    data(app.gql(Some(&session), ME, json!({})).await);
    app.stop().await;
}

#[actix_rt::test]
async fn removal_from_the_only_site_ends_sessions_and_nobody_elsewhere_is_touched() {
    let app = spawn_app().await;
    let wiki = app.create_site("Wiki").await;
    // Access here only, directly and through a group that reaches only this site.
    let here = app
        .add_user("here@acme.example", Some(ProductRole::User))
        .await;
    let local = app.create_group("Docs readers").await;
    app.set_group_role(&local, &app.site_id, Some("USER")).await;
    app.add_members(&local, &[&here]).await;
    let session = app.session_for(&here).await;
    let r = data(
        app.admin(
            &remove_q(),
            json!({ "i": { "siteId": app.site_id, "userId": here } }),
        )
        .await,
    );
    assert_eq!(r["removeProductAccess"]["changes"][0]["lostAccess"], true);
    assert_eq!(
        app.db.scalar_i64(&format!(
            "SELECT count(*) FROM group_members WHERE user_id = '{here}'"
        )),
        0,
        "a group that reaches only this site is left"
    );
    let r = app.gql(Some(&session), ME, json!({})).await;
    assert_eq!(code(&r).as_deref(), Some("UNAUTHENTICATED"), "{r}");

    // Access on another site only: there is nothing to remove here, and nothing changes.
    let elsewhere = app.add_user("wiki@acme.example", None).await;
    app.set_role(&wiki, &elsewhere, Some("USER")).await;
    let session = app.session_for(&elsewhere).await;
    let before = holdings(&app, &elsewhere);
    for dry_run in [true, false] {
        let r = app
            .admin(
                &remove_q(),
                json!({ "i": { "siteId": app.site_id, "userId": elsewhere, "dryRun": dry_run } }),
            )
            .await;
        assert_eq!(code(&r).as_deref(), Some("INVALID_INPUT"), "{r}");
        assert_eq!(r["errors"][0]["extensions"]["field"], "userId");
        assert_eq!(holdings(&app, &elsewhere), before, "dry run {dry_run}");
    }
    data(app.gql(Some(&session), ME, json!({})).await);
    assert_eq!(role_on(&app, &elsewhere, &wiki).await, "USER");
    app.stop().await;
}

#[actix_rt::test]
async fn removal_keeps_other_sites_and_the_sessions_that_still_reach_them() {
    let app = spawn_app().await;
    let wiki = app.create_site("Wiki").await;
    let person = app
        .add_user("two@acme.example", Some(ProductRole::User))
        .await;
    app.set_role(&wiki, &person, Some("USER")).await;
    // A group that grants only on the other site is not this removal's business.
    let wiki_group = app.create_group("Wiki editors").await;
    app.set_group_role(&wiki_group, &wiki, Some("PRODUCT_ADMIN"))
        .await;
    app.add_members(&wiki_group, &[&person]).await;
    let session = app.session_for(&person).await;
    let token = app.api_token_for(&person).await;

    let r = data(
        app.admin(
            &remove_q(),
            json!({ "i": { "siteId": app.site_id, "userId": person } }),
        )
        .await,
    );
    let changes = r["removeProductAccess"]["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0]["site"]["id"], json!(gid("Site", &app.site_id)));
    assert_eq!(role_on(&app, &person, &app.site_id).await, Value::Null);
    assert_eq!(role_on(&app, &person, &wiki).await, "PRODUCT_ADMIN");
    assert_eq!(
        app.db.scalar_i64(&format!(
            "SELECT count(*) FROM product_roles WHERE user_id = '{person}' AND site_id = '{wiki}'"
        )),
        1
    );
    assert_eq!(
        app.db.scalar_i64(&format!(
            "SELECT count(*) FROM group_members WHERE user_id = '{person}'"
        )),
        1
    );
    let spaces = "query($s: ID!) { spaces(siteId: $s) { id } }";
    for t in [&session, &token] {
        data(app.gql(Some(t), spaces, json!({ "s": wiki })).await);
        let r = app.gql(Some(t), spaces, json!({ "s": app.site_id })).await;
        assert_eq!(code(&r).as_deref(), Some("FORBIDDEN"), "{r}");
    }
    app.stop().await;
}

#[actix_rt::test]
async fn check_access_reports_and_repairs_a_corrupted_maintained_row() {
    let app = spawn_app().await;
    let space = app.create_space("DOCS").await;
    let guest = app.add_user("g@partner.example", None).await;
    app.set_role(&app.site_id, &guest, Some("GUEST")).await;
    app.assign(&space, std::slice::from_ref(&guest)).await;
    let paid = app
        .add_user("p@acme.example", Some(ProductRole::User))
        .await;
    assert!(
        app.db.check_access().is_empty(),
        "{:?}",
        app.db.check_access()
    );

    // Corrupt one maintained row and one counter behind the engine's back.
    {
        use diesel::connection::SimpleConnection;
        app.db
            .conn()
            .batch_execute(&crate::common::db::with_keys(&format!(
                "UPDATE site_members SET role = 2, guest_space_id = NULL WHERE user_id = '{guest}';
                 UPDATE site_counters SET paid = paid + 5 WHERE site_id = '{}';
                 DELETE FROM site_members WHERE user_id = '{paid}';",
                app.site_id
            )))
            .unwrap();
    }
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_guestpass"))
            .args(args)
            .env("DATABASE_URL", &app.db.url)
            .env("GUESTPASS_LOG", "error")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
        )
    };
    let (status, out) = run(&["check-access"]);
    assert_eq!(status, Some(1), "{out}");
    assert!(
        out.contains(&format!("({}, {})", app.site_id, uuid_of(&guest))),
        "{out}"
    );
    assert!(
        out.contains(&format!("({}, {})", app.site_id, uuid_of(&paid))),
        "{out}"
    );
    assert!(out.contains("site_counters"), "{out}");
    assert!(out.contains("3 differences found"), "{out}");
    let (status, out) = run(&["check-access", "--repair"]);
    assert_eq!(status, Some(0), "{out}");
    assert!(out.contains("3 differences repaired"), "{out}");
    let (status, out) = run(&["check-access"]);
    assert_eq!((status, out.trim()), (Some(0), "0 differences found"));
    // The repaired state is what the API reads.
    let (guests, total) = app.guest_ids(json!(null)).await;
    assert_eq!((guests, total), (vec![guest.clone()], 1));
    assert_eq!(app.seats().await["paidUsers"], 2);
    app.stop().await;
}

const ORDERED: &str = "query($s: ID!, $o: GuestOrder, $first: Int, $after: String) { guests(siteId: $s, orderBy: $o, first: $first, after: $after) { totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id } } } }";

/// One guest as the test set them up: what each order sorts by.
struct Set {
    id: String,
    email: &'static str,
    name: &'static str,
    last_active: Option<&'static str>,
    ends: Option<&'static str>,
    terms: bool,
}

#[actix_rt::test]
async fn guests_are_ordered_by_each_field_both_ways_with_ties_and_missing_values_in_place() {
    let app = spawn_app().await;
    let site = app.site_id.clone();
    // Ties on every key (lower-case names, times, ends), missing values (never active; no end, with
    // terms and without), so each order shows its tie-breaker and where missing values go.
    let rows = [
        (
            "g-a@partner.example",
            "Mia",
            Some("2026-01-03"),
            Some("2100-03-01"),
            true,
        ),
        ("g-b@partner.example", "alex", None, None, false),
        ("g-c@partner.example", "Zoe", Some("2026-01-01"), None, true),
        (
            "g-d@partner.example",
            "bea",
            Some("2026-01-03"),
            Some("2100-02-01"),
            true,
        ),
        (
            "g-e@partner.example",
            "Alex",
            Some("2026-01-02"),
            None,
            false,
        ),
        (
            "g-f@partner.example",
            "carl",
            None,
            Some("2100-03-01"),
            true,
        ),
        (
            "g-g@partner.example",
            "Dana",
            Some("2026-01-05"),
            None,
            false,
        ),
    ];
    let mut set = Vec::new();
    for (email, name, last_active, ends, terms) in rows {
        let id = app.add_user(email, Some(ProductRole::Guest)).await;
        let when = |d: Option<&str>| d.map_or("NULL".to_string(), |d| format!("'{d} 00:00:00+00'"));
        app.db.execute(&format!(
            "UPDATE users SET display_name = '{name}', last_active_at = {} WHERE id = '{id}'",
            when(last_active)
        ));
        if terms {
            app.db.execute(&format!(
                "INSERT INTO guest_terms (site_id, user_id, ends_at, updated_at) VALUES ('{site}', '{id}', {}, now())",
                when(ends)
            ));
        }
        set.push(Set {
            id,
            email,
            name,
            last_active,
            ends,
            terms,
        });
    }
    // Not guests of this site: a paid user (of this site and another), and a guest of the other.
    let paid = app
        .add_user("paid@acme.example", Some(ProductRole::User))
        .await;
    let wiki = app.create_site("Wiki").await;
    app.set_role(&wiki, &paid, Some("USER")).await;
    let elsewhere = app.add_user("g-0@partner.example", None).await;
    app.set_role(&wiki, &elsewhere, Some("GUEST")).await;

    type Key = Box<dyn Fn(&Set) -> (bool, String, uuid::Uuid)>;
    let orders: [(&str, Key); 4] = [
        (
            "EMAIL",
            Box::new(|s: &Set| (false, s.email.to_string(), uuid_of(&s.id))),
        ),
        (
            "DISPLAY_NAME",
            Box::new(|s: &Set| (false, s.name.to_lowercase(), uuid_of(&s.id))),
        ),
        // Never active: the earliest activity.
        (
            "LAST_ACTIVE_AT",
            Box::new(|s: &Set| {
                (
                    s.last_active.is_some(),
                    s.last_active.unwrap_or("").to_string(),
                    uuid_of(&s.id),
                )
            }),
        ),
        // No end (no terms, or terms without one): the latest end.
        (
            "ACCESS_ENDS_AT",
            Box::new(|s: &Set| {
                assert!(s.terms || s.ends.is_none());
                (
                    s.ends.is_none(),
                    s.ends.unwrap_or("").to_string(),
                    uuid_of(&s.id),
                )
            }),
        ),
    ];
    let id = |n: &Value| n["id"].as_str().unwrap().to_string();
    for (field, key) in &orders {
        let mut ascending: Vec<&Set> = set.iter().collect();
        ascending.sort_by_key(|s| key(s));
        let ascending: Vec<String> = ascending.iter().map(|s| s.id.clone()).collect();
        let descending: Vec<String> = ascending.iter().rev().cloned().collect();
        for (direction, expected) in [("ASC", &ascending), ("DESC", &descending)] {
            let vars = json!({ "s": site, "o": { "field": field, "direction": direction } });
            for first in [1, 2] {
                let got = page_through(
                    &app,
                    Some(&app.admin_token),
                    ORDERED,
                    vars.clone(),
                    &["guests"],
                    first,
                    id,
                )
                .await;
                assert_eq!(&got, expected, "{field} {direction}, {first} at a time");
            }
        }
    }
    // Left out, the order is by email ascending, as it always was; the direction defaults to ASC.
    let by_email = page_through(
        &app,
        Some(&app.admin_token),
        ORDERED,
        json!({ "s": site }),
        &["guests"],
        3,
        id,
    )
    .await;
    let by_email_asc = page_through(
        &app,
        Some(&app.admin_token),
        ORDERED,
        json!({ "s": site, "o": { "field": "EMAIL" } }),
        &["guests"],
        3,
        id,
    )
    .await;
    assert_eq!(by_email, by_email_asc);

    // A cursor belongs to the order it was cut in.
    let cursor = |o: Value| {
        let app = &app;
        let site = site.clone();
        async move {
            let r = data(
                app.admin(ORDERED, json!({ "s": site, "o": o, "first": 1 }))
                    .await,
            );
            r["guests"]["pageInfo"]["endCursor"].clone()
        }
    };
    let by_name = json!({ "field": "DISPLAY_NAME" });
    let by_name_desc = json!({ "field": "DISPLAY_NAME", "direction": "DESC" });
    for (from, to) in [
        (Value::Null, by_name.clone()),
        (by_name.clone(), Value::Null),
        (by_name.clone(), by_name_desc.clone()),
        (
            json!({ "field": "LAST_ACTIVE_AT" }),
            json!({ "field": "ACCESS_ENDS_AT" }),
        ),
    ] {
        let after = cursor(from.clone()).await;
        let r = app
            .admin(
                ORDERED,
                json!({ "s": site, "o": to, "first": 1, "after": after }),
            )
            .await;
        assert_eq!(
            code(&r).as_deref(),
            Some("INVALID_INPUT"),
            "{from} -> {to}: {r}"
        );
    }

    // The last activity is the admins' to see, and so is the order it makes.
    let paid = app
        .add_user("reader@acme.example", Some(ProductRole::User))
        .await;
    let session = app.session_for(&paid).await;
    let r = app
        .gql(
            Some(&session),
            ORDERED,
            json!({ "s": site, "o": { "field": "LAST_ACTIVE_AT" } }),
        )
        .await;
    assert_eq!(code(&r).as_deref(), Some("FORBIDDEN"), "{r}");
    let r = app
        .gql(
            Some(&session),
            ORDERED,
            json!({ "s": site, "o": by_name_desc, "first": 10 }),
        )
        .await;
    assert_eq!(data(r)["guests"]["totalCount"], 7);
    app.stop().await;
}

const DIRECTORY: &str = "query($s: ID!, $o: UserOrder, $first: Int, $after: String) { users(siteId: $s, external: true, orderBy: $o, first: $first, after: $after) { totalCount pageInfo { hasNextPage endCursor } edges { cursor node { user { id } } } } }";
const SITE_DIRECTORY: &str = "query($s: ID!, $o: UserOrder, $first: Int, $after: String) { site(id: $s) { users(external: true, orderBy: $o, first: $first, after: $after) { totalCount pageInfo { hasNextPage endCursor } edges { cursor node { user { id } } } } } }";

/// One person of the directory as the test set them up: id, email, lower-case name, last activity.
type Member = (String, String, String, Option<&'static str>);

#[actix_rt::test]
async fn the_people_directory_is_ordered_by_each_field_both_ways_with_cursors_of_its_order() {
    let app = spawn_app().await;
    let site = app.site_id.clone();
    // External people only (`external: true` leaves out the admin, whose activity the requests
    // move): paid users and guests, with ties on names and times and people never active.
    let rows = [
        (
            "u-a@partner.example",
            ProductRole::User,
            "Mia",
            Some("2026-01-03"),
        ),
        ("u-b@partner.example", ProductRole::Guest, "alex", None),
        (
            "u-c@partner.example",
            ProductRole::User,
            "Zoe",
            Some("2026-01-01"),
        ),
        (
            "u-d@partner.example",
            ProductRole::Guest,
            "bea",
            Some("2026-01-03"),
        ),
        (
            "u-e@partner.example",
            ProductRole::User,
            "Alex",
            Some("2026-01-02"),
        ),
        ("u-f@partner.example", ProductRole::User, "carl", None),
    ];
    let mut set: Vec<Member> = Vec::new();
    for (email, role, name, last_active) in rows {
        let id = app.add_user(email, Some(role)).await;
        let when = last_active.map_or("NULL".to_string(), |d| format!("'{d} 00:00:00+00'"));
        app.db.execute(&format!(
            "UPDATE users SET display_name = '{name}', last_active_at = {when} WHERE id = '{id}'"
        ));
        set.push((id, email.into(), name.to_lowercase(), last_active));
    }
    let sorted = |key: &dyn Fn(&Member) -> (bool, String)| {
        let mut s: Vec<_> = set.iter().collect();
        s.sort_by_key(|r| (key(r), uuid_of(&r.0)));
        s.into_iter().map(|r| r.0.clone()).collect::<Vec<String>>()
    };
    let orders = [
        ("EMAIL", sorted(&|r| (false, r.1.clone()))),
        ("DISPLAY_NAME", sorted(&|r| (false, r.2.clone()))),
        // Never active: the earliest activity.
        (
            "LAST_ACTIVE_AT",
            sorted(&|r| (r.3.is_some(), r.3.unwrap_or("").to_string())),
        ),
    ];
    let id = |n: &Value| n["user"]["id"].as_str().unwrap().to_string();
    for (field, ascending) in &orders {
        let descending: Vec<String> = ascending.iter().rev().cloned().collect();
        for (direction, expected) in [("ASC", ascending), ("DESC", &descending)] {
            let vars = json!({ "s": site, "o": { "field": field, "direction": direction } });
            for (query, path) in [
                (DIRECTORY, &["users"][..]),
                (SITE_DIRECTORY, &["site", "users"]),
            ] {
                let got = page_through(
                    &app,
                    Some(&app.admin_token),
                    query,
                    vars.clone(),
                    path,
                    2,
                    id,
                )
                .await;
                assert_eq!(&got, expected, "{field} {direction} ({path:?})");
            }
        }
    }
    // Left out, the order is by email ascending with the cursors it always had.
    let by_default = page_through(
        &app,
        Some(&app.admin_token),
        DIRECTORY,
        json!({ "s": site }),
        &["users"],
        2,
        id,
    )
    .await;
    assert_eq!(by_default, orders[0].1);
    let first = data(app.admin(DIRECTORY, json!({ "s": site, "first": 1 })).await);
    let old = json!([set[0].1, uuid_of(&set[0].0)]);
    assert_eq!(first["users"]["pageInfo"]["endCursor"].as_str().unwrap(), {
        use async_graphql::connection::CursorType;
        async_graphql::connection::OpaqueCursor(old).encode_cursor()
    });

    // A cursor belongs to the order it was cut in.
    let cursor = |o: Value| {
        let app = &app;
        let site = site.clone();
        async move {
            let r = data(
                app.admin(DIRECTORY, json!({ "s": site, "o": o, "first": 1 }))
                    .await,
            );
            r["users"]["pageInfo"]["endCursor"].clone()
        }
    };
    let by_name = json!({ "field": "DISPLAY_NAME" });
    let by_name_desc = json!({ "field": "DISPLAY_NAME", "direction": "DESC" });
    for (from, to) in [
        (Value::Null, by_name.clone()),
        (by_name.clone(), Value::Null),
        (by_name.clone(), by_name_desc.clone()),
        (
            json!({ "field": "EMAIL", "direction": "DESC" }),
            Value::Null,
        ),
        (json!({ "field": "LAST_ACTIVE_AT" }), by_name.clone()),
        (by_name.clone(), json!({ "field": "LAST_ACTIVE_AT" })),
    ] {
        let after = cursor(from.clone()).await;
        let r = app
            .admin(
                DIRECTORY,
                json!({ "s": site, "o": to, "first": 1, "after": after }),
            )
            .await;
        assert_eq!(
            code(&r).as_deref(),
            Some("INVALID_INPUT"),
            "{from} -> {to}: {r}"
        );
    }

    // The last activity is the admins' to see, and so is the order it makes; paid users still
    // read the directory in the other orders.
    let paid = app
        .add_user("reader@acme.example", Some(ProductRole::User))
        .await;
    let session = app.session_for(&paid).await;
    for query in [DIRECTORY, SITE_DIRECTORY] {
        let r = app
            .gql(
                Some(&session),
                query,
                json!({ "s": site, "o": { "field": "LAST_ACTIVE_AT" } }),
            )
            .await;
        assert_eq!(code(&r).as_deref(), Some("FORBIDDEN"), "{r}");
    }
    let r = app
        .gql(
            Some(&session),
            DIRECTORY,
            json!({ "s": site, "o": by_name_desc, "first": 10 }),
        )
        .await;
    assert_eq!(data(r)["users"]["totalCount"], 6);
    app.stop().await;
}
