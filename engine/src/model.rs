//! A model whose hidden size is chosen at run time.
//!
//! The math is const-generic ([`Mlp<H>`]); files, flags and requests name the hidden size at
//! run time. [`AnyMlp`] is the one place that maps one to the other: [`Weights`], an enum
//! with a variant per supported size, and the [`with_hidden!`](crate::with_hidden) macro to
//! call generic code on any of them. It also carries what the model does to an input before
//! its network sees it ([`pismo_core::deskew`], when trained so), so every prediction, evaluation
//! and quantization through it treats inputs as training did.

use std::borrow::Cow;

use crate::boxed_zeroed;
use pismo_core::format::{self, FormatError, Meta};
use pismo_core::mlp::{Mlp, CLASSES, INPUT};
use pismo_core::quant::{self, FirstLayer, QMlp, QView, Work};

/// Calls a generic function with the const hidden size matching a run-time value:
/// `with_hidden!(hidden, H => body)` runs `body` with `const H: usize` in scope, and evaluates
/// to `None` if `hidden` is not one of [`pismo_core::hyper::HIDDEN_SIZES`].
#[macro_export]
macro_rules! with_hidden {
    ($hidden:expr, $h:ident => $body:expr) => {
        match $hidden {
            16 => {
                const $h: usize = 16;
                Some($body)
            }
            32 => {
                const $h: usize = 32;
                Some($body)
            }
            64 => {
                const $h: usize = 64;
                Some($body)
            }
            128 => {
                const $h: usize = 128;
                Some($body)
            }
            192 => {
                const $h: usize = 192;
                Some($body)
            }
            256 => {
                const $h: usize = 256;
                Some($body)
            }
            512 => {
                const $h: usize = 512;
                Some($body)
            }
            1024 => {
                const $h: usize = 1024;
                Some($body)
            }
            2048 => {
                const $h: usize = 2048;
                Some($body)
            }
            4096 => {
                const $h: usize = 4096;
                Some($body)
            }
            _ => None,
        }
    };
}

/// A model: its weights and whether its inputs are deskewed ([`pismo_core::deskew`]).
#[derive(Debug)]
pub struct AnyMlp {
    weights: Weights,
    deskew: bool,
}

/// A boxed [`Mlp`] of any supported hidden size, or an int8 model.
#[allow(missing_docs)]
#[derive(Debug)]
pub enum Weights {
    /// An int8 model (weights copied out of its file; inference as on a device).
    Int8(Box<QOwned>),
    H16(Box<Mlp<16>>),
    H32(Box<Mlp<32>>),
    H64(Box<Mlp<64>>),
    H128(Box<Mlp<128>>),
    H192(Box<Mlp<192>>),
    H256(Box<Mlp<256>>),
    H512(Box<Mlp<512>>),
    H1024(Box<Mlp<1024>>),
    H2048(Box<Mlp<2048>>),
    H4096(Box<Mlp<4096>>),
}

macro_rules! each {
    ($self:expr, $m:ident => $body:expr) => {
        match $self {
            Weights::H16($m) => $body,
            Weights::H32($m) => $body,
            Weights::H64($m) => $body,
            Weights::H128($m) => $body,
            Weights::H192($m) => $body,
            Weights::H256($m) => $body,
            Weights::H512($m) => $body,
            Weights::H1024($m) => $body,
            Weights::H2048($m) => $body,
            Weights::H4096($m) => $body,
            Weights::Int8(_) => unreachable!("int8 models are matched before each!"),
        }
    };
}

/// Conversion of a boxed `Mlp<H>` into the matching variant.
pub trait IntoAny {
    /// Wraps it, as a model whose inputs are not deskewed.
    fn into_any(self) -> AnyMlp;
}

macro_rules! into_any {
    ($($h:literal => $v:ident),*) => {$(
        impl IntoAny for Box<Mlp<$h>> {
            fn into_any(self) -> AnyMlp {
                AnyMlp { weights: Weights::$v(self), deskew: false }
            }
        }
    )*};
}
into_any!(16 => H16, 32 => H32, 64 => H64, 128 => H128, 192 => H192, 256 => H256, 512 => H512, 1024 => H1024,
          2048 => H2048, 4096 => H4096);

impl AnyMlp {
    /// All-zero parameters of `hidden` units, or `None` if the size is not supported.
    pub fn zeroed(hidden: u32) -> Option<Self> {
        with_hidden!(hidden, H => boxed_zeroed::<Mlp<H>>().into_any())
    }

    /// The same model with its inputs deskewed or not (as it was trained).
    pub fn with_deskew(self, deskew: bool) -> Self {
        AnyMlp { deskew, ..self }
    }

    /// Whether inputs are deskewed before the network sees them.
    pub fn deskew(&self) -> bool {
        self.deskew
    }

    /// The weights.
    pub fn weights(&self) -> &Weights {
        &self.weights
    }

    /// Hidden units.
    pub fn hidden_size(&self) -> u32 {
        match &self.weights {
            Weights::Int8(q) => q.hidden as u32,
            f => each!(f, m => hidden_of(&**m)),
        }
    }

    /// `"f32"` or `"int8"`.
    pub fn kind(&self) -> &'static str {
        match self.weights {
            Weights::Int8(_) => "int8",
            _ => "f32",
        }
    }

    /// Probabilities of the ten digits.
    pub fn predict_proba(&self, x: &[f32; INPUT]) -> [f32; CLASSES] {
        pismo_core::mlp::softmax(&self.logits(x))
    }

    /// What the network itself sees of input `x`: `x` deskewed if the model deskews, else `x`
    /// (for showing "what the model saw").
    pub fn network_input(&self, x: &[f32; INPUT]) -> [f32; INPUT] {
        let mut seen = *x;
        if self.deskew {
            pismo_core::deskew::deskew_f32(&mut seen);
        }
        seen
    }

    /// Raw scores (the AVX2 build of the kernel when the CPU has it; int8 models run the
    /// integer path of [`pismo_core::quant`] on the input's bytes), the input deskewed first if
    /// the model was trained so.
    pub fn logits(&self, x: &[f32; INPUT]) -> [f32; CLASSES] {
        match &self.weights {
            Weights::Int8(q) => {
                let mut work = Work::<{ pismo_core::hyper::MAX_HIDDEN }>::new();
                self.view(q)
                    .logits(&quant::input_bytes(x), &mut work)
                    .expect("hidden sizes are at most MAX_HIDDEN")
            }
            f => {
                let x = self.network_input(x);
                each!(f, m => crate::kernels::logits(m, &x))
            }
        }
    }

    /// The f32 parameters as flat slices (see [`F32Tensors`]), or `None` for an int8 model.
    pub fn f32_tensors(&self) -> Option<F32Tensors<'_>> {
        match &self.weights {
            Weights::Int8(_) => None,
            f => Some(each!(f, m => F32Tensors {
                hidden: hidden_of(&**m) as usize,
                w1: m.w1.as_flattened(),
                b1: &m.b1,
                w2: m.w2.as_flattened(),
                b2: &m.b2,
            })),
        }
    }

    /// The int8 weights as inference reads them (deskewing as this model does), or `None`
    /// for an f32 model.
    pub fn int8_view(&self) -> Option<QView<'_>> {
        match &self.weights {
            Weights::Int8(q) => Some(self.view(q)),
            _ => None,
        }
    }

    /// An int8 model's view, deskewing as this model does.
    fn view<'a>(&self, q: &'a QOwned) -> QView<'a> {
        q.view().with_deskew(self.deskew)
    }

    /// The model file for these weights and `meta` (whose `deskew` is this model's).
    pub fn encode(&self, meta: &Meta<'_>) -> Vec<u8> {
        let meta = &Meta {
            deskew: self.deskew,
            ..*meta
        };
        let mut buf;
        let n = match &self.weights {
            Weights::Int8(q) => {
                let view = self.view(q);
                buf = vec![0u8; format::encoded_len_int8(meta, &view)];
                format::encode_int8(meta, &view, &mut buf)
            }
            f => each!(f, m => {
                buf = vec![0u8; format::encoded_len(meta, &**m)];
                format::encode(meta, &**m, &mut buf)
            }),
        };
        buf.truncate(n.expect("buffer sized by encoded_len"));
        buf
    }

    /// An int8 model of `view`'s weights, copied, with inputs deskewed or not.
    pub fn from_int8_view(view: &QView<'_>, deskew: bool) -> AnyMlp {
        let weights = Weights::Int8(Box::new(QOwned::from_view(view)));
        AnyMlp { weights, deskew }
    }

    /// Decodes a model file and copies its weights out.
    pub fn decode(bytes: &[u8]) -> Result<(AnyMlp, format::Model<'_>), FormatError> {
        let model = format::decode(bytes)?;
        let deskew = model.meta.deskew;
        if let format::Tensors::I8(view) = model.tensors {
            return Ok((AnyMlp::from_int8_view(&view, deskew), model));
        }
        let mut any = AnyMlp::zeroed(model.tensors.hidden_size())
            .ok_or(FormatError::Malformed("unsupported hidden size"))?;
        each!(&mut any.weights, m => model.tensors.load_into(&mut **m))?;
        Ok((any.with_deskew(deskew), model))
    }

    /// Summed cross-entropy and correct count over labelled images (bytes, as MNIST stores
    /// them) on `threads` threads (0: all cores): f32 models through
    /// [`crate::eval::evaluate`], int8 models one image at a time through the
    /// integer path, as a device runs them.
    pub fn evaluate(&self, images: &[[u8; INPUT]], labels: &[u8], threads: usize) -> (f64, usize) {
        let threads = crate::threads_or_all(threads);
        match &self.weights {
            Weights::Int8(q) => {
                // The bytes are the integer path's input as they are; the images are cut
                // into one contiguous share per thread.
                let view = self.view(q);
                crate::fan_out::map_shares(images.len(), threads, |share| {
                    crate::kernels::evaluate_int8(&view, &images[share.clone()], &labels[share])
                })
                .into_iter()
                .fold((0.0, 0), |(l, c), (l2, c2)| (l + l2, c + c2))
            }
            f => {
                let images = model_inputs(images, self.deskew);
                each!(f, m => crate::eval::evaluate(&**m, &images, labels, threads))
            }
        }
    }

    /// The committee of `members` as one network: their hidden layers side by side and
    /// their output layers averaged, so its logits are the mean of theirs, exactly (up to
    /// rounding). It is an ordinary one-hidden-layer model of the members' total width,
    /// which must be one of [`pismo_core::hyper::HIDDEN_SIZES`]; the members must be f32 and
    /// treat inputs alike (all deskew or none).
    pub fn committee(members: &[&AnyMlp]) -> Result<AnyMlp, CommitteeError> {
        let first = members.first().ok_or(CommitteeError::Empty)?;
        let tensors = members
            .iter()
            .map(|m| m.f32_tensors().ok_or(CommitteeError::Int8))
            .collect::<Result<Vec<_>, _>>()?;
        if members.iter().any(|m| m.deskew != first.deskew) {
            return Err(CommitteeError::Deskew);
        }
        let total: usize = tensors.iter().map(|t| t.hidden).sum();
        let mut out = u32::try_from(total)
            .ok()
            .and_then(AnyMlp::zeroed)
            .ok_or(CommitteeError::Width(total))?
            .with_deskew(first.deskew);
        let share = 1.0 / members.len() as f32;
        each!(&mut out.weights, m => {
            let mut at = 0;
            for t in &tensors {
                let h = t.hidden;
                for (row, from) in m.w1.iter_mut().zip(t.w1.chunks_exact(h)) {
                    row[at..at + h].copy_from_slice(from);
                }
                m.b1[at..at + h].copy_from_slice(t.b1);
                for (row, from) in m.w2.iter_mut().zip(t.w2.chunks_exact(h)) {
                    for (w, &v) in row[at..at + h].iter_mut().zip(from) {
                        *w = share * v;
                    }
                }
                for (b, &v) in m.b2.iter_mut().zip(t.b2) {
                    *b += share * v;
                }
                at += h;
            }
        });
        Ok(out)
    }

    /// The f32 form of this model: a copy of an f32 model, or an int8 model's weights
    /// dequantized ([`QView::dequantize`]); inputs treated as this model treats them.
    pub fn to_f32(&self) -> AnyMlp {
        let mut out =
            AnyMlp::zeroed(self.hidden_size()).expect("a decoded model has a supported size");
        match &self.weights {
            Weights::Int8(q) => each!(&mut out.weights, m => q.view().dequantize(&mut **m)),
            _ => {
                let t = self.f32_tensors().expect("an f32 model has f32 tensors");
                each!(&mut out.weights, m => {
                    m.w1.as_flattened_mut().copy_from_slice(t.w1);
                    m.b1.copy_from_slice(t.b1);
                    m.w2.as_flattened_mut().copy_from_slice(t.w2);
                    m.b2.copy_from_slice(t.b2);
                    true
                })
            }
        };
        out.with_deskew(self.deskew)
    }

    /// `self` moved a fraction `a` of the way to `other`, parameter by parameter
    /// ([`Mlp::blend_toward`]): `a = 1` is `other`, `a = 0` is `self`. `None` unless both are
    /// f32 models of the same size.
    pub fn blended_toward(&self, other: &AnyMlp, a: f32) -> Option<AnyMlp> {
        let mut out = self.to_f32();
        macro_rules! same_size {
            ($($v:ident),*) => {
                match (&mut out.weights, &other.weights) {
                    $((Weights::$v(m), Weights::$v(o)) => m.blend_toward(o, a),)*
                    _ => return None,
                }
            };
        }
        if self.kind() != "f32" {
            return None;
        }
        same_size!(H16, H32, H64, H128, H192, H256, H512, H1024, H2048, H4096);
        Some(out)
    }

    /// Runs `job` on the f32 network of any hidden size; `None` for an int8 model.
    pub fn with_network<J: NetworkJob>(&mut self, job: J) -> Option<J::Output> {
        match &mut self.weights {
            Weights::Int8(_) => None,
            f => Some(each!(f, m => job.run(&mut **m))),
        }
    }

    /// The int8 quantization of this f32 model, its hidden activation scale calibrated on
    /// `calibration` images: the 99.99th percentile of the hidden activations maps to 255.
    /// Its first layer gets the range of `first`. `None` for a model that is already int8.
    pub fn quantize(&self, calibration: &[[u8; INPUT]], first: FirstLayer) -> Option<AnyMlp> {
        let calibration = model_inputs(calibration, self.deskew);
        let weights = match &self.weights {
            Weights::Int8(_) => return None,
            f => each!(f, m => quantize_h(m, &calibration, first)),
        };
        Some(AnyMlp {
            weights,
            deskew: self.deskew,
        })
    }
}

/// Work on an f32 network whose hidden size is known at compile time, handed to
/// [`AnyMlp::with_network`] (a closure cannot be generic over `H`).
pub trait NetworkJob {
    /// What the job gives back.
    type Output;
    /// Does the work on the network.
    fn run<const H: usize>(self, network: &mut Mlp<H>) -> Self::Output;
}

/// MNIST training images the int8 activation scale is calibrated on (the first ones of the
/// training file), by `pismo models quantize` and by adapting an int8 model alike: see
/// [`calibration_images`].
pub const CALIBRATION_IMAGES: usize = 2000;

/// The images [`AnyMlp::quantize`] calibrates on, out of the MNIST training file's
/// `training` images: the first [`CALIBRATION_IMAGES`] (all of them if there are fewer).
/// `pismo models quantize` and adapting an int8 model both pick them here, so an adapted
/// int8 model is quantized as its base was.
pub fn calibration_images(training: &[[u8; INPUT]]) -> &[[u8; INPUT]] {
    &training[..CALIBRATION_IMAGES.min(training.len())]
}

/// Why models cannot be joined into one ([`AnyMlp::committee`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitteeError {
    /// No members.
    Empty,
    /// A member is an int8 model.
    Int8,
    /// Some members deskew their inputs and some do not.
    Deskew,
    /// The members' total width is not a supported hidden size.
    Width(usize),
}

impl std::fmt::Display for CommitteeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CommitteeError::Empty => f.write_str("a committee needs at least one model"),
            CommitteeError::Int8 => f.write_str(
                "an int8 model cannot join a committee: join the f32 models, then quantize",
            ),
            CommitteeError::Deskew => {
                f.write_str("the models treat inputs differently (some deskew, some do not)")
            }
            CommitteeError::Width(total) => write!(
                f,
                "the models have {total} hidden units together; a model has one of {}",
                pismo_core::hyper::HIDDEN_SIZES
                    .map(|h| h.to_string())
                    .join(", ")
            ),
        }
    }
}

impl std::error::Error for CommitteeError {}

/// An f32 model's parameters, borrowed as flat row-major slices in [`Mlp`]'s layout.
#[derive(Clone, Copy, Debug)]
pub struct F32Tensors<'a> {
    /// Hidden units `H`.
    pub hidden: usize,
    /// `(INPUT, H)`, input-major: `w1[i * H + h]` weighs pixel `i` into hidden unit `h`.
    pub w1: &'a [f32],
    /// `(H)`
    pub b1: &'a [f32],
    /// `(CLASSES, H)`: `w2[k * H + h]` weighs hidden unit `h` into output `k`.
    pub w2: &'a [f32],
    /// `(CLASSES)`
    pub b2: &'a [f32],
}

/// Deskewed copies of images given as bytes ([`pismo_core::deskew::deskew_bytes`]).
pub fn deskew_all(images: &[[u8; INPUT]]) -> Vec<[u8; INPUT]> {
    images
        .iter()
        .map(pismo_core::deskew::deskew_bytes)
        .collect()
}

/// Images (bytes) in the form a model's network takes them: deskewed copies if `deskew`,
/// else the images themselves.
pub fn model_inputs(images: &[[u8; INPUT]], deskew: bool) -> Cow<'_, [[u8; INPUT]]> {
    if deskew {
        Cow::Owned(deskew_all(images))
    } else {
        Cow::Borrowed(images)
    }
}

fn quantize_h<const H: usize>(
    m: &Mlp<H>,
    calibration: &[[u8; INPUT]],
    first: FirstLayer,
) -> Weights {
    let mut acts: Vec<f32> = Vec::with_capacity(calibration.len() * H);
    let mut x = pismo_core::mlp::Sparse::new();
    let mut z = [0.0f32; H];
    for im in calibration {
        x.set_bytes(im);
        pismo_core::mlp::hidden_pre(&m.w1, &m.b1, &x, &mut z);
        acts.extend(z.iter().filter(|&&v| v > 0.0));
    }
    // The element of that rank in sorted order, found without sorting (an O(n) selection).
    let rank = (((acts.len() as f64) * 0.9999) as usize).min(acts.len().saturating_sub(1));
    let top = if acts.is_empty() {
        1.0
    } else {
        *acts.select_nth_unstable_by(rank, f32::total_cmp).1
    };
    let mut q: Box<QMlp<H>> = boxed_zeroed();
    quant::quantize(m, top / 255.0, first, &mut q);
    Weights::Int8(Box::new(QOwned::from_view(&q.view())))
}

/// An int8 model's tensors, owned (copied from a file or from [`quant::quantize`]), in the
/// order of [`QView::parts`].
#[derive(Debug)]
pub struct QOwned {
    hidden: usize,
    parts: [Vec<u8>; 6],
    /// The pixels `parts[0]` has rows for ([`QView::kept`]).
    kept: Vec<u8>,
    act_scale: f32,
}

impl QOwned {
    fn from_view(v: &QView<'_>) -> Self {
        QOwned {
            hidden: v.hidden_size(),
            parts: v.parts().map(<[u8]>::to_vec),
            kept: v.kept().to_vec(),
            act_scale: v.act_scale(),
        }
    }

    /// The borrowed form inference runs on (inputs as given: [`AnyMlp`] adds its deskewing).
    pub fn view(&self) -> QView<'_> {
        QView::new(
            self.hidden,
            self.parts.each_ref().map(Vec::as_slice),
            &self.kept,
            self.act_scale,
        )
        .expect("the parts of a view, copied")
    }
}

fn hidden_of<const H: usize>(_: &Mlp<H>) -> u32 {
    H as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use pismo_core::deskew::{deskew_bytes, deskew_f32};
    use pismo_core::preprocess::SIDE;
    use pismo_core::rng::Rng;

    fn model(deskew: bool) -> AnyMlp {
        let mut m: Box<Mlp<32>> = boxed_zeroed();
        m.init(&mut Rng::new(3));
        m.into_any().with_deskew(deskew)
    }

    /// A stroke leaning right by half a pixel per row, with a cross bar: slanted ink.
    fn slanted() -> [u8; INPUT] {
        let mut img = [0u8; INPUT];
        for y in 4..24 {
            let x = (14.0 + 0.5 * (y as f32 - 14.0)) as usize;
            img[y * SIDE + x] = 255;
            img[y * SIDE + x + 1] = 160;
        }
        img[12 * SIDE + 10..12 * SIDE + 20].fill(200);
        img
    }

    #[test]
    fn a_deskewing_model_reads_the_deskewed_input_in_every_path() {
        let (plain, deskewing) = (model(false), model(true));
        let bytes = slanted();
        let x = bytes.map(|b| f32::from(b) / 255.0);
        let mut upright = x;
        deskew_f32(&mut upright);
        assert_eq!(deskewing.logits(&x), plain.logits(&upright));
        assert_eq!(
            (deskewing.network_input(&x), plain.network_input(&x)),
            (upright, x)
        );
        assert_ne!(deskewing.logits(&x), plain.logits(&x));
        // Evaluation takes bytes: the same as the plain model on deskewed bytes.
        let label = [3u8];
        assert_eq!(
            deskewing.evaluate(&[bytes], &label, 1),
            plain.evaluate(&[deskew_bytes(&bytes)], &label, 1)
        );
        // Quantizing keeps the flag, calibrates on deskewed images and deskews on the device
        // path; the file keeps it too.
        let calibration: Vec<[u8; INPUT]> = (0..4).map(|_| bytes).collect();
        let q = deskewing.quantize(&calibration, FirstLayer::Int8).unwrap();
        let q_plain = plain
            .quantize(&deskew_all(&calibration), FirstLayer::Int8)
            .unwrap();
        assert!(q.deskew());
        assert_eq!(
            q.evaluate(&[bytes], &label, 1),
            q_plain.evaluate(&[deskew_bytes(&bytes)], &label, 1)
        );
        let meta = Meta {
            name: "m",
            version: 1,
            created_unix: 0,
            hyper: pismo_core::hyper::Hyper::DEFAULT,
            metrics: pismo_core::hyper::Metrics {
                epochs_run: 1,
                best_epoch: 1,
                train_loss: 0.0,
                val_loss: 0.0,
                val_accuracy: 0.0,
                test_accuracy: None,
            },
            run_id: "",
            dataset: "",
            parent: "",
            deskew: false,
        };
        for m in [&deskewing, &q] {
            let bytes = m.encode(&meta);
            let (back, file) = AnyMlp::decode(&bytes).unwrap();
            assert!(
                back.deskew() && file.meta.deskew,
                "the model's flag wins over meta's"
            );
            assert_eq!(back.logits(&x), m.logits(&x));
        }
    }

    fn seeded<const H: usize>(seed: u64) -> AnyMlp
    where
        Box<Mlp<H>>: IntoAny,
    {
        let mut m: Box<Mlp<H>> = boxed_zeroed();
        m.init(&mut Rng::new(seed));
        // Non-zero biases, so their averaging is checked too.
        m.b1.iter_mut()
            .enumerate()
            .for_each(|(j, b)| *b = 0.01 * j as f32);
        m.b2 = core::array::from_fn(|k| seed as f32 * 0.1 - k as f32 * 0.05);
        m.into_any()
    }

    #[test]
    fn a_committee_is_one_network_whose_logits_are_the_members_mean() {
        let (a, b) = (seeded::<32>(1), seeded::<32>(2));
        let joined = AnyMlp::committee(&[&a, &b]).unwrap();
        assert_eq!(joined.hidden_size(), 64);
        let mut rng = Rng::new(9);
        for _ in 0..20 {
            let x: [f32; INPUT] = core::array::from_fn(|_| rng.normal().abs().min(1.0));
            let (za, zb, z) = (a.logits(&x), b.logits(&x), joined.logits(&x));
            for k in 0..CLASSES {
                let mean = 0.5 * (za[k] + zb[k]);
                assert!((z[k] - mean).abs() <= 1e-4 * (1.0 + mean.abs()), "{z:?}");
            }
        }
        // A committee of one is the model itself.
        let alone = AnyMlp::committee(&[&a]).unwrap();
        assert_eq!(alone.f32_tensors().unwrap().w1, a.f32_tensors().unwrap().w1);
        assert_eq!(alone.logits(&[0.5; INPUT]), a.logits(&[0.5; INPUT]));
    }

    #[test]
    fn a_committee_refuses_mixed_int8_and_odd_widths() {
        let (a, b) = (seeded::<32>(1), seeded::<16>(2));
        assert_eq!(AnyMlp::committee(&[]).unwrap_err(), CommitteeError::Empty);
        assert_eq!(
            AnyMlp::committee(&[&a, &b]).unwrap_err(),
            CommitteeError::Width(48)
        );
        let skewed = seeded::<32>(3).with_deskew(true);
        assert_eq!(
            AnyMlp::committee(&[&a, &skewed]).unwrap_err(),
            CommitteeError::Deskew
        );
        let q = a.quantize(&[[128u8; INPUT]], FirstLayer::Int8).unwrap();
        assert_eq!(
            AnyMlp::committee(&[&a, &q]).unwrap_err(),
            CommitteeError::Int8
        );
        assert!(CommitteeError::Width(48).to_string().contains("4096"));
    }
}
