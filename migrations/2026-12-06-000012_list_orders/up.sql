-- Orders of the guest list (`guests(orderBy:)`) and the site's bulk invites, each an index scan for a
-- page: a page walks the order's index from its cursor (a row comparison on the index's columns) and
-- stops after the page. The sort expressions are the store's (`store::guests`), word for word.

-- By display name, letter case aside: the organization's people in that order, each looked up in
-- site_members by its key. (The keys of these two orders live on users, not on the maintained
-- site_members rows, so the walk is over the organization's people.)
CREATE INDEX users_org_display_name ON users (organization_id, lower(display_name), id);
-- By last activity; never active counts as the earliest.
CREATE INDEX users_org_last_active
    ON users (organization_id, COALESCE(last_active_at, '-infinity'::timestamptz), id);
-- By end of access: a site's guest terms by end (no end counts as the latest) ...
CREATE INDEX guest_terms_site_ends
    ON guest_terms (site_id, COALESCE(ends_at, 'infinity'::timestamptz), user_id);
-- ... merged with the guests who have no terms on the site (no end either), by id.
CREATE INDEX site_members_guests_by_id ON site_members (site_id, user_id) WHERE role = 1;

-- A site's bulk invites, newest first, the id breaking ties.
DROP INDEX bulk_invites_site;
CREATE INDEX bulk_invites_site ON bulk_invites (site_id, created_at DESC, id DESC);
