//! Render speed of `finprint synth` relative to real time.
//!
//! `cargo run --release --example bench_synth [-- FRAMES [WIDTH HEIGHT FISH]]`
//! (default 150 frames of 1920×1080 at 30 fps with 10 fish). Prints frames per second and the
//! ratio to real time for the renderer alone and for render + H.264 encode + truth files.

use std::time::Instant;

use finprint::synth::{SynthConfig, TankSim, render};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize, d: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(d);
    let frames = num(0, 150);
    let cfg = SynthConfig {
        seed: 1,
        fish: num(3, 10) as usize,
        frames,
        fps: 30,
        width: num(1, 1920) as u32,
        height: num(2, 1080) as u32,
        crops_per_flank: 0,
        ..SynthConfig::default()
    };
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    println!(
        "bench_synth: {}x{} @ {} fps, {} fish, {} frames, {} cores",
        cfg.width, cfg.height, cfg.fps, cfg.fish, frames, cores
    );
    // Renderer alone (frames in memory, nothing written).
    let mut sim = TankSim::new(&cfg);
    let t0 = Instant::now();
    let mut checksum = 0u64;
    for _ in 0..frames {
        let f = sim.next_frame();
        checksum = checksum.wrapping_add(u64::from(f.canvas.rgb[f.canvas.rgb.len() / 2]));
    }
    let r = frames as f64 / t0.elapsed().as_secs_f64();
    println!(
        "render only:            {r:7.1} fps = {:5.2}x real time (checksum {checksum})",
        r / 30.0
    );
    // Full render: video (x264 ultrafast) + truth + interactions.
    let dir = std::env::temp_dir().join(format!("bench_synth_{}", std::process::id()));
    let t0 = Instant::now();
    let s = render(&cfg, &dir)?;
    let full = frames as f64 / t0.elapsed().as_secs_f64();
    let size = s
        .video
        .as_ref()
        .and_then(|v| std::fs::metadata(v).ok())
        .map(|m| m.len())
        .unwrap_or(0);
    println!(
        "render + encode + truth: {full:7.1} fps = {:5.2}x real time (video {:.1} MB, goal >= 2x)",
        full / 30.0,
        size as f64 / 1e6
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
