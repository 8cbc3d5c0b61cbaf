//! The model inventory: seeded from the governance folder, checked against the artifacts the
//! platform loads (a mismatch stops the start), and every edit writes a change record.

use server::app::Platform;
use server::error::Error;
use server::governance::ChangeRequest;

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
    assert_eq!(roles, ["answer-composer", "embedding", "reranker"]);
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
    let storage = server::storage::Storage::connect(&settings.database_url()).await.unwrap();
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
