//! What each email says, composed from what its delivery is about. Pure: links and codes are derived
//! from the delivery's rows with the link signer, times read from `now`, so every kind is tested
//! here without a database or a mail server (how the emails then read: `email`'s snapshots).

use crate::auth::tokens::{LinkPurpose, LinkSigner};
use crate::domain::status::{ChallengePurpose, NoticeKind};
use crate::email::{
    CodeEmail, Email, InviteEmail, NoticeEmail, ResetEmail, ReverifyEmail, format_datetime,
};
use crate::store::emails::Content;
use crate::store::models::{
    Invite, LoginChallenge, Notice, Organization, PasswordReset, ReverificationLink, Site, Space,
    User,
};
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// The email for `content`; `public_url` is where its links point, `now` when the minutes left on a
/// code or link are counted from.
pub fn compose(
    content: &Content,
    signer: &LinkSigner,
    public_url: &str,
    now: DateTime<Utc>,
) -> Email {
    let c = Composer {
        signer,
        base: public_url.trim_end_matches('/'),
        now,
    };
    match content {
        Content::Invite {
            invite,
            site,
            organization,
            inviter,
            space,
        } => c.invite(invite, site, organization, inviter, space.as_ref()),
        Content::LoginCode {
            user,
            organization,
            challenge,
        } => c.code(user, organization, challenge),
        Content::PasswordReset {
            user,
            organization,
            reset,
        } => c.reset(user, organization, reset),
        Content::Reverify {
            user,
            organization,
            link,
            until,
        } => c.reverify(user, organization, link, *until),
        Content::Notice {
            notice,
            site,
            organization,
            guest,
            recipient,
        } => c.notice(notice, site, organization, guest, recipient),
    }
}

struct Composer<'a> {
    signer: &'a LinkSigner,
    /// The public URL, without a trailing `/`.
    base: &'a str,
    now: DateTime<Utc>,
}

impl Composer<'_> {
    /// The page at `path` that opens the link token for `purpose`, `id` and `nonce`.
    fn link(&self, path: &str, purpose: LinkPurpose, id: Uuid, nonce: &[u8]) -> String {
        let token = self.signer.sign(purpose, id, nonce);
        format!("{}/{path}/{token}", self.base)
    }

    /// Whole minutes until `until`, never fewer than one.
    fn minutes_left(&self, until: DateTime<Utc>) -> i64 {
        (until - self.now).num_minutes().max(1)
    }

    fn invite(
        &self,
        invite: &Invite,
        site: &Site,
        organization: &Organization,
        inviter: &User,
        space: Option<&Space>,
    ) -> Email {
        Email::Invite(InviteEmail {
            inviter: inviter.display_name.clone(),
            organization: organization.name.clone(),
            site: site.name.clone(),
            space: space.map(|s| s.name.clone()),
            role: invite.role().map_or("a member", |r| r.describe()),
            message: invite.personal_message.clone(),
            link: self.link(
                "invite",
                LinkPurpose::Invite,
                invite.id,
                &invite.token_nonce,
            ),
            expires: format_datetime(invite.expires_at),
        })
    }

    fn code(&self, user: &User, organization: &Organization, challenge: &LoginChallenge) -> Email {
        Email::Code(CodeEmail {
            purpose: match challenge.purpose {
                ChallengePurpose::Reverify => CodeEmail::VERIFY_ADDRESS,
                ChallengePurpose::Login => CodeEmail::SIGN_IN,
            },
            name: user.display_name.clone(),
            organization: organization.name.clone(),
            code: self.signer.code(challenge.id, &challenge.code_nonce),
            minutes: self.minutes_left(challenge.expires_at),
        })
    }

    fn reset(&self, user: &User, organization: &Organization, reset: &PasswordReset) -> Email {
        Email::Reset(ResetEmail {
            name: user.display_name.clone(),
            organization: organization.name.clone(),
            link: self.link(
                "reset",
                LinkPurpose::PasswordReset,
                reset.id,
                &reset.token_nonce,
            ),
            minutes: self.minutes_left(reset.expires_at),
        })
    }

    fn reverify(
        &self,
        user: &User,
        organization: &Organization,
        link: &ReverificationLink,
        until: DateTime<Utc>,
    ) -> Email {
        Email::Reverify(ReverifyEmail {
            name: user.display_name.clone(),
            organization: organization.name.clone(),
            link: self.link("verify", LinkPurpose::Reverify, link.id, &link.token_nonce),
            until: format_datetime(until),
        })
    }

    /// A request for more time, or a reminder that access ends (to the guest or their sponsor).
    fn notice(
        &self,
        notice: &Notice,
        site: &Site,
        organization: &Organization,
        guest: &User,
        recipient: &User,
    ) -> Email {
        Email::Notice(NoticeEmail {
            request: match notice.kind {
                NoticeKind::ExtensionRequest => true,
                NoticeKind::LifetimeReminder => false,
            },
            to_guest: recipient.id == guest.id,
            recipient: recipient.display_name.clone(),
            guest: guest.display_name.clone(),
            guest_email: guest.email.clone(),
            site: site.name.clone(),
            organization: organization.name.clone(),
            ends: notice.ends_at.map(format_datetime),
            message: notice.message.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 4, h, m, 0).unwrap()
    }

    fn now() -> DateTime<Utc> {
        at(9, 30)
    }

    fn signer() -> LinkSigner {
        LinkSigner::new("compose-test-secret")
    }

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn organization() -> Organization {
        Organization {
            id: id(1),
            name: "Acme".into(),
            slug: "acme".into(),
            created_at: at(0, 0),
        }
    }

    fn site() -> Site {
        Site {
            id: id(2),
            organization_id: id(1),
            name: "Docs".into(),
            user_limit: 10,
            guest_ratio: 5,
            invite_expiry_days: 7,
            created_at: at(0, 0),
            max_guest_lifetime_days: None,
            guest_reminder_days: 7,
        }
    }

    fn user(n: u128, name: &str, email: &str) -> User {
        User {
            id: id(n),
            organization_id: id(1),
            email: email.into(),
            email_normalized: email.to_lowercase(),
            display_name: name.into(),
            password_hash: None,
            status: crate::domain::status::UserStatus::Active,
            invited_by: None,
            two_step_required: false,
            created_at: at(0, 0),
            verified_at: None,
            last_active_at: None,
            email_domain: crate::domain::email::domain_of(email).into(),
        }
    }

    fn ada() -> User {
        user(10, "Ada Lovelace", "ada@acme.example")
    }

    fn grace() -> User {
        user(11, "Grace Hopper", "grace@partner.example")
    }

    fn invite(role: Option<i16>, message: Option<&str>) -> Invite {
        Invite {
            id: id(20),
            site_id: id(2),
            email: "grace@partner.example".into(),
            email_normalized: "grace@partner.example".into(),
            role,
            space_id: Some(id(3)),
            personal_message: message.map(Into::into),
            invited_by: id(10),
            token_nonce: vec![7; 16],
            status: crate::domain::status::InviteStatus::Pending,
            created_at: at(9, 0),
            expires_at: at(9, 5) + chrono::Duration::days(7),
            accepted_at: None,
            accepted_user_id: None,
            revoked_at: None,
            access_ends_at: None,
            access_days: None,
        }
    }

    fn compose_now(content: &Content) -> Email {
        compose(content, &signer(), "https://gp.example/", now())
    }

    #[test]
    fn an_invite_carries_its_signed_link_role_space_and_expiry() {
        let guest = crate::domain::roles::ProductRole::Guest;
        let content = Content::Invite {
            invite: invite(Some(guest.rank()), Some("Welcome!")),
            site: site(),
            organization: organization(),
            inviter: ada(),
            space: Some(Space {
                id: id(3),
                site_id: id(2),
                key: "PART".into(),
                name: "Partners".into(),
                created_at: at(0, 0),
            }),
        };
        let token = signer().sign(LinkPurpose::Invite, id(20), &[7; 16]);
        assert_eq!(
            compose_now(&content),
            Email::Invite(InviteEmail {
                inviter: "Ada Lovelace".into(),
                organization: "Acme".into(),
                site: "Docs".into(),
                space: Some("Partners".into()),
                role: guest.describe(),
                message: Some("Welcome!".into()),
                link: format!("https://gp.example/invite/{token}"),
                expires: "11 December 2026 at 09:05 UTC".into(),
            })
        );
    }

    #[test]
    fn an_invite_without_a_role_or_space_invites_a_member() {
        let content = Content::Invite {
            invite: invite(None, None),
            site: site(),
            organization: organization(),
            inviter: ada(),
            space: None,
        };
        let Email::Invite(e) = compose_now(&content) else {
            panic!("not an invite")
        };
        assert_eq!((e.role, e.space, e.message), ("a member", None, None));
    }

    fn challenge(purpose: ChallengePurpose, expires_at: DateTime<Utc>) -> Content {
        Content::LoginCode {
            user: grace(),
            organization: organization(),
            challenge: LoginChallenge {
                id: id(30),
                user_id: id(11),
                method: crate::domain::status::ChallengeMethod::Email,
                code_nonce: vec![3; 16],
                created_at: at(9, 25),
                expires_at,
                failed_attempts: 0,
                consumed_at: None,
                purpose,
            },
        }
    }

    #[test]
    fn a_code_says_what_it_is_for_and_how_long_it_lasts() {
        let code = signer().code(id(30), &[3; 16]);
        assert_eq!(
            compose_now(&challenge(ChallengePurpose::Login, at(9, 40))),
            Email::Code(CodeEmail {
                purpose: CodeEmail::SIGN_IN,
                name: "Grace Hopper".into(),
                organization: "Acme".into(),
                code,
                minutes: 10,
            })
        );
        let Email::Code(e) = compose_now(&challenge(ChallengePurpose::Reverify, at(9, 40))) else {
            panic!("not a code")
        };
        assert_eq!(e.purpose, CodeEmail::VERIFY_ADDRESS);
        // Never "0 minutes": a code about to expire still reads as one minute.
        let Email::Code(e) = compose_now(&challenge(ChallengePurpose::Login, now())) else {
            panic!("not a code")
        };
        assert_eq!(e.minutes, 1);
    }

    #[test]
    fn a_reset_carries_its_signed_link_and_minutes_left() {
        let content = Content::PasswordReset {
            user: grace(),
            organization: organization(),
            reset: PasswordReset {
                id: id(40),
                user_id: id(11),
                token_nonce: vec![4; 16],
                created_at: at(9, 30),
                expires_at: at(10, 0),
                used_at: None,
            },
        };
        let token = signer().sign(LinkPurpose::PasswordReset, id(40), &[4; 16]);
        assert_eq!(
            compose_now(&content),
            Email::Reset(ResetEmail {
                name: "Grace Hopper".into(),
                organization: "Acme".into(),
                link: format!("https://gp.example/reset/{token}"),
                minutes: 30,
            })
        );
    }

    #[test]
    fn a_reverification_carries_its_signed_link_and_the_period_end() {
        let content = Content::Reverify {
            user: grace(),
            organization: organization(),
            link: ReverificationLink {
                id: id(50),
                user_id: id(11),
                token_nonce: vec![5; 16],
                created_at: at(9, 30),
                expires_at: at(9, 30) + chrono::Duration::days(7),
                used_at: None,
            },
            until: at(23, 59) + chrono::Duration::days(3),
        };
        let token = signer().sign(LinkPurpose::Reverify, id(50), &[5; 16]);
        assert_eq!(
            compose_now(&content),
            Email::Reverify(ReverifyEmail {
                name: "Grace Hopper".into(),
                organization: "Acme".into(),
                link: format!("https://gp.example/verify/{token}"),
                until: "7 December 2026 at 23:59 UTC".into(),
            })
        );
    }

    fn notice(kind: NoticeKind, recipient: User, ends_at: Option<DateTime<Utc>>) -> Content {
        Content::Notice {
            notice: Notice {
                id: id(60),
                kind,
                site_id: id(2),
                guest_id: id(11),
                recipient_id: recipient.id,
                ends_at,
                message: Some("Until March, please.".into()),
                created_at: at(9, 0),
            },
            site: site(),
            organization: organization(),
            guest: grace(),
            recipient,
        }
    }

    #[test]
    fn a_notice_is_a_request_or_a_reminder_to_the_guest_or_their_sponsor() {
        let ends = Some(at(12, 0) + chrono::Duration::days(14));
        assert_eq!(
            compose_now(&notice(NoticeKind::ExtensionRequest, ada(), ends)),
            Email::Notice(NoticeEmail {
                request: true,
                to_guest: false,
                recipient: "Ada Lovelace".into(),
                guest: "Grace Hopper".into(),
                guest_email: "grace@partner.example".into(),
                site: "Docs".into(),
                organization: "Acme".into(),
                ends: Some("18 December 2026 at 12:00 UTC".into()),
                message: Some("Until March, please.".into()),
            })
        );
        let Email::Notice(to_guest) =
            compose_now(&notice(NoticeKind::LifetimeReminder, grace(), ends))
        else {
            panic!("not a notice")
        };
        assert_eq!((to_guest.request, to_guest.to_guest), (false, true));
        let Email::Notice(open) = compose_now(&notice(NoticeKind::LifetimeReminder, ada(), None))
        else {
            panic!("not a notice")
        };
        assert_eq!((open.to_guest, open.ends), (false, None));
    }
}
