//! sea-orm entities, one module per table. They mirror the schema written by the `migrations`
//! crate; access metadata is stored as plain strings and parsed into indexer types at the edge
//! (see `storage`).

macro_rules! no_relations {
    () => {
        #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
        pub enum Relation {}
        impl ActiveModelBehavior for ActiveModel {}
    };
}

pub mod tenant {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "tenants")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub name: String,
        pub created_at: DateTimeUtc,
    }
    no_relations!();
}

pub mod principal {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "principals")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant_id: String,
        pub display_name: String,
        pub role: String,
        pub clearance: String,
        pub created_at: DateTimeUtc,
    }
    no_relations!();
}

pub mod principal_group {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "principal_groups")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub principal_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub group_name: String,
    }
    no_relations!();
}

pub mod document {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "documents")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant_id: String,
        pub title: String,
        pub owner: String,
        pub created_at: DateTimeUtc,
        /// `regulation`, `policy` or `other` (see `crate::domain::DocumentKind`).
        pub kind: String,
    }
    no_relations!();
}

pub mod document_version {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "document_versions")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub document_id: String,
        pub version: i32,
        pub classification: String,
        /// Comma-separated group names.
        pub allowed_groups: String,
        pub status: String,
        pub effective_from: Date,
        pub expires_at: Option<Date>,
        pub retention_class: String,
        pub file_name: String,
        pub file_sha256: String,
        pub page_count: i32,
        pub ingested_at: DateTimeUtc,
        /// `storage::VersionScan` as JSON: PII counts by kind and pages without text.
        #[sea_orm(column_type = "Text")]
        pub scan_summary: String,
        /// The title this version was uploaded with; readers see the title of the version they
        /// read, never another version's.
        #[sea_orm(column_type = "Text")]
        pub title: String,
    }
    no_relations!();
}

pub mod chunk {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "chunks")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub version_id: String,
        pub document_id: String,
        pub version: i32,
        pub ordinal: i32,
        pub page: i32,
        pub char_start: i32,
        pub char_end: i32,
        #[sea_orm(column_type = "Text")]
        pub heading_path: String,
        #[sea_orm(column_type = "Text")]
        pub text: String,
        pub tenant_id: String,
        pub owner: String,
        pub classification: String,
        pub allowed_groups: String,
        pub status: String,
        pub effective_from: Date,
        pub expires_at: Option<Date>,
        pub retention_class: String,
    }
    no_relations!();
}

pub mod ingestion_job {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "ingestion_jobs")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant_id: String,
        pub requested_by: String,
        pub status: String,
        pub documents_total: i32,
        pub documents_done: i32,
        pub chunks_written: i32,
        #[sea_orm(column_type = "Text", nullable)]
        pub error: Option<String>,
        pub started_at: DateTimeUtc,
        pub finished_at: Option<DateTimeUtc>,
    }
    no_relations!();
}

pub mod audit_event {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "audit_events")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub at: DateTimeUtc,
        pub actor: String,
        pub tenant_id: Option<String>,
        pub action: String,
        pub outcome: String,
        #[sea_orm(column_type = "Text")]
        pub detail: String,
        /// Hash of the event before this one (the genesis value for the first).
        pub prev_hash: Option<String>,
        /// sha256 over this event's content and `prev_hash`.
        pub hash: Option<String>,
    }
    no_relations!();
}

pub mod audit_head {
    use sea_orm::entity::prelude::*;

    /// The one row that names the last event of the audit chain.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "audit_head")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: i32,
        pub last_id: i64,
        pub last_hash: String,
    }
    no_relations!();
}

pub mod chunk_embedding {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "chunk_embeddings")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub chunk_id: String,
        pub model: String,
        pub text_sha256: String,
        pub dimension: i32,
        /// Little-endian f32 values.
        #[sea_orm(column_type = "Blob")]
        pub vector: Vec<u8>,
    }
    no_relations!();
}

pub mod deletion_receipt {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "deletion_receipts")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant_id: String,
        pub document_id: String,
        /// Comma-separated version numbers.
        pub versions: String,
        pub requested_by: String,
        #[sea_orm(column_type = "Text")]
        pub reason: String,
        pub deleted_at: DateTimeUtc,
        pub post_check_passed: bool,
        /// The full receipt as JSON.
        #[sea_orm(column_type = "Text")]
        pub receipt: String,
    }
    no_relations!();
}

pub mod model_inventory {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "model_inventory")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub role: String,
        pub artifact_sha256: String,
        /// The whole entry as JSON (`governance::ModelEntry`).
        #[sea_orm(column_type = "Text")]
        pub entry: String,
        pub updated_at: DateTimeUtc,
    }
    no_relations!();
}

pub mod model_change_record {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "model_change_records")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub role: String,
        /// JSON object: field -> { "from": ..., "to": ... }.
        #[sea_orm(column_type = "Text")]
        pub changes: String,
        #[sea_orm(column_type = "Text")]
        pub why: String,
        #[sea_orm(column_type = "Text")]
        pub risk: String,
        #[sea_orm(column_type = "Text")]
        pub eval_before: String,
        #[sea_orm(column_type = "Text")]
        pub eval_after: String,
        #[sea_orm(column_type = "Text")]
        pub rollback: String,
        pub approver: String,
        pub recorded_by: String,
        pub at: DateTimeUtc,
    }
    no_relations!();
}

pub mod data_card {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "data_cards")]
    pub struct Model {
        /// The document set: a tenant id.
        #[sea_orm(primary_key, auto_increment = false)]
        pub set_id: String,
        /// `governance::DataCard` as JSON.
        #[sea_orm(column_type = "Text")]
        pub card: String,
        /// approved, draft or rejected.
        pub status: String,
        pub status_by: String,
        pub updated_at: DateTimeUtc,
    }
    no_relations!();
}

pub mod service_token {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "service_tokens")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        /// SHA-256 of the bearer token; the token itself is shown once and never stored.
        pub token_sha256: String,
        pub principal_id: String,
        pub tenant_id: String,
        pub name: String,
        /// Comma-separated scopes: ask, documents, governance.
        pub scopes: String,
        pub issued_by: String,
        pub issued_at: DateTimeUtc,
        pub expires_at: Option<DateTimeUtc>,
        pub revoked_at: Option<DateTimeUtc>,
    }
    no_relations!();
}

pub mod session {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "sessions")]
    pub struct Model {
        /// A public id, shown in session lists; never the cookie's token.
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        /// SHA-256 of the cookie's token.
        pub token_sha256: String,
        pub principal_id: String,
        pub tenant_id: String,
        /// How the user signed in: development or oidc.
        pub method: String,
        pub created_at: DateTimeUtc,
        pub last_seen_at: DateTimeUtc,
        /// The absolute end, whatever the activity.
        pub expires_at: DateTimeUtc,
        pub ended_at: Option<DateTimeUtc>,
        pub ended_by: Option<String>,
        /// signed_out, ended_by_admin, replaced_at_sign_in, idle.
        pub end_reason: Option<String>,
    }
    no_relations!();
}

pub mod release_gate {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "release_gates")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub created_at: DateTimeUtc,
        /// approve, approve_with_conditions or block.
        pub decision: String,
        pub thresholds_version: i32,
        pub thresholds_sha256: String,
        #[sea_orm(column_type = "Text")]
        pub report_json: String,
        #[sea_orm(column_type = "Text")]
        pub report_md: String,
    }
    no_relations!();
}

pub mod obligation {
    use sea_orm::entity::prelude::*;

    /// One obligation of one version of a regulation (see the obligations migration).
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "obligations")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant_id: String,
        pub version_id: String,
        pub document_id: String,
        pub version: i32,
        pub ordinal: i32,
        pub obligation_key: String,
        pub chunk_id: String,
        pub page: i32,
        #[sea_orm(column_type = "Text")]
        pub heading_path: String,
        pub span_start: i32,
        pub span_end: i32,
        #[sea_orm(column_type = "Text")]
        pub text: String,
        #[sea_orm(column_type = "Text")]
        pub addressee: String,
        pub modality: String,
        #[sea_orm(column_type = "Text")]
        pub action: String,
        #[sea_orm(column_type = "Text", nullable)]
        pub timing: Option<String>,
        pub timing_iso: Option<String>,
        #[sea_orm(column_type = "Text", nullable)]
        pub conditions: Option<String>,
        pub change: String,
        #[sea_orm(column_type = "Text", nullable)]
        pub previous_text: Option<String>,
        pub status: String,
        #[sea_orm(column_type = "Text", nullable)]
        pub status_reason: Option<String>,
        pub owner: Option<String>,
        pub due_date: Option<Date>,
        pub detector: String,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
    }
    no_relations!();
}

pub mod obligation_control {
    use sea_orm::entity::prelude::*;

    /// A policy passage suggested as the control meeting an obligation, and the analyst's call.
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "obligation_controls")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub obligation_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub chunk_id: String,
        pub document_id: String,
        pub version: i32,
        pub score: f64,
        pub state: String,
        pub decided_by: Option<String>,
        pub decided_at: Option<DateTimeUtc>,
    }
    no_relations!();
}
