//! Durations in the pipeline format, written with their unit: `100ms`, `30s`, `5m`.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer};

/// A duration written as text with a unit (`100ms`, `30s`, `1m 30s`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map(Dur).map_err(|e| {
            serde::de::Error::custom(format!(
                "`{s}` is not a duration such as `100ms` or `30s`: {e}"
            ))
        })
    }
}

/// Written back with its unit (`1m`, `500ms`): the JSON Schema's defaults.
impl serde::Serialize for Dur {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(self.0).to_string())
    }
}

impl JsonSchema for Dur {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A duration with its unit: `100ms`, `30s`, `5m`, `1h`.",
            "pattern": "^\\s*[0-9]+\\s*[a-zµ]+(\\s*[0-9]+\\s*[a-zµ]+)*\\s*$"
        })
    }
}
