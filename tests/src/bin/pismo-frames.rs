//! The host side of the firmware's serial link: writes MNIST IDX images and labels as the
//! frames `pismo_core::device` reads (3-byte header + 784 pixels each).
//!
//! usage: pismo-frames IMAGES LABELS OUT [--bad-frame-after K]
//!
//! `--bad-frame-after K` inserts, after the K-th image, one frame of 783 bytes (no label),
//! which the firmware must answer with an error and skip.

use std::process::ExitCode;

use pismo_core::device::{write_frame, HEADER};
use pismo_core::idx;

fn run(args: &[String]) -> Result<(), String> {
    let (images, labels, out, bad_after) = match args {
        [i, l, o] => (i, l, o, None),
        [i, l, o, flag, k] if flag == "--bad-frame-after" => {
            let k: usize = k.parse().map_err(|_| format!("not a count: {k}"))?;
            (i, l, o, Some(k))
        }
        _ => return Err("usage: pismo-frames IMAGES LABELS OUT [--bad-frame-after K]".into()),
    };
    let read = |p: &String| std::fs::read(p).map_err(|e| format!("{p}: {e}"));
    let (ib, lb) = (read(images)?, read(labels)?);
    let imgs = idx::parse_images(&ib).map_err(|e| format!("{images}: {e}"))?;
    let labs = idx::parse_labels(&lb).map_err(|e| format!("{labels}: {e}"))?;
    if imgs.count != labs.len() {
        return Err(format!("{} images but {} labels", imgs.count, labs.len()));
    }
    let mut buf = vec![0u8; (imgs.count + 1) * (HEADER + imgs.pixels())];
    let mut at = 0;
    for (i, (im, &y)) in imgs.iter().zip(labs).enumerate() {
        at += write_frame(Some(y), im, &mut buf[at..]).ok_or("frame too long")?;
        if bad_after == Some(i + 1) {
            at += write_frame(None, &im[1..], &mut buf[at..]).ok_or("frame too long")?;
        }
    }
    std::fs::write(out, &buf[..at]).map_err(|e| format!("{out}: {e}"))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pismo-frames: {e}");
            ExitCode::FAILURE
        }
    }
}
