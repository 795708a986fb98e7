//! Rows as they are stored: one struct per table read, separate structs for inserts.

use crate::db::schema::*;
use crate::domain::ProductRole;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

#[derive(Queryable, Selectable, Clone, Debug)]
#[diesel(table_name = organizations, check_for_backend(diesel::pg::Pg))]
pub struct Organization {
    pub id: Uuid,
    pub name: String,
    pub slug: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Queryable, Selectable, Clone, Debug)]
#[diesel(table_name = sites, check_for_backend(diesel::pg::Pg))]
pub struct Site {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub name: String,
    pub user_limit: i32,
    pub guest_ratio: i32,
    pub invite_expiry_days: i32,
    pub created_at: DateTime<Utc>,
    pub max_guest_lifetime_days: Option<i32>,
    pub guest_reminder_days: i32,
}

impl Site {
    pub fn limits(&self) -> crate::domain::seats::Limits {
        crate::domain::seats::Limits {
            user_limit: self.user_limit.into(),
            guest_ratio: self.guest_ratio.into(),
        }
    }
}

#[derive(Queryable, QueryableByName, Selectable, Clone, Debug)]
#[diesel(table_name = users, check_for_backend(diesel::pg::Pg))]
pub struct User {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub email: String,
    pub email_normalized: String,
    pub display_name: String,
    pub password_hash: Option<String>,
    pub status: String,
    pub invited_by: Option<Uuid>,
    pub two_step_required: bool,
    pub created_at: DateTime<Utc>,
    pub verified_at: Option<DateTime<Utc>>,
    pub last_active_at: Option<DateTime<Utc>>,
    /// The domain that decides whether they are external, as the database computes it for every rule
    /// (`users.email_domain`, the text after the last `@`).
    pub email_domain: String,
}

impl User {
    pub fn is_active(&self) -> bool {
        self.status == "ACTIVE"
    }
}

#[derive(Insertable)]
#[diesel(table_name = users)]
pub struct NewUser<'a> {
    pub organization_id: Uuid,
    pub email: &'a str,
    pub email_normalized: &'a str,
    pub display_name: &'a str,
    pub password_hash: Option<&'a str>,
    pub invited_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    /// From `store::changes::state::is_external` (the engine owns this column).
    pub external: bool,
}

#[derive(Queryable, Selectable, Clone, Debug)]
#[diesel(table_name = groups, check_for_backend(diesel::pg::Pg))]
pub struct Group {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub name: String,
    pub name_normalized: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Queryable, Selectable, Clone, Debug)]
#[diesel(table_name = spaces, check_for_backend(diesel::pg::Pg))]
pub struct Space {
    pub id: Uuid,
    pub site_id: Uuid,
    pub key: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Queryable, Selectable, Clone, Debug)]
#[diesel(table_name = pages, check_for_backend(diesel::pg::Pg))]
pub struct Page {
    pub id: Uuid,
    pub space_id: Uuid,
    pub title: String,
    pub body: String,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

#[derive(Queryable, Selectable, Clone, Debug)]
#[diesel(table_name = invites, check_for_backend(diesel::pg::Pg))]
pub struct Invite {
    pub id: Uuid,
    pub site_id: Uuid,
    pub email: String,
    pub email_normalized: String,
    pub role: Option<i16>,
    pub space_id: Option<Uuid>,
    pub personal_message: Option<String>,
    pub invited_by: Uuid,
    pub token_nonce: Vec<u8>,
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub accepted_at: Option<DateTime<Utc>>,
    pub accepted_user_id: Option<Uuid>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub access_ends_at: Option<DateTime<Utc>>,
    pub access_days: Option<i32>,
}

/// An invite's state as clients see it: a pending invite past its expiry is `EXPIRED`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, async_graphql::Enum)]
pub enum InviteStatus {
    /// Sent, and waiting to be accepted before `expiresAt`; meanwhile it holds a place in the
    /// site's seats (or guest allowance).
    Pending,
    /// Accepted: the person has the invite's access (`acceptedAt` says since when).
    Accepted,
    /// Withdrawn with `revokeInvite`: its link no longer works.
    Revoked,
    /// Not accepted before `expiresAt`: its link no longer works and it holds no place
    /// (`resendInvite` renews it).
    Expired,
}

impl InviteStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Accepted => "ACCEPTED",
            Self::Revoked => "REVOKED",
            Self::Expired => "EXPIRED",
        }
    }
}

impl Invite {
    pub fn role(&self) -> Option<ProductRole> {
        self.role.and_then(ProductRole::from_rank)
    }

    pub fn status_at(&self, now: DateTime<Utc>) -> InviteStatus {
        match self.status.as_str() {
            "PENDING" if self.expires_at <= now => InviteStatus::Expired,
            "PENDING" => InviteStatus::Pending,
            "ACCEPTED" => InviteStatus::Accepted,
            "REVOKED" => InviteStatus::Revoked,
            _ => InviteStatus::Expired,
        }
    }
}

#[derive(Queryable, Selectable, Clone, Debug)]
#[diesel(table_name = email_deliveries, check_for_backend(diesel::pg::Pg))]
pub struct EmailDelivery {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub kind: String,
    pub invite_id: Option<Uuid>,
    pub token_nonce: Option<Vec<u8>>,
    pub recipient: String,
    pub status: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub message_id: String,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub give_up_at: DateTime<Utc>,
    pub challenge_id: Option<Uuid>,
    pub reset_id: Option<Uuid>,
    pub reverify_id: Option<Uuid>,
    pub notice_id: Option<Uuid>,
}

#[derive(Queryable, Selectable, Clone, Debug)]
#[diesel(table_name = guest_terms, check_for_backend(diesel::pg::Pg))]
pub struct GuestTerms {
    pub site_id: Uuid,
    pub user_id: Uuid,
    pub sponsor_id: Option<Uuid>,
    pub ends_at: Option<DateTime<Utc>>,
    pub reminded_for: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Queryable, Selectable, Clone, Debug)]
#[diesel(table_name = notices, check_for_backend(diesel::pg::Pg))]
pub struct Notice {
    pub id: Uuid,
    pub kind: String,
    pub site_id: Uuid,
    pub guest_id: Uuid,
    pub recipient_id: Uuid,
    pub ends_at: Option<DateTime<Utc>>,
    pub message: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Queryable, Selectable, Clone, Debug)]
#[diesel(table_name = login_challenges, check_for_backend(diesel::pg::Pg))]
pub struct LoginChallenge {
    pub id: Uuid,
    pub user_id: Uuid,
    pub method: String,
    pub code_nonce: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub failed_attempts: i32,
    pub consumed_at: Option<DateTime<Utc>>,
    pub purpose: String,
}

#[derive(Queryable, Selectable, Clone, Debug)]
#[diesel(table_name = reverification_links, check_for_backend(diesel::pg::Pg))]
pub struct ReverificationLink {
    pub id: Uuid,
    pub user_id: Uuid,
    pub token_nonce: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
}

#[derive(Queryable, Selectable, Clone, Debug)]
#[diesel(table_name = password_resets, check_for_backend(diesel::pg::Pg))]
pub struct PasswordReset {
    pub id: Uuid,
    pub user_id: Uuid,
    pub token_nonce: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
}

#[derive(Queryable, Selectable, Clone, Debug)]
#[diesel(table_name = sessions, check_for_backend(diesel::pg::Pg))]
pub struct Session {
    pub id: Uuid,
    pub user_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Queryable, Selectable, Clone, Debug)]
#[diesel(table_name = api_tokens, check_for_backend(diesel::pg::Pg))]
pub struct ApiToken {
    pub id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Queryable, Selectable, Clone, Debug)]
#[diesel(table_name = audit_events, check_for_backend(diesel::pg::Pg))]
pub struct AuditEvent {
    pub id: i64,
    pub organization_id: Uuid,
    pub actor_id: Option<Uuid>,
    pub action: String,
    pub target_type: String,
    pub target_id: String,
    pub site_id: Option<Uuid>,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
    pub created_at: DateTime<Utc>,
}
