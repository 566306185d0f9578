//! Low-level image operations of the detector on 8-bit working images: box downscaling,
//! binary morphology, polygon rasterisation and 8-connected component labelling with moments.
//!
//! Everything here is pure and allocation-light (callers pass reusable buffers). It must never
//! know about fish, tracks or configuration.

/// Box-averages `src` (`w`×`h`, tightly packed) by an integer `factor` into `dst`
/// (`w/factor` × `h/factor`; the right/bottom remainder is dropped).
pub fn downscale_box(src: &[u8], w: usize, h: usize, factor: usize, dst: &mut Vec<u8>) {
    let f = factor.max(1);
    let (ow, oh) = (w / f, h / f);
    dst.clear();
    dst.resize(ow * oh, 0);
    if f == 1 {
        dst.copy_from_slice(&src[..ow * oh]);
        return;
    }
    if f == 2 {
        for oy in 0..oh {
            let r0 = &src[2 * oy * w..2 * oy * w + 2 * ow];
            let r1 = &src[(2 * oy + 1) * w..(2 * oy + 1) * w + 2 * ow];
            let out = &mut dst[oy * ow..(oy + 1) * ow];
            for ((o, a), b) in out
                .iter_mut()
                .zip(r0.chunks_exact(2))
                .zip(r1.chunks_exact(2))
            {
                *o = ((a[0] as u16 + a[1] as u16 + b[0] as u16 + b[1] as u16 + 2) >> 2) as u8;
            }
        }
        return;
    }
    let n = (f * f) as u32;
    let mut acc = vec![0u32; ow];
    for oy in 0..oh {
        acc.iter_mut().for_each(|a| *a = 0);
        for dy in 0..f {
            let row = &src[(oy * f + dy) * w..(oy * f + dy) * w + ow * f];
            for (ox, a) in acc.iter_mut().enumerate() {
                let px = &row[ox * f..ox * f + f];
                *a += px.iter().map(|&v| v as u32).sum::<u32>();
            }
        }
        let out = &mut dst[oy * ow..(oy + 1) * ow];
        for (o, a) in out.iter_mut().zip(&acc) {
            *o = ((a + n / 2) / n) as u8;
        }
    }
}

/// Horizontal pass of a square min/max filter of radius `r` on a 0/1 mask (`w`×`h`).
/// `erode`: a pixel stays 1 only if every in-frame pixel of its window is 1 (the frame border
/// does not erode). Dilate: 1 if any pixel of the window is 1.
fn hpass(src: &[u8], dst: &mut [u8], w: usize, r: usize, erode: bool) {
    let test = |ones: u32, n: u32| {
        if erode {
            (ones == n) as u8
        } else {
            (ones > 0) as u8
        }
    };
    for (s, d) in src.chunks_exact(w).zip(dst.chunks_exact_mut(w)) {
        if w <= 2 * r + 1 {
            // Narrow rows: straightforward clamped windows.
            for (i, o) in d.iter_mut().enumerate() {
                let lo = i.saturating_sub(r);
                let hi = (i + r).min(w - 1);
                let ones: u32 = s[lo..=hi].iter().map(|&v| v as u32).sum();
                *o = test(ones, (hi - lo + 1) as u32);
            }
            continue;
        }
        let mut ones: u32 = s[..r].iter().map(|&v| v as u32).sum();
        // Left edge: window [0, i + r].
        for i in 0..r {
            ones += s[i + r] as u32;
            d[i] = test(ones, (i + r + 1) as u32);
        }
        // Interior: window [i - r, i + r], full width.
        let n = (2 * r + 1) as u32;
        for i in r..w - r {
            ones += s[i + r] as u32;
            d[i] = test(ones, n);
            ones -= s[i - r] as u32;
        }
        // Right edge: window [i - r, w - 1] (`ones` already excludes s[i - r - 1]).
        for i in w - r..w {
            d[i] = test(ones, (w - (i - r)) as u32);
            ones -= s[i - r] as u32;
        }
    }
}

/// Square erosion (`erode = true`) or dilation of a 0/1 mask in place, radius `r`: a
/// horizontal pass (sliding count along each row), then a vertical pass done row by row with
/// per-column counts (cache-friendly).
pub fn morph(mask: &mut [u8], w: usize, h: usize, r: usize, erode: bool, tmp: &mut Vec<u8>) {
    if r == 0 || w == 0 || h == 0 {
        return;
    }
    tmp.clear();
    tmp.resize(w * h, 0);
    hpass(mask, tmp, w, r, erode);
    // Vertical: counts[x] = ones of column x in rows [y - r, y + r] (clamped).
    let mut counts = vec![0u16; w];
    for row in tmp.chunks_exact(w).take(r.min(h - 1) + 1) {
        for (c, &v) in counts.iter_mut().zip(row) {
            *c += v as u16;
        }
    }
    for y in 0..h {
        let lo = y.saturating_sub(r);
        let hi = (y + r).min(h - 1);
        let n = (hi - lo + 1) as u16;
        let out = &mut mask[y * w..(y + 1) * w];
        if erode {
            for (o, &c) in out.iter_mut().zip(&counts) {
                *o = (c == n) as u8;
            }
        } else {
            for (o, &c) in out.iter_mut().zip(&counts) {
                *o = (c > 0) as u8;
            }
        }
        if y + r + 1 < h {
            for (c, &v) in counts
                .iter_mut()
                .zip(&tmp[(y + r + 1) * w..(y + r + 2) * w])
            {
                *c += v as u16;
            }
        }
        if y >= r {
            for (c, &v) in counts.iter_mut().zip(&tmp[(y - r) * w..(y - r + 1) * w]) {
                *c -= v as u16;
            }
        }
    }
}

/// Morphological opening (removes specks and thin protrusions) then closing (fills small gaps).
pub fn open_close(
    mask: &mut [u8],
    w: usize,
    h: usize,
    open: usize,
    close: usize,
    tmp: &mut Vec<u8>,
) {
    if open > 0 {
        morph(mask, w, h, open, true, tmp);
        morph(mask, w, h, open, false, tmp);
    }
    if close > 0 {
        morph(mask, w, h, close, false, tmp);
        morph(mask, w, h, close, true, tmp);
    }
}

/// Fills `mask` (`w`×`h`) with `value` inside `poly` (vertices in working-image pixel
/// coordinates, even-odd rule, pixel centres sampled).
pub fn fill_polygon(mask: &mut [u8], w: usize, h: usize, poly: &[[f32; 2]], value: u8) {
    if poly.len() < 3 {
        return;
    }
    let mut xs: Vec<f32> = Vec::new();
    for y in 0..h {
        let yc = y as f32 + 0.5;
        xs.clear();
        for i in 0..poly.len() {
            let [x0, y0] = poly[i];
            let [x1, y1] = poly[(i + 1) % poly.len()];
            if (y0 <= yc && y1 > yc) || (y1 <= yc && y0 > yc) {
                xs.push(x0 + (yc - y0) / (y1 - y0) * (x1 - x0));
            }
        }
        xs.sort_by(|a, b| a.total_cmp(b));
        for pair in xs.chunks_exact(2) {
            // pixel centres x+0.5 in [pair0, pair1)
            let start = (pair[0] - 0.5).ceil().max(0.0) as usize;
            let end_f = (pair[1] - 0.5).ceil();
            if end_f <= 0.0 {
                continue;
            }
            let end = (end_f as usize).min(w);
            if start < end {
                mask[y * w + start..y * w + end].fill(value);
            }
        }
    }
}

/// Statistics of one connected component (working-image pixel coordinates, pixel centres at
/// integer coordinates).
#[derive(Debug, Clone, Copy, Default)]
pub struct Blob {
    /// Label value of the component in the label image.
    pub label: u32,
    /// Pixel count.
    pub n: u32,
    /// Sum of x.
    pub sx: f64,
    /// Sum of y.
    pub sy: f64,
    /// Sum of x².
    pub sxx: f64,
    /// Sum of y².
    pub syy: f64,
    /// Sum of x·y.
    pub sxy: f64,
    /// Leftmost column.
    pub x0: u32,
    /// Topmost row.
    pub y0: u32,
    /// Rightmost column (inclusive).
    pub x1: u32,
    /// Bottom row (inclusive).
    pub y1: u32,
}

impl Blob {
    fn new(label: u32) -> Blob {
        Blob {
            label,
            x0: u32::MAX,
            y0: u32::MAX,
            ..Default::default()
        }
    }

    /// Adds one pixel.
    #[inline]
    pub fn add(&mut self, x: u32, y: u32) {
        let (xf, yf) = (x as f64, y as f64);
        self.n += 1;
        self.sx += xf;
        self.sy += yf;
        self.sxx += xf * xf;
        self.syy += yf * yf;
        self.sxy += xf * yf;
        self.x0 = self.x0.min(x);
        self.y0 = self.y0.min(y);
        self.x1 = self.x1.max(x);
        self.y1 = self.y1.max(y);
    }

    /// Adds another blob's pixels (statistics and box; its label is dropped).
    pub fn absorb(&mut self, o: &Blob) {
        self.n += o.n;
        self.sx += o.sx;
        self.sy += o.sy;
        self.sxx += o.sxx;
        self.syy += o.syy;
        self.sxy += o.sxy;
        self.x0 = self.x0.min(o.x0);
        self.y0 = self.y0.min(o.y0);
        self.x1 = self.x1.max(o.x1);
        self.y1 = self.y1.max(o.y1);
    }

    /// Centroid and central second moments `(mx, my, cxx, cyy, cxy)`; the variances include
    /// the 1/12 of a unit pixel so that a one-pixel-wide bar has a non-zero width.
    pub fn moments(&self) -> (f64, f64, f64, f64, f64) {
        let n = self.n.max(1) as f64;
        let mx = self.sx / n;
        let my = self.sy / n;
        let cxx = (self.sxx / n - mx * mx).max(0.0) + 1.0 / 12.0;
        let cyy = (self.syy / n - my * my).max(0.0) + 1.0 / 12.0;
        let cxy = self.sxy / n - mx * my;
        (mx, my, cxx, cyy, cxy)
    }
}

/// Axis angle in (-π/2, π/2] and full major/minor axis lengths (4·√λ) of second moments.
pub fn axis_from_moments(cxx: f64, cyy: f64, cxy: f64) -> (f64, f64, f64) {
    let mut angle = 0.5 * (2.0 * cxy).atan2(cxx - cyy);
    if angle <= -std::f64::consts::FRAC_PI_2 {
        angle += std::f64::consts::PI;
    }
    let tr = cxx + cyy;
    let disc = ((cxx - cyy) * (cxx - cyy) / 4.0 + cxy * cxy)
        .max(0.0)
        .sqrt();
    let l1 = (tr / 2.0 + disc).max(0.0);
    let l2 = (tr / 2.0 - disc).max(0.0);
    (angle, 4.0 * l1.sqrt(), 4.0 * l2.sqrt())
}

/// Reusable 8-connected component labeller (two-pass, union-find).
#[derive(Debug, Default)]
pub struct Labeller {
    /// Label image (0 = background), valid after [`Labeller::label`].
    pub labels: Vec<u32>,
    parent: Vec<u32>,
    root_slot: Vec<u32>,
}

impl Labeller {
    fn find(parent: &mut [u32], mut a: u32) -> u32 {
        while parent[a as usize] != a {
            let p = parent[a as usize];
            parent[a as usize] = parent[p as usize];
            a = p;
        }
        a
    }

    fn union(parent: &mut [u32], a: u32, b: u32) -> u32 {
        let ra = Self::find(parent, a);
        let rb = Self::find(parent, b);
        if ra == rb {
            return ra;
        }
        let (lo, hi) = if ra < rb { (ra, rb) } else { (rb, ra) };
        parent[hi as usize] = lo;
        lo
    }

    /// Labels the non-zero pixels of `mask` into 8-connected components and returns their
    /// statistics; `labels` then holds, per pixel, the component's `Blob::label`.
    pub fn label(&mut self, mask: &[u8], w: usize, h: usize, out: &mut Vec<Blob>) {
        out.clear();
        self.labels.clear();
        self.labels.resize(w * h, 0);
        self.parent.clear();
        self.parent.push(0);
        let labels = &mut self.labels;
        let parent = &mut self.parent;
        for y in 0..h {
            for x in 0..w {
                let i = y * w + x;
                if mask[i] == 0 {
                    continue;
                }
                let mut l = 0u32;
                // neighbours already visited: W, NW, N, NE
                let consider = |nl: u32, l: &mut u32, parent: &mut Vec<u32>| {
                    if nl != 0 {
                        *l = if *l == 0 {
                            Self::find(parent, nl)
                        } else {
                            Self::union(parent, *l, nl)
                        };
                    }
                };
                if x > 0 {
                    consider(labels[i - 1], &mut l, parent);
                }
                if y > 0 {
                    let up = i - w;
                    if x > 0 {
                        consider(labels[up - 1], &mut l, parent);
                    }
                    consider(labels[up], &mut l, parent);
                    if x + 1 < w {
                        consider(labels[up + 1], &mut l, parent);
                    }
                }
                if l == 0 {
                    l = parent.len() as u32;
                    parent.push(l);
                }
                labels[i] = l;
            }
        }
        // Resolve roots to compact slots, accumulate stats.
        self.root_slot.clear();
        self.root_slot.resize(parent.len(), u32::MAX);
        for y in 0..h {
            for x in 0..w {
                let i = y * w + x;
                let l = labels[i];
                if l == 0 {
                    continue;
                }
                let r = Self::find(parent, l);
                let slot = &mut self.root_slot[r as usize];
                if *slot == u32::MAX {
                    *slot = out.len() as u32;
                    out.push(Blob::new(out.len() as u32 + 1));
                }
                let b = &mut out[*slot as usize];
                labels[i] = b.label;
                b.add(x as u32, y as u32);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_two_diagonal_touching_pixels_as_one_component() {
        // 8-connectivity: diagonal neighbours join; a separate pixel stays apart.
        let mask = [
            1, 0, 0, 0, //
            0, 1, 0, 1, //
            0, 0, 0, 1,
        ];
        let mut l = Labeller::default();
        let mut blobs = Vec::new();
        l.label(&mask, 4, 3, &mut blobs);
        assert_eq!(blobs.len(), 2);
        let mut sizes: Vec<u32> = blobs.iter().map(|b| b.n).collect();
        sizes.sort();
        assert_eq!(sizes, vec![2, 2]);
    }

    #[test]
    fn u_shape_merges_into_one_component() {
        // Two arms that only join at the bottom: needs the union step.
        let mask = [
            1, 0, 1, //
            1, 0, 1, //
            1, 1, 1,
        ];
        let mut l = Labeller::default();
        let mut blobs = Vec::new();
        l.label(&mask, 3, 3, &mut blobs);
        assert_eq!(blobs.len(), 1);
        assert_eq!(blobs[0].n, 7);
        assert!(
            l.labels
                .iter()
                .zip(&mask)
                .all(|(&lab, &m)| (lab != 0) == (m != 0))
        );
    }

    #[test]
    fn opening_removes_speck_keeps_square() {
        let (w, h) = (12, 12);
        let mut mask = vec![0u8; w * h];
        for y in 3..9 {
            for x in 3..9 {
                mask[y * w + x] = 1;
            }
        }
        mask[w + 10] = 1; // isolated speck
        let mut tmp = Vec::new();
        open_close(&mut mask, w, h, 1, 0, &mut tmp);
        assert_eq!(mask[w + 10], 0);
        assert_eq!(mask.iter().map(|&v| v as usize).sum::<usize>(), 36);
    }

    #[test]
    fn morphology_matches_brute_force() {
        // Pseudo-random masks, all radii up to the frame size: compare with a direct min/max.
        let (w, h) = (9, 7);
        let mut seed = 12345u32;
        for r in 0..5 {
            for erode in [true, false] {
                let mut mask: Vec<u8> = (0..w * h)
                    .map(|_| {
                        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                        (!(seed >> 16).is_multiple_of(3)) as u8
                    })
                    .collect();
                let orig = mask.clone();
                let mut expect = vec![0u8; w * h];
                for y in 0..h {
                    for x in 0..w {
                        let (x0, x1) = (x.saturating_sub(r), (x + r).min(w - 1));
                        let (y0, y1) = (y.saturating_sub(r), (y + r).min(h - 1));
                        let win = (y0..=y1).flat_map(|yy| (x0..=x1).map(move |xx| (xx, yy)));
                        let mut vals = win.map(|(xx, yy)| orig[yy * w + xx]);
                        expect[y * w + x] = if erode {
                            vals.all(|v| v == 1) as u8
                        } else {
                            vals.any(|v| v == 1) as u8
                        };
                    }
                }
                let mut tmp = Vec::new();
                morph(&mut mask, w, h, r, erode, &mut tmp);
                if r == 0 {
                    assert_eq!(mask, orig);
                } else {
                    assert_eq!(mask, expect, "r {r} erode {erode}");
                }
            }
        }
    }

    #[test]
    fn polygon_fill_covers_expected_area() {
        let (w, h) = (20, 20);
        let mut mask = vec![0u8; w * h];
        fill_polygon(
            &mut mask,
            w,
            h,
            &[[2.0, 2.0], [12.0, 2.0], [12.0, 7.0], [2.0, 7.0]],
            1,
        );
        assert_eq!(mask.iter().map(|&v| v as usize).sum::<usize>(), 50);
        assert_eq!(mask[2 * w + 2], 1);
        assert_eq!(mask[7 * w + 2], 0);
    }

    #[test]
    fn downscale_averages_blocks() {
        let src = [0u8, 2, 10, 10, 4, 6, 10, 10];
        let mut dst = Vec::new();
        downscale_box(&src, 4, 2, 2, &mut dst);
        assert_eq!(dst, vec![3, 10]);
    }

    #[test]
    fn axis_of_diagonal_moments() {
        let (a, maj, min) = axis_from_moments(2.0, 2.0, 1.0);
        assert!((a - std::f64::consts::FRAC_PI_4).abs() < 1e-9);
        assert!(maj > min);
        let (a, _, _) = axis_from_moments(1.0, 3.0, 0.0);
        assert!((a - std::f64::consts::FRAC_PI_2).abs() < 1e-9);
    }
}
