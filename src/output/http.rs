//! HTTP side: live counts, Prometheus metrics, health. Must never block the frame path: the
//! pipeline updates [`LiveState`] (a short mutex hold per frame) and [`Metrics`] (atomics);
//! the server only reads them.
//!
//! Endpoints (bound to `127.0.0.1:9464` by default):
//!
//! - `GET /api/v1/counts` → `200`, JSON:
//!   ```json
//!   {"cameras": [{
//!      "camera": "tank1", "tank": "tank1",
//!      "visible_fish": 12,            // fish detected in the last frame (touching estimates included)
//!      "tracks": 13,                  // confirmed tracks, coasting included
//!      "expected_population": 14,     // from the config; null when unknown
//!      "individuals_present": ["f01", "f07"], // identified individuals in the last frame, sorted
//!      "last_frame": 1234,            // last frame index; null before the first frame
//!      "last_frame_time": "2026-11-28T08:00:00.040Z", // its capture time (UTC); null before
//!      "seconds_since_last_frame": 0.04,  // by the daemon's clock; null before the first frame
//!      "connected": true              // the source is connected (as reported by ingest)
//!   }]}
//!   ```
//! - `GET /metrics` → Prometheus/OpenMetrics text (see [`crate::output::metrics`]).
//! - `GET /healthz` → `200 ok`, or `503 degraded: camera X stale for N s` when a camera has
//!   not delivered a frame for more than `stale_after_s` (or is disconnected); cameras that
//!   never delivered a frame count from server start.
//!
//! Extra routes (e.g. the identity API) are merged in by [`serve`].

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use super::{Metrics, OutputError};
use crate::config::ConfigError;
use crate::messages::{TrackStatus, TrackedFrame};

/// `[http]`: the HTTP server.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Serve HTTP at all. Default `true`.
    pub enabled: bool,
    /// Listen address `IP:PORT`. Default `127.0.0.1:9464` (local only; use `0.0.0.0:9464`
    /// to expose it, behind a firewall).
    pub listen: String,
    /// A camera without a frame for longer than this (s) makes `/healthz` degraded. Default 10.
    pub stale_after_s: f64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            enabled: true,
            listen: "127.0.0.1:9464".into(),
            stale_after_s: 10.0,
        }
    }
}

impl HttpConfig {
    /// Checks values without touching sockets.
    pub fn validate(&self, key: &str) -> Result<(), ConfigError> {
        if self.listen.parse::<SocketAddr>().is_err() {
            return Err(ConfigError::invalid(
                format!("{key}.listen"),
                format!(
                    "`{}` is not an IP:PORT address, e.g. 127.0.0.1:9464",
                    self.listen
                ),
            ));
        }
        if !(self.stale_after_s.is_finite() && self.stale_after_s > 0.0) {
            return Err(ConfigError::invalid(
                format!("{key}.stale_after_s"),
                format!(
                    "{} is not allowed: must be a positive number of seconds",
                    self.stale_after_s
                ),
            ));
        }
        Ok(())
    }
}

/// What [`LiveState`] needs to know about a camera.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveCamera {
    /// Camera name.
    pub name: String,
    /// Tank name.
    pub tank: String,
    /// Expected number of fish, when known.
    pub population: Option<u32>,
}

/// One camera's live counts, as served by `/api/v1/counts`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CameraCounts {
    /// Camera name.
    pub camera: String,
    /// Tank name.
    pub tank: String,
    /// Fish detected in the last frame (touching-fish estimates included).
    pub visible_fish: u32,
    /// Confirmed tracks (coasting included) after the last frame.
    pub tracks: u32,
    /// Expected population from the config.
    pub expected_population: Option<u32>,
    /// Identified individuals present in the last frame, sorted.
    pub individuals_present: Vec<String>,
    /// Last frame index.
    pub last_frame: Option<u64>,
    /// Capture time of the last frame, RFC 3339 UTC.
    pub last_frame_time: Option<String>,
    /// Seconds since the last frame arrived (daemon clock).
    pub seconds_since_last_frame: Option<f64>,
    /// Whether the source is connected.
    pub connected: bool,
}

/// The `/api/v1/counts` document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CountsResponse {
    /// One entry per camera, sorted by name.
    pub cameras: Vec<CameraCounts>,
}

#[derive(Debug, Clone)]
struct CamState {
    tank: String,
    population: Option<u32>,
    visible: u32,
    tracks: u32,
    individuals: Vec<String>,
    last_frame: Option<u64>,
    last_captured: Option<SystemTime>,
    last_seen: Option<Instant>,
    connected: bool,
}

/// Live per-camera state, updated by the pipeline and read by the HTTP server.
#[derive(Debug)]
pub struct LiveState {
    started: Instant,
    cams: Mutex<BTreeMap<String, CamState>>,
}

impl LiveState {
    /// State for the configured cameras (all start "connected" with no frame yet).
    pub fn new(cameras: &[LiveCamera]) -> Arc<LiveState> {
        let cams = cameras
            .iter()
            .map(|c| {
                (
                    c.name.clone(),
                    CamState {
                        tank: c.tank.clone(),
                        population: c.population,
                        visible: 0,
                        tracks: 0,
                        individuals: Vec::new(),
                        last_frame: None,
                        last_captured: None,
                        last_seen: None,
                        connected: true,
                    },
                )
            })
            .collect();
        Arc::new(LiveState {
            started: Instant::now(),
            cams: Mutex::new(cams),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, CamState>> {
        // A panic elsewhere while holding the lock leaves plain data: keep serving it.
        self.cams.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records one tracked frame (cheap: a short lock, no I/O).
    pub fn update(&self, f: &TrackedFrame) {
        let tracks = f
            .tracks
            .iter()
            .filter(|t| t.status != TrackStatus::Tentative)
            .count();
        let mut ids: Vec<String> = f
            .tracks
            .iter()
            .filter(|t| t.status != TrackStatus::Tentative)
            .filter_map(|t| t.individual.clone())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        let mut cams = self.lock();
        let c = cams
            .entry(f.camera.to_string())
            .or_insert_with(|| CamState {
                tank: f.camera.to_string(),
                population: None,
                visible: 0,
                tracks: 0,
                individuals: Vec::new(),
                last_frame: None,
                last_captured: None,
                last_seen: None,
                connected: true,
            });
        c.visible = f.visible_fish;
        c.tracks = u32::try_from(tracks).unwrap_or(u32::MAX);
        c.individuals = ids;
        c.last_frame = Some(f.index);
        c.last_captured = Some(f.captured);
        c.last_seen = Some(Instant::now());
        c.connected = true;
    }

    /// Records whether a camera's source is connected (ingest calls this on loss/reconnect).
    pub fn set_connected(&self, camera: &str, connected: bool) {
        if let Some(c) = self.lock().get_mut(camera) {
            c.connected = connected;
        }
    }

    /// The current counts.
    pub fn snapshot(&self) -> CountsResponse {
        let cams = self.lock();
        let cameras = cams
            .iter()
            .map(|(name, c)| CameraCounts {
                camera: name.clone(),
                tank: c.tank.clone(),
                visible_fish: c.visible,
                tracks: c.tracks,
                expected_population: c.population,
                individuals_present: c.individuals.clone(),
                last_frame: c.last_frame,
                last_frame_time: c
                    .last_captured
                    .map(|t| DateTime::<Utc>::from(t).to_rfc3339_opts(SecondsFormat::Millis, true)),
                seconds_since_last_frame: c.last_seen.map(|s| s.elapsed().as_secs_f64()),
                connected: c.connected,
            })
            .collect();
        CountsResponse { cameras }
    }

    /// `Ok(())` when every camera delivered a frame within `stale_after`, else a message
    /// naming the stale or disconnected cameras.
    pub fn health(&self, stale_after: Duration) -> Result<(), String> {
        let cams = self.lock();
        let mut problems = Vec::new();
        for (name, c) in cams.iter() {
            let age = c.last_seen.unwrap_or(self.started).elapsed();
            if !c.connected {
                problems.push(format!(
                    "camera {name} disconnected for {} s",
                    age.as_secs()
                ));
            } else if age > stale_after {
                problems.push(format!("camera {name} stale for {} s", age.as_secs()));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}

/// Binds the listen address (synchronously, so a bad or busy address is a clear startup error).
pub fn bind(cfg: &HttpConfig) -> Result<TcpListener, OutputError> {
    let addr: SocketAddr = cfg.listen.parse().map_err(|e| OutputError::Bind {
        addr: cfg.listen.clone(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
    })?;
    let l = TcpListener::bind(addr).map_err(|source| OutputError::Bind {
        addr: cfg.listen.clone(),
        source,
    })?;
    l.set_nonblocking(true)
        .map_err(|source| OutputError::Bind {
            addr: cfg.listen.clone(),
            source,
        })?;
    Ok(l)
}

#[derive(Clone)]
struct AppState {
    live: Arc<LiveState>,
    metrics: Metrics,
    stale_after: Duration,
}

/// The router with `/api/v1/counts`, `/metrics`, `/healthz`, merged with `extra`.
/// Fails (instead of panicking) when `extra` defines one of these paths.
pub fn router(
    cfg: &HttpConfig,
    live: Arc<LiveState>,
    metrics: Metrics,
    extra: Router,
) -> Result<Router, OutputError> {
    let state = AppState {
        live,
        metrics,
        stale_after: Duration::from_secs_f64(cfg.stale_after_s.clamp(0.001, 1e9)),
    };
    let ours = Router::new()
        .route("/api/v1/counts", get(counts))
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(healthz))
        .with_state(state);
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| ours.merge(extra))).map_err(|_| {
        OutputError::Serve(std::io::Error::other(
            "extra HTTP routes overlap /api/v1/counts, /metrics or /healthz",
        ))
    })
}

async fn counts(State(s): State<AppState>) -> Response {
    axum::Json(s.live.snapshot()).into_response()
}

async fn metrics_text(State(s): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.encode(),
    )
        .into_response()
}

async fn healthz(State(s): State<AppState>) -> Response {
    match s.live.health(s.stale_after) {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        Err(m) => (StatusCode::SERVICE_UNAVAILABLE, format!("degraded: {m}\n")).into_response(),
    }
}

/// Binds `cfg.listen` and serves until `shutdown` completes (then finishes in-flight requests).
/// Must run inside a tokio runtime.
pub async fn serve(
    cfg: &HttpConfig,
    live: Arc<LiveState>,
    metrics: Metrics,
    extra: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), OutputError> {
    let listener = bind(cfg)?;
    serve_on(listener, cfg, live, metrics, extra, shutdown).await
}

/// Like [`serve`] on a listener from [`bind`] (bind early, serve later).
pub async fn serve_on(
    listener: TcpListener,
    cfg: &HttpConfig,
    live: Arc<LiveState>,
    metrics: Metrics,
    extra: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), OutputError> {
    let app = router(cfg, live, metrics, extra)?;
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| cfg.listen.clone());
    listener
        .set_nonblocking(true)
        .map_err(|source| OutputError::Bind {
            addr: addr.clone(),
            source,
        })?;
    let listener =
        tokio::net::TcpListener::from_std(listener).map_err(|source| OutputError::Bind {
            addr: addr.clone(),
            source,
        })?;
    tracing::info!(%addr, "HTTP: serving /api/v1/counts, /metrics, /healthz");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(OutputError::Serve)
}
