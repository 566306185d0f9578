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

/// The start of the warning for a camera whose fish look too alike to its encoder.
const ALIKE_WARNING: &str = "fish in view together look this alike to the encoder";

fn library() -> Option<PathBuf> {
    match runtime::resolve_library(None) {
        Ok(p) if p.is_absolute() => Some(p),
        // scripts/setup.sh installs the library; a test run without it must not pass silently.
        other => panic!(
            "no ONNX Runtime library found ({other:?}): run scripts/setup.sh or set ORT_DYLIB_PATH"
        ),
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
    // 22 crops in 11 runs: each run's crops are preprocessed while the previous run is on the
    // session; every row must still be its own crop's embedding, in order.
    let many: Vec<usize> = (0..22).map(|k| (k * 7 + k / 3) % cases.len()).collect();
    let crops: Vec<Crop> = many.iter().map(|&i| cases[i].crop.clone()).collect();
    let got = emb.embed(&crops).unwrap();
    assert_eq!(got.len(), many.len());
    for (k, (g, &i)) in got.iter().zip(&many).enumerate() {
        let d = g
            .iter()
            .zip(&cases[i].embedding)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(
            d <= 1e-4,
            "crop {k} (case {i}) in a pipelined batch differs by {d}"
        );
    }
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

// ---------------------------------------------------------------------------------------------
// Identity stage on synthetic embeddings: each simulated fish has two flank vectors (zebrafish
// flanks differ); an observation is its flank vector plus noise, normalised.

mod ident {
    use finprint::embed::ModelCard;
    use finprint::identify::{Identifier, IdentityConfig};
    use finprint::messages::{Crop, Detection, TrackReport, TrackStatus};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    pub const DIM: usize = 64;

    pub fn card() -> ModelCard {
        let mut c: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(super::fixture("tiny.json")).unwrap())
                .unwrap();
        c["output"]["dim"] = DIM.into();
        c["name"] = "synthetic".into();
        serde_json::from_value(c).unwrap()
    }

    pub fn cfg() -> IdentityConfig {
        IdentityConfig {
            budget_per_s: 10_000.0,
            refresh_s: 0.0,
            ..Default::default()
        }
    }

    pub fn unit(v: Vec<f32>) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / n).collect()
    }

    pub struct Fish {
        pub left: Vec<f32>,
        pub right: Vec<f32>,
    }

    impl Fish {
        pub fn random(rng: &mut ChaCha8Rng) -> Fish {
            let mut r = || unit((0..DIM).map(|_| rng.random_range(-1.0f32..1.0)).collect());
            Fish {
                left: r(),
                right: r(),
            }
        }
        /// A look-alike of `other`: `similarity` of its pattern is shared.
        pub fn like(other: &Fish, share: f32, rng: &mut ChaCha8Rng) -> Fish {
            let f = Fish::random(rng);
            let mix = |a: &[f32], b: &[f32]| {
                unit(
                    a.iter()
                        .zip(b)
                        .map(|(x, y)| share * x + (1.0 - share) * y)
                        .collect(),
                )
            };
            Fish {
                left: mix(&other.left, &f.left),
                right: mix(&other.right, &f.right),
            }
        }
        /// One noisy observation of a flank (heading > 0: `right`, else `left`).
        pub fn sample(&self, facing_right: bool, noise: f32, rng: &mut ChaCha8Rng) -> Vec<f32> {
            let base = if facing_right {
                &self.right
            } else {
                &self.left
            };
            unit(
                base.iter()
                    .map(|x| x + rng.random_range(-noise..noise))
                    .collect(),
            )
        }
    }

    /// An identifier for tank "tank" with [`cfg`], [`card`] and the known `population` (if any).
    pub fn tank(population: Option<u32>) -> Identifier {
        Identifier::build(&cfg(), "tank", population, &card()).unwrap()
    }

    pub fn rng(seed: u64) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(seed)
    }

    pub fn report(track: u64, det: usize, facing_right: bool) -> TrackReport {
        TrackReport {
            track,
            individual: None,
            status: TrackStatus::Confirmed,
            x: 0.0,
            y: 0.0,
            bbox: [0.0; 4],
            heading: if facing_right {
                0.0
            } else {
                std::f32::consts::PI
            },
            area: 100.0,
            detection: Some(det),
            body_length: 30.0,
            fish_area: 0.0,
        }
    }

    pub fn detection(fish_count: u32) -> Detection {
        Detection {
            x: 0.0,
            y: 0.0,
            bbox: [0.0; 4],
            area: 100.0,
            axis_angle: 0.0,
            major_axis: 30.0,
            length: 0.0,
            minor_axis: 10.0,
            fish_count,
            crop: Some(Crop {
                width: 3,
                height: 1,
                rgb: vec![0; 9],
            }),
            points: Vec::new(),
        }
    }

    /// One visible fish in a frame: track id, which fish, facing, merged blob?
    pub struct Seen<'a> {
        pub track: u64,
        pub fish: &'a Fish,
        pub facing_right: bool,
        pub merged: bool,
    }

    /// Runs one frame through wants_embedding → observe → assign; returns the labels.
    pub fn frame(
        id: &mut Identifier,
        t: f64,
        seen: &[Seen],
        rng: &mut ChaCha8Rng,
    ) -> Vec<Option<String>> {
        let dets: Vec<Detection> = seen
            .iter()
            .map(|s| detection(if s.merged { 2 } else { 1 }))
            .collect();
        let mut tracks: Vec<TrackReport> = seen
            .iter()
            .enumerate()
            .map(|(i, s)| report(s.track, i, s.facing_right))
            .collect();
        for i in id.wants_embedding(t, &tracks, &dets) {
            let s = &seen[i];
            let e = s.fish.sample(s.facing_right, 0.08, rng);
            id.observe(t, s.track, &e, 1.0);
        }
        id.assign(t, &mut tracks);
        tracks.into_iter().map(|t| t.individual).collect()
    }

    /// How many different individuals `labels` name (unlabelled entries left out).
    pub fn distinct(labels: &[Option<String>]) -> usize {
        labels
            .iter()
            .flatten()
            .collect::<std::collections::HashSet<_>>()
            .len()
    }

    /// Checks that `who`'s `label` is an individual none of `enrolled` holds (a newcomer).
    pub fn newcomer(label: &Option<String>, enrolled: &[Option<String>], who: &str) {
        let Some(l) = label else {
            panic!("{who} got no individual")
        };
        assert!(
            !enrolled.contains(label),
            "{who} took an enrolled individual: {l} in {enrolled:?}"
        );
    }

    /// Runs `n` frames 0.1 s apart (advancing `t`), each showing `seen` = (track, index into
    /// `fish`, facing right) unmerged; returns the last frame's labels.
    pub fn frames(
        id: &mut Identifier,
        t: &mut f64,
        fish: &[Fish],
        seen: &[(u64, usize, bool)],
        n: usize,
        rng: &mut ChaCha8Rng,
    ) -> Vec<Option<String>> {
        let mut last = Vec::new();
        for _ in 0..n {
            *t += 0.1;
            let s: Vec<Seen> = seen
                .iter()
                .map(|&(track, k, facing_right)| Seen {
                    track,
                    fish: &fish[k],
                    facing_right,
                    merged: false,
                })
                .collect();
            last = frame(id, *t, &s, rng);
        }
        last
    }
}

use ident::{Fish, Seen, frame};

#[test]
fn open_population_needs_consistent_evidence_before_enrolling() {
    let mut rng = ident::rng(1);
    let a = Fish::random(&mut rng);
    let mut id = ident::tank(None);
    // A few frames: not enough evidence yet (default: 8 embeddings over ≥ 1.5 s).
    for f in 0..5 {
        let l = frame(
            &mut id,
            f as f64 * 0.1,
            &[Seen {
                track: 1,
                fish: &a,
                facing_right: true,
                merged: false,
            }],
            &mut rng,
        );
        assert_eq!(l[0], None, "enrolled after only {} embeddings", f + 1);
    }
    assert!(id.api().list().is_empty());
    // A track whose embeddings are random each time (e.g. a track hopping between fish) is
    // never consistent evidence.
    for f in 0..60 {
        let noise = Fish::random(&mut rng);
        let t = 10.0 + f as f64 * 0.1;
        let l = frame(
            &mut id,
            t,
            &[Seen {
                track: 2,
                fish: &noise,
                facing_right: true,
                merged: false,
            }],
            &mut rng,
        );
        assert_eq!(l[0], None, "inconsistent track got an identity");
    }
    assert!(
        id.api().list().is_empty(),
        "inconsistent evidence enrolled an individual"
    );
    // Consistent evidence over time: enrolled once, then stable.
    let mut labels = Vec::new();
    for f in 0..40 {
        let t = 20.0 + f as f64 * 0.1;
        labels.push(
            frame(
                &mut id,
                t,
                &[Seen {
                    track: 3,
                    fish: &a,
                    facing_right: true,
                    merged: false,
                }],
                &mut rng,
            )[0]
            .clone(),
        );
    }
    let first = labels
        .iter()
        .position(|l| l.is_some())
        .expect("never enrolled");
    println!(
        "open population: enrolled after {} frames (10 fps)",
        first + 1
    );
    assert!(
        first >= 14,
        "enrolled before 1.5 s of evidence (frame {first})"
    );
    assert!(
        labels[first..].iter().all(|l| l == &labels[first]),
        "label changed after enrolment"
    );
    assert_eq!(id.api().list().len(), 1);
}

#[test]
fn known_population_never_exceeds_n_and_assigns_one_to_one() {
    let mut rng = ident::rng(2);
    let fish: Vec<Fish> = (0..5).map(|_| Fish::random(&mut rng)).collect();
    let mut id = ident::tank(Some(3));
    let mut t = 0.0;
    // Five different fish appear in turn, three at a time (tracks 1..=5 then 6..=10).
    for round in 0..2u64 {
        for group in [[0usize, 1, 2], [2, 3, 4], [0, 3, 4]] {
            for _ in 0..30 {
                t += 0.1;
                let seen: Vec<Seen> = group
                    .iter()
                    .map(|&k| Seen {
                        track: round * 100 + k as u64 + 1,
                        fish: &fish[k],
                        facing_right: true,
                        merged: false,
                    })
                    .collect();
                let labels = frame(&mut id, t, &seen, &mut rng);
                assert_eq!(
                    ident::distinct(&labels),
                    labels.iter().flatten().count(),
                    "two visible tracks share an individual: {labels:?}"
                );
                let active = id
                    .api()
                    .list()
                    .iter()
                    .filter(|i| i.merged_into.is_none())
                    .count();
                assert!(active <= 3, "known population 3 but {active} individuals");
            }
        }
    }
    assert_eq!(id.api().list().len(), 3);
}

#[test]
fn relink_after_gap_and_newcomer_gets_its_own_identity() {
    let mut rng = ident::rng(3);
    let a = Fish::random(&mut rng);
    let b = Fish::random(&mut rng);
    let newcomer = Fish::like(&a, 0.4, &mut rng);
    let mut id = ident::tank(None);
    let mut t = 0.0;
    let mut run =
        |id: &mut finprint::identify::Identifier, seen: &[Seen], n: usize, rng: &mut _| {
            let mut last = Vec::new();
            for _ in 0..n {
                t += 0.1;
                last = frame(id, t, seen, rng);
            }
            last
        };
    let l = run(
        &mut id,
        &[
            Seen {
                track: 1,
                fish: &a,
                facing_right: true,
                merged: false,
            },
            Seen {
                track: 2,
                fish: &b,
                facing_right: true,
                merged: false,
            },
        ],
        30,
        &mut rng,
    );
    let (la, lb) = (l[0].clone().unwrap(), l[1].clone().unwrap());
    assert_ne!(la, lb);
    // Both leave the view; later they come back on new tracks, in swapped order.
    let _ = run(&mut id, &[], 50, &mut rng);
    let mut first_labels = None;
    let mut frames_to_relink = 0;
    for k in 0..10 {
        let l = run(
            &mut id,
            &[
                Seen {
                    track: 11,
                    fish: &b,
                    facing_right: true,
                    merged: false,
                },
                Seen {
                    track: 12,
                    fish: &a,
                    facing_right: true,
                    merged: false,
                },
            ],
            1,
            &mut rng,
        );
        if l[0].is_some() && l[1].is_some() && first_labels.is_none() {
            first_labels = Some(l.clone());
            frames_to_relink = k + 1;
        }
    }
    let l = first_labels.expect("not relinked within 10 frames");
    println!("relinked after {frames_to_relink} frames: {l:?}");
    assert_eq!(l[0].as_deref(), Some(lb.as_str()));
    assert_eq!(l[1].as_deref(), Some(la.as_str()));
    // A newcomer (a look-alike of A, never seen) next to B gets a new identity, not A's.
    let mut seen_labels = Vec::new();
    for _ in 0..40 {
        let l = run(
            &mut id,
            &[
                Seen {
                    track: 21,
                    fish: &newcomer,
                    facing_right: true,
                    merged: false,
                },
                Seen {
                    track: 22,
                    fish: &b,
                    facing_right: true,
                    merged: false,
                },
            ],
            1,
            &mut rng,
        );
        seen_labels.push(l[0].clone());
    }
    assert!(
        seen_labels
            .iter()
            .all(|l| l.as_deref() != Some(la.as_str())),
        "newcomer took A's identity: {seen_labels:?}"
    );
    let last = seen_labels
        .last()
        .unwrap()
        .clone()
        .expect("newcomer never enrolled");
    assert!(last != la && last != lb);
    assert_eq!(id.api().list().len(), 3);
}

#[test]
fn flank_turn_keeps_identity_and_teaches_the_gallery() {
    let mut rng = ident::rng(4);
    let a = Fish::random(&mut rng);
    let mut id = ident::tank(None);
    let mut t = 0.0;
    let mut label = None;
    for _ in 0..30 {
        t += 0.1;
        label = frame(
            &mut id,
            t,
            &[Seen {
                track: 1,
                fish: &a,
                facing_right: true,
                merged: false,
            }],
            &mut rng,
        )[0]
        .clone();
    }
    let la = label.expect("not enrolled");
    // It turns: the other flank looks unlike anything stored, but the track keeps its identity.
    for _ in 0..30 {
        t += 0.1;
        let l = frame(
            &mut id,
            t,
            &[Seen {
                track: 1,
                fish: &a,
                facing_right: false,
                merged: false,
            }],
            &mut rng,
        );
        assert_eq!(
            l[0].as_deref(),
            Some(la.as_str()),
            "identity lost at the flank turn"
        );
    }
    // Leaves, comes back showing the second flank on a new track: recognised.
    t += 10.0;
    let mut got = None;
    for _ in 0..5 {
        t += 0.1;
        got = frame(
            &mut id,
            t,
            &[Seen {
                track: 2,
                fish: &a,
                facing_right: false,
                merged: false,
            }],
            &mut rng,
        )[0]
        .clone();
    }
    assert_eq!(
        got.as_deref(),
        Some(la.as_str()),
        "the learnt flank was not recognised"
    );
    assert_eq!(id.api().list().len(), 1);
}

#[test]
fn swap_during_occlusion_is_corrected_by_evidence() {
    let mut rng = ident::rng(5);
    let a = Fish::random(&mut rng);
    let b = Fish::random(&mut rng);
    let mut id = ident::tank(Some(2));
    let mut t = 0.0;
    let mut l = Vec::new();
    for _ in 0..30 {
        t += 0.1;
        l = frame(
            &mut id,
            t,
            &[
                Seen {
                    track: 1,
                    fish: &a,
                    facing_right: true,
                    merged: false,
                },
                Seen {
                    track: 2,
                    fish: &b,
                    facing_right: true,
                    merged: false,
                },
            ],
            &mut rng,
        );
    }
    let (la, lb) = (l[0].clone().unwrap(), l[1].clone().unwrap());
    // They touch (merged blob) and the tracker swaps the track ids when they separate.
    for _ in 0..5 {
        t += 0.1;
        frame(
            &mut id,
            t,
            &[
                Seen {
                    track: 1,
                    fish: &a,
                    facing_right: true,
                    merged: true,
                },
                Seen {
                    track: 2,
                    fish: &b,
                    facing_right: true,
                    merged: true,
                },
            ],
            &mut rng,
        );
    }
    let mut fixed_after = None;
    for k in 0..20 {
        t += 0.1;
        l = frame(
            &mut id,
            t,
            &[
                Seen {
                    track: 1,
                    fish: &b,
                    facing_right: true,
                    merged: false,
                },
                Seen {
                    track: 2,
                    fish: &a,
                    facing_right: true,
                    merged: false,
                },
            ],
            &mut rng,
        );
        if fixed_after.is_none()
            && l[0].as_deref() == Some(lb.as_str())
            && l[1].as_deref() == Some(la.as_str())
        {
            fixed_after = Some(k + 1);
        }
    }
    println!("swap corrected after {fixed_after:?} frames");
    assert!(
        fixed_after.is_some_and(|k| k <= 5),
        "swap not corrected: {l:?}"
    );
    assert_eq!(l[0].as_deref(), Some(lb.as_str()));
}

#[test]
fn embedding_budget_prefers_new_and_uncertain_tracks() {
    let mut rng = ident::rng(6);
    let fish: Vec<Fish> = (0..6).map(|_| Fish::random(&mut rng)).collect();
    let dets: Vec<_> = (0..6).map(|_| ident::detection(1)).collect();
    // Runs 10 s at 30 fps with 6 fish; returns embeddings per track.
    let run = |id: &mut finprint::identify::Identifier, rng: &mut _| {
        let mut per_track = [0usize; 6];
        let mut t = 0.0;
        for _ in 0..300 {
            t += 1.0 / 30.0;
            let mut tracks: Vec<_> = (0..6)
                .map(|k| ident::report(k as u64 + 1, k, true))
                .collect();
            for i in id.wants_embedding(t, &tracks, &dets) {
                per_track[i] += 1;
                let e = fish[i].sample(true, 0.08, rng);
                id.observe(t, tracks[i].track, &e, 1.0);
            }
            id.assign(t, &mut tracks);
        }
        per_track
    };
    // Budget 20/s, no refresh limit: the budget is the limit (180 frames-worth would be 1800).
    let cfg = finprint::identify::IdentityConfig {
        budget_per_s: 20.0,
        refresh_s: 0.0,
        ..Default::default()
    };
    let mut id = finprint::identify::Identifier::build(&cfg, "tank", None, &ident::card()).unwrap();
    let per_track = run(&mut id, &mut rng);
    let total: usize = per_track.iter().sum();
    println!("budget 20/s, 6 fish, 10 s: {total} embeddings, per track {per_track:?}");
    assert!(
        (180..=220).contains(&total),
        "budget not respected: {total}"
    );
    assert!(
        per_track.iter().all(|&n| n >= 20),
        "unfair share: {per_track:?}"
    );
    // Once confident, tracks are only refreshed every `refresh_s`: the budget is not spent.
    let cfg = finprint::identify::IdentityConfig {
        budget_per_s: 20.0,
        refresh_s: 1.0,
        ..Default::default()
    };
    let mut id = finprint::identify::Identifier::build(&cfg, "tank", None, &ident::card()).unwrap();
    let per_track = run(&mut id, &mut rng);
    let total: usize = per_track.iter().sum();
    println!("budget 20/s, refresh 1 s: {total} embeddings, per track {per_track:?}");
    assert!(
        total < 150,
        "confident tracks re-embedded too often: {total}"
    );
    assert!(per_track.iter().all(|&n| n >= 10), "{per_track:?}");
    // A new track appears (a fish of its own): it is embedded in its first frame, ahead of the
    // confident ones.
    let t = 11.0;
    let mut tracks: Vec<_> = (0..7)
        .map(|k| ident::report(k as u64 + 1, k, true))
        .collect();
    tracks[6].track = 99;
    let seven: Vec<_> = (0..7).map(|_| ident::detection(1)).collect();
    let want = id.wants_embedding(t, &tracks, &seven);
    assert_eq!(
        want.first(),
        Some(&6),
        "new track not embedded first: {want:?}"
    );
    // Merged blobs are never embedded, nor (top view) the tracks that share a blob.
    let merged: Vec<_> = (0..6).map(|_| ident::detection(2)).collect();
    let tracks: Vec<_> = (0..6)
        .map(|k| ident::report(k as u64 + 1, k, true))
        .collect();
    assert!(id.wants_embedding(t + 5.0, &tracks, &merged).is_empty());
    let shared: Vec<_> = (0..6)
        .map(|k| ident::report(k as u64 + 1, k / 2, true))
        .collect();
    assert!(id.wants_embedding(t + 10.0, &shared, &dets).is_empty());
}

#[test]
fn save_reload_round_trip_keeps_labels_across_a_restart() {
    let mut rng = ident::rng(7);
    let fish: Vec<Fish> = (0..4).map(|_| Fish::random(&mut rng)).collect();
    let dir = tempfile::tempdir().unwrap();
    let cfg = finprint::identify::IdentityConfig {
        state_dir: Some(dir.path().to_path_buf()),
        ..ident::cfg()
    };
    let seen = |base: u64| -> Vec<Seen> {
        fish.iter()
            .enumerate()
            .map(|(k, f)| Seen {
                track: base + k as u64,
                fish: f,
                facing_right: k % 2 == 0,
                merged: false,
            })
            .collect()
    };
    let mut before = Vec::new();
    {
        let mut id =
            finprint::identify::Identifier::build(&cfg, "tank-a", Some(4), &ident::card()).unwrap();
        for f in 0..40 {
            before = frame(&mut id, f as f64 * 0.1, &seen(1), &mut rng);
        }
        assert!(before.iter().all(Option::is_some), "{before:?}");
        let api = id.api();
        let first_id = api.list()[0].id.clone();
        api.rename(&first_id, Some("Nemo".into())).unwrap();
        before = frame(&mut id, 4.1, &seen(1), &mut rng);
        assert!(before.contains(&Some("Nemo".into())));
        id.save().unwrap();
        // "Daemon stops" here (drop also saves when dirty).
    }
    let file = dir.path().join("tank-a.identity.json");
    assert!(file.is_file());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left behind");
    // Restart: new process state, new track ids, stream time starts again.
    let mut id =
        finprint::identify::Identifier::build(&cfg, "tank-a", Some(4), &ident::card()).unwrap();
    assert_eq!(id.api().list().len(), 4);
    let mut total = 0;
    let mut kept = 0;
    let mut unlabeled = 0;
    for f in 0..100 {
        let l = frame(&mut id, f as f64 * 0.1, &seen(50), &mut rng);
        for (k, lab) in l.iter().enumerate() {
            total += 1;
            match lab {
                None => unlabeled += 1,
                Some(x) if Some(x) == before[k].as_ref() => kept += 1,
                Some(_) => {}
            }
        }
    }
    let wrong = total - kept - unlabeled;
    println!(
        "after restart: {kept}/{total} frames keep their label, {unlabeled} not yet labelled, {wrong} wrong"
    );
    assert_eq!(wrong, 0);
    assert!(kept as f64 / (total - unlabeled) as f64 >= 0.99);
    assert!(
        unlabeled <= 4 * 3,
        "relabelling after restart took too long: {unlabeled} unlabeled track-frames"
    );
}

#[test]
fn damaged_or_foreign_state_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = finprint::identify::IdentityConfig {
        state_dir: Some(dir.path().to_path_buf()),
        ..ident::cfg()
    };
    let file = dir.path().join("t1.identity.json");
    std::fs::write(&file, b"{\"format\": \"finprint-identity/1\", \"tank\": ").unwrap();
    let e = finprint::identify::Identifier::build(&cfg, "t1", None, &ident::card())
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("t1.identity.json") && e.contains("damaged") && e.contains("move the file away"),
        "{e}"
    );
    // A file written with another encoder is refused too.
    std::fs::remove_file(&file).unwrap();
    {
        let mut id =
            finprint::identify::Identifier::build(&cfg, "t1", None, &ident::card()).unwrap();
        id.enroll("x", None, &[ident::unit(vec![1.0; ident::DIM])], vec![])
            .unwrap();
        id.save().unwrap();
    }
    let mut other = ident::card();
    other.name = "another-encoder".into();
    let e = finprint::identify::Identifier::build(&cfg, "t1", None, &other)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("another-encoder") && e.contains("not comparable"),
        "{e}"
    );
    // The refused file is untouched.
    assert!(finprint::identify::Identifier::build(&cfg, "t1", None, &ident::card()).is_ok());
}

fn http_call(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, serde_json::Value) {
    let mut resp = match method {
        "GET" => {
            let mut r = agent.get(url);
            if let Some(t) = token {
                r = r.header("Authorization", &format!("Bearer {t}"));
            }
            r.call().unwrap()
        }
        _ => {
            let mut r = agent.post(url).header("Content-Type", "application/json");
            if let Some(t) = token {
                r = r.header("Authorization", &format!("Bearer {t}"));
            }
            match body {
                Some(b) => r.send(b),
                None => r.send_empty(),
            }
            .unwrap_or_else(|e| panic!("POST {url}: {e}"))
        }
    };
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    )
}

#[test]
fn http_rename_merge_and_undo_need_the_token() {
    let mut rng = ident::rng(8);
    let fish: Vec<Fish> = (0..2).map(|_| Fish::random(&mut rng)).collect();
    let dir = tempfile::tempdir().unwrap();
    let cfg = finprint::identify::IdentityConfig {
        state_dir: Some(dir.path().to_path_buf()),
        ..ident::cfg()
    };
    let mut id = finprint::identify::Identifier::build(&cfg, "tank", None, &ident::card()).unwrap();
    let mut l = Vec::new();
    for f in 0..30 {
        l = frame(
            &mut id,
            f as f64 * 0.1,
            &[
                Seen {
                    track: 1,
                    fish: &fish[0],
                    facing_right: true,
                    merged: false,
                },
                Seen {
                    track: 2,
                    fish: &fish[1],
                    facing_right: true,
                    merged: false,
                },
            ],
            &mut rng,
        );
    }
    let (a, b) = (l[0].clone().unwrap(), l[1].clone().unwrap());

    let token = "s3cret-token";
    let app = finprint::identify::router(vec![id.api()], Some(token.into()));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(async move { axum::serve(listener, app).await });
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let base = format!("http://{addr}/api/v1/individuals");

    let (s, v) = http_call(&agent, "GET", &base, None, None);
    assert_eq!(s, 200);
    assert_eq!(v["individuals"].as_array().unwrap().len(), 2);
    // Rename: refused without / with a wrong token, accepted with it.
    let url = format!("{base}/tank/{a}/rename");
    assert_eq!(
        http_call(&agent, "POST", &url, None, Some(r#"{"name":"Nemo"}"#)).0,
        401
    );
    assert_eq!(
        http_call(
            &agent,
            "POST",
            &url,
            Some("wrong-token"),
            Some(r#"{"name":"Nemo"}"#)
        )
        .0,
        401
    );
    let (s, v) = http_call(
        &agent,
        "POST",
        &url,
        Some(token),
        Some(r#"{"name":"Nemo"}"#),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["individual"]["label"], "Nemo");
    // Name clash: 409.
    let (s, _) = http_call(
        &agent,
        "POST",
        &format!("{base}/tank/{b}/rename"),
        Some(token),
        Some(r#"{"name":"Nemo"}"#),
    );
    assert_eq!(s, 409);
    let l = frame(
        &mut id,
        3.1,
        &[
            Seen {
                track: 1,
                fish: &fish[0],
                facing_right: true,
                merged: false,
            },
            Seen {
                track: 2,
                fish: &fish[1],
                facing_right: true,
                merged: false,
            },
        ],
        &mut rng,
    );
    assert_eq!(l[0].as_deref(), Some("Nemo"));
    // Merge b into a: refused without token; then b's track shows a's label.
    let murl = format!("{base}/tank/merge");
    let body = format!(r#"{{"from":"{b}","into":"{a}"}}"#);
    assert_eq!(http_call(&agent, "POST", &murl, None, Some(&body)).0, 401);
    let (s, v) = http_call(&agent, "POST", &murl, Some(token), Some(&body));
    assert_eq!(s, 200, "{v}");
    let merge_id = v["merge"]["id"].as_u64().unwrap();
    let (_, v) = http_call(&agent, "GET", &format!("{base}?tank=tank"), None, None);
    let merged = v["individuals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == b.as_str())
        .unwrap()
        .clone();
    assert_eq!(merged["merged_into"], a.as_str());
    assert_eq!(merged["prototypes"], 0);
    let l = frame(
        &mut id,
        3.2,
        &[Seen {
            track: 2,
            fish: &fish[1],
            facing_right: true,
            merged: false,
        }],
        &mut rng,
    );
    assert_eq!(l[0].as_deref(), Some("Nemo"), "merged identity not applied");
    // Undo: refused without token; then b is back with its prototypes, and its track relinks.
    let uurl = format!("{base}/tank/merges/{merge_id}/undo");
    assert_eq!(http_call(&agent, "POST", &uurl, None, None).0, 401);
    let (s, v) = http_call(&agent, "POST", &uurl, Some(token), None);
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        http_call(&agent, "POST", &uurl, Some(token), None).0,
        409,
        "double undo accepted"
    );
    let (_, v) = http_call(&agent, "GET", &format!("{base}?tank=tank"), None, None);
    let back = v["individuals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == b.as_str())
        .unwrap()
        .clone();
    assert!(back["merged_into"].is_null());
    assert!(back["prototypes"].as_u64().unwrap() > 0);
    let mut l = Vec::new();
    for f in 0..10 {
        l = frame(
            &mut id,
            4.0 + f as f64 * 0.1,
            &[Seen {
                track: 3,
                fish: &fish[1],
                facing_right: true,
                merged: false,
            }],
            &mut rng,
        );
    }
    assert_eq!(
        l[0].as_deref(),
        Some(b.as_str()),
        "undone merge: b not recognised again"
    );
    // Unknown tank / individual: 404. Changes were saved at once.
    assert_eq!(
        http_call(
            &agent,
            "POST",
            &format!("{base}/nope/{a}/rename"),
            Some(token),
            Some(r#"{"name":"X"}"#)
        )
        .0,
        404
    );
    assert_eq!(
        http_call(
            &agent,
            "POST",
            &format!("{base}/tank/nobody/rename"),
            Some(token),
            Some(r#"{"name":"X"}"#)
        )
        .0,
        404
    );
    let saved = std::fs::read_to_string(dir.path().join("tank.identity.json")).unwrap();
    assert!(saved.contains("Nemo"));
    // Without a configured token every change is refused (403).
    let app = finprint::identify::router(vec![id.api()], None);
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr2 = listener.local_addr().unwrap();
    rt.spawn(async move { axum::serve(listener, app).await });
    let (s, v) = http_call(
        &agent,
        "POST",
        &format!("http://{addr2}/api/v1/individuals/tank/{a}/rename"),
        Some(token),
        Some(r#"{"name":"Y"}"#),
    );
    assert_eq!(s, 403);
    assert!(v["error"].as_str().unwrap().contains("identity.api_token"));
}

// ---------------------------------------------------------------------------------------------
// The shipped encoder (models/finprint-default.*), when present.

fn shipped_cfg(lib: &Path) -> Option<EmbedConfig> {
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/finprint-default.onnx");
    assert!(
        model.is_file(),
        "models/finprint-default.onnx is part of the repository and must exist"
    );
    Some(EmbedConfig {
        model: Some(model),
        library: Some(lib.to_path_buf()),
        provider: Provider::Cpu,
        ..Default::default()
    })
}

#[test]
fn shipped_model_reproduces_its_selftest() {
    let Some(lib) = library() else { return };
    let Some(cfg) = shipped_cfg(&lib) else { return };
    let st_path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("models/finprint-default.selftest.json");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(st_path).unwrap()).unwrap();
    let (h, w) = (
        v["height"].as_u64().unwrap() as u32,
        v["width"].as_u64().unwrap() as u32,
    );
    let tol = v["tolerance"].as_f64().unwrap_or(1e-4) as f32;
    let cases = v["crops"].as_array().unwrap();
    let crops: Vec<Crop> = cases
        .iter()
        .map(|c| Crop {
            width: w,
            height: h,
            rgb: c["rgb_hwc_u8"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as u8)
                .collect(),
        })
        .collect();
    let mut emb = Embedder::open(&cfg).unwrap();
    let got = emb.embed(&crops).unwrap();
    let mut worst = 0f32;
    for (g, c) in got.iter().zip(cases) {
        let want: Vec<f32> = c["expected_embedding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect();
        assert_eq!(g.len(), want.len());
        worst = g
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(worst, f32::max);
    }
    println!(
        "shipped model {}: {} selftest crops, max |rust - onnxruntime| = {worst:e}",
        emb.card().name,
        crops.len()
    );
    assert!(
        worst <= tol,
        "shipped model differs from its selftest by {worst} (tolerance {tol})"
    );
}

/// Enrols held-out simulated fish (training data set's `test` split, never trained on) with
/// `finprint enroll`, then recognises them by name from other crops, and checks that a fish that
/// was not enrolled gets a new identity. Needs the shipped model; renders the data set itself.
#[test]
fn enroll_then_recognise_by_name_on_held_out_fish() {
    let Some(lib) = library() else { return };
    let Some(cfg) = shipped_cfg(&lib) else { return };
    // The simulator's data set with the shipped model's training seed: its `test` and `val`
    // individuals were never trained on.
    let generated = tempfile::tempdir().unwrap();
    let data = generated.path().join("data-s1");
    let st = std::process::Command::new(env!("CARGO_BIN_EXE_finprint"))
        .args(["synth", "--seed", "1", "--individuals", "40", "--dataset"])
        .arg(&data)
        .status()
        .unwrap();
    assert!(st.success(), "finprint synth --dataset failed");
    let mut fish: Vec<PathBuf> = std::fs::read_dir(data.join("test"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    fish.sort();
    let photos = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let mut names = String::from("id,name\n");
    let crop_file = |dir: &Path, flank: &str, k: usize| dir.join(format!("{flank}_{k:04}.png"));
    for (i, f) in fish.iter().enumerate() {
        let id = f.file_name().unwrap().to_str().unwrap().to_string();
        let sub = photos.path().join(&id);
        std::fs::create_dir(&sub).unwrap();
        for flank in ["L", "R"] {
            for k in 0..10 {
                std::fs::copy(
                    crop_file(f, flank, k),
                    sub.join(format!("{flank}_{k:04}.png")),
                )
                .unwrap();
            }
        }
        names.push_str(&format!("{id},Name{i}\n"));
    }
    std::fs::write(photos.path().join("names.csv"), names).unwrap();
    finprint::identify::enroll_cli(finprint::identify::EnrollArgs {
        photos: photos.path().to_path_buf(),
        tank: "tank".into(),
        config: None,
        state_dir: Some(state.path().to_path_buf()),
        model: cfg.model.clone(),
        library: cfg.library.clone(),
    })
    .unwrap();
    // "New video": other crops of the same fish (indices 20..), 4 fish visible at a time, plus
    // one never-enrolled fish (validation split).
    let mut emb = Embedder::open(&cfg).unwrap();
    let icfg = finprint::identify::IdentityConfig {
        state_dir: Some(state.path().to_path_buf()),
        ..Default::default()
    };
    let mut id = finprint::identify::Identifier::build(&icfg, "tank", None, emb.card()).unwrap();
    assert_eq!(id.api().list().len(), fish.len());
    let mut stranger_dir: Vec<PathBuf> = std::fs::read_dir(data.join("val"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    stranger_dir.sort();
    let stranger = stranger_dir[0].clone();
    let mut correct = 0;
    let mut labelled = 0;
    let mut total = 0;
    let mut stranger_labels = Vec::new();
    let mut t = 0.0;
    for (group_no, group) in fish.chunks(4).enumerate() {
        let mut members: Vec<(PathBuf, Option<String>)> = group
            .iter()
            .map(|f| {
                (
                    f.clone(),
                    Some(format!("Name{}", fish.iter().position(|x| x == f).unwrap())),
                )
            })
            .collect();
        members.push((stranger.clone(), None));
        for k in 20..40 {
            t += 0.2;
            let flank = if (k / 10) % 2 == 0 { "L" } else { "R" };
            let crops: Vec<Crop> = members
                .iter()
                .map(|(d, _)| {
                    finprint::identify::enroll::load_crop(&crop_file(d, flank, k)).unwrap()
                })
                .collect();
            let embs = emb.embed(&crops).unwrap();
            let dets: Vec<_> = (0..members.len()).map(|_| ident::detection(1)).collect();
            let mut tracks: Vec<_> = (0..members.len())
                .map(|m| ident::report(group_no as u64 * 100 + m as u64 + 1, m, flank == "R"))
                .collect();
            for i in id.wants_embedding(t, &tracks, &dets) {
                id.observe(t, tracks[i].track, &embs[i], 1.0);
            }
            id.assign(t, &mut tracks);
            for (m, tr) in tracks.iter().enumerate() {
                match &members[m].1 {
                    Some(name) => {
                        total += 1;
                        if let Some(l) = &tr.individual {
                            labelled += 1;
                            if l == name {
                                correct += 1;
                            }
                        }
                    }
                    None => stranger_labels.push(tr.individual.clone()),
                }
            }
        }
        t += 30.0;
    }
    let acc = correct as f64 / labelled.max(1) as f64;
    println!(
        "held-out enrolled fish: rank-1 by name {correct}/{labelled} labelled track-frames = {acc:.3} ({total} total, {} unlabelled); stranger labels: {:?}",
        total - labelled,
        stranger_labels
            .iter()
            .flatten()
            .collect::<std::collections::BTreeSet<_>>()
    );
    assert!(
        stranger_labels
            .iter()
            .flatten()
            .all(|l| !l.starts_with("Name")),
        "the never-enrolled fish took an enrolled identity"
    );
    assert!(acc >= 0.9, "rank-1 {acc}");
}

/// Scores `pred` against `truth` with `finprint eval --json` by `id_column`: (IDF1, recall).
fn eval_idf1(truth: &Path, pred: &Path, id_column: &str) -> (f64, f64) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_finprint"))
        .args(["eval", "--json", "--id-column", id_column, "--gt"])
        .arg(truth)
        .arg("--pred")
        .arg(pred)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "finprint eval: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    (v["idf1"].as_f64().unwrap(), v["recall"].as_f64().unwrap())
}

/// Renders a side-view tank (`fish`, `similarity`, `seed`, `seconds`, 1280×720), replays it with
/// built-in defaults for a side-view camera (`--view side`) and the known population, and
/// scores it with `finprint eval`:
/// (identity IDF1, track IDF1, detection recall, share of written rows with an individual).
fn replay_identity_figure(
    fish: u32,
    similarity: f32,
    seed: u64,
    seconds: u32,
) -> (f64, f64, f64, f64) {
    let tmp = tempfile::tempdir().unwrap();
    let tank = tmp.path().join("tank");
    let bin = env!("CARGO_BIN_EXE_finprint");
    let (fish, similarity, seed, seconds) = (
        fish.to_string(),
        similarity.to_string(),
        seed.to_string(),
        seconds.to_string(),
    );
    let st = std::process::Command::new(bin)
        .args([
            "synth",
            "--fish",
            &fish,
            "--similarity",
            &similarity,
            "--seed",
            &seed,
        ])
        .args(["--width", "1280", "--height", "720", "--seconds", &seconds])
        .args(["--crops-per-flank", "1", "--out"])
        .arg(&tank)
        .status()
        .unwrap();
    assert!(st.success(), "finprint synth failed");
    let out = tmp.path().join("out");
    let st = std::process::Command::new(bin)
        .args([
            "replay",
            "--quiet",
            "--view",
            "side",
            "--population",
            &fish,
            "--input",
        ])
        .arg(tank.join("video.mkv"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&st.stderr);
    assert!(st.status.success(), "finprint replay failed: {log}");
    // Patterned side views tell their fish apart, look-alikes included: the warning for
    // cameras whose crops cannot (tests/replay.rs, fasttrack) must not fire here.
    assert!(!log.contains(ALIKE_WARNING), "{log}");
    let truth = tank.join("truth.csv");
    let pred = out.join("cam0/trajectories.csv");
    let (idf1_ind, recall) = eval_idf1(&truth, &pred, "individual");
    let (idf1_track, _) = eval_idf1(&truth, &pred, "track");
    let mut rows = csv::Reader::from_path(&pred).unwrap();
    let col = rows
        .headers()
        .unwrap()
        .iter()
        .position(|c| c == "individual")
        .unwrap();
    let (mut labelled, mut total) = (0usize, 0usize);
    for rec in rows.records() {
        let rec = rec.unwrap();
        total += 1;
        labelled += usize::from(!rec[col].is_empty());
    }
    let labelled = labelled as f64 / total.max(1) as f64;
    (idf1_ind, idf1_track, recall, labelled)
}

/// 16 look-alike fish (`--similarity 0.8`, a seed the shipped encoder never saw), known
/// population, end to end through `finprint replay`: prints the identity IDF1 next to the
/// track-level IDF1 (what motion alone keeps) and asserts a sane floor.
#[test]
fn sixteen_look_alike_fish_identity_figure() {
    let Some(_lib) = library() else { return };
    let (idf1_ind, idf1_track, recall, _) = replay_identity_figure(16, 0.8, 31, 15);
    println!(
        "16 look-alike fish (similarity 0.8, seed 31, 15 s, 1280x720, --population 16): \
         identity IDF1 {idf1_ind:.3}, track IDF1 {idf1_track:.3}, detection recall {recall:.3}"
    );
    assert!(recall > 0.5, "detection recall {recall}");
    assert!(
        idf1_ind >= 0.2,
        "identity IDF1 {idf1_ind} of 16 look-alike fish"
    );
}

/// A crowded tank: 16 look-alike fish (seed 41, 20 s) are never three quarters apart at once,
/// so the known population could not be enrolled together and the `individual` column stayed
/// empty (measured: no individual in 20 s, nor in 60 s of the same seed). After
/// `enrol_patience_s` half of them are enrolled together and the rest one by one: 0.39–0.41
/// of the rows carried an individual, 0.21 in one run since side views coast through
/// overlaps (x264's output, and with it the figure, varies from one render to the next); with
/// the patience set to 1000 s, none (2026-12-03).
#[test]
fn a_crowded_look_alike_tank_gets_its_individuals() {
    let Some(_lib) = library() else { return };
    let (idf1_ind, idf1_track, recall, labelled) = replay_identity_figure(16, 0.8, 41, 20);
    println!(
        "16 look-alike fish (similarity 0.8, seed 41, 20 s, 1280x720, --population 16): {labelled:.3} \
         of the rows labelled, identity IDF1 {idf1_ind:.3}, track IDF1 {idf1_track:.3}, detection \
         recall {recall:.3}"
    );
    assert!(
        labelled >= 0.1,
        "only {labelled:.3} of the rows carry an individual"
    );
}

/// Issue 5's main figure, 8 fish at the default difficulty (side view, seed 12, which the
/// shipped encoder never saw), known population, `finprint replay --view side` with built-in
/// defaults: prints the identity IDF1 next to the track-level IDF1 (`finprint eval`, default
/// 10 px gate). The goal is 0.95; measured here 0.58–0.63 (x264's output differs run to run)
/// until fragments were regrouped with hindsight, 0.796 since (2026-12-03, top-view
/// defaults), 0.843 with `--view side` (same day), 0.848 since side views coast through
/// overlaps, and 0.78–0.95 over ten seeds (mean 0.880) with a 20 px gate (`BENCHMARKS.md`
/// round 7), so the floor asserted only catches a collapse.
#[test]
fn eight_fish_side_view_identity_figure() {
    let Some(_lib) = library() else { return };
    let (idf1_ind, idf1_track, recall, _) = replay_identity_figure(8, 0.3, 12, 20);
    println!(
        "8 fish (default difficulty, seed 12, 20 s, 1280x720, --population 8): identity IDF1 \
         {idf1_ind:.3} (goal 0.95), track IDF1 {idf1_track:.3}, detection recall {recall:.3}"
    );
    assert!(recall > 0.75, "detection recall {recall} (eval gate 10 px)");
    assert!(idf1_ind >= 0.45, "identity IDF1 {idf1_ind} of 8 fish");
}

/// A fish first seen on one flank, then (on a new track, after a gap) on its other flank, is
/// enrolled twice in an open population; when that track turns and shows the first flank, the
/// two identities are merged into the older one.
#[test]
fn one_fish_enrolled_once_per_flank_is_merged_when_a_track_shows_both() {
    let mut rng = ident::rng(11);
    let a = Fish::random(&mut rng);
    let mut id = ident::tank(None);
    let mut t = 0.0;
    let mut run = |id: &mut finprint::identify::Identifier,
                   t: &mut f64,
                   track: u64,
                   right: bool,
                   n: usize| {
        let mut l = None;
        for _ in 0..n {
            *t += 0.1;
            l = frame(
                id,
                *t,
                &[Seen {
                    track,
                    fish: &a,
                    facing_right: right,
                    merged: false,
                }],
                &mut rng,
            )[0]
            .clone();
        }
        l
    };
    let first = run(&mut id, &mut t, 1, true, 30).expect("right flank not enrolled");
    t += 10.0;
    let second = run(&mut id, &mut t, 2, false, 30).expect("left flank not enrolled");
    assert_ne!(first, second, "the unseen flank cannot be recognised yet");
    assert_eq!(id.api().list().len(), 2);
    // Track 2 turns: its right flank is the first individual's.
    let after = run(&mut id, &mut t, 2, true, 10);
    assert_eq!(after.as_deref(), Some(first.as_str()));
    let list = id.api().list();
    let merged = list.iter().find(|i| i.id == second).unwrap();
    assert_eq!(merged.merged_into.as_deref(), Some(first.as_str()));
    assert_eq!(list.iter().filter(|i| i.merged_into.is_none()).count(), 1);
    // Both flanks now belong to it: a new track on the left flank is recognised.
    t += 10.0;
    let again = run(&mut id, &mut t, 3, false, 5);
    assert_eq!(again.as_deref(), Some(first.as_str()));
}

/// Known population: nobody is enrolled one by one at the start (one fish could be enrolled
/// twice, once per flank); the fish are enrolled together at a moment when they are all in view
/// and apart, each under its own individual, and keep it.
#[test]
fn known_population_is_enrolled_at_once_when_the_fish_are_apart() {
    let mut rng = ident::rng(41);
    let fish: Vec<Fish> = (0..4).map(|_| Fish::random(&mut rng)).collect();
    let mut id = ident::tank(Some(4));
    let mut t = 0.0;
    // Two fish touch (a merged blob) for a while: the four are not all apart, nobody enrolls.
    for _ in 0..20 {
        t += 0.1;
        let seen: Vec<Seen> = (0..4)
            .map(|k| Seen {
                track: k as u64 + 1,
                fish: &fish[k],
                facing_right: true,
                merged: k >= 2,
            })
            .collect();
        frame(&mut id, t, &seen, &mut rng);
    }
    assert_eq!(
        id.api().list().len(),
        0,
        "individuals enrolled before the known population was in view and apart"
    );
    // Apart: all four enrolled together, each track under its own individual, kept.
    let mut first: Option<Vec<Option<String>>> = None;
    for _ in 0..30 {
        t += 0.1;
        let seen: Vec<Seen> = (0..4)
            .map(|k| Seen {
                track: k as u64 + 1,
                fish: &fish[k],
                facing_right: true,
                merged: false,
            })
            .collect();
        let labels = frame(&mut id, t, &seen, &mut rng);
        if labels.iter().any(|l| l.is_some()) {
            assert!(
                labels.iter().all(|l| l.is_some()),
                "enrolled one by one: {labels:?}"
            );
            match &first {
                None => first = Some(labels),
                Some(f) => assert_eq!(&labels, f, "labels changed"),
            }
        }
    }
    let first = first.expect("the four fish were never enrolled");
    assert_eq!(ident::distinct(&first), 4, "{first:?}");
    assert_eq!(id.api().list().len(), 4);
}

/// Known population, everyone enrolled from one side: a new track showing a side nobody was
/// seen from, while every other individual but one is visible elsewhere, is that one (it is
/// the only fish it can be), and the new side is learned: a later track of that side is
/// recognised by its embeddings, with no elimination possible.
#[test]
fn unseen_flank_is_placed_by_elimination_and_learned() {
    let mut rng = ident::rng(42);
    let fish: Vec<Fish> = (0..3).map(|_| Fish::random(&mut rng)).collect();
    let mut id = ident::tank(Some(3));
    let mut t = 0.0;
    let mut run = |seen: &[(u64, usize, bool)], n: usize| {
        ident::frames(&mut id, &mut t, &fish, seen, n, &mut rng)
    };
    // All three facing right: enrolled.
    let start = run(&[(1, 0, true), (2, 1, true), (3, 2, true)], 20);
    assert!(start.iter().all(|l| l.is_some()), "{start:?}");
    let ind0 = start[0].clone();
    // Fish 0 comes back on a new track facing left (never seen from there); fish 1 and 2 are in
    // view on their tracks.
    let after = run(&[(11, 0, false), (2, 1, true), (3, 2, true)], 20);
    assert_eq!(
        after[0], ind0,
        "the unseen flank was not placed by elimination"
    );
    // Later fish 1 and fish 0, both facing left, on new tracks (fish 2 out of view): no
    // elimination can place them (two individuals were never seen from the left); only the
    // learned left flank of fish 0 names it, and fish 1 does not take fish 0's individual.
    let later = run(&[(21, 1, false), (22, 0, false)], 20);
    assert_eq!(
        later[1], ind0,
        "the learned flank did not recognise the fish"
    );
    assert_ne!(
        later[0], ind0,
        "another fish took the individual: {later:?}"
    );
}

#[test]
fn a_fragment_seen_beside_every_individual_in_turn_is_a_newcomer() {
    // Population 4; fish 0-2 enrolled facing right. Fish 3 shows its left flank, which no
    // individual was seen from, so any of them could own it — until each has been in view
    // elsewhere during fish 3's fragment (never all three in the same frame).
    let mut rng = ident::rng(7);
    let fish: Vec<Fish> = (0..4).map(|_| Fish::random(&mut rng)).collect();
    let mut id = ident::tank(Some(4));
    let mut t = 0.0;
    let mut run = |seen: &[(u64, usize, bool)], n: usize| {
        ident::frames(&mut id, &mut t, &fish, seen, n, &mut rng)
    };
    let start = run(&[(1, 0, true), (2, 1, true), (3, 2, true)], 20);
    assert!(start.iter().all(|l| l.is_some()), "{start:?}");
    // Fish 2 out of view: its individual could still be fish 3's unseen left flank.
    let mid = run(&[(1, 0, true), (2, 1, true), (4, 3, false)], 20);
    assert_eq!(
        mid[2], None,
        "enrolled while it could be fish 2's left flank"
    );
    // Fish 0 leaves, fish 2 comes back on a new track: every individual has now been seen
    // elsewhere while fish 3's fragment lasted.
    let end = run(&[(2, 1, true), (5, 2, true), (4, 3, false)], 20);
    assert_eq!(end[1], start[2], "fish 2 not recognised on its new track");
    ident::newcomer(&end[2], &start, "fish 3");
}

#[test]
fn a_look_alike_in_view_beside_every_individual_is_a_newcomer() {
    // Population 4; fish 0-2 enrolled facing right and still in view. Fish 3 is a look-alike of
    // fish 2: its right flank scores between `new` and `accept` against fish 2's. It was in view
    // while every individual was held elsewhere, so it is none of them, however alike.
    let mut rng = ident::rng(11);
    let mut fish: Vec<Fish> = (0..3).map(|_| Fish::random(&mut rng)).collect();
    fish.push(Fish::like(&fish[2], 0.45, &mut rng));
    let mut id = ident::tank(Some(4));
    let mut t = 0.0;
    let start = ident::frames(
        &mut id,
        &mut t,
        &fish,
        &[(1, 0, true), (2, 1, true), (3, 2, true)],
        20,
        &mut rng,
    );
    assert!(start.iter().all(|l| l.is_some()), "{start:?}");
    // 1.5 s: less than the 3 s after which an unplaceable fragment is enrolled anyway.
    let all = [(1, 0, true), (2, 1, true), (3, 2, true), (4, 3, true)];
    let end = ident::frames(&mut id, &mut t, &fish, &all, 15, &mut rng);
    assert_eq!(
        end[..3],
        start[..],
        "the enrolled fish kept their individuals"
    );
    ident::newcomer(&end[3], &start, "the look-alike");
}

#[test]
fn known_population_is_not_enrolled_from_crops_too_poor_to_recognise() {
    // Population 3, all in view and apart; fish 2 only ever shows foreshortened crops (a fish
    // turning towards the camera). Enrolling it would make an individual with no prototype,
    // recognisable by nothing: the fish wait until each has clear crops.
    let mut rng = ident::rng(5);
    let fish: Vec<Fish> = (0..3).map(|_| Fish::random(&mut rng)).collect();
    let mut id = ident::tank(Some(3));
    let dets: Vec<finprint::messages::Detection> = (0..3).map(|_| ident::detection(1)).collect();
    let run = |id: &mut finprint::identify::Identifier,
               t0: f64,
               poor: bool,
               rng: &mut rand_chacha::ChaCha8Rng| {
        let mut tracks: Vec<finprint::messages::TrackReport> = (0..3)
            .map(|k| ident::report(k as u64 + 1, k, true))
            .collect();
        for step in 0..20 {
            let t = t0 + 0.1 * step as f64;
            for i in id.wants_embedding(t, &tracks, &dets) {
                let quality = if poor && i == 2 { 0.1 } else { 1.0 };
                id.observe(
                    t,
                    tracks[i].track,
                    &fish[i].sample(true, 0.08, rng),
                    quality,
                );
            }
            id.assign(t, &mut tracks);
        }
        tracks.into_iter().map(|t| t.individual).collect::<Vec<_>>()
    };
    let waiting = run(&mut id, 0.0, true, &mut rng);
    assert_eq!(
        waiting,
        vec![None, None, None],
        "enrolled with nothing to recognise fish 2 by"
    );
    let enrolled = run(&mut id, 2.0, false, &mut rng);
    assert!(enrolled.iter().all(|l| l.is_some()), "{enrolled:?}");
}

/// Known population in a crowded tank: two of six fish stay together in one blob, so all but a
/// quarter are never apart at once. Nobody is enrolled while the patience
/// (`enrol_patience_s`, 3 s) lasts; then the four fish apart are enrolled together, each under
/// its own individual, and the pair once it parts, one individual each, never more than six.
#[test]
fn a_crowded_known_population_is_enrolled_after_the_patience_runs_out() {
    let mut rng = ident::rng(43);
    let fish: Vec<Fish> = (0..6).map(|_| Fish::random(&mut rng)).collect();
    let mut id = ident::tank(Some(6));
    let mut t = 0.0;
    let mut first_enrolled: Option<(f64, Vec<Option<String>>)> = None;
    for _ in 0..60 {
        t += 0.1;
        let seen: Vec<Seen> = (0..6)
            .map(|k| Seen {
                track: k as u64 + 1,
                fish: &fish[k],
                facing_right: true,
                merged: k >= 4,
            })
            .collect();
        let labels = frame(&mut id, t, &seen, &mut rng);
        if first_enrolled.is_none() && labels.iter().any(|l| l.is_some()) {
            first_enrolled = Some((t, labels));
        }
    }
    let (when, labels) = first_enrolled.expect("the fish apart were never enrolled");
    assert!(
        when > 3.0,
        "enrolled at {when:.1} s, before the 3 s patience ran out: {labels:?}"
    );
    assert!(
        labels[..4].iter().all(|l| l.is_some()) && labels[4..].iter().all(|l| l.is_none()),
        "the four fish apart are enrolled together, the pair in one blob is not: {labels:?}"
    );
    assert_eq!(ident::distinct(&labels), 4, "{labels:?}");
    // The pair parts: each becomes a newcomer of its own.
    let last = ident::frames(
        &mut id,
        &mut t,
        &fish,
        &[
            (1, 0, true),
            (2, 1, true),
            (3, 2, true),
            (4, 3, true),
            (5, 4, true),
            (6, 5, true),
        ],
        40,
        &mut rng,
    );
    assert!(last.iter().all(|l| l.is_some()), "{last:?}");
    for k in 0..4 {
        assert_eq!(last[k], labels[k], "fish {k} changed individual");
    }
    assert_eq!(ident::distinct(&last), 6, "{last:?}");
    assert_eq!(id.api().list().len(), 6);
}

/// Known population: a fish on a track the tracker has not confirmed (with all N tracks
/// confirmed it keeps an extra blob tentative, and tentative tracks are never written) is not
/// enrolled, however new it looks: such an individual would hold a place of the population
/// and never appear. Once the tracker confirms the track, the fish is enrolled.
#[test]
fn a_fish_on_a_tentative_track_is_not_enrolled_until_the_tracker_confirms_it() {
    use finprint::messages::TrackStatus;
    let mut rng = ident::rng(44);
    let fish: Vec<Fish> = (0..3).map(|_| Fish::random(&mut rng)).collect();
    let mut id = ident::tank(Some(3));
    let dets: Vec<finprint::messages::Detection> = (0..3).map(|_| ident::detection(1)).collect();
    let step = |id: &mut finprint::identify::Identifier,
                t: f64,
                third: Option<TrackStatus>,
                rng: &mut rand_chacha::ChaCha8Rng| {
        let n = if third.is_some() { 3 } else { 2 };
        let mut tracks: Vec<finprint::messages::TrackReport> = (0..n)
            .map(|k| ident::report(k as u64 + 1, k, true))
            .collect();
        if let Some(s) = third {
            tracks[2].status = s;
        }
        for i in id.wants_embedding(t, &tracks, &dets[..n]) {
            id.observe(t, tracks[i].track, &fish[i].sample(true, 0.08, rng), 1.0);
        }
        id.assign(t, &mut tracks);
        tracks.into_iter().map(|t| t.individual).collect::<Vec<_>>()
    };
    // Two fish of three in view for 6 s: after the patience they are enrolled.
    let mut t = 0.0;
    for _ in 0..60 {
        t += 0.1;
        step(&mut id, t, None, &mut rng);
    }
    assert_eq!(
        id.api().list().len(),
        2,
        "the two fish in view were not enrolled"
    );
    // The third fish on a tentative track for 4 s: no individual for it.
    let mut last = Vec::new();
    for _ in 0..40 {
        t += 0.1;
        last = step(&mut id, t, Some(TrackStatus::Tentative), &mut rng);
    }
    assert_eq!(
        last[2], None,
        "a tentative track got an individual: {last:?}"
    );
    assert_eq!(id.api().list().len(), 2, "enrolled from a tentative track");
    // Confirmed: a newcomer of its own.
    for _ in 0..40 {
        t += 0.1;
        last = step(&mut id, t, Some(TrackStatus::Confirmed), &mut rng);
    }
    assert_eq!(id.api().list().len(), 3, "{last:?}");
    ident::newcomer(&last[2], &last[..2], "the confirmed third fish");
}
