-- Webhooks (issue 20): the endpoints an organization's admins register, one delivery per event and
-- matching endpoint, written in the transaction of the change it reports (the outbox: no change
-- without its deliveries, no delivery for a change rolled back), and every attempt to deliver it.

CREATE TABLE webhook_endpoints (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    url text NOT NULL,
    description text NOT NULL DEFAULT '',
    -- Stable dotted names (`invite.created`), as `domain::webhooks::EventType` spells them.
    event_types text[] NOT NULL CHECK (cardinality(event_types) > 0),
    -- ACTIVE: receives. DISABLED: an admin switched it off (nothing is queued for it). FAILING: a
    -- delivery used up its retries (since `failing_since`); it still receives, and the next success
    -- makes it ACTIVE again.
    status text NOT NULL DEFAULT 'ACTIVE' CHECK (status IN ('ACTIVE', 'DISABLED', 'FAILING')),
    failing_since timestamptz,
    -- The signing secret, sealed with XChaCha20-Poly1305 under the key `secret_key_id` names
    -- (src/secrets.rs; associated data: this row's id), never in plain text.
    secret_sealed bytea NOT NULL,
    secret_key_id text NOT NULL,
    -- After a rotation, the secret before it still signs (beside the new one) until `previous_until`.
    previous_secret_sealed bytea,
    previous_key_id text,
    previous_until timestamptz,
    created_by uuid REFERENCES users(id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    CONSTRAINT webhook_endpoints_failing CHECK ((status = 'FAILING') = (failing_since IS NOT NULL)),
    CONSTRAINT webhook_endpoints_previous_secret CHECK (
        (previous_secret_sealed IS NULL AND previous_key_id IS NULL AND previous_until IS NULL)
        OR (previous_secret_sealed IS NOT NULL AND previous_key_id IS NOT NULL AND previous_until IS NOT NULL)
    )
);
-- The list (`webhookEndpoints`, oldest first) and the outbox's lookup of an organization's
-- endpoints in every audited change: one index scan, finding nothing for most organizations.
CREATE INDEX webhook_endpoints_org ON webhook_endpoints (organization_id, created_at, id);

CREATE TABLE webhook_deliveries (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    endpoint_id uuid NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
    -- The audit event it reports (`evt_<id>` in the payload). No foreign key: audit events have a
    -- retention of their own.
    audit_event_id bigint NOT NULL,
    event_type text NOT NULL,
    -- The JSON body exactly as sent and signed (text, not jsonb, which would reorder it): every
    -- attempt and redelivery sends these same bytes.
    payload text NOT NULL,
    -- PENDING: not tried yet (or redelivered). RETRYING: failed, another attempt at
    -- `next_attempt_at`. DELIVERED: a 2xx answer. FAILED: retries used up.
    status text NOT NULL DEFAULT 'PENDING'
        CHECK (status IN ('PENDING', 'DELIVERED', 'RETRYING', 'FAILED')),
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz,
    -- While a worker is sending it: nobody else sends it until then (a worker killed mid-send
    -- delays the next attempt by at most this).
    leased_until timestamptz,
    created_at timestamptz NOT NULL,
    delivered_at timestamptz,
    UNIQUE (endpoint_id, audit_event_id)
);
-- The delivery log of an endpoint, newest first, all or by status.
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, created_at DESC, id DESC);
CREATE INDEX webhook_deliveries_endpoint_status
    ON webhook_deliveries (endpoint_id, status, created_at DESC, id DESC);
-- What is still to deliver: the queue depth in /metrics, and the sweep's rescue of deliveries whose
-- job was lost.
CREATE INDEX webhook_deliveries_open ON webhook_deliveries (next_attempt_at)
    WHERE status IN ('PENDING', 'RETRYING');

CREATE TABLE webhook_attempts (
    delivery_id uuid NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
    number integer NOT NULL,
    attempted_at timestamptz NOT NULL,
    -- Null while the attempt is under way; an attempt left so was cut short (its worker stopped).
    duration_ms integer,
    response_status integer,
    -- The first bytes of the answer's body (at most 1 KiB), for admins to see why it failed.
    response_body_prefix text,
    error text,
    PRIMARY KEY (delivery_id, number)
);

-- Invites that expire are recorded in the audit trail (`invite.expire`) once per expiry by the
-- maintenance sweep, which looks for the event here before recording it.
CREATE INDEX audit_events_invite_expire ON audit_events (target_id, created_at)
    WHERE action = 'invite.expire';
