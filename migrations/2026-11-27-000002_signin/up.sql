-- Sign-in: two-step challenges, password resets, authenticator apps and recovery codes.

-- A two-step challenge. The emailed code is HMAC(server secret, id || code_nonce), so nothing stored here
-- reveals it; TOTP challenges carry no code of their own.
CREATE TABLE login_challenges (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    method text NOT NULL CHECK (method IN ('EMAIL', 'TOTP')),
    code_nonce bytea NOT NULL CHECK (octet_length(code_nonce) = 16),
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    failed_attempts integer NOT NULL DEFAULT 0 CHECK (failed_attempts >= 0),
    consumed_at timestamptz
);
CREATE INDEX login_challenges_user ON login_challenges (user_id);

-- A password reset link: HMAC-signed over (id, token_nonce), single use.
CREATE TABLE password_resets (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_nonce bytea NOT NULL CHECK (octet_length(token_nonce) = 16),
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at timestamptz
);
CREATE INDEX password_resets_user ON password_resets (user_id);

-- An authenticator app (RFC 6238). Active once confirmed with a first code; the last accepted time
-- step is kept so a code cannot be replayed.
CREATE TABLE totp_credentials (
    user_id uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    secret bytea NOT NULL CHECK (octet_length(secret) >= 16),
    created_at timestamptz NOT NULL,
    confirmed_at timestamptz,
    last_used_step bigint
);

-- One-time recovery codes, stored as SHA-256 hashes.
CREATE TABLE recovery_codes (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash bytea NOT NULL CHECK (octet_length(code_hash) = 32),
    created_at timestamptz NOT NULL,
    used_at timestamptz
);
CREATE INDEX recovery_codes_user ON recovery_codes (user_id);

ALTER TABLE email_deliveries DROP CONSTRAINT email_deliveries_kind_check;
ALTER TABLE email_deliveries ADD CONSTRAINT email_deliveries_kind_check
    CHECK (kind IN ('INVITE', 'LOGIN_CODE', 'PASSWORD_RESET'));
ALTER TABLE email_deliveries
    ADD COLUMN challenge_id uuid REFERENCES login_challenges (id) ON DELETE CASCADE,
    ADD COLUMN reset_id uuid REFERENCES password_resets (id) ON DELETE CASCADE;
ALTER TABLE email_deliveries ADD CONSTRAINT email_deliveries_subject CHECK (
    (kind = 'INVITE' AND invite_id IS NOT NULL)
    OR (kind = 'LOGIN_CODE' AND challenge_id IS NOT NULL)
    OR (kind = 'PASSWORD_RESET' AND reset_id IS NOT NULL));
