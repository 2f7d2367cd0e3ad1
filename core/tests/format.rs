//! The model file: round trip, corruption detection, version handling, frozen fixture.

use pismo_core::format::{self, FormatError, Meta, FORMAT_VERSION};
use pismo_core::hyper::{Hyper, Metrics};
use pismo_core::mlp::{Mlp, INPUT};
use pismo_core::rng::Rng;

const H: usize = 16;

fn model(seed: u64) -> Box<Mlp<H>> {
    let mut m: Box<Mlp<H>> = Box::new(bytemuck::Zeroable::zeroed());
    m.init(&mut Rng::new(seed));
    for (i, b) in m.b1.iter_mut().enumerate() {
        *b = i as f32 * 0.01;
    }
    m
}

fn meta() -> Meta<'static> {
    Meta {
        name: "fixture",
        version: 3,
        created_unix: 1_790_000_000,
        // Spelled out: the fixture must not change when defaults do.
        hyper: Hyper {
            hidden_size: H as u32,
            dropout_rate: 0.5,
            reg_lambda: 0.01,
            initial_lr: 0.1,
            decay: 0.05,
            momentum: 0.9,
            batch_size: 64,
            epochs: 20,
            patience: 5,
            seed: 42,
            val_size: 10_000,
            augment: false,
        },
        metrics: Metrics {
            epochs_run: 7,
            best_epoch: 5,
            train_loss: 0.25,
            val_loss: 0.125,
            val_accuracy: 0.96875,
            test_accuracy: Some(0.96),
        },
        run_id: "20261126-230000-abcdef",
        dataset: "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        parent: "",
        deskew: false,
    }
}

fn encode(m: &Mlp<H>, meta: &Meta<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; format::encoded_len(meta, m)];
    let n = format::encode(meta, m, &mut buf).unwrap();
    assert_eq!(n, buf.len());
    buf
}

fn probe_input() -> [f32; INPUT] {
    core::array::from_fn(|i| ((i * 7919) % 255) as f32 / 255.0)
}

#[test]
fn round_trip_keeps_meta_and_weights_exactly() {
    let m = model(1);
    let bytes = encode(&m, &meta());
    let decoded = format::decode(&bytes).unwrap();
    assert_eq!(decoded.meta, meta());
    assert_eq!(decoded.tensors.hidden_size(), H as u32);
    let mut back: Box<Mlp<H>> = Box::new(bytemuck::Zeroable::zeroed());
    decoded.tensors.load_into(&mut back).unwrap();
    assert_eq!(back.w1, m.w1);
    assert_eq!(back.b1, m.b1);
    assert_eq!(back.w2, m.w2);
    assert_eq!(back.b2, m.b2);
    // Metadata strings are borrowed from the input bytes, not copied.
    let range = bytes.as_ptr_range();
    assert!(range.contains(&decoded.meta.name.as_ptr()));
}

#[test]
fn encode_refuses_a_small_buffer() {
    let m = model(1);
    let mut small = vec![0u8; 100];
    let needed = format::encoded_len(&meta(), &m);
    assert_eq!(
        format::encode(&meta(), &m, &mut small),
        Err(FormatError::BufferTooSmall { needed })
    );
}

#[test]
fn every_truncation_is_rejected() {
    let bytes = encode(&model(1), &meta());
    for len in (0..bytes.len())
        .step_by(97)
        .chain([bytes.len() - 1, 13, 14, 15])
    {
        let err = format::decode(&bytes[..len]).unwrap_err();
        assert!(
            matches!(err, FormatError::Truncated { .. }),
            "len {len}: {err}"
        );
        assert!(err.to_string().contains("truncated"));
    }
}

#[test]
fn every_single_bit_flip_is_detected() {
    let bytes = encode(&model(2), &meta());
    let mut flipped = bytes.clone();
    // Every byte of the header and metadata, and a spread of the weights.
    let positions: Vec<usize> = (0..600).chain((600..bytes.len()).step_by(13)).collect();
    for &pos in &positions {
        for bit in [0u8, 3, 7] {
            flipped[pos] ^= 1 << bit;
            assert!(
                format::decode(&flipped).is_err(),
                "flip of bit {bit} at byte {pos} not detected"
            );
            flipped[pos] ^= 1 << bit;
        }
    }
    let flip = |pos: usize| {
        let mut b = bytes.clone();
        b[pos] ^= 0x10;
        format::decode(&b).unwrap_err()
    };
    assert_eq!(flip(0), FormatError::NotAModel);
    assert!(matches!(
        flip(bytes.len() / 2),
        FormatError::Checksum { .. }
    ));
    assert!(flip(bytes.len() / 2).to_string().contains("corrupted"));
}

#[test]
fn a_newer_version_asks_for_an_upgrade() {
    let mut bytes = encode(&model(1), &meta());
    bytes[8..10].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
    let err = format::decode(&bytes).unwrap_err();
    assert_eq!(
        err,
        FormatError::UnsupportedVersion {
            found: FORMAT_VERSION + 1,
            supported: FORMAT_VERSION
        }
    );
    assert!(err.to_string().contains("upgrade pismo"));
}

#[test]
fn non_finite_weights_are_refused_on_load() {
    let mut m = model(1);
    m.w2[3][4] = f32::NAN;
    let bytes = encode(&m, &meta());
    let decoded = format::decode(&bytes).unwrap();
    let mut back: Box<Mlp<H>> = Box::new(bytemuck::Zeroable::zeroed());
    assert_eq!(
        decoded.tensors.load_into(&mut back),
        Err(FormatError::NonFinite)
    );
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng::new(99);
    let valid = encode(&model(1), &meta());
    for len in [0usize, 1, 14, 18, 100, 4096] {
        for _ in 0..200 {
            let mut b: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
            if len >= 10 {
                b[..8].copy_from_slice(&format::MAGIC);
                b[8..10].copy_from_slice(&1u16.to_le_bytes());
            }
            let _ = format::decode(&b);
        }
    }
    // Random edits of a valid file, with the checksum fixed up so the body decoder is reached.
    for _ in 0..300 {
        let mut b = valid.clone();
        let pos = 14 + rng.below(400);
        b[pos] = rng.next_u64() as u8;
        let end = b.len() - 4;
        let crc = format::crc32(&b[..end]);
        b[end..].copy_from_slice(&crc.to_le_bytes());
        let _ = format::decode(&b);
    }
}

/// Version 1 files written by the first release stay readable, with the same predictions.
/// Regenerate (only when adding a NEW fixture for a new version) with
/// `PISMO_WRITE_FIXTURE=1 cargo test -p pismo-core --test format`.
#[test]
fn frozen_v1_fixture_still_decodes() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/model-v1-h16.pismo"
    );
    if std::env::var_os("PISMO_WRITE_FIXTURE").is_some() {
        std::fs::write(path, encode(&model(1), &meta())).unwrap();
    }
    let bytes = std::fs::read(path).expect("fixture present");
    assert_eq!(format::peek_version(&bytes), Ok(1));
    let decoded = format::decode(&bytes).unwrap();
    assert_eq!(decoded.meta, meta());
    let mut m: Box<Mlp<H>> = Box::new(bytemuck::Zeroable::zeroed());
    decoded.tensors.load_into(&mut m).unwrap();
    let p = m.predict_proba(&probe_input());
    // Recorded when the fixture was written.
    let golden: [f32; 10] = [
        0.16573907,
        0.054298952,
        0.08951635,
        0.09352303,
        0.08065696,
        0.0777461,
        0.0562254,
        0.13762777,
        0.13779283,
        0.10687359,
    ];
    for (a, b) in p.iter().zip(golden) {
        assert!((a - b).abs() < 1e-6, "{p:?} vs {golden:?}");
    }
}

#[test]
fn int8_round_trip_borrows_and_refuses_a_bad_scale() {
    use pismo_core::quant::{quantize, FirstLayer, QMlp};
    let m = model(1);
    let mut q: Box<QMlp<H>> = Box::new(bytemuck::Zeroable::zeroed());
    quantize(&m, 0.05, FirstLayer::Int8, &mut q);
    let view = q.view();
    let mut buf = vec![0u8; format::encoded_len_int8(&meta(), &view)];
    let n = format::encode_int8(&meta(), &view, &mut buf).unwrap();
    assert_eq!(n, buf.len());
    let decoded = format::decode(&buf).unwrap();
    assert_eq!(decoded.tensors.kind(), "int8");
    assert_eq!(decoded.tensors, format::Tensors::I8(view));
    let mut f: Box<Mlp<H>> = Box::new(bytemuck::Zeroable::zeroed());
    assert!(
        decoded.tensors.load_into(&mut f).is_err(),
        "int8 weights are not f32 weights"
    );
    // A zero activation scale, even with a valid checksum, is refused.
    q.act_scale = 0.0;
    let view = q.view();
    let mut bad = vec![0u8; format::encoded_len_int8(&meta(), &view)];
    format::encode_int8(&meta(), &view, &mut bad).unwrap();
    assert_eq!(format::decode(&bad).unwrap_err(), FormatError::NonFinite);
}

#[test]
fn the_deskew_flag_round_trips_in_f32_and_int8_files() {
    use pismo_core::quant::{quantize, FirstLayer, QMlp};
    let m = model(1);
    let on = Meta {
        deskew: true,
        ..meta()
    };
    let bytes = encode(&m, &on);
    assert_eq!(
        format::peek_version(&bytes),
        Ok(2),
        "a file without a kept-pixel bitmap stays version 2"
    );
    assert_eq!(format::decode(&bytes).unwrap().meta, on);
    let off = encode(&m, &meta());
    assert!(!format::decode(&off).unwrap().meta.deskew);
    // One byte after the body holds it; everything before it is the same.
    assert_eq!(off.len(), bytes.len());
    let flag = bytes.len() - 5;
    assert_eq!((off[flag], bytes[flag]), (0, 1));
    assert_eq!(off[10..flag], bytes[10..flag]);

    let mut q: Box<QMlp<H>> = Box::new(bytemuck::Zeroable::zeroed());
    quantize(&m, 0.05, FirstLayer::Int8, &mut q);
    let view = q.view();
    let mut buf = vec![0u8; format::encoded_len_int8(&on, &view)];
    format::encode_int8(&on, &view, &mut buf).unwrap();
    let decoded = format::decode(&buf).unwrap();
    assert!(decoded.meta.deskew);
    let format::Tensors::I8(v) = decoded.tensors else {
        panic!("int8 tensors");
    };
    assert!(v.deskew(), "the int8 view deskews as its file says");
    assert_eq!(v, view.with_deskew(true));
}

/// Version 2 files (the deskew flag after the body) stay readable. Regenerate only when
/// adding a new fixture for a new version, with
/// `PISMO_WRITE_FIXTURE_V2=1 cargo test -p pismo-core --test format`.
#[test]
fn frozen_v2_fixture_still_decodes() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/model-v2-h16-deskew.pismo"
    );
    let on = Meta {
        deskew: true,
        ..meta()
    };
    if std::env::var_os("PISMO_WRITE_FIXTURE_V2").is_some() {
        std::fs::write(path, encode(&model(1), &on)).unwrap();
    }
    let bytes = std::fs::read(path).expect("fixture present");
    assert_eq!(format::peek_version(&bytes), Ok(2));
    let decoded = format::decode(&bytes).unwrap();
    assert_eq!(decoded.meta, on);
    let mut m: Box<Mlp<H>> = Box::new(bytemuck::Zeroable::zeroed());
    decoded.tensors.load_into(&mut m).unwrap();
    let expected = model(1);
    assert_eq!(
        (m.w1, m.b1, m.w2, m.b2),
        (expected.w1, expected.b1, expected.w2, expected.b2)
    );
}

/// Model `seed`'s int8 copy keeping the first-layer rows of the pixels in the middle 20x20 of
/// the image only: the dense copy with the other rows zeroed, and the pruned file's bytes.
fn pruned_int8(seed: u64) -> (Box<pismo_core::quant::QMlp<H>>, Vec<u8>) {
    use pismo_core::quant::{quantize, FirstLayer, QMlp, QView, KEPT_BYTES};
    let mut q: Box<QMlp<H>> = Box::new(bytemuck::Zeroable::zeroed());
    quantize(&model(seed), 0.05, FirstLayer::Int8, &mut q);
    let keep = |i: usize| (4..24).contains(&(i / 28)) && (4..24).contains(&(i % 28));
    let mut kept = [0u8; KEPT_BYTES];
    let mut w1 = Vec::new();
    for (i, row) in q.w1.iter_mut().enumerate() {
        if keep(i) {
            kept[i / 8] |= 1 << (i % 8);
            w1.extend(row.iter().map(|&w| w as u8));
        } else {
            row.fill(0);
        }
    }
    let dense = q.view();
    let mut parts = dense.parts();
    parts[0] = &w1;
    let pruned = QView::new(H, parts, &kept, dense.act_scale()).unwrap();
    assert_eq!(
        pruned.weight_bytes(),
        dense.weight_bytes() - (784 - 400) * H + KEPT_BYTES
    );
    let mut buf = vec![0u8; format::encoded_len_int8(&meta(), &pruned)];
    format::encode_int8(&meta(), &pruned, &mut buf).unwrap();
    (q, buf)
}

/// An int8 model keeping the first-layer rows of some pixels only: written as version 3 with
/// its bitmap, read back, and answering as the dense model with the dropped rows zeroed. A
/// bitmap that disagrees with `w1` is refused.
#[test]
fn a_pruned_int8_model_round_trips_as_version_3_and_answers_as_with_zero_rows() {
    use pismo_core::quant::{Work, KEPT_BYTES};
    let (dense, buf) = pruned_int8(5);
    let dense = dense.view();
    assert_eq!(format::peek_version(&buf), Ok(3));
    let format::Tensors::I8(back) = format::decode(&buf).unwrap().tensors else {
        panic!("int8 tensors");
    };
    assert_eq!(back.parts()[1..], dense.parts()[1..]);
    assert_eq!(back.parts()[0].len(), 400 * H);
    let mut rng = Rng::new(9);
    let (mut wa, mut wb) = (Work::<H>::new(), Work::<H>::new());
    for _ in 0..20 {
        let x: [u8; INPUT] = std::array::from_fn(|_| (rng.next_u64() % 3 * 127) as u8);
        assert_eq!(back.logits(&x, &mut wa), dense.logits(&x, &mut wb));
    }
    let mut f32_back: Box<Mlp<H>> = Box::new(bytemuck::Zeroable::zeroed());
    let mut f32_dense: Box<Mlp<H>> = Box::new(bytemuck::Zeroable::zeroed());
    assert!(back.dequantize(&mut f32_back) && dense.dequantize(&mut f32_dense));
    assert_eq!(f32_back.w1, f32_dense.w1);

    // One more pixel set in the bitmap than `w1` has rows for: refused, not misread.
    let mut bad = buf.clone();
    let bitmap = bad.len() - 4 - KEPT_BYTES;
    bad[bitmap] |= 1;
    let crc_at = bad.len() - 4;
    let crc = format::crc32(&bad[..crc_at]);
    bad[crc_at..].copy_from_slice(&crc.to_le_bytes());
    assert!(matches!(
        format::decode(&bad),
        Err(FormatError::Malformed(_))
    ));
}

/// Version 3 files (a pruned int8 model's bitmap after the deskew flag) stay readable, byte
/// for byte as written today. Regenerate only when adding a new fixture for a new version,
/// with `PISMO_WRITE_FIXTURE_V3=1 cargo test -p pismo-core --test format`.
#[test]
fn frozen_v3_fixture_still_decodes() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/model-v3-h16-int8-pruned.pismo"
    );
    let (_, fresh) = pruned_int8(2);
    if std::env::var_os("PISMO_WRITE_FIXTURE_V3").is_some() {
        std::fs::write(path, &fresh).unwrap();
    }
    let bytes = std::fs::read(path).expect("fixture present");
    assert_eq!(format::peek_version(&bytes), Ok(3));
    assert_eq!(format::decode(&bytes).unwrap().meta, meta());
    assert_eq!(bytes, fresh);
}
