//! Append-only output files that survive write errors.
//!
//! A `BufferedFile` keeps rows in memory (bounded) until they are written; a failed write
//! (full disk, I/O error, vanished directory) keeps the unwritten bytes, drops the file handle
//! (so the next attempt reopens the path, e.g. after a remount) and reports an error naming
//! the file. Rows are never written twice: partial writes are accounted byte by byte.
//! Rotation is expressed by the caller pushing rows for a new path; rows stay ordered.
//! This module must never panic on I/O errors and never block longer than one write.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use super::OutputError;

/// Bytes destined for one path.
#[derive(Debug)]
struct Segment {
    path: PathBuf,
    data: Vec<u8>,
    /// Whether the header question (is the file new?) has been settled for this segment.
    header_checked: bool,
}

/// An append-only, rotating, error-tolerant text file writer (see the module docs).
#[derive(Debug)]
pub(crate) struct BufferedFile {
    header: String,
    segments: VecDeque<Segment>,
    open: Option<(PathBuf, File)>,
    limit: usize,
    buffered: usize,
    dropped_rows: u64,
}

impl BufferedFile {
    /// A writer whose files start with `header` (a full line, `\n`-terminated) and that keeps
    /// at most `limit` unwritten bytes in memory.
    pub(crate) fn new(header: impl Into<String>, limit: usize) -> Self {
        BufferedFile {
            header: header.into(),
            segments: VecDeque::new(),
            open: None,
            limit,
            buffered: 0,
            dropped_rows: 0,
        }
    }

    /// Queues one row (a full line) for `path`. Returns `false` (and counts it) when the
    /// in-memory buffer is full and the row had to be dropped.
    pub(crate) fn push_row(&mut self, path: &Path, row: &[u8]) -> bool {
        if self.buffered + row.len() > self.limit {
            self.dropped_rows += 1;
            return false;
        }
        match self.segments.back_mut() {
            Some(seg) if seg.path == path => seg.data.extend_from_slice(row),
            _ => self.segments.push_back(Segment {
                path: path.to_path_buf(),
                data: row.to_vec(),
                header_checked: false,
            }),
        }
        self.buffered += row.len();
        true
    }

    /// Bytes waiting to be written.
    pub(crate) fn buffered_bytes(&self) -> usize {
        self.buffered
    }

    /// Rows dropped so far because the buffer was full.
    pub(crate) fn dropped_rows(&self) -> u64 {
        self.dropped_rows
    }

    /// Writes everything queued. On error the unwritten bytes stay queued, the handle is
    /// dropped (reopened next time) and the error names the file.
    pub(crate) fn flush(&mut self) -> Result<(), OutputError> {
        let r = self.flush_inner();
        if r.is_err() {
            self.open = None;
        }
        r
    }

    fn flush_inner(&mut self) -> Result<(), OutputError> {
        while let Some(mut seg) = self.segments.pop_front() {
            let res = self.write_segment(&mut seg);
            let empty = seg.data.is_empty();
            if !empty {
                self.segments.push_front(seg);
            }
            res?;
        }
        Ok(())
    }

    fn write_segment(&mut self, seg: &mut Segment) -> Result<(), OutputError> {
        let file = open_handle(&mut self.open, &seg.path)?;
        if !seg.header_checked {
            let len = file
                .metadata()
                .map_err(|source| OutputError::Open {
                    path: seg.path.clone(),
                    source,
                })?
                .len();
            if len == 0 && !self.header.is_empty() {
                seg.data.splice(0..0, self.header.bytes());
                self.buffered += self.header.len();
            }
            // Settled once: a partly written header stays queued and is not added again.
            seg.header_checked = true;
        }
        write_all_accounted(file, &seg.path, &mut seg.data, &mut self.buffered)
    }

    /// Flushes and then `fsync`s the open file.
    pub(crate) fn sync(&mut self) -> Result<(), OutputError> {
        self.flush()?;
        if let Some((path, f)) = &self.open {
            f.sync_all().map_err(|source| OutputError::Sync {
                path: path.clone(),
                source,
            })?;
        }
        Ok(())
    }
}

/// Ensures a parent folder and an open append handle for `path` in `open`.
fn open_handle<'a>(
    open: &'a mut Option<(PathBuf, File)>,
    path: &Path,
) -> Result<&'a mut File, OutputError> {
    let reuse = matches!(open, Some((p, _)) if p == path);
    if !reuse {
        if let Some((old, f)) = open.take() {
            // Rotation: the previous file is complete, make it durable.
            f.sync_all()
                .map_err(|source| OutputError::Sync { path: old, source })?;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| OutputError::CreateDir {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| OutputError::Open {
                path: path.to_path_buf(),
                source,
            })?;
        *open = Some((path.to_path_buf(), f));
    }
    match open {
        Some((_, f)) => Ok(f),
        None => Err(OutputError::Open {
            path: path.to_path_buf(),
            source: std::io::Error::other("file handle vanished"),
        }),
    }
}

/// Writes `data` to `file`, removing what was written from `data` even when a later write
/// fails, so nothing is written twice.
fn write_all_accounted(
    file: &mut File,
    path: &Path,
    data: &mut Vec<u8>,
    buffered: &mut usize,
) -> Result<(), OutputError> {
    let mut off = 0;
    let mut result = Ok(());
    while off < data.len() {
        match file.write(&data[off..]) {
            Ok(0) => {
                result = Err(OutputError::Write {
                    path: path.to_path_buf(),
                    source: std::io::Error::new(ErrorKind::WriteZero, "wrote 0 bytes"),
                });
                break;
            }
            Ok(n) => off += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(source) => {
                result = Err(OutputError::Write {
                    path: path.to_path_buf(),
                    source,
                });
                break;
            }
        }
    }
    data.drain(..off);
    *buffered = buffered.saturating_sub(off);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_once_rotation_and_append() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("x/a.csv");
        let b = dir.path().join("x/b.csv");
        let mut f = BufferedFile::new("h\n", 1 << 20);
        f.push_row(&a, b"1\n");
        f.push_row(&a, b"2\n");
        f.flush().unwrap();
        f.push_row(&b, b"3\n");
        f.sync().unwrap();
        // A second writer appending to an existing file writes no second header.
        let mut g = BufferedFile::new("h\n", 1 << 20);
        g.push_row(&a, b"4\n");
        g.sync().unwrap();
        assert_eq!(std::fs::read_to_string(&a).unwrap(), "h\n1\n2\n4\n");
        assert_eq!(std::fs::read_to_string(&b).unwrap(), "h\n3\n");
        assert_eq!(f.buffered_bytes(), 0);
    }

    #[test]
    fn bounded_buffer_drops_and_counts() {
        let mut f = BufferedFile::new("", 5);
        let p = Path::new("/nonexistent/never-written");
        assert!(f.push_row(p, b"123\n"));
        assert!(!f.push_row(p, b"456\n"));
        assert_eq!(f.dropped_rows(), 1);
        assert_eq!(f.buffered_bytes(), 4);
    }
}
