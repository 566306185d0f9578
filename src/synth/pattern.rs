//! Individual skin patterns: zebrafish-like horizontal dark stripes on a light body, with
//! per-individual breaks, waves, spots and bridges, one map per flank (left and right differ).
//!
//! A pattern is a raster in *body coordinates*: `u` runs along the body from the snout (0) to
//! the tail tip (1); `vn` runs across it from the ventral edge (−1) to the dorsal edge (+1),
//! normalised by the local half-depth (so stripes follow the body taper, as on real fish).
//! This module only makes and compares maps; it must never draw into frames.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Raster samples along the body (`u`).
pub const PATTERN_U: usize = 160;
/// Raster samples across the body (`vn`).
pub const PATTERN_V: usize = 48;
/// Start of the striped flank region along the body (behind the operculum).
pub const FLANK_U0: f32 = 0.22;
/// End of the striped flank region along the body (caudal peduncle).
pub const FLANK_U1: f32 = 0.80;

/// Which side of the fish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flank {
    /// The fish's left flank (seen by a side camera when the fish swims to the left).
    Left,
    /// The fish's right flank (seen by a side camera when the fish swims to the right).
    Right,
}

impl Flank {
    /// `L` or `R`, as used in file names and CSV columns.
    pub fn letter(self) -> &'static str {
        match self {
            Flank::Left => "L",
            Flank::Right => "R",
        }
    }

    /// Both flanks, left first.
    pub const BOTH: [Flank; 2] = [Flank::Left, Flank::Right];

    /// Index into per-flank arrays (left 0, right 1).
    pub fn index(self) -> usize {
        match self {
            Flank::Left => 0,
            Flank::Right => 1,
        }
    }
}

/// One flank's stripe darkness map, `PATTERN_V` rows (dorsal row first) × `PATTERN_U` columns
/// (snout first), 0 = light interstripe, 255 = dark stripe.
#[derive(Debug, Clone, PartialEq)]
pub struct FlankPattern {
    /// Row-major darkness samples.
    pub dark: Vec<u8>,
}

impl FlankPattern {
    /// Darkness (0..1) at body coordinates `u` ∈ `[0, 1]`, `vn` ∈ `[−1, 1]` (bilinear; outside
    /// the range it clamps).
    #[inline]
    pub fn sample(&self, u: f32, vn: f32) -> f32 {
        let fu = (u * PATTERN_U as f32 - 0.5).clamp(0.0, (PATTERN_U - 1) as f32);
        let fv = ((1.0 - vn) * 0.5 * PATTERN_V as f32 - 0.5).clamp(0.0, (PATTERN_V - 1) as f32);
        let (iu, iv) = (fu as usize, fv as usize);
        let (tu, tv) = (fu - iu as f32, fv - iv as f32);
        let iu1 = (iu + 1).min(PATTERN_U - 1);
        let iv1 = (iv + 1).min(PATTERN_V - 1);
        let d = &self.dark;
        let at = |r: usize, c: usize| f32::from(d[r * PATTERN_U + c]);
        let top = at(iv, iu) + (at(iv, iu1) - at(iv, iu)) * tu;
        let bot = at(iv1, iu) + (at(iv1, iu1) - at(iv1, iu)) * tu;
        (top + (bot - top) * tv) * (1.0 / 255.0)
    }

    /// The stripe mask (darkness ≥ ½) over the flank region `FLANK_U0..FLANK_U1`.
    pub fn flank_mask(&self) -> Vec<bool> {
        let u0 = (FLANK_U0 * PATTERN_U as f32) as usize;
        let u1 = (FLANK_U1 * PATTERN_U as f32) as usize;
        let mut m = Vec::with_capacity((u1 - u0) * PATTERN_V);
        for row in self.dark.chunks_exact(PATTERN_U) {
            m.extend(row[u0..u1].iter().map(|&d| d >= 128));
        }
        m
    }

    /// Pattern distance to `other`: 1 − IoU of the stripe masks over the flank region
    /// (0 = identical stripes, 1 = no stripe pixel in common).
    pub fn distance(&self, other: &FlankPattern) -> f32 {
        let (a, b) = (self.flank_mask(), other.flank_mask());
        let mut inter = 0u32;
        let mut union = 0u32;
        for (x, y) in a.iter().zip(b.iter()) {
            inter += u32::from(*x && *y);
            union += u32::from(*x || *y);
        }
        if union == 0 {
            0.0
        } else {
            1.0 - inter as f32 / union as f32
        }
    }
}

/// The guaranteed minimum pattern distance ([`FlankPattern::distance`]) between any two flanks
/// (of different fish, or the two flanks of one fish) at a given similarity: generation
/// rejects and redraws a flank that comes closer than this to any earlier one.
pub fn min_flank_distance(similarity: f32) -> f32 {
    let s = similarity.clamp(0.0, 1.0);
    0.08 + 0.25 * (1.0 - s)
}

#[derive(Debug, Clone)]
struct Stripe {
    base: f32,
    half_width: f32,
    waves: [(f32, f32, f32); 2],
    start_u: f32,
    gaps: Vec<(f32, f32)>,
    /// Spotted segment: (u0, u1, period, duty, phase).
    spotty: Option<(f32, f32, f32, f32, f32)>,
}

impl Stripe {
    fn centre(&self, u: f32) -> f32 {
        let mut c = self.base;
        for (a, f, p) in self.waves {
            c += a * (std::f32::consts::TAU * f * u + p).sin();
        }
        c
    }
}

/// (centre vn, half width) of the species template, dorsal first: 2D, 1D, 1V, 2V, 3V.
const TEMPLATE: [(f32, f32, f32); 5] = [
    (0.62, 0.08, 0.32),
    (0.28, 0.12, 0.22),
    (-0.22, 0.13, 0.22),
    (-0.58, 0.11, 0.26),
    (-0.86, 0.07, 0.34),
];

fn normal(rng: &mut ChaCha8Rng) -> f32 {
    // Box–Muller; deterministic for a given RNG state.
    let u1: f32 = rng.random_range(1e-7f32..1.0);
    let u2: f32 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

fn poisson(rng: &mut ChaCha8Rng, mean: f32) -> u32 {
    let l = (-mean).exp();
    let mut k = 0;
    let mut p = 1.0f32;
    loop {
        p *= rng.random::<f32>();
        if p <= l || k > 50 {
            return k;
        }
        k += 1;
    }
}

fn smooth_edge(dist: f32, half_width: f32, aa: f32) -> f32 {
    ((half_width - dist) / aa + 0.5).clamp(0.0, 1.0)
}

/// Draws one flank pattern. `variation` = 1 − similarity (0 = nearly the species template,
/// 1 = very individual); `boost` ≥ 1 widens the variation when a redraw was needed.
pub fn generate_flank(rng: &mut ChaCha8Rng, similarity: f32, boost: f32) -> FlankPattern {
    let v = (1.0 - similarity.clamp(0.0, 1.0)).max(0.0);
    let a = (0.15 + 0.85 * v) * boost;
    let mut stripes: Vec<Stripe> = TEMPLATE
        .iter()
        .map(|&(c, w, s)| {
            let mut st = Stripe {
                base: c + 0.035 * a * normal(rng),
                half_width: w * (1.0 + 0.15 * a * normal(rng)).clamp(0.6, 1.5),
                waves: [
                    (
                        0.06 * a * rng.random::<f32>(),
                        rng.random_range(1.5..4.0),
                        rng.random_range(0.0..6.3),
                    ),
                    (
                        0.03 * a * rng.random::<f32>(),
                        rng.random_range(4.0..9.0),
                        rng.random_range(0.0..6.3),
                    ),
                ],
                start_u: s + 0.06 * a * rng.random_range(-0.6..1.0f32),
                gaps: Vec::new(),
                spotty: None,
            };
            let n_gaps = poisson(rng, 0.15 + 0.6 * a);
            for _ in 0..n_gaps {
                let c = rng.random_range(st.start_u + 0.04..0.95);
                let l = rng.random_range(0.012..0.05f32);
                st.gaps.push((c - l / 2.0, c + l / 2.0));
            }
            st
        })
        .collect();
    // Ventral stripes tend to break into spots; the 3V stripe always partly.
    for (k, p) in [(3usize, 0.25 + 0.5 * a.min(1.0)), (4, 1.0)] {
        if rng.random::<f32>() < p {
            let u0 = rng.random_range(0.25..0.6f32);
            let u1 = rng.random_range(u0 + 0.15..1.0f32).min(1.0);
            let st = &mut stripes[k];
            st.spotty = Some((
                u0,
                u1,
                rng.random_range(0.025..0.06),
                rng.random_range(0.35..0.7),
                rng.random_range(0.0..1.0),
            ));
        }
    }
    // Bridges between neighbouring stripes: (u, upper stripe index, half width in u, slant).
    let n_bridges = poisson(rng, 0.3 + 1.4 * a);
    let bridges: Vec<(f32, usize, f32, f32)> = (0..n_bridges)
        .map(|_| {
            (
                rng.random_range(0.3..0.9f32),
                rng.random_range(0..stripes.len() - 1),
                rng.random_range(0.006..0.016f32),
                rng.random_range(-0.04..0.04f32),
            )
        })
        .collect();
    // Isolated spots: (u, vn, radius in u).
    let n_spots = poisson(rng, 0.3 + 1.5 * a);
    let spots: Vec<(f32, f32, f32)> = (0..n_spots)
        .map(|_| {
            (
                rng.random_range(0.25..0.9f32),
                rng.random_range(-0.95..0.8f32),
                rng.random_range(0.006..0.014f32),
            )
        })
        .collect();

    let mut dark = vec![0u8; PATTERN_U * PATTERN_V];
    let aa = 2.0 / PATTERN_V as f32;
    for iv in 0..PATTERN_V {
        let vn = 1.0 - (iv as f32 + 0.5) / PATTERN_V as f32 * 2.0;
        for iu in 0..PATTERN_U {
            let u = (iu as f32 + 0.5) / PATTERN_U as f32;
            let mut d = 0.0f32;
            for st in &stripes {
                if u < st.start_u || st.gaps.iter().any(|&(g0, g1)| u >= g0 && u <= g1) {
                    continue;
                }
                let mut val = smooth_edge((vn - st.centre(u)).abs(), st.half_width, aa);
                if let Some((s0, s1, period, duty, phase)) = st.spotty
                    && u >= s0
                    && u <= s1
                {
                    let ph = (u / period + phase).fract();
                    // Round spots: distance inside the period cell, scaled to the stripe width.
                    let du = (ph - duty / 2.0).abs() / (duty / 2.0);
                    let dv = (vn - st.centre(u)).abs() / st.half_width;
                    val = if du * du + dv * dv <= 1.0 { 1.0 } else { 0.0 };
                }
                // Stripes fade in at their anterior start.
                val *= ((u - st.start_u) / 0.02).clamp(0.0, 1.0);
                d = d.max(val);
            }
            for &(bu, k, hw, slant) in &bridges {
                let top = stripes[k].centre(u);
                let bot = stripes[k + 1].centre(u);
                if vn <= top && vn >= bot {
                    let t = (top - vn) / (top - bot).max(1e-3);
                    let cu = bu + slant * (t - 0.5);
                    d = d.max(smooth_edge((u - cu).abs(), hw, 1.0 / PATTERN_U as f32));
                }
            }
            for &(su, sv, r) in &spots {
                // vn spans about 0.2 body lengths: 1 unit of u ≈ 10 units of vn.
                let du = (u - su) / r;
                let dv = (vn - sv) / (r * 10.0);
                if du * du + dv * dv <= 1.0 {
                    d = 1.0;
                }
            }
            dark[iv * PATTERN_U + iu] = (d * 255.0).round() as u8;
        }
    }
    FlankPattern { dark }
}

/// Draws `count` flank patterns whose pairwise distances are all ≥ [`min_flank_distance`].
/// A flank that comes too close to an earlier one is redrawn (with growing variation).
pub fn generate_flanks(rng: &mut ChaCha8Rng, count: usize, similarity: f32) -> Vec<FlankPattern> {
    let min_d = min_flank_distance(similarity);
    let mut out: Vec<FlankPattern> = Vec::with_capacity(count);
    for _ in 0..count {
        let mut boost = 1.0;
        loop {
            let f = generate_flank(rng, similarity, boost);
            if out.iter().all(|o| o.distance(&f) >= min_d) {
                out.push(f);
                break;
            }
            boost = (boost * 1.1).min(4.0);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn flanks_keep_the_stated_minimum_distance_and_similarity_matters() {
        let mut stats = Vec::new();
        for s in [0.0f32, 0.3, 0.9] {
            let mut rng = ChaCha8Rng::seed_from_u64(7);
            let flanks = generate_flanks(&mut rng, 24, s);
            let mut min_d = f32::MAX;
            let mut sum = 0.0;
            let mut n = 0;
            for i in 0..flanks.len() {
                for j in i + 1..flanks.len() {
                    let d = flanks[i].distance(&flanks[j]);
                    min_d = min_d.min(d);
                    sum += d;
                    n += 1;
                }
            }
            println!(
                "similarity {s}: min distance {min_d:.3}, mean {:.3}",
                sum / n as f32
            );
            assert!(min_d >= min_flank_distance(s), "similarity {s}: {min_d}");
            stats.push(sum / n as f32);
        }
        assert!(
            stats[0] > stats[1] && stats[1] > stats[2],
            "mean distances {stats:?}"
        );
    }

    #[test]
    fn patterns_have_stripes_and_interstripes() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let f = generate_flank(&mut rng, 0.3, 1.0);
        let m = f.flank_mask();
        let frac = m.iter().filter(|&&b| b).count() as f32 / m.len() as f32;
        assert!((0.2..0.7).contains(&frac), "stripe fraction {frac}");
        // The central interstripe (X0, vn ≈ 0) is mostly light, stripe 1D (vn ≈ 0.28) mostly dark.
        let light: f32 = (40..120)
            .map(|i| f.sample(i as f32 / 160.0, 0.03))
            .sum::<f32>()
            / 80.0;
        let dark: f32 = (40..120)
            .map(|i| f.sample(i as f32 / 160.0, 0.28))
            .sum::<f32>()
            / 80.0;
        assert!(light < 0.4 && dark > 0.5, "light {light} dark {dark}");
    }
}
