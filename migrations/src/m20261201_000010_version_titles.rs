//! Titles belong to versions: a draft version's title ("Draft: merger with X") is content, and a
//! reader who may not open that version must not see it on the versions they can open. Existing
//! versions take their document's current title.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(Table::alter().table("document_versions").add_column(text("title").default("")).take()).await?;
        m.get_connection()
            .execute_unprepared(
                "UPDATE document_versions SET title = \
                 (SELECT documents.title FROM documents WHERE documents.id = document_versions.document_id)",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(Table::alter().table("document_versions").drop_column("title").take()).await
    }
}
