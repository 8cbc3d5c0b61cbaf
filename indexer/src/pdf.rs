//! PDF text per page (through pdf-extract, which builds on lopdf) and a small writer of plain-text
//! PDFs used to build the shipped corpus and test fixtures.
//!
//! Extraction is defensive: the parser runs under `catch_unwind` because malformed PDFs have been
//! known to panic inside third-party parsers, and a bad upload must be an error value, never a crash.

use std::panic::{AssertUnwindSafe, catch_unwind};

use pdf_extract::{Dictionary, Document, Object, Stream, dictionary};

use crate::error::{Error, Result, UserError};

/// lopdf as pdf-extract re-exports it, for tools and tests that build or alter PDFs without
/// compiling a second copy.
pub use pdf_extract as lopdf;

/// The text of one page, numbered from 1 as a reader of the PDF would count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageText {
    pub number: u32,
    pub text: String,
}

/// Extracts the text of every page of `bytes`. `name` is used only in error messages.
///
/// Fails with a [`UserError`] for input that is not a PDF, is encrypted, is corrupt, or has no
/// extractable text on any page.
pub fn extract_pages(name: &str, bytes: &[u8]) -> Result<Vec<PageText>> {
    if !bytes.starts_with(b"%PDF-") {
        return Err(UserError::NotPdf { name: name.to_owned() }.into());
    }
    let corrupt = |reason: String| -> Error { UserError::CorruptPdf { name: name.to_owned(), reason }.into() };

    let outcome = catch_unwind(AssertUnwindSafe(|| -> Result<Vec<PageText>> {
        let mut doc = Document::load_mem(bytes).map_err(|e| corrupt(e.to_string()))?;
        if doc.is_encrypted() {
            // Owner-password-only PDFs open with the empty user password; anything else is refused.
            doc.decrypt("").map_err(|_| Error::from(UserError::EncryptedPdf { name: name.to_owned() }))?;
        }
        let page_numbers: Vec<u32> = doc.get_pages().keys().copied().collect();
        if page_numbers.is_empty() {
            return Err(corrupt("it has no pages".to_owned()));
        }
        let mut pages = Vec::with_capacity(page_numbers.len());
        for number in page_numbers {
            let mut raw = String::new();
            {
                let mut out = pdf_extract::PlainTextOutput::new(&mut raw);
                pdf_extract::output_doc_page(&doc, &mut out, number)
                    .map_err(|e| corrupt(format!("page {number}: {e}")))?;
            }
            pages.push(PageText { number, text: normalize_page_text(&raw) });
        }
        Ok(pages)
    }));

    let pages = match outcome {
        Ok(result) => result?,
        Err(_) => return Err(corrupt("the PDF parser could not process it".to_owned())),
    };
    let mut pages = pages;
    strip_running_lines(&mut pages);
    if pages.iter().all(|p| p.text.trim().is_empty()) {
        return Err(UserError::NoText { name: name.to_owned() }.into());
    }
    Ok(pages)
}

/// Lines looked at from each edge of a page when finding running headers and footers.
const EDGE_LINES: usize = 4;
/// Running headers and footers are short; a longer repeated line is content.
const MAX_RUNNING_LINE_CHARS: usize = 80;

/// A line with digit runs masked, spaces collapsed and repeated punctuation squeezed:
/// "PE-CONS 41/22  MCA 25" and "PE-CONS 41/22 MCA 26" become the same key, and a rule of
/// underscores becomes "_".
fn running_key(line: &str) -> String {
    let mut key = String::with_capacity(line.len());
    for word in line.split_whitespace() {
        if !key.is_empty() {
            key.push(' ');
        }
        let mut last: Option<char> = None;
        for c in word.chars() {
            let c = if c.is_ascii_digit() { '#' } else { c };
            let squeeze = (c == '#' || !c.is_alphanumeric()) && last == Some(c);
            if !squeeze {
                key.push(c);
            }
            last = Some(c);
        }
    }
    key
}

/// Removes running headers and footers (document codes, page numbers, "EN" markers): lines that,
/// digits masked, appear among the first or last few lines of at least half the pages of a
/// document of four pages or more. They would otherwise open or close chunks with noise that
/// matches every query about the document. The cleaned text is the page text every offset and
/// citation refers to.
pub fn strip_running_lines(pages: &mut [PageText]) {
    if pages.len() < 4 {
        return;
    }
    let edge_keys = |text: &str| -> std::collections::BTreeSet<String> {
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let head = lines.iter().take(EDGE_LINES);
        let tail = lines.iter().rev().take(EDGE_LINES);
        head.chain(tail).map(|l| running_key(l)).filter(|k| k.chars().count() <= MAX_RUNNING_LINE_CHARS).collect()
    };
    let mut counts: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for page in pages.iter() {
        for key in edge_keys(&page.text) {
            *counts.entry(key).or_default() += 1;
        }
    }
    let threshold = pages.len().div_ceil(2).max(3);
    let running: std::collections::HashSet<String> =
        counts.into_iter().filter(|(_, n)| *n >= threshold).map(|(k, _)| k).collect();
    if running.is_empty() {
        return;
    }
    for page in pages.iter_mut() {
        let lines: Vec<&str> = page.text.lines().collect();
        let non_empty: Vec<usize> = (0..lines.len()).filter(|&i| !lines[i].trim().is_empty()).collect();
        let mut drop = std::collections::BTreeSet::new();
        // Only edge lines go: the same words inside the body are content.
        for &i in non_empty.iter().take(EDGE_LINES).chain(non_empty.iter().rev().take(EDGE_LINES)) {
            if running.contains(&running_key(lines[i])) {
                drop.insert(i);
            }
        }
        if !drop.is_empty() {
            let kept: Vec<&str> =
                lines.iter().enumerate().filter(|(i, _)| !drop.contains(i)).map(|(_, l)| *l).collect();
            page.text = normalize_page_text(&kept.join("\n"));
        }
    }
}

/// Normalises extracted text so offsets are stable: trailing spaces removed from each line, runs of
/// blank lines collapsed to one, and leading/trailing blank lines dropped.
pub fn normalize_page_text(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut blank_run = 0usize;
    for line in raw.lines() {
        let line = squeeze_leaders(line.trim_end());
        if line.trim().is_empty() {
            blank_run += 1;
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank_run > 0 { "\n\n" } else { "\n" });
        }
        blank_run = 0;
        out.push_str(&line);
    }
    out
}

/// Shortens runs of four or more dots, underscores or hyphens (table-of-contents leaders, rules)
/// to three: they carry no words and would fill chunks with noise.
fn squeeze_leaders(line: &str) -> std::borrow::Cow<'_, str> {
    if !["....", "____", "----"].iter().any(|run| line.contains(run)) {
        return std::borrow::Cow::Borrowed(line);
    }
    let mut out = String::with_capacity(line.len());
    let mut run = 0usize;
    let mut last = '\0';
    for c in line.chars() {
        if matches!(c, '.' | '_' | '-') && c == last {
            run += 1;
        } else {
            run = 1;
        }
        last = c;
        if run <= 3 || !matches!(c, '.' | '_' | '-') {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Page geometry and type size of the generated PDFs (A4, 9.5 pt Helvetica).
const PAGE_WIDTH: i64 = 595;
const PAGE_HEIGHT: i64 = 842;
const FONT_SIZE: f32 = 9.5;
const LEADING: f32 = 14.0;
const MAX_LINE_CHARS: usize = 104;

/// Writes a PDF whose pages hold the given lines of text. Lines longer than the page width are
/// wrapped at word boundaries. Only printable ASCII is accepted so the output is byte-for-byte
/// reproducible with the standard Helvetica encoding.
pub fn write_text_pdf(title: &str, pages: &[Vec<String>]) -> Result<Vec<u8>> {
    for (i, line) in pages.iter().flatten().enumerate() {
        if let Some(c) = line.chars().find(|c| !(c.is_ascii_graphic() || *c == ' ')) {
            return Err(UserError::InvalidValue {
                field: "pdf text",
                reason: format!("line {} contains the non-ASCII character {c:?}", i + 1),
            }
            .into());
        }
    }
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let font_id = doc.add_object(dictionary! {
        "Type" => "Font",
        "Subtype" => "Type1",
        "BaseFont" => "Helvetica",
        "Encoding" => "WinAnsiEncoding",
    });
    let resources_id = doc.add_object(dictionary! {
        "Font" => dictionary! { "F1" => font_id },
    });
    let mut kids = Vec::with_capacity(pages.len());
    for lines in pages {
        let mut content = format!("BT\n/F1 {FONT_SIZE} Tf\n{LEADING} TL\n56 {} Td\n", PAGE_HEIGHT - 64);
        for line in lines.iter().flat_map(|l| wrap_line(l)) {
            content.push('(');
            for c in line.chars() {
                if matches!(c, '(' | ')' | '\\') {
                    content.push('\\');
                }
                content.push(c);
            }
            content.push_str(") Tj T*\n");
        }
        content.push_str("ET\n");
        let content_id = doc.add_object(Stream::new(Dictionary::new(), content.into_bytes()));
        let page_id = doc.add_object(dictionary! {
            "Type" => "Page",
            "Parent" => pages_id,
            "Contents" => content_id,
        });
        kids.push(Object::from(page_id));
    }
    let count = i64::try_from(kids.len()).map_err(|e| Error::internal("page count", e))?;
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages",
            "Kids" => kids,
            "Count" => count,
            "Resources" => resources_id,
            "MediaBox" => vec![0.into(), 0.into(), PAGE_WIDTH.into(), PAGE_HEIGHT.into()],
        }),
    );
    let info_id = doc.add_object(dictionary! {
        "Title" => Object::string_literal(title),
        "Producer" => Object::string_literal("lexgate corpus builder"),
    });
    let catalog_id = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    doc.trailer.set("Root", catalog_id);
    doc.trailer.set("Info", info_id);
    let mut out = Vec::new();
    doc.save_to(&mut out).map_err(|e| Error::internal("writing PDF", e))?;
    Ok(out)
}

fn wrap_line(line: &str) -> Vec<String> {
    if line.len() <= MAX_LINE_CHARS {
        return vec![line.to_owned()];
    }
    let indent: String = line.chars().take_while(|c| *c == ' ').collect();
    let mut out = Vec::new();
    let mut current = String::new();
    for word in line.split_whitespace() {
        if !current.is_empty() && current.len() + 1 + word.len() > MAX_LINE_CHARS {
            out.push(std::mem::take(&mut current));
        }
        if current.is_empty() {
            current.push_str(&indent);
        } else {
            current.push(' ');
        }
        current.push_str(word);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_collapses_blank_runs_and_trailing_space() {
        assert_eq!(normalize_page_text("\n\nA  \nB\n\n\n\nC\n\n"), "A\nB\n\nC");
    }

    #[test]
    fn wrap_keeps_words_whole() {
        let long = "word ".repeat(40);
        let lines = wrap_line(long.trim());
        assert!(lines.len() > 1);
        assert!(lines.iter().all(|l| l.len() <= MAX_LINE_CHARS && !l.ends_with(' ')));
    }
}
