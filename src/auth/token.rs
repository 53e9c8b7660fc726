//! Access tokens: HS256 JWTs with `sub`, `tid` (active tenant), `iat`, `exp`, `iss`, `aud`.
//! The algorithm is pinned: `alg: none`, other algorithms and tokens without `exp` are refused.

use chrono::Utc;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use serde::{Deserialize, Serialize};

use crate::{
    config::AuthSettings,
    error::{Error, Result},
    ids::{TenantId, UserId},
};

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: UserId,
    /// The tenant the token acts in; absent for users without a membership.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tid: Option<TenantId>,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
    pub aud: String,
}

/// A signed token and its lifetime in seconds.
pub struct AccessToken {
    pub token: String,
    pub expires_in: u64,
}

/// What a token is for, which sets its lifetime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenUse {
    /// A bearer token for the API: `auth.access_token_ttl_secs`.
    Api,
    /// The dashboard's session cookie: `auth.session_ttl_secs`. It authenticates exactly like
    /// an API token.
    Session,
}

pub fn issue(
    settings: &AuthSettings,
    user: UserId,
    tenant: Option<TenantId>,
    token_use: TokenUse,
) -> Result<AccessToken> {
    let now = Utc::now().timestamp();
    let ttl = match token_use {
        TokenUse::Api => settings.access_token_ttl_secs,
        TokenUse::Session => settings.session_ttl_secs,
    };
    let claims = Claims {
        sub: user,
        tid: tenant,
        iat: now,
        exp: now + ttl as i64,
        iss: settings.jwt_issuer.clone(),
        aud: settings.jwt_audience.clone(),
    };
    let key = EncodingKey::from_secret(settings.jwt_secret.expose().as_bytes());
    let token = encode(&Header::new(Algorithm::HS256), &claims, &key).map_err(Error::internal)?;
    Ok(AccessToken {
        token,
        expires_in: ttl,
    })
}

/// Verifies signature, algorithm, `exp`, `iss` and `aud`. Any failure is the same 401.
pub fn verify(settings: &AuthSettings, token: &str) -> Result<Claims> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_issuer(&[&settings.jwt_issuer]);
    validation.set_audience(&[&settings.jwt_audience]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    validation.leeway = 5;
    let key = DecodingKey::from_secret(settings.jwt_secret.expose().as_bytes());
    decode::<Claims>(token, &key, &validation)
        .map(|data| data.claims)
        .map_err(|err| {
            Error::unauthorized("The access token is invalid or expired.").with_source(err)
        })
}
