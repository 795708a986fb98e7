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
pub mod live;
pub mod models;
pub mod order;
pub mod org;
pub mod queue;
pub mod retention;
pub mod signin;
pub mod webhooks;

/// The keyset condition `(email_normalized, user_id) > (email, id)` on `table` as one row comparison,
/// so a page walks its index from the key instead of filtering from the start.
pub(crate) fn after_key(
    table: &'static str,
    email: String,
    id: uuid::Uuid,
) -> diesel::expression::SqlLiteral<
    diesel::sql_types::Bool,
    impl diesel::query_builder::QueryFragment<diesel::pg::Pg> + diesel::query_builder::QueryId,
> {
    diesel::dsl::sql::<diesel::sql_types::Bool>(&format!(
        "({table}.email_normalized, {table}.user_id) > ("
    ))
    .bind::<diesel::sql_types::Text, _>(email)
    .sql(", ")
    .bind::<diesel::sql_types::Uuid, _>(id)
    .sql(")")
}
