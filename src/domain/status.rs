//! The text columns that hold a status or a kind, as Rust enums: each enum's stored text is written
//! here and nowhere else, in one `text_column!` line per variant that maps it both ways (diesel
//! `ToSql`/`FromSql` for `Text`, so models read the enum, inserts and filters bind it, and a value no
//! variant knows fails the read instead of being guessed at).
//!
//! The enums an API shows as they are stored derive the GraphQL enum too (`InviteStatus`, and the
//! rules' own `DomainMode`, `TwoStep`, `ApiTokenAccess`); the others are mapped to their GraphQL
//! enum with an exhaustive `match` where the API shows them. The unit tests below check every enum
//! against the migrations' `CHECK (column IN (...))` constraints, both ways; the API tests
//! (`foundation::no_status_literal_outside_the_status_enums`) keep their text out of the rest of
//! `src/`.

pub use super::domains::DomainMode;
pub use super::policy::{ApiTokenAccess, TwoStep};

/// For an enum that derives `diesel::AsExpression` and `diesel::FromSqlRow` for `Text`: its text
/// for each variant (`as_str`, `parse`, `ALL`, `SQL`) and diesel's conversions through it.
macro_rules! text_column {
    ($name:ident { $($variant:ident => $sql:literal),+ $(,)? }) => {
        impl $name {
            /// Every variant, as listed in its mapping.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];
            /// The text each variant is stored as.
            pub const SQL: &'static [&'static str] = &[$($sql),+];

            /// The text stored for it.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $sql,)+
                }
            }

            /// The variant stored as `text`; `None` for any other text.
            pub fn parse(text: &str) -> Option<Self> {
                match text {
                    $($sql => Some(Self::$variant),)+
                    _ => None,
                }
            }
        }

        impl diesel::serialize::ToSql<diesel::sql_types::Text, diesel::pg::Pg> for $name {
            fn to_sql<'b>(
                &'b self,
                out: &mut diesel::serialize::Output<'b, '_, diesel::pg::Pg>,
            ) -> diesel::serialize::Result {
                <str as diesel::serialize::ToSql<diesel::sql_types::Text, diesel::pg::Pg>>::to_sql(
                    self.as_str(),
                    out,
                )
            }
        }

        impl diesel::deserialize::FromSql<diesel::sql_types::Text, diesel::pg::Pg> for $name {
            fn from_sql(value: diesel::pg::PgValue<'_>) -> diesel::deserialize::Result<Self> {
                let text = std::str::from_utf8(value.as_bytes())?;
                Self::parse(text).ok_or_else(|| {
                    format!("{text:?} is not a stored {}", stringify!($name)).into()
                })
            }
        }
    };
}

/// An invite's state as clients see it: a pending invite past its expiry is `EXPIRED`.
// `invites.status`, which the API shows as it is, except that a pending invite past its expiry is
// stored `PENDING` until the engine closes it (`store::models::Invite::status_at` says `EXPIRED` at
// once).
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    async_graphql::Enum,
    diesel::AsExpression,
    diesel::FromSqlRow,
)]
#[diesel(sql_type = diesel::sql_types::Text)]
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

text_column!(InviteStatus {
    Pending => "PENDING",
    Accepted => "ACCEPTED",
    Revoked => "REVOKED",
    Expired => "EXPIRED",
});

/// `email_deliveries.status`: where one email stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, diesel::AsExpression, diesel::FromSqlRow)]
#[diesel(sql_type = diesel::sql_types::Text)]
pub enum DeliveryStatus {
    /// Waiting for its first attempt.
    Queued,
    /// An attempt is under way (`next_attempt_at` is the sender's lease).
    Sending,
    /// The mail server accepted it.
    Sent,
    /// An attempt failed for a reason that may pass; the next is due at `next_attempt_at`.
    Retrying,
    /// Given up.
    Failed,
    /// Superseded by a resend, or its subject no longer wants it.
    Cancelled,
}

text_column!(DeliveryStatus {
    Queued => "QUEUED",
    Sending => "SENDING",
    Sent => "SENT",
    Retrying => "RETRYING",
    Failed => "FAILED",
    Cancelled => "CANCELLED",
});

impl DeliveryStatus {
    /// Sent, failed or cancelled: no attempt will ever be made again.
    pub fn is_final(self) -> bool {
        match self {
            Self::Sent | Self::Failed | Self::Cancelled => true,
            Self::Queued | Self::Sending | Self::Retrying => false,
        }
    }
}

/// `email_deliveries.kind`: what an email is about, which says which of the delivery's subject
/// columns names it (`store::models::DeliverySubject`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, diesel::AsExpression, diesel::FromSqlRow)]
#[diesel(sql_type = diesel::sql_types::Text)]
pub enum EmailKind {
    /// An invite's link (`invite_id`).
    Invite,
    /// A sign-in or verification code (`challenge_id`).
    LoginCode,
    /// A password reset link (`reset_id`).
    PasswordReset,
    /// A re-verification link (`reverify_id`).
    Reverify,
    /// A reminder or request about a guest's access (`notice_id`).
    Notice,
}

text_column!(EmailKind {
    Invite => "INVITE",
    LoginCode => "LOGIN_CODE",
    PasswordReset => "PASSWORD_RESET",
    Reverify => "REVERIFY",
    Notice => "NOTICE",
});

/// `bulk_invites.status`: where an uploaded file's job is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, diesel::AsExpression, diesel::FromSqlRow)]
#[diesel(sql_type = diesel::sql_types::Text)]
pub enum BulkStatus {
    /// Waiting for its job to start.
    Queued,
    /// Inviting rows, one at a time.
    Running,
    /// Stopped at the uploader's daily cap until `resumes_at`.
    Paused,
    /// Every valid row was tried.
    Done,
}

text_column!(BulkStatus {
    Queued => "QUEUED",
    Running => "RUNNING",
    Paused => "PAUSED",
    Done => "DONE",
});

/// `bulk_invite_rows.status`: what happened to one row of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, diesel::AsExpression, diesel::FromSqlRow)]
#[diesel(sql_type = diesel::sql_types::Text)]
pub enum BulkRowStatus {
    /// Valid, waiting for its turn.
    Pending,
    /// Invited (`invite_id`).
    Invited,
    /// Tried, and refused (`code`, `message`).
    Refused,
    /// Wrong in itself (`code`, `message`), never tried.
    Invalid,
}

text_column!(BulkRowStatus {
    Pending => "PENDING",
    Invited => "INVITED",
    Refused => "REFUSED",
    Invalid => "INVALID",
});

/// `notices.kind`: what a message about a guest's access says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, diesel::AsExpression, diesel::FromSqlRow)]
#[diesel(sql_type = diesel::sql_types::Text)]
pub enum NoticeKind {
    /// The guest's access ends soon (to the guest, or to their sponsor).
    LifetimeReminder,
    /// The guest asks their sponsor for more time.
    ExtensionRequest,
}

text_column!(NoticeKind {
    LifetimeReminder => "LIFETIME_REMINDER",
    ExtensionRequest => "EXTENSION_REQUEST",
});

/// `users.status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, diesel::AsExpression, diesel::FromSqlRow)]
#[diesel(sql_type = diesel::sql_types::Text)]
pub enum UserStatus {
    /// May sign in and holds their access.
    Active,
    /// Signed out everywhere and holds nothing until reactivated.
    Deactivated,
}

text_column!(UserStatus {
    Active => "ACTIVE",
    Deactivated => "DEACTIVATED",
});

/// `login_challenges.method`: where the code of a challenge comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, diesel::AsExpression, diesel::FromSqlRow)]
#[diesel(sql_type = diesel::sql_types::Text)]
pub enum ChallengeMethod {
    /// Emailed (derived from the challenge with the link signer).
    Email,
    /// From the person's authenticator app (or a recovery code).
    Totp,
}

text_column!(ChallengeMethod {
    Email => "EMAIL",
    Totp => "TOTP",
});

/// `login_challenges.purpose`: what passing a challenge does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, diesel::AsExpression, diesel::FromSqlRow)]
#[diesel(sql_type = diesel::sql_types::Text)]
pub enum ChallengePurpose {
    /// Finishes a sign-in.
    Login,
    /// Confirms the person still holds their address (re-verification).
    Reverify,
}

text_column!(ChallengePurpose {
    Login => "LOGIN",
    Reverify => "REVERIFY",
});

/// `reverification_sweeps.trigger`: what started a sweep.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, diesel::AsExpression, diesel::FromSqlRow)]
#[diesel(sql_type = diesel::sql_types::Text)]
pub enum SweepTrigger {
    /// The cron tick.
    Schedule,
    /// An administrator (`runReverificationSweep`, `guestpass sweep`).
    Manual,
}

text_column!(SweepTrigger {
    Schedule => "SCHEDULE",
    Manual => "MANUAL",
});

// The rules' own enums, stored as they are shown.
text_column!(DomainMode {
    None => "NONE",
    Allow => "ALLOW",
    Block => "BLOCK",
});

text_column!(TwoStep {
    Off => "OFF",
    Required => "REQUIRED",
});

text_column!(ApiTokenAccess {
    Allowed => "ALLOWED",
    Blocked => "BLOCKED",
});

/// `webhook_endpoints.status`: whether an endpoint receives events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, diesel::AsExpression, diesel::FromSqlRow)]
#[diesel(sql_type = diesel::sql_types::Text)]
pub enum EndpointStatus {
    /// Receives the events it subscribed to.
    Active,
    /// Turned off by an admin: receives nothing until enabled again.
    Disabled,
    /// A delivery failed for good (`failing_since`); still receives events, and the next success
    /// makes it `ACTIVE` again.
    Failing,
}

text_column!(EndpointStatus {
    Active => "ACTIVE",
    Disabled => "DISABLED",
    Failing => "FAILING",
});

/// `webhook_deliveries.status`: where one event's delivery to one endpoint stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, diesel::AsExpression, diesel::FromSqlRow)]
#[diesel(sql_type = diesel::sql_types::Text)]
pub enum WebhookDeliveryStatus {
    /// Waiting for its first attempt.
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// An attempt failed; the next is due at `next_attempt_at`.
    Retrying,
    /// Every attempt of the schedule failed (`redeliverWebhook` tries again).
    Failed,
}

text_column!(WebhookDeliveryStatus {
    Pending => "PENDING",
    Delivered => "DELIVERED",
    Retrying => "RETRYING",
    Failed => "FAILED",
});

impl WebhookDeliveryStatus {
    /// Still to be delivered: a worker will try it.
    pub const OPEN: [Self; 2] = [Self::Pending, Self::Retrying];
}

/// Every text column that holds one of these enums (`table.column`), with the text its variants
/// store.
pub const COLUMNS: &[(&str, &[&str])] = &[
    ("invites.status", InviteStatus::SQL),
    ("email_deliveries.status", DeliveryStatus::SQL),
    ("email_deliveries.kind", EmailKind::SQL),
    ("bulk_invites.status", BulkStatus::SQL),
    ("bulk_invite_rows.status", BulkRowStatus::SQL),
    ("notices.kind", NoticeKind::SQL),
    ("users.status", UserStatus::SQL),
    ("login_challenges.method", ChallengeMethod::SQL),
    ("login_challenges.purpose", ChallengePurpose::SQL),
    ("reverification_sweeps.trigger", SweepTrigger::SQL),
    ("organizations.guest_domain_mode", DomainMode::SQL),
    ("external_user_policies.two_step", TwoStep::SQL),
    (
        "external_user_policies.api_token_access",
        ApiTokenAccess::SQL,
    ),
    ("webhook_endpoints.status", EndpointStatus::SQL),
    ("webhook_deliveries.status", WebhookDeliveryStatus::SQL),
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};

    fn round_trips<T: Copy + PartialEq + std::fmt::Debug>(
        all: &[T],
        sql: &[&str],
        as_str: fn(T) -> &'static str,
        parse: fn(&str) -> Option<T>,
    ) {
        assert_eq!(all.len(), sql.len());
        for (v, text) in all.iter().zip(sql) {
            assert_eq!(as_str(*v), *text);
            assert_eq!(parse(text), Some(*v), "{text}");
            assert_eq!(
                parse(&text.to_lowercase()),
                None,
                "{text} is matched exactly"
            );
        }
        let distinct: BTreeSet<_> = sql.iter().collect();
        assert_eq!(distinct.len(), sql.len(), "two variants store {sql:?}");
        assert_eq!(parse(""), None);
    }

    #[test]
    fn every_variant_round_trips_through_its_text() {
        macro_rules! check {
            ($($t:ty),+) => {
                $(round_trips(<$t>::ALL, <$t>::SQL, <$t>::as_str, <$t>::parse);)+
            };
        }
        check!(
            InviteStatus,
            DeliveryStatus,
            EmailKind,
            BulkStatus,
            BulkRowStatus,
            NoticeKind,
            UserStatus,
            ChallengeMethod,
            ChallengePurpose,
            SweepTrigger,
            EndpointStatus,
            WebhookDeliveryStatus,
            DomainMode,
            TwoStep,
            ApiTokenAccess
        );
    }

    #[test]
    fn only_sent_failed_and_cancelled_are_final() {
        let finals: Vec<_> = DeliveryStatus::ALL
            .iter()
            .filter(|s| s.is_final())
            .map(|s| s.as_str())
            .collect();
        assert_eq!(finals, ["SENT", "FAILED", "CANCELLED"]);
    }

    /// `table.column` -> the values of the last `CHECK (column IN ('A', 'B'))` the migrations, in
    /// order, give it (a constraint dropped and added again replaces the earlier one).
    fn checked_columns() -> BTreeMap<String, BTreeSet<String>> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let mut migrations: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path().join("up.sql"))
            .collect();
        migrations.sort();
        let mut columns = BTreeMap::new();
        for path in migrations {
            let sql: String = std::fs::read_to_string(&path)
                .unwrap()
                .lines()
                .map(|l| l.split("--").next().unwrap_or(""))
                .collect::<Vec<_>>()
                .join("\n");
            for statement in sql.split(';') {
                let Some(table) = table_of(statement) else {
                    continue;
                };
                for (column, values) in in_checks(statement) {
                    columns.insert(format!("{table}.{column}"), values);
                }
            }
        }
        columns
    }

    /// The table a `CREATE TABLE` or `ALTER TABLE` statement is about.
    fn table_of(statement: &str) -> Option<&str> {
        let words: Vec<&str> = statement.split_whitespace().collect();
        let at = words
            .windows(2)
            .position(|w| (w[0] == "CREATE" || w[0] == "ALTER") && w[1] == "TABLE")?;
        let name = words.get(at + 2)?;
        Some(name.trim_end_matches('('))
    }

    /// Every `CHECK (column IN ('A', ...))` in a statement.
    fn in_checks(statement: &str) -> Vec<(String, BTreeSet<String>)> {
        let mut found = Vec::new();
        let squeezed = statement.split_whitespace().collect::<Vec<_>>().join(" ");
        let mut rest = squeezed.as_str();
        while let Some(at) = rest.find("CHECK (") {
            rest = &rest[at + "CHECK (".len()..];
            let Some((column, tail)) = rest.split_once(' ') else {
                break;
            };
            let Some(list) = tail.strip_prefix("IN (") else {
                continue;
            };
            let Some((list, _)) = list.split_once(')') else {
                break;
            };
            let values = list
                .split(',')
                .map(|v| v.trim().trim_matches('\'').to_string())
                .collect();
            found.push((column.to_string(), values));
        }
        found
    }

    #[test]
    fn the_migrations_find_what_they_should() {
        let checked = checked_columns();
        // Replaced twice after the first migration: the last one counts.
        assert!(checked["email_deliveries.kind"].contains("NOTICE"));
        assert!(checked["bulk_invites.status"].contains("PAUSED"));
        assert!(!checked.contains_key("sites.user_limit"), "not a list");
    }

    #[test]
    fn every_checked_text_column_has_an_enum_with_exactly_its_values() {
        let checked = checked_columns();
        let mapped: BTreeMap<String, BTreeSet<String>> = COLUMNS
            .iter()
            .map(|(c, v)| (c.to_string(), v.iter().map(|s| s.to_string()).collect()))
            .collect();
        for (column, values) in &checked {
            let Some(variants) = mapped.get(column) else {
                panic!(
                    "{column} is checked against {values:?} but has no enum: add one in \
                     src/domain/status.rs (and to COLUMNS)"
                );
            };
            assert_eq!(
                variants, values,
                "{column}: the enum's values and the CHECK constraint's differ"
            );
        }
        for column in mapped.keys() {
            assert!(checked.contains_key(column), "{column} has no CHECK list");
        }
    }
}
