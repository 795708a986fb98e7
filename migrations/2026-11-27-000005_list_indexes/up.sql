-- Lists walk users in (email, id) order within an organization and stop after a page.
CREATE INDEX users_org_email_id ON users (organization_id, email_normalized, id);
