//! Queries on `api_keys`, every one starting from the caller's tenant scope.

use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, Select,
};

use crate::{
    entities::api_keys,
    error::{Error, Result},
    ids::KeyId,
    pagination::{self, Page},
    tenancy::TenantScope,
};

/// The tenant's keys: the starting point of every scoped query.
pub fn scoped(scope: &TenantScope) -> Select<api_keys::Entity> {
    api_keys::Entity::find().filter(api_keys::Column::TenantId.eq(scope.tenant_id().0))
}

/// One key of the tenant; another tenant's key is as absent as a missing one (404).
pub async fn find(
    db: &impl ConnectionTrait,
    scope: &TenantScope,
    id: KeyId,
) -> Result<api_keys::Model> {
    scoped(scope)
        .filter(api_keys::Column::Id.eq(id.0))
        .one(db)
        .await?
        .ok_or_else(|| Error::not_found(format!("No API key {id}.")))
}

/// A page of the tenant's keys, newest first.
pub async fn list(
    db: &impl ConnectionTrait,
    scope: &TenantScope,
    page: Page,
) -> Result<(Vec<api_keys::Model>, bool)> {
    pagination::fetch(db, scoped(scope), api_keys::Column::Id, page).await
}

/// Whether any key (any tenant) answers to this secret hash, current or in rotation grace.
pub async fn hash_in_use(db: &impl ConnectionTrait, hash: &str) -> Result<bool> {
    let matches = Condition::any()
        .add(api_keys::Column::KeyHash.eq(hash))
        .add(api_keys::Column::PreviousKeyHash.eq(hash));
    Ok(api_keys::Entity::find().filter(matches).count(db).await? > 0)
}
