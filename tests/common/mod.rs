//! Test support: a real Postgres database per test, the real server on port 0, a GraphQL client, and
//! an SMTP sink.
#![allow(dead_code, unused_imports)]

pub mod db;
pub mod smtp;

use guestpass::app::{self, RunOptions, Running};
use guestpass::clock::Clock;
use guestpass::config::{Config, Secret};
use guestpass::domain::EmailAddress;
use guestpass::state::AppState;
use serde_json::{Value, json};
use std::time::Duration;

pub use db::TestDb;
pub use smtp::SmtpSink;

pub struct AppOptions {
    pub smtp_url: Option<String>,
    pub user_limit: i32,
    pub workers: bool,
    pub retry_base_ms: u64,
    pub email_retry_for_secs: u64,
    /// Changes to the configuration before start (rate limits, lifetimes).
    pub configure: Option<fn(&mut Config)>,
}

impl Default for AppOptions {
    fn default() -> Self {
        Self {
            smtp_url: None,
            user_limit: 100,
            workers: true,
            retry_base_ms: 200,
            email_retry_for_secs: 86_400,
            configure: None,
        }
    }
}

pub struct TestApp {
    pub db: TestDb,
    pub address: String,
    pub state: AppState,
    pub clock: Clock,
    pub admin_token: String,
    pub admin_id: String,
    pub org_id: String,
    pub site_id: String,
    pub outbox: std::path::PathBuf,
    running: Option<Running>,
    http: awc::Client,
}

pub fn test_config(db: &TestDb, opts: &AppOptions, outbox: &std::path::Path) -> Config {
    let mut c = Config::defaults();
    c.database_url = db.url.clone();
    c.secret = Some(Secret("test-secret-test-secret-test-secret-0123".into()));
    c.smtp_url = opts.smtp_url.clone();
    c.outbox_dir = outbox.to_path_buf();
    c.email_retry_base_ms = opts.retry_base_ms;
    c.email_retry_for_secs = opts.email_retry_for_secs;
    c.db_pool_size = 20;
    c.worker_heartbeat_secs = 1;
    c.log = "warn".into();
    // Tests resend at once and invite in volume; the abuse limits have their own tests.
    c.recipient_cooldown_secs = 0;
    c.accept_limit_per_address = 10_000;
    // Webhook receivers in tests listen on loopback over plain http; the refusals have their own
    // tests (`outbound::`), which turn these off.
    c.webhook_allow_http = true;
    c.webhook_allow_private_targets = true;
    c
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(AppOptions::default()).await
}

pub async fn spawn_app_with(opts: AppOptions) -> TestApp {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("TEST_LOG").unwrap_or_else(|_| "error".into()))
        .with_test_writer()
        .try_init();
    let db = TestDb::new();
    let outbox = std::env::temp_dir().join(format!("gp-outbox-{}", uuid::Uuid::new_v4().simple()));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut config = test_config(&db, &opts, &outbox);
    if let Some(f) = opts.configure {
        f(&mut config);
    }
    config.public_url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let clock = Clock::default();
    let mut run = RunOptions::from_config(&config);
    run.workers = opts.workers;
    run.worker.poll = Duration::from_millis(200);
    let running = app::start(config, run, clock.clone(), Some(listener))
        .await
        .expect("app starts");
    let state = running.state.clone();
    let port = running.port.unwrap();
    let user_limit = opts.user_limit;
    let b = state
        .db
        .run(move |c| {
            guestpass::store::org::bootstrap(
                c,
                guestpass::store::org::BootstrapInput {
                    org_name: "Acme".into(),
                    site_name: "Docs".into(),
                    admin_email: EmailAddress::parse("admin@acme.example").unwrap(),
                    user_limit: Some(user_limit),
                    verified_domains: vec!["acme.example".into()],
                },
                chrono::Utc::now(),
            )
        })
        .await
        .unwrap();
    TestApp {
        db,
        address: format!("http://127.0.0.1:{port}"),
        state,
        clock,
        admin_token: b.api_token,
        admin_id: b.admin.id.to_string(),
        org_id: b.organization.id.to_string(),
        site_id: b.site.id.to_string(),
        outbox,
        running: Some(running),
        http: awc::Client::builder()
            .timeout(Duration::from_secs(60))
            .finish(),
    }
}

impl TestApp {
    pub fn client(&self) -> &awc::Client {
        &self.http
    }

    /// POSTs a GraphQL operation and returns the whole JSON response.
    pub async fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        post_graphql(&self.http, &self.address, token, query, variables).await
    }

    /// As the bootstrap admin.
    pub async fn admin(&self, query: &str, variables: Value) -> Value {
        self.gql(Some(&self.admin_token.clone()), query, variables)
            .await
    }

    /// Stops the server and workers gracefully.
    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await;
        }
    }

    /// Another replica: a second `serve` process's server and workers on this test's database, with
    /// the same clock and secret (as behind a load balancer), configured by `configure` on top.
    pub async fn replica(&self, configure: impl FnOnce(&mut Config)) -> Replica {
        self.replica_with(configure, |_| {}).await
    }

    /// A replica that runs what `run` leaves on (`api`, `workers`): e.g. an API without workers, so
    /// that nothing sends the emails yet, then a workers-only process.
    pub async fn replica_with(
        &self,
        configure: impl FnOnce(&mut Config),
        run_as: impl FnOnce(&mut RunOptions),
    ) -> Replica {
        let mut config = test_config(&self.db, &AppOptions::default(), &self.outbox);
        configure(&mut config);
        config.public_url = self.address.clone();
        let mut run = RunOptions::from_config(&config);
        run.worker.poll = Duration::from_millis(200);
        run_as(&mut run);
        let running = app::start(
            config,
            run,
            self.clock.clone(),
            Some(std::net::TcpListener::bind("127.0.0.1:0").unwrap()),
        )
        .await
        .expect("replica starts");
        Replica {
            address: running
                .port
                .map(|p| format!("http://127.0.0.1:{p}"))
                .unwrap_or_default(),
            state: running.state.clone(),
            running: Some(running),
            http: awc::Client::builder()
                .timeout(Duration::from_secs(60))
                .finish(),
        }
    }

    /// Waits until the queue has nothing pending or running (jobs left behind fail the test).
    pub async fn drain_jobs(&self, timeout: Duration) {
        let start = std::time::Instant::now();
        loop {
            let n = self.db.scalar_i64("SELECT count(*) FROM apalis.jobs WHERE status IN ('Pending','Queued','Running') OR (status = 'Failed' AND attempts < max_attempts)");
            if n == 0 {
                return;
            }
            assert!(
                start.elapsed() < timeout,
                "{n} jobs still pending after {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Creates a user with a direct role on the test site (setup shortcut for tests), and answers
    /// their id as the API does (a global id).
    pub async fn add_user(
        &self,
        email: &str,
        role: Option<guestpass::domain::ProductRole>,
    ) -> String {
        let email = EmailAddress::parse(email).unwrap();
        let site: uuid::Uuid = self.site_id.parse().unwrap();
        let org: uuid::Uuid = self.org_id.parse().unwrap();
        self.state
            .db
            .run(move |c| {
                use diesel::prelude::*;
                use guestpass::db::schema::*;
                let id: uuid::Uuid = diesel::insert_into(users::table)
                    .values((
                        users::organization_id.eq(org),
                        users::email.eq(email.as_str()),
                        users::email_normalized.eq(email.normalized()),
                        users::display_name.eq(email.as_str().split('@').next().unwrap()),
                        users::created_at.eq(chrono::Utc::now()),
                    ))
                    .returning(users::id)
                    .get_result(c)?;
                if let Some(r) = role {
                    use guestpass::store::changes::grants;
                    grants::set_direct_role(c, site, id, Some(r), chrono::Utc::now())?;
                    if r.is_paid() {
                        grants::record_paid(c, site, &[id], chrono::Utc::now())?;
                    }
                }
                guestpass::store::changes::check::run(c, true, chrono::Utc::now())?;
                Ok(id)
            })
            .await
            .map(|id| gid("User", &id.to_string()))
            .unwrap()
    }

    /// Uploads a bulk invite file (`POST /admin/invites.csv`): the status and the JSON answer.
    pub async fn upload_invites(
        &self,
        token: Option<&str>,
        site: &str,
        csv: &[u8],
    ) -> (u16, Value) {
        let mut req = self
            .client()
            .post(format!("{}/admin/invites.csv?siteId={site}", self.address))
            .insert_header(("Content-Type", "text/csv"));
        if let Some(t) = token {
            req = req.insert_header(("Authorization", format!("Bearer {t}")));
        }
        let mut res = req.send_body(csv.to_vec()).await.unwrap();
        (res.status().as_u16(), res.json().await.unwrap())
    }

    /// Uploads a one-guest bulk invite file as the organization admin and answers its id.
    pub async fn bulk_invite_id(&self, email: &str) -> String {
        let csv = format!("email,role\n{email},GUEST\n");
        let (status, body) = self
            .upload_invites(Some(&self.admin_token), &self.site_id, csv.as_bytes())
            .await;
        assert_eq!(status, 202, "{body}");
        body["id"].as_str().unwrap().to_string()
    }

    /// Sets a user's password (setup shortcut; hashed like a real one).
    pub async fn set_password(&self, user_id: &str, password: &str) {
        let id = uuid_of(user_id);
        let hash = self
            .state
            .passwords
            .hash(password.to_string())
            .await
            .unwrap();
        self.state
            .db
            .run(move |c| {
                use diesel::prelude::*;
                use guestpass::db::schema::users;
                diesel::update(users::table.find(id))
                    .set(users::password_hash.eq(hash))
                    .execute(c)?;
                Ok(())
            })
            .await
            .unwrap();
    }

    /// A session token for a user (setup shortcut).
    pub async fn session_for(&self, user_id: &str) -> String {
        let id = uuid_of(user_id);
        self.state
            .db
            .run(move |c| {
                guestpass::store::org::create_session(
                    c,
                    id,
                    chrono::Duration::hours(1),
                    chrono::Utc::now(),
                )
            })
            .await
            .unwrap()
    }
}

/// A second server on a test's database (see [`TestApp::replica`]).
pub struct Replica {
    pub address: String,
    pub state: AppState,
    running: Option<Running>,
    http: awc::Client,
}

impl Replica {
    /// POSTs a GraphQL operation to this replica.
    pub async fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        post_graphql(&self.http, &self.address, token, query, variables).await
    }

    pub async fn stop(mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await;
        }
    }
}

/// POSTs a GraphQL operation to the server at `address` and returns the whole JSON response.
async fn post_graphql(
    http: &awc::Client,
    address: &str,
    token: Option<&str>,
    query: &str,
    variables: Value,
) -> Value {
    let mut req = http.post(format!("{address}/graphql"));
    if let Some(t) = token {
        req = req.insert_header(("Authorization", format!("Bearer {t}")));
    }
    let mut res = req
        .send_json(&json!({ "query": query, "variables": variables }))
        .await
        .expect("request");
    res.json::<Value>()
        .limit(16 * 1024 * 1024)
        .await
        .expect("JSON response")
}

/// The error code of the first error, if any.
pub fn code(res: &Value) -> Option<String> {
    res["errors"][0]["extensions"]["code"]
        .as_str()
        .map(str::to_string)
}

/// The response's data, or a panic showing the errors.
pub fn data(res: Value) -> Value {
    assert!(
        res.get("errors").is_none_or(Value::is_null),
        "unexpected errors: {res}"
    );
    res["data"].clone()
}

pub const INVITE: &str = "mutation($input: InviteUsersInput!) { inviteUsers(input: $input) { invites { id email status role } } }";
pub const SEATS: &str = "query($s: ID!) { seatUsage(siteId: $s) { paidUsers guests pendingPaidInvites pendingGuestInvites userLimit guestAllowance remainingSeats remainingGuestSlots overGuestAllowanceBy } }";

impl TestApp {
    pub async fn invite(&self, emails: &[&str], role: &str) -> Value {
        self.admin(
            INVITE,
            json!({ "input": { "siteId": self.site_id, "emails": emails, "role": role } }),
        )
        .await
    }

    pub async fn seats(&self) -> Value {
        data(self.admin(SEATS, json!({ "s": self.site_id })).await)["seatUsage"].clone()
    }

    /// The current link token of an invite, derived the same way the email worker does.
    pub async fn invite_token(&self, invite_id: &str) -> String {
        let id = uuid_of(invite_id);
        let nonce: Vec<u8> = self
            .state
            .db
            .run(move |c| {
                use diesel::prelude::*;
                use guestpass::db::schema::invites;
                Ok(invites::table
                    .find(id)
                    .select(invites::token_nonce)
                    .first(c)?)
            })
            .await
            .unwrap();
        self.state
            .signer
            .sign(guestpass::auth::tokens::LinkPurpose::Invite, id, &nonce)
    }
}

/// Setup shortcuts for access management tests (each goes through the API as the bootstrap admin).
impl TestApp {
    pub async fn create_space(&self, key: &str) -> String {
        let r = self
            .admin(
                "mutation($i: CreateSpaceInput!) { createSpace(input: $i) { space { id } } }",
                json!({ "i": { "siteId": self.site_id, "key": key, "name": format!("Space {key}") } }),
            )
            .await;
        data(r)["createSpace"]["space"]["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    pub async fn create_group(&self, name: &str) -> String {
        let r = self
            .admin(
                "mutation($i: CreateGroupInput!) { createGroup(input: $i) { group { id } } }",
                json!({ "i": { "name": name } }),
            )
            .await;
        data(r)["createGroup"]["group"]["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Adds another site to the test organization (there is no API for it; the bootstrap creates
    /// one) and returns its id.
    pub async fn create_site(&self, name: &str) -> String {
        let org: uuid::Uuid = self.org_id.parse().unwrap();
        let name = name.to_string();
        self.state
            .db
            .run(move |c| {
                use diesel::prelude::*;
                use guestpass::db::schema::sites;
                let id: uuid::Uuid = diesel::insert_into(sites::table)
                    .values((
                        sites::organization_id.eq(org),
                        sites::name.eq(name),
                        sites::user_limit.eq(100),
                        sites::created_at.eq(chrono::Utc::now()),
                    ))
                    .returning(sites::id)
                    .get_result(c)?;
                Ok(id.to_string())
            })
            .await
            .unwrap()
    }

    /// Gives a user a direct role on a site through the API.
    pub async fn set_role(&self, site: &str, user: &str, role: Option<&str>) {
        data(
            self.admin(
                "mutation($i: SetProductRoleInput!) { setProductRole(input: $i) { dryRun } }",
                json!({ "i": { "siteId": site, "userId": user, "role": role } }),
            )
            .await,
        );
    }

    /// Gives a group a role on a site through the API.
    pub async fn set_group_role(&self, group: &str, site: &str, role: Option<&str>) {
        data(
            self.admin(
                "mutation($i: SetGroupProductRoleInput!) { setGroupProductRole(input: $i) { dryRun } }",
                json!({ "i": { "groupId": group, "siteId": site, "role": role } }),
            )
            .await,
        );
    }

    /// Adds people to a group through the API.
    pub async fn add_members(&self, group: &str, users: &[&str]) {
        data(
            self.admin(
                "mutation($i: GroupMembersInput!) { addGroupMembers(input: $i) { dryRun } }",
                json!({ "i": { "groupId": group, "userIds": users } }),
            )
            .await,
        );
    }

    /// Puts guests in a space through the API.
    pub async fn assign(&self, space: &str, users: &[String]) -> Value {
        self.admin(
            "mutation($i: AssignGuestSpaceInput!) { assignGuestSpace(input: $i) { assignments { user { id } space { id } previousSpace { id } } } }",
            json!({ "i": { "spaceId": space, "userIds": users } }),
        )
        .await
    }

    /// A new API token for a user (setup shortcut).
    pub async fn api_token_for(&self, user_id: &str) -> String {
        let id = uuid_of(user_id);
        self.state
            .db
            .run(move |c| {
                guestpass::store::org::create_api_token(c, id, "test", None, chrono::Utc::now())
            })
            .await
            .unwrap()
    }

    /// Sets a site's limits through the API.
    pub async fn set_limits(&self, user_limit: Option<i32>, guest_ratio: Option<i32>) {
        data(
            self.admin(
                "mutation($i: UpdateSiteSettingsInput!) { updateSiteSettings(input: $i) { site { id } } }",
                json!({ "i": { "siteId": self.site_id, "userLimit": user_limit, "guestRatio": guest_ratio } }),
            )
            .await,
        );
    }

    /// The ids of a site's guests (first 100), optionally filtered.
    pub async fn guest_ids(&self, filter: Value) -> (Vec<String>, i64) {
        let r = data(
            self.admin(
                "query($s: ID!, $f: GuestFilterInput) { guests(siteId: $s, first: 100, filter: $f) { totalCount edges { node { id } } } }",
                json!({ "s": self.site_id, "f": filter }),
            )
            .await,
        );
        let ids = r["guests"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["id"].as_str().unwrap().to_string())
            .collect();
        (ids, r["guests"]["totalCount"].as_i64().unwrap())
    }
}

pub const ACCESS_CHANGE: &str = "dryRun changes { user { id email } site { id } roleBefore roleAfter lostAccess } seatUsage { siteId paidUsers guests pendingPaidInvites pendingGuestInvites remainingSeats remainingGuestSlots overGuestAllowanceBy }";

/// The password `TestApp::emailed_guest` sets.
pub const GUEST_PASSWORD: &str = "a long enough passphrase";

impl TestApp {
    /// Invites a guest (with `extra` fields merged into the input), takes the link from the email the
    /// sink received (it must carry the invite's current token) and accepts it as a new account.
    /// Returns the user id and their session.
    pub async fn emailed_guest(
        &self,
        sink: &SmtpSink,
        email: &str,
        extra: Value,
    ) -> (String, String) {
        let mut input = json!({ "siteId": self.site_id, "emails": [email], "role": "GUEST" });
        for (k, v) in extra.as_object().into_iter().flatten() {
            input[k] = v.clone();
        }
        let before = sink.messages().len();
        let r = data(self.admin(INVITE, json!({ "input": input })).await);
        let id = r["inviteUsers"]["invites"][0]["id"]
            .as_str()
            .unwrap()
            .to_string();
        let msgs = sink.wait_for(before + 1, Duration::from_secs(30)).await;
        let link = msgs.last().unwrap().invite_link();
        let token = link.rsplit('/').next().unwrap().to_string();
        assert_eq!(token, self.invite_token(&id).await);
        let r = data(
            self.gql(
                None,
                "mutation($i: AcceptInviteInput!) { acceptInvite(input: $i) { sessionToken user { id } } }",
                json!({ "i": { "token": token, "displayName": "Grace", "password": GUEST_PASSWORD } }),
            )
            .await,
        );
        (
            r["acceptInvite"]["user"]["id"]
                .as_str()
                .unwrap()
                .to_string(),
            r["acceptInvite"]["sessionToken"]
                .as_str()
                .unwrap()
                .to_string(),
        )
    }
}

impl TestApp {
    /// Opens an emailed link's page like a browser: returns the status, the CSRF cookie it set
    /// (`name=value`) and the CSRF value of its form.
    pub async fn open_form(&self, link: &str) -> (u16, String, String) {
        let mut page = self.http.get(link).send().await.unwrap();
        let status = page.status().as_u16();
        let cookie = page
            .headers()
            .get("set-cookie")
            .unwrap()
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string();
        let body = String::from_utf8(page.body().await.unwrap().to_vec()).unwrap();
        let csrf = body
            .split("name=\"csrf\" value=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_string();
        (status, cookie, csrf)
    }
}

/// Setup shortcuts for tests that need more than the bootstrap site and admin.
impl TestApp {
    /// Adds another site to the organization (by SQL: there is no API that creates sites).
    pub fn add_site(&self, name: &str) -> String {
        use diesel::prelude::*;
        use guestpass::db::schema::sites;
        let org: uuid::Uuid = self.org_id.parse().unwrap();
        diesel::insert_into(sites::table)
            .values((
                sites::organization_id.eq(org),
                sites::name.eq(name),
                sites::user_limit.eq(10),
                sites::created_at.eq(chrono::Utc::now()),
            ))
            .returning(sites::id)
            .get_result::<uuid::Uuid>(&mut self.db.conn())
            .unwrap()
            .to_string()
    }

    /// Makes a person a site admin of one site (through the API, as the bootstrap admin) and returns
    /// a session of theirs.
    pub async fn site_admin_of(&self, user_id: &str, site_id: &str) -> String {
        data(
            self.admin(
                "mutation($i: SetAdminRoleInput!) { setAdminRole(input: $i) { user { id } } }",
                json!({ "i": { "userId": user_id, "role": "SITE_ADMIN", "siteId": site_id, "granted": true } }),
            )
            .await,
        );
        self.session_for(user_id).await
    }
}

impl TestApp {
    /// Runs `bootstrap` (another organization, or a site added to an existing one when `org` and
    /// `admin_email` name them) and returns what it made.
    pub async fn bootstrap(
        &self,
        org: &str,
        site: &str,
        admin_email: &str,
        verified_domains: &[&str],
    ) -> guestpass::store::org::Bootstrapped {
        let input = guestpass::store::org::BootstrapInput {
            org_name: org.into(),
            site_name: site.into(),
            admin_email: EmailAddress::parse(admin_email).unwrap(),
            user_limit: Some(100),
            verified_domains: verified_domains.iter().map(|d| d.to_string()).collect(),
        };
        self.state
            .db
            .run(move |c| guestpass::store::org::bootstrap(c, input, chrono::Utc::now()))
            .await
            .unwrap()
    }
}

/// Pages through a connection `first` at a time and answers each node's `key`, in order, after
/// checking every page: the same `totalCount`, no more than `first` nodes (exactly `first` before the
/// last), `hasNextPage` true until the last page, every node once, and as many as `totalCount`.
/// `query` takes `$first: Int` and `$after: String`; `path` leads from `data` to the connection.
pub async fn page_through(
    app: &TestApp,
    token: Option<&str>,
    query: &str,
    vars: Value,
    path: &[&str],
    first: usize,
    key: impl Fn(&Value) -> String,
) -> Vec<String> {
    let (mut out, mut after, mut total) = (Vec::new(), Value::Null, None);
    loop {
        let mut v = vars.clone();
        v["first"] = json!(first);
        v["after"] = after;
        let mut c = data(app.gql(token, query, v).await);
        for p in path {
            c = c[*p].clone();
        }
        let t = c["totalCount"].as_u64().unwrap() as usize;
        assert_eq!(*total.get_or_insert(t), t, "totalCount on every page: {c}");
        let edges = c["edges"].as_array().unwrap();
        out.extend(edges.iter().map(|e| key(&e["node"])));
        if c["pageInfo"]["hasNextPage"] == json!(false) {
            assert!(edges.len() <= first, "{c}");
            break;
        }
        assert_eq!(edges.len(), first, "a page before the last is full: {c}");
        assert_eq!(edges[first - 1]["cursor"], c["pageInfo"]["endCursor"]);
        after = c["pageInfo"]["endCursor"].clone();
    }
    let unique: std::collections::HashSet<&String> = out.iter().collect();
    assert_eq!(unique.len(), out.len(), "no node twice: {out:?}");
    assert_eq!(
        Some(out.len()),
        total,
        "as many nodes as totalCount: {out:?}"
    );
    out
}

/// The key behind an id the API answered (a global id) or a test made (a bare UUID).
pub fn uuid_of(id: &str) -> uuid::Uuid {
    match guestpass::graphql::ids::decode(id) {
        Some((_, key)) => key.parse().unwrap(),
        None => id.parse().unwrap(),
    }
}

/// The global id the API answers for the object of this type (`"User"`, `"Site"`...) and key.
pub fn gid(type_name: &str, key: &str) -> String {
    use guestpass::graphql::ids::{Kind, global};
    let kind = Kind::named(type_name).unwrap();
    global(kind, uuid_of(key)).to_string()
}

/// The root fields of a type in `schema.graphql`.
pub fn root_fields(sdl: &str, ty: &str) -> Vec<String> {
    let start = sdl.find(&format!("type {ty} {{")).unwrap();
    let body = &sdl[start..start + sdl[start..].find("\n}").unwrap()];
    let mut out = Vec::new();
    let mut in_doc = false;
    for line in body.lines().skip(1) {
        let t = line.trim();
        if t.starts_with("\"\"\"") {
            in_doc = !(in_doc || (t.len() > 3 && t.ends_with("\"\"\"")));
            continue;
        }
        if in_doc || t.is_empty() || !line.starts_with('\t') || line.starts_with("\t\t") {
            continue;
        }
        let name: String = t.chars().take_while(|c| c.is_alphanumeric()).collect();
        if !name.is_empty() {
            out.push(name);
        }
    }
    out
}

/// Guestpass started as `serve --demo` does, on a fresh database: `app::start` builds the demo
/// organization (`src/demo.rs`). The demo is then seeded once more, as a restart would, which finds
/// it and answers new tokens and its ids; the `TestApp`'s admin, organization and site are the demo's
/// (`admin@demo.example`, `demo-company`, `Wiki`).
pub async fn spawn_demo() -> (TestApp, guestpass::demo::Demo) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("TEST_LOG").unwrap_or_else(|_| "error".into()))
        .with_test_writer()
        .try_init();
    let db = TestDb::new();
    let outbox = std::env::temp_dir().join(format!("gp-outbox-{}", uuid::Uuid::new_v4().simple()));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut config = test_config(&db, &AppOptions::default(), &outbox);
    let port = listener.local_addr().unwrap().port();
    config.public_url = format!("http://127.0.0.1:{port}");
    config.bind = format!("127.0.0.1:{port}");
    let clock = Clock::default();
    let mut run = RunOptions::from_config(&config);
    run.demo = true;
    run.worker.poll = Duration::from_millis(200);
    let running = app::start(config, run, clock.clone(), Some(listener))
        .await
        .expect("the demo starts");
    let state = running.state.clone();
    let demo = guestpass::demo::seed(&state)
        .await
        .expect("a restart finds the demo");
    let app = TestApp {
        db,
        address: format!("http://127.0.0.1:{port}"),
        state,
        clock,
        admin_token: demo.admin_token.clone(),
        admin_id: demo.admin_id.to_string(),
        org_id: demo.organization_id.to_string(),
        site_id: demo.site_id.to_string(),
        outbox,
        running: Some(running),
        http: awc::Client::builder()
            .timeout(Duration::from_secs(60))
            .finish(),
    };
    (app, demo)
}
