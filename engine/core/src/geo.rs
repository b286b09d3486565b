//! Points on the Earth, great-circle distance and bearing, sectors.

use serde::{Deserialize, Serialize};

use crate::{CameraId, UtcTime};

/// Mean Earth radius in metres (IUGG).
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// A WGS84 position in degrees.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct GeoPoint {
    /// Latitude, degrees north.
    pub lat: f64,
    /// Longitude, degrees east.
    pub lon: f64,
}

impl GeoPoint {
    /// A point from latitude and longitude in degrees.
    pub fn new(lat: f64, lon: f64) -> Self {
        GeoPoint { lat, lon }
    }

    /// Great-circle (haversine) distance in metres.
    pub fn distance_m(&self, other: &GeoPoint) -> f64 {
        let (p1, p2) = (self.lat.to_radians(), other.lat.to_radians());
        let dp = p2 - p1;
        let dl = (other.lon - self.lon).to_radians();
        let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
        2.0 * EARTH_RADIUS_M * a.sqrt().min(1.0).asin()
    }

    /// Initial great-circle bearing to `other`, degrees clockwise from true north, 0..360.
    pub fn bearing_to(&self, other: &GeoPoint) -> f64 {
        let (p1, p2) = (self.lat.to_radians(), other.lat.to_radians());
        let dl = (other.lon - self.lon).to_radians();
        let y = dl.sin() * p2.cos();
        let x = p1.cos() * p2.sin() - p1.sin() * p2.cos() * dl.cos();
        normalize_deg(y.atan2(x).to_degrees())
    }

    /// The point reached by going `distance_m` along the great circle at `bearing_deg`.
    pub fn destination(&self, bearing_deg: f64, distance_m: f64) -> GeoPoint {
        let d = distance_m / EARTH_RADIUS_M;
        let b = bearing_deg.to_radians();
        let p1 = self.lat.to_radians();
        let l1 = self.lon.to_radians();
        let p2 = (p1.sin() * d.cos() + p1.cos() * d.sin() * b.cos()).asin();
        let l2 = l1 + (b.sin() * d.sin() * p1.cos()).atan2(d.cos() - p1.sin() * p2.sin());
        GeoPoint::new(p2.to_degrees(), normalize_lon(l2.to_degrees()))
    }
}

/// Maps an angle in degrees to 0..360.
pub fn normalize_deg(a: f64) -> f64 {
    let r = a.rem_euclid(360.0);
    if r >= 360.0 {
        0.0
    } else {
        r
    }
}

/// Signed smallest difference `a - b` in degrees, in -180..180.
pub fn angle_diff_deg(a: f64, b: f64) -> f64 {
    let d = (a - b).rem_euclid(360.0);
    if d > 180.0 {
        d - 360.0
    } else {
        d
    }
}

fn normalize_lon(l: f64) -> f64 {
    (l + 540.0).rem_euclid(360.0) - 180.0
}

/// A cone on the map: from a camera along a bearing, with an angular half-width and range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sector {
    /// Camera it comes from.
    pub camera: CameraId,
    /// Camera position.
    pub origin: GeoPoint,
    /// Bearing of the cone's axis, degrees from true north.
    pub bearing_deg: f64,
    /// Half-width of the cone in degrees (bearing uncertainty).
    pub half_width_deg: f64,
    /// Maximum useful range in metres.
    pub range_m: f64,
    /// When the detection behind it was seen.
    pub at: UtcTime,
}

impl Sector {
    /// True when `p` lies inside the cone (with `extra_deg` of tolerance and within range).
    pub fn contains(&self, p: &GeoPoint, extra_deg: f64) -> bool {
        let d = self.origin.distance_m(p);
        if d > self.range_m {
            return false;
        }
        if d < 1.0 {
            return true;
        }
        angle_diff_deg(self.origin.bearing_to(p), self.bearing_deg).abs()
            <= self.half_width_deg + extra_deg
    }
}

/// The cone of a sector as a closed polygon ring of `[lon, lat]` points, counter-clockwise
/// (RFC 7946 §3.1.6 exterior ring): origin, the arc at range from the cone's right edge
/// back to its left edge, origin. A cone of 360° or more is a closed circle without the
/// origin. The first and last points are the same values. A cone narrower than 0.1° is
/// drawn 0.1° wide (a ring needs an area).
pub fn sector_ring(s: &Sector) -> Vec<[f64; 2]> {
    let hw = if s.half_width_deg.is_finite() {
        s.half_width_deg.clamp(0.05, 180.0)
    } else {
        180.0
    };
    // One point per 2° of arc, at least 2 and at most 90 steps.
    let steps = hw.ceil().clamp(2.0, 90.0) as usize;
    let full = hw >= 180.0;
    let mut ring = Vec::with_capacity(steps + 3);
    if !full {
        ring.push([s.origin.lon, s.origin.lat]);
    }
    // Compass bearings grow clockwise: walk them downwards for a counter-clockwise ring.
    let arc = if full { steps } else { steps + 1 };
    for k in 0..arc {
        let b = s.bearing_deg + hw - 2.0 * hw * k as f64 / steps as f64;
        let p = s.origin.destination(b, s.range_m);
        ring.push([p.lon, p.lat]);
    }
    ring.push(ring[0]);
    ring
}

/// An uncertainty ellipse around `c` (semi-axes in metres, major axis `orientation_deg`
/// from north) as a closed, counter-clockwise polygon ring of 36 `[lon, lat]` points plus
/// the first repeated.
pub fn ellipse_ring(
    c: &GeoPoint,
    semi_major_m: f64,
    semi_minor_m: f64,
    orientation_deg: f64,
) -> Vec<[f64; 2]> {
    let mut ring = Vec::with_capacity(37);
    for k in 0..36 {
        // Decreasing parametric angle: counter-clockwise on the map.
        let t = (-(k as f64) * 10.0).to_radians();
        let (a, b) = (semi_major_m * t.cos(), semi_minor_m * t.sin());
        let r = (a * a + b * b).sqrt();
        let p = c.destination(orientation_deg + b.atan2(a).to_degrees(), r);
        ring.push([p.lon, p.lat]);
    }
    ring.push(ring[0]);
    ring
}

/// Twice the signed area of a `[x, y]` ring (shoelace): positive when counter-clockwise.
pub fn ring_signed_area2(ring: &[[f64; 2]]) -> f64 {
    ring.windows(2)
        .map(|w| w[0][0] * w[1][1] - w[1][0] * w[0][1])
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rings_are_closed_and_counter_clockwise() {
        let origin = GeoPoint::new(45.0, 7.0);
        for (bearing, hw) in [
            (0.0, 10.0),
            (40.0, 2.0),
            (350.0, 30.0),
            (90.0, 180.0),
            (10.0, 0.0),
        ] {
            let s = Sector {
                camera: "c".into(),
                origin,
                bearing_deg: bearing,
                half_width_deg: hw,
                range_m: 5000.0,
                at: chrono::DateTime::<chrono::Utc>::UNIX_EPOCH,
            };
            let r = sector_ring(&s);
            assert!(r.len() >= 4 && r[0] == r[r.len() - 1], "{bearing} {hw}");
            assert!(ring_signed_area2(&r) > 0.0, "{bearing} {hw}: clockwise");
        }
        let e = ellipse_ring(&origin, 800.0, 200.0, 30.0);
        assert_eq!(e.len(), 37);
        assert_eq!(e[0], e[36]);
        assert!(ring_signed_area2(&e) > 0.0);
    }

    #[test]
    fn known_distance_and_bearing() {
        // Paris → London: about 343.5 km, initial bearing about 330°.
        let paris = GeoPoint::new(48.8566, 2.3522);
        let london = GeoPoint::new(51.5074, -0.1278);
        let d = paris.distance_m(&london);
        assert!((d - 343_500.0).abs() < 1_500.0, "{d}");
        let b = paris.bearing_to(&london);
        assert!((b - 330.0).abs() < 1.5, "{b}");
        let back = paris.destination(b, d);
        assert!(back.distance_m(&london) < 5.0);
    }

    #[test]
    fn angle_diff_wraps() {
        assert!((angle_diff_deg(359.0, 1.0) + 2.0).abs() < 1e-9);
        assert!((angle_diff_deg(1.0, 359.0) - 2.0).abs() < 1e-9);
    }
}
