//! Tiling: a grid of overlapping tiles (plus, optionally, the whole frame) per frame, so
//! that small, distant smoke gets enough input pixels; and zone crops ([`ZoneCrops`]): the
//! bounding box of each personnel zone at native resolution, so that small, far people at
//! a duty post do.

use lookout_config::inference::{TileConfig, ZoneCrop, ZoneCropConfig};

use crate::preprocess::Region;
use crate::InferError;

/// The regions to run for a `w` × `h` frame: the whole frame without tiling; otherwise the
/// grid's tiles (columns × rows, neighbours overlapping by `overlap` of a tile), and the
/// whole frame too when `full_frame`. A 1×1 grid is the whole frame once.
pub fn regions(w: u32, h: u32, tile: Option<&TileConfig>, out: &mut Vec<Region>) {
    out.clear();
    let full = Region::full(w, h);
    let Some(t) = tile else {
        out.push(full);
        return;
    };
    let (cols, rows) = (t.grid[0].max(1), t.grid[1].max(1));
    if cols == 1 && rows == 1 {
        out.push(full);
        return;
    }
    if t.full_frame {
        out.push(full);
    }
    let o = t.overlap.clamp(0.0, 0.9);
    let axis = |len: f32, n: u32| -> (f32, f32) {
        // n tiles of size s with overlap o·s cover len: s · (n − (n − 1) · o) = len.
        let s = len / (n as f32 - (n as f32 - 1.0) * o);
        (s, s * (1.0 - o))
    };
    let (tw, sx) = axis(w as f32, cols);
    let (th, sy) = axis(h as f32, rows);
    for r in 0..rows {
        for c in 0..cols {
            let x = (c as f32 * sx).min(w as f32 - tw).max(0.0);
            let y = (r as f32 * sy).min(h as f32 - th).max(0.0);
            out.push(Region {
                x,
                y,
                width: tw.min(w as f32 - x),
                height: th.min(h as f32 - y),
            });
        }
    }
}

/// Zone crops of one camera (or of an evaluation run), resolved from
/// `[inference.camera_zones.ID]` and the camera's zones.
#[derive(Debug, Clone, PartialEq)]
pub struct ZoneCrops {
    /// Padding on each side, as a fraction of the zone box's larger side.
    pub margin: f32,
    /// Also run the frame as usual (whole frame or tiles).
    pub full_frame: bool,
    /// The zones' bounding boxes (relative) and presets.
    pub crops: Vec<ZoneCrop>,
}

impl ZoneCrops {
    /// The crops `cfg` asks for on camera `cam` (see [`ZoneCropConfig::crops`]).
    pub fn from_config(
        cfg: &ZoneCropConfig,
        cam: &str,
        rules: &lookout_config::rules::RulesConfig,
    ) -> ZoneCrops {
        ZoneCrops {
            margin: cfg.margin,
            full_frame: cfg.full_frame,
            crops: cfg.crops(cam, rules),
        }
    }

    /// The regions to run for a `w` × `h` frame taken at `preset`, for a model whose input
    /// is `in_w` × `in_h`: the frame as `tile` says (when `full_frame`), then one region per
    /// zone of that view. A zone's region is its bounding box padded by `margin`, grown to
    /// at least the input size and to the input's aspect ratio around its centre (native
    /// resolution: never upscaled, never stretched), then shifted and clipped into the
    /// frame. A zone whose padded box lies inside an earlier zone's region, or whose region
    /// equals one of the frame pass, is left out. Without any zone region the
    /// frame is run as `tile` says even when `full_frame` is off, so a view without zones
    /// is never blind. Appends nothing to the heap once `out` has grown.
    #[allow(clippy::too_many_arguments)]
    pub fn regions(
        &self,
        w: u32,
        h: u32,
        preset: Option<&str>,
        tile: Option<&TileConfig>,
        in_w: u32,
        in_h: u32,
        out: &mut Vec<Region>,
    ) {
        out.clear();
        if self.full_frame {
            regions(w, h, tile, out);
        }
        let first_zone = out.len();
        let (fw, fh) = (w as f32, h as f32);
        let aspect = in_w.max(1) as f32 / in_h.max(1) as f32;
        for c in &self.crops {
            if c.preset.as_deref().is_some_and(|p| Some(p) != preset) {
                continue;
            }
            let [x1, y1, x2, y2] = c.bbox.map(|v| v as f32);
            let (x1, y1, x2, y2) = (x1 * fw, y1 * fh, x2 * fw, y2 * fh);
            let pad = self.margin.max(0.0) * (x2 - x1).max(y2 - y1);
            let (cx, cy) = ((x1 + x2) / 2.0, (y1 + y2) / 2.0);
            let mut cw = (x2 - x1 + 2.0 * pad).max(in_w as f32);
            let mut ch = (y2 - y1 + 2.0 * pad).max(in_h as f32);
            if cw / ch < aspect {
                cw = ch * aspect;
            } else {
                ch = cw / aspect;
            }
            let (cw, ch) = (cw.min(fw), ch.min(fh));
            let r = Region {
                x: (cx - cw / 2.0).clamp(0.0, fw - cw),
                y: (cy - ch / 2.0).clamp(0.0, fh - ch),
                width: cw,
                height: ch,
            };
            let inside = |a: &Region, o: &Region| {
                a.x >= o.x - 0.5
                    && a.y >= o.y - 0.5
                    && a.x + a.width <= o.x + o.width + 0.5
                    && a.y + a.height <= o.y + o.height + 0.5
            };
            let (px1, py1) = ((x1 - pad).max(0.0), (y1 - pad).max(0.0));
            let padded = Region {
                x: px1,
                y: py1,
                width: (x2 + pad).min(fw) - px1,
                height: (y2 + pad).min(fh) - py1,
            };
            // A zone whose padded box another zone's crop holds is already seen at native
            // resolution; a crop equal to a region of the frame pass (a small frame's whole
            // frame) adds nothing.
            if out[first_zone..].iter().any(|o| inside(&padded, o))
                || out[..first_zone]
                    .iter()
                    .any(|o| inside(&r, o) && inside(o, &r))
            {
                continue;
            }
            out.push(r);
        }
        if out.is_empty() {
            regions(w, h, tile, out);
        }
    }
}

/// Parses the command-line zone syntax `x1,y1,x2,y2` (relative, 0..1): one zone box.
pub fn parse_zone(s: &str) -> Result<[f64; 4], InferError> {
    let bad = |m: &str| InferError::Arg {
        arg: "--zone".into(),
        message: format!("{s:?}: {m}; expected x1,y1,x2,y2 in 0..1, e.g. 0.1,0.5,0.3,0.9"),
    };
    let v: Vec<f64> = s
        .split(',')
        .map(|p| p.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .map_err(|_| bad("not four numbers"))?;
    let [x1, y1, x2, y2] = v[..] else {
        return Err(bad("not four numbers"));
    };
    if !v.iter().all(|c| (0.0..=1.0).contains(c)) {
        return Err(bad("outside the image"));
    }
    if x2 <= x1 || y2 <= y1 {
        return Err(bad("x2 must exceed x1 and y2 must exceed y1"));
    }
    Ok([x1, y1, x2, y2])
}

/// Parses the command-line tiling syntax `CxR[:overlap][+full|-full]`, e.g. `2x2`,
/// `3x2:0.2`, `2x2-full`. It means what `tile = { grid = [C, R], overlap, full_frame }`
/// means in a config: overlap 0.1 and the whole frame analysed too unless `-full` is given.
pub fn parse_tile(s: &str) -> Result<TileConfig, InferError> {
    let bad = |m: &str| InferError::Arg {
        arg: "--tile".into(),
        message: format!(
            "{s:?}: {m}; expected CxR[:overlap][+full|-full], e.g. 2x2 or 2x2:0.2-full"
        ),
    };
    let (body, full_frame) = if let Some(b) = s.strip_suffix("+full") {
        (b, true)
    } else if let Some(b) = s.strip_suffix("-full") {
        (b, false)
    } else {
        (s, true)
    };
    let (grid, overlap) = match body.split_once(':') {
        Some((g, o)) => (
            g,
            o.parse::<f32>()
                .map_err(|_| bad("overlap is not a number"))?,
        ),
        None => (body, 0.1),
    };
    let (c, r) = grid
        .split_once(['x', 'X'])
        .ok_or_else(|| bad("missing 'x'"))?;
    let c: u32 = c.parse().map_err(|_| bad("columns are not a number"))?;
    let r: u32 = r.parse().map_err(|_| bad("rows are not a number"))?;
    if !(1..=8).contains(&c) || !(1..=8).contains(&r) {
        return Err(bad("columns and rows must be 1..=8"));
    }
    if !(0.0..=0.5).contains(&overlap) {
        return Err(bad("overlap must be 0..=0.5"));
    }
    Ok(TileConfig {
        grid: [c, r],
        overlap,
        full_frame,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_covers_the_frame_with_overlap() {
        let t = parse_tile("2x2:0.2+full").unwrap();
        assert_eq!(t.grid, [2, 2]);
        assert!(t.full_frame);
        let mut v = Vec::new();
        regions(1000, 500, Some(&t), &mut v);
        assert_eq!(v.len(), 5);
        assert_eq!(v[0], Region::full(1000, 500));
        let tile = v[1];
        // 2 tiles with 20 % overlap: s (2 - 0.2) = 1000 → s = 555.6.
        assert!((tile.width - 1000.0 / 1.8).abs() < 1e-2);
        let last = v[4];
        assert!((last.x + last.width - 1000.0).abs() < 1e-2);
        assert!((last.y + last.height - 500.0).abs() < 1e-2);
        // Overlap between neighbours is 20 % of a tile.
        assert!(((v[1].x + v[1].width - v[2].x) - 0.2 * tile.width).abs() < 1e-2);
        regions(1000, 500, Some(&parse_tile("1x1").unwrap()), &mut v);
        assert_eq!(v, vec![Region::full(1000, 500)]);
        regions(1000, 500, Some(&parse_tile("3x1:0-full").unwrap()), &mut v);
        assert_eq!(v.len(), 3);
        // Without a suffix the command line means what a config's `tile` means.
        let cfg: TileConfig = toml::from_str("grid = [2, 2]").unwrap();
        assert_eq!(parse_tile("2x2").unwrap(), cfg);
        assert!(!parse_tile("2x2:0.1-full").unwrap().full_frame);
        assert!(parse_tile("2y2").is_err());
        assert!(parse_tile("9x1").is_err());
        assert!(parse_tile("2x2:0.7").is_err());
    }

    fn crop(bbox: [f64; 4], preset: Option<&str>) -> ZoneCrop {
        ZoneCrop {
            name: "z".into(),
            preset: preset.map(str::to_string),
            bbox,
        }
    }

    #[test]
    fn zone_crops_are_native_resolution_boxes_inside_the_frame() {
        let z = ZoneCrops {
            margin: 0.25,
            full_frame: true,
            crops: vec![
                // 192 × 216 px at 1920 × 1080: padded by 54 each side → 300 × 324, grown
                // to 416 × 416 (the input) around its centre.
                crop([0.1, 0.5, 0.2, 0.7], None),
                // Inside the first crop once grown: left out.
                crop([0.12, 0.55, 0.15, 0.6], None),
                // At the bottom-right corner: shifted into the frame.
                crop([0.95, 0.9, 1.0, 1.0], None),
                // Another view's zone.
                crop([0.5, 0.1, 0.6, 0.2], Some("north")),
                // Wider than tall: grown to a square, not stretched.
                crop([0.3, 0.1, 0.7, 0.2], None),
            ],
        };
        let mut v = Vec::new();
        z.regions(1920, 1080, Some("south"), None, 416, 416, &mut v);
        assert_eq!(v.len(), 4, "{v:?}");
        assert_eq!(v[0], Region::full(1920, 1080));
        let r = v[1];
        assert!((r.width - 416.0).abs() < 1e-3 && (r.height - 416.0).abs() < 1e-3);
        assert!((r.x + r.width / 2.0 - 288.0).abs() < 1e-3, "{r:?}");
        assert!((r.y + r.height / 2.0 - 648.0).abs() < 1e-3, "{r:?}");
        let c = v[2];
        assert!((c.x + c.width - 1920.0).abs() < 1e-3 && (c.y + c.height - 1080.0).abs() < 1e-3);
        let wide = v[3];
        // 768 × 108 + 2 × 192 padding → 1152 × 492, grown to 1152 × 1152, capped at 1080.
        assert!((wide.width - 1152.0).abs() < 1e-3, "{wide:?}");
        assert!(
            (wide.height - 1080.0).abs() < 1e-3 && wide.y == 0.0,
            "{wide:?}"
        );
        // At the north preset its zone is cropped too; zone crops only: no whole frame.
        let only = ZoneCrops {
            full_frame: false,
            ..z.clone()
        };
        only.regions(1920, 1080, Some("north"), None, 416, 416, &mut v);
        assert_eq!(v.len(), 4, "{v:?}");
        assert!(!v.contains(&Region::full(1920, 1080)));
        // A frame smaller than the input: the crop is the frame, already analysed.
        z.regions(320, 240, None, None, 416, 416, &mut v);
        assert_eq!(v, vec![Region::full(320, 240)]);
        // Zone crops only, but no zone in this view: the frame as the tiling says.
        let none = ZoneCrops {
            full_frame: false,
            crops: vec![crop([0.5, 0.1, 0.6, 0.2], Some("north"))],
            margin: 0.0,
        };
        none.regions(
            1920,
            1080,
            None,
            Some(&parse_tile("2x1-full").unwrap()),
            416,
            416,
            &mut v,
        );
        assert_eq!(v.len(), 2);
        assert_eq!(parse_zone("0.1,0.5,0.3,0.9").unwrap(), [0.1, 0.5, 0.3, 0.9]);
        assert!(parse_zone("0.1,0.5,0.3").is_err());
        assert!(parse_zone("0.1,0.5,1.3,0.9").is_err());
        assert!(parse_zone("0.3,0.5,0.1,0.9").is_err());
    }
}
