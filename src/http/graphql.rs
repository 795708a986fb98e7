//! `/graphql` over POST (queries and mutations, single or batched) and GET (queries only), and GraphiQL.

use crate::graphql::loaders::loaders;
use crate::graphql::{GuestpassSchema, RequestAuth};
use crate::state::AppState;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use async_graphql::http::GraphiQLSource;
use async_graphql::{BatchRequest, BatchResponse};

/// At most this many operations in one batched request.
pub const MAX_BATCH: usize = 10;

pub(super) fn bearer(req: &HttpRequest) -> Option<String> {
    let v = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
}

/// A request-level error in GraphQL's response shape, with a stable code.
fn request_error(status: actix_web::http::StatusCode, code: &str, message: &str) -> HttpResponse {
    HttpResponse::build(status).json(serde_json::json!({
        "errors": [{ "message": message, "extensions": { "code": code } }]
    }))
}

async fn execute(
    schema: &GuestpassSchema,
    state: &AppState,
    req: &HttpRequest,
    batch: BatchRequest,
) -> HttpResponse {
    let client = req.peer_addr().map(|a| a.ip().to_string());
    let auth = RequestAuth::new(bearer(req), client);
    let db = &state.db;
    let response: BatchResponse = match batch {
        BatchRequest::Single(r) => {
            BatchResponse::Single(schema.execute(r.data(auth).data(loaders(db.clone()))).await)
        }
        BatchRequest::Batch(list) => {
            // One auth resolution shared by the batch's operations.
            let mut out = Vec::with_capacity(list.len());
            for r in list {
                out.push(
                    schema
                        .execute(r.data(auth.clone()).data(loaders(db.clone())))
                        .await,
                );
            }
            BatchResponse::Batch(out)
        }
    };
    let mut http = HttpResponse::Ok();
    http.insert_header((header::CACHE_CONTROL, "no-store"));
    http.json(response)
}

pub async fn post(
    schema: web::Data<GuestpassSchema>,
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    use actix_web::http::StatusCode;
    let batch: BatchRequest = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(_) => {
            return request_error(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                "The body must be a GraphQL request in JSON.",
            );
        }
    };
    if let BatchRequest::Batch(list) = &batch
        && (list.is_empty() || list.len() > MAX_BATCH)
    {
        return request_error(
            StatusCode::BAD_REQUEST,
            "BATCH_TOO_LARGE",
            &format!("A batch holds 1 to {MAX_BATCH} operations."),
        );
    }
    execute(&schema, &state, &req, batch).await
}

pub async fn get(
    schema: web::Data<GuestpassSchema>,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> HttpResponse {
    use actix_web::http::StatusCode;
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
    if let Ok(doc) = async_graphql::parser::parse_query(&request.query)
        && doc
            .operations
            .iter()
            .any(|(_, op)| op.node.ty != async_graphql::parser::types::OperationType::Query)
    {
        return request_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
            "Mutations must be sent with POST.",
        );
    }
    execute(&schema, &state, &req, BatchRequest::Single(request)).await
}

pub async fn graphiql() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(
            GraphiQLSource::build()
                .endpoint("/graphql")
                .title("Guestpass GraphiQL")
                .finish(),
        )
}
