//! HTTP handlers: `/health`, `/metrics`, `/api/...`, `/api/live` (SSE) and the UI.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use lookout_alerts::lifecycle::parse_state;
use lookout_alerts::store::IncidentFilter;
use lookout_alerts::{AlertsError, StoreError};
use lookout_config::rules::RulesConfig;
use lookout_config::server::Role;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{IntoParams, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::overlay::ChangeError;
use crate::tuning::{self, TuneRequest};
use crate::ServerState;

const INDEX_HTML: &str = include_str!("../ui/index.html");
const APP_JS: &str = include_str!("../ui/app.js");
const APP_CSS: &str = include_str!("../ui/app.css");

/// An API error rendered as `{"error": {"code", "message", "fields"?}}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    fields: Vec<(String, String)>,
}

impl ApiError {
    pub(crate) fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            fields: Vec::new(),
        }
    }

    pub(crate) fn invalid(fields: Vec<(String, String)>) -> ApiError {
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid",
            message: fields
                .iter()
                .map(|(p, m)| format!("{p}: {m}"))
                .collect::<Vec<_>>()
                .join("; "),
            fields,
        }
    }

    pub(crate) fn internal(e: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %e, "API request failed.");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
    }
}

/// Every error answer of the API (what [`ApiError`] renders).
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    error: ErrorDetail,
}

/// The error of an [`ErrorBody`].
#[derive(Serialize, ToSchema)]
struct ErrorDetail {
    /// Machine-readable code (`not_found`, `invalid`, `unauthorized`, ...).
    code: String,
    /// One sentence for a person.
    message: String,
    /// The fields that are wrong (`invalid` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    fields: Option<Vec<FieldError>>,
}

/// One wrong field of a request.
#[derive(Serialize, ToSchema)]
struct FieldError {
    /// Where (`to`, `rules.quiet_s`, `polygon[2]`, ...).
    path: String,
    /// What is wrong with it.
    message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let fields = (!self.fields.is_empty()).then(|| {
            self.fields
                .into_iter()
                .map(|(path, message)| FieldError { path, message })
                .collect()
        });
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message,
                fields,
            },
        };
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<AlertsError> for ApiError {
    fn from(e: AlertsError) -> Self {
        match e {
            AlertsError::Store(s) => s.into(),
            other => ApiError::internal(other),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(id) => ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no incident with id {id:?}"),
            ),
            StoreError::InvalidTransition(m) => {
                ApiError::new(StatusCode::CONFLICT, "invalid_transition", m)
            }
            other => ApiError::internal(other),
        }
    }
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;

/// The API's OpenAPI 3 description (`GET /api/openapi.json`): the paths, parameters and
/// request bodies come from each handler's `#[utoipa::path]` and the typed request structs,
/// collected by the same [`routes`] call that registers the handlers, so a route cannot be
/// served without being described.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Lookout API",
        description = "Incidents, cameras, hotspots, configuration and tuning of a Lookout engine. \
            Errors are `{\"error\": {\"code\", \"message\", \"fields\"?}}`. Writes need \
            `Authorization: Bearer <token>` of a `[[server.users]]` entry whose role allows them; \
            reads need a token too when `server.read_access = \"token\"`."
    ),
    modifiers(&BearerAuth),
    components(schemas(ErrorBody))
)]
struct ApiDoc;

/// Declares the bearer token scheme the operations refer to.
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "bearer",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
    }
}

/// The routes, behind the access guard ([`crate::auth::guard`]: tokens, read access,
/// failed-authentication limits, write body limits, security headers): every route added
/// in [`routes`] is covered.
pub fn router(state: ServerState) -> Router {
    let limit = state.config().server.max_body_bytes;
    routes()
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
        })
        .layer(axum::extract::DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::auth::guard,
        ))
        .with_state(state)
}

/// The OpenAPI description of every API route, as JSON (made once).
pub fn openapi_json() -> &'static str {
    static DOC: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DOC.get_or_init(|| {
        api_routes().1.to_json().unwrap_or_else(|e| {
            tracing::error!(error = %e, "Cannot render the OpenAPI description.");
            String::from("{}")
        })
    })
}

/// The API's routes (add new ones here, with a `#[utoipa::path]` on the handler) and the
/// description they make: one list for both.
fn api_routes() -> (Router<ServerState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(health))
        .routes(routes!(metrics))
        .routes(routes!(disk))
        .routes(routes!(cameras, crate::camera_edit::add_camera))
        .routes(routes!(
            crate::camera_edit::edit_camera,
            crate::camera_edit::remove_camera
        ))
        .routes(routes!(camera_frame))
        .routes(routes!(list_incidents))
        .routes(routes!(get_incident))
        .routes(routes!(incident_events))
        .routes(routes!(transition))
        .routes(routes!(comment))
        .routes(routes!(snapshot))
        .routes(routes!(crate::clips::clips))
        .routes(routes!(crate::clips::clip))
        .routes(routes!(crate::clips::clip_boxes))
        .routes(routes!(snapshot_frame))
        .routes(routes!(snapshot_boxes, put_snapshot_boxes))
        .routes(routes!(crate::map::map_info))
        .routes(routes!(crate::map::tile))
        .routes(routes!(hotspots))
        .routes(routes!(geojson))
        .routes(routes!(config))
        .routes(routes!(config_history))
        .routes(routes!(put_rules, patch_rules))
        .routes(routes!(revert_rules))
        .routes(routes!(tuning_current))
        .routes(routes!(tuning_replay))
        .routes(routes!(tuning_curve))
        .routes(routes!(crate::pr::pr_plots))
        .routes(routes!(crate::pr::pr_plot))
        .routes(routes!(tuning_apply))
        .routes(routes!(tuning_masks))
        .routes(routes!(tuning_masks_apply))
        .routes(routes!(dead_letters))
        .routes(routes!(outbox_retry))
        .routes(routes!(crate::models::list_models))
        .routes(routes!(crate::models::promote))
        .routes(routes!(crate::models::rollback))
        .routes(routes!(
            crate::models::shadow_get,
            crate::models::shadow_start,
            crate::models::shadow_stop
        ))
        .routes(routes!(me))
        .routes(routes!(live))
        .split_for_parts()
}

/// Every route (so the guard covers them): the API's, the page and its files, and the
/// description itself.
fn routes() -> Router<ServerState> {
    api_routes()
        .0
        .route("/", get(index))
        .route("/app.js", get(app_js))
        .route("/app.css", get(app_css))
        .route("/vendor/leaflet/{*file}", get(crate::map::vendor))
        .route("/vendor/coastlines/{*file}", get(crate::map::coastlines))
        .route("/api/openapi.json", get(openapi))
}

/// `GET /api/openapi.json`: [`openapi_json`].
async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], openapi_json())
}

async fn index() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        INDEX_HTML,
    )
}
async fn app_js() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        APP_JS,
    )
}
async fn app_css() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], APP_CSS)
}

/// The user a request acts as.
pub(crate) struct User {
    pub(crate) name: String,
    role: Role,
}

/// The user a request acts as, who must have at least role `need`. The guard already
/// refused unknown tokens (counting them) and writes below operator; this names the user
/// and checks the handler's own role (admin for config changes).
pub(crate) fn authenticate(
    state: &ServerState,
    headers: &HeaderMap,
    need: Role,
) -> ApiResult<User> {
    let Some(token) = crate::auth::bearer(headers) else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "this endpoint changes state: send Authorization: Bearer <token>",
        ));
    };
    let Some(u) = state.access.verify(token) else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "unknown token",
        ));
    };
    if u.role < need {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "user {:?} has role {}; this needs {}",
                u.name,
                u.role.as_str(),
                need.as_str()
            ),
        ));
    }
    Ok(User {
        name: u.name.clone(),
        role: u.role,
    })
}

pub(crate) fn parse_body<T: DeserializeOwned>(body: &Bytes) -> ApiResult<T> {
    if body.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "the request needs a JSON body",
        ));
    }
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let msg = e.inner().to_string();
        if e.inner().is_syntax() || e.inner().is_eof() {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_json",
                format!("the body is not valid JSON: {msg}"),
            )
        } else {
            ApiError::invalid(vec![(if path == "." { String::new() } else { path }, msg)])
        }
    })
}

#[utoipa::path(
    get,
    path = "/health",
    tag = "engine",
    responses(
        (status = 200, description = "The store answers.", body = serde_json::Value, content_type = "application/json"),
        (status = 401, description = "A token is needed (`read_access = \"token\"`) or it is unknown.", body = ErrorBody),
        (status = 429, description = "Too many wrong tokens from this address.", body = ErrorBody)
    ),
    security((), ("bearer" = []))
)]
async fn health(State(s): State<ServerState>) -> ApiResult<axum::Json<Value>> {
    let v = s.alerts.store().schema_version()?;
    Ok(axum::Json(json!({"status": "ok", "schema_version": v})))
}

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "engine",
    responses(
        (status = 200, description = "Prometheus text exposition.", body = String, content_type = "text/plain"),
        (status = 401, description = "A token is needed (`read_access = \"token\"`) or it is unknown.", body = ErrorBody),
        (status = 429, description = "Too many wrong tokens from this address.", body = ErrorBody)
    ),
    security((), ("bearer" = []))
)]
async fn metrics(State(s): State<ServerState>) -> ApiResult<Response> {
    let backlog = s.alerts.backlog()?;
    let dead = s.alerts.dead_letter_counts()?;
    let mut text = s.metrics.render(&backlog, &dead, &s.alerts.sink_stats());
    let disk = s.alerts.disk_usage();
    crate::metrics::render_disk_usage(&mut text, &disk.kinds(), disk.quota);
    if let Some(c) = &s.models {
        crate::models::render_metrics(&mut text, &c.slots());
    }
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

/// The data directory's disk usage per kind of file, as of the last retention pass.
#[utoipa::path(
    get,
    path = "/api/disk",
    tag = "engine",
    responses(
        (status = 200, description = "Disk usage of the data directory per kind of file, as of the last retention pass.", body = serde_json::Value, content_type = "application/json"),
        (status = 401, description = "A token is needed (`read_access = \"token\"`) or it is unknown.", body = ErrorBody),
        (status = 429, description = "Too many wrong tokens from this address.", body = ErrorBody)
    ),
    security((), ("bearer" = []))
)]
async fn disk(State(s): State<ServerState>) -> axum::Json<lookout_alerts::retention::DiskUsage> {
    axum::Json(s.alerts.disk_usage())
}

#[utoipa::path(
    get,
    path = "/api/me",
    tag = "engine",
    responses(
        (status = 200, description = "The user the token belongs to.", body = serde_json::Value, content_type = "application/json"),
        (status = 401, description = "No token, or an unknown one.", body = ErrorBody),
        (status = 429, description = "Too many wrong tokens from this address.", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
async fn me(State(s): State<ServerState>, headers: HeaderMap) -> ApiResult<axum::Json<Value>> {
    let u = authenticate(&s, &headers, Role::Viewer)?;
    Ok(axum::Json(json!({"name": u.name, "role": u.role})))
}

#[utoipa::path(
    get,
    path = "/api/cameras",
    tag = "cameras",
    responses(
        (status = 200, description = "Every running camera (the config file's with the API's changes) with its origin (`file` or `api`), the API's patch of it (`overlay`), its `config` entry (passwords redacted), status, latest boxes, zones and masks.", body = serde_json::Value, content_type = "application/json"),
        (status = 401, description = "A token is needed (`read_access = \"token\"`) or it is unknown.", body = ErrorBody),
        (status = 429, description = "Too many wrong tokens from this address.", body = ErrorBody)
    ),
    security((), ("bearer" = []))
)]
async fn cameras(State(s): State<ServerState>) -> axum::Json<Value> {
    let cfg = s.config();
    let statuses = s.alerts.camera_statuses();
    let list: Vec<Value> = cfg
        .cameras
        .iter()
        .map(|c| {
            let st = statuses.get(c.id.as_str());
            let latest = s.alerts.latest_result(&c.id);
            let rules = cfg.rules.cameras.get(&c.id);
            let (origin, overlay) = s.camera_origin(&c.id);
            json!({
                "id": c.id,
                "origin": origin,
                "overlay": overlay,
                "config": c,
                "name": c.display_name(),
                "enabled": c.enabled,
                "source": c.source.kind(),
                "status": st.map(|(s, _)| json!(s)).unwrap_or(json!({"state": "unknown"})),
                "status_at": st.map(|(_, at)| *at),
                "fps": s.metrics.camera_fps(&c.id),
                "has_frame": s.rings.get(&c.id).is_some_and(|r| !r.is_empty()),
                "geo": c.geo.as_ref().map(|g| json!({
                    "lat": g.lat, "lon": g.lon, "heading_deg": g.heading_deg,
                    "hfov_deg": g.hfov(), "range_m": g.range_m,
                })),
                "latest": latest.map(|r| json!({
                    "seq": r.seq, "captured_at": r.captured_at, "width": r.width,
                    "height": r.height, "model": r.model, "detections": r.detections,
                })),
                "zones": rules.map(|r| r.zones.iter().map(|z| json!({
                    "name": z.name, "polygon": z.polygon, "preset": z.preset,
                })).collect::<Vec<_>>()).unwrap_or_default(),
                "masks": rules.map(|r| r.masks.iter().map(|m| json!({
                    "polygon": m.polygon, "preset": m.preset,
                })).collect::<Vec<_>>()).unwrap_or_default(),
            })
        })
        .collect();
    axum::Json(Value::Array(list))
}

fn jpeg(bytes: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("image/jpeg")),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        bytes,
    )
        .into_response()
}

#[utoipa::path(
    get,
    path = "/api/cameras/{id}/frame.jpg",
    tag = "cameras",
    params(("id" = String, Path, description = "Camera id.")),
    responses(
        (status = 200, description = "The camera's newest frame as JPEG.", body = Vec<u8>, content_type = "image/jpeg"),
        (status = 404, description = "No such camera, or no frame yet.", body = ErrorBody),
        (status = 401, description = "A token is needed (`read_access = \"token\"`) or it is unknown.", body = ErrorBody),
        (status = 429, description = "Too many wrong tokens from this address.", body = ErrorBody)
    ),
    security((), ("bearer" = []))
)]
async fn camera_frame(State(s): State<ServerState>, Path(id): Path<String>) -> ApiResult<Response> {
    let Some(ring) = s.rings.get(&id) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no live view for camera {id:?}"),
        ));
    };
    let Some(frame) = ring.latest() else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_frame",
            format!("camera {id:?} has not delivered a frame yet"),
        ));
    };
    let bytes =
        tokio::task::spawn_blocking(move || lookout_alerts::snapshot::frame_jpeg(&frame, 75))
            .await
            .map_err(ApiError::internal)?
            .map_err(ApiError::internal)?;
    Ok(jpeg(bytes))
}

/// The query of `GET /api/incidents` (read as a map, so that each bad parameter is named;
/// described here).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
struct IncidentsQuery {
    /// States, comma-separated: `new`, `acknowledged`, `confirmed`, `false_alarm`, `closed`.
    state: Option<String>,
    /// Incident kind (`fire`, `post_vacant`, ...).
    kind: Option<String>,
    /// Camera id.
    camera: Option<String>,
    /// `low`, `medium`, `high` or `critical`.
    min_severity: Option<String>,
    /// RFC 3339 time: incidents seen since.
    since: Option<String>,
    /// 1 ..= 1000.
    limit: Option<u32>,
}

#[utoipa::path(
    get,
    path = "/api/incidents",
    tag = "incidents",
    params(IncidentsQuery),
    responses(
        (status = 200, description = "Incidents, newest first.", body = serde_json::Value, content_type = "application/json"),
        (status = 422, description = "A query parameter is invalid (see `fields`).", body = ErrorBody),
        (status = 401, description = "A token is needed (`read_access = \"token\"`) or it is unknown.", body = ErrorBody),
        (status = 429, description = "Too many wrong tokens from this address.", body = ErrorBody)
    ),
    security((), ("bearer" = []))
)]
async fn list_incidents(
    State(s): State<ServerState>,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> ApiResult<Response> {
    let mut f = IncidentFilter::default();
    let mut errors = Vec::new();
    for (k, v) in q {
        match k.as_str() {
            "state" => {
                for st in v.split(',') {
                    if parse_state(st.trim()).is_none() {
                        errors.push(("state".to_string(), format!("unknown state {st:?}; allowed: new, acknowledged, confirmed, false_alarm, closed")));
                    }
                }
                f.state = Some(v);
            }
            "kind" => f.kind = Some(v),
            "camera" => f.camera = Some(v),
            "min_severity" => {
                if lookout_alerts::lifecycle::parse_severity(&v).is_none() {
                    errors.push((
                        "min_severity".into(),
                        "allowed: low, medium, high, critical".into(),
                    ));
                }
                f.min_severity = Some(v)
            }
            "since" => match chrono::DateTime::parse_from_rfc3339(&v) {
                Ok(t) => f.since = Some(t.with_timezone(&chrono::Utc)),
                Err(e) => errors.push(("since".into(), format!("not an RFC 3339 time: {e}"))),
            },
            "limit" => match v.parse::<u32>() {
                Ok(n) if (1..=1000).contains(&n) => f.limit = Some(n),
                _ => errors.push(("limit".into(), "must be an integer in 1 ..= 1000".into())),
            },
            other => errors.push((
                other.to_string(),
                "unknown query parameter; allowed: state, kind, camera, min_severity, since, limit"
                    .into(),
            )),
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid(errors));
    }
    let list = s.alerts.store().list_incidents(&f)?;
    // Serialized straight from the typed list (no intermediate `Value` tree: ~4x cheaper).
    Ok(axum::Json(list).into_response())
}

#[utoipa::path(
    get,
    path = "/api/incidents/{id}",
    tag = "incidents",
    params(("id" = String, Path, description = "Incident id.")),
    responses(
        (status = 200, description = "The incident with its revisions, transitions and snapshots.", body = serde_json::Value, content_type = "application/json"),
        (status = 404, description = "No such incident.", body = ErrorBody),
        (status = 401, description = "A token is needed (`read_access = \"token\"`) or it is unknown.", body = ErrorBody),
        (status = 429, description = "Too many wrong tokens from this address.", body = ErrorBody)
    ),
    security((), ("bearer" = []))
)]
async fn get_incident(
    State(s): State<ServerState>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    match s.alerts.store().incident_detail(&id)? {
        Some(d) => Ok(axum::Json(json!(d))),
        None => Err(StoreError::NotFound(id).into()),
    }
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct EventsQuery {
    /// Page size, 1 ..= 1000 (default 100).
    #[serde(default)]
    limit: Option<u32>,
    /// The `next` cursor of the previous page.
    #[serde(default)]
    before: Option<String>,
}

/// An incident's full event history (an incident revision carries only a few events),
/// newest first, one page at a time: `{"events": [...], "next": cursor or null}`.
#[utoipa::path(
    get,
    path = "/api/incidents/{id}/events",
    tag = "incidents",
    params(("id" = String, Path, description = "Incident id."), EventsQuery),
    responses(
        (status = 200, description = "One page of the incident's events, newest first, with the cursor of the next page.", body = serde_json::Value, content_type = "application/json"),
        (status = 404, description = "No such incident.", body = ErrorBody),
        (status = 422, description = "A query parameter is invalid (see `fields`).", body = ErrorBody),
        (status = 401, description = "A token is needed (`read_access = \"token\"`) or it is unknown.", body = ErrorBody),
        (status = 429, description = "Too many wrong tokens from this address.", body = ErrorBody)
    ),
    security((), ("bearer" = []))
)]
async fn incident_events(
    State(s): State<ServerState>,
    Path(id): Path<String>,
    q: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let Query(q) = q.map_err(|e| ApiError::invalid(vec![("query".into(), e.body_text())]))?;
    let limit = q.limit.unwrap_or(100);
    let mut errors = Vec::new();
    if !(1..=1000).contains(&limit) {
        errors.push(("limit".to_string(), "must be in 1 ..= 1000".to_string()));
    }
    let before = match q
        .before
        .as_deref()
        .map(lookout_alerts::store::EventCursor::parse)
    {
        Some(None) => {
            errors.push((
                "before".to_string(),
                "not a cursor; pass the `next` of the previous page".to_string(),
            ));
            None
        }
        Some(c) => c,
        None => None,
    };
    if !errors.is_empty() {
        return Err(ApiError::invalid(errors));
    }
    match s
        .alerts
        .store()
        .incident_events(&id, before.as_ref(), limit)?
    {
        Some(page) => Ok(axum::Json(page).into_response()),
        None => Err(StoreError::NotFound(id).into()),
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct TransitionBody {
    to: String,
    #[serde(default)]
    comment: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CommentBody {
    comment: String,
}

#[utoipa::path(
    post,
    path = "/api/incidents/{id}/transition",
    tag = "incidents",
    params(("id" = String, Path, description = "Incident id.")),
    request_body(content = TransitionBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The incident after the transition (operator).", body = serde_json::Value, content_type = "application/json"),
        (status = 404, description = "No such incident.", body = ErrorBody),
        (status = 409, description = "The transition is not allowed from the incident's state.", body = ErrorBody),
        (status = 400, description = "The body is missing or not JSON.", body = ErrorBody),
        (status = 401, description = "No token, or an unknown one.", body = ErrorBody),
        (status = 403, description = "The user's role does not allow this.", body = ErrorBody),
        (status = 413, description = "The body is larger than `server.max_body_bytes`.", body = ErrorBody),
        (status = 422, description = "A field is invalid (see `fields`).", body = ErrorBody),
        (status = 429, description = "Too many wrong tokens from this address.", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
async fn transition(
    State(s): State<ServerState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<axum::Json<Value>> {
    let user = authenticate(&s, &headers, Role::Operator)?;
    let b: TransitionBody = parse_body(&body)?;
    let Some(to) = parse_state(&b.to) else {
        return Err(ApiError::invalid(vec![(
            "to".into(),
            format!(
                "unknown state {:?}; allowed: acknowledged, confirmed, false_alarm, closed",
                b.to
            ),
        )]));
    };
    if b.comment.len() > 4000 {
        return Err(ApiError::invalid(vec![(
            "comment".into(),
            "at most 4000 bytes".into(),
        )]));
    }
    let st = s.alerts.transition(&id, to, &user.name, b.comment.trim())?;
    Ok(axum::Json(json!(st)))
}

#[utoipa::path(
    post,
    path = "/api/incidents/{id}/comment",
    tag = "incidents",
    params(("id" = String, Path, description = "Incident id.")),
    request_body(content = CommentBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The recorded comment (operator).", body = serde_json::Value, content_type = "application/json"),
        (status = 404, description = "No such incident.", body = ErrorBody),
        (status = 400, description = "The body is missing or not JSON.", body = ErrorBody),
        (status = 401, description = "No token, or an unknown one.", body = ErrorBody),
        (status = 403, description = "The user's role does not allow this.", body = ErrorBody),
        (status = 413, description = "The body is larger than `server.max_body_bytes`.", body = ErrorBody),
        (status = 422, description = "A field is invalid (see `fields`).", body = ErrorBody),
        (status = 429, description = "Too many wrong tokens from this address.", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
async fn comment(
    State(s): State<ServerState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<axum::Json<Value>> {
    let user = authenticate(&s, &headers, Role::Operator)?;
    let b: CommentBody = parse_body(&body)?;
    let c = b.comment.trim();
    if c.is_empty() || c.len() > 4000 {
        return Err(ApiError::invalid(vec![(
            "comment".into(),
            "must be 1 ..= 4000 bytes".into(),
        )]));
    }
    let r = s.alerts.comment(&id, &user.name, c)?;
    Ok(axum::Json(json!(r)))
}

/// A snapshot id from the path; anything that is not one (text, out of range) is "no such
/// snapshot", answered as JSON like every other error.
fn snapshot_id(id: &str) -> ApiResult<i64> {
    id.parse::<i64>().map_err(|_| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no snapshot {id:?}"),
        )
    })
}

#[utoipa::path(
    get,
    path = "/api/snapshots/{id}",
    tag = "incidents",
    params(("id" = i64, Path, description = "Snapshot id.")),
    responses(
        (status = 200, description = "A stored snapshot as JPEG.", body = Vec<u8>, content_type = "image/jpeg"),
        (status = 404, description = "No such snapshot, or its file is gone.", body = ErrorBody),
        (status = 401, description = "A token is needed (`read_access = \"token\"`) or it is unknown.", body = ErrorBody),
        (status = 429, description = "Too many wrong tokens from this address.", body = ErrorBody)
    ),
    security((), ("bearer" = []))
)]
async fn snapshot(State(s): State<ServerState>, Path(id): Path<String>) -> ApiResult<Response> {
    let id = snapshot_id(&id)?;
    let Some(rec) = s.alerts.store().snapshot(id)? else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no snapshot {id}"),
        ));
    };
    let bytes = tokio::fs::read(&rec.path).await.map_err(|e| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "gone",
            format!("snapshot {id} file is missing: {e}"),
        )
    })?;
    Ok(jpeg(bytes))
}

/// The snapshot's frame without drawing (its training frame), for drawing corrected boxes.
#[utoipa::path(
    get,
    path = "/api/snapshots/{id}/frame",
    tag = "incidents",
    params(("id" = i64, Path, description = "Snapshot id.")),
    responses(
        (status = 200, description = "The snapshot's frame without drawing, as JPEG.", body = Vec<u8>, content_type = "image/jpeg"),
        (status = 404, description = "No training frame for this snapshot, or its file is gone.", body = ErrorBody),
        (status = 401, description = "A token is needed or it is unknown.", body = ErrorBody),
        (status = 429, description = "Too many wrong tokens from this address.", body = ErrorBody)
    ),
    security((), ("bearer" = []))
)]
async fn snapshot_frame(
    State(s): State<ServerState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = snapshot_id(&id)?;
    let rec = s.alerts.store().snapshot(id)?;
    let Some(path) = rec.and_then(|r| r.frame_path) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no training frame for snapshot {id}"),
        ));
    };
    let bytes = tokio::fs::read(&path).await.map_err(|e| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "gone",
            format!("training frame of snapshot {id} is missing: {e}"),
        )
    })?;
    Ok(jpeg(bytes))
}

#[utoipa::path(
    get,
    path = "/api/snapshots/{id}/boxes",
    tag = "incidents",
    params(("id" = i64, Path, description = "Snapshot id.")),
    responses(
        (status = 200, description = "The snapshot's boxes: the detector's and the corrected ones.", body = serde_json::Value, content_type = "application/json"),
        (status = 404, description = "No such snapshot.", body = ErrorBody),
        (status = 401, description = "A token is needed or it is unknown.", body = ErrorBody),
        (status = 429, description = "Too many wrong tokens from this address.", body = ErrorBody)
    ),
    security((), ("bearer" = []))
)]
async fn snapshot_boxes(
    State(s): State<ServerState>,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Value>> {
    let id = snapshot_id(&id)?;
    match s.alerts.store().snapshot_boxes(id)? {
        Some(b) => Ok(axum::Json(json!(b))),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no snapshot {id}"),
        )),
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct BoxesBody {
    /// The frame's boxes as they should be.
    #[schema(value_type = Vec<Object>)]
    boxes: Vec<lookout_alerts::snapshot::TrainingBox>,
}

/// An operator marks which boxes are right, removes wrong ones and draws missed ones: the
/// boxes as they should be replace the detector's as the frame's labels.
#[utoipa::path(
    put,
    path = "/api/snapshots/{id}/boxes",
    tag = "incidents",
    params(("id" = i64, Path, description = "Snapshot id.")),
    request_body(content = BoxesBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The snapshot's boxes after the correction (operator).", body = serde_json::Value, content_type = "application/json"),
        (status = 400, description = "The body is missing or not JSON.", body = ErrorBody),
        (status = 401, description = "No token, or an unknown one.", body = ErrorBody),
        (status = 403, description = "The user's role does not allow this.", body = ErrorBody),
        (status = 404, description = "No snapshot with a training frame.", body = ErrorBody),
        (status = 413, description = "The body is larger than `server.max_body_bytes`.", body = ErrorBody),
        (status = 422, description = "A field is invalid (see `fields`).", body = ErrorBody),
        (status = 429, description = "Too many wrong tokens from this address.", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
async fn put_snapshot_boxes(
    State(s): State<ServerState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<axum::Json<Value>> {
    let id = snapshot_id(&id)?;
    let user = authenticate(&s, &headers, Role::Operator)?;
    let b: BoxesBody = parse_body(&body)?;
    if b.boxes.len() > 256 {
        return Err(ApiError::invalid(vec![(
            "boxes".into(),
            "at most 256 boxes".into(),
        )]));
    }
    let errors: Vec<(String, String)> = b
        .boxes
        .iter()
        .enumerate()
        .filter_map(|(i, x)| x.validate().err().map(|e| (format!("boxes[{i}]"), e)))
        .collect();
    if !errors.is_empty() {
        return Err(ApiError::invalid(errors));
    }
    let store = s.alerts.store();
    if !store.correct_snapshot_boxes(id, b.boxes, &user.name, chrono::Utc::now())? {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no snapshot {id} with a training frame"),
        ));
    }
    tracing::info!(snapshot = id, user = %user.name, "Snapshot boxes corrected.");
    match store.snapshot_boxes(id)? {
        Some(b) => Ok(axum::Json(json!(b))),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no snapshot {id}"),
        )),
    }
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct HotspotQuery {
    #[serde(default)]
    hours: Option<f64>,
}

#[utoipa::path(
    get,
    path = "/api/hotspots",
    tag = "map",
    params(HotspotQuery),
    responses(
        (status = 200, description = "Satellite hotspots of the last `hours`.", body = serde_json::Value, content_type = "application/json"),
        (status = 422, description = "A query parameter is invalid (see `fields`).", body = ErrorBody),
        (status = 401, description = "A token is needed (`read_access = \"token\"`) or it is unknown.", body = ErrorBody),
        (status = 429, description = "Too many wrong tokens from this address.", body = ErrorBody)
    ),
    security((), ("bearer" = []))
)]
async fn hotspots(
    State(s): State<ServerState>,
    q: Result<Query<HotspotQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let Query(q) = q.map_err(|e| ApiError::invalid(vec![("query".into(), e.body_text())]))?;
    let hours = q.hours.unwrap_or(72.0);
    if !(0.0..=24.0 * 365.0).contains(&hours) {
        return Err(ApiError::invalid(vec![(
            "hours".into(),
            "must be in 0 ..= 8760".into(),
        )]));
    }
    let since = chrono::Utc::now() - chrono::Duration::milliseconds((hours * 3.6e6) as i64);
    Ok(axum::Json(s.alerts.store().hotspots(since, 5000)?).into_response())
}

#[utoipa::path(
    get,
    path = "/api/geojson",
    tag = "map",
    responses(
        (status = 200, description = "Cameras, incidents and hotspots as a GeoJSON FeatureCollection (RFC 7946).", body = serde_json::Value, content_type = "application/geo+json"),
        (status = 401, description = "A token is needed (`read_access = \"token\"`) or it is unknown.", body = ErrorBody),
        (status = 429, description = "Too many wrong tokens from this address.", body = ErrorBody)
    ),
    security((), ("bearer" = []))
)]
async fn geojson(State(s): State<ServerState>) -> ApiResult<Response> {
    let store = s.alerts.store();
    let f = IncidentFilter {
        limit: Some(500),
        ..Default::default()
    };
    let incidents: Vec<_> = store
        .list_incidents(&f)?
        .into_iter()
        .map(|i| i.incident)
        .collect();
    // The last three days' hotspots, plus those that corroborate an open incident however old
    // (footage replayed "as of" a past date is corroborated by that date's passes).
    let mut hs = store.hotspots(chrono::Utc::now() - chrono::Duration::days(3), 5000)?;
    let mut seen: std::collections::HashSet<_> = hs.iter().map(|h| h.dedup_key()).collect();
    for inc in incidents
        .iter()
        .filter(|i| i.state != lookout_core::IncidentState::Closed)
    {
        for h in &inc.hotspots {
            if hs.len() < 10_000 && seen.insert(h.dedup_key()) {
                hs.push(h.clone());
            }
        }
    }
    // One writer, one schema; each camera once (from fusion's geometry when the engine
    // provides it, else from the config).
    let cameras = match &s.geojson_extra {
        Some(f) => f(),
        None => s
            .config()
            .enabled_cameras()
            .filter_map(|c| {
                let g = c.geo.as_ref()?;
                let position = lookout_core::GeoPoint::new(g.lat, g.lon);
                Some(lookout_core::geojson::MapCamera {
                    id: c.id.clone(),
                    name: c.display_name().to_string(),
                    position,
                    alt_m: Some(g.alt_m),
                    heading_deg: g.heading_deg,
                    hfov_deg: g.hfov(),
                    range_m: g.range_m,
                    fovs: g
                        .hfov()
                        .map(|hfov| {
                            (
                                None,
                                lookout_core::Sector {
                                    camera: c.id.as_str().into(),
                                    origin: position,
                                    bearing_deg: g.heading_deg,
                                    half_width_deg: hfov / 2.0,
                                    range_m: g.range_m,
                                    at: chrono::DateTime::<chrono::Utc>::UNIX_EPOCH,
                                },
                            )
                        })
                        .into_iter()
                        .collect(),
                })
            })
            .collect(),
    };
    let mut fc = lookout_core::geojson::FeatureCollection::new();
    for c in &cameras {
        fc.camera(c);
    }
    for i in &incidents {
        fc.incident(i);
    }
    for h in &hs {
        fc.hotspot(h);
    }
    let fc = fc.to_json();
    Ok(([(header::CONTENT_TYPE, "application/geo+json")], fc).into_response())
}

#[utoipa::path(
    get,
    path = "/api/config",
    tag = "config",
    responses(
        (status = 200, description = "The running configuration (secrets hidden) and the overlay's status.", body = serde_json::Value, content_type = "application/json"),
        (status = 401, description = "A token is needed (`read_access = \"token\"`) or it is unknown.", body = ErrorBody),
        (status = 429, description = "Too many wrong tokens from this address.", body = ErrorBody)
    ),
    security((), ("bearer" = []))
)]
async fn config(State(s): State<ServerState>) -> ApiResult<axum::Json<Value>> {
    let cfg = s.config();
    let mut v = lookout_config::to_json(&cfg);
    let version = s.alerts.store().overlays(1)?.first().map(|o| o.version);
    v["overlay_version"] = json!(version);
    v["overlay"] = json!(s.overlay_status());
    v["cameras_overlay"] = json!(s.cameras_status());
    Ok(axum::Json(v))
}

#[utoipa::path(
    get,
    path = "/api/config/history",
    tag = "config",
    responses(
        (status = 200, description = "The config audit trail, newest first: rules overlay versions, model changes and camera changes (URL passwords redacted).", body = serde_json::Value, content_type = "application/json"),
        (status = 401, description = "A token is needed (`read_access = \"token\"`) or it is unknown.", body = ErrorBody),
        (status = 429, description = "Too many wrong tokens from this address.", body = ErrorBody)
    ),
    security((), ("bearer" = []))
)]
async fn config_history(State(s): State<ServerState>) -> ApiResult<axum::Json<Value>> {
    let mut list = s.alerts.store().overlays(200)?;
    for r in &mut list {
        if r.section == crate::camera_edit::SECTION {
            r.body = crate::camera_edit::shown_body(&r.body);
        }
    }
    Ok(axum::Json(json!(list)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RulesBody {
    /// The whole `[rules]` section, as JSON.
    #[schema(value_type = Object)]
    rules: Value,
    #[serde(default)]
    comment: String,
}

fn apply_rules(
    s: &ServerState,
    user: &User,
    rules: impl FnOnce(&RulesConfig, &RulesConfig) -> RulesConfig,
    comment: &str,
    change: Value,
) -> ApiResult<Value> {
    try_apply_rules(s, user, |r, f| Ok(rules(r, f)), comment, change)
}

fn try_apply_rules(
    s: &ServerState,
    user: &User,
    rules: impl FnOnce(&RulesConfig, &RulesConfig) -> Result<RulesConfig, Vec<(String, String)>>,
    comment: &str,
    change: Value,
) -> ApiResult<Value> {
    if comment.len() > 4000 {
        return Err(ApiError::invalid(vec![(
            "comment".into(),
            "at most 4000 bytes".into(),
        )]));
    }
    let version = s
        .try_change_rules(&user.name, rules, comment.trim(), change)
        .map_err(|e| match e {
            ChangeError::Invalid(fields) => ApiError::invalid(fields),
            ChangeError::Unavailable => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "this engine cannot hot-reload rules",
            ),
            ChangeError::Apply(m) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "apply_failed", m)
            }
            ChangeError::Store(e) => e.into(),
        })?;
    Ok(json!({"version": version, "author": user.name}))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RevertBody {
    #[serde(default)]
    comment: String,
}

/// Drops every API change: a new overlay version with an empty patch (the file's rules
/// run again; the history keeps what was undone).
#[utoipa::path(
    post,
    path = "/api/config/revert",
    tag = "config",
    request_body(content = RevertBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The new overlay version (admin): every API change dropped, the file's rules run.", body = serde_json::Value, content_type = "application/json"),
        (status = 503, description = "This engine cannot hot-reload rules.", body = ErrorBody),
        (status = 400, description = "The body is missing or not JSON.", body = ErrorBody),
        (status = 401, description = "No token, or an unknown one.", body = ErrorBody),
        (status = 403, description = "The user's role does not allow this.", body = ErrorBody),
        (status = 413, description = "The body is larger than `server.max_body_bytes`.", body = ErrorBody),
        (status = 422, description = "A field is invalid (see `fields`).", body = ErrorBody),
        (status = 429, description = "Too many wrong tokens from this address.", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
async fn revert_rules(
    State(s): State<ServerState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<axum::Json<Value>> {
    let user = authenticate(&s, &headers, Role::Admin)?;
    let b: RevertBody = parse_body(&body)?;
    Ok(axum::Json(apply_rules(
        &s,
        &user,
        |_, file| file.clone(),
        &b.comment,
        json!({"kind": "revert"}),
    )?))
}

#[utoipa::path(
    put,
    path = "/api/config/rules",
    tag = "config",
    request_body(content = RulesBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The new overlay version (admin): the whole `[rules]` section replaced.", body = serde_json::Value, content_type = "application/json"),
        (status = 503, description = "This engine cannot hot-reload rules.", body = ErrorBody),
        (status = 400, description = "The body is missing or not JSON.", body = ErrorBody),
        (status = 401, description = "No token, or an unknown one.", body = ErrorBody),
        (status = 403, description = "The user's role does not allow this.", body = ErrorBody),
        (status = 413, description = "The body is larger than `server.max_body_bytes`.", body = ErrorBody),
        (status = 422, description = "A field is invalid (see `fields`).", body = ErrorBody),
        (status = 429, description = "Too many wrong tokens from this address.", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
async fn put_rules(
    State(s): State<ServerState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<axum::Json<Value>> {
    let user = authenticate(&s, &headers, Role::Admin)?;
    let b: RulesBody = parse_body(&body)?;
    let rules: RulesConfig = serde_path_to_error::deserialize(b.rules.clone()).map_err(|e| {
        ApiError::invalid(vec![(format!("rules.{}", e.path()), e.inner().to_string())])
    })?;
    Ok(axum::Json(apply_rules(
        &s,
        &user,
        |_, _| rules,
        &b.comment,
        json!({"kind": "rules"}),
    )?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PatchBody {
    /// A JSON merge patch (RFC 7386) of the running `[rules]`: only the keys it names
    /// change; `null` deletes a key.
    #[schema(value_type = Object)]
    patch: Value,
    #[serde(default)]
    comment: String,
}

/// A partial rules change: the merge patch is applied to the running rules (under the same
/// lock as file reloads), and the result is validated like a whole section.
#[utoipa::path(
    patch,
    path = "/api/config/rules",
    tag = "config",
    request_body(content = PatchBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The new overlay version (admin): a JSON merge patch of the running `[rules]`.", body = serde_json::Value, content_type = "application/json"),
        (status = 503, description = "This engine cannot hot-reload rules.", body = ErrorBody),
        (status = 400, description = "The body is missing or not JSON.", body = ErrorBody),
        (status = 401, description = "No token, or an unknown one.", body = ErrorBody),
        (status = 403, description = "The user's role does not allow this.", body = ErrorBody),
        (status = 413, description = "The body is larger than `server.max_body_bytes`.", body = ErrorBody),
        (status = 422, description = "A field is invalid (see `fields`).", body = ErrorBody),
        (status = 429, description = "Too many wrong tokens from this address.", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
async fn patch_rules(
    State(s): State<ServerState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<axum::Json<Value>> {
    let user = authenticate(&s, &headers, Role::Admin)?;
    let b: PatchBody = parse_body(&body)?;
    if !b.patch.is_object() {
        return Err(ApiError::invalid(vec![(
            "patch".into(),
            "a JSON object (merge patch of [rules])".into(),
        )]));
    }
    let patch = b.patch.clone();
    Ok(axum::Json(try_apply_rules(
        &s,
        &user,
        move |running, _| {
            let v = lookout_config::overlay::patched(
                &lookout_config::overlay::rules_json(running),
                &patch,
            );
            serde_path_to_error::deserialize(v)
                .map_err(|e| vec![(format!("rules.{}", e.path()), e.inner().to_string())])
        },
        &b.comment,
        json!({"kind": "patch", "patch": b.patch}),
    )?))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct CurrentQuery {
    camera: String,
    class: String,
}

#[utoipa::path(
    get,
    path = "/api/tuning/current",
    tag = "tuning",
    params(CurrentQuery),
    responses(
        (status = 200, description = "The effective threshold and persistence of a camera and class.", body = serde_json::Value, content_type = "application/json"),
        (status = 422, description = "A query parameter is invalid (see `fields`).", body = ErrorBody),
        (status = 401, description = "A token is needed (`read_access = \"token\"`) or it is unknown.", body = ErrorBody),
        (status = 429, description = "Too many wrong tokens from this address.", body = ErrorBody)
    ),
    security((), ("bearer" = []))
)]
async fn tuning_current(
    State(s): State<ServerState>,
    q: Result<Query<CurrentQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<axum::Json<Value>> {
    let Query(q) = q.map_err(|e| ApiError::invalid(vec![("query".into(), e.body_text())]))?;
    let cfg = s.config();
    let p = tuning::effective(&cfg.rules, &q.camera, &q.class);
    Ok(axum::Json(
        json!({"camera": q.camera, "class": q.class, "threshold": p.threshold, "persistence": p.persistence}),
    ))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct CurveQuery {
    camera: String,
    class: String,
    k: Option<u32>,
    n: Option<u32>,
}

/// `GET /api/tuning/curve?camera=&class=[&k=&n=]`: alarms/day and event recall at every
/// threshold ([`tuning::curve`]).
#[utoipa::path(
    get,
    path = "/api/tuning/curve",
    tag = "tuning",
    params(CurveQuery),
    responses(
        (status = 200, description = "Alarms per day and event recall at every threshold.", body = serde_json::Value, content_type = "application/json"),
        (status = 422, description = "A query parameter is invalid (see `fields`).", body = ErrorBody),
        (status = 503, description = "The rules replay is not available in this engine.", body = ErrorBody),
        (status = 401, description = "A token is needed (`read_access = \"token\"`) or it is unknown.", body = ErrorBody),
        (status = 429, description = "Too many wrong tokens from this address.", body = ErrorBody)
    ),
    security((), ("bearer" = []))
)]
async fn tuning_curve(
    State(s): State<ServerState>,
    q: Result<Query<CurveQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<axum::Json<Value>> {
    let Query(q) = q.map_err(|e| ApiError::invalid(vec![("query".into(), e.body_text())]))?;
    let persistence = match (q.k, q.n) {
        (Some(k), Some(n)) => Some(lookout_config::rules::Persistence { k, n }),
        (None, None) => None,
        _ => {
            return Err(ApiError::invalid(vec![(
                "k".into(),
                "give k and n together, or neither (the current persistence)".into(),
            )]))
        }
    };
    let req = TuneRequest {
        camera: q.camera,
        class: q.class,
        threshold: 0.5,
        persistence,
        comment: None,
    };
    tuning::check(&req, &s.config()).map_err(ApiError::invalid)?;
    if s.rules.is_none() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the rules replay is not available in this engine",
        ));
    }
    let r = tuning::curve(
        &s,
        &req.camera,
        &req.class,
        req.persistence,
        chrono::Utc::now(),
    )
    .await
    .map_err(ApiError::internal)?;
    Ok(axum::Json(json!(r)))
}

#[utoipa::path(
    post,
    path = "/api/tuning/replay",
    tag = "tuning",
    request_body(content = TuneRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "What a setting would have done over the recorded frame results.", body = serde_json::Value, content_type = "application/json"),
        (status = 400, description = "The body is missing or not JSON.", body = ErrorBody),
        (status = 413, description = "The body is larger than `server.max_body_bytes`.", body = ErrorBody),
        (status = 422, description = "A field is invalid (see `fields`).", body = ErrorBody),
        (status = 503, description = "The rules replay is not available in this engine.", body = ErrorBody),
        (status = 401, description = "A token is needed (`read_access = \"token\"`) or it is unknown.", body = ErrorBody),
        (status = 429, description = "Too many wrong tokens from this address.", body = ErrorBody)
    ),
    security((), ("bearer" = []))
)]
async fn tuning_replay(State(s): State<ServerState>, body: Bytes) -> ApiResult<axum::Json<Value>> {
    let req: TuneRequest = parse_body(&body)?;
    tuning::check(&req, &s.config()).map_err(ApiError::invalid)?;
    if s.rules.is_none() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the rules replay is not available in this engine",
        ));
    }
    let _turn = s.replay_lane.acquire().await.map_err(ApiError::internal)?;
    let st = s.clone();
    let r = tokio::task::spawn_blocking(move || tuning::replay(&st, &req, chrono::Utc::now()))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    Ok(axum::Json(json!(r)))
}

#[utoipa::path(
    post,
    path = "/api/tuning/apply",
    tag = "tuning",
    request_body(content = TuneRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The new overlay version (admin): the setting applied.", body = serde_json::Value, content_type = "application/json"),
        (status = 503, description = "This engine cannot hot-reload rules.", body = ErrorBody),
        (status = 400, description = "The body is missing or not JSON.", body = ErrorBody),
        (status = 401, description = "No token, or an unknown one.", body = ErrorBody),
        (status = 403, description = "The user's role does not allow this.", body = ErrorBody),
        (status = 413, description = "The body is larger than `server.max_body_bytes`.", body = ErrorBody),
        (status = 422, description = "A field is invalid (see `fields`).", body = ErrorBody),
        (status = 429, description = "Too many wrong tokens from this address.", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
async fn tuning_apply(
    State(s): State<ServerState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<axum::Json<Value>> {
    let user = authenticate(&s, &headers, Role::Admin)?;
    let req: TuneRequest = parse_body(&body)?;
    let cfg = s.config();
    tuning::check(&req, &cfg).map_err(ApiError::invalid)?;
    let comment = req.comment.clone().unwrap_or_default();
    let change = json!({"kind": "tune", "camera": req.camera, "class": req.class,
        "threshold": req.threshold, "persistence": req.persistence});
    Ok(axum::Json(apply_rules(
        &s,
        &user,
        |running, _| tuning::with_setting(running, &req),
        &comment,
        change,
    )?))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct MaskQuery {
    camera: String,
    #[serde(default)]
    class: Option<String>,
    #[serde(default)]
    days: Option<f64>,
    #[serde(default)]
    min: Option<usize>,
}

fn unknown_camera(cfg: &lookout_config::Config, camera: &str) -> Option<(String, String)> {
    if cfg.camera(camera).is_some() {
        return None;
    }
    let ids: Vec<&str> = cfg.cameras.iter().map(|c| c.id.as_str()).collect();
    Some((
        "camera".into(),
        format!("unknown camera {camera:?}; configured: {}", ids.join(", ")),
    ))
}

/// Exclusion masks proposed from where false-alarm verdicts cluster on a camera.
#[utoipa::path(
    get,
    path = "/api/tuning/masks",
    tag = "tuning",
    params(MaskQuery),
    responses(
        (status = 200, description = "Exclusion masks proposed from where false-alarm verdicts cluster.", body = serde_json::Value, content_type = "application/json"),
        (status = 422, description = "A query parameter is invalid (see `fields`).", body = ErrorBody),
        (status = 401, description = "A token is needed (`read_access = \"token\"`) or it is unknown.", body = ErrorBody),
        (status = 429, description = "Too many wrong tokens from this address.", body = ErrorBody)
    ),
    security((), ("bearer" = []))
)]
async fn tuning_masks(
    State(s): State<ServerState>,
    q: Result<Query<MaskQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<axum::Json<Value>> {
    let Query(q) = q.map_err(|e| ApiError::invalid(vec![("query".into(), e.body_text())]))?;
    let cfg = s.config();
    let mut errors: Vec<(String, String)> = unknown_camera(&cfg, &q.camera).into_iter().collect();
    if let Some(c) = &q.class {
        if c != "smoke" && c != "fire" {
            errors.push(("class".into(), "allowed: smoke, fire".into()));
        }
    }
    let days = q.days.unwrap_or(90.0);
    if !(days > 0.0 && days <= 3650.0) {
        errors.push(("days".into(), "must be in (0, 3650]".into()));
    }
    let min = q.min.unwrap_or(2);
    if !(1..=1000).contains(&min) {
        errors.push(("min".into(), "must be in 1 ..= 1000".into()));
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid(errors));
    }
    let since = chrono::Utc::now() - chrono::Duration::milliseconds((days * 86_400_000.0) as i64);
    let store = s.alerts.store().clone();
    let camera = q.camera.clone();
    let (mut fa, mut ok) =
        tokio::task::spawn_blocking(move || crate::masks::judged_samples(&store, &camera, since))
            .await
            .map_err(ApiError::internal)??;
    if let Some(c) = &q.class {
        fa.retain(|x| &x.class == c);
        ok.retain(|x| &x.class == c);
    }
    let existing = crate::masks::existing_masks(&cfg.rules, &q.camera);
    let proposals = crate::masks::propose(&fa, &ok, &existing, min);
    Ok(axum::Json(json!({
        "camera": q.camera, "class": q.class, "since": since, "min": min,
        "grid": crate::masks::GRID, "false_alarms": fa, "confirmed": ok,
        "existing": existing, "proposals": proposals,
    })))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct MaskApplyBody {
    camera: String,
    /// `[x, y]` points, 0 to 1 across the image.
    #[schema(value_type = Vec<Vec<f64>>)]
    polygon: Vec<[f64; 2]>,
    #[serde(default)]
    classes: Vec<String>,
    #[serde(default)]
    preset: Option<String>,
    #[serde(default)]
    comment: String,
}

/// Adds an exclusion mask to a camera through the overlay (admin).
#[utoipa::path(
    post,
    path = "/api/tuning/masks/apply",
    tag = "tuning",
    request_body(content = MaskApplyBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The new overlay version (admin): the mask added.", body = serde_json::Value, content_type = "application/json"),
        (status = 503, description = "This engine cannot hot-reload rules.", body = ErrorBody),
        (status = 400, description = "The body is missing or not JSON.", body = ErrorBody),
        (status = 401, description = "No token, or an unknown one.", body = ErrorBody),
        (status = 403, description = "The user's role does not allow this.", body = ErrorBody),
        (status = 413, description = "The body is larger than `server.max_body_bytes`.", body = ErrorBody),
        (status = 422, description = "A field is invalid (see `fields`).", body = ErrorBody),
        (status = 429, description = "Too many wrong tokens from this address.", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
async fn tuning_masks_apply(
    State(s): State<ServerState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<axum::Json<Value>> {
    let user = authenticate(&s, &headers, Role::Admin)?;
    let b: MaskApplyBody = parse_body(&body)?;
    let cfg = s.config();
    let mut errors: Vec<(String, String)> = unknown_camera(&cfg, &b.camera).into_iter().collect();
    if !(3..=64).contains(&b.polygon.len()) {
        errors.push(("polygon".into(), "needs 3 ..= 64 points".into()));
    }
    for (i, p) in b.polygon.iter().enumerate() {
        if !p.iter().all(|v| (0.0..=1.0).contains(v)) {
            errors.push((
                format!("polygon[{i}]"),
                "points are [x, y] in 0 ..= 1 of the image".into(),
            ));
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid(errors));
    }
    let mask = lookout_config::rules::MaskConfig {
        polygon: b.polygon.clone(),
        preset: b.preset.clone(),
        classes: b.classes.clone(),
    };
    let change = json!({"kind": "mask", "camera": b.camera, "polygon": b.polygon,
        "classes": b.classes, "preset": b.preset});
    let add = |running: &RulesConfig, _: &RulesConfig| {
        let mut rules = running.clone();
        rules
            .cameras
            .entry(b.camera.clone())
            .or_default()
            .masks
            .push(mask);
        rules
    };
    Ok(axum::Json(apply_rules(&s, &user, add, &b.comment, change)?))
}

#[utoipa::path(
    get,
    path = "/api/live",
    tag = "engine",
    responses(
        (status = 200, description = "Live updates as Server-Sent Events (one JSON object per `data:` line).", body = String, content_type = "text/event-stream"),
        (status = 401, description = "A token is needed (`read_access = \"token\"`) or it is unknown.", body = ErrorBody),
        (status = 429, description = "Too many wrong tokens from this address.", body = ErrorBody)
    ),
    security((), ("bearer" = []))
)]
async fn live(
    State(s): State<ServerState>,
) -> Sse<impl futures_util::Stream<Item = Result<SseEvent, Infallible>>> {
    let rx = s.alerts.subscribe();
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        let data = match rx.recv().await {
            Ok(u) => serde_json::to_string(&u).unwrap_or_default(),
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                json!({"type": "lagged", "missed": n}).to_string()
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
        };
        Some((Ok(SseEvent::default().data(data)), rx))
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(default, deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct DeadLetterQuery {
    sink: Option<String>,
    limit: Option<u32>,
}

/// `GET /api/outbox/dead-letters[?sink=&limit=]`: deliveries a sink refused, newest first,
/// with the counts per sink.
#[utoipa::path(
    get,
    path = "/api/outbox/dead-letters",
    tag = "outbox",
    params(DeadLetterQuery),
    responses(
        (status = 200, description = "Deliveries a sink refused, newest first, and the counts per sink.", body = serde_json::Value, content_type = "application/json"),
        (status = 422, description = "A query parameter is invalid (see `fields`).", body = ErrorBody),
        (status = 401, description = "A token is needed (`read_access = \"token\"`) or it is unknown.", body = ErrorBody),
        (status = 429, description = "Too many wrong tokens from this address.", body = ErrorBody)
    ),
    security((), ("bearer" = []))
)]
async fn dead_letters(
    State(s): State<ServerState>,
    q: Result<Query<DeadLetterQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<axum::Json<Value>> {
    let Query(q) = q.map_err(|e| ApiError::invalid(vec![("query".into(), e.body_text())]))?;
    let store = s.alerts.store();
    let list = store.dead_letters(q.sink.as_deref(), q.limit.unwrap_or(100).min(1000))?;
    let counts: serde_json::Map<String, Value> = store
        .dead_letter_counts()?
        .into_iter()
        .map(|(k, n)| (k, json!(n)))
        .collect();
    Ok(axum::Json(json!({"dead_letters": list, "counts": counts})))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
struct RetryBody {
    sink: Option<String>,
    keys: Vec<String>,
}

/// `POST /api/outbox/retry {"sink"?, "keys"?}` (operator): puts dead letters back into the
/// outbox; answers how many.
#[utoipa::path(
    post,
    path = "/api/outbox/retry",
    tag = "outbox",
    request_body(content = RetryBody, content_type = "application/json"),
    responses(
        (status = 200, description = "How many dead letters went back to the outbox (operator).", body = serde_json::Value, content_type = "application/json"),
        (status = 400, description = "The body is missing or not JSON.", body = ErrorBody),
        (status = 401, description = "No token, or an unknown one.", body = ErrorBody),
        (status = 403, description = "The user's role does not allow this.", body = ErrorBody),
        (status = 413, description = "The body is larger than `server.max_body_bytes`.", body = ErrorBody),
        (status = 422, description = "A field is invalid (see `fields`).", body = ErrorBody),
        (status = 429, description = "Too many wrong tokens from this address.", body = ErrorBody)
    ),
    security(("bearer" = []))
)]
async fn outbox_retry(
    State(s): State<ServerState>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<axum::Json<Value>> {
    let user = authenticate(&s, &headers, Role::Operator)?;
    let b: RetryBody = if body.is_empty() {
        RetryBody::default()
    } else {
        parse_body(&body)?
    };
    if let Some(sink) = &b.sink {
        if !s.alerts.store().sinks().iter().any(|x| &x.name == sink) {
            return Err(ApiError::invalid(vec![(
                "sink".into(),
                format!("no sink named {sink:?}"),
            )]));
        }
    }
    let n = s.alerts.redrive(b.sink.as_deref(), &b.keys)?;
    tracing::info!(user = %user.name, n, "Dead letters re-driven through the API.");
    Ok(axum::Json(json!({"redriven": n})))
}
