//! The caller's own account: signing up (a new account and tenant) and changing the password.

use actix_web::{HttpRequest, HttpResponse, post, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::{admin::TenantOut, auth::UserOut};
use crate::{
    auth::{self, NewAccount, PasswordChange},
    error::Result,
    http::{
        auth::{Caller, request_context},
        extractors::Json,
        problem::Problem,
    },
    state::AppState,
};

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(signup).service(change_password);
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignupIn {
    /// The new account's email address; must not have an account yet.
    pub email: String,
    /// At least 12 characters.
    pub password: String,
    /// The account's display name.
    #[serde(default)]
    pub name: Option<String>,
    /// The name of the tenant to create; its slug is derived from it.
    pub tenant_name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SignupOut {
    pub user: UserOut,
    /// The new tenant; the user is its owner.
    pub tenant: TenantOut,
    /// A JWT acting in the new tenant, sent as `Authorization: Bearer <token>`.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the token expires.
    pub expires_in: u64,
}

/// Sign up
///
/// Creates an account, a tenant (on the default plan, with a unique slug derived from its
/// name) and the account's `owner` membership in one step, and returns a token acting in the
/// new tenant. Only when the server allows it (`auth.open_signup`).
#[utoipa::path(
    tag = "auth",
    request_body = SignupIn,
    responses(
        (status = 201, description = "Signed up.", body = SignupOut),
        (status = 400, description = "The body is not JSON.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Sign-up is closed on this server.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The email has an account already.", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is too large.", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not `application/json`.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is missing or invalid (e.g. a password under 12 characters).", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/auth/signup")]
async fn signup(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: Json<SignupIn>,
) -> Result<HttpResponse> {
    let Json(body) = body;
    let new = NewAccount {
        email: &body.email,
        password: &body.password,
        name: body.name,
        tenant_name: &body.tenant_name,
    };
    let ctx = request_context(&req);
    let done = auth::signup(&state.db, &state.settings.auth, ctx, new).await?;
    Ok(HttpResponse::Created()
        .insert_header(("Cache-Control", "no-store"))
        .json(SignupOut {
            user: done.user.into(),
            tenant: done.tenant.into(),
            access_token: done.token.token,
            token_type: "Bearer",
            expires_in: done.token.expires_in,
        }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChangeIn {
    pub current_password: String,
    /// At least 12 characters, different from the current one.
    pub new_password: String,
}

/// Change password
///
/// Replaces the caller's password. A wrong `current_password` is a 422 pointing at it (not a
/// 401: the access token is fine) and counts as a failed login attempt, so repeated guesses
/// are throttled with 429. Tokens issued before the change stay valid until they expire.
#[utoipa::path(
    tag = "auth",
    security(("bearer" = [])),
    request_body = PasswordChangeIn,
    responses(
        (status = 204, description = "Password changed."),
        (status = 400, description = "The body is not JSON.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid access token.", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is too large.", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not `application/json`.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`current_password` is wrong, or `new_password` is too short or unchanged.", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed attempts.", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/me/password")]
async fn change_password(
    state: web::Data<AppState>,
    caller: Caller,
    body: Json<PasswordChangeIn>,
) -> Result<HttpResponse> {
    let change = PasswordChange {
        current: &body.0.current_password,
        new: &body.0.new_password,
    };
    let user = caller.principal.user_id;
    auth::change_password(&state.db, &caller.audit, user, change).await?;
    Ok(HttpResponse::NoContent().finish())
}
