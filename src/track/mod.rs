//! Track: motion tracking (Kalman + optimal assignment with gating), track lifecycle and population limit. Must never look at pixels.

use serde::Deserialize;

use crate::config::ConfigError;

/// Motion tracking settings of one camera.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackConfig {}

impl TrackConfig {
    /// Checks values without touching devices or files.
    pub fn validate(&self, _key: &str) -> Result<(), ConfigError> {
        Ok(())
    }
}
