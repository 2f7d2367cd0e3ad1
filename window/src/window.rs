//! The minifb window: turns mouse and keys into [`App`] calls and shows the frames
//! [`render`](crate::render) draws.
//!
//! Keys are taken from minifb's input callback ([`Presses`]), not from its once-a-frame
//! key state: a tap shorter than a frame (pressed and released between two polls) would be
//! lost there.
//!
//! Idle costs almost nothing: minifb's event polling is limited to [`FPS`] per second and
//! sleeps between polls, a frame is rendered and sent to the window only when something
//! changed (a stroke, a key, a model switch, learning's progress), and the model runs only
//! when the drawing or the model changed ([`App::update`]).

use std::cell::RefCell;
use std::io::Write;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

use minifb::{InputCallback, Key, MouseButton, MouseMode, Window, WindowOptions};
use tiny_skia::Pixmap;

use crate::app::{App, Point, CANVAS};
use crate::render::{self, CANVAS_X, CANVAS_Y, HEIGHT, WIDTH};
use crate::WindowError;

/// Polls per second (minifb sleeps in between).
const FPS: usize = 60;

/// The message for a machine without a display.
pub const NO_DISPLAY: &str = "no display found; try `pismo serve`";

/// Whether a display server is announced (`DISPLAY` or `WAYLAND_DISPLAY`). Other systems
/// always have one.
pub fn has_display() -> bool {
    if cfg!(all(unix, not(target_os = "macos"))) {
        ["DISPLAY", "WAYLAND_DISPLAY"]
            .iter()
            .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()))
    } else {
        true
    }
}

/// `pismo-drawing-<UTC stamp>.png` in the current folder, `-2`, `-3`… if taken.
fn save_path() -> PathBuf {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let stamp = pismo_files::stamp::utc_stamp(secs);
    let mut path = PathBuf::from(format!("pismo-drawing-{stamp}.png"));
    let mut n = 2;
    while path.exists() {
        path = PathBuf::from(format!("pismo-drawing-{stamp}-{n}.png"));
        n += 1;
    }
    path
}

/// Saves the drawing (S) and says where, on `out` and in the status line.
fn save(app: &mut App, out: &mut dyn Write) -> Result<(), WindowError> {
    if app.strokes().is_empty() {
        app.set_status("nothing to save: draw a digit first".to_owned());
        return Ok(());
    }
    let path = save_path();
    match std::fs::write(&path, app.png()) {
        Ok(()) => {
            app.set_status(format!("saved {}", path.display()));
            writeln!(out, "{}", path.display())?;
            out.flush()?;
        }
        Err(e) => {
            let msg = format!("cannot save {}: {e}", path.display());
            eprintln!("error: {msg}");
            app.set_status(msg);
        }
    }
    Ok(())
}

/// The digit of a digit key (top row or keypad).
fn digit_key(key: Key) -> Option<u8> {
    const TOP: [Key; 10] = [
        Key::Key0,
        Key::Key1,
        Key::Key2,
        Key::Key3,
        Key::Key4,
        Key::Key5,
        Key::Key6,
        Key::Key7,
        Key::Key8,
        Key::Key9,
    ];
    const PAD: [Key; 10] = [
        Key::NumPad0,
        Key::NumPad1,
        Key::NumPad2,
        Key::NumPad3,
        Key::NumPad4,
        Key::NumPad5,
        Key::NumPad6,
        Key::NumPad7,
        Key::NumPad8,
        Key::NumPad9,
    ];
    let d = TOP.iter().position(|&k| k == key);
    d.or_else(|| PAD.iter().position(|&k| k == key))
        .map(|d| d as u8)
}

/// Saves the correction (a digit after W) and writes the sample's folder to `out`.
fn correct(app: &mut App, digit: u8, out: &mut dyn Write) -> Result<(), WindowError> {
    match app.correct(digit) {
        Some(Ok(info)) => {
            let dir = info.drawing.parent().unwrap_or(&info.drawing);
            writeln!(out, "{}", dir.display())?;
            out.flush()?;
        }
        Some(Err(e)) => eprintln!("error: {e}"),
        None => {}
    }
    Ok(())
}

/// Every key press the window reports, in order, with whether Shift was down: minifb
/// calls [`InputCallback::set_key_state`] for each press and release as it reads the
/// window's events, so a key pressed and released between two frames is still here when
/// the frame loop takes the presses ([`Presses::take`]). The system's key repeat arrives
/// as more presses.
#[derive(Clone, Debug, Default)]
struct Presses(Rc<RefCell<PressState>>);

#[derive(Debug, Default)]
struct PressState {
    /// Presses not taken yet: the key, and whether a Shift key was down.
    keys: Vec<(Key, bool)>,
    /// Left and right Shift are down.
    shift: [bool; 2],
}

impl Presses {
    /// The presses since the last call, oldest first.
    fn take(&self) -> Vec<(Key, bool)> {
        std::mem::take(&mut self.0.borrow_mut().keys)
    }
}

impl InputCallback for Presses {
    fn add_char(&mut self, _: u32) {}

    fn set_key_state(&mut self, key: Key, down: bool) {
        let mut state = self.0.borrow_mut();
        match key {
            Key::LeftShift => state.shift[0] = down,
            Key::RightShift => state.shift[1] = down,
            _ if down => {
                let shift = state.shift.contains(&true);
                state.keys.push((key, shift));
            }
            _ => {}
        }
    }
}

/// Opens the window at `scale` and runs until it is closed (Esc, Q, the close button); the
/// paths of saved drawings go to `out`. The caller has checked [`has_display`].
pub fn run(mut app: App, scale: u32, out: &mut dyn Write) -> Result<(), WindowError> {
    let presses = Presses::default();
    let mut screen = Screen::open(scale, &presses)?;
    let mut mouse = Mouse::default();
    let mut dirty = true;
    'frames: while screen.window.is_open() {
        dirty |= mouse.apply(&screen.window, scale, &mut app);
        // Keys, every press since the last frame.
        for (key, shift) in presses.take() {
            match press(&mut app, key, shift, out)? {
                Pressed::Quit => break 'frames,
                Pressed::Changed(changed) => dirty |= changed,
            }
        }
        dirty |= learning_news(&mut app);
        if dirty {
            screen.show(&mut app)?;
            dirty = false;
        } else {
            screen.window.update();
        }
    }
    // Learning under way: let it end, so its run is closed and its model registered.
    if app.is_learning() {
        drop(screen);
        eprintln!("waiting for learning to end...");
        app.wait_learning();
        eprintln!("{}", app.status());
    }
    Ok(())
}

/// The window and the pixels of its frames.
struct Screen {
    window: Window,
    scale: u32,
    /// Width and height in screen pixels.
    size: (usize, usize),
    /// The frame [`render::render`] draws.
    frame: Pixmap,
    /// The frame as minifb's pixels.
    buffer: Vec<u32>,
}

impl Screen {
    /// Opens the window at `scale`, its keys going to `presses`.
    fn open(scale: u32, presses: &Presses) -> Result<Self, WindowError> {
        let (w, h) = ((WIDTH * scale) as usize, (HEIGHT * scale) as usize);
        let mut window =
            Window::new("pismo draw", w, h, WindowOptions::default()).map_err(|e| {
                WindowError::System(format!("{NO_DISPLAY} (cannot open a window: {e})"))
            })?;
        window.set_target_fps(FPS);
        window.set_input_callback(Box::new(presses.clone()));
        Ok(Self {
            window,
            scale,
            size: (w, h),
            frame: render::frame(scale),
            buffer: Vec::with_capacity(w * h),
        })
    }

    /// Brings `app` up to date and shows its frame.
    fn show(&mut self, app: &mut App) -> Result<(), WindowError> {
        app.update();
        render::render(app, self.scale, &mut self.frame);
        render::to_0rgb(&self.frame, &mut self.buffer);
        let (w, h) = self.size;
        self.window
            .update_with_buffer(&self.buffer, w, h)
            .map_err(|e| WindowError::System(format!("cannot draw the window: {e}")))
    }
}

/// The mouse between frames: the left button draws, a right click clears.
#[derive(Debug, Default)]
struct Mouse {
    right_was_down: bool,
}

impl Mouse {
    /// Turns the mouse's state in `window` (at `scale`) into strokes and clears of `app`;
    /// returns whether the drawing changed.
    fn apply(&mut self, window: &Window, scale: u32, app: &mut App) -> bool {
        let s = scale as f32;
        let to_canvas =
            |(x, y): (f32, f32)| -> Point { (x / s - CANVAS_X as f32, y / s - CANVAS_Y as f32) };
        let left = window.get_mouse_down(MouseButton::Left);
        let pos = window.get_mouse_pos(MouseMode::Pass).map(to_canvas);
        let mut changed = false;
        match (left, pos, app.is_pen_down()) {
            (true, Some(p), false) => {
                let inside =
                    (0.0..CANVAS as f32).contains(&p.0) && (0.0..CANVAS as f32).contains(&p.1);
                if inside {
                    app.pen_down(p);
                    changed = true;
                }
            }
            (true, Some(p), true) => {
                let before = app.strokes().last().map(Vec::len);
                app.pen_move(p);
                changed = app.strokes().last().map(Vec::len) != before;
            }
            (false, _, true) => app.pen_up(),
            _ => {}
        }
        let right = window.get_mouse_down(MouseButton::Right);
        if right && !self.right_was_down {
            changed |= app.clear();
        }
        self.right_was_down = right;
        changed
    }
}

/// What a key press did.
#[derive(Debug, PartialEq)]
enum Pressed {
    /// Q or Esc: close the window.
    Quit,
    /// Anything else: whether the frame changed.
    Changed(bool),
}

/// Applies one key press (`shift`: with a Shift key down) to `app`; saved paths go to `out`.
fn press(
    app: &mut App,
    key: Key,
    shift: bool,
    out: &mut dyn Write,
) -> Result<Pressed, WindowError> {
    // While asking "Wrong? This is a …": a digit answers, Esc cancels.
    if app.is_correcting() {
        if let Some(d) = digit_key(key) {
            correct(app, d, out)?;
            return Ok(Pressed::Changed(true));
        }
        if key == Key::Escape {
            return Ok(Pressed::Changed(app.cancel_correction()));
        }
    }
    let changed = match key {
        Key::Escape | Key::Q => return Ok(Pressed::Quit),
        Key::W => {
            app.start_correction();
            true
        }
        // What L and B did also goes to stderr (for scripts, and a record).
        Key::L => {
            app.start_learning();
            eprintln!("{}", app.status());
            true
        }
        Key::B => {
            app.back();
            eprintln!("{}", app.status());
            true
        }
        Key::C | Key::Backspace | Key::Delete => app.clear(),
        Key::Z => app.undo(),
        Key::Tab => {
            app.cycle_model(if shift { -1 } else { 1 });
            true
        }
        Key::S => {
            app.update();
            save(app, out)?;
            true
        }
        _ => false,
    };
    Ok(Pressed::Changed(changed))
}

/// Takes learning's progress, and its end (said on stderr too); returns whether the frame
/// changed.
fn learning_news(app: &mut App) -> bool {
    let was_learning = app.is_learning();
    if !app.poll_learning() {
        return false;
    }
    if was_learning && !app.is_learning() {
        eprintln!("{}", app.status());
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 28: a tap (press and release before the next frame) is a press all the same.
    #[test]
    fn issue28_a_tap_between_two_frames_is_kept() {
        let presses = Presses::default();
        let mut callback: Box<dyn InputCallback> = Box::new(presses.clone());
        callback.set_key_state(Key::Z, true);
        callback.set_key_state(Key::Z, false);
        callback.set_key_state(Key::LeftShift, true);
        callback.set_key_state(Key::Tab, true);
        callback.set_key_state(Key::Tab, false);
        callback.set_key_state(Key::LeftShift, false);
        callback.set_key_state(Key::Tab, true);
        assert_eq!(
            presses.take(),
            [(Key::Z, false), (Key::Tab, true), (Key::Tab, false)]
        );
        assert_eq!(presses.take(), []);
    }
}
