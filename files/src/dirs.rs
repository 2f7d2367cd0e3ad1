//! Where a folder is when no flag names it: the one rule every default location follows.
//!
//! An environment variable names the folder; a variable that is unset **or empty** counts as
//! not given, and the built-in fallback (relative to the working directory) is used. So
//! `PISMO_RUNS= pismo train` behaves like `pismo train`, never like a folder called "".

use std::path::PathBuf;

/// The folder `$var` names, or `fallback` when `var` is unset or empty.
pub fn from_env(var: &str, fallback: &str) -> PathBuf {
    match std::env::var_os(var) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(fallback),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Each test owns its variable: the environment is shared by the test threads.

    #[test]
    fn a_set_variable_names_the_folder() {
        std::env::set_var("PISMO_FILES_TEST_DIRS_SET", "/srv/pismo/runs");
        assert_eq!(
            from_env("PISMO_FILES_TEST_DIRS_SET", "./runs"),
            PathBuf::from("/srv/pismo/runs")
        );
    }

    #[test]
    fn an_unset_variable_gives_the_fallback() {
        std::env::remove_var("PISMO_FILES_TEST_DIRS_UNSET");
        assert_eq!(
            from_env("PISMO_FILES_TEST_DIRS_UNSET", "./runs"),
            PathBuf::from("./runs")
        );
    }

    #[test]
    fn an_empty_variable_counts_as_unset() {
        std::env::set_var("PISMO_FILES_TEST_DIRS_EMPTY", "");
        assert_eq!(
            from_env("PISMO_FILES_TEST_DIRS_EMPTY", "data/mnist"),
            PathBuf::from("data/mnist")
        );
    }
}
