//! Self-service sign-up: a new account, a new tenant it owns, and a token acting in it, created
//! in one transaction with one audit entry (`account.signup`).

use sea_orm::{DatabaseConnection, TransactionTrait};
use serde_json::json;

use super::{
    AccessToken, password, token,
    users::{self, Email},
};
use crate::{
    audit,
    config::AuthSettings,
    entities::{tenants as tenant_rows, users as user_rows},
    error::{Error, Result},
    ids::{TenantId, UserId},
    tenancy::Role,
    tenants::{self, TenantName, members},
};

/// What a sign-up asks for.
pub struct NewAccount<'a> {
    pub email: &'a str,
    pub password: &'a str,
    pub name: Option<String>,
    pub tenant_name: &'a str,
}

/// What a sign-up created.
pub struct SignedUp {
    pub user: user_rows::Model,
    pub tenant: tenant_rows::Model,
    pub token: AccessToken,
}

/// Creates the account, its tenant (default plan, unique slug) and the `owner` membership.
/// 403 when `auth.open_signup` is off; 409 when the email has an account; 422 on bad input.
/// `ctx` is the anonymous request context; the entries are attributed to the new user.
pub async fn signup(
    db: &DatabaseConnection,
    settings: &AuthSettings,
    ctx: audit::Context,
    new: NewAccount<'_>,
) -> Result<SignedUp> {
    if !settings.open_signup {
        return Err(Error::forbidden(
            "Sign-up is closed on this server; ask an administrator for an account.",
        ));
    }
    let email = Email::parse(new.email, "/email")?;
    password::check_policy(new.password, "/password")?;
    let name = users::parse_name(new.name, "/name")?;
    let tenant_name = TenantName::parse(new.tenant_name, "/tenant_name")?;
    if users::find_by_email(db, email.as_str()).await?.is_some() {
        return Err(email_taken());
    }
    let hash = password::hash(new.password).await?;
    let txn = db.begin().await?;
    let user = users::insert_hashed(&txn, email.as_str(), hash, name, false)
        .await
        .map_err(members::taken_email)?;
    let ctx = ctx.acting_as(user.id.into(), &user.email);
    let tenant = tenants::insert(&txn, &tenant_name).await?;
    let tenant_id = TenantId::from(tenant.id);
    members::insert_row(&txn, tenant_id, user.id.into(), Role::Owner).await?;
    let entry = audit::Entry {
        tenant_id: Some(tenant_id),
        action: "account.signup",
        target_type: "tenant",
        target_id: Some(tenant_id.to_string()),
        before: None,
        after: Some(json!({
            "user": {"id": UserId::from(user.id), "email": user.email},
            "tenant": {"name": tenant.name, "slug": tenant.slug},
            "role": Role::Owner,
        })),
    };
    audit::record(&txn, &ctx, entry).await?;
    txn.commit().await?;
    let token = token::issue(
        settings,
        user.id.into(),
        Some(tenant.id.into()),
        token::TokenUse::Api,
    )?;
    Ok(SignedUp {
        user,
        tenant,
        token,
    })
}

fn email_taken() -> Error {
    Error::conflict("An account with this email exists already; log in instead.")
}
