-- Rate limits shared by every replica: one row per limited key (a SHA-256 of the limit's name and
-- the key, so no email or address is stored), holding GCRA's theoretical arrival time. UNLOGGED:
-- no WAL per check; a PostgreSQL crash (not a clean restart) or a failover resets the budgets, which
-- the limits tolerate (they bound guessing, they do not account anything).
CREATE UNLOGGED TABLE rate_limits (
    key bytea PRIMARY KEY,
    tat timestamptz NOT NULL
);
CREATE INDEX rate_limits_tat ON rate_limits (tat);

-- Instant revocation: every change that can end what a bearer token may do notifies the channel
-- `guestpass_access` in its own transaction (delivered at commit, never for a rollback). Payloads
-- name whom the change concerns: `u:<user id>` or `o:<organization id>`. Each replica LISTENs and
-- drops those cached token answers (src/auth/revocation.rs). Triggers make this hold for every path
-- that writes these tables, the CLI and the jobs included.
CREATE FUNCTION guestpass_notify_user() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('guestpass_access', 'u:' || OLD.user_id);
    ELSE
        PERFORM pg_notify('guestpass_access', 'u:' || NEW.user_id);
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION guestpass_notify_account() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('guestpass_access', 'u:' || OLD.id);
    ELSE
        PERFORM pg_notify('guestpass_access', 'u:' || NEW.id);
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION guestpass_notify_organization() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('guestpass_access', 'o:' || OLD.organization_id);
    ELSE
        PERFORM pg_notify('guestpass_access', 'o:' || NEW.organization_id);
    END IF;
    RETURN NULL;
END $$;

-- Sessions and API tokens: revoked, shortened, or deleted while live (last-use updates and the
-- retention job's deletion of ended ones do not notify).
CREATE TRIGGER sessions_revoked AFTER UPDATE ON sessions FOR EACH ROW
    WHEN (OLD.revoked_at IS DISTINCT FROM NEW.revoked_at OR OLD.expires_at IS DISTINCT FROM NEW.expires_at)
    EXECUTE FUNCTION guestpass_notify_user();
CREATE TRIGGER sessions_deleted AFTER DELETE ON sessions FOR EACH ROW
    WHEN (OLD.revoked_at IS NULL AND OLD.expires_at > now())
    EXECUTE FUNCTION guestpass_notify_user();
CREATE TRIGGER api_tokens_revoked AFTER UPDATE ON api_tokens FOR EACH ROW
    WHEN (OLD.revoked_at IS DISTINCT FROM NEW.revoked_at OR OLD.expires_at IS DISTINCT FROM NEW.expires_at)
    EXECUTE FUNCTION guestpass_notify_user();
CREATE TRIGGER api_tokens_deleted AFTER DELETE ON api_tokens FOR EACH ROW
    WHEN (OLD.revoked_at IS NULL)
    EXECUTE FUNCTION guestpass_notify_user();

-- Accounts: deactivation, a new password, two-step or external status, re-verification; not the
-- hourly last-activity stamp.
CREATE TRIGGER users_standing AFTER UPDATE ON users FOR EACH ROW
    WHEN ((OLD.status, OLD.external, OLD.verified_at, OLD.two_step_required, OLD.password_hash,
           OLD.email_normalized, OLD.organization_id)
          IS DISTINCT FROM
          (NEW.status, NEW.external, NEW.verified_at, NEW.two_step_required, NEW.password_hash,
           NEW.email_normalized, NEW.organization_id))
    EXECUTE FUNCTION guestpass_notify_account();
CREATE TRIGGER users_deleted AFTER DELETE ON users FOR EACH ROW
    EXECUTE FUNCTION guestpass_notify_account();

-- Access anywhere (an API token works only while its owner has some): organization admins both
-- ways (the flag is cached), site admins and site members when removed.
CREATE TRIGGER org_admins_changed AFTER INSERT OR DELETE ON org_admins FOR EACH ROW
    EXECUTE FUNCTION guestpass_notify_user();
CREATE TRIGGER site_admins_removed AFTER DELETE ON site_admins FOR EACH ROW
    EXECUTE FUNCTION guestpass_notify_user();
CREATE TRIGGER site_members_removed AFTER DELETE ON site_members FOR EACH ROW
    EXECUTE FUNCTION guestpass_notify_user();

-- The organization's external-user policy (blocked API tokens, idle timeout, two-step, interval).
CREATE TRIGGER external_user_policies_changed AFTER INSERT OR UPDATE OR DELETE ON external_user_policies
    FOR EACH ROW EXECUTE FUNCTION guestpass_notify_organization();
