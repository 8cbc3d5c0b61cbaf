//! Text extraction from PDFs, and the errors bad files get.

use indexer::{Error, UserError, extract_pages, write_text_pdf};

fn sample_pdf() -> Vec<u8> {
    let pages = vec![
        vec!["Article 1".to_owned(), "Subject matter of the (sample) regulation.".to_owned()],
        vec!["Article 2".to_owned(), "Scope: financial entities and ICT providers.".to_owned()],
    ];
    write_text_pdf("Sample", &pages).expect("writing a sample PDF")
}

#[test]
fn extracts_text_per_page_with_page_numbers() {
    let pages = extract_pages("sample.pdf", &sample_pdf()).expect("extract");
    assert_eq!(pages.len(), 2);
    assert_eq!(pages[0].number, 1);
    assert_eq!(pages[1].number, 2);
    assert!(pages[0].text.contains("Subject matter of the (sample) regulation."), "{:?}", pages[0].text);
    assert!(pages[1].text.starts_with("Article 2"), "{:?}", pages[1].text);
}

#[test]
fn a_file_that_is_not_a_pdf_is_refused() {
    let err = extract_pages("notes.txt", b"just some text").expect_err("not a PDF");
    assert!(matches!(err, Error::User(UserError::NotPdf { .. })), "{err:?}");
    assert!(err.to_string().contains("notes.txt is not a PDF"));
}

#[test]
fn a_truncated_pdf_is_refused_as_corrupt() {
    let bytes = sample_pdf();
    let err = extract_pages("cut.pdf", &bytes[..bytes.len() / 3]).expect_err("corrupt");
    assert!(matches!(err, Error::User(UserError::CorruptPdf { .. } | UserError::NoText { .. })), "{err:?}");
}

#[test]
fn garbage_after_the_header_is_refused_as_corrupt() {
    let err = extract_pages("junk.pdf", b"%PDF-1.7\n\x00\x01\x02 not really a pdf").expect_err("corrupt");
    assert!(matches!(err, Error::User(UserError::CorruptPdf { .. })), "{err:?}");
}

/// Marks a generated PDF as encrypted with a password we do not know: a trailer /Encrypt entry
/// pointing at a standard security handler dictionary whose checks cannot pass.
fn encrypted_pdf() -> Vec<u8> {
    use pdf_extract::{Document, Object, dictionary};
    let mut doc = Document::load_mem(&sample_pdf()).expect("reload");
    let encrypt = doc.add_object(dictionary! {
        "Filter" => "Standard",
        "V" => 2,
        "R" => 3,
        "Length" => 128,
        "P" => -3904,
        "O" => Object::string_literal(vec![7u8; 32]),
        "U" => Object::string_literal(vec![9u8; 32]),
    });
    doc.trailer.set("Encrypt", encrypt);
    doc.trailer.set("ID", vec![Object::string_literal(vec![1u8; 16]), Object::string_literal(vec![1u8; 16])]);
    let mut out = Vec::new();
    doc.save_to(&mut out).expect("save");
    out
}

#[test]
fn an_encrypted_pdf_is_refused_with_a_clear_message() {
    let err = extract_pages("secret.pdf", &encrypted_pdf()).expect_err("encrypted");
    assert!(matches!(err, Error::User(UserError::EncryptedPdf { .. })), "{err:?}");
    assert!(err.to_string().contains("encrypted"));
}

#[test]
fn non_ascii_text_is_refused_by_the_writer() {
    let err = write_text_pdf("x", &[vec!["na\u{ef}ve".to_owned()]]).expect_err("non-ascii");
    assert!(err.to_string().contains("non-ASCII"));
}

#[test]
fn running_headers_footers_and_page_numbers_are_removed_but_body_text_stays() {
    let titles = ["Scope", "Definitions", "Governance", "Risk register", "Testing", "Reporting"];
    let pages: Vec<Vec<String>> = (1..=6)
        .map(|n| {
            vec![
                format!("PE-CONS 41/22   MCA   {}", n + 10),
                "ECOFIN".to_owned(),
                format!("Article {n} {}", titles[n - 1]),
                format!("Body of article {n}: {} duties of financial entities.", titles[n - 1]),
                // The header's words inside the body are content, not furniture.
                if n == 3 { "See PE-CONS 41/22 for the adopted text.".to_owned() } else { "Recital text.".to_owned() },
                format!("The {} rules are reviewed every year by the management body.", titles[n - 1]),
                "EN".to_owned(),
                format!("{n}"),
            ]
        })
        .collect();
    let pdf = write_text_pdf("Running lines", &pages).unwrap();
    let extracted = extract_pages("running.pdf", &pdf).unwrap();
    for (i, page) in extracted.iter().enumerate() {
        let n = i + 1;
        assert!(!page.text.contains("MCA"), "page {n}: {:?}", page.text);
        assert!(!page.text.lines().any(|l| l.trim() == "ECOFIN" || l.trim() == "EN"), "page {n}: {:?}", page.text);
        assert!(!page.text.lines().any(|l| l.trim() == n.to_string()), "page number left on page {n}");
        assert!(page.text.starts_with(&format!("Article {n}")), "{:?}", page.text);
        assert!(page.text.contains("duties of financial entities"));
        assert!(page.text.contains("reviewed every year"));
    }
    assert!(extracted[2].text.contains("See PE-CONS 41/22 for the adopted text."));

    // A short document keeps everything: too few pages to tell furniture from content.
    let short = write_text_pdf("Short", &pages[..2]).unwrap();
    assert!(extract_pages("short.pdf", &short).unwrap()[0].text.contains("MCA"));
}
