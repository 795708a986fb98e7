//! The domain core: pure rules with no I/O (roles, seats, addresses, text), unit-tested here and
//! enforced by the store inside database transactions.

pub mod access;
pub mod authorization;
pub mod billing;
pub mod bulk;
pub mod domains;
pub mod email;
pub mod invites;
pub mod outbound;
pub mod policy;
pub mod removal;
pub mod roles;
pub mod seats;
pub mod status;
pub mod text;
pub mod webhooks;

pub use email::EmailAddress;
pub use roles::{ProductRole, effective_role};
