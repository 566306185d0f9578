//! Video output through GStreamer: RGB frames → `appsrc ! videoconvert ! x264enc ! h264parse !
//! matroskamux ! filesink`. Must never render; it only encodes what it is given.

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
    info: gst_video::VideoInfo,
    fps: u32,
    pushed: u64,
}

fn gst_err(what: &str, e: impl std::fmt::Display) -> SynthError {
    SynthError::Gst(format!("{what}: {e}"))
}

/// The x264 settings of synth videos (fast, keyframe every second at 30 fps).
pub fn encoder_desc(bitrate_kbps: u32) -> String {
    format!(
        "x264enc speed-preset=ultrafast tune=zerolatency key-int-max=30 bitrate={bitrate_kbps} threads=0"
    )
}

impl VideoWriter {
    /// Starts writing `path` (overwritten) for `width × height` RGB frames at `fps`.
    pub fn create(
        path: &Path,
        width: u32,
        height: u32,
        fps: u32,
        bitrate_kbps: u32,
    ) -> Result<Self, SynthError> {
        gst::init().map_err(|e| gst_err("init", e))?;
        let desc = format!(
            "appsrc name=src format=time block=true max-bytes={} ! videoconvert n-threads=2 ! video/x-raw,format=I420 ! {} ! h264parse ! matroskamux ! filesink name=sink",
            (width as u64 * height as u64 * 3 * 4),
            encoder_desc(bitrate_kbps)
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
        let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::Rgb, width, height)
            .fps(gst::Fraction::new(fps as i32, 1))
            .build()
            .map_err(|e| gst_err("video info", e))?;
        src.set_caps(Some(&info.to_caps().map_err(|e| gst_err("caps", e))?));
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
            info,
            fps: fps.max(1),
            pushed: 0,
        })
    }

    /// Appends one tightly packed RGB frame.
    pub fn push(&mut self, rgb: &[u8]) -> Result<(), SynthError> {
        let (w, h) = (self.info.width() as usize, self.info.height() as usize);
        let stride = self.info.stride()[0] as usize;
        let mut buf = gst::Buffer::with_size(self.info.size()).map_err(|e| gst_err("buffer", e))?;
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
            if stride == w * 3 {
                map[..w * h * 3].copy_from_slice(&rgb[..w * h * 3]);
            } else {
                for y in 0..h {
                    map[y * stride..y * stride + w * 3]
                        .copy_from_slice(&rgb[y * w * 3..(y + 1) * w * 3]);
                }
            }
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
    gst::init().map_err(|e| gst_err("init", e))?;
    let pipeline = gst::parse::launch(
        "filesrc name=src ! decodebin ! videoconvert ! appsink name=sink sync=false",
    )
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
    let mut n = 0;
    loop {
        match sink.try_pull_sample(gst::ClockTime::from_seconds(10)) {
            Some(_) => n += 1,
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
    Ok(n)
}
