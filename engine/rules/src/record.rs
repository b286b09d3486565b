//! Recording the rules stage's input and replaying it.
//!
//! A recording is JSONL: one [`StageMsg`] per line, exactly as serde writes it. Replaying a
//! recording through [`replay`] with the same config reproduces the live events, because
//! the engine has no clock of its own.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use lookout_config::rules::RulesConfig;
use lookout_core::{Event, StageMsg};
use lookout_jsonl::{RotatingFile, Rotation};

use crate::{RulesEngine, RulesError};

/// Appends [`StageMsg`]s to a JSONL file, rotated by size and age when asked.
#[derive(Debug)]
pub struct Recorder {
    /// The file.
    out: RotatingFile,
    /// Scratch line buffer, reused.
    line: Vec<u8>,
    /// Messages written.
    written: u64,
}

impl Recorder {
    /// Opens (creating parent directories) `path` for appending, never rotated.
    pub fn open(path: &Path) -> Result<Recorder, RulesError> {
        Recorder::open_rotating(path, Rotation::NEVER)
    }

    /// Opens (creating parent directories) `path` for appending, rotated by `rotation`.
    pub fn open_rotating(path: &Path, rotation: Rotation) -> Result<Recorder, RulesError> {
        let out = RotatingFile::open(path, rotation).map_err(|source| RulesError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Recorder {
            out,
            line: Vec::with_capacity(4096),
            written: 0,
        })
    }

    /// The file `[rules.record]` asks for: `None` when recording is off; the path is
    /// resolved against `data_dir` when relative.
    pub fn path_from_config(
        cfg: &lookout_config::rules::RecordConfig,
        data_dir: &Path,
    ) -> Option<std::path::PathBuf> {
        if !cfg.enabled {
            return None;
        }
        let p = Path::new(&cfg.path);
        Some(if p.is_absolute() {
            p.to_path_buf()
        } else {
            data_dir.join(p)
        })
    }

    fn io(&self, source: std::io::Error) -> RulesError {
        RulesError::Io {
            path: self.out.path().to_path_buf(),
            source,
        }
    }

    /// Appends one message (buffered; see [`Recorder::flush`]).
    pub fn record(&mut self, msg: &StageMsg) -> Result<(), RulesError> {
        self.line.clear();
        serde_json::to_writer(&mut self.line, msg)
            .map_err(|e| self.io(std::io::Error::other(e)))?;
        self.out.write_line(&self.line).map_err(|e| self.io(e))?;
        self.written += 1;
        Ok(())
    }

    /// Writes buffered messages to the file.
    pub fn flush(&mut self) -> Result<(), RulesError> {
        self.out.flush().map_err(|e| self.io(e))
    }

    /// Messages recorded by this recorder.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Rotations of the file since open.
    pub fn rotations(&self) -> u64 {
        self.out.rotations()
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

/// What temporal verification (`[rules.verify]`) did in a replay, per camera and class:
/// tracks whose tube was verified, and tracks that passed the thresholds but were held
/// back, by the reason of their last verdict.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TubeSummary {
    /// Tracks verified at least once.
    pub verified: u64,
    /// Tracks active (past thresholds and persistence) but never verified, by reason.
    pub held_back: std::collections::BTreeMap<String, u64>,
}

/// Like [`replay`], and what temporal verification did: (camera, class) → summary.
pub fn replay_explained(
    recorded: impl IntoIterator<Item = StageMsg>,
    cfg: &RulesConfig,
) -> (
    Vec<Event>,
    std::collections::BTreeMap<(String, String), TubeSummary>,
) {
    use std::collections::HashMap;
    let mut engine = RulesEngine::new(cfg);
    let mut out = Vec::new();
    // (camera, track) → (class, ever verified, last reason while active)
    let mut tracks: HashMap<(String, u64), (String, bool, Option<&'static str>)> = HashMap::new();
    let watch = !cfg.verify.classes.is_empty();
    for m in recorded {
        engine.handle(&m, &mut out);
        if !watch {
            continue;
        }
        for t in engine.tubes() {
            let e = tracks
                .entry((t.camera.to_string(), t.track))
                .or_insert_with(|| (t.class.to_string(), false, None));
            if t.verdict.verified() {
                e.1 = true;
            } else if t.active {
                e.2 = Some(t.verdict.reason.as_str());
            }
        }
    }
    let mut sum: std::collections::BTreeMap<(String, String), TubeSummary> = Default::default();
    for ((camera, _), (class, verified, reason)) in tracks {
        let s = sum.entry((camera, class)).or_default();
        if verified {
            s.verified += 1;
        } else if let Some(r) = reason {
            *s.held_back.entry(r.to_string()).or_default() += 1;
        }
    }
    (out, sum)
}

/// Runs recorded messages through a fresh engine with `cfg`: the events the live path
/// produced from the same messages and config, in the same order. Pure: no I/O, no clock.
pub fn replay(recorded: impl IntoIterator<Item = StageMsg>, cfg: &RulesConfig) -> Vec<Event> {
    replay_explained(recorded, cfg).0
}
