//! Pipeline: wires the stages of each camera with threads and typed channels, and implements
//! `finprint replay`. Must never implement a stage's logic itself: it only moves messages
//! (ingest → detect → track → identity → outputs), times the stages and reports progress.
//!
//! Threads: per camera one ingest source (GStreamer streaming thread feeding a bounded
//! channel) and one worker (detect + track + identity); one writer owns every output file.
//! Shutdown travels with the data: when a source ends (end of file, or `stop`), its channel
//! disconnects, the worker drains what it holds, sends a recording's stage state after its last
//! frame (detector, tracker, and the identity step with the frames it still holds for their
//! labels: [`ToWriter::Resume`], kept with the checkpoint before those frames), writes the held
//! frames and ends, then the writer closes every file.

mod identity;
mod replay;

pub use identity::IdentityState;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, UNIX_EPOCH};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, bounded};

pub use replay::{ReplayArgs, replay, replay_config};

use crate::config::{CameraConfig, CameraView, Config};
use crate::detect::{CropSpec, DetectError, Detector, oriented_crop};
use crate::embed::{Collect, EmbedError, EmbedQueue, EmbedService};
use crate::identify::{Identifier, IdentifyError, IdentityApi};
use crate::ingest::{self, IngestError, IngestEvent, SourceHandle};
use crate::messages::{Crop, DetectedFrame, Frame, ResumeState, ToWriter, TrackedFrame};
use crate::output::http::{LiveCamera, LiveState};
use crate::output::metrics::Metrics;
use crate::output::{CameraOutputInfo, OutputError, Sinks};
use crate::track::Tracker;
use identity::{CropPlace, IdentityStep};

/// Errors that stop the pipeline. Each names the camera or file and what to do.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The config is invalid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// A source could not start or failed for good.
    #[error("camera {camera}: {source}")]
    Ingest {
        /// Camera name.
        camera: String,
        /// What went wrong.
        source: IngestError,
    },
    /// The detector could not be built.
    #[error("camera {camera}: {source}")]
    Detect {
        /// Camera name.
        camera: String,
        /// What went wrong.
        source: DetectError,
    },
    /// An output file could not be created or closed.
    #[error(transparent)]
    Output(#[from] OutputError),
    /// The appearance encoder could not start (model, card or ONNX Runtime library).
    #[error("identity: {0} (or set `[identity] enabled = false` to track without identities)")]
    Embed(#[from] EmbedError),
    /// The identity state of a tank could not be loaded.
    #[error("identity of camera {camera}: {source}")]
    Identify {
        /// Camera name.
        camera: String,
        /// What went wrong.
        source: IdentifyError,
    },
    /// A worker thread could not start or died.
    #[error("internal: {0}")]
    Thread(String),
}

/// Frames buffered between a camera's source and its worker. Recordings block when it is full;
/// live sources drop (and count) frames instead, so the worker always sees fresh frames.
const INGEST_QUEUE: usize = 8;
/// Tracked frames buffered before the writer.
const WRITER_QUEUE: usize = 256;

/// Heartbeats of the pipeline's threads, for the systemd watchdog: every worker loop bumps it,
/// at least once a second, even without frames.
#[derive(Debug, Default)]
pub struct Heartbeat {
    last_ms: AtomicU64,
}

impl Heartbeat {
    fn beat(&self) {
        let now = UNIX_EPOCH
            .elapsed()
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        self.last_ms.store(now, Ordering::Relaxed);
    }

    /// Time since the oldest worker last beat (`None` before the first beat).
    pub fn age(&self) -> Option<Duration> {
        let last = self.last_ms.load(Ordering::Relaxed);
        if last == 0 {
            return None;
        }
        let now = UNIX_EPOCH
            .elapsed()
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Some(Duration::from_millis(now.saturating_sub(last)))
    }
}

/// What one camera's worker did.
#[derive(Debug, Clone, Default)]
pub struct CameraSummary {
    /// Camera name.
    pub camera: String,
    /// Frames processed.
    pub frames: u64,
    /// Frames dropped by a live source because the worker was behind.
    pub dropped: u64,
    /// Reconnections of a live source.
    pub reconnects: u64,
    /// Detections over all frames.
    pub detections: u64,
    /// Distinct track ids created.
    pub tracks: u64,
    /// Frames per second of wall time.
    pub fps: f64,
}

/// A running set of camera chains plus the writer.
pub struct Pipeline {
    stop: Arc<AtomicBool>,
    sources: Vec<SourceHandle>,
    workers: Vec<JoinHandle<Result<CameraSummary, PipelineError>>>,
    writer: Option<JoinHandle<Result<(), PipelineError>>>,
    heartbeat: Arc<Heartbeat>,
    embed: Option<EmbedService>,
    apis: Vec<IdentityApi>,
}

/// Live state (for `/api/v1/counts` and health) for the cameras of `cfg`.
pub fn live_state(cfg: &Config) -> Arc<LiveState> {
    let cams: Vec<LiveCamera> = cfg
        .cameras
        .iter()
        .map(|c| LiveCamera {
            name: c.name.clone(),
            tank: c.tank_name().to_string(),
            population: c.population,
        })
        .collect();
    LiveState::new(&cams)
}

/// Hooks for progress display (replay's progress bar); called from worker threads.
pub type FrameHook = Arc<dyn Fn(&TrackedFrame) + Send + Sync>;

impl Pipeline {
    /// Builds every stage (opening files, devices and sockets), then starts the threads.
    /// A camera that cannot start (missing file, bad background image) fails the whole start
    /// with a clear error; a live camera that is unreachable does not: it retries with backoff.
    pub fn start(
        cfg: &Config,
        live: Arc<LiveState>,
        metrics: Metrics,
        stop: Arc<AtomicBool>,
        hook: Option<FrameHook>,
    ) -> Result<Pipeline, PipelineError> {
        let infos: Vec<CameraOutputInfo> = cfg
            .cameras
            .iter()
            .map(|c| CameraOutputInfo {
                name: c.name.clone(),
                mm_per_px: c.mm_per_px,
            })
            .collect();
        let mut sinks = Sinks::build(&cfg.output, &infos)?.with_metrics(metrics.clone());
        // Recordings continue after the rows a previous run left in the output folder; live
        // cameras go on numbering frames and tracks from them.
        let mut resumes = Vec::new();
        for cam in &cfg.cameras {
            resumes.push(match cam.source.resume_key() {
                Some(key) if cfg.output.resume => {
                    sinks.resume_source(&cam.name, &key, !cam.source.is_live())?
                }
                _ => None,
            });
        }
        // Build every detector before any thread starts, so a bad config fails fast.
        let mut detectors = Vec::new();
        for cam in &cfg.cameras {
            let mut d = Detector::build(&cam.detect).map_err(|source| PipelineError::Detect {
                camera: cam.name.clone(),
                source,
            })?;
            d.set_view(cam.view);
            detectors.push(d);
        }
        let embed = start_embedder(cfg)?;
        if let Some(e) = &embed {
            metrics.set_execution_provider(e.provider());
            metrics.set_embed_nodes(e.assignment());
        }
        let mut identities = Vec::new();
        for cam in &cfg.cameras {
            identities.push(match &embed {
                Some(e) => Some(
                    Identifier::build(&cfg.identity, cam.tank_name(), cam.population, e.card())
                        .map_err(|source| PipelineError::Identify {
                            camera: cam.name.clone(),
                            source,
                        })?,
                ),
                None => None,
            });
        }
        let apis: Vec<IdentityApi> = identities.iter().flatten().map(|i| i.api()).collect();
        let crop_spec = embed.as_ref().map(|e| CropSpec {
            width: u32::try_from(e.card().input.width).unwrap_or(u32::MAX),
            height: u32::try_from(e.card().input.height).unwrap_or(u32::MAX),
        });
        let save_every = Duration::from_secs_f64(cfg.identity.save_every_s.max(1.0));
        // `[identity] crops_dir` (diagnostics): created once here; one that cannot be is
        // logged and dropped, since diagnostics never stop tracking.
        let crops_dir = cfg
            .identity
            .crops_dir
            .clone()
            .filter(|_| embed.is_some())
            .filter(|d| match std::fs::create_dir_all(d) {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(path = %d.display(), "cannot create the encoder crops folder ({e}); no crops are written");
                    false
                }
            });
        let (out_tx, out_rx) = bounded::<ToWriter>(WRITER_QUEUE);
        let writer_metrics = metrics.clone();
        let writer = std::thread::Builder::new()
            .name("writer".into())
            .spawn(move || write_loop(sinks, out_rx, writer_metrics))
            .map_err(|e| PipelineError::Thread(e.to_string()))?;
        let heartbeat = Arc::new(Heartbeat::default());
        heartbeat.beat();
        let mut sources = Vec::new();
        let mut workers = Vec::new();
        let chains = cfg
            .cameras
            .iter()
            .zip(detectors)
            .zip(identities)
            .zip(resumes);
        for (((cam, mut detector), identifier), mut resume) in chains {
            let (tx, rx) = bounded::<IngestEvent>(INGEST_QUEUE);
            let next_track = resume.as_ref().map(|c| c.next_track);
            let new_tracker = || {
                let mut t = Tracker::new(&cam.track, cam.view, cam.population);
                if let Some(n) = next_track {
                    t.number_tracks_from(n);
                }
                t
            };
            let mut tracker = new_tracker();
            let mut identity = match (identifier, &embed) {
                (Some(mut identifier), Some(e)) => {
                    identifier.set_view(cam.view);
                    let collect = if cam.source.is_live() {
                        Collect::Ready
                    } else {
                        Collect::AfterFrames(cfg.embed.lag_frames)
                    };
                    Some(IdentityStep::new(
                        identifier,
                        EmbedQueue::new(e.client(), collect),
                        save_every,
                        cfg.identity.label_lag_s,
                        crops_dir.clone(),
                    ))
                }
                _ => None,
            };
            // Where the source starts: after the checkpoint's frame, or after the last frame a
            // stopped run's state goes to.
            let mut start_after = None;
            if let Some(c) = resume.as_mut().filter(|_| !cam.source.is_live()) {
                // The run before stopped cleanly: continue its stages as they were. Otherwise
                // (a crash) the fish of the last frame written are where the next frame shows
                // them.
                let taken = c
                    .state
                    .take()
                    .filter(|s| s.resume_at() == c.next_frame)
                    .and_then(|s| {
                        take_up_state(
                            &cam.name,
                            s,
                            c.last_t,
                            &mut detector,
                            &mut tracker,
                            identity.as_mut(),
                        )
                    });
                match taken {
                    Some(t) => {
                        let waiting = t.after_frame.saturating_add(1).saturating_sub(c.next_frame);
                        tracing::info!(
                            camera = %cam.name,
                            "the stages go on as the previous run left them after frame {}{}",
                            t.after_frame,
                            if t.identity && waiting > 0 {
                                format!(
                                    ", identity memory included; the {waiting} frames it held for \
                                     their labels are written from it"
                                )
                            } else {
                                String::new()
                            }
                        );
                        start_after = Some((t.after_frame, t.after_t));
                        if !t.identity
                            && let Some(id) = &mut identity
                        {
                            id.identifier.tracks_continue(&c.tracks, c.last_t);
                        }
                    }
                    // A stop before any row was written: the recording starts afresh.
                    None if c.next_frame == 0 => tracker = new_tracker(),
                    None => {
                        tracker = new_tracker();
                        tracker.resume(&c.tracks, c.last_t);
                        if let Some(id) = &mut identity {
                            id.identifier.tracks_continue(&c.tracks, c.last_t);
                        }
                    }
                }
            }
            let at = resume.as_ref().map(|c| ingest::Resume {
                next_frame: start_after.map_or(c.next_frame, |(f, _)| f.saturating_add(1)),
                after_t: start_after.map_or(c.last_t, |(_, t)| t),
                origin: c.origin(),
                warmup_frames: detector.warmup_frames(),
            });
            let src = match ingest::spawn(&cam.name, &cam.source, at, tx, stop.clone()) {
                Ok(s) => s,
                Err(source) => {
                    stop.store(true, Ordering::SeqCst);
                    return Err(PipelineError::Ingest {
                        camera: cam.name.clone(),
                        source,
                    });
                }
            };
            let worker = CameraWorker {
                cam: cam.clone(),
                detector,
                tracker,
                identity,
                crops: crop_spec,
                rx,
                out: out_tx.clone(),
                live: live.clone(),
                metrics: metrics.clone(),
                stats: src.stats(),
                heartbeat: heartbeat.clone(),
                hook: hook.clone(),
                stop: stop.clone(),
                last_tracked: None,
            };
            let handle = std::thread::Builder::new()
                .name(format!("camera-{}", cam.name))
                .spawn(move || worker.run())
                .map_err(|e| PipelineError::Thread(e.to_string()))?;
            sources.push(src);
            workers.push(handle);
        }
        drop(out_tx);
        Ok(Pipeline {
            stop,
            sources,
            workers,
            writer: Some(writer),
            heartbeat,
            embed,
            apis,
        })
    }

    /// Handles for the identity HTTP routes (one per camera with identity on).
    pub fn identity_apis(&self) -> Vec<IdentityApi> {
        self.apis.clone()
    }

    /// Heartbeat of the worker threads (for the watchdog).
    pub fn heartbeat(&self) -> Arc<Heartbeat> {
        self.heartbeat.clone()
    }

    /// True when every camera chain has ended (all recordings finished, or stopped).
    pub fn is_finished(&self) -> bool {
        self.workers.iter().all(|w| w.is_finished())
    }

    /// Asks every source to stop; the chains then drain.
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Waits for every chain to drain and the writer to close every file. Returns the first
    /// error any camera or the writer hit, after all of them have ended.
    pub fn wait(mut self) -> Result<Vec<CameraSummary>, PipelineError> {
        let mut first_err = None;
        let mut summaries = Vec::new();
        for w in self.workers.drain(..) {
            match w.join() {
                Ok(Ok(s)) => summaries.push(s),
                Ok(Err(e)) => {
                    tracing::error!("{e}");
                    first_err.get_or_insert(e);
                }
                Err(_) => {
                    first_err
                        .get_or_insert(PipelineError::Thread("a camera worker panicked".into()));
                }
            }
        }
        for s in self.sources.drain(..) {
            s.join();
        }
        if let Some(e) = self.embed.take() {
            e.shutdown();
        }
        if let Some(w) = self.writer.take() {
            match w.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    first_err.get_or_insert(e);
                }
                Err(_) => {
                    first_err
                        .get_or_insert(PipelineError::Thread("the output writer panicked".into()));
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(summaries),
        }
    }
}

/// What a camera's stages took up from a stopped run's state ([`take_up_state`]).
struct TakenUp {
    /// The frame the state is after: the source starts behind it.
    after_frame: u64,
    /// Its stream time.
    after_t: f64,
    /// The identity step took up its memory too.
    identity: bool,
}

/// Continues a camera's stages from the state a stopped run kept with its checkpoint
/// (`last_t`: the checkpoint's clock): the tracker, then the identity step (which may refuse:
/// its tank's state file changed since), then the detector. `None` when the stages cannot
/// continue from it: the tracker refuses it, or the state goes past the rows written (frames
/// that waited for their labels) and the identity step cannot take them up. The tracker may
/// then be changed (the caller builds a fresh one); the identity step and detector are not.
fn take_up_state(
    camera: &str,
    mut s: ResumeState,
    last_t: f64,
    detector: &mut Detector,
    tracker: &mut Tracker,
    identity: Option<&mut IdentityStep>,
) -> Option<TakenUp> {
    let ahead = s.resume_at() <= s.after_frame;
    let after_t = s.after_t.unwrap_or(last_t);
    if !after_t.is_finite() {
        return None;
    }
    if !tracker.restore(s.tracker) {
        return None;
    }
    let mut took_identity = false;
    match (s.identity.take(), identity) {
        (Some(state), Some(step)) => match step.restore(state) {
            Ok(()) => took_identity = true,
            Err(why) if ahead => {
                tracing::warn!(
                    camera,
                    "the identity memory of the run before is not taken up ({why}); the tracks go on from the last rows"
                );
                return None;
            }
            Err(why) => {
                tracing::warn!(
                    camera,
                    "the identity memory of the run before is not taken up ({why}); identities go on from the last rows"
                );
            }
        },
        _ if ahead => {
            tracing::warn!(
                camera,
                "the state of the run before holds frames for the identity step, which is off now; the tracks go on from the last rows"
            );
            return None;
        }
        _ => {}
    }
    if let Some(d) = s.detector {
        detector.restore(d);
    }
    Some(TakenUp {
        after_frame: s.after_frame,
        after_t,
        identity: took_identity,
    })
}

struct CameraWorker {
    cam: CameraConfig,
    detector: Detector,
    tracker: Tracker,
    identity: Option<IdentityStep>,
    /// The encoder's crop size (identity on).
    crops: Option<CropSpec>,
    rx: Receiver<IngestEvent>,
    out: Sender<ToWriter>,
    live: Arc<LiveState>,
    metrics: Metrics,
    stats: Arc<ingest::IngestStats>,
    heartbeat: Arc<Heartbeat>,
    hook: Option<FrameHook>,
    stop: Arc<AtomicBool>,
    /// Index and stream time of the last frame tracked.
    last_tracked: Option<(u64, f64)>,
}

impl CameraWorker {
    /// Runs `f` on the detector and decides the camera's view when the detector's learning
    /// ends in it (a frame, a warm-up frame or the end of a short stream completes the
    /// background).
    fn detect<R>(&mut self, f: impl FnOnce(&mut Detector) -> R) -> R {
        let was_learning = self.detector.is_learning();
        let r = f(&mut self.detector);
        if was_learning && !self.detector.is_learning() {
            self.decide_view();
        }
        r
    }

    /// Once the background is learned, a camera at `view = "auto"` gets its view: fish that
    /// differ from the background both ways (light bodies, dark stripes) are what a side
    /// camera sees. The tracker has seen no frame yet (the detector holds them while it
    /// learns), so the whole recording is tracked with the view's settings.
    fn decide_view(&mut self) {
        if self.cam.view != CameraView::Auto {
            return;
        }
        let Some(both_ways) = self.detector.differs_both_ways() else {
            return;
        };
        let view = self.cam.view.resolve(both_ways);
        self.tracker.set_view(view);
        if let Some(id) = &mut self.identity {
            id.identifier.set_view(view);
        }
        let (name, why) = match view {
            CameraView::Side => (
                "side",
                "the fish differ from the background both ways (light and dark parts), as fish \
                 seen from the side do",
            ),
            _ => (
                "top",
                "the fish differ from the background one way only (dark or light bodies)",
            ),
        };
        tracing::info!(
            camera = %self.cam.name,
            view = name,
            "camera view set to {name}: {why}; set view = \"top\" or \"side\" on the camera \
             (finprint replay --view) if this is wrong"
        );
    }

    fn run(mut self) -> Result<CameraSummary, PipelineError> {
        let name = self.cam.name.clone();
        let started = Instant::now();
        let mut summary = CameraSummary {
            camera: name.clone(),
            ..Default::default()
        };
        let crops = self.crops.map(|_| MARKER_CROP);
        let mut fps_window = (Instant::now(), 0u64);
        let mut seen_drops = 0u64;
        let mut seen_reconnects = 0u64;
        let mut max_track = 0u64;
        let mut ended = false;
        let result = loop {
            self.heartbeat.beat();
            let ev = match self.rx.recv_timeout(Duration::from_millis(500)) {
                Ok(ev) => ev,
                Err(RecvTimeoutError::Timeout) => {
                    self.sync_source_stats(&mut seen_drops, &mut seen_reconnects);
                    continue;
                }
                // Source ended (stop requested): drain what the detector holds.
                Err(RecvTimeoutError::Disconnected) => break Ok(()),
            };
            match ev {
                IngestEvent::Frame(frame) => {
                    let (ready, dt) = self.detect(|d| {
                        let t0 = Instant::now();
                        let ready = d.push(frame, crops);
                        (ready, t0.elapsed().as_secs_f64())
                    });
                    self.metrics.observe_latency(&name, "detect", dt);
                    for df in ready {
                        self.track_and_send(df, &mut summary, &mut max_track)?;
                    }
                    fps_window.1 += 1;
                    let el = fps_window.0.elapsed();
                    if el >= Duration::from_secs(2) {
                        self.metrics
                            .set_fps(&name, fps_window.1 as f64 / el.as_secs_f64());
                        fps_window = (Instant::now(), 0);
                        self.sync_source_stats(&mut seen_drops, &mut seen_reconnects);
                    }
                }
                IngestEvent::Warmup(frame) => self.detect(|d| d.warm_up(frame)),
                IngestEvent::Gap {
                    from, to, reason, ..
                } => {
                    let secs = to
                        .duration_since(from)
                        .map(|d| d.as_secs_f64())
                        .unwrap_or(0.0);
                    tracing::warn!(camera = %name, gap_s = secs, %reason, "camera was lost and is back; no frames exist for the gap");
                    self.live.set_connected(&name, true);
                }
                IngestEvent::Eos => {
                    tracing::info!(camera = %name, "end of recording");
                    ended = true;
                    break Ok(());
                }
                IngestEvent::Fatal(source) => {
                    break Err(PipelineError::Ingest {
                        camera: name.clone(),
                        source,
                    });
                }
            }
            if self.stop.load(Ordering::Relaxed) && self.cam.source.is_live() {
                // Live: the source stops by itself on `stop`; keep draining until it disconnects.
            }
        };
        // Frames still held by the detector (background learning) must not be lost; a
        // recording shorter than the learning window is learned from here, and its view
        // decided with it.
        for df in self.detect(|d| d.flush(crops)) {
            self.track_and_send(df, &mut summary, &mut max_track)?;
        }
        // A recording stopped cleanly keeps its stages' state with the checkpoint after the last
        // frame written, the frames still waiting for their labels with it (they are written
        // below too, as far as known, and a resume writes them again as an uninterrupted run
        // would) unless nothing can follow them (the end of a recording that cannot grow: its
        // checkpoint goes after its last frame). Live cameras keep none.
        let keep = result.is_ok() && !self.cam.source.is_live();
        let more = !ended || self.cam.source.may_grow();
        let (held, identity) = match &mut self.identity {
            Some(id) => {
                let mut state = (keep && more).then(|| id.state());
                let held = id.flush(&name, &self.metrics);
                id.close(&name);
                if let Some(s) = &mut state {
                    id.stamp_saved_file(s);
                }
                (held, state)
            }
            None => (Vec::new(), None),
        };
        // With the identity state, the stages' state goes before the held frames (its
        // checkpoint is the one before them); without it, after them.
        let before_held = identity.is_some();
        if let Some(state) = identity {
            self.send_resume_state(held.first().map(|tf| tf.index), Some(state));
        }
        for tf in held {
            self.send(tf);
        }
        if keep && !before_held {
            self.send_resume_state(None, None);
        }
        self.sync_source_stats(&mut seen_drops, &mut seen_reconnects);
        summary.dropped = seen_drops;
        summary.reconnects = seen_reconnects;
        summary.tracks = max_track;
        summary.fps = summary.frames as f64 / started.elapsed().as_secs_f64().max(1e-9);
        result.map(|()| summary)
    }

    fn sync_source_stats(&self, seen_drops: &mut u64, seen_reconnects: &mut u64) {
        let s = self.stats.snapshot();
        if s.drops > *seen_drops {
            self.metrics
                .inc_dropped_frames(&self.cam.name, s.drops - *seen_drops);
            *seen_drops = s.drops;
        }
        if s.reconnects > *seen_reconnects {
            for _ in *seen_reconnects..s.reconnects {
                self.metrics.inc_reconnects(&self.cam.name);
            }
            *seen_reconnects = s.reconnects;
        }
        self.live.set_connected(&self.cam.name, s.connected);
    }

    fn track_and_send(
        &mut self,
        df: DetectedFrame,
        summary: &mut CameraSummary,
        max_track: &mut u64,
    ) -> Result<(), PipelineError> {
        let name = &self.cam.name;
        let frame = &df.frame;
        let t = frame
            .pts
            .map(|p| p.as_secs_f64())
            .unwrap_or(frame.index as f64);
        let t0 = Instant::now();
        let mut tracks = self.tracker.update(t, &df.detections);
        self.metrics
            .observe_latency(name, "track", t0.elapsed().as_secs_f64());
        if let Some(id) = &mut self.identity {
            let (spec, margin) = (self.crops, self.cam.detect.crop_margin);
            let cut = |p: &CropPlace| cut_crop(frame, p, spec?, margin);
            id.process(name, t, &mut tracks, &df.detections, &cut, &self.metrics);
        }
        for tr in &tracks {
            *max_track = (*max_track).max(tr.track + 1);
        }
        // The tracker's count: it knows how many fish share a touching blob (area alone does not).
        let visible: u32 = self.tracker.visible_fish();
        let tf = TrackedFrame {
            camera: frame.camera.clone(),
            index: frame.index,
            t,
            captured: frame.captured,
            width: frame.width,
            height: frame.height,
            visible_fish: visible,
            tracks,
        };
        self.last_tracked = Some((tf.index, t));
        summary.frames += 1;
        summary.detections += df.detections.len() as u64;
        self.metrics.inc_frames(name, 1);
        self.metrics.observe_tracked_frame(&tf);
        self.live.update(&tf);
        if let Some(h) = &self.hook {
            h(&tf);
        }
        // Identity labels each frame once the evidence after it is in (`label_lag_s`).
        let ready = match &mut self.identity {
            Some(id) => id.delay(tf),
            None => vec![tf],
        };
        for tf in ready {
            self.send(tf);
        }
        Ok(())
    }

    fn send(&mut self, tf: TrackedFrame) {
        // The writer only disappears when it failed; its error is reported by `wait`.
        let _ = self.out.send(ToWriter::Frame(tf));
    }

    /// After the last frame of a recording: the stages' state for the checkpoint before frame
    /// `resume_at` (the first one not sent to the writer yet; `None`: all were sent), so a
    /// run resuming the recording continues exactly from here. `identity` holds the frames
    /// tracked from `resume_at` on, if any.
    fn send_resume_state(&mut self, resume_at: Option<u64>, identity: Option<IdentityState>) {
        let Some((after_frame, after_t)) = self.last_tracked else {
            return;
        };
        let state = ResumeState {
            after_frame,
            after_t: Some(after_t),
            resume_at,
            detector: self.detector.state(),
            tracker: self.tracker.state(),
            identity,
        };
        let _ = self.out.send(ToWriter::Resume {
            camera: self.cam.name.as_str().into(),
            state: Box::new(state),
        });
    }
}

/// The detector is asked for 1×1 crops: one sample each, and they mark exactly the detections
/// it would cut a crop for (a single fish, not a part of a split blob). The encoder-sized crop is
/// then cut only for the few tracks the identifier chooses to embed (see [`cut_crop`]).
const MARKER_CROP: CropSpec = CropSpec {
    width: 1,
    height: 1,
};

/// The encoder crop at `p` (a detection the detector marked, or a track's place in a shared
/// blob), cut exactly as the detector would (same centre, axis and `crop_margin`), colour read
/// from the frame's own layout (I420 planes: no whole-frame conversion).
fn cut_crop(frame: &Frame, p: &CropPlace, spec: CropSpec, margin: f32) -> Option<Crop> {
    Some(oriented_crop(
        frame,
        p.x,
        p.y,
        p.axis_angle,
        p.major_axis * margin,
        spec,
    ))
}

/// Starts the shared encoder service when identity is on. A configured model that is missing or
/// wrong is a startup error; when no model is configured and the shipped default is not
/// installed, identity is switched off with a warning (tracks still work).
fn start_embedder(cfg: &Config) -> Result<Option<EmbedService>, PipelineError> {
    if !cfg.identity.enabled || cfg.cameras.is_empty() {
        return Ok(None);
    }
    match EmbedService::build(&cfg.embed) {
        Ok(e) => {
            tracing::info!(provider = e.provider(), model = %e.card().name, "appearance encoder ready");
            Ok(Some(e))
        }
        Err(e @ EmbedError::ModelNotFound { .. }) if cfg.embed.model.is_none() => {
            tracing::warn!(
                "{e}; identity is OFF (individual stays empty). Install the shipped encoder \
                 (models/finprint-default.onnx + .json) or set [embed] model"
            );
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

fn write_loop(
    mut sinks: Sinks,
    rx: Receiver<ToWriter>,
    metrics: Metrics,
) -> Result<(), PipelineError> {
    loop {
        match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(ToWriter::Resume { camera, state }) => sinks.keep_resume_state(&camera, *state),
            Ok(ToWriter::Frame(tf)) => {
                let t0 = Instant::now();
                if let Err(e) = sinks.consume(&tf) {
                    // Rows stay buffered in the sinks and are retried on a later frame or tick.
                    tracing::error!("{e}");
                }
                metrics.observe_latency(&tf.camera, "write", t0.elapsed().as_secs_f64());
            }
            // No frame for a second (quiet camera): still honour the flush interval.
            Err(RecvTimeoutError::Timeout) => {
                if let Err(e) = sinks.flush() {
                    tracing::error!("{e}");
                }
            }
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    sinks.close()?;
    Ok(())
}
