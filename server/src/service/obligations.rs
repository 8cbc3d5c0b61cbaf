//! The obligation register: obligations found in regulations, compared from version to version,
//! reviewed by people, and mapped to the policy passages (controls) that meet them.
//!
//! Extraction reads a regulation's stored chunks sentence by sentence (the same sentence rule as
//! answers, [`super::answer::sentences`]), asks the obligation detector about the sentences that
//! hold a candidate cue word, and describes each obligation with deterministic rules: addressee,
//! modality, action, timing (normalised to an ISO 8601 duration where it is one) and conditions.
//! Each obligation's span is byte offsets in its chunk's stored text, verified like a citation.

use std::collections::{BTreeMap, HashSet};
use std::sync::LazyLock;

use indexer::ObligationDetector;
use regex::Regex;
use sha2::{Digest, Sha256};

use crate::error::Result;
use crate::store::NewObligation;
use crate::store::obligations::Previous;

use super::answer::sentences;

/// Review states, in the order an obligation moves through them.
pub const PROPOSED: &str = "proposed";
pub const ACCEPTED: &str = "accepted";
pub const NOT_APPLICABLE: &str = "not_applicable";
pub const APPROVED: &str = "approved";
/// An obligation of the previous version that the new version no longer states.
pub const REMOVED: &str = "removed";

/// Sentences longer than this are not read as one obligation (a table or a run-on extraction).
const MAX_SENTENCE_CHARS: usize = 1500;

/// Addressee, modality, action, timing and conditions of one obligation sentence.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Fields {
    pub addressee: String,
    /// `must`, `must_not` or `should`.
    pub modality: &'static str,
    pub action: String,
    pub timing: Option<String>,
    pub timing_iso: Option<String>,
    pub conditions: Option<String>,
}

fn regex(pattern: &str) -> Regex {
    Regex::new(pattern).unwrap_or_else(|e| unreachable!("a fixed pattern is valid: {e}"))
}

static PROHIBITION: LazyLock<Regex> = LazyLock::new(|| {
    regex(r"(?i)\b(shall not|must not|may not|(?:is|are) (?:prohibited|not permitted|not allowed)|shall in no case|must never|shall never)\b")
});
static DUTY: LazyLock<Regex> = LazyLock::new(|| {
    regex(r"(?i)\b(shall|must|(?:is|are) (?:required|obliged|obligated|mandated) to|(?:has|have) to|(?:is|are) responsible for)\b")
});
static RECOMMENDATION: LazyLock<Regex> =
    LazyLock::new(|| regex(r"(?i)\b(should|(?:is|are) expected to|expects?|(?:is|are) encouraged to)\b"));
static LEADING_CONDITION: LazyLock<Regex> = LazyLock::new(|| {
    regex(r"(?i)^(?:\(?[0-9a-z]{1,4}[.)]\s+)?((?:where|if|when|whenever|unless|in the event|in case|subject to|for the purposes? of|without prejudice to|by way of derogation|after|before|upon|on)\b[^,]{3,300}),\s*")
});
static TRAILING_CONDITION: LazyLock<Regex> =
    LazyLock::new(|| regex(r"(?i)[,;]?\s+((?:where|if|unless|provided that|in so far as|insofar as|when)\b.{3,300})$"));
static NUMBERING: LazyLock<Regex> = LazyLock::new(|| regex(r"^\s*(?:\(?[0-9]{1,3}[a-z]?[.)]|\([a-z]{1,4}\)|[a-z][.)])\s+"));
static TIMING: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)\b(?:(within|no later than|not later than|at least|at most|every|after|before)\s+(\d{1,4}|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|fourteen|fifteen|twenty|twenty-four|thirty|forty-eight|sixty|seventy-two|ninety)\s+(business |working |calendar )?(hours?|days?|weeks?|months?|years?)|without undue delay|immediately|promptly|annually|at least (?:once )?(?:a|per|every) (?:year|quarter|month)|at least annually|yearly|quarterly|monthly|semi-annually|periodically|on an ongoing basis)\b",
    )
});

fn number(word: &str) -> Option<u32> {
    word.parse().ok().or(match word.to_ascii_lowercase().as_str() {
        "one" => Some(1),
        "two" => Some(2),
        "three" => Some(3),
        "four" => Some(4),
        "five" => Some(5),
        "six" => Some(6),
        "seven" => Some(7),
        "eight" => Some(8),
        "nine" => Some(9),
        "ten" => Some(10),
        "eleven" => Some(11),
        "twelve" => Some(12),
        "fourteen" => Some(14),
        "fifteen" => Some(15),
        "twenty" => Some(20),
        "twenty-four" => Some(24),
        "thirty" => Some(30),
        "forty-eight" => Some(48),
        "sixty" => Some(60),
        "seventy-two" => Some(72),
        "ninety" => Some(90),
        _ => None,
    })
}

/// The first timing in `sentence`, and its ISO 8601 form where it is a duration or a period
/// ("within 4 hours" is `PT4H`, "within 5 business days" is `P5D` (the text keeps "business"),
/// "annually" is `R/P1Y`); "without undue delay" has no number and keeps only its text.
pub fn timing(sentence: &str) -> Option<(String, Option<String>)> {
    let m = TIMING.captures(sentence)?;
    let text = m.get(0)?.as_str().to_owned();
    let iso = match (m.get(2).and_then(|n| number(n.as_str())), m.get(4)) {
        (Some(n), Some(unit)) => {
            let unit = unit.as_str().to_ascii_lowercase();
            let period = match unit.trim_end_matches('s') {
                "hour" => format!("PT{n}H"),
                "day" => format!("P{n}D"),
                "week" => format!("P{n}W"),
                "month" => format!("P{n}M"),
                _ => format!("P{n}Y"),
            };
            let every = m.get(1).is_some_and(|w| w.as_str().eq_ignore_ascii_case("every"));
            Some(if every { format!("R/{period}") } else { period })
        }
        _ => {
            let lower = text.to_ascii_lowercase();
            if lower.contains("year") || lower.contains("annual") {
                Some(if lower.starts_with("semi") { "R/P6M".to_owned() } else { "R/P1Y".to_owned() })
            } else if lower.contains("quarter") {
                Some("R/P3M".to_owned())
            } else if lower.contains("month") {
                Some("R/P1M".to_owned())
            } else {
                None
            }
        }
    };
    Some((text, iso))
}

fn clip(text: &str, max_chars: usize) -> String {
    let text = text.trim().trim_end_matches(['.', ';', ':', ',']).trim();
    match text.char_indices().nth(max_chars) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// Describes one obligation sentence by rules. A sentence without a deontic cue (the
/// classifier's call) is a duty whose action is the whole sentence.
pub fn analyse(sentence: &str) -> Fields {
    let body = NUMBERING.replace(sentence, "");
    let mut conditions = Vec::new();
    let mut rest: &str = &body;
    if let Some(c) = LEADING_CONDITION.captures(rest)
        && let (Some(all), Some(clause)) = (c.get(0), c.get(1))
    {
        conditions.push(clip(clause.as_str(), 300));
        rest = &rest[all.end()..];
    }
    let (modality, cue) = if let Some(m) = PROHIBITION.find(rest) {
        ("must_not", Some(m))
    } else if let Some(m) = DUTY.find(rest) {
        ("must", Some(m))
    } else if let Some(m) = RECOMMENDATION.find(rest) {
        ("should", Some(m))
    } else {
        ("must", None)
    };
    let (addressee, mut action) = match cue {
        Some(m) => {
            // The addressee is what comes before the cue, after the last clause break.
            let before = &rest[..m.start()];
            let subject = before.rsplit([',', ';', ':']).next().unwrap_or(before);
            (clip(subject, 120), rest[m.end()..].trim().to_owned())
        }
        None => (String::new(), rest.trim().to_owned()),
    };
    if let Some(c) = TRAILING_CONDITION.captures(&action)
        && let (Some(all), Some(clause)) = (c.get(0), c.get(1))
        && all.start() > 0
    {
        conditions.push(clip(clause.as_str(), 300));
        action.truncate(all.start());
    }
    let (timing_text, timing_iso) = match timing(sentence) {
        Some((t, iso)) => (Some(t), iso),
        None => (None, None),
    };
    Fields {
        addressee,
        modality,
        action: clip(&action, 400),
        timing: timing_text,
        timing_iso,
        conditions: (!conditions.is_empty()).then(|| conditions.join("; ")),
    }
}

/// Lower-case words of a sentence, for comparing versions.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
}

fn normalised(text: &str) -> String {
    words(text).join(" ")
}

/// Share of distinct words two sentences have in common (Jaccard).
fn similarity(a: &str, b: &str) -> f64 {
    let a: HashSet<String> = words(a).into_iter().collect();
    let b: HashSet<String> = words(b).into_iter().collect();
    let union = a.union(&b).count();
    if union == 0 { 0.0 } else { a.intersection(&b).count() as f64 / union as f64 }
}

/// Two versions of one obligation are recognised as the same when at least this share of their
/// words is shared (and they are each other's best match).
const SAME_OBLIGATION: f64 = 0.6;

fn fresh_key(document_id: &str, heading_path: &str, text: &str, taken: &HashSet<String>) -> String {
    let base = hex::encode(&Sha256::digest(format!("{document_id}\n{heading_path}\n{}", normalised(text)))[..8]);
    let mut key = base.clone();
    let mut n = 2;
    while taken.contains(&key) {
        key = format!("{base}-{n}");
        n += 1;
    }
    key
}

/// A sentence of a chunk that a detector will be asked about.
struct Candidate<'a> {
    chunk: &'a indexer::Chunk,
    start: usize,
    end: usize,
}

impl Candidate<'_> {
    fn text(&self) -> &str {
        &self.chunk.text[self.start..self.end]
    }
}

/// Finds the obligations of one version of a regulation in its chunks and compares them with
/// the previous version's: a sentence found again word for word is `unchanged` and keeps its
/// review state; one whose words mostly match an unmatched previous obligation is `changed` and
/// goes back to review; others are `new`; previous obligations left unmatched are `removed`.
pub fn extract(
    document_id: &str,
    chunks: &[indexer::Chunk],
    detector: &dyn ObligationDetector,
    previous: &[Previous],
) -> Result<Vec<NewObligation>> {
    let mut candidates = Vec::new();
    let mut seen = HashSet::new();
    for chunk in chunks {
        for (start, end) in sentences(&chunk.text) {
            let candidate = Candidate { chunk, start, end };
            let text = candidate.text();
            let long_enough = text.split_whitespace().count() >= 5;
            if long_enough
                && text.chars().count() <= MAX_SENTENCE_CHARS
                && indexer::obligation::is_candidate(text)
                // Chunks of one page can repeat a sentence at their seam; it is one obligation.
                && seen.insert((chunk.page, normalised(text)))
            {
                candidates.push(candidate);
            }
        }
    }
    let texts: Vec<&str> = candidates.iter().map(Candidate::text).collect();
    let verdicts = detector.detect(&texts)?;
    let found: Vec<&Candidate<'_>> = candidates.iter().zip(verdicts).filter(|(_, yes)| *yes).map(|(c, _)| c).collect();

    // Match against the previous version: exact text first, then the most similar.
    let mut matched: Vec<Option<(usize, bool)>> = vec![None; found.len()];
    let mut used = vec![false; previous.len()];
    let mut by_text: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, p) in previous.iter().enumerate() {
        by_text.entry(normalised(&p.text)).or_default().push(i);
    }
    for (i, c) in found.iter().enumerate() {
        if let Some(slot) = by_text.get_mut(&normalised(c.text()))
            && let Some(pos) = slot.iter().position(|&j| !used[j])
        {
            let j = slot.remove(pos);
            used[j] = true;
            matched[i] = Some((j, true));
        }
    }
    let mut pairs: Vec<(f64, usize, usize)> = Vec::new();
    for (i, c) in found.iter().enumerate().filter(|(i, _)| matched[*i].is_none()) {
        for (j, p) in previous.iter().enumerate().filter(|(j, _)| !used[*j]) {
            let s = similarity(c.text(), &p.text) + if p.heading_path == c.chunk.heading_path { 0.05 } else { 0.0 };
            if s >= SAME_OBLIGATION {
                pairs.push((s, i, j));
            }
        }
    }
    pairs.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    for (_, i, j) in pairs {
        if matched[i].is_none() && !used[j] {
            used[j] = true;
            matched[i] = Some((j, false));
        }
    }

    let mut taken: HashSet<String> = previous.iter().map(|p| p.key.clone()).collect();
    let mut out = Vec::with_capacity(found.len());
    for (i, c) in found.iter().enumerate() {
        let fields = analyse(c.text());
        let (key, change, previous_text, status, status_reason, owner, due_date) = match matched[i] {
            Some((j, true)) => {
                let p = &previous[j];
                (p.key.clone(), "unchanged", None, p.status.clone(), p.status_reason.clone(), p.owner.clone(), p.due_date)
            }
            Some((j, false)) => {
                let p = &previous[j];
                (p.key.clone(), "changed", Some(p.text.clone()), PROPOSED.to_owned(), None, p.owner.clone(), None)
            }
            None => {
                let key = fresh_key(document_id, &c.chunk.heading_path, c.text(), &taken);
                taken.insert(key.clone());
                (key, "new", None, PROPOSED.to_owned(), None, None, None)
            }
        };
        out.push(NewObligation {
            ordinal: u32::try_from(out.len()).unwrap_or(u32::MAX),
            key,
            chunk_id: c.chunk.id.clone(),
            page: c.chunk.page,
            heading_path: c.chunk.heading_path.clone(),
            start: c.start,
            end: c.end,
            text: c.text().to_owned(),
            addressee: fields.addressee,
            modality: fields.modality.to_owned(),
            action: fields.action,
            timing: fields.timing,
            timing_iso: fields.timing_iso,
            conditions: fields.conditions,
            change: change.to_owned(),
            previous_text,
            status,
            status_reason,
            owner,
            due_date,
            detector: detector.model_id().to_owned(),
            previous_id: matched[i].map(|(j, _)| previous[j].id.clone()),
        });
    }
    for (j, p) in previous.iter().enumerate().filter(|(j, _)| !used[*j]) {
        let fields = analyse(&p.text);
        out.push(NewObligation {
            ordinal: u32::try_from(out.len()).unwrap_or(u32::MAX),
            key: p.key.clone(),
            chunk_id: p.chunk_id.clone(),
            page: p.page,
            heading_path: p.heading_path.clone(),
            start: p.start,
            end: p.end,
            text: p.text.clone(),
            addressee: fields.addressee,
            modality: fields.modality.to_owned(),
            action: fields.action,
            timing: fields.timing,
            timing_iso: fields.timing_iso,
            conditions: fields.conditions,
            change: "removed".to_owned(),
            previous_text: Some(previous[j].text.clone()),
            status: REMOVED.to_owned(),
            status_reason: None,
            owner: p.owner.clone(),
            due_date: None,
            detector: detector.model_id().to_owned(),
            previous_id: Some(p.id.clone()),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_of_a_conditional_duty_with_a_deadline() {
        let f = analyse(
            "(1) Where a major ICT-related incident occurs, financial entities shall submit an initial notification to the competent authority within 4 hours.",
        );
        assert_eq!(f.addressee, "financial entities");
        assert_eq!(f.modality, "must");
        assert_eq!(f.action, "submit an initial notification to the competent authority within 4 hours");
        assert_eq!(f.timing.as_deref(), Some("within 4 hours"));
        assert_eq!(f.timing_iso.as_deref(), Some("PT4H"));
        assert_eq!(f.conditions.as_deref(), Some("Where a major ICT-related incident occurs"));
    }

    #[test]
    fn prohibitions_recommendations_and_periods() {
        let f = analyse("The controller shall not process such data unless the data subject has consented.");
        assert_eq!((f.addressee.as_str(), f.modality), ("The controller", "must_not"));
        assert_eq!(f.action, "process such data");
        assert_eq!(f.conditions.as_deref(), Some("unless the data subject has consented"));
        let f = analyse("Firms should review the register annually.");
        assert_eq!((f.modality, f.timing_iso.as_deref()), ("should", Some("R/P1Y")));
        assert_eq!(timing("notify it without undue delay").map(|t| t.1), Some(None));
        assert_eq!(timing("within seventy-two hours of").and_then(|t| t.1).as_deref(), Some("PT72H"));
        assert_eq!(timing("within 5 business days").and_then(|t| t.1).as_deref(), Some("P5D"));
    }
}
