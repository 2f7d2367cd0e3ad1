//! `pismo adapt` and `pismo data drawn import` over the real binary, the shipped models and
//! the full MNIST (rehearsal and the forgetting check need its training split).
//!
//! The hand: sevens written in one stroke like a z with a crossbar
//! (`synth::WRITER_GLYPHS`, never trained on), drawn on the 280x280 canvas with the page's
//! 18 px pen, one writer's slant and size with small variations. The shipped
//! microcontroller model reads most of them as 2.

use std::path::{Path, PathBuf};

use pismo_core::rng::Rng;
use pismo_digits::drawn::{self, DrawnStore};
use pismo_digits::image::encode_png;
use pismo_digits::pen::Canvas;
use pismo_digits::synth::{self, Hand, WRITER_GLYPHS};
use pismo_tests::{full_mnist, idx3, t10k, workspace_root, Pismo};

/// `n` sevens of one writer's z-like hand, drawn as the page draws.
fn z_sevens(n: usize, seed: u64) -> Vec<Canvas> {
    let glyph = WRITER_GLYPHS
        .iter()
        .find(|g| g.digit == 7)
        .expect("a writer's 7");
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|_| {
            let mut hand = Hand::sample(&mut Rng::new(4), 7);
            hand.size = 0.55 + 0.25 * rng.next_f32();
            hand.rotation = 3.0 * rng.normal();
            hand.aspect = 0.75;
            hand.slant = 0.1;
            hand.jitter = 0.015;
            hand.pen = 18.0 / (hand.size * 280.0);
            hand.place = (0.5, 0.5);
            let (strokes, pen) = synth::write(glyph, &hand, 280.0, &mut rng);
            let mut canvas = Canvas::new(280, 280);
            for s in &strokes {
                canvas.stroke(s, pen);
            }
            canvas
        })
        .collect()
}

/// A sandbox with the shipped registry's models and the full MNIST, or `None` (skipped,
/// loudly) without MNIST.
fn sandbox() -> Option<Pismo> {
    let mnist = full_mnist()?;
    let pismo = Pismo::new().with_data(mnist);
    std::fs::create_dir_all(pismo.registry()).unwrap();
    for entry in std::fs::read_dir(workspace_root().join("models")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, pismo.registry().join(path.file_name().unwrap())).unwrap();
    }
    Some(pismo)
}

/// Writes each canvas as a PNG in `dir`; returns the paths.
fn pngs(dir: &Path, canvases: &[Canvas]) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    canvases
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let path = dir.join(format!("{i}.png"));
            std::fs::write(&path, encode_png(&c.as_grey())).unwrap();
            path
        })
        .collect()
}

/// How many of `files` `model` reads as `digit` (`pismo predict --json`).
fn read_as(pismo: &Pismo, model: &str, files: &[PathBuf], digit: u64) -> usize {
    let mut args = vec!["predict", "--model", model, "--json"];
    let names: Vec<&str> = files.iter().map(|p| p.to_str().unwrap()).collect();
    args.extend(names);
    let out = pismo.run(&args);
    out.expect_code(0);
    out.json_lines()
        .iter()
        .filter(|line| line["label"].as_u64() == Some(digit))
        .count()
}

#[test]
fn adapting_to_corrected_sevens_reads_new_sevens_of_the_same_hand() {
    let Some(pismo) = sandbox() else { return };
    let base = "mnist-mcu-int8";
    let shown = pngs(&pismo.home.join("shown"), &z_sevens(12, 1));
    let later = pngs(&pismo.home.join("later"), &z_sevens(40, 2));
    let before = read_as(&pismo, base, &later, 7);
    assert!(
        before <= 30,
        "the base already reads {before} of 40: no hand to learn"
    );

    let mut import = vec!["data", "drawn", "import", "--label", "7"];
    import.extend(shown.iter().map(|p| p.to_str().unwrap()));
    pismo.run(&import).expect_code(0);
    let out = pismo.run(&["adapt", "--model", base, "--name", "mine", "--json"]);
    out.expect_code(0);
    let done = out.json_lines().pop().expect("a JSON line");
    assert_eq!(done["model"], "mine@1", "{done}");
    assert_eq!(done["base"], "mnist-mcu-int8@5");
    assert_eq!(done["corrections"][7], 12);
    let val = |key: &str| done[key].as_f64().unwrap();
    assert!(
        val("val_accuracy") >= val("base_val_accuracy") - 0.005,
        "{done}"
    );

    let after = read_as(&pismo, "mine", &later, 7);
    assert!(
        after >= 36 && after >= before + 8,
        "new sevens of the hand read as 7: {before} of 40 before, {after} after"
    );
    // An int8 base gives an int8 model of its size, deskewing as it did, with its parent.
    let show = pismo.run(&["models", "show", "mine@1", "--json"]);
    show.expect_code(0);
    let shown = &show.json_lines()[0];
    let text = shown.to_string();
    assert!(
        text.contains("int8") && text.contains("mnist-mcu-int8@5"),
        "{text}"
    );
    // A pruned base gives a model pruned to the same pixels, the size that fits its board.
    assert_eq!(shown["meta"]["input_pixels"], 578, "{text}");
    assert_eq!(
        shown["meta"]["first_layer_bits"], 7,
        "7-bit as its base: {text}"
    );
    // The run is recorded with its base, its corrections and the figures.
    let run_id = done["run_id"].as_str().unwrap();
    let log = std::fs::read_to_string(pismo.runs().join(run_id).join("log.txt")).unwrap();
    assert!(log.contains("adapting mnist-mcu-int8@5"), "{log}");
    assert!(log.contains("per digit 7:12"), "{log}");
    assert!(log.contains("MNIST validation"), "{log}");
    let record = std::fs::read_to_string(pismo.runs().join(run_id).join("run.json")).unwrap();
    assert!(
        record.contains("\"finished\"") && record.contains("mine@1"),
        "{record}"
    );
}

#[test]
fn mislabelled_corrections_that_make_it_forget_are_refused_unless_forced() {
    let Some(pismo) = sandbox() else { return };
    // Sixty MNIST test ones "corrected" to 7: adapting to them unlearns ones.
    let test = t10k();
    let ones: Vec<[u8; 784]> = test
        .images
        .iter()
        .zip(&test.labels)
        .filter(|(_, &l)| l == 1)
        .take(60)
        .map(|(x, _)| *x)
        .collect();
    let dir = pismo.home.join("wrong");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("images"), idx3(&ones)).unwrap();
    std::fs::write(dir.join("labels"), {
        let mut l = vec![0, 0, 0x08, 0x01];
        l.extend((ones.len() as u32).to_be_bytes());
        l.extend(std::iter::repeat_n(7u8, ones.len()));
        l
    })
    .unwrap();
    let images = dir.join("images");
    let labels = dir.join("labels");
    pismo
        .run(&[
            "data",
            "drawn",
            "import",
            "--images",
            images.to_str().unwrap(),
            "--labels",
            labels.to_str().unwrap(),
        ])
        .expect_code(0);
    let out = pismo.run(&["adapt", "--model", "mnist-mcu-int8", "--name", "bad"]);
    out.expect_code(1);
    assert!(out.stderr.contains("refused"), "{}", out.stderr);
    assert!(out.stderr.contains("--force"), "{}", out.stderr);
    pismo.run(&["models", "show", "bad"]).expect_code(1);
    let forced = pismo.run(&[
        "adapt",
        "--model",
        "mnist-mcu-int8",
        "--name",
        "bad",
        "--force",
        "--json",
    ]);
    forced.expect_code(0);
    assert_eq!(forced.json_lines().pop().unwrap()["model"], "bad@1");
}

#[test]
fn adapting_without_usable_corrections_is_a_clear_error_and_registers_nothing() {
    let Some(pismo) = sandbox() else { return };
    let adapt = |extra: &[&str]| {
        let mut args = vec!["adapt", "--model", "mnist-mcu-int8", "--name", "mine"];
        args.extend_from_slice(extra);
        pismo.run(&args)
    };
    // No folder.
    let out = adapt(&[]);
    out.expect_code(1);
    assert!(
        out.stderr.contains("no corrections folder"),
        "{}",
        out.stderr
    );
    // An empty folder.
    std::fs::create_dir_all(pismo.drawn()).unwrap();
    let out = adapt(&[]);
    out.expect_code(1);
    assert!(
        out.stderr.contains("holds no corrections"),
        "{}",
        out.stderr
    );
    // A damaged correction.
    let store = DrawnStore::open(pismo.drawn());
    let canvas = &z_sevens(1, 3)[0];
    let saved = store.save(7, &canvas.as_grey()).unwrap();
    std::fs::write(saved.drawing.parent().unwrap().join(drawn::META_FILE), b"{").unwrap();
    let out = adapt(&[]);
    out.expect_code(1);
    assert!(out.stderr.contains("damaged sample"), "{}", out.stderr);
    // Bad names and references are usage errors.
    adapt(&["--alias", "no way"]).expect_code(2);
    pismo.run(&["adapt", "--name", "bad name!"]).expect_code(2);
    pismo.run(&["adapt"]).expect_code(2);
    let out = pismo.run(&["adapt", "--model", "nosuch", "--name", "x", "--drawn", "."]);
    assert!(out.code == Some(1) || out.code == Some(2), "{out:?}");
    // Nothing was registered and no run recorded as finished.
    pismo.run(&["models", "show", "mine"]).expect_code(1);
}

#[test]
fn a_drawing_imported_as_png_or_as_an_idx_canvas_is_the_sample_the_page_saves() {
    let pismo = Pismo::new();
    let canvases = z_sevens(3, 5);
    // The page's way: the raw drawing through the store.
    let page = DrawnStore::open(pismo.home.join("page"));
    let from_page: Vec<Vec<u8>> = canvases
        .iter()
        .map(|c| std::fs::read(page.save(7, &c.as_grey()).unwrap().input).unwrap())
        .collect();
    // As PNG files with --label.
    let files = pngs(&pismo.home.join("png"), &canvases);
    let mut args = vec!["data", "drawn", "import", "--label", "7"];
    args.extend(files.iter().map(|p| p.to_str().unwrap()));
    let out = pismo.run(&args);
    out.expect_code(0);
    assert!(out.stdout.contains("imported 3 drawings"), "{}", out.stdout);
    // As one IDX file of 280x280 canvases.
    let mut images = vec![0, 0, 0x08, 0x03];
    for n in [3u32, 280, 280] {
        images.extend(n.to_be_bytes());
    }
    for c in &canvases {
        images.extend_from_slice(&c.data);
    }
    let idx_dir = pismo.home.join("idx");
    std::fs::create_dir_all(&idx_dir).unwrap();
    std::fs::write(idx_dir.join("images"), &images).unwrap();
    std::fs::write(idx_dir.join("labels"), [0, 0, 8, 1, 0, 0, 0, 3, 7, 7, 7]).unwrap();
    let idx_store = pismo.home.join("from-idx");
    pismo
        .run(&[
            "data",
            "drawn",
            "import",
            "--drawn",
            idx_store.to_str().unwrap(),
            "--images",
            idx_dir.join("images").to_str().unwrap(),
            "--labels",
            idx_dir.join("labels").to_str().unwrap(),
        ])
        .expect_code(0);
    for store in [
        DrawnStore::open(pismo.drawn()),
        DrawnStore::open(&idx_store),
    ] {
        let samples = store.list().unwrap();
        assert_eq!(samples.len(), 3);
        for (s, page_input) in samples.iter().zip(&from_page) {
            assert_eq!((s.width, s.height, s.label), (280, 280, 7));
            assert_eq!(&std::fs::read(&s.input).unwrap(), page_input, "{}", s.id);
        }
    }
}

#[test]
fn importing_bad_drawings_is_a_clear_error_and_imports_nothing() {
    let pismo = Pismo::new();
    let dir = pismo.home.join("in");
    let mut canvases = z_sevens(2, 6);
    canvases.push(Canvas::new(280, 280));
    let files = pngs(&dir, &canvases);
    let paths: Vec<&str> = files.iter().map(|p| p.to_str().unwrap()).collect();
    // A blank drawing among good ones: nothing is imported.
    let mut args = vec!["data", "drawn", "import", "--label", "7"];
    args.extend(&paths);
    let out = pismo.run(&args);
    out.expect_code(1);
    assert!(out.stderr.contains("has no ink"), "{}", out.stderr);
    assert!(DrawnStore::open(pismo.drawn()).list().unwrap().is_empty());
    // Not an image; a label that is not a digit; the two modes mixed or half given.
    std::fs::write(dir.join("notes.txt"), b"seven").unwrap();
    let notes = dir.join("notes.txt");
    let out = pismo.run(&[
        "data",
        "drawn",
        "import",
        "--label",
        "7",
        notes.to_str().unwrap(),
    ]);
    out.expect_code(1);
    assert!(out.stderr.contains("notes.txt"), "{}", out.stderr);
    pismo
        .run(&["data", "drawn", "import", "--label", "12", paths[0]])
        .expect_code(2);
    pismo
        .run(&["data", "drawn", "import", paths[0]])
        .expect_code(2);
    pismo
        .run(&["data", "drawn", "import", "--images", paths[0]])
        .expect_code(2);
    // Labels that do not match the images in number.
    std::fs::write(dir.join("labels"), [0, 0, 8, 1, 0, 0, 0, 2, 7, 7]).unwrap();
    std::fs::write(dir.join("images"), idx3(&[[0; 784]; 3])).unwrap();
    let out = pismo.run(&[
        "data",
        "drawn",
        "import",
        "--images",
        dir.join("images").to_str().unwrap(),
        "--labels",
        dir.join("labels").to_str().unwrap(),
    ]);
    out.expect_code(1);
    assert!(
        out.stderr.contains("2 labels for the 3 images"),
        "{}",
        out.stderr
    );
    assert!(DrawnStore::open(pismo.drawn()).list().unwrap().is_empty());
}

#[test]
fn a_second_adaptation_of_the_same_corrections_is_refused_while_the_first_runs() {
    use std::io::{BufRead, BufReader};
    let Some(pismo) = sandbox() else { return };
    let shown = pngs(&pismo.home.join("shown"), &z_sevens(12, 1));
    let mut import = vec!["data", "drawn", "import", "--label", "7"];
    import.extend(shown.iter().map(|p| p.to_str().unwrap()));
    pismo.run(&import).expect_code(0);
    let adapt = ["adapt", "--model", "mnist-mcu-int8", "--name", "mine"];

    let mut first = pismo
        .command(&adapt)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start pismo adapt");
    let mut lines = BufReader::new(first.stderr.take().unwrap()).lines();
    // Its first line comes once it holds the corrections' lock and has begun fine-tuning.
    let started = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.contains("adapting mnist-mcu-int8@5"));
    assert!(started.is_some(), "the first adaptation never started");
    let second = pismo.run(&adapt);
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(
        first.wait().unwrap().success(),
        "the first one failed: {rest:?}"
    );
    second.expect_code(1);
    assert!(
        second
            .stderr
            .contains("another adaptation of the corrections"),
        "{}",
        second.stderr
    );
    // Only the first registered a model; once it ended, adapting works again.
    let listed = pismo.run(&["models", "list", "--json"]);
    assert!(!listed.stdout.contains("mine@2"), "{}", listed.stdout);
    pismo.run(&adapt).expect_code(0);
    let listed = pismo.run(&["models", "list", "--json"]);
    assert!(listed.stdout.contains("mine@2"), "{}", listed.stdout);
}
