-- The maintained access state: what each person holds on each site and what occupies each site,
-- derived from the grants (product_roles, group roles and members, guest_spaces, site_paid_history,
-- invites) by the rules in `domain::access` and written only by the access-change engine
-- (`store::changes`) in the transaction of the grant change that causes it. Reads (the lists, the seat
-- counts, standings) read these rows instead of re-deriving roles from the grants, so they cost what
-- the page costs, not what the site holds. `guestpass check-access` recomputes them from the grants
-- and reports (or repairs) any difference; `migrate` fills them for an existing database.

-- Whether a person's email domain is not one their organization verified (`domain::policy`).
ALTER TABLE users ADD COLUMN external boolean NOT NULL DEFAULT true;

-- One row per (site, person) with access: active accounts whose effective role there is not void.
CREATE TABLE site_members (
    site_id uuid NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role smallint NOT NULL CHECK (role BETWEEN 1 AND 3),
    -- Where the effective role comes from: the direct grant, and the groups that hold it on the site.
    direct boolean NOT NULL,
    via_groups uuid[] NOT NULL,
    -- A guest's space (never set for paid people).
    guest_space_id uuid,
    external boolean NOT NULL,
    -- The lists' sort key, copied from users.email_normalized.
    email_normalized text NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (site_id, user_id),
    CHECK (guest_space_id IS NULL OR role = 1)
);
-- The directory (everyone with access, by email), guests by email, guests of a space, external people.
CREATE INDEX site_members_by_email ON site_members (site_id, email_normalized, user_id);
CREATE INDEX site_members_guests ON site_members (site_id, email_normalized, user_id) WHERE role = 1;
CREATE INDEX site_members_space ON site_members (guest_space_id, email_normalized, user_id)
    WHERE guest_space_id IS NOT NULL;
CREATE INDEX site_members_external ON site_members (site_id, role, email_normalized, user_id) WHERE external;
CREATE INDEX site_members_user ON site_members (user_id);

-- What occupies each site: the one row a seat decision reads and writes under the site's lock.
-- Open invites count by the role they hold (`invites.holds_role`) until they are accepted, revoked
-- or closed as expired (the engine closes a site's expired invites when it locks the site).
CREATE TABLE site_counters (
    site_id uuid PRIMARY KEY REFERENCES sites (id) ON DELETE CASCADE,
    paid bigint NOT NULL DEFAULT 0 CHECK (paid >= 0),
    guests bigint NOT NULL DEFAULT 0 CHECK (guests >= 0),
    pending_paid bigint NOT NULL DEFAULT 0 CHECK (pending_paid >= 0),
    pending_guests bigint NOT NULL DEFAULT 0 CHECK (pending_guests >= 0)
);

-- The role an open invite holds a seat as (its own role or its groups' best role on the site);
-- NULL once it is not open.
ALTER TABLE invites ADD COLUMN holds_role smallint CHECK (holds_role BETWEEN 1 AND 3);
CREATE INDEX invites_open_expiry ON invites (site_id, expires_at) WHERE status = 'PENDING';
