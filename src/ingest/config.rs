//! Configuration of one camera's source (`cameras[i].source`): what to open and how to recover.
//!
//! Pure data and pure checks: nothing here opens a file, device or socket (that is
//! [`super::spawn`]'s job).

use std::path::Path;

use serde::Deserialize;

use crate::config::ConfigError;

/// Largest frame rate accepted anywhere in a source config (frames per second).
const MAX_FRAMERATE: f64 = 1000.0;
/// Largest frame width or height accepted (pixels).
const MAX_DIMENSION: u32 = 16_384;

/// Where one camera's frames come from. TOML: a table with `kind = "file" | "rtsp" | "v4l2" |
/// "image_sequence" | "test_pattern"` and the fields of that kind.
///
/// `file` and `image_sequence` are recordings: every frame is delivered (none dropped) as fast as
/// the consumer takes them, and the stream ends. `rtsp` and `v4l2` are live: stale frames are
/// dropped when the consumer is behind, and the source reconnects forever after errors.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "snake_case")]
pub enum SourceConfig {
    /// A video file (any container/codec GStreamer can decode) or any URI GStreamer understands.
    File {
        /// Path of the recording, or a URI (`file:///…`, `http://…`).
        path: String,
    },
    /// An RTSP camera or server, always over TCP (interleaved), which survives lossy networks
    /// and firewalls better than UDP.
    Rtsp {
        /// `rtsp://[user:password@]host[:port]/path` (`rtsps://` for TLS). Credentials in the URL
        /// are never logged.
        url: String,
        /// Jitter-buffer latency in milliseconds: how long packets may be reordered/late.
        /// Default 200; allowed 0..=10000.
        #[serde(default = "default_rtsp_latency_ms")]
        latency_ms: u32,
        /// How to recover from a lost or stalled stream.
        #[serde(default)]
        reconnect: ReconnectConfig,
    },
    /// A local V4L2 camera (USB/CSI). Raw and MJPEG cameras both work.
    V4l2 {
        /// Device node, e.g. `/dev/video0` (a stable `/dev/v4l/by-id/…` link is better).
        device: String,
        /// Requested width in pixels; unset: the camera's choice. Allowed 1..=16384.
        #[serde(default)]
        width: Option<u32>,
        /// Requested height in pixels; unset: the camera's choice. Allowed 1..=16384.
        #[serde(default)]
        height: Option<u32>,
        /// Requested frame rate (frames/s, e.g. `30` or `29.97`); unset: the camera's choice.
        /// Allowed (0, 1000].
        #[serde(default)]
        framerate: Option<f64>,
        /// How to recover from an unplugged or stalled camera.
        #[serde(default)]
        reconnect: ReconnectConfig,
    },
    /// A numbered sequence of still images, one per frame, read in index order until the first
    /// missing file (or `stop_index`). Decoder by extension: `.pgm`/`.ppm`/`.pbm`/`.pnm`, `.png`,
    /// `.jpg`/`.jpeg`.
    ImageSequence {
        /// File name pattern with exactly one printf-style integer field, e.g.
        /// `frames/frame_%06d.pgm` (`%d`, `%Nd` or `%0Nd`; write `%%` for a literal `%`).
        pattern: String,
        /// Index of the first image. Default 0.
        #[serde(default)]
        start_index: u32,
        /// Index of the last image (inclusive); unset: until the first missing file.
        #[serde(default)]
        stop_index: Option<u32>,
        /// Frame rate used to time-stamp the images (frames/s). Default 25; allowed (0, 1000].
        #[serde(default = "default_framerate")]
        framerate: f64,
    },
    /// GStreamer's synthetic test pattern (`videotestsrc`), I420: for tests and commissioning.
    TestPattern {
        /// Pattern name as `videotestsrc` knows it: `smpte`, `snow`, `ball`, `checkers-8`, … .
        /// Default `smpte`.
        #[serde(default = "default_test_pattern")]
        pattern: String,
        /// Width in pixels. Default 640; allowed 1..=16384.
        #[serde(default = "default_test_width")]
        width: u32,
        /// Height in pixels. Default 480; allowed 1..=16384.
        #[serde(default = "default_test_height")]
        height: u32,
        /// Frame rate (frames/s). Default 25; allowed (0, 1000].
        #[serde(default = "default_framerate")]
        framerate: f64,
        /// Number of frames before the stream ends; unset: endless. Allowed ≥ 1.
        #[serde(default)]
        num_frames: Option<u64>,
        /// Behave like a camera (frames paced in real time, dropped when the consumer is behind,
        /// restarted after the end). Default false: a recording delivered as fast as consumed.
        #[serde(default)]
        live: bool,
        /// Recovery policy, used only when `live` is true.
        #[serde(default)]
        reconnect: ReconnectConfig,
    },
}

/// How a live source recovers: after an error, end of stream or stall the pipeline is torn
/// down and rebuilt after a wait that doubles from `initial_backoff_ms` up to `max_backoff_ms`
/// (reset once frames flow again). Retries never stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReconnectConfig {
    /// First wait after a failure, milliseconds. Default 500; allowed 10..=600000.
    pub initial_backoff_ms: u64,
    /// Longest wait between attempts, milliseconds. Default 30000; allowed
    /// `initial_backoff_ms..=3600000`.
    pub max_backoff_ms: u64,
    /// A stream that delivers no frame for this long (also right after connecting) counts as
    /// lost and is reconnected, milliseconds. Default 5000; allowed 100..=600000.
    pub stall_timeout_ms: u64,
}

impl Default for ReconnectConfig {
    fn default() -> Self {
        ReconnectConfig {
            initial_backoff_ms: 500,
            max_backoff_ms: 30_000,
            stall_timeout_ms: 5_000,
        }
    }
}

fn default_rtsp_latency_ms() -> u32 {
    200
}
fn default_framerate() -> f64 {
    25.0
}
fn default_test_pattern() -> String {
    "smpte".into()
}
fn default_test_width() -> u32 {
    640
}
fn default_test_height() -> u32 {
    480
}

/// Pattern names `videotestsrc` accepts (GStreamer 1.22).
pub(crate) const TEST_PATTERNS: &[&str] = &[
    "smpte",
    "snow",
    "black",
    "white",
    "red",
    "green",
    "blue",
    "checkers-1",
    "checkers-2",
    "checkers-4",
    "checkers-8",
    "circular",
    "blink",
    "smpte75",
    "zone-plate",
    "gamut",
    "chroma-zone-plate",
    "solid-color",
    "ball",
    "smpte100",
    "bar",
    "pinwheel",
    "spokes",
    "gradient",
    "colors",
    "smpte-rp-219",
];

/// The image format of a sequence, from the pattern's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ImageFormat {
    /// PGM/PPM/PBM/PNM (`pnmdec`).
    Pnm(&'static str),
    /// PNG (`pngdec`).
    Png,
    /// JPEG (`jpegdec`).
    Jpeg,
}

impl ImageFormat {
    /// Detects the format from a pattern's extension (case-insensitive).
    pub(crate) fn from_pattern(pattern: &str) -> Option<ImageFormat> {
        let ext = Path::new(pattern)
            .extension()?
            .to_str()?
            .to_ascii_lowercase();
        Some(match ext.as_str() {
            "pgm" => ImageFormat::Pnm("image/x-portable-graymap"),
            "ppm" => ImageFormat::Pnm("image/x-portable-pixmap"),
            "pbm" => ImageFormat::Pnm("image/x-portable-bitmap"),
            "pnm" => ImageFormat::Pnm("image/x-portable-anymap"),
            "png" => ImageFormat::Png,
            "jpg" | "jpeg" => ImageFormat::Jpeg,
            _ => return None,
        })
    }

    /// Caps media type `multifilesrc` announces.
    pub(crate) fn media_type(self) -> &'static str {
        match self {
            ImageFormat::Pnm(t) => t,
            ImageFormat::Png => "image/png",
            ImageFormat::Jpeg => "image/jpeg",
        }
    }

    /// GStreamer decoder element.
    pub(crate) fn decoder(self) -> &'static str {
        match self {
            ImageFormat::Pnm(_) => "pnmdec",
            ImageFormat::Png => "pngdec",
            ImageFormat::Jpeg => "jpegdec",
        }
    }
}

/// A parsed image-sequence pattern: `prefix` + number (zero-padded to `width` when `zero`) +
/// `suffix`, with `%%` already turned into `%`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SeqPattern {
    prefix: String,
    suffix: String,
    width: usize,
    zero: bool,
}

impl SeqPattern {
    /// Parses a printf-style pattern with exactly one `%d`, `%Nd` or `%0Nd` field.
    pub(crate) fn parse(pattern: &str) -> Result<SeqPattern, String> {
        let mut prefix = String::new();
        let mut suffix = String::new();
        let mut field: Option<(usize, bool)> = None;
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            let out = if field.is_some() {
                &mut suffix
            } else {
                &mut prefix
            };
            if c != '%' {
                out.push(c);
                continue;
            }
            if chars.peek() == Some(&'%') {
                chars.next();
                out.push('%');
                continue;
            }
            let zero = chars.peek() == Some(&'0');
            if zero {
                chars.next();
            }
            let mut digits = String::new();
            while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                digits.push(d);
                chars.next();
            }
            match chars.next() {
                Some('d') | Some('u') | Some('i') => {}
                _ => {
                    return Err(format!(
                        "`{pattern}` has a `%` that is not an integer field: use `%d`, `%0Nd` \
                         (e.g. `frame_%06d.pgm`) or `%%` for a literal `%`"
                    ));
                }
            }
            if field.is_some() {
                return Err(format!(
                    "`{pattern}` has more than one `%d` field: exactly one is allowed"
                ));
            }
            let width = if digits.is_empty() {
                0
            } else {
                match digits.parse::<usize>() {
                    Ok(w) if w <= 20 => w,
                    _ => {
                        return Err(format!(
                            "`{pattern}`: field width {digits} is too large (max 20)"
                        ));
                    }
                }
            };
            field = Some((width, zero));
        }
        match field {
            Some((width, zero)) => Ok(SeqPattern {
                prefix,
                suffix,
                width,
                zero,
            }),
            None => Err(format!(
                "`{pattern}` has no `%d` field for the frame number: write e.g. `frames/frame_%06d.pgm`"
            )),
        }
    }

    /// The file name of one index.
    pub(crate) fn format(&self, index: u64) -> String {
        let num = if self.zero {
            format!("{index:0width$}", width = self.width)
        } else {
            format!("{index:width$}", width = self.width)
        };
        format!("{}{}{}", self.prefix, num, self.suffix)
    }

    /// Smallest index for which a file exists, found by listing the pattern's folder; `None` when
    /// no file matches (or the folder cannot be read).
    pub(crate) fn first_existing_index(&self) -> Option<u64> {
        // The number may sit inside the file name: split the prefix at the last separator.
        let (dir, name_prefix) = match self.prefix.rfind('/') {
            Some(i) => (
                self.prefix[..=i].to_string(),
                self.prefix[i + 1..].to_string(),
            ),
            None => (String::new(), self.prefix.clone()),
        };
        if self.suffix.contains('/') {
            // The number names a folder: probe the first indices instead.
            return (0..=10_000u64).find(|i| Path::new(&self.format(*i)).is_file());
        }
        let dir_path = if dir.is_empty() {
            Path::new(".")
        } else {
            Path::new(&dir)
        };
        let entries = std::fs::read_dir(dir_path).ok()?;
        let mut best: Option<u64> = None;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some(rest) = name.strip_prefix(name_prefix.as_str()) else {
                continue;
            };
            let Some(num) = rest.strip_suffix(self.suffix.as_str()) else {
                continue;
            };
            let trimmed = num.trim_start_matches(' ');
            if trimmed.is_empty() || !trimmed.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let Ok(i) = trimmed.parse::<u64>() else {
                continue;
            };
            // Only names this pattern would produce (same padding).
            if self.format(i) != format!("{}{}{}", self.prefix, num, self.suffix) {
                continue;
            }
            best = Some(best.map_or(i, |b| b.min(i)));
        }
        best
    }
}

impl SourceConfig {
    /// The source for `finprint replay --input INPUT`: an image sequence when `input` contains a
    /// `%d`/`%0Nd` field (starting at the smallest index that exists on disk, 0 when none does;
    /// 25 frames/s), an RTSP camera for `rtsp://`/`rtsps://` URLs, otherwise a file path or URI.
    pub fn from_input(input: &str) -> SourceConfig {
        let lower = input.to_ascii_lowercase();
        if lower.starts_with("rtsp://") || lower.starts_with("rtsps://") {
            return SourceConfig::Rtsp {
                url: input.to_string(),
                latency_ms: default_rtsp_latency_ms(),
                reconnect: ReconnectConfig::default(),
            };
        }
        if !input.contains("://")
            && let Ok(p) = SeqPattern::parse(input)
        {
            let start = p.first_existing_index().unwrap_or(0);
            return SourceConfig::ImageSequence {
                pattern: input.to_string(),
                start_index: u32::try_from(start).unwrap_or(u32::MAX),
                stop_index: None,
                framerate: default_framerate(),
            };
        }
        SourceConfig::File {
            path: input.to_string(),
        }
    }

    /// True for cameras (RTSP, V4L2, live test pattern): frames are dropped when the consumer
    /// is behind and the source reconnects; false for recordings, which deliver every frame and
    /// end.
    pub fn is_live(&self) -> bool {
        match self {
            SourceConfig::Rtsp { .. } | SourceConfig::V4l2 { .. } => true,
            SourceConfig::TestPattern { live, .. } => *live,
            SourceConfig::File { .. } | SourceConfig::ImageSequence { .. } => false,
        }
    }

    /// A recording whose end may not be the last of it: an image sequence without
    /// `stop_index`, whose next images may still come (a recording that grows). A file that
    /// grows is another recording (its size and time are in [`SourceConfig::resume_key`]).
    pub fn may_grow(&self) -> bool {
        matches!(
            self,
            SourceConfig::ImageSequence {
                stop_index: None,
                ..
            }
        )
    }

    /// The reconnect policy of a live source (`None` for recordings).
    pub fn reconnect(&self) -> Option<&ReconnectConfig> {
        match self {
            SourceConfig::Rtsp { reconnect, .. } | SourceConfig::V4l2 { reconnect, .. } => {
                Some(reconnect)
            }
            SourceConfig::TestPattern {
                reconnect,
                live: true,
                ..
            } => Some(reconnect),
            _ => None,
        }
    }

    /// What names a source across restarts, for the outputs' checkpoint: `None` for a test
    /// pattern that is not live. A local file's key includes its size and modification time
    /// (read here), so a file replaced under the same name is not resumed.
    pub fn resume_key(&self) -> Option<String> {
        match self {
            _ if self.is_live() => Some(self.describe()),
            SourceConfig::File { path } => {
                let local = !path.contains("://");
                let stamp = local
                    .then(|| std::fs::metadata(path).ok())
                    .flatten()
                    .map(|m| {
                        let modified = m
                            .modified()
                            .ok()
                            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                            .map_or(0, |d| d.as_secs());
                        format!(" ({} bytes, modified {modified})", m.len())
                    })
                    .unwrap_or_default();
                Some(format!("file {}{stamp}", redact_url(path)))
            }
            SourceConfig::ImageSequence {
                pattern,
                start_index,
                stop_index,
                framerate,
            } => Some(format!(
                "image sequence {pattern} from {start_index} to {} at {framerate} frames/s",
                stop_index.map_or_else(|| "the last".to_string(), |s| s.to_string())
            )),
            _ => None,
        }
    }

    /// A short description for logs and errors (credentials removed from URLs).
    pub fn describe(&self) -> String {
        match self {
            SourceConfig::File { path } => format!("file {}", redact_url(path)),
            SourceConfig::Rtsp { url, .. } => format!("RTSP stream {}", redact_url(url)),
            SourceConfig::V4l2 { device, .. } => format!("V4L2 camera {device}"),
            SourceConfig::ImageSequence { pattern, .. } => format!("image sequence {pattern}"),
            SourceConfig::TestPattern { pattern, .. } => format!("test pattern {pattern}"),
        }
    }

    /// Checks values without touching devices or files. `key` is the dotted path of this
    /// table (e.g. `cameras[0].source`) used in error messages.
    pub fn validate(&self, key: &str) -> Result<(), ConfigError> {
        match self {
            SourceConfig::File { path } => {
                if path.trim().is_empty() {
                    return Err(ConfigError::invalid(
                        format!("{key}.path"),
                        "is empty: give the path or URI of a video file",
                    ));
                }
            }
            SourceConfig::Rtsp {
                url,
                latency_ms,
                reconnect,
            } => {
                let lower = url.to_ascii_lowercase();
                let rest = ["rtsp://", "rtsps://", "rtspt://"]
                    .iter()
                    .find_map(|s| lower.strip_prefix(s));
                match rest {
                    Some(r) if !r.is_empty() && !r.starts_with('/') => {}
                    _ => {
                        return Err(ConfigError::invalid(
                            format!("{key}.url"),
                            format!(
                                "`{}` is not an RTSP URL: use rtsp://host[:port]/path \
                                 (or rtsps:// for TLS)",
                                redact_url(url)
                            ),
                        ));
                    }
                }
                if *latency_ms > 10_000 {
                    return Err(ConfigError::invalid(
                        format!("{key}.latency_ms"),
                        format!("{latency_ms} is not allowed: use 0..=10000 milliseconds"),
                    ));
                }
                reconnect.validate(&format!("{key}.reconnect"))?;
            }
            SourceConfig::V4l2 {
                device,
                width,
                height,
                framerate,
                reconnect,
            } => {
                if device.trim().is_empty() {
                    return Err(ConfigError::invalid(
                        format!("{key}.device"),
                        "is empty: give the device node, e.g. /dev/video0",
                    ));
                }
                if let Some(w) = width {
                    check_dimension(&format!("{key}.width"), *w)?;
                }
                if let Some(h) = height {
                    check_dimension(&format!("{key}.height"), *h)?;
                }
                if let Some(f) = framerate {
                    check_framerate(&format!("{key}.framerate"), *f)?;
                }
                reconnect.validate(&format!("{key}.reconnect"))?;
            }
            SourceConfig::ImageSequence {
                pattern,
                start_index,
                stop_index,
                framerate,
            } => {
                SeqPattern::parse(pattern)
                    .map_err(|m| ConfigError::invalid(format!("{key}.pattern"), m))?;
                if ImageFormat::from_pattern(pattern).is_none() {
                    return Err(ConfigError::invalid(
                        format!("{key}.pattern"),
                        format!(
                            "`{pattern}` has an unsupported extension: use .pgm, .ppm, .pbm, \
                             .pnm, .png, .jpg or .jpeg"
                        ),
                    ));
                }
                if let Some(stop) = stop_index
                    && stop < start_index
                {
                    return Err(ConfigError::invalid(
                        format!("{key}.stop_index"),
                        format!(
                            "{stop} is before start_index {start_index}: must be ≥ start_index, \
                             or unset to read until the first missing file"
                        ),
                    ));
                }
                check_framerate(&format!("{key}.framerate"), *framerate)?;
            }
            SourceConfig::TestPattern {
                pattern,
                width,
                height,
                framerate,
                num_frames,
                live,
                reconnect,
            } => {
                if !TEST_PATTERNS.contains(&pattern.as_str()) {
                    return Err(ConfigError::invalid(
                        format!("{key}.pattern"),
                        format!(
                            "`{pattern}` is not a videotestsrc pattern: use one of {}",
                            TEST_PATTERNS.join(", ")
                        ),
                    ));
                }
                check_dimension(&format!("{key}.width"), *width)?;
                check_dimension(&format!("{key}.height"), *height)?;
                check_framerate(&format!("{key}.framerate"), *framerate)?;
                if *num_frames == Some(0) {
                    return Err(ConfigError::invalid(
                        format!("{key}.num_frames"),
                        "0 is not allowed: use ≥ 1, or leave unset for an endless stream",
                    ));
                }
                if *live {
                    reconnect.validate(&format!("{key}.reconnect"))?;
                }
            }
        }
        Ok(())
    }
}

impl ReconnectConfig {
    /// Checks the policy; `key` is the dotted path of this table.
    pub fn validate(&self, key: &str) -> Result<(), ConfigError> {
        if !(10..=600_000).contains(&self.initial_backoff_ms) {
            return Err(ConfigError::invalid(
                format!("{key}.initial_backoff_ms"),
                format!(
                    "{} is not allowed: use 10..=600000 milliseconds",
                    self.initial_backoff_ms
                ),
            ));
        }
        if self.max_backoff_ms < self.initial_backoff_ms || self.max_backoff_ms > 3_600_000 {
            return Err(ConfigError::invalid(
                format!("{key}.max_backoff_ms"),
                format!(
                    "{} is not allowed: use initial_backoff_ms ({})..=3600000 milliseconds",
                    self.max_backoff_ms, self.initial_backoff_ms
                ),
            ));
        }
        if !(100..=600_000).contains(&self.stall_timeout_ms) {
            return Err(ConfigError::invalid(
                format!("{key}.stall_timeout_ms"),
                format!(
                    "{} is not allowed: use 100..=600000 milliseconds",
                    self.stall_timeout_ms
                ),
            ));
        }
        Ok(())
    }
}

fn check_dimension(key: &str, v: u32) -> Result<(), ConfigError> {
    if v == 0 || v > MAX_DIMENSION {
        return Err(ConfigError::invalid(
            key,
            format!("{v} is not allowed: use 1..={MAX_DIMENSION} pixels"),
        ));
    }
    Ok(())
}

fn check_framerate(key: &str, f: f64) -> Result<(), ConfigError> {
    if !(f.is_finite() && f > 0.0 && f <= MAX_FRAMERATE) {
        return Err(ConfigError::invalid(
            key,
            format!(
                "{f} is not allowed: use a frame rate in (0, {MAX_FRAMERATE}] frames per second"
            ),
        ));
    }
    Ok(())
}

/// Removes `user:password@` from a URL so that it can be logged.
pub(crate) fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}://***@{}", &url[..scheme_end], &rest[at + 1..]),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_text: &str) -> Result<SourceConfig, String> {
        #[derive(Deserialize)]
        struct Wrap {
            source: SourceConfig,
        }
        toml::from_str::<Wrap>(toml_text)
            .map(|w| w.source)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn parses_every_kind_with_documented_defaults() {
        let s = parse("[source]\nkind = \"file\"\npath = \"a.mp4\"\n").unwrap();
        assert_eq!(
            s,
            SourceConfig::File {
                path: "a.mp4".into()
            }
        );
        let s = parse("[source]\nkind = \"rtsp\"\nurl = \"rtsp://cam/x\"\n").unwrap();
        assert_eq!(
            s,
            SourceConfig::Rtsp {
                url: "rtsp://cam/x".into(),
                latency_ms: 200,
                reconnect: ReconnectConfig {
                    initial_backoff_ms: 500,
                    max_backoff_ms: 30_000,
                    stall_timeout_ms: 5_000
                }
            }
        );
        let s = parse(
            "[source]\nkind = \"v4l2\"\ndevice = \"/dev/video0\"\nframerate = 30\n\
             [source.reconnect]\nstall_timeout_ms = 2000\n",
        )
        .unwrap();
        match s {
            SourceConfig::V4l2 {
                framerate,
                reconnect,
                width,
                ..
            } => {
                assert_eq!(framerate, Some(30.0));
                assert_eq!(width, None);
                assert_eq!(reconnect.stall_timeout_ms, 2000);
                assert_eq!(reconnect.initial_backoff_ms, 500);
            }
            other => panic!("wrong kind {other:?}"),
        }
        let s = parse("[source]\nkind = \"image_sequence\"\npattern = \"f/%06d.pgm\"\n").unwrap();
        assert_eq!(
            s,
            SourceConfig::ImageSequence {
                pattern: "f/%06d.pgm".into(),
                start_index: 0,
                stop_index: None,
                framerate: 25.0
            }
        );
        let s = parse("[source]\nkind = \"test_pattern\"\n").unwrap();
        match &s {
            SourceConfig::TestPattern {
                pattern,
                width,
                height,
                framerate,
                num_frames,
                live,
                ..
            } => {
                assert_eq!((pattern.as_str(), *width, *height), ("smpte", 640, 480));
                assert_eq!((*framerate, *num_frames, *live), (25.0, None, false));
            }
            other => panic!("wrong kind {other:?}"),
        }
        assert!(!s.is_live());
        assert!(s.validate("s").is_ok());
    }

    #[test]
    fn rejects_unknown_fields_and_kinds() {
        assert!(parse("[source]\nkind = \"file\"\npath = \"a\"\nurl = \"b\"\n").is_err());
        assert!(parse("[source]\nkind = \"webcam\"\n").is_err());
        assert!(
            parse(
                "[source]\nkind = \"rtsp\"\nurl = \"rtsp://h/x\"\n[source.reconnect]\nbogus = 1\n"
            )
            .is_err()
        );
    }

    fn invalid_key(s: &SourceConfig) -> String {
        match s.validate("cam") {
            Err(ConfigError::Invalid { key, .. }) => key,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn validate_names_the_offending_key() {
        let seq = |pattern: &str| SourceConfig::ImageSequence {
            pattern: pattern.into(),
            start_index: 0,
            stop_index: None,
            framerate: 25.0,
        };
        assert_eq!(invalid_key(&seq("frames/frame.pgm")), "cam.pattern");
        assert_eq!(invalid_key(&seq("frames/%d_%d.pgm")), "cam.pattern");
        assert_eq!(invalid_key(&seq("frames/%s.pgm")), "cam.pattern");
        assert_eq!(invalid_key(&seq("frames/%06d.bmp")), "cam.pattern");
        assert!(seq("frames/100%%_%06d.png").validate("cam").is_ok());
        let bad_rate = SourceConfig::ImageSequence {
            pattern: "f_%d.jpg".into(),
            start_index: 0,
            stop_index: None,
            framerate: 0.0,
        };
        assert_eq!(invalid_key(&bad_rate), "cam.framerate");
        let nan_rate = SourceConfig::ImageSequence {
            pattern: "f_%d.jpg".into(),
            start_index: 0,
            stop_index: None,
            framerate: f64::NAN,
        };
        assert_eq!(invalid_key(&nan_rate), "cam.framerate");
        let stop = SourceConfig::ImageSequence {
            pattern: "f_%d.jpg".into(),
            start_index: 5,
            stop_index: Some(4),
            framerate: 25.0,
        };
        assert_eq!(invalid_key(&stop), "cam.stop_index");
        let url = SourceConfig::Rtsp {
            url: "http://cam/x".into(),
            latency_ms: 0,
            reconnect: ReconnectConfig::default(),
        };
        assert_eq!(invalid_key(&url), "cam.url");
        let backoff = SourceConfig::Rtsp {
            url: "rtsp://cam/x".into(),
            latency_ms: 0,
            reconnect: ReconnectConfig {
                initial_backoff_ms: 1000,
                max_backoff_ms: 10,
                stall_timeout_ms: 1000,
            },
        };
        assert_eq!(invalid_key(&backoff), "cam.reconnect.max_backoff_ms");
        let tp = SourceConfig::TestPattern {
            pattern: "plaid".into(),
            width: 10,
            height: 10,
            framerate: 25.0,
            num_frames: None,
            live: false,
            reconnect: ReconnectConfig::default(),
        };
        assert_eq!(invalid_key(&tp), "cam.pattern");
        let v4l2 = SourceConfig::V4l2 {
            device: "/dev/video0".into(),
            width: Some(0),
            height: None,
            framerate: None,
            reconnect: ReconnectConfig::default(),
        };
        assert_eq!(invalid_key(&v4l2), "cam.width");
        assert_eq!(
            invalid_key(&SourceConfig::File { path: " ".into() }),
            "cam.path"
        );
    }

    #[test]
    fn sequence_pattern_formats_like_printf() {
        let p = SeqPattern::parse("dir/frame_%06d.pgm").unwrap();
        assert_eq!(p.format(7), "dir/frame_000007.pgm");
        assert_eq!(p.format(1234567), "dir/frame_1234567.pgm");
        let p = SeqPattern::parse("a%%b%d.png").unwrap();
        assert_eq!(p.format(12), "a%b12.png");
        let p = SeqPattern::parse("x%4d.png").unwrap();
        assert_eq!(p.format(3), "x   3.png");
    }

    #[test]
    fn from_input_finds_the_first_index_of_a_sequence() {
        let dir = std::env::temp_dir().join(format!("finprint-seq-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for i in [3, 4, 5, 17] {
            std::fs::write(dir.join(format!("img_{i:04}.png")), b"x").unwrap();
        }
        std::fs::write(dir.join("img_2.png"), b"other padding").unwrap();
        std::fs::write(dir.join("notes.txt"), b"n").unwrap();
        let pattern = format!("{}/img_%04d.png", dir.display());
        let s = SourceConfig::from_input(&pattern);
        std::fs::remove_dir_all(&dir).unwrap();
        match s {
            SourceConfig::ImageSequence {
                start_index,
                stop_index,
                pattern: p,
                ..
            } => {
                assert_eq!(start_index, 3);
                assert_eq!(stop_index, None);
                assert_eq!(p, pattern);
            }
            other => panic!("expected a sequence, got {other:?}"),
        }
        assert!(matches!(
            SourceConfig::from_input("/data/rec.mp4"),
            SourceConfig::File { .. }
        ));
        assert!(matches!(
            SourceConfig::from_input("file:///data/rec%20a.mp4"),
            SourceConfig::File { .. }
        ));
        let rtsp = SourceConfig::from_input("rtsp://cam/stream");
        assert!(rtsp.is_live());
        assert!(rtsp.validate("x").is_ok());
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("rtsp://admin:secret@10.0.0.5:554/s"),
            "rtsp://***@10.0.0.5:554/s"
        );
        assert_eq!(redact_url("rtsp://10.0.0.5/s@x"), "rtsp://10.0.0.5/s@x");
        assert_eq!(redact_url("/plain/path"), "/plain/path");
    }
}
