//! lexgate's schema history. Migrations are never edited once released; entities in `server`
//! follow the schema, not the other way round.

pub use sea_orm_migration::prelude::*;

mod m20261128_000001_initial;
mod m20261128_000002_chunk_embeddings;
mod m20261128_000003_deletion_receipts;
mod m20261128_000004_audit_chain;
mod m20261128_000005_model_inventory;
mod m20261128_000006_version_scan;
mod m20261128_000007_data_cards;
mod m20261128_000008_service_tokens;
mod m20261128_000009_release_gates;
mod m20261201_000010_version_titles;
mod m20261201_000011_sessions;
mod m20261202_000012_obligations;

pub use m20261128_000004_audit_chain::GENESIS as AUDIT_GENESIS;

/// Applies every migration in order.
#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261128_000001_initial::Migration),
            Box::new(m20261128_000002_chunk_embeddings::Migration),
            Box::new(m20261128_000003_deletion_receipts::Migration),
            Box::new(m20261128_000004_audit_chain::Migration),
            Box::new(m20261128_000005_model_inventory::Migration),
            Box::new(m20261128_000006_version_scan::Migration),
            Box::new(m20261128_000007_data_cards::Migration),
            Box::new(m20261128_000008_service_tokens::Migration),
            Box::new(m20261128_000009_release_gates::Migration),
            Box::new(m20261201_000010_version_titles::Migration),
            Box::new(m20261201_000011_sessions::Migration),
            Box::new(m20261202_000012_obligations::Migration),
        ]
    }
}
