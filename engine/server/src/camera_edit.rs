//! Cameras added, edited and disabled through the API (`POST /api/cameras`,
//! `PATCH /api/cameras/{id}`, `DELETE /api/cameras/{id}`).
//!
//! The running cameras are the config file's `[[cameras]]` plus the latest cameras record
//! of the config audit trail (the `config_overlays` table, section [`SECTION`]; the record
//! is a [`CamerasOverlay`]: whole entries for the cameras the API added, a merge patch per
//! file camera it edited or disabled). Each change:
//!
//! 1. builds the new running list and validates it exactly as a config file is validated
//!    (`cameras[3].source.url: ...`), including every section that names a camera (a rule
//!    zone on a camera that would be removed): 422 with `fields` otherwise;
//! 2. stores the new record (author, time, comment, what changed);
//! 3. hands the whole running list to the engine's [`crate::cameras::CameraControl`] on a
//!    blocking thread and answers with its [`crate::cameras::CameraApply`]; without a control the change
//!    is stored and applies at the next start.
//!
//! At start [`ServerState::load_cameras`] applies the latest record over the file's cameras
//! (a record that no longer validates over an edited file is not applied; the error names
//! its version, as for the rules overlay). Zones are `[rules.cameras.ID] zones`: they
//! change through the rules API ([`crate::overlay`]).

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use lookout_alerts::store::{OverlayRecord, Store};
use lookout_alerts::{LiveUpdate, StoreError};
use lookout_config::camera_overlay::{self, CamerasOverlay, EditError, Origin};
use lookout_config::cameras::CameraConfig;
use lookout_config::overlay::{Change, Conflict, FieldError};
use lookout_config::server::Role;
use lookout_config::Config;
use lookout_core::UtcTime;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;

use crate::api::{authenticate, parse_body, ApiError, ApiResult, ErrorBody};
use crate::ServerState;

/// The store section camera changes are written under.
pub const SECTION: &str = "cameras";

/// The file's cameras and the record in force (one mutex in [`ServerState`]).
#[derive(Debug, Clone)]
pub struct CameraLayers {
    /// The config file's `[[cameras]]` as loaded.
    pub file: Vec<CameraConfig>,
    /// The latest record, read.
    pub overlay: CamerasOverlay,
    /// How it resolved (None: no record).
    pub status: Option<CamerasStatus>,
}

impl CameraLayers {
    /// The file's cameras, no record.
    pub fn new(file: Vec<CameraConfig>) -> CameraLayers {
        CameraLayers {
            file,
            overlay: CamerasOverlay::default(),
            status: None,
        }
    }
}

/// How the latest cameras record resolved over the file.
#[derive(Debug, Clone, Serialize)]
pub struct CamerasStatus {
    /// Record version.
    pub version: i64,
    /// Who made it.
    pub author: String,
    /// When.
    pub at: UtcTime,
    /// Why.
    pub comment: String,
    /// What the operator asked for in this version.
    pub change: Value,
    /// Whether it is in force (false: the file's cameras run, see `errors`).
    pub applied: bool,
    /// Why it is not in force.
    pub errors: Vec<FieldError>,
    /// What it changes over the file (`cameras.ID` added, `cameras.ID.KEY` edited),
    /// passwords redacted.
    pub changes: Vec<Change>,
    /// Keys it sets that the config file changed since (its value runs).
    pub conflicts: Vec<Conflict>,
}

/// The newest cameras record in the store.
pub fn latest(store: &Store) -> Result<Option<OverlayRecord>, StoreError> {
    store.latest_overlay(SECTION)
}

/// Resolves a stored record over the file's cameras in the context of `ctx` (the config
/// whose other sections run). Returns the cameras that run, the record read (empty when
/// unreadable) and the status to show.
pub fn resolve_record(
    file: &[CameraConfig],
    ctx: &Config,
    rec: &OverlayRecord,
) -> (Vec<CameraConfig>, CamerasOverlay, CamerasStatus) {
    let mut status = CamerasStatus {
        version: rec.version,
        author: rec.author.clone(),
        at: rec.at,
        comment: rec.comment.clone(),
        change: camera_overlay::redacted(rec.body.get("change").unwrap_or(&Value::Null)),
        applied: false,
        errors: Vec::new(),
        changes: Vec::new(),
        conflicts: Vec::new(),
    };
    match CamerasOverlay::from_body(&rec.body) {
        Err(message) => {
            status.errors.push(FieldError {
                path: "cameras".into(),
                message,
            });
            (file.to_vec(), CamerasOverlay::default(), status)
        }
        Ok(ov) => {
            let r = camera_overlay::resolve(file, &ov, ctx);
            status.applied = r.applied;
            status.errors = r.errors;
            status.changes = r.changes;
            status.conflicts = r.conflicts;
            (r.cameras, ov, status)
        }
    }
}

/// A stored body as the audit trail shows it (URL passwords redacted).
pub fn shown_body(body: &Value) -> Value {
    camera_overlay::redacted(body)
}

impl ServerState {
    fn camera_layers(&self) -> std::sync::MutexGuard<'_, CameraLayers> {
        self.camera_layers.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_running_cameras(&self, cameras: Vec<CameraConfig>) {
        self.config
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .cameras = cameras;
    }

    /// At start, before anything runs: applies the latest cameras record over the file's
    /// cameras (the running config's cameras become the result). A record that does not
    /// validate is not applied: the file's cameras run and the error, naming the record's
    /// version, is logged and shown by `/api/config` and `lookout config diff`.
    /// [`ServerState::load_overlay`] calls it first, so rules naming an API camera
    /// validate.
    pub fn load_cameras(&self) -> Result<Option<CamerasStatus>, StoreError> {
        let rec = latest(self.alerts.store())?;
        let mut l = self.camera_layers();
        let Some(rec) = rec else {
            l.overlay = CamerasOverlay::default();
            l.status = None;
            return Ok(None);
        };
        let ctx = self.config();
        let (cameras, ov, status) = resolve_record(&l.file, &ctx, &rec);
        if status.applied {
            tracing::info!(
                version = status.version,
                author = %status.author,
                changes = status.changes.len(),
                "Cameras record v{} applied over the config file's cameras (`lookout config diff` lists it).",
                status.version
            );
        } else {
            let errors: Vec<String> = status
                .errors
                .iter()
                .map(|e| format!("{}: {}", e.path, e.message))
                .collect();
            tracing::error!(
                version = status.version,
                errors = %errors.join("; "),
                "Cameras record v{} no longer applies over the config file; running the file's cameras. `lookout config diff` shows it.",
                status.version
            );
        }
        for c in &status.conflicts {
            tracing::warn!(
                version = status.version,
                key = %c.path,
                file = %lookout_config::overlay::show(c.file.as_ref()),
                overlay = %lookout_config::overlay::show(c.overlay.as_ref()),
                "The config file changed a camera key that cameras record v{} also sets; the record's value stays in force.",
                status.version
            );
        }
        self.set_running_cameras(cameras);
        l.overlay = ov;
        l.status = Some(status.clone());
        Ok(Some(status))
    }

    /// How the latest cameras record resolved (None: none, the file's cameras run).
    pub fn cameras_status(&self) -> Option<CamerasStatus> {
        self.camera_layers().status.clone()
    }

    /// Where camera `id` comes from and the API's patch of it (file cameras).
    pub fn camera_origin(&self, id: &str) -> (Option<Origin>, Option<Value>) {
        let l = self.camera_layers();
        (
            l.overlay.origin(&l.file, id),
            l.overlay.edits.get(id).map(camera_overlay::redacted),
        )
    }

    /// Validates, stores and applies one camera change: `edit` makes the new record from
    /// the one in force and the file's cameras. Returns the version and the running list.
    fn change_cameras(
        &self,
        author: &str,
        comment: &str,
        edit: impl FnOnce(&CamerasOverlay, &[CameraConfig]) -> Result<CamerasOverlay, EditError>,
    ) -> ApiResult<(i64, Vec<CameraConfig>)> {
        let mut l = self.camera_layers();
        let ctx = self.config();
        let ov = edit(&l.overlay, &l.file).map_err(edit_error)?;
        let cameras = camera_overlay::running(&l.file, &ov, &ctx.base_dir)
            .and_then(|c| camera_overlay::validated(c, &ctx))
            .map_err(ApiError::invalid)?
            .cameras;
        let body = serde_json::to_value(&ov).map_err(ApiError::internal)?;
        let at = chrono::Utc::now();
        let version = self
            .alerts
            .store()
            .add_overlay(SECTION, author, comment, &body, at)?;
        let rec = OverlayRecord {
            version,
            section: SECTION.into(),
            at,
            author: author.into(),
            comment: comment.into(),
            body,
        };
        let (_, ov, status) = resolve_record(&l.file, &ctx, &rec);
        l.overlay = ov;
        l.status = Some(status);
        self.set_running_cameras(cameras.clone());
        drop(l);
        self.alerts.publish(LiveUpdate::Config { version });
        tracing::info!(version, author = %author, "Cameras changed through the API (cameras record v{version}).");
        Ok((version, cameras))
    }
}

fn edit_error(e: EditError) -> ApiError {
    match e {
        EditError::NotFound(_) => ApiError::new(StatusCode::NOT_FOUND, "not_found", e.to_string()),
        EditError::FileCamera(_) => {
            ApiError::new(StatusCode::CONFLICT, "file_camera", e.to_string())
        }
        EditError::Invalid(fields) => ApiError::invalid(fields),
    }
}

fn comment_ok(c: &str) -> ApiResult<()> {
    if c.len() > 4000 {
        return Err(ApiError::invalid(vec![(
            "comment".into(),
            "at most 4000 bytes".into(),
        )]));
    }
    Ok(())
}

/// Hands the running list to the engine (on a blocking thread) and says what happened.
async fn apply(s: &ServerState, version: i64, cameras: Vec<CameraConfig>) -> Value {
    let Some(control) = s.cameras.clone() else {
        return json!({
            "applied": false,
            "message": "stored; this engine cannot change cameras while it runs: the change applies at the next start",
        });
    };
    let r = tokio::task::spawn_blocking(move || control.apply(&cameras)).await;
    match r {
        Ok(Ok(a)) => {
            json!({"applied": true, "started": a.started, "stopped": a.stopped, "restarted": a.restarted})
        }
        Ok(Err(e)) => {
            tracing::error!(version, error = %e, "The engine could not apply cameras record v{version}; it is stored and applies at the next start.");
            json!({"applied": false, "message": format!("stored, but the engine could not apply it now ({e}); it applies at the next start")})
        }
        Err(e) => {
            tracing::error!(version, error = %e, "Applying cameras record v{version} failed.");
            json!({"applied": false, "message": "stored, but applying it failed; it applies at the next start"})
        }
    }
}

/// What a camera change answers.
fn answer(version: i64, author: &str, id: &str, origin: Option<Origin>, live: Value) -> Value {
    json!({"version": version, "author": author, "camera": id, "origin": origin, "live": live})
}

/// `POST /api/cameras`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AddCameraBody {
    /// A whole `[[cameras]]` entry, as JSON (`{"id", "source": {"kind", ...}, "fps", "geo",
    /// "models", ...}`).
    #[schema(value_type = Object)]
    camera: Value,
    #[serde(default)]
    comment: String,
}

/// Adds a camera (admin): validated as a config file's `[[cameras]]` entry, stored in the
/// config audit trail, started.
#[utoipa::path(
    post,
    path = "/api/cameras",
    tag = "cameras",
    request_body(content = AddCameraBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The camera is added (admin): the cameras record's version, and what the engine did (`live`: started, or stored for the next start).", body = serde_json::Value, content_type = "application/json"),
        (status = 422, description = "The camera does not validate as a config file's would (see `fields`: `cameras[N].source.url`, ...).", body = ErrorBody),
        (status = 400, description = "The body is missing or not JSON.", body = ErrorBody),
        (status = 401, description = "No token, or an unknown one.", body = ErrorBody),
        (status = 403, description = "The user's role does not allow this.", body = ErrorBody),
        (status = 413, description = "The body is larger than `server.max_body_bytes`.", body = ErrorBody),
        (status = 429, description = "Too many wrong tokens from this address.", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub(crate) async fn add_camera(
    State(s): State<ServerState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<axum::Json<Value>> {
    let user = authenticate(&s, &headers, Role::Admin)?;
    let b: AddCameraBody = parse_body(&body)?;
    comment_ok(&b.comment)?;
    let id = camera_overlay::entry_id(&b.camera)
        .map(str::to_string)
        .ok_or_else(|| {
            ApiError::invalid(vec![(
                "camera.id".into(),
                "a camera id (1-64 letters, digits, '-' or '_')".into(),
            )])
        })?;
    let _one = s.cameras_lane.clone().lock_owned().await;
    let change = json!({"action": "add", "camera": id});
    let (version, cameras) = s.change_cameras(&user.name, b.comment.trim(), |ov, _| {
        ov.add(b.camera.clone(), change)
    })?;
    let live = apply(&s, version, cameras).await;
    Ok(axum::Json(answer(
        version,
        &user.name,
        &id,
        Some(Origin::Api),
        live,
    )))
}

/// `PATCH /api/cameras/{id}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EditCameraBody {
    /// A JSON merge patch (RFC 7386) of the camera's `[[cameras]]` entry: only the keys it
    /// names change, `null` deletes a key (back to the default). `{"enabled": false}`
    /// disables the camera.
    #[schema(value_type = Object)]
    patch: Value,
    #[serde(default)]
    comment: String,
}

/// Edits, disables or enables a camera (admin).
#[utoipa::path(
    patch,
    path = "/api/cameras/{id}",
    tag = "cameras",
    params(("id" = String, Path, description = "Camera id.")),
    request_body(content = EditCameraBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The camera is changed (admin): the cameras record's version, and what the engine did (`live`: restarted, stopped, started, or stored for the next start).", body = serde_json::Value, content_type = "application/json"),
        (status = 404, description = "No such camera.", body = ErrorBody),
        (status = 422, description = "The changed camera does not validate as a config file's would (see `fields`).", body = ErrorBody),
        (status = 400, description = "The body is missing or not JSON.", body = ErrorBody),
        (status = 401, description = "No token, or an unknown one.", body = ErrorBody),
        (status = 403, description = "The user's role does not allow this.", body = ErrorBody),
        (status = 413, description = "The body is larger than `server.max_body_bytes`.", body = ErrorBody),
        (status = 429, description = "Too many wrong tokens from this address.", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub(crate) async fn edit_camera(
    State(s): State<ServerState>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<axum::Json<Value>> {
    let user = authenticate(&s, &headers, Role::Admin)?;
    let b: EditCameraBody = parse_body(&body)?;
    comment_ok(&b.comment)?;
    let _one = s.cameras_lane.clone().lock_owned().await;
    let action = match b.patch.get("enabled") {
        Some(Value::Bool(false)) if b.patch.as_object().is_some_and(|m| m.len() == 1) => "disable",
        Some(Value::Bool(true)) if b.patch.as_object().is_some_and(|m| m.len() == 1) => "enable",
        _ => "edit",
    };
    let change = json!({"action": action, "camera": id, "patch": b.patch});
    let (version, cameras) = s.change_cameras(&user.name, b.comment.trim(), |ov, file| {
        ov.edit(file, &id, &b.patch, change)
    })?;
    let live = apply(&s, version, cameras).await;
    let origin = s.camera_origin(&id).0;
    Ok(axum::Json(answer(version, &user.name, &id, origin, live)))
}

/// Removes a camera the API added (admin); a file camera can only be disabled.
#[utoipa::path(
    delete,
    path = "/api/cameras/{id}",
    tag = "cameras",
    params(("id" = String, Path, description = "Camera id.")),
    responses(
        (status = 200, description = "The camera is removed (admin): the cameras record's version, and what the engine did (`live`).", body = serde_json::Value, content_type = "application/json"),
        (status = 404, description = "No such camera.", body = ErrorBody),
        (status = 409, description = "The camera is in the config file: it can be disabled, not removed.", body = ErrorBody),
        (status = 422, description = "Removing it would break the config (a rule, zone or fusion setting names it; see `fields`).", body = ErrorBody),
        (status = 401, description = "No token, or an unknown one.", body = ErrorBody),
        (status = 403, description = "The user's role does not allow this.", body = ErrorBody),
        (status = 429, description = "Too many wrong tokens from this address.", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub(crate) async fn remove_camera(
    State(s): State<ServerState>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
) -> ApiResult<axum::Json<Value>> {
    let user = authenticate(&s, &headers, Role::Admin)?;
    let _one = s.cameras_lane.clone().lock_owned().await;
    let change = json!({"action": "remove", "camera": id});
    let (version, cameras) =
        s.change_cameras(&user.name, "", |ov, file| ov.remove(file, &id, change))?;
    let live = apply(&s, version, cameras).await;
    Ok(axum::Json(answer(version, &user.name, &id, None, live)))
}
