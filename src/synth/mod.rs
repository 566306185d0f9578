//! Synth: renders simulated tanks (side and top view) of zebrafish with individual flank
//! patterns, with full ground truth. Must never be used by the daemon's frame path.

/// `finprint synth` arguments.
#[derive(Debug, clap::Args)]
pub struct SynthArgs {}

/// Errors of `finprint synth`.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    /// Not written yet.
    #[error("finprint synth is not implemented yet")]
    Unimplemented,
}

/// Entry point of `finprint synth`.
pub fn run_cli(_args: SynthArgs) -> Result<(), SynthError> {
    Err(SynthError::Unimplemented)
}
