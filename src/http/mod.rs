//! The HTTP surface (actix-web): GraphQL, GraphiQL, health, readiness, metrics, and the plain HTML
//! pages that email recipients open.

mod exports;
mod graphiql;
mod graphql;
mod pages;

use crate::graphql::GuestpassSchema;
use crate::state::AppState;
use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceRequest, ServiceResponse};
use actix_web::middleware::{Next, from_fn};
use actix_web::{App, HttpResponse, HttpServer, web};
use std::net::TcpListener;
use std::time::{Duration, Instant};

/// Starts the server on an already bound listener (port 0 in tests).
pub fn serve(
    state: AppState,
    schema: GuestpassSchema,
    listener: TcpListener,
) -> std::io::Result<Server> {
    let body_limit = state.config.max_body_bytes;
    // Our own origin (GraphiQL) plus the configured frontends.
    let mut origins = state.config.cors_origins.clone();
    if let Ok(u) = url::Url::parse(&state.config.public_url) {
        origins.push(u.origin().ascii_serialization());
    }
    // Automatic persisted queries: one store for every worker of this process.
    let persisted = web::Data::new(graphql::PersistedQueries::new());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(state.clone()))
            .app_data(web::Data::new(schema.clone()))
            .app_data(persisted.clone())
            .app_data(web::PayloadConfig::new(body_limit))
            .app_data(web::FormConfig::default().limit(body_limit))
            .wrap(from_fn(observe))
            .wrap(from_fn(head_as_get))
            .service(
                web::resource("/graphql")
                    .wrap(cors(&origins))
                    .route(web::post().to(graphql::post))
                    .route(web::get().to(graphql::get))
                    // 405 with `Allow` (HEAD is routed as GET by `head_as_get`).
                    .default_service(web::to(graphql::method_not_allowed)),
            )
            .route("/graphiql", web::get().to(graphiql::page))
            .route(
                "/graphiql/assets/{hash}/{name}",
                web::get().to(graphiql::asset),
            )
            .route("/healthz", web::get().to(healthz))
            .route("/readyz", web::get().to(readyz))
            .route("/metrics", web::get().to(metrics))
            .route(
                "/admin/external-users.csv",
                web::get().to(exports::external_users),
            )
            .route("/admin/guests.csv", web::get().to(exports::guests))
            .route("/admin/invites.csv", web::post().to(exports::bulk_invite))
            .service(
                web::resource("/invite/{token}")
                    .route(web::get().to(pages::invite_page))
                    .route(web::post().to(pages::invite_submit)),
            )
            .service(
                web::resource("/reset/{token}")
                    .route(web::get().to(pages::reset_page))
                    .route(web::post().to(pages::reset_submit)),
            )
            .service(
                web::resource("/verify/{token}")
                    .route(web::get().to(pages::verify_page))
                    .route(web::post().to(pages::verify_submit)),
            )
            .default_service(web::to(pages::not_found))
    })
    .listen(listener)?
    // Graceful shutdown: stop accepting, give in-flight requests time to finish.
    .shutdown_timeout(30)
    .run();
    Ok(server)
}

/// Browsers may call the API from our own origin and the configured ones only.
fn cors(origins: &[String]) -> actix_cors::Cors {
    let mut c = actix_cors::Cors::default()
        .allowed_methods(["GET", "POST"])
        .allowed_headers([
            actix_web::http::header::AUTHORIZATION,
            actix_web::http::header::CONTENT_TYPE,
        ])
        .max_age(3600);
    for o in origins.iter().map(|o| o.trim()).filter(|o| !o.is_empty()) {
        c = c.allowed_origin(o);
    }
    c
}

/// `HEAD` answers on every `GET` route (uptime checks use it): the request is routed as a `GET`, and
/// actix's HTTP/1 codec, which remembers the request was a `HEAD`, sends the same status and headers
/// (the length included) without the body.
async fn head_as_get(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if req.method() == actix_web::http::Method::HEAD {
        req.head_mut().method = actix_web::http::Method::GET;
    }
    next.call(req).await
}

/// Records every request's route pattern (never the raw path: it can hold a token), status and latency.
async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let route = req.match_pattern().unwrap_or_else(|| "unmatched".into());
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let res = next.call(req).await?;
    let status = res.status().as_u16();
    let secs = started.elapsed().as_secs_f64();
    if let Some(st) = state {
        st.metrics.observe_request(&route, status, secs);
    }
    tracing::debug!(%route, status, ms = secs * 1000.0, "request");
    Ok(res)
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok\n")
}

/// 200 when the database answers and its schema is current, else 503.
async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let pool = state.db.pool().clone();
    let check = tokio::task::spawn_blocking(move || {
        let mut conn = pool.get_timeout(Duration::from_secs(2)).ok()?;
        use diesel::RunQueryDsl;
        diesel::sql_query("SELECT 1").execute(&mut conn).ok()?;
        Some(crate::db::migrations_current(&mut conn))
    })
    .await
    .ok()
    .flatten();
    let mail_broken = state.metrics.mail_path_broken.get() > 0;
    let body = serde_json::json!({
        "database": match check { Some(true) => "ok", Some(false) => "migrations pending", None => "unreachable" },
        "mail": if mail_broken { "failing" } else { "ok" },
    });
    if check == Some(true) {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let pool = state.db.pool().state();
    state.metrics.pool_connections.set(pool.connections.into());
    state.metrics.pool_idle.set(pool.idle_connections.into());
    state
        .metrics
        .sql_statements
        .set(state.db.statements().min(i64::MAX as u64) as i64);
    // Webhook deliveries still to deliver and failing endpoints, deployment-wide, at scrape time.
    crate::jobs::webhooks::read_gauges(&state).await;
    // Queue depth by status, read at scrape time (an unreachable database leaves the last values).
    if let Ok(rows) = state.db.run(crate::store::queue::job_counts).await {
        state.metrics.jobs.clear();
        for (queue, status, n) in rows {
            state
                .metrics
                .jobs
                .get_or_create(&crate::metrics::JobLabels { queue, status })
                .set(n);
        }
    }
    HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(state.metrics.render())
}
