//! The map's parts the engine serves: Leaflet (vendored from the npm registry at setup time
//! and embedded at build time, see `build.rs`) under `/vendor/leaflet/`, the basemap
//! settings the UI reads (`/api/map`, from `[server.map]`), and the tiles of a local
//! MBTiles file (`/api/tiles/{z}/{x}/{y}`: SQLite, TMS rows flipped to XYZ, PNG, JPEG or
//! WebP by their bytes, 404 for a tile the file does not hold) or PMTiles archive
//! ([`crate::pmtiles`], opened once per file and kept open; an archive that cannot be used
//! is logged at start naming the file, and the map falls back to the offline basemap).

use std::collections::HashMap;
use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::api::ApiError;
use crate::pmtiles::Archive;
use crate::ServerState;

include!(concat!(env!("OUT_DIR"), "/leaflet.rs"));
include!(concat!(env!("OUT_DIR"), "/coastlines.rs"));

/// Errors reading an MBTiles file.
#[derive(Debug, thiserror::Error)]
pub enum MbtilesError {
    /// The file cannot be opened or queried (the message names it).
    #[error("{path}: {source}")]
    Sqlite {
        /// The MBTiles file.
        path: PathBuf,
        /// Cause.
        source: rusqlite::Error,
    },
}

/// Opens an MBTiles file read-only.
fn open(path: &FsPath) -> Result<rusqlite::Connection, MbtilesError> {
    rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|source| MbtilesError::Sqlite {
        path: path.to_path_buf(),
        source,
    })
}

/// The tile at XYZ `z/x/y` (MBTiles stores TMS rows: `row = 2^z - 1 - y`), `None` when the
/// file has none there.
pub fn read_tile(path: &FsPath, z: u32, x: u32, y: u32) -> Result<Option<Vec<u8>>, MbtilesError> {
    if z > 30 || x >= (1 << z) || y >= (1 << z) {
        return Ok(None);
    }
    let row = (1u32 << z) - 1 - y;
    let conn = open(path)?;
    let r = conn.query_row(
        "SELECT tile_data FROM tiles WHERE zoom_level = ?1 AND tile_column = ?2 AND tile_row = ?3",
        (z, x, row),
        |r| r.get::<_, Vec<u8>>(0),
    );
    match r {
        Ok(b) => Ok(Some(b)),
        Err(rusqlite::Error::QueryReturnedNoRows) => Ok(None),
        Err(source) => Err(MbtilesError::Sqlite {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// The `metadata` table of an MBTiles file (name → value).
pub fn read_metadata(path: &FsPath) -> Result<Vec<(String, String)>, MbtilesError> {
    let conn = open(path)?;
    let err = |source| MbtilesError::Sqlite {
        path: path.to_path_buf(),
        source,
    };
    let mut st = conn
        .prepare("SELECT name, value FROM metadata")
        .map_err(err)?;
    let rows = st
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .map_err(err)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(err)
}

/// An opened PMTiles archive, or why it cannot be used.
pub type Opened = Result<Arc<Archive>, Arc<crate::pmtiles::PmtilesError>>;

/// Archives by path, with the file's length and modification time when opened: a file
/// replaced on disk is opened again.
type ArchiveCache = HashMap<PathBuf, (Option<(u64, std::time::SystemTime)>, Opened)>;
static ARCHIVES: LazyLock<Mutex<ArchiveCache>> = LazyLock::new(Default::default);

fn identity(path: &FsPath) -> Option<(u64, std::time::SystemTime)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.len(), m.modified().ok()?))
}

/// The PMTiles archive at `path`: opened once (header, root directory, metadata) and
/// shared; opened again when the file changes. Blocking (file reads).
pub fn pmtiles(path: &FsPath) -> Opened {
    let id = identity(path);
    let mut cache = ARCHIVES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((seen, opened)) = cache.get(path) {
        if *seen == id {
            return opened.clone();
        }
    }
    let opened = Archive::open(path).map(Arc::new).map_err(Arc::new);
    cache.insert(path.to_path_buf(), (id, opened.clone()));
    opened
}

/// Opens `server.map.pmtiles` when the server starts: an archive that cannot be used is
/// logged (naming the file and why); the map then falls back to the offline basemap and
/// everything else runs.
pub fn open_configured(cfg: &lookout_config::Config) {
    let Some(file) = &cfg.server.map.pmtiles else {
        return;
    };
    match pmtiles(&cfg.resolve_path(file)) {
        Ok(a) => tracing::info!(
            file = %a.path().display(),
            format = a.header.tile_type.name(),
            min_zoom = a.header.min_zoom,
            max_zoom = a.header.max_zoom,
            "PMTiles basemap opened."
        ),
        Err(e) => tracing::error!(
            "server.map.pmtiles: {e}; the map shows the offline basemap (coastlines and graticule) instead"
        ),
    }
}

/// The content type of a tile, from its first bytes.
pub fn tile_content_type(b: &[u8]) -> &'static str {
    if b.starts_with(b"\x89PNG\r\n\x1a\n") {
        "image/png"
    } else if b.starts_with(&[0xff, 0xd8, 0xff]) {
        "image/jpeg"
    } else if b.len() >= 12 && &b[..4] == b"RIFF" && &b[8..12] == b"WEBP" {
        "image/webp"
    } else {
        "application/octet-stream"
    }
}

/// `GET /vendor/leaflet/{*file}`: Leaflet's script, stylesheet and images (public, like
/// the page); 503 naming the fix when this build has no Leaflet.
pub async fn vendor(Path(file): Path<String>) -> Response {
    vendored(LEAFLET_FILES, LEAFLET_MISSING, &file)
}

/// `GET /vendor/coastlines/{*file}`: the offline basemap's land polygons (Natural Earth
/// 1:50m via world-atlas, TopoJSON), topojson-client and their licences (public, like the
/// page); 503 naming the fix when this build has none.
pub async fn coastlines(Path(file): Path<String>) -> Response {
    vendored(COASTLINES_FILES, COASTLINES_MISSING, &file)
}

fn vendored(files: &[(&str, &'static [u8])], missing: Option<&str>, file: &str) -> Response {
    if let Some(why) = missing {
        return ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", why).into_response();
    }
    let Some((_, bytes)) = files.iter().find(|(f, _)| *f == file) else {
        return ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such file").into_response();
    };
    let ct = match file.rsplit('.').next() {
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json",
        Some("png") => "image/png",
        _ => "text/plain; charset=utf-8",
    };
    (
        [
            (header::CONTENT_TYPE, ct),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        *bytes,
    )
        .into_response()
}

/// `GET /api/map`: the basemap the UI draws: `{"basemap": "url" | "mbtiles" | "pmtiles" |
/// "none", "tile_url", "attribution", "min_zoom", "max_zoom", "bounds", "format", "error",
/// "leaflet"}` (MBTiles zooms, bounds and attribution from the file's metadata, PMTiles'
/// from its header and metadata; `error`: why a configured PMTiles archive is not used),
/// and with `"none"` the embedded coastlines' versions (`"coastlines"`).
#[utoipa::path(
    get,
    path = "/api/map",
    tag = "map",
    responses(
        (status = 200, description = "The basemap the UI draws.", body = serde_json::Value, content_type = "application/json"),
        (status = 401, description = "A token is needed or it is unknown.", body = crate::api::ErrorBody),
        (status = 429, description = "Too many wrong tokens from this address.", body = crate::api::ErrorBody)
    ),
    security((), ("bearer" = []))
)]
pub async fn map_info(State(s): State<ServerState>) -> Result<axum::Json<Value>, ApiError> {
    let cfg = s.config();
    let m = &cfg.server.map;
    let leaflet = json!({"version": LEAFLET_VERSION, "missing": LEAFLET_MISSING});
    let coastlines = json!({
        "world_atlas": WORLD_ATLAS_VERSION,
        "topojson_client": TOPOJSON_CLIENT_VERSION,
        "missing": COASTLINES_MISSING,
    });
    if let Some(url) = &m.tile_url {
        return Ok(axum::Json(json!({
            "basemap": "url", "tile_url": url, "attribution": m.attribution,
            "min_zoom": 0, "max_zoom": 19, "bounds": null, "format": null, "error": null,
            "leaflet": leaflet,
        })));
    }
    let mut error = None;
    if let Some(file) = &m.pmtiles {
        let path = cfg.resolve_path(file);
        let opened = tokio::task::spawn_blocking(move || pmtiles(&path))
            .await
            .map_err(ApiError::internal)?;
        match opened {
            Ok(a) => {
                let h = &a.header;
                return Ok(axum::Json(json!({
                    "basemap": "pmtiles",
                    "tile_url": "/api/tiles/{z}/{x}/{y}",
                    "attribution": m.attribution.as_deref().or(a.attribution.as_deref()),
                    "min_zoom": h.min_zoom,
                    "max_zoom": h.max_zoom,
                    "bounds": h.bounds,
                    "format": h.tile_type.name(),
                    "error": null,
                    "leaflet": leaflet,
                })));
            }
            Err(e) => error = Some(format!("server.map.pmtiles: {e}")),
        }
    }
    let Some(file) = m.mbtiles.as_ref().filter(|_| m.pmtiles.is_none()) else {
        return Ok(axum::Json(json!({
            "basemap": "none", "tile_url": null, "attribution": m.attribution,
            "min_zoom": 0, "max_zoom": 19, "bounds": null, "format": null, "error": error,
            "leaflet": leaflet, "coastlines": coastlines,
        })));
    };
    let path = cfg.resolve_path(file);
    let meta = tokio::task::spawn_blocking(move || read_metadata(&path))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?;
    let get = |k: &str| meta.iter().find(|(n, _)| n == k).map(|(_, v)| v.trim());
    let zoom = |k: &str| {
        get(k)
            .and_then(|v| v.parse::<u32>().ok())
            .filter(|z| *z <= 30)
    };
    let bounds: Option<Vec<f64>> = get("bounds")
        .map(|b| b.split(',').filter_map(|v| v.trim().parse().ok()).collect())
        .filter(|b: &Vec<f64>| b.len() == 4);
    Ok(axum::Json(json!({
        "basemap": "mbtiles",
        "tile_url": "/api/tiles/{z}/{x}/{y}",
        "attribution": m.attribution.as_deref().or(get("attribution")),
        "min_zoom": zoom("minzoom").unwrap_or(0),
        "max_zoom": zoom("maxzoom").unwrap_or(19),
        "bounds": bounds,
        "format": get("format"),
        "error": null,
        "leaflet": leaflet,
    })))
}

/// `GET /api/tiles/{z}/{x}/{y}`: a tile of `server.map.mbtiles` or `server.map.pmtiles`.
#[utoipa::path(
    get,
    path = "/api/tiles/{z}/{x}/{y}",
    tag = "map",
    params(
        ("z" = String, Path, description = "Zoom level."),
        ("x" = String, Path, description = "Tile column."),
        ("y" = String, Path, description = "Tile row (XYZ scheme).")
    ),
    responses(
        (status = 200, description = "The tile (PNG, JPEG, WebP or gzipped vector tile).", body = Vec<u8>, content_type = "application/octet-stream"),
        (status = 404, description = "No MBTiles or usable PMTiles file configured, or no such tile.", body = crate::api::ErrorBody),
        (status = 401, description = "A token is needed or it is unknown.", body = crate::api::ErrorBody),
        (status = 429, description = "Too many wrong tokens from this address.", body = crate::api::ErrorBody)
    ),
    security((), ("bearer" = []))
)]
pub async fn tile(
    State(s): State<ServerState>,
    Path((z, x, y)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let cfg = s.config();
    let no_tile = || ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such tile");
    if let Some(file) = &cfg.server.map.pmtiles {
        let (Ok(z), Ok(x), Ok(y)) = (z.parse::<u8>(), x.parse::<u32>(), y.parse::<u32>()) else {
            return Err(no_tile());
        };
        let path = cfg.resolve_path(file);
        let (t, ct) = tokio::task::spawn_blocking(move || {
            let a = pmtiles(&path).map_err(|e| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    format!("no usable PMTiles basemap: {e}"),
                )
            })?;
            let t = a.tile(z, x, y).map_err(ApiError::internal)?;
            Ok::<_, ApiError>((t, a.header.tile_type.content_type()))
        })
        .await
        .map_err(ApiError::internal)??;
        let t = t.ok_or_else(no_tile)?;
        return Ok((
            [
                (header::CONTENT_TYPE, ct),
                (header::CACHE_CONTROL, "private, max-age=3600"),
            ],
            t,
        )
            .into_response());
    }
    let Some(file) = &cfg.server.map.mbtiles else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no MBTiles or PMTiles file is configured (server.map.mbtiles, server.map.pmtiles)",
        ));
    };
    let (Ok(z), Ok(x), Ok(y)) = (z.parse::<u32>(), x.parse::<u32>(), y.parse::<u32>()) else {
        return Err(no_tile());
    };
    let path = cfg.resolve_path(file);
    let t = tokio::task::spawn_blocking(move || read_tile(&path, z, x, y))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)?
        .ok_or_else(no_tile)?;
    Ok((
        [
            (header::CONTENT_TYPE, tile_content_type(&t)),
            (header::CACHE_CONTROL, "private, max-age=3600"),
        ],
        t,
    )
        .into_response())
}
