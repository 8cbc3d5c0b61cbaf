//! Storage through sea-orm: SQLite as the embedded default, PostgreSQL when the URL names one.
//! This is the source of truth for documents, chunks and their access metadata; the indexes are
//! derived from it. Rows are turned into indexer types here, at the edge.

pub mod audit;
pub mod entities;
pub mod governance;

/// The records the store hands to the layers above: plain rows, no query API.
pub use entities::audit_event::Model as AuditEventRow;
pub use entities::deletion_receipt::Model as DeletionReceiptRow;
pub use entities::document_version::Model as DocumentVersionRow;
pub use entities::model_change_record::Model as ChangeRecord;
pub use entities::release_gate::Model as ReleaseGateRow;
pub use entities::service_token::Model as ServiceTokenRow;
pub use entities::session::Model as SessionRow;

use std::collections::BTreeSet;

use chrono::{NaiveDate, Utc};
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

/// Locks the audit head row for the rest of the transaction and reads it.
async fn lock_audit_head(txn: &sea_orm::DatabaseTransaction) -> Result<audit_head::Model> {
    use sea_orm::sea_query::Expr;
    audit_head::Entity::update_many()
        .col_expr(audit_head::Column::LastId, Expr::col(audit_head::Column::LastId))
        .filter(audit_head::Column::Id.eq(1))
        .exec(txn)
        .await?;
    audit_head::Entity::find_by_id(1)
        .one(txn)
        .await?
        .ok_or_else(|| Error::Internal("the audit chain head is missing".into()))
}

async fn set_audit_head(txn: &sea_orm::DatabaseTransaction, last_id: i64, last_hash: String) -> Result<()> {
    audit_head::Entity::update(audit_head::ActiveModel {
        id: Set(1),
        last_id: Set(last_id),
        last_hash: Set(last_hash),
    })
    .exec(txn)
    .await?;
    Ok(())
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
    pub version: u32,
    pub acl: ChunkAcl,
    pub chunk: indexer::Chunk,
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

fn indexable(r: chunk::Model) -> Result<IndexableChunk> {
    Ok(IndexableChunk {
        acl: acl_of(&r)?,
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

    pub async fn ensure_tenant(&self, id: &TenantId, name: &str) -> Result<()> {
        let row =
            tenant::ActiveModel { id: Set(id.to_string()), name: Set(name.to_owned()), created_at: Set(Utc::now()) };
        tenant::Entity::insert(row)
            .on_conflict(OnConflict::column(tenant::Column::Id).update_column(tenant::Column::Name).to_owned())
            .exec(&self.db)
            .await?;
        Ok(())
    }

    pub async fn tenant_exists(&self, id: &TenantId) -> Result<bool> {
        Ok(tenant::Entity::find_by_id(id.to_string()).one(&self.db).await?.is_some())
    }

    /// Creates or updates a principal and replaces its group memberships.
    pub async fn upsert_principal(&self, p: &PrincipalSeed) -> Result<()> {
        let txn = self.db.begin().await?;
        let row = principal::ActiveModel {
            id: Set(p.id.clone()),
            tenant_id: Set(p.tenant.to_string()),
            display_name: Set(p.display_name.clone()),
            role: Set(p.role.to_string()),
            clearance: Set(p.clearance.to_string()),
            created_at: Set(Utc::now()),
        };
        principal::Entity::insert(row)
            .on_conflict(
                OnConflict::column(principal::Column::Id)
                    .update_columns([
                        principal::Column::TenantId,
                        principal::Column::DisplayName,
                        principal::Column::Role,
                        principal::Column::Clearance,
                    ])
                    .to_owned(),
            )
            .exec(&txn)
            .await?;
        principal_group::Entity::delete_many()
            .filter(principal_group::Column::PrincipalId.eq(p.id.clone()))
            .exec(&txn)
            .await?;
        if !p.groups.is_empty() {
            let rows = p.groups.iter().map(|g| principal_group::ActiveModel {
                principal_id: Set(p.id.clone()),
                group_name: Set(g.to_string()),
            });
            principal_group::Entity::insert_many(rows).exec(&txn).await?;
        }
        txn.commit().await?;
        Ok(())
    }

    /// Loads a principal as an [`Actor`], or `None` when unknown.
    pub async fn actor(&self, principal_id: &str) -> Result<Option<Actor>> {
        let Some(row) = principal::Entity::find_by_id(principal_id.to_owned()).one(&self.db).await? else {
            return Ok(None);
        };
        let groups = principal_group::Entity::find()
            .filter(principal_group::Column::PrincipalId.eq(principal_id.to_owned()))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|g| GroupName::parse(&g.group_name).map_err(Error::from))
            .collect::<Result<BTreeSet<_>>>()?;
        Ok(Some(Actor {
            principal_id: row.id,
            display_name: row.display_name,
            tenant: TenantId::parse(&row.tenant_id)?,
            role: row.role.parse()?,
            groups,
            clearance: row.clearance.parse()?,
            token_scopes: None,
        }))
    }

    /// Stores a release-gate report.
    pub async fn insert_release_gate(&self, row: release_gate::Model) -> Result<()> {
        release_gate::Entity::insert(release_gate::ActiveModel::from(row)).exec(&self.db).await?;
        Ok(())
    }

    /// The most recent release-gate report, if any.
    pub async fn latest_release_gate(&self) -> Result<Option<release_gate::Model>> {
        Ok(release_gate::Entity::find().order_by_desc(release_gate::Column::CreatedAt).one(&self.db).await?)
    }

    /// Stores a service token (its SHA-256 only) for an existing principal.
    pub async fn insert_token(&self, row: service_token::Model) -> Result<()> {
        service_token::Entity::insert(service_token::ActiveModel::from(row)).exec(&self.db).await?;
        Ok(())
    }

    /// The token row whose hash is `token_sha256`.
    pub async fn token_by_hash(&self, token_sha256: &str) -> Result<Option<service_token::Model>> {
        Ok(service_token::Entity::find()
            .filter(service_token::Column::TokenSha256.eq(token_sha256.to_owned()))
            .one(&self.db)
            .await?)
    }

    /// The tokens of a tenant, newest first.
    pub async fn tokens(&self, tenant: &TenantId) -> Result<Vec<service_token::Model>> {
        Ok(service_token::Entity::find()
            .filter(service_token::Column::TenantId.eq(tenant.to_string()))
            .order_by_desc(service_token::Column::IssuedAt)
            .all(&self.db)
            .await?)
    }

    /// Revokes a token of `tenant`; false when there is no such unrevoked token.
    pub async fn revoke_token(&self, id: &str, tenant: &TenantId) -> Result<bool> {
        use sea_orm::sea_query::Expr;
        let done = service_token::Entity::update_many()
            .col_expr(service_token::Column::RevokedAt, Expr::value(Some(Utc::now())))
            .filter(service_token::Column::Id.eq(id.to_owned()))
            .filter(service_token::Column::TenantId.eq(tenant.to_string()))
            .filter(service_token::Column::RevokedAt.is_null())
            .exec(&self.db)
            .await?;
        Ok(done.rows_affected == 1)
    }

    /// Stores a new browser session (its token's SHA-256 only).
    pub async fn insert_session(&self, row: session::Model) -> Result<()> {
        session::Entity::insert(session::ActiveModel::from(row)).exec(&self.db).await?;
        Ok(())
    }

    /// The session whose token hashes to `token_sha256`, ended or not.
    pub async fn session_by_hash(&self, token_sha256: &str) -> Result<Option<session::Model>> {
        Ok(session::Entity::find()
            .filter(session::Column::TokenSha256.eq(token_sha256.to_owned()))
            .one(&self.db)
            .await?)
    }

    /// Records activity on an open session.
    pub async fn touch_session(&self, id: &str, at: chrono::DateTime<Utc>) -> Result<()> {
        use sea_orm::sea_query::Expr;
        session::Entity::update_many()
            .col_expr(session::Column::LastSeenAt, Expr::value(at))
            .filter(session::Column::Id.eq(id.to_owned()))
            .filter(session::Column::EndedAt.is_null())
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Ends an open session of `tenant`; false when there is no such open session.
    pub async fn end_session(&self, id: &str, tenant: &str, ended_by: &str, reason: &str) -> Result<bool> {
        use sea_orm::sea_query::Expr;
        let done = session::Entity::update_many()
            .col_expr(session::Column::EndedAt, Expr::value(Some(Utc::now())))
            .col_expr(session::Column::EndedBy, Expr::value(Some(ended_by.to_owned())))
            .col_expr(session::Column::EndReason, Expr::value(Some(reason.to_owned())))
            .filter(session::Column::Id.eq(id.to_owned()))
            .filter(session::Column::TenantId.eq(tenant.to_owned()))
            .filter(session::Column::EndedAt.is_null())
            .exec(&self.db)
            .await?;
        Ok(done.rows_affected == 1)
    }

    /// The sessions of a tenant, or of one principal in it, newest first; `open_after` leaves out
    /// sessions that ended or expired before it.
    pub async fn sessions(
        &self,
        tenant: &str,
        principal: Option<&str>,
        open_after: chrono::DateTime<Utc>,
    ) -> Result<Vec<session::Model>> {
        let mut q = session::Entity::find()
            .filter(session::Column::TenantId.eq(tenant.to_owned()))
            .filter(session::Column::EndedAt.is_null())
            .filter(session::Column::ExpiresAt.gt(open_after));
        if let Some(p) = principal {
            q = q.filter(session::Column::PrincipalId.eq(p.to_owned()));
        }
        Ok(q.order_by_desc(session::Column::CreatedAt).all(&self.db).await?)
    }

    /// Every principal except service principals, ordered by tenant then id (the development
    /// sign-in lists them).
    pub async fn list_actors(&self) -> Result<Vec<Actor>> {
        let rows = principal::Entity::find()
            .order_by_asc(principal::Column::TenantId)
            .order_by_asc(principal::Column::Id)
            .all(&self.db)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows.into_iter().filter(|r| !r.id.starts_with(crate::domain::SERVICE_PREFIX)) {
            if let Some(actor) = self.actor(&row.id).await? {
                out.push(actor);
            }
        }
        Ok(out)
    }

    /// The checksum of a stored version, if that version exists.
    pub async fn version_checksum(&self, document_id: &str, version: u32) -> Result<Option<String>> {
        Ok(document_version::Entity::find_by_id(version_row_id(document_id, version))
            .one(&self.db)
            .await?
            .map(|v| v.file_sha256))
    }

    /// The tenant a document belongs to, if it exists.
    pub async fn document_tenant(&self, document_id: &str) -> Result<Option<String>> {
        Ok(document::Entity::find_by_id(document_id.to_owned()).one(&self.db).await?.map(|d| d.tenant_id))
    }

    /// Writes a document version and all its chunks, or nothing.
    pub async fn insert_version(&self, v: &NewVersion) -> Result<()> {
        let txn = self.db.begin().await?;
        let now = Utc::now();
        let doc = document::ActiveModel {
            id: Set(v.document_id.clone()),
            tenant_id: Set(v.acl.tenant.to_string()),
            title: Set(v.title.clone()),
            owner: Set(v.acl.owner.clone()),
            created_at: Set(now),
        };
        document::Entity::insert(doc)
            .on_conflict(OnConflict::column(document::Column::Id).update_columns([document::Column::Owner]).to_owned())
            .exec(&txn)
            .await?;
        let version_id = version_row_id(&v.document_id, v.version);
        let groups = join_groups(&v.acl.allowed_groups);
        document_version::Entity::insert(document_version::ActiveModel {
            id: Set(version_id.clone()),
            document_id: Set(v.document_id.clone()),
            version: Set(to_i32(v.version)),
            classification: Set(v.acl.classification.to_string()),
            allowed_groups: Set(groups.clone()),
            status: Set(v.acl.status.to_string()),
            effective_from: Set(v.acl.effective_from),
            expires_at: Set(v.acl.expires_at),
            retention_class: Set(v.acl.retention_class.clone()),
            file_name: Set(v.file_name.clone()),
            file_sha256: Set(v.file_sha256.clone()),
            page_count: Set(to_i32(v.page_count)),
            ingested_at: Set(now),
            scan_summary: Set(serde_json::to_string(&v.scan).map_err(|e| Error::internal("serialising a scan", e))?),
            title: Set(v.title.clone()),
        })
        .exec(&txn)
        .await?;
        refresh_document_title(&txn, &v.document_id).await?;
        for batch in v.chunks.chunks(200) {
            let rows = batch.iter().map(|c| chunk::ActiveModel {
                id: Set(c.id.clone()),
                version_id: Set(version_id.clone()),
                document_id: Set(v.document_id.clone()),
                version: Set(to_i32(v.version)),
                ordinal: Set(to_i32(c.ordinal)),
                page: Set(to_i32(c.page)),
                char_start: Set(to_i32(c.char_start)),
                char_end: Set(to_i32(c.char_end)),
                heading_path: Set(c.heading_path.clone()),
                text: Set(c.text.clone()),
                tenant_id: Set(v.acl.tenant.to_string()),
                owner: Set(v.acl.owner.clone()),
                classification: Set(v.acl.classification.to_string()),
                allowed_groups: Set(groups.clone()),
                status: Set(v.acl.status.to_string()),
                effective_from: Set(v.acl.effective_from),
                expires_at: Set(v.acl.expires_at),
                retention_class: Set(v.acl.retention_class.clone()),
            });
            chunk::Entity::insert_many(rows).exec(&txn).await?;
        }
        if !v.embeddings.is_empty() {
            if v.embeddings.len() != v.chunks.len() {
                return Err(Error::Internal("one embedding per chunk is required".into()));
            }
            let pairs: Vec<_> = v.chunks.iter().zip(&v.embeddings).collect();
            for batch in pairs.chunks(200) {
                let rows = batch.iter().map(|(c, e)| embedding_row(&v.embedding_model, &c.id, &c.text, e));
                chunk_embedding::Entity::insert_many(rows).exec(&txn).await?;
            }
        }
        txn.commit().await?;
        Ok(())
    }

    /// Stored vectors for texts already embedded by `model`, keyed by text hash, so unchanged
    /// text (a re-uploaded version, a repeated paragraph) is never embedded twice.
    pub async fn cached_embeddings(
        &self,
        model: &str,
        hashes: &[String],
    ) -> Result<std::collections::HashMap<String, Vec<f32>>> {
        let mut out = std::collections::HashMap::new();
        for batch in hashes.chunks(500) {
            let rows = chunk_embedding::Entity::find()
                .filter(chunk_embedding::Column::Model.eq(model.to_owned()))
                .filter(chunk_embedding::Column::TextSha256.is_in(batch.to_vec()))
                .all(&self.db)
                .await?;
            for r in rows {
                out.entry(r.text_sha256).or_insert_with(|| decode_vector(&r.vector));
            }
        }
        Ok(out)
    }

    /// Every stored vector of `model` with its chunk's access metadata: what the dense index is
    /// built from at start-up and by `reindex`.
    pub async fn vectors(&self, model: &str) -> Result<Vec<StoredVector>> {
        let embeddings: std::collections::HashMap<String, Vec<u8>> = chunk_embedding::Entity::find()
            .filter(chunk_embedding::Column::Model.eq(model.to_owned()))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|e| (e.chunk_id, e.vector))
            .collect();
        let mut out = Vec::with_capacity(embeddings.len());
        for r in chunk::Entity::find().order_by_asc(chunk::Column::Id).all(&self.db).await? {
            let Some(bytes) = embeddings.get(&r.id) else { continue };
            out.push(StoredVector {
                acl: acl_of(&r)?,
                vector: decode_vector(bytes),
                chunk_id: r.id,
                document_id: r.document_id,
                version: to_u32(r.version),
            });
        }
        Ok(out)
    }

    /// Removes one version and its chunks (used to undo a write whose indexing failed).
    pub async fn delete_version(&self, document_id: &str, version: u32) -> Result<()> {
        self.delete_versions(document_id, &[version]).await.map(|_| ())
    }

    /// Removes versions of a document with their chunks and embeddings in one transaction, and
    /// the document itself when no version is left. Returns what was removed.
    pub async fn delete_versions(&self, document_id: &str, versions: &[u32]) -> Result<DatabaseRemoval> {
        use sea_orm::sea_query::Query;
        let version_ids: Vec<String> = versions.iter().map(|v| version_row_id(document_id, *v)).collect();
        let txn = self.db.begin().await?;
        let chunk_ids_of_versions = Query::select()
            .column(chunk::Column::Id)
            .from(chunk::Entity)
            .and_where(chunk::Column::VersionId.is_in(version_ids.clone()))
            .to_owned();
        let embeddings = chunk_embedding::Entity::delete_many()
            .filter(chunk_embedding::Column::ChunkId.in_subquery(chunk_ids_of_versions))
            .exec(&txn)
            .await?
            .rows_affected;
        let chunks = chunk::Entity::delete_many()
            .filter(chunk::Column::VersionId.is_in(version_ids.clone()))
            .exec(&txn)
            .await?
            .rows_affected;
        let removed_versions = document_version::Entity::delete_many()
            .filter(document_version::Column::Id.is_in(version_ids))
            .exec(&txn)
            .await?
            .rows_affected;
        let remaining = document_version::Entity::find()
            .filter(document_version::Column::DocumentId.eq(document_id.to_owned()))
            .one(&txn)
            .await?;
        let document_removed = if remaining.is_none() {
            document::Entity::delete_by_id(document_id.to_owned()).exec(&txn).await?.rows_affected > 0
        } else {
            // A deleted version's title must not outlive it on the document.
            refresh_document_title(&txn, document_id).await?;
            false
        };
        txn.commit().await?;
        Ok(DatabaseRemoval { versions: removed_versions, chunks, embeddings, document_removed })
    }

    /// Makes a deletion physical as far as this database can: SQLite (opened with
    /// `secure_delete`, so freed content is zeroed) folds its write-ahead log, which still holds
    /// page images written before the deletion, back into the file and truncates it; PostgreSQL
    /// vacuums the tables that held the rows, so their dead tuples are removed from the pages.
    /// Returns what was done and what stays, in words for the receipt.
    pub async fn compact_after_deletion(&self) -> Result<Compaction> {
        use sea_orm::ConnectionTrait;
        match self.db.get_database_backend() {
            DbBackend::Sqlite => {
                self.db.execute_unprepared("PRAGMA wal_checkpoint(TRUNCATE)").await?;
                Ok(Compaction {
                    done: vec![
                        "sqlite: deleted rows overwritten with zeros (secure_delete); write-ahead log checkpointed and truncated"
                            .to_owned(),
                    ],
                    remains: Vec::new(),
                })
            }
            _ => {
                self.db.execute_unprepared("VACUUM chunk_embeddings, chunks, document_versions, documents").await?;
                Ok(Compaction {
                    done: vec![
                        "postgresql: chunk_embeddings, chunks, document_versions and documents vacuumed (dead tuples removed)"
                            .to_owned(),
                    ],
                    remains: vec![
                        "postgresql: the server's write-ahead log keeps the deleted rows until its segments are recycled \
                         after the next checkpoints, and backups keep them for their retention"
                            .to_owned(),
                    ],
                })
            }
        }
    }

    /// For each needle, whether any stored chunk's text contains it (case-sensitive): one pass
    /// over the chunks, a page at a time, whatever the number of needles.
    pub async fn which_occur(&self, needles: &[String]) -> Result<Vec<bool>> {
        use sea_orm::QuerySelect;
        let mut found = vec![false; needles.len()];
        if needles.is_empty() {
            return Ok(found);
        }
        let set = regex::RegexSet::new(needles.iter().map(|n| regex::escape(n)))
            .map_err(|e| Error::internal("needle set", e))?;
        let mut after = String::new();
        loop {
            let page: Vec<(String, String)> = chunk::Entity::find()
                .select_only()
                .column(chunk::Column::Id)
                .column(chunk::Column::Text)
                .filter(chunk::Column::Id.gt(after.clone()))
                .order_by_asc(chunk::Column::Id)
                .limit(1000)
                .into_tuple()
                .all(&self.db)
                .await?;
            let Some((last, _)) = page.last() else { break };
            after = last.clone();
            for (_, text) in &page {
                for i in set.matches(text).iter() {
                    found[i] = true;
                }
            }
            if found.iter().all(|f| *f) {
                break;
            }
        }
        Ok(found)
    }

    /// A document's row, if it exists.
    pub async fn document(&self, document_id: &str) -> Result<Option<document::Model>> {
        Ok(document::Entity::find_by_id(document_id.to_owned()).one(&self.db).await?)
    }

    /// The stored versions of a document, oldest first.
    pub async fn versions(&self, document_id: &str) -> Result<Vec<document_version::Model>> {
        Ok(document_version::Entity::find()
            .filter(document_version::Column::DocumentId.eq(document_id.to_owned()))
            .order_by_asc(document_version::Column::Version)
            .all(&self.db)
            .await?)
    }

    /// (document, version, scan) of every stored version of a tenant.
    pub async fn version_scans_of_tenant(&self, tenant: &str) -> Result<Vec<(String, u32, VersionScan)>> {
        let docs: Vec<String> = document::Entity::find()
            .filter(document::Column::TenantId.eq(tenant.to_owned()))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|d| d.id)
            .collect();
        let versions = document_version::Entity::find()
            .filter(document_version::Column::DocumentId.is_in(docs))
            .order_by_asc(document_version::Column::Id)
            .all(&self.db)
            .await?;
        versions
            .into_iter()
            .map(|v| {
                let scan = serde_json::from_str(&v.scan_summary).map_err(|e| Error::internal("reading a scan", e))?;
                Ok((v.document_id, to_u32(v.version), scan))
            })
            .collect()
    }

    /// The scan summary of one stored version.
    pub async fn version_scan(&self, document_id: &str, version: u32) -> Result<Option<VersionScan>> {
        document_version::Entity::find_by_id(version_row_id(document_id, version))
            .one(&self.db)
            .await?
            .map(|v| serde_json::from_str(&v.scan_summary).map_err(|e| Error::internal("reading a scan", e)))
            .transpose()
    }

    /// Number of chunks stored for one version.
    pub async fn count_version_chunks(&self, document_id: &str, version: u32) -> Result<u64> {
        use sea_orm::PaginatorTrait;
        Ok(chunk::Entity::find()
            .filter(chunk::Column::VersionId.eq(version_row_id(document_id, version)))
            .count(&self.db)
            .await?)
    }

    /// Sets the source status of one version and all its chunks in one transaction. Returns the
    /// number of chunks changed.
    pub async fn set_version_status(&self, document_id: &str, version: u32, status: SourceStatus) -> Result<u64> {
        use sea_orm::sea_query::Expr;
        let version_id = version_row_id(document_id, version);
        let txn = self.db.begin().await?;
        document_version::Entity::update_many()
            .col_expr(document_version::Column::Status, Expr::value(status.to_string()))
            .filter(document_version::Column::Id.eq(version_id.clone()))
            .exec(&txn)
            .await?;
        let chunks = chunk::Entity::update_many()
            .col_expr(chunk::Column::Status, Expr::value(status.to_string()))
            .filter(chunk::Column::VersionId.eq(version_id))
            .exec(&txn)
            .await?
            .rows_affected;
        txn.commit().await?;
        Ok(chunks)
    }

    /// Replaces the access metadata of a version and all its chunks, in one transaction.
    pub async fn set_version_acl(&self, document_id: &str, version: u32, acl: &ChunkAcl) -> Result<u64> {
        use sea_orm::sea_query::Expr;
        let version_id = version_row_id(document_id, version);
        let groups = join_groups(&acl.allowed_groups);
        let txn = self.db.begin().await?;
        document_version::Entity::update_many()
            .col_expr(document_version::Column::Classification, Expr::value(acl.classification.to_string()))
            .col_expr(document_version::Column::AllowedGroups, Expr::value(groups.clone()))
            .col_expr(document_version::Column::Status, Expr::value(acl.status.to_string()))
            .col_expr(document_version::Column::EffectiveFrom, Expr::value(acl.effective_from))
            .col_expr(document_version::Column::ExpiresAt, Expr::value(acl.expires_at))
            .col_expr(document_version::Column::RetentionClass, Expr::value(acl.retention_class.clone()))
            .filter(document_version::Column::Id.eq(version_id.clone()))
            .exec(&txn)
            .await?;
        let chunks = chunk::Entity::update_many()
            .col_expr(chunk::Column::Owner, Expr::value(acl.owner.clone()))
            .col_expr(chunk::Column::Classification, Expr::value(acl.classification.to_string()))
            .col_expr(chunk::Column::AllowedGroups, Expr::value(groups))
            .col_expr(chunk::Column::Status, Expr::value(acl.status.to_string()))
            .col_expr(chunk::Column::EffectiveFrom, Expr::value(acl.effective_from))
            .col_expr(chunk::Column::ExpiresAt, Expr::value(acl.expires_at))
            .col_expr(chunk::Column::RetentionClass, Expr::value(acl.retention_class.clone()))
            .filter(chunk::Column::VersionId.eq(version_id))
            .exec(&txn)
            .await?
            .rows_affected;
        txn.commit().await?;
        Ok(chunks)
    }

    /// The access metadata of a stored version, read from its first chunk.
    pub async fn version_acl(&self, document_id: &str, version: u32) -> Result<Option<ChunkAcl>> {
        let row = chunk::Entity::find()
            .filter(chunk::Column::VersionId.eq(version_row_id(document_id, version)))
            .order_by_asc(chunk::Column::Ordinal)
            .one(&self.db)
            .await?;
        row.as_ref().map(acl_of).transpose()
    }

    /// The chunks of a version in reading order.
    pub async fn version_chunks(&self, document_id: &str, version: u32) -> Result<Vec<StoredChunk>> {
        let ids: Vec<String> = chunk::Entity::find()
            .filter(chunk::Column::VersionId.eq(version_row_id(document_id, version)))
            .order_by_asc(chunk::Column::Ordinal)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|r| r.id)
            .collect();
        self.chunks_by_ids(&ids).await
    }

    /// Chunks with their access metadata, ready to index: every chunk, or those of one version.
    pub async fn indexable_chunks(&self, version: Option<(&str, u32)>) -> Result<Vec<IndexableChunk>> {
        let mut query =
            chunk::Entity::find().order_by_asc(chunk::Column::VersionId).order_by_asc(chunk::Column::Ordinal);
        if let Some((document_id, version)) = version {
            query = query.filter(chunk::Column::VersionId.eq(version_row_id(document_id, version)));
        }
        let rows = query.all(&self.db).await?;
        rows.into_iter().map(indexable).collect()
    }

    /// Per stored version: how many chunks, and how many of them approved. The start-up check
    /// compares this with the BM25 index.
    pub async fn version_fingerprints(&self) -> Result<std::collections::BTreeMap<(String, u32), (u64, u64)>> {
        use sea_orm::QuerySelect;
        let rows: Vec<(String, i32, String, i64)> = chunk::Entity::find()
            .select_only()
            .column(chunk::Column::DocumentId)
            .column(chunk::Column::Version)
            .column(chunk::Column::Status)
            .column_as(chunk::Column::Id.count(), "n")
            .group_by(chunk::Column::DocumentId)
            .group_by(chunk::Column::Version)
            .group_by(chunk::Column::Status)
            .into_tuple()
            .all(&self.db)
            .await?;
        let mut out = std::collections::BTreeMap::new();
        for (document_id, version, status, n) in rows {
            let n = u64::try_from(n).unwrap_or(0);
            let entry: &mut (u64, u64) = out.entry((document_id, to_u32(version))).or_default();
            entry.0 += n;
            if status == SourceStatus::Approved.as_str() {
                entry.1 += n;
            }
        }
        Ok(out)
    }

    /// Chunks with no vector from `model` (none yet, or one from another model).
    pub async fn chunks_missing_vectors(&self, model: &str) -> Result<Vec<IndexableChunk>> {
        use sea_orm::sea_query::Query;
        let with_vector = Query::select()
            .column(chunk_embedding::Column::ChunkId)
            .from(chunk_embedding::Entity)
            .and_where(chunk_embedding::Column::Model.eq(model.to_owned()))
            .to_owned();
        let rows = chunk::Entity::find()
            .filter(chunk::Column::Id.not_in_subquery(with_vector))
            .order_by_asc(chunk::Column::Id)
            .all(&self.db)
            .await?;
        rows.into_iter().map(indexable).collect()
    }

    /// Stores vectors of `model` for chunks, replacing any older vector of those chunks.
    pub async fn replace_vectors(&self, model: &str, rows: &[(&str, &str, &[f32])]) -> Result<()> {
        let txn = self.db.begin().await?;
        for batch in rows.chunks(200) {
            let ids: Vec<String> = batch.iter().map(|(id, _, _)| (*id).to_owned()).collect();
            chunk_embedding::Entity::delete_many()
                .filter(chunk_embedding::Column::ChunkId.is_in(ids))
                .exec(&txn)
                .await?;
            let models = batch.iter().map(|(id, text, v)| embedding_row(model, id, text, v));
            chunk_embedding::Entity::insert_many(models).exec(&txn).await?;
        }
        txn.commit().await?;
        Ok(())
    }

    /// Stores a deletion receipt.
    pub async fn insert_receipt(&self, row: deletion_receipt::Model) -> Result<()> {
        deletion_receipt::Entity::insert(deletion_receipt::ActiveModel::from(row)).exec(&self.db).await?;
        Ok(())
    }

    /// The deletion receipts of a tenant, newest first.
    pub async fn receipts(&self, tenant: &TenantId) -> Result<Vec<deletion_receipt::Model>> {
        Ok(deletion_receipt::Entity::find()
            .filter(deletion_receipt::Column::TenantId.eq(tenant.to_string()))
            .order_by_desc(deletion_receipt::Column::DeletedAt)
            .all(&self.db)
            .await?)
    }

    /// Chunks by id, in the order asked for; ids not found are skipped.
    pub async fn chunks_by_ids(&self, ids: &[String]) -> Result<Vec<StoredChunk>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = chunk::Entity::find().filter(chunk::Column::Id.is_in(ids.to_vec())).all(&self.db).await?;
        // Each chunk carries the title of its own version: a reader permitted this chunk may
        // read this version, and no other version's title comes with it.
        let version_ids: BTreeSet<String> = rows.iter().map(|r| r.version_id.clone()).collect();
        let titles: std::collections::HashMap<String, String> = document_version::Entity::find()
            .filter(document_version::Column::Id.is_in(version_ids))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|v| (v.id, v.title))
            .collect();
        let mut by_id: std::collections::HashMap<String, chunk::Model> =
            rows.into_iter().map(|r| (r.id.clone(), r)).collect();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let Some(r) = by_id.remove(id) else { continue };
            let acl = acl_of(&r)?;
            out.push(StoredChunk {
                title: titles.get(&r.version_id).cloned().unwrap_or_default(),
                id: r.id,
                document_id: r.document_id,
                version: to_u32(r.version),
                page: to_u32(r.page),
                char_start: to_u32(r.char_start),
                char_end: to_u32(r.char_end),
                heading_path: r.heading_path,
                text: r.text,
                acl,
            });
        }
        Ok(out)
    }

    /// A chunk with its neighbours in the same document version (`radius` on each side), in
    /// reading order: `(before, chunk, after)`. `None` when the chunk does not exist.
    pub async fn passage_context(
        &self,
        chunk_id: &str,
        radius: i32,
    ) -> Result<Option<(Vec<StoredChunk>, StoredChunk, Vec<StoredChunk>)>> {
        let Some(row) = chunk::Entity::find_by_id(chunk_id.to_owned()).one(&self.db).await? else {
            return Ok(None);
        };
        let neighbours: Vec<(i32, String)> = chunk::Entity::find()
            .filter(chunk::Column::DocumentId.eq(row.document_id.clone()))
            .filter(chunk::Column::Version.eq(row.version))
            .filter(chunk::Column::Ordinal.between(row.ordinal - radius, row.ordinal + radius))
            .order_by_asc(chunk::Column::Ordinal)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|r| (r.ordinal, r.id))
            .collect();
        let ids: Vec<String> = neighbours.iter().map(|(_, id)| id.clone()).collect();
        let mut chunks = self.chunks_by_ids(&ids).await?.into_iter();
        let (mut before, mut after, mut cited) = (Vec::new(), Vec::new(), None);
        for (ordinal, _) in &neighbours {
            let Some(c) = chunks.next() else { break };
            match ordinal.cmp(&row.ordinal) {
                std::cmp::Ordering::Less => before.push(c),
                std::cmp::Ordering::Equal => cited = Some(c),
                std::cmp::Ordering::Greater => after.push(c),
            }
        }
        Ok(cited.map(|c| (before, c, after)))
    }

    /// Number of chunks stored for a tenant.
    pub async fn count_chunks(&self, tenant: &TenantId) -> Result<u64> {
        use sea_orm::PaginatorTrait;
        Ok(chunk::Entity::find().filter(chunk::Column::TenantId.eq(tenant.to_string())).count(&self.db).await?)
    }

    /// The latest version of each document of a tenant.
    pub async fn list_documents(&self, tenant: &TenantId) -> Result<Vec<DocumentSummary>> {
        let docs = document::Entity::find()
            .filter(document::Column::TenantId.eq(tenant.to_string()))
            .order_by_asc(document::Column::Title)
            .all(&self.db)
            .await?;
        let mut out = Vec::with_capacity(docs.len());
        for d in docs {
            let versions = document_version::Entity::find()
                .filter(document_version::Column::DocumentId.eq(d.id.clone()))
                .order_by_desc(document_version::Column::Version)
                .all(&self.db)
                .await?;
            if let Some(latest) = versions.first() {
                use sea_orm::PaginatorTrait;
                let chunk_count = chunk::Entity::find()
                    .filter(chunk::Column::VersionId.eq(latest.id.clone()))
                    .count(&self.db)
                    .await?;
                out.push(DocumentSummary {
                    id: d.id.clone(),
                    title: latest.title.clone(),
                    version: to_u32(latest.version),
                    status: latest.status.clone(),
                    classification: latest.classification.clone(),
                    chunk_count: usize::try_from(chunk_count).unwrap_or(usize::MAX),
                });
            }
        }
        Ok(out)
    }

    /// Appends an event to the hash-chained audit log. The head row is locked first (an UPDATE
    /// takes the row lock on PostgreSQL and the write lock on SQLite), so concurrent appends from
    /// any number of processes form one chain.
    pub async fn append_audit(&self, e: AuditRecord) -> Result<()> {
        let txn = self.db.begin().await?;
        let head = lock_audit_head(&txn).await?;
        // Microseconds: what PostgreSQL keeps, so the hash of the stored value is the one computed.
        let at = chrono::SubsecRound::trunc_subsecs(Utc::now(), 6);
        let detail = e.detail.to_string();
        let hash = crate::store::audit::event_hash(
            &at,
            &e.actor,
            e.tenant.as_deref(),
            &e.action,
            &e.outcome,
            &detail,
            &head.last_hash,
        );
        let inserted = audit_event::Entity::insert(audit_event::ActiveModel {
            at: Set(at),
            actor: Set(e.actor),
            tenant_id: Set(e.tenant),
            action: Set(e.action),
            outcome: Set(e.outcome),
            detail: Set(detail),
            prev_hash: Set(Some(head.last_hash)),
            hash: Set(Some(hash.clone())),
            ..Default::default()
        })
        .exec(&txn)
        .await?;
        set_audit_head(&txn, inserted.last_insert_id, hash).await?;
        txn.commit().await?;
        Ok(())
    }

    /// Chains events that have no hash yet because they were written before the chain existed,
    /// in id order. This happens once, while the chain is still empty: a row added outside
    /// lexgate later is never sealed, and `verify_audit` reports it. Returns how many were sealed.
    pub async fn seal_audit(&self) -> Result<u64> {
        let txn = self.db.begin().await?;
        let head = lock_audit_head(&txn).await?;
        if head.last_id != 0 {
            return Ok(0);
        }
        let unsealed = audit_event::Entity::find()
            .filter(audit_event::Column::Hash.is_null())
            .filter(audit_event::Column::Id.gt(head.last_id))
            .order_by_asc(audit_event::Column::Id)
            .all(&txn)
            .await?;
        let mut last = (head.last_id, head.last_hash);
        let count = unsealed.len() as u64;
        for e in unsealed {
            let at = chrono::SubsecRound::trunc_subsecs(e.at, 6);
            let hash = crate::store::audit::event_hash(
                &at,
                &e.actor,
                e.tenant_id.as_deref(),
                &e.action,
                &e.outcome,
                &e.detail,
                &last.1,
            );
            audit_event::Entity::update(audit_event::ActiveModel {
                id: Set(e.id),
                at: Set(at),
                prev_hash: Set(Some(last.1.clone())),
                hash: Set(Some(hash.clone())),
                ..Default::default()
            })
            .exec(&txn)
            .await?;
            last = (e.id, hash);
        }
        if count > 0 {
            set_audit_head(&txn, last.0, last.1).await?;
        }
        txn.commit().await?;
        Ok(count)
    }

    /// Walks the whole audit chain; the result names the first edited, removed or moved event.
    pub async fn verify_audit(&self) -> Result<crate::store::audit::Verification> {
        use sea_orm::PaginatorTrait;
        let head = audit_head::Entity::find_by_id(1)
            .one(&self.db)
            .await?
            .ok_or_else(|| Error::Internal("the audit chain head is missing".into()))?;
        let mut events = Vec::new();
        let mut pages = audit_event::Entity::find().order_by_asc(audit_event::Column::Id).paginate(&self.db, 1000);
        while let Some(page) = pages.fetch_and_next().await? {
            events.extend(page);
        }
        Ok(crate::store::audit::verify(&events, head.last_id, &head.last_hash))
    }

    /// One page (from 0) of audit events, newest first, optionally filtered by action and
    /// outcome, and how many match in all.
    pub async fn audit_page(
        &self,
        page: u64,
        per_page: u64,
        action: Option<&str>,
        outcome: Option<&str>,
    ) -> Result<(Vec<audit_event::Model>, u64)> {
        use sea_orm::PaginatorTrait;
        let mut query = audit_event::Entity::find().order_by_desc(audit_event::Column::Id);
        if let Some(a) = action {
            query = query.filter(audit_event::Column::Action.eq(a.to_owned()));
        }
        if let Some(o) = outcome {
            query = query.filter(audit_event::Column::Outcome.eq(o.to_owned()));
        }
        let pages = query.paginate(&self.db, per_page.max(1));
        let total = pages.num_items().await?;
        Ok((pages.fetch_page(page).await?, total))
    }

    /// Audit events counted by action and outcome.
    pub async fn audit_counts(&self) -> Result<Vec<(String, String, i64)>> {
        use sea_orm::QuerySelect;
        Ok(audit_event::Entity::find()
            .select_only()
            .column(audit_event::Column::Action)
            .column(audit_event::Column::Outcome)
            .column_as(audit_event::Column::Id.count(), "n")
            .group_by(audit_event::Column::Action)
            .group_by(audit_event::Column::Outcome)
            .order_by_asc(audit_event::Column::Action)
            .order_by_asc(audit_event::Column::Outcome)
            .into_tuple()
            .all(&self.db)
            .await?)
    }

    /// The most recent audit events, newest first.
    pub async fn recent_audit(&self, limit: u64) -> Result<Vec<audit_event::Model>> {
        use sea_orm::QuerySelect;
        Ok(audit_event::Entity::find().order_by_desc(audit_event::Column::Id).limit(limit).all(&self.db).await?)
    }

    /// Starts an ingestion job record.
    pub async fn start_job(&self, id: &str, tenant: &str, requested_by: &str, documents_total: u32) -> Result<()> {
        ingestion_job::Entity::insert(ingestion_job::ActiveModel {
            id: Set(id.to_owned()),
            tenant_id: Set(tenant.to_owned()),
            requested_by: Set(requested_by.to_owned()),
            status: Set("running".to_owned()),
            documents_total: Set(to_i32(documents_total)),
            documents_done: Set(0),
            chunks_written: Set(0),
            error: Set(None),
            started_at: Set(Utc::now()),
            finished_at: Set(None),
        })
        .exec(&self.db)
        .await?;
        Ok(())
    }

    /// Records progress or the end of an ingestion job.
    pub async fn update_job(
        &self,
        id: &str,
        done: u32,
        chunks: u32,
        outcome: Option<std::result::Result<(), String>>,
    ) -> Result<()> {
        let mut row = ingestion_job::ActiveModel {
            id: Set(id.to_owned()),
            documents_done: Set(to_i32(done)),
            chunks_written: Set(to_i32(chunks)),
            ..Default::default()
        };
        if let Some(outcome) = outcome {
            row.finished_at = Set(Some(Utc::now()));
            match outcome {
                Ok(()) => row.status = Set("succeeded".to_owned()),
                Err(msg) => {
                    row.status = Set("failed".to_owned());
                    row.error = Set(Some(msg));
                }
            }
        }
        ingestion_job::Entity::update(row).exec(&self.db).await?;
        Ok(())
    }

    /// Marks every job still "running" as failed, returning their ids: run at start-up, when no
    /// job can be running because this process holds the index lock, so such a job's process
    /// died.
    pub async fn fail_running_jobs(&self, reason: &str) -> Result<Vec<String>> {
        use sea_orm::sea_query::Expr;
        let running: Vec<String> = ingestion_job::Entity::find()
            .filter(ingestion_job::Column::Status.eq("running"))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|j| j.id)
            .collect();
        if !running.is_empty() {
            ingestion_job::Entity::update_many()
                .col_expr(ingestion_job::Column::Status, Expr::value("failed"))
                .col_expr(ingestion_job::Column::Error, Expr::value(Some(reason.to_owned())))
                .col_expr(ingestion_job::Column::FinishedAt, Expr::value(Some(Utc::now())))
                .filter(ingestion_job::Column::Id.is_in(running.clone()))
                .exec(&self.db)
                .await?;
        }
        Ok(running)
    }

    pub async fn job(&self, id: &str) -> Result<Option<ingestion_job::Model>> {
        Ok(ingestion_job::Entity::find_by_id(id.to_owned()).one(&self.db).await?)
    }

    /// Today's date in UTC, the default "as of" date.
    pub fn today() -> NaiveDate {
        Utc::now().date_naive()
    }
}
