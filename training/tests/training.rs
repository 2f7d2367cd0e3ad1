//! The trainer against numbers computed by hand, on real MNIST test images (`tests/data`):
//!
//! - two optimizer steps on a team of two threads against the update written out from the
//!   formulas in f64: L2 at `reg_lambda / m`, momentum, the output bias gradient summed over
//!   the whole batch (each thread keeps its own copy of `b2`), and the learning-rate decay
//!   `lr(e) = initial_lr / (1 + decay · e)`;
//! - training returns the weights of the epoch with the lowest validation loss, not the last.

use std::ops::ControlFlow;
use std::path::Path;

use pismo_core::hyper::Hyper;
use pismo_core::mlp::{Mlp, CLASSES, INPUT};
use pismo_core::rng::Rng;
use pismo_digits::mnist::{self, Dataset, Split};
use pismo_engine::boxed_zeroed;
use pismo_engine::kernels::{level, Level};
use pismo_engine::model::{AnyMlp, Weights};
use pismo_training::team;
use pismo_training::trainer::{self, EpochReport, Event};

/// The first `n` images of the real MNIST test split in `tests/data`.
fn mnist_test_images(n: usize) -> Dataset {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data");
    let mut data = mnist::load_split(&dir, Split::Test).expect("tests/data holds MNIST t10k");
    data.images.truncate(n);
    data.labels.truncate(n);
    data
}

fn train(hyper: &Hyper, data: &Dataset, threads: usize) -> trainer::Outcome {
    trainer::train(hyper, data, None, threads, &mut |_| {
        ControlFlow::Continue(())
    })
    .unwrap()
}

/// The model's parameters in f64, laid out as in [`Mlp`].
#[derive(Clone)]
struct Params {
    w1: Vec<[f64; HID]>,
    b1: [f64; HID],
    w2: [[f64; HID]; CLASSES],
    b2: [f64; CLASSES],
}

const HID: usize = 32;

impl Params {
    fn of(m: &Mlp<HID>) -> Self {
        Params {
            w1: m.w1.iter().map(|r| r.map(f64::from)).collect(),
            b1: m.b1.map(f64::from),
            w2: m.w2.map(|r| r.map(f64::from)),
            b2: m.b2.map(f64::from),
        }
    }

    fn zero() -> Self {
        Params {
            w1: vec![[0.0; HID]; INPUT],
            b1: [0.0; HID],
            w2: [[0.0; HID]; CLASSES],
            b2: [0.0; CLASSES],
        }
    }

    /// Every parameter with whether it is a weight (L2 applies) or a bias, in one order.
    fn each_mut(&mut self) -> Vec<(&mut f64, bool)> {
        let mut all: Vec<(&mut f64, bool)> = Vec::new();
        all.extend(self.w1.iter_mut().flatten().map(|p| (p, true)));
        all.extend(self.b1.iter_mut().map(|p| (p, false)));
        all.extend(self.w2.iter_mut().flatten().map(|p| (p, true)));
        all.extend(self.b2.iter_mut().map(|p| (p, false)));
        all
    }

    /// The mean cross-entropy gradient over the batch, written out from the formulas.
    fn gradient(&self, images: &[[u8; INPUT]], labels: &[u8]) -> Params {
        let m = images.len() as f64;
        let mut g = Params::zero();
        for (image, &label) in images.iter().zip(labels) {
            let x: Vec<f64> = image.iter().map(|&b| f64::from(b) / 255.0).collect();
            // Forward: z1 = b1 + xᵀW1, a = relu(z1), z2 = b2 + W2·a, p = softmax(z2).
            let mut z1 = self.b1;
            for (i, &xi) in x.iter().enumerate() {
                for h in 0..HID {
                    z1[h] += xi * self.w1[i][h];
                }
            }
            let a = z1.map(|z| z.max(0.0));
            let mut z2 = self.b2;
            for k in 0..CLASSES {
                for h in 0..HID {
                    z2[k] += self.w2[k][h] * a[h];
                }
            }
            let max = z2.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let e = z2.map(|z| (z - max).exp());
            let sum: f64 = e.iter().sum();
            // Backward of the mean loss: dz2 = (p − onehot) / m.
            let dz2: [f64; CLASSES] = std::array::from_fn(|k| {
                (e[k] / sum - f64::from(u8::from(k == label as usize))) / m
            });
            let mut dz1 = [0.0; HID];
            for k in 0..CLASSES {
                g.b2[k] += dz2[k];
                for h in 0..HID {
                    g.w2[k][h] += dz2[k] * a[h];
                    dz1[h] += dz2[k] * self.w2[k][h];
                }
            }
            for h in 0..HID {
                if z1[h] <= 0.0 {
                    dz1[h] = 0.0;
                }
                g.b1[h] += dz1[h];
            }
            for (i, &xi) in x.iter().enumerate() {
                for h in 0..HID {
                    g.w1[i][h] += xi * dz1[h];
                }
            }
        }
        g
    }
}

/// Two steps, one per epoch (the batch is the whole training set, no validation split), on
/// two threads, against the update written out in f64:
/// `g' = g + (reg_lambda/m)·w` (weights only), `v ← μ·v − lr(e)·g'`, `w ← w + v`,
/// `lr(e) = initial_lr / (1 + decay·e)`.
#[test]
fn two_optimizer_steps_match_the_hand_computed_update() {
    let m = 8;
    let data = mnist_test_images(m);
    let hyper = Hyper {
        hidden_size: HID as u32,
        dropout_rate: 0.0,
        // Large enough that L2 at reg_lambda (not reg_lambda/m), no momentum or no decay
        // would each move the weights far outside the tolerance.
        reg_lambda: 0.8,
        initial_lr: 0.2,
        decay: 0.5,
        momentum: 0.9,
        batch_size: m as u32,
        epochs: 2,
        patience: 0,
        seed: 11,
        val_size: 0,
        augment: false,
    };
    let threads = 2;
    assert_eq!(
        team::team_size::<HID>(threads),
        2,
        "the update must be computed by a team of more than one thread"
    );
    let outcome = train(&hyper, &data, threads);
    let lrs: Vec<f32> = outcome.history.iter().map(|r| r.lr).collect();
    assert_eq!(lrs, [0.2, 0.2 / 1.5]);

    // The trainer's initial weights: He init from the run's seed.
    let mut init: Box<Mlp<HID>> = boxed_zeroed();
    init.init(&mut Rng::new(hyper.seed));
    let mut w = Params::of(&init);
    let mut v = Params::zero();
    let l2 = f64::from(hyper.reg_lambda) / m as f64;
    let mu = f64::from(hyper.momentum);
    for epoch in 0..2 {
        let lr = f64::from(hyper.initial_lr) / (1.0 + f64::from(hyper.decay) * epoch as f64);
        let mut g = w.gradient(&data.images, &data.labels);
        let grads = g.each_mut();
        let ws = w.each_mut();
        let vs = v.each_mut();
        for (((wi, weight), (vi, _)), (gi, _)) in ws.into_iter().zip(vs).zip(grads) {
            let reg = if weight { l2 * *wi } else { 0.0 };
            *vi = mu * *vi - lr * (*gi + reg);
            *wi += *vi;
        }
    }

    let Weights::H32(got) = outcome.model.weights() else {
        panic!("a 784-32-10 model, got {}", outcome.model.kind());
    };
    let mut got = Params::of(got);
    let mut worst = (0.0f64, String::new());
    let names = ["w1", "b1", "w2", "b2"];
    let sizes = [INPUT * HID, HID, CLASSES * HID, CLASSES];
    let (mut part, mut left) = (0, sizes[0]);
    for (j, ((g, _), (e, _))) in got.each_mut().into_iter().zip(w.each_mut()).enumerate() {
        while left == 0 {
            part += 1;
            left = sizes[part];
        }
        left -= 1;
        let err = (*g - *e).abs() / (1e-3 + e.abs());
        if err > worst.0 {
            worst = (err, format!("{}[{j}]: got {g}, expected {e}", names[part]));
        }
    }
    assert!(worst.0 < 1e-4, "worst parameter: {}", worst.1);

    // The output bias moved by the whole batch's gradient (not one thread's share of it).
    let init_b2 = Params::of(&init).b2;
    assert!(
        w.b2.iter().zip(init_b2).any(|(a, b)| (a - b).abs() > 1e-2),
        "b2 barely moved: the test would not see a wrong b2 gradient"
    );
}

/// Validation loss of `model` on the trainer's validation split of `data`: the first
/// `val_size` of a permutation seeded with `seed ^ 0x5EED_5A17` (as `trainer::train` holds it
/// out). If the trainer changes how it splits, the loss below matches no epoch and the test
/// says so.
fn val_loss(model: &AnyMlp, data: &Dataset, hyper: &Hyper) -> f32 {
    let mut order: Vec<u32> = (0..data.len() as u32).collect();
    Rng::new(hyper.seed ^ 0x5EED_5A17).shuffle(&mut order);
    let val = &order[..hyper.val_size as usize];
    let images: Vec<[u8; INPUT]> = val.iter().map(|&i| data.images[i as usize]).collect();
    let labels: Vec<u8> = val.iter().map(|&i| data.labels[i as usize]).collect();
    let (sum, _) = model.evaluate(&images, &labels, 1);
    (sum / images.len() as f64) as f32
}

/// With a learning rate that makes training diverge after a few epochs, the model returned is
/// the one of the epoch with the lowest validation loss, not the last one.
#[test]
fn training_returns_the_best_epochs_weights_not_the_last() {
    let data = mnist_test_images(1_200);
    let hyper = Hyper {
        hidden_size: 32,
        dropout_rate: 0.0,
        reg_lambda: 0.0,
        initial_lr: 1.5,
        decay: 0.0,
        momentum: 0.9,
        batch_size: 32,
        epochs: 8,
        patience: 0, // never stop early: every epoch runs
        seed: 3,
        val_size: 300,
        augment: false,
    };
    let outcome = train(&hyper, &data, 2);
    let history: &[EpochReport] = &outcome.history;
    assert_eq!(history.len(), 8);
    let best = history
        .iter()
        .filter(|r| r.val_loss.is_finite())
        .min_by(|a, b| a.val_loss.total_cmp(&b.val_loss))
        .expect("a finite validation loss");
    let last = history.last().unwrap();
    let losses: Vec<f32> = history.iter().map(|r| r.val_loss).collect();
    assert!(
        // (A NaN last loss counts as worse.)
        best.epoch < last.epoch
            && last.val_loss.partial_cmp(&(best.val_loss * 1.01)) != Some(std::cmp::Ordering::Less),
        "the setup must make a later epoch worse than the best: {losses:?}"
    );
    assert_eq!(outcome.metrics.best_epoch, best.epoch);
    assert_eq!(outcome.metrics.val_loss, best.val_loss);

    let got = val_loss(&outcome.model, &data, &hyper);
    let close = |a: f32, b: f32| (a - b).abs() <= 1e-5 * b.abs().max(1.0);
    assert!(
        close(got, best.val_loss),
        "the returned model's validation loss is {got}; epoch {} (best) had {}, the epochs {losses:?}",
        best.epoch,
        best.val_loss
    );
    assert!(!close(got, last.val_loss), "{got} is the last epoch's");
}

/// The trainer's header line (the first line of `pismo train`) names the kernel copy that
/// runs, one of those built for this architecture: on aarch64 the NEON one.
#[test]
fn the_header_names_the_kernel_copy_that_runs() {
    let data = mnist_test_images(64);
    let hyper = Hyper {
        hidden_size: 16,
        batch_size: 32,
        epochs: 1,
        val_size: 32,
        ..Hyper::DEFAULT
    };
    let mut lines = Vec::new();
    trainer::train(&hyper, &data, None, 1, &mut |e| {
        if let Event::Log(line) = e {
            lines.push(line.to_owned());
        }
        ControlFlow::Continue(())
    })
    .unwrap();
    let header = lines.first().expect("a header line");
    assert!(
        header.ends_with(&format!(", {} kernels", level().name())),
        "{header}"
    );
    assert!(Level::BUILT.contains(&level()), "{:?}", level());
    if cfg!(target_arch = "aarch64") {
        assert_eq!(level(), Level::Neon);
        assert!(header.ends_with(", neon kernels"), "{header}");
    }
}

/// Batch evaluation (the validation pass, `pismo eval`, `pismo-bench predict`) computes the
/// hidden layers of 64 images at a time, strip of units by strip, in the widest kernel copy
/// the CPU runs; its loss sum and correct count are bit for bit those of one image at a time
/// through the generic single-image code, on real MNIST digits, at a width of 1024 units,
/// with a last block of fewer than 64 images and on one and on three threads.
#[test]
fn batch_evaluation_matches_one_image_at_a_time_bit_for_bit() {
    const H: usize = 1024;
    let data = mnist_test_images(1_000);
    let mut m: Box<Mlp<H>> = boxed_zeroed();
    m.init(&mut Rng::new(17));
    let mut rng = Rng::new(18);
    for b in m.b1.iter_mut().chain(m.b2.iter_mut()) {
        *b = 0.1 * rng.normal();
    }
    let (mut loss, mut correct) = (0.0f64, 0usize);
    // Chunks of 512 images, as trainer::evaluate sums them.
    for (ims, ys) in data.images.chunks(512).zip(data.labels.chunks(512)) {
        let mut chunk = 0.0f64;
        for (im, &y) in ims.iter().zip(ys) {
            let mut x = pismo_core::mlp::Sparse::new();
            x.set_bytes(im);
            let z = m.logits_sparse(&x);
            chunk += f64::from(pismo_core::mlp::cross_entropy(&z, usize::from(y)));
            correct += usize::from(pismo_core::mlp::argmax(&z) == usize::from(y));
        }
        loss += chunk;
    }
    assert!(
        correct > 0 && correct < data.len(),
        "{correct}: an untrained model"
    );
    for threads in [1, 3] {
        let (l, c) = pismo_engine::eval::evaluate(&m, &data.images, &data.labels, threads);
        assert_eq!(
            (l.to_bits(), c),
            (loss.to_bits(), correct),
            "{threads} threads"
        );
    }
}
