//! Everything that reads or writes our tables. Functions take a `&mut PgConnection` and are called
//! through `db::Db::run`/`tx`, off the async runtime; the GraphQL and HTTP layers never touch diesel.

pub mod access;
pub mod audit;
pub mod bulk;
pub mod changes;
pub mod content;
pub mod directory;
pub mod domain_rules;
pub mod emails;
pub mod external;
pub mod grants;
pub mod groups;
pub mod guests;
pub mod invites;
pub mod lifetimes;
pub mod models;
pub mod org;
pub mod queue;
pub mod retention;
pub mod seed;
pub mod signin;
