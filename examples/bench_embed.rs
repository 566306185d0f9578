//! Embedding throughput: finprint's full path (preprocessing of detector crops on the CPU into the
//! batch buffer + ONNX Runtime + copy-out/normalisation) against raw `Session::run` on a prebuilt
//! tensor, same model, same session, same run. Prints crops/s of both and the overhead.
//!
//! ```text
//! cargo run --release --example bench_embed -- [--model M.onnx] [--crops 1024] [--batch 32]
//!     [--threads 0] [--provider auto|cpu|cuda] [--crop WxH] [--rounds 3]
//! ```
//! Default model: the shipped `models/finprint-default.onnx` (else the test fixture). Crops default
//! to the card's input size (the detector's size); `--crop` adds resizing to the measured path.

use std::time::Instant;

use finprint::embed::{EmbedConfig, Embedder, Provider};
use finprint::messages::Crop;

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let mut cfg = EmbedConfig {
        batch_size: arg(&args, "--batch", 32usize),
        threads: arg(&args, "--threads", 0usize),
        provider: match arg(&args, "--provider", String::from("auto")).as_str() {
            "cpu" => Provider::Cpu,
            "cuda" => Provider::Cuda,
            _ => Provider::Auto,
        },
        ..Default::default()
    };
    let model: String = arg(&args, "--model", String::new());
    if !model.is_empty() {
        cfg.model = Some(model.into());
    } else if finprint::embed::resolve_model(&cfg).is_err() {
        cfg.model = Some(
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/identity/tiny.onnx"
            )
            .into(),
        );
    }
    let n: usize = arg(&args, "--crops", 1024usize);
    let rounds: usize = arg(&args, "--rounds", 3usize).max(1);
    let mut emb = Embedder::open(&cfg)?;
    let card = emb.card().clone();
    let (cw, ch) = match arg(&args, "--crop", String::new()).split_once('x') {
        Some((w, h)) => (w.parse()?, h.parse()?),
        None => (card.input.width as u32, card.input.height as u32),
    };
    let batch = emb.batch_size();
    println!(
        "model {} ({}), input {}x{}, dim {}, provider {}, assignment {:?}, batch {batch}, crops {cw}x{ch}, {} crops/round, {rounds} rounds",
        card.name,
        card.backbone,
        card.input.width,
        card.input.height,
        card.output.dim,
        emb.provider(),
        emb.assignment(),
        n
    );
    // Deterministic pseudo-random crops (stripes + noise).
    let mut seed = 12345u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 24) as u8
    };
    let crops: Vec<Crop> = (0..n)
        .map(|k| Crop {
            width: cw,
            height: ch,
            rgb: (0..(cw * ch * 3) as usize)
                .map(|i| {
                    if ((i / 3 % cw as usize + k) / 6).is_multiple_of(2) {
                        next() / 2
                    } else {
                        128 + next() / 2
                    }
                })
                .collect(),
        })
        .collect();
    // Prebuilt tensor for the raw runs: the preprocessed first batch.
    let refs: Vec<&Crop> = crops.iter().take(batch).collect();
    let mut tensor = Vec::new();
    emb.preprocess_batch(&refs, &mut tensor)?;
    let shape = emb.input_shape(refs.len());
    let in_name = card.input.name.clone();
    let out_name = card.output.name.clone();
    let raw_run = |emb: &mut Embedder| -> Result<f32, Box<dyn std::error::Error>> {
        let t = ort::value::TensorRef::from_array_view((shape, &tensor[..]))?;
        let out = emb.session_mut().run(ort::inputs![in_name.as_str() => t])?;
        let (_, v) = out[out_name.as_str()].try_extract_tensor::<f32>()?;
        Ok(v[0])
    };
    // Warm-up.
    raw_run(&mut emb)?;
    emb.embed(&crops[..batch.min(n)])?;
    let runs = n.div_ceil(batch);
    let mut best_raw = 0f64;
    let mut best_full = 0f64;
    let mut sink = 0f32;
    for r in 0..rounds {
        let t0 = Instant::now();
        for _ in 0..runs {
            sink += raw_run(&mut emb)?;
        }
        let raw = (runs * refs.len()) as f64 / t0.elapsed().as_secs_f64();
        let t0 = Instant::now();
        let out = emb.embed(&crops)?;
        let full = out.len() as f64 / t0.elapsed().as_secs_f64();
        sink += out[0][0];
        println!(
            "round {}: raw ORT {raw:.1} crops/s, finprint embed {full:.1} crops/s",
            r + 1
        );
        best_raw = best_raw.max(raw);
        best_full = best_full.max(full);
    }
    // Preprocessing alone, for the record.
    let t0 = Instant::now();
    let all: Vec<&Crop> = crops.iter().collect();
    let mut buf = Vec::new();
    for chunk in all.chunks(batch) {
        emb.preprocess_batch(chunk, &mut buf)?;
    }
    let pre = n as f64 / t0.elapsed().as_secs_f64();
    let overhead = best_raw / best_full - 1.0;
    println!(
        "RESULT raw_ort_crops_per_s={best_raw:.1} finprint_crops_per_s={best_full:.1} preprocess_only_crops_per_s={pre:.0} overhead={:.1}% (goal <= 20%) [sink {sink:.3}]",
        overhead * 100.0
    );
    Ok(())
}
