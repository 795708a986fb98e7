-- A user's email domain, the one fact that makes them external (not a verified domain) or internal,
-- is computed here and only here: the text after the last `@` of the normalized address. Every query
-- that tells external from internal, and the Rust side through the loaded row, reads this column, so
-- an address with `@` in a quoted local part (refused at parse time now, but possibly stored before)
-- cannot be internal to one rule and external to another. Adding it rewrites the table once.
ALTER TABLE users
    ADD COLUMN email_domain text NOT NULL
        GENERATED ALWAYS AS (coalesce(substring(email_normalized FROM '@([^@]*)$'), '')) STORED;
