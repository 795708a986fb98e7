//! What a person holds on a site, derived from their grants: the one home of the rules "effective
//! role", "guest", "former paid" and "external" as the maintained access state stores them. The
//! access-change engine (`store::changes`) loads [`Facts`], asks [`derive`] and writes the answer;
//! every read (lists, seat counts, standings) reads the stored answer instead of re-deriving it.

use crate::domain::ProductRole;
use crate::domain::seats::Counts;
use uuid::Uuid;

/// Everything the rules read about one person on one site.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Facts {
    /// The account is active (a deactivated account keeps its grants but holds nothing).
    pub active: bool,
    /// Their direct role on the site.
    pub direct: Option<ProductRole>,
    /// Every group they belong to that holds a role on the site, with that role.
    pub groups: Vec<(Uuid, ProductRole)>,
    /// They have held a paid role on the site at some point (their guest grants are void there).
    pub former_paid: bool,
    /// The space of their guest grant on the site, if one is assigned.
    pub guest_space: Option<Uuid>,
    /// Their email domain is not one their organization verified.
    pub external: bool,
}

/// What a person holds on a site: the maintained row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Access {
    pub role: ProductRole,
    /// The effective role comes (also) from their direct grant.
    pub direct: bool,
    /// The groups whose role on the site is the effective role, sorted.
    pub via_groups: Vec<Uuid>,
    /// A guest's space; always `None` for paid people (they reach every space).
    pub guest_space: Option<Uuid>,
    pub external: bool,
}

/// The effective role and where it comes from; `None` when the person holds nothing on the site.
///
/// The rule: the highest of the direct role and the groups' roles, for an active account; a guest
/// grant is void for someone who has ever been paid on the site (the product forbids turning current
/// or former paid users into guests), so such a person has no access rather than guest access.
pub fn derive(f: &Facts) -> Option<Access> {
    if !f.active {
        return None;
    }
    let role =
        crate::domain::effective_role(f.direct, f.groups.iter().map(|(_, r)| *r), f.former_paid)?;
    let mut via_groups: Vec<Uuid> = f
        .groups
        .iter()
        .filter(|(_, r)| *r == role)
        .map(|(g, _)| *g)
        .collect();
    via_groups.sort();
    via_groups.dedup();
    Some(Access {
        role,
        direct: f.direct == Some(role),
        via_groups,
        guest_space: if role == ProductRole::Guest {
            f.guest_space
        } else {
            None
        },
        external: f.external,
    })
}

/// Whether someone holds anything anywhere (a role on some site, or an administrator's grant): the
/// rule behind API-token validity and "sessions end when the last access ends".
pub fn has_any_access(admin_anywhere: bool, roles: impl IntoIterator<Item = ProductRole>) -> bool {
    admin_anywhere || roles.into_iter().next().is_some()
}

/// The role an open invite occupies a seat as (and would grant): its own role or the best role its
/// groups hold on its site, whichever is higher; `None` when the invite is not open or grants nothing.
pub fn invite_holds(
    open: bool,
    own: Option<ProductRole>,
    group_roles: impl IntoIterator<Item = ProductRole>,
) -> Option<ProductRole> {
    if !open {
        return None;
    }
    own.into_iter().chain(group_roles).max()
}

/// How a site's counters move when one person's role goes from `before` to `after`.
pub fn member_delta(before: Option<ProductRole>, after: Option<ProductRole>) -> Counts {
    let mut d = Counts::default();
    for (role, sign) in [(before, -1), (after, 1)] {
        match role {
            Some(r) if r.is_paid() => d.paid += sign,
            Some(_) => d.guests += sign,
            None => {}
        }
    }
    d
}

/// How a site's counters move when one open invite's seat goes from `before` to `after`.
pub fn invite_delta(before: Option<ProductRole>, after: Option<ProductRole>) -> Counts {
    let m = member_delta(before, after);
    Counts {
        pending_paid: m.paid,
        pending_guests: m.guests,
        ..Counts::default()
    }
}

/// What `n` new invites that grant `role` add to a site's counters (the seats they hold).
pub fn new_invites_delta(role: ProductRole, n: i64) -> Counts {
    let one = invite_delta(None, Some(role));
    Counts {
        pending_paid: one.pending_paid * n,
        pending_guests: one.pending_guests * n,
        ..Counts::default()
    }
}

/// Counts added together (deltas onto counters).
pub fn add(a: Counts, b: Counts) -> Counts {
    Counts {
        paid: a.paid + b.paid,
        guests: a.guests + b.guests,
        pending_paid: a.pending_paid + b.pending_paid,
        pending_guests: a.pending_guests + b.pending_guests,
    }
}

#[cfg(test)]
mod tests {
    use super::ProductRole::*;
    use super::*;

    #[test]
    fn new_invites_hold_pending_seats_of_their_role() {
        let c = |pending_paid, pending_guests| Counts {
            pending_paid,
            pending_guests,
            ..Counts::default()
        };
        assert_eq!(new_invites_delta(Guest, 10), c(0, 10));
        assert_eq!(new_invites_delta(User, 3), c(3, 0));
        assert_eq!(new_invites_delta(ProductAdmin, 1), c(1, 0));
        assert_eq!(new_invites_delta(Guest, 1), invite_delta(None, Some(Guest)));
    }

    fn g(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    #[test]
    fn the_highest_grant_wins_and_says_where_it_comes_from() {
        let f = Facts {
            active: true,
            direct: Some(Guest),
            groups: vec![(g(2), User), (g(1), User), (g(3), Guest)],
            guest_space: Some(g(9)),
            ..Facts::default()
        };
        let a = derive(&f).unwrap();
        assert_eq!(a.role, User);
        assert!(!a.direct);
        assert_eq!(a.via_groups, vec![g(1), g(2)]);
        assert_eq!(a.guest_space, None, "paid people have no guest space");
    }

    #[test]
    fn deactivated_accounts_and_void_guest_grants_hold_nothing() {
        let f = Facts {
            active: false,
            direct: Some(ProductAdmin),
            ..Facts::default()
        };
        assert_eq!(derive(&f), None);
        let f = Facts {
            active: true,
            direct: Some(Guest),
            former_paid: true,
            ..Facts::default()
        };
        assert_eq!(derive(&f), None);
        let f = Facts {
            active: true,
            groups: vec![(g(1), Guest)],
            guest_space: Some(g(5)),
            external: true,
            ..Facts::default()
        };
        let a = derive(&f).unwrap();
        assert_eq!(
            (a.role, a.guest_space, a.external),
            (Guest, Some(g(5)), true)
        );
    }

    #[test]
    fn invites_hold_a_seat_only_while_open() {
        assert_eq!(invite_holds(true, Some(Guest), [User]), Some(User));
        assert_eq!(invite_holds(true, None, []), None);
        assert_eq!(invite_holds(false, Some(User), []), None);
    }

    #[test]
    fn deltas_move_one_seat_between_kinds() {
        let d = member_delta(Some(Guest), Some(User));
        assert_eq!((d.paid, d.guests), (1, -1));
        let d = invite_delta(Some(User), None);
        assert_eq!((d.pending_paid, d.pending_guests, d.paid), (-1, 0, 0));
        assert_eq!(
            member_delta(Some(User), Some(ProductAdmin)),
            Counts::default()
        );
        assert!(has_any_access(false, [Guest]) && !has_any_access(false, []));
    }
}
