-- Live events for GraphQL subscriptions (src/events.rs): each change a subscription follows notifies
-- the channel `guestpass_events` from a trigger in its own transaction, so it is sent at commit and
-- never for a rollback, whatever path made the change (the API, the workers, the CLI). Payloads are
-- ids only; each replica LISTENs, skips what no subscriber of the site follows, and loads for each
-- subscriber only what that subscriber may see:
--   d:<email delivery id>:<site id>   an invite's email was queued or changed status
--   b:<bulk invite id>                a bulk invite file or one of its rows changed
--   a:<audit event id>:<site id>      an audit event concerning a site was recorded
-- PostgreSQL sends identical payloads of one transaction once, and the receiving side coalesces a
-- bulk file's notifications further, so a 5,000-row file does not flood subscribers.

CREATE FUNCTION guestpass_notify_delivery() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('guestpass_events', 'd:' || NEW.id || ':'
        || coalesce((SELECT site_id FROM invites WHERE id = NEW.invite_id)::text, ''));
    RETURN NULL;
END $$;

CREATE FUNCTION guestpass_notify_bulk() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('guestpass_events', 'b:' || NEW.id);
    RETURN NULL;
END $$;

CREATE FUNCTION guestpass_notify_bulk_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('guestpass_events', 'b:' || NEW.bulk_id);
    RETURN NULL;
END $$;

CREATE FUNCTION guestpass_notify_audit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('guestpass_events', 'a:' || NEW.id || ':' || NEW.site_id);
    RETURN NULL;
END $$;

-- Invite emails only (sign-in codes, resets and notices have no subscription): queued, and each
-- change of status (not the bookkeeping of an attempt under way).
CREATE TRIGGER email_deliveries_queued AFTER INSERT ON email_deliveries FOR EACH ROW
    WHEN (NEW.invite_id IS NOT NULL)
    EXECUTE FUNCTION guestpass_notify_delivery();
CREATE TRIGGER email_deliveries_status AFTER UPDATE ON email_deliveries FOR EACH ROW
    WHEN (NEW.invite_id IS NOT NULL AND OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION guestpass_notify_delivery();

-- A bulk file's own changes (queued, started, paused, resumed, done) and each row's outcome.
CREATE TRIGGER bulk_invites_queued AFTER INSERT ON bulk_invites FOR EACH ROW
    EXECUTE FUNCTION guestpass_notify_bulk();
CREATE TRIGGER bulk_invites_changed AFTER UPDATE ON bulk_invites FOR EACH ROW
    WHEN (OLD.* IS DISTINCT FROM NEW.*)
    EXECUTE FUNCTION guestpass_notify_bulk();
CREATE TRIGGER bulk_invite_rows_status AFTER UPDATE ON bulk_invite_rows FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION guestpass_notify_bulk_row();

-- Audit events that concern a site (sign-ins and organization settings concern none).
CREATE TRIGGER audit_events_recorded AFTER INSERT ON audit_events FOR EACH ROW
    WHEN (NEW.site_id IS NOT NULL)
    EXECUTE FUNCTION guestpass_notify_audit();
