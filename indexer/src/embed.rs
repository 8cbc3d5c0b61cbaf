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
}

impl EmbedderConfig {
    pub fn new(onnx_runtime_library: impl Into<PathBuf>, model_dir: impl Into<PathBuf>) -> Self {
        Self {
            onnx_runtime_library: onnx_runtime_library.into(),
            model_dir: model_dir.into(),
            max_length: 256,
            threads: None,
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
    model: Mutex<TextEmbedding>,
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
        let model = UserDefinedEmbeddingModel::new(onnx, tokenizer_files).with_pooling(Pooling::Mean);
        let mut options = InitOptionsUserDefined::new().with_max_length(config.max_length);
        if let Some(threads) = config.threads {
            options = options.with_intra_threads(threads);
        }
        #[cfg(feature = "cuda")]
        {
            options = options.with_execution_providers(gpu_execution_providers());
        }
        let mut model = TextEmbedding::try_new_from_user_defined(model, options)
            .map_err(|e| Error::internal("loading the embedding model", e))?;
        let probe = model.embed(["dimension probe"], None).map_err(|e| Error::internal("embedding", e))?;
        let dimension = probe.first().map_or(0, Vec::len);
        Ok(Self { model: Mutex::new(model), dimension, model_sha256 })
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
        let mut model = self.model.lock().map_err(|_| Error::Internal("embedding model lock poisoned".into()))?;
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
        let mut out: Vec<Vec<f32>> = vec![Vec::new(); texts.len()];
        let mut done = 0;
        for group in order.chunks(batch.max(1)) {
            let batch_texts: Vec<&str> = group.iter().map(|&i| texts[i].as_ref()).collect();
            for (&i, v) in group.iter().zip(self.embed(&batch_texts)?) {
                out[i] = v;
            }
            done += group.len();
            progress(done);
        }
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
