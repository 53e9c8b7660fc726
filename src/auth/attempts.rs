//! Login attempts: every attempt is recorded (failures feed the failed-auth alert), and
//! repeated failures throttle the account and the client IP.

use chrono::{Duration, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait,
    QueryFilter,
};
use uuid::Uuid;

use crate::{
    entities::auth_attempts,
    error::{Error, ErrorKind, Result},
};

/// Window over which failures count.
const WINDOW_SECS: i64 = 15 * 60;
/// Failures in the window after which the account is throttled.
const MAX_PER_ACCOUNT: u64 = 10;
/// Failures in the window after which the client IP is throttled.
const MAX_PER_IP: u64 = 50;

pub struct Attempt<'a> {
    pub email: &'a str,
    pub ip: Option<&'a str>,
    pub user_id: Option<Uuid>,
    pub tenant_id: Option<Uuid>,
}

pub async fn record(
    db: &impl ConnectionTrait,
    attempt: &Attempt<'_>,
    succeeded: bool,
    reason: Option<&str>,
) -> Result<()> {
    auth_attempts::ActiveModel {
        id: Set(Uuid::now_v7()),
        kind: Set("password".into()),
        email: Set(Some(attempt.email.to_owned())),
        user_id: Set(attempt.user_id),
        tenant_id: Set(attempt.tenant_id),
        ip: Set(attempt.ip.map(str::to_owned)),
        succeeded: Set(succeeded),
        reason: Set(reason.map(str::to_owned)),
        created_at: Set(Utc::now()),
    }
    .insert(db)
    .await?;
    Ok(())
}

/// 429 when the account or the IP has failed too often within the window.
pub async fn check_throttle(
    db: &impl ConnectionTrait,
    email: &str,
    ip: Option<&str>,
) -> Result<()> {
    let since = Utc::now() - Duration::seconds(WINDOW_SECS);
    let failures = || {
        auth_attempts::Entity::find()
            .filter(auth_attempts::Column::Kind.eq("password"))
            .filter(auth_attempts::Column::Succeeded.eq(false))
            .filter(auth_attempts::Column::CreatedAt.gte(since))
    };
    let by_account = failures()
        .filter(auth_attempts::Column::Email.eq(email))
        .count(db)
        .await?;
    let by_ip = match ip {
        Some(ip) => {
            failures()
                .filter(auth_attempts::Column::Ip.eq(ip))
                .count(db)
                .await?
        }
        None => 0,
    };
    if by_account >= MAX_PER_ACCOUNT || by_ip >= MAX_PER_IP {
        return Err(Error::new(
            ErrorKind::TooManyRequests {
                retry_after_secs: WINDOW_SECS as u64,
            },
            "Too many failed login attempts. Try again later.",
        ));
    }
    Ok(())
}
