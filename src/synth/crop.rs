//! Oriented crops with the detector's geometry: rotate so the body axis is horizontal using
//! the smaller rotation (a fish facing left stays facing left, dorsal up — never mirrored),
//! box length = body length × 1.3, box height = box length / 3 (for the default 192×64),
//! resampled to W×H. Must never change the frame it reads.

/// Box length as a multiple of the body length.
pub const CROP_LENGTH_FACTOR: f32 = 1.3;

/// Folds a body axis angle (radians, image coordinates) into (−π/2, π/2]: the smaller
/// rotation that makes the axis horizontal.
pub fn fold_axis(angle: f32) -> f32 {
    use std::f32::consts::PI;
    let mut a = angle.rem_euclid(PI);
    if a > PI / 2.0 {
        a -= PI;
    }
    a
}

/// Geometry of one oriented crop in frame pixels.
#[derive(Debug, Clone, Copy)]
pub struct CropBox {
    /// Centre x.
    pub cx: f32,
    /// Centre y.
    pub cy: f32,
    /// Axis angle in (−π/2, π/2] (see [`fold_axis`]).
    pub angle: f32,
    /// Box length along the axis, px (body length × [`CROP_LENGTH_FACTOR`]).
    pub length: f32,
    /// Box height across the axis, px.
    pub height: f32,
}

impl CropBox {
    /// The detector's box for a fish of `body_length` px whose axis has image angle `angle`.
    pub fn for_body(
        cx: f32,
        cy: f32,
        angle: f32,
        body_length: f32,
        out_w: u32,
        out_h: u32,
    ) -> Self {
        let length = body_length * CROP_LENGTH_FACTOR;
        CropBox {
            cx,
            cy,
            angle: fold_axis(angle),
            length,
            height: length * out_h as f32 / out_w.max(1) as f32,
        }
    }

    /// Frame position of output pixel (i, j) of an `out_w × out_h` crop.
    #[inline]
    fn map(&self, i: u32, j: u32, out_w: u32, out_h: u32) -> (f32, f32) {
        let (s, c) = self.angle.sin_cos();
        let a = ((i as f32 + 0.5) / out_w as f32 - 0.5) * self.length;
        let b = ((j as f32 + 0.5) / out_h as f32 - 0.5) * self.height;
        (self.cx + a * c - b * s, self.cy + a * s + b * c)
    }
}

/// Cuts an RGB crop (bilinear; outside the frame reads the nearest edge pixel).
pub fn crop_rgb(rgb: &[u8], w: usize, h: usize, b: &CropBox, out_w: u32, out_h: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(out_w as usize * out_h as usize * 3);
    if w == 0 || h == 0 || rgb.len() < w * h * 3 {
        out.resize(out_w as usize * out_h as usize * 3, 0);
        return out;
    }
    let px = |x: i64, y: i64, ch: usize| -> f32 {
        let xi = x.clamp(0, w as i64 - 1) as usize;
        let yi = y.clamp(0, h as i64 - 1) as usize;
        f32::from(rgb[(yi * w + xi) * 3 + ch])
    };
    for j in 0..out_h {
        for i in 0..out_w {
            let (x, y) = b.map(i, j, out_w, out_h);
            let (xf, yf) = (x - 0.5, y - 0.5);
            let (x0, y0) = (xf.floor(), yf.floor());
            let (fx, fy) = (xf - x0, yf - y0);
            let (x0, y0) = (x0 as i64, y0 as i64);
            for ch in 0..3 {
                let top = px(x0, y0, ch) * (1.0 - fx) + px(x0 + 1, y0, ch) * fx;
                let bot = px(x0, y0 + 1, ch) * (1.0 - fx) + px(x0 + 1, y0 + 1, ch) * fx;
                out.push((top * (1.0 - fy) + bot * fy).round().clamp(0.0, 255.0) as u8);
            }
        }
    }
    out
}

/// Cuts the crop mask of fish `id`: 0 = not this fish (background or something in front of
/// it), 128 = head, fins or tail, 255 = striped flank region.
///
/// Sampled at the same points and with the same bilinear weights as [`crop_rgb`]: an output
/// pixel shows the fish when the fish pixels carry at least half of its weight, and is
/// striped flank when flank pixels carry at least half of that. (A nearest-pixel lookup
/// here used to hit single corner pixels of the silhouette's staircase edge from one crop
/// row while the rows above and below fell beside them, leaving one-row flank slivers, and it
/// disagreed with the RGB crop by half a pixel at every edge.)
#[allow(clippy::too_many_arguments)]
pub fn crop_mask(
    id_map: &[u16],
    part: &[u8],
    w: usize,
    h: usize,
    id: u16,
    b: &CropBox,
    out_w: u32,
    out_h: u32,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(out_w as usize * out_h as usize);
    // Part code of frame pixel (x, y) when it shows fish `id` (0 otherwise or outside).
    let part_at = |x: i64, y: i64| -> u8 {
        if x < 0 || y < 0 || x >= w as i64 || y >= h as i64 {
            return 0;
        }
        let k = y as usize * w + x as usize;
        match (id_map.get(k), part.get(k)) {
            (Some(&m), Some(&p)) if m == id => p,
            _ => 0,
        }
    };
    for j in 0..out_h {
        for i in 0..out_w {
            let (x, y) = b.map(i, j, out_w, out_h);
            let (xf, yf) = (x - 0.5, y - 0.5);
            let (x0, y0) = (xf.floor(), yf.floor());
            let (fx, fy) = (xf - x0, yf - y0);
            let (x0, y0) = (x0 as i64, y0 as i64);
            let (mut fish, mut flank) = (0f32, 0f32);
            for (dx, dy, wgt) in [
                (0, 0, (1.0 - fx) * (1.0 - fy)),
                (1, 0, fx * (1.0 - fy)),
                (0, 1, (1.0 - fx) * fy),
                (1, 1, fx * fy),
            ] {
                match part_at(x0 + dx, y0 + dy) {
                    2 => {
                        fish += wgt;
                        flank += wgt;
                    }
                    1 => fish += wgt,
                    _ => {}
                }
            }
            out.push(if fish < 0.5 {
                0
            } else if flank >= 0.5 * fish {
                255
            } else {
                128
            });
        }
    }
    out
}

/// The detector's blob measurements of the pixels equal to `id` inside `scan` (x0, y0, x1,
/// y1, exclusive ends): centroid, axis angle in (−π/2, π/2] and major axis length (4·√λ₁ of
/// the second moments, as the detector computes it). `None` when the fish has no pixel.
pub fn blob_axis(
    id_map: &[u16],
    w: usize,
    scan: [usize; 4],
    id: u16,
) -> Option<(f32, f32, f32, f32)> {
    let (mut n, mut sx, mut sy, mut sxx, mut syy, mut sxy) = (0f64, 0f64, 0f64, 0f64, 0f64, 0f64);
    for y in scan[1]..scan[3] {
        let row = id_map.get(y * w..(y + 1) * w)?;
        for (x, &v) in row.iter().enumerate().take(scan[2].min(w)).skip(scan[0]) {
            if v == id {
                let (xf, yf) = (x as f64 + 0.5, y as f64 + 0.5);
                n += 1.0;
                sx += xf;
                sy += yf;
                sxx += xf * xf;
                syy += yf * yf;
                sxy += xf * yf;
            }
        }
    }
    if n < 1.0 {
        return None;
    }
    let (mx, my) = (sx / n, sy / n);
    let cxx = (sxx / n - mx * mx).max(0.0) + 1.0 / 12.0;
    let cyy = (syy / n - my * my).max(0.0) + 1.0 / 12.0;
    let cxy = sxy / n - mx * my;
    let mut angle = 0.5 * (2.0 * cxy).atan2(cxx - cyy);
    if angle <= -std::f64::consts::FRAC_PI_2 {
        angle += std::f64::consts::PI;
    }
    let disc = ((cxx - cyy) * (cxx - cyy) / 4.0 + cxy * cxy)
        .max(0.0)
        .sqrt();
    let l1 = ((cxx + cyy) / 2.0 + disc).max(0.0);
    Some((mx as f32, my as f32, angle as f32, (4.0 * l1.sqrt()) as f32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fold_axis_takes_the_smaller_rotation() {
        use std::f32::consts::PI;
        assert!((fold_axis(PI) - 0.0).abs() < 1e-5);
        assert!((fold_axis(PI - 0.2) + 0.2).abs() < 1e-5);
        assert!((fold_axis(-PI + 0.3) - 0.3).abs() < 1e-5);
        assert!((fold_axis(PI / 2.0) - PI / 2.0).abs() < 1e-5);
    }

    #[test]
    fn crop_never_mirrors() {
        // A frame whose left half is dark and right half bright: an axis pointing left (π)
        // must give the same crop as axis 0 (no mirroring).
        let (w, h) = (40usize, 20usize);
        let mut rgb = vec![0u8; w * h * 3];
        for y in 0..h {
            for x in w / 2..w {
                rgb[(y * w + x) * 3..(y * w + x) * 3 + 3].fill(250);
            }
        }
        let a = crop_rgb(
            &rgb,
            w,
            h,
            &CropBox::for_body(20.0, 10.0, 0.0, 20.0, 12, 4),
            12,
            4,
        );
        let b = crop_rgb(
            &rgb,
            w,
            h,
            &CropBox::for_body(20.0, 10.0, std::f32::consts::PI, 20.0, 12, 4),
            12,
            4,
        );
        assert_eq!(a, b);
        assert!(a[0] < 10 && a[a.len() - 1] > 240, "left stays left");
    }
}
