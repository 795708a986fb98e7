//! Spaces and their pages: the content a guest may reach inside their one space.

use crate::db::schema::*;
use crate::error::{AppError, AppResult};
use crate::store::access::{self, Caller, SiteAccess};
use crate::store::audit::{self, Audit};
use crate::store::models::{Page, Space};
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

/// A space of the caller's organization, with the caller's standing on its site.
pub fn space_with_access(
    conn: &mut PgConnection,
    caller: &Caller,
    space_id: Uuid,
) -> AppResult<(Space, SiteAccess)> {
    let space = space_in_org(conn, caller.user.organization_id, space_id)?;
    let access = access::site_access(conn, caller, space.site_id)?;
    Ok((space, access))
}

/// A space of an organization; any other id is `NOT_FOUND`, exactly like a missing one.
pub fn space_in_org(conn: &mut PgConnection, org: Uuid, space_id: Uuid) -> AppResult<Space> {
    spaces::table
        .inner_join(sites::table)
        .filter(spaces::id.eq(space_id))
        .filter(sites::organization_id.eq(org))
        .select(Space::as_select())
        .first(conn)
        .optional()?
        .ok_or(AppError::NotFound("Space"))
}

/// A page of an organization, with its space (which decides who reaches it); any other id is
/// `NOT_FOUND`, exactly like a missing one.
pub fn page_in_org(conn: &mut PgConnection, org: Uuid, page_id: Uuid) -> AppResult<(Page, Space)> {
    pages::table
        .inner_join(spaces::table.inner_join(sites::table))
        .filter(pages::id.eq(page_id))
        .filter(sites::organization_id.eq(org))
        .select((Page::as_select(), Space::as_select()))
        .first(conn)
        .optional()?
        .ok_or(AppError::NotFound("Page"))
}

/// The spaces of a site the caller reaches: all for admins and paid users, their own for a guest.
pub fn visible_spaces(
    conn: &mut PgConnection,
    caller: &Caller,
    site_id: Uuid,
) -> AppResult<Vec<Space>> {
    let access = access::site_access(conn, caller, site_id)?;
    let mut q = spaces::table
        .filter(spaces::site_id.eq(site_id))
        .order((spaces::key.asc(), spaces::id.asc()))
        .select(Space::as_select())
        .into_boxed();
    if !access.sees_whole_site() {
        match access.guest_space {
            Some(s) if access.role.is_some() => q = q.filter(spaces::id.eq(s)),
            _ => return Err(AppError::Forbidden),
        }
    }
    Ok(q.load(conn)?)
}

pub fn create_space(
    conn: &mut PgConnection,
    caller: &Caller,
    site_id: Uuid,
    key: &str,
    name: &str,
    now: DateTime<Utc>,
) -> AppResult<Space> {
    let access = access::site_access(conn, caller, site_id)?;
    if !access.manages_spaces() {
        return Err(AppError::Forbidden);
    }
    conn.transaction(|conn| {
        let space: Option<Space> = diesel::insert_into(spaces::table)
            .values((
                spaces::site_id.eq(site_id),
                spaces::key.eq(key),
                spaces::name.eq(name),
                spaces::created_at.eq(now),
            ))
            .on_conflict_do_nothing()
            .returning(Space::as_returning())
            .get_result(conn)
            .optional()?;
        let space = space.ok_or_else(|| {
            AppError::invalid(
                "key",
                format!("a space with key {key} already exists on this site"),
            )
        })?;
        audit::record(
            conn,
            Audit::new(
                caller.user.organization_id,
                caller.user.id,
                "space.create",
                now,
            )
            .target("space", space.id)
            .site(site_id)
            .after(serde_json::json!({ "key": space.key, "name": space.name })),
        )?;
        Ok(space)
    })
}

/// A page of a space's pages, oldest first, keyset-paginated on `(created_at, id)` (the index
/// `pages_space` serves it), and how many the space holds when `with_total`.
pub fn pages(
    conn: &mut PgConnection,
    space_id: Uuid,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
    with_total: bool,
) -> AppResult<(Vec<Page>, i64)> {
    let mut q = pages::table
        .filter(pages::space_id.eq(space_id))
        .into_boxed();
    if let Some((t, id)) = after {
        q = q.filter(
            pages::created_at
                .gt(t)
                .or(pages::created_at.eq(t).and(pages::id.gt(id))),
        );
    }
    let rows = q
        .order((pages::created_at.asc(), pages::id.asc()))
        .limit(limit)
        .select(Page::as_select())
        .load(conn)?;
    let total = if with_total {
        pages::table
            .filter(pages::space_id.eq(space_id))
            .count()
            .get_result(conn)?
    } else {
        0
    };
    Ok((rows, total))
}

pub fn create_page(
    conn: &mut PgConnection,
    caller: &Caller,
    space_id: Uuid,
    title: &str,
    body: &str,
    now: DateTime<Utc>,
) -> AppResult<Page> {
    let (space, access) = space_with_access(conn, caller, space_id)?;
    if !access.reaches_space(space.id) {
        return Err(AppError::Forbidden);
    }
    conn.transaction(|conn| {
        let page: Page = diesel::insert_into(pages::table)
            .values((
                pages::space_id.eq(space.id),
                pages::title.eq(title),
                pages::body.eq(body),
                pages::created_by.eq(caller.user.id),
                pages::created_at.eq(now),
            ))
            .returning(Page::as_returning())
            .get_result(conn)?;
        audit::record(
            conn,
            Audit::new(
                caller.user.organization_id,
                caller.user.id,
                "page.create",
                now,
            )
            .target("page", page.id)
            .site(space.site_id)
            .after(serde_json::json!({ "space": space.id, "title": page.title })),
        )?;
        Ok(page)
    })
}
