//! Relative (0..1) polygons and the anchor point of a box.

use lookout_core::BBox;

/// A polygon in relative image coordinates, with its bounding box for a cheap first test.
#[derive(Debug, Clone, PartialEq)]
pub struct Polygon {
    /// Vertices `[x, y]` in 0..1.
    pts: Vec<[f32; 2]>,
    /// `[min_x, min_y, max_x, max_y]` of the vertices.
    bounds: [f32; 4],
}

impl Polygon {
    /// A polygon from config points.
    pub fn new(points: &[[f64; 2]]) -> Polygon {
        let pts: Vec<[f32; 2]> = points.iter().map(|p| [p[0] as f32, p[1] as f32]).collect();
        let mut bounds = [
            f32::INFINITY,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NEG_INFINITY,
        ];
        for p in &pts {
            bounds[0] = bounds[0].min(p[0]);
            bounds[1] = bounds[1].min(p[1]);
            bounds[2] = bounds[2].max(p[0]);
            bounds[3] = bounds[3].max(p[1]);
        }
        Polygon { pts, bounds }
    }

    /// True when the point (relative coordinates) is inside (even-odd rule).
    pub fn contains(&self, x: f32, y: f32) -> bool {
        let b = &self.bounds;
        if self.pts.len() < 3 || x < b[0] || x > b[2] || y < b[1] || y > b[3] {
            return false;
        }
        let mut inside = false;
        let n = self.pts.len();
        let mut j = n - 1;
        for i in 0..n {
            let [xi, yi] = self.pts[i];
            let [xj, yj] = self.pts[j];
            if (yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi {
                inside = !inside;
            }
            j = i;
        }
        inside
    }
}

/// The point of a box that decides whether an object is in a zone or mask: its bottom
/// centre (a person's feet, a plume's base), in relative coordinates. The bottom edge of
/// the image is pulled in by a hair so that a polygon drawn to the edge contains it.
pub fn anchor(b: &BBox, width: u32, height: u32) -> (f32, f32) {
    let w = width.max(1) as f32;
    let h = height.max(1) as f32;
    let x = ((b.x1 + b.x2) * 0.5 / w).clamp(0.0, 0.9999);
    let y = (b.y2 / h).clamp(0.0, 0.9999);
    (x, y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triangle_and_square() {
        let sq = Polygon::new(&[[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]);
        assert!(sq.contains(0.5, 0.5));
        assert!(sq.contains(0.9999, 0.9999));
        assert!(!sq.contains(1.5, 0.5));
        let tri = Polygon::new(&[[0.0, 0.0], [1.0, 0.0], [1.0, 0.2]]);
        assert!(tri.contains(0.9, 0.1));
        assert!(!tri.contains(0.1, 0.1));
    }

    #[test]
    fn anchor_is_bottom_centre() {
        let (x, y) = anchor(&BBox::new(10.0, 10.0, 30.0, 50.0), 100, 100);
        assert!((x - 0.2).abs() < 1e-6 && (y - 0.5).abs() < 1e-6);
    }
}
