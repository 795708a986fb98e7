//! Hostile input (issue: hardening): every case gets its exact error code and changes nothing.

mod common;

use common::*;
use guestpass::domain::{EmailAddress, ProductRole};
use serde_json::{Value, json};

/// Row counts of everything a request could change (sessions and token use times aside).
fn snapshot(app: &TestApp) -> Vec<i64> {
    [
        "users",
        "invites",
        "invite_groups",
        "product_roles",
        "site_paid_history",
        "groups",
        "group_members",
        "group_site_roles",
        "spaces",
        "space_admins",
        "guest_spaces",
        "pages",
        "audit_events",
        "email_deliveries",
        "api_tokens",
        "org_admins",
        "site_admins",
        "verified_domains",
        "external_user_policies",
        "policy_reviews",
        "login_challenges",
        "password_resets",
    ]
    .iter()
    .map(|t| app.db.scalar_i64(&format!("SELECT count(*) FROM {t}")))
    .chain([
        app.db
            .scalar_i64("SELECT count(*) FROM users WHERE status = 'ACTIVE'"),
        app.db
            .scalar_i64("SELECT count(*) FROM sessions WHERE revoked_at IS NULL"),
        app.db.scalar_i64("SELECT count(*) FROM apalis.jobs"),
        app.db.scalar_i64(
            "SELECT coalesce(sum(user_limit + guest_ratio + invite_expiry_days), 0) FROM sites",
        ),
    ])
    .collect()
}

/// Checks the first error's code (or `ok` for no error) and that nothing changed.
async fn expect(
    app: &TestApp,
    name: &str,
    token: Option<&str>,
    query: &str,
    vars: Value,
    want: &str,
) {
    let before = snapshot(app);
    let r = app.gql(token, query, vars).await;
    let got = code(&r).unwrap_or_else(|| "ok".into());
    let shown: String = r.to_string().chars().take(400).collect();
    assert_eq!(got, want, "{name}: {shown}");
    let msg = r["errors"][0]["message"].as_str().unwrap_or("");
    for leak in ["SELECT", "diesel", "panicked", "postgres", "src/"] {
        assert!(!msg.contains(leak), "{name} leaks {leak}: {msg}");
    }
    assert_eq!(snapshot(app), before, "{name} changed something");
}

/// Posts a raw body and checks the HTTP status and error code.
async fn expect_raw(app: &TestApp, name: &str, body: Vec<u8>, status: u16, want: &str) {
    let before = snapshot(app);
    let mut res = app
        .client()
        .post(format!("{}/graphql", app.address))
        .insert_header(("Content-Type", "application/json"))
        .insert_header(("Authorization", format!("Bearer {}", app.admin_token)))
        .send_body(body)
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), status, "{name}");
    let v: Value = res.json().limit(1 << 24).await.unwrap();
    assert_eq!(code(&v).as_deref(), Some(want), "{name}: {v}");
    assert_eq!(snapshot(app), before, "{name} changed something");
}

fn nested(depth: usize) -> String {
    let mut q = String::from("id");
    for _ in 0..depth {
        q = format!("invitedBy {{ {q} }}");
    }
    format!("{{ me {{ {q} }} }}")
}

#[actix_rt::test]
async fn hostile_requests_are_refused_with_their_code_and_change_nothing() {
    let app = spawn_app().await;
    let admin = app.admin_token.clone();
    let a = Some(admin.as_str());
    let site = app.site_id.clone();
    let space = app.create_space("DOCS").await;
    let group = app.create_group("Team").await;
    let guest = app
        .add_user("g@partner.example", Some(ProductRole::Guest))
        .await;
    data(app.assign(&space, std::slice::from_ref(&guest)).await);
    let guest_session = app.session_for(&guest).await;
    let invite =
        data(app.invite(&["pending@partner.example"], "GUEST").await)["inviteUsers"]["invites"][0]
            ["id"]
            .as_str()
            .unwrap()
            .to_string();
    let mut cases = 0;

    // Limits on the shape of requests.
    expect(
        &app,
        "depth bomb",
        a,
        &nested(20),
        json!({}),
        "QUERY_TOO_DEEP",
    )
    .await;
    let many: String = (0..31).map(|i| format!("a{i}: me {{ id }} ")).collect();
    expect(
        &app,
        "alias bomb",
        a,
        &format!("{{ {many} }}"),
        json!({}),
        "TOO_MANY_ALIASES",
    )
    .await;
    let wide: String = (0..25)
        .map(|i| format!("u{i}: users(siteId: \"{site}\", first: 100) {{ edges {{ node {{ user {{ id email displayName status createdAt }} role }} cursor }} pageInfo {{ hasNextPage endCursor }} totalCount }} "))
        .collect();
    expect(
        &app,
        "complexity bomb",
        a,
        &format!("{{ {wide} }}"),
        json!({}),
        "QUERY_TOO_COMPLEX",
    )
    .await;
    expect(&app, "fragment cycle", a, "query { me { ...A } } fragment A on User { invitedBy { ...B } } fragment B on User { invitedBy { ...A } }", json!({}), "GRAPHQL_VALIDATION_FAILED").await;
    expect(
        &app,
        "syntax error",
        a,
        "{ me { id ",
        json!({}),
        "GRAPHQL_PARSE_FAILED",
    )
    .await;
    expect(
        &app,
        "unknown field",
        a,
        "{ me { password } }",
        json!({}),
        "GRAPHQL_VALIDATION_FAILED",
    )
    .await;
    expect(
        &app,
        "first: 1000000",
        a,
        "query($s: ID!) { users(siteId: $s, first: 1000000) { totalCount } }",
        json!({ "s": site }),
        "INVALID_INPUT",
    )
    .await;
    expect(
        &app,
        "first: -1",
        a,
        "query($s: ID!) { guests(siteId: $s, first: -1) { totalCount } }",
        json!({ "s": site }),
        "INVALID_INPUT",
    )
    .await;
    expect(
        &app,
        "forged cursor",
        a,
        "query($s: ID!) { users(siteId: $s, after: \"' OR 1=1 --\") { totalCount } }",
        json!({ "s": site }),
        "INVALID_INPUT",
    )
    .await;
    cases += 9;
    let batch: Vec<Value> = (0..1000)
        .map(|_| json!({ "query": "{ me { id } }" }))
        .collect();
    expect_raw(
        &app,
        "1,000-operation batch",
        serde_json::to_vec(&batch).unwrap(),
        400,
        "BATCH_TOO_LARGE",
    )
    .await;
    expect_raw(&app, "empty batch", b"[]".to_vec(), 400, "BATCH_TOO_LARGE").await;
    let huge = format!(
        "{{\"query\": \"{{ me {{ id }} }}\", \"variables\": {{ \"x\": \"{}\" }} }}",
        "a".repeat(300_000)
    );
    expect_raw(
        &app,
        "oversize body",
        huge.into_bytes(),
        413,
        "PAYLOAD_TOO_LARGE",
    )
    .await;
    expect_raw(
        &app,
        "malformed JSON",
        b"{\"query\": ".to_vec(),
        400,
        "BAD_REQUEST",
    )
    .await;
    expect_raw(
        &app,
        "not GraphQL",
        b"[1, 2, 3]".to_vec(),
        400,
        "BAD_REQUEST",
    )
    .await;
    cases += 5;
    let mut get = app
        .client()
        .get(format!(
            "{}/graphql?query=mutation%20%7B%20logout%20%7B%20ok%20%7D%20%7D",
            app.address
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 405);
    assert_eq!(
        code(&get.json::<Value>().await.unwrap()).as_deref(),
        Some("METHOD_NOT_ALLOWED")
    );
    cases += 1;

    // Text fields: CR/LF refused in every single-line field, naming it; look-alikes and SQL are inert.
    let crlf = "Name\r\nBcc: evil@x.example";
    for (name, q, vars, field) in [
        (
            "space name",
            "mutation($i: CreateSpaceInput!) { createSpace(input: $i) { id } }",
            json!({ "i": { "siteId": site, "key": "NEW", "name": crlf } }),
            "name",
        ),
        (
            "page title",
            "mutation($i: CreatePageInput!) { createPage(input: $i) { id } }",
            json!({ "i": { "spaceId": space, "title": crlf, "body": "x" } }),
            "title",
        ),
        (
            "group name",
            "mutation($i: CreateGroupInput!) { createGroup(input: $i) { id } }",
            json!({ "i": { "name": crlf } }),
            "name",
        ),
        (
            "group rename",
            "mutation($i: RenameGroupInput!) { renameGroup(input: $i) { id } }",
            json!({ "i": { "id": group, "name": crlf } }),
            "name",
        ),
        (
            "token name",
            "mutation($i: CreateApiTokenInput!) { createApiToken(input: $i) { token } }",
            json!({ "i": { "name": crlf } }),
            "name",
        ),
        (
            "bidi override",
            "mutation($i: CreateGroupInput!) { createGroup(input: $i) { id } }",
            json!({ "i": { "name": "admins\u{202E}txt.exe" } }),
            "name",
        ),
        (
            "zero-width",
            "mutation($i: CreateSpaceInput!) { createSpace(input: $i) { id } }",
            json!({ "i": { "siteId": site, "key": "ZW", "name": "Do\u{200B}cs" } }),
            "name",
        ),
        (
            "confusable key",
            "mutation($i: CreateSpaceInput!) { createSpace(input: $i) { id } }",
            json!({ "i": { "siteId": site, "key": "\u{0410}BC", "name": "Abc" } }),
            "key",
        ),
        (
            "lower-case key",
            "mutation($i: CreateSpaceInput!) { createSpace(input: $i) { id } }",
            json!({ "i": { "siteId": site, "key": "docs; DROP TABLE spaces", "name": "Abc" } }),
            "key",
        ),
        (
            "message too long",
            "mutation($i: InviteUsersInput!) { inviteUsers(input: $i) { invites { id } } }",
            json!({ "i": { "siteId": site, "emails": ["m@partner.example"], "role": "GUEST", "personalMessage": "x".repeat(1001) } }),
            "personalMessage",
        ),
        (
            "expiry 0 days",
            "mutation($i: InviteUsersInput!) { inviteUsers(input: $i) { invites { id } } }",
            json!({ "i": { "siteId": site, "emails": ["m@partner.example"], "role": "GUEST", "expiresInDays": 0 } }),
            "expiresInDays",
        ),
        (
            "negative limit",
            "mutation($i: UpdateSiteSettingsInput!) { updateSiteSettings(input: $i) { site { id } } }",
            json!({ "i": { "siteId": site, "userLimit": -1 } }),
            "userLimit",
        ),
        (
            "domain",
            "mutation { addVerifiedDomain(input: { domain: \"not a domain\" }) }",
            json!({}),
            "domain",
        ),
        (
            "interval",
            "mutation { previewExternalUserSecurityChange(input: { twoStepVerification: OFF, reverificationInterval: 14, apiTokenAccess: ALLOWED }) { reviewId } }",
            json!({}),
            "reverificationInterval",
        ),
    ] {
        let before = snapshot(&app);
        let r = app.gql(a, q, vars).await;
        assert_eq!(code(&r).as_deref(), Some("INVALID_INPUT"), "{name}: {r}");
        assert_eq!(r["errors"][0]["extensions"]["field"], field, "{name}: {r}");
        assert_eq!(snapshot(&app), before, "{name} changed something");
        cases += 1;
    }
    let invite_q = "mutation($i: InviteUsersInput!) { inviteUsers(input: $i) { invites { id } } }";
    for (name, email) in [
        (
            "SQL in an address",
            "x'; DROP TABLE users;--@partner.example".to_string(),
        ),
        (
            "confusable address",
            "\u{0430}dmin@acme.example".to_string(),
        ),
        (
            "overlong address",
            format!("{}@partner.example", "a".repeat(250)),
        ),
        (
            "header injection",
            "a@partner.example\r\nBcc: b@evil.example".to_string(),
        ),
    ] {
        expect(
            &app,
            name,
            a,
            invite_q,
            json!({ "i": { "siteId": site, "emails": [email], "role": "GUEST" } }),
            "INVALID_EMAIL",
        )
        .await;
        cases += 1;
    }
    let eleven: Vec<String> = (0..11).map(|i| format!("p{i}@partner.example")).collect();
    expect(
        &app,
        "11 addresses",
        a,
        invite_q,
        json!({ "i": { "siteId": site, "emails": eleven, "role": "GUEST" } }),
        "TOO_MANY_INVITES",
    )
    .await;
    expect(
        &app,
        "SQL in search",
        a,
        "query($s: ID!) { guests(siteId: $s, filter: { search: \"' OR 1=1 --\" }) { totalCount } }",
        json!({ "s": site }),
        "ok",
    )
    .await;
    expect(
        &app,
        "SQL in an id",
        a,
        "query { site(id: \"1 OR 1=1\") { id } }",
        json!({}),
        "NOT_FOUND",
    )
    .await;
    expect(&app, "long password", None, "mutation($i: LoginInput!) { login(input: $i) { sessionToken } }", json!({ "i": { "organization": "acme", "email": "nobody@partner.example", "password": "x".repeat(5000) } }), "INVALID_CREDENTIALS").await;
    cases += 4;
    // A personal message keeps its line breaks as inert text.
    let r = data(app.gql(a, "mutation($i: InviteUsersInput!) { inviteUsers(input: $i) { invites { personalMessage } } }", json!({ "i": { "siteId": site, "emails": ["lines@partner.example"], "role": "GUEST", "personalMessage": "Hi\r\n<script>x</script>\r\nBcc: y" } })).await);
    assert_eq!(
        r["inviteUsers"]["invites"][0]["personalMessage"],
        "Hi\n<script>x</script>\nBcc: y"
    );
    cases += 1;

    // Tokens and codes: garbage, replayed and expired ones.
    let me = "{ me { id } }";
    expect(
        &app,
        "garbage token",
        Some("gps_not-a-token"),
        me,
        json!({}),
        "UNAUTHENTICATED",
    )
    .await;
    expect(
        &app,
        "wrong scheme token",
        Some("Basic abc"),
        me,
        json!({}),
        "UNAUTHENTICATED",
    )
    .await;
    let ended = app.session_for(&guest).await;
    data(
        app.gql(Some(&ended), "mutation { logout { ok } }", json!({}))
            .await,
    );
    expect(
        &app,
        "replayed session",
        Some(&ended),
        me,
        json!({}),
        "UNAUTHENTICATED",
    )
    .await;
    let token = app.invite_token(&invite).await;
    data(
        app.admin(
            "mutation($i: ID!) { revokeInvite(id: $i) { id } }",
            json!({ "i": invite }),
        )
        .await,
    );
    expect(&app, "revoked invite link", None, "mutation($i: AcceptInviteInput!) { acceptInvite(input: $i) { sessionToken } }", json!({ "i": { "token": token, "displayName": "X", "password": "a long enough passphrase" } }), "INVITE_INVALID").await;
    expect(&app, "forged invite link", None, "mutation($i: AcceptInviteInput!) { acceptInvite(input: $i) { sessionToken } }", json!({ "i": { "token": format!("{}0", &token[..token.len() - 1]), "displayName": "X", "password": "a long enough passphrase" } }), "INVITE_INVALID").await;
    expect(&app, "made-up challenge", None, "mutation { completeLogin(input: { challengeId: \"00000000-0000-0000-0000-000000000000\", code: \"123456\" }) { sessionToken } }", json!({}), "CODE_INVALID").await;
    expect(&app, "forged reset link", None, "mutation { resetPassword(input: { token: \"gpr_00000000000000000000000000000000ffffffffffffffffffffffffffffffff\", newPassword: \"a long enough passphrase\" }) { ok } }", json!({}), "LINK_INVALID").await;
    app.clock.advance(chrono::Duration::hours(24 * 15));
    expect(
        &app,
        "expired session",
        Some(&guest_session),
        me,
        json!({}),
        "UNAUTHENTICATED",
    )
    .await;
    app.clock.advance(chrono::Duration::hours(-(24 * 15)));
    cases += 8;

    // A guest calling admin operations.
    for (name, q, vars) in [
        (
            "guest invites",
            invite_q,
            json!({ "i": { "siteId": site, "emails": ["x@partner.example"], "role": "GUEST" } }),
        ),
        (
            "guest sets a role",
            "mutation($i: SetProductRoleInput!) { setProductRole(input: $i) { dryRun } }",
            json!({ "i": { "siteId": site, "userId": guest, "role": "PRODUCT_ADMIN" } }),
        ),
        (
            "guest lists users",
            "query($s: ID!) { users(siteId: $s) { totalCount } }",
            json!({ "s": site }),
        ),
        (
            "guest lists guests",
            "query($s: ID!) { guests(siteId: $s) { totalCount } }",
            json!({ "s": site }),
        ),
        ("guest lists groups", "{ groups { totalCount } }", json!({})),
        (
            "guest reads the audit",
            "{ auditEvents { totalCount } }",
            json!({}),
        ),
        (
            "guest changes limits",
            "mutation($i: UpdateSiteSettingsInput!) { updateSiteSettings(input: $i) { site { id } } }",
            json!({ "i": { "siteId": site, "userLimit": 1000 } }),
        ),
        (
            "guest joins a group",
            "mutation($i: GroupMembersInput!) { addGroupMembers(input: $i) { dryRun } }",
            json!({ "i": { "groupId": group, "userIds": [guest] } }),
        ),
    ] {
        expect(&app, name, Some(&guest_session), q, vars, "FORBIDDEN").await;
        cases += 1;
    }

    // Ids of another organization, in every id-taking operation, for that organization's own admin.
    let other = app
        .state
        .db
        .run(|c| {
            guestpass::store::org::bootstrap(
                c,
                guestpass::store::org::BootstrapInput {
                    org_name: "Rival".into(),
                    site_name: "Theirs".into(),
                    admin_email: EmailAddress::parse("boss@rival.example").unwrap(),
                    user_limit: Some(10),
                    verified_domains: vec!["rival.example".into()],
                },
                chrono::Utc::now(),
            )
        })
        .await
        .unwrap();
    let rival = Some(other.api_token.as_str());
    for (name, q, vars) in [
        (
            "site",
            "query($x: ID!) { site(id: $x) { id } }",
            json!({ "x": site }),
        ),
        (
            "seatUsage",
            "query($x: ID!) { seatUsage(siteId: $x) { guests } }",
            json!({ "x": site }),
        ),
        (
            "spaces",
            "query($x: ID!) { spaces(siteId: $x) { id } }",
            json!({ "x": site }),
        ),
        (
            "space",
            "query($x: ID!) { space(id: $x) { id } }",
            json!({ "x": space }),
        ),
        (
            "users",
            "query($x: ID!) { users(siteId: $x) { totalCount } }",
            json!({ "x": site }),
        ),
        (
            "guests",
            "query($x: ID!) { guests(siteId: $x) { totalCount } }",
            json!({ "x": site }),
        ),
        (
            "invites",
            "query($x: ID!) { invites(siteId: $x) { totalCount } }",
            json!({ "x": site }),
        ),
        (
            "group",
            "query($x: ID!) { group(id: $x) { id } }",
            json!({ "x": group }),
        ),
        (
            "user",
            "query($x: ID!) { user(id: $x) { id } }",
            json!({ "x": guest }),
        ),
        (
            "createSpace",
            "mutation($x: ID!) { createSpace(input: { siteId: $x, key: \"X\", name: \"X\" }) { id } }",
            json!({ "x": site }),
        ),
        (
            "createPage",
            "mutation($x: ID!) { createPage(input: { spaceId: $x, title: \"X\", body: \"\" }) { id } }",
            json!({ "x": space }),
        ),
        (
            "inviteUsers",
            "mutation($x: ID!) { inviteUsers(input: { siteId: $x, emails: [\"a@b.example\"], role: GUEST }) { invites { id } } }",
            json!({ "x": site }),
        ),
        (
            "resendInvite",
            "mutation($x: ID!) { resendInvite(id: $x) { id } }",
            json!({ "x": invite }),
        ),
        (
            "revokeInvite",
            "mutation($x: ID!) { revokeInvite(id: $x) { id } }",
            json!({ "x": invite }),
        ),
        (
            "updateSiteSettings",
            "mutation($x: ID!) { updateSiteSettings(input: { siteId: $x, userLimit: 1 }) { site { id } } }",
            json!({ "x": site }),
        ),
        (
            "renameGroup",
            "mutation($x: ID!) { renameGroup(input: { id: $x, name: \"Y\" }) { id } }",
            json!({ "x": group }),
        ),
        (
            "deleteGroup",
            "mutation($x: ID!) { deleteGroup(id: $x) { dryRun } }",
            json!({ "x": group }),
        ),
        (
            "setGroupProductRole",
            "mutation($x: ID!, $s: ID!) { setGroupProductRole(input: { groupId: $x, siteId: $s, role: USER }) { dryRun } }",
            json!({ "x": group, "s": other.site.id.to_string() }),
        ),
        (
            "addGroupMembers",
            "mutation($x: ID!, $u: ID!) { addGroupMembers(input: { groupId: $x, userIds: [$u] }) { dryRun } }",
            json!({ "x": group, "u": other.admin.id.to_string() }),
        ),
        (
            "addGroupMembers (user)",
            "mutation($u: ID!) { createGroup(input: { name: \"R\" }) { id } }",
            json!({ "u": guest }),
        ),
        (
            "setProductRole",
            "mutation($x: ID!, $u: ID!) { setProductRole(input: { siteId: $x, userId: $u, role: USER }) { dryRun } }",
            json!({ "x": site, "u": guest }),
        ),
        (
            "setProductRole (user)",
            "mutation($s: ID!, $u: ID!) { setProductRole(input: { siteId: $s, userId: $u, role: USER }) { dryRun } }",
            json!({ "s": other.site.id.to_string(), "u": guest }),
        ),
        (
            "removeProductAccess",
            "mutation($x: ID!, $u: ID!) { removeProductAccess(input: { siteId: $x, userId: $u }) { dryRun } }",
            json!({ "x": site, "u": guest }),
        ),
        (
            "assignGuestSpace",
            "mutation($x: ID!, $u: ID!) { assignGuestSpace(input: { spaceId: $x, userIds: [$u] }) { assignments { user { id } } } }",
            json!({ "x": space, "u": guest }),
        ),
        (
            "unassignGuestSpace",
            "mutation($x: ID!, $u: ID!) { unassignGuestSpace(input: { siteId: $x, userIds: [$u] }) { assignments { user { id } } } }",
            json!({ "x": site, "u": guest }),
        ),
        (
            "setAdminRole",
            "mutation($u: ID!) { setAdminRole(input: { userId: $u, role: ORG_ADMIN, granted: true }) { id } }",
            json!({ "u": guest }),
        ),
        (
            "addSpaceAdmin",
            "mutation($x: ID!, $u: ID!) { addSpaceAdmin(input: { spaceId: $x, userId: $u }) { id } }",
            json!({ "x": space, "u": other.admin.id.to_string() }),
        ),
        (
            "removeSpaceAdmin",
            "mutation($x: ID!, $u: ID!) { removeSpaceAdmin(input: { spaceId: $x, userId: $u }) { id } }",
            json!({ "x": space, "u": other.admin.id.to_string() }),
        ),
        (
            "deactivateUser",
            "mutation($u: ID!) { deactivateUser(id: $u) { id } }",
            json!({ "u": guest }),
        ),
        (
            "reactivateUser",
            "mutation($u: ID!) { reactivateUser(id: $u) { id } }",
            json!({ "u": guest }),
        ),
        (
            "setTwoStepRequired",
            "mutation($u: ID!) { setTwoStepRequired(input: { userId: $u, required: true }) { id } }",
            json!({ "u": guest }),
        ),
    ] {
        if name == "addGroupMembers (user)" {
            continue;
        }
        expect(
            &app,
            &format!("foreign id: {name}"),
            rival,
            q,
            vars,
            "NOT_FOUND",
        )
        .await;
        cases += 1;
    }
    assert!(cases >= 40, "{cases} cases");
    eprintln!("{cases} hostile cases");
    app.stop().await;
}

#[actix_rt::test]
async fn login_aliases_and_batches_are_counted_one_by_one() {
    let app = spawn_app_with(AppOptions {
        configure: Some(|c| {
            c.login_limit_per_account = 50;
            c.login_limit_per_address = 100_000;
        }),
        ..Default::default()
    })
    .await;
    let id = app
        .add_user("target@acme.example", Some(ProductRole::User))
        .await;
    app.set_password(&id, "the right passphrase").await;
    // 1,000 attempts: 40 requests of 25 aliases each (within the alias cap of 30).
    let aliases: String = (0..25)
        .map(|i| format!("a{i}: login(input: {{ organization: \"acme\", email: \"target@acme.example\", password: \"guess {i}\" }}) {{ sessionToken }} "))
        .collect();
    let q = format!("mutation {{ {aliases} }}");
    let (mut refused, mut wrong) = (0, 0);
    for _ in 0..40 {
        let r = app.gql(None, &q, json!({})).await;
        for e in r["errors"].as_array().unwrap() {
            match e["extensions"]["code"].as_str() {
                Some("RATE_LIMITED") => refused += 1,
                Some("INVALID_CREDENTIALS") => wrong += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    assert_eq!(wrong, 50, "exactly the account's budget was tried");
    assert_eq!(refused, 950);
    // Batches count the same way.
    let batch: Vec<Value> = (0..5).map(|_| json!({ "query": "mutation { login(input: { organization: \"acme\", email: \"target@acme.example\", password: \"the right passphrase\" }) { sessionToken } }" })).collect();
    let mut res = app
        .client()
        .post(format!("{}/graphql", app.address))
        .send_json(&batch)
        .await
        .unwrap();
    let v: Value = res.json().await.unwrap();
    assert!(
        v.as_array()
            .unwrap()
            .iter()
            .all(|r| code(r).as_deref() == Some("RATE_LIMITED"))
    );
    app.stop().await;
}
