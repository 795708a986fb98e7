//! Start-up: configuration checks, migrations, pools, the HTTP server and the workers, and their
//! graceful shutdown. `serve` and the integration tests both start Guestpass through here.

use crate::clock::Clock;
use crate::config::Config;
use crate::db::{self, Db};
use crate::email::Mailer;
use crate::graphql::{self, Limits};
use crate::jobs::{self, WorkerOptions};
use crate::state::AppState;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// What to run in this process.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub api: bool,
    pub workers: bool,
    /// Development mode: a random secret is accepted (links die at restart).
    pub dev: bool,
    pub demo: bool,
    pub worker: WorkerOptions,
}

impl RunOptions {
    pub fn from_config(config: &Config) -> Self {
        Self {
            api: true,
            workers: true,
            dev: false,
            demo: false,
            worker: WorkerOptions {
                email_concurrency: config.email_concurrency,
                heartbeat: Duration::from_secs(config.worker_heartbeat_secs.max(1)),
                poll: Duration::from_secs(1),
                retry_base: Duration::from_millis(config.email_retry_base_ms),
            },
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Database(#[from] db::SetupError),
    #[error(
        "GUESTPASS_SECRET is not set. Set it to a random value of at least 32 characters (e.g. `export GUESTPASS_SECRET=$(openssl rand -hex 32)`), or run `guestpass serve --dev` for local development."
    )]
    MissingSecret,
    #[error("{0}")]
    Other(String),
}

/// A running Guestpass.
pub struct Running {
    pub state: AppState,
    /// The bound port, when serving the API.
    pub port: Option<u16>,
    server: Option<actix_web::dev::ServerHandle>,
    server_task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    workers_task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    revocations_task: Option<tokio::task::JoinHandle<()>>,
    /// The live events' listener (GraphQL subscriptions).
    events_task: Option<tokio::task::JoinHandle<()>>,
    stop: watch::Sender<bool>,
}

impl Running {
    /// Waits until the server and workers end (on SIGTERM / Ctrl-C, or `stop`).
    pub async fn wait(mut self) -> std::io::Result<()> {
        if let Some(t) = self.server_task.take() {
            t.await.map_err(std::io::Error::other)??;
            // The server stops on SIGTERM by itself; tell the workers too.
            let _ = self.stop.send(true);
        }
        if let Some(t) = self.workers_task.take() {
            t.await.map_err(std::io::Error::other)??;
        }
        let _ = self.stop.send(true);
        for t in [self.revocations_task.take(), self.events_task.take()]
            .into_iter()
            .flatten()
        {
            let _ = t.await;
        }
        Ok(())
    }

    /// Graceful stop: no new requests, in-flight requests and jobs finish.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        // Live connections would hold the server's graceful stop until its timeout: told to go.
        self.state.live.close_all();
        if let Some(h) = &self.server {
            h.stop(true).await;
        }
        if let Some(t) = self.server_task.take() {
            let _ = t.await;
        }
        if let Some(t) = self.workers_task.take() {
            let _ = t.await;
        }
        for t in [self.revocations_task.take(), self.events_task.take()]
            .into_iter()
            .flatten()
        {
            let _ = t.await;
        }
    }
}

/// Resolves on SIGTERM, Ctrl-C, or when `stop` flips to true.
async fn shutdown_signal(mut stop: watch::Receiver<bool>) -> std::io::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r,
        _ = term.recv() => Ok(()),
        _ = stop.wait_for(|s| *s) => Ok(()),
    }
}

pub async fn start(
    config: Config,
    opts: RunOptions,
    clock: Clock,
    listener: Option<TcpListener>,
) -> Result<Running, StartError> {
    let secret = match (&config.secret, opts.dev || opts.demo) {
        (Some(s), _) => s.0.clone(),
        (None, true) => {
            tracing::warn!(
                "no GUESTPASS_SECRET: using a random one for this run (emailed links stop working at restart)"
            );
            hex::encode(crate::auth::tokens::random_nonce())
                + &hex::encode(crate::auth::tokens::random_nonce())
        }
        (None, false) => return Err(StartError::MissingSecret),
    };
    let url = config.database_url.clone();
    // Only a configured secret seals what is stored in plain text: a random one would lose it.
    let keys = crate::secrets::SecretKeys::from_config(&config);
    tokio::task::spawn_blocking(move || db::migrate_and_seal(&url, keys.as_ref()))
        .await
        .map_err(|e| StartError::Other(e.to_string()))??;
    let queue_pool = jobs::queue_pool(
        &config.database_url,
        opts.worker.email_concurrency as u32 / 4 + 4,
    )
    .await
    .map_err(StartError::Other)?;
    jobs::setup_queue(&queue_pool)
        .await
        .map_err(StartError::Other)?;

    let db = Db::connect(&config.database_url, config.db_pool_size);
    let state = AppState::new(config.clone(), db, clock, &secret);
    if opts.demo {
        crate::demo::seed(&state)
            .await
            .map_err(|e| StartError::Other(e.to_string()))?;
    }
    let (stop, stop_rx) = watch::channel(false);

    let mut port = None;
    let mut server = None;
    let mut server_task = None;
    let mut revocations_task = None;
    let mut events_task = None;
    if opts.api {
        let listener = match listener {
            Some(l) => l,
            None => TcpListener::bind(&config.bind)
                .map_err(|e| StartError::Other(format!("cannot listen on {}: {e}", config.bind)))?,
        };
        port = Some(
            listener
                .local_addr()
                .map_err(|e| StartError::Other(e.to_string()))?
                .port(),
        );
        let schema = graphql::build_schema(Some(state.clone()), Limits::from_config(&config));
        let srv = crate::http::serve(state.clone(), schema, listener)
            .map_err(|e| StartError::Other(e.to_string()))?;
        server = Some(srv.handle());
        server_task = Some(tokio::spawn(srv));
        revocations_task = Some(tokio::spawn(crate::auth::revocation::listen(
            config.database_url.clone(),
            state.auth_cache.clone(),
            state.metrics.clone(),
            state.live.recheck_sender(),
            stop_rx.clone(),
        )));
        events_task = Some(tokio::spawn(crate::events::listen(
            config.database_url.clone(),
            state.live.clone(),
            state.metrics.clone(),
            stop_rx.clone(),
        )));
        // On SIGTERM or Ctrl-C too, live connections are told to go (close code 1001) rather than
        // holding the graceful stop until its timeout.
        let (live, stopping) = (state.live.clone(), shutdown_signal(stop_rx.clone()));
        tokio::spawn(async move {
            let _ = stopping.await;
            live.close_all();
        });
        tracing::info!(address = %config.bind, port = port.unwrap_or(0), "serving GraphQL at /graphql, GraphiQL at /graphiql");
    }

    let mut workers_task = None;
    if opts.workers {
        let mailer = Mailer::from_config(
            config.smtp_url.as_deref(),
            config.outbox_dir.clone(),
            opts.worker.email_concurrency,
        )
        .map_err(StartError::Other)?;
        if config.smtp_url.is_none() {
            tracing::info!(dir = %config.outbox_dir.display(), "no GUESTPASS_SMTP_URL: emails are written as .eml files");
        }
        let mut worker_state = state.clone();
        worker_state.db = state
            .db
            .own_pool(&config.database_url, config.worker_db_pool_size);
        workers_task = Some(tokio::spawn(jobs::run_workers(
            worker_state,
            queue_pool,
            Arc::new(mailer),
            opts.worker.clone(),
            shutdown_signal(stop_rx),
        )));
        tracing::info!("job workers started");
    }

    Ok(Running {
        state,
        port,
        server,
        server_task,
        workers_task,
        revocations_task,
        events_task,
        stop,
    })
}
