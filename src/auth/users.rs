//! The users store: creating accounts (password hashed) and finding them by email.

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

pub async fn find_by_email(db: &impl ConnectionTrait, email: &str) -> Result<Option<users::Model>> {
    let email = normalize_email(email);
    Ok(users::Entity::find()
        .filter(users::Column::Email.eq(email))
        .one(db)
        .await?)
}

/// Inserts a user with a freshly hashed password.
pub async fn insert(
    db: &impl ConnectionTrait,
    email: &str,
    password: &str,
    name: Option<String>,
    is_platform_admin: bool,
) -> Result<users::Model> {
    let now = Utc::now();
    let user = users::ActiveModel {
        id: Set(Uuid::now_v7()),
        email: Set(normalize_email(email)),
        password_hash: Set(password::hash(password).await?),
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
    if !email.contains('@') {
        return Err(crate::Error::invalid("/email", "must be an email address"));
    }
    password::check_policy(password, "/password")?;
    let Some(existing) = find_by_email(db, email).await? else {
        return insert(db, email, password, name, true).await;
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
