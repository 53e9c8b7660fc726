//! API keys: creates `api_keys` (hashed secrets, rotation grace, per-key limit overrides).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ApiKeys::Table)
                    .col(pk_uuid(ApiKeys::Id))
                    .col(uuid(ApiKeys::TenantId))
                    .col(text(ApiKeys::Name))
                    .col(text_null(ApiKeys::Description))
                    // Hex SHA-256 of the secret; the secret itself is never stored.
                    .col(text(ApiKeys::KeyHash))
                    .col(text(ApiKeys::Prefix))
                    .col(text(ApiKeys::Last4))
                    .col(text(ApiKeys::Source).default("generated"))
                    .col(text(ApiKeys::Status).default("active"))
                    .col(timestamp_with_time_zone_null(ApiKeys::ExpiresAt))
                    .col(timestamp_with_time_zone_null(ApiKeys::RevokedAt))
                    // The replaced secret stays valid until `previous_expires_at`.
                    .col(text_null(ApiKeys::PreviousKeyHash))
                    .col(text_null(ApiKeys::PreviousPrefix))
                    .col(text_null(ApiKeys::PreviousLast4))
                    .col(timestamp_with_time_zone_null(ApiKeys::PreviousExpiresAt))
                    .col(timestamp_with_time_zone_null(ApiKeys::RotatedAt))
                    // NULL = inherit the tenant's (or the plan's) limit.
                    .col(big_integer_null(ApiKeys::LimitPerMinute))
                    .col(big_integer_null(ApiKeys::LimitPerHour))
                    .col(big_integer_null(ApiKeys::LimitPerDay))
                    .col(big_integer_null(ApiKeys::LimitPerMonth))
                    .col(big_integer(ApiKeys::UsageCount).default(0))
                    .col(timestamp_with_time_zone_null(ApiKeys::LastUsedAt))
                    .col(json_binary_null(ApiKeys::Metadata))
                    .col(uuid_null(ApiKeys::CreatedBy))
                    .col(timestamp_with_time_zone(ApiKeys::CreatedAt))
                    .col(timestamp_with_time_zone(ApiKeys::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_api_keys_tenant_id")
                            .from(ApiKeys::Table, ApiKeys::TenantId)
                            .to(Tenants::Table, Tenants::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_api_keys_created_by")
                            .from(ApiKeys::Table, ApiKeys::CreatedBy)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::SetNull),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, col) in [
            ("idx_api_keys_key_hash", ApiKeys::KeyHash),
            ("idx_api_keys_previous_key_hash", ApiKeys::PreviousKeyHash),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(ApiKeys::Table)
                        .col(col)
                        .unique()
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name("idx_api_keys_tenant_id_created_at")
                    .table(ApiKeys::Table)
                    .col(ApiKeys::TenantId)
                    .col(ApiKeys::CreatedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(ApiKeys::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    Id,
    TenantId,
    Name,
    Description,
    KeyHash,
    Prefix,
    Last4,
    Source,
    Status,
    ExpiresAt,
    RevokedAt,
    PreviousKeyHash,
    PreviousPrefix,
    PreviousLast4,
    PreviousExpiresAt,
    RotatedAt,
    LimitPerMinute,
    LimitPerHour,
    LimitPerDay,
    LimitPerMonth,
    UsageCount,
    LastUsedAt,
    Metadata,
    CreatedBy,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}
