//! One module per resource: handlers with their `#[utoipa::path]` docs and their DTOs.

pub mod admin;
pub mod auth;
pub mod ops;
