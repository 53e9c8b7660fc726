//! One module per resource: handlers with their `#[utoipa::path]` docs and their DTOs.

pub mod ops;
