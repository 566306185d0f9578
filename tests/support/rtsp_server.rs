//! A loopback RTSP server for tests (crate `gstreamer-rtsp-server`): serves a live test
//! pattern, a looping image sequence or a video file on `rtsp://127.0.0.1:<port><mount>`, and
//! can be stopped and restarted on the same port to simulate a camera that goes away.
//!
//! ```ignore
//! let mut server = RtspServer::start(0, "/cam", RtspMedia::TestPattern { width: 320, height: 240, framerate: 25 })?;
//! let url = server.url();          // rtsp://127.0.0.1:<port>/cam
//! server.stop();                   // clients are disconnected, the port is closed
//! server.restart()?;               // same port, same mount, same media
//! ```
//!
//! Streams are H.264 (x264enc, `tune=zerolatency`, a key frame every second), one media shared by
//! all clients. Test-only: no authentication, binds 127.0.0.1 only.

use std::path::PathBuf;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use gstreamer as gst;
use gstreamer_rtsp_server as rtsp;
use gstreamer_rtsp_server::prelude::*;

/// What the server streams.
#[derive(Debug, Clone)]
pub enum RtspMedia {
    /// `videotestsrc pattern=ball`, live, I420 at this size and rate.
    TestPattern {
        /// Width, px.
        width: u32,
        /// Height, px.
        height: u32,
        /// Frames per second.
        framerate: u32,
    },
    /// Still images (`multifilesrc` pattern such as `frames/frame_%06d.pgm`; PGM/PNG/JPEG),
    /// looped forever, paced in real time at `framerate`.
    ImageSequence {
        /// printf-style file pattern.
        pattern: String,
        /// First index.
        start_index: u32,
        /// Frames per second.
        framerate: u32,
    },
    /// A video file, decoded and re-encoded in real time; played once per media (clients then
    /// see the end of the stream).
    File(PathBuf),
}

struct Running {
    server: rtsp::RTSPServer,
    context: gst::glib::MainContext,
    main_loop: gst::glib::MainLoop,
    source: Option<gst::glib::SourceId>,
    thread: Option<JoinHandle<()>>,
}

/// A running (or stopped) loopback RTSP server. Dropping it stops it.
pub struct RtspServer {
    port: u16,
    mount: String,
    media: RtspMedia,
    running: Option<Running>,
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

impl RtspMedia {
    fn launch(&self) -> String {
        let enc = "x264enc tune=zerolatency speed-preset=ultrafast key-int-max=25 bitrate=2000 \
                   ! video/x-h264,profile=constrained-baseline ! rtph264pay name=pay0 pt=96 config-interval=1";
        match self {
            RtspMedia::TestPattern {
                width,
                height,
                framerate,
            } => format!(
                "( videotestsrc is-live=true pattern=ball ! video/x-raw,width={width},height={height},\
                 framerate={framerate}/1 ! videoconvert ! {enc} )"
            ),
            RtspMedia::ImageSequence {
                pattern,
                start_index,
                framerate,
            } => {
                let lower = pattern.to_ascii_lowercase();
                let (caps, dec) = if lower.ends_with(".png") {
                    ("image/png", "pngdec")
                } else if lower.ends_with(".jpg") || lower.ends_with(".jpeg") {
                    ("image/jpeg", "jpegdec")
                } else {
                    ("image/x-portable-anymap", "pnmdec")
                };
                format!(
                    "( multifilesrc location={} start-index={start_index} index={start_index} loop=true \
                     caps={caps},framerate={framerate}/1 ! {dec} ! videoconvert ! {enc} )",
                    quote(pattern)
                )
            }
            RtspMedia::File(path) => format!(
                "( filesrc location={} ! decodebin ! videoconvert ! {enc} )",
                quote(&path.to_string_lossy())
            ),
        }
    }
}

impl RtspServer {
    /// Starts serving `media` at `mount` (e.g. `/cam`) on 127.0.0.1:`port`; `port` 0 picks a
    /// free port (see [`RtspServer::port`]).
    pub fn start(port: u16, mount: &str, media: RtspMedia) -> Result<RtspServer, String> {
        gst::init().map_err(|e| format!("gst init: {e}"))?;
        let mut s = RtspServer {
            port,
            mount: mount.to_string(),
            media,
            running: None,
        };
        s.launch()?;
        Ok(s)
    }

    /// Port the server listens on (also while stopped).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `rtsp://127.0.0.1:<port><mount>`.
    pub fn url(&self) -> String {
        format!("rtsp://127.0.0.1:{}{}", self.port, self.mount)
    }

    /// True between start/restart and stop.
    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    fn launch(&mut self) -> Result<(), String> {
        let server = rtsp::RTSPServer::new();
        server.set_address("127.0.0.1");
        server.set_service(&self.port.to_string());
        let mounts = server.mount_points().ok_or("server has no mount points")?;
        let factory = rtsp::RTSPMediaFactory::new();
        factory.set_launch(&self.media.launch());
        factory.set_shared(true);
        mounts.add_factory(&self.mount, factory);
        let context = gst::glib::MainContext::new();
        // A port just closed by `stop` may need a moment to be free again.
        let mut source = None;
        for _ in 0..50 {
            match server.attach(Some(&context)) {
                Ok(id) => {
                    source = Some(id);
                    break;
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
        let source = source.ok_or_else(|| format!("cannot listen on 127.0.0.1:{}", self.port))?;
        let bound = server.bound_port();
        self.port = u16::try_from(bound).map_err(|_| format!("bad bound port {bound}"))?;
        let main_loop = gst::glib::MainLoop::new(Some(&context), false);
        let (ctx2, loop2) = (context.clone(), main_loop.clone());
        let thread = std::thread::Builder::new()
            .name("rtsp-test-server".into())
            .spawn(move || {
                let _ = ctx2.with_thread_default(|| loop2.run());
            })
            .map_err(|e| e.to_string())?;
        self.running = Some(Running {
            server,
            context,
            main_loop,
            source: Some(source),
            thread: Some(thread),
        });
        Ok(())
    }

    /// Disconnects every client and closes the listening socket (the port stays reserved for
    /// [`RtspServer::restart`] only by convention). Idempotent.
    pub fn stop(&mut self) {
        let Some(mut r) = self.running.take() else {
            return;
        };
        let (done_tx, done_rx) = mpsc::channel();
        let server = r.server.clone();
        let source = r.source.take();
        let ctx = r.context.clone();
        r.context.invoke(move || {
            // Stop accepting, then close every client connection.
            if let Some(id) = source
                && let Some(src) = ctx.find_source_by_id(&id)
            {
                src.destroy();
            }
            server.client_filter(Some(&mut |_, _| rtsp::RTSPFilterResult::Remove));
            let _ = done_tx.send(());
        });
        let _ = done_rx.recv_timeout(Duration::from_secs(5));
        r.main_loop.quit();
        if let Some(t) = r.thread.take() {
            let _ = t.join();
        }
    }

    /// Starts again on the same port, mount and media.
    pub fn restart(&mut self) -> Result<(), String> {
        self.stop();
        self.launch()
    }
}

impl Drop for RtspServer {
    fn drop(&mut self) {
        self.stop();
    }
}
