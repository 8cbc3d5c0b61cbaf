//! Records of outcomes: release-gate reports and deletion receipts.

use super::*;

impl Storage {
    /// Stores a release-gate report.
    pub async fn insert_release_gate(&self, row: release_gate::Model) -> Result<()> {
        release_gate::Entity::insert(release_gate::ActiveModel::from(row)).exec(&self.db).await?;
        Ok(())
    }

    /// The most recent release-gate report, if any.
    pub async fn latest_release_gate(&self) -> Result<Option<release_gate::Model>> {
        Ok(release_gate::Entity::find().order_by_desc(release_gate::Column::CreatedAt).one(&self.db).await?)
    }

    /// Stores a deletion receipt.
    pub async fn insert_receipt(&self, row: deletion_receipt::Model) -> Result<()> {
        deletion_receipt::Entity::insert(deletion_receipt::ActiveModel::from(row)).exec(&self.db).await?;
        Ok(())
    }

    /// The deletion receipts of a tenant, newest first.
    pub async fn receipts(&self, tenant: &TenantId) -> Result<Vec<deletion_receipt::Model>> {
        Ok(deletion_receipt::Entity::find()
            .filter(deletion_receipt::Column::TenantId.eq(tenant.to_string()))
            .order_by_desc(deletion_receipt::Column::DeletedAt)
            .all(&self.db)
            .await?)
    }
}
