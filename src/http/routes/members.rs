//! The members of the caller's active tenant: list, add, change role, remove.

use actix_web::{HttpResponse, delete, get, patch, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::{
    error::Result,
    http::{
        auth::Caller,
        extractors::{Json, Path, Query},
        pagination::{ListOut, ListParams},
        problem::Problem,
    },
    ids::UserId,
    state::AppState,
    tenancy::Role,
    tenants::members::{self, Member, NewMember},
};

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(list_members)
        .service(add_member)
        .service(update_member)
        .service(remove_member);
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MemberOut {
    pub user_id: UserId,
    pub email: String,
    pub name: Option<String>,
    pub role: Role,
    /// When the user joined this tenant.
    pub joined_at: DateTime<Utc>,
}

impl From<Member> for MemberOut {
    fn from(m: Member) -> Self {
        Self {
            user_id: m.user_id,
            email: m.email,
            name: m.name,
            role: m.role,
            joined_at: m.joined_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberIn {
    /// The account's email address.
    pub email: String,
    pub role: Role,
    /// Creates the account with this password (at least 12 characters) when none exists for
    /// the email; must be omitted when one does.
    #[serde(default)]
    pub password: Option<String>,
    /// Display name of an account created here; ignored for an existing account.
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemberPatch {
    pub role: Role,
}

#[derive(Debug, Deserialize)]
struct MemberPath {
    user_id: UserId,
}

/// List members
///
/// The members of the token's tenant with their roles, newest account first, with cursor
/// pagination (cursors are user ids). Any role may read.
#[utoipa::path(
    tag = "members",
    security(("bearer" = [])),
    params(ListParams<UserId>),
    responses(
        (status = 200, description = "A page of members.", body = ListOut<MemberOut>),
        (status = 400, description = "A query parameter is invalid.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid access token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token has no active tenant.", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/v1/members")]
async fn list_members(
    state: web::Data<AppState>,
    caller: Caller,
    query: Query<ListParams<UserId>>,
) -> Result<HttpResponse> {
    let scope = caller.principal.tenant_scope()?;
    let (rows, has_more) = members::list(&state.db, scope, query.0.page()?).await?;
    let data = rows.into_iter().map(MemberOut::from).collect();
    Ok(HttpResponse::Ok().json(ListOut { data, has_more }))
}

/// Add a member
///
/// Adds an existing account to the tenant by email, or creates the account when `password`
/// is given (there are no email invitations yet: share the password with the person out of
/// band). Owners and admins only; only an owner may grant `owner`.
#[utoipa::path(
    tag = "members",
    security(("bearer" = [])),
    request_body = MemberIn,
    responses(
        (status = 201, description = "The new member.", body = MemberOut),
        (status = 400, description = "The body is not JSON.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid access token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller's role may not add members, or grant this role.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already a member, or `password` given for an existing account.", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is too large.", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not `application/json`.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is invalid, unknown, or `password` is missing for a new account.", body = Problem, content_type = "application/problem+json"),
    )
)]
#[post("/v1/members")]
async fn add_member(
    state: web::Data<AppState>,
    caller: Caller,
    body: Json<MemberIn>,
) -> Result<HttpResponse> {
    let scope = caller.principal.tenant_scope()?;
    let Json(body) = body;
    let new = NewMember {
        email: &body.email,
        role: body.role,
        password: body.password.as_deref(),
        name: body.name,
    };
    let member = members::add(&state.db, scope, &caller.audit, new).await?;
    Ok(HttpResponse::Created().json(MemberOut::from(member)))
}

/// Change a member's role
///
/// Owners and admins only. Only an owner may grant `owner` or change an owner's role; the
/// tenant's last owner cannot be demoted (409). Setting the current role changes nothing.
#[utoipa::path(
    tag = "members",
    security(("bearer" = [])),
    params(("user_id" = UserId, Path, description = "The member's user id (`usr_…`).")),
    request_body = MemberPatch,
    responses(
        (status = 200, description = "The member.", body = MemberOut),
        (status = 400, description = "The id or the body is malformed.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid access token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller's role may not make this change.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such member in this tenant.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The member is the tenant's last owner.", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is too large.", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "The body is not `application/json`.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A field is missing, unknown or invalid.", body = Problem, content_type = "application/problem+json"),
    )
)]
#[patch("/v1/members/{user_id}")]
async fn update_member(
    state: web::Data<AppState>,
    caller: Caller,
    path: Path<MemberPath>,
    body: Json<MemberPatch>,
) -> Result<HttpResponse> {
    let scope = caller.principal.tenant_scope()?;
    let (user, role) = (path.0.user_id, body.0.role);
    let member = members::change_role(&state.db, scope, &caller.audit, user, role).await?;
    Ok(HttpResponse::Ok().json(MemberOut::from(member)))
}

/// Remove a member
///
/// Removes the user from the tenant (the account stays; their tokens for this tenant stop
/// working at once). Owners and admins only; only an owner may remove an owner, and the last
/// owner cannot be removed (409).
#[utoipa::path(
    tag = "members",
    security(("bearer" = [])),
    params(("user_id" = UserId, Path, description = "The member's user id (`usr_…`).")),
    responses(
        (status = 204, description = "Removed."),
        (status = 400, description = "The id is malformed.", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid access token.", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The caller's role may not remove this member.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such member in this tenant.", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The member is the tenant's last owner.", body = Problem, content_type = "application/problem+json"),
    )
)]
#[delete("/v1/members/{user_id}")]
async fn remove_member(
    state: web::Data<AppState>,
    caller: Caller,
    path: Path<MemberPath>,
) -> Result<HttpResponse> {
    let scope = caller.principal.tenant_scope()?;
    members::remove(&state.db, scope, &caller.audit, path.0.user_id).await?;
    Ok(HttpResponse::NoContent().finish())
}
