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
    fn ranks_round_trip() {
        for r in [Guest, User, ProductAdmin] {
            assert_eq!(ProductRole::from_rank(r.rank()), Some(r));
        }
        assert_eq!(ProductRole::from_rank(0), None);
        assert!(!Guest.is_paid() && User.is_paid() && ProductAdmin.is_paid());
    }
}
