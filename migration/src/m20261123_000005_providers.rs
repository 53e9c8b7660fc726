//! Providers: creates `providers` (upstream APIs Tollgate pays for), `provider_credentials`
//! (AES-GCM encrypted secrets), `provider_calls` (one row per outbound call, with its cost) and
//! `budgets` (spending limits per provider, or across all providers).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        create_providers(manager).await?;
        create_provider_credentials(manager).await?;
        create_provider_calls(manager).await?;
        create_budgets(manager).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Budgets::Table.into_iden(),
            ProviderCalls::Table.into_iden(),
            ProviderCredentials::Table.into_iden(),
            Providers::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

async fn create_providers(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    manager
        .create_table(
            Table::create()
                .table(Providers::Table)
                .col(pk_uuid(Providers::Id))
                .col(text(Providers::Name))
                .col(text(Providers::Slug))
                .col(text(Providers::Kind))
                .col(text(Providers::Region))
                // 1 = primary, 2 = first backup, ...
                .col(integer(Providers::Priority))
                .col(text(Providers::BaseUrl))
                .col(text(Providers::PricingModel))
                // Price of one unit (call, credit or 1k tokens) in 1e-9 of `currency`.
                .col(big_integer(Providers::UnitPriceNanos))
                .col(string_len(Providers::Currency, 3))
                .col(integer(Providers::TimeoutMs))
                .col(text(Providers::Status).default("active"))
                .col(timestamp_with_time_zone(Providers::CreatedAt))
                .col(timestamp_with_time_zone(Providers::UpdatedAt))
                .to_owned(),
        )
        .await?;
    manager
        .create_index(
            Index::create()
                .name("idx_providers_slug")
                .table(Providers::Table)
                .col(Providers::Slug)
                .unique()
                .to_owned(),
        )
        .await?;
    manager
        .create_index(
            Index::create()
                .name("idx_providers_region_kind_priority")
                .table(Providers::Table)
                .col(Providers::Region)
                .col(Providers::Kind)
                .col(Providers::Priority)
                .to_owned(),
        )
        .await
}

async fn create_provider_credentials(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    manager
        .create_table(
            Table::create()
                .table(ProviderCredentials::Table)
                .col(pk_uuid(ProviderCredentials::Id))
                .col(uuid(ProviderCredentials::ProviderId))
                .col(text(ProviderCredentials::Name))
                .col(blob(ProviderCredentials::Ciphertext))
                .col(blob(ProviderCredentials::Nonce))
                // Which master key encrypted it, so keys can be rotated.
                .col(integer(ProviderCredentials::KeyVersion))
                .col(text_null(ProviderCredentials::Hint))
                .col(text(ProviderCredentials::Status).default("active"))
                .col(timestamp_with_time_zone(ProviderCredentials::CreatedAt))
                .col(timestamp_with_time_zone_null(
                    ProviderCredentials::RotatedAt,
                ))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_provider_credentials_provider_id")
                        .from(ProviderCredentials::Table, ProviderCredentials::ProviderId)
                        .to(Providers::Table, Providers::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
    manager
        .create_index(
            Index::create()
                .name("idx_provider_credentials_provider_id")
                .table(ProviderCredentials::Table)
                .col(ProviderCredentials::ProviderId)
                .to_owned(),
        )
        .await
}

async fn create_provider_calls(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    manager
        .create_table(
            Table::create()
                .table(ProviderCalls::Table)
                .col(pk_uuid(ProviderCalls::Id))
                .col(timestamp_with_time_zone(ProviderCalls::OccurredAt))
                .col(uuid(ProviderCalls::ProviderId))
                // No FKs on the attribution columns: the call log outlives them.
                .col(uuid_null(ProviderCalls::TenantId))
                .col(uuid_null(ProviderCalls::UserId))
                .col(text_null(ProviderCalls::Feature))
                .col(text(ProviderCalls::Region))
                .col(text(ProviderCalls::Endpoint))
                // NULL when no response arrived (timeout, connection error).
                .col(integer_null(ProviderCalls::StatusCode))
                .col(text(ProviderCalls::Outcome))
                .col(big_integer(ProviderCalls::LatencyUs))
                .col(big_integer(ProviderCalls::Units))
                .col(big_integer(ProviderCalls::CostNanos))
                .col(string_len(ProviderCalls::Currency, 3))
                // On a failover: the provider whose failure led to this call.
                .col(uuid_null(ProviderCalls::FailoverFrom))
                .col(text_null(ProviderCalls::Error))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_provider_calls_provider_id")
                        .from(ProviderCalls::Table, ProviderCalls::ProviderId)
                        .to(Providers::Table, Providers::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
    for (name, col) in [
        (
            "idx_provider_calls_provider_id_occurred_at",
            ProviderCalls::ProviderId,
        ),
        (
            "idx_provider_calls_tenant_id_occurred_at",
            ProviderCalls::TenantId,
        ),
    ] {
        manager
            .create_index(
                Index::create()
                    .name(name)
                    .table(ProviderCalls::Table)
                    .col(col)
                    .col(ProviderCalls::OccurredAt)
                    .to_owned(),
            )
            .await?;
    }
    Ok(())
}

async fn create_budgets(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    manager
        .create_table(
            Table::create()
                .table(Budgets::Table)
                .col(pk_uuid(Budgets::Id))
                // NULL = the budget covers all providers.
                .col(uuid_null(Budgets::ProviderId))
                .col(text(Budgets::Name))
                .col(text(Budgets::Period).default("month"))
                .col(big_integer(Budgets::AmountNanos))
                .col(string_len(Budgets::Currency, 3))
                // Alert thresholds in percent of the amount, e.g. [70, 85, 95].
                .col(json_binary(Budgets::Thresholds))
                .col(timestamp_with_time_zone(Budgets::CreatedAt))
                .col(timestamp_with_time_zone(Budgets::UpdatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_budgets_provider_id")
                        .from(Budgets::Table, Budgets::ProviderId)
                        .to(Providers::Table, Providers::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
    manager
        .create_index(
            Index::create()
                .name("idx_budgets_provider_id_period_currency")
                .table(Budgets::Table)
                .col(Budgets::ProviderId)
                .col(Budgets::Period)
                .col(Budgets::Currency)
                .unique()
                .to_owned(),
        )
        .await?;
    // A unique index treats NULLs as distinct (on both backends), so the one above cannot stop
    // two all-provider budgets for the same period and currency; this partial index does.
    manager
        .create_index(
            Index::create()
                .name("idx_budgets_period_currency")
                .table(Budgets::Table)
                .col(Budgets::Period)
                .col(Budgets::Currency)
                .unique()
                .and_where(Expr::col(Budgets::ProviderId).is_null())
                .to_owned(),
        )
        .await
}

#[derive(DeriveIden)]
enum Providers {
    Table,
    Id,
    Name,
    Slug,
    Kind,
    Region,
    Priority,
    BaseUrl,
    PricingModel,
    UnitPriceNanos,
    Currency,
    TimeoutMs,
    Status,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ProviderCredentials {
    Table,
    Id,
    ProviderId,
    Name,
    Ciphertext,
    Nonce,
    KeyVersion,
    Hint,
    Status,
    CreatedAt,
    RotatedAt,
}

#[derive(DeriveIden)]
enum ProviderCalls {
    Table,
    Id,
    OccurredAt,
    ProviderId,
    TenantId,
    UserId,
    Feature,
    Region,
    Endpoint,
    StatusCode,
    Outcome,
    LatencyUs,
    Units,
    CostNanos,
    Currency,
    FailoverFrom,
    Error,
}

#[derive(DeriveIden)]
enum Budgets {
    Table,
    Id,
    ProviderId,
    Name,
    Period,
    AmountNanos,
    Currency,
    Thresholds,
    CreatedAt,
    UpdatedAt,
}
