//! ONNX Runtime plumbing: finds and loads `libonnxruntime.so` once per process (`ort` with
//! `load-dynamic`), opens one session per worker with the requested execution provider, checks the
//! session against the model card, and reads which execution provider actually got the nodes.
//! Must never preprocess or interpret embeddings.

use std::ffi::CStr;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use ort::AsPointer;
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::{TensorElementType, ValueType};

use super::card::{Layout, ModelCard};
use super::{EmbedError, Provider};

/// File names tried in a folder for the runtime library, in order.
const LIB_NAMES: &[&str] = &["libonnxruntime.so", "libonnxruntime.so.1"];

/// Where to look for `libonnxruntime.so` when `embed.library` is unset, in order:
/// 1. env `ORT_DYLIB_PATH`;
/// 2. `.venv/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so*` under the current
///    directory, the repository this binary was built from, and each ancestor of the executable;
/// 3. the system loader path (`libonnxruntime.so` by name).
pub fn library_candidates() -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(p) = std::env::var("ORT_DYLIB_PATH")
        && !p.is_empty()
    {
        out.push(PathBuf::from(p));
    }
    let mut roots: Vec<PathBuf> = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        roots.push(cwd);
    }
    roots.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    if let Ok(exe) = std::env::current_exe() {
        roots.extend(exe.ancestors().skip(1).map(Path::to_path_buf));
    }
    for root in roots {
        let lib = root.join(".venv/lib");
        let Ok(rd) = std::fs::read_dir(&lib) else {
            continue;
        };
        let mut pys: Vec<PathBuf> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("python3"))
            })
            .collect();
        pys.sort();
        for py in pys.into_iter().rev() {
            let capi = py.join("site-packages/onnxruntime/capi");
            let Ok(rd) = std::fs::read_dir(&capi) else {
                continue;
            };
            let mut libs: Vec<PathBuf> = rd
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("libonnxruntime.so"))
                })
                .collect();
            libs.sort();
            out.extend(libs);
        }
    }
    for name in LIB_NAMES {
        out.push(PathBuf::from(name));
    }
    out
}

/// Resolves the runtime library: the configured path (must exist), else the first existing
/// candidate of [`library_candidates`], else the bare system name.
pub fn resolve_library(configured: Option<&Path>) -> Result<PathBuf, EmbedError> {
    if let Some(p) = configured {
        if p.is_file() {
            return Ok(p.to_path_buf());
        }
        return Err(EmbedError::LibraryNotFound {
            tried: vec![p.to_path_buf()],
        });
    }
    let candidates = library_candidates();
    for c in &candidates {
        if c.is_absolute() && c.is_file() {
            return Ok(c.clone());
        }
        if !c.is_absolute() && c.components().count() == 1 {
            // Bare name: let the system loader search for it.
            return Ok(c.clone());
        }
        if c.is_file() {
            return Ok(c.clone());
        }
    }
    Err(EmbedError::LibraryNotFound { tried: candidates })
}

struct Runtime {
    env: ort::environment::Environment,
    library: PathBuf,
}

static RUNTIME: OnceLock<Mutex<Option<Runtime>>> = OnceLock::new();

/// Loads the runtime library (once per process) and returns the process-wide environment.
/// A second call with another library path reuses the first one (ONNX Runtime cannot be loaded
/// twice) and logs a warning.
pub fn environment(library: &Path) -> Result<(ort::environment::Environment, PathBuf), EmbedError> {
    let cell = RUNTIME.get_or_init(|| Mutex::new(None));
    let mut guard = cell.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(rt) = guard.as_ref() {
        if rt.library != library {
            tracing::warn!(
                loaded = %rt.library.display(),
                requested = %library.display(),
                "ONNX Runtime is already loaded in this process; keeping the first library"
            );
        }
        return Ok((rt.env.clone(), rt.library.clone()));
    }
    let builder = ort::init_from(library).map_err(|e| EmbedError::LibraryLoad {
        path: library.to_path_buf(),
        message: e.to_string(),
    })?;
    let env = builder
        .with_name("finprint")
        .build()
        .map_err(|e| EmbedError::LibraryLoad {
            path: library.to_path_buf(),
            message: format!("cannot create the ONNX Runtime environment: {e}"),
        })?;
    tracing::info!(library = %library.display(), "ONNX Runtime loaded");
    *guard = Some(Runtime {
        env: env.clone(),
        library: library.to_path_buf(),
    });
    Ok((env, library.to_path_buf()))
}

/// One opened session plus what we learnt about it.
pub struct OpenedSession {
    /// The session.
    pub session: Session,
    /// Execution provider that got most nodes (e.g. `CUDAExecutionProvider`).
    pub provider: String,
    /// Nodes per execution provider, from ONNX Runtime's assignment info.
    pub assignment: Vec<(String, usize)>,
    /// Fixed batch size of the model input, when the model has one.
    pub fixed_batch: Option<usize>,
}

fn session_err(model: &Path, e: impl std::fmt::Display) -> EmbedError {
    EmbedError::Session {
        model: model.to_path_buf(),
        message: e.to_string(),
    }
}

/// Whether the CUDA provider library sits beside the runtime library (beside the file a
/// symlink such as setup's `.venv/lib/libonnxruntime.so` points to, where ONNX Runtime looks).
pub fn cuda_library_present(library: &Path) -> bool {
    let library = std::fs::canonicalize(library).unwrap_or_else(|_| library.to_path_buf());
    let dir = match library.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => return false,
    };
    dir.join("libonnxruntime_providers_cuda.so").is_file()
}

/// Opens a session on `model` with `provider` (`Auto`: CUDA when its library is present and
/// registration succeeds, else CPU). `threads` = intra-op threads (0: ONNX Runtime's default).
pub fn open_session(
    env: &ort::environment::Environment,
    library: &Path,
    model: &Path,
    provider: Provider,
    threads: usize,
) -> Result<OpenedSession, EmbedError> {
    let want_cuda = match provider {
        Provider::Cpu => false,
        Provider::Cuda => true,
        Provider::Auto => cuda_library_present(library),
    };
    let attempt = |cuda: bool| -> Result<Session, EmbedError> {
        let mut b = Session::builder(env)
            .map_err(|e| session_err(model, e))?
            .with_optimization_level(GraphOptimizationLevel::All)
            .map_err(|e| session_err(model, e))?
            .with_config_entry("session.record_ep_graph_assignment_info", "1")
            .map_err(|e| session_err(model, e))?;
        if threads > 0 {
            b = b
                .with_intra_threads(threads)
                .map_err(|e| session_err(model, e))?;
        }
        if cuda {
            b = b
                .with_execution_providers([ort::ep::CUDA::default().build().error_on_failure()])
                .map_err(|e| EmbedError::Provider {
                    provider: "cuda".into(),
                    message: e.to_string(),
                })?;
        }
        b.commit_from_file(model).map_err(|e| {
            if cuda {
                EmbedError::Provider {
                    provider: "cuda".into(),
                    message: e.to_string(),
                }
            } else {
                session_err(model, e)
            }
        })
    };
    let session = if want_cuda {
        match (attempt(true), provider) {
            (Ok(s), _) => s,
            (Err(e), Provider::Cuda) => return Err(e),
            (Err(e), _) => {
                tracing::warn!(error = %e, "CUDA execution provider unavailable; using CPU");
                attempt(false)?
            }
        }
    } else {
        attempt(false)?
    };
    let assignment = ep_assignment(&session).unwrap_or_else(|e| {
        tracing::debug!(error = %e, "no EP assignment info from ONNX Runtime");
        Vec::new()
    });
    let provider_name = assignment
        .iter()
        .max_by_key(|(_, n)| *n)
        .map(|(p, _)| p.clone())
        .unwrap_or_else(|| {
            if want_cuda {
                "CUDAExecutionProvider".into()
            } else {
                "CPUExecutionProvider".into()
            }
        });
    let fixed_batch = match session.inputs().first().map(|o| o.dtype()) {
        Some(ValueType::Tensor { shape, .. }) => shape
            .first()
            .copied()
            .filter(|d| *d > 0)
            .map(|d| d as usize),
        _ => None,
    };
    Ok(OpenedSession {
        session,
        provider: provider_name,
        assignment,
        fixed_batch,
    })
}

/// Reads ONNX Runtime's record of which execution provider runs which nodes (needs the session
/// config entry `session.record_ep_graph_assignment_info = 1`). Returns (provider, node count).
pub fn ep_assignment(session: &Session) -> Result<Vec<(String, usize)>, String> {
    let api = ort::api();
    let inner = session.inner();
    let sess_ptr = inner.ptr();
    let mut subgraphs: *const *const ort::sys::OrtEpAssignedSubgraph = std::ptr::null();
    let mut n: usize = 0;
    // SAFETY: valid session pointer (kept alive by `inner`), out-pointers to locals.
    let st = unsafe { (api.Session_GetEpGraphAssignmentInfo)(sess_ptr, &mut subgraphs, &mut n) };
    // SAFETY: status pointer from the call above.
    unsafe { ort::Error::result_from_status(st) }.map_err(|e| e.to_string())?;
    let mut out: Vec<(String, usize)> = Vec::new();
    for i in 0..n {
        // SAFETY: ONNX Runtime returned an array of `n` subgraph pointers owned by the session.
        let sg = unsafe { *subgraphs.add(i) };
        let mut name: *const std::ffi::c_char = std::ptr::null();
        let st = unsafe { (api.EpAssignedSubgraph_GetEpName)(sg, &mut name) };
        unsafe { ort::Error::result_from_status(st) }.map_err(|e| e.to_string())?;
        let ep = if name.is_null() {
            "unknown".to_string()
        } else {
            // SAFETY: NUL-terminated string owned by the session.
            unsafe { CStr::from_ptr(name) }
                .to_string_lossy()
                .into_owned()
        };
        let mut nodes: *const *const ort::sys::OrtEpAssignedNode = std::ptr::null();
        let mut nn: usize = 0;
        let st = unsafe { (api.EpAssignedSubgraph_GetNodes)(sg, &mut nodes, &mut nn) };
        unsafe { ort::Error::result_from_status(st) }.map_err(|e| e.to_string())?;
        match out.iter_mut().find(|(p, _)| *p == ep) {
            Some((_, c)) => *c += nn,
            None => out.push((ep, nn)),
        }
    }
    Ok(out)
}

/// Checks the session's input/output names, element types and fixed dimensions against the card.
pub fn check_session_against_card(
    session: &Session,
    card: &ModelCard,
    model: &Path,
    card_path: &Path,
) -> Result<(), EmbedError> {
    let mismatch = |message: String| EmbedError::CardMismatch {
        card: card_path.to_path_buf(),
        model: model.to_path_buf(),
        message,
    };
    if session.inputs().len() != 1 {
        let names: Vec<&str> = session.inputs().iter().map(|o| o.name()).collect();
        return Err(mismatch(format!(
            "the model has {} inputs ({names:?}); an encoder has exactly one",
            names.len()
        )));
    }
    let input = &session.inputs()[0];
    if input.name() != card.input.name {
        return Err(mismatch(format!(
            "card `input.name` is `{}` but the model's input is `{}`",
            card.input.name,
            input.name()
        )));
    }
    let ValueType::Tensor { ty, shape, .. } = input.dtype() else {
        return Err(mismatch(format!(
            "model input `{}` is not a tensor",
            input.name()
        )));
    };
    if *ty != TensorElementType::Float32 {
        return Err(mismatch(format!(
            "model input `{}` is {ty:?}; finprint feeds float32",
            input.name()
        )));
    }
    let i = &card.input;
    let want: [usize; 3] = match i.layout {
        Layout::Nchw => [i.channels, i.height, i.width],
        Layout::Nhwc => [i.height, i.width, i.channels],
    };
    if shape.len() != 4 {
        return Err(mismatch(format!(
            "model input has shape {shape} (rank {}); expected rank 4",
            shape.len()
        )));
    }
    for (k, w) in want.iter().enumerate() {
        let d = shape[k + 1];
        if d > 0 && d as usize != *w {
            return Err(mismatch(format!(
                "model input shape is {shape} but the card says {:?} {}×{}×{} (channels×height×width)",
                i.layout, i.channels, i.height, i.width
            )));
        }
    }
    let Some(output) = session
        .outputs()
        .iter()
        .find(|o| o.name() == card.output.name)
    else {
        let names: Vec<&str> = session.outputs().iter().map(|o| o.name()).collect();
        return Err(mismatch(format!(
            "card `output.name` is `{}` but the model's outputs are {names:?}",
            card.output.name
        )));
    };
    let ValueType::Tensor { ty, shape, .. } = output.dtype() else {
        return Err(mismatch(format!(
            "model output `{}` is not a tensor",
            output.name()
        )));
    };
    if *ty != TensorElementType::Float32 {
        return Err(mismatch(format!(
            "model output `{}` is {ty:?}; expected float32",
            output.name()
        )));
    }
    if shape.len() != 2 {
        return Err(mismatch(format!(
            "model output has shape {shape}; expected [batch, dim]"
        )));
    }
    if shape[1] > 0 && shape[1] as usize != card.output.dim {
        return Err(mismatch(format!(
            "card `output.dim` is {} but the model's `{}` has dim {}",
            card.output.dim,
            output.name(),
            shape[1]
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::cuda_library_present;

    /// `auto` must find the CUDA provider through setup's symlink to the wheel's library.
    #[test]
    fn cuda_provider_is_found_through_a_symlinked_runtime() {
        let dir = tempfile::tempdir().expect("temp dir");
        let wheel = dir.path().join("capi");
        let venv_lib = dir.path().join("lib");
        std::fs::create_dir_all(&wheel).expect("capi dir");
        std::fs::create_dir_all(&venv_lib).expect("lib dir");
        let real = wheel.join("libonnxruntime.so.1.31.1");
        std::fs::write(&real, b"").expect("runtime file");
        let link = venv_lib.join("libonnxruntime.so");
        std::os::unix::fs::symlink(&real, &link).expect("symlink");
        assert!(!cuda_library_present(&link), "no CUDA provider yet");
        std::fs::write(wheel.join("libonnxruntime_providers_cuda.so"), b"").expect("cuda file");
        assert!(
            cuda_library_present(&link),
            "provider beside the link's target"
        );
        assert!(cuda_library_present(&real));
        assert!(!cuda_library_present(std::path::Path::new(
            "libonnxruntime.so"
        )));
    }
}
