//! Release-gate reports of `lexgate eval run`: the decision, the thresholds file it was judged
//! against (version and sha256), and the full report as JSON and Markdown.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("release_gates")
                .col(string("id").primary_key())
                .col(timestamp_with_time_zone("created_at"))
                .col(string("decision"))
                .col(integer("thresholds_version"))
                .col(string("thresholds_sha256"))
                .col(text("report_json"))
                .col(text("report_md"))
                .take(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table("release_gates").take()).await
    }
}
