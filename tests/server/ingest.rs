//! Ingesting the shipped corpus, access through the ask flow, and bad input that changes nothing.

use std::path::Path;

use chrono::NaiveDate;
use indexer::{Classification, TenantId};
use server::service::Platform;
use server::service::ask::AskRequest;
use server::service::ingest::Outcome;
use server::service::manifest::Manifest;

use crate::on_both_backends;
use crate::support::{Backend, corpus_manifest, corpus_platform, platform, repo_root};

/// Document ids of the passages `principal` gets for `question`.
pub async fn ask_as(p: &Platform, principal: &str, question: &str, as_of: Option<&str>) -> Vec<(String, u32)> {
    let actor = p.storage.actor(principal).await.expect("load").expect("principal exists");
    let state = server::http::app::shared_state(p).await.expect("state");
    let request = AskRequest {
        question: question.into(),
        as_of: as_of.map(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").expect("date")),
        limit: 50,
    };
    let outcome = state.ask.ask(&actor, &request).await.expect("ask");
    outcome.passages.iter().map(|p| (p.chunk.document_id.clone(), p.chunk.version)).collect()
}

fn docs(hits: &[(String, u32)]) -> Vec<&str> {
    let mut d: Vec<&str> = hits.iter().map(|(id, _)| id.as_str()).collect();
    d.sort_unstable();
    d.dedup();
    d
}

async fn the_corpus_ingests_and_each_user_sees_only_what_they_may_read(backend: Backend) {
    let (_dir, p) = corpus_platform(backend).await;
    let acme = TenantId::parse("acme-bank").expect("tenant");
    let borealis = TenantId::parse("borealis-insurance").expect("tenant");
    assert!(p.storage.count_chunks(&acme).await.expect("count") > 30);
    assert!(p.storage.count_chunks(&borealis).await.expect("count") > 5);

    // A second run changes nothing.
    let report = p.ingestor().ingest_manifest(&corpus_manifest(), "test", &mut |_| {}).await.expect("re-ingest");
    assert_eq!((report.ingested, report.unchanged, report.chunks), (0, corpus_manifest().documents.len(), 0));

    // Tenant isolation: the same question, asked in each tenant, never crosses over.
    let carol = ask_as(&p, "carol@borealis-insurance", "rules about deleting customer data", None).await;
    assert!(!carol.is_empty());
    assert!(docs(&carol).iter().all(|d| d.starts_with("borealis-")), "{carol:?}");
    let alice = ask_as(&p, "alice@acme-bank", "rules about deleting customer data", None).await;
    assert!(docs(&alice).contains(&"acme-erasure-requests"), "{alice:?}");
    assert!(docs(&alice).iter().all(|d| d.starts_with("acme-")), "{alice:?}");

    // The restricted playbook: only the financial-crime group sees it, whatever the clearance.
    let q = "internal suspicious activity report money laundering";
    assert!(docs(&ask_as(&p, "fiona@acme-bank", q, None).await).contains(&"acme-aml-investigations"));
    assert!(!docs(&ask_as(&p, "alice@acme-bank", q, None).await).contains(&"acme-aml-investigations"));
    assert!(!docs(&ask_as(&p, "bob@acme-bank", q, None).await).contains(&"acme-aml-investigations"));

    // Board report: group board and clearance confidential.
    let q = "solvency ratio ransomware";
    assert!(docs(&ask_as(&p, "dan@borealis-insurance", q, None).await).contains(&"borealis-board-risk-report"));
    assert!(!docs(&ask_as(&p, "carol@borealis-insurance", q, None).await).contains(&"borealis-board-risk-report"));

    // Withdrawn and expired documents never answer today.
    let q = "cloud services data location exit plan VPN laptops printing";
    let today_hits = ask_as(&p, "alice@acme-bank", q, None).await;
    let today = docs(&today_hits);
    assert!(
        !today.contains(&"acme-cloud-outsourcing-2022") && !today.contains(&"acme-remote-work-security"),
        "{today:?}"
    );
    // The expired one did answer while it was in force; the withdrawn one never does.
    let back_then_hits = ask_as(&p, "alice@acme-bank", q, Some("2023-06-01")).await;
    let back_then = docs(&back_then_hits);
    assert!(back_then.contains(&"acme-remote-work-security"), "{back_then:?}");
    assert!(!back_then.contains(&"acme-cloud-outsourcing-2022"));

    // Two versions: the one in force on the date answers.
    let q = "how long are customer onboarding files kept";
    let before = ask_as(&p, "bob@acme-bank", q, Some("2025-03-01")).await;
    let after = ask_as(&p, "bob@acme-bank", q, Some("2025-08-01")).await;
    let versions = |hits: &[(String, u32)]| -> Vec<u32> {
        hits.iter().filter(|(d, _)| d == "acme-data-retention").map(|(_, v)| *v).collect()
    };
    assert!(!versions(&before).is_empty() && versions(&before).iter().all(|v| *v == 1), "{before:?}");
    assert!(!versions(&after).is_empty() && versions(&after).iter().all(|v| *v == 2), "{after:?}");

    // Every ask is audited without the question text.
    let events = p.storage.recent_audit(100).await.expect("audit");
    let asks: Vec<_> = events.iter().filter(|e| e.action == "ask").collect();
    assert!(asks.len() >= 10);
    assert!(asks.iter().all(|e| !e.detail.contains("deleting") && e.detail.contains("query_hash")));
    // Each names its request, the models and fusion used, the policy decision and stage timings,
    // and the principal only as a keyed hash.
    for e in &asks {
        let d: serde_json::Value = serde_json::from_str(&e.detail).unwrap();
        assert_eq!(d["request_id"].as_str().map(str::len), Some(16));
        assert_eq!(d["models"]["embedding"].as_str().map(str::len), Some(64));
        assert_eq!(d["models"]["answer_selector"].as_str().map(str::len), Some(64), "the sentence order's model");
        assert!(d["policy"].as_str().is_some_and(|p| p.starts_with("allowed")));
        assert!(d["stages_us"]["bm25"].is_u64());
        assert!(e.actor.starts_with("principal:") && !e.actor.contains('@'), "{}", e.actor);
    }
    assert!(p.storage.verify_audit().await.unwrap().intact());
}

on_both_backends!(the_corpus_ingests_and_each_user_sees_only_what_they_may_read);

fn write_manifest(dir: &Path, documents: &str) -> std::path::PathBuf {
    let text = format!(
        r#"
[[tenants]]
id = "acme-bank"
name = "Acme"

{documents}
"#
    );
    let path = dir.join("manifest.toml");
    std::fs::write(&path, text).expect("write manifest");
    path
}

fn document_entry(id: &str, file: &str) -> String {
    format!(
        r#"
[[documents]]
id = "{id}"
title = "{id}"
version = 1
file = "{file}"
tenant = "acme-bank"
owner = "Owner"
classification = "internal"
groups = ["staff"]
status = "approved"
effective_from = "2024-01-01"
retention = "standard"
"#
    )
}

async fn assert_nothing_stored(p: &Platform) {
    let acme = TenantId::parse("acme-bank").expect("tenant");
    assert_eq!(p.storage.count_chunks(&acme).await.expect("count"), 0, "no chunk was stored");
    let reader = indexer::Reader {
        tenant: acme,
        groups: ["staff".parse_group()].into_iter().collect(),
        clearance: Classification::Restricted,
        as_of: NaiveDate::from_ymd_opt(2026, 1, 1).expect("date"),
        documents: None,
    };
    assert_eq!(p.bm25.count_visible(&reader).expect("count"), 0, "nothing was indexed");
}

trait ParseGroup {
    fn parse_group(self) -> indexer::GroupName;
}

impl ParseGroup for &str {
    fn parse_group(self) -> indexer::GroupName {
        indexer::GroupName::parse(self).expect("group")
    }
}

#[tokio::test]
async fn a_bad_file_in_a_manifest_stops_the_run_before_anything_is_written() {
    let good = repo_root().join("corpus/pdf/acme-access-review-standard.pdf");
    let cases: [(&str, Vec<u8>, &str); 3] = [
        ("notes.pdf", b"meeting notes, not a PDF".to_vec(), "is not a PDF"),
        ("broken.pdf", b"%PDF-1.7\n1 0 obj << /Type /Catalog".to_vec(), "could not be read as a PDF"),
        ("locked.pdf", encrypted_copy(&good), "encrypted"),
    ];
    for (name, bytes, expected) in cases {
        let (dir, p) = platform(Backend::Sqlite).await;
        std::fs::copy(&good, dir.path().join("good.pdf")).expect("copy");
        std::fs::write(dir.path().join(name), bytes).expect("write");
        let manifest = write_manifest(
            dir.path(),
            &format!("{}{}", document_entry("good-doc", "good.pdf"), document_entry("bad-doc", name)),
        );
        let manifest = Manifest::load(&manifest).expect("manifest parses");
        let err = p.ingestor().ingest_manifest(&manifest, "test", &mut |_| {}).await.expect_err("must fail");
        let msg = err.to_string();
        assert!(msg.contains("bad-doc") && msg.contains(expected), "{name}: {msg}");
        assert_nothing_stored(&p).await;
        assert!(!p.settings.files_dir().join("good-doc").exists(), "no file was stored");
    }
}

fn encrypted_copy(path: &Path) -> Vec<u8> {
    use pdf_extract_reexport::{Document, Object, dictionary};
    let mut doc = Document::load(path).expect("load");
    let encrypt = doc.add_object(dictionary! {
        "Filter" => "Standard", "V" => 2, "R" => 3, "Length" => 128, "P" => -3904,
        "O" => Object::string_literal(vec![7u8; 32]), "U" => Object::string_literal(vec![9u8; 32]),
    });
    doc.trailer.set("Encrypt", encrypt);
    doc.trailer.set("ID", vec![Object::string_literal(vec![1u8; 16]), Object::string_literal(vec![1u8; 16])]);
    let mut out = Vec::new();
    doc.save_to(&mut out).expect("save");
    out
}

/// lopdf as the indexer re-exports it, so the test does not compile a second copy.
mod pdf_extract_reexport {
    pub use indexer::pdf::lopdf::*;
}

#[test]
fn manifest_errors_name_the_entry_and_the_problem() {
    let dir = tempfile::tempdir().expect("tempdir");
    let unknown_tenant = document_entry("doc", "x.pdf").replace("tenant = \"acme-bank\"", "tenant = \"globex\"");
    let err = Manifest::load(&write_manifest(dir.path(), &unknown_tenant)).expect_err("unknown tenant");
    assert!(err.to_string().contains("unknown tenant 'globex'"), "{err}");

    let missing_owner = document_entry("doc", "x.pdf").replace("owner = \"Owner\"\n", "");
    let err = Manifest::load(&write_manifest(dir.path(), &missing_owner)).expect_err("missing field");
    assert!(err.to_string().contains("missing field `owner`"), "{err}");

    let bad_class = document_entry("doc", "x.pdf").replace("\"internal\"", "\"top-secret\"");
    let err = Manifest::load(&write_manifest(dir.path(), &bad_class)).expect_err("bad classification");
    assert!(err.to_string().contains("top-secret"), "{err}");

    let bad_dates =
        document_entry("doc", "x.pdf").replace("effective_from = \"2024-01-01\"", "effective_from = \"2024-13-01\"");
    let err = Manifest::load(&write_manifest(dir.path(), &bad_dates)).expect_err("bad date");
    assert!(err.to_string().contains("not a date"), "{err}");

    let twice = format!("{}{}", document_entry("doc", "x.pdf"), document_entry("doc", "x.pdf"));
    let err = Manifest::load(&write_manifest(dir.path(), &twice)).expect_err("duplicate");
    assert!(err.to_string().contains("listed twice"), "{err}");
}

#[tokio::test]
async fn a_changed_file_under_an_existing_version_is_refused() {
    let (dir, p) = platform(Backend::Sqlite).await;
    let root = repo_root().join("corpus/pdf");
    std::fs::copy(root.join("acme-access-review-standard.pdf"), dir.path().join("doc.pdf")).expect("copy");
    let manifest = Manifest::load(&write_manifest(dir.path(), &document_entry("doc", "doc.pdf"))).expect("manifest");
    let report = p.ingestor().ingest_manifest(&manifest, "test", &mut |_| {}).await.expect("first ingest");
    assert_eq!(report.ingested, 1);
    let before = p.storage.count_chunks(&TenantId::parse("acme-bank").expect("t")).await.expect("count");

    std::fs::copy(root.join("acme-vendor-onboarding-faq.pdf"), dir.path().join("doc.pdf")).expect("replace");
    let mut progress = Vec::new();
    let err = p
        .ingestor()
        .ingest_manifest(&manifest, "test", &mut |pr| progress.push(pr.outcome.clone()))
        .await
        .expect_err("changed content under the same version");
    assert!(err.to_string().contains("new version"), "{err}");
    assert!(progress.iter().all(|o| *o != Outcome::Ingested { chunks: 0 }));
    assert_eq!(p.storage.count_chunks(&TenantId::parse("acme-bank").expect("t")).await.expect("count"), before);
}

#[tokio::test]
async fn the_pii_scan_counts_the_planted_values_exactly_and_stores_none_of_them() {
    let (_dir, p) = corpus_platform(Backend::Sqlite).await;
    let scan = p.storage.version_scan("borealis-claims-data-handling", 1).await.unwrap().expect("stored");
    assert_eq!(
        scan.pii,
        indexer::PiiCounts { email: 2, phone: 1, iban: 1, payment_card: 1, national_id: 1 },
        "the planted values in corpus/src/borealis-claims-data-handling.txt"
    );
    assert_eq!(scan.pages_without_text, 0);
    // Every other corpus document is free of personal data.
    for d in corpus_manifest().documents.iter().filter(|d| d.id != "borealis-claims-data-handling") {
        let other = p.storage.version_scan(&d.id, d.version).await.unwrap().unwrap();
        assert_eq!(other.pii.total(), 0, "{}", d.id);
    }
    // Only counts are recorded: no planted value appears in the scan or the audit log.
    let planted = ["privacy-team@borealis.example", "7946 0958", "GB82", "4111 1111", "AB 12 34 56 C"];
    let summary = serde_json::to_string(&scan).unwrap();
    let audit: String = p.storage.recent_audit(100).await.unwrap().into_iter().map(|e| e.detail).collect();
    for value in planted {
        assert!(!summary.contains(value) && !audit.contains(value), "{value} leaked into a record");
    }
}
