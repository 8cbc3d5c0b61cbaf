//! BM25 with the access filter inside the query.

use indexer::{Bm25Index, Chunk, ChunkAcl, Classification, IndexedChunk, SourceStatus, chunk_pages};

use crate::support::{acl, date, reader};

struct Doc {
    id: &'static str,
    version: u32,
    acl: ChunkAcl,
    chunks: Vec<Chunk>,
}

fn doc(id: &'static str, version: u32, text: &str, acl: ChunkAcl) -> Doc {
    let pages = vec![indexer::PageText { number: 1, text: text.to_owned() }];
    Doc { id, version, chunks: chunk_pages(id, version, &pages), acl }
}

fn index(docs: &[Doc]) -> Bm25Index {
    let index = Bm25Index::in_memory().expect("index");
    for d in docs {
        add(&index, d);
    }
    index
}

/// Adds every chunk of `d`, untitled.
fn add(index: &Bm25Index, d: &Doc) {
    let items: Vec<_> = d
        .chunks
        .iter()
        .map(|c| IndexedChunk { chunk: c, document_id: d.id, title: "", version: d.version, acl: &d.acl })
        .collect();
    index.add(&items).expect("add");
}

const ERASURE: &str = "Customers may ask the bank to delete their customer data; erasure follows within one month.";

fn corpus() -> Vec<Doc> {
    let mut withdrawn = acl("acme", &["staff"], Classification::Internal);
    withdrawn.status = SourceStatus::Withdrawn;
    let mut expired = acl("acme", &["staff"], Classification::Internal);
    expired.expires_at = Some(date("2025-01-01"));
    let mut future = acl("acme", &["staff"], Classification::Internal);
    future.effective_from = date("2030-01-01");
    vec![
        doc("a-open", 1, &format!("Open policy. {ERASURE}"), acl("acme", &["staff"], Classification::Internal)),
        doc(
            "a-restricted",
            1,
            &format!("Restricted playbook. {ERASURE}"),
            acl("acme", &["fincrime"], Classification::Internal),
        ),
        doc(
            "a-secret",
            1,
            &format!("Confidential memo. {ERASURE}"),
            acl("acme", &["staff"], Classification::Confidential),
        ),
        doc("a-withdrawn", 1, &format!("Withdrawn guideline. {ERASURE}"), withdrawn),
        doc("a-expired", 1, &format!("Expired rules. {ERASURE}"), expired),
        doc("a-future", 1, &format!("Future rules. {ERASURE}"), future),
        doc("b-open", 1, &format!("Borealis policy. {ERASURE}"), acl("borealis", &["staff"], Classification::Internal)),
    ]
}

fn hit_docs(index: &Bm25Index, r: &indexer::Reader, docs: &[Doc]) -> Vec<&'static str> {
    let hits = index.search(r, "delete customer data", 50).expect("search");
    let mut out: Vec<&'static str> = hits
        .iter()
        .map(|h| docs.iter().find(|d| d.chunks.iter().any(|c| c.id == h.chunk_id)).expect("known chunk").id)
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

#[test]
fn a_reader_sees_only_their_tenant_groups_clearance_and_documents_in_force() {
    let docs = corpus();
    let index = index(&docs);
    let staff = reader("acme", &["staff"], Classification::Internal, "2026-01-01");
    assert_eq!(hit_docs(&index, &staff, &docs), vec!["a-open"]);

    let fincrime = reader("acme", &["staff", "fincrime"], Classification::Internal, "2026-01-01");
    assert_eq!(hit_docs(&index, &fincrime, &docs), vec!["a-open", "a-restricted"]);

    let cleared = reader("acme", &["staff"], Classification::Confidential, "2026-01-01");
    assert_eq!(hit_docs(&index, &cleared, &docs), vec!["a-open", "a-secret"]);

    let borealis = reader("borealis", &["staff", "fincrime"], Classification::Restricted, "2026-01-01");
    assert_eq!(hit_docs(&index, &borealis, &docs), vec!["b-open"]);

    // Before its expiry the expired document was in force.
    let back_then = reader("acme", &["staff"], Classification::Internal, "2024-06-30");
    assert_eq!(hit_docs(&index, &back_then, &docs), vec!["a-expired", "a-open"]);
    // The expiry date itself is the first day the document no longer applies.
    let on_expiry = reader("acme", &["staff"], Classification::Internal, "2025-01-01");
    assert_eq!(hit_docs(&index, &on_expiry, &docs), vec!["a-open"]);
}

#[test]
fn filter_agrees_with_the_acl_rule_for_every_reader() {
    let docs = corpus();
    let index = index(&docs);
    let readers = [
        reader("acme", &["staff"], Classification::Public, "2026-01-01"),
        reader("acme", &["fincrime"], Classification::Restricted, "2031-01-01"),
        reader("acme", &["staff", "fincrime"], Classification::Confidential, "2024-02-01"),
        reader("borealis", &["staff"], Classification::Internal, "2026-01-01"),
        reader("nobody", &["staff"], Classification::Restricted, "2026-01-01"),
    ];
    for r in &readers {
        let mut expected: Vec<&str> = docs.iter().filter(|d| d.acl.permits(r)).map(|d| d.id).collect();
        expected.sort_unstable();
        assert_eq!(hit_docs(&index, r, &docs), expected, "reader {r:?}");
        let visible_chunks: usize = docs.iter().filter(|d| d.acl.permits(r)).map(|d| d.chunks.len()).sum();
        assert_eq!(index.count_visible(r).expect("count"), visible_chunks);
    }
}

#[test]
fn query_syntax_cannot_name_index_fields() {
    let docs = corpus();
    let index = index(&docs);
    let staff = reader("acme", &["staff"], Classification::Internal, "2026-01-01");
    // Field syntax is just words here; it never widens the filter.
    let hits = index.search(&staff, "tenant:borealis groups:fincrime status:withdrawn delete", 50).expect("search");
    for h in hits {
        assert!(docs[0].chunks.iter().any(|c| c.id == h.chunk_id), "only a-open is visible");
    }
}

#[test]
fn an_empty_query_is_a_user_error() {
    let index = index(&corpus());
    let staff = reader("acme", &["staff"], Classification::Internal, "2026-01-01");
    let err = index.search(&staff, "  ?! ", 10).expect_err("empty");
    assert!(err.to_string().contains("empty"));
}

#[test]
fn deleting_a_document_or_a_version_removes_it_from_search() {
    let mut docs = corpus();
    docs.push(doc(
        "a-open",
        2,
        &format!("Open policy, second version. {ERASURE}"),
        acl("acme", &["staff"], Classification::Internal),
    ));
    let index = index(&docs);
    let staff = reader("acme", &["staff"], Classification::Internal, "2026-01-01");
    let before = index.count_visible(&staff).expect("count");
    let v2_chunks = docs.last().map_or(0, |d| d.chunks.len());

    index.delete_version("a-open", 2).expect("delete version");
    assert_eq!(index.count_visible(&staff).expect("count"), before - v2_chunks);

    index.delete_document("a-open").expect("delete");
    assert_eq!(index.count_visible(&staff).expect("count"), 0);
    assert!(index.search(&staff, "delete customer data", 10).expect("search").is_empty());
}

#[test]
fn the_index_persists_on_disk_and_reopens() {
    let dir = tempfile::tempdir().expect("tempdir");
    let docs = corpus();
    {
        let index = Bm25Index::open_or_create(dir.path()).expect("create");
        add(&index, &docs[0]);
    }
    let reopened = Bm25Index::open_or_create(dir.path()).expect("reopen");
    let staff = reader("acme", &["staff"], Classification::Internal, "2026-01-01");
    assert_eq!(reopened.count_visible(&staff).expect("count"), docs[0].chunks.len());
}

#[test]
fn an_index_written_with_other_fields_is_recreated_empty_for_a_rebuild() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        // An index as an earlier release could have left it: other fields, one document.
        let mut schema = tantivy::schema::Schema::builder();
        let id = schema.add_text_field("chunk_id", tantivy::schema::STRING | tantivy::schema::STORED);
        let old = tantivy::Index::create_in_dir(dir.path(), schema.build()).expect("old index");
        let mut writer: tantivy::IndexWriter = old.writer_with_num_threads(1, 15_000_000).expect("writer");
        writer.add_document(tantivy::doc!(id => "old-chunk")).expect("add");
        writer.commit().expect("commit");
    }
    let index = Bm25Index::open_or_create(dir.path()).expect("an old index must not stop the platform");
    assert_eq!(index.count_all(), 0, "recreated empty, for the start-up check to rebuild from the database");
    let d = &corpus()[0];
    add(&index, d);
    let staff = reader("acme", &["staff"], Classification::Internal, "2026-01-01");
    assert_eq!(index.search(&staff, "erasure", 10).expect("search").len(), d.chunks.len());
}

#[test]
fn a_question_naming_a_document_ranks_that_documents_passage_first() {
    // The same answer in two companies' policies; only the title says whose each is.
    let staff = acl("acme", &["staff"], Classification::Internal);
    let body = "We do not sell or rent your personal information to third parties.";
    let docs = [
        ("groupon", "Groupon Privacy Policy", doc("groupon", 1, body, staff.clone())),
        ("hooli", "Hooli Privacy Policy", doc("hooli", 1, body, staff.clone())),
    ];
    let index = Bm25Index::in_memory().expect("index");
    for (id, title, d) in &docs {
        let items: Vec<_> = d
            .chunks
            .iter()
            .map(|c| IndexedChunk { chunk: c, document_id: id, title, version: 1, acl: &d.acl })
            .collect();
        index.add(&items).expect("add");
    }
    let reader = reader("acme", &["staff"], Classification::Internal, "2026-01-01");
    for (id, _, d) in &docs {
        let hits = index.search(&reader, &format!("Does {id} sell my personal information?"), 10).expect("search");
        assert_eq!(hits.len(), 2, "both policies answer");
        assert_eq!(hits[0].chunk_id, d.chunks[0].id, "the policy the question names comes first");
    }
    // Without a name, title words alone do not decide: the two still tie.
    let hits = index.search(&reader, "Do you sell my personal information?", 10).expect("search");
    assert_eq!(hits.len(), 2);
    assert!((hits[0].score - hits[1].score).abs() < 1e-6);
}

#[test]
fn fusion_settings_parse_print_and_refuse_nonsense() {
    use indexer::{FusionConfig, FusionKind};
    let rrf: FusionConfig = "rrf".parse().unwrap();
    assert_eq!(rrf, FusionConfig::rrf());
    assert_eq!(FusionConfig::default().to_string().parse::<FusionConfig>().unwrap(), FusionConfig::default());
    let weighted: FusionConfig = "rrf:k=20:bm25=1:dense=0.5:candidates=50".parse().unwrap();
    assert_eq!((weighted.rrf_k, weighted.dense_weight, weighted.candidates), (20.0, 0.5, 50));
    assert_eq!(weighted.to_string().parse::<FusionConfig>().unwrap(), weighted);
    let convex: FusionConfig = "convex:bm25=0.7:dense=0.3".parse().unwrap();
    assert_eq!(convex.kind, FusionKind::Convex);
    assert_eq!(convex.to_string().parse::<FusionConfig>().unwrap(), convex);
    for bad in ["", "max", "rrf:k", "rrf:k=abc", "rrf:bm25=-1", "rrf:speed=3", "convex:dense=NaN"] {
        assert!(bad.parse::<FusionConfig>().is_err(), "{bad:?} must be refused");
    }
}

#[test]
fn a_reader_restricted_to_documents_searches_only_those() {
    let docs = corpus();
    let index = index(&docs);
    let mut r = reader("acme", &["staff", "fincrime"], Classification::Confidential, "2026-01-01");
    assert!(index.search(&r, "delete customer data", 10).expect("search").len() >= 3);
    r.documents = Some(["a-restricted".to_owned(), "a-withdrawn".to_owned(), "nonexistent".to_owned()].into());
    let hits = index.search(&r, "delete customer data", 10).expect("search");
    // The withdrawn document is in the set but still filtered by its status.
    let restricted = docs.iter().find(|d| d.id == "a-restricted").expect("fixture");
    assert_eq!(hits.iter().map(|h| h.chunk_id.as_str()).collect::<Vec<_>>(), [restricted.chunks[0].id.as_str()]);
    assert_eq!(index.count_visible(&r).expect("count"), 1);
    r.documents = Some(Default::default());
    assert!(index.search(&r, "delete customer data", 10).expect("search").is_empty(), "an empty set searches nothing");
}
