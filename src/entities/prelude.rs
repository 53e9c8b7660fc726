//! Every entity under its table's name: `use crate::entities::prelude::*;`.

pub use super::alert_rules::Entity as AlertRules;
pub use super::alerts::Entity as Alerts;
pub use super::api_keys::Entity as ApiKeys;
pub use super::audit_log::Entity as AuditLog;
pub use super::auth_attempts::Entity as AuthAttempts;
pub use super::budgets::Entity as Budgets;
pub use super::idempotency_keys::Entity as IdempotencyKeys;
pub use super::memberships::Entity as Memberships;
pub use super::notifications::Entity as Notifications;
pub use super::plans::Entity as Plans;
pub use super::provider_calls::Entity as ProviderCalls;
pub use super::provider_credentials::Entity as ProviderCredentials;
pub use super::providers::Entity as Providers;
pub use super::quota_requests::Entity as QuotaRequests;
pub use super::tenants::Entity as Tenants;
pub use super::usage_events::Entity as UsageEvents;
pub use super::usage_rollups::Entity as UsageRollups;
pub use super::users::Entity as Users;
pub use super::webhook_endpoints::Entity as WebhookEndpoints;
