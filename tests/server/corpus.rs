//! The shipped corpus: its PDFs are built from the sources and must stay in step with them.

use crate::support::corpus_manifest;

#[test]
fn the_committed_pdfs_match_their_sources() {
    let manifest = corpus_manifest();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rebuilt = manifest.clone();
    for d in &mut rebuilt.documents {
        d.file = dir.path().join(d.file.file_name().expect("file name"));
    }
    let written = server::service::ingest::build_corpus_pdfs(&rebuilt).expect("build");
    assert_eq!(written.len(), manifest.documents.len(), "every corpus document has a source");
    for (committed, fresh) in manifest.documents.iter().zip(&rebuilt.documents) {
        let a = std::fs::read(&committed.file).expect("committed PDF");
        let b = std::fs::read(&fresh.file).expect("rebuilt PDF");
        assert!(a == b, "{} is out of date: run `lexgate build-corpus corpus/manifest.toml`", committed.file.display());
    }
}

#[test]
fn the_corpus_has_the_fixtures_the_evaluation_needs() {
    let m = corpus_manifest();
    assert!(m.documents.len() >= 10);
    assert_eq!(m.tenants.len(), 2);
    let by_id = |id: &'static str| m.documents.iter().filter(move |d| d.id == id);
    assert_eq!(by_id("acme-data-retention").count(), 2, "two versions of one policy");
    assert!(by_id("acme-cloud-outsourcing-2022").all(|d| d.acl.status == indexer::SourceStatus::Withdrawn));
    assert!(by_id("acme-remote-work-security").all(|d| d.acl.expires_at.is_some()));
    assert!(by_id("acme-aml-investigations").all(|d| d.acl.allowed_groups.len() == 1));
    let faq = std::fs::read_to_string(
        by_id("acme-vendor-onboarding-faq").next().and_then(|d| d.source.clone()).expect("source"),
    )
    .expect("read");
    assert!(faq.contains("ignore all previous instructions"), "the prompt-injection fixture is present");
}
