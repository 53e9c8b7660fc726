//! Audit and idempotency: creates `audit_log` (append-only record of administrative actions)
//! and `idempotency_keys` (first responses to `Idempotency-Key` POSTs, replayed on retries).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        create_audit_log(manager).await?;
        create_idempotency_keys(manager).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(IdempotencyKeys::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(AuditLog::Table).to_owned())
            .await
    }
}

async fn create_audit_log(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    manager
        .create_table(
            Table::create()
                .table(AuditLog::Table)
                // UUIDv7, so the key is time-ordered.
                .col(pk_uuid(AuditLog::Id))
                // No foreign keys: the audit trail outlives its tenant and actors.
                .col(uuid_null(AuditLog::TenantId))
                .col(text(AuditLog::ActorType))
                .col(uuid_null(AuditLog::ActorId))
                .col(text(AuditLog::ActorLabel))
                // E.g. `key.create`.
                .col(text(AuditLog::Action))
                .col(text(AuditLog::TargetType))
                .col(text_null(AuditLog::TargetId))
                .col(json_binary_null(AuditLog::Before))
                .col(json_binary_null(AuditLog::After))
                .col(text_null(AuditLog::Ip))
                .col(text_null(AuditLog::UserAgent))
                .col(text_null(AuditLog::RequestId))
                .col(timestamp_with_time_zone(AuditLog::CreatedAt))
                .to_owned(),
        )
        .await?;
    for (name, col) in [
        ("idx_audit_log_tenant_id_created_at", AuditLog::TenantId),
        ("idx_audit_log_action_created_at", AuditLog::Action),
        ("idx_audit_log_actor_id_created_at", AuditLog::ActorId),
    ] {
        manager
            .create_index(
                Index::create()
                    .name(name)
                    .table(AuditLog::Table)
                    .col(col)
                    .col(AuditLog::CreatedAt)
                    .to_owned(),
            )
            .await?;
    }
    manager
        .create_index(
            Index::create()
                .name("idx_audit_log_target_id")
                .table(AuditLog::Table)
                .col(AuditLog::TargetId)
                .to_owned(),
        )
        .await
}

async fn create_idempotency_keys(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    manager
        .create_table(
            Table::create()
                .table(IdempotencyKeys::Table)
                // Whose key it is, e.g. the tenant id: keys are unique per scope only.
                .col(text(IdempotencyKeys::Scope))
                .col(text(IdempotencyKeys::Key))
                // A retry with another body under the same key is refused.
                .col(text(IdempotencyKeys::RequestHash))
                .col(text(IdempotencyKeys::Method))
                .col(text(IdempotencyKeys::Path))
                .col(text(IdempotencyKeys::Status))
                .col(integer_null(IdempotencyKeys::ResponseStatus))
                .col(json_binary_null(IdempotencyKeys::ResponseHeaders))
                .col(blob_null(IdempotencyKeys::ResponseBody))
                .col(timestamp_with_time_zone(IdempotencyKeys::CreatedAt))
                .col(timestamp_with_time_zone(IdempotencyKeys::ExpiresAt))
                .primary_key(
                    Index::create()
                        .col(IdempotencyKeys::Scope)
                        .col(IdempotencyKeys::Key),
                )
                .to_owned(),
        )
        .await?;
    manager
        .create_index(
            Index::create()
                .name("idx_idempotency_keys_expires_at")
                .table(IdempotencyKeys::Table)
                .col(IdempotencyKeys::ExpiresAt)
                .to_owned(),
        )
        .await
}

#[derive(DeriveIden)]
enum AuditLog {
    Table,
    Id,
    TenantId,
    ActorType,
    ActorId,
    ActorLabel,
    Action,
    TargetType,
    TargetId,
    Before,
    After,
    Ip,
    UserAgent,
    RequestId,
    CreatedAt,
}

#[derive(DeriveIden)]
enum IdempotencyKeys {
    Table,
    Scope,
    Key,
    RequestHash,
    Method,
    Path,
    Status,
    ResponseStatus,
    ResponseHeaders,
    ResponseBody,
    CreatedAt,
    ExpiresAt,
}
