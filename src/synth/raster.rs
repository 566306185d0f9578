//! Drawing: a frame canvas (RGB + id map + part map) and the fish rasteriser for side and top
//! views. Must never decide where fish go (that is `motion`) or write files.

use super::fish::{BodyProfile, Individual, Part};
use super::pattern::Flank;

/// Camera viewpoint of a simulated tank.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum View {
    /// Camera looks through the front glass: flanks and stripes are visible.
    #[default]
    Side,
    /// Camera looks down onto the water: dorsal view, no flank visible.
    Top,
}

/// A frame being drawn: interleaved RGB, the id map (0 = no fish, `i + 1` = individual `i`,
/// front-most fish wins) and the body-part map of the id-map winner ([`Part`] codes).
#[derive(Debug, Clone)]
pub struct Canvas {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Tightly packed RGB, `width * height * 3` bytes.
    pub rgb: Vec<u8>,
    /// Which fish each pixel shows.
    pub id: Vec<u16>,
    /// [`Part`] of the visible fish at each pixel (0 where `id` is 0).
    pub part: Vec<u8>,
}

impl Canvas {
    /// A black canvas with empty maps.
    pub fn new(width: usize, height: usize) -> Self {
        Canvas {
            width,
            height,
            rgb: vec![0; width * height * 3],
            id: vec![0; width * height],
            part: vec![0; width * height],
        }
    }
}

/// Everything needed to draw one fish once.
#[derive(Debug, Clone, Copy)]
pub struct FishDraw<'a> {
    /// Which individual (appearance).
    pub ind: &'a Individual,
    /// Value written into the id map.
    pub id: u16,
    /// Image position of the body's mid point (`u` = ½ on the midline), px.
    pub cx: f32,
    /// Image y of the body's mid point, px.
    pub cy: f32,
    /// Unit vector in the image from tail to snout.
    pub axis: [f32; 2],
    /// Full body length at this depth, px (before foreshortening).
    pub length: f32,
    /// Foreshortening of the body axis (1 = broadside, small = head-on / edge-on).
    pub along: f32,
    /// Flank facing the camera (side view), `None` in top view.
    pub flank: Option<Flank>,
    /// How much of the flank pattern is visible, 0..1 (fades out edge-on).
    pub pattern_vis: f32,
    /// Viewpoint.
    pub view: View,
    /// Tail beat phase, radians.
    pub tail_phase: f32,
    /// Tail beat amplitude, 0..1.
    pub tail_amp: f32,
    /// Lighting gain per channel.
    pub gain: [f32; 3],
}

/// What the rasteriser measured about the unoccluded silhouette of one fish.
#[derive(Debug, Clone, Copy, Default)]
pub struct DrawStats {
    /// Pixels the fish would cover with nothing in front and an unbounded frame.
    pub full_px: u32,
    /// Centroid of that silhouette, x.
    pub cx: f32,
    /// Centroid of that silhouette, y.
    pub cy: f32,
    /// Pixel box scanned (clipped to the frame): x0, y0, x1, y1 (exclusive ends).
    pub scan: [usize; 4],
}

/// Sensor noise and occluders applied while drawing.
#[derive(Debug, Clone, Copy)]
pub struct Overlay<'a> {
    /// Noise tile (square, side a power of two), added to fish pixels.
    pub noise: &'a [i8],
    /// Side of the noise tile.
    pub noise_side: usize,
    /// Noise tile offset of this frame.
    pub noise_off: (usize, usize),
    /// Alpha of static occluders in front of all fish (front plants), or empty.
    pub front: &'a [u8],
}

#[inline]
fn mix(a: [f32; 3], b: [f32; 3], t: f32) -> [f32; 3] {
    [
        a[0] + (b[0] - a[0]) * t,
        a[1] + (b[1] - a[1]) * t,
        a[2] + (b[2] - a[2]) * t,
    ]
}

#[inline]
fn sstep(t: f32) -> f32 {
    let t = t.clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

const BELLY: [f32; 3] = [232.0, 230.0, 218.0];
const DORSUM: [f32; 3] = [108.0, 102.0, 70.0];
const HEAD: [f32; 3] = [206.0, 200.0, 172.0];
const FIN: [f32; 3] = [175.0, 160.0, 105.0];
const ANAL_LIGHT: [f32; 3] = [226.0, 196.0, 118.0];

/// Colour, alpha and part of one body point in side view; `None` outside the fish.
/// Returns (rgb, opacity, coverage for the id map, part).
#[inline]
fn shade_side(
    d: &FishDraw<'_>,
    p: &BodyProfile,
    u: f32,
    v: f32,
    lpx: f32,
) -> Option<([f32; 3], f32, f32, Part)> {
    let i = BodyProfile::index(u)?;
    let ind = d.ind;
    let top = p.top[i];
    let bot = p.bottom[i];
    let pattern = d.flank.map(|f| ind.flank(f));
    if top > 0.0 && v <= top + 0.5 / lpx && v >= -bot - 0.5 / lpx {
        let cov = ((top - v).min(v + bot) * lpx + 0.5).clamp(0.0, 1.0);
        let vn = if v >= 0.0 { v / top } else { v / bot }.clamp(-1.0, 1.0);
        let mut c = ind.body_rgb;
        c = mix(c, BELLY, sstep((-vn - 0.5) / 0.5));
        c = mix(c, DORSUM, sstep((vn - 0.7) / 0.3));
        let mut part = Part::of_trunk(u);
        if u < 0.21 {
            c = mix(c, HEAD, 0.6);
            if u > 0.195 {
                c = mix(c, [90.0, 90.0, 80.0], 0.35);
            }
            // Eye: round in the image even when the body is foreshortened.
            let ex = (u - 0.075) * lpx * d.along;
            let ey = (v - 0.3 * p.depth) * lpx;
            let r = 0.034 * lpx;
            let e2 = ex * ex + ey * ey;
            if e2 < r * r {
                c = if e2 < 0.36 * r * r {
                    [14.0, 14.0, 20.0]
                } else {
                    [165.0, 168.0, 160.0]
                };
            }
            part = Part::Other;
        } else if let Some(pat) = pattern {
            let s = pat.sample(u, vn) * d.pattern_vis * 0.92;
            c = mix(c, ind.stripe_rgb, s);
        }
        let shade = 0.8 + 0.2 * (1.0 - vn * vn).max(0.0).sqrt();
        return Some(([c[0] * shade, c[1] * shade, c[2] * shade], cov, cov, part));
    }
    // Caudal fin, flapping: its apparent height breathes with the beat.
    let flap = 1.0 - 0.18 * d.tail_amp * d.tail_phase.sin().abs();
    let cf = p.caudal[i] * flap;
    if cf > 0.0 && v.abs() <= cf + 0.5 / lpx && v.abs() >= p.notch[i] - 0.5 / lpx {
        let cov = ((cf - v.abs()).min(v.abs() - p.notch[i]) * lpx + 0.5).clamp(0.0, 1.0);
        let mut c = mix(ind.body_rgb, FIN, 0.5);
        if let Some(pat) = pattern {
            let s = pat.sample(u, (v / cf).clamp(-1.0, 1.0)) * d.pattern_vis * 0.8;
            c = mix(c, ind.stripe_rgb, s);
        }
        return Some((c, cov * 0.8, cov, Part::Other));
    }
    let df = p.dorsal_fin[i];
    if df > 0.0 && v > top && v <= top + df + 0.5 / lpx {
        let cov = ((top + df - v) * lpx + 0.5).clamp(0.0, 1.0);
        let c = mix(FIN, DORSUM, 0.3);
        return Some((c, cov * 0.65, cov, Part::Other));
    }
    let af = p.anal_fin[i];
    if af > 0.0 && v < -bot && v >= -bot - af - 0.5 / lpx {
        let cov = ((v + bot + af) * lpx + 0.5).clamp(0.0, 1.0);
        let band = ((-v - bot) / (0.7 * p.depth) * 3.0 + ind.fin_phase).fract();
        let c = if band < 0.5 {
            mix(ind.stripe_rgb, FIN, 0.3)
        } else {
            ANAL_LIGHT
        };
        return Some((c, cov * 0.8, cov, Part::Other));
    }
    None
}

/// Colour, alpha, coverage and part of one body point in top (dorsal) view.
#[inline]
fn shade_top(
    d: &FishDraw<'_>,
    p: &BodyProfile,
    u: f32,
    v: f32,
    lpx: f32,
) -> Option<([f32; 3], f32, f32, Part)> {
    let i = BodyProfile::index(u)?;
    let ind = d.ind;
    let half = 0.62 * p.top[i];
    // Eyes bulge out on both sides of the head.
    let ex = (u - 0.08) * lpx;
    let ey = (v.abs() - 0.8 * 0.62 * p.depth) * lpx;
    let r = 0.035 * lpx;
    if ex * ex + ey * ey < r * r {
        return Some(([20.0, 20.0, 24.0], 1.0, 1.0, Part::Other));
    }
    if half > 0.0 && v.abs() <= half + 0.5 / lpx {
        let cov = ((half - v.abs()) * lpx + 0.5).clamp(0.0, 1.0);
        let w = (v.abs() / half).clamp(0.0, 1.0);
        let mut c = mix(DORSUM, ind.body_rgb, sstep((w - 0.35) / 0.65) * 0.8);
        if w > 0.6 && u > 0.25 && u < 0.85 {
            c = mix(c, ind.stripe_rgb, 0.35);
        }
        return Some((c, cov, cov, Part::of_trunk(u)));
    }
    let cf = 0.8 * p.caudal[i];
    if cf > 0.0 && v.abs() <= cf + 0.5 / lpx {
        let cov = ((cf - v.abs()) * lpx + 0.5).clamp(0.0, 1.0);
        return Some((mix(FIN, DORSUM, 0.4), cov * 0.7, cov, Part::Other));
    }
    None
}

/// Draws one fish onto `canvas` (over what is there), updating the id and part maps where
/// the fish is the front-most thing, and returns its unoccluded silhouette statistics.
pub fn draw_fish(canvas: &mut Canvas, d: &FishDraw<'_>, ov: &Overlay<'_>) -> DrawStats {
    let lpx = d.length.max(1.0);
    let along = d.along.clamp(0.05, 1.0);
    let flen = lpx * along;
    let [ax, ay] = d.axis;
    // "Up" of the body: dorsal (side view: the perpendicular pointing up in the image) or the
    // fish's left (top view).
    let (nx, ny) = match d.view {
        View::Side => {
            if ax >= 0.0 {
                (ay, -ax)
            } else {
                (-ay, ax)
            }
        }
        View::Top => (ay, -ax),
    };
    let half_l = 0.5 * flen + 2.0;
    let half_t = 0.3 * lpx + 2.0;
    let mut xs = [0f32; 4];
    let mut ys = [0f32; 4];
    for (k, (s, t)) in [
        (-half_l, -half_t),
        (-half_l, half_t),
        (half_l, -half_t),
        (half_l, half_t),
    ]
    .into_iter()
    .enumerate()
    {
        xs[k] = d.cx + s * ax + t * nx;
        ys[k] = d.cy + s * ay + t * ny;
    }
    let fx0 = xs.iter().copied().fold(f32::MAX, f32::min).floor() as i64;
    let fx1 = xs.iter().copied().fold(f32::MIN, f32::max).ceil() as i64;
    let fy0 = ys.iter().copied().fold(f32::MAX, f32::min).floor() as i64;
    let fy1 = ys.iter().copied().fold(f32::MIN, f32::max).ceil() as i64;
    let (w, h) = (canvas.width as i64, canvas.height as i64);
    let p = &d.ind.profile;
    let mut stats = DrawStats {
        scan: [
            fx0.clamp(0, w) as usize,
            fy0.clamp(0, h) as usize,
            (fx1 + 1).clamp(0, w) as usize,
            (fy1 + 1).clamp(0, h) as usize,
        ],
        ..Default::default()
    };
    let (mut sx, mut sy) = (0f64, 0f64);
    let (nside, nmask) = (ov.noise_side, ov.noise_side.wrapping_sub(1));
    let gain = d.gain;
    let tail_k = d.tail_amp;
    for py in fy0..=fy1 {
        for px in fx0..=fx1 {
            let dx = px as f32 + 0.5 - d.cx;
            let dy = py as f32 + 0.5 - d.cy;
            let s = dx * ax + dy * ay;
            let t = dx * nx + dy * ny;
            let u = 0.5 - s / flen;
            if !(0.0..1.0).contains(&u) {
                continue;
            }
            let mut v = t / lpx;
            let shaded = match d.view {
                View::Side => {
                    if u > 0.55 {
                        let k = (u - 0.55) / 0.45;
                        v -= 0.25 * p.depth * tail_k * k * k * (d.tail_phase - 6.0 * u).sin();
                    }
                    shade_side(d, p, u, v, lpx)
                }
                View::Top => {
                    if u > 0.3 {
                        let k = (u - 0.3) / 0.7;
                        v -= 0.09 * tail_k * k * k * (d.tail_phase - 5.0 * u).sin();
                    }
                    shade_top(d, p, u, v, lpx)
                }
            };
            let Some((c, alpha, cov, part)) = shaded else {
                continue;
            };
            if cov >= 0.5 {
                stats.full_px += 1;
                sx += px as f64 + 0.5;
                sy += py as f64 + 0.5;
            }
            if px < 0 || py < 0 || px >= w || py >= h {
                continue;
            }
            let idx = py as usize * canvas.width + px as usize;
            let front = ov.front.get(idx).copied().unwrap_or(0);
            let a = alpha * (1.0 - f32::from(front) * (1.0 / 255.0));
            if a <= 0.0 {
                continue;
            }
            let noise = if nside > 0 {
                let ni = ((py as usize + ov.noise_off.1) & nmask) * nside
                    + ((px as usize + ov.noise_off.0) & nmask);
                f32::from(ov.noise.get(ni).copied().unwrap_or(0))
            } else {
                0.0
            };
            let o = idx * 3;
            for ch in 0..3 {
                let old = f32::from(canvas.rgb[o + ch]);
                let new = (c[ch] * gain[ch] + noise).clamp(0.0, 255.0);
                canvas.rgb[o + ch] = (old + (new - old) * a).round() as u8;
            }
            if cov >= 0.5 && front < 128 {
                canvas.id[idx] = d.id;
                canvas.part[idx] = part as u8;
            }
        }
    }
    if stats.full_px > 0 {
        stats.cx = (sx / f64::from(stats.full_px)) as f32;
        stats.cy = (sy / f64::from(stats.full_px)) as f32;
    } else {
        stats.cx = d.cx;
        stats.cy = d.cy;
    }
    stats
}
