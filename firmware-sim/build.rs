//! Picks the model and the board profile, and writes the linker's memory map.
//!
//! - `PISMO_FW_MODEL`: the int8 model file to embed (default `models/mnist-mcu-int8.v5.pismo`;
//!   a relative path is taken from the repository root).
//! - `PISMO_FW_BOARD`: a profile below (default `stm32f401rc`, 256 KB flash / 64 KB RAM), or
//!   `FLASH_KB/RAM_KB` for any other budget, e.g. `96/16`.
//!
//! The memory map keeps the QEMU machine's addresses (mps2-an386: code at 0x0000_0000, data at
//! 0x2000_0000) and the board's lengths, so the link fails, with a message naming the board,
//! when the firmware does not fit.

use std::path::{Path, PathBuf};

/// name, flash KB, RAM KB, core clock MHz of the latency estimate, description
const BOARDS: &[(&str, u32, u32, u32, &str)] = &[
    (
        "stm32f401rc",
        256,
        64,
        84,
        "STM32F401RC, Cortex-M4F at 84 MHz",
    ),
    (
        "stm32f411re",
        512,
        128,
        100,
        "STM32F411RE, Cortex-M4F at 100 MHz",
    ),
    (
        "stm32g431k6",
        32,
        32,
        170,
        "STM32G431K6, Cortex-M4F at 170 MHz",
    ),
];

/// Stack the firmware needs below its statics (its measured peak is under 1 KB).
const MIN_STACK: u32 = 4096;

fn main() {
    println!("cargo:rerun-if-env-changed=PISMO_FW_MODEL");
    println!("cargo:rerun-if-env-changed=PISMO_FW_BOARD");
    println!("cargo:rerun-if-changed=build.rs");
    let model_path = model_path();
    println!("cargo:rerun-if-changed={}", model_path.display());
    let bytes = std::fs::read(&model_path).unwrap();
    let board = board();
    let flash = board.flash_kb * 1024;
    if bytes.len() as u32 > flash {
        panic!(
            "\n\nthe model {} is {} bytes, more than board {}'s {flash} bytes of flash: \
             pick a smaller model (PISMO_FW_MODEL) or a larger board (PISMO_FW_BOARD)\n",
            model_path.display(),
            bytes.len(),
            board.name
        );
    }
    // The hidden size sizes the static working memory. A model that does not decode still
    // builds (so a corrupted model can be tested): the firmware refuses it at start-up.
    let hidden = match pismo_core::device::start(&bytes) {
        Ok(q) => q.hidden_size(),
        Err(e) => {
            println!("cargo:warning=the embedded model will be refused at start-up: {e}");
            16
        }
    };
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let (embedded, kernel) = embedded_model(&bytes, &model_path, &out);
    write_link_scripts(&out, &board);
    let Board {
        name,
        ram_kb,
        mhz,
        what,
        ..
    } = &board;
    std::fs::write(
        out.join("board.rs"),
        format!(
            "/// Board profile (build.rs).\npub const BOARD: &str = {name:?};\n\
             pub const BOARD_WHAT: &str = {what:?};\npub const FLASH_BYTES: usize = {flash};\n\
             pub const RAM_BYTES: usize = {};\npub const CLOCK_MHZ: u32 = {mhz};\n\
             pub const HIDDEN: usize = {hidden};\npub const MODEL_FILE: &str = {:?};\n\
             pub const KERNEL: &str = {kernel:?};\n",
            ram_kb * 1024,
            model_path.file_name().unwrap().to_string_lossy()
        ),
    )
    .unwrap();
    println!("cargo:rustc-env=PISMO_FW_MODEL_PATH={}", embedded.display());
}

/// The file to embed for `model` (the bytes of `path`) and the first-layer kernel the
/// firmware runs on it: a model with a 7-bit first layer becomes its paired image in `out`
/// (`pismo_core::paired`, cfg `pismo_paired`); any other is embedded as it is, for the
/// kernel that pairs inked pixels at run time.
fn embedded_model(model: &[u8], path: &Path, out: &Path) -> (PathBuf, &'static str) {
    use pismo_core::paired::{self, ImageError};
    println!("cargo::rustc-check-cfg=cfg(pismo_paired)");
    // An image is the file and at most 3 alignment bytes: no need to size it first.
    let mut image = vec![0u8; model.len() + 3];
    match paired::write_image(model, &mut image) {
        Ok(n) => {
            let at = out.join("model.paired");
            std::fs::write(&at, &image[..n]).unwrap();
            println!("cargo:rustc-cfg=pismo_paired");
            (
                at,
                "paired 7-bit: SMLAD on interleaved pixel pairs, 8 sums in registers",
            )
        }
        Err(e) => {
            if matches!(e, ImageError::NotSevenBit | ImageError::Hidden(_)) {
                println!("cargo:warning=no paired first layer: {e}");
            }
            (
                path.to_path_buf(),
                "8-bit: SMLAD on inked pixels paired at run time",
            )
        }
    }
}

/// The model file `PISMO_FW_MODEL` names, made absolute.
fn model_path() -> PathBuf {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("..");
    let model = std::env::var("PISMO_FW_MODEL")
        .unwrap_or_else(|_| "models/mnist-mcu-int8.v5.pismo".to_string());
    let mut model_path = PathBuf::from(&model);
    if model_path.is_relative() {
        model_path = root.join(model_path);
    }
    model_path
        .canonicalize()
        .unwrap_or_else(|e| panic!("PISMO_FW_MODEL={model}: {e}"))
}

/// A board profile: its name, flash and RAM, the core clock of the latency estimate, and
/// what it is.
struct Board {
    name: String,
    flash_kb: u32,
    ram_kb: u32,
    mhz: u32,
    what: String,
}

/// The board `PISMO_FW_BOARD` names: one of [`BOARDS`], or a `FLASH_KB/RAM_KB` budget.
fn board() -> Board {
    let board = std::env::var("PISMO_FW_BOARD").unwrap_or_else(|_| "stm32f401rc".to_string());
    if let Some(&(name, flash_kb, ram_kb, mhz, what)) = BOARDS.iter().find(|b| b.0 == board) {
        return Board {
            name: name.to_string(),
            flash_kb,
            ram_kb,
            mhz,
            what: what.to_string(),
        };
    }
    let parsed = board
        .split_once('/')
        .and_then(|(f, r)| Some((f.parse::<u32>().ok()?, r.parse::<u32>().ok()?)));
    let Some((flash_kb, ram_kb)) = parsed else {
        let names: Vec<_> = BOARDS.iter().map(|b| b.0).collect();
        panic!("PISMO_FW_BOARD={board}: not one of {names:?} nor FLASH_KB/RAM_KB");
    };
    // The latency estimate of a custom budget uses the default board's clock.
    Board {
        name: board.clone(),
        flash_kb,
        ram_kb,
        mhz: BOARDS[0].3,
        what: format!("custom budget, clock of {}", BOARDS[0].4),
    }
}

/// Writes the linker's memory map of `board` into `out`, and the check that the statics
/// leave the firmware a minimum stack.
fn write_link_scripts(out: &std::path::Path, board: &Board) {
    let Board {
        name,
        flash_kb,
        ram_kb,
        what,
        ..
    } = board;
    let memory = format!(
        "/* board {name}: {what} */
MEMORY
{{
  FLASH : ORIGIN = 0x00000000, LENGTH = {flash_kb}K
  RAM   : ORIGIN = 0x20000000, LENGTH = {ram_kb}K
}}
"
    );
    std::fs::write(out.join("memory.x"), memory).unwrap();
    // Checked by the linker after placement: statics plus a minimum stack must fit in RAM.
    let check = format!(
        "ASSERT(_stack_start - _stack_end >= {MIN_STACK}, \"
board {name}: the statics leave less than {MIN_STACK} bytes of stack in its {ram_kb} KB of RAM;
pick a larger board (PISMO_FW_BOARD) or a smaller model (PISMO_FW_MODEL)\");
"
    );
    std::fs::write(out.join("board-check.x"), check).unwrap();
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rustc-link-arg=-Tboard-check.x");
}
