//! GraphQL output types: thin wrappers around store rows. Doc comments become schema descriptions.

use super::loaders::{DomainsOf, GroupsOf, GuestCountOf, GuestSpaceOf, PolicyOf, UserById};
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
    /// Every guest's access ends at most this many days after it starts (null: no maximum).
    async fn max_guest_lifetime_days(&self) -> Option<i32> {
        self.0.max_guest_lifetime_days
    }
    /// Days before a guest's access ends when the guest and their sponsor are reminded.
    async fn guest_reminder_days(&self) -> i32 {
        self.0.guest_reminder_days
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
            .map(|u| SeatUsage::new(site_id, u))
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
    async fn site_id(&self) -> ID {
        ID(self.site_id.to_string())
    }
    /// Active users whose effective role is USER or PRODUCT_ADMIN.
    async fn paid_users(&self) -> i64 {
        self.usage.counts.paid
    }
    /// Active users whose effective role is GUEST.
    async fn guests(&self) -> i64 {
        self.usage.counts.guests
    }
    async fn pending_paid_invites(&self) -> i64 {
        self.usage.counts.pending_paid
    }
    async fn pending_guest_invites(&self) -> i64 {
        self.usage.counts.pending_guests
    }
    async fn user_limit(&self) -> i64 {
        self.usage.limits.user_limit
    }
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
    /// Guests of the site whose one space this is (people who see the whole site, and space admins).
    async fn guest_count(&self, ctx: &Context<'_>) -> AppResult<i64> {
        let (_, a) = super::site_access(ctx, self.0.site_id).await?;
        if !(a.sees_whole_site() || a.manages_guests_of(self.0.id)) {
            return Err(AppError::Forbidden);
        }
        Ok(super::loaders(ctx)?
            .load_one(GuestCountOf(self.0.id))
            .await?
            .unwrap_or(0))
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

    /// The person themselves, or an organization or site admin.
    async fn require_self_or_admin(&self, ctx: &Context<'_>) -> AppResult<()> {
        self.require_full()?;
        let who = super::caller_to_reverify(ctx).await?;
        if who.user.id == self.user.id {
            return Ok(());
        }
        let who = caller(ctx).await?;
        if who.org_admin || super::is_site_admin_anywhere(ctx).await? {
            Ok(())
        } else {
            Err(AppError::Forbidden)
        }
    }

    /// The caller may see this user's standing on `site`: themselves, whoever sees the whole site,
    /// and space admins of that site.
    async fn check_site_view(&self, ctx: &Context<'_>, site: &ID) -> AppResult<uuid::Uuid> {
        self.require_full()?;
        let site_id = super::parse_id(site, "Site")?;
        let (who, a) = super::site_access(ctx, site_id).await?;
        if who.user.id == self.user.id || a.sees_whole_site() || !a.admin_of_spaces.is_empty() {
            Ok(site_id)
        } else {
            Err(AppError::Forbidden)
        }
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
    /// Why this person is or is not counted as a paid seat on that site (site admins).
    async fn billing(&self, ctx: &Context<'_>, site_id: ID) -> AppResult<Billing> {
        self.require_full()?;
        let site = super::parse_id(&site_id, "Site")?;
        let (_, a) = super::site_access(ctx, site).await?;
        a.require_admin()?;
        let user = self.user.clone();
        let b = state(ctx)
            .db
            .run(move |c| access::billing(c, site, &user))
            .await?;
        Ok(Billing(b))
    }
    /// Who invited this person (only their name, when a guest looks at their own inviter).
    async fn invited_by(&self, ctx: &Context<'_>) -> AppResult<Option<User>> {
        self.require_full()?;
        let Some(inviter) = self.user.invited_by else {
            return Ok(None);
        };
        let who = caller(ctx).await?;
        let restricted = who.user.id == self.user.id && !who.org_admin;
        let user = super::loaders(ctx)?
            .load_one(UserById(inviter))
            .await?
            .filter(|u| u.organization_id == self.user.organization_id);
        Ok(user.map(|user| User { user, restricted }))
    }
    /// Their email domain is not one the organization verified: external user security applies.
    async fn is_external(&self, ctx: &Context<'_>) -> AppResult<bool> {
        self.external(ctx).await
    }
    /// For an external user, when their current verification period ends (the person and admins).
    async fn verified_until(&self, ctx: &Context<'_>) -> AppResult<Option<DateTime<Utc>>> {
        self.require_self_or_admin(ctx).await?;
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
        self.require_self_or_admin(ctx).await?;
        Ok(self.user.last_active_at)
    }
    /// Where this person stands on each site: role, space, sponsor (their name and email), end of
    /// access, next verification. Only for the person themselves (`me { access { ... } }`).
    async fn access(&self, ctx: &Context<'_>) -> AppResult<Vec<super::lifetimes::MyAccess>> {
        self.require_full()?;
        let who = super::caller_to_reverify(ctx).await?;
        if who.user.id != self.user.id {
            return Err(AppError::Forbidden);
        }
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
        Ok(rows
            .into_iter()
            .map(|r| super::lifetimes::MyAccess(r, until))
            .collect())
    }
    /// When this guest's access to that site ends (null: it does not; the person and admins).
    async fn access_ends_at(
        &self,
        ctx: &Context<'_>,
        site_id: ID,
    ) -> AppResult<Option<DateTime<Utc>>> {
        let site = self.check_site_view(ctx, &site_id).await?;
        let uid = self.user.id;
        Ok(state(ctx)
            .db
            .run(move |c| crate::store::lifetimes::terms(c, site, uid))
            .await?
            .and_then(|t| t.ends_at))
    }
    /// The guest's one space on that site, if they are a guest there and have one.
    async fn space(&self, ctx: &Context<'_>, site_id: ID) -> AppResult<Option<Space>> {
        let site = self.check_site_view(ctx, &site_id).await?;
        let uid = self.user.id;
        Ok(super::loaders(ctx)?
            .load_one(GuestSpaceOf(site, uid))
            .await?
            .map(Space))
    }
    /// The groups this person belongs to (staff, or the person themselves).
    async fn groups(&self, ctx: &Context<'_>) -> AppResult<Vec<Group>> {
        self.require_full()?;
        let who = caller(ctx).await?;
        if who.user.id != self.user.id {
            super::people::require_staff(ctx).await?;
        }
        Ok(super::loaders(ctx)?
            .load_one(GroupsOf(self.user.id))
            .await?
            .unwrap_or_default()
            .into_iter()
            .map(Group)
            .collect())
    }
}

/// Why a person is or is not a paid seat on a site.
pub struct Billing(pub crate::domain::billing::Billing<models::Group>);

#[Object]
impl Billing {
    /// Counted as a paid seat.
    async fn billable(&self) -> bool {
        self.0.billable
    }
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

pub struct Group(pub models::Group);

/// A named set of people of the organization; it holds at most one product role per site, which its
/// members get (a guest group makes them guests).
#[Object]
impl Group {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn name(&self) -> &str {
        &self.0.name
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// The role the group gives on each site where it has one.
    async fn site_roles(&self, ctx: &Context<'_>) -> AppResult<Vec<GroupSiteRole>> {
        let id = self.0.id;
        let rows = state(ctx)
            .db
            .run(move |c| crate::store::groups::site_roles(c, id))
            .await?;
        Ok(rows
            .into_iter()
            .map(|(site_id, role)| GroupSiteRole {
                site_id: ID(site_id.to_string()),
                role,
            })
            .collect())
    }
    /// Members by email.
    #[graphql(complexity = "super::page_cost(first, child_complexity)")]
    async fn members(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> AppResult<Page<User>> {
        let (limit, after) = super::page::<(String, uuid::Uuid)>(first, after)?;
        let id = self.0.id;
        let (rows, total) = state(ctx)
            .db
            .run(move |c| crate::store::groups::members(c, id, after, limit + 1))
            .await?;
        Ok(super::query::paginate(
            rows,
            limit,
            total,
            |u| (u.email_normalized.clone(), u.id),
            User::full,
        ))
    }
}

/// A group's role on one site.
#[derive(SimpleObject)]
pub struct GroupSiteRole {
    pub site_id: ID,
    pub role: ProductRole,
}

/// One person's effective role on one site, before and after a change.
pub struct AccessChangeEntry(pub crate::store::changes::ChangedAccess);

#[Object]
impl AccessChangeEntry {
    async fn user(&self) -> User {
        User::full(self.0.user.clone())
    }
    async fn site(&self) -> Site {
        Site(self.0.site.clone())
    }
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

/// What an access change did, or with `dryRun` would do (a dry run changes nothing).
pub struct AccessChangePayload(pub crate::store::changes::AccessChange);

#[Object]
impl AccessChangePayload {
    async fn dry_run(&self) -> bool {
        self.0.dry_run
    }
    /// Every person whose effective role on a site changes.
    async fn changes(&self) -> Vec<AccessChangeEntry> {
        self.0
            .changes
            .iter()
            .cloned()
            .map(AccessChangeEntry)
            .collect()
    }
    /// Seat usage after the change, one per affected site.
    async fn seat_usage(&self) -> Vec<SeatUsage> {
        self.0
            .usage
            .iter()
            .map(|(site, u)| SeatUsage::new(site.id, *u))
            .collect()
    }
}

/// One guest's space before and after an assignment.
pub struct GuestAssignment(pub crate::store::guests::Assignment);

#[Object]
impl GuestAssignment {
    async fn user(&self) -> User {
        User::full(self.0.user.clone())
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
