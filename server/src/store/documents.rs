//! Documents, their versions and chunks, stored vectors, deletion and the erasure checks.

use super::*;

impl Storage {
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
        let txn = self.begin_write().await?;
        let now = Utc::now();
        let doc = document::ActiveModel {
            id: Set(v.document_id.clone()),
            tenant_id: Set(v.acl.tenant.to_string()),
            title: Set(v.title.clone()),
            owner: Set(v.acl.owner.clone()),
            created_at: Set(now),
            kind: Set(v.kind.as_str().to_owned()),
        };
        document::Entity::insert(doc)
            .on_conflict(
                OnConflict::column(document::Column::Id)
                    .update_columns([document::Column::Owner, document::Column::Kind])
                    .to_owned(),
            )
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
        super::obligations::insert(&txn, v, now).await?;
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
        let txn = self.begin_write().await?;
        let chunk_ids_of_versions = Query::select()
            .column(chunk::Column::Id)
            .from(chunk::Entity)
            .and_where(chunk::Column::VersionId.is_in(version_ids.clone()))
            .to_owned();
        super::obligations::delete_of_versions(&txn, document_id, &version_ids, chunk_ids_of_versions.clone()).await?;
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
        let txn = self.begin_write().await?;
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
        let txn = self.begin_write().await?;
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
        let titles = self.version_titles(&rows).await?;
        rows.into_iter().map(|r| indexable(r, &titles)).collect()
    }

    /// The title of each version the chunks belong to, by version row id.
    async fn version_titles(&self, rows: &[chunk::Model]) -> Result<std::collections::HashMap<String, String>> {
        let version_ids: BTreeSet<&str> = rows.iter().map(|r| r.version_id.as_str()).collect();
        let ids: Vec<&str> = version_ids.into_iter().collect();
        let mut titles = std::collections::HashMap::new();
        // In slices, so that no statement exceeds a backend's limit on bound parameters.
        for slice in ids.chunks(500) {
            let found = document_version::Entity::find()
                .filter(document_version::Column::Id.is_in(slice.iter().map(|id| (*id).to_owned())))
                .all(&self.db)
                .await?;
            titles.extend(found.into_iter().map(|v| (v.id, v.title)));
        }
        Ok(titles)
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
        let rows = Self::missing_vectors_query(model).order_by_asc(chunk::Column::Id).all(&self.db).await?;
        let titles = self.version_titles(&rows).await?;
        rows.into_iter().map(|r| indexable(r, &titles)).collect()
    }

    /// How many chunks have no vector from `model`.
    pub async fn count_chunks_missing_vectors(&self, model: &str) -> Result<u64> {
        use sea_orm::PaginatorTrait;
        Ok(Self::missing_vectors_query(model).count(&self.db).await?)
    }

    fn missing_vectors_query(model: &str) -> sea_orm::Select<chunk::Entity> {
        use sea_orm::sea_query::Query;
        let with_vector = Query::select()
            .column(chunk_embedding::Column::ChunkId)
            .from(chunk_embedding::Entity)
            .and_where(chunk_embedding::Column::Model.eq(model.to_owned()))
            .to_owned();
        chunk::Entity::find().filter(chunk::Column::Id.not_in_subquery(with_vector))
    }

    /// Stores vectors of `model` for chunks, replacing any older vector of those chunks.
    pub async fn replace_vectors(&self, model: &str, rows: &[(&str, &str, &[f32])]) -> Result<()> {
        let txn = self.begin_write().await?;
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

    /// Up to `limit` chunks of `tenant` that are out of force on `as_of`: withdrawn, or approved
    /// but not yet in force or expired (drafts are not among them). For saying why nothing
    /// answers; the caller checks each one's groups and classification against the reader.
    pub async fn out_of_force_chunks(
        &self,
        tenant: &TenantId,
        as_of: chrono::NaiveDate,
        limit: u64,
    ) -> Result<Vec<StoredChunk>> {
        use sea_orm::{Condition, QuerySelect};
        let out_of_force = Condition::any().add(chunk::Column::Status.eq("withdrawn")).add(
            Condition::all().add(chunk::Column::Status.eq("approved")).add(
                Condition::any().add(chunk::Column::EffectiveFrom.gt(as_of)).add(chunk::Column::ExpiresAt.lte(as_of)),
            ),
        );
        let ids: Vec<String> = chunk::Entity::find()
            .select_only()
            .column(chunk::Column::Id)
            .filter(chunk::Column::TenantId.eq(tenant.as_str()))
            .filter(out_of_force)
            .order_by_asc(chunk::Column::Id)
            .limit(limit)
            .into_tuple()
            .all(&self.db)
            .await?;
        self.chunks_by_ids(&ids).await
    }

    /// Chunks by id, in the order asked for; ids not found are skipped.
    pub async fn chunks_by_ids(&self, ids: &[String]) -> Result<Vec<StoredChunk>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = chunk::Entity::find().filter(chunk::Column::Id.is_in(ids.to_vec())).all(&self.db).await?;
        // Each chunk carries the title of its own version: a reader permitted this chunk may
        // read this version, and no other version's title comes with it.
        let titles = self.version_titles(&rows).await?;
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
}
