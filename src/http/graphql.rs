//! `/graphql` over POST (queries and mutations, single or batched) and GET (queries only).
//! Everything a request can abuse is bounded before execution: the body size, the batch size, the
//! aliases and depth per operation (here; introspection by its own bound) and complexity (the
//! schema). Errors the GraphQL engine raises itself get stable codes here too.

use crate::graphql::loaders::loaders;
use crate::graphql::{GuestpassSchema, RequestAuth};
use crate::state::AppState;
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{BatchRequest, BatchResponse, Request, Response};
use futures_util::StreamExt;

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

/// What the HTTP layer needs to know about an operation before running it, from one parse.
struct Shape {
    /// Parsed, and holds a mutation.
    mutation: bool,
    /// Did not parse (the engine reports it with its position); treated as a change, to be safe.
    unparsed: bool,
    aliases: usize,
    depth: Depth,
}

impl Shape {
    fn of(query: &str) -> Self {
        match async_graphql::parser::parse_query(query) {
            Ok(doc) => Self {
                mutation: doc.operations.iter().any(|(_, op)| {
                    op.node.ty != async_graphql::parser::types::OperationType::Query
                }),
                unparsed: false,
                aliases: count_aliases(&doc),
                depth: Depth::of(&doc),
            },
            Err(_) => Self {
                mutation: false,
                unparsed: true,
                aliases: 0,
                depth: Depth::default(),
            },
        }
    }

    /// Whether running it may change who can do what.
    fn may_change(&self) -> bool {
        self.mutation || self.unparsed
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

/// The refusal of an operation nested deeper than allowed (data, or introspection by its own bound),
/// or one whose fragments expand past what the walk measures.
fn depth_refusal(state: &AppState, shape: &Shape) -> Option<HttpResponse> {
    let max = state.config.graphql_max_depth;
    let d = shape.depth;
    if d.expanded > MAX_EXPANDED_FIELDS {
        return Some(request_error(
            StatusCode::OK,
            "QUERY_TOO_COMPLEX",
            &format!(
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
    // 200, as the engine answered it before: a well-formed request refused by a limit.
    Some(request_error(StatusCode::OK, "QUERY_TOO_DEEP", &message))
}

/// The refusal of an operation with more aliases than allowed.
fn alias_refusal(state: &AppState, shape: &Shape) -> Option<HttpResponse> {
    let max = state.config.graphql_max_aliases;
    (shape.aliases > max).then(|| {
        request_error(
            StatusCode::BAD_REQUEST,
            "TOO_MANY_ALIASES",
            &format!("An operation may use at most {max} aliases."),
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

/// Runs the operations; `changes`: one of them may change access (cached token answers are dropped).
async fn execute(
    schema: &GuestpassSchema,
    state: &AppState,
    req: &HttpRequest,
    batch: BatchRequest,
    changes: bool,
) -> HttpResponse {
    let auth = RequestAuth::new(bearer(req), client_address(state, req));
    let db = &state.db;
    // Loaders keep what they load only when nothing in the request can change it (see `loaders`).
    let run = |r: Request| schema.execute(r.data(auth.clone()).data(loaders(db.clone(), !changes)));
    let response: BatchResponse = match batch {
        BatchRequest::Single(r) => {
            let mut resp = run(r).await;
            classify(&mut resp);
            BatchResponse::Single(resp)
        }
        BatchRequest::Batch(list) => {
            // One auth resolution shared by the batch's operations.
            let mut out = Vec::with_capacity(list.len());
            for r in list {
                let mut resp = run(r).await;
                classify(&mut resp);
                out.push(resp);
            }
            BatchResponse::Batch(out)
        }
    };
    if changes {
        // Whatever it changed, no cached answer about tokens survives it.
        state.auth_cache.invalidate();
    }
    let mut http = HttpResponse::Ok();
    http.insert_header((header::CACHE_CONTROL, "no-store"));
    http.json(response)
}

/// Reads the body up to `max` bytes; larger bodies are refused without being read further.
pub(super) async fn read_body(
    mut payload: web::Payload,
    max: usize,
) -> Result<web::Bytes, HttpResponse> {
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| {
            request_error(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                "The request body could not be read.",
            )
        })?;
        if body.len() + chunk.len() > max {
            return Err(request_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "PAYLOAD_TOO_LARGE",
                &format!("The request body may be at most {max} bytes."),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

pub async fn post(
    schema: web::Data<GuestpassSchema>,
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let body = match read_body(payload, state.config.max_body_bytes).await {
        Ok(b) => b,
        Err(res) => return res,
    };
    let bad = || {
        request_error(
            StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "The body must be a GraphQL request in JSON.",
        )
    };
    let max = state.config.graphql_max_batch;
    let batch = match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(serde_json::Value::Array(list)) => {
            if list.is_empty() || list.len() > max {
                return request_error(
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
    let shapes: Vec<Shape> = match &batch {
        BatchRequest::Single(r) => vec![Shape::of(&r.query)],
        BatchRequest::Batch(list) => list.iter().map(|r| Shape::of(&r.query)).collect(),
    };
    if let Some(res) = shapes
        .iter()
        .find_map(|s| alias_refusal(&state, s).or_else(|| depth_refusal(&state, s)))
    {
        return res;
    }
    let changes = shapes.iter().any(Shape::may_change);
    execute(&schema, &state, &req, batch, changes).await
}

pub async fn get(
    schema: web::Data<GuestpassSchema>,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> HttpResponse {
    let request = match async_graphql::http::parse_query_string(req.query_string()) {
        Ok(r) => r,
        Err(_) => {
            return request_error(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                "Malformed GraphQL query string.",
            );
        }
    };
    // GET must never change anything (links and prefetches would): mutations need POST.
    let shape = Shape::of(&request.query);
    if shape.mutation {
        return request_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
            "Mutations must be sent with POST.",
        );
    }
    if let Some(res) = alias_refusal(&state, &shape).or_else(|| depth_refusal(&state, &shape)) {
        return res;
    }
    let changes = shape.may_change();
    execute(
        &schema,
        &state,
        &req,
        BatchRequest::Single(request),
        changes,
    )
    .await
}
