//! A local tangent plane and the geometry done in it: bearing-line intersection
//! (least squares with an uncertainty ellipse), cone overlap, point in polygon.
//!
//! The plane is the gnomonic projection about a reference point: great circles — bearing
//! lines — are exactly straight lines in it, and within tens of kilometres of the reference
//! distances are metres to better than 1e-5.

use lookout_core::geo::{angle_diff_deg, normalize_deg, EARTH_RADIUS_M};
use lookout_core::{GeoPoint, Sector, UncertaintyEllipse};

/// A gnomonic tangent plane (x east, y north, metres) about a reference point.
#[derive(Debug, Clone, Copy)]
pub struct Plane {
    lat0: f64,
    lon0: f64,
    sin0: f64,
    cos0: f64,
}

impl Plane {
    /// The plane tangent at `origin`.
    pub fn new(origin: GeoPoint) -> Plane {
        let lat0 = origin.lat.to_radians();
        Plane {
            lat0,
            lon0: origin.lon.to_radians(),
            sin0: lat0.sin(),
            cos0: lat0.cos(),
        }
    }

    /// Projects a point; `None` for points 90° or more away.
    pub fn to_xy(&self, p: &GeoPoint) -> Option<(f64, f64)> {
        let (lat, dl) = (p.lat.to_radians(), p.lon.to_radians() - self.lon0);
        let cos_c = self.sin0 * lat.sin() + self.cos0 * lat.cos() * dl.cos();
        if cos_c <= 1e-9 {
            return None;
        }
        let x = EARTH_RADIUS_M * lat.cos() * dl.sin() / cos_c;
        let y = EARTH_RADIUS_M * (self.cos0 * lat.sin() - self.sin0 * lat.cos() * dl.cos()) / cos_c;
        Some((x, y))
    }

    /// The point at plane coordinates `(x, y)`.
    pub fn to_geo(&self, x: f64, y: f64) -> GeoPoint {
        let rho = (x * x + y * y).sqrt();
        if rho < 1e-9 {
            return GeoPoint::new(self.lat0.to_degrees(), self.lon0.to_degrees());
        }
        let c = (rho / EARTH_RADIUS_M).atan();
        let (sc, cc) = c.sin_cos();
        let lat = (cc * self.sin0 + y * sc * self.cos0 / rho).asin();
        let lon = self.lon0 + (x * sc).atan2(rho * self.cos0 * cc - y * self.sin0 * sc);
        let lon = (lon.to_degrees() + 540.0).rem_euclid(360.0) - 180.0;
        GeoPoint::new(lat.to_degrees(), lon)
    }
}

/// Why bearings gave no location.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FixError {
    /// Fewer than two cameras.
    #[error("fewer than two cameras")]
    TooFew,
    /// Every pair of bearings crosses at too small an angle.
    #[error("bearings cross at {angle_deg:.1}°, below the minimum")]
    NearParallel {
        /// Best crossing angle found.
        angle_deg: f64,
    },
    /// Every pair of cameras is too close together.
    #[error("cameras are only {baseline_m:.0} m apart, below the minimum")]
    BaselineTooShort {
        /// Longest baseline found.
        baseline_m: f64,
    },
    /// The lines meet behind a camera or beyond its range.
    #[error("the bearings meet {0}")]
    Inconsistent(&'static str),
}

/// A location from intersecting bearings.
#[derive(Debug, Clone, PartialEq)]
pub struct Fix {
    /// Least-squares intersection.
    pub point: GeoPoint,
    /// 1-sigma uncertainty ellipse.
    pub ellipse: UncertaintyEllipse,
    /// Largest crossing angle between the bearings used, degrees.
    pub crossing_deg: f64,
    /// Cameras used.
    pub cameras: usize,
}

/// Crossing angle between two bearing lines, 0..90 degrees.
pub fn crossing_angle_deg(b1: f64, b2: f64) -> f64 {
    let d = angle_diff_deg(b1, b2).abs();
    d.min(180.0 - d)
}

/// Intersects bearing cones from different cameras (one per camera) by weighted least
/// squares on their axes in the tangent plane. Each line is weighted by the inverse square
/// of its perpendicular uncertainty at the solution (range × half-width), so the
/// covariance is in square metres. Pairs crossing below `min_angle_deg` or closer than
/// `min_baseline_m` are not used.
pub fn triangulate(
    sectors: &[&Sector],
    min_angle_deg: f64,
    min_baseline_m: f64,
) -> Result<Fix, FixError> {
    if sectors.len() < 2 {
        return Err(FixError::TooFew);
    }
    let mut used = vec![false; sectors.len()];
    let (mut best_angle, mut best_base) = (0f64, 0f64);
    let mut any_pair = false;
    for i in 0..sectors.len() {
        for j in i + 1..sectors.len() {
            let base = sectors[i].origin.distance_m(&sectors[j].origin);
            let angle = crossing_angle_deg(sectors[i].bearing_deg, sectors[j].bearing_deg);
            best_base = best_base.max(base);
            if base >= min_baseline_m {
                best_angle = best_angle.max(angle);
            }
            if base >= min_baseline_m && angle >= min_angle_deg {
                used[i] = true;
                used[j] = true;
                any_pair = true;
            }
        }
    }
    if !any_pair {
        return Err(if best_base < min_baseline_m {
            FixError::BaselineTooShort {
                baseline_m: best_base,
            }
        } else {
            FixError::NearParallel {
                angle_deg: best_angle,
            }
        });
    }
    let chosen: Vec<&Sector> = sectors
        .iter()
        .zip(&used)
        .filter(|(_, u)| **u)
        .map(|(s, _)| *s)
        .collect();
    let n = chosen.len() as f64;
    let mean = GeoPoint::new(
        chosen.iter().map(|s| s.origin.lat).sum::<f64>() / n,
        chosen.iter().map(|s| s.origin.lon).sum::<f64>() / n,
    );
    let plane = Plane::new(mean);
    struct Line {
        p: (f64, f64),
        d: (f64, f64),
        sigma: f64,
        range: f64,
    }
    let mut lines = Vec::with_capacity(chosen.len());
    for s in &chosen {
        let p = plane
            .to_xy(&s.origin)
            .ok_or(FixError::Inconsistent("too far from the reference"))?;
        let q = plane
            .to_xy(&s.origin.destination(s.bearing_deg, 1000.0))
            .ok_or(FixError::Inconsistent("too far from the reference"))?;
        let (dx, dy) = (q.0 - p.0, q.1 - p.1);
        let len = (dx * dx + dy * dy).sqrt();
        if len <= 0.0 || !len.is_finite() {
            return Err(FixError::Inconsistent("on a degenerate line"));
        }
        lines.push(Line {
            p,
            d: (dx / len, dy / len),
            sigma: s.half_width_deg.to_radians().max(1e-5),
            range: s.range_m,
        });
    }
    // Solve twice: first with angular weights, then with perpendicular ones at range.
    let mut x = (0.0, 0.0);
    let mut cov = [0.0; 3];
    for pass in 0..3 {
        let (mut a, mut b, mut c, mut r0, mut r1) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for l in &lines {
            let nrm = (-l.d.1, l.d.0);
            let dist = if pass == 0 {
                1.0
            } else {
                ((x.0 - l.p.0).powi(2) + (x.1 - l.p.1).powi(2))
                    .sqrt()
                    .max(1.0)
            };
            let w = 1.0 / (dist * l.sigma).powi(2);
            a += w * nrm.0 * nrm.0;
            b += w * nrm.0 * nrm.1;
            c += w * nrm.1 * nrm.1;
            let k = nrm.0 * l.p.0 + nrm.1 * l.p.1;
            r0 += w * nrm.0 * k;
            r1 += w * nrm.1 * k;
        }
        let det = a * c - b * b;
        if det.abs() < 1e-300 || !det.is_finite() {
            return Err(FixError::Inconsistent("nowhere (parallel lines)"));
        }
        x = ((c * r0 - b * r1) / det, (a * r1 - b * r0) / det);
        cov = [c / det, -b / det, a / det];
    }
    for l in &lines {
        let t = l.d.0 * (x.0 - l.p.0) + l.d.1 * (x.1 - l.p.1);
        if t <= 0.0 {
            return Err(FixError::Inconsistent("behind a camera"));
        }
        if t > l.range * 1.1 {
            return Err(FixError::Inconsistent("beyond a camera's range"));
        }
    }
    let ellipse = ellipse_from_cov(cov[0], cov[1], cov[2]);
    let mut crossing: f64 = 0.0;
    for i in 0..chosen.len() {
        for j in i + 1..chosen.len() {
            crossing = crossing.max(crossing_angle_deg(
                chosen[i].bearing_deg,
                chosen[j].bearing_deg,
            ));
        }
    }
    Ok(Fix {
        point: plane.to_geo(x.0, x.1),
        ellipse,
        crossing_deg: crossing,
        cameras: chosen.len(),
    })
}

/// The 1-sigma ellipse of a 2×2 covariance `[[sxx, sxy], [sxy, syy]]` (x east, y north).
pub fn ellipse_from_cov(sxx: f64, sxy: f64, syy: f64) -> UncertaintyEllipse {
    let mid = (sxx + syy) / 2.0;
    let rad = (((sxx - syy) / 2.0).powi(2) + sxy * sxy).sqrt();
    let (l1, l2) = (mid + rad, (mid - rad).max(0.0));
    // Angle of the major axis from the x (east) axis, counter-clockwise.
    let theta = 0.5 * (2.0 * sxy).atan2(sxx - syy);
    let az = normalize_deg(90.0 - theta.to_degrees()) % 180.0;
    UncertaintyEllipse {
        semi_major_m: l1.sqrt(),
        semi_minor_m: l2.sqrt(),
        orientation_deg: az,
    }
}

/// A bearing cone as a convex polygon in `plane` (origin plus an arc at range).
pub fn cone_polygon(plane: &Plane, s: &Sector) -> Option<Vec<(f64, f64)>> {
    let hw = s.half_width_deg.clamp(0.01, 89.0);
    let mut poly = vec![plane.to_xy(&s.origin)?];
    const STEPS: usize = 6;
    for k in 0..=STEPS {
        let b = s.bearing_deg - hw + 2.0 * hw * k as f64 / STEPS as f64;
        poly.push(plane.to_xy(&s.origin.destination(b, s.range_m))?);
    }
    Some(poly)
}

/// True when two bearing cones overlap.
pub fn cones_overlap(a: &Sector, b: &Sector) -> bool {
    let mid = GeoPoint::new(
        (a.origin.lat + b.origin.lat) / 2.0,
        (a.origin.lon + b.origin.lon) / 2.0,
    );
    let plane = Plane::new(mid);
    match (cone_polygon(&plane, a), cone_polygon(&plane, b)) {
        (Some(pa), Some(pb)) => convex_overlap(&pa, &pb),
        _ => false,
    }
}

/// Separating-axis test for two convex polygons (any winding).
pub fn convex_overlap(a: &[(f64, f64)], b: &[(f64, f64)]) -> bool {
    fn separated(p: &[(f64, f64)], q: &[(f64, f64)]) -> bool {
        for i in 0..p.len() {
            let (x1, y1) = p[i];
            let (x2, y2) = p[(i + 1) % p.len()];
            let axis = (y1 - y2, x2 - x1);
            if axis.0 == 0.0 && axis.1 == 0.0 {
                continue;
            }
            let proj = |pts: &[(f64, f64)]| {
                pts.iter()
                    .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
                        let d = v.0 * axis.0 + v.1 * axis.1;
                        (lo.min(d), hi.max(d))
                    })
            };
            let (alo, ahi) = proj(p);
            let (blo, bhi) = proj(q);
            if ahi < blo || bhi < alo {
                return true;
            }
        }
        false
    }
    !(separated(a, b) || separated(b, a))
}

/// Ray-casting point-in-polygon on `[lon, lat]` vertices.
pub fn in_polygon(p: &GeoPoint, poly: &[[f64; 2]]) -> bool {
    let (x, y) = (p.lon, p.lat);
    let mut inside = false;
    let n = poly.len();
    if n < 3 {
        return false;
    }
    let mut j = n - 1;
    for i in 0..n {
        let (xi, yi) = (poly[i][0], poly[i][1]);
        let (xj, yj) = (poly[j][0], poly[j][1]);
        if (yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi {
            inside = !inside;
        }
        j = i;
    }
    inside
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn sector(cam: &str, origin: GeoPoint, bearing: f64, hw: f64) -> Sector {
        Sector {
            camera: cam.into(),
            origin,
            bearing_deg: bearing,
            half_width_deg: hw,
            range_m: 30_000.0,
            at: chrono::Utc
                .with_ymd_and_hms(2023, 7, 22, 11, 28, 0)
                .unwrap(),
        }
    }

    #[test]
    fn plane_round_trips() {
        let plane = Plane::new(GeoPoint::new(36.1, 27.9));
        for p in [GeoPoint::new(36.3, 28.1), GeoPoint::new(35.9, 27.6)] {
            let (x, y) = plane.to_xy(&p).unwrap();
            let q = plane.to_geo(x, y);
            assert!(p.distance_m(&q) < 1e-3);
            // Distances from the tangent point are metres.
            let d = (x * x + y * y).sqrt();
            let g = GeoPoint::new(36.1, 27.9).distance_m(&p);
            assert!((d - g).abs() / g < 1e-4, "{d} {g}");
        }
    }

    #[test]
    fn two_cameras_recover_a_known_point() {
        let fire = GeoPoint::new(36.11511, 27.97596);
        let a = GeoPoint::new(36.2000, 27.8667);
        let b = GeoPoint::new(36.2319, 28.1356);
        let sa = sector("a", a, a.bearing_to(&fire), 0.5);
        let sb = sector("b", b, b.bearing_to(&fire), 0.5);
        let fix = triangulate(&[&sa, &sb], 10.0, 200.0).unwrap();
        let err = fix.point.distance_m(&fire);
        assert!(err < 1.0, "error {err} m");
        // 0.5° at ~15-20 km is ~150 m perpendicular to each line.
        assert!(fix.ellipse.semi_major_m > 50.0 && fix.ellipse.semi_major_m < 1000.0);
        assert!(fix.ellipse.semi_minor_m <= fix.ellipse.semi_major_m);
        assert_eq!(fix.cameras, 2);
    }

    #[test]
    fn rejects_near_parallel_and_short_baseline_and_behind() {
        let a = GeoPoint::new(36.0, 28.0);
        let b = a.destination(90.0, 5000.0);
        let sa = sector("a", a, 10.0, 0.5);
        let sb = sector("b", b, 5.0, 0.5);
        assert!(matches!(
            triangulate(&[&sa, &sb], 10.0, 200.0),
            Err(FixError::NearParallel { .. })
        ));
        let c = a.destination(90.0, 50.0);
        let sc = sector("c", c, 300.0, 0.5);
        assert!(matches!(
            triangulate(&[&sa, &sc], 10.0, 200.0),
            Err(FixError::BaselineTooShort { .. })
        ));
        // Lines that meet behind camera b.
        let sd = sector("d", b, 120.0, 0.5);
        let se = sector("e", a, 60.0, 0.5);
        assert!(matches!(
            triangulate(&[&sd, &se], 10.0, 200.0),
            Err(FixError::Inconsistent(_))
        ));
    }

    #[test]
    fn cone_overlap_and_polygons() {
        let a = GeoPoint::new(36.0, 28.0);
        let b = a.destination(90.0, 10_000.0);
        assert!(cones_overlap(
            &sector("a", a, 45.0, 1.0),
            &sector("b", b, 315.0, 1.0)
        ));
        assert!(!cones_overlap(
            &sector("a", a, 225.0, 1.0),
            &sector("b", b, 135.0, 1.0)
        ));
        let sq = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]];
        assert!(in_polygon(&GeoPoint::new(0.5, 0.5), &sq));
        assert!(!in_polygon(&GeoPoint::new(1.5, 0.5), &sq));
    }

    #[test]
    fn ellipse_orientation() {
        // Elongated north-south.
        let e = ellipse_from_cov(1.0, 0.0, 100.0);
        assert!((e.semi_major_m - 10.0).abs() < 1e-9);
        assert!(e.orientation_deg.abs() < 1e-9 || (e.orientation_deg - 180.0).abs() < 1e-9);
        let e = ellipse_from_cov(100.0, 0.0, 1.0);
        assert!((e.orientation_deg - 90.0).abs() < 1e-9);
    }

    proptest::proptest! {
        #[test]
        fn near_parallel_is_rejected(
            b1 in 0.0f64..360.0,
            delta in -9.9f64..9.9,
            flip in proptest::bool::ANY,
            sep in 500.0f64..20_000.0,
        ) {
            let a = GeoPoint::new(36.0, 28.0);
            let b = a.destination(normalize_deg(b1 + 90.0), sep);
            let b2 = normalize_deg(b1 + delta + if flip { 180.0 } else { 0.0 });
            let r = triangulate(&[&sector("a", a, b1, 0.5), &sector("b", b, b2, 0.5)], 10.0, 200.0);
            proptest::prop_assert!(matches!(r, Err(FixError::NearParallel { .. })), "{:?}", r);
        }

        #[test]
        fn good_geometry_recovers_the_point(
            az_a in 0.0f64..360.0,
            turn in 30.0f64..150.0,
            da in 3_000.0f64..20_000.0,
            db in 3_000.0f64..20_000.0,
        ) {
            let fire = GeoPoint::new(36.1, 28.0);
            let a = fire.destination(az_a, da);
            let b = fire.destination(normalize_deg(az_a + turn), db);
            let sa = sector("a", a, a.bearing_to(&fire), 0.5);
            let sb = sector("b", b, b.bearing_to(&fire), 0.5);
            let fix = triangulate(&[&sa, &sb], 10.0, 200.0).unwrap();
            proptest::prop_assert!(fix.point.distance_m(&fire) < 5.0);
        }
    }
}
