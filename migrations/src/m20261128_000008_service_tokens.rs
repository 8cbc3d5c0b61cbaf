//! Bearer tokens of service principals: stored as a SHA-256 of the token, with the scopes they
//! grant, who issued them and when they were revoked.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("service_tokens")
                .col(string("id").primary_key())
                .col(string("token_sha256").unique_key())
                .col(string("principal_id"))
                .col(string("tenant_id"))
                .col(string("name"))
                .col(string("scopes"))
                .col(string("issued_by"))
                .col(timestamp_with_time_zone("issued_at"))
                .col(timestamp_with_time_zone_null("expires_at"))
                .col(timestamp_with_time_zone_null("revoked_at"))
                .foreign_key(ForeignKey::create().from("service_tokens", "principal_id").to("principals", "id"))
                .take(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table("service_tokens").take()).await
    }
}
