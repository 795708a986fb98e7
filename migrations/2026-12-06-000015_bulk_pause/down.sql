-- Paused files go back to RUNNING with a job queued for each (the shape `store::queue` writes), so the
-- earlier release finishes them its own way: rows past the daily cap refused `RATE_LIMITED`.
INSERT INTO apalis.jobs (id, job_type, job, status, attempts, max_attempts, run_at, priority)
SELECT apalis.generate_ulid(), 'guestpass::maintenance',
       convert_to(json_build_object('task', json_build_object('BulkInvite', id),
                                    'trigger', 'RESUME')::text, 'UTF8'),
       'Pending', 0, 10, now(), 0
FROM bulk_invites WHERE status = 'PAUSED';
DROP INDEX bulk_invites_paused;
ALTER TABLE bulk_invites DROP CONSTRAINT bulk_invites_resumes_at_paused;
UPDATE bulk_invites SET status = 'RUNNING' WHERE status = 'PAUSED';
ALTER TABLE bulk_invites DROP COLUMN resumes_at;
ALTER TABLE bulk_invites DROP CONSTRAINT bulk_invites_status_check;
ALTER TABLE bulk_invites ADD CONSTRAINT bulk_invites_status_check
    CHECK (status IN ('QUEUED', 'RUNNING', 'DONE'));
