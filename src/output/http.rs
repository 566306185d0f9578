//! HTTP side: live counts, Prometheus metrics, health. Must never block the frame path.

use serde::Deserialize;

use crate::config::ConfigError;

/// HTTP server settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {}

impl HttpConfig {
    /// Checks values without touching sockets.
    pub fn validate(&self, _key: &str) -> Result<(), ConfigError> {
        Ok(())
    }
}
