//! CSV exports for admins (`Authorization: Bearer <token>`), streamed page by page so memory stays
//! bounded whatever the organization's size. Cells are escaped against spreadsheet formula injection.

use crate::domain::text::spreadsheet_safe;
use crate::error::AppError;
use crate::state::AppState;
use crate::store::access::{self, Caller};
use crate::store::external;
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
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    if let AppError::Internal(detail) = e {
        tracing::error!(detail = %detail, "export failed");
    }
    HttpResponse::build(status).json(serde_json::json!({
        "errors": [{ "message": e.to_string(), "extensions": { "code": e.code().as_str() } }]
    }))
}

/// The organization admin behind the request's bearer token.
async fn org_admin(state: &AppState, req: &HttpRequest) -> Result<Caller, AppError> {
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
    if !who.org_admin {
        return Err(AppError::Forbidden);
    }
    Ok(who)
}

fn time(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// `GET /admin/external-users.csv`: every external user of the caller's organization.
pub async fn external_users(state: web::Data<AppState>, req: HttpRequest) -> HttpResponse {
    let who = match org_admin(&state, &req).await {
        Ok(w) => w,
        Err(e) => return error(&e),
    };
    let org = who.user.organization_id;
    let policy = who.policy;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<web::Bytes, std::io::Error>>(2);
    let st = state.get_ref().clone();
    tokio::spawn(async move {
        let mut after: Option<(String, uuid::Uuid)> = None;
        let mut first = true;
        loop {
            let a = after.clone();
            let rows = match st
                .db
                .run(move |c| external::export_page(c, org, a, PAGE))
                .await
            {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = ?e, "external users export stopped");
                    let _ = tx.send(Err(std::io::Error::other("export failed"))).await;
                    return;
                }
            };
            let mut w = csv::Writer::from_writer(Vec::new());
            if first {
                let _ = w.write_record([
                    "email",
                    "name",
                    "site roles",
                    "space",
                    "last active",
                    "verified until",
                    "two-step",
                ]);
                first = false;
            }
            for r in &rows {
                let until =
                    crate::domain::policy::verified_until(r.verified_at, r.created_at, &policy);
                let two_step = if r.authenticator {
                    "AUTHENTICATOR"
                } else if crate::domain::policy::two_step_applies(
                    r.two_step_required,
                    true,
                    &policy,
                ) {
                    "EMAIL_CODE"
                } else {
                    "OFF"
                };
                let cells = [
                    r.email.as_str(),
                    r.display_name.as_str(),
                    r.roles.as_str(),
                    r.spaces.as_str(),
                    &time(r.last_active_at),
                    &time(Some(until)),
                    two_step,
                ];
                let _ = w.write_record(cells.iter().map(|c| spreadsheet_safe(c).into_owned()));
            }
            let chunk = w.into_inner().unwrap_or_default();
            if tx.send(Ok(web::Bytes::from(chunk))).await.is_err() {
                return; // the client went away
            }
            match rows.last() {
                Some(last) if rows.len() as i64 == PAGE => {
                    after = Some((last.email_normalized.clone(), last.id));
                }
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
            "attachment; filename=\"external-users.csv\"",
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .streaming(body)
}
