//! The `X-API-Key` extractor for metered endpoints: resolves the presented secret to a usable
//! key or answers 401 `Missing API key` / 401 `Invalid API key` / 403 `API key is inactive`.

use std::{future::Future, pin::Pin};

use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use chrono::Utc;

use crate::{entities::api_keys, error::Error, keys::resolve, state::AppState};

pub const HEADER: &str = "X-API-Key";

/// The verified key of this request.
pub struct ApiKey(pub api_keys::Model);

impl FromRequest for ApiKey {
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let presented = req
            .headers()
            .get(HEADER)
            .map(|v| v.to_str().map(|s| s.trim().to_owned()).unwrap_or_default());
        Box::pin(async move {
            let state =
                state.ok_or_else(|| Error::internal(anyhow::anyhow!("AppState missing")))?;
            let presented = presented.ok_or_else(|| Error::unauthorized(resolve::MISSING))?;
            let key = resolve::resolve(&state.db, &presented, Utc::now()).await?;
            Ok(ApiKey(key))
        })
    }
}
