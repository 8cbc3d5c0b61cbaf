//! Data cards, one per document set (a tenant's collection): the card as JSON, its approval
//! status and who set it.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("data_cards")
                .col(string("set_id").primary_key())
                .col(text("card"))
                .col(string("status"))
                .col(string("status_by"))
                .col(timestamp_with_time_zone("updated_at"))
                .take(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table("data_cards").take()).await
    }
}
