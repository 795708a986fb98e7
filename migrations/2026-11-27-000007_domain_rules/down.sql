DROP TABLE guest_domain_rules;
ALTER TABLE organizations DROP COLUMN guest_domain_mode;
