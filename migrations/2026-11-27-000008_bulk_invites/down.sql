DROP INDEX invites_accepted_user;
DROP TABLE bulk_invite_rows;
DROP TABLE bulk_invites;
