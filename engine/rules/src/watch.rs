//! Hot reload: watch the config file and hand over each new `[rules]` section.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use lookout_config::rules::RulesConfig;

use crate::RulesError;

/// How often the file's metadata is polled.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// A running watcher; stops (and joins its thread) when dropped.
#[derive(Debug)]
pub struct ConfigWatcher {
    /// Raised to stop the thread.
    stop: Arc<AtomicBool>,
    /// The polling thread.
    thread: Option<JoinHandle<()>>,
}

impl Drop for ConfigWatcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What identifies a version of the file without reading it.
fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// Watches `path` (polling its modification time and size every [`POLL_INTERVAL`], so a
/// change is seen well within a second, on any file system) and, on each change, re-reads
/// the whole file with `lookout_config::load` and calls `on_change` with its `[rules]`
/// section, or with the located errors as text. Unchanged `[rules]` sections are not
/// reported. The callback runs on the watcher's thread: send the config to the rules
/// thread, which calls [`crate::RulesEngine::apply_config`].
pub fn watch_config_file(
    path: impl Into<PathBuf>,
    on_change: impl Fn(Result<RulesConfig, String>) + Send + 'static,
) -> Result<ConfigWatcher, RulesError> {
    let path = path.into();
    let initial = stamp(&path).ok_or_else(|| RulesError::Io {
        path: path.clone(),
        source: std::io::Error::new(std::io::ErrorKind::NotFound, "cannot stat the config file"),
    })?;
    let mut current: Option<RulesConfig> = lookout_config::load(&path).ok().map(|c| c.rules);
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let thread = std::thread::Builder::new()
        .name("rules-config-watch".into())
        .spawn(move || {
            let mut last = Some(initial);
            while !stop2.load(Ordering::Relaxed) {
                std::thread::sleep(POLL_INTERVAL);
                let now = stamp(&path);
                if now == last || now.is_none() {
                    continue;
                }
                last = now;
                match lookout_config::load(&path) {
                    Ok(cfg) => {
                        if current.as_ref() != Some(&cfg.rules) {
                            current = Some(cfg.rules.clone());
                            tracing::info!(path = %path.display(), "Rules configuration changed; reloading.");
                            on_change(Ok(cfg.rules));
                        }
                    }
                    Err(e) => {
                        tracing::warn!(path = %path.display(), "Changed configuration is invalid; keeping the running rules.");
                        on_change(Err(e.to_string()));
                    }
                }
            }
        })
        .map_err(|source| RulesError::Io {
            path: PathBuf::from("<thread>"),
            source,
        })?;
    Ok(ConfigWatcher {
        stop,
        thread: Some(thread),
    })
}
