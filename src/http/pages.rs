//! Plain server-side pages for email recipients (no front-end build): the invite accept page and the
//! password reset page.
//! Invalid links of every kind get the same page and status; forms carry a CSRF value bound to a
//! SameSite cookie; pages send a strict CSP and `Referrer-Policy: no-referrer`.

use crate::error::AppError;
use crate::state::AppState;
use crate::store::invites;
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

const CSRF_COOKIE: &str = "gp_csrf";

#[derive(Template)]
#[template(path = "pages/invite.html")]
struct InvitePage<'a> {
    site: &'a str,
    organization: &'a str,
    inviter: &'a str,
    role: &'a str,
    space: Option<&'a str>,
    message: Option<&'a str>,
    email: &'a str,
    expires: String,
    csrf: String,
    existing_account: bool,
    display_name: &'a str,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "pages/accepted.html")]
struct AcceptedPage<'a> {
    name: &'a str,
    site: &'a str,
    organization: &'a str,
    space: Option<&'a str>,
    app_url: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "pages/invalid.html")]
struct InvalidPage;

#[derive(Template)]
#[template(path = "pages/message.html")]
struct MessagePage<'a> {
    title: &'a str,
    text: &'a str,
}

/// Security headers for every HTML page.
fn html(status: StatusCode, body: Result<String, askama::Error>) -> HttpResponse {
    let body = body.unwrap_or_else(|e| {
        tracing::error!(error = %e, "template failed");
        "Internal error".into()
    });
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body)
}

fn invalid() -> HttpResponse {
    html(StatusCode::NOT_FOUND, InvalidPage.render())
}

fn unavailable() -> HttpResponse {
    html(
        StatusCode::SERVICE_UNAVAILABLE,
        MessagePage {
            title: "Please try again shortly",
            text: "Guestpass cannot reach its database right now. Nothing was changed.",
        }
        .render(),
    )
}

pub async fn not_found() -> HttpResponse {
    html(
        StatusCode::NOT_FOUND,
        MessagePage {
            title: "Not found",
            text: "There is nothing at this address.",
        }
        .render(),
    )
}

fn cookie_nonce(req: &HttpRequest) -> Option<String> {
    let raw = req.headers().get(header::COOKIE)?.to_str().ok()?;
    raw.split(';')
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == CSRF_COOKIE)
        .map(|(_, v)| v.to_string())
        .filter(|v| v.len() == 32 && v.chars().all(|c| c.is_ascii_hexdigit()))
}

/// The browser's CSRF cookie value, or a new one for a first visit.
fn csrf_nonce(req: &HttpRequest) -> String {
    cookie_nonce(req).unwrap_or_else(|| hex::encode(crate::auth::tokens::random_nonce()))
}

/// The submitted CSRF value matches this browser's cookie and this link (a form from our page).
fn form_is_ours(state: &AppState, req: &HttpRequest, link_token: &str, submitted: &str) -> bool {
    cookie_nonce(req).is_some_and(|n| state.signer.csrf_ok(link_token, &n, submitted))
}

/// A form page with its CSRF cookie (scoped to the form's path).
fn form_page(
    state: &AppState,
    status: StatusCode,
    body: Result<String, askama::Error>,
    nonce: &str,
    path: &str,
) -> HttpResponse {
    let mut res = html(status, body);
    if let Ok(v) = header::HeaderValue::from_str(&set_cookie(state, nonce, path)) {
        res.headers_mut().insert(header::SET_COOKIE, v);
    }
    res
}

fn set_cookie(state: &AppState, nonce: &str, path: &str) -> String {
    let secure = if state.config.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    format!("{CSRF_COOKIE}={nonce}; Path={path}; HttpOnly; SameSite=Strict; Max-Age=3600{secure}")
}

async fn render_form(
    state: &AppState,
    req: &HttpRequest,
    token: &str,
    status: StatusCode,
    display_name: &str,
    error: Option<String>,
) -> HttpResponse {
    let now = state.clock.now();
    let signer = state.signer.clone();
    let t = token.to_string();
    let open = match state
        .db
        .run(move |c| invites::open(c, &signer, &t, now))
        .await
    {
        Ok(o) => o,
        Err(AppError::Unavailable) => return unavailable(),
        Err(_) => return invalid(),
    };
    let nonce = csrf_nonce(req);
    let page = InvitePage {
        site: &open.site.name,
        organization: &open.organization.name,
        inviter: &open.inviter.display_name,
        role: open.invite.role().map_or("a member", |r| r.describe()),
        space: open.space.as_ref().map(|s| s.name.as_str()),
        message: open.invite.personal_message.as_deref(),
        email: &open.invite.email,
        expires: crate::email::format_datetime(open.invite.expires_at),
        csrf: state.signer.csrf_tag(token, &nonce),
        existing_account: open.existing_account.is_some(),
        display_name,
        error,
    };
    form_page(state, status, page.render(), &nonce, "/invite")
}

pub async fn invite_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> HttpResponse {
    if let Some(res) = over_limit(&state, &req, &state.limits.accept_address).await {
        return res;
    }
    render_form(&state, &req, &path.into_inner(), StatusCode::OK, "", None).await
}

#[derive(serde::Deserialize)]
pub struct AcceptForm {
    csrf: String,
    display_name: Option<String>,
    password: String,
    password_confirmation: Option<String>,
}

/// Form submissions may change who can do what: cached token answers are dropped after them.
struct Invalidate<'a>(&'a AppState);

impl Drop for Invalidate<'_> {
    fn drop(&mut self) {
        self.0.auth_cache.invalidate();
    }
}

pub async fn invite_submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    form: web::Form<AcceptForm>,
) -> HttpResponse {
    let _invalidate = Invalidate(&state);
    if let Some(res) = over_limit(&state, &req, &state.limits.accept_address).await {
        return res;
    }
    let token = path.into_inner();
    let form = form.into_inner();
    let name = form.display_name.clone().unwrap_or_default();
    let csrf_ok = form_is_ours(&state, &req, &token, &form.csrf);
    if !csrf_ok {
        return render_form(
            &state,
            &req,
            &token,
            StatusCode::FORBIDDEN,
            &name,
            Some("Your session for this form expired or the form was sent from another site. Please try again.".into()),
        )
        .await;
    }
    if let Some(confirm) = &form.password_confirmation
        && confirm != &form.password
    {
        return render_form(
            &state,
            &req,
            &token,
            StatusCode::UNPROCESSABLE_ENTITY,
            &name,
            Some("The two passwords do not match.".into()),
        )
        .await;
    }
    // The page signs nobody in (it has no way to hand a session over, nor to ask for a second step):
    // it accepts, then sends the person to sign in, where `login` asks for whatever their account needs.
    let accepted = crate::graphql::accept(
        &state,
        &client(&state, &req),
        token.clone(),
        form.display_name,
        form.password,
        false,
    )
    .await;
    match accepted {
        Ok((user, _)) => {
            let t = token.clone();
            // The invite is used now; show what it granted.
            let site = state
                .db
                .run(move |c| crate::store::invites::accepted_summary(c, &t, user.id))
                .await
                .ok();
            let (site_name, org_name, space) = site.unwrap_or_default();
            html(
                StatusCode::OK,
                AcceptedPage {
                    name: &user.display_name,
                    site: &site_name,
                    organization: &org_name,
                    space: space.as_deref(),
                    app_url: state.config.app_url.as_deref(),
                }
                .render(),
            )
        }
        Err(AppError::InviteInvalid) => invalid(),
        Err(AppError::Unavailable) => unavailable(),
        Err(AppError::RateLimited {
            retry_after_seconds,
        }) => limited(retry_after_seconds),
        Err(
            e @ (AppError::WeakPassword(_)
            | AppError::InvalidInput { .. }
            | AppError::InvalidCredentials),
        ) => {
            render_form(
                &state,
                &req,
                &token,
                StatusCode::UNPROCESSABLE_ENTITY,
                &name,
                Some(e.to_string()),
            )
            .await
        }
        Err(e) => {
            render_form(
                &state,
                &req,
                &token,
                StatusCode::CONFLICT,
                &name,
                Some(e.to_string()),
            )
            .await
        }
    }
}

#[derive(Template)]
#[template(path = "pages/reset.html")]
struct ResetPage<'a> {
    email: &'a str,
    organization: &'a str,
    csrf: String,
    error: Option<String>,
}

fn limited(retry_after_seconds: u64) -> HttpResponse {
    let mut res = html(
        StatusCode::TOO_MANY_REQUESTS,
        MessagePage {
            title: "Too many attempts",
            text: "Please wait a little and try again.",
        }
        .render(),
    );
    if let Ok(v) = header::HeaderValue::from_str(&retry_after_seconds.to_string()) {
        res.headers_mut().insert(header::RETRY_AFTER, v);
    }
    res
}

/// The page for every unusable emailed link other than invites (reset and verification links).
fn invalid_reset() -> HttpResponse {
    html(
        StatusCode::NOT_FOUND,
        MessagePage {
            title: "This link is not valid",
            text: "It may have expired, been used already, or been replaced by a newer one. Ask for a new one from the sign-in screen.",
        }
        .render(),
    )
}

fn client(state: &AppState, req: &HttpRequest) -> String {
    super::graphql::client_address(state, req).unwrap_or_else(|| "unknown".into())
}

/// Counts one use of a page by the client; the page to answer instead when over the limit.
async fn over_limit(
    state: &AppState,
    req: &HttpRequest,
    limit: &crate::ratelimit::Limit,
) -> Option<HttpResponse> {
    match limit.check(state, &client(state, req)).await {
        Err(AppError::RateLimited {
            retry_after_seconds,
        }) => Some(limited(retry_after_seconds)),
        Err(_) => Some(unavailable()),
        Ok(()) => None,
    }
}

async fn render_reset(
    state: &AppState,
    req: &HttpRequest,
    token: &str,
    status: StatusCode,
    error: Option<String>,
) -> HttpResponse {
    let (signer, now, t) = (state.signer.clone(), state.clock.now(), token.to_string());
    let opened = state
        .db
        .run(move |c| {
            let (_, user) = crate::store::signin::open_reset(c, &signer, &t, now)?;
            let org = crate::store::org::organization(c, user.organization_id)?;
            Ok((user, org))
        })
        .await;
    let (user, org) = match opened {
        Ok(o) => o,
        Err(AppError::Unavailable) => return unavailable(),
        Err(_) => return invalid_reset(),
    };
    let nonce = csrf_nonce(req);
    let page = ResetPage {
        email: &user.email,
        organization: &org.name,
        csrf: state.signer.csrf_tag(token, &nonce),
        error,
    };
    form_page(state, status, page.render(), &nonce, "/reset")
}

pub async fn reset_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> HttpResponse {
    if let Some(res) = over_limit(&state, &req, &state.limits.reset_address).await {
        return res;
    }
    render_reset(&state, &req, &path.into_inner(), StatusCode::OK, None).await
}

#[derive(serde::Deserialize)]
pub struct ResetForm {
    csrf: String,
    password: String,
    password_confirmation: String,
}

pub async fn reset_submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    form: web::Form<ResetForm>,
) -> HttpResponse {
    let _invalidate = Invalidate(&state);
    if let Some(res) = over_limit(&state, &req, &state.limits.reset_address).await {
        return res;
    }
    let token = path.into_inner();
    let form = form.into_inner();
    let csrf_ok = form_is_ours(&state, &req, &token, &form.csrf);
    let problem = if !csrf_ok {
        Some((StatusCode::FORBIDDEN, "Your session for this form expired or the form was sent from another site. Please try again.".to_string()))
    } else if form.password != form.password_confirmation {
        Some((
            StatusCode::UNPROCESSABLE_ENTITY,
            "The two passwords do not match.".to_string(),
        ))
    } else {
        None
    };
    if let Some((status, message)) = problem {
        return render_reset(&state, &req, &token, status, Some(message)).await;
    }
    match crate::graphql::reset_password(&state, token.clone(), form.password).await {
        Ok(()) => html(
            StatusCode::OK,
            MessagePage {
                title: "Your password is set",
                text: "You can now sign in with it. Every earlier session was signed out.",
            }
            .render(),
        ),
        Err(AppError::LinkInvalid) => invalid_reset(),
        Err(AppError::Unavailable) => unavailable(),
        Err(e) => {
            render_reset(
                &state,
                &req,
                &token,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(e.to_string()),
            )
            .await
        }
    }
}

#[derive(Template)]
#[template(path = "pages/verify.html")]
struct VerifyPage<'a> {
    email: &'a str,
    organization: &'a str,
    csrf: String,
}

/// The re-verification link's page: a button, so that mail scanners following links verify nobody.
pub async fn verify_page(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> HttpResponse {
    if let Some(res) = over_limit(&state, &req, &state.limits.reset_address).await {
        return res;
    }
    let token = path.into_inner();
    let (signer, now, t) = (state.signer.clone(), state.clock.now(), token.clone());
    let opened = state
        .db
        .run(move |c| {
            let (_, user) = crate::store::external::open_link(c, &signer, &t, now)?;
            let org = crate::store::org::organization(c, user.organization_id)?;
            Ok((user, org))
        })
        .await;
    let (user, org) = match opened {
        Ok(o) => o,
        Err(AppError::Unavailable) => return unavailable(),
        Err(_) => return invalid_reset(),
    };
    let nonce = csrf_nonce(&req);
    let page = VerifyPage {
        email: &user.email,
        organization: &org.name,
        csrf: state.signer.csrf_tag(&token, &nonce),
    };
    form_page(&state, StatusCode::OK, page.render(), &nonce, "/verify")
}

#[derive(serde::Deserialize)]
pub struct VerifyForm {
    csrf: String,
}

pub async fn verify_submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    form: web::Form<VerifyForm>,
) -> HttpResponse {
    let _invalidate = Invalidate(&state);
    if let Some(res) = over_limit(&state, &req, &state.limits.reset_address).await {
        return res;
    }
    let token = path.into_inner();
    let csrf_ok = form_is_ours(&state, &req, &token, &form.csrf);
    if !csrf_ok {
        return html(
            StatusCode::FORBIDDEN,
            MessagePage {
                title: "Please try again",
                text: "Your session for this page expired or the form was sent from another site. Open the link from the email again.",
            }
            .render(),
        );
    }
    let (signer, now) = (state.signer.clone(), state.clock.now());
    match state
        .db
        .run(move |c| crate::store::external::use_link(c, &signer, &token, now))
        .await
    {
        Ok(_) => html(
            StatusCode::OK,
            MessagePage {
                title: "Thank you, your address is confirmed",
                text: "You can go back to work: your access continues.",
            }
            .render(),
        ),
        Err(AppError::Unavailable) => unavailable(),
        Err(_) => invalid_reset(),
    }
}
