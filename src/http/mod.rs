//! The HTTP surface: every route in one table ([`routes`]), the app factory shared by the
//! server and the OpenAPI generator, and the fallbacks that keep every error problem+json.

use std::{collections::HashMap, sync::Arc};

use actix_router::ResourceDef;
use actix_web::{
    App, HttpRequest, HttpResponse,
    body::{BodySize, EitherBody, MessageBody},
    dev::{ServiceFactory, ServiceRequest, ServiceResponse},
    http::{Method, header},
    middleware::{Compress, Next, from_fn},
    web,
};
use tracing_actix_web::TracingLogger;
use utoipa::openapi::OpenApi;
use utoipa_actix_web::{AppExt, service_config::ServiceConfig};
use utoipa_swagger_ui::{Config as SwaggerConfig, SwaggerUi};

use crate::{
    error::{Error, ErrorKind},
    gateway,
    state::AppState,
    telemetry,
};

pub mod api_key;
pub mod auth;
mod dashboard;
pub mod extractors;
pub mod hot_path;
pub mod idempotency;
pub mod openapi;
pub mod pagination;
pub mod problem;
pub mod rate_limit;
mod routes;
pub mod session;

use extractors::BodyLimit;

/// Every route of the API. The OpenAPI document is generated from this same table.
pub fn routes(cfg: &mut ServiceConfig) {
    // actix tries routes in this order, matching each one's pattern: the hot path's first.
    cfg.configure(routes::ping::configure)
        .configure(routes::verify::configure)
        .configure(routes::ops::configure)
        .configure(routes::auth::configure)
        .configure(routes::admin::configure)
        .configure(routes::account::configure)
        .configure(routes::members::configure)
        .configure(routes::audit::configure)
        .configure(routes::analytics::configure)
        .configure(routes::rate_limits::configure)
        .configure(routes::live::configure)
        .configure(routes::keys::configure)
        .configure(routes::events::configure)
        .configure(routes::exports::configure);
}

/// The application: routes, the docs page, the gateway's routes (outside the OpenAPI
/// document), middleware and the problem+json fallbacks.
pub fn app(
    state: AppState,
    known_routes: web::Data<KnownRoutes>,
    document: web::Data<ApiDocument>,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let body_limit = BodyLimit(state.settings.server.body_limit_bytes);
    let app = App::new()
        .into_utoipa_app()
        .openapi(openapi::base())
        .configure(routes)
        .into_app();
    let proxy = state.gateway.clone();
    app.app_data(web::Data::new(state))
        .app_data(body_limit)
        .app_data(known_routes)
        .app_data(document)
        .route(ApiDocument::PATH, web::get().to(ApiDocument::serve))
        .service(SwaggerUi::new("/docs/{_:.*}").config(SwaggerConfig::from(ApiDocument::PATH)))
        .service(web::redirect("/docs", "/docs/"))
        .configure(dashboard::configure)
        .configure(|cfg| gateway::configure(cfg, &proxy))
        .default_service(web::to(not_found_or_method_not_allowed))
        .wrap(from_fn(inside_compress))
        .wrap(Compress::default())
        .wrap(from_fn(around_compress))
        .wrap(from_fn(telemetry::record_request_metrics))
        .wrap(TracingLogger::<telemetry::RequestSpan>::new())
}

/// The OpenAPI document as served at [`Self::PATH`] (and read by the docs page), serialized
/// once at start-up and shared by the HTTP workers. Swagger UI's own route for it kept the
/// document in every worker (~2 MB each, for ~0.1 MB of JSON) and serialized it per request.
pub struct ApiDocument(web::Bytes);

impl ApiDocument {
    pub const PATH: &str = "/openapi.json";

    pub fn of(api: &OpenApi) -> serde_json::Result<Self> {
        serde_json::to_vec(api).map(|json| Self(json.into()))
    }

    async fn serve(document: web::Data<ApiDocument>) -> HttpResponse {
        HttpResponse::Ok()
            .content_type(header::ContentType::json())
            .body(document.0.clone())
    }
}

/// Marks a response relayed from an upstream by the gateway: [`problem_fallback`] leaves its
/// body as the upstream sent it, whatever its status.
pub struct Relayed;

/// The path templates of the API and their methods, taken from the OpenAPI document, so an
/// unmatched request can be told apart as unknown (404) or using the wrong method (405).
pub struct KnownRoutes {
    routes: Vec<(ResourceDef, Vec<Method>)>,
    /// The templates without parameters, by path: their requests' route template is the path
    /// itself, found without walking the route table.
    fixed: HashMap<Box<str>, Arc<str>>,
}

impl KnownRoutes {
    pub fn from_openapi(api: &OpenApi) -> Self {
        let routes = api
            .paths
            .paths
            .iter()
            .map(|(path, item)| {
                let methods = openapi::methods(item);
                (ResourceDef::new(path.as_str()), methods)
            })
            .collect();
        let fixed = api
            .paths
            .paths
            .keys()
            .filter(|path| !path.contains('{'))
            .map(|path| (path.as_str().into(), Arc::from(path.as_str())))
            .collect();
        Self { routes, fixed }
    }

    /// The route template of `path` when it is one of the documented routes without
    /// parameters (`/v1/ping`), else `None` (the caller asks the router).
    pub fn fixed_template(&self, path: &str) -> Option<Arc<str>> {
        self.fixed.get(path).cloned()
    }

    fn allowed(&self, path: &str) -> Option<&[Method]> {
        self.routes
            .iter()
            .find(|(def, _)| def.is_match(path))
            .map(|(_, methods)| methods.as_slice())
    }
}

async fn not_found_or_method_not_allowed(
    req: HttpRequest,
    known: web::Data<KnownRoutes>,
) -> Result<HttpResponse, Error> {
    let path = req.path();
    match known.allowed(path) {
        Some(methods) if !methods.contains(req.method()) => {
            let allow: Vec<&str> = methods.iter().map(Method::as_str).collect();
            let err = Error::new(
                ErrorKind::MethodNotAllowed,
                format!(
                    "{} is not allowed on {path}; allowed: {}.",
                    req.method(),
                    allow.join(", ")
                ),
            );
            let mut response = actix_web::ResponseError::error_response(&err);
            let value = header::HeaderValue::from_str(&allow.join(", "))
                .expect("method names are valid header values");
            response.headers_mut().insert(header::ALLOW, value);
            Ok(response)
        }
        _ => Err(Error::not_found(format!(
            "No resource at {} {path}.",
            req.method()
        ))),
    }
}

/// Bodies smaller than this are sent as they are: compressing a few hundred bytes saves
/// nothing, turns a `Content-Length` answer into a chunked one and costs an encoder per
/// response (brotli's is large).
const COMPRESS_MIN_BYTES: u64 = 1024;

/// Inside `Compress`, one middleware (each layer costs every request a boxed future): the
/// problem+json fallback, then a response whose body is known to be smaller than
/// [`COMPRESS_MIN_BYTES`] is marked `Content-Encoding: identity`, which `Compress` leaves
/// alone; [`around_compress`] takes the marker off again outside it.
async fn inside_compress(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let mut response = problem_fallback(next.call(req).await?);
    let small = matches!(
        response.response().body().size(),
        BodySize::Sized(n) if n < COMPRESS_MIN_BYTES
    );
    if small && !response.headers().contains_key(header::CONTENT_ENCODING) {
        response
            .headers_mut()
            .insert(header::CONTENT_ENCODING, IDENTITY.clone());
    }
    Ok(response)
}

static IDENTITY: header::HeaderValue = header::HeaderValue::from_static("identity");

/// Outside `Compress`: the gateway keeps the caller's `Accept-Encoding` for the upstream
/// ([`gateway::keep_accept_encoding`]), and the `identity` marker comes off the response
/// (RFC 9110 reserves `identity` for `Accept-Encoding`; the response is simply not encoded).
async fn around_compress(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    gateway::keep_accept_encoding(&mut req);
    let mut response = next.call(req).await?;
    if response.headers().get(header::CONTENT_ENCODING) == Some(&IDENTITY) {
        response.headers_mut().remove(header::CONTENT_ENCODING);
    }
    Ok(response)
}

/// Last line of defence: any error response that is not JSON already (raised by
/// actix itself or a library) is rewritten into one, keeping its status. Upstream answers
/// relayed by the gateway are left alone.
fn problem_fallback<B>(response: ServiceResponse<B>) -> ServiceResponse<EitherBody<B>> {
    let status = response.status();
    // Our own error bodies are JSON already (problem+json, or health+json from /readyz), or
    // a dashboard page (the login form answering 401).
    let ours = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json") || v.starts_with("text/html"));
    if status.as_u16() < 400 || ours || response.response().extensions().contains::<Relayed>() {
        return response.map_into_left_body();
    }
    let detail = response
        .response()
        .error()
        .map(ToString::to_string)
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("Error").to_owned());
    let (req, _) = response.into_parts();
    let replaced = problem::for_status(status, detail);
    ServiceResponse::new(req, replaced).map_into_right_body()
}
