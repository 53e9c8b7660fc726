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

/// What a caller may do inside a tenant. The matrix is [`Role::allows`] and
/// `docs/permissions.md`; [`TenantScope::require`] is where it is enforced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permission {
    /// List and read keys, usage and analytics.
    Read,
    /// Create, rename, rotate, activate/deactivate and revoke keys; request quota.
    ManageKeys,
    /// Set key limits (up to the plan's), import keys.
    ManageLimits,
    /// Add members, change roles, remove members.
    ManageMembers,
    /// Read the audit log.
    ReadAudit,
    /// Export usage and cost reports.
    ReadBilling,
}

impl Role {
    /// The permission matrix.
    pub fn allows(self, permission: Permission) -> bool {
        use Permission::*;
        match self {
            Role::Owner | Role::Admin => true,
            Role::Developer => matches!(permission, Read | ManageKeys),
            Role::Finance => matches!(permission, Read | ReadBilling | ReadAudit),
            Role::Viewer => permission == Read,
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
    pub email: String,
    pub is_platform_admin: bool,
    /// The active tenant and the caller's role in it, when the token names one.
    pub membership: Option<(TenantId, Role)>,
}

impl Principal {
    /// The operator at the command line, acting as an owner of `tenant` with platform-admin
    /// powers. Only trusted entry points (the CLI) use this; it has no user row (nil id).
    pub fn system(tenant: TenantId) -> Self {
        Self {
            user_id: UserId(uuid::Uuid::nil()),
            email: "system".to_owned(),
            is_platform_admin: true,
            membership: Some((tenant, Role::Owner)),
        }
    }

    /// The tenant scope every tenant-data query starts from. 403 without an active tenant.
    pub fn tenant_scope(&self) -> Result<TenantScope, Error> {
        match self.membership {
            Some((tenant_id, role)) => Ok(TenantScope {
                tenant_id,
                role,
                user_id: self.user_id,
                platform_admin: self.is_platform_admin,
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
    platform_admin: bool,
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

    /// A platform administrator acting in this tenant (not bound by the plan's ceilings).
    pub fn is_platform_admin(&self) -> bool {
        self.platform_admin
    }

    /// 403 unless the caller's role grants `permission`.
    pub fn require(&self, permission: Permission) -> Result<(), Error> {
        if self.role.allows(permission) {
            return Ok(());
        }
        Err(Error::forbidden(format!(
            "The {} role may not do this.",
            self.role
        )))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `docs/permissions.md` states the matrix; it must say what [`Role::allows`] does.
    #[test]
    fn the_documented_matrix_is_the_code() {
        let doc = include_str!("../docs/permissions.md");
        let permissions = [
            ("Read", Permission::Read),
            ("ManageKeys", Permission::ManageKeys),
            ("ManageLimits", Permission::ManageLimits),
            ("ManageMembers", Permission::ManageMembers),
            ("ReadAudit", Permission::ReadAudit),
            ("ReadBilling", Permission::ReadBilling),
        ];
        let cells = |line: &str| -> Vec<String> {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            cells[2..cells.len() - 1]
                .iter()
                .map(|c| c.to_string())
                .collect()
        };
        for (name, permission) in permissions {
            let row = doc
                .lines()
                .filter(|line| line.starts_with(&format!("| `{name}` | ")))
                .map(cells)
                .find(|row| row.len() == 5 && row.iter().all(|c| c == "yes" || c == "—"))
                .unwrap_or_else(|| panic!("permissions.md has no matrix row for {name}"));
            let documented: Vec<bool> = row.iter().map(|c| c == "yes").collect();
            let actual: Vec<bool> = Role::ALL.iter().map(|r| r.allows(permission)).collect();
            assert_eq!(
                documented, actual,
                "row {name} (owner, admin, developer, finance, viewer)"
            );
        }
    }
}
