//! The one GeoJSON (RFC 7946) writer: cameras, their fields of view, incidents with their
//! uncertainty and bearings, and satellite hotspots, with one property schema. The map
//! endpoint (`/api/geojson`), `lookout geojson` and the `geojson` sink all write through
//! [`FeatureCollection`] (the sink through [`incident_feature`]).
//!
//! * Coordinates are `[lon, lat]` (WGS 84).
//! * Every polygon ring is closed and its exterior ring counter-clockwise (§3.1.6):
//!   [`Geometry::polygon`] closes and orients whatever ring it is given.
//! * Every feature has a stable `id` and a collection never holds two features with the same
//!   `id` (a camera listed by two callers appears once).
//! * `properties.feature` names the kind of feature; the other properties per kind are
//!   documented in configs/README.md ("GeoJSON").

use std::collections::HashSet;

use serde::Serialize;

use crate::geo::{ellipse_ring, ring_signed_area2, sector_ring};
use crate::{
    CameraId, GeoPoint, Hotspot, HotspotConfidence, HotspotSource, Incident, IncidentConfidence,
    IncidentKind, IncidentState, LocationMethod, Sector, Severity, UncertaintyEllipse, UtcTime,
};

/// A GeoJSON geometry.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type")]
pub enum Geometry {
    /// One position.
    Point {
        /// `[lon, lat]`.
        coordinates: [f64; 2],
    },
    /// A line.
    LineString {
        /// Positions `[lon, lat]`.
        coordinates: Vec<[f64; 2]>,
    },
    /// A polygon with only an exterior ring (closed, counter-clockwise).
    Polygon {
        /// `[exterior ring]`.
        coordinates: Vec<Vec<[f64; 2]>>,
    },
    /// Several polygons that may overlap (a `MultiPolygon` must not), e.g. the bearing
    /// cones of several cameras.
    GeometryCollection {
        /// The members.
        geometries: Vec<Geometry>,
    },
}

impl Geometry {
    /// A point.
    pub fn point(p: &GeoPoint) -> Geometry {
        Geometry::Point {
            coordinates: [p.lon, p.lat],
        }
    }

    /// A polygon from an exterior ring: closed (the first point repeated when it is not
    /// already last) and counter-clockwise (reversed when it is clockwise).
    pub fn polygon(mut ring: Vec<[f64; 2]>) -> Geometry {
        if let (Some(first), Some(last)) = (ring.first().copied(), ring.last().copied()) {
            if first != last {
                ring.push(first);
            }
        }
        if ring_signed_area2(&ring) < 0.0 {
            ring.reverse();
        }
        Geometry::Polygon {
            coordinates: vec![ring],
        }
    }
}

/// A camera with a position, for the map: what [`FeatureCollection::camera`] writes.
#[derive(Debug, Clone, PartialEq)]
pub struct MapCamera {
    /// `[[cameras]] id`.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Where it stands.
    pub position: GeoPoint,
    /// Height above sea level, metres, when configured.
    pub alt_m: Option<f64>,
    /// Heading of the view's centre, degrees from true north.
    pub heading_deg: f64,
    /// Horizontal field of view, degrees, when known.
    pub hfov_deg: Option<f64>,
    /// Useful range, metres.
    pub range_m: f64,
    /// Fields of view to draw: one per PTZ preset (named) or the fixed view (`None`).
    pub fovs: Vec<(Option<String>, Sector)>,
}

/// The properties of an incident feature.
#[derive(Debug, Clone, Serialize)]
pub struct IncidentProperties<'a> {
    /// The incident's id (also the feature's `id`).
    pub incident: &'a str,
    /// `fire`, `personnel`, ...
    pub kind: IncidentKind,
    /// Evidence level.
    pub confidence: IncidentConfidence,
    /// Severity.
    pub severity: Severity,
    /// Lifecycle state.
    pub state: IncidentState,
    /// Revision number.
    pub revision: u64,
    /// First evidence.
    pub first_seen: UtcTime,
    /// Latest evidence.
    pub last_seen: UtcTime,
    /// Cameras involved.
    pub cameras: &'a [CameraId],
    /// How the location was obtained (`None`: no location).
    pub location_method: Option<LocationMethod>,
    /// The location's 1-sigma uncertainty ellipse, when known.
    pub ellipse: Option<UncertaintyEllipse>,
    /// Satellite hotspots that corroborate it (all of them, not only those kept inline).
    pub hotspots: u64,
    /// The bearing cones behind it.
    pub sectors: Vec<SectorProperties<'a>>,
}

/// A bearing cone as incident properties carry it.
#[derive(Debug, Clone, Serialize)]
pub struct SectorProperties<'a> {
    /// Camera.
    pub camera: &'a str,
    /// Camera position `[lon, lat]`.
    pub origin: [f64; 2],
    /// Bearing of the cone's axis, degrees from true north.
    pub bearing_deg: f64,
    /// Half-width, degrees.
    pub half_width_deg: f64,
    /// Range, metres.
    pub range_m: f64,
}

/// `properties` of every feature: `feature` names the kind.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "feature", rename_all = "snake_case")]
pub enum Properties<'a> {
    /// A camera (Point).
    Camera {
        /// Camera id.
        camera: &'a str,
        /// Display name.
        name: &'a str,
        /// Metres above sea level.
        alt_m: Option<f64>,
        /// Heading, degrees from north.
        heading_deg: f64,
        /// Horizontal field of view, degrees (`null` when unknown).
        hfov_deg: Option<f64>,
        /// Range, metres.
        range_m: f64,
    },
    /// A camera's field of view (Polygon).
    Fov {
        /// Camera id.
        camera: &'a str,
        /// PTZ preset, `None` for a fixed camera.
        preset: Option<&'a str>,
        /// Heading, degrees from north.
        heading_deg: f64,
        /// Width, degrees.
        hfov_deg: f64,
        /// Range, metres.
        range_m: f64,
    },
    /// An incident (Point at its location; else its cones; else its first hotspot; else no
    /// geometry).
    Incident(IncidentProperties<'a>),
    /// An incident's uncertainty ellipse (Polygon).
    Uncertainty {
        /// Incident id.
        incident: &'a str,
        /// How the location was obtained.
        method: LocationMethod,
    },
    /// One bearing of an incident (LineString from the camera to the cone's range).
    Bearing {
        /// Incident id.
        incident: &'a str,
        /// Camera.
        camera: &'a str,
        /// Bearing, degrees from north.
        bearing_deg: f64,
        /// Half-width, degrees.
        half_width_deg: f64,
        /// When it was seen.
        at: UtcTime,
    },
    /// A satellite hotspot (Point).
    Hotspot {
        /// Satellite / instrument.
        source: HotspotSource,
        /// Acquisition time.
        acquired_at: UtcTime,
        /// FIRMS confidence.
        confidence: &'a HotspotConfidence,
        /// Fire radiative power, MW.
        frp: Option<f64>,
        /// Radius of the pixel's footprint, metres.
        radius_m: f64,
        /// Pixel size along scan, km.
        scan_km: f64,
        /// Pixel size along track, km.
        track_km: f64,
        /// FIRMS fire type (0 vegetation, 1 volcano, 2 static land source, 3 offshore).
        fire_type: Option<u8>,
    },
}

/// One feature.
#[derive(Debug, Clone, Serialize)]
pub struct Feature<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    /// Stable, unique within a collection.
    pub id: String,
    /// `None` is written `null` (a feature without a position).
    pub geometry: Option<Geometry>,
    /// Kind-specific properties.
    pub properties: Properties<'a>,
}

impl<'a> Feature<'a> {
    fn new(id: String, geometry: Option<Geometry>, properties: Properties<'a>) -> Feature<'a> {
        Feature {
            kind: "Feature",
            id,
            geometry,
            properties,
        }
    }
}

/// The stable feature id of a hotspot: source, rounded position and minute.
pub fn hotspot_id(h: &Hotspot) -> String {
    let (lat, lon, minute, _) = h.dedup_key();
    let source = serde_json::to_value(h.source)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default();
    format!("hotspot/{source}/{lat}/{lon}/{minute}")
}

/// The incident's own feature (what the `geojson` sink writes per incident).
pub fn incident_feature(inc: &Incident) -> Feature<'_> {
    let geometry = if let Some(l) = &inc.location {
        Some(Geometry::point(&l.point))
    } else if inc.sectors.len() == 1 {
        Some(Geometry::polygon(sector_ring(&inc.sectors[0])))
    } else if !inc.sectors.is_empty() {
        Some(Geometry::GeometryCollection {
            geometries: inc
                .sectors
                .iter()
                .map(|s| Geometry::polygon(sector_ring(s)))
                .collect(),
        })
    } else {
        inc.hotspots.first().map(|h| Geometry::point(&h.location))
    };
    Feature::new(
        inc.id.clone(),
        geometry,
        Properties::Incident(IncidentProperties {
            incident: &inc.id,
            kind: inc.kind,
            confidence: inc.confidence,
            severity: inc.severity,
            state: inc.state,
            revision: inc.revision,
            first_seen: inc.first_seen,
            last_seen: inc.last_seen,
            cameras: &inc.cameras,
            location_method: inc.location.as_ref().map(|l| l.method),
            ellipse: inc.location.as_ref().and_then(|l| l.ellipse),
            hotspots: inc.hotspot_count(),
            sectors: inc
                .sectors
                .iter()
                .map(|s| SectorProperties {
                    camera: &s.camera,
                    origin: [s.origin.lon, s.origin.lat],
                    bearing_deg: s.bearing_deg,
                    half_width_deg: s.half_width_deg,
                    range_m: s.range_m,
                })
                .collect(),
        }),
    )
}

/// A FeatureCollection being written: features in the order added, duplicates (same
/// `id`) dropped.
#[derive(Debug, Default)]
pub struct FeatureCollection<'a> {
    features: Vec<Feature<'a>>,
    ids: HashSet<String>,
}

#[derive(Serialize)]
struct Fc<'b, 'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    features: &'b [Feature<'a>],
}

impl<'a> FeatureCollection<'a> {
    /// An empty collection.
    pub fn new() -> FeatureCollection<'a> {
        FeatureCollection::default()
    }

    /// Adds a feature unless one with its `id` is already there; true when added.
    pub fn push(&mut self, f: Feature<'a>) -> bool {
        if self.ids.contains(&f.id) {
            return false;
        }
        self.ids.insert(f.id.clone());
        self.features.push(f);
        true
    }

    /// A camera (Point) and each of its fields of view (Polygon).
    pub fn camera(&mut self, c: &'a MapCamera) {
        self.push(Feature::new(
            format!("camera/{}", c.id),
            Some(Geometry::point(&c.position)),
            Properties::Camera {
                camera: &c.id,
                name: &c.name,
                alt_m: c.alt_m,
                heading_deg: c.heading_deg,
                hfov_deg: c.hfov_deg,
                range_m: c.range_m,
            },
        ));
        for (preset, s) in &c.fovs {
            self.push(Feature::new(
                format!("fov/{}/{}", c.id, preset.as_deref().unwrap_or("")),
                Some(Geometry::polygon(sector_ring(s))),
                Properties::Fov {
                    camera: &c.id,
                    preset: preset.as_deref(),
                    heading_deg: s.bearing_deg,
                    hfov_deg: 2.0 * s.half_width_deg,
                    range_m: s.range_m,
                },
            ));
        }
    }

    /// An incident, its uncertainty ellipse (Polygon) and its bearings (LineStrings).
    pub fn incident(&mut self, inc: &'a Incident) {
        self.push(incident_feature(inc));
        if let Some(l) = &inc.location {
            if let Some(e) = &l.ellipse {
                self.push(Feature::new(
                    format!("uncertainty/{}", inc.id),
                    Some(Geometry::polygon(ellipse_ring(
                        &l.point,
                        e.semi_major_m,
                        e.semi_minor_m,
                        e.orientation_deg,
                    ))),
                    Properties::Uncertainty {
                        incident: &inc.id,
                        method: l.method,
                    },
                ));
            }
        }
        for (i, s) in inc.sectors.iter().enumerate() {
            let end = s.origin.destination(s.bearing_deg, s.range_m);
            self.push(Feature::new(
                format!("bearing/{}/{i}", inc.id),
                Some(Geometry::LineString {
                    coordinates: vec![[s.origin.lon, s.origin.lat], [end.lon, end.lat]],
                }),
                Properties::Bearing {
                    incident: &inc.id,
                    camera: &s.camera,
                    bearing_deg: s.bearing_deg,
                    half_width_deg: s.half_width_deg,
                    at: s.at,
                },
            ));
        }
    }

    /// A satellite hotspot (Point).
    pub fn hotspot(&mut self, h: &'a Hotspot) {
        self.push(Feature::new(
            hotspot_id(h),
            Some(Geometry::point(&h.location)),
            Properties::Hotspot {
                source: h.source,
                acquired_at: h.acquired_at,
                confidence: &h.confidence,
                frp: h.frp,
                radius_m: h.footprint_radius_m(),
                scan_km: h.scan_km,
                track_km: h.track_km,
                fire_type: h.fire_type,
            },
        ));
    }

    /// The features so far.
    pub fn features(&self) -> &[Feature<'a>] {
        &self.features
    }

    /// The collection as JSON text (serialized straight from the typed values).
    pub fn to_json(&self) -> String {
        serde_json::to_string(&Fc {
            kind: "FeatureCollection",
            features: &self.features,
        })
        .unwrap_or_else(|_| r#"{"type":"FeatureCollection","features":[]}"#.to_string())
    }

    /// The collection as a JSON value.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(Fc {
            kind: "FeatureCollection",
            features: &self.features,
        })
        .unwrap_or_else(|_| serde_json::json!({"type": "FeatureCollection", "features": []}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polygons_are_closed_and_counter_clockwise() {
        // A clockwise, open square comes out closed and counter-clockwise.
        let g = Geometry::polygon(vec![[0.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, 0.0]]);
        let Geometry::Polygon { coordinates } = g else {
            panic!("a polygon")
        };
        let r = &coordinates[0];
        assert_eq!(r.len(), 5);
        assert_eq!(r[0], r[4]);
        assert!(ring_signed_area2(r) > 0.0);
    }

    #[test]
    fn duplicate_ids_are_dropped() {
        let cam = MapCamera {
            id: "t1".into(),
            name: "Tower".into(),
            position: GeoPoint::new(36.2, 27.9),
            alt_m: None,
            heading_deg: 90.0,
            hfov_deg: Some(60.0),
            range_m: 10_000.0,
            fovs: Vec::new(),
        };
        let mut fc = FeatureCollection::new();
        fc.camera(&cam);
        fc.camera(&cam);
        assert_eq!(fc.features().len(), 1);
        let v = fc.to_value();
        assert_eq!(v["features"][0]["properties"]["feature"], "camera");
        assert_eq!(v["features"][0]["id"], "camera/t1");
    }
}
