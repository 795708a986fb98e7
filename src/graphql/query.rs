/// The direction of every ordered list, shared with the guest list's `orderBy`.
pub use super::people::OrderDirection;
use super::types::*;
use super::{caller, cursor, page, parse_id, state};
use crate::error::{AppError, AppResult};
use crate::store::directory::{UserKey, UserOrder, UserSort};
use crate::store::models::InviteStatus;
use crate::store::{access, content, directory, invites, org};
use async_graphql::connection::{Connection, Edge};
use async_graphql::{Context, ID, Object};
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Narrows the audit trail; every given field applies.
#[derive(async_graphql::InputObject, Default)]
pub struct AuditFilterInput {
    /// Only what this user did (a user's global id; anything else is `INVALID_INPUT`).
    pub actor_id: Option<ID>,
    /// The id of the changed object (a user, invite, group, organization...).
    pub target_id: Option<ID>,
    /// e.g. `policy.update`, `access.change`, `login.failure`.
    pub action: Option<String>,
    /// From this time on (inclusive).
    pub since: Option<DateTime<Utc>>,
    /// Before this time.
    pub until: Option<DateTime<Utc>>,
}

/// What the people directory is sorted by; the user id breaks ties, in the same direction.
#[derive(async_graphql::Enum, Copy, Clone, Eq, PartialEq, Debug, Default)]
pub enum UserOrderField {
    /// The address, letter case aside (the directory's order when `orderBy` is left out).
    #[default]
    Email,
    /// The display name, letter case aside.
    DisplayName,
    /// When the user last used Guestpass (`lastActiveAt`, recorded at most hourly); a user never
    /// active counts as the least recently active: first ascending, last descending. Site admins
    /// only (who see `lastActiveAt`): `FORBIDDEN` to others.
    LastActiveAt,
}

/// The order of the people directory. A cursor (`after`) belongs to the order it was cut in: given
/// with another field or direction it is `INVALID_INPUT`.
#[derive(async_graphql::InputObject, Default)]
#[graphql(name = "UserOrder")]
pub struct UserOrderInput {
    /// What to sort by: `EMAIL` when left out.
    #[graphql(default)]
    pub field: UserOrderField,
    /// `ASC` (when left out) or `DESC`.
    #[graphql(default)]
    pub direction: OrderDirection,
}

impl UserOrderInput {
    fn order(&self) -> UserOrder {
        UserOrder {
            by: match self.field {
                UserOrderField::Email => UserSort::Email,
                UserOrderField::DisplayName => UserSort::DisplayName,
                UserOrderField::LastActiveAt => UserSort::LastActiveAt,
            },
            descending: self.direction == OrderDirection::Desc,
        }
    }
}

#[derive(Default)]
pub struct CoreQuery;

#[Object]
impl CoreQuery {
    /// The signed-in person.
    async fn me(&self, ctx: &Context<'_>) -> AppResult<User> {
        Ok(User::new(super::caller_to_reverify(ctx).await?.user))
    }

    /// The caller's organization.
    async fn organization(&self, ctx: &Context<'_>) -> AppResult<Option<Organization>> {
        let org = caller(ctx).await?.user.organization_id;
        super::node::organization(ctx, org).await.map(Some)
    }

    /// Sites the caller can see (all of them for organization admins).
    async fn sites(&self, ctx: &Context<'_>) -> AppResult<Option<Vec<Site>>> {
        let who = caller(ctx).await?;
        let rows = state(ctx)
            .db
            .run(move |c| org::visible_sites(c, &who))
            .await?;
        Ok(Some(rows.into_iter().map(Site).collect()))
    }

    /// A site of the caller's organization where they have access (null with `NOT_FOUND` or
    /// `FORBIDDEN` otherwise).
    async fn site(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The site's global id.")] id: ID,
    ) -> AppResult<Option<Site>> {
        super::node::site(ctx, parse_id(&id, "Site")?)
            .await
            .map(Some)
    }

    /// Seat usage of a site (admins).
    async fn seat_usage(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "The site (global id): `NOT_FOUND` unless it is one of the caller's organization, `FORBIDDEN` unless the caller administers it."
        )]
        site_id: ID,
    ) -> AppResult<Option<SeatUsage>> {
        let who = caller(ctx).await?;
        let id = parse_id(&site_id, "Site")?;
        let now = state(ctx).clock.now();
        state(ctx)
            .db
            .run(move |c| {
                let a = access::site_access(c, &who, id)?;
                a.require_admin()?;
                directory::seat_usage(c, &a.site, now)
            })
            .await
            .map(|u| Some(SeatUsage::new(id, u)))
    }

    /// Spaces of a site the caller reaches: all for admins and paid users, their one space for a guest.
    async fn spaces(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "The site (global id): `NOT_FOUND` unless it is one of the caller's organization, `FORBIDDEN` to someone with no access there or a guest without a space."
        )]
        site_id: ID,
    ) -> AppResult<Option<Vec<Space>>> {
        spaces_of(ctx, parse_id(&site_id, "Site")?).await
    }

    /// A space the caller reaches (null with `NOT_FOUND` or `FORBIDDEN` otherwise).
    async fn space(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The space's global id.")] id: ID,
    ) -> AppResult<Option<Space>> {
        super::node::space(ctx, parse_id(&id, "Space")?)
            .await
            .map(Some)
    }

    /// The people directory of a site: every user with access (admins and paid users only).
    #[graphql(complexity = "super::page_cost(first, child_complexity)")]
    async fn users(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "The site (global id): `NOT_FOUND` unless it is one of the caller's organization, `FORBIDDEN` unless the caller is an admin or a paid user there."
        )]
        site_id: ID,
        #[graphql(
            desc = "How many users to return, 0 to 100 (20 when left out); anything else is `INVALID_INPUT`."
        )]
        first: Option<i32>,
        #[graphql(
            desc = "Continue after this cursor: `pageInfo.endCursor` (or an edge's `cursor`) from this same list; anything else is `INVALID_INPUT`."
        )]
        after: Option<String>,
        #[graphql(desc = "Only external (true) or internal (false) users.")] external: Option<bool>,
        #[graphql(
            desc = "The order: by email ascending when left out. Ordering by `LAST_ACTIVE_AT` is for site admins only (`FORBIDDEN` otherwise)."
        )]
        order_by: Option<UserOrderInput>,
    ) -> AppResult<Option<Page<SiteUser>>> {
        users_of(
            ctx,
            parse_id(&site_id, "Site")?,
            first,
            after,
            external,
            order_by,
        )
        .await
    }

    /// Invites of a site, newest first (admins).
    #[graphql(complexity = "super::page_cost(first, child_complexity)")]
    async fn invites(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "The site (global id): `NOT_FOUND` unless it is one of the caller's organization, `FORBIDDEN` unless the caller administers it."
        )]
        site_id: ID,
        #[graphql(
            desc = "Only invites with this status (a pending invite past its expiry is `EXPIRED`); every invite when left out."
        )]
        status: Option<InviteStatus>,
        #[graphql(
            desc = "How many invites to return, 0 to 100 (20 when left out); anything else is `INVALID_INPUT`."
        )]
        first: Option<i32>,
        #[graphql(
            desc = "Continue after this cursor: `pageInfo.endCursor` (or an edge's `cursor`) from this same list; anything else is `INVALID_INPUT`."
        )]
        after: Option<String>,
    ) -> AppResult<Option<Page<Invite>>> {
        invites_of(ctx, parse_id(&site_id, "Site")?, status, first, after).await
    }

    /// The organization's audit trail, newest first (organization admins).
    #[graphql(complexity = "super::page_cost(first, child_complexity)")]
    async fn audit_events(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "How many events to return, 0 to 100 (20 when left out); anything else is `INVALID_INPUT`."
        )]
        first: Option<i32>,
        #[graphql(
            desc = "Continue after this cursor: `pageInfo.endCursor` (or an edge's `cursor`) from this same list; anything else is `INVALID_INPUT`."
        )]
        after: Option<String>,
        #[graphql(desc = "Narrows the trail; the whole trail when left out.")] filter: Option<
            AuditFilterInput,
        >,
    ) -> AppResult<Option<Page<AuditEvent>>> {
        let who = caller(ctx).await?;
        if !who.org_admin {
            return Err(AppError::Forbidden);
        }
        let (limit, after) = page::<i64>(first, after)?;
        let org = who.user.organization_id;
        let f = filter.unwrap_or_default();
        let filter = directory::AuditFilter {
            actor_id: f
                .actor_id
                .as_ref()
                .map(|a| super::ids::uuid_of(a.as_str(), super::ids::Kind::User))
                .transpose()
                .map_err(|_| AppError::invalid("actorId", "is not a user id"))?,
            // Audit events name their target by its key: a global id is read back to it.
            target_id: f.target_id.map(|t| match super::ids::decode(&t) {
                Some((_, key)) => key,
                None => t.to_string(),
            }),
            action: f.action,
            since: f.since,
            until: f.until,
        };
        let (rows, total) = state(ctx)
            .db
            .run(move |c| directory::audit_events(c, org, &filter, after, limit + 1))
            .await?;
        Ok(Some(paginate(rows, limit, total, |e| e.id, AuditEvent)))
    }
}

/// The spaces of a site the caller reaches (`spaces(siteId)`, `Site.spaces`).
pub(crate) async fn spaces_of(ctx: &Context<'_>, id: Uuid) -> AppResult<Option<Vec<Space>>> {
    let who = caller(ctx).await?;
    let rows = state(ctx)
        .db
        .run(move |c| content::visible_spaces(c, &who, id))
        .await?;
    Ok(Some(rows.into_iter().map(Space).collect()))
}

/// A page of a site's people directory (`users(siteId)`, `Site.users`) in `order_by`.
pub(crate) async fn users_of(
    ctx: &Context<'_>,
    id: Uuid,
    first: Option<i32>,
    after: Option<String>,
    external: Option<bool>,
    order_by: Option<UserOrderInput>,
) -> AppResult<Option<Page<SiteUser>>> {
    let who = caller(ctx).await?;
    let (limit, after) = page::<UserKey>(first, after)?;
    let order = order_by.map(|o| o.order()).unwrap_or_default();
    // The order tells each user's last activity relative to the others': only for those who see
    // it (`lastActiveAt`), the site's admins; an unknown site stays `NOT_FOUND` first.
    if order.by == UserSort::LastActiveAt {
        let (_, access) = super::site_access(ctx, id).await?;
        if !access.sees_whole_site() {
            return Err(AppError::Forbidden);
        }
        let admin = crate::domain::authorization::Object::SiteAdministration { site: id };
        super::require_sight(ctx, admin).await?;
    }
    let (rows, total) = state(ctx)
        .db
        .run(move |c| {
            directory::require_directory_access(c, &who, id)?;
            directory::users_with_access(c, id, None, external, order, after, limit + 1)
        })
        .await?;
    Ok(Some(paginate(
        rows,
        limit,
        total,
        |(key, _, _)| key.clone(),
        |(_, u, role)| SiteUser {
            user: User::new(u),
            role,
        },
    )))
}

/// A page of a site's invites, newest first (`invites(siteId)`, `Site.invites`).
pub(crate) async fn invites_of(
    ctx: &Context<'_>,
    id: Uuid,
    status: Option<InviteStatus>,
    first: Option<i32>,
    after: Option<String>,
) -> AppResult<Option<Page<Invite>>> {
    let who = caller(ctx).await?;
    let (limit, after) = page::<(DateTime<Utc>, Uuid)>(first, after)?;
    let now = state(ctx).clock.now();
    let (rows, total) = state(ctx)
        .db
        .run(move |c| {
            access::site_access(c, &who, id)?.require_admin()?;
            invites::list(c, id, status, after, limit + 1, now)
        })
        .await?;
    Ok(Some(paginate(
        rows,
        limit,
        total,
        |i| (i.created_at, i.id),
        Invite,
    )))
}

/// Builds a forward page from `limit + 1` rows (the extra row only says there is a next page).
pub(crate) fn paginate<R, C, N>(
    mut rows: Vec<R>,
    limit: i64,
    total: i64,
    key: impl Fn(&R) -> C,
    node: impl Fn(R) -> N,
) -> Page<N>
where
    C: serde::Serialize + serde::de::DeserializeOwned + Send + Sync,
    N: async_graphql::OutputType,
{
    let has_next = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let mut conn =
        Connection::with_additional_fields(false, has_next, Total { total_count: total });
    conn.edges = rows
        .into_iter()
        .map(|r| Edge::new(cursor(key(&r)), node(r)))
        .collect();
    conn
}
