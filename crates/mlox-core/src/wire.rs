//! Serde helpers for the proto3-JSON dialect MLflow speaks: 64-bit integers may arrive as
//! numbers or strings, and doubles carry `NaN`/`Infinity`/`-Infinity` as strings because JSON
//! has no literal for them. Also the prefixes its REST API is served under.

/// Every prefix MLflow's REST API is served under: the client's `/api/` and the web UI's
/// `/ajax-api/`, each for the 2.0 and 3.0 routes.
pub const API_PREFIXES: [&str; 4] = [
    "/api/2.0/mlflow",
    "/ajax-api/2.0/mlflow",
    "/api/3.0/mlflow",
    "/ajax-api/3.0/mlflow",
];

/// The route of an API path inside its prefix (`runs/create`), or `None` outside the API.
pub fn api_route(path: &str) -> Option<&str> {
    API_PREFIXES
        .iter()
        .find_map(|prefix| path.strip_prefix(prefix)?.strip_prefix('/'))
}

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serializer};
use std::fmt;

/// Writes a double the way protobuf JSON does, so the client can parse non-finite values.
pub fn ser_f64<S: Serializer>(value: &f64, s: S) -> Result<S::Ok, S::Error> {
    if value.is_nan() {
        s.serialize_str("NaN")
    } else if value.is_infinite() {
        s.serialize_str(if *value > 0.0 {
            "Infinity"
        } else {
            "-Infinity"
        })
    } else {
        s.serialize_f64(*value)
    }
}

struct F64Visitor;

impl Visitor<'_> for F64Visitor {
    type Value = f64;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a number, or one of \"NaN\", \"Infinity\", \"-Infinity\"")
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
        Ok(v)
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
        Ok(v as f64)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
        Ok(v as f64)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<f64, E> {
        match v {
            "NaN" | "nan" => Ok(f64::NAN),
            "Infinity" | "inf" | "+Infinity" => Ok(f64::INFINITY),
            "-Infinity" | "-inf" => Ok(f64::NEG_INFINITY),
            other => other
                .trim()
                .parse::<f64>()
                .map_err(|_| E::invalid_value(de::Unexpected::Str(other), &self)),
        }
    }
}

pub fn de_f64<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    d.deserialize_any(F64Visitor)
}

pub fn de_opt_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    #[derive(Deserialize)]
    struct Wrap(#[serde(deserialize_with = "de_f64")] f64);
    Ok(Option::<Wrap>::deserialize(d)?.map(|w| w.0))
}

struct I64Visitor;

impl Visitor<'_> for I64Visitor {
    type Value = i64;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a 64-bit integer (number or string)")
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
        Ok(v)
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
        i64::try_from(v).map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<i64, E> {
        if v.fract() == 0.0 && v.is_finite() && v.abs() < 9.2e18 {
            Ok(v as i64)
        } else {
            Err(E::invalid_value(de::Unexpected::Float(v), &self))
        }
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<i64, E> {
        v.trim()
            .parse::<i64>()
            .map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
    }
}

pub fn de_i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    d.deserialize_any(I64Visitor)
}

pub fn de_opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    struct Wrap(#[serde(deserialize_with = "de_i64")] i64);
    Ok(Option::<Wrap>::deserialize(d)?.map(|w| w.0))
}

/// Ids are strings on the wire but clients sometimes send bare numbers (`"experiment_id": 1`).
pub fn de_opt_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v = Option::<serde_json::Value>::deserialize(d)?;
    match v {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s)),
        Some(serde_json::Value::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => Err(de::Error::invalid_type(
            de::Unexpected::Other(&other.to_string()),
            &"a string id",
        )),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn api_routes_are_found_under_every_prefix_only() {
        use super::api_route;
        assert_eq!(
            api_route("/ajax-api/3.0/mlflow/runs/create"),
            Some("runs/create")
        );
        assert_eq!(api_route("/api/2.0/mlflow-artifacts/artifacts/x"), None);
        assert_eq!(api_route("/runs/create"), None);
    }

    use super::*;
    use serde::Serialize;

    #[derive(Serialize, Deserialize, Debug)]
    struct M {
        #[serde(serialize_with = "ser_f64", deserialize_with = "de_f64")]
        v: f64,
        #[serde(default, deserialize_with = "de_opt_i64")]
        t: Option<i64>,
    }

    #[test]
    fn non_finite_doubles_round_trip_as_strings() {
        for (text, check) in [
            (r#"{"v":"NaN"}"#, f64::is_nan as fn(f64) -> bool),
            (r#"{"v":"Infinity"}"#, |v: f64| v == f64::INFINITY),
            (r#"{"v":"-Infinity"}"#, |v: f64| v == f64::NEG_INFINITY),
            (r#"{"v":1.5}"#, |v: f64| v == 1.5),
            (r#"{"v":3}"#, |v: f64| v == 3.0),
        ] {
            let m: M = serde_json::from_str(text).unwrap();
            assert!(check(m.v), "{text}");
            let back: M = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
            assert!(check(back.v), "{text} after round trip");
        }
    }

    #[test]
    fn int64_accepts_numbers_and_strings() {
        let m: M = serde_json::from_str(r#"{"v":0,"t":"1795318556943"}"#).unwrap();
        assert_eq!(m.t, Some(1795318556943));
        let m: M = serde_json::from_str(r#"{"v":0,"t":12}"#).unwrap();
        assert_eq!(m.t, Some(12));
        assert!(serde_json::from_str::<M>(r#"{"v":0,"t":"x"}"#).is_err());
        assert!(serde_json::from_str::<M>(r#"{"v":"abc"}"#).is_err());
    }
}
