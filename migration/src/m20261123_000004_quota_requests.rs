//! Quota requests: creates `quota_requests` (a tenant asks for higher limits on a key; an admin
//! approves or rejects).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(QuotaRequests::Table)
                    .col(pk_uuid(QuotaRequests::Id))
                    .col(uuid(QuotaRequests::TenantId))
                    .col(uuid(QuotaRequests::KeyId))
                    .col(uuid_null(QuotaRequests::RequestedBy))
                    // The effective limits when the request was made, for the reviewer.
                    .col(big_integer_null(QuotaRequests::CurrentPerMinute))
                    .col(big_integer_null(QuotaRequests::CurrentPerHour))
                    .col(big_integer_null(QuotaRequests::CurrentPerDay))
                    .col(big_integer_null(QuotaRequests::CurrentPerMonth))
                    .col(big_integer_null(QuotaRequests::RequestedPerMinute))
                    .col(big_integer_null(QuotaRequests::RequestedPerHour))
                    .col(big_integer_null(QuotaRequests::RequestedPerDay))
                    .col(big_integer_null(QuotaRequests::RequestedPerMonth))
                    .col(text(QuotaRequests::Justification))
                    .col(text(QuotaRequests::Status).default("pending"))
                    .col(uuid_null(QuotaRequests::DecidedBy))
                    .col(timestamp_with_time_zone_null(QuotaRequests::DecidedAt))
                    .col(text_null(QuotaRequests::DecisionNote))
                    .col(timestamp_with_time_zone(QuotaRequests::CreatedAt))
                    .col(timestamp_with_time_zone(QuotaRequests::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_quota_requests_tenant_id")
                            .from(QuotaRequests::Table, QuotaRequests::TenantId)
                            .to(Tenants::Table, Tenants::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_quota_requests_key_id")
                            .from(QuotaRequests::Table, QuotaRequests::KeyId)
                            .to(ApiKeys::Table, ApiKeys::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_quota_requests_requested_by")
                            .from(QuotaRequests::Table, QuotaRequests::RequestedBy)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::SetNull),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_quota_requests_decided_by")
                            .from(QuotaRequests::Table, QuotaRequests::DecidedBy)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::SetNull),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, col) in [
            (
                "idx_quota_requests_tenant_id_created_at",
                QuotaRequests::TenantId,
            ),
            (
                "idx_quota_requests_status_created_at",
                QuotaRequests::Status,
            ),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(QuotaRequests::Table)
                        .col(col)
                        .col(QuotaRequests::CreatedAt)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(QuotaRequests::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum QuotaRequests {
    Table,
    Id,
    TenantId,
    KeyId,
    RequestedBy,
    CurrentPerMinute,
    CurrentPerHour,
    CurrentPerDay,
    CurrentPerMonth,
    RequestedPerMinute,
    RequestedPerHour,
    RequestedPerDay,
    RequestedPerMonth,
    Justification,
    Status,
    DecidedBy,
    DecidedAt,
    DecisionNote,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}
