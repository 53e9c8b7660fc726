//! Accounts and sessions: sign-up, password login and tenant switching issuing access tokens,
//! password changes, and resolving a verified token into a [`Principal`] (user still active,
//! membership still current).

use chrono::Utc;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ConnectionTrait, EntityTrait};

use crate::{
    config::AuthSettings,
    entities::users as user_rows,
    error::{Error, Result},
    ids::{TenantId, UserId},
    tenancy::{Principal, Role},
    tenants,
};

mod account;
pub mod attempts;
pub mod password;
mod signup;
pub mod token;
pub mod users;

pub use account::{PasswordChange, change_password};
pub use signup::{NewAccount, SignedUp, signup};
pub use token::{AccessToken, TokenUse};

/// A PHC hash of a random password: verified against when the email is unknown, so a login
/// for an unknown account takes as long as one with a wrong password.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$uq0zN7yBkpK0fD2mCqOq9d3N7t1+IMj1k8r9yEf3H7Y";

pub struct Credentials<'a> {
    pub email: &'a str,
    pub password: &'a str,
    pub tenant_id: Option<TenantId>,
    pub ip: Option<&'a str>,
    /// The token to issue: an API token or a dashboard session.
    pub token_use: TokenUse,
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
    let tenant = choose_tenant(db, &user_identity(&user), creds.tenant_id).await?;
    attempt.tenant_id = tenant.map(|t| t.0);
    attempts::record(db, &attempt, true, None).await?;
    let mut active: user_rows::ActiveModel = user.clone().into();
    active.last_login_at = Set(Some(Utc::now()));
    active.update(db).await?;
    token::issue(settings, user.id.into(), tenant, creds.token_use)
}

/// A new token for the caller, acting in `tenant`: they must be a member of it, or a platform
/// administrator (any existing tenant). 403 otherwise.
pub async fn switch_tenant(
    db: &impl ConnectionTrait,
    settings: &AuthSettings,
    principal: &Principal,
    tenant: TenantId,
    token_use: TokenUse,
) -> Result<AccessToken> {
    let who = Identity {
        user_id: principal.user_id,
        is_platform_admin: principal.is_platform_admin,
    };
    let chosen = choose_tenant(db, &who, Some(tenant)).await?;
    token::issue(settings, principal.user_id, chosen, token_use)
}

/// What [`choose_tenant`] needs to know about the user.
struct Identity {
    user_id: UserId,
    is_platform_admin: bool,
}

fn user_identity(user: &user_rows::Model) -> Identity {
    Identity {
        user_id: user.id.into(),
        is_platform_admin: user.is_platform_admin,
    }
}

/// The tenant the session acts in: the requested one (the user must be a member, or a
/// platform administrator), else the user's oldest membership, else none.
async fn choose_tenant(
    db: &impl ConnectionTrait,
    user: &Identity,
    requested: Option<TenantId>,
) -> Result<Option<TenantId>> {
    let memberships = tenants::memberships_of(db, user.user_id).await?;
    match requested {
        Some(wanted) if memberships.iter().any(|m| m.tenant_id == wanted) => Ok(Some(wanted)),
        // Platform admins may act in any tenant that exists.
        Some(wanted) if user.is_platform_admin && tenants::exists(db, wanted).await? => {
            Ok(Some(wanted))
        }
        Some(wanted) => Err(Error::forbidden(format!(
            "You are not a member of tenant {wanted}."
        ))),
        None => Ok(memberships.first().map(|m| m.tenant_id)),
    }
}

/// The user's role in `tenant`: their membership's, or `admin` for a platform administrator
/// acting in a tenant they do not belong to. A removed member gets 401.
async fn role_in(
    db: &impl ConnectionTrait,
    user: &user_rows::Model,
    tenant: TenantId,
) -> Result<Role> {
    match tenants::role_of(db, tenant, user.id.into()).await? {
        Some(role) => Ok(role),
        None if user.is_platform_admin && tenants::exists(db, tenant).await? => Ok(Role::Admin),
        None => Err(Error::unauthorized(
            "You are no longer a member of this token's tenant.",
        )),
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
        Some(tenant) => Some((tenant, role_in(db, &user, tenant).await?)),
        None => None,
    };
    Ok(Principal {
        user_id: UserId::from(user.id),
        email: user.email,
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
