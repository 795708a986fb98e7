//! Seat accounting: pure arithmetic over counts, so the rules can be unit-tested and the database
//! layer only has to count (under the site's row lock) and ask.

/// A site's limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub user_limit: i64,
    pub guest_ratio: i64,
}

/// What occupies a site: accepted paid users and guests (active accounts only), and pending invites
/// by the role they would grant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub paid: i64,
    pub guests: i64,
    pub pending_paid: i64,
    pub pending_guests: i64,
}

impl Counts {
    /// Seats taken against the user limit: pending invites count as the role they would grant.
    pub fn seats_used(&self) -> i64 {
        self.paid + self.guests + self.pending_paid + self.pending_guests
    }

    /// Guest slots taken against the guest allowance.
    pub fn guest_slots_used(&self) -> i64 {
        self.guests + self.pending_guests
    }

    /// These counts without `held`: what a site held before a change that is to be checked as if
    /// `held` were new (an invite being accepted is re-checked as a new seat, under the limits of
    /// now, not those of when it was sent).
    pub fn without(self, held: Counts) -> Counts {
        Counts {
            paid: self.paid - held.paid,
            guests: self.guests - held.guests,
            pending_paid: self.pending_paid - held.pending_paid,
            pending_guests: self.pending_guests - held.pending_guests,
        }
    }
}

/// The usage report shown to admins (`seatUsage`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Usage {
    pub counts: Counts,
    pub limits: Limits,
    /// Only accepted paid users raise it: `ratio x paid`.
    pub guest_allowance: i64,
    /// Negative when the site is over its user limit (after a limit was lowered).
    pub remaining_seats: i64,
    /// The smaller of the guest slots left and the remaining seats, never below zero.
    pub remaining_guest_slots: i64,
    pub over_guest_allowance_by: i64,
}

pub fn usage(limits: Limits, counts: Counts) -> Usage {
    let guest_allowance = limits.guest_ratio.saturating_mul(counts.paid);
    let remaining_seats = limits.user_limit - counts.seats_used();
    let guest_slots_left = guest_allowance - counts.guest_slots_used();
    Usage {
        counts,
        limits,
        guest_allowance,
        remaining_seats,
        remaining_guest_slots: guest_slots_left.min(remaining_seats).max(0),
        over_guest_allowance_by: (-guest_slots_left).max(0),
    }
}

/// Why a change was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Violation {
    /// Paid plus guests (pending included) would pass the user limit.
    SeatLimit { remaining: i64 },
    /// Guests (pending included) would pass `ratio x paid`.
    GuestLimit { remaining: i64 },
}

/// Checks a change from `before` to `after`.
///
/// Only what a change *adds* is limited: a change that takes seats or guests away is never refused,
/// even when the site stays over a limit, and a change that adds nothing of a kind is not checked for it.
/// The user limit is checked before the guest allowance (the documented error order).
pub fn check_change(limits: Limits, before: Counts, after: Counts) -> Result<(), Violation> {
    let was = usage(limits, before);
    let now = usage(limits, after);
    if after.seats_used() > before.seats_used() && now.remaining_seats < 0 {
        return Err(Violation::SeatLimit {
            remaining: was.remaining_seats.max(0),
        });
    }
    if after.guest_slots_used() > before.guest_slots_used() && now.over_guest_allowance_by > 0 {
        return Err(Violation::GuestLimit {
            remaining: was.remaining_guest_slots,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        user_limit: 20,
        guest_ratio: 5,
    };

    fn counts(paid: i64, guests: i64, pending_paid: i64, pending_guests: i64) -> Counts {
        Counts {
            paid,
            guests,
            pending_paid,
            pending_guests,
        }
    }

    fn add_guest(c: Counts) -> Counts {
        Counts {
            pending_guests: c.pending_guests + 1,
            ..c
        }
    }

    #[test]
    fn two_paid_users_allow_ten_guests() {
        let mut c = counts(2, 0, 0, 0);
        for _ in 0..10 {
            let next = add_guest(c);
            assert_eq!(check_change(LIMITS, c, next), Ok(()));
            c = next;
        }
        assert_eq!(
            check_change(LIMITS, c, add_guest(c)),
            Err(Violation::GuestLimit { remaining: 0 })
        );
        let u = usage(LIMITS, c);
        assert_eq!(
            (
                u.guest_allowance,
                u.remaining_seats,
                u.remaining_guest_slots
            ),
            (10, 8, 0)
        );
    }

    #[test]
    fn user_limit_is_checked_first() {
        let limits = Limits {
            user_limit: 5,
            guest_ratio: 5,
        };
        let c = counts(1, 4, 0, 0);
        assert_eq!(
            check_change(limits, c, add_guest(c)),
            Err(Violation::SeatLimit { remaining: 0 })
        );
        let c = counts(1, 2, 0, 0);
        assert_eq!(check_change(limits, c, add_guest(c)), Ok(()));
    }

    #[test]
    fn pending_paid_invites_take_seats_but_do_not_raise_the_allowance() {
        let before = counts(2, 0, 0, 0);
        let after = counts(2, 0, 1, 0);
        assert_eq!(usage(LIMITS, after).remaining_guest_slots, 10);
        assert_eq!(usage(LIMITS, after).remaining_seats, 17);
        assert_eq!(check_change(LIMITS, before, after), Ok(()));
        // accepted: the allowance grows
        assert_eq!(usage(LIMITS, counts(3, 0, 0, 0)).remaining_guest_slots, 15);
    }

    #[test]
    fn removals_are_never_refused_and_over_sites_accept_nothing_new() {
        // a paid user removed leaves the site over its guest allowance
        let before = counts(2, 10, 0, 0);
        let after = counts(1, 10, 0, 0);
        assert_eq!(check_change(LIMITS, before, after), Ok(()));
        let u = usage(LIMITS, after);
        assert_eq!((u.over_guest_allowance_by, u.remaining_guest_slots), (5, 0));
        assert_eq!(
            check_change(LIMITS, after, add_guest(after)),
            Err(Violation::GuestLimit { remaining: 0 })
        );
        // a lowered user limit: negative remaining seats, new seats refused, paid additions too
        let lowered = Limits {
            user_limit: 3,
            guest_ratio: 5,
        };
        let u = usage(lowered, after);
        assert_eq!(u.remaining_seats, -8);
        assert_eq!(
            check_change(lowered, after, counts(2, 10, 0, 0)),
            Err(Violation::SeatLimit { remaining: 0 })
        );
        // removing guests while over is fine
        assert_eq!(check_change(lowered, after, counts(1, 9, 0, 0)), Ok(()));
    }

    #[test]
    fn moving_a_guest_to_paid_adds_no_seat() {
        let before = counts(1, 5, 0, 0);
        let after = counts(2, 4, 0, 0);
        let full = Limits {
            user_limit: 6,
            guest_ratio: 5,
        };
        assert_eq!(check_change(full, before, after), Ok(()));
    }

    #[test]
    fn a_seat_held_before_is_checked_as_new_without_it() {
        // A guest invite accepted on a site whose allowance was lowered since it was sent: as a
        // move from pending to accepted it adds nothing, without the invite's slot it adds a guest.
        let lowered = Limits {
            user_limit: 20,
            guest_ratio: 4,
        };
        let before = counts(2, 9, 0, 1);
        let after = counts(2, 10, 0, 0);
        let invite = counts(0, 0, 0, 1);
        assert_eq!(before.without(invite), counts(2, 9, 0, 0));
        assert_eq!(check_change(lowered, before, after), Ok(()));
        assert_eq!(
            check_change(lowered, before.without(invite), after),
            Err(Violation::GuestLimit { remaining: 0 })
        );
        assert_eq!(before.without(Counts::default()), before);
    }

    #[test]
    fn zero_ratio_means_no_guests() {
        let limits = Limits {
            user_limit: 10,
            guest_ratio: 0,
        };
        let c = counts(3, 0, 0, 0);
        assert_eq!(
            check_change(limits, c, add_guest(c)),
            Err(Violation::GuestLimit { remaining: 0 })
        );
    }
}
