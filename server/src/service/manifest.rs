//! The corpus manifest: tenants, demo principals and documents with their access metadata, read
//! from TOML. Parsing turns every field into a domain type, so a manifest that loads is valid.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use indexer::{ChunkAcl, Classification, GroupName, SourceStatus, TenantId};
use serde::Deserialize;

use crate::domain::PrincipalSeed;
use crate::domain::Role;
use crate::error::{Error, Result};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    #[serde(default)]
    tenants: Vec<RawTenant>,
    #[serde(default)]
    principals: Vec<RawPrincipal>,
    #[serde(default)]
    documents: Vec<RawDocument>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTenant {
    id: TenantId,
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrincipal {
    id: String,
    display_name: String,
    tenant: TenantId,
    role: String,
    groups: BTreeSet<GroupName>,
    clearance: Classification,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDocument {
    id: String,
    title: String,
    version: u32,
    file: PathBuf,
    /// Plain-text source the PDF is generated from (corpus documents only).
    source: Option<PathBuf>,
    tenant: TenantId,
    owner: String,
    classification: Classification,
    groups: BTreeSet<GroupName>,
    status: SourceStatus,
    effective_from: String,
    expires_at: Option<String>,
    retention: String,
    /// regulation, policy or other (the default).
    #[serde(default)]
    kind: crate::domain::DocumentKind,
}

/// A tenant to create.
#[derive(Debug, Clone)]
pub struct TenantEntry {
    pub id: TenantId,
    pub name: String,
}

/// A document version to ingest.
#[derive(Debug, Clone)]
pub struct DocumentEntry {
    pub id: String,
    pub title: String,
    pub version: u32,
    /// Absolute path of the PDF.
    pub file: PathBuf,
    pub source: Option<PathBuf>,
    pub acl: ChunkAcl,
    pub kind: crate::domain::DocumentKind,
}

/// A validated manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub tenants: Vec<TenantEntry>,
    pub principals: Vec<PrincipalSeed>,
    pub documents: Vec<DocumentEntry>,
}

fn parse_date(doc: &str, field: &str, s: &str) -> Result<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| Error::user(format!("document '{doc}': {field} '{s}' is not a date (expected YYYY-MM-DD)")))
}

/// A document name: lower-case letters, digits and dashes, up to 100 characters.
pub fn valid_document_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Document ids: a name, or `TENANT.name`. Ids with a tenant part belong to that tenant: every
/// document uploaded through the web or the API gets one, so that a tenant's ids never meet
/// another tenant's and "this id is taken" can tell nobody about another tenant's documents.
pub fn valid_document_id(id: &str) -> bool {
    match id.split_once('.') {
        Some((tenant, name)) => TenantId::parse(tenant).is_ok() && valid_document_name(name),
        None => valid_document_name(id),
    }
}

/// The tenant an id names, if it has a tenant part.
pub fn document_id_tenant(id: &str) -> Option<&str> {
    id.split_once('.').map(|(tenant, _)| tenant)
}

/// The id a document uploaded by `tenant` as `requested` gets: `TENANT.name`. A requested id that
/// already carries the tenant's own part is kept; any other tenant part is not a valid name.
pub fn tenant_document_id(tenant: &TenantId, requested: &str) -> Result<String> {
    let name = requested.strip_prefix(tenant.as_str()).and_then(|r| r.strip_prefix('.')).unwrap_or(requested);
    if !valid_document_name(name) {
        return Err(Error::user(format!(
            "'{requested}' is not a valid document id (lower-case letters, digits and dashes, up to 100)."
        )));
    }
    Ok(format!("{tenant}.{name}"))
}

impl Manifest {
    /// Reads and validates a manifest file; relative document paths are resolved against its folder.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::user(format!("cannot read manifest {}: {e}", path.display())))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, base).map_err(|e| match e {
            Error::User(msg) => Error::user(format!("manifest {}: {msg}", path.display())),
            other => other,
        })
    }

    /// Parses manifest text; relative paths are resolved against `base`.
    pub fn parse(text: &str, base: &Path) -> Result<Self> {
        let raw: RawManifest = toml::from_str(text).map_err(|e| Error::user(e.to_string()))?;
        let tenants: BTreeMap<TenantId, String> = raw.tenants.into_iter().map(|t| (t.id, t.name)).collect();
        let known = |t: &TenantId, what: &str| -> Result<()> {
            if tenants.contains_key(t) {
                Ok(())
            } else {
                Err(Error::user(format!("{what}: unknown tenant '{t}' (declare it under [[tenants]])")))
            }
        };

        let mut principals = Vec::with_capacity(raw.principals.len());
        for p in raw.principals {
            known(&p.tenant, &format!("principal '{}'", p.id))?;
            if p.groups.is_empty() {
                return Err(Error::user(format!("principal '{}': groups must not be empty", p.id)));
            }
            principals.push(PrincipalSeed {
                role: p.role.parse::<Role>()?,
                id: p.id,
                display_name: p.display_name,
                tenant: p.tenant,
                groups: p.groups,
                clearance: p.clearance,
            });
        }

        let mut seen = BTreeSet::new();
        let mut documents = Vec::with_capacity(raw.documents.len());
        for d in raw.documents {
            known(&d.tenant, &format!("document '{}'", d.id))?;
            if !valid_document_id(&d.id) {
                return Err(Error::user(format!(
                    "document id '{}' must be lower-case letters, digits and dashes, optionally after its tenant and a dot",
                    d.id
                )));
            }
            if document_id_tenant(&d.id).is_some_and(|t| t != d.tenant.as_str()) {
                return Err(Error::user(format!(
                    "document id '{}' names another tenant than its own ('{}')",
                    d.id, d.tenant
                )));
            }
            if d.version == 0 {
                return Err(Error::user(format!("document '{}': version starts at 1", d.id)));
            }
            if !seen.insert((d.id.clone(), d.version)) {
                return Err(Error::user(format!("document '{}' version {} is listed twice", d.id, d.version)));
            }
            if d.groups.is_empty() {
                return Err(Error::user(format!("document '{}': groups must name at least one group", d.id)));
            }
            let effective_from = parse_date(&d.id, "effective_from", &d.effective_from)?;
            let expires_at = d.expires_at.as_deref().map(|s| parse_date(&d.id, "expires_at", s)).transpose()?;
            if expires_at.is_some_and(|end| end <= effective_from) {
                return Err(Error::user(format!("document '{}': expires_at must be after effective_from", d.id)));
            }
            documents.push(DocumentEntry {
                file: base.join(&d.file),
                source: d.source.map(|s| base.join(s)),
                acl: ChunkAcl {
                    tenant: d.tenant,
                    owner: d.owner,
                    classification: d.classification,
                    allowed_groups: d.groups,
                    status: d.status,
                    effective_from,
                    expires_at,
                    retention_class: d.retention,
                },
                id: d.id,
                title: d.title,
                version: d.version,
                kind: d.kind,
            });
        }
        Ok(Self {
            tenants: tenants.into_iter().map(|(id, name)| TenantEntry { id, name }).collect(),
            principals,
            documents,
        })
    }
}
