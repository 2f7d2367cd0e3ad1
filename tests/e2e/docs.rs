//! Every repository path a doc names exists (issue 30: no stale references).
//!
//! The docs are every Markdown file of the repository, found by walking it from the
//! workspace root (what builds, runs and package managers make is left out: [`NOT_WALKED`]).
//! In each, the candidates are: the words of inline code spans and of fenced code blocks,
//! link targets, and plain words with a `/` whose first folder is a top-level entry of the
//! repository (`see bench/README.md`). A candidate, once a leading `./` or `@` (curl's
//! `@FILE`) and a trailing `#anchor` or punctuation are cut off, is taken for a repository
//! path when
//! - it holds only path characters (letters, digits, `_ . / + -`): `<runs>/studies`,
//!   `/api/runs/{id}`, globs, `$VAR/…` and `KEY=VALUE` are placeholders or shell;
//! - it is relative: URLs, absolute paths (`/tmp`, `/usr`, API routes) and `~/…` are not in
//!   the repository;
//! - no segment is a placeholder word ([`PLACEHOLDERS`]: `fuzz/corpus/TARGET/`);
//! - it has a `/` and starts with a top-level entry of the repository or `..`, or ends in a
//!   known extension ([`EXTENSIONS`]); or it is a bare `*.md` or `*.rs` file name
//!   (`SECURITY.md`).
//!
//! Such a path must exist relative to the repository root or to the doc's folder; a partial
//! path (`src/synth.rs` in a section about `digits/`) as the tail of a repository path; a
//! bare file name as the name of some file. Not checked: paths that leave the repository
//! (`../shared/…`) and what builds and runs make ([`GENERATED`]: `data/mnist`, `target/…`).

use std::collections::BTreeSet;
use std::fs;
use std::path::{Component, Path, PathBuf};

use pismo_tests::workspace_root;

/// Folders never walked: version control, build output, installed packages, downloads.
const NOT_WALKED: &[&str] = &[".git", "target", "node_modules", ".venv", "__pycache__"];

/// Paths (from the repository root) that builds, tests and runs make: a doc may name them
/// although a fresh checkout does not have them.
const GENERATED: &[&str] = &[
    "data/",
    "target/",
    "bench/.venv/",
    "bench/results/",
    "fuzz/artifacts/",
];

/// Segments that stand for a name the reader chooses (`models/NAME.vN/`).
const PLACEHOLDERS: &[&str] = &["DIR", "FILE", "NAME", "TARGET"];

/// Endings of the files a doc names by a partial path.
const EXTENSIONS: &[&str] = &[
    "rs", "md", "toml", "json", "jsonl", "py", "mjs", "js", "sh", "txt", "pismo", "yaml", "html",
    "css", "png", "gz", "lock",
];

/// The repository as the check sees it.
struct Repo {
    root: PathBuf,
    /// Names of the entries at the root (`core`, `README.md`, `.ci`, …).
    top: BTreeSet<String>,
    /// Every file and folder walked, relative to the root, with `/` between segments.
    paths: BTreeSet<String>,
    /// The Markdown files among them.
    docs: Vec<String>,
}

impl Repo {
    fn walk(root: &Path) -> Self {
        let mut repo = Repo {
            root: root.to_path_buf(),
            top: BTreeSet::new(),
            paths: BTreeSet::new(),
            docs: Vec::new(),
        };
        for entry in fs::read_dir(root).expect("read the repository root") {
            repo.top.insert(
                entry
                    .expect("a root entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned(),
            );
        }
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in
                fs::read_dir(&dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
            {
                let entry = entry.expect("a folder entry");
                let name = entry.file_name().to_string_lossy().into_owned();
                let path = entry.path();
                let rel = relative(root, &path);
                let is_dir = entry.file_type().expect("a file type").is_dir();
                if is_dir && (NOT_WALKED.contains(&name.as_str()) || rel == "data") {
                    continue;
                }
                if is_dir {
                    stack.push(path);
                } else if name.ends_with(".md") && !rel.starts_with("fuzz/corpus/") {
                    repo.docs.push(rel.clone());
                }
                repo.paths.insert(rel);
            }
        }
        repo.docs.sort();
        repo
    }

    /// The paths `text` (the doc at `doc`, relative to the root) names that do not exist.
    fn missing(&self, doc: &str, text: &str) -> BTreeSet<String> {
        let doc_dir = Path::new(doc).parent().unwrap_or(Path::new(""));
        candidates(text, &self.top)
            .iter()
            .filter_map(|candidate| self.repo_path(candidate))
            .filter(|path| !self.exists(doc_dir, path))
            .collect()
    }

    /// `candidate` cleaned up, if it is taken for a repository path (module doc).
    fn repo_path(&self, candidate: &str) -> Option<String> {
        let mut c = candidate.trim_start_matches('@');
        while let Some(rest) = c.strip_prefix("./") {
            c = rest;
        }
        let c = c.split('#').next().unwrap_or("");
        let c = c.trim_end_matches([':', ',', '.', ';', ')', '!', '?']);
        let path_chars = |ch: char| ch.is_ascii_alphanumeric() || "_./+-".contains(ch);
        if c.is_empty() || c.starts_with('/') || !c.chars().all(path_chars) {
            return None;
        }
        let segments: Vec<&str> = c.split('/').filter(|s| !s.is_empty()).collect();
        let placeholder = |s: &&str| PLACEHOLDERS.contains(&s.split('.').next().unwrap_or(""));
        if segments.is_empty() || segments.iter().any(placeholder) {
            return None;
        }
        let known_extension = c
            .rsplit_once('.')
            .is_some_and(|(_, ext)| EXTENSIONS.contains(&ext) && !ext.contains('/'));
        let looks_like_path = if c.contains('/') {
            self.top.contains(segments[0]) || segments[0] == ".." || known_extension
        } else {
            c.ends_with(".md") || c.ends_with(".rs")
        };
        looks_like_path.then(|| c.to_owned())
    }

    /// Whether `path`, named by a doc in `doc_dir`, exists (or is left out: module doc).
    fn exists(&self, doc_dir: &Path, path: &str) -> bool {
        // `../docs/X.md` climbs back into the repository; `../shared/…` names a folder
        // beside it (and so does anything that climbs out of the root from the doc).
        let first = path.split('/').find(|s| !s.is_empty() && *s != "..");
        if path.starts_with("..") && !first.is_some_and(|f| self.top.contains(f)) {
            return true;
        }
        let Some(from_doc) = normalize(&doc_dir.join(path)) else {
            return true;
        };
        let generated = |p: &str| {
            GENERATED
                .iter()
                .any(|g| p.starts_with(g) || format!("{p}/") == *g)
                || p.split('/').any(|s| NOT_WALKED.contains(&s))
        };
        let readings = [Some(from_doc), normalize(Path::new(path))];
        let found = readings.iter().flatten().any(|p| {
            let p = p.trim_end_matches('/');
            !p.is_empty() && (self.paths.contains(p) || generated(p))
        });
        if found {
            return true;
        }
        let trimmed = path.trim_end_matches('/');
        if path.starts_with("..") {
            return false;
        }
        if !trimmed.contains('/') {
            return self
                .paths
                .iter()
                .any(|p| p.rsplit('/').next() == Some(trimmed));
        }
        let tail = format!("/{trimmed}");
        self.paths.iter().any(|p| p.ends_with(&tail))
    }
}

/// `path` relative to `root`, segments joined by `/`.
fn relative(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).expect("under the root");
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// `path` with `.` and `..` resolved, segments joined by `/`; `None` if it leaves the root.
fn normalize(path: &Path) -> Option<String> {
    let mut out: Vec<String> = Vec::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop()?;
            }
            Component::Normal(s) => out.push(s.to_string_lossy().into_owned()),
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out.join("/"))
}

/// The candidates of a Markdown text (module doc): words of code spans and fenced blocks,
/// link targets, and plain words with a `/` that start with a top-level entry.
fn candidates(text: &str, top: &BTreeSet<String>) -> Vec<String> {
    let mut out = Vec::new();
    let mut prose = String::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            prose.push('\n');
            continue;
        }
        if fenced {
            out.extend(line.split_whitespace().map(str::to_owned));
            prose.push('\n');
        } else {
            prose.push_str(line);
            prose.push('\n');
        }
    }
    // Outside fences: odd pieces between backticks are code spans (they may wrap lines).
    for (i, piece) in prose.split('`').enumerate() {
        if i % 2 == 1 {
            out.extend(piece.split_whitespace().map(str::to_owned));
            continue;
        }
        let mut rest = piece;
        while let Some(at) = rest.find("](") {
            let target = &rest[at + 2..];
            let end = target
                .find(|c: char| c == ')' || c.is_whitespace())
                .unwrap_or(target.len());
            out.push(target[..end].to_owned());
            rest = &target[end..];
        }
        for word in piece.split_whitespace() {
            let word = word.trim_start_matches(['(', '"', '\'']);
            let first = word.split('/').next().unwrap_or("");
            if word.contains('/') && top.contains(first) {
                out.push(word.to_owned());
            }
        }
    }
    out
}

#[test]
fn every_path_a_doc_names_exists() {
    let repo = Repo::walk(&workspace_root());
    for doc in [
        "README.md",
        "SECURITY.md",
        "docs/ARCHITECTURE.md",
        "docs/HTTP.md",
        "bench/README.md",
    ] {
        assert!(
            repo.docs.iter().any(|d| d == doc),
            "{doc} was not found among the docs: {:?}",
            repo.docs
        );
    }
    let mut checked = 0;
    let mut missing = Vec::new();
    for doc in &repo.docs {
        let text =
            fs::read_to_string(repo.root.join(doc)).unwrap_or_else(|e| panic!("read {doc}: {e}"));
        checked += candidates(&text, &repo.top)
            .iter()
            .filter(|c| repo.repo_path(c).is_some())
            .count();
        missing.extend(
            repo.missing(doc, &text)
                .into_iter()
                .map(|path| format!("{doc}: {path}")),
        );
    }
    assert!(
        checked > 500,
        "only {checked} paths found in {} docs: the extraction is broken",
        repo.docs.len()
    );
    assert!(
        missing.is_empty(),
        "{} path(s) named in the docs do not exist (fix the doc, or see tests/e2e/docs.rs for what is left out):\n  {}",
        missing.len(),
        missing.join("\n  ")
    );
}

/// The rules of the module doc, on a made-up doc against the real repository.
#[test]
fn a_doc_naming_a_missing_file_is_caught_and_placeholders_are_not() {
    let repo = Repo::walk(&workspace_root());
    let doc = "\
Real: `core/src/verdict.rs`, [the HTTP API](HTTP.md), `SECURITY.md`, see bench/README.md.
Partial: `src/synth.rs`. Relative to the doc: [up](../README.md).
Gone: `core/tests/preprocess.rs`, [a link](NOPE.md), `DESIGN.md`, see bench/NOPE.md, `scripts/nope --flag`,
[up and gone](../docs/NOPE.md).
Not paths: `../shared/DESIGN.md`, `/tmp/x`, `~/y`, `data/mnist`, `target/release/pismo`,
`<runs>/studies/`, `/api/runs/{id}`, `image/png`, `fuzz/corpus/TARGET/`, `models/NAME.vN/`,
<https://example.com/a/b.md>, `samples/*.png`, `PISMO_REGISTRY=/data/models`, and/or.

```
scripts/fetch-mnist
scripts/gone --flag
curl --data-binary @samples/7-seven.png localhost:8501/api/predict
```
";
    let missing: Vec<String> = repo.missing("docs/made-up.md", doc).into_iter().collect();
    assert_eq!(
        missing,
        [
            "../docs/NOPE.md",
            "DESIGN.md",
            "NOPE.md",
            "bench/NOPE.md",
            "core/tests/preprocess.rs",
            "scripts/gone",
            "scripts/nope",
        ]
    );
}
