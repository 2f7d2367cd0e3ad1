//! MLflow's scoring bodies (`POST /invocations`): the four formats of `mlflow models serve`
//! (`dataframe_split`, `dataframe_records`, `instances`, `inputs`) parsed into rows of the
//! model's inputs, and the names of the model's columns.
//!
//! Invariants:
//! - A body is parsed by serde straight into its rows (no `serde_json::Value` first): a
//!   value of another type (an object where a number belongs, as in `[{"":0},…]`) is a 400
//!   where the parser meets it, and a row is a fixed array of [`INPUT`] numbers (3 KiB for
//!   at least 1.5 KiB of text), so the rows take at most 4 bytes per byte of body (with their
//!   copy in the model's order). A row of another length, or a record with
//!   other columns, is a 400 at its end.
//! - A data frame's columns are placed by name ([`column`]): in any order; unknown,
//!   repeated or missing columns are a 400 that names (the first few of) them.

use std::fmt;

use pismo_core::mlp::INPUT;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;

use crate::reply::ApiError;
use crate::scoring::{unit, Inputs};

/// An MLflow scoring body: exactly one of its fields.
#[derive(Deserialize)]
pub(crate) struct Body {
    dataframe_split: Option<Split>,
    dataframe_records: Option<Vec<Record>>,
    instances: Option<Vec<Inputs>>,
    inputs: Option<Vec<Inputs>>,
}

/// `{"columns": […], "index": […], "data": [[…], …]}` as pandas `to_json(orient="split")`
/// writes it (`index` is ignored).
#[derive(Deserialize)]
struct Split {
    columns: Option<Vec<Column>>,
    data: Option<Vec<Inputs>>,
}

/// The rows of `body`, each the model's [`INPUT`] inputs in its order.
pub(crate) fn rows(body: Body) -> Result<Vec<[f32; INPUT]>, ApiError> {
    let given = [
        body.dataframe_split.is_some(),
        body.dataframe_records.is_some(),
        body.instances.is_some(),
        body.inputs.is_some(),
    ];
    if given.iter().filter(|&&g| g).count() != 1 {
        return Err(ApiError::bad(
            "the body needs exactly one of dataframe_split, dataframe_records, instances, inputs",
        ));
    }
    let rows = |inputs: Vec<Inputs>| inputs.into_iter().map(|i| *i.0).collect();
    if let Some(split) = body.dataframe_split {
        let data = split
            .data
            .ok_or_else(|| ApiError::bad("`dataframe_split` needs `data`"))?;
        let Some(names) = split.columns else {
            return Ok(rows(data));
        };
        let mut columns = Columns::new();
        for name in &names {
            columns.add(&name.0);
        }
        let order = columns.order()?;
        return Ok(data
            .into_iter()
            .map(|given| {
                let mut row = [0.0f32; INPUT];
                for (j, &v) in given.0.iter().enumerate() {
                    row[order[j]] = v;
                }
                row
            })
            .collect());
    }
    if let Some(records) = body.dataframe_records {
        return Ok(records.into_iter().map(|r| *r.0).collect());
    }
    Ok(rows(body.instances.or(body.inputs).unwrap_or_default()))
}

// ---------------------------------------------------------------------------------------
// The model's columns

/// The name of the model's input `i` as a data-frame column: `pixel0` … `pixel783`, the
/// 28x28 image row by row (as MNIST's CSV files name them). A column may also be named by
/// the bare number (`"7"`, or `7` as pandas writes the columns of a frame built without
/// names).
pub(crate) fn column(i: usize) -> String {
    format!("{COLUMN_PREFIX}{i}")
}

const COLUMN_PREFIX: &str = "pixel";

/// The model input a column name stands for (see [`column`]).
fn column_index(name: &str) -> Option<usize> {
    let digits = name.strip_prefix(COLUMN_PREFIX).unwrap_or(name);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // `pixel07` or `007` would be a second name of a column.
    digits
        .parse()
        .ok()
        .filter(|&i: &usize| i < INPUT && i.to_string() == digits)
}

/// The columns a data frame names, checked one by one against the model's: where each
/// goes, and the unknown, repeated and missing ones for the 400.
struct Columns {
    seen: [bool; INPUT],
    order: Vec<usize>,
    unknown: Names,
    repeated: Names,
}

/// Names for an error message: the first few, and how many in all (so a body of a million
/// unknown names costs no memory for them).
#[derive(Default)]
struct Names {
    first: Vec<String>,
    count: usize,
}

impl Names {
    const SHOWN: usize = 5;

    fn push(&mut self, name: &str) {
        if self.count < Self::SHOWN {
            self.first.push(name.to_owned());
        }
        self.count += 1;
    }

    /// `what column(s) "a", "b" … (N in all)`, `None` when there are none.
    fn described(&self, what: &str) -> Option<String> {
        if self.count == 0 {
            return None;
        }
        let quoted: Vec<String> = self.first.iter().map(|n| format!("{n:?}")).collect();
        let mut text = format!(
            "{what} column{} {}",
            if self.count == 1 { "" } else { "s" },
            quoted.join(", ")
        );
        if self.count > self.first.len() {
            text.push_str(&format!(" … ({} in all)", self.count));
        }
        Some(text)
    }
}

impl Columns {
    fn new() -> Columns {
        Columns {
            seen: [false; INPUT],
            order: Vec::with_capacity(INPUT),
            unknown: Names::default(),
            repeated: Names::default(),
        }
    }

    /// The input the next column, `name`, is; `None` (and noted) when unknown or repeated.
    fn add(&mut self, name: &str) -> Option<usize> {
        match column_index(name) {
            Some(i) if self.seen[i] => self.repeated.push(name),
            Some(i) => {
                self.seen[i] = true;
                self.order.push(i);
                return Some(i);
            }
            None => self.unknown.push(name),
        }
        None
    }

    /// Where each column goes (the j-th added is input `order[j]`), or the 400 naming the
    /// unknown, repeated and missing columns.
    fn order(self) -> Result<Vec<usize>, ApiError> {
        let mut missing = Names::default();
        for i in (0..INPUT).filter(|&i| !self.seen[i]) {
            missing.push(&column(i));
        }
        let problems: Vec<String> = [
            self.unknown.described("unknown"),
            self.repeated.described("repeated"),
            missing.described("missing"),
        ]
        .into_iter()
        .flatten()
        .collect();
        if problems.is_empty() {
            return Ok(self.order);
        }
        Err(ApiError::bad(format!(
            "{}: the model's {INPUT} columns are {} … {} (or 0 … {}), each once, in any order",
            problems.join("; "),
            column(0),
            column(INPUT - 1),
            INPUT - 1
        )))
    }
}

/// A column name as a data frame gives it: a string, or a number (pandas writes the
/// columns of a frame without names as numbers).
struct Column(String);

impl<'de> Deserialize<'de> for Column {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Name;
        impl Visitor<'_> for Name {
            type Value = Column;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a column name (a string or a number)")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Column, E> {
                Ok(Column(v.to_owned()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Column, E> {
                Ok(Column(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Column, E> {
                Ok(Column(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Column, E> {
                Ok(Column(v.to_string()))
            }
        }
        d.deserialize_any(Name)
    }
}

/// One record `{"pixel0": v, …}` (or `{"0": v, …}`), its values placed by column name as
/// they are parsed.
struct Record(Box<[f32; INPUT]>);

impl<'de> Deserialize<'de> for Record {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> Visitor<'de> for Fields {
            type Value = Record;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "a record of {INPUT} columns")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Record, A::Error> {
                let mut row = Box::new([0.0f32; INPUT]);
                let mut columns = Columns::new();
                while let Some(name) = map.next_key::<String>()? {
                    match columns.add(&name) {
                        Some(i) => row[i] = unit(map.next_value()?)?,
                        None => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                columns.order().map_err(|e| de::Error::custom(e.message))?;
                Ok(Record(row))
            }
        }
        d.deserialize_map(Fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<Vec<[f32; INPUT]>, String> {
        let body: Body = crate::request::parse_typed(body.as_bytes()).map_err(|e| e.message)?;
        rows(body).map_err(|e| e.message)
    }

    #[test]
    fn column_names() {
        assert_eq!(column(0), "pixel0");
        for (name, index) in [
            ("pixel0", Some(0)),
            ("pixel783", Some(783)),
            ("783", Some(783)),
            ("pixel784", None),
            ("pixel07", None),
            ("007", None),
            ("pixel", None),
            ("", None),
            ("col7", None),
            ("pixel+7", None),
        ] {
            assert_eq!(column_index(name), index, "{name}");
        }
    }

    #[test]
    fn columns_in_another_order_are_placed_and_wrong_ones_named() {
        let names: Vec<String> = (0..INPUT).rev().map(column).collect();
        let mut columns = Columns::new();
        for n in &names {
            columns.add(n);
        }
        assert_eq!(columns.order().unwrap()[0], INPUT - 1);
        let mut columns = Columns::new();
        for i in 0..INPUT {
            columns.add(&match i {
                3 => "ink".to_owned(),
                4 => "0".to_owned(),
                i => i.to_string(),
            });
        }
        let m = columns.order().unwrap_err().message;
        assert!(m.contains("unknown column \"ink\""), "{m}");
        assert!(m.contains("repeated column \"0\""), "{m}");
        assert!(m.contains("missing columns \"pixel3\", \"pixel4\""), "{m}");
    }

    #[test]
    fn records_are_placed_by_column_name() {
        let fields: Vec<String> = (0..INPUT)
            .rev()
            .map(|i| format!("\"{}\":{}", column(i), if i == 700 { 1 } else { 0 }))
            .collect();
        let x = parse(&format!(
            "{{\"dataframe_records\":[{{{}}}]}}",
            fields.join(",")
        ))
        .unwrap();
        assert_eq!(x[0][700], 1.0);
        assert_eq!(x[0].iter().sum::<f32>(), 1.0);
    }

    #[test]
    fn a_value_of_another_shape_is_refused_where_it_is_met() {
        let objects = vec![r#"{"":0}"#; 10_000].join(",");
        for body in [
            format!(r#"{{"inputs":[[{objects}]]}}"#),
            format!(r#"{{"inputs":[{objects}]}}"#),
            format!(r#"{{"dataframe_records":[{objects}]}}"#),
            format!(r#"{{"dataframe_split":{{"data":[[{objects}]]}}}}"#),
        ] {
            let m = parse(&body).unwrap_err();
            assert!(m.contains("line 1 column"), "{m}");
            // Met at the first object (column < 40), not at the end of the body.
            let column: usize = m.rsplit(' ').next().unwrap().parse().unwrap();
            assert!(column < 40, "{m}");
        }
        let m = parse(r#"{"inputs":[[0.5,0.5]]}"#).unwrap_err();
        assert!(m.contains("784 numbers") && m.contains("got 2"), "{m}");
        assert!(parse(r#"{"inputs":[[2]]}"#).unwrap_err().contains("0..=1"));
        assert!(parse(r#"{"inputs":[],"instances":[]}"#)
            .unwrap_err()
            .contains("exactly one"));
    }
}
