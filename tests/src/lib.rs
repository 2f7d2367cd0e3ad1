//! Shared helpers for the end-to-end tests.
//!
//! - [`TempDir`]: a fresh folder under the system temp dir, removed on drop.
//! - [`Pismo`]: runs the real `pismo` binary in a sandbox folder whose `PISMO_REGISTRY`,
//!   `PISMO_RUNS` and `PISMO_DATA` point inside it, so no test ever touches `./models`.
//!   The binary is the one cargo builds for this workspace (`target/<profile>/pismo`); it is
//!   (re)built once per test process with `cargo build -p pismo`, because a binary of another
//!   package cannot be a dependency of this one. `PISMO_BIN` overrides the path.
//! - [`workspace_root`], [`test_data`], [`t10k`]: where the real data is.
//! - [`train_tiny_model`]: a small model trained on the MNIST test images of `tests/data`
//!   through the library, for tests that need *a* model without the 47 MB training set.
//! - [`drawn_digit_png`]: an MNIST digit scaled up onto a white canvas, as a user would draw it.
//! - [`ambiguous_blend`]: a blend of two MNIST digits that the shipped `mnist@1` is unsure about.
//! - [`postgres`]: a throwaway PostgreSQL cluster in a temp folder, one database per test.

pub mod postgres;

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use pismo_core::hyper::Hyper;
use pismo_core::preprocess::GreyImage;
use pismo_digits::mnist::{self, Dataset, TRAIN_DIGEST};
use pismo_storage::registry::Registry;
use pismo_storage::runs::Runs;
use pismo_training::session::{self, TrainRequest};

/// A folder that is removed (with its content) when dropped: a [`tempfile::TempDir`] with a
/// tag in its name, and `join` for the paths the tests build inside it.
#[derive(Debug)]
pub struct TempDir(tempfile::TempDir);

impl TempDir {
    /// A new empty folder under the system temp dir, named `pismo-<tag>-<random>`.
    pub fn new(tag: &str) -> Self {
        Self(
            tempfile::Builder::new()
                .prefix(&format!("pismo-{tag}-"))
                .tempdir()
                .expect("create temp dir"),
        )
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        self.0.path()
    }

    /// A path inside the folder.
    pub fn join(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.0.path().join(rel)
    }
}

/// The workspace folder (holding `Cargo.toml`, `data/`, `tests/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
        .to_path_buf()
}

/// `tests/data`: the real MNIST test split (gzip), loadable with `load_split(.., Test)`.
pub fn test_data() -> PathBuf {
    workspace_root().join("tests").join("data")
}

/// The 10000 MNIST test images and labels of `tests/data`.
pub fn t10k() -> Dataset {
    let dir = test_data();
    mnist::load_pair(
        &dir.join("t10k-images-idx3-ubyte.gz"),
        &dir.join("t10k-labels-idx1-ubyte.gz"),
    )
    .expect("tests/data holds the MNIST t10k files")
}

/// The full MNIST at `./data/mnist` of the workspace, if its training files are there
/// (CI fetches them; a fresh clone may not have them). With `PISMO_REQUIRE_MNIST` set, as CI
/// sets it, a missing download panics instead of letting the caller skip.
pub fn full_mnist() -> Option<PathBuf> {
    let dir = workspace_root().join("data").join("mnist");
    let has = |known| pismo_digits::mnist::find_known(&dir, known).is_ok();
    let train = pismo_digits::mnist::Split::Train;
    if has(train.images()) && has(train.labels()) {
        return Some(dir);
    }
    assert!(
        std::env::var_os("PISMO_REQUIRE_MNIST").is_none(),
        "PISMO_REQUIRE_MNIST is set but {} has no MNIST training files (run scripts/fetch-mnist)",
        dir.display()
    );
    eprintln!(
        "skipped: no full MNIST in {} (run scripts/fetch-mnist)",
        dir.display()
    );
    None
}

/// The bytes of a model of the shipped registry (`models/`), e.g. `"mnist-int8"`.
pub fn shipped_model(reference: &str) -> Vec<u8> {
    Registry::open(workspace_root().join("models"))
        .load(Some(reference))
        .expect("shipped model")
        .1
}

/// Trains model `tiny` (hidden 32, 2 epochs) on the t10k images through a real session:
/// registers it in `registry` (as `tiny@1` in an empty one) with a run record in `runs`.
/// Takes about a second. Returns the model id, e.g. `"tiny@1"`.
pub fn train_tiny_model(registry: &Path, runs: &Path) -> String {
    let data = t10k();
    let req = TrainRequest {
        name: "tiny".to_owned(),
        hyper: Hyper {
            hidden_size: 32,
            epochs: 2,
            val_size: 1000,
            ..Hyper::DEFAULT
        },
        data_dir: test_data(),
        threads: 0,
        aliases: Vec::new(),
        recipe: Default::default(),
        corpora_dir: pismo_digits::corpora::default_dir(),
        tags: Vec::new(),
        register: true,
    };
    let finished = session::run_with_data(
        &req,
        &data,
        None,
        TRAIN_DIGEST,
        &Registry::open(registry),
        &Runs::open(runs),
        &mut |_| ControlFlow::Continue(()),
    )
    .expect("tiny training session");
    finished.model.expect("a registered model").to_string()
}

/// A PNG of a drawing: MNIST image `pixels` (light ink on black, 28x28) scaled 5x with
/// nearest neighbour, inverted to dark ink on white, on a white `side`x`side` canvas
/// (`side` >= 140), off-centre like a hurried drawing.
pub fn drawn_digit_png(pixels: &[u8; 784], side: usize) -> Vec<u8> {
    assert!(side >= 140, "the digit is drawn 140 px tall");
    let mut canvas = vec![255u8; side * side];
    let (ox, oy) = ((side - 140) / 3, (side - 140) / 2);
    for y in 0..140 {
        for x in 0..140 {
            canvas[(oy + y) * side + ox + x] = 255 - pixels[(y / 5) * 28 + x / 5];
        }
    }
    let img = GreyImage::new(side, side, &canvas).expect("valid canvas");
    pismo_digits::image::encode_png(&img)
}

/// A 28x28 image the shipped `mnist@1` is unsure about, with its two candidates: the
/// first 50/50 blend of two MNIST test digits of different labels that
/// `pismo_core::verdict` calls unsure (found by the library, then asked of the CLI).
pub fn ambiguous_blend() -> ([u8; 784], [usize; 2]) {
    let t = t10k();
    let (mlp, _) = pismo_engine::model::AnyMlp::decode(&shipped_model("mnist@1")).unwrap();
    for i in 0..50 {
        for j in i + 1..50 {
            if t.labels[i] == t.labels[j] {
                continue;
            }
            let mut blend = [0u8; 784];
            for (b, (&x, &y)) in blend.iter_mut().zip(t.images[i].iter().zip(&t.images[j])) {
                *b = ((u16::from(x) + u16::from(y)) / 2) as u8;
            }
            let mut input = [0.0f32; 784];
            pismo_core::preprocess::to_input(&GreyImage::new(28, 28, &blend).unwrap(), &mut input)
                .unwrap();
            let v = pismo_core::verdict::verdict(&mlp.predict_proba(&input));
            if let pismo_core::verdict::Verdict::Unsure { first, second, .. } = v {
                return (blend, [first, second]);
            }
        }
    }
    panic!("no blend of two test digits leaves mnist@1 unsure");
}

/// The IDX3 bytes of `images` (28x28 each), as MNIST's files hold them.
pub fn idx3(images: &[[u8; 784]]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, 0x03];
    for n in [images.len() as u32, 28, 28] {
        out.extend(n.to_be_bytes());
    }
    for image in images {
        out.extend_from_slice(image);
    }
    out
}

/// The `pismo` binary of this workspace, built once per test process.
pub fn pismo_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("PISMO_BIN").filter(|b| !b.is_empty()) {
            return PathBuf::from(bin);
        }
        // This test binary is <target>/<profile dir>/deps/e2e-<hash>.
        let exe = std::env::current_exe().expect("current exe");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("test binary in <target>/<profile>/deps");
        let target_dir = profile_dir.parent().expect("target dir");
        let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") | None => "dev".to_owned(),
            Some(other) => other.to_owned(),
        };
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .args([
                "build",
                "--quiet",
                "-p",
                "pismo",
                "--bin",
                "pismo",
                "--profile",
            ])
            .arg(&profile)
            .arg("--target-dir")
            .arg(target_dir)
            .current_dir(workspace_root())
            .stdin(Stdio::null())
            .status()
            .expect("run cargo build -p pismo");
        assert!(status.success(), "cargo build -p pismo failed: {status}");
        profile_dir.join(format!("pismo{}", std::env::consts::EXE_SUFFIX))
    })
}

/// A sandbox to run `pismo` in: its own working directory, with `PISMO_REGISTRY`,
/// `PISMO_RUNS`, `PISMO_DATA` and `PISMO_DRAWN` set to `models/`, `runs/`, `data/` and
/// `drawn/` inside it (none of them exists until something creates it).
#[derive(Debug)]
pub struct Pismo {
    /// The sandbox folder.
    pub home: TempDir,
    data: PathBuf,
}

/// What one run of `pismo` did.
#[derive(Debug)]
pub struct Output {
    /// Exit status (`None` if killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Output {
    /// Stdout parsed as JSON Lines (panics with the output if a line is not JSON).
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("not JSON ({e}): {line}\nstderr: {}", self.stderr))
            })
            .collect()
    }

    /// Asserts the exit status, showing both outputs if it differs.
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "exit status; stdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
}

impl Pismo {
    /// A new empty sandbox.
    pub fn new() -> Self {
        let home = TempDir::new("cli");
        let data = home.join("data");
        Self { home, data }
    }

    /// Points `PISMO_DATA` at `dir` instead of the empty `data/` of the sandbox.
    pub fn with_data(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data = dir.into();
        self
    }

    /// The MNIST folder `PISMO_DATA` names.
    pub fn data(&self) -> PathBuf {
        self.data.clone()
    }

    /// The registry folder (`PISMO_REGISTRY`).
    pub fn registry(&self) -> PathBuf {
        self.home.join("models")
    }

    /// The runs folder (`PISMO_RUNS`).
    pub fn runs(&self) -> PathBuf {
        self.home.join("runs")
    }

    /// The folder of corrected drawings (`PISMO_DRAWN`).
    pub fn drawn(&self) -> PathBuf {
        self.home.join("drawn")
    }

    /// A `pismo` command with `args`, in the sandbox, not yet run.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(pismo_bin());
        cmd.args(args)
            .current_dir(self.home.path())
            .env("PISMO_REGISTRY", self.registry())
            .env("PISMO_RUNS", self.runs())
            .env("PISMO_DATA", &self.data)
            .env("PISMO_DRAWN", self.drawn())
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `pismo` with `args` in the sandbox.
    pub fn run(&self, args: &[&str]) -> Output {
        let out = self.command(args).output().expect("run the pismo binary");
        Output {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// `pismo serve` started by a test ([`Pismo::serve`]): killed when dropped (also when an
/// assert fails); its stdout is drained and its stderr kept, line by line.
#[derive(Debug)]
pub struct Served {
    child: std::process::Child,
    /// The URL it printed first, e.g. `http://127.0.0.1:40123`.
    pub url: String,
    stderr: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Served {
    /// `HOST:PORT` of [`Served::url`].
    pub fn addr(&self) -> &str {
        self.url.trim_start_matches("http://")
    }

    /// Waits for a stderr line containing `needle` and returns it (panics if the server
    /// ends its stderr first).
    pub fn stderr_line(&mut self, needle: &str) -> String {
        loop {
            let line = self
                .stderr
                .recv()
                .unwrap_or_else(|_| panic!("pismo serve wrote no line with {needle:?}"));
            self.seen.push(line.clone());
            if line.contains(needle) {
                return line;
            }
        }
    }

    /// The server's process id (to read its `/proc/PID/status`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the server and returns everything it wrote on stderr.
    pub fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.seen.extend(self.stderr.iter());
        self.seen.join("\n")
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Pismo {
    /// Starts `pismo serve --addr ADDR ARGS…` in the sandbox and waits for the URL it prints.
    pub fn serve(&self, addr: &str, args: &[&str]) -> Served {
        use std::io::{BufRead, BufReader};
        let mut all = vec!["serve", "--addr", addr];
        all.extend_from_slice(args);
        let mut child = self
            .command(&all)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start pismo serve");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let stderr = BufReader::new(child.stderr.take().expect("piped stderr"));
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read the server's URL");
        // Keep reading stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        let served = Served {
            child,
            url: line.trim().to_owned(),
            stderr: rx,
            seen: Vec::new(),
        };
        if !served.url.starts_with("http://") {
            panic!(
                "pismo serve printed no URL first: {line:?}\nstderr:\n{}",
                served.stop()
            );
        }
        served
    }
}

impl Default for Pismo {
    fn default() -> Self {
        Self::new()
    }
}
