//! The only place that knows HTTP status codes for errors: [`Error`] -> RFC 9457
//! `application/problem+json`. Causes are logged here, never sent.

use actix_web::{HttpResponse, ResponseError, http::StatusCode};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{Error, ErrorKind, FieldError};

pub const PROBLEM_JSON: &str = "application/problem+json";
const TYPE_BASE: &str = "https://tollgate.dev/problems/";

/// An RFC 9457 problem document. `code` is a stable snake_case identifier to branch on.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// URI identifying the problem type.
    #[serde(rename = "type")]
    pub type_: String,
    /// Short, human-readable summary of the problem type.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// Explanation specific to this occurrence.
    pub detail: String,
    /// Stable machine-readable code, e.g. `not_found`.
    pub code: String,
    /// Invalid fields, as JSON Pointers into the request document.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

struct Kind {
    status: StatusCode,
    code: &'static str,
    title: &'static str,
}

fn describe(kind: ErrorKind) -> Kind {
    let (status, code, title) = match kind {
        ErrorKind::BadRequest => (StatusCode::BAD_REQUEST, "bad_request", "Bad request"),
        ErrorKind::Validation => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "Validation failed",
        ),
        ErrorKind::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized"),
        ErrorKind::Forbidden => (StatusCode::FORBIDDEN, "forbidden", "Forbidden"),
        ErrorKind::NotFound => (StatusCode::NOT_FOUND, "not_found", "Not found"),
        ErrorKind::MethodNotAllowed => (
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "Method not allowed",
        ),
        ErrorKind::Conflict => (StatusCode::CONFLICT, "conflict", "Conflict"),
        ErrorKind::PayloadTooLarge => (
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "Payload too large",
        ),
        ErrorKind::UnsupportedMediaType => (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Unsupported media type",
        ),
        ErrorKind::TooManyRequests { .. } => (
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            "Too many requests",
        ),
        ErrorKind::Unavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            "Service unavailable",
        ),
        ErrorKind::BadGateway => (StatusCode::BAD_GATEWAY, "bad_gateway", "Bad gateway"),
        ErrorKind::GatewayTimeout => (
            StatusCode::GATEWAY_TIMEOUT,
            "gateway_timeout",
            "Gateway timeout",
        ),
        ErrorKind::Internal => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "Internal server error",
        ),
    };
    Kind {
        status,
        code,
        title,
    }
}

impl Problem {
    pub fn from_error(err: &Error) -> Self {
        let kind = describe(err.kind);
        Self {
            type_: format!("{TYPE_BASE}{}", kind.code),
            title: kind.title.to_owned(),
            status: kind.status.as_u16(),
            detail: err.detail.clone(),
            code: kind.code.to_owned(),
            errors: err.errors.clone(),
        }
    }
}

/// A problem response for a status raised outside our code (actix, a library), keeping the
/// status and describing it as well as we can.
pub fn for_status(status: StatusCode, detail: String) -> HttpResponse {
    let reason = status.canonical_reason().unwrap_or("Error");
    let code = reason.to_ascii_lowercase().replace([' ', '-'], "_");
    let problem = Problem {
        type_: format!("{TYPE_BASE}{code}"),
        title: reason.to_owned(),
        status: status.as_u16(),
        detail,
        code,
        errors: Vec::new(),
    };
    HttpResponse::build(status)
        .content_type(PROBLEM_JSON)
        .json(problem)
}

impl ResponseError for Error {
    fn status_code(&self) -> StatusCode {
        describe(self.kind).status
    }

    fn error_response(&self) -> HttpResponse {
        log(self);
        let mut response = HttpResponse::build(self.status_code());
        match self.kind {
            ErrorKind::Unauthorized => {
                response.insert_header(("WWW-Authenticate", "Bearer"));
            }
            ErrorKind::TooManyRequests { retry_after_secs } => {
                response.insert_header(("Retry-After", retry_after_secs.to_string()));
            }
            _ => {}
        }
        response
            .content_type(PROBLEM_JSON)
            .json(Problem::from_error(self))
    }
}

fn log(err: &Error) {
    match (&err.source, err.kind) {
        (Some(source), ErrorKind::Internal | ErrorKind::Unavailable) => {
            tracing::error!(error.kind = ?err.kind, error.cause = %format!("{source:#}"), "{}", err.detail)
        }
        (Some(source), ErrorKind::BadGateway | ErrorKind::GatewayTimeout) => {
            tracing::warn!(error.kind = ?err.kind, error.cause = %format!("{source:#}"), "{}", err.detail)
        }
        (Some(source), _) => {
            tracing::debug!(error.kind = ?err.kind, error.cause = %format!("{source:#}"), "{}", err.detail)
        }
        (None, _) => tracing::debug!(error.kind = ?err.kind, "{}", err.detail),
    }
}
