//! Render speed of `finprint synth` relative to real time.
//!
//! `cargo run --release --example bench_synth [-- FRAMES [WIDTH HEIGHT FISH]]`
//! (default 150 frames of 1920×1080 at 30 fps with 10 fish). Prints frames per second and the
//! ratio to real time for the renderer alone, the RGB → I420 conversion alone and render +
//! I420 + H.264 encode + truth files (what `finprint synth` does), the CPU time per frame, the
//! machine and its load average before and after (the ratios are wall-clock figures: on a
//! shared machine read them together with the load).

use std::time::Instant;

use finprint::synth::video::{I420Planes, YuvMatrix, rgb_to_i420};
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
        "bench_synth: {}x{} @ {} fps, {} fish, {} frames, {} cores ({})",
        cfg.width,
        cfg.height,
        cfg.fps,
        cfg.fish,
        frames,
        cores,
        cpu_model()
    );
    println!("  load average before: {}", load());
    // Background pass alone (lit plate + noise), the per-pixel part of every frame.
    let mut sim = TankSim::new(&cfg);
    let mut buf = vec![0u8; cfg.width as usize * cfg.height as usize * 3];
    let (t0, c0) = (Instant::now(), cpu_s());
    for i in 0..frames as usize {
        sim.plate()
            .light_into(&mut buf, [1.0, 1.01, 0.99], (i * 7, i * 13), cores);
    }
    let r = frames as f64 / t0.elapsed().as_secs_f64();
    println!(
        "background pass:        {r:7.1} fps ({:.1} ms CPU per frame)",
        1e3 * (cpu_s() - c0) / frames as f64
    );
    // Renderer alone (frames in memory, nothing written).
    let (t0, c0) = (Instant::now(), cpu_s());
    let mut checksum = 0u64;
    for _ in 0..frames {
        let f = sim.next_frame();
        checksum = checksum.wrapping_add(u64::from(f.canvas.rgb[f.canvas.rgb.len() / 2]));
    }
    let r = frames as f64 / t0.elapsed().as_secs_f64();
    println!(
        "render only:            {r:7.1} fps = {:5.2}x real time ({:.1} ms CPU per frame; checksum {checksum})",
        r / 30.0,
        1e3 * (cpu_s() - c0) / frames as f64
    );
    // RGB → I420 conversion alone (the video writer's part before x264), all cores.
    let (w, h) = (cfg.width as usize, cfg.height as usize);
    let rgb = sim.next_frame().canvas.rgb.clone();
    let mut yuv = vec![0u8; w * h * 3 / 2];
    let m = YuvMatrix::new(0.2126, 0.0722);
    let (t0, c0) = (Instant::now(), cpu_s());
    for _ in 0..frames {
        let (y, c) = yuv.split_at_mut(w * h);
        let (u, v) = c.split_at_mut(w * h / 4);
        let planes = I420Planes {
            y,
            y_stride: w,
            u,
            v,
            c_stride: w / 2,
        };
        rgb_to_i420(&rgb, w, h, &m, planes, cores);
    }
    let r = frames as f64 / t0.elapsed().as_secs_f64();
    println!(
        "RGB -> I420 only:       {r:7.1} fps ({:.1} ms CPU per frame)",
        1e3 * (cpu_s() - c0) / frames as f64
    );
    // Full render: video (x264 ultrafast) + truth + interactions.
    let dir = std::env::temp_dir().join(format!("bench_synth_{}", std::process::id()));
    let (t0, c0) = (Instant::now(), cpu_s());
    let s = render(&cfg, &dir)?;
    let cpu = (cpu_s() - c0) / frames as f64;
    let full = frames as f64 / t0.elapsed().as_secs_f64();
    let size = s
        .video
        .as_ref()
        .and_then(|v| std::fs::metadata(v).ok())
        .map(|m| m.len())
        .unwrap_or(0);
    println!(
        "render + encode + truth: {full:7.1} fps = {:5.2}x real time (video {:.1} MB; goal >= 2x)",
        full / 30.0,
        size as f64 / 1e6
    );
    println!(
        "  CPU {:.1} ms per frame (all threads): at most {:.2}x real time on {cores} idle cores",
        1e3 * cpu,
        cores as f64 / cpu / 30.0
    );
    println!("  load average after: {}", load());
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// The 1, 5 and 15 minute load averages from /proc.
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// The CPU model name from /proc/cpuinfo.
fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

/// CPU seconds used by this process so far (user + system, all threads), from /proc.
fn cpu_s() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which is in parentheses): utime is field 14, stime 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}
