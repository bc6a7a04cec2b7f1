//! Moving records between JSON and Rhai values without going through serde's
//! generic machinery: JSON values are consumed, so strings move instead of being copied.

use rhai::{Array, Dynamic, Map};
use serde_json::Value;

/// A parsed JSON value as a Rhai value. `null` becomes `()`; integers that do
/// not fit in an `i64` become floats.
pub fn to_dynamic(v: Value) -> Dynamic {
    match v {
        Value::Null => Dynamic::UNIT,
        Value::Bool(b) => Dynamic::from_bool(b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Dynamic::from_int(i),
            None => Dynamic::from_float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => Dynamic::from(s),
        Value::Array(a) => Dynamic::from_array(a.into_iter().map(to_dynamic).collect::<Array>()),
        Value::Object(o) => {
            let mut m = Map::new();
            for (k, v) in o {
                m.insert(k.into(), to_dynamic(v));
            }
            Dynamic::from_map(m)
        }
    }
}

/// Appends a Rhai value to `out` as compact JSON. Fails on values JSON cannot
/// hold (functions, custom types).
pub fn write_json(out: &mut Vec<u8>, v: &Dynamic) -> Result<(), String> {
    serde_json::to_writer(&mut *out, v).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trips_json() {
        let v = json!({"a": [1, 2.5, "x", null, true], "b": {"c": -7}});
        let d = to_dynamic(v.clone());
        let mut out = Vec::new();
        write_json(&mut out, &d).unwrap();
        assert_eq!(serde_json::from_slice::<Value>(&out).unwrap(), v);
    }
}
