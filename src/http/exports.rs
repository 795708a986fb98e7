//! CSV for admins (`Authorization: Bearer <token>`): exports streamed page by page so memory stays
//! bounded whatever the organization's size, cells escaped against spreadsheet formula injection; and
//! the bulk invite upload, checked whole before a background job invites its rows.

use crate::domain::status::BulkRowStatus;
use crate::domain::text::spreadsheet_safe;
use crate::error::AppError;
use crate::state::AppState;
use crate::store::access::{self, Caller};
use crate::store::{bulk, external, guests};
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};

const PAGE: i64 = 2000;

/// An error in the same shape as GraphQL's, with its stable code.
fn error(e: &AppError) -> HttpResponse {
    let status = match e {
        AppError::Unauthenticated => StatusCode::UNAUTHORIZED,
        AppError::Forbidden | AppError::ApiTokensBlocked | AppError::ReverificationRequired => {
            StatusCode::FORBIDDEN
        }
        AppError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        AppError::NotFound(_) => StatusCode::NOT_FOUND,
        AppError::InvalidInput { .. } => StatusCode::BAD_REQUEST,
        AppError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    if let AppError::Internal(detail) = e {
        tracing::error!(detail = %detail, "export failed");
    }
    HttpResponse::build(status).json(serde_json::json!({
        "errors": [{ "message": e.to_string(), "extensions": { "code": e.code().as_str() } }]
    }))
}

/// The person behind the request's bearer token, held to the same rules as a GraphQL call.
async fn authenticated(state: &AppState, req: &HttpRequest) -> Result<Caller, AppError> {
    let token = super::graphql::bearer(req).ok_or(AppError::Unauthenticated)?;
    let (idle, now) = (state.session_idle(), state.clock.now());
    let who = state
        .db
        .run(move |c| access::authenticate(c, &token, idle, now))
        .await?
        .ok_or(AppError::Unauthenticated)?;
    if who.api_token_blocked() {
        return Err(AppError::ApiTokensBlocked);
    }
    if who.must_reverify(now) {
        return Err(AppError::ReverificationRequired);
    }
    Ok(who)
}

/// The organization admin behind the request's bearer token.
async fn org_admin(state: &AppState, req: &HttpRequest) -> Result<Caller, AppError> {
    let who = authenticated(state, req).await?;
    if !who.org_admin {
        return Err(AppError::Forbidden);
    }
    Ok(who)
}

/// The `siteId` query parameter.
fn site_param(req: &HttpRequest) -> Result<uuid::Uuid, AppError> {
    #[derive(serde::Deserialize)]
    struct Q {
        #[serde(rename = "siteId")]
        site_id: Option<String>,
    }
    let q = web::Query::<Q>::from_query(req.query_string())
        .map_err(|_| AppError::invalid("siteId", "give the site as `?siteId=`"))?;
    let raw = q
        .site_id
        .clone()
        .ok_or_else(|| AppError::invalid("siteId", "give the site as `?siteId=`"))?;
    uuid::Uuid::try_parse(&raw).map_err(|_| AppError::NotFound("Site"))
}

/// Largest bulk invite file: 5,000 rows with long personal messages fit.
pub const MAX_CSV_BYTES: usize = 8 * 1024 * 1024;

fn time(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// Streams a CSV: `header`, then pages from `fetch` (given the last row's key) until one comes back
/// short. Every cell goes through [`spreadsheet_safe`]. A failure mid-way ends the body with an error,
/// so the client sees a broken download rather than a silently short file.
fn stream_csv<R, F, Fut>(
    filename: &str,
    header: &'static [&'static str],
    mut fetch: F,
    cells: impl Fn(&R) -> Vec<String> + Send + 'static,
    key: impl Fn(&R) -> (String, uuid::Uuid) + Send + 'static,
) -> HttpResponse
where
    R: Send + 'static,
    F: FnMut(Option<(String, uuid::Uuid)>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<Vec<R>, AppError>> + Send,
{
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<web::Bytes, std::io::Error>>(2);
    tokio::spawn(async move {
        let mut after = None;
        let mut first = true;
        loop {
            let rows = match fetch(after.clone()).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = ?e, "export stopped");
                    let _ = tx.send(Err(std::io::Error::other("export failed"))).await;
                    return;
                }
            };
            let mut w = csv::Writer::from_writer(Vec::new());
            if first {
                let _ = w.write_record(header);
                first = false;
            }
            for r in &rows {
                let _ = w.write_record(cells(r).iter().map(|c| spreadsheet_safe(c).into_owned()));
            }
            let chunk = w.into_inner().unwrap_or_default();
            if tx.send(Ok(web::Bytes::from(chunk))).await.is_err() {
                return; // the client went away
            }
            match rows.last() {
                Some(last) if rows.len() as i64 == PAGE => after = Some(key(last)),
                _ => return,
            }
        }
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{filename}\""),
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .streaming(body)
}

/// `GET /admin/external-users.csv`: every external user of the caller's organization.
pub async fn external_users(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let who = match org_admin(&state, &req).await {
        Ok(w) => w,
        Err(e) => return error(&e),
    };
    let org = who.user.organization_id;
    let policy = who.policy;
    let st = state.get_ref().clone();
    stream_csv(
        "external-users.csv",
        &[
            "email",
            "name",
            "site roles",
            "space",
            "last active",
            "verified until",
            "two-step",
        ],
        move |after| {
            let st = st.clone();
            async move {
                st.db
                    .run(move |c| external::export_page(c, org, after, PAGE))
                    .await
            }
        },
        move |r: &external::ExportRow| {
            let until = crate::domain::policy::verified_until(r.verified_at, r.created_at, &policy);
            // The export's own words, not `TwoStep`'s stored ones.
            let two_step = if r.authenticator {
                "AUTHENTICATOR"
            } else if crate::domain::policy::two_step_applies(r.two_step_required, true, &policy) {
                "EMAIL_CODE"
            } else {
                "OFF" // not a column value
            };
            vec![
                r.email.clone(),
                r.display_name.clone(),
                r.roles.clone(),
                r.spaces.clone(),
                time(r.last_active_at),
                time(Some(until)),
                two_step.to_string(),
            ]
        },
        |r| (r.email_normalized.clone(), r.id),
    )
}

/// `GET /admin/guests.csv?siteId=`: the site's guests and open guest invites, for its admins.
pub async fn guests(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let site = match site_param(&req) {
        Ok(s) => s,
        Err(e) => return error(&e),
    };
    let who = match authenticated(&state, &req).await {
        Ok(w) => w,
        Err(e) => return error(&e),
    };
    let allowed = state
        .db
        .run(move |c| crate::store::access::site_access(c, &who, site)?.require_admin())
        .await;
    if let Err(e) = allowed {
        return error(&e);
    }
    let st = state.get_ref().clone();
    let now = state.clock.now();
    stream_csv(
        "guests.csv",
        &[
            "email",
            "name",
            "status",
            "space",
            "sponsor",
            "invited by",
            "accepted at",
            "access ends",
            "last active",
            "email delivery",
        ],
        move |after| {
            let st = st.clone();
            async move {
                st.db
                    .run(move |c| guests::export_page(c, site, after, PAGE, now))
                    .await
            }
        },
        |r: &guests::GuestExportRow| {
            // The export's own words for a guest and an open invite, not stored values.
            let status = if r.invited {
                "INVITED" // not a column value
            } else {
                "ACTIVE" // not a column value
            };
            vec![
                r.email.clone(),
                r.name.clone(),
                status.to_string(),
                r.space.clone().unwrap_or_default(),
                r.sponsor.clone().unwrap_or_default(),
                r.invited_by.clone().unwrap_or_default(),
                time(r.accepted_at),
                time(r.access_ends_at),
                time(r.last_active_at),
                r.delivery
                    .map(|d| d.as_str().to_string())
                    .unwrap_or_default(),
            ]
        },
        |r| (r.email_normalized.clone(), r.id),
    )
}

/// `POST /admin/invites.csv?siteId=` with the file as the body (`Content-Type: text/csv`): checks
/// every row, stores the file with its job, and answers `202` with the bulk invite's id and the rows
/// refused already. `bulkInvite(id)` follows the rest.
pub async fn bulk_invite(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if content_type.starts_with("multipart/") || content_type.starts_with("application/x-www-form")
    {
        return super::graphql::request_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            "Send the file itself as the request body, with Content-Type: text/csv.",
        );
    }
    let site = match site_param(&req) {
        Ok(s) => s,
        Err(e) => return error(&e),
    };
    let who = match authenticated(&state, &req).await {
        Ok(w) => w,
        Err(e) => return error(&e),
    };
    let body = match super::graphql::read_body(payload, MAX_CSV_BYTES).await {
        Ok(b) => b,
        Err(res) => return res,
    };
    let rows = match crate::domain::bulk::parse(&body) {
        Ok(r) => r,
        Err(e) => return error(&AppError::invalid("file", e.to_string())),
    };
    let now = state.clock.now();
    let created = state
        .db
        .run(move |c| {
            let (b, progress) = bulk::create(c, &who, site, rows, now)?;
            let invalid = bulk::rows(c, b.id, Some(BulkRowStatus::Invalid), None, i64::MAX)?;
            Ok((b, progress, invalid))
        })
        .await;
    let (b, progress, invalid) = match created {
        Ok(x) => x,
        Err(e) => return error(&e),
    };
    HttpResponse::Accepted().json(serde_json::json!({
        "id": crate::graphql::ids::global(crate::graphql::ids::Kind::BulkInvite, b.id),
        "status": b.status.as_str(),
        "totalRows": progress.total,
        "validRows": progress.pending,
        "invalidRows": invalid.iter().map(|r| serde_json::json!({
            "line": r.line,
            "email": r.email,
            "code": r.code,
            "message": r.message,
        })).collect::<Vec<_>>(),
    }))
}
