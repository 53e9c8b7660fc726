//! Logging in and out of the dashboard, and switching tenant: HTML forms posting back here.
//! A login sets the session cookie; every POST must come from our own origin, and logout and
//! switch-tenant also carry the session's CSRF token.

use actix_web::{HttpRequest, HttpResponse, ResponseError, http::header, web};
use askama::Template;
use serde::Deserialize;

use super::{assets, pages::Session};
use crate::{
    auth::{self, Credentials, TokenUse},
    error::{Error, Result},
    http::{auth::client_ip, session},
    ids::TenantId,
    state::AppState,
};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/login", web::get().to(form))
        .route("/login", web::post().to(submit))
        .route("/logout", web::post().to(logout))
        .route("/switch-tenant", web::post().to(switch_tenant));
}

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    pub error: Option<String>,
    pub email: String,
    pub next: String,
    /// The demo logins, shown when the server runs with demo data.
    pub demo_hint: Option<String>,
    pub asset_version: &'static str,
}

#[derive(Deserialize)]
struct NextParam {
    next: Option<String>,
}

async fn form(state: web::Data<AppState>, query: web::Query<NextParam>) -> Result<HttpResponse> {
    let page = login_page(&state, None, String::new(), query.into_inner().next);
    html(actix_web::http::StatusCode::OK, &page)
}

#[derive(Deserialize)]
struct LoginForm {
    email: String,
    password: String,
    next: Option<String>,
}

async fn submit(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<LoginForm>,
) -> Result<HttpResponse> {
    let form = form.into_inner();
    if !session::same_origin(&req) {
        return Err(Error::forbidden(
            "The login form was posted from another origin.",
        ));
    }
    let ip = client_ip(&req);
    let creds = Credentials {
        email: form.email.trim(),
        password: &form.password,
        tenant_id: None,
        ip: ip.as_deref(),
        token_use: TokenUse::Session,
    };
    match auth::login(&state.db, &state.settings.auth, creds).await {
        Ok(token) => Ok(signed_in(&req, token, &safe_next(form.next.as_deref()))),
        Err(err) if err.status_code().is_client_error() => {
            let status = err.status_code();
            let page = login_page(&state, Some(err.detail), form.email, form.next);
            html(status, &page)
        }
        Err(err) => Err(err),
    }
}

#[derive(Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn logout(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<CsrfForm>,
) -> Result<HttpResponse> {
    if let Some(token) = session::token(&req) {
        check_form(&req, &state, &token, &form.csrf)?;
    }
    Ok(HttpResponse::SeeOther()
        .cookie(session::end())
        .insert_header((header::LOCATION, "/dashboard/login"))
        .finish())
}

#[derive(Deserialize)]
struct SwitchForm {
    csrf: String,
    tenant_id: TenantId,
}

async fn switch_tenant(
    state: web::Data<AppState>,
    req: HttpRequest,
    form: web::Form<SwitchForm>,
) -> Result<HttpResponse> {
    let Some(session) = Session::of(&req, &state).await else {
        return Ok(super::pages::to_login(&req));
    };
    check_form(&req, &state, &session.token, &form.csrf)?;
    let settings = &state.settings.auth;
    let token = auth::switch_tenant(
        &state.db,
        settings,
        &session.principal,
        form.tenant_id,
        TokenUse::Session,
    )
    .await?;
    Ok(signed_in(&req, token, "/dashboard/"))
}

fn check_form(req: &HttpRequest, state: &AppState, token: &str, csrf: &str) -> Result<()> {
    if session::same_origin(req) && session::csrf_matches(&state.settings.auth, token, csrf) {
        Ok(())
    } else {
        Err(Error::forbidden(
            "The form's CSRF token does not match this session.",
        ))
    }
}

/// 303 to `next` with the new session cookie.
fn signed_in(req: &HttpRequest, token: auth::AccessToken, next: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .cookie(session::start(req, token.token, token.expires_in))
        .insert_header((header::LOCATION, next))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

/// Only a dashboard path is followed after login (never another site).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(next) if next.starts_with("/dashboard/") && !next.starts_with("//") => next.to_owned(),
        _ => "/dashboard/".to_owned(),
    }
}

fn login_page(
    state: &AppState,
    error: Option<String>,
    email: String,
    next: Option<String>,
) -> LoginPage {
    LoginPage {
        error,
        email,
        next: safe_next(next.as_deref()),
        demo_hint: state.demo_login.get().cloned(),
        asset_version: assets::VERSION,
    }
}

pub(super) fn html(
    status: actix_web::http::StatusCode,
    page: &impl Template,
) -> Result<HttpResponse> {
    let body = page.render().map_err(Error::internal)?;
    Ok(HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body))
}
