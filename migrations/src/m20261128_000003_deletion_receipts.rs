//! Deletion receipts: what a deletion removed from each store, who asked and why, and the result
//! of the check that nothing of it is retrievable any more. Receipts outlive the documents.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("deletion_receipts")
                .col(string("id").primary_key())
                .col(string("tenant_id"))
                .col(string("document_id"))
                .col(string("versions"))
                .col(string("requested_by"))
                .col(text("reason"))
                .col(timestamp_with_time_zone("deleted_at"))
                .col(boolean("post_check_passed"))
                .col(text("receipt"))
                .take(),
        )
        .await?;
        m.create_index(
            Index::create().name("deletion_receipts_tenant").table("deletion_receipts").col("tenant_id").take(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table("deletion_receipts").take()).await
    }
}
