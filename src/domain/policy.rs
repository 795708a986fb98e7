//! External user security: who is external, when they must verify again, when two-step codes apply,
//! and what a policy change does to one person. Pure rules; the store gathers the facts.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// Whether a second step is required of external users at sign-in.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    async_graphql::Enum,
    diesel::AsExpression,
    diesel::FromSqlRow,
)]
#[diesel(sql_type = diesel::sql_types::Text)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TwoStep {
    /// No second step for external users as such (a person's own flag or authenticator app still
    /// applies).
    Off,
    /// Every external user gives a code at sign-in: emailed, or from their authenticator app.
    Required,
}

/// Whether external users' API tokens work.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    async_graphql::Enum,
    diesel::AsExpression,
    diesel::FromSqlRow,
)]
#[diesel(sql_type = diesel::sql_types::Text)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ApiTokenAccess {
    /// External users' API tokens work.
    Allowed,
    /// External users' API tokens stop working (`API_TOKENS_BLOCKED`) and they cannot create new
    /// ones.
    Blocked,
}

pub const MIN_INTERVAL_MINUTES: i32 = 15;
pub const MAX_INTERVAL_MINUTES: i32 = 43_200;
pub const MIN_IDLE_MINUTES: i32 = 5;

/// An organization's policy for external users.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExternalPolicy {
    pub two_step: TwoStep,
    pub reverification_interval_minutes: i32,
    pub api_token_access: ApiTokenAccess,
    /// A shorter idle timeout for external users' sessions (the global one applies too).
    pub session_idle_timeout_minutes: Option<i32>,
}

impl Default for ExternalPolicy {
    fn default() -> Self {
        Self {
            two_step: TwoStep::Off,
            reverification_interval_minutes: MAX_INTERVAL_MINUTES,
            api_token_access: ApiTokenAccess::Allowed,
            session_idle_timeout_minutes: None,
        }
    }
}

impl ExternalPolicy {
    /// The bounds a policy must respect, as a field and a message.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if !(MIN_INTERVAL_MINUTES..=MAX_INTERVAL_MINUTES)
            .contains(&self.reverification_interval_minutes)
        {
            return Err((
                "reverificationInterval",
                format!(
                    "must be between {MIN_INTERVAL_MINUTES} and {MAX_INTERVAL_MINUTES} minutes"
                ),
            ));
        }
        if self
            .session_idle_timeout_minutes
            .is_some_and(|m| !(MIN_IDLE_MINUTES..=MAX_INTERVAL_MINUTES).contains(&m))
        {
            return Err((
                "sessionIdleTimeoutMinutes",
                format!("must be between {MIN_IDLE_MINUTES} and {MAX_INTERVAL_MINUTES} minutes"),
            ));
        }
        Ok(())
    }

    pub fn interval(&self) -> Duration {
        Duration::minutes(self.reverification_interval_minutes.into())
    }

    /// How long before the end of a period the scheduler sends the reminder: the configured lead, or
    /// by default the smaller of 3 days and a fifth of the interval.
    pub fn lead_time(&self, configured: Option<Duration>) -> Duration {
        configured.unwrap_or_else(|| (self.interval() / 5).min(Duration::days(3)))
    }
}

/// Whether a stored review lets a policy change be applied now: it showed exactly this policy
/// (`reviewed`: `None` when the stored one no longer reads as a policy), it was not used yet, and it
/// has not expired. Who it affects must also be unchanged since (the store compares fingerprints).
pub fn review_applies(
    reviewed: Option<&ExternalPolicy>,
    new: &ExternalPolicy,
    used: bool,
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> bool {
    reviewed == Some(new) && !used && expires_at > now
}

/// A person is external unless their email domain is one the organization verified (exact match).
/// Given the domain, not the address: the stored `users.email_domain` (or `EmailAddress::domain` for an
/// address not stored yet) is the one reading of an address's domain, shared with the SQL rules.
pub fn is_external(email_domain: &str, verified_domains: &[String]) -> bool {
    !verified_domains.iter().any(|d| d == email_domain)
}

/// The end of the current verification period. Someone who never verified counts from the account's
/// creation.
pub fn verified_until(
    verified_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    policy: &ExternalPolicy,
) -> DateTime<Utc> {
    verified_at.unwrap_or(created_at) + policy.interval()
}

/// Two-step codes apply to a person flagged by an admin, and to every external user under a policy
/// that requires them.
pub fn two_step_applies(personal_flag: bool, external: bool, policy: &ExternalPolicy) -> bool {
    personal_flag || (external && policy.two_step == TwoStep::Required)
}

/// Whether an external user's session has been idle longer than the policy's own idle timeout (the
/// global one applies to everyone apart from this); never for an internal user, a policy without one,
/// or a session not used yet.
pub fn session_idle_too_long(
    external: bool,
    policy: &ExternalPolicy,
    last_seen: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> bool {
    match (policy.session_idle_timeout_minutes, last_seen) {
        (Some(limit), Some(seen)) if external => now - seen > Duration::minutes(limit.into()),
        _ => false,
    }
}

/// One external user's facts, as a policy change needs them.
#[derive(Clone, Copy, Debug)]
pub struct PersonFacts {
    pub verified_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// Two-step already applies to them whatever the policy (an admin's flag or an authenticator app).
    pub personal_two_step: bool,
    pub active_api_tokens: bool,
    /// How long ago each live session was last used.
    pub longest_session_idle: Option<Duration>,
}

/// What a policy change does to one external user.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Effects {
    /// Not due under the old policy, due under the new one: must verify at their next request.
    pub must_reverify: bool,
    /// Starts having to give a code at sign-in.
    pub must_use_two_step: bool,
    /// Their API tokens stop working.
    pub tokens_stop: bool,
    /// Some of their sessions end (idle longer than the new timeout).
    pub sessions_end: bool,
}

impl Effects {
    pub fn any(&self) -> bool {
        self.must_reverify || self.must_use_two_step || self.tokens_stop || self.sessions_end
    }
}

pub fn effects(
    old: &ExternalPolicy,
    new: &ExternalPolicy,
    p: &PersonFacts,
    now: DateTime<Utc>,
) -> Effects {
    let due = |policy: &ExternalPolicy| verified_until(p.verified_at, p.created_at, policy) <= now;
    let idle_limit = |policy: &ExternalPolicy| {
        policy
            .session_idle_timeout_minutes
            .map(|m| Duration::minutes(m.into()))
    };
    let ends = |policy: &ExternalPolicy| match (idle_limit(policy), p.longest_session_idle) {
        (Some(limit), Some(idle)) => idle > limit,
        _ => false,
    };
    Effects {
        must_reverify: due(new) && !due(old),
        must_use_two_step: !p.personal_two_step
            && new.two_step == TwoStep::Required
            && old.two_step == TwoStep::Off,
        tokens_stop: p.active_api_tokens
            && new.api_token_access == ApiTokenAccess::Blocked
            && old.api_token_access == ApiTokenAccess::Allowed,
        sessions_end: ends(new) && !ends(old),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minutes: i64) -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap() + Duration::minutes(minutes)
    }

    #[test]
    fn external_means_an_unverified_domain() {
        let domains = vec!["acme.example".to_string()];
        assert!(!is_external("acme.example", &domains));
        assert!(is_external("eu.acme.example", &domains));
        assert!(is_external("partner.example", &domains));
        assert!(is_external("", &domains));
    }

    #[test]
    fn lead_time_defaults_to_a_fifth_capped_at_three_days() {
        let mut p = ExternalPolicy::default();
        assert_eq!(p.lead_time(None), Duration::days(3));
        p.reverification_interval_minutes = 60;
        assert_eq!(p.lead_time(None), Duration::minutes(12));
        assert_eq!(
            p.lead_time(Some(Duration::minutes(1))),
            Duration::minutes(1)
        );
    }

    #[test]
    fn a_shorter_interval_makes_long_verified_people_due() {
        let old = ExternalPolicy::default();
        let new = ExternalPolicy {
            reverification_interval_minutes: 60,
            ..old
        };
        let facts = PersonFacts {
            verified_at: Some(at(0)),
            created_at: at(-1000),
            personal_two_step: false,
            active_api_tokens: true,
            longest_session_idle: Some(Duration::minutes(30)),
        };
        let e = effects(&old, &new, &facts, at(90));
        assert!(e.must_reverify && !e.tokens_stop && !e.must_use_two_step && !e.sessions_end);
        assert!(!effects(&old, &new, &facts, at(30)).any());
        let strict = ExternalPolicy {
            two_step: TwoStep::Required,
            api_token_access: ApiTokenAccess::Blocked,
            session_idle_timeout_minutes: Some(10),
            ..old
        };
        let e = effects(&old, &strict, &facts, at(30));
        assert!(e.must_use_two_step && e.tokens_stop && e.sessions_end && !e.must_reverify);
        let personal = PersonFacts {
            personal_two_step: true,
            active_api_tokens: false,
            longest_session_idle: None,
            ..facts
        };
        assert!(!effects(&old, &strict, &personal, at(30)).any());
    }

    #[test]
    fn validation_names_the_field() {
        let mut p = ExternalPolicy::default();
        assert!(p.validate().is_ok());
        p.reverification_interval_minutes = 14;
        assert_eq!(p.validate().unwrap_err().0, "reverificationInterval");
        p.reverification_interval_minutes = 15;
        p.session_idle_timeout_minutes = Some(1);
        assert_eq!(p.validate().unwrap_err().0, "sessionIdleTimeoutMinutes");
    }

    #[test]
    fn only_external_sessions_idle_past_the_policy_timeout_end() {
        let strict = ExternalPolicy {
            session_idle_timeout_minutes: Some(10),
            ..Default::default()
        };
        assert!(session_idle_too_long(true, &strict, Some(at(0)), at(11)));
        assert!(
            !session_idle_too_long(true, &strict, Some(at(0)), at(10)),
            "exactly the timeout is still within it"
        );
        assert!(!session_idle_too_long(false, &strict, Some(at(0)), at(60)));
        assert!(!session_idle_too_long(true, &strict, None, at(60)));
        assert!(!session_idle_too_long(
            true,
            &ExternalPolicy::default(),
            Some(at(0)),
            at(60 * 24 * 365)
        ));
    }

    #[test]
    fn a_review_applies_once_to_its_own_policy_until_it_expires() {
        let p = ExternalPolicy::default();
        let other = ExternalPolicy {
            two_step: TwoStep::Required,
            ..p
        };
        assert!(review_applies(Some(&p), &p, false, at(30), at(0)));
        assert!(!review_applies(Some(&p), &other, false, at(30), at(0)));
        assert!(!review_applies(None, &p, false, at(30), at(0)));
        assert!(!review_applies(Some(&p), &p, true, at(30), at(0)), "used");
        assert!(
            !review_applies(Some(&p), &p, false, at(30), at(30)),
            "expired"
        );
    }

    #[test]
    fn two_step_applies_by_flag_or_policy() {
        let required = ExternalPolicy {
            two_step: TwoStep::Required,
            ..Default::default()
        };
        assert!(two_step_applies(true, false, &ExternalPolicy::default()));
        assert!(two_step_applies(false, true, &required));
        assert!(!two_step_applies(false, false, &required));
        assert!(!two_step_applies(false, true, &ExternalPolicy::default()));
    }
}
