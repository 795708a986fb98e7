//! Authentication: bearer and link tokens, and password hashing.

pub mod password;
pub mod tokens;
