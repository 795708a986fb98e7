ALTER TABLE email_deliveries DROP CONSTRAINT email_deliveries_subject;
DELETE FROM email_deliveries WHERE kind <> 'INVITE';
ALTER TABLE email_deliveries DROP COLUMN challenge_id, DROP COLUMN reset_id;
ALTER TABLE email_deliveries DROP CONSTRAINT email_deliveries_kind_check;
ALTER TABLE email_deliveries ADD CONSTRAINT email_deliveries_kind_check CHECK (kind IN ('INVITE'));
DROP TABLE recovery_codes, totp_credentials, password_resets, login_challenges;
