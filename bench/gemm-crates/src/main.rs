//! Batch prediction of the 10000 MNIST test images four ways, in one process, alternating:
//!
//! - `strips`: `pismo_engine::eval::evaluate` (what `pismo eval` and the validation
//!   pass run: sparse inputs, 128 images at a time per strip of 64 hidden units);
//! - `per-image`: the loop it replaced, one image at a time through the dispatched
//!   single-image kernel (`kernels::logits`), the images split over the threads;
//! - `matrixmultiply`, `gemm`: the bytes turned into a dense `(n, 784)` f32 matrix, one
//!   `sgemm` with `w1` (row-major, as pismo stores it) onto the biases, ReLU, then the
//!   output layer with pismo's `dot`.
//!
//! ```text
//! MATMUL_NUM_THREADS=2 cargo run --release --manifest-path bench/gemm-crates/Cargo.toml -- \
//!     [--threads 2] [--reps 5] [--hidden 128,256,1024,2048,4096] [--data data/mnist]
//! ```
//!
//! The weights are He-initialised with small random biases (seeded); each line gives the
//! median wall time of `--reps` passes after one warm-up pass, the dense GFLOP/s that time
//! stands for (2·784·H per image), and how many images' most probable digit differs from
//! the `strips` answer (the dense paths sum in another order, with FMA where the crate uses
//! it).
#![allow(unsafe_code)]

use std::path::PathBuf;
use std::time::Instant;

use pismo_core::mlp::{self, Mlp, CLASSES, INPUT};
use pismo_core::rng::Rng;
use pismo_digits::mnist::{self, Dataset, Split};
use pismo_engine::{boxed_zeroed, eval, kernels};

struct Args {
    threads: usize,
    reps: usize,
    hidden: Vec<usize>,
    data: PathBuf,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        threads: 2,
        reps: 5,
        hidden: vec![128, 256, 1024, 2048, 4096],
        data: PathBuf::from("data/mnist"),
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut it = argv.iter();
    while let Some(flag) = it.next() {
        let v = it.next().ok_or(format!("{flag} needs a value"))?;
        let num = |s: &str| s.parse::<usize>().map_err(|e| format!("{flag} {s}: {e}"));
        match flag.as_str() {
            "--threads" => a.threads = num(v)?.max(1),
            "--reps" => a.reps = num(v)?.max(1),
            "--hidden" => a.hidden = v.split(',').map(num).collect::<Result<_, _>>()?,
            "--data" => a.data = PathBuf::from(v),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok(a)
}

/// Median seconds of `reps` calls after one warm-up call, and the warm-up's answer.
fn time<T>(reps: usize, mut f: impl FnMut() -> T) -> (f64, T) {
    let first = f();
    let mut t: Vec<f64> = (0..reps)
        .map(|_| {
            let t0 = Instant::now();
            std::hint::black_box(f());
            t0.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(f64::total_cmp);
    (t[t.len() / 2], first)
}

/// `c (n, h) += a (n, k) · b (k, h)`, all row-major.
type Sgemm = fn(usize, usize, usize, &[f32], &[f32], &mut [f32], usize);

fn with_matrixmultiply(
    n: usize,
    k: usize,
    h: usize,
    a: &[f32],
    b: &[f32],
    c: &mut [f32],
    _threads: usize,
) {
    assert!(a.len() >= n * k && b.len() >= k * h && c.len() >= n * h);
    // SAFETY: the three slices hold the n·k, k·h and n·h elements the strides address.
    unsafe {
        matrixmultiply::sgemm(
            n,
            k,
            h,
            1.0,
            a.as_ptr(),
            k as isize,
            1,
            b.as_ptr(),
            h as isize,
            1,
            1.0,
            c.as_mut_ptr(),
            h as isize,
            1,
        )
    }
}

fn with_gemm(n: usize, k: usize, h: usize, a: &[f32], b: &[f32], c: &mut [f32], threads: usize) {
    assert!(a.len() >= n * k && b.len() >= k * h && c.len() >= n * h);
    // dst = 1·dst + 1·lhs·rhs; cs = column stride, rs = row stride.
    // SAFETY: the three slices hold the n·k, k·h and n·h elements the strides address.
    unsafe {
        gemm::gemm(
            n,
            h,
            k,
            c.as_mut_ptr(),
            1,
            h as isize,
            true,
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            1,
            h as isize,
            1.0f32,
            1.0f32,
            false,
            false,
            false,
            if threads > 1 {
                gemm::Parallelism::Rayon(threads)
            } else {
                gemm::Parallelism::None
            },
        )
    }
}

/// Most probable digit of every image through a dense GEMM.
fn dense<const H: usize>(m: &Mlp<H>, test: &Dataset, sgemm: Sgemm, threads: usize) -> Vec<usize> {
    let n = test.len();
    let x: Vec<f32> = test
        .images
        .iter()
        .flat_map(|im| im.iter().map(|&b| f32::from(b) * (1.0 / 255.0)))
        .collect();
    let mut z1: Vec<f32> = m.b1.iter().copied().cycle().take(n * H).collect();
    sgemm(n, INPUT, H, &x, m.w1.as_flattened(), &mut z1, threads);
    z1.chunks_exact_mut(H)
        .map(|a| {
            for v in a.iter_mut() {
                *v = mlp::relu(*v);
            }
            let mut z = m.b2;
            for k in 0..CLASSES {
                z[k] += mlp::dot(&m.w2[k], a);
            }
            mlp::argmax(&z)
        })
        .collect()
}

fn per_image<const H: usize>(m: &Mlp<H>, test: &Dataset, threads: usize) -> usize {
    let part = test.len().div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = test
            .images
            .chunks(part)
            .zip(test.labels.chunks(part))
            .map(|(ims, ys)| {
                s.spawn(move || {
                    let mut x = [0.0f32; INPUT];
                    let mut right = 0;
                    for (im, &y) in ims.iter().zip(ys) {
                        for (o, &b) in x.iter_mut().zip(im) {
                            *o = f32::from(b) * (1.0 / 255.0);
                        }
                        right +=
                            usize::from(mlp::argmax(&kernels::logits(m, &x)) == usize::from(y));
                    }
                    right
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
    })
}

fn run<const H: usize>(test: &Dataset, a: &Args) {
    let mut m: Box<Mlp<H>> = boxed_zeroed();
    m.init(&mut Rng::new(1));
    let mut rng = Rng::new(2);
    for b in m.b1.iter_mut().chain(m.b2.iter_mut()) {
        *b = 0.1 * rng.normal();
    }
    let gflops = |t: f64| 2.0 * (INPUT * H * test.len()) as f64 / t / 1e9;
    let (t_strips, (_, right)) = time(a.reps, || {
        eval::evaluate(&m, &test.images, &test.labels, a.threads)
    });
    let (t_image, right_image) = time(a.reps, || per_image(&m, test, a.threads));
    assert_eq!(right, right_image, "per-image and strips must agree");
    let mut line = format!(
        "H={H:5} threads={}: strips {:8.1} ms ({:5.1} GFLOP/s) | per-image {:8.1} ms",
        a.threads,
        t_strips * 1e3,
        gflops(t_strips),
        t_image * 1e3
    );
    for (name, f) in [
        ("matrixmultiply", with_matrixmultiply as Sgemm),
        ("gemm", with_gemm),
    ] {
        let (t, labels) = time(a.reps, || dense(&m, test, f, a.threads));
        let dense_right = labels
            .iter()
            .zip(&test.labels)
            .filter(|(p, &y)| **p == usize::from(y))
            .count();
        line += &format!(
            " | {name} {:8.1} ms ({:5.1} GFLOP/s, right {dense_right} vs {right})",
            t * 1e3,
            gflops(t)
        );
    }
    println!("{line}");
}

fn main() -> std::process::ExitCode {
    let a = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let test = match mnist::load_split(&a.data, Split::Test) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    println!(
        "pismo kernels: {}; MATMUL_NUM_THREADS={}",
        kernels::level().name(),
        std::env::var("MATMUL_NUM_THREADS").unwrap_or_else(|_| "unset".into())
    );
    for &h in &a.hidden {
        match h {
            128 => run::<128>(&test, &a),
            256 => run::<256>(&test, &a),
            512 => run::<512>(&test, &a),
            1024 => run::<1024>(&test, &a),
            2048 => run::<2048>(&test, &a),
            4096 => run::<4096>(&test, &a),
            other => eprintln!("skipping hidden size {other}: 128, 256, 512, 1024, 2048 or 4096"),
        }
    }
    std::process::ExitCode::SUCCESS
}
