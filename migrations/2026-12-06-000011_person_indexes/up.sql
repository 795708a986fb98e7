-- Lookups by person. The policy's `persons` statement (where each listed person holds any grant),
-- the engine's per-person derivation and account deletion (ON DELETE CASCADE / SET NULL) all find a
-- person's rows by user_id; without these, each was a scan of the whole table per person (measured:
-- the guest list's `persons` statement cost 45 to 80 ms on the 10,000-user site once a 100,000-user
-- organization shared the database, a sequential scan of guest_spaces for each of the 50 rows).
CREATE INDEX guest_spaces_user ON guest_spaces (user_id);
CREATE INDEX site_admins_user ON site_admins (user_id);
CREATE INDEX space_admins_user ON space_admins (user_id);
CREATE INDEX org_admins_user ON org_admins (user_id);
CREATE INDEX site_paid_history_user ON site_paid_history (user_id);
CREATE INDEX guest_terms_user ON guest_terms (user_id);
CREATE INDEX invite_groups_group ON invite_groups (group_id);
CREATE INDEX users_invited_by ON users (invited_by) WHERE invited_by IS NOT NULL;
CREATE INDEX group_members_added_by ON group_members (added_by) WHERE added_by IS NOT NULL;

-- Every site where a person holds any grant, for the policy's `persons` facts: a view, so the
-- statement reading it is built by diesel's query builder and prepared once per connection
-- (PostgreSQL pushes `user_id = ANY($1)` into each branch of the union).
CREATE VIEW person_sites AS
    SELECT user_id, site_id FROM product_roles
    UNION SELECT gm.user_id, gsr.site_id FROM group_members gm JOIN group_site_roles gsr ON gsr.group_id = gm.group_id
    UNION SELECT user_id, site_id FROM site_members
    UNION SELECT user_id, site_id FROM site_admins
    UNION SELECT user_id, site_id FROM guest_spaces;
