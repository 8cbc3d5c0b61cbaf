//! Storage through sea-orm: SQLite as the embedded default, PostgreSQL when the URL names one.
//! This is the source of truth for documents, chunks and their access metadata; the indexes are
//! derived from it. Rows are turned into indexer types here, at the edge.

pub mod audit;
mod audit_log;
mod documents;
pub mod entities;
pub mod governance;
mod jobs;
pub mod obligations;
mod principals;
mod records;

/// The records the store hands to the layers above: plain rows, no query API.
pub use entities::audit_event::Model as AuditEventRow;
pub use entities::deletion_receipt::Model as DeletionReceiptRow;
pub use entities::document_version::Model as DocumentVersionRow;
pub use entities::model_change_record::Model as ChangeRecord;
pub use entities::release_gate::Model as ReleaseGateRow;
pub use entities::service_token::Model as ServiceTokenRow;
pub use entities::session::Model as SessionRow;

use std::collections::{BTreeMap, BTreeSet};

use chrono::Utc;
use indexer::{ChunkAcl, GroupName, SourceStatus, TenantId};
use migrations::{Migrator, MigratorTrait};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectOptions, Database, DatabaseConnection, DbBackend, EntityTrait, QueryFilter,
    QueryOrder, TransactionTrait,
};

use crate::domain::{Actor, PrincipalSeed};
use crate::error::{Error, Result};
use crate::store::entities::{
    audit_event, audit_head, chunk, chunk_embedding, deletion_receipt, document, document_version, ingestion_job,
    principal, principal_group, release_gate, service_token, session, tenant,
};

/// A handle on the database. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Storage {
    db: DatabaseConnection,
}

/// One document version with its chunks, written in a single transaction.
#[derive(Debug, Clone)]
pub struct NewVersion {
    pub document_id: String,
    pub title: String,
    pub version: u32,
    pub acl: ChunkAcl,
    pub file_name: String,
    pub file_sha256: String,
    pub page_count: u32,
    pub chunks: Vec<indexer::Chunk>,
    /// One vector per chunk, in order, when dense retrieval is on; empty otherwise.
    pub embeddings: Vec<Vec<f32>>,
    /// sha256 of the embedding model that produced `embeddings`.
    pub embedding_model: String,
    /// What ingestion found besides the text.
    pub scan: VersionScan,
    pub kind: crate::domain::DocumentKind,
    /// The obligations found in a regulation's text, written in the version's transaction.
    pub obligations: Vec<NewObligation>,
}

/// An obligation found in a version of a regulation, as ingestion writes it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewObligation {
    pub ordinal: u32,
    /// Stays the same across versions while the obligation is recognised.
    pub key: String,
    pub chunk_id: String,
    pub page: u32,
    pub heading_path: String,
    /// Byte offsets of `text` in the chunk's text.
    pub start: usize,
    pub end: usize,
    pub text: String,
    pub addressee: String,
    pub modality: String,
    pub action: String,
    pub timing: Option<String>,
    pub timing_iso: Option<String>,
    pub conditions: Option<String>,
    /// `new`, `changed`, `unchanged` or `removed` against the previous version.
    pub change: String,
    pub previous_text: Option<String>,
    /// `proposed`, or the review state an unchanged obligation keeps.
    pub status: String,
    pub status_reason: Option<String>,
    pub owner: Option<String>,
    pub due_date: Option<chrono::NaiveDate>,
    /// The detector that found it (`rules-v1` or the classifier's sha256).
    pub detector: String,
    /// The previous version's obligation this one continues (unchanged or changed): its
    /// confirmed and suggested controls carry over.
    pub previous_id: Option<String>,
}

/// What ingestion found in a version besides its text: personal data counted by kind (never the
/// values) and pages without extractable text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VersionScan {
    pub pii: indexer::PiiCounts,
    pub pages_without_text: u32,
}

/// A stored vector with what the dense index needs to filter it.
#[derive(Debug, Clone)]
pub struct StoredVector {
    pub chunk_id: String,
    pub document_id: String,
    pub version: u32,
    pub acl: ChunkAcl,
    pub vector: Vec<f32>,
}

/// Sets a document's title to its latest stored version's, the name administrators list it by.
async fn refresh_document_title(txn: &sea_orm::DatabaseTransaction, document_id: &str) -> Result<()> {
    use sea_orm::sea_query::Expr;
    let latest = document_version::Entity::find()
        .filter(document_version::Column::DocumentId.eq(document_id.to_owned()))
        .order_by_desc(document_version::Column::Version)
        .one(txn)
        .await?;
    if let Some(latest) = latest {
        document::Entity::update_many()
            .col_expr(document::Column::Title, Expr::value(latest.title))
            .filter(document::Column::Id.eq(document_id.to_owned()))
            .exec(txn)
            .await?;
    }
    Ok(())
}

/// The file of a `sqlite://` URL, without its query.
pub fn sqlite_path(url: &str) -> Option<std::path::PathBuf> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && path != ":memory:").then(|| std::path::PathBuf::from(path))
}

fn plain_io(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        _ => e.to_string(),
    }
}

/// The innermost message of a database error, once.
fn root_cause(e: &sea_orm::DbErr) -> String {
    let mut source: &dyn std::error::Error = e;
    while let Some(inner) = source.source() {
        source = inner;
    }
    source.to_string()
}

impl StoredVector {
    /// The vector as the dense index takes it.
    pub fn as_item(&self) -> indexer::DenseItem<'_> {
        indexer::DenseItem {
            chunk_id: &self.chunk_id,
            document_id: &self.document_id,
            version: self.version,
            acl: &self.acl,
            vector: &self.vector,
        }
    }
}

/// sha256 of a chunk's text, the key of the embedding cache.
pub fn text_sha256(text: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

fn encode_vector(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// A chunk's vector as stored, with the model and text hash that key the embedding cache.
fn embedding_row(model: &str, chunk_id: &str, text: &str, vector: &[f32]) -> chunk_embedding::ActiveModel {
    chunk_embedding::ActiveModel {
        chunk_id: Set(chunk_id.to_owned()),
        model: Set(model.to_owned()),
        text_sha256: Set(text_sha256(text)),
        dimension: Set(i32::try_from(vector.len()).unwrap_or(i32::MAX)),
        vector: Set(encode_vector(vector)),
    }
}

fn decode_vector(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

/// A chunk read back from the database, with its parsed access metadata.
#[derive(Debug, Clone)]
pub struct StoredChunk {
    pub id: String,
    pub document_id: String,
    pub title: String,
    pub version: u32,
    pub page: u32,
    pub char_start: u32,
    pub char_end: u32,
    pub heading_path: String,
    pub text: String,
    pub acl: ChunkAcl,
}

/// What [`Storage::compact_after_deletion`] did, and the copies it cannot reach.
#[derive(Debug, Clone, Default)]
pub struct Compaction {
    pub done: Vec<String>,
    pub remains: Vec<String>,
}

/// What a deletion removed from the database.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct DatabaseRemoval {
    pub versions: u64,
    pub chunks: u64,
    pub embeddings: u64,
    /// The document row went too, because no version is left.
    pub document_removed: bool,
}

/// A stored chunk with what the BM25 index needs.
#[derive(Debug, Clone)]
pub struct IndexableChunk {
    pub document_id: String,
    /// The title of the chunk's version, which BM25 searches as a field of its own.
    pub title: String,
    pub version: u32,
    pub acl: ChunkAcl,
    pub chunk: indexer::Chunk,
}

impl IndexableChunk {
    /// The chunk as the BM25 index takes it.
    pub fn indexed(&self) -> indexer::IndexedChunk<'_> {
        indexer::IndexedChunk {
            chunk: &self.chunk,
            document_id: &self.document_id,
            title: &self.title,
            version: self.version,
            acl: &self.acl,
        }
    }
}

/// A row of the documents list.
#[derive(Debug, Clone)]
pub struct DocumentSummary {
    pub id: String,
    pub title: String,
    pub version: u32,
    pub status: String,
    pub classification: String,
    pub chunk_count: usize,
}

/// An event for the audit log.
#[derive(Debug, Clone)]
pub struct AuditRecord {
    pub actor: String,
    pub tenant: Option<String>,
    pub action: String,
    pub outcome: String,
    pub detail: serde_json::Value,
}

impl AuditRecord {
    /// An event done by `actor`, in the actor's tenant.
    pub fn by(actor: &Actor, action: &str, outcome: &str, detail: serde_json::Value) -> Self {
        Self {
            actor: actor.principal_id.clone(),
            tenant: Some(actor.tenant.to_string()),
            action: action.to_owned(),
            outcome: outcome.to_owned(),
            detail,
        }
    }

    /// An attempt by `actor` on another tenant's records. It is recorded under no tenant, so
    /// neither tenant's reviewers see it (the actor's would learn the other tenant's ids and that
    /// they exist, the other's would learn the actor's identity); a platform reviewer does.
    pub fn cross_tenant(actor: &Actor, action: &str, detail: serde_json::Value) -> Self {
        Self { tenant: None, ..Self::by(actor, action, "denied", detail) }
    }
}

fn version_row_id(document_id: &str, version: u32) -> String {
    format!("{document_id}@{version}")
}

fn join_groups(groups: &BTreeSet<GroupName>) -> String {
    groups.iter().map(GroupName::as_str).collect::<Vec<_>>().join(",")
}

fn parse_groups(s: &str) -> Result<BTreeSet<GroupName>> {
    s.split(',').filter(|g| !g.is_empty()).map(|g| GroupName::parse(g).map_err(Error::from)).collect()
}

fn acl_of(r: &chunk::Model) -> Result<ChunkAcl> {
    Ok(ChunkAcl {
        tenant: TenantId::parse(&r.tenant_id)?,
        owner: r.owner.clone(),
        classification: r.classification.parse()?,
        allowed_groups: parse_groups(&r.allowed_groups)?,
        status: r.status.parse::<SourceStatus>()?,
        effective_from: r.effective_from,
        expires_at: r.expires_at,
        retention_class: r.retention_class.clone(),
    })
}

fn indexable(r: chunk::Model, titles: &std::collections::HashMap<String, String>) -> Result<IndexableChunk> {
    Ok(IndexableChunk {
        acl: acl_of(&r)?,
        title: titles.get(&r.version_id).cloned().unwrap_or_default(),
        document_id: r.document_id,
        version: to_u32(r.version),
        chunk: indexer::Chunk {
            id: r.id,
            ordinal: to_u32(r.ordinal),
            page: to_u32(r.page),
            char_start: to_u32(r.char_start),
            char_end: to_u32(r.char_end),
            heading_path: r.heading_path,
            text: r.text,
        },
    })
}

fn to_i32(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn to_u32(n: i32) -> u32 {
    u32::try_from(n).unwrap_or(0)
}

impl Storage {
    /// Connects and brings the schema up to date.
    pub async fn connect(url: &str) -> Result<Self> {
        let sqlite_file = sqlite_path(url);
        if let Some(dir) =
            sqlite_file.as_deref().and_then(std::path::Path::parent).filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir).map_err(|e| {
                Error::user(format!("The data folder {} cannot be created: {}.", dir.display(), plain_io(&e)))
            })?;
        }
        let mut options = ConnectOptions::new(url.to_owned());
        // A database that is down answers "unavailable" within two seconds instead of holding
        // every request for the pool's default half minute.
        options
            .sqlx_logging(false)
            .max_connections(8)
            .acquire_timeout(std::time::Duration::from_secs(2))
            .connect_timeout(std::time::Duration::from_secs(2));
        if sqlite_file.is_some() {
            // Deleted rows are overwritten with zeros, not left in free pages of the file: a
            // deletion receipt has to be true of the bytes on disk.
            options.map_sqlx_sqlite_opts(|o| o.pragma("secure_delete", "ON"));
        }
        let db = Database::connect(options).await.map_err(|e| match &sqlite_file {
            Some(path) => Error::user(format!("The database {} cannot be opened: {}.", path.display(), root_cause(&e))),
            None => Error::Storage(e),
        })?;
        Migrator::up(&db, None).await?;
        let storage = Self { db };
        let sealed = storage.seal_audit().await?;
        if sealed > 0 {
            tracing::info!(sealed, "audit events written before the hash chain were sealed into it");
        }
        Ok(storage)
    }

    /// Starts a transaction that writes. On SQLite it takes the write lock at `BEGIN`
    /// (IMMEDIATE), waiting its turn behind other writers; a deferred transaction that reads and
    /// then writes would instead fail at once with "database is locked" whenever another
    /// connection commits in between, since SQLite cannot wait there without risking a deadlock.
    /// PostgreSQL ignores the mode.
    pub(crate) async fn begin_write(&self) -> Result<sea_orm::DatabaseTransaction> {
        let options = sea_orm::TransactionOptions {
            sqlite_transaction_mode: Some(sea_orm::SqliteTransactionMode::Immediate),
            ..Default::default()
        };
        Ok(self.db.begin_with_options(options).await?)
    }

    /// The connection, for modules that keep their own queries beside this one (governance).
    pub(crate) fn connection(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Which backend this is ("sqlite" or "postgres"), for logs and health pages.
    pub fn backend_name(&self) -> &'static str {
        match self.db.get_database_backend() {
            DbBackend::Sqlite => "sqlite",
            DbBackend::Postgres => "postgres",
            _ => "other",
        }
    }

    /// Closes the connection pool (at shutdown); every later query fails.
    pub async fn close(&self) -> Result<()> {
        self.db.close_by_ref().await.map_err(Error::from)
    }

    /// Checks the database answers.
    pub async fn ping(&self) -> Result<()> {
        self.db.ping().await.map_err(Error::from)
    }

    /// Checks the database answers real queries: the audit chain's head and one stored chunk are
    /// read (a damaged SQLite file still accepts connections, and fails here).
    pub async fn check_readable(&self) -> Result<()> {
        use sea_orm::QuerySelect;
        audit_head::Entity::find_by_id(1)
            .one(&self.db)
            .await?
            .ok_or_else(|| Error::Internal("the audit chain head is missing".into()))?;
        chunk::Entity::find().limit(1).all(&self.db).await?;
        Ok(())
    }
}
