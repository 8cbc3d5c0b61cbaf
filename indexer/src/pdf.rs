//! PDF text per page (through pdf-extract, which builds on lopdf) and a small writer of plain-text
//! PDFs used to build the shipped corpus and test fixtures.
//!
//! Extraction is defensive at two levels. In process, a structural check runs before any page is
//! drawn: the page count against the caller's limit, page-tree parents that loop, form XObjects
//! that draw themselves (either would send the parser into unbounded recursion, a stack overflow
//! no `catch_unwind` can stop) and the inflated size of every compressed stream (a 1 MB file can
//! inflate to gigabytes). Pages are then extracted in one pass over the document, so the work is
//! linear in pages. Out of process, [`crate::pdf_worker`] runs the same extraction in a child
//! process under operating-system limits, which is what the server does with every upload: what
//! the check cannot foresee ends that child, never the server.

use std::collections::{BTreeMap, HashSet};
use std::io::Read;
use std::panic::{AssertUnwindSafe, catch_unwind};

use pdf_extract::{Dictionary, Document, Object, ObjectId, Stream, dictionary};

use crate::error::{Error, Result, UserError};

/// lopdf as pdf-extract re-exports it, for tools and tests that build or alter PDFs without
/// compiling a second copy.
pub use pdf_extract as lopdf;

/// The text of one page, numbered from 1 as a reader of the PDF would count.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PageText {
    pub number: u32,
    pub text: String,
}

/// What one PDF may ask of the extractor. A PDF beyond any limit is refused with a message that
/// names the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PdfLimits {
    /// Pages, counted from the page tree before any page is drawn.
    pub max_pages: usize,
    /// Bytes all compressed streams may inflate to, together.
    pub max_inflated_bytes: u64,
    /// How deep page-tree parents and nested form XObjects may go.
    pub max_nesting: usize,
}

impl Default for PdfLimits {
    fn default() -> Self {
        Self { max_pages: 10_000, max_inflated_bytes: 256 << 20, max_nesting: 32 }
    }
}

/// Extracts the text of every page of `bytes` under the default [`PdfLimits`]. `name` is used
/// only in error messages.
///
/// Fails with a [`UserError`] for input that is not a PDF, is encrypted, is corrupt, breaks a
/// limit, or has no extractable text on any page.
pub fn extract_pages(name: &str, bytes: &[u8]) -> Result<Vec<PageText>> {
    extract_pages_with(name, bytes, &PdfLimits::default())
}

/// Extracts the text of every page of `bytes`, refusing a PDF beyond `limits` before drawing it.
pub fn extract_pages_with(name: &str, bytes: &[u8], limits: &PdfLimits) -> Result<Vec<PageText>> {
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
        let page_ids = check_structure(&doc, limits).map_err(corrupt)?;
        extract_all_pages(&doc, &page_ids).map_err(corrupt)
    }));

    let mut pages = match outcome {
        Ok(result) => result?,
        Err(_) => return Err(corrupt("the PDF parser could not process it".to_owned())),
    };
    strip_running_lines(&mut pages);
    if pages.iter().all(|p| p.text.trim().is_empty()) {
        return Err(UserError::NoText { name: name.to_owned() }.into());
    }
    Ok(pages)
}

/// Checks what would make extraction unbounded and returns the page ids in reading order. The
/// error is a reason for the person who uploaded the file.
fn check_structure(doc: &Document, limits: &PdfLimits) -> std::result::Result<BTreeMap<u32, ObjectId>, String> {
    // The declared count first: a file announcing a million pages is refused before its tree is
    // walked.
    let declared = doc
        .catalog()
        .and_then(|c| c.get_deref(b"Pages", doc))
        .and_then(Object::as_dict)
        .and_then(|p| p.get(b"Count"))
        .and_then(Object::as_i64)
        .unwrap_or(0);
    if usize::try_from(declared).is_ok_and(|n| n > limits.max_pages) {
        return Err(format!("it declares {declared} pages; the limit is {}", limits.max_pages));
    }
    // lopdf's page walk visits each object at most once, so this is linear in the file.
    let pages = doc.get_pages();
    if pages.is_empty() {
        return Err("it has no pages".to_owned());
    }
    if pages.len() > limits.max_pages {
        return Err(format!("it has {} pages; the limit is {}", pages.len(), limits.max_pages));
    }
    // Inherited attributes are looked up through /Parent, recursively.
    for id in pages.values() {
        let mut seen = HashSet::new();
        let mut current = *id;
        loop {
            if !seen.insert(current) || seen.len() > limits.max_nesting {
                return Err("its page tree loops back on itself".to_owned());
            }
            let Ok(dict) = doc.get_dictionary(current) else { break };
            match dict.get(b"Parent").and_then(Object::as_reference) {
                Ok(parent) => current = parent,
                Err(_) => break,
            }
        }
    }
    let mut forms = FormWalk { doc, max_depth: limits.max_nesting, budget: 200_000, stack: Vec::new() };
    for id in pages.values() {
        let Ok(page) = doc.get_dictionary(*id) else { continue };
        if let Some(resources) = inherited_resources(doc, page) {
            forms.visit_resources(resources)?;
        }
    }
    check_inflated_size(doc, limits.max_inflated_bytes)?;
    Ok(pages)
}

/// The /Resources a page inherits (the parent chain is known not to loop by now).
fn inherited_resources<'a>(doc: &'a Document, page: &'a Dictionary) -> Option<&'a Dictionary> {
    let mut current = page;
    for _ in 0..64 {
        if let Ok(resources) = current.get_deref(b"Resources", doc).and_then(Object::as_dict) {
            return Some(resources);
        }
        current = current.get(b"Parent").and_then(Object::as_reference).and_then(|p| doc.get_dictionary(p)).ok()?;
    }
    None
}

/// A depth-first walk over the form XObjects a page can draw, as the parser would draw them: a
/// form without resources of its own draws with the resources it was drawn from.
struct FormWalk<'a> {
    doc: &'a Document,
    max_depth: usize,
    /// Visits left: a wide, shallow web of forms is refused as too complex rather than walked
    /// for ever.
    budget: usize,
    stack: Vec<ObjectId>,
}

impl<'a> FormWalk<'a> {
    fn visit_resources(&mut self, resources: &'a Dictionary) -> std::result::Result<(), String> {
        let Ok(xobjects) = resources.get_deref(b"XObject", self.doc).and_then(Object::as_dict) else {
            return Ok(());
        };
        for (_, value) in xobjects.iter() {
            let Ok(id) = value.as_reference() else { continue };
            let Ok(stream) = self.doc.get_object(id).and_then(Object::as_stream) else { continue };
            if stream.dict.get(b"Subtype").and_then(Object::as_name).is_ok_and(|s| s == b"Image") {
                continue;
            }
            if self.stack.contains(&id) {
                return Err("a drawing in it draws itself".to_owned());
            }
            if self.stack.len() >= self.max_depth {
                return Err(format!("its drawings are nested more than {} deep", self.max_depth));
            }
            self.budget = self.budget.checked_sub(1).ok_or("its drawings reference each other too often")?;
            let own = stream.dict.get_deref(b"Resources", self.doc).and_then(Object::as_dict).ok();
            self.stack.push(id);
            self.visit_resources(own.unwrap_or(resources))?;
            self.stack.pop();
        }
        Ok(())
    }
}

/// Inflates every Flate-compressed stream that is not an image into a counter and refuses the
/// file when they add up to more than `max_bytes`. Images are never decompressed by text
/// extraction, so their size does not count.
fn check_inflated_size(doc: &Document, max_bytes: u64) -> std::result::Result<(), String> {
    let mut total = 0u64;
    for object in doc.objects.values() {
        let Ok(stream) = object.as_stream() else { continue };
        if stream.dict.get(b"Subtype").and_then(Object::as_name).is_ok_and(|s| s == b"Image") {
            continue;
        }
        let flate = stream.filters().is_ok_and(|f| f.iter().any(|name| *name == b"FlateDecode"));
        let size = if flate {
            let left = max_bytes.saturating_sub(total) + 1;
            let decoder = flate2::read::ZlibDecoder::new(stream.content.as_slice());
            // A stream that does not inflate cleanly counts what it gave before the error.
            std::io::copy(&mut decoder.take(left), &mut std::io::sink()).unwrap_or(0)
        } else {
            stream.content.len() as u64
        };
        total = total.saturating_add(size);
        if total > max_bytes {
            return Err(format!("its compressed content inflates to more than {} MB", max_bytes >> 20));
        }
    }
    Ok(())
}

/// Draws every page once, in one pass over the document, collecting each page's text.
fn extract_all_pages(doc: &Document, page_ids: &BTreeMap<u32, ObjectId>) -> std::result::Result<Vec<PageText>, String> {
    let mut sink = PageSink { pages: Vec::with_capacity(page_ids.len()), current: None };
    pdf_extract::output_doc(doc, &mut sink).map_err(|e| e.to_string())?;
    let mut by_number: BTreeMap<u32, String> = sink.pages.into_iter().collect();
    Ok(page_ids
        .keys()
        .map(|&number| {
            let raw = by_number.remove(&number).unwrap_or_default();
            PageText { number, text: normalize_page_text(&raw) }
        })
        .collect())
}

/// A page's text as pdf-extract's plain-text output writes it, into a buffer the sink shares.
#[derive(Clone, Default)]
struct SharedText(std::rc::Rc<std::cell::RefCell<String>>);

impl std::fmt::Write for SharedText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.borrow_mut().push_str(s);
        Ok(())
    }
}

impl pdf_extract::ConvertToFmt for SharedText {
    type Writer = SharedText;
    fn convert(self) -> Self::Writer {
        self
    }
}

/// Splits the output of one pass over the document into pages: a fresh plain-text writer per
/// page, so a page's text never depends on where the previous page ended.
struct PageSink {
    pages: Vec<(u32, String)>,
    current: Option<(u32, SharedText, pdf_extract::PlainTextOutput<SharedText>)>,
}

impl PageSink {
    fn writer(
        &mut self,
    ) -> std::result::Result<&mut pdf_extract::PlainTextOutput<SharedText>, pdf_extract::OutputError> {
        match &mut self.current {
            Some((_, _, out)) => Ok(out),
            None => Err(pdf_extract::OutputError::FormatError(std::fmt::Error)),
        }
    }
}

impl pdf_extract::OutputDev for PageSink {
    fn begin_page(
        &mut self,
        page_num: u32,
        media_box: &pdf_extract::MediaBox,
        art_box: Option<(f64, f64, f64, f64)>,
    ) -> std::result::Result<(), pdf_extract::OutputError> {
        let text = SharedText::default();
        let mut out = pdf_extract::PlainTextOutput::new(text.clone());
        out.begin_page(page_num, media_box, art_box)?;
        self.current = Some((page_num, text, out));
        Ok(())
    }
    fn end_page(&mut self) -> std::result::Result<(), pdf_extract::OutputError> {
        if let Some((number, text, mut out)) = self.current.take() {
            out.end_page()?;
            drop(out);
            let page = text.0.borrow().clone();
            self.pages.push((number, page));
        }
        Ok(())
    }
    fn output_character(
        &mut self,
        trm: &pdf_extract::Transform,
        width: f64,
        spacing: f64,
        font_size: f64,
        char: &str,
    ) -> std::result::Result<(), pdf_extract::OutputError> {
        self.writer()?.output_character(trm, width, spacing, font_size, char)
    }
    fn begin_word(&mut self) -> std::result::Result<(), pdf_extract::OutputError> {
        self.writer()?.begin_word()
    }
    fn end_word(&mut self) -> std::result::Result<(), pdf_extract::OutputError> {
        self.writer()?.end_word()
    }
    fn end_line(&mut self) -> std::result::Result<(), pdf_extract::OutputError> {
        self.writer()?.end_line()
    }
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

/// Small hostile PDFs, each built to break an extractor in one known way: the regression corpus
/// of the extraction tests and the seeds of their mutation runs.
pub mod hostile {
    use pdf_extract::{Dictionary, Document, Object, Stream, dictionary};

    fn finish(mut doc: Document, pages_id: pdf_extract::ObjectId) -> Vec<u8> {
        let catalog = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
        doc.trailer.set("Root", catalog);
        let mut out = Vec::new();
        // Saving a document held in memory only fails on a broken writer; a Vec never is one.
        let _ = doc.save_to(&mut out);
        out
    }

    /// Makes `page` the only kid of the page-tree root `pages_id` (US Letter) and saves.
    fn finish_one_page(mut doc: Document, pages_id: pdf_extract::ObjectId, page: pdf_extract::ObjectId) -> Vec<u8> {
        doc.objects.insert(
            pages_id,
            Object::Dictionary(dictionary! {
                "Type" => "Pages", "Kids" => vec![page.into()], "Count" => 1,
                "MediaBox" => vec![0.into(), 0.into(), 612.into(), 792.into()],
            }),
        );
        finish(doc, pages_id)
    }

    fn text_stream(text: &str) -> Stream {
        Stream::new(Dictionary::new(), format!("BT /F1 12 Tf 72 712 Td ({text}) Tj ET").into_bytes())
    }

    fn font(doc: &mut Document) -> pdf_extract::ObjectId {
        doc.add_object(dictionary! { "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica" })
    }

    /// One page whose /Parent is itself and which has no /MediaBox of its own: the parser looks
    /// the box up through /Parent for ever.
    pub fn parent_loop() -> Vec<u8> {
        let mut doc = Document::with_version("1.5");
        let pages_id = doc.new_object_id();
        let page_id = doc.new_object_id();
        let content = doc.add_object(text_stream("looping page"));
        doc.objects.insert(
            page_id,
            Object::Dictionary(dictionary! { "Type" => "Page", "Parent" => page_id, "Contents" => content }),
        );
        doc.objects.insert(
            pages_id,
            Object::Dictionary(dictionary! { "Type" => "Pages", "Kids" => vec![page_id.into()], "Count" => 1 }),
        );
        finish(doc, pages_id)
    }

    /// A form XObject that draws itself, through the page's resources it inherits.
    pub fn self_drawing_form() -> Vec<u8> {
        nested_forms(1, true)
    }

    /// `depth` form XObjects each drawing the next; with `close_loop` the last draws the first.
    pub fn nested_forms(depth: usize, close_loop: bool) -> Vec<u8> {
        let mut doc = Document::with_version("1.5");
        let pages_id = doc.new_object_id();
        let font_id = font(&mut doc);
        let ids: Vec<_> = (0..depth.max(1)).map(|_| doc.new_object_id()).collect();
        for (i, id) in ids.iter().enumerate() {
            let next = if i + 1 < ids.len() {
                Some(ids[i + 1])
            } else if close_loop {
                Some(ids[0])
            } else {
                None
            };
            let mut dict = dictionary! {
                "Type" => "XObject", "Subtype" => "Form",
                "BBox" => vec![0.into(), 0.into(), 612.into(), 792.into()],
            };
            let content = match next {
                Some(next) => {
                    dict.set(
                        "Resources",
                        dictionary! { "XObject" => dictionary! { "X" => next }, "Font" => dictionary! { "F1" => font_id } },
                    );
                    b"/X Do".to_vec()
                }
                None => {
                    dict.set("Resources", dictionary! { "Font" => dictionary! { "F1" => font_id } });
                    b"BT /F1 12 Tf 72 712 Td (innermost form) Tj ET".to_vec()
                }
            };
            doc.objects.insert(*id, Object::Stream(Stream::new(dict, content)));
        }
        let content = doc.add_object(Stream::new(Dictionary::new(), b"/X Do".to_vec()));
        let page = doc.add_object(dictionary! {
            "Type" => "Page", "Parent" => pages_id, "Contents" => content,
            "Resources" => dictionary! { "XObject" => dictionary! { "X" => ids[0] }, "Font" => dictionary! { "F1" => font_id } },
        });
        finish_one_page(doc, pages_id, page)
    }

    /// A zlib stream of `len` zero bytes, written by hand (fixed Huffman codes: one literal, then
    /// back-references of 258 bytes at distance 1, 13 bits each), so a gigabyte bomb is built in
    /// a moment and weighs a 159th of its inflated size.
    pub fn zlib_zeros(len: u64) -> Vec<u8> {
        struct Bits {
            out: Vec<u8>,
            acc: u64,
            n: u32,
        }
        impl Bits {
            /// Writes `count` bits of `value`, least significant first.
            fn put(&mut self, value: u64, count: u32) {
                self.acc |= value << self.n;
                self.n += count;
                while self.n >= 8 {
                    self.out.push((self.acc & 0xff) as u8);
                    self.acc >>= 8;
                    self.n -= 8;
                }
            }
            /// Writes a Huffman code, most significant bit first.
            fn code(&mut self, code: u64, count: u32) {
                let mut reversed = 0u64;
                for i in 0..count {
                    reversed |= ((code >> i) & 1) << (count - 1 - i);
                }
                self.put(reversed, count);
            }
        }
        let mut bits = Bits { out: vec![0x78, 0x01], acc: 0, n: 0 };
        bits.put(1, 1); // the final block
        bits.put(1, 2); // fixed Huffman codes
        let mut left = len;
        if left > 0 {
            bits.code(0b0011_0000, 8); // the literal 0
            left -= 1;
        }
        while left >= 258 {
            bits.code(0b1100_0101, 8); // length 258 (code 285)
            bits.code(0, 5); // distance 1
            left -= 258;
        }
        for _ in 0..left {
            bits.code(0b0011_0000, 8);
        }
        bits.code(0, 7); // end of block (code 256)
        if bits.n > 0 {
            bits.put(0, 8 - bits.n);
        }
        // Adler-32 of `len` zeros: a stays 1, b grows by 1 per byte.
        let b = (len % 65_521) as u32;
        let adler = (b << 16) | 1;
        bits.out.extend_from_slice(&adler.to_be_bytes());
        bits.out
    }

    /// One page whose content stream inflates to `inflated` bytes of zeros.
    pub fn flate_bomb(inflated: u64) -> Vec<u8> {
        let mut doc = Document::with_version("1.5");
        let pages_id = doc.new_object_id();
        let content = doc.add_object(Stream::new(dictionary! { "Filter" => "FlateDecode" }, zlib_zeros(inflated)));
        let page = doc.add_object(dictionary! { "Type" => "Page", "Parent" => pages_id, "Contents" => content });
        finish_one_page(doc, pages_id, page)
    }

    /// `count` empty pages (the last one says a few words, so the file has text).
    pub fn many_pages(count: usize) -> Vec<u8> {
        let mut doc = Document::with_version("1.5");
        let pages_id = doc.new_object_id();
        let font_id = font(&mut doc);
        let resources = doc.add_object(dictionary! { "Font" => dictionary! { "F1" => font_id } });
        let empty = doc.add_object(Stream::new(Dictionary::new(), Vec::new()));
        let last = doc.add_object(text_stream("the last page"));
        let kids: Vec<Object> = (0..count)
            .map(|i| {
                let contents = if i + 1 == count { last } else { empty };
                doc.add_object(dictionary! { "Type" => "Page", "Parent" => pages_id, "Contents" => contents }).into()
            })
            .collect();
        let count = i64::try_from(count).unwrap_or(i64::MAX);
        doc.objects.insert(
            pages_id,
            Object::Dictionary(dictionary! {
                "Type" => "Pages", "Kids" => kids, "Count" => count, "Resources" => resources,
                "MediaBox" => vec![0.into(), 0.into(), 612.into(), 792.into()],
            }),
        );
        finish(doc, pages_id)
    }

    /// A page tree whose node lists itself among its kids, twice.
    pub fn kids_cycle() -> Vec<u8> {
        let mut doc = Document::with_version("1.5");
        let pages_id = doc.new_object_id();
        let content = doc.add_object(text_stream("a page in a loop"));
        let page = doc.add_object(dictionary! { "Type" => "Page", "Parent" => pages_id, "Contents" => content });
        doc.objects.insert(
            pages_id,
            Object::Dictionary(dictionary! {
                "Type" => "Pages", "Kids" => vec![pages_id.into(), page.into(), pages_id.into()], "Count" => 3,
                "MediaBox" => vec![0.into(), 0.into(), 612.into(), 792.into()],
            }),
        );
        finish(doc, pages_id)
    }
}
