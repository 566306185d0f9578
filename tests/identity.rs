//! Integration tests of appearance identity: the ONNX encoder (`embed`) on the tiny fixture
//! model of `tests/fixtures/identity/` (regenerate with
//! `.venv/bin/python tests/fixtures/identity/make_fixture.py`), and the identity stage.
//!
//! Needs the ONNX Runtime library (the repo's `.venv` wheel or ORT_DYLIB_PATH); the encoder tests
//! print a note and return early when it is absent.

use std::path::{Path, PathBuf};

use finprint::embed::{EmbedConfig, EmbedError, EmbedService, Embedder, Provider, runtime};
use finprint::messages::Crop;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/identity")
        .join(name)
}

fn library() -> Option<PathBuf> {
    match runtime::resolve_library(None) {
        Ok(p) if p.is_absolute() => Some(p),
        _ => {
            eprintln!("NOTE: no ONNX Runtime library found; encoder test skipped");
            None
        }
    }
}

fn tiny_cfg(lib: &Path) -> EmbedConfig {
    EmbedConfig {
        model: Some(fixture("tiny.onnx")),
        library: Some(lib.to_path_buf()),
        provider: Provider::Cpu,
        threads: 1,
        batch_size: 2,
        ..Default::default()
    }
}

struct Case {
    crop: Crop,
    stride: usize,
    tensor_sample: Vec<f32>,
    embedding: Vec<f32>,
}

fn selftest_cases() -> Vec<Case> {
    let text = std::fs::read_to_string(fixture("tiny.selftest.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let hex = c["rgb_hex"].as_str().unwrap();
            let rgb: Vec<u8> = (0..hex.len() / 2)
                .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
                .collect();
            let f = |k: &str| {
                c[k].as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_f64().unwrap() as f32)
                    .collect::<Vec<_>>()
            };
            Case {
                crop: Crop {
                    width: c["width"].as_u64().unwrap() as u32,
                    height: c["height"].as_u64().unwrap() as u32,
                    rgb,
                },
                stride: c["tensor_stride"].as_u64().unwrap() as usize,
                tensor_sample: f("tensor_sample"),
                embedding: f("embedding"),
            }
        })
        .collect()
}

#[test]
fn preprocessing_matches_numpy_reference() {
    let Some(lib) = library() else { return };
    let emb = Embedder::open(&tiny_cfg(&lib)).unwrap();
    let mut buf = Vec::new();
    let mut worst = 0f32;
    for case in selftest_cases() {
        emb.preprocess_batch(&[&case.crop], &mut buf).unwrap();
        for (k, want) in case.tensor_sample.iter().enumerate() {
            let got = buf[k * case.stride];
            worst = worst.max((got - want).abs());
        }
    }
    println!("preprocessing: max |rust - numpy| = {worst:e}");
    assert!(worst < 1e-4, "preprocessing differs from numpy by {worst}");
}

#[test]
fn embedding_matches_onnxruntime_python() {
    let Some(lib) = library() else { return };
    let mut emb = Embedder::open(&tiny_cfg(&lib)).unwrap();
    assert_eq!(emb.provider(), "CPUExecutionProvider");
    println!("EP assignment: {:?}", emb.assignment());
    assert!(
        emb.assignment()
            .iter()
            .any(|(p, n)| p == "CPUExecutionProvider" && *n > 0)
    );
    let cases = selftest_cases();
    let crops: Vec<Crop> = cases.iter().map(|c| c.crop.clone()).collect();
    // batch_size 2 with 3 crops: exercises splitting into runs.
    let got = emb.embed(&crops).unwrap();
    let mut worst = 0f32;
    for (g, c) in got.iter().zip(&cases) {
        assert_eq!(g.len(), c.embedding.len());
        for (a, b) in g.iter().zip(&c.embedding) {
            worst = worst.max((a - b).abs());
        }
    }
    println!("embedding: max |rust - onnxruntime-python| = {worst:e}");
    assert!(worst <= 1e-4, "embeddings differ by {worst}");
}

#[test]
fn service_batches_requests_from_several_clients() {
    let Some(lib) = library() else { return };
    let cfg = EmbedConfig {
        workers: 2,
        ..tiny_cfg(&lib)
    };
    let svc = EmbedService::build(&cfg).unwrap();
    assert_eq!(svc.card().output.dim, 32);
    let cases = selftest_cases();
    let mut handles = Vec::new();
    for k in 0..4 {
        let client = svc.client();
        let crops: Vec<Crop> = cases.iter().map(|c| c.crop.clone()).collect();
        let want: Vec<Vec<f32>> = cases.iter().map(|c| c.embedding.clone()).collect();
        handles.push(std::thread::spawn(move || {
            for _ in 0..5 {
                let got = client.embed(crops.clone()).unwrap();
                assert_eq!(got.len(), want.len());
                for (g, w) in got.iter().zip(&want) {
                    let d: f32 = g
                        .iter()
                        .zip(w)
                        .map(|(a, b)| (a - b).abs())
                        .fold(0.0, f32::max);
                    assert!(d < 1e-4, "client {k}: embedding differs by {d}");
                }
            }
        }));
    }
    for h in handles {
        h.join().unwrap();
    }
    // A malformed crop is refused in the caller, not in the worker.
    let bad = Crop {
        width: 10,
        height: 10,
        rgb: vec![0; 3],
    };
    assert!(matches!(
        svc.client().embed(vec![bad]),
        Err(EmbedError::BadCrop { .. })
    ));
    svc.shutdown();
}

#[test]
fn card_errors_are_clear() {
    let Some(lib) = library() else { return };
    // Card claims dim 64; the model returns 32.
    let cfg = EmbedConfig {
        card: Some(fixture("bad_dim.json")),
        ..tiny_cfg(&lib)
    };
    let e = Embedder::open(&cfg)
        .err()
        .expect("dim mismatch must fail")
        .to_string();
    assert!(
        e.contains("output.dim") && e.contains("64") && e.contains("32"),
        "{e}"
    );

    // Missing model file.
    let cfg = EmbedConfig {
        model: Some(PathBuf::from("/nonexistent/enc.onnx")),
        ..tiny_cfg(&lib)
    };
    let e = Embedder::open(&cfg)
        .err()
        .expect("missing model must fail")
        .to_string();
    assert!(
        e.contains("/nonexistent/enc.onnx") && e.contains("embed.model"),
        "{e}"
    );

    let dir = tempfile::tempdir().unwrap();
    let card: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("tiny.json")).unwrap()).unwrap();
    let write = |name: &str, v: &serde_json::Value| {
        let p = dir.path().join(name);
        std::fs::write(&p, serde_json::to_string(v).unwrap()).unwrap();
        p
    };
    // Mismatched input name.
    let mut c = card.clone();
    c["input"]["name"] = "pixels".into();
    let cfg = EmbedConfig {
        card: Some(write("name.json", &c)),
        ..tiny_cfg(&lib)
    };
    let e = Embedder::open(&cfg).err().unwrap().to_string();
    assert!(e.contains("`pixels`") && e.contains("`input`"), "{e}");
    // Mismatched output name.
    let mut c = card.clone();
    c["output"]["name"] = "features".into();
    let cfg = EmbedConfig {
        card: Some(write("out.json", &c)),
        ..tiny_cfg(&lib)
    };
    let e = Embedder::open(&cfg).err().unwrap().to_string();
    assert!(e.contains("`features`") && e.contains("embedding"), "{e}");
    // Wrong input size.
    let mut c = card.clone();
    c["input"]["height"] = 32.into();
    let cfg = EmbedConfig {
        card: Some(write("size.json", &c)),
        ..tiny_cfg(&lib)
    };
    let e = Embedder::open(&cfg).err().unwrap().to_string();
    assert!(e.contains("32") && e.contains("shape"), "{e}");
    // Card of another model (hash).
    let mut c = card.clone();
    c["onnx_sha256"] = "0".repeat(64).into();
    let cfg = EmbedConfig {
        card: Some(write("hash.json", &c)),
        ..tiny_cfg(&lib)
    };
    let e = Embedder::open(&cfg).err().unwrap().to_string();
    assert!(
        e.contains("onnx_sha256") && e.contains("another model"),
        "{e}"
    );
    // Missing card.
    let cfg = EmbedConfig {
        card: Some(dir.path().join("none.json")),
        ..tiny_cfg(&lib)
    };
    let e = Embedder::open(&cfg).err().unwrap().to_string();
    assert!(e.contains("none.json") && e.contains("card"), "{e}");
    // Wrong format tag.
    let mut c = card.clone();
    c["format"] = "something/2".into();
    let cfg = EmbedConfig {
        card: Some(write("fmt.json", &c)),
        ..tiny_cfg(&lib)
    };
    let e = Embedder::open(&cfg).err().unwrap().to_string();
    assert!(e.contains("finprint-encoder/1"), "{e}");
    // Missing library.
    let cfg = EmbedConfig {
        library: Some(PathBuf::from("/nonexistent/libonnxruntime.so")),
        ..tiny_cfg(&lib)
    };
    let e = EmbedService::build(&cfg).err().unwrap().to_string();
    assert!(
        e.contains("ONNX Runtime library not found")
            && e.contains("/nonexistent/libonnxruntime.so"),
        "{e}"
    );
}
