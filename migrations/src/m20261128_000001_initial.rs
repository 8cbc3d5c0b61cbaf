//! The first schema: tenants, principals and their groups, documents and their versions, chunks
//! with their access metadata, ingestion jobs and audit events.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("tenants")
                .col(string("id").primary_key())
                .col(string("name"))
                .col(timestamp_with_time_zone("created_at"))
                .take(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table("principals")
                .col(string("id").primary_key())
                .col(string("tenant_id"))
                .col(string("display_name"))
                .col(string("role"))
                .col(string("clearance"))
                .col(timestamp_with_time_zone("created_at"))
                .foreign_key(ForeignKey::create().from("principals", "tenant_id").to("tenants", "id"))
                .take(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table("principal_groups")
                .col(string("principal_id"))
                .col(string("group_name"))
                .primary_key(Index::create().col("principal_id").col("group_name"))
                .foreign_key(
                    ForeignKey::create()
                        .from("principal_groups", "principal_id")
                        .to("principals", "id")
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .take(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table("documents")
                .col(string("id").primary_key())
                .col(string("tenant_id"))
                .col(string("title"))
                .col(string("owner"))
                .col(timestamp_with_time_zone("created_at"))
                .foreign_key(ForeignKey::create().from("documents", "tenant_id").to("tenants", "id"))
                .take(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table("document_versions")
                .col(string("id").primary_key())
                .col(string("document_id"))
                .col(integer("version"))
                .col(string("classification"))
                .col(string("allowed_groups"))
                .col(string("status"))
                .col(date("effective_from"))
                .col(date_null("expires_at"))
                .col(string("retention_class"))
                .col(string("file_name"))
                .col(string("file_sha256"))
                .col(integer("page_count"))
                .col(timestamp_with_time_zone("ingested_at"))
                .foreign_key(
                    ForeignKey::create()
                        .from("document_versions", "document_id")
                        .to("documents", "id")
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("document_versions_document_version")
                .table("document_versions")
                .col("document_id")
                .col("version")
                .unique()
                .take(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table("chunks")
                .col(string("id").primary_key())
                .col(string("version_id"))
                .col(string("document_id"))
                .col(integer("version"))
                .col(integer("ordinal"))
                .col(integer("page"))
                .col(integer("char_start"))
                .col(integer("char_end"))
                .col(text("heading_path"))
                .col(text("text"))
                // Access metadata, copied from the version so a chunk can be checked on its own.
                .col(string("tenant_id"))
                .col(string("owner"))
                .col(string("classification"))
                .col(string("allowed_groups"))
                .col(string("status"))
                .col(date("effective_from"))
                .col(date_null("expires_at"))
                .col(string("retention_class"))
                .foreign_key(
                    ForeignKey::create()
                        .from("chunks", "version_id")
                        .to("document_versions", "id")
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .take(),
        )
        .await?;
        m.create_index(Index::create().name("chunks_document").table("chunks").col("document_id").take()).await?;
        m.create_index(Index::create().name("chunks_tenant").table("chunks").col("tenant_id").take()).await?;

        m.create_table(
            Table::create()
                .table("ingestion_jobs")
                .col(string("id").primary_key())
                .col(string("tenant_id"))
                .col(string("requested_by"))
                .col(string("status"))
                .col(integer("documents_total"))
                .col(integer("documents_done"))
                .col(integer("chunks_written"))
                .col(text_null("error"))
                .col(timestamp_with_time_zone("started_at"))
                .col(timestamp_with_time_zone_null("finished_at"))
                .take(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table("audit_events")
                .col(big_pk_auto("id"))
                .col(timestamp_with_time_zone("at"))
                .col(string("actor"))
                .col(string_null("tenant_id"))
                .col(string("action"))
                .col(string("outcome"))
                .col(text("detail"))
                .take(),
        )
        .await?;
        Ok(())
    }
}
