//! Helpers shared by the indexer tests.

use std::collections::BTreeSet;
use std::path::PathBuf;

use chrono::NaiveDate;
use indexer::{ChunkAcl, Classification, GroupName, Reader, SourceStatus, TenantId};

pub fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("test date")
}

pub fn groups(names: &[&str]) -> BTreeSet<GroupName> {
    names.iter().map(|g| GroupName::parse(g).expect("group")).collect()
}

pub fn tenant(s: &str) -> TenantId {
    TenantId::parse(s).expect("tenant")
}

pub fn acl(tenant_id: &str, group_names: &[&str], classification: Classification) -> ChunkAcl {
    ChunkAcl {
        tenant: tenant(tenant_id),
        owner: "owner".into(),
        classification,
        allowed_groups: groups(group_names),
        status: SourceStatus::Approved,
        effective_from: date("2024-01-01"),
        expires_at: None,
        retention_class: "standard".into(),
    }
}

pub fn reader(tenant_id: &str, group_names: &[&str], clearance: Classification, as_of: &str) -> Reader {
    Reader { tenant: tenant(tenant_id), groups: groups(group_names), clearance, as_of: date(as_of), documents: None }
}

/// The folder scripts/setup-models.sh installs into. The tests that need it fail, never skip,
/// when it is missing.
pub fn models_dir() -> PathBuf {
    let dir = std::env::var_os("LEXGATE_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.lexgate/models"));
    assert!(
        dir.join("embed/model.onnx").is_file() && dir.join("lib").is_dir(),
        "model files missing in {}: run scripts/setup-models.sh (or scripts/test.sh, which runs it)",
        dir.display()
    );
    dir
}
