//! Outputs: trajectories, interaction logs, MOTChallenge export, and the HTTP side.
//! Must never change tracks: outputs only read [`crate::messages::TrackedFrame`]s.

pub mod http;
pub mod interactions;

pub use interactions::{DistanceUnit, InteractionDetector, InteractionEvent, InteractionRule};

use serde::Deserialize;

use crate::config::ConfigError;

/// Where and what the daemon writes.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {}

impl OutputConfig {
    /// Checks values without touching devices or files.
    pub fn validate(&self, _key: &str) -> Result<(), ConfigError> {
        Ok(())
    }
}
