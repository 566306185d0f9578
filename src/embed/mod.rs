//! Embed: runs the ONNX encoder (through `ort`, runtime library loaded at start) on fish crops
//! and returns L2-normalised embeddings. Worker threads own the sessions; cameras share them
//! through cloneable [`EmbedClient`]s, and requests from several cameras are batched together.
//! Must never decide identity.
//!
//! Startup fails with a clear [`EmbedError`] for a missing or wrong model, a card that does not
//! match the model, or a missing runtime library.

pub mod card;
pub mod preprocess;
pub mod queue;
pub mod runtime;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use serde::Deserialize;

use crate::config::ConfigError;
use crate::messages::Crop;

pub use card::ModelCard;
pub use queue::{Collect, Done, EmbedQueue, Settled};

/// File name of the encoder shipped with finprint.
pub const DEFAULT_MODEL: &str = "finprint-default.onnx";

/// Which execution provider runs the encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// CUDA when `libonnxruntime_providers_cuda.so` sits beside the runtime library and a GPU
    /// accepts the session; CPU otherwise (logged).
    #[default]
    Auto,
    /// CPU only.
    Cpu,
    /// CUDA or a startup error.
    Cuda,
}

/// Appearance encoder settings (`[embed]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmbedConfig {
    /// Path to the `.onnx` encoder. Default (unset): `finprint-default.onnx` searched in
    /// 1. `$FINPRINT_MODELS/`,
    /// 2. `<prefix>/share/finprint/models/` where the executable is `<prefix>/bin/finprint`,
    /// 3. `models/` beside the executable,
    /// 4. `models/` of the source repository this binary was built from.
    pub model: Option<PathBuf>,
    /// Model card (JSON). Default (unset): the model path with extension `.json`.
    pub card: Option<PathBuf>,
    /// Path to `libonnxruntime.so`. Default (unset): env `ORT_DYLIB_PATH`, then
    /// `.venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so*` under the current
    /// directory, the source repository or an ancestor of the executable, then the system loader.
    pub library: Option<PathBuf>,
    /// Execution provider: `auto` (default), `cpu` or `cuda`.
    pub provider: Provider,
    /// Most crops per model run (default 32; 1..=1024). Requests of several cameras are merged
    /// up to this size.
    pub batch_size: usize,
    /// Intra-op threads per session. Default 0: automatic — 1 on machines with at most 2 cores
    /// (the decoder and the camera workers need the others; ONNX Runtime's pool would compete
    /// with them), else ONNX Runtime's choice (one per core).
    pub threads: usize,
    /// Worker threads, each owning one session (default 1; 1..=16).
    pub workers: usize,
    /// Check the model file's SHA-256 against the card's `onnx_sha256` at start (default true).
    pub verify_sha256: bool,
    /// Recordings only (live cameras never wait for the encoder): a camera worker takes the
    /// embeddings of a frame's crops this many frames later, waiting for them if needed, so
    /// replays give the same identities on any machine (default 4; 1..=64).
    pub lag_frames: u32,
}

impl Default for EmbedConfig {
    fn default() -> Self {
        EmbedConfig {
            model: None,
            card: None,
            library: None,
            provider: Provider::Auto,
            batch_size: 32,
            threads: 0,
            workers: 1,
            verify_sha256: true,
            lag_frames: 4,
        }
    }
}

impl EmbedConfig {
    /// Checks values without touching devices or files.
    pub fn validate(&self, key: &str) -> Result<(), ConfigError> {
        if !(1..=1024).contains(&self.batch_size) {
            return Err(ConfigError::invalid(
                format!("{key}.batch_size"),
                format!(
                    "{} is not allowed: use 1..=1024 crops per run",
                    self.batch_size
                ),
            ));
        }
        if self.threads > 256 {
            return Err(ConfigError::invalid(
                format!("{key}.threads"),
                format!(
                    "{} is not allowed: use 0 (automatic) or 1..=256",
                    self.threads
                ),
            ));
        }
        if !(1..=64).contains(&self.lag_frames) {
            return Err(ConfigError::invalid(
                format!("{key}.lag_frames"),
                format!("{} is not allowed: use 1..=64 frames", self.lag_frames),
            ));
        }
        if !(1..=16).contains(&self.workers) {
            return Err(ConfigError::invalid(
                format!("{key}.workers"),
                format!("{} is not allowed: use 1..=16 worker threads", self.workers),
            ));
        }
        for (field, p) in [
            ("model", &self.model),
            ("card", &self.card),
            ("library", &self.library),
        ] {
            if let Some(p) = p
                && p.as_os_str().is_empty()
            {
                return Err(ConfigError::invalid(
                    format!("{key}.{field}"),
                    "empty path: give a file path or leave the key out for the default",
                ));
            }
        }
        Ok(())
    }

    /// Intra-op threads actually requested from ONNX Runtime for `cores` available cores
    /// (0 = ONNX Runtime's default); see [`EmbedConfig::threads`].
    pub fn intra_threads(&self, cores: usize) -> usize {
        match self.threads {
            0 if cores <= 2 => 1,
            n => n,
        }
    }
}

/// Cores available to this process (1 when unknown).
pub fn available_cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Errors of the embed stage. Every message names the file or setting and what to do.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// No runtime library found.
    #[error(
        "ONNX Runtime library not found (tried: {}); install the `onnxruntime` wheel or set `embed.library` / ORT_DYLIB_PATH to libonnxruntime.so",
        .tried.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    LibraryNotFound {
        /// Paths tried.
        tried: Vec<PathBuf>,
    },
    /// The runtime library exists but cannot be loaded.
    #[error(
        "cannot load ONNX Runtime from {path}: {message} (need ONNX Runtime ≥ 1.31; set `embed.library`)"
    )]
    LibraryLoad {
        /// Library path.
        path: PathBuf,
        /// Loader message.
        message: String,
    },
    /// No model file.
    #[error(
        "encoder model not found (tried: {}); set `embed.model` or FINPRINT_MODELS",
        .tried.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    ModelNotFound {
        /// Paths tried.
        tried: Vec<PathBuf>,
    },
    /// The card file cannot be read.
    #[error(
        "cannot read model card {path}: {source} (every model needs its card beside it, same name, `.json`)"
    )]
    CardRead {
        /// Card path.
        path: PathBuf,
        /// I/O error.
        source: std::io::Error,
    },
    /// The card is malformed or has impossible values.
    #[error("model card {path}: {message}")]
    Card {
        /// Card path.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The card does not describe the model.
    #[error("model card {card} does not match model {model}: {message}")]
    CardMismatch {
        /// Card path.
        card: PathBuf,
        /// Model path.
        model: PathBuf,
        /// The difference.
        message: String,
    },
    /// ONNX Runtime refused the model.
    #[error("cannot open encoder {model}: {message}")]
    Session {
        /// Model path.
        model: PathBuf,
        /// ONNX Runtime's message.
        message: String,
    },
    /// The requested execution provider could not be used.
    #[error(
        "execution provider `{provider}` failed: {message} (use `embed.provider = \"auto\"` to fall back to CPU)"
    )]
    Provider {
        /// Provider name.
        provider: String,
        /// ONNX Runtime's message.
        message: String,
    },
    /// A crop's buffer does not match its size.
    #[error("bad crop: {message}")]
    BadCrop {
        /// What is wrong.
        message: String,
    },
    /// A model run failed.
    #[error("encoder run failed: {message}")]
    Inference {
        /// ONNX Runtime's message.
        message: String,
    },
    /// The service was shut down.
    #[error("the embed service has stopped")]
    Stopped,
}

/// Model search order for the default model (see [`EmbedConfig::model`]).
pub fn model_candidates(file: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(d) = std::env::var("FINPRINT_MODELS")
        && !d.is_empty()
    {
        out.push(PathBuf::from(d).join(file));
    }
    if let Ok(exe) = std::env::current_exe()
        && let Some(bin) = exe.parent()
    {
        if let Some(prefix) = bin.parent() {
            out.push(prefix.join("share/finprint/models").join(file));
        }
        out.push(bin.join("models").join(file));
    }
    out.push(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("models")
            .join(file),
    );
    out
}

/// Resolves the model path from the config: the configured file (must exist), else the first
/// existing default candidate.
pub fn resolve_model(cfg: &EmbedConfig) -> Result<PathBuf, EmbedError> {
    if let Some(p) = &cfg.model {
        if p.is_file() {
            return Ok(p.clone());
        }
        return Err(EmbedError::ModelNotFound {
            tried: vec![p.clone()],
        });
    }
    let tried = model_candidates(DEFAULT_MODEL);
    tried
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or(EmbedError::ModelNotFound { tried })
}

/// Model, card and library resolved and checked on disk (no session yet).
#[derive(Debug, Clone)]
pub struct ResolvedModel {
    /// Model file.
    pub model: PathBuf,
    /// Card file.
    pub card_path: PathBuf,
    /// Parsed card.
    pub card: ModelCard,
    /// Runtime library.
    pub library: PathBuf,
}

/// Resolves and checks model, card (incl. SHA-256) and library paths.
pub fn resolve(cfg: &EmbedConfig) -> Result<ResolvedModel, EmbedError> {
    let library = runtime::resolve_library(cfg.library.as_deref())?;
    let model = resolve_model(cfg)?;
    let card_path = card::card_path_for(&model, cfg.card.as_deref());
    let card = ModelCard::load(&card_path)?;
    if cfg.verify_sha256
        && let Some(want) = &card.onnx_sha256
    {
        let got = card::sha256_file(&model).map_err(|e| EmbedError::Session {
            model: model.clone(),
            message: format!("cannot read: {e}"),
        })?;
        if !got.eq_ignore_ascii_case(want) {
            return Err(EmbedError::CardMismatch {
                card: card_path,
                model,
                message: format!(
                    "`onnx_sha256` is {want} but the file hashes to {got}: the card belongs to another model (or set `embed.verify_sha256 = false`)"
                ),
            });
        }
    }
    Ok(ResolvedModel {
        model,
        card_path,
        card,
        library,
    })
}

/// One encoder session with its preprocessing buffer, owned by one thread. Used by the service
/// workers, `finprint enroll` and the benchmark.
pub struct Embedder {
    session: ort::session::Session,
    card: Arc<ModelCard>,
    provider: String,
    assignment: Vec<(String, usize)>,
    fixed_batch: Option<usize>,
    batch_size: usize,
    /// Tensor buffers of the run on the session and of the next run being preprocessed.
    buf: Vec<f32>,
    buf_next: Vec<f32>,
}

impl Embedder {
    /// Loads the runtime (once per process), opens a session and checks it against the card.
    pub fn open(cfg: &EmbedConfig) -> Result<Embedder, EmbedError> {
        let r = resolve(cfg)?;
        Self::open_resolved(&r, cfg)
    }

    /// Like [`Embedder::open`] with paths already resolved.
    pub fn open_resolved(r: &ResolvedModel, cfg: &EmbedConfig) -> Result<Embedder, EmbedError> {
        let (env, library) = runtime::environment(&r.library)?;
        let threads = cfg.intra_threads(available_cores());
        let opened = runtime::open_session(&env, &library, &r.model, cfg.provider, threads)?;
        runtime::check_session_against_card(&opened.session, &r.card, &r.model, &r.card_path)?;
        let batch_size = opened.fixed_batch.unwrap_or(cfg.batch_size.max(1));
        Ok(Embedder {
            session: opened.session,
            card: Arc::new(r.card.clone()),
            provider: opened.provider,
            assignment: opened.assignment,
            fixed_batch: opened.fixed_batch,
            batch_size,
            buf: Vec::new(),
            buf_next: Vec::new(),
        })
    }

    /// The model card.
    pub fn card(&self) -> &ModelCard {
        &self.card
    }

    /// Execution provider that runs most nodes (`CPUExecutionProvider`, `CUDAExecutionProvider`).
    pub fn provider(&self) -> &str {
        &self.provider
    }

    /// Nodes per execution provider as ONNX Runtime assigned them.
    pub fn assignment(&self) -> &[(String, usize)] {
        &self.assignment
    }

    /// Crops per model run.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// The raw session (benchmarks).
    pub fn session_mut(&mut self) -> &mut ort::session::Session {
        &mut self.session
    }

    /// Tensor shape for `n` crops per the card's layout.
    pub fn input_shape(&self, n: usize) -> [usize; 4] {
        let i = &self.card.input;
        match i.layout {
            card::Layout::Nchw => [n, i.channels, i.height, i.width],
            card::Layout::Nhwc => [n, i.height, i.width, i.channels],
        }
    }

    /// Preprocesses crops into `out` (resized to hold `n·3·h·w` values).
    pub fn preprocess_batch(&self, crops: &[&Crop], out: &mut Vec<f32>) -> Result<(), EmbedError> {
        preprocess::preprocess_batch_into(crops, &self.card.input, crops.len(), out)
    }

    /// Embeds crops (any count; split into runs of [`Embedder::batch_size`]). Returns one
    /// L2-normalised vector per crop, in order.
    pub fn embed(&mut self, crops: &[Crop]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let refs: Vec<&Crop> = crops.iter().collect();
        self.embed_refs(&refs)
    }

    /// [`Embedder::embed`] on borrowed crops.
    ///
    /// With more than one run, the next run's crops are preprocessed on a scoped helper thread
    /// while the session runs the current one: on a GPU the CPU-side preprocessing would
    /// otherwise add its whole time to the run's (BENCHMARKS.md, "Embedding throughput").
    pub fn embed_refs(&mut self, crops: &[&Crop]) -> Result<Vec<Vec<f32>>, EmbedError> {
        for c in crops {
            preprocess::check_crop(c)?;
        }
        let mut cur = std::mem::take(&mut self.buf);
        let mut next = std::mem::take(&mut self.buf_next);
        let mut out = Vec::with_capacity(crops.len());
        let result = self.embed_pipelined(crops, &mut cur, &mut next, &mut out);
        self.buf = cur;
        self.buf_next = next;
        result.map(|()| out)
    }

    /// Runs `crops` in runs of `batch_size`, preprocessing run k+1 into `next` while run k
    /// (in `cur`) is on the session.
    fn embed_pipelined(
        &mut self,
        crops: &[&Crop],
        cur: &mut Vec<f32>,
        next: &mut Vec<f32>,
        out: &mut Vec<Vec<f32>>,
    ) -> Result<(), EmbedError> {
        let card = Arc::clone(&self.card);
        let fixed = self.fixed_batch;
        let fill = |chunk: &[&Crop], buf: &mut Vec<f32>| {
            preprocess::preprocess_batch_into(chunk, &card.input, fixed.unwrap_or(chunk.len()), buf)
        };
        let chunks: Vec<&[&Crop]> = crops.chunks(self.batch_size).collect();
        if let Some(first) = chunks.first() {
            fill(first, cur)?;
        }
        for (k, chunk) in chunks.iter().enumerate() {
            let shape = self.input_shape(fixed.unwrap_or(chunk.len()));
            let session = &mut self.session;
            let rows = match chunks.get(k + 1) {
                None => run_session(session, &card, shape, cur, chunk.len())?,
                Some(following) => {
                    let (rows, filled) = std::thread::scope(|s| {
                        let helper = std::thread::Builder::new()
                            .name("finprint-preprocess".into())
                            .spawn_scoped(s, || fill(following, next));
                        let rows = run_session(session, &card, shape, cur, chunk.len());
                        let filled = helper.ok().map(|h| {
                            h.join().unwrap_or_else(|_| {
                                Err(EmbedError::Inference {
                                    message: "the preprocessing thread panicked".into(),
                                })
                            })
                        });
                        (rows, filled)
                    });
                    // No thread to be had: preprocess after the run instead.
                    filled.unwrap_or_else(|| fill(following, next))?;
                    rows?
                }
            };
            out.extend(rows);
            std::mem::swap(cur, next);
        }
        Ok(())
    }
}

/// Runs `session` on a prepared tensor and returns the first `take` rows, L2-normalised.
fn run_session(
    session: &mut ort::session::Session,
    card: &ModelCard,
    shape: [usize; 4],
    data: &[f32],
    take: usize,
) -> Result<Vec<Vec<f32>>, EmbedError> {
    let inf = |e: ort::Error| EmbedError::Inference {
        message: e.to_string(),
    };
    let dim = card.output.dim;
    let tensor = ort::value::TensorRef::from_array_view((shape, data)).map_err(inf)?;
    let out_name = card.output.name.as_str();
    let outputs = session
        .run(ort::inputs![card.input.name.as_str() => tensor])
        .map_err(inf)?;
    let Some(value) = outputs.get(out_name) else {
        return Err(EmbedError::Inference {
            message: format!("the model returned no output `{out_name}`"),
        });
    };
    let (oshape, values) = value.try_extract_tensor::<f32>().map_err(inf)?;
    if oshape.len() != 2 || oshape[1] as usize != dim || (oshape[0] as usize) < take {
        return Err(EmbedError::Inference {
            message: format!(
                "output `{out_name}` has shape {oshape}; expected [{}, {dim}]",
                shape[0]
            ),
        });
    }
    let mut rows = Vec::with_capacity(take);
    for r in values.chunks_exact(dim).take(take) {
        let mut v = r.to_vec();
        if !preprocess::l2_normalize(&mut v) {
            return Err(EmbedError::Inference {
                message: "the model returned a non-finite or zero embedding".into(),
            });
        }
        rows.push(v);
    }
    Ok(rows)
}

struct Job {
    crops: Vec<Crop>,
    reply: crossbeam_channel::Sender<Result<Vec<Vec<f32>>, EmbedError>>,
}

/// The encoder service: worker threads, each owning a session, fed through [`EmbedClient`]s.
pub struct EmbedService {
    tx: Option<crossbeam_channel::Sender<Job>>,
    workers: Vec<JoinHandle<()>>,
    card: Arc<ModelCard>,
    provider: String,
    assignment: Vec<(String, usize)>,
    model: PathBuf,
}

/// Where the result of one [`EmbedClient::submit`] arrives.
pub type Reply = crossbeam_channel::Receiver<Result<Vec<Vec<f32>>, EmbedError>>;

/// Cloneable, `Send` handle that cameras use to embed crops through the service.
#[derive(Clone)]
pub struct EmbedClient {
    tx: crossbeam_channel::Sender<Job>,
    card: Arc<ModelCard>,
}

impl EmbedClient {
    /// Embeds crops (blocking until a worker has run them, merged with other cameras' crops).
    /// Returns one L2-normalised embedding per crop, in order.
    pub fn embed(&self, crops: Vec<Crop>) -> Result<Vec<Vec<f32>>, EmbedError> {
        if crops.is_empty() {
            return Ok(Vec::new());
        }
        self.submit(crops)?
            .recv()
            .map_err(|_| EmbedError::Stopped)?
    }

    /// Sends crops to the service without waiting; the result (one embedding per crop, in
    /// order) arrives on the returned channel. Checks the crops first.
    pub fn submit(&self, crops: Vec<Crop>) -> Result<Reply, EmbedError> {
        for c in &crops {
            preprocess::check_crop(c)?;
        }
        let (reply, rx) = crossbeam_channel::bounded(1);
        self.tx
            .send(Job { crops, reply })
            .map_err(|_| EmbedError::Stopped)?;
        Ok(rx)
    }

    /// The model card.
    pub fn card(&self) -> &ModelCard {
        &self.card
    }
}

impl EmbedService {
    /// Resolves model, card and library, starts `workers` threads each with its own session
    /// (checked against the card), and logs the execution provider actually used.
    pub fn build(cfg: &EmbedConfig) -> Result<EmbedService, EmbedError> {
        let r = resolve(cfg)?;
        let (tx, rx) = crossbeam_channel::unbounded::<Job>();
        let (ready_tx, ready_rx) = crossbeam_channel::unbounded();
        let mut workers = Vec::new();
        for w in 0..cfg.workers.max(1) {
            let rx = rx.clone();
            let ready_tx = ready_tx.clone();
            let model = r.model.clone();
            let r = r.clone();
            let cfg = cfg.clone();
            let handle = std::thread::Builder::new()
                .name(format!("embed-{w}"))
                .spawn(move || {
                    let mut emb = match Embedder::open_resolved(&r, &cfg) {
                        Ok(e) => {
                            let _ = ready_tx.send(Ok((e.provider.clone(), e.assignment.clone())));
                            e
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    drop(ready_tx);
                    worker_loop(&mut emb, &rx);
                })
                .map_err(|e| EmbedError::Session {
                    model,
                    message: format!("cannot start worker thread: {e}"),
                })?;
            workers.push(handle);
        }
        drop(ready_tx);
        let mut provider = String::new();
        let mut assignment = Vec::new();
        let mut first_err = None;
        for _ in 0..workers.len() {
            match ready_rx.recv() {
                Ok(Ok((p, a))) => {
                    provider = p;
                    assignment = a;
                }
                Ok(Err(e)) => {
                    first_err.get_or_insert(e);
                }
                Err(_) => {
                    first_err.get_or_insert(EmbedError::Stopped);
                }
            }
        }
        let service = EmbedService {
            tx: Some(tx),
            workers,
            card: Arc::new(r.card),
            provider,
            assignment,
            model: r.model,
        };
        if let Some(e) = first_err {
            service.shutdown();
            return Err(e);
        }
        tracing::info!(
            model = %service.model.display(),
            card = %service.card.name,
            provider = %service.provider,
            assignment = ?service.assignment,
            workers = service.workers.len(),
            intra_threads = cfg.intra_threads(available_cores()),
            "encoder ready"
        );
        if service.assignment.is_empty() {
            tracing::warn!(
                "ONNX Runtime reported no execution-provider assignment for the encoder"
            );
        }
        for (ep, nodes) in &service.assignment {
            tracing::info!(provider = %ep, nodes, "encoder nodes assigned by ONNX Runtime");
        }
        Ok(service)
    }

    /// A handle for one camera.
    pub fn client(&self) -> EmbedClient {
        EmbedClient {
            tx: self
                .tx
                .clone()
                .unwrap_or_else(|| crossbeam_channel::unbounded().0),
            card: self.card.clone(),
        }
    }

    /// Execution provider actually running most of the graph (`CPUExecutionProvider`, ...).
    pub fn provider(&self) -> &str {
        &self.provider
    }

    /// Nodes per execution provider (for `/metrics`).
    pub fn assignment(&self) -> &[(String, usize)] {
        &self.assignment
    }

    /// The model card.
    pub fn card(&self) -> &ModelCard {
        &self.card
    }

    /// The model file in use.
    pub fn model_path(&self) -> &Path {
        &self.model
    }

    /// Stops the workers after the queued requests and joins them.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.tx = None;
        for h in self.workers.drain(..) {
            let _ = h.join();
        }
    }
}

impl Drop for EmbedService {
    fn drop(&mut self) {
        // Clients may still hold senders; dropping ours lets workers end when they go.
        self.tx = None;
    }
}

fn worker_loop(emb: &mut Embedder, rx: &crossbeam_channel::Receiver<Job>) {
    let max = emb.batch_size();
    while let Ok(first) = rx.recv() {
        let mut total = first.crops.len();
        let mut jobs = vec![first];
        while total < max {
            match rx.try_recv() {
                Ok(j) => {
                    total += j.crops.len();
                    jobs.push(j);
                }
                Err(_) => break,
            }
        }
        let crops: Vec<&Crop> = jobs.iter().flat_map(|j| j.crops.iter()).collect();
        match emb.embed_refs(&crops) {
            Ok(mut all) => {
                for j in jobs.iter().rev() {
                    let rest = all.split_off(all.len() - j.crops.len());
                    let _ = j.reply.send(Ok(rest));
                }
            }
            Err(e) => {
                let msg = e.to_string();
                for j in &jobs {
                    let _ = j.reply.send(Err(EmbedError::Inference {
                        message: msg.clone(),
                    }));
                }
            }
        }
    }
}

/// The encoder service on the tiny test model (`tests/fixtures/identity/tiny.onnx`, CPU), for
/// unit tests of the stages that use it; needs `ORT_DYLIB_PATH`.
#[cfg(test)]
pub(crate) fn fixture_service() -> EmbedService {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/identity");
    let cfg = EmbedConfig {
        model: Some(dir.join("tiny.onnx")),
        provider: Provider::Cpu,
        ..Default::default()
    };
    EmbedService::build(&cfg).expect("tiny encoder (set ORT_DYLIB_PATH)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_bad_values_name_the_key() {
        EmbedConfig::default().validate("embed").unwrap();
        let cfg = EmbedConfig {
            batch_size: 0,
            ..Default::default()
        };
        let e = cfg.validate("embed").unwrap_err().to_string();
        assert!(e.contains("embed.batch_size"), "{e}");
        let cfg = EmbedConfig {
            workers: 17,
            ..Default::default()
        };
        assert!(
            cfg.validate("embed")
                .unwrap_err()
                .to_string()
                .contains("embed.workers")
        );
    }

    #[test]
    fn threads_default_to_one_on_small_machines() {
        let auto = EmbedConfig::default();
        assert_eq!(auto.intra_threads(1), 1);
        assert_eq!(auto.intra_threads(2), 1);
        assert_eq!(auto.intra_threads(16), 0, "ONNX Runtime's own choice");
        let three = EmbedConfig {
            threads: 3,
            ..Default::default()
        };
        assert_eq!(three.intra_threads(2), 3);
        let bad = EmbedConfig {
            lag_frames: 0,
            ..Default::default()
        };
        assert!(
            bad.validate("embed")
                .unwrap_err()
                .to_string()
                .contains("embed.lag_frames")
        );
    }

    #[test]
    fn config_parses_from_toml() {
        let cfg: EmbedConfig = toml::from_str("provider = \"cpu\"\nbatch_size = 8").unwrap();
        assert_eq!(cfg.provider, Provider::Cpu);
        assert_eq!(cfg.batch_size, 8);
        assert_eq!(cfg.workers, 1);
        assert!(toml::from_str::<EmbedConfig>("bogus = 1").is_err());
    }

    #[test]
    fn missing_library_is_a_clear_error() {
        let e = runtime::resolve_library(Some(Path::new("/nonexistent/libonnxruntime.so")))
            .unwrap_err();
        let s = e.to_string();
        assert!(
            s.contains("/nonexistent/libonnxruntime.so") && s.contains("embed.library"),
            "{s}"
        );
    }
}
