//! Embed: runs the ONNX encoder (through `ort`) on fish crops and returns L2-normalised embeddings. Must never decide identity.

use serde::Deserialize;

use crate::config::ConfigError;

/// Appearance encoder settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbedConfig {}

impl EmbedConfig {
    /// Checks values without touching devices or files.
    pub fn validate(&self, _key: &str) -> Result<(), ConfigError> {
        Ok(())
    }
}
