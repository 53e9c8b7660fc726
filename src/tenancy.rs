//! Tenancy as types: [`Role`], the [`Principal`] the auth extractor establishes, and the
//! scopes ([`TenantScope`], [`AdminScope`]) every store function on tenant data requires.

use std::{fmt, str::FromStr};

use crate::{
    error::Error,
    ids::{TenantId, UserId},
};

/// A member's role in a tenant, from most to least privileged.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Owner,
    Admin,
    Developer,
    Finance,
    Viewer,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Owner,
        Role::Admin,
        Role::Developer,
        Role::Finance,
        Role::Viewer,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Developer => "developer",
            Role::Finance => "finance",
            Role::Viewer => "viewer",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == s)
            .ok_or_else(|| format!("unknown role `{s}`"))
    }
}

/// Who is calling, as established from a verified access token and the current membership.
#[derive(Clone, Debug)]
pub struct Principal {
    pub user_id: UserId,
    pub is_platform_admin: bool,
    /// The active tenant and the caller's role in it, when the token names one.
    pub membership: Option<(TenantId, Role)>,
}

impl Principal {
    /// The tenant scope every tenant-data query starts from. 403 without an active tenant.
    pub fn tenant_scope(&self) -> Result<TenantScope, Error> {
        match self.membership {
            Some((tenant_id, role)) => Ok(TenantScope {
                tenant_id,
                role,
                user_id: self.user_id,
            }),
            None => Err(Error::forbidden(
                "This token has no active tenant; log in to a tenant.",
            )),
        }
    }

    /// The cross-tenant scope of platform administrators. 403 for everyone else.
    pub fn admin_scope(&self) -> Result<AdminScope, Error> {
        if self.is_platform_admin {
            Ok(AdminScope {
                user_id: self.user_id,
            })
        } else {
            Err(Error::forbidden(
                "This operation requires a platform administrator.",
            ))
        }
    }
}

/// Proof that the caller acts inside one tenant with a role. Built only from a [`Principal`],
/// which only the HTTP auth extractor builds: store functions on tenant data take this and
/// filter by its tenant, so a handler cannot reach another tenant's rows.
#[derive(Clone, Copy, Debug)]
pub struct TenantScope {
    tenant_id: TenantId,
    role: Role,
    user_id: UserId,
}

impl TenantScope {
    pub fn tenant_id(&self) -> TenantId {
        self.tenant_id
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn user_id(&self) -> UserId {
        self.user_id
    }
}

/// Proof that the caller is a platform administrator (may read and act across tenants).
#[derive(Clone, Copy, Debug)]
pub struct AdminScope {
    user_id: UserId,
}

impl AdminScope {
    pub fn user_id(&self) -> UserId {
        self.user_id
    }
}
