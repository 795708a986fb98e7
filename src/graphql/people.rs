//! Managing access over time: groups, product roles with dry runs, guest spaces, removal, admin roles
//! and accounts. Resolvers parse ids and hand over to the store, which checks who is asking.

use super::ids::{Kind, global as gid};
use super::types::*;
use super::{caller, page, parse_id, state};
use crate::domain::{ProductRole, text};
use crate::error::{AppError, AppResult};
use crate::store::changes::AccessChange;
use crate::store::grants::{self, AdminRole};
use crate::store::groups;
use crate::store::guests::{self, GuestFilter, GuestKey, GuestOrder, GuestSort};
use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use uuid::Uuid;

/// A page of a site's guests in `order`, after the cursor `after` (which the store checks belongs to
/// that order); `filter` runs first in the page's database call, checking who asks and answering the
/// list's filter. The total costs a count over the whole site, so only when asked for.
pub(crate) async fn guest_page<F>(
    ctx: &Context<'_>,
    site: Uuid,
    order: GuestOrder,
    limit: i64,
    after: Option<GuestKey>,
    filter: F,
) -> AppResult<Page<User>>
where
    F: FnOnce(&mut diesel::PgConnection) -> AppResult<GuestFilter> + Send + 'static,
{
    let with_total = ctx.look_ahead().field("totalCount").exists();
    let wanted = super::loaders::Wanted::of(ctx);
    let (rows, total, fetched) = state(ctx)
        .db
        .run(move |c| {
            let filter = filter(c)?;
            let rows = guests::list(c, site, &filter, order, after, limit + 1)?;
            let total = if with_total {
                guests::count(c, site, &filter)?
            } else {
                0
            };
            let shown: Vec<_> = rows
                .iter()
                .take(limit as usize)
                .map(|(_, u)| u.clone())
                .collect();
            let fetched = super::loaders::prefetch(c, site, &shown, &wanted)?;
            Ok((rows, total, fetched))
        })
        .await?;
    super::loaders::feed(super::loaders(ctx)?, fetched).await;
    Ok(super::query::paginate(
        rows,
        limit,
        total,
        |(key, _)| key.clone(),
        |(_, u)| User::new(u),
    ))
}

fn ids(list: &[ID], what: &'static str) -> AppResult<Vec<Uuid>> {
    list.iter().map(|i| parse_id(i, what)).collect()
}

fn group_name(name: &str) -> AppResult<String> {
    text::single_line(name, 200).map_err(|m| AppError::invalid("name", m))
}

#[derive(Default)]
pub struct PeopleQuery;

/// Filters of the guest list; all given filters apply.
#[derive(InputObject, Default)]
pub struct GuestFilterInput {
    /// Only guests of this space.
    pub space_id: Option<ID>,
    /// Only guests without a space (they reach no content).
    #[graphql(default)]
    pub without_space: bool,
    /// Part of an email address or name, case-insensitive.
    pub search: Option<String>,
    /// Only external (true) or internal (false) guests.
    pub external: Option<bool>,
}

/// What the guest list is sorted by; the user id breaks ties, in the same direction.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug, Default)]
pub enum GuestOrderField {
    /// The address, letter case aside (the list's order when `orderBy` is left out).
    #[default]
    Email,
    /// The display name, letter case aside.
    DisplayName,
    /// When the guest last used Guestpass (`lastActiveAt`, recorded at most hourly); a guest never
    /// active counts as the least recently active: first ascending, last descending. Site admins
    /// only (who see `lastActiveAt`): `FORBIDDEN` to others.
    LastActiveAt,
    /// When the guest's access to the site ends (`accessEndsAt(siteId)`); a guest whose access does
    /// not end counts as ending last: last ascending, first descending.
    AccessEndsAt,
}

/// Which way a list runs.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug, Default)]
pub enum OrderDirection {
    /// Smallest first: A to Z, earliest first.
    #[default]
    Asc,
    /// Largest first: Z to A, latest first.
    Desc,
}

/// The order of the guest list. A cursor (`after`) belongs to the order it was cut in: given with
/// another field or direction it is `INVALID_INPUT`.
#[derive(InputObject)]
#[graphql(name = "GuestOrder")]
pub struct GuestOrderInput {
    /// What to sort by.
    pub field: GuestOrderField,
    /// `ASC` (when left out) or `DESC`.
    #[graphql(default)]
    pub direction: OrderDirection,
}

impl GuestOrderInput {
    fn order(&self) -> GuestOrder {
        GuestOrder {
            by: match self.field {
                GuestOrderField::Email => GuestSort::Email,
                GuestOrderField::DisplayName => GuestSort::DisplayName,
                GuestOrderField::LastActiveAt => GuestSort::LastActiveAt,
                GuestOrderField::AccessEndsAt => GuestSort::AccessEndsAt,
            },
            descending: self.direction == OrderDirection::Desc,
        }
    }
}

#[Object]
impl PeopleQuery {
    /// The guests of a site, by email unless `orderBy` says otherwise (whoever sees the whole site,
    /// and space admins).
    #[graphql(complexity = "super::page_cost(first, child_complexity)")]
    async fn guests(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "The site; `FORBIDDEN` to anyone who neither sees it whole nor administers one of its spaces."
        )]
        site_id: ID,
        #[graphql(
            desc = "How many guests to return, 0 to 100 (20 when left out); anything else is `INVALID_INPUT`."
        )]
        first: Option<i32>,
        #[graphql(
            desc = "Continue after this cursor: `pageInfo.endCursor` (or an edge's `cursor`) from this same list; anything else is `INVALID_INPUT`."
        )]
        after: Option<String>,
        #[graphql(desc = "Narrows the list; every guest of the site when left out.")]
        filter: Option<GuestFilterInput>,
        #[graphql(
            desc = "The order: by email ascending when left out. Ordering by `LAST_ACTIVE_AT` is for site admins only (`FORBIDDEN` otherwise)."
        )]
        order_by: Option<GuestOrderInput>,
    ) -> AppResult<Option<Page<User>>> {
        guests_of(
            ctx,
            parse_id(&site_id, "Site")?,
            first,
            after,
            filter,
            order_by,
        )
        .await
    }

    /// Guests of a site not active for `inactiveForDays` days (site admins), for an access review:
    /// last activity is recorded at most hourly; never-active guests count from their account's creation.
    #[graphql(complexity = "super::page_cost(first, child_complexity)")]
    async fn inactive_guests(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The site; `FORBIDDEN` unless the caller administers it.")] site_id: ID,
        #[graphql(desc = "Days without activity, 1 to 3,650 (`INVALID_INPUT` otherwise).")]
        inactive_for_days: i32,
        #[graphql(
            desc = "How many guests to return, 0 to 100 (20 when left out); anything else is `INVALID_INPUT`."
        )]
        first: Option<i32>,
        #[graphql(
            desc = "Continue after this cursor: `pageInfo.endCursor` (or an edge's `cursor`) from this same list; anything else is `INVALID_INPUT`."
        )]
        after: Option<String>,
    ) -> AppResult<Option<Page<User>>> {
        inactive_guests_of(
            ctx,
            parse_id(&site_id, "Site")?,
            inactive_for_days,
            first,
            after,
        )
        .await
    }

    /// The organization's groups, by name (staff: admins and paid users; `FORBIDDEN` to others).
    #[graphql(complexity = "super::page_cost(first, child_complexity)")]
    async fn groups(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "How many groups to return, 0 to 100 (20 when left out); anything else is `INVALID_INPUT`."
        )]
        first: Option<i32>,
        #[graphql(
            desc = "Continue after this cursor: `pageInfo.endCursor` (or an edge's `cursor`) from this same list; anything else is `INVALID_INPUT`."
        )]
        after: Option<String>,
    ) -> AppResult<Option<Page<Group>>> {
        let who = caller(ctx).await?;
        let (limit, after) = page::<(String, Uuid)>(first, after)?;
        let (rows, total) = state(ctx)
            .db
            .run(move |c| {
                groups::require_view(c, &who)?;
                groups::list(c, who.user.organization_id, after, limit + 1)
            })
            .await?;
        Ok(Some(super::query::paginate(
            rows,
            limit,
            total,
            |g| (g.name_normalized.clone(), g.id),
            Group,
        )))
    }

    /// One group (staff: admins and paid users; `FORBIDDEN` to others).
    async fn group(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The group's id; one not of the caller's organization is `NOT_FOUND`.")]
        id: ID,
    ) -> AppResult<Option<Group>> {
        let who = caller(ctx).await?;
        let id = parse_id(&id, "Group")?;
        state(ctx)
            .db
            .run(move |c| {
                let g = groups::group_in_org(c, who.user.organization_id, id)?;
                groups::require_view(c, &who)?;
                Ok(Some(Group(g)))
            })
            .await
    }

    /// Someone's account, if the caller may see them: themselves, the people of the sites they see
    /// whole (or administer), and, for guests, the name of whoever invited or sponsors them.
    async fn user(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "The person's id: one not of the caller's organization is `NOT_FOUND`; someone the caller may not see at all is `FORBIDDEN`."
        )]
        id: ID,
    ) -> AppResult<Option<User>> {
        let who = caller(ctx).await?;
        let id = parse_id(&id, "User")?;
        let u = state(ctx)
            .db
            .run(move |c| crate::store::directory::user_in_org(c, who.user.organization_id, id))
            .await?;
        Ok(Some(User::seen(ctx, u).await?))
    }
}

/// A new group of the caller's organization.
#[derive(InputObject)]
pub struct CreateGroupInput {
    /// One line, 1 to 200 characters, not the name of another group of the organization (letter
    /// case aside); `INVALID_INPUT` otherwise.
    pub name: String,
}

/// A group's new name.
#[derive(InputObject)]
pub struct RenameGroupInput {
    /// The group; one not of the caller's organization is `NOT_FOUND`.
    pub id: ID,
    /// One line, 1 to 200 characters, not the name of another group of the organization (letter
    /// case aside); `INVALID_INPUT` otherwise.
    pub name: String,
}

/// A group's role on one site.
#[derive(InputObject)]
pub struct SetGroupProductRoleInput {
    /// The group; one not of the caller's organization is `NOT_FOUND`.
    pub group_id: ID,
    /// The site.
    pub site_id: ID,
    /// Null takes the group's role on the site away. `GUEST` makes it a guest group.
    pub role: Option<ProductRole>,
    /// Only report what would change.
    #[graphql(default)]
    pub dry_run: bool,
}

/// People to add to or take out of a group.
#[derive(InputObject)]
pub struct GroupMembersInput {
    /// The group; one not of the caller's organization is `NOT_FOUND`.
    pub group_id: ID,
    /// 1 to 200 people of the organization (`INVALID_INPUT` otherwise; an unknown id is
    /// `NOT_FOUND`).
    pub user_ids: Vec<ID>,
    /// True: check and report what would change, then change nothing (a refusal is answered as for
    /// the real change).
    #[graphql(default)]
    pub dry_run: bool,
}

/// A person's direct role on one site.
#[derive(InputObject)]
pub struct SetProductRoleInput {
    /// The site; `FORBIDDEN` unless the caller administers it.
    pub site_id: ID,
    /// The person; one not of the caller's organization is `NOT_FOUND`.
    pub user_id: ID,
    /// Null removes the direct role (group roles still apply).
    pub role: Option<ProductRole>,
    /// True: check and report what would change, then change nothing (a refusal is answered as for
    /// the real change).
    #[graphql(default)]
    pub dry_run: bool,
}

/// Whom to take off which site.
#[derive(InputObject)]
pub struct RemoveProductAccessInput {
    /// The site; `FORBIDDEN` unless the caller administers it.
    pub site_id: ID,
    /// The person; one not of the caller's organization is `NOT_FOUND`.
    pub user_id: ID,
    /// True: check and report what would change, then change nothing (a refusal is answered as for
    /// the real change).
    #[graphql(default)]
    pub dry_run: bool,
}

/// Guests to put in one space.
#[derive(InputObject)]
pub struct AssignGuestSpaceInput {
    /// The space.
    pub space_id: ID,
    /// Guests of the space's site, at most 200; those with another space are moved.
    pub user_ids: Vec<ID>,
}

/// Guests to take out of their space on one site.
#[derive(InputObject)]
pub struct UnassignGuestSpaceInput {
    /// The site.
    pub site_id: ID,
    /// 1 to 200 guests of the site (`INVALID_INPUT` otherwise, naming who is not a guest).
    pub user_ids: Vec<ID>,
}

/// Where each guest's space stands after `assignGuestSpace`.
#[derive(SimpleObject)]
pub struct AssignGuestSpacePayload {
    /// One per guest given, with their space before and after.
    pub assignments: Vec<GuestAssignment>,
}

/// Where each guest's space stands after `unassignGuestSpace`.
#[derive(SimpleObject)]
pub struct UnassignGuestSpacePayload {
    /// One per guest given, with their space before and after.
    pub assignments: Vec<GuestAssignment>,
}

/// Guests to remove from one site at once.
#[derive(InputObject)]
pub struct RemoveGuestsInput {
    /// The site; `FORBIDDEN` unless the caller administers it.
    pub site_id: ID,
    /// Guests of the site, at most 200; all are removed or none.
    pub user_ids: Vec<ID>,
    /// Why, for the audit trail (at most 500 characters).
    pub reason: Option<String>,
}

/// The guests a removal took off the site, and the seats they freed.
#[derive(SimpleObject)]
pub struct RemoveGuestsPayload {
    /// Every guest given (the removal is all or nothing).
    pub removed: Vec<User>,
    /// The site's seat usage after the removal (each removed guest frees a seat and a place in the
    /// guest allowance).
    pub seat_usage: SeatUsage,
}

/// An admin role to grant or revoke.
#[derive(InputObject)]
pub struct SetAdminRoleInput {
    /// The person; one not of the caller's organization is `NOT_FOUND`.
    pub user_id: ID,
    /// `ORG_ADMIN` (only organization admins grant or revoke it) or `SITE_ADMIN` (organization
    /// admins and the site's own admins).
    pub role: AdminRole,
    /// Required for `SITE_ADMIN`.
    pub site_id: Option<ID>,
    /// True grants, false revokes.
    pub granted: bool,
}

/// A space and a person, for `addSpaceAdmin` and `removeSpaceAdmin`.
#[derive(InputObject)]
pub struct SpaceAdminInput {
    /// The space.
    pub space_id: ID,
    /// The person; to become a space admin they must be a paid user or an admin of the space's site
    /// (`INVALID_INPUT` otherwise).
    pub user_id: ID,
}

#[derive(Default)]
pub struct PeopleMutation;

#[Object]
impl PeopleMutation {
    /// Creates a group (organization and site admins; `FORBIDDEN` to others). It holds no role
    /// until `setGroupProductRole` gives it one.
    async fn create_group(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The group's name.")] input: CreateGroupInput,
    ) -> AppResult<CreateGroupPayload> {
        let who = caller(ctx).await?;
        let name = group_name(&input.name)?;
        let now = state(ctx).clock.now();
        state(ctx)
            .db
            .run(move |c| groups::create(c, &who, &name, now))
            .await
            .map(|g| CreateGroupPayload { group: Group(g) })
    }

    /// Renames a group (organization admins, and site admins when every site the group holds a role
    /// on is one they administer; `FORBIDDEN` otherwise).
    async fn rename_group(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The group and its new name.")] input: RenameGroupInput,
    ) -> AppResult<RenameGroupPayload> {
        let who = caller(ctx).await?;
        let id = parse_id(&input.id, "Group")?;
        let name = group_name(&input.name)?;
        let now = state(ctx).clock.now();
        state(ctx)
            .db
            .run(move |c| groups::rename(c, &who, id, &name, now))
            .await
            .map(|g| RenameGroupPayload { group: Group(g) })
    }

    /// Deletes a group and recomputes its members' roles. Never refused for seats.
    async fn delete_group(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The group; one not of the caller's organization is `NOT_FOUND`.")] id: ID,
        #[graphql(
            default,
            desc = "True: check and report what would change, then change nothing (a refusal is answered as for the real change)."
        )]
        dry_run: bool,
    ) -> AppResult<DeleteGroupPayload> {
        let who = caller(ctx).await?;
        let id = parse_id(&id, "Group")?;
        let now = state(ctx).clock.now();
        state(ctx)
            .db
            .run(move |c| groups::delete(c, &who, id, dry_run, now))
            .await
            .map(|change| DeleteGroupPayload {
                change,
                deleted_group_id: gid(Kind::Group, id),
            })
    }

    /// Gives a group a role on a site, or takes it away. Giving one is refused as a whole if its
    /// members do not fit (`SEAT_LIMIT_REACHED` or `GUEST_LIMIT_REACHED`, with `remaining`).
    async fn set_group_product_role(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The group, the site and the role.")] input: SetGroupProductRoleInput,
    ) -> AppResult<SetGroupProductRolePayload> {
        let who = caller(ctx).await?;
        let group = parse_id(&input.group_id, "Group")?;
        let site = parse_id(&input.site_id, "Site")?;
        let now = state(ctx).clock.now();
        let org = who.user.organization_id;
        let (change, group) = state(ctx)
            .db
            .run(move |c| {
                let change =
                    groups::set_site_role(c, &who, group, site, input.role, input.dry_run, now)?;
                Ok((
                    change,
                    super::node::existing(groups::group_in_org(c, org, group))?,
                ))
            })
            .await?;
        Ok(SetGroupProductRolePayload {
            change,
            group: group.map(Group),
        })
    }

    /// Adds people to a group; refused as a whole if a site the group reaches cannot take them
    /// (`SEAT_LIMIT_REACHED` or `GUEST_LIMIT_REACHED`, with `remaining`).
    async fn add_group_members(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The group and the people to add.")] input: GroupMembersInput,
    ) -> AppResult<AddGroupMembersPayload> {
        let (change, group) = group_members(ctx, input, groups::add_members).await?;
        Ok(AddGroupMembersPayload { change, group })
    }

    /// Removes people from a group. Never refused for seats.
    async fn remove_group_members(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The group and the people to take out.")] input: GroupMembersInput,
    ) -> AppResult<RemoveGroupMembersPayload> {
        let (change, group) = group_members(ctx, input, groups::remove_members).await?;
        Ok(RemoveGroupMembersPayload { change, group })
    }

    /// Sets or removes a person's direct role on a site. Current and former paid users cannot be made
    /// guests (`PAID_USER_CANNOT_BE_GUEST`). A role the site has no room for is refused
    /// (`SEAT_LIMIT_REACHED` or `GUEST_LIMIT_REACHED`, with `remaining`); removing one never is.
    async fn set_product_role(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The site, the person and the role.")] input: SetProductRoleInput,
    ) -> AppResult<SetProductRolePayload> {
        let who = caller(ctx).await?;
        let site = parse_id(&input.site_id, "Site")?;
        let user = parse_id(&input.user_id, "User")?;
        let now = state(ctx).clock.now();
        let (change, user) = with_user(ctx, who, user, move |c, who| {
            grants::set_product_role(c, who, site, user, input.role, input.dry_run, now)
        })
        .await?;
        Ok(SetProductRolePayload { change, user })
    }

    /// Takes a person off a site: direct role, groups granting a role only there, guest space,
    /// pending invites. Nothing elsewhere changes: a group that also grants on another site refuses
    /// it (`GROUP_REACHES_OTHER_SITES`, with `groups`), and sessions end only if the person is left
    /// with access nowhere. Someone with nothing on the site is `INVALID_INPUT`. Never refused for
    /// seats.
    async fn remove_product_access(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The site and the person.")] input: RemoveProductAccessInput,
    ) -> AppResult<RemoveProductAccessPayload> {
        let who = caller(ctx).await?;
        let site = parse_id(&input.site_id, "Site")?;
        let user = parse_id(&input.user_id, "User")?;
        let now = state(ctx).clock.now();
        let (change, user) = with_user(ctx, who, user, move |c, who| {
            grants::remove_product_access(c, who, site, user, input.dry_run, now)
        })
        .await?;
        Ok(RemoveProductAccessPayload { change, user })
    }

    /// Puts guests in a space (admins and product admins: any space; space admins: their own),
    /// moving those who had another one.
    async fn assign_guest_space(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The space and the guests.")] input: AssignGuestSpaceInput,
    ) -> AppResult<AssignGuestSpacePayload> {
        let who = caller(ctx).await?;
        let space = parse_id(&input.space_id, "Space")?;
        let users = ids(&input.user_ids, "User")?;
        let now = state(ctx).clock.now();
        let rows = state(ctx)
            .db
            .run(move |c| guests::assign(c, &who, space, users, now))
            .await?;
        Ok(AssignGuestSpacePayload {
            assignments: rows.into_iter().map(GuestAssignment).collect(),
        })
    }

    /// Takes guests out of their space: they stay guests but reach no content.
    async fn unassign_guest_space(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The site and the guests.")] input: UnassignGuestSpaceInput,
    ) -> AppResult<UnassignGuestSpacePayload> {
        let who = caller(ctx).await?;
        let site = parse_id(&input.site_id, "Site")?;
        let users = ids(&input.user_ids, "User")?;
        let now = state(ctx).clock.now();
        let rows = state(ctx)
            .db
            .run(move |c| guests::unassign(c, &who, site, users, now))
            .await?;
        Ok(UnassignGuestSpacePayload {
            assignments: rows.into_iter().map(GuestAssignment).collect(),
        })
    }

    /// Removes many guests from a site at once (site admins), atomically, each exactly as
    /// `removeProductAccess` does, with one audit event each carrying the reason.
    async fn remove_guests(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The site, the guests and an optional reason.")] input: RemoveGuestsInput,
    ) -> AppResult<RemoveGuestsPayload> {
        let who = caller(ctx).await?;
        let site = parse_id(&input.site_id, "Site")?;
        let users = ids(&input.user_ids, "User")?;
        let reason = match &input.reason {
            Some(r) => Some(text::single_line(r, 500).map_err(|m| AppError::invalid("reason", m))?),
            None => None,
        };
        let now = state(ctx).clock.now();
        let org = who.user.organization_id;
        let (removed, usage) = state(ctx)
            .db
            .run(move |c| {
                let removed = guests::remove_many(c, &who, site, users, reason.as_deref(), now)?;
                let row = crate::store::access::site_in_org(c, org, site)?;
                let usage = crate::store::directory::seat_usage(c, &row, now)?;
                Ok((removed, usage))
            })
            .await?;
        Ok(RemoveGuestsPayload {
            removed: removed.into_iter().map(User::new).collect(),
            seat_usage: SeatUsage::new(site, usage),
        })
    }

    /// Grants or revokes an admin role. The last organization admin cannot be removed (`LAST_ORG_ADMIN`).
    async fn set_admin_role(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "The person, the role (with its site) and whether to grant or revoke it."
        )]
        input: SetAdminRoleInput,
    ) -> AppResult<SetAdminRolePayload> {
        let who = caller(ctx).await?;
        let user = parse_id(&input.user_id, "User")?;
        let site = input
            .site_id
            .as_ref()
            .map(|s| parse_id(s, "Site"))
            .transpose()?;
        let now = state(ctx).clock.now();
        state(ctx)
            .db
            .run(move |c| {
                grants::set_admin_role(c, &who, user, input.role, site, input.granted, now)
            })
            .await
            .map(|u| SetAdminRolePayload { user: User::new(u) })
    }

    /// Makes a paid user of the site an admin of one space (admins and product admins).
    async fn add_space_admin(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The space and the person.")] input: SpaceAdminInput,
    ) -> AppResult<AddSpaceAdminPayload> {
        let (space, user) = space_admin(ctx, input, true).await?;
        Ok(AddSpaceAdminPayload { space, user })
    }

    /// Takes away a person's admin role on one space (admins and product admins).
    async fn remove_space_admin(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The space and the person.")] input: SpaceAdminInput,
    ) -> AppResult<RemoveSpaceAdminPayload> {
        let (space, user) = space_admin(ctx, input, false).await?;
        Ok(RemoveSpaceAdminPayload { space, user })
    }

    /// Deactivates an account (organization admins): it keeps its grants, holds no seat, and its
    /// sessions and tokens stop working at once.
    async fn deactivate_user(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The account; one not of the caller's organization is `NOT_FOUND`.")]
        id: ID,
    ) -> AppResult<DeactivateUserPayload> {
        let (user, seat_usage) = set_active(ctx, id, false).await?;
        Ok(DeactivateUserPayload { user, seat_usage })
    }

    /// Reactivates an account (organization admins); refused if a site cannot take its seats back
    /// (`SEAT_LIMIT_REACHED` or `GUEST_LIMIT_REACHED`, with `remaining`).
    async fn reactivate_user(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The account; one not of the caller's organization is `NOT_FOUND`.")]
        id: ID,
    ) -> AppResult<ReactivateUserPayload> {
        let (user, seat_usage) = set_active(ctx, id, true).await?;
        Ok(ReactivateUserPayload { user, seat_usage })
    }
}

/// Grants or takes away a space admin role: the space and the person, as they are after it.
async fn space_admin(
    ctx: &Context<'_>,
    input: SpaceAdminInput,
    granted: bool,
) -> AppResult<(Space, User)> {
    let who = caller(ctx).await?;
    let space = parse_id(&input.space_id, "Space")?;
    let user = parse_id(&input.user_id, "User")?;
    let now = state(ctx).clock.now();
    let org = who.user.organization_id;
    let (space, user) = state(ctx)
        .db
        .run(move |c| {
            let space = grants::set_space_admin(c, &who, space, user, granted, now)?;
            let user = crate::store::directory::user_in_org(c, org, user)?;
            Ok((space, user))
        })
        .await?;
    Ok((Space(space), User::new(user)))
}

/// Deactivates or reactivates an account: the account, and the seats of every site it holds one on.
async fn set_active(ctx: &Context<'_>, id: ID, active: bool) -> AppResult<(User, Vec<SeatUsage>)> {
    let who = caller(ctx).await?;
    let id = parse_id(&id, "User")?;
    let now = state(ctx).clock.now();
    let (user, change) = state(ctx)
        .db
        .run(move |c| grants::set_active(c, &who, id, active, now))
        .await?;
    let usage = change
        .usage
        .iter()
        .map(|(site, u)| SeatUsage::new(site.id, *u))
        .collect();
    Ok((User::new(user), usage))
}

/// `groups::add_members` or `groups::remove_members`.
type MembersChange = fn(
    &mut diesel::PgConnection,
    &crate::store::access::Caller,
    Uuid,
    Vec<Uuid>,
    bool,
    chrono::DateTime<chrono::Utc>,
) -> AppResult<AccessChange>;

/// Adds people to a group or takes them out (`change` is `groups::add_members` or
/// `groups::remove_members`): what changed, and the group as it is after (null if it was deleted
/// meanwhile), read in the same database call.
async fn group_members(
    ctx: &Context<'_>,
    input: GroupMembersInput,
    change: MembersChange,
) -> AppResult<(AccessChange, Option<Group>)> {
    let who = caller(ctx).await?;
    let group = parse_id(&input.group_id, "Group")?;
    let users = ids(&input.user_ids, "User")?;
    let now = state(ctx).clock.now();
    let org = who.user.organization_id;
    let (change, group) = state(ctx)
        .db
        .run(move |c| {
            let change = change(c, &who, group, users, input.dry_run, now)?;
            Ok((
                change,
                super::node::existing(groups::group_in_org(c, org, group))?,
            ))
        })
        .await?;
    Ok((change, group.map(Group)))
}

/// Runs a change of one person's access, then reads the person as they are after it (null if they
/// no longer exist), in the same database call.
async fn with_user<F>(
    ctx: &Context<'_>,
    who: crate::store::access::Caller,
    user: Uuid,
    change: F,
) -> AppResult<(AccessChange, Option<User>)>
where
    F: FnOnce(&mut diesel::PgConnection, &crate::store::access::Caller) -> AppResult<AccessChange>
        + Send
        + 'static,
{
    let org = who.user.organization_id;
    let (change, user) = state(ctx)
        .db
        .run(move |c| {
            let change = change(c, &who)?;
            let user = super::node::existing(crate::store::directory::user_in_org(c, org, user))?;
            Ok((change, user))
        })
        .await?;
    Ok((change, user.map(User::new)))
}

/// The payloads of the access changes: what the change did to everyone's effective roles, or with
/// `dryRun` would do (a dry run changes nothing), and the seats after it; plus the object the
/// mutation acted on. One type per mutation, so each can grow without touching the others; the
/// shared fields are written once here, and each payload's own field is given with its type.
macro_rules! access_change_payloads {
    ($(
        $(#[doc = $doc:literal])*
        $name:ident {
            $(#[doc = $field_doc:literal])*
            $field:ident: $ty:ty
        }
    )*) => {$(
        pub struct $name {
            change: AccessChange,
            $field: $ty,
        }

        $(#[doc = $doc])*
        #[Object]
        impl $name {
            /// True: nothing was changed, and this is what the change would do.
            async fn dry_run(&self) -> bool {
                self.change.dry_run
            }
            /// Every person whose effective role on a site changes.
            async fn changes(&self) -> Vec<AccessChangeEntry> {
                self.change
                    .changes
                    .iter()
                    .cloned()
                    .map(AccessChangeEntry)
                    .collect()
            }
            /// Seat usage after the change, one per affected site.
            async fn seat_usage(&self) -> Vec<SeatUsage> {
                self.change
                    .usage
                    .iter()
                    .map(|(site, u)| SeatUsage::new(site.id, *u))
                    .collect()
            }
            $(#[doc = $field_doc])*
            async fn $field(&self) -> &$ty {
                &self.$field
            }
        }
    )*};
}

access_change_payloads! {
    /// What `deleteGroup` did to its members' roles, or with `dryRun` would do (a dry run changes
    /// nothing), and which group it deleted.
    DeleteGroupPayload {
        /// The deleted group's global id: it no longer resolves (with `dryRun`, the group that
        /// would be deleted, which still exists).
        deleted_group_id: ID
    }
    /// What `setGroupProductRole` did, or with `dryRun` would do (a dry run changes nothing), and
    /// the group.
    SetGroupProductRolePayload {
        /// The group, with its role on the site now (with `dryRun`, as it still is); null when it
        /// no longer exists.
        group: Option<Group>
    }
    /// What `addGroupMembers` did, or with `dryRun` would do (a dry run changes nothing), and the
    /// group.
    AddGroupMembersPayload {
        /// The group, with its new members (with `dryRun`, as it still is); null when it no longer
        /// exists.
        group: Option<Group>
    }
    /// What `removeGroupMembers` did, or with `dryRun` would do (a dry run changes nothing), and
    /// the group.
    RemoveGroupMembersPayload {
        /// The group, without the people taken out (with `dryRun`, as it still is); null when it no
        /// longer exists.
        group: Option<Group>
    }
    /// What `setProductRole` did, or with `dryRun` would do (a dry run changes nothing), and the
    /// person.
    SetProductRolePayload {
        /// The person, with their new role on the site (with `dryRun`, as they still are).
        user: Option<User>
    }
    /// What `removeProductAccess` did, or with `dryRun` would do (a dry run changes nothing), and
    /// the person.
    RemoveProductAccessPayload {
        /// The person, without access to the site (with `dryRun`, as they still are).
        user: Option<User>
    }
}

/// The group `createGroup` created.
#[derive(SimpleObject)]
pub struct CreateGroupPayload {
    /// The new group, with no members and no role yet.
    pub group: Group,
}

/// The group `renameGroup` renamed.
#[derive(SimpleObject)]
pub struct RenameGroupPayload {
    /// The group, with its new name.
    pub group: Group,
}

/// The person whose admin role `setAdminRole` granted or took away.
#[derive(SimpleObject)]
pub struct SetAdminRolePayload {
    /// The person, as they are now.
    pub user: User,
}

/// The space and the person `addSpaceAdmin` made its admin.
#[derive(SimpleObject)]
pub struct AddSpaceAdminPayload {
    /// The space.
    pub space: Space,
    /// Its new admin.
    pub user: User,
}

/// The space and the person `removeSpaceAdmin` took the admin role from.
#[derive(SimpleObject)]
pub struct RemoveSpaceAdminPayload {
    /// The space.
    pub space: Space,
    /// The person, no longer its admin.
    pub user: User,
}

/// The account `deactivateUser` deactivated, and the seats it freed.
#[derive(SimpleObject)]
pub struct DeactivateUserPayload {
    /// The account, now `DEACTIVATED`.
    pub user: User,
    /// Seat usage of every site where the account held a seat, after the change.
    pub seat_usage: Vec<SeatUsage>,
}

/// The account `reactivateUser` reactivated, and the seats it takes back.
#[derive(SimpleObject)]
pub struct ReactivateUserPayload {
    /// The account, now `ACTIVE`.
    pub user: User,
    /// Seat usage of every site where the account takes a seat back, after the change.
    pub seat_usage: Vec<SeatUsage>,
}

/// A page of a site's guests (`guests(siteId)`, `Site.guests`).
pub(crate) async fn guests_of(
    ctx: &Context<'_>,
    site: Uuid,
    first: Option<i32>,
    after: Option<String>,
    filter: Option<GuestFilterInput>,
    order_by: Option<GuestOrderInput>,
) -> AppResult<Option<Page<User>>> {
    let (limit, after) = page::<GuestKey>(first, after)?;
    let order = order_by.map(|o| o.order()).unwrap_or_default();
    let f = filter.unwrap_or_default();
    let filter = GuestFilter {
        space_id: f
            .space_id
            .as_ref()
            .map(|s| parse_id(s, "Space"))
            .transpose()?,
        without_space: f.without_space,
        search: f.search.map(|s| s.chars().take(200).collect()),
        external: f.external,
        ..Default::default()
    };
    let (_, access) = super::site_access(ctx, site).await?;
    if !access.sees_whole_site() && access.admin_of_spaces.is_empty() {
        return Err(AppError::Forbidden);
    }
    // The order tells each guest's last activity relative to the others': only for those who
    // see it (`lastActiveAt`), the site's admins.
    if order.by == GuestSort::LastActiveAt {
        let admin = crate::domain::authorization::Object::SiteAdministration { site };
        super::require_sight(ctx, admin).await?;
    }
    guest_page(ctx, site, order, limit, after, move |_| Ok(filter))
        .await
        .map(Some)
}

/// A page of a site's guests not active for `inactive_for_days` days (`inactiveGuests(siteId)`,
/// `Site.inactiveGuests`).
pub(crate) async fn inactive_guests_of(
    ctx: &Context<'_>,
    site: Uuid,
    inactive_for_days: i32,
    first: Option<i32>,
    after: Option<String>,
) -> AppResult<Option<Page<User>>> {
    let (limit, after) = page::<GuestKey>(first, after)?;
    if !(1..=3650).contains(&inactive_for_days) {
        return Err(AppError::invalid(
            "inactiveForDays",
            "must be between 1 and 3,650",
        ));
    }
    let (_, access) = super::site_access(ctx, site).await?;
    access.require_admin()?;
    let filter = GuestFilter {
        inactive_before: Some(
            state(ctx).clock.now() - chrono::Duration::days(inactive_for_days.into()),
        ),
        ..Default::default()
    };
    let order = GuestOrder::default();
    guest_page(ctx, site, order, limit, after, move |_| Ok(filter))
        .await
        .map(Some)
}
