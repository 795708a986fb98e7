//! `serve --demo`: an organization worth exploring in GraphiQL, and the one every ```graphql example
//! of README.md runs against (`tests/api/foundation.rs`).
//!
//! Everything is made with the functions the API's mutations call (bootstrap, `inviteUsers` and
//! acceptance, groups, spaces, pages, a bulk invite file worked through by the job's own step), so
//! seat counters, the maintained access state and the audit trail are exactly what real use leaves.
//! Some of it happened "earlier" (the store takes the time of each change): a guest who accepted 28
//! days ago is due to verify their address again, an invite from 10 days ago has expired.
//!
//! On a database that already holds the demo organization nothing is built again: `seed` only
//! issues new API tokens for the admin and the guest, so restarting `serve --demo` works.

use crate::auth::tokens::{LinkPurpose, LinkSigner};
use crate::db::schema::{groups, organizations, sites, spaces, users};
use crate::domain::{EmailAddress, ProductRole};
use crate::error::{AppError, AppResult};
use crate::graphql::ids::{Kind, global};
use crate::state::AppState;
use crate::store::access::{self, Caller};
use crate::store::invites::{self, Credential, DeliveryPolicy, NewInvites};
use crate::store::models::{Invite, User};
use crate::store::{bulk, content, groups as group_store, org, signin};
use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use serde_json::json;
use uuid::Uuid;

pub const ORGANIZATION: &str = "Demo Company";
/// The organization's slug (`login(input: { organization })`).
pub const ORGANIZATION_SLUG: &str = "demo-company";
pub const ADMIN_EMAIL: &str = "admin@demo.example";
/// The guest whose token is printed: external, in the space `ENG` of `Wiki`, their access ending 3
/// days after the demo was built.
pub const GUEST_EMAIL: &str = "lee@partner.example";
/// The password of every account the demo creates (not the admin's: it has none, as bootstrapped).
pub const PASSWORD: &str = "demo passphrase 2026";
const WIKI: &str = "Wiki";
const MARKETING: &str = "Marketing";

/// What `serve --demo` prints: tokens, and the ids README's examples take as GraphQL variables.
#[derive(Clone, Debug)]
pub struct Demo {
    /// Whether this run built the demo (false: it was already in the database).
    pub created: bool,
    pub organization_id: Uuid,
    /// The site `Wiki`.
    pub site_id: Uuid,
    pub admin_id: Uuid,
    /// A new API token of the organization admin.
    pub admin_token: String,
    /// A new API token of the guest `lee@partner.example`.
    pub guest_token: String,
    /// GraphiQL's Variables: `site`, `otherSite`, `space`, `group`, `guest`, `intern` (global ids).
    pub variables: serde_json::Value,
}

/// Builds the demo organization unless it exists, issues the tokens and prints how to use them.
pub async fn seed(state: &AppState) -> AppResult<Demo> {
    let now = state.clock.now();
    let password_hash = state.passwords.hash(PASSWORD.to_string()).await?;
    let policy = state.delivery.clone();
    let signer = state.signer.clone();
    let demo = state
        .db
        .tx(move |c| {
            // Two processes started with --demo on one database build it once.
            diesel::sql_query("SELECT pg_advisory_xact_lock(hashtext('guestpass-demo'))")
                .execute(c)?;
            let exists: bool = diesel::select(diesel::dsl::exists(
                organizations::table.filter(organizations::slug.eq(ORGANIZATION_SLUG)),
            ))
            .get_result(c)?;
            if !exists {
                Build {
                    signer: &signer,
                    policy: &policy,
                    password_hash: &password_hash,
                    now,
                }
                .run(c)?;
            }
            issue(c, !exists, now)
        })
        .await?;
    announce(&demo, &state.config.bind);
    Ok(demo)
}

fn address(s: &str) -> AppResult<EmailAddress> {
    EmailAddress::parse(s).map_err(|_| AppError::internal(format!("demo address {s}")))
}

/// Finds the demo's key objects and issues the two tokens.
fn issue(conn: &mut PgConnection, created: bool, now: DateTime<Utc>) -> AppResult<Demo> {
    let not_demo = || {
        AppError::internal(format!(
            "the organization `{ORGANIZATION_SLUG}` is not the demo's: run `serve --demo` on a fresh database"
        ))
    };
    let org: Uuid = organizations::table
        .filter(organizations::slug.eq(ORGANIZATION_SLUG))
        .select(organizations::id)
        .first(conn)?;
    let site = |conn: &mut PgConnection, name: &str| -> AppResult<Uuid> {
        sites::table
            .filter(sites::organization_id.eq(org))
            .filter(sites::name.eq(name))
            .select(sites::id)
            .first(conn)
            .optional()?
            .ok_or_else(not_demo)
    };
    let user = |conn: &mut PgConnection, email: &str| -> AppResult<User> {
        users::table
            .filter(users::organization_id.eq(org))
            .filter(users::email_normalized.eq(email))
            .select(User::as_select())
            .first(conn)
            .optional()?
            .ok_or_else(not_demo)
    };
    let wiki = site(conn, WIKI)?;
    let marketing = site(conn, MARKETING)?;
    let eng: Uuid = spaces::table
        .filter(spaces::site_id.eq(wiki))
        .filter(spaces::key.eq("ENG"))
        .select(spaces::id)
        .first(conn)
        .optional()?
        .ok_or_else(not_demo)?;
    let writers: Uuid = groups::table
        .filter(groups::organization_id.eq(org))
        .filter(groups::name_normalized.eq("writers"))
        .select(groups::id)
        .first(conn)
        .optional()?
        .ok_or_else(not_demo)?;
    let admin = user(conn, ADMIN_EMAIL)?;
    let guest = user(conn, GUEST_EMAIL)?;
    let intern = user(conn, "ines@demo.example")?;
    let (admin_token, _) = signin::create_api_token(conn, &admin, "demo", None, now)?;
    let (guest_token, _) = signin::create_api_token(conn, &guest, "demo", None, now)?;
    Ok(Demo {
        created,
        organization_id: org,
        site_id: wiki,
        admin_id: admin.id,
        admin_token,
        guest_token,
        variables: json!({
            "site": global(Kind::Site, wiki),
            "otherSite": global(Kind::Site, marketing),
            "space": global(Kind::Space, eng),
            "group": global(Kind::Group, writers),
            "guest": global(Kind::User, guest.id),
            "intern": global(Kind::User, intern.id),
        }),
    })
}

/// Shown once, on stderr: the admin's token is the first line that starts with `gp_`
/// (`scripts/fuzz-graphql` reads it there).
fn announce(demo: &Demo, bind: &str) {
    let state = if demo.created {
        "built"
    } else {
        "already in this database; nothing added but new tokens"
    };
    eprintln!(
        "demo: organization `{ORGANIZATION_SLUG}` ({state}): sites {WIKI} and {MARKETING}, spaces, paid users, guests, groups, invites, a bulk invite and their audit trail"
    );
    eprintln!("demo: organization admin {ADMIN_EMAIL}, API token:");
    eprintln!("{}", demo.admin_token);
    eprintln!(
        "demo: guest {GUEST_EMAIL} (external, in the space ENG of {WIKI}, access ending soon), API token:"
    );
    eprintln!("{}", demo.guest_token);
    eprintln!(
        "demo: open http://{bind}/graphiql, put {{\"Authorization\": \"Bearer <one of the tokens>\"}} in the Headers tab and, for README.md's examples, this in the Variables tab:"
    );
    eprintln!("{}", demo.variables);
    eprintln!(
        "demo: every other account's password is `{PASSWORD}` (login(input: {{ organization: \"{ORGANIZATION_SLUG}\", email, password }}))"
    );
}

/// The demo's story, told through the store in the order it happened.
struct Build<'a> {
    signer: &'a LinkSigner,
    policy: &'a DeliveryPolicy,
    password_hash: &'a str,
    now: DateTime<Utc>,
}

/// One invite as `inviteUsers` takes it.
struct Ask<'a> {
    site: Uuid,
    email: &'a str,
    role: Option<ProductRole>,
    space: Option<Uuid>,
    groups: Vec<Uuid>,
    message: Option<&'a str>,
    access_ends_at: Option<DateTime<Utc>>,
}

impl<'a> Ask<'a> {
    fn new(site: Uuid, email: &'a str, role: Option<ProductRole>) -> Self {
        Self {
            site,
            email,
            role,
            space: None,
            groups: Vec::new(),
            message: None,
            access_ends_at: None,
        }
    }
}

impl Build<'_> {
    fn days_ago(&self, days: i64) -> DateTime<Utc> {
        self.now - Duration::days(days)
    }

    fn invite(
        &self,
        conn: &mut PgConnection,
        by: &Caller,
        ask: Ask<'_>,
        at: DateTime<Utc>,
    ) -> AppResult<Invite> {
        let mut made = invites::invite_users(
            conn,
            by,
            NewInvites {
                site_id: ask.site,
                emails: vec![address(ask.email)?],
                role: ask.role,
                group_ids: ask.groups,
                space_id: ask.space,
                personal_message: ask.message.map(str::to_string),
                expires_in_days: None,
                access_ends_at: ask.access_ends_at,
                access_days: None,
            },
            self.policy,
            at,
        )?;
        made.pop()
            .ok_or_else(|| AppError::internal("an invite made nothing"))
    }

    /// Accepts an invite through its link token, as a new account with the demo password.
    fn accept(
        &self,
        conn: &mut PgConnection,
        invite: &Invite,
        name: &str,
        at: DateTime<Utc>,
    ) -> AppResult<User> {
        let token = self
            .signer
            .sign(LinkPurpose::Invite, invite.id, &invite.token_nonce);
        let credential = Credential::NewAccount {
            display_name: name.to_string(),
            password_hash: self.password_hash.to_string(),
        };
        Ok(invites::accept(conn, self.signer, &token, credential, None, at)?.0)
    }

    /// Invited `invited` days ago, accepted `accepted` days ago.
    fn join(
        &self,
        conn: &mut PgConnection,
        by: &Caller,
        ask: Ask<'_>,
        name: &str,
        invited: i64,
        accepted: i64,
    ) -> AppResult<User> {
        let invite = self.invite(conn, by, ask, self.days_ago(invited))?;
        self.accept(conn, &invite, name, self.days_ago(accepted))
    }

    fn run(&self, conn: &mut PgConnection) -> AppResult<()> {
        use ProductRole::{Guest, User as Paid};
        let start = self.days_ago(30);
        let boot = |conn: &mut PgConnection, site: &str, limit: i32| {
            org::bootstrap(
                conn,
                org::BootstrapInput {
                    org_name: ORGANIZATION.into(),
                    site_name: site.into(),
                    admin_email: address(ADMIN_EMAIL)?,
                    user_limit: Some(limit),
                    verified_domains: vec!["demo.example".into()],
                },
                start,
            )
        };
        let first = boot(conn, WIKI, 50)?;
        let (wiki, marketing) = (first.site.id, boot(conn, MARKETING, 20)?.site.id);
        let admin = access::acting_as(conn, first.admin.id)?
            .ok_or_else(|| AppError::internal("the demo admin has no standing"))?;

        // Spaces and pages.
        let space = |conn: &mut PgConnection, site, key, name| {
            content::create_space(conn, &admin, site, key, name, start)
        };
        let eng = space(conn, wiki, "ENG", "Engineering")?.id;
        let design = space(conn, wiki, "DES", "Design reviews")?.id;
        let campaign = space(conn, marketing, "CAMP", "Spring campaign")?.id;
        for ((space, title, body), minutes) in [
            (
                eng,
                "Welcome",
                "Guests of this space can read and add pages here.",
            ),
            (
                eng,
                "Release checklist",
                "1. Freeze the branch\n2. Run the tests\n3. Tag",
            ),
            (
                design,
                "How we review",
                "Comment on the page; the author answers within two days.",
            ),
            (
                campaign,
                "Campaign brief",
                "Audience, message, channels and the launch date.",
            ),
        ]
        .into_iter()
        .zip(1..)
        {
            let at = start + Duration::minutes(minutes);
            content::create_page(conn, &admin, space, title, body, at)?;
        }

        // Paid users, and a group that gives its members a paid role on both sites.
        let dana = self.join(
            conn,
            &admin,
            Ask::new(wiki, "dana@demo.example", Some(Paid)),
            "Dana Lee",
            30,
            29,
        )?;
        self.join(
            conn,
            &admin,
            Ask::new(wiki, "sam@demo.example", Some(Paid)),
            "Sam Ortiz",
            30,
            29,
        )?;
        self.join(
            conn,
            &admin,
            Ask::new(marketing, "maria@demo.example", Some(Paid)),
            "Maria Rossi",
            30,
            28,
        )?;
        let at = self.days_ago(25);
        let writers = group_store::create(conn, &admin, "Writers", at)?.id;
        group_store::set_site_role(conn, &admin, writers, wiki, Some(Paid), false, at)?;
        group_store::set_site_role(conn, &admin, writers, marketing, Some(Paid), false, at)?;
        group_store::add_members(conn, &admin, writers, vec![dana.id], false, at)?;
        // A guest group: its members are guests of the wiki.
        let reviewers = group_store::create(conn, &admin, "Partner reviewers", at)?.id;
        group_store::set_site_role(conn, &admin, reviewers, wiki, Some(Guest), false, at)?;

        // Guests, oldest first.
        let guest = |email, space: Uuid, message: Option<&'static str>| Ask {
            space: Some(space),
            message,
            ..Ask::new(wiki, email, Some(Guest))
        };
        // Verified 28 days ago: their 30-day period ends in 2 days, inside the reminder's lead time.
        self.join(
            conn,
            &admin,
            guest("kim@agency.example", eng, None),
            "Kim Park",
            29,
            28,
        )?;
        // An internal guest: demo.example is verified.
        self.join(
            conn,
            &admin,
            guest("ines@demo.example", design, Some("Your internship space.")),
            "Ines Duarte",
            14,
            13,
        )?;
        self.join(
            conn,
            &admin,
            Ask {
                site: marketing,
                ..guest("pat@freelance.example", campaign, None)
            },
            "Pat Kowalski",
            12,
            11,
        )?;
        // Never accepted: expired 3 days ago.
        self.invite(
            conn,
            &admin,
            guest("old.contact@partner.example", eng, None),
            self.days_ago(10),
        )?;
        // A guest through the guest group (no role of their own).
        self.join(
            conn,
            &admin,
            Ask {
                role: None,
                groups: vec![reviewers],
                ..guest("ravi@review.example", design, None)
            },
            "Ravi Menon",
            8,
            7,
        )?;
        // A guest without a space: they reach no content until assigned one.
        self.join(
            conn,
            &admin,
            Ask::new(wiki, "noor@partner.example", Some(Guest)),
            "Noor Haddad",
            6,
            5,
        )?;
        // The printed guest: their access ends in 3 days; they wrote a page of their own.
        let lee = self.join(
            conn,
            &admin,
            Ask {
                access_ends_at: Some(self.now + Duration::days(3)),
                ..guest(
                    GUEST_EMAIL,
                    eng,
                    Some("Welcome aboard!\nThe spec is in the Welcome page."),
                )
            },
            "Lee Chen",
            3,
            2,
        )?;
        let lee = access::acting_as(conn, lee.id)?
            .ok_or_else(|| AppError::internal("the demo guest has no standing"))?;
        content::create_page(
            conn,
            &lee,
            eng,
            "Integration notes",
            "What our API needs from yours.",
            self.days_ago(1),
        )?;

        // Open invites.
        let yesterday = self.days_ago(1);
        self.invite(
            conn,
            &admin,
            guest(
                "jo@partner.example",
                eng,
                Some("Join us for the integration."),
            ),
            yesterday,
        )?;
        self.invite(
            conn,
            &admin,
            Ask::new(wiki, "new.hire@demo.example", Some(Paid)),
            yesterday,
        )?;
        self.invite(
            conn,
            &admin,
            Ask {
                site: marketing,
                ..guest("sasha@freelance.example", campaign, None)
            },
            yesterday,
        )?;

        // A bulk invite file, worked through as its job does: two rows invited, one refused (Lee is
        // already a guest), one invalid (no such space).
        let at = self.now - Duration::hours(1);
        let csv = "email,role,space key,personal message\n\
                   mei@vendor.example,GUEST,ENG,Welcome to the launch review\n\
                   tom@vendor.example,GUEST,,\n\
                   lee@partner.example,GUEST,ENG,\n\
                   ana@vendor.example,GUEST,NOPE,\n";
        let rows = crate::domain::bulk::parse(csv.as_bytes())
            .map_err(|e| AppError::internal(format!("the demo's bulk file: {e}")))?;
        let (file, _) = bulk::create(conn, &admin, wiki, rows, at)?;
        loop {
            match bulk::step(conn, file.id, self.policy, at)? {
                bulk::Step::Row { .. } => {}
                bulk::Step::Done => return Ok(()),
                bulk::Step::Paused { .. } => {
                    return Err(AppError::internal("the demo's bulk file paused"));
                }
            }
        }
    }
}
