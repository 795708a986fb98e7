//! Guest lifetimes and sponsors: extending access, naming sponsors, the sponsor's and the guest's own
//! views, asking for more time and leaving.

use super::types::{Site, Space, User};
use super::{caller, parse_id, state};
use crate::domain::{ProductRole, text};
use crate::error::{AppError, AppResult};
use crate::store::lifetimes;
use crate::store::models::GuestTerms;
use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};

/// A guest's terms on a site.
pub struct GuestTermsPayload(GuestTerms);

#[Object]
impl GuestTermsPayload {
    async fn user_id(&self) -> ID {
        ID(self.0.user_id.to_string())
    }
    async fn site_id(&self) -> ID {
        ID(self.0.site_id.to_string())
    }
    /// When the guest's access ends (null: it does not).
    async fn access_ends_at(&self) -> Option<DateTime<Utc>> {
        self.0.ends_at
    }
    async fn sponsor_id(&self) -> Option<ID> {
        self.0.sponsor_id.map(|s| ID(s.to_string()))
    }
}

/// Where the caller stands on one site.
pub struct MyAccess(pub lifetimes::MyAccess, pub Option<DateTime<Utc>>);

#[Object]
impl MyAccess {
    async fn site(&self) -> Site {
        Site(self.0.site.clone())
    }
    async fn role(&self) -> ProductRole {
        self.0.role
    }
    /// A guest's one space.
    async fn space(&self, ctx: &Context<'_>) -> AppResult<Option<Space>> {
        match self.0.space.clone() {
            Some(s) => Ok(Some(Space::seen(ctx, s).await?)),
            None => Ok(None),
        }
    }
    /// Who answers for a guest's access (a guest sees their display name only; ask for more time
    /// with `requestExtension`, which emails them).
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
    /// For an external user, when they must next verify their address.
    async fn verified_until(&self) -> Option<DateTime<Utc>> {
        self.1
    }
}

#[derive(InputObject)]
pub struct ExtendGuestAccessInput {
    pub site_id: ID,
    pub user_id: ID,
    /// The new end; at most the site's maximum lifetime from now.
    pub ends_at: DateTime<Utc>,
}

#[derive(InputObject)]
pub struct SetSponsorInput {
    pub site_id: ID,
    pub user_id: ID,
    /// An admin or paid user of the site.
    pub sponsor_id: ID,
}

#[derive(InputObject)]
pub struct RequestExtensionInput {
    pub site_id: ID,
    /// Why, for the sponsor (at most 1,000 characters).
    pub message: Option<String>,
}

#[derive(SimpleObject)]
pub struct OkPayload {
    pub ok: bool,
}

#[derive(Default)]
pub struct LifetimesQuery;

#[Object]
impl LifetimesQuery {
    /// The guests the caller sponsors on a site. Only someone who may sponsor there (an admin of the
    /// site, or a paid user of it) asks: anyone else, a former sponsor included, is `FORBIDDEN`.
    async fn sponsored_guests(&self, ctx: &Context<'_>, site_id: ID) -> AppResult<Vec<User>> {
        let who = caller(ctx).await?;
        let site = parse_id(&site_id, "Site")?;
        let rows = state(ctx)
            .db
            .run(move |c| lifetimes::sponsored(c, &who, site))
            .await?;
        Ok(rows.into_iter().map(User::new).collect())
    }

    /// Guests nobody answers for any more (site admins): no sponsor, or one who left, was
    /// deactivated, or no longer holds a paid role (or an admin role) on the site. Reassign them with
    /// `setSponsor`.
    async fn guests_without_sponsor(&self, ctx: &Context<'_>, site_id: ID) -> AppResult<Vec<User>> {
        let who = caller(ctx).await?;
        let site = parse_id(&site_id, "Site")?;
        let rows = state(ctx)
            .db
            .run(move |c| lifetimes::without_sponsor(c, &who, site))
            .await?;
        Ok(rows.into_iter().map(User::new).collect())
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
        input: ExtendGuestAccessInput,
    ) -> AppResult<GuestTermsPayload> {
        let who = caller(ctx).await?;
        let site = parse_id(&input.site_id, "Site")?;
        let user = parse_id(&input.user_id, "User")?;
        let now = state(ctx).clock.now();
        state(ctx)
            .db
            .run(move |c| lifetimes::extend(c, &who, site, user, input.ends_at, now))
            .await
            .map(GuestTermsPayload)
    }

    /// Names who answers for a guest (site admins).
    async fn set_sponsor(
        &self,
        ctx: &Context<'_>,
        input: SetSponsorInput,
    ) -> AppResult<GuestTermsPayload> {
        let who = caller(ctx).await?;
        let site = parse_id(&input.site_id, "Site")?;
        let user = parse_id(&input.user_id, "User")?;
        let sponsor = parse_id(&input.sponsor_id, "User")?;
        let now = state(ctx).clock.now();
        state(ctx)
            .db
            .run(move |c| lifetimes::set_sponsor(c, &who, site, user, sponsor, now))
            .await
            .map(GuestTermsPayload)
    }

    /// A guest asks their sponsor, by email, to extend their access (`INVALID_INPUT` when nobody
    /// sponsors them any more: their sponsor may no longer sponsor on the site).
    async fn request_extension(
        &self,
        ctx: &Context<'_>,
        input: RequestExtensionInput,
    ) -> AppResult<OkPayload> {
        let who = caller(ctx).await?;
        let site = parse_id(&input.site_id, "Site")?;
        let message = match &input.message {
            Some(m) => text::multi_line(m, 1000).map_err(|e| AppError::invalid("message", e))?,
            None => None,
        };
        let st = state(ctx);
        st.limits
            .reset_account
            .check(&format!("extension:{}", who.user.id))?;
        let (policy, now) = (st.delivery.clone(), st.clock.now());
        st.db
            .run(move |c| {
                lifetimes::request_extension(c, &who, site, message.as_deref(), &policy, now)
            })
            .await?;
        Ok(OkPayload { ok: true })
    }

    /// A guest ends their own access to a site, at once.
    async fn leave_site(&self, ctx: &Context<'_>, site_id: ID) -> AppResult<OkPayload> {
        let who = caller(ctx).await?;
        let site = parse_id(&site_id, "Site")?;
        let now = state(ctx).clock.now();
        state(ctx)
            .db
            .run(move |c| lifetimes::leave(c, &who, site, now))
            .await?;
        Ok(OkPayload { ok: true })
    }
}
