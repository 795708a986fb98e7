//! The GraphQL layer: thin resolvers that check who is asking, call the store through `Db`, and map
//! rows to types. Errors become `extensions.code` in one place (`error.rs`).

mod bulk;
mod external;
pub mod ids;
mod lifetimes;
pub mod loaders;
mod mutation;
mod node;
pub mod nulls;
mod people;
mod query;
mod signin;
mod subscription;
mod types;
mod webhooks;

use crate::domain::authorization::{Object, Person, Sight, Viewer, may_see};
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::store::access::{self, Caller};
use async_graphql::connection::{CursorType, OpaqueCursor};
use async_graphql::{Context, MergedObject, Schema};
use serde::{Serialize, de::DeserializeOwned};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use uuid::Uuid;

pub use mutation::accept;
pub use signin::reset_password;
pub use subscription::{LiveRequest, SubscriptionRoot};

/// Every query, from the modules that hold them.
#[derive(MergedObject, Default)]
pub struct QueryRoot(
    query::CoreQuery,
    node::NodeQuery,
    people::PeopleQuery,
    signin::SignInQuery,
    external::ExternalQuery,
    lifetimes::LifetimesQuery,
    bulk::BulkQuery,
    webhooks::WebhooksQuery,
);

/// Every mutation, from the modules that hold them.
#[derive(MergedObject, Default)]
pub struct MutationRoot(
    mutation::CoreMutation,
    people::PeopleMutation,
    signin::SignInMutation,
    external::ExternalMutation,
    lifetimes::LifetimesMutation,
    webhooks::WebhooksMutation,
);

pub type GuestpassSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

/// Limits applied by the engine (aliases, depth and batch sizes are judged by the HTTP layer).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub complexity: usize,
    pub introspection: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            complexity: 2_000,
            introspection: true,
        }
    }
}

impl Limits {
    pub fn from_config(c: &crate::config::Config) -> Self {
        Self {
            complexity: c.graphql_max_complexity,
            introspection: c.graphql_introspection,
        }
    }
}

/// Built once at start-up (outside `HttpServer::new`) and shared by every worker thread.
pub fn build_schema(state: Option<AppState>, limits: Limits) -> GuestpassSchema {
    // The description of a connection type: what its list holds, then how every list pages.
    macro_rules! paged {
        ($what:literal) => {
            concat!(
                $what,
                ". `totalCount` counts the whole list. Lists page forward only: while \
                 `pageInfo.hasNextPage`, ask for the next page with `after: pageInfo.endCursor`."
            )
        };
    }

    // The edge type of a [`types::Page`] of `N`.
    type Edge<N> =
        async_graphql::connection::Edge<String, N, async_graphql::connection::EmptyFields>;
    let mut b = Schema::build(
        QueryRoot::default(),
        MutationRoot::default(),
        SubscriptionRoot,
    )
    // Depth is bounded before execution by the HTTP layer (`http::graphql::Depth`), which judges
    // introspection by its own bound: the engine's limit counts the standard introspection query's
    // `ofType` chain like data and refused it.
    .limit_complexity(limits.complexity)
    // Not returned by any field: published so clients can generate a type for `extensions.code`.
    .register_output_type::<crate::error::ErrorCode>()
    // A failed nullable field answers null in place, as the spec says (see `nulls`).
    .extension(nulls::NullOnError)
    // A subscription's events are resolved with the facts each was checked with (see `subscription`).
    .extension(subscription::EventFacts)
    // What the engine generates or describes generically (each list's connection and edge types,
    // `DateTime`) gets a description of its own, like every other type (`tests/tools/lint-schema.mjs`).
    .override_output_type_description::<chrono::DateTime<chrono::Utc>>(
        "A point in time, as an RFC 3339 timestamp. The server answers in UTC, with a `+00:00` offset \
         and fractional seconds only when there are some (e.g. `2026-12-06T09:30:00+00:00`); what you \
         send may use `Z` or any offset (e.g. `2026-12-06T09:30:00Z`, `2026-12-06T10:30:00+01:00`).",
    )
    .override_output_type_description::<types::Page<types::User>>(paged!(
        "A page of a list of people, in the order the field that answers it gives"
    ))
    .override_output_type_description::<Edge<types::User>>(
        "One person of a list, and the cursor to continue after them.",
    )
    .override_output_type_description::<types::Page<types::SiteUser>>(paged!(
        "A page of a site's people directory, by email"
    ))
    .override_output_type_description::<Edge<types::SiteUser>>(
        "One person of a site's people directory, and the cursor to continue after them.",
    )
    .override_output_type_description::<types::Page<types::Group>>(paged!(
        "A page of the organization's groups, by name"
    ))
    .override_output_type_description::<Edge<types::Group>>(
        "One group of a list, and the cursor to continue after it.",
    )
    .override_output_type_description::<types::Page<bulk::BulkInvite>>(paged!(
        "A page of a site's bulk invites, newest first"
    ))
    .override_output_type_description::<Edge<bulk::BulkInvite>>(
        "One bulk invite of a list, and the cursor to continue after it.",
    )
    .override_output_type_description::<types::Page<external::AffectedPerson>>(paged!(
        "A page of the people a policy change affects, by email"
    ))
    .override_output_type_description::<Edge<external::AffectedPerson>>(
        "One person a policy change affects, and the cursor to continue after them.",
    )
    .override_output_type_description::<types::Page<types::Page_>>(paged!(
        "A page of a space's pages, oldest first"
    ))
    .override_output_type_description::<Edge<types::Page_>>(
        "One page of a space, and the cursor to continue after it.",
    )
    .override_output_type_description::<types::Page<types::Invite>>(paged!(
        "A page of a site's invites, newest first"
    ))
    .override_output_type_description::<Edge<types::Invite>>(
        "One invite of a list, and the cursor to continue after it.",
    )
    .override_output_type_description::<types::Page<types::AuditEvent>>(paged!(
        "A page of the organization's audit trail, newest first"
    ))
    .override_output_type_description::<Edge<types::AuditEvent>>(
        "One audit event of a list, and the cursor to continue after it.",
    )
    .override_output_type_description::<types::Page<bulk::BulkInviteRow>>(paged!(
        "A page of a bulk invite's rows, in the order of the file"
    ))
    .override_output_type_description::<Edge<bulk::BulkInviteRow>>(
        "One row of a bulk invite, and the cursor to continue after it.",
    )
    .override_output_type_description::<types::Page<webhooks::WebhookEndpoint>>(paged!(
        "A page of the organization's webhook endpoints, oldest first"
    ))
    .override_output_type_description::<Edge<webhooks::WebhookEndpoint>>(
        "One webhook endpoint of a list, and the cursor to continue after it.",
    )
    .override_output_type_description::<types::Page<webhooks::WebhookDelivery>>(paged!(
        "A page of an endpoint's webhook deliveries, newest first"
    ))
    .override_output_type_description::<Edge<webhooks::WebhookDelivery>>(
        "One webhook delivery of a list, and the cursor to continue after it.",
    );
    if !limits.introspection {
        b = b.disable_introspection();
    }
    if let Some(state) = state {
        b = b.data(state);
    }
    b.finish()
}

/// The SDL, as `export-schema` prints it and `schema.graphql` holds it.
/// It says what introspection says, so that a client that reads the schema from the server (GraphiQL,
/// Apollo, Relay, code generators) and one that reads this file see the same schema: the scalars'
/// `@specifiedBy`, and the schema's description (which the engine answers to `__schema { description }`
/// but does not print), are added here; `tests/tools/introspect.mjs` compares the two.
pub fn sdl() -> String {
    let schema = build_schema(None, Limits::default());
    let printed =
        schema.sdl_with_options(async_graphql::SDLExportOptions::new().include_specified_by());
    let description = INTROSPECTED_SCHEMA_DESCRIPTION;
    printed.replacen(
        "\nschema {",
        &format!("\n\"\"\"\n{description}\n\"\"\"\nschema {{"),
        1,
    )
}

/// What async-graphql answers to `__schema { description }` (it has no setting for it).
const INTROSPECTED_SCHEMA_DESCRIPTION: &str = "A GraphQL Schema defines the capabilities of a GraphQL server. It exposes all available types and directives on the server, as well as the entry points for query, mutation, and subscription operations.";

/// Per request: the bearer token, resolved to a caller at most once and only when a resolver asks,
/// and the caller's standing on each site it asked about (so a list of fifty users checks once).
/// Cloning shares it (the operations of a batch share one).
#[derive(Clone)]
pub struct RequestAuth(Arc<AuthInner>);

struct AuthInner {
    token: Option<String>,
    /// The client's address (for rate limits), when known.
    client: Option<String>,
    caller: tokio::sync::OnceCell<Option<Caller>>,
    sites: Mutex<HashMap<Uuid, Arc<tokio::sync::OnceCell<access::SiteAccess>>>>,
    viewer: tokio::sync::OnceCell<Arc<Viewer>>,
}

impl RequestAuth {
    pub fn new(token: Option<String>, client: Option<String>) -> Self {
        Self(Arc::new(AuthInner {
            token,
            client,
            caller: tokio::sync::OnceCell::new(),
            sites: Mutex::new(HashMap::new()),
            viewer: tokio::sync::OnceCell::new(),
        }))
    }

    /// A request whose caller and viewer are already known: an event of a live subscription, checked
    /// with these facts and resolved with the same.
    pub(crate) fn resolved(
        token: String,
        client: Option<String>,
        caller: Caller,
        viewer: Arc<Viewer>,
    ) -> Self {
        Self(Arc::new(AuthInner {
            token: Some(token),
            client,
            caller: tokio::sync::OnceCell::new_with(Some(Some(caller))),
            sites: Mutex::new(HashMap::new()),
            viewer: tokio::sync::OnceCell::new_with(Some(viewer)),
        }))
    }
}

pub(crate) fn state<'a>(ctx: &Context<'a>) -> &'a AppState {
    ctx.data_unchecked::<AppState>()
}

/// The client address rate limits are keyed by ("unknown" when the connection did not say).
pub(crate) fn client_address(ctx: &Context<'_>) -> String {
    ctx.data_opt::<RequestAuth>()
        .and_then(|a| a.0.client.clone())
        .unwrap_or_else(|| "unknown".into())
}

pub(crate) fn loaders<'a>(ctx: &Context<'a>) -> AppResult<&'a loaders::Loaders> {
    ctx.data_opt::<loaders::Loaders>()
        .ok_or_else(|| AppError::internal("no data loaders in this request"))
}

/// The caller, if any token resolved to an active account (borrowed: every field of every listed
/// person asks).
async fn optional_caller<'a>(ctx: &Context<'a>) -> AppResult<Option<&'a Caller>> {
    let Some(auth) = ctx.data_opt::<RequestAuth>() else {
        return Ok(None);
    };
    let st = state(ctx);
    auth.0
        .caller
        .get_or_try_init(|| async {
            match &auth.0.token {
                None => Ok(None),
                Some(token) => authenticate(st, token).await,
            }
        })
        .await
        .map(Option::as_ref)
}

/// Whom a bearer token signs in, if anyone: the token cache's answer, or the store's (then cached).
/// Every request and every live connection authenticates through here.
pub(crate) async fn authenticate(st: &AppState, token: &str) -> AppResult<Option<Caller>> {
    let (now, idle) = (st.clock.now(), st.session_idle());
    let hash = crate::auth::tokens::hash_token(token);
    if let Some(hit) = st.auth_cache.get(&hash, now) {
        return Ok(hit);
    }
    let epoch = st.auth_cache.epoch();
    let token = token.to_string();
    let found = st
        .db
        .run(move |c| access::authenticate(c, &token, idle, now))
        .await?;
    st.auth_cache.put(hash, epoch, now, found.clone());
    Ok(found)
}

/// What a signed-in caller may reach past `me`: nothing while the policy blocks their API token
/// (`API_TOKENS_BLOCKED`) or their verification period has ended (`REVERIFICATION_REQUIRED`). The
/// refusals of [`caller`], for a caller found without a request (a live connection).
pub(crate) fn admit(who: &Caller, now: chrono::DateTime<chrono::Utc>) -> AppResult<()> {
    if who.api_token_blocked() {
        return Err(AppError::ApiTokensBlocked);
    }
    if who.must_reverify(now) {
        return Err(AppError::ReverificationRequired);
    }
    Ok(())
}

/// The facts the authorization policy needs about the caller, loaded once per request. Only for a
/// verified caller: someone who must verify again sees nothing through the policy.
pub(crate) async fn viewer(ctx: &Context<'_>) -> AppResult<Arc<Viewer>> {
    let who = caller_verified_ref(ctx).await?;
    let auth = ctx
        .data_opt::<RequestAuth>()
        .ok_or(AppError::Unauthenticated)?;
    let st = state(ctx);
    auth.0
        .viewer
        .get_or_try_init(|| async move {
            let who = who.clone();
            st.db
                .run(move |c| access::viewer(c, &who).map(Arc::new))
                .await
        })
        .await
        .cloned()
}

/// What the caller may see of `object` (the one policy, `domain::authorization`).
pub(crate) async fn sight(ctx: &Context<'_>, object: Object<'_>) -> AppResult<Sight> {
    Ok(may_see(&*viewer(ctx).await?, object))
}

/// `FORBIDDEN` unless the caller may see all of `object`.
pub(crate) async fn require_sight(ctx: &Context<'_>, object: Object<'_>) -> AppResult<()> {
    if sight(ctx, object).await? == Sight::Full {
        Ok(())
    } else {
        Err(AppError::Forbidden)
    }
}

/// A person as the policy sees them (batched per request).
pub(crate) async fn person(ctx: &Context<'_>, id: Uuid) -> AppResult<Person> {
    loaders(ctx)?
        .load_one(loaders::PersonOf(id))
        .await?
        .ok_or(AppError::NotFound("User"))
}

/// The caller's standing on a site, looked up once per request however many fields ask at once
/// (the fields of a list's rows resolve concurrently). For reads only: a mutation re-checks inside
/// its transaction.
pub(crate) async fn site_access(
    ctx: &Context<'_>,
    site_id: Uuid,
) -> AppResult<(Caller, access::SiteAccess)> {
    let who = caller(ctx).await?;
    let auth = ctx
        .data_opt::<RequestAuth>()
        .ok_or(AppError::Unauthenticated)?;
    let cell = auth
        .0
        .sites
        .lock()
        .map_err(|_| AppError::internal("site access cache poisoned"))?
        .entry(site_id)
        .or_default()
        .clone();
    let st = state(ctx);
    let a = cell
        .get_or_try_init(|| async move {
            // The standing comes from the viewer's facts (loaded once per request for the policy);
            // only the site's row is read here.
            let standing = viewer(ctx).await?.on(site_id).clone();
            let org = who.user.organization_id;
            let site = st
                .db
                .run(move |c| access::site_in_org(c, org, site_id))
                .await?;
            Ok::<_, AppError>(access::SiteAccess { site, standing })
        })
        .await?
        .clone();
    Ok((who, a))
}

/// The caller, or `UNAUTHENTICATED`; an external user is refused here while the policy blocks their
/// API token (`API_TOKENS_BLOCKED`) or their verification period has ended (`REVERIFICATION_REQUIRED`).
/// Every resolver goes through this, so "verified" is part of "signed in".
pub(crate) async fn caller(ctx: &Context<'_>) -> AppResult<Caller> {
    caller_verified_ref(ctx).await.cloned()
}

/// [`caller`] without the copy.
async fn caller_verified_ref<'a>(ctx: &Context<'a>) -> AppResult<&'a Caller> {
    let who = caller_to_reverify_ref(ctx).await?;
    if who.must_reverify(state(ctx).clock.now()) {
        return Err(AppError::ReverificationRequired);
    }
    Ok(who)
}

/// The caller even when they must verify again: only `me` and the re-verification operations.
pub(crate) async fn caller_to_reverify(ctx: &Context<'_>) -> AppResult<Caller> {
    caller_to_reverify_ref(ctx).await.cloned()
}

/// [`caller_to_reverify`] without the copy (asked by every identity field of every listed person).
pub(crate) async fn caller_to_reverify_ref<'a>(ctx: &Context<'a>) -> AppResult<&'a Caller> {
    let who = optional_caller(ctx)
        .await?
        .ok_or(AppError::Unauthenticated)?;
    if who.api_token_blocked() {
        return Err(AppError::ApiTokensBlocked);
    }
    Ok(who)
}

/// Ids are opaque; a malformed one, or the global id of another type, is answered exactly like one
/// that does not exist. `what` names the type (`"Site"`, `"Bulk invite"`): a global id of that type
/// or a bare UUID (earlier releases) is taken; ids that name no object (`"Challenge"`, `"Review"`)
/// are bare UUIDs.
pub(crate) fn parse_id(id: &async_graphql::ID, what: &'static str) -> AppResult<Uuid> {
    match ids::Kind::named(what) {
        Some(kind) => ids::uuid_of(id.as_str(), kind),
        None => Uuid::try_parse(id.as_str()).map_err(|_| AppError::NotFound(what)),
    }
}

/// What a page of a list costs against the complexity limit: each item costs its selection, so
/// asking for 100 items with many fields, many times over, is refused before it runs.
pub(crate) fn page_cost(first: Option<i32>, child_complexity: usize) -> usize {
    let n = first.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE) as usize;
    n.saturating_mul(child_complexity.max(1))
}

pub const DEFAULT_PAGE: i32 = 20;
pub const MAX_PAGE: i32 = 100;

/// Validates `first` (1..=MAX_PAGE) and decodes `after`.
pub(crate) fn page<C: Serialize + DeserializeOwned + Send + Sync>(
    first: Option<i32>,
    after: Option<String>,
) -> AppResult<(i64, Option<C>)> {
    let first = first.unwrap_or(DEFAULT_PAGE);
    if !(0..=MAX_PAGE).contains(&first) {
        return Err(AppError::invalid(
            "first",
            format!("must be between 0 and {MAX_PAGE}"),
        ));
    }
    let after = match after {
        None => None,
        Some(s) => Some(
            OpaqueCursor::<C>::decode_cursor(&s)
                .map_err(|_| AppError::invalid("after", "is not a cursor from this list"))?
                .0,
        ),
    };
    Ok((first.into(), after))
}

pub(crate) fn cursor<C: Serialize + DeserializeOwned + Send + Sync>(c: C) -> String {
    OpaqueCursor(c).encode_cursor()
}
