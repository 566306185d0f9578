//! Benchmark: `finprint replay` throughput on a 1080p H.264 recording against decode-only
//! throughput of the same file (`filesrc ! decodebin ! fakesink`), measured in the same run.
//!
//! ```sh
//! cargo run --release --example bench_replay -- [VIDEO.mkv]
//! ```
//! Without an argument it renders (once, cached in `target/bench/`) a 1920×1080, 30 fps,
//! 20 s side-view tank with 10 fish using `finprint synth`. Prints frames/s of both and the ratio
//! (goal ≥ 0.5 on the 2-core reference machine; see BENCHMARKS.md), plus the mean time per
//! frame of each stage of the camera worker in the last replay run (from `/metrics`' histograms).
//!
//! `--no-identity` measures the replay with `[identity] enabled = false` as well.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use gstreamer as gst;
use gstreamer::prelude::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let no_identity = args.iter().any(|a| a == "--no-identity");
    let video = match args.iter().find(|a| !a.starts_with("--")) {
        Some(p) => PathBuf::from(p),
        None => render_default()?,
    };
    let video_str = video.to_str().ok_or("non-UTF-8 path")?.to_string();
    gst::init()?;
    let runs = 3;
    let mut decode = Vec::new();
    let mut replay = Vec::new();
    let mut noid = Vec::new();
    let mut frames = 0;
    let mut stages = String::new();
    for _ in 0..runs {
        let (n, s) = decode_only(&video_str)?;
        decode.push(n as f64 / s);
        frames = n;
        let (n, s, st) = full_replay(&video_str, true)?;
        replay.push(n as f64 / s);
        stages = st;
        if no_identity {
            let (n, s, _) = full_replay(&video_str, false)?;
            noid.push(n as f64 / s);
        }
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let (d, r) = (med(&mut decode), med(&mut replay));
    println!("video: {} ({frames} frames)", video.display());
    println!(
        "cores: {}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );
    println!("decode-only (decodebin ! fakesink): {d:.1} frames/s (median of {runs})");
    println!("finprint replay (decode+detect+track+write): {r:.1} frames/s (median of {runs})");
    println!("ratio replay/decode: {:.2}", r / d);
    if !noid.is_empty() {
        let n = med(&mut noid);
        println!(
            "finprint replay, [identity] enabled = false: {n:.1} frames/s (median of {runs}), ratio {:.2}",
            n / d
        );
    }
    println!("worker stages, mean ms per frame (last run with identity): {stages}");
    Ok(())
}

/// Decode-only baseline: every frame decoded, nothing else.
fn decode_only(path: &str) -> Result<(u64, f64), Box<dyn std::error::Error>> {
    let pipeline = gst::parse::launch(&format!(
        "filesrc location=\"{path}\" ! decodebin ! identity name=count silent=true ! fakesink sync=false"
    ))?
    .downcast::<gst::Pipeline>()
    .map_err(|_| "not a pipeline")?;
    let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let identity = pipeline.by_name("count").ok_or("no identity")?;
    let pad = identity.static_pad("src").ok_or("no pad")?;
    let c = counter.clone();
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        gst::PadProbeReturn::Ok
    });
    let t = Instant::now();
    pipeline.set_state(gst::State::Playing)?;
    let bus = pipeline.bus().ok_or("no bus")?;
    for msg in bus.iter_timed(gst::ClockTime::NONE) {
        match msg.view() {
            gst::MessageView::Eos(..) => break,
            gst::MessageView::Error(e) => return Err(format!("decode: {}", e.error()).into()),
            _ => {}
        }
    }
    let secs = t.elapsed().as_secs_f64();
    pipeline.set_state(gst::State::Null)?;
    Ok((counter.load(std::sync::atomic::Ordering::Relaxed), secs))
}

/// The full replay path, in process, with outputs to a temporary folder.
fn full_replay(
    path: &str,
    identity: bool,
) -> Result<(u64, f64, String), Box<dyn std::error::Error>> {
    let out = std::env::temp_dir().join(format!("finprint-bench-{}", std::process::id()));
    let args = finprint::pipeline::ReplayArgs {
        config: None,
        input: path.to_string(),
        out: out.clone(),
        camera: None,
        population: Some(10),
        view: Some(finprint::config::CameraView::Side),
        fps: None,
        quiet: true,
        crops_out: None,
    };
    let mut cfg = finprint::pipeline::replay_config(&args)?;
    cfg.identity.enabled = identity;
    let live = finprint::output::http::LiveState::new(&[]);
    let metrics = finprint::output::metrics::Metrics::new();
    let t = Instant::now();
    let p = finprint::pipeline::Pipeline::start(
        &cfg,
        live,
        metrics.clone(),
        Arc::new(AtomicBool::new(false)),
        None,
    )?;
    let s = p.wait()?;
    let secs = t.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&out);
    Ok((
        s.iter().map(|c| c.frames).sum(),
        secs,
        stage_means(&metrics.encode()),
    ))
}

/// `stage=mean_ms` for every `finprint_stage_latency_seconds` series of the exposition.
fn stage_means(text: &str) -> String {
    let value = |l: &str| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok());
    let mut out = Vec::new();
    for l in text.lines() {
        let Some(rest) = l.strip_prefix("finprint_stage_latency_seconds_sum{") else {
            continue;
        };
        let Some(stage) = rest
            .split("stage=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
        else {
            continue;
        };
        let labels =
            &l["finprint_stage_latency_seconds_sum".len()..l.rfind(' ').unwrap_or(l.len())];
        let count = text
            .lines()
            .find(|c| c.starts_with(&format!("finprint_stage_latency_seconds_count{labels}")))
            .and_then(value);
        if let (Some(sum), Some(n)) = (value(l), count)
            && n > 0.0
        {
            out.push(format!("{stage}={:.2}", 1000.0 * sum / n));
        }
    }
    out.join(" ")
}

fn render_default() -> Result<PathBuf, Box<dyn std::error::Error>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("target/bench/tank1080");
    let video = dir.join("video.mkv");
    if video.exists() {
        return Ok(video);
    }
    let exe = std::env::current_exe()?;
    let bin = exe
        .parent()
        .and_then(|p| p.parent())
        .map(|p| p.join("finprint"))
        .ok_or("no target dir")?;
    eprintln!("rendering {} with {}", video.display(), bin.display());
    let st = std::process::Command::new(&bin)
        .args(["synth", "--out"])
        .arg(&dir)
        .args([
            "--seed",
            "11",
            "--fish",
            "10",
            "--seconds",
            "20",
            "--fps",
            "30",
            "--width",
            "1920",
            "--height",
            "1080",
        ])
        .status()?;
    if !st.success() {
        return Err(format!(
            "{} synth failed (build it first: cargo build --release)",
            bin.display()
        )
        .into());
    }
    Ok(video)
}
