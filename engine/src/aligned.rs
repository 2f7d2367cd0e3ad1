//! Float buffers that begin on a cache line.
//!
//! A `Vec<f32>` of more than a few hundred kilobytes comes from `mmap` with glibc's chunk
//! header in front: its first float sits 16 bytes past a page boundary. The trainer walks its
//! weights in rows of 64 floats (256 bytes, [`pismo_core::mlp::strips`]), so with that offset every
//! 64-byte AVX-512 load straddles two cache lines, and half of the 32-byte AVX2 loads do. A
//! [`Floats`] starts on a 64-byte boundary, so a row is exactly four lines.

use bytemuck::{Pod, Zeroable};

/// One cache line of floats; the buffer is made of these so that it is aligned as they are.
#[derive(Clone, Copy, Pod, Zeroable)]
#[repr(C, align(64))]
struct Line([f32; 16]);

/// A heap buffer of `f32`, zeroed when made, whose first element is on a 64-byte boundary.
pub struct Floats {
    lines: Vec<Line>,
    len: usize,
}

impl Floats {
    /// `len` zeros.
    pub fn zeroed(len: usize) -> Self {
        Floats {
            lines: vec![Line([0.0; 16]); len.div_ceil(16)],
            len,
        }
    }
}

impl core::ops::Deref for Floats {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &bytemuck::cast_slice(&self.lines)[..self.len]
    }
}

impl core::ops::DerefMut for Floats {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut bytemuck::cast_slice_mut(&mut self.lines)[..self.len]
    }
}

impl core::fmt::Debug for Floats {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Floats({} floats)", self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_on_a_cache_line_zeroed_and_holds_what_is_written() {
        for len in [0, 1, 15, 16, 17, 784 * 64, 784 * 1024] {
            let values: Vec<f32> = (0..len).map(|i| i as f32).collect();
            let mut f = Floats::zeroed(len);
            assert!(f.iter().all(|&v| v == 0.0), "len {len}");
            f.copy_from_slice(&values);
            assert_eq!(f.as_ptr() as usize % 64, 0, "len {len}");
            assert_eq!(&f[..], &values[..]);
        }
    }
}
