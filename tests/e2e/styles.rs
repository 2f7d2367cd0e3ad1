//! The styles set (`pismo_digits::synth::style_set`: crossed sevens, ones with a flag
//! and a foot, curled nines, open and closed fours, looped twos, quick sixes and zeros,
//! digits small in a corner and slanted) drawn with the mouse on the real web page in
//! headless Chromium (`tests/browser/styles.mjs`) against the real `pismo serve` with the
//! shipped registry. The page's answers are tallied per style and printed; the test needs
//! the same tools as `web.rs` and skips (loudly) or fails the same way without them.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};

use pismo_digits::synth::{self, STYLE_CASES};
use pismo_tests::{workspace_root, Pismo};

use crate::web::{browser_dir, copy_dir, missing_tools, skip};

/// Drawings per style (the window's test in `window/src/styles.rs` uses the same).
const PER_STYLE: usize = 20;
/// The least share of the styles set the shipped default model must recognise on the page.
const MIN_PERCENT: usize = 90;

#[test]
fn the_styles_set_drawn_on_the_page_is_recognised() {
    let missing = missing_tools();
    if !missing.is_empty() {
        skip(
            "the styles test on the page (tests/e2e/styles.rs)",
            &missing,
        );
        return;
    }
    let p = Pismo::new();
    copy_dir(&workspace_root().join("models"), &p.registry());
    let set = synth::style_set(synth::STYLES_SEED, PER_STYLE);
    let styles = p.home.join("styles.json");
    std::fs::write(&styles, serde_json::to_string(&set).unwrap()).unwrap();
    let answers = p.home.join("answers.json");
    let server = p.serve("127.0.0.1:0", &[]);
    let shots = workspace_root().join("target").join("browser-screenshots");
    let out = Command::new("node")
        .arg(browser_dir().join("styles.mjs"))
        .arg(&server.url)
        .arg(&styles)
        .arg(&answers)
        .arg(&shots)
        .current_dir(browser_dir())
        .stdin(Stdio::null())
        .output()
        .expect("run node tests/browser/styles.mjs");
    eprintln!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        panic!(
            "the styles drawing failed ({}); pismo serve's stderr:\n{}",
            out.status,
            server.stop()
        );
    }
    server.stop();
    let answers: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(&answers).unwrap()).unwrap();
    assert_eq!(answers.len(), set.len());
    let mut right: BTreeMap<&str, usize> = BTreeMap::new();
    for (sample, answer) in set.iter().zip(&answers) {
        assert_eq!(answer["style"], sample.style);
        let ok = answer["label"].as_u64() == Some(u64::from(sample.digit));
        *right.entry(sample.style).or_default() += usize::from(ok);
    }
    eprintln!("styles set on the web page (default model, {PER_STYLE} drawings per style):");
    for case in STYLE_CASES {
        eprintln!(
            "  {:<26} {}/{PER_STYLE}",
            case.name,
            right.get(case.name).copied().unwrap_or(0)
        );
    }
    let total: usize = right.values().sum();
    eprintln!("  {:<26} {total}/{}", "all", set.len());
    assert!(
        total * 100 >= set.len() * MIN_PERCENT,
        "{total} of {} styles-set drawings recognised on the page, below {MIN_PERCENT} %",
        set.len()
    );
}
