//! `lexgate` commands: Governance records: the packet, risk tier, data cards, audit chain and model inventory.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;

use crate::service::governance::Governance;
use crate::settings::Settings;

/// Governance records.
#[derive(Debug, Subcommand)]
pub enum GovernanceCommand {
    /// The reviewer's governance packet.
    #[command(subcommand)]
    Packet(PacketCommand),
    /// The deployment's risk tier and the controls it requires, met or not from the platform's state.
    Risk {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Data cards of the document sets and the governance gate.
    #[command(subcommand)]
    DataCards(DataCardsCommand),
    /// Work with the hash-chained audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// The model inventory and its change records.
    #[command(subcommand)]
    Models(ModelsCommand),
}

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Print the inventory (seeded from the governance folder) and its change records as JSON.
    List,
    /// Change fields of one entry; writes a change record in the same transaction.
    Change {
        /// embedding, reranker or answer-composer.
        role: String,
        /// field=value (repeatable); list fields take comma-separated values.
        #[arg(long = "set", required = true)]
        set: Vec<String>,
        #[arg(long)]
        why: String,
        #[arg(long)]
        risk: String,
        #[arg(long, default_value = "")]
        eval_before: String,
        #[arg(long, default_value = "")]
        eval_after: String,
        #[arg(long)]
        rollback: String,
        #[arg(long)]
        approver: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum PacketCommand {
    /// Write the packet (README, then Markdown and JSON per section) as a ZIP file.
    Export {
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum DataCardsCommand {
    /// Print every card with what the platform measured (PII counts, pages without text) as JSON.
    List,
    /// Approve, return to draft or reject a set's card; audited.
    SetStatus {
        /// The document set (a tenant id).
        set: String,
        /// approved, draft or rejected.
        status: String,
        /// Who decides (the card's approval owner or a reviewer).
        #[arg(long)]
        by: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Walk the whole chain; fails naming the first edited, removed or moved event.
    Verify,
}

pub async fn run(command: &GovernanceCommand, settings: Settings) -> anyhow::Result<()> {
    let governance = Governance::connect(settings).await?;
    match command {
        GovernanceCommand::Models(ModelsCommand::List) => {
            let inventory = governance.operator_inventory().await?;
            let records: Vec<serde_json::Value> =
                inventory.change_records.iter().map(crate::service::governance::change_record_json).collect();
            let value = serde_json::json!({ "models": inventory.models, "change_records": records });
            println!("{}", serde_json::to_string_pretty(&value)?);
        }
        GovernanceCommand::Models(ModelsCommand::Change {
            role,
            set,
            why,
            risk,
            eval_before,
            eval_after,
            rollback,
            approver,
        }) => {
            let set = set
                .iter()
                .map(|kv| {
                    kv.split_once('=')
                        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                        .ok_or_else(|| anyhow::anyhow!("--set takes field=value, not '{kv}'"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let record = governance
                .operator_change_inventory(&crate::service::governance::ChangeRequest {
                    role: role.clone(),
                    set,
                    why: why.clone(),
                    risk: risk.clone(),
                    eval_before: eval_before.clone(),
                    eval_after: eval_after.clone(),
                    rollback: rollback.clone(),
                    approver: approver.clone(),
                    recorded_by: "cli".to_owned(),
                })
                .await?;
            println!("change record {} written for the {role} entry: {}", record.id, record.changes);
        }
        GovernanceCommand::Packet(PacketCommand::Export { out }) => {
            let (files, bytes) = governance.operator_packet().await?;
            let tmp = out.with_extension("partial");
            std::fs::write(&tmp, &bytes)
                .and_then(|()| std::fs::rename(&tmp, out))
                .with_context(|| format!("writing {}", out.display()))?;
            println!("wrote {} ({} files, {} bytes)", out.display(), files, bytes.len());
        }
        GovernanceCommand::Risk { json } => {
            let risk = governance.operator_risk().await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&risk)?);
            } else {
                println!("Risk tier {} ({})", risk.tier, risk.answers.use_case);
                for (question, tier) in &risk.question_tiers {
                    println!("  {question}: tier {tier}");
                }
                println!("| control | from tier | met | evidence |\n|---|---|---|---|");
                for c in &risk.controls {
                    println!(
                        "| {} | {} | {} | {} |",
                        c.control,
                        c.from_tier,
                        if c.met { "met" } else { "NOT MET" },
                        c.evidence
                    );
                }
            }
        }
        GovernanceCommand::DataCards(command) => match command {
            DataCardsCommand::List => {
                println!("{}", serde_json::to_string_pretty(&governance.operator_data_cards().await?)?)
            }
            DataCardsCommand::SetStatus { set, status, by } => {
                governance.operator_set_data_card_status(set, status, by).await?;
                println!("data card of '{set}' is now {status}");
            }
        },
        GovernanceCommand::Audit(AuditCommand::Verify) => {
            let v = governance.operator_verify_audit().await?;
            match &v.problem {
                None => println!("audit chain intact: {} events, head {}", v.events, v.head),
                Some(problem) => anyhow::bail!("audit chain broken: {problem} ({} events checked)", v.events),
            }
        }
    }
    Ok(())
}
