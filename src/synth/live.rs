//! Live mode: serves the rendering as an H.264 RTSP stream on 127.0.0.1 in real time
//! (endless; each new session starts the tank from frame 0) until stopped. Must never write
//! files and must never listen on anything but the loopback address.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_rtsp_server as rtsp;
use gstreamer_rtsp_server::prelude::*;
use gstreamer_video as gst_video;

use super::tank::TankSim;
use super::video::{EncoderThreads, encoder_desc};
use super::{SynthConfig, SynthError};

/// The URL a client opens for `port` and `mount` (e.g. `rtsp://127.0.0.1:8554/tank`).
pub fn live_url(port: u16, mount: &str) -> String {
    format!("rtsp://127.0.0.1:{port}{mount}")
}

fn feed(src: &gst_app::AppSrc, sim: &Mutex<(TankSim, u64)>, info: &gst_video::VideoInfo, fps: u32) {
    let Ok(mut guard) = sim.lock() else { return };
    let (sim, n) = &mut *guard;
    let f = sim.next_frame();
    let (w, h) = (info.width() as usize, info.height() as usize);
    let stride = info.stride()[0] as usize;
    let Ok(mut buf) = gst::Buffer::with_size(info.size()) else {
        return;
    };
    if let Some(b) = buf.get_mut() {
        b.set_pts(gst::ClockTime::SECOND.mul_div_floor(*n, u64::from(fps)));
        b.set_duration(gst::ClockTime::SECOND.mul_div_floor(1, u64::from(fps)));
        if let Ok(mut map) = b.map_writable() {
            for y in 0..h {
                map[y * stride..y * stride + w * 3]
                    .copy_from_slice(&f.canvas.rgb[y * w * 3..(y + 1) * w * 3]);
            }
        }
    }
    *n += 1;
    drop(guard);
    let _ = src.push_buffer(buf);
}

/// Serves `cfg`'s tank on `rtsp://127.0.0.1:port/mount` until `stop` becomes true (checked
/// every 100 ms) or, when `ctrl_c` is set, until SIGINT/SIGTERM. `cfg.frames` is ignored
/// (endless).
pub fn serve_rtsp(
    cfg: &SynthConfig,
    port: u16,
    mount: &str,
    stop: Arc<AtomicBool>,
    ctrl_c: bool,
) -> Result<(), SynthError> {
    cfg.validate("synth")?;
    if !mount.starts_with('/') || mount.len() < 2 {
        return Err(crate::config::ConfigError::invalid(
            "--live-mount",
            format!("`{mount}`: must start with `/`, e.g. /tank"),
        )
        .into());
    }
    gst::init().map_err(|e| SynthError::Gst(format!("init: {e}")))?;
    let ctx = glib::MainContext::new();
    let main_loop = glib::MainLoop::new(Some(&ctx), false);
    let server = rtsp::RTSPServer::new();
    server.set_address("127.0.0.1");
    server.set_service(&port.to_string());
    let mounts = server
        .mount_points()
        .ok_or_else(|| SynthError::Gst("RTSP server has no mount points".into()))?;
    let factory = rtsp::RTSPMediaFactory::new();
    factory.set_launch(&format!(
        "( appsrc name=src is-live=true format=time ! videoconvert ! video/x-raw,format=I420 ! {} ! rtph264pay name=pay0 pt=96 config-interval=1 )",
        encoder_desc(cfg.bitrate_kbps, EncoderThreads::Auto)
    ));
    factory.set_shared(true);
    let info = gst_video::VideoInfo::builder(gst_video::VideoFormat::Rgb, cfg.width, cfg.height)
        .fps(gst::Fraction::new(cfg.fps as i32, 1))
        .build()
        .map_err(|e| SynthError::Gst(format!("video info: {e}")))?;
    let caps = info
        .to_caps()
        .map_err(|e| SynthError::Gst(format!("caps: {e}")))?;
    let cfg2 = cfg.clone();
    factory.connect_media_configure(move |_, media| {
        let element = media.element();
        let Some(src) = element
            .downcast_ref::<gst::Bin>()
            .and_then(|b| b.by_name_recurse_up("src"))
            .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
        else {
            tracing::error!("synth live: the media has no appsrc");
            return;
        };
        src.set_caps(Some(&caps));
        let sim = Arc::new(Mutex::new((TankSim::new(&cfg2), 0u64)));
        let (info, fps) = (info.clone(), cfg2.fps);
        src.set_callbacks(
            gst_app::AppSrcCallbacks::builder()
                .need_data(move |src, _| feed(src, &sim, &info, fps))
                .build(),
        );
        tracing::info!("synth live: client connected, streaming from frame 0");
    });
    mounts.add_factory(mount, factory);
    let _attached = server.attach(Some(&ctx)).map_err(|e| {
        SynthError::Gst(format!(
            "cannot listen on 127.0.0.1:{port} (port in use?): {e}"
        ))
    })?;
    {
        let ml = main_loop.clone();
        let stop = stop.clone();
        glib::timeout_source_new(
            std::time::Duration::from_millis(100),
            None,
            glib::Priority::DEFAULT,
            move || {
                if stop.load(Ordering::Relaxed) {
                    ml.quit();
                    glib::ControlFlow::Break
                } else {
                    glib::ControlFlow::Continue
                }
            },
        )
        .attach(Some(&ctx));
    }
    if ctrl_c {
        // SIGINT/SIGTERM set the stop flag (a small signal-only runtime on its own thread).
        let stop = stop.clone();
        std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                let term =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
                match term {
                    Ok(mut term) => {
                        tokio::select! {
                            _ = tokio::signal::ctrl_c() => {}
                            _ = term.recv() => {}
                        }
                    }
                    Err(_) => {
                        let _ = tokio::signal::ctrl_c().await;
                    }
                }
            });
            stop.store(true, Ordering::Relaxed);
        });
    }
    tracing::info!(
        "synth live: serving {} ({}x{} @ {} fps, {} fish); Ctrl-C to stop",
        live_url(port, mount),
        cfg.width,
        cfg.height,
        cfg.fps,
        cfg.fish
    );
    ctx.with_thread_default(|| main_loop.run())
        .map_err(|e| SynthError::Gst(format!("main context busy: {e}")))?;
    Ok(())
}
