//! Accounts: password hashing and the users store.

pub mod password;
pub mod users;
