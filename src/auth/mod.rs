//! Authentication: bearer and link tokens, and password hashing.

pub mod cache;
pub mod password;
pub mod revocation;
pub mod tokens;
