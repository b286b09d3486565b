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

/// The engine's running cameras.
pub trait CameraControl: Send + Sync + 'static {
    /// Makes the running cameras match `cameras` (the whole list, disabled ones included):
    /// starts the enabled ones that are not running, stops the running ones that are gone
    /// or disabled, restarts those whose settings changed, and leaves the others alone
    /// (their pipelines are not touched). `cameras` has been validated as a config file's
    /// would be. Called on a blocking thread; an error names the camera.
    fn apply(&self, cameras: &[CameraConfig]) -> Result<CameraApply, String>;
}
