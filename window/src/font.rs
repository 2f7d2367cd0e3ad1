//! A 5x7 bitmap font drawn for pismo: digits, upper- and lower-case ASCII letters and the
//! punctuation the window prints. No font files, no system fonts.
//!
//! Each glyph is seven rows of five bits, the leftmost pixel in bit 4, sitting on the
//! baseline (row 6). The lower-case letters with a descender (g, j, p, q, y) have
//! [`DESCENT`] more rows below the baseline, so they read as letters, not as the digits 9 or
//! 4 they would look like squeezed into seven rows. Characters advance by [`ADVANCE`] font
//! pixels (one blank column). A character without a glyph is drawn as `?`.

/// Glyph width in font pixels.
pub const WIDTH: u32 = 5;
/// Glyph height in font pixels.
pub const HEIGHT: u32 = 7;
/// Rows a descender reaches below [`HEIGHT`] (below the baseline).
pub const DESCENT: u32 = 2;
/// Horizontal distance between two characters, in font pixels.
pub const ADVANCE: u32 = 6;

#[rustfmt::skip]
const GLYPHS: &[(char, [u8; 7])] = &[
    (' ', [0, 0, 0, 0, 0, 0, 0]),
    ('0', [0b01110, 0b10001, 0b10011, 0b10101, 0b11001, 0b10001, 0b01110]),
    ('1', [0b00100, 0b01100, 0b00100, 0b00100, 0b00100, 0b00100, 0b01110]),
    ('2', [0b01110, 0b10001, 0b00001, 0b00010, 0b00100, 0b01000, 0b11111]),
    ('3', [0b11111, 0b00010, 0b00100, 0b00010, 0b00001, 0b10001, 0b01110]),
    ('4', [0b00010, 0b00110, 0b01010, 0b10010, 0b11111, 0b00010, 0b00010]),
    ('5', [0b11111, 0b10000, 0b11110, 0b00001, 0b00001, 0b10001, 0b01110]),
    ('6', [0b00110, 0b01000, 0b10000, 0b11110, 0b10001, 0b10001, 0b01110]),
    ('7', [0b11111, 0b00001, 0b00010, 0b00100, 0b01000, 0b01000, 0b01000]),
    ('8', [0b01110, 0b10001, 0b10001, 0b01110, 0b10001, 0b10001, 0b01110]),
    ('9', [0b01110, 0b10001, 0b10001, 0b01111, 0b00001, 0b00010, 0b01100]),
    ('A', [0b01110, 0b10001, 0b10001, 0b11111, 0b10001, 0b10001, 0b10001]),
    ('B', [0b11110, 0b10001, 0b10001, 0b11110, 0b10001, 0b10001, 0b11110]),
    ('C', [0b01110, 0b10001, 0b10000, 0b10000, 0b10000, 0b10001, 0b01110]),
    ('D', [0b11100, 0b10010, 0b10001, 0b10001, 0b10001, 0b10010, 0b11100]),
    ('E', [0b11111, 0b10000, 0b10000, 0b11110, 0b10000, 0b10000, 0b11111]),
    ('F', [0b11111, 0b10000, 0b10000, 0b11110, 0b10000, 0b10000, 0b10000]),
    ('G', [0b01110, 0b10001, 0b10000, 0b10111, 0b10001, 0b10001, 0b01111]),
    ('H', [0b10001, 0b10001, 0b10001, 0b11111, 0b10001, 0b10001, 0b10001]),
    ('I', [0b01110, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b01110]),
    ('J', [0b00111, 0b00010, 0b00010, 0b00010, 0b00010, 0b10010, 0b01100]),
    ('K', [0b10001, 0b10010, 0b10100, 0b11000, 0b10100, 0b10010, 0b10001]),
    ('L', [0b10000, 0b10000, 0b10000, 0b10000, 0b10000, 0b10000, 0b11111]),
    ('M', [0b10001, 0b11011, 0b10101, 0b10101, 0b10001, 0b10001, 0b10001]),
    ('N', [0b10001, 0b10001, 0b11001, 0b10101, 0b10011, 0b10001, 0b10001]),
    ('O', [0b01110, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01110]),
    ('P', [0b11110, 0b10001, 0b10001, 0b11110, 0b10000, 0b10000, 0b10000]),
    ('Q', [0b01110, 0b10001, 0b10001, 0b10001, 0b10101, 0b10010, 0b01101]),
    ('R', [0b11110, 0b10001, 0b10001, 0b11110, 0b10100, 0b10010, 0b10001]),
    ('S', [0b01111, 0b10000, 0b10000, 0b01110, 0b00001, 0b00001, 0b11110]),
    ('T', [0b11111, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100]),
    ('U', [0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01110]),
    ('V', [0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01010, 0b00100]),
    ('W', [0b10001, 0b10001, 0b10001, 0b10101, 0b10101, 0b10101, 0b01010]),
    ('X', [0b10001, 0b10001, 0b01010, 0b00100, 0b01010, 0b10001, 0b10001]),
    ('Y', [0b10001, 0b10001, 0b10001, 0b01010, 0b00100, 0b00100, 0b00100]),
    ('Z', [0b11111, 0b00001, 0b00010, 0b00100, 0b01000, 0b10000, 0b11111]),
    ('a', [0b00000, 0b00000, 0b01110, 0b00001, 0b01111, 0b10001, 0b01111]),
    ('b', [0b10000, 0b10000, 0b10110, 0b11001, 0b10001, 0b10001, 0b11110]),
    ('c', [0b00000, 0b00000, 0b01110, 0b10000, 0b10000, 0b10001, 0b01110]),
    ('d', [0b00001, 0b00001, 0b01101, 0b10011, 0b10001, 0b10001, 0b01111]),
    ('e', [0b00000, 0b00000, 0b01110, 0b10001, 0b11111, 0b10000, 0b01110]),
    ('f', [0b00110, 0b01001, 0b01000, 0b11100, 0b01000, 0b01000, 0b01000]),
    ('h', [0b10000, 0b10000, 0b10110, 0b11001, 0b10001, 0b10001, 0b10001]),
    ('i', [0b00100, 0b00000, 0b01100, 0b00100, 0b00100, 0b00100, 0b01110]),
    ('k', [0b10000, 0b10000, 0b10010, 0b10100, 0b11000, 0b10100, 0b10010]),
    ('l', [0b01100, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b01110]),
    ('m', [0b00000, 0b00000, 0b11010, 0b10101, 0b10101, 0b10001, 0b10001]),
    ('n', [0b00000, 0b00000, 0b10110, 0b11001, 0b10001, 0b10001, 0b10001]),
    ('o', [0b00000, 0b00000, 0b01110, 0b10001, 0b10001, 0b10001, 0b01110]),
    ('r', [0b00000, 0b00000, 0b10110, 0b11001, 0b10000, 0b10000, 0b10000]),
    ('s', [0b00000, 0b00000, 0b01110, 0b10000, 0b01110, 0b00001, 0b11110]),
    ('t', [0b01000, 0b01000, 0b11100, 0b01000, 0b01000, 0b01001, 0b00110]),
    ('u', [0b00000, 0b00000, 0b10001, 0b10001, 0b10001, 0b10011, 0b01101]),
    ('v', [0b00000, 0b00000, 0b10001, 0b10001, 0b10001, 0b01010, 0b00100]),
    ('w', [0b00000, 0b00000, 0b10001, 0b10001, 0b10101, 0b10101, 0b01010]),
    ('x', [0b00000, 0b00000, 0b10001, 0b01010, 0b00100, 0b01010, 0b10001]),
    ('z', [0b00000, 0b00000, 0b11111, 0b00010, 0b00100, 0b01000, 0b11111]),
    ('.', [0b00000, 0b00000, 0b00000, 0b00000, 0b00000, 0b01100, 0b01100]),
    (',', [0b00000, 0b00000, 0b00000, 0b00000, 0b01100, 0b00100, 0b01000]),
    (':', [0b00000, 0b01100, 0b01100, 0b00000, 0b01100, 0b01100, 0b00000]),
    (';', [0b00000, 0b01100, 0b01100, 0b00000, 0b01100, 0b00100, 0b01000]),
    ('"', [0b01010, 0b01010, 0b01010, 0b00000, 0b00000, 0b00000, 0b00000]),
    ('[', [0b01110, 0b01000, 0b01000, 0b01000, 0b01000, 0b01000, 0b01110]),
    (']', [0b01110, 0b00010, 0b00010, 0b00010, 0b00010, 0b00010, 0b01110]),
    ('*', [0b00000, 0b00100, 0b10101, 0b01110, 0b10101, 0b00100, 0b00000]),
    ('!', [0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b00000, 0b00100]),
    ('?', [0b01110, 0b10001, 0b00001, 0b00010, 0b00100, 0b00000, 0b00100]),
    ('%', [0b11000, 0b11001, 0b00010, 0b00100, 0b01000, 0b10011, 0b00011]),
    ('@', [0b01110, 0b10001, 0b00001, 0b01101, 0b10101, 0b10101, 0b01110]),
    ('/', [0b00000, 0b00001, 0b00010, 0b00100, 0b01000, 0b10000, 0b00000]),
    ('-', [0b00000, 0b00000, 0b00000, 0b11111, 0b00000, 0b00000, 0b00000]),
    ('_', [0b00000, 0b00000, 0b00000, 0b00000, 0b00000, 0b00000, 0b11111]),
    ('+', [0b00000, 0b00100, 0b00100, 0b11111, 0b00100, 0b00100, 0b00000]),
    ('=', [0b00000, 0b00000, 0b11111, 0b00000, 0b11111, 0b00000, 0b00000]),
    ('(', [0b00010, 0b00100, 0b01000, 0b01000, 0b01000, 0b00100, 0b00010]),
    (')', [0b01000, 0b00100, 0b00010, 0b00010, 0b00010, 0b00100, 0b01000]),
    ('<', [0b00010, 0b00100, 0b01000, 0b10000, 0b01000, 0b00100, 0b00010]),
    ('>', [0b01000, 0b00100, 0b00010, 0b00001, 0b00010, 0b00100, 0b01000]),
    ('\'', [0b00100, 0b00100, 0b01000, 0b00000, 0b00000, 0b00000, 0b00000]),
    ('`', [0b01000, 0b00100, 0b00010, 0b00000, 0b00000, 0b00000, 0b00000]),
];

/// The letters with a descender: their x-height part on rows 2 to 6 like the other
/// lower-case letters, then [`DESCENT`] rows below the baseline.
#[rustfmt::skip]
const DESCENDERS: &[(char, [u8; 9])] = &[
    ('g', [0b00000, 0b00000, 0b01111, 0b10001, 0b10001, 0b10001, 0b01111, 0b00001, 0b01110]),
    ('j', [0b00010, 0b00000, 0b00110, 0b00010, 0b00010, 0b00010, 0b00010, 0b10010, 0b01100]),
    ('p', [0b00000, 0b00000, 0b11110, 0b10001, 0b10001, 0b10001, 0b11110, 0b10000, 0b10000]),
    ('q', [0b00000, 0b00000, 0b01111, 0b10001, 0b10001, 0b10001, 0b01111, 0b00001, 0b00001]),
    ('y', [0b00000, 0b00000, 0b10001, 0b10001, 0b10001, 0b10001, 0b01111, 0b00001, 0b01110]),
];

/// Rows of a glyph: [`HEIGHT`] down to the baseline, then [`DESCENT`] below it.
pub type Rows = [u8; (HEIGHT + DESCENT) as usize];

/// The rows of `c`'s glyph (`?` for a character the font lacks).
pub fn glyph(c: char) -> Rows {
    if let Some((_, rows)) = DESCENDERS.iter().find(|(g, _)| *g == c) {
        return *rows;
    }
    let find = |c: char| GLYPHS.iter().find(|(g, _)| *g == c).map(|(_, rows)| *rows);
    let top = find(c).or_else(|| find('?')).unwrap_or([0; 7]);
    let mut rows = [0; (HEIGHT + DESCENT) as usize];
    rows[..HEIGHT as usize].copy_from_slice(&top);
    rows
}

/// The width of `text` in font pixels (no trailing blank column).
pub fn text_width(text: &str) -> u32 {
    let n = text.chars().count() as u32;
    if n == 0 {
        0
    } else {
        n * ADVANCE - 1
    }
}

/// Calls `pixel(x, y)` for every inked font pixel of `text`, origin at the top left
/// (descenders reach `y` up to `HEIGHT + DESCENT - 1`).
pub fn for_each_pixel(text: &str, mut pixel: impl FnMut(u32, u32)) {
    for (i, c) in text.chars().enumerate() {
        let rows = glyph(c);
        for (y, row) in rows.iter().enumerate() {
            for x in 0..WIDTH {
                if row & (1 << (WIDTH - 1 - x)) != 0 {
                    pixel(i as u32 * ADVANCE + x, y as u32);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_glyph_is_five_columns_wide_and_unique() {
        let all: Vec<char> = GLYPHS
            .iter()
            .map(|(c, _)| *c)
            .chain(DESCENDERS.iter().map(|(c, _)| *c))
            .collect();
        for (i, c) in all.iter().enumerate() {
            let rows = glyph(*c);
            assert!(rows.iter().all(|r| *r < 32), "{c:?} is wider than 5 px");
            for d in &all[i + 1..] {
                assert_ne!(c, d, "{c:?} twice");
                if *c != ' ' {
                    assert_ne!(rows, glyph(*d), "{c:?} and {d:?} look the same");
                }
            }
        }
    }

    #[test]
    fn letters_with_a_descender_go_below_the_baseline_and_differ_from_every_digit() {
        for c in ['g', 'j', 'p', 'q', 'y'] {
            let rows = glyph(c);
            assert!(rows[HEIGHT as usize..].iter().any(|&r| r != 0), "{c:?}");
            for d in '0'..='9' {
                // Not the digit, nor the digit shifted down onto the descender rows.
                let digit = glyph(d);
                let mut shifted = [0; (HEIGHT + DESCENT) as usize];
                shifted[DESCENT as usize..].copy_from_slice(&digit[..HEIGHT as usize]);
                assert_ne!(rows, digit, "{c:?} looks like {d:?}");
                assert_ne!(rows, shifted, "{c:?} looks like a low {d:?}");
            }
            // Its x-height part is on the rows of the other lower-case letters.
            assert_eq!(rows[0] | rows[1], if c == 'j' { rows[0] } else { 0 });
            assert_ne!(rows[2], 0, "{c:?}");
        }
        // Other characters stop at the baseline.
        for c in ['a', 'W', '9', '?', 'h'] {
            assert_eq!(glyph(c)[HEIGHT as usize..], [0, 0], "{c:?}");
        }
    }

    #[test]
    fn unknown_characters_draw_a_question_mark() {
        assert_eq!(glyph('§'), glyph('?'));
        assert_ne!(glyph('7'), glyph('?'));
        assert_eq!(text_width("ab"), 11);
        // What the window's messages use (the adapt summary, errors, paths) has glyphs.
        for c in
            "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,:;!%@/-_+=()<>'`\"[]*"
                .chars()
        {
            assert!(c == '?' || glyph(c) != glyph('?'), "{c:?} has no glyph");
        }
    }
}
