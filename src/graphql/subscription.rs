//! GraphQL subscriptions, served over WebSocket with `graphql-transport-ws` (`http::graphql`): live
//! changes for admin screens, from the events every replica hears (`crate::events`).
//!
//! On subscribe, the caller is judged as by the matching query (`invites`, `bulkInvite`,
//! `auditEvents`): a site or file of another organization is `NOT_FOUND`, one the caller may not see
//! this of is `FORBIDDEN`. Then, for each burst of events: the events of other sites are skipped
//! unread; the rows the others name are loaded; the token is authenticated again and the caller's
//! facts loaded afresh, and the one policy (`may_see`) decides whether the caller still sees them;
//! their fields are resolved with those same facts ([`EventFacts`]). A caller who no longer may
//! gets `FORBIDDEN`, and the subscription ends. Missed events are said (`EVENTS_MISSED`) or made up
//! for, as each field describes.

use super::bulk::BulkInvite;
use super::types::{AuditEvent, EmailDelivery, Invite};
use super::{RequestAuth, parse_id};
use crate::domain::authorization::{Object, Sight, Viewer, may_see};
use crate::domain::status::BulkStatus;
use crate::domain::webhooks::EventType;
use crate::error::{AppError, AppResult};
use crate::events::Event;
use crate::metrics::Metrics;
use crate::state::AppState;
use crate::store::access::Caller;
use crate::store::{access, bulk, live, models};
use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextExecute};
use async_graphql::{Context, Data, ID, Response, Subscription};
use futures_util::stream::{self, BoxStream, StreamExt};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};
use uuid::Uuid;

/// Events taken in one burst at most (then loaded in one statement).
const MOST_PER_BURST: usize = 500;

/// A bulk file's progress is sent at most this often.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// Audit events made up for after missed events, at most; past it, `EVENTS_MISSED` says more may
/// have been missed.
const CATCH_UP: i64 = 100;

/// What an operation over a live connection carries beside the request (the transport puts it in
/// each operation's data): the connection's token, and the request each event is resolved as.
#[derive(Clone)]
pub struct LiveRequest {
    token: String,
    client: Option<String>,
    /// The facts the event being resolved was checked with ([`EventFacts`] hands them over).
    current: Arc<Mutex<Option<RequestAuth>>>,
}

impl LiveRequest {
    pub fn new(token: String, client: Option<String>) -> Self {
        Self {
            token,
            client,
            current: Arc::default(),
        }
    }

    fn set(&self, auth: RequestAuth) {
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = Some(auth);
    }

    fn current(&self) -> Option<RequestAuth> {
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Resolves each event of a subscription as a request of its own, whose caller and viewer are the
/// facts the event was checked with (not those of the subscription's start), and whose loaders start
/// empty. Other operations pass through.
pub struct EventFacts;

impl ExtensionFactory for EventFacts {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(EventFactsExtension)
    }
}

struct EventFactsExtension;

#[async_graphql::async_trait::async_trait]
impl Extension for EventFactsExtension {
    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let current = ctx.data_opt::<LiveRequest>().and_then(LiveRequest::current);
        match (current, ctx.data_opt::<AppState>()) {
            (Some(auth), Some(st)) => {
                let mut data = Data::default();
                data.insert(auth);
                data.insert(super::loaders::loaders(st.db.clone(), true));
                next.run_with_data(ctx, operation_name, data).await
            }
            _ => next.run(ctx, operation_name).await,
        }
    }
}

#[derive(Default)]
pub struct SubscriptionRoot;

/// Live changes, over WebSocket (`graphql-transport-ws` at `/graphql`, authenticated by the
/// `connection_init` payload's `Authorization`). A live signal, at most once: after a reconnection,
/// or an `EVENTS_MISSED` error, query the current state again.
#[Subscription]
impl SubscriptionRoot {
    /// Each change of an invite email of a site: queued, then sending, sent, retrying, failed or
    /// cancelled (site admins: who read `invites`). Each event is the email in the state it has when
    /// the event is sent, so quick successive changes may arrive as one. After missed events, an
    /// `EVENTS_MISSED` error: query `invites` again.
    async fn invite_delivery_changed(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "The site (global id): `NOT_FOUND` unless it is one of the caller's organization, `FORBIDDEN` unless the caller administers it."
        )]
        site_id: ID,
    ) -> Result<BoxStream<'static, AppResult<InviteDeliveryChange>>, AppError> {
        let site = parse_id(&site_id, "Site")?;
        let events = super::state(ctx).live.events();
        let feed = Feed::start(ctx, events, Object::SiteAdministration { site }, site).await?;
        Ok(stream::unfold(feed, move |mut f| async move {
            loop {
                if let Some(item) = f.next_ready() {
                    return Some((item, f));
                }
                let burst = f
                    .burst(|e| matches!(e, Event::Delivery { site: s, .. } if *s == site))
                    .await?;
                f.deliveries(site, burst).await;
            }
        })
        .boxed())
    }

    /// A bulk invite file's progress: its state now, then as its rows are tried, at most a few times
    /// a second, ending once it is `DONE` (site admins: who read `bulkInvite`). After missed events,
    /// its state is sent again.
    async fn bulk_invite_progress(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "The id the upload answered with. An unknown one is `NOT_FOUND`; `FORBIDDEN` unless the caller administers the bulk invite's site."
        )]
        id: ID,
    ) -> Result<BoxStream<'static, AppResult<BulkInvite>>, AppError> {
        let id = parse_id(&id, "Bulk invite")?;
        // Heard from before its state is read, so that no change falls between.
        let events = super::state(ctx).live.events();
        // Judged, and sent first, as `bulkInvite` answers it.
        let now = super::node::bulk_invite(ctx, id).await?;
        let (site, org) = (now.row.site_id, now.row.organization_id);
        let mut feed = Feed::start(ctx, events, Object::SiteAdministration { site }, site).await?;
        feed.ended = now.row.status == BulkStatus::Done;
        feed.ready.push_back(Ok(now));
        Ok(stream::unfold(feed, move |mut f| async move {
            loop {
                if let Some(item) = f.next_ready() {
                    return Some((item, f));
                }
                if f.ended {
                    return None;
                }
                tokio::time::sleep_until(f.yielded_at + PROGRESS_EVERY).await;
                // Whatever came while waiting is about the same file: one load says it all.
                f.burst(|e| *e == Event::Bulk(id)).await?;
                f.progress(org, id, site).await;
                f.yielded_at = tokio::time::Instant::now();
            }
        })
        .boxed())
    }

    /// Each change of who has access to a site, as recorded in the audit trail: the audit actions
    /// webhooks send (`WebhookEventType`: invites, roles, groups, guests' spaces, lifetimes and
    /// sponsors, removals, admin grants, the site's settings) that concern this site (organization
    /// admins: who read `auditEvents`). After missed events, those recorded meanwhile are sent (at
    /// most 100; `EVENTS_MISSED` when there may be more).
    async fn access_changed(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "The site (global id): `NOT_FOUND` unless it is one of the caller's organization, `FORBIDDEN` unless the caller is an organization admin."
        )]
        site_id: ID,
    ) -> Result<BoxStream<'static, AppResult<AuditEvent>>, AppError> {
        let site = parse_id(&site_id, "Site")?;
        let events = super::state(ctx).live.events();
        let org = super::caller(ctx).await?.user.organization_id;
        let object = Object::OrganizationAdministration { org };
        let mut feed = Feed::start(ctx, events, object, site).await?;
        feed.last_audit = super::state(ctx).db.run(live::last_audit_event).await?;
        Ok(stream::unfold(feed, move |mut f| async move {
            loop {
                if let Some(item) = f.next_ready() {
                    return Some((item, f));
                }
                let burst = f
                    .burst(|e| matches!(e, Event::Audit { site: s, .. } if *s == site))
                    .await?;
                f.audit(org, site, burst).await;
            }
        })
        .boxed())
    }
}

/// An invite email that changed (`inviteDeliveryChanged`).
pub struct InviteDeliveryChange {
    invite: Invite,
    delivery: EmailDelivery,
}

/// An invite email that was queued or changed status, with its invite.
#[async_graphql::Object]
impl InviteDeliveryChange {
    /// The invite the email is for, as it is now.
    async fn invite(&self) -> &Invite {
        &self.invite
    }
    /// The email, in the state it has now (not necessarily the latest email of the invite: a resend
    /// cancels the one before).
    async fn delivery(&self) -> &EmailDelivery {
        &self.delivery
    }
}

/// Counts a running subscription in `/metrics` while it lives.
struct Running(Arc<Metrics>);

impl Running {
    fn new(metrics: Arc<Metrics>) -> Self {
        metrics.live_subscriptions.inc();
        Self(metrics)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.live_subscriptions.dec();
    }
}

/// Events taken at once, and whether some were missed before them.
#[derive(Default)]
struct Burst {
    events: Vec<Event>,
    missed: bool,
}

/// One subscription's state: what it hears, what it may see, what it has yet to send.
struct Feed<T> {
    st: AppState,
    live: LiveRequest,
    events: broadcast::Receiver<Event>,
    /// What the caller must see in full for the events to be sent.
    object: Object<'static>,
    ready: VecDeque<AppResult<T>>,
    /// Nothing more after `ready`.
    ended: bool,
    yielded_at: tokio::time::Instant,
    /// The last audit event sent or passed (`accessChanged`), and those sent lately.
    last_audit: i64,
    sent_audit: VecDeque<i64>,
    _running: Running,
}

impl<T> Feed<T> {
    /// Authorizes the subscription (`object`, on `site` of the caller's organization). `events` were
    /// heard from before anything was read, so that none falls between.
    async fn start(
        ctx: &Context<'_>,
        events: broadcast::Receiver<Event>,
        object: Object<'static>,
        site: Uuid,
    ) -> AppResult<Self> {
        let st = super::state(ctx).clone();
        let live = ctx
            .data_opt::<LiveRequest>()
            .cloned()
            .ok_or(AppError::Unauthenticated)?;
        // A site of another organization is `NOT_FOUND`; then the policy decides, as queries do.
        super::site_access(ctx, site).await?;
        super::require_sight(ctx, object).await?;
        if let Some(auth) = ctx.data_opt::<RequestAuth>() {
            live.set(auth.clone());
        }
        Ok(Self {
            _running: Running::new(st.metrics.clone()),
            st,
            live,
            events,
            object,
            ready: VecDeque::new(),
            ended: false,
            yielded_at: tokio::time::Instant::now(),
            last_audit: 0,
            sent_audit: VecDeque::new(),
        })
    }

    fn next_ready(&mut self) -> Option<AppResult<T>> {
        self.ready.pop_front()
    }

    /// Waits for the next event `wanted`, and takes those already there too; `None` when the
    /// subscription is over (ended, or the process stopping).
    async fn burst(&mut self, wanted: impl Fn(&Event) -> bool) -> Option<Burst> {
        if self.ended {
            return None;
        }
        let mut burst = Burst::default();
        loop {
            match self.events.recv().await {
                Ok(Event::Missed) | Err(RecvError::Lagged(_)) => burst.missed = true,
                Ok(e) if wanted(&e) => burst.events.push(e),
                Ok(_) => continue,
                Err(RecvError::Closed) => return None,
            }
            break;
        }
        while burst.events.len() < MOST_PER_BURST {
            match self.events.try_recv() {
                Ok(Event::Missed) | Err(TryRecvError::Lagged(_)) => burst.missed = true,
                Ok(e) if wanted(&e) => burst.events.push(e),
                Ok(_) => {}
                Err(TryRecvError::Empty | TryRecvError::Closed) => break,
            }
        }
        Some(burst)
    }

    /// The caller now: the token authenticated again, and their facts loaded afresh. `Ok(None)` when
    /// they no longer see the subscription's objects.
    async fn facts(&self) -> AppResult<Option<(Caller, Arc<Viewer>)>> {
        let who = super::authenticate(&self.st, &self.live.token)
            .await?
            .ok_or(AppError::Unauthenticated)?;
        super::admit(&who, self.st.clock.now())?;
        let w = who.clone();
        let viewer = Arc::new(self.st.db.run(move |c| access::viewer(c, &w)).await?);
        Ok((may_see(&viewer, self.object) == Sight::Full).then_some((who, viewer)))
    }

    /// Sends `items` if the caller may still see them, resolved with the facts they were checked
    /// with; otherwise the refusal, and the end.
    async fn send_seen(&mut self, items: Vec<T>) {
        if items.is_empty() {
            return;
        }
        match self.facts().await {
            Ok(Some((who, viewer))) => {
                let (token, client) = (self.live.token.clone(), self.live.client.clone());
                self.live
                    .set(RequestAuth::resolved(token, client, who, viewer));
                self.ready.extend(items.into_iter().map(Ok));
            }
            Ok(None) => self.end(AppError::Forbidden),
            Err(e) => self.fail(e),
        }
    }

    /// A refusal that ends the subscription.
    fn end(&mut self, e: AppError) {
        self.ready.push_back(Err(e));
        self.ended = true;
    }

    /// An error to report: one about the caller ends the subscription, others (the database out for a
    /// moment) do not.
    fn fail(&mut self, e: AppError) {
        match e {
            AppError::Unauthenticated
            | AppError::ApiTokensBlocked
            | AppError::ReverificationRequired
            | AppError::Forbidden
            | AppError::NotFound(_) => self.end(e),
            other => self.ready.push_back(Err(other)),
        }
    }
}

impl Feed<InviteDeliveryChange> {
    async fn deliveries(&mut self, site: Uuid, burst: Burst) {
        let mut ids: Vec<Uuid> = burst
            .events
            .iter()
            .filter_map(|e| match e {
                Event::Delivery { id, .. } => Some(*id),
                _ => None,
            })
            .collect();
        ids.sort();
        ids.dedup();
        match self
            .st
            .db
            .run(move |c| live::invite_deliveries(c, site, &ids))
            .await
        {
            Ok(rows) => {
                let items = rows
                    .into_iter()
                    .map(|(delivery, invite)| InviteDeliveryChange {
                        invite: Invite(invite),
                        delivery: EmailDelivery(delivery),
                    })
                    .collect();
                self.send_seen(items).await;
            }
            Err(e) => self.fail(e),
        }
        if burst.missed && !self.ended {
            self.ready.push_back(Err(AppError::EventsMissed));
        }
    }
}

impl Feed<BulkInvite> {
    async fn progress(&mut self, org: Uuid, id: Uuid, site: Uuid) {
        match self.st.db.run(move |c| bulk::in_org(c, org, id)).await {
            Ok((row, _)) if row.site_id != site => self.end(AppError::NotFound("Bulk invite")),
            Ok((row, progress)) => {
                let done = row.status == BulkStatus::Done;
                self.send_seen(vec![BulkInvite { row, progress }]).await;
                self.ended |= done;
            }
            Err(e) => self.fail(e),
        }
    }
}

impl Feed<AuditEvent> {
    async fn audit(&mut self, org: Uuid, site: Uuid, burst: Burst) {
        let ids: Vec<i64> = burst
            .events
            .iter()
            .filter_map(|e| match e {
                Event::Audit { id, .. } => Some(*id),
                _ => None,
            })
            .filter(|id| !self.sent_audit.contains(id))
            .collect();
        let (missed, after) = (burst.missed, self.last_audit);
        let loaded = self
            .st
            .db
            .run(move |c| {
                let mut rows = live::site_audit_events(c, site, &ids)?;
                let mut more = false;
                if missed {
                    let caught = live::site_audit_events_after(c, site, after, CATCH_UP)?;
                    more = caught.len() as i64 == CATCH_UP;
                    rows.extend(caught);
                    rows.sort_by_key(|r| r.id);
                    rows.dedup_by_key(|r| r.id);
                }
                Ok((rows, more))
            })
            .await;
        match loaded {
            Ok((rows, more)) => {
                let rows: Vec<models::AuditEvent> = rows
                    .into_iter()
                    .filter(|r| r.organization_id == org && !self.sent_audit.contains(&r.id))
                    .collect();
                for r in &rows {
                    self.last_audit = self.last_audit.max(r.id);
                    self.sent_audit.push_back(r.id);
                    if self.sent_audit.len() > 1024 {
                        self.sent_audit.pop_front();
                    }
                }
                let items = rows
                    .into_iter()
                    .filter(|r| EventType::of_audit(&r.action).is_some())
                    .map(AuditEvent)
                    .collect();
                self.send_seen(items).await;
                if more && !self.ended {
                    self.ready.push_back(Err(AppError::EventsMissed));
                }
            }
            Err(e) => self.fail(e),
        }
    }
}
