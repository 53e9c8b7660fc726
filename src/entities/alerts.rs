//! `alerts`: raised alerts, deduplicated by `dedup_key`, with an acknowledge/resolve lifecycle.

use sea_orm::entity::prelude::*;

/// An alert. A repeat while open bumps `occurrences` and `last_seen_at`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "alerts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Option<Uuid>,
    pub rule_id: Option<Uuid>,
    #[sea_orm(column_type = "Text")]
    pub kind: String,
    /// `info`, `warning` or `critical`.
    #[sea_orm(column_type = "Text")]
    pub severity: String,
    /// `active`, `acknowledged` or `resolved`.
    #[sea_orm(column_type = "Text")]
    pub status: String,
    #[sea_orm(column_type = "Text", unique)]
    pub dedup_key: String,
    #[sea_orm(column_type = "Text")]
    pub title: String,
    #[sea_orm(column_type = "Text")]
    pub message: String,
    #[sea_orm(column_type = "Text")]
    pub subject_type: Option<String>,
    #[sea_orm(column_type = "Text")]
    pub subject_id: Option<String>,
    #[sea_orm(column_type = "JsonBinary")]
    pub details: Option<Json>,
    pub first_seen_at: DateTimeUtc,
    pub last_seen_at: DateTimeUtc,
    pub occurrences: i32,
    pub acknowledged_by: Option<Uuid>,
    pub acknowledged_at: Option<DateTimeUtc>,
    pub resolved_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::tenants::Entity",
        from = "Column::TenantId",
        to = "super::tenants::Column::Id",
        on_delete = "Cascade"
    )]
    Tenants,
    #[sea_orm(
        belongs_to = "super::alert_rules::Entity",
        from = "Column::RuleId",
        to = "super::alert_rules::Column::Id",
        on_delete = "SetNull"
    )]
    AlertRules,
    #[sea_orm(
        belongs_to = "super::users::Entity",
        from = "Column::AcknowledgedBy",
        to = "super::users::Column::Id",
        on_delete = "SetNull"
    )]
    AcknowledgedBy,
}

impl Related<super::tenants::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Tenants.def()
    }
}

impl Related<super::alert_rules::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::AlertRules.def()
    }
}

impl Related<super::users::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::AcknowledgedBy.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
