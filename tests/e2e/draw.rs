//! `pismo draw` through the real binary, without a display: the window itself is tested in
//! `window/` (app state and frames) and under Xvfb by `scripts/check-draw-window`.

use pismo_tests::Pismo;

#[test]
fn draw_without_a_display_says_so_and_exits_1() {
    let p = Pismo::new();
    let out = p
        .command(&["draw"])
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .output()
        .expect("run pismo draw");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        "error: no display found; try `pismo serve`"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn draw_rejects_a_scale_out_of_range_as_a_usage_error() {
    let p = Pismo::new();
    for scale in ["0", "9"] {
        let out = p.run(&["draw", "--scale", scale]);
        assert_eq!(out.code, Some(2), "--scale {scale}: {}", out.stderr);
        assert!(
            out.stderr.contains("--scale must be 1 to 8"),
            "{}",
            out.stderr
        );
    }
}

#[test]
fn draw_help_names_the_learn_and_back_keys_and_where_learning_writes() {
    let p = Pismo::new();
    let out = p.run(&["draw", "--help"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    for words in [
        "L: learn from my corrections",
        "registers it as <name>-mine",
        "B: back to the model used before",
        "--runs",
        "--data",
    ] {
        assert!(
            out.stdout.contains(words),
            "{words:?} missing:\n{}",
            out.stdout
        );
    }
}
