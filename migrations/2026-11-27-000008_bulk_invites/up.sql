-- Bulk invites from a CSV upload: every row is checked when the file arrives, then a background job
-- invites the valid rows one at a time (each in its own transaction), recording each row's outcome in
-- the same transaction as its invite, so a restarted job resumes exactly where it stopped.
CREATE TABLE bulk_invites (
    id uuid PRIMARY KEY,
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    site_id uuid NOT NULL REFERENCES sites (id) ON DELETE CASCADE,
    uploaded_by uuid REFERENCES users (id) ON DELETE SET NULL,
    status text NOT NULL CHECK (status IN ('QUEUED', 'RUNNING', 'DONE')),
    created_at timestamptz NOT NULL,
    started_at timestamptz,
    finished_at timestamptz
);
CREATE INDEX bulk_invites_site ON bulk_invites (site_id, created_at DESC);

CREATE TABLE bulk_invite_rows (
    bulk_id uuid NOT NULL REFERENCES bulk_invites (id) ON DELETE CASCADE,
    -- The line's number in the file, counting the header as line 1 (what a spreadsheet shows).
    line integer NOT NULL,
    email text NOT NULL,
    role text,
    space_key text,
    group_names text[] NOT NULL DEFAULT '{}',
    personal_message text,
    -- PENDING: valid, waiting for the job; INVITED; REFUSED: the invite rules said no; INVALID: the
    -- row itself was wrong and was never tried.
    status text NOT NULL CHECK (status IN ('PENDING', 'INVITED', 'REFUSED', 'INVALID')),
    code text,
    message text,
    invite_id uuid REFERENCES invites (id) ON DELETE SET NULL,
    finished_at timestamptz,
    PRIMARY KEY (bulk_id, line)
);
CREATE INDEX bulk_invite_rows_pending ON bulk_invite_rows (bulk_id, line) WHERE status = 'PENDING';

-- Who invited a guest and when they accepted (the guest export, `acceptedInvite`).
CREATE INDEX invites_accepted_user ON invites (accepted_user_id, site_id) WHERE accepted_user_id IS NOT NULL;
