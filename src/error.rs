//! The one error type of the service boundary, and its single mapping to GraphQL `extensions.code`.

use async_graphql::ErrorExtensions;
use serde::Serialize;

/// An address in a batch and why it was refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AddressError {
    pub email: String,
    pub code: ErrorCode,
}

/// Every `extensions.code` an error can carry. The codes are stable: clients may switch on them
/// (and generate types from this enum); the messages are for people and may change. When several
/// apply to one request, the first in this order wins.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, async_graphql::Enum)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[graphql(name = "ErrorCode")]
pub enum ErrorCode {
    // Declared in the documented precedence order: when several apply, the first wins.
    /// No valid session or API token came with the request: sign in.
    Unauthenticated,
    /// The organization blocked API tokens for external users: sign in with a session instead.
    ApiTokensBlocked,
    /// The caller's verification period ended: verify the email address again
    /// (`requestReverificationCode`, `completeReverification`).
    ReverificationRequired,
    /// The object does not exist, or is not of the caller's organization (answered alike).
    NotFound,
    /// The object exists but the caller may not see or change it.
    Forbidden,
    /// More addresses than one request may invite (`extensions.max`).
    TooManyInvites,
    /// The organization has as many webhook endpoints as it may (`extensions.max`): delete one
    /// first.
    TooManyWebhookEndpoints,
    /// An address is not a valid email address.
    InvalidEmail,
    /// The site's guest domain rules do not allow this address.
    DomainNotAllowed,
    /// An argument is out of range or malformed (`extensions.field` names it).
    InvalidInput,
    /// A webhook URL the server will not send to: not a valid URL, not `https`, a name that does
    /// not resolve, or an address that is not public (loopback, private, link-local, cloud metadata)
    /// while private targets are not allowed. `extensions.reason` says which (`INVALID_URL`,
    /// `NOT_HTTPS`, `UNRESOLVABLE`, `PRIVATE_ADDRESS`).
    TargetNotAllowed,
    /// The person already has access to the site.
    AlreadyHasAccess,
    /// A pending invite for this address and site already exists.
    InvitePending,
    /// The person holds, or has held, a paid role on the site, so cannot be a guest there.
    PaidUserCannotBeGuest,
    /// The site's user limit is reached (`extensions.remaining`).
    SeatLimitReached,
    /// The site's guest allowance is reached (`extensions.remaining`).
    GuestLimitReached,
    /// The invitation link is invalid, expired, revoked or already used.
    InviteInvalid,
    /// The email address or password is wrong (never says which).
    InvalidCredentials,
    /// The two-step or verification code is wrong, expired or already used.
    CodeInvalid,
    /// The emailed link (password reset, re-verification) is invalid, expired or already used.
    LinkInvalid,
    /// The new password is too weak (the message says why).
    WeakPassword,
    /// The change would leave the organization without an organization admin.
    LastOrgAdmin,
    /// The change would take the person out of groups that also grant roles on other sites
    /// (`extensions.groups` names them).
    GroupReachesOtherSites,
    /// The requested end of access is beyond the site's maximum guest lifetime
    /// (`extensions.maxDays`).
    ExtensionNotAllowed,
    /// The policy review is missing, expired or out of date: preview the change again.
    ReviewStale,
    /// Too many attempts: try again after `extensions.retryAfterSeconds`.
    RateLimited,
    /// A subscription's live events may have been missed (the server lost its database
    /// notifications for a moment, or the subscriber fell behind): query the current state again.
    /// The subscription goes on.
    EventsMissed,
    /// The service cannot answer right now (the database is unavailable): retry shortly.
    Unavailable,
    /// An unexpected error; the details are in the server's log, never in the response.
    Internal,
}

impl ErrorCode {
    /// The code a stored row names (`"INVALID_EMAIL"`), if it is one.
    pub fn parse(code: &str) -> Option<Self> {
        use async_graphql::resolver_utils::EnumType;
        Self::items()
            .iter()
            .find(|item| item.name == code)
            .map(|item| item.value)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::ApiTokensBlocked => "API_TOKENS_BLOCKED",
            Self::ReverificationRequired => "REVERIFICATION_REQUIRED",
            Self::NotFound => "NOT_FOUND",
            Self::Forbidden => "FORBIDDEN",
            Self::TooManyInvites => "TOO_MANY_INVITES",
            Self::TooManyWebhookEndpoints => "TOO_MANY_WEBHOOK_ENDPOINTS",
            Self::InvalidEmail => "INVALID_EMAIL",
            Self::DomainNotAllowed => "DOMAIN_NOT_ALLOWED",
            Self::InvalidInput => "INVALID_INPUT",
            Self::TargetNotAllowed => "TARGET_NOT_ALLOWED",
            Self::AlreadyHasAccess => "ALREADY_HAS_ACCESS",
            Self::InvitePending => "INVITE_PENDING",
            Self::PaidUserCannotBeGuest => "PAID_USER_CANNOT_BE_GUEST",
            Self::SeatLimitReached => "SEAT_LIMIT_REACHED",
            Self::GuestLimitReached => "GUEST_LIMIT_REACHED",
            Self::InviteInvalid => "INVITE_INVALID",
            Self::InvalidCredentials => "INVALID_CREDENTIALS",
            Self::CodeInvalid => "CODE_INVALID",
            Self::LinkInvalid => "LINK_INVALID",
            Self::WeakPassword => "WEAK_PASSWORD",
            Self::LastOrgAdmin => "LAST_ORG_ADMIN",
            Self::GroupReachesOtherSites => "GROUP_REACHES_OTHER_SITES",
            Self::ExtensionNotAllowed => "EXTENSION_NOT_ALLOWED",
            Self::ReviewStale => "REVIEW_STALE",
            Self::RateLimited => "RATE_LIMITED",
            Self::EventsMissed => "EVENTS_MISSED",
            Self::Unavailable => "UNAVAILABLE",
            Self::Internal => "INTERNAL",
        }
    }
}

#[derive(Clone, Debug, thiserror::Error)]
pub enum AppError {
    #[error("Sign in first: this needs a valid session or API token.")]
    Unauthenticated,
    #[error("An admin blocked API tokens for external users: sign in instead.")]
    ApiTokensBlocked,
    #[error(
        "Your organization asks you to verify your email address again. Use the link we emailed, or requestReverificationCode."
    )]
    ReverificationRequired,
    #[error("{0} not found.")]
    NotFound(&'static str),
    #[error("You are not allowed to do this.")]
    Forbidden,
    #[error("At most {max} addresses can be invited at once.")]
    TooManyInvites { max: usize },
    #[error("An organization may have at most {max} webhook endpoints: delete one first.")]
    TooManyWebhookEndpoints { max: i64 },
    #[error("Invalid {field}: {message}.")]
    InvalidInput { field: String, message: String },
    /// A webhook target refused by `crate::outbound` (`reason` is the refusal's stable name).
    #[error("This webhook URL is not allowed: {message}.")]
    TargetNotAllowed {
        reason: &'static str,
        message: String,
    },
    /// A batch refused because of some of its addresses; the top-level code is the first by precedence.
    #[error("{}", describe_addresses(.0))]
    Addresses(Vec<AddressError>),
    #[error("The site's user limit is reached ({remaining} seats left).")]
    SeatLimitReached { remaining: i64 },
    #[error("The site's guest allowance is reached ({remaining} guest slots left).")]
    GuestLimitReached { remaining: i64 },
    #[error(
        "This invitation link is invalid or has expired. Ask the person who invited you for a new one."
    )]
    InviteInvalid,
    #[error("The email address or password is incorrect.")]
    InvalidCredentials,
    #[error("The code is wrong, expired or already used. Sign in again to get a new one.")]
    CodeInvalid,
    #[error("This link is invalid, expired or already used. Ask for a new one.")]
    LinkInvalid,
    #[error("Password too weak: {0}.")]
    WeakPassword(String),
    #[error("The organization must keep at least one organization admin.")]
    LastOrgAdmin,
    /// Taking someone off one site would take them out of groups that also grant roles on other
    /// sites, and so away from those sites too: refused, so the caller decides (`groups` names them).
    #[error(
        "Taking this person off the site would also take them out of {}, which grant roles on other sites too. Remove them from the group first, or take the group's role on this site away.",
        .groups.join(", ")
    )]
    GroupReachesOtherSites { groups: Vec<String> },
    #[error("Guests of this site may have access for at most {max_days} days from now.")]
    ExtensionNotAllowed { max_days: i32 },
    #[error(
        "This review is missing, expired, for another policy, or the people it affects changed: preview the change again."
    )]
    ReviewStale,
    #[error("Too many attempts. Try again in {retry_after_seconds} seconds.")]
    RateLimited { retry_after_seconds: u64 },
    #[error(
        "Some live events may have been missed: query the current state again. The subscription goes on."
    )]
    EventsMissed,
    #[error("The service is temporarily unavailable. Try again shortly.")]
    Unavailable,
    /// Anything we did not expect: logged with its detail, answered with a generic message.
    #[error("Internal error.")]
    Internal(String),
}

fn describe_addresses(list: &[AddressError]) -> String {
    let names: Vec<String> = list
        .iter()
        .map(|a| format!("{} ({})", a.email, a.code.as_str()))
        .collect();
    format!("Some addresses cannot be invited: {}.", names.join(", "))
}

impl AppError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidInput {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn internal(detail: impl std::fmt::Display) -> Self {
        Self::Internal(detail.to_string())
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Unauthenticated => ErrorCode::Unauthenticated,
            Self::ApiTokensBlocked => ErrorCode::ApiTokensBlocked,
            Self::ReverificationRequired => ErrorCode::ReverificationRequired,
            Self::NotFound(_) => ErrorCode::NotFound,
            Self::Forbidden => ErrorCode::Forbidden,
            Self::TooManyInvites { .. } => ErrorCode::TooManyInvites,
            Self::TooManyWebhookEndpoints { .. } => ErrorCode::TooManyWebhookEndpoints,
            Self::InvalidInput { .. } => ErrorCode::InvalidInput,
            Self::TargetNotAllowed { .. } => ErrorCode::TargetNotAllowed,
            Self::Addresses(list) => list
                .iter()
                .map(|a| a.code)
                .min()
                .unwrap_or(ErrorCode::InvalidInput),
            Self::SeatLimitReached { .. } => ErrorCode::SeatLimitReached,
            Self::GuestLimitReached { .. } => ErrorCode::GuestLimitReached,
            Self::InviteInvalid => ErrorCode::InviteInvalid,
            Self::InvalidCredentials => ErrorCode::InvalidCredentials,
            Self::CodeInvalid => ErrorCode::CodeInvalid,
            Self::LinkInvalid => ErrorCode::LinkInvalid,
            Self::WeakPassword(_) => ErrorCode::WeakPassword,
            Self::LastOrgAdmin => ErrorCode::LastOrgAdmin,
            Self::GroupReachesOtherSites { .. } => ErrorCode::GroupReachesOtherSites,
            Self::ExtensionNotAllowed { .. } => ErrorCode::ExtensionNotAllowed,
            Self::ReviewStale => ErrorCode::ReviewStale,
            Self::RateLimited { .. } => ErrorCode::RateLimited,
            Self::EventsMissed => ErrorCode::EventsMissed,
            Self::Unavailable => ErrorCode::Unavailable,
            Self::Internal(_) => ErrorCode::Internal,
        }
    }
}

impl From<diesel::result::Error> for AppError {
    fn from(e: diesel::result::Error) -> Self {
        use diesel::result::{DatabaseErrorKind, Error};
        match e {
            Error::DatabaseError(
                DatabaseErrorKind::ClosedConnection
                | DatabaseErrorKind::UnableToSendCommand
                | DatabaseErrorKind::SerializationFailure,
                _,
            ) => Self::Unavailable,
            // The server going away mid-query (a restart, a failover) is an outage, not a bug.
            Error::DatabaseError(_, ref info) if is_outage(info.message()) => Self::Unavailable,
            // Text PostgreSQL cannot store (a NUL character, SQLSTATE 22021), from any input field:
            // the caller's mistake, refused whole (found by the GraphQL fuzzer in `login`).
            Error::DatabaseError(_, ref info)
                if info
                    .message()
                    .contains("invalid byte sequence for encoding") =>
            {
                Self::invalid("input", "text may not contain NUL characters")
            }
            other => Self::Internal(format!("database: {other}")),
        }
    }
}

/// Messages PostgreSQL and libpq give when the server is restarting, shutting down or gone.
fn is_outage(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "terminating connection",
        "the database system is",
        "server closed the connection",
        "connection refused",
        "could not connect",
        "no connection to the server",
        "connection to server",
    ]
    .iter()
    .any(|p| m.contains(p))
}

impl From<crate::domain::seats::Violation> for AppError {
    fn from(v: crate::domain::seats::Violation) -> Self {
        use crate::domain::seats::Violation;
        match v {
            Violation::SeatLimit { remaining } => Self::SeatLimitReached { remaining },
            Violation::GuestLimit { remaining } => Self::GuestLimitReached { remaining },
        }
    }
}

/// The one place errors become GraphQL errors: a stable code, structured details, never internals.
impl From<AppError> for async_graphql::Error {
    fn from(e: AppError) -> Self {
        match &e {
            AppError::Internal(detail) => tracing::error!(detail = %detail, "internal error"),
            AppError::Unavailable => tracing::warn!("request failed: database unavailable"),
            _ => {}
        }
        let code = e.code();
        let mut err = async_graphql::Error::new(e.to_string());
        err = err.extend_with(|_, ext| {
            ext.set("code", code.as_str());
            match &e {
                AppError::SeatLimitReached { remaining }
                | AppError::GuestLimitReached { remaining } => ext.set("remaining", *remaining),
                AppError::TooManyInvites { max } => ext.set("max", *max as i64),
                AppError::TooManyWebhookEndpoints { max } => ext.set("max", *max),
                AppError::ExtensionNotAllowed { max_days } => ext.set("maxDays", *max_days),
                AppError::InvalidInput { field, .. } => ext.set("field", field.as_str()),
                AppError::TargetNotAllowed { reason, .. } => ext.set("reason", *reason),
                AppError::GroupReachesOtherSites { groups } => ext.set(
                    "groups",
                    async_graphql::Value::List(
                        groups
                            .iter()
                            .map(|g| async_graphql::Value::from(g.as_str()))
                            .collect(),
                    ),
                ),
                AppError::RateLimited {
                    retry_after_seconds,
                } => ext.set("retryAfterSeconds", *retry_after_seconds as i64),
                AppError::Addresses(list) => {
                    let value = async_graphql::Value::List(
                        list.iter()
                            .map(|a| {
                                let mut m = async_graphql::indexmap::IndexMap::new();
                                m.insert(
                                    async_graphql::Name::new("email"),
                                    async_graphql::Value::from(a.email.as_str()),
                                );
                                m.insert(
                                    async_graphql::Name::new("code"),
                                    async_graphql::Value::from(a.code.as_str()),
                                );
                                async_graphql::Value::Object(m)
                            })
                            .collect(),
                    );
                    ext.set("addresses", value)
                }
                _ => {}
            }
        });
        err
    }
}

pub type AppResult<T> = Result<T, AppError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_code_follows_precedence() {
        let e = AppError::Addresses(vec![
            AddressError {
                email: "a@x.io".into(),
                code: ErrorCode::InvitePending,
            },
            AddressError {
                email: "b@x.io".into(),
                code: ErrorCode::InvalidEmail,
            },
        ]);
        assert_eq!(e.code(), ErrorCode::InvalidEmail);
        assert!(e.to_string().contains("a@x.io (INVITE_PENDING)"));
    }

    #[test]
    fn internal_errors_hide_details() {
        let e = AppError::internal("SELECT secret FROM x");
        let gql: async_graphql::Error = e.into();
        assert_eq!(gql.message, "Internal error.");
    }
}
