//! Ingestion jobs: started, updated as they go, and failed when a start finds them running.

use super::*;

impl Storage {
    /// Starts an ingestion job record.
    pub async fn start_job(&self, id: &str, tenant: &str, requested_by: &str, documents_total: u32) -> Result<()> {
        ingestion_job::Entity::insert(ingestion_job::ActiveModel {
            id: Set(id.to_owned()),
            tenant_id: Set(tenant.to_owned()),
            requested_by: Set(requested_by.to_owned()),
            status: Set("running".to_owned()),
            documents_total: Set(to_i32(documents_total)),
            documents_done: Set(0),
            chunks_written: Set(0),
            error: Set(None),
            started_at: Set(Utc::now()),
            finished_at: Set(None),
        })
        .exec(&self.db)
        .await?;
        Ok(())
    }

    /// Records progress or the end of an ingestion job.
    pub async fn update_job(
        &self,
        id: &str,
        done: u32,
        chunks: u32,
        outcome: Option<std::result::Result<(), String>>,
    ) -> Result<()> {
        let mut row = ingestion_job::ActiveModel {
            id: Set(id.to_owned()),
            documents_done: Set(to_i32(done)),
            chunks_written: Set(to_i32(chunks)),
            ..Default::default()
        };
        if let Some(outcome) = outcome {
            row.finished_at = Set(Some(Utc::now()));
            match outcome {
                Ok(()) => row.status = Set("succeeded".to_owned()),
                Err(msg) => {
                    row.status = Set("failed".to_owned());
                    row.error = Set(Some(msg));
                }
            }
        }
        ingestion_job::Entity::update(row).exec(&self.db).await?;
        Ok(())
    }

    /// Marks every job still "running" as failed, returning their ids: run at start-up, when no
    /// job can be running because this process holds the index lock, so such a job's process
    /// died.
    pub async fn fail_running_jobs(&self, reason: &str) -> Result<Vec<String>> {
        use sea_orm::sea_query::Expr;
        let running: Vec<String> = ingestion_job::Entity::find()
            .filter(ingestion_job::Column::Status.eq("running"))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|j| j.id)
            .collect();
        if !running.is_empty() {
            ingestion_job::Entity::update_many()
                .col_expr(ingestion_job::Column::Status, Expr::value("failed"))
                .col_expr(ingestion_job::Column::Error, Expr::value(Some(reason.to_owned())))
                .col_expr(ingestion_job::Column::FinishedAt, Expr::value(Some(Utc::now())))
                .filter(ingestion_job::Column::Id.is_in(running.clone()))
                .exec(&self.db)
                .await?;
        }
        Ok(running)
    }

    pub async fn job(&self, id: &str) -> Result<Option<ingestion_job::Model>> {
        Ok(ingestion_job::Entity::find_by_id(id.to_owned()).one(&self.db).await?)
    }
}
