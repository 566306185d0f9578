//! Issue 3's acceptance check: `finprint replay` (built-in defaults for a side-view camera,
//! `view = "side"` as in `configs/demo.toml`, known population) on three rendered 8-fish
//! side-view tanks, scored against the simulator's ground truth — detection of fully visible
//! fish, per-frame counts, and the interaction log against the true events.
//!
//! The seeds are not ones the detector or tracker were tuned on (seed 7 was). The test prints
//! each tank's figures and asserts the goals for detection and counts on the three
//! pooled; the interaction log's floors are below today's figures (see the assertions).

use std::collections::HashMap;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use pathfinding::matrix::Matrix;
use pathfinding::prelude::kuhn_munkres_min;

mod support;

/// Fully visible: the simulator's visible fraction of the silhouette.
const FULLY_VISIBLE: f32 = 0.99;
/// A fish counts as detected when a trajectory row lies within this many of its true body
/// lengths from its true body centre.
const GATE_BODY_LENGTHS: f32 = 0.3;

/// Runs the binary (time limit: a hang fails) and requires it to succeed.
fn run(args: &[&str], limit: Duration) -> Output {
    let out = support::run_finprint(args, limit);
    assert!(
        out.status.success(),
        "finprint {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Rows of a CSV file as maps from column name to value.
fn read_csv(path: &Path) -> Vec<HashMap<String, String>> {
    let mut rd = csv::Reader::from_path(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let headers = rd.headers().expect("header").clone();
    rd.records()
        .map(|r| {
            let r = r.expect("row");
            headers
                .iter()
                .zip(r.iter())
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

fn num(row: &HashMap<String, String>, key: &str) -> f32 {
    row[key]
        .parse()
        .unwrap_or_else(|_| panic!("{key}={:?}", row[key]))
}

struct Truth {
    frame: u64,
    individual: String,
    x: f32,
    y: f32,
    visible: f32,
}

struct Pred {
    frame: u64,
    track: String,
    individual: String,
    x: f32,
    y: f32,
}

/// Optimal one-to-one matching of `rows` to `cols` where `cost` gives a distance or `None`
/// (not allowed); returns the matched pairs.
fn matching(
    rows: usize,
    cols: usize,
    cost: impl Fn(usize, usize) -> Option<f32>,
) -> Vec<(usize, usize)> {
    if rows == 0 || cols == 0 {
        return Vec::new();
    }
    const NO: i64 = 1_000_000_000;
    let width = cols + rows;
    let mut w = Vec::with_capacity(rows * width);
    for r in 0..rows {
        for c in 0..cols {
            w.push(cost(r, c).map_or(NO, |d| (d * 100.0) as i64));
        }
        for k in 0..rows {
            w.push(if k == r { NO / 10 } else { NO });
        }
    }
    let m = Matrix::from_vec(rows, width, w).expect("matrix");
    let (_, assign) = kuhn_munkres_min(&m);
    assign
        .iter()
        .enumerate()
        .filter(|&(r, &c)| c < cols && m[(r, c)] < NO / 10)
        .map(|(r, &c)| (r, c))
        .collect()
}

/// The label → true individual map by majority over matched rows.
fn majority(votes: &HashMap<(String, String), u32>) -> HashMap<String, String> {
    let mut best: HashMap<String, (String, u32)> = HashMap::new();
    for ((label, truth), &n) in votes {
        let e = best.entry(label.clone()).or_insert((truth.clone(), 0));
        if n > e.1 {
            *e = (truth.clone(), n);
        }
    }
    best.into_iter().map(|(k, (v, _))| (k, v)).collect()
}

/// One tank's figures; pooled over [`SEEDS`] by the test.
#[derive(Default)]
struct Figures {
    /// Fully visible fish (true fish-frames) and those a trajectory row found.
    full: usize,
    found: usize,
    /// Frames, and those whose count is exact / within ±1; sum of absolute count errors.
    frames: u64,
    exact: u64,
    within1: u64,
    abs_err: f64,
    /// Interaction events logged, true, and matched.
    logged: usize,
    true_events: usize,
    matched: usize,
}

/// Renders the 8-fish side-view tank of `seed`, replays it and scores the outputs.
fn measure(dir: &Path, seed: u64) -> Figures {
    let tank = dir.join(format!("tank{seed}"));
    let out = dir.join(format!("out{seed}"));
    let seed_arg = seed.to_string();
    let (t, o) = (tank.to_str().expect("utf8"), out.to_str().expect("utf8"));
    run(
        &[
            "synth",
            "--out",
            t,
            "--seed",
            &seed_arg,
            "--fish",
            "8",
            "--view",
            "side",
            "--width",
            "1280",
            "--height",
            "720",
            "--seconds",
            "20",
            "--crops-per-flank",
            "1",
        ],
        Duration::from_secs(300),
    );
    let video = tank.join("video.mkv");
    // Built-in defaults for a side-view camera, as in configs/demo.toml.
    let config = dir.join("side.toml");
    std::fs::write(
        &config,
        "[[cameras]]\nname = \"cam0\"\npopulation = 8\nview = \"side\"\n[cameras.source]\n\
         kind = \"file\"\npath = \"unused.mkv\"\n",
    )
    .expect("config");
    run(
        &[
            "replay",
            "--config",
            config.to_str().expect("utf8"),
            "--input",
            video.to_str().expect("utf8"),
            "--out",
            o,
            "--quiet",
        ],
        Duration::from_secs(900),
    );

    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tank.join("meta.json")).expect("meta"))
            .expect("meta json");
    let scale = meta["config"]["height"].as_f64().expect("height") as f32 / 1080.0;
    let body: HashMap<String, f32> = meta["fish"]
        .as_array()
        .expect("fish")
        .iter()
        .map(|f| {
            (
                f["individual"].as_str().expect("individual").to_string(),
                f["body_length_1080"].as_f64().expect("length") as f32 * scale,
            )
        })
        .collect();

    let truth: Vec<Truth> = read_csv(&tank.join("truth.csv"))
        .iter()
        .map(|r| Truth {
            frame: num(r, "frame") as u64,
            individual: r["individual"].clone(),
            x: num(r, "x"),
            y: num(r, "y"),
            visible: num(r, "visible_fraction"),
        })
        .collect();
    let preds: Vec<Pred> = read_csv(&out.join("cam0/trajectories.csv"))
        .iter()
        .map(|r| Pred {
            frame: num(r, "frame") as u64,
            track: r["track"].clone(),
            individual: r["individual"].clone(),
            x: num(r, "x"),
            y: num(r, "y"),
        })
        .collect();
    let mut gt_by_frame: HashMap<u64, Vec<&Truth>> = HashMap::new();
    for g in &truth {
        gt_by_frame.entry(g.frame).or_default().push(g);
    }
    let mut pred_by_frame: HashMap<u64, Vec<&Pred>> = HashMap::new();
    for p in &preds {
        pred_by_frame.entry(p.frame).or_default().push(p);
    }
    let frames = gt_by_frame.len() as u64;
    assert_eq!(frames, 600, "the render has 600 frames");

    // Detection of fully visible fish, and which true fish each track / label follows.
    let (mut full, mut found) = (0usize, 0usize);
    let mut track_votes: HashMap<(String, String), u32> = HashMap::new();
    let mut label_votes: HashMap<(String, String), u32> = HashMap::new();
    for f in 0..frames {
        let gt: Vec<&Truth> = gt_by_frame[&f]
            .iter()
            .copied()
            .filter(|g| g.visible > 0.0)
            .collect();
        let pr = pred_by_frame.get(&f).cloned().unwrap_or_default();
        let pairs = matching(gt.len(), pr.len(), |r, c| {
            let d = ((gt[r].x - pr[c].x).powi(2) + (gt[r].y - pr[c].y).powi(2)).sqrt();
            (d <= GATE_BODY_LENGTHS * body[&gt[r].individual]).then_some(d)
        });
        full += gt.iter().filter(|g| g.visible >= FULLY_VISIBLE).count();
        found += pairs
            .iter()
            .filter(|&&(r, _)| gt[r].visible >= FULLY_VISIBLE)
            .count();
        for &(r, c) in &pairs {
            *track_votes
                .entry((pr[c].track.clone(), gt[r].individual.clone()))
                .or_default() += 1;
            if !pr[c].individual.is_empty() {
                *label_votes
                    .entry((pr[c].individual.clone(), gt[r].individual.clone()))
                    .or_default() += 1;
            }
        }
    }

    // Counts: the daemon's visible-fish count against the fish with any pixel in view.
    let counts = read_csv(&out.join("cam0/counts.csv"));
    assert_eq!(counts.len() as u64, frames, "one counts row per frame");
    let (mut exact, mut within1, mut abs_err) = (0u64, 0u64, 0f64);
    for r in &counts {
        let f = num(r, "frame") as u64;
        let truth_n = gt_by_frame[&f].iter().filter(|g| g.visible > 0.0).count() as i64;
        let diff = num(r, "visible_fish") as i64 - truth_n;
        exact += (diff == 0) as u64;
        within1 += (diff.abs() <= 1) as u64;
        abs_err += diff.abs() as f64;
    }

    // Interactions: a logged event matches a true one with the same pair of fish (labels
    // mapped to true fish by majority) whose frame span overlaps it.
    let tracks = majority(&track_votes);
    let labels = majority(&label_votes);
    let who = |name: &str| -> Option<String> {
        match name.strip_prefix("track:") {
            Some(t) => tracks.get(t).cloned(),
            None => labels.get(name).cloned(),
        }
    };
    let pair = |a: String, b: String| if a <= b { (a, b) } else { (b, a) };
    let true_events: Vec<((String, String), u64, u64)> = read_csv(&tank.join("interactions.csv"))
        .iter()
        .map(|r| {
            (
                pair(r["a"].clone(), r["b"].clone()),
                num(r, "start_frame") as u64,
                num(r, "end_frame") as u64,
            )
        })
        .collect();
    type Logged = (Option<(String, String)>, u64, u64);
    let logged: Vec<Logged> = read_csv(&out.join("cam0/interactions.csv"))
        .iter()
        .map(|r| {
            let p = match (who(&r["a"]), who(&r["b"])) {
                (Some(a), Some(b)) if a != b => Some(pair(a, b)),
                _ => None,
            };
            (p, num(r, "start_frame") as u64, num(r, "end_frame") as u64)
        })
        .collect();
    let ev = matching(logged.len(), true_events.len(), |r, c| {
        let (p, s, e) = &logged[r];
        let (tp, ts, te) = &true_events[c];
        let overlap = (*e).min(*te) as i64 - (*s).max(*ts) as i64;
        (p.as_ref() == Some(tp) && overlap >= 0)
            .then(|| (*s as f32 - *ts as f32).abs() + (*e as f32 - *te as f32).abs())
    });
    let f = Figures {
        full,
        found,
        frames,
        exact,
        within1,
        abs_err,
        logged: logged.len(),
        true_events: true_events.len(),
        matched: ev.len(),
    };
    println!(
        "seed {seed}: fully visible fish found {found}/{full} = {:.4}; counts exact in {:.3} of \
         frames, within ±1 in {:.3}; interactions {} logged, {} true, {} matched",
        found as f64 / full.max(1) as f64,
        exact as f64 / frames as f64,
        within1 as f64 / frames as f64,
        f.logged,
        f.true_events,
        f.matched
    );
    f
}

/// Tanks scored (8 fish, side view, 1280×720, 20 s); none is one the detector or tracker
/// were tuned on (seed 7 was). Renders are repeatable (one encoder thread), so a seed gives the
/// same video on every machine.
const SEEDS: [u64; 3] = [21, 22, 23];

#[test]
fn side_view_tank_detection_counts_and_interactions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut all = Figures::default();
    for seed in SEEDS {
        let f = measure(dir.path(), seed);
        assert!(
            f.true_events > 0,
            "seed {seed}: the render has interactions"
        );
        all.full += f.full;
        all.found += f.found;
        all.frames += f.frames;
        all.exact += f.exact;
        all.within1 += f.within1;
        all.abs_err += f.abs_err;
        all.logged += f.logged;
        all.true_events += f.true_events;
        all.matched += f.matched;
    }
    let recall = all.found as f64 / all.full.max(1) as f64;
    let exact = all.exact as f64 / all.frames as f64;
    let within1 = all.within1 as f64 / all.frames as f64;
    let mae = all.abs_err / all.frames as f64;
    let precision = all.matched as f64 / all.logged.max(1) as f64;
    let ev_recall = all.matched as f64 / all.true_events.max(1) as f64;
    println!(
        "side view, 8 fish, seeds {SEEDS:?}, 1280x720, 600 frames each: detected {}/{} fully \
         visible fish = recall {recall:.4} (gate {GATE_BODY_LENGTHS} body lengths)",
        all.found, all.full
    );
    println!(
        "counts (visible_fish vs fish with any pixel in view): exact in {exact:.3} of frames, \
         within ±1 in {within1:.3}, mean abs error {mae:.3}"
    );
    println!(
        "interactions: {} logged, {} true, {} matched: precision {precision:.3}, recall {ev_recall:.3}",
        all.logged, all.true_events, all.matched
    );
    // Issue 3's goals: ≥ 98 % of fully visible fish detected, counts matching the truth.
    // Until 2026-12-07 this test scored seed 21 alone on a render that differed from run to run
    // (x264's sliced threads): 0.966–0.993 over runs, 0.9743 on CI on 2026-12-07. Repeatable
    // renders of seeds 21–26 on 2026-12-07: 0.9762, 0.9965, 0.9978, 0.9967, 0.9820, 0.9907
    // (seed 21's misses are fully visible fish in a four-fish cluster while two tracks sit on
    // one fish); over the 20 tanks of BENCHMARKS.md's identity rounds 0.991 pooled.
    assert!(recall >= 0.98, "recall of fully visible fish {recall:.4}");
    assert!(
        within1 >= 0.99,
        "counts within ±1 in only {within1:.3} of frames"
    );
    assert!(exact >= 0.97, "counts exact in only {exact:.3} of frames");
    assert!(mae <= 0.05, "count mean abs error {mae:.3}");
    // The interaction log names individuals, so it matches the truth only as far as identity
    // does. Seed 21 alone: precision 0.25–0.61 and recall 0.15–0.48 while side-view identity
    // was poor (2026-12-01 to 12-03); 0.914–0.944 / 0.800–0.850 over four runs on 2026-12-06;
    // 0.806 / 0.725 on its repeatable render. Seeds 21–23 pooled on 2026-12-07: 0.882 / 0.677
    // (seed 23: 18 of 34 true events found; many of its events stay near the 1.5 body-length
    // threshold throughout). Floors below the pooled figures.
    assert!(precision >= 0.75, "interaction precision {precision:.3}");
    assert!(ev_recall >= 0.6, "interaction recall {ev_recall:.3}");
}
