//! Detect: finds fish in a frame (background model on luma, threshold, morphology, components) and cuts an oriented crop per fish. Must never track or identify.

use serde::Deserialize;

use crate::config::ConfigError;

/// Detection settings of one camera.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectConfig {}

impl DetectConfig {
    /// Checks values without touching devices or files.
    pub fn validate(&self, _key: &str) -> Result<(), ConfigError> {
        Ok(())
    }
}
