//! Webhook endpoints, deliveries and attempts.
//!
//! The outbox: [`enqueue_for_events`] runs inside `audit::record`'s transaction, so an audited
//! change commits with one delivery (and one job) per matching endpoint, or not at all. The
//! delivery row is the source of truth for the worker: [`claim`] decides whether an attempt is due
//! and leases it, [`record_attempt`] writes what happened and what follows. Every step is safe to
//! run twice, so a worker killed mid-delivery costs at most one more attempt (at least once).

use crate::background::WebhookJob;
use crate::db::schema::{audit_events, invites, sites, webhook_attempts, webhook_deliveries};
use crate::db::schema::{organizations, webhook_endpoints};
use crate::domain::ProductRole;
use crate::domain::status::{EndpointStatus, InviteStatus, WebhookDeliveryStatus};
use crate::domain::webhooks::{self as rules, AuditRecord, EventType, Outcome};
use crate::error::{AppError, AppResult};
use crate::secrets::SecretKeys;
use crate::store::audit::{self, Audit};
use crate::store::models::AuditEvent;
use crate::store::queue;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Text, Timestamptz};
use rand::RngCore;
use serde_json::json;
use uuid::Uuid;

/// An endpoint as admins see it (its secrets are read only by [`claim`] and [`reseal_secrets`]).
#[derive(Queryable, Selectable, Clone, Debug)]
#[diesel(table_name = webhook_endpoints, check_for_backend(diesel::pg::Pg))]
pub struct Endpoint {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub url: String,
    pub description: String,
    pub event_types: Vec<String>,
    pub status: EndpointStatus,
    pub failing_since: Option<DateTime<Utc>>,
    pub previous_until: Option<DateTime<Utc>>,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Endpoint {
    /// The event types it receives (names no longer in the catalogue are left out).
    pub fn events(&self) -> Vec<EventType> {
        self.event_types
            .iter()
            .filter_map(|n| EventType::parse(n))
            .collect()
    }
}

#[derive(Queryable, Selectable, Clone, Debug)]
#[diesel(table_name = webhook_deliveries, check_for_backend(diesel::pg::Pg))]
pub struct Delivery {
    pub id: Uuid,
    pub endpoint_id: Uuid,
    pub audit_event_id: i64,
    pub event_type: String,
    pub payload: String,
    pub status: WebhookDeliveryStatus,
    pub attempts: i32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub leased_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

#[derive(Queryable, Selectable, Clone, Debug)]
#[diesel(table_name = webhook_attempts, check_for_backend(diesel::pg::Pg))]
pub struct Attempt {
    pub delivery_id: Uuid,
    pub number: i32,
    pub attempted_at: DateTime<Utc>,
    pub duration_ms: Option<i32>,
    pub response_status: Option<i32>,
    pub response_body_prefix: Option<String>,
    pub error: Option<String>,
}

/// What an attempt left unfinished says once another one starts.
const INTERRUPTED: &str = "interrupted: the worker stopped before the answer was recorded";

// ---------------------------------------------------------------------------------------------
// The outbox.

/// Whether any of these audit events goes out as a webhook event (when none does, recording them
/// costs nothing more than before).
pub fn wanted(events: &[Audit]) -> bool {
    events
        .iter()
        .any(|e| EventType::of_audit(e.action).is_some())
}

/// Runs `f` atomically: in the caller's transaction when there is one, else in a new one (no
/// savepoint is spent when a caller already holds a transaction, which is nearly always).
pub fn atomically<T>(
    conn: &mut PgConnection,
    f: impl FnOnce(&mut PgConnection) -> AppResult<T>,
) -> AppResult<T> {
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    let depth = AnsiTransactionManager::transaction_manager_status_mut(conn)
        .transaction_depth()
        .map_err(AppError::from)?;
    match depth {
        Some(_) => f(conn),
        None => conn.transaction(f),
    }
}

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    id: Uuid,
}

/// The events of [`enqueue_for_events`], column by column (one array parameter each).
#[derive(Default)]
struct Events {
    orgs: Vec<Uuid>,
    ids: Vec<i64>,
    types: Vec<String>,
    payloads: Vec<String>,
    times: Vec<DateTime<Utc>>,
}

/// One delivery for each of these audit events and each endpoint of its organization that is not
/// disabled and subscribes to its type, in one statement, and a job for each delivery; in the
/// caller's transaction. An organization without endpoints costs that one indexed statement.
pub fn enqueue_for_events(conn: &mut PgConnection, rows: &[AuditEvent]) -> AppResult<usize> {
    let mut ev = Events::default();
    for r in rows {
        let Some(p) = rules::payload(&record_of(r)) else {
            continue;
        };
        ev.orgs.push(r.organization_id);
        ev.ids.push(r.id);
        ev.types.push(p.event_type.to_string());
        ev.payloads.push(p.to_body());
        ev.times.push(r.created_at);
    }
    if ev.ids.is_empty() {
        return Ok(0);
    }
    let ids: Vec<Id> = diesel::sql_query(
        "INSERT INTO webhook_deliveries (endpoint_id, audit_event_id, event_type, payload, status,
                                         next_attempt_at, created_at)
         SELECT e.id, ev.audit_id, ev.event_type, ev.payload, $6, ev.created_at, ev.created_at
         FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::text[], $5::timestamptz[])
              AS ev(org, audit_id, event_type, payload, created_at)
         JOIN webhook_endpoints e ON e.organization_id = ev.org AND e.status <> $7
                                 AND ev.event_type = ANY (e.event_types)
         ON CONFLICT (endpoint_id, audit_event_id) DO NOTHING
         RETURNING id",
    )
    .bind::<Array<diesel::sql_types::Uuid>, _>(&ev.orgs)
    .bind::<Array<BigInt>, _>(&ev.ids)
    .bind::<Array<Text>, _>(&ev.types)
    .bind::<Array<Text>, _>(&ev.payloads)
    .bind::<Array<Timestamptz>, _>(&ev.times)
    .bind::<Text, _>(WebhookDeliveryStatus::Pending)
    .bind::<Text, _>(EndpointStatus::Disabled)
    .load(conn)?;
    let jobs: Vec<WebhookJob> = ids
        .iter()
        .map(|d| WebhookJob { delivery_id: d.id })
        .collect();
    queue::enqueue_jobs(conn, &jobs)?;
    Ok(ids.len())
}

fn record_of(r: &AuditEvent) -> AuditRecord<'_> {
    AuditRecord {
        id: r.id,
        organization_id: r.organization_id,
        actor_id: r.actor_id,
        action: &r.action,
        target_type: &r.target_type,
        target_id: &r.target_id,
        site_id: r.site_id,
        before: r.before.as_ref(),
        after: r.after.as_ref(),
        created_at: r.created_at,
    }
}

// ---------------------------------------------------------------------------------------------
// Endpoints (organization admins; the GraphQL layer asks the policy first).

/// What `createWebhookEndpoint` asks for, checked by [`rules`].
pub struct NewEndpoint {
    pub url: String,
    pub events: Vec<EventType>,
    pub description: String,
}

fn names(events: &[EventType]) -> Vec<String> {
    events.iter().map(|e| e.name().to_string()).collect()
}

fn new_secret() -> Vec<u8> {
    let mut secret = vec![0u8; rules::SECRET_BYTES];
    rand::rng().fill_bytes(&mut secret);
    secret
}

/// Serializes the changes to one organization's endpoints (their number is bounded).
fn lock_endpoints_of(conn: &mut PgConnection, org: Uuid) -> AppResult<()> {
    organizations::table
        .find(org)
        .select(organizations::id)
        .for_no_key_update()
        .first::<Uuid>(conn)?;
    Ok(())
}

fn event(org: Uuid, actor: Uuid, action: &'static str, id: Uuid, now: DateTime<Utc>) -> Audit {
    Audit::new(org, actor, action, now).target("webhook_endpoint", id)
}

/// Registers an endpoint with a new signing secret; answers it and the secret (shown once).
pub fn create(
    conn: &mut PgConnection,
    keys: &SecretKeys,
    org: Uuid,
    actor: Uuid,
    new: NewEndpoint,
    now: DateTime<Utc>,
) -> AppResult<(Endpoint, Vec<u8>)> {
    conn.transaction(|conn| {
        lock_endpoints_of(conn, org)?;
        let existing: i64 = webhook_endpoints::table
            .filter(webhook_endpoints::organization_id.eq(org))
            .count()
            .get_result(conn)?;
        if existing >= rules::MAX_ENDPOINTS {
            return Err(AppError::TooManyWebhookEndpoints {
                max: rules::MAX_ENDPOINTS,
            });
        }
        let id = Uuid::new_v4();
        let secret = new_secret();
        let (sealed, key_id) = keys.seal(id, &secret)?;
        let endpoint = diesel::insert_into(webhook_endpoints::table)
            .values((
                webhook_endpoints::id.eq(id),
                webhook_endpoints::organization_id.eq(org),
                webhook_endpoints::url.eq(&new.url),
                webhook_endpoints::description.eq(&new.description),
                webhook_endpoints::event_types.eq(names(&new.events)),
                webhook_endpoints::secret_sealed.eq(sealed),
                webhook_endpoints::secret_key_id.eq(key_id),
                webhook_endpoints::created_by.eq(actor),
                webhook_endpoints::created_at.eq(now),
                webhook_endpoints::updated_at.eq(now),
            ))
            .returning(Endpoint::as_returning())
            .get_result(conn)?;
        let mut e = event(org, actor, "webhook.create", id, now);
        e.after = Some(json!({ "url": new.url, "events": names(&new.events) }));
        audit::record(conn, e)?;
        Ok((endpoint, secret))
    })
}

/// An endpoint of the organization; any other is `NOT_FOUND`.
pub fn endpoint_in_org(conn: &mut PgConnection, org: Uuid, id: Uuid) -> AppResult<Endpoint> {
    webhook_endpoints::table
        .find(id)
        .filter(webhook_endpoints::organization_id.eq(org))
        .select(Endpoint::as_select())
        .first(conn)
        .optional()?
        .ok_or(AppError::NotFound("Webhook endpoint"))
}

/// What `updateWebhookEndpoint` changes; a field left `None` stays as it is.
#[derive(Default)]
pub struct EndpointChanges {
    pub url: Option<String>,
    pub events: Option<Vec<EventType>>,
    pub description: Option<String>,
    pub enabled: Option<bool>,
}

/// Changes an endpoint. Disabling it stops its deliveries (nothing new is queued for it, and what
/// is queued waits); enabling it again sends what waits. A failing endpoint stays failing until a
/// delivery succeeds.
pub fn update(
    conn: &mut PgConnection,
    org: Uuid,
    actor: Uuid,
    id: Uuid,
    changes: EndpointChanges,
    now: DateTime<Utc>,
) -> AppResult<Endpoint> {
    conn.transaction(|conn| {
        let old = locked_endpoint(conn, org, id)?;
        let status = match (changes.enabled, old.status) {
            (Some(false), _) => EndpointStatus::Disabled,
            (Some(true), EndpointStatus::Disabled) => EndpointStatus::Active,
            (_, s) => s,
        };
        let failing_since = old.failing_since.filter(|_| status == EndpointStatus::Failing);
        let endpoint: Endpoint = diesel::update(webhook_endpoints::table.find(id))
            .set((
                webhook_endpoints::url.eq(changes.url.as_ref().unwrap_or(&old.url)),
                webhook_endpoints::event_types.eq(changes
                    .events
                    .as_deref()
                    .map_or(old.event_types.clone(), names)),
                webhook_endpoints::description
                    .eq(changes.description.as_ref().unwrap_or(&old.description)),
                webhook_endpoints::status.eq(status),
                webhook_endpoints::failing_since.eq(failing_since),
                webhook_endpoints::updated_at.eq(now),
            ))
            .returning(Endpoint::as_returning())
            .get_result(conn)?;
        if old.status == EndpointStatus::Disabled && status != EndpointStatus::Disabled {
            requeue_open(conn, id)?;
        }
        let mut e = event(org, actor, "webhook.update", id, now);
        e.before = Some(
            json!({ "url": old.url, "events": old.event_types, "status": old.status.as_str() }),
        );
        e.after =
            Some(json!({ "url": endpoint.url, "events": endpoint.event_types, "status": status.as_str() }));
        audit::record(conn, e)?;
        Ok(endpoint)
    })
}

fn locked_endpoint(conn: &mut PgConnection, org: Uuid, id: Uuid) -> AppResult<Endpoint> {
    webhook_endpoints::table
        .find(id)
        .filter(webhook_endpoints::organization_id.eq(org))
        .for_update()
        .select(Endpoint::as_select())
        .first(conn)
        .optional()?
        .ok_or(AppError::NotFound("Webhook endpoint"))
}

/// A job for each delivery of the endpoint that still waits (after it is enabled again).
fn requeue_open(conn: &mut PgConnection, endpoint: Uuid) -> AppResult<()> {
    let open: Vec<Uuid> = webhook_deliveries::table
        .filter(webhook_deliveries::endpoint_id.eq(endpoint))
        .filter(webhook_deliveries::status.eq_any(WebhookDeliveryStatus::OPEN))
        .select(webhook_deliveries::id)
        .load(conn)?;
    let jobs: Vec<WebhookJob> = open
        .into_iter()
        .map(|delivery_id| WebhookJob { delivery_id })
        .collect();
    queue::enqueue_jobs(conn, &jobs)
}

/// Deletes an endpoint with its delivery log; queued jobs then find nothing to send.
pub fn delete(
    conn: &mut PgConnection,
    org: Uuid,
    actor: Uuid,
    id: Uuid,
    now: DateTime<Utc>,
) -> AppResult<Endpoint> {
    conn.transaction(|conn| {
        let old = locked_endpoint(conn, org, id)?;
        diesel::delete(webhook_endpoints::table.find(id)).execute(conn)?;
        let mut e = event(org, actor, "webhook.delete", id, now);
        e.before = Some(json!({ "url": old.url, "events": old.event_types }));
        audit::record(conn, e)?;
        Ok(old)
    })
}

/// A new signing secret (answered once); the one before still signs, beside it, for
/// [`rules::ROTATION_OVERLAP_HOURS`] (a secret before that one stops at once).
pub fn rotate_secret(
    conn: &mut PgConnection,
    keys: &SecretKeys,
    org: Uuid,
    actor: Uuid,
    id: Uuid,
    now: DateTime<Utc>,
) -> AppResult<(Endpoint, Vec<u8>)> {
    conn.transaction(|conn| {
        locked_endpoint(conn, org, id)?;
        let (sealed, key_id): (Vec<u8>, String) = webhook_endpoints::table
            .find(id)
            .select((
                webhook_endpoints::secret_sealed,
                webhook_endpoints::secret_key_id,
            ))
            .first(conn)?;
        let secret = new_secret();
        let (new_sealed, new_key_id) = keys.seal(id, &secret)?;
        let until = now + chrono::Duration::hours(rules::ROTATION_OVERLAP_HOURS);
        let endpoint = diesel::update(webhook_endpoints::table.find(id))
            .set((
                webhook_endpoints::previous_secret_sealed.eq(Some(sealed)),
                webhook_endpoints::previous_key_id.eq(Some(key_id)),
                webhook_endpoints::previous_until.eq(Some(until)),
                webhook_endpoints::secret_sealed.eq(new_sealed),
                webhook_endpoints::secret_key_id.eq(new_key_id),
                webhook_endpoints::updated_at.eq(now),
            ))
            .returning(Endpoint::as_returning())
            .get_result(conn)?;
        let mut e = event(org, actor, "webhook.rotateSecret", id, now);
        e.after = Some(json!({ "previousSecretSignsUntil": until }));
        audit::record(conn, e)?;
        Ok((endpoint, secret))
    })
}

/// The organization's endpoints, oldest first, keyset-paginated on `(created_at, id)`.
pub fn list(
    conn: &mut PgConnection,
    org: Uuid,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> AppResult<Vec<Endpoint>> {
    let mut q = webhook_endpoints::table
        .filter(webhook_endpoints::organization_id.eq(org))
        .select(Endpoint::as_select())
        .into_boxed();
    if let Some((at, id)) = after {
        q = q.filter(
            webhook_endpoints::created_at
                .gt(at)
                .or(webhook_endpoints::created_at
                    .eq(at)
                    .and(webhook_endpoints::id.gt(id))),
        );
    }
    Ok(
        q.order((webhook_endpoints::created_at, webhook_endpoints::id))
            .limit(limit)
            .load(conn)?,
    )
}

pub fn count(conn: &mut PgConnection, org: Uuid) -> AppResult<i64> {
    Ok(webhook_endpoints::table
        .filter(webhook_endpoints::organization_id.eq(org))
        .count()
        .get_result(conn)?)
}

// ---------------------------------------------------------------------------------------------
// The delivery log.

/// A page of an endpoint's deliveries, newest first, all or those with one status.
pub fn deliveries(
    conn: &mut PgConnection,
    endpoint: Uuid,
    status: Option<WebhookDeliveryStatus>,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> AppResult<Vec<Delivery>> {
    let mut q = webhook_deliveries::table
        .filter(webhook_deliveries::endpoint_id.eq(endpoint))
        .select(Delivery::as_select())
        .into_boxed();
    if let Some(s) = status {
        q = q.filter(webhook_deliveries::status.eq(s));
    }
    if let Some((at, id)) = after {
        q = q.filter(
            webhook_deliveries::created_at
                .lt(at)
                .or(webhook_deliveries::created_at
                    .eq(at)
                    .and(webhook_deliveries::id.lt(id))),
        );
    }
    Ok(q.order((
        webhook_deliveries::created_at.desc(),
        webhook_deliveries::id.desc(),
    ))
    .limit(limit)
    .load(conn)?)
}

pub fn count_deliveries(
    conn: &mut PgConnection,
    endpoint: Uuid,
    status: Option<WebhookDeliveryStatus>,
) -> AppResult<i64> {
    let mut q = webhook_deliveries::table
        .filter(webhook_deliveries::endpoint_id.eq(endpoint))
        .into_boxed();
    if let Some(s) = status {
        q = q.filter(webhook_deliveries::status.eq(s));
    }
    Ok(q.count().get_result(conn)?)
}

/// The attempts of these deliveries, in order (one statement for a page of the log).
pub fn attempts_of(conn: &mut PgConnection, deliveries: &[Uuid]) -> AppResult<Vec<Attempt>> {
    Ok(webhook_attempts::table
        .filter(webhook_attempts::delivery_id.eq_any(deliveries))
        .order((webhook_attempts::delivery_id, webhook_attempts::number))
        .select(Attempt::as_select())
        .load(conn)?)
}

/// A delivery to an endpoint of the organization, with its endpoint; any other is `NOT_FOUND`.
pub fn delivery_in_org(
    conn: &mut PgConnection,
    org: Uuid,
    id: Uuid,
) -> AppResult<(Delivery, Endpoint)> {
    webhook_deliveries::table
        .inner_join(webhook_endpoints::table)
        .filter(webhook_deliveries::id.eq(id))
        .filter(webhook_endpoints::organization_id.eq(org))
        .select((Delivery::as_select(), Endpoint::as_select()))
        .first(conn)
        .optional()?
        .ok_or(AppError::NotFound("Webhook delivery"))
}

/// Sends a delivery again, now, with the same `webhook-id` and body (whatever its status). If that
/// attempt fails, it is retried only while the schedule from the event lasts.
pub fn redeliver(
    conn: &mut PgConnection,
    org: Uuid,
    actor: Uuid,
    id: Uuid,
    now: DateTime<Utc>,
) -> AppResult<Delivery> {
    conn.transaction(|conn| {
        let (_, endpoint) = delivery_in_org(conn, org, id)?;
        if endpoint.status == EndpointStatus::Disabled {
            return Err(AppError::invalid(
                "deliveryId",
                "its endpoint is disabled: enable it first",
            ));
        }
        let delivery = diesel::update(webhook_deliveries::table.find(id))
            .set((
                webhook_deliveries::status.eq(WebhookDeliveryStatus::Pending),
                webhook_deliveries::next_attempt_at.eq(now),
            ))
            .returning(Delivery::as_returning())
            .get_result(conn)?;
        queue::enqueue_job(conn, &WebhookJob { delivery_id: id }, 0.0, None)?;
        let mut e = event(org, actor, "webhook.redeliver", endpoint.id, now);
        e.after = Some(json!({ "delivery": id, "eventType": delivery.event_type }));
        audit::record(conn, e)?;
        Ok(delivery)
    })
}

// ---------------------------------------------------------------------------------------------
// The worker's steps.

/// One attempt to make: where, what, signed with which secrets.
pub struct ToSend {
    pub delivery_id: Uuid,
    /// This attempt's number (1 for the first).
    pub number: i32,
    pub url: String,
    pub payload: String,
    /// The current secret, then the one before it while a rotation's overlap lasts.
    pub secrets: Vec<Vec<u8>>,
    /// When the event happened: retries last a schedule from it.
    pub first_at: DateTime<Utc>,
}

pub enum Claim {
    Send(Box<ToSend>),
    /// Nothing to do now, and why (delivered, failed, not due, disabled, another worker on it).
    Skip(&'static str),
}

/// A delivery at `now`, and whether it is due: a job that arrives early (a redelivery moved the
/// schedule) leaves it to the job that was enqueued for the new time. Seconds of clock skew
/// between the service and the database's queue are tolerated.
const EARLY_BY_SECS: i64 = 5;

fn not_due(d: &Delivery, now: DateTime<Utc>) -> Option<&'static str> {
    match d.status {
        WebhookDeliveryStatus::Delivered => Some("delivered already"),
        WebhookDeliveryStatus::Failed => Some("failed for good (redeliver it to try again)"),
        _ if d
            .next_attempt_at
            .is_some_and(|t| t > now + chrono::Duration::seconds(EARLY_BY_SECS)) =>
        {
            Some("not due yet: the job for its next attempt is queued")
        }
        _ => None,
    }
}

/// Claims a delivery for one attempt: leases it for `lease` (nobody else sends it meanwhile),
/// counts the attempt and starts its log entry, and opens the secrets that sign it.
pub fn claim(
    conn: &mut PgConnection,
    keys: &SecretKeys,
    delivery_id: Uuid,
    lease: chrono::Duration,
    now: DateTime<Utc>,
) -> AppResult<Claim> {
    conn.transaction(|conn| {
        let Some(d) = webhook_deliveries::table
            .find(delivery_id)
            .for_update()
            .select(Delivery::as_select())
            .first::<Delivery>(conn)
            .optional()?
        else {
            return Ok(Claim::Skip("the delivery no longer exists"));
        };
        if let Some(why) = not_due(&d, now) {
            return Ok(Claim::Skip(why));
        }
        let (url, status, secrets): (String, EndpointStatus, StoredSecrets) =
            webhook_endpoints::table
                .find(d.endpoint_id)
                .select((webhook_endpoints::url, webhook_endpoints::status, STORED))
                .first(conn)?;
        if status == EndpointStatus::Disabled {
            return Ok(Claim::Skip("its endpoint is disabled"));
        }
        // Another worker is sending it (or was, and died): look again when its lease ends.
        if let Some(until) = d.leased_until.filter(|t| *t > now) {
            let wait = (until - now).to_std().unwrap_or_default().as_secs_f64() + 0.5;
            queue::enqueue_job(conn, &WebhookJob { delivery_id }, wait, None)?;
            return Ok(Claim::Skip("another worker holds it"));
        }
        let number = start_attempt(conn, &d, lease, now)?;
        Ok(Claim::Send(Box::new(ToSend {
            delivery_id,
            number,
            url,
            secrets: signing_secrets(keys, d.endpoint_id, secrets, now)?,
            payload: d.payload,
            first_at: d.created_at,
        })))
    })
}

/// Counts the attempt, leases the delivery, and opens the attempt's log entry (closing any that a
/// stopped worker left open).
fn start_attempt(
    conn: &mut PgConnection,
    d: &Delivery,
    lease: chrono::Duration,
    now: DateTime<Utc>,
) -> AppResult<i32> {
    if d.attempts > 0 {
        diesel::update(
            webhook_attempts::table
                .filter(webhook_attempts::delivery_id.eq(d.id))
                .filter(webhook_attempts::duration_ms.is_null())
                .filter(webhook_attempts::error.is_null()),
        )
        .set(webhook_attempts::error.eq(INTERRUPTED))
        .execute(conn)?;
    }
    let number = d.attempts + 1;
    diesel::update(webhook_deliveries::table.find(d.id))
        .set((
            webhook_deliveries::attempts.eq(number),
            webhook_deliveries::leased_until.eq(now + lease),
        ))
        .execute(conn)?;
    diesel::insert_into(webhook_attempts::table)
        .values((
            webhook_attempts::delivery_id.eq(d.id),
            webhook_attempts::number.eq(number),
            webhook_attempts::attempted_at.eq(now),
        ))
        .execute(conn)?;
    Ok(number)
}

/// The secrets that sign at `now`: the current one, and the one before while the overlap lasts.
fn signing_secrets(
    keys: &SecretKeys,
    endpoint: Uuid,
    s: StoredSecrets,
    now: DateTime<Utc>,
) -> AppResult<Vec<Vec<u8>>> {
    let mut out = vec![keys.open(endpoint, &s.0, &s.1)?];
    if let (Some(sealed), Some(key_id)) = (s.2, s.3)
        && rules::previous_still_signs(s.4, now)
    {
        out.push(keys.open(endpoint, &sealed, &key_id)?);
    }
    Ok(out)
}

type StoredSecrets = (
    Vec<u8>,
    String,
    Option<Vec<u8>>,
    Option<String>,
    Option<DateTime<Utc>>,
);

const STORED: (
    webhook_endpoints::secret_sealed,
    webhook_endpoints::secret_key_id,
    webhook_endpoints::previous_secret_sealed,
    webhook_endpoints::previous_key_id,
    webhook_endpoints::previous_until,
) = (
    webhook_endpoints::secret_sealed,
    webhook_endpoints::secret_key_id,
    webhook_endpoints::previous_secret_sealed,
    webhook_endpoints::previous_key_id,
    webhook_endpoints::previous_until,
);

/// What a receiver answered (or why there was no answer).
#[derive(Clone, Debug)]
pub struct AttemptResult {
    pub response_status: Option<u16>,
    pub duration_ms: i32,
    pub body_prefix: String,
    pub error: Option<String>,
}

/// Records an attempt and what follows it ([`rules::after_attempt`] decided): delivered (a failing
/// endpoint is healthy again), another attempt later (a delayed job), or failed for good (the
/// endpoint is failing from now). A record for an attempt that a later one overtook only fills in
/// its log entry. Safe to run twice.
pub fn record_attempt(
    conn: &mut PgConnection,
    delivery_id: Uuid,
    number: i32,
    result: &AttemptResult,
    outcome: Outcome,
    now: DateTime<Utc>,
) -> AppResult<()> {
    conn.transaction(|conn| {
        diesel::update(webhook_attempts::table.find((delivery_id, number)))
            .set((
                webhook_attempts::duration_ms.eq(result.duration_ms),
                webhook_attempts::response_status.eq(result.response_status.map(i32::from)),
                webhook_attempts::response_body_prefix.eq(prefix(&result.body_prefix)),
                webhook_attempts::error.eq(result.error.as_deref().map(prefix)),
            ))
            .execute(conn)?;
        let (status, next, delivered) = match outcome {
            Outcome::Delivered => (WebhookDeliveryStatus::Delivered, None, Some(now)),
            Outcome::Retry(at) => (WebhookDeliveryStatus::Retrying, Some(at), None),
            Outcome::Failed => (WebhookDeliveryStatus::Failed, None, None),
        };
        let endpoint: Option<Uuid> = diesel::update(
            webhook_deliveries::table
                .find(delivery_id)
                .filter(webhook_deliveries::attempts.eq(number)),
        )
        .set((
            webhook_deliveries::status.eq(status),
            webhook_deliveries::next_attempt_at.eq(next),
            webhook_deliveries::leased_until.eq(None::<DateTime<Utc>>),
            webhook_deliveries::delivered_at.eq(delivered),
        ))
        .returning(webhook_deliveries::endpoint_id)
        .get_result(conn)
        .optional()?;
        match (endpoint, outcome) {
            (Some(e), Outcome::Delivered) => set_healthy(conn, e, now),
            (Some(e), Outcome::Failed) => set_failing(conn, e, now),
            (Some(_), Outcome::Retry(at)) => {
                let wait = (at - now).to_std().unwrap_or_default().as_secs_f64();
                queue::enqueue_job(conn, &WebhookJob { delivery_id }, wait, None).map(|_| ())
            }
            (None, _) => Ok(()),
        }
    })
}

fn prefix(s: &str) -> String {
    s.chars().take(rules::RESPONSE_PREFIX_CHARS).collect()
}

/// A success makes a failing endpoint active again.
fn set_healthy(conn: &mut PgConnection, endpoint: Uuid, now: DateTime<Utc>) -> AppResult<()> {
    diesel::update(
        webhook_endpoints::table
            .find(endpoint)
            .filter(webhook_endpoints::status.eq(EndpointStatus::Failing)),
    )
    .set((
        webhook_endpoints::status.eq(EndpointStatus::Active),
        webhook_endpoints::failing_since.eq(None::<DateTime<Utc>>),
        webhook_endpoints::updated_at.eq(now),
    ))
    .execute(conn)?;
    Ok(())
}

/// A delivery that used up its retries makes its (active) endpoint failing, from now.
fn set_failing(conn: &mut PgConnection, endpoint: Uuid, now: DateTime<Utc>) -> AppResult<()> {
    diesel::update(
        webhook_endpoints::table
            .find(endpoint)
            .filter(webhook_endpoints::status.eq(EndpointStatus::Active)),
    )
    .set((
        webhook_endpoints::status.eq(EndpointStatus::Failing),
        webhook_endpoints::failing_since.eq(now),
        webhook_endpoints::updated_at.eq(now),
    ))
    .execute(conn)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Maintenance.

/// Deliveries that should have been tried this long ago and are not leased have lost their job
/// (a queue row deleted by hand, an enqueue skipped by a clock far off): the sweep queues them
/// again. Trying is idempotent, so a delivery merely slow to be picked up costs nothing.
pub const STUCK_AFTER_MINUTES: i64 = 10;

/// Queues a job again for each delivery of an enabled endpoint that is overdue by
/// [`STUCK_AFTER_MINUTES`] and not being sent; answers how many.
pub fn rescue(conn: &mut PgConnection, now: DateTime<Utc>) -> AppResult<usize> {
    let stuck = now - chrono::Duration::minutes(STUCK_AFTER_MINUTES);
    let ids: Vec<Uuid> = webhook_deliveries::table
        .inner_join(webhook_endpoints::table)
        .filter(webhook_deliveries::status.eq_any(WebhookDeliveryStatus::OPEN))
        .filter(webhook_deliveries::next_attempt_at.lt(stuck))
        .filter(
            webhook_deliveries::leased_until
                .is_null()
                .or(webhook_deliveries::leased_until.lt(now)),
        )
        .filter(webhook_endpoints::status.ne(EndpointStatus::Disabled))
        .select(webhook_deliveries::id)
        .limit(1000)
        .load(conn)?;
    for delivery_id in &ids {
        queue::enqueue_job(
            conn,
            &WebhookJob {
                delivery_id: *delivery_id,
            },
            0.0,
            None,
        )?;
    }
    Ok(ids.len())
}

/// Deletes finished deliveries (delivered or failed) made before `before`, with their attempts.
pub fn purge(conn: &mut PgConnection, before: DateTime<Utc>) -> AppResult<usize> {
    Ok(diesel::sql_query(
        "DELETE FROM webhook_deliveries WHERE id IN (
           SELECT id FROM webhook_deliveries
           WHERE status IN ($2, $3) AND created_at < $1 LIMIT 10000)",
    )
    .bind::<Timestamptz, _>(before)
    .bind::<Text, _>(WebhookDeliveryStatus::Delivered)
    .bind::<Text, _>(WebhookDeliveryStatus::Failed)
    .execute(conn)?)
}

/// Deliveries still to deliver, and endpoints failing (for `/metrics`).
pub fn gauges(conn: &mut PgConnection) -> AppResult<(i64, i64)> {
    let open: i64 = webhook_deliveries::table
        .filter(webhook_deliveries::status.eq_any(WebhookDeliveryStatus::OPEN))
        .count()
        .get_result(conn)?;
    let failing: i64 = webhook_endpoints::table
        .filter(webhook_endpoints::status.eq(EndpointStatus::Failing))
        .count()
        .get_result(conn)?;
    Ok((open, failing))
}

/// Re-seals under the current key every endpoint secret (current or previous) sealed under another
/// one (`guestpass rotate-secrets`); answers how many endpoints it wrote. A secret under a key that
/// neither GUESTPASS_SECRET nor GUESTPASS_SECRET_PREVIOUS names fails the whole run.
pub fn reseal_secrets(conn: &mut PgConnection, keys: &SecretKeys) -> AppResult<usize> {
    conn.transaction(|conn| {
        let current = keys.current_id().to_string();
        let rows: Vec<(Uuid, StoredSecrets)> = webhook_endpoints::table
            .filter(
                webhook_endpoints::secret_key_id
                    .ne(&current)
                    .or(webhook_endpoints::previous_key_id.ne(&current)),
            )
            .select((webhook_endpoints::id, STORED))
            .for_update()
            .load(conn)?;
        for (id, s) in &rows {
            let (sealed, key_id) = keys.seal(*id, &keys.open(*id, &s.0, &s.1)?)?;
            let previous = match (&s.2, &s.3) {
                (Some(p), Some(k)) => Some(keys.seal(*id, &keys.open(*id, p, k)?)?),
                _ => None,
            };
            diesel::update(webhook_endpoints::table.find(id))
                .set((
                    webhook_endpoints::secret_sealed.eq(sealed),
                    webhook_endpoints::secret_key_id.eq(key_id),
                    webhook_endpoints::previous_secret_sealed.eq(previous.clone().map(|p| p.0)),
                    webhook_endpoints::previous_key_id.eq(previous.map(|p| p.1)),
                ))
                .execute(conn)?;
        }
        Ok(rows.len())
    })
}

/// Records `invite.expire` for every pending invite past its expiry that has no such event since
/// it expired (a resent invite that expires again gets another), so the event stream holds
/// expiries too; answers how many. Idempotent, and serialized, so two sweeps record each once.
pub fn record_expired_invites(conn: &mut PgConnection, now: DateTime<Utc>) -> AppResult<usize> {
    conn.transaction(|conn| {
        diesel::sql_query("SELECT pg_advisory_xact_lock(hashtext('guestpass invite expiry'))")
            .execute(conn)?;
        let expired: Vec<(crate::store::models::Invite, Uuid)> = invites::table
            .inner_join(sites::table)
            .filter(invites::status.eq(InviteStatus::Pending))
            .filter(invites::expires_at.le(now))
            .filter(diesel::dsl::not(diesel::dsl::exists(
                audit_events::table
                    .filter(audit_events::action.eq("invite.expire"))
                    .filter(
                        audit_events::target_id.eq(diesel::dsl::sql::<Text>("invites.id::text")),
                    )
                    .filter(audit_events::created_at.ge(invites::expires_at)),
            )))
            .order(invites::expires_at)
            .limit(500)
            .select((
                crate::store::models::Invite::as_select(),
                sites::organization_id,
            ))
            .load(conn)?;
        let events: Vec<Audit> = expired
            .iter()
            .map(|(i, org)| {
                Audit::new(*org, None, "invite.expire", now)
                    .target("invite", i.id)
                    .site(i.site_id)
                    .after(json!({
                    "email": i.email,
                    "role": i.role.and_then(ProductRole::from_rank),
                    "space": i.space_id,
                    "status": InviteStatus::Expired.as_str(),
                    "expiresAt": i.expires_at,
                    }))
            })
            .collect();
        audit::record_all(conn, events)?;
        Ok(expired.len())
    })
}
