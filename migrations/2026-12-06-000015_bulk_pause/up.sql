-- A bulk invite file that reaches its uploader's daily invite cap pauses instead of refusing the rest:
-- PAUSED, with the moment enough of the rolling 24-hour window frees for its next row. A scheduler
-- tick (driven by the service clock) takes it back to RUNNING and queues its job at that moment; the
-- rows still PENDING are invited then, one transaction each, as before.
ALTER TABLE bulk_invites DROP CONSTRAINT bulk_invites_status_check;
ALTER TABLE bulk_invites ADD CONSTRAINT bulk_invites_status_check
    CHECK (status IN ('QUEUED', 'RUNNING', 'PAUSED', 'DONE'));
ALTER TABLE bulk_invites ADD COLUMN resumes_at timestamptz;
-- A paused file always knows when it resumes, and only a paused file has that moment.
ALTER TABLE bulk_invites ADD CONSTRAINT bulk_invites_resumes_at_paused
    CHECK ((status = 'PAUSED') = (resumes_at IS NOT NULL));
-- The resume tick's query: paused files whose moment has come.
CREATE INDEX bulk_invites_paused ON bulk_invites (resumes_at) WHERE status = 'PAUSED';
