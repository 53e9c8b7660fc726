//! `users`: people who sign in to the dashboard and the management API.

use sea_orm::entity::prelude::*;

/// A user account. Tenant roles live in `memberships`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Always stored lowercase.
    #[sea_orm(column_type = "Text", unique)]
    pub email: String,
    /// Argon2id PHC string.
    #[sea_orm(column_type = "Text")]
    pub password_hash: String,
    #[sea_orm(column_type = "Text")]
    pub name: Option<String>,
    pub is_platform_admin: bool,
    #[sea_orm(column_type = "Text")]
    pub status: String,
    pub last_login_at: Option<DateTimeUtc>,
    pub password_changed_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::memberships::Entity")]
    Memberships,
    #[sea_orm(has_many = "super::auth_attempts::Entity")]
    AuthAttempts,
}

impl Related<super::memberships::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Memberships.def()
    }
}

impl Related<super::auth_attempts::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::AuthAttempts.def()
    }
}

/// The user's tenants, through `memberships`.
impl Related<super::tenants::Entity> for Entity {
    fn to() -> RelationDef {
        super::memberships::Relation::Tenants.def()
    }

    fn via() -> Option<RelationDef> {
        Some(super::memberships::Relation::Users.def().rev())
    }
}

impl ActiveModelBehavior for ActiveModel {}
