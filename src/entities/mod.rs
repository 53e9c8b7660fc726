//! SeaORM entities: one module per table, mirroring the `migration` crate's schema.
//!
//! Plain data only: string enums are `String` columns (the domain modules own the enums),
//! money is integer `*_nanos` (1e-9 of the currency unit), never floats.

pub mod prelude;

pub mod alert_rules;
pub mod alerts;
pub mod api_keys;
pub mod audit_log;
pub mod auth_attempts;
pub mod budgets;
pub mod idempotency_keys;
pub mod memberships;
pub mod notifications;
pub mod plans;
pub mod provider_calls;
pub mod provider_credentials;
pub mod providers;
pub mod quota_requests;
pub mod tenants;
pub mod usage_events;
pub mod usage_rollup_totals;
pub mod usage_rollups;
pub mod usage_utilization;
pub mod users;
pub mod webhook_endpoints;
