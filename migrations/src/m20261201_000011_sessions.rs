//! Browser sessions live on the server: the cookie carries a random token, the table its SHA-256,
//! so that sign-out, an administrator or a time-out ends a session even when its cookie was copied.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("sessions")
                .col(string("id").primary_key())
                .col(string("token_sha256").unique_key())
                .col(string("principal_id"))
                .col(string("tenant_id"))
                .col(string("method"))
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone("last_seen_at"))
                .col(timestamp_with_time_zone("expires_at"))
                .col(timestamp_with_time_zone_null("ended_at"))
                .col(string_null("ended_by"))
                .col(string_null("end_reason"))
                .foreign_key(ForeignKey::create().from("sessions", "principal_id").to("principals", "id"))
                .take(),
        )
        .await?;
        m.create_index(Index::create().name("sessions_by_tenant").table("sessions").col("tenant_id").take()).await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table("sessions").take()).await
    }
}
