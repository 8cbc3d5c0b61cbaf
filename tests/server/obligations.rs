//! The obligation register with the real classifier: obligations of the corpus regulation with
//! verified spans, a new version compared with the previous one, access by the regulation's
//! readers only, and the review path (analyst, then reviewer) with every step in the audit chain.

use std::sync::Arc;

use server::domain::{Actor, DocumentKind};
use server::error::Error;
use server::service::Platform;
use server::service::ingest::{Upload, UploadStatus};
use server::service::obligations::{Filter, Transition};
use server::store::obligations::ObligationRow;

use crate::on_both_backends;
use crate::support::{Backend, corpus_platform, repo_root};

pub const REGULATION: &str = "sample-ict-incident-regulation";

async fn actor(p: &Platform, id: &str) -> Actor {
    p.actor(id).await.unwrap().unwrap()
}

fn to(status: &str) -> Transition {
    Transition { to: status.into(), reason: None, owner: None, due_date: None }
}

fn find<'a>(rows: &'a [ObligationRow], text: &str) -> &'a ObligationRow {
    rows.iter().find(|o| o.text.contains(text)).unwrap_or_else(|| panic!("no obligation with '{text}'"))
}

/// The corpus regulation's source with `edit` applied, as a PDF.
fn regulation_pdf(edit: impl Fn(String) -> String) -> Vec<u8> {
    let source = std::fs::read_to_string(repo_root().join("corpus/src/sample-ict-incident-regulation.txt")).unwrap();
    let source = edit(source);
    let pages: Vec<Vec<String>> =
        source.split("<<<page>>>").map(|page| page.trim().lines().map(str::to_owned).collect()).collect();
    indexer::write_text_pdf("Sample Regulation on Reporting ICT-related Incidents", &pages).unwrap()
}

/// Ingests `bytes` as version `version` of the corpus regulation, as an administrator would.
pub async fn upload_regulation_version(p: &Platform, version: u32, bytes: Vec<u8>) {
    let acl = p.storage.version_acl(REGULATION, 1).await.unwrap().unwrap();
    let upload = Upload {
        document_id: REGULATION.into(),
        title: "Sample Regulation on Reporting ICT-related Incidents".into(),
        version,
        file_name: format!("regulation-v{version}.pdf"),
        bytes,
        acl,
        max_pages: 100,
        kind: DocumentKind::Regulation,
    };
    p.ingestor().ingest_upload(upload, "adam@acme-bank", Arc::new(|_: &dyn Fn(&mut UploadStatus)| {})).await.unwrap();
}

async fn obligations_are_extracted_verified_visible_to_readers_only_and_compared_across_versions(backend: Backend) {
    let (_dir, p) = corpus_platform(backend).await;
    let v1 = p.storage.version_obligations(REGULATION, 1).await.unwrap();
    assert_eq!(
        v1.len(),
        9,
        "nine duties in the sample regulation: {:#?}",
        v1.iter().map(|o| &o.text).collect::<Vec<_>>()
    );
    assert!(!v1.iter().any(|o| o.text.contains("may publish guidance")), "a permission is not an obligation");
    let chunks = p.storage.version_chunks(REGULATION, 1).await.unwrap();
    for o in &v1 {
        let chunk = chunks.iter().find(|c| c.id == o.chunk_id).unwrap();
        assert_eq!(
            chunk.text.get(o.span_start as usize..o.span_end as usize),
            Some(o.text.as_str()),
            "span of {}",
            o.id
        );
        assert!(o.heading_path.contains("Article"), "{}", o.heading_path);
        assert_eq!((o.change.as_str(), o.status.as_str()), ("new", "proposed"));
    }
    let initial = find(&v1, "initial notification");
    assert_eq!((initial.addressee.as_str(), initial.modality.as_str()), ("Financial entities", "must"));
    assert_eq!(initial.timing_iso.as_deref(), Some("PT4H"));
    assert!(initial.heading_path.contains("Article 3"), "{}", initial.heading_path);
    let informing = find(&v1, "inform their clients");
    assert_eq!(
        informing.conditions.as_deref(),
        Some("Where a major ICT-related incident has an impact on the financial interests of clients")
    );
    assert_eq!(find(&v1, "delegate their responsibility").modality, "must_not");

    // Only readers of the regulation see its obligations: greta and rita hold its group; bob, of
    // the same tenant, does not; carol is another tenant.
    let register = p.register();
    let greta = actor(&p, "greta@acme-bank").await;
    assert_eq!(register.list(&greta, &Filter::default()).await.unwrap().0.len(), 9);
    for outsider in ["bob@acme-bank", "carol@borealis-insurance"] {
        let who = actor(&p, outsider).await;
        let (rows, summary) = register.list(&who, &Filter::default()).await.unwrap();
        assert!(rows.is_empty() && summary.total == 0, "{outsider} sees obligations");
        assert!(matches!(register.detail(&who, &initial.id).await, Err(Error::NotFound)), "{outsider}");
        assert!(matches!(register.transition(&who, &initial.id, &to("accepted")).await, Err(Error::NotFound)));
        assert!(register.export_csv(&who, &Filter::default()).await.unwrap().lines().count() == 1, "header only");
    }

    // Greta accepts two obligations; then version 2 arrives: the 4-hour deadline becomes 2 hours,
    // the records article goes, a testing article comes.
    let classify = find(&v1, "classify each ICT-related incident");
    register.transition(&greta, &classify.id, &to("accepted")).await.unwrap();
    register.transition(&greta, &initial.id, &to("accepted")).await.unwrap();
    let records = find(&v1, "keep the records");
    upload_regulation_version(
        &p,
        2,
        regulation_pdf(|s| {
            let s = s.replace("within 4 hours of", "within 2 hours of");
            let s = s.replace(
                "Article 5 Records\nFinancial entities shall keep the records of every ICT-related incident for at least five years.\n",
                "Article 5 Testing\nFinancial entities shall test their incident response plan at least annually.\n",
            );
            assert!(s.contains("2 hours") && s.contains("Testing"), "the edit applies");
            s
        }),
    )
    .await;
    let v2 = p.storage.version_obligations(REGULATION, 2).await.unwrap();
    let count = |change: &str| v2.iter().filter(|o| o.change == change).count();
    assert_eq!((count("unchanged"), count("changed"), count("new"), count("removed")), (7, 1, 1, 1));
    let changed = v2.iter().find(|o| o.change == "changed").unwrap();
    assert_eq!(changed.obligation_key, initial.obligation_key, "recognised as the same obligation");
    assert_eq!(changed.previous_text.as_deref(), Some(initial.text.as_str()));
    assert_eq!((changed.status.as_str(), changed.timing_iso.as_deref()), ("proposed", Some("PT2H")), "back to review");
    let removed = v2.iter().find(|o| o.change == "removed").unwrap();
    assert_eq!(
        (removed.obligation_key.as_str(), removed.status.as_str()),
        (records.obligation_key.as_str(), "removed")
    );
    assert!(v2.iter().find(|o| o.change == "new").unwrap().text.contains("test their incident response plan"));
    let kept = v2.iter().find(|o| o.obligation_key == classify.obligation_key).unwrap();
    assert_eq!(
        (kept.change.as_str(), kept.status.as_str()),
        ("unchanged", "accepted"),
        "an unchanged obligation keeps its review"
    );

    // The register shows the current version, with the diff of the changed obligation.
    let (rows, summary) = register.list(&greta, &Filter::default()).await.unwrap();
    assert!(rows.iter().all(|o| o.version == 2 && o.span_verified));
    assert_eq!(
        (summary.total, summary.by_change.get("changed"), summary.by_change.get("removed")),
        (10, Some(&1), Some(&1))
    );
    let detail = register.detail(&greta, &changed.id).await.unwrap();
    let diff: Vec<(&str, &str)> =
        detail.diff.iter().filter(|d| d.kind != "kept").map(|d| (d.kind, d.text.as_str())).collect();
    assert_eq!(diff, [("added", "2"), ("removed", "4")]);

    // A reader of version 2 who may not read version 1 sees neither the removed obligation (it
    // quotes version 1) nor the previous text of the changed one.
    let adam = actor(&p, "adam@acme-bank").await;
    let mut v1_acl = p.storage.version_acl(REGULATION, 1).await.unwrap().unwrap();
    v1_acl.allowed_groups = [indexer::GroupName::parse("board").unwrap()].into();
    p.documents().update_acl(&adam, REGULATION, 1, v1_acl).await.unwrap();
    let (rows, _) = register.list(&greta, &Filter::default()).await.unwrap();
    assert_eq!(rows.len(), 9);
    assert!(rows.iter().all(|o| o.change != "removed" && o.previous_text.is_none()));

    // Deleting version 1 deletes every copy of its text in the register: its obligations, the
    // removed row that quotes it, the previous text kept for the diff.
    let receipt = p.documents().delete(&adam, REGULATION, Some(1), "superseded, test").await.unwrap();
    assert!(receipt.post_check.passed);
    assert!(p.storage.version_obligations(REGULATION, 1).await.unwrap().is_empty());
    let v2 = p.storage.version_obligations(REGULATION, 2).await.unwrap();
    assert_eq!(v2.len(), 9, "the removed row quoted version 1 and is gone");
    assert!(v2.iter().all(|o| o.previous_text.is_none() && !o.text.contains("keep the records")));
    assert!(p.storage.verify_audit().await.unwrap().problem.is_none());
}

on_both_backends!(obligations_are_extracted_verified_visible_to_readers_only_and_compared_across_versions);

#[tokio::test]
async fn an_obligation_becomes_an_action_only_when_an_analyst_accepts_and_a_reviewer_approves() {
    let (_dir, p) = corpus_platform(Backend::Sqlite).await;
    let register = p.register();
    let (greta, rita, adam) =
        (actor(&p, "greta@acme-bank").await, actor(&p, "rita@acme-bank").await, actor(&p, "adam@acme-bank").await);
    let rows = p.storage.version_obligations(REGULATION, 1).await.unwrap();
    let initial = find(&rows, "initial notification");
    let id = initial.id.as_str();

    // Nobody skips a step: a reviewer cannot accept or approve a proposed obligation, an analyst
    // cannot approve, an administrator cannot review.
    assert!(matches!(register.transition(&rita, id, &to("approved")).await, Err(Error::User(_))));
    assert!(matches!(register.transition(&rita, id, &to("accepted")).await, Err(Error::User(_))));
    assert!(matches!(register.list(&adam, &Filter::default()).await, Err(Error::Forbidden)));
    assert!(
        matches!(register.transition(&greta, id, &to("not_applicable")).await, Err(Error::User(_))),
        "a reason is required"
    );
    register.transition(&greta, id, &to("accepted")).await.unwrap();
    assert!(matches!(register.transition(&greta, id, &to("approved")).await, Err(Error::User(_))));
    let (_, summary) = register.list(&greta, &Filter::default()).await.unwrap();
    assert_eq!((summary.gaps, summary.awaiting_review), (1, 1), "accepted with no control is a gap");

    // Controls are suggested from the tenant's policies the analyst may read, never from the
    // regulation itself; the incident-reporting standard comes first.
    let detail = register.detail(&greta, id).await.unwrap();
    assert!(!detail.suggestions.is_empty());
    assert!(
        detail.suggestions.iter().all(|s| s.document_id != REGULATION && s.document_id != "acme-aml-investigations")
    );
    assert_eq!(detail.suggestions[0].document_id, "acme-ict-incident-reporting");
    assert!(!detail.before.is_empty() || !detail.after.is_empty(), "the regulation text around the span");
    let control = detail.suggestions[0].chunk_id.clone();
    assert!(matches!(register.decide_control(&rita, id, &control, true).await, Err(Error::Forbidden)));
    register.decide_control(&greta, id, &control, true).await.unwrap();
    let confirmed = register.detail(&greta, id).await.unwrap().controls;
    assert_eq!(confirmed.len(), 1);
    assert_eq!(
        (confirmed[0].state.as_str(), confirmed[0].decided_by.as_deref()),
        ("confirmed", Some("greta@acme-bank"))
    );
    assert!(
        (confirmed[0].score - detail.suggestions[0].score).abs() < 1e-6,
        "it keeps the score it was suggested with"
    );
    let (_, summary) = register.list(&greta, &Filter::default()).await.unwrap();
    assert_eq!(summary.gaps, 0, "the confirmed control closes the gap");

    // Only approval makes a tracked action, and approval needs an owner and a due date.
    assert!(register.actions(&rita).await.unwrap().is_empty(), "no action before approval");
    assert!(matches!(register.transition(&rita, id, &to("approved")).await, Err(Error::User(_))));
    let due = server::domain::today() + chrono::Days::new(30);
    let approve = Transition { owner: Some("CISO office".into()), due_date: Some(due), ..to("approved") };
    let approved = register.transition(&rita, id, &approve).await.unwrap();
    assert!(approved.tracked_action && approved.status == "approved");
    let actions = register.actions(&rita).await.unwrap();
    assert_eq!(
        actions.iter().map(|a| (a.id.as_str(), a.owner.as_deref(), a.due_date)).collect::<Vec<_>>(),
        [(id, Some("CISO office"), Some(due))]
    );
    assert_eq!(register.queue(&rita).await.unwrap().len(), 0, "nothing left waiting");

    // Every transition and decision is in the audit chain, with who, from, to and why.
    let events = p.storage.recent_audit(200).await.unwrap();
    let of = |action: &str, outcome: &str| events.iter().filter(|e| e.action == action && e.outcome == outcome).count();
    assert_eq!((of("obligation_status", "succeeded"), of("obligation_control", "succeeded")), (2, 1));
    assert_eq!((of("obligation_status", "denied"), of("obligation_control", "denied")), (3, 1));
    assert!(of("read_obligations", "denied") >= 1);
    let approval =
        events.iter().find(|e| e.action == "obligation_status" && e.detail.contains("\"to\":\"approved\"")).unwrap();
    assert_eq!(approval.actor, "rita@acme-bank");
    assert!(approval.detail.contains("\"from\":\"accepted\"") && approval.detail.contains("CISO office"));
    assert!(p.storage.verify_audit().await.unwrap().problem.is_none(), "lexgate audit verify passes");

    // The CSV export carries the citation and keeps formulas out of spreadsheets.
    let csv = register.export_csv(&greta, &Filter::default()).await.unwrap();
    // One record per obligation (quoted fields keep the regulation's line breaks).
    assert_eq!(csv.matches(&format!("\n\"{REGULATION}~v1~")).count(), 9);
    assert!(csv.contains(&format!("{REGULATION} v1, page")));
}

#[tokio::test]
async fn one_setting_rolls_the_classifier_back_to_the_cue_word_rules() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = crate::support::settings(Backend::Sqlite, &dir).await;
    let model = settings.obligation_detector().unwrap();
    let inventory = server::service::governance::read_inventory_file(&settings.governance_dir).unwrap();
    let approved = inventory.iter().find(|m| m.role == "obligation-classifier").unwrap();
    assert_eq!(model.model_id(), approved.artifact_sha256, "the classifier loaded is the one the inventory approves");
    settings.obligation_model = false;
    let rules = settings.obligation_detector().unwrap();
    assert_eq!(rules.model_id(), indexer::RuleDetector::ID);
    // The two disagree where the rules have no cue word: the classifier finds this duty.
    let duty = "The Authority mandates full compliance with its anti-money laundering rules.";
    assert_eq!((model.detect(&[duty]).unwrap(), rules.detect(&[duty]).unwrap()), (vec![true], vec![false]));
}
