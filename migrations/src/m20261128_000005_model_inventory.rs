//! The model inventory (one entry per model role, the entry itself as JSON) and the change
//! records every edit of an entry writes.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("model_inventory")
                .col(string("role").primary_key())
                .col(string("artifact_sha256"))
                .col(text("entry"))
                .col(timestamp_with_time_zone("updated_at"))
                .take(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("model_change_records")
                .col(big_pk_auto("id"))
                .col(string("role"))
                .col(text("changes"))
                .col(text("why"))
                .col(text("risk"))
                .col(text("eval_before"))
                .col(text("eval_after"))
                .col(text("rollback"))
                .col(string("approver"))
                .col(string("recorded_by"))
                .col(timestamp_with_time_zone("at"))
                .take(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table("model_change_records").take()).await?;
        m.drop_table(Table::drop().table("model_inventory").take()).await
    }
}
