//! An aggregate in Lambda: the event source mapping's own tumbling windows
//! (`TumblingWindowInSeconds`, Kinesis and DynamoDB Streams). Each
//! invocation of a window gets the state the previous one returned; the
//! groups so far travel in it, and the window's last invocation
//! (`isFinalInvokeForWindow`) emits them.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::reduce::Acc;
use super::script::Scripts;
use super::window::{Contribution, Emitted, Spec, add_values, empty_values, output};

/// The largest state Lambda carries between invocations.
pub const MAX_STATE_BYTES: usize = 1024 * 1024;

/// The groups of one mapping window so far.
#[derive(Debug)]
pub struct Groups {
    spec: Spec,
    scripts: Scripts,
    groups: BTreeMap<String, (Vec<Value>, Vec<Acc>)>,
    /// How many times the window's groups were emitted early (their state
    /// would have passed 1 MB): the next emission is the next part.
    parts: u64,
}

impl Groups {
    /// The groups a window's state holds (`{}`: none yet).
    pub fn from_state(spec: &Spec, state: &Value) -> Result<Groups, String> {
        let mut groups = BTreeMap::new();
        let bad = || format!("the window's state is not one Sluice wrote: {state}");
        if let Some(list) = state.get("groups") {
            for g in list.as_array().ok_or_else(bad)? {
                let group = g
                    .get("g")
                    .and_then(Value::as_array)
                    .ok_or_else(bad)?
                    .clone();
                let accs = g.get("a").and_then(Value::as_array).ok_or_else(bad)?;
                if accs.len() != spec.reducers.len() {
                    return Err(format!(
                        "the window's state holds {} values per group, and the aggregate makes {}: the pipeline changed within the window",
                        accs.len(),
                        spec.reducers.len()
                    ));
                }
                let accs = spec
                    .reducers
                    .iter()
                    .zip(accs)
                    .map(|((_, r), v)| Acc::from_state(r, v))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(bad)?;
                groups.insert(Value::Array(group.clone()).to_string(), (group, accs));
            }
        }
        let parts = match state.get("parts") {
            None => 0,
            Some(p) => p.as_u64().ok_or_else(bad)?,
        };
        Ok(Groups {
            scripts: Scripts::new(&spec.reducers, &spec.limits)?,
            spec: spec.clone(),
            groups,
            parts,
        })
    }

    /// Adds a record to its group; `Err` when a script reducer fails on
    /// it (the group is then as it was).
    pub fn add(&mut self, c: &Contribution) -> Result<(), String> {
        let (spec, scripts) = (&self.spec, &mut self.scripts);
        match self.groups.entry(Value::Array(c.group.clone()).to_string()) {
            std::collections::btree_map::Entry::Occupied(mut g) => {
                add_values(spec, scripts, &mut g.get_mut().1, c)
            }
            std::collections::btree_map::Entry::Vacant(v) => {
                let mut accs = empty_values(spec, scripts)?;
                add_values(spec, scripts, &mut accs, c)?;
                v.insert((c.group.clone(), accs));
                Ok(())
            }
        }
    }

    /// Whether no record was added.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// The state to return for the window's next invocation.
    pub fn to_state(&self) -> Value {
        let groups: Vec<Value> = self
            .groups
            .values()
            .map(|(g, accs)| json!({ "g": g, "a": accs.iter().map(Acc::to_state).collect::<Vec<_>>() }))
            .collect();
        let mut state = json!({ "groups": groups });
        if self.parts > 0 {
            state["parts"] = json!(self.parts);
        }
        state
    }

    /// The state after the groups were emitted early: no group, and the
    /// next emission of the window is its next part.
    pub fn emptied(&self) -> Value {
        json!({ "parts": self.parts + 1 })
    }

    /// The window's records, one per group in the order of its values; a
    /// window emitted in parts says which part in each record's identity.
    pub fn emit(self, start_ms: i64, end_ms: i64) -> Vec<Emitted> {
        let spec = self.spec;
        let mut scripts = self.scripts;
        let parts = self.parts;
        self.groups
            .into_values()
            .map(|(g, accs)| {
                let mut e = output(&spec, &mut scripts, g, (start_ms, end_ms), accs);
                if parts > 0 {
                    e.window.push_str(&format!(" part {}", parts + 1));
                }
                e
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::reduce::Reducer;

    fn spec() -> Spec {
        Spec {
            size_ms: 60_000,
            lateness_ms: 0,
            group_names: vec!["d".into()],
            reducers: vec![
                ("n".into(), Reducer::Count),
                ("s".into(), Reducer::Sum),
                ("m".into(), Reducer::Avg),
                ("lo".into(), Reducer::Min),
                ("first".into(), Reducer::First),
                ("k".into(), Reducer::CountDistinct),
            ],
            max_open: 10,
            limits: Default::default(),
        }
    }

    fn c(d: &str, v: Value) -> Contribution {
        Contribution {
            group: vec![json!(d)],
            time_ms: 0,
            values: vec![
                None,
                Some(v.clone()),
                Some(v.clone()),
                Some(v.clone()),
                Some(v.clone()),
                Some(v),
            ],
        }
    }

    #[test]
    fn groups_carried_in_the_state_give_what_one_invocation_would() {
        let records = [
            c("a", json!(1)),
            c("b", json!(2.5)),
            c("a", json!(3)),
            c("a", json!(1)),
        ];
        let mut whole = Groups::from_state(&spec(), &json!({})).unwrap();
        for r in &records {
            whole.add(r).unwrap();
        }
        // The same records over three invocations, the state going round.
        let mut state = json!({});
        for part in [&records[..1], &records[1..3], &records[3..]] {
            let mut g = Groups::from_state(&spec(), &state).unwrap();
            for r in part {
                g.add(r).unwrap();
            }
            state = serde_json::from_str(&g.to_state().to_string()).unwrap();
        }
        let carried = Groups::from_state(&spec(), &state).unwrap();
        let records =
            |g: Groups| -> Vec<Value> { g.emit(0, 60_000).into_iter().map(|e| e.record).collect() };
        let (a, b) = (records(whole), records(carried));
        assert_eq!(a, b);
        assert_eq!(
            a[0],
            json!({"d": "a", "window_start": "1970-01-01T00:00:00.000Z", "window_end": "1970-01-01T00:01:00.000Z",
                   "n": 3, "s": 5, "m": 5.0 / 3.0, "lo": 1, "first": 1, "k": 2})
        );
        assert_eq!(a[1]["s"], json!(2.5));
    }

    #[test]
    fn a_state_it_did_not_write_is_an_error() {
        assert!(
            Groups::from_state(&spec(), &json!({"groups": [{"g": ["a"], "a": [1]}]}))
                .unwrap_err()
                .contains("the pipeline changed within the window")
        );
        assert!(
            Groups::from_state(&spec(), &json!({"groups": 7}))
                .unwrap_err()
                .starts_with("the window's state is not one Sluice wrote")
        );
    }
}
