//! Invites: what `inviteUsers`, `resendInvite` and accepting an invite decide, as pure functions of
//! what the store loaded under its locks. The store loads the facts, asks here, and writes the answer.
//!
//! A batch is refused in this order (the first that applies wins): its input ([`parse_batch`]: too
//! many addresses, none, invalid ones; then [`check_terms`]: the message, the end of access, the
//! expiry), then its role ([`plan`]: some role is granted; a space and an end of access only for
//! guests), then its addresses (each with its first applicable [`AddressRefusal`], domain rules
//! last), then the inviter's daily cap, then the recipients' cooldown, then the site's seats.

use super::access::{add, invite_delta, invite_holds, new_invites_delta};
use super::bulk::CAP_WINDOW;
use super::domains::{self, DomainMode};
use super::seats::{self, Counts, Limits, Violation};
use super::{EmailAddress, ProductRole, text};
use chrono::{DateTime, Duration, Utc};
use std::ops::RangeInclusive;
use uuid::Uuid;

/// Most distinct addresses one `inviteUsers` batch may hold.
pub const MAX_BATCH: usize = 10;
/// Longest personal message, in characters.
pub const MAX_MESSAGE_CHARS: usize = 1000;
/// How many days after accepting a guest's access may end.
pub const ACCESS_DAYS: RangeInclusive<i32> = 1..=3650;
/// How many days an invite may stay open.
pub const EXPIRY_DAYS: RangeInclusive<i32> = 1..=90;

/// Why a request is refused before anything is loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InputError {
    /// More distinct addresses than one batch may hold.
    TooMany { max: usize },
    /// The addresses that are not valid, as written (at most 254 characters of each).
    InvalidEmails(Vec<String>),
    /// An argument out of range: the field as the API names it, and why.
    Field {
        field: &'static str,
        message: String,
    },
}

fn field(field: &'static str, message: impl Into<String>) -> InputError {
    InputError::Field {
        field,
        message: message.into(),
    }
}

/// Parses and de-duplicates (ignoring case and surrounding blanks) the addresses of a batch:
/// too many first, then none, then every invalid one.
pub fn parse_batch(raw: &[String]) -> Result<Vec<EmailAddress>, InputError> {
    let mut seen = std::collections::HashSet::new();
    let unique: Vec<&str> = raw
        .iter()
        .filter(|e| seen.insert(e.trim().to_lowercase()))
        .map(String::as_str)
        .collect();
    if unique.len() > MAX_BATCH {
        return Err(InputError::TooMany { max: MAX_BATCH });
    }
    if unique.is_empty() {
        return Err(field("emails", "give at least one address"));
    }
    let mut ok = Vec::new();
    let mut bad = Vec::new();
    for e in unique {
        match EmailAddress::parse(e) {
            Ok(a) => ok.push(a),
            Err(_) => bad.push(e.chars().take(254).collect()),
        }
    }
    if !bad.is_empty() {
        return Err(InputError::InvalidEmails(bad));
    }
    Ok(ok)
}

/// The terms a batch is invited on, as asked.
#[derive(Clone, Copy, Debug, Default)]
pub struct Terms<'a> {
    pub personal_message: Option<&'a str>,
    /// For guests: the day their access ends...
    pub access_ends_at: Option<DateTime<Utc>>,
    /// ...or how many days after accepting.
    pub access_days: Option<i32>,
    /// How long the invite stays open (the site's default when left out).
    pub expires_in_days: Option<i32>,
}

/// Checks the terms, in this order: the personal message, an end date and a number of days not both,
/// the number of days in [`ACCESS_DAYS`], the end date in the future, the expiry in [`EXPIRY_DAYS`].
/// Answers the personal message as stored (`None` when empty).
pub fn check_terms(t: &Terms<'_>, now: DateTime<Utc>) -> Result<Option<String>, InputError> {
    let personal_message = match t.personal_message {
        Some(m) => {
            text::multi_line(m, MAX_MESSAGE_CHARS).map_err(|e| field("personalMessage", e))?
        }
        None => None,
    };
    if t.access_ends_at.is_some() && t.access_days.is_some() {
        return Err(field(
            "accessDays",
            "give an end date or a number of days, not both",
        ));
    }
    if t.access_days.is_some_and(|d| !ACCESS_DAYS.contains(&d)) {
        return Err(field("accessDays", "must be between 1 and 3,650"));
    }
    if t.access_ends_at.is_some_and(|at| at <= now) {
        return Err(field("accessEndsAt", "must be in the future"));
    }
    if t.expires_in_days.is_some_and(|d| !EXPIRY_DAYS.contains(&d)) {
        return Err(field("expiresInDays", "must be between 1 and 90"));
    }
    Ok(personal_message)
}

/// Why one address of a batch is refused; an address gets the first that applies, in this order
/// (domain rules are checked last, for the addresses nothing else refused).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressRefusal {
    /// Their account already holds a role on the site.
    AlreadyHasAccess,
    /// A pending invite to the site exists for the address.
    InvitePending,
    /// A guest invite to someone who holds or held a paid role on the site.
    PaidUserCannotBeGuest,
    /// A guest invite to a domain the organization's rules refuse.
    DomainNotAllowed,
}

/// Why a batch, a resend or an acceptance is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// An argument that does not fit the rest: the field as the API names it, and why.
    Invalid {
        field: &'static str,
        message: &'static str,
    },
    /// Addresses refused, each (as written) with its reason.
    Addresses(Vec<(String, AddressRefusal)>),
    /// The inviter's daily cap or a recipient's cooldown: how long until it would go through.
    RateLimited { wait: Duration },
    /// The site's seats.
    Seats(Violation),
    /// The invite link is not one that can be accepted (unknown, superseded, used, expired, revoked),
    /// or names an account that cannot accept it.
    InviteInvalid,
}

/// A batch as asked (its input already checked).
#[derive(Clone, Copy, Debug)]
pub struct Batch<'a> {
    pub emails: &'a [EmailAddress],
    /// The invite's own role; may be left out when its groups give one on the site.
    pub role: Option<ProductRole>,
    /// A space was named.
    pub space: bool,
    /// An end of access was given (a date or a number of days).
    pub access_end: bool,
    pub expires_in_days: Option<i32>,
}

/// What the organization holds for one address of a batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AddressFacts {
    /// The organization's account with this address, if there is one.
    pub account: Option<Account>,
    /// A pending invite to the site exists for the address.
    pub pending: bool,
}

/// An existing account, as it stands on the site.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Account {
    /// Their effective role on the site.
    pub role: Option<ProductRole>,
    /// They hold or held a paid role on the site.
    pub former_paid: bool,
}

/// The inviter's daily cap: `cap` invites per rolling [`CAP_WINDOW`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DailyCap {
    pub cap: i64,
    /// Invites the inviter made within the window.
    pub recent: i64,
    /// When the window's invite whose ageing out makes room for the batch was made: the
    /// [`cap_overflow`]-th oldest (loaded only when the batch does not fit; `None` otherwise or when
    /// no invite of the window can make room).
    pub frees_at: Option<DateTime<Utc>>,
}

/// How many of the window's oldest invites must age out before `adding` more fit under the cap
/// (0: they fit now).
pub fn cap_overflow(cap: i64, recent: i64, adding: i64) -> i64 {
    (recent + adding - cap).max(0)
}

impl DailyCap {
    /// How long until `adding` more invites fit, when they do not fit now.
    pub fn wait(&self, adding: i64, now: DateTime<Utc>) -> Option<Duration> {
        (cap_overflow(self.cap, self.recent, adding) > 0)
            .then(|| self.frees_at.map_or(CAP_WINDOW, |t| t + CAP_WINDOW - now))
    }
}

/// How soon an address may be sent another invite email.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cooldown {
    /// The cooldown (none when zero or less).
    pub length: Duration,
    /// The newest invite email to any of the addresses within the cooldown.
    pub last_emailed: Option<DateTime<Utc>>,
}

impl Cooldown {
    /// Whether there is a cooldown to look up at all.
    pub fn applies(length: Duration) -> bool {
        length > Duration::zero()
    }

    /// How long until the addresses may be emailed again, when they may not now.
    pub fn wait(&self, now: DateTime<Utc>) -> Option<Duration> {
        if !Self::applies(self.length) {
            return None;
        }
        self.last_emailed.map(|t| t + self.length - now)
    }
}

/// A site's seats: what they hold now, and their limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seats {
    pub counts: Counts,
    pub limits: Limits,
}

impl Seats {
    /// Refuses `delta` when it takes the site past a limit (see [`seats::check_change`]).
    pub fn check(&self, delta: Counts) -> Result<(), Refusal> {
        seats::check_change(self.limits, self.counts, add(self.counts, delta))
            .map_err(Refusal::Seats)
    }
}

/// Everything a batch is decided on, loaded under the site's lock.
#[derive(Clone, Debug)]
pub struct BatchFacts {
    /// The roles the batch's groups hold on the site.
    pub group_roles: Vec<ProductRole>,
    /// One per address of the batch, in its order.
    pub addresses: Vec<AddressFacts>,
    pub domain_mode: DomainMode,
    pub domain_patterns: Vec<String>,
    pub daily_cap: DailyCap,
    pub cooldown: Cooldown,
    pub seats: Seats,
    /// The site's default invite lifetime, in days.
    pub default_expiry_days: i32,
}

/// What a batch does once allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The role each invite grants on the site (and holds a seat as while open).
    pub role: ProductRole,
    /// What the invites add to the site's counters.
    pub delta: Counts,
    pub expires_at: DateTime<Utc>,
}

/// The first applicable refusal of one address, given the role the batch grants (domain rules apart).
pub fn address_refusal(granted: ProductRole, a: &AddressFacts) -> Option<AddressRefusal> {
    match a.account {
        Some(Account { role: Some(_), .. }) => Some(AddressRefusal::AlreadyHasAccess),
        _ if a.pending => Some(AddressRefusal::InvitePending),
        Some(Account {
            former_paid: true, ..
        }) if granted == ProductRole::Guest => Some(AddressRefusal::PaidUserCannotBeGuest),
        _ => None,
    }
}

/// The role the batch grants: its own role or its groups' best on the site; a space and an end of
/// access only for guests.
fn granted_role(batch: &Batch<'_>, group_roles: &[ProductRole]) -> Result<ProductRole, Refusal> {
    let invalid = |field, message| Refusal::Invalid { field, message };
    let Some(granted) = invite_holds(true, batch.role, group_roles.iter().copied()) else {
        return Err(invalid(
            "role",
            "give a role, or groups that hold a role on this site",
        ));
    };
    if batch.space && granted != ProductRole::Guest {
        return Err(invalid("spaceId", "only guests are invited to a space"));
    }
    if batch.access_end && granted != ProductRole::Guest {
        return Err(invalid("accessEndsAt", "only guests' access has an end"));
    }
    Ok(granted)
}

/// Each refused address (as written) with its reason: the batch's order, then the addresses a guest
/// batch's domain rules refuse.
fn address_refusals(
    batch: &Batch<'_>,
    facts: &BatchFacts,
    granted: ProductRole,
) -> Vec<(String, AddressRefusal)> {
    let mut refused: Vec<(String, AddressRefusal)> = batch
        .emails
        .iter()
        .zip(&facts.addresses)
        .filter_map(|(e, a)| address_refusal(granted, a).map(|r| (e.as_str().to_string(), r)))
        .collect();
    if granted == ProductRole::Guest {
        for e in batch.emails {
            if !domains::allowed(facts.domain_mode, &facts.domain_patterns, e.domain())
                && !refused.iter().any(|(r, _)| r == e.as_str())
            {
                refused.push((e.as_str().to_string(), AddressRefusal::DomainNotAllowed));
            }
        }
    }
    refused
}

/// Decides a batch in the documented order (see the module's documentation).
pub fn plan(batch: &Batch<'_>, facts: &BatchFacts, now: DateTime<Utc>) -> Result<Plan, Refusal> {
    assert_eq!(
        batch.emails.len(),
        facts.addresses.len(),
        "one fact per address"
    );
    let role = granted_role(batch, &facts.group_roles)?;
    let refused = address_refusals(batch, facts, role);
    if !refused.is_empty() {
        return Err(Refusal::Addresses(refused));
    }
    let n = batch.emails.len() as i64;
    if let Some(wait) = facts.daily_cap.wait(n, now) {
        return Err(Refusal::RateLimited { wait });
    }
    if let Some(wait) = facts.cooldown.wait(now) {
        return Err(Refusal::RateLimited { wait });
    }
    let delta = new_invites_delta(role, n);
    facts.seats.check(delta)?;
    let days = batch.expires_in_days.unwrap_or(facts.default_expiry_days);
    Ok(Plan {
        role,
        delta,
        expires_at: now + Duration::days(days.into()),
    })
}

/// Where an invite stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InviteState {
    /// Open and unexpired.
    Pending,
    /// Open past its expiry, or closed by expiry.
    Expired,
    /// Accepted or revoked.
    Closed,
}

/// What a resend is decided on, loaded under the site's lock.
#[derive(Clone, Debug)]
pub struct ResendFacts<'a> {
    /// The invite's address, as written.
    pub email: &'a str,
    pub state: InviteState,
    /// The invite's own role, and the roles its groups hold on its site.
    pub own_role: Option<ProductRole>,
    pub group_roles: Vec<ProductRole>,
    /// Another pending invite to the site exists for the address.
    pub other_pending: bool,
    pub seats: Seats,
    pub cooldown: Cooldown,
    /// The site's invite lifetime, in days.
    pub expiry_days: i32,
}

/// What renewing an invite does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Renewal {
    /// What the renewed invite adds to the site's counters (an expired one takes its seat again).
    pub delta: Counts,
    pub expires_at: DateTime<Utc>,
}

/// Decides a resend: a pending invite is renewed as it is; an expired one takes a seat again (one that
/// grants nothing is counted as a guest's) and is refused when another invite to the address is
/// pending; any other is `id` invalid. Then the recipient's cooldown.
pub fn resend(f: &ResendFacts<'_>, now: DateTime<Utc>) -> Result<Renewal, Refusal> {
    let delta = match f.state {
        InviteState::Pending => Counts::default(),
        InviteState::Expired => {
            let holds = invite_holds(true, f.own_role, f.group_roles.iter().copied());
            let delta = new_invites_delta(holds.unwrap_or(ProductRole::Guest), 1);
            f.seats.check(delta)?;
            if f.other_pending {
                return Err(Refusal::Addresses(vec![(
                    f.email.to_string(),
                    AddressRefusal::InvitePending,
                )]));
            }
            delta
        }
        InviteState::Closed => {
            return Err(Refusal::Invalid {
                field: "id",
                message: "only pending or expired invites can be resent",
            });
        }
    };
    if let Some(wait) = f.cooldown.wait(now) {
        return Err(Refusal::RateLimited { wait });
    }
    Ok(Renewal {
        delta,
        expires_at: now + Duration::days(f.expiry_days.into()),
    })
}

/// One of an invite's groups, as accepting finds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InviteGroup {
    pub id: Uuid,
    /// The role the group holds on the invite's site.
    pub role_on_site: Option<ProductRole>,
    /// The inviter, as they stand now, may still add members to it (the rule of `addGroupMembers`).
    pub inviter_may_add: bool,
}

/// What accepting an invite is decided on, loaded under the locks.
#[derive(Clone, Debug)]
pub struct AcceptFacts {
    /// The link's signature matches the invite's current token.
    pub link_matches: bool,
    pub state: InviteState,
    /// The invite's own (direct) role.
    pub own_role: Option<ProductRole>,
    pub groups: Vec<InviteGroup>,
}

/// What accepting an invite does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Acceptance {
    /// The direct role granted on the site.
    pub direct: Option<ProductRole>,
    /// The groups joined: those the inviter may still add members to.
    pub joining: Vec<Uuid>,
    /// The groups skipped (not refused): those the inviter may no longer add members to.
    pub skipped: Vec<Uuid>,
    /// The role the invite held a seat as (all its groups): the seat rules are re-checked as if the
    /// invite were being made now, so what it held is discounted.
    pub held: Option<ProductRole>,
    /// The role accepting grants on the site (the direct role and the groups joined).
    pub granting: Option<ProductRole>,
}

impl Acceptance {
    /// What the invite held of the site's counters: the change discounts it, so the seat rules see
    /// the acceptance as if the invite were being made now.
    pub fn discount(&self) -> Counts {
        invite_delta(None, self.held)
    }

    /// Refuses a guest grant to someone who holds or held a paid role on the site.
    pub fn check_grantee(&self, former_paid: bool) -> Result<(), AddressRefusal> {
        if self.granting == Some(ProductRole::Guest) && former_paid {
            Err(AddressRefusal::PaidUserCannotBeGuest)
        } else {
            Ok(())
        }
    }
}

/// An invite link opens (to be shown or accepted) only while its invite is pending and only with the
/// invite's current token; anything else (unknown, superseded, used, expired, revoked) is alike.
pub fn link_opens(link_matches: bool, state: InviteState) -> Result<(), Refusal> {
    if link_matches && state == InviteState::Pending {
        Ok(())
    } else {
        Err(Refusal::InviteInvalid)
    }
}

/// Decides an acceptance: only through a link that opens ([`link_opens`]); it grants the invite's own
/// role and the groups the inviter may still add (the others are skipped).
pub fn accept(f: &AcceptFacts) -> Result<Acceptance, Refusal> {
    link_opens(f.link_matches, f.state)?;
    let (joining, skipped): (Vec<&InviteGroup>, Vec<&InviteGroup>) =
        f.groups.iter().partition(|g| g.inviter_may_add);
    let roles = |gs: &[&InviteGroup]| -> Vec<ProductRole> {
        gs.iter().filter_map(|g| g.role_on_site).collect()
    };
    let all: Vec<ProductRole> = f.groups.iter().filter_map(|g| g.role_on_site).collect();
    Ok(Acceptance {
        direct: f.own_role,
        held: invite_holds(true, f.own_role, all),
        granting: invite_holds(true, f.own_role, roles(&joining)),
        joining: joining.iter().map(|g| g.id).collect(),
        skipped: skipped.iter().map(|g| g.id).collect(),
    })
}

/// An existing account accepting an invite: it must be of the site's organization, have the invited
/// address, and be active.
pub fn account_may_accept(
    same_organization: bool,
    same_address: bool,
    active: bool,
) -> Result<(), Refusal> {
    if same_organization && same_address && active {
        Ok(())
    } else {
        Err(Refusal::InviteInvalid)
    }
}

/// What follows an acceptance, given the role the person holds on the site afterwards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AfterAccept {
    /// A guest: their access's end and sponsor are set from the invite.
    pub guest_terms: bool,
    /// A guest invited to a space: it is assigned.
    pub space: Option<Uuid>,
}

/// A guest afterwards gets the invite's terms and space; anyone else (paid through another grant,
/// or nothing) gets neither.
pub fn after_accept(role_after: Option<ProductRole>, space: Option<Uuid>) -> AfterAccept {
    let guest = role_after == Some(ProductRole::Guest);
    AfterAccept {
        guest_terms: guest,
        space: space.filter(|_| guest),
    }
}

#[cfg(test)]
mod tests {
    use super::AddressRefusal::*;
    use super::ProductRole::*;
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2027, 3, 1, 12, 0, 0).unwrap()
    }

    fn emails(list: &[&str]) -> Vec<EmailAddress> {
        list.iter()
            .map(|e| EmailAddress::parse(e).unwrap())
            .collect()
    }

    fn raw(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn batch(emails: &[EmailAddress], role: Option<ProductRole>) -> Batch<'_> {
        Batch {
            emails,
            role,
            space: false,
            access_end: false,
            expires_in_days: None,
        }
    }

    fn roomy() -> Seats {
        Seats {
            counts: Counts {
                paid: 10,
                ..Counts::default()
            },
            limits: Limits {
                user_limit: 1000,
                guest_ratio: 5,
            },
        }
    }

    fn facts(n: usize) -> BatchFacts {
        BatchFacts {
            group_roles: vec![],
            addresses: vec![AddressFacts::default(); n],
            domain_mode: DomainMode::None,
            domain_patterns: vec![],
            daily_cap: DailyCap {
                cap: 500,
                recent: 0,
                frees_at: None,
            },
            cooldown: Cooldown {
                length: Duration::zero(),
                last_emailed: None,
            },
            seats: roomy(),
            default_expiry_days: 14,
        }
    }

    fn refused(r: Result<Plan, Refusal>) -> Vec<(String, AddressRefusal)> {
        match r {
            Err(Refusal::Addresses(list)) => list,
            other => panic!("expected refused addresses, got {other:?}"),
        }
    }

    #[test]
    fn batches_are_deduplicated_then_counted_then_parsed() {
        let ok = parse_batch(&raw(&["A@x.example", " a@X.example ", "b@x.example"])).unwrap();
        assert_eq!(ok.len(), 2);
        let eleven: Vec<String> = (0..11).map(|i| format!("p{i}@x.example")).collect();
        assert_eq!(parse_batch(&eleven), Err(InputError::TooMany { max: 10 }));
        let mut bad_and_many = eleven.clone();
        bad_and_many[0] = "not an address".into();
        assert_eq!(
            parse_batch(&bad_and_many),
            Err(InputError::TooMany { max: 10 }),
            "too many wins over invalid"
        );
        assert!(matches!(
            parse_batch(&[]),
            Err(InputError::Field {
                field: "emails",
                ..
            })
        ));
        assert_eq!(
            parse_batch(&raw(&["ok@x.example", "nope", "also bad"])),
            Err(InputError::InvalidEmails(raw(&["nope", "also bad"])))
        );
        let long = "x".repeat(300);
        match parse_batch(&[long]) {
            Err(InputError::InvalidEmails(list)) => assert_eq!(list[0].chars().count(), 254),
            other => panic!("{other:?}"),
        }
    }

    fn terms_field(t: Terms<'_>) -> Option<&'static str> {
        match check_terms(&t, now()) {
            Err(InputError::Field { field, .. }) => Some(field),
            Ok(_) => None,
            Err(e) => panic!("{e:?}"),
        }
    }

    #[test]
    fn terms_are_checked_in_order() {
        let later = now() + Duration::days(3);
        assert_eq!(terms_field(Terms::default()), None);
        assert_eq!(
            check_terms(
                &Terms {
                    personal_message: Some("  hello\r\nthere  "),
                    ..Terms::default()
                },
                now()
            ),
            Ok(Some("hello\nthere".to_string()))
        );
        let long = "m".repeat(MAX_MESSAGE_CHARS + 1);
        let all_wrong = Terms {
            personal_message: Some(&long),
            access_ends_at: Some(now()),
            access_days: Some(0),
            expires_in_days: Some(91),
        };
        assert_eq!(terms_field(all_wrong), Some("personalMessage"));
        let t = Terms {
            personal_message: None,
            ..all_wrong
        };
        assert_eq!(terms_field(t), Some("accessDays"), "both given");
        let t = Terms {
            access_ends_at: None,
            ..t
        };
        assert_eq!(terms_field(t), Some("accessDays"), "out of range");
        for (days, ok) in [(1, true), (3650, true), (3651, false), (-1, false)] {
            let t = Terms {
                access_days: Some(days),
                ..Terms::default()
            };
            assert_eq!(terms_field(t).is_none(), ok, "{days}");
        }
        let t = Terms {
            access_ends_at: Some(now()),
            ..Terms::default()
        };
        assert_eq!(terms_field(t), Some("accessEndsAt"), "not in the future");
        let t = Terms {
            access_ends_at: Some(later),
            expires_in_days: Some(0),
            ..Terms::default()
        };
        assert_eq!(terms_field(t), Some("expiresInDays"));
        for (days, ok) in [(1, true), (90, true), (91, false)] {
            let t = Terms {
                expires_in_days: Some(days),
                ..Terms::default()
            };
            assert_eq!(terms_field(t).is_none(), ok, "{days}");
        }
    }

    #[test]
    fn the_role_comes_from_the_invite_or_its_groups_and_only_guests_get_a_space_or_an_end() {
        let e = emails(&["a@x.example"]);
        let mut f = facts(1);
        let p = plan(&batch(&e, Some(Guest)), &f, now()).unwrap();
        assert_eq!(p.role, Guest);
        f.group_roles = vec![User, Guest];
        assert_eq!(plan(&batch(&e, Some(Guest)), &f, now()).unwrap().role, User);
        assert_eq!(plan(&batch(&e, None), &f, now()).unwrap().role, User);
        f.group_roles = vec![];
        let field_of = |r: Result<Plan, Refusal>| match r {
            Err(Refusal::Invalid { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field_of(plan(&batch(&e, None), &f, now())), "role");
        let spaced = Batch {
            space: true,
            ..batch(&e, Some(User))
        };
        assert_eq!(field_of(plan(&spaced, &f, now())), "spaceId");
        let ending = Batch {
            access_end: true,
            ..batch(&e, Some(ProductAdmin))
        };
        assert_eq!(field_of(plan(&ending, &f, now())), "accessEndsAt");
        let guest = Batch {
            space: true,
            access_end: true,
            ..batch(&e, Some(Guest))
        };
        assert!(plan(&guest, &f, now()).is_ok());
        // the role is checked before the addresses
        f.addresses[0].pending = true;
        assert_eq!(field_of(plan(&spaced, &f, now())), "spaceId");
    }

    #[test]
    fn each_address_gets_its_first_applicable_refusal() {
        let member = |former_paid| AddressFacts {
            account: Some(Account {
                role: Some(User),
                former_paid,
            }),
            pending: true,
        };
        assert_eq!(
            address_refusal(Guest, &member(true)),
            Some(AlreadyHasAccess)
        );
        let pending_former = AddressFacts {
            account: Some(Account {
                role: None,
                former_paid: true,
            }),
            pending: true,
        };
        assert_eq!(address_refusal(Guest, &pending_former), Some(InvitePending));
        let pending_new = AddressFacts {
            account: None,
            pending: true,
        };
        assert_eq!(address_refusal(User, &pending_new), Some(InvitePending));
        let former = AddressFacts {
            pending: false,
            ..pending_former
        };
        assert_eq!(address_refusal(Guest, &former), Some(PaidUserCannotBeGuest));
        assert_eq!(address_refusal(User, &former), None, "paid again is fine");
        let no_access = AddressFacts {
            account: Some(Account::default()),
            pending: false,
        };
        assert_eq!(address_refusal(Guest, &no_access), None);
        assert_eq!(address_refusal(Guest, &AddressFacts::default()), None);
    }

    #[test]
    fn a_batch_lists_its_refusals_in_order_with_domain_rules_last() {
        let e = emails(&[
            "Pending@partner.example",
            "member@acme.example",
            "b@other.example",
            "fine@partner.example",
            "former@other.example",
        ]);
        let mut f = facts(e.len());
        f.addresses[0].pending = true;
        f.addresses[1].account = Some(Account {
            role: Some(User),
            former_paid: false,
        });
        f.addresses[4].account = Some(Account {
            role: None,
            former_paid: true,
        });
        f.domain_mode = DomainMode::Allow;
        f.domain_patterns = vec!["partner.example".into()];
        let list = refused(plan(&batch(&e, Some(Guest)), &f, now()));
        assert_eq!(
            list,
            vec![
                ("Pending@partner.example".to_string(), InvitePending),
                ("member@acme.example".to_string(), AlreadyHasAccess),
                ("former@other.example".to_string(), PaidUserCannotBeGuest),
                ("b@other.example".to_string(), DomainNotAllowed),
            ],
            "an address refused otherwise is not refused again for its domain"
        );
        // domain rules are for guests only
        let list = refused(plan(&batch(&e, Some(User)), &f, now()));
        assert_eq!(list.len(), 2);
        // a block list
        let mut f = facts(2);
        f.domain_mode = DomainMode::Block;
        f.domain_patterns = vec!["*.partner.example".into()];
        let e = emails(&["a@eu.partner.example", "b@partner.example"]);
        assert_eq!(
            refused(plan(&batch(&e, Some(Guest)), &f, now())),
            vec![("a@eu.partner.example".to_string(), DomainNotAllowed)]
        );
    }

    #[test]
    fn the_daily_cap_refuses_a_batch_that_does_not_fit_until_room_appears() {
        assert_eq!(cap_overflow(5, 3, 2), 0);
        assert_eq!(cap_overflow(5, 3, 4), 2);
        assert_eq!(cap_overflow(0, 0, 1), 1);
        let made = now() - Duration::hours(20);
        let cap = DailyCap {
            cap: 5,
            recent: 4,
            frees_at: Some(made),
        };
        assert_eq!(cap.wait(1, now()), None);
        assert_eq!(cap.wait(2, now()), Some(Duration::hours(4)));
        let none_frees = DailyCap {
            frees_at: None,
            ..cap
        };
        assert_eq!(none_frees.wait(2, now()), Some(CAP_WINDOW));
        let e = emails(&["a@x.example", "b@x.example"]);
        let mut f = facts(2);
        f.daily_cap = cap;
        assert_eq!(
            plan(&batch(&e, Some(Guest)), &f, now()),
            Err(Refusal::RateLimited {
                wait: Duration::hours(4)
            })
        );
        // refused addresses come before the cap
        f.addresses[1].pending = true;
        assert_eq!(refused(plan(&batch(&e, Some(Guest)), &f, now())).len(), 1);
    }

    #[test]
    fn the_cooldown_refuses_until_it_has_passed_since_the_last_email() {
        let c = Cooldown {
            length: Duration::minutes(10),
            last_emailed: Some(now() - Duration::minutes(4)),
        };
        assert_eq!(c.wait(now()), Some(Duration::minutes(6)));
        let off = Cooldown {
            length: Duration::zero(),
            ..c
        };
        assert_eq!(off.wait(now()), None);
        assert!(!Cooldown::applies(Duration::seconds(-1)));
        let never = Cooldown {
            last_emailed: None,
            ..c
        };
        assert_eq!(never.wait(now()), None);
        // the cap is checked before the cooldown, the cooldown before the seats
        let e = emails(&["a@x.example"]);
        let mut f = facts(1);
        f.cooldown = c;
        f.seats.limits.user_limit = 0;
        assert_eq!(
            plan(&batch(&e, Some(User)), &f, now()),
            Err(Refusal::RateLimited {
                wait: Duration::minutes(6)
            })
        );
        f.daily_cap = DailyCap {
            cap: 0,
            recent: 0,
            frees_at: None,
        };
        assert_eq!(
            plan(&batch(&e, Some(User)), &f, now()),
            Err(Refusal::RateLimited { wait: CAP_WINDOW })
        );
    }

    #[test]
    fn a_batch_takes_a_pending_seat_per_address_within_the_limits() {
        let e = emails(&["a@x.example", "b@x.example", "c@x.example"]);
        let mut f = facts(3);
        let p = plan(&batch(&e, Some(Guest)), &f, now()).unwrap();
        assert_eq!(
            p.delta,
            Counts {
                pending_guests: 3,
                ..Counts::default()
            }
        );
        assert_eq!(p.expires_at, now() + Duration::days(14));
        let b = Batch {
            expires_in_days: Some(3),
            ..batch(&e, Some(User))
        };
        let p = plan(&b, &f, now()).unwrap();
        assert_eq!((p.delta.pending_paid, p.delta.pending_guests), (3, 0));
        assert_eq!(p.expires_at, now() + Duration::days(3));
        f.seats = Seats {
            counts: Counts {
                paid: 1,
                guests: 3,
                ..Counts::default()
            },
            limits: Limits {
                user_limit: 100,
                guest_ratio: 5,
            },
        };
        assert_eq!(
            plan(&batch(&e, Some(Guest)), &f, now()),
            Err(Refusal::Seats(Violation::GuestLimit { remaining: 2 }))
        );
        f.seats.limits.user_limit = 6;
        assert_eq!(
            plan(&batch(&e, Some(Guest)), &f, now()),
            Err(Refusal::Seats(Violation::SeatLimit { remaining: 2 })),
            "the user limit before the guest allowance"
        );
        assert!(
            plan(
                &batch(&e[..2], Some(Guest)),
                &{
                    let mut f = f.clone();
                    f.addresses.truncate(2);
                    f
                },
                now()
            )
            .is_ok()
        );
    }

    fn resend_facts(state: InviteState) -> ResendFacts<'static> {
        ResendFacts {
            email: "a@x.example",
            state,
            own_role: Some(Guest),
            group_roles: vec![],
            other_pending: false,
            seats: roomy(),
            cooldown: Cooldown {
                length: Duration::zero(),
                last_emailed: None,
            },
            expiry_days: 7,
        }
    }

    #[test]
    fn a_pending_invite_is_renewed_without_taking_a_seat() {
        let mut f = resend_facts(InviteState::Pending);
        f.seats.limits.user_limit = 0;
        f.other_pending = true;
        let r = resend(&f, now()).unwrap();
        assert_eq!(r.delta, Counts::default());
        assert_eq!(r.expires_at, now() + Duration::days(7));
        f.cooldown = Cooldown {
            length: Duration::minutes(5),
            last_emailed: Some(now() - Duration::minutes(1)),
        };
        assert_eq!(
            resend(&f, now()),
            Err(Refusal::RateLimited {
                wait: Duration::minutes(4)
            })
        );
    }

    #[test]
    fn an_expired_invite_takes_its_seat_again_before_anything_else() {
        let mut f = resend_facts(InviteState::Expired);
        assert_eq!(resend(&f, now()).unwrap().delta.pending_guests, 1);
        f.group_roles = vec![ProductAdmin];
        assert_eq!(resend(&f, now()).unwrap().delta.pending_paid, 1);
        f.own_role = None;
        f.group_roles = vec![];
        assert_eq!(
            resend(&f, now()).unwrap().delta.pending_guests,
            1,
            "an invite that grants nothing is counted as a guest's"
        );
        f.other_pending = true;
        f.cooldown = Cooldown {
            length: Duration::minutes(5),
            last_emailed: Some(now()),
        };
        assert_eq!(
            resend(&f, now()),
            Err(Refusal::Addresses(vec![(
                "a@x.example".into(),
                InvitePending
            )]))
        );
        f.seats.limits.user_limit = 0;
        assert_eq!(
            resend(&f, now()),
            Err(Refusal::Seats(Violation::SeatLimit { remaining: 0 })),
            "the seats before the other invite"
        );
    }

    #[test]
    fn accepted_and_revoked_invites_are_not_resent() {
        let mut f = resend_facts(InviteState::Closed);
        f.seats.limits.user_limit = 0;
        assert!(matches!(
            resend(&f, now()),
            Err(Refusal::Invalid { field: "id", .. })
        ));
    }

    fn group(n: u128, role: Option<ProductRole>, may: bool) -> InviteGroup {
        InviteGroup {
            id: Uuid::from_u128(n),
            role_on_site: role,
            inviter_may_add: may,
        }
    }

    fn accept_facts(groups: Vec<InviteGroup>) -> AcceptFacts {
        AcceptFacts {
            link_matches: true,
            state: InviteState::Pending,
            own_role: Some(Guest),
            groups,
        }
    }

    #[test]
    fn only_a_pending_invite_with_its_current_link_is_accepted() {
        let ok = accept_facts(vec![]);
        assert!(accept(&ok).is_ok());
        for f in [
            AcceptFacts {
                link_matches: false,
                ..ok.clone()
            },
            AcceptFacts {
                state: InviteState::Expired,
                ..ok.clone()
            },
            AcceptFacts {
                state: InviteState::Closed,
                ..ok.clone()
            },
        ] {
            assert_eq!(accept(&f), Err(Refusal::InviteInvalid));
        }
    }

    #[test]
    fn accepting_joins_the_groups_the_inviter_may_still_add_and_skips_the_others() {
        let f = accept_facts(vec![
            group(1, Some(User), false),
            group(2, Some(Guest), true),
            group(3, None, true),
        ]);
        let a = accept(&f).unwrap();
        assert_eq!(a.direct, Some(Guest));
        assert_eq!(a.joining, vec![Uuid::from_u128(2), Uuid::from_u128(3)]);
        assert_eq!(a.skipped, vec![Uuid::from_u128(1)]);
        assert_eq!(a.held, Some(User), "the seat held counts every group");
        assert_eq!(
            a.granting,
            Some(Guest),
            "the grant counts the groups joined"
        );
        assert_eq!(
            a.discount(),
            Counts {
                pending_paid: 1,
                ..Counts::default()
            }
        );
        let no_role = AcceptFacts {
            own_role: None,
            ..accept_facts(vec![group(1, Some(User), false)])
        };
        let a = accept(&no_role).unwrap();
        assert_eq!((a.held, a.granting, a.direct), (Some(User), None, None));
    }

    #[test]
    fn a_guest_grant_is_refused_to_former_paid_people_only() {
        let a = accept(&accept_facts(vec![])).unwrap();
        assert_eq!(a.check_grantee(true), Err(PaidUserCannotBeGuest));
        assert_eq!(a.check_grantee(false), Ok(()));
        let paid = accept(&accept_facts(vec![group(1, Some(User), true)])).unwrap();
        assert_eq!(paid.check_grantee(true), Ok(()));
    }

    #[test]
    fn only_the_invited_active_account_of_the_organization_accepts() {
        assert_eq!(account_may_accept(true, true, true), Ok(()));
        for (org, address, active) in [
            (false, true, true),
            (true, false, true),
            (true, true, false),
        ] {
            assert_eq!(
                account_may_accept(org, address, active),
                Err(Refusal::InviteInvalid)
            );
        }
    }

    #[test]
    fn only_a_guest_afterwards_gets_the_invites_terms_and_space() {
        let space = Some(Uuid::from_u128(9));
        assert_eq!(
            after_accept(Some(Guest), space),
            AfterAccept {
                guest_terms: true,
                space
            }
        );
        assert_eq!(
            after_accept(Some(Guest), None),
            AfterAccept {
                guest_terms: true,
                space: None
            }
        );
        for role in [Some(User), Some(ProductAdmin), None] {
            assert_eq!(
                after_accept(role, space),
                AfterAccept {
                    guest_terms: false,
                    space: None
                }
            );
        }
    }
}
