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

/// Every route that needs a session refuses a signed-out request as such before reading its
/// input: an unreadable body or query gets 401 (or the sign-in page), never a parse error. Each
/// request comes from a client address of its own, so its refusal is audited (an audited refusal
/// takes a database write, which is when an eager body parser used to answer first).
#[actix_web::test]
async fn signed_out_requests_are_refused_before_their_input_is_read() {
    let (_dir, p) = crate::support::corpus_platform(Backend::Sqlite).await;
    let mut anonymous = browser(&p).await;
    let mut requests: Vec<(String, actix_web::test::TestRequest)> = Vec::new();
    for route in registered_routes() {
        let (method, path) = route.split_once(' ').unwrap();
        if method == "GET" || ["/signin/dev", "/signout"].contains(&path) {
            continue;
        }
        let uri = path.replace("{version}", "1").replace(['{', '}'], "");
        let req = actix_web::test::TestRequest::default()
            .method(method.parse().unwrap())
            .uri(&uri)
            .insert_header(("content-type", "text/plain"))
            .set_payload("not a form, not JSON");
        requests.push((route, req));
    }
    for uri in ["/api/v1/ask?q=x&generate=maybe", "/passages/x?start=abc", "/governance/audit?page=many"] {
        requests.push((uri.to_owned(), actix_web::test::TestRequest::get().uri(uri)));
    }
    assert!(requests.len() >= 15, "{}", requests.len());
    for (i, (what, req)) in requests.into_iter().enumerate() {
        let client = std::net::SocketAddr::from(([10, 0, (i / 250) as u8, (i % 250) as u8 + 1], 40000));
        let (status, headers, body) = anonymous.send(req.peer_addr(client)).await;
        let to_signin = status == StatusCode::SEE_OTHER && headers.get("location").is_some_and(|l| l == "/signin");
        assert!(status == StatusCode::UNAUTHORIZED || to_signin, "{what}: {status} {body}");
        if what.contains("/api/") {
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
            assert!(body.contains("\"unauthenticated\""), "{what}: {body}");
        }
        assert_eq!(headers.get("cache-control").map(String::as_str), Some("no-store"), "{what}");
    }
    let refused = p.storage.audit_page(None, 0, 1, Some("request_refused"), None).await.unwrap().1;
    assert!(refused >= 15, "each refusal was audited: {refused}");
}

/// Asserts a response may not be stored by the browser or a proxy (static assets excepted).
fn not_cached(who: &str, uri: &str, headers: &std::collections::BTreeMap<String, String>) {
    let cache = headers.get("cache-control").map(String::as_str);
    if uri.starts_with("/static/") {
        assert!(cache.is_some_and(|c| c.contains("max-age")), "{uri}: {cache:?}");
    } else {
        assert_eq!(cache, Some("no-store"), "{who}: {uri} may be cached");
    }
}

/// Uploads the confidential canary regulation into acme-bank, as adam.
async fn upload_canary(p: &server::service::Platform) {
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
}

#[actix_web::test]
async fn every_route_refuses_the_canary_to_every_reader_who_may_not_see_it() {
    // With the real generator, so the generated answer's routes are checked too.
    let (_dir, p) =
        corpus_platform_with(Backend::Sqlite, |s| s.generator = Some(crate::generate::real_generator())).await;
    upload_canary(&p).await;
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
        let (_, headers, body) = anonymous.get(uri).await;
        leaks("a signed-out browser", uri, &body);
        not_cached("a signed-out browser", uri, &headers);
    }
    for principal in ["bob@acme-bank", "felix@acme-bank", "rita@acme-bank", "dan@borealis-insurance"] {
        let mut b = browser(&p).await;
        b.sign_in(principal).await;
        for uri in &uris {
            let (_, headers, body) = b.get(uri).await;
            leaks(principal, uri, &body);
            not_cached(principal, uri, &headers);
        }
    }
    // What the canary's reader got is not kept either (the positive side of the same check).
    for uri in &uris {
        let (_, headers, _) = alice.get(uri).await;
        not_cached("alice", uri, &headers);
    }

    // The tenant's own reader, while its data card is draft: every read path refuses.
    p.storage.set_data_card_status("acme-bank", "draft", "rita@acme-bank").await.unwrap();
    for uri in &uris {
        let (_, _, body) = alice.get(uri).await;
        leaks("alice under a draft data card", uri, &body);
    }
}

/// The files of a ZIP archive of stored (uncompressed) entries, as the packet writes them, by name.
fn unzip(bytes: &[u8]) -> Vec<(String, String)> {
    let u16_at = |i: usize| u16::from_le_bytes([bytes[i], bytes[i + 1]]) as usize;
    let u32_at = |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]) as usize;
    let mut files = Vec::new();
    let mut at = 0;
    while at + 30 <= bytes.len() && u32_at(at) == 0x0403_4b50 {
        assert_eq!(u16_at(at + 8), 0, "entry at {at} is stored, not compressed");
        let (size, name_len, extra_len) = (u32_at(at + 18), u16_at(at + 26), u16_at(at + 28));
        let name_start = at + 30;
        let data_start = name_start + name_len + extra_len;
        let name = String::from_utf8(bytes[name_start..name_start + name_len].to_vec()).unwrap();
        let text = String::from_utf8(bytes[data_start..data_start + size].to_vec()).unwrap();
        files.push((name, text));
        at = data_start + size;
    }
    assert!(bytes.get(at..at + 4).is_some_and(|b| b == [0x50, 0x4b, 0x01, 0x02]), "the central directory follows");
    files
}

/// Reviewers and admins of one tenant over every governance route and every file of the unzipped
/// packet: nothing of the other tenant appears (its data card, document ids, principal ids, its
/// canary text, even its name), while the other tenant's own reviewer and a platform reviewer
/// named in the settings see those records (so the test can fail).
#[actix_web::test]
async fn governance_reads_keep_to_the_readers_tenant_for_reviewers_and_admins() {
    use actix_web::test::TestRequest;
    use server::domain::{PrincipalSeed, Role};

    let (_dir, p) = corpus_platform_with(Backend::Sqlite, |s| {
        s.platform_reviewers = vec!["olga@borealis-insurance".to_owned()];
    })
    .await;
    // A reviewer and an admin for Borealis, and the installation's operator (a Borealis principal
    // whose platform scope comes from the settings alone).
    for (id, role) in [
        ("rhea@borealis-insurance", Role::Reviewer),
        ("abel@borealis-insurance", Role::Admin),
        ("olga@borealis-insurance", Role::Reviewer),
    ] {
        let seed = PrincipalSeed {
            id: id.to_owned(),
            display_name: id.to_owned(),
            tenant: indexer::TenantId::parse("borealis-insurance").unwrap(),
            role,
            groups: [indexer::GroupName::parse("staff").unwrap()].into(),
            clearance: "internal".parse().unwrap(),
        };
        p.storage.upsert_principal(&seed).await.unwrap();
    }

    // Acme's records: a confidential regulation with obligations, asks, a deletion receipt, a
    // data-card change, a gate report whose failed case names an Acme document.
    upload_canary(&p).await;
    let mut alice = browser(&p).await;
    alice.sign_in("alice@acme-bank").await;
    let (_, _, answer) = alice.get("/api/v1/ask?q=How+are+kestrel+nests+counted%3F").await;
    assert!(answer.contains(CANARY_TEXT), "{answer}");
    let mut adam = browser(&p).await;
    adam.sign_in("adam@acme-bank").await;
    let csrf = adam.page_csrf("/documents").await;
    let (status, _, receipt) = adam
        .send(
            TestRequest::post()
                .uri("/documents/acme-vendor-onboarding-faq/delete")
                .set_form([("csrf", csrf.as_str()), ("reason", "kestrel audit clean-up")]),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{receipt}");
    // Adam tries a Borealis document: a cross-tenant attempt, in neither tenant's log.
    assert_eq!(adam.get("/documents/borealis-claims-data-handling").await.0, StatusCode::NOT_FOUND);
    p.storage.set_data_card_status("acme-bank", "approved", "rita@acme-bank").await.unwrap();
    let report = serde_json::json!({
        "id": "gate-test", "created_at": "2026-12-08T00:00:00Z", "configuration": "test",
        "cases_version": 1, "thresholds_version": 1, "decision": "approve_with_conditions",
        "gates": [{ "metric": "recall_at_3", "threshold": 0.9, "result": 0.95, "passed": true, "blocking": true }],
        "failed_cases": [{ "id": "kestrel-case", "severity": "major", "failures": ["cited acme-bank.kestrel page 1"] }],
    });
    p.storage
        .insert_release_gate(server::store::ReleaseGateRow {
            id: "gate-test".into(),
            created_at: chrono::Utc::now(),
            decision: "approve_with_conditions".into(),
            thresholds_version: 1,
            thresholds_sha256: "0".repeat(64),
            report_json: report.to_string(),
            report_md: "# Release gate gate-test\n\n- `kestrel-case`: cited acme-bank.kestrel page 1\n".into(),
        })
        .await
        .unwrap();

    // Borealis's records: sign-ins and an ask, and its admin trying an Acme document.
    let mut carol = browser(&p).await;
    carol.sign_in("carol@borealis-insurance").await;
    carol.get("/api/v1/ask?q=How+long+are+claim+files+kept%3F").await;
    let mut abel = browser(&p).await;
    abel.sign_in("abel@borealis-insurance").await;
    assert_eq!(abel.get("/documents/acme-data-retention").await.0, StatusCode::NOT_FOUND);

    let routes: Vec<String> = [
        "/governance",
        "/governance/audit",
        "/governance/audit?page=2",
        "/governance/audit?action=ask",
        "/governance/audit?action=sign_in",
        "/governance/audit?action=open_document",
        "/governance/audit?action=delete_document",
        "/governance/audit?outcome=denied",
        "/governance/audit?outcome=succeeded",
        "/governance/packet.zip",
        "/api/governance/models",
        "/api/governance/data-cards",
        "/api/governance/risk",
        "/documents",
        "/api/v1/documents",
        "/sessions",
        "/api/v1/tokens",
        "/obligations",
        "/obligations/export.csv",
        "/obligations/export.json",
        "/api/v1/obligations",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();

    // Everything a reader gets from those routes, the packet unzipped file by file.
    async fn read_all<S>(b: &mut crate::web::Browser<S>, routes: &[String]) -> Vec<(String, String)>
    where
        S: actix_web::dev::Service<
                actix_http::Request,
                Response = actix_web::dev::ServiceResponse,
                Error = actix_web::Error,
            >,
    {
        let mut out = Vec::new();
        for uri in routes {
            let resp = actix_web::test::call_service(&b.service, {
                let mut req = TestRequest::get().uri(uri);
                for (name, value) in &b.cookies {
                    req = req.cookie(actix_web::cookie::Cookie::new(name.clone(), value.clone()));
                }
                req.to_request()
            })
            .await;
            let status = resp.status();
            let bytes = actix_web::test::read_body(resp).await;
            if uri.ends_with(".zip") && status == StatusCode::OK {
                for (name, text) in unzip(&bytes) {
                    out.push((format!("{uri}!{name}"), text));
                }
            } else {
                out.push((uri.clone(), String::from_utf8_lossy(&bytes).into_owned()));
            }
        }
        out
    }
    let leaks_of = |outputs: &[(String, String)], needles: &[&str]| -> Vec<String> {
        let mut found = Vec::new();
        for (source, text) in outputs {
            let lower = text.to_lowercase();
            for needle in needles {
                if lower.contains(&needle.to_lowercase()) {
                    found.push(format!("{source} holds '{needle}'"));
                }
            }
        }
        found
    };
    // Acme's data card name, document ids, principal ids, canary text, and its name at all.
    let acme = [
        "Acme Bank AG sample policies",
        "acme-bank.kestrel",
        "acme-vendor-onboarding-faq",
        "acme-data-retention",
        "adam@acme-bank",
        "alice@acme-bank",
        "rita@acme-bank",
        CANARY_TEXT,
        CANARY_TITLE,
        "kestrel",
        "acme",
    ];
    let borealis = [
        "Borealis Insurance plc sample policies",
        "borealis-claims-data-handling",
        "carol@borealis-insurance",
        "abel@borealis-insurance",
        "borealis",
    ];

    for principal in ["rhea@borealis-insurance", "abel@borealis-insurance"] {
        let mut b = browser(&p).await;
        b.sign_in(principal).await;
        let outputs = read_all(&mut b, &routes).await;
        if principal.starts_with("rhea") {
            assert!(outputs.iter().filter(|(s, _)| s.contains(".zip!")).count() >= 10, "the packet was unzipped");
            // Its own tenant's records are there (the reads did return data).
            assert!(
                !leaks_of(&outputs, &["carol@borealis-insurance", "Borealis Insurance plc sample policies"]).is_empty()
            );
        }
        assert_eq!(leaks_of(&outputs, &acme), Vec::<String>::new(), "{principal} read Acme's records");
    }
    let mut rita = browser(&p).await;
    rita.sign_in("rita@acme-bank").await;
    let outputs = read_all(&mut rita, &routes).await;
    assert_eq!(leaks_of(&outputs, &borealis), Vec::<String>::new(), "rita read Borealis's records");
    let mut adam = browser(&p).await;
    adam.sign_in("adam@acme-bank").await;
    let outputs = read_all(&mut adam, &routes).await;
    assert_eq!(leaks_of(&outputs, &borealis), Vec::<String>::new(), "adam read Borealis's records");

    // Positive control: the platform reviewer, named in the settings, reads both tenants' records
    // through the same routes and packet, so the checks above can fail.
    let mut olga = browser(&p).await;
    olga.sign_in("olga@borealis-insurance").await;
    let outputs = read_all(&mut olga, &routes).await;
    let seen = leaks_of(&outputs, &acme);
    for needle in [
        "Acme Bank AG sample policies",
        "acme-bank.kestrel",
        "acme-vendor-onboarding-faq",
        "adam@acme-bank",
        "alice@acme-bank",
    ] {
        assert!(
            seen.iter().any(|s| s.ends_with(&format!("'{needle}'"))),
            "the platform reviewer sees {needle}: {seen:?}"
        );
    }
    assert!(seen.iter().any(|s| s.contains(".zip!") && s.contains("acme-bank.kestrel")), "{seen:?}");
    assert!(seen.iter().any(|s| s.starts_with("/governance/audit?action=open_document")), "{seen:?}");
    // The same role without the setting is a tenant reviewer: a tenant's identity provider
    // cannot grant the platform scope by a claim.
    assert_eq!(
        p.governance()
            .scope_of(&p.storage.actor("rhea@borealis-insurance").await.unwrap().unwrap())
            .tenant()
            .map(|t| t.as_str()),
        Some("borealis-insurance")
    );
}
