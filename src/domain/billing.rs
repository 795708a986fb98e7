//! Why a person is (or is not) counted as a paid seat on a site: the answer to "why is this person
//! billable", derived from the same facts as the effective role.

use super::roles::{ProductRole, effective_role};
use serde::Serialize;

/// What makes a person billable, or not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, async_graphql::Enum)]
pub enum BillingReason {
    /// Their own role on the site is paid.
    DirectRole,
    /// A group they belong to gives them a paid role.
    Group,
    /// A guest: free within the site's guest allowance.
    GuestWithinAllowance,
    /// No access (or a deactivated account): not counted.
    None,
}

/// The verdict, with the group that decided it when a group did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Billing<G> {
    pub billable: bool,
    pub reason: BillingReason,
    pub group: Option<G>,
    pub is_former_paid: bool,
}

/// `groups`: the roles the person's groups give on the site. A direct role wins ties, so a person
/// is "billable through a group" only when the group gives more than their own role.
pub fn billing<G: Clone>(
    direct: Option<ProductRole>,
    groups: &[(G, ProductRole)],
    former_paid: bool,
    active: bool,
) -> Billing<G> {
    let best_group = groups.iter().max_by_key(|(_, r)| *r);
    let role = if active {
        effective_role(direct, groups.iter().map(|(_, r)| *r), former_paid)
    } else {
        None
    };
    let (billable, reason, group) = match role {
        Some(r) if r.is_paid() => match best_group {
            Some((g, gr)) if Some(*gr) > direct => (true, BillingReason::Group, Some(g.clone())),
            _ => (true, BillingReason::DirectRole, None),
        },
        Some(_) => (false, BillingReason::GuestWithinAllowance, None),
        None => (false, BillingReason::None, None),
    };
    Billing {
        billable,
        reason,
        group,
        is_former_paid: former_paid,
    }
}

#[cfg(test)]
mod tests {
    use super::ProductRole::*;
    use super::*;

    #[test]
    fn names_what_makes_someone_billable() {
        let b = billing(Some(Guest), &[("Staff", User)], true, true);
        assert_eq!(
            (b.billable, b.reason, b.group),
            (true, BillingReason::Group, Some("Staff"))
        );
        let b = billing(Some(User), &[("Staff", User)], true, true);
        assert_eq!(b.reason, BillingReason::DirectRole);
        let b = billing::<&str>(Some(Guest), &[], false, true);
        assert_eq!(
            (b.billable, b.reason),
            (false, BillingReason::GuestWithinAllowance)
        );
        // The group lost its role: former paid, not billable, not a guest either.
        let b = billing::<&str>(Some(Guest), &[], true, true);
        assert_eq!(
            (b.billable, b.reason, b.is_former_paid),
            (false, BillingReason::None, true)
        );
        let b = billing(Some(ProductAdmin), &[("Staff", User)], true, false);
        assert_eq!((b.billable, b.reason), (false, BillingReason::None));
    }
}
