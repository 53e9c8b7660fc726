//! The dashboard's pages: one askama template each, framed by the shared [`Chrome`] (nav,
//! user, tenant switcher, CSRF token). Without a valid session a page redirects to the login
//! form, remembering where it was going.

use actix_web::{HttpRequest, HttpResponse, http::StatusCode, web};
use askama::Template;

use super::{assets, login::html};
use crate::{
    auth,
    error::{Error, Result},
    http::session,
    ids::KeyId,
    state::AppState,
    tenancy::Principal,
    tenants,
};

/// A logged-in browser: its session token and who it authenticates.
pub struct Session {
    pub token: String,
    pub principal: Principal,
}

impl Session {
    /// The request's session, when its cookie holds a valid one.
    pub async fn of(req: &HttpRequest, state: &AppState) -> Option<Self> {
        let token = session::token(req)?;
        let principal = auth::authenticate(&state.db, &state.settings.auth, &token)
            .await
            .ok()?;
        Some(Self { token, principal })
    }
}

/// What every page but the login shows around its content.
pub struct Chrome {
    pub title: &'static str,
    /// The active nav item.
    pub nav: &'static str,
    pub email: String,
    pub is_admin: bool,
    pub tenant: Option<TenantChoice>,
    pub tenants: Vec<TenantChoice>,
    pub csrf: String,
    pub asset_version: &'static str,
}

#[derive(Clone)]
pub struct TenantChoice {
    pub id: String,
    pub name: String,
    pub role: String,
}

/// A page: its template struct (with the chrome only) and its handler.
macro_rules! page {
    ($handler:ident, $name:ident, $path:literal, $title:literal, $nav:literal) => {
        #[derive(Template)]
        #[template(path = $path)]
        pub struct $name {
            pub chrome: Chrome,
        }

        async fn $handler(req: HttpRequest, state: State) -> Result<HttpResponse> {
            render(&req, &state, $title, $nav, |chrome| $name { chrome }).await
        }
    };
}

type State = web::Data<AppState>;

page!(
    overview,
    OverviewPage,
    "overview.html",
    "Overview",
    "overview"
);
page!(
    endpoints,
    EndpointsPage,
    "endpoints.html",
    "Endpoints",
    "endpoints"
);
page!(keys, KeysPage, "keys.html", "API keys", "keys");
page!(
    consumers,
    ConsumersPage,
    "consumers.html",
    "Top consumers",
    "consumers"
);
page!(errors, ErrorsPage, "errors.html", "Errors", "errors");
page!(exports, ExportsPage, "exports.html", "Exports", "exports");
page!(audit, AuditPage, "audit.html", "Audit log", "audit");

/// One key's page.
#[derive(Template)]
#[template(path = "key.html")]
pub struct KeyPage {
    pub chrome: Chrome,
    pub key_id: String,
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(overview))
        .route("/endpoints", web::get().to(endpoints))
        .route("/keys", web::get().to(keys))
        .route("/keys/{key_id}", web::get().to(key))
        .route("/consumers", web::get().to(consumers))
        .route("/errors", web::get().to(errors))
        .route("/exports", web::get().to(exports))
        .route("/audit", web::get().to(audit));
}

async fn key(req: HttpRequest, state: State, path: web::Path<String>) -> Result<HttpResponse> {
    let key_id: KeyId = path
        .parse()
        .map_err(|_| Error::not_found(format!("No API key {path}.")))?;
    let key_id = key_id.to_string();
    render(&req, &state, "API key", "keys", |chrome| KeyPage {
        chrome,
        key_id,
    })
    .await
}

/// The page built by `page` around the session's chrome, or a redirect to the login form.
async fn render<T: Template>(
    req: &HttpRequest,
    state: &AppState,
    title: &'static str,
    nav: &'static str,
    page: impl FnOnce(Chrome) -> T,
) -> Result<HttpResponse> {
    let Some(session) = Session::of(req, state).await else {
        return Ok(to_login(req));
    };
    let chrome = chrome(state, &session, title, nav).await?;
    html(StatusCode::OK, &page(chrome))
}

async fn chrome(
    state: &AppState,
    session: &Session,
    title: &'static str,
    nav: &'static str,
) -> Result<Chrome> {
    let principal = &session.principal;
    let memberships = tenants::memberships_of(&state.db, principal.user_id).await?;
    let tenants: Vec<TenantChoice> = memberships
        .into_iter()
        .map(|m| TenantChoice {
            id: m.tenant_id.to_string(),
            name: m.tenant_name,
            role: m.role.to_string(),
        })
        .collect();
    let tenant = principal.membership.and_then(|(id, _)| {
        let id = id.to_string();
        tenants.iter().find(|t| t.id == id).cloned()
    });
    Ok(Chrome {
        title,
        nav,
        email: principal.email.clone(),
        is_admin: principal.is_platform_admin,
        tenant,
        tenants,
        csrf: session::csrf(&state.settings.auth, &session.token),
        asset_version: assets::VERSION,
    })
}

/// 303 to the login form, coming back here afterwards.
pub fn to_login(req: &HttpRequest) -> HttpResponse {
    let next = match req.query_string() {
        "" => req.path().to_owned(),
        query => format!("{}?{query}", req.path()),
    };
    let location = format!(
        "/dashboard/login?next={}",
        form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
    );
    HttpResponse::SeeOther()
        .insert_header((actix_web::http::header::LOCATION, location))
        .finish()
}
