//! Identify: gallery of individuals (HNSW), identity registry and assignment of tracklets to
//! individuals, regrouping of fragments with hindsight, persistence, enrolment (`finprint enroll`)
//! and the HTTP identity API.
//! Must never read pixels or run the model (embeddings come from [`crate::embed`]).
//!
//! One [`Identifier`] per tank, owned by that camera's worker thread. Its registry and gallery
//! sit behind a lock shared with the HTTP API ([`IdentityApi`]).

pub mod enroll;
pub mod gallery;
pub mod http;
pub mod identifier;
pub mod registry;
pub mod solver;

use std::path::PathBuf;

use serde::Deserialize;

use crate::config::ConfigError;

pub use enroll::{EnrollArgs, enroll_cli};
pub use http::router;
pub use identifier::{Identifier, IdentifierState, IdentityApi, IndividualInfo, Sighting};

/// Built-in `accept_similarity` when neither config nor model card sets one. Window means of
/// tracked crops of the right fish sit around 0.7–0.8 with the shipped encoder (clean enrolment
/// crops: median 0.87; other fish, same side: 95th percentile 0.48).
pub const DEFAULT_ACCEPT: f32 = 0.7;
/// Built-in `new_similarity`.
pub const DEFAULT_NEW: f32 = 0.55;
/// Built-in `consistency_similarity`.
pub const DEFAULT_CONSISTENCY: f32 = 0.35;

/// Identity settings (`[identity]`). Similarities are cosine similarities of L2-normalised
/// embeddings (1 = identical); the defaults suit the shipped encoder.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentityConfig {
    /// Recognise individuals at all (default true). Off: `individual` stays empty.
    pub enabled: bool,
    /// Folder for the per-tank state files (`<tank>.identity.json`: registry, gallery, and the
    /// named fragments of the regrouping's window, which the next start regroups with).
    /// Default (unset): `$STATE_DIRECTORY/identity` under systemd (`StateDirectory=`),
    /// otherwise no persistence (identities live for the run only, as in `finprint replay`).
    pub state_dir: Option<PathBuf>,
    /// Save the state at most this often when it changed, seconds (default 60; also at
    /// shutdown and after every API change, at once when an individual is enrolled, and
    /// sooner while a young gallery grows by half between saves).
    pub save_every_s: f64,
    /// Nearest prototypes retrieved per embedding (default 32).
    pub k: usize,
    /// A tracklet is assigned to an individual when its window's mean best similarity to that
    /// individual's prototypes is at least this. Default (unset): the model card's
    /// `thresholds.accept_similarity`, else 0.7.
    pub accept_similarity: Option<f32>,
    /// A tracklet whose window scores below this for every individual is a newcomer (enrolled
    /// after `new_min_observations` over `new_min_span_s`; one that stays unplaceable below
    /// `accept_similarity` for twice that span is enrolled too). Default (unset): the card's
    /// `thresholds.new_similarity`, else 0.55.
    pub new_similarity: Option<f32>,
    /// A newcomer's embeddings must be this similar to each other on average (one fish, not a
    /// track hopping between fish). Default (unset): the card's
    /// `thresholds.consistency_similarity`, else 0.35.
    pub consistency_similarity: Option<f32>,
    /// Required lead of the best individual over the second for a confident assignment that
    /// also teaches the gallery (default 0.15: with many prototypes per individual the runner-up
    /// often scores 0.5–0.65, and a confident mistake teaches the gallery another fish).
    pub margin: f32,
    /// A track keeps its current individual unless another scores higher by this much
    /// (default 0.05).
    pub stickiness: f32,
    /// Embeddings a tracklet needs before it is linked to a known individual (default 2).
    pub min_observations: usize,
    /// Consistent newcomer evidence needed before a new individual is enrolled: embeddings
    /// (default 8) ...
    pub new_min_observations: usize,
    /// ... spanning at least this many seconds (default 1.5).
    pub new_min_span_s: f64,
    /// Known population, nobody enrolled yet: the fish are enrolled together at a moment when
    /// all N but a quarter are in view, apart and recognisable. In a crowded tank that moment
    /// may never come; after waiting this many seconds (stream time) one fish fewer is needed
    /// each further second, down to half the population, and the rest are enrolled one by one
    /// as newcomers (default 3).
    pub enrol_patience_s: f64,
    /// Embeddings kept per tracklet for its vote (default 24).
    pub window: usize,
    /// Embeddings per second of stream time per tank (default 120, about a quarter of one CPU
    /// core with the shipped encoder): new, uncertain and just-unoccluded tracklets go first,
    /// confident ones are refreshed with what is left.
    pub budget_per_s: f64,
    /// Confident tracklets are re-embedded at most this often, seconds (default 0.3: a swap
    /// the contact rule missed shows within a few frames).
    pub refresh_s: f64,
    /// Most prototypes kept per individual (default 48): the most redundant, oldest ones go first.
    pub max_prototypes_per_individual: usize,
    /// A new prototype is stored only when its similarity to every stored prototype of the
    /// individual is below this (default 0.92).
    pub novelty_similarity: f32,
    /// Crops below this quality never become prototypes (default 0.3).
    pub min_quality: f32,
    /// Rebuild the HNSW index when tombstones exceed this fraction (default 0.25).
    pub rebuild_fraction: f32,
    /// Bearer token for mutating HTTP calls (rename, merge, undo). Unset: they are refused.
    pub api_token: Option<String>,
    /// An individual counts as present when one of its tracks matched a detection within this
    /// many seconds (default 2).
    pub present_window_s: f64,
    /// Trajectories and interaction logs are written this many seconds (stream time) after
    /// their frame, so that each stretch of a track between contacts with other fish is
    /// labelled with the individual its evidence settles on, from its first frame (default 10:
    /// on 20 simulated 8-fish tanks 0.940 / 0.945 / 0.947 / 0.945 mean IDF1 at 3 / 6 / 10 /
    /// 15 s, and 0.940 / 0.942 at 3 / 10 s on a second render, BENCHMARKS.md round 16; 0
    /// writes at once with the labels known then). Live counts and `/api/v1/counts` are not
    /// delayed; at most 4096 frames wait, whatever the lag.
    pub label_lag_s: f64,
    /// Tracks whose boxes come closer than this fraction of a box's height count as in contact
    /// (the tracker may swap them), as do tracks sharing a blob of several fish (default 0.2).
    /// After a contact a track's identity is decided afresh from new embeddings.
    pub contact_margin: f32,
    /// Side view: tracks sharing one blob (fish passing in front of one another, which the
    /// detector sees as one) are embedded too, each from a crop cut at its own place; the
    /// crop of the fish in front, which shows whole, then counts as identity evidence inside
    /// the contact, where the tracker may swap fish (default true; on simulated 8-fish tanks
    /// 20–80 % more embeddings, within `budget_per_s`, and replay 8–20 % slower). Ignored for
    /// a top view.
    pub shared_blob_crops: bool,
    /// Every `relabel_every_s`, the fragments (stretches of tracks between contacts) of the
    /// last this many seconds are regrouped into fish with hindsight, all at once: fragments in
    /// view together are different fish, fragments showing one side alike are one fish, and a
    /// track's consecutive fragments are probably one fish. Rows not yet written take the
    /// regrouped individuals (default 30; 0 turns regrouping off and rows take the online
    /// assignment's individuals). Costs a few milliseconds per second of video.
    pub relabel_window_s: f64,
    /// How often the regrouping runs, seconds of stream time (default 0.2). With more than 250
    /// fragments in the window (many fish, many contacts) it runs less often, in proportion to
    /// the square of their number, so that its cost stays bounded.
    pub relabel_every_s: f64,
    /// Regrouping: two fragments' mean embeddings of one side at least this similar are
    /// evidence of one fish, below it of two (default 0.78, suits the shipped encoder: the
    /// same fish's fragments have a median of 0.9, other fish's a 95th percentile of 0.75–0.8).
    /// Where fish in view together look more alike than this (90th percentile of their pairs,
    /// a camera whose crops cannot tell fish apart), the regrouping measures against that
    /// instead ([`solver::solve`]).
    pub relabel_similarity: f32,
    /// Diagnostics: every crop sent to the encoder is also written here as a PNG named
    /// `<camera>_<t>_<track>.png` (`t`: stream time in seconds, as in `trajectories.csv`), for
    /// checking what the encoder sees or training an encoder on this camera's own crops
    /// (`finprint replay --crops-out`). Unset (default): none. Never set it on a daemon left
    /// running: it writes about as many files as embeddings.
    pub crops_dir: Option<PathBuf>,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        IdentityConfig {
            enabled: true,
            state_dir: None,
            save_every_s: 60.0,
            k: 32,
            accept_similarity: None,
            new_similarity: None,
            consistency_similarity: None,
            margin: 0.15,
            stickiness: 0.05,
            min_observations: 2,
            new_min_observations: 8,
            new_min_span_s: 1.5,
            enrol_patience_s: 3.0,
            window: 24,
            budget_per_s: 120.0,
            refresh_s: 0.3,
            max_prototypes_per_individual: 48,
            novelty_similarity: 0.92,
            min_quality: 0.3,
            rebuild_fraction: 0.25,
            api_token: None,
            present_window_s: 2.0,
            label_lag_s: 10.0,
            contact_margin: 0.2,
            shared_blob_crops: true,
            relabel_window_s: 30.0,
            relabel_every_s: 0.2,
            relabel_similarity: 0.78,
            crops_dir: None,
        }
    }
}

impl IdentityConfig {
    /// Checks values without touching devices or files.
    pub fn validate(&self, key: &str) -> Result<(), ConfigError> {
        let bad =
            |field: &str, msg: String| Err(ConfigError::invalid(format!("{key}.{field}"), msg));
        let sim_ok = |v: f32| v.is_finite() && (-1.0..=1.0).contains(&v);
        if !(self.save_every_s.is_finite() && self.save_every_s >= 1.0) {
            return bad(
                "save_every_s",
                format!("{} is not allowed: use ≥ 1 second", self.save_every_s),
            );
        }
        if !(1..=1024).contains(&self.k) {
            return bad(
                "k",
                format!("{} is not allowed: use 1..=1024 neighbours", self.k),
            );
        }
        for (f, v) in [
            ("accept_similarity", self.accept_similarity),
            ("new_similarity", self.new_similarity),
            ("consistency_similarity", self.consistency_similarity),
            ("novelty_similarity", Some(self.novelty_similarity)),
        ] {
            if let Some(v) = v
                && !sim_ok(v)
            {
                return bad(
                    f,
                    format!("{v} is not allowed: a cosine similarity within -1..=1"),
                );
            }
        }
        if let (Some(new), Some(accept)) = (self.new_similarity, self.accept_similarity)
            && new > accept
        {
            return bad(
                "new_similarity",
                format!(
                    "{new} is above accept_similarity {accept}: newcomer evidence must be less similar than an accepted match"
                ),
            );
        }
        for (f, v) in [("margin", self.margin), ("stickiness", self.stickiness)] {
            if !(v.is_finite() && (0.0..=1.0).contains(&v)) {
                return bad(f, format!("{v} is not allowed: use 0..=1"));
            }
        }
        if !(self.relabel_window_s.is_finite() && (0.0..=600.0).contains(&self.relabel_window_s)) {
            return bad(
                "relabel_window_s",
                format!(
                    "{} is not allowed: use 0..=600 seconds (0 turns regrouping off)",
                    self.relabel_window_s
                ),
            );
        }
        if !(self.relabel_every_s.is_finite() && self.relabel_every_s >= 0.1) {
            return bad(
                "relabel_every_s",
                format!("{} is not allowed: use ≥ 0.1 seconds", self.relabel_every_s),
            );
        }
        if !sim_ok(self.relabel_similarity) {
            return bad(
                "relabel_similarity",
                format!(
                    "{} is not allowed: a cosine similarity within -1..=1",
                    self.relabel_similarity
                ),
            );
        }
        if self.label_lag_s > 600.0 {
            return bad(
                "label_lag_s",
                format!("{} is not allowed: use 0..=600 seconds", self.label_lag_s),
            );
        }
        if !(self.contact_margin.is_finite() && (-0.5..=5.0).contains(&self.contact_margin)) {
            return bad(
                "contact_margin",
                format!("{} is not allowed: use -0.5..=5", self.contact_margin),
            );
        }
        if !(0.0..=1.0).contains(&self.min_quality) {
            return bad(
                "min_quality",
                format!("{} is not allowed: use 0..=1", self.min_quality),
            );
        }
        if !(self.rebuild_fraction > 0.0 && self.rebuild_fraction <= 1.0) {
            return bad(
                "rebuild_fraction",
                format!("{} is not allowed: use (0, 1]", self.rebuild_fraction),
            );
        }
        if self.min_observations == 0 || self.min_observations > self.window {
            return bad(
                "min_observations",
                format!(
                    "{} is not allowed: use 1..=window ({})",
                    self.min_observations, self.window
                ),
            );
        }
        if self.new_min_observations == 0 || self.new_min_observations > self.window {
            return bad(
                "new_min_observations",
                format!(
                    "{} is not allowed: use 1..=window ({})",
                    self.new_min_observations, self.window
                ),
            );
        }
        if !(1..=1000).contains(&self.window) {
            return bad(
                "window",
                format!("{} is not allowed: use 1..=1000 embeddings", self.window),
            );
        }
        for (f, v) in [
            ("new_min_span_s", self.new_min_span_s),
            ("enrol_patience_s", self.enrol_patience_s),
            ("refresh_s", self.refresh_s),
            ("present_window_s", self.present_window_s),
            ("label_lag_s", self.label_lag_s),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return bad(
                    f,
                    format!("{v} is not allowed: use a non-negative number of seconds"),
                );
            }
        }
        if !(self.budget_per_s.is_finite() && self.budget_per_s > 0.0) {
            return bad(
                "budget_per_s",
                format!(
                    "{} is not allowed: use a positive number of embeddings per second",
                    self.budget_per_s
                ),
            );
        }
        if !(1..=100_000).contains(&self.max_prototypes_per_individual) {
            return bad(
                "max_prototypes_per_individual",
                format!(
                    "{} is not allowed: use 1..=100000",
                    self.max_prototypes_per_individual
                ),
            );
        }
        if let Some(t) = &self.api_token
            && (t.len() < 8 || t.chars().any(|c| c.is_whitespace() || c.is_control()))
        {
            return bad(
                "api_token",
                "use at least 8 characters without spaces (or leave unset to refuse changes)"
                    .into(),
            );
        }
        if let Some(d) = &self.state_dir
            && d.as_os_str().is_empty()
        {
            return bad(
                "state_dir",
                "empty path: give a folder or leave unset".into(),
            );
        }
        Ok(())
    }

    /// The state folder: `state_dir`, else `$STATE_DIRECTORY/identity` (systemd), else none.
    pub fn resolved_state_dir(&self) -> Option<PathBuf> {
        if let Some(d) = &self.state_dir {
            return Some(d.clone());
        }
        let sd = std::env::var("STATE_DIRECTORY").ok()?;
        // systemd may list several folders separated by ':'; use the first.
        let first = sd.split(':').next().filter(|s| !s.is_empty())?;
        Some(PathBuf::from(first).join("identity"))
    }
}

/// Errors of the identity stage.
#[derive(Debug, thiserror::Error)]
pub enum IdentifyError {
    /// The state file cannot be used.
    #[error("identity state {path}: {message}")]
    Load {
        /// State file.
        path: PathBuf,
        /// What is wrong and what to do.
        message: String,
    },
    /// The state could not be written.
    #[error(
        "cannot save identity state to {path}: {source} (check that identity.state_dir is writable)"
    )]
    Save {
        /// State file.
        path: PathBuf,
        /// I/O error.
        source: std::io::Error,
    },
    /// Enrolment photo folder problem.
    #[error("enroll: {0}")]
    Enroll(String),
    /// The encoder failed.
    #[error(transparent)]
    Embed(#[from] crate::embed::EmbedError),
    /// The config file failed.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Bad API request.
    #[error("{0}")]
    Request(String),
    /// Unknown individual or merge.
    #[error("{0}")]
    NotFound(String),
    /// Conflicting change (name in use, already merged, ...).
    #[error("{0}")]
    Conflict(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_errors_name_the_key() {
        IdentityConfig::default().validate("identity").unwrap();
        let c = IdentityConfig {
            new_similarity: Some(0.9),
            accept_similarity: Some(0.8),
            ..Default::default()
        };
        let e = c.validate("identity").unwrap_err().to_string();
        assert!(e.contains("identity.new_similarity"), "{e}");
        let c = IdentityConfig {
            api_token: Some("short".into()),
            ..Default::default()
        };
        assert!(
            c.validate("identity")
                .unwrap_err()
                .to_string()
                .contains("identity.api_token")
        );
        let c: IdentityConfig =
            toml::from_str("budget_per_s = 12.5\napi_token = \"secret-token\"").unwrap();
        assert_eq!(c.budget_per_s, 12.5);
        assert_eq!(c.k, 32);
        assert!(toml::from_str::<IdentityConfig>("nope = 1").is_err());
    }
}
