//! One module per resource: handlers with their `#[utoipa::path]` docs and their DTOs.

pub mod account;
pub mod admin;
pub mod analytics;
pub mod audit;
pub mod auth;
pub mod events;
pub mod exports;
pub mod keys;
pub mod live;
pub mod members;
pub mod ops;
pub mod ping;
pub mod rate_limits;
pub mod verify;
