//! `lexgate` commands: the obligation register.

use std::path::PathBuf;

use clap::Subcommand;

use crate::cli::documents::cli_actor;
use crate::service::Platform;
use crate::service::obligations::Filter;
use crate::settings::Settings;

#[derive(Debug, Subcommand)]
pub enum ObligationsCommand {
    /// Mark stored documents as regulations and extract the obligations of each version that
    /// has none yet, each version compared with the one before. Prints counts and times.
    Extract {
        /// Document ids.
        #[arg(required = true)]
        documents: Vec<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Write the register as one principal sees it, as CSV or JSON with counts.
    Export {
        /// The analyst or reviewer whose view is exported (a principal id).
        #[arg(long = "as")]
        principal: String,
        /// csv or json.
        #[arg(long, default_value = "json")]
        format: String,
        /// Write here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

pub async fn run(command: &ObligationsCommand, settings: Settings) -> anyhow::Result<()> {
    let platform = Platform::open(settings).await?;
    match command {
        ObligationsCommand::Extract { documents, json } => {
            let register = platform.register();
            let mut all = Vec::new();
            if !json {
                println!("| document | version | obligations | new | changed | unchanged | removed | seconds |");
                println!("|---|---|---|---|---|---|---|---|");
            }
            for document in documents {
                for e in register.extract_stored(document, "cli").await? {
                    if !json {
                        let n = |k: &str| e.by_change.get(k).copied().unwrap_or(0);
                        let seconds =
                            if e.skipped { "already extracted".to_owned() } else { format!("{:.1}", e.seconds) };
                        println!(
                            "| {} | {} | {} | {} | {} | {} | {} | {seconds} |",
                            e.document_id,
                            e.version,
                            e.obligations,
                            n("new"),
                            n("changed"),
                            n("unchanged"),
                            n("removed")
                        );
                    }
                    all.push(e);
                }
            }
            if *json {
                println!("{}", serde_json::to_string_pretty(&all)?);
            }
        }
        ObligationsCommand::Export { principal, format, out } => {
            let actor = cli_actor(&platform, principal).await?;
            let register = platform.register();
            let text = match format.as_str() {
                "csv" => register.export_csv(&actor, &Filter::default()).await?,
                "json" => serde_json::to_string_pretty(&register.export_json(&actor, &Filter::default()).await?)?,
                other => anyhow::bail!("--format '{other}': expected csv or json"),
            };
            match out {
                Some(path) => std::fs::write(path, text)?,
                None => print!("{text}"),
            }
        }
    }
    Ok(())
}
