//! The map's cameras from the configuration ([`map_cameras`]: position, heading, fields of
//! view per PTZ preset) and [`geojson()`], the whole map as one FeatureCollection, written
//! by the one GeoJSON writer ([`lookout_core::geojson`]).

use lookout_config::Config;
use lookout_core::geojson::{FeatureCollection, MapCamera};
use lookout_core::{Hotspot, Incident};
use serde_json::Value;

use crate::camera::CameraGeometry;

/// Every enabled camera with a `geo` position, with its fields of view.
pub fn map_cameras(cfg: &Config) -> Vec<MapCamera> {
    cfg.enabled_cameras()
        .filter_map(|c| {
            let Ok(Some(g)) = CameraGeometry::from_config(c) else {
                return None;
            };
            Some(MapCamera {
                id: g.id.to_string(),
                name: g.name.clone(),
                position: g.position,
                alt_m: Some(g.alt_m),
                heading_deg: g.base.heading_deg,
                hfov_deg: Some(g.base.hfov_deg),
                range_m: g.range_m,
                fovs: g.fov_sectors(chrono::DateTime::<chrono::Utc>::default()),
            })
        })
        .collect()
}

/// The map as a FeatureCollection: cameras and fields of view, incidents (with uncertainty
/// and bearings), hotspots.
pub fn geojson(cfg: &Config, incidents: &[Incident], hotspots: &[Hotspot]) -> Value {
    let cams = map_cameras(cfg);
    let mut fc = FeatureCollection::new();
    for c in &cams {
        fc.camera(c);
    }
    for i in incidents {
        fc.incident(i);
    }
    for h in hotspots {
        fc.hotspot(h);
    }
    fc.to_value()
}
