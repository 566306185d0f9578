//! The gallery: prototype embeddings of each individual, tagged with view, time, quality and
//! source, searchable by cosine k-NN through `hnsw_rs`.
//!
//! `hnsw_rs` cannot delete, so removed prototypes become tombstones (filtered out of searches) and
//! the index is rebuilt from the live prototypes when tombstones exceed a fraction. The side table
//! (`prototypes`) is the truth; the index is derived and never persisted. Ownership (which
//! individual a prototype belongs to) lives only in the side table, so merges need no re-index.
//! Must never read pixels or decide assignments.

use hnsw_rs::prelude::{DistCosine, Hnsw};
use serde::{Deserialize, Serialize};

/// Which side of the fish the camera saw, from the direction of motion (a proxy for the flank in
/// side views: zebrafish flanks differ).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum View {
    /// Moving towards +x (image right).
    FacingRight,
    /// Moving towards −x.
    FacingLeft,
    /// Not known (slow, vertical motion, or enrolled photo).
    #[default]
    Unknown,
}

impl View {
    /// View from a heading in radians (image coordinates): |cos| < 0.3 is `Unknown`.
    pub fn from_heading(heading: f32) -> View {
        if !heading.is_finite() {
            return View::Unknown;
        }
        let c = heading.cos();
        if c > 0.3 {
            View::FacingRight
        } else if c < -0.3 {
            View::FacingLeft
        } else {
            View::Unknown
        }
    }

    /// The two known sides, in the order [`View::side`] numbers them.
    pub const SIDES: [View; 2] = [View::FacingRight, View::FacingLeft];

    /// Index of a known side in [`View::SIDES`] (`None` for `Unknown`).
    pub fn side(self) -> Option<usize> {
        View::SIDES.iter().position(|&v| v == self)
    }

    /// True when a prototype seen from `other` can be compared with an embedding seen from
    /// `self`: the same side, or either side unknown.
    pub fn compatible(self, other: View) -> bool {
        self == View::Unknown || other == View::Unknown || self == other
    }
}

/// Where a prototype came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// From a photo given to `finprint enroll` (kept in preference when pruning).
    Enrolled,
    /// Learnt from a confidently identified tracklet.
    Tracked,
}

/// One stored embedding.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Prototype {
    /// Individual it counts for now (changes on merge / undo).
    pub owner: String,
    /// Individual it was recorded for (restores ownership on undo of a merge).
    pub origin: String,
    /// View when recorded.
    pub view: View,
    /// Stream time when recorded, s.
    pub t: f64,
    /// Wall-clock time when recorded, Unix seconds.
    pub wall: i64,
    /// Crop quality in [0, 1].
    pub quality: f32,
    /// Where it came from.
    pub source: Source,
    /// L2-normalised embedding.
    pub vector: Vec<f32>,
    /// False for tombstones (removed, still in the index until the next rebuild).
    #[serde(skip, default = "yes")]
    pub alive: bool,
}

impl Prototype {
    /// A prototype learnt from a tracked crop of `owner`, recorded now.
    pub fn tracked(owner: &str, view: View, t: f64, quality: f32, vector: Vec<f32>) -> Prototype {
        Prototype {
            owner: owner.to_string(),
            origin: owner.to_string(),
            view,
            t,
            wall: chrono::Utc::now().timestamp(),
            quality,
            source: Source::Tracked,
            vector,
            alive: true,
        }
    }
}

fn yes() -> bool {
    true
}

/// A nearest prototype.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// Prototype index in the side table.
    pub id: usize,
    /// Owner individual.
    pub individual: String,
    /// Cosine similarity (1 − cosine distance).
    pub similarity: f32,
}

const HNSW_M: usize = 16;
const HNSW_LAYERS: usize = 16;
const HNSW_EF_C: usize = 200;
/// Prototypes whose similarities are averaged when an embedding is scored against an
/// individual (see [`Gallery::similarity_in_view`]).
const TOP_K: usize = 3;

/// Cosine k-NN gallery with tombstones and rebuild.
pub struct Gallery {
    dim: usize,
    prototypes: Vec<Prototype>,
    index: Hnsw<'static, f32, DistCosine>,
    dead: usize,
    /// Rebuild when tombstones exceed this fraction of indexed points.
    rebuild_fraction: f32,
    rebuilds: u64,
    /// Bumped by every change of the live prototypes or their owners (see
    /// [`Gallery::generation`]).
    generation: u64,
}

impl std::fmt::Debug for Gallery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gallery")
            .field("dim", &self.dim)
            .field("alive", &self.len())
            .field("dead", &self.dead)
            .finish()
    }
}

fn new_index(capacity: usize) -> Hnsw<'static, f32, DistCosine> {
    Hnsw::new(
        HNSW_M,
        capacity.max(1024),
        HNSW_LAYERS,
        HNSW_EF_C,
        DistCosine {},
    )
}

/// Cosine similarity of two L2-normalised vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

impl Gallery {
    /// An empty gallery for `dim`-long embeddings.
    pub fn new(dim: usize, rebuild_fraction: f32) -> Gallery {
        Gallery {
            dim,
            prototypes: Vec::new(),
            index: new_index(0),
            dead: 0,
            rebuild_fraction,
            rebuilds: 0,
            generation: 0,
        }
    }

    /// A gallery holding `prototypes` (all alive), index built.
    pub fn from_prototypes(
        dim: usize,
        rebuild_fraction: f32,
        prototypes: Vec<Prototype>,
    ) -> Gallery {
        let mut g = Gallery::new(dim, rebuild_fraction);
        g.prototypes = prototypes
            .into_iter()
            .filter(|p| p.vector.len() == dim)
            .collect();
        for p in &mut g.prototypes {
            p.alive = true;
        }
        g.reindex();
        g
    }

    fn reindex(&mut self) {
        self.index = new_index(self.prototypes.len() * 2);
        for (i, p) in self.prototypes.iter().enumerate() {
            self.index.insert((&p.vector, i));
        }
        self.dead = 0;
    }

    /// Embedding length.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of live prototypes.
    pub fn len(&self) -> usize {
        self.prototypes.len() - self.dead
    }

    /// True when no live prototype exists.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of tombstones awaiting a rebuild.
    pub fn tombstones(&self) -> usize {
        self.dead
    }

    /// Points inside the HNSW index (live + tombstones).
    pub fn indexed(&self) -> usize {
        self.index.get_nb_point()
    }

    /// How many rebuilds happened.
    pub fn rebuilds(&self) -> u64 {
        self.rebuilds
    }

    /// A number that changes whenever a live prototype is added or removed or changes owner:
    /// similarities computed at one generation stay valid while it does not change.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Goes on counting generations from `g`: a gallery loaded from what a stopped run held
    /// ([`super::registry::TankState::from_file`]) takes up that run's count, so embeddings scored
    /// against it then stay valid.
    pub fn go_on_from_generation(&mut self, g: u64) {
        self.generation = g;
    }

    /// Live prototypes.
    pub fn live(&self) -> impl Iterator<Item = (usize, &Prototype)> {
        self.prototypes.iter().enumerate().filter(|(_, p)| p.alive)
    }

    /// Live prototypes of one individual (by owner).
    pub fn of(&self, individual: &str) -> impl Iterator<Item = (usize, &Prototype)> {
        self.live().filter(move |(_, p)| p.owner == individual)
    }

    /// Adds a prototype (vector must be L2-normalised, `dim` long, finite); returns its id or
    /// `None` when the vector is unusable.
    pub fn add(&mut self, p: Prototype) -> Option<usize> {
        if p.vector.len() != self.dim || p.vector.iter().any(|x| !x.is_finite()) {
            return None;
        }
        let id = self.prototypes.len();
        self.index.insert((&p.vector, id));
        self.prototypes.push(Prototype { alive: true, ..p });
        self.generation += 1;
        Some(id)
    }

    /// Tombstones a prototype; rebuilds the index when tombstones exceed the fraction.
    pub fn remove(&mut self, id: usize) {
        if let Some(p) = self.prototypes.get_mut(id)
            && p.alive
        {
            p.alive = false;
            self.dead += 1;
            self.generation += 1;
        }
        self.maybe_rebuild();
    }

    /// Rebuilds when tombstones exceed `rebuild_fraction` of indexed points (and at least 8).
    pub fn maybe_rebuild(&mut self) -> bool {
        let n = self.prototypes.len().max(1);
        if self.dead >= 8 && self.dead as f32 > self.rebuild_fraction * n as f32 {
            self.rebuild();
            return true;
        }
        false
    }

    /// Drops tombstones and rebuilds the index from live prototypes (ids change).
    pub fn rebuild(&mut self) {
        self.prototypes.retain(|p| p.alive);
        self.reindex();
        self.rebuilds += 1;
    }

    /// Changes the owner of every live prototype matching `pred`; returns how many.
    pub fn reassign(&mut self, mut pred: impl FnMut(&Prototype) -> bool, owner: &str) -> usize {
        let mut n = 0;
        for p in self.prototypes.iter_mut().filter(|p| p.alive) {
            if pred(p) {
                p.owner = owner.to_string();
                n += 1;
            }
        }
        if n > 0 {
            self.generation += 1;
        }
        n
    }

    /// The `k` nearest live prototypes to `q` (normalised), best first.
    pub fn search(&self, q: &[f32], k: usize) -> Vec<Hit> {
        if q.len() != self.dim || self.is_empty() || k == 0 || q.iter().any(|x| !x.is_finite()) {
            return Vec::new();
        }
        let protos = &self.prototypes;
        let filter = |id: &usize| protos.get(*id).is_some_and(|p| p.alive);
        let ef = (k * 4).max(64);
        let mut hits: Vec<Hit> = self
            .index
            .search_filter(q, k, ef, Some(&filter))
            .into_iter()
            .filter_map(|n| {
                let p = protos.get(n.d_id)?;
                p.alive.then(|| Hit {
                    id: n.d_id,
                    individual: p.owner.clone(),
                    similarity: 1.0 - n.distance,
                })
            })
            .collect();
        hits.sort_by(|a, b| b.similarity.total_cmp(&a.similarity));
        hits
    }

    /// Best similarity per individual among the `k` nearest, best first.
    pub fn best_per_individual(&self, q: &[f32], k: usize) -> Vec<(String, f32)> {
        let mut out: Vec<(String, f32)> = Vec::new();
        for h in self.search(q, k) {
            if !out.iter().any(|(i, _)| *i == h.individual) {
                out.push((h.individual, h.similarity));
            }
        }
        out
    }

    /// Similarity of `v`, seen from `view`, to `individual`: the mean of its best `TOP_K`
    /// similarities to live prototypes seen from a compatible side (see [`View::compatible`]).
    /// `None` when it has no such prototype: that side of the fish was never seen, so the
    /// embedding says nothing about it.
    pub fn similarity_in_view(&self, individual: &str, v: &[f32], view: View) -> Option<f32> {
        // Mean of the best TOP_K similarities: one stray prototype (taught by a track that
        // had swapped fish) does not make an individual match another fish, and the best of
        // many prototypes of other fish scores lower than with the single best.
        let mut top = [f32::NEG_INFINITY; TOP_K];
        for (_, p) in self.of(individual).filter(|(_, p)| view.compatible(p.view)) {
            let s = cosine(&p.vector, v);
            if let Some(k) = (0..TOP_K).min_by(|&a, &b| top[a].total_cmp(&top[b]))
                && s > top[k]
            {
                top[k] = s;
            }
        }
        let (sum, n) = top
            .iter()
            .filter(|s| s.is_finite())
            .fold((0f32, 0usize), |(sum, n), s| (sum + s, n + 1));
        (n > 0).then(|| sum / n as f32)
    }

    /// The sides (`FacingRight`, `FacingLeft`) from which `individual` has live prototypes;
    /// unknown-view prototypes are not counted.
    pub fn sides_of(&self, individual: &str) -> (bool, bool) {
        self.of(individual)
            .fold((false, false), |(r, l), (_, p)| match p.view {
                View::FacingRight => (true, l),
                View::FacingLeft => (r, true),
                View::Unknown => (r, l),
            })
    }

    /// Highest similarity of `v` to a live prototype of `individual` (brute force over that
    /// individual's prototypes; `None` when it has none).
    pub fn max_similarity_to(&self, individual: &str, v: &[f32]) -> Option<f32> {
        self.of(individual)
            .map(|(_, p)| cosine(&p.vector, v))
            .max_by(f32::total_cmp)
    }

    /// Keeps at most `max` live prototypes for `individual`: removes the most redundant one
    /// (highest similarity to another prototype of the same individual and view), preferring to
    /// remove tracked over enrolled prototypes and older over newer ones. Returns removed count.
    ///
    /// Age is the order in which the prototypes were added (kept across saves and rebuilds),
    /// not their wall-clock stamps: a replay runs faster than the recording, and which of its
    /// prototypes shared a clock second changed from run to run, so the same recording kept
    /// other prototypes and could be labelled otherwise (BENCHMARKS.md round 27).
    pub fn prune(&mut self, individual: &str, max: usize) -> usize {
        let mut removed = 0;
        loop {
            // In the order they were added.
            let ids: Vec<usize> = self.of(individual).map(|(i, _)| i).collect();
            if ids.len() <= max.max(1) {
                break;
            }
            let tracked_exist = ids
                .iter()
                .any(|&i| self.prototypes[i].source == Source::Tracked);
            let last = (ids.len() - 1) as f32;
            let mut victim = None;
            let mut worst = f32::NEG_INFINITY;
            for (rank, &i) in ids.iter().enumerate() {
                let p = &self.prototypes[i];
                if tracked_exist && p.source == Source::Enrolled {
                    continue;
                }
                let redundancy = ids
                    .iter()
                    .filter(|&&j| j != i && self.prototypes[j].view == p.view)
                    .map(|&j| cosine(&self.prototypes[j].vector, &p.vector))
                    .fold(-1.0f32, f32::max);
                let recency = rank as f32 / last;
                let score = redundancy - 0.05 * recency;
                if score > worst {
                    worst = score;
                    victim = Some(i);
                }
            }
            let Some(v) = victim else { break };
            if let Some(p) = self.prototypes.get_mut(v) {
                p.alive = false;
                self.dead += 1;
                removed += 1;
            }
        }
        if removed > 0 {
            self.generation += 1;
            self.maybe_rebuild();
        }
        removed
    }

    /// Live prototypes, cloned (for saving).
    pub fn snapshot(&self) -> Vec<Prototype> {
        self.live().map(|(_, p)| p.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn unit(rng: &mut impl Rng, dim: usize) -> Vec<f32> {
        let mut v: Vec<f32> = (0..dim).map(|_| rng.random_range(-1.0..1.0)).collect();
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= n);
        v
    }

    fn proto(owner: &str, v: Vec<f32>, wall: i64) -> Prototype {
        Prototype {
            owner: owner.into(),
            origin: owner.into(),
            view: View::Unknown,
            t: 0.0,
            wall,
            quality: 1.0,
            source: Source::Tracked,
            vector: v,
            alive: true,
        }
    }

    #[test]
    fn tombstones_are_filtered_and_rebuild_compacts() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let mut g = Gallery::new(16, 0.25);
        let vs: Vec<Vec<f32>> = (0..40).map(|_| unit(&mut rng, 16)).collect();
        for (i, v) in vs.iter().enumerate() {
            g.add(proto(&format!("f{}", i % 4), v.clone(), i as i64))
                .unwrap();
        }
        assert_eq!(g.len(), 40);
        // Exact self match first.
        let hits = g.search(&vs[7], 3);
        assert_eq!(hits[0].id, 7);
        assert!((hits[0].similarity - 1.0).abs() < 1e-4);
        // Remove it: the tombstone is never returned.
        g.remove(7);
        assert_eq!(g.tombstones(), 1);
        assert!(g.search(&vs[7], 10).iter().all(|h| h.id != 7));
        // Remove enough to exceed 25 %: rebuild drops them from the index.
        for i in 10..20 {
            g.remove(i);
        }
        assert!(g.rebuilds() >= 1, "no rebuild after 11 of 40 removed");
        assert_eq!(g.tombstones(), 0);
        assert_eq!(g.indexed(), 29);
        assert_eq!(g.len(), 29);
        for v in vs.iter().skip(10).take(10) {
            let h = g.search(v, 1);
            assert!(
                h[0].similarity < 0.999,
                "a removed vector is still found after rebuild"
            );
        }
        let h = g.search(&vs[25], 1);
        assert!(
            (h[0].similarity - 1.0).abs() < 1e-4,
            "a live vector is lost after rebuild"
        );
    }

    #[test]
    fn generation_changes_with_every_change_of_live_prototypes_only() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let mut g = Gallery::new(16, 0.25);
        let mut last = g.generation();
        let mut changed = |g: &Gallery| {
            let c = g.generation() != last;
            last = g.generation();
            c
        };
        g.add(proto("a", unit(&mut rng, 16), 0)).unwrap();
        assert!(changed(&g), "add");
        assert!(g.add(proto("a", vec![f32::NAN; 16], 0)).is_none());
        assert!(!changed(&g), "a refused vector");
        g.add(proto("a", unit(&mut rng, 16), 1)).unwrap();
        let _ = changed(&g);
        let _ = g.search(&unit(&mut rng, 16), 2);
        let _ = g.similarity_in_view("a", &unit(&mut rng, 16), View::Unknown);
        assert!(!changed(&g), "reads");
        assert_eq!(g.reassign(|p| p.owner == "a", "b"), 2);
        assert!(changed(&g), "reassign");
        assert_eq!(g.reassign(|p| p.owner == "nobody", "b"), 0);
        assert!(!changed(&g), "a reassign that moved nothing");
        g.remove(0);
        assert!(changed(&g), "remove");
        g.remove(0);
        assert!(!changed(&g), "removing a tombstone again");
        for i in 0..4 {
            g.add(proto("b", unit(&mut rng, 16), 10 + i)).unwrap();
        }
        let _ = changed(&g);
        assert!(g.prune("b", 2) > 0);
        assert!(changed(&g), "prune");
    }

    #[test]
    fn prune_bounds_size_and_drops_redundant_first() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
        let base = unit(&mut rng, 16);
        let mut g = Gallery::new(16, 0.25);
        // 10 near-duplicates of `base` and 5 distinct vectors.
        for i in 0..10 {
            let mut v: Vec<f32> = base
                .iter()
                .map(|x| x + rng.random_range(-0.01..0.01))
                .collect();
            let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.iter_mut().for_each(|x| *x /= n);
            g.add(proto("a", v, i)).unwrap();
        }
        let distinct: Vec<Vec<f32>> = (0..5).map(|_| unit(&mut rng, 16)).collect();
        for (i, v) in distinct.iter().enumerate() {
            g.add(proto("a", v.clone(), 100 + i as i64)).unwrap();
        }
        g.add(proto("b", unit(&mut rng, 16), 0)).unwrap();
        let removed = g.prune("a", 6);
        assert_eq!(removed, 9);
        assert_eq!(g.of("a").count(), 6);
        assert_eq!(
            g.of("b").count(),
            1,
            "pruning one individual touched another"
        );
        // All distinct (diverse) prototypes survive; one of the duplicates remains.
        for v in &distinct {
            assert!(g.max_similarity_to("a", v).unwrap() > 0.9999);
        }
        assert!(g.max_similarity_to("a", &base).unwrap() > 0.99);
    }

    #[test]
    fn pruning_goes_by_the_order_prototypes_came_in_not_their_clock_stamps() {
        // Three equally redundant prototypes: the oldest goes, whatever their wall-clock
        // stamps say (a replay stamps many in one second, and which ones changed per run).
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let base = unit(&mut rng, 16);
        let other = unit(&mut rng, 16);
        let kept = |walls: [i64; 3]| {
            let mut g = Gallery::new(16, 0.25);
            for (k, w) in walls.into_iter().enumerate() {
                let mut v = base.clone();
                v[k] += 0.001;
                let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                v.iter_mut().for_each(|x| *x /= n);
                g.add(proto("a", v, w)).unwrap();
            }
            g.add(proto("a", other.clone(), walls[0])).unwrap();
            assert_eq!(g.prune("a", 3), 1);
            g.of("a").map(|(i, _)| i).collect::<Vec<usize>>()
        };
        let by_order = kept([5, 5, 5]);
        assert!(!by_order.contains(&0), "the first added went: {by_order:?}");
        assert_eq!(kept([7, 5, 6]), by_order, "clock stamps do not decide");
        assert_eq!(kept([5, 6, 6]), by_order, "clock stamps do not decide");
    }

    #[test]
    fn nan_and_wrong_dim_are_refused() {
        let mut g = Gallery::new(4, 0.25);
        assert!(
            g.add(proto("a", vec![f32::NAN, 0.0, 0.0, 1.0], 0))
                .is_none()
        );
        assert!(g.add(proto("a", vec![1.0, 0.0], 0)).is_none());
        assert!(g.search(&[1.0, 0.0], 3).is_empty());
        assert!(g.search(&[f32::NAN, 0.0, 0.0, 0.0], 3).is_empty());
    }

    #[test]
    fn view_from_heading() {
        assert_eq!(View::from_heading(0.0), View::FacingRight);
        assert_eq!(View::from_heading(std::f32::consts::PI), View::FacingLeft);
        assert_eq!(
            View::from_heading(std::f32::consts::FRAC_PI_2),
            View::Unknown
        );
    }
}
