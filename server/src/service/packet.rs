//! The governance packet a reviewer exports: one ZIP with a README index and, for each section,
//! Markdown for people and JSON for tools. Every figure comes from the platform's state at the
//! time of export; nothing in here is typed by hand. **A packet holds one scope's records**: a
//! tenant's reviewer exports their tenant's data card, audit counts, deletion receipts and
//! obligation register beside the platform's records (use case and risk, model inventory and
//! change records, the release gate's summary, the audit chain's verification), each file
//! labelled as one or the other; only the platform scope has every tenant's.

use std::fmt::Write as _;

use chrono::Utc;
use serde_json::{Value, json};

use crate::domain::TenantId;
use crate::error::{Error, Result};
use crate::service::governance::{Scope, risk_classification, scoped_data_cards};
use crate::settings::Settings;
use crate::store::Storage;

/// One file of the packet.
#[derive(Debug, Clone)]
pub struct PacketFile {
    pub name: String,
    pub bytes: Vec<u8>,
}

fn json_file(name: &str, value: &Value) -> Result<PacketFile> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::internal("serialising the packet", e))?;
    Ok(PacketFile { name: name.to_owned(), bytes: text.into_bytes() })
}

fn md_file(name: &str, text: String) -> PacketFile {
    PacketFile { name: name.to_owned(), bytes: text.into_bytes() }
}

/// Markdown table cell: no pipes or line breaks.
fn cell(v: &str) -> String {
    v.replace('|', "/").replace('\n', " ")
}

/// The packet's files that hold platform records, and those that hold the scope's tenant records
/// (06 holds both: the chain's verification and the scope's event counts).
const PLATFORM_FILES: [&str; 8] = [
    "01-use-case-and-risk",
    "03-model-inventory",
    "04-change-records",
    "05-release-gate",
    "06-audit (verification)",
    "08-oversight-plan",
    "09-incident-runbook",
    "README",
];
const TENANT_FILES: [&str; 4] =
    ["02-data-cards", "06-audit (counts)", "07-deletion-receipts", "10-obligation-register"];

/// Whose records a file holds, as its heading says.
const PLATFORM_RECORD: &str = "Platform record: the same for every tenant of this installation.";

fn tenant_record(scope: &Scope) -> String {
    match scope {
        Scope::Tenant(t) => format!("Tenant record: {t} only."),
        Scope::Platform => "Tenant records: every tenant of this installation.".to_owned(),
    }
}

/// Builds every file of the packet of `scope` from the platform's state.
pub async fn build(storage: &Storage, settings: &Settings, scope: &Scope) -> Result<Vec<PacketFile>> {
    crate::service::governance::seed_inventory_and_cards(storage, &settings.governance_dir).await?;
    let generated = Utc::now().to_rfc3339();
    let risk = risk_classification(storage, settings, scope).await?;
    let cards = scoped_data_cards(storage, scope).await?;
    let inventory = storage.inventory().await?;
    let changes = storage.change_records().await?;
    let audit = risk.audit.clone();
    let receipts = storage.deletion_receipts(scope.tenant()).await?;
    let counts = storage.audit_counts(scope.tenant()).await?;
    let tenant_record = tenant_record(scope);

    let mut files = Vec::new();

    // Use case and risk classification.
    files.push(json_file("01-use-case-and-risk.json", &serde_json::to_value(&risk).unwrap_or_default())?);
    let mut md = format!(
        "# Use case and risk classification\n\n{PLATFORM_RECORD} The controls over data cards and deletion receipts are checked for {}.\n\n{}\n\n**Risk tier: {}**\n\n",
        scope.label(),
        risk.answers.use_case,
        risk.tier
    );
    md.push_str("| question | tier |\n|---|---|\n");
    for (q, t) in &risk.question_tiers {
        let _ = writeln!(md, "| {q} | {t} |");
    }
    md.push_str("\n## Controls this tier requires\n\n| control | from tier | status | evidence |\n|---|---|---|---|\n");
    for c in &risk.controls {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            cell(c.control),
            c.from_tier,
            if c.met { "met" } else { "NOT MET" },
            cell(&c.evidence)
        );
    }
    files.push(md_file("01-use-case-and-risk.md", md));

    // Data cards.
    files.push(json_file("02-data-cards.json", &serde_json::to_value(&cards).unwrap_or_default())?);
    let mut md = format!("# Data cards\n\n{tenant_record}\n");
    for c in &cards {
        let _ = write!(
            md,
            "\n## {} (`{}`)\n\n| field | value |\n|---|---|\n| status | {} (set by {}) |\n| source | {} |\n| license | {} |\n| sensitivity | {} |\n| regulated data | {} |\n| allowed uses | {} |\n| prohibited uses | {} |\n| retention | {} |\n| deletion process | {} |\n| access-control model | {} |\n| approval owner | {} |\n| document versions | {} |\n| personal data found (counts) | {} e-mail, {} phone, {} IBAN, {} card, {} national id |\n| pages without text | {} |\n| known quality issues | {} |\n",
            cell(&c.card.name),
            c.card.set,
            c.card.status,
            cell(&c.status_by),
            cell(&c.card.source),
            cell(&c.card.license),
            cell(&c.card.sensitivity),
            cell(&c.card.regulated_data),
            cell(&c.card.allowed_uses.join("; ")),
            cell(&c.card.prohibited_uses.join("; ")),
            cell(&c.card.retention_period),
            cell(&c.card.deletion_process),
            cell(&c.card.access_control_model),
            cell(&c.card.approval_owner),
            c.document_versions,
            c.pii_total.email,
            c.pii_total.phone,
            c.pii_total.iban,
            c.pii_total.payment_card,
            c.pii_total.national_id,
            c.pages_without_text,
            cell(&c.card.known_quality_issues),
        );
    }
    files.push(md_file("02-data-cards.md", md));

    // Model inventory with provenance, and the change records.
    files.push(json_file("03-model-inventory.json", &serde_json::to_value(&inventory).unwrap_or_default())?);
    let mut md = format!(
        "# Model inventory\n\n{PLATFORM_RECORD}\n\n| role | name | version | license | artifact sha256 | source | hosting | data sent | fallback | evaluation baseline | owner | next review |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for m in &inventory {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | `{}` | {} | {} | {} | {} | {} | {} | {} |",
            m.role,
            cell(&m.name),
            cell(&m.version),
            cell(&m.license),
            if m.artifact_sha256.is_empty() { "none" } else { &m.artifact_sha256 },
            cell(&m.artifact_source),
            cell(&m.hosting),
            cell(&m.data_sent_to_provider),
            cell(&m.fallback),
            cell(&m.evaluation_baseline),
            cell(&m.owner),
            cell(&m.next_review)
        );
    }
    files.push(md_file("03-model-inventory.md", md));
    let change_values: Vec<Value> = changes.iter().map(crate::service::governance::change_record_json).collect();
    files.push(json_file("04-change-records.json", &Value::from(change_values))?);
    let mut md = format!("# Change records\n\n{PLATFORM_RECORD}\n\n{} records.\n\n", changes.len());
    if !changes.is_empty() {
        md.push_str("| id | role | when | changes | why | risk | eval before | eval after | rollback | approver |\n|---|---|---|---|---|---|---|---|---|---|\n");
    }
    for r in &changes {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.id,
            r.role,
            r.at.to_rfc3339(),
            cell(&r.changes),
            cell(&r.why),
            cell(&r.risk),
            cell(&r.eval_before),
            cell(&r.eval_after),
            cell(&r.rollback),
            cell(&r.approver)
        );
    }
    files.push(md_file("04-change-records.md", md));

    // Release gate: the latest report recorded by `lexgate eval run`. Its cases ran on the
    // installation's documents, so a tenant's packet has the gates and the decision, not the
    // cases.
    match storage.latest_release_gate().await? {
        Some(g) => {
            let report: Value = serde_json::from_str(&g.report_json).map_err(|e| Error::internal("release gate", e))?;
            let (latest, md) = match scope {
                Scope::Platform => (report, format!("{PLATFORM_RECORD}\n\n{}", g.report_md)),
                Scope::Tenant(_) => {
                    let summary = gate_summary(&report);
                    let md = gate_summary_md(&summary, &g.decision);
                    (summary, md)
                }
            };
            files.push(json_file(
                "05-release-gate.json",
                &json!({ "record": "platform", "latest": latest, "status": g.decision }),
            )?);
            files.push(md_file("05-release-gate.md", md));
        }
        None => {
            files.push(json_file(
                "05-release-gate.json",
                &json!({ "record": "platform", "latest": null, "status": "none yet" }),
            )?);
            files.push(md_file(
                "05-release-gate.md",
                format!(
                    "# Release gate\n\n{PLATFORM_RECORD}\n\nNone yet: no release-gate report has been recorded by this platform.\n"
                ),
            ));
        }
    }

    // Audit: chain verification and counts.
    let count_values: Vec<Value> = counts
        .iter()
        .map(|(action, outcome, n)| json!({ "action": action, "outcome": outcome, "events": n }))
        .collect();
    files.push(json_file(
        "06-audit.json",
        &json!({ "verification": audit, "counts_of": scope.label(), "counts": count_values }),
    )?);
    let mut md = format!(
        "# Audit log\n\nChain verification (platform record, the whole chain): **{}** — {} events, head `{}`.\n\nEvents by action and outcome ({tenant_record}):\n\n| action | outcome | events |\n|---|---|---|\n",
        audit.problem.as_deref().unwrap_or("intact"),
        audit.events,
        audit.head
    );
    for (action, outcome, n) in &counts {
        let _ = writeln!(md, "| {action} | {outcome} | {n} |");
    }
    files.push(md_file("06-audit.md", md));

    // Deletion receipts.
    let receipt_values: Vec<Value> =
        receipts.iter().map(|r| serde_json::from_str(&r.receipt).unwrap_or(Value::Null)).collect();
    files.push(json_file("07-deletion-receipts.json", &Value::from(receipt_values))?);
    let mut md = format!("# Deletion receipts\n\n{tenant_record}\n\n{} receipts.\n\n", receipts.len());
    if !receipts.is_empty() {
        md.push_str("| receipt | tenant | document | versions | by | when | reason | post-check |\n|---|---|---|---|---|---|---|---|\n");
    }
    for r in &receipts {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            r.id,
            r.tenant_id,
            r.document_id,
            r.versions,
            r.requested_by,
            r.deleted_at.to_rfc3339(),
            cell(&r.reason),
            if r.post_check_passed { "passed" } else { "FAILED" }
        );
    }
    files.push(md_file("07-deletion-receipts.md", md));

    // Oversight plan and incident runbook, filled with what the platform knows.
    let owners: Vec<String> = inventory.iter().map(|m| format!("{} model: {}", m.role, m.owner)).collect();
    let approvers: Vec<String> = cards.iter().map(|c| format!("{}: {}", c.card.set, c.card.approval_owner)).collect();
    files.push(md_file(
        "08-oversight-plan.md",
        format!(
            "# Human-oversight plan (template, filled from the platform)\n\n- Risk tier: {}.\n- Model owners: {}.\n- Data-card approvers ({}): {}.\n- Every answer shows its passages and citations; analysts read the cited text before acting.\n- Reviewers check the audit log (chain {}), deletion receipts ({} of {}) and change records ({}) each month.\n- To fill in: who reviews answers that feed decisions, how often, and how disagreements are escalated.\n",
            risk.tier,
            owners.join("; "),
            scope.label(),
            approvers.join("; "),
            if audit.intact() { "intact" } else { "BROKEN" },
            receipts.len(),
            scope.label(),
            changes.len()
        ),
    ));
    files.push(md_file(
        "09-incident-runbook.md",
        format!(
            "# Incident runbook (template, filled from the platform)\n\n1. Leak or wrong citation reported: find the ask by request id in the audit log (`lexgate audit verify` first: chain {}).\n2. Withhold a document set at once: `lexgate data-cards set-status SET draft --by YOU` (gate {}).\n3. Retire or delete the document: `lexgate set-status` / `lexgate delete` (the receipt proves removal from every store).\n4. Model fault: roll back per the change record; the platform refuses to start on an artifact the inventory does not approve.\n5. To fill in: contacts, regulator notification deadlines, and post-incident review owner.\n",
            if audit.intact() { "intact" } else { "BROKEN" },
            if settings.data_card_gate { "on" } else { "off" }
        ),
    ));

    // The obligation register: counts per regulation, no obligation text.
    let register = crate::service::obligations::register_counts(storage, scope.tenant()).await?;
    files.push(json_file("10-obligation-register.json", &serde_json::to_value(&register).unwrap_or_default())?);
    let mut md = format!(
        "# Obligation register\n\n{tenant_record}\n\nThe current version of each regulation: obligations by review state, gaps (accepted or approved with no confirmed control) and changes against the previous version.\n\n",
    );
    if register.is_empty() {
        md.push_str("No regulation has obligations yet.\n");
    } else {
        md.push_str("| tenant | regulation | version | obligations | proposed | accepted | not applicable | approved | gaps | new | changed | removed |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    }
    for c in &register {
        let s = |k: &str| c.by_status.get(k).copied().unwrap_or(0);
        let ch = |k: &str| c.by_change.get(k).copied().unwrap_or(0);
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            c.tenant,
            cell(&c.document_id),
            c.version,
            c.total,
            s("proposed"),
            s("accepted"),
            s("not_applicable"),
            s("approved"),
            c.gaps,
            ch("new"),
            ch("changed"),
            ch("removed")
        );
    }
    files.push(md_file("10-obligation-register.md", md));

    // Which records are whose, for tools (the Markdown files say it in their headings).
    files.insert(
        0,
        json_file(
            "00-scope.json",
            &json!({
                "scope": scope.label(),
                "tenant": scope.tenant().map(TenantId::as_str),
                "platform_records": PLATFORM_FILES,
                "tenant_records": TENANT_FILES,
            }),
        )?,
    );
    let mut readme = format!(
        "# lexgate governance packet\n\nGenerated {generated} from the platform's database ({}) for {}.\nRisk tier {}; audit chain {}.\n\nPlatform records (the same for every tenant): 01, 03, 04, 05, 08, 09 and the audit chain's verification in 06. Tenant records ({}): 02, the event counts in 06, 07, 10 (`00-scope.json` lists them).\n\n| file | contents |\n|---|---|\n",
        storage.backend_name(),
        scope.label(),
        risk.tier,
        if audit.intact() { "intact" } else { "BROKEN" },
        scope.label()
    );
    for f in &files {
        let _ = writeln!(readme, "| {} | {} bytes |", f.name, f.bytes.len());
    }
    files.insert(0, md_file("README.md", readme));
    Ok(files)
}

/// The release gate's report as a tenant's packet has it: what was gated and decided, without
/// the cases (they name the installation's documents).
fn gate_summary(report: &Value) -> Value {
    let failed = report["failed_cases"].as_array().map_or(0, Vec::len);
    json!({
        "id": report["id"], "created_at": report["created_at"], "configuration": report["configuration"],
        "cases_version": report["cases_version"], "thresholds_version": report["thresholds_version"],
        "gates": report["gates"], "decision": report["decision"], "failed_cases": failed,
    })
}

fn gate_summary_md(summary: &Value, decision: &str) -> String {
    let text = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_owned);
    let mut md = format!(
        "# Release gate {}\n\n{PLATFORM_RECORD} The cases and their failures are in the platform reviewer's packet.\n\n**Decision: {decision}**\n\nConfiguration: {}. Cases version {}, thresholds version {}. Failed cases: {}.\n\n| gate | threshold | result | passed | blocking |\n|---|---|---|---|---|\n",
        text(&summary["id"]),
        text(&summary["configuration"]),
        summary["cases_version"],
        summary["thresholds_version"],
        summary["failed_cases"]
    );
    for g in summary["gates"].as_array().into_iter().flatten() {
        let _ = writeln!(
            md,
            "| {} | {} | {:.4} | {} | {} |",
            text(&g["metric"]),
            text(&g["threshold"]),
            g["result"].as_f64().unwrap_or(f64::NAN),
            if g["passed"].as_bool().unwrap_or(false) { "yes" } else { "**no**" },
            if g["blocking"].as_bool().unwrap_or(false) { "yes" } else { "no" }
        );
    }
    md
}

/// Records in the audit log that a packet of `scope`, of `files` files and `bytes` bytes, left
/// the platform. Callers record it once the packet is delivered (written, or handed to the
/// response).
pub async fn record_export(
    storage: &Storage,
    by: &str,
    tenant: Option<String>,
    scope: &Scope,
    files: usize,
    bytes: usize,
) -> Result<()> {
    storage
        .append_audit(crate::store::AuditRecord {
            actor: by.to_owned(),
            tenant,
            action: "export_packet".to_owned(),
            outcome: "succeeded".to_owned(),
            detail: json!({ "files": files, "bytes": bytes, "scope": scope.label() }),
        })
        .await
}

/// Writes `files` as a ZIP archive (stored, no compression), in order.
pub fn zip(files: &[PacketFile]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for f in files {
        let offset = u32::try_from(out.len()).unwrap_or(u32::MAX);
        let crc = crc32(&f.bytes);
        let size = u32::try_from(f.bytes.len()).unwrap_or(u32::MAX);
        let name = f.name.as_bytes();
        let name_len = u16::try_from(name.len()).unwrap_or(u16::MAX);
        // Local file header: version 2.0, no flags, stored, DOS time 0 / date 1980-01-01.
        out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        out.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0x21, 0]);
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&size.to_le_bytes());
        out.extend_from_slice(&name_len.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(name);
        out.extend_from_slice(&f.bytes);
        // Central directory entry.
        central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        central.extend_from_slice(&[20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0x21, 0]);
        central.extend_from_slice(&crc.to_le_bytes());
        central.extend_from_slice(&size.to_le_bytes());
        central.extend_from_slice(&size.to_le_bytes());
        central.extend_from_slice(&name_len.to_le_bytes());
        central.extend_from_slice(&[0; 12]);
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name);
    }
    let central_offset = u32::try_from(out.len()).unwrap_or(u32::MAX);
    let central_len = u32::try_from(central.len()).unwrap_or(u32::MAX);
    let count = u16::try_from(files.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&central_len.to_le_bytes());
    out.extend_from_slice(&central_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

/// CRC-32 (IEEE 802.3), as ZIP uses it.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for b in bytes {
        crc ^= u32::from(*b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(super::crc32(b"123456789"), 0xcbf4_3926);
    }
}
