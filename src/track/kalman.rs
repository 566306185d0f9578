//! Constant-velocity Kalman filter for one track (state `[x, y, vx, vy]`, observation `[x, y]`),
//! built on `adskalman`. Pure maths: it must never know about detections or track lifecycles.

use adskalman::{
    CovarianceUpdateMethod, ObservationModel, StateAndCovariance, TransitionModelLinearNoControl,
};
use nalgebra::{Matrix2, Matrix2x4, Matrix4, Matrix4x2, U2, U4, Vector2, Vector4};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Constant-velocity transition for one time step with white-noise acceleration.
struct ConstantVelocity {
    f: Matrix4<f64>,
    ft: Matrix4<f64>,
    q: Matrix4<f64>,
}

impl ConstantVelocity {
    fn new(dt: f64, accel_sigma: f64) -> Self {
        let mut f = Matrix4::identity();
        f[(0, 2)] = dt;
        f[(1, 3)] = dt;
        let s2 = accel_sigma * accel_sigma;
        let (dt2, dt3, dt4) = (dt * dt, dt * dt * dt, dt * dt * dt * dt);
        let mut q = Matrix4::zeros();
        for (p, v) in [(0, 2), (1, 3)] {
            q[(p, p)] = dt4 / 4.0 * s2;
            q[(p, v)] = dt3 / 2.0 * s2;
            q[(v, p)] = dt3 / 2.0 * s2;
            q[(v, v)] = dt2 * s2;
        }
        ConstantVelocity {
            f,
            ft: f.transpose(),
            q,
        }
    }
}

impl TransitionModelLinearNoControl<f64, U4> for ConstantVelocity {
    fn F(&self) -> &Matrix4<f64> {
        &self.f
    }
    fn FT(&self) -> &Matrix4<f64> {
        &self.ft
    }
    fn Q(&self) -> &Matrix4<f64> {
        &self.q
    }
}

/// Position observation with isotropic noise.
struct PositionObservation {
    h: Matrix2x4<f64>,
    ht: Matrix4x2<f64>,
    r: Matrix2<f64>,
}

impl PositionObservation {
    fn new(sigma: f64) -> Self {
        let mut h = Matrix2x4::zeros();
        h[(0, 0)] = 1.0;
        h[(1, 1)] = 1.0;
        PositionObservation {
            h,
            ht: h.transpose(),
            r: Matrix2::identity() * (sigma * sigma),
        }
    }
}

impl ObservationModel<f64, U4, U2> for PositionObservation {
    fn H(&self) -> &Matrix2x4<f64> {
        &self.h
    }
    fn HT(&self) -> &Matrix4x2<f64> {
        &self.ht
    }
    fn R(&self) -> &Matrix2<f64> {
        &self.r
    }
}

/// A track's motion state.
#[derive(Debug, Clone)]
pub struct MotionState {
    est: StateAndCovariance<f64, U4>,
}

/// [`MotionState`] as saved: the state `[x, y, vx, vy]` and its covariance, row by row.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SavedMotion {
    state: [f64; 4],
    covariance: [f64; 16],
}

impl PartialEq for MotionState {
    fn eq(&self, other: &Self) -> bool {
        self.est.state() == other.est.state() && self.est.covariance() == other.est.covariance()
    }
}

impl Serialize for MotionState {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut state = [0.0; 4];
        state.copy_from_slice(self.est.state().as_slice());
        let mut covariance = [0.0; 16];
        // Row by row (nalgebra stores columns; the matrix is symmetric, but keep the order).
        for (i, c) in covariance.iter_mut().enumerate() {
            *c = self.est.covariance()[(i / 4, i % 4)];
        }
        SavedMotion { state, covariance }.serialize(s)
    }
}

impl<'de> Deserialize<'de> for MotionState {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let m = SavedMotion::deserialize(d)?;
        if m.state.iter().chain(&m.covariance).any(|v| !v.is_finite()) {
            return Err(serde::de::Error::custom("motion state is not finite"));
        }
        Ok(MotionState {
            est: StateAndCovariance::new(
                Vector4::from_row_slice(&m.state),
                Matrix4::from_row_slice(&m.covariance),
            ),
        })
    }
}

impl MotionState {
    /// Starts at a position with zero velocity; `pos_sigma` and `vel_sigma` are the initial
    /// uncertainties (px, px/s).
    pub fn new(x: f64, y: f64, pos_sigma: f64, vel_sigma: f64) -> Self {
        let p = Matrix4::from_diagonal(&Vector4::new(
            pos_sigma * pos_sigma,
            pos_sigma * pos_sigma,
            vel_sigma * vel_sigma,
            vel_sigma * vel_sigma,
        ));
        MotionState {
            est: StateAndCovariance::new(Vector4::new(x, y, 0.0, 0.0), p),
        }
    }

    /// Predicts `dt` seconds ahead.
    pub fn predict(&mut self, dt: f64, accel_sigma: f64) {
        let model = ConstantVelocity::new(dt.max(0.0), accel_sigma);
        self.est = model.predict(&self.est);
    }

    /// Corrects with a measured position. On a numerical failure the state is reset to the
    /// measurement (keeping the velocity) rather than left invalid.
    pub fn update(&mut self, x: f64, y: f64, meas_sigma: f64) {
        let obs = PositionObservation::new(meas_sigma.max(1e-3));
        match obs.update(
            &self.est,
            &Vector2::new(x, y),
            CovarianceUpdateMethod::JosephForm,
        ) {
            Ok(e) if e.state().iter().all(|v| v.is_finite()) => self.est = e,
            _ => {
                let v = self.velocity();
                *self = MotionState::new(x, y, meas_sigma, 1.0);
                self.est.state_mut()[2] = v.0;
                self.est.state_mut()[3] = v.1;
            }
        }
    }

    /// Position (px).
    pub fn position(&self) -> (f64, f64) {
        let s = self.est.state();
        (s[0], s[1])
    }

    /// Velocity (px/s).
    pub fn velocity(&self) -> (f64, f64) {
        let s = self.est.state();
        (s[2], s[3])
    }

    /// Sets the velocity (px/s).
    pub fn set_velocity(&mut self, vx: f64, vy: f64) {
        self.est.state_mut()[2] = vx;
        self.est.state_mut()[3] = vy;
    }

    /// Sets the velocity to zero (a dormant track waits where it was last seen).
    pub fn stop(&mut self) {
        self.est.state_mut()[2] = 0.0;
        self.est.state_mut()[3] = 0.0;
    }

    /// Multiplies the velocity by `factor` (a coasting track slows down).
    pub fn damp_velocity(&mut self, factor: f64) {
        self.est.state_mut()[2] *= factor;
        self.est.state_mut()[3] *= factor;
    }

    /// Standard deviation of the position (px): √ of the mean of the x and y variances.
    pub fn position_sigma(&self) -> f64 {
        let c = self.est.covariance();
        ((c[(0, 0)] + c[(1, 1)]) / 2.0).max(0.0).sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_constant_velocity_and_predicts_ahead() {
        let mut m = MotionState::new(0.0, 0.0, 1.0, 100.0);
        for k in 1..=20 {
            m.predict(0.04, 50.0);
            m.update(k as f64 * 2.0, 10.0 - k as f64, 0.5);
        }
        let (vx, vy) = m.velocity();
        assert!(
            (vx - 50.0).abs() < 3.0 && (vy + 25.0).abs() < 3.0,
            "velocity {vx} {vy}"
        );
        m.predict(0.2, 50.0);
        let (x, y) = m.position();
        assert!(
            (x - 50.0).abs() < 1.5 && (y + 15.0).abs() < 1.5,
            "predicted {x} {y}"
        );
        let s0 = m.position_sigma();
        m.predict(0.4, 50.0);
        assert!(m.position_sigma() > s0, "uncertainty grows while coasting");
    }
}
