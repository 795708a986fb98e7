//! GraphQL output types: thin wrappers around store rows. Doc comments become schema descriptions.

use super::ids::{Kind, global as gid};
use super::loaders::{
    AdminGrantsOf, AuthenticatorOf, DomainsOf, GroupsOf, GuestCountOf, GuestSpaceOf, PersonOf,
    PolicyOf, SpaceAdminsOf, UserById,
};
use super::{caller, state};
use crate::domain::ProductRole;
use crate::domain::authorization::{Action, Object, Person, Sight, may_change, may_see};
use crate::domain::seats::Usage;
use crate::domain::status;
use crate::error::{AppError, AppResult};
use crate::store::models::{self, InviteStatus};
use crate::store::{access, content, directory, invites};
use async_graphql::connection::{Connection, EmptyFields};
use async_graphql::{Context, ID, Object, SimpleObject};
use chrono::{DateTime, Utc};

/// Extra fields on every connection.
#[derive(SimpleObject)]
pub struct Total {
    /// How many items the whole list holds.
    pub total_count: i64,
}

pub type Page<N> = Connection<String, N, Total, EmptyFields>;

/// Whether the caller may make a change: the policy's decision on the change itself
/// ([`may_change`]), which the mutation making it asks too, so a `viewerCan*` field and the
/// mutation's `FORBIDDEN` never disagree.
async fn viewer_may(ctx: &Context<'_>, action: Action<'_>) -> AppResult<bool> {
    Ok(may_change(&*super::viewer(ctx).await?, action))
}

pub struct Organization(pub models::Organization);

/// An organization: the owner of accounts, sites and groups.
#[Object]
impl Organization {
    /// The organization's global id.
    pub async fn id(&self) -> AppResult<ID> {
        Ok(gid(Kind::Organization, self.0.id))
    }
    /// The organization's name.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Used to sign in (`login(input: { organization })`).
    async fn slug(&self) -> &str {
        &self.0.slug
    }
    /// Email domains the organization owns; users outside them are external (staff).
    async fn verified_domains(&self, ctx: &Context<'_>) -> AppResult<Option<Vec<String>>> {
        let org = self.0.id;
        super::require_sight(ctx, Object::OrganizationDomains { org }).await?;
        state(ctx)
            .db
            .run(move |c| crate::store::org::verified_domains(c, org))
            .await
            .map(Some)
    }
}

pub struct Site(pub models::Site);

impl Site {
    async fn require(&self, ctx: &Context<'_>, object: Object<'_>) -> AppResult<()> {
        super::require_sight(ctx, object).await
    }
    async fn settings<T>(&self, ctx: &Context<'_>, value: T) -> AppResult<Option<T>> {
        self.require(ctx, Object::SiteSettings { site: self.0.id })
            .await?;
        Ok(Some(value))
    }
}

/// A site: where product roles, seats and spaces live. Guests see its id and name only.
#[Object]
impl Site {
    /// The site's global id (anyone with access to the site, guests included; `FORBIDDEN` to others).
    pub async fn id(&self, ctx: &Context<'_>) -> AppResult<ID> {
        self.require(ctx, Object::Site { site: self.0.id }).await?;
        Ok(gid(Kind::Site, self.0.id))
    }
    /// The site's name (anyone with access to the site, guests included; `FORBIDDEN` to others).
    async fn name(&self, ctx: &Context<'_>) -> AppResult<&str> {
        self.require(ctx, Object::Site { site: self.0.id }).await?;
        Ok(&self.0.name)
    }
    /// Paid users plus guests (pending invites included) may never exceed it.
    async fn user_limit(&self, ctx: &Context<'_>) -> AppResult<Option<i32>> {
        self.settings(ctx, self.0.user_limit).await
    }
    /// Guests allowed per paid user.
    async fn guest_ratio(&self, ctx: &Context<'_>) -> AppResult<Option<i32>> {
        self.settings(ctx, self.0.guest_ratio).await
    }
    /// Default lifetime of new invites, in days.
    async fn invite_expiry_days(&self, ctx: &Context<'_>) -> AppResult<Option<i32>> {
        self.settings(ctx, self.0.invite_expiry_days).await
    }
    /// Every guest's access ends at most this many days after it starts (null: no maximum).
    async fn max_guest_lifetime_days(&self, ctx: &Context<'_>) -> AppResult<Option<i32>> {
        Ok(self
            .settings(ctx, self.0.max_guest_lifetime_days)
            .await?
            .flatten())
    }
    /// Days before a guest's access ends when the guest and their sponsor are reminded.
    async fn guest_reminder_days(&self, ctx: &Context<'_>) -> AppResult<Option<i32>> {
        self.settings(ctx, self.0.guest_reminder_days).await
    }
    /// The site's spaces the caller reaches (as `spaces(siteId)`).
    async fn spaces(&self, ctx: &Context<'_>) -> AppResult<Option<Vec<Space>>> {
        super::query::spaces_of(ctx, self.0.id).await
    }
    /// The site's people directory (as `users(siteId)`: admins and paid users).
    #[graphql(complexity = "super::page_cost(first, child_complexity)")]
    async fn users(
        &self,
        ctx: &Context<'_>,
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
        order_by: Option<super::query::UserOrderInput>,
    ) -> AppResult<Option<Page<SiteUser>>> {
        super::query::users_of(ctx, self.0.id, first, after, external, order_by).await
    }
    /// The site's guests (as `guests(siteId)`: whoever sees the site whole or administers one of its
    /// spaces).
    #[graphql(complexity = "super::page_cost(first, child_complexity)")]
    async fn guests(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "How many guests to return, 0 to 100 (20 when left out); anything else is `INVALID_INPUT`."
        )]
        first: Option<i32>,
        #[graphql(
            desc = "Continue after this cursor: `pageInfo.endCursor` (or an edge's `cursor`) from this same list; anything else is `INVALID_INPUT`."
        )]
        after: Option<String>,
        #[graphql(desc = "Narrows the list; every guest of the site when left out.")]
        filter: Option<super::people::GuestFilterInput>,
        #[graphql(
            desc = "The order: by email ascending when left out. Ordering by `LAST_ACTIVE_AT` is for site admins only (`FORBIDDEN` otherwise)."
        )]
        order_by: Option<super::people::GuestOrderInput>,
    ) -> AppResult<Option<Page<User>>> {
        super::people::guests_of(ctx, self.0.id, first, after, filter, order_by).await
    }
    /// The site's guests not active for `inactiveForDays` days (as `inactiveGuests(siteId)`: admins).
    #[graphql(complexity = "super::page_cost(first, child_complexity)")]
    async fn inactive_guests(
        &self,
        ctx: &Context<'_>,
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
        super::people::inactive_guests_of(ctx, self.0.id, inactive_for_days, first, after).await
    }
    /// The site's invites, newest first (as `invites(siteId)`: admins).
    #[graphql(complexity = "super::page_cost(first, child_complexity)")]
    async fn invites(
        &self,
        ctx: &Context<'_>,
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
        super::query::invites_of(ctx, self.0.id, status, first, after).await
    }
    /// The site's bulk invite files, newest first (as `bulkInvites(siteId)`: admins).
    #[graphql(complexity = "super::page_cost(first, child_complexity)")]
    async fn bulk_invites(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "How many bulk invites to return, 0 to 100 (20 when left out); anything else is `INVALID_INPUT`."
        )]
        first: Option<i32>,
        #[graphql(
            desc = "Continue after this cursor: `pageInfo.endCursor` (or an edge's `cursor`) from this same list; anything else is `INVALID_INPUT`."
        )]
        after: Option<String>,
    ) -> AppResult<Option<Page<super::bulk::BulkInvite>>> {
        super::bulk::bulk_invites_of(ctx, self.0.id, first, after).await
    }
    /// Seat usage right now (admins only).
    async fn seat_usage(&self, ctx: &Context<'_>) -> AppResult<Option<SeatUsage>> {
        let site = self.0.clone();
        self.require(ctx, Object::SiteAdministration { site: site.id })
            .await?;
        let now = state(ctx).clock.now();
        let id = site.id;
        state(ctx)
            .db
            .run(move |c| directory::seat_usage(c, &site, now))
            .await
            .map(|u| Some(SeatUsage::new(id, u)))
    }
    /// Whether the caller may invite people to this site (`inviteUsers`): its site admins and the
    /// organization's admins. The same decision `inviteUsers` takes, which answers `FORBIDDEN`
    /// exactly when this is false (inviting people into groups also needs the right to add members
    /// to each group; addresses and seats are judged after).
    async fn viewer_can_invite(&self, ctx: &Context<'_>) -> AppResult<bool> {
        viewer_may(ctx, Action::ManageSite { site: self.0.id }).await
    }
    /// Whether the caller administers this site: may change its settings (`updateSiteSettings`) and
    /// read its `seatUsage`, invites and bulk invites (its site admins and the organization's
    /// admins). The same decision `updateSiteSettings` takes, which answers `FORBIDDEN` exactly when
    /// this is false.
    async fn viewer_can_administer(&self, ctx: &Context<'_>) -> AppResult<bool> {
        viewer_may(ctx, Action::ManageSite { site: self.0.id }).await
    }
}

pub struct SeatUsage {
    pub site_id: uuid::Uuid,
    pub usage: Usage,
}

impl SeatUsage {
    pub fn new(site_id: uuid::Uuid, usage: Usage) -> Self {
        Self { site_id, usage }
    }
}

/// Who occupies a site's seats, and what is left.
#[Object]
impl SeatUsage {
    /// The site these numbers are for (global id).
    #[graphql(deprecation = "Use `site { id }`; removed in the next release.")]
    async fn site_id(&self) -> ID {
        gid(Kind::Site, self.site_id)
    }
    /// The site these numbers are for.
    async fn site(&self, ctx: &Context<'_>) -> AppResult<Option<Site>> {
        super::node::site(ctx, self.site_id).await.map(Some)
    }
    /// Active users whose effective role is USER or PRODUCT_ADMIN.
    async fn paid_users(&self) -> i64 {
        self.usage.counts.paid
    }
    /// Active users whose effective role is GUEST.
    async fn guests(&self) -> i64 {
        self.usage.counts.guests
    }
    /// Pending invites that make a paid user (USER or PRODUCT_ADMIN) on acceptance: each holds a seat.
    async fn pending_paid_invites(&self) -> i64 {
        self.usage.counts.pending_paid
    }
    /// Pending invites that make a guest on acceptance: each holds a seat and a place in the guest
    /// allowance.
    async fn pending_guest_invites(&self) -> i64 {
        self.usage.counts.pending_guests
    }
    /// The site's `userLimit`: paid users plus guests (pending invites included) may never exceed it.
    async fn user_limit(&self) -> i64 {
        self.usage.limits.user_limit
    }
    /// The site's `guestRatio`: guests allowed per paid user.
    async fn guest_ratio(&self) -> i64 {
        self.usage.limits.guest_ratio
    }
    /// `guestRatio x paidUsers`: only accepted paid users raise it.
    async fn guest_allowance(&self) -> i64 {
        self.usage.guest_allowance
    }
    /// `userLimit` minus paid, guests and pending invites; negative when a lowered limit left the site over.
    async fn remaining_seats(&self) -> i64 {
        self.usage.remaining_seats
    }
    /// The smaller of the guest slots left and the remaining seats.
    async fn remaining_guest_slots(&self) -> i64 {
        self.usage.remaining_guest_slots
    }
    /// How many guests (pending included) are beyond the allowance; nothing adding a guest is accepted until 0.
    async fn over_guest_allowance_by(&self) -> i64 {
        self.usage.over_guest_allowance_by
    }
}

pub struct Space(pub models::Space);

impl Space {
    /// The object for a nested field: `FORBIDDEN` (that field alone) when the caller may not see it.
    pub async fn seen(ctx: &Context<'_>, space: models::Space) -> AppResult<Self> {
        let s = Self(space);
        s.require(ctx).await?;
        Ok(s)
    }
    async fn require(&self, ctx: &Context<'_>) -> AppResult<()> {
        let (site, space) = (self.0.site_id, self.0.id);
        super::require_sight(ctx, Object::Space { site, space }).await
    }
}

/// A space: guests reach exactly one per site.
#[Object]
impl Space {
    /// The space's global id.
    pub async fn id(&self, ctx: &Context<'_>) -> AppResult<ID> {
        self.require(ctx).await?;
        Ok(gid(Kind::Space, self.0.id))
    }
    /// Its short key, unique on the site: upper-case letters and digits, starting with a letter
    /// (e.g. `DOCS`).
    async fn key(&self, ctx: &Context<'_>) -> AppResult<&str> {
        self.require(ctx).await?;
        Ok(&self.0.key)
    }
    /// The space's name.
    async fn name(&self, ctx: &Context<'_>) -> AppResult<&str> {
        self.require(ctx).await?;
        Ok(&self.0.name)
    }
    /// The site the space belongs to (global id).
    #[graphql(deprecation = "Use `site { id }`; removed in the next release.")]
    async fn site_id(&self, ctx: &Context<'_>) -> AppResult<ID> {
        self.require(ctx).await?;
        Ok(gid(Kind::Site, self.0.site_id))
    }
    /// The site the space belongs to.
    async fn site(&self, ctx: &Context<'_>) -> AppResult<Option<Site>> {
        self.require(ctx).await?;
        super::node::site(ctx, self.0.site_id).await.map(Some)
    }
    /// Guests of the site whose one space this is (people who see the whole site, and space admins).
    async fn guest_count(&self, ctx: &Context<'_>) -> AppResult<Option<i64>> {
        let (site, space) = (self.0.site_id, self.0.id);
        super::require_sight(ctx, Object::SpaceGuests { site, space }).await?;
        Ok(Some(
            super::loaders(ctx)?
                .load_one(GuestCountOf(self.0.id))
                .await?
                .unwrap_or(0),
        ))
    }
    /// The space's pages, oldest first (anyone who reaches the space).
    #[graphql(complexity = "super::page_cost(first, child_complexity)")]
    async fn pages(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "How many pages to return, 0 to 100 (20 when left out); anything else is `INVALID_INPUT`."
        )]
        first: Option<i32>,
        #[graphql(
            desc = "Continue after this cursor: `pageInfo.endCursor` (or an edge's `cursor`) from this same list; anything else is `INVALID_INPUT`."
        )]
        after: Option<String>,
    ) -> AppResult<Option<Page<Page_>>> {
        self.require(ctx).await?;
        let (limit, after) = super::page::<(DateTime<Utc>, uuid::Uuid)>(first, after)?;
        let id = self.0.id;
        let with_total = ctx.look_ahead().field("totalCount").exists();
        let (rows, total) = state(ctx)
            .db
            .run(move |c| content::pages(c, id, after, limit + 1, with_total))
            .await?;
        Ok(Some(super::query::paginate(
            rows,
            limit,
            total,
            |p| (p.created_at, p.id),
            Page_,
        )))
    }
    /// The people who hold a space admin role on this space (`addSpaceAdmin`), by email; a role kept
    /// by someone who is no longer paid on the site is listed too (it gives nothing until they are
    /// again). Told to whoever may see the space's guests, as `guestCount` is: the site's admins and
    /// paid users, and the space's own admins, who see the people of the site anyway; not to the
    /// space's guests, who see no one's roles. Only people the caller may see are listed.
    async fn admins(&self, ctx: &Context<'_>) -> AppResult<Option<Vec<User>>> {
        let (site, space) = (self.0.site_id, self.0.id);
        super::require_sight(ctx, Object::SpaceGuests { site, space }).await?;
        let loaders = super::loaders(ctx)?;
        let users = loaders
            .load_one(SpaceAdminsOf(space))
            .await?
            .unwrap_or_default();
        let persons = loaders
            .load_many(users.iter().map(|u| PersonOf(u.id)))
            .await?;
        let v = super::viewer(ctx).await?;
        Ok(Some(
            users
                .into_iter()
                .filter(|u| {
                    persons
                        .get(&PersonOf(u.id))
                        .is_some_and(|p| may_see(&v, Object::Person(p)) >= Sight::NameOnly)
                })
                .map(User::new)
                .collect(),
        ))
    }
    /// Whether the caller may put guests in this space and take them out (`assignGuestSpace`,
    /// `unassignGuestSpace`): the site's admins and product admins, and this space's admins. The same
    /// decision `assignGuestSpace` takes, which answers `FORBIDDEN` exactly when this is false (a
    /// space admin still may not move a guest out of another space).
    async fn viewer_can_manage(&self, ctx: &Context<'_>) -> AppResult<bool> {
        let (site, space) = (self.0.site_id, self.0.id);
        viewer_may(ctx, Action::ManageGuestsOf { site, space }).await
    }
}

/// Named with a trailing underscore to keep `Page` free for connection pages.
pub struct Page_(pub models::Page);

/// A page of content inside a space.
#[Object(name = "Page")]
impl Page_ {
    /// The page's global id.
    pub async fn id(&self) -> AppResult<ID> {
        Ok(gid(Kind::Page, self.0.id))
    }
    /// The title: one line, at most 200 characters.
    async fn title(&self) -> &str {
        &self.0.title
    }
    /// The text, at most 100,000 characters: plain text whose line breaks are `\n` (empty when the
    /// page was created without one).
    async fn body(&self) -> &str {
        &self.0.body
    }
    /// The space the page belongs to (global id).
    #[graphql(deprecation = "Use `space { id }`; removed in the next release.")]
    async fn space_id(&self) -> ID {
        gid(Kind::Space, self.0.space_id)
    }
    /// The space the page belongs to.
    async fn space(&self, ctx: &Context<'_>) -> AppResult<Option<Space>> {
        super::node::space(ctx, self.0.space_id).await.map(Some)
    }
    /// When the page was created.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// A person's account. What the caller sees of it is the policy's decision
/// ([`Object::Person`]): everything, or (a guest looking at whoever invited or sponsors them) only the
/// id and display name. Every field asks, whatever path reached the object.
pub struct User {
    pub user: models::User,
    /// The response answers to this very person, who just proved it without a token (the account
    /// `acceptInvite` signed in): they see all of their own account.
    own: bool,
    /// The person as the policy sees them, loaded by the first field that asks: every field of the
    /// object asks, and a list row has several (a per-request loader call each cost more CPU than the
    /// field itself on the guest list).
    person: tokio::sync::OnceCell<Person>,
}

impl User {
    pub fn new(user: models::User) -> Self {
        Self {
            user,
            own: false,
            person: tokio::sync::OnceCell::new(),
        }
    }

    /// The account a token-less call has just signed in (see [`User::own`]).
    pub fn signed_in(user: models::User) -> Self {
        Self {
            own: true,
            ..Self::new(user)
        }
    }

    /// The object for a nested field: `FORBIDDEN` (that field alone) when the caller may not even
    /// see the person's name.
    pub async fn seen(ctx: &Context<'_>, user: models::User) -> AppResult<Self> {
        let u = Self::new(user);
        u.require(ctx, Sight::NameOnly).await?;
        Ok(u)
    }

    async fn person(&self, ctx: &Context<'_>) -> AppResult<&Person> {
        self.person
            .get_or_try_init(|| super::person(ctx, self.user.id))
            .await
    }

    /// The caller is this person (even while they must verify again: their identity answers then).
    async fn is_self(&self, ctx: &Context<'_>) -> AppResult<bool> {
        Ok(super::caller_to_reverify_ref(ctx).await?.user.id == self.user.id)
    }

    async fn require(&self, ctx: &Context<'_>, at_least: Sight) -> AppResult<()> {
        if self.own {
            return Ok(());
        }
        let p = self.person(ctx).await?;
        if super::sight(ctx, Object::Person(p)).await? >= at_least {
            Ok(())
        } else {
            Err(AppError::Forbidden)
        }
    }

    /// Identity fields answer the person themselves at any time, others by the policy.
    async fn require_identity(&self, ctx: &Context<'_>, at_least: Sight) -> AppResult<()> {
        if self.own || self.is_self(ctx).await? {
            Ok(())
        } else {
            self.require(ctx, at_least).await
        }
    }

    async fn require_object(&self, ctx: &Context<'_>, object: Object<'_>) -> AppResult<()> {
        super::require_sight(ctx, object).await
    }

    /// Verification state answers the person themselves even while they must verify again (it says
    /// until when, and why the rest is refused); others by the policy.
    async fn require_security(&self, ctx: &Context<'_>) -> AppResult<()> {
        if self.own || self.is_self(ctx).await? {
            return Ok(());
        }
        let p = self.person(ctx).await?;
        self.require_object(ctx, Object::PersonSecurity(p)).await
    }

    /// The person's standing on `site` (role, space, end of access).
    async fn require_on_site(&self, ctx: &Context<'_>, site: &ID) -> AppResult<uuid::Uuid> {
        let site = super::parse_id(site, "Site")?;
        let p = self.person(ctx).await?;
        self.require_object(ctx, Object::PersonOnSite { person: p, site })
            .await?;
        Ok(site)
    }

    async fn external(&self, ctx: &Context<'_>) -> AppResult<bool> {
        let domains = super::loaders(ctx)?
            .load_one(DomainsOf(self.user.organization_id))
            .await?
            .unwrap_or_default();
        Ok(crate::domain::policy::is_external(
            &self.user.email_domain,
            &domains,
        ))
    }
}

/// A person's account in the organization. What the caller sees of it depends on who they are:
/// everything, or (a guest looking at whoever invited or sponsors them) only `id` and `displayName`,
/// every other field then answering null with `FORBIDDEN`. The person themselves always sees their own
/// identity (`id`, `displayName`, `email`, `isExternal`).
#[Object]
impl User {
    /// The person's global id.
    pub async fn id(&self, ctx: &Context<'_>) -> AppResult<ID> {
        self.require_identity(ctx, Sight::NameOnly).await?;
        Ok(gid(Kind::User, self.user.id))
    }
    /// The person's name, as they gave it.
    async fn display_name(&self, ctx: &Context<'_>) -> AppResult<&str> {
        self.require_identity(ctx, Sight::NameOnly).await?;
        Ok(&self.user.display_name)
    }
    /// Null with `FORBIDDEN` for a guest looking at whoever invited or sponsors them.
    async fn email(&self, ctx: &Context<'_>) -> AppResult<Option<&str>> {
        self.require_identity(ctx, Sight::Full).await?;
        Ok(Some(&self.user.email))
    }
    /// `ACTIVE` or `DEACTIVATED`.
    async fn status(&self, ctx: &Context<'_>) -> AppResult<Option<&str>> {
        self.require(ctx, Sight::Full).await?;
        Ok(Some(self.user.status.as_str()))
    }
    /// When the account was created.
    async fn created_at(&self, ctx: &Context<'_>) -> AppResult<Option<DateTime<Utc>>> {
        self.require(ctx, Sight::Full).await?;
        Ok(Some(self.user.created_at))
    }
    /// The highest of the direct role and the roles of the user's groups on that site; null: no access.
    async fn effective_role(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "The site (global id). `FORBIDDEN` unless the caller is this person or sees the site's guests (its admins and paid users, and admins of one of its spaces)."
        )]
        site_id: ID,
    ) -> AppResult<Option<ProductRole>> {
        let site = self.require_on_site(ctx, &site_id).await?;
        let uid = self.user.id;
        state(ctx)
            .db
            .run(move |c| access::effective_role_of(c, site, uid))
            .await
    }
    /// Has held a paid role on that site at some point: can never be a guest there.
    async fn is_former_paid(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "The site (global id). `FORBIDDEN` unless the caller is this person or sees the site's guests (its admins and paid users, and admins of one of its spaces)."
        )]
        site_id: ID,
    ) -> AppResult<Option<bool>> {
        let site = self.require_on_site(ctx, &site_id).await?;
        let uid = self.user.id;
        state(ctx)
            .db
            .run(move |c| access::is_former_paid(c, site, uid))
            .await
            .map(Some)
    }
    /// Why this person is or is not counted as a paid seat on that site (site admins).
    async fn billing(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The site (global id); `FORBIDDEN` unless the caller administers it.")]
        site_id: ID,
    ) -> AppResult<Option<Billing>> {
        let site = super::parse_id(&site_id, "Site")?;
        self.require(ctx, Sight::Full).await?;
        self.require_object(ctx, Object::SiteAdministration { site })
            .await?;
        let user = self.user.clone();
        let b = state(ctx)
            .db
            .run(move |c| access::billing(c, site, &user))
            .await?;
        Ok(Some(Billing(b)))
    }
    /// Who invited this person (only their name, when a guest looks at their own inviter).
    async fn invited_by(&self, ctx: &Context<'_>) -> AppResult<Option<User>> {
        self.require(ctx, Sight::Full).await?;
        let Some(inviter) = self.user.invited_by else {
            return Ok(None);
        };
        let user = super::loaders(ctx)?
            .load_one(UserById(inviter))
            .await?
            .filter(|u| u.organization_id == self.user.organization_id);
        match user {
            Some(u) => Ok(Some(User::seen(ctx, u).await?)),
            None => Ok(None),
        }
    }
    /// Their email domain is not one the organization verified: external user security applies.
    async fn is_external(&self, ctx: &Context<'_>) -> AppResult<Option<bool>> {
        self.require_identity(ctx, Sight::Full).await?;
        self.external(ctx).await.map(Some)
    }
    /// For an external user, when their current verification period ends (the person and admins).
    async fn verified_until(&self, ctx: &Context<'_>) -> AppResult<Option<DateTime<Utc>>> {
        self.require_security(ctx).await?;
        if !self.external(ctx).await? {
            return Ok(None);
        }
        let policy = super::loaders(ctx)?
            .load_one(PolicyOf(self.user.organization_id))
            .await?
            .unwrap_or_default();
        Ok(Some(crate::domain::policy::verified_until(
            self.user.verified_at,
            self.user.created_at,
            &policy,
        )))
    }
    /// When the person last used Guestpass (recorded at most hourly; the person and admins).
    async fn last_active_at(&self, ctx: &Context<'_>) -> AppResult<Option<DateTime<Utc>>> {
        self.require_security(ctx).await?;
        Ok(self.user.last_active_at)
    }
    /// Whether two-step codes are required of this person in particular (`setTwoStepRequired`):
    /// every sign-in then asks for one. The organization's external user policy may require them of
    /// an external user whatever this says. For the person and admins, like `verifiedUntil`.
    async fn two_step_required(&self, ctx: &Context<'_>) -> AppResult<Option<bool>> {
        self.require_security(ctx).await?;
        Ok(Some(self.user.two_step_required))
    }
    /// Whether this person has an authenticator app enrolled and confirmed: their sign-ins then ask
    /// for its codes (the person and admins, like `verifiedUntil`).
    async fn has_authenticator(&self, ctx: &Context<'_>) -> AppResult<Option<bool>> {
        self.require_security(ctx).await?;
        Ok(Some(
            super::loaders(ctx)?
                .load_one(AuthenticatorOf(self.user.id))
                .await?
                .unwrap_or(false),
        ))
    }
    /// The admin roles this person holds (`setAdminRole`, `addSpaceAdmin`). For the person
    /// themselves and whoever sees their account whole; like `access`, not while the person must
    /// verify again.
    async fn admin_roles(&self, ctx: &Context<'_>) -> AppResult<Option<AdminRoles>> {
        self.require(ctx, Sight::Full).await?;
        let organization_admin = self.person(ctx).await?.org_admin;
        let grants = super::loaders(ctx)?
            .load_one(AdminGrantsOf(self.user.id))
            .await?
            .unwrap_or_default();
        let v = super::viewer(ctx).await?;
        let sees = |object| may_see(&v, object) == Sight::Full;
        Ok(Some(AdminRoles {
            organization_admin,
            sites: grants
                .sites
                .into_iter()
                .filter(|s| sees(Object::Site { site: s.id }))
                .map(Site)
                .collect(),
            spaces: grants
                .spaces
                .into_iter()
                .filter(|s| {
                    sees(Object::Space {
                        site: s.site_id,
                        space: s.id,
                    })
                })
                .map(Space)
                .collect(),
        }))
    }
    /// Where this person stands on each site: role, space, sponsor (their name and email), end of
    /// access, next verification. Only for the person themselves (`me { access { ... } }`), and not
    /// while they must verify again.
    async fn access(
        &self,
        ctx: &Context<'_>,
    ) -> AppResult<Option<Vec<super::lifetimes::MyAccess>>> {
        self.require_object(
            ctx,
            Object::Own {
                owner: self.user.id,
            },
        )
        .await?;
        let who = super::caller(ctx).await?;
        let until = who.external.then(|| {
            crate::domain::policy::verified_until(
                who.user.verified_at,
                who.user.created_at,
                &who.policy,
            )
        });
        let rows = state(ctx)
            .db
            .run(move |c| crate::store::lifetimes::my_access(c, &who))
            .await?;
        Ok(Some(
            rows.into_iter()
                .map(|r| super::lifetimes::MyAccess(r, until))
                .collect(),
        ))
    }
    /// When this guest's access to that site ends (null: it does not; the person and admins).
    async fn access_ends_at(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "The site (global id). `FORBIDDEN` unless the caller is this person or sees the site's guests (its admins and paid users, and admins of one of its spaces)."
        )]
        site_id: ID,
    ) -> AppResult<Option<DateTime<Utc>>> {
        let site = self.require_on_site(ctx, &site_id).await?;
        let uid = self.user.id;
        Ok(state(ctx)
            .db
            .run(move |c| crate::store::lifetimes::terms(c, site, uid))
            .await?
            .and_then(|t| t.ends_at))
    }
    /// The guest's one space on that site, if they are a guest there and have one.
    async fn space(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "The site (global id). `FORBIDDEN` unless the caller is this person or sees the site's guests (its admins and paid users, and admins of one of its spaces)."
        )]
        site_id: ID,
    ) -> AppResult<Option<Space>> {
        let site = self.require_on_site(ctx, &site_id).await?;
        let uid = self.user.id;
        match super::loaders(ctx)?
            .load_one(GuestSpaceOf(site, uid))
            .await?
            .flatten()
        {
            Some(s) => Ok(Some(Space::seen(ctx, s).await?)),
            None => Ok(None),
        }
    }
    /// The groups this person belongs to (staff: guests see no groups, not even their own).
    async fn groups(&self, ctx: &Context<'_>) -> AppResult<Option<Vec<Group>>> {
        self.require(ctx, Sight::Full).await?;
        let org = self.user.organization_id;
        self.require_object(ctx, Object::Group { org }).await?;
        Ok(Some(
            super::loaders(ctx)?
                .load_one(GroupsOf(self.user.id))
                .await?
                .unwrap_or_default()
                .into_iter()
                .map(Group)
                .collect(),
        ))
    }
}

/// The admin roles a person holds. Only the sites and spaces the caller may see are listed.
#[derive(SimpleObject)]
pub struct AdminRoles {
    /// Organization admin: manages everything in the organization, every site and space included,
    /// whatever `sites` and `spaces` list.
    pub organization_admin: bool,
    /// The sites they are a site admin of, by name.
    pub sites: Vec<Site>,
    /// The spaces they are a space admin of, by key (a role kept while they are no longer paid on
    /// the space's site is listed too: it gives nothing until they are again).
    pub spaces: Vec<Space>,
}

pub struct Billing(pub crate::domain::billing::Billing<models::Group>);

/// Why a person is or is not a paid seat on a site.
#[Object]
impl Billing {
    /// Counted as a paid seat.
    async fn billable(&self) -> bool {
        self.0.billable
    }
    /// What decides `billable`.
    async fn reason(&self) -> crate::domain::billing::BillingReason {
        self.0.reason
    }
    /// The group that gives the paid role, when `reason` is `GROUP`.
    async fn group(&self) -> Option<Group> {
        self.0.group.clone().map(Group)
    }
    /// Has held a paid role on the site: can never be a guest there.
    async fn is_former_paid(&self) -> bool {
        self.0.is_former_paid
    }
}

pub struct SiteUser {
    pub user: User,
    pub role: ProductRole,
}

/// One person of a site's people directory, with their effective role there.
#[Object]
impl SiteUser {
    /// The person.
    async fn user(&self) -> &User {
        &self.user
    }
    /// Their effective role on the site: the highest of their direct role and their groups' roles.
    async fn role(&self) -> ProductRole {
        self.role
    }
}

pub struct Invite(pub models::Invite);

impl Invite {
    async fn require(&self, ctx: &Context<'_>) -> AppResult<()> {
        let site = self.0.site_id;
        super::require_sight(ctx, Object::SiteAdministration { site }).await
    }
}

/// An invitation of one address to one site (admins of the site).
#[Object]
impl Invite {
    /// The invite's global id.
    pub async fn id(&self, ctx: &Context<'_>) -> AppResult<ID> {
        self.require(ctx).await?;
        Ok(gid(Kind::Invite, self.0.id))
    }
    /// The invited address: the email goes there, and accepting signs in the account with this
    /// address (created when there is none).
    async fn email(&self, ctx: &Context<'_>) -> AppResult<&str> {
        self.require(ctx).await?;
        Ok(&self.0.email)
    }
    /// The role accepting grants.
    async fn role(&self) -> Option<ProductRole> {
        self.0.role()
    }
    /// Where the invite stands now: a pending invite past `expiresAt` is `EXPIRED`.
    async fn status(&self, ctx: &Context<'_>) -> InviteStatus {
        self.0.status_at(state(ctx).clock.now())
    }
    /// The site the invite gives access to (global id).
    #[graphql(deprecation = "Use `site { id }`; removed in the next release.")]
    async fn site_id(&self) -> ID {
        gid(Kind::Site, self.0.site_id)
    }
    /// The site the invite gives access to.
    async fn site(&self, ctx: &Context<'_>) -> AppResult<Option<Site>> {
        super::node::site(ctx, self.0.site_id).await.map(Some)
    }
    /// The space a guest is assigned on acceptance.
    async fn space(&self, ctx: &Context<'_>) -> AppResult<Option<Space>> {
        self.require(ctx).await?;
        let Some(space) = self.0.space_id else {
            return Ok(None);
        };
        let who = caller(ctx).await?;
        let (s, _) = state(ctx)
            .db
            .run(move |c| content::space_with_access(c, &who, space))
            .await?;
        Ok(Some(Space::seen(ctx, s).await?))
    }
    /// The inviter's own words, shown in the email (null: none); line breaks are `\n`.
    async fn personal_message(&self, ctx: &Context<'_>) -> AppResult<Option<&str>> {
        self.require(ctx).await?;
        Ok(self.0.personal_message.as_deref())
    }
    /// The admin who sent the invite.
    async fn invited_by(&self, ctx: &Context<'_>) -> AppResult<Option<User>> {
        self.require(ctx).await?;
        let who = caller(ctx).await?;
        let id = self.0.invited_by;
        let u = state(ctx)
            .db
            .run(move |c| directory::user_in_org(c, who.user.organization_id, id))
            .await?;
        Ok(Some(User::seen(ctx, u).await?))
    }
    /// When the invite was created.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// Until when the link works: not accepted by then, the invite is `EXPIRED` (`resendInvite`
    /// renews it).
    async fn expires_at(&self) -> DateTime<Utc> {
        self.0.expires_at
    }
    /// When it was accepted (null: not accepted).
    async fn accepted_at(&self) -> Option<DateTime<Utc>> {
        self.0.accepted_at
    }
    /// The latest email sent for this invite (each resend sends a new one).
    async fn email_delivery(&self, ctx: &Context<'_>) -> AppResult<Option<EmailDelivery>> {
        self.require(ctx).await?;
        let id = self.0.id;
        let rows = state(ctx)
            .db
            .run(move |c| invites::deliveries(c, id))
            .await?;
        Ok(rows.into_iter().next().map(EmailDelivery))
    }
    /// Every email sent for this invite, newest first.
    async fn email_deliveries(&self, ctx: &Context<'_>) -> AppResult<Option<Vec<EmailDelivery>>> {
        self.require(ctx).await?;
        let id = self.0.id;
        let rows = state(ctx)
            .db
            .run(move |c| invites::deliveries(c, id))
            .await?;
        Ok(Some(rows.into_iter().map(EmailDelivery).collect()))
    }
}

/// What happened to one email.
#[derive(Clone, Copy, Debug, PartialEq, Eq, async_graphql::Enum)]
pub enum DeliveryStatus {
    /// Waiting for its first attempt.
    Queued,
    /// An attempt is under way.
    Sending,
    /// The mail server accepted it (`sentAt` says when). Final.
    Sent,
    /// An attempt failed for a reason that may pass (`lastError`); the next is due at
    /// `nextAttemptAt`.
    Retrying,
    /// Given up (`lastError` says why): the recipient's server refused it, or it could not go out
    /// while it was still useful. Final; `resendInvite` sends a new email.
    Failed,
    /// Superseded by a resend, or the invite was revoked or accepted before it went out.
    Cancelled,
}

impl From<status::DeliveryStatus> for DeliveryStatus {
    fn from(stored: status::DeliveryStatus) -> Self {
        match stored {
            status::DeliveryStatus::Queued => Self::Queued,
            status::DeliveryStatus::Sending => Self::Sending,
            status::DeliveryStatus::Sent => Self::Sent,
            status::DeliveryStatus::Retrying => Self::Retrying,
            status::DeliveryStatus::Failed => Self::Failed,
            status::DeliveryStatus::Cancelled => Self::Cancelled,
        }
    }
}

pub struct EmailDelivery(pub models::EmailDelivery);

/// One email sent, or to be sent, for an invite, and how its delivery went. Emails go out in the
/// background, with retries: poll this after `inviteUsers` or `resendInvite`.
#[Object]
impl EmailDelivery {
    /// Where the delivery stands.
    async fn status(&self) -> DeliveryStatus {
        self.0.status.into()
    }
    /// The address it goes to.
    async fn recipient(&self) -> &str {
        &self.0.recipient
    }
    /// How many attempts were started so far (0 while `QUEUED`).
    async fn attempts(&self) -> i32 {
        self.0.attempts
    }
    /// The last failure, e.g. the SMTP server's reply.
    async fn last_error(&self) -> Option<&str> {
        self.0.last_error.as_deref()
    }
    /// When the email was queued.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// When the mail server accepted it (null until `SENT`).
    async fn sent_at(&self) -> Option<DateTime<Utc>> {
        self.0.sent_at
    }
    /// When the next attempt is due while `RETRYING` (while `SENDING`, when the attempt under way is
    /// given up on and may be made again); null otherwise.
    async fn next_attempt_at(&self) -> Option<DateTime<Utc>> {
        self.0.next_attempt_at
    }
}

pub struct AuditEvent(pub models::AuditEvent);

/// One recorded change: who did what to what, with the state before and after.
#[Object]
impl AuditEvent {
    /// The event's global id.
    pub async fn id(&self) -> AppResult<ID> {
        Ok(gid(Kind::AuditEvent, self.0.id))
    }
    /// What happened, as `object.verb`: e.g. `invite.create`, `policy.update`, `access.change`,
    /// `login.failure`.
    async fn action(&self) -> &str {
        &self.0.action
    }
    /// Who did it (a user's global id); null: Guestpass itself rather than a person (e.g. the
    /// organization's bootstrap, or a scheduled job).
    #[graphql(deprecation = "Use `actor { id }`; removed in the next release.")]
    async fn actor_id(&self) -> Option<ID> {
        self.0.actor_id.map(|a| gid(Kind::User, a))
    }
    /// Who did it; null: Guestpass itself rather than a person (e.g. the organization's bootstrap,
    /// or a scheduled job), or an account that no longer exists.
    async fn actor(&self, ctx: &Context<'_>) -> AppResult<Option<User>> {
        match self.0.actor_id {
            Some(id) => super::node::existing(super::node::user(ctx, id).await),
            None => Ok(None),
        }
    }
    /// The changed object, as the caller may see it now; null when it no longer exists (a deleted
    /// group, a removed page) or is of a kind no `Node` stands for.
    async fn target(&self, ctx: &Context<'_>) -> AppResult<Option<super::node::Node>> {
        match Kind::of_audit_target(&self.0.target_type) {
            Some(kind) => {
                super::node::existing(super::node::load(ctx, kind, &self.0.target_id).await)
            }
            None => Ok(None),
        }
    }
    /// The kind of object changed, in lower case: e.g. `user`, `invite`, `group`, `site`, `space`,
    /// `page`, `organization`, `bulk_invite`.
    async fn target_type(&self) -> &str {
        &self.0.target_type
    }
    /// The changed object's key: the UUID its global id carries, as text (`auditEvents(filter:
    /// { targetId })` takes either).
    async fn target_id(&self) -> &str {
        &self.0.target_id
    }
    /// The site the change concerns (global id); null when it concerns no one site (e.g. a sign-in,
    /// or an organization setting).
    #[graphql(deprecation = "Use `site { id }`; removed in the next release.")]
    async fn site_id(&self) -> Option<ID> {
        self.0.site_id.map(|a| gid(Kind::Site, a))
    }
    /// The site the change concerns; null when it concerns no one site, or the site no longer
    /// exists.
    async fn site(&self, ctx: &Context<'_>) -> AppResult<Option<Site>> {
        match self.0.site_id {
            Some(id) => super::node::existing(super::node::site(ctx, id).await),
            None => Ok(None),
        }
    }
    /// The changed values as they were before, as a JSON object whose keys depend on `action`
    /// (null: nothing before, e.g. for a creation, or nothing to record).
    async fn before(&self) -> Option<async_graphql::Json<serde_json::Value>> {
        self.0.before.clone().map(async_graphql::Json)
    }
    /// The changed values as they are after, as a JSON object whose keys depend on `action` (null:
    /// nothing to record).
    async fn after(&self) -> Option<async_graphql::Json<serde_json::Value>> {
        self.0.after.clone().map(async_graphql::Json)
    }
    /// When it happened.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

pub struct Group(pub models::Group);

/// A named set of people of the organization; it holds at most one product role per site, which its
/// members get (a guest group makes them guests).
#[Object]
impl Group {
    /// The group's global id.
    pub async fn id(&self, ctx: &Context<'_>) -> AppResult<ID> {
        self.require(ctx).await?;
        Ok(gid(Kind::Group, self.0.id))
    }
    /// The group's name (one line, at most 200 characters).
    async fn name(&self, ctx: &Context<'_>) -> AppResult<&str> {
        self.require(ctx).await?;
        Ok(&self.0.name)
    }
    /// When the group was created.
    async fn created_at(&self, ctx: &Context<'_>) -> AppResult<DateTime<Utc>> {
        self.require(ctx).await?;
        Ok(self.0.created_at)
    }
    /// The role the group gives on each site where it has one (organization admins, and whoever
    /// sees every site it reaches whole).
    async fn site_roles(&self, ctx: &Context<'_>) -> AppResult<Option<Vec<GroupSiteRole>>> {
        let rows = self.require_details(ctx).await?;
        Ok(Some(
            rows.into_iter()
                .map(|(site_id, role)| GroupSiteRole {
                    site_id: gid(Kind::Site, site_id),
                    role,
                })
                .collect(),
        ))
    }
    /// Members by email (organization admins, and whoever sees every site the group reaches whole).
    #[graphql(complexity = "super::page_cost(first, child_complexity)")]
    async fn members(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "How many members to return, 0 to 100 (20 when left out); anything else is `INVALID_INPUT`."
        )]
        first: Option<i32>,
        #[graphql(
            desc = "Continue after this cursor: `pageInfo.endCursor` (or an edge's `cursor`) from this same list; anything else is `INVALID_INPUT`."
        )]
        after: Option<String>,
    ) -> AppResult<Option<Page<User>>> {
        self.require_details(ctx).await?;
        let (limit, after) = super::page::<(String, uuid::Uuid)>(first, after)?;
        let id = self.0.id;
        let (rows, total) = state(ctx)
            .db
            .run(move |c| crate::store::groups::members(c, id, after, limit + 1))
            .await?;
        Ok(Some(super::query::paginate(
            rows,
            limit,
            total,
            |u| (u.email_normalized.clone(), u.id),
            User::new,
        )))
    }
}

impl Group {
    async fn require(&self, ctx: &Context<'_>) -> AppResult<()> {
        let org = self.0.organization_id;
        super::require_sight(ctx, Object::Group { org }).await
    }

    /// The group's site roles, once the caller may see them with its members.
    async fn require_details(
        &self,
        ctx: &Context<'_>,
    ) -> AppResult<Vec<(uuid::Uuid, ProductRole)>> {
        let roles = super::loaders(ctx)?
            .load_one(super::loaders::GroupSitesOf(self.0.id))
            .await?
            .unwrap_or_default();
        let sites: Vec<uuid::Uuid> = roles.iter().map(|(s, _)| *s).collect();
        let org = self.0.organization_id;
        super::require_sight(ctx, Object::GroupDetails { org, sites: &sites }).await?;
        Ok(roles)
    }
}

/// A group's role on one site.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct GroupSiteRole {
    /// The site (global id).
    #[graphql(deprecation = "Use `site { id }`; removed in the next release.")]
    pub site_id: ID,
    /// The role the group's members get there (a higher role of their own, or of another group,
    /// wins).
    pub role: ProductRole,
}

pub struct AccessChangeEntry(pub crate::store::changes::ChangedAccess);

#[async_graphql::ComplexObject]
impl GroupSiteRole {
    /// The site.
    async fn site(&self, ctx: &Context<'_>) -> AppResult<Option<Site>> {
        super::node::site(ctx, super::parse_id(&self.site_id, "Site")?)
            .await
            .map(Some)
    }
}

/// One person's effective role on one site, before and after a change.
#[Object]
impl AccessChangeEntry {
    /// The person whose access changes.
    async fn user(&self) -> User {
        User::new(self.0.user.clone())
    }
    /// The site where it changes.
    async fn site(&self) -> Site {
        Site(self.0.site.clone())
    }
    /// Their effective role before the change (null: no access).
    async fn role_before(&self) -> Option<ProductRole> {
        self.0.change.before
    }
    /// Null: no access (including a guest grant void for a former paid user).
    async fn role_after(&self) -> Option<ProductRole> {
        self.0.change.after
    }
    /// Had access to the site and has none now.
    async fn lost_access(&self) -> bool {
        self.0.change.lost_access()
    }
}

pub struct GuestAssignment(pub crate::store::guests::Assignment);

/// One guest's space before and after an assignment.
#[Object]
impl GuestAssignment {
    /// The guest.
    async fn user(&self) -> User {
        User::new(self.0.user.clone())
    }
    /// The space now (null after unassigning).
    async fn space(&self) -> Option<Space> {
        self.0.space.clone().map(Space)
    }
    /// The space the guest had before, if any (a move when it differs from `space`).
    async fn previous_space(&self) -> Option<Space> {
        self.0.previous.clone().map(Space)
    }
}
