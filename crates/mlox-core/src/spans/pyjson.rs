//! JSON text written the way Python's `json.dumps` writes it (`", "` and `": "` between items),
//! because MLflow stores every span attribute as such text and clients show it verbatim: a
//! request preview of `{"q": "hi"}` should read the same whichever server recorded it. Object
//! keys come out in sorted order (serde_json's map), where Python keeps insertion order; clients
//! decode the text, so only the preview's wording can differ. [`dumps`] keeps non-ASCII as is
//! (`ensure_ascii=False`, as span attributes are written); [`dumps_ascii`] is `json.dumps` with
//! its defaults, escaping non-ASCII and writing floats as Python's `repr` does (`1e-05`,
//! `1e+16`), so a hash of the text is the hash MLflow computes.

use serde_json::Value;
use serde_json::ser::{Formatter, Serializer};
use std::io;

struct PythonFormatter {
    ascii: bool,
}

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

    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        if !self.ascii {
            return writer.write_all(fragment.as_bytes());
        }
        for c in fragment.chars() {
            if c.is_ascii() && c != '\u{7f}' {
                writer.write_all(&[c as u8])?;
            } else {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    write!(writer, "\\u{unit:04x}")?;
                }
            }
        }
        Ok(())
    }

    fn write_f64<W: ?Sized + io::Write>(&mut self, writer: &mut W, value: f64) -> io::Result<()> {
        if self.ascii {
            writer.write_all(python_float_repr(value).as_bytes())
        } else {
            serde_json::ser::CompactFormatter.write_f64(writer, value)
        }
    }
}

/// Python's `repr` of a float: the shortest digits that read back, in positional notation for
/// exponents from -4 to 15 (always with a fractional part) and scientific notation outside,
/// with a signed exponent of at least two digits.
fn python_float_repr(value: f64) -> String {
    if !value.is_finite() {
        return if value.is_nan() {
            "NaN".into()
        } else if value > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    let sign = if value.is_sign_negative() { "-" } else { "" };
    // `{:e}` gives the shortest round-trip digits: `1.5e-5`, `1e16`, `0e0`.
    let scientific = format!("{:e}", value.abs());
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    if (-4..16).contains(&exponent) {
        let point = exponent + 1;
        let text = if point <= 0 {
            format!("0.{}{digits}", "0".repeat((-point) as usize))
        } else if point as usize >= digits.len() {
            format!("{digits}{}.0", "0".repeat(point as usize - digits.len()))
        } else {
            let (whole, fraction) = digits.split_at(point as usize);
            format!("{whole}.{fraction}")
        };
        format!("{sign}{text}")
    } else {
        let (first, rest) = digits.split_at(1);
        let mantissa = if rest.is_empty() {
            first.to_string()
        } else {
            format!("{first}.{rest}")
        };
        let exponent_sign = if exponent < 0 { '-' } else { '+' };
        format!("{sign}{mantissa}e{exponent_sign}{:02}", exponent.abs())
    }
}

fn write_python(value: &impl serde::Serialize, ascii: bool) -> String {
    let mut out = Vec::new();
    let mut serializer = Serializer::with_formatter(&mut out, PythonFormatter { ascii });
    // Serializing plain data into memory cannot fail.
    let _ = value.serialize(&mut serializer);
    String::from_utf8(out).unwrap_or_default()
}

/// `value` as Python's `json.dumps(value, ensure_ascii=False)` writes it.
pub fn dumps(value: &Value) -> String {
    write_python(value, false)
}

/// `value` as Python's `json.dumps(value)` writes it: non-ASCII escaped, floats as Python's
/// `repr`. A struct's fields come out in their declared order, a map's keys sorted.
pub fn dumps_ascii(value: &impl serde::Serialize) -> String {
    write_python(value, true)
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
    fn ascii_mode_escapes_like_python_and_writes_python_floats() {
        use super::dumps_ascii;
        assert_eq!(
            dumps_ascii(&json!({"é": "naïve ✓ 😀\u{7f}", "n": [1, -2, 2.5]})),
            r#"{"n": [1, -2, 2.5], "\u00e9": "na\u00efve \u2713 \ud83d\ude00\u007f"}"#
        );
        let floats = [
            (1.0, "1.0"),
            (-0.0, "-0.0"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (123.456, "123.456"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1.2345678901234568e17, "1.2345678901234568e+17"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1e300, "1e+300"),
        ];
        for (value, python) in floats {
            assert_eq!(dumps_ascii(&json!(value)), python, "{value}");
        }
    }

    #[test]
    fn non_ascii_is_kept() {
        assert_eq!(dumps(&json!("héllo ✓")), "\"héllo ✓\"");
    }
}
