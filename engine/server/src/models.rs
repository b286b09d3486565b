//! Model slots at run time: shadow mode, promotion and rollback (`/api/models`).
//!
//! Each `[models.NAME]` is a slot with a live model and at most one shadow. The server does
//! not know ONNX Runtime: the engine hands it a [`ModelControl`] (the binary implements it
//! over the inference service), which loads and verifies a manifest (sha256 of its ONNX
//! file, same classes as the slot, a session that builds) and swaps the workers' sessions
//! without a restart.
//!
//! Every change is recorded in the config audit trail (the `config_overlays` table, section
//! [`SECTION`] = `models`, listed with the rules overlays by `GET /api/config/history` and
//! `lookout config diff`): who, when, the action, the slot, from and to (manifest and
//! sha256), forced or not. The body is cumulative ([`ModelsOverlay::slots`]: per slot the
//! promoted live model, the models it replaced (what rollback returns to) and the shadow),
//! so the latest record alone is re-applied at start ([`ModelsOverlay::apply_to_config`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use lookout_alerts::store::{OverlayRecord, Store};
use lookout_alerts::StoreError;
use lookout_config::server::Role;
use lookout_config::Config;
use lookout_core::{EventKind, IncidentKind};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;

use crate::api::{authenticate, parse_body, ApiError, ApiResult, ErrorBody};
use crate::ServerState;

/// The store section model changes are written under.
pub const SECTION: &str = "models";
/// The `format` of a models record body.
pub const FORMAT: &str = "models/1";

/// A model file as the audit trail names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ModelRef {
    /// The manifest's path (absolute).
    pub manifest: String,
    /// sha256 of its ONNX file (verified when it was loaded).
    pub sha256: String,
}

/// A loaded model, as the engine reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelInfo {
    /// Manifest path and sha256.
    #[serde(flatten)]
    pub file: ModelRef,
    /// The manifest's `name`.
    pub name: String,
    /// The manifest's licence.
    pub licence: String,
    /// Class names.
    pub classes: Vec<String>,
}

/// One slot as it runs.
#[derive(Debug, Clone, Serialize)]
pub struct SlotInfo {
    /// `[models.NAME]` key.
    pub name: String,
    /// The live model.
    pub live: ModelInfo,
    /// The shadow, if one runs.
    pub shadow: Option<ModelInfo>,
    /// Shadow frames analysed and dropped (running totals).
    pub shadow_frames: u64,
    /// Shadow frames dropped because the worker was behind.
    pub shadow_dropped_saturated: u64,
    /// Shadow results dropped because the shadow rules stage's queue was full.
    pub shadow_dropped_queue_full: u64,
}

/// Why the engine refused a model change.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// No such slot.
    #[error("no model {0:?}: it is not a [models.NAME] entry")]
    NoSlot(String),
    /// The manifest or model is not acceptable (unreadable, checksum, classes, session).
    #[error("{0}")]
    Invalid(String),
}

/// The engine's model slots, as the server changes them.
pub trait ModelControl: Send + Sync + 'static {
    /// Every slot, in config order.
    fn slots(&self) -> Vec<SlotInfo>;
    /// Loads and verifies `manifest` for slot `name` and makes it the live model (the
    /// workers swap sessions before their next frame group). Slow: hashing and a session
    /// build; called on a blocking thread.
    fn set_live(&self, name: &str, manifest: &Path) -> Result<ModelInfo, ModelError>;
    /// Starts or replaces (`Some`) or stops (`None`) slot `name`'s shadow, verified like
    /// [`ModelControl::set_live`].
    fn set_shadow(
        &self,
        name: &str,
        manifest: Option<&Path>,
    ) -> Result<Option<ModelInfo>, ModelError>;
}

/// One slot in the cumulative models record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SlotOverlay {
    /// The promoted live model (`None`: the config file's).
    #[serde(default)]
    pub live: Option<ModelRef>,
    /// The models promotion replaced, oldest first: rollback returns to the last one.
    #[serde(default)]
    pub previous: Vec<ModelRef>,
    /// Whether the API set the shadow (then `shadow` wins over the file's `shadow`).
    #[serde(default)]
    pub shadow_set: bool,
    /// The shadow the API started (`None` with `shadow_set`: stopped).
    #[serde(default)]
    pub shadow: Option<ModelRef>,
}

/// The body of a models record: the change and the whole state after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelsOverlay {
    /// [`FORMAT`].
    pub format: String,
    /// `promote`, `rollback`, `shadow_start` or `shadow_stop`.
    pub action: String,
    /// The slot changed.
    pub model: String,
    /// What ran before (the live model, or the shadow for shadow actions).
    pub from: Option<ModelRef>,
    /// What runs after.
    pub to: Option<ModelRef>,
    /// Promoted without a passing gate for this candidate (`force`).
    #[serde(default)]
    pub forced: bool,
    /// The gate beside the promoted manifest, as read (`gate.json`).
    #[serde(default)]
    pub gate: Value,
    /// Every slot the API changed, after this change.
    pub slots: BTreeMap<String, SlotOverlay>,
}

impl ModelsOverlay {
    /// Reads a stored body.
    pub fn from_body(body: &Value) -> Result<ModelsOverlay, String> {
        let o: ModelsOverlay = serde_json::from_value(body.clone())
            .map_err(|e| format!("unreadable models record: {e}"))?;
        if o.format != FORMAT {
            return Err(format!(
                "models record format {:?} is not supported (this build reads {FORMAT:?})",
                o.format
            ));
        }
        Ok(o)
    }

    /// At start: points `[models.NAME] manifest` (and `shadow`) of `cfg` at what the API
    /// promoted (and started), for every slot that `check` accepts (it loads the manifest
    /// and returns its sha256). A model that no longer loads, or whose sha256 changed
    /// since it was promoted, is refused: the file's model runs, and the reason is
    /// returned (the caller logs it). Slots no longer in the config are ignored.
    pub fn apply_to_config(
        &self,
        cfg: &mut Config,
        check: impl Fn(&Path) -> Result<String, String>,
    ) -> Vec<String> {
        let mut problems = Vec::new();
        let mut verified = |r: &ModelRef, what: &str, name: &str| -> bool {
            match check(Path::new(&r.manifest)) {
                Ok(sha) if sha.eq_ignore_ascii_case(&r.sha256) => true,
                Ok(sha) => {
                    problems.push(format!(
                        "[models.{name}] {what} {}: its ONNX file's sha256 is now {sha}, not the {} that was recorded",
                        r.manifest, r.sha256
                    ));
                    false
                }
                Err(e) => {
                    problems.push(format!("[models.{name}] {what} {}: {e}", r.manifest));
                    false
                }
            }
        };
        for (name, slot) in &self.slots {
            let Some(m) = cfg.models.get_mut(name) else {
                continue;
            };
            if let Some(live) = &slot.live {
                if verified(live, "promoted model", name) {
                    m.manifest = lookout_config::env::EnvString::literal(live.manifest.clone());
                }
            }
            if slot.shadow_set {
                m.shadow = match &slot.shadow {
                    Some(sh) if verified(sh, "shadow", name) => {
                        Some(lookout_config::env::EnvString::literal(sh.manifest.clone()))
                    }
                    _ => None,
                };
            }
        }
        problems
    }
}

/// The newest models record, read.
pub fn latest(store: &Store) -> Result<Option<(OverlayRecord, ModelsOverlay)>, StoreError> {
    let Some(rec) = store.latest_overlay(SECTION)? else {
        return Ok(None);
    };
    match ModelsOverlay::from_body(&rec.body) {
        Ok(o) => Ok(Some((rec, o))),
        Err(e) => {
            tracing::error!(version = rec.version, error = %e, "Ignoring an unreadable models record.");
            Ok(None)
        }
    }
}

/// The engine's model slots (a server without inference has none: every slot is unknown).
fn control(s: &ServerState, name: &str) -> ApiResult<std::sync::Arc<dyn ModelControl>> {
    s.models.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no model {name:?}: this server runs no inference"),
        )
    })
}

fn slot(c: &dyn ModelControl, name: &str) -> ApiResult<SlotInfo> {
    c.slots()
        .into_iter()
        .find(|s| s.name == name)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no model {name:?}: it is not a [models.NAME] entry"),
            )
        })
}

fn model_error(e: ModelError) -> ApiError {
    match e {
        ModelError::NoSlot(_) => ApiError::new(StatusCode::NOT_FOUND, "not_found", e.to_string()),
        ModelError::Invalid(m) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_model", m)
        }
    }
}

/// A manifest path from a request: absolute, or relative to the config file's directory.
fn manifest_path(s: &ServerState, p: &str) -> ApiResult<PathBuf> {
    if p.trim().is_empty() || p.len() > 4096 || p.contains('\0') {
        return Err(ApiError::invalid(vec![(
            "manifest".into(),
            "a manifest path (absolute, or relative to the config file's directory)".into(),
        )]));
    }
    Ok(s.config().resolve_path(p))
}

/// The gate beside a candidate manifest (`gate.json`, written by `models/train/site.sh`):
/// `Ok(gate)` when it says `"offered": true`, else why not.
pub fn read_gate(manifest: &Path) -> Result<Value, String> {
    let path = manifest.with_file_name("gate.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("no gate beside the candidate ({}: {e})", path.display()))?;
    let gate: Value =
        serde_json::from_str(&text).map_err(|e| format!("{} is not JSON: {e}", path.display()))?;
    if gate.get("offered") == Some(&Value::Bool(true)) {
        Ok(gate)
    } else {
        Err(format!(
            "the gate did not offer this candidate ({}: \"offered\" is not true)",
            path.display()
        ))
    }
}

/// The sha256 a candidate manifest declares (`sha256 = "..."`): what loading it verifies
/// its ONNX file against, so the sha256 of the model a promotion swaps in.
pub fn manifest_sha256(manifest: &Path) -> Result<String, String> {
    let text =
        std::fs::read_to_string(manifest).map_err(|e| format!("{}: {e}", manifest.display()))?;
    let doc: toml::Table = text
        .parse()
        .map_err(|e| format!("{} is not TOML: {e}", manifest.display()))?;
    doc.get("sha256")
        .and_then(|v| v.as_str())
        .map(|s| s.trim().to_ascii_lowercase())
        .ok_or_else(|| format!("{}: no `sha256` key", manifest.display()))
}

/// Whether `gate` (read beside `manifest`) speaks for this candidate: its
/// `candidate_sha256` is the sha256 the manifest declares. A gate left over from another
/// candidate does not offer this one.
pub fn gate_matches(gate: &Value, manifest: &Path, manifest_sha: &str) -> Result<(), String> {
    let path = manifest.with_file_name("gate.json");
    let Some(gate_sha) = gate.get("candidate_sha256").and_then(Value::as_str) else {
        return Err(format!(
            "the gate ({}) names no \"candidate_sha256\": it cannot be matched with {} (sha256 {manifest_sha})",
            path.display(),
            manifest.display()
        ));
    };
    if gate_sha.trim().eq_ignore_ascii_case(manifest_sha) {
        Ok(())
    } else {
        Err(format!(
            "the gate ({}) offered the candidate with sha256 {}, but {} is sha256 {manifest_sha}: the gate is another candidate's",
            path.display(),
            gate_sha.trim(),
            manifest.display()
        ))
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ModelError> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ApiError::internal)?
        .map_err(model_error)
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

impl ServerState {
    /// The latest models record's slots (empty without one).
    fn model_slots_overlay(&self) -> Result<BTreeMap<String, SlotOverlay>, StoreError> {
        Ok(latest(self.alerts.store())?
            .map(|(_, o)| o.slots)
            .unwrap_or_default())
    }

    /// Records a model change in the audit trail; returns its version.
    #[allow(clippy::too_many_arguments)]
    fn record_models(
        &self,
        author: &str,
        comment: &str,
        action: &str,
        model: &str,
        from: Option<ModelRef>,
        to: Option<ModelRef>,
        forced: bool,
        gate: Value,
        slots: BTreeMap<String, SlotOverlay>,
    ) -> Result<i64, StoreError> {
        let body = ModelsOverlay {
            format: FORMAT.into(),
            action: action.into(),
            model: model.into(),
            from,
            to,
            forced,
            gate,
            slots,
        };
        let body = serde_json::to_value(&body)?;
        let v =
            self.alerts
                .store()
                .add_overlay(SECTION, author, comment, &body, chrono::Utc::now())?;
        tracing::info!(version = v, author, action, model, "Model change recorded.");
        self.alerts
            .publish(lookout_alerts::LiveUpdate::Config { version: v });
        Ok(v)
    }
}

/// The slots, with the API's changes (`GET /api/models`).
#[utoipa::path(
    get,
    path = "/api/models",
    tag = "models",
    responses(
        (status = 200, description = "Every model slot: the live model and its sha256, the shadow if one runs (with its frame and drop counters), and what rollback would return to (none on a server without inference).", body = serde_json::Value, content_type = "application/json"),
        (status = 401, description = "A token is needed (`read_access = \"token\"`) or it is unknown.", body = ErrorBody),
        (status = 429, description = "Too many wrong tokens from this address.", body = ErrorBody)
    ),
    security((), ("bearer" = []))
)]
pub(crate) async fn list_models(State(s): State<ServerState>) -> ApiResult<axum::Json<Value>> {
    let over = s.model_slots_overlay()?;
    let slots = s.models.as_ref().map(|c| c.slots()).unwrap_or_default();
    let models: Vec<Value> = slots
        .into_iter()
        .map(|slot| {
            let o = over.get(&slot.name).cloned().unwrap_or_default();
            json!({
                "name": slot.name,
                "live": slot.live,
                "promoted": o.live.is_some(),
                "previous": o.previous,
                "shadow": slot.shadow,
                "shadow_frames": slot.shadow_frames,
                "shadow_dropped": {
                    "saturated": slot.shadow_dropped_saturated,
                    "queue_full": slot.shadow_dropped_queue_full,
                },
            })
        })
        .collect();
    Ok(axum::Json(json!({ "models": models })))
}

/// `POST /api/models/{name}/promote`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PromoteBody {
    /// The candidate's manifest (absolute, or relative to the config file's directory).
    /// Unset: the shadow in force.
    #[serde(default)]
    manifest: Option<String>,
    /// Promote without a passing `gate.json` beside the manifest, or with a gate whose
    /// `candidate_sha256` is another model's.
    #[serde(default)]
    force: bool,
    #[serde(default)]
    comment: String,
}

#[utoipa::path(
    post,
    path = "/api/models/{name}/promote",
    tag = "models",
    params(("name" = String, Path, description = "The `[models.NAME]` slot.")),
    request_body(content = PromoteBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The candidate runs live (admin): its sha256 verified, its session built, the workers swap before their next frames; the change is in the config history.", body = serde_json::Value, content_type = "application/json"),
        (status = 404, description = "No such model slot.", body = ErrorBody),
        (status = 409, description = "No passing gate beside the candidate, or a gate whose `candidate_sha256` is not the candidate's sha256 (the error names both; send `force`), no shadow to promote, or the candidate already runs.", body = ErrorBody),
        (status = 422, description = "The manifest does not load (unreadable, sha256 mismatch, other classes, no session).", body = ErrorBody),
        (status = 400, description = "The body is missing or not JSON.", body = ErrorBody),
        (status = 401, description = "No token, or an unknown one.", body = ErrorBody),
        (status = 403, description = "The user's role does not allow this.", body = ErrorBody),
        (status = 413, description = "The body is larger than `server.max_body_bytes`.", body = ErrorBody),
        (status = 429, description = "Too many wrong tokens from this address.", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub(crate) async fn promote(
    State(s): State<ServerState>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<axum::Json<Value>> {
    let user = authenticate(&s, &headers, Role::Admin)?;
    let b: PromoteBody = parse_body(&body)?;
    comment_ok(&b.comment)?;
    let c = control(&s, &name)?;
    let _one = s.models_lane.clone().lock_owned().await;
    let cur = slot(c.as_ref(), &name)?;
    let path = match &b.manifest {
        Some(p) => manifest_path(&s, p)?,
        None => match &cur.shadow {
            Some(sh) => PathBuf::from(&sh.file.manifest),
            None => {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "no_shadow",
                    format!("model {name:?} runs no shadow: name the candidate's `manifest`"),
                ))
            }
        },
    };
    let gate = match read_gate(&path) {
        Ok(g) => g,
        Err(_) if b.force => Value::Null,
        Err(m) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "gate",
                format!("{m}; send \"force\": true to promote anyway"),
            ))
        }
    };
    // The gate must be this candidate's: its `candidate_sha256` is the sha256 the manifest
    // declares (the one loading verifies, so the model swapped in).
    let mut gate_ok = false;
    if !gate.is_null() {
        let sha = manifest_sha256(&path)
            .map_err(|m| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_model", m))?;
        match gate_matches(&gate, &path, &sha) {
            Ok(()) => gate_ok = true,
            Err(_) if b.force => {}
            Err(m) => {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "gate_candidate",
                    format!("{m}; send \"force\": true to promote anyway"),
                ))
            }
        }
    }
    let promoting_shadow = cur
        .shadow
        .as_ref()
        .is_some_and(|sh| Path::new(&sh.file.manifest) == path);
    let new = blocking({
        let (c, name, path) = (c.clone(), name.clone(), path.clone());
        move || c.set_live(&name, &path)
    })
    .await?;
    // The promoted shadow has nothing left to compare against: it stops.
    if promoting_shadow {
        let (c2, n2) = (c.clone(), name.clone());
        blocking(move || c2.set_shadow(&n2, None)).await?;
    }
    let mut slots = s.model_slots_overlay()?;
    let entry = slots.entry(name.clone()).or_default();
    entry.previous.push(cur.live.file.clone());
    // Bounded: the oldest promotions fall off the rollback stack.
    if entry.previous.len() > 16 {
        entry.previous.remove(0);
    }
    entry.live = Some(new.file.clone());
    if promoting_shadow {
        entry.shadow_set = true;
        entry.shadow = None;
    }
    let forced = b.force && !gate_ok;
    let version = s.record_models(
        &user.name,
        b.comment.trim(),
        "promote",
        &name,
        Some(cur.live.file.clone()),
        Some(new.file.clone()),
        forced,
        gate.clone(),
        slots,
    )?;
    Ok(axum::Json(json!({
        "version": version,
        "author": user.name,
        "model": name,
        "from": cur.live,
        "to": new,
        "forced": forced,
        "gate": gate,
    })))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ModelCommentBody {
    #[serde(default)]
    comment: String,
}

#[utoipa::path(
    post,
    path = "/api/models/{name}/rollback",
    tag = "models",
    params(("name" = String, Path, description = "The `[models.NAME]` slot.")),
    request_body(content = ModelCommentBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The model the last promotion replaced runs live again (admin); the change is in the config history.", body = serde_json::Value, content_type = "application/json"),
        (status = 404, description = "No such model slot.", body = ErrorBody),
        (status = 409, description = "Nothing to roll back to (no promotion in force).", body = ErrorBody),
        (status = 422, description = "The previous model no longer loads.", body = ErrorBody),
        (status = 400, description = "The body is missing or not JSON.", body = ErrorBody),
        (status = 401, description = "No token, or an unknown one.", body = ErrorBody),
        (status = 403, description = "The user's role does not allow this.", body = ErrorBody),
        (status = 413, description = "The body is larger than `server.max_body_bytes`.", body = ErrorBody),
        (status = 429, description = "Too many wrong tokens from this address.", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub(crate) async fn rollback(
    State(s): State<ServerState>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<axum::Json<Value>> {
    let user = authenticate(&s, &headers, Role::Admin)?;
    let b: ModelCommentBody = parse_body(&body)?;
    comment_ok(&b.comment)?;
    let c = control(&s, &name)?;
    let _one = s.models_lane.clone().lock_owned().await;
    let cur = slot(c.as_ref(), &name)?;
    let mut slots = s.model_slots_overlay()?;
    let Some(prev) = slots.get(&name).and_then(|o| o.previous.last().cloned()) else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "nothing_to_roll_back",
            format!("model {name:?} runs the model it started with: nothing to roll back to"),
        ));
    };
    let new = blocking({
        let (c, name, p) = (c.clone(), name.clone(), PathBuf::from(&prev.manifest));
        move || c.set_live(&name, &p)
    })
    .await?;
    let entry = slots.entry(name.clone()).or_default();
    entry.previous.pop();
    entry.live = (!entry.previous.is_empty()).then(|| new.file.clone());
    let version = s.record_models(
        &user.name,
        b.comment.trim(),
        "rollback",
        &name,
        Some(cur.live.file.clone()),
        Some(new.file.clone()),
        false,
        Value::Null,
        slots,
    )?;
    Ok(axum::Json(json!({
        "version": version,
        "author": user.name,
        "model": name,
        "from": cur.live,
        "to": new,
    })))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ShadowBody {
    /// The candidate's manifest (absolute, or relative to the config file's directory).
    manifest: String,
    #[serde(default)]
    comment: String,
}

/// The event kinds a slot's classes raise (what its shadow is compared on) and the
/// incident kinds they make.
pub fn slot_kinds(
    classes: &[String],
    person_class: &str,
) -> (Vec<&'static str>, Vec<&'static str>) {
    let mut kinds: Vec<EventKind> = classes
        .iter()
        .filter_map(|c| EventKind::from_class(c))
        .collect();
    if classes.iter().any(|c| c == person_class) {
        kinds.extend([
            EventKind::PersonInZone,
            EventKind::PostVacant,
            EventKind::OverOccupancy,
            EventKind::Restricted,
            EventKind::PatrolMissed,
        ]);
    }
    let mut incidents: Vec<&'static str> = kinds
        .iter()
        .map(|k| IncidentKind::of_event(*k).as_str())
        .collect();
    incidents.sort_unstable();
    incidents.dedup();
    (kinds.iter().map(|k| k.as_str()).collect(), incidents)
}

#[utoipa::path(
    get,
    path = "/api/models/{name}/shadow",
    tag = "models",
    params(("name" = String, Path, description = "The `[models.NAME]` slot.")),
    responses(
        (status = 200, description = "Live against shadow per camera (events raised by each, agreement with the operators' verdicts), the shadow's counters and its latest would-be events.", body = serde_json::Value, content_type = "application/json"),
        (status = 404, description = "No such model slot.", body = ErrorBody),
        (status = 401, description = "A token is needed (`read_access = \"token\"`) or it is unknown.", body = ErrorBody),
        (status = 429, description = "Too many wrong tokens from this address.", body = ErrorBody)
    ),
    security((), ("bearer" = []))
)]
pub(crate) async fn shadow_get(
    State(s): State<ServerState>,
    UrlPath(name): UrlPath<String>,
) -> ApiResult<axum::Json<Value>> {
    let c = control(&s, &name)?;
    let cur = slot(c.as_ref(), &name)?;
    let person = s.config().rules.person_class;
    let (kinds, incident_kinds) = slot_kinds(&cur.live.classes, &person);
    let sha = cur.shadow.as_ref().map(|m| m.file.sha256.clone());
    let since = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
    let store = s.alerts.store();
    let cameras =
        store.shadow_comparison(&name, sha.as_deref(), &kinds, &incident_kinds, since, 60.0)?;
    let events = store.shadow_events(Some(&name), since, 50)?;
    Ok(axum::Json(json!({
        "model": name,
        "live": cur.live,
        "shadow": cur.shadow,
        "shadow_frames": cur.shadow_frames,
        "shadow_dropped": {
            "saturated": cur.shadow_dropped_saturated,
            "queue_full": cur.shadow_dropped_queue_full,
        },
        "kinds": kinds,
        "cameras": cameras,
        "events": events,
    })))
}

#[utoipa::path(
    post,
    path = "/api/models/{name}/shadow",
    tag = "models",
    params(("name" = String, Path, description = "The `[models.NAME]` slot.")),
    request_body(content = ShadowBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The candidate runs in shadow beside the live model (admin): its would-be events are stored marked shadow, never delivered; the change is in the config history.", body = serde_json::Value, content_type = "application/json"),
        (status = 404, description = "No such model slot.", body = ErrorBody),
        (status = 422, description = "The manifest does not load (unreadable, sha256 mismatch, other classes, no session).", body = ErrorBody),
        (status = 400, description = "The body is missing or not JSON.", body = ErrorBody),
        (status = 401, description = "No token, or an unknown one.", body = ErrorBody),
        (status = 403, description = "The user's role does not allow this.", body = ErrorBody),
        (status = 413, description = "The body is larger than `server.max_body_bytes`.", body = ErrorBody),
        (status = 429, description = "Too many wrong tokens from this address.", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub(crate) async fn shadow_start(
    State(s): State<ServerState>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<axum::Json<Value>> {
    let user = authenticate(&s, &headers, Role::Admin)?;
    let b: ShadowBody = parse_body(&body)?;
    comment_ok(&b.comment)?;
    let path = manifest_path(&s, &b.manifest)?;
    let c = control(&s, &name)?;
    let _one = s.models_lane.clone().lock_owned().await;
    let cur = slot(c.as_ref(), &name)?;
    let new = blocking({
        let (c, name) = (c.clone(), name.clone());
        move || c.set_shadow(&name, Some(&path))
    })
    .await?;
    let Some(new) = new else {
        return Err(ApiError::internal("the engine started no shadow"));
    };
    let mut slots = s.model_slots_overlay()?;
    let entry = slots.entry(name.clone()).or_default();
    entry.shadow_set = true;
    entry.shadow = Some(new.file.clone());
    let version = s.record_models(
        &user.name,
        b.comment.trim(),
        "shadow_start",
        &name,
        cur.shadow.as_ref().map(|m| m.file.clone()),
        Some(new.file.clone()),
        false,
        Value::Null,
        slots,
    )?;
    Ok(axum::Json(json!({
        "version": version,
        "author": user.name,
        "model": name,
        "live": cur.live,
        "shadow": new,
    })))
}

#[utoipa::path(
    delete,
    path = "/api/models/{name}/shadow",
    tag = "models",
    params(("name" = String, Path, description = "The `[models.NAME]` slot.")),
    responses(
        (status = 200, description = "The shadow stopped (admin; stopping none is not an error); the change is in the config history.", body = serde_json::Value, content_type = "application/json"),
        (status = 404, description = "No such model slot.", body = ErrorBody),
        (status = 401, description = "No token, or an unknown one.", body = ErrorBody),
        (status = 403, description = "The user's role does not allow this.", body = ErrorBody),
        (status = 429, description = "Too many wrong tokens from this address.", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
pub(crate) async fn shadow_stop(
    State(s): State<ServerState>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
) -> ApiResult<axum::Json<Value>> {
    let user = authenticate(&s, &headers, Role::Admin)?;
    let c = control(&s, &name)?;
    let _one = s.models_lane.clone().lock_owned().await;
    let cur = slot(c.as_ref(), &name)?;
    let Some(old) = cur.shadow else {
        return Ok(axum::Json(
            json!({"model": name, "shadow": null, "version": null}),
        ));
    };
    blocking({
        let (c, name) = (c.clone(), name.clone());
        move || c.set_shadow(&name, None)
    })
    .await?;
    let mut slots = s.model_slots_overlay()?;
    let entry = slots.entry(name.clone()).or_default();
    entry.shadow_set = true;
    entry.shadow = None;
    let version = s.record_models(
        &user.name,
        "",
        "shadow_stop",
        &name,
        Some(old.file.clone()),
        None,
        false,
        Value::Null,
        slots,
    )?;
    Ok(axum::Json(
        json!({"model": name, "shadow": null, "version": version, "stopped": old}),
    ))
}

/// Appends the model slots to `/metrics`: `lookout_model_info{model, role, sha256,
/// manifest}` (1 per live model and shadow), `lookout_shadow_frames_total{model}` and
/// `lookout_shadow_frames_dropped_total{model, reason}` (`saturated`: the worker was
/// behind; `queue_full`: the shadow rules stage's queue was full).
pub fn render_metrics(out: &mut String, slots: &[SlotInfo]) {
    use std::fmt::Write;
    let esc = |s: &str| {
        s.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    };
    let _ = writeln!(out, "# HELP lookout_model_info The model each slot runs live and in shadow (always 1; the labels say which file).\n# TYPE lookout_model_info gauge");
    for s in slots {
        let roles =
            std::iter::once(("live", &s.live)).chain(s.shadow.iter().map(|m| ("shadow", m)));
        for (role, m) in roles {
            let _ = writeln!(
                out,
                "lookout_model_info{{model=\"{}\",role=\"{role}\",sha256=\"{}\",manifest=\"{}\"}} 1",
                esc(&s.name),
                esc(&m.file.sha256),
                esc(&m.file.manifest)
            );
        }
    }
    let _ = writeln!(out, "# HELP lookout_shadow_frames_total Frames a slot's shadow model analysed and handed to the shadow rules.\n# TYPE lookout_shadow_frames_total counter");
    for s in slots {
        let _ = writeln!(
            out,
            "lookout_shadow_frames_total{{model=\"{}\"}} {}",
            esc(&s.name),
            s.shadow_frames
        );
    }
    let _ = writeln!(out, "# HELP lookout_shadow_frames_dropped_total Shadow frames not analysed (saturated: the worker was behind) or not judged (queue_full).\n# TYPE lookout_shadow_frames_dropped_total counter");
    for s in slots {
        for (reason, n) in [
            ("saturated", s.shadow_dropped_saturated),
            ("queue_full", s.shadow_dropped_queue_full),
        ] {
            let _ = writeln!(
                out,
                "lookout_shadow_frames_dropped_total{{model=\"{}\",reason=\"{reason}\"}} {n}",
                esc(&s.name)
            );
        }
    }
}
