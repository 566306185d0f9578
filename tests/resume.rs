//! A recording outlives its daemon: `finprint run` on a simulated video file is killed with
//! SIGKILL partway (a crash or power cut, nothing flushed on the way out), started again with
//! the same config, and must leave outputs as if it had never stopped: every frame of the
//! video counted exactly once, no trajectory row twice, one header per file, stream and
//! capture times going on from the first run, and the tracks of the last frame written going
//! on under their ids from where they were (new ones numbered above the first run's). A third
//! start finds nothing left to do and changes no file.
//!
//! Every individual a row written before the crash names is in the saved identity state.
//!
//! Needs `finprint synth` (built in), GStreamer's Matroska/VP8 elements (as the daemon does),
//! the ONNX Runtime library (the repo's `.venv` wheel or ORT_DYLIB_PATH) and the shipped encoder.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_finprint");
/// Frames of the simulated recording.
const FRAMES: u64 = 900;
const FPS: f64 = 25.0;

fn run_ok(cmd: &mut Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    let log = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{what} failed: {}\n{log}", out.status);
    log
}

/// Polls `done` every 20 ms until it gives a value, asserting meanwhile that `child` (a
/// `finprint run`) is still running and that `limit` has not passed; `what` names the awaited.
fn wait_for<T>(
    child: &mut Child,
    limit: Duration,
    what: &str,
    mut done: impl FnMut() -> Option<T>,
) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = done() {
            return v;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "finprint run ended before {what}"
        );
        assert!(start.elapsed() < limit, "no {what} within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A number of the camera's checkpoint, when there is one.
fn checkpoint_field(path: &Path, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v[field].as_u64()
}

/// `next_frame` of the camera's checkpoint.
fn checkpoint_frame(path: &Path) -> Option<u64> {
    checkpoint_field(path, "next_frame")
}

/// The rows of a CSV file as column → value maps, and how many header lines it holds.
fn rows(path: &Path) -> (Vec<BTreeMap<String, String>>, usize) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let headers = text.lines().filter(|l| l.starts_with("frame,")).count();
    let mut r = csv::Reader::from_reader(text.as_bytes());
    let h = r.headers().unwrap().clone();
    let rows = r
        .records()
        .map(|rec| {
            let rec = rec.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            h.iter()
                .zip(rec.iter())
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .collect();
    (rows, headers)
}

fn num(row: &BTreeMap<String, String>, col: &str) -> f64 {
    row[col]
        .parse()
        .unwrap_or_else(|e| panic!("{col} = {:?}: {e}", row[col]))
}

fn millis(row: &BTreeMap<String, String>) -> i64 {
    chrono::DateTime::parse_from_rfc3339(&row["time"])
        .unwrap_or_else(|e| panic!("time {:?}: {e}", row["time"]))
        .timestamp_millis()
}

#[test]
fn a_recording_killed_partway_resumes_with_every_frame_written_once() {
    let dir = tempfile::tempdir().unwrap();
    let tank = dir.path().join("tank");
    run_ok(
        Command::new(BIN)
            .args([
                "synth",
                "--fish",
                "4",
                "--seed",
                "5",
                "--width",
                "640",
                "--height",
                "360",
                "--fps",
                "25",
                "--frames",
                &FRAMES.to_string(),
                "--crops-per-flank",
                "0",
                "--out",
            ])
            .arg(&tank),
        "finprint synth",
    );
    let video = tank.join("video.mkv");
    assert!(video.exists(), "synth wrote no {}", video.display());
    let out = dir.path().join("out");
    let cfg = dir.path().join("run.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[cameras]]\nname = \"tank\"\n[cameras.source]\nkind = \"file\"\npath = \"{}\"\n\n\
             [identity]\nstate_dir = \"{}\"\n\n\
             [output]\ndir = \"{}\"\nrotate = \"never\"\ncheckpoint_interval_s = 1\n\
             [output.interactions]\ndistance = 6.0\n\n\
             [http]\nenabled = false\n",
            video.display(),
            dir.path().join("identity").display(),
            out.display()
        ),
    )
    .unwrap();
    let run = || {
        let mut c = Command::new(BIN);
        c.args(["run", "--log", "info", "--config"]).arg(&cfg);
        c
    };

    // First run: killed without warning once a checkpoint covers some frames.
    let checkpoint = out.join("tank/checkpoint.json");
    let mut child = run()
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn finprint run");
    let killed_after = wait_for(
        &mut child,
        Duration::from_secs(120),
        "a checkpoint past frame 100",
        || checkpoint_frame(&checkpoint).filter(|&n| n >= 100),
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let resumed_at = checkpoint_frame(&checkpoint).unwrap();
    let next_track = checkpoint_field(&checkpoint, "next_track").unwrap();
    assert!(
        resumed_at >= killed_after && resumed_at < FRAMES,
        "checkpoint at {resumed_at}"
    );
    let (before, _) = rows(&out.join("tank/trajectories.csv"));
    // Every individual a written row names is in the saved identity state: new individuals are
    // saved before any row carries them, so a crash cannot orphan them.
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("identity/tank.identity.json"))
            .expect("the identity state was saved before the crash"),
    )
    .unwrap();
    let known: HashSet<&str> = state["registry"]["individuals"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["id"].as_str())
        .collect();
    let named: HashSet<&str> = before
        .iter()
        .filter(|r| (num(r, "frame") as u64) < resumed_at)
        .map(|r| r["individual"].as_str())
        .filter(|i| !i.is_empty())
        .collect();
    assert!(
        !named.is_empty(),
        "no row before the crash names an individual"
    );
    assert!(
        named.is_subset(&known),
        "rows name individuals the saved state does not know: {named:?} vs {known:?}"
    );
    // The saves before the crash (a new individual, a young gallery growing: the scheduled
    // save is a minute away) carry the regrouping window and the time it counts back from,
    // so the resumed run places its fragments before its checkpoint's frame.
    assert!(
        state["window_t"].as_f64().is_some_and(f64::is_finite),
        "the state saved before the crash has no window time: {}",
        state["window_t"]
    );

    // Interaction episodes open at the checkpoint that already last an event's minimum (1 s by
    // default) end as one event each in the resumed run's log, from their first frame.
    let cp: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&checkpoint).unwrap()).unwrap();
    let open_events: Vec<(u64, u64)> = cp["interactions"]
        .as_array()
        .expect("the checkpoint keeps the open interaction episodes")
        .iter()
        .filter(|e| e["last"].as_f64().unwrap() - e["start"].as_f64().unwrap() >= 1.0)
        .map(|e| {
            (
                e["start_frame"].as_u64().unwrap(),
                e["last_frame"].as_u64().unwrap(),
            )
        })
        .collect();
    eprintln!(
        "interaction episodes of 1 s or more open at the crash (frame {resumed_at}): {open_events:?}"
    );

    // Second run: continues after the checkpoint and finishes the recording.
    let log = run_ok(&mut run(), "finprint run (resumed)");
    assert!(
        log.contains("continuing after it"),
        "the resumed run does not say where it continues:\n{log}"
    );

    let (counts, headers) = rows(&out.join("tank/counts.csv"));
    assert_eq!(headers, 1, "counts.csv holds {headers} headers");
    let frames: Vec<u64> = counts.iter().map(|r| num(r, "frame") as u64).collect();
    assert_eq!(
        frames,
        (0..FRAMES).collect::<Vec<_>>(),
        "counts.csv must count every frame of the video once, in order (resumed at {resumed_at})"
    );
    let (traj, headers) = rows(&out.join("tank/trajectories.csv"));
    assert_eq!(headers, 1, "trajectories.csv holds {headers} headers");
    let mut seen = HashSet::new();
    for r in &traj {
        assert!(
            seen.insert((r["frame"].clone(), r["track"].clone())),
            "trajectory row written twice: frame {} track {}",
            r["frame"],
            r["track"]
        );
    }
    let (events, _) = rows(&out.join("tank/interactions.csv"));
    let text = std::fs::read_to_string(out.join("tank/interactions.csv")).unwrap();
    let headers = text.lines().filter(|l| l.starts_with("camera,")).count();
    assert_eq!(headers, 1, "interactions.csv holds {headers} headers");
    let mut seen = HashSet::new();
    for e in &events {
        assert!(seen.insert(e), "interaction event written twice: {e:?}");
    }
    for (start, last) in &open_events {
        assert!(
            events
                .iter()
                .any(|e| num(e, "start_frame") as u64 == *start
                    && num(e, "end_frame") as u64 >= *last),
            "the interaction open at the crash from frame {start} (close up to frame {last}) is \
             not one event: {events:?}"
        );
    }
    // Stream times go on from the first run, and capture times keep its origin.
    let origin = |r: &BTreeMap<String, String>| millis(r) - (num(r, "t") * 1000.0).round() as i64;
    let first_origin = origin(&traj[0]);
    for r in &traj {
        let f = num(r, "frame");
        assert!(
            (num(r, "t") - f / FPS).abs() < 1e-3,
            "frame {f} at t = {}",
            r["t"]
        );
        assert!(
            (origin(r) - first_origin).abs() <= 2,
            "frame {f}: capture time {} does not go on from the first run's",
            r["time"]
        );
    }
    // Rows the first run wrote up to its checkpoint stay as they were. The resumed run goes on
    // with the tracks of the checkpoint's frame under their ids, each from where it was (the
    // fish moved one frame's worth), and numbers the tracks it starts above the first run's.
    let kept: Vec<_> = before
        .iter()
        .filter(|r| (num(r, "frame") as u64) < resumed_at)
        .collect();
    assert!(!kept.is_empty());
    assert_eq!(traj[..kept.len()].iter().collect::<Vec<_>>(), kept);
    let resumed: Vec<_> = traj[kept.len()..].iter().collect();
    assert!(
        !resumed.is_empty(),
        "the resumed run wrote no trajectory row"
    );
    let last_before: BTreeMap<&str, (f64, f64, f64)> = kept
        .iter()
        .map(|r| {
            (
                r["track"].as_str(),
                (num(r, "frame"), num(r, "x"), num(r, "y")),
            )
        })
        .collect();
    let mut continued = HashSet::new();
    for r in &resumed {
        let frame = num(r, "frame");
        assert!(frame as u64 >= resumed_at);
        let track = r["track"].as_str();
        if continued.contains(track) {
            continue;
        }
        match last_before.get(track) {
            Some(&(f, x, y)) => {
                let moved = (num(r, "x") - x).hypot(num(r, "y") - y);
                assert!(
                    frame - f <= 3.0 && moved <= 20.0,
                    "track {track} goes on {} frames and {moved:.1} px away after the restart",
                    frame - f
                );
                continued.insert(track);
            }
            None => assert!(
                num(r, "track") as u64 >= next_track,
                "track {track} started after the restart has a number of the first run's"
            ),
        }
    }
    assert!(
        !continued.is_empty(),
        "no track of the first run goes on after the restart"
    );
    assert_eq!(checkpoint_frame(&checkpoint), Some(FRAMES));

    // Third run: nothing left; no file changes.
    let sizes = |d: &Path| -> BTreeMap<String, u64> {
        std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap())
            .map(|e| {
                (
                    e.file_name().to_string_lossy().to_string(),
                    e.metadata().unwrap().len(),
                )
            })
            .collect()
    };
    let files = sizes(&out.join("tank"));
    let log = run_ok(&mut run(), "finprint run (finished recording)");
    assert!(log.contains("processed it to its end"), "{log}");
    assert_eq!(sizes(&out.join("tank")), files);
}

/// A live camera's daemon stopped and started again (SIGTERM, as `systemctl restart` does) goes
/// on numbering its frames and tracks after the first run's, and its stream time after the
/// first run's too (with the downtime in it): the rows of one day's file never repeat a frame
/// number or give one track id to two tracks. Nothing is cut or skipped: live frames of the
/// downtime do not exist.
#[test]
fn a_live_camera_restarted_goes_on_numbering_frames_and_tracks() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let cfg = dir.path().join("live.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[cameras]]\nname = \"cam\"\n[cameras.source]\nkind = \"test_pattern\"\n\
             pattern = \"ball\"\nwidth = 320\nheight = 240\nframerate = 25\nlive = true\n\n\
             [identity]\nenabled = false\n\n\
             [output]\ndir = \"{}\"\nrotate = \"never\"\n\n[http]\nenabled = false\n",
            out.display()
        ),
    )
    .unwrap();
    let counts = out.join("cam/counts.csv");
    let run_for = |frames: usize| {
        let mut child = Command::new(BIN)
            .args(["run", "--log", "info", "--config"])
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn finprint run");
        let lines = || std::fs::read_to_string(&counts).map_or(0, |t| t.lines().count());
        let before = lines();
        wait_for(&mut child, Duration::from_secs(60), "new frames", || {
            (lines() >= before + frames).then_some(())
        });
        let st = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
        assert!(
            child.wait().unwrap().success(),
            "finprint run failed on SIGTERM"
        );
    };
    run_for(40);
    let (first, _) = rows(&counts);
    let n_first = first.len();
    run_for(40);
    let (all, headers) = rows(&counts);
    assert_eq!(headers, 1);
    assert!(all.len() >= n_first + 40);
    for w in all.windows(2) {
        assert!(
            num(&w[1], "frame") > num(&w[0], "frame") && num(&w[1], "t") > num(&w[0], "t"),
            "frame {} (t {}) after frame {} (t {})",
            w[1]["frame"],
            w[1]["t"],
            w[0]["frame"],
            w[0]["t"]
        );
    }
    assert!(num(&all[n_first], "frame") >= num(&all[n_first - 1], "frame") + 1.0);
    // Tracks of the second run are numbered after every track of the first.
    let (traj, _) = rows(&out.join("cam/trajectories.csv"));
    let last_first = num(&first[n_first - 1], "frame");
    let max_first = traj
        .iter()
        .filter(|r| num(r, "frame") <= last_first)
        .map(|r| num(r, "track"))
        .fold(0.0, f64::max);
    let second: Vec<f64> = traj
        .iter()
        .filter(|r| num(r, "frame") > last_first)
        .map(|r| num(r, "track"))
        .collect();
    assert!(
        second.iter().all(|&t| t > max_first),
        "a track id of the first run is used again after the restart: {max_first} vs {second:?}"
    );
}
