//! The static tank: background plate (water gradient, surface, gravel, plants, tank edges or
//! the arena floor in top view), front occluders, the sensor noise tile and the lighting drift.
//! Built once per render from the seed; must never hold fish.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::raster::View;

/// Side of the square sensor-noise tile (power of two).
pub const NOISE_SIDE: usize = 512;

/// The static parts of a tank image.
#[derive(Debug, Clone)]
pub struct Plate {
    /// Width, px.
    pub width: usize,
    /// Height, px.
    pub height: usize,
    /// Background RGB (plants in front already painted in).
    pub rgb: Vec<u8>,
    /// Opacity of things in front of every fish (front plants), 0..255 per pixel.
    pub front: Vec<u8>,
    /// Region fish may swim in (front plane, px): x0, y0, x1, y1.
    pub swim: [f32; 4],
    /// Sensor noise tile, `NOISE_SIDE²` values.
    pub noise: Vec<i8>,
    /// The same tile with each value repeated for R, G and B (for the background pass).
    pub noise3: Vec<i8>,
}

fn gauss(rng: &mut ChaCha8Rng) -> f32 {
    let u1: f32 = rng.random_range(1e-7f32..1.0);
    let u2: f32 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

fn blend(rgb: &mut [u8], idx: usize, c: [f32; 3], a: f32) {
    for ch in 0..3 {
        let o = f32::from(rgb[idx * 3 + ch]);
        rgb[idx * 3 + ch] = (o + (c[ch] - o) * a).round().clamp(0.0, 255.0) as u8;
    }
}

/// Fills an ellipse (centre, half axes, rotation) with colour `c` and opacity `a`; when
/// `front` is given, also raises the occluder alpha there.
#[allow(clippy::too_many_arguments)]
fn ellipse(
    rgb: &mut [u8],
    mut front: Option<&mut [u8]>,
    w: usize,
    h: usize,
    (cx, cy): (f32, f32),
    (rx, ry): (f32, f32),
    angle: f32,
    c: [f32; 3],
    a: f32,
) {
    let r = rx.max(ry) + 1.0;
    let (s, co) = angle.sin_cos();
    let x0 = ((cx - r).floor().max(0.0)) as usize;
    let x1 = ((cx + r).ceil().max(0.0) as usize).min(w);
    let y0 = ((cy - r).floor().max(0.0)) as usize;
    let y1 = ((cy + r).ceil().max(0.0) as usize).min(h);
    for y in y0..y1 {
        for x in x0..x1 {
            let dx = x as f32 + 0.5 - cx;
            let dy = y as f32 + 0.5 - cy;
            let p = (dx * co + dy * s) / rx.max(0.3);
            let q = (-dx * s + dy * co) / ry.max(0.3);
            let d = (p * p + q * q).sqrt();
            // Approximate edge distance in px for antialiasing.
            let edge = (1.0 - d) * rx.min(ry).max(0.3);
            let cov = (edge + 0.5).clamp(0.0, 1.0);
            if cov <= 0.0 {
                continue;
            }
            let idx = y * w + x;
            blend(rgb, idx, c, a * cov);
            if let Some(f) = front.as_deref_mut() {
                let v = (a * cov * 255.0).round() as u8;
                f[idx] = f[idx].max(v);
            }
        }
    }
}

/// Draws one plant: a swaying stem from `(x, base)` up by `height` px, with leaves.
#[allow(clippy::too_many_arguments)]
fn plant(
    rng: &mut ChaCha8Rng,
    rgb: &mut [u8],
    mut front: Option<&mut [u8]>,
    w: usize,
    h: usize,
    x: f32,
    base: f32,
    height: f32,
    scale: f32,
    dark: f32,
) {
    let green = [40.0 * dark, 110.0 * dark, 45.0 * dark];
    let bend = rng.random_range(-0.25..0.25f32);
    let steps = (height / (3.0 * scale)).max(4.0) as usize;
    let mut leaf_side = 1.0;
    for k in 0..steps {
        let t = k as f32 / steps as f32;
        let sx = x + bend * height * t * t;
        let sy = base - height * t;
        ellipse(
            rgb,
            front.as_deref_mut(),
            w,
            h,
            (sx, sy),
            (2.2 * scale, 2.2 * scale),
            0.0,
            green,
            1.0,
        );
        if k % 6 == 3 {
            let len = rng.random_range(14.0..30.0) * scale * (1.0 - 0.5 * t);
            let ang = -0.6 * leaf_side + rng.random_range(-0.3..0.3f32)
                - std::f32::consts::FRAC_PI_2 * 0.0;
            let (s, c) = ang.sin_cos();
            let tint = rng.random_range(0.8..1.2f32);
            ellipse(
                rgb,
                front.as_deref_mut(),
                w,
                h,
                (sx + leaf_side * c * len * 0.9, sy + s * len * 0.9),
                (len, 3.5 * scale),
                ang * leaf_side,
                [green[0] * tint, green[1] * tint, green[2] * tint * 0.9],
                0.95,
            );
            leaf_side = -leaf_side;
        }
    }
}

impl Plate {
    /// Builds the plate of a `width × height` tank for `view`, deterministically from `seed`.
    pub fn new(seed: u64, width: usize, height: usize, view: View, noise_sigma: f32) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(2);
        let (w, h) = (width.max(1), height.max(1));
        let scale = h as f32 / 1080.0;
        let mut rgb = vec![0u8; w * h * 3];
        let mut front = vec![0u8; w * h];
        let swim;
        match view {
            View::Side => {
                let surface = 0.07 * h as f32;
                let gravel_top = 0.86 * h as f32;
                let edge = 0.025 * w as f32;
                for y in 0..h {
                    let t = y as f32 / h as f32;
                    let water = [150.0 - 70.0 * t, 188.0 - 70.0 * t, 192.0 - 60.0 * t];
                    for x in 0..w {
                        let i = (y * w + x) * 3;
                        let xf = x as f32;
                        let mut c = if (y as f32) < surface {
                            [52.0, 55.0, 60.0]
                        } else {
                            water
                        };
                        // Caustic-like soft horizontal variation.
                        let vig = 1.0 - 0.25 * ((xf / w as f32 - 0.5) * 2.0).powi(2);
                        for ch in c.iter_mut() {
                            *ch *= vig;
                        }
                        if (y as f32 - surface).abs() < 3.0 * scale {
                            c = [200.0, 215.0, 220.0];
                        }
                        if xf < edge || xf > w as f32 - edge {
                            c = [35.0, 38.0, 40.0];
                        }
                        rgb[i] = c[0] as u8;
                        rgb[i + 1] = c[1] as u8;
                        rgb[i + 2] = c[2] as u8;
                    }
                }
                // Gravel: a wavy top edge and many pebbles.
                let phase = rng.random_range(0.0..6.3f32);
                for x in 0..w {
                    let top = gravel_top + 10.0 * scale * (x as f32 * 0.01 / scale + phase).sin();
                    for y in (top.max(0.0) as usize)..h {
                        let i = (y * w + x) * 3;
                        rgb[i] = 120;
                        rgb[i + 1] = 104;
                        rgb[i + 2] = 82;
                    }
                }
                let pebbles =
                    (w * (h - gravel_top as usize).max(1)) as f32 / (60.0 * scale * scale);
                for _ in 0..pebbles as usize {
                    let px = rng.random_range(0.0..w as f32);
                    let py = rng.random_range(gravel_top - 4.0 * scale..h as f32);
                    let g = rng.random_range(70.0..190.0f32);
                    let warm = rng.random_range(0.85..1.15f32);
                    let r = rng.random_range(2.0..6.0f32) * scale;
                    ellipse(
                        &mut rgb,
                        None,
                        w,
                        h,
                        (px, py),
                        (r * rng.random_range(1.0..1.6), r),
                        rng.random_range(0.0..3.1),
                        [g * warm, g * 0.95, g / warm * 0.85],
                        1.0,
                    );
                }
                // Back plants (behind the fish), then one or two front plants (occluders).
                for _ in 0..rng.random_range(4..8) {
                    let x = rng.random_range(0.05..0.95) * w as f32;
                    let ht = rng.random_range(0.25..0.6) * h as f32;
                    plant(
                        &mut rng,
                        &mut rgb,
                        None,
                        w,
                        h,
                        x,
                        gravel_top + 8.0 * scale,
                        ht,
                        scale,
                        0.7,
                    );
                }
                for k in 0..2 {
                    let x = (0.2 + 0.55 * k as f32 + rng.random_range(-0.05..0.05)) * w as f32;
                    let ht = rng.random_range(0.35..0.55) * h as f32;
                    plant(
                        &mut rng,
                        &mut rgb,
                        Some(&mut front),
                        w,
                        h,
                        x,
                        h as f32,
                        ht,
                        scale * 1.3,
                        1.0,
                    );
                }
                let mx = edge + 0.04 * w as f32;
                swim = [
                    mx,
                    surface + 0.07 * h as f32,
                    w as f32 - mx,
                    gravel_top - 0.05 * h as f32,
                ];
            }
            View::Top => {
                let (cx, cy) = (w as f32 / 2.0, h as f32 / 2.0);
                let margin = 0.04 * h as f32;
                for y in 0..h {
                    for x in 0..w {
                        let i = (y * w + x) * 3;
                        let dx = (x as f32 - cx) / cx;
                        let dy = (y as f32 - cy) / cy;
                        let inside = x as f32 > margin
                            && (x as f32) < w as f32 - margin
                            && y as f32 > margin
                            && (y as f32) < h as f32 - margin;
                        let c = if inside {
                            let l = 218.0 - 25.0 * (dx * dx + dy * dy);
                            [l, l * 0.98, l * 0.92]
                        } else {
                            [70.0, 70.0, 72.0]
                        };
                        rgb[i] = c[0] as u8;
                        rgb[i + 1] = c[1] as u8;
                        rgb[i + 2] = c[2] as u8;
                    }
                }
                // Faint floor texture.
                for _ in 0..(w * h / 4000) {
                    let px = rng.random_range(margin..w as f32 - margin);
                    let py = rng.random_range(margin..h as f32 - margin);
                    let r = rng.random_range(3.0..12.0f32) * scale;
                    ellipse(
                        &mut rgb,
                        None,
                        w,
                        h,
                        (px, py),
                        (r, r),
                        0.0,
                        [200.0, 196.0, 185.0],
                        0.25,
                    );
                }
                let m = margin + 0.05 * h as f32;
                swim = [m, m, w as f32 - m, h as f32 - m];
            }
        }
        let mut noise = vec![0i8; NOISE_SIDE * NOISE_SIDE];
        for n in noise.iter_mut() {
            *n = (gauss(&mut rng) * noise_sigma).round().clamp(-127.0, 127.0) as i8;
        }
        let noise3 = noise.iter().flat_map(|&n| [n, n, n]).collect();
        Plate {
            width: w,
            height: h,
            rgb,
            front,
            swim,
            noise,
            noise3,
        }
    }

    /// Writes `plate × gain + noise` into `out` (tightly packed RGB of the same size), using
    /// up to `threads` threads. The gain is the mean of `gain`'s channels (the drift is
    /// global); the noise is luma noise (same value on the three channels of a pixel).
    pub fn light_into(
        &self,
        out: &mut [u8],
        gain: [f32; 3],
        noise_off: (usize, usize),
        threads: usize,
    ) {
        let w = self.width;
        let g = (((gain[0] + gain[1] + gain[2]) / 3.0).clamp(0.0, 4.0) * 256.0) as u32;
        let rows_per = self.height.div_ceil(threads.max(1)).max(1);
        let noise3 = &self.noise3;
        std::thread::scope(|scope| {
            for (band, chunk) in out.chunks_mut(rows_per * w * 3).enumerate() {
                let src = &self.rgb[band * rows_per * w * 3..];
                scope.spawn(move || {
                    for (r, row) in chunk.chunks_mut(w * 3).enumerate() {
                        let y = band * rows_per + r;
                        let srow = &src[r * w * 3..(r + 1) * w * 3];
                        let ny = (y + noise_off.1) & (NOISE_SIDE - 1);
                        let nrow = &noise3[ny * NOISE_SIDE * 3..(ny + 1) * NOISE_SIDE * 3];
                        let mut x = 0;
                        while x < w {
                            let nx = (x + noise_off.0) & (NOISE_SIDE - 1);
                            let len = (NOISE_SIDE - nx).min(w - x);
                            let o = &mut row[x * 3..(x + len) * 3];
                            let s = &srow[x * 3..(x + len) * 3];
                            let n = &nrow[nx * 3..(nx + len) * 3];
                            for ((o, &s), &n) in o.iter_mut().zip(s).zip(n) {
                                let v = ((u32::from(s) * g) >> 8) as i32 + i32::from(n);
                                *o = v.clamp(0, 255) as u8;
                            }
                            x += len;
                        }
                    }
                });
            }
        });
    }
}

/// Slow global lighting drift: gain at time `t` seconds (≈1 ± `amount`, same on R, G, B).
pub fn lighting_gain(seed: u64, t: f64, amount: f32) -> [f32; 3] {
    let ph = (seed % 1000) as f64 * 0.0137;
    let base = 0.6 * (std::f64::consts::TAU * t / 37.0 + ph).sin()
        + 0.4 * (std::f64::consts::TAU * t / 13.0 + 2.0 * ph).sin();
    let warm = (std::f64::consts::TAU * t / 53.0 + 3.0 * ph).sin();
    let a = f64::from(amount);
    let g = (1.0 + a * (base + 0.1 * warm)) as f32;
    [g, g, g]
}
