//! Incident clips: the MP4 (with HTTP range requests, so a `<video>` element can seek) and
//! the boxes timeline drawn over it (the frame results recorded during the clip), one per
//! camera of the incident (`?camera=ID`; the list is `/api/incidents/{id}/clips`).

use std::io::SeekFrom;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use lookout_alerts::StoreError;
use lookout_core::ClipInfo;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use utoipa::IntoParams;

use crate::api::{ApiError, ErrorBody};
use crate::ServerState;

/// Largest part served for one range request (a browser asks again for the rest).
const MAX_PART: u64 = 8 << 20;

/// What a `Range` header asks of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// The whole file (no header, several ranges or another unit: RFC 9110 allows
    /// ignoring Range).
    Whole,
    /// Bytes `first..=last`.
    Part(u64, u64),
    /// Nothing the file has (416).
    Unsatisfiable,
}

/// The byte range of a file of `len` bytes a `Range: bytes=...` header asks for.
pub fn parse_range(header: Option<&str>, len: u64) -> ByteRange {
    match range_of(header, len) {
        Ok(None) => ByteRange::Whole,
        Ok(Some((a, b))) => ByteRange::Part(a, b),
        Err(()) => ByteRange::Unsatisfiable,
    }
}

#[allow(clippy::result_unit_err)]
fn range_of(header: Option<&str>, len: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((a, b)) = spec.split_once('-') else {
        return Ok(None);
    };
    let (a, b) = (a.trim(), b.trim());
    let (start, end) = if a.is_empty() {
        // The last `b` bytes.
        let n: u64 = b.parse().map_err(|_| ())?;
        if n == 0 || len == 0 {
            return Err(());
        }
        (len.saturating_sub(n), len - 1)
    } else {
        let start: u64 = a.parse().map_err(|_| ())?;
        let end: u64 = if b.is_empty() {
            len.saturating_sub(1)
        } else {
            b.parse::<u64>().map_err(|_| ())?.min(len.saturating_sub(1))
        };
        (start, end)
    };
    if len == 0 || start >= len || end < start {
        return Err(());
    }
    Ok(Some((start, end)))
}

fn not_found(id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("incident {id:?} has no clip"),
    )
}

/// `?camera=ID`: which camera's clip of a multi-camera incident.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ClipQuery {
    /// The camera whose clip to serve (see `/api/incidents/{id}/clips`); without it, the
    /// clip of the camera that saw the incident first.
    #[serde(default)]
    camera: Option<String>,
}

type QueryResult = Result<Query<ClipQuery>, axum::extract::rejection::QueryRejection>;

fn camera_of(q: QueryResult) -> Result<Option<String>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::invalid(vec![("query".into(), e.body_text())]))?;
    Ok(q.camera)
}

fn no_camera_clip(id: &str, camera: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("incident {id:?} has no clip of camera {camera:?}"),
    )
}

/// The clip's description, when the incident exists and its clip (of `camera`, else the
/// first camera's) has been written.
fn clip_info(
    s: &ServerState,
    id: &str,
    camera: Option<&str>,
) -> Result<(std::path::PathBuf, ClipInfo), ApiError> {
    if s.alerts.store().incident(id)?.is_none() {
        return Err(StoreError::NotFound(id.to_string()).into());
    }
    let clips = s.alerts.clips_of(id);
    match camera {
        None => clips.into_iter().next().ok_or_else(|| not_found(id)),
        Some(c) => clips
            .into_iter()
            .find(|(_, i)| i.camera == c)
            .ok_or_else(|| no_camera_clip(id, c)),
    }
}

/// Every written clip of the incident, one per camera (a multi-camera incident has
/// several): `{"clips": [{incident, camera, at, start, duration_s, codec, remuxed, packets,
/// bytes}]}`, the camera that saw it first first. Empty while none is written.
#[utoipa::path(
    get,
    path = "/api/incidents/{id}/clips",
    tag = "incidents",
    params(("id" = String, Path, description = "Incident id.")),
    responses(
        (status = 200, description = "The incident's clips, one per camera.", body = serde_json::Value, content_type = "application/json"),
        (status = 404, description = "No such incident.", body = ErrorBody),
        (status = 401, description = "A token is needed (`read_access = \"token\"`) or it is unknown.", body = ErrorBody),
        (status = 429, description = "Too many wrong tokens from this address.", body = ErrorBody)
    ),
    security((), ("bearer" = []))
)]
pub(crate) async fn clips(
    State(s): State<ServerState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    if s.alerts.store().incident(&id)?.is_none() {
        return Err(StoreError::NotFound(id).into());
    }
    let clips: Vec<ClipInfo> = s.alerts.clips_of(&id).into_iter().map(|(_, i)| i).collect();
    Ok(axum::Json(serde_json::json!({ "clips": clips })).into_response())
}

/// The incident's clip as MP4 (H.264 or H.265 as the camera sent it, or re-encoded H.264;
/// see its `/boxes` answer). Honours one `Range: bytes=a-b` (206 Partial Content).
#[utoipa::path(
    get,
    path = "/api/incidents/{id}/clip",
    tag = "incidents",
    params(("id" = String, Path, description = "Incident id."), ClipQuery),
    responses(
        (status = 200, description = "The clip, as MP4.", body = Vec<u8>, content_type = "video/mp4"),
        (status = 206, description = "The requested byte range of the clip.", body = Vec<u8>, content_type = "video/mp4"),
        (status = 404, description = "No such incident, or it has no clip (of that camera) yet.", body = ErrorBody),
        (status = 416, description = "The Range header asks for bytes the clip does not have.", body = ErrorBody),
        (status = 422, description = "A query parameter is invalid (see `fields`).", body = ErrorBody),
        (status = 401, description = "A token is needed (`read_access = \"token\"`) or it is unknown.", body = ErrorBody),
        (status = 429, description = "Too many wrong tokens from this address.", body = ErrorBody)
    ),
    security((), ("bearer" = []))
)]
pub(crate) async fn clip(
    State(s): State<ServerState>,
    Path(id): Path<String>,
    q: QueryResult,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let camera = camera_of(q)?;
    let (path, _) = clip_info(&s, &id, camera.as_deref())?;
    let mut file = tokio::fs::File::open(&path)
        .await
        .map_err(|_| not_found(&id))?;
    let len = file.metadata().await.map_err(|_| not_found(&id))?.len();
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let part = match parse_range(range, len) {
        ByteRange::Whole => None,
        ByteRange::Part(a, b) => Some((a, b)),
        ByteRange::Unsatisfiable => {
            let mut r = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range_not_satisfiable",
                format!("the clip has {len} bytes"),
            )
            .into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(r);
        }
    };
    let (status, start, end) = match part {
        Some((a, b)) => (StatusCode::PARTIAL_CONTENT, a, b.min(a + MAX_PART - 1)),
        None => (StatusCode::OK, 0, len.saturating_sub(1)),
    };
    let n = if len == 0 { 0 } else { end - start + 1 };
    let mut buf = vec![0u8; n as usize];
    file.seek(SeekFrom::Start(start))
        .await
        .map_err(ApiError::internal)?;
    file.read_exact(&mut buf)
        .await
        .map_err(ApiError::internal)?;
    let mut r = Response::new(Body::from(buf));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("video/mp4"));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if status == StatusCode::PARTIAL_CONTENT {
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{len}")) {
            h.insert(header::CONTENT_RANGE, v);
        }
    }
    Ok(r)
}

/// One box of a frame of the timeline.
#[derive(Serialize)]
struct TimelineBox {
    class: String,
    score: f32,
    x0: f32,
    y0: f32,
    x1: f32,
    y1: f32,
}

/// One analysed frame during the clip.
#[derive(Serialize)]
struct TimelineFrame {
    /// Seconds into the clip.
    t: f64,
    model: String,
    width: u32,
    height: u32,
    boxes: Vec<TimelineBox>,
}

/// The clip's description and the boxes of every frame analysed during it, in clip time:
/// `{"clip": {camera, start, duration_s, codec, remuxed, ...}, "frames": [{t, model, width,
/// height, boxes: [{class, score, x0, y0, x1, y1}]}]}` (boxes in analysis-frame pixels,
/// every recorded detection, low scores included).
#[utoipa::path(
    get,
    path = "/api/incidents/{id}/clip/boxes",
    tag = "incidents",
    params(("id" = String, Path, description = "Incident id."), ClipQuery),
    responses(
        (status = 200, description = "The clip's description and its boxes timeline.", body = serde_json::Value, content_type = "application/json"),
        (status = 404, description = "No such incident, or it has no clip (of that camera) yet.", body = ErrorBody),
        (status = 422, description = "A query parameter is invalid (see `fields`).", body = ErrorBody),
        (status = 401, description = "A token is needed (`read_access = \"token\"`) or it is unknown.", body = ErrorBody),
        (status = 429, description = "Too many wrong tokens from this address.", body = ErrorBody)
    ),
    security((), ("bearer" = []))
)]
pub(crate) async fn clip_boxes(
    State(s): State<ServerState>,
    Path(id): Path<String>,
    q: QueryResult,
) -> Result<Response, ApiError> {
    let camera = camera_of(q)?;
    let (_, info) = clip_info(&s, &id, camera.as_deref())?;
    let until = info.start + chrono::Duration::milliseconds((info.duration_s * 1000.0) as i64 + 1);
    let results = s
        .alerts
        .store()
        .frame_results(&info.camera, info.start, until)?;
    let frames: Vec<TimelineFrame> = results
        .into_iter()
        .map(|fr| TimelineFrame {
            t: (fr.captured_at - info.start).num_milliseconds() as f64 / 1000.0,
            model: fr.model.to_string(),
            width: fr.width,
            height: fr.height,
            boxes: fr
                .detections
                .iter()
                .map(|d| TimelineBox {
                    class: d.class.to_string(),
                    score: d.score,
                    x0: d.bbox.x1,
                    y0: d.bbox.y1,
                    x1: d.bbox.x2,
                    y1: d.bbox.y2,
                })
                .collect(),
        })
        .collect();
    Ok(axum::Json(serde_json::json!({ "clip": info, "frames": frames })).into_response())
}

#[cfg(test)]
mod tests {
    use super::range_of as parse_range;

    #[test]
    fn ranges() {
        assert_eq!(parse_range(None, 100), Ok(None));
        assert_eq!(parse_range(Some("bytes=0-"), 100), Ok(Some((0, 99))));
        assert_eq!(parse_range(Some("bytes=10-19"), 100), Ok(Some((10, 19))));
        assert_eq!(parse_range(Some("bytes=90-200"), 100), Ok(Some((90, 99))));
        assert_eq!(parse_range(Some("bytes=-10"), 100), Ok(Some((90, 99))));
        assert_eq!(parse_range(Some("bytes=100-"), 100), Err(()));
        assert_eq!(parse_range(Some("bytes=5-2"), 100), Err(()));
        assert_eq!(parse_range(Some("bytes=x-2"), 100), Err(()));
        assert_eq!(parse_range(Some("bytes=0-1,5-6"), 100), Ok(None));
        assert_eq!(parse_range(Some("items=0-1"), 100), Ok(None));
    }
}
