//! Ingest: turns a camera, RTSP stream, video file or image sequence into [`Frame`]s through
//! GStreamer, one thread per source ([`spawn`]), delivered as [`IngestEvent`]s on a channel.
//!
//! Recordings (`file`, `image_sequence`, non-live `test_pattern`) deliver every frame with a
//! blocking send and end with [`IngestEvent::Eos`], or [`IngestEvent::Fatal`] with a one-line
//! reason (missing, unreadable, not-a-video, corrupt or truncated file). Live sources (`rtsp`,
//! `v4l2`, live `test_pattern`) never block on the consumer: a frame that does not fit into the
//! channel is dropped and counted; after an error, end of stream or stall they tear the pipeline
//! down, back off, rebuild, and report the outage as [`IngestEvent::Gap`] once frames flow again.
//!
//! Frames keep the decoder's layout (I420 or GRAY8, tightly packed): this module never converts
//! colour when it does not have to, and must never look at frame content (no detection here).

mod config;
mod frame;
mod pipeline;
mod run;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::SystemTime;

use crossbeam_channel::Sender;
use gstreamer as gst;

pub use config::{ReconnectConfig, SourceConfig};

use crate::config::ConfigError;
#[allow(unused_imports)]
use crate::messages::Frame;

/// Where a source continues after a restart (from the outputs' checkpoint). A recording
/// continues after the frames a previous run processed; a live source only goes on numbering
/// its frames and timing them from the first run's origin (the frames of the downtime do not
/// exist).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Resume {
    /// Index of the first frame delivered.
    pub next_frame: u64,
    /// Recordings: frames up to this stream time (s) were processed before and are skipped
    /// (by a seek where the recording allows one, else by decoding past them).
    pub after_t: f64,
    /// Capture time of stream time 0, so stream and capture times go on from the first run's.
    pub origin: SystemTime,
    /// Recordings: this many frames before the resume point are read again and sent as
    /// [`IngestEvent::Warmup`], so the detector learns its background (and the typical fish)
    /// from the moments before the restart, as the previous run had them, instead of from the
    /// frames after it (a fish resting there would be learned into the background).
    pub warmup_frames: u64,
}

/// What a source sends to the pipeline.
#[derive(Debug)]
pub enum IngestEvent {
    /// One decoded frame.
    Frame(Frame),
    /// Resuming a recording: a frame a previous run processed, read again (see
    /// [`Resume::warmup_frames`]) for the detector to learn from; it has no outputs. Warm-up
    /// frames come before the first [`IngestEvent::Frame`] and carry no frame number of their
    /// own (`index` 0).
    Warmup(Frame),
    /// A live source was down (or stalled) and frames flow again: no frames exist between
    /// `from` (the last frame before the outage, or when the source started) and `to` (the first
    /// frame after it).
    Gap {
        /// Camera name.
        camera: Arc<str>,
        /// Capture time of the last frame before the outage (source start if there was none).
        from: SystemTime,
        /// Capture time of the first frame after the outage.
        to: SystemTime,
        /// Why the stream was lost (first failure of the outage).
        reason: String,
    },
    /// A recording ended normally; no more events follow.
    Eos,
    /// The source cannot continue (bad file, missing plug-in); no more events follow.
    Fatal(IngestError),
}

/// Ingest failures. Each message is one line naming the file, URL or device and what is wrong.
#[derive(Debug, Clone, thiserror::Error)]
pub enum IngestError {
    /// The source config does not validate.
    #[error("invalid source config: {0}")]
    Config(String),
    /// GStreamer itself could not start.
    #[error("cannot initialise GStreamer: {0}")]
    Init(String),
    /// A GStreamer element the source needs is not installed.
    #[error("GStreamer element `{element}` is not installed: install the Debian package {package}")]
    MissingElement {
        /// Element factory name.
        element: String,
        /// Debian package that ships it.
        package: &'static str,
    },
    /// The file (or the first image of a sequence) does not exist.
    #[error("{what}: {path} does not exist: check the path")]
    NotFound {
        /// The source, e.g. `file /data/a.mp4`.
        what: String,
        /// The missing path.
        path: String,
    },
    /// The file exists but cannot be opened or read.
    #[error("{what}: cannot open: {message}")]
    Open {
        /// The source.
        what: String,
        /// Why.
        message: String,
    },
    /// The file is not a video GStreamer recognises.
    #[error("{what}: not a video file (the format was not recognised: {detail})")]
    NotVideo {
        /// The source.
        what: String,
        /// GStreamer's message.
        detail: String,
    },
    /// The container holds no video stream.
    #[error("{what}: contains no video stream")]
    NoVideoStream {
        /// The source.
        what: String,
    },
    /// No decoder is installed for the stream's codec.
    #[error(
        "{what}: no decoder installed for this video format ({detail}): install \
         gstreamer1.0-libav and gstreamer1.0-plugins-{{good,bad,ugly}}"
    )]
    MissingDecoder {
        /// The source.
        what: String,
        /// GStreamer's message.
        detail: String,
    },
    /// The container or the video data is damaged.
    #[error("{what}: corrupt, truncated or unsupported video: {detail}")]
    Corrupt {
        /// The source.
        what: String,
        /// GStreamer's message.
        detail: String,
    },
    /// The stream ended well before the duration the file declares.
    #[error(
        "{what}: truncated: the video ends at {ended_s:.2} s but the file declares {declared_s:.2} s"
    )]
    Truncated {
        /// The source.
        what: String,
        /// Where decoding ended, seconds.
        ended_s: f64,
        /// Duration in the file header, seconds.
        declared_s: f64,
    },
    /// No frame arrived for too long.
    #[error("{what}: no frame decoded for {seconds:.0} s: the file or device is stuck")]
    Stalled {
        /// The source.
        what: String,
        /// How long without a frame.
        seconds: f64,
    },
    /// Any other GStreamer failure.
    #[error("{what}: {message}")]
    Pipeline {
        /// The source.
        what: String,
        /// What failed.
        message: String,
    },
    /// The ingest thread could not be started.
    #[error("cannot start the ingest thread for camera {camera}: {message}")]
    Thread {
        /// Camera name.
        camera: String,
        /// OS error.
        message: String,
    },
}

impl From<ConfigError> for IngestError {
    fn from(e: ConfigError) -> Self {
        IngestError::Config(e.to_string())
    }
}

/// Live counters of one source, shared with the metrics endpoint. All fields are monotonic
/// except `last_frame_unix_ms` and `connected`.
#[derive(Debug, Default)]
pub struct IngestStats {
    /// Frames delivered into the channel.
    pub frames: AtomicU64,
    /// Frames dropped because the consumer was behind (live sources only; recordings never drop).
    pub drops: AtomicU64,
    /// Reconnect attempts after a failure (live sources only).
    pub reconnects: AtomicU64,
    /// Wall-clock time of the last delivered frame, ms since the Unix epoch (0: none yet).
    pub last_frame_unix_ms: AtomicU64,
    /// True while frames flow (set on the first frame of a connection, cleared on failure).
    pub connected: AtomicBool,
}

/// A copy of [`IngestStats`] at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IngestStatsSnapshot {
    /// Frames delivered.
    pub frames: u64,
    /// Frames dropped.
    pub drops: u64,
    /// Reconnect attempts.
    pub reconnects: u64,
    /// Last frame time, ms since the Unix epoch (0: none yet).
    pub last_frame_unix_ms: u64,
    /// Frames currently flowing.
    pub connected: bool,
}

impl IngestStats {
    /// Reads all counters.
    pub fn snapshot(&self) -> IngestStatsSnapshot {
        IngestStatsSnapshot {
            frames: self.frames.load(Ordering::Relaxed),
            drops: self.drops.load(Ordering::Relaxed),
            reconnects: self.reconnects.load(Ordering::Relaxed),
            last_frame_unix_ms: self.last_frame_unix_ms.load(Ordering::Relaxed),
            connected: self.connected.load(Ordering::Relaxed),
        }
    }
}

/// A running source: its thread and its counters.
#[derive(Debug)]
pub struct SourceHandle {
    camera: Arc<str>,
    thread: JoinHandle<()>,
    stats: Arc<IngestStats>,
}

impl SourceHandle {
    /// The source's counters (shared, live).
    pub fn stats(&self) -> Arc<IngestStats> {
        self.stats.clone()
    }

    /// Camera name.
    pub fn camera(&self) -> &str {
        &self.camera
    }

    /// True once the thread has ended (after `Eos`, `Fatal`, stop, or a dropped receiver).
    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }

    /// Waits for the thread to end (set the stop flag first for live sources). A panic inside the
    /// thread is logged, not propagated.
    pub fn join(self) {
        if self.thread.join().is_err() {
            tracing::error!(camera = %self.camera, "ingest thread panicked");
        }
    }
}

/// Starts one source on its own thread. Events go to `tx`; setting `stop` ends the thread within
/// about a second (also while reconnecting or waiting on a dead camera); dropping the receiver
/// ends it too.
///
/// Checks done here, before any thread starts: the config validates, GStreamer and the needed
/// elements are installed, a file path (or the first image of a sequence) exists and is readable.
/// Live sources that cannot connect are not an error here: they retry with backoff.
/// A recording given `resume` continues after the frames a previous run processed; a live source
/// numbers and times its frames on from it.
pub fn spawn(
    camera: &str,
    cfg: &SourceConfig,
    resume: Option<Resume>,
    tx: Sender<IngestEvent>,
    stop: Arc<AtomicBool>,
) -> Result<SourceHandle, IngestError> {
    cfg.validate("source")?;
    gst::init().map_err(|e| IngestError::Init(e.to_string()))?;
    pipeline::check_elements(cfg)?;
    preflight(cfg)?;
    let camera: Arc<str> = Arc::from(camera);
    let stats = Arc::new(IngestStats::default());
    let ctx = run::Ctx::new(camera.clone(), cfg.clone(), resume, tx, stop, stats.clone());
    let thread = std::thread::Builder::new()
        .name(format!("ingest-{camera}"))
        .spawn(move || ctx.run())
        .map_err(|e| IngestError::Thread {
            camera: camera.to_string(),
            message: e.to_string(),
        })?;
    Ok(SourceHandle {
        camera,
        thread,
        stats,
    })
}

/// Cheap checks on local files, so that a typo fails at start with a clear message.
fn preflight(cfg: &SourceConfig) -> Result<(), IngestError> {
    let local = match cfg {
        SourceConfig::File { path } if !path.contains("://") => path.clone(),
        SourceConfig::ImageSequence {
            pattern,
            start_index,
            ..
        } => match config::SeqPattern::parse(pattern) {
            Ok(p) => p.format(u64::from(*start_index)),
            Err(m) => return Err(IngestError::Config(m)),
        },
        _ => return Ok(()),
    };
    let what = cfg.describe();
    let meta = match std::fs::metadata(&local) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(IngestError::NotFound { what, path: local });
        }
        Err(e) => {
            return Err(IngestError::Open {
                what,
                message: format!("{local}: {e}"),
            });
        }
    };
    if meta.is_dir() {
        return Err(IngestError::Open {
            what,
            message: format!("{local} is a directory, not a video file"),
        });
    }
    if let Err(e) = std::fs::File::open(&local) {
        return Err(IngestError::Open {
            what,
            message: format!("{local}: {e}"),
        });
    }
    if meta.len() == 0 {
        return Err(IngestError::Corrupt {
            what,
            detail: format!("{local} is empty (0 bytes)"),
        });
    }
    Ok(())
}
