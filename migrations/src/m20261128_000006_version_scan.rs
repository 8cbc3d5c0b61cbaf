//! What ingestion found in each document version besides its text: personal data counted by kind
//! (never the values) and pages without extractable text. The data cards are filled from it.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(Table::alter().table("document_versions").add_column(text("scan_summary").default("{}")).take())
            .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(Table::alter().table("document_versions").drop_column("scan_summary").take()).await
    }
}
