//! `idempotency_keys`: first responses to POSTs sent with an `Idempotency-Key`, replayed on
//! retries.

use sea_orm::entity::prelude::*;

/// A stored response, keyed by (`scope`, `key`).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "idempotency_keys")]
pub struct Model {
    /// Whose key it is, e.g. the tenant id.
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub scope: String,
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub key: String,
    /// A retry with another body under the same key is refused.
    #[sea_orm(column_type = "Text")]
    pub request_hash: String,
    #[sea_orm(column_type = "Text")]
    pub method: String,
    #[sea_orm(column_type = "Text")]
    pub path: String,
    /// `in_progress` or `completed`.
    #[sea_orm(column_type = "Text")]
    pub status: String,
    pub response_status: Option<i32>,
    #[sea_orm(column_type = "JsonBinary")]
    pub response_headers: Option<Json>,
    #[sea_orm(column_type = "Blob")]
    pub response_body: Option<Vec<u8>>,
    pub created_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
