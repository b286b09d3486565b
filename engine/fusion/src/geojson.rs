//! GeoJSON for the map: cameras, fields of view, incidents with their uncertainty,
//! bearings and hotspots, as one FeatureCollection. Coordinates are `[lon, lat]`.
//! Every feature has a `layer` property: `camera`, `fov`, `incident`, `uncertainty`,
//! `bearing`, `hotspot`.

use lookout_config::Config;
use lookout_core::{GeoPoint, Hotspot, Incident, Sector, UncertaintyEllipse};
use serde_json::{json, Value};

use crate::camera::CameraGeometry;

fn pt(p: &GeoPoint) -> Value {
    json!([p.lon, p.lat])
}

fn feature(geometry: Value, properties: Value) -> Value {
    json!({ "type": "Feature", "geometry": geometry, "properties": properties })
}

/// A cone as a closed polygon ring (origin, arc at range, origin).
pub fn sector_ring(s: &Sector) -> Vec<Value> {
    let hw = s.half_width_deg.clamp(0.0, 180.0);
    let steps = ((2.0 * hw) / 2.0).ceil().clamp(2.0, 90.0) as usize;
    let mut ring = Vec::with_capacity(steps + 3);
    let full = hw >= 180.0;
    if !full {
        ring.push(pt(&s.origin));
    }
    for k in 0..=steps {
        let b = s.bearing_deg - hw + 2.0 * hw * k as f64 / steps as f64;
        ring.push(pt(&s.origin.destination(b, s.range_m)));
    }
    ring.push(ring[0].clone());
    ring
}

/// An uncertainty ellipse as a closed polygon ring.
pub fn ellipse_ring(c: &GeoPoint, e: &UncertaintyEllipse) -> Vec<Value> {
    let mut ring = Vec::with_capacity(37);
    for k in 0..=36 {
        let t = (k as f64 * 10.0).to_radians();
        let (a, b) = (e.semi_major_m * t.cos(), e.semi_minor_m * t.sin());
        let r = (a * a + b * b).sqrt();
        let ang = e.orientation_deg + b.atan2(a).to_degrees();
        ring.push(pt(&c.destination(ang, r)));
    }
    ring
}

/// The map as a FeatureCollection.
pub fn geojson(cfg: &Config, incidents: &[Incident], hotspots: &[Hotspot]) -> Value {
    let mut features = Vec::new();
    for c in cfg.enabled_cameras() {
        let Ok(Some(g)) = CameraGeometry::from_config(c) else {
            continue;
        };
        features.push(feature(
            json!({ "type": "Point", "coordinates": pt(&g.position) }),
            json!({
                "layer": "camera",
                "camera": g.id.as_ref(),
                "name": g.name,
                "alt_m": g.alt_m,
                "heading_deg": g.base.heading_deg,
                "hfov_deg": g.base.hfov_deg,
                "range_m": g.range_m,
            }),
        ));
        for (preset, s) in g.fov_sectors(chrono::DateTime::<chrono::Utc>::default()) {
            features.push(feature(
                json!({ "type": "Polygon", "coordinates": [sector_ring(&s)] }),
                json!({
                    "layer": "fov",
                    "camera": g.id.as_ref(),
                    "preset": preset,
                    "heading_deg": s.bearing_deg,
                    "hfov_deg": 2.0 * s.half_width_deg,
                    "range_m": s.range_m,
                }),
            ));
        }
    }
    for inc in incidents {
        let common = json!({
            "incident": inc.id,
            "kind": inc.kind,
            "confidence": inc.confidence,
            "severity": inc.severity,
            "state": inc.state,
            "revision": inc.revision,
            "first_seen": inc.first_seen,
            "last_seen": inc.last_seen,
            "cameras": inc.cameras.iter().map(|c| c.as_ref()).collect::<Vec<_>>(),
            "hotspots": inc.hotspots.len(),
        });
        if let Some(loc) = &inc.location {
            let mut props = common.clone();
            props["layer"] = json!("incident");
            props["method"] = json!(loc.method);
            props["ellipse"] = json!(loc.ellipse);
            features.push(feature(
                json!({ "type": "Point", "coordinates": pt(&loc.point) }),
                props,
            ));
            if let Some(e) = &loc.ellipse {
                features.push(feature(
                    json!({ "type": "Polygon", "coordinates": [ellipse_ring(&loc.point, e)] }),
                    json!({ "layer": "uncertainty", "incident": inc.id, "method": loc.method }),
                ));
            }
        }
        for s in &inc.sectors {
            let end = s.origin.destination(s.bearing_deg, s.range_m);
            features.push(feature(
                json!({ "type": "LineString", "coordinates": [pt(&s.origin), pt(&end)] }),
                json!({
                    "layer": "bearing",
                    "incident": inc.id,
                    "camera": s.camera.as_ref(),
                    "bearing_deg": s.bearing_deg,
                    "half_width_deg": s.half_width_deg,
                    "at": s.at,
                }),
            ));
        }
    }
    for h in hotspots {
        features.push(feature(
            json!({ "type": "Point", "coordinates": pt(&h.location) }),
            json!({
                "layer": "hotspot",
                "source": h.source,
                "acquired_at": h.acquired_at,
                "confidence": h.confidence,
                "frp": h.frp,
                "scan_km": h.scan_km,
                "track_km": h.track_km,
                "type": h.fire_type,
            }),
        ));
    }
    json!({ "type": "FeatureCollection", "features": features })
}
