//! The protocol buffer encoding of the few `onnx.proto` messages an export needs, and a
//! builder of graphs over it ([`Graph`]).
//!
//! ONNX files are protocol buffers. The messages are written here by hand ([`Message`]):
//! varint and length-delimited fields, with field numbers named after `onnx.proto`'s. A
//! protobuf crate would need that schema vendored and compiled at build time for a dozen small
//! messages of which a few fields each are used. A [`Graph`] only appends: nodes in the order
//! they are added (which must be a topological order, as ONNX requires), initializers, inputs
//! and outputs; names are the caller's and must be unique within the graph.

/// ONNX element types (`TensorProto.DataType`) the exports use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Elem {
    Float = 1,
    Uint8 = 2,
    Int8 = 3,
    Int64 = 7,
}

/// A node attribute.
pub enum Attr<'a> {
    Int(&'a str, i64),
    Ints(&'a str, &'a [i64]),
    Graph(&'a str, Message),
}

/// A protocol buffer message being written: fields appended in the order given.
#[derive(Clone, Debug, Default)]
pub struct Message(Vec<u8>);

impl Message {
    pub fn new() -> Self {
        Message(Vec::new())
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    #[cfg(test)]
    pub fn bytes_so_far(&self) -> &[u8] {
        &self.0
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

    /// An integer field (int32, int64 or enum; wire type 0). Negative values are written
    /// as protobuf writes an `int64`: ten bytes of two's complement.
    pub fn varint(&mut self, field: u32, v: i64) {
        self.key(field, 0);
        self.raw_varint(v as u64);
    }

    /// A bytes field (wire type 2).
    pub fn bytes(&mut self, field: u32, b: &[u8]) {
        self.key(field, 2);
        self.raw_varint(b.len() as u64);
        self.0.extend_from_slice(b);
    }

    pub fn string(&mut self, field: u32, s: &str) {
        self.bytes(field, s.as_bytes());
    }

    pub fn message(&mut self, field: u32, m: &Message) {
        self.bytes(field, &m.0);
    }
}

/// A graph being built: `GraphProto` fields, written out by [`Graph::finish`].
#[derive(Default)]
pub struct Graph {
    nodes: Vec<Message>,
    initializers: Vec<Message>,
    inputs: Vec<Message>,
    outputs: Vec<Message>,
}

impl Graph {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds node `op` named `name` reading `inputs`; its one output is also called `name`,
    /// which is returned.
    pub fn op(&mut self, name: &str, op: &str, inputs: &[&str], attrs: Vec<Attr<'_>>) -> String {
        self.op_n(name, op, inputs, &[name], attrs);
        name.to_owned()
    }

    /// Adds node `op` named `name` with several outputs.
    pub fn op_n(
        &mut self,
        name: &str,
        op: &str,
        inputs: &[&str],
        outputs: &[&str],
        attrs: Vec<Attr<'_>>,
    ) {
        let mut n = Message::new();
        for input in inputs {
            n.string(node_proto::INPUT, input);
        }
        for output in outputs {
            n.string(node_proto::OUTPUT, output);
        }
        n.string(node_proto::NAME, name);
        n.string(node_proto::OP_TYPE, op);
        for attr in attrs {
            let mut a = Message::new();
            match attr {
                Attr::Int(key, v) => {
                    a.string(attribute_proto::NAME, key);
                    a.varint(attribute_proto::I, v);
                    a.varint(attribute_proto::TYPE, attribute_proto::TYPE_INT);
                }
                Attr::Ints(key, vs) => {
                    a.string(attribute_proto::NAME, key);
                    for &v in vs {
                        a.varint(attribute_proto::INTS, v);
                    }
                    a.varint(attribute_proto::TYPE, attribute_proto::TYPE_INTS);
                }
                Attr::Graph(key, g) => {
                    a.string(attribute_proto::NAME, key);
                    a.message(attribute_proto::G, &g);
                    a.varint(attribute_proto::TYPE, attribute_proto::TYPE_GRAPH);
                }
            }
            n.message(node_proto::ATTRIBUTE, &a);
        }
        self.nodes.push(n);
    }

    /// An initializer of `elem` values given as little-endian `raw` bytes; returns its name.
    pub fn init_raw(&mut self, name: &str, elem: Elem, dims: &[i64], raw: &[u8]) -> String {
        let mut t = Message::new();
        for &d in dims {
            t.varint(tensor_proto::DIMS, d);
        }
        t.varint(tensor_proto::DATA_TYPE, elem as i64);
        t.string(tensor_proto::NAME, name);
        t.bytes(tensor_proto::RAW_DATA, raw);
        self.initializers.push(t);
        name.to_owned()
    }

    /// An f32 initializer.
    pub fn init_f32(&mut self, name: &str, dims: &[i64], values: &[f32]) -> String {
        let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.init_raw(name, Elem::Float, dims, &raw)
    }

    /// An i64 initializer.
    pub fn init_i64(&mut self, name: &str, dims: &[i64], values: &[i64]) -> String {
        let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.init_raw(name, Elem::Int64, dims, &raw)
    }

    /// A graph input of `elem` values; `None` dimensions are the dynamic batch `N`.
    pub fn input(&mut self, name: &str, elem: Elem, shape: &[Option<i64>], doc: &str) {
        self.inputs.push(value_info(name, elem, shape, doc));
    }

    /// A graph output, as [`Graph::input`].
    pub fn output(&mut self, name: &str, elem: Elem, shape: &[Option<i64>], doc: &str) {
        self.outputs.push(value_info(name, elem, shape, doc));
    }

    /// The `GraphProto` named `name`.
    pub fn finish(self, name: &str, doc: &str) -> Message {
        let mut g = Message::new();
        for n in &self.nodes {
            g.message(graph_proto::NODE, n);
        }
        g.string(graph_proto::NAME, name);
        for t in &self.initializers {
            g.message(graph_proto::INITIALIZER, t);
        }
        if !doc.is_empty() {
            g.string(graph_proto::DOC_STRING, doc);
        }
        for v in &self.inputs {
            g.message(graph_proto::INPUT, v);
        }
        for v in &self.outputs {
            g.message(graph_proto::OUTPUT, v);
        }
        g
    }
}

fn value_info(name: &str, elem: Elem, shape: &[Option<i64>], doc: &str) -> Message {
    let mut tensor_type = Message::new();
    tensor_type.varint(type_tensor::ELEM_TYPE, elem as i64);
    let mut s = Message::new();
    for d in shape {
        let mut dim = Message::new();
        match d {
            Some(v) => dim.varint(dimension::DIM_VALUE, *v),
            None => dim.string(dimension::DIM_PARAM, "N"),
        }
        s.message(tensor_shape::DIM, &dim);
    }
    tensor_type.message(type_tensor::SHAPE, &s);
    let mut ty = Message::new();
    ty.message(type_proto::TENSOR_TYPE, &tensor_type);
    let mut v = Message::new();
    v.string(value_info_proto::NAME, name);
    v.message(value_info_proto::TYPE, &ty);
    if !doc.is_empty() {
        v.string(value_info_proto::DOC_STRING, doc);
    }
    v
}

// Field numbers of onnx.proto, one module per message.

pub mod model_proto {
    pub const IR_VERSION: u32 = 1;
    pub const PRODUCER_NAME: u32 = 2;
    pub const PRODUCER_VERSION: u32 = 3;
    pub const DOC_STRING: u32 = 6;
    pub const GRAPH: u32 = 7;
    pub const OPSET_IMPORT: u32 = 8;
    pub const METADATA_PROPS: u32 = 14;
}

pub mod operator_set_id {
    pub const DOMAIN: u32 = 1;
    pub const VERSION: u32 = 2;
}

pub mod string_entry {
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
    pub const G: u32 = 6;
    pub const INTS: u32 = 8;
    pub const TYPE: u32 = 20;
    /// `AttributeType.INT`.
    pub const TYPE_INT: i64 = 2;
    /// `AttributeType.GRAPH`.
    pub const TYPE_GRAPH: i64 = 5;
    /// `AttributeType.INTS`.
    pub const TYPE_INTS: i64 = 7;
}

mod tensor_proto {
    pub const DIMS: u32 = 1;
    pub const DATA_TYPE: u32 = 2;
    pub const NAME: u32 = 8;
    pub const RAW_DATA: u32 = 9;
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

    #[test]
    fn varints_are_little_endian_groups_of_seven_bits() {
        let mut m = Message::new();
        m.varint(1, 300);
        // Key (1 << 3 | 0), then 300 = 0b10_0101100 as 0xAC 0x02.
        assert_eq!(m.bytes_so_far(), [0x08, 0xAC, 0x02]);
        let mut m = Message::new();
        m.string(20, "ab");
        // Field 20 needs a two-byte key: (20 << 3 | 2) = 162 = 0xA2 0x01.
        assert_eq!(m.bytes_so_far(), [0xA2, 0x01, 2, b'a', b'b']);
        // A negative int64: ten bytes, the last holding the top bit.
        let mut m = Message::new();
        m.varint(1, -2);
        assert_eq!(
            m.bytes_so_far(),
            [0x08, 0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]
        );
    }
}
