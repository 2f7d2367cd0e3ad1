//! The cost of one distorted training digit (issue 31, "augmentation at the speed of the
//! network"): `kernels::prepare_inputs` as training calls it with `--augment --elastic 2
//! --deskew --shift 0` (less with `--no-elastic`, `--no-deskew`), on one thread, over MNIST's 60000 training digits, for the SIMD copy
//! `PISMO_SIMD` picks. Prints nanoseconds per digit (the best of `ROUNDS`) and a checksum of
//! every input it made, so that a faster copy can be shown to make the same inputs bit for
//! bit (bench/README.md, "Augmentation").
//!
//! ```text
//! cargo run --release -p pismo-bench --bin augment -- [--data DIR] [--rounds 3] [--no-elastic]
//!     [--no-deskew]
//! ```

use std::time::Instant;

use pismo_core::augment::Distortion;
use pismo_core::mlp::Sparse;
use pismo_digits::mnist::{self, Split};
use pismo_engine::boxed_zeroed;
use pismo_training::kernels::{self, Source};

const BATCH: usize = 64;

fn main() {
    let mut data = mnist::default_dir();
    let mut rounds = 3;
    let (mut elastic, mut deskew) = (true, true);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--no-elastic" => {
                elastic = false;
                continue;
            }
            "--no-deskew" => {
                deskew = false;
                continue;
            }
            _ => {}
        }
        let value = args
            .next()
            .unwrap_or_else(|| fail(&format!("{flag} needs a value")));
        match flag.as_str() {
            "--data" => data = value.into(),
            "--rounds" => rounds = value.parse().unwrap_or_else(|e| fail(&e)),
            other => fail(&format!("unknown flag {other}")),
        }
    }
    let train = mnist::load_split(&data, Split::Train).unwrap_or_else(|e| fail(&e));
    let src = Source {
        base_images: &train.images,
        base_labels: &train.labels,
        extra_images: &[],
        extra_labels: &[],
        inked: None,
        distortion: Distortion {
            elastic: if elastic { 2.0 } else { 0.0 },
            shift: 0.0,
        },
        deskew,
        seed: 42,
    };
    let idx: Vec<u32> = (0..train.len() as u32).collect();
    let mut xs: Vec<Sparse> = vec![*boxed_zeroed::<Sparse>(); BATCH];
    let mut best = f64::INFINITY;
    let mut checksum = 0u64;
    for _ in 0..rounds {
        let mut hash = 0xcbf2_9ce4_8422_2325u64;
        let started = Instant::now();
        for (step, chunk) in idx.chunks(BATCH).enumerate() {
            let first = step * BATCH;
            kernels::prepare_inputs(src, chunk, first, step as u64, &mut xs[..chunk.len()]);
            for x in &xs[..chunk.len()] {
                for (i, v) in x.iter() {
                    hash = (hash ^ (i as u64) << 32 ^ u64::from(v.to_bits()))
                        .wrapping_mul(0x100_0000_01b3);
                }
            }
        }
        best = best.min(started.elapsed().as_secs_f64());
        checksum = hash;
    }
    println!(
        "{} copy: {:.0} ns per distorted digit (best of {rounds}, {} digits, one thread, hashing included); checksum {checksum:016x}",
        pismo_engine::kernels::level().name(),
        best * 1e9 / train.len() as f64,
        train.len()
    );
}

fn fail(e: &dyn std::fmt::Display) -> ! {
    eprintln!("error: {e}");
    std::process::exit(2);
}
