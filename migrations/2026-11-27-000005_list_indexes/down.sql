DROP INDEX users_org_email_id;
