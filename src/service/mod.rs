//! Service: the daemon's lifecycle (`finprint run`): validate the config, bind HTTP, start
//! every camera chain, tell systemd READY and feed its watchdog while the chains are alive,
//! and on SIGTERM/SIGINT stop the sources, drain, close every file and exit cleanly.
//! Must never implement a stage's logic itself.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sd_notify::NotifyState;

use crate::config::{Config, ConfigError};
use crate::output::OutputError;
use crate::output::http;
use crate::output::metrics::Metrics;
use crate::pipeline::{Pipeline, PipelineError};

/// `finprint run` arguments.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Config file (TOML); see `configs/` for documented examples.
    #[arg(long)]
    pub config: PathBuf,
    /// Check the config and exit (exit code 0 when valid).
    #[arg(long)]
    pub check: bool,
}

/// Errors of the service.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The config is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The pipeline failed.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// The HTTP side failed.
    #[error(transparent)]
    Http(#[from] OutputError),
    /// The async runtime could not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

/// Entry point of `finprint run`.
pub fn run(args: RunArgs) -> Result<(), ServiceError> {
    let cfg = Config::load(&args.config)?;
    if cfg.cameras.is_empty() {
        return Err(ConfigError::invalid(
            "cameras",
            format!(
                "{} defines no camera: add at least one [[cameras]] table",
                args.config.display()
            ),
        )
        .into());
    }
    if args.check {
        println!(
            "{}: ok ({} camera(s))",
            args.config.display(),
            cfg.cameras.len()
        );
        return Ok(());
    }
    let live = crate::pipeline::live_state(&cfg);
    let metrics = Metrics::new();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .thread_name("http")
        .build()
        .map_err(ServiceError::Runtime)?;

    // HTTP: bind before anything starts, so a bad or busy address fails the start.
    let listener = if cfg.http.enabled {
        Some(http::bind(&cfg.http)?)
    } else {
        None
    };
    let (http_stop_tx, http_stop_rx) = tokio::sync::oneshot::channel::<()>();

    let stop = Arc::new(AtomicBool::new(false));
    let signalled = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        let signalled = signalled.clone();
        rt.spawn(async move {
            wait_for_signal().await;
            tracing::info!("stop requested: draining cameras and closing files");
            let _ = sd_notify::notify(&[NotifyState::Stopping]);
            signalled.store(true, Ordering::SeqCst);
            stop.store(true, Ordering::SeqCst);
        });
    }

    let pipeline = Pipeline::start(&cfg, live.clone(), metrics.clone(), stop.clone(), None)?;
    let http_task = match listener {
        Some(listener) => {
            let http_cfg = cfg.http.clone();
            let extra =
                crate::identify::router(pipeline.identity_apis(), cfg.identity.api_token.clone());
            let (live, metrics) = (live.clone(), metrics.clone());
            Some(rt.spawn(async move {
                let shutdown = async move {
                    let _ = http_stop_rx.await;
                };
                let r = http::serve_on(listener, &http_cfg, live, metrics, extra, shutdown).await;
                if let Err(e) = &r {
                    tracing::error!("HTTP server stopped: {e}");
                }
                r
            }))
        }
        None => None,
    };
    let _ = sd_notify::notify(&[
        NotifyState::Ready,
        NotifyState::Status(&format!("watching {} camera(s)", cfg.cameras.len())),
    ]);
    tracing::info!(cameras = cfg.cameras.len(), "finprint running");

    let watchdog = sd_notify::watchdog_enabled();
    let heartbeat = pipeline.heartbeat();
    let mut last_status = std::time::Instant::now();
    while !pipeline.is_finished() {
        std::thread::sleep(Duration::from_millis(250));
        if let Some(watchdog) = watchdog {
            // Feed the watchdog only while the workers are alive (they beat at least every 0.5 s).
            let healthy = heartbeat.age().is_some_and(|a| a < watchdog / 2);
            if healthy {
                let _ = sd_notify::notify(&[NotifyState::Watchdog]);
            }
        }
        if last_status.elapsed() >= Duration::from_secs(10) {
            last_status = std::time::Instant::now();
            let snap = live.snapshot();
            let status: Vec<String> = snap
                .cameras
                .iter()
                .map(|c| format!("{}: {} fish", c.camera, c.visible_fish))
                .collect();
            let _ = sd_notify::notify(&[NotifyState::Status(&status.join(", "))]);
        }
    }
    if !signalled.load(Ordering::SeqCst) {
        tracing::info!("every source has ended");
    }
    let result = pipeline.wait();
    let _ = http_stop_tx.send(());
    if let Some(task) = http_task {
        let _ = rt.block_on(task);
    }
    rt.shutdown_timeout(Duration::from_secs(2));
    result?;
    tracing::info!("all files closed; bye");
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {},
                    _ = int.recv() => {},
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
