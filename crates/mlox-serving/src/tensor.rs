//! V2 tensors as they travel: a [`Datatype`] and the flat, row-major elements in
//! [`TensorData`], with the three encodings the protocol uses for them (JSON arrays, raw
//! little-endian bytes for gRPC `raw_*_contents` and the HTTP binary extension, and typed lists
//! for gRPC `contents`, the latter in the gRPC skin). Nothing here knows about models.

use bytes::Bytes;
use half::f16;
use mlox_core::{Error, Result};
use serde::ser::{Serialize, SerializeSeq, Serializer};
use serde_json::Value;

/// The element types of the Open Inference Protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Datatype {
    Bool,
    Uint8,
    Uint16,
    Uint32,
    Uint64,
    Int8,
    Int16,
    Int32,
    Int64,
    Fp16,
    Fp32,
    Fp64,
    Bytes,
}

const ALL: [Datatype; 13] = [
    Datatype::Bool,
    Datatype::Uint8,
    Datatype::Uint16,
    Datatype::Uint32,
    Datatype::Uint64,
    Datatype::Int8,
    Datatype::Int16,
    Datatype::Int32,
    Datatype::Int64,
    Datatype::Fp16,
    Datatype::Fp32,
    Datatype::Fp64,
    Datatype::Bytes,
];

impl Datatype {
    pub fn as_str(self) -> &'static str {
        match self {
            Datatype::Bool => "BOOL",
            Datatype::Uint8 => "UINT8",
            Datatype::Uint16 => "UINT16",
            Datatype::Uint32 => "UINT32",
            Datatype::Uint64 => "UINT64",
            Datatype::Int8 => "INT8",
            Datatype::Int16 => "INT16",
            Datatype::Int32 => "INT32",
            Datatype::Int64 => "INT64",
            Datatype::Fp16 => "FP16",
            Datatype::Fp32 => "FP32",
            Datatype::Fp64 => "FP64",
            Datatype::Bytes => "BYTES",
        }
    }

    /// Parses a wire name; the error names the tensor and lists what is accepted, since a
    /// typo here is the most common way to get a request wrong.
    pub fn parse(name: &str, what: &str) -> Result<Self> {
        if let Some(dt) = ALL.iter().find(|d| d.as_str() == name) {
            return Ok(*dt);
        }
        let known: Vec<_> = ALL.iter().map(|d| d.as_str()).collect();
        let why = if name == "BF16" {
            "BF16 tensors are not supported".to_string()
        } else {
            format!("unknown datatype '{name}'")
        };
        Err(Error::invalid(format!(
            "{what}: {why} (expected one of {})",
            known.join(", ")
        )))
    }

    /// Bytes per element in raw form; `None` for BYTES, whose elements carry their length.
    pub fn byte_size(self) -> Option<usize> {
        Some(match self {
            Datatype::Bool | Datatype::Uint8 | Datatype::Int8 => 1,
            Datatype::Uint16 | Datatype::Int16 | Datatype::Fp16 => 2,
            Datatype::Uint32 | Datatype::Int32 | Datatype::Fp32 => 4,
            Datatype::Uint64 | Datatype::Int64 | Datatype::Fp64 => 8,
            Datatype::Bytes => return None,
        })
    }

    pub fn is_integer(self) -> bool {
        matches!(
            self,
            Datatype::Uint8
                | Datatype::Uint16
                | Datatype::Uint32
                | Datatype::Uint64
                | Datatype::Int8
                | Datatype::Int16
                | Datatype::Int32
                | Datatype::Int64
        )
    }

    pub fn is_float(self) -> bool {
        matches!(self, Datatype::Fp16 | Datatype::Fp32 | Datatype::Fp64)
    }
}

impl std::fmt::Display for Datatype {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A tensor's elements, flat and row-major, typed by datatype.
#[derive(Clone, Debug, PartialEq)]
pub enum TensorData {
    Bool(Vec<bool>),
    Uint8(Vec<u8>),
    Uint16(Vec<u16>),
    Uint32(Vec<u32>),
    Uint64(Vec<u64>),
    Int8(Vec<i8>),
    Int16(Vec<i16>),
    Int32(Vec<i32>),
    Int64(Vec<i64>),
    Fp16(Vec<f16>),
    Fp32(Vec<f32>),
    Fp64(Vec<f64>),
    Bytes(Vec<Bytes>),
}

/// Applies `$body` to the vector inside any variant.
macro_rules! each {
    ($data:expr, $v:ident => $body:expr) => {
        match $data {
            TensorData::Bool($v) => $body,
            TensorData::Uint8($v) => $body,
            TensorData::Uint16($v) => $body,
            TensorData::Uint32($v) => $body,
            TensorData::Uint64($v) => $body,
            TensorData::Int8($v) => $body,
            TensorData::Int16($v) => $body,
            TensorData::Int32($v) => $body,
            TensorData::Int64($v) => $body,
            TensorData::Fp16($v) => $body,
            TensorData::Fp32($v) => $body,
            TensorData::Fp64($v) => $body,
            TensorData::Bytes($v) => $body,
        }
    };
}

/// Applies `$body` to the numbers inside any integer variant, or evaluates `$other`.
macro_rules! each_int {
    ($data:expr, $v:ident => $body:expr, _ => $other:expr) => {
        match $data {
            TensorData::Uint8($v) => $body,
            TensorData::Uint16($v) => $body,
            TensorData::Uint32($v) => $body,
            TensorData::Uint64($v) => $body,
            TensorData::Int8($v) => $body,
            TensorData::Int16($v) => $body,
            TensorData::Int32($v) => $body,
            TensorData::Int64($v) => $body,
            _ => $other,
        }
    };
}

/// Rebuilds the same variant from `$body` applied to the vector inside.
macro_rules! map_same {
    ($data:expr, $v:ident => $body:expr) => {
        match $data {
            TensorData::Bool($v) => TensorData::Bool($body),
            TensorData::Uint8($v) => TensorData::Uint8($body),
            TensorData::Uint16($v) => TensorData::Uint16($body),
            TensorData::Uint32($v) => TensorData::Uint32($body),
            TensorData::Uint64($v) => TensorData::Uint64($body),
            TensorData::Int8($v) => TensorData::Int8($body),
            TensorData::Int16($v) => TensorData::Int16($body),
            TensorData::Int32($v) => TensorData::Int32($body),
            TensorData::Int64($v) => TensorData::Int64($body),
            TensorData::Fp16($v) => TensorData::Fp16($body),
            TensorData::Fp32($v) => TensorData::Fp32($body),
            TensorData::Fp64($v) => TensorData::Fp64($body),
            TensorData::Bytes($v) => TensorData::Bytes($body),
        }
    };
}

impl TensorData {
    pub fn datatype(&self) -> Datatype {
        match self {
            TensorData::Bool(_) => Datatype::Bool,
            TensorData::Uint8(_) => Datatype::Uint8,
            TensorData::Uint16(_) => Datatype::Uint16,
            TensorData::Uint32(_) => Datatype::Uint32,
            TensorData::Uint64(_) => Datatype::Uint64,
            TensorData::Int8(_) => Datatype::Int8,
            TensorData::Int16(_) => Datatype::Int16,
            TensorData::Int32(_) => Datatype::Int32,
            TensorData::Int64(_) => Datatype::Int64,
            TensorData::Fp16(_) => Datatype::Fp16,
            TensorData::Fp32(_) => Datatype::Fp32,
            TensorData::Fp64(_) => Datatype::Fp64,
            TensorData::Bytes(_) => Datatype::Bytes,
        }
    }

    pub fn len(&self) -> usize {
        each!(self, v => v.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every `step`-th element from `start`: column `start` of a row-major `[rows, step]` tensor.
    pub fn strided(&self, start: usize, step: usize) -> TensorData {
        map_same!(self, v => v.iter().skip(start).step_by(step.max(1)).cloned().collect())
    }

    /// An empty tensor of the same datatype.
    pub fn empty_like(&self) -> TensorData {
        map_same!(self, _v => Vec::new())
    }

    /// Appends `other`'s elements; false (and nothing appended) when the datatypes differ.
    pub fn append(&mut self, other: TensorData) -> bool {
        macro_rules! pairs {
            ($($variant:ident),*) => {
                match (self, other) {
                    $((TensorData::$variant(a), TensorData::$variant(b)) => a.extend(b),)*
                    _ => return false,
                }
            };
        }
        pairs!(
            Bool, Uint8, Uint16, Uint32, Uint64, Int8, Int16, Int32, Int64, Fp16, Fp32, Fp64, Bytes
        );
        true
    }

    /// Reads JSON `data`: nested arrays are flattened in row-major order (the protocol allows
    /// both `[[1,2],[3,4]]` and `[1,2,3,4]`), and a bare scalar is one element — seed 000 sends
    /// its BYTES payload as a plain string. `null` stands for NaN in float tensors.
    pub fn from_json(datatype: Datatype, data: &Value, what: &str) -> Result<Self> {
        let mut leaves = Vec::new();
        flatten(data, &mut leaves);
        let bad = |i: usize, v: &Value| {
            Error::invalid(format!(
                "{what}: element {i} ({}) is not a valid {datatype} value",
                preview(v)
            ))
        };
        macro_rules! ints {
            ($variant:ident, $t:ty) => {{
                let mut out = Vec::with_capacity(leaves.len());
                for (i, v) in leaves.iter().enumerate() {
                    out.push(
                        json_int(v)
                            .and_then(|n| <$t>::try_from(n).ok())
                            .ok_or_else(|| bad(i, v))?,
                    );
                }
                TensorData::$variant(out)
            }};
        }
        macro_rules! floats {
            ($variant:ident, $conv:expr) => {{
                let mut out = Vec::with_capacity(leaves.len());
                for (i, v) in leaves.iter().enumerate() {
                    let x = match v {
                        Value::Null => f64::NAN,
                        _ => v.as_f64().ok_or_else(|| bad(i, v))?,
                    };
                    out.push($conv(x));
                }
                TensorData::$variant(out)
            }};
        }
        Ok(match datatype {
            Datatype::Bool => TensorData::Bool(
                leaves
                    .iter()
                    .enumerate()
                    .map(|(i, v)| v.as_bool().ok_or_else(|| bad(i, v)))
                    .collect::<Result<_>>()?,
            ),
            Datatype::Uint8 => ints!(Uint8, u8),
            Datatype::Uint16 => ints!(Uint16, u16),
            Datatype::Uint32 => ints!(Uint32, u32),
            Datatype::Uint64 => ints!(Uint64, u64),
            Datatype::Int8 => ints!(Int8, i8),
            Datatype::Int16 => ints!(Int16, i16),
            Datatype::Int32 => ints!(Int32, i32),
            Datatype::Int64 => ints!(Int64, i64),
            Datatype::Fp16 => floats!(Fp16, f16::from_f64),
            #[allow(clippy::cast_possible_truncation)]
            Datatype::Fp32 => floats!(Fp32, |x: f64| x as f32),
            Datatype::Fp64 => floats!(Fp64, |x: f64| x),
            Datatype::Bytes => TensorData::Bytes(
                leaves
                    .iter()
                    .enumerate()
                    .map(|(i, v)| {
                        v.as_str()
                            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
                            .ok_or_else(|| bad(i, v))
                    })
                    .collect::<Result<_>>()?,
            ),
        })
    }

    /// Reads one tensor's raw bytes: little-endian, no padding, a BYTES element as a 4-byte
    /// little-endian length and its bytes.
    pub fn from_raw(datatype: Datatype, raw: &Bytes, what: &str) -> Result<Self> {
        if let Some(size) = datatype.byte_size()
            && !raw.len().is_multiple_of(size)
        {
            return Err(Error::invalid(format!(
                "{what}: {} raw bytes are not a whole number of {datatype} elements ({size} bytes each)",
                raw.len()
            )));
        }
        macro_rules! le {
            ($variant:ident, $t:ty) => {
                TensorData::$variant(
                    raw.chunks_exact(std::mem::size_of::<$t>())
                        .map(|c| {
                            let mut b = [0u8; std::mem::size_of::<$t>()];
                            b.copy_from_slice(c);
                            <$t>::from_le_bytes(b)
                        })
                        .collect(),
                )
            };
        }
        Ok(match datatype {
            Datatype::Bool => TensorData::Bool(raw.iter().map(|b| *b != 0).collect()),
            Datatype::Uint8 => TensorData::Uint8(raw.to_vec()),
            Datatype::Uint16 => le!(Uint16, u16),
            Datatype::Uint32 => le!(Uint32, u32),
            Datatype::Uint64 => le!(Uint64, u64),
            Datatype::Int8 => {
                TensorData::Int8(raw.iter().map(|b| i8::from_le_bytes([*b])).collect())
            }
            Datatype::Int16 => le!(Int16, i16),
            Datatype::Int32 => le!(Int32, i32),
            Datatype::Int64 => le!(Int64, i64),
            Datatype::Fp16 => le!(Fp16, f16),
            Datatype::Fp32 => le!(Fp32, f32),
            Datatype::Fp64 => le!(Fp64, f64),
            Datatype::Bytes => {
                let mut out = Vec::new();
                let mut at = 0;
                while at < raw.len() {
                    let len = raw
                        .get(at..at + 4)
                        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
                        .ok_or_else(|| {
                            Error::invalid(format!(
                                "{what}: raw BYTES data ends inside an element's 4-byte length"
                            ))
                        })?;
                    at += 4;
                    if at + len > raw.len() {
                        return Err(Error::invalid(format!(
                            "{what}: raw BYTES element {} claims {len} bytes but only {} remain",
                            out.len(),
                            raw.len() - at
                        )));
                    }
                    out.push(raw.slice(at..at + len));
                    at += len;
                }
                TensorData::Bytes(out)
            }
        })
    }

    /// The raw little-endian form [`TensorData::from_raw`] reads.
    pub fn to_raw(&self) -> Vec<u8> {
        match self {
            TensorData::Bool(v) => v.iter().map(|b| u8::from(*b)).collect(),
            TensorData::Uint8(v) => v.clone(),
            TensorData::Bytes(v) => {
                let mut out = Vec::with_capacity(v.iter().map(|b| b.len() + 4).sum());
                for b in v {
                    // A BYTES element over 4 GiB cannot be framed; V2 caps elements at 2^32.
                    let len = u32::try_from(b.len()).unwrap_or(u32::MAX);
                    out.extend_from_slice(&len.to_le_bytes());
                    out.extend_from_slice(b);
                }
                out
            }
            TensorData::Uint16(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            TensorData::Uint32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            TensorData::Uint64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            TensorData::Int8(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            TensorData::Int16(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            TensorData::Int32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            TensorData::Int64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            TensorData::Fp16(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            TensorData::Fp32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            TensorData::Fp64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        }
    }

    /// Element `i` as JSON (NaN and infinities become `null`, as JSON has no such numbers).
    pub fn json_at(&self, i: usize) -> Value {
        match self {
            TensorData::Bool(v) => Value::Bool(v[i]),
            TensorData::Fp16(v) => Value::from(f64::from(v[i].to_f32())),
            TensorData::Fp32(v) => Value::from(f64::from(v[i])),
            TensorData::Fp64(v) => Value::from(v[i]),
            TensorData::Bytes(v) => Value::String(String::from_utf8_lossy(&v[i]).into_owned()),
            other => each_int!(other, v => Value::from(v[i]), _ => Value::Null),
        }
    }

    /// Converts to another numeric datatype when no value changes meaning: integers to any
    /// float or to an integer type that holds them, floats to other floats. Integer targets
    /// refuse floats, as MLflow's schema enforcement does; BYTES and BOOL only convert to
    /// themselves. The error says why so it can be shown to the caller.
    pub fn cast(self, to: Datatype) -> std::result::Result<Self, String> {
        let from = self.datatype();
        if from == to {
            return Ok(self);
        }
        if to.is_float() {
            let xs: Vec<f64> = if from.is_float() {
                match &self {
                    TensorData::Fp16(v) => v.iter().map(|x| x.to_f64()).collect(),
                    TensorData::Fp32(v) => v.iter().map(|x| f64::from(*x)).collect(),
                    TensorData::Fp64(v) => v.clone(),
                    _ => Vec::new(),
                }
            } else {
                #[allow(clippy::cast_precision_loss)]
                let xs = each_int!(&self, v => v.iter().map(|x| *x as f64).collect(), _ => {
                    return Err(format!("cannot convert {from} to {to}"));
                });
                xs
            };
            #[allow(clippy::cast_possible_truncation)]
            return Ok(match to {
                Datatype::Fp16 => TensorData::Fp16(xs.into_iter().map(f16::from_f64).collect()),
                Datatype::Fp32 => TensorData::Fp32(xs.into_iter().map(|x| x as f32).collect()),
                _ => TensorData::Fp64(xs),
            });
        }
        if to.is_integer() {
            let ns: Vec<i128> = each_int!(&self, v => v.iter().map(|x| i128::from(*x)).collect(), _ => {
                return Err(format!("cannot safely convert {from} to {to}"));
            });
            macro_rules! narrow {
                ($variant:ident, $t:ty) => {{
                    let mut out = Vec::with_capacity(ns.len());
                    for (i, n) in ns.iter().enumerate() {
                        out.push(
                            <$t>::try_from(*n)
                                .map_err(|_| format!("element {i} ({n}) does not fit in {to}"))?,
                        );
                    }
                    TensorData::$variant(out)
                }};
            }
            return Ok(match to {
                Datatype::Uint8 => narrow!(Uint8, u8),
                Datatype::Uint16 => narrow!(Uint16, u16),
                Datatype::Uint32 => narrow!(Uint32, u32),
                Datatype::Uint64 => narrow!(Uint64, u64),
                Datatype::Int8 => narrow!(Int8, i8),
                Datatype::Int16 => narrow!(Int16, i16),
                Datatype::Int32 => narrow!(Int32, i32),
                _ => narrow!(Int64, i64),
            });
        }
        Err(format!("cannot convert {from} to {to}"))
    }
}

impl Serialize for TensorData {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.len()))?;
        match self {
            TensorData::Bytes(v) => {
                for b in v {
                    seq.serialize_element(&String::from_utf8_lossy(b))?;
                }
            }
            TensorData::Fp16(v) => {
                for x in v {
                    seq.serialize_element(&x.to_f32())?;
                }
            }
            TensorData::Bool(v) => v.iter().try_for_each(|x| seq.serialize_element(x))?,
            TensorData::Uint8(v) => v.iter().try_for_each(|x| seq.serialize_element(x))?,
            TensorData::Uint16(v) => v.iter().try_for_each(|x| seq.serialize_element(x))?,
            TensorData::Uint32(v) => v.iter().try_for_each(|x| seq.serialize_element(x))?,
            TensorData::Uint64(v) => v.iter().try_for_each(|x| seq.serialize_element(x))?,
            TensorData::Int8(v) => v.iter().try_for_each(|x| seq.serialize_element(x))?,
            TensorData::Int16(v) => v.iter().try_for_each(|x| seq.serialize_element(x))?,
            TensorData::Int32(v) => v.iter().try_for_each(|x| seq.serialize_element(x))?,
            TensorData::Int64(v) => v.iter().try_for_each(|x| seq.serialize_element(x))?,
            TensorData::Fp32(v) => v.iter().try_for_each(|x| seq.serialize_element(x))?,
            TensorData::Fp64(v) => v.iter().try_for_each(|x| seq.serialize_element(x))?,
        }
        seq.end()
    }
}

fn flatten<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| flatten(i, out)),
        other => out.push(other),
    }
}

/// A JSON number as an integer; integral floats (`3.0`) count, as numpy would take them.
pub(crate) fn json_int(v: &Value) -> Option<i128> {
    if let Some(n) = v.as_i64() {
        return Some(i128::from(n));
    }
    if let Some(n) = v.as_u64() {
        return Some(i128::from(n));
    }
    let x = v.as_f64()?;
    #[allow(clippy::cast_possible_truncation)]
    (x.fract() == 0.0 && x.abs() < 9.0e18).then_some(x as i128)
}

/// A short rendering of a value for error messages; requests can be megabytes.
pub(crate) fn preview(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 40 {
        format!("{}…", s.chars().take(40).collect::<String>())
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn json_data_may_be_nested_or_flat() {
        let nested =
            TensorData::from_json(Datatype::Fp64, &json!([[1, 2.5], [3, 4]]), "x").unwrap();
        let flat = TensorData::from_json(Datatype::Fp64, &json!([1, 2.5, 3, 4]), "x").unwrap();
        assert_eq!(nested, flat);
        assert_eq!(nested, TensorData::Fp64(vec![1.0, 2.5, 3.0, 4.0]));
    }

    #[test]
    fn a_bare_string_is_one_bytes_element() {
        let d = TensorData::from_json(Datatype::Bytes, &json!("{\"a\": 10}"), "x").unwrap();
        assert_eq!(
            d,
            TensorData::Bytes(vec![Bytes::from_static(b"{\"a\": 10}")])
        );
    }

    #[test]
    fn null_is_nan_for_floats_only() {
        let d = TensorData::from_json(Datatype::Fp32, &json!([1, null]), "x").unwrap();
        let TensorData::Fp32(v) = d else { panic!() };
        assert!(v[1].is_nan());
        let e = TensorData::from_json(Datatype::Int64, &json!([1, null]), "input 'n'").unwrap_err();
        assert_eq!(
            e.message,
            "input 'n': element 1 (null) is not a valid INT64 value"
        );
    }

    #[test]
    fn wrong_element_types_name_the_element() {
        let e = TensorData::from_json(Datatype::Fp64, &json!(["a", "b"]), "input 'fixed acidity'")
            .unwrap_err();
        assert_eq!(
            e.message,
            "input 'fixed acidity': element 0 (\"a\") is not a valid FP64 value"
        );
        let e = TensorData::from_json(Datatype::Uint8, &json!([256]), "input 'u'").unwrap_err();
        assert!(e.message.contains("element 0 (256)"), "{}", e.message);
    }

    #[test]
    fn unknown_datatypes_list_the_known_ones() {
        let e = Datatype::parse("FP99", "input 'x'").unwrap_err();
        assert!(
            e.message
                .starts_with("input 'x': unknown datatype 'FP99' (expected one of BOOL, UINT8")
        );
        assert!(
            Datatype::parse("BF16", "input 'x'")
                .unwrap_err()
                .message
                .contains("BF16 tensors are not supported")
        );
    }

    #[test]
    fn raw_round_trips_every_datatype() {
        let cases = vec![
            TensorData::Bool(vec![true, false]),
            TensorData::Uint8(vec![1, 255]),
            TensorData::Uint16(vec![1, 65535]),
            TensorData::Uint32(vec![7]),
            TensorData::Uint64(vec![u64::MAX]),
            TensorData::Int8(vec![-1]),
            TensorData::Int16(vec![-300]),
            TensorData::Int32(vec![-70000]),
            TensorData::Int64(vec![i64::MIN]),
            TensorData::Fp16(vec![f16::from_f32(1.5)]),
            TensorData::Fp32(vec![0.25]),
            TensorData::Fp64(vec![5.641053262229102]),
            TensorData::Bytes(vec![Bytes::from_static(b"hello"), Bytes::new()]),
        ];
        for data in cases {
            let raw = Bytes::from(data.to_raw());
            assert_eq!(
                TensorData::from_raw(data.datatype(), &raw, "x").unwrap(),
                data
            );
        }
    }

    #[test]
    fn raw_bytes_framing_errors_are_explained() {
        let e = TensorData::from_raw(Datatype::Fp64, &Bytes::from_static(&[0; 12]), "input 'x'")
            .unwrap_err();
        assert!(
            e.message
                .contains("12 raw bytes are not a whole number of FP64"),
            "{}",
            e.message
        );
        let e = TensorData::from_raw(
            Datatype::Bytes,
            &Bytes::from_static(&[9, 0, 0, 0, b'a']),
            "input 'x'",
        )
        .unwrap_err();
        assert!(
            e.message.contains("claims 9 bytes but only 1 remain"),
            "{}",
            e.message
        );
    }

    #[test]
    fn casts_keep_meaning_or_refuse() {
        assert_eq!(
            TensorData::Int64(vec![1, 2]).cast(Datatype::Fp64).unwrap(),
            TensorData::Fp64(vec![1.0, 2.0])
        );
        assert_eq!(
            TensorData::Fp32(vec![0.5]).cast(Datatype::Fp64).unwrap(),
            TensorData::Fp64(vec![0.5])
        );
        assert_eq!(
            TensorData::Int64(vec![3]).cast(Datatype::Int32).unwrap(),
            TensorData::Int32(vec![3])
        );
        assert!(
            TensorData::Fp64(vec![1.0])
                .cast(Datatype::Int64)
                .unwrap_err()
                .contains("cannot safely convert FP64 to INT64")
        );
        assert!(
            TensorData::Int64(vec![1 << 40])
                .cast(Datatype::Int32)
                .unwrap_err()
                .contains("does not fit in INT32")
        );
        assert!(TensorData::Bytes(vec![]).cast(Datatype::Fp64).is_err());
    }

    #[test]
    fn json_output_turns_nan_into_null() {
        let s = serde_json::to_string(&TensorData::Fp64(vec![1.5, f64::NAN])).unwrap();
        assert_eq!(s, "[1.5,null]");
        let s = serde_json::to_string(&TensorData::Bytes(vec![Bytes::from_static(b"hi")])).unwrap();
        assert_eq!(s, "[\"hi\"]");
    }
}
