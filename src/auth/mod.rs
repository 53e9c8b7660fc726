//! Accounts and sessions: password login issuing access tokens, and resolving a verified
//! token into a [`Principal`] (user still active, membership still current).

use chrono::Utc;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ConnectionTrait, EntityTrait};

use crate::{
    config::AuthSettings,
    entities::users as user_rows,
    error::{Error, Result},
    ids::{TenantId, UserId},
    tenancy::Principal,
    tenants,
};

pub mod attempts;
pub mod password;
pub mod token;
pub mod users;

pub use token::AccessToken;

/// A PHC hash of a random password: verified against when the email is unknown, so a login
/// for an unknown account takes as long as one with a wrong password.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$uq0zN7yBkpK0fD2mCqOq9d3N7t1+IMj1k8r9yEf3H7Y";

pub struct Credentials<'a> {
    pub email: &'a str,
    pub password: &'a str,
    pub tenant_id: Option<TenantId>,
    pub ip: Option<&'a str>,
}

/// Password login. Unknown email and wrong password are the same 401; every attempt is
/// recorded and repeated failures are throttled (429).
pub async fn login(
    db: &impl ConnectionTrait,
    settings: &AuthSettings,
    creds: Credentials<'_>,
) -> Result<AccessToken> {
    let email = users::normalize_email(creds.email);
    attempts::check_throttle(db, &email, creds.ip).await?;
    let user = users::find_by_email(db, &email).await?;
    let stored = user
        .as_ref()
        .map_or(DUMMY_HASH, |u| u.password_hash.as_str());
    let matches = password::verify(creds.password, stored).await?;
    let mut attempt = attempts::Attempt {
        email: &email,
        ip: creds.ip,
        user_id: None,
        tenant_id: None,
    };
    let user = match user {
        Some(user) if matches && user.status == "active" => user,
        Some(user) => {
            attempt.user_id = Some(user.id);
            let reason = if matches {
                "user_inactive"
            } else {
                "bad_password"
            };
            attempts::record(db, &attempt, false, Some(reason)).await?;
            return Err(Error::unauthorized("Invalid email or password."));
        }
        None => {
            attempts::record(db, &attempt, false, Some("unknown_email")).await?;
            return Err(Error::unauthorized("Invalid email or password."));
        }
    };
    attempt.user_id = Some(user.id);
    let tenant = choose_tenant(db, &user, creds.tenant_id).await?;
    attempt.tenant_id = tenant.map(|t| t.0);
    attempts::record(db, &attempt, true, None).await?;
    let mut active: user_rows::ActiveModel = user.clone().into();
    active.last_login_at = Set(Some(Utc::now()));
    active.update(db).await?;
    token::issue(settings, user.id.into(), tenant)
}

/// The tenant the session acts in: the requested one (the user must be a member), else the
/// user's oldest membership, else none.
async fn choose_tenant(
    db: &impl ConnectionTrait,
    user: &user_rows::Model,
    requested: Option<TenantId>,
) -> Result<Option<TenantId>> {
    let memberships = tenants::memberships_of(db, user.id.into()).await?;
    match requested {
        Some(wanted) if memberships.iter().any(|m| m.tenant_id == wanted) => Ok(Some(wanted)),
        Some(wanted) => Err(Error::forbidden(format!(
            "You are not a member of tenant {wanted}."
        ))),
        None => Ok(memberships.first().map(|m| m.tenant_id)),
    }
}

/// Resolves a bearer token: valid signature and claims, user still active, and the token's
/// tenant still one the user belongs to (a removed member loses access at once).
pub async fn authenticate(
    db: &impl ConnectionTrait,
    settings: &AuthSettings,
    bearer: &str,
) -> Result<Principal> {
    let claims = token::verify(settings, bearer)?;
    let user = user_rows::Entity::find_by_id(uuid::Uuid::from(claims.sub))
        .one(db)
        .await?
        .filter(|u| u.status == "active")
        .ok_or_else(|| Error::unauthorized("The access token is invalid or expired."))?;
    let membership = match claims.tid {
        Some(tenant) => {
            let role = tenants::role_of(db, tenant, claims.sub)
                .await?
                .ok_or_else(|| {
                    Error::unauthorized("You are no longer a member of this token's tenant.")
                })?;
            Some((tenant, role))
        }
        None => None,
    };
    Ok(Principal {
        user_id: UserId::from(user.id),
        is_platform_admin: user.is_platform_admin,
        membership,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_dummy_hash_parses() {
        argon2::PasswordHash::new(super::DUMMY_HASH).expect("valid PHC string");
    }
}
