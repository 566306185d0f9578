//! Copies a decoded GStreamer sample into the tightly packed planes of a [`Frame`].
//!
//! GStreamer pads rows (strides are rounded up, often to 4 bytes or more) and may place planes
//! anywhere in the buffer (`GstVideoMeta`); this module maps the buffer as a video frame and
//! copies exactly `width` bytes per row of each plane. It never converts colour.

use gstreamer as gst;
use gstreamer_video as gst_video;
use gstreamer_video::prelude::*;

use crate::messages::{Frame, PixelLayout};

/// Pixels of one frame, copied out of a sample.
#[derive(Debug)]
pub(crate) struct Pixels {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Layout of `data`.
    pub layout: PixelLayout,
    /// Tightly packed planes.
    pub data: Vec<u8>,
}

/// Turns samples into packed pixels, caching the parsed caps between frames.
#[derive(Debug, Default)]
pub(crate) struct FrameCopier {
    cached: Option<(gst::Caps, gst_video::VideoInfo, PixelLayout)>,
}

impl FrameCopier {
    /// Copies the sample's pixels. Errors are one line saying what is wrong with the sample.
    pub(crate) fn copy(&mut self, sample: &gst::Sample) -> Result<Pixels, String> {
        let caps = sample.caps().ok_or("decoded sample has no caps")?;
        let stale = match &self.cached {
            Some((c, _, _)) => c.as_ref() != caps,
            None => true,
        };
        if stale {
            let info = gst_video::VideoInfo::from_caps(caps)
                .map_err(|e| format!("cannot parse decoded video caps {caps}: {e}"))?;
            let layout = match info.format() {
                gst_video::VideoFormat::I420 => PixelLayout::I420,
                gst_video::VideoFormat::Gray8 => PixelLayout::Gray8,
                other => {
                    return Err(format!(
                        "decoder delivered pixel format {other:?}, expected I420 or GRAY8"
                    ));
                }
            };
            self.cached = Some((caps.to_owned(), info, layout));
        }
        let Some((_, info, layout)) = &self.cached else {
            return Err("internal: caps cache empty".into());
        };
        let buffer = sample.buffer().ok_or("decoded sample has no buffer")?;
        copy_planes(buffer, info, *layout)
    }
}

/// Copies every plane of `buffer` (described by `info`, or by the buffer's video meta when it
/// has one) into a packed vector.
pub(crate) fn copy_planes(
    buffer: &gst::BufferRef,
    info: &gst_video::VideoInfo,
    layout: PixelLayout,
) -> Result<Pixels, String> {
    let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, info).map_err(|_| {
        format!(
            "decoded buffer of {} bytes cannot be mapped as a {}x{} {:?} frame",
            buffer.size(),
            info.width(),
            info.height(),
            info.format()
        )
    })?;
    let (width, height) = (info.width(), info.height());
    let mut data = Vec::with_capacity(Frame::expected_len(width, height, layout));
    let strides = frame.plane_stride();
    for plane in 0..info.n_planes() {
        // For I420 and GRAY8 plane i holds exactly component i (1 byte per pixel).
        let row_len = info.comp_width(plane as u8) as usize;
        let rows = info.comp_height(plane as u8) as usize;
        let stride = usize::try_from(*strides.get(plane as usize).ok_or("missing plane stride")?)
            .map_err(|_| "negative plane stride (bottom-up images are not supported)")?;
        let src = frame
            .plane_data(plane)
            .map_err(|e| format!("cannot read plane {plane} of the decoded frame: {e}"))?;
        if stride == row_len {
            let bytes = src
                .get(..row_len * rows)
                .ok_or_else(|| format!("plane {plane} is shorter than {rows} rows"))?;
            data.extend_from_slice(bytes);
        } else {
            for r in 0..rows {
                let start = r * stride;
                let row = src
                    .get(start..start + row_len)
                    .ok_or_else(|| format!("plane {plane} is shorter than {rows} rows"))?;
                data.extend_from_slice(row);
            }
        }
    }
    let expected = Frame::expected_len(width, height, layout);
    if data.len() != expected {
        return Err(format!(
            "copied {} bytes for a {width}x{height} {layout:?} frame, expected {expected}",
            data.len()
        ));
    }
    Ok(Pixels {
        width,
        height,
        layout,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An I420 frame of odd size whose rows and planes are padded with 0xEE bytes: the copy must
    /// contain only real pixels, in order.
    #[test]
    fn strips_stride_padding_from_odd_sized_i420() {
        gst::init().unwrap();
        let (w, h) = (5u32, 3u32);
        let (cw, ch) = (3usize, 2usize);
        let y_stride = 8usize;
        let c_stride = 7usize;
        let y_off = 4usize; // leading junk
        let u_off = y_off + y_stride * h as usize + 3;
        let v_off = u_off + c_stride * ch + 5;
        let total = v_off + c_stride * ch;
        let mut bytes = vec![0xEEu8; total];
        let mut expected = Vec::new();
        for r in 0..h as usize {
            for c in 0..w as usize {
                let v = (10 * r + c) as u8;
                bytes[y_off + r * y_stride + c] = v;
                expected.push(v);
            }
        }
        for (off, base) in [(u_off, 100u8), (v_off, 200u8)] {
            for r in 0..ch {
                for c in 0..cw {
                    let v = base + (10 * r + c) as u8;
                    bytes[off + r * c_stride + c] = v;
                    expected.push(v);
                }
            }
        }
        let mut buffer = gst::Buffer::from_mut_slice(bytes);
        gst_video::VideoMeta::add_full(
            buffer.get_mut().unwrap(),
            gst_video::VideoFrameFlags::empty(),
            gst_video::VideoFormat::I420,
            w,
            h,
            &[y_off, u_off, v_off],
            &[y_stride as i32, c_stride as i32, c_stride as i32],
        )
        .unwrap();
        let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::I420, w, h)
            .build()
            .unwrap();
        let px = copy_planes(&buffer, &info, PixelLayout::I420).unwrap();
        assert_eq!(px.data.len(), Frame::expected_len(w, h, PixelLayout::I420));
        assert_eq!(px.data, expected);
        assert!(!px.data.contains(&0xEE));
    }

    #[test]
    fn too_small_buffer_is_an_error_not_a_panic() {
        gst::init().unwrap();
        let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::Gray8, 64, 64)
            .build()
            .unwrap();
        let buffer = gst::Buffer::from_mut_slice(vec![0u8; 100]);
        let err = copy_planes(&buffer, &info, PixelLayout::Gray8).unwrap_err();
        assert!(err.contains("64x64"), "{err}");
    }
}
