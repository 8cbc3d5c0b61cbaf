//! Embeddings of chunks, stored with the model that produced them and a hash of the text so the
//! same text is never embedded twice. The dense index is rebuilt from this table.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("chunk_embeddings")
                .col(string("chunk_id").primary_key())
                .col(string("model"))
                .col(string("text_sha256"))
                .col(integer("dimension"))
                .col(blob("vector"))
                .foreign_key(
                    ForeignKey::create()
                        .from("chunk_embeddings", "chunk_id")
                        .to("chunks", "id")
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .take(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("chunk_embeddings_text")
                .table("chunk_embeddings")
                .col("model")
                .col("text_sha256")
                .take(),
        )
        .await?;
        Ok(())
    }
}
