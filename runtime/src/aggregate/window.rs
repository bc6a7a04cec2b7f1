//! The windows of an aggregate: which window a record falls in, when a
//! window closes, and what it emits. Pure: records come in the order their
//! batches are committed, and the same records give the same output.
//!
//! Tumbling windows of `size` start at multiples of `size` since the epoch.
//! The watermark is the latest event time seen; a window closes once the
//! watermark reaches its end plus the allowed lateness, and is emitted then.
//! A record whose window closed already is late: refused, not counted.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::reduce::{Acc, Reducer};
use super::script::Scripts;

/// What an aggregate computes.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Window length in milliseconds.
    pub size_ms: i64,
    /// How long after its end a window still takes records, in milliseconds.
    pub lateness_ms: i64,
    /// The output field of each group-by path.
    pub group_names: Vec<String>,
    /// The output fields and their reducers, in order.
    pub reducers: Vec<(String, Reducer)>,
    /// The most windows open at once.
    pub max_open: usize,
    /// The sandbox of script reducers.
    pub limits: crate::transform::Limits,
}

/// One record's part in an aggregate.
#[derive(Debug, Clone, PartialEq)]
pub struct Contribution {
    /// Its group-by values (`null` for a missing field).
    pub group: Vec<Value>,
    /// Its event time, in milliseconds since the epoch.
    pub time_ms: i64,
    /// Per reducer, the value it reads (`None` for `count()`, or missing).
    pub values: Vec<Option<Value>>,
}

/// Why a record was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// Its window closed already.
    Late {
        /// Its window's end, in milliseconds.
        window_end: i64,
        /// The latest event time seen, in milliseconds.
        watermark: i64,
    },
    /// Opening its window would pass `max_open`.
    TooManyWindows(usize),
    /// A reducer cannot take its value.
    Value(String),
}

impl Refused {
    /// The reason, as a dead letter says it.
    pub fn reason(&self) -> String {
        match self {
            Refused::Late {
                window_end,
                watermark,
            } => format!(
                "late: its window ended at {}, and records up to {} were seen",
                crate::record::time::rfc3339_millis(*window_end),
                crate::record::time::rfc3339_millis(*watermark)
            ),
            Refused::TooManyWindows(n) => format!(
                "{n} windows are open, the most `max_open_windows` allows: the record would open another"
            ),
            Refused::Value(why) => why.clone(),
        }
    }
}

#[derive(Debug)]
struct Window {
    group: Vec<Value>,
    accs: Vec<Acc>,
    /// The batch of its first record.
    first_batch: u64,
}

/// The open windows of one aggregate (in `sluice run`, of the whole input).
#[derive(Debug)]
pub struct Windows {
    spec: Spec,
    scripts: Scripts,
    /// By (end, group as JSON): the order windows are emitted in.
    open: BTreeMap<(i64, String), Window>,
    watermark: Option<i64>,
    /// How many open windows each batch was the first of.
    firsts: BTreeMap<u64, usize>,
}

impl Windows {
    /// No window open; `Err` when a script reducer does not compile.
    pub fn new(spec: Spec) -> Result<Windows, String> {
        Ok(Windows {
            scripts: Scripts::new(&spec.reducers, &spec.limits)?,
            spec,
            open: BTreeMap::new(),
            watermark: None,
            firsts: BTreeMap::new(),
        })
    }

    /// Windows over a stream read again from a checkpoint saved when the
    /// latest event time taken was `watermark`: the windows it had closed
    /// stay closed.
    pub fn resume_at(&mut self, watermark: i64) {
        self.watermark = Some(self.watermark.map_or(watermark, |w| w.max(watermark)));
    }

    /// A record's time moves the watermark without the record counting in
    /// its window (a duplicate).
    pub fn observe(&mut self, time_ms: i64) {
        self.watermark = Some(self.watermark.map_or(time_ms, |w| w.max(time_ms)));
    }

    /// The latest event time taken.
    pub fn watermark(&self) -> Option<i64> {
        self.watermark
    }

    /// The first batch a window still open took a record of.
    pub fn oldest_batch(&self) -> Option<u64> {
        self.firsts.keys().next().copied()
    }

    /// Whether the window of a record at `time_ms` has closed.
    pub fn is_closed(&self, time_ms: i64) -> bool {
        let size = self.spec.size_ms;
        let end = (time_ms.div_euclid(size) * size).saturating_add(size);
        self.watermark
            .is_some_and(|w| end.saturating_add(self.spec.lateness_ms) <= w)
    }

    /// How many windows are open.
    pub fn open(&self) -> usize {
        self.open.len()
    }

    /// Adds a record to its window.
    pub fn add(&mut self, c: &Contribution) -> Result<(), Refused> {
        self.add_in(c, 0)
    }

    /// Adds a record of batch `batch` to its window.
    pub fn add_in(&mut self, c: &Contribution, batch: u64) -> Result<(), Refused> {
        let size = self.spec.size_ms;
        let start = c.time_ms.div_euclid(size) * size;
        let end = start.saturating_add(size);
        if let Some(w) = self.watermark
            && end.saturating_add(self.spec.lateness_ms) <= w
        {
            return Err(Refused::Late {
                window_end: end,
                watermark: w,
            });
        }
        let key = (end, Value::Array(c.group.clone()).to_string());
        if !self.open.contains_key(&key) && self.open.len() >= self.spec.max_open {
            return Err(Refused::TooManyWindows(self.open.len()));
        }
        // Checked before anything changes: a refused record leaves no trace.
        for ((name, r), v) in self.spec.reducers.iter().zip(&c.values) {
            r.check(v.as_ref())
                .map_err(|why| Refused::Value(format!("`{name}`: {why}")))?;
        }
        let (spec, scripts) = (&self.spec, &mut self.scripts);
        match self.open.entry(key) {
            std::collections::btree_map::Entry::Occupied(mut w) => {
                add_values(spec, scripts, &mut w.get_mut().accs, c).map_err(Refused::Value)?;
            }
            std::collections::btree_map::Entry::Vacant(v) => {
                let mut accs = empty_values(spec, scripts).map_err(Refused::Value)?;
                add_values(spec, scripts, &mut accs, c).map_err(Refused::Value)?;
                v.insert(Window {
                    group: c.group.clone(),
                    accs,
                    first_batch: batch,
                });
                *self.firsts.entry(batch).or_default() += 1;
            }
        }
        self.watermark = Some(self.watermark.map_or(c.time_ms, |w| w.max(c.time_ms)));
        Ok(())
    }

    /// Takes the windows the watermark closed, in order of their end, then
    /// of their group: each as its output record.
    pub fn closed(&mut self) -> Vec<Emitted> {
        let Some(w) = self.watermark else {
            return Vec::new();
        };
        let lateness = self.spec.lateness_ms;
        let keep = self
            .open
            .keys()
            .find(|(end, _)| end.saturating_add(lateness) > w)
            .cloned();
        let rest = match keep {
            Some(k) => self.open.split_off(&k),
            None => BTreeMap::new(),
        };
        let done = std::mem::replace(&mut self.open, rest);
        done.into_iter().map(|(k, w)| self.emit(k.0, w)).collect()
    }

    /// Takes every open window (the end of the input), in the same order.
    pub fn all(&mut self) -> Vec<Emitted> {
        let done = std::mem::take(&mut self.open);
        done.into_iter().map(|(k, w)| self.emit(k.0, w)).collect()
    }

    fn emit(&mut self, end: i64, w: Window) -> Emitted {
        if let Some(n) = self.firsts.get_mut(&w.first_batch) {
            *n -= 1;
            if *n == 0 {
                self.firsts.remove(&w.first_batch);
            }
        }
        let span = (end - self.spec.size_ms, end);
        output(&self.spec, &mut self.scripts, w.group, span, w.accs)
    }
}

/// An empty window's values: each script reducer's `init`.
pub(crate) fn empty_values(spec: &Spec, scripts: &mut Scripts) -> Result<Vec<Acc>, String> {
    let mut accs: Vec<Acc> = spec.reducers.iter().map(|(_, r)| r.start()).collect();
    for (i, (name, _)) in spec.reducers.iter().enumerate() {
        if scripts.is_script(i) {
            let state = scripts
                .init(i)
                .map_err(|e| format!("`{name}` (init): {e}"))?;
            accs[i] = Acc::Script(state);
        }
    }
    Ok(accs)
}

/// Takes a record's part into a window's values. The script reducers run
/// first: one that fails leaves every value as it was.
pub(crate) fn add_values(
    spec: &Spec,
    scripts: &mut Scripts,
    accs: &mut [Acc],
    c: &Contribution,
) -> Result<(), String> {
    let mut states = Vec::new();
    for (i, ((name, _), acc)) in spec.reducers.iter().zip(accs.iter()).enumerate() {
        if let Acc::Script(state) = acc {
            let record = c
                .values
                .get(i)
                .and_then(Option::as_ref)
                .unwrap_or(&Value::Null);
            let next = scripts
                .add(i, state, record)
                .map_err(|e| format!("`{name}` (add): {e}"))?;
            states.push((i, next));
        }
    }
    for (acc, v) in accs.iter_mut().zip(&c.values) {
        acc.add(v.as_ref());
    }
    for (i, state) in states {
        accs[i] = Acc::Script(state);
    }
    Ok(())
}

/// A window's record, with what identifies it.
#[derive(Debug, Clone, PartialEq)]
pub struct Emitted {
    /// The record.
    pub record: Value,
    /// Why a script reducer's `finish` gave no value (its field is then
    /// `null`, and the record is dead-lettered with stage `aggregate`).
    pub error: Option<String>,
    /// Its window's start and its group's values: the same window of the
    /// same group always says the same (`2026-11-24T08:00:00.000Z ["a"]`).
    pub window: String,
}

/// The record a window emits: its group's fields, `window_start`,
/// `window_end` and the reducers' values.
pub fn output(
    spec: &Spec,
    scripts: &mut Scripts,
    group: Vec<Value>,
    (start, end): (i64, i64),
    accs: Vec<Acc>,
) -> Emitted {
    let window = format!(
        "{} {}",
        crate::record::time::rfc3339_millis(start),
        Value::Array(group.clone())
    );
    let mut out = Map::new();
    for (name, v) in spec.group_names.iter().zip(group) {
        out.insert(name.clone(), v);
    }
    out.insert(
        "window_start".into(),
        Value::String(crate::record::time::rfc3339_millis(start)),
    );
    out.insert(
        "window_end".into(),
        Value::String(crate::record::time::rfc3339_millis(end)),
    );
    let mut error = None;
    for (i, ((name, _), acc)) in spec.reducers.iter().zip(accs).enumerate() {
        let value = match acc {
            Acc::Script(state) if scripts.is_script(i) => {
                scripts.finish(i, state).unwrap_or_else(|e| {
                    error.get_or_insert(format!("`{name}` (finish): {e}"));
                    Value::Null
                })
            }
            acc => acc.finish(),
        };
        out.insert(name.clone(), value);
    }
    Emitted {
        record: Value::Object(out),
        error,
        window,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use serde_json::json;

    /// The distinct group keys of some records, for tests.
    fn groups(records: &[Value], names: &[&str]) -> HashSet<String> {
        records
            .iter()
            .map(|r| {
                names
                    .iter()
                    .map(|n| r[*n].to_string())
                    .collect::<Vec<_>>()
                    .join("/")
            })
            .collect()
    }

    const MIN: i64 = 60_000;

    fn records(emitted: Vec<Emitted>) -> Vec<Value> {
        emitted.into_iter().map(|e| e.record).collect()
    }

    fn spec(lateness_ms: i64) -> Spec {
        Spec {
            size_ms: 5 * MIN,
            lateness_ms,
            group_names: vec!["device".into()],
            reducers: vec![
                ("n".into(), Reducer::Count),
                ("avg".into(), Reducer::Avg),
                ("max".into(), Reducer::Max),
                ("first".into(), Reducer::First),
            ],
            max_open: 3,
            limits: Default::default(),
        }
    }

    fn c(device: &str, minute: i64, t: f64) -> Contribution {
        Contribution {
            group: vec![json!(device)],
            time_ms: minute * MIN,
            values: vec![None, Some(json!(t)), Some(json!(t)), Some(json!(t))],
        }
    }

    #[test]
    fn a_window_closes_when_the_watermark_passes_its_end() {
        let mut w = Windows::new(spec(0)).unwrap();
        for x in [c("a", 0, 1.0), c("b", 1, 10.0), c("a", 4, 3.0)] {
            w.add(&x).unwrap();
        }
        assert_eq!(records(w.closed()), Vec::<Value>::new());
        // Minute 5 is the next window's: the first closes, `a` before `b`.
        w.add(&c("a", 5, 7.0)).unwrap();
        assert_eq!(
            records(w.closed()),
            [
                json!({"device": "a", "window_start": "1970-01-01T00:00:00.000Z",
                       "window_end": "1970-01-01T00:05:00.000Z",
                       "n": 2, "avg": 2.0, "max": 3.0, "first": 1.0}),
                json!({"device": "b", "window_start": "1970-01-01T00:00:00.000Z",
                       "window_end": "1970-01-01T00:05:00.000Z",
                       "n": 1, "avg": 10.0, "max": 10.0, "first": 10.0}),
            ]
        );
        // A record of the closed window is late, and changes nothing.
        assert_eq!(
            w.add(&c("b", 2, 0.0)),
            Err(Refused::Late {
                window_end: 5 * MIN,
                watermark: 5 * MIN
            })
        );
        assert_eq!(records(w.all()).len(), 1);
        assert_eq!(w.open(), 0);
    }

    #[test]
    fn allowed_lateness_keeps_a_window_open_longer() {
        let mut w = Windows::new(spec(MIN)).unwrap();
        w.add(&c("a", 4, 1.0)).unwrap();
        w.add(&c("a", 5, 2.0)).unwrap();
        // The watermark (minute 5) is within a minute of the end: still open.
        assert!(records(w.closed()).is_empty());
        w.add(&c("a", 3, 5.0)).unwrap();
        w.add(&c("a", 6, 2.0)).unwrap();
        let out = records(w.closed());
        assert_eq!(
            (out.len(), &out[0]["n"], &out[0]["max"]),
            (1, &json!(2), &json!(5.0))
        );
        assert!(matches!(w.add(&c("a", 1, 0.0)), Err(Refused::Late { .. })));
    }

    #[test]
    fn out_of_order_records_give_the_same_windows() {
        let records = [
            c("a", 0, 1.0),
            c("b", 3, 2.0),
            c("a", 2, 4.0),
            c("b", 1, 8.0),
            c("a", 4, 16.0),
        ];
        let mut in_order = records.to_vec();
        in_order.sort_by_key(|r| r.time_ms);
        let run = |rs: &[Contribution]| {
            let mut w = Windows::new(spec(0)).unwrap();
            for r in rs {
                w.add(r).unwrap();
            }
            w.all().into_iter().map(|e| e.record).collect::<Vec<_>>()
        };
        let (a, b) = (run(&records), run(&in_order));
        assert_eq!(a.len(), 2);
        // `first` is the first to arrive; the rest does not depend on order.
        for (x, y) in a.iter().zip(&b) {
            for f in ["device", "window_start", "n", "avg", "max"] {
                assert_eq!(x[f], y[f]);
            }
        }
        assert_eq!(a[1]["first"], json!(2.0));
        assert_eq!(b[1]["first"], json!(8.0));
    }

    #[test]
    fn windows_past_max_open_are_refused_and_a_bad_value_changes_nothing() {
        let mut w = Windows::new(spec(0)).unwrap();
        for d in ["a", "b", "c"] {
            w.add(&c(d, 0, 1.0)).unwrap();
        }
        assert_eq!(w.add(&c("d", 0, 1.0)), Err(Refused::TooManyWindows(3)));
        // An open window still takes records.
        w.add(&c("a", 1, 1.0)).unwrap();
        let bad = Contribution {
            values: vec![None, Some(json!("hot")), Some(json!(1)), Some(json!(1))],
            ..c("a", 1, 0.0)
        };
        assert_eq!(
            w.add(&bad),
            Err(Refused::Value("`avg`: \"hot\" is not a number".into()))
        );
        let out = records(w.all());
        assert_eq!(out[0]["n"], 2);
        assert_eq!(groups(&out, &["device"]).len(), 3);
    }

    #[test]
    fn a_script_reducer_that_fails_on_a_record_leaves_its_window_as_it_was() {
        use crate::aggregate::script::Source;
        let mut spec = spec(0);
        spec.reducers = vec![
            ("n".into(), Reducer::Count),
            (
                "ratio".into(),
                Reducer::Script(std::sync::Arc::new(Source {
                    init: "#{ sum: 0.0, hot: 0.0 }".into(),
                    add: "if record.t < -273.0 { throw `below absolute zero: ${record.t}` }\n\
                          state.sum += 1.0; if record.t > 30.0 { state.hot += 1.0 }"
                        .into(),
                    finish: Some("state.hot / state.sum".into()),
                })),
            ),
        ];
        let one = |device: &str, minute: i64, t: f64| Contribution {
            group: vec![json!(device)],
            time_ms: minute * MIN,
            values: vec![None, Some(json!({ "t": t }))],
        };
        let mut w = Windows::new(spec).unwrap();
        w.add(&one("a", 0, 31.0)).unwrap();
        w.add(&one("a", 1, 20.0)).unwrap();
        assert_eq!(
            w.add(&one("a", 2, -300.0)),
            Err(Refused::Value(
                "`ratio` (add): script threw: below absolute zero: -300.0 (script line 1, column 24)".into()
            ))
        );
        // A window the refused record would have opened is not opened.
        assert!(w.add(&one("b", 0, -300.0)).is_err());
        assert_eq!(w.open(), 1);
        let out = w.all();
        assert_eq!(out[0].record["n"], 2);
        assert_eq!(out[0].record["ratio"], 0.5);
        assert_eq!(out[0].error, None);
    }

    #[test]
    fn a_finish_that_fails_marks_the_windows_record() {
        use crate::aggregate::script::Source;
        let mut spec = spec(0);
        spec.reducers = vec![(
            "x".into(),
            Reducer::Script(std::sync::Arc::new(Source {
                init: "0".into(),
                add: "state + 1".into(),
                finish: Some("if state > 1 { throw \"too many\" } state".into()),
            })),
        )];
        let mut w = Windows::new(spec).unwrap();
        let one = |device: &str| Contribution {
            group: vec![json!(device)],
            time_ms: 0,
            values: vec![Some(json!({}))],
        };
        for d in ["a", "a", "b"] {
            w.add(&one(d)).unwrap();
        }
        let out = w.all();
        assert_eq!(
            (out[0].record["x"].clone(), out[0].error.clone()),
            (
                json!(null),
                Some("`x` (finish): script threw: too many (script line 1, column 16)".into())
            )
        );
        assert_eq!(
            (out[1].record["x"].clone(), out[1].error.clone()),
            (json!(1), None)
        );
    }

    #[test]
    fn the_oldest_batch_held_is_the_first_of_a_window_still_open() {
        let mut w = Windows::new(spec(0)).unwrap();
        assert_eq!(w.oldest_batch(), None);
        w.add_in(&c("a", 0, 1.0), 3).unwrap();
        w.add_in(&c("b", 1, 1.0), 4).unwrap();
        w.add_in(&c("a", 2, 1.0), 5).unwrap();
        assert_eq!(w.oldest_batch(), Some(3));
        // Minute 5 closes both windows of minutes 0-4; its own, opened by
        // batch 6, is held now.
        w.add_in(&c("a", 5, 1.0), 6).unwrap();
        assert_eq!(w.closed().len(), 2);
        assert_eq!(w.oldest_batch(), Some(6));
        w.all();
        assert_eq!(w.oldest_batch(), None);
    }

    #[test]
    fn windows_resumed_at_a_watermark_keep_the_windows_it_closed_closed() {
        let mut w = Windows::new(spec(0)).unwrap();
        w.resume_at(7 * MIN);
        assert_eq!(w.watermark(), Some(7 * MIN));
        assert!(w.is_closed(4 * MIN));
        assert!(!w.is_closed(5 * MIN));
        assert!(matches!(w.add(&c("a", 4, 1.0)), Err(Refused::Late { .. })));
        w.add(&c("a", 6, 1.0)).unwrap();
        // An older watermark does not move it back.
        w.resume_at(MIN);
        assert_eq!(w.watermark(), Some(7 * MIN));
    }
}
