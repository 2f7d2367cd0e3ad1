//! The Cortex-M4 DSP instructions the int8 first layer uses, and the first layer built on them.
//!
//! Six instructions of the DSP extension and the base ISA, each a function of 32-bit registers:
//!
//! | function        | instruction              | result                                             |
//! |-----------------|--------------------------|----------------------------------------------------|
//! | [`sxtb16`]      | `SXTB16 d, m`            | bytes 0 and 2 of `m`, sign-extended to 16-bit lanes |
//! | [`sxtb16_ror8`] | `SXTB16 d, m, ROR #8`    | bytes 1 and 3 likewise                             |
//! | [`pkhbt`]       | `PKHBT d, n, m, LSL #16` | low half of `n`, low half of `m` on top            |
//! | [`pkhtb`]       | `PKHTB d, n, m, ASR #16` | high half of `m` at the bottom, high half of `n` on top |
//! | [`smlad`]       | `SMLAD d, n, m, a`       | `a + n.lo·m.lo + n.hi·m.hi` (16-bit signed lanes, wrapping) |
//! | [`rev16`]       | `REV16 d, m`             | the two bytes of each 16-bit half swapped          |
//!
//! The functions are their portable definitions (Arm ARM, A7.7), tested against values worked
//! out by hand. [`first_layer`] is written once; its inner loop, `add_pair`, is written with
//! these functions ([`portable::add_pair`]), and with the cargo feature `dsp` on a 32-bit Arm
//! target (`thumbv7em-*`: Cortex-M4/M7) it is one `asm!` block doing the same instructions
//! in the same order (module `ops`, the only unsafe code here). The host tests run the
//! portable kernel against the plain loop of [`crate::quant`] on random weights and images;
//! the firmware under QEMU checks the `asm!` one: its count of correct answers must equal
//! `pismo eval`'s (`scripts/firmware-sim`).
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
//!
//! **The paired kernel** ([`PairList::sums`]) is the inner loop of the firmware's 7-bit first
//! layer, whose weights sit in flash two pixels by two units per word ([`crate::paired`]
//! has the layout and the arithmetic): per listed pixel pair, eight units' sums in eight
//! registers, one `LDRD` per two words and, per word, one `SMLAD` on the word, one `REV16`
//! and one `SMLAD` on that: 18 instructions per pair and block of 8 units (16 MACs). The
//! list comes from [`PairList::scan`], which reads the image a word at a time. Both are
//! `global_asm!` functions in module `ops` (with portable twins in [`portable`]), as the
//! sums need 13 registers and `asm!` may not name r6, r7 or r9.

use crate::mlp::INPUT;

/// The kernel's inner loop as one `asm!` block (Cortex-M4 and up with the `dsp` feature):
/// instruction for instruction the loop of [`portable::add_pair`], with the four sums of a
/// step loaded and stored by one `LDM`/`STM` and kept in r0–r3 in between.
#[cfg(all(target_arch = "arm", feature = "dsp"))]
#[allow(unsafe_code)]
mod ops {
    use core::arch::asm;

    /// See [`super::portable::add_pair`].
    #[inline(always)]
    pub fn add_pair(acc: &mut [i32], row_i: &[u8], row_j: &[u8], x: u32) {
        let steps = acc.len().min(row_i.len()).min(row_j.len()) / 4;
        if steps == 0 {
            return;
        }
        // SAFETY: the loop runs `steps` times; each reads 4 bytes of `row_i` and of `row_j`
        // (unaligned word loads, which the Cortex-M4 allows) and reads and writes 4 words of
        // `acc` (an `i32` slice: word-aligned for LDM/STM), so it stays within the three
        // slices, whose lengths bound `steps`. It writes only the registers declared below
        // and the flags (SUBS; SMLAD's sticky Q); no stack.
        unsafe {
            asm!(
                "2:",
                "ldr {wi}, [{ri}], #4",
                "ldr {wj}, [{rj}], #4",
                "ldm {acc}, {{r0, r1, r2, r3}}",
                "pkhbt {t}, {wi}, {wj}, lsl #16",
                "pkhtb {wj}, {wj}, {wi}, asr #16",
                "sxtb16 {wi}, {t}",
                "smlad r0, {x}, {wi}, r0",
                "sxtb16 {wi}, {t}, ror #8",
                "smlad r1, {x}, {wi}, r1",
                "sxtb16 {wi}, {wj}",
                "smlad r2, {x}, {wi}, r2",
                "sxtb16 {wi}, {wj}, ror #8",
                "smlad r3, {x}, {wi}, r3",
                "stm {acc}!, {{r0, r1, r2, r3}}",
                "subs {n}, {n}, #1",
                "bne 2b",
                ri = inout(reg) row_i.as_ptr() => _,
                rj = inout(reg) row_j.as_ptr() => _,
                acc = inout(reg) acc.as_mut_ptr() => _,
                n = inout(reg) steps => _,
                x = in(reg) x,
                wi = out(reg) _,
                wj = out(reg) _,
                t = out(reg) _,
                out("r0") _,
                out("r1") _,
                out("r2") _,
                out("r3") _,
                options(nostack),
            );
        }
    }

    // `pismo_paired_sums(list, weights, out, blocks)`: AAPCS; r0 = the pair list (entries
    // `[offset, x]`, ended by an entry with `x == 0`), r1 = the first weight byte
    // (word-aligned, as every offset is a multiple of 16), r2 = `8·blocks` `i32`s to write,
    // r3 = blocks (at least 1). Per block: sums in r3–r10; r11, r12 the entry; r2 and lr the
    // weight words; the list's start, `out` and the blocks left on the stack. Saves and
    // restores r4–r11 itself.
    core::arch::global_asm!(
        ".section .text.pismo_paired_sums,\"ax\",%progbits",
        ".global pismo_paired_sums",
        ".type pismo_paired_sums,%function",
        ".syntax unified",
        ".thumb_func",
        ".p2align 2",
        "pismo_paired_sums:",
        "push {{r4-r11, lr}}",
        "push {{r0, r2, r3}}",
        "3:",
        "ldr r0, [sp]",
        "movs r3, #0",
        "mov r4, r3",
        "mov r5, r3",
        "mov r6, r3",
        "mov r7, r3",
        "mov r8, r3",
        "mov r9, r3",
        "mov r10, r3",
        "ldrd r11, r12, [r0], #8",
        "cmp r12, #0",
        "beq 2f",
        "1:",
        "add r11, r1, r11",
        "ldrd r2, lr, [r11]",
        "smlad r3, r2, r12, r3",
        "rev16 r2, r2",
        "smlad r4, r2, r12, r4",
        "smlad r5, lr, r12, r5",
        "rev16 lr, lr",
        "smlad r6, lr, r12, r6",
        "ldrd r2, lr, [r11, #8]",
        "smlad r7, r2, r12, r7",
        "rev16 r2, r2",
        "smlad r8, r2, r12, r8",
        "smlad r9, lr, r12, r9",
        "rev16 lr, lr",
        "smlad r10, lr, r12, r10",
        "ldrd r11, r12, [r0], #8",
        "cmp r12, #0",
        "bne 1b",
        "2:",
        "ldr r2, [sp, #4]",
        "stm r2!, {{r3-r10}}",
        "str r2, [sp, #4]",
        "adds r1, #16",
        "ldr r3, [sp, #8]",
        "subs r3, #1",
        "str r3, [sp, #8]",
        "bne 3b",
        "add sp, #12",
        "pop {{r4-r11, pc}}",
        ".size pismo_paired_sums, . - pismo_paired_sums",
    );

    // `pismo_pair_scan(x, list, ranks, stride) -> entries`: AAPCS; r0 = the image (784
    // bytes, read a word at a time, unaligned), r1 = the list to write (room for 392
    // entries), r2 = the 196 rank words ([`super::PairRanks`]), r3 = the bytes per pair.
    // For each word with ink, for each of its two pixel pairs that is kept and inked, writes
    // `[rank · stride, x_a | x_b << 16]`. Returns the entries written.
    core::arch::global_asm!(
        ".section .text.pismo_pair_scan,\"ax\",%progbits",
        ".global pismo_pair_scan",
        ".type pismo_pair_scan,%function",
        ".syntax unified",
        ".thumb_func",
        ".p2align 2",
        "pismo_pair_scan:",
        "push {{r4-r8, lr}}",
        "mov r12, r1",
        "movs r5, #196",
        "1:",
        "ldr r4, [r0], #4",
        "cbnz r4, 3f",
        "2:",
        "subs r5, #1",
        "bne 1b",
        "sub r0, r12, r1",
        "lsrs r0, r0, #3",
        "pop {{r4-r8, pc}}",
        "3:",
        // The word's rank entry: rsb gives its index, 196 - r5.
        "rsb r6, r5, #196",
        "ldrh r6, [r2, r6, lsl #1]",
        "ubfx r7, r6, #0, #14",
        "mul r7, r7, r3",
        "tst r6, #0x4000",
        "beq 4f",
        "lsls r8, r4, #16",
        "beq 5f",
        "uxtb r8, r4",
        "ubfx lr, r4, #8, #8",
        "orr r8, r8, lr, lsl #16",
        "strd r7, r8, [r12], #8",
        "5:",
        "add r7, r7, r3",
        "4:",
        "tst r6, #0x8000",
        "beq 2b",
        "lsrs r8, r4, #16",
        "beq 2b",
        "uxtb r8, r8",
        "lsrs lr, r4, #24",
        "orr r8, r8, lr, lsl #16",
        "strd r7, r8, [r12], #8",
        "b 2b",
        ".size pismo_pair_scan, . - pismo_pair_scan",
    );

    extern "C" {
        fn pismo_pair_scan(
            x: *const u8,
            list: *mut [u32; 2],
            ranks: *const u16,
            stride: usize,
        ) -> usize;
    }

    /// See [`super::portable::pair_scan`]; the arguments are a [`super::PairList`]'s.
    #[inline(always)]
    pub fn pair_scan(
        x: &[u8; super::INPUT],
        ranks: &[u16; super::WORDS],
        stride: usize,
        list: &mut [[u32; 2]; super::PAIRS + 1],
    ) -> usize {
        // SAFETY: reads the 784 bytes of `x` and the 196 entries of `ranks`; writes at most
        // two entries per word of `x`, 392 in all, within `list` (393 entries). Keeps AAPCS.
        unsafe { pismo_pair_scan(x.as_ptr(), list.as_mut_ptr(), ranks.as_ptr(), stride) }
    }

    extern "C" {
        fn pismo_paired_sums(
            list: *const [u32; 2],
            weights: *const u8,
            out: *mut i32,
            blocks: usize,
        );
    }

    /// See [`super::portable::paired_sums`]; the arguments are a [`super::PairList`]'s.
    #[inline(always)]
    pub fn paired_sums(list: &[[u32; 2]], weights: &[u8], out: &mut [i32]) {
        let blocks = out.len() / 8;
        if blocks == 0 {
            return;
        }
        // SAFETY: `PairList::sums` guarantees (its invariants): `list` ends with an entry
        // whose `x == 0`; every entry before it has an offset at which the 16 bytes of every
        // block `b < blocks` (from `16·b` on) lie inside `weights`; `weights` starts
        // word-aligned and every offset is a multiple of 16, so the LDRDs are aligned. The
        // function reads only those bytes and the list, writes the `8·blocks` words of
        // `out`, and keeps AAPCS (restores r4–r11 and sp).
        unsafe { pismo_paired_sums(list.as_ptr(), weights.as_ptr(), out.as_mut_ptr(), blocks) };
    }
}

/// The portable definitions: what each instruction computes (Arm ARM, A7.7).
#[cfg_attr(all(target_arch = "arm", feature = "dsp"), allow(dead_code))]
pub mod portable {
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

    #[inline(always)]
    pub fn rev16(m: u32) -> u32 {
        (m & 0xFF00_FF00) >> 8 | (m & 0x00FF_00FF) << 8
    }

    #[inline(always)]
    fn word(b: &[u8]) -> u32 {
        u32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }

    /// The pair list of image `x`: for each word (four pixels, two pairs) with ink, for each
    /// of its pairs kept (bit 14 of its rank entry for the first pair, bit 15 for the
    /// second) and inked, the entry `[rank · stride, x_a | x_b << 16]` (`rank`: bits 0–13,
    /// plus 1 for the second pair if the first is kept). Returns the entries written.
    #[inline(always)]
    pub fn pair_scan(
        x: &[u8; super::INPUT],
        ranks: &[u16; super::WORDS],
        stride: usize,
        list: &mut [[u32; 2]; super::PAIRS + 1],
    ) -> usize {
        let mut n = 0;
        for (x4, &r) in x.chunks_exact(4).zip(ranks) {
            let mut at = usize::from(r & 0x3FFF) * stride;
            for (half, kept_bit) in [(&x4[..2], 0x4000), (&x4[2..], 0x8000)] {
                if r & kept_bit == 0 {
                    continue;
                }
                if half != [0, 0] {
                    list[n] = [at as u32, u32::from(half[0]) | u32::from(half[1]) << 16];
                    n += 1;
                }
                at += stride;
            }
        }
        n
    }

    /// The paired kernel: for every block `b` of `out` (8 sums each), for every entry
    /// `[offset, x]` of `list` before the first with `x == 0`, the four words at
    /// `weights[offset + 16·b..]`, each added to two sums: `SMLAD` of the word and `x` to sum
    /// `2k`, of its `REV16` to sum `2k + 1`. The sums start at 0.
    #[inline(always)]
    pub fn paired_sums(list: &[[u32; 2]], weights: &[u8], out: &mut [i32]) {
        out.fill(0);
        for (b, s) in out.chunks_exact_mut(8).enumerate() {
            for &[offset, x] in list.iter().take_while(|e| e[1] != 0) {
                let at = offset as usize + 16 * b;
                for (k, w) in weights[at..at + 16].chunks_exact(4).enumerate() {
                    let w = word(w);
                    s[2 * k] = smlad(w, x, s[2 * k]);
                    s[2 * k + 1] = smlad(rev16(w), x, s[2 * k + 1]);
                }
            }
        }
    }

    /// Adds `x_i·row_i + x_j·row_j` to `acc`, four units per step; `x = x_i | x_j << 16`.
    /// `acc.len()` is a multiple of 4 and at most the rows' length.
    #[inline(always)]
    pub fn add_pair(acc: &mut [i32], row_i: &[u8], row_j: &[u8], x: u32) {
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
}

pub use portable::{pkhbt, pkhtb, rev16, smlad, sxtb16, sxtb16_ror8};

#[cfg(all(target_arch = "arm", feature = "dsp"))]
use ops::{pair_scan, paired_sums};
#[cfg(not(all(target_arch = "arm", feature = "dsp")))]
use portable::{pair_scan, paired_sums};

#[cfg(all(target_arch = "arm", feature = "dsp"))]
use ops::add_pair;
#[cfg(not(all(target_arch = "arm", feature = "dsp")))]
use portable::add_pair;

/// Entries a pair list can hold: every pixel pair of an image.
const PAIRS: usize = INPUT / 2;

/// Words (four pixels) of an image.
const WORDS: usize = INPUT / 4;

/// Where the kept pixel pairs of a pruned first layer are ([`crate::paired`]): for each word
/// of the image (pixels `4g..4g + 4`, pairs `2g` and `2g + 1`), the kept pairs before it
/// (bits 0–13) and whether its first (bit 14) and second (bit 15) pair are kept. Made only
/// from a bitmap that keeps pixels in pairs, so its ranks and its count agree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PairRanks {
    words: [u16; WORDS],
    pairs: usize,
}

impl PairRanks {
    /// The ranks of bitmap `kept` ([`crate::quant::KEPT_BYTES`] bytes, or empty: every
    /// pixel); `None` unless it keeps pixels `2k` and `2k + 1` together.
    pub fn of(kept: &[u8]) -> Option<Self> {
        let keeps = |i: usize| crate::quant::keeps(kept, i);
        if (0..PAIRS).any(|k| keeps(2 * k) != keeps(2 * k + 1)) {
            return None;
        }
        let mut words = [0u16; WORDS];
        let mut pairs = 0;
        for (g, word) in words.iter_mut().enumerate() {
            let (first, second) = (keeps(4 * g), keeps(4 * g + 2));
            *word = pairs as u16 | u16::from(first) << 14 | u16::from(second) << 15;
            pairs += usize::from(first) + usize::from(second);
        }
        Some(PairRanks { words, pairs })
    }

    /// Kept pairs.
    pub fn pairs(&self) -> usize {
        self.pairs
    }
}

/// Room for a [`PairList`]: an entry per pixel pair and the end mark.
#[derive(Debug)]
pub struct PairSlots([[u32; 2]; PAIRS + 1]);

impl PairSlots {
    /// Zeroed slots.
    pub const fn new() -> Self {
        PairSlots([[0; 2]; PAIRS + 1])
    }

    /// Bytes of the slots.
    pub const BYTES: usize = 8 * (PAIRS + 1);
}

impl Default for PairSlots {
    fn default() -> Self {
        Self::new()
    }
}

/// The inked pixel pairs of one image for [`PairList::sums`], over a paired weight layout
/// of `stride` bytes per pair ([`crate::paired`]). Its invariants, which make the `asm!`
/// kernel's reads safe: the entries are followed by one with `x == 0`; every entry's
/// offset is `pair · stride` for a pair inside `weights`; `weights` starts word-aligned and
/// `stride` is a multiple of 16.
#[derive(Debug)]
pub struct PairList<'a> {
    slots: &'a mut [[u32; 2]; PAIRS + 1],
    len: usize,
    weights: &'a [u8],
    stride: usize,
    /// Pairs in `weights`.
    pairs: usize,
}

impl<'a> PairList<'a> {
    /// An empty list over `weights`, `stride` bytes per pair; `None` unless `weights` is
    /// word-aligned and a whole number of pairs, and `stride` a multiple of 16.
    pub fn new(slots: &'a mut PairSlots, weights: &'a [u8], stride: usize) -> Option<Self> {
        let fits = stride > 0
            && stride.is_multiple_of(16)
            && weights.len().is_multiple_of(stride)
            && (weights.as_ptr() as usize).is_multiple_of(4);
        fits.then(|| {
            slots.0[0] = [0, 0];
            PairList {
                slots: &mut slots.0,
                len: 0,
                weights,
                stride,
                pairs: weights.len() / stride,
            }
        })
    }

    /// Lists the kept, inked pairs of image `x` ([`portable::pair_scan`]), in place of what
    /// was listed; `false` (nothing listed) unless `ranks` has the list's pairs.
    #[inline(always)]
    pub fn scan(&mut self, x: &[u8; INPUT], ranks: &PairRanks) -> bool {
        let fits = ranks.pairs == self.pairs;
        if fits {
            self.len = pair_scan(x, &ranks.words, self.stride, self.slots);
        }
        fits
    }

    /// The listed pairs' pixel values, `x_a | x_b << 16` each.
    pub fn values(&self) -> impl Iterator<Item = u32> + '_ {
        self.slots[..self.len].iter().map(|e| e[1])
    }

    /// Pairs in the list.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the list holds no pair.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The sums of every block of 8 units (16 bytes of each pair's `stride`) over the
    /// listed pairs into `out` ([`portable::paired_sums`]), one block per 8 sums; `false`
    /// (nothing written) unless `out` holds a whole number of blocks within the stride.
    #[inline(always)]
    pub fn sums(&mut self, out: &mut [i32]) -> bool {
        let fits = out.len().is_multiple_of(8) && 2 * out.len() <= self.stride;
        if fits {
            self.slots[self.len] = [0, 0];
            paired_sums(&self.slots[..=self.len], self.weights, out);
        }
        fits
    }
}

/// The inked pixels of an input and their weight rows, in pixel order, handed one by one to
/// a callback: what the first layer adds up. [`crate::quant::QView::inked_rows`] provides
/// them from a model; any iterator of `(value, row)` does too.
pub trait InkedRows<'w> {
    /// Calls `f(value, row)` for every inked pixel with a row.
    fn for_each(self, f: impl FnMut(u8, &'w [u8]));
}

impl<'w, I: Iterator<Item = (u8, &'w [u8])>> InkedRows<'w> for I {
    #[inline(always)]
    fn for_each(self, mut f: impl FnMut(u8, &'w [u8])) {
        Iterator::for_each(self, |(p, row)| f(p, row));
    }
}

/// The first layer's integer sums `acc[h] = Σ x·row[h]` over `rows`, the inked pixels'
/// values and weight rows, two at a time; returns how many rows it added. `H = acc.len()`
/// must be a multiple of 4 and every row `H` long (`None` otherwise, nothing written).
/// Never inlined: one copy in flash, however many callers (its `asm!` loop is inlined in
/// it three times, once per pairing site and scan).
#[inline(never)]
pub fn first_layer<'w>(rows: impl InkedRows<'w>, acc: &mut [i32]) -> Option<usize> {
    let h = acc.len();
    if !h.is_multiple_of(4) {
        return None;
    }
    acc.fill(0);
    let mut ink = 0;
    let mut pending: Option<(&[u8], u32)> = None;
    rows.for_each(|p, row| {
        debug_assert_eq!(row.len(), h);
        ink += 1;
        match pending.take() {
            None => pending = Some((row, u32::from(p))),
            Some((first, xf)) => add_pair(acc, first, row, xf | u32::from(p) << 16),
        }
    });
    if let Some((row, xf)) = pending {
        add_pair(acc, row, row, xf);
    }
    Some(ink)
}

#[cfg(test)]
mod tests {
    use super::portable::*;
    use super::*;

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
        assert_eq!(rev16(0x1122_3344), 0x2211_4433);
    }

    #[test]
    fn a_pair_list_keeps_its_entries_inside_its_weights() {
        let words = [0u32; 16];
        let weights: &[u8] = bytemuck::cast_slice(&words);
        let mut slots = PairSlots::new();
        // A stride not a multiple of 16, weights not whole pairs, or not word-aligned.
        assert!(PairList::new(&mut slots, weights, 24).is_none());
        assert!(PairList::new(&mut slots, &weights[..48], 32).is_none());
        assert!(PairList::new(&mut slots, &weights[1..33], 32).is_none());
        let mut list = PairList::new(&mut slots, weights, 32).unwrap();
        // Two kept pairs (pixels 0–3) for two pairs of weights; ink in the second.
        let mut kept = [0u8; crate::quant::KEPT_BYTES];
        kept[0] = 0x0F;
        let ranks = PairRanks::of(&kept).unwrap();
        assert_eq!(ranks.pairs(), 2);
        let mut x = [0u8; INPUT];
        x[3] = 7;
        x[100] = 9; // not kept
        assert!(list.scan(&x, &ranks));
        assert_eq!(list.len(), 1);
        assert_eq!(list.values().collect::<std::vec::Vec<_>>(), [7 << 16]);
        assert!(
            !list.scan(&x, &PairRanks::of(&[]).unwrap()),
            "392 pairs are not two pairs of weights"
        );
        kept[0] = 0x07;
        assert!(PairRanks::of(&kept).is_none(), "pixel 2 without pixel 3");
        let mut sums = [7i32; 16];
        assert!(list.sums(&mut sums));
        assert_eq!(sums, [0; 16], "zero weights");
        assert!(
            !list.sums(&mut [0; 24]),
            "a third block is outside a 32-byte stride"
        );
        assert!(!list.sums(&mut [0; 12]), "not whole blocks");
    }

    /// The inked pixels' values and rows of `w1` (every pixel has a row).
    fn rows<'w>(
        w1: &'w [u8],
        x: &'w [u8; INPUT],
        h: usize,
    ) -> impl Iterator<Item = (u8, &'w [u8])> {
        w1.chunks_exact(h)
            .zip(x)
            .filter(|r| *r.1 != 0)
            .map(|(row, &p)| (p, row))
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
            let ink = first_layer(rows(&w1, &x, h), &mut got);
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
            first_layer(rows(&w1, &x, 8), &mut got);
            assert_eq!(got, want);
        }
        // Not a multiple of 4: refused (no hidden size pismo supports is one, `hyper.rs`).
        assert_eq!(first_layer(rows(&[0; INPUT * 6], &x, 6), &mut [0; 6]), None);
    }
}
