//! The audit log: who did what, when and from where, filtered and paginated.

use actix_web::{HttpResponse, get, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use crate::{
    audit::{self, Filter, Reader},
    entities::audit_log,
    error::Result,
    http::{auth::Caller, extractors::Query, pagination::ListOut, problem::Problem},
    ids::{AuditId, KeyId, TenantId, UserId},
    pagination::Page,
    state::AppState,
};

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(list_audit_log);
}

/// Filters and cursor of the audit-log list; every filter is optional.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// An exact action (`member.add`) or a prefix ending in `.` (`member.`).
    action: Option<String>,
    /// Only entries by this user.
    actor_id: Option<UserId>,
    /// Only entries about this target id (e.g. a `usr_…` or `tnt_…` id).
    target_id: Option<String>,
    /// Entries at or after this instant (RFC 3339; percent-encode a `+` offset or use `Z`).
    from: Option<DateTime<Utc>>,
    /// Entries before this instant (RFC 3339).
    to: Option<DateTime<Utc>>,
    /// Platform administrators: only this tenant's entries. Others may only name their own.
    tenant_id: Option<TenantId>,
    /// Page size, 1 to 100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u64>,
    /// Return entries older than this id (the last id of the previous page).
    starting_after: Option<AuditId>,
    /// Return entries newer than this id (the first id of the next page).
    ending_before: Option<AuditId>,
}

impl AuditQuery {
    fn into_parts(self) -> Result<(Filter, Page)> {
        let page = Page::new(
            self.limit,
            self.starting_after.map(Uuid::from),
            self.ending_before.map(Uuid::from),
        )?;
        let filter = Filter {
            action: self.action,
            actor_id: self.actor_id,
            target_id: self.target_id,
            from: self.from,
            to: self.to,
            tenant_id: self.tenant_id,
        };
        Ok((filter, page))
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntryOut {
    pub id: AuditId,
    /// The tenant acted in; null for account-level actions (e.g. a password change).
    pub tenant_id: Option<TenantId>,
    pub actor: ActorOut,
    /// `<resource>.<verb>`, e.g. `member.role_change`.
    pub action: String,
    pub target: TargetOut,
    /// The changed fields before the action; never secrets.
    pub before: Option<Value>,
    /// The changed fields after the action; never secrets.
    pub after: Option<Value>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ActorOut {
    /// `user`, `api_key` or `system`.
    #[serde(rename = "type")]
    pub type_: String,
    /// The actor's id (`usr_…`, `key_…`); null for the system.
    pub id: Option<String>,
    /// Human-readable: the user's email, the key's name, or the job.
    pub label: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TargetOut {
    /// What was acted on: `user`, `tenant`, `api_key`, …
    #[serde(rename = "type")]
    pub type_: String,
    pub id: Option<String>,
}

impl From<audit_log::Model> for AuditEntryOut {
    fn from(row: audit_log::Model) -> Self {
        let actor_id = row.actor_id.map(|id| match row.actor_type.as_str() {
            "user" => UserId(id).to_string(),
            "api_key" => KeyId(id).to_string(),
            _ => id.to_string(),
        });
        Self {
            id: row.id.into(),
            tenant_id: row.tenant_id.map(TenantId),
            actor: ActorOut {
                type_: row.actor_type,
                id: actor_id,
                label: row.actor_label,
            },
            action: row.action,
            target: TargetOut {
                type_: row.target_type,
                id: row.target_id,
            },
            before: row.before,
            after: row.after,
            ip: row.ip,
            user_agent: row.user_agent,
            request_id: row.request_id,
            created_at: row.created_at,
        }
    }
}

/// List audit-log entries
///
/// Administrative actions, newest first, with cursor pagination. Members whose role may read
/// the audit log (owner, admin, finance) see their active tenant's entries; platform
/// administrators see every tenant's, and account-level entries, and may filter by
/// `tenant_id`.
#[utoipa::path(
    tag = "audit",
    security(("bearer" = [])),
    params(AuditQuery),
    responses(
        (status = 200, description = "A page of entries.", body = ListOut<AuditEntryOut>),
        (status = 400, description = "A query parameter is invalid.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid access token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller's role may not read the audit log, or the tenant is not theirs.", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/audit-log")]
async fn list_audit_log(
    state: web::Data<AppState>,
    caller: Caller,
    query: Query<AuditQuery>,
) -> Result<HttpResponse> {
    let (filter, page) = query.0.into_parts()?;
    let reader = Reader::for_principal(&caller.principal, filter.tenant_id)?;
    let (rows, has_more) = audit::list(&state.db, reader, filter, page).await?;
    let data = rows.into_iter().map(AuditEntryOut::from).collect();
    Ok(HttpResponse::Ok().json(ListOut { data, has_more }))
}
