//! What rows are joined with — key names and tenant currencies — read once when an export
//! starts, so each row is a map lookup rather than a query.

use std::collections::HashMap;

use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QuerySelect};
use uuid::Uuid;

use crate::{
    Result,
    analytics::Tenants,
    entities::{api_keys, tenants},
};

pub struct Lookups {
    key_names: HashMap<Uuid, String>,
    currencies: HashMap<Uuid, String>,
}

impl Lookups {
    pub async fn load(db: &DatabaseConnection, whose: Tenants) -> Result<Self> {
        let mut keys = api_keys::Entity::find()
            .select_only()
            .columns([api_keys::Column::Id, api_keys::Column::Name]);
        let mut currencies = tenants::Entity::find()
            .select_only()
            .columns([tenants::Column::Id, tenants::Column::Currency]);
        if let Tenants::One(tenant) = whose {
            keys = keys.filter(api_keys::Column::TenantId.eq(tenant.0));
            currencies = currencies.filter(tenants::Column::Id.eq(tenant.0));
        }
        Ok(Self {
            key_names: keys.into_tuple().all(db).await?.into_iter().collect(),
            currencies: currencies.into_tuple().all(db).await?.into_iter().collect(),
        })
    }

    /// The key's name; `None` for no key, or a key deleted since.
    pub fn key_name(&self, key: Option<Uuid>) -> Option<&str> {
        key.and_then(|k| self.key_names.get(&k)).map(String::as_str)
    }

    /// The tenant's ISO 4217 currency; `None` for a tenant deleted since.
    pub fn currency(&self, tenant: Uuid) -> Option<&str> {
        self.currencies.get(&tenant).map(String::as_str)
    }
}
