//! The web application, driven through actix-web's test service: development sign-in with CSRF,
//! the Ask page and API, tenant isolation end to end, and errors that leak nothing.

use std::collections::BTreeMap;

use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::{App, test, web};
use server::http::routes;
use server::service::Platform;

use crate::support::{Backend, corpus_platform};

/// A cookie-keeping client for the in-process service.
pub(crate) struct Browser<S> {
    pub(crate) service: S,
    pub(crate) cookies: BTreeMap<String, String>,
}

impl<S> Browser<S>
where
    S: Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>,
{
    pub(crate) async fn send(&mut self, mut req: test::TestRequest) -> (StatusCode, BTreeMap<String, String>, String) {
        for (name, value) in &self.cookies {
            req = req.cookie(actix_web::cookie::Cookie::new(name.clone(), value.clone()));
        }
        let resp = test::call_service(&self.service, req.to_request()).await;
        for c in resp.response().cookies() {
            if c.value().is_empty() {
                self.cookies.remove(c.name());
            } else {
                self.cookies.insert(c.name().to_owned(), c.value().to_owned());
            }
        }
        let status = resp.status();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or_default().to_owned()))
            .collect();
        let body = String::from_utf8_lossy(&test::read_body(resp).await).into_owned();
        (status, headers, body)
    }

    pub(crate) async fn get(&mut self, uri: &str) -> (StatusCode, BTreeMap<String, String>, String) {
        self.send(test::TestRequest::get().uri(uri)).await
    }

    pub(crate) async fn csrf(&mut self) -> String {
        let (_, _, body) = self.get("/signin").await;
        let marker = "name=\"csrf\" value=\"";
        let start = body.find(marker).map(|i| i + marker.len()).expect("csrf field on the sign-in page");
        body[start..].split('"').next().unwrap_or_default().to_owned()
    }

    pub(crate) async fn sign_in(&mut self, principal: &str) -> StatusCode {
        let csrf = self.csrf().await;
        let form = [("csrf", csrf.as_str()), ("principal_id", principal)];
        self.send(test::TestRequest::post().uri("/signin/dev").set_form(form)).await.0
    }
}

pub(crate) async fn browser(
    p: &Platform,
) -> Browser<impl Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>> {
    let state = web::Data::new(server::http::app::shared_state(p).await.expect("state"));
    let service = test::init_service(App::new().app_data(state).configure(routes)).await;
    Browser { service, cookies: BTreeMap::new() }
}

#[actix_web::test]
async fn a_tenant_b_user_signs_in_and_sees_only_tenant_b_passages_with_pages() {
    let (_dir, p) = corpus_platform(Backend::Sqlite).await;
    let mut b = browser(&p).await;

    let (status, headers, _) = b.get("/ask?q=deleting+customer+data").await;
    assert_eq!(status, StatusCode::SEE_OTHER, "signed-out users are sent to sign in");
    assert_eq!(headers.get("location").map(String::as_str), Some("/signin"));

    let (_, _, signin) = b.get("/signin").await;
    assert!(signin.contains("Development sign-in"), "the development sign-in is labelled");
    assert!(signin.contains("carol@borealis-insurance"));

    assert_eq!(b.sign_in("carol@borealis-insurance").await, StatusCode::SEE_OTHER);
    let (status, _, page) = b.get("/ask?q=rules+about+deleting+customer+data").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Claims Data Handling Policy"), "tenant B's own policy answers");
    assert!(page.contains("page 1"), "passages show their page");
    assert!(page.contains("passage "), "passages show their id");
    assert!(!page.contains("Acme"), "nothing of tenant A appears");

    let (status, _, json) = b.get("/api/ask?q=rules+about+deleting+customer+data").await;
    assert_eq!(status, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    let passages = v["passages"].as_array().expect("passages");
    assert!(!passages.is_empty());
    for passage in passages {
        assert!(passage["document_id"].as_str().is_some_and(|d| d.starts_with("borealis-")), "{passage}");
        assert!(passage["page"].as_u64().is_some_and(|n| n >= 1));
    }

    // htmx asks get only the results fragment.
    let (_, _, fragment) =
        b.send(test::TestRequest::get().uri("/ask?q=claims+retention").insert_header(("HX-Request", "true"))).await;
    assert!(fragment.contains("class=\"passage\"") && !fragment.contains("<html"), "{fragment}");
}

#[actix_web::test]
async fn forms_without_the_csrf_token_are_refused() {
    let (_dir, p) = corpus_platform(Backend::Sqlite).await;
    let mut b = browser(&p).await;
    let _ = b.csrf().await;
    let form = [("csrf", "forged"), ("principal_id", "alice@acme-bank")];
    let (status, _, body) = b.send(test::TestRequest::post().uri("/signin/dev").set_form(form)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("did not come from lexgate"));
    assert!(!b.cookies.contains_key(server::http::session::SESSION_COOKIE));

    assert_eq!(b.sign_in("alice@acme-bank").await, StatusCode::SEE_OTHER);
    let (status, _, _) = b.send(test::TestRequest::post().uri("/signout").set_form([("csrf", "forged")])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "sign-out is CSRF-protected too");
}

#[actix_web::test]
async fn a_tampered_session_cookie_is_not_a_session() {
    let (_dir, p) = corpus_platform(Backend::Sqlite).await;
    let mut b = browser(&p).await;
    b.cookies.insert(server::http::session::SESSION_COOKIE.into(), "alice@acme-bank|99999999999".into());
    let (status, _, _) = b.get("/api/ask?q=retention").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[actix_web::test]
async fn bad_input_gets_a_clear_error_and_no_internals() {
    let (_dir, p) = corpus_platform(Backend::Sqlite).await;
    let mut b = browser(&p).await;
    assert_eq!(b.sign_in("bob@acme-bank").await, StatusCode::SEE_OTHER);

    let (status, _, body) = b.get("/ask?q=retention&as_of=yesterday").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("YYYY-MM-DD") && body.contains("Request id"), "{body}");

    let long = "a".repeat(2001);
    let (status, _, body) = b.get(&format!("/api/ask?q={long}")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("limited to 2000 characters"));

    let (status, _, body) = b.get("/api/ask?q=%3F%21").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("empty"), "{body}");
}

#[actix_web::test]
async fn a_reviewer_reads_the_audit_log_and_downloads_the_packet_and_an_analyst_cannot() {
    let (_dir, p) = corpus_platform(Backend::Sqlite).await;
    let mut analyst = browser(&p).await;
    assert_eq!(analyst.sign_in("alice@acme-bank").await, StatusCode::SEE_OTHER);
    analyst.get("/ask?q=retention+of+customer+records").await;
    for uri in ["/governance", "/governance/audit", "/governance/packet.zip"] {
        let (status, _, body) = analyst.get(uri).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{uri}");
        assert!(!body.contains("PK") || body.contains("not allowed"), "{uri}");
    }
    let denials = p.storage.audit_page(None, 0, 50, Some("read_governance"), Some("denied")).await.unwrap();
    assert_eq!(denials.1, 3, "every refusal is audited");

    let mut reviewer = browser(&p).await;
    assert_eq!(reviewer.sign_in("rita@acme-bank").await, StatusCode::SEE_OTHER);
    let (status, _, page) = reviewer.get("/governance").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Risk tier 3") && page.contains("audit chain: <strong>intact"), "{page}");
    assert!(page.contains("acme-bank") && page.contains("embedding"), "{page}");
    assert!(!page.contains("borealis"), "a tenant's reviewer sees their own tenant's data card only: {page}");

    let (status, _, log) = reviewer.get("/governance/audit?action=read_governance").await;
    assert_eq!(status, StatusCode::OK);
    assert!(log.contains("3 events") && log.contains("denied") && log.contains("alice@acme-bank"), "{log}");
    let (_, _, asks) = reviewer.get("/governance/audit?action=ask").await;
    assert!(asks.contains("principal:") && !asks.contains("retention of customer records"), "hashed, no question text");

    let (status, headers, zip) = reviewer.get("/governance/packet.zip").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers.get("content-type").map(String::as_str), Some("application/zip"));
    assert!(headers.get("content-disposition").is_some_and(|d| d.contains("attachment")));
    assert!(zip.starts_with("PK") && zip.contains("README.md") && zip.contains("06-audit.json"));

    // The JSON API: reviewers read their tenant's records and the platform's, admins their
    // tenant's card and the inventory, analysts nothing.
    let (status, _, risk) = reviewer.get("/api/governance/risk").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&risk).unwrap()["tier"], 3);
    let (_, _, cards) = reviewer.get("/api/governance/data-cards").await;
    assert_eq!(serde_json::from_str::<serde_json::Value>(&cards).unwrap()["data_cards"].as_array().unwrap().len(), 1);
    let mut admin = browser(&p).await;
    admin.sign_in("adam@acme-bank").await;
    let (status, _, cards) = admin.get("/api/governance/data-cards").await;
    assert_eq!(status, StatusCode::OK);
    let cards: serde_json::Value = serde_json::from_str(&cards).unwrap();
    assert_eq!(cards["data_cards"].as_array().unwrap().len(), 1);
    assert_eq!(cards["data_cards"][0]["set"], "acme-bank");
    let (status, _, models) = admin.get("/api/governance/models").await;
    assert_eq!(status, StatusCode::OK);
    assert!(models.contains("\"embedding\""));
    assert_eq!(admin.get("/api/governance/risk").await.0, StatusCode::FORBIDDEN);
    assert_eq!(analyst.get("/api/governance/models").await.0, StatusCode::FORBIDDEN);
}

#[actix_web::test]
async fn an_analyst_gets_an_extractive_answer_whose_citations_open_the_highlighted_span() {
    let (_dir, p) = corpus_platform(Backend::Sqlite).await;
    let mut alice = browser(&p).await;
    assert_eq!(alice.sign_in("alice@acme-bank").await, StatusCode::SEE_OTHER);
    let q = "/api/v1/ask?q=How+long+are+customer+onboarding+files+kept%3F";
    let (status, _, body) = alice.get(q).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let answer = &v["answer"];
    assert!(answer["abstained"].is_null(), "{answer}");
    let citations = answer["citations"].as_array().unwrap();
    let first = &citations[0];
    assert_eq!(first["document_id"], "acme-data-retention");
    assert_eq!(first["version"], 2, "today the version in force answers");
    assert!(first["quote"].as_str().unwrap().contains("eight years"), "{first}");
    // Every quote is the stored chunk's text at its offsets.
    let ids: Vec<String> = citations.iter().map(|c| c["chunk_id"].as_str().unwrap().to_owned()).collect();
    let stored = p.storage.chunks_by_ids(&ids).await.unwrap();
    for c in citations {
        let chunk = stored.iter().find(|s| s.id == c["chunk_id"].as_str().unwrap()).unwrap();
        let (start, end) = (c["start"].as_u64().unwrap() as usize, c["end"].as_u64().unwrap() as usize);
        assert_eq!(&chunk.text[start..end], c["quote"].as_str().unwrap());
    }

    // The page shows the answer with citation links; a link opens the passage with the span marked.
    let (_, _, page) = alice.get("/ask?q=How+long+are+customer+onboarding+files+kept%3F").await;
    assert!(page.contains("<h2>Answer</h2>") && page.contains("class=\"cite-marker\""), "{page}");
    assert!(page.contains("Why these sources") && page.contains("BM25 #"), "the ranking is explained");
    let href = page.split("class=\"cite-marker\" href=\"").nth(1).unwrap().split('"').next().unwrap();
    // Browsers do not send the fragment.
    let href = href.replace("&#38;", "&").replace("#cited", "");
    let (status, _, passage) = alice.get(&href).await;
    assert_eq!(status, StatusCode::OK, "{passage}");
    let marked = passage
        .split("<mark id=\"cited\">")
        .nth(1)
        .unwrap_or_else(|| panic!("{href}: {passage}"))
        .split("</mark>")
        .next()
        .unwrap();
    assert!(marked.contains("eight years"), "{marked}");

    // As of a date before version 2, version 1 answers.
    let (_, _, body) = alice.get(&format!("{q}&as_of=2024-06-01")).await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["answer"]["citations"][0]["version"], 1, "{v}");
    assert!(v["answer"]["citations"][0]["quote"].as_str().unwrap().contains("ten years"));

    // A forged span is not highlighted.
    let forged = href.replace("start=", "start=1").replace("end=", "end=9999");
    let (_, _, passage) = alice.get(&forged).await;
    assert!(!passage.contains("<mark") && passage.contains("does not match"), "{passage}");

    // Out of scope: the answer abstains.
    let (_, _, body) = alice.get("/api/v1/ask?q=What+is+the+boiling+point+of+mercury%3F").await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["answer"]["abstained"], server::service::answer::NOT_FOUND);
    assert!(v["answer"]["citations"].as_array().unwrap().is_empty());
}

#[actix_web::test]
async fn another_tenant_asking_the_same_question_gets_not_found_and_cannot_open_the_passage() {
    let (_dir, p) = corpus_platform(Backend::Sqlite).await;
    let mut alice = browser(&p).await;
    alice.sign_in("alice@acme-bank").await;
    let q = "/api/v1/ask?q=How+long+does+Acme+Bank+keep+customer+onboarding+files%3F";
    let (_, _, body) = alice.get(q).await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let cited = v["answer"]["citations"][0]["chunk_id"].as_str().expect("alice gets an answer").to_owned();

    let mut carol = browser(&p).await;
    carol.sign_in("carol@borealis-insurance").await;
    let (_, _, body) = carol.get(q).await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["answer"]["abstained"], server::service::answer::NOT_FOUND, "{v}");
    assert!(!body.contains("acme-data-retention"), "nothing of tenant A reaches tenant B");
    let (status, _, page) = carol.get(&format!("/passages/{cited}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(!page.contains("onboarding"));
}

/// A multipart/form-data body with text fields and PDF files.
pub(crate) fn multipart(fields: &[(&str, &str)], files: &[(&str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "lexgate-test-boundary-7d93";
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").as_bytes(),
        );
    }
    for (file_name, bytes) in files {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{file_name}\"\r\nContent-Type: application/pdf\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// A one-page PDF about a made-up topic no corpus document mentions.
pub fn heron_pdf() -> Vec<u8> {
    let lines = [
        "Section 1 Heron observation",
        "Staff who observe grey herons on the premises record each sighting in the wildlife register",
        "within two business days. The facilities team reviews the register every quarter.",
    ];
    indexer::write_text_pdf("Heron Sightings Procedure", &[lines.iter().map(|l| l.to_string()).collect()]).unwrap()
}

impl<S> Browser<S>
where
    S: Service<actix_http::Request, Response = ServiceResponse, Error = actix_web::Error>,
{
    pub(crate) async fn upload(
        &mut self,
        fields: &[(&str, &str)],
        files: &[(&str, &[u8])],
    ) -> (StatusCode, String, String) {
        let (content_type, body) = multipart(fields, files);
        let req = test::TestRequest::post()
            .uri("/documents/upload")
            .insert_header(("content-type", content_type))
            .set_payload(body);
        let (status, headers, body) = self.send(req).await;
        (status, headers.get("location").cloned().unwrap_or_default(), body)
    }

    /// Polls a job page as htmx does until the job ends; returns the last fragment.
    pub(crate) async fn wait_for_job(&mut self, job_url: &str) -> String {
        for _ in 0..600 {
            let (_, _, fragment) =
                self.send(test::TestRequest::get().uri(job_url).insert_header(("HX-Request", "true"))).await;
            if !fragment.contains("hx-trigger") {
                return fragment;
            }
            actix_web::rt::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("the upload job did not finish");
    }

    pub(crate) async fn page_csrf(&mut self, uri: &str) -> String {
        let (_, _, body) = self.get(uri).await;
        let marker = "name=\"csrf\" value=\"";
        let start = body.find(marker).map(|i| i + marker.len()).unwrap_or_else(|| panic!("no csrf on {uri}"));
        body[start..].split('"').next().unwrap_or_default().to_owned()
    }
}

pub(crate) fn upload_fields(csrf: &str) -> Vec<(&str, &str)> {
    vec![
        ("csrf", csrf),
        ("owner", "Facilities"),
        ("classification", "internal"),
        ("groups", "staff"),
        ("status", "approved"),
        ("effective_from", "2024-01-01"),
        ("retention", "standard"),
    ]
}

#[actix_web::test]
async fn an_admin_uploads_a_pdf_watches_it_ingest_edits_its_access_and_deletes_it_with_a_receipt() {
    let (_dir, p) = corpus_platform(Backend::Sqlite).await;
    let mut adam = browser(&p).await;
    assert_eq!(adam.sign_in("adam@acme-bank").await, StatusCode::SEE_OTHER);
    let csrf = adam.page_csrf("/documents").await;
    let pdf = heron_pdf();
    let (status, job, body) = adam.upload(&upload_fields(&csrf), &[("Heron sightings.pdf", &pdf)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    assert!(job.starts_with("/documents/jobs/"), "{job}");
    let done = adam.wait_for_job(&job).await;
    assert!(done.contains("id=\"job-done\""), "{done}");
    assert!(done.contains("Pages extracted: 1") && done.contains("Indexed: 1"), "{done}");
    let (_, _, list) = adam.get("/documents?q=heron").await;
    assert!(list.contains("/documents/acme-bank.heron-sightings") && !list.contains("acme-data-retention"), "{list}");

    // An analyst of the tenant finds it at once.
    let mut bob = browser(&p).await;
    bob.sign_in("bob@acme-bank").await;
    let ask = "/api/v1/ask?q=When+are+grey+heron+sightings+recorded+in+the+wildlife+register%3F";
    let (_, _, body) = bob.get(ask).await;
    assert!(body.contains("\"document_id\":\"acme-bank.heron-sightings\""), "{body}");

    // Editing the access metadata re-indexes it: a group bob lacks hides it from him.
    let mut fields = upload_fields(&csrf);
    fields.retain(|(k, _)| *k != "groups");
    fields.extend([("groups", "facilities"), ("version", "1")]);
    let (status, _, body) = adam
        .send(test::TestRequest::post().uri("/documents/acme-bank.heron-sightings/metadata").set_form(&fields))
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let (_, _, body) = bob.get(ask).await;
    assert!(!body.contains("heron-sightings"), "{body}");
    let acl = p.storage.version_acl("acme-bank.heron-sightings", 1).await.unwrap().unwrap();
    assert_eq!(acl.allowed_groups.iter().map(|g| g.as_str()).collect::<Vec<_>>(), ["facilities"]);

    // The confirmation says what will go; the receipt says what went.
    let (status, _, confirm) = adam.get("/documents/acme-bank.heron-sightings/delete").await;
    assert_eq!(status, StatusCode::OK);
    assert!(confirm.contains("Delete Heron sightings?") || confirm.contains("Delete Heron"), "{confirm}");
    assert!(confirm.contains("<td>1</td><td>approved</td><td>1</td>"), "{confirm}");
    let (status, _, receipt) = adam
        .send(
            test::TestRequest::post()
                .uri("/documents/acme-bank.heron-sightings/delete")
                .set_form([("csrf", csrf.as_str()), ("reason", "uploaded by mistake")]),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{receipt}");
    assert!(receipt.contains("Deletion receipt") && receipt.contains("Deleted and verified"), "{receipt}");
    assert!(p.storage.document("acme-bank.heron-sightings").await.unwrap().is_none());
    assert_eq!(p.storage.receipts(&indexer::TenantId::parse("acme-bank").unwrap()).await.unwrap().len(), 1);
}

#[actix_web::test]
async fn bad_uploads_forged_forms_and_other_tenants_documents_get_a_clear_4xx_and_change_nothing() {
    let (_dir, p) = corpus_platform(Backend::Sqlite).await;
    let mut settings = (*p.settings).clone();
    settings.upload_max_bytes = 4096;
    let p = Platform { settings: std::sync::Arc::new(settings), ..p };
    let chunks_before = p.storage.indexable_chunks(None).await.unwrap().len();
    let mut adam = browser(&p).await;
    adam.sign_in("adam@acme-bank").await;
    let csrf = adam.page_csrf("/documents").await;

    let (status, _, body) = adam.upload(&upload_fields(&csrf), &[("notes.pdf", b"just some text, not a PDF")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("is not a PDF file"), "{body}");

    let big = [b"%PDF-1.4\n".as_slice(), &vec![b'x'; 8192]].concat();
    let (status, _, body) = adam.upload(&upload_fields(&csrf), &[("big.pdf", &big)]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("larger than the limit"), "{body}");

    let pdf = heron_pdf();
    let (status, _, body) = adam.upload(&upload_fields("")[1..], &[("heron.pdf", &pdf)]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "an upload without the CSRF token");
    assert!(body.contains("did not come from lexgate"), "{body}");

    // An upload whose PDF cannot be parsed fails in the job and leaves nothing behind.
    let broken = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n";
    let (status, job, _) = adam.upload(&upload_fields(&csrf), &[("broken.pdf", broken)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let failed = adam.wait_for_job(&job).await;
    assert!(failed.contains("id=\"job-failed\""), "{failed}");
    assert!(p.storage.document("broken").await.unwrap().is_none());

    // Another tenant's document, addressed by id: not found, unchanged.
    let mut fields = upload_fields(&csrf);
    fields.push(("version", "1"));
    let (status, _, _) = adam
        .send(test::TestRequest::post().uri("/documents/borealis-claims-data-handling/metadata").set_form(&fields))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = adam
        .send(
            test::TestRequest::post()
                .uri("/documents/borealis-claims-data-handling/delete")
                .set_form([("csrf", csrf.as_str()), ("reason", "x")]),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let acl = p.storage.version_acl("borealis-claims-data-handling", 1).await.unwrap().unwrap();
    assert_ne!(acl.owner, "Facilities");

    // A CSRF-less metadata edit of its own document changes nothing either.
    let forged: Vec<_> = upload_fields("").into_iter().skip(1).chain([("version", "1")]).collect();
    let (status, _, _) =
        adam.send(test::TestRequest::post().uri("/documents/acme-erasure-requests/metadata").set_form(&forged)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Analysts cannot upload.
    let mut bob = browser(&p).await;
    bob.sign_in("bob@acme-bank").await;
    let bob_csrf = bob.page_csrf("/ask").await;
    let (status, _, _) = bob.upload(&upload_fields(&bob_csrf), &[("heron.pdf", &pdf)]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    assert_eq!(p.storage.indexable_chunks(None).await.unwrap().len(), chunks_before, "nothing changed");
    let denials = p.storage.audit_page(None, 0, 50, None, Some("denied")).await.unwrap();
    assert!(denials.1 >= 3, "refusals are audited: {:?}", denials.0.iter().map(|e| &e.action).collect::<Vec<_>>());
}

#[actix_web::test]
async fn service_tokens_are_scoped_and_a_revoked_token_is_refused_and_changes_nothing() {
    let (_dir, p) = corpus_platform(Backend::Sqlite).await;
    let mut adam = browser(&p).await;
    adam.sign_in("adam@acme-bank").await;
    let csrf = adam.page_csrf("/documents").await;
    let request = serde_json::json!({
        "name": "compliance-bot", "scopes": ["ask"], "groups": ["staff"], "clearance": "internal", "valid_days": 30,
    });
    let (status, _, body) = adam.send(test::TestRequest::post().uri("/api/v1/tokens").set_json(&request)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a session needs the CSRF header: {body}");
    let (status, _, body) = adam
        .send(
            test::TestRequest::post()
                .uri("/api/v1/tokens")
                .insert_header(("X-CSRF-Token", csrf.as_str()))
                .set_json(&request),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let issued: serde_json::Value = serde_json::from_str(&body).unwrap();
    let token = issued["token"].as_str().unwrap().to_owned();
    let id = issued["record"]["id"].as_str().unwrap().to_owned();
    assert!(token.starts_with("lxg_"));

    // A client without cookies uses the token.
    let mut bot = browser(&p).await;
    let bearer = ("Authorization", format!("Bearer {token}"));
    let ask = "/api/v1/ask?q=How+long+are+customer+onboarding+files+kept%3F";
    let (status, _, body) = bot.send(test::TestRequest::get().uri(ask).insert_header(bearer.clone())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("eight years"), "{body}");
    let (status, _, _) =
        bot.send(test::TestRequest::get().uri("/api/v1/documents").insert_header(bearer.clone())).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "the ask scope does not manage documents");
    let (_, _, listed) = adam.get("/api/v1/tokens").await;
    assert!(listed.contains("compliance-bot") && !listed.contains(&token), "the secret is never listed: {listed}");

    let (status, _, _) = adam
        .send(
            test::TestRequest::delete()
                .uri(&format!("/api/v1/tokens/{id}"))
                .insert_header(("X-CSRF-Token", csrf.as_str())),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, body) = bot.send(test::TestRequest::get().uri(ask).insert_header(bearer.clone())).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.contains("revoked"), "{body}");
    let docs_before = p.storage.list_documents(&indexer::TenantId::parse("acme-bank").unwrap()).await.unwrap().len();
    let (status, _, _) = bot
        .send(
            test::TestRequest::delete()
                .uri("/api/v1/documents/acme-erasure-requests")
                .insert_header(bearer.clone())
                .set_json(serde_json::json!({ "reason": "x" })),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let docs_after = p.storage.list_documents(&indexer::TenantId::parse("acme-bank").unwrap()).await.unwrap().len();
    assert_eq!(docs_before, docs_after);
    let (rejected, _) = p.storage.audit_page(None, 0, 10, Some("api_token"), Some("rejected")).await.unwrap();
    assert_eq!(rejected.len(), 2, "each refused token use is audited");
}

#[actix_web::test]
async fn health_readiness_and_the_openapi_document_are_served() {
    let (_dir, p) = corpus_platform(Backend::Sqlite).await;
    let mut b = browser(&p).await;
    let (status, _, body) = b.get("/healthz").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, body) = b.get("/readyz").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let ready: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ready["checks"]["database"], true);
    assert_eq!(ready["checks"]["dense_index_and_embedding_model"], true);
    assert!(ready["checks"]["bm25_passages"].as_u64().unwrap() > 50);
    let (status, _, body) = b.get("/api/v1/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    let spec: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(spec["openapi"], "3.1.0");
    for path in
        ["/api/v1/ask", "/api/v1/documents", "/api/v1/documents/{id}", "/api/v1/tokens/{id}", "/api/v1/jobs/{id}"]
    {
        assert!(spec["paths"][path].is_object(), "{path} is described");
    }
}

#[actix_web::test]
async fn when_the_database_cannot_be_reached_asking_fails_closed_and_readiness_says_so() {
    let (_dir, p) = corpus_platform(Backend::Sqlite).await;
    let mut alice = browser(&p).await;
    alice.sign_in("alice@acme-bank").await;
    p.storage.close().await.unwrap();
    let (status, _, body) = alice.get("/ask?q=How+long+are+customer+onboarding+files+kept%3F").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("cannot be reached, so no answer was given") && !body.contains("eight years"), "{body}");
    let (status, _, body) = alice.get("/api/v1/ask?q=How+long+are+customer+onboarding+files+kept%3F").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(!body.contains("eight years") && !body.contains("sqlite"), "no answer and no internals: {body}");
    let (status, _, body) = alice.get("/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("\"database\":false"), "{body}");
}

#[actix_web::test]
async fn a_new_version_supersedes_the_old_one_and_a_too_long_pdf_is_refused() {
    let (_dir, p) = corpus_platform(Backend::Sqlite).await;
    let mut settings = (*p.settings).clone();
    settings.upload_max_pages = 1;
    let p = Platform { settings: std::sync::Arc::new(settings), ..p };
    let mut adam = browser(&p).await;
    adam.sign_in("adam@acme-bank").await;
    let csrf = adam.page_csrf("/documents").await;
    let pdf = heron_pdf();
    let (_, job, _) = adam.upload(&upload_fields(&csrf), &[("Heron sightings.pdf", &pdf)]).await;
    assert!(adam.wait_for_job(&job).await.contains("job-done"));

    let page = |marker: &str| {
        vec![format!("Section 1 Heron observation {marker}"), format!("Heron sightings are recorded {marker}.")]
    };
    let v2 = indexer::write_text_pdf("Heron Sightings Procedure", &[page("within one business day")]).unwrap();
    let mut fields = upload_fields(&csrf);
    fields.retain(|(k, _)| *k != "effective_from");
    fields.extend([("version_of", "acme-bank.heron-sightings"), ("effective_from", "2025-01-01")]);
    let (status, job, body) = adam.upload(&fields, &[("heron-v2.pdf", &v2)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    let done = adam.wait_for_job(&job).await;
    assert!(done.contains("job-done") && done.contains("version 2"), "{done}");
    let v1 = p.storage.version_acl("acme-bank.heron-sightings", 1).await.unwrap().unwrap();
    assert_eq!(v1.expires_at.map(|d| d.to_string()).as_deref(), Some("2025-01-01"), "version 1 is superseded");
    let (_, _, detail) = adam.get("/documents/acme-bank.heron-sightings").await;
    assert!(detail.contains("<td>2</td><td>approved</td>"), "{detail}");

    // Retiring withdraws every version.
    let (status, _, _) = adam
        .send(
            test::TestRequest::post()
                .uri("/documents/acme-bank.heron-sightings/status")
                .set_form([("csrf", csrf.as_str()), ("status", "withdrawn")]),
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, _, detail) = adam.get("/documents/acme-bank.heron-sightings").await;
    assert!(detail.contains("<td>1</td><td>withdrawn</td>") && detail.contains("<td>2</td><td>withdrawn</td>"));

    let two_pages = indexer::write_text_pdf("Two pages", &[page("one"), page("two")]).unwrap();
    let mut fields = upload_fields(&csrf);
    fields.push(("document_id", "two-pages"));
    let (_, job, _) = adam.upload(&fields, &[("two.pdf", &two_pages)]).await;
    let failed = adam.wait_for_job(&job).await;
    assert!(failed.contains("job-failed") && failed.contains("2 pages; the limit is 1"), "{failed}");
    assert!(p.storage.document("acme-bank.two-pages").await.unwrap().is_none(), "nothing of it is kept");
}

/// A sentence sharing the question's common words but not its subject is shown as the closest
/// passage under its own label, never as the answer, and the API gives no citation for it.
#[actix_web::test]
async fn a_weak_match_is_labelled_as_the_closest_passages_not_as_the_answer() {
    let (_dir, p) = corpus_platform(Backend::Sqlite).await;
    let mut bob = browser(&p).await;
    bob.sign_in("bob@acme-bank").await;
    let q = "q=Which+gifts+must+be+recorded+in+the+gifts+register%3F";
    let (status, _, json) = bob.get(&format!("/api/v1/ask?{q}")).await;
    assert_eq!(status, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let answer = &v["answer"];
    assert!(answer["citations"].as_array().unwrap().is_empty(), "{answer}");
    assert!(answer["abstained"].as_str().is_some_and(|a| a.contains("No confident answer")), "{answer}");
    assert!(!answer["closest"].as_array().unwrap().is_empty(), "{answer}");
    let (_, _, page) = bob.get(&format!("/ask?{q}")).await;
    assert!(page.contains("Closest passages (weak match)") && page.contains("may not answer"), "{page}");
    assert!(!page.contains("<h2>Answer</h2>"), "{page}");
    // Positive control: a question the policy answers is shown as the answer.
    let (_, _, page) = bob.get("/ask?q=How+long+are+complaint+files+kept%3F").await;
    assert!(page.contains("<h2>Answer</h2>") && !page.contains("weak match"), "{page}");
    // Both asks of the gifts question (API and page) are audited as weak matches.
    let (events, _) = p.storage.audit_page(None, 0, 10, Some("ask"), Some("weak_match")).await.unwrap();
    assert_eq!(events.len(), 2);
}

/// When nothing answers because the document that would is out of force on the date asked, the
/// analyst is told so, with the date to ask as of; never of a document they may not read.
#[actix_web::test]
async fn nothing_answers_says_when_a_readable_document_is_expired_or_withdrawn_and_only_then() {
    let (_dir, p) = corpus_platform(Backend::Sqlite).await;
    let mut bob = browser(&p).await;
    bob.sign_in("bob@acme-bank").await;
    let q = "q=May+private+computers+be+used+for+remote+work%3F";
    let (_, _, json) = bob.get(&format!("/api/v1/ask?{q}")).await;
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let answer = &v["answer"];
    assert!(answer["citations"].as_array().unwrap().is_empty(), "{answer}");
    let hint = answer["out_of_force"].as_str().unwrap_or_else(|| panic!("{answer}"));
    assert!(hint.contains("Remote Work") && hint.contains("2025-01-01") && hint.contains("2024-12-31"), "{hint}");
    // Asked as of that date, it answers.
    let (_, _, json) = bob.get(&format!("/api/v1/ask?{q}&as_of=2024-12-31")).await;
    assert!(json.contains("Private computers may be used for webmail only"), "{json}");
    let (_, _, page) = bob.get(&format!("/ask?{q}")).await;
    assert!(page.contains("id=\"out-of-force\"") && page.contains("2024-12-31"), "{page}");
    // Another tenant's analyst, asking the same, hears nothing of Acme's document.
    let mut carol = browser(&p).await;
    carol.sign_in("carol@borealis-insurance").await;
    let (_, _, json) = carol.get(&format!("/api/v1/ask?{q}")).await;
    assert!(!json.contains("Remote Work") && !json.contains("2025-01-01"), "{json}");
    // Nor does a reader of the tenant without the document's group.
    p.storage
        .set_version_acl("acme-remote-work-security", 1, &{
            let mut acl = p.storage.version_acl("acme-remote-work-security", 1).await.unwrap().unwrap();
            acl.allowed_groups = [indexer::GroupName::parse("facilities").unwrap()].into();
            acl
        })
        .await
        .unwrap();
    let (_, _, json) = bob.get(&format!("/api/v1/ask?{q}")).await;
    assert!(!json.contains("Remote Work"), "{json}");
}
