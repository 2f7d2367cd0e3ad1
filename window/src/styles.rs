//! The styles set (`pismo_digits::synth::style_set`) drawn through the window's app
//! state: every drawing is replayed as mouse strokes on the 280x280 canvas with the window's
//! own pen, and the app's answer is tallied per style.

use pismo_digits::synth::{self, STYLE_CASES};

use crate::app::tests::shipped;
use crate::app::App;

/// Drawings per style.
const PER_STYLE: usize = 20;

#[test]
fn the_styles_set_drawn_in_the_window_is_recognised() {
    let set = synth::style_set(synth::STYLES_SEED, PER_STYLE);
    let mut app = App::new(shipped(), None).expect("shipped model");
    let mut right = [0usize; STYLE_CASES.len()];
    for sample in &set {
        app.clear();
        for stroke in &sample.strokes {
            app.stroke(stroke);
        }
        app.update();
        let case = STYLE_CASES
            .iter()
            .position(|c| c.name == sample.style)
            .unwrap();
        let read = app.prediction().map(|p| p.digit);
        right[case] += usize::from(read == Some(usize::from(sample.digit)));
    }
    eprintln!(
        "styles set in the window ({}, {PER_STYLE} drawings per style):",
        app.model()
    );
    for (case, ok) in STYLE_CASES.iter().zip(right) {
        eprintln!("  {:<26} {ok}/{PER_STYLE}", case.name);
    }
    let total: usize = right.iter().sum();
    eprintln!("  {:<26} {total}/{}", "all", set.len());
    assert!(
        total * 100 >= set.len() * MIN_PERCENT,
        "{total} of {} styles-set drawings recognised in the window, below {MIN_PERCENT} %",
        set.len()
    );
}

/// The least share of the styles set the shipped default model must recognise.
const MIN_PERCENT: usize = 90;
