//! Accounts: creates `plans`, `tenants`, `users`, `memberships` and `auth_attempts`.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        create_plans(manager).await?;
        create_tenants(manager).await?;
        create_users(manager).await?;
        create_memberships(manager).await?;
        create_auth_attempts(manager).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            AuthAttempts::Table.into_iden(),
            Memberships::Table.into_iden(),
            Users::Table.into_iden(),
            Tenants::Table.into_iden(),
            Plans::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

async fn create_plans(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    manager
        .create_table(
            Table::create()
                .table(Plans::Table)
                .col(pk_uuid(Plans::Id))
                .col(text(Plans::Name))
                .col(big_integer(Plans::PerMinute))
                .col(big_integer(Plans::PerHour))
                .col(big_integer(Plans::PerDay))
                // NULL = no monthly quota.
                .col(big_integer_null(Plans::PerMonth))
                .col(boolean(Plans::IsDefault))
                .col(timestamp_with_time_zone(Plans::CreatedAt))
                .col(timestamp_with_time_zone(Plans::UpdatedAt))
                .to_owned(),
        )
        .await?;
    manager
        .create_index(
            Index::create()
                .name("idx_plans_name")
                .table(Plans::Table)
                .col(Plans::Name)
                .unique()
                .to_owned(),
        )
        .await
}

async fn create_tenants(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    manager
        .create_table(
            Table::create()
                .table(Tenants::Table)
                .col(pk_uuid(Tenants::Id))
                .col(text(Tenants::Name))
                .col(text(Tenants::Slug))
                .col(uuid_null(Tenants::PlanId))
                // Tenant overrides of the plan's limits; NULL = use the plan's.
                .col(big_integer_null(Tenants::LimitPerMinute))
                .col(big_integer_null(Tenants::LimitPerHour))
                .col(big_integer_null(Tenants::LimitPerDay))
                .col(big_integer_null(Tenants::LimitPerMonth))
                .col(text(Tenants::Timezone).default("UTC"))
                .col(string_len(Tenants::Currency, 3).default("USD"))
                .col(text(Tenants::Status).default("active"))
                .col(timestamp_with_time_zone(Tenants::CreatedAt))
                .col(timestamp_with_time_zone(Tenants::UpdatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_tenants_plan_id")
                        .from(Tenants::Table, Tenants::PlanId)
                        .to(Plans::Table, Plans::Id)
                        .on_delete(ForeignKeyAction::SetNull),
                )
                .to_owned(),
        )
        .await?;
    manager
        .create_index(
            Index::create()
                .name("idx_tenants_slug")
                .table(Tenants::Table)
                .col(Tenants::Slug)
                .unique()
                .to_owned(),
        )
        .await
}

async fn create_users(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    manager
        .create_table(
            Table::create()
                .table(Users::Table)
                .col(pk_uuid(Users::Id))
                // Stored lowercase, so a plain unique index is case-insensitive in effect.
                .col(text(Users::Email))
                .col(text(Users::PasswordHash))
                .col(text_null(Users::Name))
                .col(boolean(Users::IsPlatformAdmin).default(false))
                .col(text(Users::Status).default("active"))
                .col(timestamp_with_time_zone_null(Users::LastLoginAt))
                .col(timestamp_with_time_zone_null(Users::PasswordChangedAt))
                .col(timestamp_with_time_zone(Users::CreatedAt))
                .col(timestamp_with_time_zone(Users::UpdatedAt))
                .to_owned(),
        )
        .await?;
    manager
        .create_index(
            Index::create()
                .name("idx_users_email")
                .table(Users::Table)
                .col(Users::Email)
                .unique()
                .to_owned(),
        )
        .await
}

async fn create_memberships(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    manager
        .create_table(
            Table::create()
                .table(Memberships::Table)
                .col(pk_uuid(Memberships::Id))
                .col(uuid(Memberships::TenantId))
                .col(uuid(Memberships::UserId))
                .col(text(Memberships::Role))
                .col(timestamp_with_time_zone(Memberships::CreatedAt))
                .col(timestamp_with_time_zone(Memberships::UpdatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_memberships_tenant_id")
                        .from(Memberships::Table, Memberships::TenantId)
                        .to(Tenants::Table, Tenants::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_memberships_user_id")
                        .from(Memberships::Table, Memberships::UserId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
    manager
        .create_index(
            Index::create()
                .name("idx_memberships_tenant_id_user_id")
                .table(Memberships::Table)
                .col(Memberships::TenantId)
                .col(Memberships::UserId)
                .unique()
                .to_owned(),
        )
        .await?;
    manager
        .create_index(
            Index::create()
                .name("idx_memberships_user_id")
                .table(Memberships::Table)
                .col(Memberships::UserId)
                .to_owned(),
        )
        .await
}

async fn create_auth_attempts(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    manager
        .create_table(
            Table::create()
                .table(AuthAttempts::Table)
                .col(pk_uuid(AuthAttempts::Id))
                .col(text(AuthAttempts::Kind))
                .col(text_null(AuthAttempts::Email))
                .col(uuid_null(AuthAttempts::UserId))
                // No FK: a failed API-key attempt may name a tenant that is gone.
                .col(uuid_null(AuthAttempts::TenantId))
                .col(text_null(AuthAttempts::Ip))
                .col(boolean(AuthAttempts::Succeeded))
                .col(text_null(AuthAttempts::Reason))
                .col(timestamp_with_time_zone(AuthAttempts::CreatedAt))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_auth_attempts_user_id")
                        .from(AuthAttempts::Table, AuthAttempts::UserId)
                        .to(Users::Table, Users::Id)
                        .on_delete(ForeignKeyAction::SetNull),
                )
                .to_owned(),
        )
        .await?;
    for (name, col) in [
        ("idx_auth_attempts_email_created_at", AuthAttempts::Email),
        ("idx_auth_attempts_ip_created_at", AuthAttempts::Ip),
        (
            "idx_auth_attempts_tenant_id_created_at",
            AuthAttempts::TenantId,
        ),
    ] {
        manager
            .create_index(
                Index::create()
                    .name(name)
                    .table(AuthAttempts::Table)
                    .col(col)
                    .col(AuthAttempts::CreatedAt)
                    .to_owned(),
            )
            .await?;
    }
    Ok(())
}

#[derive(DeriveIden)]
enum Plans {
    Table,
    Id,
    Name,
    PerMinute,
    PerHour,
    PerDay,
    PerMonth,
    IsDefault,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Id,
    Name,
    Slug,
    PlanId,
    LimitPerMinute,
    LimitPerHour,
    LimitPerDay,
    LimitPerMonth,
    Timezone,
    Currency,
    Status,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Email,
    PasswordHash,
    Name,
    IsPlatformAdmin,
    Status,
    LastLoginAt,
    PasswordChangedAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Memberships {
    Table,
    Id,
    TenantId,
    UserId,
    Role,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum AuthAttempts {
    Table,
    Id,
    Kind,
    Email,
    UserId,
    TenantId,
    Ip,
    Succeeded,
    Reason,
    CreatedAt,
}
