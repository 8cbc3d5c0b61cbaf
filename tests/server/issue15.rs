//! Regression tests for what the hostile tests of issue 15 found: PDFs that killed the server,
//! version titles that reached readers of other versions, passages opened past the data-card
//! gate, deleted text left in the bytes on disk, and a data folder that could not be created.

use std::sync::Arc;

use actix_web::http::StatusCode;
use indexer::pdf::hostile;
use server::service::ingest::{Upload, UploadStatus};

use crate::support::{Backend, corpus_platform};
use crate::web::{browser, upload_fields};

fn no_report() -> server::service::ingest::StatusReporter {
    Arc::new(|_: &dyn Fn(&mut UploadStatus)| {})
}

fn acl(groups: &[&str], classification: &str, effective_from: &str) -> indexer::ChunkAcl {
    indexer::ChunkAcl {
        tenant: indexer::TenantId::parse("acme-bank").unwrap(),
        owner: "Compliance".into(),
        classification: classification.parse().unwrap(),
        allowed_groups: groups.iter().map(|g| indexer::GroupName::parse(g).unwrap()).collect(),
        status: indexer::SourceStatus::Approved,
        effective_from: effective_from.parse().unwrap(),
        expires_at: None,
        retention_class: "standard".into(),
    }
}

fn one_page_pdf(title: &str, lines: &[&str]) -> Vec<u8> {
    indexer::write_text_pdf(title, &[lines.iter().map(|l| l.to_string()).collect()]).unwrap()
}

fn upload(document_id: &str, title: &str, version: u32, acl: indexer::ChunkAcl, bytes: Vec<u8>) -> Upload {
    Upload {
        document_id: document_id.into(),
        title: title.into(),
        version,
        file_name: format!("{document_id}-v{version}.pdf"),
        bytes,
        acl,
        max_pages: 2000,
        kind: Default::default(),
    }
}

#[actix_web::test]
async fn hostile_pdfs_fail_one_by_one_and_the_server_stays_up() {
    let (_dir, p) = corpus_platform(Backend::Sqlite).await;
    let mut adam = browser(&p).await;
    adam.sign_in("adam@acme-bank").await;
    let csrf = adam.page_csrf("/documents").await;
    let cases: [(&str, Vec<u8>, &str); 5] = [
        ("parent-loop.pdf", hostile::parent_loop(), "page tree loops"),
        ("self-drawing.pdf", hostile::self_drawing_form(), "draws itself"),
        ("deep-forms.pdf", hostile::nested_forms(200, false), "nested more than"),
        ("bomb.pdf", hostile::flate_bomb(1_100_000_000), "inflates to more than"),
        ("long.pdf", hostile::many_pages(10_000), "10000 pages"),
    ];
    for (name, bytes, reason) in &cases {
        let (status, job, body) = adam.upload(&upload_fields(&csrf), &[(name, bytes)]).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{name}: {body}");
        let failed = adam.wait_for_job(&job).await;
        assert!(failed.contains("id=\"job-failed\"") && failed.contains(reason), "{name}: {failed}");
    }
    let (status, _, _) = adam.get("/healthz").await;
    assert_eq!(status, StatusCode::OK);
    // And the next good file goes in as usual.
    let pdf = crate::web::heron_pdf();
    let (_, job, _) = adam.upload(&upload_fields(&csrf), &[("Heron sightings.pdf", &pdf)]).await;
    assert!(adam.wait_for_job(&job).await.contains("id=\"job-done\""));
}

#[test]
fn the_worker_process_is_the_wall_behind_the_structural_check() {
    let program = std::path::PathBuf::from(env!("CARGO_BIN_EXE_lexgate"));
    // With the inflation cap lifted, the bomb reaches the parser, which inflates it for real
    // inside the worker's 384 MB of address space: a refusal comes back, not a crash.
    let limits = indexer::WorkerLimits {
        pdf: indexer::PdfLimits { max_inflated_bytes: u64::MAX, ..Default::default() },
        memory_bytes: 384 << 20,
        ..Default::default()
    };
    let worker = indexer::Extractor::Worker { program: program.clone(), limits };
    let err = worker.extract("bomb.pdf", &hostile::flate_bomb(1_100_000_000)).expect_err("refused");
    assert!(matches!(err, indexer::Error::User(indexer::UserError::CorruptPdf { .. })), "{err}");
    // A worker past its wall-clock limit is killed and the file refused.
    let hurried = indexer::Extractor::Worker {
        program: program.clone(),
        limits: indexer::WorkerLimits { wall_seconds: 0, ..Default::default() },
    };
    let err = hurried.extract("long.pdf", &hostile::many_pages(3000)).expect_err("killed");
    assert!(err.to_string().contains("took longer than 0 seconds"), "{err}");
    // A reply larger than allowed is refused too.
    let terse = indexer::Extractor::Worker {
        program: program.clone(),
        limits: indexer::WorkerLimits { max_output_bytes: 64, ..Default::default() },
    };
    let err = terse.extract("heron.pdf", &crate::web::heron_pdf()).expect_err("too much text");
    assert!(err.to_string().contains("its text is larger than"), "{err}");
    // The default worker reads a good file.
    let worker = indexer::Extractor::Worker { program, limits: indexer::WorkerLimits::default() };
    let pages = worker.extract("heron.pdf", &crate::web::heron_pdf()).expect("a good file");
    assert!(pages[0].text.contains("grey herons"), "{pages:?}");
    // A worker that cannot be started is an internal error, not a panic.
    let missing = indexer::Extractor::Worker { program: "/nonexistent/lexgate".into(), limits };
    assert!(matches!(missing.extract("x.pdf", b"%PDF-1.4"), Err(indexer::Error::Internal(_))));
}

#[actix_web::test]
async fn a_version_title_reaches_only_readers_of_that_version_on_every_route() {
    let (_dir, p) = corpus_platform(Backend::Sqlite).await;
    let ingestor = p.ingestor();
    let body = ["Section 1 Kestrel nest survey", "Staff survey kestrel nests on the premises every spring."];
    let v1 = one_page_pdf("Kestrel survey", &body);
    let v2 = one_page_pdf("Kestrel survey", &[body[0], body[1], "The board reviews the kestrel survey."]);
    let v3 = one_page_pdf("Kestrel survey", &[body[0], body[1], "Kestrel surveys move to autumn in 2099."]);
    let open = acl(&["staff"], "internal", "2024-01-01");
    ingestor
        .ingest_upload(upload("kestrel", "Kestrel survey", 1, open.clone(), v1), "adam", no_report())
        .await
        .unwrap();
    // A confidential board-only version, and a version in force only from 2099.
    let board = acl(&["board"], "confidential", "2024-01-01");
    let draft_title = "Secret draft: merger with Falcon";
    ingestor.ingest_upload(upload("kestrel", draft_title, 2, board, v2), "adam", no_report()).await.unwrap();
    let future_title = "Future kestrel plan";
    let future = acl(&["staff"], "internal", "2099-01-01");
    ingestor.ingest_upload(upload("kestrel", future_title, 3, future, v3), "adam", no_report()).await.unwrap();

    let mut bob = browser(&p).await;
    bob.sign_in("bob@acme-bank").await;
    let (_, _, json) = bob.get("/api/v1/ask?q=When+do+staff+survey+kestrel+nests%3F").await;
    assert!(json.contains("\"document_id\":\"kestrel\""), "{json}");
    assert!(json.contains("Kestrel survey"), "{json}");
    let (_, _, page) = bob.get("/ask?q=When+do+staff+survey+kestrel+nests%3F").await;
    let chunk = p.storage.version_chunks("kestrel", 1).await.unwrap().remove(0);
    let (status, _, passage) = bob.get(&format!("/passages/{}", chunk.id)).await;
    assert_eq!(status, StatusCode::OK);
    for (route, body) in [("api ask", &json), ("ask page", &page), ("passage page", &passage)] {
        assert!(!body.contains("Secret draft") && !body.contains("Falcon"), "{route}: {body}");
        assert!(!body.contains(future_title), "{route}: {body}");
    }
    // `lexgate search` goes through the same checked retrieval.
    let reader = indexer::Reader {
        tenant: indexer::TenantId::parse("acme-bank").unwrap(),
        groups: [indexer::GroupName::parse("staff").unwrap()].into(),
        clearance: indexer::Classification::Internal,
        as_of: chrono::NaiveDate::from_ymd_opt(2030, 1, 1).unwrap(),
        documents: None,
    };
    let checked = server::service::ask::retrieve_checked(
        &p.storage,
        &p.retriever(),
        &reader,
        "kestrel nests survey",
        indexer::Method::Hybrid,
        10,
        true,
    )
    .await
    .unwrap();
    assert!(checked.passages.iter().any(|x| x.chunk.document_id == "kestrel"));
    assert!(checked.passages.iter().all(|x| x.chunk.title != draft_title && x.chunk.title != future_title));

    // Deleting the board version takes its title with it; the admin list names the latest
    // remaining version.
    let adam = p.storage.actor("adam@acme-bank").await.unwrap().unwrap();
    p.documents().delete(&adam, "kestrel", Some(2), "test").await.unwrap();
    p.documents().delete(&adam, "kestrel", Some(3), "test").await.unwrap();
    assert_eq!(p.storage.document("kestrel").await.unwrap().unwrap().title, "Kestrel survey");
    let list = p.storage.list_documents(&adam.tenant).await.unwrap();
    assert!(list.iter().all(|d| !d.title.contains("Secret") && d.title != future_title));
}

#[actix_web::test]
async fn passages_by_id_are_refused_while_the_data_card_is_draft() {
    let (_dir, p) = corpus_platform(Backend::Sqlite).await;
    let pdf =
        one_page_pdf("Kestrel", &["Section 1 Kestrels", "Staff survey kestrel nests on the premises every spring."]);
    let open = acl(&["staff"], "internal", "2024-01-01");
    p.ingestor().ingest_upload(upload("kestrel", "Kestrel", 1, open, pdf), "adam", no_report()).await.unwrap();
    let chunk = p.storage.version_chunks("kestrel", 1).await.unwrap().remove(0);
    let mut bob = browser(&p).await;
    bob.sign_in("bob@acme-bank").await;
    let (status, _, _) = bob.get(&format!("/passages/{}", chunk.id)).await;
    assert_eq!(status, StatusCode::OK, "approved card: the passage opens");
    p.storage.set_data_card_status("acme-bank", "draft", "rita@acme-bank").await.unwrap();
    let (status, _, body) = bob.get(&format!("/passages/{}", chunk.id)).await;
    assert_ne!(status, StatusCode::OK);
    assert!(body.contains("data card is not approved") && !body.contains(&chunk.text[..40]), "{body}");
    let audit = p.storage.recent_audit(5).await.unwrap();
    assert!(audit.iter().any(|e| e.action == "open_passage" && e.outcome == "blocked_by_data_card"));
}

async fn deletion_leaves_no_deleted_text_in_any_file(backend: Backend) {
    let (dir, p) = corpus_platform(backend).await;
    let canary = "Canary sentence: the zebrafish quota of ledger nine is forty-two";
    let pdf = one_page_pdf("Canary", &["Section 1 Zebrafish", canary, "Nothing else is said here."]);
    let open = acl(&["staff"], "internal", "2024-01-01");
    p.ingestor().ingest_upload(upload("canary", "Canary", 1, open, pdf), "adam", no_report()).await.unwrap();
    let files_holding = |needle: &str| -> Vec<String> {
        let mut hits = Vec::new();
        let mut folders = vec![dir.path().to_path_buf()];
        while let Some(folder) = folders.pop() {
            for entry in std::fs::read_dir(folder).unwrap().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    folders.push(path);
                } else if let Ok(bytes) = std::fs::read(&path)
                    && bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
                {
                    hits.push(path.display().to_string());
                }
            }
        }
        hits
    };
    let needle = "zebrafish quota of ledger nine";
    assert!(!files_holding(needle).is_empty(), "the canary is on disk before the deletion");

    let adam = p.storage.actor("adam@acme-bank").await.unwrap().unwrap();
    let receipt = p.documents().delete(&adam, "canary", None, "canary test").await.unwrap();
    assert!(receipt.post_check.passed, "{receipt:?}");
    assert!(receipt.erasure.byte_scan.probes > 0 && receipt.erasure.byte_scan.found_in.is_empty(), "{receipt:?}");
    assert_eq!(files_holding(needle), Vec::<String>::new(), "deleted text left on disk");
    if matches!(backend, Backend::Postgres) {
        assert!(receipt.erasure.remains.iter().any(|r| r.contains("write-ahead log")), "{receipt:?}");
    }
}

crate::on_both_backends!(deletion_leaves_no_deleted_text_in_any_file);

#[test]
fn a_data_folder_that_does_not_exist_is_created_and_one_that_cannot_be_gets_one_sentence() {
    let dir = tempfile::tempdir().unwrap();
    let fresh = dir.path().join("new/nested/folder");
    let run = |data_dir: &std::path::Path, out: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_lexgate"))
            .args(["--data-dir", data_dir.to_str().unwrap(), "packet", "export", "--out", out.to_str().unwrap()])
            .env("LEXGATE_MODELS_DIR", crate::support::models_dir())
            .env("LEXGATE_LOG", "warn")
            .env_remove("DATABASE_URL")
            .current_dir(crate::support::repo_root())
            .output()
            .unwrap()
    };
    let out = run(&fresh, &dir.path().join("packet.zip"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(fresh.join("lexgate.db").is_file());

    // Under a regular file no folder can be made.
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let out = run(&file.join("data"), &dir.path().join("p2.zip"));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].contains("cannot be created"), "{stderr}");
}

#[actix_web::test]
async fn readiness_is_503_within_seconds_when_the_sqlite_file_is_damaged() {
    let (dir, p) = corpus_platform(Backend::Sqlite).await;
    let mut b = browser(&p).await;
    assert_eq!(b.get("/readyz").await.0, StatusCode::OK);
    // The file's header and first pages overwritten: connections stay open, every read fails.
    let db = dir.path().join("test.db");
    std::fs::write(&db, vec![0x5a; 64 * 1024]).unwrap();
    let started = std::time::Instant::now();
    let (status, _, body) = b.get("/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains("\"database\":false"), "{body}");
    assert!(started.elapsed() < std::time::Duration::from_secs(3), "{:?}", started.elapsed());
}

#[actix_web::test]
async fn two_files_that_would_share_a_document_id_are_refused_before_either_starts() {
    let (_dir, p) = corpus_platform(Backend::Sqlite).await;
    let mut adam = browser(&p).await;
    adam.sign_in("adam@acme-bank").await;
    let csrf = adam.page_csrf("/documents").await;
    let pdf = crate::web::heron_pdf();
    let (status, _, body) =
        adam.upload(&upload_fields(&csrf), &[("Heron sightings.pdf", &pdf), ("Heron sightings.pdf", &pdf)]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("would both become document"), "{body}");
    assert!(p.storage.document("acme-bank.heron-sightings").await.unwrap().is_none());
}

#[actix_web::test]
async fn a_restart_fails_dead_jobs_and_reconciles_the_file_store_with_the_database() {
    let (dir, p) = corpus_platform(Backend::Sqlite).await;
    let files = p.settings.files_dir();
    // What a kill -9 leaves: a job still "running", a staged file of a version never committed,
    // a staged file of a committed version whose rename did not happen, and a file no version owns.
    p.storage.start_job("ingest-killed", "*", "test", 3).await.unwrap();
    let committed = files.join("acme-data-retention/v1.pdf");
    let staged_committed = files.join("acme-data-retention/v1.pdf.abc123.partial");
    std::fs::rename(&committed, &staged_committed).unwrap();
    std::fs::create_dir_all(files.join("ghost")).unwrap();
    std::fs::write(files.join("ghost/v1.pdf"), b"%PDF-1.4 orphan").unwrap();
    std::fs::write(files.join("ghost/v2.pdf.def456.partial"), b"%PDF-1.4 half").unwrap();
    let settings = (*p.settings).clone();
    drop(p);
    let p = server::service::Platform::open_with(settings, Some(crate::support::shared_embedder())).await.unwrap();
    assert!(committed.is_file() && !staged_committed.exists(), "the committed version's file is in place");
    assert!(!files.join("ghost").exists(), "orphans and abandoned staged files are removed");
    let job = p.storage.job("ingest-killed").await.unwrap().unwrap();
    assert_eq!(job.status, "failed");
    let audit = p.storage.recent_audit(10).await.unwrap();
    assert!(audit.iter().any(|e| e.action == "ingest_job_abandoned"));
    assert!(audit.iter().any(|e| e.action == "file_store_sweep" && e.detail.contains("ghost/v1.pdf")));
    drop(dir);
}

#[actix_web::test]
async fn asks_beyond_the_queue_get_429_with_retry_after_and_are_audited() {
    use actix_web::{App, test, web};
    let (_dir, p) = corpus_platform(Backend::Sqlite).await;
    let mut state = server::http::app::shared_state(&p).await.unwrap();
    state.ask.admission = server::service::ask::Admission::new(1, 0);
    let held = state.ask.admission.admit().await.unwrap();
    let service = test::init_service(App::new().app_data(web::Data::new(state)).configure(server::http::routes)).await;
    let mut alice = crate::web::Browser { service, cookies: Default::default() };
    alice.sign_in("alice@acme-bank").await;
    let (status, headers, body) = alice.get("/api/v1/ask?q=How+long+are+customer+onboarding+files+kept%3F").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(headers.get("retry-after").map(String::as_str), Some("2"));
    assert!(p.storage.recent_audit(3).await.unwrap().iter().any(|e| e.outcome == "shed"));
    drop(held);
    let (status, _, _) = alice.get("/api/v1/ask?q=How+long+are+customer+onboarding+files+kept%3F").await;
    assert_eq!(status, StatusCode::OK);
}

/// A mutation run over the extraction wrapper: hostile and ordinary PDFs with bytes flipped,
/// inserted, duplicated and cut, each read by the worker as the server reads uploads. Every
/// outcome must be pages or a refusal in words; none may be an internal error, a hang or a
/// crash of this process. `LEXGATE_FUZZ_ITERATIONS` sets the length (CI runs a longer one).
#[test]
fn mutated_pdfs_are_read_or_refused_never_crash_the_caller() {
    let iterations: usize = std::env::var("LEXGATE_FUZZ_ITERATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(120);
    let seeds = [
        crate::web::heron_pdf(),
        hostile::parent_loop(),
        hostile::self_drawing_form(),
        hostile::nested_forms(40, false),
        hostile::flate_bomb(20_000_000),
        hostile::many_pages(50),
        hostile::kids_cycle(),
    ];
    let worker = indexer::Extractor::Worker {
        program: std::path::PathBuf::from(env!("CARGO_BIN_EXE_lexgate")),
        limits: indexer::WorkerLimits { wall_seconds: 20, ..Default::default() },
    };
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let (mut read, mut refused) = (0usize, 0usize);
    for i in 0..iterations {
        let mut bytes = seeds[i % seeds.len()].clone();
        for _ in 0..=(next() % 8) {
            let len = bytes.len().max(1);
            let at = (next() as usize) % len;
            match next() % 5 {
                0 => {
                    if let Some(b) = bytes.get_mut(at) {
                        *b ^= 1 << (next() % 8);
                    }
                }
                1 => bytes.insert(at.min(bytes.len()), (next() % 256) as u8),
                2 => bytes.truncate(at.max(8)),
                3 => {
                    let end = (at + 1 + (next() as usize) % 64).min(bytes.len());
                    let slice = bytes[at.min(end)..end].to_vec();
                    let to = (next() as usize) % bytes.len().max(1);
                    bytes.splice(to..to, slice);
                }
                _ => {
                    // Numbers steer the parser (lengths, object numbers, counts): change one.
                    if let Some(pos) = bytes.iter().skip(at).position(u8::is_ascii_digit) {
                        bytes[at + pos] = b'0' + (next() % 10) as u8;
                    }
                }
            }
        }
        match worker.extract("mutant.pdf", &bytes) {
            Ok(_) => read += 1,
            Err(indexer::Error::User(_)) => refused += 1,
            Err(e) => panic!("mutant {i} gave an internal error: {e}"),
        }
    }
    assert_eq!(read + refused, iterations);
}

/// Finding 10: an upload with another tenant's document id answered "exists already". Uploaded
/// ids now live in the uploader's own namespace (`TENANT.name`), so another tenant's id answers
/// exactly like an unused one, and a namespaced id of another tenant is refused the same way
/// whether it exists or not.
#[actix_web::test]
async fn another_tenants_document_ids_answer_exactly_like_unused_ones() {
    let (_dir, p) = corpus_platform(Backend::Sqlite).await;
    p.storage
        .upsert_principal(&server::domain::PrincipalSeed {
            id: "bea@borealis-insurance".into(),
            display_name: "Bea".into(),
            tenant: indexer::TenantId::parse("borealis-insurance").unwrap(),
            role: server::domain::Role::Admin,
            groups: [indexer::GroupName::parse("staff").unwrap()].into(),
            clearance: indexer::Classification::Internal,
        })
        .await
        .unwrap();
    let pdf = crate::web::heron_pdf();
    let mut adam = browser(&p).await;
    adam.sign_in("adam@acme-bank").await;
    let csrf = adam.page_csrf("/documents").await;
    let (_, job, _) = adam.upload(&upload_fields(&csrf), &[("Heron sightings.pdf", &pdf)]).await;
    assert!(adam.wait_for_job(&job).await.contains("job-done"));

    let mut bea = browser(&p).await;
    bea.sign_in("bea@borealis-insurance").await;
    let csrf = bea.page_csrf("/documents").await;
    let with_id = |id: &'static str, key: &'static str| {
        let mut fields = upload_fields(&csrf);
        fields.push((key, id));
        fields
    };
    // acme-bank's ids (one from the corpus, one uploaded) and an id nobody uses: all accepted,
    // all stored in borealis-insurance's namespace; acme-bank's documents untouched.
    for id in ["acme-data-retention", "heron-sightings", "nobody-uses-this-id"] {
        let (status, job, body) = bea.upload(&with_id(id, "document_id"), &[("x.pdf", &pdf)]).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{id}: {body}");
        assert!(bea.wait_for_job(&job).await.contains("job-done"), "{id}");
        let stored = p.storage.document(&format!("borealis-insurance.{id}")).await.unwrap().unwrap();
        assert_eq!(stored.tenant_id, "borealis-insurance");
    }
    assert_eq!(p.storage.document("acme-data-retention").await.unwrap().unwrap().tenant_id, "acme-bank");
    assert_eq!(p.storage.versions("acme-bank.heron-sightings").await.unwrap().len(), 1);

    // The same answer, id for id, whether acme-bank's document exists or not.
    let mut answers = Vec::new();
    for (id, key) in [
        ("acme-bank.heron-sightings", "document_id"),
        ("acme-bank.nobody-uses-this", "document_id"),
        ("acme-bank.heron-sightings", "version_of"),
        ("acme-bank.nobody-uses-this", "version_of"),
        ("acme-aml-investigations", "version_of"),
        ("nobody-uses-this-either", "version_of"),
    ] {
        let (status, _, body) = bea.upload(&with_id(id, key), &[("x.pdf", &pdf)]).await;
        let message = body.split("Request id").next().unwrap_or_default().replace(id, "ID");
        answers.push((key, status, message));
    }
    for pair in answers.chunks(2) {
        assert_eq!(pair[0], pair[1], "an existing id of another tenant answers like an unused one");
        assert_ne!(pair[0].1, StatusCode::SEE_OTHER, "{:?}", pair[0]);
    }

    // Pages and the API take the name an uploader chose, in the caller's own namespace.
    let (status, _, page) = adam.get("/documents/heron-sightings").await;
    assert!(status == StatusCode::OK && page.contains("acme-bank.heron-sightings"), "{status}");
    let (status, _, page) = bea.get("/api/v1/documents/heron-sightings").await;
    assert!(status == StatusCode::OK && page.contains("borealis-insurance.heron-sightings"), "{page}");
    let mut refusals = Vec::new();
    for id in ["acme-aml-investigations", "nobody-uses-this-either"] {
        let (status, _, body) = bea.get(&format!("/api/v1/documents/{id}")).await;
        refusals.push((status, body.split("request_id").next().unwrap_or_default().replace(id, "ID")));
    }
    assert_eq!(refusals[0], refusals[1], "another tenant's id is not found exactly like an unused one");
    assert_eq!(refusals[0].0, StatusCode::NOT_FOUND);
    assert_eq!(p.storage.versions("acme-bank.heron-sightings").await.unwrap().len(), 1);
}

/// Finding 13: uploads are bounded too. Past `upload_jobs_max` queued and running jobs an upload
/// is refused with 429 before any file is read, and the refusal is audited.
#[actix_web::test]
async fn uploads_beyond_the_job_bound_get_429_and_are_audited() {
    let (_dir, p) = corpus_platform(Backend::Sqlite).await;
    let mut settings = (*p.settings).clone();
    settings.upload_jobs_max = 1;
    let p = server::service::Platform { settings: Arc::new(settings), ..p };
    let mut adam = browser(&p).await;
    adam.sign_in("adam@acme-bank").await;
    let csrf = adam.page_csrf("/documents").await;
    let pdf = crate::web::heron_pdf();
    let (status, headers, body) =
        adam.upload(&upload_fields(&csrf), &[("one.pdf", &pdf[..]), ("two.pdf", &pdf[..])]).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{headers} {body}");
    assert!(
        p.storage.recent_audit(3).await.unwrap().iter().any(|e| e.action == "upload_document" && e.outcome == "shed")
    );
    assert!(p.storage.document("acme-bank.one").await.unwrap().is_none());
    let (status, job, _) = adam.upload(&upload_fields(&csrf), &[("one.pdf", &pdf[..])]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(adam.wait_for_job(&job).await.contains("job-done"));
}
