//! Email addresses, parsed once at the boundary (parse, don't validate), and what follows a send
//! that failed: another attempt after a backoff, or giving up.

use chrono::{DateTime, Utc};
use std::fmt;
use std::time::Duration;

/// A syntactically valid address (checked by lettre's RFC 5321/5322 parser), at most 254 characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmailAddress {
    original: String,
    normalized: String,
}

impl EmailAddress {
    pub const MAX_LEN: usize = 254;

    pub fn parse(input: &str) -> Result<Self, String> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err("is empty".into());
        }
        if trimmed.chars().count() > Self::MAX_LEN {
            return Err(format!("is longer than {} characters", Self::MAX_LEN));
        }
        if trimmed.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err("contains spaces or control characters".into());
        }
        // Non-ASCII addresses invite look-alikes (a Cyrillic "а" for a Latin "a") and need SMTPUTF8,
        // which many servers lack: internationalized domains are given in their ASCII (xn--) form.
        if !trimmed.is_ascii() {
            return Err("must be written in ASCII (internationalized domains as xn--)".into());
        }
        let parsed: lettre::Address = trimmed
            .parse()
            .map_err(|_| "is not a valid email address".to_string())?;
        if !parsed.domain().contains('.') && parsed.domain() != "localhost" {
            return Err("has no domain name".into());
        }
        // A quoted local part may hold `@` (`"bob@acme.example"@evil.example`): such an address has
        // two plausible domains, and whether someone is external turns on which one is read. Refused,
        // so every stored address has exactly one `@` and one domain.
        if parsed.user().contains('@') {
            return Err(
                "must not contain `@` before the domain (as in a quoted local part)".into(),
            );
        }
        Ok(Self {
            original: trimmed.to_string(),
            normalized: trimmed.to_lowercase(),
        })
    }

    /// The address as typed (trimmed).
    pub fn as_str(&self) -> &str {
        &self.original
    }

    /// Lower-cased: what uniqueness and lookups use.
    pub fn normalized(&self) -> &str {
        &self.normalized
    }

    /// The lower-cased domain part: the text after the last `@`, as the stored `users.email_domain`
    /// column computes it (one `@` in any parsed address, so the two cannot differ).
    pub fn domain(&self) -> &str {
        domain_of(&self.normalized)
    }
}

/// The domain of a stored, normalized address: the text after the last `@` (as `users.email_domain`).
pub fn domain_of(normalized: &str) -> &str {
    normalized.rsplit_once('@').map(|(_, d)| d).unwrap_or("")
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.original)
    }
}

/// Why a send failed, which decides what happens next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendError {
    /// Try again later: connection refused or dropped, timeouts, 4xx replies.
    Transient(String),
    /// The server refused this recipient or message for good (5xx): do not retry.
    Permanent(String),
    /// Our own configuration is wrong (authentication refused, TLS failure): keep retrying and say so.
    Configuration(String),
}

/// The longest wait between two attempts.
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(3600);

/// How long to wait before retrying: `base x 2^(attempt-1)`, capped at an hour, times `jitter`.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    pub base: Duration,
    /// Drawn by the caller from 0.75..1.25, so that the retries of a burst spread out.
    pub jitter: f64,
}

impl Backoff {
    /// The wait after attempt number `attempt` (1 for the first) failed.
    pub fn after(self, attempt: i32) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32 << attempt.clamp(1, 20).saturating_sub(1).min(20) as u32);
        exp.min(MAX_RETRY_DELAY).mul_f64(self.jitter)
    }
}

/// Past when retrying a delivery is pointless.
#[derive(Clone, Copy, Debug)]
pub struct Deadline {
    /// The delivery's own limit for a mail server that keeps failing.
    pub give_up_at: DateTime<Utc>,
    /// When the email itself becomes useless: an invite's expiry; for other emails, `give_up_at`.
    pub useless_at: DateTime<Utc>,
}

/// What follows a failed send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NextStep {
    /// Send again after `delay`, recording `error` meanwhile.
    Retry { error: String, delay: Duration },
    /// Stop trying: the delivery failed, for this reason.
    Fail(String),
}

/// Decides what follows a send that failed on its `attempts`-th attempt. A refusal is final; a
/// transient failure is retried until the next attempt would fall past the delivery's give-up time;
/// a failure of our own configuration is retried for as long as the email is still of use.
pub fn next_step(
    error: &SendError,
    attempts: i32,
    now: DateTime<Utc>,
    deadline: Deadline,
    backoff: Backoff,
) -> NextStep {
    let delay = backoff.after(attempts);
    let too_late = |limit| now + chrono::Duration::from_std(delay).unwrap_or_default() > limit;
    match error {
        SendError::Permanent(e) => NextStep::Fail(e.clone()),
        SendError::Transient(e) if too_late(deadline.give_up_at) => {
            NextStep::Fail(format!("gave up after {attempts} attempts: {e}"))
        }
        SendError::Configuration(e) if too_late(deadline.useless_at) => {
            NextStep::Fail(format!("expired before the mail server accepted it: {e}"))
        }
        SendError::Transient(e) | SendError::Configuration(e) => NextStep::Retry {
            error: e.clone(),
            delay,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_addresses_and_normalizes() {
        let a = EmailAddress::parse("  Ada.Lovelace@Example.COM ").unwrap();
        assert_eq!(a.as_str(), "Ada.Lovelace@Example.COM");
        assert_eq!(a.normalized(), "ada.lovelace@example.com");
        assert_eq!(a.domain(), "example.com");
        assert!(EmailAddress::parse("x+tag@sub.partner.example").is_ok());
    }

    #[test]
    fn refuses_malformed_and_injected_addresses() {
        for bad in [
            "",
            "plain",
            "a@",
            "@b.com",
            "a b@c.com",
            "a@b.com\r\nBcc: x@y.com",
            "a@b.com\nX: y",
            "<a@b.com>",
            "a@@b.com",
            "a@nodot",
            "\u{0430}dmin@acme.example",
            "admin@\u{0430}cme.example",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad:?} accepted");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(EmailAddress::parse(&long).is_err());
    }

    #[test]
    fn refuses_an_at_sign_in_a_quoted_local_part() {
        // Read by its first `@` this is an acme.example (internal) address, by its last an external one.
        for bad in [
            "\"bob@acme.example@\"@evil.example",
            "\"bob@acme.example\"@evil.example",
            "\"a\\@b\"@evil.example",
        ] {
            let err = EmailAddress::parse(bad).expect_err(bad);
            assert!(err.contains("`@` before the domain"), "{bad:?}: {err}");
        }
        // A quoted local part without `@` is still an address.
        let ok = EmailAddress::parse("\"bob.smith\"@partner.example").unwrap();
        assert_eq!(ok.domain(), "partner.example");
    }

    mod retries {
        use super::super::*;
        use chrono::TimeZone;

        fn now() -> DateTime<Utc> {
            Utc.with_ymd_and_hms(2026, 12, 4, 9, 30, 0).unwrap()
        }

        fn even(base_secs: u64) -> Backoff {
            Backoff {
                base: Duration::from_secs(base_secs),
                jitter: 1.0,
            }
        }

        fn deadline(give_up_in: i64, useless_in: i64) -> Deadline {
            Deadline {
                give_up_at: now() + chrono::Duration::seconds(give_up_in),
                useless_at: now() + chrono::Duration::seconds(useless_in),
            }
        }

        fn transient() -> SendError {
            SendError::Transient("421 try later".into())
        }

        fn configuration() -> SendError {
            SendError::Configuration("535 authentication failed".into())
        }

        #[test]
        fn backoff_doubles_from_the_base_and_is_capped_at_an_hour() {
            let b = even(30);
            assert_eq!(b.after(1), Duration::from_secs(30));
            assert_eq!(b.after(2), Duration::from_secs(60));
            assert_eq!(b.after(3), Duration::from_secs(120));
            // An attempt count below one is the first attempt's wait.
            assert_eq!(b.after(0), Duration::from_secs(30));
            assert_eq!(b.after(-5), Duration::from_secs(30));
            assert_eq!(b.after(8), MAX_RETRY_DELAY);
            assert_eq!(b.after(i32::MAX), MAX_RETRY_DELAY);
            let jittered = Backoff { jitter: 0.75, ..b };
            assert_eq!(jittered.after(1), Duration::from_millis(22_500));
            assert_eq!(
                Backoff { jitter: 1.25, ..b }.after(30),
                MAX_RETRY_DELAY.mul_f64(1.25)
            );
        }

        #[test]
        fn a_refusal_is_final_at_once() {
            let e = SendError::Permanent("550 no such user".into());
            assert_eq!(
                next_step(&e, 1, now(), deadline(3600, 3600), even(30)),
                NextStep::Fail("550 no such user".into())
            );
        }

        #[test]
        fn a_transient_failure_is_retried_after_the_backoff() {
            assert_eq!(
                next_step(&transient(), 2, now(), deadline(3600, 0), even(30)),
                NextStep::Retry {
                    error: "421 try later".into(),
                    delay: Duration::from_secs(60),
                }
            );
        }

        #[test]
        fn a_transient_failure_gives_up_when_the_next_attempt_falls_past_the_give_up_time() {
            // Exactly at the give-up time is still in time; one second past it is not.
            assert!(matches!(
                next_step(&transient(), 2, now(), deadline(60, 3600), even(30)),
                NextStep::Retry { .. }
            ));
            assert_eq!(
                next_step(&transient(), 2, now(), deadline(59, 3600), even(30)),
                NextStep::Fail("gave up after 2 attempts: 421 try later".into())
            );
        }

        #[test]
        fn a_configuration_failure_is_retried_while_the_email_is_of_use() {
            // The give-up time does not stop it; the email's usefulness does.
            assert_eq!(
                next_step(&configuration(), 3, now(), deadline(0, 120), even(30)),
                NextStep::Retry {
                    error: "535 authentication failed".into(),
                    delay: Duration::from_secs(120),
                }
            );
            assert_eq!(
                next_step(&configuration(), 3, now(), deadline(3600, 119), even(30)),
                NextStep::Fail(
                    "expired before the mail server accepted it: 535 authentication failed".into()
                )
            );
        }
    }
}
