//! The authorization matrix (`docs/authorization.md`): every query and mutation, called as each kind of
//! person, answers exactly what the table says. One test per person, each in its own database.

use crate::common::*;
use guestpass::domain::{EmailAddress, ProductRole};
use serde_json::{Value, json};
use std::collections::BTreeMap;

const PEOPLE: [&str; 9] = [
    "org admin",
    "site admin",
    "product admin",
    "space admin",
    "other space admin",
    "paid user",
    "guest",
    "foreign guest",
    "anonymous",
];

/// `operation -> person -> expected answer`, read from the table in the docs.
fn matrix() -> BTreeMap<String, BTreeMap<String, String>> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/authorization.md"
    ))
    .unwrap();
    let matrix = &text[text
        .find("## Who may call what")
        .expect("the matrix section")..];
    let mut rows = matrix.lines().filter(|l| l.starts_with('|')).map(|l| {
        l.trim_matches('|')
            .split('|')
            .map(|c| c.trim().to_string())
            .collect::<Vec<_>>()
    });
    let header = rows.next().unwrap();
    assert_eq!(header[1..], PEOPLE.map(String::from), "table columns");
    rows.filter(|r| !r[0].starts_with("---"))
        .map(|r| {
            let answers = header[1..]
                .iter()
                .cloned()
                .zip(r[1..].iter().cloned())
                .collect();
            (r[0].clone(), answers)
        })
        .collect()
}

/// Ids of the world every person is tested in.
struct World {
    tokens: BTreeMap<&'static str, Option<String>>,
    space: String,
    group_free: String,
    group_site: String,
    guest_free: String,
    guest_in_space: String,
    paid_spare: String,
    space_admin_to_remove: String,
    to_deactivate: String,
    to_reactivate: String,
    invites: [String; 2],
    accept_token: String,
    bulk: String,
    /// A webhook endpoint with one (queued) delivery, and another to delete.
    webhook: String,
    webhook_spare: String,
    webhook_delivery: String,
}

const SIGNIN_PASSWORD: &str = "a very long sign-in passphrase";

async fn user(app: &TestApp, email: &str, role: Option<ProductRole>) -> String {
    app.add_user(email, role).await
}

async fn world(app: &TestApp) -> World {
    let space = app.create_space("THIS").await;
    let other_space = app.create_space("OTHER").await;
    let site_admin = user(app, "siteadmin@acme.example", None).await;
    data(
        app.admin(
            "mutation($i: SetAdminRoleInput!) { setAdminRole(input: $i) { user { id } } }",
            json!({ "i": { "userId": site_admin, "role": "SITE_ADMIN", "siteId": app.site_id, "granted": true } }),
        )
        .await,
    );
    let product_admin = user(app, "padmin@acme.example", Some(ProductRole::ProductAdmin)).await;
    let space_admin = user(app, "sadmin@acme.example", Some(ProductRole::User)).await;
    let other_space_admin = user(app, "oadmin@acme.example", Some(ProductRole::User)).await;
    let space_admin_to_remove = user(app, "sadmin2@acme.example", Some(ProductRole::User)).await;
    let add_space_admin =
        "mutation($i: SpaceAdminInput!) { addSpaceAdmin(input: $i) { space { id } } }";
    for (s, u) in [
        (&space, &space_admin),
        (&other_space, &other_space_admin),
        (&space, &space_admin_to_remove),
    ] {
        data(
            app.admin(
                add_space_admin,
                json!({ "i": { "spaceId": s, "userId": u } }),
            )
            .await,
        );
    }
    let paid = user(app, "paid@acme.example", Some(ProductRole::User)).await;
    let paid_spare = user(app, "spare@acme.example", Some(ProductRole::User)).await;
    let guest = user(app, "guest@partner.example", Some(ProductRole::Guest)).await;
    let guest_in_space = user(app, "guest2@partner.example", Some(ProductRole::Guest)).await;
    let guest_free = user(app, "guest3@partner.example", Some(ProductRole::Guest)).await;
    data(
        app.assign(&space, &[guest.clone(), guest_in_space.clone()])
            .await,
    );
    data(
        app.admin(
            "mutation($i: SetSponsorInput!) { setSponsor(input: $i) { sponsorId } }",
            json!({ "i": { "siteId": app.site_id, "userId": guest, "sponsorId": paid } }),
        )
        .await,
    );
    let to_deactivate = user(app, "leaving@acme.example", Some(ProductRole::User)).await;
    let to_reactivate = user(app, "back@acme.example", Some(ProductRole::User)).await;
    data(
        app.admin(
            "mutation($u: ID!) { deactivateUser(id: $u) { user { id } } }",
            json!({ "u": to_reactivate }),
        )
        .await,
    );
    let group_free = app.create_group("Free").await;
    let group_site = app.create_group("Docs users").await;
    data(
        app.admin(
            "mutation($i: SetGroupProductRoleInput!) { setGroupProductRole(input: $i) { dryRun } }",
            json!({ "i": { "groupId": group_site, "siteId": app.site_id, "role": "USER" } }),
        )
        .await,
    );
    let invited = data(
        app.invite(
            &[
                "i1@partner.example",
                "i2@partner.example",
                "i3@partner.example",
            ],
            "GUEST",
        )
        .await,
    );
    let ids: Vec<String> = invited["inviteUsers"]["invites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect();
    let accept_token = app.invite_token(&ids[2]).await;
    app.set_password(
        &user(app, "signin@acme.example", Some(ProductRole::User)).await,
        SIGNIN_PASSWORD,
    )
    .await;

    // A guest of another organization.
    let foreign = app
        .state
        .db
        .run(|c| {
            let b = guestpass::store::org::bootstrap(
                c,
                guestpass::store::org::BootstrapInput {
                    org_name: "Elsewhere".into(),
                    site_name: "Wiki".into(),
                    admin_email: EmailAddress::parse("admin@elsewhere.example").unwrap(),
                    user_limit: Some(10),
                    verified_domains: vec![],
                },
                chrono::Utc::now(),
            )?;
            use diesel::prelude::*;
            use guestpass::db::schema::*;
            let id: uuid::Uuid = diesel::insert_into(users::table)
                .values((
                    users::organization_id.eq(b.organization.id),
                    users::email.eq("g@elsewhere.example"),
                    users::email_normalized.eq("g@elsewhere.example"),
                    users::display_name.eq("Foreign"),
                    users::created_at.eq(chrono::Utc::now()),
                ))
                .returning(users::id)
                .get_result(c)?;
            diesel::insert_into(product_roles::table)
                .values((
                    product_roles::site_id.eq(b.site.id),
                    product_roles::user_id.eq(id),
                    product_roles::role.eq(1i16),
                    product_roles::granted_at.eq(chrono::Utc::now()),
                ))
                .execute(c)?;
            guestpass::store::changes::check::run(c, true, chrono::Utc::now())?;
            Ok(id.to_string())
        })
        .await
        .unwrap();

    let bulk = app.bulk_invite_id("bulk@partner.example").await;
    let (webhook, webhook_spare, webhook_delivery) = webhooks(app).await;

    let mut tokens = BTreeMap::new();
    tokens.insert("org admin", Some(app.admin_token.clone()));
    for (who, id) in [
        ("site admin", &site_admin),
        ("product admin", &product_admin),
        ("space admin", &space_admin),
        ("other space admin", &other_space_admin),
        ("paid user", &paid),
        ("guest", &guest),
        ("foreign guest", &foreign),
    ] {
        tokens.insert(who, Some(app.session_for(id).await));
    }
    tokens.insert("anonymous", None);
    World {
        tokens,
        space,
        group_free,
        group_site,
        guest_free,
        guest_in_space,
        paid_spare,
        space_admin_to_remove,
        to_deactivate,
        to_reactivate,
        invites: [ids[0].clone(), ids[1].clone()],
        accept_token,
        bulk,
        webhook,
        webhook_spare,
        webhook_delivery,
    }
}

/// Two webhook endpoints of the organization (to a port nothing listens on), and a delivery of the
/// first, queued without a job (so nothing sends it meanwhile).
async fn webhooks(app: &TestApp) -> (String, String, String) {
    let create = "mutation { createWebhookEndpoint(input: { url: \"http://127.0.0.1:9/hook\", events: [INVITE_EXPIRED] }) { endpoint { id } } }";
    let mut ids = Vec::new();
    for _ in 0..2 {
        let r = data(app.admin(create, json!({})).await);
        ids.push(
            r["createWebhookEndpoint"]["endpoint"]["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let delivery: uuid::Uuid = {
        use diesel::prelude::*;
        use guestpass::db::schema::webhook_deliveries as d;
        diesel::insert_into(d::table)
            .values((
                d::endpoint_id.eq(uuid_of(&ids[0])),
                d::audit_event_id.eq(1i64),
                d::event_type.eq("invite.expired"),
                d::payload.eq("{}"),
                d::created_at.eq(chrono::Utc::now()),
            ))
            .returning(d::id)
            .get_result(&mut app.db.conn())
            .unwrap()
    };
    let spare = ids.pop().unwrap();
    let delivery = gid("WebhookDelivery", &delivery.to_string());
    (ids.pop().unwrap(), spare, delivery)
}

/// One call per operation: the document and its variables.
fn call(op: &str, app: &TestApp, w: &World) -> (String, Value) {
    let site = &app.site_id;
    let (q, v) = match op {
        "me" => ("{ me { id displayName } }", json!({})),
        "organization" => ("{ organization { id name } }", json!({})),
        "sites" => ("{ sites { id } }", json!({})),
        "site" => (
            "query($s: ID!) { site(id: $s) { id name } }",
            json!({ "s": site }),
        ),
        "seatUsage" => (
            "query($s: ID!) { seatUsage(siteId: $s) { paidUsers } }",
            json!({ "s": site }),
        ),
        "spaces" => (
            "query($s: ID!) { spaces(siteId: $s) { id } }",
            json!({ "s": site }),
        ),
        "space" => (
            "query($s: ID!) { space(id: $s) { id pages { nodes { id } } } }",
            json!({ "s": w.space }),
        ),
        "users" => (
            "query($s: ID!) { users(siteId: $s) { totalCount } }",
            json!({ "s": site }),
        ),
        "invites" => (
            "query($s: ID!) { invites(siteId: $s) { totalCount } }",
            json!({ "s": site }),
        ),
        "auditEvents" => ("{ auditEvents { totalCount } }", json!({})),
        "guests" => (
            "query($s: ID!) { guests(siteId: $s) { totalCount } }",
            json!({ "s": site }),
        ),
        "groups" => ("{ groups { totalCount } }", json!({})),
        "group" => (
            "query($g: ID!) { group(id: $g) { id name } }",
            json!({ "g": w.group_site }),
        ),
        "user" => (
            "query($u: ID!) { user(id: $u) { id email } }",
            json!({ "u": w.guest_free }),
        ),
        "node" => (
            "query($s: ID!) { node(id: $s) { id ... on Space { key } } }",
            json!({ "s": w.space }),
        ),
        "nodes" => (
            "query($s: ID!, $t: ID!) { nodes(ids: [$s, $t]) { id } }",
            json!({ "s": w.space, "t": gid("Site", site) }),
        ),
        "invite" => (
            "query($i: ID!) { invite(id: $i) { id status emailDelivery { status } } }",
            json!({ "i": w.invites[0] }),
        ),
        "createSpace" => (
            "mutation($i: CreateSpaceInput!) { createSpace(input: $i) { space { id } } }",
            json!({ "i": { "siteId": site, "key": "NEW", "name": "New" } }),
        ),
        "createPage" => (
            "mutation($i: CreatePageInput!) { createPage(input: $i) { page { id } } }",
            json!({ "i": { "spaceId": w.space, "title": "Hello", "body": "" } }),
        ),
        "inviteUsers" => (
            "mutation($i: InviteUsersInput!) { inviteUsers(input: $i) { invites { id } } }",
            json!({ "i": { "siteId": site, "emails": ["new@partner.example"], "role": "GUEST" } }),
        ),
        "resendInvite" => (
            "mutation($i: ID!) { resendInvite(id: $i) { invite { id } } }",
            json!({ "i": w.invites[0] }),
        ),
        "revokeInvite" => (
            "mutation($i: ID!) { revokeInvite(id: $i) { invite { id } } }",
            json!({ "i": w.invites[1] }),
        ),
        "acceptInvite" => (
            "mutation($i: AcceptInviteInput!) { acceptInvite(input: $i) { sessionToken } }",
            json!({ "i": { "token": w.accept_token, "displayName": "New", "password": "correct horse battery" } }),
        ),
        "updateSiteSettings" => (
            "mutation($i: UpdateSiteSettingsInput!) { updateSiteSettings(input: $i) { site { id } } }",
            json!({ "i": { "siteId": site, "inviteExpiryDays": 7 } }),
        ),
        "createGroup" => (
            "mutation { createGroup(input: { name: \"Brand new\" }) { group { id } } }",
            json!({}),
        ),
        "renameGroup" => (
            "mutation($g: ID!) { renameGroup(input: { id: $g, name: \"Renamed\" }) { group { id } } }",
            json!({ "g": w.group_free }),
        ),
        "deleteGroup" => (
            "mutation($g: ID!) { deleteGroup(id: $g, dryRun: true) { dryRun } }",
            json!({ "g": w.group_site }),
        ),
        "setGroupProductRole" => (
            "mutation($i: SetGroupProductRoleInput!) { setGroupProductRole(input: $i) { dryRun } }",
            json!({ "i": { "groupId": w.group_site, "siteId": site, "role": "PRODUCT_ADMIN", "dryRun": true } }),
        ),
        "addGroupMembers" => (
            "mutation($i: GroupMembersInput!) { addGroupMembers(input: $i) { dryRun } }",
            json!({ "i": { "groupId": w.group_site, "userIds": [w.paid_spare], "dryRun": true } }),
        ),
        "removeGroupMembers" => (
            "mutation($i: GroupMembersInput!) { removeGroupMembers(input: $i) { dryRun } }",
            json!({ "i": { "groupId": w.group_site, "userIds": [w.paid_spare], "dryRun": true } }),
        ),
        "setProductRole" => (
            "mutation($i: SetProductRoleInput!) { setProductRole(input: $i) { dryRun } }",
            json!({ "i": { "siteId": site, "userId": w.paid_spare, "role": "PRODUCT_ADMIN", "dryRun": true } }),
        ),
        "removeProductAccess" => (
            "mutation($i: RemoveProductAccessInput!) { removeProductAccess(input: $i) { dryRun } }",
            json!({ "i": { "siteId": site, "userId": w.guest_in_space, "dryRun": true } }),
        ),
        "assignGuestSpace" => (
            "mutation($i: AssignGuestSpaceInput!) { assignGuestSpace(input: $i) { assignments { user { id } } } }",
            json!({ "i": { "spaceId": w.space, "userIds": [w.guest_free] } }),
        ),
        "unassignGuestSpace" => (
            "mutation($i: UnassignGuestSpaceInput!) { unassignGuestSpace(input: $i) { assignments { user { id } } } }",
            json!({ "i": { "siteId": site, "userIds": [w.guest_in_space] } }),
        ),
        "setAdminRole" => (
            "mutation($i: SetAdminRoleInput!) { setAdminRole(input: $i) { user { id } } }",
            json!({ "i": { "userId": w.paid_spare, "role": "SITE_ADMIN", "siteId": site, "granted": true } }),
        ),
        "addSpaceAdmin" => (
            "mutation($i: SpaceAdminInput!) { addSpaceAdmin(input: $i) { space { id } } }",
            json!({ "i": { "spaceId": w.space, "userId": w.paid_spare } }),
        ),
        "removeSpaceAdmin" => (
            "mutation($i: SpaceAdminInput!) { removeSpaceAdmin(input: $i) { space { id } } }",
            json!({ "i": { "spaceId": w.space, "userId": w.space_admin_to_remove } }),
        ),
        "deactivateUser" => (
            "mutation($u: ID!) { deactivateUser(id: $u) { user { id } } }",
            json!({ "u": w.to_deactivate }),
        ),
        "reactivateUser" => (
            "mutation($u: ID!) { reactivateUser(id: $u) { user { id } } }",
            json!({ "u": w.to_reactivate }),
        ),
        "sessions" => ("{ sessions { id current } }", json!({})),
        "apiTokens" => ("{ apiTokens { id name } }", json!({})),
        "login" => (
            "mutation($i: LoginInput!) { login(input: $i) { sessionToken } }",
            json!({ "i": { "organization": "acme", "email": "signin@acme.example", "password": SIGNIN_PASSWORD } }),
        ),
        "completeLogin" => (
            "mutation($i: CompleteLoginInput!) { completeLogin(input: $i) { sessionToken } }",
            json!({ "i": { "challengeId": uuid::Uuid::new_v4().to_string(), "code": "123456" } }),
        ),
        "logout" => ("mutation { logout { ok } }", json!({})),
        "revokeSession" => (
            "mutation($i: ID!) { revokeSession(id: $i) { ok } }",
            json!({ "i": uuid::Uuid::new_v4().to_string() }),
        ),
        "setTwoStepRequired" => (
            "mutation($i: SetTwoStepRequiredInput!) { setTwoStepRequired(input: $i) { user { id } } }",
            json!({ "i": { "userId": w.paid_spare, "required": false } }),
        ),
        "enrollAuthenticator" => (
            "mutation { enrollAuthenticator { secret otpauthUrl } }",
            json!({}),
        ),
        "confirmAuthenticator" => (
            "mutation { confirmAuthenticator(code: \"000000\") { recoveryCodes } }",
            json!({}),
        ),
        "removeAuthenticator" => (
            "mutation { removeAuthenticator(code: \"000000\") { ok } }",
            json!({}),
        ),
        "requestPasswordReset" => (
            "mutation { requestPasswordReset(input: { organization: \"acme\", email: \"nobody@acme.example\" }) { ok } }",
            json!({}),
        ),
        "resetPassword" => (
            "mutation { resetPassword(input: { token: \"gpr_nope\", newPassword: \"a long new passphrase\" }) { ok } }",
            json!({}),
        ),
        "createApiToken" => (
            "mutation { createApiToken(input: { name: \"ci\" }) { token apiToken { id } } }",
            json!({}),
        ),
        "revokeApiToken" => (
            "mutation($i: ID!) { revokeApiToken(id: $i) { apiToken { id } } }",
            json!({ "i": uuid::Uuid::new_v4().to_string() }),
        ),
        "externalUserSecurity" => (
            "{ externalUserSecurity { twoStepVerification reverificationInterval } }",
            json!({}),
        ),
        "reverificationStatus" => (
            "{ reverificationStatus { lastRunAt nextRunAt pending } }",
            json!({}),
        ),
        "addVerifiedDomain" => (
            "mutation { addVerifiedDomain(input: { domain: \"example.org\" }) { verifiedDomains } }",
            json!({}),
        ),
        "removeVerifiedDomain" => (
            "mutation { removeVerifiedDomain(input: { domain: \"example.org\" }) { verifiedDomains } }",
            json!({}),
        ),
        "previewExternalUserSecurityChange" => (
            "mutation($i: ExternalUserSecurityInput!) { previewExternalUserSecurityChange(input: $i) { reviewId counts { people } } }",
            json!({ "i": { "twoStepVerification": "REQUIRED", "reverificationInterval": 1440, "apiTokenAccess": "ALLOWED" } }),
        ),
        "updateExternalUserSecurity" => (
            "mutation($i: UpdateExternalUserSecurityInput!) { updateExternalUserSecurity(input: $i) { externalUserSecurity { twoStepVerification } } }",
            json!({ "i": { "twoStepVerification": "REQUIRED", "reverificationInterval": 1440, "apiTokenAccess": "ALLOWED", "reviewId": uuid::Uuid::new_v4().to_string() } }),
        ),
        "resetExternalUserSessions" => (
            "mutation { resetExternalUserSessions { count } }",
            json!({}),
        ),
        "runReverificationSweep" => ("mutation { runReverificationSweep { queued } }", json!({})),
        "requestReverificationCode" => (
            "mutation { requestReverificationCode { expiresAt } }",
            json!({}),
        ),
        "completeReverification" => (
            "mutation { completeReverification(input: { code: \"000000\" }) { verifiedUntil } }",
            json!({}),
        ),
        "sponsoredGuests" => (
            "query($s: ID!) { sponsoredGuests(siteId: $s) { totalCount edges { node { id } } } }",
            json!({ "s": site }),
        ),
        "guestsWithoutSponsor" => (
            "query($s: ID!) { guestsWithoutSponsor(siteId: $s) { totalCount edges { node { id } } } }",
            json!({ "s": site }),
        ),
        "extendGuestAccess" => (
            "mutation($i: ExtendGuestAccessInput!) { extendGuestAccess(input: $i) { accessEndsAt } }",
            json!({ "i": { "siteId": site, "userId": w.guest_free, "endsAt": (chrono::Utc::now() + chrono::Duration::days(5)).to_rfc3339() } }),
        ),
        "setSponsor" => (
            "mutation($i: SetSponsorInput!) { setSponsor(input: $i) { sponsorId } }",
            json!({ "i": { "siteId": site, "userId": w.guest_free, "sponsorId": w.paid_spare } }),
        ),
        "requestExtension" => (
            "mutation($s: ID!) { requestExtension(input: { siteId: $s, message: \"Two more weeks?\" }) { ok } }",
            json!({ "s": site }),
        ),
        "leaveSite" => (
            "mutation($s: ID!) { leaveSite(siteId: $s) { ok } }",
            json!({ "s": site }),
        ),
        "inactiveGuests" => (
            "query($s: ID!) { inactiveGuests(siteId: $s, inactiveForDays: 30) { edges { node { id } } } }",
            json!({ "s": site }),
        ),
        "removeGuests" => (
            "mutation($i: RemoveGuestsInput!) { removeGuests(input: $i) { removed { id } } }",
            json!({ "i": { "siteId": site, "userIds": [w.guest_free], "reason": "review" } }),
        ),
        "guestDomainRules" => ("{ guestDomainRules { mode domains } }", json!({})),
        "guestsOutsideDomainRules" => (
            "query($s: ID!) { guestsOutsideDomainRules(siteId: $s) { totalCount edges { node { id } } } }",
            json!({ "s": site }),
        ),
        "bulkInvites" => (
            "query($s: ID!) { bulkInvites(siteId: $s) { totalCount edges { node { id totalRows } } } }",
            json!({ "s": site }),
        ),
        "setGuestDomainRules" => (
            "mutation { setGuestDomainRules(input: { mode: BLOCK, domains: [\"*.blocked.example\"] }) { guestDomainRules { mode } } }",
            json!({}),
        ),
        "bulkInvite" => (
            "query($b: ID!) { bulkInvite(id: $b) { id totalRows rows { edges { node { line status } } } } }",
            json!({ "b": w.bulk }),
        ),
        "webhookEndpoints" => ("{ webhookEndpoints { totalCount } }", json!({})),
        "webhookEndpoint" => (
            "query($e: ID!) { webhookEndpoint(id: $e) { id url } }",
            json!({ "e": w.webhook }),
        ),
        "webhookDeliveries" => (
            "query($e: ID!) { webhookDeliveries(endpointId: $e) { totalCount edges { node { id payload } } } }",
            json!({ "e": w.webhook }),
        ),
        "createWebhookEndpoint" => (
            "mutation { createWebhookEndpoint(input: { url: \"http://127.0.0.1:9/other\", events: [INVITE_CREATED] }) { secret } }",
            json!({}),
        ),
        "updateWebhookEndpoint" => (
            "mutation($e: ID!) { updateWebhookEndpoint(input: { id: $e, description: \"renamed\" }) { endpoint { id } } }",
            json!({ "e": w.webhook }),
        ),
        "deleteWebhookEndpoint" => (
            "mutation($e: ID!) { deleteWebhookEndpoint(id: $e) { deletedWebhookEndpointId } }",
            json!({ "e": w.webhook_spare }),
        ),
        "rotateWebhookSecret" => (
            "mutation($e: ID!) { rotateWebhookSecret(id: $e) { secret } }",
            json!({ "e": w.webhook }),
        ),
        "redeliverWebhook" => (
            "mutation($d: ID!) { redeliverWebhook(deliveryId: $d) { delivery { id } } }",
            json!({ "d": w.webhook_delivery }),
        ),
        other => panic!("the matrix test has no call for `{other}`: add one"),
    };
    (q.to_string(), v)
}

async fn check_person(person: &'static str) {
    let table = matrix();
    let sdl =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql")).unwrap();
    let mut ops = root_fields(&sdl, "QueryRoot");
    ops.extend(root_fields(&sdl, "MutationRoot"));
    // `leaveSite` and `logout` end the access the other calls use: they go last.
    ops.sort_by_key(|op| match op.as_str() {
        "removeGuests" => 1,
        "leaveSite" => 2,
        "logout" => 3,
        _ => 0,
    });
    assert!(ops.len() > 30, "parsed {ops:?}");
    for op in &ops {
        assert!(
            table.contains_key(op),
            "docs/authorization.md has no row for `{op}`"
        );
    }

    let app = spawn_app().await;
    let w = world(&app).await;
    let token = w.tokens[person].clone();
    let mut wrong = Vec::new();
    for op in &ops {
        let (q, v) = call(op, &app, &w);
        let res = app.gql(token.as_deref(), &q, v).await;
        let got = match code(&res) {
            Some(c) => c,
            None if res["data"][op.as_str()].is_null() => format!("null data: {res}"),
            None => "ok".to_string(),
        };
        let expected = &table[op][person];
        if &got != expected {
            wrong.push(format!(
                "{op}: expected {expected}, got {got} ({})",
                res["errors"][0]["message"]
            ));
        }
    }
    assert!(wrong.is_empty(), "as {person}:\n{}", wrong.join("\n"));
    app.stop().await;
}

macro_rules! person_tests {
    ($($name:ident => $person:literal),* $(,)?) => {
        $(
            #[actix_rt::test]
            async fn $name() {
                check_person($person).await;
            }
        )*
    };
}

person_tests! {
    as_org_admin => "org admin",
    as_site_admin => "site admin",
    as_product_admin => "product admin",
    as_space_admin => "space admin",
    as_other_space_admin => "other space admin",
    as_paid_user => "paid user",
    as_guest => "guest",
    as_foreign_guest => "foreign guest",
    as_anonymous => "anonymous",
}

// Regression tests for the holes of issue 15, each through the path an attacker would take.

const SET_GROUP_ROLE: &str =
    "mutation($i: SetGroupProductRoleInput!) { setGroupProductRole(input: $i) { dryRun } }";
const ADD_MEMBERS: &str =
    "mutation($i: GroupMembersInput!) { addGroupMembers(input: $i) { dryRun } }";

/// Hole 1: a guest in a guest group read every member's address (and other sites' ids) through
/// `me { groups { members siteRoles } }`. Now a guest sees no groups at all, and says so.
#[actix_rt::test]
async fn a_guest_in_a_group_sees_no_other_member() {
    let app = spawn_app().await;
    let site2 = app.create_site("Elsewhere-site").await;
    let a = app.create_space("A").await;
    let b = app.create_space("B").await;
    let me = app
        .add_user("me@partner.example", Some(ProductRole::Guest))
        .await;
    let other = app
        .add_user("other-company@rival.example", Some(ProductRole::Guest))
        .await;
    data(app.assign(&a, std::slice::from_ref(&me)).await);
    data(app.assign(&b, std::slice::from_ref(&other)).await);
    let g = app.create_group("Guests together").await;
    data(
        app.admin(
            SET_GROUP_ROLE,
            json!({ "i": { "groupId": g, "siteId": app.site_id, "role": "GUEST" } }),
        )
        .await,
    );
    let g2 = app.create_group("Reaches two sites").await;
    for site in [&app.site_id, &site2] {
        data(
            app.admin(
                SET_GROUP_ROLE,
                json!({ "i": { "groupId": g2, "siteId": site, "role": "USER" } }),
            )
            .await,
        );
    }
    data(
        app.admin(
            ADD_MEMBERS,
            json!({ "i": { "groupId": g, "userIds": [me, other] } }),
        )
        .await,
    );
    let token = app.session_for(&me).await;
    let res = app
        .gql(
            Some(&token),
            "{ me { email groups { name siteRoles { siteId role } members(first: 100) { nodes { email displayName invitedBy { email } } } } } }",
            json!({}),
        )
        .await;
    let text = res.to_string();
    assert!(!text.contains("other-company"), "leak: {text}");
    assert!(!text.contains(&site2), "another site's id: {text}");
    assert!(!text.contains("Guests together"), "group name: {text}");
    assert_eq!(res["data"]["me"]["email"], "me@partner.example");
    assert!(res["data"]["me"]["groups"].is_null());
    assert_eq!(res["errors"][0]["extensions"]["code"], "FORBIDDEN");
    assert_eq!(res["errors"][0]["path"], json!(["me", "groups"]));
    // The group by id says the same.
    let res = app
        .gql(
            Some(&token),
            "query($g: ID!) { group(id: $g) { name members(first: 10) { nodes { email } } } }",
            json!({ "g": g }),
        )
        .await;
    assert!(!res.to_string().contains("other-company"));
    assert_eq!(code(&res).as_deref(), Some("FORBIDDEN"));
    // A paid user of site 1 alone does not read the members of a group that reaches site 2.
    let paid = app
        .add_user("paid@acme.example", Some(ProductRole::User))
        .await;
    let res = app
        .gql(
            Some(&app.session_for(&paid).await),
            "query($g: ID!) { group(id: $g) { name members(first: 10) { nodes { email } } siteRoles { siteId } } }",
            json!({ "g": g2 }),
        )
        .await;
    assert_eq!(res["data"]["group"]["name"], "Reaches two sites");
    assert!(res["data"]["group"]["siteRoles"].is_null());
    assert!(res["data"]["group"]["members"].is_null(), "{res}");
    assert!(!res.to_string().contains("other-company") && !res.to_string().contains(&site2));
    app.stop().await;
}

/// Hole 4: any site admin could require two-step codes of anyone, organization admins included.
#[actix_rt::test]
async fn site_admins_set_two_step_only_for_people_of_their_sites() {
    let app = spawn_app().await;
    let site2 = app.create_site("Other").await;
    let sa = app.add_user("sa@acme.example", None).await;
    app.site_admin_of(&sa, &app.site_id).await;
    let sa_token = app.session_for(&sa).await;
    let only_here = app
        .add_user("here@acme.example", Some(ProductRole::User))
        .await;
    let both = app
        .add_user("both@acme.example", Some(ProductRole::User))
        .await;
    app.set_role(&site2, &both, Some("USER")).await;
    let q = "mutation($u: ID!) { setTwoStepRequired(input: { userId: $u, required: true }) { user { id } } }";
    let flag = |u: &str| {
        app.db.scalar_i64(&format!(
            "SELECT count(*) FROM users WHERE id = '{u}' AND two_step_required"
        ))
    };
    let r = app.gql(Some(&sa_token), q, json!({ "u": both })).await;
    assert_eq!(code(&r).as_deref(), Some("FORBIDDEN"));
    assert_eq!(flag(&both), 0);
    let r = app
        .gql(Some(&sa_token), q, json!({ "u": app.admin_id }))
        .await;
    assert_eq!(code(&r).as_deref(), Some("FORBIDDEN"));
    assert_eq!(flag(&app.admin_id), 0);
    data(app.gql(Some(&sa_token), q, json!({ "u": only_here })).await);
    assert_eq!(flag(&only_here), 1);
    data(app.admin(q, json!({ "u": both })).await);
    assert_eq!(flag(&both), 1);
    app.stop().await;
}

/// Hole 8: while re-verification is due, `me { access { ... } }` still answered.
#[actix_rt::test]
async fn only_identity_answers_while_reverification_is_due() {
    let app = spawn_app().await;
    let a = app.create_space("A").await;
    let g = app
        .add_user("due@partner.example", Some(ProductRole::Guest))
        .await;
    data(app.assign(&a, std::slice::from_ref(&g)).await);
    let token = app.session_for(&g).await;
    app.db.execute(&format!(
        "UPDATE users SET created_at = now() - interval '90 days', verified_at = now() - interval '60 days' WHERE id = '{g}'"
    ));
    let res = app
        .gql(
            Some(&token),
            "{ me { id email displayName status access { role site { name } space { name } } } }",
            json!({}),
        )
        .await;
    assert_eq!(res["data"]["me"]["email"], "due@partner.example");
    assert_eq!(res["data"]["me"]["id"], gid("User", &g));
    assert!(res["data"]["me"]["access"].is_null(), "{res}");
    assert!(res["data"]["me"]["status"].is_null(), "{res}");
    let codes: Vec<&str> = res["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["extensions"]["code"].as_str().unwrap())
        .collect();
    assert!(
        codes.iter().all(|c| *c == "REVERIFICATION_REQUIRED"),
        "{res}"
    );
    assert!(!res.to_string().contains("Space A"));
    app.stop().await;
}

/// Hole 9: a site admin managed groups that reach no site yet, and set a role on their site for a
/// group that already reached another.
#[actix_rt::test]
async fn site_admins_manage_only_groups_that_reach_only_their_sites() {
    let app = spawn_app().await;
    let site2 = app.create_site("Other").await;
    let sa = app.add_user("sa@acme.example", None).await;
    app.site_admin_of(&sa, &app.site_id).await;
    let t = app.session_for(&sa).await;
    let empty = app.create_group("No role yet").await;
    let r = app
        .gql(
            Some(&t),
            "mutation($g: ID!) { renameGroup(input: { id: $g, name: \"Mine now\" }) { group { id } } }",
            json!({ "g": empty }),
        )
        .await;
    assert_eq!(code(&r).as_deref(), Some("FORBIDDEN"));
    let r = app
        .gql(
            Some(&t),
            ADD_MEMBERS,
            json!({ "i": { "groupId": empty, "userIds": [sa] } }),
        )
        .await;
    assert_eq!(code(&r).as_deref(), Some("FORBIDDEN"));
    let r = app
        .gql(
            Some(&t),
            "mutation($g: ID!) { deleteGroup(id: $g) { dryRun } }",
            json!({ "g": empty }),
        )
        .await;
    assert_eq!(code(&r).as_deref(), Some("FORBIDDEN"));
    assert_eq!(
        app.db.scalar_i64(&format!(
            "SELECT count(*) FROM groups WHERE id = '{empty}' AND name = 'No role yet'"
        )),
        1
    );
    assert_eq!(app.db.scalar_i64("SELECT count(*) FROM group_members"), 0);
    // A group with a role on site 2: no role on site 1 either.
    let elsewhere = app.create_group("Elsewhere").await;
    data(
        app.admin(
            SET_GROUP_ROLE,
            json!({ "i": { "groupId": elsewhere, "siteId": site2, "role": "PRODUCT_ADMIN" } }),
        )
        .await,
    );
    let r = app
        .gql(
            Some(&t),
            SET_GROUP_ROLE,
            json!({ "i": { "groupId": elsewhere, "siteId": app.site_id, "role": "USER" } }),
        )
        .await;
    assert_eq!(code(&r).as_deref(), Some("FORBIDDEN"));
    assert_eq!(
        app.db.scalar_i64(&format!(
            "SELECT count(*) FROM group_site_roles WHERE group_id = '{elsewhere}'"
        )),
        1
    );
    // Their own site on a group that reaches nothing: allowed, and then they manage it.
    data(
        app.gql(
            Some(&t),
            SET_GROUP_ROLE,
            json!({ "i": { "groupId": empty, "siteId": app.site_id, "role": "USER" } }),
        )
        .await,
    );
    data(
        app.gql(
            Some(&t),
            "mutation($g: ID!) { renameGroup(input: { id: $g, name: \"Docs people\" }) { group { id } } }",
            json!({ "g": empty }),
        )
        .await,
    );
    app.stop().await;
}

// Relay's Global Object Identification (issue 17): `node(id:)` answers every type with an identity
// through the same policy as the type's own lookup.

const NODE: &str = "query($id: ID!) { node(id: $id) { __typename id } me { id } }";

/// One object of each `Node` type, with its global id, and who may and may not see it.
struct NodeCase {
    type_name: &'static str,
    id: String,
    /// A viewer of the same organization who may not see it, and the code they get.
    denied: Option<(String, &'static str)>,
}

#[actix_rt::test]
async fn every_node_type_answers_node_to_who_may_see_it_and_only_to_them() {
    let app = spawn_app().await;
    let space_a = app.create_space("A").await;
    let space_b = app.create_space("B").await;
    let page_b = data(
        app.admin(
            "mutation($i: CreatePageInput!) { createPage(input: $i) { page { id } } }",
            json!({ "i": { "spaceId": space_b, "title": "Plans", "body": "secret" } }),
        )
        .await,
    )["createPage"]["page"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let guest = app
        .add_user("guest@partner.example", Some(ProductRole::Guest))
        .await;
    data(app.assign(&space_a, std::slice::from_ref(&guest)).await);
    let guest_token = app.session_for(&guest).await;
    let other_guest = app
        .add_user("other@partner.example", Some(ProductRole::Guest))
        .await;
    let site2 = app.add_site("Elsewhere");
    let group = app.create_group("Writers").await;
    let invite = data(app.invite(&["new@partner.example"], "GUEST").await)["inviteUsers"]
        ["invites"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let ids = data(
        app.admin(
            "query($u: ID!, $s2: ID!, $s: ID!) { organization { id } site: site(id: $s) { id } site2: site(id: $s2) { id } user(id: $u) { id } auditEvents(first: 1) { edges { node { id } } } }",
            json!({ "u": other_guest, "s2": site2, "s": app.site_id }),
        )
        .await,
    );
    let bulk = app.bulk_invite_id("bulk@partner.example").await;
    // The admin's own session (a second one, signed in) and API token.
    let admin_session = app.session_for(&gid("User", &app.admin_id)).await;
    let own = data(
        app.gql(
            Some(&admin_session),
            "{ sessions { id } apiTokens { id } }",
            json!({}),
        )
        .await,
    );
    let id = |v: &Value| v.as_str().unwrap().to_string();
    let denied = |code: &'static str| Some((guest_token.clone(), code));
    let cases = [
        NodeCase {
            type_name: "Organization",
            id: id(&ids["organization"]["id"]),
            denied: None,
        },
        NodeCase {
            type_name: "Site",
            id: id(&ids["site2"]["id"]),
            denied: denied("FORBIDDEN"),
        },
        NodeCase {
            type_name: "Space",
            id: space_b.clone(),
            denied: denied("FORBIDDEN"),
        },
        NodeCase {
            type_name: "Page",
            id: page_b,
            denied: denied("FORBIDDEN"),
        },
        NodeCase {
            type_name: "User",
            id: id(&ids["user"]["id"]),
            denied: denied("FORBIDDEN"),
        },
        NodeCase {
            type_name: "Invite",
            id: invite,
            denied: denied("FORBIDDEN"),
        },
        NodeCase {
            type_name: "Group",
            id: group,
            denied: denied("FORBIDDEN"),
        },
        NodeCase {
            type_name: "AuditEvent",
            id: id(&ids["auditEvents"]["edges"][0]["node"]["id"]),
            denied: denied("FORBIDDEN"),
        },
        NodeCase {
            type_name: "BulkInvite",
            id: bulk,
            denied: denied("FORBIDDEN"),
        },
        NodeCase {
            type_name: "Session",
            id: id(&own["sessions"][0]["id"]),
            denied: denied("NOT_FOUND"),
        },
        NodeCase {
            type_name: "ApiToken",
            id: id(&own["apiTokens"][0]["id"]),
            denied: denied("NOT_FOUND"),
        },
    ];

    // Someone of another organization is told nothing exists, whatever the type.
    let foreign = app
        .bootstrap("Elsewhere Inc", "Wiki", "admin@elsewhere.example", &[])
        .await;
    let foreign_token = app.session_for(&foreign.admin.id.to_string()).await;

    let mut wrong = Vec::new();
    for case in &cases {
        // The organization admin sees every object, typed, with the id it was asked by.
        let r = data(app.admin(NODE, json!({ "id": case.id })).await);
        if r["node"]["__typename"] != case.type_name || r["node"]["id"] != json!(case.id) {
            wrong.push(format!("{}: the admin got {}", case.type_name, r["node"]));
        }
        let mut refused = vec![(foreign_token.clone(), "NOT_FOUND")];
        refused.extend(case.denied.clone());
        for (token, expected) in refused {
            let r = app.gql(Some(&token), NODE, json!({ "id": case.id })).await;
            // Null on its own path with the expected code; the other field still answers.
            let ok = r["data"].get("node") == Some(&Value::Null)
                && r["data"]["me"]["id"].is_string()
                && r["errors"].as_array().map(Vec::len) == Some(1)
                && r["errors"][0]["path"] == json!(["node"])
                && r["errors"][0]["extensions"]["code"] == expected;
            if !ok {
                wrong.push(format!("{} expected {expected}: {r}", case.type_name));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    // `nodes` answers what may be seen and nulls the rest, each refusal at its own index.
    let r = app
        .gql(
            Some(&guest_token),
            "query($ids: [ID!]!) { nodes(ids: $ids) { __typename id } }",
            json!({ "ids": [space_a, space_b, "not an id"] }),
        )
        .await;
    assert_eq!(r["data"]["nodes"][0]["id"], json!(space_a), "{r}");
    assert!(r["data"]["nodes"][1].is_null(), "{r}");
    assert!(r["data"]["nodes"][2].is_null(), "{r}");
    let errors = r["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2, "{r}");
    assert_eq!(errors[0]["path"], json!(["nodes", 1]));
    assert_eq!(errors[0]["extensions"]["code"], "FORBIDDEN");
    assert_eq!(errors[1]["path"], json!(["nodes", 2]));
    assert_eq!(errors[1]["extensions"]["code"], "NOT_FOUND");

    // An id of one type is not taken where another is asked for; a bare UUID still is (one release).
    let as_user = gid("User", &uuid_of(&space_a).to_string());
    let r = app
        .admin(
            "query($id: ID!) { space(id: $id) { id } }",
            json!({ "id": as_user }),
        )
        .await;
    assert_eq!(code(&r).as_deref(), Some("NOT_FOUND"), "{r}");
    let r = data(
        app.admin(
            "query($id: ID!) { space(id: $id) { id } }",
            json!({ "id": uuid_of(&space_a).to_string() }),
        )
        .await,
    );
    assert_eq!(r["space"]["id"], json!(space_a));
    app.stop().await;
}

// Readable state (issue 17): what `setAdminRole`, `addSpaceAdmin` and `setTwoStepRequired` write,
// and an enrolled authenticator, can be read back through the same policy; the `viewerCan*` flags
// answer what the mutations do.

const MY_STATE: &str = "{ me { adminRoles { organizationAdmin sites { id } spaces { id } } twoStepRequired hasAuthenticator } }";
const SPACE_ADMIN: &str =
    "mutation($i: SpaceAdminInput!) { addSpaceAdmin(input: $i) { space { __typename } } }";

/// Enrols an authenticator app for a person (setup shortcut): confirmed or still waiting for its
/// first code.
fn enrol_authenticator(app: &TestApp, user: &str, confirmed: bool) {
    app.db.execute(&format!(
        "INSERT INTO totp_credentials (user_id, secret_plaintext, created_at, confirmed_at)
         VALUES ('{}', decode(repeat('ab', 20), 'hex'), now(), {})",
        uuid_of(user),
        if confirmed { "now()" } else { "NULL" }
    ));
}

#[actix_rt::test]
async fn each_person_reads_their_own_admin_roles_and_two_step_state() {
    let app = spawn_app().await;
    let space = app.create_space("MINE").await;
    let site_admin = app.add_user("sa@acme.example", None).await;
    app.site_admin_of(&site_admin, &app.site_id).await;
    let space_admin = app
        .add_user("spaceadmin@acme.example", Some(ProductRole::User))
        .await;
    data(
        app.admin(
            SPACE_ADMIN,
            json!({ "i": { "spaceId": space, "userId": space_admin } }),
        )
        .await,
    );
    let paid = app
        .add_user("paid@acme.example", Some(ProductRole::User))
        .await;
    data(
        app.admin(
            "mutation($u: ID!) { setTwoStepRequired(input: { userId: $u, required: true }) { user { __typename } } }",
            json!({ "u": paid }),
        )
        .await,
    );
    let guest = app
        .add_user("guest@partner.example", Some(ProductRole::Guest))
        .await;
    data(app.assign(&space, std::slice::from_ref(&guest)).await);
    enrol_authenticator(&app, &guest, true);
    // Started, never confirmed: sign-ins do not ask for its codes.
    enrol_authenticator(&app, &space_admin, false);

    let site = gid("Site", &app.site_id);
    let org_admin = gid("User", &app.admin_id);
    // Who, then their truth: organization admin, sites, spaces, two-step required, authenticator.
    let cases = [
        ("org admin", &org_admin, json!([true, [], [], false, false])),
        (
            "site admin",
            &site_admin,
            json!([false, [site], [], false, false]),
        ),
        (
            "space admin",
            &space_admin,
            json!([false, [], [space], false, false]),
        ),
        ("paid user", &paid, json!([false, [], [], true, false])),
        ("guest", &guest, json!([false, [], [], false, true])),
    ];
    let mut wrong = Vec::new();
    for (who, id, expected) in cases {
        let token = if id == &org_admin {
            app.admin_token.clone()
        } else {
            app.session_for(id).await
        };
        let r = app.gql(Some(&token), MY_STATE, json!({})).await;
        let me = &r["data"]["me"];
        let ids = |list: &Value| -> Value {
            list.as_array()
                .map(|l| l.iter().map(|o| o["id"].clone()).collect())
                .unwrap_or(Value::Null)
        };
        let got = json!([
            me["adminRoles"]["organizationAdmin"],
            ids(&me["adminRoles"]["sites"]),
            ids(&me["adminRoles"]["spaces"]),
            me["twoStepRequired"],
            me["hasAuthenticator"],
        ]);
        if got != expected || r.get("errors").is_some() {
            wrong.push(format!("{who}: expected {expected}, got {r}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    // While re-verification is due the person still reads their security state (like
    // `verifiedUntil`), but not their admin roles (like `access`).
    app.db.execute(&format!(
        "UPDATE users SET created_at = now() - interval '90 days', verified_at = now() - interval '60 days' WHERE id = '{}'",
        uuid_of(&guest)
    ));
    let token = app.session_for(&guest).await;
    let r = app.gql(Some(&token), MY_STATE, json!({})).await;
    assert!(r["data"]["me"]["adminRoles"].is_null(), "{r}");
    assert_eq!(r["data"]["me"]["twoStepRequired"], false, "{r}");
    assert_eq!(r["data"]["me"]["hasAuthenticator"], true, "{r}");
    assert_eq!(r["errors"].as_array().map(Vec::len), Some(1), "{r}");
    assert_eq!(r["errors"][0]["path"], json!(["me", "adminRoles"]));
    assert_eq!(
        r["errors"][0]["extensions"]["code"],
        "REVERIFICATION_REQUIRED"
    );
    app.stop().await;
}

#[actix_rt::test]
async fn capability_flags_answer_what_the_mutations_do() {
    let app = spawn_app().await;
    let space = app.create_space("MINE").await;
    let other_space = app.create_space("THEIRS").await;
    let site_admin = app.add_user("sa@acme.example", None).await;
    app.site_admin_of(&site_admin, &app.site_id).await;
    let product_admin = app
        .add_user("padmin@acme.example", Some(ProductRole::ProductAdmin))
        .await;
    let space_admin = app
        .add_user("spaceadmin@acme.example", Some(ProductRole::User))
        .await;
    let other_space_admin = app
        .add_user("otheradmin@acme.example", Some(ProductRole::User))
        .await;
    for (s, u) in [(&space, &space_admin), (&other_space, &other_space_admin)] {
        data(
            app.admin(SPACE_ADMIN, json!({ "i": { "spaceId": s, "userId": u } }))
                .await,
        );
    }
    let paid = app
        .add_user("paid@acme.example", Some(ProductRole::User))
        .await;
    let guest = app
        .add_user("guest@partner.example", Some(ProductRole::Guest))
        .await;
    data(app.assign(&space, std::slice::from_ref(&guest)).await);
    // Assigned by whoever may, into the space it is already in after the first: never a move.
    let free_guest = app
        .add_user("free@partner.example", Some(ProductRole::Guest))
        .await;

    let mut people = vec![("org admin", app.admin_token.clone())];
    for (who, id) in [
        ("site admin", &site_admin),
        ("product admin", &product_admin),
        ("space admin", &space_admin),
        ("other space admin", &other_space_admin),
        ("paid user", &paid),
        ("guest", &guest),
    ] {
        people.push((who, app.session_for(id).await));
    }
    // viewerCanInvite, viewerCanAdminister, viewerCanManage, as the policy has it.
    let expected: BTreeMap<&str, [bool; 3]> = [
        ("org admin", [true, true, true]),
        ("site admin", [true, true, true]),
        ("product admin", [false, false, true]),
        ("space admin", [false, false, true]),
        ("other space admin", [false, false, false]),
        ("paid user", [false, false, false]),
        ("guest", [false, false, false]),
    ]
    .into_iter()
    .collect();

    let flags = "query($s: ID!, $sp: ID!) { site(id: $s) { viewerCanInvite viewerCanAdminister } space(id: $sp) { viewerCanManage } }";
    let mut wrong = Vec::new();
    for (i, (who, token)) in people.iter().enumerate() {
        let f = data(
            app.gql(Some(token), flags, json!({ "s": app.site_id, "sp": space }))
                .await,
        );
        let got = [
            f["site"]["viewerCanInvite"].as_bool().unwrap(),
            f["site"]["viewerCanAdminister"].as_bool().unwrap(),
            f["space"]["viewerCanManage"].as_bool().unwrap(),
        ];
        if got != expected[who] {
            wrong.push(format!(
                "{who}: flags {got:?}, expected {:?}",
                expected[who]
            ));
        }
        let calls = [
            (
                "inviteUsers",
                "mutation($i: InviteUsersInput!) { inviteUsers(input: $i) { __typename } }",
                json!({ "i": { "siteId": app.site_id, "emails": [format!("new{i}@partner.example")], "role": "GUEST" } }),
            ),
            (
                "updateSiteSettings",
                "mutation($i: UpdateSiteSettingsInput!) { updateSiteSettings(input: $i) { __typename } }",
                json!({ "i": { "siteId": app.site_id, "inviteExpiryDays": 7 } }),
            ),
            (
                "assignGuestSpace",
                "mutation($i: AssignGuestSpaceInput!) { assignGuestSpace(input: $i) { __typename } }",
                json!({ "i": { "spaceId": space, "userIds": [free_guest] } }),
            ),
        ];
        for ((op, q, v), flag) in calls.into_iter().zip(got) {
            let r = app.gql(Some(token), q, v).await;
            // The flag is true exactly when the mutation is not refused (and then it succeeds).
            let answered = code(&r);
            let agrees = if flag {
                answered.is_none() && r["data"][op].is_object()
            } else {
                answered.as_deref() == Some("FORBIDDEN")
            };
            if !agrees {
                wrong.push(format!(
                    "{who}: flag for {op} is {flag}, the mutation answered {r}"
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    app.stop().await;
}

#[actix_rt::test]
async fn others_admin_roles_and_two_step_state_answer_only_through_the_policy() {
    let app = spawn_app().await;
    let space = app.create_space("MINE").await;
    let site2 = app.create_site("Hidden Wiki").await;
    // A site admin of both sites, and admin of the space.
    let both = app.add_user("both@acme.example", None).await;
    app.site_admin_of(&both, &app.site_id).await;
    app.site_admin_of(&both, &site2).await;
    data(
        app.admin(
            SPACE_ADMIN,
            json!({ "i": { "spaceId": space, "userId": both } }),
        )
        .await,
    );
    let guest = app
        .add_user("guest@partner.example", Some(ProductRole::Guest))
        .await;
    data(app.assign(&space, std::slice::from_ref(&guest)).await);
    // The guest's inviter is the organization admin: the guest sees their name, nothing more.
    app.db.execute(&format!(
        "UPDATE users SET invited_by = '{}' WHERE id = '{}'",
        app.admin_id,
        uuid_of(&guest)
    ));
    let paid = app
        .add_user("paid@acme.example", Some(ProductRole::User))
        .await;

    // A guest: other people's admin roles and security state, and the space's admins, are null with
    // FORBIDDEN on their own paths; everything else answers.
    let q = "query($sp: ID!) { me { displayName invitedBy { id displayName adminRoles { organizationAdmin } twoStepRequired hasAuthenticator } } space(id: $sp) { name viewerCanManage admins { id } } }";
    let r = app
        .gql(
            Some(&app.session_for(&guest).await),
            q,
            json!({ "sp": space }),
        )
        .await;
    assert_eq!(r["data"]["me"]["displayName"], "guest", "{r}");
    let inviter = &r["data"]["me"]["invitedBy"];
    assert_eq!(inviter["id"], json!(gid("User", &app.admin_id)), "{r}");
    assert!(inviter["displayName"].is_string(), "{r}");
    for field in ["adminRoles", "twoStepRequired", "hasAuthenticator"] {
        assert!(inviter[field].is_null(), "{field}: {r}");
    }
    assert_eq!(r["data"]["space"]["name"], "Space MINE", "{r}");
    assert_eq!(r["data"]["space"]["viewerCanManage"], false, "{r}");
    assert!(r["data"]["space"]["admins"].is_null(), "{r}");
    let mut refused: Vec<(String, String)> = r["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["path"].to_string(),
                e["extensions"]["code"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    refused.sort();
    let forbidden = |path: Value| (path.to_string(), "FORBIDDEN".to_string());
    let mut expected = vec![
        forbidden(json!(["me", "invitedBy", "adminRoles"])),
        forbidden(json!(["me", "invitedBy", "twoStepRequired"])),
        forbidden(json!(["me", "invitedBy", "hasAuthenticator"])),
        forbidden(json!(["space", "admins"])),
    ];
    expected.sort();
    assert_eq!(refused, expected, "{r}");
    assert!(!r.to_string().contains("organizationAdmin\":true"), "{r}");

    // A paid user sees the person whole, so their admin roles, but only on what they may see (not
    // site 2), and not their security state (admins only).
    let q = "query($u: ID!, $sp: ID!) { user(id: $u) { email adminRoles { organizationAdmin sites { id name } spaces { id } } twoStepRequired } space(id: $sp) { admins { id } } }";
    let r = app
        .gql(
            Some(&app.session_for(&paid).await),
            q,
            json!({ "u": both, "sp": space }),
        )
        .await;
    let roles = &r["data"]["user"]["adminRoles"];
    assert_eq!(roles["organizationAdmin"], false, "{r}");
    assert_eq!(
        roles["sites"],
        json!([{ "id": gid("Site", &app.site_id), "name": "Docs" }]),
        "{r}"
    );
    assert_eq!(roles["spaces"], json!([{ "id": space }]), "{r}");
    assert!(
        !r.to_string().contains("Hidden Wiki") && !r.to_string().contains(&gid("Site", &site2))
    );
    assert!(r["data"]["user"]["twoStepRequired"].is_null(), "{r}");
    assert_eq!(r["errors"].as_array().map(Vec::len), Some(1), "{r}");
    assert_eq!(r["errors"][0]["path"], json!(["user", "twoStepRequired"]));
    assert_eq!(r["data"]["space"]["admins"], json!([{ "id": both }]), "{r}");

    // The organization admin sees both sites, and the security state.
    let r = data(app.admin(q, json!({ "u": both, "sp": space })).await);
    let sites: Vec<&str> = r["user"]["adminRoles"]["sites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(sites, ["Docs", "Hidden Wiki"]);
    assert_eq!(r["user"]["twoStepRequired"], false);
    app.stop().await;
}
