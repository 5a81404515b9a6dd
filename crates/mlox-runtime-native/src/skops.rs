//! skops archives (`model.skops`, MLflow's default format for scikit-learn estimators), read
//! without executing anything.
//!
//! A skops file is a zip archive holding `schema.json` — the object tree, each node naming its
//! Python type and the loader that would rebuild it (`ObjectNode` for an object's attribute
//! dict, `JsonNode` for a scalar stored as JSON text, `ListNode`/`TupleNode`/`DictNode`,
//! `NdArrayNode` for a numpy array stored as a `.npy` entry or, for object arrays, as a list of
//! nodes, `TreeNode` for a scikit-learn tree) — and one `.npy` file per numeric array. This
//! module owns reading that tree ([`Node`]) and those arrays ([`Array`]); what an estimator
//! means is its caller's business. Only stored (uncompressed) zip entries are read, which is how
//! skops writes them; anything else is refused, so the model is served by the Python runtime.

use serde_json::{Map, Value};

use crate::Refusal;

pub fn corrupt(message: impl Into<String>) -> Refusal {
    Refusal::Corrupt(format!("the skops archive: {}", message.into()))
}

pub fn unsupported(message: impl Into<String>) -> Refusal {
    Refusal::Unsupported(message.into())
}

/// Class labels as numpy held them; `predict` returns them in this type.
#[derive(Clone, Debug, PartialEq)]
pub enum Labels {
    Int64(Vec<i64>),
    Int32(Vec<i32>),
    Float64(Vec<f64>),
    Bool(Vec<bool>),
    Str(Vec<String>),
}

impl Labels {
    pub fn len(&self) -> usize {
        match self {
            Labels::Int64(v) => v.len(),
            Labels::Int32(v) => v.len(),
            Labels::Float64(v) => v.len(),
            Labels::Bool(v) => v.len(),
            Labels::Str(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An opened archive and its parsed `schema.json`.
pub struct Skops<'a> {
    pub archive: Archive<'a>,
    pub schema: Value,
}

impl<'a> Skops<'a> {
    pub fn open(bytes: &'a [u8]) -> Result<Self, Refusal> {
        let archive = Archive::open(bytes)?;
        let schema: Value = serde_json::from_slice(archive.file("schema.json")?)
            .map_err(|e| corrupt(format!("schema.json is not JSON: {e}")))?;
        Ok(Skops { archive, schema })
    }

    pub fn root(&self) -> Node<'_> {
        Node {
            value: &self.schema,
            archive: &self.archive,
        }
    }
}

/// One node of the object tree.
#[derive(Clone, Copy)]
pub struct Node<'a> {
    value: &'a Value,
    archive: &'a Archive<'a>,
}

/// A JSON scalar as Python held it; numbers keep NaN and infinities, which JSON text spells
/// `NaN`, `Infinity` and `-Infinity`.
#[derive(Clone, Debug, PartialEq)]
pub enum Scalar {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    /// A list or dict.
    Other(Value),
}

impl Scalar {
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Scalar::Int(i) => Some(i as f64),
            Scalar::Float(f) => Some(f),
            _ => None,
        }
    }
}

impl<'a> Node<'a> {
    fn str_field(&self, key: &str) -> &'a str {
        self.value.get(key).and_then(Value::as_str).unwrap_or("")
    }

    pub fn loader(&self) -> &'a str {
        self.str_field("__loader__")
    }

    pub fn class(&self) -> &'a str {
        self.str_field("__class__")
    }

    /// `module.Class`, as Python names the type.
    pub fn type_name(&self) -> String {
        format!("{}.{}", self.str_field("__module__"), self.class())
    }

    /// Another value of the same archive as a node.
    pub fn with(&self, value: &'a Value) -> Node<'a> {
        self.child(value)
    }

    fn child(&self, value: &'a Value) -> Node<'a> {
        Node {
            value,
            archive: self.archive,
        }
    }

    /// The attribute dict of an object rebuilt from its `__dict__` (`ObjectNode`) or through
    /// `__reduce__` (`TreeNode` and kin).
    pub fn attrs(&self) -> Result<Attrs<'a>, Refusal> {
        match self.loader() {
            "ObjectNode" | "TreeNode" => {}
            other => {
                return Err(unsupported(format!(
                    "{} is stored by {other}, not as plain attributes",
                    self.type_name()
                )));
            }
        }
        let content = self
            .value
            .get("content")
            .ok_or_else(|| corrupt(format!("{} has no attributes", self.type_name())))?;
        self.child(content).dict()
    }

    /// The entries of a `DictNode` with string keys.
    pub fn dict(&self) -> Result<Attrs<'a>, Refusal> {
        if self.loader() != "DictNode" {
            return Err(unsupported(format!(
                "a {} where a dict was expected",
                self.loader()
            )));
        }
        let map = self
            .value
            .get("content")
            .and_then(Value::as_object)
            .ok_or_else(|| corrupt("a dict has no content"))?;
        Ok(Attrs {
            map,
            archive: self.archive,
            owner: self.value,
        })
    }

    /// The items of a list or tuple.
    pub fn items(&self) -> Result<Vec<Node<'a>>, Refusal> {
        if !matches!(self.loader(), "ListNode" | "TupleNode") {
            return Err(unsupported(format!(
                "a {} where a list was expected",
                self.loader()
            )));
        }
        let items = self
            .value
            .get("content")
            .and_then(Value::as_array)
            .ok_or_else(|| corrupt("a list has no content"))?;
        Ok(items.iter().map(|v| self.child(v)).collect())
    }

    /// The node's `content` as stored, for nodes whose content is plain JSON (`SliceNode`).
    pub fn raw_content(&self) -> Option<&'a Value> {
        self.value.get("content")
    }

    pub fn is_json(&self) -> bool {
        self.loader() == "JsonNode"
    }

    /// The value of a `JsonNode`.
    pub fn scalar(&self) -> Result<Scalar, Refusal> {
        if !self.is_json() {
            return Err(unsupported(format!(
                "a {} ({}) where a plain value was expected",
                self.loader(),
                self.type_name()
            )));
        }
        let text = self
            .value
            .get("content")
            .and_then(Value::as_str)
            .ok_or_else(|| corrupt("a JSON node has no content"))?;
        Ok(match text.trim() {
            "NaN" => Scalar::Float(f64::NAN),
            "Infinity" => Scalar::Float(f64::INFINITY),
            "-Infinity" => Scalar::Float(f64::NEG_INFINITY),
            text => match serde_json::from_str(text).map_err(|e| corrupt(e.to_string()))? {
                Value::Null => Scalar::None,
                Value::Bool(b) => Scalar::Bool(b),
                Value::Number(n) => match n.as_i64() {
                    Some(i) => Scalar::Int(i),
                    None => Scalar::Float(n.as_f64().unwrap_or(f64::NAN)),
                },
                Value::String(s) => Scalar::Str(s),
                other => Scalar::Other(other),
            },
        })
    }

    /// A number stored as JSON or as a 0-d numpy array (`np.float64(…)`).
    pub fn number(&self) -> Result<f64, Refusal> {
        if self.is_json() {
            return self
                .scalar()?
                .as_f64()
                .ok_or_else(|| unsupported(format!("a non-number {:?}", self.scalar())));
        }
        let array = self.array()?;
        match (&array.data, array.len()) {
            (Data::F64(v), 1) => Ok(v[0]),
            (Data::I64(v), 1) => Ok(v[0] as f64),
            (Data::I32(v), 1) => Ok(f64::from(v[0])),
            _ => Err(unsupported("a numpy scalar that is not one number")),
        }
    }

    /// A numpy array (`NdArrayNode`). Object arrays (strings from pandas, estimators) come back
    /// as [`Data::Nodes`].
    pub fn array(&self) -> Result<Array<'a>, Refusal> {
        if self.loader() != "NdArrayNode" {
            return Err(unsupported(format!(
                "a {} ({}) where a numpy array was expected",
                self.loader(),
                self.type_name()
            )));
        }
        match self.value.get("type").and_then(Value::as_str) {
            Some("numpy") => {
                let file = self
                    .value
                    .get("file")
                    .and_then(Value::as_str)
                    .ok_or_else(|| corrupt("an array names no file"))?;
                npy(self.archive.file(file)?)
            }
            Some("json") => {
                let items = self
                    .value
                    .get("content")
                    .and_then(Value::as_array)
                    .ok_or_else(|| corrupt("an object array has no content"))?;
                let shape = match self.value.get("shape") {
                    Some(s) => self
                        .child(s)
                        .items()?
                        .iter()
                        .map(|d| match d.scalar()? {
                            Scalar::Int(n) if n >= 0 => Ok(n as usize),
                            _ => Err(corrupt("an array shape is not a list of sizes")),
                        })
                        .collect::<Result<Vec<_>, _>>()?,
                    None => vec![items.len()],
                };
                Ok(Array {
                    shape,
                    data: Data::Nodes(items.iter().map(|v| self.child(v)).collect()),
                })
            }
            _ => Err(unsupported("a numpy array in an unknown encoding")),
        }
    }

    /// A 1-D array of class labels or categories in its numpy type.
    pub fn labels(&self) -> Result<Labels, Refusal> {
        let array = self.array()?;
        if array.shape.len() != 1 {
            return Err(unsupported("labels that are not a 1-D array"));
        }
        Ok(match array.data {
            Data::I64(v) => Labels::Int64(v),
            Data::I32(v) => Labels::Int32(v),
            Data::F64(v) => Labels::Float64(v),
            Data::Bool(v) => Labels::Bool(v),
            Data::Str(v) => Labels::Str(v),
            Data::Nodes(nodes) => Labels::Str(
                nodes
                    .iter()
                    .map(|n| match n.scalar()? {
                        Scalar::Str(s) => Ok(s),
                        other => Err(unsupported(format!(
                            "object labels that are not all strings ({other:?})"
                        ))),
                    })
                    .collect::<Result<_, _>>()?,
            ),
            _ => return Err(unsupported("labels of an unsupported numpy dtype")),
        })
    }
}

/// The string-keyed entries of an object's attribute dict.
#[derive(Clone, Copy)]
pub struct Attrs<'a> {
    map: &'a Map<String, Value>,
    archive: &'a Archive<'a>,
    owner: &'a Value,
}

impl<'a> Attrs<'a> {
    pub fn get(&self, name: &str) -> Option<Node<'a>> {
        self.map.get(name).map(|value| Node {
            value,
            archive: self.archive,
        })
    }

    /// An attribute a fitted estimator always has.
    pub fn req(&self, name: &str) -> Result<Node<'a>, Refusal> {
        self.get(name).ok_or_else(|| {
            corrupt(format!(
                "{}.{} has no {name} (was it fitted?)",
                self.owner
                    .get("__module__")
                    .and_then(Value::as_str)
                    .unwrap_or("?"),
                self.owner
                    .get("__class__")
                    .and_then(Value::as_str)
                    .unwrap_or("?"),
            ))
        })
    }

    /// A JSON attribute, `None` when absent.
    pub fn scalar(&self, name: &str) -> Result<Option<Scalar>, Refusal> {
        self.get(name).map(|n| n.scalar()).transpose()
    }

    /// A string parameter (`strategy`, `handle_unknown`, …).
    pub fn string(&self, name: &str) -> Result<Option<String>, Refusal> {
        Ok(match self.scalar(name)? {
            Some(Scalar::Str(s)) => Some(s),
            _ => None,
        })
    }

    /// A boolean parameter, `default` when absent.
    pub fn flag(&self, name: &str, default: bool) -> Result<bool, Refusal> {
        Ok(match self.scalar(name)? {
            Some(Scalar::Bool(b)) => b,
            None => default,
            Some(other) => {
                return Err(unsupported(format!("{name} = {other:?}")));
            }
        })
    }

    /// Whether the attribute is absent or `None`.
    pub fn is_none(&self, name: &str) -> bool {
        match self.get(name) {
            None => true,
            Some(n) => n.is_json() && matches!(n.scalar(), Ok(Scalar::None)),
        }
    }

    /// The `feature_names_in_` of an estimator fitted on a DataFrame with string column names.
    pub fn feature_names(&self) -> Result<Option<Vec<String>>, Refusal> {
        let Some(node) = self.get("feature_names_in_") else {
            return Ok(None);
        };
        match node.labels()? {
            Labels::Str(names) => Ok(Some(names)),
            _ => Err(corrupt("feature_names_in_ is not a list of strings")),
        }
    }
}

/// A numpy array read from the archive, in C (row-major) order.
pub struct Array<'a> {
    pub shape: Vec<usize>,
    pub data: Data<'a>,
}

pub enum Data<'a> {
    F64(Vec<f64>),
    F32(Vec<f32>),
    I64(Vec<i64>),
    I32(Vec<i32>),
    Bool(Vec<bool>),
    Str(Vec<String>),
    /// A structured array: each element `itemsize` bytes holding the named fields.
    Records(Records),
    /// An object array, stored as a list of nodes.
    Nodes(Vec<Node<'a>>),
}

impl Array<'_> {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The elements as `f64` when the array holds 64-bit floats.
    pub fn into_f64(self, what: &str) -> Result<Vec<f64>, Refusal> {
        match self.data {
            Data::F64(v) => Ok(v),
            Data::F32(_) => Err(unsupported(format!("{what} in 32-bit floats"))),
            _ => Err(corrupt(format!("{what} is not an array of floats"))),
        }
    }
}

/// The fields of a structured numpy array (scikit-learn's tree nodes).
pub struct Records {
    fields: Vec<(String, String, usize)>,
    itemsize: usize,
    count: usize,
    bytes: Vec<u8>,
}

impl Records {
    fn field(&self, name: &str, descr: &[&str]) -> Result<(usize, usize), Refusal> {
        let (_, d, offset) = self
            .fields
            .iter()
            .find(|(n, _, _)| n == name)
            .ok_or_else(|| corrupt(format!("a record array has no field {name}")))?;
        if !descr.contains(&d.as_str()) {
            return Err(unsupported(format!("record field {name} of dtype {d}")));
        }
        Ok((*offset, width(d).unwrap_or(0)))
    }

    fn values<const N: usize, T>(
        &self,
        name: &str,
        descr: &[&str],
        convert: impl Fn([u8; N]) -> T,
    ) -> Result<Vec<T>, Refusal> {
        let (offset, w) = self.field(name, descr)?;
        if w != N {
            return Err(corrupt(format!("record field {name} has width {w}")));
        }
        Ok(self
            .bytes
            .chunks_exact(self.itemsize)
            .take(self.count)
            .map(|r| {
                let mut b = [0u8; N];
                b.copy_from_slice(&r[offset..offset + N]);
                convert(b)
            })
            .collect())
    }

    pub fn i64s(&self, name: &str) -> Result<Vec<i64>, Refusal> {
        self.values(name, &["<i8"], i64::from_le_bytes)
    }

    pub fn f64s(&self, name: &str) -> Result<Vec<f64>, Refusal> {
        self.values(name, &["<f8"], f64::from_le_bytes)
    }

    pub fn u8s(&self, name: &str) -> Result<Vec<u8>, Refusal> {
        self.values(name, &["|u1", "|b1"], |b: [u8; 1]| b[0])
    }
}

/// The byte width of a little-endian or byte-sized numpy type code.
fn width(descr: &str) -> Option<usize> {
    let (kind, size) = descr.split_at(2.min(descr.len()));
    let size: usize = size.parse().ok()?;
    match kind {
        "<f" | "<i" | "<u" | "|u" | "|i" | "|b" | "|V" => Some(size),
        "<U" => Some(size * 4),
        _ => None,
    }
}

/// A `.npy` file.
pub fn npy(bytes: &[u8]) -> Result<Array<'static>, Refusal> {
    let bad = |m: &str| corrupt(format!("a .npy file {m}"));
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad("lacks the numpy magic"));
    }
    let (header_len, start): (usize, usize) = match bytes[6] {
        1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        _ => return Err(bad("has an unknown version")),
    };
    let header = bytes
        .get(start..start.saturating_add(header_len))
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or_else(|| bad("has a truncated header"))?;
    let data = &bytes[start + header_len..];
    let descr = dict_value(header, "descr").ok_or_else(|| bad("has no descr"))?;
    let fortran = dict_value(header, "fortran_order").is_some_and(|v| v.starts_with("True"));
    let shape = dict_value(header, "shape").ok_or_else(|| bad("has no shape"))?;
    let shape: Vec<usize> = shape
        .trim_matches(|c| c == '(' || c == ')')
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(str::parse)
        .collect::<Result<_, _>>()
        .map_err(|_| bad("has a bad shape"))?;
    let n = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| bad("has an impossible shape"))?;
    if fortran && shape.len() > 2 {
        return Err(unsupported(
            "a Fortran-ordered array of more than 2 dimensions",
        ));
    }
    let exact = |w: usize| -> Result<Vec<&[u8]>, Refusal> {
        if n.checked_mul(w) != Some(data.len()) {
            return Err(bad("holds a different number of bytes than its shape"));
        }
        Ok(data.chunks_exact(w.max(1)).take(n).collect())
    };
    let mut array = if descr.starts_with('[') {
        let fields = record_fields(descr).ok_or_else(|| bad("has an unreadable record dtype"))?;
        let itemsize = fields
            .last()
            .map_or(0, |(_, d, o)| o + width(d).unwrap_or(0));
        if itemsize == 0 || n.checked_mul(itemsize) != Some(data.len()) {
            return Err(bad("holds a different number of bytes than its shape"));
        }
        Data::Records(Records {
            fields,
            itemsize,
            count: n,
            bytes: data.to_vec(),
        })
    } else {
        let descr = descr.trim_matches(|c| c == '\'' || c == '"');
        let le8 = |c: &[u8]| {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            b
        };
        let le4 = |c: &[u8]| {
            let mut b = [0u8; 4];
            b.copy_from_slice(c);
            b
        };
        match descr {
            "<f8" => Data::F64(
                exact(8)?
                    .into_iter()
                    .map(|c| f64::from_le_bytes(le8(c)))
                    .collect(),
            ),
            "<f4" => Data::F32(
                exact(4)?
                    .into_iter()
                    .map(|c| f32::from_le_bytes(le4(c)))
                    .collect(),
            ),
            "<i8" => Data::I64(
                exact(8)?
                    .into_iter()
                    .map(|c| i64::from_le_bytes(le8(c)))
                    .collect(),
            ),
            "<i4" => Data::I32(
                exact(4)?
                    .into_iter()
                    .map(|c| i32::from_le_bytes(le4(c)))
                    .collect(),
            ),
            "|b1" => Data::Bool(exact(1)?.into_iter().map(|c| c[0] != 0).collect()),
            d if d.starts_with("<U") => {
                let chars: usize = d[2..].parse().map_err(|_| bad("has a bad string width"))?;
                let items = if chars == 0 {
                    vec![String::new(); n]
                } else {
                    exact(chars * 4)?
                        .into_iter()
                        .map(|c| {
                            c.chunks_exact(4)
                                .map(|u| u32::from_le_bytes([u[0], u[1], u[2], u[3]]))
                                .take_while(|&u| u != 0)
                                .map(|u| char::from_u32(u).ok_or_else(|| bad("holds a bad char")))
                                .collect::<Result<String, _>>()
                        })
                        .collect::<Result<_, _>>()?
                };
                Data::Str(items)
            }
            other => return Err(unsupported(format!("numpy arrays of dtype {other}"))),
        }
    };
    if fortran && shape.len() == 2 {
        array = transpose(array, shape[0], shape[1]);
    }
    Ok(Array { shape, data: array })
}

/// Column-major `rows × cols` elements in row-major order.
fn transpose(data: Data<'static>, rows: usize, cols: usize) -> Data<'static> {
    fn t<T: Clone>(v: Vec<T>, rows: usize, cols: usize) -> Vec<T> {
        (0..rows * cols)
            .map(|i| v[(i % cols) * rows + i / cols].clone())
            .collect()
    }
    match data {
        Data::F64(v) => Data::F64(t(v, rows, cols)),
        Data::F32(v) => Data::F32(t(v, rows, cols)),
        Data::I64(v) => Data::I64(t(v, rows, cols)),
        Data::I32(v) => Data::I32(t(v, rows, cols)),
        Data::Bool(v) => Data::Bool(t(v, rows, cols)),
        Data::Str(v) => Data::Str(t(v, rows, cols)),
        other => other,
    }
}

/// `[('name', '<i8'), …]`: each field's name, type code and byte offset.
fn record_fields(descr: &str) -> Option<Vec<(String, String, usize)>> {
    let inner = descr.strip_prefix('[')?.strip_suffix(']')?;
    let mut fields = Vec::new();
    let mut offset = 0;
    for part in inner.split(')').map(str::trim).filter(|p| !p.is_empty()) {
        let part = part.trim_start_matches(',').trim().strip_prefix('(')?;
        let mut pieces = part.split(',').map(|p| p.trim().trim_matches('\''));
        let name = pieces.next()?.to_owned();
        let d = pieces.next()?.to_owned();
        if pieces.next().is_some_and(|p| !p.is_empty()) {
            return None;
        }
        let w = width(&d)?;
        fields.push((name, d, offset));
        offset += w;
    }
    Some(fields)
}

/// The text after `'key':` in a numpy header dict, up to the next top-level comma.
fn dict_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let at = header
        .find(&format!("'{key}':"))
        .map(|i| i + key.len() + 3)?;
    let rest = header[at..].trim_start();
    let mut depth = 0i32;
    for (i, c) in rest.char_indices() {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => depth -= 1,
            ',' | '}' if depth == 0 => return Some(rest[..i].trim()),
            _ => {}
        }
    }
    Some(rest.trim())
}

/// The stored entries of a zip archive.
pub struct Archive<'a> {
    entries: Vec<(String, &'a [u8])>,
}

impl<'a> Archive<'a> {
    pub fn open(bytes: &'a [u8]) -> Result<Self, Refusal> {
        let u16_at = |at: usize| -> Result<usize, Refusal> {
            bytes
                .get(at..at.saturating_add(2))
                .map(|b| usize::from(u16::from_le_bytes([b[0], b[1]])))
                .ok_or_else(|| corrupt("the zip structure is truncated"))
        };
        let u32_at = |at: usize| -> Result<usize, Refusal> {
            bytes
                .get(at..at.saturating_add(4))
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
                .ok_or_else(|| corrupt("the zip structure is truncated"))
        };
        // The end-of-central-directory record is the last 22 bytes plus a comment of at most
        // 64 KiB.
        let search_from = bytes.len().saturating_sub(22 + 0xffff);
        let eocd = (search_from..=bytes.len().saturating_sub(22))
            .rev()
            .find(|&i| bytes[i..].starts_with(b"PK\x05\x06"))
            .ok_or_else(|| corrupt("not a zip archive"))?;
        let count = u16_at(eocd + 10)?;
        let mut at = u32_at(eocd + 16)?;
        if count == 0xffff || at == 0xffff_ffff {
            return Err(unsupported("zip64 archives"));
        }
        let mut entries = Vec::with_capacity(count);
        for _ in 0..count {
            if bytes.get(at..at.saturating_add(4)) != Some(b"PK\x01\x02") {
                return Err(corrupt("a central directory entry is damaged"));
            }
            let method = u16_at(at + 10)?;
            let crc = u32_at(at + 16)? as u32;
            let size = u32_at(at + 20)?;
            let stored_size = u32_at(at + 24)?;
            let name_len = u16_at(at + 28)?;
            let extra_len = u16_at(at + 30)?;
            let comment_len = u16_at(at + 32)?;
            let local = u32_at(at + 42)?;
            let name = bytes
                .get(at + 46..at + 46 + name_len)
                .and_then(|n| std::str::from_utf8(n).ok())
                .ok_or_else(|| corrupt("an entry name is damaged"))?
                .to_owned();
            at += 46 + name_len + extra_len + comment_len;
            if method != 0 {
                return Err(unsupported(format!(
                    "compressed skops archives (entry {name} uses zip method {method})"
                )));
            }
            if size != stored_size || size == 0xffff_ffff {
                return Err(corrupt(format!("entry {name} has inconsistent sizes")));
            }
            if bytes.get(local..local.saturating_add(4)) != Some(b"PK\x03\x04") {
                return Err(corrupt(format!("entry {name} has no local header")));
            }
            let data_start = local + 30 + u16_at(local + 26)? + u16_at(local + 28)?;
            let data = bytes
                .get(data_start..data_start.saturating_add(size))
                .ok_or_else(|| corrupt(format!("entry {name} is truncated")))?;
            if crc32(data) != crc {
                return Err(corrupt(format!("entry {name} fails its checksum")));
            }
            entries.push((name, data));
        }
        Ok(Archive { entries })
    }

    pub fn file(&self, name: &str) -> Result<&'a [u8], Refusal> {
        self.entries
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, d)| *d)
            .ok_or_else(|| corrupt(format!("it has no {name}")))
    }
}

/// The CRC-32 zip stores for each entry (IEEE polynomial, reflected).
fn crc32(data: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    0xedb8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            table[i] = c;
            i += 1;
        }
        table
    };
    let mut crc = !0u32;
    for &b in data {
        crc = TABLE[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

#[cfg(any(test, feature = "testing"))]
impl<'a> Node<'a> {
    /// A node of a tree that references no arrays.
    pub fn test(value: &'a Value) -> Self {
        static EMPTY: Archive<'static> = Archive {
            entries: Vec::new(),
        };
        Node {
            value,
            archive: &EMPTY,
        }
    }
}

/// Builders of archives for the tests of the readers built on this one.
#[cfg(any(test, feature = "testing"))]
pub mod testing {
    use super::crc32;

    /// A zip archive of stored entries, as Python's zipfile writes with ZIP_STORED.
    pub fn zip(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut central = Vec::new();
        for (name, data) in files {
            let offset = out.len() as u32;
            let crc = crc32(data);
            let header = |sig: &[u8], central: bool| {
                let mut h = sig.to_vec();
                if central {
                    h.extend(20u16.to_le_bytes());
                }
                h.extend(20u16.to_le_bytes());
                h.extend(0u16.to_le_bytes()); // flags
                h.extend(0u16.to_le_bytes()); // method: stored
                h.extend(0u32.to_le_bytes()); // time, date
                h.extend(crc.to_le_bytes());
                h.extend((data.len() as u32).to_le_bytes());
                h.extend((data.len() as u32).to_le_bytes());
                h.extend((name.len() as u16).to_le_bytes());
                h.extend(0u16.to_le_bytes()); // extra
                if central {
                    h.extend(0u16.to_le_bytes()); // comment
                    h.extend(0u16.to_le_bytes()); // disk
                    h.extend(0u16.to_le_bytes()); // internal attributes
                    h.extend(0u32.to_le_bytes()); // external attributes
                    h.extend(offset.to_le_bytes());
                }
                h.extend(name.as_bytes());
                h
            };
            out.extend(header(b"PK\x03\x04", false));
            out.extend(*data);
            central.extend(header(b"PK\x01\x02", true));
        }
        let cd_offset = out.len() as u32;
        let cd_len = central.len() as u32;
        out.extend(central);
        out.extend(b"PK\x05\x06");
        out.extend([0u8; 4]);
        out.extend((files.len() as u16).to_le_bytes());
        out.extend((files.len() as u16).to_le_bytes());
        out.extend(cd_len.to_le_bytes());
        out.extend(cd_offset.to_le_bytes());
        out.extend(0u16.to_le_bytes());
        out
    }

    pub fn npy_file(descr: &str, fortran: bool, shape: &str, data: &[u8]) -> Vec<u8> {
        let order = if fortran { "True" } else { "False" };
        let mut header =
            format!("{{'descr': {descr}, 'fortran_order': {order}, 'shape': {shape}, }}");
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend((header.len() as u16).to_le_bytes());
        out.extend(header.as_bytes());
        out.extend(data);
        out
    }

    pub fn json_node(value: &str) -> serde_json::Value {
        serde_json::json!({"__class__": "str", "__module__": "builtins",
            "__loader__": "JsonNode", "content": value, "is_json": true})
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::testing::*;
    use super::*;

    fn f64_bytes(v: &[f64]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn crc32_of_a_known_string() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    }

    #[test]
    fn fortran_ordered_matrices_come_back_row_major() {
        // [[1, 2, 3], [4, 5, 6]] stored column by column.
        let file = npy_file(
            "'<f8'",
            true,
            "(2, 3)",
            &f64_bytes(&[1.0, 4.0, 2.0, 5.0, 3.0, 6.0]),
        );
        let a = npy(&file).unwrap();
        assert_eq!(a.shape, vec![2, 3]);
        assert_eq!(a.into_f64("x").unwrap(), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    }

    #[test]
    fn record_arrays_expose_their_fields() {
        let descr = "[('left_child', '<i8'), ('threshold', '<f8'), ('missing_go_to_left', \
                     '|u1'), ('', '|V7')]";
        let mut data = Vec::new();
        for (l, t, m) in [(1i64, 0.5f64, 1u8), (-1, -2.0, 0)] {
            data.extend(l.to_le_bytes());
            data.extend(t.to_le_bytes());
            data.push(m);
            data.extend([0u8; 7]);
        }
        let a = npy(&npy_file(descr, false, "(2,)", &data)).unwrap();
        let Data::Records(r) = a.data else { panic!() };
        assert_eq!(r.i64s("left_child").unwrap(), vec![1, -1]);
        assert_eq!(r.f64s("threshold").unwrap(), vec![0.5, -2.0]);
        assert_eq!(r.u8s("missing_go_to_left").unwrap(), vec![1, 0]);
        assert!(matches!(r.f64s("feature"), Err(Refusal::Corrupt(_))));
    }

    #[test]
    fn scalars_keep_nan_and_none() {
        let archive = Archive { entries: vec![] };
        let node = |v: &Value| {
            Node {
                value: v,
                archive: &archive,
            }
            .scalar()
            .unwrap()
        };
        assert!(matches!(node(&json_node("NaN")), Scalar::Float(f) if f.is_nan()));
        assert_eq!(node(&json_node("null")), Scalar::None);
        assert_eq!(node(&json_node("3")), Scalar::Int(3));
        assert_eq!(node(&json_node("\"a\"")), Scalar::Str("a".into()));
    }

    #[test]
    fn damaged_archives_are_corrupt() {
        let good = zip(&[("schema.json", b"{}")]);
        let mut flipped = good.clone();
        flipped[41] ^= 0xff; // the first byte of schema.json
        assert!(matches!(Skops::open(&flipped), Err(Refusal::Corrupt(_))));
        assert!(matches!(
            Skops::open(b"not a zip"),
            Err(Refusal::Corrupt(_))
        ));
        assert!(Skops::open(&good).is_ok());
        assert!(matches!(
            npy(&npy_file("'<i8'", false, "(3,)", &[0; 8])),
            Err(Refusal::Corrupt(_))
        ));
        assert!(matches!(
            npy(&npy_file("'<c16'", false, "(1,)", &[0; 16])),
            Err(Refusal::Unsupported(_))
        ));
    }

    proptest! {
        /// Whatever the bytes, reading an archive or an array never panics.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = Skops::open(&bytes);
            let _ = npy(&bytes);
            let mut with_magic = b"\x93NUMPY\x01\x00".to_vec();
            with_magic.extend(&bytes);
            let _ = npy(&with_magic);
        }

        /// Any float matrix round-trips through both storage orders.
        #[test]
        fn matrices_round_trip(rows in 1usize..5, cols in 1usize..5, seed in any::<u64>()) {
            let values: Vec<f64> = (0..rows * cols)
                .map(|i| (seed.wrapping_mul(i as u64 + 1) % 1000) as f64 / 7.0)
                .collect();
            let c = npy(&npy_file("'<f8'", false, &format!("({rows}, {cols})"), &f64_bytes(&values)))
                .unwrap();
            prop_assert_eq!(c.into_f64("c").unwrap(), values.clone());
            let column_major: Vec<f64> = (0..rows * cols)
                .map(|i| values[(i % rows) * cols + i / rows])
                .collect();
            let f = npy(&npy_file("'<f8'", true, &format!("({rows}, {cols})"), &f64_bytes(&column_major)))
                .unwrap();
            prop_assert_eq!(f.into_f64("f").unwrap(), values);
        }
    }
}
