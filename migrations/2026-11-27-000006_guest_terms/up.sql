-- Guest lifetimes and sponsors.

-- A site may give every guest a maximum lifetime, and reminds guests and sponsors before the end.
ALTER TABLE sites
    ADD COLUMN max_guest_lifetime_days integer CHECK (max_guest_lifetime_days BETWEEN 1 AND 3650),
    ADD COLUMN guest_reminder_days integer NOT NULL DEFAULT 5 CHECK (guest_reminder_days BETWEEN 0 AND 365);

-- An invite may end the guest's access: on a date, or a number of days after acceptance.
ALTER TABLE invites
    ADD COLUMN access_ends_at timestamptz,
    ADD COLUMN access_days integer CHECK (access_days BETWEEN 1 AND 3650);

-- A guest's terms on a site: who answers for them, and when their access ends.
-- reminded_for: the end date the reminder was sent for (once per end date).
CREATE TABLE guest_terms (
    site_id uuid NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    sponsor_id uuid REFERENCES users (id) ON DELETE SET NULL,
    ends_at timestamptz,
    reminded_for timestamptz,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (site_id, user_id)
);
CREATE INDEX guest_terms_sponsor ON guest_terms (sponsor_id);
CREATE INDEX guest_terms_ends ON guest_terms (ends_at) WHERE ends_at IS NOT NULL;

-- Messages about a guest's access (a reminder, an extension request), each emailed once.
CREATE TABLE notices (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    kind text NOT NULL CHECK (kind IN ('LIFETIME_REMINDER', 'EXTENSION_REQUEST')),
    site_id uuid NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    guest_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    recipient_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    ends_at timestamptz,
    message text CHECK (char_length(message) <= 1000),
    created_at timestamptz NOT NULL
);

ALTER TABLE email_deliveries DROP CONSTRAINT email_deliveries_subject;
ALTER TABLE email_deliveries DROP CONSTRAINT email_deliveries_kind_check;
ALTER TABLE email_deliveries ADD CONSTRAINT email_deliveries_kind_check
    CHECK (kind IN ('INVITE', 'LOGIN_CODE', 'PASSWORD_RESET', 'REVERIFY', 'NOTICE'));
ALTER TABLE email_deliveries ADD COLUMN notice_id uuid REFERENCES notices (id) ON DELETE CASCADE;
ALTER TABLE email_deliveries ADD CONSTRAINT email_deliveries_subject CHECK (
    (kind = 'INVITE' AND invite_id IS NOT NULL)
    OR (kind = 'LOGIN_CODE' AND challenge_id IS NOT NULL)
    OR (kind = 'PASSWORD_RESET' AND reset_id IS NOT NULL)
    OR (kind = 'REVERIFY' AND reverify_id IS NOT NULL)
    OR (kind = 'NOTICE' AND notice_id IS NOT NULL));
