//! [`RotatingFile`]: an append-only file that is rotated by size and age.
//!
//! Rotation is crash-safe: the live file is flushed and fsynced, renamed to
//! `<stem>.<YYYYMMDDTHHMMSSmmmZ>.jsonl` next to it ([`rotated_name`]), the directory is
//! fsynced, and a new live file is opened. A kill at any point leaves every written line in
//! exactly one file: the live one (before the rename) or the rotated one (after it). The
//! retention task compresses and prunes rotated files ([`parse_rotated`] recognises them).

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};

/// When a log is rotated: at a size, at an age of its first line, whichever comes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// Rotate before a line would take the file past this many bytes; 0 = never by size.
    pub max_bytes: u64,
    /// Rotate once the file's first line is this old; `None` = never by age.
    pub max_age: Option<Duration>,
}

impl Default for Rotation {
    fn default() -> Rotation {
        Rotation::NEVER
    }
}

impl Rotation {
    /// Never rotate.
    pub const NEVER: Rotation = Rotation {
        max_bytes: 0,
        max_age: None,
    };

    /// Rotation at `max_bytes` (0 = never) or `max_age` (zero = never).
    pub fn new(max_bytes: u64, max_age: Duration) -> Rotation {
        Rotation {
            max_bytes,
            max_age: (!max_age.is_zero()).then_some(max_age),
        }
    }

    fn due(&self, bytes: u64, next: u64, born: SystemTime, now: SystemTime) -> bool {
        if bytes == 0 {
            return false;
        }
        let by_size = self.max_bytes > 0 && bytes + next > self.max_bytes;
        let by_age = self
            .max_age
            .is_some_and(|age| now.duration_since(born).unwrap_or_default() >= age);
        by_size || by_age
    }
}

/// The name of the rotated copy of the live log `live` (`events.jsonl` →
/// `events.20261206T221000123Z.jsonl`), rotated at `at`.
pub fn rotated_name(live: &Path, at: DateTime<Utc>) -> PathBuf {
    let name = live
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name.strip_suffix(".jsonl").unwrap_or(&name);
    live.with_file_name(format!("{stem}.{}.jsonl", at.format("%Y%m%dT%H%M%S%3fZ")))
}

/// A rotated log's file name split into `(stem, timestamp, compressed)`, or `None` when
/// the name is not one [`rotated_name`] gives (with `.gz` when compressed).
pub fn parse_rotated(name: &str) -> Option<(&str, &str, bool)> {
    let (base, gz) = match name.strip_suffix(".gz") {
        Some(b) => (b, true),
        None => (name, false),
    };
    let (stem, ts) = base.strip_suffix(".jsonl")?.rsplit_once('.')?;
    let b = ts.as_bytes();
    let ok = b.len() == 19
        && b[8] == b'T'
        && b[18] == b'Z'
        && b[..8].iter().all(u8::is_ascii_digit)
        && b[9..18].iter().all(u8::is_ascii_digit);
    (ok && !stem.is_empty()).then_some((stem, ts, gz))
}

/// Fsyncs the directory holding `path` (makes a rename or a new file durable).
pub fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent() {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

/// An append-only file of lines, rotated by [`Rotation`]. Lines are buffered until
/// [`RotatingFile::flush`]; a rotation always flushes and fsyncs first.
#[derive(Debug)]
pub struct RotatingFile {
    path: PathBuf,
    out: BufWriter<File>,
    rotation: Rotation,
    /// Bytes in the live file (including buffered ones).
    bytes: u64,
    /// When the live file's first line was written (its creation time when reopened).
    born: SystemTime,
    rotations: u64,
}

impl RotatingFile {
    /// Opens `path` for appending, creating it and its parent directories.
    pub fn open(path: &Path, rotation: Rotation) -> std::io::Result<RotatingFile> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let (out, bytes, born) = open_live(path)?;
        Ok(RotatingFile {
            path: path.to_path_buf(),
            out,
            rotation,
            bytes,
            born,
            rotations: 0,
        })
    }

    /// Appends `line` and a newline, rotating first when the line would take the file
    /// past its size or the file is older than its age.
    pub fn write_line(&mut self, line: &[u8]) -> std::io::Result<()> {
        let next = line.len() as u64 + 1;
        if self
            .rotation
            .due(self.bytes, next, self.born, SystemTime::now())
        {
            self.rotate()?;
        }
        if self.bytes == 0 {
            self.born = SystemTime::now();
        }
        self.out.write_all(line)?;
        self.out.write_all(b"\n")?;
        self.bytes += next;
        Ok(())
    }

    /// Writes buffered lines to the file.
    pub fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }

    /// Rotates now (nothing happens to an empty file): flush, fsync, rename to
    /// [`rotated_name`], fsync the directory, open a new live file. Returns the rotated
    /// file's path.
    pub fn rotate(&mut self) -> std::io::Result<Option<PathBuf>> {
        if self.bytes == 0 {
            return Ok(None);
        }
        self.out.flush()?;
        self.out.get_ref().sync_all()?;
        let mut at = Utc::now();
        let mut to = rotated_name(&self.path, at);
        // Two rotations within one millisecond must not overwrite each other.
        while to.exists() {
            at += chrono::Duration::milliseconds(1);
            to = rotated_name(&self.path, at);
        }
        std::fs::rename(&self.path, &to)?;
        sync_dir(&self.path);
        let (out, bytes, born) = open_live(&self.path)?;
        self.out = out;
        self.bytes = bytes;
        self.born = born;
        self.rotations += 1;
        Ok(Some(to))
    }

    /// The live file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes in the live file.
    pub fn len(&self) -> u64 {
        self.bytes
    }

    /// Whether the live file is empty.
    pub fn is_empty(&self) -> bool {
        self.bytes == 0
    }

    /// Rotations done since open.
    pub fn rotations(&self) -> u64 {
        self.rotations
    }
}

impl Drop for RotatingFile {
    fn drop(&mut self) {
        if let Err(e) = self.out.flush() {
            tracing::warn!(path = %self.path.display(), error = %e, "Cannot flush a log file.");
        }
    }
}

/// Opens the live file for appending. A file whose last line was cut short (a process
/// killed in the middle of writing a long line) gets its newline first, so the next line
/// starts on a line of its own and readers see one bad line, not two.
fn open_live(path: &Path) -> std::io::Result<(BufWriter<File>, u64, SystemTime)> {
    let mut f = OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)?;
    let meta = f.metadata()?;
    let mut len = meta.len();
    let born = if len == 0 {
        SystemTime::now()
    } else {
        meta.created()
            .or_else(|_| meta.modified())
            .unwrap_or_else(|_| SystemTime::now())
    };
    if len > 0 {
        use std::io::{Read, Seek, SeekFrom};
        let mut last = [0u8; 1];
        f.seek(SeekFrom::Start(len - 1))?;
        f.read_exact(&mut last)?;
        if last[0] != b'\n' {
            tracing::warn!(path = %path.display(), "The log's last line was cut short (an earlier process was killed while writing it); it is closed with a newline.");
            f.write_all(b"\n")?;
            len += 1;
        }
    }
    Ok((BufWriter::new(f), len, born))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_in(dir: &Path) -> (Vec<String>, usize) {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        // Rotated files first, oldest first, then the live one.
        files.sort_by_key(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            match parse_rotated(&n) {
                Some((_, ts, _)) => (0, ts.to_string()),
                None => (1, n),
            }
        });
        let mut out = Vec::new();
        for f in &files {
            out.extend(
                std::fs::read_to_string(f)
                    .unwrap()
                    .lines()
                    .map(String::from),
            );
        }
        (out, files.len())
    }

    #[test]
    fn rotates_by_size_without_losing_or_splitting_a_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        let mut f = RotatingFile::open(&path, Rotation::new(100, Duration::ZERO)).unwrap();
        for i in 0..50 {
            f.write_line(format!("{{\"n\":{i:04}}}").as_bytes())
                .unwrap();
        }
        f.flush().unwrap();
        // 11-byte lines, 100-byte files: 9 lines each.
        assert_eq!(f.rotations(), 5);
        let (lines, files) = lines_in(dir.path());
        assert_eq!(files, 6);
        let want: Vec<String> = (0..50).map(|i| format!("{{\"n\":{i:04}}}")).collect();
        assert_eq!(lines, want);
        for e in std::fs::read_dir(dir.path()).unwrap() {
            assert!(e.unwrap().metadata().unwrap().len() <= 100);
        }
    }

    #[test]
    fn rotates_by_age_and_a_reopened_file_keeps_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jsonl");
        let age = Rotation::new(0, Duration::from_millis(30));
        let mut f = RotatingFile::open(&path, age).unwrap();
        f.write_line(b"1").unwrap();
        f.write_line(b"2").unwrap();
        assert_eq!(f.rotations(), 0);
        std::thread::sleep(Duration::from_millis(40));
        f.write_line(b"3").unwrap();
        assert_eq!(f.rotations(), 1);
        drop(f);
        let f = RotatingFile::open(&path, Rotation::NEVER).unwrap();
        assert_eq!(f.len(), 2);
        drop(f);
        let (lines, files) = lines_in(dir.path());
        assert_eq!(
            (lines, files),
            (vec!["1".into(), "2".into(), "3".into()], 2)
        );
    }

    #[test]
    fn a_line_cut_short_is_closed_before_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cut.jsonl");
        std::fs::write(&path, b"{\"n\":1}\n{\"n\":").unwrap();
        let mut f = RotatingFile::open(&path, Rotation::NEVER).unwrap();
        f.write_line(b"{\"n\":3}").unwrap();
        drop(f);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "{\"n\":1}\n{\"n\":\n{\"n\":3}\n");
    }

    #[test]
    fn rotations_in_one_millisecond_get_distinct_names() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.jsonl");
        let mut f = RotatingFile::open(&path, Rotation::new(2, Duration::ZERO)).unwrap();
        for i in 0..20 {
            f.write_line(format!("{}", i % 10).as_bytes()).unwrap();
        }
        f.flush().unwrap();
        let (lines, files) = lines_in(dir.path());
        assert_eq!(files, 20);
        assert_eq!(lines.len(), 20);
    }

    #[test]
    fn rotated_names_round_trip() {
        let at = DateTime::parse_from_rfc3339("2026-12-06T22:10:00.123Z")
            .unwrap()
            .with_timezone(&Utc);
        let p = rotated_name(Path::new("data/events.jsonl"), at);
        assert_eq!(p, Path::new("data/events.20261206T221000123Z.jsonl"));
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(
            parse_rotated(&name),
            Some(("events", "20261206T221000123Z", false))
        );
        assert_eq!(
            parse_rotated(&format!("{name}.gz")),
            Some(("events", "20261206T221000123Z", true))
        );
        for live in [
            "events.jsonl",
            "a.b.jsonl",
            "x.2026.jsonl",
            ".20261206T221000123Z.jsonl",
        ] {
            assert_eq!(parse_rotated(live), None, "{live}");
        }
        // A stem with dots keeps them.
        let p = rotated_name(Path::new("my.site.jsonl"), at);
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(
            parse_rotated(&name),
            Some(("my.site", "20261206T221000123Z", false))
        );
    }
}
