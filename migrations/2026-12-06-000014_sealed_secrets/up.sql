-- Authenticator (TOTP) secrets are stored sealed: XChaCha20-Poly1305 under a key derived from
-- GUESTPASS_SECRET (src/secrets.rs), with the id of that key beside each value so the secret can be
-- rotated (GUESTPASS_SECRET_PREVIOUS, `guestpass rotate-secrets`).
--
-- SQL cannot know GUESTPASS_SECRET, so this migration only makes room: existing secrets stay in
-- `secret_plaintext` until the Rust step that runs right after the migrations
-- (`store::signin::seal_legacy_totp`, called by `serve` and `migrate`) seals them and clears it.
ALTER TABLE totp_credentials RENAME COLUMN secret TO secret_plaintext;
ALTER TABLE totp_credentials ALTER COLUMN secret_plaintext DROP NOT NULL;
ALTER TABLE totp_credentials
    ADD COLUMN secret_sealed bytea,
    ADD COLUMN key_id text,
    -- A row holds its secret in exactly one form: in plain text (written before this migration,
    -- not sealed yet), or sealed with the id of its key.
    ADD CONSTRAINT totp_credentials_secret_form CHECK (
        (secret_plaintext IS NOT NULL AND secret_sealed IS NULL AND key_id IS NULL)
        OR (secret_plaintext IS NULL AND secret_sealed IS NOT NULL AND key_id IS NOT NULL)
    );

-- The start-up step looks for rows still in plain text; once sealed there are none to index.
CREATE INDEX totp_credentials_unsealed ON totp_credentials (user_id)
    WHERE secret_plaintext IS NOT NULL;
