//! The owner rules of membership changes: only an owner grants the owner role or changes or
//! removes an owner, and a tenant never loses its last owner.

use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect};

use crate::{
    entities::memberships,
    error::{Error, Result},
    ids::UserId,
    tenancy::{Role, TenantScope},
};

/// 403 unless the caller is an owner, when `role` is the owner role.
pub fn check_may_grant(scope: &TenantScope, role: Role) -> Result<()> {
    if role == Role::Owner && scope.role() != Role::Owner {
        return Err(Error::forbidden("Only an owner may grant the owner role."));
    }
    Ok(())
}

/// 403 unless the caller is an owner, when the member being changed is one.
pub fn check_may_change(scope: &TenantScope, current: Role) -> Result<()> {
    if current == Role::Owner && scope.role() != Role::Owner {
        return Err(Error::forbidden(
            "Only an owner may change or remove an owner.",
        ));
    }
    Ok(())
}

/// 409 when `user` is the tenant's only owner. Locks the tenant's owner rows (PostgreSQL;
/// SQLite serializes writers anyway), so two owners demoting each other at once cannot
/// both succeed.
pub async fn check_not_last_owner(
    db: &impl ConnectionTrait,
    scope: &TenantScope,
    user: UserId,
) -> Result<()> {
    let owners: Vec<uuid::Uuid> = memberships::Entity::find()
        .select_only()
        .column(memberships::Column::UserId)
        .filter(memberships::Column::TenantId.eq(scope.tenant_id().0))
        .filter(memberships::Column::Role.eq(Role::Owner.as_str()))
        .lock_exclusive()
        .into_tuple()
        .all(db)
        .await?;
    if owners.iter().all(|owner| *owner == user.0) {
        return Err(Error::conflict(format!(
            "{user} is the last owner of this tenant; make another member an owner first."
        )));
    }
    Ok(())
}
