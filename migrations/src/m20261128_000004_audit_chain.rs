//! Hash-chains the audit log: every event stores the hash of the event before it and its own
//! hash over its content and that link, and a one-row head records the last event. Appends lock
//! the head row, so events form one chain even with several writers. Events written before this
//! migration have no hashes; the server seals them into the chain, in order, when it starts.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(Table::alter().table("audit_events").add_column(string_null("prev_hash")).take()).await?;
        m.alter_table(Table::alter().table("audit_events").add_column(string_null("hash")).take()).await?;
        m.create_table(
            Table::create()
                .table("audit_head")
                .col(integer("id").primary_key())
                .col(big_integer("last_id"))
                .col(string("last_hash"))
                .take(),
        )
        .await?;
        m.exec_stmt(
            Query::insert()
                .into_table("audit_head")
                .columns(["id", "last_id", "last_hash"])
                .values_panic([1.into(), 0i64.into(), GENESIS.into()])
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table("audit_head").take()).await?;
        m.alter_table(Table::alter().table("audit_events").drop_column("hash").take()).await?;
        m.alter_table(Table::alter().table("audit_events").drop_column("prev_hash").take()).await
    }
}

/// The link of the first event.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
