//! A model whose hidden size is chosen at run time.
//!
//! The math is const-generic ([`Mlp<H>`]); files, flags and requests name the hidden size at
//! run time. [`AnyMlp`] is the one place that maps one to the other: an enum with a variant
//! per supported size, and the [`with_hidden!`](crate::with_hidden) macro to call generic code on any of them.

use crate::format::{self, FormatError, Meta};
use crate::host::boxed_zeroed;
use crate::mlp::{Mlp, CLASSES, INPUT};

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

/// A boxed [`Mlp`] of any supported hidden size.
#[allow(missing_docs)]
#[derive(Debug)]
pub enum AnyMlp {
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
        each!(self, m => hidden_of(&**m))
    }

    /// Number of parameters.
    pub fn params(&self) -> usize {
        each!(self, m => params_of(&**m))
    }

    /// Probabilities of the ten digits.
    pub fn predict_proba(&self, x: &[f32; INPUT]) -> [f32; CLASSES] {
        crate::mlp::softmax(&self.logits(x))
    }

    /// Raw scores (the AVX2 build of the kernel when the CPU has it).
    pub fn logits(&self, x: &[f32; INPUT]) -> [f32; CLASSES] {
        each!(self, m => crate::host::kernels::logits(m, x))
    }

    /// The model file for these weights and `meta`.
    pub fn encode(&self, meta: &Meta<'_>) -> Vec<u8> {
        each!(self, m => {
            let mut buf = vec![0u8; format::encoded_len(meta, &**m)];
            let n = format::encode(meta, &**m, &mut buf).expect("buffer sized by encoded_len");
            buf.truncate(n);
            buf
        })
    }

    /// Decodes a model file and copies its weights out.
    pub fn decode(bytes: &[u8]) -> Result<(AnyMlp, format::Model<'_>), FormatError> {
        let model = format::decode(bytes)?;
        let mut any = AnyMlp::zeroed(model.tensors.hidden_size())
            .ok_or(FormatError::Malformed("unsupported hidden size"))?;
        each!(&mut any, m => model.tensors.load_into(&mut **m))?;
        Ok((any, model))
    }
}

fn hidden_of<const H: usize>(_: &Mlp<H>) -> u32 {
    H as u32
}

fn params_of<const H: usize>(_: &Mlp<H>) -> usize {
    Mlp::<H>::PARAMS
}
