//! Recording the rules stage's input and replaying it.
//!
//! A recording is JSONL: one [`StageMsg`] per line, exactly as serde writes it. Replaying a
//! recording through [`replay`] with the same config reproduces the live events, because
//! the engine has no clock of its own.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use lookout_config::rules::RulesConfig;
use lookout_core::{Event, StageMsg};

use crate::{RulesEngine, RulesError};

/// Appends [`StageMsg`]s to a JSONL file.
#[derive(Debug)]
pub struct Recorder {
    /// The file.
    path: PathBuf,
    /// Buffered writer.
    out: BufWriter<File>,
    /// Scratch line buffer, reused.
    line: Vec<u8>,
    /// Messages written.
    written: u64,
}

impl Recorder {
    /// Opens (creating parent directories) `path` for appending.
    pub fn open(path: &Path) -> Result<Recorder, RulesError> {
        let io = |source| RulesError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io)?;
        Ok(Recorder {
            path: path.to_path_buf(),
            out: BufWriter::new(f),
            line: Vec::with_capacity(4096),
            written: 0,
        })
    }

    /// The recorder `[rules.record]` asks for: `None` when recording is off; the path is
    /// resolved against `data_dir` when relative.
    pub fn from_config(
        cfg: &lookout_config::rules::RecordConfig,
        data_dir: &Path,
    ) -> Result<Option<Recorder>, RulesError> {
        if !cfg.enabled {
            return Ok(None);
        }
        let p = Path::new(&cfg.path);
        let path = if p.is_absolute() {
            p.to_path_buf()
        } else {
            data_dir.join(p)
        };
        Recorder::open(&path).map(Some)
    }

    /// Appends one message (buffered; see [`Recorder::flush`]).
    pub fn record(&mut self, msg: &StageMsg) -> Result<(), RulesError> {
        self.line.clear();
        serde_json::to_writer(&mut self.line, msg).map_err(|e| RulesError::Io {
            path: self.path.clone(),
            source: std::io::Error::other(e),
        })?;
        self.line.push(b'\n');
        self.out
            .write_all(&self.line)
            .map_err(|source| RulesError::Io {
                path: self.path.clone(),
                source,
            })?;
        self.written += 1;
        Ok(())
    }

    /// Writes buffered messages to the file.
    pub fn flush(&mut self) -> Result<(), RulesError> {
        self.out.flush().map_err(|source| RulesError::Io {
            path: self.path.clone(),
            source,
        })
    }

    /// Messages recorded by this recorder.
    pub fn written(&self) -> u64 {
        self.written
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        if let Err(e) = self.out.flush() {
            tracing::warn!(path = %self.path.display(), error = %e, "Recording flush failed.");
        }
    }
}

/// Reads a whole recording. A bad line is an error naming the file and line.
pub fn read_recording(path: &Path) -> Result<Vec<StageMsg>, RulesError> {
    let f = File::open(path).map_err(|source| RulesError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut msgs = Vec::new();
    for (i, line) in BufReader::new(f).lines().enumerate() {
        let line = line.map_err(|source| RulesError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let msg = serde_json::from_str(&line).map_err(|e| RulesError::Parse {
            path: path.to_path_buf(),
            line: i + 1,
            message: e.to_string(),
        })?;
        msgs.push(msg);
    }
    Ok(msgs)
}

/// Runs recorded messages through a fresh engine with `cfg`: the events the live path
/// produced from the same messages and config, in the same order. Pure: no I/O, no clock.
pub fn replay(recorded: impl IntoIterator<Item = StageMsg>, cfg: &RulesConfig) -> Vec<Event> {
    let mut engine = RulesEngine::new(cfg);
    let mut out = Vec::new();
    for msg in recorded {
        engine.handle(&msg, &mut out);
    }
    out
}
