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
pub(crate) mod tests {
    use super::*;

    /// A UBJSON writer for the tests: ints take the smallest marker that holds them, arrays
    /// and objects alternate between counted and terminated forms, so decoding a written
    /// value exercises every path the decoder has.
    pub(crate) fn encode(value: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        write(value, &mut out);
        out
    }

    fn write_int(i: i64, out: &mut Vec<u8>) {
        if let Ok(v) = i8::try_from(i) {
            out.push(b'i');
            out.extend(v.to_be_bytes());
        } else if let Ok(v) = u8::try_from(i) {
            out.extend([b'U', v]);
        } else if let Ok(v) = i16::try_from(i) {
            out.push(b'I');
            out.extend(v.to_be_bytes());
        } else if let Ok(v) = i32::try_from(i) {
            out.push(b'l');
            out.extend(v.to_be_bytes());
        } else {
            out.push(b'L');
            out.extend(i.to_be_bytes());
        }
    }

    fn write_str(s: &str, out: &mut Vec<u8>) {
        write_int(s.len() as i64, out);
        out.extend(s.as_bytes());
    }

    fn write(value: &Value, out: &mut Vec<u8>) {
        match value {
            Value::Null => out.push(b'Z'),
            Value::Bool(true) => out.push(b'T'),
            Value::Bool(false) => out.push(b'F'),
            Value::Int(i) => write_int(*i, out),
            Value::Float32(f) => {
                out.push(b'd');
                out.extend(f.to_be_bytes());
            }
            Value::Float64(f) => {
                out.push(b'D');
                out.extend(f.to_be_bytes());
            }
            Value::HighPrecision(s) => {
                out.push(b'H');
                write_str(s, out);
            }
            Value::Str(s) => {
                out.push(b'S');
                write_str(s, out);
            }
            Value::Array(items) => {
                out.push(b'[');
                let counted = items.len() % 2 == 1;
                if counted {
                    out.push(b'#');
                    write_int(items.len() as i64, out);
                }
                for item in items {
                    write(item, out);
                }
                if !counted {
                    out.push(b']');
                }
            }
            Value::Float32s(v) => {
                out.extend(b"[$d#");
                write_int(v.len() as i64, out);
                for f in v {
                    out.extend(f.to_be_bytes());
                }
            }
            Value::Float64s(v) => {
                out.extend(b"[$D#");
                write_int(v.len() as i64, out);
                for f in v {
                    out.extend(f.to_be_bytes());
                }
            }
            Value::Ints(v) => {
                out.extend(b"[$L#");
                write_int(v.len() as i64, out);
                for i in v {
                    out.extend(i.to_be_bytes());
                }
            }
            Value::Object(fields) => {
                out.push(b'{');
                let counted = fields.len() % 2 == 1;
                if counted {
                    out.push(b'#');
                    write_int(fields.len() as i64, out);
                }
                for (k, v) in fields {
                    write_str(k, out);
                    write(v, out);
                }
                if !counted {
                    out.push(b'}');
                }
            }
        }
    }

    fn obj(fields: Vec<(&str, Value)>) -> Value {
        Value::Object(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
    }

    #[test]
    fn every_scalar_marker_decodes() {
        let cases: Vec<(&[u8], Value)> = vec![
            (b"Z", Value::Null),
            (b"T", Value::Bool(true)),
            (b"F", Value::Bool(false)),
            (b"i\xff", Value::Int(-1)),
            (b"U\xff", Value::Int(255)),
            (b"I\x01\x00", Value::Int(256)),
            (b"I\xff\xfe", Value::Int(-2)),
            (b"l\x00\x01\x00\x00", Value::Int(65536)),
            (b"L\x80\x00\x00\x00\x00\x00\x00\x00", Value::Int(i64::MIN)),
            (b"d\x3f\xc0\x00\x00", Value::Float32(1.5)),
            (b"D\xc0\x04\x00\x00\x00\x00\x00\x00", Value::Float64(-2.5)),
            (b"Hi\x041e99", Value::HighPrecision("1e99".into())),
            (b"Ca", Value::Str("a".into())),
            (b"Si\x03abc", Value::Str("abc".into())),
            (b"SU\x00", Value::Str(String::new())),
            (b"Si\x04\xd0\xbf\xd1\x80", Value::Str("пр".into())),
            (b"NNT", Value::Bool(true)),
        ];
        for (bytes, expected) in cases {
            assert_eq!(decode(bytes).unwrap(), expected, "{bytes:?}");
        }
    }

    #[test]
    fn containers_with_and_without_counts() {
        assert_eq!(
            decode(b"[i\x01Si\x01xZ]").unwrap(),
            Value::Array(vec![Value::Int(1), Value::Str("x".into()), Value::Null])
        );
        assert_eq!(decode(b"[]").unwrap(), Value::Array(vec![]));
        assert_eq!(
            decode(b"[NNi\x02N]").unwrap(),
            Value::Array(vec![Value::Int(2)])
        );
        assert_eq!(
            decode(b"[#i\x02TF").unwrap(),
            Value::Array(vec![Value::Bool(true), Value::Bool(false)])
        );
        assert_eq!(
            decode(b"{i\x01a[]i\x01b{}}").unwrap(),
            obj(vec![("a", Value::Array(vec![])), ("b", obj(vec![]))])
        );
        assert_eq!(
            decode(b"{#U\x01i\x01kT").unwrap(),
            obj(vec![("k", Value::Bool(true))])
        );
    }

    #[test]
    fn typed_containers_pack_numbers() {
        assert_eq!(
            decode(b"[$d#i\x02\x3f\x80\x00\x00\xc0\x00\x00\x00").unwrap(),
            Value::Float32s(vec![1.0, -2.0])
        );
        assert_eq!(
            decode(b"[$D#i\x01\x3f\xf0\x00\x00\x00\x00\x00\x00").unwrap(),
            Value::Float64s(vec![1.0])
        );
        assert_eq!(
            decode(b"[$U#i\x03\x00\x01\xff").unwrap(),
            Value::Ints(vec![0, 1, 255])
        );
        assert_eq!(
            decode(b"[$l#i\x02\xff\xff\xff\xff\x00\x00\x00\x07").unwrap(),
            Value::Ints(vec![-1, 7])
        );
        assert_eq!(
            decode(b"[$i#I\x00\x02\x05\xfb").unwrap(),
            Value::Ints(vec![5, -5])
        );
        assert_eq!(
            decode(b"[$I#i\x01\x01\x00").unwrap(),
            Value::Ints(vec![256])
        );
        assert_eq!(
            decode(b"[$L#i\x01\x00\x00\x00\x00\x00\x00\x00\x09").unwrap(),
            Value::Ints(vec![9])
        );
        // Types without a payload, strings and nested containers as the element type.
        assert_eq!(
            decode(b"[$T#i\x02").unwrap(),
            Value::Array(vec![Value::Bool(true); 2])
        );
        assert_eq!(
            decode(b"[$S#i\x02i\x01ai\x02bc").unwrap(),
            Value::Array(vec![Value::Str("a".into()), Value::Str("bc".into())])
        );
        assert_eq!(
            decode(b"[$[#i\x02#i\x01Z]").unwrap(),
            Value::Array(vec![Value::Array(vec![Value::Null]), Value::Array(vec![]),])
        );
        assert_eq!(
            decode(b"{$i#i\x02i\x01a\x01i\x01b\x02").unwrap(),
            obj(vec![("a", Value::Int(1)), ("b", Value::Int(2))])
        );
    }

    #[test]
    fn malformed_documents_are_errors_not_panics() {
        let cases: &[&[u8]] = &[
            b"",
            b"X",
            b"i",
            b"Si\x05abc",
            b"S\xff\x01",
            b"Si\xffab",
            b"[i\x01",
            b"{i\x01a",
            b"{i\x01a}",
            b"[$d#i\x05\x00\x00",
            b"[$d]",
            b"[$Z#L\x7f\xff\xff\xff\xff\xff\xff\xff",
            b"[#L\x7f\xff\xff\xff\xff\xff\xff\xff",
            b"[$d#L\x40\x00\x00\x00\x00\x00\x00\x00",
            b"Si\x02\xff\xfe",
            b"TT",
            b"C\xc3",
            b"Hi\x03abc",
            b"[$N#i\x01",
        ];
        for bytes in cases {
            assert!(decode(bytes).is_err(), "{bytes:?} decoded");
        }
        let deep: Vec<u8> = std::iter::repeat_n(b'[', 10_000).collect();
        let err = decode(&deep).unwrap_err();
        assert!(err.message.contains("deeply"), "{err}");
    }

    #[test]
    fn accessors_read_json_and_binary_alike() {
        let json: serde_json::Value =
            serde_json::from_str(r#"{"a":[1,2.5,-3],"n":"7","s":["x","y"]}"#).unwrap();
        let doc = Value::from_json(json);
        assert_eq!(
            doc.get("a").unwrap().to_f32s().unwrap(),
            vec![1.0, 2.5, -3.0]
        );
        assert_eq!(doc.get("n").unwrap().as_int(), Some(7));
        assert_eq!(
            doc.get("s").unwrap().to_strings().unwrap(),
            vec!["x".to_owned(), "y".to_owned()]
        );
        assert_eq!(doc.get("a").unwrap().array_len(), Some(3));
        assert!(doc.get("missing").is_none());
        assert_eq!(
            Value::Ints(vec![1, 0]).to_f32s().unwrap(),
            vec![1.0f32, 0.0]
        );
    }

    mod roundtrip {
        use super::*;
        use proptest::prelude::*;

        fn finite_f32() -> impl Strategy<Value = f32> {
            any::<f32>().prop_filter("NaN never equals itself", |f| !f.is_nan())
        }

        fn finite_f64() -> impl Strategy<Value = f64> {
            any::<f64>().prop_filter("NaN never equals itself", |f| !f.is_nan())
        }

        fn value() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                any::<i64>().prop_map(Value::Int),
                (-300i64..300).prop_map(Value::Int),
                finite_f32().prop_map(Value::Float32),
                finite_f64().prop_map(Value::Float64),
                (-1000i64..1000).prop_map(|i| Value::HighPrecision(format!("{i}.5e3"))),
                ".{0,12}".prop_map(Value::Str),
                prop::collection::vec(finite_f32(), 0..8).prop_map(Value::Float32s),
                prop::collection::vec(finite_f64(), 0..8).prop_map(Value::Float64s),
                prop::collection::vec(any::<i64>(), 0..8).prop_map(Value::Ints),
            ];
            leaf.prop_recursive(4, 48, 6, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                    prop::collection::vec((".{0,8}", inner), 0..6).prop_map(Value::Object),
                ]
            })
        }

        proptest! {
            #[test]
            fn decode_inverts_encode(v in value()) {
                prop_assert_eq!(decode(&encode(&v)).unwrap(), v);
            }

            #[test]
            fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
                let _ = decode(&bytes);
            }
        }
    }
}
