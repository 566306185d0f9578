//! Simulator tests: determinism, id map vs. pixels, flank distances, data set layout, video.

use std::path::Path;

use finprint::synth::{
    self, DatasetSpec, Flank, SynthConfig, TankSim, View, make_individuals, min_flank_distance,
    render, write_dataset,
};

fn small(seed: u64) -> SynthConfig {
    SynthConfig {
        seed,
        fish: 8,
        frames: 45,
        width: 640,
        height: 360,
        video: false,
        crops_per_flank: 2,
        threads: 2,
        ..SynthConfig::default()
    }
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn same_seed_gives_byte_identical_truth_and_other_seeds_differ() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("c"),
    );
    render(&small(5), &a).unwrap();
    let mut other_threads = small(5);
    other_threads.threads = 1;
    render(&other_threads, &b).unwrap();
    render(&small(6), &c).unwrap();
    for f in [
        "truth.csv",
        "interactions.csv",
        "meta.json",
        "enroll/fish-03/L_0001.png",
        "enroll_masks/fish-03/R_0000.mask.png",
    ] {
        assert_eq!(
            read(&a.join(f)),
            read(&b.join(f)),
            "{f} differs between two renders of seed 5"
        );
    }
    assert_ne!(
        read(&a.join("truth.csv")),
        read(&c.join("truth.csv")),
        "seeds 5 and 6 gave the same truth"
    );
    let truth = String::from_utf8(read(&a.join("truth.csv"))).unwrap();
    assert_eq!(truth.lines().count(), 1 + 45 * 8);
    assert!(truth.starts_with(
        "frame,t,camera,track,individual,x,y,x0,y0,x1,y1,heading,area,visible_fraction,flank\n"
    ));
}

#[test]
fn truth_boxes_and_visibility_match_the_rendered_id_map_and_pixels() {
    let mut cfg = small(11);
    cfg.frames = 90;
    let mut sim = TankSim::new(&cfg);
    let plate = sim.plate().clone();
    let (w, h) = (640usize, 360usize);
    let mut bg = vec![0u8; w * h * 3];
    let (mut occluded, mut drawn_px, mut differing_px, mut checked_bg) = (0, 0u64, 0u64, 0u64);
    for _ in 0..cfg.frames {
        let f = sim.next_frame();
        plate.light_into(&mut bg, f.gain, f.noise_off, 1);
        for r in f.truth {
            let id = (r.track + 1) as u16;
            let (mut n, mut x0, mut y0, mut x1, mut y1) = (0u32, u32::MAX, u32::MAX, 0, 0);
            for (i, &v) in f.canvas.id.iter().enumerate() {
                if v == id {
                    let (x, y) = ((i % w) as u32, (i / w) as u32);
                    n += 1;
                    x0 = x0.min(x);
                    y0 = y0.min(y);
                    x1 = x1.max(x + 1);
                    y1 = y1.max(y + 1);
                }
            }
            assert_eq!(
                r.area, n,
                "frame {} fish {}: area vs id map",
                f.index, r.track
            );
            if n > 0 {
                assert_eq!(
                    r.bbox,
                    Some([x0, y0, x1, y1]),
                    "frame {} fish {}",
                    f.index,
                    r.track
                );
            } else {
                assert_eq!(r.bbox, None);
            }
            let expect = n as f32 / r.full_px.max(1) as f32;
            assert!((r.visible_fraction - expect.min(1.0)).abs() < 1e-4);
            assert!(r.full_px > 0 && r.area <= r.full_px);
            if r.visible_fraction < 0.99 {
                occluded += 1;
            }
            if r.visible_fraction > 0.999 {
                let [bx0, by0, bx1, by1] = r.bbox.unwrap();
                assert!(
                    r.x >= bx0 as f32
                        && r.x <= bx1 as f32
                        && r.y >= by0 as f32
                        && r.y <= by1 as f32
                );
            }
        }
        // Pixels: where the id map shows a fish, the frame must differ from the lit plate;
        // far from any fish it must equal it exactly.
        for y in 0..h {
            for x in 0..w {
                let i = y * w + x;
                let d: i32 = (0..3)
                    .map(|c| (i32::from(f.canvas.rgb[i * 3 + c]) - i32::from(bg[i * 3 + c])).abs())
                    .sum();
                if f.canvas.id[i] != 0 {
                    drawn_px += 1;
                    differing_px += u64::from(d > 12);
                } else {
                    let near = (y.saturating_sub(3)..(y + 4).min(h)).any(|yy| {
                        (x.saturating_sub(3)..(x + 4).min(w))
                            .any(|xx| f.canvas.id[yy * w + xx] != 0)
                    });
                    if !near
                        && !f.truth.iter().any(|r| {
                            let [a, b, c, d] = r.scan;
                            x >= a && x < c && y >= b && y < d
                        })
                    {
                        checked_bg += 1;
                        assert_eq!(
                            d, 0,
                            "frame {} pixel ({x},{y}) changed without a fish",
                            f.index
                        );
                    }
                }
            }
        }
    }
    let frac = differing_px as f64 / drawn_px as f64;
    println!(
        "id-map pixels differing from background: {:.1}% of {drawn_px}; {checked_bg} background px unchanged; {occluded} occluded fish-frames",
        100.0 * frac
    );
    assert!(frac > 0.9, "only {frac:.3} of id-map pixels show a fish");
    assert!(occluded > 0, "no occlusion in 90 frames of 8 fish");
}

#[test]
fn every_flank_differs_from_every_other_by_the_stated_minimum() {
    for s in [0.0f32, 0.3, 0.8] {
        let inds = make_individuals(3, 30, s);
        let flanks: Vec<_> = inds.iter().flat_map(|i| i.flanks.iter()).collect();
        assert_eq!(flanks.len(), 60);
        let mut min = f32::MAX;
        for i in 0..flanks.len() {
            for j in i + 1..flanks.len() {
                min = min.min(flanks[i].distance(flanks[j]));
            }
        }
        println!(
            "similarity {s}: min pairwise flank distance (1 - IoU of stripe masks) {min:.3}, stated minimum {:.3}",
            min_flank_distance(s)
        );
        assert!(min >= min_flank_distance(s));
    }
}

#[test]
fn dataset_is_split_by_individual_with_masks_inside_crops() {
    let dir = tempfile::tempdir().unwrap();
    let spec = DatasetSpec {
        dir: dir.path().to_path_buf(),
        individuals: 7,
        crops_per_flank: 3,
        split: [0.6, 0.2, 0.2],
        seed: 9,
        similarity: 0.3,
        crop_width: 192,
        crop_height: 64,
    };
    let s = write_dataset(&spec, 2).unwrap();
    assert_eq!(s.crops, 7 * 2 * 3);
    let meta: serde_json::Value =
        serde_json::from_slice(&read(&dir.path().join("dataset.json"))).unwrap();
    let mut all = Vec::new();
    for split in ["train", "val", "test"] {
        let listed: Vec<String> = meta["splits"][split]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect();
        assert!(!listed.is_empty(), "{split} is empty");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir.path().join(split))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        on_disk.sort();
        let mut l = listed.clone();
        l.sort();
        assert_eq!(l, on_disk, "{split}");
        all.extend(listed);
    }
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 7, "an individual is in two splits or missing");
    let mut fish_frac = Vec::new();
    for split in ["train", "val", "test"] {
        for ind in std::fs::read_dir(dir.path().join(split)).unwrap() {
            let ind = ind.unwrap().path();
            for flank in ["L", "R"] {
                for n in 0..3 {
                    let img = image::open(ind.join(format!("{flank}_{n:04}.png")))
                        .unwrap()
                        .to_rgb8();
                    let mask = image::open(ind.join(format!("{flank}_{n:04}.mask.png")))
                        .unwrap()
                        .to_luma8();
                    assert_eq!(img.dimensions(), (192, 64));
                    assert_eq!(mask.dimensions(), (192, 64));
                    let px: Vec<u8> = mask.pixels().map(|p| p.0[0]).collect();
                    assert!(
                        px.iter().all(|&v| v == 0 || v == 128 || v == 255),
                        "mask values"
                    );
                    let fish = px.iter().filter(|&&v| v > 0).count() as f32 / px.len() as f32;
                    let flank_px = px.iter().filter(|&&v| v == 255).count();
                    assert!(flank_px > 0, "no striped flank in {}", ind.display());
                    fish_frac.push(fish);
                    // The striped flank is near the crop centre.
                    let (mut sx, mut n) = (0.0, 0.0);
                    for y in 0..64usize {
                        for x in 0..192usize {
                            if px[y * 192 + x] == 255 {
                                sx += x as f32;
                                n += 1.0;
                            }
                        }
                    }
                    assert!(
                        (sx / n - 96.0).abs() < 50.0,
                        "flank not centred: {}",
                        sx / n
                    );
                }
            }
        }
    }
    let mean = fish_frac.iter().sum::<f32>() / fish_frac.len() as f32;
    println!("mean fish fraction of crop area {mean:.2}");
    assert!(mean > 0.25 && mean < 0.8, "mean fish fraction {mean}");
}

#[test]
fn video_decodes_with_the_rendered_frame_count() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = small(2);
    cfg.frames = 40;
    cfg.video = true;
    cfg.crops_per_flank = 0;
    let s = render(&cfg, dir.path()).unwrap();
    let v = s.video.expect("video written");
    let n = synth::video::count_frames(&v).unwrap();
    assert_eq!(n, 40);
}

#[test]
fn top_view_renders_without_flanks() {
    let mut cfg = small(4);
    cfg.view = View::Top;
    let mut sim = TankSim::new(&cfg);
    for _ in 0..10 {
        let f = sim.next_frame();
        assert!(f.truth.iter().all(|r| r.flank.is_none()));
        assert!(f.truth.iter().filter(|r| r.area > 0).count() >= 6);
    }
}

#[test]
fn live_rtsp_stream_serves_decodable_frames() {
    use gstreamer as gst;
    use gstreamer::prelude::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let stop = Arc::new(AtomicBool::new(false));
    let cfg = SynthConfig {
        width: 320,
        height: 240,
        fish: 3,
        threads: 1,
        ..SynthConfig::default()
    };
    let server = {
        let stop = stop.clone();
        std::thread::spawn(move || synth::live::serve_rtsp(&cfg, port, "/tank", stop, false))
    };
    std::thread::sleep(std::time::Duration::from_millis(500));
    gst::init().unwrap();
    let url = synth::live::live_url(port, "/tank");
    let client = gst::parse::launch(&format!(
        "rtspsrc location={url} latency=0 protocols=tcp ! rtph264depay ! h264parse ! avdec_h264 ! videoconvert ! video/x-raw,format=RGB ! appsink name=sink sync=false"
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let sink = client
        .by_name("sink")
        .unwrap()
        .downcast::<gstreamer_app::AppSink>()
        .unwrap();
    client.set_state(gst::State::Playing).unwrap();
    let t0 = std::time::Instant::now();
    let mut frames = 0;
    while frames < 15 {
        let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_seconds(10)) else {
            break;
        };
        let caps = sample.caps().unwrap().structure(0).unwrap().to_owned();
        assert_eq!(caps.get::<i32>("width").unwrap(), 320);
        assert_eq!(caps.get::<i32>("height").unwrap(), 240);
        frames += 1;
    }
    let took = t0.elapsed().as_secs_f64();
    client.set_state(gst::State::Null).unwrap();
    stop.store(true, Ordering::Relaxed);
    server.join().unwrap().unwrap();
    println!("received {frames} frames from {url} in {took:.2} s");
    assert_eq!(frames, 15);
    // Real time: 15 frames at 30 fps take about half a second, not much less.
    assert!(took > 0.3, "stream is not paced in real time ({took:.2} s)");
}

/// Striped-flank (255) pixels of a `w × h` crop mask with no fish pixel (128 or 255) directly
/// above or below: one-row slivers.
fn flank_slivers(mask: &[u8], w: usize, h: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for y in 0..h {
        for x in 0..w {
            if mask[y * w + x] == 255 {
                let up = y > 0 && mask[(y - 1) * w + x] > 0;
                let down = y + 1 < h && mask[(y + 1) * w + x] > 0;
                if !(up || down) {
                    out.push((x, y));
                }
            }
        }
    }
    out
}

#[test]
fn crop_masks_of_unoccluded_fish_have_no_one_row_flank_slivers() {
    use synth::crop::{CropBox, blob_axis, crop_mask};
    use synth::raster::{Canvas, FishDraw, Overlay, draw_fish};
    // A lone fish (nothing in front, so no occluder edge can cut a thin wedge off its flank)
    // in many poses, cut with the detector's geometry plus rotation jitter as the data set
    // does. The flank region is a thick band in the middle of the body: none of its mask
    // pixels may be a one-row sliver.
    let inds = make_individuals(3, 6, 0.3);
    let (cw, ch) = (192u32, 64u32);
    let (mut crops, mut bad) = (0, Vec::new());
    for (k, ind) in inds.iter().enumerate() {
        for step in 0..60 {
            let t = step as f32 / 60.0;
            let length = 50.0 + 170.0 * ((step * 7) % 60) as f32 / 60.0;
            let pitch = -0.45 + 0.9 * t;
            let along = 0.6 + 0.4 * ((step * 13) % 60) as f32 / 60.0;
            let facing = if step % 2 == 0 { 1.0 } else { -1.0 };
            let (w, h) = ((1.8 * length) as usize + 8, (1.4 * length) as usize + 8);
            let mut canvas = Canvas::new(w, h);
            let ov = Overlay {
                noise: &[],
                noise_side: 0,
                noise_off: (0, 0),
                front: &[],
            };
            let d = FishDraw {
                ind,
                id: 1,
                cx: w as f32 / 2.0 + 0.37 * k as f32,
                cy: h as f32 / 2.0 + 0.21 * step as f32 % 1.0,
                axis: [facing * pitch.cos(), -pitch.sin()],
                length,
                along,
                flank: Some(if facing > 0.0 {
                    Flank::Right
                } else {
                    Flank::Left
                }),
                pattern_vis: 1.0,
                view: View::Side,
                tail_phase: 0.7 * step as f32,
                tail_amp: 0.6,
                gain: [1.0; 3],
            };
            draw_fish(&mut canvas, &d, &ov);
            let (bx, by, angle, major) = blob_axis(&canvas.id, w, [0, 0, w, h], 1).unwrap();
            let jitter = (-10.0 + 20.0 * ((step * 17 + k * 5) % 60) as f32 / 60.0).to_radians();
            let b = CropBox::for_body(bx, by, angle + jitter, major, cw, ch);
            let mask = crop_mask(&canvas.id, &canvas.part, w, h, 1, &b, cw, ch);
            assert!(mask.contains(&255), "no flank in fish {k} pose {step}");
            crops += 1;
            let s = flank_slivers(&mask, cw as usize, ch as usize);
            if !s.is_empty() {
                bad.push(format!("fish {k} pose {step} (length {length:.0}): {s:?}"));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "{} of {crops} crops have one-row flank slivers:\n{}",
        bad.len(),
        bad.join("\n")
    );
}
