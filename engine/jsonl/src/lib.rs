//! # lookout-jsonl
//!
//! [`JsonlWriter`]: an append-only JSON-lines file (one value per line, flushed per line)
//! for the engine's human-readable logs (`events.jsonl`, `incidents.jsonl`), rotated by
//! size and age ([`Rotation`], [`RotatingFile`]). A log is a convenience, never a reason to
//! stop a stage: a file that cannot be opened or written is reported once (with its path)
//! and the writer carries on without it.

use std::path::{Path, PathBuf};

mod rotate;

pub use rotate::{parse_rotated, rotated_name, sync_dir, RotatingFile, Rotation};

/// An append-only JSON-lines log that reports (once) when it cannot be written and never
/// stops the stage that writes it.
#[derive(Debug)]
pub struct JsonlWriter {
    file: Option<RotatingFile>,
    path: PathBuf,
    line: Vec<u8>,
    written: u64,
}

impl JsonlWriter {
    /// Opens `path` for appending (created if missing), never rotated.
    pub fn open(path: &Path) -> JsonlWriter {
        JsonlWriter::open_rotating(path, Rotation::NEVER)
    }

    /// Opens `path` for appending (created, with its directory, if missing), rotated by
    /// `rotation`. A failure is logged and the writer discards what it is given.
    pub fn open_rotating(path: &Path, rotation: Rotation) -> JsonlWriter {
        let file = match RotatingFile::open(path, rotation) {
            Ok(f) => Some(f),
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "Cannot open a log file; continuing without it.");
                None
            }
        };
        JsonlWriter {
            file,
            path: path.to_path_buf(),
            line: Vec::with_capacity(1024),
            written: 0,
        }
    }

    /// Appends one value as one line and flushes it. After the first failure the log is
    /// closed (reported once) and later values are discarded.
    pub fn write<T: serde::Serialize + ?Sized>(&mut self, value: &T) {
        let Some(f) = self.file.as_mut() else { return };
        self.line.clear();
        let res = serde_json::to_writer(&mut self.line, value)
            .map_err(std::io::Error::other)
            .and_then(|_| f.write_line(&self.line))
            .and_then(|_| f.flush());
        match res {
            Ok(()) => self.written += 1,
            Err(e) => {
                tracing::error!(path = %self.path.display(), error = %e, "Cannot write a log file; continuing without it.");
                self.file = None;
            }
        }
    }

    /// Whether the file is open (false after an open or write failure).
    pub fn is_open(&self) -> bool {
        self.file.is_some()
    }

    /// Lines written since open.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Rotations since open.
    pub fn rotations(&self) -> u64 {
        self.file.as_ref().map_or(0, RotatingFile::rotations)
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_one_line_per_value_across_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jsonl");
        let mut w = JsonlWriter::open(&path);
        w.write(&serde_json::json!({"n": 1}));
        w.write("two");
        assert_eq!(w.written(), 2);
        drop(w);
        let mut w = JsonlWriter::open(&path);
        w.write(&3);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "{\"n\":1}\n\"two\"\n3\n");
    }

    #[test]
    fn an_unopenable_file_is_skipped_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        // A directory cannot be opened as a file.
        let mut w = JsonlWriter::open(dir.path());
        assert!(!w.is_open());
        w.write(&1);
        assert_eq!(w.written(), 0);
        assert_eq!(w.path(), dir.path());
    }

    #[test]
    fn a_write_failure_closes_the_log_and_later_writes_are_dropped() {
        // /dev/full accepts the open and fails every write (Linux).
        let full = Path::new("/dev/full");
        if !full.exists() {
            return;
        }
        let mut w = JsonlWriter::open(full);
        assert!(w.is_open());
        w.write(&"x".repeat(10_000));
        assert!(!w.is_open());
        w.write(&1);
        assert_eq!(w.written(), 0);
    }

    #[test]
    fn a_rotating_log_keeps_every_value_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs/incidents.jsonl");
        let mut w = JsonlWriter::open_rotating(&path, Rotation::new(64, std::time::Duration::ZERO));
        for i in 0..30 {
            w.write(&serde_json::json!({ "i": i }));
        }
        assert_eq!(w.written(), 30);
        assert!(w.rotations() >= 3, "{}", w.rotations());
        let mut seen = Vec::new();
        for e in std::fs::read_dir(dir.path().join("logs")).unwrap() {
            let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
            for l in text.lines() {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                seen.push(v["i"].as_i64().unwrap());
            }
        }
        seen.sort_unstable();
        assert_eq!(seen, (0..30).collect::<Vec<_>>());
    }
}
