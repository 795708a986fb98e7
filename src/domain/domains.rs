//! Which email domains may be invited as guests: an organization keeps an allow list or a block list
//! of patterns (`example.com`, or `*.example.com` for its subdomains).

/// How the organization's list is read.
// Stored in `organizations.guest_domain_mode`, mapped in `super::status`.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, async_graphql::Enum, diesel::AsExpression, diesel::FromSqlRow,
)]
#[diesel(sql_type = diesel::sql_types::Text)]
pub enum DomainMode {
    /// No rule: any domain may be invited.
    None,
    /// Only matching domains may be invited.
    Allow,
    /// Matching domains may not be invited.
    Block,
}

/// A pattern as stored: lower case; `*.` only as a prefix, followed by a domain with a dot.
pub fn parse_pattern(raw: &str) -> Result<String, String> {
    let p = raw.trim().trim_end_matches('.').to_lowercase();
    let domain = p.strip_prefix("*.").unwrap_or(&p);
    let ok = domain.contains('.')
        && domain.len() <= 253
        && domain.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if ok {
        Ok(p)
    } else {
        Err(format!("{raw:?} is not a domain or *.domain pattern"))
    }
}

/// `*.example.com` matches `a.example.com` and `a.b.example.com`, not `example.com`.
pub fn matches(pattern: &str, domain: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(suffix) => domain
            .strip_suffix(suffix)
            .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
        None => pattern == domain,
    }
}

/// Whether an address's domain may be invited under the rules.
pub fn allowed(mode: DomainMode, patterns: &[String], domain: &str) -> bool {
    let hit = patterns.iter().any(|p| matches(p, domain));
    match mode {
        DomainMode::None => true,
        DomainMode::Allow => hit,
        DomainMode::Block => !hit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_subdomains_only() {
        assert!(matches("*.partner.example", "eu.partner.example"));
        assert!(matches("*.partner.example", "a.eu.partner.example"));
        assert!(!matches("*.partner.example", "partner.example"));
        assert!(!matches("*.partner.example", "evilpartner.example"));
        assert!(matches("partner.example", "partner.example"));
        assert!(!matches("partner.example", "eu.partner.example"));
    }

    #[test]
    fn modes_allow_or_block() {
        let list = vec!["*.partner.example".to_string()];
        assert!(allowed(DomainMode::Allow, &list, "eu.partner.example"));
        assert!(!allowed(DomainMode::Allow, &list, "other.example"));
        assert!(!allowed(DomainMode::Block, &list, "eu.partner.example"));
        assert!(allowed(DomainMode::Block, &list, "other.example"));
        assert!(allowed(DomainMode::None, &list, "anything.example"));
    }

    #[test]
    fn patterns_are_checked() {
        assert_eq!(
            parse_pattern(" *.Partner.Example. ").unwrap(),
            "*.partner.example"
        );
        for bad in ["*", "*.com.", "a*.b.com", "exa mple.com", "-a.com", "com"] {
            assert!(parse_pattern(bad).is_err(), "{bad}");
        }
    }
}
