//! A tiny 5×7 bitmap font (digits, capitals, a few signs; lower case is drawn as capitals)
//! for the labels of the plots `lookout eval` writes, so they need no font file or font
//! crate. Drawn on packed RGB8, clipped to the image.

/// Glyph width, font pixels.
pub const GLYPH_W: u32 = 5;
/// Glyph height, font pixels.
pub const GLYPH_H: u32 = 7;
/// Advance from one character to the next, font pixels (one blank column).
pub const ADVANCE: u32 = 6;

/// Rows top to bottom; bit 4 is the leftmost column.
const GLYPHS: &[(char, [u8; 7])] = &[
    (
        '0',
        [
            0b01110, 0b10001, 0b10011, 0b10101, 0b11001, 0b10001, 0b01110,
        ],
    ),
    (
        '1',
        [
            0b00100, 0b01100, 0b00100, 0b00100, 0b00100, 0b00100, 0b01110,
        ],
    ),
    (
        '2',
        [
            0b01110, 0b10001, 0b00001, 0b00010, 0b00100, 0b01000, 0b11111,
        ],
    ),
    (
        '3',
        [
            0b11110, 0b00001, 0b00001, 0b01110, 0b00001, 0b00001, 0b11110,
        ],
    ),
    (
        '4',
        [
            0b00010, 0b00110, 0b01010, 0b10010, 0b11111, 0b00010, 0b00010,
        ],
    ),
    (
        '5',
        [
            0b11111, 0b10000, 0b11110, 0b00001, 0b00001, 0b10001, 0b01110,
        ],
    ),
    (
        '6',
        [
            0b00110, 0b01000, 0b10000, 0b11110, 0b10001, 0b10001, 0b01110,
        ],
    ),
    (
        '7',
        [
            0b11111, 0b00001, 0b00010, 0b00100, 0b01000, 0b01000, 0b01000,
        ],
    ),
    (
        '8',
        [
            0b01110, 0b10001, 0b10001, 0b01110, 0b10001, 0b10001, 0b01110,
        ],
    ),
    (
        '9',
        [
            0b01110, 0b10001, 0b10001, 0b01111, 0b00001, 0b00010, 0b01100,
        ],
    ),
    (
        '.',
        [
            0b00000, 0b00000, 0b00000, 0b00000, 0b00000, 0b01100, 0b01100,
        ],
    ),
    (
        ',',
        [
            0b00000, 0b00000, 0b00000, 0b00000, 0b01100, 0b00100, 0b01000,
        ],
    ),
    (
        '=',
        [
            0b00000, 0b00000, 0b11111, 0b00000, 0b11111, 0b00000, 0b00000,
        ],
    ),
    (
        '-',
        [
            0b00000, 0b00000, 0b00000, 0b11111, 0b00000, 0b00000, 0b00000,
        ],
    ),
    (
        '+',
        [
            0b00000, 0b00100, 0b00100, 0b11111, 0b00100, 0b00100, 0b00000,
        ],
    ),
    (
        ':',
        [
            0b00000, 0b01100, 0b01100, 0b00000, 0b01100, 0b01100, 0b00000,
        ],
    ),
    (
        '_',
        [
            0b00000, 0b00000, 0b00000, 0b00000, 0b00000, 0b00000, 0b11111,
        ],
    ),
    (
        '(',
        [
            0b00010, 0b00100, 0b01000, 0b01000, 0b01000, 0b00100, 0b00010,
        ],
    ),
    (
        ')',
        [
            0b01000, 0b00100, 0b00010, 0b00010, 0b00010, 0b00100, 0b01000,
        ],
    ),
    (
        '/',
        [
            0b00001, 0b00001, 0b00010, 0b00100, 0b01000, 0b10000, 0b10000,
        ],
    ),
    (
        '%',
        [
            0b11001, 0b11010, 0b00010, 0b00100, 0b01000, 0b01011, 0b10011,
        ],
    ),
    (
        '?',
        [
            0b01110, 0b10001, 0b00001, 0b00010, 0b00100, 0b00000, 0b00100,
        ],
    ),
    (
        'A',
        [
            0b01110, 0b10001, 0b10001, 0b11111, 0b10001, 0b10001, 0b10001,
        ],
    ),
    (
        'B',
        [
            0b11110, 0b10001, 0b10001, 0b11110, 0b10001, 0b10001, 0b11110,
        ],
    ),
    (
        'C',
        [
            0b01110, 0b10001, 0b10000, 0b10000, 0b10000, 0b10001, 0b01110,
        ],
    ),
    (
        'D',
        [
            0b11100, 0b10010, 0b10001, 0b10001, 0b10001, 0b10010, 0b11100,
        ],
    ),
    (
        'E',
        [
            0b11111, 0b10000, 0b10000, 0b11110, 0b10000, 0b10000, 0b11111,
        ],
    ),
    (
        'F',
        [
            0b11111, 0b10000, 0b10000, 0b11110, 0b10000, 0b10000, 0b10000,
        ],
    ),
    (
        'G',
        [
            0b01110, 0b10001, 0b10000, 0b10111, 0b10001, 0b10001, 0b01111,
        ],
    ),
    (
        'H',
        [
            0b10001, 0b10001, 0b10001, 0b11111, 0b10001, 0b10001, 0b10001,
        ],
    ),
    (
        'I',
        [
            0b01110, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b01110,
        ],
    ),
    (
        'J',
        [
            0b00111, 0b00010, 0b00010, 0b00010, 0b00010, 0b10010, 0b01100,
        ],
    ),
    (
        'K',
        [
            0b10001, 0b10010, 0b10100, 0b11000, 0b10100, 0b10010, 0b10001,
        ],
    ),
    (
        'L',
        [
            0b10000, 0b10000, 0b10000, 0b10000, 0b10000, 0b10000, 0b11111,
        ],
    ),
    (
        'M',
        [
            0b10001, 0b11011, 0b10101, 0b10101, 0b10001, 0b10001, 0b10001,
        ],
    ),
    (
        'N',
        [
            0b10001, 0b10001, 0b11001, 0b10101, 0b10011, 0b10001, 0b10001,
        ],
    ),
    (
        'O',
        [
            0b01110, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01110,
        ],
    ),
    (
        'P',
        [
            0b11110, 0b10001, 0b10001, 0b11110, 0b10000, 0b10000, 0b10000,
        ],
    ),
    (
        'Q',
        [
            0b01110, 0b10001, 0b10001, 0b10001, 0b10101, 0b10010, 0b01101,
        ],
    ),
    (
        'R',
        [
            0b11110, 0b10001, 0b10001, 0b11110, 0b10100, 0b10010, 0b10001,
        ],
    ),
    (
        'S',
        [
            0b01111, 0b10000, 0b10000, 0b01110, 0b00001, 0b00001, 0b11110,
        ],
    ),
    (
        'T',
        [
            0b11111, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100,
        ],
    ),
    (
        'U',
        [
            0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01110,
        ],
    ),
    (
        'V',
        [
            0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01010, 0b00100,
        ],
    ),
    (
        'W',
        [
            0b10001, 0b10001, 0b10001, 0b10101, 0b10101, 0b10101, 0b01010,
        ],
    ),
    (
        'X',
        [
            0b10001, 0b10001, 0b01010, 0b00100, 0b01010, 0b10001, 0b10001,
        ],
    ),
    (
        'Y',
        [
            0b10001, 0b10001, 0b01010, 0b00100, 0b00100, 0b00100, 0b00100,
        ],
    ),
    (
        'Z',
        [
            0b11111, 0b00001, 0b00010, 0b00100, 0b01000, 0b10000, 0b11111,
        ],
    ),
];

/// The rows of `c` (lower case as upper case; a space is blank; others as `?`).
pub fn glyph(c: char) -> [u8; 7] {
    if c == ' ' {
        return [0; 7];
    }
    let c = c.to_ascii_uppercase();
    let find = |c: char| GLYPHS.iter().find(|(g, _)| *g == c).map(|(_, rows)| *rows);
    find(c).or_else(|| find('?')).unwrap_or([0; 7])
}

/// Width of `text` in image pixels at `scale`.
pub fn text_width(text: &str, scale: u32) -> u32 {
    let n = text.chars().count() as u32;
    (n * ADVANCE).saturating_sub(1) * scale
}

fn put(img: &mut [u8], w: u32, h: u32, x: i64, y: i64, colour: [u8; 3]) {
    if x < 0 || y < 0 || x >= i64::from(w) || y >= i64::from(h) {
        return;
    }
    let i = ((y as u64 * u64::from(w) + x as u64) * 3) as usize;
    if let Some(p) = img.get_mut(i..i + 3) {
        p.copy_from_slice(&colour);
    }
}

/// Calls `f(tx, ty)` for every set pixel of `text` (text coordinates: x to the right along
/// the line, y down), each font pixel `scale`×`scale`.
fn each_pixel(text: &str, scale: u32, mut f: impl FnMut(i64, i64)) {
    let s = i64::from(scale.max(1));
    for (i, c) in text.chars().enumerate() {
        let rows = glyph(c);
        for (gy, row) in rows.iter().enumerate() {
            for gx in 0..GLYPH_W {
                if row & (1 << (GLYPH_W - 1 - gx)) == 0 {
                    continue;
                }
                let tx = (i as i64 * i64::from(ADVANCE) + i64::from(gx)) * s;
                let ty = gy as i64 * s;
                for dy in 0..s {
                    for dx in 0..s {
                        f(tx + dx, ty + dy);
                    }
                }
            }
        }
    }
}

/// Draws `text` left to right with its top-left corner at (`x`, `y`).
#[allow(clippy::too_many_arguments)]
pub fn draw_text(
    img: &mut [u8],
    w: u32,
    h: u32,
    x: i64,
    y: i64,
    text: &str,
    colour: [u8; 3],
    scale: u32,
) {
    each_pixel(text, scale, |tx, ty| put(img, w, h, x + tx, y + ty, colour));
}

/// Draws `text` turned a quarter turn counter-clockwise (read bottom to top, as a y-axis
/// title): the start of the line at (`x`, `y`), the tops of the letters towards smaller x.
#[allow(clippy::too_many_arguments)]
pub fn draw_text_up(
    img: &mut [u8],
    w: u32,
    h: u32,
    x: i64,
    y: i64,
    text: &str,
    colour: [u8; 3],
    scale: u32,
) {
    each_pixel(text, scale, |tx, ty| put(img, w, h, x + ty, y - tx, colour));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glyphs_are_distinct_and_text_lands_where_asked() {
        for (i, (a, ra)) in GLYPHS.iter().enumerate() {
            for (b, rb) in &GLYPHS[i + 1..] {
                assert_ne!(ra, rb, "{a} and {b} look the same");
            }
        }
        assert_eq!(glyph('r'), glyph('R'));
        assert_eq!(glyph('~'), glyph('?'));
        let (w, h) = (40u32, 20u32);
        let mut img = vec![255u8; (w * h * 3) as usize];
        draw_text(&mut img, w, h, 2, 3, "1.0", [0, 0, 0], 1);
        let dark = |img: &[u8], x: u32, y: u32| img[((y * w + x) * 3) as usize] == 0;
        // '1' at x 2..7: its stem is the middle column.
        for y in 3..10 {
            assert!(dark(&img, 4, y), "stem of 1 at y {y}");
        }
        assert!(!dark(&img, 2, 3) && dark(&img, 3, 4));
        // '.' at x 8..13: two by two at the bottom.
        assert!(dark(&img, 9, 8) && dark(&img, 10, 9) && !dark(&img, 9, 7));
        assert_eq!(text_width("1.0", 1), 17);
        assert_eq!(text_width("1.0", 2), 34);
        // Turned: the stem of 'I' runs along x.
        let mut up = vec![255u8; (w * h * 3) as usize];
        draw_text_up(&mut up, w, h, 5, 15, "I", [0, 0, 0], 1);
        for x in 5..12 {
            assert!(dark(&up, x, 13), "stem at x {x}");
        }
        // Clipped, not a panic.
        draw_text(&mut img, w, h, -3, 18, "WWW", [0, 0, 0], 3);
    }
}
