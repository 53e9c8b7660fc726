//! The audit log: every administrative action, written in the same transaction as the change
//! it records (actor, tenant, action, target, before/after, IP, user agent, time), and the
//! tenant-scoped (or, for platform admins, global) query over it.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
};
use serde_json::Value;
use uuid::Uuid;

use crate::{
    entities::audit_log,
    error::Result,
    ids::{TenantId, UserId},
    pagination::{self, Page},
    tenancy::{AdminScope, Permission, Principal, TenantScope},
};

/// Who did it and from where; built once per request by the HTTP layer.
#[derive(Clone, Debug, Default)]
pub struct Context {
    pub actor_type: &'static str,
    pub actor_id: Option<Uuid>,
    pub actor_label: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
}

impl Context {
    /// A user acting through the API.
    pub fn user(principal: &Principal, ip: Option<String>, user_agent: Option<String>) -> Self {
        Self {
            actor_type: "user",
            actor_id: Some(principal.user_id.0),
            actor_label: principal.email.clone(),
            ip,
            user_agent,
            request_id: None,
        }
    }

    /// A request made before anyone is authenticated (sign-up): where it came from; the
    /// actor is set with [`Context::acting_as`] once the account exists.
    pub fn anonymous(
        ip: Option<String>,
        user_agent: Option<String>,
        request_id: Option<String>,
    ) -> Self {
        Self {
            actor_type: "anonymous",
            ip,
            user_agent,
            request_id,
            ..Self::default()
        }
    }

    /// The same request, attributed to `user`.
    pub fn acting_as(mut self, user: UserId, email: &str) -> Self {
        self.actor_type = "user";
        self.actor_id = Some(user.0);
        self.actor_label = email.to_owned();
        self
    }

    /// The command line or a background job.
    pub fn system(label: &str) -> Self {
        Self {
            actor_type: "system",
            actor_label: label.to_owned(),
            ..Self::default()
        }
    }
}

/// One action to record.
pub struct Entry<'a> {
    pub tenant_id: Option<TenantId>,
    /// `<resource>.<verb>`, e.g. `key.rotate`.
    pub action: &'a str,
    pub target_type: &'a str,
    pub target_id: Option<String>,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

/// Writes one entry; call it with the transaction that makes the change.
pub async fn record(db: &impl ConnectionTrait, ctx: &Context, entry: Entry<'_>) -> Result<()> {
    audit_log::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(entry.tenant_id.map(|t| t.0)),
        actor_type: Set(ctx.actor_type.to_owned()),
        actor_id: Set(ctx.actor_id),
        actor_label: Set(ctx.actor_label.clone()),
        action: Set(entry.action.to_owned()),
        target_type: Set(entry.target_type.to_owned()),
        target_id: Set(entry.target_id),
        before: Set(entry.before),
        after: Set(entry.after),
        ip: Set(ctx.ip.clone()),
        user_agent: Set(ctx.user_agent.clone()),
        request_id: Set(ctx.request_id.clone()),
        created_at: Set(Utc::now()),
    }
    .insert(db)
    .await?;
    Ok(())
}

/// Filters of the audit-log query; all optional.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Exact action (`key.create`) or a resource prefix ending in `.` (`key.`).
    pub action: Option<String>,
    pub actor_id: Option<UserId>,
    pub target_id: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// Platform admins only: restrict to one tenant.
    pub tenant_id: Option<TenantId>,
}

/// Whose entries a caller may read.
pub enum Reader {
    Tenant(TenantScope),
    Admin(AdminScope),
}

impl Reader {
    /// Platform admins read every tenant's entries (optionally one `tenant`); anyone else
    /// reads their active tenant's, and naming another tenant is a 403.
    pub fn for_principal(principal: &Principal, tenant: Option<TenantId>) -> Result<Self> {
        if principal.is_platform_admin {
            return principal.admin_scope().map(Reader::Admin);
        }
        let scope = principal.tenant_scope()?;
        if tenant.is_some_and(|t| t != scope.tenant_id()) {
            return Err(crate::Error::forbidden(
                "Only platform administrators may read another tenant's audit log.",
            ));
        }
        Ok(Reader::Tenant(scope))
    }
}

/// A page of entries, newest first.
pub async fn list(
    db: &impl ConnectionTrait,
    reader: Reader,
    filter: Filter,
    page: Page,
) -> Result<(Vec<audit_log::Model>, bool)> {
    let mut select = audit_log::Entity::find();
    let tenant = match reader {
        Reader::Tenant(scope) => {
            scope.require(Permission::ReadAudit)?;
            Some(scope.tenant_id())
        }
        Reader::Admin(_) => filter.tenant_id,
    };
    if let Some(tenant) = tenant {
        select = select.filter(audit_log::Column::TenantId.eq(tenant.0));
    }
    if let Some(action) = filter.action {
        select = match action.strip_suffix('.') {
            Some(resource) => {
                select.filter(audit_log::Column::Action.starts_with(format!("{resource}.")))
            }
            None => select.filter(audit_log::Column::Action.eq(action)),
        };
    }
    if let Some(actor) = filter.actor_id {
        select = select.filter(audit_log::Column::ActorId.eq(actor.0));
    }
    if let Some(target) = filter.target_id {
        select = select.filter(audit_log::Column::TargetId.eq(target));
    }
    if let Some(from) = filter.from {
        select = select.filter(audit_log::Column::CreatedAt.gte(from));
    }
    if let Some(to) = filter.to {
        select = select.filter(audit_log::Column::CreatedAt.lt(to));
    }
    pagination::fetch(db, select, audit_log::Column::Id, page).await
}
