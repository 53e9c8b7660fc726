//! Alerts: creates `alert_rules`, `alerts` (deduplicated, with a lifecycle), `notifications`
//! (the email/webhook outbox) and `webhook_endpoints` (encrypted signing secrets).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        create_alert_rules(manager).await?;
        create_alerts(manager).await?;
        create_notifications(manager).await?;
        create_webhook_endpoints(manager).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            WebhookEndpoints::Table.into_iden(),
            Notifications::Table.into_iden(),
            Alerts::Table.into_iden(),
            AlertRules::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

/// `ON DELETE CASCADE` from `column` to `tenants.id`.
fn tenant_fk(name: &str, table: impl IntoIden, column: impl IntoIden) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(name)
        .from(table, column)
        .to(Tenants::Table, Tenants::Id)
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

/// `ON DELETE SET NULL` from the optional actor `column` to `users.id`.
fn user_fk(name: &str, table: impl IntoIden, column: impl IntoIden) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(name)
        .from(table, column)
        .to(Users::Table, Users::Id)
        .on_delete(ForeignKeyAction::SetNull)
        .to_owned()
}

async fn create_alert_rules(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    let t = AlertRules::Table;
    manager
        .create_table(
            Table::create()
                .table(t)
                .col(pk_uuid(AlertRules::Id))
                // NULL = a platform-wide rule.
                .col(uuid_null(AlertRules::TenantId))
                .col(text(AlertRules::Kind))
                // Optional scope: one key, one provider, one endpoint.
                .col(uuid_null(AlertRules::KeyId))
                .col(uuid_null(AlertRules::ProviderId))
                .col(text_null(AlertRules::Endpoint))
                .col(json_binary(AlertRules::Params))
                .col(json_binary(AlertRules::Channels))
                .col(boolean(AlertRules::IsEnabled).default(true))
                .col(uuid_null(AlertRules::CreatedBy))
                .col(timestamp_with_time_zone(AlertRules::CreatedAt))
                .col(timestamp_with_time_zone(AlertRules::UpdatedAt))
                .foreign_key(&mut tenant_fk(
                    "fk_alert_rules_tenant_id",
                    t,
                    AlertRules::TenantId,
                ))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_alert_rules_key_id")
                        .from(t, AlertRules::KeyId)
                        .to(ApiKeys::Table, ApiKeys::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_alert_rules_provider_id")
                        .from(t, AlertRules::ProviderId)
                        .to(Providers::Table, Providers::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(&mut user_fk(
                    "fk_alert_rules_created_by",
                    t,
                    AlertRules::CreatedBy,
                ))
                .to_owned(),
        )
        .await?;
    manager
        .create_index(
            Index::create()
                .name("idx_alert_rules_tenant_id_kind")
                .table(t)
                .col(AlertRules::TenantId)
                .col(AlertRules::Kind)
                .to_owned(),
        )
        .await
}

async fn create_alerts(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    let t = Alerts::Table;
    manager
        .create_table(
            Table::create()
                .table(t)
                .col(pk_uuid(Alerts::Id))
                .col(uuid_null(Alerts::TenantId))
                .col(uuid_null(Alerts::RuleId))
                .col(text(Alerts::Kind))
                .col(text(Alerts::Severity))
                .col(text(Alerts::Status).default("active"))
                // A repeat of an open alert bumps `occurrences` instead of adding a row.
                .col(text(Alerts::DedupKey))
                .col(text(Alerts::Title))
                .col(text(Alerts::Message))
                .col(text_null(Alerts::SubjectType))
                .col(text_null(Alerts::SubjectId))
                .col(json_binary_null(Alerts::Details))
                .col(timestamp_with_time_zone(Alerts::FirstSeenAt))
                .col(timestamp_with_time_zone(Alerts::LastSeenAt))
                .col(integer(Alerts::Occurrences).default(1))
                .col(uuid_null(Alerts::AcknowledgedBy))
                .col(timestamp_with_time_zone_null(Alerts::AcknowledgedAt))
                .col(timestamp_with_time_zone_null(Alerts::ResolvedAt))
                .col(timestamp_with_time_zone(Alerts::CreatedAt))
                .col(timestamp_with_time_zone(Alerts::UpdatedAt))
                .foreign_key(&mut tenant_fk("fk_alerts_tenant_id", t, Alerts::TenantId))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_alerts_rule_id")
                        .from(t, Alerts::RuleId)
                        .to(AlertRules::Table, AlertRules::Id)
                        .on_delete(ForeignKeyAction::SetNull),
                )
                .foreign_key(&mut user_fk(
                    "fk_alerts_acknowledged_by",
                    t,
                    Alerts::AcknowledgedBy,
                ))
                .to_owned(),
        )
        .await?;
    manager
        .create_index(
            Index::create()
                .name("idx_alerts_dedup_key")
                .table(t)
                .col(Alerts::DedupKey)
                .unique()
                .to_owned(),
        )
        .await?;
    manager
        .create_index(
            Index::create()
                .name("idx_alerts_tenant_id_status_created_at")
                .table(t)
                .col(Alerts::TenantId)
                .col(Alerts::Status)
                .col(Alerts::CreatedAt)
                .to_owned(),
        )
        .await
}

async fn create_notifications(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    let t = Notifications::Table;
    manager
        .create_table(
            Table::create()
                .table(t)
                .col(pk_uuid(Notifications::Id))
                .col(uuid_null(Notifications::TenantId))
                .col(text(Notifications::Channel))
                .col(text(Notifications::Template))
                // Makes enqueueing idempotent: one notification per natural key.
                .col(text(Notifications::NaturalKey))
                .col(text(Notifications::Recipient))
                .col(text_null(Notifications::Subject))
                .col(json_binary(Notifications::Payload))
                .col(text(Notifications::Status).default("pending"))
                .col(integer(Notifications::Attempts).default(0))
                .col(timestamp_with_time_zone(Notifications::NextAttemptAt))
                .col(text_null(Notifications::LastError))
                .col(text_null(Notifications::MessageId))
                .col(timestamp_with_time_zone_null(Notifications::SentAt))
                .col(timestamp_with_time_zone(Notifications::CreatedAt))
                .col(timestamp_with_time_zone(Notifications::UpdatedAt))
                .foreign_key(&mut tenant_fk(
                    "fk_notifications_tenant_id",
                    t,
                    Notifications::TenantId,
                ))
                .to_owned(),
        )
        .await?;
    manager
        .create_index(
            Index::create()
                .name("idx_notifications_natural_key")
                .table(t)
                .col(Notifications::NaturalKey)
                .unique()
                .to_owned(),
        )
        .await?;
    manager
        .create_index(
            Index::create()
                .name("idx_notifications_status_next_attempt_at")
                .table(t)
                .col(Notifications::Status)
                .col(Notifications::NextAttemptAt)
                .to_owned(),
        )
        .await
}

async fn create_webhook_endpoints(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    let t = WebhookEndpoints::Table;
    manager
        .create_table(
            Table::create()
                .table(t)
                .col(pk_uuid(WebhookEndpoints::Id))
                .col(uuid_null(WebhookEndpoints::TenantId))
                .col(text(WebhookEndpoints::Url))
                .col(text_null(WebhookEndpoints::Description))
                .col(blob(WebhookEndpoints::SecretCiphertext))
                .col(blob(WebhookEndpoints::SecretNonce))
                .col(json_binary(WebhookEndpoints::EventTypes))
                .col(boolean(WebhookEndpoints::IsEnabled).default(true))
                // E.g. the receiver answered 410 Gone.
                .col(text_null(WebhookEndpoints::DisabledReason))
                .col(uuid_null(WebhookEndpoints::CreatedBy))
                .col(timestamp_with_time_zone(WebhookEndpoints::CreatedAt))
                .col(timestamp_with_time_zone(WebhookEndpoints::UpdatedAt))
                .foreign_key(&mut tenant_fk(
                    "fk_webhook_endpoints_tenant_id",
                    t,
                    WebhookEndpoints::TenantId,
                ))
                .foreign_key(&mut user_fk(
                    "fk_webhook_endpoints_created_by",
                    t,
                    WebhookEndpoints::CreatedBy,
                ))
                .to_owned(),
        )
        .await?;
    manager
        .create_index(
            Index::create()
                .name("idx_webhook_endpoints_tenant_id")
                .table(t)
                .col(WebhookEndpoints::TenantId)
                .to_owned(),
        )
        .await
}

#[derive(DeriveIden, Clone, Copy)]
enum AlertRules {
    Table,
    Id,
    TenantId,
    Kind,
    KeyId,
    ProviderId,
    Endpoint,
    Params,
    Channels,
    IsEnabled,
    CreatedBy,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Alerts {
    Table,
    Id,
    TenantId,
    RuleId,
    Kind,
    Severity,
    Status,
    DedupKey,
    Title,
    Message,
    SubjectType,
    SubjectId,
    Details,
    FirstSeenAt,
    LastSeenAt,
    Occurrences,
    AcknowledgedBy,
    AcknowledgedAt,
    ResolvedAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum Notifications {
    Table,
    Id,
    TenantId,
    Channel,
    Template,
    NaturalKey,
    Recipient,
    Subject,
    Payload,
    Status,
    Attempts,
    NextAttemptAt,
    LastError,
    MessageId,
    SentAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden, Clone, Copy)]
enum WebhookEndpoints {
    Table,
    Id,
    TenantId,
    Url,
    Description,
    SecretCiphertext,
    SecretNonce,
    EventTypes,
    IsEnabled,
    DisabledReason,
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

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Providers {
    Table,
    Id,
}
