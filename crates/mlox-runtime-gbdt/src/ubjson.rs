//! A decoder for Universal Binary JSON (UBJSON, draft 12), the format of XGBoost's `model.ubj`,
//! and the document tree both XGBoost model formats are read through.
//!
//! The tree keeps UBJSON's strongly typed arrays (`[$d#…` and friends) as packed vectors so a
//! model with millions of nodes loads without boxing every number; `model.json` documents are
//! converted into the same tree, so the XGBoost reader has one input type. Every length is
//! checked against the bytes left before anything is allocated: a truncated or hostile file is
//! an error, never a huge allocation or a stack overflow.

use std::fmt;

/// Containers deeper than this are refused; XGBoost's documents nest five or six levels.
const MAX_DEPTH: usize = 256;
/// Elements of a counted container whose element type has no payload (`[$Z#…`) take no bytes,
/// so their count cannot be checked against the input length; this caps it instead.
const MAX_EMPTY_ELEMENTS: usize = 1 << 20;

/// One decoded value.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float32(f32),
    Float64(f64),
    /// A high-precision number (`H`), kept as the decimal text it travels as.
    HighPrecision(String),
    Str(String),
    Array(Vec<Value>),
    /// A strongly typed array of `d`.
    Float32s(Vec<f32>),
    /// A strongly typed array of `D`.
    Float64s(Vec<f64>),
    /// A strongly typed array of any integer marker (`i`, `U`, `I`, `l`, `L`).
    Ints(Vec<i64>),
    Object(Vec<(String, Value)>),
}

/// Why a document could not be decoded, with the byte offset it was found at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DecodeError {
    pub offset: usize,
    pub message: String,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at byte {}", self.message, self.offset)
    }
}

/// Decodes one complete document; trailing bytes other than no-ops are an error.
pub(crate) fn decode(bytes: &[u8]) -> Result<Value, DecodeError> {
    let mut reader = Reader { bytes, pos: 0 };
    let value = reader.value(0)?;
    while reader.pos < bytes.len() && bytes[reader.pos] == b'N' {
        reader.pos += 1;
    }
    if reader.pos != bytes.len() {
        return Err(reader.error("trailing bytes after the document"));
    }
    Ok(value)
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn error(&self, message: impl Into<String>) -> DecodeError {
        DecodeError {
            offset: self.pos,
            message: message.into(),
        }
    }

    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&[u8], DecodeError> {
        if n > self.remaining() {
            return Err(self.error(format!(
                "{n} bytes needed but only {} left",
                self.remaining()
            )));
        }
        let slice = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn byte(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    /// The next marker, skipping the no-ops the spec allows between values.
    fn marker(&mut self) -> Result<u8, DecodeError> {
        loop {
            let m = self.byte()?;
            if m != b'N' {
                return Ok(m);
            }
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, DecodeError> {
        let marker = self.marker()?;
        self.value_of(marker, depth)
    }

    fn value_of(&mut self, marker: u8, depth: usize) -> Result<Value, DecodeError> {
        Ok(match marker {
            b'Z' => Value::Null,
            b'T' => Value::Bool(true),
            b'F' => Value::Bool(false),
            b'i' | b'U' | b'I' | b'l' | b'L' => Value::Int(self.int_of(marker)?),
            b'd' => Value::Float32(f32::from_be_bytes(self.array()?)),
            b'D' => Value::Float64(f64::from_be_bytes(self.array()?)),
            b'H' => {
                let text = self.string()?;
                if text.parse::<f64>().is_err() {
                    return Err(self.error(format!("'{text}' is not a number")));
                }
                Value::HighPrecision(text)
            }
            b'C' => {
                let c = self.byte()?;
                if !c.is_ascii() {
                    return Err(self.error("a char value must be ASCII"));
                }
                Value::Str(char::from(c).to_string())
            }
            b'S' => Value::Str(self.string()?),
            b'[' => self.array_body(depth + 1)?,
            b'{' => self.object_body(depth + 1)?,
            other => return Err(self.marker_error(other)),
        })
    }

    fn marker_error(&self, marker: u8) -> DecodeError {
        DecodeError {
            offset: self.pos.saturating_sub(1),
            message: if marker.is_ascii_graphic() {
                format!("unexpected marker '{}'", char::from(marker))
            } else {
                format!("unexpected byte 0x{marker:02x}")
            },
        }
    }

    fn int_of(&mut self, marker: u8) -> Result<i64, DecodeError> {
        Ok(match marker {
            b'i' => i64::from(i8::from_be_bytes(self.array()?)),
            b'U' => i64::from(self.byte()?),
            b'I' => i64::from(i16::from_be_bytes(self.array()?)),
            b'l' => i64::from(i32::from_be_bytes(self.array()?)),
            b'L' => i64::from_be_bytes(self.array()?),
            other => return Err(self.marker_error(other)),
        })
    }

    /// A length or count: any integer marker, never negative.
    fn length(&mut self) -> Result<usize, DecodeError> {
        let marker = self.marker()?;
        let n = self.int_of(marker)?;
        usize::try_from(n).map_err(|_| self.error(format!("negative length {n}")))
    }

    fn string(&mut self) -> Result<String, DecodeError> {
        let len = self.length()?;
        let start = self.pos;
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError {
            offset: start,
            message: "a string is not valid UTF-8".into(),
        })
    }

    /// The optional `$type` and `#count` after a container's opening marker.
    fn container_header(&mut self) -> Result<(Option<u8>, Option<usize>), DecodeError> {
        let mut element = None;
        if self.peek() == Some(b'$') {
            self.pos += 1;
            let marker = self.byte()?;
            if matches!(marker, b'N' | b']' | b'}' | b'$' | b'#') {
                return Err(self.marker_error(marker));
            }
            element = Some(marker);
            if self.peek() != Some(b'#') {
                return Err(self.error("a typed container must be followed by a count"));
            }
        }
        let count = if self.peek() == Some(b'#') {
            self.pos += 1;
            Some(self.length()?)
        } else {
            None
        };
        if let (Some(n), Some(marker)) = (count, element) {
            let size = payload_size(marker);
            let fits = match size {
                Some(0) => n <= MAX_EMPTY_ELEMENTS,
                Some(size) => n.checked_mul(size).is_some_and(|b| b <= self.remaining()),
                None => n <= self.remaining(),
            };
            if !fits {
                return Err(self.error(format!("a count of {n} exceeds the document")));
            }
        } else if let Some(n) = count
            && n > self.remaining()
        {
            return Err(self.error(format!("a count of {n} exceeds the document")));
        }
        Ok((element, count))
    }

    fn array_body(&mut self, depth: usize) -> Result<Value, DecodeError> {
        if depth > MAX_DEPTH {
            return Err(self.error("containers nest too deeply"));
        }
        let (element, count) = self.container_header()?;
        match (element, count) {
            (Some(marker), Some(n)) => self.typed_array(marker, n, depth),
            (None, Some(n)) => {
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.value(depth)?);
                }
                Ok(Value::Array(items))
            }
            (_, None) => {
                let mut items = Vec::new();
                loop {
                    let marker = self.marker()?;
                    if marker == b']' {
                        return Ok(Value::Array(items));
                    }
                    items.push(self.value_of(marker, depth)?);
                }
            }
        }
    }

    fn typed_array(&mut self, marker: u8, n: usize, depth: usize) -> Result<Value, DecodeError> {
        Ok(match marker {
            b'd' => Value::Float32s(
                self.take(n * 4)?
                    .chunks_exact(4)
                    .map(|c| f32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            ),
            b'D' => Value::Float64s(
                self.take(n * 8)?
                    .chunks_exact(8)
                    .map(|c| f64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                    .collect(),
            ),
            b'i' | b'U' | b'I' | b'l' | b'L' => {
                let mut ints = Vec::with_capacity(n);
                for _ in 0..n {
                    ints.push(self.int_of(marker)?);
                }
                Value::Ints(ints)
            }
            _ => {
                let mut items = Vec::with_capacity(n.min(self.remaining()));
                for _ in 0..n {
                    items.push(self.value_of(marker, depth)?);
                }
                Value::Array(items)
            }
        })
    }

    fn object_body(&mut self, depth: usize) -> Result<Value, DecodeError> {
        if depth > MAX_DEPTH {
            return Err(self.error("containers nest too deeply"));
        }
        let (element, count) = self.container_header()?;
        let mut fields = Vec::with_capacity(count.unwrap_or(0).min(self.remaining()));
        let mut index = 0;
        loop {
            match count {
                Some(n) if index == n => break,
                Some(_) => {}
                None => {
                    while self.peek() == Some(b'N') {
                        self.pos += 1;
                    }
                    if self.peek() == Some(b'}') {
                        self.pos += 1;
                        break;
                    }
                }
            }
            let key = self.string()?;
            let value = match element {
                Some(marker) => self.value_of(marker, depth)?,
                None => self.value(depth)?,
            };
            fields.push((key, value));
            index += 1;
        }
        Ok(Value::Object(fields))
    }
}

/// Bytes a value of this type occupies after its marker, when fixed.
fn payload_size(marker: u8) -> Option<usize> {
    match marker {
        b'Z' | b'T' | b'F' => Some(0),
        b'i' | b'U' | b'C' => Some(1),
        b'I' => Some(2),
        b'l' | b'd' => Some(4),
        b'L' | b'D' => Some(8),
        _ => None,
    }
}

impl Value {
    /// The same document read from JSON text (XGBoost's `model.json`).
    pub(crate) fn from_json(json: serde_json::Value) -> Value {
        match json {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Float64(n.as_f64().unwrap_or(f64::NAN)),
            },
            serde_json::Value::String(s) => Value::Str(s),
            serde_json::Value::Array(items) => {
                Value::Array(items.into_iter().map(Value::from_json).collect())
            }
            serde_json::Value::Object(map) => Value::Object(
                map.into_iter()
                    .map(|(k, v)| (k, Value::from_json(v)))
                    .collect(),
            ),
        }
    }

    pub(crate) fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float32(f) => Some(f64::from(*f)),
            Value::Float64(f) => Some(*f),
            Value::HighPrecision(s) => s.parse().ok(),
            _ => None,
        }
    }

    /// An integer, also when written as a string (XGBoost stores most parameters as strings).
    pub(crate) fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Str(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// The elements of any array as `f32` (how XGBoost stores split conditions and leaves).
    pub(crate) fn to_f32s(&self) -> Option<Vec<f32>> {
        match self {
            Value::Float32s(v) => Some(v.clone()),
            Value::Float64s(v) => Some(v.iter().map(|&x| x as f32).collect()),
            Value::Ints(v) => Some(v.iter().map(|&x| x as f32).collect()),
            Value::Array(items) => items.iter().map(|v| v.as_f64().map(|x| x as f32)).collect(),
            _ => None,
        }
    }

    /// The elements of any array of integers.
    pub(crate) fn to_ints(&self) -> Option<Vec<i64>> {
        match self {
            Value::Ints(v) => Some(v.clone()),
            Value::Array(items) => items
                .iter()
                .map(|v| match v {
                    Value::Int(i) => Some(*i),
                    Value::Bool(b) => Some(i64::from(*b)),
                    _ => None,
                })
                .collect(),
            _ => None,
        }
    }

    pub(crate) fn to_strings(&self) -> Option<Vec<String>> {
        match self {
            Value::Array(items) => items
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect(),
            // An empty typed array may carry any element type.
            Value::Ints(v) if v.is_empty() => Some(Vec::new()),
            Value::Float32s(v) if v.is_empty() => Some(Vec::new()),
            _ => None,
        }
    }

    pub(crate) fn array_len(&self) -> Option<usize> {
        match self {
            Value::Array(v) => Some(v.len()),
            Value::Float32s(v) => Some(v.len()),
            Value::Float64s(v) => Some(v.len()),
            Value::Ints(v) => Some(v.len()),
            _ => None,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
