//! Platform-admin views across tenants.

use actix_web::{HttpResponse, get, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::{
    entities::tenants as tenant_rows,
    error::Result,
    http::{
        auth::Caller,
        extractors::{Path, Query},
        pagination::{ListOut, ListParams},
        problem::Problem,
    },
    ids::TenantId,
    state::AppState,
    tenants,
};

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(list_tenants).service(get_tenant);
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TenantOut {
    pub id: TenantId,
    pub name: String,
    pub slug: String,
    /// `active` or `suspended`.
    pub status: String,
    /// IANA time zone; monthly quotas reset at its month boundary.
    pub timezone: String,
    /// ISO 4217 currency of the tenant's costs.
    pub currency: String,
    pub created_at: DateTime<Utc>,
}

impl From<tenant_rows::Model> for TenantOut {
    fn from(t: tenant_rows::Model) -> Self {
        Self {
            id: t.id.into(),
            name: t.name,
            slug: t.slug,
            status: t.status,
            timezone: t.timezone,
            currency: t.currency,
            created_at: t.created_at,
        }
    }
}

#[derive(Debug, Deserialize)]
struct TenantPath {
    tenant_id: TenantId,
}

/// List tenants
///
/// Every tenant, newest first, with cursor pagination. Platform administrators only.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(ListParams<TenantId>),
    responses(
        (status = 200, description = "A page of tenants.", body = ListOut<TenantOut>),
        (status = 400, description = "A query parameter is invalid.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid access token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a platform administrator.", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/admin/tenants")]
async fn list_tenants(
    state: web::Data<AppState>,
    caller: Caller,
    query: Query<ListParams<TenantId>>,
) -> Result<HttpResponse> {
    let scope = caller.principal.admin_scope()?;
    let (rows, has_more) = tenants::list(&state.db, scope, query.0.page()?).await?;
    let data = rows.into_iter().map(TenantOut::from).collect();
    Ok(HttpResponse::Ok().json(ListOut { data, has_more }))
}

/// Get a tenant
///
/// One tenant by id. Platform administrators only.
#[utoipa::path(
    tag = "admin",
    security(("bearer" = [])),
    params(("tenant_id" = TenantId, Path, description = "The tenant's id (`tnt_…`).")),
    responses(
        (status = 200, description = "The tenant.", body = TenantOut),
        (status = 400, description = "The id is malformed.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid access token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a platform administrator.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such tenant.", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/admin/tenants/{tenant_id}")]
async fn get_tenant(
    state: web::Data<AppState>,
    caller: Caller,
    path: Path<TenantPath>,
) -> Result<HttpResponse> {
    let scope = caller.principal.admin_scope()?;
    let tenant = tenants::get(&state.db, scope, path.0.tenant_id).await?;
    Ok(HttpResponse::Ok().json(TenantOut::from(tenant)))
}
