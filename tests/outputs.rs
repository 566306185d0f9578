//! Output sinks and the HTTP side, end to end on real files and a real socket.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use finprint::config::CameraView;
use finprint::messages::{Detection, ResumeState, TrackReport, TrackStatus, TrackedFrame};
use finprint::output::http::{self, HttpConfig, LiveCamera, LiveState};
use finprint::output::{
    CameraOutputInfo, DistanceUnit, InteractionsConfig, Metrics, OutputConfig, OutputError, Rotate,
    Sinks,
};
use finprint::track::{TrackConfig, Tracker};

fn track(id: u64, status: TrackStatus, matched: bool, x: f32, y: f32) -> TrackReport {
    TrackReport {
        track: id,
        individual: None,
        status,
        x,
        y,
        bbox: [x - 10.0, y - 3.0, x + 10.0, y + 3.0],
        heading: 0.5,
        area: 60.0,
        detection: matched.then_some(0),
        body_length: 20.0,
        fish_area: 0.0,
    }
}

fn frame(
    camera: &str,
    index: u64,
    fps: f64,
    t0: SystemTime,
    tracks: Vec<TrackReport>,
) -> TrackedFrame {
    let t = index as f64 / fps;
    TrackedFrame {
        camera: Arc::from(camera),
        index,
        t,
        captured: t0 + Duration::from_secs_f64(t),
        width: 640,
        height: 480,
        visible_fish: tracks.len() as u32,
        tracks,
    }
}

fn cfg(dir: &Path) -> OutputConfig {
    OutputConfig {
        dir: Some(dir.to_path_buf()),
        rotate: Rotate::Never,
        flush_interval_s: 0.0,
        ..OutputConfig::default()
    }
}

fn read_csv(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let mut r = csv::Reader::from_path(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let header = r.headers().unwrap().iter().map(String::from).collect();
    let rows = r
        .records()
        .map(|r| r.unwrap().iter().map(String::from).collect())
        .collect();
    (header, rows)
}

const T0: u64 = 1_790_000_000; // 2026-09-21T14:13:20Z

/// Fish 2 approaches fish 1 (x = 200, individual "nemo") until 20 px away (frame 60), stays
/// 2 s (50 frames), then swims away: within 30 px (1.5 body lengths, the default rule) from
/// frame 53 to frame 111.
fn approach(i: u64) -> Vec<TrackReport> {
    let x2 = match i {
        0..60 => 100.0 + i as f32 * (80.0 / 60.0),
        60..110 => 180.0,
        _ => 180.0 - (i - 109) as f32 * 4.0,
    };
    let mut a = track(1, TrackStatus::Confirmed, true, 200.0, 100.0);
    a.individual = Some("nemo".into());
    vec![a, track(2, TrackStatus::Confirmed, true, x2, 100.0)]
}

#[test]
fn trajectories_columns_observations_only_and_mm() {
    let dir = tempfile::tempdir().unwrap();
    let cams = [
        CameraOutputInfo {
            name: "left".into(),
            mm_per_px: Some(0.5),
        },
        CameraOutputInfo {
            name: "right".into(),
            mm_per_px: None,
        },
    ];
    let mut sinks = Sinks::build(&cfg(dir.path()), &cams).unwrap();
    let t0 = UNIX_EPOCH + Duration::from_secs(T0);
    for i in 0..10 {
        let mut named = track(1, TrackStatus::Confirmed, true, 100.0 + i as f32, 50.0);
        named.individual = Some("fish,\"7\"".into());
        let tracks = vec![
            named,
            track(2, TrackStatus::Tentative, true, 300.0, 300.0),
            track(3, TrackStatus::Lost, false, 400.0, 300.0),
            track(4, TrackStatus::Confirmed, false, 500.0, 300.0), // coasting without match
        ];
        sinks
            .consume(&frame("left", i, 25.0, t0, tracks.clone()))
            .unwrap();
        sinks.consume(&frame("right", i, 25.0, t0, tracks)).unwrap();
    }
    sinks.close().unwrap();

    let (header, rows) = read_csv(&dir.path().join("left/trajectories.csv"));
    assert_eq!(
        header.join(","),
        "frame,t,camera,track,individual,x,y,x0,y0,x1,y1,heading,area,x_mm,y_mm,time"
    );
    assert_eq!(
        rows.len(),
        10,
        "only the confirmed, matched track is an observation"
    );
    let r = &rows[3];
    assert_eq!(r[0], "3");
    assert_eq!(r[1].parse::<f64>().unwrap(), 0.12);
    assert_eq!(
        (r[2].as_str(), r[3].as_str(), r[4].as_str()),
        ("left", "1", "fish,\"7\"")
    );
    assert_eq!(r[5].parse::<f64>().unwrap(), 103.0);
    assert_eq!(r[7].parse::<f64>().unwrap(), 93.0);
    assert_eq!(
        r[13].parse::<f64>().unwrap(),
        51.5,
        "x_mm = 103 px × 0.5 mm/px"
    );
    assert_eq!(r[14].parse::<f64>().unwrap(), 25.0);
    assert!(
        r[15].ends_with('Z') && r[15].starts_with("2026-"),
        "{}",
        r[15]
    );

    let (_, rows) = read_csv(&dir.path().join("right/trajectories.csv"));
    assert_eq!(rows.len(), 10);
    assert_eq!(
        (rows[0][13].as_str(), rows[0][14].as_str()),
        ("", ""),
        "no scale → empty mm"
    );

    let mot = std::fs::read_to_string(dir.path().join("left/mot.txt")).unwrap();
    let lines: Vec<&str> = mot.lines().collect();
    assert_eq!(lines.len(), 10);
    assert_eq!(
        lines[0], "1,1,90.00,47.00,20.00,6.00,1,-1,-1,-1",
        "MOT frames are 1-based"
    );
}

/// Two fish approach, stay together 2 s, separate: one event row with the right times.
#[test]
fn interaction_event_is_logged() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(dir.path());
    c.interactions = InteractionsConfig {
        enabled: true,
        distance: 30.0,
        unit: DistanceUnit::Px,
        min_duration_s: 1.0,
        max_gap_s: 0.3,
    };
    // Trajectories only every hour: the interaction log must not wait for that.
    c.flush_interval_s = 3600.0;
    let mut sinks = Sinks::build(
        &c,
        &[CameraOutputInfo {
            name: "tank".into(),
            mm_per_px: None,
        }],
    )
    .unwrap();
    let t0 = UNIX_EPOCH + Duration::from_secs(T0);
    let fps = 25.0;
    let path = dir.path().join("tank/interactions.csv");
    for i in 0..200u64 {
        sinks
            .consume(&frame("tank", i, fps, t0, approach(i)))
            .unwrap();
        if i == 150 {
            // Written and flushed as soon as the event ends, not only at close.
            let (_, rows) = read_csv(&path);
            assert_eq!(rows.len(), 1);
            // ... while trajectories keep their (hourly here) schedule: only frame 0 so far.
            let (_, traj) = read_csv(&dir.path().join("tank/trajectories.csv"));
            assert_eq!(traj.len(), 2);
        }
    }
    sinks.close().unwrap();
    let (header, rows) = read_csv(&path);
    assert_eq!(
        header.join(","),
        "camera,a,b,start,end,duration,min_distance,mean_distance,unit,start_frame,end_frame"
    );
    assert_eq!(rows.len(), 1, "{rows:?}");
    let r = &rows[0];
    assert_eq!(
        (r[0].as_str(), r[1].as_str(), r[2].as_str()),
        ("tank", "nemo", "track:2")
    );
    // Within 30 px from x2 ≥ 170 (frame 53, 170.67) to the last frame ≥ 170 (frame 111, 172).
    assert_eq!((r[9].as_str(), r[10].as_str()), ("53", "111"));
    let duration: f64 = r[5].parse().unwrap();
    assert!((duration - 58.0 / 25.0).abs() < 1e-3, "{duration}");
    assert_eq!(r[6].parse::<f64>().unwrap(), 20.0);
    assert_eq!(r[8], "px");
    let start = chrono::DateTime::parse_from_rfc3339(&r[3]).unwrap();
    let end = chrono::DateTime::parse_from_rfc3339(&r[4]).unwrap();
    assert_eq!((end - start).num_milliseconds(), 2320);
    assert_eq!(start.timestamp_millis(), T0 as i64 * 1000 + 2120);
}

#[test]
fn daily_rotation_across_midnight() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(dir.path());
    c.rotate = Rotate::Daily;
    let mut sinks = Sinks::build(
        &c,
        &[CameraOutputInfo {
            name: "cam".into(),
            mm_per_px: None,
        }],
    )
    .unwrap();
    // 2026-11-27T23:59:58Z, 10 fps for 4 s → 20 frames before midnight, 20 after.
    let midnight = 1_795_824_000u64; // 2026-11-28T00:00:00Z
    let t0 = UNIX_EPOCH + Duration::from_secs(midnight - 2);
    for i in 0..40 {
        sinks
            .consume(&frame(
                "cam",
                i,
                10.0,
                t0,
                vec![track(7, TrackStatus::Confirmed, true, 10.0, 10.0)],
            ))
            .unwrap();
    }
    sinks.close().unwrap();
    let (h1, before) = read_csv(&dir.path().join("cam/trajectories-2026-11-27.csv"));
    let (h2, after) = read_csv(&dir.path().join("cam/trajectories-2026-11-28.csv"));
    assert_eq!(h1, h2);
    assert_eq!((before.len(), after.len()), (20, 20));
    assert_eq!(after[0][0], "20");
    assert!(
        after[0][15].starts_with("2026-11-28T00:00:00.000"),
        "{}",
        after[0][15]
    );
    assert!(dir.path().join("cam/mot-2026-11-27.txt").exists());
    assert!(dir.path().join("cam/mot-2026-11-28.txt").exists());
}

/// A full disk (/dev/full) makes consume return an error naming the file; rows stay buffered
/// and reach the file, exactly once, when the disk recovers.
#[test]
fn full_disk_keeps_rows_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(dir.path());
    c.mot = false;
    c.interactions.enabled = false;
    let metrics = Metrics::new();
    let mut sinks = Sinks::build(
        &c,
        &[CameraOutputInfo {
            name: "cam".into(),
            mm_per_px: None,
        }],
    )
    .unwrap()
    .with_metrics(metrics.clone());
    let target = dir.path().join("cam/trajectories.csv");
    std::os::unix::fs::symlink("/dev/full", &target).unwrap();
    let t0 = UNIX_EPOCH + Duration::from_secs(T0);
    let mut errors = 0;
    for i in 0..5 {
        match sinks.consume(&frame(
            "cam",
            i,
            25.0,
            t0,
            vec![track(1, TrackStatus::Confirmed, true, 1.0, 2.0)],
        )) {
            Err(OutputError::Write { path, source }) => {
                assert_eq!(path, target);
                assert_eq!(source.raw_os_error(), Some(28), "ENOSPC");
                errors += 1;
            }
            other => panic!("expected a write error, got {other:?}"),
        }
    }
    assert_eq!(errors, 5);
    assert!(sinks.buffered_bytes("cam") > 0);
    let text = metrics.encode();
    assert!(
        text.contains("finprint_output_write_errors_total{camera=\"cam\"} 5"),
        "{text}"
    );
    let msg = OutputError::Write {
        path: target.clone(),
        source: std::io::Error::from_raw_os_error(28),
    }
    .to_string();
    assert!(
        msg.contains("trajectories.csv") && msg.contains("retried"),
        "{msg}"
    );

    // The disk "recovers".
    std::fs::remove_file(&target).unwrap();
    for i in 5..8 {
        sinks
            .consume(&frame(
                "cam",
                i,
                25.0,
                t0,
                vec![track(1, TrackStatus::Confirmed, true, 1.0, 2.0)],
            ))
            .unwrap();
    }
    assert_eq!(sinks.buffered_bytes("cam"), 0);
    assert_eq!(sinks.dropped_rows("cam"), 0);
    sinks.close().unwrap();
    let (_, rows) = read_csv(&target);
    let frames: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(frames, ["0", "1", "2", "3", "4", "5", "6", "7"]);
}

#[test]
fn close_reports_lost_bytes_and_bad_dirs_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(dir.path());
    c.interactions.enabled = false;
    c.mot = false;
    let mut sinks = Sinks::build(
        &c,
        &[CameraOutputInfo {
            name: "cam".into(),
            mm_per_px: None,
        }],
    )
    .unwrap();
    std::os::unix::fs::symlink("/dev/full", dir.path().join("cam/trajectories.csv")).unwrap();
    let t0 = UNIX_EPOCH + Duration::from_secs(T0);
    let _ = sinks.consume(&frame(
        "cam",
        0,
        25.0,
        t0,
        vec![track(1, TrackStatus::Confirmed, true, 1.0, 2.0)],
    ));
    match sinks.close() {
        Err(OutputError::LostOnClose { bytes, .. }) => assert!(bytes > 0),
        other => panic!("expected LostOnClose, got {other:?}"),
    }

    // A folder below a regular file cannot be created: a clear startup error, no panic.
    let file = dir.path().join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    let err = Sinks::build(
        &cfg(&file.join("out")),
        &[CameraOutputInfo {
            name: "cam".into(),
            mm_per_px: None,
        }],
    )
    .unwrap_err();
    assert!(matches!(err, OutputError::CreateDir { .. }), "{err:?}");
    assert!(err.to_string().contains("plain-file"), "{err}");

    // mm interactions without a scale are refused at build time.
    let mut c = cfg(dir.path());
    c.interactions.unit = DistanceUnit::Mm;
    let err = Sinks::build(
        &c,
        &[CameraOutputInfo {
            name: "cam".into(),
            mm_per_px: None,
        }],
    )
    .unwrap_err();
    assert!(err.to_string().contains("mm_per_px"), "{err}");
    // Parquet is visibly unfinished: validation says so.
    let c = OutputConfig {
        parquet: true,
        ..OutputConfig::default()
    };
    assert!(
        c.validate("output")
            .unwrap_err()
            .to_string()
            .contains("output.parquet")
    );
}

#[test]
fn config_parses_with_documented_defaults() {
    let c: OutputConfig = toml::from_str("").unwrap();
    assert_eq!(c, OutputConfig::default());
    assert_eq!(
        (c.trajectories, c.parquet, c.mot, c.rotate),
        (true, false, true, Rotate::Daily)
    );
    let c: OutputConfig = toml::from_str(
        "dir = \"/tmp/x\"\nrotate = \"never\"\n[interactions]\ndistance = 12.5\nunit = \"mm\"\nmax_gap_s = 0.2\n",
    )
    .unwrap();
    assert_eq!(c.interactions.unit, DistanceUnit::Mm);
    assert_eq!(c.rotate, Rotate::Never);
    assert!(toml::from_str::<OutputConfig>("bogus = 1").is_err());
    let r = OutputConfig::default().for_replay(Path::new("/tmp/out"));
    assert_eq!(
        (r.dir.as_deref(), r.rotate),
        (Some(Path::new("/tmp/out")), Rotate::Never)
    );
    let h: HttpConfig = toml::from_str("").unwrap();
    assert_eq!(h.listen, "127.0.0.1:9464");
    assert!(
        HttpConfig {
            listen: "localhost".into(),
            ..h
        }
        .validate("http")
        .is_err()
    );
}

#[test]
fn http_endpoints_over_loopback() {
    let cfg = HttpConfig {
        listen: "127.0.0.1:0".into(),
        stale_after_s: 0.5,
        ..HttpConfig::default()
    };
    let live = LiveState::new(&[
        LiveCamera {
            name: "a".into(),
            tank: "tank-a".into(),
            population: Some(14),
        },
        LiveCamera {
            name: "b".into(),
            tank: "tank-b".into(),
            population: None,
        },
    ]);
    let metrics = Metrics::new();
    let listener = http::bind(&cfg).unwrap();
    let addr = listener.local_addr().unwrap();
    // The same address again is a clear error, not a panic.
    let busy = HttpConfig {
        listen: addr.to_string(),
        ..cfg.clone()
    };
    assert!(
        http::bind(&busy)
            .unwrap_err()
            .to_string()
            .contains(&addr.to_string())
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let extra =
        axum::Router::new().route("/api/v1/extra", axum::routing::get(|| async { "extra" }));
    let server = rt.spawn({
        let (live, metrics, cfg) = (live.clone(), metrics.clone(), cfg.clone());
        async move {
            http::serve_on(listener, &cfg, live, metrics, extra, async {
                let _ = rx.await;
            })
            .await
        }
    });

    let t0 = UNIX_EPOCH + Duration::from_secs(T0);
    let mut t = track(1, TrackStatus::Confirmed, true, 1.0, 2.0);
    t.individual = Some("f07".into());
    let tracks = vec![
        t,
        track(2, TrackStatus::Lost, false, 5.0, 5.0),
        track(3, TrackStatus::Tentative, true, 9.0, 9.0),
    ];
    let f = frame("a", 41, 25.0, t0, tracks);
    live.update(&f);
    metrics.inc_frames("a", 1);
    metrics.observe_tracked_frame(&f);
    live.update(&frame("b", 3, 25.0, t0, vec![]));

    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let get = |p: &str| {
        let mut r = agent.get(&format!("http://{addr}{p}")).call().unwrap();
        (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
    };
    let (code, body) = get("/api/v1/counts");
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let a = &v["cameras"][0];
    assert_eq!(a["camera"], "a");
    assert_eq!(a["tank"], "tank-a");
    assert_eq!(a["visible_fish"], 3);
    assert_eq!(a["tracks"], 2, "confirmed + coasting, not tentative");
    assert_eq!(a["expected_population"], 14);
    assert_eq!(a["individuals_present"], serde_json::json!(["f07"]));
    assert_eq!(a["last_frame"], 41);
    assert_eq!(
        v["cameras"][1]["expected_population"],
        serde_json::Value::Null
    );

    let (code, body) = get("/metrics");
    assert_eq!(code, 200);
    assert!(
        body.contains("finprint_frames_total{camera=\"a\"} 1"),
        "{body}"
    );
    assert!(body.contains("finprint_tracks{camera=\"a\"} 2"), "{body}");
    assert_eq!(get("/api/v1/extra"), (200, "extra".to_string()));
    assert_eq!(get("/healthz"), (200, "ok\n".to_string()));

    // Camera b goes quiet; a keeps delivering.
    std::thread::sleep(Duration::from_millis(700));
    live.update(&frame("a", 42, 25.0, t0, vec![]));
    let (code, body) = get("/healthz");
    assert_eq!(code, 503);
    assert!(body.starts_with("degraded: camera b stale for"), "{body}");
    assert!(!body.contains("camera a"), "{body}");

    tx.send(()).unwrap();
    rt.block_on(server).unwrap().unwrap();
}

/// Trajectory rows wait at most `flush_interval_s` (measured from the last write); `flush()`
/// writes them at once, e.g. from a timer while a camera is quiet.
#[test]
fn rows_wait_for_the_interval_or_an_explicit_flush() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(dir.path());
    c.flush_interval_s = 0.3;
    let mut sinks = Sinks::build(
        &c,
        &[CameraOutputInfo {
            name: "cam".into(),
            mm_per_px: None,
        }],
    )
    .unwrap();
    let t0 = UNIX_EPOCH + Duration::from_secs(T0);
    let path = dir.path().join("cam/trajectories.csv");
    let rows = |p: &Path| read_csv(p).1.len();
    let obs = || vec![track(1, TrackStatus::Confirmed, true, 1.0, 2.0)];
    sinks.consume(&frame("cam", 0, 25.0, t0, obs())).unwrap(); // first frame writes at once
    sinks.consume(&frame("cam", 1, 25.0, t0, obs())).unwrap();
    assert_eq!(rows(&path), 1);
    std::thread::sleep(Duration::from_millis(350));
    sinks.consume(&frame("cam", 2, 25.0, t0, obs())).unwrap();
    assert_eq!(rows(&path), 3, "interval elapsed: written");
    sinks.consume(&frame("cam", 3, 25.0, t0, obs())).unwrap();
    assert_eq!(rows(&path), 3);
    sinks.flush().unwrap();
    assert_eq!(rows(&path), 4);
    sinks.close().unwrap();
}

/// A source restart resets stream time: open interaction events are closed and logged, and
/// the new stream's interactions are still detected.
#[test]
fn stream_time_reset_does_not_stop_interactions() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(dir.path());
    c.interactions = InteractionsConfig {
        enabled: true,
        distance: 30.0,
        unit: DistanceUnit::Px,
        min_duration_s: 0.5,
        max_gap_s: 0.2,
    };
    let mut sinks = Sinks::build(
        &c,
        &[CameraOutputInfo {
            name: "cam".into(),
            mm_per_px: None,
        }],
    )
    .unwrap();
    let pair = || {
        vec![
            track(1, TrackStatus::Confirmed, true, 0.0, 0.0),
            track(2, TrackStatus::Confirmed, true, 10.0, 0.0),
        ]
    };
    let t0 = UNIX_EPOCH + Duration::from_secs(T0);
    for i in 0..50 {
        sinks.consume(&frame("cam", i, 25.0, t0, pair())).unwrap();
    }
    // Restart: stream time and index start again from 0, 10 s later by the wall clock.
    let t1 = t0 + Duration::from_secs(10);
    for i in 0..50 {
        sinks.consume(&frame("cam", i, 25.0, t1, pair())).unwrap();
    }
    sinks.close().unwrap();
    let (_, rows) = read_csv(&dir.path().join("cam/interactions.csv"));
    assert_eq!(rows.len(), 2, "{rows:?}");
    let starts: Vec<i64> = rows
        .iter()
        .map(|r| {
            chrono::DateTime::parse_from_rfc3339(&r[3])
                .unwrap()
                .timestamp()
        })
        .collect();
    assert_eq!(starts, [T0 as i64, T0 as i64 + 10]);
}

/// Outputs of camera `tank` in `dir` (config, cameras, capture start, sinks), started on the
/// recording `file a.mkv` afresh (no checkpoint yet).
fn recording_a(dir: &Path) -> (OutputConfig, [CameraOutputInfo; 1], SystemTime, Sinks) {
    let c = cfg(dir);
    let cams = [CameraOutputInfo {
        name: "tank".into(),
        mm_per_px: None,
    }];
    let mut sinks = Sinks::build(&c, &cams).unwrap();
    assert_eq!(
        sinks.resume_source("tank", "file a.mkv", true).unwrap(),
        None
    );
    (c, cams, UNIX_EPOCH + Duration::from_secs(T0), sinks)
}

/// Tracks on one blob in the checkpoint's frame carry their fish's own area into the resumed
/// run, or, where the tracker did not say it, their share of the blob's (a report carries the
/// whole blob's area). With the whole area each, two tracks no longer fitted on the blob they
/// shared and one went unreported in the first frame after the restart (real top view
/// fasttrack-zebrafish14, restart at frame 100); with equal shares, a small fish's track
/// riding on a large fish's blob looked like half of that fish, and the side-view rule that
/// ends such a track (`max_shared_s`) did not see it (4-fish tank, crash-resume at frame 390).
#[test]
fn tracks_sharing_a_blob_carry_their_own_area_or_their_share_of_it_into_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (c, cams, t0, mut sinks) = recording_a(dir.path());
    for i in 0..5u64 {
        let mut a = track(3, TrackStatus::Confirmed, true, 50.0, 60.0);
        let mut b = track(4, TrackStatus::Confirmed, true, 58.0, 62.0);
        let mut alone = track(5, TrackStatus::Confirmed, true, 200.0, 100.0);
        (a.area, b.area) = (290.0, 290.0);
        (alone.area, alone.detection) = (140.0, Some(1));
        let mut big = track(6, TrackStatus::Confirmed, true, 300.0, 60.0);
        let mut small = track(7, TrackStatus::Confirmed, true, 305.0, 62.0);
        for (t, own) in [(&mut big, 200.0), (&mut small, 90.0)] {
            (t.area, t.fish_area, t.detection) = (290.0, own, Some(2));
        }
        sinks
            .consume(&frame("tank", i, 25.0, t0, vec![a, b, alone, big, small]))
            .unwrap();
    }
    sinks.close().unwrap();
    let mut again = Sinks::build(&c, &cams).unwrap();
    let cp = again
        .resume_source("tank", "file a.mkv", true)
        .unwrap()
        .expect("resumes");
    let area = |id: u64| cp.tracks.iter().find(|s| s.track == id).map(|s| s.area);
    assert_eq!(
        (area(3), area(4), area(5), area(6), area(7)),
        (
            Some(145.0),
            Some(145.0),
            Some(140.0),
            Some(200.0),
            Some(90.0)
        ),
        "{:?}",
        cp.tracks
    );
    assert!(
        cp.tracks
            .iter()
            .filter(|s| s.track != 5)
            .all(|s| s.shared_box.is_some())
    );
}

/// The checkpoint of a recording: written at close with how far the rows go; a run on the same
/// recording resumes from it with the files cut back to it (rows written after it removed); a
/// run on another recording starts from its first frame and leaves the files as they are.
#[test]
fn a_recordings_checkpoint_says_where_its_rows_end_and_only_that_recording_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let (c, cams, t0, mut sinks) = recording_a(dir.path());
    for i in 0..20u64 {
        let tracks = vec![track(3 + i / 10, TrackStatus::Confirmed, true, 50.0, 60.0)];
        sinks.consume(&frame("tank", i, 25.0, t0, tracks)).unwrap();
    }
    sinks.close().unwrap();
    let traj = dir.path().join("tank/trajectories.csv");
    let done = std::fs::read(&traj).unwrap();
    // A crash after the checkpoint left a row behind it.
    let mut after = done.clone();
    after.extend_from_slice(
        b"20,0.8000,tank,5,,50.00,60.00,40.00,57.00,60.00,63.00,0.5000,60.0,,,x\n",
    );
    std::fs::write(&traj, &after).unwrap();

    let mut other = Sinks::build(&c, &cams).unwrap();
    assert_eq!(
        other.resume_source("tank", "file b.mkv", true).unwrap(),
        None
    );
    assert_eq!(
        std::fs::read(&traj).unwrap(),
        after,
        "another recording's run cuts nothing"
    );
    drop(other);

    let mut again = Sinks::build(&c, &cams).unwrap();
    let cp = again
        .resume_source("tank", "file a.mkv", true)
        .unwrap()
        .expect("resumes");
    assert_eq!((cp.next_frame, cp.next_track), (20, 5));
    assert!((cp.last_t - 19.0 / 25.0).abs() < 1e-9);
    assert_eq!(cp.origin(), t0);
    assert_eq!(
        std::fs::read(&traj).unwrap(),
        done,
        "the row after the checkpoint is cut"
    );

    // Outputs deleted (checkpoint left): the recording is processed again from its start.
    drop(again);
    for f in [
        "trajectories.csv",
        "mot.txt",
        "counts.csv",
        "interactions.csv",
    ] {
        let _ = std::fs::remove_file(dir.path().join("tank").join(f));
    }
    let mut fresh = Sinks::build(&c, &cams).unwrap();
    assert_eq!(
        fresh.resume_source("tank", "file a.mkv", true).unwrap(),
        None
    );

    // A damaged checkpoint stops the start with the file named.
    std::fs::write(dir.path().join("tank/checkpoint.json"), b"{").unwrap();
    let mut broken = Sinks::build(&c, &cams).unwrap();
    let e = broken
        .resume_source("tank", "file a.mkv", true)
        .unwrap_err();
    assert!(matches!(e, OutputError::Checkpoint { .. }), "{e}");
    // ... but not a live camera's, which only numbers on from it.
    let live = broken.resume_source("tank", "RTSP stream rtsp://cam/1", false);
    assert_eq!(live.unwrap(), None);
    let bad = OutputConfig {
        checkpoint_interval_s: 0.0,
        ..OutputConfig::default()
    };
    let e = bad.validate("output").unwrap_err().to_string();
    assert!(e.contains("output.checkpoint_interval_s"), "{e}");
}

/// An interaction open when a recording's run stops goes on in the run that resumes it: one
/// event across the restart, the uninterrupted run's (before, two pieces, or none where both
/// were shorter than `min_duration_s`). The stopped run's file holds the event its stop ended
/// (a final stop loses nothing); the resumed run cuts it off. A live camera's rows are never
/// cut, so its next run keeps that event and starts a new one.
#[test]
fn an_interaction_open_at_a_restart_stays_one_event() {
    let fps = 25.0;
    let (whole_dir, dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (_, _, t0, mut whole) = recording_a(whole_dir.path());
    for i in 0..200u64 {
        whole
            .consume(&frame("tank", i, fps, t0, approach(i)))
            .unwrap();
    }
    whole.close().unwrap();
    let (_, expected) = read_csv(&whole_dir.path().join("tank/interactions.csv"));
    assert_eq!(expected.len(), 1, "{expected:?}");
    assert_eq!(
        (expected[0][9].as_str(), expected[0][10].as_str()),
        ("53", "111")
    );

    let (c, cams, _, mut first) = recording_a(dir.path());
    for i in 0..80u64 {
        first
            .consume(&frame("tank", i, fps, t0, approach(i)))
            .unwrap();
    }
    first.close().unwrap();
    let path = dir.path().join("tank/interactions.csv");
    let (_, stopped) = read_csv(&path);
    assert_eq!(stopped.len(), 1, "{stopped:?}");
    assert_eq!(
        (stopped[0][9].as_str(), stopped[0][10].as_str()),
        ("53", "79")
    );
    let mut resumed = Sinks::build(&c, &cams).unwrap();
    let cp = resumed
        .resume_source("tank", "file a.mkv", true)
        .unwrap()
        .expect("resumes");
    assert_eq!(cp.interactions.len(), 1, "{:?}", cp.interactions);
    assert_eq!(cp.names.get("track:1").map(String::as_str), Some("nemo"));
    assert!(
        !path.exists() || read_csv(&path).1.is_empty(),
        "the stop's event is cut off"
    );
    for i in 80..200u64 {
        resumed
            .consume(&frame("tank", i, fps, t0, approach(i)))
            .unwrap();
    }
    resumed.close().unwrap();
    assert_eq!(read_csv(&path).1, expected);

    let live = tempfile::tempdir().unwrap();
    let c = cfg(live.path());
    let source = "RTSP stream rtsp://cam/1";
    for (from, to) in [(0u64, 80u64), (80, 200)] {
        let mut sinks = Sinks::build(&c, &cams).unwrap();
        sinks.resume_source("tank", source, false).unwrap();
        for i in from..to {
            sinks
                .consume(&frame("tank", i, fps, t0, approach(i)))
                .unwrap();
        }
        sinks.close().unwrap();
    }
    let (_, rows) = read_csv(&live.path().join("tank/interactions.csv"));
    let spans: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r[9].as_str(), r[10].as_str()))
        .collect();
    assert_eq!(spans, [("53", "79"), ("80", "111")]);
}

/// A crash after midnight whose last checkpoint lies before it: the resumed run cuts the
/// rows after the checkpoint from the next day's files too, so no row is written twice.
#[test]
fn a_crash_after_midnight_leaves_no_row_twice_in_the_next_days_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(dir.path());
    c.rotate = Rotate::Daily;
    c.checkpoint_interval_s = 3600.0;
    let cams = [CameraOutputInfo {
        name: "tank".into(),
        mm_per_px: None,
    }];
    // 2026-11-27T23:59:58Z, 10 fps: 20 frames before midnight, then the next day.
    let midnight = 1_795_824_000u64; // 2026-11-28T00:00:00Z
    let t0 = UNIX_EPOCH + Duration::from_secs(midnight - 2);
    let row = |i: u64| {
        frame(
            "tank",
            i,
            10.0,
            t0,
            vec![track(7, TrackStatus::Confirmed, true, 10.0, 10.0)],
        )
    };
    let mut first = Sinks::build(&c, &cams).unwrap();
    assert_eq!(
        first.resume_source("tank", "file a.mkv", true).unwrap(),
        None
    );
    // The checkpoint is saved after the first frame (then not for an hour); rows are written
    // with every frame, past midnight; then the process dies (nothing else saved).
    for i in 0..30 {
        first.consume(&row(i)).unwrap();
    }
    std::mem::forget(first);
    let next_day = dir.path().join("tank/trajectories-2026-11-28.csv");
    assert_eq!(
        read_csv(&next_day).1.len(),
        10,
        "rows after midnight are on disk"
    );

    let mut resumed = Sinks::build(&c, &cams).unwrap();
    let cp = resumed
        .resume_source("tank", "file a.mkv", true)
        .unwrap()
        .expect("resumes");
    assert_eq!(cp.next_frame, 1);
    assert!(
        !next_day.exists(),
        "the next day's file started after the checkpoint is removed"
    );
    for i in cp.next_frame..40 {
        resumed.consume(&row(i)).unwrap();
    }
    resumed.close().unwrap();
    let frames =
        |p: &Path| -> Vec<String> { read_csv(p).1.into_iter().map(|r| r[0].clone()).collect() };
    let before = frames(&dir.path().join("tank/trajectories-2026-11-27.csv"));
    let after = frames(&next_day);
    let want: Vec<String> = (0..40).map(|i| i.to_string()).collect();
    assert_eq!([before, after].concat(), want);
}

/// A run that stops keeps its stages' state with the checkpoint before the first frame whose
/// rows it had not written when it stopped: after its last frame when every frame was written
/// (whether that checkpoint was still pending or already saved); otherwise before the frames
/// that still waited for their labels, saved before their rows and not moved by them, so a
/// resume cuts those rows off and writes them again from the state (also when the run wrote
/// no rows before them). A state for another frame is not kept, and neither is the checkpoint
/// after the last frame lost then.
#[test]
fn a_stop_keeps_the_stages_state_with_the_checkpoint_before_the_rows_it_had_not_written() {
    let mut tracker = Tracker::new(&TrackConfig::default(), CameraView::Top, None);
    let fish = Detection {
        x: 50.0,
        y: 60.0,
        bbox: [40.0, 57.0, 60.0, 63.0],
        area: 100.0,
        axis_angle: 0.0,
        major_axis: 20.0,
        minor_axis: 6.0,
        length: 20.0,
        fish_count: 1,
        crop: None,
        points: Vec::new(),
    };
    for k in 0..3 {
        tracker.update(f64::from(k) * 0.04, std::slice::from_ref(&fish));
    }
    let state = |after_frame, resume_at| ResumeState {
        after_frame,
        after_t: Some(after_frame as f64 / 25.0),
        resume_at,
        detector: None,
        tracker: tracker.state(),
        identity: None,
    };
    // written: frames the run writes before its states; sent: (after_frame, resume_at) of
    // each state sent then; waiting: frames written after them; kept: the checkpoint's
    // next_frame and whether it has the last state.
    for (written, sent, waiting, kept) in [
        (5u64, vec![(3u64, None), (4, None)], 0u64, (5u64, true)),
        (5, vec![(3, None)], 0, (5, false)),
        (1, vec![(0, None)], 0, (1, true)),
        (5, vec![(8, Some(5))], 4, (5, true)),
        (0, vec![(3, Some(0))], 4, (0, true)),
        (5, vec![(8, Some(6))], 4, (9, false)),
    ] {
        let what = format!("{written} frames, sent {sent:?}, {waiting} waiting");
        let dir = tempfile::tempdir().unwrap();
        let (c, cams, t0, mut sinks) = recording_a(dir.path());
        let row = |i| {
            frame(
                "tank",
                i,
                25.0,
                t0,
                vec![track(1, TrackStatus::Confirmed, true, 50.0, 60.0)],
            )
        };
        for i in 0..written {
            sinks.consume(&row(i)).unwrap();
        }
        for (after, at) in &sent {
            sinks.keep_resume_state("tank", state(*after, *at));
        }
        for i in written..written + waiting {
            sinks.consume(&row(i)).unwrap();
        }
        sinks.close().unwrap();
        let traj = dir.path().join("tank").join("trajectories.csv");
        let all_rows = std::fs::read_to_string(&traj).unwrap_or_default();
        assert_eq!(
            all_rows.lines().skip(1).count() as u64,
            written + waiting,
            "every frame's row is written: {what}"
        );
        let cp = Sinks::build(&c, &cams)
            .unwrap()
            .resume_source("tank", "file a.mkv", true)
            .unwrap()
            .expect("resumes");
        let (next, has) = kept;
        assert_eq!(cp.next_frame, next, "{what}");
        let last = sent.last().map(|&(a, r)| state(a, r));
        assert_eq!(cp.state, last.filter(|_| has), "{what}");
        // The resume cut the rows after the checkpoint off: those before it stay.
        let kept_rows = std::fs::read_to_string(&traj).unwrap_or_default();
        let frames: Vec<u64> = kept_rows
            .lines()
            .skip(1)
            .filter_map(|l| l.split(',').next()?.parse().ok())
            .collect();
        assert_eq!(frames, (0..next).collect::<Vec<_>>(), "{what}");
    }
}
