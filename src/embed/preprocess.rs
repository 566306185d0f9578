//! Preprocessing of crops into the encoder's input tensor, as the model card says: bilinear resize
//! (half-pixel centres, edge-clamped, no antialias — PyTorch `interpolate(align_corners=False)`),
//! channel order, `(pixel / scale − mean) / std`, NCHW or NHWC. Writes straight into a slot of
//! the batch buffer: no intermediate image. Must never allocate per pixel or panic on a bad crop.

use crate::messages::Crop;

use super::EmbedError;
use super::card::{CardInput, ColorOrder, Layout};

/// Per-output-coordinate source indices and weight for one axis.
#[derive(Debug, Clone, Copy)]
struct Tap {
    i0: usize,
    i1: usize,
    w1: f32,
}

fn taps(src: usize, dst: usize) -> Vec<Tap> {
    let scale = src as f64 / dst as f64;
    (0..dst)
        .map(|o| {
            let f = ((o as f64 + 0.5) * scale - 0.5).clamp(0.0, (src - 1) as f64);
            let i0 = f.floor() as usize;
            let i1 = (i0 + 1).min(src - 1);
            Tap {
                i0,
                i1,
                w1: (f - i0 as f64) as f32,
            }
        })
        .collect()
}

/// Checks that a crop's buffer matches its size.
pub fn check_crop(crop: &Crop) -> Result<(), EmbedError> {
    let (w, h) = (crop.width as usize, crop.height as usize);
    if w == 0 || h == 0 || crop.rgb.len() != w * h * 3 {
        return Err(EmbedError::BadCrop {
            message: format!(
                "crop is {}×{} with {} bytes; need width, height ≥ 1 and width×height×3 bytes of RGB",
                crop.width,
                crop.height,
                crop.rgb.len()
            ),
        });
    }
    Ok(())
}

/// Preprocesses `crops` into `out`, resized to `rows` crops' worth of values (`rows` ≥
/// `crops.len()`; rows past the crops, the padding of a fixed-batch model, are zero).
pub fn preprocess_batch_into(
    crops: &[&Crop],
    input: &CardInput,
    rows: usize,
    out: &mut Vec<f32>,
) -> Result<(), EmbedError> {
    let len = input.values_per_crop();
    out.clear();
    out.resize(rows.max(crops.len()) * len, 0.0);
    for (crop, slot) in crops.iter().zip(out.chunks_exact_mut(len)) {
        preprocess_into(crop, input, slot)?;
    }
    Ok(())
}

/// Writes one crop, preprocessed per `input`, into `dst` (exactly `3·height·width` values).
pub fn preprocess_into(crop: &Crop, input: &CardInput, dst: &mut [f32]) -> Result<(), EmbedError> {
    check_crop(crop)?;
    let (oh, ow) = (input.height, input.width);
    let plane = oh * ow;
    if dst.len() != 3 * plane {
        return Err(EmbedError::BadCrop {
            message: format!(
                "batch slot holds {} values, the card needs {}",
                dst.len(),
                3 * plane
            ),
        });
    }
    // Model channel c reads source channel src_ch[c].
    let src_ch: [usize; 3] = match input.color {
        ColorOrder::Rgb => [0, 1, 2],
        ColorOrder::Bgr => [2, 1, 0],
    };
    let mut a = [0f32; 3];
    let mut b = [0f32; 3];
    for c in 0..3 {
        a[c] = 1.0 / (input.scale * input.std[c]);
        b[c] = -input.mean[c] / input.std[c];
    }
    let (iw, ih) = (crop.width as usize, crop.height as usize);
    let rgb = &crop.rgb;
    let nchw = input.layout == Layout::Nchw;
    let mut put = |y: usize, x: usize, px: [f32; 3]| {
        for c in 0..3 {
            let v = px[src_ch[c]] * a[c] + b[c];
            let idx = if nchw {
                c * plane + y * ow + x
            } else {
                (y * ow + x) * 3 + c
            };
            dst[idx] = v;
        }
    };
    if iw == ow && ih == oh {
        for y in 0..oh {
            for x in 0..ow {
                let p = (y * iw + x) * 3;
                put(y, x, [rgb[p] as f32, rgb[p + 1] as f32, rgb[p + 2] as f32]);
            }
        }
        return Ok(());
    }
    let xt = taps(iw, ow);
    let yt = taps(ih, oh);
    for (y, ty) in yt.iter().enumerate() {
        let r0 = ty.i0 * iw * 3;
        let r1 = ty.i1 * iw * 3;
        let wy1 = ty.w1;
        let wy0 = 1.0 - wy1;
        for (x, tx) in xt.iter().enumerate() {
            let (c0, c1) = (tx.i0 * 3, tx.i1 * 3);
            let wx1 = tx.w1;
            let wx0 = 1.0 - wx1;
            let mut px = [0f32; 3];
            for (k, v) in px.iter_mut().enumerate() {
                let top = rgb[r0 + c0 + k] as f32 * wx0 + rgb[r0 + c1 + k] as f32 * wx1;
                let bot = rgb[r1 + c0 + k] as f32 * wx0 + rgb[r1 + c1 + k] as f32 * wx1;
                *v = top * wy0 + bot * wy1;
            }
            put(y, x, px);
        }
    }
    Ok(())
}

/// L2-normalises in place; returns false (and zeroes nothing) when the vector is not finite or
/// has zero norm.
pub fn l2_normalize(v: &mut [f32]) -> bool {
    let n2: f32 = v.iter().map(|x| x * x).sum();
    if !n2.is_finite() || n2 <= 0.0 {
        return false;
    }
    let inv = 1.0 / n2.sqrt();
    v.iter_mut().for_each(|x| *x *= inv);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(h: usize, w: usize, layout: Layout, color: ColorOrder) -> CardInput {
        CardInput {
            name: "input".into(),
            layout,
            channels: 3,
            color,
            height: h,
            width: w,
            scale: 255.0,
            mean: [0.5, 0.25, 0.0],
            std: [0.5, 0.25, 1.0],
        }
    }

    #[test]
    fn upscale_2x_matches_hand_computation() {
        // 2×1 source (one row): red 0 → 200, green 100, blue 50 → 250.
        let crop = Crop {
            width: 2,
            height: 1,
            rgb: vec![0, 100, 50, 200, 100, 250],
        };
        let inp = input(1, 4, Layout::Nchw, ColorOrder::Rgb);
        let mut out = vec![0f32; 12];
        preprocess_into(&crop, &inp, &mut out).unwrap();
        // Output x=0..3 maps to source x = clamp((x+0.5)/2-0.5) = 0, 0.25, 0.75, 1.
        let red = [0.0, 50.0, 150.0, 200.0];
        for (x, r) in red.iter().enumerate() {
            let want = (r / 255.0 - 0.5) / 0.5;
            assert!(
                (out[x] - want).abs() < 1e-6,
                "red x={x}: {} vs {want}",
                out[x]
            );
            let want_g = (100.0 / 255.0 - 0.25) / 0.25;
            assert!((out[4 + x] - want_g).abs() < 1e-6);
        }
        let blue = [50.0, 100.0, 200.0, 250.0];
        for (x, bl) in blue.iter().enumerate() {
            let want = bl / 255.0;
            assert!((out[8 + x] - want).abs() < 1e-6, "blue x={x}");
        }
    }

    #[test]
    fn nhwc_bgr_same_size_is_a_pure_normalisation() {
        let crop = Crop {
            width: 2,
            height: 2,
            rgb: (0..12).map(|v| v * 20).collect(),
        };
        let inp = input(2, 2, Layout::Nhwc, ColorOrder::Bgr);
        let mut out = vec![0f32; 12];
        preprocess_into(&crop, &inp, &mut out).unwrap();
        for p in 0..4 {
            let (r, g, bl) = (
                crop.rgb[p * 3] as f32,
                crop.rgb[p * 3 + 1] as f32,
                crop.rgb[p * 3 + 2] as f32,
            );
            // model channel 0 = blue with mean/std[0]
            assert!((out[p * 3] - (bl / 255.0 - 0.5) / 0.5).abs() < 1e-6);
            assert!((out[p * 3 + 1] - (g / 255.0 - 0.25) / 0.25).abs() < 1e-6);
            assert!((out[p * 3 + 2] - r / 255.0).abs() < 1e-6);
        }
    }

    #[test]
    fn bad_crop_is_an_error_not_a_panic() {
        let crop = Crop {
            width: 3,
            height: 2,
            rgb: vec![0; 5],
        };
        let inp = input(2, 2, Layout::Nchw, ColorOrder::Rgb);
        let mut out = vec![0f32; 12];
        let err = preprocess_into(&crop, &inp, &mut out).unwrap_err();
        assert!(err.to_string().contains("3×2 with 5 bytes"), "{err}");
    }

    #[test]
    fn normalize_rejects_nan_and_zero() {
        let mut v = vec![3.0, 4.0];
        assert!(l2_normalize(&mut v));
        assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
        assert!(!l2_normalize(&mut [0.0, 0.0]));
        assert!(!l2_normalize(&mut [f32::NAN, 1.0]));
    }
}
