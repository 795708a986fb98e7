//! The exposure walk (issue 15): the schema, read by introspection from the live server, is walked
//! from every query root field down through object fields, one path per request, with arguments
//! filled from a pool of ids of objects each viewer may and may not reach. Every response (data and
//! errors), the CSV exports and the HTML pages are then searched for the strings of every object the
//! policy hides from that viewer. One test per viewer, each in its own database.
//!
//! The policy, per viewer:
//! - a guest of space A sees their own account, their one space and its pages, the site's name, and
//!   the display name (only) of whoever invited and sponsors them;
//! - a guest without a space sees their own account and the site's name;
//! - a paid user sees the site's spaces and pages and the people of their site, not site 2's people
//!   or spaces, not invites, bulk files or audit events, nothing of other organizations;
//! - a space admin, as a paid user;
//! - a site admin of site 1 also sees site 1's invites and bulk files, but nothing of site 2's
//!   spaces, pages, invites, bulk files, nor people whose only access is on site 2;
//! - an admin of another organization sees nothing of Acme; anonymous sees nothing.
//!
//! No viewer here sees the organization's webhook endpoints, their secrets or their deliveries
//! (organization admins only).

use crate::common::*;
use futures_util::StreamExt;
use guestpass::domain::{EmailAddress, ProductRole};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// Object-field hops from a root field: `me.groups.members.edges.node` is 5.
const MAX_DEPTH: usize = 6;
/// How often one field of one type may appear in a path (`User.invitedBy` twice: the inviter's inviter).
const MAX_EDGE_REPEAT: usize = 2;
/// Paths asked per viewer at most (shallowest first).
const MAX_PATHS: usize = 10_000;
/// Requests in flight at once.
const CONCURRENCY: usize = 16;
/// `first` of connections; lowered on `QUERY_TOO_COMPLEX`.
const FIRSTS: [u32; 5] = [50, 20, 8, 3, 1];

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, Hash)]
enum Viewer {
    Guest,
    Unassigned,
    Paid,
    SpaceAdmin,
    SiteAdmin,
    OtherOrgAdmin,
    Anonymous,
}

use Viewer::*;

const STAFF: [Viewer; 3] = [Paid, SpaceAdmin, SiteAdmin];
const MEMBERS: [Viewer; 5] = [Guest, Unassigned, Paid, SpaceAdmin, SiteAdmin];

/// One string of one object, and who may see it.
struct Fact {
    what: String,
    value: String,
    seen_by: Vec<Viewer>,
}

#[derive(Default)]
struct Pools {
    sites: Vec<String>,
    spaces: Vec<String>,
    users: Vec<String>,
    groups: Vec<String>,
    invites: Vec<String>,
    bulks: Vec<String>,
    /// Webhook endpoints and deliveries (organization admins only).
    webhooks: Vec<String>,
}

impl Pools {
    fn all(&self) -> Vec<String> {
        [
            &self.sites,
            &self.spaces,
            &self.users,
            &self.groups,
            &self.invites,
            &self.bulks,
            &self.webhooks,
        ]
        .into_iter()
        .flatten()
        .cloned()
        .collect()
    }
}

struct World {
    tokens: HashMap<Viewer, Option<String>>,
    facts: Vec<Fact>,
    pools: Pools,
    /// Sites whose guest export each viewer is tried on.
    sites: Vec<String>,
    /// The link guest A accepted (their own, used).
    guest_link: String,
}

impl World {
    fn fact(&mut self, what: impl Into<String>, value: impl Into<String>, seen_by: &[Viewer]) {
        self.facts.push(Fact {
            what: what.into(),
            value: value.into(),
            seen_by: seen_by.to_vec(),
        });
    }

    /// A person's id, email and name: `full` see all three, `name_only` their display name.
    fn person(
        &mut self,
        who: &str,
        id: &str,
        email: &str,
        name: &str,
        full: &[Viewer],
        name_only: &[Viewer],
    ) {
        // A name-only sight (a guest's inviter or sponsor) carries the id too, as the policy's
        // table says: clients need it to cache the object.
        let mut both = full.to_vec();
        both.extend_from_slice(name_only);
        self.fact(format!("{who}'s id"), id, &both);
        self.fact(format!("{who}'s email"), email, full);
        self.fact(format!("{who}'s name"), name, &both);
        self.pools.users.push(id.to_string());
    }

    fn forbidden(&self, v: Viewer) -> Vec<&Fact> {
        self.facts
            .iter()
            .filter(|f| !f.seen_by.contains(&v))
            .collect()
    }
}

fn plus(a: &[Viewer], b: &[Viewer]) -> Vec<Viewer> {
    a.iter().chain(b).copied().collect()
}

/// A user of `org` with a display name and, optionally, a direct role on `site` (setup shortcut).
async fn person(
    app: &TestApp,
    org: &str,
    site: Option<&str>,
    email: &str,
    name: &str,
    role: Option<ProductRole>,
) -> String {
    let email = EmailAddress::parse(email).unwrap();
    let name = name.to_string();
    let org: uuid::Uuid = org.parse().unwrap();
    let site: Option<uuid::Uuid> = site.map(|s| s.parse().unwrap());
    app.state
        .db
        .run(move |c| {
            use diesel::prelude::*;
            use guestpass::db::schema::*;
            let now = chrono::Utc::now();
            let id: uuid::Uuid = diesel::insert_into(users::table)
                .values((
                    users::organization_id.eq(org),
                    users::email.eq(email.as_str()),
                    users::email_normalized.eq(email.normalized()),
                    users::display_name.eq(&name),
                    users::created_at.eq(now),
                ))
                .returning(users::id)
                .get_result(c)?;
            if let (Some(site), Some(r)) = (site, role) {
                use guestpass::store::changes::grants;
                grants::set_direct_role(c, site, id, Some(r), now)?;
                if r.is_paid() {
                    grants::record_paid(c, site, &[id], now)?;
                }
            }
            guestpass::store::changes::check::run(c, true, chrono::Utc::now())?;
            Ok(id.to_string())
        })
        .await
        .unwrap()
}

/// A GraphQL call that must succeed; the `id` of the one object its payload `field` carries.
async fn id_of(app: &TestApp, token: &str, q: &str, vars: Value, field: &str) -> String {
    let r = data(app.gql(Some(token), q, vars).await);
    let payload = r[field].as_object().unwrap();
    payload.values().next().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn must(app: &TestApp, token: &str, q: &str, vars: Value) -> Value {
    data(app.gql(Some(token), q, vars).await)
}

const CREATE_SPACE: &str =
    "mutation($i: CreateSpaceInput!) { createSpace(input: $i) { space { id } } }";
const CREATE_PAGE: &str =
    "mutation($i: CreatePageInput!) { createPage(input: $i) { page { id } } }";
const CREATE_GROUP: &str =
    "mutation($i: CreateGroupInput!) { createGroup(input: $i) { group { id } } }";
const ADMIN_ROLE: &str =
    "mutation($i: SetAdminRoleInput!) { setAdminRole(input: $i) { user { id } } }";
const ASSIGN: &str = "mutation($i: AssignGuestSpaceInput!) { assignGuestSpace(input: $i) { assignments { user { id } } } }";
const GROUP_ROLE: &str =
    "mutation($i: SetGroupProductRoleInput!) { setGroupProductRole(input: $i) { dryRun } }";
const ADD_MEMBERS: &str =
    "mutation($i: GroupMembersInput!) { addGroupMembers(input: $i) { dryRun } }";

async fn upload(app: &TestApp, token: &str, site: &str, csv: &str) -> String {
    let mut res = app
        .client()
        .post(format!("{}/admin/invites.csv?siteId={site}", app.address))
        .insert_header(("Authorization", format!("Bearer {token}")))
        .insert_header(("Content-Type", "text/csv"))
        .send_body(csv.to_string())
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    assert_eq!(res.status().as_u16(), 202, "{body}");
    body["id"].as_str().unwrap().to_string()
}

async fn bulk_done(app: &TestApp, id: &str) {
    let start = Instant::now();
    loop {
        let r = must(
            app,
            &app.admin_token,
            "query($b: ID!) { bulkInvite(id: $b) { status } }",
            json!({ "b": id }),
        )
        .await;
        if r["bulkInvite"]["status"] == "DONE" {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "bulk invite stuck"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Acme with two sites, spaces, pages, guests, groups, invites and bulk files; another organization.
async fn world(app: &TestApp) -> World {
    let mut w = World {
        tokens: HashMap::new(),
        facts: Vec::new(),
        pools: Pools::default(),
        sites: Vec::new(),
        guest_link: String::new(),
    };
    let admin = app.admin_token.clone();
    let (org, s1) = (app.org_id.clone(), app.site_id.clone());

    // Site 2 of Acme (bootstrap finds the organization and its admin, and adds the site).
    let s2 = app
        .bootstrap(
            "Acme",
            "SITE-TWO-MARKER",
            "admin@acme.example",
            &["acme.example"],
        )
        .await
        .site
        .id
        .to_string();
    app.db.execute(&format!(
        "UPDATE organizations SET name = 'ACME-ORG-MARKER' WHERE id = '{org}';
         UPDATE sites SET name = 'SITE-ONE-DOCS' WHERE id = '{s1}';
         UPDATE users SET display_name = 'Admin Inviter Marker' WHERE id = '{}';",
        app.admin_id
    ));

    // A webhook endpoint of Acme, for invites: organization admins only, so no viewer of this walk
    // may see it, its secret or its deliveries (its receiver is a closed port: deliveries fail).
    let hook = must(
        app,
        &admin,
        "mutation($i: CreateWebhookEndpointInput!) { createWebhookEndpoint(input: $i) { endpoint { id } secret } }",
        json!({ "i": { "url": "http://127.0.0.1:9/WEBHOOK-URL-MARKER", "events": ["INVITE_CREATED"],
                       "description": "WEBHOOK-DESCRIPTION-MARKER" } }),
    )
    .await;
    let endpoint = hook["createWebhookEndpoint"]["endpoint"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let secret = hook["createWebhookEndpoint"]["secret"]
        .as_str()
        .unwrap()
        .to_string();

    // Spaces and pages.
    let mut spaces = HashMap::new();
    let mut pages = HashMap::new();
    for (label, site, key) in [
        ("ALPHA", &s1, "ALPHAKEY"),
        ("BRAVO", &s1, "BRAVOKEY"),
        ("CHARLIE", &s2, "CHARLIEKEY"),
    ] {
        let id = id_of(
            app,
            &admin,
            CREATE_SPACE,
            json!({ "i": { "siteId": site, "key": key, "name": format!("SPACE-{label}-MARKER") } }),
            "createSpace",
        )
        .await;
        let page = id_of(
            app,
            &admin,
            CREATE_PAGE,
            json!({ "i": { "spaceId": id, "title": format!("PAGE-{label}-TITLE"), "body": format!("PAGE-{label}-BODY") } }),
            "createPage",
        )
        .await;
        spaces.insert(label, id);
        pages.insert(label, page);
    }
    let (sa, sb, sc) = (
        spaces["ALPHA"].clone(),
        spaces["BRAVO"].clone(),
        spaces["CHARLIE"].clone(),
    );

    // People of Acme.
    let p = |site: Option<&str>, email: &str, name: &str, role| {
        let (org, site) = (org.clone(), site.map(str::to_string));
        let (email, name) = (email.to_string(), name.to_string());
        async move { person(app, &org, site.as_deref(), &email, &name, role).await }
    };
    let site_admin_one = p(
        None,
        "site-admin-one@acme.example",
        "Site Admin One Marker",
        None,
    )
    .await;
    let site_admin_two = p(
        None,
        "site-admin-two@acme.example",
        "Site Admin Two Marker",
        None,
    )
    .await;
    for (u, s) in [(&site_admin_one, &s1), (&site_admin_two, &s2)] {
        must(
            app,
            &admin,
            ADMIN_ROLE,
            json!({ "i": { "userId": u, "role": "SITE_ADMIN", "siteId": s, "granted": true } }),
        )
        .await;
    }
    let paid = p(
        Some(&s1),
        "paid-sponsor@acme.example",
        "Paid Sponsor Marker",
        Some(ProductRole::User),
    )
    .await;
    let space_admin = p(
        Some(&s1),
        "space-admin-alpha@acme.example",
        "Space Admin Alpha Marker",
        Some(ProductRole::User),
    )
    .await;
    must(
        app,
        &admin,
        "mutation($i: SpaceAdminInput!) { addSpaceAdmin(input: $i) { space { id } } }",
        json!({ "i": { "spaceId": sa, "userId": space_admin } }),
    )
    .await;
    let guest_a2 = p(
        Some(&s1),
        "guest-apricot@partner.example",
        "Guest Apricot Marker",
        Some(ProductRole::Guest),
    )
    .await;
    let guest_b = p(
        Some(&s1),
        "guest-bravo@partner.example",
        "Guest Bravo Marker",
        Some(ProductRole::Guest),
    )
    .await;
    let guest_u = p(
        Some(&s1),
        "guest-unassigned@partner.example",
        "Guest Unassigned Marker",
        Some(ProductRole::Guest),
    )
    .await;
    let guest_s2 = p(
        Some(&s2),
        "guest-site-two@partner.example",
        "Guest Site Two Marker",
        Some(ProductRole::Guest),
    )
    .await;
    let paid_s2 = p(
        Some(&s2),
        "paid-site-two@acme.example",
        "Paid Site Two Marker",
        Some(ProductRole::User),
    )
    .await;
    let grouped_s2 = p(
        None,
        "grouped-site-two@acme.example",
        "Grouped Site Two Marker",
        None,
    )
    .await;
    for (space, users) in [
        (&sa, vec![guest_a2.clone()]),
        (&sb, vec![guest_b.clone()]),
        (&sc, vec![guest_s2.clone()]),
    ] {
        must(
            app,
            &admin,
            ASSIGN,
            json!({ "i": { "spaceId": space, "userIds": users } }),
        )
        .await;
    }

    // Guest A: invited by the admin into space A, accepted, sponsored by the paid user.
    let r = must(
        app,
        &admin,
        INVITE,
        json!({ "input": { "siteId": s1, "emails": ["guest-alpha@partner.example"], "role": "GUEST", "spaceId": sa } }),
    )
    .await;
    let guest_invite = r["inviteUsers"]["invites"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    w.guest_link = app.invite_token(&guest_invite).await;
    let r = data(
        app.gql(
            None,
            "mutation($i: AcceptInviteInput!) { acceptInvite(input: $i) { sessionToken user { id } } }",
            json!({ "i": { "token": w.guest_link, "displayName": "Guest Alpha Marker", "password": GUEST_PASSWORD } }),
        )
        .await,
    );
    let guest_a = r["acceptInvite"]["user"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let guest_session = r["acceptInvite"]["sessionToken"]
        .as_str()
        .unwrap()
        .to_string();
    must(
        app,
        &admin,
        "mutation($i: SetSponsorInput!) { setSponsor(input: $i) { sponsorId } }",
        json!({ "i": { "siteId": s1, "userId": guest_a, "sponsorId": paid } }),
    )
    .await;

    // A guest group of site 1 with guests of two spaces; a group giving a role on site 2.
    let g1 = id_of(
        app,
        &admin,
        CREATE_GROUP,
        json!({ "i": { "name": "GUEST-GROUP-MARKER" } }),
        "createGroup",
    )
    .await;
    must(
        app,
        &admin,
        GROUP_ROLE,
        json!({ "i": { "groupId": g1, "siteId": s1, "role": "GUEST" } }),
    )
    .await;
    must(
        app,
        &admin,
        ADD_MEMBERS,
        json!({ "i": { "groupId": g1, "userIds": [guest_a, guest_a2, guest_b] } }),
    )
    .await;
    let g2 = id_of(
        app,
        &admin,
        CREATE_GROUP,
        json!({ "i": { "name": "SITE-TWO-GROUP-MARKER" } }),
        "createGroup",
    )
    .await;
    must(
        app,
        &admin,
        GROUP_ROLE,
        json!({ "i": { "groupId": g2, "siteId": s2, "role": "USER" } }),
    )
    .await;
    must(
        app,
        &admin,
        ADD_MEMBERS,
        json!({ "i": { "groupId": g2, "userIds": [grouped_s2] } }),
    )
    .await;

    // Pending invites and bulk files on both sites.
    let mut invites = Vec::new();
    for (site, space, email, msg) in [
        (
            &s1,
            &sb,
            "pending-one@partner.example",
            "INVITE-ONE-MESSAGE",
        ),
        (
            &s2,
            &sc,
            "pending-two@partner.example",
            "INVITE-TWO-MESSAGE",
        ),
    ] {
        let r = must(
            app,
            &admin,
            INVITE,
            json!({ "input": { "siteId": site, "emails": [email], "role": "GUEST", "spaceId": space, "personalMessage": msg } }),
        )
        .await;
        invites.push(
            r["inviteUsers"]["invites"][0]["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let bulk1 = upload(
        app,
        &admin,
        &s1,
        "email,role,space key,group names,personal message\nbulk-one@partner.example,GUEST,BRAVOKEY,,BULK-ONE-MESSAGE\n",
    )
    .await;
    let bulk2 = upload(
        app,
        &admin,
        &s2,
        "email,role,space key,group names,personal message\nbulk-two@partner.example,GUEST,CHARLIEKEY,,BULK-TWO-MESSAGE\n",
    )
    .await;
    bulk_done(app, &bulk1).await;
    bulk_done(app, &bulk2).await;

    // Another organization with its own admin, site, space, page, guest, group and invite.
    let other = app
        .bootstrap(
            "ELSEWHERE-ORG-MARKER",
            "OTHER-SITE-MARKER",
            "other-admin@elsewhere.example",
            &["elsewhere.example"],
        )
        .await;
    let (oorg, osite, oadmin, otoken) = (
        other.organization.id.to_string(),
        other.site.id.to_string(),
        other.admin.id.to_string(),
        other.api_token.clone(),
    );
    app.db.execute(&format!(
        "UPDATE users SET display_name = 'Other Admin Marker' WHERE id = '{oadmin}'"
    ));
    let ospace = id_of(
        app,
        &otoken,
        CREATE_SPACE,
        json!({ "i": { "siteId": osite, "key": "OTHERKEY", "name": "OTHER-SPACE-MARKER" } }),
        "createSpace",
    )
    .await;
    let opage = id_of(
        app,
        &otoken,
        CREATE_PAGE,
        json!({ "i": { "spaceId": ospace, "title": "OTHER-PAGE-TITLE", "body": "OTHER-PAGE-BODY" } }),
        "createPage",
    )
    .await;
    let oguest = person(
        app,
        &oorg,
        Some(&osite),
        "other-guest@partner.example",
        "Other Guest Marker",
        Some(ProductRole::Guest),
    )
    .await;
    must(
        app,
        &otoken,
        ASSIGN,
        json!({ "i": { "spaceId": ospace, "userIds": [oguest] } }),
    )
    .await;
    let ogroup = id_of(
        app,
        &otoken,
        CREATE_GROUP,
        json!({ "i": { "name": "OTHER-GROUP-MARKER" } }),
        "createGroup",
    )
    .await;
    must(
        app,
        &otoken,
        ADD_MEMBERS,
        json!({ "i": { "groupId": ogroup, "userIds": [oguest] } }),
    )
    .await;
    let r = must(
        app,
        &otoken,
        INVITE,
        json!({ "input": { "siteId": osite, "emails": ["other-pending@partner.example"], "role": "GUEST", "spaceId": ospace, "personalMessage": "OTHER-INVITE-MESSAGE" } }),
    )
    .await;
    let oinvite = r["inviteUsers"]["invites"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();

    // Who may see what.
    let o = [OtherOrgAdmin];
    let guest_staff = plus(&[Guest], &STAFF);
    w.fact("Acme's id", &org, &MEMBERS);
    w.fact("Acme's name", "ACME-ORG-MARKER", &MEMBERS);
    w.fact("Acme's verified domain", "acme.example", &MEMBERS);
    w.fact("site 1's id", &s1, &MEMBERS);
    w.fact("site 1's name", "SITE-ONE-DOCS", &MEMBERS);
    // Groups are the organization's and staff see them with their site roles, which name site 2.
    w.fact("site 2's id", &s2, &STAFF);
    w.fact("site 2's name", "SITE-TWO-MARKER", &[]);
    for (label, seen) in [
        ("ALPHA", guest_staff.clone()),
        ("BRAVO", STAFF.to_vec()),
        ("CHARLIE", vec![]),
    ] {
        let l = label.to_lowercase();
        w.fact(format!("space {l}'s id"), &spaces[label], &seen);
        w.fact(
            format!("space {l}'s name"),
            format!("SPACE-{label}-MARKER"),
            &seen,
        );
        w.fact(format!("space {l}'s key"), format!("{label}KEY"), &seen);
        w.fact(format!("page of {l}'s id"), &pages[label], &seen);
        w.fact(
            format!("page of {l}'s title"),
            format!("PAGE-{label}-TITLE"),
            &seen,
        );
        w.fact(
            format!("page of {l}'s body"),
            format!("PAGE-{label}-BODY"),
            &seen,
        );
    }
    let admin_id = app.admin_id.clone();
    for (who, id, email, name, full, name_only) in [
        (
            "the org admin (guest A's inviter)",
            &admin_id,
            "admin@acme.example",
            "Admin Inviter Marker",
            STAFF.to_vec(),
            vec![Guest],
        ),
        (
            "site admin one",
            &site_admin_one,
            "site-admin-one@acme.example",
            "Site Admin One Marker",
            STAFF.to_vec(),
            vec![],
        ),
        (
            "the paid user (guest A's sponsor)",
            &paid,
            "paid-sponsor@acme.example",
            "Paid Sponsor Marker",
            STAFF.to_vec(),
            vec![Guest],
        ),
        (
            "space admin of alpha",
            &space_admin,
            "space-admin-alpha@acme.example",
            "Space Admin Alpha Marker",
            STAFF.to_vec(),
            vec![],
        ),
        (
            "guest A",
            &guest_a,
            "guest-alpha@partner.example",
            "Guest Alpha Marker",
            guest_staff.clone(),
            vec![],
        ),
        (
            "guest A2 (same space)",
            &guest_a2,
            "guest-apricot@partner.example",
            "Guest Apricot Marker",
            STAFF.to_vec(),
            vec![],
        ),
        (
            "guest B (space bravo)",
            &guest_b,
            "guest-bravo@partner.example",
            "Guest Bravo Marker",
            STAFF.to_vec(),
            vec![],
        ),
        (
            "the unassigned guest",
            &guest_u,
            "guest-unassigned@partner.example",
            "Guest Unassigned Marker",
            plus(&[Unassigned], &STAFF),
            vec![],
        ),
        (
            "the site 2 guest",
            &guest_s2,
            "guest-site-two@partner.example",
            "Guest Site Two Marker",
            vec![],
            vec![],
        ),
        (
            "the site 2 paid user",
            &paid_s2,
            "paid-site-two@acme.example",
            "Paid Site Two Marker",
            vec![],
            vec![],
        ),
        (
            "the site 2 group member",
            &grouped_s2,
            "grouped-site-two@acme.example",
            "Grouped Site Two Marker",
            vec![],
            vec![],
        ),
        (
            "site admin two",
            &site_admin_two,
            "site-admin-two@acme.example",
            "Site Admin Two Marker",
            vec![],
            vec![],
        ),
        (
            "the other org's admin",
            &oadmin,
            "other-admin@elsewhere.example",
            "Other Admin Marker",
            o.to_vec(),
            vec![],
        ),
        (
            "the other org's guest",
            &oguest,
            "other-guest@partner.example",
            "Other Guest Marker",
            o.to_vec(),
            vec![],
        ),
    ] {
        w.person(who, id, email, name, &full, &name_only);
    }
    w.fact("the guest group's id", &g1, &STAFF);
    w.fact("the guest group's name", "GUEST-GROUP-MARKER", &STAFF);
    w.fact("the site 2 group's id", &g2, &STAFF);
    w.fact("the site 2 group's name", "SITE-TWO-GROUP-MARKER", &STAFF);
    w.fact("site 1 invite's id", &invites[0], &[SiteAdmin]);
    w.fact(
        "site 1 invite's email",
        "pending-one@partner.example",
        &[SiteAdmin],
    );
    w.fact(
        "site 1 invite's message",
        "INVITE-ONE-MESSAGE",
        &[SiteAdmin],
    );
    w.fact(
        "guest A's (accepted) invite's id",
        &guest_invite,
        &[SiteAdmin],
    );
    w.fact("site 2 invite's id", &invites[1], &[]);
    w.fact("site 2 invite's email", "pending-two@partner.example", &[]);
    w.fact("site 2 invite's message", "INVITE-TWO-MESSAGE", &[]);
    w.fact("site 1 bulk file's id", &bulk1, &[SiteAdmin]);
    w.fact(
        "site 1 bulk row's email",
        "bulk-one@partner.example",
        &[SiteAdmin],
    );
    w.fact(
        "site 1 bulk row's message",
        "BULK-ONE-MESSAGE",
        &[SiteAdmin],
    );
    w.fact("site 2 bulk file's id", &bulk2, &[]);
    w.fact("site 2 bulk row's email", "bulk-two@partner.example", &[]);
    w.fact("site 2 bulk row's message", "BULK-TWO-MESSAGE", &[]);
    w.fact("the other org's id", &oorg, &o);
    w.fact("the other org's name", "ELSEWHERE-ORG-MARKER", &o);
    w.fact("the other org's slug", "elsewhere-org-marker", &o);
    w.fact("the other org's site id", &osite, &o);
    w.fact("the other org's site name", "OTHER-SITE-MARKER", &o);
    w.fact("the other org's space id", &ospace, &o);
    w.fact("the other org's space name", "OTHER-SPACE-MARKER", &o);
    w.fact("the other org's space key", "OTHERKEY", &o);
    w.fact("the other org's page id", &opage, &o);
    w.fact("the other org's page title", "OTHER-PAGE-TITLE", &o);
    w.fact("the other org's page body", "OTHER-PAGE-BODY", &o);
    w.fact("the other org's group id", &ogroup, &o);
    w.fact("the other org's group name", "OTHER-GROUP-MARKER", &o);
    w.fact("the other org's invite id", &oinvite, &o);
    w.fact(
        "the other org's invite email",
        "other-pending@partner.example",
        &o,
    );
    w.fact("the other org's invite message", "OTHER-INVITE-MESSAGE", &o);

    let deliveries = must(
        app,
        &admin,
        "query($e: ID!) { webhookDeliveries(endpointId: $e) { nodes { id } } }",
        json!({ "e": endpoint }),
    )
    .await;
    let delivery = deliveries["webhookDeliveries"]["nodes"][0]["id"]
        .as_str()
        .expect("the invites made a webhook delivery")
        .to_string();
    w.fact("the webhook endpoint's id", &endpoint, &[]);
    w.fact("the webhook endpoint's URL", "WEBHOOK-URL-MARKER", &[]);
    w.fact(
        "the webhook endpoint's description",
        "WEBHOOK-DESCRIPTION-MARKER",
        &[],
    );
    w.fact("the webhook endpoint's secret", &secret, &[]);
    w.fact("a webhook delivery's id", &delivery, &[]);
    w.pools.webhooks = vec![endpoint, delivery];

    w.pools.sites = vec![s1.clone(), s2.clone(), osite.clone()];
    w.pools.spaces = vec![sa.clone(), sb.clone(), sc.clone(), ospace];
    w.pools.groups = vec![g1, g2, ogroup];
    w.pools.invites = vec![
        invites[0].clone(),
        invites[1].clone(),
        guest_invite,
        oinvite,
    ];
    w.pools.bulks = vec![bulk1, bulk2];
    w.sites = vec![s1, s2, osite];

    w.tokens.insert(Guest, Some(guest_session));
    w.tokens
        .insert(Unassigned, Some(app.session_for(&guest_u).await));
    w.tokens.insert(Paid, Some(app.session_for(&paid).await));
    w.tokens
        .insert(SpaceAdmin, Some(app.session_for(&space_admin).await));
    w.tokens
        .insert(SiteAdmin, Some(app.session_for(&site_admin_one).await));
    w.tokens.insert(OtherOrgAdmin, Some(otoken));
    w.tokens.insert(Anonymous, None);

    // No hidden string may be part of a string the same viewer is allowed to see.
    for v in [
        Guest,
        Unassigned,
        Paid,
        SpaceAdmin,
        SiteAdmin,
        OtherOrgAdmin,
        Anonymous,
    ] {
        for f in w.forbidden(v) {
            for a in w.facts.iter().filter(|a| a.seen_by.contains(&v)) {
                assert!(
                    !a.value.contains(&f.value),
                    "{v:?}: hidden {} is inside allowed {}",
                    f.what,
                    a.what
                );
            }
        }
    }
    w
}

// ---------------------------------------------------------------------------------------------
// The schema, from introspection.

#[derive(Clone, Debug)]
struct Ty {
    kind: String,
    name: Option<String>,
    of: Option<Box<Ty>>,
}

impl Ty {
    fn parse(v: &Value) -> Self {
        Self {
            kind: v["kind"].as_str().unwrap().to_string(),
            name: v["name"].as_str().map(str::to_string),
            of: (!v["ofType"].is_null()).then(|| Box::new(Ty::parse(&v["ofType"]))),
        }
    }
    fn named(&self) -> &str {
        match &self.of {
            Some(t) => t.named(),
            None => self.name.as_deref().expect("a named type at the end"),
        }
    }
    fn required(&self) -> bool {
        self.kind == "NON_NULL"
    }
}

struct InputValue {
    name: String,
    ty: Ty,
    has_default: bool,
}

struct FieldDef {
    name: String,
    args: Vec<InputValue>,
    ty: Ty,
}

struct TypeDef {
    kind: String,
    fields: Vec<FieldDef>,
    input_fields: Vec<InputValue>,
    enum_values: Vec<String>,
}

struct Schema {
    query: String,
    types: HashMap<String, TypeDef>,
}

const INTROSPECTION: &str = "query { __schema { queryType { name } types { kind name \
    fields(includeDeprecated: true) { name args { name defaultValue type { ...T } } type { ...T } } \
    inputFields { name defaultValue type { ...T } } enumValues(includeDeprecated: true) { name } } } } \
    fragment T on __Type { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } }";

async fn introspect(app: &TestApp) -> Schema {
    let r = data(app.admin(INTROSPECTION, json!({})).await);
    let inputs = |v: &Value| -> Vec<InputValue> {
        v.as_array()
            .into_iter()
            .flatten()
            .map(|a| InputValue {
                name: a["name"].as_str().unwrap().to_string(),
                ty: Ty::parse(&a["type"]),
                has_default: !a["defaultValue"].is_null(),
            })
            .collect()
    };
    let mut types = HashMap::new();
    for t in r["__schema"]["types"].as_array().unwrap() {
        let fields = t["fields"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|f| FieldDef {
                name: f["name"].as_str().unwrap().to_string(),
                args: inputs(&f["args"]),
                ty: Ty::parse(&f["type"]),
            })
            .collect();
        types.insert(
            t["name"].as_str().unwrap().to_string(),
            TypeDef {
                kind: t["kind"].as_str().unwrap().to_string(),
                fields,
                input_fields: inputs(&t["inputFields"]),
                enum_values: t["enumValues"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|e| e["name"].as_str().unwrap().to_string())
                    .collect(),
            },
        );
    }
    Schema {
        query: r["__schema"]["queryType"]["name"]
            .as_str()
            .unwrap()
            .to_string(),
        types,
    }
}

// ---------------------------------------------------------------------------------------------
// Paths.

/// Where a connection's `first` goes; replaced when the query is written.
const FIRST: &str = "@FIRST@";

#[derive(Clone, Debug)]
struct Step {
    parent: String,
    field: String,
    /// `(a: 1, b: "x")` or empty.
    args: String,
}

/// A scalar or enum field at a path's end, with its arguments.
#[derive(Clone, Debug)]
struct Leaf {
    /// The response key: the field's name, or an alias when it takes arguments.
    key: String,
    text: String,
}

struct Path {
    steps: Vec<Step>,
    leaves: Vec<Leaf>,
}

impl Schema {
    fn is_object(&self, name: &str) -> bool {
        self.types
            .get(name)
            .is_some_and(|t| matches!(t.kind.as_str(), "OBJECT" | "INTERFACE" | "UNION"))
    }

    fn literal(&self, ty: &Ty, name: &str, returns: &str, pools: &Pools) -> Vec<String> {
        let q = |s: &String| format!("\"{s}\"");
        match ty.named() {
            "ID" => {
                let pool = match name {
                    "siteId" => &pools.sites,
                    "spaceId" => &pools.spaces,
                    "userId" | "sponsorId" | "actorId" => &pools.users,
                    "groupId" => &pools.groups,
                    "endpointId" | "deliveryId" => &pools.webhooks,
                    _ => match returns {
                        "Site" => &pools.sites,
                        "Space" => &pools.spaces,
                        "User" => &pools.users,
                        "Group" => &pools.groups,
                        "Invite" => &pools.invites,
                        "BulkInvite" => &pools.bulks,
                        "WebhookEndpoint" | "WebhookDelivery" => &pools.webhooks,
                        _ => return pools.all().iter().map(q).collect(),
                    },
                };
                pool.iter().map(q).collect()
            }
            "Int" if name == "first" => vec![FIRST.into()],
            "Int" => vec!["1".into()],
            "Float" => vec!["1.0".into()],
            "Boolean" => vec!["false".into()],
            "String" => vec!["\"exposure\"".into()],
            "DateTime" => vec![format!("\"{}\"", chrono::Utc::now().to_rfc3339())],
            other => {
                let t = &self.types[other];
                match t.kind.as_str() {
                    "ENUM" => vec![t.enum_values[0].clone()],
                    "INPUT_OBJECT" => {
                        let fields: Vec<String> = t
                            .input_fields
                            .iter()
                            .filter(|f| f.ty.required() && !f.has_default)
                            .map(|f| {
                                let v = self.literal(&f.ty, &f.name, returns, pools);
                                format!("{}: {}", f.name, v[0])
                            })
                            .collect();
                        vec![format!("{{ {} }}", fields.join(", "))]
                    }
                    _ => vec!["\"exposure\"".into()],
                }
            }
        }
    }

    /// Every way of filling a field's arguments: required ones from the pools, `first` always.
    fn arg_sets(&self, f: &FieldDef, pools: &Pools) -> Vec<String> {
        let mut sets: Vec<Vec<String>> = vec![vec![]];
        for a in &f.args {
            let values = if a.ty.required() && !a.has_default {
                self.literal(&a.ty, &a.name, f.ty.named(), pools)
            } else if a.name == "first" {
                vec![FIRST.into()]
            } else {
                continue;
            };
            sets = sets
                .into_iter()
                .flat_map(|s| {
                    values.iter().map(move |v| {
                        let mut s = s.clone();
                        s.push(format!("{}: {v}", a.name));
                        s
                    })
                })
                .collect();
        }
        sets.into_iter()
            .map(|s| {
                if s.is_empty() {
                    String::new()
                } else {
                    format!("({})", s.join(", "))
                }
            })
            .collect()
    }

    fn leaves(&self, ty: &str, pools: &Pools) -> Vec<Leaf> {
        let mut out = vec![Leaf {
            key: "__typename".into(),
            text: "__typename".into(),
        }];
        for f in &self.types[ty].fields {
            if self.is_object(f.ty.named()) {
                continue;
            }
            let sets = self.arg_sets(f, pools);
            if sets.len() == 1 && sets[0].is_empty() {
                out.push(Leaf {
                    key: f.name.clone(),
                    text: f.name.clone(),
                });
            } else {
                for (i, args) in sets.iter().enumerate() {
                    let key = format!("{}_{i}", f.name);
                    out.push(Leaf {
                        text: format!("{key}: {}{args}", f.name),
                        key,
                    });
                }
            }
        }
        out
    }

    /// Every path from the query root, shallowest first, each ending in all its type's leaves.
    fn paths(&self, pools: &Pools) -> Vec<Path> {
        let mut out = Vec::new();
        let mut frontier: Vec<(Vec<Step>, String)> = vec![(vec![], self.query.clone())];
        for _ in 0..MAX_DEPTH {
            let mut next = Vec::new();
            for (steps, ty) in &frontier {
                for f in &self.types[ty].fields {
                    if f.name.starts_with("__") || !self.is_object(f.ty.named()) {
                        continue;
                    }
                    let used = steps
                        .iter()
                        .filter(|s| s.parent == *ty && s.field == f.name)
                        .count();
                    if used >= MAX_EDGE_REPEAT {
                        continue;
                    }
                    for args in self.arg_sets(f, pools) {
                        let mut s = steps.clone();
                        s.push(Step {
                            parent: ty.clone(),
                            field: f.name.clone(),
                            args,
                        });
                        next.push((s, f.ty.named().to_string()));
                    }
                }
            }
            for (steps, ty) in &next {
                out.push(Path {
                    steps: steps.clone(),
                    leaves: self.leaves(ty, pools),
                });
            }
            frontier = next;
        }
        out
    }
}

impl Path {
    /// The query, with `FIRST` where connections' `first` goes.
    fn raw(&self, leaves: &[&Leaf]) -> String {
        let mut q = String::from("query { ");
        for s in &self.steps {
            q.push_str(&format!("{}{} {{ ", s.field, s.args));
        }
        let l: Vec<&str> = leaves.iter().map(|l| l.text.as_str()).collect();
        q.push_str(&l.join(" "));
        for _ in &self.steps {
            q.push_str(" }");
        }
        q.push_str(" }");
        q
    }
}

// ---------------------------------------------------------------------------------------------
// Asking and checking.

struct Asked {
    query: String,
    response: Value,
    /// The connections' `first`.
    first: u32,
}

/// Lists of connections as long as their `first` (lowered for the complexity limit): maybe cut short.
fn truncated(v: &Value, first: u32) -> usize {
    match v {
        Value::Object(m) => m
            .iter()
            .map(|(k, x)| {
                let cut = matches!(k.as_str(), "edges" | "nodes")
                    && first < FIRSTS[0]
                    && x.as_array().is_some_and(|a| a.len() == first as usize);
                usize::from(cut) + truncated(x, first)
            })
            .sum(),
        Value::Array(a) => a.iter().map(|x| truncated(x, first)).sum(),
        _ => 0,
    }
}

fn error_code(r: &Value) -> Option<&str> {
    r["errors"][0]["extensions"]["code"].as_str()
}

/// One query, with `first` lowered until the complexity limit accepts it.
async fn ask_one(http: &Http, token: Option<&str>, path: &Path, leaves: &[&Leaf]) -> Asked {
    let raw = path.raw(leaves);
    let mut asked = None;
    for first in FIRSTS {
        let query = raw.replace(FIRST, &first.to_string());
        let response = http.post(token, &query).await;
        let again = error_code(&response) == Some("QUERY_TOO_COMPLEX") && raw.contains(FIRST);
        asked = Some(Asked {
            query,
            response,
            first,
        });
        if !again {
            break;
        }
    }
    asked.unwrap()
}

/// The leaves an error in `r` is about (a refused leaf nulls its parent and hides its siblings).
fn failed_leaves(r: &Value, depth: usize) -> BTreeSet<String> {
    r["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let keys: Vec<&str> = e["path"]
                .as_array()?
                .iter()
                .filter_map(Value::as_str)
                .collect();
            (keys.len() == depth + 1).then(|| keys[depth].to_string())
        })
        .collect()
}

/// A path: all its leaves at once; when some are refused, again without them, until nothing is
/// refused; then each refused leaf alone.
async fn ask(http: &Http, token: Option<&str>, path: &Path) -> Vec<Asked> {
    let mut out = Vec::new();
    let mut keep: Vec<&Leaf> = path.leaves.iter().collect();
    let mut refused: Vec<&Leaf> = Vec::new();
    loop {
        let a = ask_one(http, token, path, &keep).await;
        let failed = failed_leaves(&a.response, path.steps.len());
        out.push(a);
        if failed.is_empty() {
            break;
        }
        let (gone, kept): (Vec<&Leaf>, Vec<&Leaf>) =
            keep.into_iter().partition(|l| failed.contains(&l.key));
        keep = kept;
        if gone.is_empty() || keep.len() <= 1 {
            refused.extend(gone);
            break;
        }
        refused.extend(gone);
    }
    for l in refused {
        out.push(ask_one(http, token, path, &[l]).await);
    }
    out
}

#[derive(Debug)]
struct Leak {
    source: String,
    what: String,
    location: String,
}

/// Standard or URL-safe base64, padded or not; cursors are base64 of JSON and may carry strings.
fn unbase64(s: &str) -> Option<String> {
    if s.len() < 8 {
        return None;
    }
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in s.trim_end_matches('=').bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        bits = (bits << 6) | u32::from(v);
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
            bits &= (1 << n) - 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Every string in `v` with its location.
fn strings(v: &Value, at: String, out: &mut Vec<(String, String)>) {
    match v {
        Value::String(s) => {
            if let Some(d) = unbase64(s) {
                out.push((format!("{at} (base64)"), d));
            }
            out.push((at, s.clone()));
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                strings(x, format!("{at}[{i}]"), out);
            }
        }
        Value::Object(m) => {
            for (k, x) in m {
                strings(x, format!("{at}.{k}"), out);
            }
        }
        other => out.push((at, other.to_string())),
    }
}

/// What a viewer may and may not see, and what of it the walk saw.
struct Check<'a> {
    hidden: Vec<&'a Fact>,
    allowed: Vec<&'a Fact>,
    /// Allowed strings some answer held (the walk reaches what the viewer may see).
    seen: BTreeSet<String>,
    leaks: Vec<Leak>,
}

impl Check<'_> {
    fn saw(&mut self, text: &str) {
        for f in &self.allowed {
            if text.contains(&f.value) {
                self.seen.insert(f.what.clone());
            }
        }
    }
}

/// Hidden strings in a GraphQL response: none in `data`; in errors, none the request did not carry.
fn check_graphql(asked: &Asked, check: &mut Check) {
    let mut found = Vec::new();
    if let Some(m) = asked.response.as_object() {
        for (k, v) in m {
            strings(v, k.clone(), &mut found);
        }
    }
    check.saw(&asked.response["data"].to_string());
    let (hidden, leaks) = (&check.hidden, &mut check.leaks);
    for (at, s) in found {
        for f in hidden {
            // An error may repeat an argument: only what the request did not carry counts there.
            let echo = || !at.starts_with("data") && asked.query.contains(&f.value);
            if s.contains(&f.value) && !echo() {
                leaks.push(Leak {
                    source: asked.query.clone(),
                    what: f.what.clone(),
                    location: at.clone(),
                });
            }
        }
    }
}

/// Hidden strings in a body other than GraphQL's (CSV, HTML, JSON errors).
fn check_body(source: &str, body: &str, hidden: &[&Fact], leaks: &mut Vec<Leak>) {
    for f in hidden {
        if let Some(i) = body.find(&f.value) {
            let line = body[..i].matches('\n').count() + 1;
            leaks.push(Leak {
                source: source.to_string(),
                what: f.what.clone(),
                location: format!("line {line}"),
            });
        }
    }
}

/// The walk's own client: it drops idle connections before the server does (a reused connection
/// the server closed fails the request), and retries a request that could not be sent.
struct Http {
    client: awc::Client,
    base: String,
}

impl Http {
    fn new(app: &TestApp) -> Self {
        Self {
            client: awc::Client::builder()
                .connector(awc::Connector::new().conn_keep_alive(Duration::from_secs(2)))
                .timeout(Duration::from_secs(60))
                .finish(),
            base: app.address.clone(),
        }
    }

    fn request(&self, method: &str, token: Option<&str>, path: &str) -> awc::ClientRequest {
        let url = format!("{}{path}", self.base);
        let mut req = if method == "POST" {
            self.client.post(url)
        } else {
            self.client.get(url)
        };
        if let Some(t) = token {
            req = req.insert_header(("Authorization", format!("Bearer {t}")));
        }
        req
    }

    async fn post(&self, token: Option<&str>, query: &str) -> Value {
        let body = json!({ "query": query });
        for attempt in 0.. {
            match self
                .request("POST", token, "/graphql")
                .send_json(&body)
                .await
            {
                Ok(mut res) => {
                    return res
                        .json::<Value>()
                        .limit(64 * 1024 * 1024)
                        .await
                        .expect("JSON response");
                }
                Err(e) if attempt < 3 => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("POST {query}: {e:?}"),
            }
        }
        unreachable!()
    }

    async fn get(&self, token: Option<&str>, path: &str) -> (u16, String) {
        for attempt in 0.. {
            match self.request("GET", token, path).send().await {
                Ok(mut res) => {
                    let body = res.body().limit(64 * 1024 * 1024).await.unwrap();
                    return (
                        res.status().as_u16(),
                        String::from_utf8_lossy(&body).into_owned(),
                    );
                }
                Err(e) if attempt < 3 => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("GET {path}: {e:?}"),
            }
        }
        unreachable!()
    }
}

fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The number of objects the path's end reached in `data` (0: refused or empty on the way).
fn reached(data: &Value, steps: &[Step]) -> usize {
    let Some((first, rest)) = steps.split_first() else {
        return usize::from(data.is_object());
    };
    match data {
        Value::Array(items) => items.iter().map(|i| reached(i, steps)).sum(),
        Value::Object(m) => m.get(&first.field).map_or(0, |v| reached(v, rest)),
        _ => 0,
    }
}

async fn walk_as(viewer: Viewer) {
    let started = Instant::now();
    let app = spawn_app().await;
    let w = world(&app).await;
    let built = started.elapsed();
    let schema = introspect(&app).await;
    let paths = schema.paths(&w.pools);
    let generated = paths.len();
    let paths: Vec<Path> = paths.into_iter().take(MAX_PATHS).collect();
    let token = w.tokens[&viewer].clone();
    let token = token.as_deref();
    let mut check = Check {
        hidden: w.forbidden(viewer),
        allowed: w
            .facts
            .iter()
            .filter(|f| f.seen_by.contains(&viewer))
            .collect(),
        seen: BTreeSet::new(),
        leaks: Vec::new(),
    };

    let http = Http::new(&app);
    let h = &http;
    let results: Vec<(usize, Vec<Asked>)> = futures_util::stream::iter(paths.iter().enumerate())
        .map(|(i, p)| async move { (i, ask(h, token, p).await) })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let mut requests = 0;
    let mut reaching = 0;
    let mut cut = 0;
    let mut codes: BTreeMap<String, usize> = BTreeMap::new();
    let mut unusable = Vec::new();
    for (i, asked) in &results {
        requests += asked.len();
        let steps = &paths[*i].steps;
        if asked
            .iter()
            .any(|a| reached(&a.response["data"], steps) > 0)
        {
            reaching += 1;
        }
        for a in asked {
            cut += truncated(&a.response["data"], a.first);
            for e in a.response["errors"].as_array().into_iter().flatten() {
                let c = e["extensions"]["code"].as_str().unwrap_or("none");
                *codes.entry(c.to_string()).or_default() += 1;
                if matches!(
                    c,
                    "QUERY_TOO_COMPLEX"
                        | "QUERY_TOO_DEEP"
                        | "GRAPHQL_VALIDATION_FAILED"
                        | "GRAPHQL_PARSE_FAILED"
                        | "TOO_MANY_ALIASES"
                ) {
                    unusable.push(format!("{c}: {}", a.query));
                }
            }
            check_graphql(a, &mut check);
        }
    }

    // The first level again over GET.
    for p in paths.iter().filter(|p| p.steps.len() == 1) {
        let leaves: Vec<&Leaf> = p.leaves.iter().collect();
        let first = FIRSTS[1];
        let query = p.raw(&leaves).replace(FIRST, &first.to_string());
        let (_, body) = http
            .get(token, &format!("/graphql?query={}", encode(&query)))
            .await;
        let response: Value = serde_json::from_str(&body).unwrap();
        requests += 1;
        check_graphql(
            &Asked {
                query,
                response,
                first,
            },
            &mut check,
        );
    }

    // CSV exports and pages.
    let mut pages = vec!["/admin/external-users.csv".to_string()];
    pages.extend(
        w.sites
            .iter()
            .map(|s| format!("/admin/guests.csv?siteId={s}")),
    );
    pages.extend(
        [
            "/graphiql",
            "/healthz",
            "/readyz",
            "/metrics",
            "/no-such-page",
            "/invite/not-a-token",
            "/reset/not-a-token",
            "/verify/not-a-token",
        ]
        .map(String::from),
    );
    if viewer == Guest {
        pages.push(format!("/invite/{}", w.guest_link));
    }
    let mut page_status = Vec::new();
    for path in &pages {
        let (status, body) = http.get(token, path).await;
        page_status.push(format!("{path} {status}"));
        check.saw(&body);
        // An error may name the site the request itself asked for.
        let asked_for = path.split_once('?').map_or("", |(_, q)| q);
        let hidden: Vec<&Fact> = check
            .hidden
            .iter()
            .copied()
            .filter(|f| !(status >= 400 && asked_for.contains(&f.value)))
            .collect();
        check_body(&format!("GET {path}"), &body, &hidden, &mut check.leaks);
    }
    requests += pages.len();
    let took = started.elapsed();
    app.stop().await;

    let unseen: Vec<&str> = check
        .allowed
        .iter()
        .filter(|f| !check.seen.contains(&f.what))
        .map(|f| f.what.as_str())
        .collect();
    let leaks = check.leaks;
    eprintln!(
        "exposure as {viewer:?}: {} paths asked (of {generated} generated, depth {MAX_DEPTH}), {reaching} reached an object, \
         {requests} responses checked ({} exports and pages: {}); {} hidden strings, {} leaks; \
         {} of {} allowed strings seen (not seen: {unseen:?}); {cut} lists maybe cut short by a lowered `first`; \
         world {:.1}s, total {:.1}s; error codes {codes:?}",
        paths.len(),
        pages.len(),
        page_status.join(", "),
        check.hidden.len(),
        leaks.len(),
        check.seen.len(),
        check.allowed.len(),
        built.as_secs_f64(),
        took.as_secs_f64(),
    );
    let mut problems = Vec::new();
    if !unusable.is_empty() {
        problems.push(format!(
            "{} queries the server could not run (the walk is wrong):\n{}",
            unusable.len(),
            unusable.join("\n")
        ));
    }
    if viewer == Guest && paths.len() <= 1000 {
        problems.push(format!("only {} paths asked", paths.len()));
    }
    if !leaks.is_empty() {
        // Every leak, then a summary: which hidden string, through which path shape.
        let mut lines = Vec::new();
        let mut summary: BTreeMap<(String, String), usize> = BTreeMap::new();
        for l in &leaks {
            lines.push(format!("  {} at {} in: {}", l.what, l.location, l.source));
            let shape = if l.source.starts_with("GET") {
                l.source.clone()
            } else {
                l.location
                    .split('.')
                    .map(|p| p.split('[').next().unwrap())
                    .collect::<Vec<_>>()
                    .join(".")
            };
            *summary.entry((l.what.clone(), shape)).or_default() += 1;
        }
        let summary: Vec<String> = summary
            .into_iter()
            .map(|((what, at), n)| format!("  {what} at {at} ({n}x)"))
            .collect();
        problems.push(format!(
            "{} leaks of hidden strings:\n{}\nsummary ({} kinds):\n{}",
            leaks.len(),
            lines.join("\n"),
            summary.len(),
            summary.join("\n")
        ));
    }
    assert!(
        problems.is_empty(),
        "as {viewer:?}: {}",
        problems.join("\n")
    );
}

#[actix_rt::test]
async fn guest_of_space_a_sees_nothing_hidden() {
    walk_as(Guest).await;
}

#[actix_rt::test]
async fn guest_without_space_sees_nothing_hidden() {
    walk_as(Unassigned).await;
}

#[actix_rt::test]
async fn paid_user_sees_nothing_hidden() {
    walk_as(Paid).await;
}

#[actix_rt::test]
async fn space_admin_sees_nothing_hidden() {
    walk_as(SpaceAdmin).await;
}

#[actix_rt::test]
async fn site_admin_of_site_one_sees_nothing_hidden() {
    walk_as(SiteAdmin).await;
}

#[actix_rt::test]
async fn admin_of_another_organization_sees_nothing_of_acme() {
    walk_as(OtherOrgAdmin).await;
}

#[actix_rt::test]
async fn anonymous_sees_nothing() {
    walk_as(Anonymous).await;
}
