//! Video output through GStreamer: RGB frames are converted to I420 here (in parallel, into
//! pooled buffers) and pushed as `appsrc ! x264enc ! h264parse ! matroskamux ! filesink`.
//! Must never render; it only encodes what it is given.

use std::path::Path;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;

use super::SynthError;

/// An H.264/Matroska file being written.
#[derive(Debug)]
pub struct VideoWriter {
    pipeline: gst::Pipeline,
    src: gst_app::AppSrc,
    pool: gst::BufferPool,
    info: gst_video::VideoInfo,
    matrix: YuvMatrix,
    threads: usize,
    fps: u32,
    pushed: u64,
}

fn gst_err(what: &str, e: impl std::fmt::Display) -> SynthError {
    SynthError::Gst(format!("{what}: {e}"))
}

/// How the synth encoder may use threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncoderThreads {
    /// One thread: the same seed gives the same bitstream on every machine (x264's sliced
    /// threads under rate control are not repeatable from run to run, and a test's figures moved
    /// with them). Rendered files use this; one thread rendered 1080p no slower on 2 cores.
    Repeatable,
    /// x264 chooses (sliced threads: each frame done sooner), for the live stream.
    Auto,
}

/// The x264 settings of synth videos, files and live stream (fast, keyframe every second at
/// 30 fps). `tune=zerolatency` stays for files too: its sliced threads used no more CPU per
/// frame than frame threads on synth video and finished each frame sooner (see BENCHMARKS.md).
pub fn encoder_desc(bitrate_kbps: u32, threads: EncoderThreads) -> String {
    let threads = match threads {
        EncoderThreads::Repeatable => 1,
        EncoderThreads::Auto => 0,
    };
    format!(
        "x264enc speed-preset=ultrafast tune=zerolatency key-int-max=30 bitrate={bitrate_kbps} threads={threads}"
    )
}

/// Fixed-point (×2¹⁶) limited-range Y'CbCr coefficients of one colour matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct YuvMatrix {
    y: [i32; 3],
    u: [i32; 3],
    v: [i32; 3],
}

impl YuvMatrix {
    /// The matrix with luma weights `kr` (red) and `kb` (blue): BT.601 is (0.299, 0.114),
    /// BT.709 (0.2126, 0.0722). Output is limited range (Y 16..235, Cb/Cr 16..240).
    pub fn new(kr: f64, kb: f64) -> Self {
        let kg = 1.0 - kr - kb;
        let q = |c: f64| (c * 65536.0).round() as i32;
        let (ys, cs) = (219.0 / 255.0, 224.0 / 255.0);
        let (cb, cr) = (0.5 / (1.0 - kb), 0.5 / (1.0 - kr));
        YuvMatrix {
            y: [q(kr * ys), q(kg * ys), q(kb * ys)],
            u: [q(-kr * cb * cs), q(-kg * cb * cs), q(0.5 * cs)],
            v: [q(0.5 * cs), q(-kg * cr * cs), q(-kb * cr * cs)],
        }
    }

    /// The matrix of a colorimetry (GStreamer's default for I420 is BT.601 up to 576 lines,
    /// BT.709 above, BT.2020 from 2160; an unknown matrix is treated as BT.601).
    pub fn for_colorimetry(c: &gst_video::VideoColorimetry) -> Self {
        match c.matrix() {
            gst_video::VideoColorMatrix::Bt709 => Self::new(0.2126, 0.0722),
            gst_video::VideoColorMatrix::Bt2020 => Self::new(0.2627, 0.0593),
            gst_video::VideoColorMatrix::Smpte240m => Self::new(0.212, 0.087),
            gst_video::VideoColorMatrix::Fcc => Self::new(0.30, 0.11),
            _ => Self::new(0.299, 0.114),
        }
    }

    /// Cb and Cr of the sums of four pixels.
    #[inline]
    fn chroma4(&self, r: i32, g: i32, b: i32) -> (u8, u8) {
        let [ur, ug, ub] = self.u;
        let [vr, vg, vb] = self.v;
        let u = 128 + ((ur * r + ug * g + ub * b + (1 << 17)) >> 18);
        let v = 128 + ((vr * r + vg * g + vb * b + (1 << 17)) >> 18);
        (u.clamp(0, 255) as u8, v.clamp(0, 255) as u8)
    }
}

/// One I420 frame's planes and their strides, borrowed for writing.
pub struct I420Planes<'a> {
    /// Luma, `height` rows of `y_stride` bytes.
    pub y: &'a mut [u8],
    /// Luma row stride.
    pub y_stride: usize,
    /// Cb, `height / 2` rows of `c_stride` bytes.
    pub u: &'a mut [u8],
    /// Cr, `height / 2` rows of `c_stride` bytes.
    pub v: &'a mut [u8],
    /// Chroma row stride.
    pub c_stride: usize,
}

/// Converts tightly packed RGB (`w × h`, both even) to I420 with chroma as the mean of each
/// 2×2 block, using up to `threads` threads (bands of rows). Deterministic.
pub fn rgb_to_i420(
    rgb: &[u8],
    w: usize,
    h: usize,
    m: &YuvMatrix,
    planes: I420Planes<'_>,
    threads: usize,
) {
    let (ys, cs) = (planes.y_stride, planes.c_stride);
    let pairs = h / 2;
    if w < 2 || pairs == 0 || rgb.len() < w * h * 3 {
        return;
    }
    let per = pairs.div_ceil(threads.max(1)).max(1);
    let band = |rgb: &[u8], y: &mut [u8], u: &mut [u8], v: &mut [u8]| {
        for (k, ((uy, ur), vr)) in y
            .chunks_mut(2 * ys)
            .zip(u.chunks_mut(cs))
            .zip(v.chunks_mut(cs))
            .enumerate()
        {
            let src = &rgb[2 * k * w * 3..];
            if uy.len() < ys + w || src.len() < 2 * w * 3 {
                break;
            }
            let (top, bot) = uy.split_at_mut(ys);
            let (s0, s1) = (&src[..w * 3], &src[w * 3..2 * w * 3]);
            // Luma: one simple pass per row (stride-3 loads the compiler vectorises).
            let [kr, kg, kb] = m.y;
            for (row, s) in [(&mut top[..w], s0), (&mut bot[..w], s1)] {
                for (o, p) in row.iter_mut().zip(s.chunks_exact(3)) {
                    let (r, g, b) = (i32::from(p[0]), i32::from(p[1]), i32::from(p[2]));
                    *o = ((kr * r + kg * g + kb * b + (16 << 16) + 32768) >> 16) as u8;
                }
            }
            // Chroma of each 2×2 block.
            for ((p0, p1), (cu, cv)) in s0
                .chunks_exact(6)
                .zip(s1.chunks_exact(6))
                .zip(ur.iter_mut().zip(vr.iter_mut()))
            {
                let sum = |c: usize| {
                    i32::from(p0[c])
                        + i32::from(p0[c + 3])
                        + i32::from(p1[c])
                        + i32::from(p1[c + 3])
                };
                let (u, v) = m.chroma4(sum(0), sum(1), sum(2));
                *cu = u;
                *cv = v;
            }
        }
    };
    if threads <= 1 || pairs < 2 * threads {
        band(rgb, planes.y, planes.u, planes.v);
        return;
    }
    std::thread::scope(|scope| {
        for (k, ((y, u), v)) in planes
            .y
            .chunks_mut(per * 2 * ys)
            .zip(planes.u.chunks_mut(per * cs))
            .zip(planes.v.chunks_mut(per * cs))
            .enumerate()
        {
            let Some(src) = rgb.get(k * per * 2 * w * 3..) else {
                break;
            };
            scope.spawn(move || band(src, y, u, v));
        }
    });
}

impl VideoWriter {
    /// Starts writing `path` (overwritten) for `width × height` RGB frames (both even) at
    /// `fps`; the RGB → I420 conversion uses up to `threads` threads.
    pub fn create(
        path: &Path,
        width: u32,
        height: u32,
        fps: u32,
        bitrate_kbps: u32,
        threads: usize,
    ) -> Result<Self, SynthError> {
        gst::init().map_err(|e| gst_err("init", e))?;
        let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::I420, width, height)
            .fps(gst::Fraction::new(fps as i32, 1))
            .build()
            .map_err(|e| gst_err("video info", e))?;
        let caps = info.to_caps().map_err(|e| gst_err("caps", e))?;
        let desc = format!(
            "appsrc name=src format=time block=true max-bytes={} ! {} ! h264parse ! matroskamux ! filesink name=sink",
            info.size() as u64 * 3,
            encoder_desc(bitrate_kbps, EncoderThreads::Repeatable)
        );
        let pipeline = gst::parse::launch(&desc)
            .map_err(|e| gst_err("cannot build the encoder pipeline", e))?
            .downcast::<gst::Pipeline>()
            .map_err(|_| SynthError::Gst("encoder pipeline is not a pipeline".into()))?;
        let sink = pipeline
            .by_name("sink")
            .ok_or_else(|| SynthError::Gst("no filesink".into()))?;
        sink.set_property("location", path.to_string_lossy().to_string());
        let src = pipeline
            .by_name("src")
            .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
            .ok_or_else(|| SynthError::Gst("no appsrc".into()))?;
        src.set_caps(Some(&caps));
        // Frame buffers are recycled: no multi-megabyte allocation (and page faults) per frame.
        let pool = gst::BufferPool::new();
        let mut pc = pool.config();
        pc.set_params(Some(&caps), info.size() as u32, 2, 0);
        pool.set_config(pc)
            .map_err(|e| gst_err("buffer pool config", e))?;
        pool.set_active(true)
            .map_err(|e| gst_err("buffer pool", e))?;
        pipeline.set_state(gst::State::Playing).map_err(|_| {
            SynthError::Gst(format!(
                "cannot start the encoder for {}: {}",
                path.display(),
                bus_error(&pipeline)
            ))
        })?;
        Ok(VideoWriter {
            pipeline,
            src,
            pool,
            matrix: YuvMatrix::for_colorimetry(&info.colorimetry()),
            info,
            threads: threads.max(1),
            fps: fps.max(1),
            pushed: 0,
        })
    }

    /// Appends one tightly packed RGB frame.
    pub fn push(&mut self, rgb: &[u8]) -> Result<(), SynthError> {
        let (w, h) = (self.info.width() as usize, self.info.height() as usize);
        if rgb.len() < w * h * 3 {
            return Err(SynthError::Gst(format!(
                "frame {} has {} bytes, expected {}",
                self.pushed,
                rgb.len(),
                w * h * 3
            )));
        }
        let mut buf = self
            .pool
            .acquire_buffer(None)
            .map_err(|e| gst_err("buffer", e))?;
        {
            let b = buf
                .get_mut()
                .ok_or_else(|| SynthError::Gst("buffer not writable".into()))?;
            let pts = gst::ClockTime::SECOND.mul_div_floor(self.pushed, u64::from(self.fps));
            let next = gst::ClockTime::SECOND.mul_div_floor(self.pushed + 1, u64::from(self.fps));
            b.set_pts(pts);
            if let (Some(p), Some(n)) = (pts, next) {
                b.set_duration(n - p);
            }
            let mut map = b.map_writable().map_err(|e| gst_err("map", e))?;
            let off = self.info.offset();
            let st = self.info.stride();
            let (ys, cs) = (st[0] as usize, st[1] as usize);
            let (rest, v) = map.split_at_mut(off[2]);
            let (y, u) = rest.split_at_mut(off[1]);
            rgb_to_i420(
                rgb,
                w,
                h,
                &self.matrix,
                I420Planes {
                    y: &mut y[off[0]..],
                    y_stride: ys,
                    u,
                    v,
                    c_stride: cs,
                },
                self.threads,
            );
        }
        self.src.push_buffer(buf).map_err(|e| {
            SynthError::Gst(format!(
                "encoder refused frame {}: {e:?}: {}",
                self.pushed,
                bus_error(&self.pipeline)
            ))
        })?;
        self.pushed += 1;
        Ok(())
    }

    /// Ends the stream and waits until the file is complete.
    pub fn finish(self) -> Result<u64, SynthError> {
        let _ = self.src.end_of_stream();
        let bus = self
            .pipeline
            .bus()
            .ok_or_else(|| SynthError::Gst("no bus".into()))?;
        let mut result = Ok(self.pushed);
        for msg in bus.iter_timed(gst::ClockTime::from_seconds(120)) {
            match msg.view() {
                gst::MessageView::Eos(..) => break,
                gst::MessageView::Error(e) => {
                    result = Err(SynthError::Gst(format!(
                        "encoder failed: {} ({:?})",
                        e.error(),
                        e.debug()
                    )));
                    break;
                }
                _ => {}
            }
        }
        let _ = self.pipeline.set_state(gst::State::Null);
        let _ = self.pool.set_active(false);
        result
    }
}

/// The first error message waiting on the pipeline's bus, for error reports.
pub fn bus_error(p: &gst::Pipeline) -> String {
    p.bus()
        .and_then(|b| b.pop_filtered(&[gst::MessageType::Error]))
        .and_then(|m| match m.view() {
            gst::MessageView::Error(e) => Some(format!("{} ({:?})", e.error(), e.debug())),
            _ => None,
        })
        .unwrap_or_else(|| "no error message on the bus".into())
}

/// Counts the frames of a video file by decoding it (`filesrc ! decodebin ! appsink`).
pub fn count_frames(path: &Path) -> Result<u64, SynthError> {
    let mut n = 0;
    for_each_sample(
        "filesrc name=src ! decodebin ! videoconvert ! appsink name=sink sync=false",
        path,
        |_| n += 1,
    )?;
    Ok(n)
}

/// Plays `path` through `desc` (a pipeline with a `filesrc` named `src` and an `appsink` named
/// `sink`) to its end, handing every sample to `each`.
fn for_each_sample(
    desc: &str,
    path: &Path,
    mut each: impl FnMut(&gst::Sample),
) -> Result<(), SynthError> {
    gst::init().map_err(|e| gst_err("init", e))?;
    let pipeline = gst::parse::launch(desc)
        .map_err(|e| gst_err("decoder", e))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| SynthError::Gst("decoder is not a pipeline".into()))?;
    if let Some(s) = pipeline.by_name("src") {
        s.set_property("location", path.to_string_lossy().to_string());
    }
    let sink = pipeline
        .by_name("sink")
        .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
        .ok_or_else(|| SynthError::Gst("no appsink".into()))?;
    pipeline.set_state(gst::State::Playing).map_err(|_| {
        SynthError::Gst(format!(
            "cannot decode {}: {}",
            path.display(),
            bus_error(&pipeline)
        ))
    })?;
    loop {
        match sink.try_pull_sample(gst::ClockTime::from_seconds(10)) {
            Some(sample) => each(&sample),
            None => {
                if sink.is_eos() {
                    break;
                }
                let e = bus_error(&pipeline);
                let _ = pipeline.set_state(gst::State::Null);
                return Err(SynthError::Gst(format!(
                    "decoding {} stalled: {e}",
                    path.display()
                )));
            }
        }
    }
    let _ = pipeline.set_state(gst::State::Null);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn convert(rgb: &[u8], w: usize, h: usize, m: &YuvMatrix, threads: usize) -> Vec<u8> {
        let mut out = vec![0u8; w * h * 3 / 2];
        let (y, c) = out.split_at_mut(w * h);
        let (u, v) = c.split_at_mut(w * h / 4);
        rgb_to_i420(
            rgb,
            w,
            h,
            m,
            I420Planes {
                y,
                y_stride: w,
                u,
                v,
                c_stride: w / 2,
            },
            threads,
        );
        out
    }

    /// The H.264 stream of a rendered file (demuxed, so the container's creation time and
    /// segment id do not count).
    fn h264_stream(path: &Path) -> Vec<u8> {
        let mut bytes = Vec::new();
        for_each_sample(
            "filesrc name=src ! matroskademux ! h264parse ! appsink name=sink sync=false",
            path,
            |s| bytes.extend_from_slice(&s.buffer().expect("buffer").map_readable().expect("map")),
        )
        .expect("demux");
        bytes
    }

    #[test]
    fn the_same_frames_encode_to_the_same_stream() {
        // Moving texture at a bitrate that keeps the rate control busy: x264's sliced threads
        // (`threads=0` here) gave a different stream each run, and a test's figures moved.
        let dir = tempfile::tempdir().expect("tempdir");
        let (w, h, frames) = (640usize, 360usize, 45u64);
        let render = |name: &str| {
            let path = dir.path().join(name);
            let mut v = VideoWriter::create(&path, w as u32, h as u32, 30, 600, 2).expect("create");
            for f in 0..frames as usize {
                let rgb: Vec<u8> = (0..w * h * 3)
                    .map(|i| {
                        let (p, c) = (i / 3, i % 3);
                        let (x, y) = (p % w + 3 * f, p / w + f);
                        (((x / 4) * 7919 + (y / 4) * 104_729 + c * 31) % 251) as u8
                    })
                    .collect();
                v.push(&rgb).expect("push");
            }
            assert_eq!(v.finish().expect("finish"), frames);
            h264_stream(&path)
        };
        let first = render("a.mkv");
        assert!(first.len() > 1000, "{} bytes", first.len());
        for name in ["b.mkv", "c.mkv", "d.mkv", "e.mkv"] {
            assert!(
                render(name) == first,
                "{name} differs from the first render"
            );
        }
    }

    #[test]
    fn known_colours_convert_to_the_standard_bt709_and_bt601_codes() {
        // (rgb, BT.709 Y Cb Cr, BT.601 Y Cb Cr), limited range.
        let cases = [
            ([255u8, 255, 255], [235u8, 128, 128], [235u8, 128, 128]),
            ([0, 0, 0], [16, 128, 128], [16, 128, 128]),
            ([255, 0, 0], [63, 102, 240], [81, 90, 240]),
            ([0, 255, 0], [173, 42, 26], [145, 54, 34]),
            ([0, 0, 255], [32, 240, 118], [41, 240, 110]),
        ];
        let (b709, b601) = (YuvMatrix::new(0.2126, 0.0722), YuvMatrix::new(0.299, 0.114));
        for (rgb, e709, e601) in cases {
            let img: Vec<u8> = (0..16).flat_map(|_| rgb).collect();
            for (m, e) in [(&b709, e709), (&b601, e601)] {
                let out = convert(&img, 4, 4, m, 1);
                assert!(out[..16].iter().all(|&y| y == e[0]), "{rgb:?}: Y {out:?}");
                assert!(
                    out[16..20].iter().all(|&u| u == e[1]),
                    "{rgb:?}: Cb {out:?}"
                );
                assert!(out[20..].iter().all(|&v| v == e[2]), "{rgb:?}: Cr {out:?}");
            }
        }
    }

    #[test]
    fn conversion_does_not_depend_on_the_thread_count_and_averages_chroma_blocks() {
        let (w, h) = (38usize, 22usize);
        let rgb: Vec<u8> = (0..w * h * 3).map(|i| ((i * 7919) % 251) as u8).collect();
        let m = YuvMatrix::new(0.2126, 0.0722);
        let one = convert(&rgb, w, h, &m, 1);
        for t in [2, 3, 4, 16] {
            assert_eq!(convert(&rgb, w, h, &m, t), one, "{t} threads");
        }
        // Chroma of a block equals the chroma of its mean colour (within rounding).
        for (by, bx) in [(0usize, 0usize), (5, 7), (10, 18)] {
            let mut s = [0i32; 3];
            for (dy, dx) in [(0, 0), (0, 1), (1, 0), (1, 1)] {
                let o = ((2 * by + dy) * w + 2 * bx + dx) * 3;
                for c in 0..3 {
                    s[c] += i32::from(rgb[o + c]);
                }
            }
            let mean: Vec<u8> = s.iter().map(|v| ((v + 2) / 4) as u8).collect();
            let single: Vec<u8> = (0..4).flat_map(|_| mean.clone()).collect();
            let e = convert(&single, 2, 2, &m, 1);
            let (u, v) = (
                one[w * h + by * w / 2 + bx],
                one[w * h * 5 / 4 + by * w / 2 + bx],
            );
            assert!(
                u.abs_diff(e[4]) <= 1 && v.abs_diff(e[5]) <= 1,
                "block {by},{bx}"
            );
        }
    }
}
