//! Windowed aggregation: records, as their transforms left them, are
//! grouped by fields and by a tumbling window of event (or processing)
//! time; when a window closes, one record per group and window is emitted,
//! holding the group's fields, `window_start`, `window_end` and what `emit`
//! computes. The emitted records go through the routes that name the
//! aggregate (`from:`) to their sinks.
//!
//! [`window`] is the pure part (windows, watermark, lateness), [`reduce`]
//! the reducers; the engine feeds records in commit order.

pub mod esm;
pub mod reduce;
pub mod script;
pub mod window;

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use crate::duration::Dur;

/// `aggregate:`: one record per group and window.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Aggregate")]
pub struct Config {
    /// The aggregate's name: routes take its records with `from: NAME`.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Field paths whose values make a group (`[device_id]`); none: one group.
    #[serde(default)]
    pub group_by: Vec<String>,
    /// The window.
    pub window: WindowConfig,
    /// Which time puts a record in a window.
    pub time: TimeConfig,
    /// How long after its end a window still takes records (`30s`); later
    /// records are dead-lettered with stage `aggregate`. Default: none.
    #[serde(default)]
    pub allowed_lateness: Option<Dur>,
    /// The output fields and their reducers: `count()`, `sum(field)`,
    /// `min(field)`, `max(field)`, `avg(field)`, `first(field)`,
    /// `last(field)`, `count_distinct(field)`, or Rhai scripts
    /// (`{ init, add, finish }`).
    #[schemars(length(min = 1))]
    pub emit: IndexMap<String, Emit>,
    /// The most windows (groups times windows) open at once; a record that
    /// would open another is dead-lettered with stage `aggregate`.
    #[serde(default = "default_max_open")]
    #[schemars(range(min = 1))]
    pub max_open_windows: usize,
    /// Transforms run on the aggregate's records before their routes, as
    /// `transforms:` runs on the source's (names unique among both).
    #[serde(default)]
    pub transforms: Vec<crate::transform::Config>,
}

/// One output field's reducer.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
#[schemars(rename = "AggregateEmit")]
pub enum Emit {
    /// A built-in reducer: `count()`, `avg(temperature_c)` …
    Reducer(String),
    /// Rhai scripts: `init` gives the first state, `add` takes a record
    /// into it, `finish` gives the output value.
    Script(script::Source),
}

fn default_max_open() -> usize {
    100_000
}

/// The window's shape.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "AggregateWindow")]
pub struct WindowConfig {
    /// Windows of this length, one after the other, starting at whole
    /// multiples of it since 1970 (`5m`: 08:00, 08:05 …).
    pub tumbling: Dur,
}

/// Which time puts a record in a window.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
#[schemars(rename = "AggregateTime")]
pub enum TimeConfig {
    /// The record's own time, in a field.
    Event(EventTime),
    /// `processing`: when its batch was read (`meta.batch_time`).
    Processing(Processing),
}

/// Event time: the field that holds it.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "AggregateEventTime")]
pub struct EventTime {
    /// The field: an RFC 3339 timestamp, or a number of seconds (below
    /// 100 000 000 000) or milliseconds since 1970.
    pub field: String,
}

/// `processing`.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Processing {
    /// When the batch was read.
    Processing,
}

/// An aggregate ready to run: its spec and the fields it reads.
#[derive(Debug, Clone)]
pub struct Aggregate {
    /// The aggregate's name.
    pub name: String,
    /// The windows' spec.
    pub spec: window::Spec,
    /// The group-by paths.
    pub group_by: Vec<String>,
    /// The event time's field (`None`: processing time).
    pub time_field: Option<String>,
    /// Per reducer, the path it reads.
    pub fields: Vec<Option<String>>,
}

impl Aggregate {
    /// Builds from the config, with the sandbox `limits` of script
    /// reducers; the reducers' errors, every one.
    pub fn new(c: &Config, limits: &crate::transform::Limits) -> Result<Aggregate, Vec<String>> {
        let mut reducers = Vec::new();
        let mut fields = Vec::new();
        let mut errors = Vec::new();
        for (name, emit) in &c.emit {
            let parsed = match emit {
                Emit::Reducer(written) => reduce::parse(written),
                Emit::Script(s) => Ok((
                    reduce::Reducer::Script(std::sync::Arc::new(s.clone())),
                    None,
                )),
            };
            match parsed {
                Ok((r, f)) => {
                    reducers.push((name.clone(), r));
                    fields.push(f);
                }
                Err(e) => errors.push(format!("`emit.{name}`: {e}")),
            }
        }
        if let Err(e) = script::Scripts::new(&reducers, limits) {
            errors.push(e);
        }
        let size_ms = i64::try_from(c.window.tumbling.0.as_millis()).unwrap_or(i64::MAX);
        if size_ms <= 0 {
            errors.push("`window.tumbling` is zero".into());
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let strip = |p: &String| p.strip_prefix("record.").unwrap_or(p).to_owned();
        let group_by: Vec<String> = c.group_by.iter().map(strip).collect();
        Ok(Aggregate {
            name: c.name.clone(),
            spec: window::Spec {
                size_ms,
                lateness_ms: c
                    .allowed_lateness
                    .map_or(0, |d| i64::try_from(d.0.as_millis()).unwrap_or(i64::MAX)),
                group_names: group_by.clone(),
                reducers,
                max_open: c.max_open_windows,
                limits: limits.clone(),
            },
            group_by,
            time_field: match &c.time {
                TimeConfig::Event(e) => Some(strip(&e.field)),
                TimeConfig::Processing(_) => None,
            },
            fields,
        })
    }

    /// A record's part: its group, time and the values the reducers read;
    /// `Err` with the reason when it has no usable time.
    pub fn contribution(
        &self,
        record: &Value,
        batch_time_ms: i64,
    ) -> Result<window::Contribution, String> {
        let field = |path: &str| {
            path.split('.')
                .try_fold(record, |v, part| v.get(part))
                .cloned()
        };
        let time_ms = match &self.time_field {
            None => batch_time_ms,
            Some(f) => match field(f) {
                None | Some(Value::Null) => {
                    return Err(format!("the record has no event time: `{f}` is missing"));
                }
                Some(v) => event_time(&v).map_err(|e| format!("`{f}`: {e}"))?,
            },
        };
        // A script reducer reads the whole record.
        let values: Vec<Option<Value>> = self
            .fields
            .iter()
            .zip(&self.spec.reducers)
            .map(|(f, (_, r))| match r {
                reduce::Reducer::Script(_) => Some(record.clone()),
                _ => f.as_deref().and_then(field),
            })
            .collect();
        // A value a reducer cannot take is the record's fault, told now.
        for ((name, r), v) in self.spec.reducers.iter().zip(&values) {
            r.check(v.as_ref())
                .map_err(|why| format!("`{name}`: {why}"))?;
        }
        Ok(window::Contribution {
            group: self
                .group_by
                .iter()
                .map(|g| field(g).unwrap_or(Value::Null))
                .collect(),
            time_ms,
            values,
        })
    }
}

/// Milliseconds since 1970 of an event time: RFC 3339 text, or a number of
/// seconds (below 100 000 000 000, which is in year 5138) or milliseconds.
pub fn event_time(v: &Value) -> Result<i64, String> {
    match v {
        Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| t.timestamp_millis())
            .map_err(|_| format!("{v} is not an RFC 3339 timestamp")),
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or(f64::NAN);
            if !x.is_finite() || x < 0.0 {
                return Err(format!("{v} is not a time since 1970"));
            }
            Ok(if x < 1e11 {
                (x * 1000.0) as i64
            } else {
                x as i64
            })
        }
        _ => Err(format!("{v} is not a timestamp")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn event_times_in_text_seconds_and_milliseconds() {
        assert_eq!(
            event_time(&json!("2026-11-24T08:00:00Z")),
            Ok(1_795_507_200_000)
        );
        assert_eq!(
            event_time(&json!("2026-11-24T09:00:00+01:00")),
            Ok(1_795_507_200_000)
        );
        assert_eq!(event_time(&json!(1_795_507_200)), Ok(1_795_507_200_000));
        assert_eq!(event_time(&json!(1_795_507_200.5)), Ok(1_795_507_200_500));
        assert_eq!(
            event_time(&json!(1_795_507_200_000_i64)),
            Ok(1_795_507_200_000)
        );
        assert_eq!(
            event_time(&json!("yesterday")),
            Err("\"yesterday\" is not an RFC 3339 timestamp".into())
        );
        assert_eq!(
            event_time(&json!(-1)),
            Err("-1 is not a time since 1970".into())
        );
        assert_eq!(
            event_time(&json!(true)),
            Err("true is not a timestamp".into())
        );
    }

    #[test]
    fn a_records_contribution() {
        let c: Config = serde_json::from_value(json!({
            "name": "per_device", "group_by": ["record.device.id"],
            "window": {"tumbling": "5m"}, "time": {"field": "ts"},
            "emit": {"avg": "avg(t)", "n": "count()"}
        }))
        .unwrap();
        let a = Aggregate::new(&c, &Default::default()).unwrap();
        let got = a
            .contribution(
                &json!({"device": {"id": "d1"}, "ts": "1970-01-01T00:01:00Z", "t": 2}),
                0,
            )
            .unwrap();
        assert_eq!(
            got,
            window::Contribution {
                group: vec![json!("d1")],
                time_ms: 60_000,
                values: vec![Some(json!(2)), None]
            }
        );
        assert_eq!(
            a.contribution(&json!({"t": 1}), 0),
            Err("the record has no event time: `ts` is missing".into())
        );
        let processing: Config = serde_json::from_value(json!({
            "name": "p", "window": {"tumbling": "1m"}, "time": "processing",
            "emit": {"n": "count()"}
        }))
        .unwrap();
        let p = Aggregate::new(&processing, &Default::default()).unwrap();
        assert_eq!(p.contribution(&json!({}), 42).unwrap().time_ms, 42);
        let bad: Config = serde_json::from_value(json!({
            "name": "b", "window": {"tumbling": "0s"}, "time": "processing",
            "emit": {"m": "mode(y)", "n": "count(x)"}
        }))
        .unwrap();
        assert_eq!(
            Aggregate::new(&bad, &Default::default()).unwrap_err(),
            [
                "`emit.m`: `mode` is not a reducer: count, sum, min, max, avg, first, last, count_distinct",
                "`emit.n`: `count()` takes no field: `count(x)`",
                "`window.tumbling` is zero"
            ]
        );
    }
}
