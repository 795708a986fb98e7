-- Sealed secrets cannot be opened by SQL (the key is derived from GUESTPASS_SECRET), so reverting
-- refuses while any exists rather than silently dropping people's authenticator apps.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM totp_credentials WHERE secret_sealed IS NOT NULL) THEN
        RAISE EXCEPTION 'totp_credentials holds sealed authenticator secrets, which SQL cannot turn back into plain text; delete those rows first (their owners enroll their app again)';
    END IF;
END $$;

DROP INDEX totp_credentials_unsealed;
ALTER TABLE totp_credentials
    DROP CONSTRAINT totp_credentials_secret_form,
    DROP COLUMN key_id,
    DROP COLUMN secret_sealed;
ALTER TABLE totp_credentials ALTER COLUMN secret_plaintext SET NOT NULL;
ALTER TABLE totp_credentials RENAME COLUMN secret_plaintext TO secret;
