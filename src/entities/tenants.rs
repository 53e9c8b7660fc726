//! `tenants`: the organisations whose API usage Tollgate meters.

use sea_orm::entity::prelude::*;

/// A tenant: its plan, its overrides of the plan's limits and its reporting settings.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "tenants")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    #[sea_orm(column_type = "Text")]
    pub name: String,
    #[sea_orm(column_type = "Text", unique)]
    pub slug: String,
    pub plan_id: Option<Uuid>,
    /// Overrides of the plan's limits; `None` = the plan's.
    pub limit_per_minute: Option<i64>,
    pub limit_per_hour: Option<i64>,
    pub limit_per_day: Option<i64>,
    pub limit_per_month: Option<i64>,
    /// IANA zone used for day and month boundaries in reports.
    #[sea_orm(column_type = "Text")]
    pub timezone: String,
    /// ISO 4217 code.
    #[sea_orm(column_type = "String(StringLen::N(3))")]
    pub currency: String,
    #[sea_orm(column_type = "Text")]
    pub status: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::plans::Entity",
        from = "Column::PlanId",
        to = "super::plans::Column::Id",
        on_delete = "SetNull"
    )]
    Plans,
    #[sea_orm(has_many = "super::memberships::Entity")]
    Memberships,
    #[sea_orm(has_many = "super::api_keys::Entity")]
    ApiKeys,
    #[sea_orm(has_many = "super::quota_requests::Entity")]
    QuotaRequests,
    #[sea_orm(has_many = "super::alert_rules::Entity")]
    AlertRules,
    #[sea_orm(has_many = "super::alerts::Entity")]
    Alerts,
    #[sea_orm(has_many = "super::notifications::Entity")]
    Notifications,
    #[sea_orm(has_many = "super::webhook_endpoints::Entity")]
    WebhookEndpoints,
}

impl Related<super::plans::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Plans.def()
    }
}

impl Related<super::memberships::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Memberships.def()
    }
}

impl Related<super::api_keys::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::ApiKeys.def()
    }
}

impl Related<super::quota_requests::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::QuotaRequests.def()
    }
}

impl Related<super::alert_rules::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::AlertRules.def()
    }
}

impl Related<super::alerts::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Alerts.def()
    }
}

impl Related<super::notifications::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Notifications.def()
    }
}

impl Related<super::webhook_endpoints::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::WebhookEndpoints.def()
    }
}

/// The tenant's users, through `memberships`.
impl Related<super::users::Entity> for Entity {
    fn to() -> RelationDef {
        super::memberships::Relation::Users.def()
    }

    fn via() -> Option<RelationDef> {
        Some(super::memberships::Relation::Tenants.def().rev())
    }
}

impl ActiveModelBehavior for ActiveModel {}
