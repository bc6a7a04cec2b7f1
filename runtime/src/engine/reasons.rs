//! The first reasons records were dead-lettered for, per stage: what the
//! run summary shows next to the counts, so that a run that dead-lettered
//! most of its input says why without opening the DLQ.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Deserialize;

use crate::record::Stage;

/// Distinct reasons kept per stage.
pub const PER_STAGE: usize = 3;
/// Envelopes looked at, at most: the first ones of the run.
const EXAMINED: usize = 10_000;
/// Longest reason kept, in bytes.
const MAX_BYTES: usize = 200;

/// The first distinct reasons per stage.
#[derive(Debug, Default)]
pub struct Reasons {
    by_stage: BTreeMap<&'static str, Vec<String>>,
    examined: usize,
}

/// What a reason needs of an envelope.
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(borrow)]
    stage: Cow<'a, str>,
    #[serde(borrow)]
    error: Cow<'a, str>,
}

impl Reasons {
    /// Notes a dead-letter envelope (one JSON line).
    pub fn note(&mut self, envelope: &[u8]) {
        if self.examined >= EXAMINED {
            return;
        }
        self.examined += 1;
        let Ok(head) = serde_json::from_slice::<Head<'_>>(envelope) else {
            return;
        };
        let Some(stage) = Stage::ALL.iter().find(|s| s.as_str() == head.stage) else {
            return;
        };
        let list = self.by_stage.entry(stage.as_str()).or_default();
        if list.len() < PER_STAGE {
            let reason = clip(&head.error);
            if !list.contains(&reason) {
                list.push(reason);
            }
        }
    }

    /// Per stage with any, in the order of the stages: its first reasons.
    pub fn by_stage(&self) -> Vec<(&'static str, &[String])> {
        Stage::ALL
            .iter()
            .filter_map(|s| {
                self.by_stage
                    .get(s.as_str())
                    .map(|r| (s.as_str(), r.as_slice()))
            })
            .collect()
    }
}

/// The first line of a reason, at most [`MAX_BYTES`] long.
fn clip(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default();
    if line.len() <= MAX_BYTES && line.len() == text.len() {
        return line.to_owned();
    }
    let mut end = line.len().min(MAX_BYTES);
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &line[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(stage: &str, error: &str) -> Vec<u8> {
        serde_json::json!({ "stage": stage, "error": error, "data": "x".repeat(100) })
            .to_string()
            .into_bytes()
    }

    #[test]
    fn the_first_distinct_reasons_are_kept_per_stage_in_stage_order() {
        let mut r = Reasons::default();
        for e in ["a", "a", "b", "c", "d"] {
            r.note(&envelope("validate", e));
        }
        r.note(&envelope("parse", "bad\nsecond line"));
        r.note(&envelope("parse", &"é".repeat(150)));
        r.note(b"not an envelope");
        r.note(&envelope("nowhere", "z"));
        let got = r.by_stage();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, "parse");
        assert_eq!(got[0].1[0], "bad…");
        assert_eq!(got[0].1[1], format!("{}…", "é".repeat(100)));
        assert_eq!(
            got[1],
            ("validate", &["a".to_owned(), "b".into(), "c".into()][..])
        );
    }
}
