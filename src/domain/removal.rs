//! What taking a person off one site may touch. A removal is about one site: it must not quietly take
//! away what the person holds elsewhere, so a group that also grants on other sites is not left on
//! the way (the caller is told which, and decides), and sessions end only when nothing is left.

use uuid::Uuid;

/// What a removal does with the person's groups that grant a role on the site and on others too.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupsElsewhere {
    /// Refuse the removal, naming the groups: someone asked for it and can resolve it (take the
    /// person out of the group, or the group's role on this site away).
    Refuse,
    /// Leave them anyway: nobody can be asked (a guest's lifetime ending on schedule), and the
    /// end of access must happen.
    Leave,
}

/// The groups to leave, given the person's groups that grant a role on `site`, each with every site
/// it grants on. `Err` names the groups that reach beyond `site` when they are to be refused.
pub fn groups_to_leave<G>(
    site: Uuid,
    groups: Vec<(G, Vec<Uuid>)>,
    elsewhere: GroupsElsewhere,
) -> Result<Vec<G>, Vec<G>> {
    if elsewhere == GroupsElsewhere::Leave {
        return Ok(groups.into_iter().map(|(g, _)| g).collect());
    }
    let (local, wide): (Vec<_>, Vec<_>) = groups
        .into_iter()
        .partition(|(_, sites)| sites.iter().all(|s| *s == site));
    if wide.is_empty() {
        Ok(local.into_iter().map(|(g, _)| g).collect())
    } else {
        Err(wide.into_iter().map(|(g, _)| g).collect())
    }
}

/// Whether a removal ends all the person's sessions: only when they are left with access nowhere
/// (sessions are per account, not per site), and never when a guest leaves on their own (they are
/// signed in right now and see where they stand next).
pub fn ends_sessions(guest_leaving: bool, access_left_anywhere: bool) -> bool {
    !guest_leaving && !access_left_anywhere
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    #[test]
    fn groups_reaching_only_this_site_are_left() {
        let groups = vec![("a", vec![id(1)]), ("b", vec![id(1), id(1)])];
        assert_eq!(
            groups_to_leave(id(1), groups, GroupsElsewhere::Refuse),
            Ok(vec!["a", "b"])
        );
        assert_eq!(
            groups_to_leave::<&str>(id(1), vec![], GroupsElsewhere::Refuse),
            Ok(vec![])
        );
    }

    #[test]
    fn a_group_reaching_another_site_is_refused_by_name() {
        let groups = vec![("local", vec![id(1)]), ("wide", vec![id(1), id(2)])];
        assert_eq!(
            groups_to_leave(id(1), groups.clone(), GroupsElsewhere::Refuse),
            Err(vec!["wide"])
        );
        assert_eq!(
            groups_to_leave(id(1), groups, GroupsElsewhere::Leave),
            Ok(vec!["local", "wide"])
        );
    }

    #[test]
    fn sessions_end_only_when_nothing_is_left() {
        assert!(ends_sessions(false, false));
        assert!(!ends_sessions(false, true));
        assert!(!ends_sessions(true, false));
        assert!(!ends_sessions(true, true));
    }
}
