DROP VIEW person_sites;
DROP INDEX guest_spaces_user, site_admins_user, space_admins_user, org_admins_user,
  site_paid_history_user, guest_terms_user, invite_groups_group, users_invited_by, group_members_added_by;
