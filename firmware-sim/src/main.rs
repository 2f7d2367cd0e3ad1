//! pismo's int8 digit recognizer as firmware for a Cortex-M4F (`thumbv7em-none-eabihf`).
//!
//! The model file is linked into flash (`include_bytes!`) and read in place; start-up checks
//! it with [`device::start`] and refuses a corrupted one (message, exit status 1). Images
//! arrive as frames (`pismo_core::device`) read from the host file `frames.bin` through
//! semihosting — the simulated serial link; each reply (index, label, digit, confidence, or
//! the frame's error) is written to the host file `answers.txt`; the report goes to the
//! host's stdout. Working memory and the frame buffer are statics; no allocator is linked
//! (nothing here or in `pismo-core` without `std` can allocate: the link would fail).
//!
//! Run it with `scripts/firmware-sim`, which builds it, prepares the frames and checks the
//! accuracy against `pismo eval`.
#![no_std]
#![no_main]

use core::fmt::Write;

use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hio, nr, syscall};
use pismo_core::device::{self, Link};
use pismo_core::mlp::INPUT;
use pismo_core::quant::Work;

include!(concat!(env!("OUT_DIR"), "/board.rs"));

/// The model file, in flash.
static MODEL: &[u8] = include_bytes!(env!("PISMO_FW_MODEL_PATH"));

/// Cycles per executed multiply-accumulate of the latency estimate (see the README,
/// "Firmware simulation", for the derivation and its sources).
const CYCLES_PER_MAC: u64 = 5;

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    if let Ok(mut out) = hio::hstdout() {
        let _ = writeln!(out, "firmware panic: {info}");
    }
    exit(debug::EXIT_FAILURE)
}

/// Ends the simulation with `status` (QEMU exits with it); a real board would sleep.
fn exit(status: debug::ExitStatus) -> ! {
    debug::exit(status);
    loop {
        cortex_m::asm::wfi();
    }
}

/// A host file opened through semihosting.
struct HostFile(usize);

impl HostFile {
    /// `mode`: one of `nr::open`. `path` ends with a NUL.
    fn open(path: &str, mode: usize) -> Option<HostFile> {
        debug_assert!(path.ends_with('\0'));
        #[allow(unsafe_code)]
        // SAFETY: SYS_OPEN reads `path.len() - 1` bytes from a live, NUL-terminated string.
        let fd = unsafe { syscall!(OPEN, path.as_ptr(), mode, path.len() - 1) } as isize;
        (fd >= 0).then_some(HostFile(fd as usize))
    }

    fn write(&mut self, bytes: &[u8]) {
        #[allow(unsafe_code)]
        // SAFETY: SYS_WRITE reads `bytes.len()` bytes from a live slice.
        unsafe {
            syscall!(WRITE, self.0, bytes.as_ptr(), bytes.len());
        }
    }
}

impl Link for HostFile {
    fn read(&mut self, buf: &mut [u8]) -> usize {
        #[allow(unsafe_code)]
        // SAFETY: SYS_READ writes at most `buf.len()` bytes into a live, exclusive slice, and
        // returns how many it did NOT read.
        let left = unsafe { syscall!(READ, self.0, buf.as_mut_ptr(), buf.len()) };
        buf.len().saturating_sub(left)
    }
}

/// One reply line, formatted on the stack and written with a single semihosting call.
struct Line {
    buf: [u8; 96],
    len: usize,
}

impl Write for Line {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let end = self.len + s.len();
        self.buf
            .get_mut(self.len..end)
            .ok_or(core::fmt::Error)?
            .copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

fn fail(out: &mut hio::HostStream, msg: core::fmt::Arguments) -> ! {
    let _ = writeln!(out, "firmware: error: {msg}");
    exit(debug::EXIT_FAILURE)
}

/// Addresses the linker script (cortex-m-rt's link.x) defines.
fn section_bounds() -> [usize; 6] {
    extern "C" {
        static __erodata: u8;
        static __sidata: u8;
        static __sdata: u8;
        static __edata: u8;
        static __sheap: u8;
        static _stack_start: u8;
    }
    [
        core::ptr::addr_of!(__erodata) as usize,
        core::ptr::addr_of!(__sidata) as usize,
        core::ptr::addr_of!(__sdata) as usize,
        core::ptr::addr_of!(__edata) as usize,
        core::ptr::addr_of!(__sheap) as usize,
        core::ptr::addr_of!(_stack_start) as usize,
    ]
}

/// Deepest stack use since reset: the bytes below `top` whose paint (cortex-m-rt's
/// `paint-stack`, done before `main`) has been scrubbed off.
fn peak_stack(bottom: usize, top: usize) -> usize {
    let mut p = bottom;
    while p < top {
        #[allow(unsafe_code)]
        // SAFETY: `bottom..top` is the stack region, word-aligned (link.x asserts it), and
        // readable; a volatile read of a word there has no side effect.
        let w = unsafe { core::ptr::read_volatile(p as *const u32) };
        if w != cortex_m_rt::STACK_PAINT_VALUE {
            break;
        }
        p += 4;
    }
    top - p
}

#[entry]
fn main() -> ! {
    let mut out = match hio::hstdout() {
        Ok(o) => o,
        Err(()) => exit(debug::EXIT_FAILURE),
    };
    let model = match device::start(MODEL) {
        Ok(q) => q,
        Err(e) => fail(&mut out, format_args!("{e} ({MODEL_FILE})")),
    };
    let (work, image) = match (
        cortex_m::singleton!(: Work<HIDDEN> = Work::new()),
        cortex_m::singleton!(: [u8; INPUT] = [0; INPUT]),
    ) {
        (Some(w), Some(i)) => (w, i),
        _ => fail(&mut out, format_args!("statics taken twice")),
    };
    let Some(mut frames) = HostFile::open("frames.bin\0", nr::open::R_BINARY) else {
        fail(&mut out, format_args!("cannot open frames.bin on the host"))
    };
    let Some(mut answers) = HostFile::open("answers.txt\0", nr::open::W_TRUNC_BINARY) else {
        fail(
            &mut out,
            format_args!("cannot create answers.txt on the host"),
        )
    };

    let tally = device::serve(&model, &mut frames, image, work, |i, label, reply| {
        let mut line = Line {
            buf: [0; 96],
            len: 0,
        };
        let label = label.map_or(-1, i32::from);
        let _ = match reply {
            Ok(a) => writeln!(line, "{i} {label} {} {:.4}", a.digit, a.confidence),
            Err(e) => writeln!(line, "{i} {label} error: {e}"),
        };
        answers.write(&line.buf[..line.len]);
    });

    let [erodata, sidata, sdata, edata, sheap, stack_top] = section_bounds();
    let flash_used = erodata.max(sidata + (edata - sdata));
    let static_ram = sheap - sdata;
    let stack = peak_stack(sheap, stack_top);
    let answered = tally.frames - tally.errors;
    let dense = model.macs();
    let h = model.hidden_size();
    // Executed MACs: the first layer skips blank pixels.
    let executed = tally.ink * h as u64 / u64::from(answered.max(1)) + (h * 10) as u64;
    let cycles = executed * CYCLES_PER_MAC;
    let micros = cycles / u64::from(CLOCK_MHZ);
    let _ = writeln!(
        out,
        "pismo firmware-sim report
board                {BOARD} ({BOARD_WHAT}): {FLASH_BYTES} B flash, {RAM_BYTES} B RAM
model                {MODEL_FILE}: 784-{h}-10 int8
model flash bytes    {} (file; weights and scales read in place: {})
total flash bytes    {flash_used} ({:.1} % of the board)
static RAM bytes     {static_ram} (working memory {} + frame buffer {INPUT})
peak stack bytes     {stack} (stack painting)
RAM bytes in use     {} ({:.1} % of the board)
MACs per inference   {dense} dense; {executed} executed on average (blank pixels skipped)
frames               {} ({} answered, {} error replies)
accuracy             {}/{} = {:.2} %
latency estimate     {micros} us per image at {CLOCK_MHZ} MHz ({CYCLES_PER_MAC} cycles per executed MAC; not QEMU time)",
        MODEL.len(),
        model.weight_bytes(),
        100.0 * flash_used as f32 / FLASH_BYTES as f32,
        Work::<HIDDEN>::BYTES,
        static_ram + stack,
        100.0 * (static_ram + stack) as f32 / RAM_BYTES as f32,
        tally.frames,
        answered,
        tally.errors,
        tally.correct,
        tally.labelled,
        100.0 * tally.correct as f32 / tally.labelled.max(1) as f32,
    );
    exit(debug::EXIT_SUCCESS)
}
