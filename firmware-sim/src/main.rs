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
use pismo_core::decimal::fixed;
use pismo_core::device::{self, Answer, FrameError, Link, Network};
use pismo_core::mlp::INPUT;
use pismo_core::quant::Work;

include!(concat!(env!("OUT_DIR"), "/board.rs"));

/// Bytes at a word-aligned address.
#[repr(C, align(4))]
struct Aligned<B: ?Sized>(B);

/// The model in flash: a model file, or (`pismo_paired`, set by build.rs for a model with a
/// 7-bit first layer) its paired image (`pismo_core::paired`), whose first layer the LDRDs
/// of the paired kernel read, hence word-aligned.
static MODEL: &Aligned<[u8]> = &Aligned(*include_bytes!(env!("PISMO_FW_MODEL_PATH")));

/// Checks the embedded model and borrows it in place.
#[cfg(pismo_paired)]
fn start() -> Result<impl Network, device::StartError> {
    device::start_paired(&MODEL.0)
}

/// Checks the embedded model and borrows it in place.
#[cfg(not(pismo_paired))]
fn start() -> Result<impl Network, device::StartError> {
    device::start(&MODEL.0)
}

/// Cycles per measured instruction of the latency estimate (`firmware-sim/README.md`,
/// "Latency"): the paired kernel's loop, 18 instructions, takes about 26 cycles by the
/// Cortex-M4 TRM's timings (three LDRDs of 3 cycles, an ADD, four REV16s and eight SMLADs
/// of one, a compare and a taken branch), rounded up to 1.5; the flash wait states the
/// STM32F4's ART accelerator does not hide come on top. 1 cycle per instruction is the
/// floor (the core issues at most one per cycle).
#[cfg(pismo_paired)]
const CYCLES_PER_INSTRUCTION: f32 = 1.5;

/// As above for the kernel that pairs inked pixels at run time: its loop, 16 instructions,
/// takes about 27 cycles (two loads, LDM and STM of four words, ten one-cycle DSP and ALU
/// instructions, a taken branch).
#[cfg(not(pismo_paired))]
const CYCLES_PER_INSTRUCTION: f32 = 1.7;

/// Instructions of one iteration of [`calibration_loop`].
const LOOP_INSTRUCTIONS: u64 = 2;
/// Iterations of the calibration loop.
const LOOP_ITERATIONS: u32 = 1_000_000;

/// Runs exactly `2·n` instructions (`subs`, `bne`) for `n ≥ 1`: a loop of known length, to
/// check what one SysTick tick is worth in instructions under `qemu -icount`.
#[inline(never)]
fn calibration_loop(n: u32) {
    #[allow(unsafe_code)]
    // SAFETY: counts a register down to zero; touches no memory, no stack.
    unsafe {
        core::arch::asm!("1:", "subs {n}, #1", "bne 1b", n = inout(reg) n => _,
                         options(nomem, nostack));
    }
}

/// SysTick's current value (a 24-bit down-counter on the core clock).
#[inline(always)]
fn now() -> u32 {
    cortex_m::peripheral::SYST::get_current()
}

/// Ticks from `start` to `end` of the down-counter (fewer than 2²⁴ apart).
fn ticks(start: u32, end: u32) -> u64 {
    u64::from(start.wrapping_sub(end) & 0x00FF_FFFF)
}

/// Per-inference counts in SysTick ticks: whole inferences and first layers alone.
#[derive(Debug, Default)]
struct Counts {
    n: u64,
    sum: u64,
    max: u64,
    layer1_sum: u64,
    layer1_max: u64,
    /// Inked pixels of the network's input (after deskewing), summed.
    ink: u64,
}

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

/// One reply line, formatted on the stack and written with a single semihosting call
/// (the longest, an error line, stays well under this).
type Line = heapless::String<96>;

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
    let model = match start() {
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
    let clock = start_clock(&mut out);
    let mut counts = Counts::default();
    let tally = device::serve_with(
        &model,
        &mut frames,
        image,
        work,
        counts.timed(),
        |i, label, reply| {
            let mut line = Line::new();
            let label = label.map_or(-1, i32::from);
            let _ = match reply {
                Ok(a) => writeln!(line, "{i} {label} {} {}", a.digit, fixed(a.confidence, 4)),
                Err(e) => writeln!(line, "{i} {label} error: {e}"),
            };
            answers.write(line.as_bytes());
        },
    );
    report(&mut out, &model, &tally, &counts, &clock);
    exit(debug::EXIT_SUCCESS)
}

/// What one SysTick tick is worth, measured on [`calibration_loop`].
struct Clock {
    /// Instructions of the loop.
    known: u64,
    /// Ticks it took (less a reading's own cost).
    calib: u64,
    /// Instructions per tick.
    per_tick: f32,
}

/// Starts SysTick free-running on the core clock and measures it. Under `qemu -icount
/// shift=0` the emulator's clock advances 1 ns per executed instruction, so its ticks count
/// instructions; the loop of known length says how many per tick (and the empty interval
/// what a reading costs). Inlined into `main`, as [`report`] is: the steps of `main` cost no
/// flash of their own.
#[inline(always)]
fn start_clock(out: &mut hio::HostStream) -> Clock {
    let Some(mut cp) = cortex_m::Peripherals::take() else {
        fail(out, format_args!("core peripherals taken twice"))
    };
    cp.SYST
        .set_clock_source(cortex_m::peripheral::syst::SystClkSource::Core);
    cp.SYST.set_reload(0x00FF_FFFF);
    cp.SYST.clear_current();
    cp.SYST.enable_counter();
    let t0 = now();
    let t1 = now();
    calibration_loop(LOOP_ITERATIONS);
    let t2 = now();
    let empty = ticks(t0, t1);
    let calib = ticks(t1, t2).saturating_sub(empty);
    let known = LOOP_INSTRUCTIONS * u64::from(LOOP_ITERATIONS);
    if calib == 0 {
        fail(
            out,
            format_args!("SysTick does not count (run under qemu with -icount shift=0)"),
        );
    }
    Clock {
        known,
        calib,
        per_tick: known as f32 / calib as f32,
    }
}

impl Counts {
    /// [`device::answer`], timed into these counts, with the first layer alone timed again
    /// on the input the network saw: the `infer` of [`device::serve_with`] (a closure as
    /// before it was a step of its own, so the timed code compiles as it did).
    fn timed<N: Network>(
        &mut self,
    ) -> impl FnMut(&N, &[u8; INPUT], &mut Work<HIDDEN>) -> Result<Answer, FrameError> + '_ {
        |model: &N, image: &[u8; INPUT], work: &mut Work<HIDDEN>| {
            let a = now();
            let answer = device::answer(model, image, work);
            let b = now();
            // The first layer alone, on the input the network saw.
            let x = if model.deskew() {
                pismo_core::deskew::deskew_bytes(image)
            } else {
                *image
            };
            let c = now();
            let ink = model.first_layer(&x, work).unwrap_or(0);
            let d = now();
            let (whole, layer1) = (ticks(a, b), ticks(c, d));
            self.n += 1;
            self.sum += whole;
            self.max = self.max.max(whole);
            self.layer1_sum += layer1;
            self.layer1_max = self.layer1_max.max(layer1);
            self.ink += ink as u64;
            answer
        }
    }
}

/// Writes the report: the board, flash and RAM in use, the frames and accuracy of `tally`,
/// and the instructions `counts` measured, in `clock`'s instructions per tick.
#[inline(always)]
fn report(
    out: &mut hio::HostStream,
    model: &impl Network,
    tally: &device::Tally,
    counts: &Counts,
    clock: &Clock,
) {
    let Clock {
        known,
        calib,
        per_tick,
    } = *clock;
    let [erodata, sidata, sdata, edata, sheap, stack_top] = section_bounds();
    let flash_used = erodata.max(sidata + (edata - sdata));
    let static_ram = sheap - sdata;
    let stack = peak_stack(sheap, stack_top);
    let answered = tally.frames - tally.errors;
    let dense = model.macs();
    let h = model.hidden_size() as u64;
    let n = counts.n.max(1);
    let instr = |t: u64| t as f32 * per_tick;
    // Executed MACs: the first layer skips blank pixels (of the deskewed input).
    let layer1_macs = counts.ink * h;
    let executed = (layer1_macs + counts.n * h * 10) as f32 / n as f32;
    let mean = instr(counts.sum) / n as f32;
    let layer1_mean = instr(counts.layer1_sum) / n as f32;
    // Latency estimate: 1 cycle per instruction plus wait states (firmware-sim/README.md, "Latency").
    let floor = mean / CLOCK_MHZ as f32;
    let micros = mean * CYCLES_PER_INSTRUCTION / CLOCK_MHZ as f32;
    let _ = writeln!(
        out,
        "pismo firmware-sim report
board                {BOARD} ({BOARD_WHAT}): {FLASH_BYTES} B flash, {RAM_BYTES} B RAM
model                {MODEL_FILE}: 784-{h}-10 int8
first layer kernel   {KERNEL}
model flash bytes    {} (embedded; weights and scales read in place: {})
total flash bytes    {flash_used} ({} % of the board)
static RAM bytes     {static_ram} (working memory {} + frame buffer {INPUT})
peak stack bytes     {stack} (stack painting)
RAM bytes in use     {} ({} % of the board)
MACs per inference   {dense} dense; {} executed on average (blank pixels skipped)
frames               {} ({} answered, {} error replies)
accuracy             {}/{} = {} %
counter check        {known} instructions of a known loop = {calib} SysTick ticks: {} instructions per tick
instructions         {} per inference on average, {} at most (QEMU icount, over {} images)
first layer          {} instructions on average, {} at most: {} per executed MAC ({} inked pixels x {h})
per executed MAC     {} instructions (whole inference)
latency estimate     {} us per image at {CLOCK_MHZ} MHz, at least {} (estimate: {} cycles per measured instruction, floor 1; not QEMU time)",
        MODEL.0.len(),
        model.weight_bytes(),
        fixed(100.0 * flash_used as f32 / FLASH_BYTES as f32, 1),
        Work::<HIDDEN>::BYTES,
        static_ram + stack,
        fixed(100.0 * (static_ram + stack) as f32 / RAM_BYTES as f32, 1),
        fixed(executed, 0),
        tally.frames,
        answered,
        tally.errors,
        tally.correct,
        tally.labelled,
        fixed(100.0 * tally.correct as f32 / tally.labelled.max(1) as f32, 2),
        fixed(per_tick, 3),
        fixed(mean, 0),
        fixed(instr(counts.max), 0),
        counts.n,
        fixed(layer1_mean, 0),
        fixed(instr(counts.layer1_max), 0),
        fixed(instr(counts.layer1_sum) / layer1_macs.max(1) as f32, 2),
        fixed(counts.ink as f32 / n as f32, 1),
        fixed(mean / executed, 2),
        fixed(micros, 0),
        fixed(floor, 0),
        fixed(CYCLES_PER_INSTRUCTION, 1),
    );
}
