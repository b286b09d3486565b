//! Cameras changed at run time: the engine side of a camera change.
//!
//! The server decides what the running camera list is (the config file's `[[cameras]]`
//! with the API's changes over them) and hands the whole list to the engine's
//! [`CameraControl`], which makes the running pipelines match it.

use lookout_config::cameras::CameraConfig;
use serde::Serialize;

/// What [`CameraControl::apply`] did, by camera id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CameraApply {
    /// Cameras that were not running and now are (added or enabled).
    pub started: Vec<String>,
    /// Cameras that were running and now are not (removed or disabled).
    pub stopped: Vec<String>,
    /// Running cameras whose settings changed: stopped and started again.
    pub restarted: Vec<String>,
}

impl CameraApply {
    /// What going from the cameras `old` to `new` does (whole lists; only enabled entries
    /// run): enabled in `new` and not running in `old` → started; running in `old` and gone
    /// or disabled in `new` → stopped; running in both with any setting changed →
    /// restarted. Ids in list order. The one comparison behind every camera change (the
    /// single process, the hub's answer, an edge's restart).
    pub fn between(old: &[CameraConfig], new: &[CameraConfig]) -> CameraApply {
        let running = |list: &[CameraConfig], id: &str| {
            list.iter()
                .find(|c| c.id == id && c.enabled)
                .map(|c| serde_json::to_value(c).ok())
        };
        let mut a = CameraApply::default();
        for c in old.iter().filter(|c| c.enabled) {
            if running(new, &c.id).is_none() {
                a.stopped.push(c.id.clone());
            }
        }
        for c in new.iter().filter(|c| c.enabled) {
            match running(old, &c.id) {
                None => a.started.push(c.id.clone()),
                Some(before) if before != serde_json::to_value(c).ok() => {
                    a.restarted.push(c.id.clone())
                }
                Some(_) => {}
            }
        }
        a
    }

    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.started.is_empty() && self.stopped.is_empty() && self.restarted.is_empty()
    }
}

/// The engine's running cameras.
pub trait CameraControl: Send + Sync + 'static {
    /// Makes the running cameras match `cameras` (the whole list, disabled ones included):
    /// starts the enabled ones that are not running, stops the running ones that are gone
    /// or disabled, restarts those whose settings changed, and leaves the others alone
    /// (their pipelines are not touched). `cameras` has been validated as a config file's
    /// would be. Called on a blocking thread; an error names the camera.
    fn apply(&self, cameras: &[CameraConfig]) -> Result<CameraApply, String>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cams(toml: &str) -> Vec<CameraConfig> {
        lookout_config::parse(toml, "t.toml", std::path::Path::new("."))
            .expect("config")
            .cameras
    }

    #[test]
    fn between_names_started_stopped_restarted_and_leaves_the_rest() {
        let old = cams(
            r#"
[[cameras]]
id = "same"
source = { kind = "test" }
[[cameras]]
id = "edited"
source = { kind = "test" }
fps = 2
[[cameras]]
id = "disabled-now"
source = { kind = "test" }
[[cameras]]
id = "removed"
source = { kind = "test" }
[[cameras]]
id = "enabled-now"
enabled = false
source = { kind = "test" }
"#,
        );
        let new = cams(
            r#"
[[cameras]]
id = "same"
source = { kind = "test" }
[[cameras]]
id = "edited"
source = { kind = "test" }
fps = 1
[[cameras]]
id = "disabled-now"
enabled = false
source = { kind = "test" }
[[cameras]]
id = "enabled-now"
source = { kind = "test" }
[[cameras]]
id = "added"
source = { kind = "test" }
"#,
        );
        let a = CameraApply::between(&old, &new);
        assert_eq!(a.started, vec!["enabled-now", "added"]);
        assert_eq!(a.stopped, vec!["disabled-now", "removed"]);
        assert_eq!(a.restarted, vec!["edited"]);
        assert!(CameraApply::between(&new, &new).is_empty());
    }
}
