//! The members of the caller's tenant: list, add (an existing account, or a new one when a
//! password is given), change role, remove. Every write is one transaction with one audit
//! entry; the owner rules live in `owners`.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection,
    DatabaseTransaction, EntityTrait, ModelTrait, QueryFilter, SqliteTransactionMode,
    TransactionOptions, TransactionTrait,
};
use serde_json::json;
use uuid::Uuid;

use super::{owners, parse_role};
use crate::{
    audit,
    auth::{
        password,
        users::{self, Email},
    },
    entities::{memberships, users as user_rows},
    error::{Error, ErrorKind, Result},
    ids::{TenantId, UserId},
    pagination::{self, Page},
    tenancy::{Permission, Role, TenantScope},
};

/// A member of the tenant: the account and its role.
#[derive(Clone, Debug)]
pub struct Member {
    pub user_id: UserId,
    pub email: String,
    pub name: Option<String>,
    pub role: Role,
    pub joined_at: DateTime<Utc>,
}

impl Member {
    fn new(user: user_rows::Model, membership: &memberships::Model) -> Result<Self> {
        Ok(Self {
            user_id: user.id.into(),
            email: user.email,
            name: user.name,
            role: parse_role(&membership.role)?,
            joined_at: membership.created_at,
        })
    }
}

/// Who to add. Without `password` the account must exist; with it, it must not.
pub struct NewMember<'a> {
    pub email: &'a str,
    pub role: Role,
    pub password: Option<&'a str>,
    /// The display name of an account created here.
    pub name: Option<String>,
}

/// A page of the tenant's members, ordered by user id (newest account first).
pub async fn list(
    db: &impl ConnectionTrait,
    scope: TenantScope,
    page: Page,
) -> Result<(Vec<Member>, bool)> {
    scope.require(Permission::Read)?;
    let select =
        memberships::Entity::find().filter(memberships::Column::TenantId.eq(scope.tenant_id().0));
    let (rows, has_more) = pagination::fetch(db, select, memberships::Column::UserId, page).await?;
    let ids: Vec<Uuid> = rows.iter().map(|m| m.user_id).collect();
    let mut accounts = user_rows::Entity::find()
        .filter(user_rows::Column::Id.is_in(ids))
        .all(db)
        .await?;
    let members = rows
        .iter()
        .filter_map(|m| {
            let at = accounts.iter().position(|u| u.id == m.user_id)?;
            Some(Member::new(accounts.swap_remove(at), m))
        })
        .collect::<Result<_>>()?;
    Ok((members, has_more))
}

/// Adds a member; records `member.add`. 409 when already a member.
pub async fn add(
    db: &DatabaseConnection,
    scope: TenantScope,
    ctx: &audit::Context,
    new: NewMember<'_>,
) -> Result<Member> {
    scope.require(Permission::ManageMembers)?;
    owners::check_may_grant(&scope, new.role)?;
    let email = Email::parse(new.email, "/email")?;
    let name = users::parse_name(new.name, "/name")?;
    let account = resolve_account(db, &scope, &email, new.password).await?;
    let txn = db.begin().await?;
    let user = match account {
        Account::Existing(user) => user,
        Account::New { hash } => users::insert_hashed(&txn, email.as_str(), hash, name, false)
            .await
            .map_err(taken_email)?,
    };
    let membership = insert(&txn, ctx, scope.tenant_id(), user.id.into(), new.role)
        .await
        .map_err(|err| already_member(err, user.id.into()))?;
    txn.commit().await?;
    Member::new(user, &membership)
}

/// The account a new member joins with.
enum Account {
    Existing(user_rows::Model),
    /// To be created with this password hash.
    New {
        hash: String,
    },
}

/// An existing account (no `password` allowed, not a member yet), or the hash of the
/// password of one to create (hashed here, before any transaction opens).
async fn resolve_account(
    db: &impl ConnectionTrait,
    scope: &TenantScope,
    email: &Email,
    password: Option<&str>,
) -> Result<Account> {
    match (users::find_by_email(db, email.as_str()).await?, password) {
        (Some(_), Some(_)) => Err(Error::conflict(
            "An account with this email exists already; add it without `password`.",
        )),
        (Some(user), None) => {
            if super::role_of(db, scope.tenant_id(), user.id.into())
                .await?
                .is_some()
            {
                return Err(is_member(user.id.into()));
            }
            Ok(Account::Existing(user))
        }
        (None, None) => Err(Error::invalid(
            "/password",
            "is required: no account with this email exists yet",
        )),
        (None, Some(pw)) => {
            password::check_policy(pw, "/password")?;
            Ok(Account::New {
                hash: password::hash(pw).await?,
            })
        }
    }
}

/// Inserts a membership and records `member.add`; the caller owns the transaction.
pub(crate) async fn insert(
    db: &impl ConnectionTrait,
    ctx: &audit::Context,
    tenant: TenantId,
    user: UserId,
    role: Role,
) -> Result<memberships::Model> {
    let membership = insert_row(db, tenant, user, role).await?;
    record(db, ctx, tenant, "member.add", user, None, Some(role)).await?;
    Ok(membership)
}

/// Inserts a membership without an audit entry (sign-up records the whole operation).
pub(crate) async fn insert_row(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    user: UserId,
    role: Role,
) -> Result<memberships::Model> {
    let now = Utc::now();
    let membership = memberships::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(tenant.0),
        user_id: Set(user.0),
        role: Set(role.as_str().to_owned()),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db)
    .await?;
    Ok(membership)
}

/// Changes a member's role; records `member.role_change`. The same role is a no-op.
pub async fn change_role(
    db: &DatabaseConnection,
    scope: TenantScope,
    ctx: &audit::Context,
    user: UserId,
    role: Role,
) -> Result<Member> {
    scope.require(Permission::ManageMembers)?;
    let txn = begin_write(db).await?;
    let (membership, account) = find(&txn, &scope, user).await?;
    let current = parse_role(&membership.role)?;
    owners::check_may_change(&scope, current)?;
    owners::check_may_grant(&scope, role)?;
    if current == role {
        return Member::new(account, &membership);
    }
    if current == Role::Owner {
        owners::check_not_last_owner(&txn, &scope, user).await?;
    }
    let mut active: memberships::ActiveModel = membership.into();
    active.role = Set(role.as_str().to_owned());
    active.updated_at = Set(Utc::now());
    let membership = active.update(&txn).await?;
    let tenant = scope.tenant_id();
    record(
        &txn,
        ctx,
        tenant,
        "member.role_change",
        user,
        Some(current),
        Some(role),
    )
    .await?;
    txn.commit().await?;
    Member::new(account, &membership)
}

/// Removes a member (their account stays); records `member.remove`.
pub async fn remove(
    db: &DatabaseConnection,
    scope: TenantScope,
    ctx: &audit::Context,
    user: UserId,
) -> Result<()> {
    scope.require(Permission::ManageMembers)?;
    let txn = begin_write(db).await?;
    let (membership, _) = find(&txn, &scope, user).await?;
    let current = parse_role(&membership.role)?;
    owners::check_may_change(&scope, current)?;
    if current == Role::Owner {
        owners::check_not_last_owner(&txn, &scope, user).await?;
    }
    membership.delete(&txn).await?;
    let tenant = scope.tenant_id();
    record(
        &txn,
        ctx,
        tenant,
        "member.remove",
        user,
        Some(current),
        None,
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// A transaction that reads and then writes on what it read (the owner rules). SQLite gets
/// `BEGIN IMMEDIATE`, so a concurrent writer waits for the lock instead of failing on a stale
/// snapshot; PostgreSQL relies on the row locks of `owners::check_not_last_owner`.
async fn begin_write(db: &DatabaseConnection) -> Result<DatabaseTransaction> {
    let options = TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..TransactionOptions::default()
    };
    Ok(db.begin_with_options(options).await?)
}

/// The membership of `user` in the scope's tenant, and the account; 404 for anyone else.
async fn find(
    db: &impl ConnectionTrait,
    scope: &TenantScope,
    user: UserId,
) -> Result<(memberships::Model, user_rows::Model)> {
    let found = memberships::Entity::find()
        .filter(memberships::Column::TenantId.eq(scope.tenant_id().0))
        .filter(memberships::Column::UserId.eq(user.0))
        .find_also_related(user_rows::Entity)
        .one(db)
        .await?;
    match found {
        Some((membership, Some(account))) => Ok((membership, account)),
        _ => Err(Error::not_found(format!(
            "No member {user} in this tenant."
        ))),
    }
}

/// One `member.*` audit entry; before/after are `{"role": …}`.
async fn record(
    db: &impl ConnectionTrait,
    ctx: &audit::Context,
    tenant: TenantId,
    action: &str,
    user: UserId,
    before: Option<Role>,
    after: Option<Role>,
) -> Result<()> {
    let entry = audit::Entry {
        tenant_id: Some(tenant),
        action,
        target_type: "user",
        target_id: Some(user.to_string()),
        before: before.map(|role| json!({"role": role})),
        after: after.map(|role| json!({"role": role})),
    };
    audit::record(db, ctx, entry).await
}

/// A unique violation while inserting the account: someone took the email meanwhile.
pub(crate) fn taken_email(err: Error) -> Error {
    match err.kind {
        ErrorKind::Conflict => Error {
            detail: "An account with this email exists already.".into(),
            ..err
        },
        _ => err,
    }
}

/// A unique violation while inserting the membership: added meanwhile.
fn already_member(err: Error, user: UserId) -> Error {
    match err.kind {
        ErrorKind::Conflict => Error {
            source: err.source,
            ..is_member(user)
        },
        _ => err,
    }
}

fn is_member(user: UserId) -> Error {
    Error::conflict(format!("{user} is a member of this tenant already."))
}
