//! [`RolePalette`]: a person's role from the colours of their vest and helmet, measured in
//! the inference worker on the frame's own pixels (no copy of the frame, nothing
//! allocated per person).
//!
//! Two parts of the person box are sampled on a grid of at most [`GRID`] × [`GRID`]
//! pixels: the **head** (top 16 % of the box, middle half of its width) for helmets and
//! the **torso** (20–55 % of the height, middle 60 % of the width) for vests. Each sampled
//! pixel goes to OKLab and counts for every role with a colour of that part it matches (see
//! `lookout_config::roles`), so two roles of about the same colour share their pixels and
//! neither leads. A role's share is the fraction of its part's samples with one
//! of its colours (the smaller share when it names both a helmet and a vest). The best
//! role is given when its share reaches `min_fraction` and leads the second by
//! `min_margin`; otherwise the person is `unknown`.

use std::sync::Arc;

use lookout_config::roles::{
    oklab_from_linear, srgb_to_linear, Rgb, RoleMatch, ACHROMATIC_CHROMA, MAX_COLOURS, MAX_ROLES,
};
use lookout_config::rules::RulesConfig;
use lookout_core::{BBox, RoleTag, UNKNOWN_ROLE};

/// Samples per side of a measured part.
pub const GRID: u32 = 16;

/// Part of the body a colour is measured on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Head = 0,
    Torso = 1,
}

/// One configured colour, in OKLCh.
#[derive(Debug, Clone, Copy)]
struct Colour {
    part: Part,
    role: u8,
    l: f32,
    chroma: f32,
    /// Hue in radians.
    hue: f32,
    achromatic: bool,
}

/// The compiled palette: roles, their colours, the thresholds.
#[derive(Debug, Clone)]
pub struct RolePalette {
    names: Vec<Arc<str>>,
    /// Per role: whether it names head and torso colours.
    parts: Vec<[bool; 2]>,
    colours: Vec<Colour>,
    unknown: Arc<str>,
    tol_rad: f32,
    min_chroma_ratio: f32,
    min_fraction: f32,
    min_margin: f32,
    /// sRGB byte → linear.
    lin: Box<[f32; 256]>,
}

impl RolePalette {
    /// The palette of `[[rules.roles]]`, `None` when no role is configured. Colours that do
    /// not parse (validation reports them) are skipped; roles beyond [`MAX_ROLES`] too.
    pub fn from_config(rules: &RulesConfig) -> Option<RolePalette> {
        Self::new(&rules.roles, &rules.role_match)
    }

    /// The palette of `roles` with `m`'s thresholds.
    pub fn new(roles: &[lookout_config::roles::RoleConfig], m: &RoleMatch) -> Option<RolePalette> {
        if roles.is_empty() {
            return None;
        }
        let mut names = Vec::new();
        let mut parts = Vec::new();
        let mut colours = Vec::new();
        for (ri, r) in roles.iter().take(MAX_ROLES).enumerate() {
            names.push(Arc::from(r.name.as_str()));
            let mut has = [false; 2];
            for (part, list) in [(Part::Head, &r.helmet), (Part::Torso, &r.vest)] {
                for c in list.iter().take(MAX_COLOURS) {
                    let Ok(rgb) = Rgb::parse(c) else { continue };
                    let [l, a, b] = rgb.oklab();
                    let chroma = a.hypot(b);
                    has[part as usize] = true;
                    colours.push(Colour {
                        part,
                        role: ri as u8,
                        l,
                        chroma,
                        hue: b.atan2(a),
                        achromatic: chroma < ACHROMATIC_CHROMA,
                    });
                }
            }
            parts.push(has);
        }
        let mut lin = Box::new([0f32; 256]);
        for (i, v) in lin.iter_mut().enumerate() {
            *v = srgb_to_linear(i as f32 / 255.0);
        }
        Some(RolePalette {
            names,
            parts,
            colours,
            unknown: Arc::from(UNKNOWN_ROLE),
            tol_rad: m.hue_tolerance_deg.to_radians(),
            min_chroma_ratio: m.min_chroma_ratio,
            min_fraction: m.min_fraction,
            min_margin: m.min_margin,
            lin,
        })
    }

    /// Role names, in config order.
    pub fn names(&self) -> &[Arc<str>] {
        &self.names
    }

    /// Marks in `roles` every role with a `part` colour this pixel matches.
    fn matches(&self, part: Part, rgb: [u8; 3], roles: &mut [bool; MAX_ROLES]) {
        let [l, a, b] = oklab_from_linear(
            self.lin[rgb[0] as usize],
            self.lin[rgb[1] as usize],
            self.lin[rgb[2] as usize],
        );
        let chroma = a.hypot(b);
        let hue = b.atan2(a);
        for c in &self.colours {
            if c.part != part || roles[c.role as usize] {
                continue;
            }
            let ok = if c.achromatic {
                // Low chroma and about the colour's lightness (within 0.12 of OKLab L).
                chroma < ACHROMATIC_CHROMA && (l - c.l).abs() <= 0.12
            } else {
                let mut dh = (hue - c.hue).abs();
                if dh > std::f32::consts::PI {
                    dh = 2.0 * std::f32::consts::PI - dh;
                }
                chroma >= c.chroma * self.min_chroma_ratio
                    && chroma >= ACHROMATIC_CHROMA
                    && dh <= self.tol_rad
            };
            roles[c.role as usize] |= ok;
        }
    }

    /// Per role, the share of `part`'s samples with one of the role's colours of that
    /// part; returns the number of samples.
    fn shares(
        &self,
        rgb: &[u8],
        width: u32,
        height: u32,
        region: (f32, f32, f32, f32),
        part: Part,
        hits: &mut [u32; MAX_ROLES],
    ) -> u32 {
        let (x1, y1, x2, y2) = region;
        let x1 = x1.max(0.0).min(width as f32) as u32;
        let x2 = x2.max(0.0).min(width as f32) as u32;
        let y1 = y1.max(0.0).min(height as f32) as u32;
        let y2 = y2.max(0.0).min(height as f32) as u32;
        if x2 <= x1 || y2 <= y1 {
            return 0;
        }
        let nx = (x2 - x1).min(GRID);
        let ny = (y2 - y1).min(GRID);
        let mut n = 0;
        for gy in 0..ny {
            let y = y1 + ((2 * gy + 1) * (y2 - y1)) / (2 * ny);
            for gx in 0..nx {
                let x = x1 + ((2 * gx + 1) * (x2 - x1)) / (2 * nx);
                let i = ((y as usize) * (width as usize) + x as usize) * 3;
                let Some(p) = rgb.get(i..i + 3) else { continue };
                n += 1;
                let mut roles = [false; MAX_ROLES];
                self.matches(part, [p[0], p[1], p[2]], &mut roles);
                for (h, m) in hits.iter_mut().zip(roles) {
                    *h += m as u32;
                }
            }
        }
        n
    }

    /// Measures the role of the person in `bbox` on a packed RGB8 frame.
    pub fn classify(&self, rgb: &[u8], width: u32, height: u32, bbox: &BBox) -> RoleTag {
        let (bw, bh) = (bbox.width(), bbox.height());
        let head = (
            bbox.x1 + 0.25 * bw,
            bbox.y1,
            bbox.x2 - 0.25 * bw,
            bbox.y1 + 0.16 * bh,
        );
        let torso = (
            bbox.x1 + 0.2 * bw,
            bbox.y1 + 0.2 * bh,
            bbox.x2 - 0.2 * bw,
            bbox.y1 + 0.55 * bh,
        );
        let mut head_hits = [0u32; MAX_ROLES];
        let mut torso_hits = [0u32; MAX_ROLES];
        let need_head = self.parts.iter().any(|p| p[0]);
        let n_head = if need_head {
            self.shares(rgb, width, height, head, Part::Head, &mut head_hits)
        } else {
            0
        };
        let n_torso = self.shares(rgb, width, height, torso, Part::Torso, &mut torso_hits);
        let (mut best, mut best_i, mut second) = (0f32, usize::MAX, 0f32);
        for (i, has) in self.parts.iter().enumerate() {
            let mut share = f32::INFINITY;
            if has[0] {
                share = share.min(frac(head_hits[i], n_head));
            }
            if has[1] {
                share = share.min(frac(torso_hits[i], n_torso));
            }
            if !share.is_finite() {
                continue;
            }
            if share > best {
                second = best;
                best = share;
                best_i = i;
            } else if share > second {
                second = share;
            }
        }
        let name = if best_i != usize::MAX
            && best >= self.min_fraction
            && best - second >= self.min_margin
        {
            self.names[best_i].clone()
        } else {
            self.unknown.clone()
        };
        RoleTag { name, score: best }
    }
}

fn frac(hits: u32, n: u32) -> f32 {
    if n == 0 {
        0.0
    } else {
        hits as f32 / n as f32
    }
}
