//! A model whose hidden size is chosen at run time.
//!
//! The math is const-generic ([`Mlp<H>`]); files, flags and requests name the hidden size at
//! run time. [`AnyMlp`] is the one place that maps one to the other: an enum with a variant
//! per supported size, and the [`with_hidden!`](crate::with_hidden) macro to call generic code on any of them.

use crate::format::{self, FormatError, Meta};
use crate::host::boxed_zeroed;
use crate::mlp::{Mlp, CLASSES, INPUT};
use crate::quant::{self, QMlp, QView, Work};

/// Calls a generic function with the const hidden size matching a run-time value:
/// `with_hidden!(hidden, H => body)` runs `body` with `const H: usize` in scope, and evaluates
/// to `None` if `hidden` is not one of [`crate::hyper::HIDDEN_SIZES`].
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
            _ => None,
        }
    };
}

/// A boxed [`Mlp`] of any supported hidden size, or an int8 model.
#[allow(missing_docs)]
#[derive(Debug)]
pub enum AnyMlp {
    /// An int8 model (weights copied out of its file; inference as on a device).
    Int8(Box<QOwned>),
    H16(Box<Mlp<16>>),
    H32(Box<Mlp<32>>),
    H64(Box<Mlp<64>>),
    H128(Box<Mlp<128>>),
    H256(Box<Mlp<256>>),
    H512(Box<Mlp<512>>),
    H1024(Box<Mlp<1024>>),
}

macro_rules! each {
    ($self:expr, $m:ident => $body:expr) => {
        match $self {
            AnyMlp::H16($m) => $body,
            AnyMlp::H32($m) => $body,
            AnyMlp::H64($m) => $body,
            AnyMlp::H128($m) => $body,
            AnyMlp::H256($m) => $body,
            AnyMlp::H512($m) => $body,
            AnyMlp::H1024($m) => $body,
            AnyMlp::Int8(_) => unreachable!("int8 models are matched before each!"),
        }
    };
}

/// Conversion of a boxed `Mlp<H>` into the matching variant.
pub trait IntoAny {
    /// Wraps it.
    fn into_any(self) -> AnyMlp;
}

macro_rules! into_any {
    ($($h:literal => $v:ident),*) => {$(
        impl IntoAny for Box<Mlp<$h>> {
            fn into_any(self) -> AnyMlp {
                AnyMlp::$v(self)
            }
        }
    )*};
}
into_any!(16 => H16, 32 => H32, 64 => H64, 128 => H128, 256 => H256, 512 => H512, 1024 => H1024);

impl AnyMlp {
    /// All-zero parameters of `hidden` units, or `None` if the size is not supported.
    pub fn zeroed(hidden: u32) -> Option<Self> {
        with_hidden!(hidden, H => boxed_zeroed::<Mlp<H>>().into_any())
    }

    /// Hidden units.
    pub fn hidden_size(&self) -> u32 {
        match self {
            AnyMlp::Int8(q) => q.hidden as u32,
            f => each!(f, m => hidden_of(&**m)),
        }
    }

    /// Number of parameters.
    pub fn params(&self) -> usize {
        let h = self.hidden_size() as usize;
        INPUT * h + h + h * CLASSES + CLASSES
    }

    /// `"f32"` or `"int8"`.
    pub fn kind(&self) -> &'static str {
        match self {
            AnyMlp::Int8(_) => "int8",
            _ => "f32",
        }
    }

    /// Probabilities of the ten digits.
    pub fn predict_proba(&self, x: &[f32; INPUT]) -> [f32; CLASSES] {
        crate::mlp::softmax(&self.logits(x))
    }

    /// Raw scores (the AVX2 build of the kernel when the CPU has it; int8 models run the
    /// integer path of [`crate::quant`] on the input's bytes).
    pub fn logits(&self, x: &[f32; INPUT]) -> [f32; CLASSES] {
        match self {
            AnyMlp::Int8(q) => {
                let mut work = Work::<{ crate::hyper::MAX_HIDDEN }>::new();
                q.view()
                    .logits(&quant::input_bytes(x), &mut work)
                    .expect("hidden sizes are at most 1024")
            }
            f => each!(f, m => crate::host::kernels::logits(m, x)),
        }
    }

    /// The model file for these weights and `meta`.
    pub fn encode(&self, meta: &Meta<'_>) -> Vec<u8> {
        let mut buf;
        let n = match self {
            AnyMlp::Int8(q) => {
                let view = q.view();
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

    /// Decodes a model file and copies its weights out.
    pub fn decode(bytes: &[u8]) -> Result<(AnyMlp, format::Model<'_>), FormatError> {
        let model = format::decode(bytes)?;
        if let format::Tensors::I8(view) = model.tensors {
            return Ok((AnyMlp::Int8(Box::new(QOwned::from_view(&view))), model));
        }
        let mut any = AnyMlp::zeroed(model.tensors.hidden_size())
            .ok_or(FormatError::Malformed("unsupported hidden size"))?;
        each!(&mut any, m => model.tensors.load_into(&mut **m))?;
        Ok((any, model))
    }

    /// Summed cross-entropy and correct count over labelled images (bytes, as MNIST stores
    /// them): f32 models on `threads` threads ([`crate::host::trainer::evaluate`]), int8 models
    /// one image at a time through the integer path, as a device runs them.
    pub fn evaluate(&self, images: &[[u8; INPUT]], labels: &[u8], threads: usize) -> (f64, usize) {
        match self {
            AnyMlp::Int8(q) => {
                // The bytes are the integer path's input as they are.
                let view = q.view();
                let mut work = Work::<{ crate::hyper::MAX_HIDDEN }>::new();
                let (mut loss, mut correct) = (0.0f64, 0usize);
                for (im, &y) in images.iter().zip(labels) {
                    let z = view
                        .logits(im, &mut work)
                        .expect("hidden sizes are at most 1024");
                    loss += f64::from(crate::mlp::cross_entropy(&z, usize::from(y)));
                    correct += usize::from(crate::mlp::argmax(&z) == usize::from(y));
                }
                (loss, correct)
            }
            f => each!(f, m => crate::host::trainer::evaluate(&**m, images, labels, threads)),
        }
    }

    /// The int8 quantization of this f32 model, its hidden activation scale calibrated on
    /// `calibration` images: the 99.99th percentile of the hidden activations maps to 255.
    /// `None` for a model that is already int8.
    pub fn quantize(&self, calibration: &[[u8; INPUT]]) -> Option<AnyMlp> {
        match self {
            AnyMlp::Int8(_) => None,
            f => Some(each!(f, m => quantize_h(m, calibration))),
        }
    }
}

fn quantize_h<const H: usize>(m: &Mlp<H>, calibration: &[[u8; INPUT]]) -> AnyMlp {
    let mut acts: Vec<f32> = Vec::with_capacity(calibration.len() * H);
    let mut x = crate::mlp::Sparse::new();
    let mut z = [0.0f32; H];
    for im in calibration {
        x.set_bytes(im);
        crate::mlp::hidden_pre(&m.w1, &m.b1, &x, &mut z);
        acts.extend(z.iter().filter(|&&v| v > 0.0));
    }
    acts.sort_by(f32::total_cmp);
    let top = acts
        .get(((acts.len() as f64) * 0.9999) as usize)
        .or(acts.last())
        .copied()
        .unwrap_or(1.0);
    let mut q: Box<QMlp<H>> = boxed_zeroed();
    quant::quantize(m, top / 255.0, &mut q);
    AnyMlp::Int8(Box::new(QOwned::from_view(&q.view())))
}

/// An int8 model's tensors, owned (copied from a file or from [`quant::quantize`]), in the
/// order of [`QView::parts`].
#[derive(Debug)]
pub struct QOwned {
    hidden: usize,
    parts: [Vec<u8>; 6],
    act_scale: f32,
}

impl QOwned {
    fn from_view(v: &QView<'_>) -> Self {
        QOwned {
            hidden: v.hidden_size(),
            parts: v.parts().map(<[u8]>::to_vec),
            act_scale: v.act_scale(),
        }
    }

    /// The borrowed form inference runs on.
    pub fn view(&self) -> QView<'_> {
        QView::from_parts(
            self.hidden,
            self.parts.each_ref().map(Vec::as_slice),
            self.act_scale,
        )
    }
}

fn hidden_of<const H: usize>(_: &Mlp<H>) -> u32 {
    H as u32
}
