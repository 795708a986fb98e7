//! Webhooks, the pure part: the event catalogue (which audit actions go out, under which stable
//! dotted name), the versioned JSON payload an audit event becomes, the Standard Webhooks signature,
//! and the retry schedule. The store writes one delivery per event and matching endpoint in the
//! transaction of the change (`store::webhooks`); a worker sends it (`jobs::webhooks`).
//!
//! The stream is the audit trail, out: every event is an audit event of the organization, and its
//! payload says only what the audit event says (ids and the changed fields), never a token, a code
//! or a secret.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::time::Duration;
use uuid::Uuid;

/// The version of the payload format every event carries in `version`. A field may be added to a
/// version; removing or renaming one, or changing what it means, makes a new version.
pub const PAYLOAD_VERSION: u32 = 1;

/// Bytes of a signing secret (256 bits), shown once as `whsec_` and their base64.
pub const SECRET_BYTES: usize = 32;

/// How long the secret before a rotation still signs, beside the new one.
pub const ROTATION_OVERLAP_HOURS: i64 = 24;

/// Endpoints per organization: every audited change writes one delivery per matching endpoint in its
/// own transaction, so their number is bounded.
pub const MAX_ENDPOINTS: i64 = 20;

/// Longest accepted endpoint URL.
pub const MAX_URL_CHARS: usize = 2048;

/// Longest endpoint description.
pub const MAX_DESCRIPTION_CHARS: usize = 500;

/// How much of a receiver's answer is kept for the delivery log.
pub const RESPONSE_PREFIX_CHARS: usize = 1024;

macro_rules! catalogue {
    ($( $(#[doc = $doc:literal])* $variant:ident = $name:literal <= $action:literal, )*) => {
        /// An event a webhook endpoint can subscribe to. Each is an audit action that changes
        /// access, sent under a stable dotted name (the payload's `type`, e.g. `invite.created`);
        /// the README's "Webhooks" section shows an example payload of each.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, async_graphql::Enum)]
        #[graphql(name = "WebhookEventType")]
        pub enum EventType {
            $( $(#[doc = $doc])* $variant, )*
        }

        impl EventType {
            /// Every event type, in catalogue order.
            pub const ALL: &'static [EventType] = &[ $(EventType::$variant,)* ];

            /// The stable dotted name: the payload's `type`, and what endpoints store.
            pub fn name(self) -> &'static str {
                match self { $(EventType::$variant => $name,)* }
            }

            /// The audit action this event reports.
            pub fn audit_action(self) -> &'static str {
                match self { $(EventType::$variant => $action,)* }
            }

            /// What the event means, in words (the enum value's description).
            pub fn description(self) -> &'static str {
                match self { $(EventType::$variant => concat!($($doc, "\n"),*),)* }
            }
        }
    };
}

catalogue! {
    /// An invite was created (one event per address of `inviteUsers`, or per row of a bulk file).
    InviteCreated = "invite.created" <= "invite.create",
    /// An invite was sent again with a new link and expiry.
    InviteResent = "invite.resent" <= "invite.resend",
    /// An invite was revoked; its link stopped working.
    InviteRevoked = "invite.revoked" <= "invite.revoke",
    /// An invite was accepted: `data.user` is the account that now holds the access.
    InviteAccepted = "invite.accepted" <= "invite.accept",
    /// An invite passed its expiry without being accepted (recorded by the scheduler, once per
    /// expiry).
    InviteExpired = "invite.expired" <= "invite.expire",
    /// The invite's email could not be delivered, for good (refused, or retries used up).
    InviteDeliveryFailed = "invite.delivery_failed" <= "invite.deliveryFailed",
    /// A person's effective role on a site changed, whatever caused it (`data.cause`: the
    /// operation, e.g. `role.set`, `invite.accept`, `group.addMembers`, `access.remove`).
    RoleChanged = "role.changed" <= "access.change",
    /// An admin took a person's access to a site away (`removeProductAccess`).
    AccessRemoved = "access.removed" <= "access.remove",
    /// An admin removed a guest (`removeGuests`), with the reason given.
    GuestRemoved = "guest.removed" <= "guest.remove",
    /// A guest left a site by themselves.
    GuestLeft = "guest.left" <= "guest.leave",
    /// A guest's access reached its end date and was removed by the scheduler.
    AccessEnded = "access.ended" <= "guest.lifetimeEnded",
    /// A guest's end of access moved (`extendGuestAccess`).
    AccessExtended = "access.extended" <= "guest.extend",
    /// A guest and their sponsor were reminded that the guest's access ends soon.
    AccessEndingSoon = "access.ending_soon" <= "guest.lifetimeReminder",
    /// A guest was put in a space (or moved to another).
    GuestSpaceAssigned = "guest.space_assigned" <= "guest.assignSpace",
    /// A guest was taken out of their space; they stay a guest, reaching no content.
    GuestSpaceUnassigned = "guest.space_unassigned" <= "guest.unassignSpace",
    /// A guest's sponsor changed.
    GuestSponsorChanged = "guest.sponsor_changed" <= "guest.setSponsor",
    /// A guest asked their sponsor for more time.
    GuestExtensionRequested = "guest.extension_requested" <= "guest.requestExtension",
    /// A group was created.
    GroupCreated = "group.created" <= "group.create",
    /// A group was renamed.
    GroupRenamed = "group.renamed" <= "group.rename",
    /// A group was deleted (its members' roles change with it: see `role.changed`).
    GroupDeleted = "group.deleted" <= "group.delete",
    /// A group's role on a site was given, changed or taken away.
    GroupRoleChanged = "group.role_changed" <= "group.setSiteRole",
    /// A person joined a group (one event per person).
    GroupMemberAdded = "group.member_added" <= "group.addMembers",
    /// A person left a group (one event per person).
    GroupMemberRemoved = "group.member_removed" <= "group.removeMembers",
    /// A person became an organization or site admin.
    AdminGranted = "admin.granted" <= "admin.grant",
    /// A person stopped being an organization or site admin.
    AdminRevoked = "admin.revoked" <= "admin.revoke",
    /// A person became an admin of a space.
    SpaceAdminAdded = "space_admin.added" <= "spaceAdmin.add",
    /// A person stopped being an admin of a space.
    SpaceAdminRemoved = "space_admin.removed" <= "spaceAdmin.remove",
    /// A site's limits or lifetimes changed.
    SiteSettingsChanged = "site.settings_changed" <= "site.settings",
    /// The external user security policy changed (two-step codes, re-verification, API tokens,
    /// idle timeout).
    PolicyChanged = "policy.changed" <= "policy.update",
    /// The guest domain rules (allow or block list) changed.
    DomainRulesChanged = "policy.domain_rules_changed" <= "guestDomainRules.set",
    /// A domain was verified: its people are internal from now on.
    VerifiedDomainAdded = "verified_domain.added" <= "domain.add",
    /// A verified domain was removed: its people are external from now on.
    VerifiedDomainRemoved = "verified_domain.removed" <= "domain.remove",
    /// Every session of the organization's external users was ended.
    ExternalSessionsReset = "external_sessions.reset" <= "externalSessions.reset",
    /// An external user's verification period ends soon, and they were emailed a link to verify
    /// again.
    ReverificationDue = "reverification.due" <= "user.reverificationDue",
    /// An external user verified their email address again.
    ReverificationCompleted = "reverification.completed" <= "user.reverify",
    /// An account was deactivated: it lost all access and its sessions ended.
    UserDeactivated = "user.deactivated" <= "user.deactivate",
    /// A deactivated account was reactivated.
    UserReactivated = "user.reactivated" <= "user.reactivate",
}

impl EventType {
    /// The event type a stored name (`invite.created`) stands for.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|t| t.name() == name)
    }

    /// The event an audit action goes out as, if it goes out at all (sign-ins, tokens, content and
    /// the like do not).
    pub fn of_audit(action: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|t| t.audit_action() == action)
    }
}

/// An audit event as the payload sees it (the store's row, borrowed).
#[derive(Clone, Copy, Debug)]
pub struct AuditRecord<'a> {
    pub id: i64,
    pub organization_id: Uuid,
    pub actor_id: Option<Uuid>,
    pub action: &'a str,
    pub target_type: &'a str,
    pub target_id: &'a str,
    pub site_id: Option<Uuid>,
    pub before: Option<&'a Value>,
    pub after: Option<&'a Value>,
    pub created_at: DateTime<Utc>,
}

/// The object an event is about.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Target {
    /// The kind of object, in lower case (`invite`, `user`, `group`, `site`, `space`,
    /// `organization`, `domain`).
    #[serde(rename = "type")]
    pub kind: String,
    /// Its global id, as the GraphQL API answers it (`node(id:)` finds it); for a `domain`, the
    /// domain name.
    pub id: String,
}

/// Who made the change.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Actor {
    /// The person's global id (a `User`).
    pub id: String,
}

/// The JSON body of a webhook: what happened, to what, by whom, and the changed fields.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Payload {
    /// `evt_` and the audit event's number: the same for every endpoint the event goes to.
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: &'static str,
    pub version: u32,
    pub occurred_at: DateTime<Utc>,
    /// The organization's global id.
    pub organization_id: String,
    /// The site's global id; null when the change concerns no one site.
    pub site_id: Option<String>,
    /// Null when Guestpass itself made the change (the scheduler, a worker).
    pub actor: Option<Actor>,
    pub target: Target,
    /// The fields of the object after the change (before, for a deletion), and under `changes` the
    /// earlier value of each field that changed: `{ "changes": { "role": { "from": "GUEST" } } }`.
    pub data: Value,
}

impl Payload {
    /// The body as sent and signed.
    pub fn to_body(&self) -> String {
        serde_json::to_string(self).expect("a payload always serializes")
    }

    /// Indented, for people (the README's examples).
    pub fn to_pretty(&self) -> String {
        serde_json::to_string_pretty(self).expect("a payload always serializes")
    }
}

/// The GraphQL global id of an object (`base64url("Type:key")`, unpadded): the format of
/// `graphql::ids`, which a test holds this to. Payloads carry the ids the API answers, so a receiver
/// can look the object up with `node(id:)`.
pub fn node_id(type_name: &str, key: impl std::fmt::Display) -> String {
    URL_SAFE_NO_PAD.encode(format!("{type_name}:{key}"))
}

/// The GraphQL type of an audit target type, when a `Node` stands for it.
fn node_type(target_type: &str) -> Option<&'static str> {
    Some(match target_type {
        "organization" => "Organization",
        "site" => "Site",
        "space" => "Space",
        "page" => "Page",
        "user" => "User",
        "invite" => "Invite",
        "group" => "Group",
        "bulk_invite" => "BulkInvite",
        _ => return None,
    })
}

/// The payload an audit event goes out as; `None` when its action is not in the catalogue.
pub fn payload(r: &AuditRecord<'_>) -> Option<Payload> {
    let event = EventType::of_audit(r.action)?;
    let target = Target {
        kind: r.target_type.to_string(),
        id: match node_type(r.target_type) {
            Some(t) => node_id(t, r.target_id),
            None => r.target_id.to_string(),
        },
    };
    Some(Payload {
        id: format!("evt_{}", r.id),
        event_type: event.name(),
        version: PAYLOAD_VERSION,
        occurred_at: r.created_at,
        organization_id: node_id("Organization", r.organization_id),
        site_id: r.site_id.map(|s| node_id("Site", s)),
        actor: r.actor_id.map(|a| Actor {
            id: node_id("User", a),
        }),
        target,
        data: data(event, r.before, r.after),
    })
}

/// A key whose value could be a credential: never sent, whatever an audit event holds.
pub fn is_sensitive(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["token", "secret", "password", "hash", "nonce", "code"]
        .iter()
        .any(|s| k.contains(s))
}

/// The GraphQL type of the ids a field holds (one id, or a list of them).
fn id_kind(key: &str) -> Option<&'static str> {
    Some(match key {
        "space" => "Space",
        "user" | "sponsor" | "admin" => "User",
        "group" | "groupsSkipped" | "groupsLeft" => "Group",
        "invitesRevoked" => "Invite",
        _ => return None,
    })
}

/// A field's name and value as sent: ids become global ids, and a few audit keys get the name the
/// catalogue documents.
fn field(event: EventType, key: &str, value: &Value) -> Option<(String, Value)> {
    if is_sensitive(key) {
        return None;
    }
    let renamed = match (event, key) {
        // The role change's `detail` is the operation's own bookkeeping; `cause` names it.
        (EventType::RoleChanged, "detail") => return None,
        (EventType::RoleChanged, "by") => "cause",
        (EventType::ReverificationCompleted, "by") => "method",
        // `extendGuestAccess` records the earlier end inside `after`: it goes to `changes`.
        (EventType::AccessExtended, "before") => return None,
        _ => key,
    };
    let value = match (event, key) {
        (EventType::AdminGranted | EventType::AdminRevoked, "role") => match value.as_str() {
            Some("OrgAdmin") => json!("ORG_ADMIN"),
            Some("SiteAdmin") => json!("SITE_ADMIN"),
            _ => value.clone(),
        },
        _ => match id_kind(key) {
            Some(kind) => global_ids(kind, value),
            None => value.clone(),
        },
    };
    Some((renamed.to_string(), value))
}

/// A UUID (or a list of them) as global ids of `kind`; anything else as it is.
fn global_ids(kind: &str, value: &Value) -> Value {
    match value {
        Value::String(s) => match Uuid::try_parse(s) {
            Ok(u) => json!(node_id(kind, u)),
            Err(_) => value.clone(),
        },
        Value::Array(items) => Value::Array(items.iter().map(|v| global_ids(kind, v)).collect()),
        _ => value.clone(),
    }
}

/// The event's `data`: the state after (before, for a deletion), and the earlier value of each
/// field that changed.
fn data(event: EventType, before: Option<&Value>, after: Option<&Value>) -> Value {
    let (state, previous) = match (before, after) {
        (b, Some(a)) => (a, b),
        (Some(b), None) => (b, None),
        (None, None) => return json!({}),
    };
    let mut out = Map::new();
    for (k, v) in state.as_object().into_iter().flatten() {
        if let Some((key, value)) = field(event, k, v) {
            out.insert(key, value);
        }
    }
    let mut changes = Map::new();
    for (k, old) in previous.and_then(Value::as_object).into_iter().flatten() {
        match (state.get(k), field(event, k, old)) {
            (Some(new), Some((key, old_value))) if new != old => {
                changes.insert(key, json!({ "from": old_value }));
            }
            _ => {}
        }
    }
    if event == EventType::AccessExtended
        && let Some(old) = state.get("before")
    {
        changes.insert("endsAt".into(), json!({ "from": old }));
    }
    if !changes.is_empty() {
        out.insert("changes".into(), Value::Object(changes));
    }
    Value::Object(out)
}

/// The `webhook-id` of a delivery: the same on every attempt and redelivery of one event to one
/// endpoint, so a receiver de-duplicates by it.
pub fn message_id(delivery: Uuid) -> String {
    format!("msg_{}", delivery.simple())
}

/// A signing secret as shown once to the admin (Standard Webhooks' `whsec_` and base64).
pub fn secret_text(secret: &[u8]) -> String {
    format!("whsec_{}", STANDARD.encode(secret))
}

/// The `webhook-signature` header: `v1,<base64 HMAC-SHA256>` for each secret that signs (two,
/// space-separated, while a rotation's overlap lasts), computed by the Standard Webhooks authors'
/// own implementation over `<webhook-id>.<webhook-timestamp>.<body>`.
pub fn signature(secrets: &[&[u8]], msg_id: &str, timestamp: i64, body: &str) -> String {
    secrets
        .iter()
        .map(|s| {
            standardwebhooks::Webhook::from_bytes(s.to_vec())
                .and_then(|w| w.sign(msg_id, timestamp, body.as_bytes()))
                // Both only fail on a body that is not UTF-8, which a `str` never is.
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether the secret before the last rotation still signs at `now`.
pub fn previous_still_signs(previous_until: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    previous_until.is_some_and(|until| now < until)
}

/// An endpoint URL as given: trimmed, at most [`MAX_URL_CHARS`], absolute, without credentials or a
/// fragment. Whether its scheme and addresses are allowed is the outbound check's to say.
pub fn validate_url(url: &str) -> Result<String, String> {
    let url = url.trim();
    if url.is_empty() {
        return Err("must not be empty".into());
    }
    if url.chars().count() > MAX_URL_CHARS {
        return Err(format!("must be at most {MAX_URL_CHARS} characters"));
    }
    let parsed = url::Url::parse(url).map_err(|e| format!("is not an absolute URL ({e})"))?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        // It would be stored and shown back in plain text: a receiver authenticates us by the
        // signature instead.
        return Err("must not contain a user name or password".into());
    }
    if parsed.fragment().is_some() {
        return Err("must not contain a fragment (`#...`), which is never sent".into());
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("must name a host".into());
    }
    Ok(url.to_string())
}

/// The events an endpoint subscribes to: at least one; each once, in catalogue order.
pub fn validate_events(events: &[EventType]) -> Result<Vec<EventType>, String> {
    if events.is_empty() {
        return Err("must name at least one event type".into());
    }
    let mut out = events.to_vec();
    out.sort();
    out.dedup();
    Ok(out)
}

/// An endpoint's description: one line, at most [`MAX_DESCRIPTION_CHARS`]; empty is allowed.
pub fn validate_description(description: Option<&str>) -> Result<String, String> {
    match description.map(str::trim) {
        None | Some("") => Ok(String::new()),
        Some(d) => crate::domain::text::single_line(d, MAX_DESCRIPTION_CHARS),
    }
}

/// When failed deliveries are tried again: `first`, then four times longer each attempt, at most
/// `max` apart, each wait stretched or shrunk by up to a fifth (so the retries of a burst spread
/// out), for as long as the next attempt falls within `give_up_after` of the event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetrySchedule {
    pub first: Duration,
    pub max: Duration,
    pub give_up_after: Duration,
}

impl Default for RetrySchedule {
    /// 30 s, 2 min, 8 min, 32 min, 2 h 8 min, 8 h 32 min, then every 12 h, for 3 days: 12 attempts.
    fn default() -> Self {
        Self {
            first: Duration::from_secs(30),
            max: Duration::from_secs(12 * 3600),
            give_up_after: Duration::from_secs(3 * 24 * 3600),
        }
    }
}

/// Each wait grows by this factor.
pub const RETRY_FACTOR: u32 = 4;

impl RetrySchedule {
    /// The wait after the `attempts`-th attempt failed, before jitter.
    pub fn nominal_delay(&self, attempts: i32) -> Duration {
        let exponent = attempts.clamp(1, 16) as u32 - 1;
        self.first
            .saturating_mul(RETRY_FACTOR.saturating_pow(exponent))
            .min(self.max)
    }

    /// When to try a delivery again after its `attempts`-th attempt failed at `now`, or `None` when
    /// that would fall past `give_up_after` from `first_at` (the event): it has failed for good. The
    /// jitter is drawn from the delivery's id and the attempt, so the decision is repeatable.
    pub fn next_attempt(
        &self,
        delivery: Uuid,
        attempts: i32,
        now: DateTime<Utc>,
        first_at: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let wait = self
            .nominal_delay(attempts)
            .mul_f64(jitter(delivery, attempts));
        let next = now + chrono::Duration::from_std(wait).ok()?;
        let limit = first_at + chrono::Duration::from_std(self.give_up_after).ok()?;
        (next <= limit).then_some(next)
    }
}

/// A factor in 0.8..=1.2 from the delivery and attempt (splitmix64 of both).
fn jitter(delivery: Uuid, attempts: i32) -> f64 {
    let (hi, lo) = delivery.as_u64_pair();
    let mut z = (hi ^ lo ^ (attempts as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    0.8 + 0.4 * ((z >> 11) as f64 / (1u64 << 53) as f64)
}

/// What follows an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A 2xx answer: delivered (and a failing endpoint is healthy again).
    Delivered,
    /// Try again at this time.
    Retry(DateTime<Utc>),
    /// Retries used up: the delivery failed, and its endpoint is failing.
    Failed,
}

/// Decides what follows the `attempts`-th attempt of a delivery made at `first_at`.
pub fn after_attempt(
    schedule: &RetrySchedule,
    succeeded: bool,
    delivery: Uuid,
    attempts: i32,
    now: DateTime<Utc>,
    first_at: DateTime<Utc>,
) -> Outcome {
    if succeeded {
        return Outcome::Delivered;
    }
    match schedule.next_attempt(delivery, attempts, now, first_at) {
        Some(at) => Outcome::Retry(at),
        None => Outcome::Failed,
    }
}

/// An example of every event, built from an audit event of the shape the store records: the
/// README's catalogue is rendered from these (a test keeps it current), and the tests check that
/// no payload carries a credential.
pub mod examples {
    use super::*;
    use crate::domain::status as S;

    const ORG: Uuid = Uuid::from_u128(0x0b5e_0000_0000_4000_8000_0000_0000_0001);
    const SITE: Uuid = Uuid::from_u128(0x5175_0000_0000_4000_8000_0000_0000_0002);
    const ADMIN: Uuid = Uuid::from_u128(0xad31_0000_0000_4000_8000_0000_0000_0003);
    const GUEST: Uuid = Uuid::from_u128(0x6e57_0000_0000_4000_8000_0000_0000_0004);
    const INVITE: Uuid = Uuid::from_u128(0x1a71_0000_0000_4000_8000_0000_0000_0005);
    const SPACE: Uuid = Uuid::from_u128(0x5bac_0000_0000_4000_8000_0000_0000_0006);
    const OTHER_SPACE: Uuid = Uuid::from_u128(0x5bac_0000_0000_4000_8000_0000_0000_0007);
    const GROUP: Uuid = Uuid::from_u128(0x6a00_0000_0000_4000_8000_0000_0000_0008);

    /// The audit event an example of `event` is built from: target type and id, site, actor,
    /// before and after.
    pub struct Example {
        pub target_type: &'static str,
        pub target_id: String,
        pub site: Option<Uuid>,
        pub actor: Option<Uuid>,
        pub before: Option<Value>,
        pub after: Option<Value>,
    }

    fn invite(status: &str, expires: &str) -> Value {
        json!({ "email": "kim@partner.example", "role": "GUEST", "space": SPACE, "status": status,
                "expiresAt": expires })
    }

    fn removal(reason: Option<&str>, sessions: i64) -> Value {
        json!({ "groupsLeft": [GROUP], "invitesRevoked": [], "sessionsEnded": sessions,
                "reason": reason })
    }

    fn on(target_type: &'static str, id: impl ToString, site: Option<Uuid>) -> Example {
        Example {
            target_type,
            target_id: id.to_string(),
            site,
            actor: Some(ADMIN),
            before: None,
            after: None,
        }
    }

    fn with(mut e: Example, before: Option<Value>, after: Option<Value>) -> Example {
        e.before = before;
        e.after = after;
        e
    }

    /// The audit event behind the example of `event`.
    pub fn audit(event: EventType) -> Example {
        use EventType::*;
        let s = Some(SITE);
        let (inv, user, group) = (
            on("invite", INVITE, s),
            on("user", GUEST, s),
            on("group", GROUP, None),
        );
        let org = on("organization", ORG, None);
        let system = |mut e: Example| {
            e.actor = None;
            e
        };
        match event {
            InviteCreated => with(
                inv,
                None,
                Some(invite(
                    S::InviteStatus::Pending.as_str(),
                    "2026-12-20T09:30:00Z",
                )),
            ),
            InviteResent => with(
                inv,
                Some(invite(
                    S::InviteStatus::Expired.as_str(),
                    "2026-12-20T09:30:00Z",
                )),
                Some(invite(
                    S::InviteStatus::Pending.as_str(),
                    "2027-01-03T09:30:00Z",
                )),
            ),
            InviteRevoked => with(
                inv,
                Some(invite(
                    S::InviteStatus::Pending.as_str(),
                    "2026-12-20T09:30:00Z",
                )),
                Some(invite(
                    S::InviteStatus::Revoked.as_str(),
                    "2026-12-20T09:30:00Z",
                )),
            ),
            InviteAccepted => {
                let mut e = with(
                    inv,
                    Some(invite(
                        S::InviteStatus::Pending.as_str(),
                        "2026-12-20T09:30:00Z",
                    )),
                    Some(
                        json!({ "status": S::InviteStatus::Accepted.as_str(), "user": GUEST, "role": "GUEST",
                                 "groupsSkipped": [] }),
                    ),
                );
                e.actor = Some(GUEST);
                e
            }
            InviteExpired => system(with(
                inv,
                None,
                Some(invite(
                    S::InviteStatus::Expired.as_str(),
                    "2026-12-20T09:30:00Z",
                )),
            )),
            InviteDeliveryFailed => system(with(
                inv,
                None,
                Some(
                    json!({ "email": "kim@partner.example", "status": S::DeliveryStatus::Failed.as_str(), "attempts": 7 }),
                ),
            )),
            RoleChanged => with(
                user,
                Some(json!({ "role": null })),
                Some(
                    json!({ "role": "GUEST", "lostAccess": false, "by": "invite.accept",
                             "detail": { "invite": INVITE } }),
                ),
            ),
            AccessRemoved => with(user, None, Some(removal(None, 0))),
            GuestRemoved => with(user, None, Some(removal(Some("Project ended"), 2))),
            GuestLeft => {
                let mut e = with(user, None, Some(removal(None, 0)));
                e.actor = Some(GUEST);
                e
            }
            AccessEnded => system(with(user, None, Some(removal(None, 1)))),
            AccessExtended => with(
                user,
                None,
                Some(json!({ "before": "2026-12-31T00:00:00Z", "endsAt": "2027-03-31T00:00:00Z" })),
            ),
            AccessEndingSoon => system(with(
                user,
                None,
                Some(json!({ "endsAt": "2026-12-31T00:00:00Z" })),
            )),
            GuestSpaceAssigned => with(
                user,
                Some(json!({ "space": OTHER_SPACE })),
                Some(json!({ "space": SPACE })),
            ),
            GuestSpaceUnassigned => with(
                user,
                Some(json!({ "space": SPACE })),
                Some(json!({ "space": null })),
            ),
            GuestSponsorChanged => with(user, None, Some(json!({ "sponsor": ADMIN }))),
            GuestExtensionRequested => {
                let mut e = with(user, None, Some(json!({ "sponsor": ADMIN })));
                e.actor = Some(GUEST);
                e
            }
            GroupCreated => with(group, None, Some(json!({ "name": "Partner reviewers" }))),
            GroupRenamed => with(
                group,
                Some(json!({ "name": "Reviewers" })),
                Some(json!({ "name": "Partner reviewers" })),
            ),
            GroupDeleted => with(group, Some(json!({ "name": "Partner reviewers" })), None),
            GroupRoleChanged => {
                let mut e = with(
                    group,
                    Some(json!({ "role": null })),
                    Some(json!({ "role": "GUEST" })),
                );
                e.site = s;
                e
            }
            GroupMemberAdded | GroupMemberRemoved => {
                with(group, None, Some(json!({ "user": GUEST })))
            }
            AdminGranted => with(
                on("user", GUEST, s),
                None,
                Some(json!({ "role": "SiteAdmin", "granted": true })),
            ),
            AdminRevoked => with(
                on("user", GUEST, s),
                None,
                Some(json!({ "role": "SiteAdmin", "granted": false })),
            ),
            SpaceAdminAdded | SpaceAdminRemoved => {
                with(on("space", SPACE, s), None, Some(json!({ "user": GUEST })))
            }
            SiteSettingsChanged => with(
                on("site", SITE, s),
                Some(
                    json!({ "userLimit": 50, "guestRatio": 5, "inviteExpiryDays": 14,
                             "maxGuestLifetimeDays": null, "guestReminderDays": 5 }),
                ),
                Some(
                    json!({ "userLimit": 100, "guestRatio": 5, "inviteExpiryDays": 14,
                             "maxGuestLifetimeDays": 90, "guestReminderDays": 5 }),
                ),
            ),
            PolicyChanged => with(
                org,
                Some(
                    json!({ "twoStep": S::TwoStep::Off.as_str(), "reverificationIntervalMinutes": 43200,
                             "apiTokenAccess": S::ApiTokenAccess::Allowed.as_str(), "sessionIdleTimeoutMinutes": null }),
                ),
                Some(
                    json!({ "twoStep": S::TwoStep::Required.as_str(), "reverificationIntervalMinutes": 43200,
                             "apiTokenAccess": S::ApiTokenAccess::Allowed.as_str(), "sessionIdleTimeoutMinutes": 60 }),
                ),
            ),
            DomainRulesChanged => with(
                org,
                Some(json!({ "mode": S::DomainMode::None.as_str(), "domains": [] })),
                Some(
                    json!({ "mode": S::DomainMode::Allow.as_str(), "domains": ["partner.example", "*.partner.example"] }),
                ),
            ),
            VerifiedDomainAdded | VerifiedDomainRemoved => on("domain", "acme.example", None),
            ExternalSessionsReset => {
                with(org, None, Some(json!({ "sessionsEnded": 12, "people": 7 })))
            }
            ReverificationDue => system(with(
                on("user", GUEST, None),
                None,
                Some(json!({ "verifiedUntil": "2026-12-09T09:30:00Z" })),
            )),
            ReverificationCompleted => {
                let mut e = with(
                    on("user", GUEST, None),
                    Some(json!({ "verifiedAt": "2026-11-09T09:30:00Z" })),
                    Some(json!({ "verifiedAt": "2026-12-07T10:02:00Z", "by": "LINK" })),
                );
                e.actor = Some(GUEST);
                e
            }
            UserDeactivated => with(
                on("user", GUEST, None),
                None,
                Some(json!({ "status": S::UserStatus::Deactivated.as_str() })),
            ),
            UserReactivated => with(
                on("user", GUEST, None),
                None,
                Some(json!({ "status": S::UserStatus::Active.as_str() })),
            ),
        }
    }

    /// The example payload of `event`.
    pub fn payload(event: EventType) -> Payload {
        let e = audit(event);
        super::payload(&AuditRecord {
            id: 4211 + event as i64,
            organization_id: ORG,
            actor_id: e.actor,
            action: event.audit_action(),
            target_type: e.target_type,
            target_id: &e.target_id,
            site_id: e.site,
            before: e.before.as_ref(),
            after: e.after.as_ref(),
            created_at: "2026-12-06T09:30:00Z".parse().expect("a fixed time"),
        })
        .expect("every catalogued action has a payload")
    }

    /// The enum value that names `event` in GraphQL (`INVITE_CREATED`).
    pub fn graphql_name(event: EventType) -> &'static str {
        use async_graphql::resolver_utils::EnumType;
        EventType::items()
            .iter()
            .find(|i| i.value == event)
            .map_or("", |i| i.name)
    }

    /// The catalogue as the README shows it: one whole payload, then each event's name, meaning,
    /// target and an example of its `data`.
    pub fn render() -> String {
        let mut out = format!(
            "Every event has the same envelope; `data` depends on the type (an `invite.created`):\n\n\
             ```json\n{}\n```\n\n",
            payload(EventType::InviteCreated).to_pretty()
        );
        for event in EventType::ALL {
            let p = payload(*event);
            let by = match p.actor {
                Some(_) => "a person",
                None => "Guestpass itself (no `actor`)",
            };
            out.push_str(&format!(
                "- **`{}`** (`{}`, target `{}`, made by {by}): {}\n\n  ```json\n  {}\n  ```\n\n",
                event.name(),
                graphql_name(*event),
                p.target.kind,
                event
                    .description()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" "),
                serde_json::to_string(&json!({ "data": p.data })).expect("JSON")
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::status as S;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn names_are_unique_dotted_and_round_trip() {
        let mut names = std::collections::HashSet::new();
        let mut actions = std::collections::HashSet::new();
        for t in EventType::ALL {
            assert!(names.insert(t.name()), "{} twice", t.name());
            assert!(
                actions.insert(t.audit_action()),
                "{} twice",
                t.audit_action()
            );
            let (object, verb) = t.name().split_once('.').expect("dotted");
            assert!(!object.is_empty() && !verb.is_empty());
            assert!(
                t.name()
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '.' || c == '_'),
                "{}",
                t.name()
            );
            assert_eq!(EventType::parse(t.name()), Some(*t));
            assert_eq!(EventType::of_audit(t.audit_action()), Some(*t));
            assert!(!t.description().trim().is_empty());
        }
        assert_eq!(EventType::of_audit("login.success"), None);
        assert_eq!(EventType::of_audit("apiToken.create"), None);
        assert_eq!(EventType::parse("invite.create"), None);
    }

    /// Every action the issue names is in the catalogue, under the name it documents.
    #[test]
    fn the_catalogue_covers_the_access_changes_of_the_issue() {
        for name in [
            "invite.created",
            "invite.resent",
            "invite.revoked",
            "invite.accepted",
            "invite.expired",
            "invite.delivery_failed",
            "role.changed",
            "guest.space_assigned",
            "guest.space_unassigned",
            "guest.removed",
            "access.ended",
            "access.extended",
            "group.created",
            "group.member_added",
            "group.role_changed",
            "policy.changed",
            "reverification.due",
            "reverification.completed",
            "user.deactivated",
            "user.reactivated",
        ] {
            assert!(EventType::parse(name).is_some(), "{name} is missing");
        }
    }

    /// The global ids of payloads are those the GraphQL API answers.
    #[test]
    fn ids_are_the_apis_global_ids() {
        use crate::graphql::ids::{Kind, global};
        let u = Uuid::new_v4();
        for kind in Kind::ALL {
            assert_eq!(node_id(kind.type_name(), u), global(kind, u).to_string());
        }
        for (target, kind) in [
            ("invite", Kind::Invite),
            ("user", Kind::User),
            ("group", Kind::Group),
            ("site", Kind::Site),
            ("space", Kind::Space),
            ("organization", Kind::Organization),
            ("bulk_invite", Kind::BulkInvite),
        ] {
            assert_eq!(node_type(target), Some(kind.type_name()));
            assert_eq!(Kind::of_audit_target(target), Some(kind));
        }
    }

    fn keys(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    out.push(k.clone());
                    keys(v, out);
                }
            }
            Value::Array(a) => a.iter().for_each(|v| keys(v, out)),
            _ => {}
        }
    }

    #[test]
    fn no_payload_carries_a_credential() {
        for t in EventType::ALL {
            let body: Value = serde_json::from_str(&examples::payload(*t).to_body()).unwrap();
            let mut all = Vec::new();
            keys(&body, &mut all);
            for k in all {
                let l = k.to_ascii_lowercase();
                for bad in ["token", "secret", "code", "password", "hash", "nonce"] {
                    assert!(!l.contains(bad), "{}: key {k}", t.name());
                }
            }
        }
        // Whatever an audit event holds, such keys are dropped, at any depth of the top level.
        let after = json!({ "email": "a@b.example", "token": "gp_x", "tokenNonce": "ab",
                            "secret": "s", "passwordHash": "h", "code": "123456", "role": "USER" });
        let p = payload(&AuditRecord {
            id: 1,
            organization_id: Uuid::nil(),
            actor_id: None,
            action: "invite.create",
            target_type: "invite",
            target_id: &Uuid::nil().to_string(),
            site_id: None,
            before: None,
            after: Some(&after),
            created_at: at("2026-12-06T00:00:00Z"),
        })
        .unwrap();
        assert_eq!(
            p.data,
            json!({ "email": "a@b.example", "role": "USER" }),
            "{}",
            p.to_body()
        );
    }

    #[test]
    fn a_payload_carries_ids_and_the_changed_fields() {
        let p = examples::payload(EventType::RoleChanged);
        let body: Value = serde_json::from_str(&p.to_body()).unwrap();
        assert_eq!(body["type"], "role.changed");
        assert_eq!(body["version"], 1);
        assert!(body["id"].as_str().unwrap().starts_with("evt_"));
        assert_eq!(body["occurredAt"], "2026-12-06T09:30:00Z");
        assert_eq!(body["target"]["type"], "user");
        assert_eq!(
            body["target"]["id"],
            node_id("User", "6e570000-0000-4000-8000-000000000004")
        );
        assert_eq!(
            body["data"],
            json!({ "role": "GUEST", "lostAccess": false, "cause": "invite.accept",
                    "changes": { "role": { "from": null } } })
        );
        // Unchanged fields are state, not changes; ids inside become global ids.
        let p = examples::payload(EventType::InviteResent);
        assert_eq!(
            p.data["changes"],
            json!({ "status": { "from": S::InviteStatus::Expired.as_str() }, "expiresAt": { "from": "2026-12-20T09:30:00Z" } })
        );
        assert_eq!(
            p.data["space"],
            json!(node_id("Space", "5bac0000-0000-4000-8000-000000000006"))
        );
        let p = examples::payload(EventType::GuestSpaceAssigned);
        assert_eq!(
            p.data["changes"]["space"]["from"],
            json!(node_id("Space", "5bac0000-0000-4000-8000-000000000007"))
        );
        let p = examples::payload(EventType::AccessExtended);
        assert_eq!(
            p.data,
            json!({ "endsAt": "2027-03-31T00:00:00Z",
                    "changes": { "endsAt": { "from": "2026-12-31T00:00:00Z" } } })
        );
        // A deletion carries the state before it; the system acts with no actor.
        assert_eq!(
            examples::payload(EventType::GroupDeleted).data,
            json!({ "name": "Partner reviewers" })
        );
        assert_eq!(examples::payload(EventType::InviteExpired).actor, None);
        assert_eq!(
            examples::payload(EventType::AdminGranted).data["role"],
            "SITE_ADMIN"
        );
        // The envelope's order is fixed: id and type first.
        assert!(p.to_body().starts_with(r#"{"id":"evt_"#), "{}", p.to_body());
    }

    /// `README.md` shows the catalogue [`examples::render`] computes; run with `GUESTPASS_BLESS=1`
    /// to rewrite it after a deliberate change.
    #[test]
    fn the_readme_shows_the_catalogue_with_an_example_of_each_event() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
        let doc = std::fs::read_to_string(path).unwrap();
        let (begin, end) = (
            "<!-- webhook-events:begin -->\n",
            "<!-- webhook-events:end -->",
        );
        let start = doc.find(begin).expect("webhook-events markers") + begin.len();
        let stop = doc.find(end).expect("webhook-events markers");
        let rendered = examples::render();
        if std::env::var_os("GUESTPASS_BLESS").is_some() {
            std::fs::write(
                path,
                format!("{}{}{}", &doc[..start], rendered, &doc[stop..]),
            )
            .unwrap();
            return;
        }
        assert_eq!(
            doc[start..stop],
            rendered,
            "README.md's webhook catalogue is out of date; run with GUESTPASS_BLESS=1"
        );
    }

    /// The Standard Webhooks test vector, and both secrets of a rotation, each verifying alone.
    #[test]
    fn signatures_follow_standard_webhooks() {
        let secret = STANDARD.decode("C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
        let body = r#"{"email":"test@example.com","username":"test_user"}"#;
        assert_eq!(
            signature(
                &[&secret],
                "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
                1649367553,
                body
            ),
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
        );
        let (old, new) = ([1u8; 32], [2u8; 32]);
        let ts = Utc::now().timestamp();
        let both = signature(&[&new, &old], "msg_1", ts, "{}");
        assert_eq!(both.split(' ').count(), 2);
        for key in [old, new] {
            let mut headers = http::HeaderMap::new();
            headers.insert("webhook-id", "msg_1".parse().unwrap());
            headers.insert("webhook-timestamp", ts.to_string().parse().unwrap());
            headers.insert("webhook-signature", both.parse().unwrap());
            let wh = standardwebhooks::Webhook::new(&secret_text(&key)).unwrap();
            wh.verify(b"{}", &headers).unwrap();
        }
        assert!(secret_text(&new).starts_with("whsec_"));
        assert_eq!(message_id(Uuid::nil()), format!("msg_{}", "0".repeat(32)));
    }

    #[test]
    fn the_previous_secret_signs_until_its_time() {
        let now = at("2026-12-06T12:00:00Z");
        assert!(previous_still_signs(Some(at("2026-12-06T12:00:01Z")), now));
        assert!(!previous_still_signs(Some(now), now));
        assert!(!previous_still_signs(None, now));
    }

    #[test]
    fn retries_back_off_four_times_longer_to_twelve_hours_for_three_days() {
        let s = RetrySchedule::default();
        let nominal: Vec<u64> = (1..=8).map(|n| s.nominal_delay(n).as_secs()).collect();
        assert_eq!(
            nominal,
            [30, 120, 480, 1920, 7680, 30720, 43200, 43200],
            "the schedule the README documents"
        );
        // Following the schedule from the event, attempt after attempt, until it gives up.
        let first = at("2026-12-06T00:00:00Z");
        let id = Uuid::new_v4();
        let (mut now, mut attempts) = (first, 1);
        while let Some(next) = s.next_attempt(id, attempts, now, first) {
            assert!(next > now);
            assert!(next <= first + chrono::Duration::days(3));
            now = next;
            attempts += 1;
        }
        assert!((11..=13).contains(&attempts), "{attempts} attempts");
        assert!(now > first + chrono::Duration::hours(60), "{now}");
        assert_eq!(
            after_attempt(&s, false, id, attempts, now, first),
            Outcome::Failed
        );
        assert_eq!(
            after_attempt(&s, true, id, attempts, now, first),
            Outcome::Delivered
        );
        assert!(matches!(
            after_attempt(&s, false, id, 1, first, first),
            Outcome::Retry(_)
        ));
    }

    #[test]
    fn jitter_is_bounded_repeatable_and_spreads_a_burst() {
        let s = RetrySchedule::default();
        let now = at("2026-12-06T00:00:00Z");
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            let id = Uuid::new_v4();
            let next = s.next_attempt(id, 2, now, now).unwrap();
            let wait = (next - now).num_milliseconds();
            assert!((96_000..=144_000).contains(&wait), "{wait}");
            assert_eq!(s.next_attempt(id, 2, now, now), Some(next));
            seen.insert(wait / 1000);
        }
        assert!(seen.len() > 20, "a burst spreads out: {}", seen.len());
    }

    #[test]
    fn endpoint_inputs_are_checked() {
        assert_eq!(
            validate_url("  https://hooks.example/guestpass?x=1 ").unwrap(),
            "https://hooks.example/guestpass?x=1"
        );
        for bad in [
            "",
            "hooks.example/x",
            "https://user:pw@hooks.example/",
            "https://hooks.example/#frag",
            &format!("https://hooks.example/{}", "a".repeat(MAX_URL_CHARS)),
        ] {
            assert!(validate_url(bad).is_err(), "{bad}");
        }
        assert!(validate_events(&[]).is_err());
        assert_eq!(
            validate_events(&[
                EventType::InviteAccepted,
                EventType::InviteCreated,
                EventType::InviteAccepted
            ])
            .unwrap(),
            vec![EventType::InviteCreated, EventType::InviteAccepted]
        );
        assert_eq!(validate_description(None).unwrap(), "");
        assert_eq!(validate_description(Some("  SIEM ")).unwrap(), "SIEM");
        assert!(validate_description(Some("a\nb")).is_err());
        assert!(validate_description(Some(&"x".repeat(501))).is_err());
    }
}
