//! Preprocessing quality on real MNIST digits: each test digit is pasted onto a 280x280
//! canvas the way a drawing arrives (enlarged, small, off-centre, dark on white), then
//! preprocessed back to 28x28 and compared with the original. The drawing pipeline is the
//! inverse of these pastes only if it reproduces MNIST's own normalization. The shipped
//! model must then give the same answer for the paste as for the original digit.

use pismo_core::mlp::argmax;
use pismo_core::preprocess::{preprocess, to_input, GreyImage, Polarity, PIXELS, SIDE};
use pismo_engine::model::AnyMlp;
use pismo_storage::registry::Registry;
use pismo_tests::{t10k, workspace_root};

/// Test digits used (the first N of t10k).
const DIGITS: usize = 1000;
const CANVAS: usize = 280;

/// The first [`DIGITS`] MNIST test images.
fn first_digits() -> Vec<Vec<u8>> {
    let data = t10k();
    assert_eq!(data.len(), 10_000);
    data.images
        .iter()
        .take(DIGITS)
        .map(|i| i.to_vec())
        .collect()
}

/// The 28x28 digit enlarged `k` times with bilinear interpolation.
fn enlarge(digit: &[u8], k: usize) -> Vec<u8> {
    let n = SIDE * k;
    let src = |x: usize, y: usize| f32::from(digit[y * SIDE + x]);
    let tap = |o: usize| {
        let u = ((o as f32 + 0.5) / k as f32 - 0.5).clamp(0.0, (SIDE - 1) as f32);
        let i = (u.floor() as usize).min(SIDE - 2);
        (i, u - i as f32)
    };
    let mut out = vec![0u8; n * n];
    for y in 0..n {
        let (y0, fy) = tap(y);
        for x in 0..n {
            let (x0, fx) = tap(x);
            let top = src(x0, y0) * (1.0 - fx) + src(x0 + 1, y0) * fx;
            let bottom = src(x0, y0 + 1) * (1.0 - fx) + src(x0 + 1, y0 + 1) * fx;
            out[y * n + x] = (top * (1.0 - fy) + bottom * fy).round() as u8;
        }
    }
    out
}

/// A 280x280 black canvas with `patch` (side `n`) at `(ox, oy)`, optionally inverted.
fn canvas(patch: &[u8], n: usize, ox: usize, oy: usize, invert: bool) -> Vec<u8> {
    let mut c = vec![0u8; CANVAS * CANVAS];
    for y in 0..n {
        c[(oy + y) * CANVAS + ox..][..n].copy_from_slice(&patch[y * n..][..n]);
    }
    if invert {
        c.iter_mut().for_each(|p| *p = 255 - *p);
    }
    c
}

fn cosine(a: &[f32; PIXELS], b: &[f32; PIXELS]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

fn mean_abs_diff(a: &[f32; PIXELS], b: &[f32; PIXELS]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f32>() / PIXELS as f32
}

struct Stats {
    name: &'static str,
    cos: Vec<f32>,
    mad: Vec<f32>,
    /// Cases where the shipped model's answer equals its answer for the original digit.
    same: usize,
}

impl Stats {
    fn quantile(v: &[f32], q: f32) -> f32 {
        let mut s = v.to_vec();
        s.sort_by(f32::total_cmp);
        s[((s.len() - 1) as f32 * q).round() as usize]
    }

    fn report(&self) -> (f32, f32, f32, f32) {
        let median = Self::quantile(&self.cos, 0.5);
        let p5 = Self::quantile(&self.cos, 0.05);
        let above = self.cos.iter().filter(|&&c| c >= 0.8).count() as f32 / self.cos.len() as f32;
        let mad = self.mad.iter().sum::<f32>() / self.mad.len() as f32;
        println!(
            "{:<22} cosine median {median:.4}  p5 {p5:.4}  min {:.4}  >=0.8 {:.1} %  mean |diff| {mad:.4}  same prediction {:.2} %",
            self.name,
            Self::quantile(&self.cos, 0.0),
            above * 100.0,
            self.same as f32 * 100.0 / self.cos.len() as f32,
        );
        (median, p5, above, mad)
    }
}

#[test]
fn pasted_mnist_digits_come_back_with_the_same_prediction() {
    let digits = first_digits();
    let registry = Registry::open(workspace_root().join("models"));
    let (_, bytes) = registry.load(None).expect("the shipped default model");
    let (model, _) = AnyMlp::decode(&bytes).expect("the shipped model decodes");
    let mut state = 0x853c_49e6_748f_ea9bu64;
    let mut next = move |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    let mut stats: Vec<Stats> = [
        "x8 centred",
        "x3 small",
        "x5 off-centre",
        "x8 dark on white",
        "x3 dark, off-centre",
        "28x28 via preprocess",
    ]
    .into_iter()
    .map(|name| Stats {
        name,
        cos: Vec::new(),
        mad: Vec::new(),
        same: 0,
    })
    .collect();
    let mut out = [0.0f32; PIXELS];
    for digit in &digits {
        let mut original = [0.0f32; PIXELS];
        for (o, &p) in original.iter_mut().zip(digit) {
            *o = f32::from(p) / 255.0;
        }
        let expected = argmax(&model.predict_proba(&original));
        let x8 = enlarge(digit, 8);
        let x3 = enlarge(digit, 3);
        let x5 = enlarge(digit, 5);
        let cases: [(Vec<u8>, bool); 5] = [
            (canvas(&x8, 224, 28, 28, false), false),
            (canvas(&x3, 84, 98, 98, false), false),
            (canvas(&x5, 140, next(141), next(141), false), false),
            (canvas(&x8, 224, 28, 28, true), true),
            (canvas(&x3, 84, next(197), next(197), true), true),
        ];
        for (k, (data, inverted)) in cases.iter().enumerate() {
            let img = GreyImage::new(CANVAS, CANVAS, data).unwrap();
            let info = to_input(&img, &mut out).unwrap();
            let want = if *inverted {
                Polarity::DarkInk
            } else {
                Polarity::LightInk
            };
            assert_eq!(info.polarity, want);
            stats[k].cos.push(cosine(&out, &original));
            stats[k].mad.push(mean_abs_diff(&out, &original));
            stats[k].same += (argmax(&model.predict_proba(&out)) == expected) as usize;
        }
        let img = GreyImage::new(SIDE, SIDE, digit).unwrap();
        preprocess(&img, &mut out).unwrap();
        stats[5].cos.push(cosine(&out, &original));
        stats[5].mad.push(mean_abs_diff(&out, &original));
        stats[5].same += (argmax(&model.predict_proba(&out)) == expected) as usize;
    }
    println!("{} MNIST t10k digits, 280x280 canvas:", digits.len());
    for s in &stats {
        let (median, p5, above, mad) = s.report();
        // Measured (1000 digits): medians 0.957-0.962, 5th percentiles 0.899-0.905, all
        // cosines >= 0.84, mean |diff| 0.032-0.034; the bar leaves a little room.
        assert!(median >= 0.95, "{}: median cosine {median}", s.name);
        assert!(p5 >= 0.88, "{}: 5th percentile cosine {p5}", s.name);
        assert!(above >= 0.99, "{}: {above} of cosines >= 0.8", s.name);
        assert!(mad <= 0.04, "{}: mean |diff| {mad}", s.name);
        let same = s.same as f32 / s.cos.len() as f32;
        assert!(
            same >= SAME_PREDICTION,
            "{}: same prediction for {same} of the digits",
            s.name
        );
    }
}

/// Share of pasted digits that must get the prediction of their original. Measured with the
/// shipped mnist@1 on these 1000 digits: 99.2–99.3 % for the pastes, 99.8 % for the 28x28
/// originals sent through the drawing pipeline.
const SAME_PREDICTION: f32 = 0.98;
