//! `pismo eval --set … --calibrate`: the report of [`pismo_engine::calibration`]'s rule,
//! the "not sure" thresholds fitted on one half of the dev data and reported on the other.

use pismo_core::verdict::{MIN_MARGIN, MIN_TOP};
use pismo_engine::calibration::{fit, flagged, halves, GRID, MAX_FLAGGED_1_IN, NEVER_FITTED};
use pismo_engine::tally::Score;

use crate::text;

/// The `--calibrate` report for `sets` (name, every answer in order): the grid on the fit
/// halves, the pair the rule picks, and the picked and shipped pairs on the report halves.
pub(crate) fn report(sets: &[(&str, Vec<Score>)]) -> String {
    let split: Vec<(&str, Vec<Score>, Vec<Score>)> = sets
        .iter()
        .map(|(name, s)| {
            let (f, r) = halves(s);
            (*name, f, r)
        })
        .collect();
    let fit_halves: Vec<(&str, Vec<Score>)> =
        split.iter().map(|(n, f, _)| (*n, f.clone())).collect();
    let chosen = fit(&fit_halves);
    let cell = |s: &[Score], (top, margin): (f32, f32)| {
        let f = flagged(s, top, margin);
        format!(
            "{} / {} / {}",
            text::percent(Some(f.answers)),
            text::percent(Some(f.errors)),
            text::percent(Some(f.sure_right))
        )
    };
    let header: Vec<String> = std::iter::once("T, M".to_owned())
        .chain(split.iter().map(|(n, f, _)| format!("{n} ({})", f.len())))
        .collect();
    let header: Vec<&str> = header.iter().map(String::as_str).collect();

    let mut out = format!(
        "\nnot sure when top < T or lead < M: answers flagged / errors flagged / accuracy of the sure answers\n\
         fit halves (even positions; {NEVER_FITTED} takes no part in the fit):\n"
    );
    let mut grid = text::Table::new(&header, &[]);
    for pair in GRID {
        let mark = match (Some(pair) == chosen, pair == (MIN_TOP, MIN_MARGIN)) {
            (true, true) => " (fitted, shipped)",
            (true, false) => " (fitted)",
            (false, true) => " (shipped)",
            (false, false) => "",
        };
        let mut cells = vec![format!("{}, {}{mark}", pair.0, pair.1)];
        cells.extend(split.iter().map(|(_, f, _)| cell(f, pair)));
        grid.row(cells);
    }
    out.push_str(&grid.render());
    match chosen {
        Some((top, margin)) => out.push_str(&format!(
            "fitted: T {top}, M {margin}, the strictest pair that flags at most 1 answer in {MAX_FLAGGED_1_IN} on every fit half\n"
        )),
        None => out.push_str(&format!(
            "fitted: none (no set to fit on, or every pair flags more than 1 answer in {MAX_FLAGGED_1_IN})\n"
        )),
    }
    let header: Vec<String> = std::iter::once("T, M".to_owned())
        .chain(split.iter().map(|(n, _, r)| format!("{n} ({})", r.len())))
        .collect();
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    out.push_str("report halves (odd positions, not used by the fit):\n");
    let mut held = text::Table::new(&header, &[]);
    let mut pairs = vec![("shipped", (MIN_TOP, MIN_MARGIN))];
    if let Some(c) = chosen.filter(|&c| c != (MIN_TOP, MIN_MARGIN)) {
        pairs.push(("fitted", c));
    }
    for (what, pair) in pairs {
        let mut cells = vec![format!("{}, {} ({what})", pair.0, pair.1)];
        cells.extend(split.iter().map(|(_, _, r)| cell(r, pair)));
        held.row(cells);
    }
    out.push_str(&held.render());
    out
}
