-- Abuse limits: the daily invite cap per admin and the cooldown per recipient look these up.
CREATE INDEX invites_invited_by_created ON invites (invited_by, created_at);
CREATE INDEX email_deliveries_recipient ON email_deliveries (lower(recipient), created_at DESC);
-- Retention deletes by age.
CREATE INDEX audit_events_created ON audit_events (created_at);
CREATE INDEX sessions_expires ON sessions (expires_at);
