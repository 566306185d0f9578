//! Outputs: trajectories, interaction logs, MOTChallenge export, and the HTTP side.
//!
//! Must never change tracks: outputs only read [`crate::messages::TrackedFrame`]s. Must never
//! panic or stop the daemon on a write error: rows stay buffered (bounded), the error names
//! the file, and the next `consume` retries.
//!
//! # What is written
//!
//! Per camera, under `<dir>/<camera>/` (dates are the UTC date of the frame's capture time):
//!
//! | file | with `rotate = "daily"` | with `rotate = "never"` |
//! |---|---|---|
//! | trajectories | `trajectories-YYYY-MM-DD.csv` | `trajectories.csv` |
//! | interactions | `interactions-YYYY-MM-DD.csv` | `interactions.csv` |
//! | MOTChallenge | `mot-YYYY-MM-DD.txt` | `mot.txt` |
//! | counts | `counts-YYYY-MM-DD.csv` | `counts.csv` |
//!
//! **Which tracks**: only *observations* are written — tracks whose status is
//! [`TrackStatus::Confirmed`](crate::messages::TrackStatus) and that matched a detection in this
//! frame. Tentative tracks are not trusted yet, and coasting (`Lost`) positions are predictions,
//! not measurements. The same set feeds the interaction rule.
//!
//! **`trajectories*.csv`** columns:
//! `frame,t,camera,track,individual,x,y,x0,y0,x1,y1,heading,area,x_mm,y_mm,time` —
//! `frame` is the 0-based frame index, `t` the stream time (s), `individual` is empty until
//! identity is known, `x,y` the body centre (px), `x0,y0,x1,y1` the bounding box (px),
//! `heading` radians (0 = +x, y down), `area` px², `x_mm,y_mm` the centre in millimetres when
//! the camera has `mm_per_px` (empty otherwise; the schema is the same for every camera), and
//! `time` the capture time (RFC 3339, UTC, ms).
//!
//! **`interactions*.csv`** columns:
//! `camera,a,b,start,end,duration,min_distance,mean_distance,unit,start_frame,end_frame` —
//! one row per event of [`InteractionDetector`] (rule in [`interactions`]); episodes follow
//! tracks, and `a`/`b` are each track's last known individual, else `track:<id>`; `start`/`end` are capture times (RFC 3339, UTC), `duration` seconds, distances
//! in `unit`. An event is written (and flushed) as soon as it ends; the file of its end date.
//!
//! **`counts*.csv`** columns: `frame,t,camera,visible_fish,tracks,individuals_present,time` —
//! one row per frame: fish in view by the tracker's account (each of several touching fish,
//! and a fish hidden behind another for less than a second, included), confirmed tracks
//! (coasting included), and individuals identified among this frame's observations.
//!
//! **`mot*.txt`** (MOTChallenge, for TrackEval): `frame,id,bb_left,bb_top,w,h,conf,x,y,z`
//! with `frame` = index + 1 (MOT is 1-based), `id` = track id, `conf` = 1, `x,y,z` = -1.
//!
//! Trajectories and MOT rows are written at least every `flush_interval_s`; files are
//! `fsync`ed on rotation and on [`Sinks::close`]. Parquet is not implemented (see
//! [`OutputConfig::parquet`]).
//!
//! **`checkpoint.json`** (`resume = true`): how far the camera's rows go, written every
//! `checkpoint_interval_s` after an `fsync` and at close (before the events the close ends);
//! a restarted run continues a recording after it, with its tracks and open interaction
//! episodes, and a live camera's frame and track numbers ([`checkpoint`],
//! [`Sinks::resume_source`]). A stop's checkpoint also keeps the stages' state its camera sent
//! when it stopped ([`Sinks::keep_resume_state`]), which the outputs store and never read; it
//! goes before the frames that were still waiting for their labels, which a resume writes
//! again.

pub mod checkpoint;
pub mod files;
pub mod http;
pub mod interactions;
pub mod metrics;

pub use checkpoint::Checkpoint;
pub use interactions::{
    DistanceUnit, InteractionDetector, InteractionEvent, InteractionRule, OpenEpisode,
};
pub use metrics::Metrics;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;

use crate::config::ConfigError;
use crate::messages::{ResumeState, TrackSeed, TrackStatus, TrackedFrame};
use files::BufferedFile;

/// The default output folder of `finprint run`: systemd's `StateDirectory=finprint`.
pub const DEFAULT_DIR: &str = "/var/lib/finprint";

/// When output files start a new file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rotate {
    /// One file per UTC day of capture time (`…-YYYY-MM-DD.csv`).
    #[default]
    Daily,
    /// One file for the whole run (`trajectories.csv`, …); what `replay` uses.
    Never,
}

/// `[output.interactions]`: the interaction log and its rule (see [`interactions`]).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InteractionsConfig {
    /// Write `interactions*.csv`. Default `true`.
    pub enabled: bool,
    /// Two fish are close when their centre distance is `≤ distance` (in `unit`). Default 1.5.
    pub distance: f64,
    /// Unit of `distance`: `px`, `mm` (needs the camera's `mm_per_px`) or `body_lengths`
    /// (mean body length of the two fish). Default `body_lengths`.
    pub unit: DistanceUnit,
    /// Minimum time (s) a pair must stay close to be logged. Default 1.0.
    pub min_duration_s: f64,
    /// Separations up to this long (s) do not end an event. Default 0.5.
    pub max_gap_s: f64,
}

impl Default for InteractionsConfig {
    fn default() -> Self {
        InteractionsConfig {
            enabled: true,
            distance: 1.5,
            unit: DistanceUnit::BodyLengths,
            min_duration_s: 1.0,
            max_gap_s: 0.5,
        }
    }
}

impl InteractionsConfig {
    /// The rule for a camera with the given scale.
    pub fn rule(&self, mm_per_px: Option<f64>) -> InteractionRule {
        InteractionRule {
            distance: self.distance,
            unit: self.unit,
            mm_per_px,
            min_duration_s: self.min_duration_s,
            max_gap_s: self.max_gap_s,
        }
    }
}

/// `[output]`: where and what the daemon writes (layout in the module docs).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutputConfig {
    /// Output folder. Default: unset, meaning systemd's `$STATE_DIRECTORY` when set, else
    /// `/var/lib/finprint`. `finprint replay --out DIR` overrides it (see [`Self::for_replay`]).
    pub dir: Option<PathBuf>,
    /// Write `trajectories*.csv`. Default `true`.
    pub trajectories: bool,
    /// Also write a Parquet copy of the trajectories. Default `false`. **Not implemented in
    /// this build**: `true` is rejected by validation.
    pub parquet: bool,
    /// Write the MOTChallenge export `mot*.txt`. Default `true`.
    pub mot: bool,
    /// Write the per-frame population count `counts*.csv` (one row per frame: fish visible,
    /// tracks, individuals present). Default `true`.
    pub counts: bool,
    /// The interaction log.
    pub interactions: InteractionsConfig,
    /// `daily` (default) or `never`.
    pub rotate: Rotate,
    /// Trajectory/MOT rows reach the file at least this often (s). Also the retry interval
    /// after a write error. Default 1.0; 0 writes every frame.
    pub flush_interval_s: f64,
    /// Most unwritten bytes kept in memory per file while the disk fails (MiB); rows beyond
    /// are dropped and counted. Default 64.
    pub max_buffer_mib: u32,
    /// A recording (`file` or `image_sequence` camera) that `finprint run` is restarted on
    /// continues after the rows it already has in `dir` (`<camera>/checkpoint.json`), so a
    /// restart, crash or power cut neither writes rows twice nor loses them; a live camera goes
    /// on numbering frames and tracks (and timing frames) after its last run's. `false`: every
    /// run starts at the recording's first frame and appends its rows again, and numbers from 0.
    /// Default `true`; `finprint replay` never resumes.
    pub resume: bool,
    /// How often a camera's checkpoint is written (s): its files are `fsync`ed first, and
    /// after a crash at most this much of a recording is processed again. Default 10;
    /// allowed 1..=3600.
    pub checkpoint_interval_s: f64,
}

impl Default for OutputConfig {
    fn default() -> Self {
        OutputConfig {
            dir: None,
            trajectories: true,
            parquet: false,
            mot: true,
            counts: true,
            interactions: InteractionsConfig::default(),
            rotate: Rotate::Daily,
            flush_interval_s: 1.0,
            max_buffer_mib: 64,
            resume: true,
            checkpoint_interval_s: 10.0,
        }
    }
}

impl OutputConfig {
    /// Checks values without touching devices or files.
    pub fn validate(&self, key: &str) -> Result<(), ConfigError> {
        if self.parquet {
            return Err(ConfigError::invalid(
                format!("{key}.parquet"),
                "Parquet output is not implemented in this build: set it to false (CSV trajectories are always available)",
            ));
        }
        if !(self.flush_interval_s.is_finite() && (0.0..=3600.0).contains(&self.flush_interval_s)) {
            return Err(ConfigError::invalid(
                format!("{key}.flush_interval_s"),
                format!(
                    "{} is not allowed: use 0..=3600 seconds",
                    self.flush_interval_s
                ),
            ));
        }
        if !(self.checkpoint_interval_s.is_finite()
            && (1.0..=3600.0).contains(&self.checkpoint_interval_s))
        {
            return Err(ConfigError::invalid(
                format!("{key}.checkpoint_interval_s"),
                format!(
                    "{} is not allowed: use 1..=3600 seconds",
                    self.checkpoint_interval_s
                ),
            ));
        }
        if self.max_buffer_mib == 0 || self.max_buffer_mib > 4096 {
            return Err(ConfigError::invalid(
                format!("{key}.max_buffer_mib"),
                format!("{} is not allowed: use 1..=4096 MiB", self.max_buffer_mib),
            ));
        }
        if let Some(d) = &self.dir
            && d.as_os_str().is_empty()
        {
            return Err(ConfigError::invalid(
                format!("{key}.dir"),
                "empty path: set a folder or leave unset for /var/lib/finprint",
            ));
        }
        let i = &self.interactions;
        let k = format!("{key}.interactions");
        if !(i.distance.is_finite() && i.distance > 0.0) {
            return Err(ConfigError::invalid(
                format!("{k}.distance"),
                format!("{} is not allowed: must be a positive distance", i.distance),
            ));
        }
        if !(i.min_duration_s.is_finite() && i.min_duration_s >= 0.0) {
            return Err(ConfigError::invalid(
                format!("{k}.min_duration_s"),
                format!("{} is not allowed: must be ≥ 0 seconds", i.min_duration_s),
            ));
        }
        if !(i.max_gap_s.is_finite() && i.max_gap_s >= 0.0) {
            return Err(ConfigError::invalid(
                format!("{k}.max_gap_s"),
                format!("{} is not allowed: must be ≥ 0 seconds", i.max_gap_s),
            ));
        }
        Ok(())
    }

    /// The folder outputs go to (see [`Self::dir`]).
    pub fn resolved_dir(&self) -> PathBuf {
        if let Some(d) = &self.dir {
            return d.clone();
        }
        // systemd may pass several colon-separated state directories; ours is the first.
        if let Ok(s) = std::env::var("STATE_DIRECTORY")
            && let Some(first) = s.split(':').next()
            && !first.is_empty()
        {
            return PathBuf::from(first);
        }
        PathBuf::from(DEFAULT_DIR)
    }

    /// This config as `finprint replay --out DIR` uses it: outputs in `out`, no rotation
    /// (so files are `<out>/<camera>/trajectories.csv`, …), no resuming, everything else
    /// unchanged.
    pub fn for_replay(&self, out: &Path) -> OutputConfig {
        OutputConfig {
            dir: Some(out.to_path_buf()),
            rotate: Rotate::Never,
            resume: false,
            ..self.clone()
        }
    }
}

/// What the sinks need to know about a camera.
#[derive(Debug, Clone, PartialEq)]
pub struct CameraOutputInfo {
    /// Camera name (also its output sub-folder).
    pub name: String,
    /// Millimetres per pixel, when known (`x_mm,y_mm` columns, `mm` interaction distances).
    pub mm_per_px: Option<f64>,
}

/// Errors of the outputs (files and HTTP).
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// A folder could not be created.
    #[error("cannot create output folder {path}: {source} (check the path and its permissions)")]
    CreateDir {
        /// The folder.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// A file could not be opened for appending.
    #[error(
        "cannot open output file {path}: {source} (check permissions and free space); rows stay buffered and are retried"
    )]
    Open {
        /// The file.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// Writing failed (e.g. disk full); the unwritten rows stay buffered and are retried.
    #[error(
        "cannot write output file {path}: {source} (free disk space or fix the device); rows stay buffered and are retried"
    )]
    Write {
        /// The file.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// A recording's checkpoint is damaged or foreign.
    #[error(
        "checkpoint {path}: {message}; delete it to process the recording from its first frame (its rows already in the output folder are then written again), or set [output] resume = false"
    )]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// `fsync` failed.
    #[error("cannot sync output file {path} to disk: {source}")]
    Sync {
        /// The file.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// Bad configuration for a camera (e.g. `mm` interaction distance without a scale).
    #[error("output config for camera `{camera}`: {message}")]
    Config {
        /// Camera name.
        camera: String,
        /// What is wrong and what to do.
        message: String,
    },
    /// Data was lost when closing (files still failing).
    #[error("closing outputs: {bytes} bytes could not be written ({first})")]
    LostOnClose {
        /// Bytes never written.
        bytes: usize,
        /// The first error seen.
        first: Box<OutputError>,
    },
    /// The HTTP listen address could not be bound.
    #[error(
        "cannot listen on {addr} for HTTP: {source} (is another process using it? change [http] listen)"
    )]
    Bind {
        /// The address.
        addr: String,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The HTTP server failed while running.
    #[error("HTTP server failed: {0}")]
    Serve(std::io::Error),
}

/// Output files of one camera.
struct CameraSinks {
    name: String,
    dir: PathBuf,
    mm_per_px: Option<f64>,
    trajectories: Option<BufferedFile>,
    mot: Option<BufferedFile>,
    counts: Option<BufferedFile>,
    interactions: Option<(InteractionDetector, BufferedFile)>,
    /// Last individual seen on each track (`track:<id>` → individual), to label events.
    names: HashMap<String, String>,
    /// Last frame's (stream time, capture time), to convert event times at `close`.
    last_clock: Option<(f64, SystemTime)>,
    last_flush: Option<Instant>,
    last_attempt_failed: bool,
    /// The camera's checkpoint (resume on, a source that has a resume key).
    checkpoint: Option<Checkpointing>,
}

/// A camera's checkpoint bookkeeping (see [`checkpoint`]).
struct Checkpointing {
    /// The source (`SourceConfig::resume_key`).
    source: String,
    /// Where the next checkpoint goes.
    path: PathBuf,
    /// The checkpoint after the last frame consumed, not yet saved.
    pending: Option<Checkpoint>,
    /// Track ids below this have been seen.
    next_track: u64,
    /// Each confirmed track's centre in the last frame, with that frame's stream time (for the
    /// velocities of the checkpoint's track seeds).
    last_seen: HashMap<u64, (f64, f32, f32)>,
    last_saved: Instant,
    /// The checkpoint last saved (a stage state arriving after it was saved goes with it).
    saved: Option<Checkpoint>,
    /// A stop's stage state, for the checkpoint before the next frame, or the last one
    /// ([`Sinks::keep_resume_state`]).
    awaiting: Option<ResumeState>,
    /// A stop's checkpoint with the stages' state is saved ([`Sinks::keep_resume_state`]):
    /// the rows after it (frames that waited for their labels) do not move it, since a resume
    /// writes them again from that state.
    frozen: bool,
}

impl Checkpointing {
    /// Puts `state` on the checkpoint whose `next_frame` is its [`ResumeState::resume_at`]:
    /// the pending one, else the one saved last (to be saved again), else, when `next` is that
    /// frame and no frame was consumed before it, a new one before it. Returns whether it
    /// found one (the state is dropped with a warning otherwise).
    fn attach(&mut self, camera: &str, state: ResumeState, next: Option<&TrackedFrame>) -> bool {
        let at = state.resume_at();
        if self.pending.is_none() {
            self.pending = self.saved.clone().filter(|cp| cp.next_frame == at);
        }
        if self.pending.is_none()
            && let Some(f) = next.filter(|f| f.index == at)
        {
            self.pending = Some(Checkpoint::before_frame(
                &self.source,
                f.index,
                f.t,
                f.captured,
                self.next_track,
            ));
        }
        match self.pending.as_mut().filter(|cp| cp.next_frame == at) {
            Some(cp) => {
                cp.state = Some(state);
                true
            }
            None => {
                tracing::warn!(
                    camera,
                    resume_at = at,
                    "the stages' state does not follow the rows written; a resumed run \
                     rebuilds the tracks from the rows"
                );
                false
            }
        }
    }

    /// The checkpoint after frame `f`, pending until the files are written.
    fn after(&mut self, f: &TrackedFrame) {
        if self.frozen {
            return;
        }
        for t in &f.tracks {
            self.next_track = self.next_track.max(t.track.saturating_add(1));
        }
        let mut cp =
            Checkpoint::after_frame(&self.source, f.index, f.t, f.captured, self.next_track);
        let mut seen = HashMap::with_capacity(f.tracks.len());
        // Tracks matched to one detection share its blob: the union of their boxes.
        let mut blobs: HashMap<usize, (usize, [f32; 4])> = HashMap::new();
        for t in &f.tracks {
            if let Some(d) = t.detection {
                let b = blobs.entry(d).or_insert((0, t.bbox));
                b.0 += 1;
                b.1 = [
                    b.1[0].min(t.bbox[0]),
                    b.1[1].min(t.bbox[1]),
                    b.1[2].max(t.bbox[2]),
                    b.1[3].max(t.bbox[3]),
                ];
            }
        }
        for t in f
            .tracks
            .iter()
            .filter(|t| t.status != TrackStatus::Tentative)
        {
            let (vx, vy) = match self.last_seen.get(&t.track) {
                Some(&(pt, px, py)) if f.t > pt && f.t - pt < 1.0 => {
                    let dt = (f.t - pt) as f32;
                    ((t.x - px) / dt, (t.y - py) / dt)
                }
                _ => (0.0, 0.0),
            };
            seen.insert(t.track, (f.t, t.x, t.y));
            let blob = t.detection.and_then(|d| blobs.get(&d));
            cp.tracks.push(TrackSeed {
                track: t.track,
                x: t.x,
                y: t.y,
                vx,
                vy,
                bbox: t.bbox,
                heading: t.heading,
                body_length: t.body_length,
                // The fish's own area (the resumed tracker fits tracks on a blob by their
                // areas); else its share of the blob it holds (a report carries the blob's).
                area: if t.fish_area.is_finite() && t.fish_area > 0.0 {
                    t.fish_area
                } else {
                    blob.map_or(t.area, |b| t.area / b.0.max(1) as f32)
                },
                individual: t.individual.clone(),
                shared_box: blob.filter(|b| b.0 >= 2).map(|b| b.1),
            });
        }
        self.last_seen = seen;
        self.pending = Some(cp);
    }
}

const TRAJ_HEADER: &str =
    "frame,t,camera,track,individual,x,y,x0,y0,x1,y1,heading,area,x_mm,y_mm,time\n";
const COUNTS_HEADER: &str = "frame,t,camera,visible_fish,tracks,individuals_present,time\n";
const INTER_HEADER: &str =
    "camera,a,b,start,end,duration,min_distance,mean_distance,unit,start_frame,end_frame\n";

/// All output files of the daemon; feed it every [`TrackedFrame`].
pub struct Sinks {
    cfg: OutputConfig,
    dir: PathBuf,
    cameras: HashMap<String, CameraSinks>,
    metrics: Option<Metrics>,
}

impl std::fmt::Debug for Sinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sinks")
            .field("dir", &self.dir)
            .field("cameras", &self.cameras.len())
            .finish()
    }
}

fn valid_camera_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl Sinks {
    /// Validates `cfg`, creates `<dir>/<camera>/` for every camera (so an unwritable folder is
    /// a startup error) and prepares the writers. Files are opened on first write.
    pub fn build(cfg: &OutputConfig, cameras: &[CameraOutputInfo]) -> Result<Sinks, OutputError> {
        cfg.validate("output").map_err(|e| OutputError::Config {
            camera: "(all)".into(),
            message: e.to_string(),
        })?;
        let dir = cfg.resolved_dir();
        let mut sinks = Sinks {
            cfg: cfg.clone(),
            dir,
            cameras: HashMap::new(),
            metrics: None,
        };
        for cam in cameras {
            let cs = sinks.camera_sinks(&cam.name, cam.mm_per_px)?;
            std::fs::create_dir_all(&cs.dir).map_err(|source| OutputError::CreateDir {
                path: cs.dir.clone(),
                source,
            })?;
            sinks.cameras.insert(cam.name.clone(), cs);
        }
        Ok(sinks)
    }

    /// Reports write errors, buffered bytes and dropped rows into `metrics`.
    pub fn with_metrics(mut self, metrics: Metrics) -> Sinks {
        self.metrics = Some(metrics);
        self
    }

    /// The folder outputs go to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn camera_sinks(&self, name: &str, mm_per_px: Option<f64>) -> Result<CameraSinks, OutputError> {
        if !valid_camera_name(name) {
            return Err(OutputError::Config {
                camera: name.to_string(),
                message: "camera names may only use letters, digits, `-` and `_`".into(),
            });
        }
        let limit = self.cfg.max_buffer_mib as usize * 1024 * 1024;
        let interactions = if self.cfg.interactions.enabled {
            let rule = self.cfg.interactions.rule(mm_per_px);
            let det = InteractionDetector::try_new(rule).map_err(|m| OutputError::Config {
                camera: name.to_string(),
                message: format!("output.interactions: {m}"),
            })?;
            Some((det, BufferedFile::new(INTER_HEADER, limit)))
        } else {
            None
        };
        Ok(CameraSinks {
            name: name.to_string(),
            dir: self.dir.join(name),
            mm_per_px,
            trajectories: self
                .cfg
                .trajectories
                .then(|| BufferedFile::new(TRAJ_HEADER, limit)),
            mot: self.cfg.mot.then(|| BufferedFile::new("", limit)),
            counts: self
                .cfg
                .counts
                .then(|| BufferedFile::new(COUNTS_HEADER, limit)),
            interactions,
            names: HashMap::new(),
            last_clock: None,
            last_flush: None,
            last_attempt_failed: false,
            checkpoint: None,
        })
    }

    /// Keeps a checkpoint for `camera`, whose source is `source` (see [`checkpoint`]), and
    /// returns where that source's rows in the output folder end (its last checkpoint): the
    /// run goes on numbering frames and tracks from there. A `recording` continues after those
    /// frames, with the camera's files cut back to the checkpoint; a live camera's rows are never
    /// cut (its frames cannot be read again). A recording's interaction episodes open at the
    /// checkpoint go on. `None`: start at the first frame.
    pub fn resume_source(
        &mut self,
        camera: &str,
        source: &str,
        recording: bool,
    ) -> Result<Option<Checkpoint>, OutputError> {
        let interval = Duration::from_secs_f64(self.cfg.checkpoint_interval_s);
        let Some(cs) = self.cameras.get_mut(camera) else {
            return Err(OutputError::Config {
                camera: camera.to_string(),
                message: "no such camera in the outputs".into(),
            });
        };
        let path = Checkpoint::path(&cs.dir);
        let loaded = match Checkpoint::load(&path) {
            // A live camera's numbers are not worth stopping for: they start again.
            Err(e) if !recording => {
                tracing::warn!(camera, "{e}; frame and track numbers start again");
                None
            }
            r => r?,
        };
        let resume = match loaded {
            Some(cp) if cp.source == source && !recording => {
                tracing::info!(
                    camera,
                    "{source}: frame and track numbers go on from the last run's (frame {}, track {})",
                    cp.next_frame,
                    cp.next_track
                );
                Some(cp)
            }
            Some(cp) if cp.source == source && cp.rows_gone(&cs.dir) => {
                tracing::warn!(
                    camera,
                    checkpoint = %path.display(),
                    "the output files of {source} are gone: processing it from its first frame"
                );
                None
            }
            Some(cp) if cp.source == source => {
                cp.cut_files(&cs.dir)?;
                if let Some((det, _)) = &mut cs.interactions {
                    let open = det.resume(&cp.interactions, cp.last_t);
                    cs.names.extend(cp.names.clone());
                    if open > 0 {
                        tracing::info!(
                            camera,
                            open,
                            "interaction episodes open at the checkpoint go on"
                        );
                    }
                }
                match cp.next_frame.checked_sub(1) {
                    Some(last) => tracing::info!(
                        camera,
                        frame = cp.next_frame,
                        "{source}: the output folder has its rows up to frame {last}; continuing \
                         after it"
                    ),
                    None => tracing::info!(
                        camera,
                        "{source}: the previous run stopped before it wrote rows; continuing \
                         where it stopped"
                    ),
                }
                Some(cp)
            }
            Some(cp) => {
                tracing::warn!(
                    camera,
                    checkpoint = %path.display(),
                    "the checkpoint is of {}, not of {source}: processing {source} from its first frame (its rows follow the old ones)",
                    cp.source
                );
                None
            }
            None => None,
        };
        cs.checkpoint = Some(Checkpointing {
            source: source.to_string(),
            path,
            pending: None,
            next_track: resume.as_ref().map_or(0, |c| c.next_track),
            last_seen: HashMap::new(),
            awaiting: None,
            frozen: false,
            last_saved: Instant::now()
                .checked_sub(interval)
                .unwrap_or_else(Instant::now),
            saved: None,
        });
        Ok(resume)
    }

    /// Writes one frame's observations (see the module docs). On a write error the rows stay
    /// buffered, the error (naming the file) is returned for the caller to log, and the write
    /// is retried on a later call (at most every `flush_interval_s`). Never panics.
    pub fn consume(&mut self, f: &TrackedFrame) -> Result<(), OutputError> {
        let name: &str = &f.camera;
        if !self.cameras.contains_key(name) {
            tracing::warn!(
                camera = name,
                "outputs: frame from a camera not in the config; writing it without a mm scale"
            );
            let cs = self.camera_sinks(name, None)?;
            self.cameras.insert(name.to_string(), cs);
        }
        let interval = Duration::from_secs_f64(self.cfg.flush_interval_s);
        let rotate = self.cfg.rotate;
        let Some(cs) = self.cameras.get_mut(name) else {
            return Ok(());
        };
        // A stop's state with frames following it: its checkpoint goes before them.
        if let Some(state) = cs.checkpoint.as_mut().and_then(|c| c.awaiting.take()) {
            save_before_waiting_frames(cs, state, f, rotate);
        }
        // Stream time going backwards (source restarted, PTS reset): end the open interaction
        // episodes at the old clock, so the detector does not ignore the new stream.
        let mut new_events = false;
        if let (Some((last_t, last_cap)), Some((det, file))) = (cs.last_clock, &mut cs.interactions)
            && f.t < last_t
        {
            tracing::info!(
                camera = name,
                "stream time went backwards; closing open interaction events"
            );
            for e in det.finish() {
                let row = event_row(
                    &cs.name,
                    &label(&cs.names, e.clone()),
                    det.rule().unit,
                    last_t,
                    last_cap,
                );
                let end_date = date_of(shift(last_cap, e.end - last_t));
                let path = file_path(&cs.dir, "interactions", "csv", rotate, &end_date);
                file.push_row(&path, row.as_bytes());
                new_events = true;
            }
        }
        cs.last_clock = Some((f.t, f.captured));
        let date = date_of(f.captured);
        let time = rfc3339(f.captured);

        let observed: Vec<_> = f
            .tracks
            .iter()
            .filter(|t| t.status == TrackStatus::Confirmed && t.detection.is_some())
            .collect();

        if let Some(file) = &mut cs.trajectories {
            let path = file_path(&cs.dir, "trajectories", "csv", rotate, &date);
            let mut row = String::with_capacity(160);
            for t in &observed {
                row.clear();
                let ind = t.individual.as_deref().map(csv_field).unwrap_or_default();
                let _ = write!(
                    row,
                    "{},{:.4},{},{},{},{:.2},{:.2},{:.2},{:.2},{:.2},{:.2},{:.4},{:.1},",
                    f.index,
                    f.t,
                    cs.name,
                    t.track,
                    ind,
                    t.x,
                    t.y,
                    t.bbox[0],
                    t.bbox[1],
                    t.bbox[2],
                    t.bbox[3],
                    t.heading,
                    t.area
                );
                if let Some(s) = cs.mm_per_px {
                    let _ = write!(row, "{:.3},{:.3}", f64::from(t.x) * s, f64::from(t.y) * s);
                } else {
                    row.push(',');
                }
                let _ = writeln!(row, ",{time}");
                file.push_row(&path, row.as_bytes());
            }
        }
        if let Some(file) = &mut cs.mot {
            let path = file_path(&cs.dir, "mot", "txt", rotate, &date);
            let mut row = String::with_capacity(80);
            for t in &observed {
                row.clear();
                let _ = writeln!(
                    row,
                    "{},{},{:.2},{:.2},{:.2},{:.2},1,-1,-1,-1",
                    f.index + 1,
                    t.track,
                    t.bbox[0],
                    t.bbox[1],
                    t.bbox[2] - t.bbox[0],
                    t.bbox[3] - t.bbox[1]
                );
                file.push_row(&path, row.as_bytes());
            }
        }
        if let Some(file) = &mut cs.counts {
            let path = file_path(&cs.dir, "counts", "csv", rotate, &date);
            let tracks = f
                .tracks
                .iter()
                .filter(|t| t.status != TrackStatus::Tentative)
                .count();
            let mut present: Vec<&str> = observed
                .iter()
                .filter_map(|t| t.individual.as_deref())
                .collect();
            present.sort_unstable();
            present.dedup();
            let row = format!(
                "{},{:.4},{},{},{},{},{time}\n",
                f.index,
                f.t,
                cs.name,
                f.visible_fish,
                tracks,
                present.len()
            );
            file.push_row(&path, row.as_bytes());
        }
        if let Some((det, file)) = &mut cs.interactions {
            // Episodes follow tracks (stable within a contact even while identity is still
            // settling); events are labelled with each track's last known individual.
            let fish: Vec<(String, f32, f32, f32)> = observed
                .iter()
                .map(|t| {
                    let id = format!("track:{}", t.track);
                    if let Some(i) = &t.individual {
                        cs.names.insert(id.clone(), i.clone());
                    }
                    (id, t.x, t.y, t.body_length)
                })
                .collect();
            let events = det.update(f.t, f.index, &fish);
            new_events |= !events.is_empty();
            for e in events {
                let row = event_row(
                    &cs.name,
                    &label(&cs.names, e.clone()),
                    det.rule().unit,
                    f.t,
                    f.captured,
                );
                let end_date = date_of(shift(f.captured, e.end - f.t));
                let path = file_path(&cs.dir, "interactions", "csv", rotate, &end_date);
                file.push_row(&path, row.as_bytes());
            }
        }

        if let Some(cp) = &mut cs.checkpoint {
            cp.after(f);
        }

        // Flush: when due, or at once for new interaction events; after a failure at most
        // once per interval.
        let due = cs.last_flush.is_none_or(|l| l.elapsed() >= interval);
        let every = Duration::from_secs_f64(self.cfg.checkpoint_interval_s);
        let result = if due {
            // Everything, including retries after a failure.
            cs.last_flush = Some(Instant::now());
            // A checkpoint due: the files are made durable with this flush, then it is saved.
            let checkpoint = cs
                .checkpoint
                .as_ref()
                .is_some_and(|c| c.last_saved.elapsed() >= every);
            let r = flush_camera(cs, true, checkpoint);
            cs.last_attempt_failed = r.is_err();
            r.and_then(|()| {
                if checkpoint {
                    save_checkpoint(cs, rotate)
                } else {
                    Ok(())
                }
            })
        } else if new_events && !cs.last_attempt_failed {
            // Ended interaction events go out at once; trajectories keep their schedule.
            let r = flush_camera(cs, false, false);
            cs.last_attempt_failed = r.is_err();
            r
        } else {
            Ok(())
        };
        if let Some(m) = &self.metrics {
            report_metrics(m, cs, result.as_ref().err());
        }
        result
    }

    /// Keeps `camera`'s stage state, sent when it stopped ([`crate::messages::ToWriter::Resume`]),
    /// with the checkpoint before the first frame whose rows were not written then
    /// ([`ResumeState::resume_at`]): the checkpoint after the last frame consumed when no frame
    /// follows (saved at [`Sinks::close`]); otherwise the frames that follow waited for their
    /// labels and the state holds them, so the checkpoint is saved before the first of them
    /// is written and they do not move it: a resume cuts their rows off and writes them again
    /// as an uninterrupted run would. A camera without checkpoints drops the state.
    pub fn keep_resume_state(&mut self, camera: &str, state: ResumeState) {
        if let Some(c) = self
            .cameras
            .get_mut(camera)
            .and_then(|cs| cs.checkpoint.as_mut())
        {
            c.awaiting = Some(state);
        }
    }

    /// Writes everything buffered now (all files of all cameras), e.g. from a timer while no
    /// frames arrive. Tries every file; returns the first error (rows stay buffered).
    pub fn flush(&mut self) -> Result<(), OutputError> {
        let mut first = None;
        for cs in self.cameras.values_mut() {
            cs.last_flush = Some(Instant::now());
            let r = flush_camera(cs, true, false);
            cs.last_attempt_failed = r.is_err();
            if let Some(m) = &self.metrics {
                report_metrics(m, cs, r.as_ref().err());
            }
            if let Err(e) = r {
                first.get_or_insert(e);
            }
        }
        match first {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }

    /// Ends the run: writes everything buffered, `fsync`s every file and saves the checkpoint
    /// (with the interaction episodes still open), then finishes the open interaction events
    /// (logging those long enough) and `fsync`s again. Bytes that still cannot be written are
    /// reported in the error.
    pub fn close(mut self) -> Result<(), OutputError> {
        let rotate = self.cfg.rotate;
        let mut first: Option<OutputError> = None;
        let mut lost = 0usize;
        let mut names: Vec<String> = self.cameras.keys().cloned().collect();
        names.sort();
        for name in names {
            let Some(cs) = self.cameras.get_mut(&name) else {
                continue;
            };
            // A stop's state with no frame after it: on the checkpoint after the last frame.
            if let Some(c) = cs.checkpoint.as_mut()
                && let Some(state) = c.awaiting.take()
            {
                c.attach(&cs.name, state, None);
            }
            // The checkpoint first, with the interaction episodes still open: the events
            // this stop ends are written after the lengths it records, so a run that resumes
            // the recording cuts them off and continues the episodes instead.
            let saved = flush_camera(cs, true, true).and_then(|()| save_checkpoint(cs, rotate));
            if let Some((det, file)) = &mut cs.interactions {
                let (t, captured) = cs.last_clock.unwrap_or((0.0, SystemTime::now()));
                for e in det.finish() {
                    let row = event_row(
                        &cs.name,
                        &label(&cs.names, e.clone()),
                        det.rule().unit,
                        t,
                        captured,
                    );
                    let end_date = date_of(shift(captured, e.end - t));
                    let path = file_path(&cs.dir, "interactions", "csv", rotate, &end_date);
                    file.push_row(&path, row.as_bytes());
                }
            }
            let r = saved.and(flush_camera(cs, true, true));
            if let Some(m) = &self.metrics {
                report_metrics(m, cs, r.as_ref().err());
            }
            if let Err(e) = r {
                tracing::error!("{e}");
                first.get_or_insert(e);
            }
            lost += buffered(cs);
        }
        match first {
            None => Ok(()),
            Some(e) if lost == 0 => Err(e),
            Some(e) => Err(OutputError::LostOnClose {
                bytes: lost,
                first: Box::new(e),
            }),
        }
    }

    /// Bytes waiting in memory for `camera`'s files (non-zero while a disk fails).
    pub fn buffered_bytes(&self, camera: &str) -> usize {
        self.cameras.get(camera).map(buffered).unwrap_or(0)
    }

    /// Rows dropped for `camera` because the bounded buffer was full.
    pub fn dropped_rows(&self, camera: &str) -> u64 {
        self.cameras.get(camera).map(dropped).unwrap_or(0)
    }
}

fn buffered(cs: &CameraSinks) -> usize {
    cs.trajectories.as_ref().map_or(0, |f| f.buffered_bytes())
        + cs.mot.as_ref().map_or(0, |f| f.buffered_bytes())
        + cs.counts.as_ref().map_or(0, |f| f.buffered_bytes())
        + cs.interactions
            .as_ref()
            .map_or(0, |(_, f)| f.buffered_bytes())
}

fn dropped(cs: &CameraSinks) -> u64 {
    cs.trajectories.as_ref().map_or(0, |f| f.dropped_rows())
        + cs.mot.as_ref().map_or(0, |f| f.dropped_rows())
        + cs.counts.as_ref().map_or(0, |f| f.dropped_rows())
        + cs.interactions
            .as_ref()
            .map_or(0, |(_, f)| f.dropped_rows())
}

/// Flushes the interaction file always, trajectories and MOT when `all`; `sync` adds fsync.
/// Tries every file; returns the first error.
fn flush_camera(cs: &mut CameraSinks, all: bool, sync: bool) -> Result<(), OutputError> {
    let mut files: Vec<&mut BufferedFile> = Vec::with_capacity(3);
    if let Some((_, f)) = &mut cs.interactions {
        files.push(f);
    }
    if all {
        files.extend(cs.trajectories.as_mut());
        files.extend(cs.mot.as_mut());
        files.extend(cs.counts.as_mut());
    }
    let mut first = None;
    for file in files {
        let r = if sync { file.sync() } else { file.flush() };
        if let Err(e) = r {
            first.get_or_insert(e);
        }
    }
    match first {
        None => Ok(()),
        Some(e) => Err(e),
    }
}

/// Saves the checkpoint before `f` (the first frame a stop's `state` holds, see
/// [`Sinks::keep_resume_state`]) with the state, before `f`'s rows are written, and keeps it
/// from moving. When it cannot be saved (a full disk) the state is dropped (logged) and the
/// checkpoints go on as without it.
fn save_before_waiting_frames(
    cs: &mut CameraSinks,
    state: ResumeState,
    f: &TrackedFrame,
    rotate: Rotate,
) {
    let Some(c) = cs.checkpoint.as_mut() else {
        return;
    };
    if !c.attach(&cs.name, state, Some(f)) {
        return;
    }
    let saved = flush_camera(cs, true, true).and_then(|()| save_checkpoint(cs, rotate));
    let Some(c) = cs.checkpoint.as_mut() else {
        return;
    };
    match saved {
        Ok(()) => c.frozen = true,
        Err(e) => {
            tracing::error!(
                camera = %cs.name,
                "cannot save the checkpoint with the stages' state ({e}); a resumed run \
                 rebuilds the tracks from the rows"
            );
            if let Some(cp) = c.pending.as_mut() {
                cp.state = None;
            }
        }
    }
}

/// Saves the camera's pending checkpoint (if any) with the length of each file its rows go to
/// now, so a resume can cut off what comes after. Call once the camera's files are flushed
/// and `fsync`ed (`flush_camera(cs, true, true)`): a checkpoint never claims rows not on disk.
fn save_checkpoint(cs: &mut CameraSinks, rotate: Rotate) -> Result<(), OutputError> {
    let Some(mut cp) = cs.checkpoint.as_ref().and_then(|c| c.pending.clone()) else {
        return Ok(());
    };
    let origin = cp.origin();
    let date_at = |t: f64| date_of(origin + Duration::from_secs_f64(t.clamp(0.0, 1e9)));
    let date = date_at(cp.last_t);
    let kinds = [
        ("trajectories", "csv", cs.trajectories.is_some()),
        ("mot", "txt", cs.mot.is_some()),
        ("counts", "csv", cs.counts.is_some()),
        ("interactions", "csv", cs.interactions.is_some()),
    ];
    // Daily files: rows after the checkpoint may reach the next day's files before a crash;
    // their length now (none yet, as a rule), so a resume cuts them off too.
    let mut days = vec![date.clone()];
    if rotate == Rotate::Daily {
        days.push(date_at(cp.last_t + 86_400.0));
    }
    let mut files: Vec<(&str, &str, bool, String)> = days
        .iter()
        .flat_map(|d| {
            kinds
                .iter()
                .map(|&(stem, ext, on)| (stem, ext, on, d.clone()))
        })
        .collect();
    if let Some((det, _)) = &cs.interactions {
        cp.interactions = det.open_episodes();
        for e in &cp.interactions {
            for id in [&e.a, &e.b] {
                if let Some(n) = cs.names.get(id) {
                    cp.names.insert(id.clone(), n.clone());
                }
            }
            // An open episode that a stop ends goes to the file of its last close frame's
            // day (daily files): that file's length too, so a resume cuts the event off.
            let day = date_at(e.last);
            if !days.contains(&day) {
                files.push(("interactions", "csv", true, day));
            }
        }
    }
    for (stem, ext, on, date) in files {
        if !on {
            continue;
        }
        let path = file_path(&cs.dir, stem, ext, rotate, &date);
        let len = match std::fs::metadata(&path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(source) => return Err(OutputError::Open { path, source }),
        };
        if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
            cp.files.insert(name.to_string(), len);
        }
    }
    let Some(c) = &mut cs.checkpoint else {
        return Ok(());
    };
    cp.save(&c.path)?;
    c.pending = None;
    c.last_saved = Instant::now();
    c.saved = Some(cp);
    Ok(())
}

fn report_metrics(m: &Metrics, cs: &CameraSinks, err: Option<&OutputError>) {
    m.set_output_buffered_bytes(&cs.name, buffered(cs) as i64);
    m.set_output_dropped_rows(&cs.name, dropped(cs));
    if err.is_some() {
        m.inc_output_write_errors(&cs.name);
    }
}

/// The event with track keys replaced by their individuals where known (`a < b` kept).
fn label(names: &HashMap<String, String>, mut e: InteractionEvent) -> InteractionEvent {
    if let Some(n) = names.get(&e.a) {
        e.a = n.clone();
    }
    if let Some(n) = names.get(&e.b) {
        e.b = n.clone();
    }
    if e.b < e.a {
        std::mem::swap(&mut e.a, &mut e.b);
    }
    e
}

fn event_row(
    camera: &str,
    e: &InteractionEvent,
    unit: DistanceUnit,
    t: f64,
    captured: SystemTime,
) -> String {
    format!(
        "{},{},{},{},{},{:.3},{:.3},{:.3},{},{},{}\n",
        camera,
        csv_field(&e.a),
        csv_field(&e.b),
        rfc3339(shift(captured, e.start - t)),
        rfc3339(shift(captured, e.end - t)),
        e.duration,
        e.min_distance,
        e.mean_distance,
        unit.as_str(),
        e.start_frame,
        e.end_frame
    )
}

/// `captured` moved by `dt` seconds (either sign); unchanged when `dt` is not finite.
fn shift(captured: SystemTime, dt: f64) -> SystemTime {
    if !dt.is_finite() {
        return captured;
    }
    let d = Duration::from_secs_f64(dt.abs().min(1e9));
    if dt >= 0.0 {
        captured.checked_add(d)
    } else {
        captured.checked_sub(d)
    }
    .unwrap_or(captured)
}

fn date_of(t: SystemTime) -> String {
    DateTime::<Utc>::from(t).format("%Y-%m-%d").to_string()
}

/// RFC 3339 UTC, rounded to the millisecond (so times shifted by float seconds print stably).
fn rfc3339(t: SystemTime) -> String {
    use chrono::SubsecRound;
    DateTime::<Utc>::from(t)
        .round_subsecs(3)
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn file_path(dir: &Path, stem: &str, ext: &str, rotate: Rotate, date: &str) -> PathBuf {
    match rotate {
        Rotate::Daily => dir.join(format!("{stem}-{date}.{ext}")),
        Rotate::Never => dir.join(format!("{stem}.{ext}")),
    }
}

/// A CSV field, quoted when it holds a comma, quote or line break.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}
