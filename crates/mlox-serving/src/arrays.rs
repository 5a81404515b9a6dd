//! Between wire tensors and the Arrow arrays runtimes take: decoding elements by content type
//! and converting them to what the signature asks for, and turning a model's Arrow results
//! back into V2 datatypes.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    ArrowPrimitiveType, Date32Type, Date64Type, Float16Type, Float32Type, Float64Type, Int8Type,
    Int16Type, Int32Type, Int64Type, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow_array::{
    Array, ArrayRef, BinaryArray, BooleanArray, FixedSizeListArray, Float16Array, Float32Array,
    Float64Array, Int8Array, Int16Array, Int32Array, Int64Array, PrimitiveArray, StringArray,
    TimestampMicrosecondArray, UInt8Array, UInt16Array, UInt32Array, UInt64Array,
};
use arrow_schema::{DataType as ArrowType, Field, TimeUnit};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use chrono::{DateTime, NaiveDate, NaiveDateTime};
use mlox_core::{Error, Result};

use crate::schema::{ContentType, Elem, Target};
use crate::tensor::TensorData;

/// Turns wire elements into an Arrow array of the type `target` asks for (or their own type
/// without one). `content_type` says how BYTES elements are meant: text, base64 or date-times.
pub(crate) fn to_array(
    data: TensorData,
    content_type: Option<ContentType>,
    target: Option<&Target>,
    what: &str,
) -> Result<ArrayRef> {
    let TensorData::Bytes(items) = data else {
        if let Some(ct @ (ContentType::Str | ContentType::Base64 | ContentType::Datetime)) =
            content_type
        {
            return Err(Error::invalid(format!(
                "{what}: content type '{}' needs a BYTES tensor, not {}",
                ct.as_str(),
                data.datatype()
            )));
        }
        return match target {
            None => Ok(native(data)),
            Some(Target {
                elem: Elem::Typed(dt),
                label,
            }) => {
                let from = data.datatype();
                data.cast(*dt).map(native).map_err(|why| {
                    Error::invalid(format!(
                        "{what} has datatype {from} but the model signature expects {label}: {why}"
                    ))
                })
            }
            Some(Target { label, .. }) => Err(Error::invalid(format!(
                "{what} has datatype {} but the model signature expects {label}",
                data.datatype()
            ))),
        };
    };
    let items = if content_type == Some(ContentType::Base64) {
        items
            .iter()
            .enumerate()
            .map(|(i, b)| {
                BASE64.decode(b.trim_ascii()).map(Bytes::from).map_err(|e| {
                    Error::invalid(format!("{what}: element {i} is not valid base64: {e}"))
                })
            })
            .collect::<Result<Vec<_>>>()?
    } else {
        items
    };
    let kind = match (target.map(|t| t.elem), content_type) {
        (Some(Elem::Typed(_)), _) => {
            let label = target.map(|t| t.label.as_str()).unwrap_or_default();
            return Err(Error::invalid(format!(
                "{what} has datatype BYTES but the model signature expects {label}"
            )));
        }
        (Some(elem), _) => elem,
        (None, Some(ContentType::Str)) => Elem::Str,
        (None, Some(ContentType::Base64)) => Elem::Binary,
        (None, Some(ContentType::Datetime)) => Elem::Datetime,
        (None, _) if items.iter().all(|b| std::str::from_utf8(b).is_ok()) => Elem::Str,
        (None, _) => Elem::Binary,
    };
    Ok(match kind {
        Elem::Binary => Arc::new(BinaryArray::from_iter_values(items.iter())),
        Elem::Str => {
            let strings = items
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    std::str::from_utf8(b).map_err(|_| {
                        Error::invalid(format!("{what}: element {i} is not valid UTF-8 text"))
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            Arc::new(StringArray::from(strings))
        }
        Elem::Datetime | Elem::Typed(_) => {
            let micros = items
                .iter()
                .enumerate()
                .map(|(i, b)| {
                    let text = String::from_utf8_lossy(b);
                    parse_datetime(text.trim()).ok_or_else(|| {
                        Error::invalid(format!(
                            "{what}: element {i} ('{text}') is not an ISO 8601 date-time"
                        ))
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            Arc::new(TimestampMicrosecondArray::from(micros))
        }
    })
}

/// Groups `width` consecutive values into one list per row.
pub(crate) fn fixed_size_list(values: ArrayRef, width: usize, what: &str) -> Result<ArrayRef> {
    let width = i32::try_from(width)
        .map_err(|_| Error::invalid(format!("{what} has too many values per row ({width})")))?;
    let field = Arc::new(Field::new("item", values.data_type().clone(), true));
    FixedSizeListArray::try_new(field, width, values, None)
        .map(|a| Arc::new(a) as ArrayRef)
        .map_err(|e| Error::internal(format!("{what}: {e}")))
}

/// Arrow of the element's own type.
fn native(data: TensorData) -> ArrayRef {
    match data {
        TensorData::Bool(v) => Arc::new(BooleanArray::from(v)),
        TensorData::Uint8(v) => Arc::new(UInt8Array::from(v)),
        TensorData::Uint16(v) => Arc::new(UInt16Array::from(v)),
        TensorData::Uint32(v) => Arc::new(UInt32Array::from(v)),
        TensorData::Uint64(v) => Arc::new(UInt64Array::from(v)),
        TensorData::Int8(v) => Arc::new(Int8Array::from(v)),
        TensorData::Int16(v) => Arc::new(Int16Array::from(v)),
        TensorData::Int32(v) => Arc::new(Int32Array::from(v)),
        TensorData::Int64(v) => Arc::new(Int64Array::from(v)),
        TensorData::Fp16(v) => Arc::new(Float16Array::from(v)),
        TensorData::Fp32(v) => Arc::new(Float32Array::from(v)),
        TensorData::Fp64(v) => Arc::new(Float64Array::from(v)),
        TensorData::Bytes(v) => match v
            .iter()
            .map(|b| std::str::from_utf8(b))
            .collect::<std::result::Result<Vec<&str>, _>>()
        {
            Ok(strings) => Arc::new(StringArray::from(strings)),
            Err(_) => Arc::new(BinaryArray::from_iter_values(v.iter())),
        },
    }
}

/// Accepts what pandas and MLServer's datetime codec write: RFC 3339 with an offset, a naive
/// date-time with `T` or a space, or a bare date. Time zones are folded into UTC.
pub(crate) fn parse_datetime(s: &str) -> Option<i64> {
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Some(dt.timestamp_micros());
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(n) = NaiveDateTime::parse_from_str(s, format) {
            return Some(n.and_utc().timestamp_micros());
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()?
        .and_hms_opt(0, 0, 0)
        .map(|n| n.and_utc().timestamp_micros())
}

fn format_micros(micros: i64, utc: bool) -> String {
    match DateTime::from_timestamp_micros(micros) {
        Some(dt) if utc => dt.format("%Y-%m-%dT%H:%M:%S%.fZ").to_string(),
        Some(dt) => dt.naive_utc().format("%Y-%m-%dT%H:%M:%S%.f").to_string(),
        None => micros.to_string(),
    }
}

/// A model result column as wire elements: `inner` is the shape of one row (empty for one
/// value per row), `content_type` how a client should read the elements.
#[derive(Debug)]
pub(crate) struct Encoded {
    pub data: TensorData,
    pub inner: Vec<usize>,
    pub content_type: ContentType,
}

/// Encodes any Arrow array a runtime may return. Nulls become NaN (numbers, which widen to
/// FP64 when they were integers, as pandas does), `false` or empty strings.
pub(crate) fn from_array(array: &dyn Array, what: &str) -> Result<Encoded> {
    let scalar = |data: TensorData, content_type| Encoded {
        data,
        inner: Vec::new(),
        content_type,
    };
    fn values<T: ArrowPrimitiveType>(array: &dyn Array) -> Vec<T::Native> {
        array.as_primitive::<T>().values().to_vec()
    }
    fn floats<T: ArrowPrimitiveType>(array: &dyn Array, nan: T::Native) -> Vec<T::Native> {
        let a = array.as_primitive::<T>();
        a.iter().map(|v| v.unwrap_or(nan)).collect()
    }
    fn widened<T: ArrowPrimitiveType>(array: &dyn Array) -> Option<TensorData>
    where
        T::Native: Into<WideF64>,
    {
        let a = array.as_primitive::<T>();
        (a.null_count() > 0).then(|| {
            TensorData::Fp64(
                a.iter()
                    .map(|v| v.map_or(f64::NAN, |x| x.into().0))
                    .collect(),
            )
        })
    }
    macro_rules! int {
        ($t:ty, $variant:ident) => {
            scalar(
                widened::<$t>(array).unwrap_or_else(|| TensorData::$variant(values::<$t>(array))),
                ContentType::Np,
            )
        };
    }
    Ok(match array.data_type() {
        ArrowType::Boolean => scalar(
            TensorData::Bool(
                array
                    .as_boolean()
                    .iter()
                    .map(|v| v.unwrap_or(false))
                    .collect(),
            ),
            ContentType::Np,
        ),
        ArrowType::Int8 => int!(Int8Type, Int8),
        ArrowType::Int16 => int!(Int16Type, Int16),
        ArrowType::Int32 => int!(Int32Type, Int32),
        ArrowType::Int64 => int!(Int64Type, Int64),
        ArrowType::UInt8 => int!(UInt8Type, Uint8),
        ArrowType::UInt16 => int!(UInt16Type, Uint16),
        ArrowType::UInt32 => int!(UInt32Type, Uint32),
        ArrowType::UInt64 => int!(UInt64Type, Uint64),
        ArrowType::Float16 => scalar(
            TensorData::Fp16(floats::<Float16Type>(array, half::f16::NAN)),
            ContentType::Np,
        ),
        ArrowType::Float32 => scalar(
            TensorData::Fp32(floats::<Float32Type>(array, f32::NAN)),
            ContentType::Np,
        ),
        ArrowType::Float64 => scalar(
            TensorData::Fp64(floats::<Float64Type>(array, f64::NAN)),
            ContentType::Np,
        ),
        ArrowType::Utf8 => scalar(strings(array.as_string::<i32>().iter()), ContentType::Str),
        ArrowType::LargeUtf8 => scalar(strings(array.as_string::<i64>().iter()), ContentType::Str),
        ArrowType::Utf8View => scalar(strings(array.as_string_view().iter()), ContentType::Str),
        ArrowType::Binary => scalar(
            base64s(array.as_binary::<i32>().iter()),
            ContentType::Base64,
        ),
        ArrowType::LargeBinary => scalar(
            base64s(array.as_binary::<i64>().iter()),
            ContentType::Base64,
        ),
        ArrowType::BinaryView => {
            scalar(base64s(array.as_binary_view().iter()), ContentType::Base64)
        }
        ArrowType::FixedSizeBinary(_) => scalar(
            base64s(array.as_fixed_size_binary().iter()),
            ContentType::Base64,
        ),
        ArrowType::Timestamp(unit, tz) => {
            let micros: Vec<Option<i64>> = match unit {
                TimeUnit::Second => {
                    scaled::<TimestampSecondType>(array, |s| s.checked_mul(1_000_000))
                }
                TimeUnit::Millisecond => {
                    scaled::<TimestampMillisecondType>(array, |ms| ms.checked_mul(1000))
                }
                TimeUnit::Microsecond => scaled::<TimestampMicrosecondType>(array, Some),
                TimeUnit::Nanosecond => {
                    scaled::<TimestampNanosecondType>(array, |ns| Some(ns / 1000))
                }
            };
            let utc = tz.is_some();
            scalar(
                TensorData::Bytes(
                    micros
                        .into_iter()
                        .map(|m| Bytes::from(m.map(|m| format_micros(m, utc)).unwrap_or_default()))
                        .collect(),
                ),
                ContentType::Datetime,
            )
        }
        ArrowType::Date32 => {
            let days = scaled::<Date32Type>(array, |d| i64::from(d).checked_mul(86_400_000_000));
            dates(days)
        }
        ArrowType::Date64 => dates(scaled::<Date64Type>(array, |ms| ms.checked_mul(1000))),
        ArrowType::FixedSizeList(..) => {
            let list = array.as_fixed_size_list();
            rows(list.len(), |i| list.is_null(i), |i| list.value(i), what)?
        }
        ArrowType::List(_) => {
            let list = array.as_list::<i32>();
            rows(list.len(), |i| list.is_null(i), |i| list.value(i), what)?
        }
        ArrowType::LargeList(_) => {
            let list = array.as_list::<i64>();
            rows(list.len(), |i| list.is_null(i), |i| list.value(i), what)?
        }
        other => {
            return Err(Error::internal(format!(
                "the model returned {what} of Arrow type {other}, which the V2 protocol cannot carry"
            )));
        }
    })
}

/// Lossless widening of any integer to f64's range for the null-to-NaN case.
pub(crate) struct WideF64(f64);
macro_rules! wide {
    ($($t:ty),*) => {$(
        impl From<$t> for WideF64 {
            #[allow(clippy::cast_precision_loss)]
            fn from(x: $t) -> Self { WideF64(x as f64) }
        }
    )*};
}
wide!(i8, i16, i32, i64, u8, u16, u32, u64);

fn scaled<T: ArrowPrimitiveType>(
    array: &dyn Array,
    to_micros: impl Fn(T::Native) -> Option<i64>,
) -> Vec<Option<i64>> {
    array
        .as_primitive::<T>()
        .iter()
        .map(|v| v.and_then(&to_micros))
        .collect()
}

fn dates(micros: Vec<Option<i64>>) -> Encoded {
    Encoded {
        data: TensorData::Bytes(
            micros
                .into_iter()
                .map(|m| {
                    let text = m
                        .and_then(DateTime::from_timestamp_micros)
                        .map(|d| d.date_naive().to_string())
                        .unwrap_or_default();
                    Bytes::from(text)
                })
                .collect(),
        ),
        inner: Vec::new(),
        content_type: ContentType::Datetime,
    }
}

fn strings<'a>(values: impl Iterator<Item = Option<&'a str>>) -> TensorData {
    TensorData::Bytes(
        values
            .map(|s| Bytes::copy_from_slice(s.unwrap_or_default().as_bytes()))
            .collect(),
    )
}

fn base64s<'a>(values: impl Iterator<Item = Option<&'a [u8]>>) -> TensorData {
    TensorData::Bytes(
        values
            .map(|b| Bytes::from(BASE64.encode(b.unwrap_or_default())))
            .collect(),
    )
}

/// A list column: every row must have the same shape, which becomes the inner shape.
fn rows(
    len: usize,
    is_null: impl Fn(usize) -> bool,
    value: impl Fn(usize) -> ArrayRef,
    what: &str,
) -> Result<Encoded> {
    let mut out: Option<Encoded> = None;
    for i in 0..len {
        if is_null(i) {
            return Err(Error::internal(format!(
                "the model returned a missing list in row {i} of {what}"
            )));
        }
        let row = value(i);
        let enc = from_array(row.as_ref(), what)?;
        let mut inner = vec![row.len()];
        inner.extend(&enc.inner);
        match &mut out {
            None => {
                out = Some(Encoded {
                    data: enc.data,
                    inner,
                    content_type: enc.content_type,
                })
            }
            Some(acc) => {
                if acc.inner != inner || !acc.data.append(enc.data) {
                    return Err(Error::internal(format!(
                        "the model returned rows of different shapes or types in {what}"
                    )));
                }
            }
        }
    }
    Ok(out.unwrap_or(Encoded {
        data: TensorData::Fp64(Vec::new()),
        inner: vec![0],
        content_type: ContentType::Np,
    }))
}

/// Builds a primitive array of `T` from optional values (for JSON columns with nulls).
pub(crate) fn primitive<T: ArrowPrimitiveType>(values: Vec<Option<T::Native>>) -> ArrayRef {
    Arc::new(values.into_iter().collect::<PrimitiveArray<T>>())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::tensor::Datatype;

    fn target(elem: Elem, label: &str) -> Target {
        Target {
            elem,
            label: label.into(),
        }
    }

    #[test]
    fn bytes_become_text_binary_or_timestamps_by_content_type() {
        let data = || TensorData::Bytes(vec![Bytes::from_static(b"aGk=")]);
        let a = to_array(data(), Some(ContentType::Str), None, "x").unwrap();
        assert_eq!(a.as_string::<i32>().value(0), "aGk=");
        let a = to_array(data(), Some(ContentType::Base64), None, "x").unwrap();
        assert_eq!(a.as_binary::<i32>().value(0), b"hi");
        let a = to_array(
            TensorData::Bytes(vec![Bytes::from_static(b"2024-03-01T12:30:00Z")]),
            Some(ContentType::Datetime),
            None,
            "x",
        )
        .unwrap();
        assert_eq!(
            a.as_primitive::<TimestampMicrosecondType>().value(0),
            1_709_296_200_000_000
        );
    }

    #[test]
    fn numbers_convert_to_the_signature_type_or_say_why_not() {
        let a = to_array(
            TensorData::Fp32(vec![0.5]),
            None,
            Some(&target(Elem::Typed(Datatype::Fp64), "double")),
            "input 'x'",
        )
        .unwrap();
        assert_eq!(a.data_type(), &ArrowType::Float64);
        let e = to_array(
            TensorData::Bytes(vec![Bytes::from_static(b"a")]),
            None,
            Some(&target(Elem::Typed(Datatype::Fp64), "double")),
            "input 'x'",
        )
        .unwrap_err();
        assert_eq!(
            e.message,
            "input 'x' has datatype BYTES but the model signature expects double"
        );
        let e = to_array(
            TensorData::Fp64(vec![1.5]),
            None,
            Some(&target(Elem::Typed(Datatype::Int64), "long")),
            "input 'n'",
        )
        .unwrap_err();
        assert_eq!(
            e.message,
            "input 'n' has datatype FP64 but the model signature expects long: cannot safely convert FP64 to INT64"
        );
        let e = to_array(
            TensorData::Fp64(vec![1.5]),
            Some(ContentType::Str),
            None,
            "input 's'",
        )
        .unwrap_err();
        assert_eq!(
            e.message,
            "input 's': content type 'str' needs a BYTES tensor, not FP64"
        );
    }

    #[test]
    fn bad_base64_and_dates_name_the_element() {
        let e = to_array(
            TensorData::Bytes(vec![Bytes::from_static(b"!!")]),
            Some(ContentType::Base64),
            None,
            "input 'b'",
        )
        .unwrap_err();
        assert!(
            e.message
                .starts_with("input 'b': element 0 is not valid base64"),
            "{}",
            e.message
        );
        let e = to_array(
            TensorData::Bytes(vec![Bytes::from_static(b"yesterday")]),
            Some(ContentType::Datetime),
            None,
            "input 'd'",
        )
        .unwrap_err();
        assert_eq!(
            e.message,
            "input 'd': element 0 ('yesterday') is not an ISO 8601 date-time"
        );
    }

    #[test]
    fn results_encode_with_content_types_and_nulls() {
        let e = from_array(&StringArray::from(vec!["a", "b"]), "x").unwrap();
        assert_eq!(e.content_type, ContentType::Str);
        assert_eq!(
            e.data,
            TensorData::Bytes(vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")])
        );
        let e = from_array(&Int64Array::from(vec![Some(1), None]), "x").unwrap();
        let TensorData::Fp64(v) = e.data else {
            panic!()
        };
        assert!(v[0] == 1.0 && v[1].is_nan());
        let e = from_array(&BinaryArray::from_iter_values([b"hi"]), "x").unwrap();
        assert_eq!(
            (e.content_type, e.data),
            (
                ContentType::Base64,
                TensorData::Bytes(vec![Bytes::from_static(b"aGk=")])
            )
        );
        let e = from_array(
            &TimestampMicrosecondArray::from(vec![1_709_296_200_000_000]),
            "x",
        )
        .unwrap();
        assert_eq!(
            e.data,
            TensorData::Bytes(vec![Bytes::from_static(b"2024-03-01T12:30:00")])
        );
    }

    #[test]
    fn list_columns_become_a_row_shape() {
        let values: ArrayRef = Arc::new(Float64Array::from(vec![1.0, 2.0, 3.0, 4.0]));
        let list = fixed_size_list(values, 2, "x").unwrap();
        let e = from_array(list.as_ref(), "x").unwrap();
        assert_eq!(e.inner, vec![2]);
        assert_eq!(e.data, TensorData::Fp64(vec![1.0, 2.0, 3.0, 4.0]));
    }
}
