//! The obligation register. Documents get a kind (`regulation`, `policy` or `other`): obligations
//! are extracted from regulations, and controls are suggested from policies. Each obligation row
//! belongs to one version of a regulation and points at its exact span in a stored chunk;
//! `obligation_key` stays the same from version to version while the obligation is recognised,
//! and `change` says how it compares with the previous version. Suggested controls are policy
//! passages, each confirmed or rejected by an analyst. Deleting a version deletes its obligations
//! and every suggestion of its passages (the store does it in the deletion's transaction).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(Table::alter().table("documents").add_column(string("kind").default("other")).take()).await?;
        m.create_table(
            Table::create()
                .table("obligations")
                .col(string("id").primary_key())
                .col(string("tenant_id"))
                .col(string("version_id"))
                .col(string("document_id"))
                .col(integer("version"))
                .col(integer("ordinal"))
                .col(string("obligation_key"))
                .col(string("chunk_id"))
                .col(integer("page"))
                .col(text("heading_path"))
                .col(integer("span_start"))
                .col(integer("span_end"))
                .col(text("text"))
                .col(text("addressee"))
                .col(string("modality"))
                .col(text("action"))
                .col(text_null("timing"))
                .col(string_null("timing_iso"))
                .col(text_null("conditions"))
                .col(string("change"))
                .col(text_null("previous_text"))
                .col(string("status"))
                .col(text_null("status_reason"))
                .col(string_null("owner"))
                .col(date_null("due_date"))
                .col(string("detector"))
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone("updated_at"))
                .foreign_key(ForeignKey::create().from("obligations", "version_id").to("document_versions", "id"))
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("obligations_by_version")
                .table("obligations")
                .col("document_id")
                .col("version")
                .take(),
        )
        .await?;
        m.create_index(Index::create().name("obligations_by_tenant").table("obligations").col("tenant_id").take())
            .await?;
        m.create_table(
            Table::create()
                .table("obligation_controls")
                .col(string("obligation_id"))
                .col(string("chunk_id"))
                .col(string("document_id"))
                .col(integer("version"))
                .col(double("score"))
                .col(string("state"))
                .col(string_null("decided_by"))
                .col(timestamp_with_time_zone_null("decided_at"))
                .primary_key(Index::create().col("obligation_id").col("chunk_id"))
                .foreign_key(ForeignKey::create().from("obligation_controls", "obligation_id").to("obligations", "id"))
                .take(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table("obligation_controls").take()).await?;
        m.drop_table(Table::drop().table("obligations").take()).await?;
        m.alter_table(Table::alter().table("documents").drop_column("kind").take()).await
    }
}
