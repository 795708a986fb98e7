//! Email addresses, parsed once at the boundary (parse, don't validate).

use std::fmt;

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
}
