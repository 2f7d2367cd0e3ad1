//! The drawing window's state, independent of any window system: strokes, the canvas the
//! model reads, the models of the registry, and the prediction.
//!
//! Guarantees (tested without a display):
//! - The canvas is [`CANVAS`]x[`CANVAS`] grey pixels, dark ink on white, whatever the window's
//!   scale; strokes are round, anti-aliased, [`STROKE_WIDTH`] px wide (a 28x28 target scales
//!   the drawing by about 1/10, so the ink ends up 2 px wide, as in MNIST) and consecutive
//!   mouse samples are joined by straight segments, so a fast stroke stays connected.
//! - The prediction is [`pismo_core::preprocess::to_input`] on those grey pixels, then the
//!   model: exactly what `pismo predict` computes for [`App::png`] of the same drawing.
//! - The model runs only in [`App::update`] and only when the drawing or the model changed
//!   since the last run ([`App::inferences`] counts the runs).
//! - Correction ("Wrong? This is a …"): [`App::start_correction`] (the W key) asks for the
//!   right digit, [`App::correct`] (a digit key) saves the canvas with that label into the
//!   drawn store (`pismo_digits::drawn`, which also keeps the 28x28 input the model saw),
//!   [`App::cancel_correction`] (Esc) or any change of the drawing drops the question.
//! - Learning (the L key): [`App::start_learning`] adapts the model in use to the saved
//!   corrections on a thread of its own ([`crate::learn`]); [`App::poll_learning`] shows its
//!   progress and, when it is done, what it changed, and switches to the adapted model.
//!   One at a time: L while it works only says so. [`App::back`] (B) returns to the model
//!   used before.

use pismo_core::mlp::{CLASSES, INPUT};
use pismo_core::preprocess::GreyImage;
use pismo_core::verdict::{verdict, Verdict};
use pismo_digits::drawn::{DrawnStore, SampleInfo};
use pismo_digits::image::encode_png;
use pismo_engine::kernels;
use pismo_engine::model::AnyMlp;
use pismo_storage::registry::{ModelId, Registry, RegistryError};
use tiny_skia::{
    Color, FillRule, LineCap, LineJoin, Paint, PathBuilder, Pixmap, Stroke, Transform,
};

use crate::learn::{self, Job, Poll};

/// Side of the square drawing canvas, in logical pixels.
pub const CANVAS: u32 = 280;
/// Width of the pen, in logical pixels.
pub const STROKE_WIDTH: f32 = 20.0;

/// A mouse sample in canvas coordinates (logical pixels, origin at the canvas's top left).
pub type Point = (f32, f32);

/// What the model said about the current drawing.
#[derive(Clone, Debug, PartialEq)]
pub struct Prediction {
    /// The most likely digit.
    pub digit: usize,
    /// The ten probabilities.
    pub probabilities: [f32; CLASSES],
    /// The 28x28 input of the drawing (`preprocess::to_input`), 0.0 (background) to 1.0
    /// (ink); what the drawn store keeps.
    pub input: [f32; INPUT],
    /// What the network saw of it: `input`, deskewed if the model deskews (the thumbnail).
    pub seen: [f32; INPUT],
    /// Sure of one digit, or torn between two (`pismo_core::verdict`).
    pub verdict: Verdict,
}

/// The prompt shown while the window waits for the right digit.
pub const CORRECTION_PROMPT: &str = "Wrong? This is a ... press 0-9 (Esc: cancel)";

/// The state of `pismo draw`.
#[derive(Debug)]
pub struct App {
    registry: Registry,
    models: Vec<ModelId>,
    current: usize,
    mlp: AnyMlp,
    strokes: Vec<Vec<Point>>,
    pen_down: bool,
    canvas: Pixmap,
    stale: bool,
    prediction: Option<Prediction>,
    inferences: u64,
    status: String,
    drawn: DrawnStore,
    correcting: bool,
    /// Corrections kept in `drawn` (`None`: the folder cannot be listed).
    corrections: Option<usize>,
    learn: learn::Setup,
    learning: Option<Job>,
    /// L was pressed again while learning: the progress keeps saying it is busy.
    busy: bool,
    /// The model used before the last switch (learning, B or Tab).
    previous: Option<ModelId>,
}

/// Strokes `strokes` in black onto `pixmap`, through `transform` (canvas → pixmap).
pub fn draw_strokes(pixmap: &mut Pixmap, strokes: &[Vec<Point>], transform: Transform) {
    let mut paint = Paint::default();
    paint.set_color(Color::BLACK);
    paint.anti_alias = true;
    let stroke = Stroke {
        width: STROKE_WIDTH,
        line_cap: LineCap::Round,
        line_join: LineJoin::Round,
        ..Stroke::default()
    };
    for points in strokes {
        let Some(&(x0, y0)) = points.first() else {
            continue;
        };
        let path = if points.len() == 1 {
            // A click: a dot as wide as the pen.
            PathBuilder::from_circle(x0, y0, STROKE_WIDTH / 2.0).map(|p| (p, true))
        } else {
            let mut pb = PathBuilder::new();
            pb.move_to(x0, y0);
            for &(x, y) in &points[1..] {
                pb.line_to(x, y);
            }
            pb.finish().map(|p| (p, false))
        };
        match path {
            Some((path, true)) => {
                pixmap.fill_path(&path, &paint, FillRule::Winding, transform, None)
            }
            Some((path, false)) => pixmap.stroke_path(&path, &paint, &stroke, transform, None),
            None => {}
        }
    }
}

/// Loads and decodes the model `reference` means (see `Registry::resolve`).
fn load_model(
    registry: &Registry,
    reference: Option<&str>,
) -> Result<(ModelId, AnyMlp), RegistryError> {
    registry.load_decoded(reference, |bytes| AnyMlp::decode(bytes).map(|(mlp, _)| mlp))
}

/// The status line after L while learning is under way.
fn busy_status(job: &Job) -> String {
    format!("busy: {} (one at a time)", job.status())
}

impl App {
    /// Opens the model `reference` means in `registry` (see `Registry::resolve`); Tab then
    /// cycles through every model file of the registry.
    pub fn new(registry: Registry, reference: Option<&str>) -> Result<Self, RegistryError> {
        let (id, mlp) = load_model(&registry, reference)?;
        let mut models = registry.ids()?;
        let current = match models.iter().position(|m| *m == id) {
            Some(i) => i,
            None => {
                models.push(id);
                models.len() - 1
            }
        };
        let mut canvas = Pixmap::new(CANVAS, CANVAS).expect("the canvas has a non-zero size");
        canvas.fill(Color::WHITE);
        Ok(Self {
            registry,
            models,
            current,
            mlp,
            strokes: Vec::new(),
            pen_down: false,
            canvas,
            stale: true,
            prediction: None,
            inferences: 0,
            status: String::new(),
            drawn: DrawnStore::open(pismo_digits::drawn::default_dir()),
            correcting: false,
            corrections: None,
            learn: learn::Setup {
                runs: pismo_storage::runs::Runs::open(pismo_storage::runs::Runs::default_dir()),
                data_dir: pismo_digits::mnist::default_dir(),
            },
            learning: None,
            busy: false,
            previous: None,
        }
        .counted())
    }

    /// Saves corrections into `store` instead of the default folder (`PISMO_DRAWN`, else
    /// `./data/drawn`).
    pub fn with_drawn(mut self, store: DrawnStore) -> Self {
        self.drawn = store;
        self.counted()
    }

    /// Records learning's runs in `setup.runs` and reads MNIST from `setup.data_dir`
    /// instead of the defaults (`PISMO_RUNS` else `./runs`, `PISMO_DATA` else
    /// `./data/mnist`).
    pub fn with_learning(mut self, setup: learn::Setup) -> Self {
        self.learn = setup;
        self
    }

    /// Counts the corrections kept (a folder not made yet holds none).
    fn counted(mut self) -> Self {
        self.count_corrections();
        self
    }

    fn count_corrections(&mut self) {
        self.corrections = self.drawn.list().ok().map(|all| all.len());
    }

    /// How many corrections are kept (`None`: the folder cannot be read).
    pub fn corrections(&self) -> Option<usize> {
        self.corrections
    }

    /// Starts learning from the saved corrections (L) in the background: false, with a
    /// status saying why, if there is nothing to learn from or learning is already under
    /// way.
    pub fn start_learning(&mut self) -> bool {
        self.correcting = false;
        if let Some(job) = &self.learning {
            self.busy = true;
            self.status = busy_status(job);
            return false;
        }
        self.count_corrections();
        if self.corrections == Some(0) {
            self.status = "nothing to learn from yet: W, then the right digit, keeps a \
                           correction"
                .to_owned();
            return false;
        }
        // A folder that cannot be listed: the session says what is wrong with it.
        match Job::start(
            self.model(),
            self.drawn.dir().to_path_buf(),
            self.corrections,
            &self.registry,
            &self.learn,
        ) {
            Ok(job) => {
                self.status = job.status();
                self.learning = Some(job);
                true
            }
            Err(e) => {
                self.status = e;
                false
            }
        }
    }

    /// Whether learning is under way.
    pub fn is_learning(&self) -> bool {
        self.learning.is_some()
    }

    /// Takes learning's news (without waiting): its progress in the status line; when it is
    /// done, what changed, and the adapted model in use. Returns whether anything changed
    /// on screen.
    pub fn poll_learning(&mut self) -> bool {
        let Some(job) = &mut self.learning else {
            return false;
        };
        match job.poll() {
            Poll::Working(false) => false,
            Poll::Working(true) => {
                if !self.correcting {
                    self.status = if self.busy {
                        busy_status(job)
                    } else {
                        job.status()
                    };
                }
                true
            }
            Poll::Done(result) => {
                self.learning = None;
                self.busy = false;
                self.correcting = false;
                self.status = match *result {
                    Ok(adapted) => {
                        let summary = adapted.summary();
                        match adapted.model.parse::<ModelId>() {
                            Ok(id) => match self.switch_to(&id) {
                                // The help line offers B.
                                Ok(()) => summary,
                                Err(e) => format!("{summary}; cannot use it: {e}"),
                            },
                            Err(e) => format!("{summary}; cannot use it: {e}"),
                        }
                    }
                    Err(e) => e,
                };
                true
            }
        }
    }

    /// Waits until learning (if under way) ends, as [`App::poll_learning`] would see it.
    pub fn wait_learning(&mut self) {
        while self.is_learning() {
            if !self.poll_learning() {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
    }

    /// Returns to the model used before the last switch (B); false, with a status
    /// saying why, if there is none.
    pub fn back(&mut self) -> bool {
        let Some(previous) = self.previous.clone() else {
            self.status =
                "no model to go back to: B returns to the model used before the last switch"
                    .to_owned();
            return false;
        };
        match self.switch_to(&previous) {
            Ok(()) => {
                let left = self.previous.as_ref().map(ToString::to_string);
                self.status = format!(
                    "back to model {previous} (B again: {})",
                    left.unwrap_or_default()
                );
                true
            }
            Err(e) => {
                self.status = format!("cannot go back to {previous}: {e}");
                false
            }
        }
    }

    /// Whether B has a model to return to.
    pub fn can_go_back(&self) -> bool {
        self.previous.is_some()
    }

    /// Uses model `id` (listing the registry again, where it is new); the one in use becomes
    /// [`App::back`]'s.
    fn switch_to(&mut self, id: &ModelId) -> Result<(), String> {
        let (_, mlp) =
            load_model(&self.registry, Some(&id.to_string())).map_err(|e| e.to_string())?;
        let before = self.model().clone();
        self.refresh_models();
        let current = match self.models.iter().position(|m| m == id) {
            Some(i) => i,
            None => {
                self.models.push(id.clone());
                self.models.sort();
                self.models.iter().position(|m| m == id).unwrap_or(0)
            }
        };
        self.current = current;
        self.mlp = mlp;
        self.stale = true;
        self.previous = Some(before);
        Ok(())
    }

    /// Lists the registry again (it may have changed since the window opened), keeping the
    /// model in use even if its file was deleted meanwhile.
    fn refresh_models(&mut self) {
        let id = self.models[self.current].clone();
        if let Ok(mut fresh) = self.registry.ids() {
            if !fresh.contains(&id) {
                fresh.push(id.clone());
                fresh.sort();
            }
            self.models = fresh;
            self.current = self.models.iter().position(|m| *m == id).unwrap_or(0);
        }
    }

    /// Asks for the right digit of the current drawing (W); false, with a status saying
    /// why, when nothing is drawn.
    pub fn start_correction(&mut self) -> bool {
        self.update();
        if self.prediction.is_none() {
            self.correcting = false;
            self.status = "nothing to correct: draw a digit first".to_owned();
            return false;
        }
        self.correcting = true;
        self.status = CORRECTION_PROMPT.to_owned();
        true
    }

    /// Whether the window waits for the right digit.
    pub fn is_correcting(&self) -> bool {
        self.correcting
    }

    /// Drops the question (Esc); false if none was asked.
    pub fn cancel_correction(&mut self) -> bool {
        if !self.correcting {
            return false;
        }
        self.correcting = false;
        self.status = "correction cancelled".to_owned();
        true
    }

    /// Saves the drawing as a `digit` (a digit key after W) and says so in the status:
    /// "saved as a 7 - 3 corrections kept". `None` when no question was asked; an error
    /// is shown in the status and returned.
    pub fn correct(&mut self, digit: u8) -> Option<Result<SampleInfo, String>> {
        if !self.correcting {
            return None;
        }
        self.correcting = false;
        self.update();
        let grey = self.grey();
        let img = GreyImage::new(CANVAS as usize, CANVAS as usize, &grey)
            .expect("the canvas is a valid image");
        let saved = self.drawn.save(digit, &img).map_err(|e| e.to_string());
        self.count_corrections();
        self.status = match &saved {
            Ok(_) => match self.drawn.list() {
                Ok(all) => format!(
                    "saved as a {digit} - {} correction{} kept in {}",
                    all.len(),
                    if all.len() == 1 { "" } else { "s" },
                    self.drawn.dir().display()
                ),
                // Saved, but another sample in the folder does not read: no count to give.
                Err(e) => format!("saved as a {digit} in {} ({e})", self.drawn.dir().display()),
            },
            Err(e) => format!("not saved: {e}"),
        };
        Some(saved)
    }

    /// Starts a stroke at `p`.
    pub fn pen_down(&mut self, p: Point) {
        self.drop_question();
        self.strokes.push(vec![p]);
        self.pen_down = true;
        self.stale = true;
    }

    /// Extends the current stroke to `p` (ignored when the pen is up or did not move).
    pub fn pen_move(&mut self, p: Point) {
        if !self.pen_down {
            return;
        }
        if let Some(stroke) = self.strokes.last_mut() {
            if stroke.last() != Some(&p) {
                stroke.push(p);
                self.stale = true;
            }
        }
    }

    /// A changed drawing is not the one the question was about.
    fn drop_question(&mut self) {
        if self.correcting {
            self.correcting = false;
            self.status.clear();
        }
    }

    /// Ends the current stroke.
    pub fn pen_up(&mut self) {
        self.pen_down = false;
    }

    /// Whether a stroke is being drawn.
    pub fn is_pen_down(&self) -> bool {
        self.pen_down
    }

    /// Draws a whole stroke (for scripts and tests).
    #[cfg(test)]
    pub fn stroke(&mut self, points: &[Point]) {
        if let Some((&first, rest)) = points.split_first() {
            self.pen_down(first);
            for &p in rest {
                self.pen_move(p);
            }
            self.pen_up();
        }
    }

    /// Removes the last stroke; false if there was none.
    pub fn undo(&mut self) -> bool {
        self.drop_question();
        self.pen_down = false;
        let removed = self.strokes.pop().is_some();
        self.stale |= removed;
        removed
    }

    /// Removes every stroke; false if there were none.
    pub fn clear(&mut self) -> bool {
        self.drop_question();
        self.pen_down = false;
        let had = !self.strokes.is_empty();
        self.strokes.clear();
        self.stale |= had;
        had
    }

    /// Switches to the next (`step` 1) or previous (`step` -1) model of the registry, in
    /// name-then-version order, wrapping around. A model that cannot be loaded is skipped
    /// and named in [`App::status`].
    pub fn cycle_model(&mut self, step: isize) {
        self.refresh_models();
        let n = self.models.len();
        let mut skipped = Vec::new();
        for tries in 1..=n {
            let i = (self.current as isize + step * tries as isize).rem_euclid(n as isize) as usize;
            let id = self.models[i].clone();
            match load_model(&self.registry, Some(&id.to_string())) {
                Ok((_, mlp)) => {
                    if i != self.current {
                        self.previous = Some(self.models[self.current].clone());
                    }
                    self.current = i;
                    self.mlp = mlp;
                    self.stale = true;
                    self.status = format!("model {id}");
                    break;
                }
                Err(e) => skipped.push(format!("skipped {id}: {e}")),
            }
        }
        if !skipped.is_empty() {
            skipped.insert(0, std::mem::take(&mut self.status));
            self.status = skipped.join("; ");
        }
    }

    /// Recomputes the canvas and the prediction if the drawing or the model changed since
    /// the last call; returns whether it did.
    pub fn update(&mut self) -> bool {
        if !self.stale {
            return false;
        }
        self.stale = false;
        self.canvas.fill(Color::WHITE);
        draw_strokes(&mut self.canvas, &self.strokes, Transform::identity());
        let grey = self.grey();
        let img = GreyImage::new(CANVAS as usize, CANVAS as usize, &grey)
            .expect("the canvas is a valid image");
        let mut input = [0.0f32; INPUT];
        self.prediction = match kernels::to_input(&img, &mut input) {
            Ok(_) => {
                self.inferences += 1;
                let probabilities = self.mlp.predict_proba(&input);
                let digit = pismo_core::mlp::argmax(&probabilities);
                Some(Prediction {
                    digit,
                    probabilities,
                    input,
                    seen: self.mlp.network_input(&input),
                    verdict: verdict(&probabilities),
                })
            }
            // A blank canvas (or a stroke drawn entirely outside it) has nothing to say.
            Err(_) => None,
        };
        true
    }

    /// The canvas as grey bytes (row after row, 255 is paper), as of the last update.
    pub fn grey(&self) -> Vec<u8> {
        // Every pixel is opaque (white paper), so any channel is the grey level.
        self.canvas.pixels().iter().map(|p| p.red()).collect()
    }

    /// The canvas as a grey PNG, as of the last update: what S saves.
    pub fn png(&self) -> Vec<u8> {
        let grey = self.grey();
        let img = GreyImage::new(CANVAS as usize, CANVAS as usize, &grey)
            .expect("the canvas is a valid image");
        encode_png(&img)
    }

    /// The strokes, in canvas coordinates.
    pub fn strokes(&self) -> &[Vec<Point>] {
        &self.strokes
    }

    /// The prediction as of the last update (`None`: nothing drawn).
    pub fn prediction(&self) -> Option<&Prediction> {
        self.prediction.as_ref()
    }

    /// The model in use.
    pub fn model(&self) -> &ModelId {
        &self.models[self.current]
    }

    /// The position of the model in use among [`App::model_count`] (0-based).
    pub fn model_index(&self) -> usize {
        self.current
    }

    /// How many model files the registry holds (as of the last switch).
    pub fn model_count(&self) -> usize {
        self.models.len()
    }

    /// How many times the model has run.
    #[cfg(test)]
    pub fn inferences(&self) -> u64 {
        self.inferences
    }

    /// A one-line message for the user (saved file, skipped model), or empty.
    pub fn status(&self) -> &str {
        &self.status
    }

    /// Sets the status line.
    pub fn set_status(&mut self, status: String) {
        self.status = status;
    }
}

#[cfg(test)]
#[allow(clippy::too_many_lines)] // tests read as scripts of steps
pub mod tests {
    use super::*;
    use std::path::PathBuf;

    /// The shipped registry at the workspace root.
    pub fn shipped() -> Registry {
        Registry::open(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models"))
    }

    /// A "7" as a person draws it: a bar, then a long diagonal.
    pub const SEVEN: [Point; 5] = [
        (70.0, 60.0),
        (140.0, 58.0),
        (205.0, 60.0),
        (160.0, 140.0),
        (125.0, 230.0),
    ];
    /// A "1": one slightly slanted vertical line.
    pub const ONE: [Point; 3] = [(150.0, 45.0), (145.0, 140.0), (140.0, 235.0)];

    #[test]
    fn scripted_strokes_of_a_seven_and_a_one_are_recognised() {
        let mut app = App::new(shipped(), None).expect("shipped model");
        assert_eq!(app.model().to_string(), "mnist-int8@6");
        app.stroke(&SEVEN);
        app.update();
        assert_eq!(app.prediction().expect("ink").digit, 7);
        app.clear();
        app.stroke(&ONE);
        app.update();
        assert_eq!(app.prediction().expect("ink").digit, 1);
    }

    #[test]
    fn the_drawing_gives_the_same_probabilities_as_pismo_predict_on_its_png() {
        let mut app = App::new(shipped(), None).expect("shipped model");
        app.stroke(&SEVEN);
        app.stroke(&[(100.0, 140.0), (190.0, 140.0)]);
        app.update();
        let ours = app.prediction().expect("ink").clone();

        let dir = std::env::temp_dir().join(format!("pismo-draw-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("drawing.png");
        std::fs::write(&file, app.png()).expect("write png");
        // What `pismo predict drawing.png` does: read the file, load the default model, and
        // compute the probabilities of its one image.
        let images = pismo_digits::image::read_image_file(&file).expect("read png");
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(images.len(), 1);
        let (_, mlp) = load_model(&shipped(), None).expect("default model");
        let mut input = [0.0f32; INPUT];
        kernels::to_input(&images[0].as_grey(), &mut input).expect("ink");
        let theirs = mlp.predict_proba(&input);
        assert_eq!(ours.probabilities, theirs, "bit-identical probabilities");
    }

    #[test]
    fn the_model_runs_only_when_the_drawing_changed() {
        let mut app = App::new(shipped(), None).expect("shipped model");
        assert!(app.update());
        assert_eq!(app.inferences(), 0, "a blank canvas is not a digit");
        assert!(app.prediction().is_none());
        app.stroke(&ONE);
        assert!(app.update());
        assert_eq!(app.inferences(), 1);
        assert!(!app.update());
        app.pen_down((10.0, 10.0));
        app.pen_up();
        app.pen_move((50.0, 50.0)); // pen up: not drawing
        assert!(app.update());
        assert!(!app.update());
        assert_eq!(app.inferences(), 2);
        assert!(app.undo());
        assert!(app.update());
        assert_eq!(app.inferences(), 3);
        assert!(app.clear());
        assert!(!app.clear());
        assert!(app.update());
        assert!(app.prediction().is_none());
        assert_eq!(app.inferences(), 3);
    }

    #[test]
    fn strokes_are_round_anti_aliased_and_joined_between_samples() {
        let mut app = App::new(shipped(), None).expect("shipped model");
        // Two samples far apart (a fast stroke): the segment between them is inked.
        app.stroke(&[(40.0, 140.0), (240.0, 150.0)]);
        app.update();
        let grey = app.grey();
        let at = |x: usize, y: usize| grey[y * CANVAS as usize + x];
        for x in (40..=240).step_by(20) {
            let y = 140 + (x - 40) / 20;
            assert_eq!(at(x, y), 0, "ink at ({x}, {y})");
        }
        assert_eq!(at(140, 100), 255, "paper away from the stroke");
        // The slanted edge is anti-aliased: some pixels are neither ink nor paper.
        let grey_levels = (40..240)
            .flat_map(|x| (120..170).map(move |y| (x, y)))
            .filter(|&(x, y)| (1..255).contains(&at(x, y)))
            .count();
        assert!(grey_levels > 100, "{grey_levels} anti-aliased pixels");
        // Round caps reach half the pen width beyond the end points.
        assert!(at(32, 140) < 128 && at(248, 150) < 128);
    }

    #[test]
    fn tab_cycles_through_the_registry_and_skips_a_broken_model_file() {
        let dir = std::env::temp_dir().join(format!("pismo-draw-models-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp registry");
        let bytes = shipped()
            .read(&ModelId::new("mnist", 1).unwrap())
            .expect("shipped model file");
        std::fs::write(dir.join("mnist.v1.pismo"), &bytes).unwrap();
        // The same weights registered as `copy@1` (a file merely renamed would be refused).
        let (mlp, file) = AnyMlp::decode(&bytes).expect("shipped model decodes");
        let meta = pismo_core::format::Meta {
            name: "copy",
            ..file.meta
        };
        std::fs::write(dir.join("copy.v1.pismo"), mlp.encode(&meta)).unwrap();
        std::fs::write(dir.join("broken.v1.pismo"), &bytes[..100]).unwrap();
        let mut app = App::new(Registry::open(&dir), Some("mnist@1")).expect("mnist@1");
        assert_eq!(app.model_count(), 3);
        app.stroke(&SEVEN);
        assert!(app.update());
        // broken@1, copy@1, mnist@1: forward from mnist wraps to broken, which is skipped.
        app.cycle_model(1);
        assert_eq!(app.model().to_string(), "copy@1");
        assert!(
            app.status().starts_with("model copy@1; skipped broken@1: "),
            "{}",
            app.status()
        );
        assert!(app.update(), "a model switch reruns the prediction");
        app.cycle_model(1);
        assert_eq!(app.model().to_string(), "mnist@1");
        assert_eq!(app.status(), "model mnist@1");
        app.cycle_model(-1);
        assert_eq!(app.model().to_string(), "copy@1");
        app.cycle_model(-1);
        assert_eq!(app.model().to_string(), "mnist@1");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn cycling_through_a_registry_of_one_model_keeps_it() {
        let dir = std::env::temp_dir().join(format!("pismo-draw-one-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp registry");
        let bytes = shipped()
            .read(&ModelId::new("mnist", 1).unwrap())
            .expect("shipped model file");
        std::fs::write(dir.join("mnist.v1.pismo"), bytes).expect("copy the shipped model");
        let mut app = App::new(Registry::open(&dir), Some("mnist@1")).expect("mnist@1");
        app.update();
        app.cycle_model(1);
        assert_eq!(app.model().to_string(), "mnist@1");
        app.cycle_model(-1);
        assert_eq!(app.model().to_string(), "mnist@1");
        assert!(app.update(), "a model switch reruns the prediction");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A fresh folder for a drawn store, removed by the caller.
    fn temp_store(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("pismo-draw-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn w_then_a_digit_saves_the_drawing_with_that_label_and_says_so() {
        let dir = temp_store("correct");
        let mut app = App::new(shipped(), None)
            .expect("shipped model")
            .with_drawn(DrawnStore::open(&dir));
        assert!(!app.start_correction(), "nothing drawn yet");
        assert_eq!(app.status(), "nothing to correct: draw a digit first");
        assert_eq!(app.correct(7), None, "no question was asked");

        app.stroke(&SEVEN);
        app.update();
        assert!(app.start_correction());
        assert!(app.is_correcting());
        assert_eq!(app.status(), CORRECTION_PROMPT);
        let info = app.correct(1).expect("asked").expect("saved");
        assert!(!app.is_correcting());
        assert_eq!(info.label, 1);
        assert!(
            app.status()
                .starts_with("saved as a 1 - 1 correction kept in "),
            "{}",
            app.status()
        );

        // On disk: the canvas as drawn, and its preprocessed input, with label 1.
        let store = DrawnStore::open(&dir);
        let listed = store.list().expect("list");
        assert_eq!(listed, vec![info.clone()]);
        let png = std::fs::read(&info.drawing).expect("drawing.png");
        assert_eq!(png, app.png(), "the raw drawing is the canvas");
        let data = store.load().expect("load");
        let seen = &app.prediction().expect("ink").input;
        for (&b, &v) in data.images[0].iter().zip(seen.iter()) {
            assert_eq!(b, (v * 255.0).round() as u8);
        }

        // A second one, then Esc and a changed drawing both drop the question.
        assert!(app.start_correction());
        app.correct(7).expect("asked").expect("saved");
        assert!(app
            .status()
            .starts_with("saved as a 7 - 2 corrections kept"));
        assert!(app.start_correction());
        assert!(app.cancel_correction());
        assert!(!app.cancel_correction());
        assert_eq!(app.correct(3), None);
        assert!(app.start_correction());
        app.stroke(&ONE);
        assert!(!app.is_correcting(), "drawing on changes the question");
        assert_eq!(store.counts().expect("counts")[1], 1);
        assert_eq!(store.counts().expect("counts")[7], 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_correction_that_cannot_be_saved_says_why() {
        let dir = temp_store("unwritable");
        std::fs::write(&dir, b"a file, not a folder").expect("write");
        let mut app = App::new(shipped(), None)
            .expect("shipped model")
            .with_drawn(DrawnStore::open(&dir));
        app.stroke(&ONE);
        assert!(app.start_correction());
        let e = app.correct(1).expect("asked").unwrap_err();
        assert!(app.status().starts_with("not saved: "), "{}", app.status());
        assert!(app.status().contains(&e));
        let _ = std::fs::remove_file(&dir);
    }

    /// A drawing the default model hesitates over: a 4 whose open top is half closed, halfway
    /// to a 9 (`mnist-int8@5`: 4 46 %, 9 43 %). With it, a closing stroke from y 50 to y 50
    /// gives a 9 at 60 %, from y 50 to y 100 (this drawing's closing for earlier defaults) a
    /// sure answer.
    pub const AMBIGUOUS: [&[Point]; 3] = [
        &[(100.0, 50.0), (90.0, 150.0), (200.0, 150.0)],
        &[(170.0, 50.0), (170.0, 240.0)],
        &[(100.0, 50.0), (170.0, 70.0)],
    ];

    #[test]
    fn a_sure_and_an_unsure_drawing_get_their_verdicts() {
        let mut app = App::new(shipped(), None).expect("shipped model");
        app.stroke(&SEVEN);
        app.update();
        let p = app.prediction().expect("ink");
        assert_eq!(p.verdict, verdict(&p.probabilities));
        assert!(p.verdict.is_sure(), "{:?}", p.verdict);
        app.clear();
        for stroke in AMBIGUOUS {
            app.stroke(stroke);
        }
        app.update();
        let p = app.prediction().expect("ink");
        assert!(
            !p.verdict.is_sure(),
            "{:?} {:?}",
            p.verdict,
            p.probabilities
        );
    }

    /// A registry holding a copy of the shipped `mnist-mcu-int8@3` only, in a fresh folder.
    fn registry_of_the_mcu_model(dir: &std::path::Path) -> Registry {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).expect("temp registry");
        let bytes = shipped()
            .read(&ModelId::new("mnist-mcu-int8", 3).unwrap())
            .expect("shipped model file");
        std::fs::write(dir.join("mnist-mcu-int8.v3.pismo"), bytes).expect("copy the model");
        Registry::open(dir)
    }

    /// The full MNIST: `$PISMO_DATA`, else the workspace's `data/mnist`. `None`, with a line
    /// saying so, when it is not there (a fresh clone); a panic instead when
    /// `PISMO_REQUIRE_MNIST` is set, as CI sets it (the convention of the workspace's tests).
    fn full_mnist() -> Option<PathBuf> {
        let dir = std::env::var_os("PISMO_DATA").map_or_else(
            || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/mnist"),
            PathBuf::from,
        );
        let train = pismo_digits::mnist::Split::Train;
        let has = |known| pismo_digits::mnist::find_known(&dir, known).is_ok();
        if has(train.images()) && has(train.labels()) {
            return Some(dir);
        }
        assert!(
            std::env::var_os("PISMO_REQUIRE_MNIST").is_none(),
            "PISMO_REQUIRE_MNIST is set but {} has no MNIST training files",
            dir.display()
        );
        eprintln!(
            "SKIPPED (learning needs MNIST): no full MNIST in {} (run scripts/fetch-mnist)",
            dir.display()
        );
        None
    }

    /// Waits until learning ends.
    fn wait_for_learning(app: &mut App) {
        app.wait_learning();
        assert!(!app.is_learning());
    }

    #[test]
    fn l_learns_from_the_corrections_in_the_background_switches_to_the_result_and_b_goes_back() {
        let Some(mnist) = full_mnist() else {
            return;
        };
        let root = temp_store("learn");
        let mut app = App::new(registry_of_the_mcu_model(&root.join("models")), None)
            .expect("mnist-mcu-int8@3")
            .with_drawn(DrawnStore::open(root.join("drawn")))
            .with_learning(learn::Setup {
                runs: pismo_storage::runs::Runs::open(root.join("runs")),
                data_dir: mnist,
            });
        assert_eq!(app.corrections(), Some(0));
        assert!(!app.start_learning(), "nothing to learn from");
        assert!(app.status().starts_with("nothing to learn from yet"));
        assert!(!app.back(), "no model to go back to");

        // Four corrections: sevens drawn and kept as 7s, ones kept as 1s.
        for (points, digit) in [
            (&SEVEN[..], 7),
            (&ONE[..], 1),
            (&SEVEN[1..], 7),
            (&ONE[..2], 1),
        ] {
            app.clear();
            app.stroke(points);
            assert!(app.start_correction());
            app.correct(digit).expect("asked").expect("saved");
        }
        assert_eq!(app.corrections(), Some(4));

        assert!(app.start_learning());
        assert!(app.is_learning());
        assert!(
            app.status().starts_with("learning from 4 corrections"),
            "{}",
            app.status()
        );
        // A second L while it works only says it is busy.
        assert!(!app.start_learning());
        assert!(
            app.status()
                .starts_with("busy: learning from 4 corrections"),
            "{}",
            app.status()
        );
        // Its progress goes on saying so.
        let said = app.status().to_owned();
        while app.is_learning() && app.status() == said {
            app.poll_learning();
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        if app.is_learning() {
            assert!(app.status().starts_with("busy: "), "{}", app.status());
            assert!(
                app.status().ends_with(" (one at a time)"),
                "{}",
                app.status()
            );
        }
        // The window stays usable meanwhile.
        app.clear();
        app.stroke(&SEVEN);
        assert!(app.update());
        assert_eq!(app.prediction().expect("ink").digit, 7);
        wait_for_learning(&mut app);

        assert_eq!(app.model().to_string(), "mnist-mcu-int8-mine@1");
        assert!(
            app.status()
                .starts_with("adapted mnist-mcu-int8@3 -> mnist-mcu-int8-mine@1: "),
            "{}",
            app.status()
        );
        assert!(
            app.status().contains("MNIST validation"),
            "{}",
            app.status()
        );
        let folds = pismo_training::adapt::folds_for(4);
        assert!(
            app.status().contains(&format!(
                "after (cross-validated, {folds} folds); MNIST validation "
            )),
            "{}",
            app.status()
        );
        assert!(app.update(), "the switch reruns the prediction");
        assert_eq!(app.model_count(), 2);
        // Registered with its run, in the window's registry and runs folder.
        let (_, bytes) = app
            .registry
            .load(Some("mnist-mcu-int8-mine@1"))
            .expect("registered");
        let (_, file) = AnyMlp::decode(&bytes).expect("decodes");
        assert_eq!(file.meta.parent, "mnist-mcu-int8@3");
        let runs = std::fs::read_dir(root.join("runs"))
            .expect("runs folder")
            .count();
        assert!(runs >= 1);

        assert!(app.can_go_back());
        assert!(app.back());
        assert_eq!(app.model().to_string(), "mnist-mcu-int8@3");
        assert!(
            app.status().starts_with("back to model mnist-mcu-int8@3"),
            "{}",
            app.status()
        );
        assert!(app.back(), "B again returns to the adapted model");
        assert_eq!(app.model().to_string(), "mnist-mcu-int8-mine@1");

        // Learning again from the adapted model gives its next version.
        assert!(app.start_learning());
        wait_for_learning(&mut app);
        assert_eq!(
            app.model().to_string(),
            "mnist-mcu-int8-mine@2",
            "{}",
            app.status()
        );
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn learning_from_a_damaged_corrections_folder_says_what_is_wrong() {
        let root = temp_store("learn-damaged");
        let drawn = root.join("drawn");
        std::fs::create_dir_all(drawn.join("not-a-sample")).expect("damaged folder");
        let mut app = App::new(registry_of_the_mcu_model(&root.join("models")), None)
            .expect("mnist-mcu-int8@3")
            .with_drawn(DrawnStore::open(&drawn))
            .with_learning(learn::Setup {
                runs: pismo_storage::runs::Runs::open(root.join("runs")),
                data_dir: root.join("no-mnist"),
            });
        assert_eq!(app.corrections(), None, "cannot be counted");
        assert!(app.start_learning());
        assert!(
            app.status().starts_with("learning from the corrections"),
            "{}",
            app.status()
        );
        wait_for_learning(&mut app);
        assert!(
            app.status()
                .starts_with("cannot learn: cannot read the corrections: "),
            "{}",
            app.status()
        );
        assert_eq!(app.model().to_string(), "mnist-mcu-int8@3");
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn learning_without_mnist_says_how_to_get_it_and_keeps_the_model() {
        let root = temp_store("learn-no-mnist");
        let mut app = App::new(registry_of_the_mcu_model(&root.join("models")), None)
            .expect("mnist-mcu-int8@3")
            .with_drawn(DrawnStore::open(root.join("drawn")))
            .with_learning(learn::Setup {
                runs: pismo_storage::runs::Runs::open(root.join("runs")),
                data_dir: root.join("no-mnist"),
            });
        app.stroke(&SEVEN);
        assert!(app.start_correction());
        app.correct(7).expect("asked").expect("saved");
        assert!(app.start_learning());
        wait_for_learning(&mut app);
        assert!(
            app.status().starts_with("cannot learn: "),
            "{}",
            app.status()
        );
        assert!(
            app.status().contains("pismo data fetch"),
            "{}",
            app.status()
        );
        assert_eq!(app.model().to_string(), "mnist-mcu-int8@3");
        assert!(!app.can_go_back());
        let _ = std::fs::remove_dir_all(&root);
    }
}
