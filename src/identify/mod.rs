//! Identify: gallery of individuals (HNSW), identity registry and assignment of tracklets to individuals. Must never read pixels or run the model.

use serde::Deserialize;

use crate::config::ConfigError;

/// Identity settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {}

impl IdentityConfig {
    /// Checks values without touching devices or files.
    pub fn validate(&self, _key: &str) -> Result<(), ConfigError> {
        Ok(())
    }
}

/// `finprint enroll` arguments.
#[derive(Debug, clap::Args)]
pub struct EnrollArgs {}

/// Errors of the identity stage.
#[derive(Debug, thiserror::Error)]
pub enum IdentifyError {
    /// Not written yet.
    #[error("finprint enroll is not implemented yet")]
    Unimplemented,
}

/// Entry point of `finprint enroll`.
pub fn enroll_cli(_args: EnrollArgs) -> Result<(), IdentifyError> {
    Err(IdentifyError::Unimplemented)
}
