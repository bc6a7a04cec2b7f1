//! Reducers: what an aggregate's `emit` computes over a window's records.
//!
//! `count()` counts records; the others read one field of each record and
//! leave out records where it is missing or `null`, as SQL's aggregates
//! leave out NULL. `sum` and `avg` take numbers; `min` and `max` numbers
//! or strings (RFC 3339 timestamps of one format order as text does);
//! `first` and `last` any value, in the order records were committed;
//! `count_distinct` counts distinct values exactly, up to [`MAX_DISTINCT`].

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use serde_json::{Number, Value};

/// The most distinct values `count_distinct` tells apart in one window.
pub const MAX_DISTINCT: usize = 100_000;

/// A reducer, with the field it reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reducer {
    /// `count()`.
    Count,
    /// `sum(field)`.
    Sum,
    /// `min(field)`.
    Min,
    /// `max(field)`.
    Max,
    /// `avg(field)`.
    Avg,
    /// `first(field)`.
    First,
    /// `last(field)`.
    Last,
    /// `count_distinct(field)`.
    CountDistinct,
    /// `{ init, add, finish }`: Rhai scripts (see [`super::script`]).
    Script(Arc<super::script::Source>),
}

/// A reducer as written (`avg(temperature_c)`): the reducer and the field
/// path it reads (`None` for `count()`).
pub fn parse(written: &str) -> Result<(Reducer, Option<String>), String> {
    let t = written.trim();
    let (name, rest) = t
        .split_once('(')
        .ok_or_else(|| format!("`{t}` is not a reducer such as `count()` or `avg(field)`"))?;
    let arg = rest
        .strip_suffix(')')
        .ok_or_else(|| format!("`{t}` has no closing `)`"))?
        .trim();
    let arg = arg.strip_prefix("record.").unwrap_or(arg);
    let r = match name.trim() {
        "count" => Reducer::Count,
        "sum" => Reducer::Sum,
        "min" => Reducer::Min,
        "max" => Reducer::Max,
        "avg" => Reducer::Avg,
        "first" => Reducer::First,
        "last" => Reducer::Last,
        "count_distinct" => Reducer::CountDistinct,
        other => {
            return Err(format!(
                "`{other}` is not a reducer: count, sum, min, max, avg, first, last, count_distinct"
            ));
        }
    };
    let field_ok = !arg.is_empty()
        && arg.split('.').all(|p| {
            let mut c = p.chars();
            c.next()
                .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
                && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
        });
    match (&r, arg.is_empty()) {
        (Reducer::Count, true) => Ok((r, None)),
        (Reducer::Count, false) => Err(format!("`count()` takes no field: `{t}`")),
        (_, _) if field_ok => Ok((r, Some(arg.to_owned()))),
        (_, true) => Err(format!(
            "`{}` needs a field: `{}(field)`",
            name.trim(),
            name.trim()
        )),
        (_, false) => Err(format!(
            "`{arg}` is not a field path such as `temperature_c` or `reading.value`"
        )),
    }
}

/// A value in a window so far.
#[derive(Debug, Clone)]
pub enum Acc {
    /// Records counted.
    Count(u64),
    /// A sum: whole while every value was, else a float.
    Sum(Option<Total>),
    /// The least value.
    Min(Option<Value>),
    /// The greatest value.
    Max(Option<Value>),
    /// Sum and count of the values.
    Avg(f64, u64),
    /// The first value.
    First(Option<Value>),
    /// The last value.
    Last(Option<Value>),
    /// The distinct values (as JSON), and whether there were more.
    Distinct(HashSet<String>, bool),
    /// A script reducer's state (its scripts run by the windows).
    Script(Value),
}

/// A running sum.
#[derive(Debug, Clone, Copy)]
pub enum Total {
    /// Every value was a whole number that fits.
    Int(i64),
    /// A float (or a sum too large for a whole number).
    Float(f64),
}

struct NotA<'a>(&'a Value, &'static str);

impl fmt::Display for NotA<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} is not {}", self.0, self.1)
    }
}

/// Orders numbers numerically and strings as text; a number before a string.
fn order(a: &Value, b: &Value) -> std::cmp::Ordering {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
            x.total_cmp(&y)
        }
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Number(_), _) => std::cmp::Ordering::Less,
        _ => std::cmp::Ordering::Greater,
    }
}

impl Reducer {
    /// Whether the reducer takes `v` (a missing value or `null` it leaves out).
    pub fn check(&self, v: Option<&Value>) -> Result<(), String> {
        let Some(v) = v.filter(|v| !v.is_null()) else {
            return Ok(());
        };
        match self {
            Reducer::Sum | Reducer::Avg if !v.is_number() => Err(NotA(v, "a number").to_string()),
            Reducer::Min | Reducer::Max if !(v.is_number() || v.is_string()) => {
                Err(NotA(v, "a number or a string").to_string())
            }
            _ => Ok(()),
        }
    }

    /// The value of an empty window.
    pub fn start(&self) -> Acc {
        match self {
            Reducer::Count => Acc::Count(0),
            Reducer::Sum => Acc::Sum(None),
            Reducer::Min => Acc::Min(None),
            Reducer::Max => Acc::Max(None),
            Reducer::Avg => Acc::Avg(0.0, 0),
            Reducer::First => Acc::First(None),
            Reducer::Last => Acc::Last(None),
            Reducer::CountDistinct => Acc::Distinct(HashSet::new(), false),
            Reducer::Script(_) => Acc::Script(Value::Null),
        }
    }
}

impl Acc {
    /// Takes a record's value (checked by [`Reducer::check`]).
    pub fn add(&mut self, v: Option<&Value>) {
        if let Acc::Count(n) = self {
            *n += 1;
            return;
        }
        let Some(v) = v.filter(|v| !v.is_null()) else {
            return;
        };
        match self {
            Acc::Count(_) | Acc::Script(_) => {}
            Acc::Sum(total) => {
                let next = match (*total, v.as_i64()) {
                    (None, Some(i)) => Total::Int(i),
                    (Some(Total::Int(s)), Some(i)) => match s.checked_add(i) {
                        Some(s) => Total::Int(s),
                        None => Total::Float(s as f64 + i as f64),
                    },
                    (t, _) => {
                        let before = match t {
                            None => 0.0,
                            Some(Total::Int(s)) => s as f64,
                            Some(Total::Float(f)) => f,
                        };
                        Total::Float(before + v.as_f64().unwrap_or(0.0))
                    }
                };
                *total = Some(next);
            }
            Acc::Min(m) => {
                if m.as_ref().is_none_or(|m| order(v, m).is_lt()) {
                    *m = Some(v.clone());
                }
            }
            Acc::Max(m) => {
                if m.as_ref().is_none_or(|m| order(v, m).is_gt()) {
                    *m = Some(v.clone());
                }
            }
            Acc::Avg(sum, n) => {
                *sum += v.as_f64().unwrap_or(0.0);
                *n += 1;
            }
            Acc::First(f) => {
                if f.is_none() {
                    *f = Some(v.clone());
                }
            }
            Acc::Last(l) => *l = Some(v.clone()),
            Acc::Distinct(seen, more) => {
                let text = v.to_string();
                if seen.len() < MAX_DISTINCT {
                    seen.insert(text);
                } else if !seen.contains(&text) {
                    *more = true;
                }
            }
        }
    }

    /// The window's value: `null` when no record had one.
    pub fn finish(self) -> Value {
        match self {
            Acc::Count(n) => Value::from(n),
            Acc::Sum(None) => Value::Null,
            Acc::Sum(Some(Total::Int(i))) => Value::from(i),
            Acc::Sum(Some(Total::Float(f))) => float(f),
            Acc::Min(v) | Acc::Max(v) | Acc::First(v) | Acc::Last(v) => v.unwrap_or(Value::Null),
            Acc::Avg(_, 0) => Value::Null,
            Acc::Avg(sum, n) => float(sum / n as f64),
            Acc::Distinct(seen, _) => Value::from(seen.len() as u64),
            Acc::Script(state) => state,
        }
    }
}

impl Acc {
    /// The value so far, to carry in a Lambda window's state.
    pub fn to_state(&self) -> Value {
        match self {
            Acc::Count(n) => Value::from(*n),
            Acc::Sum(None) => Value::Null,
            Acc::Sum(Some(Total::Int(i))) => serde_json::json!({ "i": i }),
            Acc::Sum(Some(Total::Float(f))) => serde_json::json!({ "f": f }),
            Acc::Min(v) | Acc::Max(v) | Acc::First(v) | Acc::Last(v) => {
                v.clone().unwrap_or(Value::Null)
            }
            Acc::Avg(sum, n) => serde_json::json!([sum, n]),
            Acc::Distinct(seen, more) => {
                let mut values: Vec<&String> = seen.iter().collect();
                values.sort();
                serde_json::json!({ "v": values, "more": more })
            }
            Acc::Script(state) => state.clone(),
        }
    }

    /// A value carried by [`to_state`](Self::to_state), for `reducer`.
    pub fn from_state(reducer: &Reducer, v: &Value) -> Option<Acc> {
        let opt = |v: &Value| (!v.is_null()).then(|| v.clone());
        Some(match reducer {
            Reducer::Count => Acc::Count(v.as_u64()?),
            Reducer::Sum => Acc::Sum(match v {
                Value::Null => None,
                v => match (v.get("i"), v.get("f")) {
                    (Some(i), _) => Some(Total::Int(i.as_i64()?)),
                    (_, Some(f)) => Some(Total::Float(f.as_f64()?)),
                    _ => return None,
                },
            }),
            Reducer::Min => Acc::Min(opt(v)),
            Reducer::Max => Acc::Max(opt(v)),
            Reducer::First => Acc::First(opt(v)),
            Reducer::Last => Acc::Last(opt(v)),
            Reducer::Avg => Acc::Avg(v.get(0)?.as_f64()?, v.get(1)?.as_u64()?),
            Reducer::CountDistinct => Acc::Distinct(
                v.get("v")?
                    .as_array()?
                    .iter()
                    .map(|s| s.as_str().map(str::to_owned))
                    .collect::<Option<_>>()?,
                v.get("more")?.as_bool()?,
            ),
            Reducer::Script(_) => Acc::Script(v.clone()),
        })
    }
}

fn float(f: f64) -> Value {
    Number::from_f64(f).map_or(Value::Null, Value::Number)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(r: Reducer, values: &[Value]) -> Value {
        let mut acc = r.start();
        for v in values {
            r.check(Some(v)).unwrap();
            acc.add(Some(v));
        }
        acc.finish()
    }

    #[test]
    fn each_reducer_over_numbers_strings_and_nulls() {
        let nums = [json!(3), json!(null), json!(1), json!(2.5), json!(1)];
        assert_eq!(run(Reducer::Count, &nums), json!(5));
        assert_eq!(run(Reducer::Sum, &nums), json!(7.5));
        assert_eq!(run(Reducer::Sum, &[json!(2), json!(3)]), json!(5));
        assert_eq!(
            run(Reducer::Sum, &[json!(i64::MAX), json!(1)]),
            json!(9.223372036854776e18)
        );
        assert_eq!(run(Reducer::Sum, &[json!(null)]), json!(null));
        assert_eq!(run(Reducer::Avg, &nums), json!(1.875));
        assert_eq!(run(Reducer::Avg, &[]), json!(null));
        assert_eq!(run(Reducer::Min, &nums), json!(1));
        assert_eq!(run(Reducer::Max, &nums), json!(3));
        let ts = [json!("2026-11-24T08:03:00Z"), json!("2026-11-24T08:01:00Z")];
        assert_eq!(run(Reducer::Min, &ts), json!("2026-11-24T08:01:00Z"));
        assert_eq!(run(Reducer::Max, &ts), json!("2026-11-24T08:03:00Z"));
        assert_eq!(run(Reducer::First, &nums), json!(3));
        assert_eq!(run(Reducer::Last, &nums), json!(1));
        assert_eq!(run(Reducer::CountDistinct, &nums), json!(3));
        assert_eq!(
            Reducer::Sum.check(Some(&json!("7"))),
            Err("\"7\" is not a number".into())
        );
        assert_eq!(
            Reducer::Max.check(Some(&json!([1]))),
            Err("[1] is not a number or a string".into())
        );
    }

    #[test]
    fn reducers_are_parsed_with_their_field() {
        assert_eq!(parse("count()"), Ok((Reducer::Count, None)));
        assert_eq!(
            parse(" avg(record.reading.c) "),
            Ok((Reducer::Avg, Some("reading.c".into())))
        );
        assert_eq!(
            parse("median(x)"),
            Err(
                "`median` is not a reducer: count, sum, min, max, avg, first, last, count_distinct"
                    .into()
            )
        );
        assert_eq!(
            parse("sum()"),
            Err("`sum` needs a field: `sum(field)`".into())
        );
        assert_eq!(
            parse("count(x)"),
            Err("`count()` takes no field: `count(x)`".into())
        );
        assert_eq!(
            parse("max(a b)"),
            Err("`a b` is not a field path such as `temperature_c` or `reading.value`".into())
        );
        assert_eq!(
            parse("avg"),
            Err("`avg` is not a reducer such as `count()` or `avg(field)`".into())
        );
    }
}
