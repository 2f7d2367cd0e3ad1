//! One frame of the window, drawn with tiny-skia into a [`Pixmap`], and its conversion to the
//! `0RGB` `u32` pixels minifb shows.
//!
//! Layout, in logical pixels (times the window's scale on screen; [`WIDTH`]x[`HEIGHT`]):
//!
//! ```text
//! +--------------------------------------------------------------+
//! | +--------------------+  model mnist@1 (1 of 2)                |
//! | |                    |  7   99.6 %              +---------+  |
//! | |   drawing area     |      next: 2 (0.2 %)     | 28x28   |  |
//! | |   280 x 280        |                          | input   |  |
//! | |                    |  0 ▇                0.0  +---------+  |
//! | |                    |  …  ten probability bars, winner lit  |
//! | +--------------------+  9 ▇                0.1               |
//! | status line                                                  |
//! | help line: the keys                                          |
//! ```
//!
//! When the model is unsure, the large digit is a `?` beside "not sure: 3 or 9?". While W
//! asks "Wrong? This is a …", the question replaces the status line, larger and lit.
//!
//! ```text
//! +--------------------------------------------------------------+
//! ```
//!
//! Rendering reads the app and never runs the model: call [`App::update`] first.

use pismo_core::mlp::{CLASSES, INPUT};
use pismo_core::verdict::{ranked, Verdict};
use tiny_skia::{Color, Paint, Pixmap, Rect, Transform};

use crate::app::{draw_strokes, App, Point, Prediction, CANVAS};
use crate::font;

/// Window width in logical pixels.
pub const WIDTH: u32 = 640;
/// Window height in logical pixels.
pub const HEIGHT: u32 = 340;
/// Left edge of the drawing area.
pub const CANVAS_X: u32 = 16;
/// Top edge of the drawing area.
pub const CANVAS_Y: u32 = 16;

/// Left edge of the right-hand panel.
const PANEL_X: u32 = CANVAS_X + CANVAS + 20;
/// Magnification of the 28x28 preview.
const PREVIEW_ZOOM: u32 = 3;
/// Left edge and top of the preview.
const PREVIEW_X: u32 = WIDTH - 16 - 28 * PREVIEW_ZOOM;
const PREVIEW_Y: u32 = 40;
/// Bar chart: first row's top, row pitch, bar height, bars' left edge and full length.
const BARS_Y: u32 = 138;
const BAR_PITCH: u32 = 16;
const BAR_HEIGHT: u32 = 12;
const BAR_X: u32 = PANEL_X + 18;
const BAR_LEN: u32 = 220;
/// Status and help lines.
const STATUS_Y: u32 = 306;
const HELP_Y: u32 = STATUS_Y + font::HEIGHT + 9;

/// The keys, as the help line lists them before any correction is kept.
pub const HELP: &str =
    "mouse: draw  Z: undo  C/Bksp/right click: clear  Tab: model  S: save  W: wrong?  Q/Esc: quit";

/// Room for a line of text at font size 1 between the window's margins, in logical pixels.
const LINE_ROOM: u32 = WIDTH - 2 * CANVAS_X;

/// The help line: [`HELP`], plus "L: learn from my N corrections" once there are
/// `corrections`, and "B: back" when there is a model to go back to; the keys' short forms
/// where that would not fit the window.
pub fn help(corrections: Option<usize>, back: bool) -> String {
    let n = corrections.unwrap_or(0);
    if n == 0 && !back {
        return HELP.to_owned();
    }
    let learn = |long: bool| match (n, long) {
        (0, _) => None,
        (1, true) => Some("L: learn from my 1 correction".to_owned()),
        (n, true) => Some(format!("L: learn from my {n} corrections")),
        (n, false) => Some(format!("L: learn ({n})")),
    };
    let line = |long_learn: bool| {
        let mut keys: Vec<String> = ["Z: undo", "C: clear", "Tab: model", "S: save", "W: wrong?"]
            .map(str::to_owned)
            .to_vec();
        keys.extend(learn(long_learn));
        if back {
            keys.push("B: back".to_owned());
        }
        keys.push("Q: quit".to_owned());
        keys.join("  ")
    };
    let long = line(true);
    if font::text_width(&long) <= LINE_ROOM {
        long
    } else {
        line(false)
    }
}

/// `text` in lines that fit the window at font size 1, broken between words: one or two
/// lines, the second cut with `..` if even two are too few.
pub fn status_lines(text: &str) -> Vec<String> {
    let fits = |t: &str| font::text_width(t) <= LINE_ROOM;
    if fits(text) {
        return vec![text.to_owned()];
    }
    let mut first = String::new();
    let mut rest = text;
    for (i, _) in text.match_indices(' ') {
        if !fits(&text[..i]) {
            break;
        }
        first = text[..i].to_owned();
        rest = &text[i + 1..];
    }
    if first.is_empty() {
        // One word wider than the window: break it anywhere.
        let cut = text
            .char_indices()
            .map(|(i, _)| i)
            .take_while(|&i| fits(&text[..i]))
            .last()
            .unwrap_or(0);
        first = text[..cut].to_owned();
        rest = &text[cut..];
    }
    let mut second = rest.to_owned();
    if !fits(&second) {
        while !second.is_empty() && !fits(&format!("{second}..")) {
            second.pop();
        }
        second.push_str("..");
    }
    vec![first, second]
}

/// Right edge of the header line (the window's margin).
const HEADER_END: u32 = WIDTH - 16;

/// The header line: the model, and its place in the registry when there are several
/// (Tab switches; the help line says so). Returns the text and its font size: 2 when it
/// fits in the panel, else 1, cut with `..` if even that is too long.
pub fn header(model: &str, index: usize, count: usize) -> (String, u32) {
    let room = HEADER_END - PANEL_X;
    let full = if count > 1 {
        format!("model {model} ({} of {count})", index + 1)
    } else {
        format!("model {model}")
    };
    if font::text_width(&full) * 2 <= room {
        return (full, 2);
    }
    let mut text = full;
    if font::text_width(&text) > room {
        while !text.is_empty() && font::text_width(&text) + font::text_width("..") > room {
            text.pop();
        }
        text.push_str("..");
    }
    (text, 1)
}

/// Colours of the frame.
pub mod colour {
    /// Window background.
    pub const BACKGROUND: [u8; 3] = [0x1d, 0x21, 0x27];
    /// Frame around the drawing area and preview, empty bar tracks.
    pub const TRACK: [u8; 3] = [0x2e, 0x34, 0x3d];
    /// Main text.
    pub const TEXT: [u8; 3] = [0xe6, 0xe9, 0xee];
    /// Secondary text.
    pub const DIM: [u8; 3] = [0x8b, 0x94, 0x9e];
    /// Probability bars.
    pub const BAR: [u8; 3] = [0x4f, 0x7c, 0xac];
    /// The winning digit: its bar, its label and the large text.
    pub const WINNER: [u8; 3] = [0xf5, 0xa5, 0x24];
}

fn paint(rgb: [u8; 3]) -> Paint<'static> {
    let mut paint = Paint::default();
    paint.set_color_rgba8(rgb[0], rgb[1], rgb[2], 255);
    paint.anti_alias = false;
    paint
}

/// A blank frame for a window of `scale`.
pub fn frame(scale: u32) -> Pixmap {
    Pixmap::new(WIDTH * scale, HEIGHT * scale).expect("a window of a sane scale")
}

/// Fills the logical rectangle (x, y, w, h) scaled by `s`.
fn rect(pm: &mut Pixmap, s: u32, (x, y, w, h): (u32, u32, u32, u32), rgb: [u8; 3]) {
    if let Some(r) = Rect::from_xywh(
        (x * s) as f32,
        (y * s) as f32,
        (w * s) as f32,
        (h * s) as f32,
    ) {
        pm.fill_rect(r, &paint(rgb), Transform::identity(), None);
    }
}

/// Draws `text` at logical (x, y) with font pixels `px` logical pixels wide.
fn text(pm: &mut Pixmap, s: u32, (x, y): (u32, u32), px: u32, text: &str, rgb: [u8; 3]) {
    let paint = paint(rgb);
    let unit = (px * s) as f32;
    font::for_each_pixel(text, |fx, fy| {
        if let Some(r) = Rect::from_xywh(
            (x * s) as f32 + fx as f32 * unit,
            (y * s) as f32 + fy as f32 * unit,
            unit,
            unit,
        ) {
            pm.fill_rect(r, &paint, Transform::identity(), None);
        }
    });
}

/// The on-screen row of digit `d`'s bar: (x, y, w, h) of the full track.
pub fn bar_track(d: usize) -> (u32, u32, u32, u32) {
    (BAR_X, BARS_Y + d as u32 * BAR_PITCH, BAR_LEN, BAR_HEIGHT)
}

/// The preview's rectangle (x, y, w, h).
pub fn preview_rect() -> (u32, u32, u32, u32) {
    (PREVIEW_X, PREVIEW_Y, 28 * PREVIEW_ZOOM, 28 * PREVIEW_ZOOM)
}

/// The large winner text's rectangle (x, y, w, h).
pub fn winner_rect() -> (u32, u32, u32, u32) {
    (PANEL_X, PREVIEW_Y, 50, 70)
}

/// The help line's rectangle (x, y, w, h).
#[cfg(test)]
pub fn help_rect() -> (u32, u32, u32, u32) {
    (CANVAS_X, HELP_Y, font::text_width(HELP), font::HEIGHT)
}

/// Draws the whole frame of `app` at `scale` into `pm` (made by [`frame`]).
pub fn render(app: &App, scale: u32, pm: &mut Pixmap) {
    let s = scale;
    let [r, g, b] = colour::BACKGROUND;
    pm.fill(Color::from_rgba8(r, g, b, 255));
    drawing_area(app.strokes(), s, pm);
    let (model, size) = header(
        &app.model().to_string(),
        app.model_index(),
        app.model_count(),
    );
    text(pm, s, (PANEL_X, CANVAS_Y), size, &model, colour::DIM);
    preview_frame(s, pm);
    match app.prediction() {
        Some(p) => {
            answer(p, s, pm);
            preview(&p.seen, s, pm);
        }
        None => invitation(s, pm),
    }
    bars(app.prediction(), s, pm);
    status(app, s, pm);
    let keys = help(app.corrections(), app.can_go_back());
    text(pm, s, (CANVAS_X, HELP_Y), 1, &keys, colour::TEXT);
}

/// The drawing area: a frame, white paper, the strokes redrawn at screen resolution.
fn drawing_area(strokes: &[Vec<Point>], s: u32, pm: &mut Pixmap) {
    rect(
        pm,
        s,
        (CANVAS_X - 2, CANVAS_Y - 2, CANVAS + 4, CANVAS + 4),
        colour::TRACK,
    );
    rect(pm, s, (CANVAS_X, CANVAS_Y, CANVAS, CANVAS), [255; 3]);
    // Strokes may run off the paper: clip them to it by drawing on a canvas-sized pixmap.
    if let Some(mut paper) = Pixmap::new(CANVAS * s, CANVAS * s) {
        paper.fill(Color::WHITE);
        draw_strokes(
            &mut paper,
            strokes,
            Transform::from_scale(s as f32, s as f32),
        );
        pm.draw_pixmap(
            (CANVAS_X * s) as i32,
            (CANVAS_Y * s) as i32,
            paper.as_ref(),
            &tiny_skia::PixmapPaint::default(),
            Transform::identity(),
            None,
        );
    }
}

/// The preview's frame, black inside (filled by [`preview`] when there is a prediction),
/// and its caption.
fn preview_frame(s: u32, pm: &mut Pixmap) {
    let (px, py, pw, ph) = preview_rect();
    rect(pm, s, (px - 2, py - 2, pw + 4, ph + 4), colour::TRACK);
    rect(pm, s, (px, py, pw, ph), [0; 3]);
    text(pm, s, (px, py + ph + 4), 1, "model input", colour::DIM);
}

/// The large answer: the digit, its probability and the next most likely digit when sure;
/// a question mark and the two digits it hesitates between when not.
fn answer(p: &Prediction, s: u32, pm: &mut Pixmap) {
    let (wx, wy, _, _) = winner_rect();
    match p.verdict {
        Verdict::Sure { digit, p: top } => {
            text(pm, s, (wx, wy), 10, &digit.to_string(), colour::WINNER);
            let pct = format!("{:.1} %", top * 100.0);
            text(pm, s, (wx + 62, wy + 2), 3, &pct, colour::TEXT);
            let order = ranked(&p.probabilities);
            let next = format!(
                "next {}: {:.1} %",
                order[1],
                p.probabilities[order[1]] * 100.0
            );
            text(pm, s, (wx + 62, wy + 34), 2, &next, colour::DIM);
        }
        // Honest uncertainty: a question mark, and the two digits it hesitates
        // between (the bars show their probabilities).
        Verdict::Unsure { first, second, .. } => {
            text(pm, s, (wx, wy), 10, "?", colour::WINNER);
            text(pm, s, (wx + 62, wy + 4), 2, "not sure:", colour::TEXT);
            let pair = format!("{first} or {second}?");
            text(pm, s, (wx + 62, wy + 28), 3, &pair, colour::WINNER);
        }
    }
}

/// What the network saw (`seen`, 28x28), magnified into the preview frame.
fn preview(seen: &[f32; INPUT], s: u32, pm: &mut Pixmap) {
    let (px, py, _, _) = preview_rect();
    for (i, &v) in seen.iter().enumerate() {
        let level = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
        if level > 0 {
            let (x, y) = ((i % 28) as u32, (i / 28) as u32);
            rect(
                pm,
                s,
                (
                    px + x * PREVIEW_ZOOM,
                    py + y * PREVIEW_ZOOM,
                    PREVIEW_ZOOM,
                    PREVIEW_ZOOM,
                ),
                [level; 3],
            );
        }
    }
}

/// In place of the answer while nothing is drawn.
fn invitation(s: u32, pm: &mut Pixmap) {
    text(
        pm,
        s,
        (PANEL_X, PREVIEW_Y + 10),
        3,
        "draw a digit",
        colour::TEXT,
    );
    text(
        pm,
        s,
        (PANEL_X, PREVIEW_Y + 40),
        2,
        "with the mouse",
        colour::DIM,
    );
}

/// The ten probability bars with their digits, and their values when there is a
/// prediction; the winner lit.
fn bars(prediction: Option<&Prediction>, s: u32, pm: &mut Pixmap) {
    for d in 0..CLASSES {
        let (x, y, w, h) = bar_track(d);
        let winner = prediction.is_some_and(|p| p.digit == d);
        let label = if winner { colour::WINNER } else { colour::TEXT };
        text(pm, s, (PANEL_X, y - 1), 2, &d.to_string(), label);
        rect(pm, s, (x, y, w, h), colour::TRACK);
        let v = prediction.map_or(0.0, |p| p.probabilities[d]);
        // At least a sliver per percent started, so small probabilities stay visible.
        let len = ((v * w as f32).round() as u32).min(w);
        let len = if v >= 0.005 { len.max(2) } else { len };
        if len > 0 {
            let fill = if winner { colour::WINNER } else { colour::BAR };
            rect(pm, s, (x, y, len, h), fill);
        }
        if prediction.is_some() {
            let value = format!("{:.1}", v * 100.0);
            let tx = x + w + 6 + 5 * 12 - font::text_width(&value) * 2;
            text(pm, s, (tx, y - 1), 2, &value, label);
        }
    }
}

/// The status line: W's question, large and lit, until a digit or Esc answers it; else the
/// status, lit while learning, on two lines when long.
fn status(app: &App, s: u32, pm: &mut Pixmap) {
    if app.is_correcting() {
        text(
            pm,
            s,
            (CANVAS_X, STATUS_Y - 4),
            2,
            app.status(),
            colour::WINNER,
        );
        return;
    }
    let rgb = if app.is_learning() {
        colour::WINNER
    } else {
        colour::DIM
    };
    let lines = status_lines(app.status());
    let top = if lines.len() > 1 {
        STATUS_Y - 4
    } else {
        STATUS_Y
    };
    for (i, line) in lines.iter().enumerate() {
        text(pm, s, (CANVAS_X, top + i as u32 * 9), 1, line, rgb);
    }
}

/// Converts `pm` (opaque) into minifb's `0RGB` pixels.
pub fn to_0rgb(pm: &Pixmap, out: &mut Vec<u32>) {
    out.clear();
    out.extend(
        pm.pixels().iter().map(|p| {
            (u32::from(p.red()) << 16) | (u32::from(p.green()) << 8) | u32::from(p.blue())
        }),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::tests::{shipped, ONE, SEVEN};

    fn px(pm: &Pixmap, s: u32, x: u32, y: u32) -> [u8; 3] {
        let p = pm.pixel(x * s, y * s).expect("inside the frame");
        [p.red(), p.green(), p.blue()]
    }

    /// How many device pixels of the logical rectangle have colour `rgb`.
    fn count(pm: &Pixmap, s: u32, rect: (u32, u32, u32, u32), rgb: [u8; 3]) -> usize {
        count_where(pm, s, rect, |p| p == rgb)
    }

    /// How many device pixels of the logical rectangle have a colour that `keep` accepts.
    fn count_where(
        pm: &Pixmap,
        s: u32,
        (x, y, w, h): (u32, u32, u32, u32),
        keep: impl Fn([u8; 3]) -> bool,
    ) -> usize {
        let mut n = 0;
        for dy in 0..h * s {
            for dx in 0..w * s {
                let p = pm.pixel(x * s + dx, y * s + dy).expect("inside the frame");
                n += usize::from(keep([p.red(), p.green(), p.blue()]));
            }
        }
        n
    }

    fn check_frame(digit: usize, points: &[(f32, f32)], s: u32) {
        let mut app = App::new(shipped(), None).expect("shipped model");
        app.stroke(points);
        app.update();
        let p = app.prediction().expect("ink").clone();
        assert_eq!(p.digit, digit);
        let mut pm = frame(s);
        render(&app, s, &mut pm);
        if let Some(dir) = std::env::var_os("PISMO_DRAW_FRAMES") {
            let file = std::path::Path::new(&dir).join(format!("frame-{digit}-x{s}.png"));
            pm.save_png(file).expect("save the frame");
        }

        // The stroke is on the paper, black, at its samples; the paper is white elsewhere.
        let (x0, y0) = points[0];
        assert_eq!(
            px(&pm, s, CANVAS_X + x0 as u32, CANVAS_Y + y0 as u32),
            [0; 3]
        );
        assert_eq!(px(&pm, s, CANVAS_X + 5, CANVAS_Y + 270), [255; 3]);

        // The winner's bar is lit along its length; the others' tracks are mostly empty.
        let (x, y, w, h) = bar_track(digit);
        let lit = count(&pm, s, (x, y, w, h), colour::WINNER);
        let expected = (p.probabilities[digit] * w as f32) as usize * (h * s * s) as usize;
        assert!(lit >= expected.saturating_sub((h * s * s * 2) as usize) && lit > 0);
        for d in (0..CLASSES).filter(|&d| d != digit) {
            assert_eq!(count(&pm, s, bar_track(d), colour::WINNER), 0, "bar {d}");
            assert!(count(&pm, s, bar_track(d), colour::TRACK) > 0, "track {d}");
        }

        // The large winner digit, the help line and the preview are drawn.
        assert!(count(&pm, s, winner_rect(), colour::WINNER) > 500 * (s * s) as usize);
        assert!(count(&pm, s, help_rect(), colour::TEXT) > 800 * (s * s) as usize);
        // The preview shows what the network saw (deskewed by the default model, so its ink is
        // interpolated grey rather than pure white): bright pixels, not necessarily white.
        let bright = |rgb: [u8; 3]| rgb.iter().all(|&c| c > 128);
        assert!(count_where(&pm, s, preview_rect(), bright) > 9 * (s * s) as usize);
    }

    #[test]
    fn a_frame_of_a_seven_shows_its_bars_text_and_preview() {
        check_frame(7, &SEVEN, 1);
    }

    #[test]
    fn a_frame_of_a_one_at_scale_two_shows_its_bars_text_and_preview() {
        check_frame(1, &ONE, 2);
    }

    #[test]
    fn rendering_twice_without_changes_runs_the_model_once() {
        let mut app = App::new(shipped(), None).expect("shipped model");
        app.stroke(&SEVEN);
        let mut pm = frame(1);
        let mut first = Vec::new();
        let mut second = Vec::new();
        assert!(app.update());
        render(&app, 1, &mut pm);
        to_0rgb(&pm, &mut first);
        assert!(!app.update());
        render(&app, 1, &mut pm);
        to_0rgb(&pm, &mut second);
        assert_eq!(app.inferences(), 1);
        assert_eq!(first, second);
        assert_eq!(first.len(), (WIDTH * HEIGHT) as usize);
        let [r, g, b] = colour::BACKGROUND;
        assert_eq!(
            first[0],
            (u32::from(r) << 16) | (u32::from(g) << 8) | u32::from(b)
        );
    }

    #[test]
    fn a_blank_canvas_invites_drawing_and_lights_no_bar() {
        let mut app = App::new(shipped(), None).expect("shipped model");
        app.update();
        let mut pm = frame(1);
        render(&app, 1, &mut pm);
        for d in 0..CLASSES {
            assert_eq!(count(&pm, 1, bar_track(d), colour::WINNER), 0);
            assert_eq!(count(&pm, 1, bar_track(d), colour::BAR), 0);
        }
        assert!(count(&pm, 1, (PANEL_X, PREVIEW_Y + 10, 200, 21), colour::TEXT) > 100);
    }

    #[test]
    fn the_header_fits_the_panel_whatever_the_model_name() {
        let room = HEADER_END - PANEL_X;
        for (name, count) in [
            ("mnist@1", 2),
            ("mnist-int8@1", 12),
            ("webtest-stop@1", 3),
            ("a-model-with-a-name-far-too-long-for-any-header@123", 40),
        ] {
            let (text, size) = header(name, count - 1, count);
            assert!(
                font::text_width(&text) * size <= room,
                "{text:?} at size {size} is wider than {room}"
            );
            assert!(text.starts_with("model "), "{text}");
        }
        assert_eq!(
            header("mnist@1", 0, 2),
            ("model mnist@1 (1 of 2)".to_owned(), 2)
        );
        assert_eq!(header("mnist@1", 0, 1), ("model mnist@1".to_owned(), 2));
        let (cut, size) = header("a-model-with-a-name-far-too-long-for-any-header@123", 0, 40);
        assert_eq!(size, 1);
        assert!(cut.ends_with(".."), "{cut}");

        // The shipped registry (two models) at the default scale: nothing drawn in the
        // right margin beside the header.
        let mut app = App::new(shipped(), None).expect("shipped model");
        assert!(app.model_count() >= 2);
        app.update();
        let mut pm = frame(2);
        render(&app, 2, &mut pm);
        if let Some(dir) = std::env::var_os("PISMO_DRAW_FRAMES") {
            let file = std::path::Path::new(&dir).join("frame-header-x2.png");
            pm.save_png(file).expect("save the frame");
        }
        let margin = (HEADER_END, CANVAS_Y, WIDTH - HEADER_END, 2 * font::HEIGHT);
        assert_eq!(count(&pm, 2, margin, colour::DIM), 0);
        let (x, y, _, _) = (PANEL_X, CANVAS_Y, 0, 0);
        assert!(count(&pm, 2, (x, y, room, 2 * font::HEIGHT), colour::DIM) > 500);
    }

    #[test]
    fn an_unsure_drawing_shows_a_question_mark_and_both_digits() {
        let mut app = App::new(shipped(), None).expect("shipped model");
        for stroke in crate::app::tests::AMBIGUOUS {
            app.stroke(stroke);
        }
        app.update();
        assert!(!app.prediction().expect("ink").verdict.is_sure());
        let mut pm = frame(1);
        render(&app, 1, &mut pm);
        if let Some(dir) = std::env::var_os("PISMO_DRAW_FRAMES") {
            let file = std::path::Path::new(&dir).join("frame-unsure-x1.png");
            pm.save_png(file).expect("save the frame");
        }
        let (wx, wy, _, _) = winner_rect();
        // "not sure:" in large text, "9 or 4?" lit below it.
        let words = (
            wx + 62,
            wy + 4,
            font::text_width("not sure:") * 2,
            font::HEIGHT * 2,
        );
        assert!(count(&pm, 1, words, colour::TEXT) > 100);
        let pair = (
            wx + 62,
            wy + 28,
            font::text_width("9 or 4?") * 3,
            font::HEIGHT * 3,
        );
        assert!(count(&pm, 1, pair, colour::WINNER) > 100);
        // The large glyph is a question mark, not the arg-max digit.
        let mut glyph = frame(1);
        glyph.fill(Color::BLACK);
        text(&mut glyph, 1, (wx, wy), 10, "?", colour::WINNER);
        let drawn = count(&pm, 1, winner_rect(), colour::WINNER);
        assert_eq!(drawn, count(&glyph, 1, winner_rect(), colour::WINNER));
    }

    #[test]
    fn the_help_line_offers_learning_once_there_are_corrections_and_always_fits() {
        assert_eq!(help(None, false), HELP);
        assert_eq!(help(Some(0), false), HELP);
        assert!(help(Some(1), false).contains("  L: learn from my 1 correction  "));
        assert!(help(Some(12), false).contains("  L: learn from my 12 corrections  "));
        assert!(!help(Some(12), false).contains("B: back"));
        assert!(help(Some(12), true).contains("  B: back  "));
        assert!(help(Some(0), true).contains("  B: back  "));
        assert!(help(Some(123_456), true).contains("  L: learn (123456)  "));
        for n in [
            None,
            Some(1),
            Some(9),
            Some(99),
            Some(999),
            Some(9999),
            Some(10_000_000),
        ] {
            for back in [false, true] {
                let line = help(n, back);
                assert!(font::text_width(&line) <= LINE_ROOM, "{line:?} is too wide");
                assert!(line.contains("W: wrong?") && line.contains("Q"), "{line}");
            }
        }
    }

    #[test]
    fn a_long_status_takes_two_lines_cut_between_words() {
        assert_eq!(status_lines("model mnist@1"), vec!["model mnist@1"]);
        let long = "word ".repeat(30);
        let lines = status_lines(long.trim_end());
        assert_eq!(lines.len(), 2);
        assert!(lines.iter().all(|l| font::text_width(l) <= LINE_ROOM));
        assert!(lines[0].ends_with("word") && !lines[1].ends_with(".."));
        assert_eq!(lines.join(" "), long.trim_end());
        let longer = "word ".repeat(60);
        let lines = status_lines(longer.trim_end());
        assert!(lines[1].ends_with(".."), "{lines:?}");
        assert!(lines.iter().all(|l| font::text_width(l) <= LINE_ROOM));
        let word = "x".repeat(150);
        let lines = status_lines(&word);
        assert_eq!(lines.len(), 2);
        assert!(lines.iter().all(|l| font::text_width(l) <= LINE_ROOM));
    }

    #[test]
    fn the_correction_question_is_shown_large_and_lit() {
        let mut app = App::new(shipped(), None).expect("shipped model");
        app.stroke(&SEVEN);
        app.update();
        assert!(app.start_correction());
        let mut pm = frame(2);
        render(&app, 2, &mut pm);
        if let Some(dir) = std::env::var_os("PISMO_DRAW_FRAMES") {
            let file = std::path::Path::new(&dir).join("frame-correcting-x2.png");
            pm.save_png(file).expect("save the frame");
        }
        let prompt = crate::app::CORRECTION_PROMPT;
        let width = font::text_width(prompt) * 2;
        assert!(CANVAS_X + width <= WIDTH - 16, "the question fits");
        let line = (CANVAS_X, STATUS_Y - 4, width, font::HEIGHT * 2);
        assert!(count(&pm, 2, line, colour::WINNER) > 1000 * 4);
        assert!(count(&pm, 2, help_rect(), colour::TEXT) > 800 * 4);
        assert!(
            font::text_width(HELP) + CANVAS_X <= WIDTH - 16,
            "the help line fits"
        );
    }
}
