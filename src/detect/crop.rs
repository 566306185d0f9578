//! Oriented crops: cuts an RGB image around a fish out of the full-resolution frame, rotated
//! so that the body axis is horizontal (bilinear sampling).
//!
//! The mapping is a pure rotation (never a reflection): a left-facing fish stays left-facing
//! and, in side view, the back stays up — the flanks are different identities.

use crate::messages::{Crop, Frame, PixelLayout};

/// Output size of oriented crops (what the encoder expects).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CropSpec {
    /// Width in pixels (along the body axis).
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

impl Default for CropSpec {
    fn default() -> Self {
        CropSpec {
            width: 192,
            height: 64,
        }
    }
}

/// Bilinear sample of one 8-bit plane (`w`×`h`) at (x, y) in plane pixel coordinates
/// (pixel centres at integers); coordinates outside are clamped to the border.
#[inline]
fn sample_plane(p: &[u8], w: usize, h: usize, x: f32, y: f32) -> f32 {
    if w == 0 || h == 0 {
        return 0.0;
    }
    let xf = x.clamp(0.0, (w - 1) as f32);
    let yf = y.clamp(0.0, (h - 1) as f32);
    let x0 = xf.floor() as usize;
    let y0 = yf.floor() as usize;
    let x1 = (x0 + 1).min(w - 1);
    let y1 = (y0 + 1).min(h - 1);
    let fx = xf - x0 as f32;
    let fy = yf - y0 as f32;
    let g = |xx: usize, yy: usize| p.get(yy * w + xx).copied().unwrap_or(0) as f32;
    let top = g(x0, y0) * (1.0 - fx) + g(x1, y0) * fx;
    let bot = g(x0, y1) * (1.0 - fx) + g(x1, y1) * fx;
    top * (1.0 - fy) + bot * fy
}

/// Bilinear RGB sample of a frame at full-resolution pixel coordinates.
fn sample_rgb(frame: &Frame, x: f32, y: f32) -> [u8; 3] {
    let w = frame.width as usize;
    let h = frame.height as usize;
    let d = frame.data.as_slice();
    let q = |v: f32| v.round().clamp(0.0, 255.0) as u8;
    match frame.layout {
        PixelLayout::Gray8 => {
            let v = q(sample_plane(d, w, h, x, y));
            [v, v, v]
        }
        PixelLayout::I420 => {
            let cw = w.div_ceil(2);
            let ch = h.div_ceil(2);
            let yv = sample_plane(d, w, h, x, y);
            let (us, vs) = (w * h, w * h + cw * ch);
            let up = d.get(us..us + cw * ch).unwrap_or(&[]);
            let vp = d.get(vs..vs + cw * ch).unwrap_or(&[]);
            // chroma sample centres sit between luma pairs
            let (cx, cy) = ((x - 0.5) / 2.0, (y - 0.5) / 2.0);
            let u = if up.is_empty() {
                128.0
            } else {
                sample_plane(up, cw, ch, cx, cy)
            };
            let v = if vp.is_empty() {
                128.0
            } else {
                sample_plane(vp, cw, ch, cx, cy)
            };
            let c = 1.164 * (yv - 16.0);
            let (dd, e) = (u - 128.0, v - 128.0);
            [
                q(c + 1.596 * e),
                q(c - 0.392 * dd - 0.813 * e),
                q(c + 2.017 * dd),
            ]
        }
        PixelLayout::Rgb8 => {
            let xf = x.clamp(0.0, (w.max(1) - 1) as f32);
            let yf = y.clamp(0.0, (h.max(1) - 1) as f32);
            let x0 = xf.floor() as usize;
            let y0 = yf.floor() as usize;
            let x1 = (x0 + 1).min(w.saturating_sub(1));
            let y1 = (y0 + 1).min(h.saturating_sub(1));
            let (fx, fy) = (xf - x0 as f32, yf - y0 as f32);
            let g = |xx: usize, yy: usize, c: usize| {
                d.get((yy * w + xx) * 3 + c).copied().unwrap_or(0) as f32
            };
            let mut out = [0u8; 3];
            for (c, o) in out.iter_mut().enumerate() {
                let top = g(x0, y0, c) * (1.0 - fx) + g(x1, y0, c) * fx;
                let bot = g(x0, y1, c) * (1.0 - fx) + g(x1, y1, c) * fx;
                *o = q(top * (1.0 - fy) + bot * fy);
            }
            out
        }
    }
}

/// Cuts an oriented crop centred at (`cx`, `cy`) (full-frame pixels) whose horizontal axis
/// follows `angle` (radians, image coordinates, y down). The box is `length` px along the axis
/// and `length * spec.height / spec.width` across, scaled to `spec`.
pub fn oriented_crop(
    frame: &Frame,
    cx: f32,
    cy: f32,
    angle: f32,
    length: f32,
    spec: CropSpec,
) -> Crop {
    let (ow, oh) = (spec.width.max(1), spec.height.max(1));
    let len = length.max(1.0);
    let across = len * oh as f32 / ow as f32;
    let (s, c) = angle.sin_cos();
    let mut rgb = Vec::with_capacity(ow as usize * oh as usize * 3);
    for v in 0..oh {
        let dy = ((v as f32 + 0.5) / oh as f32 - 0.5) * across;
        for u in 0..ow {
            let dx = ((u as f32 + 0.5) / ow as f32 - 0.5) * len;
            let x = cx + dx * c - dy * s;
            let y = cy + dx * s + dy * c;
            rgb.extend_from_slice(&sample_rgb(frame, x, y));
        }
    }
    Crop {
        width: ow,
        height: oh,
        rgb,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::SystemTime;

    fn gray_frame(w: u32, h: u32, f: impl Fn(u32, u32) -> u8) -> Frame {
        let mut data = Vec::with_capacity((w * h) as usize);
        for y in 0..h {
            for x in 0..w {
                data.push(f(x, y));
            }
        }
        Frame {
            camera: Arc::from("t"),
            index: 0,
            pts: None,
            captured: SystemTime::UNIX_EPOCH,
            width: w,
            height: h,
            layout: PixelLayout::Gray8,
            data: Arc::new(data),
        }
    }

    #[test]
    fn crop_of_rotated_bar_is_horizontal_and_not_mirrored() {
        // A dark bar along 30°, with a darker "head" at its +axis end.
        let a = 30f32.to_radians();
        let (cx, cy) = (100.0f32, 80.0f32);
        let frame = gray_frame(200, 160, |x, y| {
            let (dx, dy) = (x as f32 - cx, y as f32 - cy);
            let along = dx * a.cos() + dy * a.sin();
            let across = -dx * a.sin() + dy * a.cos();
            if along.abs() < 30.0 && across.abs() < 4.0 {
                if along > 15.0 { 0 } else { 80 }
            } else {
                220
            }
        });
        let spec = CropSpec {
            width: 96,
            height: 32,
        };
        let crop = oriented_crop(&frame, cx, cy, a, 78.0, spec);
        assert_eq!(crop.rgb.len(), 96 * 32 * 3);
        let px = |u: usize, v: usize| crop.rgb[(v * 96 + u) * 3] as i32;
        // The bar runs along the middle row and not along the top/bottom rows.
        let mid_dark = (10..86).filter(|&u| px(u, 16) < 150).count();
        let top_dark = (0..96).filter(|&u| px(u, 2) < 150).count();
        assert!(mid_dark > 60, "middle row dark pixels {mid_dark}");
        assert_eq!(top_dark, 0);
        // The head (darkest) is on the right side: the +axis end maps to +u.
        assert!(
            px(75, 16) < 30 && px(20, 16) > 50,
            "head at right: {} {}",
            px(75, 16),
            px(20, 16)
        );
    }
}
