//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use lookout_core::{BBox, Event, EventKind, EventPhase, GeoPoint, UtcTime};
use lookout_fusion::Fusion;

/// `$LOOKOUT_SHARED`, or the checkout's sibling `shared` directory.
pub fn shared() -> PathBuf {
    std::env::var("LOOKOUT_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared")))
}

pub fn hotspots_file(name: &str) -> PathBuf {
    shared().join("hotspots").join(name)
}

pub fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../samples")
}

pub const RHODES: &str = "firms_viirs_snpp_archive_rhodes_2023-07.csv";

/// Centroid of the 198 pixels of the 2023-07-22 11:28 UTC pass (mean lat, mean lon).
pub const CENTROID: GeoPoint = GeoPoint {
    lat: 36.11511409,
    lon: 27.97596182,
};

pub fn rhodes_config() -> lookout_config::Config {
    lookout_config::load(&samples().join("fusion/rhodes.toml"))
        .unwrap_or_else(|e| panic!("samples/fusion/rhodes.toml: {e}"))
}

pub fn t(d: u32, h: u32, m: u32) -> UtcTime {
    Utc.with_ymd_and_hms(2023, 7, d, h, m, 0).unwrap()
}

/// A fire-like event whose box centre lies on `azimuth` for `camera` at `preset`.
#[allow(clippy::too_many_arguments)]
pub fn aimed_event(
    f: &Fusion,
    id: &str,
    camera: &str,
    preset: Option<&str>,
    azimuth: f64,
    first: UtcTime,
    last: UtcTime,
    phase: EventPhase,
) -> Event {
    let g = f.camera(camera).expect("camera geometry");
    let view = g.view(preset).expect("view");
    let (px, py) = g
        .pixel_for_azimuth(&view, azimuth, 0.0, 1920.0, 1080.0)
        .expect("azimuth in view");
    Event {
        id: id.to_string(),
        camera: Arc::from(camera),
        kind: EventKind::Smoke,
        phase,
        track: Some(1),
        zone: None,
        preset: preset.map(Arc::from),
        best_score: 0.8,
        first_seen: first,
        last_seen: last,
        bbox: Some(BBox::from_cxcywh(px as f32, py as f32, 40.0, 60.0)),
        frame_size: Some((1920, 1080)),
        snapshot: None,
        count: None,
        detail: String::new(),
    }
}

pub fn personnel(
    id: &str,
    camera: &str,
    kind: EventKind,
    zone: Option<&str>,
    phase: EventPhase,
    first: UtcTime,
    last: UtcTime,
) -> Event {
    Event {
        id: id.to_string(),
        camera: Arc::from(camera),
        kind,
        phase,
        track: None,
        zone: zone.map(Arc::from),
        preset: None,
        best_score: 0.0,
        first_seen: first,
        last_seen: last,
        bbox: None,
        frame_size: None,
        snapshot: None,
        count: None,
        detail: format!("{kind} in {zone:?}"),
    }
}
