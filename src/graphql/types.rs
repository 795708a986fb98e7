//! GraphQL output types: thin wrappers around store rows. Doc comments become schema descriptions.

use super::{caller, state};
use crate::domain::ProductRole;
use crate::domain::seats::Usage;
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

pub struct Organization(pub models::Organization);

/// An organization: the owner of accounts, sites and groups.
#[Object]
impl Organization {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Used to sign in (`login(input: { organization })`).
    async fn slug(&self) -> &str {
        &self.0.slug
    }
    /// Email domains the organization owns; users outside them are external.
    async fn verified_domains(&self, ctx: &Context<'_>) -> AppResult<Vec<String>> {
        let org = self.0.id;
        state(ctx)
            .db
            .run(move |c| crate::store::org::verified_domains(c, org))
            .await
    }
}

pub struct Site(pub models::Site);

/// A site: where product roles, seats and spaces live.
#[Object]
impl Site {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Paid users plus guests (pending invites included) may never exceed it.
    async fn user_limit(&self) -> i32 {
        self.0.user_limit
    }
    /// Guests allowed per paid user.
    async fn guest_ratio(&self) -> i32 {
        self.0.guest_ratio
    }
    /// Default lifetime of new invites, in days.
    async fn invite_expiry_days(&self) -> i32 {
        self.0.invite_expiry_days
    }
    /// Seat usage right now (admins only).
    async fn seat_usage(&self, ctx: &Context<'_>) -> AppResult<SeatUsage> {
        let who = caller(ctx).await?;
        let st = state(ctx);
        let site_id = self.0.id;
        let now = st.clock.now();
        st.db
            .run(move |c| {
                let a = access::site_access(c, &who, site_id)?;
                a.require_admin()?;
                directory::seat_usage(c, &a.site, now)
            })
            .await
            .map(SeatUsage)
    }
}

pub struct SeatUsage(pub Usage);

/// Who occupies a site's seats, and what is left.
#[Object]
impl SeatUsage {
    /// Active users whose effective role is USER or PRODUCT_ADMIN.
    async fn paid_users(&self) -> i64 {
        self.0.counts.paid
    }
    /// Active users whose effective role is GUEST.
    async fn guests(&self) -> i64 {
        self.0.counts.guests
    }
    async fn pending_paid_invites(&self) -> i64 {
        self.0.counts.pending_paid
    }
    async fn pending_guest_invites(&self) -> i64 {
        self.0.counts.pending_guests
    }
    async fn user_limit(&self) -> i64 {
        self.0.limits.user_limit
    }
    async fn guest_ratio(&self) -> i64 {
        self.0.limits.guest_ratio
    }
    /// `guestRatio x paidUsers`: only accepted paid users raise it.
    async fn guest_allowance(&self) -> i64 {
        self.0.guest_allowance
    }
    /// `userLimit` minus paid, guests and pending invites; negative when a lowered limit left the site over.
    async fn remaining_seats(&self) -> i64 {
        self.0.remaining_seats
    }
    /// The smaller of the guest slots left and the remaining seats.
    async fn remaining_guest_slots(&self) -> i64 {
        self.0.remaining_guest_slots
    }
    /// How many guests (pending included) are beyond the allowance; nothing adding a guest is accepted until 0.
    async fn over_guest_allowance_by(&self) -> i64 {
        self.0.over_guest_allowance_by
    }
}

pub struct Space(pub models::Space);

/// A space: guests reach exactly one per site.
#[Object]
impl Space {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn key(&self) -> &str {
        &self.0.key
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn site_id(&self) -> ID {
        ID(self.0.site_id.to_string())
    }
    /// The space's pages (anyone who reaches the space).
    async fn pages(&self, ctx: &Context<'_>) -> AppResult<Vec<Page_>> {
        let who = caller(ctx).await?;
        let space = self.0.clone();
        let rows = state(ctx)
            .db
            .run(move |c| {
                let a = access::site_access(c, &who, space.site_id)?;
                if !a.reaches_space(space.id) {
                    return Err(AppError::Forbidden);
                }
                content::pages(c, space.id)
            })
            .await?;
        Ok(rows.into_iter().map(Page_).collect())
    }
}

/// Named with a trailing underscore to keep `Page` free for connection pages.
pub struct Page_(pub models::Page);

/// A page of content inside a space.
#[Object(name = "Page")]
impl Page_ {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn title(&self) -> &str {
        &self.0.title
    }
    async fn body(&self) -> &str {
        &self.0.body
    }
    async fn space_id(&self) -> ID {
        ID(self.0.space_id.to_string())
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// A person's account. `restricted` objects (a guest looking at whoever invited them) show only a name.
pub struct User {
    pub user: models::User,
    pub restricted: bool,
}

impl User {
    pub fn full(user: models::User) -> Self {
        Self {
            user,
            restricted: false,
        }
    }

    fn require_full(&self) -> AppResult<()> {
        if self.restricted {
            Err(AppError::Forbidden)
        } else {
            Ok(())
        }
    }

    /// The caller may see this user's standing on `site`: themselves, or someone who sees the whole site.
    async fn check_site_view(&self, ctx: &Context<'_>, site: &ID) -> AppResult<uuid::Uuid> {
        self.require_full()?;
        let who = caller(ctx).await?;
        let site_id = super::parse_id(site, "Site")?;
        if who.user.id == self.user.id && who.user.organization_id == self.user.organization_id {
            state(ctx)
                .db
                .run(move |c| access::site_in_org(c, who.user.organization_id, site_id).map(|_| ()))
                .await?;
        } else {
            state(ctx)
                .db
                .run(move |c| directory::require_directory_access(c, &who, site_id).map(|_| ()))
                .await?;
        }
        Ok(site_id)
    }
}

#[Object]
impl User {
    async fn id(&self) -> ID {
        ID(self.user.id.to_string())
    }
    async fn display_name(&self) -> &str {
        &self.user.display_name
    }
    async fn email(&self) -> AppResult<&str> {
        self.require_full()?;
        Ok(&self.user.email)
    }
    /// `ACTIVE` or `DEACTIVATED`.
    async fn status(&self) -> AppResult<&str> {
        self.require_full()?;
        Ok(&self.user.status)
    }
    async fn created_at(&self) -> AppResult<DateTime<Utc>> {
        self.require_full()?;
        Ok(self.user.created_at)
    }
    /// The highest of the direct role and the roles of the user's groups on that site; null: no access.
    async fn effective_role(
        &self,
        ctx: &Context<'_>,
        site_id: ID,
    ) -> AppResult<Option<ProductRole>> {
        let site = self.check_site_view(ctx, &site_id).await?;
        let uid = self.user.id;
        state(ctx)
            .db
            .run(move |c| access::effective_role_of(c, site, uid))
            .await
    }
    /// Has held a paid role on that site at some point: can never be a guest there.
    async fn is_former_paid(&self, ctx: &Context<'_>, site_id: ID) -> AppResult<bool> {
        let site = self.check_site_view(ctx, &site_id).await?;
        let uid = self.user.id;
        state(ctx)
            .db
            .run(move |c| access::is_former_paid(c, site, uid))
            .await
    }
    /// Who invited this person (only their name, when a guest looks at their own inviter).
    async fn invited_by(&self, ctx: &Context<'_>) -> AppResult<Option<User>> {
        self.require_full()?;
        let Some(inviter) = self.user.invited_by else {
            return Ok(None);
        };
        let who = caller(ctx).await?;
        let restricted = who.user.id == self.user.id && !who.org_admin;
        let org = self.user.organization_id;
        let user = state(ctx)
            .db
            .run(move |c| directory::user_in_org(c, org, inviter))
            .await?;
        Ok(Some(User { user, restricted }))
    }
}

/// One site's user and their effective role there (the people directory).
pub struct SiteUser {
    pub user: User,
    pub role: ProductRole,
}

#[Object]
impl SiteUser {
    async fn user(&self) -> &User {
        &self.user
    }
    async fn role(&self) -> ProductRole {
        self.role
    }
}

pub struct Invite(pub models::Invite);

/// An invitation of one address to one site.
#[Object]
impl Invite {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn email(&self) -> &str {
        &self.0.email
    }
    /// The role accepting grants.
    async fn role(&self) -> Option<ProductRole> {
        self.0.role()
    }
    async fn status(&self, ctx: &Context<'_>) -> InviteStatus {
        self.0.status_at(state(ctx).clock.now())
    }
    async fn site_id(&self) -> ID {
        ID(self.0.site_id.to_string())
    }
    /// The space a guest is assigned on acceptance.
    async fn space(&self, ctx: &Context<'_>) -> AppResult<Option<Space>> {
        let Some(space) = self.0.space_id else {
            return Ok(None);
        };
        let who = caller(ctx).await?;
        let (s, _) = state(ctx)
            .db
            .run(move |c| content::space_with_access(c, &who, space))
            .await?;
        Ok(Some(Space(s)))
    }
    async fn personal_message(&self) -> Option<&str> {
        self.0.personal_message.as_deref()
    }
    async fn invited_by(&self, ctx: &Context<'_>) -> AppResult<User> {
        let who = caller(ctx).await?;
        let id = self.0.invited_by;
        let u = state(ctx)
            .db
            .run(move |c| directory::user_in_org(c, who.user.organization_id, id))
            .await?;
        Ok(User::full(u))
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn expires_at(&self) -> DateTime<Utc> {
        self.0.expires_at
    }
    async fn accepted_at(&self) -> Option<DateTime<Utc>> {
        self.0.accepted_at
    }
    /// The latest email sent for this invite (each resend sends a new one).
    async fn email_delivery(&self, ctx: &Context<'_>) -> AppResult<Option<EmailDelivery>> {
        let id = self.0.id;
        let rows = state(ctx)
            .db
            .run(move |c| invites::deliveries(c, id))
            .await?;
        Ok(rows.into_iter().next().map(EmailDelivery))
    }
    /// Every email sent for this invite, newest first.
    async fn email_deliveries(&self, ctx: &Context<'_>) -> AppResult<Vec<EmailDelivery>> {
        let id = self.0.id;
        let rows = state(ctx)
            .db
            .run(move |c| invites::deliveries(c, id))
            .await?;
        Ok(rows.into_iter().map(EmailDelivery).collect())
    }
}

/// What happened to one email.
#[derive(Clone, Copy, Debug, PartialEq, Eq, async_graphql::Enum)]
pub enum DeliveryStatus {
    Queued,
    Sending,
    Sent,
    Retrying,
    Failed,
    /// Superseded by a resend, or the invite was revoked or accepted before it went out.
    Cancelled,
}

pub struct EmailDelivery(pub models::EmailDelivery);

#[Object]
impl EmailDelivery {
    async fn status(&self) -> DeliveryStatus {
        match self.0.status.as_str() {
            "QUEUED" => DeliveryStatus::Queued,
            "SENDING" => DeliveryStatus::Sending,
            "SENT" => DeliveryStatus::Sent,
            "RETRYING" => DeliveryStatus::Retrying,
            "FAILED" => DeliveryStatus::Failed,
            _ => DeliveryStatus::Cancelled,
        }
    }
    async fn recipient(&self) -> &str {
        &self.0.recipient
    }
    async fn attempts(&self) -> i32 {
        self.0.attempts
    }
    /// The last failure, e.g. the SMTP server's reply.
    async fn last_error(&self) -> Option<&str> {
        self.0.last_error.as_deref()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn sent_at(&self) -> Option<DateTime<Utc>> {
        self.0.sent_at
    }
    async fn next_attempt_at(&self) -> Option<DateTime<Utc>> {
        self.0.next_attempt_at
    }
}

pub struct AuditEvent(pub models::AuditEvent);

/// One recorded change: who did what to what, with the state before and after.
#[Object]
impl AuditEvent {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn action(&self) -> &str {
        &self.0.action
    }
    async fn actor_id(&self) -> Option<ID> {
        self.0.actor_id.map(|a| ID(a.to_string()))
    }
    async fn target_type(&self) -> &str {
        &self.0.target_type
    }
    async fn target_id(&self) -> &str {
        &self.0.target_id
    }
    async fn site_id(&self) -> Option<ID> {
        self.0.site_id.map(|a| ID(a.to_string()))
    }
    async fn before(&self) -> Option<async_graphql::Json<serde_json::Value>> {
        self.0.before.clone().map(async_graphql::Json)
    }
    async fn after(&self) -> Option<async_graphql::Json<serde_json::Value>> {
        self.0.after.clone().map(async_graphql::Json)
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}
