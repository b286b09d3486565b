//! Tiling: a grid of overlapping tiles (plus, optionally, the whole frame) per frame, so
//! that small, distant smoke gets enough input pixels.

use lookout_config::inference::TileConfig;

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
}
