//! Hostile input (issue: hardening): every case gets its exact error code and changes nothing.

use crate::common::*;
use guestpass::domain::{EmailAddress, ProductRole};
use serde_json::{Value, json};

/// Row counts of everything a request could change (sessions and token use times aside).
fn snapshot(app: &TestApp) -> Vec<i64> {
    snapshot_on(&mut app.db.conn())
}

/// [`snapshot`] on a connection of the caller's, in one statement.
fn snapshot_on(conn: &mut diesel::PgConnection) -> Vec<i64> {
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Array<diesel::sql_types::BigInt>)]
        v: Vec<i64>,
    }
    let counts = [
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
        "guest_terms",
        "guest_domain_rules",
        "bulk_invites",
        "bulk_invite_rows",
        "notices",
        "reverification_links",
        "totp_credentials",
        "recovery_codes",
    ]
    .iter()
    .map(|t| format!("(SELECT count(*) FROM {t})"))
    .chain(
        [
            "SELECT count(*) FROM users WHERE status = 'ACTIVE'",
            "SELECT count(*) FROM sessions WHERE revoked_at IS NULL",
            "SELECT count(*) FROM sessions WHERE revoked_at IS NOT NULL",
            "SELECT count(*) FROM api_tokens WHERE revoked_at IS NOT NULL",
            "SELECT count(*) FROM apalis.jobs",
            "SELECT coalesce(sum(user_limit + guest_ratio + invite_expiry_days), 0) FROM sites",
        ]
        .iter()
        .map(|q| format!("({q})")),
    )
    .collect::<Vec<_>>()
    .join(", ");
    diesel::sql_query(format!("SELECT ARRAY[{counts}]::bigint[] AS v"))
        .get_result::<Row>(conn)
        .unwrap()
        .v
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
            "mutation($i: CreateSpaceInput!) { createSpace(input: $i) { space { id } } }",
            json!({ "i": { "siteId": site, "key": "NEW", "name": crlf } }),
            "name",
        ),
        (
            "page title",
            "mutation($i: CreatePageInput!) { createPage(input: $i) { page { id } } }",
            json!({ "i": { "spaceId": space, "title": crlf, "body": "x" } }),
            "title",
        ),
        (
            "group name",
            "mutation($i: CreateGroupInput!) { createGroup(input: $i) { group { id } } }",
            json!({ "i": { "name": crlf } }),
            "name",
        ),
        (
            "group rename",
            "mutation($i: RenameGroupInput!) { renameGroup(input: $i) { group { id } } }",
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
            "mutation($i: CreateGroupInput!) { createGroup(input: $i) { group { id } } }",
            json!({ "i": { "name": "admins\u{202E}txt.exe" } }),
            "name",
        ),
        (
            "zero-width",
            "mutation($i: CreateSpaceInput!) { createSpace(input: $i) { space { id } } }",
            json!({ "i": { "siteId": site, "key": "ZW", "name": "Do\u{200B}cs" } }),
            "name",
        ),
        (
            "confusable key",
            "mutation($i: CreateSpaceInput!) { createSpace(input: $i) { space { id } } }",
            json!({ "i": { "siteId": site, "key": "\u{0410}BC", "name": "Abc" } }),
            "key",
        ),
        (
            "lower-case key",
            "mutation($i: CreateSpaceInput!) { createSpace(input: $i) { space { id } } }",
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
            "mutation { addVerifiedDomain(input: { domain: \"not a domain\" }) { verifiedDomains } }",
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
            "mutation($i: ID!) { revokeInvite(id: $i) { invite { id } } }",
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
            "mutation($x: ID!) { createSpace(input: { siteId: $x, key: \"X\", name: \"X\" }) { space { id } } }",
            json!({ "x": site }),
        ),
        (
            "createPage",
            "mutation($x: ID!) { createPage(input: { spaceId: $x, title: \"X\", body: \"\" }) { page { id } } }",
            json!({ "x": space }),
        ),
        (
            "inviteUsers",
            "mutation($x: ID!) { inviteUsers(input: { siteId: $x, emails: [\"a@b.example\"], role: GUEST }) { invites { id } } }",
            json!({ "x": site }),
        ),
        (
            "resendInvite",
            "mutation($x: ID!) { resendInvite(id: $x) { invite { id } } }",
            json!({ "x": invite }),
        ),
        (
            "revokeInvite",
            "mutation($x: ID!) { revokeInvite(id: $x) { invite { id } } }",
            json!({ "x": invite }),
        ),
        (
            "updateSiteSettings",
            "mutation($x: ID!) { updateSiteSettings(input: { siteId: $x, userLimit: 1 }) { site { id } } }",
            json!({ "x": site }),
        ),
        (
            "renameGroup",
            "mutation($x: ID!) { renameGroup(input: { id: $x, name: \"Y\" }) { group { id } } }",
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
            "mutation($u: ID!) { createGroup(input: { name: \"R\" }) { group { id } } }",
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
            "mutation($u: ID!) { setAdminRole(input: { userId: $u, role: ORG_ADMIN, granted: true }) { user { id } } }",
            json!({ "u": guest }),
        ),
        (
            "addSpaceAdmin",
            "mutation($x: ID!, $u: ID!) { addSpaceAdmin(input: { spaceId: $x, userId: $u }) { space { id } } }",
            json!({ "x": space, "u": other.admin.id.to_string() }),
        ),
        (
            "removeSpaceAdmin",
            "mutation($x: ID!, $u: ID!) { removeSpaceAdmin(input: { spaceId: $x, userId: $u }) { space { id } } }",
            json!({ "x": space, "u": other.admin.id.to_string() }),
        ),
        (
            "deactivateUser",
            "mutation($u: ID!) { deactivateUser(id: $u) { user { id } } }",
            json!({ "u": guest }),
        ),
        (
            "reactivateUser",
            "mutation($u: ID!) { reactivateUser(id: $u) { user { id } } }",
            json!({ "u": guest }),
        ),
        (
            "setTwoStepRequired",
            "mutation($u: ID!) { setTwoStepRequired(input: { userId: $u, required: true }) { user { id } } }",
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

// Escalation (issue 15): every id-taking mutation, called by each kind of person with every
// combination of "their" and "not their" site, space, group, user and invite, answers FORBIDDEN or
// NOT_FOUND exactly where the rules say, and writes nothing.

/// Every row of every table (sessions and tokens without their use times, users without their last
/// activity), one digest per table, read in one statement: a refusal that updates a row in place
/// (a name, a role, a flag) shows here even when no count changes.
fn digest(conn: &mut diesel::PgConnection) -> Vec<(String, String)> {
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        t: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        h: String,
    }
    let tables = [
        ("organizations", "*"),
        ("verified_domains", "*"),
        ("sites", "*"),
        (
            "users",
            "id, organization_id, email, display_name, password_hash, status, invited_by, two_step_required, created_at, verified_at, reverify_notified_for",
        ),
        ("org_admins", "*"),
        ("site_admins", "*"),
        ("product_roles", "*"),
        ("site_paid_history", "*"),
        ("groups", "*"),
        ("group_site_roles", "*"),
        ("group_members", "*"),
        ("spaces", "*"),
        ("space_admins", "*"),
        ("guest_spaces", "*"),
        ("pages", "*"),
        ("invites", "*"),
        ("invite_groups", "*"),
        (
            "api_tokens",
            "id, user_id, name, token_hash, created_at, expires_at, revoked_at",
        ),
        (
            "sessions",
            "id, user_id, token_hash, created_at, expires_at, revoked_at",
        ),
        ("audit_events", "*"),
        ("email_deliveries", "*"),
        ("guest_terms", "*"),
        ("guest_domain_rules", "*"),
        ("bulk_invites", "*"),
        ("bulk_invite_rows", "*"),
        ("notices", "*"),
        ("external_user_policies", "*"),
        ("reverification_links", "*"),
        ("reverification_sweeps", "*"),
        ("policy_reviews", "*"),
        ("login_challenges", "*"),
        ("password_resets", "*"),
        ("totp_credentials", "*"),
        ("recovery_codes", "*"),
        ("webhook_endpoints", "*"),
        ("webhook_deliveries", "*"),
        ("webhook_attempts", "*"),
        (
            "apalis.jobs",
            "id, job_type, status, attempts, max_attempts, run_at",
        ),
    ];
    let sql = tables
        .iter()
        .map(|(t, cols)| {
            format!(
                "SELECT '{t}' AS t, md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) AS h FROM (SELECT {cols} FROM {t}) x"
            )
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    diesel::sql_query(sql)
        .load::<Row>(conn)
        .unwrap()
        .into_iter()
        .map(|r| (r.t, r.h))
        .collect()
}

/// The people who call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Who {
    /// Site admin of site 1 only, no product role.
    SiteAdmin,
    /// `PRODUCT_ADMIN` on site 1.
    ProductAdmin,
    /// `USER` on site 1, admin of space A.
    SpaceAdmin,
    /// `USER` on site 1.
    PaidUser,
    /// Guest of site 1 in space A.
    Guest,
    /// The organization admin of another organization.
    Rival,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum S {
    One,
    Two,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sp {
    /// Space A, site 1.
    A,
    /// Space B, site 1.
    B,
    /// Space C, site 2.
    C,
}

/// Where a group (or a person) holds roles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reach {
    One,
    Two,
    Both,
    Nowhere,
}

/// What a call needs the caller to hold, one entry per id it names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Req {
    /// Manage the site (invites, roles, settings, removals, sponsors, site admins).
    Site(S),
    /// Manage the site's spaces (create them, name their admins).
    Spaces(S),
    /// Put guests in the space or take them out of it.
    GuestsOf(Sp),
    /// Create pages in the space.
    Write(Sp),
    /// Manage a group reaching these sites.
    Group(Reach),
    /// Set a role on a site for a group already reaching these sites.
    GroupRole(Reach, S),
    /// Two-step flags of a person present on these sites (`Nowhere`: on no site).
    TwoStep(Reach),
    /// Two-step flags of the organization admin.
    TwoStepOfOrgAdmin,
    /// Organization admin only (org admin roles, (de)activation).
    Org,
    /// Be a guest of the site (self-service: leave it, ask for more time). Everyone else gets
    /// `INVALID_INPUT` (docs/authorization.md: "they are not a guest of the site").
    GuestOf(S),
    /// Someone else's session or API token: `NOT_FOUND` for everyone.
    SomeoneElses,
    /// An id of the other organization.
    Rival,
}

/// The rules of issue 15, for the callers of this test (all on site 1 only).
fn allowed(who: Who, r: Req) -> bool {
    use Who::*;
    match r {
        Req::Site(S::One) => who == SiteAdmin,
        Req::Spaces(S::One) => matches!(who, SiteAdmin | ProductAdmin),
        Req::GuestsOf(Sp::A) => matches!(who, SiteAdmin | ProductAdmin | SpaceAdmin),
        Req::GuestsOf(Sp::B) => matches!(who, SiteAdmin | ProductAdmin),
        Req::Write(Sp::A) => who != Rival,
        Req::Write(Sp::B) => matches!(who, SiteAdmin | ProductAdmin | SpaceAdmin | PaidUser),
        // Site admins manage only groups reaching only their site (never a group reaching none).
        Req::Group(Reach::One) => who == SiteAdmin,
        // ...and set a role on their site for a group reaching nothing else.
        Req::GroupRole(Reach::One | Reach::Nowhere, S::One) => who == SiteAdmin,
        // Two-step flags only for people whose every site the caller administers.
        Req::TwoStep(Reach::One) => who == SiteAdmin,
        Req::GuestOf(S::One) => who == Guest,
        // Nobody here holds anything on site 2, space C, or organization-wide.
        _ => false,
    }
}

/// The answer a call must give, or `None` where the caller may make it (not called, but for the
/// site admin's controls).
fn expected(who: Who, reqs: &[Req]) -> Option<&'static str> {
    if who == Who::Rival {
        // Every id of Acme is unknown to them; calls on their own ids are theirs.
        return reqs.iter().any(|r| *r != Req::Rival).then_some("NOT_FOUND");
    }
    if reqs.contains(&Req::Rival) || reqs.contains(&Req::SomeoneElses) {
        return Some("NOT_FOUND");
    }
    if reqs.iter().all(|r| allowed(who, *r)) {
        return None;
    }
    if reqs
        .iter()
        .any(|r| matches!(r, Req::GuestOf(_)) && !allowed(who, *r))
    {
        return Some("INVALID_INPUT");
    }
    Some("FORBIDDEN")
}

/// The document of each mutation the test calls (input as `$i`).
fn document(op: &str) -> &'static str {
    match op {
        "createSpace" => {
            "mutation($i: CreateSpaceInput!) { createSpace(input: $i) { space { id } } }"
        }
        "createPage" => "mutation($i: CreatePageInput!) { createPage(input: $i) { page { id } } }",
        "inviteUsers" => {
            "mutation($i: InviteUsersInput!) { inviteUsers(input: $i) { invites { id } } }"
        }
        "resendInvite" => "mutation($i: ID!) { resendInvite(id: $i) { invite { id } } }",
        "revokeInvite" => "mutation($i: ID!) { revokeInvite(id: $i) { invite { id } } }",
        "updateSiteSettings" => {
            "mutation($i: UpdateSiteSettingsInput!) { updateSiteSettings(input: $i) { site { id } } }"
        }
        "renameGroup" => {
            "mutation($i: RenameGroupInput!) { renameGroup(input: $i) { group { id } } }"
        }
        "deleteGroup" => "mutation($i: ID!) { deleteGroup(id: $i) { dryRun } }",
        "setGroupProductRole" => {
            "mutation($i: SetGroupProductRoleInput!) { setGroupProductRole(input: $i) { dryRun } }"
        }
        "addGroupMembers" => {
            "mutation($i: GroupMembersInput!) { addGroupMembers(input: $i) { dryRun } }"
        }
        "removeGroupMembers" => {
            "mutation($i: GroupMembersInput!) { removeGroupMembers(input: $i) { dryRun } }"
        }
        "setProductRole" => {
            "mutation($i: SetProductRoleInput!) { setProductRole(input: $i) { dryRun } }"
        }
        "removeProductAccess" => {
            "mutation($i: RemoveProductAccessInput!) { removeProductAccess(input: $i) { dryRun } }"
        }
        "assignGuestSpace" => {
            "mutation($i: AssignGuestSpaceInput!) { assignGuestSpace(input: $i) { assignments { user { id } } } }"
        }
        "unassignGuestSpace" => {
            "mutation($i: UnassignGuestSpaceInput!) { unassignGuestSpace(input: $i) { assignments { user { id } } } }"
        }
        "removeGuests" => {
            "mutation($i: RemoveGuestsInput!) { removeGuests(input: $i) { removed { id } } }"
        }
        "setAdminRole" => {
            "mutation($i: SetAdminRoleInput!) { setAdminRole(input: $i) { user { id } } }"
        }
        "addSpaceAdmin" => {
            "mutation($i: SpaceAdminInput!) { addSpaceAdmin(input: $i) { space { id } } }"
        }
        "removeSpaceAdmin" => {
            "mutation($i: SpaceAdminInput!) { removeSpaceAdmin(input: $i) { space { id } } }"
        }
        "deactivateUser" => "mutation($i: ID!) { deactivateUser(id: $i) { user { id } } }",
        "reactivateUser" => "mutation($i: ID!) { reactivateUser(id: $i) { user { id } } }",
        "setTwoStepRequired" => {
            "mutation($i: SetTwoStepRequiredInput!) { setTwoStepRequired(input: $i) { user { id } } }"
        }
        "extendGuestAccess" => {
            "mutation($i: ExtendGuestAccessInput!) { extendGuestAccess(input: $i) { accessEndsAt } }"
        }
        "setSponsor" => "mutation($i: SetSponsorInput!) { setSponsor(input: $i) { sponsorId } }",
        "requestExtension" => {
            "mutation($i: RequestExtensionInput!) { requestExtension(input: $i) { ok } }"
        }
        "leaveSite" => "mutation($i: ID!) { leaveSite(siteId: $i) { ok } }",
        "revokeSession" => "mutation($i: ID!) { revokeSession(id: $i) { ok } }",
        "revokeApiToken" => "mutation($i: ID!) { revokeApiToken(id: $i) { apiToken { id } } }",
        "updateWebhookEndpoint" => {
            "mutation($i: UpdateWebhookEndpointInput!) { updateWebhookEndpoint(input: $i) { endpoint { id } } }"
        }
        "deleteWebhookEndpoint" => {
            "mutation($i: ID!) { deleteWebhookEndpoint(id: $i) { deletedWebhookEndpointId } }"
        }
        "rotateWebhookSecret" => "mutation($i: ID!) { rotateWebhookSecret(id: $i) { secret } }",
        "redeliverWebhook" => {
            "mutation($i: ID!) { redeliverWebhook(deliveryId: $i) { delivery { id } } }"
        }
        other => panic!("no document for {other}"),
    }
}

/// Mutations that name no site, space, group, user, invite, session or token.
const TAKES_NO_ID: [&str; 21] = [
    "acceptInvite",
    "createWebhookEndpoint",
    "createGroup",
    "login",
    "completeLogin",
    "logout",
    "enrollAuthenticator",
    "confirmAuthenticator",
    "removeAuthenticator",
    "requestPasswordReset",
    "resetPassword",
    "createApiToken",
    "addVerifiedDomain",
    "setGuestDomainRules",
    "removeVerifiedDomain",
    "previewExternalUserSecurityChange",
    "updateExternalUserSecurity",
    "resetExternalUserSessions",
    "runReverificationSweep",
    "requestReverificationCode",
    "completeReverification",
];

/// The root fields of `MutationRoot` in `schema.graphql`.
fn mutation_fields() -> Vec<String> {
    let sdl =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql")).unwrap();
    root_fields(&sdl, "MutationRoot")
}

/// One call: a mutation, what its ids are (for the report), its input, and what it needs.
struct Call {
    op: &'static str,
    target: &'static str,
    input: Value,
    reqs: Vec<Req>,
}

fn call(op: &'static str, target: &'static str, input: Value, reqs: &[Req]) -> Call {
    Call {
        op,
        target,
        input,
        reqs: reqs.to_vec(),
    }
}

async fn ok_as(app: &TestApp, token: &str, q: &str, vars: Value) -> Value {
    data(app.gql(Some(token), q, vars).await)
}

async fn id_of(app: &TestApp, sql: String) -> String {
    let sql = crate::common::db::with_keys(&sql);
    app.state
        .db
        .run(move |c| {
            use diesel::RunQueryDsl;
            #[derive(diesel::QueryableByName)]
            struct Row {
                #[diesel(sql_type = diesel::sql_types::Uuid)]
                id: uuid::Uuid,
            }
            Ok(diesel::sql_query(sql).get_result::<Row>(c)?.id.to_string())
        })
        .await
        .unwrap()
}

#[actix_rt::test]
async fn no_mutation_reaches_what_is_not_the_callers() {
    let started = std::time::Instant::now();
    // No workers: deliveries and jobs stay as queued, so the digest moves only with requests.
    let app = spawn_app_with(AppOptions {
        workers: false,
        ..Default::default()
    })
    .await;
    let s1 = app.site_id.clone();
    let s2 = app.create_site("Two").await;
    let space_a = app.create_space("A").await;
    let space_b = app.create_space("B").await;
    let space_c = data(
        app.admin(
            document("createSpace"),
            json!({ "i": { "siteId": s2, "key": "C", "name": "Space C" } }),
        )
        .await,
    )["createSpace"]["space"]["id"]
        .as_str()
        .unwrap()
        .to_string();

    // The callers.
    let sa = app.add_user("sa@acme.example", None).await;
    let sa_token = app.site_admin_of(&sa, &s1).await;
    let pa = app
        .add_user("pa@acme.example", Some(ProductRole::ProductAdmin))
        .await;
    let spa = app
        .add_user("spa@acme.example", Some(ProductRole::User))
        .await;
    let space_admin =
        "mutation($i: SpaceAdminInput!) { addSpaceAdmin(input: $i) { space { id } } }";
    data(
        app.admin(
            space_admin,
            json!({ "i": { "spaceId": space_a, "userId": spa } }),
        )
        .await,
    );
    let pu = app
        .add_user("pu@acme.example", Some(ProductRole::User))
        .await;
    let g = app
        .add_user("g@partner.example", Some(ProductRole::Guest))
        .await;
    data(app.assign(&space_a, std::slice::from_ref(&g)).await);

    // The people they act on.
    let on = |site: &str, email: &str, role: &str| {
        let (site, email, role) = (site.to_string(), email.to_string(), role.to_string());
        let app = &app;
        async move {
            let id = app.add_user(&email, None).await;
            app.set_role(&site, &id, Some(&role)).await;
            id
        }
    };
    let u1 = on(&s1, "u1@acme.example", "USER").await;
    let u1x = on(&s1, "u1x@acme.example", "USER").await;
    let u1r = on(&s1, "u1r@acme.example", "USER").await;
    let u2 = on(&s2, "u2@acme.example", "USER").await;
    let u12 = on(&s1, "u12@acme.example", "USER").await;
    app.set_role(&s2, &u12, Some("USER")).await;
    let nowhere = app.add_user("nowhere@acme.example", None).await;
    let sc = on(&s2, "sc@acme.example", "USER").await;
    data(
        app.admin(
            space_admin,
            json!({ "i": { "spaceId": space_c, "userId": sc } }),
        )
        .await,
    );
    let sa2 = app.add_user("sa2@acme.example", None).await;
    app.site_admin_of(&sa2, &s2).await;
    let d1 = on(&s1, "d1@acme.example", "USER").await;
    let d2 = on(&s2, "d2@acme.example", "USER").await;
    for d in [&d1, &d2] {
        data(
            app.admin(document("deactivateUser"), json!({ "i": d }))
                .await,
        );
    }
    // Guests: in A (not the caller), in B, unassigned on site 1; in C, unassigned on site 2, and one
    // on site 2 whose sponsor is the paid user of site 1 (who may not sponsor there).
    let ga = on(&s1, "ga@partner.example", "GUEST").await;
    data(app.assign(&space_a, std::slice::from_ref(&ga)).await);
    let gb = on(&s1, "gb@partner.example", "GUEST").await;
    data(app.assign(&space_b, std::slice::from_ref(&gb)).await);
    let gs1 = on(&s1, "gs1@partner.example", "GUEST").await;
    let gc = on(&s2, "gc@partner.example", "GUEST").await;
    data(app.assign(&space_c, std::slice::from_ref(&gc)).await);
    let gs2 = on(&s2, "gs2@partner.example", "GUEST").await;
    let gsp = on(&s2, "gsp@partner.example", "GUEST").await;
    app.db.execute(&format!(
        "INSERT INTO guest_terms (site_id, user_id, sponsor_id, updated_at) VALUES ('{s2}', '{gsp}', '{pu}', now()) ON CONFLICT (site_id, user_id) DO UPDATE SET sponsor_id = EXCLUDED.sponsor_id"
    ));
    // Groups reaching site 1, site 2, both, none; each with a member.
    let g1 = app.create_group("Reaches one").await;
    let g2 = app.create_group("Reaches two").await;
    let g12 = app.create_group("Reaches both").await;
    let g0 = app.create_group("Reaches none").await;
    app.set_group_role(&g1, &s1, Some("USER")).await;
    app.set_group_role(&g2, &s2, Some("USER")).await;
    app.set_group_role(&g12, &s1, Some("USER")).await;
    app.set_group_role(&g12, &s2, Some("USER")).await;
    app.add_members(&g1, &[&u1]).await;
    app.add_members(&g2, &[&u2]).await;
    app.add_members(&g12, &[&u12]).await;
    app.add_members(&g0, &[&u1]).await;
    // An invite on each site.
    let invite_on = |site: &str, email: &str| {
        let (site, email) = (site.to_string(), email.to_string());
        let app = &app;
        async move {
            data(
                app.admin(
                    INVITE,
                    json!({ "input": { "siteId": site, "emails": [email], "role": "GUEST" } }),
                )
                .await,
            )["inviteUsers"]["invites"][0]["id"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };
    let inv1 = invite_on(&s1, "pending1@partner.example").await;
    let inv2 = invite_on(&s2, "pending2@partner.example").await;
    // Sessions and a token that belong to nobody calling.
    app.session_for(&app.admin_id).await;
    let admin_session = id_of(
        &app,
        format!("SELECT id FROM sessions WHERE user_id = '{}'", app.admin_id),
    )
    .await;
    let admin_api_token = id_of(
        &app,
        format!(
            "SELECT id FROM api_tokens WHERE user_id = '{}'",
            app.admin_id
        ),
    )
    .await;

    // Another organization, with its own site, space, group, user (a guest), invite and session.
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
    let rt = other.api_token.clone();
    let rsite = other.site.id.to_string();
    let radmin = other.admin.id.to_string();
    let rspace = ok_as(
        &app,
        &rt,
        document("createSpace"),
        json!({ "i": { "siteId": rsite, "key": "R", "name": "Theirs" } }),
    )
    .await["createSpace"]["space"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (org2, site2) = (other.organization.id, other.site.id);
    let ruser = app
        .state
        .db
        .run(move |c| {
            use diesel::prelude::*;
            use guestpass::db::schema::*;
            let id: uuid::Uuid = diesel::insert_into(users::table)
                .values((
                    users::organization_id.eq(org2),
                    users::email.eq("guest@partner.example"),
                    users::email_normalized.eq("guest@partner.example"),
                    users::display_name.eq("Theirs"),
                    users::created_at.eq(chrono::Utc::now()),
                ))
                .returning(users::id)
                .get_result(c)?;
            diesel::insert_into(product_roles::table)
                .values((
                    product_roles::site_id.eq(site2),
                    product_roles::user_id.eq(id),
                    product_roles::role.eq(ProductRole::Guest.rank()),
                    product_roles::granted_at.eq(chrono::Utc::now()),
                ))
                .execute(c)?;
            guestpass::store::changes::check::run(c, true, chrono::Utc::now())?;
            Ok(id.to_string())
        })
        .await
        .unwrap();
    ok_as(
        &app,
        &rt,
        document("assignGuestSpace"),
        json!({ "i": { "spaceId": rspace, "userIds": [ruser] } }),
    )
    .await;
    ok_as(
        &app,
        &rt,
        space_admin,
        json!({ "i": { "spaceId": rspace, "userId": radmin } }),
    )
    .await;
    let rgroup = ok_as(
        &app,
        &rt,
        "mutation { createGroup(input: { name: \"Theirs\" }) { group { id } } }",
        json!({}),
    )
    .await["createGroup"]["group"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    ok_as(
        &app,
        &rt,
        document("setGroupProductRole"),
        json!({ "i": { "groupId": rgroup, "siteId": rsite, "role": "GUEST" } }),
    )
    .await;
    ok_as(
        &app,
        &rt,
        document("addGroupMembers"),
        json!({ "i": { "groupId": rgroup, "userIds": [ruser] } }),
    )
    .await;
    let rinvite = ok_as(
        &app,
        &rt,
        INVITE,
        json!({ "input": { "siteId": rsite, "emails": ["pending@rival-partner.example"], "role": "GUEST" } }),
    )
    .await["inviteUsers"]["invites"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    app.session_for(&radmin).await;
    let rsession = id_of(
        &app,
        format!("SELECT id FROM sessions WHERE user_id = '{radmin}'"),
    )
    .await;

    // A webhook endpoint of each organization (to a port nothing listens on), and a delivery of
    // Acme's (queued: no workers run here).
    let endpoint_of = |token: String| {
        let app = &app;
        async move {
            ok_as(
                app,
                &token,
                "mutation { createWebhookEndpoint(input: { url: \"http://127.0.0.1:9/hook\", events: [INVITE_CREATED] }) { endpoint { id } } }",
                json!({}),
            )
            .await["createWebhookEndpoint"]["endpoint"]["id"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };
    let webhook = endpoint_of(app.admin_token.clone()).await;
    let rwebhook = endpoint_of(rt.clone()).await;
    let webhook_delivery = id_of(
        &app,
        format!(
            "WITH d AS (INSERT INTO webhook_deliveries (endpoint_id, audit_event_id, event_type, payload, created_at)
             VALUES ('{}', 1, 'invite.created', '{{}}', now()) RETURNING id) SELECT id FROM d",
            uuid_of(&webhook)
        ),
    )
    .await;
    let webhook_delivery = gid("WebhookDelivery", &webhook_delivery);

    let mut tokens = vec![(Who::SiteAdmin, sa_token.clone())];
    for (who, id) in [
        (Who::ProductAdmin, &pa),
        (Who::SpaceAdmin, &spa),
        (Who::PaidUser, &pu),
        (Who::Guest, &g),
    ] {
        tokens.push((who, app.session_for(id).await));
    }
    tokens.push((Who::Rival, rt.clone()));

    // The table: every call with what it needs, for each caller the expected answer follows.
    use Req::*;
    let ends = (chrono::Utc::now() + chrono::Duration::days(20)).to_rfc3339();
    let calls = vec![
        call(
            "updateWebhookEndpoint",
            "the organization's webhook endpoint",
            json!({ "id": webhook, "enabled": false }),
            &[Org],
        ),
        call(
            "updateWebhookEndpoint",
            "their webhook endpoint",
            json!({ "id": rwebhook, "enabled": false }),
            &[Rival],
        ),
        call(
            "deleteWebhookEndpoint",
            "the organization's webhook endpoint",
            json!(webhook),
            &[Org],
        ),
        call(
            "deleteWebhookEndpoint",
            "their webhook endpoint",
            json!(rwebhook),
            &[Rival],
        ),
        call(
            "rotateWebhookSecret",
            "the organization's webhook endpoint",
            json!(webhook),
            &[Org],
        ),
        call(
            "rotateWebhookSecret",
            "their webhook endpoint",
            json!(rwebhook),
            &[Rival],
        ),
        call(
            "redeliverWebhook",
            "a delivery of the organization's webhook endpoint",
            json!(webhook_delivery),
            &[Org],
        ),
        call(
            "createSpace",
            "site 1",
            json!({ "siteId": s1, "key": "X1", "name": "X" }),
            &[Spaces(S::One)],
        ),
        call(
            "createSpace",
            "site 2",
            json!({ "siteId": s2, "key": "X2", "name": "X" }),
            &[Spaces(S::Two)],
        ),
        call(
            "createSpace",
            "their site",
            json!({ "siteId": rsite, "key": "X3", "name": "X" }),
            &[Rival],
        ),
        call(
            "createPage",
            "space A",
            json!({ "spaceId": space_a, "title": "T", "body": "" }),
            &[Write(Sp::A)],
        ),
        call(
            "createPage",
            "space B",
            json!({ "spaceId": space_b, "title": "T", "body": "" }),
            &[Write(Sp::B)],
        ),
        call(
            "createPage",
            "space C",
            json!({ "spaceId": space_c, "title": "T", "body": "" }),
            &[Write(Sp::C)],
        ),
        call(
            "createPage",
            "their space",
            json!({ "spaceId": rspace, "title": "T", "body": "" }),
            &[Rival],
        ),
        call(
            "inviteUsers",
            "site 1",
            json!({ "siteId": s1, "emails": ["e1@partner.example"], "role": "GUEST" }),
            &[Site(S::One)],
        ),
        call(
            "inviteUsers",
            "site 2",
            json!({ "siteId": s2, "emails": ["e2@partner.example"], "role": "GUEST" }),
            &[Site(S::Two)],
        ),
        call(
            "inviteUsers",
            "site 2, space C",
            json!({ "siteId": s2, "emails": ["e3@partner.example"], "role": "GUEST", "spaceId": space_c }),
            &[Site(S::Two)],
        ),
        call(
            "inviteUsers",
            "site 1, group reaching site 1",
            json!({ "siteId": s1, "emails": ["e4@acme.example"], "role": "USER", "groupIds": [g1] }),
            &[Site(S::One), Group(Reach::One)],
        ),
        call(
            "inviteUsers",
            "site 1, group reaching site 2",
            json!({ "siteId": s1, "emails": ["e5@acme.example"], "role": "USER", "groupIds": [g2] }),
            &[Site(S::One), Group(Reach::Two)],
        ),
        call(
            "inviteUsers",
            "site 1, group reaching both",
            json!({ "siteId": s1, "emails": ["e6@acme.example"], "role": "USER", "groupIds": [g12] }),
            &[Site(S::One), Group(Reach::Both)],
        ),
        call(
            "inviteUsers",
            "site 1, group reaching none",
            json!({ "siteId": s1, "emails": ["e7@acme.example"], "role": "USER", "groupIds": [g0] }),
            &[Site(S::One), Group(Reach::Nowhere)],
        ),
        call(
            "inviteUsers",
            "site 1, their group",
            json!({ "siteId": s1, "emails": ["e8@acme.example"], "role": "USER", "groupIds": [rgroup] }),
            &[Site(S::One), Rival],
        ),
        call(
            "inviteUsers",
            "site 1, their space",
            json!({ "siteId": s1, "emails": ["e9@partner.example"], "role": "GUEST", "spaceId": rspace }),
            &[Site(S::One), Rival],
        ),
        call(
            "inviteUsers",
            "their site",
            json!({ "siteId": rsite, "emails": ["e10@partner.example"], "role": "GUEST" }),
            &[Rival],
        ),
        call(
            "resendInvite",
            "invite on site 1",
            json!(inv1),
            &[Site(S::One)],
        ),
        call(
            "resendInvite",
            "invite on site 2",
            json!(inv2),
            &[Site(S::Two)],
        ),
        call("resendInvite", "their invite", json!(rinvite), &[Rival]),
        call(
            "revokeInvite",
            "invite on site 1",
            json!(inv1),
            &[Site(S::One)],
        ),
        call(
            "revokeInvite",
            "invite on site 2",
            json!(inv2),
            &[Site(S::Two)],
        ),
        call("revokeInvite", "their invite", json!(rinvite), &[Rival]),
        call(
            "updateSiteSettings",
            "site 1",
            json!({ "siteId": s1, "inviteExpiryDays": 9 }),
            &[Site(S::One)],
        ),
        call(
            "updateSiteSettings",
            "site 2",
            json!({ "siteId": s2, "inviteExpiryDays": 9, "userLimit": 1000 }),
            &[Site(S::Two)],
        ),
        call(
            "updateSiteSettings",
            "their site",
            json!({ "siteId": rsite, "inviteExpiryDays": 9 }),
            &[Rival],
        ),
        call(
            "renameGroup",
            "group reaching site 1",
            json!({ "id": g1, "name": "R1" }),
            &[Group(Reach::One)],
        ),
        call(
            "renameGroup",
            "group reaching site 2",
            json!({ "id": g2, "name": "R2" }),
            &[Group(Reach::Two)],
        ),
        call(
            "renameGroup",
            "group reaching both",
            json!({ "id": g12, "name": "R3" }),
            &[Group(Reach::Both)],
        ),
        call(
            "renameGroup",
            "group reaching none",
            json!({ "id": g0, "name": "R4" }),
            &[Group(Reach::Nowhere)],
        ),
        call(
            "renameGroup",
            "their group",
            json!({ "id": rgroup, "name": "R5" }),
            &[Rival],
        ),
        call(
            "deleteGroup",
            "group reaching site 1",
            json!(g1),
            &[Group(Reach::One)],
        ),
        call(
            "deleteGroup",
            "group reaching site 2",
            json!(g2),
            &[Group(Reach::Two)],
        ),
        call(
            "deleteGroup",
            "group reaching both",
            json!(g12),
            &[Group(Reach::Both)],
        ),
        call(
            "deleteGroup",
            "group reaching none",
            json!(g0),
            &[Group(Reach::Nowhere)],
        ),
        call("deleteGroup", "their group", json!(rgroup), &[Rival]),
        call(
            "setGroupProductRole",
            "group reaching site 1, on site 1",
            json!({ "groupId": g1, "siteId": s1, "role": "PRODUCT_ADMIN" }),
            &[GroupRole(Reach::One, S::One)],
        ),
        call(
            "setGroupProductRole",
            "group reaching site 1, on site 2",
            json!({ "groupId": g1, "siteId": s2, "role": "USER" }),
            &[GroupRole(Reach::One, S::Two)],
        ),
        call(
            "setGroupProductRole",
            "group reaching site 2, on site 1",
            json!({ "groupId": g2, "siteId": s1, "role": "USER" }),
            &[GroupRole(Reach::Two, S::One)],
        ),
        call(
            "setGroupProductRole",
            "group reaching site 2, off site 2",
            json!({ "groupId": g2, "siteId": s2, "role": null }),
            &[GroupRole(Reach::Two, S::Two)],
        ),
        call(
            "setGroupProductRole",
            "group reaching both, on site 1",
            json!({ "groupId": g12, "siteId": s1, "role": "PRODUCT_ADMIN" }),
            &[GroupRole(Reach::Both, S::One)],
        ),
        call(
            "setGroupProductRole",
            "group reaching both, off site 1",
            json!({ "groupId": g12, "siteId": s1, "role": null }),
            &[GroupRole(Reach::Both, S::One)],
        ),
        call(
            "setGroupProductRole",
            "group reaching none, on site 1",
            json!({ "groupId": g0, "siteId": s1, "role": "USER" }),
            &[GroupRole(Reach::Nowhere, S::One)],
        ),
        call(
            "setGroupProductRole",
            "group reaching none, on site 2",
            json!({ "groupId": g0, "siteId": s2, "role": "USER" }),
            &[GroupRole(Reach::Nowhere, S::Two)],
        ),
        call(
            "setGroupProductRole",
            "their group, on site 1",
            json!({ "groupId": rgroup, "siteId": s1, "role": "USER" }),
            &[Rival, GroupRole(Reach::Nowhere, S::One)],
        ),
        call(
            "setGroupProductRole",
            "group reaching site 1, on their site",
            json!({ "groupId": g1, "siteId": rsite, "role": "USER" }),
            &[GroupRole(Reach::One, S::One), Rival],
        ),
        call(
            "setGroupProductRole",
            "their group, on their site",
            json!({ "groupId": rgroup, "siteId": rsite, "role": "USER" }),
            &[Rival],
        ),
        call(
            "addGroupMembers",
            "group reaching site 1",
            json!({ "groupId": g1, "userIds": [u1x] }),
            &[Group(Reach::One)],
        ),
        call(
            "addGroupMembers",
            "group reaching site 2",
            json!({ "groupId": g2, "userIds": [u1x] }),
            &[Group(Reach::Two)],
        ),
        call(
            "addGroupMembers",
            "group reaching both",
            json!({ "groupId": g12, "userIds": [u1x] }),
            &[Group(Reach::Both)],
        ),
        call(
            "addGroupMembers",
            "group reaching none",
            json!({ "groupId": g0, "userIds": [u1x] }),
            &[Group(Reach::Nowhere)],
        ),
        call(
            "addGroupMembers",
            "group reaching site 1, their user",
            json!({ "groupId": g1, "userIds": [ruser] }),
            &[Group(Reach::One), Rival],
        ),
        call(
            "addGroupMembers",
            "their group, a user of site 1",
            json!({ "groupId": rgroup, "userIds": [u1x] }),
            &[Rival],
        ),
        call(
            "removeGroupMembers",
            "group reaching site 1",
            json!({ "groupId": g1, "userIds": [u1] }),
            &[Group(Reach::One)],
        ),
        call(
            "removeGroupMembers",
            "group reaching site 2",
            json!({ "groupId": g2, "userIds": [u2] }),
            &[Group(Reach::Two)],
        ),
        call(
            "removeGroupMembers",
            "group reaching both",
            json!({ "groupId": g12, "userIds": [u12] }),
            &[Group(Reach::Both)],
        ),
        call(
            "removeGroupMembers",
            "group reaching none",
            json!({ "groupId": g0, "userIds": [u1] }),
            &[Group(Reach::Nowhere)],
        ),
        call(
            "removeGroupMembers",
            "group reaching site 1, their user",
            json!({ "groupId": g1, "userIds": [ruser] }),
            &[Group(Reach::One), Rival],
        ),
        call(
            "removeGroupMembers",
            "their group",
            json!({ "groupId": rgroup, "userIds": [ruser] }),
            &[Rival],
        ),
        call(
            "setProductRole",
            "site 1, user of site 1",
            json!({ "siteId": s1, "userId": u1, "role": "PRODUCT_ADMIN" }),
            &[Site(S::One)],
        ),
        call(
            "setProductRole",
            "site 2, user of site 2",
            json!({ "siteId": s2, "userId": u2, "role": "PRODUCT_ADMIN" }),
            &[Site(S::Two)],
        ),
        call(
            "setProductRole",
            "site 2, user of both",
            json!({ "siteId": s2, "userId": u12, "role": "PRODUCT_ADMIN" }),
            &[Site(S::Two)],
        ),
        call(
            "setProductRole",
            "site 2, user of site 1",
            json!({ "siteId": s2, "userId": u1x, "role": "USER" }),
            &[Site(S::Two)],
        ),
        call(
            "setProductRole",
            "site 1, their user",
            json!({ "siteId": s1, "userId": ruser, "role": "USER" }),
            &[Site(S::One), Rival],
        ),
        call(
            "setProductRole",
            "their site, a user of site 1",
            json!({ "siteId": rsite, "userId": u1, "role": "USER" }),
            &[Rival],
        ),
        call(
            "setProductRole",
            "their site, their user",
            json!({ "siteId": rsite, "userId": ruser, "role": "USER" }),
            &[Rival],
        ),
        call(
            "removeProductAccess",
            "site 1, user of site 1",
            json!({ "siteId": s1, "userId": u1x }),
            &[Site(S::One)],
        ),
        call(
            "removeProductAccess",
            "site 2, user of site 2",
            json!({ "siteId": s2, "userId": u2 }),
            &[Site(S::Two)],
        ),
        call(
            "removeProductAccess",
            "site 2, user of both",
            json!({ "siteId": s2, "userId": u12 }),
            &[Site(S::Two)],
        ),
        call(
            "removeProductAccess",
            "site 1, their user",
            json!({ "siteId": s1, "userId": ruser }),
            &[Site(S::One), Rival],
        ),
        call(
            "removeProductAccess",
            "their site, their user",
            json!({ "siteId": rsite, "userId": ruser }),
            &[Rival],
        ),
        call(
            "assignGuestSpace",
            "space A, unassigned guest",
            json!({ "spaceId": space_a, "userIds": [gs1] }),
            &[GuestsOf(Sp::A)],
        ),
        call(
            "assignGuestSpace",
            "space B, unassigned guest",
            json!({ "spaceId": space_b, "userIds": [gs1] }),
            &[GuestsOf(Sp::B)],
        ),
        call(
            "assignGuestSpace",
            "space A, guest of space B",
            json!({ "spaceId": space_a, "userIds": [gb] }),
            &[GuestsOf(Sp::A), GuestsOf(Sp::B)],
        ),
        call(
            "assignGuestSpace",
            "space C, guest of site 2",
            json!({ "spaceId": space_c, "userIds": [gs2] }),
            &[GuestsOf(Sp::C)],
        ),
        call(
            "assignGuestSpace",
            "space A, their guest",
            json!({ "spaceId": space_a, "userIds": [ruser] }),
            &[GuestsOf(Sp::A), Rival],
        ),
        call(
            "assignGuestSpace",
            "their space, their guest",
            json!({ "spaceId": rspace, "userIds": [ruser] }),
            &[Rival],
        ),
        call(
            "unassignGuestSpace",
            "site 1, guest of space A",
            json!({ "siteId": s1, "userIds": [ga] }),
            &[GuestsOf(Sp::A)],
        ),
        call(
            "unassignGuestSpace",
            "site 1, guest of space B",
            json!({ "siteId": s1, "userIds": [gb] }),
            &[GuestsOf(Sp::B)],
        ),
        call(
            "unassignGuestSpace",
            "site 1, guests of spaces A and B",
            json!({ "siteId": s1, "userIds": [ga, gb] }),
            &[GuestsOf(Sp::A), GuestsOf(Sp::B)],
        ),
        call(
            "unassignGuestSpace",
            "site 2, guest of space C",
            json!({ "siteId": s2, "userIds": [gc] }),
            &[GuestsOf(Sp::C)],
        ),
        call(
            "unassignGuestSpace",
            "site 1, their guest",
            json!({ "siteId": s1, "userIds": [ruser] }),
            &[GuestsOf(Sp::A), Rival],
        ),
        call(
            "unassignGuestSpace",
            "their site, their guest",
            json!({ "siteId": rsite, "userIds": [ruser] }),
            &[Rival],
        ),
        call(
            "removeGuests",
            "site 1, guest of site 1",
            json!({ "siteId": s1, "userIds": [gs1], "reason": "x" }),
            &[Site(S::One)],
        ),
        call(
            "removeGuests",
            "site 2, guest of site 2",
            json!({ "siteId": s2, "userIds": [gs2], "reason": "x" }),
            &[Site(S::Two)],
        ),
        call(
            "removeGuests",
            "site 1, their guest",
            json!({ "siteId": s1, "userIds": [ruser], "reason": "x" }),
            &[Site(S::One), Rival],
        ),
        call(
            "removeGuests",
            "their site, their guest",
            json!({ "siteId": rsite, "userIds": [ruser], "reason": "x" }),
            &[Rival],
        ),
        call(
            "setAdminRole",
            "site admin of site 1 for a user of site 1",
            json!({ "userId": u1, "role": "SITE_ADMIN", "siteId": s1, "granted": true }),
            &[Site(S::One)],
        ),
        call(
            "setAdminRole",
            "site admin of site 2 for a user of site 1",
            json!({ "userId": u1, "role": "SITE_ADMIN", "siteId": s2, "granted": true }),
            &[Site(S::Two)],
        ),
        call(
            "setAdminRole",
            "site admin of site 2 for a user of site 2",
            json!({ "userId": u2, "role": "SITE_ADMIN", "siteId": s2, "granted": true }),
            &[Site(S::Two)],
        ),
        call(
            "setAdminRole",
            "revoke the site admin of site 2",
            json!({ "userId": sa2, "role": "SITE_ADMIN", "siteId": s2, "granted": false }),
            &[Site(S::Two)],
        ),
        call(
            "setAdminRole",
            "organization admin for a user of site 1",
            json!({ "userId": u1, "role": "ORG_ADMIN", "granted": true }),
            &[Org],
        ),
        call(
            "setAdminRole",
            "site admin of site 1 for their user",
            json!({ "userId": ruser, "role": "SITE_ADMIN", "siteId": s1, "granted": true }),
            &[Site(S::One), Rival],
        ),
        call(
            "setAdminRole",
            "site admin of their site for a user of site 1",
            json!({ "userId": u1, "role": "SITE_ADMIN", "siteId": rsite, "granted": true }),
            &[Rival],
        ),
        call(
            "setAdminRole",
            "organization admin for their user",
            json!({ "userId": ruser, "role": "ORG_ADMIN", "granted": true }),
            &[Rival],
        ),
        call(
            "addSpaceAdmin",
            "space A, user of site 1",
            json!({ "spaceId": space_a, "userId": u1 }),
            &[Spaces(S::One)],
        ),
        call(
            "addSpaceAdmin",
            "space C, user of site 2",
            json!({ "spaceId": space_c, "userId": u2 }),
            &[Spaces(S::Two)],
        ),
        call(
            "addSpaceAdmin",
            "space A, their user",
            json!({ "spaceId": space_a, "userId": ruser }),
            &[Spaces(S::One), Rival],
        ),
        call(
            "addSpaceAdmin",
            "their space, their admin",
            json!({ "spaceId": rspace, "userId": radmin }),
            &[Rival],
        ),
        call(
            "removeSpaceAdmin",
            "space A, its admin",
            json!({ "spaceId": space_a, "userId": spa }),
            &[Spaces(S::One)],
        ),
        call(
            "removeSpaceAdmin",
            "space C, its admin",
            json!({ "spaceId": space_c, "userId": sc }),
            &[Spaces(S::Two)],
        ),
        call(
            "removeSpaceAdmin",
            "their space, its admin",
            json!({ "spaceId": rspace, "userId": radmin }),
            &[Rival],
        ),
        call("deactivateUser", "user of site 1", json!(u1), &[Org]),
        call("deactivateUser", "user of site 2", json!(u2), &[Org]),
        call("deactivateUser", "user of both", json!(u12), &[Org]),
        call("deactivateUser", "their user", json!(ruser), &[Rival]),
        call(
            "reactivateUser",
            "deactivated user of site 1",
            json!(d1),
            &[Org],
        ),
        call(
            "reactivateUser",
            "deactivated user of site 2",
            json!(d2),
            &[Org],
        ),
        call("reactivateUser", "their user", json!(ruser), &[Rival]),
        call(
            "setTwoStepRequired",
            "user of site 1",
            json!({ "userId": u1, "required": true }),
            &[TwoStep(Reach::One)],
        ),
        call(
            "setTwoStepRequired",
            "user of site 2",
            json!({ "userId": u2, "required": true }),
            &[TwoStep(Reach::Two)],
        ),
        call(
            "setTwoStepRequired",
            "user of both",
            json!({ "userId": u12, "required": true }),
            &[TwoStep(Reach::Both)],
        ),
        call(
            "setTwoStepRequired",
            "user with access nowhere",
            json!({ "userId": nowhere, "required": true }),
            &[TwoStep(Reach::Nowhere)],
        ),
        call(
            "setTwoStepRequired",
            "the organization admin",
            json!({ "userId": app.admin_id, "required": true }),
            &[TwoStepOfOrgAdmin],
        ),
        call(
            "setTwoStepRequired",
            "their user",
            json!({ "userId": ruser, "required": true }),
            &[Rival],
        ),
        call(
            "extendGuestAccess",
            "site 1, guest of site 1",
            json!({ "siteId": s1, "userId": gs1, "endsAt": ends }),
            &[Site(S::One)],
        ),
        call(
            "extendGuestAccess",
            "site 2, guest of site 2",
            json!({ "siteId": s2, "userId": gs2, "endsAt": ends }),
            &[Site(S::Two)],
        ),
        call(
            "extendGuestAccess",
            "site 2, guest the paid user of site 1 sponsors",
            json!({ "siteId": s2, "userId": gsp, "endsAt": ends }),
            &[Site(S::Two)],
        ),
        call(
            "extendGuestAccess",
            "site 1, their guest",
            json!({ "siteId": s1, "userId": ruser, "endsAt": ends }),
            &[Site(S::One), Rival],
        ),
        call(
            "extendGuestAccess",
            "their site, their guest",
            json!({ "siteId": rsite, "userId": ruser, "endsAt": ends }),
            &[Rival],
        ),
        call(
            "setSponsor",
            "site 1, guest of site 1",
            json!({ "siteId": s1, "userId": gs1, "sponsorId": u1 }),
            &[Site(S::One)],
        ),
        call(
            "setSponsor",
            "site 2, guest of site 2",
            json!({ "siteId": s2, "userId": gs2, "sponsorId": u2 }),
            &[Site(S::Two)],
        ),
        call(
            "setSponsor",
            "site 1, their user as sponsor",
            json!({ "siteId": s1, "userId": gs1, "sponsorId": ruser }),
            &[Site(S::One), Rival],
        ),
        call(
            "setSponsor",
            "their site, their guest",
            json!({ "siteId": rsite, "userId": ruser, "sponsorId": radmin }),
            &[Rival],
        ),
        call(
            "requestExtension",
            "site 2",
            json!({ "siteId": s2, "message": "more" }),
            &[GuestOf(S::Two)],
        ),
        call(
            "requestExtension",
            "their site",
            json!({ "siteId": rsite, "message": "more" }),
            &[Rival],
        ),
        call("leaveSite", "site 2", json!(s2), &[GuestOf(S::Two)]),
        call("leaveSite", "their site", json!(rsite), &[Rival]),
        call(
            "revokeSession",
            "the organization admin's session",
            json!(admin_session),
            &[SomeoneElses],
        ),
        call(
            "revokeSession",
            "their admin's session",
            json!(rsession),
            &[Rival],
        ),
        call(
            "revokeApiToken",
            "the organization admin's token",
            json!(admin_api_token),
            &[SomeoneElses],
        ),
    ];

    // Every id-taking mutation of the schema is in the table.
    for op in mutation_fields() {
        assert!(
            TAKES_NO_ID.contains(&op.as_str()) || calls.iter().any(|c| c.op == op),
            "the escalation test has no call for `{op}`"
        );
    }

    let mut conn = app.db.conn();
    let mut made = 0;
    let mut wrong = Vec::new();
    for c in &calls {
        for (who, token) in &tokens {
            let Some(want) = expected(*who, &c.reqs) else {
                continue;
            };
            let before = (snapshot_on(&mut conn), digest(&mut conn));
            let r = app
                .gql(Some(token), document(c.op), json!({ "i": c.input }))
                .await;
            made += 1;
            let got = code(&r).unwrap_or_else(|| "ok".into());
            let after = (snapshot_on(&mut conn), digest(&mut conn));
            let changed: Vec<&str> = before
                .1
                .iter()
                .zip(&after.1)
                .filter(|(b, a)| b != a)
                .map(|(b, _)| b.0.as_str())
                .collect();
            if got != want || before != after {
                wrong.push(format!(
                    "{} on {} as {who:?}: expected {want}, got {got}{} ({})",
                    c.op,
                    c.target,
                    if before == after {
                        String::new()
                    } else {
                        format!(", and it wrote: {changed:?}")
                    },
                    r["errors"][0]["message"]
                ));
            }
        }
    }

    // Controls: the site admin's call on a site-1 target answers and writes (the org admin for
    // what only they may do; the guest for self-service), so the table cannot pass by refusing all.
    let admin = app.admin_token.clone();
    let g_token = tokens[4].1.clone();
    // A second session of the site admin, to end it (not the one the calls use).
    app.session_for(&sa).await;
    let sa_session_id = id_of(
        &app,
        format!("SELECT id FROM sessions WHERE user_id = '{sa}' ORDER BY created_at DESC LIMIT 1"),
    )
    .await;
    app.api_token_for(&sa).await;
    let sa_api_token = id_of(
        &app,
        format!("SELECT id FROM api_tokens WHERE user_id = '{sa}'"),
    )
    .await;
    let controls: Vec<(&str, &str, Value)> = vec![
        (
            &sa_token,
            "createSpace",
            json!({ "siteId": s1, "key": "CTRL", "name": "Control" }),
        ),
        (
            &sa_token,
            "createPage",
            json!({ "spaceId": space_a, "title": "Control", "body": "" }),
        ),
        (
            &sa_token,
            "inviteUsers",
            json!({ "siteId": s1, "emails": ["ctrl@partner.example"], "role": "GUEST" }),
        ),
        (
            &sa_token,
            "inviteUsers",
            json!({ "siteId": s1, "emails": ["ctrl@acme.example"], "role": "USER", "groupIds": [g1] }),
        ),
        (&sa_token, "resendInvite", json!(inv1)),
        (&sa_token, "revokeInvite", json!(inv1)),
        (
            &sa_token,
            "updateSiteSettings",
            json!({ "siteId": s1, "inviteExpiryDays": 9 }),
        ),
        (
            &sa_token,
            "renameGroup",
            json!({ "id": g1, "name": "Renamed by its site admin" }),
        ),
        (
            &sa_token,
            "setGroupProductRole",
            json!({ "groupId": g0, "siteId": s1, "role": "USER" }),
        ),
        (
            &sa_token,
            "addGroupMembers",
            json!({ "groupId": g1, "userIds": [u1x] }),
        ),
        (
            &sa_token,
            "removeGroupMembers",
            json!({ "groupId": g1, "userIds": [u1x] }),
        ),
        (
            &sa_token,
            "setProductRole",
            json!({ "siteId": s1, "userId": u1x, "role": "PRODUCT_ADMIN" }),
        ),
        (
            &sa_token,
            "removeProductAccess",
            json!({ "siteId": s1, "userId": u1r }),
        ),
        (
            &sa_token,
            "assignGuestSpace",
            json!({ "spaceId": space_b, "userIds": [gs1] }),
        ),
        (
            &sa_token,
            "unassignGuestSpace",
            json!({ "siteId": s1, "userIds": [gb] }),
        ),
        (
            &sa_token,
            "setAdminRole",
            json!({ "userId": u1, "role": "SITE_ADMIN", "siteId": s1, "granted": true }),
        ),
        (
            &sa_token,
            "addSpaceAdmin",
            json!({ "spaceId": space_a, "userId": u1x }),
        ),
        (
            &sa_token,
            "removeSpaceAdmin",
            json!({ "spaceId": space_a, "userId": u1x }),
        ),
        (
            &sa_token,
            "setTwoStepRequired",
            json!({ "userId": u1x, "required": true }),
        ),
        (
            &sa_token,
            "extendGuestAccess",
            json!({ "siteId": s1, "userId": gs1, "endsAt": ends }),
        ),
        (
            &sa_token,
            "setSponsor",
            json!({ "siteId": s1, "userId": gs1, "sponsorId": u1x }),
        ),
        (
            &sa_token,
            "setSponsor",
            json!({ "siteId": s1, "userId": g, "sponsorId": u1x }),
        ),
        (
            &g_token,
            "requestExtension",
            json!({ "siteId": s1, "message": "more" }),
        ),
        (
            &sa_token,
            "removeGuests",
            json!({ "siteId": s1, "userIds": [gs1], "reason": "control" }),
        ),
        (&sa_token, "revokeSession", json!(sa_session_id)),
        (&sa_token, "revokeApiToken", json!(sa_api_token)),
        (&admin, "deactivateUser", json!(u2)),
        (&admin, "reactivateUser", json!(d1)),
        (
            &admin,
            "updateWebhookEndpoint",
            json!({ "id": webhook, "description": "control" }),
        ),
        (&admin, "rotateWebhookSecret", json!(webhook)),
        (&admin, "redeliverWebhook", json!(webhook_delivery)),
        (&admin, "deleteWebhookEndpoint", json!(webhook)),
        (&sa_token, "deleteGroup", json!(g1)),
        (&g_token, "leaveSite", json!(s1)),
    ];
    let mut controlled = std::collections::BTreeSet::new();
    for (token, op, input) in controls {
        let before = digest(&mut conn);
        let r = app
            .gql(Some(token), document(op), json!({ "i": input }))
            .await;
        made += 1;
        if code(&r).is_some() || digest(&mut conn) == before {
            wrong.push(format!("control {op}: expected ok and a change, got {r}"));
        }
        controlled.insert(op);
    }
    for c in &calls {
        assert!(controlled.contains(c.op), "no control for {}", c.op);
    }
    eprintln!(
        "escalation: {} targets, {made} calls in {:?}",
        calls.len(),
        started.elapsed()
    );
    assert!(
        wrong.is_empty(),
        "{} wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    app.stop().await;
}
