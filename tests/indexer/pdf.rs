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

// Hostile PDFs (issue 15): each one used to overflow the stack, exhaust memory or run for
// minutes. In process they must be refused by the structural check, before any page is drawn.
mod hostile {
    use indexer::pdf::hostile;
    use indexer::{Error, PdfLimits, UserError, extract_pages_with};

    fn refused(name: &str, bytes: &[u8], limits: &PdfLimits) -> String {
        match extract_pages_with(name, bytes, limits) {
            Err(Error::User(UserError::CorruptPdf { reason, .. })) => reason,
            other => panic!("{name}: expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_page_that_is_its_own_parent_is_refused() {
        let reason = refused("loop.pdf", &hostile::parent_loop(), &PdfLimits::default());
        assert!(reason.contains("page tree loops"), "{reason}");
    }

    #[test]
    fn a_form_that_draws_itself_is_refused() {
        let reason = refused("self.pdf", &hostile::self_drawing_form(), &PdfLimits::default());
        assert!(reason.contains("draws itself"), "{reason}");
        let reason = refused("ring.pdf", &hostile::nested_forms(5, true), &PdfLimits::default());
        assert!(reason.contains("draws itself"), "{reason}");
    }

    #[test]
    fn forms_nested_deeper_than_the_limit_are_refused_and_shallow_ones_extract() {
        let reason = refused("deep.pdf", &hostile::nested_forms(200, false), &PdfLimits::default());
        assert!(reason.contains("nested more than 32"), "{reason}");
        let pages = extract_pages_with("shallow.pdf", &hostile::nested_forms(3, false), &PdfLimits::default())
            .expect("three nested forms are fine");
        assert!(pages[0].text.contains("innermost form"), "{pages:?}");
    }

    #[test]
    fn a_stream_that_inflates_past_the_cap_is_refused() {
        // 1.1 GB of zeros in 7 MB, well under the 25 MB upload limit.
        let bomb = hostile::flate_bomb(1_100_000_000);
        assert!(bomb.len() < 8_000_000, "{}", bomb.len());
        let reason = refused("bomb.pdf", &bomb, &PdfLimits::default());
        assert!(reason.contains("inflates to more than 256 MB"), "{reason}");
    }

    #[test]
    fn the_handmade_zlib_stream_inflates_to_exactly_its_length() {
        use std::io::Read;
        for len in [0u64, 1, 257, 258, 259, 100_000] {
            let mut out = Vec::new();
            flate2::read::ZlibDecoder::new(hostile::zlib_zeros(len).as_slice()).read_to_end(&mut out).expect("inflate");
            assert_eq!(out.len() as u64, len);
            assert!(out.iter().all(|b| *b == 0));
        }
    }

    #[test]
    fn ten_thousand_pages_are_refused_before_extraction() {
        let limits = PdfLimits { max_pages: 2000, ..PdfLimits::default() };
        let reason = refused("long.pdf", &hostile::many_pages(10_000), &limits);
        assert!(reason.contains("10000 pages; the limit is 2000"), "{reason}");
    }

    #[test]
    fn extraction_reads_every_page_of_a_long_document_once() {
        let pages = extract_pages_with("long.pdf", &hostile::many_pages(3000), &PdfLimits::default()).expect("extract");
        assert_eq!(pages.len(), 3000);
        assert_eq!(pages[2999].text, "the last page");
        assert!(pages[..2999].iter().all(|p| p.text.is_empty()));
    }

    #[test]
    fn a_page_tree_listing_itself_as_a_kid_does_not_hang() {
        // lopdf's walk visits each object at most once; whatever it finds, the answer is quick.
        let _ = extract_pages_with("kids.pdf", &hostile::kids_cycle(), &PdfLimits::default());
    }
}
