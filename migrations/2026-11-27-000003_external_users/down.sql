DROP INDEX audit_events_org_action;
DROP TABLE policy_reviews, reverification_sweeps;
ALTER TABLE email_deliveries DROP CONSTRAINT email_deliveries_subject;
DELETE FROM email_deliveries WHERE kind = 'REVERIFY';
ALTER TABLE email_deliveries DROP COLUMN reverify_id;
ALTER TABLE email_deliveries DROP CONSTRAINT email_deliveries_kind_check;
ALTER TABLE email_deliveries ADD CONSTRAINT email_deliveries_kind_check
    CHECK (kind IN ('INVITE', 'LOGIN_CODE', 'PASSWORD_RESET'));
ALTER TABLE email_deliveries ADD CONSTRAINT email_deliveries_subject CHECK (
    (kind = 'INVITE' AND invite_id IS NOT NULL)
    OR (kind = 'LOGIN_CODE' AND challenge_id IS NOT NULL)
    OR (kind = 'PASSWORD_RESET' AND reset_id IS NOT NULL));
DROP TABLE reverification_links;
ALTER TABLE login_challenges DROP COLUMN purpose;
ALTER TABLE users DROP COLUMN verified_at, DROP COLUMN reverify_notified_for, DROP COLUMN last_active_at;
DROP TABLE external_user_policies;
