//! Service: the daemon's lifecycle (`finprint run`): start cameras, serve HTTP, sd_notify,
//! drain and close on SIGTERM/SIGINT. Must never implement a stage's logic itself.

use std::path::PathBuf;

/// `finprint run` arguments.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Config file.
    #[arg(long)]
    pub config: PathBuf,
}

/// Errors of the service.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Not written yet.
    #[error("finprint run is not implemented yet")]
    Unimplemented,
}

/// Entry point of `finprint run`.
pub fn run(_args: RunArgs) -> Result<(), ServiceError> {
    Err(ServiceError::Unimplemented)
}
