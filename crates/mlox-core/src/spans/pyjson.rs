//! JSON text written the way Python's `json.dumps` writes it (`", "` and `": "` between items,
//! non-ASCII kept as is), because MLflow stores every span attribute as such text and clients
//! show it verbatim: a request preview of `{"q": "hi"}` should read the same whichever server
//! recorded it. Object keys come out in sorted order (serde_json's map), where Python keeps
//! insertion order; clients decode the text, so only the preview's wording can differ.

use serde_json::Value;
use serde_json::ser::{Formatter, Serializer};
use std::io;

struct PythonFormatter;

impl Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        writer.write_all(b": ")
    }
}

/// `value` as Python's `json.dumps(value, ensure_ascii=False)` writes it.
pub fn dumps(value: &Value) -> String {
    let mut out = Vec::new();
    let mut serializer = Serializer::with_formatter(&mut out, PythonFormatter);
    // Serializing a `Value` into memory cannot fail.
    let _ = serde::Serialize::serialize(value, &mut serializer);
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::dumps;
    use serde_json::json;

    #[test]
    fn separators_match_python() {
        assert_eq!(
            dumps(&json!({"a": [1, 2.5, "x"], "b": {"c": null, "d": true}})),
            r#"{"a": [1, 2.5, "x"], "b": {"c": null, "d": true}}"#
        );
        assert_eq!(dumps(&json!("Hello, world!")), r#""Hello, world!""#);
        assert_eq!(dumps(&json!([])), "[]");
        assert_eq!(dumps(&json!({})), "{}");
    }

    #[test]
    fn non_ascii_is_kept() {
        assert_eq!(dumps(&json!("héllo ✓")), "\"héllo ✓\"");
    }
}
