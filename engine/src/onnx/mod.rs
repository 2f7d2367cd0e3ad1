//! A model as a standard ONNX file (`pismo models export --format onnx`), for onnxruntime
//! and other ONNX runtimes, in Python, in a browser (onnxruntime-web) or behind `mlflow
//! models serve`. Every model exports, f32 or int8, and the graph is the whole model: a
//! caller gives it the 28x28 image as pismo's preprocessing leaves it and gets pismo's
//! probabilities.
//!
//! ## The graph
//! Operators of the default ONNX domain only, opset [`OPSET`]; `N` is a dynamic batch.
//!
//! ```text
//! f32 model:   input float32[N,784] ─ [deskew] ─ Gemm(w1, b1) ─ Relu ─ Gemm(w2ᵀ, b2) ─► logits
//! int8 model:  input ─ Clip(0, 1)·255, rounded ─ [deskew, rounded] ─ Cast u8
//!                ─ MatMulInteger(q1) ─ Cast ─ ·s1/255 + b1 ─ Relu ─ /act_scale, rounded,
//!                  Min 255 ─ Cast u8 ─ MatMulInteger(q2ᵀ) ─ Cast ─ ·s2 ·act_scale + b2 ─► logits
//! both:        logits ─ Softmax ─► probabilities                                  float32[N,10]
//! ```
//!
//! The input is the image row-major after [`pismo_core::preprocess`] (ink `1.0`, background
//! `0.0`; an MNIST byte `b` is `b / 255`). `[deskew]` is there when the model deskews
//! ([`META_DESKEW`]): [`deskew`] builds it from standard operators.
//!
//! **f32 models**: the weights are initializers in pismo's own layout: `w1` is `(784, H)`
//! (input-major, so the first Gemm takes it as it is) and `w2` is `(10, H)` (the second Gemm
//! transposes it, `transB = 1`). The sums run in the runtime's order, so the probabilities
//! agree with pismo's to about 1e-7.
//!
//! **int8 models** are an integer graph computing what [`pismo_core::quant`] computes, operation
//! for operation: `MatMulInteger` (`u8 × i8 → i32`, exact as pismo's integer sums), the
//! requantization with pismo's `f32` operations in pismo's order (`s1/255` is the constant
//! pismo multiplies by), and pismo's rounding, half away from zero ([`round_half_away`]; ONNX's
//! `Round` and `QuantizeLinear` round half to even). The logits are pismo's to the bit (the
//! test checks it on the 10000 MNIST test images); only the runtime's Softmax differs in the
//! last bits. A dequantized f32 graph (`w = q·s`, no activation rounding) was measured and
//! not taken: on the MNIST test images, given pismo's own deskewed bytes, its probabilities
//! are up to 5.5e-3 from pismo's (722 of 10000 images beyond 1e-4).

mod deskew;
mod proto;

use crate::model::AnyMlp;
use pismo_core::mlp::{CLASSES, INPUT};
use pismo_core::quant::QView;
use proto::{model_proto, operator_set_id, string_entry, Attr, Elem, Graph, Message};

/// The opset of the default domain the graph is written for (Softmax with `axis = -1` on the
/// class axis, ReduceSum with its axes as an input, GatherElements, MatMulInteger, Scan).
pub const OPSET: i64 = 13;
/// The IR version of ONNX 1.8, the release that introduced opset 13.
pub const IR_VERSION: i64 = 7;
/// The graph's input.
pub const INPUT_NAME: &str = "input";
/// The class probabilities (Softmax of the logits).
pub const PROBABILITIES: &str = "probabilities";
/// The raw scores before Softmax.
pub const LOGITS: &str = "logits";
/// Metadata key: `"true"` when the model deskews its input (the graph does it).
pub const META_DESKEW: &str = "pismo.deskew";
/// Metadata key: the pismo model the file was exported from, e.g. `mnist@3`.
pub const META_MODEL: &str = "pismo.model";
/// Metadata key: the model's weights, `"f32"` or `"int8"`.
pub const META_KIND: &str = "pismo.kind";

/// What the input holds, for the file's documentation.
pub const INPUT_DOC: &str = "float32[N,784], each row a 28x28 image row-major as pismo \
    preprocesses it (ink 1.0, background 0.0; an MNIST byte b is b/255)";

/// The ONNX file of `model`, named `reference` (e.g. `mnist@3`) in its documentation.
pub fn export(model: &AnyMlp, reference: &str) -> Vec<u8> {
    let deskew = model.deskew();
    let mut g = Graph::new();
    let logits = match model.int8_view() {
        Some(q) => int8_network(&mut g, &q),
        None => f32_network(&mut g, model),
    };
    g.op(
        PROBABILITIES,
        "Softmax",
        &[&logits],
        vec![Attr::Int("axis", -1)],
    );
    let steps = if deskew {
        "deskews it as pismo does, then "
    } else {
        ""
    };
    let doc = format!(
        "pismo model {reference} ({} weights): {steps}784 inputs, {} ReLU units, 10 softmax \
         outputs. Input: {INPUT_DOC}",
        model.kind(),
        model.hidden_size()
    );
    g.input(
        INPUT_NAME,
        Elem::Float,
        &[None, Some(INPUT as i64)],
        INPUT_DOC,
    );
    let classes = &[None, Some(CLASSES as i64)];
    g.output(
        PROBABILITIES,
        Elem::Float,
        classes,
        "float32[N,10]: the probability of each digit 0-9 (softmax of logits)",
    );
    g.output(
        LOGITS,
        Elem::Float,
        classes,
        "float32[N,10]: the raw score of each digit 0-9",
    );
    let mut m = Message::new();
    m.varint(model_proto::IR_VERSION, IR_VERSION);
    let mut opset = Message::new();
    opset.string(operator_set_id::DOMAIN, "");
    opset.varint(operator_set_id::VERSION, OPSET);
    m.message(model_proto::OPSET_IMPORT, &opset);
    m.string(model_proto::PRODUCER_NAME, "pismo");
    m.string(model_proto::PRODUCER_VERSION, env!("CARGO_PKG_VERSION"));
    m.string(model_proto::DOC_STRING, &doc);
    m.message(
        model_proto::GRAPH,
        &g.finish(reference, &format!("pismo model {reference}")),
    );
    let deskew_text = if deskew { "true" } else { "false" };
    for (key, value) in [
        (META_MODEL, reference),
        (META_DESKEW, deskew_text),
        (META_KIND, model.kind()),
    ] {
        let mut entry = Message::new();
        entry.string(string_entry::KEY, key);
        entry.string(string_entry::VALUE, value);
        m.message(model_proto::METADATA_PROPS, &entry);
    }
    m.into_bytes()
}

/// The f32 network (deskewing first when the model does); returns the logits' name.
fn f32_network(g: &mut Graph, model: &AnyMlp) -> String {
    let t = model
        .f32_tensors()
        .expect("an f32 model: int8 ones are matched first");
    let h = t.hidden as i64;
    let x = if model.deskew() {
        deskew::deskew(g, INPUT_NAME, false)
    } else {
        INPUT_NAME.to_owned()
    };
    let w1 = g.init_f32("w1", &[INPUT as i64, h], t.w1);
    let b1 = g.init_f32("b1", &[h], t.b1);
    let w2 = g.init_f32("w2", &[CLASSES as i64, h], t.w2);
    let b2 = g.init_f32("b2", &[CLASSES as i64], t.b2);
    let z1 = g.op("hidden_pre", "Gemm", &[&x, &w1, &b1], vec![]);
    let hidden = g.op("hidden", "Relu", &[&z1], vec![]);
    g.op(
        LOGITS,
        "Gemm",
        &[&hidden, &w2, &b2],
        vec![Attr::Int("transB", 1)],
    )
}

/// The int8 network of [`pismo_core::quant`], input bytes and deskewing included; returns the
/// logits' name.
fn int8_network(g: &mut Graph, q: &QView<'_>) -> String {
    let h = q.hidden_size() as i64;
    let f32s = |bytes: &[u8]| -> Vec<f32> {
        bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    };
    let [_, s1, b1, w2, s2, b2] = q.parts();
    let w1 = crate::prune::dense_w1(q);
    // The input's bytes: `quant::input_bytes`, round(clamp(x, 0, 1)·255).
    let zero = g.init_f32("0", &[], &[0.0]);
    let one = g.init_f32("1", &[], &[1.0]);
    let byte_max = g.init_f32("255", &[], &[255.0]);
    let x = g.op("x_clamped", "Clip", &[INPUT_NAME, &zero, &one], vec![]);
    let x = g.op("x_scaled", "Mul", &[&x, &byte_max], vec![]);
    let mut x = round_half_away(g, "x_bytes", &x);
    if q.deskew() {
        x = deskew::deskew(g, &x, true);
    }
    let to = |elem: Elem| vec![Attr::Int("to", elem as i64)];
    let x = g.op("x_u8", "Cast", &[&x], to(Elem::Uint8));
    // acc1 = x_q · q1 (i32), z = acc1 · (s1 · (1/255)) + b1: pismo's constant and order.
    let q1 = g.init_raw("q1", Elem::Int8, &[INPUT as i64, h], &w1);
    let s1: Vec<f32> = f32s(s1).iter().map(|s| s * (1.0 / 255.0)).collect();
    let s1 = g.init_f32("s1_over_255", &[h], &s1);
    let b1 = g.init_f32("b1", &[h], &f32s(b1));
    let acc1 = g.op("acc1", "MatMulInteger", &[&x, &q1], vec![]);
    let acc1 = g.op("acc1_f", "Cast", &[&acc1], to(Elem::Float));
    let z1 = g.op("z1_scaled", "Mul", &[&acc1, &s1], vec![]);
    let z1 = g.op("z1", "Add", &[&z1, &b1], vec![]);
    // a_q = min(round(relu(z) / act_scale), 255) as u8.
    let a = g.op("hidden", "Relu", &[&z1], vec![]);
    let act_scale = g.init_f32("act_scale", &[], &[q.act_scale()]);
    let a = g.op("hidden_steps", "Div", &[&a, &act_scale], vec![]);
    let a = round_half_away(g, "hidden_rounded", &a);
    let a = g.op("hidden_capped", "Min", &[&a, &byte_max], vec![]);
    let a = g.op("hidden_u8", "Cast", &[&a], to(Elem::Uint8));
    // acc2 = a_q · q2ᵀ (i32), z = acc2 · s2 · act_scale + b2.
    let hidden = q.hidden_size();
    let q2t: Vec<u8> = (0..hidden)
        .flat_map(|j| (0..CLASSES).map(move |k| w2[k * hidden + j]))
        .collect();
    let q2t = g.init_raw("q2_t", Elem::Int8, &[h, CLASSES as i64], &q2t);
    let s2 = g.init_f32("s2", &[CLASSES as i64], &f32s(s2));
    let b2 = g.init_f32("b2", &[CLASSES as i64], &f32s(b2));
    let acc2 = g.op("acc2", "MatMulInteger", &[&a, &q2t], vec![]);
    let acc2 = g.op("acc2_f", "Cast", &[&acc2], to(Elem::Float));
    let z2 = g.op("z2_scaled", "Mul", &[&acc2, &s2], vec![]);
    let z2 = g.op("z2_act", "Mul", &[&z2, &act_scale], vec![]);
    g.op(LOGITS, "Add", &[&z2, &b2], vec![])
}

/// `libm::roundf` of non-negative `v` (half away from zero), named `name`: `Floor(v)`, plus
/// one where `v − Floor(v) ≥ 0.5`. The difference is exact (Sterbenz), so this is `roundf`
/// to the bit; ONNX's `Round` rounds half to even.
fn round_half_away(g: &mut Graph, name: &str, v: &str) -> String {
    let floor = g.op(&format!("{name}.floor"), "Floor", &[v], vec![]);
    let frac = g.op(&format!("{name}.frac"), "Sub", &[v, &floor], vec![]);
    let half = g.init_f32(&format!("{name}.half"), &[], &[0.5]);
    let up = g.op(
        &format!("{name}.up"),
        "GreaterOrEqual",
        &[&frac, &half],
        vec![],
    );
    let up = g.op(
        &format!("{name}.up_f"),
        "Cast",
        &[&up],
        vec![Attr::Int("to", Elem::Float as i64)],
    );
    g.op(name, "Add", &[&floor, &up], vec![])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boxed_zeroed;
    use crate::model::IntoAny;
    use pismo_core::mlp::Mlp;
    use pismo_core::quant::FirstLayer;
    use pismo_core::rng::Rng;

    fn model() -> AnyMlp {
        let mut m: Box<Mlp<16>> = boxed_zeroed();
        m.init(&mut Rng::new(1));
        m.b2[9] = 0.5;
        m.into_any()
    }

    fn le_bytes(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    fn contains(file: &[u8], part: &[u8]) -> bool {
        file.windows(part.len()).any(|w| w == part)
    }

    #[test]
    fn f32_weights_are_stored_in_pismos_layout_little_endian() {
        let m = model();
        let file = export(&m, "t@1");
        let t = m.f32_tensors().unwrap();
        // Each tensor's bytes appear whole, in pismo's own order (nothing transposed).
        for values in [t.w1, t.w2, t.b2] {
            assert!(contains(&file, &le_bytes(values)));
        }
        assert!(!contains(&file, b"MatMulInteger") && !contains(&file, b"Scan"));
    }

    #[test]
    fn int8_models_export_their_integer_weights_and_deskewing_models_deskew() {
        let images = [[128u8; INPUT]; 4];
        let q = model()
            .with_deskew(true)
            .quantize(&images, FirstLayer::Int8)
            .unwrap();
        let file = export(&q, "t-int8@1");
        let view = q.int8_view().unwrap();
        // q1 whole as it is; the graph is integer and deskews.
        assert!(contains(&file, view.parts()[0]));
        for op in [&b"MatMulInteger"[..], b"Scan", b"GatherElements", b"int8"] {
            assert!(contains(&file, op), "{}", String::from_utf8_lossy(op));
        }
    }
}
