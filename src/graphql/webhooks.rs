//! Webhooks: the organization's endpoints, their secrets and delivery logs (organization admins,
//! through the one policy: `Object::WebhookEndpoint`/`WebhookDelivery` and
//! `Action::ManageWebhooks`). The events, their payloads and the retry schedule are in
//! `domain::webhooks`; the outbox and the worker's steps in `store::webhooks`.

use super::ids::{Kind, global as gid};
use super::query::paginate;
use super::types::{Page, User};
use super::{caller, page, parse_id, require_sight, state, viewer};
use crate::domain::authorization::{Action, Object, may_change};
use crate::domain::status::{EndpointStatus, WebhookDeliveryStatus as Stored};
use crate::domain::webhooks::{self as rules, EventType};
use crate::error::{AppError, AppResult};
use crate::store::webhooks::{self as store, Attempt, Delivery, Endpoint};
use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};
use uuid::Uuid;

#[derive(Default)]
pub struct WebhooksQuery;

#[Object]
impl WebhooksQuery {
    /// The organization's webhook endpoints, oldest first (organization admins; `FORBIDDEN`
    /// otherwise).
    #[graphql(complexity = "super::page_cost(first, child_complexity)")]
    async fn webhook_endpoints(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "How many endpoints to return, 0 to 100 (20 when left out); anything else is `INVALID_INPUT`."
        )]
        first: Option<i32>,
        #[graphql(
            desc = "Continue after this cursor: `pageInfo.endCursor` (or an edge's `cursor`) from this same list; anything else is `INVALID_INPUT`."
        )]
        after: Option<String>,
    ) -> AppResult<Option<Page<WebhookEndpoint>>> {
        let org = caller(ctx).await?.user.organization_id;
        require_sight(ctx, Object::WebhookEndpoint { org }).await?;
        let (limit, after) = page::<(DateTime<Utc>, Uuid)>(first, after)?;
        let with_total = ctx.look_ahead().field("totalCount").exists();
        let (rows, total) = state(ctx)
            .db
            .run(move |c| {
                let rows = store::list(c, org, after, limit + 1)?;
                let total = if with_total { store::count(c, org)? } else { 0 };
                Ok((rows, total))
            })
            .await?;
        Ok(Some(paginate(
            rows,
            limit,
            total,
            |e| (e.created_at, e.id),
            WebhookEndpoint,
        )))
    }

    /// One webhook endpoint of the organization (organization admins).
    async fn webhook_endpoint(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "The endpoint's global id: `NOT_FOUND` unless it is one of the caller's organization, `FORBIDDEN` unless the caller is an organization admin."
        )]
        id: ID,
    ) -> AppResult<Option<WebhookEndpoint>> {
        endpoint(ctx, parse_id(&id, "WebhookEndpoint")?)
            .await
            .map(Some)
    }

    /// The delivery log of an endpoint, newest first: each event sent to it, its status and every
    /// attempt with the receiver's answer (organization admins).
    #[graphql(complexity = "super::page_cost(first, child_complexity)")]
    async fn webhook_deliveries(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "The endpoint's global id: `NOT_FOUND` unless it is one of the caller's organization, `FORBIDDEN` unless the caller is an organization admin."
        )]
        endpoint_id: ID,
        #[graphql(desc = "Only deliveries with this status; all when left out.")] status: Option<
            WebhookDeliveryStatus,
        >,
        #[graphql(
            desc = "How many deliveries to return, 0 to 100 (20 when left out); anything else is `INVALID_INPUT`."
        )]
        first: Option<i32>,
        #[graphql(
            desc = "Continue after this cursor: `pageInfo.endCursor` (or an edge's `cursor`) from this same list; anything else is `INVALID_INPUT`."
        )]
        after: Option<String>,
    ) -> AppResult<Option<Page<WebhookDelivery>>> {
        let e = endpoint(ctx, parse_id(&endpoint_id, "WebhookEndpoint")?).await?;
        deliveries_of(ctx, e.0, status, first, after)
            .await
            .map(Some)
    }
}

/// An endpoint of the caller's organization, for its organization admins.
pub(crate) async fn endpoint(ctx: &Context<'_>, id: Uuid) -> AppResult<WebhookEndpoint> {
    let org = caller(ctx).await?.user.organization_id;
    let e = state(ctx)
        .db
        .run(move |c| store::endpoint_in_org(c, org, id))
        .await?;
    require_sight(ctx, Object::WebhookEndpoint { org }).await?;
    Ok(WebhookEndpoint(e))
}

/// A delivery to an endpoint of the caller's organization, with its attempts, for its organization
/// admins.
pub(crate) async fn delivery(ctx: &Context<'_>, id: Uuid) -> AppResult<WebhookDelivery> {
    let org = caller(ctx).await?.user.organization_id;
    let (row, endpoint, attempts) = state(ctx)
        .db
        .run(move |c| {
            let (row, endpoint) = store::delivery_in_org(c, org, id)?;
            let attempts = store::attempts_of(c, &[id])?;
            Ok((row, endpoint, attempts))
        })
        .await?;
    require_sight(ctx, Object::WebhookDelivery { org }).await?;
    Ok(WebhookDelivery {
        row,
        endpoint,
        attempts,
    })
}

/// A page of an endpoint's deliveries with their attempts (two statements whatever the page size).
async fn deliveries_of(
    ctx: &Context<'_>,
    endpoint: Endpoint,
    status: Option<WebhookDeliveryStatus>,
    first: Option<i32>,
    after: Option<String>,
) -> AppResult<Page<WebhookDelivery>> {
    let org = endpoint.organization_id;
    require_sight(ctx, Object::WebhookDelivery { org }).await?;
    let (limit, after) = page::<(DateTime<Utc>, Uuid)>(first, after)?;
    let with_total = ctx.look_ahead().field("totalCount").exists();
    let (id, status) = (endpoint.id, status.map(Stored::from));
    let (rows, attempts, total) = state(ctx)
        .db
        .run(move |c| {
            let rows = store::deliveries(c, id, status, after, limit + 1)?;
            let ids: Vec<Uuid> = rows.iter().map(|d| d.id).collect();
            let attempts = store::attempts_of(c, &ids)?;
            let total = if with_total {
                store::count_deliveries(c, id, status)?
            } else {
                0
            };
            Ok((rows, attempts, total))
        })
        .await?;
    let mut by_delivery: std::collections::HashMap<Uuid, Vec<Attempt>> = Default::default();
    for a in attempts {
        by_delivery.entry(a.delivery_id).or_default().push(a);
    }
    Ok(paginate(
        rows,
        limit,
        total,
        |d| (d.created_at, d.id),
        |row| WebhookDelivery {
            attempts: by_delivery.get(&row.id).cloned().unwrap_or_default(),
            endpoint: endpoint.clone(),
            row,
        },
    ))
}

/// Whether an endpoint receives.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum WebhookEndpointStatus {
    /// Receives its events.
    Active,
    /// Switched off by an admin: nothing is queued for it, and what was queued waits until it is
    /// enabled again.
    Disabled,
    /// A delivery used up its retries (`failingSince`). It still receives; the next delivery that
    /// succeeds makes it `ACTIVE` again.
    Failing,
}

/// Where a delivery stands.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum WebhookDeliveryStatus {
    /// Not tried yet, or sent again by `redeliverWebhook`.
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// An attempt failed; another follows at `nextAttemptAt`.
    Retrying,
    /// Every attempt failed until the retry schedule ended (about 3 days after the event).
    /// `redeliverWebhook` tries once more.
    Failed,
}

impl From<Stored> for WebhookDeliveryStatus {
    fn from(s: Stored) -> Self {
        match s {
            Stored::Pending => Self::Pending,
            Stored::Delivered => Self::Delivered,
            Stored::Retrying => Self::Retrying,
            Stored::Failed => Self::Failed,
        }
    }
}

impl From<WebhookDeliveryStatus> for Stored {
    fn from(s: WebhookDeliveryStatus) -> Self {
        match s {
            WebhookDeliveryStatus::Pending => Self::Pending,
            WebhookDeliveryStatus::Delivered => Self::Delivered,
            WebhookDeliveryStatus::Retrying => Self::Retrying,
            WebhookDeliveryStatus::Failed => Self::Failed,
        }
    }
}

pub struct WebhookEndpoint(pub(crate) Endpoint);

/// Where the organization's events go: a URL that receives, signed, each event type it subscribes
/// to (organization admins only).
#[Object]
impl WebhookEndpoint {
    /// The endpoint's global id.
    pub async fn id(&self) -> AppResult<ID> {
        Ok(gid(Kind::WebhookEndpoint, self.0.id))
    }
    /// The URL events are POSTed to.
    async fn url(&self) -> &str {
        &self.0.url
    }
    /// What the endpoint is for, in the admins' words (empty when not given).
    async fn description(&self) -> &str {
        &self.0.description
    }
    /// The event types it receives, in catalogue order.
    async fn events(&self) -> Vec<EventType> {
        self.0.events()
    }
    /// Whether it receives, and whether its deliveries fail.
    async fn status(&self) -> WebhookEndpointStatus {
        match self.0.status {
            EndpointStatus::Active => WebhookEndpointStatus::Active,
            EndpointStatus::Disabled => WebhookEndpointStatus::Disabled,
            EndpointStatus::Failing => WebhookEndpointStatus::Failing,
        }
    }
    /// False once an admin disabled it (`updateWebhookEndpoint(input: { enabled: false })`).
    async fn enabled(&self) -> bool {
        self.0.status != EndpointStatus::Disabled
    }
    /// Since when its deliveries fail for good; null unless `FAILING`.
    async fn failing_since(&self) -> Option<DateTime<Utc>> {
        self.0.failing_since
    }
    /// Until when the secret before the last rotation still signs, beside the current one; null
    /// when only the current secret signs.
    async fn previous_secret_expires_at(&self, ctx: &Context<'_>) -> Option<DateTime<Utc>> {
        let now = state(ctx).clock.now();
        self.0
            .previous_until
            .filter(|u| rules::previous_still_signs(Some(*u), now))
    }
    /// Who registered it; null if that account no longer exists.
    async fn created_by(&self, ctx: &Context<'_>) -> AppResult<Option<User>> {
        match self.0.created_by {
            Some(id) => super::node::existing(super::node::user(ctx, id).await),
            None => Ok(None),
        }
    }
    /// When it was registered.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// When its settings or secret last changed.
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at
    }
    /// Its delivery log, newest first (as `webhookDeliveries(endpointId)`).
    #[graphql(complexity = "super::page_cost(first, child_complexity)")]
    async fn deliveries(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only deliveries with this status; all when left out.")] status: Option<
            WebhookDeliveryStatus,
        >,
        #[graphql(
            desc = "How many deliveries to return, 0 to 100 (20 when left out); anything else is `INVALID_INPUT`."
        )]
        first: Option<i32>,
        #[graphql(
            desc = "Continue after this cursor: `pageInfo.endCursor` (or an edge's `cursor`) from this same list; anything else is `INVALID_INPUT`."
        )]
        after: Option<String>,
    ) -> AppResult<Page<WebhookDelivery>> {
        deliveries_of(ctx, self.0.clone(), status, first, after).await
    }
}

pub struct WebhookDelivery {
    row: Delivery,
    endpoint: Endpoint,
    attempts: Vec<Attempt>,
}

/// One event sent to one endpoint: the body as sent, where its delivery stands, and each attempt.
#[Object]
impl WebhookDelivery {
    /// The delivery's global id (for `redeliverWebhook`).
    pub async fn id(&self) -> AppResult<ID> {
        Ok(gid(Kind::WebhookDelivery, self.row.id))
    }
    /// The `webhook-id` header it is sent with: the same on every attempt and redelivery, so the
    /// receiver can ignore one it has seen.
    async fn webhook_id(&self) -> String {
        rules::message_id(self.row.id)
    }
    /// The event's id (the payload's `id`, `evt_…`): the same for every endpoint it goes to.
    async fn event_id(&self) -> String {
        format!("evt_{}", self.row.audit_event_id)
    }
    /// The event's type.
    async fn event_type(&self) -> AppResult<EventType> {
        EventType::parse(&self.row.event_type).ok_or_else(|| {
            AppError::internal(format!(
                "unknown webhook event type {}",
                self.row.event_type
            ))
        })
    }
    /// The endpoint it goes to.
    async fn endpoint(&self) -> WebhookEndpoint {
        WebhookEndpoint(self.endpoint.clone())
    }
    /// Where its delivery stands.
    async fn status(&self) -> WebhookDeliveryStatus {
        self.row.status.into()
    }
    /// How many attempts were made.
    async fn attempt_count(&self) -> i32 {
        self.row.attempts
    }
    /// When the next attempt is due; null once `DELIVERED` or `FAILED`.
    async fn next_attempt_at(&self) -> Option<DateTime<Utc>> {
        Stored::OPEN
            .contains(&self.row.status)
            .then_some(self.row.next_attempt_at)
            .flatten()
    }
    /// When the event happened and the delivery was queued (in the change's transaction).
    async fn created_at(&self) -> DateTime<Utc> {
        self.row.created_at
    }
    /// When the receiver answered 2xx; null until `DELIVERED`.
    async fn delivered_at(&self) -> Option<DateTime<Utc>> {
        self.row.delivered_at
    }
    /// The JSON body exactly as sent and signed (every attempt sends these bytes).
    async fn payload(&self) -> &str {
        &self.row.payload
    }
    /// Every attempt, oldest first.
    async fn attempts(&self) -> Vec<WebhookAttempt> {
        self.attempts.iter().cloned().map(WebhookAttempt).collect()
    }
}

pub struct WebhookAttempt(Attempt);

/// One try to deliver an event, and what the receiver answered.
#[Object]
impl WebhookAttempt {
    /// 1 for the first attempt of the delivery.
    async fn number(&self) -> i32 {
        self.0.number
    }
    /// When it started.
    async fn attempted_at(&self) -> DateTime<Utc> {
        self.0.attempted_at
    }
    /// The receiver's HTTP status; null when it did not answer (refused target, no connection,
    /// timeout) or the attempt is under way.
    async fn response_status(&self) -> Option<i32> {
        self.0.response_status
    }
    /// How long it took, in milliseconds; null while under way (or when its worker stopped).
    async fn duration_ms(&self) -> Option<i32> {
        self.0.duration_ms
    }
    /// The first bytes (at most 1 KiB) of the receiver's answer, as text.
    async fn response_body_prefix(&self) -> Option<&str> {
        self.0.response_body_prefix.as_deref()
    }
    /// Why it failed without a 2xx answer (a refused target, no connection, a timeout, a
    /// redirect); null when the receiver answered, or while under way.
    async fn error(&self) -> Option<&str> {
        self.0.error.as_deref()
    }
    /// The receiver answered 2xx.
    async fn succeeded(&self) -> bool {
        self.0.error.is_none()
            && self
                .0
                .response_status
                .is_some_and(|s| (200..300).contains(&s))
    }
}

#[derive(Default)]
pub struct WebhooksMutation;

/// A new webhook endpoint.
#[derive(InputObject)]
pub struct CreateWebhookEndpointInput {
    /// Where to POST events: `https` (plain `http` only where the server allows it), a host that
    /// resolves to public addresses only (`TARGET_NOT_ALLOWED` otherwise, with
    /// `extensions.reason`), at most 2,048 characters, without a user name, password or fragment
    /// (`INVALID_INPUT`).
    pub url: String,
    /// The event types to receive: at least one (`INVALID_INPUT` otherwise).
    pub events: Vec<EventType>,
    /// What the endpoint is for: one line, at most 500 characters.
    pub description: Option<String>,
}

/// The endpoint `createWebhookEndpoint` registered, and its signing secret.
#[derive(SimpleObject)]
pub struct CreateWebhookEndpointPayload {
    /// The new endpoint, `ACTIVE`.
    pub endpoint: WebhookEndpoint,
    /// The signing secret (`whsec_…`), shown this once: store it where the receiver verifies
    /// signatures. `rotateWebhookSecret` issues a new one.
    pub secret: String,
}

/// Changes to an endpoint; a field left out keeps its value.
#[derive(InputObject)]
pub struct UpdateWebhookEndpointInput {
    /// The endpoint's global id: `NOT_FOUND` unless it is one of the caller's organization.
    pub id: ID,
    /// A new URL, checked as at creation.
    pub url: Option<String>,
    /// The new set of event types (replaces the old one): at least one.
    pub events: Option<Vec<EventType>>,
    /// A new description (empty clears it).
    pub description: Option<String>,
    /// False disables the endpoint (nothing is queued for it; what is queued waits); true enables
    /// it again and sends what waits.
    pub enabled: Option<bool>,
}

/// The endpoint `updateWebhookEndpoint` changed.
#[derive(SimpleObject)]
pub struct UpdateWebhookEndpointPayload {
    /// The endpoint as it is now.
    pub endpoint: WebhookEndpoint,
}

/// What `deleteWebhookEndpoint` deleted.
#[derive(SimpleObject)]
pub struct DeleteWebhookEndpointPayload {
    /// The deleted endpoint's global id: it no longer resolves, and its delivery log is gone.
    pub deleted_webhook_endpoint_id: ID,
}

/// The new secret `rotateWebhookSecret` issued.
#[derive(SimpleObject)]
pub struct RotateWebhookSecretPayload {
    /// The endpoint, with `previousSecretExpiresAt` set.
    pub endpoint: WebhookEndpoint,
    /// The new signing secret (`whsec_…`), shown this once.
    pub secret: String,
    /// Until then, deliveries carry two signatures (the new secret's and the old one's), so the
    /// receiver can switch to the new secret at any moment in between.
    pub previous_secret_expires_at: DateTime<Utc>,
}

/// The delivery `redeliverWebhook` queued again.
#[derive(SimpleObject)]
pub struct RedeliverWebhookPayload {
    /// The delivery, `PENDING`, with the same `webhookId` and payload.
    pub delivery: WebhookDelivery,
}

/// The caller's organization, if the policy lets them manage its webhooks (`FORBIDDEN` otherwise).
async fn manager(ctx: &Context<'_>) -> AppResult<(Uuid, Uuid)> {
    let who = caller(ctx).await?;
    let org = who.user.organization_id;
    if !may_change(&*viewer(ctx).await?, Action::ManageWebhooks { org }) {
        return Err(AppError::Forbidden);
    }
    Ok((org, who.user.id))
}

/// An endpoint id of the caller's organization that the caller may manage: `NOT_FOUND` first
/// (another organization's), then `FORBIDDEN`.
async fn managed(ctx: &Context<'_>, id: &ID) -> AppResult<(Uuid, Uuid, Uuid)> {
    let id = parse_id(id, "WebhookEndpoint")?;
    let org = caller(ctx).await?.user.organization_id;
    state(ctx)
        .db
        .run(move |c| store::endpoint_in_org(c, org, id))
        .await?;
    let (org, actor) = manager(ctx).await?;
    Ok((org, actor, id))
}

/// A URL as stored: checked for shape here, then by the outbound policy (scheme, and the addresses
/// it resolves to now).
async fn checked_url(ctx: &Context<'_>, url: &str) -> AppResult<String> {
    let url = rules::validate_url(url).map_err(|m| AppError::invalid("url", m))?;
    let parsed = crate::outbound::check_target(state(ctx).outbound.policy(), &url).await?;
    Ok(parsed.to_string())
}

#[Object]
impl WebhooksMutation {
    /// Registers a webhook endpoint for the organization's events (organization admins) and
    /// answers its signing secret, once.
    async fn create_webhook_endpoint(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The URL, the event types and a description.")]
        input: CreateWebhookEndpointInput,
    ) -> AppResult<CreateWebhookEndpointPayload> {
        let (org, actor) = manager(ctx).await?;
        let new = store::NewEndpoint {
            events: rules::validate_events(&input.events)
                .map_err(|m| AppError::invalid("events", m))?,
            description: rules::validate_description(input.description.as_deref())
                .map_err(|m| AppError::invalid("description", m))?,
            url: checked_url(ctx, &input.url).await?,
        };
        let st = state(ctx);
        let (keys, now) = (st.secrets.clone(), st.clock.now());
        let (endpoint, secret) = st
            .db
            .run(move |c| store::create(c, &keys, org, actor, new, now))
            .await?;
        Ok(CreateWebhookEndpointPayload {
            endpoint: WebhookEndpoint(endpoint),
            secret: rules::secret_text(&secret),
        })
    }

    /// Changes an endpoint's URL, event types or description, or disables or enables it
    /// (organization admins).
    async fn update_webhook_endpoint(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The endpoint and what changes.")] input: UpdateWebhookEndpointInput,
    ) -> AppResult<UpdateWebhookEndpointPayload> {
        let (org, actor, id) = managed(ctx, &input.id).await?;
        let changes = store::EndpointChanges {
            events: input
                .events
                .map(|e| rules::validate_events(&e))
                .transpose()
                .map_err(|m| AppError::invalid("events", m))?,
            description: input
                .description
                .map(|d| rules::validate_description(Some(&d)))
                .transpose()
                .map_err(|m| AppError::invalid("description", m))?,
            url: match input.url {
                Some(u) => Some(checked_url(ctx, &u).await?),
                None => None,
            },
            enabled: input.enabled,
        };
        let now = state(ctx).clock.now();
        let endpoint = state(ctx)
            .db
            .run(move |c| store::update(c, org, actor, id, changes, now))
            .await?;
        Ok(UpdateWebhookEndpointPayload {
            endpoint: WebhookEndpoint(endpoint),
        })
    }

    /// Deletes an endpoint and its delivery log (organization admins); what was queued for it is
    /// not sent.
    async fn delete_webhook_endpoint(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "The endpoint's global id: `NOT_FOUND` unless it is one of the caller's organization, `FORBIDDEN` unless the caller is an organization admin."
        )]
        id: ID,
    ) -> AppResult<DeleteWebhookEndpointPayload> {
        let (org, actor, id) = managed(ctx, &id).await?;
        let now = state(ctx).clock.now();
        state(ctx)
            .db
            .run(move |c| store::delete(c, org, actor, id, now))
            .await?;
        Ok(DeleteWebhookEndpointPayload {
            deleted_webhook_endpoint_id: gid(Kind::WebhookEndpoint, id),
        })
    }

    /// Issues a new signing secret, answered once (organization admins). For 24 hours deliveries
    /// are signed with both the new and the previous secret, so the receiver can switch at any
    /// moment; a secret before that one stops signing at once.
    async fn rotate_webhook_secret(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "The endpoint's global id: `NOT_FOUND` unless it is one of the caller's organization, `FORBIDDEN` unless the caller is an organization admin."
        )]
        id: ID,
    ) -> AppResult<RotateWebhookSecretPayload> {
        let (org, actor, id) = managed(ctx, &id).await?;
        let st = state(ctx);
        let (keys, now) = (st.secrets.clone(), st.clock.now());
        let (endpoint, secret) = st
            .db
            .run(move |c| store::rotate_secret(c, &keys, org, actor, id, now))
            .await?;
        let until = endpoint
            .previous_until
            .ok_or_else(|| AppError::internal("a rotated secret without its overlap"))?;
        Ok(RotateWebhookSecretPayload {
            endpoint: WebhookEndpoint(endpoint),
            secret: rules::secret_text(&secret),
            previous_secret_expires_at: until,
        })
    }

    /// Sends a delivery again, now, with the same `webhook-id` and body, whatever its status
    /// (organization admins). If that attempt fails it is retried only while the schedule from the
    /// event lasts.
    async fn redeliver_webhook(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "The delivery's global id (`WebhookDelivery.id`): `NOT_FOUND` unless it is one of the caller's organization, `FORBIDDEN` unless the caller is an organization admin, `INVALID_INPUT` when its endpoint is disabled."
        )]
        delivery_id: ID,
    ) -> AppResult<RedeliverWebhookPayload> {
        let id = parse_id(&delivery_id, "WebhookDelivery")?;
        let org = caller(ctx).await?.user.organization_id;
        state(ctx)
            .db
            .run(move |c| store::delivery_in_org(c, org, id))
            .await?;
        let (org, actor) = manager(ctx).await?;
        let now = state(ctx).clock.now();
        state(ctx)
            .db
            .run(move |c| store::redeliver(c, org, actor, id, now))
            .await?;
        delivery(ctx, id)
            .await
            .map(|delivery| RedeliverWebhookPayload { delivery })
    }
}
