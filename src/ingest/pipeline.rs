//! Builds the GStreamer pipeline of one source: `source ! [decoder] ! videoconvert ! appsink`.
//!
//! The appsink accepts only I420 or GRAY8, so `videoconvert` stays in pass-through whenever the
//! decoder already produces one of them (the usual case) and converts only otherwise. Elements
//! are created one by one (no `parse_launch`), so paths and URLs are never parsed as pipeline
//! syntax. Nothing here pulls frames or waits for the network: that is [`super::run`]'s job.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;

use super::IngestError;
use super::config::{ImageFormat, SourceConfig};

/// A built (not yet playing) pipeline.
pub(crate) struct Built {
    /// The pipeline.
    pub pipeline: gst::Pipeline,
    /// Where decoded frames come out.
    pub appsink: gst_app::AppSink,
    /// Set once a video stream has been linked to the converter (always true for static
    /// pipelines).
    pub video_linked: Arc<AtomicBool>,
    /// Set when the demuxer/decoder announced all its streams (always true for static pipelines).
    pub no_more_pads: Arc<AtomicBool>,
    /// For `file` sources: the type GStreamer found for the file (confidence in percent, caps
    /// name). Random bytes can pass as a raw H.263 elementary stream at 50 %; real files type at
    /// 80–100 % (see [`GUESS_MAX_PROBABILITY`]).
    pub typefound: Arc<Mutex<Option<(u32, String)>>>,
    /// Pads whose last flow result tells whether data still moves into the demuxer/decoder.
    /// decodebin2 can swallow a demuxer's early error message (it filters messages of an element
    /// while plugging it); a failed flow here is then the only trace of the failure.
    pub watch_pads: Vec<gst::Pad>,
}

/// Typefind confidence (percent) at or below which a file is not trusted to be a video.
pub(crate) const GUESS_MAX_PROBABILITY: u32 = 50;

/// Debian package that ships each element we use, for "install X" hints.
fn package_of(element: &str) -> &'static str {
    match element {
        "appsink" | "uridecodebin" | "decodebin" | "videoconvert" | "videotestsrc" => {
            "gstreamer1.0-plugins-base"
        }
        "rtspsrc" | "v4l2src" | "multifilesrc" | "pngdec" | "jpegdec" => {
            "gstreamer1.0-plugins-good"
        }
        "pnmdec" => "gstreamer1.0-plugins-bad",
        _ => "libgstreamer1.0-0",
    }
}

/// Creates an element, or explains which package is missing.
pub(crate) fn make(factory: &str) -> Result<gst::Element, IngestError> {
    gst::ElementFactory::make(factory)
        .build()
        .map_err(|_| IngestError::MissingElement {
            element: factory.to_string(),
            package: package_of(factory),
        })
}

/// Checks that every element the source needs is installed (no element is kept).
pub(crate) fn check_elements(cfg: &SourceConfig) -> Result<(), IngestError> {
    let mut needed = vec!["videoconvert", "appsink"];
    match cfg {
        SourceConfig::File { .. } => needed.extend(["queue", "decodebin"]),
        SourceConfig::Rtsp { .. } => needed.extend(["uridecodebin", "rtspsrc"]),
        SourceConfig::V4l2 { .. } => needed.extend(["v4l2src", "decodebin"]),
        SourceConfig::ImageSequence { pattern, .. } => {
            needed.push("multifilesrc");
            if let Some(f) = ImageFormat::from_pattern(pattern) {
                needed.push(f.decoder());
            }
        }
        SourceConfig::TestPattern { .. } => needed.push("videotestsrc"),
    }
    for name in needed {
        if gst::ElementFactory::find(name).is_none() {
            return Err(IngestError::MissingElement {
                element: name.to_string(),
                package: package_of(name),
            });
        }
    }
    Ok(())
}

/// The URI GStreamer should open for a `file` source: URIs as given, paths made absolute.
pub(crate) fn file_uri(path: &str) -> Result<String, String> {
    if path.contains("://") {
        return Ok(path.to_string());
    }
    let abs =
        std::path::absolute(path).map_err(|e| format!("cannot make the path absolute: {e}"))?;
    gst::glib::filename_to_uri(&abs, None)
        .map(|u| u.to_string())
        .map_err(|e| format!("cannot turn the path into a URI: {e}"))
}

fn fraction(fps: f64) -> gst::Fraction {
    gst::Fraction::approximate_f64(fps).unwrap_or_else(|| gst::Fraction::new(25, 1))
}

/// Builds the pipeline of `cfg`. `arrivals` numbers every frame that reaches the appsink
/// (written into the buffer offset), so that frames dropped before delivery show up as index
/// jumps; it is shared across reconnects.
pub(crate) fn build(
    camera: &str,
    cfg: &SourceConfig,
    arrivals: Arc<AtomicU64>,
) -> Result<Built, IngestError> {
    let live = cfg.is_live();
    let pipeline = gst::Pipeline::with_name(&format!("ingest-{camera}"));
    let convert = make("videoconvert")?;
    let caps = gst_video::VideoCapsBuilder::new()
        .format_list([gst_video::VideoFormat::I420, gst_video::VideoFormat::Gray8])
        .build();
    // Recordings: bounded queue, never drop (back-pressure reaches the file reader).
    // Live: tiny leaky queue, the newest frames win.
    let appsink = gst_app::AppSink::builder()
        .caps(&caps)
        .sync(false)
        .max_buffers(if live { 2 } else { 4 })
        .drop(live)
        .enable_last_sample(false)
        .qos(false)
        .build();
    pipeline
        .add_many([&convert, appsink.upcast_ref()])
        .map_err(|e| internal(cfg, format!("cannot assemble the pipeline: {e}")))?;
    convert
        .link(&appsink)
        .map_err(|e| internal(cfg, format!("cannot link videoconvert to appsink: {e}")))?;

    if let Some(pad) = appsink.static_pad("sink") {
        pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(gst::PadProbeData::Buffer(buffer)) = info.data.as_mut() {
                let n = arrivals.fetch_add(1, Ordering::Relaxed);
                buffer.make_mut().set_offset(n);
            }
            gst::PadProbeReturn::Ok
        });
    }

    let video_linked = Arc::new(AtomicBool::new(false));
    let no_more_pads = Arc::new(AtomicBool::new(false));
    let typefound = Arc::new(Mutex::new(None));
    let mut watch_pads = Vec::new();

    match cfg {
        SourceConfig::File { path } => {
            let uri = file_uri(path).map_err(|m| IngestError::Open {
                what: cfg.describe(),
                message: m,
            })?;
            // `src ! queue ! decodebin` rather than `uridecodebin`: with the queue, decodebin
            // works in push mode, where typefinding, plugging the demuxer and the demuxer's
            // first errors all happen in order on one streaming thread. In pull mode (what
            // uridecodebin does for local files) qtdemux starts its own task while decodebin2
            // is still filtering its messages, and an early error ("no playable streams" for
            // a truncated MP4) can be swallowed, leaving the pipeline stuck in preroll.
            let src = gst::Element::make_from_uri(gst::URIType::Src, &uri, None).map_err(|e| {
                IngestError::Open {
                    what: cfg.describe(),
                    message: format!(
                        "no GStreamer source for {}: {e}",
                        super::config::redact_url(&uri)
                    ),
                }
            })?;
            let queue = make("queue")?;
            let dec = make("decodebin")?;
            watch_typefind(&pipeline, &typefound);
            watch_pads.extend(queue.static_pad("src"));
            pipeline
                .add_many([&src, &queue])
                .map_err(|e| internal(cfg, format!("cannot assemble the pipeline: {e}")))?;
            add_dynamic(&pipeline, &dec, &convert, &video_linked, &no_more_pads, cfg)?;
            gst::Element::link_many([&src, &queue, &dec])
                .map_err(|e| internal(cfg, format!("cannot link the file source: {e}")))?;
        }
        SourceConfig::Rtsp {
            url,
            latency_ms,
            reconnect,
        } => {
            let dec = make("uridecodebin")?;
            dec.set_property("uri", url);
            let latency = *latency_ms;
            let tcp_timeout_us = reconnect.stall_timeout_ms.saturating_mul(1000);
            dec.connect("source-setup", false, move |args| {
                if let Some(src) = args.get(1).and_then(|v| v.get::<gst::Element>().ok()) {
                    if src.find_property("protocols").is_some() {
                        src.set_property_from_str("protocols", "tcp");
                    }
                    if src.find_property("latency").is_some() {
                        src.set_property("latency", latency);
                    }
                    if src.find_property("tcp-timeout").is_some() {
                        src.set_property("tcp-timeout", tcp_timeout_us);
                    }
                }
                None
            });
            add_dynamic(&pipeline, &dec, &convert, &video_linked, &no_more_pads, cfg)?;
        }
        SourceConfig::V4l2 {
            device,
            width,
            height,
            framerate,
            ..
        } => {
            let src = make("v4l2src")?;
            src.set_property("device", device);
            let filter = make("capsfilter")?;
            let mut filter_caps = gst::Caps::new_empty();
            for media in ["video/x-raw", "image/jpeg"] {
                let mut s = gst::Structure::new_empty(media);
                if let Some(w) = width {
                    s.set("width", i32::try_from(*w).unwrap_or(i32::MAX));
                }
                if let Some(h) = height {
                    s.set("height", i32::try_from(*h).unwrap_or(i32::MAX));
                }
                if let Some(f) = framerate {
                    s.set("framerate", fraction(*f));
                }
                filter_caps.merge_structure(s);
            }
            filter.set_property("caps", &filter_caps);
            let dec = make("decodebin")?;
            pipeline
                .add_many([&src, &filter])
                .map_err(|e| internal(cfg, format!("cannot assemble the pipeline: {e}")))?;
            gst::Element::link_many([&src, &filter])
                .map_err(|e| internal(cfg, format!("cannot link v4l2src: {e}")))?;
            add_dynamic(&pipeline, &dec, &convert, &video_linked, &no_more_pads, cfg)?;
            filter
                .link(&dec)
                .map_err(|e| internal(cfg, format!("cannot link decodebin: {e}")))?;
        }
        SourceConfig::ImageSequence {
            pattern,
            start_index,
            stop_index,
            framerate,
        } => {
            let format = ImageFormat::from_pattern(pattern).ok_or_else(|| {
                internal(
                    cfg,
                    "unsupported image extension (validate() should have caught it)".into(),
                )
            })?;
            let src = make("multifilesrc")?;
            src.set_property("location", pattern);
            src.set_property(
                "start-index",
                i32::try_from(*start_index).unwrap_or(i32::MAX),
            );
            src.set_property("index", i32::try_from(*start_index).unwrap_or(i32::MAX));
            let stop = stop_index.map_or(-1, |s| i32::try_from(s).unwrap_or(i32::MAX));
            src.set_property("stop-index", stop);
            let src_caps = gst::Caps::builder(format.media_type())
                .field("framerate", fraction(*framerate))
                .build();
            src.set_property("caps", &src_caps);
            let dec = make(format.decoder())?;
            pipeline
                .add_many([&src, &dec])
                .map_err(|e| internal(cfg, format!("cannot assemble the pipeline: {e}")))?;
            gst::Element::link_many([&src, &dec, &convert])
                .map_err(|e| internal(cfg, format!("cannot link the image decoder: {e}")))?;
            video_linked.store(true, Ordering::SeqCst);
            no_more_pads.store(true, Ordering::SeqCst);
        }
        SourceConfig::TestPattern {
            pattern,
            width,
            height,
            framerate,
            num_frames,
            live,
            ..
        } => {
            let src = make("videotestsrc")?;
            src.set_property_from_str("pattern", pattern);
            src.set_property("is-live", *live);
            if let Some(n) = num_frames {
                src.set_property("num-buffers", i32::try_from(*n).unwrap_or(i32::MAX));
            }
            let filter = make("capsfilter")?;
            let c = gst_video::VideoCapsBuilder::new()
                .format(gst_video::VideoFormat::I420)
                .width(i32::try_from(*width).unwrap_or(i32::MAX))
                .height(i32::try_from(*height).unwrap_or(i32::MAX))
                .framerate(fraction(*framerate))
                .build();
            filter.set_property("caps", &c);
            pipeline
                .add_many([&src, &filter])
                .map_err(|e| internal(cfg, format!("cannot assemble the pipeline: {e}")))?;
            gst::Element::link_many([&src, &filter, &convert])
                .map_err(|e| internal(cfg, format!("cannot link videotestsrc: {e}")))?;
            video_linked.store(true, Ordering::SeqCst);
            no_more_pads.store(true, Ordering::SeqCst);
        }
    }

    if live {
        // Capture times are wall-clock: running time + base time on a realtime clock.
        let clock = gst::glib::Object::builder::<gst::SystemClock>()
            .property("clock-type", gst::ClockType::Realtime)
            .build();
        pipeline.use_clock(Some(&clock));
    }

    Ok(Built {
        pipeline,
        appsink,
        video_linked,
        no_more_pads,
        typefound,
        watch_pads,
    })
}

/// Records the first type the pipeline's typefind element finds, with its confidence.
fn watch_typefind(pipeline: &gst::Pipeline, typefound: &Arc<Mutex<Option<(u32, String)>>>) {
    let typefound = typefound.clone();
    let seen = Arc::new(AtomicBool::new(false));
    pipeline.connect_deep_element_added(move |_, _, element| {
        let is_typefind = element.factory().is_some_and(|f| f.name() == "typefind");
        if !is_typefind || seen.swap(true, Ordering::SeqCst) {
            return;
        }
        let typefound = typefound.clone();
        element.connect("have-type", false, move |args| {
            let prob = args.get(1).and_then(|v| v.get::<u32>().ok()).unwrap_or(100);
            let caps = args
                .get(2)
                .and_then(|v| v.get::<gst::Caps>().ok())
                .and_then(|c| c.structure(0).map(|s| s.name().to_string()))
                .unwrap_or_else(|| "unknown".into());
            if let Ok(mut g) = typefound.lock() {
                *g = Some((prob, caps));
            }
            None
        });
    });
}
fn internal(cfg: &SourceConfig, message: String) -> IngestError {
    IngestError::Pipeline {
        what: cfg.describe(),
        message,
    }
}

/// Adds a decodebin-like element whose pads appear at run time: the first video pad is linked
/// to `convert`, every other pad to a fakesink (so that audio or data streams never stall the
/// demuxer with "not-linked").
fn add_dynamic(
    pipeline: &gst::Pipeline,
    dec: &gst::Element,
    convert: &gst::Element,
    video_linked: &Arc<AtomicBool>,
    no_more_pads: &Arc<AtomicBool>,
    cfg: &SourceConfig,
) -> Result<(), IngestError> {
    pipeline
        .add(dec)
        .map_err(|e| internal(cfg, format!("cannot assemble the pipeline: {e}")))?;
    let pipeline_weak = pipeline.downgrade();
    let convert_weak = convert.downgrade();
    let linked = video_linked.clone();
    dec.connect_pad_added(move |_, pad| {
        let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
        let is_video = caps
            .structure(0)
            .is_some_and(|s| s.name().starts_with("video/"));
        if is_video
            && !linked.load(Ordering::SeqCst)
            && let Some(sink) = convert_weak.upgrade().and_then(|c| c.static_pad("sink"))
            && !sink.is_linked()
        {
            match pad.link(&sink) {
                Ok(_) => {
                    linked.store(true, Ordering::SeqCst);
                    return;
                }
                Err(e) => tracing::warn!("cannot link decoded video pad ({caps}): {e:?}"),
            }
        }
        let Some(pipeline) = pipeline_weak.upgrade() else {
            return;
        };
        let Ok(fake) = gst::ElementFactory::make("fakesink")
            .property("sync", false)
            .property("async", false)
            .build()
        else {
            return;
        };
        if pipeline.add(&fake).is_err() {
            return;
        }
        let _ = fake.sync_state_with_parent();
        if let Some(sink) = fake.static_pad("sink") {
            let _ = pad.link(&sink);
        }
        tracing::debug!("ignoring non-video stream {caps}");
    });
    let nmp = no_more_pads.clone();
    dec.connect_no_more_pads(move |_| nmp.store(true, Ordering::SeqCst));
    Ok(())
}
