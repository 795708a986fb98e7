//! Organizations, sites and their first admin (the `bootstrap` command and the demo seed).

use crate::auth::tokens::{TokenKind, new_bearer};
use crate::db::schema::*;
use crate::domain::{EmailAddress, ProductRole};
use crate::error::{AppError, AppResult};
use crate::store::access;
use crate::store::audit::{self, Audit};
use crate::store::changes;
use crate::store::models::{NewUser, Organization, Site, User};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

pub struct BootstrapInput {
    pub org_name: String,
    pub site_name: String,
    pub admin_email: EmailAddress,
    pub user_limit: Option<i32>,
    pub verified_domains: Vec<String>,
}

pub struct Bootstrapped {
    pub organization: Organization,
    pub site: Site,
    pub admin: User,
    /// A new API token for the admin, shown once.
    pub api_token: String,
}

/// Turns an organization name into its slug (`Acme Corp` -> `acme-corp`).
pub fn slugify(name: &str) -> String {
    let mut slug = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let slug: String = slug.trim_matches('-').chars().take(63).collect();
    if slug.is_empty() { "org".into() } else { slug }
}

/// Creates, or finds by name, an organization, a site and its first admin; idempotent.
pub fn bootstrap(
    conn: &mut PgConnection,
    input: BootstrapInput,
    now: DateTime<Utc>,
) -> AppResult<Bootstrapped> {
    conn.transaction(|conn| {
        let org = ensure_org(conn, &input.org_name, &input.verified_domains, now)?;
        let site = ensure_site(conn, org.id, &input.site_name, input.user_limit, now)?;
        let admin = ensure_user(conn, org.id, &input.admin_email, now)?;
        diesel::insert_into(org_admins::table)
            .values((
                org_admins::organization_id.eq(org.id),
                org_admins::user_id.eq(admin.id),
                org_admins::granted_at.eq(now),
            ))
            .on_conflict_do_nothing()
            .execute(conn)?;
        changes::grants::set_direct_role(
            conn,
            site.id,
            admin.id,
            Some(ProductRole::ProductAdmin),
            now,
        )?;
        changes::grants::record_paid(conn, site.id, &[admin.id], now)?;
        crate::store::changes::lock_sites(conn, &[site.id])?;
        crate::store::changes::state::refresh(conn, &[site.id], &[admin.id], now)?;
        let api_token = create_api_token(conn, admin.id, "bootstrap", None, now)?;
        audit::record(
            conn,
            Audit::new(org.id, None, "organization.bootstrap", now)
                .target("site", site.id)
                .site(site.id)
                .after(serde_json::json!({ "admin": admin.id, "site": site.name })),
        )?;
        Ok(Bootstrapped {
            organization: org,
            site,
            admin,
            api_token,
        })
    })
}

/// The organization of this name (by its slug), created if missing, with these verified domains
/// added (none taken away).
fn ensure_org(
    conn: &mut PgConnection,
    name: &str,
    domains: &[String],
    now: DateTime<Utc>,
) -> AppResult<Organization> {
    let slug = slugify(name);
    diesel::insert_into(organizations::table)
        .values((
            organizations::name.eq(name),
            organizations::slug.eq(&slug),
            organizations::created_at.eq(now),
        ))
        .on_conflict(organizations::slug)
        .do_nothing()
        .execute(conn)?;
    let org: Organization = organizations::table
        .filter(organizations::slug.eq(&slug))
        .select(Organization::as_select())
        .first(conn)?;
    for d in domains {
        diesel::insert_into(verified_domains::table)
            .values((
                verified_domains::organization_id.eq(org.id),
                verified_domains::domain.eq(d.to_lowercase()),
                verified_domains::created_at.eq(now),
            ))
            .on_conflict_do_nothing()
            .execute(conn)?;
    }
    Ok(org)
}

/// The organization's site of this name, created if missing (100 seats unless `user_limit` says),
/// and given `user_limit` when one is asked for.
fn ensure_site(
    conn: &mut PgConnection,
    org: Uuid,
    name: &str,
    user_limit: Option<i32>,
    now: DateTime<Utc>,
) -> AppResult<Site> {
    diesel::insert_into(sites::table)
        .values((
            sites::organization_id.eq(org),
            sites::name.eq(name),
            sites::user_limit.eq(user_limit.unwrap_or(100)),
            sites::created_at.eq(now),
        ))
        .on_conflict((sites::organization_id, sites::name))
        .do_nothing()
        .execute(conn)?;
    let site: Site = sites::table
        .filter(sites::organization_id.eq(org))
        .filter(sites::name.eq(name))
        .select(Site::as_select())
        .first(conn)?;
    match user_limit {
        Some(limit) if limit != site.user_limit => Ok(diesel::update(sites::table.find(site.id))
            .set(sites::user_limit.eq(limit))
            .returning(Site::as_returning())
            .get_result(conn)?),
        _ => Ok(site),
    }
}

/// The organization's account of this address, created if missing: named after the address's local
/// part, with no password (`bootstrap` hands the admin an API token instead).
fn ensure_user(
    conn: &mut PgConnection,
    org: Uuid,
    email: &EmailAddress,
    now: DateTime<Utc>,
) -> AppResult<User> {
    let local = email
        .as_str()
        .split('@')
        .next()
        .unwrap_or("Admin")
        .to_string();
    diesel::insert_into(users::table)
        .values(&NewUser {
            organization_id: org,
            email: email.as_str(),
            email_normalized: email.normalized(),
            display_name: &local,
            password_hash: None,
            invited_by: None,
            created_at: now,
            external: crate::store::changes::state::is_external(conn, org, email.domain())?,
        })
        .on_conflict((users::organization_id, users::email_normalized))
        .do_nothing()
        .execute(conn)?;
    Ok(users::table
        .filter(users::organization_id.eq(org))
        .filter(users::email_normalized.eq(email.normalized()))
        .select(User::as_select())
        .first(conn)?)
}

/// Stores a new API token's hash and returns the token (shown once).
pub fn create_api_token(
    conn: &mut PgConnection,
    user_id: Uuid,
    name: &str,
    expires_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> AppResult<String> {
    let (token, hash) = new_bearer(TokenKind::Api);
    diesel::insert_into(api_tokens::table)
        .values((
            api_tokens::user_id.eq(user_id),
            api_tokens::name.eq(name),
            api_tokens::token_hash.eq(hash),
            api_tokens::created_at.eq(now),
            api_tokens::expires_at.eq(expires_at),
        ))
        .execute(conn)?;
    Ok(token)
}

/// Starts a session for a user and returns its token (shown once).
pub fn create_session(
    conn: &mut PgConnection,
    user_id: Uuid,
    lifetime: chrono::Duration,
    now: DateTime<Utc>,
) -> AppResult<String> {
    let (token, hash) = new_bearer(TokenKind::Session);
    diesel::insert_into(sessions::table)
        .values((
            sessions::user_id.eq(user_id),
            sessions::token_hash.eq(hash),
            sessions::created_at.eq(now),
            sessions::last_seen_at.eq(now),
            sessions::expires_at.eq(now + lifetime),
        ))
        .execute(conn)?;
    Ok(token)
}

pub fn organization(conn: &mut PgConnection, id: Uuid) -> AppResult<Organization> {
    organizations::table
        .find(id)
        .select(Organization::as_select())
        .first(conn)
        .optional()?
        .ok_or(AppError::NotFound("Organization"))
}

/// Sites of an organization the caller can see: all of them for organization admins, otherwise
/// those where they are site admin or hold an effective role.
pub fn visible_sites(conn: &mut PgConnection, caller: &access::Caller) -> AppResult<Vec<Site>> {
    let all: Vec<Site> = sites::table
        .filter(sites::organization_id.eq(caller.user.organization_id))
        .order((sites::name.asc(), sites::id.asc()))
        .select(Site::as_select())
        .load(conn)?;
    if caller.org_admin {
        return Ok(all);
    }
    let mut visible = Vec::new();
    for site in all {
        let a = access::site_access(conn, caller, site.id)?;
        if a.site_admin || a.role.is_some() {
            visible.push(site);
        }
    }
    Ok(visible)
}

pub fn verified_domains(conn: &mut PgConnection, org: Uuid) -> AppResult<Vec<String>> {
    Ok(verified_domains::table
        .filter(verified_domains::organization_id.eq(org))
        .order(verified_domains::domain.asc())
        .select(verified_domains::domain)
        .load(conn)?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn slugs() {
        assert_eq!(super::slugify("Acme Corp"), "acme-corp");
        assert_eq!(super::slugify("  Ünïcode -- Ltd. "), "n-code-ltd");
        assert_eq!(super::slugify("!!!"), "org");
    }
}
