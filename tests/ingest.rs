//! Integration tests of the ingest stage: real GStreamer pipelines on real data (the FastTrack
//! zebrafish frames), files made here with x264, broken files, and a loopback RTSP camera that
//! goes away and comes back.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, bounded};
use finprint::ingest::{IngestError, IngestEvent, ReconnectConfig, Resume, SourceConfig, spawn};
use finprint::messages::{Frame, PixelLayout};
use gstreamer as gst;
use gstreamer::prelude::*;

use support::rtsp_server::{RtspMedia, RtspServer};

const FASTTRACK: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/data/fasttrack-zebrafish14/frames"
);

fn fasttrack_pattern() -> String {
    format!("{FASTTRACK}/frame_%06d.pgm")
}

/// Frames and warm-up frames of one source until `Eos`/`Fatal` (included) or the deadline.
fn collect(
    rx: &Receiver<IngestEvent>,
    limit: Duration,
) -> (Vec<Frame>, Vec<Frame>, Option<IngestEvent>) {
    let deadline = Instant::now() + limit;
    let (mut frames, mut warm) = (Vec::new(), Vec::new());
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(IngestEvent::Frame(f)) => frames.push(f),
            Ok(IngestEvent::Warmup(f)) => {
                assert!(frames.is_empty(), "a warm-up frame after a frame");
                warm.push(f);
            }
            Ok(ev @ (IngestEvent::Eos | IngestEvent::Fatal(_))) => {
                return (frames, warm, Some(ev));
            }
            Ok(IngestEvent::Gap { .. }) => {}
            Err(_) => break,
        }
    }
    (frames, warm, None)
}

/// Runs a recording to its end (bounded) and returns frames and the final event.
fn run_recording(cfg: &SourceConfig, limit: Duration) -> (Vec<Frame>, IngestEvent) {
    let (frames, warm, end) = run_resumed(cfg, None, limit);
    assert!(warm.is_empty(), "warm-up frames without a resume");
    (frames, end)
}

/// [`run_recording`], continuing at `resume`: frames, warm-up frames, the final event.
fn run_resumed(
    cfg: &SourceConfig,
    resume: Option<Resume>,
    limit: Duration,
) -> (Vec<Frame>, Vec<Frame>, IngestEvent) {
    let (tx, rx) = bounded(16);
    let stop = Arc::new(AtomicBool::new(false));
    let handle = spawn("cam", cfg, resume, tx, stop.clone()).expect("spawn");
    let (frames, warm, end) = collect(&rx, limit);
    stop.store(true, Ordering::SeqCst);
    let end = end.unwrap_or_else(|| panic!("no Eos/Fatal within {limit:?} for {cfg:?}"));
    let t = Instant::now();
    handle.join();
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "thread did not end promptly"
    );
    (frames, warm, end)
}

fn fatal_message(ev: &IngestEvent) -> String {
    match ev {
        IngestEvent::Fatal(e) => e.to_string(),
        other => panic!("expected Fatal, got {other:?}"),
    }
}

fn assert_packed(f: &Frame) {
    assert_eq!(
        f.data.len(),
        Frame::expected_len(f.width, f.height, f.layout),
        "frame {}",
        f.index
    );
}

/// Encodes a short H.264 clip (`frames` frames, `w`x`h`, 25 fps) into `path` with `muxer`.
fn make_h264(path: &Path, muxer: &str, frames: u32, w: u32, h: u32) {
    gst::init().unwrap();
    let desc = format!(
        "videotestsrc num-buffers={frames} pattern=ball ! video/x-raw,width={w},height={h},framerate=25/1 \
         ! x264enc speed-preset=ultrafast key-int-max=10 ! h264parse ! {muxer} ! filesink location=\"{}\"",
        path.display()
    );
    let pipeline = gst::parse::launch(&desc).unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    let msg = bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(60),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .expect("encoder finished");
    assert!(
        matches!(msg.view(), gst::MessageView::Eos(_)),
        "encoding failed: {msg:?}"
    );
    pipeline.set_state(gst::State::Null).unwrap();
}

fn file(path: &Path) -> SourceConfig {
    SourceConfig::File {
        path: path.to_string_lossy().into_owned(),
    }
}

/// Resuming a recording after frame 24 gives exactly the frames a whole run gives from frame 25
/// on: same indices, same stream times, capture times from the resume's origin; before them, the
/// `warmup_frames` frames before the resume point as warm-up frames (the detector's), the
/// pixels of frames 15–24. Files seek; image sequences decode past the skipped frames. Resuming
/// after the last frame gives nothing and a normal end (not "no decodable frame").
#[test]
fn a_resumed_recording_gives_the_frames_after_the_resume_point() {
    let dir = tempfile::tempdir().unwrap();
    let video = dir.path().join("clip.mkv");
    make_h264(&video, "matroskamux", 60, 320, 240);
    let seq = SourceConfig::ImageSequence {
        pattern: fasttrack_pattern(),
        start_index: 1,
        stop_index: Some(60),
        framerate: 25.0,
    };
    let limit = Duration::from_secs(60);
    for cfg in [file(&video), seq] {
        let (whole, end) = run_recording(&cfg, limit);
        assert!(matches!(end, IngestEvent::Eos), "{end:?}");
        assert_eq!(whole.len(), 60, "{cfg:?}");
        let t24 = whole[24].pts.expect("time stamps").as_secs_f64();
        let origin = std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let resume = Resume {
            next_frame: 25,
            after_t: t24,
            origin,
            warmup_frames: 10,
        };
        let (rest, warm, end) = run_resumed(&cfg, Some(resume), limit);
        assert!(matches!(end, IngestEvent::Eos), "{end:?}");
        let warm_pts: Vec<_> = warm.iter().map(|f| f.pts).collect();
        let want_pts: Vec<_> = whole[15..25].iter().map(|f| f.pts).collect();
        assert_eq!(warm_pts, want_pts, "warm-up frames of {cfg:?}");
        for (w, f) in warm.iter().zip(&whole[15..25]) {
            assert_eq!((w.index, &w.data), (0, &f.data), "{cfg:?}");
        }
        let got: Vec<_> = rest.iter().map(|f| (f.index, f.pts)).collect();
        let want: Vec<_> = whole[25..].iter().map(|f| (f.index, f.pts)).collect();
        assert_eq!(got, want, "{cfg:?}");
        for f in &rest {
            assert_eq!(f.captured, origin + f.pts.unwrap_or_default());
            assert_eq!(
                f.data, whole[f.index as usize].data,
                "frame {} of {cfg:?}",
                f.index
            );
        }
        let at_end = Resume {
            next_frame: 60,
            after_t: whole[59].pts.expect("time stamps").as_secs_f64(),
            origin,
            warmup_frames: 0,
        };
        let (none, _, end) = run_resumed(&cfg, Some(at_end), limit);
        assert!(
            none.is_empty() && matches!(end, IngestEvent::Eos),
            "{end:?}"
        );
    }
}

#[test]
fn fasttrack_image_sequence_gives_200_gray_frames_in_order() {
    let cfg = SourceConfig::from_input(&fasttrack_pattern());
    match &cfg {
        SourceConfig::ImageSequence { start_index, .. } => assert_eq!(*start_index, 1),
        other => panic!("expected an image sequence, got {other:?}"),
    }
    assert!(!cfg.is_live());
    let t = Instant::now();
    let (frames, end) = run_recording(&cfg, Duration::from_secs(60));
    println!(
        "fasttrack: {} frames in {:.2} s",
        frames.len(),
        t.elapsed().as_secs_f64()
    );
    assert!(matches!(end, IngestEvent::Eos), "{end:?}");
    assert_eq!(frames.len(), 200);
    for (i, f) in frames.iter().enumerate() {
        assert_eq!(f.index, i as u64);
        assert_eq!(
            (f.width, f.height, f.layout),
            (524, 338, PixelLayout::Gray8)
        );
        assert_eq!(&*f.camera, "cam");
        assert_packed(f);
    }
    let pts: Vec<Duration> = frames.iter().map(|f| f.pts.expect("pts")).collect();
    assert!(pts.windows(2).all(|w| w[1] > w[0]), "PTS must increase");
    assert_eq!(pts[1] - pts[0], Duration::from_millis(40), "25 fps");
    assert!(frames.windows(2).all(|w| w[1].captured > w[0].captured));
    // Pixels are exactly the PGM's: frame 0 is frame_000001.pgm, frame 199 is frame_000200.pgm.
    for (idx, file_no) in [(0usize, 1), (199, 200)] {
        let img = image::open(format!("{FASTTRACK}/frame_{file_no:06}.pgm"))
            .unwrap()
            .to_luma8();
        assert_eq!(
            frames[idx].data.as_slice(),
            img.as_raw().as_slice(),
            "frame {idx}"
        );
    }
    assert_ne!(frames[0].data, frames[199].data);
}

#[test]
fn image_sequence_honours_start_and_stop_index() {
    let cfg = SourceConfig::ImageSequence {
        pattern: fasttrack_pattern(),
        start_index: 10,
        stop_index: Some(19),
        framerate: 10.0,
    };
    let (frames, end) = run_recording(&cfg, Duration::from_secs(30));
    assert!(matches!(end, IngestEvent::Eos), "{end:?}");
    assert_eq!(frames.len(), 10);
    assert_eq!(
        frames[1].pts.unwrap() - frames[0].pts.unwrap(),
        Duration::from_millis(100)
    );
    let img = image::open(format!("{FASTTRACK}/frame_000010.pgm"))
        .unwrap()
        .to_luma8();
    assert_eq!(frames[0].data.as_slice(), img.as_raw().as_slice());
}

#[test]
fn test_pattern_with_odd_size_is_tightly_packed_i420() {
    // 321x241: luma rows are padded to 324 bytes and chroma planes are 161x121 in GStreamer.
    let cfg = SourceConfig::TestPattern {
        pattern: "black".into(),
        width: 321,
        height: 241,
        framerate: 30.0,
        num_frames: Some(12),
        live: false,
        reconnect: ReconnectConfig::default(),
    };
    let (frames, end) = run_recording(&cfg, Duration::from_secs(30));
    assert!(matches!(end, IngestEvent::Eos), "{end:?}");
    assert_eq!(frames.len(), 12);
    for (i, f) in frames.iter().enumerate() {
        assert_eq!(f.index, i as u64);
        assert_eq!((f.width, f.height, f.layout), (321, 241, PixelLayout::I420));
        assert_eq!(f.data.len(), 321 * 241 + 2 * 161 * 121);
        let (y, uv) = f.data.split_at(321 * 241);
        // Black in limited-range BT.601: Y=16, U=V=128; any padding byte would break this.
        assert!(y.iter().all(|&v| v == 16), "luma of frame {i}");
        assert!(uv.iter().all(|&v| v == 128), "chroma of frame {i}");
    }
}

#[test]
fn h264_files_decode_with_the_right_count() {
    let dir = tempfile::tempdir().unwrap();
    for (name, muxer) in [("clip.mp4", "mp4mux"), ("clip.mkv", "matroskamux")] {
        let path = dir.path().join(name);
        make_h264(&path, muxer, 40, 320, 240);
        let (frames, end) = run_recording(&file(&path), Duration::from_secs(60));
        assert!(matches!(end, IngestEvent::Eos), "{name}: {end:?}");
        assert_eq!(frames.len(), 40, "{name}");
        assert!(
            frames
                .iter()
                .all(|f| f.layout == PixelLayout::I420 && f.width == 320 && f.height == 240)
        );
        assert!(frames.iter().enumerate().all(|(i, f)| f.index == i as u64));
        frames.iter().for_each(assert_packed);
        let pts: Vec<Duration> = frames.iter().map(|f| f.pts.unwrap()).collect();
        assert!(
            pts.windows(2).all(|w| w[1] > w[0]),
            "{name}: PTS must increase"
        );
        // The ball moves: consecutive frames differ.
        assert_ne!(frames[0].data, frames[20].data);
    }
    // A URI works as well as a path.
    let uri = format!("file://{}", dir.path().join("clip.mkv").display());
    let (frames, end) = run_recording(&SourceConfig::File { path: uri }, Duration::from_secs(60));
    assert!(matches!(end, IngestEvent::Eos));
    assert_eq!(frames.len(), 40);
}

#[test]
fn missing_file_fails_at_spawn_naming_the_path() {
    let (tx, _rx) = bounded(4);
    let cfg = SourceConfig::File {
        path: "/nonexistent/dir/rec.mp4".into(),
    };
    let err = spawn(
        "cam",
        &cfg,
        None,
        tx.clone(),
        Arc::new(AtomicBool::new(false)),
    )
    .unwrap_err();
    let msg = err.to_string();
    println!("missing file: {msg}");
    assert!(matches!(err, IngestError::NotFound { .. }));
    assert!(
        msg.contains("/nonexistent/dir/rec.mp4") && msg.contains("does not exist"),
        "{msg}"
    );
    assert!(!msg.contains('\n'));
    let seq = SourceConfig::ImageSequence {
        pattern: "/nonexistent/f_%04d.png".into(),
        start_index: 0,
        stop_index: None,
        framerate: 25.0,
    };
    let msg = spawn("cam", &seq, None, tx, Arc::new(AtomicBool::new(false)))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("/nonexistent/f_0000.png"), "{msg}");
}

#[test]
fn invalid_config_fails_at_spawn() {
    let (tx, _rx) = bounded(4);
    let cfg = SourceConfig::ImageSequence {
        pattern: "frames/frame.pgm".into(),
        start_index: 0,
        stop_index: None,
        framerate: 25.0,
    };
    let err = spawn("cam", &cfg, None, tx, Arc::new(AtomicBool::new(false))).unwrap_err();
    assert!(matches!(err, IngestError::Config(_)), "{err}");
    assert!(err.to_string().contains("source.pattern"), "{err}");
}

#[test]
fn broken_files_end_in_a_clear_fatal_without_hanging() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.mp4");
    make_h264(&good, "mp4mux", 50, 320, 240);
    let bytes = std::fs::read(&good).unwrap();

    let text = dir.path().join("notes.mp4");
    std::fs::write(&text, "these are lab notes, not a video\n".repeat(50)).unwrap();

    // mp4mux writes the index (moov) at the end: the first half has none.
    let truncated = dir.path().join("truncated.mp4");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();

    // Header smashed: the container cannot be recognised.
    let corrupt = dir.path().join("corrupt.mp4");
    let mut c = bytes.clone();
    c[..64]
        .iter_mut()
        .enumerate()
        .for_each(|(i, b)| *b = (i as u8).wrapping_mul(37) ^ 0x5a);
    std::fs::write(&corrupt, &c).unwrap();

    let random = dir.path().join("random.mkv");
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let noise: Vec<u8> = (0..200_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    std::fs::write(&random, noise).unwrap();

    let empty = dir.path().join("empty.mp4");
    std::fs::write(&empty, b"").unwrap();

    for (path, expect) in [
        (&text, "not a video file"),
        (&truncated, "corrupt, truncated or unsupported"),
        (&corrupt, "not a video file"),
        (&random, "not a video file"),
    ] {
        let t = Instant::now();
        let (frames, end) = run_recording(&file(path), Duration::from_secs(20));
        let msg = fatal_message(&end);
        println!(
            "{} -> {msg} ({:.2} s)",
            path.display(),
            t.elapsed().as_secs_f64()
        );
        assert!(frames.is_empty());
        assert!(msg.contains(&*path.to_string_lossy()), "{msg}");
        assert!(msg.contains(expect), "{msg}");
        assert!(!msg.contains('\n'), "one line: {msg}");
    }
    let (tx, _rx) = bounded(4);
    let err = spawn(
        "cam",
        &file(&empty),
        None,
        tx,
        Arc::new(AtomicBool::new(false)),
    )
    .unwrap_err();
    assert!(err.to_string().contains("empty"), "{err}");
}

#[test]
fn truncated_matroska_delivers_what_exists_then_reports_truncation() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.mkv");
    make_h264(&good, "matroskamux", 50, 320, 240);
    let bytes = std::fs::read(&good).unwrap();
    let half = dir.path().join("half.mkv");
    std::fs::write(&half, &bytes[..bytes.len() / 2]).unwrap();
    let (frames, end) = run_recording(&file(&half), Duration::from_secs(20));
    let msg = fatal_message(&end);
    println!("half.mkv: {} frames, then: {msg}", frames.len());
    assert!(!frames.is_empty() && frames.len() < 50, "{}", frames.len());
    assert!(
        msg.contains("truncated") && msg.contains("declares 2.00 s"),
        "{msg}"
    );
}

#[test]
fn audio_only_file_reports_no_video_stream() {
    gst::init().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tone.wav");
    let desc = format!(
        "audiotestsrc num-buffers=20 ! wavenc ! filesink location=\"{}\"",
        path.display()
    );
    let p = gst::parse::launch(&desc).unwrap();
    p.set_state(gst::State::Playing).unwrap();
    p.bus()
        .unwrap()
        .timed_pop_filtered(gst::ClockTime::from_seconds(20), &[gst::MessageType::Eos])
        .unwrap();
    p.set_state(gst::State::Null).unwrap();
    let (frames, end) = run_recording(&file(&path), Duration::from_secs(20));
    let msg = fatal_message(&end);
    assert!(frames.is_empty());
    assert!(
        msg.contains("no video stream") && msg.contains("tone.wav"),
        "{msg}"
    );
}

#[test]
fn several_sources_run_concurrently_on_one_channel() {
    let (tx, rx) = bounded(8);
    let stop = Arc::new(AtomicBool::new(false));
    let seq = SourceConfig::ImageSequence {
        pattern: fasttrack_pattern(),
        start_index: 1,
        stop_index: Some(60),
        framerate: 25.0,
    };
    let tp = SourceConfig::TestPattern {
        pattern: "snow".into(),
        width: 160,
        height: 120,
        framerate: 25.0,
        num_frames: Some(80),
        live: false,
        reconnect: ReconnectConfig::default(),
    };
    let handles = vec![
        spawn("tank-a", &seq, None, tx.clone(), stop.clone()).unwrap(),
        spawn("tank-b", &seq, None, tx.clone(), stop.clone()).unwrap(),
        spawn("tank-c", &tp, None, tx.clone(), stop.clone()).unwrap(),
    ];
    drop(tx);
    let mut counts = std::collections::HashMap::<String, (u64, u32)>::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut ends = 0;
    while ends < 3 && Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_secs(5)) {
            Ok(IngestEvent::Frame(f)) => {
                let e = counts.entry(f.camera.to_string()).or_default();
                assert_eq!(f.index, e.0, "per-camera indices are consecutive");
                e.0 += 1;
            }
            Ok(IngestEvent::Eos) => ends += 1,
            Ok(other) => panic!("unexpected {other:?}"),
            Err(_) => break,
        }
    }
    assert_eq!(ends, 3);
    assert_eq!(counts["tank-a"].0, 60);
    assert_eq!(counts["tank-b"].0, 60);
    assert_eq!(counts["tank-c"].0, 80);
    for h in handles {
        assert_eq!(h.stats().snapshot().drops, 0, "recordings never drop");
        h.join();
    }
}

#[test]
fn live_source_drops_stale_frames_when_the_consumer_is_slow_and_stops_promptly() {
    let cfg = SourceConfig::TestPattern {
        pattern: "ball".into(),
        width: 160,
        height: 120,
        framerate: 50.0,
        num_frames: None,
        live: true,
        reconnect: ReconnectConfig::default(),
    };
    assert!(cfg.is_live());
    let (tx, rx) = bounded(2);
    let stop = Arc::new(AtomicBool::new(false));
    let handle = spawn("live", &cfg, None, tx, stop.clone()).unwrap();
    let stats = handle.stats();
    // Consumer asleep for a second: the source must not block, it drops.
    std::thread::sleep(Duration::from_millis(1200));
    let mut frames = Vec::new();
    let t = Instant::now();
    while t.elapsed() < Duration::from_millis(800) {
        if let Ok(IngestEvent::Frame(f)) = rx.recv_timeout(Duration::from_millis(200)) {
            frames.push(f);
        }
    }
    let s = stats.snapshot();
    println!(
        "live: delivered {} dropped {} received {}",
        s.frames,
        s.drops,
        frames.len()
    );
    assert!(s.connected);
    assert!(
        s.drops >= 20,
        "about 50 frames arrived while the channel (2) was full: {s:?}"
    );
    assert!(
        frames.len() >= 20,
        "frames flow once the consumer reads: {}",
        frames.len()
    );
    // The index counts every frame that arrived, so the drops are visible as a jump.
    assert!(frames.windows(2).any(|w| w[1].index > w[0].index + 1));
    assert!(frames.windows(2).all(|w| w[1].index > w[0].index));
    // Capture times are wall-clock and recent.
    let age = std::time::SystemTime::now()
        .duration_since(frames.last().unwrap().captured)
        .unwrap();
    assert!(age < Duration::from_secs(2), "{age:?}");
    assert!(s.last_frame_unix_ms > 0);
    stop.store(true, Ordering::SeqCst);
    let t = Instant::now();
    handle.join();
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "stop took {:?}",
        t.elapsed()
    );
}

#[test]
fn live_source_restarts_after_end_of_stream_and_reports_the_gap() {
    let cfg = SourceConfig::TestPattern {
        pattern: "ball".into(),
        width: 64,
        height: 48,
        framerate: 25.0,
        num_frames: Some(5),
        live: true,
        reconnect: ReconnectConfig {
            initial_backoff_ms: 300,
            max_backoff_ms: 300,
            stall_timeout_ms: 2000,
        },
    };
    let (tx, rx) = bounded(64);
    let stop = Arc::new(AtomicBool::new(false));
    let handle = spawn("eos", &cfg, None, tx, stop.clone()).unwrap();
    let mut frames = Vec::new();
    let mut gaps = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    while gaps.len() < 2 && Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(IngestEvent::Frame(f)) => frames.push(f),
            Ok(IngestEvent::Gap {
                from,
                to,
                reason,
                camera,
            }) => {
                assert_eq!(&*camera, "eos");
                gaps.push((from, to, reason))
            }
            Ok(other) => panic!("unexpected {other:?}"),
            Err(_) => {}
        }
    }
    stop.store(true, Ordering::SeqCst);
    let stats = handle.stats().snapshot();
    handle.join();
    assert_eq!(gaps.len(), 2, "two restarts, two gaps");
    for (from, to, reason) in &gaps {
        let d = to.duration_since(*from).expect("gap goes forward");
        assert!(
            d >= Duration::from_millis(300),
            "gap {d:?} includes the backoff"
        );
        assert!(reason.contains("end of stream"), "{reason}");
    }
    assert!(stats.reconnects >= 2, "{stats:?}");
    assert!(frames.len() >= 10);
    assert!(
        frames.windows(2).all(|w| w[1].index > w[0].index),
        "indices keep growing across restarts"
    );
    let pts: Vec<Duration> = frames.iter().map(|f| f.pts.unwrap()).collect();
    assert!(
        pts.windows(2).all(|w| w[1] > w[0]),
        "live PTS stay monotonic across restarts: {pts:?}"
    );
}

#[test]
fn rtsp_camera_lost_and_back_reconnects_with_backoff_and_reports_the_gap() {
    let mut server = RtspServer::start(
        0,
        "/cam",
        RtspMedia::TestPattern {
            width: 320,
            height: 240,
            framerate: 25,
        },
    )
    .expect("rtsp server");
    let cfg = SourceConfig::Rtsp {
        url: server.url(),
        latency_ms: 100,
        reconnect: ReconnectConfig {
            initial_backoff_ms: 200,
            max_backoff_ms: 800,
            stall_timeout_ms: 3000,
        },
    };
    assert!(cfg.is_live());
    let (tx, rx) = bounded(64);
    let stop = Arc::new(AtomicBool::new(false));
    let handle = spawn("rtsp", &cfg, None, tx, stop.clone()).unwrap();
    let stats = handle.stats();

    let wait_frames = |n: usize, limit: Duration| {
        let mut got = Vec::new();
        let mut gaps = Vec::new();
        let deadline = Instant::now() + limit;
        while got.len() < n && Instant::now() < deadline {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(IngestEvent::Frame(f)) => got.push(f),
                Ok(IngestEvent::Gap {
                    from, to, reason, ..
                }) => gaps.push((from, to, reason)),
                Ok(other) => panic!("unexpected {other:?}"),
                Err(_) => {}
            }
        }
        (got, gaps)
    };

    let (before, gaps) = wait_frames(25, Duration::from_secs(20));
    assert_eq!(before.len(), 25, "frames over RTSP");
    assert!(gaps.is_empty());
    assert!(
        before
            .iter()
            .all(|f| f.layout == PixelLayout::I420 && (f.width, f.height) == (320, 240))
    );
    assert!(stats.snapshot().connected);
    let reconnects_before = stats.snapshot().reconnects;

    server.stop();
    let down_at = Instant::now();
    while stats.snapshot().reconnects < reconnects_before + 3
        && down_at.elapsed() < Duration::from_secs(20)
    {
        std::thread::sleep(Duration::from_millis(100));
        while rx.try_recv().is_ok() {}
    }
    let s = stats.snapshot();
    println!(
        "rtsp: {} reconnect attempts while down for {:.1} s",
        s.reconnects,
        down_at.elapsed().as_secs_f64()
    );
    assert!(s.reconnects >= reconnects_before + 3, "{s:?}");
    assert!(!s.connected);

    server.restart().expect("restart on the same port");
    let (after, gaps) = wait_frames(10, Duration::from_secs(20));
    assert_eq!(after.len(), 10, "frames again after the server came back");
    assert_eq!(gaps.len(), 1, "one gap for the outage");
    let (from, to, reason) = &gaps[0];
    let gap = to.duration_since(*from).unwrap();
    println!("rtsp gap: {:.2} s, reason: {reason}", gap.as_secs_f64());
    // Down for at least three backoffs (200 + 400 + 800 ms) before the restart.
    assert!(gap >= Duration::from_millis(1400), "{gap:?}");
    assert!(*from >= before.last().unwrap().captured);
    assert!(!reason.is_empty());
    assert!(after[0].index > before.last().unwrap().index);
    assert!(stats.snapshot().connected);

    stop.store(true, Ordering::SeqCst);
    let t = Instant::now();
    handle.join();
    assert!(
        t.elapsed() < Duration::from_millis(1500),
        "stop took {:?}",
        t.elapsed()
    );
}

#[test]
fn rtsp_serves_the_real_fish_frames_in_a_loop() {
    let server = RtspServer::start(
        0,
        "/tank",
        RtspMedia::ImageSequence {
            pattern: fasttrack_pattern(),
            start_index: 1,
            framerate: 25,
        },
    )
    .expect("rtsp server");
    let cfg = SourceConfig::Rtsp {
        url: server.url(),
        latency_ms: 100,
        reconnect: ReconnectConfig::default(),
    };
    let (tx, rx) = bounded(64);
    let stop = Arc::new(AtomicBool::new(false));
    let handle = spawn("fish", &cfg, None, tx, stop.clone()).unwrap();
    let mut frames = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while frames.len() < 10 && Instant::now() < deadline {
        if let Ok(IngestEvent::Frame(f)) = rx.recv_timeout(Duration::from_millis(200)) {
            frames.push(f);
        }
    }
    stop.store(true, Ordering::SeqCst);
    handle.join();
    assert_eq!(frames.len(), 10);
    // H.264 makes it I420 at the original size; luma stays close to the PGM (lossy coding).
    let f = &frames[0];
    assert_eq!((f.width, f.height, f.layout), (524, 338, PixelLayout::I420));
    let mean = |d: &[u8]| d.iter().map(|&v| v as f64).sum::<f64>() / d.len() as f64;
    let img = image::open(format!("{FASTTRACK}/frame_000001.pgm"))
        .unwrap()
        .to_luma8();
    let (m_rtsp, m_pgm) = (mean(f.luma().unwrap()), mean(img.as_raw()));
    println!("mean luma over RTSP {m_rtsp:.1} vs PGM {m_pgm:.1}");
    assert!((m_rtsp - m_pgm).abs() < 20.0, "{m_rtsp} vs {m_pgm}");
}

#[test]
fn stop_is_prompt_while_a_camera_is_unreachable() {
    // A closed local port (refused) and a TEST-NET address (no route or silent).
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    for url in [
        format!("rtsp://127.0.0.1:{closed}/cam"),
        "rtsp://192.0.2.1:554/cam".to_string(),
    ] {
        let cfg = SourceConfig::Rtsp {
            url: url.clone(),
            latency_ms: 100,
            reconnect: ReconnectConfig {
                initial_backoff_ms: 100,
                max_backoff_ms: 400,
                stall_timeout_ms: 1000,
            },
        };
        let (tx, rx) = bounded(4);
        let stop = Arc::new(AtomicBool::new(false));
        let handle = spawn("dead", &cfg, None, tx, stop.clone()).unwrap();
        std::thread::sleep(Duration::from_millis(2500));
        let s = handle.stats().snapshot();
        assert!(s.reconnects >= 1, "{url}: retries: {s:?}");
        assert!(!s.connected && s.frames == 0);
        assert!(rx.try_recv().is_err(), "no event while the camera is down");
        stop.store(true, Ordering::SeqCst);
        let t = Instant::now();
        handle.join();
        println!(
            "{url}: {} attempts, stop took {:?}",
            s.reconnects,
            t.elapsed()
        );
        assert!(
            t.elapsed() < Duration::from_millis(1200),
            "{url}: stop took {:?}",
            t.elapsed()
        );
    }
}
