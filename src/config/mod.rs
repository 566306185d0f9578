//! The one typed configuration tree (`finprint.toml`), its loading and its validation.
//!
//! Each stage owns its own config struct (in its module); this module only composes them,
//! parses TOML with the key path of any error, and runs every stage's pure `validate()`.
//! It must never open devices, files or sockets named in the config: that is `build()`'s job.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::{detect, embed, identify, ingest, output, track};

/// A configuration problem, naming the key and what is allowed.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// File path.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// TOML syntax or type error, or an unknown key.
    #[error("config {path}: at `{key}`: {message}")]
    Parse {
        /// File path (or `<inline>`).
        path: PathBuf,
        /// Dotted key path where parsing failed.
        key: String,
        /// What went wrong and what is allowed.
        message: String,
    },
    /// A value parsed but is not allowed.
    #[error("config: `{key}`: {message}")]
    Invalid {
        /// Dotted key path of the offending value.
        key: String,
        /// What is wrong and what is allowed.
        message: String,
    },
}

impl ConfigError {
    /// Shorthand for [`ConfigError::Invalid`].
    pub fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// Root of `finprint.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Cameras to watch; each runs its own ingest → detect → track chain.
    #[serde(default)]
    pub cameras: Vec<CameraConfig>,
    /// Files written by the daemon (trajectories, interaction logs, MOT export).
    #[serde(default)]
    pub output: output::OutputConfig,
    /// The HTTP side: live counts, Prometheus metrics, health.
    #[serde(default)]
    pub http: output::http::HttpConfig,
    /// The appearance encoder (ONNX model, execution provider, batching).
    #[serde(default)]
    pub embed: embed::EmbedConfig,
    /// Identity: gallery of individuals, assignment rules, persistence.
    #[serde(default)]
    pub identity: identify::IdentityConfig,
}

/// One camera watching one tank.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraConfig {
    /// Unique short name, used in outputs and metrics (letters, digits, `-`, `_`).
    pub name: String,
    /// Tank name this camera watches (defaults to the camera name). With identity on, each
    /// camera needs a tank of its own: its individuals are kept in `<tank>.identity.json`, and
    /// sharing one tank's individuals between cameras is not implemented.
    #[serde(default)]
    pub tank: Option<String>,
    /// How many fish live in the tank. Constrains the number of tracks and identities;
    /// leave unset when unknown (open population). Keep it exact: one more than the tank holds
    /// leaves room for a track on a piece or a large fish (8 fish replayed as 9: 0.5–1 extra
    /// track per frame, BENCHMARKS.md round 12).
    #[serde(default)]
    pub population: Option<u32>,
    /// Where the camera looks from: `"top"` (down onto the water, fish seen from above),
    /// `"side"` (through the front wall, fish seen from the flank, passing in front of each
    /// other at different depths) or `"auto"` (default: decided once the background is
    /// learned, and logged: `side` when the fish differ from the background both ways, light
    /// bodies with dark stripes as a side camera sees zebrafish; `top` otherwise, e.g. dark
    /// fish on a light floor). Sets the defaults of the view-dependent `[cameras.track]`
    /// settings (`split_apart_body_lengths`, `share_area_ratio`); values given there win.
    #[serde(default)]
    pub view: CameraView,
    /// Millimetres per pixel at the tank's focal plane; enables `x_mm,y_mm` columns and mm
    /// interaction distances. Unset: pixels only.
    #[serde(default)]
    pub mm_per_px: Option<f64>,
    /// Where frames come from.
    pub source: ingest::SourceConfig,
    /// Fish detection (background model, thresholds, ROI).
    #[serde(default)]
    pub detect: detect::DetectConfig,
    /// Motion tracking.
    #[serde(default)]
    pub track: track::TrackConfig,
}

/// Where a camera looks from (see [`CameraConfig::view`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum CameraView {
    /// Decided from the first frames: side when the fish differ from the background both
    /// ways (light and dark parts), else top.
    #[default]
    Auto,
    /// Down onto the water.
    Top,
    /// Through the tank's front wall.
    Side,
}

impl CameraView {
    /// The view `Auto` resolves to, given whether the detector found fish that differ from
    /// the background both ways; a declared view stays.
    pub fn resolve(self, both_ways: bool) -> CameraView {
        match self {
            CameraView::Auto if both_ways => CameraView::Side,
            CameraView::Auto => CameraView::Top,
            v => v,
        }
    }
}

impl CameraConfig {
    /// The tank name (the camera name when unset).
    pub fn tank_name(&self) -> &str {
        self.tank.as_deref().unwrap_or(&self.name)
    }
}

impl Config {
    /// Reads, parses and validates a TOML file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let cfg = Self::parse(&text, path)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Parses TOML text (no validation). `path` is only used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let de = toml::Deserializer::parse(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            key: "(syntax)".into(),
            message: e.message().to_string(),
        })?;
        serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner();
            ConfigError::Parse {
                path: path.to_path_buf(),
                key,
                message: humanize_types(inner.message()),
            }
        })
    }

    /// Checks every value; pure (touches no device or file).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut names = std::collections::HashSet::new();
        // Tank → the first camera watching it.
        let mut tanks: std::collections::HashMap<&str, &str> = Default::default();
        for (i, cam) in self.cameras.iter().enumerate() {
            let key = format!("cameras[{i}]");
            if cam.name.is_empty()
                || !cam
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(ConfigError::invalid(
                    format!("{key}.name"),
                    format!(
                        "`{}` is not a valid camera name: use letters, digits, `-` or `_`",
                        cam.name
                    ),
                ));
            }
            if !names.insert(cam.name.clone()) {
                return Err(ConfigError::invalid(
                    format!("{key}.name"),
                    format!(
                        "camera name `{}` is used twice: names must be unique",
                        cam.name
                    ),
                ));
            }
            // Each camera keeps its own identities in `<tank>.identity.json`: two cameras on
            // one tank would overwrite each other's file (sharing a tank's gallery between
            // cameras is not implemented).
            if let Some(other) = tanks.insert(cam.tank_name(), &cam.name)
                && self.identity.enabled
            {
                return Err(ConfigError::invalid(
                    format!("{key}.tank"),
                    format!(
                        "cameras `{other}` and `{}` both watch tank `{}`: with identity on, \
                         each camera keeps its own individuals, so give each its own `tank` \
                         (or set `[identity] enabled = false`)",
                        cam.name,
                        cam.tank_name()
                    ),
                ));
            }
            if let Some(p) = cam.population
                && (p == 0 || p > 10_000)
            {
                return Err(ConfigError::invalid(
                    format!("{key}.population"),
                    format!(
                        "{p} is not allowed: use 1..=10000, or leave unset for an unknown population"
                    ),
                ));
            }
            if let Some(s) = cam.mm_per_px
                && !(s.is_finite() && s > 0.0)
            {
                return Err(ConfigError::invalid(
                    format!("{key}.mm_per_px"),
                    format!(
                        "{s} is not allowed: must be a positive number of millimetres per pixel"
                    ),
                ));
            }
            cam.source.validate(&format!("{key}.source"))?;
            cam.detect.validate(&format!("{key}.detect"))?;
            cam.track.validate(&format!("{key}.track"))?;
        }
        self.output.validate("output")?;
        self.http.validate("http")?;
        self.embed.validate("embed")?;
        self.identity.validate("identity")?;
        Ok(())
    }
}

/// Replaces Rust type names in serde's messages with words a config author knows.
fn humanize_types(msg: &str) -> String {
    let mut out = msg.trim_end().to_string();
    for (rust, words) in [
        ("expected u8", "expected an integer 0..=255"),
        ("expected u16", "expected a non-negative integer"),
        ("expected u32", "expected a non-negative integer"),
        ("expected u64", "expected a non-negative integer"),
        ("expected usize", "expected a non-negative integer"),
        ("expected i32", "expected an integer"),
        ("expected i64", "expected an integer"),
        ("expected f32", "expected a number"),
        ("expected f64", "expected a number"),
        ("expected a boolean", "expected true or false"),
    ] {
        if let Some(i) = out.find(rust)
            && !out[i + rust.len()..].starts_with(|c: char| c.is_ascii_alphanumeric())
        {
            out.replace_range(i..i + rust.len(), words);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_key_is_named_with_its_path() {
        let text = "[[cameras]]\nname = \"a\"\nsource = { kind = \"file\", path = \"x.mp4\" }\n[cameras.track]\nmax_coast = 3\n";
        let e = Config::parse(text, Path::new("f.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("f.toml") && e.contains("cameras[0].track") && e.contains("max_coast"),
            "{e}"
        );
    }

    #[test]
    fn wrong_type_says_what_is_expected() {
        let text = "[http]\nstale_after_s = \"soon\"\n";
        let e = Config::parse(text, Path::new("f.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("http.stale_after_s") && e.contains("expected a number"),
            "{e}"
        );
    }

    #[test]
    fn duplicate_camera_names_are_rejected() {
        let text = "[[cameras]]\nname = \"a\"\nsource = { kind = \"file\", path = \"x\" }\n[[cameras]]\nname = \"a\"\nsource = { kind = \"file\", path = \"y\" }\n";
        let cfg = Config::parse(text, Path::new("f.toml")).unwrap();
        let e = cfg.validate().unwrap_err().to_string();
        assert!(e.contains("cameras[1].name") && e.contains("twice"), "{e}");
    }

    #[test]
    fn two_cameras_on_one_tank_are_rejected_while_identity_is_on() {
        let text = |identity: &str| {
            format!(
                "[[cameras]]\nname = \"a\"\ntank = \"t\"\nsource = {{ kind = \"file\", path = \"x\" }}\n\
                 [[cameras]]\nname = \"b\"\nsource = {{ kind = \"file\", path = \"y\" }}\n\
                 [[cameras]]\nname = \"c\"\ntank = \"t\"\nsource = {{ kind = \"file\", path = \"z\" }}\n\
                 {identity}"
            )
        };
        let cfg = Config::parse(&text(""), Path::new("f.toml")).unwrap();
        let e = cfg.validate().unwrap_err().to_string();
        assert!(
            e.contains("cameras[2].tank") && e.contains("`a` and `c` both watch tank `t`"),
            "{e}"
        );
        let off =
            Config::parse(&text("[identity]\nenabled = false\n"), Path::new("f.toml")).unwrap();
        off.validate()
            .expect("without identity a tank may have several cameras");
    }

    #[test]
    fn an_auto_view_resolves_from_the_fish_and_a_declared_one_stays() {
        assert_eq!(CameraView::Auto.resolve(true), CameraView::Side);
        assert_eq!(CameraView::Auto.resolve(false), CameraView::Top);
        assert_eq!(CameraView::Top.resolve(true), CameraView::Top);
        assert_eq!(CameraView::Side.resolve(false), CameraView::Side);
    }

    #[test]
    fn camera_view_is_parsed_and_a_wrong_one_is_named() {
        let cam = |view: &str| {
            format!(
                "[[cameras]]\nname = \"a\"\n{view}source = {{ kind = \"file\", path = \"x\" }}\n"
            )
        };
        let unset = Config::parse(&cam(""), Path::new("f.toml")).unwrap();
        assert_eq!(unset.cameras[0].view, CameraView::Auto);
        let top = Config::parse(&cam("view = \"top\"\n"), Path::new("f.toml")).unwrap();
        assert_eq!(top.cameras[0].view, CameraView::Top);
        let auto = Config::parse(&cam("view = \"auto\"\n"), Path::new("f.toml")).unwrap();
        assert_eq!(auto.cameras[0].view, CameraView::Auto);
        let side = Config::parse(&cam("view = \"side\"\n"), Path::new("f.toml")).unwrap();
        assert_eq!(side.cameras[0].view, CameraView::Side);
        let e = Config::parse(&cam("view = \"front\"\n"), Path::new("f.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("cameras[0].view") && e.contains("front"), "{e}");
    }

    #[test]
    fn empty_file_gives_working_defaults() {
        let cfg = Config::parse("", Path::new("f.toml")).unwrap();
        cfg.validate().unwrap();
        assert!(cfg.cameras.is_empty());
    }
}
