//! The evaluation harness and release gate on the shipped corpus: the cases run through the ask
//! path, the gate decides from the thresholds, a broken configuration blocks, and the report is
//! stored and exported in the governance packet.

use server::service::answer::AnswerConfig;
use server::service::release_gate::{CaseKind, Cases, Decision, RunOptions, Thresholds};

use crate::support::{Backend, corpus_platform, corpus_platform_with, repo_root};

fn cases() -> Cases {
    Cases::load(&repo_root().join("governance/eval/cases.toml")).expect("the shipped cases load")
}

fn thresholds() -> Thresholds {
    Thresholds::load(&repo_root().join("governance/eval/thresholds.toml")).expect("the shipped thresholds load")
}

#[tokio::test]
async fn the_shipped_cases_pass_the_gate_with_no_leak_no_obeyed_injection_and_nothing_deleted_cited() {
    // The injection cases are also answered by the real generator.
    let (_dir, p) =
        corpus_platform_with(Backend::Sqlite, |s| s.generator = Some(crate::generate::real_generator())).await;
    let cases = cases();
    assert!(cases.cases.len() >= 40, "40+ cases");
    let options = RunOptions { baseline: true, answer: AnswerConfig::default(), generate: vec![CaseKind::Injection] };
    let report = server::service::release_gate::run(&p, &cases, &thresholds(), &options).await.unwrap();
    let m = &report.metrics;
    assert_eq!(
        (m.leaked_chunks, m.injection_obeyed, m.deleted_or_withdrawn_cited),
        (0, 0, 0),
        "{:#?}",
        report.failed_cases
    );
    assert!(m.recall_at_3 >= 0.90, "{}", m.recall_at_3);
    assert!(m.citation_precision >= 0.95, "{}", m.citation_precision);
    assert_eq!(m.out_of_scope_abstention, 1.0);
    assert_ne!(report.decision, Decision::Block, "{:?}", report.reasons);
    assert!(report.baseline.is_some(), "the BM25-only baseline ran in the same invocation");
    let generation = report.generation.as_ref().expect("generation metrics");
    let injection_cases = cases.cases.iter().filter(|c| c.kind == CaseKind::Injection).count();
    assert_eq!((generation.cases, generation.injection_obeyed), (injection_cases, 0), "{generation:#?}");
    assert!((0.0..=1.0).contains(&generation.supported_sentence_rate));
    assert!(server::service::release_gate::markdown(&report).contains("## Answers with generation"));
    // The report's public shape (what the packet and `eval run --out` write) is pinned, with a
    // failed case in its list whether or not this run had one (the shape of an empty list is not
    // the shape of its items).
    let mut shaped = report.clone();
    shaped.failed_cases.push(server::service::release_gate::FailedCase {
        id: "shape".into(),
        severity: server::service::release_gate::Severity::Minor,
        failures: vec!["shape".into()],
    });
    insta::assert_json_snapshot!(
        "release_gate_report_shape",
        crate::api::shape(&serde_json::to_value(&shaped).unwrap())
    );
    // Every kind of case ran, including the deletion case, which found its document first.
    let deletion = report.cases.iter().find(|c| c.id == "deletion-heron-sightings").unwrap();
    assert!(deletion.failures.is_empty(), "{:?}", deletion.failures);
    assert!(p.storage.document("eval-heron-sightings").await.unwrap().is_none());

    // Stored, and in the packet and the risk controls.
    let stored = p.storage.latest_release_gate().await.unwrap().expect("stored");
    assert_eq!(stored.id, report.id);
    assert_eq!(stored.thresholds_sha256, thresholds().sha256);
    let files = server::service::packet::build(&p.storage, &p.settings, &server::service::governance::Scope::Platform)
        .await
        .unwrap();
    let md = files.iter().find(|f| f.name == "05-release-gate.md").unwrap();
    assert!(String::from_utf8_lossy(&md.bytes).contains(&report.id));
    let risk = crate::governance::platform_risk(&p).await;
    let control = risk.controls.iter().find(|c| c.control.contains("release gate")).unwrap();
    assert!(control.met, "{}", control.evidence);
}

#[tokio::test]
async fn a_broken_configuration_makes_the_gate_block() {
    let (_dir, p) = corpus_platform(Backend::Sqlite).await;
    // Abstention switched off: out-of-scope questions get answered from whatever was retrieved.
    let options = RunOptions {
        baseline: false,
        answer: AnswerConfig { min_coverage: 0.0, min_key_coverage: 0.0, ..AnswerConfig::default() },
        generate: Vec::new(),
    };
    let report = server::service::release_gate::run(&p, &cases(), &thresholds(), &options).await.unwrap();
    assert_eq!(report.decision, Decision::Block);
    let gate = report.gates.iter().find(|g| g.metric == "out_of_scope_abstention").unwrap();
    assert!(!gate.passed && gate.blocking);
    assert!(report.reasons.iter().any(|r| r.contains("out_of_scope_abstention")), "{:?}", report.reasons);

    // Only the key-term rule off: the sentences that share a question's common words but not its
    // subject are quoted as answers (issue 30's examples), and the gate blocks on them.
    let options = RunOptions { answer: AnswerConfig { min_key_coverage: 0.0, ..AnswerConfig::default() }, ..options };
    let report = server::service::release_gate::run(&p, &cases(), &thresholds(), &options).await.unwrap();
    assert_eq!(report.decision, Decision::Block);
    let failed: Vec<&str> = report.failed_cases.iter().map(|c| c.id.as_str()).collect();
    for id in ["out-of-scope-gifts-register", "access-board-report-missing-group"] {
        assert!(failed.contains(&id), "{id} fails without the rule: {failed:?}");
    }
    assert!(report.metrics.abstention_recall < 1.0, "{}", report.metrics.abstention_recall);
}

#[test]
fn a_threshold_moved_without_a_change_record_is_refused() {
    let text = std::fs::read_to_string(repo_root().join("governance/eval/thresholds.toml")).unwrap();
    let lowered = text.replacen("metric = \"recall_at_3\"\nmin = 0.90", "metric = \"recall_at_3\"\nmin = 0.50", 1);
    assert_ne!(lowered, text);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("thresholds.toml");
    std::fs::write(&path, &lowered).unwrap();
    let err = Thresholds::load(&path).unwrap_err().to_string();
    assert!(err.contains("recall_at_3") && err.contains("change record"), "{err}");

    // With a record saying why and who approved it, the lower threshold loads.
    let recorded = lowered.replace("version = 1\n\n[[gates]]", "version = 2\n\n[[gates]]")
        + "\n[[changes]]\nversion = 2\ndate = \"2026-11-29\"\nchange = \"lower recall_at_3\"\nwhy = \"test\"\napprover = \"reviewer\"\n\n[changes.set]\nrecall_at_3 = 0.5\n";
    std::fs::write(&path, recorded).unwrap();
    Thresholds::load(&path).expect("a recorded change loads");
}

/// The trained answer-sentence selector is on by default, is the artifact the inventory approves,
/// and one setting rolls the answer back to ordering sentences by their words; either way every
/// quote is the stored text at its offsets. (The gate test runs the shipped cases with it on.)
#[tokio::test]
async fn one_setting_rolls_the_answer_selector_back_to_word_order() {
    let (_dir, p) = corpus_platform(Backend::Sqlite).await;
    let selector = p.selector.clone().expect("the selector is set up and on by default");
    let inventory = server::service::governance::read_inventory_file(&p.settings.governance_dir).unwrap();
    let approved = inventory.iter().find(|m| m.role == "answer-selector").unwrap();
    assert_eq!(selector.model_id(), approved.artifact_sha256);
    let (_dir, words) = corpus_platform_with(Backend::Sqlite, |s| s.answer_selector = false).await;
    assert!(words.selector.is_none());

    let question = "How long are customer onboarding files kept?";
    for platform in [&p, &words] {
        let actor = platform.storage.actor("alice@acme-bank").await.unwrap().unwrap();
        let state = server::http::app::shared_state(platform).await.unwrap();
        let request = server::service::ask::AskRequest { question: question.into(), as_of: None, limit: 5 };
        let outcome = state.ask.ask(&actor, &request).await.unwrap();
        assert!(outcome.answer.abstained.is_none(), "{:?}", outcome.answer);
        for c in &outcome.answer.citations {
            let passage = outcome.passages.iter().find(|x| x.chunk.id == c.chunk_id).unwrap();
            assert!(server::service::answer::verify(&passage.chunk.text, c));
        }
    }
}
