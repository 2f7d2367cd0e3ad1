//! The Cortex-M4 DSP instructions the int8 first layer uses, and the first layer built on them.
//!
//! Five instructions, each a function of 32-bit registers with no memory access:
//!
//! | function        | instruction            | result                                             |
//! |-----------------|------------------------|----------------------------------------------------|
//! | [`sxtb16`]      | `SXTB16 d, m`          | bytes 0 and 2 of `m`, sign-extended to 16-bit lanes |
//! | [`sxtb16_ror8`] | `SXTB16 d, m, ROR #8`  | bytes 1 and 3 likewise                             |
//! | [`pkhbt`]       | `PKHBT d, n, m, LSL #16` | low half of `n`, low half of `m` on top          |
//! | [`pkhtb`]       | `PKHTB d, n, m, ASR #16` | high half of `m` at the bottom, high half of `n` on top |
//! | [`smlad`]       | `SMLAD d, n, m, a`     | `a + n.lo·m.lo + n.hi·m.hi` (16-bit signed lanes, wrapping) |
//!
//! With the cargo feature `dsp` on a 32-bit Arm target (`thumbv7em-*`: Cortex-M4/M7, whose
//! DSP extension has them) each is one `asm!` instruction; everywhere else it is the portable
//! definition below, the specification the `asm!` must meet. [`first_layer`] is written once
//! on top of them, so the host runs exactly the kernel logic of the device (with the portable
//! definitions), and its tests compare it with the plain loop of [`crate::quant`] on random
//! weights and images; the firmware under QEMU checks the `asm!` path against `pismo eval`.
//!
//! **The kernel**: the first layer adds, for every inked pixel `i`, its weight row
//! `w1[i][·]` times the pixel value to the `H` accumulators (blank pixels are skipped). Here
//! inked pixels are taken two at a time, `i` and `j`, whatever their distance: four weights
//! of each row arrive in one 32-bit load, [`pkhbt`]/[`pkhtb`] interleave the two rows'
//! halves, [`sxtb16`] widens them to 16-bit lanes `(w[j][h], w[i][h])`, and [`smlad`] adds
//! `x_i·w[i][h] + x_j·w[j][h]` to accumulator `h` in one instruction, with `x = (x_j, x_i)`
//! packed once per pair. An odd pixel out is paired with itself at value 0. Products are at
//! most 255·127 in magnitude and a sum over 784 pixels stays below 2³¹: the integers are the
//! plain loop's, bit for bit.

/// The DSP instructions as `asm!` (Cortex-M4 and up with the `dsp` feature).
#[cfg(all(target_arch = "arm", feature = "dsp"))]
#[allow(unsafe_code)]
mod ops {
    use core::arch::asm;

    #[inline(always)]
    pub fn sxtb16(m: u32) -> u32 {
        let d: u32;
        // SAFETY: one register-to-register instruction: no memory, no stack, no flags.
        unsafe {
            asm!("sxtb16 {d}, {m}", d = lateout(reg) d, m = in(reg) m,
                 options(pure, nomem, nostack, preserves_flags));
        }
        d
    }

    #[inline(always)]
    pub fn sxtb16_ror8(m: u32) -> u32 {
        let d: u32;
        // SAFETY: one register-to-register instruction: no memory, no stack, no flags.
        unsafe {
            asm!("sxtb16 {d}, {m}, ror #8", d = lateout(reg) d, m = in(reg) m,
                 options(pure, nomem, nostack, preserves_flags));
        }
        d
    }

    #[inline(always)]
    pub fn pkhbt(n: u32, m: u32) -> u32 {
        let d: u32;
        // SAFETY: one register-to-register instruction: no memory, no stack, no flags.
        unsafe {
            asm!("pkhbt {d}, {n}, {m}, lsl #16", d = lateout(reg) d, n = in(reg) n,
                 m = in(reg) m, options(pure, nomem, nostack, preserves_flags));
        }
        d
    }

    #[inline(always)]
    pub fn pkhtb(n: u32, m: u32) -> u32 {
        let d: u32;
        // SAFETY: one register-to-register instruction: no memory, no stack, no flags.
        unsafe {
            asm!("pkhtb {d}, {n}, {m}, asr #16", d = lateout(reg) d, n = in(reg) n,
                 m = in(reg) m, options(pure, nomem, nostack, preserves_flags));
        }
        d
    }

    #[inline(always)]
    pub fn smlad(n: u32, m: u32, a: i32) -> i32 {
        let d: i32;
        // SAFETY: one register-to-register instruction: no memory, no stack. It may set the
        // sticky Q flag on overflow (which the sums here never reach), so flags are not
        // declared preserved.
        unsafe {
            asm!("smlad {d}, {n}, {m}, {a}", d = lateout(reg) d, n = in(reg) n,
                 m = in(reg) m, a = in(reg) a, options(pure, nomem, nostack));
        }
        d
    }
}

/// The portable definitions: what each instruction computes (Arm ARM, A7.7).
#[cfg_attr(all(target_arch = "arm", feature = "dsp"), allow(dead_code))]
mod portable {
    #[inline(always)]
    fn lane(b: u32) -> u32 {
        u32::from(b as u8 as i8 as i16 as u16)
    }

    #[inline(always)]
    pub fn sxtb16(m: u32) -> u32 {
        lane(m) | lane(m >> 16) << 16
    }

    #[inline(always)]
    pub fn sxtb16_ror8(m: u32) -> u32 {
        sxtb16(m.rotate_right(8))
    }

    #[inline(always)]
    pub fn pkhbt(n: u32, m: u32) -> u32 {
        (n & 0xFFFF) | (m << 16)
    }

    #[inline(always)]
    pub fn pkhtb(n: u32, m: u32) -> u32 {
        (n & 0xFFFF_0000) | ((m as i32 >> 16) as u32 & 0xFFFF)
    }

    #[inline(always)]
    pub fn smlad(n: u32, m: u32, a: i32) -> i32 {
        let lo = i32::from(n as i16) * i32::from(m as i16);
        let hi = i32::from((n >> 16) as i16) * i32::from((m >> 16) as i16);
        a.wrapping_add(lo).wrapping_add(hi)
    }
}

#[cfg(not(all(target_arch = "arm", feature = "dsp")))]
pub use portable::{pkhbt, pkhtb, smlad, sxtb16, sxtb16_ror8};

#[cfg(all(target_arch = "arm", feature = "dsp"))]
pub use ops::{pkhbt, pkhtb, smlad, sxtb16, sxtb16_ror8};

#[inline(always)]
fn word(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// Adds `x_i·row_i + x_j·row_j` to `acc`, four units per step; `x = x_i | x_j << 16`.
/// `acc.len()` is a multiple of 4 and at most the rows' length.
#[inline(always)]
fn add_pair(acc: &mut [i32], row_i: &[u8], row_j: &[u8], x: u32) {
    let steps = acc
        .chunks_exact_mut(4)
        .zip(row_i.chunks_exact(4))
        .zip(row_j.chunks_exact(4));
    for ((a, wi), wj) in steps {
        let (wi, wj) = (word(wi), word(wj));
        let lo = pkhbt(wi, wj); // w_i[0] w_i[1] w_j[0] w_j[1]
        let hi = pkhtb(wj, wi); // w_i[2] w_i[3] w_j[2] w_j[3]
        a[0] = smlad(x, sxtb16(lo), a[0]);
        a[1] = smlad(x, sxtb16_ror8(lo), a[1]);
        a[2] = smlad(x, sxtb16(hi), a[2]);
        a[3] = smlad(x, sxtb16_ror8(hi), a[3]);
    }
}

/// The first layer's integer sums `acc[h] = Σ_i x[i]·w1[i][h]` over the inked pixels, two
/// at a time; returns the number of inked pixels. `w1` is `(INPUT, H)` as in
/// [`crate::quant`], `H = acc.len()` a multiple of 4 (`None` otherwise, nothing written).
#[inline(always)]
pub fn first_layer(w1: &[u8], x: &[u8; crate::mlp::INPUT], acc: &mut [i32]) -> Option<usize> {
    let h = acc.len();
    if h % 4 != 0 || w1.len() < x.len() * h {
        return None;
    }
    acc.fill(0);
    let mut ink = 0;
    let mut pending: Option<(&[u8], u32)> = None;
    for (row, &p) in w1.chunks_exact(h).zip(x) {
        if p == 0 {
            continue;
        }
        ink += 1;
        match pending.take() {
            None => pending = Some((row, u32::from(p))),
            Some((first, xf)) => add_pair(acc, first, row, xf | u32::from(p) << 16),
        }
    }
    if let Some((row, xf)) = pending {
        add_pair(acc, row, row, xf);
    }
    Some(ink)
}

#[cfg(test)]
mod tests {
    use super::portable::*;
    use super::*;
    use crate::mlp::INPUT;
    use crate::rng::Rng;

    #[test]
    fn portable_definitions_match_the_arm_manual() {
        assert_eq!(sxtb16(0x80_7F_01_FF), 0x007F_FFFF);
        assert_eq!(sxtb16_ror8(0x80_7F_01_FF), 0xFF80_0001);
        assert_eq!(pkhbt(0x1111_2222, 0x3333_4444), 0x4444_2222);
        assert_eq!(pkhtb(0x1111_2222, 0x8333_4444), 0x1111_8333);
        // (-1)·3 + 2·(-4) + 100
        assert_eq!(smlad(0x0002_FFFF, 0xFFFC_0003, 100), 89);
        assert_eq!(
            smlad(0x8000_8000, 0x8000_8000, 0),
            i32::MIN,
            "wraps like the instruction"
        );
    }

    /// The plain loop of `crate::quant` (the reference the kernel must equal).
    fn reference(w1: &[u8], x: &[u8; INPUT], acc: &mut [i32]) {
        let h = acc.len();
        acc.fill(0);
        for (i, &p) in x.iter().enumerate() {
            if p != 0 {
                for (a, &w) in acc.iter_mut().zip(&w1[i * h..(i + 1) * h]) {
                    *a += i32::from(p) * i32::from(w as i8);
                }
            }
        }
    }

    #[test]
    #[cfg_attr(miri, ignore = "too slow under Miri; see .ci/run")]
    fn paired_kernel_equals_the_plain_loop_on_random_weights_and_images() {
        let mut rng = Rng::new(32);
        for (trial, h) in [4usize, 8, 12, 64, 256]
            .into_iter()
            .cycle()
            .take(40)
            .enumerate()
        {
            let w1: std::vec::Vec<u8> = (0..INPUT * h).map(|_| rng.next_u64() as u8).collect();
            // Densities from blank to full, odd and even ink counts, extreme values.
            let density = (trial % 8) as f32 / 7.0;
            let x: [u8; INPUT] = core::array::from_fn(|_| {
                if rng.next_f32() < density {
                    [1, 255, (rng.next_u64() % 256) as u8][(rng.next_u64() % 3) as usize]
                } else {
                    0
                }
            });
            let mut want = std::vec![0i32; h];
            reference(&w1, &x, &mut want);
            let mut got = std::vec![7i32; h];
            let ink = first_layer(&w1, &x, &mut got);
            assert_eq!(ink, Some(x.iter().filter(|&&p| p != 0).count()));
            assert_eq!(got, want, "h {h}, trial {trial}");
        }
        // Extreme weights at full ink: the largest sums the layer can reach.
        let x = [255u8; INPUT];
        for w in [0x80u8, 0x7F, 0x81] {
            let w1 = std::vec![w; INPUT * 8];
            let mut want = [0i32; 8];
            reference(&w1, &x, &mut want);
            let mut got = [0i32; 8];
            first_layer(&w1, &x, &mut got);
            assert_eq!(got, want);
        }
        // Not a multiple of 4: refused, the caller uses the plain loop.
        assert_eq!(first_layer(&[0; INPUT * 6], &x, &mut [0; 6]), None);
    }
}
