//! Dense embeddings from the ONNX model, run in-process through fastembed on the ONNX Runtime
//! library named in configuration (`ort` with `load-dynamic`). Nothing here can fetch from a model
//! hub: fastembed is built without its `hf-hub` feature, and every file is read from `model_dir`.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use fastembed::{InitOptionsUserDefined, Pooling, TextEmbedding, TokenizerFiles, UserDefinedEmbeddingModel};

use crate::error::{Error, Result, UserError};

/// Where the runtime and the model live, and how to run them.
#[derive(Debug, Clone)]
pub struct EmbedderConfig {
    /// Path of `libonnxruntime.so.<version>`.
    pub onnx_runtime_library: PathBuf,
    /// Directory holding `model.onnx` and the tokenizer files.
    pub model_dir: PathBuf,
    /// Token window. all-MiniLM-L6-v2 was trained on 256 word pieces, so longer input is truncated
    /// there rather than at the shipped tokenizer.json's fixed 128; padding is to the batch's longest.
    pub max_length: usize,
    /// Intra-op threads; `None` lets ONNX Runtime use every core.
    pub threads: Option<usize>,
    /// Sessions of the model loaded side by side. [`Embedder::embed_many`] spreads its batches
    /// over them, one thread each; with one-thread sessions on every core that gets through more
    /// work than one session using every core (ONNX Runtime's own threads scale sub-linearly).
    pub sessions: usize,
}

impl EmbedderConfig {
    pub fn new(onnx_runtime_library: impl Into<PathBuf>, model_dir: impl Into<PathBuf>) -> Self {
        Self {
            onnx_runtime_library: onnx_runtime_library.into(),
            model_dir: model_dir.into(),
            max_length: 256,
            threads: None,
            sessions: 1,
        }
    }
}

/// The files a model directory must contain.
pub const MODEL_FILES: [&str; 5] =
    ["model.onnx", "tokenizer.json", "config.json", "special_tokens_map.json", "tokenizer_config.json"];

const SETUP_HINT: &str = "run scripts/setup-models.sh";

/// The files of an ONNX model folder (embedder or cross-encoder), read and hashed.
pub(crate) struct ModelFolder {
    pub onnx: Vec<u8>,
    /// sha256 of `model.onnx`: identifies the model in records and the inventory.
    pub sha256: String,
    pub tokenizer_files: TokenizerFiles,
}

/// Reads `model.onnx` and the tokenizer files of `dir`; a missing file is named in the error
/// with `hint`.
pub(crate) fn read_model_folder(dir: &Path, hint: &str) -> Result<ModelFolder> {
    let read = |name: &str| -> Result<Vec<u8>> {
        let path = dir.join(name);
        std::fs::read(&path).map_err(|_| UserError::MissingModelFile { path, hint: hint.to_owned() }.into())
    };
    let onnx = read("model.onnx")?;
    let sha256 = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&onnx))
    };
    let tokenizer_files = TokenizerFiles {
        tokenizer_file: read("tokenizer.json")?,
        config_file: read("config.json")?,
        special_tokens_map_file: read("special_tokens_map.json")?,
        tokenizer_config_file: read("tokenizer_config.json")?,
    };
    Ok(ModelFolder { onnx, sha256, tokenizer_files })
}

/// The library loaded into this process, if any: a process can hold only one.
static LOADED_RUNTIME: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Loads the ONNX Runtime shared library once per process. A missing file, a file that is not
/// the library, or a library older than the API version `ort` was built for is a clear error, not
/// a panic; so is asking for a second, different library after one was loaded.
pub fn init_onnx_runtime(library: &Path) -> Result<()> {
    if !library.is_file() {
        return Err(UserError::MissingModelFile { path: library.to_owned(), hint: SETUP_HINT.to_owned() }.into());
    }
    let wanted = library.canonicalize().map_err(|e| Error::internal("resolving the runtime path", e))?;
    let mut loaded = LOADED_RUNTIME.lock().map_err(|_| Error::Internal("runtime lock poisoned".into()))?;
    match loaded.as_ref() {
        Some(path) if *path == wanted => Ok(()),
        Some(path) => Err(UserError::OnnxRuntime(format!(
            "{} was requested but {} is already loaded in this process",
            wanted.display(),
            path.display()
        ))
        .into()),
        None => match ort::init_from(&wanted) {
            Ok(_builder) => {
                *loaded = Some(wanted);
                Ok(())
            }
            Err(e) => Err(UserError::OnnxRuntime(e.to_string()).into()),
        },
    }
}

/// With the `cuda` feature the models run on ONNX Runtime's CUDA execution provider, which falls
/// back to the CPU (with a warning from ONNX Runtime) when the library or device lacks CUDA.
#[cfg(feature = "cuda")]
pub(crate) fn gpu_execution_providers() -> Vec<ort::ep::ExecutionProviderDispatch> {
    vec![ort::ep::CUDA::default().build()]
}

/// A sentence embedder producing L2-normalised vectors.
pub struct Embedder {
    /// The first session serves [`Embedder::embed`]; `embed_many` uses them all.
    models: Vec<Mutex<TextEmbedding>>,
    dimension: usize,
    model_sha256: String,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder").field("dimension", &self.dimension).finish()
    }
}

impl Embedder {
    /// Loads the runtime and the model. Every missing file is named in the error.
    pub fn load(config: &EmbedderConfig) -> Result<Self> {
        let ModelFolder { onnx, sha256: model_sha256, tokenizer_files } =
            read_model_folder(&config.model_dir, SETUP_HINT)?;
        init_onnx_runtime(&config.onnx_runtime_library)?;
        let mut models = Vec::new();
        // The folder is read and hashed once; each session gets its own copy of the bytes.
        for _ in 0..config.sessions.max(1) {
            let model =
                UserDefinedEmbeddingModel::new(onnx.clone(), tokenizer_files.clone()).with_pooling(Pooling::Mean);
            let mut options = InitOptionsUserDefined::new().with_max_length(config.max_length);
            if let Some(threads) = config.threads {
                options = options.with_intra_threads(threads);
            }
            #[cfg(feature = "cuda")]
            {
                options = options.with_execution_providers(gpu_execution_providers());
            }
            let model = TextEmbedding::try_new_from_user_defined(model, options)
                .map_err(|e| Error::internal("loading the embedding model", e))?;
            models.push(Mutex::new(model));
        }
        let probe = models[0]
            .get_mut()
            .map_err(|_| Error::Internal("embedding model lock poisoned".into()))?
            .embed(["dimension probe"], None)
            .map_err(|e| Error::internal("embedding", e))?;
        let dimension = probe.first().map_or(0, Vec::len);
        Ok(Self { models, dimension, model_sha256 })
    }

    /// sha256 of the ONNX graph in use: identifies the model in stored embeddings and inventories.
    pub fn model_sha256(&self) -> &str {
        &self.model_sha256
    }

    /// Length of every vector this embedder returns.
    pub fn dimension(&self) -> usize {
        self.dimension
    }

    /// Embeds `texts` in batches; vectors are unit length so a dot product is the cosine.
    pub fn embed<S: AsRef<str> + Send + Sync>(&self, texts: &[S]) -> Result<Vec<Vec<f32>>> {
        self.embed_on(0, texts)
    }

    /// Embeds `texts` on session `session`.
    fn embed_on<S: AsRef<str> + Send + Sync>(&self, session: usize, texts: &[S]) -> Result<Vec<Vec<f32>>> {
        let model = self.models.get(session).unwrap_or(&self.models[0]);
        let mut model = model.lock().map_err(|_| Error::Internal("embedding model lock poisoned".into()))?;
        let mut vectors = model.embed(texts, Some(32)).map_err(|e| Error::internal("embedding", e))?;
        for v in &mut vectors {
            normalize(v);
        }
        Ok(vectors)
    }
}

impl Embedder {
    /// Embeds many texts, longest-first in batches of similar length so little compute is spent
    /// on padding; `progress` is called with the number done after each batch. Order is kept.
    pub fn embed_many<S: AsRef<str> + Send + Sync>(
        &self,
        texts: &[S],
        batch: usize,
        progress: &mut dyn FnMut(usize),
    ) -> Result<Vec<Vec<f32>>> {
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(texts[i].as_ref().len()));
        let groups: Vec<&[usize]> = order.chunks(batch.max(1)).collect();
        let mut out: Vec<Vec<f32>> = vec![Vec::new(); texts.len()];
        // Each session takes the next batch when it is free, so sessions finish together.
        let next = std::sync::atomic::AtomicUsize::new(0);
        let (sender, receiver) = std::sync::mpsc::channel::<Result<(usize, Vec<Vec<f32>>)>>();
        std::thread::scope(|scope| {
            for session in 0..self.models.len() {
                let (sender, next, groups) = (sender.clone(), &next, &groups);
                scope.spawn(move || {
                    loop {
                        let g = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(group) = groups.get(g) else { break };
                        let batch_texts: Vec<&str> = group.iter().map(|&i| texts[i].as_ref()).collect();
                        let result = self.embed_on(session, &batch_texts).map(|v| (g, v));
                        let failed = result.is_err();
                        if sender.send(result).is_err() || failed {
                            break;
                        }
                    }
                });
            }
            drop(sender);
            let mut done = 0;
            for result in receiver {
                let (g, vectors) = result?;
                for (&i, v) in groups[g].iter().zip(vectors) {
                    out[i] = v;
                }
                done += groups[g].len();
                progress(done);
            }
            Ok::<(), Error>(())
        })?;
        Ok(out)
    }
}

fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// Cosine similarity of two unit vectors.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Eight independent sums, so the compiler can use vector registers (a single running sum
    // must be added in order and cannot be vectorised).
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    let mut acc = [0.0f32; 8];
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}
