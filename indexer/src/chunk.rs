//! Structure-aware chunking of page text. Pages are split with text-splitter, which prefers
//! paragraph, then line, then sentence boundaries, so numbered points and short articles stay
//! together where they fit. Each chunk records its page, character offsets into that page's text
//! and the heading path in force where it starts, and gets an id derived from the document version
//! and its content.

use sha2::{Digest, Sha256};
use text_splitter::{ChunkConfig, TextSplitter};

use crate::pdf::PageText;

/// Chunk size bounds in characters: large enough to hold a typical numbered paragraph, small
/// enough to stay under the embedding model's 256-token window.
pub const MIN_CHUNK_CHARS: usize = 300;
pub const MAX_CHUNK_CHARS: usize = 1000;
/// A piece shorter than this after a chunk of the same section is merged into that chunk.
const SHORT_TAIL_CHARS: usize = 120;

/// One retrievable passage of a document version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Stable id: a hash of document id, version, page, offset and text.
    pub id: String,
    /// Position of the chunk within its document version, from 0.
    pub ordinal: u32,
    pub page: u32,
    /// Character (not byte) offsets into the page text, end exclusive.
    pub char_start: u32,
    pub char_end: u32,
    /// Headings in force at the chunk's start, outermost first, joined with " > ".
    pub heading_path: String,
    pub text: String,
}

/// Splits the pages of one document version into chunks.
pub fn chunk_pages(document_id: &str, version: u32, pages: &[PageText]) -> Vec<Chunk> {
    let splitter = TextSplitter::new(ChunkConfig::new(MIN_CHUNK_CHARS..MAX_CHUNK_CHARS));
    let mut headings = HeadingTracker::default();
    let mut chunks = Vec::new();
    for page in pages {
        // Headings are tracked line by line so a chunk gets the path in force at its start.
        let marks = headings.scan_page(&page.text);
        let heading_starts: Vec<usize> = marks.iter().filter(|m| m.heading).map(|m| m.byte).collect();
        for (seg_start, seg_end) in segments(&page.text, &heading_starts) {
            let segment = &page.text[seg_start..seg_end];
            // Byte ranges within the page; a short tail (the end of a paragraph that ran over
            // from the previous chunk) joins the chunk before it rather than standing alone.
            let mut ranges: Vec<(usize, usize)> = Vec::new();
            for (offset, piece) in splitter.chunk_indices(segment) {
                let range = (seg_start + offset, seg_start + offset + piece.len());
                match ranges.last_mut() {
                    Some(last) if piece.chars().count() < SHORT_TAIL_CHARS => last.1 = range.1,
                    _ => ranges.push(range),
                }
            }
            for (byte_start, byte_end) in ranges {
                let text = &page.text[byte_start..byte_end];
                if !is_meaningful(text) {
                    continue;
                }
                // A heading in the first third of the chunk names what the chunk is mostly about;
                // paragraph and point markers count where the chunk starts.
                let horizon = byte_start + text.len() / 3;
                let path = marks
                    .iter()
                    .rev()
                    .find(|m| m.byte <= byte_start || (m.heading && m.byte <= horizon))
                    .map(|m| m.path.clone())
                    .unwrap_or_else(|| headings.before_page.clone());
                let char_start = page.text[..byte_start].chars().count();
                let char_end = char_start + text.chars().count();
                let ordinal = u32::try_from(chunks.len()).unwrap_or(u32::MAX);
                chunks.push(Chunk {
                    id: chunk_id(document_id, version, page.number, char_start, text),
                    ordinal,
                    page: page.number,
                    char_start: to_u32(char_start),
                    char_end: to_u32(char_end),
                    heading_path: path,
                    text: text.to_owned(),
                });
            }
        }
    }
    chunks
}

/// Byte ranges of a page that start at a heading, so a chunk never straddles two numbered points.
/// A range holding nothing but headings is merged into the next one.
fn segments(text: &str, heading_starts: &[usize]) -> Vec<(usize, usize)> {
    let mut bounds: Vec<usize> = std::iter::once(0).chain(heading_starts.iter().copied()).collect();
    bounds.push(text.len());
    bounds.dedup();
    let mut out = Vec::new();
    let mut start = 0usize;
    for pair in bounds.windows(2) {
        let end = pair[1];
        let body_letters = text[start..end]
            .lines()
            .filter(|l| heading_level(l.trim()).is_none())
            .flat_map(str::chars)
            .filter(|c| c.is_alphabetic())
            .count();
        if body_letters >= 20 || end == text.len() {
            out.push((start, end));
            start = end;
        }
    }
    out
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// A chunk must carry words, not just page furniture such as a lone page number.
fn is_meaningful(text: &str) -> bool {
    text.chars().filter(|c| c.is_alphabetic()).count() >= 20
}

fn chunk_id(document_id: &str, version: u32, page: u32, char_start: usize, text: &str) -> String {
    let mut h = Sha256::new();
    for part in [document_id, &version.to_string(), &page.to_string(), &char_start.to_string(), text] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    hex::encode(&h.finalize()[..16])
}

/// Follows "Article 5" / "Section 2" style headings (level 1), "2.1 Title" style numbered
/// headings (level 2), and inside them numbered paragraphs ("2.  Financial entities shall ...")
/// and points ("(b)  ..."), across pages, giving paths such as "Article 28 > 2 > (b)".
#[derive(Debug, Default)]
struct HeadingTracker {
    level1: Option<String>,
    level2: Option<String>,
    paragraph: Option<String>,
    point: Option<String>,
    /// "(ii)" inside "(b)".
    subpoint: Option<String>,
    /// Path in force at the top of the page being scanned.
    before_page: String,
}

/// A place on a page where the path changes.
#[derive(Debug, Clone)]
struct Mark {
    /// Byte offset of the line start.
    byte: usize,
    /// The path in force from there.
    path: String,
    /// Headings start segments; paragraph and point markers only name where a chunk starts.
    heading: bool,
}

impl HeadingTracker {
    /// Returns a mark for each heading, paragraph and point that starts a line of the page.
    fn scan_page(&mut self, text: &str) -> Vec<Mark> {
        self.before_page = self.path();
        let mut marks = Vec::new();
        let mut offset = 0usize;
        for line in text.split_inclusive('\n') {
            let trimmed = line.trim();
            let heading = match heading_level(trimmed) {
                Some(1) => {
                    self.level1 = Some(trimmed.to_owned());
                    self.level2 = None;
                    self.paragraph = None;
                    self.point = None;
                    self.subpoint = None;
                    Some(true)
                }
                Some(_) => {
                    self.level2 = Some(trimmed.to_owned());
                    self.paragraph = None;
                    self.point = None;
                    self.subpoint = None;
                    Some(true)
                }
                None => match marker(trimmed) {
                    Some(Marker::Paragraph(label)) => {
                        self.paragraph = Some(label);
                        self.point = None;
                        self.subpoint = None;
                        Some(false)
                    }
                    Some(Marker::Point(label)) => {
                        if self.point.as_deref().is_some_and(|current| nests_under(&label, current)) {
                            self.subpoint = Some(label);
                        } else {
                            self.point = Some(label);
                            self.subpoint = None;
                        }
                        Some(false)
                    }
                    None => None,
                },
            };
            if let Some(heading) = heading {
                marks.push(Mark { byte: offset, path: self.path(), heading });
            }
            offset += line.len();
        }
        marks
    }

    fn path(&self) -> String {
        [
            self.level1.as_deref(),
            self.level2.as_deref(),
            self.paragraph.as_deref(),
            self.point.as_deref(),
            self.subpoint.as_deref(),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" > ")
    }
}

/// A numbered paragraph or a lettered/numbered point opening a line.
#[derive(Debug, PartialEq, Eq)]
enum Marker {
    /// "2." of "2.  Financial entities shall ..."; the label is "2".
    Paragraph(String),
    /// "(b)" of "(b)  the register ...", also "(iv)" and "(12)".
    Point(String),
}

/// Whether point `label` is a roman-numbered sub-point of the lettered point `current`:
/// "(ii)" under "(b)". "(i)" after "(h)" (and "(v)" after "(u)", "(x)" after "(w)") is the next
/// letter instead.
fn nests_under(label: &str, current: &str) -> bool {
    let inner = |l: &str| l.trim_start_matches('(').trim_end_matches(')').to_owned();
    let (label, current) = (inner(label), inner(current));
    let roman = |s: &str| !s.is_empty() && s.bytes().all(|b| b"ivx".contains(&b));
    let letter = current.len() == 1 && current.bytes().all(|b| b.is_ascii_lowercase());
    let next_letter =
        current.len() == 1 && label.len() == 1 && current.as_bytes()[0].checked_add(1) == Some(label.as_bytes()[0]);
    roman(&label) && letter && !next_letter
}

fn marker(line: &str) -> Option<Marker> {
    let (first, rest) = line.split_once(char::is_whitespace)?;
    if rest.trim().is_empty() {
        return None;
    }
    if let Some(number) = first.strip_suffix('.')
        && !number.is_empty()
        && number.len() <= 3
        && number.bytes().all(|b| b.is_ascii_digit())
    {
        return Some(Marker::Paragraph(number.to_owned()));
    }
    let inner = first.strip_prefix('(')?.strip_suffix(')')?;
    let letters = !inner.is_empty() && inner.len() <= 4 && inner.bytes().all(|b| b.is_ascii_lowercase());
    let digits = !inner.is_empty() && inner.len() <= 3 && inner.bytes().all(|b| b.is_ascii_digit());
    (letters || digits).then(|| Marker::Point(first.to_owned()))
}

fn heading_level(line: &str) -> Option<u8> {
    if line.is_empty() || line.len() > 90 || line.ends_with(['.', ',', ';', ':']) {
        return None;
    }
    let first = line.split_whitespace().next()?;
    const LEVEL1: [&str; 6] = ["Article", "Section", "Chapter", "Part", "Annex", "Title"];
    if LEVEL1.contains(&first) {
        // "Article 17", "Article 6a", "Chapter IV" or "Section 2 Retention periods", but not a
        // sentence that starts with a citation such as "Article 33(1) of Directive ...".
        let mut words = line.split_whitespace().skip(1);
        let label = words.next()?.trim_end_matches(['.', ':']);
        let digits = label.bytes().take_while(u8::is_ascii_digit).count();
        let numbered =
            digits > 0 && label[digits..].len() <= 2 && label[digits..].bytes().all(|b| b.is_ascii_lowercase());
        let roman = !label.is_empty() && label.bytes().all(|b| b"IVXLC".contains(&b));
        let rest: Vec<&str> = words.collect();
        let short_title = rest.len() <= 8 && !rest.iter().any(|w| w.contains(['(', ',', ';']));
        return ((numbered || roman) && short_title).then_some(1);
    }
    // "2.1 Scope" or "3. Retention": a dotted number followed by a capitalised title.
    let is_number =
        first.trim_end_matches('.').split('.').all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    let rest = line[first.len()..].trim_start();
    if is_number && rest.chars().next().is_some_and(|c| c.is_uppercase()) && rest.split_whitespace().count() <= 8 {
        return Some(2);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(number: u32, text: &str) -> PageText {
        PageText { number, text: text.to_owned() }
    }

    #[test]
    fn headings_are_recognised() {
        assert_eq!(heading_level("Article 17"), Some(1));
        assert_eq!(heading_level("Section 3 Retention of records"), Some(1));
        assert_eq!(heading_level("2.1 Scope"), Some(2));
        assert_eq!(heading_level("3. Retention periods"), Some(2));
        assert_eq!(heading_level("Article numbers are cited like this."), None);
        assert_eq!(heading_level("Article 33(1) of Directive (EU) 2015/2366, should be the competent authority"), None);
        assert_eq!(heading_level("Article 6a"), Some(1));
        assert_eq!(heading_level("Chapter IV"), Some(1));
        assert_eq!(heading_level("2019 was a long year for the team"), None);
    }

    #[test]
    fn chunks_carry_offsets_pages_and_heading_paths() {
        let body = "Customer records are kept for ten years after the relationship ends. ".repeat(8);
        let text = format!("Section 4 Retention\n\n4.1 Customer files\n\n{body}\n\n4.2 Deletion\n\n{body}");
        let pages = vec![page(1, "Cover page of the retention policy with some words on it."), page(2, &text)];
        let chunks = chunk_pages("doc-1", 1, &pages);
        assert!(chunks.len() >= 2);
        for c in &chunks {
            let page_text = &pages[(c.page - 1) as usize].text;
            let slice: String =
                page_text.chars().skip(c.char_start as usize).take((c.char_end - c.char_start) as usize).collect();
            assert_eq!(slice, c.text, "offsets must point at the chunk text");
        }
        let last = chunks.last().map(|c| c.heading_path.clone()).unwrap_or_default();
        assert_eq!(last, "Section 4 Retention > 4.2 Deletion");
        let ids: std::collections::HashSet<_> = chunks.iter().map(|c| &c.id).collect();
        assert_eq!(ids.len(), chunks.len());
        assert_eq!(chunk_pages("doc-1", 1, &pages), chunks, "chunking is deterministic");
        assert_ne!(chunk_pages("doc-1", 2, &pages)[0].id, chunks[0].id, "ids depend on the version");
    }

    #[test]
    fn a_short_tail_joins_the_chunk_before_it() {
        let sentence = "Financial entities shall maintain a register of information on ICT services. ";
        let text = format!("{}Final words.", sentence.repeat(12));
        let chunks = chunk_pages("doc-1", 1, &[page(1, &text)]);
        assert!(chunks.len() >= 2, "{chunks:?}");
        assert!(chunks.iter().all(|c| c.text.chars().count() >= MIN_CHUNK_CHARS), "{chunks:?}");
        let last = chunks.last().map(|c| c.text.as_str()).unwrap_or_default();
        assert!(last.ends_with("Final words."));
        for c in &chunks {
            let slice: String =
                text.chars().skip(c.char_start as usize).take((c.char_end - c.char_start) as usize).collect();
            assert_eq!(slice, c.text, "offsets still point at the merged text");
        }
    }

    #[test]
    fn paragraphs_points_and_sub_points_extend_the_path() {
        let text = "Article 28 General principles\n1.  Financial entities shall manage ICT third-party risk:\n(a)  first point of the paragraph with enough words to count;\n(b)  second point:\n(i)  a sub-point in roman numerals with words;\n(ii)  another sub-point with more words here;\n2.  Financial entities shall adopt a strategy on ICT third-party risk for the whole group.";
        let mut tracker = HeadingTracker::default();
        let paths: Vec<String> = tracker.scan_page(text).into_iter().map(|m| m.path).collect();
        assert_eq!(
            paths,
            [
                "Article 28 General principles",
                "Article 28 General principles > 1",
                "Article 28 General principles > 1 > (a)",
                "Article 28 General principles > 1 > (b)",
                "Article 28 General principles > 1 > (b) > (i)",
                "Article 28 General principles > 1 > (b) > (ii)",
                "Article 28 General principles > 2",
            ]
        );
        assert_eq!(marker("(h)  eighth"), Some(Marker::Point("(h)".into())));
        assert!(!nests_under("(i)", "(h)"), "(i) after (h) is the next letter");
        assert!(nests_under("(iv)", "(c)"));
        assert_eq!(marker("12.  twelfth paragraph"), Some(Marker::Paragraph("12".into())));
        assert_eq!(marker("2019. was a year"), None);
        assert_eq!(marker("(see below) text"), None);
        assert_eq!(marker("(a)"), None, "a marker alone on its line carries no text");
    }
}
