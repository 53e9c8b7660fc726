//! `provider_credentials`: provider secrets, AES-256-GCM encrypted under a versioned master key.

use sea_orm::entity::prelude::*;

/// An encrypted provider credential.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "provider_credentials")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub provider_id: Uuid,
    #[sea_orm(column_type = "Text")]
    pub name: String,
    #[sea_orm(column_type = "Blob")]
    pub ciphertext: Vec<u8>,
    #[sea_orm(column_type = "Blob")]
    pub nonce: Vec<u8>,
    /// Version of the master key that encrypted it.
    pub key_version: i32,
    /// E.g. the last 4 characters, for display.
    #[sea_orm(column_type = "Text")]
    pub hint: Option<String>,
    /// `active` or `retired`.
    #[sea_orm(column_type = "Text")]
    pub status: String,
    pub created_at: DateTimeUtc,
    pub rotated_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::providers::Entity",
        from = "Column::ProviderId",
        to = "super::providers::Column::Id",
        on_delete = "Cascade"
    )]
    Providers,
}

impl Related<super::providers::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Providers.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
