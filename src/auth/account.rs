//! A user's own account: changing the password (current one required; failures count towards
//! the login throttle, so a stolen token cannot be used to guess the password).

use sea_orm::{DatabaseConnection, TransactionTrait};

use super::{attempts, password, users};
use crate::{
    audit,
    error::{Error, Result},
    ids::UserId,
};

/// The current password and the one replacing it.
pub struct PasswordChange<'a> {
    pub current: &'a str,
    pub new: &'a str,
}

/// Replaces the password of `user` and stamps `password_changed_at`; records
/// `user.password_change` (no tenant, no before/after: passwords never reach the audit log).
/// A wrong current password is a 422 on `/current_password`, recorded as a failed attempt.
pub async fn change_password(
    db: &DatabaseConnection,
    ctx: &audit::Context,
    user: UserId,
    change: PasswordChange<'_>,
) -> Result<()> {
    password::check_policy(change.new, "/new_password")?;
    let account = users::get(db, user).await?;
    let ip = ctx.ip.as_deref();
    attempts::check_throttle(db, &account.email, ip).await?;
    if !password::verify(change.current, &account.password_hash).await? {
        let attempt = attempts::Attempt {
            email: &account.email,
            ip,
            user_id: Some(account.id),
            tenant_id: None,
        };
        attempts::record(db, &attempt, false, Some("bad_current_password")).await?;
        return Err(Error::invalid(
            "/current_password",
            "does not match the account's password",
        ));
    }
    if change.new == change.current {
        return Err(Error::invalid(
            "/new_password",
            "must differ from the current password",
        ));
    }
    let hash = password::hash(change.new).await?;
    let txn = db.begin().await?;
    users::update_password(&txn, account, hash).await?;
    let entry = audit::Entry {
        tenant_id: None,
        action: "user.password_change",
        target_type: "user",
        target_id: Some(user.to_string()),
        before: None,
        after: None,
    };
    audit::record(&txn, ctx, entry).await?;
    txn.commit().await?;
    Ok(())
}
