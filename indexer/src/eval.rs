//! Retrieval evaluation: ranking metrics and the ObliQA benchmark loader. The evaluation runs
//! questions through the same [`Retriever`] the application uses.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, UserError};

/// Metrics of one ranked list against its relevant set, cut at `k`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Metrics {
    pub recall: f64,
    pub average_precision: f64,
    pub ndcg: f64,
    pub reciprocal_rank: f64,
}

/// Scores `ranked` (best first) against `relevant` at cut-off `k`, with binary relevance.
/// Average precision divides by the number of relevant items (as trec_eval's map_cut does).
pub fn score(ranked: &[String], relevant: &BTreeSet<String>, k: usize) -> Metrics {
    if relevant.is_empty() {
        return Metrics::default();
    }
    let mut hits = 0usize;
    let mut precision_sum = 0.0;
    let mut dcg = 0.0;
    let mut reciprocal_rank = 0.0;
    for (i, id) in ranked.iter().take(k).enumerate() {
        if relevant.contains(id) {
            hits += 1;
            precision_sum += hits as f64 / (i + 1) as f64;
            dcg += 1.0 / ((i + 2) as f64).log2();
            if reciprocal_rank == 0.0 {
                reciprocal_rank = 1.0 / (i + 1) as f64;
            }
        }
    }
    let ideal: f64 = (0..relevant.len().min(k)).map(|i| 1.0 / ((i + 2) as f64).log2()).sum();
    Metrics {
        recall: hits as f64 / relevant.len() as f64,
        average_precision: precision_sum / relevant.len() as f64,
        ndcg: if ideal > 0.0 { dcg / ideal } else { 0.0 },
        reciprocal_rank,
    }
}

/// Mean of per-question metrics.
pub fn mean(all: &[Metrics]) -> Metrics {
    let n = all.len().max(1) as f64;
    Metrics {
        recall: all.iter().map(|m| m.recall).sum::<f64>() / n,
        average_precision: all.iter().map(|m| m.average_precision).sum::<f64>() / n,
        ndcg: all.iter().map(|m| m.ndcg).sum::<f64>() / n,
        reciprocal_rank: all.iter().map(|m| m.reciprocal_rank).sum::<f64>() / n,
    }
}

/// One ObliQA passage; `id` is the passage's uuid.
#[derive(Debug, Clone, Deserialize)]
pub struct ObliqaPassage {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "DocumentID")]
    pub document_id: i64,
    #[serde(rename = "PassageID")]
    pub passage_id: String,
    #[serde(rename = "Passage")]
    pub text: String,
    /// The texts of the passage's heading ancestors, outermost first (`INTRODUCTION >
    /// Jurisdiction`), from the numbering of `passage_id`.
    #[serde(skip)]
    pub heading_path: String,
    /// The document's names from the corpus's `DocumentMap.rtf`, when it is there.
    #[serde(skip)]
    pub title: String,
}

#[derive(Debug, Deserialize)]
struct RawGold {
    #[serde(rename = "ID")]
    id: Option<String>,
    #[serde(rename = "DocumentID")]
    document_id: i64,
    #[serde(rename = "PassageID")]
    passage_id: String,
    #[serde(rename = "Passage", default)]
    text: String,
}

#[derive(Debug, Deserialize)]
struct RawQuestion {
    #[serde(rename = "QuestionID")]
    id: String,
    #[serde(rename = "Question")]
    question: String,
    #[serde(rename = "Passages", default)]
    passages: Vec<RawGold>,
}

/// A question with the uuids of its relevant passages.
#[derive(Debug, Clone)]
pub struct ObliqaQuestion {
    pub id: String,
    pub question: String,
    pub relevant: BTreeSet<String>,
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| UserError::InvalidValue {
        field: "path",
        reason: format!("cannot read {}: {e}", path.display()),
    })?;
    serde_json::from_str(&text)
        .map_err(|e| UserError::InvalidValue { field: "json", reason: format!("{}: {e}", path.display()) }.into())
}

/// Reads every `*.json` passage file of an ObliQA `StructuredRegulatoryDocuments` folder.
pub fn load_passages(dir: &Path) -> Result<Vec<ObliqaPassage>> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| UserError::InvalidValue { field: "corpus", reason: format!("{}: {e}", dir.display()) })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        out.extend(read_json::<Vec<ObliqaPassage>>(&f)?);
    }
    if out.is_empty() {
        return Err(
            UserError::InvalidValue { field: "corpus", reason: format!("no passages in {}", dir.display()) }.into()
        );
    }
    let titles = match dir.parent().map(|d| d.join("DocumentMap.rtf")) {
        Some(map) if map.is_file() => {
            document_titles(&std::fs::read_to_string(&map).map_err(|e| Error::internal("reading DocumentMap.rtf", e))?)
        }
        _ => BTreeMap::new(),
    };
    add_context(&mut out, &titles);
    Ok(out)
}

/// Headings longer than this are lead-in paragraphs, not headings.
const MAX_HEADING_CHARS: usize = 100;

/// Fills each passage's heading path from its ancestors by numbering (`1.1.1.(1)` has the
/// ancestors `1`, `1.1` and `1.1.1`, each also written with a trailing dot) and its title.
fn add_context(passages: &mut [ObliqaPassage], titles: &BTreeMap<i64, String>) {
    let texts: HashMap<(i64, String), String> = passages
        .iter()
        .map(|p| ((p.document_id, p.passage_id.trim_end_matches('.').to_owned()), p.text.trim().to_owned()))
        .collect();
    for p in passages.iter_mut() {
        let parts: Vec<&str> = p.passage_id.split('.').filter(|s| !s.is_empty()).collect();
        let headings: Vec<&str> = (1..parts.len())
            .filter_map(|n| texts.get(&(p.document_id, parts[..n].join("."))))
            .map(String::as_str)
            .filter(|t| !t.is_empty() && !t.contains('\n') && t.chars().count() <= MAX_HEADING_CHARS)
            .collect();
        p.heading_path = headings.join(" > ");
        p.title = titles.get(&p.document_id).cloned().unwrap_or_default();
    }
}

/// Document id -> names, from ObliQA's `DocumentMap.rtf`: a Python dict literal inside RTF,
/// `1: ["AML_VER09.211223", "AML", "Anti-Money Laundering ..."]`. The first name is a file
/// version and is left out; repeated names (ignoring case) are kept once.
fn document_titles(rtf: &str) -> BTreeMap<i64, String> {
    let mut out = BTreeMap::new();
    let mut current: Option<(i64, Vec<String>)> = None;
    for line in rtf.lines() {
        let line = line.trim().trim_end_matches('\\').trim();
        if let Some(id) = line.strip_suffix(": [").and_then(|n| n.trim().parse::<i64>().ok()) {
            current = Some((id, Vec::new()));
        } else if let Some((_, names)) = current.as_mut()
            && let Some(name) = line.trim_end_matches(',').strip_prefix('"').and_then(|n| n.strip_suffix('"'))
        {
            names.push(name.to_owned());
        } else if line.starts_with(']')
            && let Some((id, names)) = current.take()
        {
            let mut kept: Vec<String> = Vec::new();
            for name in names.into_iter().skip(1) {
                if !kept.iter().any(|k| k.eq_ignore_ascii_case(&name)) {
                    kept.push(name);
                }
            }
            out.insert(id, kept.join(" / "));
        }
    }
    out
}

/// Reads questions. Relevance comes from TREC qrels when given, else from each question's gold
/// passages: their uuid when present, otherwise DocumentID + PassageID, with repeated keys told
/// apart by passage text.
pub fn load_questions(path: &Path, passages: &[ObliqaPassage], qrels: Option<&Path>) -> Result<Vec<ObliqaQuestion>> {
    let raw: Vec<RawQuestion> = read_json(path)?;
    let mut by_key: HashMap<(i64, &str), Vec<&ObliqaPassage>> = HashMap::new();
    for p in passages {
        by_key.entry((p.document_id, p.passage_id.as_str())).or_default().push(p);
    }
    let qrels_map = match qrels {
        Some(q) => Some(read_qrels(q)?),
        None => None,
    };
    let mut out = Vec::with_capacity(raw.len());
    for q in raw {
        let relevant: BTreeSet<String> = match &qrels_map {
            Some(map) => map.get(&q.id).cloned().unwrap_or_default(),
            None => q
                .passages
                .iter()
                .flat_map(|g| -> Vec<String> {
                    if let Some(id) = &g.id {
                        return vec![id.clone()];
                    }
                    let candidates = by_key.get(&(g.document_id, g.passage_id.as_str())).cloned().unwrap_or_default();
                    let exact: Vec<String> =
                        candidates.iter().filter(|p| p.text.trim() == g.text.trim()).map(|p| p.id.clone()).collect();
                    if exact.is_empty() { candidates.iter().map(|p| p.id.clone()).collect() } else { exact }
                })
                .collect(),
        };
        if !relevant.is_empty() {
            out.push(ObliqaQuestion { id: q.id, question: q.question, relevant });
        }
    }
    Ok(out)
}

/// The reranker's locked split of ObliQA dev questions, by question id: a question is in the
/// validation split when the first eight bytes of `sha256("lexgate-reranker-split-v1:" + id)`,
/// read as a big-endian integer, are 0 modulo 5 (about 20%). The training script
/// (`split_of` in `training/reranker/common.py`) applies the same rule, so both sides agree without a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    All,
    Train,
    Validation,
}

impl Split {
    /// Whether question `id` belongs to this split.
    pub fn contains(self, id: &str) -> bool {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(format!("lexgate-reranker-split-v1:{id}").as_bytes());
        let head = u64::from_be_bytes(digest[..8].try_into().unwrap_or([0; 8]));
        match self {
            Split::All => true,
            Split::Validation => head % 5 == 0,
            Split::Train => head % 5 != 0,
        }
    }
}

impl std::str::FromStr for Split {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "all" => Ok(Split::All),
            "train" => Ok(Split::Train),
            "validation" => Ok(Split::Validation),
            other => Err(UserError::InvalidValue {
                field: "split",
                reason: format!("'{other}' (expected all, train or validation)"),
            }
            .into()),
        }
    }
}

/// One question's first-stage candidates, for mining a reranker's hard negatives.
#[derive(Debug, Serialize)]
pub struct Candidates<'a> {
    pub id: &'a str,
    pub question: &'a str,
    pub relevant: &'a BTreeSet<String>,
    /// Passage uuids, best first, as `method` ranks them.
    pub candidates: Vec<String>,
    /// Their first-stage (fused) scores.
    pub scores: Vec<f32>,
}

/// The first-stage hits of one question; a question with no indexable words retrieves nothing
/// (and still counts in the metrics).
fn search_or_nothing(
    retriever: &crate::Retriever,
    reader: &crate::Reader,
    question: &str,
    method: crate::Method,
    depth: usize,
) -> Result<Vec<crate::RetrievedHit>> {
    match retriever.search(reader, question, method, depth) {
        Ok(r) => Ok(r.hits),
        Err(Error::User(UserError::EmptyQuery)) => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// Runs every question through `method` and returns its top `depth` passage uuids (no
/// reranking), as JSON lines.
pub fn first_stage_candidates(
    retriever: &crate::Retriever,
    questions: &[ObliqaQuestion],
    method: crate::Method,
    depth: usize,
) -> Result<String> {
    let reader = obliqa_reader()?;
    let mut out = String::new();
    for q in questions {
        let hits = search_or_nothing(retriever, &reader, &q.question, method, depth)?;
        let scores = hits.iter().map(|h| h.fused).collect();
        let candidates = hits.into_iter().map(|h| h.chunk_id).collect();
        let line = Candidates { id: &q.id, question: &q.question, relevant: &q.relevant, candidates, scores };
        out.push_str(&serde_json::to_string(&line).map_err(|e| Error::internal("writing candidates", e))?);
        out.push('\n');
    }
    Ok(out)
}

fn read_qrels(path: &Path) -> Result<HashMap<String, BTreeSet<String>>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::from(UserError::InvalidValue { field: "qrels", reason: format!("{}: {e}", path.display()) })
    })?;
    let mut map: HashMap<String, BTreeSet<String>> = HashMap::new();
    for line in text.lines() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        if let [qid, _, doc, rel] = parts[..]
            && rel.parse::<i32>().is_ok_and(|r| r > 0)
        {
            map.entry(qid.to_owned()).or_default().insert(doc.to_owned());
        }
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn passages_get_their_heading_ancestors_and_document_title() {
        let rtf = concat!(
            "{\\rtf1\\ansi\n\\f0 DOCUMENT_ID_MAP = \\{\\\n",
            "    1: [\\\n",
            "        \"AML_VER09.211223\",\\\n",
            "        \"AML\",\\\n",
            "        \"aml\",\\\n",
            "        \"Anti-Money Laundering Rules\"\\\n",
            "    ],\\\n",
            "}"
        );
        let titles = document_titles(rtf);
        assert_eq!(titles.get(&1).map(String::as_str), Some("AML / Anti-Money Laundering Rules"));
        let passage = |id: &str, text: &str| ObliqaPassage {
            id: id.into(),
            document_id: 1,
            passage_id: id.into(),
            text: text.into(),
            heading_path: String::new(),
            title: String::new(),
        };
        let mut passages = vec![
            passage("1.", "INTRODUCTION"),
            passage("1.1", "Jurisdiction"),
            passage("1.1.1", ""),
            passage("1.1.1.(1)", "The AML Rulebook is made in recognition of the Federal AML Legislation."),
            passage("1.1.1.(1).(a)", "every Relevant Person."),
        ];
        add_context(&mut passages, &titles);
        assert_eq!(passages[3].heading_path, "INTRODUCTION > Jurisdiction", "an empty ancestor is skipped");
        assert_eq!(
            passages[4].heading_path,
            "INTRODUCTION > Jurisdiction > The AML Rulebook is made in recognition of the Federal AML Legislation."
        );
        assert_eq!(passages[0].heading_path, "");
        assert_eq!(passages[4].title, "AML / Anti-Money Laundering Rules");
    }

    #[test]
    fn the_split_is_fixed_and_about_a_fifth() {
        // Pinned values: changing the rule would silently move questions between the splits.
        assert!(Split::Validation.contains("q-3"));
        assert!(Split::Train.contains("q-0"));
        let validation = (0..10_000).filter(|i| Split::Validation.contains(&format!("q-{i}"))).count();
        assert!((1800..2200).contains(&validation), "{validation}");
        assert!(
            (0..100).all(|i| Split::Train.contains(&format!("q-{i}")) != Split::Validation.contains(&format!("q-{i}")))
        );
    }

    #[test]
    fn metrics_match_hand_computed_values() {
        let relevant: BTreeSet<String> = ids(&["a", "c"]).into_iter().collect();
        let m = score(&ids(&["a", "b", "c", "d"]), &relevant, 10);
        assert_eq!(m.recall, 1.0);
        assert!((m.average_precision - (1.0 + 2.0 / 3.0) / 2.0).abs() < 1e-12);
        assert_eq!(m.reciprocal_rank, 1.0);
        let ideal = 1.0 + 1.0 / 3f64.log2();
        assert!((m.ndcg - (1.0 + 1.0 / 4f64.log2()) / ideal).abs() < 1e-12);
        let cut = score(&ids(&["b", "a", "c"]), &relevant, 1);
        assert_eq!((cut.recall, cut.reciprocal_rank), (0.0, 0.0));
    }
}

/// Figures for one retrieval method.
#[derive(Debug, Clone, Serialize)]
pub struct MethodReport {
    /// The method, with the fusion settings for hybrid.
    pub method: String,
    pub questions: usize,
    pub k: usize,
    #[serde(flatten)]
    pub mean: Metrics,
    /// Median and 95th percentile search latency in milliseconds (embedding included).
    pub latency_p50_ms: f64,
    pub latency_p95_ms: f64,
    /// The reranker stage alone (scoring the candidates and reordering them), when it ran:
    /// median and 95th percentile in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rerank_p50_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rerank_p95_ms: Option<f64>,
}

/// The reader every ObliQA passage is visible to: one tenant, one group, public documents.
pub fn obliqa_reader() -> Result<crate::Reader> {
    Ok(crate::Reader {
        tenant: crate::TenantId::parse("obliqa")?,
        groups: [crate::GroupName::parse("all")?].into_iter().collect(),
        clearance: crate::Classification::Public,
        as_of: chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap_or_default(),
        documents: None,
    })
}

fn obliqa_acl() -> Result<crate::ChunkAcl> {
    let r = obliqa_reader()?;
    Ok(crate::ChunkAcl {
        tenant: r.tenant,
        owner: "ADGM".into(),
        classification: crate::Classification::Public,
        allowed_groups: r.groups,
        status: crate::SourceStatus::Approved,
        effective_from: chrono::NaiveDate::from_ymd_opt(2020, 1, 1).unwrap_or_default(),
        expires_at: None,
        retention_class: "benchmark".into(),
    })
}

/// The passages that are indexed, in order: the non-empty ones. The vector cache's key depends
/// on exactly this list.
fn indexed_passages(passages: &[ObliqaPassage]) -> Vec<&ObliqaPassage> {
    passages.iter().filter(|p| !p.text.trim().is_empty()).collect()
}

/// Builds in-memory BM25 and (when an embedder is given) dense indexes over the passages, one
/// passage per chunk with the passage uuid as chunk id. Empty passages are skipped.
pub fn build_obliqa_retriever(
    passages: &[ObliqaPassage],
    embedder: Option<std::sync::Arc<crate::Embedder>>,
    vector_cache: Option<&Path>,
    progress: &mut dyn FnMut(&str, usize, usize),
) -> Result<crate::Retriever> {
    let acl = obliqa_acl()?;
    let kept = indexed_passages(passages);
    let chunks: Vec<crate::Chunk> = kept
        .iter()
        .enumerate()
        .map(|(i, p)| crate::Chunk {
            id: p.id.clone(),
            ordinal: u32::try_from(i).unwrap_or(u32::MAX),
            page: 1,
            char_start: 0,
            char_end: u32::try_from(p.text.chars().count()).unwrap_or(u32::MAX),
            heading_path: p.heading_path.clone(),
            text: p.text.clone(),
        })
        .collect();
    let bm25 = crate::Bm25Index::in_memory()?;
    let doc_ids: Vec<String> = kept.iter().map(|p| p.document_id.to_string()).collect();
    let items: Vec<crate::IndexedChunk<'_>> = chunks
        .iter()
        .zip(&doc_ids)
        .zip(&kept)
        .map(|((c, d), p)| crate::IndexedChunk { chunk: c, document_id: d, title: &p.title, version: 1, acl: &acl })
        .collect();
    bm25.add(&items)?;
    progress("bm25", chunks.len(), chunks.len());

    let dense = match &embedder {
        Some(e) => {
            let texts: Vec<&str> = chunks.iter().map(|c| c.text.as_str()).collect();
            let total = texts.len();
            let vectors = passage_vectors(e, &texts, vector_cache, &mut |done| progress("embed", done, total))?;
            let index = crate::DenseIndex::new(e.dimension(), chunks.len());
            let items: Vec<crate::DenseItem<'_>> = chunks
                .iter()
                .zip(&doc_ids)
                .zip(&vectors)
                .map(|((c, d), v)| crate::DenseItem {
                    chunk_id: &c.id,
                    document_id: d,
                    version: 1,
                    acl: &acl,
                    vector: v,
                })
                .collect();
            index.add(&items)?;
            progress("hnsw", total, total);
            Some(std::sync::Arc::new(index))
        }
        None => None,
    };
    let mut retriever = crate::Retriever::bm25_only(std::sync::Arc::new(bm25));
    retriever.dense = dense;
    retriever.embedder = embedder;
    Ok(retriever)
}

/// Runs every question with `method` and averages the metrics at `k`.
/// Embeds the passages, or loads their vectors from `cache` when it holds vectors of exactly
/// these texts from this model (the key is a hash of both), and writes the cache otherwise.
/// Repeated evaluation runs then skip the embedding, which dominates their time.
fn passage_vectors(
    embedder: &crate::Embedder,
    texts: &[&str],
    cache: Option<&Path>,
    progress: &mut dyn FnMut(usize),
) -> Result<Vec<Vec<f32>>> {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(embedder.model_sha256().as_bytes());
    for t in texts {
        h.update(t.as_bytes());
        h.update([0u8]);
    }
    let key = hex::encode(h.finalize());
    let dim = embedder.dimension();
    if let Some(path) = cache
        && let Ok(bytes) = std::fs::read(path)
        && bytes.len() == 64 + texts.len() * dim * 4
        && bytes[..64] == *key.as_bytes()
    {
        progress(texts.len());
        return Ok(bytes[64..]
            .chunks_exact(dim * 4)
            .map(|row| row.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
            .collect());
    }
    let vectors = embedder.embed_many(texts, 32, progress)?;
    if let Some(path) = cache {
        let mut bytes = Vec::with_capacity(64 + texts.len() * dim * 4);
        bytes.extend_from_slice(key.as_bytes());
        for v in &vectors {
            bytes.extend(v.iter().flat_map(|x| x.to_le_bytes()));
        }
        let tmp = path.with_extension("partial");
        std::fs::write(&tmp, &bytes)
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|e| Error::internal("writing the vector cache", e))?;
    }
    Ok(vectors)
}

pub fn evaluate(
    retriever: &crate::Retriever,
    passages: &[ObliqaPassage],
    questions: &[ObliqaQuestion],
    method: crate::Method,
    k: usize,
    query_vectors: &QueryVectors,
) -> Result<MethodReport> {
    let mut label = match method {
        crate::Method::Hybrid => format!("hybrid ({})", retriever.fusion),
        other => other.as_str().to_owned(),
    };
    let texts: HashMap<&str, &str> = if retriever.reranker.is_some() {
        label.push_str(&format!(" + rerank top {}", retriever.rerank_top));
        passages.iter().map(|p| (p.id.as_str(), p.text.as_str())).collect()
    } else {
        HashMap::new()
    };
    let reader = obliqa_reader()?;
    let mut per_question = Vec::with_capacity(questions.len());
    let mut latencies = Vec::with_capacity(questions.len());
    let mut rerank_latencies = Vec::with_capacity(questions.len());
    for q in questions {
        // Dense and hybrid reuse the question's vector (embedded once per run, when a method first
        // needs it); their latency is the search with it plus the time that embedding took.
        let embedded = match (method, &retriever.embedder) {
            (crate::Method::Dense | crate::Method::Hybrid, Some(embedder)) if !q.question.trim().is_empty() => {
                Some(query_vectors.get(embedder, &q.question)?)
            }
            _ => None,
        };
        let started = std::time::Instant::now();
        let (mut hits, embedding_ms) = match &embedded {
            Some((vector, embed_ms)) => {
                let r =
                    retriever.search_with_query_vector(&reader, &q.question, method, vector, retriever.depth_for(k))?;
                (r.hits, *embed_ms)
            }
            None => (search_or_nothing(retriever, &reader, &q.question, method, retriever.depth_for(k))?, 0.0),
        };
        let reranking = std::time::Instant::now();
        retriever.rerank(&q.question, &mut hits, |id| texts.get(id).copied())?;
        if retriever.reranker.is_some() {
            rerank_latencies.push(reranking.elapsed().as_secs_f64() * 1000.0);
        }
        let ranked: Vec<String> = hits.into_iter().take(k).map(|h| h.chunk_id).collect();
        latencies.push(started.elapsed().as_secs_f64() * 1000.0 + embedding_ms);
        per_question.push(score(&ranked, &q.relevant, k));
    }
    let rerank = (!rerank_latencies.is_empty()).then(|| crate::scale::Latency::of(rerank_latencies));
    let latency = crate::scale::Latency::of(latencies);
    Ok(MethodReport {
        method: label,
        questions: questions.len(),
        k,
        mean: mean(&per_question),
        latency_p50_ms: latency.p50,
        latency_p95_ms: latency.p95,
        rerank_p50_ms: rerank.map(|r| r.p50),
        rerank_p95_ms: rerank.map(|r| r.p95),
    })
}

/// Question vectors of one evaluation run: each question is embedded once, when a method first
/// needs it, and its vector reused by every later method, with the time that embedding took, which
/// each method's latency still includes.
#[derive(Debug, Default)]
pub struct QueryVectors {
    vectors: std::sync::Mutex<HashMap<String, (Vec<f32>, f64)>>,
}

impl QueryVectors {
    /// The vector of `question` and the milliseconds its embedding took.
    fn get(&self, embedder: &crate::Embedder, question: &str) -> Result<(Vec<f32>, f64)> {
        let lock = || self.vectors.lock().map_err(|_| Error::Internal("query vectors lock poisoned".into()));
        if let Some(hit) = lock()?.get(question) {
            return Ok(hit.clone());
        }
        let started = std::time::Instant::now();
        let vector = embedder.embed(&[question])?.into_iter().next().unwrap_or_default();
        let entry = (vector, started.elapsed().as_secs_f64() * 1000.0);
        lock()?.insert(question.to_owned(), entry.clone());
        Ok(entry)
    }
}

/// Filtered dense search against exact search over the same visible set, at one selectivity.
#[derive(Debug, Clone, Serialize)]
pub struct FilteredRecallRow {
    /// Share of the index the reader may see.
    pub selectivity: f64,
    pub visible: usize,
    /// The plan the default planner chose.
    pub plan: String,
    /// Recall@k of the default planner and its median latency.
    pub recall: f64,
    pub p50_ms: f64,
    /// Recall@k and median latency of filtered graph search forced at this selectivity.
    pub graph_recall: f64,
    pub graph_p50_ms: f64,
}

/// A deterministic value in 0..1000 for position `i` (splitmix64), used to assign vectors to
/// selectivity groups.
fn per_mille_of(i: usize) -> u64 {
    let mut z = (i as u64).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) % 1000
}

/// Measures filtered recall@k at each selectivity (in per mille): vector `i` joins group
/// `s{p}` when its hash falls under `p`, and a reader of that group searches with every query,
/// once with the default planner (exact search for small visible sets) and once with filtered
/// graph search forced. Exact search over the visible set is the reference.
pub fn filtered_recall(
    vectors: &[Vec<f32>],
    queries: &[Vec<f32>],
    per_mille: &[u64],
    k: usize,
) -> Result<Vec<FilteredRecallRow>> {
    let dimension = vectors.first().map_or(0, Vec::len);
    let base = obliqa_acl()?;
    let acls: Vec<crate::ChunkAcl> = (0..vectors.len())
        .map(|i| {
            let h = per_mille_of(i);
            let mut acl = base.clone();
            acl.allowed_groups = per_mille
                .iter()
                .filter(|p| h < **p)
                .map(|p| crate::GroupName::parse(&format!("s{p}")))
                .collect::<Result<_>>()?;
            // A vector in no measured group still needs one group.
            acl.allowed_groups.insert(crate::GroupName::parse("rest")?);
            Ok(acl)
        })
        .collect::<Result<_>>()?;
    let ids: Vec<String> = (0..vectors.len()).map(|i| format!("v{i}")).collect();
    let items: Vec<crate::DenseItem<'_>> = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| crate::DenseItem { chunk_id: &ids[i], document_id: "d", version: 1, acl: &acls[i], vector: v })
        .collect();
    let planned = crate::DenseIndex::new(dimension, vectors.len());
    planned.add(&items)?;
    let graph_only = crate::DenseIndex::new(dimension, vectors.len()).with_exact_search(0, 0.0);
    graph_only.add(&items)?;

    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    };
    let mut rows = Vec::new();
    for p in per_mille {
        let mut reader = obliqa_reader()?;
        reader.groups = [crate::GroupName::parse(&format!("s{p}"))?].into_iter().collect();
        let visible = planned.count_visible(&reader)?;
        let (mut recall, mut graph_recall) = (0.0, 0.0);
        let (mut times, mut graph_times) = (Vec::new(), Vec::new());
        let mut plan = String::new();
        for q in queries {
            let exact: BTreeSet<String> =
                planned.search_exact(&reader, q, k)?.into_iter().map(|h| h.chunk_id).collect();
            let denominator = exact.len().max(1) as f64;
            let t = std::time::Instant::now();
            let (hits, chosen) = planned.search(&reader, q, k)?;
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            plan = format!("{chosen:?}");
            recall += hits.iter().filter(|h| exact.contains(&h.chunk_id)).count() as f64 / denominator;
            let t = std::time::Instant::now();
            let (hits, _) = graph_only.search(&reader, q, k)?;
            graph_times.push(t.elapsed().as_secs_f64() * 1000.0);
            graph_recall += hits.iter().filter(|h| exact.contains(&h.chunk_id)).count() as f64 / denominator;
        }
        let n = queries.len().max(1) as f64;
        rows.push(FilteredRecallRow {
            selectivity: *p as f64 / 1000.0,
            visible,
            plan,
            recall: recall / n,
            p50_ms: median(times),
            graph_recall: graph_recall / n,
            graph_p50_ms: median(graph_times),
        });
    }
    Ok(rows)
}

/// The passage vectors the evaluation uses (from `cache` when it holds them), for measurements
/// outside the retriever.
pub fn obliqa_vectors(
    passages: &[ObliqaPassage],
    embedder: &crate::Embedder,
    cache: Option<&Path>,
    progress: &mut dyn FnMut(usize),
) -> Result<Vec<Vec<f32>>> {
    let texts: Vec<&str> = indexed_passages(passages).iter().map(|p| p.text.as_str()).collect();
    passage_vectors(embedder, &texts, cache, progress)
}
