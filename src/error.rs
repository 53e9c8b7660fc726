//! The one error type of the crate. Domain code says *what* went wrong ([`ErrorKind`] and a
//! `detail` meant for the caller) and keeps the cause for the log; only `http::problem` turns
//! it into a status code and an RFC 9457 body.

use std::fmt;

/// What kind of failure this is; decides the HTTP status and the problem `type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Malformed request: unreadable JSON, a query or path that does not parse.
    BadRequest,
    /// Well-formed but invalid input; `errors` says which fields.
    Validation,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Conflict,
    PayloadTooLarge,
    UnsupportedMediaType,
    /// Throttled; the caller may retry after this many seconds.
    TooManyRequests {
        retry_after_secs: u64,
    },
    /// A dependency (database, Redis, upstream) is unavailable.
    Unavailable,
    /// The gateway's upstream failed: refused the connection, did not resolve, broke off or
    /// sent an invalid answer.
    BadGateway,
    /// The gateway's upstream did not answer in time.
    GatewayTimeout,
    /// A bug or an unexpected failure: the detail is generic, the cause goes to the log.
    Internal,
}

/// One invalid field: `pointer` is a JSON Pointer (RFC 6901) into the request document
/// (the body, or the query string / path parameters seen as an object).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct FieldError {
    pub detail: String,
    pub pointer: String,
}

#[derive(Debug)]
pub struct Error {
    pub kind: ErrorKind,
    pub detail: String,
    pub errors: Vec<FieldError>,
    pub source: Option<anyhow::Error>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: ErrorKind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
            errors: Vec::new(),
            source: None,
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequest, detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, detail)
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, detail)
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unauthorized, detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(ErrorKind::Forbidden, detail)
    }

    /// Invalid input on a single field.
    pub fn invalid(pointer: impl Into<String>, detail: impl Into<String>) -> Self {
        let detail = detail.into();
        Self::new(ErrorKind::Validation, detail.clone()).with_errors(vec![FieldError {
            detail,
            pointer: pointer.into(),
        }])
    }

    /// An unexpected failure. The caller sees a generic message; `source` is logged.
    pub fn internal(source: impl Into<anyhow::Error>) -> Self {
        Self::new(ErrorKind::Internal, "An unexpected error occurred.").with_source(source)
    }

    pub fn unavailable(detail: impl Into<String>, source: impl Into<anyhow::Error>) -> Self {
        Self::new(ErrorKind::Unavailable, detail).with_source(source)
    }

    pub fn with_errors(mut self, errors: Vec<FieldError>) -> Self {
        self.errors = errors;
        self
    }

    pub fn with_source(mut self, source: impl Into<anyhow::Error>) -> Self {
        self.source = Some(source.into());
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.detail)?;
        if let Some(source) = &self.source {
            write!(f, " (caused by: {source:#})")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

impl From<sea_orm::DbErr> for Error {
    fn from(err: sea_orm::DbErr) -> Self {
        crate::db::classify(err)
    }
}
