//! `Node`, `node(id:)` and `nodes(ids:)` (Relay's Global Object Identification), and the one place
//! that finds an object by id for the caller: the root lookups (`site`, `space`, `user`, `invite`...)
//! and `node` go through the same functions, so the visibility policy answers the same whatever
//! path asked.

use super::ids::{self, Kind};
use super::types::*;
use super::{caller, require_sight, state};
use crate::domain::authorization::Object;
use crate::error::{AppError, AppResult};
use crate::store::{access, content, directory, invites, org};
use async_graphql::{Context, ID, Interface, Object};
use uuid::Uuid;

/// An object with a global id: it can be fetched again with `node(id:)`, and a client cache can
/// key it by `id` alone.
#[derive(Interface)]
#[graphql(field(
    name = "id",
    ty = "AppResult<ID>",
    desc = "The object's global id: opaque, stable, and unique across every type."
))]
#[allow(clippy::large_enum_variant)]
pub enum Node {
    Organization(Organization),
    Site(Site),
    Space(Space),
    Page(Page_),
    User(User),
    Invite(Invite),
    Group(Group),
    AuditEvent(AuditEvent),
    BulkInvite(super::bulk::BulkInvite),
    Session(super::signin::SessionInfo),
    ApiToken(super::signin::ApiToken),
    WebhookEndpoint(super::webhooks::WebhookEndpoint),
    WebhookDelivery(super::webhooks::WebhookDelivery),
}

/// How many ids `nodes(ids:)` takes at once.
pub const MAX_NODES: usize = 100;

#[derive(Default)]
pub struct NodeQuery;

#[Object]
impl NodeQuery {
    /// The object with this global id, if the caller may see it (null with `NOT_FOUND` when it
    /// does not exist or is not of this organization, `FORBIDDEN` when the caller may not see it).
    async fn node(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "A global id, as any object's `id` field answers it.")] id: ID,
    ) -> AppResult<Option<Node>> {
        find(ctx, &id).await.map(Some)
    }

    /// The objects with these global ids, in the same order: each one the caller may not see, or
    /// that does not exist, is null with its own error (`nodes.<index>`), and the rest still answer.
    #[graphql(complexity = "ids.len().max(1) * child_complexity")]
    async fn nodes(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "At most 100 global ids.")] ids: Vec<ID>,
    ) -> AppResult<Vec<Option<Node>>> {
        if ids.len() > MAX_NODES {
            return Err(AppError::invalid(
                "ids",
                format!("at most {MAX_NODES} ids at once"),
            ));
        }
        let found = futures_util::future::join_all(ids.iter().map(|id| find(ctx, id))).await;
        Ok(found
            .into_iter()
            .enumerate()
            .map(|(i, r)| match r {
                Ok(node) => Some(node),
                Err(e) => {
                    // The refusal of one id is reported at its own index, like a field's.
                    let mut err = ctx.set_error_path(
                        async_graphql::Error::from(e).into_server_error(ctx.item.pos),
                    );
                    err.path.push(async_graphql::PathSegment::Index(i));
                    ctx.add_error(err);
                    None
                }
            })
            .collect())
    }

    /// An invite of a site the caller administers, e.g. to follow its email's delivery (null with
    /// `NOT_FOUND` or `FORBIDDEN` otherwise).
    async fn invite(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The invite's id.")] id: ID,
    ) -> AppResult<Option<Invite>> {
        invite(ctx, super::parse_id(&id, "Invite")?).await.map(Some)
    }
}

/// The object a global id names, as the caller may see it.
async fn find(ctx: &Context<'_>, id: &ID) -> AppResult<Node> {
    let (kind, key) = ids::decode(id).ok_or(AppError::NotFound("Node"))?;
    load(ctx, kind, &key).await
}

/// `Ok(None)` for an object that no longer exists (a reference that outlived what it names, such
/// as an audit event's target), any other refusal as it is.
pub(crate) fn existing<T>(found: AppResult<T>) -> AppResult<Option<T>> {
    match found {
        Ok(t) => Ok(Some(t)),
        Err(AppError::NotFound(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The object of type `kind` with this key, as the caller may see it.
pub(crate) async fn load(ctx: &Context<'_>, kind: Kind, key: &str) -> AppResult<Node> {
    let uuid = || Uuid::try_parse(key).map_err(|_| AppError::NotFound(kind.noun()));
    Ok(match kind {
        Kind::Organization => Node::Organization(organization(ctx, uuid()?).await?),
        Kind::Site => Node::Site(site(ctx, uuid()?).await?),
        Kind::Space => Node::Space(space(ctx, uuid()?).await?),
        Kind::Page => Node::Page(page(ctx, uuid()?).await?),
        Kind::User => Node::User(user(ctx, uuid()?).await?),
        Kind::Invite => Node::Invite(invite(ctx, uuid()?).await?),
        Kind::Group => Node::Group(group(ctx, uuid()?).await?),
        Kind::AuditEvent => Node::AuditEvent(audit_event(ctx, ids::audit_event_of(key)?).await?),
        Kind::BulkInvite => Node::BulkInvite(bulk_invite(ctx, uuid()?).await?),
        Kind::Session => Node::Session(session(ctx, uuid()?).await?),
        Kind::ApiToken => Node::ApiToken(api_token(ctx, uuid()?).await?),
        Kind::WebhookEndpoint => {
            Node::WebhookEndpoint(super::webhooks::endpoint(ctx, uuid()?).await?)
        }
        Kind::WebhookDelivery => {
            Node::WebhookDelivery(super::webhooks::delivery(ctx, uuid()?).await?)
        }
    })
}

/// The caller's organization; any other is `NOT_FOUND`.
pub(crate) async fn organization(ctx: &Context<'_>, id: Uuid) -> AppResult<Organization> {
    let who = caller(ctx).await?;
    if id != who.user.organization_id {
        return Err(AppError::NotFound("Organization"));
    }
    require_sight(ctx, Object::Organization { org: id }).await?;
    state(ctx)
        .db
        .run(move |c| org::organization(c, id))
        .await
        .map(Organization)
}

/// A site of the caller's organization the caller has access to.
pub(crate) async fn site(ctx: &Context<'_>, id: Uuid) -> AppResult<Site> {
    let who = caller(ctx).await?;
    let site = state(ctx)
        .db
        .run(move |c| access::site_in_org(c, who.user.organization_id, id))
        .await?;
    require_sight(ctx, Object::Site { site: id }).await?;
    Ok(Site(site))
}

/// A space the caller reaches.
pub(crate) async fn space(ctx: &Context<'_>, id: Uuid) -> AppResult<Space> {
    let who = caller(ctx).await?;
    let space = state(ctx)
        .db
        .run(move |c| content::space_in_org(c, who.user.organization_id, id))
        .await?;
    Space::seen(ctx, space).await
}

/// A page of a space the caller reaches.
pub(crate) async fn page(ctx: &Context<'_>, id: Uuid) -> AppResult<Page_> {
    let who = caller(ctx).await?;
    let (page, space) = state(ctx)
        .db
        .run(move |c| content::page_in_org(c, who.user.organization_id, id))
        .await?;
    Space::seen(ctx, space).await?;
    Ok(Page_(page))
}

/// A person of the caller's organization the caller may see (at least by name).
pub(crate) async fn user(ctx: &Context<'_>, id: Uuid) -> AppResult<User> {
    let who = caller(ctx).await?;
    let u = state(ctx)
        .db
        .run(move |c| directory::user_in_org(c, who.user.organization_id, id))
        .await?;
    User::seen(ctx, u).await
}

/// An invite of a site the caller administers.
pub(crate) async fn invite(ctx: &Context<'_>, id: Uuid) -> AppResult<Invite> {
    let who = caller(ctx).await?;
    let invite = state(ctx)
        .db
        .run(move |c| invites::invite_in_org(c, who.user.organization_id, id))
        .await?;
    let site = invite.site_id;
    require_sight(ctx, Object::SiteAdministration { site }).await?;
    Ok(Invite(invite))
}

/// A group of the caller's organization, for whoever may see groups.
pub(crate) async fn group(ctx: &Context<'_>, id: Uuid) -> AppResult<Group> {
    let who = caller(ctx).await?;
    let org = who.user.organization_id;
    let g = state(ctx)
        .db
        .run(move |c| crate::store::groups::group_in_org(c, org, id))
        .await?;
    require_sight(ctx, Object::Group { org }).await?;
    Ok(Group(g))
}

/// An event of the organization's audit trail (organization admins).
pub(crate) async fn audit_event(ctx: &Context<'_>, id: i64) -> AppResult<AuditEvent> {
    let who = caller(ctx).await?;
    let org = who.user.organization_id;
    require_sight(ctx, Object::OrganizationAdministration { org }).await?;
    state(ctx)
        .db
        .run(move |c| directory::audit_event_in_org(c, org, id))
        .await
        .map(AuditEvent)
}

/// A bulk invite of a site the caller administers.
pub(crate) async fn bulk_invite(ctx: &Context<'_>, id: Uuid) -> AppResult<super::bulk::BulkInvite> {
    let org = caller(ctx).await?.user.organization_id;
    let (row, progress) = state(ctx)
        .db
        .run(move |c| crate::store::bulk::in_org(c, org, id))
        .await?;
    let site = row.site_id;
    require_sight(ctx, Object::SiteAdministration { site }).await?;
    Ok(super::bulk::BulkInvite { row, progress })
}

/// One of the caller's own live sessions; anyone else's is `NOT_FOUND`.
pub(crate) async fn session(ctx: &Context<'_>, id: Uuid) -> AppResult<super::signin::SessionInfo> {
    let who = caller(ctx).await?;
    let (uid, now) = (who.user.id, state(ctx).clock.now());
    let row = state(ctx)
        .db
        .run(move |c| crate::store::signin::sessions(c, uid, now))
        .await?
        .into_iter()
        .find(|s| s.id == id)
        .ok_or(AppError::NotFound("Session"))?;
    require_sight(ctx, Object::Own { owner: row.user_id }).await?;
    Ok(super::signin::SessionInfo {
        current: who.session_id == Some(row.id),
        row,
    })
}

/// One of the caller's own API tokens; anyone else's is `NOT_FOUND`.
pub(crate) async fn api_token(ctx: &Context<'_>, id: Uuid) -> AppResult<super::signin::ApiToken> {
    let uid = caller(ctx).await?.user.id;
    let row = state(ctx)
        .db
        .run(move |c| crate::store::signin::api_tokens(c, uid))
        .await?
        .into_iter()
        .find(|t| t.id == id)
        .ok_or(AppError::NotFound("API token"))?;
    require_sight(ctx, Object::Own { owner: row.user_id }).await?;
    Ok(super::signin::ApiToken(row))
}
