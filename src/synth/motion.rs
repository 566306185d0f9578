//! Swimming: smooth 3-D motion of each fish in the tank (targets, shoaling, turns through an
//! edge-on phase, depth changes, bursts, tail beat). Pure state updates from a seeded RNG;
//! must never draw.

use std::f32::consts::{PI, TAU};

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::raster::View;

/// Depth of the tank (front glass to back wall) as a multiple of the frame width.
const TANK_DEPTH: f32 = 0.35;

/// Motion state of one fish, in front-plane pixels (x right, y down) and depth `z` ∈ `[0, 1]`
/// (0 = at the front glass).
#[derive(Debug, Clone)]
pub struct Swimmer {
    /// Position x, front-plane px.
    pub x: f32,
    /// Position y, front-plane px (side view: height in the water; top view: second axis).
    pub y: f32,
    /// Depth 0 (near) ..1 (far).
    pub z: f32,
    /// Yaw: 0 = swimming to +x, π/2 = away from the camera (side view) / +y (top view).
    pub yaw: f32,
    /// Pitch (side view): positive = nose up.
    pub pitch: f32,
    /// Speed, body lengths per second.
    pub speed: f32,
    /// Tail beat phase, radians.
    pub tail_phase: f32,
    /// Body length at the front plane, px.
    pub length: f32,
    target: (f32, f32, f32),
    target_timer: f32,
    cruise: f32,
    turn_rate: f32,
    burst: f32,
}

fn wrap(a: f32) -> f32 {
    (a + PI).rem_euclid(TAU) - PI
}

/// The world all swimmers share: bounds and view.
#[derive(Debug, Clone, Copy)]
pub struct Tank {
    /// Swim region at the front plane: x0, y0, x1, y1 px.
    pub swim: [f32; 4],
    /// Frame width, px.
    pub width: f32,
    /// Frame height, px.
    pub height: f32,
    /// Viewpoint.
    pub view: View,
}

impl Tank {
    /// Apparent size factor at depth `z`.
    pub fn scale(&self, z: f32) -> f32 {
        match self.view {
            View::Side => 1.0 - 0.4 * z,
            View::Top => 1.0 - 0.12 * z,
        }
    }

    /// Image position of a point at front-plane position (x, y) and depth z.
    pub fn project(&self, x: f32, y: f32, z: f32) -> (f32, f32) {
        match self.view {
            View::Side => {
                let k = 1.0 - 0.15 * z;
                (
                    self.width / 2.0 + (x - self.width / 2.0) * k,
                    self.height / 2.0 + (y - self.height / 2.0) * k,
                )
            }
            View::Top => (x, y),
        }
    }

    fn random_point(&self, rng: &mut ChaCha8Rng) -> (f32, f32, f32) {
        let [x0, y0, x1, y1] = self.swim;
        (
            rng.random_range(x0..x1.max(x0 + 1.0)),
            rng.random_range(y0..y1.max(y0 + 1.0)),
            rng.random_range(0.0..1.0),
        )
    }
}

impl Swimmer {
    /// A fish of body length `length` px at a random place in `tank`.
    pub fn new(rng: &mut ChaCha8Rng, tank: &Tank, length: f32) -> Self {
        let (x, y, z) = tank.random_point(rng);
        let yaw = if rng.random::<bool>() { 0.0 } else { PI } + rng.random_range(-0.3..0.3);
        let mut s = Swimmer {
            x,
            y,
            z,
            yaw,
            pitch: 0.0,
            speed: 1.0,
            tail_phase: rng.random_range(0.0..TAU),
            length,
            target: (x, y, z),
            target_timer: 0.0,
            cruise: rng.random_range(0.9..1.8),
            turn_rate: rng.random_range(2.5..4.0),
            burst: 0.0,
        };
        s.target = tank.random_point(rng);
        s.target_timer = rng.random_range(2.0..6.0);
        s
    }

    /// Advances by `dt` seconds. `others` are the positions (x, y, z) of the other fish, for
    /// shoaling. Consumes a fixed amount of randomness per call pattern (deterministic).
    pub fn step(&mut self, rng: &mut ChaCha8Rng, tank: &Tank, others: &[(f32, f32, f32)], dt: f32) {
        let depth_px = TANK_DEPTH * tank.width;
        let (dx, dy, dz) = (
            self.target.0 - self.x,
            self.target.1 - self.y,
            (self.target.2 - self.z) * depth_px,
        );
        let dist = (dx * dx + dy * dy + dz * dz).sqrt();
        self.target_timer -= dt;
        let r_new: f32 = rng.random();
        let r_burst: f32 = rng.random();
        if dist < 0.5 * self.length || self.target_timer <= 0.0 {
            if r_new < 0.4 && !others.is_empty() {
                // Shoal: swim to a neighbour.
                let k = rng.random_range(0..others.len());
                let o = others[k];
                self.target = (
                    o.0 + rng.random_range(-1.0..1.0) * self.length,
                    o.1 + rng.random_range(-0.5..0.5) * self.length,
                    (o.2 + rng.random_range(-0.1..0.1)).clamp(0.0, 1.0),
                );
            } else {
                self.target = tank.random_point(rng);
            }
            let [x0, y0, x1, y1] = tank.swim;
            self.target.0 = self.target.0.clamp(x0, x1);
            self.target.1 = self.target.1.clamp(y0, y1);
            self.target_timer = rng.random_range(1.5..5.0);
            self.turn_rate = rng.random_range(2.5..5.0);
        }
        if r_burst < 0.004 {
            self.burst = 0.6;
        }
        self.burst = (self.burst - dt).max(0.0);
        match tank.view {
            View::Side => {
                let want_yaw = dz.atan2(dx);
                let horiz = (dx * dx + dz * dz).sqrt();
                let want_pitch = (-dy).atan2(horiz).clamp(-0.35, 0.35);
                let dyaw = wrap(want_yaw - self.yaw);
                self.yaw = wrap(self.yaw + dyaw.clamp(-self.turn_rate * dt, self.turn_rate * dt));
                self.pitch += (want_pitch - self.pitch).clamp(-1.2 * dt, 1.2 * dt);
            }
            View::Top => {
                let want_yaw = dy.atan2(dx);
                let dyaw = wrap(want_yaw - self.yaw);
                self.yaw = wrap(self.yaw + dyaw.clamp(-self.turn_rate * dt, self.turn_rate * dt));
                self.pitch = 0.0;
            }
        }
        // Slow down while turning hard, speed up in bursts.
        let turning = (wrap(self.target_heading(tank) - self.yaw).abs() / PI).min(1.0);
        let want_speed =
            self.cruise * (1.0 - 0.6 * turning) * if self.burst > 0.0 { 2.5 } else { 1.0 };
        self.speed += (want_speed - self.speed) * (3.0 * dt).min(1.0);
        let v = self.speed * self.length * dt;
        match tank.view {
            View::Side => {
                self.x += v * self.pitch.cos() * self.yaw.cos();
                self.y -= v * self.pitch.sin();
                self.z += v * self.pitch.cos() * self.yaw.sin() / depth_px;
            }
            View::Top => {
                self.x += v * self.yaw.cos();
                self.y += v * self.yaw.sin();
                self.z = 0.5 + 0.5 * (self.tail_phase * 0.01).sin();
            }
        }
        let [x0, y0, x1, y1] = tank.swim;
        self.x = self.x.clamp(x0, x1);
        self.y = self.y.clamp(y0, y1);
        self.z = self.z.clamp(0.0, 1.0);
        // Tail beat: faster and wider when swimming faster.
        self.tail_phase =
            (self.tail_phase + TAU * (2.5 + 3.0 * self.speed) * dt).rem_euclid(TAU * 1000.0);
    }

    fn target_heading(&self, tank: &Tank) -> f32 {
        match tank.view {
            View::Side => {
                ((self.target.2 - self.z) * TANK_DEPTH * tank.width).atan2(self.target.0 - self.x)
            }
            View::Top => (self.target.1 - self.y).atan2(self.target.0 - self.x),
        }
    }

    /// Tail beat amplitude 0..1 from the speed.
    pub fn tail_amp(&self) -> f32 {
        (0.3 + 0.35 * self.speed).min(1.0)
    }

    /// Image-plane direction of the body axis (tail → snout) and its foreshortening.
    pub fn image_axis(&self, view: View) -> ([f32; 2], f32) {
        match view {
            View::Side => {
                let ax = self.pitch.cos() * self.yaw.cos();
                let ay = -self.pitch.sin();
                let n = (ax * ax + ay * ay).sqrt();
                if n < 1e-4 {
                    ([if self.yaw.cos() >= 0.0 { 1.0 } else { -1.0 }, 0.0], 0.0)
                } else {
                    ([ax / n, ay / n], n)
                }
            }
            View::Top => ([self.yaw.cos(), self.yaw.sin()], 1.0),
        }
    }
}
