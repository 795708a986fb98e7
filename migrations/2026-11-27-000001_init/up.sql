-- Guestpass initial schema. Rules that must hold whatever the code does live here as constraints.

CREATE TABLE organizations (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    slug text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    created_at timestamptz NOT NULL
);

-- Email domains the organization owns; users outside them are external.
CREATE TABLE verified_domains (
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    domain text NOT NULL CHECK (domain = lower(domain) AND char_length(domain) BETWEEN 1 AND 253),
    created_at timestamptz NOT NULL,
    PRIMARY KEY (organization_id, domain)
);

CREATE TABLE sites (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    user_limit integer NOT NULL CHECK (user_limit >= 0),
    guest_ratio integer NOT NULL DEFAULT 5 CHECK (guest_ratio >= 0),
    invite_expiry_days integer NOT NULL DEFAULT 7 CHECK (invite_expiry_days BETWEEN 1 AND 90),
    created_at timestamptz NOT NULL,
    UNIQUE (organization_id, name),
    UNIQUE (id, organization_id)
);

CREATE TABLE users (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    email text NOT NULL CHECK (char_length(email) BETWEEN 3 AND 254),
    -- lower-cased copy: accounts are unique per organization case-insensitively
    email_normalized text NOT NULL CHECK (email_normalized = lower(email)),
    display_name text NOT NULL CHECK (char_length(display_name) BETWEEN 1 AND 200),
    password_hash text,
    status text NOT NULL DEFAULT 'ACTIVE' CHECK (status IN ('ACTIVE', 'DEACTIVATED')),
    invited_by uuid REFERENCES users (id) ON DELETE SET NULL,
    two_step_required boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL,
    UNIQUE (organization_id, email_normalized),
    UNIQUE (id, organization_id)
);

CREATE TABLE org_admins (
    organization_id uuid NOT NULL,
    user_id uuid NOT NULL,
    granted_at timestamptz NOT NULL,
    PRIMARY KEY (organization_id, user_id),
    FOREIGN KEY (user_id, organization_id) REFERENCES users (id, organization_id) ON DELETE CASCADE
);

CREATE TABLE site_admins (
    site_id uuid NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    granted_at timestamptz NOT NULL,
    PRIMARY KEY (site_id, user_id)
);

-- Product roles: 1 = GUEST, 2 = USER, 3 = PRODUCT_ADMIN (ordered, so the effective role is a max()).
CREATE TABLE product_roles (
    site_id uuid NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role smallint NOT NULL CHECK (role BETWEEN 1 AND 3),
    granted_at timestamptz NOT NULL,
    PRIMARY KEY (site_id, user_id)
);
CREATE INDEX product_roles_user ON product_roles (user_id);

-- The first moment a user held a paid effective role on a site: from then on they can never be a guest there.
CREATE TABLE site_paid_history (
    site_id uuid NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    first_paid_at timestamptz NOT NULL,
    PRIMARY KEY (site_id, user_id)
);

CREATE TABLE groups (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    name_normalized text NOT NULL CHECK (name_normalized = lower(name)),
    created_at timestamptz NOT NULL,
    UNIQUE (organization_id, name_normalized)
);

CREATE TABLE group_site_roles (
    group_id uuid NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    site_id uuid NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    role smallint NOT NULL CHECK (role BETWEEN 1 AND 3),
    PRIMARY KEY (group_id, site_id)
);
CREATE INDEX group_site_roles_site ON group_site_roles (site_id);

CREATE TABLE group_members (
    group_id uuid NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    added_by uuid REFERENCES users (id) ON DELETE SET NULL,
    added_at timestamptz NOT NULL,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_members_user ON group_members (user_id);

CREATE TABLE spaces (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    site_id uuid NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    key text NOT NULL CHECK (key ~ '^[A-Z][A-Z0-9]{0,31}$'),
    name text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    created_at timestamptz NOT NULL,
    UNIQUE (site_id, key),
    UNIQUE (id, site_id)
);

CREATE TABLE space_admins (
    space_id uuid NOT NULL REFERENCES spaces (id) ON DELETE CASCADE,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    granted_at timestamptz NOT NULL,
    PRIMARY KEY (space_id, user_id)
);

-- A guest has at most one space per site: the primary key says so.
CREATE TABLE guest_spaces (
    site_id uuid NOT NULL,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    space_id uuid NOT NULL,
    assigned_at timestamptz NOT NULL,
    PRIMARY KEY (site_id, user_id),
    FOREIGN KEY (space_id, site_id) REFERENCES spaces (id, site_id) ON DELETE CASCADE
);
CREATE INDEX guest_spaces_space ON guest_spaces (space_id);

CREATE TABLE pages (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    space_id uuid NOT NULL REFERENCES spaces (id) ON DELETE CASCADE,
    title text NOT NULL CHECK (char_length(title) BETWEEN 1 AND 200),
    body text NOT NULL CHECK (char_length(body) <= 100000),
    created_by uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL
);
CREATE INDEX pages_space ON pages (space_id, created_at);

CREATE TABLE invites (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    site_id uuid NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    email text NOT NULL CHECK (char_length(email) BETWEEN 3 AND 254),
    email_normalized text NOT NULL CHECK (email_normalized = lower(email)),
    role smallint CHECK (role BETWEEN 1 AND 3),
    space_id uuid,
    personal_message text CHECK (char_length(personal_message) <= 1000),
    invited_by uuid NOT NULL REFERENCES users (id),
    -- The link token is HMAC(server secret, id || token_nonce): nothing stored here is usable as a token.
    token_nonce bytea NOT NULL CHECK (octet_length(token_nonce) = 16),
    status text NOT NULL CHECK (status IN ('PENDING', 'ACCEPTED', 'REVOKED', 'EXPIRED')),
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    accepted_at timestamptz,
    accepted_user_id uuid REFERENCES users (id) ON DELETE SET NULL,
    revoked_at timestamptz,
    FOREIGN KEY (space_id, site_id) REFERENCES spaces (id, site_id) ON DELETE SET NULL (space_id),
    CHECK (space_id IS NULL OR role = 1),
    CHECK ((status = 'ACCEPTED') = (accepted_at IS NOT NULL))
);
-- One open invite per address and site (expired ones are closed inside the site lock before inserting).
CREATE UNIQUE INDEX invites_one_pending ON invites (site_id, email_normalized) WHERE status = 'PENDING';
CREATE INDEX invites_site_created ON invites (site_id, created_at DESC, id);

CREATE TABLE invite_groups (
    invite_id uuid NOT NULL REFERENCES invites (id) ON DELETE CASCADE,
    group_id uuid NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    PRIMARY KEY (invite_id, group_id)
);

-- Tokens are stored only as SHA-256 hashes.
CREATE TABLE api_tokens (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    token_hash bytea NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32),
    created_at timestamptz NOT NULL,
    last_used_at timestamptz,
    expires_at timestamptz,
    revoked_at timestamptz
);
CREATE INDEX api_tokens_user ON api_tokens (user_id);

CREATE TABLE sessions (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash bytea NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32),
    created_at timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE audit_events (
    id bigserial PRIMARY KEY,
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    actor_id uuid REFERENCES users (id) ON DELETE SET NULL,
    action text NOT NULL,
    target_type text NOT NULL,
    target_id text NOT NULL,
    site_id uuid REFERENCES sites (id) ON DELETE SET NULL,
    before jsonb,
    after jsonb,
    created_at timestamptz NOT NULL
);
CREATE INDEX audit_events_org ON audit_events (organization_id, id DESC);

-- One row per email we intend to send; the queue job carries only this id.
CREATE TABLE email_deliveries (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    kind text NOT NULL CHECK (kind IN ('INVITE')),
    invite_id uuid REFERENCES invites (id) ON DELETE CASCADE,
    -- the invite token generation this email carries; a resend supersedes it
    token_nonce bytea,
    recipient text NOT NULL,
    status text NOT NULL CHECK (status IN ('QUEUED', 'SENDING', 'SENT', 'RETRYING', 'FAILED', 'CANCELLED')),
    attempts integer NOT NULL DEFAULT 0,
    last_error text,
    message_id text NOT NULL,
    created_at timestamptz NOT NULL,
    sent_at timestamptz,
    next_attempt_at timestamptz,
    give_up_at timestamptz NOT NULL
);
CREATE INDEX email_deliveries_invite ON email_deliveries (invite_id, created_at DESC);
