//! The thread of one source: plays the pipeline, pulls decoded samples, turns them into
//! [`Frame`]s and sends [`IngestEvent`]s; for live sources also detects loss and stalls and
//! reconnects with backoff.
//!
//! Never blocks longer than ~100 ms without looking at the stop flag, and never panics on what a
//! file or camera sends.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{SendTimeoutError, Sender, TrySendError};
use gstreamer as gst;
use gstreamer::prelude::*;

use super::config::{ReconnectConfig, SourceConfig};
use super::frame::FrameCopier;
use super::pipeline::{self, Built};
use super::{IngestError, IngestEvent, IngestStats, Resume};
use crate::messages::Frame;

/// How often the thread wakes up to look at the stop flag, the bus and the stall timer.
const POLL: Duration = Duration::from_millis(100);
/// A recording that decodes no frame for this long (while the consumer is not the holdup) is
/// reported as stalled.
const RECORDING_STALL: Duration = Duration::from_secs(30);
/// A recording may end this much before its declared duration (or 5 % of it, if more) without
/// being called truncated.
const TRUNCATION_TOLERANCE: Duration = Duration::from_millis(500);
/// How long a failed data flow may go without an error message before it is reported itself.
const FLOW_ERROR_GRACE: Duration = Duration::from_millis(300);

/// Everything one source thread owns.
pub(crate) struct Ctx {
    camera: Arc<str>,
    cfg: SourceConfig,
    what: String,
    tx: Sender<IngestEvent>,
    stop: Arc<AtomicBool>,
    stats: Arc<IngestStats>,
    /// Numbers frames as they reach the appsink (shared with the pad probe, across reconnects).
    arrivals: Arc<AtomicU64>,
    /// Index the next frame should have when nothing was dropped.
    next_index: u64,
    copier: FrameCopier,
    /// A recording continuing after a previous run's frames: frames are numbered from
    /// `next_frame` here (not by arrival) and those up to `after_t` skipped.
    resume: Option<Resume>,
    /// A live source continuing a previous run's numbering: stream time 0 at this capture time.
    live_origin: Option<SystemTime>,
    /// Frames decoded and skipped while resuming (warm-up frames included).
    skipped: u64,
    /// Resuming: the first frame after the resume point has been delivered (no more skipping).
    resumed: bool,
}

/// What a resumed recording does with a decoded frame (see [`Resume`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resumed {
    /// Processed before, and too early for the detector's warm-up: dropped.
    Skip,
    /// Processed before, within the detector's warm-up: sent as [`IngestEvent::Warmup`].
    Warmup,
    /// After the resume point (or not resuming): a frame.
    Deliver,
}

/// How frame capture times are derived.
#[derive(Clone, Copy)]
enum Timebase {
    /// Recording: start of ingest + PTS.
    Recording { start: SystemTime },
    /// Live: realtime-clock base time + running time; PTS reported relative to `epoch`.
    Live {
        base_time: Option<gst::ClockTime>,
        epoch: SystemTime,
    },
}

/// How one live connection ended.
enum SessionEnd {
    /// Stop flag set or receiver gone.
    Stopped,
    /// Lost for this reason: reconnect.
    Lost(String),
    /// Cannot work at all: report and end.
    Fatal(IngestError),
}

impl Ctx {
    pub(crate) fn new(
        camera: Arc<str>,
        cfg: SourceConfig,
        resume: Option<Resume>,
        tx: Sender<IngestEvent>,
        stop: Arc<AtomicBool>,
        stats: Arc<IngestStats>,
    ) -> Ctx {
        let what = cfg.describe();
        let first = resume.map_or(0, |r| r.next_frame);
        let live_origin = resume.filter(|_| cfg.is_live()).map(|r| r.origin);
        let resume = resume.filter(|_| !cfg.is_live());
        Ctx {
            camera,
            cfg,
            what,
            tx,
            stop,
            stats,
            arrivals: Arc::new(AtomicU64::new(first)),
            next_index: first,
            copier: FrameCopier::default(),
            resume,
            live_origin,
            skipped: 0,
            resumed: false,
        }
    }

    /// Thread body.
    pub(crate) fn run(mut self) {
        tracing::info!(camera = %self.camera, source = %self.what, "ingest starting");
        if self.cfg.is_live() {
            self.run_live();
        } else {
            self.run_recording();
        }
        self.stats.connected.store(false, Ordering::Relaxed);
        tracing::info!(camera = %self.camera, source = %self.what, "ingest stopped");
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Sends, waiting for room but giving up when stopped or when the receiver is gone.
    fn send_blocking(&self, mut ev: IngestEvent) -> bool {
        loop {
            if self.stopped() {
                return false;
            }
            match self.tx.send_timeout(ev, POLL) {
                Ok(()) => return true,
                Err(SendTimeoutError::Timeout(back)) => ev = back,
                Err(SendTimeoutError::Disconnected(_)) => return false,
            }
        }
    }

    /// Sleeps, waking early when stopped; returns false when stopped.
    fn sleep(&self, d: Duration) -> bool {
        let until = Instant::now() + d;
        while !self.stopped() {
            let now = Instant::now();
            if now >= until {
                return true;
            }
            std::thread::sleep((until - now).min(Duration::from_millis(50)));
        }
        false
    }

    fn delivered(&self, captured: SystemTime) {
        self.stats.frames.fetch_add(1, Ordering::Relaxed);
        let ms = captured
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        self.stats.last_frame_unix_ms.store(ms, Ordering::Relaxed);
    }

    /// Turns a sample into a frame; counts index jumps (frames lost before the appsink) as drops.
    fn make_frame(&mut self, sample: &gst::Sample, tb: Timebase) -> Result<Frame, String> {
        let px = self.copier.copy(sample)?;
        let buffer = sample.buffer().ok_or("decoded sample has no buffer")?;
        let offset = buffer.offset();
        // Resumed recordings number their own frames: arrivals also count the skipped ones.
        let index = if offset == u64::MAX || self.resume.is_some() {
            self.next_index
        } else {
            offset
        };
        if index > self.next_index {
            self.stats
                .drops
                .fetch_add(index - self.next_index, Ordering::Relaxed);
        }
        self.next_index = index + 1;
        let buf_pts = buffer.pts();
        let (pts, captured) = match tb {
            Timebase::Recording { start } => {
                let pts = buf_pts.map(|p| Duration::from_nanos(p.nseconds()));
                (pts, pts.map_or_else(SystemTime::now, |p| start + p))
            }
            Timebase::Live { base_time, epoch } => {
                let captured = live_capture_time(sample, buf_pts, base_time);
                (
                    Some(captured.duration_since(epoch).unwrap_or_default()),
                    captured,
                )
            }
        };
        Ok(Frame {
            camera: self.camera.clone(),
            index,
            pts,
            captured,
            width: px.width,
            height: px.height,
            layout: px.layout,
            data: Arc::new(px.data),
        })
    }

    // ---------------------------------------------------------------- recordings

    fn run_recording(&mut self) {
        let built = match pipeline::build(&self.camera, &self.cfg, self.arrivals.clone()) {
            Ok(b) => b,
            Err(e) => {
                self.send_blocking(IngestEvent::Fatal(e));
                return;
            }
        };
        let end = self.play_recording(&built);
        teardown(&built.pipeline);
        if let Some(ev) = end {
            match &ev {
                IngestEvent::Fatal(e) => tracing::error!(camera = %self.camera, "{e}"),
                _ => tracing::info!(
                    camera = %self.camera,
                    frames = self.stats.frames.load(Ordering::Relaxed),
                    "end of {}", self.what
                ),
            }
            self.send_blocking(ev);
        }
    }

    /// Plays a recording to its end; returns the final event (`None` when stopped).
    fn play_recording(&mut self, built: &Built) -> Option<IngestEvent> {
        let bus = built.pipeline.bus()?;
        let start = self.resume.map_or_else(SystemTime::now, |r| r.origin);
        if let Some(r) = self.resume {
            self.seek_past(built, warmup_from(r));
        }
        if built.pipeline.set_state(gst::State::Playing).is_err() {
            let e = self
                .error_from_bus(&bus, Duration::from_millis(500))
                .unwrap_or_else(|| IngestError::Pipeline {
                    what: self.what.clone(),
                    message: "GStreamer refused to start the pipeline".into(),
                });
            return Some(IngestEvent::Fatal(e));
        }
        let tb = Timebase::Recording { start };
        let mut last_progress = Instant::now();
        let mut pending_error: Option<IngestError> = None;
        let mut declared: Option<gst::ClockTime> = None;
        let mut ended: Option<gst::ClockTime> = None;
        let mut flow_failed: Option<Instant> = None;
        loop {
            if self.stopped() {
                return None;
            }
            if pending_error.is_none()
                && let Some(e) = self.poll_bus(&bus)
            {
                pending_error = Some(e);
            }
            // After an error only drain what is already queued.
            let wait = if pending_error.is_some() {
                gst::ClockTime::ZERO
            } else {
                clock(POLL)
            };
            if let Some(sample) = built.appsink.try_pull_sample(wait) {
                if let Some((prob, caps)) = built
                    .typefound
                    .lock()
                    .ok()
                    .and_then(|g| g.clone())
                    .filter(|(p, _)| *p <= pipeline::GUESS_MAX_PROBABILITY)
                {
                    return Some(IngestEvent::Fatal(IngestError::NotVideo {
                        what: self.what.clone(),
                        detail: format!(
                            "GStreamer could only guess {caps} with {prob} % confidence: \
                             the file is probably corrupt or not a video"
                        ),
                    }));
                }
                let resumed = self.already_processed(&sample);
                if resumed != Resumed::Deliver {
                    self.skipped += 1;
                    last_progress = Instant::now();
                }
                match resumed {
                    Resumed::Skip => continue,
                    Resumed::Warmup => {
                        // Not a frame of this run: no number, not counted as delivered.
                        let next = self.next_index;
                        let made = self.make_frame(&sample, tb);
                        self.next_index = next;
                        if let Ok(mut f) = made {
                            f.index = 0;
                            if !self.send_blocking(IngestEvent::Warmup(f)) {
                                return None;
                            }
                        }
                        continue;
                    }
                    Resumed::Deliver => self.resumed = true,
                }
                let frame = match self.make_frame(&sample, tb) {
                    Ok(f) => f,
                    Err(m) => {
                        return Some(IngestEvent::Fatal(IngestError::Pipeline {
                            what: self.what.clone(),
                            message: m,
                        }));
                    }
                };
                if let Some(b) = sample.buffer()
                    && let Some(p) = b.pts()
                {
                    let e = p + b.duration().unwrap_or(gst::ClockTime::ZERO);
                    ended = Some(ended.map_or(e, |x| x.max(e)));
                }
                if declared.is_none() {
                    declared = built
                        .appsink
                        .static_pad("sink")
                        .and_then(|p| p.peer_query_duration::<gst::ClockTime>());
                }
                let captured = frame.captured;
                if !self.send_blocking(IngestEvent::Frame(frame)) {
                    return None;
                }
                self.delivered(captured);
                last_progress = Instant::now();
                continue;
            }
            if let Some(e) = pending_error.take() {
                return Some(IngestEvent::Fatal(e));
            }
            if built.appsink.is_eos() {
                return Some(self.end_of_recording(declared, ended));
            }
            if let Some(flow) = dead_flow(&built.watch_pads) {
                // Give the element's own error message a moment to arrive first.
                let since = *flow_failed.get_or_insert_with(Instant::now);
                if since.elapsed() > FLOW_ERROR_GRACE {
                    let kind = built.typefound.lock().ok().and_then(|g| g.clone());
                    let kind = kind.map_or_else(|| "the stream".to_string(), |(_, c)| c);
                    return Some(IngestEvent::Fatal(IngestError::Corrupt {
                        what: self.what.clone(),
                        detail: format!(
                            "decoding {kind} failed ({flow:?}) and GStreamer gave no reason"
                        ),
                    }));
                }
            }
            if built.no_more_pads.load(Ordering::SeqCst)
                && !built.video_linked.load(Ordering::SeqCst)
            {
                return Some(IngestEvent::Fatal(IngestError::NoVideoStream {
                    what: self.what.clone(),
                }));
            }
            if last_progress.elapsed() > RECORDING_STALL {
                return Some(IngestEvent::Fatal(IngestError::Stalled {
                    what: self.what.clone(),
                    seconds: last_progress.elapsed().as_secs_f64(),
                }));
            }
        }
    }

    /// `Eos`, or `Fatal(Truncated)` when a file ends well before the duration it declares.
    fn end_of_recording(
        &self,
        declared: Option<gst::ClockTime>,
        ended: Option<gst::ClockTime>,
    ) -> IngestEvent {
        if let Some(r) = self.resume
            && self.stats.frames.load(Ordering::Relaxed) == 0
        {
            tracing::info!(
                camera = %self.camera,
                "nothing of {} is left after frame {} (t = {:.3} s): a previous run processed it to its end. Delete its output files or checkpoint.json to process it again",
                self.what,
                r.next_frame.saturating_sub(1),
                r.after_t
            );
            return IngestEvent::Eos;
        }
        if self.stats.frames.load(Ordering::Relaxed) == 0 {
            return IngestEvent::Fatal(IngestError::Corrupt {
                what: self.what.clone(),
                detail: "the stream ended without a single decodable frame".into(),
            });
        }
        if let (SourceConfig::File { .. }, Some(d), Some(e)) = (&self.cfg, declared, ended) {
            let d = Duration::from_nanos(d.nseconds());
            let e = Duration::from_nanos(e.nseconds());
            let tolerance = TRUNCATION_TOLERANCE.max(d / 20);
            if e + tolerance < d {
                return IngestEvent::Fatal(IngestError::Truncated {
                    what: self.what.clone(),
                    ended_s: e.as_secs_f64(),
                    declared_s: d.as_secs_f64(),
                });
            }
        }
        IngestEvent::Eos
    }

    /// Resuming: prerolls the pipeline and seeks just past `after_t` (the start of the
    /// detector's warm-up, [`warmup_from`]), so the frames a previous run processed are not
    /// decoded again. Where the recording cannot seek (image sequences, some containers)
    /// nothing happens and [`Self::already_processed`] skips them instead.
    fn seek_past(&self, built: &Built, after_t: f64) {
        if !matches!(self.cfg, SourceConfig::File { .. }) || after_t <= 0.0 {
            return;
        }
        // Preroll (at most 10 s), looking at the stop flag between waits.
        let mut preroll = built.pipeline.set_state(gst::State::Paused).is_ok();
        let deadline = Instant::now() + Duration::from_secs(10);
        while preroll {
            match built.pipeline.state(clock(POLL)).0 {
                Ok(gst::StateChangeSuccess::Async)
                    if !self.stopped() && Instant::now() < deadline => {}
                Ok(gst::StateChangeSuccess::Async) | Err(_) => preroll = false,
                Ok(_) => break,
            }
        }
        let target = gst::ClockTime::from_nseconds((after_t * 1e9) as u64 + 1);
        let sought = preroll
            && built
                .pipeline
                .seek_simple(gst::SeekFlags::FLUSH | gst::SeekFlags::ACCURATE, target)
                .is_ok();
        tracing::info!(
            camera = %self.camera,
            t = after_t,
            "resuming {} after the frames a previous run processed ({})",
            self.what,
            if sought { "seek" } else { "cannot seek: decoding past them" }
        );
    }

    /// Resuming: whether a frame was processed by a previous run (stream time ≤ the resume
    /// point; without time stamps, one of the first `next_frame`), and if so whether it falls in
    /// the detector's warm-up (the last `warmup_frames` of those).
    fn already_processed(&self, sample: &gst::Sample) -> Resumed {
        let Some(r) = self.resume else {
            return Resumed::Deliver;
        };
        if self.resumed {
            return Resumed::Deliver;
        }
        let (done, warm) = match sample.buffer().and_then(|b| b.pts()) {
            Some(p) => {
                let t = p.nseconds() as f64 / 1e9;
                (t <= r.after_t + 1e-6, t > warmup_from(r) + 1e-6)
            }
            None => (
                self.skipped < r.next_frame,
                self.skipped >= r.next_frame.saturating_sub(r.warmup_frames),
            ),
        };
        match (done, warm) {
            (false, _) => Resumed::Deliver,
            (true, true) => Resumed::Warmup,
            (true, false) => Resumed::Skip,
        }
    }

    // ---------------------------------------------------------------- live sources

    fn run_live(&mut self) {
        let policy = self.cfg.reconnect().copied().unwrap_or_default();
        let started = SystemTime::now();
        let mut backoff = Duration::from_millis(policy.initial_backoff_ms);
        let mut outage: Option<(SystemTime, String)> = None;
        let mut last_frame: Option<SystemTime> = None;
        let mut epoch: Option<SystemTime> = self.live_origin;
        let mut attempt: u64 = 0;
        loop {
            if self.stopped() {
                return;
            }
            let end = self.live_session(
                &policy,
                &mut outage,
                &mut last_frame,
                &mut epoch,
                &mut backoff,
            );
            self.stats.connected.store(false, Ordering::Relaxed);
            match end {
                SessionEnd::Stopped => return,
                SessionEnd::Fatal(e) => {
                    tracing::error!(camera = %self.camera, "{e}");
                    self.send_blocking(IngestEvent::Fatal(e));
                    return;
                }
                SessionEnd::Lost(reason) => {
                    attempt += 1;
                    tracing::warn!(
                        camera = %self.camera,
                        attempt,
                        "{}: {reason}; reconnecting in {:.1} s",
                        self.what,
                        backoff.as_secs_f64()
                    );
                    if outage.is_none() {
                        outage = Some((last_frame.unwrap_or(started), reason));
                    }
                    if !self.sleep(backoff) {
                        return;
                    }
                    backoff = (backoff * 2).min(Duration::from_millis(policy.max_backoff_ms));
                    self.stats.reconnects.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// One connection: build, play, deliver until lost.
    fn live_session(
        &mut self,
        policy: &ReconnectConfig,
        outage: &mut Option<(SystemTime, String)>,
        last_frame: &mut Option<SystemTime>,
        epoch: &mut Option<SystemTime>,
        backoff: &mut Duration,
    ) -> SessionEnd {
        let built = match pipeline::build(&self.camera, &self.cfg, self.arrivals.clone()) {
            Ok(b) => b,
            Err(e) => return SessionEnd::Fatal(e),
        };
        let end = self.play_live(&built, policy, outage, last_frame, epoch, backoff);
        let t = Instant::now();
        teardown(&built.pipeline);
        if t.elapsed() > Duration::from_millis(500) {
            tracing::debug!(camera = %self.camera, "pipeline teardown took {:?}", t.elapsed());
        }
        end
    }

    fn play_live(
        &mut self,
        built: &Built,
        policy: &ReconnectConfig,
        outage: &mut Option<(SystemTime, String)>,
        last_frame: &mut Option<SystemTime>,
        epoch: &mut Option<SystemTime>,
        backoff: &mut Duration,
    ) -> SessionEnd {
        let Some(bus) = built.pipeline.bus() else {
            return SessionEnd::Fatal(IngestError::Pipeline {
                what: self.what.clone(),
                message: "pipeline has no bus".into(),
            });
        };
        if built.pipeline.set_state(gst::State::Playing).is_err() {
            let reason = self
                .error_from_bus(&bus, Duration::from_millis(200))
                .map_or_else(
                    || "GStreamer refused to start the pipeline".to_string(),
                    |e| e.to_string(),
                );
            return SessionEnd::Lost(reason);
        }
        let stall = Duration::from_millis(policy.stall_timeout_ms);
        let mut last_progress = Instant::now();
        let mut flowing = false;
        loop {
            if self.stopped() {
                return SessionEnd::Stopped;
            }
            if let Some(e) = self.poll_bus(&bus) {
                return SessionEnd::Lost(e.to_string());
            }
            if let Some(sample) = built.appsink.try_pull_sample(clock(POLL)) {
                last_progress = Instant::now();
                let base_time = built.pipeline.base_time();
                let ep = *epoch.get_or_insert_with(|| {
                    base_time.map_or_else(SystemTime::now, |b| {
                        UNIX_EPOCH + Duration::from_nanos(b.nseconds())
                    })
                });
                let frame = match self.make_frame(
                    &sample,
                    Timebase::Live {
                        base_time,
                        epoch: ep,
                    },
                ) {
                    Ok(f) => f,
                    Err(m) => {
                        tracing::warn!(camera = %self.camera, "{}: skipping a frame: {m}", self.what);
                        continue;
                    }
                };
                let captured = frame.captured;
                if !flowing {
                    flowing = true;
                    self.stats.connected.store(true, Ordering::Relaxed);
                    *backoff = Duration::from_millis(policy.initial_backoff_ms);
                    match outage.take() {
                        Some((from, reason)) => {
                            tracing::info!(
                                camera = %self.camera,
                                "{}: frames flow again after {:.1} s",
                                self.what,
                                captured.duration_since(from).unwrap_or_default().as_secs_f64()
                            );
                            let gap = IngestEvent::Gap {
                                camera: self.camera.clone(),
                                from,
                                to: captured,
                                reason,
                            };
                            if !self.send_blocking(gap) {
                                return SessionEnd::Stopped;
                            }
                        }
                        None => tracing::info!(camera = %self.camera, "{}: connected", self.what),
                    }
                }
                *last_frame = Some(captured);
                match self.tx.try_send(IngestEvent::Frame(frame)) {
                    Ok(()) => self.delivered(captured),
                    Err(TrySendError::Full(_)) => {
                        let n = self.stats.drops.fetch_add(1, Ordering::Relaxed) + 1;
                        if n.is_power_of_two() {
                            tracing::debug!(camera = %self.camera, drops = n, "consumer behind: dropping frames");
                        }
                    }
                    Err(TrySendError::Disconnected(_)) => return SessionEnd::Stopped,
                }
                continue;
            }
            if built.appsink.is_eos() {
                return SessionEnd::Lost("the stream ended (end of stream)".into());
            }
            if built.no_more_pads.load(Ordering::SeqCst)
                && !built.video_linked.load(Ordering::SeqCst)
            {
                return SessionEnd::Lost("the stream has no video".into());
            }
            if last_progress.elapsed() > stall {
                return SessionEnd::Lost(format!(
                    "no frame for {:.1} s (stall timeout)",
                    last_progress.elapsed().as_secs_f64()
                ));
            }
        }
    }

    // ---------------------------------------------------------------- bus

    /// Pops every pending bus message; logs warnings; returns the first error, classified.
    fn poll_bus(&self, bus: &gst::Bus) -> Option<IngestError> {
        while let Some(msg) =
            bus.pop_filtered(&[gst::MessageType::Error, gst::MessageType::Warning])
        {
            match msg.view() {
                gst::MessageView::Error(err) => {
                    let dbg = err.debug();
                    tracing::debug!(camera = %self.camera, "GStreamer error: {} ({dbg:?})", err.error());
                    return Some(classify(&self.what, &err.error(), dbg.as_deref()));
                }
                gst::MessageView::Warning(w) => {
                    tracing::warn!(camera = %self.camera, "{}: GStreamer warning: {}", self.what, w.error());
                }
                _ => {}
            }
        }
        None
    }

    /// Waits up to `timeout` for an error message (after a failed state change).
    fn error_from_bus(&self, bus: &gst::Bus, timeout: Duration) -> Option<IngestError> {
        let msg = bus.timed_pop_filtered(clock(timeout), &[gst::MessageType::Error])?;
        match msg.view() {
            gst::MessageView::Error(err) => {
                Some(classify(&self.what, &err.error(), err.debug().as_deref()))
            }
            _ => None,
        }
    }
}

/// The first failed flow (other than flushing or end of stream) among `pads`.
fn dead_flow(pads: &[gst::Pad]) -> Option<gst::FlowError> {
    pads.iter().find_map(|p| match p.last_flow_result() {
        Err(gst::FlowError::Flushing | gst::FlowError::Eos) | Ok(_) => None,
        Err(e) => Some(e),
    })
}

/// Maps a GStreamer error to an [`IngestError`] a person can act on.
fn classify(what: &str, err: &gst::glib::Error, debug: Option<&str>) -> IngestError {
    let mut detail = err.message().trim_end_matches('.').to_string();
    // "Internal data stream error" alone says nothing: add the flow reason from the debug text.
    if let Some(reason) = debug.and_then(|d| d.split("reason ").nth(1)) {
        let reason = reason.trim().trim_end_matches(')');
        if !reason.is_empty() && err.matches(gst::StreamError::Failed) {
            detail = format!("{detail} (reason: {reason})");
        }
    }
    let what = what.to_string();
    if let Some(k) = err.kind::<gst::StreamError>() {
        return match k {
            gst::StreamError::TypeNotFound | gst::StreamError::WrongType => {
                IngestError::NotVideo { what, detail }
            }
            gst::StreamError::CodecNotFound => IngestError::MissingDecoder { what, detail },
            gst::StreamError::Demux
            | gst::StreamError::Decode
            | gst::StreamError::Format
            | gst::StreamError::NotImplemented => IngestError::Corrupt { what, detail },
            _ => IngestError::Pipeline {
                what,
                message: detail,
            },
        };
    }
    if err.matches(gst::CoreError::MissingPlugin) {
        return IngestError::MissingDecoder { what, detail };
    }
    if err.kind::<gst::ResourceError>().is_some() {
        return IngestError::Open {
            what,
            message: detail,
        };
    }
    IngestError::Pipeline {
        what,
        message: detail,
    }
}

/// Wall-clock capture time of a live sample: base time + running time of its PTS on the
/// pipeline's realtime clock; now, when that is unavailable or implausible.
fn live_capture_time(
    sample: &gst::Sample,
    pts: Option<gst::ClockTime>,
    base_time: Option<gst::ClockTime>,
) -> SystemTime {
    let now = SystemTime::now();
    let computed = (|| {
        let segment = sample.segment()?.downcast_ref::<gst::ClockTime>()?;
        let running = segment.to_running_time(pts?)?;
        let t = base_time? + running;
        Some(UNIX_EPOCH + Duration::from_nanos(t.nseconds()))
    })();
    match computed {
        // Guard against a pipeline that ended up on another clock.
        Some(t)
            if t.duration_since(now).unwrap_or_default() < Duration::from_secs(60)
                && now.duration_since(t).unwrap_or_default() < Duration::from_secs(60) =>
        {
            t
        }
        _ => now,
    }
}

fn clock(d: Duration) -> gst::ClockTime {
    gst::ClockTime::from_nseconds(d.as_nanos() as u64)
}

/// Stops a pipeline and frees its resources.
fn teardown(pipeline: &gst::Pipeline) {
    if let Err(e) = pipeline.set_state(gst::State::Null) {
        tracing::debug!("pipeline teardown reported {e:?}");
    }
}

/// Stream time after which a resumed recording's frames are read again for the detector's
/// warm-up: `warmup_frames` frame intervals before the resume point (the interval measured
/// from the frames the previous run processed), never before the start.
fn warmup_from(r: Resume) -> f64 {
    if r.warmup_frames == 0 || r.next_frame < 2 || r.after_t.is_nan() || r.after_t <= 0.0 {
        return r.after_t;
    }
    let interval = r.after_t / (r.next_frame - 1) as f64;
    // The last `warmup_frames` frames lie after this (half an interval of slack: frame times
    // are not exact multiples of the interval).
    (r.after_t - (r.warmup_frames as f64 - 0.5) * interval).max(-1.0)
}
