ALTER TABLE email_deliveries DROP CONSTRAINT email_deliveries_subject;
DELETE FROM email_deliveries WHERE kind = 'NOTICE';
ALTER TABLE email_deliveries DROP COLUMN notice_id;
ALTER TABLE email_deliveries DROP CONSTRAINT email_deliveries_kind_check;
ALTER TABLE email_deliveries ADD CONSTRAINT email_deliveries_kind_check
    CHECK (kind IN ('INVITE', 'LOGIN_CODE', 'PASSWORD_RESET', 'REVERIFY'));
ALTER TABLE email_deliveries ADD CONSTRAINT email_deliveries_subject CHECK (
    (kind = 'INVITE' AND invite_id IS NOT NULL)
    OR (kind = 'LOGIN_CODE' AND challenge_id IS NOT NULL)
    OR (kind = 'PASSWORD_RESET' AND reset_id IS NOT NULL)
    OR (kind = 'REVERIFY' AND reverify_id IS NOT NULL));
DROP TABLE notices, guest_terms;
ALTER TABLE invites DROP COLUMN access_ends_at, DROP COLUMN access_days;
ALTER TABLE sites DROP COLUMN max_guest_lifetime_days, DROP COLUMN guest_reminder_days;
