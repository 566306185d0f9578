//! A simulated tank over time: swimmers + plate + rasteriser → frames with an id map and the
//! per-fish ground truth of each frame. Must never write files (see `render` for that).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::SynthConfig;
use super::fish::{Individual, make_individuals};
use super::motion::{Swimmer, Tank};
use super::pattern::Flank;
use super::raster::{Canvas, DrawStats, FishDraw, Overlay, View, draw_fish};
use super::scene::{NOISE_SIDE, Plate, lighting_gain};

/// Ground truth of one fish in one frame (the columns of `truth.csv`).
#[derive(Debug, Clone, PartialEq)]
pub struct TruthRow {
    /// 0-based frame index.
    pub frame: u64,
    /// Stream time, s (`frame / fps`).
    pub t: f64,
    /// Individual index (the `track` column).
    pub track: usize,
    /// Individual name (`fish-03`).
    pub individual: String,
    /// Centre of the fish's full (unoccluded) silhouette, px.
    pub x: f32,
    /// Centre y, px.
    pub y: f32,
    /// Box of the visible pixels (x0, y0, x1, y1; x1/y1 exclusive), `None` when invisible.
    pub bbox: Option<[u32; 4]>,
    /// Direction of motion of the body axis in the image, radians (0 = +x, y down).
    pub heading: f32,
    /// Visible pixels of the fish (its pixels in the id map).
    pub area: u32,
    /// Visible pixels ÷ pixels of the full silhouette (occlusion by fish, plants, frame edge).
    pub visible_fraction: f32,
    /// Flank facing the camera: `Some` in side view when the fish is not edge-on.
    pub flank: Option<Flank>,
    /// Full body length at this depth (before foreshortening), px.
    pub body_length: f32,
    /// Foreshortening of the body axis (1 = broadside).
    pub along: f32,
    /// |cos yaw|: how squarely the flank faces the camera (1 side view broadside, 0 edge-on).
    pub flank_facing: f32,
    /// Silhouette pixels (unoccluded).
    pub full_px: u32,
    /// Box of the whole silhouette scan region, for id-map checks.
    pub scan: [usize; 4],
}

/// One rendered frame: pixels, id map and truth.
#[derive(Debug)]
pub struct RenderedFrame<'a> {
    /// 0-based index.
    pub index: u64,
    /// Stream time, s.
    pub t: f64,
    /// RGB, id map (`track + 1`, 0 = no fish) and part map.
    pub canvas: &'a Canvas,
    /// One row per fish, ordered by track.
    pub truth: &'a [TruthRow],
    /// Lighting gain of this frame (see [`Plate::light_into`]).
    pub gain: [f32; 3],
    /// Noise tile offset of this frame.
    pub noise_off: (usize, usize),
}

/// `|cos yaw|` below which a side-view fish counts as edge-on (no flank in the truth).
pub const EDGE_ON: f32 = 0.45;

/// A simulated tank that renders frame after frame.
#[derive(Debug)]
pub struct TankSim {
    cfg: SynthConfig,
    plate: Plate,
    inds: Vec<Individual>,
    swimmers: Vec<Swimmer>,
    tank: Tank,
    rng: ChaCha8Rng,
    index: u64,
    canvas: Canvas,
    truth: Vec<TruthRow>,
    threads: usize,
}

impl TankSim {
    /// Builds the tank of `cfg` (which must have passed [`SynthConfig::validate`]).
    pub fn new(cfg: &SynthConfig) -> Self {
        let (w, h) = (cfg.width as usize, cfg.height as usize);
        let plate = Plate::new(cfg.seed, w, h, cfg.view, cfg.noise_sigma);
        let inds = make_individuals(cfg.seed, cfg.fish, cfg.similarity);
        let tank = Tank {
            swim: plate.swim,
            width: w as f32,
            height: h as f32,
            view: cfg.view,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        rng.set_stream(4);
        let k = h as f32 / 1080.0;
        let swimmers = inds
            .iter()
            .map(|i| {
                let len = match cfg.view {
                    View::Side => i.length_1080 * k,
                    View::Top => i.length_1080 * k * 0.5,
                };
                Swimmer::new(&mut rng, &tank, len)
            })
            .collect();
        TankSim {
            cfg: cfg.clone(),
            plate,
            inds,
            swimmers,
            tank,
            rng,
            index: 0,
            canvas: Canvas::new(w, h),
            truth: Vec::new(),
            threads: super::threads_for(cfg.threads),
        }
    }

    /// The individuals in the tank (index = track).
    pub fn individuals(&self) -> &[Individual] {
        &self.inds
    }

    /// The static plate (background without fish, lighting or noise).
    pub fn plate(&self) -> &Plate {
        &self.plate
    }

    /// Renders the next frame and advances the simulation by one frame.
    pub fn next_frame(&mut self) -> RenderedFrame<'_> {
        let fps = f64::from(self.cfg.fps.max(1));
        let t = self.index as f64 / fps;
        let gain = lighting_gain(self.cfg.seed, t, self.cfg.lighting_drift);
        let noise_off = (
            self.rng.random_range(0..NOISE_SIDE),
            self.rng.random_range(0..NOISE_SIDE),
        );
        self.plate
            .light_into(&mut self.canvas.rgb, gain, noise_off, self.threads);
        self.canvas.id.fill(0);
        self.canvas.part.fill(0);
        let front: &[u8] = if self.cfg.view == View::Side {
            &self.plate.front
        } else {
            &[]
        };
        let ov = Overlay {
            noise: &self.plate.noise,
            noise_side: NOISE_SIDE,
            noise_off,
            front,
        };
        // Far fish first, so nearer fish cover them.
        let mut order: Vec<usize> = (0..self.swimmers.len()).collect();
        order.sort_by(|&a, &b| {
            self.swimmers[b]
                .z
                .total_cmp(&self.swimmers[a].z)
                .then(a.cmp(&b))
        });
        let mut stats = vec![DrawStats::default(); self.swimmers.len()];
        let mut extra = vec![(0f32, 0f32, 0f32, 0f32, None); self.swimmers.len()];
        for &i in &order {
            let s = &self.swimmers[i];
            let (cx, cy) = self.tank.project(s.x, s.y, s.z);
            let length = s.length * self.tank.scale(s.z);
            let (axis, along) = s.image_axis(self.cfg.view);
            let facing = s.yaw.cos().abs();
            let flank = match self.cfg.view {
                View::Side => Some(if s.yaw.cos() >= 0.0 {
                    Flank::Right
                } else {
                    Flank::Left
                }),
                View::Top => None,
            };
            let d = FishDraw {
                ind: &self.inds[i],
                id: (i + 1) as u16,
                cx,
                cy,
                axis,
                length,
                along: along.max(0.12),
                flank,
                pattern_vis: ((facing - 0.2) / 0.35).clamp(0.0, 1.0),
                view: self.cfg.view,
                tail_phase: s.tail_phase,
                tail_amp: s.tail_amp(),
                gain,
            };
            stats[i] = draw_fish(&mut self.canvas, &d, &ov);
            let heading = axis[1].atan2(axis[0]);
            let label = if self.cfg.view == View::Side && facing >= EDGE_ON {
                flank
            } else {
                None
            };
            extra[i] = (heading, length, along, facing, label);
        }
        self.truth.clear();
        let w = self.canvas.width;
        for (i, st) in stats.iter().enumerate() {
            let id = (i + 1) as u16;
            let [sx0, sy0, sx1, sy1] = st.scan;
            let (mut n, mut bx0, mut by0, mut bx1, mut by1) =
                (0u32, u32::MAX, u32::MAX, 0u32, 0u32);
            for y in sy0..sy1 {
                let row = &self.canvas.id[y * w..(y + 1) * w];
                for (x, &v) in row.iter().enumerate().take(sx1).skip(sx0) {
                    if v == id {
                        n += 1;
                        bx0 = bx0.min(x as u32);
                        by0 = by0.min(y as u32);
                        bx1 = bx1.max(x as u32 + 1);
                        by1 = by1.max(y as u32 + 1);
                    }
                }
            }
            let (heading, length, along, facing, label) = extra[i];
            self.truth.push(TruthRow {
                frame: self.index,
                t,
                track: i,
                individual: self.inds[i].name.clone(),
                x: st.cx,
                y: st.cy,
                bbox: (n > 0).then_some([bx0, by0, bx1, by1]),
                heading,
                area: n,
                visible_fraction: if st.full_px > 0 {
                    (n as f32 / st.full_px as f32).min(1.0)
                } else {
                    0.0
                },
                flank: label,
                body_length: length,
                along,
                flank_facing: facing,
                full_px: st.full_px,
                scan: st.scan,
            });
        }
        // Advance the simulation to the next frame.
        let dt = 1.0 / fps as f32;
        let pos: Vec<(f32, f32, f32)> = self.swimmers.iter().map(|s| (s.x, s.y, s.z)).collect();
        for i in 0..self.swimmers.len() {
            let others: Vec<(f32, f32, f32)> = pos
                .iter()
                .enumerate()
                .filter(|&(j, _)| j != i)
                .map(|(_, p)| *p)
                .collect();
            self.swimmers[i].step(&mut self.rng, &self.tank, &others, dt);
        }
        let index = self.index;
        self.index += 1;
        RenderedFrame {
            index,
            t,
            canvas: &self.canvas,
            truth: &self.truth,
            gain,
            noise_off,
        }
    }
}
