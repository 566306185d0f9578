//! Fish appearance: the individuals (name, size, colours, two flank patterns) and the body
//! outline in body coordinates. Pure data and geometry; drawing lives in `raster`.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::pattern::{self, FLANK_U0, FLANK_U1, Flank, FlankPattern};

/// Samples of the body profile lookup table along `u`.
pub const PROFILE_N: usize = 512;

/// Body outline of one individual, in body lengths, tabulated along `u` (snout 0 → tail tip 1).
#[derive(Debug, Clone)]
pub struct BodyProfile {
    /// Dorsal edge of the trunk above the midline (0 where there is no trunk).
    pub top: Vec<f32>,
    /// Ventral edge of the trunk below the midline (positive number).
    pub bottom: Vec<f32>,
    /// Half height of the caudal fin (0 outside it).
    pub caudal: Vec<f32>,
    /// Half height of the fork notch cut into the caudal fin.
    pub notch: Vec<f32>,
    /// Height of the dorsal fin above the dorsal edge (0 outside it).
    pub dorsal_fin: Vec<f32>,
    /// Depth of the anal fin below the ventral edge (0 outside it).
    pub anal_fin: Vec<f32>,
    /// Maximum half depth of the trunk.
    pub depth: f32,
}

fn smoothstep(t: f32) -> f32 {
    let t = t.clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

impl BodyProfile {
    /// A zebrafish-like profile with maximum half depth `depth` (body lengths, ≈0.09–0.11).
    pub fn new(depth: f32) -> Self {
        let n = PROFILE_N;
        let mut p = BodyProfile {
            top: vec![0.0; n],
            bottom: vec![0.0; n],
            caudal: vec![0.0; n],
            notch: vec![0.0; n],
            dorsal_fin: vec![0.0; n],
            anal_fin: vec![0.0; n],
            depth,
        };
        let peduncle = 0.36 * depth;
        for i in 0..n {
            let u = (i as f32 + 0.5) / n as f32;
            let g = if u < 0.3 {
                let t = (0.3 - u) / 0.3;
                depth * (1.0 - t * t).max(0.0).sqrt()
            } else if u <= 0.84 {
                depth + (peduncle - depth) * smoothstep((u - 0.3) / 0.54)
            } else {
                0.0
            };
            p.top[i] = 0.9 * g;
            p.bottom[i] = 1.1 * g;
            if u >= 0.8 {
                let t = (u - 0.8) / 0.2;
                p.caudal[i] = peduncle + (1.15 * depth - peduncle) * t.powf(0.8);
                if u > 0.9 {
                    p.notch[i] = 0.95 * depth * (u - 0.9) / 0.1;
                }
            }
            if (0.47..0.64).contains(&u) {
                p.dorsal_fin[i] = 0.6 * depth * (1.0 - (u - 0.47) / 0.17).powf(0.6);
            }
            if (0.52..0.78).contains(&u) {
                p.anal_fin[i] = 0.7 * depth * (1.0 - (u - 0.52) / 0.26).powf(0.5);
            }
        }
        p
    }

    /// Index of `u` in the tables, or `None` outside the body.
    #[inline]
    pub fn index(u: f32) -> Option<usize> {
        if (0.0..1.0).contains(&u) {
            Some((u * PROFILE_N as f32) as usize)
        } else {
            None
        }
    }
}

/// Part of the body a pixel belongs to (also the crop mask classes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// Not this fish.
    None = 0,
    /// Head, fins or tail (mask value 128).
    Other = 1,
    /// The striped flank region (mask value 255).
    Flank = 2,
}

impl Part {
    /// True when body coordinates fall in the striped flank region of the trunk.
    pub fn of_trunk(u: f32) -> Part {
        if (FLANK_U0..FLANK_U1).contains(&u) {
            Part::Flank
        } else {
            Part::Other
        }
    }
}

/// One simulated individual: its identity and appearance.
#[derive(Debug, Clone)]
pub struct Individual {
    /// 0-based index (the `track` column of the truth).
    pub index: usize,
    /// Name such as `fish-03` (the `individual` column of the truth, folder names of crops).
    pub name: String,
    /// Body length at the front glass of a 1080-line frame, px.
    pub length_1080: f32,
    /// Body outline.
    pub profile: BodyProfile,
    /// Body base colour (yellow-silver), linear 0..255 RGB.
    pub body_rgb: [f32; 3],
    /// Stripe colour (dark blue).
    pub stripe_rgb: [f32; 3],
    /// Flank patterns, indexed by [`Flank::index`].
    pub flanks: [FlankPattern; 2],
    /// Phase of the anal fin stripes.
    pub fin_phase: f32,
}

impl Individual {
    /// The pattern of one flank.
    pub fn flank(&self, f: Flank) -> &FlankPattern {
        &self.flanks[f.index()]
    }
}

/// Name of individual `i` of `n` (`fish-03`; wider when `n` > 100).
pub fn individual_name(i: usize, n: usize) -> String {
    let width = n.saturating_sub(1).to_string().len().max(2);
    format!("fish-{i:0width$}")
}

/// Makes `n` individuals from `seed`; all `2n` flanks differ pairwise by at least
/// [`pattern::min_flank_distance`]`(similarity)`. Deterministic.
pub fn make_individuals(seed: u64, n: usize, similarity: f32) -> Vec<Individual> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(1);
    let mut flanks = pattern::generate_flanks(&mut rng, 2 * n, similarity).into_iter();
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let (Some(l), Some(r)) = (flanks.next(), flanks.next()) else {
            break;
        };
        let warm = rng.random_range(-1.0..1.0f32);
        out.push(Individual {
            index: i,
            name: individual_name(i, n),
            length_1080: rng.random_range(105.0..195.0),
            profile: BodyProfile::new(rng.random_range(0.088..0.11)),
            body_rgb: [214.0 + 10.0 * warm, 198.0 + 6.0 * warm, 140.0 - 15.0 * warm],
            stripe_rgb: [
                rng.random_range(30.0..50.0),
                rng.random_range(40.0..60.0),
                rng.random_range(95.0..125.0),
            ],
            flanks: [l, r],
            fin_phase: rng.random_range(0.0..1.0),
        });
    }
    out
}
