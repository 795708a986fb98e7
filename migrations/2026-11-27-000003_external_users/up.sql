-- External user security: the policy, re-verification, activity, the sweep's runs and policy reviews.

CREATE TABLE external_user_policies (
    organization_id uuid PRIMARY KEY REFERENCES organizations (id) ON DELETE CASCADE,
    two_step text NOT NULL DEFAULT 'OFF' CHECK (two_step IN ('OFF', 'REQUIRED')),
    reverification_interval_minutes integer NOT NULL DEFAULT 43200
        CHECK (reverification_interval_minutes BETWEEN 15 AND 43200),
    api_token_access text NOT NULL DEFAULT 'ALLOWED' CHECK (api_token_access IN ('ALLOWED', 'BLOCKED')),
    session_idle_timeout_minutes integer CHECK (session_idle_timeout_minutes BETWEEN 5 AND 43200),
    updated_at timestamptz NOT NULL,
    updated_by uuid REFERENCES users (id) ON DELETE SET NULL
);

-- verified_at: the last proof of owning the address (accepting an invite, an emailed code or link);
-- an external user must verify again at verified_at + the policy's interval.
-- reverify_notified_for: the verified_at whose period the scheduler already emailed about (once per period).
-- last_active_at: written at most once an hour per person.
ALTER TABLE users
    ADD COLUMN verified_at timestamptz,
    ADD COLUMN reverify_notified_for timestamptz,
    ADD COLUMN last_active_at timestamptz;

ALTER TABLE login_challenges
    ADD COLUMN purpose text NOT NULL DEFAULT 'LOGIN' CHECK (purpose IN ('LOGIN', 'REVERIFY'));

-- An emailed re-verification link: HMAC-signed over (id, token_nonce), single use.
CREATE TABLE reverification_links (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_nonce bytea NOT NULL CHECK (octet_length(token_nonce) = 16),
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at timestamptz
);
CREATE INDEX reverification_links_user ON reverification_links (user_id);

ALTER TABLE email_deliveries DROP CONSTRAINT email_deliveries_subject;
ALTER TABLE email_deliveries DROP CONSTRAINT email_deliveries_kind_check;
ALTER TABLE email_deliveries ADD CONSTRAINT email_deliveries_kind_check
    CHECK (kind IN ('INVITE', 'LOGIN_CODE', 'PASSWORD_RESET', 'REVERIFY'));
ALTER TABLE email_deliveries
    ADD COLUMN reverify_id uuid REFERENCES reverification_links (id) ON DELETE CASCADE;
ALTER TABLE email_deliveries ADD CONSTRAINT email_deliveries_subject CHECK (
    (kind = 'INVITE' AND invite_id IS NOT NULL)
    OR (kind = 'LOGIN_CODE' AND challenge_id IS NOT NULL)
    OR (kind = 'PASSWORD_RESET' AND reset_id IS NOT NULL)
    OR (kind = 'REVERIFY' AND reverify_id IS NOT NULL));

-- One row per sweep that ran (scheduled or by hand).
CREATE TABLE reverification_sweeps (
    id bigserial PRIMARY KEY,
    trigger text NOT NULL CHECK (trigger IN ('SCHEDULE', 'MANUAL')),
    started_at timestamptz NOT NULL,
    finished_at timestamptz,
    emailed integer NOT NULL DEFAULT 0
);

-- A preview of a policy change: applying needs a current review of exactly that policy whose
-- affected set (fingerprint) has not changed since.
CREATE TABLE policy_reviews (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    policy jsonb NOT NULL,
    fingerprint bytea NOT NULL,
    created_by uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at timestamptz
);

CREATE INDEX audit_events_org_action ON audit_events (organization_id, action, id DESC);
