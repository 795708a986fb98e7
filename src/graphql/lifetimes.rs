//! Guest lifetimes and sponsors: extending access, naming sponsors, the sponsor's and the guest's own
//! views, asking for more time and leaving.

use super::ids::{Kind, global as gid};
use super::people::guest_page;
use super::types::{Page, Site, Space, User};
use super::{caller, parse_id, state};
use crate::domain::{ProductRole, text};
use crate::error::{AppError, AppResult};
use crate::store::guests::{GuestKey, GuestOrder};
use crate::store::lifetimes;
use crate::store::models::GuestTerms;
use async_graphql::{Context, ID, InputObject, MergedObject, Object, SimpleObject};
use chrono::{DateTime, Utc};

/// A guest's terms on a site, after a change of them. Never answered on its own: the payloads of
/// the mutations that change the terms merge its fields (`ExtendGuestAccessPayload`,
/// `SetSponsorPayload`), so each payload can grow without touching the other.
pub struct Terms(GuestTerms);

/// A guest's terms on a site: when their access ends and who answers for it.
#[Object(name = "GuestTerms")]
impl Terms {
    /// The guest's id.
    #[graphql(deprecation = "Use `user { id }`; removed in the next release.")]
    async fn user_id(&self) -> ID {
        gid(Kind::User, self.0.user_id)
    }
    /// The site's id.
    #[graphql(deprecation = "Use `site { id }`; removed in the next release.")]
    async fn site_id(&self) -> ID {
        gid(Kind::Site, self.0.site_id)
    }
    /// The guest.
    async fn user(&self, ctx: &Context<'_>) -> AppResult<Option<User>> {
        super::node::user(ctx, self.0.user_id).await.map(Some)
    }
    /// The site.
    async fn site(&self, ctx: &Context<'_>) -> AppResult<Option<Site>> {
        super::node::site(ctx, self.0.site_id).await.map(Some)
    }
    /// The sponsor on record (null: none), as the caller may see them (a guest sees their name).
    async fn sponsor(&self, ctx: &Context<'_>) -> AppResult<Option<User>> {
        match self.0.sponsor_id {
            Some(id) => super::node::user(ctx, id).await.map(Some),
            None => Ok(None),
        }
    }
    /// When the guest's access ends (null: it does not).
    async fn access_ends_at(&self) -> Option<DateTime<Utc>> {
        self.0.ends_at
    }
    /// The sponsor on record (null: none). A sponsor who may no longer sponsor on the site still
    /// shows here but answers for nobody: `guestsWithoutSponsor` lists such guests.
    #[graphql(deprecation = "Use `sponsor { id }`; removed in the next release.")]
    async fn sponsor_id(&self) -> Option<ID> {
        self.0.sponsor_id.map(|s| gid(Kind::User, s))
    }
}

pub struct MyAccess(pub lifetimes::MyAccess, pub Option<DateTime<Utc>>);

/// Where the caller stands on one site where they have access.
#[Object]
impl MyAccess {
    /// The site.
    async fn site(&self) -> Site {
        Site(self.0.site.clone())
    }
    /// The caller's effective role there: the highest of their own role and their groups' roles.
    async fn role(&self) -> ProductRole {
        self.0.role
    }
    /// A guest's one space (null for paid roles, and for a guest not given a space yet: they reach
    /// no content).
    async fn space(&self, ctx: &Context<'_>) -> AppResult<Option<Space>> {
        match self.0.space.clone() {
            Some(s) => Ok(Some(Space::seen(ctx, s).await?)),
            None => Ok(None),
        }
    }
    /// Who answers for a guest's access (a guest sees their display name only; ask for more time
    /// with `requestExtension`, which emails them). Null when nobody does, or the sponsor on record
    /// may no longer sponsor on the site.
    async fn sponsor(&self, ctx: &Context<'_>) -> AppResult<Option<User>> {
        match self.0.sponsor.clone() {
            Some(u) => Ok(Some(User::seen(ctx, u).await?)),
            None => Ok(None),
        }
    }
    /// When a guest's access ends (null: it does not).
    async fn access_ends_at(&self) -> Option<DateTime<Utc>> {
        self.0.ends_at
    }
    /// For an external user, when they must next verify their address; null for internal users.
    async fn verified_until(&self) -> Option<DateTime<Utc>> {
        self.1
    }
}

/// A new end for a guest's access on a site.
#[derive(InputObject)]
pub struct ExtendGuestAccessInput {
    /// The site.
    pub site_id: ID,
    /// The guest; someone who is not a guest of the site is `INVALID_INPUT`.
    pub user_id: ID,
    /// The new end: in the future (`INVALID_INPUT` otherwise) and at most the site's maximum
    /// lifetime from now (`EXTENSION_NOT_ALLOWED` otherwise, with `maxDays`).
    pub ends_at: DateTime<Utc>,
}

/// Who answers for a guest on a site.
#[derive(InputObject)]
pub struct SetSponsorInput {
    /// The site.
    pub site_id: ID,
    /// The guest; someone who is not a guest of the site is `INVALID_INPUT`.
    pub user_id: ID,
    /// An active admin or paid user of the site; anyone else is `INVALID_INPUT`.
    pub sponsor_id: ID,
}

/// A guest's request to their sponsor for more time on a site.
#[derive(InputObject)]
pub struct RequestExtensionInput {
    /// A site where the caller is a guest (`INVALID_INPUT` otherwise).
    pub site_id: ID,
    /// Why, for the sponsor (at most 1,000 characters).
    pub message: Option<String>,
}

/// The guest's terms after `extendGuestAccess`: their access ends at the new date.
#[derive(MergedObject)]
pub struct ExtendGuestAccessPayload(Terms);

/// The guest's terms after `setSponsor`: the new sponsor answers for them.
#[derive(MergedObject)]
pub struct SetSponsorPayload(Terms);

/// Payloads that only acknowledge: one type per mutation, so each can grow without touching the
/// others.
macro_rules! acknowledgements {
    ($($(#[doc = $doc:literal])* $name:ident;)*) => {$(
        $(#[doc = $doc])*
        #[derive(SimpleObject)]
        pub struct $name {
            /// Always true: failures are errors.
            pub ok: bool,
        }
    )*};
}

acknowledgements! {
    /// `requestExtension` emailed the guest's sponsor.
    RequestExtensionPayload;
    /// `leaveSite` ended the caller's access to the site.
    LeaveSitePayload;
}

#[derive(Default)]
pub struct LifetimesQuery;

#[Object]
impl LifetimesQuery {
    /// The guests the caller sponsors on a site, by email. Only someone who may sponsor there (an
    /// admin of the site, or a paid user of it) asks: anyone else, a former sponsor included, is
    /// `FORBIDDEN`.
    #[graphql(complexity = "super::page_cost(first, child_complexity)")]
    async fn sponsored_guests(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The site; one not of the caller's organization is `NOT_FOUND`.")]
        site_id: ID,
        #[graphql(
            desc = "How many guests to return, 0 to 100 (20 when left out); anything else is `INVALID_INPUT`."
        )]
        first: Option<i32>,
        #[graphql(
            desc = "Continue after this cursor: `pageInfo.endCursor` (or an edge's `cursor`) from this same list; anything else is `INVALID_INPUT`."
        )]
        after: Option<String>,
    ) -> AppResult<Option<Page<User>>> {
        let who = caller(ctx).await?;
        let site = parse_id(&site_id, "Site")?;
        let (limit, after) = super::page::<GuestKey>(first, after)?;
        let order = GuestOrder::default();
        guest_page(ctx, site, order, limit, after, move |c| {
            lifetimes::sponsored(c, &who, site)
        })
        .await
        .map(Some)
    }

    /// Guests nobody answers for any more (site admins), by email: no sponsor, or one who left, was
    /// deactivated, or no longer holds a paid role (or an admin role) on the site. Reassign them with
    /// `setSponsor`.
    #[graphql(complexity = "super::page_cost(first, child_complexity)")]
    async fn guests_without_sponsor(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The site; `FORBIDDEN` unless the caller administers it.")] site_id: ID,
        #[graphql(
            desc = "How many guests to return, 0 to 100 (20 when left out); anything else is `INVALID_INPUT`."
        )]
        first: Option<i32>,
        #[graphql(
            desc = "Continue after this cursor: `pageInfo.endCursor` (or an edge's `cursor`) from this same list; anything else is `INVALID_INPUT`."
        )]
        after: Option<String>,
    ) -> AppResult<Option<Page<User>>> {
        let who = caller(ctx).await?;
        let site = parse_id(&site_id, "Site")?;
        let (limit, after) = super::page::<GuestKey>(first, after)?;
        let order = GuestOrder::default();
        guest_page(ctx, site, order, limit, after, move |c| {
            lifetimes::without_sponsor(c, &who, site)
        })
        .await
        .map(Some)
    }
}

#[derive(Default)]
pub struct LifetimesMutation;

#[Object]
impl LifetimesMutation {
    /// Moves the end of a guest's access (site admins, and the guest's sponsor while they hold a paid
    /// role on the site; a former sponsor is `FORBIDDEN`); beyond the site's maximum lifetime it is
    /// refused (`EXTENSION_NOT_ALLOWED`).
    async fn extend_guest_access(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The site, the guest and the new end.")] input: ExtendGuestAccessInput,
    ) -> AppResult<ExtendGuestAccessPayload> {
        let who = caller(ctx).await?;
        let site = parse_id(&input.site_id, "Site")?;
        let user = parse_id(&input.user_id, "User")?;
        let now = state(ctx).clock.now();
        state(ctx)
            .db
            .run(move |c| lifetimes::extend(c, &who, site, user, input.ends_at, now))
            .await
            .map(|t| ExtendGuestAccessPayload(Terms(t)))
    }

    /// Names who answers for a guest (site admins; `FORBIDDEN` otherwise).
    async fn set_sponsor(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The site, the guest and the new sponsor.")] input: SetSponsorInput,
    ) -> AppResult<SetSponsorPayload> {
        let who = caller(ctx).await?;
        let site = parse_id(&input.site_id, "Site")?;
        let user = parse_id(&input.user_id, "User")?;
        let sponsor = parse_id(&input.sponsor_id, "User")?;
        let now = state(ctx).clock.now();
        state(ctx)
            .db
            .run(move |c| lifetimes::set_sponsor(c, &who, site, user, sponsor, now))
            .await
            .map(|t| SetSponsorPayload(Terms(t)))
    }

    /// A guest asks their sponsor, by email, to extend their access (`INVALID_INPUT` when nobody
    /// sponsors them any more: their sponsor may no longer sponsor on the site). Limited per person
    /// (`RATE_LIMITED`).
    async fn request_extension(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The site and an optional message for the sponsor.")]
        input: RequestExtensionInput,
    ) -> AppResult<RequestExtensionPayload> {
        let who = caller(ctx).await?;
        let site = parse_id(&input.site_id, "Site")?;
        let message = match &input.message {
            Some(m) => text::multi_line(m, 1000).map_err(|e| AppError::invalid("message", e))?,
            None => None,
        };
        let st = state(ctx);
        st.limits
            .reset_account
            .check(st, &format!("extension:{}", who.user.id))
            .await?;
        let (policy, now) = (st.delivery.clone(), st.clock.now());
        st.db
            .run(move |c| {
                lifetimes::request_extension(c, &who, site, message.as_deref(), &policy, now)
            })
            .await?;
        Ok(RequestExtensionPayload { ok: true })
    }

    /// A guest ends their own access to a site, at once; their sessions stay. A group of theirs
    /// that also grants a role on another site refuses it (`GROUP_REACHES_OTHER_SITES`, with
    /// `groups`).
    async fn leave_site(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "A site where the caller is a guest (`INVALID_INPUT` otherwise).")]
        site_id: ID,
    ) -> AppResult<LeaveSitePayload> {
        let who = caller(ctx).await?;
        let site = parse_id(&site_id, "Site")?;
        let now = state(ctx).clock.now();
        state(ctx)
            .db
            .run(move |c| lifetimes::leave(c, &who, site, now))
            .await?;
        Ok(LeaveSitePayload { ok: true })
    }
}
