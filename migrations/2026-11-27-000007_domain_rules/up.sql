-- Which email domains may be invited as guests: an allow list or a block list per organization
-- (never both: the mode is on the organization, the patterns below it).
ALTER TABLE organizations
    ADD COLUMN guest_domain_mode text NOT NULL DEFAULT 'NONE'
        CHECK (guest_domain_mode IN ('NONE', 'ALLOW', 'BLOCK'));

-- `example.com` matches that domain; `*.example.com` matches its subdomains.
CREATE TABLE guest_domain_rules (
    organization_id uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    pattern text NOT NULL CHECK (pattern = lower(pattern) AND char_length(pattern) BETWEEN 3 AND 255),
    created_at timestamptz NOT NULL,
    PRIMARY KEY (organization_id, pattern)
);
