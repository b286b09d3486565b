//! `[[rules.roles]]` and `[rules.role_match]`: who a person is, by the colour of their vest
//! and helmet (no faces).
//!
//! ```toml
//! [[rules.roles]]
//! name = "visitor"
//! vest = ["orange"]
//! [[rules.roles]]
//! name = "operator"
//! vest = ["#1f4fd0"]
//! helmet = ["white"]
//! [rules.role_match]
//! hue_tolerance_deg = 20
//! ```
//!
//! Colours are compared in OKLab/OKLCh (a perceptual space): a chromatic colour (a vest
//! orange, a helmet blue) matches pixels of about its hue (within `hue_tolerance_deg`) and
//! at least `min_chroma_ratio` of its chroma, at any lightness, so shading and shadow keep
//! matching; an achromatic colour (white, grey, black) matches pixels of low chroma and
//! about its lightness.

use serde::{Deserialize, Serialize};

use crate::validate::Validator;

/// Most roles a site may configure.
pub const MAX_ROLES: usize = 16;
/// Most colours one role part (vest or helmet) may list.
pub const MAX_COLOURS: usize = 8;
/// Most frames a track's role vote spans.
pub const MAX_ROLE_WINDOW: u32 = 32;
/// Chroma (OKLCh) below which a configured colour is achromatic (white, grey, black).
pub const ACHROMATIC_CHROMA: f32 = 0.05;

/// `[[rules.roles]]`: one kind of staff and the colours they wear.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RoleConfig {
    /// Role name (unique; `unknown` is reserved). Personnel rules name it.
    pub name: String,
    /// Vest colours (any of them), measured on the torso: `"#rrggbb"` or a colour name.
    #[serde(default)]
    pub vest: Vec<String>,
    /// Helmet colours (any of them), measured on the head.
    #[serde(default)]
    pub helmet: Vec<String>,
}

/// `[rules.role_match]`: how sure the colour measurement must be.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RoleMatch {
    /// Most hue difference (degrees of OKLCh hue) between a pixel and a chromatic role
    /// colour for the pixel to count as that colour. A pixel that matches colours of
    /// several roles counts for each of them. Default 20.
    pub hue_tolerance_deg: f32,
    /// Least chroma of a pixel, as a fraction of the colour's own chroma, to count as a
    /// chromatic colour (lower accepts more faded and shaded fabric). Default 0.4.
    pub min_chroma_ratio: f32,
    /// Least share of the measured torso (vest) or head (helmet) pixels that must have the
    /// role's colours for a person to be given that role. Default 0.2.
    pub min_fraction: f32,
    /// Least lead of the best role's share over the second's; closer → `unknown`.
    /// Default 0.08.
    pub min_margin: f32,
    /// Analysed frames of a track whose roles are voted on: the track's role is the role
    /// named by more than half of its measured (not `unknown`) frames in this window, else
    /// `unknown`. Default 15, at most 32.
    pub window: u32,
}

impl Default for RoleMatch {
    fn default() -> Self {
        RoleMatch {
            hue_tolerance_deg: 20.0,
            min_chroma_ratio: 0.4,
            min_fraction: 0.2,
            min_margin: 0.08,
            window: 15,
        }
    }
}

/// A colour parsed from config: sRGB bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rgb(pub [u8; 3]);

/// Named colours accepted besides `#rrggbb` (CSS names, plus the safety colours of
/// hi-vis clothing). Case and `-`/`_`/space are ignored.
pub const NAMED_COLOURS: &[(&str, [u8; 3])] = &[
    ("black", [0, 0, 0]),
    ("white", [255, 255, 255]),
    ("grey", [128, 128, 128]),
    ("gray", [128, 128, 128]),
    ("silver", [192, 192, 192]),
    ("red", [255, 0, 0]),
    ("darkred", [139, 0, 0]),
    ("orange", [255, 165, 0]),
    ("darkorange", [255, 140, 0]),
    ("orangered", [255, 69, 0]),
    ("safetyorange", [255, 121, 0]),
    ("yellow", [255, 255, 0]),
    ("gold", [255, 215, 0]),
    ("safetyyellow", [238, 210, 2]),
    ("hivisyellow", [204, 255, 0]),
    ("lime", [0, 255, 0]),
    ("limegreen", [50, 205, 50]),
    ("green", [0, 128, 0]),
    ("darkgreen", [0, 100, 0]),
    ("olive", [128, 128, 0]),
    ("teal", [0, 128, 128]),
    ("cyan", [0, 255, 255]),
    ("aqua", [0, 255, 255]),
    ("blue", [0, 0, 255]),
    ("royalblue", [65, 105, 225]),
    ("navy", [0, 0, 128]),
    ("purple", [128, 0, 128]),
    ("violet", [238, 130, 238]),
    ("magenta", [255, 0, 255]),
    ("fuchsia", [255, 0, 255]),
    ("pink", [255, 192, 203]),
    ("hotpink", [255, 105, 180]),
    ("brown", [165, 42, 42]),
];

impl Rgb {
    /// Parses `#rrggbb`, `#rgb` or a name of [`NAMED_COLOURS`].
    pub fn parse(s: &str) -> Result<Rgb, String> {
        let t = s.trim();
        if let Some(hex) = t.strip_prefix('#') {
            let digits: Option<Vec<u8>> = hex
                .chars()
                .map(|c| c.to_digit(16).map(|d| d as u8))
                .collect();
            return match digits.as_deref() {
                Some([r1, r2, g1, g2, b1, b2]) => {
                    Ok(Rgb([r1 * 16 + r2, g1 * 16 + g2, b1 * 16 + b2]))
                }
                Some([r, g, b]) => Ok(Rgb([r * 17, g * 17, b * 17])),
                _ => Err(format!(
                    "{s:?} is not a colour: write \"#rrggbb\" (six hex digits) or a name such as \"orange\""
                )),
            };
        }
        let key: String = t
            .chars()
            .filter(|c| !matches!(c, '-' | '_' | ' '))
            .flat_map(char::to_lowercase)
            .collect();
        NAMED_COLOURS
            .iter()
            .find(|(n, _)| *n == key)
            .map(|(_, c)| Rgb(*c))
            .ok_or_else(|| {
                format!(
                    "{s:?} is not a colour: write \"#rrggbb\" or one of {}",
                    NAMED_COLOURS
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
    }

    /// OKLab `[L, a, b]` of the colour.
    pub fn oklab(self) -> [f32; 3] {
        let lin = |c: u8| srgb_to_linear(c as f32 / 255.0);
        oklab_from_linear(lin(self.0[0]), lin(self.0[1]), lin(self.0[2]))
    }
}

/// sRGB transfer function inverse (0..1 → linear 0..1).
pub fn srgb_to_linear(c: f32) -> f32 {
    if c <= 0.04045 {
        c / 12.92
    } else {
        ((c + 0.055) / 1.055).powf(2.4)
    }
}

/// OKLab from linear sRGB (Björn Ottosson's matrices).
pub fn oklab_from_linear(r: f32, g: f32, b: f32) -> [f32; 3] {
    let l = 0.412_221_46 * r + 0.536_332_5 * g + 0.051_445_995 * b;
    let m = 0.211_903_5 * r + 0.680_699_5 * g + 0.107_396_96 * b;
    let s = 0.088_302_46 * r + 0.281_718_85 * g + 0.629_978_7 * b;
    let (l, m, s) = (l.cbrt(), m.cbrt(), s.cbrt());
    [
        0.210_454_26 * l + 0.793_617_8 * m - 0.004_072_047 * s,
        1.977_998_5 * l - 2.428_592_2 * m + 0.450_593_7 * s,
        0.025_904_037 * l + 0.782_771_77 * m - 0.808_675_77 * s,
    ]
}

impl RoleMatch {
    pub(crate) fn validate(&self, v: &mut Validator) {
        let p = "rules.role_match";
        v.range(
            format!("{p}.hue_tolerance_deg"),
            self.hue_tolerance_deg,
            1.0,
            90.0,
        );
        v.range(
            format!("{p}.min_chroma_ratio"),
            self.min_chroma_ratio,
            0.0,
            1.0,
        );
        v.range(format!("{p}.min_fraction"), self.min_fraction, 0.01, 1.0);
        v.range(format!("{p}.min_margin"), self.min_margin, 0.0, 1.0);
        v.range(format!("{p}.window"), self.window, 1, MAX_ROLE_WINDOW);
    }
}

/// Checks `[[rules.roles]]`: names unique and not `unknown`, at least one colour, every
/// colour a colour.
pub(crate) fn validate_roles(roles: &[RoleConfig], v: &mut Validator) {
    v.check(
        roles.len() <= MAX_ROLES,
        "rules.roles",
        format!("at most {MAX_ROLES} roles"),
    );
    let mut names = std::collections::BTreeSet::new();
    for (i, r) in roles.iter().enumerate() {
        let p = format!("rules.roles[{i}]");
        v.check(
            !r.name.trim().is_empty(),
            format!("{p}.name"),
            "must not be empty",
        );
        v.check(
            r.name != lookout_core::UNKNOWN_ROLE,
            format!("{p}.name"),
            "\"unknown\" is reserved for people whose colours match no role",
        );
        if !names.insert(r.name.as_str()) {
            v.error(
                format!("{p}.name"),
                format!("role {:?} is defined twice", r.name),
            );
        }
        v.check(
            !r.vest.is_empty() || !r.helmet.is_empty(),
            p.clone(),
            "a role needs at least one colour: `vest = [\"orange\"]` and/or `helmet = [\"white\"]`",
        );
        for (key, list) in [("vest", &r.vest), ("helmet", &r.helmet)] {
            v.check(
                list.len() <= MAX_COLOURS,
                format!("{p}.{key}"),
                format!("at most {MAX_COLOURS} colours"),
            );
            for (j, c) in list.iter().enumerate() {
                if let Err(m) = Rgb::parse(c) {
                    v.error(format!("{p}.{key}[{j}]"), m);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hex_and_names() {
        assert_eq!(Rgb::parse("#ff8000"), Ok(Rgb([255, 128, 0])));
        assert_eq!(Rgb::parse("#F80"), Ok(Rgb([255, 136, 0])));
        assert_eq!(Rgb::parse("Safety-Orange"), Ok(Rgb([255, 121, 0])));
        assert_eq!(Rgb::parse(" white "), Ok(Rgb([255, 255, 255])));
        for bad in ["oragne", "#ff80", "#gg0000", "", "rgb(1,2,3)"] {
            let e = Rgb::parse(bad).expect_err(bad);
            assert!(e.contains("is not a colour"), "{e}");
        }
    }

    #[test]
    fn oklab_of_white_and_orange() {
        let w = Rgb([255, 255, 255]).oklab();
        assert!((w[0] - 1.0).abs() < 1e-3 && w[1].abs() < 1e-3 && w[2].abs() < 1e-3);
        let o = Rgb([255, 165, 0]).oklab();
        let hue = o[2].atan2(o[1]).to_degrees();
        // CSS orange: OKLCh hue about 70°, chroma about 0.17.
        assert!((60.0..80.0).contains(&hue), "{hue}");
        assert!(o[1].hypot(o[2]) > 0.15);
    }
}
