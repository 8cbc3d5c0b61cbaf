//! `lexgate` commands: Searching as a given reader, deleting and retiring documents.

use clap::Subcommand;

use crate::service::Platform;
use crate::settings::Settings;

/// Searching as a given reader, deleting and retiring documents.
#[derive(Debug, Subcommand)]
pub enum DocumentsCommand {
    /// Search as a given reader: the same ranked, filtered and database-checked passages the web
    /// app would use. Administrators use it to check what a user can see.
    Search {
        #[arg(long)]
        tenant: String,
        /// Comma-separated groups of the reader.
        #[arg(long, value_delimiter = ',', required = true)]
        groups: Vec<String>,
        /// public, internal, confidential or restricted.
        #[arg(long)]
        clearance: String,
        /// Answer from documents in force on this date (YYYY-MM-DD); today when absent.
        #[arg(long)]
        as_of: Option<chrono::NaiveDate>,
        /// bm25, dense or hybrid.
        #[arg(long, default_value = "hybrid")]
        method: String,
        #[arg(long, default_value_t = 10)]
        limit: usize,
        /// Print JSON (stable field names) instead of a table.
        #[arg(long)]
        json: bool,
        question: String,
    },
    /// Delete a document (or one version) from the database, every index and the file store,
    /// and print the deletion receipt.
    Delete {
        document: String,
        #[arg(long)]
        version: Option<u32>,
        /// The administrator on whose authority this runs (a principal id).
        #[arg(long = "as")]
        principal: String,
        /// Why; kept on the receipt.
        #[arg(long)]
        reason: String,
    },
    /// Set a document's status: `withdrawn` retires it from retrieval without deleting it,
    /// `approved` brings it back.
    SetStatus {
        document: String,
        /// approved, withdrawn or draft.
        status: String,
        #[arg(long)]
        version: Option<u32>,
        /// The administrator on whose authority this runs (a principal id).
        #[arg(long = "as")]
        principal: String,
    },
}

/// The principal a command-line action runs as; it must exist.
pub async fn cli_actor(platform: &Platform, principal: &str) -> anyhow::Result<crate::domain::Actor> {
    platform
        .actor(principal)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no principal '{principal}' (ids look like adam@acme-bank)"))
}

pub fn print_search(
    reader: &indexer::Reader,
    method: indexer::Method,
    checked: &crate::service::ask::CheckedRetrieval,
    json: bool,
) -> anyhow::Result<()> {
    if json {
        let value = serde_json::json!({
            "reader": {
                "tenant": reader.tenant.as_str(),
                "groups": reader.groups.iter().map(indexer::GroupName::as_str).collect::<Vec<_>>(),
                "clearance": reader.clearance.as_str(),
                "as_of": reader.as_of.to_string(),
            },
            "method": method.as_str(),
            "withheld": checked.withheld,
            "passages": checked.passages.iter().map(crate::service::answer::Passage::to_json).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    println!(
        "{} passages for tenant {} as of {} ({})",
        checked.passages.len(),
        reader.tenant.as_str(),
        reader.as_of,
        method.as_str()
    );
    for p in &checked.passages {
        let stage =
            |s: Option<indexer::StageScore>| s.map_or("-".to_owned(), |s| format!("#{} {:.3}", s.rank, s.score));
        println!(
            "{:>2}. {} v{} p{} {} [bm25 {} | dense {} | fused {:.4}]",
            p.rank,
            p.chunk.document_id,
            p.chunk.version,
            p.chunk.page,
            p.chunk.heading_path,
            stage(p.scores.bm25),
            stage(p.scores.dense),
            p.scores.fused
        );
        println!("    {}", p.chunk.text.chars().take(120).collect::<String>().replace('\n', " "));
    }
    if checked.withheld > 0 {
        println!("({} hits withheld: the database no longer holds or permits them)", checked.withheld);
    }
    Ok(())
}

pub async fn run(command: &DocumentsCommand, mut settings: Settings) -> anyhow::Result<()> {
    match command {
        DocumentsCommand::Search { tenant, groups, clearance, as_of, method, limit, json, question } => {
            let reader = indexer::Reader {
                tenant: indexer::TenantId::parse(tenant)?,
                groups: groups.iter().map(|g| indexer::GroupName::parse(g.trim())).collect::<Result<_, _>>()?,
                clearance: clearance.parse()?,
                as_of: as_of.unwrap_or_else(crate::domain::today),
                documents: None,
            };
            let method: indexer::Method = method.parse()?;
            anyhow::ensure!((1..=100).contains(limit), "--limit must be between 1 and 100");
            if method == indexer::Method::Bm25 {
                settings.dense_retrieval = false;
            }
            let platform = Platform::open(settings).await?;
            let checked = platform.search(&reader, question, method, *limit).await?;
            print_search(&reader, method, &checked, *json)?;
        }
        DocumentsCommand::Delete { document, version, principal, reason } => {
            let platform = Platform::open(settings).await?;
            let actor = cli_actor(&platform, principal).await?;
            let receipt = platform.documents().delete(&actor, document, *version, reason).await?;
            println!("{}", serde_json::to_string_pretty(&receipt)?);
            anyhow::ensure!(
                receipt.post_check.passed,
                "the post-deletion check failed (receipt {}): see the counts above",
                receipt.id
            );
        }
        DocumentsCommand::SetStatus { document, status, version, principal } => {
            let status: indexer::SourceStatus = status.parse()?;
            let platform = Platform::open(settings).await?;
            let actor = cli_actor(&platform, principal).await?;
            let change = platform.documents().set_status(&actor, document, *version, status).await?;
            println!(
                "{} versions {:?}: {} ({} passages)",
                change.document_id, change.versions, change.status, change.chunks
            );
        }
    }
    Ok(())
}
