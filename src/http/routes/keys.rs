//! `/v1/keys`: the tenant's API keys. The secret appears in a response exactly once, when the
//! key is created or rotated.

use actix_web::{HttpRequest, HttpResponse, delete, get, http::StatusCode, patch, post, web};
use chrono::Utc;
use serde::Deserialize;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::{
    entities::api_keys,
    error::{Error, Result},
    http::{
        auth::Caller,
        extractors::{Json, Path, Query},
        idempotency,
        pagination::{ListOut, ListParams},
        problem::Problem,
    },
    ids::KeyId,
    keys::{self, KeyChanges, LimitChanges, NewKey, limits::Limits},
    state::AppState,
};

mod dto;

pub use dto::{ImportIn, KeyCreatedOut, KeyIn, KeyOut, KeyPatch, RotateIn};

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(create_key)
        .service(import_key)
        .service(list_keys)
        .service(get_key)
        .service(update_key)
        .service(revoke_key)
        .service(rotate_key);
}

#[derive(Debug, Deserialize)]
struct KeyPath {
    key_id: KeyId,
}

/// Everything a key operation needs from the request.
fn ctx<'a>(
    state: &'a AppState,
    caller: &'a Caller,
    scope: &'a crate::tenancy::TenantScope,
) -> keys::Ctx<'a> {
    keys::Ctx {
        db: &state.db,
        scope,
        audit: &caller.audit,
        defaults: &state.settings.limits,
        events: &state.key_events,
    }
}

async fn out(state: &AppState, key: api_keys::Model) -> Result<KeyOut> {
    let defaults =
        keys::limits::tenant_defaults(&state.db, key.tenant_id.into(), &state.settings.limits)
            .await?;
    Ok(KeyOut::new(key, defaults))
}

/// Create an API key
///
/// Creates a key and returns its secret (`tg_live_…`) — shown this once, only its hash is
/// stored. Limits default to the tenant's plan; setting them needs the owner or admin role
/// and stays within the plan. Supports `Idempotency-Key`.
#[utoipa::path(
    tag = "keys",
    security(("bearer" = [])),
    request_body = KeyIn,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first response for 24 h.")),
    responses(
        (status = 201, description = "Created; `secret` is shown only now.", body = KeyCreatedOut),
        (status = 400, description = "Malformed body or Idempotency-Key.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid access token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The role may not create keys or set limits.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The same Idempotency-Key is in flight.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid field, or Idempotency-Key reused with another body.", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/keys")]
async fn create_key(
    state: web::Data<AppState>,
    req: HttpRequest,
    caller: Caller,
    body: Json<KeyIn>,
) -> Result<HttpResponse> {
    let scope = caller.principal.tenant_scope()?;
    let body = body.0;
    idempotency::run(
        &state,
        &req,
        &scope.tenant_id().to_string(),
        &body,
        || async {
            let new = NewKey {
                name: body.name.clone(),
                description: body.description.clone(),
                limits: body.limits.unwrap_or_default(),
                expires_at: body.expires_at,
            };
            let (key, secret) = keys::create(&ctx(&state, &caller, &scope), new).await?;
            let created = KeyCreatedOut {
                key: out(&state, key).await?,
                secret: secret.expose().to_owned(),
            };
            Ok((
                StatusCode::CREATED,
                serde_json::to_value(created).map_err(Error::internal)?,
            ))
        },
    )
    .await
}

/// Import an API key
///
/// Registers a secret issued by another gateway (at least 24 characters) so existing clients
/// keep working unchanged. Only its hash is stored. Owners and admins only.
#[utoipa::path(
    tag = "keys",
    security(("bearer" = [])),
    request_body = ImportIn,
    responses(
        (status = 201, description = "Imported.", body = KeyOut),
        (status = 400, description = "Malformed body.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid access token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The role may not import keys.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The secret is already registered.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid field.", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/keys/import")]
async fn import_key(
    state: web::Data<AppState>,
    caller: Caller,
    body: Json<ImportIn>,
) -> Result<HttpResponse> {
    let scope = caller.principal.tenant_scope()?;
    let body = body.0;
    let new = NewKey {
        name: body.name,
        description: body.description,
        limits: body.limits.unwrap_or_default(),
        expires_at: body.expires_at,
    };
    let key = keys::import(&ctx(&state, &caller, &scope), new, &body.secret).await?;
    Ok(HttpResponse::Created().json(out(&state, key).await?))
}

/// List API keys
///
/// The tenant's keys, newest first, with cursor pagination.
#[utoipa::path(
    tag = "keys",
    security(("bearer" = [])),
    params(ListParams<KeyId>),
    responses(
        (status = 200, description = "A page of keys.", body = ListOut<KeyOut>),
        (status = 400, description = "A query parameter is invalid.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid access token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "No active tenant.", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/keys")]
async fn list_keys(
    state: web::Data<AppState>,
    caller: Caller,
    query: Query<ListParams<KeyId>>,
) -> Result<HttpResponse> {
    let scope = caller.principal.tenant_scope()?;
    let (rows, has_more) = keys::store::list(&state.db, &scope, query.0.page()?).await?;
    let defaults =
        keys::limits::tenant_defaults(&state.db, scope.tenant_id(), &state.settings.limits).await?;
    let data = rows
        .into_iter()
        .map(|key| KeyOut::new(key, defaults))
        .collect();
    Ok(HttpResponse::Ok().json(ListOut { data, has_more }))
}

/// Get an API key
///
/// One key of the tenant (never its secret). Another tenant's key is a 404.
#[utoipa::path(
    tag = "keys",
    security(("bearer" = [])),
    params(("key_id" = KeyId, Path, description = "The key's id (`key_…`).")),
    responses(
        (status = 200, description = "The key.", body = KeyOut),
        (status = 400, description = "The id is malformed.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid access token.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such key in this tenant.", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/keys/{key_id}")]
async fn get_key(
    state: web::Data<AppState>,
    caller: Caller,
    path: Path<KeyPath>,
) -> Result<HttpResponse> {
    let scope = caller.principal.tenant_scope()?;
    let key = keys::store::find(&state.db, &scope, path.0.key_id).await?;
    Ok(HttpResponse::Ok().json(out(&state, key).await?))
}

/// Update an API key
///
/// Renames, describes, activates/deactivates, sets the expiry or the limits of a key. A
/// limit set to `null` inherits the plan's again. Limits need the owner or admin role.
#[utoipa::path(
    tag = "keys",
    security(("bearer" = [])),
    request_body = KeyPatch,
    params(("key_id" = KeyId, Path, description = "The key's id (`key_…`).")),
    responses(
        (status = 200, description = "The updated key.", body = KeyOut),
        (status = 400, description = "Malformed body or id.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid access token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The role may not change this.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such key in this tenant.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The key is revoked.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid field.", body = Problem, content_type = "application/problem+json"),
    )
)]
#[patch("/v1/keys/{key_id}")]
async fn update_key(
    state: web::Data<AppState>,
    caller: Caller,
    path: Path<KeyPath>,
    body: Json<KeyPatch>,
) -> Result<HttpResponse> {
    let scope = caller.principal.tenant_scope()?;
    let key = keys::update(
        &ctx(&state, &caller, &scope),
        path.0.key_id,
        body.0.into_changes(),
    )
    .await?;
    Ok(HttpResponse::Ok().json(out(&state, key).await?))
}

/// Revoke an API key
///
/// Revokes the key for good: its secret (and any secret still in rotation grace) stops
/// working. Revoking twice is harmless.
#[utoipa::path(
    tag = "keys",
    security(("bearer" = [])),
    params(("key_id" = KeyId, Path, description = "The key's id (`key_…`).")),
    responses(
        (status = 200, description = "The revoked key.", body = KeyOut),
        (status = 400, description = "The id is malformed.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid access token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The role may not revoke keys.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such key in this tenant.", body = Problem, content_type = "application/problem+json"),
    )
)]
#[delete("/v1/keys/{key_id}")]
async fn revoke_key(
    state: web::Data<AppState>,
    caller: Caller,
    path: Path<KeyPath>,
) -> Result<HttpResponse> {
    let scope = caller.principal.tenant_scope()?;
    let key = keys::revoke(&ctx(&state, &caller, &scope), path.0.key_id).await?;
    Ok(HttpResponse::Ok().json(out(&state, key).await?))
}

/// Rotate an API key
///
/// Issues a new secret (returned once). The old secret keeps working for `grace_seconds`
/// (0 to 604800; default 0 = stops now), so clients can switch without downtime.
#[utoipa::path(
    tag = "keys",
    security(("bearer" = [])),
    request_body = RotateIn,
    params(("key_id" = KeyId, Path, description = "The key's id (`key_…`).")),
    responses(
        (status = 200, description = "Rotated; `secret` is shown only now.", body = KeyCreatedOut),
        (status = 400, description = "Malformed body or id.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid access token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The role may not rotate keys.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such key in this tenant.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The key is revoked.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid grace period.", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/keys/{key_id}/rotate")]
async fn rotate_key(
    state: web::Data<AppState>,
    caller: Caller,
    path: Path<KeyPath>,
    body: Json<RotateIn>,
) -> Result<HttpResponse> {
    let scope = caller.principal.tenant_scope()?;
    let (key, secret) = keys::rotate(
        &ctx(&state, &caller, &scope),
        path.0.key_id,
        body.0.grace_seconds,
    )
    .await?;
    let rotated = KeyCreatedOut {
        key: out(&state, key).await?,
        secret: secret.expose().to_owned(),
    };
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(rotated))
}

impl KeyPatch {
    fn into_changes(self) -> KeyChanges {
        KeyChanges {
            name: self.name,
            description: self.description,
            is_active: self.is_active,
            expires_at: self.expires_at,
            limits: self.limits.map(|l| LimitChanges {
                per_minute: l.per_minute,
                per_hour: l.per_hour,
                per_day: l.per_day,
                per_month: l.per_month,
            }),
        }
    }
}

impl KeyOut {
    fn new(key: api_keys::Model, tenant_defaults: Limits) -> Self {
        let overrides = Limits::of_key(&key);
        let now = Utc::now();
        Self {
            id: key.id.into(),
            status: keys::status_of(&key, now),
            name: key.name,
            description: key.description,
            prefix: key.prefix,
            last4: key.last4,
            source: key.source,
            limits: overrides.or(tenant_defaults),
            limit_overrides: overrides,
            usage_count: key.usage_count,
            last_used_at: key.last_used_at,
            expires_at: key.expires_at,
            rotated_at: key.rotated_at,
            previous_secret_expires_at: key.previous_expires_at.filter(|at| *at > now),
            created_at: key.created_at,
            updated_at: key.updated_at,
        }
    }
}

/// Shared by the DTOs: lets `null` (clear) and an absent field (leave alone) differ.
fn double_option<'de, T, D>(de: D) -> std::result::Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    Option::<T>::deserialize(de).map(Some)
}
