//! Cameras changed through the API, kept over the TOML file's `[[cameras]]` the way
//! [`crate::overlay`] keeps `[rules]` changes: a versioned record whose latest version
//! alone says what runs.
//!
//! A record ([`CamerasOverlay`]) holds
//! * `added`: the cameras the API added, whole `[[cameras]]` entries as written (JSON),
//!   in the order they were added; they run after the file's cameras;
//! * `edits`: per file camera id, a JSON merge patch (RFC 7386) over that camera as the
//!   file has it (`enabled = false` is how a file camera is disabled: it cannot be
//!   removed).
//!
//! The running list is the file's cameras, each with its patch, then the added ones
//! ([`running`]); it is validated by the same checks as a config file
//! ([`crate::validate_loaded`]) with the same key paths (`cameras[3].source.url`). A record
//! that no longer validates over an edited file is not applied: the file's cameras run
//! and the errors are reported ([`resolve`]).
//!
//! Everything here is pure: the store, logging and applying live with the caller.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::cameras::{CameraConfig, SourceConfig};
use crate::overlay::{self, Change, Conflict, FieldError};
use crate::Config;

/// The `format` of a cameras record body.
pub const FORMAT: &str = "cameras/1";

/// The body of a cameras record: every API change still in force, and the one this
/// version made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CamerasOverlay {
    /// [`FORMAT`].
    pub format: String,
    /// Cameras the API added: whole `[[cameras]]` entries (JSON), in order.
    #[serde(default)]
    pub added: Vec<Value>,
    /// File camera id → merge patch over that camera.
    #[serde(default)]
    pub edits: BTreeMap<String, Value>,
    /// File camera id → that camera as the file had it when its patch was made (JSON,
    /// passwords redacted): a later file edit under a key the patch sets is a conflict.
    #[serde(default)]
    pub base: BTreeMap<String, Value>,
    /// What the operator asked for in this version (`{"action": "add", "camera": ...}`).
    #[serde(default)]
    pub change: Value,
}

impl Default for CamerasOverlay {
    fn default() -> Self {
        CamerasOverlay {
            format: FORMAT.into(),
            added: Vec::new(),
            edits: BTreeMap::new(),
            base: BTreeMap::new(),
            change: Value::Null,
        }
    }
}

/// Where a running camera comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// A `[[cameras]]` entry of the config file (perhaps edited through the API).
    File,
    /// Added through the API.
    Api,
}

/// Why a change cannot be made (before validation).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EditError {
    /// No camera with this id runs.
    #[error("no camera {0:?}")]
    NotFound(String),
    /// The camera comes from the config file: it can be disabled, not removed.
    #[error("camera {0:?} is in the config file: it can be disabled (enabled = false), not removed; remove it from the file")]
    FileCamera(String),
    /// The request itself is wrong: `(path, message)`.
    #[error("invalid change")]
    Invalid(Vec<(String, String)>),
}

/// A camera as JSON, its strings as written in the file (`${NAME}` references kept, a
/// literal password kept, unset options left out: this is what a patch applies to, never what is shown; show
/// [`redacted`] values).
pub fn camera_json(c: &CameraConfig) -> Value {
    let mut v = serde_json::to_value(c).unwrap_or(Value::Null);
    if let Some(src) = v.get_mut("source").and_then(Value::as_object_mut) {
        match &c.source {
            SourceConfig::Rtsp { url, .. }
            | SourceConfig::Rtmp { url }
            | SourceConfig::Srt { url } => {
                src.insert("url".into(), Value::String(url.template().to_string()));
            }
            SourceConfig::File { path, .. } => {
                src.insert("path".into(), Value::String(path.template().to_string()));
            }
            SourceConfig::UdpTs { .. } | SourceConfig::Test { .. } => {}
        }
    }
    strip_nulls(&mut v);
    v
}

/// Drops keys whose value is null (unset options): in a merge patch null means "delete",
/// so a camera's JSON holds only the keys that are set.
fn strip_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(strip_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

/// `v` with the password of every URL in it shown as `***` (what the audit trail and
/// `lookout config diff` show).
pub fn redacted(v: &Value) -> Value {
    match v {
        Value::String(s) => Value::String(crate::env::redact_url_userinfo(s)),
        Value::Array(a) => Value::Array(a.iter().map(redacted).collect()),
        Value::Object(m) => {
            Value::Object(m.iter().map(|(k, x)| (k.clone(), redacted(x))).collect())
        }
        _ => v.clone(),
    }
}

/// The `id` of a camera entry (JSON), if it is a string.
pub fn entry_id(v: &Value) -> Option<&str> {
    v.get("id").and_then(Value::as_str)
}

impl CamerasOverlay {
    /// Reads a stored body.
    pub fn from_body(body: &Value) -> Result<CamerasOverlay, String> {
        let o: CamerasOverlay = serde_json::from_value(body.clone())
            .map_err(|e| format!("unreadable cameras record: {e}"))?;
        if o.format != FORMAT {
            return Err(format!(
                "cameras record format {:?} is not supported (this build reads {FORMAT:?})",
                o.format
            ));
        }
        Ok(o)
    }

    /// Where camera `id` comes from (None: neither in the file nor added).
    pub fn origin(&self, file: &[CameraConfig], id: &str) -> Option<Origin> {
        if file.iter().any(|c| c.id == id) {
            Some(Origin::File)
        } else if self.added.iter().any(|a| entry_id(a) == Some(id)) {
            Some(Origin::Api)
        } else {
            None
        }
    }

    /// This record plus a camera added (a whole `[[cameras]]` entry as JSON).
    pub fn add(&self, camera: Value, change: Value) -> Result<CamerasOverlay, EditError> {
        if !camera.is_object() {
            return Err(EditError::Invalid(vec![(
                "camera".into(),
                "a [[cameras]] entry as a JSON object".into(),
            )]));
        }
        masked_password("camera", &camera)?;
        let mut o = self.clone();
        o.added.push(camera);
        o.change = change;
        Ok(o)
    }

    /// This record plus a merge patch of camera `id` (an added camera's entry is patched;
    /// a file camera's patch is kept relative to the file's camera). The id cannot change.
    pub fn edit(
        &self,
        file: &[CameraConfig],
        id: &str,
        patch: &Value,
        change: Value,
    ) -> Result<CamerasOverlay, EditError> {
        if !patch.is_object() {
            return Err(EditError::Invalid(vec![(
                "patch".into(),
                "a JSON object (merge patch of the camera's [[cameras]] entry)".into(),
            )]));
        }
        if let Some(new_id) = patch.get("id") {
            if new_id.as_str() != Some(id) {
                return Err(EditError::Invalid(vec![(
                    "patch.id".into(),
                    "a camera's id cannot change (its events, zones and incidents are keyed by it): add a new camera instead".into(),
                )]));
            }
        }
        masked_password("patch", patch)?;
        let mut o = self.clone();
        o.change = change;
        if let Some(a) = o.added.iter_mut().find(|a| entry_id(a) == Some(id)) {
            *a = patch_camera(a, patch);
            return Ok(o);
        }
        let Some(fc) = file.iter().find(|c| c.id == id) else {
            return Err(EditError::NotFound(id.into()));
        };
        let base = camera_json(fc);
        let current = match o.edits.get(id) {
            Some(p) => overlay::patched(&base, p),
            None => base.clone(),
        };
        let new = patch_camera(&current, patch);
        let d = overlay::diff(&base, &new);
        if d.as_object().is_some_and(Map::is_empty) {
            o.edits.remove(id);
            o.base.remove(id);
        } else {
            o.edits.insert(id.into(), d);
            o.base.insert(id.into(), redacted(&base));
        }
        Ok(o)
    }

    /// This record without the added camera `id` (a file camera cannot be removed).
    pub fn remove(
        &self,
        file: &[CameraConfig],
        id: &str,
        change: Value,
    ) -> Result<CamerasOverlay, EditError> {
        match self.origin(file, id) {
            None => Err(EditError::NotFound(id.into())),
            Some(Origin::File) => Err(EditError::FileCamera(id.into())),
            Some(Origin::Api) => {
                let mut o = self.clone();
                o.added.retain(|a| entry_id(a) != Some(id));
                o.change = change;
                Ok(o)
            }
        }
    }
}

/// A camera entry with a merge patch applied; a patch that changes `source.kind` replaces
/// the source table (the keys of the old kind do not belong to the new one).
fn patch_camera(entry: &Value, patch: &Value) -> Value {
    let mut new = overlay::patched(entry, patch);
    let kind = |v: &Value| v.get("source").and_then(|s| s.get("kind")).cloned();
    if let Some(k) = patch.get("source").and_then(|s| s.get("kind")) {
        if kind(entry).as_ref() != Some(k) {
            if let (Some(obj), Some(src)) = (new.as_object_mut(), patch.get("source")) {
                obj.insert(
                    "source".into(),
                    overlay::patched(&Value::Object(Map::new()), src),
                );
            }
        }
    }
    new
}

/// Refuses a source URL whose password is the `***` every view shows in its place (a
/// form sent back unchanged would store it as the password).
fn masked_password(prefix: &str, entry: &Value) -> Result<(), EditError> {
    let url = entry
        .get("source")
        .and_then(|s| s.get("url"))
        .and_then(Value::as_str);
    match url {
        Some(u) if crate::env::redact_url_userinfo(u) == u && u.contains(":***@") => {
            Err(EditError::Invalid(vec![(
                format!("{prefix}.source.url"),
                "the password is shown as *** and cannot be sent back: type it again, or write it as ${NAME} (an environment variable)".into(),
            )]))
        }
        _ => Ok(()),
    }
}

fn json_error(prefix: &str, e: serde_path_to_error::Error<serde_json::Error>) -> (String, String) {
    let inner = e.path().to_string();
    let mut path = if inner == "." || inner.is_empty() {
        prefix.to_string()
    } else {
        format!("{prefix}.{inner}")
    };
    let msg = e.inner().to_string();
    // An unknown key points at the key itself, as in the file loader's errors.
    if let Some(name) = msg
        .strip_prefix("unknown field `")
        .and_then(|r| r.split('`').next())
    {
        if !path.ends_with(&format!(".{name}")) {
            path = format!("{path}.{name}");
        }
    }
    (path, msg)
}

/// The running camera list: the file's cameras (in file order) with their patches, then
/// the added ones, their path keys resolved against `base_dir` as the loader resolves the
/// file's. Errors are `(key path, message)`, paths as a config file's
/// (`cameras[3].source.url`); this does not validate values ([`validated`] does).
pub fn running(
    file: &[CameraConfig],
    ov: &CamerasOverlay,
    base_dir: &Path,
) -> Result<Vec<CameraConfig>, Vec<(String, String)>> {
    let mut errors = Vec::new();
    for id in ov.edits.keys() {
        if !file.iter().any(|c| &c.id == id) {
            errors.push((
                format!("cameras.{}", overlay::path_string(std::slice::from_ref(id))),
                format!("the API edited camera {id:?}, which is no longer in the config file"),
            ));
        }
    }
    let mut out = Vec::with_capacity(file.len() + ov.added.len());
    for (i, c) in file.iter().enumerate() {
        let Some(p) = ov.edits.get(&c.id) else {
            out.push(c.clone());
            continue;
        };
        let v = overlay::patched(&camera_json(c), p);
        match serde_path_to_error::deserialize::<_, CameraConfig>(v) {
            Ok(mut n) => {
                crate::resolve_camera_paths(base_dir, &mut n);
                out.push(n);
            }
            Err(e) => errors.push(json_error(&format!("cameras[{i}]"), e)),
        }
    }
    for (j, a) in ov.added.iter().enumerate() {
        let prefix = format!("cameras[{}]", file.len() + j);
        match serde_path_to_error::deserialize::<_, CameraConfig>(a.clone()) {
            Ok(mut n) => {
                crate::resolve_camera_paths(base_dir, &mut n);
                out.push(n);
            }
            Err(e) => errors.push(json_error(&prefix, e)),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// `ctx` (the running config) with `cameras` in place of its own, validated by the
/// config loader's checks ([`crate::validate_loaded`]): camera values, unique ids, known
/// models, and every section's references to cameras (a rule, zone or fusion setting that
/// names a camera that would be gone).
pub fn validated(
    cameras: Vec<CameraConfig>,
    ctx: &Config,
) -> Result<Config, Vec<(String, String)>> {
    let mut cfg = ctx.clone();
    cfg.cameras = cameras;
    let problems = crate::validate_loaded(&cfg);
    if problems.is_empty() {
        Ok(cfg)
    } else {
        Err(problems)
    }
}

/// What each camera change is, file → running: `cameras.ID` for a camera added (the
/// whole entry), `cameras.ID.KEY` for a file camera's edited keys. Values are
/// [`redacted`].
pub fn changes(file: &[CameraConfig], ov: &CamerasOverlay) -> Vec<Change> {
    let mut out = Vec::new();
    for c in file {
        let Some(p) = ov.edits.get(&c.id) else {
            continue;
        };
        let base = camera_json(c);
        for ch in overlay::changes(&base, &overlay::patched(&base, p)) {
            out.push(Change {
                path: format!(
                    "cameras.{}.{}",
                    overlay::path_string(std::slice::from_ref(&c.id)),
                    ch.path
                ),
                from: ch.from.as_ref().map(redacted),
                to: ch.to.as_ref().map(redacted),
            });
        }
    }
    for a in &ov.added {
        let id = entry_id(a).unwrap_or("?").to_string();
        out.push(Change {
            path: format!("cameras.{}", overlay::path_string(&[id])),
            from: None,
            to: Some(redacted(a)),
        });
    }
    out
}

/// Keys a file camera's patch sets that the file changed since the patch was made (the
/// patch's value runs), passwords redacted.
pub fn conflicts(file: &[CameraConfig], ov: &CamerasOverlay) -> Vec<Conflict> {
    let mut out = Vec::new();
    for c in file {
        let (Some(p), Some(base)) = (ov.edits.get(&c.id), ov.base.get(&c.id)) else {
            continue;
        };
        let now = redacted(&camera_json(c));
        let patched = redacted(&overlay::patched(&camera_json(c), p));
        for leaf in overlay::patch_leaves(p) {
            let was = overlay::get_path(base, &leaf);
            let is = overlay::get_path(&now, &leaf);
            if was != is {
                out.push(Conflict {
                    path: format!(
                        "cameras.{}.{}",
                        overlay::path_string(std::slice::from_ref(&c.id)),
                        overlay::path_string(&leaf)
                    ),
                    base: was.cloned(),
                    file: is.cloned(),
                    overlay: overlay::get_path(&patched, &leaf).cloned(),
                });
            }
        }
    }
    out
}

/// A record resolved over the file's cameras.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The cameras that run: the file's with the record, or the file's alone when it does
    /// not validate.
    pub cameras: Vec<CameraConfig>,
    /// Whether the record is in force.
    pub applied: bool,
    /// Why not.
    pub errors: Vec<FieldError>,
    /// What it changes (or would change) over the file.
    pub changes: Vec<Change>,
    /// Keys it sets that the file changed since (its value runs).
    pub conflicts: Vec<Conflict>,
}

/// Resolves `ov` over the file's cameras `file`, validated in the context of `ctx` (the
/// config whose other sections run).
pub fn resolve(file: &[CameraConfig], ov: &CamerasOverlay, ctx: &Config) -> Resolved {
    let changes = changes(file, ov);
    let conflicts = conflicts(file, ov);
    let result = running(file, ov, &ctx.base_dir).and_then(|cams| validated(cams, ctx));
    match result {
        Ok(cfg) => Resolved {
            cameras: cfg.cameras,
            applied: true,
            errors: Vec::new(),
            changes,
            conflicts,
        },
        Err(es) => Resolved {
            cameras: file.to_vec(),
            applied: false,
            errors: es
                .into_iter()
                .map(|(path, message)| FieldError { path, message })
                .collect(),
            changes,
            conflicts,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CFG: &str = r#"
[models.firesmoke]
manifest = "m.toml"
[[cameras]]
id = "tower1"
source = { kind = "rtsp", url = "rtsp://op:secret@10.0.0.5/s1" }
[[cameras]]
id = "tower2"
source = { kind = "file", path = "b.mp4" }
[rules.cameras.tower2]
zones = [{ name = "yard", polygon = [[0.1, 0.1], [0.5, 0.1], [0.5, 0.5]] }]
"#;

    fn cfg(src: &str) -> Config {
        crate::parse(src, "t.toml", Path::new("/site")).unwrap()
    }

    fn resolve_ok(c: &Config, ov: &CamerasOverlay) -> Vec<CameraConfig> {
        let r = resolve(&c.cameras, ov, c);
        assert!(r.applied, "{:?}", r.errors);
        r.cameras
    }

    #[test]
    fn add_edit_disable_and_remove() {
        let c = cfg(CFG);
        let ov = CamerasOverlay::default()
            .add(
                json!({"id": "drone1", "source": {"kind": "file", "path": "d.mp4"}, "models": ["firesmoke"]}),
                json!({"action": "add"}),
            )
            .unwrap();
        let cams = resolve_ok(&c, &ov);
        assert_eq!(cams.len(), 3);
        assert_eq!(cams[2].id, "drone1");
        // Relative paths resolve against the config file's directory, as the file's do.
        match &cams[2].source {
            SourceConfig::File { path, .. } => assert_eq!(path.value(), "/site/d.mp4"),
            other => panic!("{other:?}"),
        }
        assert_eq!(ov.origin(&c.cameras, "drone1"), Some(Origin::Api));
        assert_eq!(ov.origin(&c.cameras, "tower1"), Some(Origin::File));

        // A file camera disabled and its fps changed: one patch, relative to the file.
        let ov = ov
            .edit(
                &c.cameras,
                "tower1",
                &json!({"enabled": false}),
                Value::Null,
            )
            .unwrap()
            .edit(&c.cameras, "tower1", &json!({"fps": 0.5}), Value::Null)
            .unwrap();
        assert_eq!(ov.edits["tower1"], json!({"enabled": false, "fps": 0.5}));
        let cams = resolve_ok(&c, &ov);
        assert!(!cams[0].enabled);
        assert_eq!(cams[0].fps, Some(0.5));
        // The file camera's password is kept (the patch does not touch the url).
        match &cams[0].source {
            SourceConfig::Rtsp { url, .. } => {
                assert_eq!(url.value(), "rtsp://op:secret@10.0.0.5/s1")
            }
            other => panic!("{other:?}"),
        }
        // Back to the file's values: no patch left.
        let back = ov
            .edit(
                &c.cameras,
                "tower1",
                &json!({"enabled": true, "fps": null}),
                Value::Null,
            )
            .unwrap();
        assert!(!back.edits.contains_key("tower1"));

        // Changes name each key; passwords never show.
        let ch = changes(&c.cameras, &ov);
        let paths: Vec<&str> = ch.iter().map(|c| c.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "cameras.tower1.enabled",
                "cameras.tower1.fps",
                "cameras.drone1"
            ]
        );
        let url_ov = ov
            .edit(
                &c.cameras,
                "tower1",
                &json!({"source": {"url": "rtsp://op:newpass@10.0.0.6/s1"}}),
                Value::Null,
            )
            .unwrap();
        let shown = serde_json::to_string(&changes(&c.cameras, &url_ov)).unwrap();
        assert!(
            !shown.contains("secret") && !shown.contains("newpass"),
            "{shown}"
        );
        assert!(shown.contains("op:***@10.0.0.6"), "{shown}");

        // Removing: an added camera goes, a file camera cannot.
        assert_eq!(
            ov.remove(&c.cameras, "tower2", Value::Null),
            Err(EditError::FileCamera("tower2".into()))
        );
        assert_eq!(
            ov.remove(&c.cameras, "ghost", Value::Null),
            Err(EditError::NotFound("ghost".into()))
        );
        let gone = ov.remove(&c.cameras, "drone1", Value::Null).unwrap();
        assert_eq!(resolve_ok(&c, &gone).len(), 2);
        // A new source kind replaces the source table (rtsp's transport is not a file's).
        let to_file = ov
            .edit(
                &c.cameras,
                "tower1",
                &json!({"source": {"kind": "file", "path": "t1.mp4"}}),
                Value::Null,
            )
            .unwrap();
        let cams = resolve_ok(&c, &to_file);
        match &cams[0].source {
            SourceConfig::File { path, .. } => assert_eq!(path.value(), "/site/t1.mp4"),
            other => panic!("{other:?}"),
        }
        // A password shown as *** is not sent back as the password.
        assert!(matches!(
            ov.edit(
                &c.cameras,
                "tower1",
                &json!({"source": {"url": "rtsp://op:***@10.0.0.7/s1"}}),
                Value::Null
            ),
            Err(EditError::Invalid(f)) if f[0].0 == "patch.source.url"
        ));
        // The id cannot change.
        assert!(matches!(
            ov.edit(&c.cameras, "tower1", &json!({"id": "x"}), Value::Null),
            Err(EditError::Invalid(_))
        ));
    }

    #[test]
    fn validation_names_fields_as_the_file_loader_does() {
        let c = cfg(CFG);
        let errs = |cam: Value| {
            let ov = CamerasOverlay::default().add(cam, Value::Null).unwrap();
            let r = resolve(&c.cameras, &ov, &c);
            assert!(!r.applied);
            assert_eq!(r.cameras.len(), 2, "the file's cameras run");
            r.errors
        };
        let e = errs(json!({"id": "d", "source": {"kind": "rtsp", "url": "http://x/y"}}));
        assert_eq!(e[0].path, "cameras[2].source.url", "{e:?}");
        let e = errs(json!({"id": "tower2", "source": {"kind": "test"}}));
        assert_eq!(e[0].path, "cameras[2].id", "{e:?}");
        assert!(e[0].message.contains("already used by cameras[1]"), "{e:?}");
        let e = errs(json!({"id": "d", "source": {"kind": "test"}, "models": ["person"]}));
        assert_eq!(e[0].path, "cameras[2].models[0]", "{e:?}");
        let e = errs(json!({"id": "d", "source": {"kind": "test"}, "fps": "fast"}));
        assert_eq!(e[0].path, "cameras[2].fps", "{e:?}");
        let e = errs(
            json!({"id": "d", "source": {"kind": "test"}, "geo": {"lat": 95, "lon": 0, "hfov_deg": 60}}),
        );
        assert_eq!(e[0].path, "cameras[2].geo.lat", "{e:?}");
    }

    #[test]
    fn a_record_that_no_longer_validates_over_the_file_is_not_applied() {
        let c = cfg(CFG);
        let ov = CamerasOverlay::default()
            .edit(&c.cameras, "tower2", &json!({"fps": 1.0}), Value::Null)
            .unwrap()
            .add(
                json!({"id": "cam9", "source": {"kind": "test"}}),
                Value::Null,
            )
            .unwrap();
        // The file drops tower2 (and its rules) and adds its own cam9.
        let edited = cfg(&CFG
            .replace(
                "[[cameras]]\nid = \"tower2\"\nsource = { kind = \"file\", path = \"b.mp4\" }\n",
                "[[cameras]]\nid = \"cam9\"\nsource = { kind = \"test\" }\n",
            )
            .replace("[rules.cameras.tower2]\nzones = [{ name = \"yard\", polygon = [[0.1, 0.1], [0.5, 0.1], [0.5, 0.5]] }]\n", ""));
        let r = resolve(&edited.cameras, &ov, &edited);
        assert!(!r.applied);
        let paths: Vec<&str> = r.errors.iter().map(|e| e.path.as_str()).collect();
        assert!(paths.contains(&"cameras.tower2"), "{paths:?}");
        assert_eq!(r.cameras.len(), 2);
    }

    #[test]
    fn a_key_the_file_changed_since_is_a_conflict_the_patch_wins() {
        let c = cfg(CFG);
        let ov = CamerasOverlay::default()
            .edit(&c.cameras, "tower2", &json!({"fps": 1.0}), Value::Null)
            .unwrap();
        assert!(conflicts(&c.cameras, &ov).is_empty());
        let edited = cfg(&CFG.replace(
            "path = \"b.mp4\" }",
            "path = \"b.mp4\" }\nfps = 3\nname = \"Two\"",
        ));
        let r = resolve(&edited.cameras, &ov, &edited);
        assert!(r.applied, "{:?}", r.errors);
        assert_eq!(r.cameras[1].fps, Some(1.0));
        assert_eq!(r.cameras[1].name.as_deref(), Some("Two"));
        assert_eq!(r.conflicts.len(), 1, "{:?}", r.conflicts);
        let k = &r.conflicts[0];
        assert_eq!(k.path, "cameras.tower2.fps");
        assert_eq!(
            (k.base.clone(), k.file.clone(), k.overlay.clone()),
            (None, Some(json!(3.0)), Some(json!(1.0)))
        );
    }

    #[test]
    fn removing_a_camera_the_rules_name_is_refused() {
        // The rules name an API camera (a zone drawn on it): removing it would break them.
        let c = cfg(CFG);
        let ov = CamerasOverlay::default()
            .add(
                json!({"id": "cam9", "source": {"kind": "test"}}),
                Value::Null,
            )
            .unwrap();
        let mut ctx = c.clone();
        ctx.cameras = resolve_ok(&c, &ov);
        ctx.rules
            .cameras
            .insert("cam9".into(), ctx.rules.cameras["tower2"].clone());
        let gone = ov.remove(&c.cameras, "cam9", Value::Null).unwrap();
        let r = resolve(&c.cameras, &gone, &ctx);
        assert!(!r.applied);
        assert!(
            r.errors.iter().any(|e| e.path.starts_with("rules.cameras")),
            "{:?}",
            r.errors
        );
    }
}
