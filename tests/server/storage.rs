//! Storage round trips on both backends.

use std::collections::BTreeSet;

use chrono::NaiveDate;
use indexer::{ChunkAcl, Classification, GroupName, PageText, SourceStatus, TenantId};
use server::domain::PrincipalSeed;
use server::domain::Role;
use server::store::{AuditRecord, NewVersion};

use crate::on_both_backends;
use crate::support::{Backend, platform};

fn groups(names: &[&str]) -> BTreeSet<GroupName> {
    names.iter().map(|g| GroupName::parse(g).expect("group")).collect()
}

async fn documents_chunks_and_principals_round_trip(backend: Backend) {
    let (_dir, p) = platform(backend).await;
    let s = &p.storage;
    let acme = TenantId::parse("acme").expect("tenant");
    s.ensure_tenant(&acme, "Acme").await.expect("tenant");
    s.ensure_tenant(&acme, "Acme Bank").await.expect("tenant upsert is idempotent");
    assert!(s.tenant_exists(&acme).await.expect("exists"));

    let seed = PrincipalSeed {
        id: "ann@acme".into(),
        display_name: "Ann".into(),
        tenant: acme.clone(),
        role: Role::Analyst,
        groups: groups(&["staff", "risk"]),
        clearance: Classification::Confidential,
    };
    s.upsert_principal(&seed).await.expect("principal");
    let mut changed = seed.clone();
    changed.groups = groups(&["staff"]);
    s.upsert_principal(&changed).await.expect("principal update");
    let actor = s.actor("ann@acme").await.expect("load").expect("exists");
    assert_eq!(actor.groups, groups(&["staff"]), "memberships are replaced, not merged");
    assert_eq!(actor.clearance, Classification::Confidential);
    assert!(s.actor("nobody@acme").await.expect("load").is_none());

    let pages = vec![PageText {
        number: 3,
        text: "Article 9\n\nSpecial categories of data are processed only with explicit consent of the person.".into(),
    }];
    let chunks = indexer::chunk_pages("policy", 1, &pages);
    assert!(!chunks.is_empty());
    let acl = ChunkAcl {
        tenant: acme.clone(),
        owner: "DPO".into(),
        classification: Classification::Internal,
        allowed_groups: groups(&["staff"]),
        status: SourceStatus::Approved,
        effective_from: NaiveDate::from_ymd_opt(2024, 1, 1).expect("date"),
        expires_at: NaiveDate::from_ymd_opt(2030, 1, 1),
        retention_class: "10y".into(),
    };
    let version = NewVersion {
        document_id: "policy".into(),
        title: "Privacy policy".into(),
        version: 1,
        acl: acl.clone(),
        file_name: "policy.pdf".into(),
        file_sha256: "abc".into(),
        page_count: 3,
        chunks: chunks.clone(),
        embeddings: Vec::new(),
        embedding_model: String::new(),
        scan: Default::default(),
        kind: Default::default(),
        obligations: Vec::new(),
    };
    s.insert_version(&version).await.expect("insert");
    assert!(s.insert_version(&version).await.is_err(), "the same version cannot be written twice");
    assert_eq!(s.version_checksum("policy", 1).await.expect("checksum").as_deref(), Some("abc"));

    let mut ids: Vec<String> = chunks.iter().map(|c| c.id.clone()).collect();
    ids.reverse();
    ids.push("missing".into());
    let stored = s.chunks_by_ids(&ids).await.expect("chunks");
    assert_eq!(stored.len(), chunks.len());
    assert_eq!(stored.iter().map(|c| c.id.clone()).collect::<Vec<_>>(), ids[..chunks.len()].to_vec(), "order kept");
    let first = stored.iter().find(|c| c.id == chunks[0].id).expect("first chunk");
    assert_eq!(first.acl, acl);
    assert_eq!(first.page, 3);
    assert_eq!(first.title, "Privacy policy");
    assert_eq!(first.text, chunks[0].text);
    assert_eq!(s.count_chunks(&acme).await.expect("count"), chunks.len() as u64);
    let docs = s.list_documents(&acme).await.expect("list");
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0].chunk_count, chunks.len());

    s.delete_version("policy", 1).await.expect("delete");
    assert_eq!(s.count_chunks(&acme).await.expect("count"), 0);
    assert!(s.list_documents(&acme).await.expect("list").is_empty());

    s.append_audit(AuditRecord {
        actor: "ann@acme".into(),
        tenant: Some("acme".into()),
        action: "ask".into(),
        outcome: "answered".into(),
        detail: serde_json::json!({ "n": 1 }),
    })
    .await
    .expect("audit");
    let events = s.recent_audit(10).await.expect("events");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].action, "ask");

    s.start_job("job-1", "acme", "ann@acme", 2).await.expect("job");
    s.update_job("job-1", 1, 5, None).await.expect("progress");
    s.update_job("job-1", 1, 5, Some(Err("bad pdf".into()))).await.expect("failed");
    let job = s.job("job-1").await.expect("job").expect("exists");
    assert_eq!((job.status.as_str(), job.documents_done, job.error.as_deref()), ("failed", 1, Some("bad pdf")));
    assert!(job.finished_at.is_some());
}

on_both_backends!(documents_chunks_and_principals_round_trip);
