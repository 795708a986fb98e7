//! `/graphql` over POST (queries and mutations, single or batched) and GET (queries only), as the
//! GraphQL-over-HTTP specification has it: the answer's media type is negotiated from `Accept`
//! (`application/json`, or `application/graphql-response+json`, whose status says whether anything
//! ran), a POST body must be declared JSON, and Apollo's automatic persisted queries are resolved
//! here, before any check, so a query sent by its hash alone is judged like one sent in full.
//! Everything a request can abuse is bounded before execution: the body size, the batch size, the
//! aliases and depth per operation (here; introspection by its own bound) and complexity (the
//! schema). Errors the GraphQL engine raises itself get stable codes here too. A GET asking to
//! upgrade to WebSocket is a live connection for subscriptions instead (`ws`), under the same limits.

use crate::graphql::loaders::loaders;
use crate::graphql::nulls::FieldErrors;
use crate::graphql::{GuestpassSchema, RequestAuth};
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use async_graphql::parser::types::{ExecutableDocument, OperationType, Selection, SelectionSet};
use async_graphql::{BatchRequest, Request, Response, ServerError};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

mod ws;

pub(super) fn bearer(req: &HttpRequest) -> Option<String> {
    let v = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
}

/// The client's address: the connection's, or, when the connection comes from a trusted proxy, the
/// nearest address in `X-Forwarded-For` that is not itself a trusted proxy.
pub(super) fn client_address(state: &AppState, req: &HttpRequest) -> Option<String> {
    let peer = req.peer_addr()?.ip();
    let trusted = &state.config.trusted_proxies;
    if !trusted.contains(&peer) {
        return Some(peer.to_string());
    }
    let forwarded = req
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let hop = forwarded
        .split(',')
        .rev()
        .filter_map(|h| h.trim().parse::<std::net::IpAddr>().ok())
        .find(|ip| !trusted.contains(ip));
    Some(hop.unwrap_or(peer).to_string())
}

/// A request-level error in GraphQL's response shape, with a stable code.
pub(super) fn request_error(status: StatusCode, code: &str, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(serde_json::json!({
        "errors": [{ "message": message, "extensions": { "code": code } }]
    }))
}

/// The media types `/graphql` answers in. With `application/json` a GraphQL error is answered 200,
/// as before (the HTTP layer's own refusals keep their codes); with
/// `application/graphql-response+json` the status says whether anything ran: 200 once execution
/// started (`data` present, even null), 4xx for a request nothing of which ran (no `data`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Media {
    Json,
    GraphqlResponse,
}

const GRAPHQL_RESPONSE_JSON: &str = "application/graphql-response+json; charset=utf-8";

impl Media {
    /// The one the request's `Accept` prefers: by quality, then by the more specific range, then by
    /// the range listed first; `application/json` when still tied, so no `Accept`, `*/*` and
    /// `application/*` keep answering JSON. `None` when it accepts neither.
    fn negotiate(req: &HttpRequest) -> Option<Self> {
        let ranges: Vec<&str> = req
            .headers()
            .get_all(header::ACCEPT)
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .collect();
        if ranges.is_empty() {
            return Some(Self::Json);
        }
        let json = Preference::of(&ranges, "json");
        let graphql = Preference::of(&ranges, "graphql-response+json");
        let weight = |p: Option<Preference>| p.map_or(0, |p| p.q);
        if weight(json) == 0 && weight(graphql) == 0 {
            return None;
        }
        let key =
            |p: Option<Preference>| p.map(|p| (p.q, p.specificity, std::cmp::Reverse(p.position)));
        Some(if key(graphql) > key(json) {
            Self::GraphqlResponse
        } else {
            Self::Json
        })
    }
}

/// How `Accept` takes one `application/...` type: from the most specific range that matches it.
#[derive(Clone, Copy)]
struct Preference {
    /// Quality in thousandths (`q=0.5` is 500; 0 is "not acceptable").
    q: u16,
    /// 2 for `application/<subtype>`, 1 for `application/*`, 0 for `*/*`.
    specificity: u8,
    /// The range's place in the header.
    position: usize,
}

impl Preference {
    fn of(ranges: &[&str], subtype: &str) -> Option<Self> {
        let mut best: Option<Self> = None;
        for (position, range) in ranges.iter().enumerate() {
            let mut params = range.split(';');
            let Some((t, s)) = params.next().and_then(|m| m.trim().split_once('/')) else {
                continue;
            };
            let (t, s) = (t.trim(), s.trim());
            let specificity = match (t, s) {
                ("*", "*") => 0,
                (t, "*") if t.eq_ignore_ascii_case("application") => 1,
                (t, s)
                    if t.eq_ignore_ascii_case("application") && s.eq_ignore_ascii_case(subtype) =>
                {
                    2
                }
                _ => continue,
            };
            // The first `q` is the weight (parameters after it are extensions); a malformed one
            // leaves the range out.
            let q = params
                .filter_map(|p| p.split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
                .map_or(Some(1000), |(_, v)| quality(v.trim()));
            let Some(q) = q else { continue };
            if best.is_none_or(|b| specificity > b.specificity) {
                best = Some(Self {
                    q,
                    specificity,
                    position,
                });
            }
        }
        best
    }
}

/// An HTTP weight (`0`, `0.5`, `1.000`; at most three decimals) in thousandths.
fn quality(v: &str) -> Option<u16> {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = (0..3).fold(0u16, |n, i| {
        n * 10 + frac.as_bytes().get(i).map_or(0, |b| u16::from(b - b'0'))
    });
    match int {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// A request nothing of which ran, in the negotiated media type: with `status` in JSON, as before;
/// in `application/graphql-response+json` with a 4xx (400 where JSON clients get 200).
fn refuse(media: Media, status: StatusCode, code: &str, message: &str) -> HttpResponse {
    match media {
        Media::Json => request_error(status, code, message),
        Media::GraphqlResponse => {
            let status = if status.is_success() {
                StatusCode::BAD_REQUEST
            } else {
                status
            };
            let body = serde_json::json!({
                "errors": [{ "message": message, "extensions": { "code": code } }]
            });
            HttpResponse::build(status)
                .content_type(GRAPHQL_RESPONSE_JSON)
                .body(body.to_string())
        }
    }
}

/// 406: the request's `Accept` allows neither JSON media type.
fn not_acceptable() -> HttpResponse {
    request_error(
        StatusCode::NOT_ACCEPTABLE,
        "NOT_ACCEPTABLE",
        "/graphql answers application/graphql-response+json or application/json: accept one of them.",
    )
}

/// 405 with the methods that would do (`Allow`).
fn method_refusal(media: Media, allow: &'static str, message: &str) -> HttpResponse {
    let mut res = refuse(
        media,
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        message,
    );
    res.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    res
}

/// A subscription sent as a request: it runs over a WebSocket (`ws`), where its events can follow.
fn subscription_refusal(media: Media) -> HttpResponse {
    refuse(
        media,
        StatusCode::BAD_REQUEST,
        "BAD_REQUEST",
        "Subscriptions run over a WebSocket at /graphql (graphql-transport-ws): see the README's \"Subscriptions\".",
    )
}

/// What `/graphql` answers to the methods it does not serve (PUT, DELETE, PATCH...).
pub async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    method_refusal(
        Media::negotiate(&req).unwrap_or(Media::Json),
        "GET, HEAD, POST",
        "/graphql answers GET (queries), HEAD and POST.",
    )
}

/// Whether a POST declares its body JSON: `application/json`, with `charset=utf-8` at most. Anything
/// else (none, `text/plain`, a form) is refused, which also keeps cross-site forms and other
/// requests a browser sends without a preflight away from mutations.
fn declares_json(req: &HttpRequest) -> bool {
    let Some(v) = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mut parts = v.split(';');
    let essence = parts.next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
        && parts.map(str::trim).filter(|p| !p.is_empty()).all(|p| {
            p.split_once('=').is_some_and(|(k, v)| {
                k.trim().eq_ignore_ascii_case("charset")
                    && v.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
            })
        })
}

/// Automatic persisted queries (Apollo's protocol): a client sends a query's SHA-256 alone
/// (`extensions.persistedQuery`), and the query with it only when told `PersistedQueryNotFound`.
/// Kept per process (each replica learns them on its own), at most [`PERSISTED_MAX_QUERIES`] and
/// [`PERSISTED_MAX_BYTES`], the least recently used leaving first.
pub(super) struct PersistedQueries(Mutex<Lru>);

const PERSISTED_MAX_QUERIES: usize = 1_000;
const PERSISTED_MAX_BYTES: usize = 16 * 1024 * 1024;

#[derive(Default)]
struct Lru {
    /// Query text and when it was last used, by lowercase hex SHA-256.
    queries: HashMap<String, (Arc<str>, u64)>,
    clock: u64,
    bytes: usize,
}

impl PersistedQueries {
    pub(super) fn new() -> Self {
        Self(Mutex::new(Lru::default()))
    }

    fn get(&self, hash: &str) -> Option<Arc<str>> {
        let mut guard = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let lru = &mut *guard;
        lru.clock += 1;
        let (query, used) = lru.queries.get_mut(hash)?;
        *used = lru.clock;
        Some(query.clone())
    }

    fn put(&self, hash: String, query: &str) {
        if query.len() > PERSISTED_MAX_BYTES {
            return;
        }
        let mut guard = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let lru = &mut *guard;
        lru.clock += 1;
        if let Some((_, used)) = lru.queries.get_mut(&hash) {
            *used = lru.clock;
            return;
        }
        lru.bytes += query.len();
        lru.queries.insert(hash, (query.into(), lru.clock));
        while lru.queries.len() > PERSISTED_MAX_QUERIES || lru.bytes > PERSISTED_MAX_BYTES {
            let Some(oldest) = lru
                .queries
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some((q, _)) = lru.queries.remove(&oldest) {
                lru.bytes -= q.len();
            }
        }
    }
}

/// What a request's `persistedQuery` extension comes to.
enum Persisted {
    /// Run `query`; when it came with its hash, remember it by that hash once it passed the limits.
    Run(Option<String>),
    /// A hash alone that this process does not know: the client sends the query next.
    NotFound,
}

/// Resolves the request's persisted query: a known hash alone becomes its query (so everything
/// below judges the query that will run); a query with its hash must match it. `Err`: the message
/// of a malformed extension.
fn persisted(store: &PersistedQueries, r: &mut Request) -> Result<Persisted, &'static str> {
    let Some(ext) = r.extensions.0.remove("persistedQuery") else {
        return Ok(Persisted::Run(None));
    };
    let ext = serde_json::to_value(ext).unwrap_or_default();
    let version = ext.get("version").and_then(serde_json::Value::as_i64);
    let hash = ext.get("sha256Hash").and_then(serde_json::Value::as_str);
    let (Some(1), Some(hash)) = (version, hash) else {
        return Err(
            "The persistedQuery extension must be { \"version\": 1, \"sha256Hash\": \"<hex>\" }.",
        );
    };
    let hash = hash.to_ascii_lowercase();
    if r.query.is_empty() {
        return Ok(match store.get(&hash) {
            Some(query) => {
                r.query = query.to_string();
                Persisted::Run(None)
            }
            None => Persisted::NotFound,
        });
    }
    if hex::encode(Sha256::digest(r.query.as_bytes())) != hash {
        return Err("provided sha does not match query");
    }
    Ok(Persisted::Run(Some(hash)))
}

/// The answer to an unknown hash, in the message and code Apollo's clients look for.
fn persisted_query_not_found() -> Response {
    let mut e = ServerError::new("PersistedQueryNotFound", None);
    e.extensions
        .get_or_insert_with(Default::default)
        .set("code", "PERSISTED_QUERY_NOT_FOUND");
    Response::from_errors(vec![e])
}

/// What the HTTP layer needs to know about an operation before running it, from one parse.
struct Shape {
    /// The document's operations, by name (`None`: the anonymous one), when it parsed.
    operations: Vec<(Option<String>, OperationType)>,
    /// Did not parse (the engine reports it with its position); treated as a change, to be safe.
    unparsed: bool,
    aliases: usize,
    depth: Depth,
}

impl Shape {
    fn of(query: &str) -> Self {
        match async_graphql::parser::parse_query(query) {
            Ok(doc) => Self {
                operations: doc
                    .operations
                    .iter()
                    .map(|(name, op)| (name.map(|n| n.to_string()), op.node.ty))
                    .collect(),
                unparsed: false,
                aliases: count_aliases(&doc),
                depth: Depth::of(&doc),
            },
            Err(_) => Self {
                operations: Vec::new(),
                unparsed: true,
                aliases: 0,
                depth: Depth::default(),
            },
        }
    }

    /// The type of the operation the engine would run for `name`, if one would run: the one so
    /// named, or with no name the document's only operation.
    fn selected(&self, name: Option<&str>) -> Option<OperationType> {
        match name {
            Some(name) => self
                .operations
                .iter()
                .find(|(n, _)| n.as_deref() == Some(name))
                .map(|(_, ty)| *ty),
            None => match self.operations.as_slice() {
                [(_, ty)] => Some(*ty),
                _ => None,
            },
        }
    }

    /// Whether running it may change who can do what: any operation of the document that is not a
    /// query, whichever runs (conservative: it decides whether loaders keep what they load).
    fn may_change(&self) -> bool {
        self.unparsed
            || self
                .operations
                .iter()
                .any(|(_, ty)| *ty != OperationType::Query)
    }
}

/// Aliased fields in a document, fragments included (each alias is one more resolver call).
fn count_aliases(doc: &ExecutableDocument) -> usize {
    fn walk(set: &SelectionSet) -> usize {
        set.items
            .iter()
            .map(|s| match &s.node {
                Selection::Field(f) => {
                    usize::from(f.node.alias.is_some()) + walk(&f.node.selection_set.node)
                }
                Selection::InlineFragment(f) => walk(&f.node.selection_set.node),
                Selection::FragmentSpread(_) => 0,
            })
            .sum()
    }
    doc.operations
        .iter()
        .map(|(_, op)| walk(&op.node.selection_set.node))
        .chain(
            doc.fragments
                .values()
                .map(|f| walk(&f.node.selection_set.node)),
        )
        .sum()
}

/// How deep an operation reaches, its data and its introspection counted apart: the standard
/// introspection query of graphql-js (which GraphiQL, Apollo, Relay and code generators send) nests
/// `ofType` seven levels inside a type's fields, deeper than any data query needs, but it reads the
/// schema, whose size is fixed. Introspection is bounded by its own rules: a depth of
/// [`INTROSPECTION_MAX_DEPTH`] and at most one way back from a type to its members on any path (a type's
/// `fields`, then that field's type's `fields` again, is how a hostile query multiplies the schema).
#[derive(Clone, Copy, Debug, Default)]
struct Depth {
    /// Deepest data field (introspection subtrees left out).
    data: usize,
    /// Deepest field inside `__schema` or `__type`.
    introspection: usize,
    /// Most type-member lists (`fields`, `inputFields`, `interfaces`, `possibleTypes`,
    /// `enumValues`) nested on one introspection path.
    member_lists: usize,
    /// Fields visited with fragments expanded; the walk stops at [`MAX_EXPANDED_FIELDS`] (fragments
    /// that spread each other several times would otherwise make it exponential).
    expanded: usize,
}

/// More fields than any real operation expands to (graphql-js's full introspection query: a few
/// hundred), few enough to walk in well under a millisecond.
const MAX_EXPANDED_FIELDS: usize = 10_000;

/// Deep enough for graphql-js's `getIntrospectionQuery` with every option (13 levels with its
/// seven-level `TypeRef`), and for clients that unroll `ofType` a few levels further.
const INTROSPECTION_MAX_DEPTH: usize = 20;

impl Depth {
    fn of(doc: &ExecutableDocument) -> Self {
        let mut out = Self::default();
        let mut visiting = Vec::new();
        for (_, op) in doc.operations.iter() {
            out.walk(
                doc,
                &op.node.selection_set.node,
                Place::Data(0),
                &mut visiting,
            );
        }
        out
    }

    fn walk<'a>(
        &mut self,
        doc: &'a ExecutableDocument,
        set: &'a SelectionSet,
        at: Place,
        visiting: &mut Vec<&'a str>,
    ) {
        for item in &set.items {
            if self.expanded > MAX_EXPANDED_FIELDS {
                return;
            }
            match &item.node {
                Selection::Field(f) => {
                    self.expanded += 1;
                    let name = f.node.name.node.as_str();
                    let next = match at {
                        Place::Data(_) if name == "__schema" || name == "__type" => {
                            Place::Introspection(1, 0)
                        }
                        Place::Data(d) => Place::Data(d + 1),
                        Place::Introspection(d, lists) => {
                            let member = matches!(
                                name,
                                "fields"
                                    | "inputFields"
                                    | "interfaces"
                                    | "possibleTypes"
                                    | "enumValues"
                            );
                            Place::Introspection(d + 1, lists + usize::from(member))
                        }
                    };
                    match next {
                        Place::Data(d) => self.data = self.data.max(d),
                        Place::Introspection(d, lists) => {
                            self.introspection = self.introspection.max(d);
                            self.member_lists = self.member_lists.max(lists);
                        }
                    }
                    self.walk(doc, &f.node.selection_set.node, next, visiting);
                }
                Selection::InlineFragment(f) => {
                    self.walk(doc, &f.node.selection_set.node, at, visiting);
                }
                Selection::FragmentSpread(s) => {
                    let name = s.node.fragment_name.node.as_str();
                    // A cycle is left to validation, which refuses it with its own message.
                    if visiting.contains(&name) {
                        continue;
                    }
                    if let Some(f) = doc.fragments.get(&s.node.fragment_name.node) {
                        visiting.push(name);
                        self.walk(doc, &f.node.selection_set.node, at, visiting);
                        visiting.pop();
                    }
                }
            }
        }
    }
}

/// Where a field sits: in data at a depth, or in introspection at a depth with the member lists above it.
#[derive(Clone, Copy)]
enum Place {
    Data(usize),
    Introspection(usize, usize),
}

/// Why an operation is refused before it runs, if it is: too many aliases, nested too deep, or
/// expanding to too many fields. The status JSON clients get, the code and the message; the same
/// limits hold over HTTP and over WebSocket.
type Refusal = (StatusCode, &'static str, String);

fn limits_refusal(state: &AppState, shape: &Shape) -> Option<Refusal> {
    alias_refusal(state, shape).or_else(|| depth_refusal(state, shape))
}

/// The refusal of an operation nested deeper than allowed (data, or introspection by its own bound),
/// or one whose fragments expand past what the walk measures.
fn depth_refusal(state: &AppState, shape: &Shape) -> Option<Refusal> {
    let max = state.config.graphql_max_depth;
    let d = shape.depth;
    if d.expanded > MAX_EXPANDED_FIELDS {
        return Some((
            StatusCode::OK,
            "QUERY_TOO_COMPLEX",
            format!(
                "The operation expands to more than {MAX_EXPANDED_FIELDS} fields once its fragments are spread."
            ),
        ));
    }
    let message = if d.data > max {
        format!("Query is nested too deep: at most {max} levels of fields.")
    } else if d.introspection > INTROSPECTION_MAX_DEPTH || d.member_lists > 1 {
        format!(
            "Introspection is nested too deep: at most {INTROSPECTION_MAX_DEPTH} levels, and a type's members may not be followed to another type's members."
        )
    } else {
        return None;
    };
    // 200 in JSON, as the engine answered it before: a well-formed request refused by a limit.
    Some((StatusCode::OK, "QUERY_TOO_DEEP", message))
}

/// The refusal of an operation with more aliases than allowed.
fn alias_refusal(state: &AppState, shape: &Shape) -> Option<Refusal> {
    let max = state.config.graphql_max_aliases;
    (shape.aliases > max).then(|| {
        (
            StatusCode::BAD_REQUEST,
            "TOO_MANY_ALIASES",
            format!("An operation may use at most {max} aliases."),
        )
    })
}

/// Gives the engine's own errors (syntax, validation, limits) stable codes.
fn classify(response: &mut Response) {
    for e in &mut response.errors {
        let has_code = e
            .extensions
            .as_ref()
            .is_some_and(|x| x.get("code").is_some());
        if has_code {
            continue;
        }
        let m = e.message.to_lowercase();
        let code = if m.contains("nested too deep") {
            "QUERY_TOO_DEEP"
        } else if m.contains("too complex") {
            "QUERY_TOO_COMPLEX"
        } else if m.contains("expected") && e.locations.len() <= 1 && m.contains("-->") {
            "GRAPHQL_PARSE_FAILED"
        } else if m.contains("introspection") {
            "FORBIDDEN"
        } else {
            "GRAPHQL_VALIDATION_FAILED"
        };
        e.extensions
            .get_or_insert_with(Default::default)
            .set("code", code);
    }
}

/// An operation of the request: to run, or already answered (an unknown persisted query's hash).
enum Op {
    Run(Request),
    Answered(Response),
}

/// Runs the operations; `changes`: one of them may change access (cached token answers are dropped).
async fn execute(
    schema: &GuestpassSchema,
    state: &AppState,
    req: &HttpRequest,
    media: Media,
    ops: Vec<Op>,
    batch: bool,
    changes: bool,
) -> HttpResponse {
    // One auth resolution shared by the batch's operations.
    let auth = RequestAuth::new(bearer(req), client_address(state, req));
    let db = &state.db;
    // Loaders keep what they load only when nothing in the request can change it (see `loaders`).
    let run = |r: Request| {
        let nulled = FieldErrors::default();
        let run = schema.execute(
            r.data(auth.clone())
                .data(loaders(db.clone(), !changes))
                .data(nulled.clone()),
        );
        async move {
            let mut resp = run.await;
            // The errors of the fields answered null in place (`graphql::nulls`).
            resp.errors.extend(nulled.take());
            resp
        }
    };
    let mut responses = Vec::with_capacity(ops.len());
    for op in ops {
        let mut resp = match op {
            Op::Run(r) => run(r).await,
            Op::Answered(r) => r,
        };
        classify(&mut resp);
        responses.push(resp);
    }
    if changes {
        // Whatever it changed, no cached answer about tokens survives it.
        state.auth_cache.invalidate();
    }
    respond(media, responses, batch)
}

/// Whether execution started: `data` is there, or, when it is null (a non-null root field failed:
/// async-graphql leaves it out and answers null when no root field is left), an error has a field's
/// path; a request error (syntax, validation, unknown operation) has neither.
fn executed(r: &Response) -> bool {
    r.data != async_graphql::Value::Null
        || r.errors.is_empty()
        || r.errors.iter().any(|e| !e.path.is_empty())
}

/// The answer, in the negotiated media type; a batch is answered as a list.
fn respond(media: Media, responses: Vec<Response>, batch: bool) -> HttpResponse {
    let mut http = HttpResponse::Ok();
    http.insert_header((header::CACHE_CONTROL, "no-store"));
    if media == Media::Json {
        return match responses.as_slice() {
            [single] if !batch => http.json(single),
            list => http.json(list),
        };
    }
    // 200 once anything ran (in a batch: any of its operations), else 400; a request error has no
    // `data`.
    let bodies: Vec<serde_json::Value> = responses
        .iter()
        .map(|r| {
            let mut v = serde_json::to_value(r).unwrap_or_default();
            if !executed(r)
                && let Some(o) = v.as_object_mut()
            {
                o.remove("data");
            }
            v
        })
        .collect();
    if !responses.iter().any(executed) {
        http.status(StatusCode::BAD_REQUEST);
    }
    let body = match bodies.as_slice() {
        [single] if !batch => single.to_string(),
        list => serde_json::Value::from(list).to_string(),
    };
    http.content_type(GRAPHQL_RESPONSE_JSON).body(body)
}

/// Why a body was not read: the status, code and message of the refusal.
type BodyError = (StatusCode, &'static str, String);

async fn read(mut payload: web::Payload, max: usize) -> Result<web::Bytes, BodyError> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| {
            (
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                "The request body could not be read.".to_string(),
            )
        })?;
        if body.len() + chunk.len() > max {
            return Err((
                StatusCode::PAYLOAD_TOO_LARGE,
                "PAYLOAD_TOO_LARGE",
                format!("The request body may be at most {max} bytes."),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Reads the body up to `max` bytes; larger bodies are refused without being read further.
pub(super) async fn read_body(
    payload: web::Payload,
    max: usize,
) -> Result<web::Bytes, HttpResponse> {
    read(payload, max)
        .await
        .map_err(|(status, code, message)| request_error(status, code, &message))
}

pub async fn post(
    schema: web::Data<GuestpassSchema>,
    state: web::Data<AppState>,
    store: web::Data<PersistedQueries>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let Some(media) = Media::negotiate(&req) else {
        return not_acceptable();
    };
    if !declares_json(&req) {
        return refuse(
            media,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            "The body must be sent as Content-Type: application/json.",
        );
    }
    let body = match read(payload, state.config.max_body_bytes).await {
        Ok(b) => b,
        Err((status, code, message)) => return refuse(media, status, code, &message),
    };
    let bad = || {
        refuse(
            media,
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "The body must be a GraphQL request in JSON.",
        )
    };
    let max = state.config.graphql_max_batch;
    let batch = match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(serde_json::Value::Array(list)) => {
            if list.is_empty() || list.len() > max {
                return refuse(
                    media,
                    StatusCode::BAD_REQUEST,
                    "BATCH_TOO_LARGE",
                    &format!("A batch holds 1 to {max} operations."),
                );
            }
            match serde_json::from_value::<Vec<Request>>(serde_json::Value::Array(list)) {
                Ok(list) => BatchRequest::Batch(list),
                Err(_) => return bad(),
            }
        }
        Ok(v @ serde_json::Value::Object(_)) => match serde_json::from_value::<Request>(v) {
            Ok(r) => BatchRequest::Single(r),
            Err(_) => return bad(),
        },
        _ => return bad(),
    };
    let (requests, is_batch) = match batch {
        BatchRequest::Single(r) => (vec![r], false),
        BatchRequest::Batch(list) => (list, true),
    };
    // Each operation to run, its shape, and the hash to remember its query by.
    let mut ops = Vec::with_capacity(requests.len());
    let mut shapes = Vec::new();
    let mut learned = Vec::new();
    for mut r in requests {
        match persisted(&store, &mut r) {
            Err(message) => return refuse(media, StatusCode::BAD_REQUEST, "BAD_REQUEST", message),
            Ok(Persisted::NotFound) => ops.push(Op::Answered(persisted_query_not_found())),
            Ok(Persisted::Run(hash)) => {
                let shape = Shape::of(&r.query);
                if shape.selected(r.operation_name.as_deref()) == Some(OperationType::Subscription)
                {
                    return subscription_refusal(media);
                }
                if let Some(hash) = hash.filter(|_| !shape.unparsed) {
                    learned.push((hash, r.query.clone()));
                }
                shapes.push(shape);
                ops.push(Op::Run(r));
            }
        }
    }
    if let Some((status, code, message)) = shapes.iter().find_map(|s| limits_refusal(&state, s)) {
        return refuse(media, status, code, &message);
    }
    for (hash, query) in learned {
        store.put(hash, &query);
    }
    let changes = shapes.iter().any(Shape::may_change);
    execute(&schema, &state, &req, media, ops, is_batch, changes).await
}

pub async fn get(
    schema: web::Data<GuestpassSchema>,
    state: web::Data<AppState>,
    store: web::Data<PersistedQueries>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    if ws::is_upgrade(&req) {
        return ws::connect(&schema, &state, &req, payload);
    }
    let Some(media) = Media::negotiate(&req) else {
        return not_acceptable();
    };
    let query_string = req.query_string();
    let mut request = match async_graphql::http::parse_query_string(query_string) {
        Ok(r) => r,
        Err(_) => {
            return refuse(
                media,
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                "Malformed GraphQL query string.",
            );
        }
    };
    // async-graphql 7.2 reads `operation_name` from the query string; the parameter is `operationName`.
    if let Some((_, name)) = url::form_urlencoded::parse(query_string.as_bytes())
        .find(|(k, v)| k == "operationName" && !v.is_empty())
    {
        request.operation_name = Some(name.into_owned());
    }
    let hash = match persisted(&store, &mut request) {
        Err(message) => return refuse(media, StatusCode::BAD_REQUEST, "BAD_REQUEST", message),
        Ok(Persisted::NotFound) => {
            return respond(media, vec![persisted_query_not_found()], false);
        }
        Ok(Persisted::Run(hash)) => hash,
    };
    // GET must never change anything (links and prefetches would): the operation that would run
    // decides, so a document may hold a mutation beside the query it selects.
    let shape = Shape::of(&request.query);
    let selected = shape.selected(request.operation_name.as_deref());
    if selected == Some(OperationType::Mutation) {
        return method_refusal(media, "POST", "Mutations must be sent with POST.");
    }
    if selected == Some(OperationType::Subscription) {
        return subscription_refusal(media);
    }
    if let Some((status, code, message)) = limits_refusal(&state, &shape) {
        return refuse(media, status, code, &message);
    }
    if let Some(hash) = hash.filter(|_| !shape.unparsed) {
        store.put(hash, &request.query);
    }
    // Only the selected operation runs, and it is not a mutation (nothing runs when none is selected).
    let changes = shape.unparsed || selected.is_some_and(|ty| ty != OperationType::Query);
    execute(
        &schema,
        &state,
        &req,
        media,
        vec![Op::Run(request)],
        false,
        changes,
    )
    .await
}
