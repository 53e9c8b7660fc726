//! The OpenAPI 3.1 document: its fixed parts here, the operations from the `#[utoipa::path]`
//! annotations on the handlers (collected by `http::routes`). `tollgate openapi` writes it to
//! `openapi/openapi.json`; a test fails when the committed file drifts.

use actix_web::{App, http::Method};
use utoipa::{
    Modify, OpenApi as _,
    openapi::{
        OpenApi, PathItem,
        security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme},
    },
};
use utoipa_actix_web::AppExt;

use crate::http::problem::Problem;

/// Where the committed document lives, relative to the repository root.
pub const SPEC_PATH: &str = "openapi/openapi.json";

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Tollgate",
        description = "API usage metering, quota and cost control: API keys, rate limits, \
                       usage analytics, alerts, quota requests, provider costs and budgets.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    components(schemas(Problem)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "auth", description = "Log in and identify the caller."),
        (name = "keys", description = "API keys: create, rotate, revoke, limits, import."),
        (name = "members", description = "Who belongs to the active tenant, and with which role."),
        (name = "audit", description = "The audit log of administrative actions."),
        (name = "analytics", description = "Usage over time, per endpoint and per key, from the rollups."),
        (name = "exports", description = "Usage exports (CSV or JSON), streamed, at bucket or raw-event level."),
        (name = "verify", description = "Calls authenticated by an API key (`X-API-Key`)."),
        (name = "events", description = "Usage events reported by services that meter themselves."),
        (name = "admin", description = "Platform administration across tenants."),
        (name = "ops", description = "Liveness, readiness and metrics for operators."),
    )
)]
struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
    }
}

/// The document's fixed parts (info, tags, security schemes, shared schemas).
pub fn base() -> OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc
}

/// The whole document, as served at `/openapi.json`.
pub fn spec() -> OpenApi {
    let (_, api) = App::new()
        .into_utoipa_app()
        .openapi(base())
        .configure(super::routes)
        .split_for_parts();
    api
}

/// The document as committed: pretty JSON with a trailing newline.
pub fn spec_json() -> String {
    let mut json = spec()
        .to_pretty_json()
        .expect("the OpenAPI document serializes");
    json.push('\n');
    json
}

/// The HTTP methods a path item defines operations for.
pub fn methods(item: &PathItem) -> Vec<Method> {
    [
        (Method::GET, &item.get),
        (Method::PUT, &item.put),
        (Method::POST, &item.post),
        (Method::DELETE, &item.delete),
        (Method::OPTIONS, &item.options),
        (Method::HEAD, &item.head),
        (Method::PATCH, &item.patch),
        (Method::TRACE, &item.trace),
    ]
    .into_iter()
    .filter_map(|(method, op)| op.as_ref().map(|_| method))
    .collect()
}
