//! The model inventory: seeded from the governance folder, checked against the artifacts the
//! platform loads (a mismatch stops the start), and every edit writes a change record.

use server::error::Error;
use server::service::Platform;
use server::service::governance::{ChangeRequest, Scope};

use crate::on_both_backends;
use crate::support::{Backend, shared_embedder};

fn change(role: &str, set: &[(&str, &str)]) -> ChangeRequest {
    ChangeRequest {
        role: role.into(),
        set: set.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        why: "new model version".into(),
        risk: "retrieval quality may move; measured below".into(),
        eval_before: "hybrid R@10 0.7926".into(),
        eval_after: "hybrid R@10 0.7930".into(),
        rollback: "restore the previous sha256 and model files".into(),
        approver: "rita@acme-bank".into(),
        recorded_by: "adam@acme-bank".into(),
    }
}

async fn the_inventory_blocks_an_unapproved_model_and_records_every_change(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let settings = crate::support::settings(backend, &dir).await;
    let p = Platform::open_with(settings.clone(), Some(shared_embedder())).await.expect("approved model starts");
    let inventory = p.storage.inventory().await.unwrap();
    let roles: Vec<&str> = inventory.iter().map(|e| e.role.as_str()).collect();
    assert_eq!(
        roles,
        [
            "answer-composer",
            "answer-selector",
            "embedding",
            "embedding-rollback",
            "generator",
            "obligation-classifier",
            "reranker",
            "reranker-rollback"
        ]
    );
    let embedding = inventory.iter().find(|e| e.role == "embedding").unwrap();
    assert_eq!(embedding.artifact_sha256, shared_embedder().model_sha256(), "the file approves what is loaded");

    // Someone approves a different artifact: the loaded model no longer matches, start-up stops.
    let other = "a".repeat(64);
    let record = p.storage.change_inventory(&change("embedding", &[("artifact_sha256", &other)])).await.unwrap();
    assert!(record.changes.contains(&other) && record.changes.contains(shared_embedder().model_sha256()));
    drop(p);
    let err = Platform::open_with(settings.clone(), Some(shared_embedder())).await.expect_err("mismatch stops");
    let Error::User(msg) = err else { panic!("expected a user error, got {err:?}") };
    assert!(msg.contains(&other) && msg.contains(shared_embedder().model_sha256()), "{msg}");
    assert!(msg.contains("refusing to start"), "{msg}");

    // Recording the change back lets it start again; both edits have records, and are audited.
    let storage = server::store::Storage::connect(&settings.database_url()).await.unwrap();
    storage
        .change_inventory(&change(
            "embedding",
            &[("artifact_sha256", shared_embedder().model_sha256()), ("approved_environments", "test, production")],
        ))
        .await
        .unwrap();
    let p = Platform::open_with(settings, Some(shared_embedder())).await.expect("starts after the change");
    let records = p.storage.change_records().await.unwrap();
    assert_eq!(records.len(), 2);
    assert!(records[1].changes.contains("approved_environments"));
    let embedding = p.storage.inventory().await.unwrap().into_iter().find(|e| e.role == "embedding").unwrap();
    assert_eq!(embedding.approved_environments, ["test", "production"]);
    let audit = p.storage.recent_audit(10).await.unwrap();
    assert_eq!(audit.iter().filter(|e| e.action == "change_model_inventory").count(), 2);

    // A change without its justification, or to an unknown field, changes nothing.
    let mut incomplete = change("embedding", &[("owner", "someone else")]);
    incomplete.rollback = " ".into();
    assert!(matches!(p.storage.change_inventory(&incomplete).await, Err(Error::User(_))));
    let unknown = change("embedding", &[("colour", "blue")]);
    assert!(matches!(p.storage.change_inventory(&unknown).await, Err(Error::User(m)) if m.contains("unknown field")));
    let bad_sha = change("embedding", &[("artifact_sha256", "not-a-hash")]);
    assert!(p.storage.change_inventory(&bad_sha).await.is_err());
    assert_eq!(p.storage.change_records().await.unwrap().len(), 2);
}

on_both_backends!(the_inventory_blocks_an_unapproved_model_and_records_every_change);

/// Two processes (two pools) change the inventory at once. Each change reads its entry and then
/// writes it: on SQLite a transaction that starts by reading cannot wait for the write lock, so
/// writes must take it at `BEGIN`, or some of these fail with "database is locked".
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_inventory_changes_wait_their_turn_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = crate::support::fresh_database_url(Backend::Sqlite, &dir).await;
    let first = server::store::Storage::connect(&url).await.unwrap();
    let second = server::store::Storage::connect(&url).await.unwrap();
    let entries =
        server::service::governance::read_inventory_file(&crate::support::repo_root().join("governance")).unwrap();
    first.seed_inventory(&entries).await.unwrap();
    let tasks: Vec<_> = (0..24)
        .map(|i| {
            let storage = if i % 2 == 0 { first.clone() } else { second.clone() };
            tokio::spawn(async move {
                storage.change_inventory(&change("reranker", &[("owner", &format!("owner {i}"))])).await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().expect("every change waits for the lock and lands");
    }
    assert_eq!(first.change_records().await.unwrap().len(), 24);
    assert!(first.verify_audit().await.unwrap().intact());
}

#[tokio::test]
async fn an_unapproved_data_card_makes_its_documents_unretrievable() {
    let (_dir, p) = crate::support::corpus_platform(Backend::Sqlite).await;
    let cards = p.storage.data_cards().await.unwrap();
    assert_eq!(cards.len(), 2);
    let borealis = cards.iter().find(|c| c.card.set == "borealis-insurance").unwrap();
    assert_eq!(borealis.card.status, "approved");
    assert_eq!(borealis.pii_total.total(), 6, "the planted values, counted from the ingestion scans");
    assert_eq!(borealis.pii_by_document.len(), 1);
    assert_eq!(borealis.pages_without_text, 0);

    let question = "how long are claim files kept";
    assert!(!crate::ingest::ask_as(&p, "carol@borealis-insurance", question, None).await.is_empty());
    p.storage.set_data_card_status("borealis-insurance", "draft", "dan@borealis-insurance").await.unwrap();

    // Withheld for every reader of the set, with a clear message and an audited decision; the
    // other tenant is unaffected.
    let carol = p.storage.actor("carol@borealis-insurance").await.unwrap().unwrap();
    let state = server::http::app::shared_state(&p).await.unwrap();
    let request = server::service::ask::AskRequest { question: question.into(), as_of: None, limit: 5 };
    match state.ask.ask(&carol, &request).await {
        Err(Error::User(msg)) => assert!(msg.contains("data card is not approved"), "{msg}"),
        other => panic!("expected the gate to withhold answers, got {other:?}"),
    }
    let audit = p.storage.recent_audit(5).await.unwrap();
    let blocked = audit.iter().find(|e| e.outcome == "blocked_by_data_card").expect("the block is audited");
    assert!(blocked.actor.starts_with("principal:") && !blocked.actor.contains("carol"), "{}", blocked.actor);
    assert!(blocked.detail.contains("request_id") && !blocked.detail.contains(question));
    assert!(audit.iter().any(|e| e.action == "set_data_card_status"));
    assert!(!crate::ingest::ask_as(&p, "alice@acme-bank", "retention of customer records", None).await.is_empty());

    // The gate is a setting: off, the set answers again; approved again, it answers with the gate on.
    let mut ungated = server::http::app::shared_state(&p).await.unwrap();
    ungated.ask.data_card_gate = false;
    assert!(!ungated.ask.ask(&carol, &request).await.unwrap().passages.is_empty());
    p.storage.set_data_card_status("borealis-insurance", "approved", "dan@borealis-insurance").await.unwrap();
    assert!(!state.ask.ask(&carol, &request).await.unwrap().passages.is_empty());
    assert!(p.storage.set_data_card_status("borealis-insurance", "maybe", "x").await.is_err());
}

/// The risk classification as the operator sees it, over every tenant's records.
pub(crate) async fn platform_risk(p: &Platform) -> server::service::governance::RiskClassification {
    server::service::governance::risk_classification(&p.storage, &p.settings, &Scope::Platform).await.unwrap()
}

#[tokio::test]
async fn the_risk_tier_follows_the_questionnaire_and_controls_follow_the_platform_state() {
    let (_dir, p) = crate::support::corpus_platform(Backend::Sqlite).await;
    let risk = platform_risk(&p).await;
    assert_eq!(risk.tier, 3, "confidential data and several organisations reach tier 3");
    let met = |r: &server::service::governance::RiskClassification, prefix: &str| {
        r.controls.iter().find(|c| c.control.starts_with(prefix)).map(|c| c.met).expect(prefix)
    };
    assert!(met(&risk, "append-only, hash-chained audit log"));
    assert!(met(&risk, "approved data card"));
    assert!(!met(&risk, "evaluation release gate"), "no release gate has run yet");
    assert!(risk.controls.iter().all(|c| c.from_tier <= 3));

    p.storage.set_data_card_status("acme-bank", "draft", "rita@acme-bank").await.unwrap();
    let risk = platform_risk(&p).await;
    assert!(!met(&risk, "approved data card"));
    // A tenant's reviewer sees the control over their own card only.
    let borealis = Scope::Tenant(indexer::TenantId::parse("borealis-insurance").unwrap());
    let risk = server::service::governance::risk_classification(&p.storage, &p.settings, &borealis).await.unwrap();
    assert!(met(&risk, "approved data card"), "Acme's draft card is not Borealis's control");

    // An answer that is not an option is refused, naming the options.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("risk-classification.toml"),
        std::fs::read_to_string(p.settings.governance_dir.join("risk-classification.toml"))
            .unwrap()
            .replace("exposure = \"several organisations\"", "exposure = \"the moon\""),
    )
    .unwrap();
    let err = server::service::governance::classify(dir.path()).unwrap_err().to_string();
    assert!(err.contains("the moon") && err.contains("several organisations"), "{err}");
}

#[tokio::test]
async fn the_exported_packet_unzips_with_every_section_and_the_databases_figures() {
    let (dir, p) = crate::support::corpus_platform(Backend::Sqlite).await;
    let admin = p.storage.actor("adam@acme-bank").await.unwrap().unwrap();
    let receipt = p.documents().delete(&admin, "acme-erasure-requests", None, "packet test").await.unwrap();
    p.storage.change_inventory(&change("answer-composer", &[("next_review", "2027-01-31")])).await.unwrap();

    let files = server::service::packet::build(&p.storage, &p.settings, &Scope::Platform).await.unwrap();
    let zip_path = dir.path().join("packet.zip");
    std::fs::write(&zip_path, server::service::packet::zip(&files)).unwrap();
    let out = dir.path().join("packet");
    let unzip = std::process::Command::new("python3")
        .args(["-m", "zipfile", "-e"])
        .arg(&zip_path)
        .arg(&out)
        .status()
        .expect("python3 unzips");
    assert!(unzip.success());
    let read = |name: &str| std::fs::read_to_string(out.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let json = |name: &str| serde_json::from_str::<serde_json::Value>(&read(name)).unwrap();

    let readme = read("README.md");
    for section in [
        "01-use-case-and-risk",
        "02-data-cards",
        "03-model-inventory",
        "04-change-records",
        "05-release-gate",
        "06-audit",
        "07-deletion-receipts",
        "10-obligation-register",
    ] {
        assert!(readme.contains(&format!("{section}.md")) && readme.contains(&format!("{section}.json")), "{section}");
    }
    assert!(readme.contains("08-oversight-plan.md") && readme.contains("09-incident-runbook.md"));

    assert_eq!(json("01-use-case-and-risk.json")["tier"], 3);
    let cards = json("02-data-cards.json");
    let borealis = cards.as_array().unwrap().iter().find(|c| c["set"] == "borealis-insurance").unwrap();
    let stored = p.storage.data_cards().await.unwrap();
    let stored_borealis = stored.iter().find(|c| c.card.set == "borealis-insurance").unwrap();
    assert_eq!(borealis["pii_total"]["email"], stored_borealis.pii_total.email);
    assert_eq!(borealis["document_versions"], stored_borealis.document_versions);
    assert_eq!(json("03-model-inventory.json").as_array().unwrap().len(), p.storage.inventory().await.unwrap().len());
    let records = json("04-change-records.json");
    assert_eq!(records.as_array().unwrap().len(), 1);
    assert_eq!(records[0]["changes"]["next_review"]["to"], "2027-01-31");
    assert_eq!(json("05-release-gate.json")["status"], "none yet");
    let audit = json("06-audit.json");
    let verification = p.storage.verify_audit().await.unwrap();
    assert_eq!(audit["verification"]["events"], verification.events);
    assert!(audit["verification"]["problem"].is_null());
    let receipts = json("07-deletion-receipts.json");
    assert_eq!(receipts.as_array().unwrap().len(), 1);
    assert_eq!(receipts[0]["id"], receipt.id.as_str());
    assert_eq!(receipts[0]["post_check"]["passed"], true);
    // The corpus regulation's register, counted without its text.
    let register = json("10-obligation-register.json");
    let regulation =
        register.as_array().unwrap().iter().find(|r| r["document_id"] == "sample-ict-incident-regulation").unwrap();
    assert_eq!((regulation["total"].as_u64(), regulation["by_status"]["proposed"].as_u64()), (Some(9), Some(9)));
    assert!(!read("10-obligation-register.md").contains("initial notification"), "counts, never obligation text");
    assert!(read("07-deletion-receipts.md").contains(&receipt.id));
    assert!(read("08-oversight-plan.md").contains("Risk tier: 3"));
    assert_eq!(json("00-scope.json")["tenant"], serde_json::Value::Null, "the operator's packet has every tenant");

    // A tenant's packet: its own card and receipts, the platform's records, labelled as such.
    let acme = Scope::Tenant(indexer::TenantId::parse("acme-bank").unwrap());
    let files = server::service::packet::build(&p.storage, &p.settings, &acme).await.unwrap();
    let file = |name: &str| {
        let f = files.iter().find(|f| f.name == name).unwrap_or_else(|| panic!("{name}"));
        String::from_utf8(f.bytes.clone()).unwrap()
    };
    let cards: serde_json::Value = serde_json::from_str(&file("02-data-cards.json")).unwrap();
    assert_eq!(cards.as_array().unwrap().iter().map(|c| c["set"].as_str().unwrap()).collect::<Vec<_>>(), ["acme-bank"]);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&file("00-scope.json")).unwrap()["tenant"], "acme-bank");
    assert!(file("03-model-inventory.md").contains("Platform record"));
    assert!(file("02-data-cards.md").contains("Tenant record: acme-bank only."));
    assert!(
        files.iter().all(|f| !String::from_utf8_lossy(&f.bytes).to_lowercase().contains("borealis")),
        "nothing of Borealis"
    );
    let borealis = Scope::Tenant(indexer::TenantId::parse("borealis-insurance").unwrap());
    let files = server::service::packet::build(&p.storage, &p.settings, &borealis).await.unwrap();
    let receipts = files.iter().find(|f| f.name == "07-deletion-receipts.json").unwrap();
    assert_eq!(String::from_utf8_lossy(&receipts.bytes).trim(), "[]", "Acme's receipt is not Borealis's");
}
