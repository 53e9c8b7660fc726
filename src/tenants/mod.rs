//! Tenants and memberships: creating tenants, who belongs where with which role (the
//! `members` resource and its owner rules), and the platform-admin views across tenants.

use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};

use crate::{
    entities::{memberships, tenants},
    error::{Error, Result},
    ids::{TenantId, UserId},
    pagination::{self, Page},
    tenancy::{AdminScope, Role},
};

mod create;
pub mod members;
mod owners;

pub(crate) use create::insert;
pub use create::{TenantName, create, slugify};

/// A user's membership, with the tenant's name for display.
#[derive(Clone, Debug)]
pub struct MembershipView {
    pub tenant_id: TenantId,
    pub tenant_name: String,
    pub role: Role,
}

/// The user's memberships, oldest first.
pub async fn memberships_of(
    db: &impl ConnectionTrait,
    user: UserId,
) -> Result<Vec<MembershipView>> {
    let rows = memberships::Entity::find()
        .filter(memberships::Column::UserId.eq(user.0))
        .order_by_asc(memberships::Column::CreatedAt)
        .find_also_related(tenants::Entity)
        .all(db)
        .await?;
    rows.into_iter()
        .filter_map(|(m, t)| t.map(|t| (m, t)))
        .map(|(m, t)| {
            Ok(MembershipView {
                tenant_id: t.id.into(),
                tenant_name: t.name,
                role: parse_role(&m.role)?,
            })
        })
        .collect()
}

/// The user's role in the tenant, if a member.
pub async fn role_of(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    user: UserId,
) -> Result<Option<Role>> {
    let row = memberships::Entity::find()
        .filter(memberships::Column::TenantId.eq(tenant.0))
        .filter(memberships::Column::UserId.eq(user.0))
        .one(db)
        .await?;
    row.map(|m| parse_role(&m.role)).transpose()
}

/// A stored role; an unknown one is data corruption, not the caller's fault.
pub(crate) fn parse_role(stored: &str) -> Result<Role> {
    stored
        .parse()
        .map_err(|e: String| Error::internal(anyhow::anyhow!(e)))
}

/// Whether a tenant with this id exists.
pub async fn exists(db: &impl ConnectionTrait, id: TenantId) -> Result<bool> {
    Ok(tenants::Entity::find_by_id(id.0).one(db).await?.is_some())
}

/// Every tenant, newest first (platform admins).
pub async fn list(
    db: &impl ConnectionTrait,
    _scope: AdminScope,
    page: Page,
) -> Result<(Vec<tenants::Model>, bool)> {
    pagination::fetch(db, tenants::Entity::find(), tenants::Column::Id, page).await
}

/// One tenant by id (platform admins); 404 when absent.
pub async fn get(
    db: &impl ConnectionTrait,
    _scope: AdminScope,
    id: TenantId,
) -> Result<tenants::Model> {
    tenants::Entity::find_by_id(id.0)
        .one(db)
        .await?
        .ok_or_else(|| Error::not_found(format!("No tenant {id}.")))
}
