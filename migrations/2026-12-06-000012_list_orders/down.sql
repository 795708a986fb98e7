DROP INDEX bulk_invites_site;
CREATE INDEX bulk_invites_site ON bulk_invites (site_id, created_at DESC);
DROP INDEX users_org_display_name, users_org_last_active, guest_terms_site_ends, site_members_guests_by_id;
