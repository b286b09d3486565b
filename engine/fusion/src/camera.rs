//! Camera geometry: where a camera stands and looks, and the bearing of a detection.
//!
//! The pinhole model: the focal length in pixels is `f = (w/2) / tan(hfov/2)`; a pixel at
//! `(px, py)` has normalised coordinates `x = (px - w/2)/f`, `y = (py - h/2)/f` (square
//! pixels). With radial distortion configured (`k1`, `k2`, Brown–Conrady on normalised
//! coordinates) the coordinates are undistorted first. The ray `(x, y, 1)` is then pitched
//! by the camera's tilt and turned by its heading; the bearing is the ray's azimuth:
//! `heading + atan2(x, cos(tilt) + y·sin(tilt))`, which is `heading + atan((cx - w/2)/f)`
//! for a level camera. `hfov` is the pinhole (undistorted) field of view.

use lookout_config::cameras::CameraConfig;
use lookout_core::geo::{angle_diff_deg, normalize_deg};
use lookout_core::{BBox, CameraId, GeoPoint, Sector, UtcTime};

use crate::FusionError;

/// Where the optical axis points and how wide the view is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct View {
    /// Azimuth of the image centre, degrees from true north.
    pub heading_deg: f64,
    /// Tilt of the optical axis, degrees (negative looks down).
    pub tilt_deg: f64,
    /// Horizontal (pinhole) field of view, degrees.
    pub hfov_deg: f64,
}

/// A bearing measured from one detection box.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bearing {
    /// Azimuth of the box centre, degrees from true north, 0..360.
    pub azimuth_deg: f64,
    /// Angular half-width: half the box's width in angle plus the calibration error.
    pub half_width_deg: f64,
}

/// One camera's geometry, resolved from its `geo` and `ptz` config blocks.
#[derive(Debug, Clone, PartialEq)]
pub struct CameraGeometry {
    /// Camera id.
    pub id: CameraId,
    /// Display name (for the map).
    pub name: String,
    /// Position.
    pub position: GeoPoint,
    /// Altitude above sea level, metres.
    pub alt_m: f64,
    /// Maximum useful range, metres.
    pub range_m: f64,
    /// The fixed view (a PTZ camera's presets override it).
    pub base: View,
    /// PTZ presets by name, in config order.
    pub presets: Vec<(String, View)>,
    /// Radial distortion `(k1, k2)`, when configured.
    pub distortion: Option<(f64, f64)>,
}

impl CameraGeometry {
    /// The geometry of a configured camera; `Ok(None)` when it has no `geo` block.
    pub fn from_config(c: &CameraConfig) -> Result<Option<CameraGeometry>, FusionError> {
        let Some(g) = &c.geo else {
            return Ok(None);
        };
        let err = |message: String| FusionError::Camera {
            camera: c.id.clone(),
            message,
        };
        let hfov = g
            .hfov()
            .ok_or_else(|| err("geo needs hfov_deg, or focal_mm and sensor_width_mm".into()))?;
        if !(hfov > 0.0 && hfov < 180.0) {
            return Err(err(format!(
                "a pinhole field of view must be in 0..180 degrees, got {hfov}"
            )));
        }
        let base = View {
            heading_deg: normalize_deg(g.heading_deg),
            tilt_deg: g.tilt_deg,
            hfov_deg: hfov,
        };
        let mut presets = Vec::new();
        if let Some(p) = &c.ptz {
            for pr in &p.presets {
                let hf = pr.hfov_deg.unwrap_or(hfov);
                if !(hf > 0.0 && hf < 180.0) {
                    return Err(err(format!(
                        "preset {:?}: field of view must be in 0..180 degrees, got {hf}",
                        pr.name
                    )));
                }
                presets.push((
                    pr.name.clone(),
                    View {
                        heading_deg: normalize_deg(pr.pan_deg),
                        tilt_deg: pr.tilt_deg.unwrap_or(g.tilt_deg),
                        hfov_deg: hf,
                    },
                ));
            }
        }
        Ok(Some(CameraGeometry {
            id: CameraId::from(c.id.as_str()),
            name: c.display_name().to_string(),
            position: GeoPoint::new(g.lat, g.lon),
            alt_m: g.alt_m,
            range_m: g.range_m,
            base,
            presets,
            distortion: g.distortion.map(|d| (d.k1, d.k2)),
        }))
    }

    /// The view for a frame: the named preset, or — without a preset — the fixed view (the
    /// first preset for a PTZ camera). `None` for a preset the camera does not have.
    pub fn view(&self, preset: Option<&str>) -> Option<View> {
        match preset {
            Some(name) => self
                .presets
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| *v),
            None => Some(self.presets.first().map(|(_, v)| *v).unwrap_or(self.base)),
        }
    }

    /// Every view the camera can have (its presets, or the fixed view).
    pub fn views(&self) -> Vec<(Option<&str>, View)> {
        if self.presets.is_empty() {
            vec![(None, self.base)]
        } else {
            self.presets
                .iter()
                .map(|(n, v)| (Some(n.as_str()), *v))
                .collect()
        }
    }

    /// Focal length in pixels for a frame `width` pixels wide.
    pub fn focal_px(view: &View, width: f64) -> f64 {
        (width / 2.0) / (view.hfov_deg.to_radians() / 2.0).tan()
    }

    /// Undistorted normalised coordinates of a pixel.
    fn normalised(&self, view: &View, px: f64, py: f64, w: f64, h: f64) -> (f64, f64) {
        let f = Self::focal_px(view, w);
        let (xd, yd) = ((px - w / 2.0) / f, (py - h / 2.0) / f);
        match self.distortion {
            Some((k1, k2)) => undistort(xd, yd, k1, k2),
            None => (xd, yd),
        }
    }

    /// Azimuth (degrees from north, 0..360) of pixel `(px, py)` in a `w` × `h` frame.
    pub fn azimuth_of_pixel(&self, view: &View, px: f64, py: f64, w: f64, h: f64) -> f64 {
        let (x, y) = self.normalised(view, px, py, w, h);
        let t = view.tilt_deg.to_radians();
        normalize_deg(view.heading_deg + x.atan2(t.cos() + y * t.sin()).to_degrees())
    }

    /// The pixel where azimuth `az_deg` crosses the undistorted image row `y_norm`
    /// (0 = the optical axis' row): the inverse of [`Self::azimuth_of_pixel`], for overlays
    /// and tests. `None` when the azimuth is outside the view.
    pub fn pixel_for_azimuth(
        &self,
        view: &View,
        az_deg: f64,
        y_norm: f64,
        w: f64,
        h: f64,
    ) -> Option<(f64, f64)> {
        let a = angle_diff_deg(az_deg, view.heading_deg).to_radians();
        if a.abs() >= std::f64::consts::FRAC_PI_2 {
            return None;
        }
        let t = view.tilt_deg.to_radians();
        let c = t.cos() + y_norm * t.sin();
        if c <= 0.0 {
            return None;
        }
        let x = c * a.tan();
        let (xd, yd) = match self.distortion {
            Some((k1, k2)) => {
                let r2 = x * x + y_norm * y_norm;
                let s = 1.0 + k1 * r2 + k2 * r2 * r2;
                (x * s, y_norm * s)
            }
            None => (x, y_norm),
        };
        let f = Self::focal_px(view, w);
        Some((w / 2.0 + xd * f, h / 2.0 + yd * f))
    }

    /// The bearing of a detection box in a `frame_size` frame seen at `preset`, with its
    /// half-width widened by `calibration_error_deg`. `None` for an unknown preset or an
    /// empty frame.
    pub fn bearing(
        &self,
        bbox: &BBox,
        frame_size: (u32, u32),
        preset: Option<&str>,
        calibration_error_deg: f64,
    ) -> Option<Bearing> {
        let view = self.view(preset)?;
        let (w, h) = (frame_size.0 as f64, frame_size.1 as f64);
        if w < 1.0 || h < 1.0 {
            return None;
        }
        let (cx, cy) = bbox.center();
        let (cx, cy) = (cx as f64, cy as f64);
        let az = self.azimuth_of_pixel(&view, cx, cy, w, h);
        let left = self.azimuth_of_pixel(&view, bbox.x1 as f64, cy, w, h);
        let right = self.azimuth_of_pixel(&view, bbox.x2 as f64, cy, w, h);
        let half = angle_diff_deg(right, left).abs() / 2.0;
        if !az.is_finite() || !half.is_finite() {
            return None;
        }
        Some(Bearing {
            azimuth_deg: az,
            half_width_deg: half + calibration_error_deg.max(0.0),
        })
    }

    /// A bearing as a cone on the map.
    pub fn sector(&self, b: Bearing, at: UtcTime) -> Sector {
        Sector {
            camera: self.id.clone(),
            origin: self.position,
            bearing_deg: b.azimuth_deg,
            half_width_deg: b.half_width_deg,
            range_m: self.range_m,
            at,
        }
    }

    /// The field-of-view cones of every view (for the watched area and the map).
    pub fn fov_sectors(&self, at: UtcTime) -> Vec<(Option<String>, Sector)> {
        self.views()
            .into_iter()
            .map(|(name, v)| {
                (
                    name.map(str::to_string),
                    Sector {
                        camera: self.id.clone(),
                        origin: self.position,
                        bearing_deg: v.heading_deg,
                        half_width_deg: v.hfov_deg / 2.0,
                        range_m: self.range_m,
                        at,
                    },
                )
            })
            .collect()
    }
}

/// Inverts radial distortion `r_d = r_u (1 + k1 r_u² + k2 r_u⁴)` by Newton's method on the
/// radius; returns the undistorted normalised coordinates.
pub fn undistort(xd: f64, yd: f64, k1: f64, k2: f64) -> (f64, f64) {
    let rd = (xd * xd + yd * yd).sqrt();
    if rd < 1e-12 {
        return (xd, yd);
    }
    let mut r = rd;
    for _ in 0..30 {
        let r2 = r * r;
        let g = r * (1.0 + k1 * r2 + k2 * r2 * r2) - rd;
        let dg = 1.0 + 3.0 * k1 * r2 + 5.0 * k2 * r2 * r2;
        if dg.abs() < 1e-9 || !dg.is_finite() {
            break;
        }
        let step = g / dg;
        r -= step;
        if !r.is_finite() || r <= 0.0 {
            // Outside the invertible part of the model: leave the point as measured.
            return (xd, yd);
        }
        if step.abs() < 1e-13 {
            break;
        }
    }
    let s = r / rd;
    (xd * s, yd * s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cam(distortion: Option<(f64, f64)>) -> CameraGeometry {
        CameraGeometry {
            id: "c".into(),
            name: "c".into(),
            position: GeoPoint::new(36.2, 27.87),
            alt_m: 0.0,
            range_m: 20_000.0,
            base: View {
                heading_deg: 90.0,
                tilt_deg: 0.0,
                hfov_deg: 60.0,
            },
            presets: vec![(
                "north".into(),
                View {
                    heading_deg: 350.0,
                    tilt_deg: -5.0,
                    hfov_deg: 30.0,
                },
            )],
            distortion,
        }
    }

    #[test]
    fn bearing_from_box_centre_for_known_fov_and_heading() {
        let mut c = cam(None);
        c.presets.clear();
        // Centre of the frame: the heading itself.
        let b = c
            .bearing(
                &BBox::new(950.0, 500.0, 970.0, 540.0),
                (1920, 1080),
                None,
                0.5,
            )
            .unwrap();
        assert!((b.azimuth_deg - 90.0).abs() < 1e-9);
        // The right edge of the frame is heading + hfov/2.
        let az = c.azimuth_of_pixel(&c.base, 1920.0, 540.0, 1920.0, 1080.0);
        assert!((az - 120.0).abs() < 1e-9, "{az}");
        // A quarter of the way in: atan(0.5 * tan(30°)) = 16.102°.
        let b = c
            .bearing(
                &BBox::new(1430.0, 500.0, 1450.0, 520.0),
                (1920, 1080),
                None,
                0.0,
            )
            .unwrap();
        let want = 90.0 + (0.5f64 * 30f64.to_radians().tan()).atan().to_degrees();
        assert!(
            (b.azimuth_deg - want).abs() < 1e-9,
            "{} vs {want}",
            b.azimuth_deg
        );
        // Half-width: half the box width in angle, plus the calibration error.
        assert!(b.half_width_deg > 0.0 && b.half_width_deg < 0.5, "{b:?}");
        let b2 = c
            .bearing(
                &BBox::new(1430.0, 500.0, 1450.0, 520.0),
                (1920, 1080),
                None,
                1.0,
            )
            .unwrap();
        assert!((b2.half_width_deg - b.half_width_deg - 1.0).abs() < 1e-12);
    }

    #[test]
    fn presets_override_heading_and_wrap_north() {
        let c = cam(None);
        // PTZ camera without a preset on the event: its first preset.
        let b = c
            .bearing(&BBox::new(0.0, 500.0, 20.0, 540.0), (1920, 1080), None, 0.0)
            .unwrap();
        assert!(b.azimuth_deg > 330.0 && b.azimuth_deg < 340.0, "{b:?}");
        assert!(c
            .bearing(&BBox::new(0.0, 0.0, 1.0, 1.0), (10, 10), Some("nope"), 0.0)
            .is_none());
        let az = c.azimuth_of_pixel(&c.presets[0].1, 1920.0, 540.0, 1920.0, 1080.0);
        assert!((az - 5.0).abs() < 0.2, "{az}");
    }

    #[test]
    fn pixel_for_azimuth_inverts_with_tilt_and_distortion() {
        for d in [None, Some((-0.2, 0.05)), Some((0.1, 0.0))] {
            let c = cam(d);
            let v = c.presets[0].1;
            for az in [340.0, 350.0, 1.0, 4.0] {
                let (px, py) = c.pixel_for_azimuth(&v, az, 0.1, 1920.0, 1080.0).unwrap();
                let back = c.azimuth_of_pixel(&v, px, py, 1920.0, 1080.0);
                assert!(angle_diff_deg(back, az).abs() < 1e-6, "{d:?} {az} {back}");
            }
        }
    }

    #[test]
    fn undistort_inverts_distortion() {
        for (k1, k2) in [(-0.3, 0.1), (0.2, 0.05), (0.0, 0.0)] {
            let (x, y) = (0.4, -0.3);
            let r2: f64 = x * x + y * y;
            let s = 1.0 + k1 * r2 + k2 * r2 * r2;
            let (u, v) = undistort(x * s, y * s, k1, k2);
            assert!((u - x).abs() < 1e-9 && (v - y).abs() < 1e-9);
        }
    }
}
