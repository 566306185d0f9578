//! Ingest: turns a camera, RTSP stream, video file or image sequence into [`Frame`]s through
//! GStreamer. Must never look at frame content (no detection here).

use serde::Deserialize;

use crate::config::ConfigError;
#[allow(unused_imports)]
use crate::messages::Frame;

/// Where one camera's frames come from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "snake_case")]
pub enum SourceConfig {
    /// A video file or any URI GStreamer understands.
    File {
        /// Path or URI of the recording.
        path: String,
    },
}

impl SourceConfig {
    /// Checks values without touching devices or files.
    pub fn validate(&self, _key: &str) -> Result<(), ConfigError> {
        Ok(())
    }
}
