//! Product roles and the effective-role rule.

use serde::{Deserialize, Serialize};

/// A product role on one site. The order matters: the effective role is the highest one held.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    async_graphql::Enum,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ProductRole {
    /// Free up to the guest ratio; confined to one space.
    Guest = 1,
    /// A paid user: reaches every space of the site.
    User = 2,
    /// A paid user who also manages the site's spaces.
    ProductAdmin = 3,
}

impl ProductRole {
    /// The value stored in the database (`smallint`, ordered).
    pub fn rank(self) -> i16 {
        self as i16
    }

    pub fn from_rank(rank: i16) -> Option<Self> {
        match rank {
            1 => Some(Self::Guest),
            2 => Some(Self::User),
            3 => Some(Self::ProductAdmin),
            _ => None,
        }
    }

    /// The role's name in the API and in files (`GUEST`, `USER`, `PRODUCT_ADMIN`).
    pub fn code(self) -> &'static str {
        match self {
            Self::Guest => "GUEST",
            Self::User => "USER",
            Self::ProductAdmin => "PRODUCT_ADMIN",
        }
    }

    /// The role named by [`ProductRole::code`].
    pub fn from_code(code: &str) -> Option<Self> {
        [Self::Guest, Self::User, Self::ProductAdmin]
            .into_iter()
            .find(|r| r.code() == code)
    }

    /// `USER` and `PRODUCT_ADMIN` cost a seat and raise the guest allowance.
    pub fn is_paid(self) -> bool {
        self >= Self::User
    }

    /// The role in plain words, for emails and pages.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Guest => "a guest with access to one space",
            Self::User => "a user",
            Self::ProductAdmin => "a product admin",
        }
    }
}

/// The role a person actually has on a site: the highest of their direct role and their groups' roles.
///
/// A guest grant is void for someone who has ever been paid on the site (the product forbids turning
/// current or former paid users into guests), so such a person has no access rather than guest access.
pub fn effective_role(
    direct: Option<ProductRole>,
    group_roles: impl IntoIterator<Item = ProductRole>,
    former_paid: bool,
) -> Option<ProductRole> {
    let best = direct.into_iter().chain(group_roles).max()?;
    if best == ProductRole::Guest && former_paid {
        None
    } else {
        Some(best)
    }
}

/// Whether someone may answer for guests of a site (be their sponsor, act as one): an active account
/// that administers the site or holds a paid role there. A sponsorship acts only while this holds, so
/// someone who loses it stops acting for their guests at once and those guests count as having no
/// sponsor, with nothing to clear; it acts again if they get it back.
pub fn may_sponsor(active: bool, site_admin: bool, role: Option<ProductRole>) -> bool {
    active && (site_admin || role.is_some_and(ProductRole::is_paid))
}

/// One person's effective role on one site before and after a change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RoleChange {
    pub site_id: uuid::Uuid,
    pub user_id: uuid::Uuid,
    pub before: Option<ProductRole>,
    pub after: Option<ProductRole>,
}

impl RoleChange {
    /// Had access to the site and has none now.
    pub fn lost_access(&self) -> bool {
        self.before.is_some() && self.after.is_none()
    }

    /// Holds a paid role after the change (their paid history on the site starts, or goes on).
    pub fn now_paid(&self) -> bool {
        self.after.is_some_and(ProductRole::is_paid)
    }

    /// Became a guest: they get their guest terms (a sponsor, and the site's maximum lifetime).
    pub fn became_guest(&self) -> bool {
        self.after == Some(ProductRole::Guest) && self.before != Some(ProductRole::Guest)
    }

    /// Was a guest and is not any more: their guest space goes (a paid person reaches every space,
    /// someone without access none).
    pub fn stopped_being_guest(&self) -> bool {
        self.before == Some(ProductRole::Guest) && self.after != Some(ProductRole::Guest)
    }
}

/// The role changes between two snapshots keyed by `(site, user)`, in a stable order (by site, then
/// user); pairs whose role did not change are left out.
pub fn diff_roles(
    before: &std::collections::HashMap<(uuid::Uuid, uuid::Uuid), Option<ProductRole>>,
    after: &std::collections::HashMap<(uuid::Uuid, uuid::Uuid), Option<ProductRole>>,
) -> Vec<RoleChange> {
    let keys: std::collections::BTreeSet<_> = before.keys().chain(after.keys()).copied().collect();
    keys.into_iter()
        .filter_map(|(site_id, user_id)| {
            let b = before.get(&(site_id, user_id)).copied().flatten();
            let a = after.get(&(site_id, user_id)).copied().flatten();
            (b != a).then_some(RoleChange {
                site_id,
                user_id,
                before: b,
                after: a,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::ProductRole::*;
    use super::*;

    #[test]
    fn highest_role_wins() {
        assert_eq!(effective_role(Some(Guest), [User], false), Some(User));
        assert_eq!(
            effective_role(Some(ProductAdmin), [Guest, User], false),
            Some(ProductAdmin)
        );
        assert_eq!(effective_role(None, [Guest], false), Some(Guest));
        assert_eq!(effective_role(None, [], false), None);
    }

    #[test]
    fn guest_grants_are_void_for_former_paid() {
        assert_eq!(effective_role(None, [Guest], true), None);
        assert_eq!(effective_role(Some(Guest), [], true), None);
        assert_eq!(effective_role(Some(Guest), [User], true), Some(User));
    }

    #[test]
    fn only_active_admins_and_paid_users_sponsor() {
        assert!(may_sponsor(true, false, Some(User)));
        assert!(may_sponsor(true, false, Some(ProductAdmin)));
        assert!(may_sponsor(true, true, None));
        assert!(!may_sponsor(true, false, Some(Guest)));
        assert!(!may_sponsor(true, false, None));
        assert!(!may_sponsor(false, true, Some(ProductAdmin)));
    }

    #[test]
    fn ranks_round_trip() {
        for r in [Guest, User, ProductAdmin] {
            assert_eq!(ProductRole::from_rank(r.rank()), Some(r));
        }
        assert_eq!(ProductRole::from_rank(0), None);
        assert!(!Guest.is_paid() && User.is_paid() && ProductAdmin.is_paid());
    }

    #[test]
    fn a_change_says_what_follows_from_it() {
        let id = uuid::Uuid::from_u128(1);
        let change = |before, after| RoleChange {
            site_id: id,
            user_id: id,
            before,
            after,
        };
        let invited = change(None, Some(Guest));
        assert!(invited.became_guest() && !invited.now_paid() && !invited.stopped_being_guest());
        let promoted = change(Some(Guest), Some(User));
        assert!(promoted.now_paid() && promoted.stopped_being_guest() && !promoted.became_guest());
        let removed = change(Some(Guest), None);
        assert!(removed.stopped_being_guest() && removed.lost_access() && !removed.now_paid());
        let demoted = change(Some(ProductAdmin), Some(User));
        assert!(demoted.now_paid() && !demoted.became_guest() && !demoted.stopped_being_guest());
        let paid_to_guest = change(Some(User), Some(Guest));
        assert!(paid_to_guest.became_guest() && !paid_to_guest.now_paid());
    }

    #[test]
    fn diff_lists_only_changes_in_order() {
        use std::collections::HashMap;
        let (s, a, b) = (
            uuid::Uuid::from_u128(1),
            uuid::Uuid::from_u128(2),
            uuid::Uuid::from_u128(3),
        );
        let before = HashMap::from([((s, a), Some(Guest)), ((s, b), Some(User))]);
        let after = HashMap::from([((s, a), Some(User)), ((s, b), Some(User))]);
        let d = diff_roles(&before, &after);
        assert_eq!(d.len(), 1);
        assert_eq!(
            (d[0].user_id, d[0].before, d[0].after),
            (a, Some(Guest), Some(User))
        );
        assert!(!d[0].lost_access());
        let gone = HashMap::from([((s, a), None), ((s, b), Some(User))]);
        let d = diff_roles(&before, &gone);
        assert!(d[0].lost_access());
    }
}
