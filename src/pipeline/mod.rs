//! Pipeline: wires the stages of each camera with threads and channels, and implements
//! `finprint replay`. Must never implement a stage's logic itself.

use std::path::PathBuf;

/// `finprint replay` arguments.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// Config file; without it, built-in defaults suit a typical tank recording.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Recording: a file, a URI, or an image sequence pattern (`frames/frame_%06d.pgm`).
    #[arg(long)]
    pub input: String,
    /// Output folder.
    #[arg(long)]
    pub out: PathBuf,
}

/// Errors of the pipeline.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// Not written yet.
    #[error("finprint replay is not implemented yet")]
    Unimplemented,
}

/// Entry point of `finprint replay`.
pub fn replay(_args: ReplayArgs) -> Result<(), PipelineError> {
    Err(PipelineError::Unimplemented)
}
