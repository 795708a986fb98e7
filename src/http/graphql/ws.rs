//! `/graphql` over WebSocket: GraphQL subscriptions with the `graphql-transport-ws` protocol
//! (graphql-ws's `PROTOCOL.md`, the one GraphiQL, Apollo Client and urql speak). The protocol itself
//! is async-graphql's (`async_graphql::http::WebSocket`); the socket is actix-ws's. What is ours is
//! around it: who may connect, for how long, and how many at once.
//!
//! - `connection_init`'s payload carries the token as a request's header would
//!   (`{ "Authorization": "Bearer <token>" }`; `authorization` and `token` also do), authenticated by
//!   the same code as every request (`graphql::authenticate`, `graphql::admit`). Refused: close code
//!   4403. No `connection_init` within 10 s: 4408.
//! - A token holds at most `GUESTPASS_SUBSCRIPTIONS_PER_TOKEN` live connections per server; the next is
//!   closed with 1013 ("try again later"). A connection runs at most [`MOST_OPERATIONS`]
//!   subscriptions at once.
//! - The connection is closed (4403) once its token no longer signs in: on every revocation that
//!   concerns its owner or organization (`auth::revocation`, heard on every replica), and every
//!   [`RECHECK_EVERY`] as a safety net, it authenticates again.
//! - Operations are subscriptions only (queries and mutations go over HTTP), judged by the same
//!   alias, depth and complexity limits as over HTTP.
//! - A peer silent for [`SILENT_FOR`] (not even answering pings) is dropped; at shutdown every
//!   connection is closed with 1001 (going away), which clients answer by reconnecting elsewhere.
//!
//! Not async-graphql-actix-web: its handler is an actor (actix and the deprecated actix-web-actors)
//! that gives no hold on a live connection, so the server could neither answer a refused
//! `connection_init` with the protocol's 4403 (it closes with 1002) nor close a connection whose
//! session was revoked.

use super::{Shape, classify, client_address};
use crate::auth::revocation::{Recheck, Revoked};
use crate::error::AppError;
use crate::events::Permit;
use crate::graphql::loaders::loaders;
use crate::graphql::nulls::FieldErrors;
use crate::graphql::{GuestpassSchema, LiveRequest, RequestAuth};
use crate::metrics::Metrics;
use crate::state::AppState;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::{AggregatedMessage, CloseCode, CloseReason, Session};
use async_graphql::http::{WebSocket, WebSocketProtocols, WsMessage};
use async_graphql::parser::types::OperationType;
use async_graphql::{Data, Executor, Request, Response, ServerError};
use futures_util::stream::{self, BoxStream, StreamExt};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc};
use uuid::Uuid;

/// The subprotocol spoken (graphql-ws's; not the legacy `graphql-ws` of subscriptions-transport-ws).
const PROTOCOL: &str = "graphql-transport-ws";

/// How long a client has to send `connection_init`.
const INIT_TIMEOUT: Duration = Duration::from_secs(10);

/// How often an open connection's token is authenticated again, revocations aside.
pub(crate) const RECHECK_EVERY: Duration = Duration::from_secs(60);

/// How often the server pings.
const PING_EVERY: Duration = Duration::from_secs(20);

/// A peer heard from neither by message nor by pong for this long is gone.
const SILENT_FOR: Duration = Duration::from_secs(60);

/// Subscriptions one connection runs at once.
pub(crate) const MOST_OPERATIONS: usize = 20;

/// Client messages waiting for the protocol, at most (it takes them as they come).
const INBOX: usize = 64;

/// Whether a GET asks to become a WebSocket.
pub(super) fn is_upgrade(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// Upgrades the request and runs the connection on this worker.
pub(super) fn connect(
    schema: &GuestpassSchema,
    state: &AppState,
    req: &HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let offered = req
        .headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == PROTOCOL);
    if !offered {
        return super::request_error(
            actix_web::http::StatusCode::BAD_REQUEST,
            "BAD_REQUEST",
            "WebSocket connections to /graphql speak graphql-transport-ws: offer it in Sec-WebSocket-Protocol.",
        );
    }
    let (response, session, messages) =
        match actix_ws::handle_with_protocols(req, payload, &[PROTOCOL]) {
            Ok(upgraded) => upgraded,
            Err(e) => return e.error_response(),
        };
    let max = state.config.max_body_bytes;
    let messages = messages
        .max_frame_size(max)
        .aggregate_continuations()
        .max_continuation_size(max);
    let connection = Connection {
        st: state.clone(),
        schema: schema.clone(),
        client: client_address(state, req),
        admitted: Arc::default(),
        refusal: Arc::default(),
    };
    actix_web::rt::spawn(connection.run(session, messages));
    response
}

/// A connection past `connection_init`: whose token it runs as, holding one of the token's places.
struct Admitted {
    token: String,
    user: Uuid,
    org: Uuid,
    _permit: Permit,
    _open: Open,
}

/// Counts an admitted connection in `/metrics` while it lives.
struct Open(Arc<Metrics>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.live_connections.dec();
    }
}

/// A close code and its reason.
type Close = (u16, String);

struct Connection {
    st: AppState,
    schema: GuestpassSchema,
    client: Option<String>,
    admitted: Arc<OnceLock<Admitted>>,
    /// Why `connection_init` was refused, for the close code (the protocol's engine closes with 1002).
    refusal: Arc<Mutex<Option<Close>>>,
}

impl Connection {
    async fn run(self, session: Session, mut messages: actix_ws::AggregatedMessageStream) {
        let (inbox, mut incoming) = mpsc::channel::<Vec<u8>>(INBOX);
        let incoming = stream::poll_fn(move |cx| incoming.poll_recv(cx));
        let operations = Operations {
            st: self.st.clone(),
            schema: self.schema.clone(),
            client: self.client.clone(),
            admitted: self.admitted.clone(),
            running: Arc::default(),
        };
        let init = Init {
            st: self.st.clone(),
            admitted: self.admitted.clone(),
            refusal: self.refusal.clone(),
        };
        let mut protocol = WebSocket::new(operations, incoming, WebSocketProtocols::GraphQLWS)
            .on_connection_init(move |payload| init.admit(payload));
        let mut rechecks = self.st.live.rechecks();
        let mut closing = self.st.live.closing();
        let every = |period| tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        let (mut ping, mut recheck) = (every(PING_EVERY), every(RECHECK_EVERY));
        let init_deadline = tokio::time::sleep(INIT_TIMEOUT);
        tokio::pin!(init_deadline);
        let mut heard = Instant::now();
        let mut session = session;
        let close: Option<Close> = loop {
            let admitted = self.admitted.get();
            tokio::select! {
                message = messages.next() => match message {
                    Some(Ok(AggregatedMessage::Text(text))) => {
                        heard = Instant::now();
                        if inbox.try_send(text.as_bytes().to_vec()).is_err() {
                            break Some((4400, "Too many messages at once.".into()));
                        }
                    }
                    Some(Ok(AggregatedMessage::Binary(_))) => {
                        break Some((4400, "graphql-transport-ws messages are text.".into()));
                    }
                    Some(Ok(AggregatedMessage::Ping(bytes))) => {
                        heard = Instant::now();
                        if session.pong(&bytes).await.is_err() {
                            break None;
                        }
                    }
                    Some(Ok(AggregatedMessage::Pong(_))) => heard = Instant::now(),
                    Some(Ok(AggregatedMessage::Close(_))) | None => break None,
                    Some(Err(_)) => break Some((1002, "Malformed WebSocket frame, or too large.".into())),
                },
                out = protocol.next() => match out {
                    Some(WsMessage::Text(text)) => {
                        if session.text(text).await.is_err() {
                            break None;
                        }
                    }
                    Some(WsMessage::Close(code, reason)) => break Some(self.closing_for(code, reason)),
                    None => break Some((1000, String::new())),
                },
                heard_of = rechecks.recv(), if admitted.is_some() => {
                    let concerns = match (heard_of, admitted) {
                        (Ok(Recheck::Only(Revoked::User(u))), Some(a)) => u == a.user,
                        (Ok(Recheck::Only(Revoked::Organization(o))), Some(a)) => o == a.org,
                        (Err(broadcast::error::RecvError::Closed), _) => false,
                        _ => true,
                    };
                    if concerns && let Some(refused) = self.still_signs_in().await {
                        break Some(refused);
                    }
                }
                _ = recheck.tick(), if admitted.is_some() => {
                    if let Some(refused) = self.still_signs_in().await {
                        break Some(refused);
                    }
                }
                _ = &mut init_deadline, if admitted.is_none() => {
                    break Some((4408, "Connection initialisation timeout".into()));
                }
                _ = ping.tick() => {
                    if heard.elapsed() > SILENT_FOR {
                        break None;
                    }
                    if session.ping(b"").await.is_err() {
                        break None;
                    }
                }
                _ = closing.wait_for(|c| *c) => {
                    break Some((1001, "The server is going away: reconnect.".into()));
                }
            }
        };
        // The subscriptions end with the protocol (their streams are dropped with it).
        drop(protocol);
        if let Some((code, reason)) = close {
            let _ = session
                .close(Some(CloseReason {
                    code: CloseCode::from(code),
                    description: (!reason.is_empty()).then_some(reason),
                }))
                .await;
        } else {
            let _ = session.close(None).await;
        }
    }

    /// The close code the protocol's engine means: its refusal of `connection_init` is the one
    /// [`Init`] decided; an operation before the handshake is 4401 and a malformed message 4400, as
    /// `graphql-transport-ws` has them.
    fn closing_for(&self, code: u16, reason: String) -> Close {
        if let Some(refused) = self
            .refusal
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            return refused;
        }
        match code {
            1011 => (4401, "Unauthorized".into()),
            1002 => (4400, reason),
            _ => (code, reason),
        }
    }

    /// `None` while the connection's token still signs in (or the database cannot say: the next
    /// check will); else the close that ends it.
    async fn still_signs_in(&self) -> Option<Close> {
        let admitted = self.admitted.get()?;
        let refused = match crate::graphql::authenticate(&self.st, &admitted.token).await {
            Ok(Some(who)) => crate::graphql::admit(&who, self.st.clock.now()).err()?,
            Ok(None) => AppError::Unauthenticated,
            Err(_) => return None,
        };
        Some(forbidden(&refused))
    }
}

/// Judges `connection_init`.
struct Init {
    st: AppState,
    admitted: Arc<OnceLock<Admitted>>,
    refusal: Arc<Mutex<Option<Close>>>,
}

impl Init {
    async fn admit(self, payload: serde_json::Value) -> async_graphql::Result<Data> {
        match self.admitted_as(&payload).await {
            Ok(admitted) => {
                let _ = self.admitted.set(admitted);
                Ok(Data::default())
            }
            Err((code, reason)) => {
                let error = async_graphql::Error::new(reason.clone());
                *self.refusal.lock().unwrap_or_else(PoisonError::into_inner) = Some((code, reason));
                Err(error)
            }
        }
    }

    async fn admitted_as(&self, payload: &serde_json::Value) -> Result<Admitted, Close> {
        let token = bearer_in(payload).ok_or_else(|| {
            (
                4403,
                "Forbidden: connection_init's payload must carry { \"Authorization\": \"Bearer <token>\" }."
                    .to_string(),
            )
        })?;
        let who = match crate::graphql::authenticate(&self.st, &token).await {
            Ok(Some(who)) => who,
            Ok(None) => return Err(forbidden(&AppError::Unauthenticated)),
            Err(e) => return Err((1013, e.to_string())),
        };
        crate::graphql::admit(&who, self.st.clock.now()).map_err(|e| forbidden(&e))?;
        let most = self.st.config.subscriptions_per_token;
        let permit = self
            .st
            .live
            .admit(crate::auth::tokens::hash_token(&token), most)
            .ok_or_else(|| {
                (
                    1013,
                    format!("Too many connections for this token: at most {most} per server."),
                )
            })?;
        self.st.metrics.live_connections.inc();
        Ok(Admitted {
            token,
            user: who.user.id,
            org: who.user.organization_id,
            _permit: permit,
            _open: Open(self.st.metrics.clone()),
        })
    }
}

/// The close of a connection whose token does not (or no longer) sign in: 4403, with the refusal's
/// code and a reason short enough for a close frame (123 bytes).
fn forbidden(refusal: &AppError) -> Close {
    let why = match refusal {
        AppError::ApiTokensBlocked => "API tokens are blocked for external users",
        AppError::ReverificationRequired => "verify your email address again",
        _ => "the session or token does not sign in",
    };
    (
        4403,
        format!("Forbidden ({}): {why}.", refusal.code().as_str()),
    )
}

/// The bearer token of a `connection_init` payload: `Authorization` (any case) as a request's
/// header has it (`Bearer <token>`), or `token`, with or without `Bearer `.
fn bearer_in(payload: &serde_json::Value) -> Option<String> {
    let fields = payload.as_object()?;
    let find = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.as_str())
    };
    let token = match find("authorization") {
        Some(value) => {
            let (scheme, token) = value.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then_some(token)?
        }
        None => {
            let value = find("token")?.trim();
            value
                .split_once(' ')
                .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                .map_or(value, |(_, token)| token)
        }
    };
    let token = token.trim();
    (!token.is_empty()).then(|| token.to_string())
}

/// Runs a connection's operations: each with the data a request gets (its auth, loaders, the errors
/// of fields answered null) and what its events need ([`LiveRequest`]), after the HTTP layer's
/// checks.
#[derive(Clone)]
struct Operations {
    st: AppState,
    schema: GuestpassSchema,
    client: Option<String>,
    admitted: Arc<OnceLock<Admitted>>,
    /// Subscriptions of the connection now running.
    running: Arc<AtomicUsize>,
}

/// One running subscription's place among its connection's.
struct Place(Arc<AtomicUsize>);

impl Drop for Place {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// An answer refusing the operation before it runs, with a stable code.
fn refused(code: &str, message: &str) -> BoxStream<'static, Response> {
    let mut e = ServerError::new(message, None);
    e.extensions
        .get_or_insert_with(Default::default)
        .set("code", code);
    stream::once(async move { Response::from_errors(vec![e]) }).boxed()
}

impl Operations {
    /// Whether the operation may run, and the place it takes.
    fn admit(&self, request: &Request) -> Result<Place, BoxStream<'static, Response>> {
        let shape = Shape::of(&request.query);
        match shape.selected(request.operation_name.as_deref()) {
            Some(OperationType::Subscription) | None => {}
            Some(_) => {
                return Err(refused(
                    "BAD_REQUEST",
                    "Over WebSocket, /graphql runs subscriptions: send queries and mutations with POST.",
                ));
            }
        }
        if let Some((_, code, message)) = super::limits_refusal(&self.st, &shape) {
            return Err(refused(code, &message));
        }
        let running = self.running.fetch_add(1, Ordering::SeqCst);
        let place = Place(self.running.clone());
        if running >= MOST_OPERATIONS {
            return Err(refused(
                "TOO_MANY_SUBSCRIPTIONS",
                &format!(
                    "A connection runs at most {MOST_OPERATIONS} subscriptions at once: complete one first."
                ),
            ));
        }
        Ok(place)
    }
}

impl Executor for Operations {
    async fn execute(&self, request: Request) -> Response {
        self.execute_stream(request, None)
            .next()
            .await
            .unwrap_or_default()
    }

    fn execute_stream(
        &self,
        request: Request,
        session_data: Option<Arc<Data>>,
    ) -> BoxStream<'static, Response> {
        // The engine runs no operation before `connection_init` was accepted.
        let Some(admitted) = self.admitted.get() else {
            return refused("UNAUTHENTICATED", "Send connection_init first.");
        };
        let place = match self.admit(&request) {
            Ok(place) => place,
            Err(refusal) => return refusal,
        };
        let (token, client) = (admitted.token.clone(), self.client.clone());
        let nulled = FieldErrors::default();
        let request = request
            .data(RequestAuth::new(Some(token.clone()), client.clone()))
            .data(loaders(self.st.db.clone(), true))
            .data(nulled.clone())
            .data(LiveRequest::new(token, client));
        self.schema
            .execute_stream_with_session_data(request, session_data.unwrap_or_default())
            .map(move |mut response| {
                let _running = &place;
                // The errors of the fields answered null in place (`graphql::nulls`).
                response.errors.extend(nulled.take());
                classify(&mut response);
                response
            })
            .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_token_comes_as_a_header_would_or_as_token() {
        for payload in [
            json!({ "Authorization": "Bearer gp_abc" }),
            json!({ "authorization": "bearer  gp_abc " }),
            json!({ "token": "gp_abc" }),
            json!({ "token": "Bearer gp_abc" }),
        ] {
            assert_eq!(bearer_in(&payload).as_deref(), Some("gp_abc"), "{payload}");
        }
        for payload in [
            json!(null),
            json!({}),
            json!({ "Authorization": "gp_abc" }),
            json!({ "Authorization": "Basic gp_abc" }),
            json!({ "Authorization": "Bearer " }),
            json!({ "Authorization": 42 }),
            json!("Bearer gp_abc"),
        ] {
            assert_eq!(bearer_in(&payload), None, "{payload}");
        }
    }
}
