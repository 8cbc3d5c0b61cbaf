//! Document life cycle across every store, with the real model and real indexes: deletion (at
//! once and after a restart), retirement, tenant isolation of every retrieval method, reindexing
//! and recovery of an index left behind by a crash.

use std::collections::BTreeSet;

use indexer::{Classification, GroupName, Method, Reader, SourceStatus, TenantId};
use server::error::Error;
use server::service::Platform;
use server::settings::{EmbeddingModel, RerankerModel};
use server::store::Storage;

use crate::on_both_backends;
use crate::support::{Backend, corpus_platform, shared_embedder};

const METHODS: [Method; 3] = [Method::Bm25, Method::Dense, Method::Hybrid];

/// A reader of `tenant` in every group of the corpus, with the highest clearance.
fn all_seeing(tenant: &str) -> Reader {
    let groups = ["staff", "compliance", "financial-crime", "board", "claims"];
    Reader {
        tenant: TenantId::parse(tenant).unwrap(),
        groups: groups.iter().map(|g| GroupName::parse(g).unwrap()).collect(),
        clearance: Classification::Restricted,
        as_of: server::domain::today(),
        documents: None,
    }
}

/// Chunk ids and texts of one stored document (all versions).
async fn chunks_of(p: &Platform, document_id: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for v in p.storage.versions(document_id).await.unwrap() {
        let version = u32::try_from(v.version).unwrap();
        for c in p.storage.indexable_chunks(Some((document_id, version))).await.unwrap() {
            out.push((c.chunk.id, c.chunk.text));
        }
    }
    out
}

/// Chunk ids the index returns (no database re-check: this is what the indexes themselves hold).
fn index_hits(p: &Platform, reader: &Reader, query: &str, method: Method) -> Vec<String> {
    p.retriever().search(reader, query, method, 50).unwrap().hits.into_iter().map(|h| h.chunk_id).collect()
}

/// Closes a platform and opens it again on the same database and data folder.
async fn restart(p: Platform) -> Platform {
    let settings = (*p.settings).clone();
    drop(p);
    Platform::open_with(settings, Some(shared_embedder())).await.expect("reopen")
}

async fn deletion_removes_a_document_from_every_store_at_once_and_after_restart(backend: Backend) {
    let (_dir, p) = corpus_platform(backend).await;
    let doc = "acme-data-retention";
    let chunks = chunks_of(&p, doc).await;
    let ids: BTreeSet<String> = chunks.iter().map(|(id, _)| id.clone()).collect();
    let reader = all_seeing("acme-bank");
    let query: String = chunks[0].1.chars().take(300).collect();
    for m in METHODS {
        assert!(index_hits(&p, &reader, &query, m).iter().any(|h| ids.contains(h)), "{m:?} finds it before deletion");
    }

    let admin = p.storage.actor("adam@acme-bank").await.unwrap().unwrap();
    let receipt = p.documents().delete(&admin, doc, None, "retention period ended").await.unwrap();
    assert_eq!(receipt.versions, vec![1, 2]);
    assert_eq!(receipt.removed.database.versions, 2);
    assert_eq!(receipt.removed.database.chunks, ids.len() as u64);
    assert_eq!(receipt.removed.database.embeddings, ids.len() as u64);
    assert!(receipt.removed.database.document_removed);
    assert_eq!(receipt.removed.bm25_chunks, ids.len());
    assert_eq!(receipt.removed.vectors_tombstoned, ids.len());
    assert_eq!(receipt.removed.stored_files, 2);
    assert!(receipt.post_check.passed, "{:?}", receipt.post_check);
    assert!(receipt.post_check.probe_searches >= 3);
    assert!(!p.settings.files_dir().join(doc).exists(), "the stored files are gone");

    for (_, text) in &chunks {
        let q: String = text.chars().take(300).collect();
        for m in METHODS {
            assert!(!index_hits(&p, &reader, &q, m).iter().any(|h| ids.contains(h)), "{m:?} after deletion");
        }
    }
    let stored = p.storage.receipts(&reader.tenant).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].id, receipt.id);
    assert!(stored[0].post_check_passed);
    let audit = p.storage.recent_audit(5).await.unwrap();
    assert!(audit.iter().any(|e| e.action == "delete_document" && e.detail.contains(&receipt.id)));

    let p = restart(p).await;
    assert_eq!(p.bm25_difference().await.unwrap(), None);
    for m in METHODS {
        assert!(!index_hits(&p, &reader, &query, m).iter().any(|h| ids.contains(h)), "{m:?} after restart");
    }
    assert!(p.storage.document(doc).await.unwrap().is_none());
}

on_both_backends!(deletion_removes_a_document_from_every_store_at_once_and_after_restart);

#[tokio::test]
async fn deleting_one_version_keeps_the_others() {
    let (_dir, p) = corpus_platform(Backend::Sqlite).await;
    let doc = "acme-data-retention";
    let admin = p.storage.actor("adam@acme-bank").await.unwrap().unwrap();
    let v1: BTreeSet<String> =
        p.storage.indexable_chunks(Some((doc, 1))).await.unwrap().into_iter().map(|c| c.chunk.id).collect();
    let receipt = p.documents().delete(&admin, doc, Some(1), "superseded").await.unwrap();
    assert_eq!(receipt.versions, vec![1]);
    assert!(!receipt.removed.database.document_removed);
    assert!(receipt.post_check.passed);
    let left: Vec<u32> =
        p.storage.versions(doc).await.unwrap().iter().map(|v| u32::try_from(v.version).unwrap()).collect();
    assert_eq!(left, vec![2]);
    assert!(p.settings.files_dir().join(doc).join("v2.pdf").is_file());
    // Version 1 was in force in 2023; asking as of then now finds nothing of it.
    let mut reader = all_seeing("acme-bank");
    reader.as_of = chrono::NaiveDate::from_ymd_opt(2023, 6, 1).unwrap();
    for m in METHODS {
        assert!(!index_hits(&p, &reader, "retention of customer records", m).iter().any(|h| v1.contains(h)));
    }
    assert!(matches!(
        p.documents().delete(&admin, doc, Some(1), "again").await,
        Err(Error::User(msg)) if msg.contains("no version 1")
    ));
}

#[tokio::test]
async fn only_an_admin_of_the_documents_tenant_may_delete_or_retire_it() {
    let (_dir, p) = corpus_platform(Backend::Sqlite).await;
    let doc = "acme-data-retention";
    let analyst = p.storage.actor("alice@acme-bank").await.unwrap().unwrap();
    assert!(matches!(p.documents().delete(&analyst, doc, None, "why not").await, Err(Error::Forbidden)));
    assert!(matches!(
        p.documents().set_status(&analyst, doc, None, SourceStatus::Withdrawn).await,
        Err(Error::Forbidden)
    ));
    // An admin of another tenant is told the document does not exist.
    let mut other = p.storage.actor("adam@acme-bank").await.unwrap().unwrap();
    other.tenant = TenantId::parse("borealis-insurance").unwrap();
    assert!(matches!(p.documents().delete(&other, doc, None, "mine now").await, Err(Error::NotFound)));
    let admin = p.storage.actor("adam@acme-bank").await.unwrap().unwrap();
    assert!(matches!(p.documents().delete(&admin, doc, None, "  ").await, Err(Error::User(_))));
    assert!(matches!(p.documents().delete(&admin, "no-such-document", None, "x").await, Err(Error::NotFound)));

    assert!(p.storage.document(doc).await.unwrap().is_some(), "nothing was deleted");
    let denials = p.storage.recent_audit(20).await.unwrap();
    assert_eq!(denials.iter().filter(|e| e.outcome == "denied").count(), 3);
}

#[tokio::test]
async fn retiring_hides_a_document_without_deleting_it_and_approving_brings_it_back() {
    let (_dir, p) = corpus_platform(Backend::Sqlite).await;
    let doc = "acme-ict-incident-reporting";
    let chunks = chunks_of(&p, doc).await;
    let ids: BTreeSet<String> = chunks.iter().map(|(id, _)| id.clone()).collect();
    let query: String = chunks[1].1.chars().take(300).collect();
    let reader = all_seeing("acme-bank");
    let admin = p.storage.actor("adam@acme-bank").await.unwrap().unwrap();

    let change = p.documents().set_status(&admin, doc, None, SourceStatus::Withdrawn).await.unwrap();
    assert_eq!(change.chunks, ids.len() as u64);
    for m in METHODS {
        assert!(!index_hits(&p, &reader, &query, m).iter().any(|h| ids.contains(h)), "{m:?} while withdrawn");
    }
    assert_eq!(chunks_of(&p, doc).await.len(), ids.len(), "retiring deletes nothing");
    let p = restart(p).await;
    for m in METHODS {
        assert!(!index_hits(&p, &reader, &query, m).iter().any(|h| ids.contains(h)), "{m:?} withdrawn, restarted");
    }

    p.documents().set_status(&admin, doc, None, SourceStatus::Approved).await.unwrap();
    for m in METHODS {
        assert!(index_hits(&p, &reader, &query, m).iter().any(|h| ids.contains(h)), "{m:?} approved again");
    }
}

#[tokio::test]
async fn a_tenant_b_reader_gets_no_tenant_a_chunk_from_any_method_even_quoting_it() {
    let (_dir, p) = corpus_platform(Backend::Sqlite).await;
    let acme_chunks: Vec<_> = p
        .storage
        .indexable_chunks(None)
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.acl.tenant.as_str() == "acme-bank")
        .collect();
    let acme: BTreeSet<String> = acme_chunks.iter().map(|c| c.chunk.id.clone()).collect();
    let acme_texts: Vec<String> = acme_chunks.iter().map(|c| c.chunk.text.chars().take(400).collect()).collect();
    assert!(acme_texts.len() > 40);
    let borealis = all_seeing("borealis-insurance");
    let mut borealis_hits = 0;
    for text in &acme_texts {
        for m in METHODS {
            let hits = index_hits(&p, &borealis, text, m);
            assert!(!hits.iter().any(|h| acme.contains(h)), "{m:?} leaked a tenant-A chunk for {text:?}");
            borealis_hits += hits.len();
        }
    }
    // The reader does get answers, from their own tenant: the filter restricts, it does not blank.
    assert!(borealis_hits > 0);
    // The same quotes find the quoted chunk for a tenant-A reader allowed to read it, so the
    // test can fail.
    let acme_reader = all_seeing("acme-bank");
    let readable: Vec<_> = acme_chunks.iter().filter(|c| c.acl.permits(&acme_reader)).collect();
    assert!(readable.len() > 30);
    for c in readable {
        let quote: String = c.chunk.text.chars().take(400).collect();
        for m in METHODS {
            assert!(index_hits(&p, &acme_reader, &quote, m).contains(&c.chunk.id), "{m:?} finds its own quote");
        }
    }
}

/// (reader tenant, query) pairs whose results reindexing must reproduce.
const PROBES: [(&str, &str); 4] = [
    ("acme-bank", "how long are customer records retained"),
    ("acme-bank", "report a major ICT incident to the regulator"),
    ("borealis-insurance", "third-party register of ICT providers"),
    ("borealis-insurance", "claims data handling and access"),
];

fn snapshot(p: &Platform) -> Vec<Vec<(String, i64)>> {
    let mut out = Vec::new();
    for (tenant, query) in PROBES {
        for m in METHODS {
            let hits = p.retriever().search(&all_seeing(tenant), query, m, 10).unwrap().hits;
            assert!(!hits.is_empty(), "{tenant} {query} {m:?}");
            // Scores rounded so a float's last bit cannot fail the comparison.
            out.push(hits.into_iter().map(|h| (h.chunk_id, (h.fused * 1e5).round() as i64)).collect());
        }
    }
    out
}

async fn reindex_and_crash_recovery_reproduce_the_same_results(backend: Backend) {
    let (_dir, p) = corpus_platform(backend).await;
    let before = snapshot(&p);

    let report = p.reindex(&mut |_, _| {}).await.unwrap();
    assert!(report.consistent);
    assert_eq!(report.embedded, 0, "every chunk already has a vector");
    assert_eq!(report.bm25_chunks, report.vectors);
    assert_eq!(snapshot(&p), before, "in-process reindex");

    // The BM25 index lost entirely (a crash, a deleted folder): opening rebuilds it.
    let settings = (*p.settings).clone();
    drop(p);
    std::fs::remove_dir_all(settings.bm25_dir()).unwrap();
    let p = Platform::open_with(settings, Some(shared_embedder())).await.unwrap();
    assert_eq!(p.bm25_difference().await.unwrap(), None);
    assert_eq!(snapshot(&p), before, "after rebuilding a lost index");

    // A crash between the database write and the index commit: the version is stored but not
    // indexed. Opening notices and indexes it.
    let mut version = p.storage.indexable_chunks(Some(("acme-erasure-requests", 1))).await.unwrap();
    let stored = p.storage.versions("acme-erasure-requests").await.unwrap().remove(0);
    p.documents()
        .delete(&p.storage.actor("adam@acme-bank").await.unwrap().unwrap(), "acme-erasure-requests", None, "test")
        .await
        .unwrap();
    for c in &mut version {
        c.chunk.id = format!("{}-crash", c.chunk.id);
    }
    let acl = version[0].acl.clone();
    p.storage
        .insert_version(&server::store::NewVersion {
            document_id: "acme-erasure-requests".into(),
            title: "Erasure requests".into(),
            version: 3,
            acl,
            file_name: stored.file_name,
            file_sha256: stored.file_sha256,
            page_count: 1,
            chunks: version.iter().map(|c| c.chunk.clone()).collect(),
            embeddings: Vec::new(),
            embedding_model: String::new(),
            scan: Default::default(),
            kind: Default::default(),
            obligations: Vec::new(),
        })
        .await
        .unwrap();
    assert!(p.bm25_difference().await.unwrap().is_some(), "the index lags the database");
    let p = restart(p).await;
    assert_eq!(p.bm25_difference().await.unwrap(), None, "opening repaired the index");
    let query: String = version[0].chunk.text.chars().take(300).collect();
    let hits = index_hits(&p, &all_seeing("acme-bank"), &query, Method::Bm25);
    assert!(hits.iter().any(|h| h.ends_with("-crash")));
    // Its vectors are missing (the crash came before embedding was stored); reindex embeds them.
    let report = p.reindex(&mut |_, _| {}).await.unwrap();
    assert_eq!(report.embedded, version.len());
    assert!(index_hits(&p, &all_seeing("acme-bank"), &query, Method::Dense).iter().any(|h| h.ends_with("-crash")));
}

on_both_backends!(reindex_and_crash_recovery_reproduce_the_same_results);

#[tokio::test]
async fn the_reranker_stage_reorders_permitted_passages_and_says_it_ran() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = crate::support::settings(Backend::Sqlite, &dir).await;
    let reranker_dir = dir.path().join("reranker");
    crate::onnx_fixture::write_model_folder(&reranker_dir, "logits", &settings.models_dir);
    let model_sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(std::fs::read(reranker_dir.join("model.onnx")).unwrap()))
    };
    settings.reranker_dir = Some(reranker_dir);
    settings.rerank_top = 8;
    // An unapproved reranker is refused; approving it is a recorded change.
    let refused = Platform::open_with(settings.clone(), Some(shared_embedder())).await;
    assert!(matches!(refused, Err(Error::User(m)) if m.contains("refusing to start")));
    let storage = Storage::connect(&settings.database_url()).await.unwrap();
    storage
        .change_inventory(&server::service::governance::ChangeRequest {
            role: "reranker".into(),
            set: vec![("artifact_sha256".into(), model_sha), ("approved_environments".into(), "test".into())],
            why: "test fixture cross-encoder".into(),
            risk: "none: test only".into(),
            rollback: "clear the sha256".into(),
            approver: "rita@acme-bank".into(),
            recorded_by: "test".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let p = Platform::open_with(settings, Some(shared_embedder())).await.unwrap();
    p.ingestor().ingest_manifest(&crate::support::corpus_manifest(), "test", &mut |_| {}).await.unwrap();
    let retriever = p.retriever();
    assert!(retriever.reranker_status().starts_with("on: cross-encoder"), "{}", retriever.reranker_status());

    let reader = all_seeing("acme-bank");
    let checked = records_retained(&p, &reader).await;
    assert_eq!(checked.passages.len(), 5);
    assert!(checked.timings.rerank_us > 0);
    // The fixture scores a passage by its token count, so the order follows it.
    let scores: Vec<f32> = checked.passages.iter().map(|p| p.scores.rerank.expect("reranked").score).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
    for (i, passage) in checked.passages.iter().enumerate() {
        assert_eq!(passage.rank, i + 1);
        assert_eq!(passage.scores.rerank.unwrap().rank, i + 1);
        assert!(passage.chunk.acl.permits(&reader));
        assert!(passage.to_json()["scores"]["rerank"]["score"].is_number());
    }
    // By default the shipped three-layer reranker runs; turned off, the stage says so.
    let (_dir2, default) = corpus_platform(Backend::Sqlite).await;
    assert!(default.retriever().reranker_status().starts_with("on: cross-encoder e202e6321f7b"));
    let dir3 = tempfile::tempdir().unwrap();
    let mut off = crate::support::settings(Backend::Sqlite, &dir3).await;
    off.reranker = false;
    let plain = Platform::open_with(off, Some(shared_embedder())).await.unwrap();
    assert_eq!(plain.retriever().reranker_status(), "off: turned off, or no reranker model is set up");
}

/// The top 5 passages, reranked and checked against the database, for a retention question.
async fn records_retained(p: &Platform, reader: &Reader) -> server::service::ask::CheckedRetrieval {
    server::service::ask::retrieve_checked(
        &p.storage,
        &p.retriever(),
        reader,
        "how long are customer records retained",
        Method::Hybrid,
        5,
        true,
    )
    .await
    .unwrap()
}

/// The settings given by `key = "value"` in a settings file, and by the same choice as a flag
/// (`--key-with-dashes value`; clap reads the environment variable into the same field).
fn file_and_flag(
    dir: &std::path::Path,
    key: &str,
    value: &str,
) -> (server::settings::Settings, server::settings::Settings) {
    use clap::Parser;
    let file = dir.join(format!("{key}.toml"));
    std::fs::write(&file, format!("{key} = \"{value}\"\n")).unwrap();
    let from_file =
        server::settings::Settings::default().overlay(server::settings::SettingsFile::read(&file).unwrap()).unwrap();
    let flag = format!("--{}", key.replace('_', "-"));
    let cli = server::cli::Cli::parse_from(["lexgate", flag.as_str(), value, "check-models"]);
    (from_file, server::cli::settings_from(&cli).unwrap())
}

#[tokio::test]
async fn the_reranker_rolls_back_by_one_setting_to_the_six_layer_model() {
    let (dir, p) = corpus_platform(Backend::Sqlite).await;
    assert_eq!(p.settings.reranker_model, RerankerModel::LexgateMinilmL3);
    let inventory = p.storage.inventory().await.unwrap();
    let approved = |role: &str| inventory.iter().find(|e| e.role == role).unwrap().artifact_sha256.clone();
    let student = p.retriever().reranker.as_ref().expect("the reranker runs by default").model_id().to_owned();
    assert_eq!(approved("reranker"), student);

    // One setting, spelled the same in the settings file, the variable and the flag.
    let (from_file, from_flag) = file_and_flag(dir.path(), "reranker_model", "lexgate-minilm-l6");
    assert_eq!(from_file.reranker_model, RerankerModel::LexgateMinilmL6);
    assert_eq!(from_flag.reranker_model, RerankerModel::LexgateMinilmL6);
    let unknown = dir.path().join("unknown.toml");
    std::fs::write(&unknown, "reranker_model = \"bigger\"\n").unwrap();
    assert!(server::settings::SettingsFile::read(&unknown).is_err(), "an unknown model is refused");

    let mut settings = (*p.settings).clone();
    drop(p);
    settings.reranker_model = from_file.reranker_model;
    let p = Platform::open(settings).await.expect("the rollback model is approved");
    let six = p.retriever().reranker.as_ref().expect("the rollback reranker runs").model_id().to_owned();
    assert_ne!(six, student);
    assert_eq!(approved("reranker-rollback"), six);
    assert!(p.retriever().reranker_status().starts_with("on: cross-encoder 57358bc06c68"));
    // It reranks permitted passages as before.
    let reader = all_seeing("acme-bank");
    let checked = records_retained(&p, &reader).await;
    assert!(checked.passages.iter().all(|x| x.scores.rerank.is_some() && x.chunk.acl.permits(&reader)));
}

#[tokio::test]
async fn the_embedding_model_rolls_back_by_one_setting_and_is_never_mixed_with_another() {
    let (dir, p) = corpus_platform(Backend::Sqlite).await;
    // By default lexgate's tuned model runs, and every stored vector is its own.
    assert_eq!(p.settings.embedding_model, EmbeddingModel::LexgateRegulatory);
    let tuned = p.dense.as_ref().unwrap().0.model_sha256().to_owned();
    p.require_complete_vectors().await.unwrap();
    let inventory = p.storage.inventory().await.unwrap();
    let approved = |role: &str| inventory.iter().find(|e| e.role == role).unwrap().artifact_sha256.clone();
    assert_eq!(approved("embedding"), tuned);

    // The rollback is one setting, spelled the same in the settings file, the variable and the
    // flag: the registry model, approved by its own inventory entry.
    let (from_file, from_flag) = file_and_flag(dir.path(), "embedding_model", "all-minilm-l6-v2");
    assert_eq!(from_file.embedding_model, EmbeddingModel::AllMinilmL6V2);
    assert_eq!(from_flag.embedding_model, EmbeddingModel::AllMinilmL6V2);
    let mut settings = (*p.settings).clone();
    drop(p);
    settings.embedding_model = from_file.embedding_model;
    let p = Platform::open(settings).await.expect("the rollback model is approved");
    let registry = p.dense.as_ref().unwrap().0.model_sha256().to_owned();
    assert_ne!(registry, tuned);
    assert_eq!(approved("embedding-rollback"), registry);
    // The stored vectors are the other model's: the dense index holds none of them, and
    // nothing answers until they are replaced.
    assert_eq!(p.dense.as_ref().unwrap().1.len(), 0);
    let refused = p.require_complete_vectors().await.unwrap_err().to_string();
    assert!(refused.contains("lexgate reindex") && refused.contains(&registry), "{refused}");
    assert!(server::http::app::shared_state(&p).await.is_err(), "the server refuses to start");

    let mut seen = 0;
    let report = p.reindex(&mut |done, _| seen = done).await.unwrap();
    assert!(report.consistent);
    assert_eq!(report.embedded, report.bm25_chunks, "every passage re-embedded");
    assert_eq!((seen, report.vectors), (report.embedded, report.embedded));
    p.require_complete_vectors().await.unwrap();
    assert!(!index_hits(&p, &all_seeing("acme-bank"), "erasure request deadline", Method::Dense).is_empty());
}
