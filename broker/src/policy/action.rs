//! The actions a policy statement can allow or deny.

use std::fmt;

/// Every action is separate: holding one never implies another (`secrets:rotate` does not
/// grant `secrets:read`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    SecretsRead,
    SecretsWrite,
    SecretsRotate,
    SecretsAdmin,
    SecretsDestroy,
    SecretsReadBreakGlass,
    SecretsList,
    LeasesIssue,
    LeasesRenew,
    LeasesRevoke,
    LeasesRevokeMass,
    LeasesRead,
    BackendsAdmin,
    RolesAdmin,
    AuditRead,
    PoliciesAdmin,
}

impl Action {
    pub const ALL: [Action; 16] = [
        Self::SecretsRead,
        Self::SecretsWrite,
        Self::SecretsRotate,
        Self::SecretsAdmin,
        Self::SecretsDestroy,
        Self::SecretsReadBreakGlass,
        Self::SecretsList,
        Self::LeasesIssue,
        Self::LeasesRenew,
        Self::LeasesRevoke,
        Self::LeasesRevokeMass,
        Self::LeasesRead,
        Self::BackendsAdmin,
        Self::RolesAdmin,
        Self::AuditRead,
        Self::PoliciesAdmin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::SecretsRead => "secrets:read",
            Self::SecretsWrite => "secrets:write",
            Self::SecretsRotate => "secrets:rotate",
            Self::SecretsAdmin => "secrets:admin",
            Self::SecretsDestroy => "secrets:destroy",
            Self::SecretsReadBreakGlass => "secrets:read-break-glass",
            Self::SecretsList => "secrets:list",
            Self::LeasesIssue => "leases:issue",
            Self::LeasesRenew => "leases:renew",
            Self::LeasesRevoke => "leases:revoke",
            Self::LeasesRevokeMass => "leases:revoke-mass",
            Self::LeasesRead => "leases:read",
            Self::BackendsAdmin => "backends:admin",
            Self::RolesAdmin => "roles:admin",
            Self::AuditRead => "audit:read",
            Self::PoliciesAdmin => "policies:admin",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == value)
    }

    /// One bit per action, for matching a statement's action set in one instruction.
    pub fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
