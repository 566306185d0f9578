//! Eval: scores predicted tracks against ground truth (CLEAR MOT, identity metrics, HOTA).
//! Must never be used by the live daemon's frame path.

/// `finprint eval` arguments.
#[derive(Debug, clap::Args)]
pub struct EvalArgs {}

/// Errors of `finprint eval`.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// Not written yet.
    #[error("finprint eval is not implemented yet")]
    Unimplemented,
}

/// Entry point of `finprint eval`.
pub fn run_cli(_args: EvalArgs) -> Result<(), EvalError> {
    Err(EvalError::Unimplemented)
}
