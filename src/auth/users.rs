//! The users store: creating accounts (password hashed), finding them by email, changing
//! passwords; and [`Email`], the parsed form of an address.

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
};
use uuid::Uuid;

use super::password;
use crate::{entities::users, error::Result};

/// Emails are compared and stored lowercase, trimmed.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// An address that looks like an email (one `@`, a dotted domain, no spaces), normalized.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// Parses `raw`; a 422 on `pointer` when it is not an email address.
    pub fn parse(raw: &str, pointer: &str) -> Result<Self> {
        let email = normalize_email(raw);
        let valid = email.len() <= 254
            && !email.chars().any(char::is_whitespace)
            && email.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && !domain.contains('@')
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
            });
        if !valid {
            return Err(crate::Error::invalid(pointer, "must be an email address"));
        }
        Ok(Self(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

pub async fn find_by_email(db: &impl ConnectionTrait, email: &str) -> Result<Option<users::Model>> {
    let email = normalize_email(email);
    Ok(users::Entity::find()
        .filter(users::Column::Email.eq(email))
        .one(db)
        .await?)
}

/// A display name: trimmed, blank means none, at most 100 characters (422 on `pointer`).
pub fn parse_name(raw: Option<String>, pointer: &str) -> Result<Option<String>> {
    let Some(name) = raw.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty()) else {
        return Ok(None);
    };
    if name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(crate::Error::invalid(
            pointer,
            "must be at most 100 characters, without control characters",
        ));
    }
    Ok(Some(name))
}

/// Inserts a user with a freshly hashed password.
pub async fn insert(
    db: &impl ConnectionTrait,
    email: &str,
    password: &str,
    name: Option<String>,
    is_platform_admin: bool,
) -> Result<users::Model> {
    let hash = password::hash(password).await?;
    insert_hashed(db, email, hash, name, is_platform_admin).await
}

/// Inserts a user whose password was hashed already: callers hash before opening a
/// transaction, so no transaction stays open while argon2 runs.
pub async fn insert_hashed(
    db: &impl ConnectionTrait,
    email: &str,
    password_hash: String,
    name: Option<String>,
    is_platform_admin: bool,
) -> Result<users::Model> {
    let now = Utc::now();
    let user = users::ActiveModel {
        id: Set(Uuid::now_v7()),
        email: Set(normalize_email(email)),
        password_hash: Set(password_hash),
        name: Set(name),
        is_platform_admin: Set(is_platform_admin),
        status: Set("active".to_owned()),
        last_login_at: Set(None),
        password_changed_at: Set(Some(now)),
        created_at: Set(now),
        updated_at: Set(now),
    };
    Ok(user.insert(db).await?)
}

/// `tollgate admin create-user`: creates a platform admin, or promotes an existing user and
/// sets the given password.
pub async fn create_platform_admin(
    db: &impl ConnectionTrait,
    email: &str,
    password: &str,
    name: Option<String>,
) -> Result<users::Model> {
    let email = Email::parse(email, "/email")?;
    password::check_policy(password, "/password")?;
    let Some(existing) = find_by_email(db, email.as_str()).await? else {
        return insert(db, email.as_str(), password, name, true).await;
    };
    let now = Utc::now();
    let mut user: users::ActiveModel = existing.into();
    user.is_platform_admin = Set(true);
    user.password_hash = Set(password::hash(password).await?);
    user.password_changed_at = Set(Some(now));
    user.updated_at = Set(now);
    if name.is_some() {
        user.name = Set(name);
    }
    Ok(user.update(db).await?)
}

/// One user by id; 404 when absent.
pub async fn get(db: &impl ConnectionTrait, id: crate::ids::UserId) -> Result<users::Model> {
    users::Entity::find_by_id(id.0)
        .one(db)
        .await?
        .ok_or_else(|| crate::Error::not_found(format!("No user {id}.")))
}

/// Stores a new password hash and stamps `password_changed_at`.
pub async fn update_password(
    db: &impl ConnectionTrait,
    user: users::Model,
    password_hash: String,
) -> Result<users::Model> {
    let now = Utc::now();
    let mut user: users::ActiveModel = user.into();
    user.password_hash = Set(password_hash);
    user.password_changed_at = Set(Some(now));
    user.updated_at = Set(now);
    Ok(user.update(db).await?)
}
