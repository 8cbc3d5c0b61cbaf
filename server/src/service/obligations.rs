//! The obligation register: obligations found in regulations, compared from version to version,
//! reviewed by people, and mapped to the policy passages (controls) that meet them.
//!
//! Extraction reads a regulation's stored chunks sentence by sentence (the same sentence rule as
//! answers, [`super::answer::sentences`]), asks the obligation detector about the sentences that
//! hold a candidate cue word, and describes each obligation with deterministic rules: addressee,
//! modality, action, timing (normalised to an ISO 8601 duration where it is one) and conditions.
//! Each obligation's span is byte offsets in its chunk's stored text, verified like a citation.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, LazyLock};

use indexer::{ObligationDetector, Retriever};
use regex::Regex;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use crate::domain::{Actor, DocumentKind, Permission, Role, TenantId};
use crate::error::{Error, Result};
use crate::store::obligations::{ControlRow, ObligationRow, Previous};
use crate::store::{AuditRecord, NewObligation, Storage};

use super::answer::{push_trimmed, sentences};

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
    regex(
        r"(?i)\b(shall not|must not|may not|(?:is|are) (?:prohibited|not permitted|not allowed)|shall in no case|must never|shall never)\b",
    )
});
static DUTY: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)\b(shall|must|(?:is|are) (?:required|obliged|obligated|mandated) to|(?:has|have) to|(?:is|are) responsible for)\b",
    )
});
static RECOMMENDATION: LazyLock<Regex> =
    LazyLock::new(|| regex(r"(?i)\b(should|(?:is|are) expected to|expects?|(?:is|are) encouraged to)\b"));
static LEADING_CONDITION: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?i)^(?:\(?[0-9a-z]{1,4}[.)]\s+)?((?:where|if|when|whenever|unless|in the event|in case|subject to|for the purposes? of|without prejudice to|by way of derogation|after|before|upon|on)\b[^,]{3,300}),\s*",
    )
});
static TRAILING_CONDITION: LazyLock<Regex> =
    LazyLock::new(|| regex(r"(?i)[,;]?\s+((?:where|if|unless|provided that|in so far as|insofar as|when)\b.{3,300})$"));
static NUMBERING: LazyLock<Regex> =
    LazyLock::new(|| regex(r"^\s*(?:\(?[0-9]{1,3}[a-z]?[.)]|\([a-z]{1,4}\)|[a-z][.)])\s+"));
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

/// `text` on one line, without closing punctuation, cut at `max_chars`.
fn clip(text: &str, max_chars: usize) -> String {
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let text = text.trim_end_matches(['.', ';', ':', ',']).trim();
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

/// A list number: "2.", "(b)", "iv)".
const NUMBER: &str = r"(?:\(?[0-9]{1,3}[a-z]?[.)]|\([a-z]{1,4}\)|[a-z]{1,4}\))";

/// A line that starts with a list number begins a new provision, even where the sentence rule
/// does not split (its number is not a capital letter).
static NUMBERED_LINE: LazyLock<Regex> = LazyLock::new(|| regex(&format!(r"\n[ \t]*{NUMBER}[ \t]")));
/// A sentence that is only a list number, or ends with one on a line of its own: the number
/// belongs to the provision after it.
static ONLY_NUMBER: LazyLock<Regex> = LazyLock::new(|| regex(&format!(r"^{NUMBER}$")));
static TRAILING_NUMBER: LazyLock<Regex> = LazyLock::new(|| regex(&format!(r"\n[ \t]*{NUMBER}$")));

/// The provisions of `text`: its sentences as [`sentences`] finds them, with each list number
/// moved to the provision it opens, and a sentence cut where a numbered line begins.
fn provisions(text: &str) -> Vec<(usize, usize)> {
    let mut joined: Vec<(usize, usize)> = Vec::new();
    let mut pending: Option<usize> = None;
    for (start, end) in sentences(text) {
        let piece = &text[start..end];
        if ONLY_NUMBER.is_match(piece) {
            pending = Some(pending.unwrap_or(start));
            continue;
        }
        let start = pending.take().unwrap_or(start);
        match TRAILING_NUMBER.find(piece) {
            Some(m) => {
                joined.push((start, start.max(end - piece.len() + m.start())));
                pending = Some(end - piece.len() + m.start() + 1);
            }
            None => joined.push((start, end)),
        }
    }
    if let Some(start) = pending {
        joined.push((start, text.len()));
    }
    let mut out = Vec::new();
    for (start, end) in joined {
        let mut from = start;
        for m in NUMBERED_LINE.find_iter(&text[start..end]) {
            push_trimmed(text, from, start + m.start(), &mut out);
            from = start + m.start() + 1;
        }
        push_trimmed(text, from, end, &mut out);
    }
    out
}

static RECITAL: LazyLock<Regex> = LazyLock::new(|| regex(r"^\([0-9]{1,3}\)$"));

/// Whether a chunk is a recital of an EU-style act: its outermost heading is a bare "(12)" and
/// the act has articles. Recitals give reasons ("... should be required to ..."); they bind
/// nobody, so no obligation is read from them.
fn is_recital(heading_path: &str, act_has_articles: bool) -> bool {
    act_has_articles && heading_path.split(" > ").next().is_some_and(|top| RECITAL.is_match(top.trim()))
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
    let has_articles = chunks.iter().any(|c| c.heading_path.to_lowercase().starts_with("article"));
    for chunk in chunks.iter().filter(|c| !is_recital(&c.heading_path, has_articles)) {
        for (start, end) in provisions(&chunk.text) {
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
                (
                    p.key.clone(),
                    "unchanged",
                    None,
                    p.status.clone(),
                    p.status_reason.clone(),
                    p.owner.clone(),
                    p.due_date,
                )
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

/// Who may move an obligation from one review state to another: analysts accept or set aside
/// proposed obligations (and reopen their own calls), reviewers approve accepted ones or send
/// them back. Nobody approves without an analyst's acceptance first.
pub fn transition_allowed(role: Role, from: &str, to: &str) -> bool {
    match role {
        Role::Analyst => matches!(
            (from, to),
            (PROPOSED, ACCEPTED) | (PROPOSED, NOT_APPLICABLE) | (ACCEPTED, PROPOSED) | (NOT_APPLICABLE, PROPOSED)
        ),
        Role::Reviewer => {
            matches!((from, to), (ACCEPTED, APPROVED) | (ACCEPTED, PROPOSED) | (NOT_APPLICABLE, PROPOSED))
        }
        Role::Admin => false,
    }
}

/// Which obligations a list shows; every field narrows it.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Filter {
    /// A regulation's document id.
    pub regulation: Option<String>,
    /// Text the heading path contains, e.g. "Article 19".
    pub article: Option<String>,
    /// proposed, accepted, not_applicable, approved or removed.
    pub status: Option<String>,
    pub owner: Option<String>,
    /// Only gaps (true) or only non-gaps (false).
    pub gap: Option<bool>,
    /// new, changed, unchanged or removed.
    pub change: Option<String>,
}

impl Filter {
    fn keeps(&self, v: &ObligationView) -> bool {
        self.regulation.as_deref().is_none_or(|d| v.document_id == d)
            && self.article.as_deref().is_none_or(|a| v.heading_path.to_lowercase().contains(&a.to_lowercase()))
            && self.status.as_deref().is_none_or(|s| v.status == s)
            && self.owner.as_deref().is_none_or(|o| v.owner.as_deref() == Some(o))
            && self.gap.is_none_or(|g| v.gap == g)
            && self.change.as_deref().is_none_or(|c| v.change == c)
    }
}

/// A gap: an obligation the firm accepted (or approved) with no confirmed control meeting it.
pub fn is_gap(status: &str, confirmed_controls: usize) -> bool {
    (status == ACCEPTED || status == APPROVED) && confirmed_controls == 0
}

/// The register's counts for one regulation's current version (the governance packet's).
#[derive(Debug, Clone, Default, Serialize)]
pub struct RegisterCounts {
    pub tenant: String,
    pub document_id: String,
    pub version: u32,
    pub total: usize,
    pub by_status: BTreeMap<String, usize>,
    pub by_change: BTreeMap<String, usize>,
    /// Accepted or approved with no confirmed control.
    pub gaps: usize,
}

/// Counts of one tenant's current register (every tenant's with `None`), per regulation: no
/// obligation text. For the governance packet of that scope.
pub async fn register_counts(storage: &Storage, tenant: Option<&TenantId>) -> Result<Vec<RegisterCounts>> {
    let rows = storage.current_obligations(tenant).await?;
    let confirmed = storage.confirmed_controls(tenant).await?;
    let mut out: BTreeMap<(String, String), RegisterCounts> = BTreeMap::new();
    for r in rows {
        let c = out.entry((r.tenant_id.clone(), r.document_id.clone())).or_insert_with(|| RegisterCounts {
            tenant: r.tenant_id.clone(),
            document_id: r.document_id.clone(),
            version: u32::try_from(r.version).unwrap_or(0),
            ..RegisterCounts::default()
        });
        c.total += 1;
        c.gaps += usize::from(is_gap(&r.status, confirmed.get(&r.id).copied().unwrap_or(0)));
        *c.by_status.entry(r.status).or_default() += 1;
        *c.by_change.entry(r.change).or_default() += 1;
    }
    Ok(out.into_values().collect())
}

/// Finds the obligations of one version of a regulation (off the async runtime) and compares them
/// with the latest earlier version's. Ingestion and `lexgate obligations extract` both use it.
pub async fn extract_version(
    storage: &Storage,
    detector: &Arc<dyn ObligationDetector>,
    document_id: &str,
    version: u32,
    chunks: Vec<indexer::Chunk>,
) -> Result<Vec<NewObligation>> {
    let previous = storage.previous_obligations(document_id, version).await?;
    let (id, detector) = (document_id.to_owned(), Arc::clone(detector));
    let started = std::time::Instant::now();
    let found = tokio::task::spawn_blocking(move || extract(&id, &chunks, detector.as_ref(), &previous))
        .await
        .map_err(|e| Error::internal("obligation extraction task", e))??;
    tracing::info!(
        document = %document_id, version, obligations = found.len(),
        ms = started.elapsed().as_millis() as u64, "obligations extracted"
    );
    Ok(found)
}

/// An obligation as lists, exports and the API give it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ObligationView {
    pub id: String,
    /// Stays the same from version to version while the obligation is recognised.
    pub key: String,
    pub document_id: String,
    pub title: String,
    pub version: u32,
    pub page: u32,
    pub heading_path: String,
    pub chunk_id: String,
    /// Byte offsets of `text` in the chunk's stored text.
    pub start: usize,
    pub end: usize,
    pub text: String,
    /// Whether `text` is exactly the stored chunk text at its offsets (checked on every read).
    pub span_verified: bool,
    pub addressee: String,
    /// must, must_not or should.
    pub modality: String,
    pub action: String,
    pub timing: Option<String>,
    /// ISO 8601 duration or repeating period, where the timing is one.
    pub timing_iso: Option<String>,
    pub conditions: Option<String>,
    /// new, changed, unchanged or removed, against the previous version.
    pub change: String,
    pub previous_text: Option<String>,
    pub status: String,
    pub status_reason: Option<String>,
    pub owner: Option<String>,
    pub due_date: Option<chrono::NaiveDate>,
    /// Confirmed controls (policy passages meeting it).
    pub controls_confirmed: usize,
    /// Accepted (or approved) with no confirmed control.
    pub gap: bool,
    /// An approved obligation with an owner and a due date: a tracked action.
    pub tracked_action: bool,
}

/// A policy passage suggested as, confirmed as or rejected as a control of an obligation.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ControlView {
    pub chunk_id: String,
    pub document_id: String,
    pub title: String,
    pub version: u32,
    pub page: u32,
    pub heading_path: String,
    pub text: String,
    pub score: f64,
    /// suggested, confirmed or rejected.
    pub state: String,
    pub decided_by: Option<String>,
}

impl ControlView {
    fn of(chunk: crate::store::StoredChunk, score: f64, state: &str, decided_by: Option<String>) -> Self {
        Self {
            chunk_id: chunk.id,
            document_id: chunk.document_id,
            title: chunk.title,
            version: chunk.version,
            page: chunk.page,
            heading_path: chunk.heading_path,
            text: chunk.text,
            score,
            state: state.to_owned(),
            decided_by,
        }
    }
}

/// A word of a version diff, with whether it was removed, added or kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct DiffPart {
    /// kept, added or removed.
    pub kind: &'static str,
    pub text: String,
}

/// An obligation with the regulation text around its span, the diff against the previous
/// version, its decided controls and fresh suggestions.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ObligationDetail {
    pub obligation: ObligationView,
    /// Chunk text before and after the span.
    pub before: String,
    pub after: String,
    /// Word diff of the previous version's text against this one (changed obligations).
    pub diff: Vec<DiffPart>,
    /// Confirmed and rejected controls whose passages the reader may read.
    pub controls: Vec<ControlView>,
    /// The best policy passages the reader may read that are not decided yet.
    pub suggestions: Vec<ControlView>,
}

/// Counts over the register as one reader sees it.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct Summary {
    pub total: usize,
    pub by_status: BTreeMap<String, usize>,
    pub by_change: BTreeMap<String, usize>,
    pub gaps: usize,
    /// Accepted obligations waiting for a reviewer.
    pub awaiting_review: usize,
    pub tracked_actions: usize,
}

/// A review decision.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Transition {
    /// accepted, not_applicable, approved or proposed.
    pub to: String,
    /// Required to set aside (not_applicable) or to send back (proposed).
    pub reason: Option<String>,
    /// Required to approve: who carries out the action.
    pub owner: Option<String>,
    /// Required to approve.
    pub due_date: Option<chrono::NaiveDate>,
}

/// What `lexgate obligations extract` did for one version.
#[derive(Debug, Clone, Serialize)]
pub struct Extracted {
    pub document_id: String,
    pub version: u32,
    pub obligations: usize,
    pub by_change: BTreeMap<String, usize>,
    pub seconds: f64,
    /// Already had obligations: left as they are.
    pub skipped: bool,
}

/// The obligation register, for analysts and reviewers. Every read and change is decided here
/// against the version's access metadata: an obligation is visible only to readers of its
/// regulation.
#[derive(Debug, Clone)]
pub struct Register {
    storage: Storage,
    retriever: Retriever,
    detector: Arc<dyn ObligationDetector>,
    data_card_gate: bool,
}

/// Whether `actor` may read a version with this access metadata, whatever its dates: the
/// register shows obligations before they apply and after a version is superseded.
fn may_read(actor: &Actor, acl: &indexer::ChunkAcl) -> bool {
    acl.tenant == actor.tenant
        && acl.status == indexer::SourceStatus::Approved
        && acl.classification <= actor.clearance
        && acl.allowed_groups.iter().any(|g| actor.groups.contains(g))
}

fn reason_text(reason: Option<&str>) -> Option<String> {
    reason.map(str::trim).filter(|r| !r.is_empty()).map(|r| r.chars().take(1000).collect())
}

/// Words removed from `old` and added in `new`, in order (a longest-common-subsequence diff;
/// texts beyond 400 words each are compared as a whole).
pub fn word_diff(old: &str, new: &str) -> Vec<DiffPart> {
    let a: Vec<&str> = old.split_whitespace().collect();
    let b: Vec<&str> = new.split_whitespace().collect();
    if a.len() > 400 || b.len() > 400 {
        return vec![
            DiffPart { kind: "removed", text: old.to_owned() },
            DiffPart { kind: "added", text: new.to_owned() },
        ];
    }
    let mut lcs = vec![vec![0u16; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] { lcs[i + 1][j + 1] + 1 } else { lcs[i + 1][j].max(lcs[i][j + 1]) };
        }
    }
    let mut out: Vec<DiffPart> = Vec::new();
    let mut push = |kind: &'static str, word: &str| match out.last_mut() {
        Some(last) if last.kind == kind => {
            last.text.push(' ');
            last.text.push_str(word);
        }
        _ => out.push(DiffPart { kind, text: word.to_owned() }),
    };
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            push("kept", a[i]);
            i += 1;
            j += 1;
        } else if j < b.len() && (i == a.len() || lcs[i][j + 1] >= lcs[i + 1][j]) {
            push("added", b[j]);
            j += 1;
        } else {
            push("removed", a[i]);
            i += 1;
        }
    }
    out
}

/// Quotes a CSV field, and keeps a spreadsheet from reading it as a formula.
fn csv_field(value: &str) -> String {
    let value =
        if value.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{value}") } else { value.to_owned() };
    format!("\"{}\"", value.replace('"', "\"\""))
}

impl Register {
    pub fn new(
        storage: Storage,
        retriever: Retriever,
        detector: Arc<dyn ObligationDetector>,
        data_card_gate: bool,
    ) -> Self {
        Self { storage, retriever, detector, data_card_gate }
    }

    async fn audit(&self, actor: &Actor, action: &str, outcome: &str, detail: serde_json::Value) -> Result<()> {
        self.storage.append_audit(AuditRecord::by(actor, action, outcome, detail)).await
    }

    /// Analysts, reviewers (and their service tokens with the matching scope) use the register.
    async fn authorize_read(&self, actor: &Actor) -> Result<()> {
        let allowed = match actor.role {
            Role::Analyst => actor.may(Permission::Ask),
            Role::Reviewer => actor.may(Permission::ReadGovernance),
            Role::Admin => false,
        };
        if !allowed {
            self.audit(actor, "read_obligations", "denied", serde_json::json!({ "role": actor.role })).await?;
            return Err(Error::Forbidden);
        }
        // The register quotes the tenant's documents: withheld, like answers, while their data
        // card is not approved.
        if self.data_card_gate && !self.storage.data_card_approved(actor.tenant.as_str()).await? {
            return Err(Error::user(super::ask::DATA_CARD_BLOCKED));
        }
        Ok(())
    }

    /// The register rows `actor` may see, as views, with each version's title. A row is visible
    /// when the actor may read its version and the version of the passage it quotes (a removed
    /// obligation quotes the previous version); the previous text of a changed one only when the
    /// actor may read the version before it too.
    async fn views(&self, actor: &Actor, rows: Vec<ObligationRow>) -> Result<Vec<ObligationView>> {
        // Per document: each version's number, title and whether the actor may read it.
        let mut versions: HashMap<String, Vec<(i32, String, bool)>> = HashMap::new();
        for row in &rows {
            if !versions.contains_key(&row.document_id) {
                let mut list = Vec::new();
                for v in self.storage.versions(&row.document_id).await? {
                    let number = u32::try_from(v.version).unwrap_or(0);
                    let readable =
                        self.storage.version_acl(&row.document_id, number).await?.is_some_and(|a| may_read(actor, &a));
                    list.push((v.version, v.title, readable));
                }
                versions.insert(row.document_id.clone(), list);
            }
        }
        let readable = |document: &str, version: i32| {
            versions.get(document).and_then(|l| l.iter().find(|v| v.0 == version)).filter(|v| v.2).map(|v| v.1.clone())
        };
        let previous_readable = |document: &str, version: i32| {
            versions
                .get(document)
                .and_then(|l| l.iter().filter(|v| v.0 < version).max_by_key(|v| v.0))
                .is_some_and(|v| v.2)
        };
        let mut visible = Vec::new();
        for mut row in rows {
            let Some(title) = readable(&row.document_id, row.version) else { continue };
            if !previous_readable(&row.document_id, row.version) {
                row.previous_text = None;
            }
            visible.push((row, title));
        }
        let ids: Vec<String> =
            visible.iter().map(|(r, _)| r.chunk_id.clone()).collect::<BTreeSet<_>>().into_iter().collect();
        let mut chunks: HashMap<String, String> = HashMap::new();
        for slice in ids.chunks(500) {
            for c in self.storage.chunks_by_ids(slice).await? {
                if may_read(actor, &c.acl) {
                    chunks.insert(c.id, c.text);
                }
            }
        }
        // A row whose passage the actor may not read (or that is gone) is not shown.
        visible.retain(|(r, _)| chunks.contains_key(&r.chunk_id));
        let confirmed = self.storage.confirmed_controls(Some(&actor.tenant)).await?;
        Ok(visible
            .into_iter()
            .map(|(r, title)| {
                let (start, end) =
                    (usize::try_from(r.span_start).unwrap_or(0), usize::try_from(r.span_end).unwrap_or(0));
                let span_verified = chunks.get(&r.chunk_id).and_then(|t| t.get(start..end)) == Some(r.text.as_str());
                let controls_confirmed = confirmed.get(r.id.as_str()).copied().unwrap_or(0);
                ObligationView {
                    gap: is_gap(&r.status, controls_confirmed),
                    tracked_action: r.status == APPROVED && r.owner.is_some() && r.due_date.is_some(),
                    controls_confirmed,
                    id: r.id,
                    key: r.obligation_key,
                    document_id: r.document_id,
                    title,
                    version: u32::try_from(r.version).unwrap_or(0),
                    page: u32::try_from(r.page).unwrap_or(0),
                    heading_path: r.heading_path,
                    chunk_id: r.chunk_id,
                    start,
                    end,
                    text: r.text,
                    span_verified,
                    addressee: r.addressee,
                    modality: r.modality,
                    action: r.action,
                    timing: r.timing,
                    timing_iso: r.timing_iso,
                    conditions: r.conditions,
                    change: r.change,
                    previous_text: r.previous_text,
                    status: r.status,
                    status_reason: r.status_reason,
                    owner: r.owner,
                    due_date: r.due_date,
                }
            })
            .collect())
    }

    /// The current register (each regulation's latest version with obligations) as `actor`
    /// sees it, filtered, with counts over what the filter kept.
    pub async fn list(&self, actor: &Actor, filter: &Filter) -> Result<(Vec<ObligationView>, Summary)> {
        let (rows, summary, _) = self.page(actor, filter).await?;
        Ok((rows, summary))
    }

    /// [`Self::list`], with the regulations of the whole register the actor may see (id, title)
    /// for the page's filter.
    pub async fn page(
        &self,
        actor: &Actor,
        filter: &Filter,
    ) -> Result<(Vec<ObligationView>, Summary, Vec<(String, String)>)> {
        self.authorize_read(actor).await?;
        let rows = self.storage.current_obligations(Some(&actor.tenant)).await?;
        let views = self.views(actor, rows).await?;
        let mut regulations: Vec<(String, String)> =
            views.iter().map(|o| (o.document_id.clone(), o.title.clone())).collect();
        regulations.dedup();
        let kept: Vec<ObligationView> = views.into_iter().filter(|v| filter.keeps(v)).collect();
        let summary = summarise(&kept);
        Ok((kept, summary, regulations))
    }

    /// Accepted obligations waiting for a reviewer's approval (reviewers).
    pub async fn queue(&self, actor: &Actor) -> Result<Vec<ObligationView>> {
        let filter = Filter { status: Some(ACCEPTED.to_owned()), ..Filter::default() };
        Ok(self.list(actor, &filter).await?.0)
    }

    /// Tracked actions: approved obligations with their owner and due date, soonest first.
    pub async fn actions(&self, actor: &Actor) -> Result<Vec<ObligationView>> {
        let (mut approved, _) =
            self.list(actor, &Filter { status: Some(APPROVED.to_owned()), ..Filter::default() }).await?;
        approved.retain(|v| v.tracked_action);
        approved.sort_by_key(|v| v.due_date);
        Ok(approved)
    }

    async fn visible(&self, actor: &Actor, id: &str) -> Result<ObligationView> {
        let row = self.storage.obligation(id).await?.filter(|r| r.tenant_id == actor.tenant.as_str());
        // Another tenant's obligation and one the actor may not read are both "not found".
        let row = row.ok_or(Error::NotFound)?;
        self.views(actor, vec![row]).await?.pop().ok_or(Error::NotFound)
    }

    /// One obligation with its context, diff, decided controls and suggestions.
    pub async fn detail(&self, actor: &Actor, id: &str) -> Result<ObligationDetail> {
        self.authorize_read(actor).await?;
        let obligation = self.visible(actor, id).await?;
        let chunk = self.storage.chunks_by_ids(std::slice::from_ref(&obligation.chunk_id)).await?.pop();
        let (before, after) = match &chunk {
            Some(c) if obligation.span_verified => {
                (c.text[..obligation.start].to_owned(), c.text[obligation.end..].to_owned())
            }
            _ => (String::new(), String::new()),
        };
        let diff = match &obligation.previous_text {
            Some(previous) if obligation.change == "changed" => word_diff(previous, &obligation.text),
            _ => Vec::new(),
        };
        let decided = self.storage.obligation_controls(id).await?;
        let controls = self.readable_controls(actor, &decided).await?;
        let decided_ids: HashSet<&str> = decided.iter().map(|c| c.chunk_id.as_str()).collect();
        let suggestions = if obligation.change == "removed" {
            Vec::new()
        } else {
            self.suggest(actor, &obligation)
                .await?
                .into_iter()
                .filter(|s| !decided_ids.contains(s.chunk_id.as_str()))
                .collect()
        };
        Ok(ObligationDetail { obligation, before, after, diff, controls, suggestions })
    }

    /// Decided controls whose passages the actor may read now.
    async fn readable_controls(&self, actor: &Actor, decided: &[ControlRow]) -> Result<Vec<ControlView>> {
        let ids: Vec<String> = decided.iter().map(|c| c.chunk_id.clone()).collect();
        let mut chunks: HashMap<String, crate::store::StoredChunk> =
            self.storage.chunks_by_ids(&ids).await?.into_iter().map(|c| (c.id.clone(), c)).collect();
        Ok(decided
            .iter()
            .filter_map(|c| {
                let chunk = chunks.remove(&c.chunk_id).filter(|ch| may_read(actor, &ch.acl))?;
                Some(ControlView::of(chunk, c.score, &c.state, c.decided_by.clone()))
            })
            .collect())
    }

    /// The best passages of the tenant's policies for an obligation, searched as `actor`: the
    /// search itself is restricted to policy documents and to what the actor may read.
    async fn suggest(&self, actor: &Actor, obligation: &ObligationView) -> Result<Vec<ControlView>> {
        let policies: BTreeSet<String> =
            self.storage.documents_of_kind(&actor.tenant, DocumentKind::Policy).await?.into_iter().collect();
        if policies.is_empty() {
            return Ok(Vec::new());
        }
        let mut reader = actor.reader(crate::domain::today());
        reader.documents = Some(policies.clone());
        let method = if self.retriever.has_dense() { indexer::Method::Hybrid } else { indexer::Method::Bm25 };
        let query =
            if obligation.action.split_whitespace().count() >= 4 { &obligation.action } else { &obligation.text };
        let found = super::ask::retrieve_checked(
            &self.storage,
            &self.retriever,
            &reader,
            query,
            method,
            3,
            self.data_card_gate,
        )
        .await?;
        Ok(found
            .passages
            .into_iter()
            .filter(|p| policies.contains(&p.chunk.document_id))
            .map(|p| {
                let score = f64::from(p.scores.rerank.map_or(p.scores.fused, |r| r.score));
                ControlView::of(p.chunk, score, "suggested", None)
            })
            .collect())
    }

    /// Moves an obligation to another review state, with the audit event in the same
    /// transaction. Refusals are audited too.
    pub async fn transition(&self, actor: &Actor, id: &str, t: &Transition) -> Result<ObligationView> {
        self.authorize_read(actor).await?;
        let current = self.visible(actor, id).await?;
        let detail = |outcome_reason: &str| {
            serde_json::json!({
                "obligation": current.id, "document": current.document_id, "version": current.version,
                "key": current.key, "from": current.status, "to": t.to, "refused": outcome_reason,
            })
        };
        if !transition_allowed(actor.role, &current.status, &t.to) {
            self.audit(actor, "obligation_status", "denied", detail("not allowed for this role and state")).await?;
            return Err(if [PROPOSED, ACCEPTED, NOT_APPLICABLE, APPROVED].contains(&t.to.as_str()) {
                Error::user(format!("A {} cannot move an obligation from {} to {}.", actor.role, current.status, t.to))
            } else {
                Error::user(format!(
                    "Unknown status '{}' (expected accepted, not_applicable, approved or proposed).",
                    t.to
                ))
            });
        }
        let reason = reason_text(t.reason.as_deref());
        if reason.is_none() && (t.to == NOT_APPLICABLE || t.to == PROPOSED) {
            return Err(Error::user("Give a reason: it is kept in the audit trail."));
        }
        let owner_and_due = if t.to == APPROVED {
            let owner = t.owner.as_deref().map(str::trim).filter(|o| !o.is_empty() && o.chars().count() <= 200);
            let (Some(owner), Some(due)) = (owner, t.due_date) else {
                return Err(Error::user("Approving makes a tracked action: give its owner and due date."));
            };
            if due < crate::domain::today() {
                return Err(Error::user("The due date is in the past."));
            }
            Some((owner.to_owned(), due))
        } else {
            None
        };
        let record = AuditRecord::by(
            actor,
            "obligation_status",
            "succeeded",
            serde_json::json!({
                "obligation": current.id, "document": current.document_id, "version": current.version,
                "key": current.key, "from": current.status, "to": t.to, "reason": reason,
                "owner": owner_and_due.as_ref().map(|(o, _)| o), "due_date": owner_and_due.as_ref().map(|(_, d)| d),
            }),
        );
        let changed =
            self.storage.set_obligation_status(id, &current.status, &t.to, reason, owner_and_due, record).await?;
        if !changed {
            return Err(Error::user("The obligation changed meanwhile; reload it and decide again."));
        }
        self.visible(actor, id).await
    }

    /// Confirms or rejects a policy passage as a control of an obligation (analysts). The
    /// passage must be one the analyst may read, of a policy of the tenant.
    pub async fn decide_control(&self, actor: &Actor, id: &str, chunk_id: &str, confirm: bool) -> Result<()> {
        self.authorize_read(actor).await?;
        let obligation = self.visible(actor, id).await?;
        let state = if confirm { crate::store::obligations::CONFIRMED } else { "rejected" };
        let detail = serde_json::json!({ "obligation": obligation.id, "chunk": chunk_id, "decision": state });
        if actor.role != Role::Analyst || obligation.change == "removed" {
            self.audit(actor, "obligation_control", "denied", detail).await?;
            return Err(Error::Forbidden);
        }
        let chunk = self.storage.chunks_by_ids(&[chunk_id.to_owned()]).await?.pop();
        let policies = self.storage.documents_of_kind(&actor.tenant, DocumentKind::Policy).await?;
        let Some(chunk) = chunk.filter(|c| may_read(actor, &c.acl) && policies.contains(&c.document_id)) else {
            return Err(Error::NotFound);
        };
        // The score the passage has as a suggestion now (suggestions are not stored); a passage
        // decided again keeps its recorded score, and one that is no longer suggested scores 0.
        let recorded = self.storage.obligation_controls(id).await?.into_iter().find(|c| c.chunk_id == chunk_id);
        let score = match recorded {
            Some(c) => c.score,
            None => self
                .suggest(actor, &obligation)
                .await?
                .into_iter()
                .find(|s| s.chunk_id == chunk_id)
                .map_or(0.0, |s| s.score),
        };
        let record = AuditRecord::by(actor, "obligation_control", "succeeded", detail);
        self.storage
            .decide_control(id, &chunk.id, &chunk.document_id, chunk.version, score, state, &actor.principal_id, record)
            .await
    }

    /// The register as CSV: one row per obligation, with its citation.
    pub async fn export_csv(&self, actor: &Actor, filter: &Filter) -> Result<String> {
        let (rows, _) = self.list(actor, filter).await?;
        let mut out = String::from(
            "id,key,document,title,version,page,heading_path,status,modality,addressee,action,timing,timing_iso,conditions,change,owner,due_date,gap,text,citation\n",
        );
        for v in &rows {
            let fields = [
                v.id.clone(),
                v.key.clone(),
                v.document_id.clone(),
                v.title.clone(),
                v.version.to_string(),
                v.page.to_string(),
                v.heading_path.clone(),
                v.status.clone(),
                v.modality.clone(),
                v.addressee.clone(),
                v.action.clone(),
                v.timing.clone().unwrap_or_default(),
                v.timing_iso.clone().unwrap_or_default(),
                v.conditions.clone().unwrap_or_default(),
                v.change.clone(),
                v.owner.clone().unwrap_or_default(),
                v.due_date.map(|d| d.to_string()).unwrap_or_default(),
                v.gap.to_string(),
                v.text.clone(),
                format!(
                    "{} v{}, page {}, {} [{}..{}] of chunk {}",
                    v.document_id, v.version, v.page, v.heading_path, v.start, v.end, v.chunk_id
                ),
            ];
            out.push_str(&fields.iter().map(|f| csv_field(f)).collect::<Vec<_>>().join(","));
            out.push('\n');
        }
        self.audit(
            actor,
            "export_obligations",
            "succeeded",
            serde_json::json!({ "format": "csv", "rows": rows.len() }),
        )
        .await?;
        Ok(out)
    }

    /// The register as JSON, with counts.
    pub async fn export_json(&self, actor: &Actor, filter: &Filter) -> Result<serde_json::Value> {
        let (rows, summary) = self.list(actor, filter).await?;
        self.audit(
            actor,
            "export_obligations",
            "succeeded",
            serde_json::json!({ "format": "json", "rows": rows.len() }),
        )
        .await?;
        Ok(serde_json::json!({ "summary": summary, "obligations": rows }))
    }

    /// Extracts the obligations of every stored version of a document that has none yet, in
    /// version order (each compared with the one before), and marks the document a regulation.
    /// The operator's `lexgate obligations extract`.
    pub async fn extract_stored(&self, document_id: &str, requested_by: &str) -> Result<Vec<Extracted>> {
        let document = self.storage.document(document_id).await?.ok_or(Error::NotFound)?;
        self.storage.set_document_kind(document_id, DocumentKind::Regulation).await?;
        let mut versions = self.storage.versions(document_id).await?;
        versions.sort_by_key(|v| v.version);
        let mut out = Vec::new();
        for v in versions {
            let version = u32::try_from(v.version).unwrap_or(0);
            let started = std::time::Instant::now();
            if !self.storage.version_obligations(document_id, version).await?.is_empty() {
                out.push(Extracted {
                    document_id: document_id.to_owned(),
                    version,
                    obligations: 0,
                    by_change: BTreeMap::new(),
                    seconds: 0.0,
                    skipped: true,
                });
                continue;
            }
            let chunks: Vec<indexer::Chunk> = self
                .storage
                .version_chunks(document_id, version)
                .await?
                .into_iter()
                .enumerate()
                .map(|(i, c)| indexer::Chunk {
                    id: c.id,
                    ordinal: u32::try_from(i).unwrap_or(u32::MAX),
                    page: c.page,
                    char_start: c.char_start,
                    char_end: c.char_end,
                    heading_path: c.heading_path,
                    text: c.text,
                })
                .collect();
            let found = extract_version(&self.storage, &self.detector, document_id, version, chunks).await?;
            let mut by_change = BTreeMap::new();
            for o in &found {
                *by_change.entry(o.change.clone()).or_insert(0) += 1;
            }
            self.storage.insert_obligations(document_id, version, &document.tenant_id, &found).await?;
            self.storage
                .append_audit(AuditRecord {
                    actor: requested_by.to_owned(),
                    tenant: Some(document.tenant_id.clone()),
                    action: "extract_obligations".to_owned(),
                    outcome: "succeeded".to_owned(),
                    detail: serde_json::json!({
                        "document": document_id, "version": version, "obligations": found.len(),
                        "by_change": by_change, "detector": self.detector.model_id(),
                    }),
                })
                .await?;
            out.push(Extracted {
                document_id: document_id.to_owned(),
                version,
                obligations: found.len(),
                by_change,
                seconds: started.elapsed().as_secs_f64(),
                skipped: false,
            });
        }
        Ok(out)
    }
}

/// Counts of a list of obligations.
pub fn summarise(views: &[ObligationView]) -> Summary {
    let mut s = Summary { total: views.len(), ..Summary::default() };
    for v in views {
        *s.by_status.entry(v.status.clone()).or_default() += 1;
        *s.by_change.entry(v.change.clone()).or_default() += 1;
        s.gaps += usize::from(v.gap);
        s.awaiting_review += usize::from(v.status == ACCEPTED);
        s.tracked_actions += usize::from(v.tracked_action);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_review_path_is_open_to_each_role() {
        assert!(transition_allowed(Role::Analyst, PROPOSED, ACCEPTED));
        assert!(!transition_allowed(Role::Analyst, ACCEPTED, APPROVED), "an analyst never approves");
        assert!(!transition_allowed(Role::Reviewer, PROPOSED, APPROVED), "approval needs an acceptance first");
        assert!(transition_allowed(Role::Reviewer, ACCEPTED, APPROVED));
        assert!(!transition_allowed(Role::Admin, PROPOSED, ACCEPTED));
        assert!(!transition_allowed(Role::Reviewer, REMOVED, APPROVED));
    }

    #[test]
    fn a_numbered_line_starts_a_new_provision() {
        let text =
            "Article 3 Reporting\n1. Entities shall notify within 4 hours.\n2. Entities shall report within 72 hours.";
        let parts: Vec<&str> = provisions(text).into_iter().map(|(s, e)| &text[s..e]).collect();
        assert_eq!(
            parts,
            [
                "Article 3 Reporting",
                "1. Entities shall notify within 4 hours.",
                "2. Entities shall report within 72 hours."
            ]
        );
    }

    fn chunk(ordinal: u32, heading_path: &str, text: &str) -> indexer::Chunk {
        indexer::Chunk {
            id: format!("c{ordinal}"),
            ordinal,
            page: 1,
            char_start: 0,
            char_end: 0,
            heading_path: heading_path.into(),
            text: text.into(),
        }
    }

    #[test]
    fn recitals_of_an_act_with_articles_give_no_obligations() -> Result<()> {
        let recital = chunk(
            0,
            "(38)",
            "(38) Larger financial entities should be required to establish more complex arrangements.",
        );
        let article = chunk(
            1,
            "Article 6 > 4",
            "4. Financial entities shall ensure the segregation of ICT risk management functions.",
        );
        let found = extract("act", &[recital.clone(), article], &indexer::RuleDetector, &[])?;
        assert_eq!(found.iter().map(|o| o.chunk_id.as_str()).collect::<Vec<_>>(), ["c1"]);
        // Without articles a "(38)" heading is just a numbered paragraph, and it is read.
        assert_eq!(extract("act", &[recital], &indexer::RuleDetector, &[])?.len(), 1);
        Ok(())
    }

    #[test]
    fn a_word_diff_marks_what_changed() {
        let parts = word_diff("report within 4 hours to the authority", "report within 24 hours to the authority");
        let kinds: Vec<(&str, &str)> = parts.iter().map(|p| (p.kind, p.text.as_str())).collect();
        assert_eq!(
            kinds,
            [("kept", "report within"), ("added", "24"), ("removed", "4"), ("kept", "hours to the authority")]
        );
        assert_eq!(csv_field("=cmd|x"), "\"'=cmd|x\"");
        assert_eq!(csv_field("a \"b\""), "\"a \"\"b\"\"\"");
    }

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
