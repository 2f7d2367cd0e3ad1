//! An f32 model as a standard ONNX file (`pismo models export --format onnx`), for
//! onnxruntime and other ONNX runtimes, in Python or in a browser (onnxruntime-web).
//!
//! ## The graph
//! Four nodes of the default ONNX domain, opset [`OPSET`]:
//!
//! ```text
//! input float32[N,784] ─ Gemm(w1, b1) ─ Relu ─ Gemm(w2ᵀ, b2) ─► logits        float32[N,10]
//!                                                             └ Softmax ─► probabilities float32[N,10]
//! ```
//!
//! `N` is a dynamic batch dimension. The input is what pismo's network reads: the 28x28 image
//! row-major after [`crate::preprocess`] (ink `1.0`, background `0.0`; an MNIST byte `b` is
//! `b / 255`), **and deskewed** ([`crate::deskew`]) when the model deskews — the shear is
//! measured per image from its ink and is not expressible with these operators, so the graph
//! leaves it to the caller and says so in its documentation and metadata
//! ([`META_DESKEW`]). The weights are initializers in pismo's own layout: `w1` is `(784, H)`
//! (input-major, so the first Gemm takes it as it is) and `w2` is `(10, H)` (the second
//! Gemm transposes it, `transB = 1`); no copy is reordered.
//!
//! ## Why int8 models are refused
//! pismo's int8 inference ([`crate::quant`]) rounds the hidden activations to `u8` with its
//! own rounding (half away from zero) after exact integer sums. A QDQ graph would dequantize
//! and sum in f32 and round half to even, so an activation near a rounding boundary lands in
//! the next step and the outputs differ by a whole quantization step: the file would not
//! compute what pismo computes. [`export`] returns [`ExportError::Int8`] instead; the int8
//! model's f32 parent exports exactly.
//!
//! ## The encoding
//! ONNX files are protocol buffers (`onnx.proto`). The few messages needed are written here
//! by hand ([`Message`]): varint and length-delimited fields, with field numbers named after
//! `onnx.proto`'s. A protobuf crate would need that schema vendored and compiled at build
//! time for twelve small messages of which a few fields each are used.

use core::fmt;

use crate::host::model::{AnyMlp, F32Tensors};
use crate::mlp::{CLASSES, INPUT};

/// The opset of the default domain the graph is written for (Gemm, Relu and Softmax with
/// `axis = -1` on the class axis).
pub const OPSET: u64 = 13;
/// The IR version of ONNX 1.8, the release that introduced opset 13.
pub const IR_VERSION: u64 = 7;
/// The graph's input.
pub const INPUT_NAME: &str = "input";
/// The class probabilities (Softmax of the logits).
pub const PROBABILITIES: &str = "probabilities";
/// The raw scores before Softmax.
pub const LOGITS: &str = "logits";
/// Metadata key: `"true"` when the input must be deskewed before the graph sees it.
pub const META_DESKEW: &str = "pismo.deskew";
/// Metadata key: the pismo model the file was exported from, e.g. `mnist@3`.
pub const META_MODEL: &str = "pismo.model";

/// Why a model cannot be exported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportError {
    /// An int8 model (see the module documentation).
    Int8,
}

impl fmt::Display for ExportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExportError::Int8 => f.write_str(
                "int8 models are not exported to ONNX: pismo rounds their hidden activations \
                 in a way standard quantized (QDQ) operators do not reproduce exactly",
            ),
        }
    }
}

impl std::error::Error for ExportError {}

/// The ONNX file of `model`, named `reference` (e.g. `mnist@3`) in its documentation.
pub fn export(model: &AnyMlp, reference: &str) -> Result<Vec<u8>, ExportError> {
    let tensors = model.f32_tensors().ok_or(ExportError::Int8)?;
    let deskew = model.deskew();
    let doc = format!(
        "pismo model {reference}: 784 inputs, {} ReLU units, 10 softmax outputs. Input: {}",
        tensors.hidden,
        input_doc(deskew)
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
    m.message(model_proto::GRAPH, &graph(&tensors, reference, deskew));
    let deskew_text = if deskew { "true" } else { "false" };
    for (key, value) in [(META_MODEL, reference), (META_DESKEW, deskew_text)] {
        let mut entry = Message::new();
        entry.string(string_entry::KEY, key);
        entry.string(string_entry::VALUE, value);
        m.message(model_proto::METADATA_PROPS, &entry);
    }
    Ok(m.into_bytes())
}

/// What the input holds, for the file's documentation.
fn input_doc(deskew: bool) -> String {
    let base = "float32[N,784], each row a 28x28 image row-major as pismo preprocesses it \
                (ink 1.0, background 0.0; an MNIST byte b is b/255)";
    if deskew {
        format!(
            "{base}, deskewed first as pismo deskews (pismo_core::deskew): this model was \
             trained on deskewed images and the graph does not deskew"
        )
    } else {
        format!("{base}; this model reads it as it is (no deskewing)")
    }
}

fn graph(t: &F32Tensors<'_>, reference: &str, deskew: bool) -> Message {
    let h = t.hidden as u64;
    let mut g = Message::new();
    g.message(
        graph_proto::NODE,
        &node("hidden_pre", "Gemm", &[INPUT_NAME, "w1", "b1"], "z1", None),
    );
    g.message(
        graph_proto::NODE,
        &node("hidden", "Relu", &["z1"], "hidden", None),
    );
    g.message(
        graph_proto::NODE,
        &node(
            "output",
            "Gemm",
            &["hidden", "w2", "b2"],
            LOGITS,
            Some(("transB", 1)),
        ),
    );
    g.message(
        graph_proto::NODE,
        &node("softmax", "Softmax", &[LOGITS], PROBABILITIES, None),
    );
    g.string(graph_proto::NAME, reference);
    for (name, dims, values) in [
        ("w1", &[INPUT as u64, h][..], t.w1),
        ("b1", &[h][..], t.b1),
        ("w2", &[CLASSES as u64, h][..], t.w2),
        ("b2", &[CLASSES as u64][..], t.b2),
    ] {
        g.message(graph_proto::INITIALIZER, &tensor(name, dims, values));
    }
    g.string(graph_proto::DOC_STRING, &format!("pismo model {reference}"));
    g.message(
        graph_proto::INPUT,
        &value_info(INPUT_NAME, INPUT as u64, &input_doc(deskew)),
    );
    g.message(
        graph_proto::OUTPUT,
        &value_info(
            PROBABILITIES,
            CLASSES as u64,
            "float32[N,10]: the probability of each digit 0-9 (softmax of logits)",
        ),
    );
    g.message(
        graph_proto::OUTPUT,
        &value_info(
            LOGITS,
            CLASSES as u64,
            "float32[N,10]: the raw score of each digit 0-9",
        ),
    );
    g
}

fn node(name: &str, op: &str, inputs: &[&str], output: &str, int: Option<(&str, u64)>) -> Message {
    let mut n = Message::new();
    for input in inputs {
        n.string(node_proto::INPUT, input);
    }
    n.string(node_proto::OUTPUT, output);
    n.string(node_proto::NAME, name);
    n.string(node_proto::OP_TYPE, op);
    if let Some((attr, value)) = int {
        let mut a = Message::new();
        a.string(attribute_proto::NAME, attr);
        a.varint(attribute_proto::I, value);
        a.varint(attribute_proto::TYPE, attribute_proto::TYPE_INT);
        n.message(node_proto::ATTRIBUTE, &a);
    }
    n
}

/// An f32 initializer, little-endian in `raw_data`.
fn tensor(name: &str, dims: &[u64], values: &[f32]) -> Message {
    let mut t = Message::new();
    for &d in dims {
        t.varint(tensor_proto::DIMS, d);
    }
    t.varint(tensor_proto::DATA_TYPE, tensor_proto::FLOAT);
    t.string(tensor_proto::NAME, name);
    let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    t.bytes(tensor_proto::RAW_DATA, &raw);
    t
}

/// A graph input or output: `float32[N, width]`.
fn value_info(name: &str, width: u64, doc: &str) -> Message {
    let mut batch = Message::new();
    batch.string(dimension::DIM_PARAM, "N");
    let mut features = Message::new();
    features.varint(dimension::DIM_VALUE, width);
    let mut shape = Message::new();
    shape.message(tensor_shape::DIM, &batch);
    shape.message(tensor_shape::DIM, &features);
    let mut tensor_type = Message::new();
    tensor_type.varint(type_tensor::ELEM_TYPE, tensor_proto::FLOAT);
    tensor_type.message(type_tensor::SHAPE, &shape);
    let mut ty = Message::new();
    ty.message(type_proto::TENSOR_TYPE, &tensor_type);
    let mut v = Message::new();
    v.string(value_info_proto::NAME, name);
    v.message(value_info_proto::TYPE, &ty);
    v.string(value_info_proto::DOC_STRING, doc);
    v
}

/// A protocol buffer message being written: fields appended in the order given.
struct Message(Vec<u8>);

impl Message {
    fn new() -> Self {
        Message(Vec::new())
    }

    fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    fn raw_varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn key(&mut self, field: u32, wire_type: u8) {
        self.raw_varint(u64::from(field) << 3 | u64::from(wire_type));
    }

    /// An integer field (int32, int64 or enum; wire type 0).
    fn varint(&mut self, field: u32, v: u64) {
        self.key(field, 0);
        self.raw_varint(v);
    }

    /// A bytes field (wire type 2).
    fn bytes(&mut self, field: u32, b: &[u8]) {
        self.key(field, 2);
        self.raw_varint(b.len() as u64);
        self.0.extend_from_slice(b);
    }

    fn string(&mut self, field: u32, s: &str) {
        self.bytes(field, s.as_bytes());
    }

    fn message(&mut self, field: u32, m: &Message) {
        self.bytes(field, &m.0);
    }
}

// Field numbers of onnx.proto, one module per message.

mod model_proto {
    pub const IR_VERSION: u32 = 1;
    pub const PRODUCER_NAME: u32 = 2;
    pub const PRODUCER_VERSION: u32 = 3;
    pub const DOC_STRING: u32 = 6;
    pub const GRAPH: u32 = 7;
    pub const OPSET_IMPORT: u32 = 8;
    pub const METADATA_PROPS: u32 = 14;
}

mod operator_set_id {
    pub const DOMAIN: u32 = 1;
    pub const VERSION: u32 = 2;
}

mod string_entry {
    pub const KEY: u32 = 1;
    pub const VALUE: u32 = 2;
}

mod graph_proto {
    pub const NODE: u32 = 1;
    pub const NAME: u32 = 2;
    pub const INITIALIZER: u32 = 5;
    pub const DOC_STRING: u32 = 10;
    pub const INPUT: u32 = 11;
    pub const OUTPUT: u32 = 12;
}

mod node_proto {
    pub const INPUT: u32 = 1;
    pub const OUTPUT: u32 = 2;
    pub const NAME: u32 = 3;
    pub const OP_TYPE: u32 = 4;
    pub const ATTRIBUTE: u32 = 5;
}

mod attribute_proto {
    pub const NAME: u32 = 1;
    pub const I: u32 = 3;
    pub const TYPE: u32 = 20;
    /// `AttributeType.INT`.
    pub const TYPE_INT: u64 = 2;
}

mod tensor_proto {
    pub const DIMS: u32 = 1;
    pub const DATA_TYPE: u32 = 2;
    pub const NAME: u32 = 8;
    pub const RAW_DATA: u32 = 9;
    /// `DataType.FLOAT`.
    pub const FLOAT: u64 = 1;
}

mod value_info_proto {
    pub const NAME: u32 = 1;
    pub const TYPE: u32 = 2;
    pub const DOC_STRING: u32 = 3;
}

mod type_proto {
    pub const TENSOR_TYPE: u32 = 1;
}

mod type_tensor {
    pub const ELEM_TYPE: u32 = 1;
    pub const SHAPE: u32 = 2;
}

mod tensor_shape {
    pub const DIM: u32 = 1;
}

mod dimension {
    pub const DIM_VALUE: u32 = 1;
    pub const DIM_PARAM: u32 = 2;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::boxed_zeroed;
    use crate::host::model::IntoAny;
    use crate::mlp::Mlp;
    use crate::rng::Rng;

    #[test]
    fn varints_are_little_endian_groups_of_seven_bits() {
        let mut m = Message::new();
        m.varint(1, 300);
        // Key (1 << 3 | 0), then 300 = 0b10_0101100 as 0xAC 0x02.
        assert_eq!(m.0, [0x08, 0xAC, 0x02]);
        let mut m = Message::new();
        m.string(20, "ab");
        // Field 20 needs a two-byte key: (20 << 3 | 2) = 162 = 0xA2 0x01.
        assert_eq!(m.0, [0xA2, 0x01, 2, b'a', b'b']);
    }

    fn model() -> AnyMlp {
        let mut m: Box<Mlp<16>> = boxed_zeroed();
        m.init(&mut Rng::new(1));
        m.b2[9] = 0.5;
        m.into_any()
    }

    fn le_bytes(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    #[test]
    fn weights_are_stored_in_pismos_layout_little_endian() {
        let m = model();
        let file = export(&m, "t@1").unwrap();
        let t = m.f32_tensors().unwrap();
        // Each tensor's bytes appear whole, in pismo's own order (nothing transposed).
        for values in [t.w1, t.w2, t.b2] {
            let raw = le_bytes(values);
            assert!(file.windows(raw.len()).any(|w| w == raw));
        }
    }

    #[test]
    fn int8_models_are_refused() {
        let images = [[128u8; INPUT]; 4];
        let q = model().quantize(&images).unwrap();
        assert_eq!(export(&q, "t-int8@1"), Err(ExportError::Int8));
    }
}
