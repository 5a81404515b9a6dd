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
