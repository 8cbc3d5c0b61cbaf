//! Who is acting and what they may do. Every service call that reads or changes governed data takes
//! an [`Actor`]; the checks live here, not in handlers or templates.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use chrono::NaiveDate;
use indexer::Reader;
use serde::{Deserialize, Serialize};

use crate::error::Error;

/// What a principal may do on the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Asks questions.
    Analyst,
    /// Manages documents of their tenant (and may ask).
    Admin,
    /// Reads governance records and audit (and may ask).
    Reviewer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Analyst => "analyst",
            Role::Admin => "admin",
            Role::Reviewer => "reviewer",
        }
    }
}

impl FromStr for Role {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "analyst" => Ok(Role::Analyst),
            "admin" => Ok(Role::Admin),
            "reviewer" => Ok(Role::Reviewer),
            other => Err(Error::user(format!("unknown role '{other}' (expected analyst, admin or reviewer)"))),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something a principal can try to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    Ask,
    ManageDocuments,
    ReadGovernance,
}

impl Permission {
    /// The scope name a service token grants this permission under.
    pub fn scope(self) -> &'static str {
        match self {
            Permission::Ask => "ask",
            Permission::ManageDocuments => "documents",
            Permission::ReadGovernance => "governance",
        }
    }

    pub fn from_scope(s: &str) -> Result<Self, Error> {
        match s.trim() {
            "ask" => Ok(Permission::Ask),
            "documents" => Ok(Permission::ManageDocuments),
            "governance" => Ok(Permission::ReadGovernance),
            other => Err(Error::user(format!("unknown scope '{other}' (expected ask, documents or governance)"))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Ask => "ask",
            Permission::ManageDocuments => "manage_documents",
            Permission::ReadGovernance => "read_governance",
        }
    }
}

/// The signed-in principal on whose behalf a request runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub principal_id: String,
    pub display_name: String,
    pub tenant: TenantId,
    pub role: Role,
    pub groups: BTreeSet<GroupName>,
    pub clearance: Classification,
    /// Set when the request came with a service token: what the token allows, on top of the
    /// role. `None` for a signed-in user.
    pub token_scopes: Option<Vec<Permission>>,
}

impl Actor {
    /// Whether the actor's role (and token, if any) grants `permission`. Everyone signed in may
    /// ask.
    pub fn may(&self, permission: Permission) -> bool {
        let by_role = match permission {
            Permission::Ask => true,
            Permission::ManageDocuments => self.role == Role::Admin,
            Permission::ReadGovernance => self.role == Role::Reviewer,
        };
        by_role && self.token_scopes.as_ref().is_none_or(|scopes| scopes.contains(&permission))
    }

    /// The identity the indexes filter by, for documents in force on `as_of`.
    pub fn reader(&self, as_of: NaiveDate) -> Reader {
        Reader {
            tenant: self.tenant.clone(),
            groups: self.groups.clone(),
            clearance: self.clearance,
            as_of,
            documents: None,
        }
    }
}

/// A principal to create or update (demo users, or users provisioned from an identity provider).
#[derive(Debug, Clone)]
pub struct PrincipalSeed {
    pub id: String,
    pub display_name: String,
    pub tenant: TenantId,
    pub role: Role,
    pub groups: BTreeSet<GroupName>,
    pub clearance: Classification,
}

/// Random bytes from the operating system, hex-encoded.
pub fn random_hex(bytes: usize) -> Result<String, Error> {
    use std::io::Read;
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|e| Error::internal("reading random bytes", e))?;
    Ok(hex::encode(buf))
}

/// Principal ids of service principals start with this.
pub const SERVICE_PREFIX: &str = "svc:";

/// Today's date (UTC), the default "as of" date of every read.
pub fn today() -> NaiveDate {
    chrono::Utc::now().date_naive()
}

/// The indexer's access and status vocabulary, which requests are parsed into.
pub use indexer::{ChunkAcl, Classification, GroupName, RetrievedHit, SourceStatus, StageScore, TenantId};

/// What a document is, for the obligation register: obligations are extracted from regulations,
/// and controls that meet them are suggested from policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DocumentKind {
    /// A law, regulation, standard or supervisory text that places obligations on the firm.
    Regulation,
    /// The firm's own policy, standard or procedure: where its controls are written.
    Policy,
    #[default]
    Other,
}

impl DocumentKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DocumentKind::Regulation => "regulation",
            DocumentKind::Policy => "policy",
            DocumentKind::Other => "other",
        }
    }
}

impl FromStr for DocumentKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s.trim() {
            "regulation" => Ok(DocumentKind::Regulation),
            "policy" => Ok(DocumentKind::Policy),
            "other" | "" => Ok(DocumentKind::Other),
            other => {
                Err(Error::user(format!("unknown document kind '{other}' (expected regulation, policy or other)")))
            }
        }
    }
}
