//! Sessions: password login, switching tenant and the caller's own identity.

use actix_web::{HttpRequest, HttpResponse, get, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::{
    auth::{self, Credentials, TokenUse},
    entities::users as user_rows,
    error::{Error, Result},
    http::{
        auth::{Caller, client_ip},
        extractors::Json,
        problem::Problem,
    },
    ids::{TenantId, UserId},
    state::AppState,
    tenancy::Role,
    tenants,
};

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(login).service(switch_tenant).service(me);
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginIn {
    /// The account's email address.
    pub email: String,
    pub password: String,
    /// The tenant to act in; defaults to the user's first membership.
    #[serde(default)]
    pub tenant_id: Option<TenantId>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenOut {
    /// A JWT to send as `Authorization: Bearer <token>`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the token expires.
    pub expires_in: u64,
}

/// Log in
///
/// Exchanges email and password for a short-lived access token. Unknown email and wrong
/// password answer the same 401; repeated failures are throttled with 429.
#[utoipa::path(
    tag = "auth",
    request_body = LoginIn,
    responses(
        (status = 200, description = "Logged in.", body = TokenOut),
        (status = 400, description = "The body is not JSON.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Invalid email or password.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a member of the requested tenant.", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is too large.", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not `application/json`.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is missing or invalid.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed attempts.", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/auth/login")]
async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: Json<LoginIn>,
) -> Result<HttpResponse> {
    let Json(body) = body;
    if !body.email.contains('@') {
        return Err(Error::invalid("/email", "must be an email address"));
    }
    if body.password.is_empty() {
        return Err(Error::invalid("/password", "must not be empty"));
    }
    let ip = client_ip(&req);
    let creds = Credentials {
        email: &body.email,
        password: &body.password,
        tenant_id: body.tenant_id,
        ip: ip.as_deref(),
        token_use: TokenUse::Api,
    };
    let token = auth::login(&state.db, &state.settings.auth, creds).await?;
    Ok(token_response(token))
}

/// 200 with the token; never cached.
fn token_response(token: auth::AccessToken) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(TokenOut::from(token))
}

impl From<auth::AccessToken> for TokenOut {
    fn from(token: auth::AccessToken) -> Self {
        Self {
            access_token: token.token,
            token_type: "Bearer",
            expires_in: token.expires_in,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SwitchTenantIn {
    /// The tenant to act in (`tnt_…`).
    pub tenant_id: TenantId,
}

/// Switch tenant
///
/// Issues a new access token acting in another tenant. The caller must be a member of it;
/// platform administrators may switch to any existing tenant (acting with the `admin` role
/// where they are not members). The old token stays valid until it expires.
#[utoipa::path(
    tag = "auth",
    security(("bearer" = [])),
    request_body = SwitchTenantIn,
    responses(
        (status = 200, description = "A token for the tenant.", body = TokenOut),
        (status = 400, description = "The body is not JSON.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid access token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not a member of the tenant.", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is too large.", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not `application/json`.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is missing or invalid.", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/auth/switch-tenant")]
async fn switch_tenant(
    state: web::Data<AppState>,
    caller: Caller,
    body: Json<SwitchTenantIn>,
) -> Result<HttpResponse> {
    let (settings, tenant) = (&state.settings.auth, body.0.tenant_id);
    let token = auth::switch_tenant(
        &state.db,
        settings,
        &caller.principal,
        tenant,
        TokenUse::Api,
    )
    .await?;
    Ok(token_response(token))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MeOut {
    pub user: UserOut,
    /// Every tenant the user belongs to.
    pub memberships: Vec<MembershipOut>,
    /// The tenant this token acts in.
    pub active_tenant_id: Option<TenantId>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserOut {
    pub id: UserId,
    pub email: String,
    pub name: Option<String>,
    pub is_platform_admin: bool,
    pub created_at: DateTime<Utc>,
}

impl From<user_rows::Model> for UserOut {
    fn from(user: user_rows::Model) -> Self {
        Self {
            id: user.id.into(),
            email: user.email,
            name: user.name,
            is_platform_admin: user.is_platform_admin,
            created_at: user.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MembershipOut {
    pub tenant_id: TenantId,
    pub tenant_name: String,
    pub role: Role,
}

/// Current user
///
/// The authenticated user, their memberships and the token's active tenant.
#[utoipa::path(
    tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller.", body = MeOut),
        (status = 401, description = "Missing or invalid access token.", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/me")]
async fn me(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse> {
    let principal = caller.principal;
    let user = auth::users::get(&state.db, principal.user_id).await?;
    let memberships = tenants::memberships_of(&state.db, principal.user_id).await?;
    Ok(HttpResponse::Ok().json(MeOut {
        user: UserOut::from(user),
        memberships: memberships
            .into_iter()
            .map(|m| MembershipOut {
                tenant_id: m.tenant_id,
                tenant_name: m.tenant_name,
                role: m.role,
            })
            .collect(),
        active_tenant_id: principal.membership.map(|(tenant, _)| tenant),
    }))
}
