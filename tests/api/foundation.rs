//! The foundation: the CLI, authentication, health and readiness, the checked-in schema.

use crate::common::*;
use serde_json::json;
use std::process::Command;

fn guestpass() -> Command {
    Command::new(env!("CARGO_BIN_EXE_guestpass"))
}

#[test]
fn schema_graphql_is_current() {
    let out = guestpass().arg("export-schema").output().unwrap();
    assert!(out.status.success());
    let checked_in =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql")).unwrap();
    assert!(
        String::from_utf8(out.stdout).unwrap() == checked_in,
        "schema.graphql is stale: run `cargo run -- export-schema > schema.graphql`"
    );
}

#[actix_rt::test]
async fn verify_cli_bootstrap_prints_a_working_token_and_is_idempotent() {
    let db = TestDb::new();
    let run = || {
        guestpass()
            .args([
                "bootstrap",
                "--org",
                "Initech",
                "--site",
                "Wiki",
                "--admin-email",
                "Boss@Initech.example",
            ])
            .args(["--user-limit", "25", "--verified-domain", "initech.example"])
            .env("DATABASE_URL", &db.url)
            .env("GUESTPASS_LOG", "error")
            .output()
            .unwrap()
    };
    let first = run();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let second = run();
    assert!(second.status.success());
    let token = String::from_utf8(second.stdout)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .to_string();
    assert!(token.starts_with("gp_"), "{token}");
    assert_eq!(db.scalar_i64("SELECT count(*) FROM organizations"), 1);
    assert_eq!(
        db.scalar_i64("SELECT count(*) FROM sites WHERE user_limit = 25"),
        1
    );
    assert_eq!(db.scalar_i64("SELECT count(*) FROM users"), 1);
    assert_eq!(
        db.scalar_i64("SELECT count(*) FROM product_roles WHERE role = 3"),
        1
    );

    // Serve that database and use the token.
    let opts = AppOptions::default();
    let outbox = std::env::temp_dir().join("gp-cli-outbox");
    let config = test_config(&db, &opts, &outbox);
    let mut run_opts = guestpass::app::RunOptions::from_config(&config);
    run_opts.workers = false;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let app = guestpass::app::start(config, run_opts, Default::default(), Some(listener))
        .await
        .unwrap();
    let client = awc::Client::default();
    let mut res = client
        .post(format!("http://127.0.0.1:{}/graphql", app.port.unwrap()))
        .insert_header(("Authorization", format!("Bearer {token}")))
        .send_json(&json!({ "query": "{ me { email } organization { slug verifiedDomains } }" }))
        .await
        .unwrap();
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["data"]["me"]["email"], "Boss@Initech.example");
    assert_eq!(body["data"]["organization"]["slug"], "initech");
    assert_eq!(
        body["data"]["organization"]["verifiedDomains"],
        json!(["initech.example"])
    );
    app.stop().await;
}

#[test]
fn cli_errors_are_one_clear_sentence() {
    let out = guestpass()
        .args(["migrate"])
        .env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/nowhere")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot connect to PostgreSQL"), "{err}");
    assert!(err.contains("DATABASE_URL"), "{err}");
    assert!(
        !err.contains("panicked") && !err.contains("backtrace"),
        "{err}"
    );

    let out = guestpass()
        .args(["serve"])
        .env_remove("GUESTPASS_SECRET")
        .env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/nowhere")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("GUESTPASS_SECRET is not set"));

    let out = guestpass()
        .args([
            "bootstrap",
            "--org",
            "X",
            "--site",
            "Y",
            "--admin-email",
            "not-an-address",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--admin-email"));
}

#[actix_rt::test]
async fn me_needs_a_valid_token() {
    let app = spawn_app().await;
    let res = app.gql(None, "{ me { email } }", json!({})).await;
    assert_eq!(code(&res).as_deref(), Some("UNAUTHENTICATED"));
    let made_up = format!("gp_{}", "ab".repeat(32));
    let res = app.gql(Some(&made_up), "{ me { email } }", json!({})).await;
    assert_eq!(code(&res).as_deref(), Some("UNAUTHENTICATED"));
    let made_up = format!("gps_{}", "cd".repeat(32));
    let res = app.gql(Some(&made_up), "{ me { email } }", json!({})).await;
    assert_eq!(code(&res).as_deref(), Some("UNAUTHENTICATED"));
    let res = app
        .gql(Some("garbage"), "{ me { email } }", json!({}))
        .await;
    assert_eq!(code(&res).as_deref(), Some("UNAUTHENTICATED"));
    let me = data(app.admin("{ me { email displayName } }", json!({})).await);
    assert_eq!(me["me"]["email"], "admin@acme.example");
    // anonymous queries that need nobody still work
    assert_eq!(
        data(app.gql(None, "{ __typename }", json!({})).await)["__typename"],
        "QueryRoot"
    );
}

/// graphql-js's `getIntrospectionQuery()` with every option (descriptions, `specifiedByUrl`,
/// `directiveIsRepeatable`, `schemaDescription`, `inputValueDeprecation`, `oneOf`), with `TypeRef`
/// unrolled nine levels (graphql-js 16 unrolls seven): what GraphiQL, Apollo, Relay and code
/// generators send.
const STANDARD_INTROSPECTION: &str = "query IntrospectionQuery {
  __schema {
    description
    queryType { name kind }
    mutationType { name kind }
    subscriptionType { name kind }
    types { ...FullType }
    directives { name description isRepeatable locations args(includeDeprecated: true) { ...InputValue } }
  }
}
fragment FullType on __Type {
  kind name description specifiedByURL isOneOf
  fields(includeDeprecated: true) {
    name description
    args(includeDeprecated: true) { ...InputValue }
    type { ...TypeRef }
    isDeprecated deprecationReason
  }
  inputFields(includeDeprecated: true) { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue {
  name description type { ...TypeRef } defaultValue isDeprecated deprecationReason
}
fragment TypeRef on __Type {
  kind name
  ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name
    ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } } }
}";

/// The standard introspection query passes the depth limit (with a token and without), and names
/// every type `schema.graphql` declares; a hostile one that follows types' members forty levels
/// down is refused with `QUERY_TOO_DEEP`, and so is a deep data query.
#[actix_rt::test]
async fn standard_introspection_passes_and_hostile_introspection_does_not() {
    let app = spawn_app().await;
    let sdl =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql")).unwrap();
    let declared: std::collections::BTreeSet<String> = sdl
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            match w.next()? {
                "type" | "input" | "enum" | "scalar" | "interface" | "union" => {
                    Some(w.next()?.trim_end_matches('{').to_string())
                }
                _ => None,
            }
        })
        .collect();
    assert!(declared.len() > 20, "{declared:?}");
    for token in [None, Some(app.admin_token.as_str())] {
        let res = app.gql(token, STANDARD_INTROSPECTION, json!({})).await;
        assert!(res["errors"].is_null(), "{res}");
        let types: std::collections::BTreeSet<String> = res["data"]["__schema"]["types"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_string())
            .filter(|n| !n.starts_with("__"))
            .collect();
        let missing: Vec<_> = declared.difference(&types).collect();
        assert!(missing.is_empty(), "types not introspected: {missing:?}");
    }
    let mut hostile = String::from("name");
    for _ in 0..20 {
        hostile = format!("fields {{ type {{ {hostile} }} }}");
    }
    let res = app
        .gql(
            None,
            &format!("{{ __type(name: \"User\") {{ {hostile} }} }}"),
            json!({}),
        )
        .await;
    assert_eq!(code(&res).as_deref(), Some("QUERY_TOO_DEEP"), "{res}");
    // Two levels of members (a type's fields' types' fields) multiply the schema: refused too.
    let res = app
        .gql(
            None,
            "{ __type(name: \"User\") { fields { type { fields { name } } } } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&res).as_deref(), Some("QUERY_TOO_DEEP"), "{res}");
    // Fragments that spread each other ten times, twenty deep, would expand to 10^20 fields: refused
    // at once, without expanding them.
    let mut bomb = String::from("query { me { ...F0 } }");
    for i in 0..20 {
        let spreads = format!("...F{} ", i + 1).repeat(10);
        bomb.push_str(&format!(" fragment F{i} on User {{ id {spreads}}}"));
    }
    bomb.push_str(" fragment F20 on User { id }");
    let res = app.admin(&bomb, json!({})).await;
    assert_eq!(code(&res).as_deref(), Some("QUERY_TOO_COMPLEX"), "{res}");
    let mut deep = String::from("id");
    for _ in 0..15 {
        deep = format!("invitedBy {{ {deep} }}");
    }
    let res = app
        .admin(&format!("{{ me {{ {deep} }} }}"), json!({}))
        .await;
    assert_eq!(code(&res).as_deref(), Some("QUERY_TOO_DEEP"), "{res}");
    app.stop().await;
}

/// graphql-js itself reads the schema from the running server (`getIntrospectionQuery` with every
/// option, `buildClientSchema`), with a token and without, and finds it identical to `schema.graphql`
/// (`tests/tools/introspect.mjs`; `scripts/ensure-node-tools` installs it).
#[actix_rt::test]
async fn graphql_js_reads_the_checked_in_schema_from_the_server() {
    let app = spawn_app().await;
    let root = env!("CARGO_MANIFEST_DIR");
    assert!(
        std::path::Path::new(&format!("{root}/tests/tools/node_modules/graphql")).exists(),
        "graphql-js is not installed: run scripts/ensure-node-tools (scripts/test does)"
    );
    for token in [None, Some(app.admin_token.clone())] {
        let mut cmd = Command::new("node");
        cmd.arg(format!("{root}/tests/tools/introspect.mjs"))
            .arg(format!("{}/graphql", app.address))
            .arg(format!("{root}/schema.graphql"));
        if let Some(t) = &token {
            cmd.arg(t);
        }
        let out = actix_rt::task::spawn_blocking(move || cmd.output())
            .await
            .unwrap()
            .expect("node (scripts/ensure-node-tools installs it)");
        assert!(
            out.status.success(),
            "token: {}; {}{}",
            token.is_some(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    app.stop().await;
}

/// A frontend engineer reads the schema, not the code: every type, field, argument, input field and
/// enum value of `schema.graphql` has a description, and the connections follow the Relay
/// specification, as graphql-schema-linter judges them (`tests/tools/lint-schema.mjs`, which names
/// its rules; `scripts/ensure-node-tools` installs it). `schema_graphql_is_current` ties the file to
/// what the server says.
#[test]
fn schema_graphql_passes_the_schema_linter() {
    let root = env!("CARGO_MANIFEST_DIR");
    assert!(
        std::path::Path::new(&format!(
            "{root}/tests/tools/node_modules/graphql-schema-linter"
        ))
        .exists(),
        "graphql-schema-linter is not installed: run scripts/ensure-node-tools (scripts/test does)"
    );
    let out = Command::new("node")
        .current_dir(root)
        .arg("tests/tools/lint-schema.mjs")
        .arg("schema.graphql")
        .output()
        .expect("node (scripts/ensure-node-tools installs it)");
    assert!(
        out.status.success(),
        "schema.graphql fails the schema linter (exit {:?}): describe what it lists with doc comments \
         (`#[graphql(desc = ...)]` for arguments, `build_schema` for generated types), then run \
         `cargo run -- export-schema > schema.graphql`\n{}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// No field of the last release's schema disappears or changes type unannounced: every breaking
/// change graphql-js finds between `docs/schema-0.1.0.graphql` and `schema.graphql` is named under
/// the unreleased "Breaking" heading of CHANGELOG.md (a field kept with `@deprecated` is not one).
#[test]
fn every_breaking_change_is_named_in_the_changelog() {
    let root = env!("CARGO_MANIFEST_DIR");
    assert!(
        std::path::Path::new(&format!("{root}/tests/tools/node_modules/graphql")).exists(),
        "graphql-js is not installed: run scripts/ensure-node-tools (scripts/test does)"
    );
    let out = Command::new("node")
        .current_dir(root)
        .arg("tests/tools/breaking-changes.mjs")
        .args([
            "docs/schema-0.1.0.graphql",
            "schema.graphql",
            "CHANGELOG.md",
        ])
        .output()
        .expect("node (scripts/ensure-node-tools installs it)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "name each breaking change in CHANGELOG.md (exit {:?}):\n{stdout}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("each named"), "{stdout}");
}

/// The same rule without Node.js, on the schema the server builds: every type, field, argument, input
/// field and enum value has a description, and none is the engine's own placeholder (a type the
/// engine generates or describes generically gets one in `build_schema`).
#[test]
fn every_part_of_the_schema_has_a_description() {
    use async_graphql::parser::types::{TypeKind, TypeSystemDefinition};
    let sdl = guestpass::graphql::build_schema(None, guestpass::graphql::Limits::default()).sdl();
    let doc = async_graphql::parser::parse_schema(&sdl).expect("the SDL parses");
    let described = |d: &Option<async_graphql::Positioned<String>>| {
        d.as_ref().is_some_and(|d| {
            let d = d.node.trim();
            !d.is_empty() && !d.starts_with("Implement the ")
        })
    };
    let mut missing = Vec::new();
    for def in &doc.definitions {
        let TypeSystemDefinition::Type(t) = def else {
            continue;
        };
        let t = &t.node;
        let name = t.name.node.as_str();
        if !described(&t.description) {
            missing.push(name.to_string());
        }
        let fields = match &t.kind {
            TypeKind::Object(o) => &o.fields,
            TypeKind::Interface(i) => &i.fields,
            TypeKind::Enum(e) => {
                for v in &e.values {
                    if !described(&v.node.description) {
                        missing.push(format!("{name}.{}", v.node.value.node));
                    }
                }
                continue;
            }
            TypeKind::InputObject(i) => {
                for f in &i.fields {
                    if !described(&f.node.description) {
                        missing.push(format!("{name}.{}", f.node.name.node));
                    }
                }
                continue;
            }
            TypeKind::Scalar | TypeKind::Union(_) => continue,
        };
        for f in fields {
            let field = format!("{name}.{}", f.node.name.node);
            if !described(&f.node.description) {
                missing.push(field.clone());
            }
            for a in &f.node.arguments {
                if !described(&a.node.description) {
                    missing.push(format!("{field}({}:)", a.node.name.node));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "{} part(s) of the schema have no description of their own:\n{}",
        missing.len(),
        missing.join("\n")
    );
}

/// Text PostgreSQL cannot store (a NUL character) is the caller's mistake, not an internal error,
/// wherever it is sent (the fuzzer found it in `login`'s organization).
#[actix_rt::test]
async fn a_nul_character_in_any_text_is_invalid_input() {
    let app = spawn_app().await;
    let res = app
        .gql(
            None,
            "mutation($i: LoginInput!) { login(input: $i) { challengeMethod } }",
            json!({ "i": { "email": "a@partner.example", "organization": "x\u{0}y", "password": "pw" } }),
        )
        .await;
    assert_eq!(code(&res).as_deref(), Some("INVALID_INPUT"), "{res}");
    app.stop().await;
}

/// `HEAD` answers like `GET` (status, content type, length) without a body, on every `GET` route.
#[actix_rt::test]
async fn head_answers_like_get_without_a_body() {
    let app = spawn_app().await;
    let c = app.client();
    for path in [
        "/graphiql",
        "/healthz",
        "/readyz",
        "/graphql?query=%7B__typename%7D",
    ] {
        let url = format!("{}{path}", app.address);
        let mut get = c.get(&url).send().await.unwrap();
        let get_body = get.body().await.unwrap();
        let mut head = c.head(&url).send().await.unwrap();
        assert_eq!(head.status(), get.status(), "{path}");
        assert_eq!(head.status(), 200, "{path}");
        assert_eq!(
            head.headers().get("content-type"),
            get.headers().get("content-type"),
            "{path}"
        );
        assert_eq!(
            head.headers()
                .get("content-length")
                .and_then(|v| v.to_str().ok()),
            Some(get_body.len().to_string().as_str()),
            "{path}: HEAD announces GET's length"
        );
        assert!(head.body().await.unwrap().is_empty(), "{path}: no body");
    }
    app.stop().await;
}

#[actix_rt::test]
async fn http_endpoints() {
    let app = spawn_app().await;
    let c = app.client();
    let res = c
        .get(format!("{}/healthz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let mut res = c
        .get(format!("{}/graphiql", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body = String::from_utf8(res.body().await.unwrap().to_vec()).unwrap();
    assert!(body.contains("graphiql") && body.contains("/graphql"));
    let res = c
        .get(format!("{}/readyz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let mut res = c
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap();
    let body = String::from_utf8(res.body().await.unwrap().to_vec()).unwrap();
    assert!(body.contains("guestpass_http_requests_total"), "{body}");
    assert!(body.contains("guestpass_db_pool_connections"));
    assert!(body.contains("guestpass_jobs"), "{body}");
    // GET runs queries but never mutations
    let mut res = c
        .get(format!("{}/graphql?query=%7B__typename%7D", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        String::from_utf8(res.body().await.unwrap().to_vec())
            .unwrap()
            .contains("QueryRoot")
    );
    let res = c
        .get(format!(
            "{}/graphql?query=mutation%7BrevokeInvite(id:%22x%22)%7Bid%7D%7D",
            app.address
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 405);
    // malformed JSON and oversize bodies are refused before execution
    let mut res = c
        .post(format!("{}/graphql", app.address))
        .insert_header(("content-type", "application/json"))
        .send_body("{not json")
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_REQUEST");
    let huge = format!(
        "{{\"query\":\"{{ __typename }}\",\"x\":\"{}\"}}",
        "a".repeat(400 * 1024)
    );
    let res = c
        .post(format!("{}/graphql", app.address))
        .insert_header(("content-type", "application/json"))
        .send_body(huge)
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
}

#[actix_rt::test]
async fn spaces_pages_directory_and_audit() {
    let app = spawn_app().await;
    let space = data(
        app.admin(
            "mutation($s: ID!) { createSpace(input: { siteId: $s, key: \"ENG\", name: \"Engineering\" }) { space { id key } } }",
            json!({ "s": app.site_id }),
        )
        .await,
    )["createSpace"]["space"]["id"]
        .clone();
    let dup = app
        .admin(
            "mutation($s: ID!) { createSpace(input: { siteId: $s, key: \"ENG\", name: \"Again\" }) { space { id } } }",
            json!({ "s": app.site_id }),
        )
        .await;
    assert_eq!(code(&dup).as_deref(), Some("INVALID_INPUT"));
    data(
        app.admin(
            "mutation($s: ID!) { createPage(input: { spaceId: $s, title: \"Hello\", body: \"World\" }) { page { id } } }",
            json!({ "s": space }),
        )
        .await,
    );
    let got = data(
        app.admin(
            "query($s: ID!) { space(id: $s) { key pages { nodes { title body } } } }",
            json!({ "s": space }),
        )
        .await,
    );
    assert_eq!(got["space"]["pages"]["nodes"][0]["title"], "Hello");

    // the people directory: admins and paid users only
    let paid = app
        .add_user(
            "paid@acme.example",
            Some(guestpass::domain::ProductRole::User),
        )
        .await;
    let guest = app
        .add_user(
            "guest@partner.example",
            Some(guestpass::domain::ProductRole::Guest),
        )
        .await;
    let q = "query($s: ID!) { users(siteId: $s, first: 1) { totalCount pageInfo { hasNextPage endCursor } edges { node { role user { email } } } } }";
    let paid_token = app.session_for(&paid).await;
    let page1 = data(
        app.gql(Some(&paid_token), q, json!({ "s": app.site_id }))
            .await,
    );
    assert_eq!(page1["users"]["totalCount"], 3);
    assert_eq!(page1["users"]["pageInfo"]["hasNextPage"], true);
    let cursor = page1["users"]["pageInfo"]["endCursor"]
        .as_str()
        .unwrap()
        .to_string();
    let q2 = "query($s: ID!, $a: String) { users(siteId: $s, first: 5, after: $a) { edges { node { user { email } } } } }";
    let page2 = data(
        app.gql(
            Some(&paid_token),
            q2,
            json!({ "s": app.site_id, "a": cursor }),
        )
        .await,
    );
    assert_eq!(page2["users"]["edges"].as_array().unwrap().len(), 2);
    let guest_token = app.session_for(&guest).await;
    let res = app
        .gql(Some(&guest_token), q, json!({ "s": app.site_id }))
        .await;
    assert_eq!(code(&res).as_deref(), Some("FORBIDDEN"));
    // a guest without a space reaches no content
    let res = app
        .gql(
            Some(&guest_token),
            "query($s: ID!) { space(id: $s) { pages { nodes { title } } } }",
            json!({ "s": space }),
        )
        .await;
    assert_eq!(code(&res).as_deref(), Some("FORBIDDEN"));
    // unknown and malformed ids are NOT_FOUND alike
    for id in ["00000000-0000-0000-0000-000000000000", "nonsense"] {
        let res = app
            .admin(
                "query($s: ID!) { site(id: $s) { name } }",
                json!({ "s": id }),
            )
            .await;
        assert_eq!(code(&res).as_deref(), Some("NOT_FOUND"));
    }
    // page size is capped
    let res = app
        .admin(
            "query($s: ID!) { users(siteId: $s, first: 1000000) { totalCount } }",
            json!({ "s": app.site_id }),
        )
        .await;
    assert_eq!(code(&res).as_deref(), Some("INVALID_INPUT"));

    let audit = data(
        app.admin(
            "{ auditEvents(first: 10) { totalCount edges { node { action actorId } } } }",
            json!({}),
        )
        .await,
    );
    let actions: Vec<&str> = audit["auditEvents"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"space.create") && actions.contains(&"page.create"),
        "{actions:?}"
    );
    let res = app
        .gql(
            Some(&paid_token),
            "{ auditEvents(first: 10) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&res).as_deref(), Some("FORBIDDEN"));
}

/// The ```graphql blocks of README.md, in file order, with the line each starts on.
fn readme_graphql_blocks() -> Vec<(usize, String)> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let mut blocks = Vec::new();
    let mut open: Option<(usize, String)> = None;
    for (i, line) in readme.lines().enumerate() {
        match open.take() {
            None if line.trim_end() == "```graphql" => open = Some((i + 1, String::new())),
            None => {}
            Some(block) if line.trim_end() == "```" => blocks.push(block),
            Some((start, mut text)) => {
                text.push_str(line);
                text.push('\n');
                open = Some((start, text));
            }
        }
    }
    assert!(
        open.is_none(),
        "a ```graphql block of README.md is not closed"
    );
    blocks
}

/// The paths of every empty list in an answer (`data.guests.edges`...).
fn empty_lists(v: &serde_json::Value, path: &str, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Array(items) if items.is_empty() => out.push(path.to_string()),
        serde_json::Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                empty_lists(item, &format!("{path}.{i}"), out);
            }
        }
        serde_json::Value::Object(fields) => {
            for (k, item) in fields {
                empty_lists(item, &format!("{path}.{k}"), out);
            }
        }
        _ => {}
    }
}

/// README.md's promise that its examples work: `serve --demo` on a fresh database, then every
/// ```graphql block of the README in file order (mutations too), with the demo's variables and the
/// admin's API token, or the guest's for a block whose first line is `# as the guest`. Each answer
/// has data, no error, a value for every root field, and no empty list: the demo holds something for
/// everything an example shows.
#[actix_rt::test]
async fn every_graphql_example_in_the_readme_runs_against_the_demo() {
    let (app, demo) = spawn_demo().await;
    assert!(!demo.created, "a restart builds nothing again");
    assert_eq!(app.db.scalar_i64("SELECT count(*) FROM organizations"), 1);
    assert_eq!(app.db.scalar_i64("SELECT count(*) FROM users"), 10);

    // Made through the engine: the maintained access state is what the grants say.
    let differences = app
        .state
        .db
        .run(|c| guestpass::store::changes::check::run(c, false, chrono::Utc::now()))
        .await
        .unwrap();
    assert!(differences.is_empty(), "{differences:?}");
    // What README.md says the demo holds.
    let usage = data(
        app.admin(
            "{ sites { name seatUsage { paidUsers guests pendingPaidInvites pendingGuestInvites } } }",
            json!({}),
        )
        .await,
    );
    assert_eq!(
        usage["sites"],
        json!([
            { "name": "Marketing", "seatUsage": { "paidUsers": 3, "guests": 1, "pendingPaidInvites": 0, "pendingGuestInvites": 1 } },
            { "name": "Wiki", "seatUsage": { "paidUsers": 3, "guests": 5, "pendingPaidInvites": 1, "pendingGuestInvites": 3 } },
        ])
    );
    let invites = data(
        app.admin(
            "query($site: ID!) { invites(siteId: $site, first: 100) { edges { node { status } } } }",
            demo.variables.clone(),
        )
        .await,
    );
    let expired = invites["invites"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["node"]["status"] == "EXPIRED")
        .count();
    assert_eq!(expired, 1);

    let blocks = readme_graphql_blocks();
    assert!(blocks.len() >= 7, "{} blocks", blocks.len());
    let mut as_guest = 0;
    for (line, block) in &blocks {
        let token = if block.lines().next().map(str::trim) == Some("# as the guest") {
            as_guest += 1;
            &demo.guest_token
        } else {
            &demo.admin_token
        };
        let res = app.gql(Some(token), block, demo.variables.clone()).await;
        assert!(
            res.get("errors").is_none_or(serde_json::Value::is_null),
            "README.md line {line}: {res}\n{block}"
        );
        let fields = res["data"]
            .as_object()
            .unwrap_or_else(|| panic!("README.md line {line}: no data: {res}"));
        for (name, value) in fields {
            assert!(!value.is_null(), "README.md line {line}: `{name}` is null");
        }
        let mut empty = Vec::new();
        empty_lists(&res["data"], "data", &mut empty);
        assert!(
            empty.is_empty(),
            "README.md line {line}: empty lists {empty:?}: {res}"
        );
    }
    assert!(as_guest >= 1, "no README example runs as the guest");
    app.stop().await;
}

/// The store loads facts, asks the domain and writes (issue 19): a store function longer than 80
/// lines is doing more than that, so its decision belongs in `src/domain/` (with unit tests) or its
/// loading and writing in named helpers. Counted from the line that opens a function (`fn`, after an
/// optional `pub`, `pub(crate)` or `async`) to its closing brace at the same indentation, both
/// included; every offender is listed with its file, name and length.
#[test]
fn no_store_function_is_longer_than_80_lines() {
    const MAX: usize = 80;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut stack = vec![root.join("src/store")];
    let mut files = Vec::new();
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    assert!(!files.is_empty(), "no files under src/store");
    let mut offenders = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let body = line.trim_start();
            let Some(name) = opened_fn(body) else {
                continue;
            };
            let indent = &line[..line.len() - body.len()];
            let Some(len) = fn_length(&lines[i..], indent) else {
                continue; // a declaration without a body, or a function on one line
            };
            if len > MAX {
                offenders.push(format!(
                    "{}: `{name}` is {len} lines",
                    path.strip_prefix(root).unwrap().display()
                ));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "store functions over {MAX} lines (move decisions to src/domain/, name the loading and \
         writing):\n{}",
        offenders.join("\n")
    );
}

/// Status and kind columns are read and written through their enums (issue 19): the text each
/// variant is stored as is written once, in `src/domain/status.rs`, which maps it both ways. A quoted
/// `"PENDING"` or `'PENDING'` anywhere else in `src/` is a value written or matched by hand (bind the
/// enum instead, in SQL too). A line that must say such a word for another reason (an export's own
/// labels, a payload's wire shape) says so with `// not a column value`. Every offender is listed
/// with its file, line and the columns that store the word.
#[test]
fn no_status_literal_outside_the_status_enums() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let home = root.join("src/domain/status.rs");
    // Each quoted value, with the columns that store it.
    let mut words: std::collections::BTreeMap<String, Vec<&str>> = Default::default();
    for (column, values) in guestpass::domain::status::COLUMNS {
        for v in *values {
            words.entry(format!("\"{v}\"")).or_default().push(column);
            words.entry(format!("'{v}'")).or_default().push(column);
        }
    }
    let mut stack = vec![root.join("src")];
    let mut files = Vec::new();
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") && path != home {
                files.push(path);
            }
        }
    }
    files.sort();
    assert!(files.len() > 50, "src/ not found");
    let mut offenders = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        for (i, line) in text.lines().enumerate() {
            if line.contains("// not a column value") {
                continue;
            }
            for (word, columns) in &words {
                if line.contains(word.as_str()) {
                    offenders.push(format!(
                        "{}:{}: {word} ({})",
                        path.strip_prefix(root).unwrap().display(),
                        i + 1,
                        columns.join(", ")
                    ));
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "status values written by hand (use the enums of src/domain/status.rs):\n{}",
        offenders.join("\n")
    );
}

/// The name of the function `line` (without its indentation) opens, if it opens one.
fn opened_fn(line: &str) -> Option<&str> {
    let mut rest = line;
    for visibility in ["pub(crate) ", "pub "] {
        if let Some(r) = rest.strip_prefix(visibility) {
            rest = r;
            break;
        }
    }
    let rest = rest.strip_prefix("async ").unwrap_or(rest);
    let rest = rest.strip_prefix("fn ")?;
    let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_'))?;
    (end > 0).then(|| &rest[..end])
}

/// How many lines the function opening `lines[0]` spans, to the first line that is exactly its
/// indentation and `}`; `None` when it has no body over several lines (a line at its indentation
/// ends it first).
fn fn_length(lines: &[&str], indent: &str) -> Option<usize> {
    let close = format!("{indent}}}");
    if lines[0].trim_end().ends_with('}') || lines[0].trim_end().ends_with(';') {
        return None;
    }
    for (n, line) in lines.iter().enumerate().skip(1) {
        if *line == close {
            return Some(n + 1);
        }
        let body = line.trim_start();
        let depth = line.len() - body.len();
        let declaration_ends = depth == indent.len() && body.ends_with(';');
        if !body.is_empty() && (depth < indent.len() || declaration_ends) {
            return None;
        }
    }
    None
}

/// `store/` enqueues jobs but never reaches into the workers: the job payloads live in
/// `background.rs`, which both import, so the two layers do not form a circle.
#[test]
fn the_store_does_not_import_the_job_workers() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut stack = vec![root.join("src/store")];
    let mut offenders = Vec::new();
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for (i, line) in text.lines().enumerate() {
                    let code = line.split("//").next().unwrap_or("");
                    if code.contains("crate::jobs") || code.contains("super::super::jobs") {
                        offenders.push(format!("{}:{}: {}", path.display(), i + 1, line.trim()));
                    }
                }
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "store/ imports jobs/:\n{}",
        offenders.join("\n")
    );
}
