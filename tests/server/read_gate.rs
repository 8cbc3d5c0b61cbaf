//! Every route, enumerated from the source, against readers who may not see a confidential
//! canary document: signed out, another tenant, a reader of the tenant without the group and
//! clearance, and the tenant's own reader while its data card is draft. None may get a byte of
//! the canary's text or title; the one reader who may see it gets it (so the test can fail).

use std::collections::BTreeSet;
use std::sync::Arc;

use actix_web::http::StatusCode;
use server::service::ingest::{Upload, UploadStatus};

use crate::support::{Backend, corpus_platform_with, repo_root};
use crate::web::browser;

const CANARY_TITLE: &str = "Kestrel canary register";
const CANARY_TEXT: &str = "kestrel nests are counted by the compliance office";

/// The routes the app registers, as `METHOD PATH`, read from the `.route(...)` calls in the
/// server's source: adding a route without adding it below fails this test.
fn registered_routes() -> BTreeSet<String> {
    let mut routes = BTreeSet::new();
    let mut dirs = vec![repo_root().join("server/src")];
    let mut files = Vec::new();
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() { dirs.push(path) } else { files.push(path) }
        }
    }
    for file in files {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        for part in text.split(".route(\"").skip(1) {
            let (path, rest) = part.split_once('"').unwrap();
            let method = rest.split("web::").nth(1).and_then(|m| m.split('(').next()).unwrap();
            routes.insert(format!("{} {path}", method.to_uppercase()));
        }
    }
    routes
}

#[actix_web::test]
async fn every_route_refuses_the_canary_to_every_reader_who_may_not_see_it() {
    // With the real generator, so the generated answer's routes are checked too.
    let (_dir, p) =
        corpus_platform_with(Backend::Sqlite, |s| s.generator = Some(crate::generate::real_generator())).await;
    let pdf = indexer::write_text_pdf(
        CANARY_TITLE,
        &[vec![
            "Section 1 Kestrels".to_owned(),
            format!("Every spring {CANARY_TEXT} on the premises."),
            format!("The office shall confirm each year that {CANARY_TEXT}."),
        ]],
    )
    .unwrap();
    let acl = indexer::ChunkAcl {
        tenant: indexer::TenantId::parse("acme-bank").unwrap(),
        owner: "Compliance".into(),
        classification: "confidential".parse().unwrap(),
        allowed_groups: [indexer::GroupName::parse("compliance").unwrap()].into(),
        status: indexer::SourceStatus::Approved,
        effective_from: "2024-01-01".parse().unwrap(),
        expires_at: None,
        retention_class: "standard".into(),
    };
    let upload = Upload {
        document_id: "acme-bank.kestrel".into(),
        title: CANARY_TITLE.into(),
        version: 1,
        file_name: "kestrel.pdf".into(),
        bytes: pdf,
        acl,
        max_pages: 10,
        // A regulation: its obligations carry its text onto the register's routes.
        kind: server::domain::DocumentKind::Regulation,
    };
    p.ingestor().ingest_upload(upload, "adam@acme-bank", Arc::new(|_: &dyn Fn(&mut UploadStatus)| {})).await.unwrap();
    let chunk = p.storage.version_chunks("acme-bank.kestrel", 1).await.unwrap().remove(0);
    let (doc, id) = ("acme-bank.kestrel", chunk.id.as_str());
    let obligation = p.storage.version_obligations(doc, 1).await.unwrap().remove(0).id;
    assert!(!obligation.is_empty());

    // Each registered route, and the requests that exercise it (None: it reads nothing of a
    // tenant's documents, or it changes state and is covered by its own tests).
    let ask = "q=How+are+kestrel+nests+counted+by+the+compliance+office%3F";
    let table: Vec<(&str, Vec<String>)> = vec![
        ("GET /", vec!["/".into()]),
        ("GET /healthz", vec![]),
        ("GET /readyz", vec![]),
        ("GET /signin", vec!["/signin".into()]),
        ("POST /signin/dev", vec![]),
        ("GET /signin/oidc", vec![]),
        ("GET /signin/callback", vec![]),
        ("POST /signout", vec![]),
        ("GET /sessions", vec!["/sessions".into()]),
        ("POST /sessions/{id}/end", vec![]),
        ("GET /ask", vec![format!("/ask?{ask}"), format!("/ask?{ask}&generate=true")]),
        ("GET /ask/stream", vec![format!("/ask/stream?{ask}")]),
        ("GET /api/ask", vec![format!("/api/ask?{ask}")]),
        (
            "GET /api/v1/ask",
            vec![
                format!("/api/v1/ask?{ask}"),
                format!("/api/v1/ask?{ask}&as_of=2030-01-01"),
                format!("/api/v1/ask?{ask}&generate=true"),
            ],
        ),
        ("GET /passages/{chunk_id}", vec![format!("/passages/{id}"), format!("/passages/{id}?as_of=2030-01-01")]),
        ("GET /governance", vec!["/governance".into()]),
        ("GET /governance/audit", vec!["/governance/audit".into()]),
        ("GET /governance/packet.zip", vec!["/governance/packet.zip".into()]),
        ("GET /api/governance/models", vec!["/api/governance/models".into()]),
        ("GET /api/governance/data-cards", vec!["/api/governance/data-cards".into()]),
        ("GET /api/governance/risk", vec!["/api/governance/risk".into()]),
        ("GET /static/{name}", vec!["/static/style.css".into()]),
        ("GET /documents", vec!["/documents".into(), "/documents?q=kestrel".into()]),
        ("POST /documents/upload", vec![]),
        ("GET /documents/jobs/{job}", vec!["/documents/jobs/0000".into()]),
        ("GET /documents/{id}", vec![format!("/documents/{doc}")]),
        ("POST /documents/{id}/metadata", vec![]),
        ("POST /documents/{id}/status", vec![]),
        ("GET /documents/{id}/delete", vec![format!("/documents/{doc}/delete")]),
        ("POST /documents/{id}/delete", vec![]),
        ("GET /api/v1/openapi.json", vec!["/api/v1/openapi.json".into()]),
        ("GET /api/v1/documents", vec!["/api/v1/documents".into()]),
        ("POST /api/v1/documents", vec![]),
        ("GET /api/v1/documents/{id}", vec![format!("/api/v1/documents/{doc}")]),
        ("DELETE /api/v1/documents/{id}", vec![]),
        ("PUT /api/v1/documents/{id}/versions/{version}/access", vec![]),
        ("GET /api/v1/jobs/{id}", vec!["/api/v1/jobs/0000".into()]),
        ("GET /api/v1/tokens", vec!["/api/v1/tokens".into()]),
        ("POST /api/v1/tokens", vec![]),
        ("DELETE /api/v1/tokens/{id}", vec![]),
        ("GET /obligations", vec!["/obligations".into(), format!("/obligations?regulation={doc}")]),
        ("GET /obligations/export.csv", vec!["/obligations/export.csv".into()]),
        ("GET /obligations/export.json", vec!["/obligations/export.json".into()]),
        ("GET /obligations/{id}", vec![format!("/obligations/{obligation}")]),
        ("POST /obligations/{id}/status", vec![]),
        ("POST /obligations/{id}/controls", vec![]),
        ("GET /api/v1/obligations", vec!["/api/v1/obligations".into()]),
        ("GET /api/v1/obligations/{id}", vec![format!("/api/v1/obligations/{obligation}")]),
        ("POST /api/v1/obligations/{id}/status", vec![]),
        ("POST /api/v1/obligations/{id}/controls", vec![]),
    ];
    let listed: BTreeSet<String> = table.iter().map(|(r, _)| (*r).to_owned()).collect();
    assert_eq!(listed, registered_routes(), "every registered route is listed here, and only those");
    let uris: Vec<&String> = table.iter().flat_map(|(_, uris)| uris).collect();

    // The one reader who may see the canary sees it: the test can fail.
    let mut alice = browser(&p).await;
    alice.sign_in("alice@acme-bank").await;
    let (status, _, body) = alice.get(&format!("/api/v1/ask?{ask}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains(CANARY_TEXT) && body.contains(CANARY_TITLE), "{body}");
    assert!(alice.get(&format!("/passages/{id}")).await.2.contains(CANARY_TEXT));
    assert!(alice.get(&format!("/api/v1/obligations/{obligation}")).await.2.contains(CANARY_TEXT));
    assert!(alice.get("/obligations/export.csv").await.2.contains(CANARY_TEXT));

    let leaks = |who: &str, uri: &str, body: &str| {
        assert!(
            !body.contains(CANARY_TEXT) && !body.contains(CANARY_TITLE) && !body.contains("Kestrel"),
            "{who} got the canary from {uri}: {body}"
        );
    };
    let mut anonymous = browser(&p).await;
    for uri in &uris {
        let (_, _, body) = anonymous.get(uri).await;
        leaks("a signed-out browser", uri, &body);
    }
    for principal in ["bob@acme-bank", "felix@acme-bank", "rita@acme-bank", "dan@borealis-insurance"] {
        let mut b = browser(&p).await;
        b.sign_in(principal).await;
        for uri in &uris {
            let (_, _, body) = b.get(uri).await;
            leaks(principal, uri, &body);
        }
    }
    // The tenant's own reader, while its data card is draft: every read path refuses.
    p.storage.set_data_card_status("acme-bank", "draft", "rita@acme-bank").await.unwrap();
    for uri in &uris {
        let (_, _, body) = alice.get(uri).await;
        leaks("alice under a draft data card", uri, &body);
    }
}
