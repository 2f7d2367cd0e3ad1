//! What the firmware runs, as plain no_std functions the host can test: the start-up check of
//! the embedded model, the frame protocol of the (simulated) serial link, and the serve loop.
//!
//! **Start-up**: [`start`] decodes the model bytes (magic, version, CRC, shapes: see
//! [`format`](crate::format)) and accepts only an int8 model; a corrupted model is refused
//! with the decoder's error, so the firmware never runs on bad weights.
//!
//! **Frames** (host → device), one per image:
//!
//! ```text
//! 0  2  payload length N (u16 LE), 784 for a 28x28 image
//! 2  1  label 0..=9, or 0xFF when the host does not know it
//! 3  N  pixels, row-major, 0 = blank
//! ```
//!
//! A frame whose length is not 784 (or whose label byte is out of range) gets an error reply
//! and its payload is skipped, so the stream stays in step; a stream that ends inside a frame
//! gets a [`FrameError::Truncated`] reply and ends the loop. No input makes [`serve`] panic
//! or wait for bytes that will never come: it stops at the end of the stream.
//!
//! **Replies** (device → host): one per frame, the digit and its softmax probability, or the
//! frame's error. [`serve`] hands them to a callback; the firmware prints them.

use crate::format::{self, FormatError, Tensors};
use crate::mlp::{argmax, softmax, CLASSES, INPUT};
use crate::paired::{self, Paired};
use crate::quant::{QView, Work};

/// Bytes before a frame's payload.
pub const HEADER: usize = 3;

/// The label byte of a frame whose label the host does not know.
pub const NO_LABEL: u8 = 0xFF;

/// Why the device refuses its model at start-up.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum StartError {
    /// The bytes are not a valid model file.
    Format(FormatError),
    /// A valid file, but of float weights: the device runs int8 models only.
    NotInt8,
}

impl core::fmt::Display for StartError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            StartError::Format(e) => write!(f, "embedded model refused: {e}"),
            StartError::NotInt8 => f.write_str(
                "embedded model refused: it has f32 weights; quantize it first \
                 (pismo models quantize NAME@V)",
            ),
        }
    }
}

/// Checks the embedded model and borrows its int8 weights in place.
pub fn start(model: &[u8]) -> Result<QView<'_>, StartError> {
    match format::decode(model) {
        Ok(m) => match m.tensors {
            Tensors::I8(q) => Ok(q),
            Tensors::F32(_) => Err(StartError::NotInt8),
        },
        Err(e) => Err(StartError::Format(e)),
    }
}

/// Checks an embedded paired image ([`crate::paired`]) and borrows it in place.
pub fn start_paired(image: &[u8]) -> Result<Paired<'_>, StartError> {
    paired::decode_image(image).map_err(StartError::Format)
}

/// An int8 network as the device runs it, read in place: a model file's ([`QView`]) or a
/// paired image's ([`Paired`]).
pub trait Network {
    /// Hidden units.
    fn hidden_size(&self) -> usize;
    /// Whether inputs are deskewed before the network sees them.
    fn deskew(&self) -> bool;
    /// Multiply-accumulates of one dense inference.
    fn macs(&self) -> usize;
    /// Bytes of weights and scales read from flash.
    fn weight_bytes(&self) -> usize;
    /// Raw scores of an image; `None` if `work` is smaller than the model.
    fn logits<const W: usize>(&self, x: &[u8; INPUT], work: &mut Work<W>)
        -> Option<[f32; CLASSES]>;
    /// The first layer's sums into `work` for the bytes as given; the inked pixels added.
    fn first_layer<const W: usize>(&self, x: &[u8; INPUT], work: &mut Work<W>) -> Option<usize>;
}

/// Implements [`Network`] by the type's own methods of the same names.
macro_rules! network_by_methods {
    ($t:ident) => {
        impl Network for $t<'_> {
            fn hidden_size(&self) -> usize {
                $t::hidden_size(self)
            }
            fn deskew(&self) -> bool {
                $t::deskew(self)
            }
            fn macs(&self) -> usize {
                $t::macs(self)
            }
            fn weight_bytes(&self) -> usize {
                $t::weight_bytes(self)
            }
            #[inline(always)]
            fn logits<const W: usize>(
                &self,
                x: &[u8; INPUT],
                work: &mut Work<W>,
            ) -> Option<[f32; CLASSES]> {
                $t::logits(self, x, work)
            }
            #[inline(always)]
            fn first_layer<const W: usize>(
                &self,
                x: &[u8; INPUT],
                work: &mut Work<W>,
            ) -> Option<usize> {
                $t::first_layer(self, x, work)
            }
        }
    };
}

network_by_methods!(QView);
network_by_methods!(Paired);

/// Why a frame got an error reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The payload is not one 28x28 image; it was skipped.
    WrongLength { len: u16 },
    /// The label byte is neither a digit nor [`NO_LABEL`]; the frame was skipped.
    BadLabel(u8),
    /// The stream ended inside a frame (header or payload).
    Truncated,
    /// The device's working memory is smaller than the model's hidden layer.
    WorkTooSmall,
}

impl core::fmt::Display for FrameError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            FrameError::WrongLength { len } => {
                write!(f, "frame of {len} bytes, expected {INPUT}")
            }
            FrameError::BadLabel(b) => write!(f, "label byte {b} is not a digit or 0xFF"),
            FrameError::Truncated => f.write_str("stream ended inside a frame"),
            FrameError::WorkTooSmall => f.write_str("model larger than the working memory"),
        }
    }
}

/// A frame's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Payload bytes that follow.
    pub len: u16,
    /// The expected digit, if the host knows it.
    pub label: Option<u8>,
}

impl Header {
    /// Reads a header; `Err` carries the header when its frame must be skipped.
    pub fn parse(b: [u8; HEADER]) -> (Header, Result<(), FrameError>) {
        let len = u16::from_le_bytes([b[0], b[1]]);
        let label = if b[2] == NO_LABEL { None } else { Some(b[2]) };
        let header = Header { len, label };
        let check = if len as usize != INPUT {
            Err(FrameError::WrongLength { len })
        } else if b[2] > 9 && b[2] != NO_LABEL {
            Err(FrameError::BadLabel(b[2]))
        } else {
            Ok(())
        };
        (header, check)
    }
}

/// Writes one frame of `pixels` into `out`; returns the bytes written, or `None` if `out` is
/// too small or `pixels` longer than a `u16` length can say.
pub fn write_frame(label: Option<u8>, pixels: &[u8], out: &mut [u8]) -> Option<usize> {
    let len = u16::try_from(pixels.len()).ok()?;
    let n = HEADER + pixels.len();
    let out = out.get_mut(..n)?;
    out[..2].copy_from_slice(&len.to_le_bytes());
    out[2] = label.unwrap_or(NO_LABEL);
    out[HEADER..].copy_from_slice(pixels);
    Some(n)
}

/// The device's answer to a valid frame.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Answer {
    pub digit: u8,
    /// Softmax probability of `digit`.
    pub confidence: f32,
    /// Non-blank pixels: the first layer's work is proportional to them.
    pub ink: u16,
}

/// Classifies one image (the same arithmetic as `pismo eval` on an int8 model).
pub fn answer<N: Network, const W: usize>(
    model: &N,
    image: &[u8; INPUT],
    work: &mut Work<W>,
) -> Result<Answer, FrameError> {
    let z = model.logits(image, work).ok_or(FrameError::WorkTooSmall)?;
    let p = softmax(&z);
    let digit = argmax(&p);
    Ok(Answer {
        digit: digit as u8,
        confidence: p[digit],
        ink: image.iter().filter(|&&b| b != 0).count() as u16,
    })
}

/// The device's side of the serial link.
pub trait Link {
    /// Reads up to `buf.len()` bytes into `buf`; returns how many, 0 at the end of the stream.
    fn read(&mut self, buf: &mut [u8]) -> usize;
}

impl Link for &[u8] {
    fn read(&mut self, buf: &mut [u8]) -> usize {
        let n = buf.len().min(self.len());
        buf[..n].copy_from_slice(&self[..n]);
        *self = &self[n..];
        n
    }
}

/// Fills `buf`; false if the stream ended first.
fn read_exact<L: Link>(link: &mut L, buf: &mut [u8]) -> bool {
    let mut got = 0;
    while got < buf.len() {
        let n = link.read(&mut buf[got..]);
        if n == 0 {
            return false;
        }
        got += n;
    }
    true
}

/// Counts over one stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Frames replied to (answers and errors).
    pub frames: u32,
    /// Answers to frames that carried a label.
    pub labelled: u32,
    /// Of those, answers equal to the label.
    pub correct: u32,
    /// Error replies.
    pub errors: u32,
    /// Non-blank pixels over all answered frames.
    pub ink: u64,
}

/// Answers every frame of `link` until the stream ends; `reply` gets the frame's index, its
/// header's label and the reply. `image` is the frame buffer (a static on the device).
pub fn serve<N: Network, L: Link, const W: usize>(
    model: &N,
    link: &mut L,
    image: &mut [u8; INPUT],
    work: &mut Work<W>,
    reply: impl FnMut(u32, Option<u8>, Result<Answer, FrameError>),
) -> Tally {
    serve_with(model, link, image, work, answer, reply)
}

/// [`serve`] with the inference of each valid frame done by `infer` instead of [`answer`]:
/// the firmware wraps [`answer`] in a counter read before and after it.
pub fn serve_with<N: Network, L: Link, const W: usize>(
    model: &N,
    link: &mut L,
    image: &mut [u8; INPUT],
    work: &mut Work<W>,
    mut infer: impl FnMut(&N, &[u8; INPUT], &mut Work<W>) -> Result<Answer, FrameError>,
    mut reply: impl FnMut(u32, Option<u8>, Result<Answer, FrameError>),
) -> Tally {
    let mut t = Tally::default();
    loop {
        let mut head = [0u8; HEADER];
        let n = link.read(&mut head);
        if n == 0 {
            return t;
        }
        if !read_exact(link, &mut head[n..]) {
            reply(t.frames, None, Err(FrameError::Truncated));
            t.frames += 1;
            t.errors += 1;
            return t;
        }
        let (header, check) = Header::parse(head);
        let result = match check {
            Ok(()) => {
                if !read_exact(link, image) {
                    Err(FrameError::Truncated)
                } else {
                    infer(model, image, work)
                }
            }
            Err(e) => {
                // Skip the payload through the frame buffer, a chunk at a time.
                let mut left = header.len as usize;
                let mut ok = true;
                while left > 0 && ok {
                    let k = left.min(INPUT);
                    ok = read_exact(link, &mut image[..k]);
                    left -= k;
                }
                if ok {
                    Err(e)
                } else {
                    Err(FrameError::Truncated)
                }
            }
        };
        match &result {
            Ok(a) => {
                t.ink += a.ink as u64;
                if let Some(l) = header.label {
                    t.labelled += 1;
                    t.correct += (a.digit == l) as u32;
                }
            }
            Err(_) => t.errors += 1,
        }
        let end = result == Err(FrameError::Truncated);
        reply(t.frames, header.label, result);
        t.frames += 1;
        if end {
            return t;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::{QMlp, Work};
    use crate::rng::Rng;
    use bytemuck::Zeroable;
    use std::vec::Vec;

    fn model() -> std::boxed::Box<QMlp<16>> {
        let mut q: std::boxed::Box<QMlp<16>> = std::boxed::Box::new(QMlp::zeroed());
        let mut rng = Rng::new(7);
        for row in q.w1.iter_mut() {
            for w in row.iter_mut() {
                *w = (rng.next_u64() % 255) as i8;
            }
        }
        for row in q.w2.iter_mut() {
            for w in row.iter_mut() {
                *w = (rng.next_u64() % 255) as i8;
            }
        }
        q.s1 = [0.001; 16];
        q.s2 = [0.01; 10];
        q.act_scale = 0.05;
        q
    }

    fn frame(label: Option<u8>, pixels: &[u8]) -> Vec<u8> {
        let mut out = std::vec![0u8; HEADER + pixels.len()];
        assert_eq!(write_frame(label, pixels, &mut out), Some(out.len()));
        out
    }

    #[test]
    fn wrong_length_frames_get_an_error_reply_and_the_stream_stays_in_step() {
        let q = model();
        let img = [9u8; INPUT];
        let mut stream = frame(Some(3), &img);
        stream.extend(frame(Some(1), &[1u8; 100]));
        stream.extend(frame(None, &[1u8; 2000]));
        stream.extend(frame(Some(12), &img));
        stream.extend(frame(None, &img));
        let mut replies = Vec::new();
        let t = serve(
            &q.view(),
            &mut stream.as_slice(),
            &mut [0u8; INPUT],
            &mut Work::<16>::new(),
            |i, l, r| replies.push((i, l, r)),
        );
        assert_eq!(replies.len(), 5);
        assert!(replies[0].2.is_ok() && replies[4].2.is_ok());
        assert_eq!(replies[0].2, replies[4].2, "same image, same answer");
        assert_eq!(replies[1].2, Err(FrameError::WrongLength { len: 100 }));
        assert_eq!(replies[2].2, Err(FrameError::WrongLength { len: 2000 }));
        assert_eq!(replies[3].2, Err(FrameError::BadLabel(12)));
        assert_eq!((t.frames, t.labelled, t.errors), (5, 1, 3));
    }

    #[test]
    #[cfg_attr(miri, ignore = "too slow under Miri; see .ci/run")]
    fn a_stream_cut_anywhere_ends_with_a_truncated_reply_not_a_hang() {
        let q = model();
        let mut stream = frame(Some(3), &[5u8; INPUT]);
        stream.extend(frame(None, &[1u8; 10]));
        stream.extend(frame(None, &[7u8; INPUT]));
        let full = stream.len();
        for cut in 0..full {
            let mut last = None;
            let t = serve(
                &q.view(),
                &mut &stream[..cut],
                &mut [0u8; INPUT],
                &mut Work::<16>::new(),
                |_, _, r| last = Some(r),
            );
            let boundary = [0, HEADER + INPUT, 2 * HEADER + INPUT + 10].contains(&cut);
            if boundary {
                assert_ne!(last, Some(Err(FrameError::Truncated)), "cut {cut}");
            } else {
                assert_eq!(last, Some(Err(FrameError::Truncated)), "cut {cut}");
                assert!(t.errors >= 1);
            }
        }
    }

    #[test]
    fn work_too_small_is_an_error_reply() {
        let q = model();
        let stream = frame(None, &[5u8; INPUT]);
        let mut last = None;
        serve(
            &q.view(),
            &mut stream.as_slice(),
            &mut [0u8; INPUT],
            &mut Work::<8>::new(),
            |_, _, r| last = Some(r),
        );
        assert_eq!(last, Some(Err(FrameError::WorkTooSmall)));
    }
}
