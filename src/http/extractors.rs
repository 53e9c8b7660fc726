//! Request extractors whose failures are problem+json with JSON Pointers to the bad field:
//! [`Json`], [`Query`] and [`Path`]. Handlers use these, never actix's own.

use std::{future::Future, pin::Pin};

use actix_web::{FromRequest, HttpRequest, dev::Payload, http::header, web::BytesMut};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde_path_to_error::{Path as FieldPath, Segment};

use crate::error::{Error, ErrorKind, FieldError};

/// Largest accepted request body, from `server.body_limit_bytes`; stored as app data.
#[derive(Clone, Copy, Debug)]
pub struct BodyLimit(pub usize);

/// A JSON request body. Not JSON -> 400; JSON of the wrong shape -> 422; too large -> 413;
/// another content type -> 415.
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Error>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = req.app_data::<BodyLimit>().map_or(1 << 20, |l| l.0);
        let content_type = req.headers().get(header::CONTENT_TYPE).cloned();
        let declared_len = declared_length(req);
        let mut payload = payload.take();
        Box::pin(async move {
            check_json_content_type(content_type.as_ref())?;
            if declared_len.is_some_and(|len| len > limit) {
                return Err(too_large(limit));
            }
            let mut body = BytesMut::new();
            while let Some(chunk) = payload.next().await {
                let chunk = chunk.map_err(|e| {
                    Error::bad_request("Could not read the request body.").with_source(e)
                })?;
                if body.len() + chunk.len() > limit {
                    return Err(too_large(limit));
                }
                body.extend_from_slice(&chunk);
            }
            parse_json(&body).map(Json)
        })
    }
}

fn declared_length(req: &HttpRequest) -> Option<usize> {
    req.headers()
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

fn too_large(limit: usize) -> Error {
    Error::new(
        ErrorKind::PayloadTooLarge,
        format!("The request body exceeds the limit of {limit} bytes."),
    )
}

fn check_json_content_type(value: Option<&header::HeaderValue>) -> Result<(), Error> {
    let mime = value.and_then(|v| v.to_str().ok()).unwrap_or_default();
    let essence = mime
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if essence == "application/json" || essence.ends_with("+json") {
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::UnsupportedMediaType,
        "The request body must be JSON (Content-Type: application/json).",
    ))
}

/// Parses a JSON document, telling syntax errors (400) from shape errors (422, with pointer).
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, Error> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|err| {
        let pointer = pointer(err.path());
        let inner = err.into_inner();
        if inner.is_data() {
            let detail = strip_position(&inner.to_string());
            Error::new(
                ErrorKind::Validation,
                format!("The request body is invalid: {detail}."),
            )
            .with_errors(vec![FieldError { detail, pointer }])
        } else {
            let detail = format!("The request body is not valid JSON: {inner}.");
            Error::bad_request(detail.clone()).with_errors(vec![FieldError { detail, pointer }])
        }
    })
}

/// A query string, deserialized; a parameter that does not parse -> 400 naming it.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned> FromRequest for Query<T> {
    type Error = Error;
    type Future = std::future::Ready<Result<Self, Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let pairs = form_urlencoded::parse(req.query_string().as_bytes());
        let de = serde_urlencoded::Deserializer::new(pairs);
        let result = serde_path_to_error::deserialize(de)
            .map(Query)
            .map_err(|err| parameter_error("query parameter", err));
        std::future::ready(result)
    }
}

/// Path parameters, deserialized; a segment that does not parse -> 400 naming it.
#[derive(Debug)]
pub struct Path<T>(pub T);

impl<T: DeserializeOwned> FromRequest for Path<T> {
    type Error = Error;
    type Future = std::future::Ready<Result<Self, Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let de = actix_router::PathDeserializer::new(req.match_info());
        let result = serde_path_to_error::deserialize(de)
            .map(Path)
            .map_err(|err| parameter_error("path parameter", err));
        std::future::ready(result)
    }
}

fn parameter_error<E: std::fmt::Display>(what: &str, err: serde_path_to_error::Error<E>) -> Error {
    let pointer = pointer(err.path());
    let name = pointer.trim_start_matches('/');
    let inner = err.into_inner().to_string();
    let detail = if name.is_empty() {
        format!("Invalid {what}: {inner}.")
    } else {
        format!("Invalid {what} `{name}`: {inner}.")
    };
    Error::bad_request(detail.clone()).with_errors(vec![FieldError { detail, pointer }])
}

/// Renders a deserializer path as an RFC 6901 JSON Pointer (`a.b[0]` -> `/a/b/0`).
fn pointer(path: &FieldPath) -> String {
    let mut out = String::new();
    for segment in path.iter() {
        let token = match segment {
            Segment::Seq { index } => index.to_string(),
            Segment::Map { key } => key.clone(),
            Segment::Enum { variant } => variant.clone(),
            Segment::Unknown => continue,
        };
        out.push('/');
        out.push_str(&token.replace('~', "~0").replace('/', "~1"));
    }
    out
}

/// serde_json appends " at line L column C" to data errors; the pointer says where already.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}
