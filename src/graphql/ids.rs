//! Global object ids (Relay's Global Object Identification): every object with an identity answers
//! an `id` that says its type, so `node(id:)` can find it again and a normalized client cache
//! (Relay, Apollo) never mixes a user with a site that happens to share a key.
//!
//! An id is the URL-safe base64 of `Type:key` (`VXNlcjo...` for `User:<uuid>`): opaque to clients,
//! who must not build or parse them, and stable across releases. Inputs still take the bare UUIDs
//! of earlier releases for one release (see CHANGELOG.md); a global id of another type is answered
//! exactly like an id that does not exist.

use crate::error::{AppError, AppResult};
use async_graphql::ID;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use uuid::Uuid;

/// The types a global id can name: every type that implements `Node`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Organization,
    Site,
    Space,
    Page,
    User,
    Invite,
    Group,
    AuditEvent,
    BulkInvite,
    Session,
    ApiToken,
    WebhookEndpoint,
    WebhookDelivery,
}

impl Kind {
    pub const ALL: [Kind; 13] = [
        Kind::Organization,
        Kind::Site,
        Kind::Space,
        Kind::Page,
        Kind::User,
        Kind::Invite,
        Kind::Group,
        Kind::AuditEvent,
        Kind::BulkInvite,
        Kind::Session,
        Kind::ApiToken,
        Kind::WebhookEndpoint,
        Kind::WebhookDelivery,
    ];

    /// The GraphQL type the id names (and the prefix inside it).
    pub fn type_name(self) -> &'static str {
        match self {
            Kind::Organization => "Organization",
            Kind::Site => "Site",
            Kind::Space => "Space",
            Kind::Page => "Page",
            Kind::User => "User",
            Kind::Invite => "Invite",
            Kind::Group => "Group",
            Kind::AuditEvent => "AuditEvent",
            Kind::BulkInvite => "BulkInvite",
            Kind::Session => "Session",
            Kind::ApiToken => "ApiToken",
            Kind::WebhookEndpoint => "WebhookEndpoint",
            Kind::WebhookDelivery => "WebhookDelivery",
        }
    }

    /// How a `NOT_FOUND` message names it.
    pub fn noun(self) -> &'static str {
        match self {
            Kind::AuditEvent => "Audit event",
            Kind::BulkInvite => "Bulk invite",
            Kind::ApiToken => "API token",
            Kind::WebhookEndpoint => "Webhook endpoint",
            Kind::WebhookDelivery => "Webhook delivery",
            k => k.type_name(),
        }
    }

    /// The kind an audit event's `target_type` names (`"bulk_invite"`), if a `Node` stands for it.
    pub fn of_audit_target(target_type: &str) -> Option<Kind> {
        Some(match target_type {
            "organization" => Kind::Organization,
            "site" => Kind::Site,
            "space" => Kind::Space,
            "page" => Kind::Page,
            "user" => Kind::User,
            "invite" => Kind::Invite,
            "group" => Kind::Group,
            "bulk_invite" => Kind::BulkInvite,
            _ => return None,
        })
    }

    /// The kind a resolver names by its type or its noun (`"Site"`, `"Bulk invite"`); `None` for
    /// ids that name no object (a sign-in challenge, a policy review), which stay bare UUIDs.
    pub fn named(name: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.type_name() == name || k.noun() == name)
    }
}

/// The global id of the object of type `kind` with this key (a UUID, or a number for audit events).
pub fn global(kind: Kind, key: impl std::fmt::Display) -> ID {
    ID(URL_SAFE_NO_PAD.encode(format!("{}:{key}", kind.type_name())))
}

/// The type and key a global id names; `None` when it is not one of ours.
pub fn decode(id: &str) -> Option<(Kind, String)> {
    let bytes = URL_SAFE_NO_PAD.decode(id).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (name, key) = text.split_once(':')?;
    let kind = Kind::ALL.into_iter().find(|k| k.type_name() == name)?;
    Some((kind, key.to_owned()))
}

/// The UUID an input id names, for an object of type `kind`: a global id of that type, or (for one
/// release) a bare UUID. Anything else, a global id of another type included, is `NOT_FOUND`.
pub fn uuid_of(id: &str, kind: Kind) -> AppResult<Uuid> {
    if let Ok(bare) = Uuid::try_parse(id) {
        return Ok(bare);
    }
    match decode(id) {
        Some((k, key)) if k == kind => {
            Uuid::try_parse(&key).map_err(|_| AppError::NotFound(kind.noun()))
        }
        _ => Err(AppError::NotFound(kind.noun())),
    }
}

/// The number an audit event's id names (a global id, or a bare number for one release).
pub fn audit_event_of(id: &str) -> AppResult<i64> {
    if let Ok(n) = id.parse::<i64>() {
        return Ok(n);
    }
    match decode(id) {
        Some((Kind::AuditEvent, key)) => key
            .parse()
            .map_err(|_| AppError::NotFound(Kind::AuditEvent.noun())),
        _ => Err(AppError::NotFound(Kind::AuditEvent.noun())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_global_id_round_trips_and_says_its_type() {
        let u = Uuid::new_v4();
        for kind in Kind::ALL {
            let id = global(kind, u);
            assert_eq!(decode(&id), Some((kind, u.to_string())));
            assert_eq!(uuid_of(&id, kind).unwrap(), u);
            assert!(!id.contains(&u.to_string()), "opaque, not the key in clear");
        }
    }

    #[test]
    fn an_id_of_another_type_is_not_found() {
        let u = Uuid::new_v4();
        let site = global(Kind::Site, u);
        assert!(matches!(
            uuid_of(&site, Kind::User),
            Err(AppError::NotFound("User"))
        ));
        assert!(matches!(
            uuid_of("not an id", Kind::Site),
            Err(AppError::NotFound("Site"))
        ));
        assert!(matches!(
            uuid_of(&global(Kind::Site, "nope"), Kind::Site),
            Err(AppError::NotFound("Site"))
        ));
    }

    #[test]
    fn bare_uuids_of_the_last_release_are_still_taken() {
        let u = Uuid::new_v4();
        assert_eq!(uuid_of(&u.to_string(), Kind::Invite).unwrap(), u);
        assert_eq!(audit_event_of("42").unwrap(), 42);
        assert_eq!(audit_event_of(&global(Kind::AuditEvent, 42)).unwrap(), 42);
    }

    #[test]
    fn every_kind_is_named_by_its_type_and_its_noun() {
        for kind in Kind::ALL {
            assert_eq!(Kind::named(kind.type_name()), Some(kind));
            assert_eq!(Kind::named(kind.noun()), Some(kind));
        }
        assert_eq!(Kind::named("Challenge"), None);
    }
}
