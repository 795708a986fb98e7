DROP TABLE IF EXISTS email_deliveries, audit_events, sessions, api_tokens, invite_groups, invites, pages,
    guest_spaces, space_admins, spaces, group_members, group_site_roles, groups, site_paid_history,
    product_roles, site_admins, org_admins, users, sites, verified_domains, organizations CASCADE;
