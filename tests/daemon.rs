//! `finprint run` as a daemon, end to end, over a real RTSP server on 127.0.0.1: live counts and
//! metrics over HTTP, a camera that disappears and comes back (reconnect, gap reported, health
//! degraded meanwhile), SIGTERM with every output file complete and parseable; and an
//! unreachable camera that is retried (logged) without the daemon dying.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::rtsp_server::{RtspMedia, RtspServer};

const BIN: &str = env!("CARGO_BIN_EXE_finprint");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The daemon process with its stderr collected in the background.
struct Daemon {
    child: Child,
    log: Arc<Mutex<String>>,
    http: String,
}

impl Daemon {
    fn start(config: &Path, http_port: u16) -> Daemon {
        let mut child = Command::new(BIN)
            .args(["run", "--config", config.to_str().unwrap()])
            .env("RUST_LOG", "info,ort=warn")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn finprint run");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        Daemon {
            child,
            log,
            http: format!("http://127.0.0.1:{http_port}"),
        }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    fn get(&self, path: &str) -> Option<(u16, String)> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(5)))
            .http_status_as_error(false)
            .build()
            .into();
        let mut r = agent.get(format!("{}{}", self.http, path)).call().ok()?;
        let status = r.status().as_u16();
        let body = r.body_mut().read_to_string().ok()?;
        Some((status, body))
    }

    fn counts(&self) -> Option<serde_json::Value> {
        let (s, b) = self.get("/api/v1/counts")?;
        if s != 200 {
            return None;
        }
        serde_json::from_str(&b).ok()
    }

    fn last_frame(&self, camera: &str) -> Option<u64> {
        let c = self.counts()?;
        c["cameras"]
            .as_array()?
            .iter()
            .find(|x| x["camera"] == camera)?["last_frame"]
            .as_u64()
    }

    fn sigterm(&mut self) -> std::process::ExitStatus {
        let st = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "daemon did not exit within 30 s of SIGTERM; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `f` until it returns true or `limit` passes.
fn wait_until(limit: Duration, what: &str, daemon: &Daemon, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}; daemon log:\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn frames_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/fasttrack-zebrafish14/frames")
}

fn metric(text: &str, name: &str, camera: &str) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(&format!("camera=\"{camera}\"")))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

#[test]
fn daemon_survives_camera_loss_and_closes_files_on_sigterm() {
    let pattern = frames_dir().join("frame_%06d.pgm");
    let mut server = RtspServer::start(
        0,
        "/tank",
        RtspMedia::ImageSequence {
            pattern: pattern.to_str().unwrap().into(),
            start_index: 1,
            framerate: 25,
        },
    )
    .expect("start RTSP server");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let http_port = free_port();
    let cfg = dir.path().join("finprint.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[[cameras]]
name = "tank1"
population = 14
[cameras.source]
kind = "rtsp"
url = "{url}"
latency_ms = 100
[cameras.source.reconnect]
initial_backoff_ms = 200
max_backoff_ms = 1000
stall_timeout_ms = 2000

[output]
dir = "{out}"
flush_interval_s = 0.5

[http]
listen = "127.0.0.1:{http_port}"
stale_after_s = 2.0
"#,
            url = server.url(),
            out = out.display()
        ),
    )
    .unwrap();
    let mut d = Daemon::start(&cfg, http_port);

    // Frames flow: counts and metrics are served.
    wait_until(
        Duration::from_secs(60),
        "first frames over RTSP",
        &d,
        || d.last_frame("tank1").is_some_and(|f| f > 50),
    );
    let counts = d.counts().unwrap();
    let cam = &counts["cameras"][0];
    assert_eq!(cam["camera"], "tank1");
    assert_eq!(cam["expected_population"], 14);
    let visible = cam["visible_fish"].as_u64().unwrap();
    assert!(
        (10..=16).contains(&visible),
        "visible fish {visible} in {counts}"
    );
    let (s, m) = d.get("/metrics").unwrap();
    assert_eq!(s, 200);
    assert!(
        metric(&m, "finprint_frames_total", "tank1").unwrap_or(0.0) > 50.0,
        "{m}"
    );
    // These top-view crops are far too small to tell the fish apart: the metric says so (on
    // the recording itself 0.99 of 1).
    wait_until(Duration::from_secs(30), "the look-alike metric", &d, || {
        d.get("/metrics")
            .and_then(|(_, m)| metric(&m, "finprint_identity_alike_similarity", "tank1"))
            .is_some_and(|s| s > 0.9)
    });
    assert_eq!(d.get("/healthz").unwrap().0, 200);

    // The camera goes away: health degrades, the daemon retries.
    server.stop();
    wait_until(Duration::from_secs(30), "/healthz degraded", &d, || {
        d.get("/healthz")
            .is_some_and(|(s, b)| s == 503 && b.contains("tank1"))
    });
    wait_until(Duration::from_secs(30), "a reconnect attempt", &d, || {
        d.get("/metrics")
            .and_then(|(_, m)| metric(&m, "finprint_reconnects_total", "tank1"))
            .is_some_and(|n| n >= 1.0)
    });
    let before = d.last_frame("tank1").unwrap();

    // ... and comes back: frames flow again, the gap is reported, health recovers.
    server.restart().expect("restart RTSP server");
    wait_until(
        Duration::from_secs(60),
        "frames after the restart",
        &d,
        || d.last_frame("tank1").is_some_and(|f| f > before + 25),
    );
    wait_until(Duration::from_secs(10), "the gap in the log", &d, || {
        d.log().contains("camera was lost and is back")
    });
    wait_until(Duration::from_secs(10), "/healthz ok again", &d, || {
        d.get("/healthz").is_some_and(|(s, _)| s == 200)
    });

    // SIGTERM: clean exit, every file complete.
    let status = d.sigterm();
    assert!(status.success(), "exit status {status}; log:\n{}", d.log());
    assert!(d.log().contains("all files closed"), "{}", d.log());
    let cam_dir = out.join("tank1");
    let mut seen = 0;
    for e in std::fs::read_dir(&cam_dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "{name} ends mid-line"
        );
        if name.ends_with(".csv") {
            let mut r = csv::Reader::from_path(&p).unwrap();
            let width = r.headers().unwrap().len();
            let mut rows = 0;
            for rec in r.records() {
                let rec = rec.unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_eq!(rec.len(), width, "{name}: ragged row {rec:?}");
                rows += 1;
            }
            if name.starts_with("trajectories") {
                assert!(rows > 500, "{name}: only {rows} rows");
                seen += 1;
            }
        } else if name.starts_with("mot") {
            for l in text.lines() {
                assert_eq!(l.split(',').count(), 10, "{name}: bad MOT line {l}");
            }
            seen += 1;
        }
    }
    assert_eq!(
        seen,
        2,
        "expected a trajectories CSV and a MOT file in {}",
        cam_dir.display()
    );
}

#[test]
fn unreachable_camera_is_retried_and_logged() {
    let dir = tempfile::tempdir().unwrap();
    let http_port = free_port();
    let dead_port = free_port();
    let cfg = dir.path().join("finprint.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[[cameras]]
name = "gone"
[cameras.source]
kind = "rtsp"
url = "rtsp://127.0.0.1:{dead_port}/nothing"
[cameras.source.reconnect]
initial_backoff_ms = 100
max_backoff_ms = 400
[output]
dir = "{out}"
[http]
listen = "127.0.0.1:{http_port}"
stale_after_s = 1.0
"#,
            out = dir.path().join("out").display()
        ),
    )
    .unwrap();
    let mut d = Daemon::start(&cfg, http_port);
    wait_until(
        Duration::from_secs(30),
        "three logged reconnect attempts",
        &d,
        || {
            d.log()
                .lines()
                .filter(|l| l.contains("camera=gone") && l.contains("reconnecting in"))
                .count()
                >= 3
        },
    );
    // Still serving, reporting the camera as down.
    wait_until(Duration::from_secs(10), "/healthz degraded", &d, || {
        d.get("/healthz")
            .is_some_and(|(s, b)| s == 503 && b.contains("gone"))
    });
    assert!(
        d.child.try_wait().unwrap().is_none(),
        "daemon died: {}",
        d.log()
    );
    let status = d.sigterm();
    assert!(status.success(), "{}", d.log());
}
