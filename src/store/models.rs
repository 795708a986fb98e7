//! Rows as they are stored: one struct per table read, separate structs for inserts.

use crate::db::schema::*;
use crate::domain::ProductRole;
pub use crate::domain::status::InviteStatus;
use crate::domain::status::{
    ChallengeMethod, ChallengePurpose, DeliveryStatus, EmailKind, NoticeKind, UserStatus,
};
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
    pub status: UserStatus,
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
        self.status == UserStatus::Active
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
    pub status: InviteStatus,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub accepted_at: Option<DateTime<Utc>>,
    pub accepted_user_id: Option<Uuid>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub access_ends_at: Option<DateTime<Utc>>,
    pub access_days: Option<i32>,
}

impl Invite {
    pub fn role(&self) -> Option<ProductRole> {
        self.role.and_then(ProductRole::from_rank)
    }

    /// Its state as clients see it: a pending invite past its expiry is `EXPIRED` (before the expiry
    /// sweep stores it so).
    pub fn status_at(&self, now: DateTime<Utc>) -> InviteStatus {
        match self.status {
            InviteStatus::Pending if self.expires_at <= now => InviteStatus::Expired,
            status => status,
        }
    }
}

#[derive(Queryable, Selectable, Clone, Debug)]
#[diesel(table_name = email_deliveries, check_for_backend(diesel::pg::Pg))]
pub struct EmailDelivery {
    pub id: Uuid,
    pub organization_id: Uuid,
    /// What it is about: `kind` and the one subject column that kind names.
    #[diesel(embed)]
    pub subject: DeliverySubject,
    pub token_nonce: Option<Vec<u8>>,
    pub recipient: String,
    pub status: DeliveryStatus,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub message_id: String,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub give_up_at: DateTime<Utc>,
}

/// What an email is about: its kind and the row it names. Stored as `email_deliveries.kind` and five
/// nullable subject columns, one per kind (the `email_deliveries_subject` constraint says the kind's
/// own is set); read from them here, once, and written by [`DeliverySubject::values`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliverySubject {
    /// An invite's email (`invite_id`).
    Invite(Uuid),
    /// A sign-in or verification code (`challenge_id`, a login challenge).
    LoginCode(Uuid),
    /// A password reset link (`reset_id`).
    PasswordReset(Uuid),
    /// A re-verification link (`reverify_id`).
    Reverify(Uuid),
    /// A reminder or request about a guest's access (`notice_id`).
    Notice(Uuid),
}

/// The subject columns, in the order [`DeliverySubject`] selects them.
type SubjectColumns = (
    email_deliveries::kind,
    email_deliveries::invite_id,
    email_deliveries::challenge_id,
    email_deliveries::reset_id,
    email_deliveries::reverify_id,
    email_deliveries::notice_id,
);

/// The subject columns' values, for an insert.
pub type SubjectValues = (
    diesel::dsl::Eq<email_deliveries::kind, EmailKind>,
    diesel::dsl::Eq<email_deliveries::invite_id, Option<Uuid>>,
    diesel::dsl::Eq<email_deliveries::challenge_id, Option<Uuid>>,
    diesel::dsl::Eq<email_deliveries::reset_id, Option<Uuid>>,
    diesel::dsl::Eq<email_deliveries::reverify_id, Option<Uuid>>,
    diesel::dsl::Eq<email_deliveries::notice_id, Option<Uuid>>,
);

type SubjectRow = (
    EmailKind,
    Option<Uuid>,
    Option<Uuid>,
    Option<Uuid>,
    Option<Uuid>,
    Option<Uuid>,
);

impl DeliverySubject {
    pub fn kind(self) -> EmailKind {
        match self {
            Self::Invite(_) => EmailKind::Invite,
            Self::LoginCode(_) => EmailKind::LoginCode,
            Self::PasswordReset(_) => EmailKind::PasswordReset,
            Self::Reverify(_) => EmailKind::Reverify,
            Self::Notice(_) => EmailKind::Notice,
        }
    }

    /// The id of the row it names (in the table its kind says).
    pub fn id(self) -> Uuid {
        match self {
            Self::Invite(id)
            | Self::LoginCode(id)
            | Self::PasswordReset(id)
            | Self::Reverify(id)
            | Self::Notice(id) => id,
        }
    }

    /// The subject a delivery's columns store; `None` when its kind's column is empty.
    fn from_row((kind, invite, challenge, reset, reverify, notice): SubjectRow) -> Option<Self> {
        match kind {
            EmailKind::Invite => invite.map(Self::Invite),
            EmailKind::LoginCode => challenge.map(Self::LoginCode),
            EmailKind::PasswordReset => reset.map(Self::PasswordReset),
            EmailKind::Reverify => reverify.map(Self::Reverify),
            EmailKind::Notice => notice.map(Self::Notice),
        }
    }

    /// Its kind and its subject column, the other four null: what an insert writes.
    pub fn values(self) -> SubjectValues {
        let of = |kind: EmailKind| (self.kind() == kind).then_some(self.id());
        (
            email_deliveries::kind.eq(self.kind()),
            email_deliveries::invite_id.eq(of(EmailKind::Invite)),
            email_deliveries::challenge_id.eq(of(EmailKind::LoginCode)),
            email_deliveries::reset_id.eq(of(EmailKind::PasswordReset)),
            email_deliveries::reverify_id.eq(of(EmailKind::Reverify)),
            email_deliveries::notice_id.eq(of(EmailKind::Notice)),
        )
    }
}

impl Selectable<diesel::pg::Pg> for DeliverySubject {
    type SelectExpression = SubjectColumns;

    fn construct_selection() -> SubjectColumns {
        (
            email_deliveries::kind,
            email_deliveries::invite_id,
            email_deliveries::challenge_id,
            email_deliveries::reset_id,
            email_deliveries::reverify_id,
            email_deliveries::notice_id,
        )
    }
}

impl Queryable<diesel::dsl::SqlTypeOf<SubjectColumns>, diesel::pg::Pg> for DeliverySubject {
    type Row = SubjectRow;

    fn build(row: SubjectRow) -> diesel::deserialize::Result<Self> {
        let kind = row.0;
        Self::from_row(row).ok_or_else(|| {
            format!(
                "an email delivery of kind {} without its subject",
                kind.as_str()
            )
            .into()
        })
    }
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
    pub kind: NoticeKind,
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
    pub method: ChallengeMethod,
    pub code_nonce: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub failed_attempts: i32,
    pub consumed_at: Option<DateTime<Utc>>,
    pub purpose: ChallengePurpose,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_subject_is_read_from_its_kinds_own_column() {
        let id = Uuid::from_u128(7);
        let other = Some(Uuid::from_u128(8));
        let subjects = [
            DeliverySubject::Invite(id),
            DeliverySubject::LoginCode(id),
            DeliverySubject::PasswordReset(id),
            DeliverySubject::Reverify(id),
            DeliverySubject::Notice(id),
        ];
        assert_eq!(subjects.len(), EmailKind::ALL.len());
        for (n, subject) in subjects.into_iter().enumerate() {
            assert_eq!(subject.id(), id);
            // Its own column set (and, to be sure it is the one read, every other column too).
            let mut columns = [other; 5];
            columns[n] = Some(id);
            let [a, b, c, d, e] = columns;
            let read = DeliverySubject::from_row((subject.kind(), a, b, c, d, e));
            assert_eq!(read, Some(subject));
            // Its own column empty: no subject, whatever the others hold.
            columns[n] = None;
            let [a, b, c, d, e] = columns;
            assert_eq!(
                DeliverySubject::from_row((subject.kind(), a, b, c, d, e)),
                None
            );
        }
    }
}
