//! The `X-API-Key` extractor for metered endpoints: resolves the presented secret to a usable
//! key through the in-process key cache (`keys::cache`; the database only on a miss) or
//! answers 401 `Missing API key` / 401 `Invalid API key` / 403 `API key is inactive`.

use std::{future::Future, pin::Pin, sync::Arc};

use actix_web::{FromRequest, HttpMessage, HttpRequest, dev::Payload, web};
use chrono::Utc;

use crate::{
    error::Error,
    keys::resolve::{self, CachedKey},
    state::AppState,
};

pub const HEADER: &str = "X-API-Key";

/// The verified key of this request, with its effective limits.
pub struct ApiKey(pub Arc<CachedKey>);

impl FromRequest for ApiKey {
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        // Behind the metered middleware the key is verified already.
        if let Some(key) = req.extensions().get::<Arc<CachedKey>>().cloned() {
            return Box::pin(std::future::ready(Ok(ApiKey(key))));
        }
        let state = req.app_data::<web::Data<AppState>>().cloned();
        // Hashed here, so the secret is neither copied nor kept past this call.
        let presented = req
            .headers()
            .get(HEADER)
            .map(|v| v.to_str().unwrap_or_default());
        let digest = resolve::presented(presented);
        Box::pin(async move {
            let state =
                state.ok_or_else(|| Error::internal(anyhow::anyhow!("AppState missing")))?;
            let key = state
                .key_cache
                .resolve_digest(&state.db, &digest?, Utc::now())
                .await?;
            Ok(ApiKey(key))
        })
    }
}
