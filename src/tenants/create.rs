//! Creating a tenant: its validated name, a unique URL slug derived from it, the default plan,
//! and the `tenant.create` audit entry, on the caller's transaction.

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use serde_json::json;
use uuid::Uuid;

use crate::{
    audit,
    entities::{plans, tenants},
    error::{Error, Result},
    ids::TenantId,
};

/// Longest tenant name accepted, in characters.
const MAX_NAME: usize = 100;
/// Longest slug derived from a name, before a `-<n>` suffix that makes it unique.
const MAX_SLUG: usize = 48;

/// A tenant's display name: trimmed, 1 to 100 characters, no control characters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantName(String);

impl TenantName {
    /// Parses `raw`; a 422 on `pointer` when it is empty, too long or has control characters.
    pub fn parse(raw: &str, pointer: &str) -> Result<Self> {
        let name = raw.trim();
        if name.is_empty() {
            return Err(Error::invalid(pointer, "must not be empty"));
        }
        if name.chars().count() > MAX_NAME {
            return Err(Error::invalid(
                pointer,
                format!("must be at most {MAX_NAME} characters"),
            ));
        }
        if name.chars().any(char::is_control) {
            return Err(Error::invalid(
                pointer,
                "must not contain control characters",
            ));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `"Acme Demo, Inc."` -> `"acme-demo-inc"`: lowercase ASCII letters and digits joined by
/// single dashes; `"tenant"` when nothing of the name survives.
pub fn slugify(name: &str) -> String {
    let mut slug = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
        if slug.len() >= MAX_SLUG {
            break;
        }
    }
    let slug = slug.trim_end_matches('-');
    if slug.is_empty() {
        "tenant".to_owned()
    } else {
        slug.to_owned()
    }
}

/// Creates the tenant on the default plan (if one exists) and records `tenant.create`.
pub async fn create(
    db: &impl ConnectionTrait,
    ctx: &audit::Context,
    name: &TenantName,
) -> Result<tenants::Model> {
    let tenant = insert(db, name).await?;
    let id = TenantId::from(tenant.id);
    let entry = audit::Entry {
        tenant_id: Some(id),
        action: "tenant.create",
        target_type: "tenant",
        target_id: Some(id.to_string()),
        before: None,
        after: Some(json!({"name": tenant.name, "slug": tenant.slug})),
    };
    audit::record(db, ctx, entry).await?;
    Ok(tenant)
}

/// Inserts the tenant on the default plan without an audit entry: for callers that record
/// the whole operation as one action (sign-up).
pub(crate) async fn insert(db: &impl ConnectionTrait, name: &TenantName) -> Result<tenants::Model> {
    let slug = unique_slug(db, &slugify(name.as_str())).await?;
    let now = Utc::now();
    let tenant = tenants::ActiveModel {
        id: Set(Uuid::now_v7()),
        name: Set(name.as_str().to_owned()),
        slug: Set(slug),
        plan_id: Set(default_plan(db).await?),
        limit_per_minute: Set(None),
        limit_per_hour: Set(None),
        limit_per_day: Set(None),
        limit_per_month: Set(None),
        timezone: Set("UTC".into()),
        currency: Set("USD".into()),
        status: Set("active".into()),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db)
    .await?;
    Ok(tenant)
}

/// `base`, or `base-2`, `base-3`, … whichever is free first.
async fn unique_slug(db: &impl ConnectionTrait, base: &str) -> Result<String> {
    let taken: Vec<String> = tenants::Entity::find()
        .select_only()
        .column(tenants::Column::Slug)
        .filter(tenants::Column::Slug.starts_with(base))
        .into_tuple()
        .all(db)
        .await?;
    let mut candidate = base.to_owned();
    let mut n = 1;
    while taken.contains(&candidate) {
        n += 1;
        candidate = format!("{base}-{n}");
    }
    Ok(candidate)
}

/// The plan new tenants get, if one is marked default (the oldest, if several are).
async fn default_plan(db: &impl ConnectionTrait) -> Result<Option<Uuid>> {
    let plan = plans::Entity::find()
        .filter(plans::Column::IsDefault.eq(true))
        .order_by_asc(plans::Column::CreatedAt)
        .one(db)
        .await?;
    Ok(plan.map(|p| p.id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_lowercase_dashed_and_never_empty() {
        assert_eq!(slugify("Acme Demo, Inc."), "acme-demo-inc");
        assert_eq!(slugify("  --Ünïcode Ltd--  "), "n-code-ltd");
        assert_eq!(slugify("日本"), "tenant");
        assert_eq!(slugify(&"x".repeat(80)).len(), MAX_SLUG);
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(TenantName::parse("  Acme ", "/n").unwrap().as_str(), "Acme");
        assert!(TenantName::parse("   ", "/n").is_err());
        assert!(TenantName::parse(&"x".repeat(101), "/n").is_err());
        assert!(TenantName::parse("a\u{7}b", "/n").is_err());
    }
}
