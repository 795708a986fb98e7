//! Who may do what: the caller behind a token, their standing on a site, effective roles and seat
//! counts. The role rule itself lives in `domain::roles`; this module only gathers the facts.

use crate::auth::tokens::{TokenKind, hash_token};
use crate::db::schema::*;
use crate::domain::ProductRole;
use crate::domain::authorization::{Grants, Person, SiteAction, Standing, Viewer};
use crate::domain::policy::{self, ApiTokenAccess, ExternalPolicy, TwoStep};
use crate::domain::seats::Counts;
use crate::domain::status::UserStatus;
use crate::error::{AppError, AppResult};
use crate::store::models::{Site, Space, User};
use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Nullable, Uuid as SqlUuid};
use uuid::Uuid;

/// The authenticated person behind a request.
#[derive(Clone, Debug)]
pub struct Caller {
    pub user: User,
    pub org_admin: bool,
    pub via: TokenKind,
    /// The session used, when signed in with a session token.
    pub session_id: Option<Uuid>,
    /// Their email domain is not one the organization verified.
    pub external: bool,
    /// The organization's policy for external users.
    pub policy: ExternalPolicy,
}

impl Caller {
    /// An external user whose verification period has ended: they reach only `me` and re-verification.
    pub fn must_reverify(&self, now: DateTime<Utc>) -> bool {
        self.external
            && policy::verified_until(self.user.verified_at, self.user.created_at, &self.policy)
                <= now
    }

    /// An external user's API token while the policy blocks them.
    pub fn api_token_blocked(&self) -> bool {
        self.external
            && self.via == TokenKind::Api
            && self.policy.api_token_access == ApiTokenAccess::Blocked
    }
}

#[derive(QueryableByName)]
struct AccountRow {
    #[diesel(embed)]
    user: User,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    org_admin: bool,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    external: bool,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    any_access: bool,
    #[diesel(sql_type = Nullable<diesel::sql_types::Text>)]
    two_step: Option<TwoStep>,
    #[diesel(sql_type = Nullable<diesel::sql_types::Integer>)]
    interval: Option<i32>,
    #[diesel(sql_type = Nullable<diesel::sql_types::Text>)]
    api_token_access: Option<ApiTokenAccess>,
    #[diesel(sql_type = Nullable<diesel::sql_types::Integer>)]
    idle: Option<i32>,
}

impl AccountRow {
    /// The organization's external user policy, from the row's policy columns.
    fn policy(&self) -> ExternalPolicy {
        policy_from_row(
            self.two_step,
            self.interval,
            self.api_token_access,
            self.idle,
        )
    }
}

/// Whether the account `u` has access anywhere: an organization or site admin, or a maintained
/// role on some site (`domain::access::has_any_access`, over the engine's rows).
const ANY_ACCESS: &str = "(EXISTS (SELECT 1 FROM org_admins WHERE user_id = u.id)
             OR EXISTS (SELECT 1 FROM site_admins WHERE user_id = u.id)
             OR EXISTS (SELECT 1 FROM site_members WHERE user_id = u.id))";

/// Whether an active account still has access anywhere; a deactivated or missing one has none.
pub fn has_access_anywhere(conn: &mut PgConnection, user_id: Uuid) -> AppResult<bool> {
    crate::store::changes::state::has_access_anywhere(conn, user_id)
}

/// An active account with everything a request needs to know about its standing, in one statement.
fn standing(conn: &mut PgConnection, user_id: Uuid) -> AppResult<Option<AccountRow>> {
    Ok(diesel::sql_query(format!(
        "SELECT u.id, u.organization_id, u.email, u.email_normalized, u.display_name, u.password_hash,
                u.status, u.invited_by, u.two_step_required, u.created_at, u.verified_at, u.last_active_at,
                u.email_domain,
           EXISTS (SELECT 1 FROM org_admins oa WHERE oa.organization_id = u.organization_id AND oa.user_id = u.id) AS org_admin,
           u.external,
           {ANY_ACCESS} AS any_access,
           p.two_step, p.reverification_interval_minutes AS interval, p.api_token_access,
           p.session_idle_timeout_minutes AS idle
         FROM users u LEFT JOIN external_user_policies p ON p.organization_id = u.organization_id
         WHERE u.id = $1 AND u.status = $2"
    ))
    .bind::<SqlUuid, _>(user_id)
    .bind::<diesel::sql_types::Text, _>(UserStatus::Active)
    .get_result(conn)
    .optional()?)
}

/// The person a background job acts for (a bulk upload's uploader), with their standing now: `None`
/// once they are deactivated or gone, so their queued work stops with their access.
pub fn acting_as(conn: &mut PgConnection, user_id: Uuid) -> AppResult<Option<Caller>> {
    Ok(standing(conn, user_id)?.map(|st| Caller {
        policy: st.policy(),
        user: st.user,
        org_admin: st.org_admin,
        via: TokenKind::Session,
        session_id: None,
        external: st.external,
    }))
}

/// A policy row's columns as the domain type (defaults when the organization has none).
pub fn policy_from_row(
    two_step: Option<TwoStep>,
    interval: Option<i32>,
    api_token_access: Option<ApiTokenAccess>,
    idle: Option<i32>,
) -> ExternalPolicy {
    let d = ExternalPolicy::default();
    ExternalPolicy {
        two_step: two_step.unwrap_or(d.two_step),
        reverification_interval_minutes: interval.unwrap_or(d.reverification_interval_minutes),
        api_token_access: api_token_access.unwrap_or(d.api_token_access),
        session_idle_timeout_minutes: idle,
    }
}

/// Looks up an active account by bearer token. Unknown, revoked and expired tokens are all `None`,
/// and so is a session unused for `idle` (or, for an external user, for the policy's shorter idle
/// timeout), and an API token of someone who has access nowhere. Activity is recorded cheaply: a
/// token's last use at most once a minute, a person's last activity at most once an hour.
pub fn authenticate(
    conn: &mut PgConnection,
    token: &str,
    idle: Duration,
    now: DateTime<Utc>,
) -> AppResult<Option<Caller>> {
    let Some(kind) = TokenKind::of(token) else {
        return Ok(None);
    };
    let Some((token_id, user_id, last_used)) = live_token(conn, kind, token, idle, now)? else {
        return Ok(None);
    };
    let Some(st) = standing(conn, user_id)? else {
        return Ok(None);
    };
    let policy = st.policy();
    if kind == TokenKind::Api && !st.any_access {
        return Ok(None);
    }
    if kind == TokenKind::Session
        && policy::session_idle_too_long(st.external, &policy, last_used, now)
    {
        return Ok(None);
    }
    record_use(conn, kind, token_id, last_used, &st.user, now)?;
    Ok(Some(Caller {
        user: st.user,
        org_admin: st.org_admin,
        via: kind,
        session_id: (kind == TokenKind::Session).then_some(token_id),
        external: st.external,
        policy,
    }))
}

/// A live token's id, its owner, and when it was last used (`None`: an API token never used).
type LiveToken = (Uuid, Uuid, Option<DateTime<Utc>>);

/// The token's row, if it is live: a session not revoked, not expired and used within `idle`; an
/// API token not revoked and not expired.
fn live_token(
    conn: &mut PgConnection,
    kind: TokenKind,
    token: &str,
    idle: Duration,
    now: DateTime<Utc>,
) -> AppResult<Option<LiveToken>> {
    let hash = hash_token(token);
    Ok(match kind {
        TokenKind::Session => {
            let row: Option<(Uuid, Uuid, DateTime<Utc>)> = sessions::table
                .filter(sessions::token_hash.eq(&hash))
                .filter(sessions::revoked_at.is_null())
                .filter(sessions::expires_at.gt(now))
                .filter(sessions::last_seen_at.gt(now - idle))
                .select((sessions::id, sessions::user_id, sessions::last_seen_at))
                .first(conn)
                .optional()?;
            row.map(|(sid, uid, last_seen)| (sid, uid, Some(last_seen)))
        }
        TokenKind::Api => api_tokens::table
            .filter(api_tokens::token_hash.eq(&hash))
            .filter(api_tokens::revoked_at.is_null())
            .filter(
                api_tokens::expires_at
                    .is_null()
                    .or(api_tokens::expires_at.gt(now)),
            )
            .select((
                api_tokens::id,
                api_tokens::user_id,
                api_tokens::last_used_at,
            ))
            .first(conn)
            .optional()?,
    })
}

/// Records a token's use and its owner's activity, cheaply: the token's last use at most once a
/// minute, the person's last activity at most once an hour (each a write on a hot row otherwise).
fn record_use(
    conn: &mut PgConnection,
    kind: TokenKind,
    token_id: Uuid,
    last_used: Option<DateTime<Utc>>,
    user: &User,
    now: DateTime<Utc>,
) -> AppResult<()> {
    if last_used.is_none_or(|t| now - t > Duration::minutes(1)) {
        match kind {
            TokenKind::Session => diesel::update(sessions::table.find(token_id))
                .set(sessions::last_seen_at.eq(now))
                .execute(conn)?,
            TokenKind::Api => diesel::update(api_tokens::table.find(token_id))
                .set(api_tokens::last_used_at.eq(now))
                .execute(conn)?,
        };
    }
    if user
        .last_active_at
        .is_none_or(|t| now - t > Duration::hours(1))
    {
        diesel::update(users::table.find(user.id))
            .set(users::last_active_at.eq(now))
            .execute(conn)?;
    }
    Ok(())
}

pub fn is_org_admin(conn: &mut PgConnection, org: Uuid, user: Uuid) -> AppResult<bool> {
    Ok(diesel::select(diesel::dsl::exists(
        org_admins::table
            .filter(org_admins::organization_id.eq(org))
            .filter(org_admins::user_id.eq(user)),
    ))
    .get_result(conn)?)
}

/// A caller's standing on one site, with the site's row. The decisions (`is_admin`,
/// `sees_whole_site`, ...) are the policy's, on [`Standing`].
#[derive(Clone, Debug)]
pub struct SiteAccess {
    pub site: Site,
    pub standing: Standing,
}

impl std::ops::Deref for SiteAccess {
    type Target = Standing;
    fn deref(&self) -> &Standing {
        &self.standing
    }
}

impl SiteAccess {
    /// `FORBIDDEN` unless the policy lets this standing make the change ([`Standing::may`]: the
    /// very decision `may_change` takes, and the `viewerCan*` fields answer).
    pub fn require(&self, action: SiteAction) -> AppResult<()> {
        if self.standing.may(action) {
            Ok(())
        } else {
            Err(AppError::Forbidden)
        }
    }

    /// The site's invites, roles, settings and seats ([`SiteAction::Manage`]: its admins).
    pub fn require_admin(&self) -> AppResult<()> {
        self.require(SiteAction::Manage)
    }
}

/// Loads a site of the caller's organization; any other id is `NOT_FOUND`, exactly like a missing one.
pub fn site_in_org(conn: &mut PgConnection, org: Uuid, site_id: Uuid) -> AppResult<Site> {
    sites::table
        .find(site_id)
        .filter(sites::organization_id.eq(org))
        .select(Site::as_select())
        .first(conn)
        .optional()?
        .ok_or(AppError::NotFound("Site"))
}

pub fn site_access(
    conn: &mut PgConnection,
    caller: &Caller,
    site_id: Uuid,
) -> AppResult<SiteAccess> {
    let site = site_in_org(conn, caller.user.organization_id, site_id)?;
    let standing = standings(
        conn,
        caller.user.id,
        caller.user.organization_id,
        caller.org_admin,
        Some(site_id),
    )?
    .into_iter()
    .next()
    .map(|(_, st)| st)
    .unwrap_or_default();
    Ok(SiteAccess { site, standing })
}

/// A person's standing on every site of their organization (or on `only` that one). Two short
/// statements from the query builder (prepared once per connection) rather than one hand-written
/// statement PostgreSQL would plan on every request.
fn standings(
    conn: &mut PgConnection,
    user_id: Uuid,
    org: Uuid,
    org_admin: bool,
    only: Option<Uuid>,
) -> AppResult<Vec<(Uuid, Standing)>> {
    // (site, maintained role, guest space, site admin grant)
    type Row = (Uuid, Option<i16>, Option<Uuid>, Option<Uuid>);
    let rows: Vec<Row> = sites::table
        .left_join(
            site_members::table.on(site_members::site_id
                .eq(sites::id)
                .and(site_members::user_id.eq(user_id))),
        )
        .left_join(
            site_admins::table.on(site_admins::site_id
                .eq(sites::id)
                .and(site_admins::user_id.eq(user_id))),
        )
        .filter(sites::organization_id.eq(org))
        .select((
            sites::id,
            site_members::role.nullable(),
            site_members::guest_space_id.nullable(),
            site_admins::user_id.nullable(),
        ))
        .order(sites::id)
        .load(conn)?;
    let spaces_of: Vec<(Uuid, Uuid)> = space_admins::table
        .inner_join(spaces::table)
        .filter(space_admins::user_id.eq(user_id))
        .select((spaces::site_id, space_admins::space_id))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter(|(site, ..)| only.is_none_or(|o| o == *site))
        .map(|(site, role, guest_space, site_admin)| {
            let g = Grants {
                site_admin: site_admin.is_some(),
                role: role.and_then(ProductRole::from_rank),
                guest_space,
                admin_spaces: spaces_of
                    .iter()
                    .filter(|(s, _)| *s == site)
                    .map(|(_, space)| *space)
                    .collect(),
            };
            (site, Standing::from_grants(org_admin, g))
        })
        .collect())
}

/// The facts the policy needs about whoever is asking: their standing on every site of their
/// organization, their inviter and their sponsors. Loaded once per request.
pub fn viewer(conn: &mut PgConnection, caller: &Caller) -> AppResult<Viewer> {
    let mut v = Viewer {
        user: caller.user.id,
        org: caller.user.organization_id,
        org_admin: caller.org_admin,
        sites: standings(
            conn,
            caller.user.id,
            caller.user.organization_id,
            caller.org_admin,
            None,
        )?,
        invited_by: caller.user.invited_by,
        sponsors: Vec::new(),
    };
    // A sponsor counts only on a site where the viewer is a guest.
    let guest_sites: Vec<Uuid> = v
        .sites
        .iter()
        .filter(|(_, st)| st.role == Some(ProductRole::Guest))
        .map(|(s, _)| *s)
        .collect();
    if !guest_sites.is_empty() {
        v.sponsors = guest_terms::table
            .filter(guest_terms::user_id.eq(caller.user.id))
            .filter(guest_terms::site_id.eq_any(&guest_sites))
            .filter(guest_terms::sponsor_id.is_not_null())
            .select(guest_terms::sponsor_id.assume_not_null())
            .load(conn)?;
    }
    Ok(v)
}

/// People as objects of the policy: where each of `ids` holds any grant. Two prepared statements
/// for a page, whatever its size.
pub fn persons(conn: &mut PgConnection, ids: &[Uuid]) -> AppResult<Vec<Person>> {
    let people: Vec<(Uuid, Uuid, Option<Uuid>)> = users::table
        .left_join(
            org_admins::table.on(org_admins::user_id
                .eq(users::id)
                .and(org_admins::organization_id.eq(users::organization_id))),
        )
        .filter(users::id.eq_any(ids))
        .select((
            users::id,
            users::organization_id,
            org_admins::user_id.nullable(),
        ))
        .load(conn)?;
    let present: Vec<(Uuid, Uuid)> = person_sites::table
        .filter(person_sites::user_id.eq_any(ids))
        .select((person_sites::user_id, person_sites::site_id))
        .load(conn)?;
    Ok(people
        .into_iter()
        .map(|(id, org, admin)| Person {
            id,
            org,
            org_admin: admin.is_some(),
            sites: present
                .iter()
                .filter(|(u, _)| *u == id)
                .map(|(_, s)| *s)
                .collect(),
        })
        .collect())
}

/// One person as an object of the policy (`NOT_FOUND` when there is no such account).
pub fn person(conn: &mut PgConnection, id: Uuid) -> AppResult<Person> {
    persons(conn, &[id])?
        .into_iter()
        .next()
        .ok_or(AppError::NotFound("User"))
}

/// What [`admin_grants`] answers: `(person, site)` for each site admin role, `(person, space)` for
/// each space admin role.
pub type AdminGrantRows = (Vec<(Uuid, Site)>, Vec<(Uuid, Space)>);

/// The admin grants of each of `ids`, as written (`setAdminRole`, `addSpaceAdmin`): the sites
/// they are a site admin of, by name, and the spaces they are a space admin of, by key. Two
/// prepared statements, whatever the number of people.
pub fn admin_grants(conn: &mut PgConnection, ids: &[Uuid]) -> AppResult<AdminGrantRows> {
    let sites: Vec<(Uuid, Site)> = site_admins::table
        .inner_join(sites::table.on(sites::id.eq(site_admins::site_id)))
        .filter(site_admins::user_id.eq_any(ids))
        .order((sites::name.asc(), sites::id.asc()))
        .select((site_admins::user_id, Site::as_select()))
        .load(conn)?;
    let spaces: Vec<(Uuid, Space)> = space_admins::table
        .inner_join(spaces::table)
        .filter(space_admins::user_id.eq_any(ids))
        .order((spaces::key.asc(), spaces::id.asc()))
        .select((space_admins::user_id, Space::as_select()))
        .load(conn)?;
    Ok((sites, spaces))
}

/// The admins of each of `spaces` (their space admin grants, as written), by email.
pub fn space_admins_of(conn: &mut PgConnection, spaces: &[Uuid]) -> AppResult<Vec<(Uuid, User)>> {
    Ok(space_admins::table
        .inner_join(users::table.on(users::id.eq(space_admins::user_id)))
        .filter(space_admins::space_id.eq_any(spaces))
        .order((users::email_normalized.asc(), users::id.asc()))
        .select((space_admins::space_id, User::as_select()))
        .load(conn)?)
}

/// Which of `ids` have an authenticator app enrolled and confirmed (sign-ins ask for its codes).
pub fn with_authenticator(conn: &mut PgConnection, ids: &[Uuid]) -> AppResult<Vec<Uuid>> {
    Ok(totp_credentials::table
        .filter(totp_credentials::user_id.eq_any(ids))
        .filter(totp_credentials::confirmed_at.is_not_null())
        .select(totp_credentials::user_id)
        .load(conn)?)
}

/// Sites the caller administers as a site admin.
pub fn admin_sites(conn: &mut PgConnection, user: Uuid) -> AppResult<Vec<Uuid>> {
    Ok(site_admins::table
        .filter(site_admins::user_id.eq(user))
        .select(site_admins::site_id)
        .load(conn)?)
}

/// A user's effective role on a site (`None`: no access, including deactivated accounts), as the
/// engine maintains it.
pub fn effective_role_of(
    conn: &mut PgConnection,
    site_id: Uuid,
    user_id: Uuid,
) -> AppResult<Option<ProductRole>> {
    crate::store::changes::state::role_of(conn, site_id, user_id)
}

/// The facts behind a person's seat on a site: their direct role, their groups' roles there (with the
/// groups), whether they were ever paid, whether the account is active.
pub fn billing(
    conn: &mut PgConnection,
    site_id: Uuid,
    user: &User,
) -> AppResult<crate::domain::billing::Billing<crate::store::models::Group>> {
    let direct: Option<i16> = product_roles::table
        .find((site_id, user.id))
        .select(product_roles::role)
        .first(conn)
        .optional()?;
    let groups: Vec<(crate::store::models::Group, i16)> = group_members::table
        .inner_join(groups::table)
        .inner_join(
            group_site_roles::table.on(group_site_roles::group_id.eq(group_members::group_id)),
        )
        .filter(group_members::user_id.eq(user.id))
        .filter(group_site_roles::site_id.eq(site_id))
        .order(groups::name_normalized.asc())
        .select((
            crate::store::models::Group::as_select(),
            group_site_roles::role,
        ))
        .load(conn)?;
    let groups: Vec<_> = groups
        .into_iter()
        .filter_map(|(g, r)| Some((g, ProductRole::from_rank(r)?)))
        .collect();
    Ok(crate::domain::billing::billing(
        direct.and_then(ProductRole::from_rank),
        &groups,
        is_former_paid(conn, site_id, user.id)?,
        user.is_active(),
    ))
}

/// What occupies the site at `now`, from the maintained counters. Call it under [`lock_site`] when
/// the answer decides a write (the engine does).
pub fn counts(conn: &mut PgConnection, site_id: Uuid, now: DateTime<Utc>) -> AppResult<Counts> {
    crate::store::changes::state::counts(conn, site_id, now)
}

/// Takes the site's row lock: every change that can add a seat or a guest on a site holds it, so the
/// count-check-write sequence is serialized per site and the seat rules hold under any concurrency.
pub fn lock_site(conn: &mut PgConnection, site_id: Uuid) -> AppResult<Site> {
    Ok(sites::table
        .find(site_id)
        .for_update()
        .select(Site::as_select())
        .first(conn)?)
}

pub fn is_former_paid(conn: &mut PgConnection, site_id: Uuid, user_id: Uuid) -> AppResult<bool> {
    Ok(diesel::select(diesel::dsl::exists(
        site_paid_history::table.find((site_id, user_id)),
    ))
    .get_result(conn)?)
}
