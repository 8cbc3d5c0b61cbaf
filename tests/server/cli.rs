//! The `lexgate` binary as an administrator uses it: ingest, search as a given reader (stable
//! JSON), delete with a receipt, and clear errors for bad input.

use std::path::Path;
use std::process::{Command, Output};

use crate::support::{models_dir, repo_root};

fn lexgate(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lexgate"))
        .args(args)
        .env("LEXGATE_DATA_DIR", data_dir)
        .env("LEXGATE_MODELS_DIR", models_dir())
        .current_dir(repo_root())
        .env_remove("DATABASE_URL")
        .env_remove("LEXGATE_CONFIG")
        .env("LEXGATE_LOG", "warn")
        .output()
        .expect("run lexgate")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "lexgate failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn search(data_dir: &Path, tenant: &str, groups: &str, question: &str) -> serde_json::Value {
    let out = lexgate(
        data_dir,
        &["search", "--tenant", tenant, "--groups", groups, "--clearance", "confidential", "--json", question],
    );
    serde_json::from_str(&ok(&out)).expect("search prints JSON")
}

fn documents(result: &serde_json::Value) -> Vec<String> {
    result["passages"].as_array().unwrap().iter().map(|p| p["document_id"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn an_administrator_searches_as_a_reader_deletes_a_document_and_gets_a_receipt() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let manifest = repo_root().join("corpus/manifest.toml");
    ok(&lexgate(&data, &["ingest", manifest.to_str().unwrap()]));

    let quote = "Erasure requests are logged in the privacy request tool on the day they arrive";
    let as_acme = search(&data, "acme-bank", "staff", quote);
    assert_eq!(as_acme["reader"]["tenant"], "acme-bank");
    assert_eq!(as_acme["reader"]["clearance"], "confidential");
    assert_eq!(as_acme["method"], "hybrid");
    let first = &as_acme["passages"][0];
    for key in ["rank", "chunk_id", "document_id", "title", "version", "page", "char_start", "char_end", "heading_path"]
    {
        assert!(!first[key].is_null(), "passage field {key}");
    }
    assert!(first["scores"]["fused"].is_number());
    assert!(documents(&as_acme).contains(&"acme-erasure-requests".to_owned()), "{as_acme}");

    // Another tenant quoting the same text gets only its own documents.
    let as_borealis = search(&data, "borealis-insurance", "staff,board", quote);
    assert!(!documents(&as_borealis).is_empty());
    assert!(documents(&as_borealis).iter().all(|d| d.starts_with("borealis-")), "{as_borealis}");

    let refused =
        lexgate(&data, &["delete", "acme-erasure-requests", "--as", "alice@acme-bank", "--reason", "cleanup"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not allowed"));

    let receipt: serde_json::Value = serde_json::from_str(&ok(&lexgate(
        &data,
        &["delete", "acme-erasure-requests", "--as", "adam@acme-bank", "--reason", "retention ended"],
    )))
    .unwrap();
    assert_eq!(receipt["post_check"]["passed"], true);
    assert_eq!(receipt["removed"]["stored_files"], 1);
    assert_eq!(receipt["requested_by"], "adam@acme-bank");

    let after = search(&data, "acme-bank", "staff", quote);
    assert!(!documents(&after).contains(&"acme-erasure-requests".to_owned()), "{after}");

    let reindex = ok(&lexgate(&data, &["reindex"]));
    assert!(reindex.contains("agrees with the database: true"), "{reindex}");
}

#[test]
fn bad_search_input_gets_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for (args, expected) in [
        (vec!["--clearance", "secret", "--groups", "staff"], "classification"),
        (vec!["--clearance", "internal", "--groups", "Staff Team"], "group"),
        (vec!["--clearance", "internal", "--groups", "staff", "--method", "magic"], "method"),
        (vec!["--clearance", "internal", "--groups", "staff", "--as-of", "2026-13-01"], "as-of"),
    ] {
        let mut all = vec!["search", "--tenant", "acme-bank"];
        all.extend(args);
        all.push("question");
        let out = lexgate(&data, &all);
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "expected '{expected}' in: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
