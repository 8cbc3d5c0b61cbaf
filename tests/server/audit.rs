//! The hash-chained audit log on both backends: intact after concurrent appends, and `verify`
//! names the event after a direct edit, deletion or reordering in the database.

use sea_orm::{ActiveModelTrait, ActiveValue::Set, ConnectionTrait, Database, DatabaseConnection, EntityTrait};
use server::store::entities::audit_event;
use server::store::{AuditRecord, Storage};
use tempfile::TempDir;

use crate::on_both_backends;
use crate::support::Backend;

/// A fresh database with six audit events, the storage on it, and a second raw connection
/// standing for someone with direct database access.
async fn chain_of_six(backend: Backend) -> (TempDir, Storage, DatabaseConnection, String) {
    let dir = tempfile::tempdir().unwrap();
    let url = crate::support::fresh_database_url(backend, &dir).await;
    let storage = Storage::connect(&url).await.unwrap();
    for i in 0..6 {
        storage
            .append_audit(AuditRecord {
                actor: format!("user{i}@acme-bank"),
                tenant: Some("acme-bank".into()),
                action: "ask".into(),
                outcome: "answered".into(),
                detail: serde_json::json!({ "n": i }),
            })
            .await
            .unwrap();
    }
    let raw = Database::connect(url.clone()).await.unwrap();
    (dir, storage, raw, url)
}

async fn problem(storage: &Storage) -> String {
    storage.verify_audit().await.unwrap().problem.expect("verify must find the tampering")
}

async fn the_audit_chain_holds_and_names_every_kind_of_tampering(backend: Backend) {
    let (_dir, storage, raw, _) = chain_of_six(backend).await;
    let v = storage.verify_audit().await.unwrap();
    assert!(v.intact(), "{v:?}");
    assert_eq!(v.events, 6);

    // Concurrent appends still form one chain.
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let s = storage.clone();
            tokio::spawn(async move {
                s.append_audit(AuditRecord {
                    actor: "cli".into(),
                    tenant: None,
                    action: "concurrent".into(),
                    outcome: "ok".into(),
                    detail: serde_json::json!({ "i": i }),
                })
                .await
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let v = storage.verify_audit().await.unwrap();
    assert!(v.intact(), "{v:?}");
    assert_eq!(v.events, 18);

    // Edited: one field of one event.
    raw.execute_unprepared("UPDATE audit_events SET outcome = 'denied' WHERE id = 3").await.unwrap();
    assert_eq!(problem(&storage).await, "event 3 was edited: its content no longer matches its hash");
    raw.execute_unprepared("UPDATE audit_events SET outcome = 'answered' WHERE id = 3").await.unwrap();
    assert!(storage.verify_audit().await.unwrap().intact(), "restoring the value restores the chain");

    // Reordered: events 3 and 4 swap places, hashes and all.
    let e3 = audit_event::Entity::find_by_id(3).one(&raw).await.unwrap().unwrap();
    let e4 = audit_event::Entity::find_by_id(4).one(&raw).await.unwrap().unwrap();
    for (id, from) in [(3, &e4), (4, &e3)] {
        audit_event::ActiveModel {
            id: Set(id),
            at: Set(from.at),
            actor: Set(from.actor.clone()),
            tenant_id: Set(from.tenant_id.clone()),
            action: Set(from.action.clone()),
            outcome: Set(from.outcome.clone()),
            detail: Set(from.detail.clone()),
            prev_hash: Set(from.prev_hash.clone()),
            hash: Set(from.hash.clone()),
        }
        .update(&raw)
        .await
        .unwrap();
    }
    assert_eq!(problem(&storage).await, "event 3 is out of order: it follows event 4, which now comes after it");

    // Removed: a middle event, then the last one.
    let (_dir, storage, raw, _) = chain_of_six(backend).await;
    raw.execute_unprepared("DELETE FROM audit_events WHERE id = 3").await.unwrap();
    assert_eq!(problem(&storage).await, "events between 2 and 4 were removed");
    let (_dir, storage, raw, _) = chain_of_six(backend).await;
    raw.execute_unprepared("DELETE FROM audit_events WHERE id = 6").await.unwrap();
    assert_eq!(problem(&storage).await, "events after 5 were removed (the chain's head is event 6)");

    // Inserted behind lexgate's back: never sealed, always reported.
    let (_dir, _, raw, url) = chain_of_six(backend).await;
    audit_event::ActiveModel {
        at: Set(chrono::Utc::now()),
        actor: Set("intruder".into()),
        tenant_id: Set(None),
        action: Set("ask".into()),
        outcome: Set("answered".into()),
        detail: Set("{}".into()),
        prev_hash: Set(None),
        hash: Set(None),
        ..Default::default()
    }
    .insert(&raw)
    .await
    .unwrap();
    // Reopening (which seals only events older than the chain) does not adopt it.
    let reopened = Storage::connect(&url).await.unwrap();
    assert_eq!(problem(&reopened).await, "event 7 is not sealed into the chain (written outside lexgate)");
}

on_both_backends!(the_audit_chain_holds_and_names_every_kind_of_tampering);
