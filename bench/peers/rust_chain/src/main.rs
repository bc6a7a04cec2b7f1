//! The orders workload (`bench/workload/WORKLOAD.md`) hand-written in Rust,
//! as a team would write one Lambda handler for a Kinesis stream instead of
//! a Sluice pipeline: each event parsed into typed records, each record
//! base64-decoded into a reused buffer, parsed into a `serde_json::Value`,
//! validated by a compiled JSON Schema, transformed, routed and written.
//!
//! `--transform rhai` runs the transform as a Rhai script compiled once,
//! with one reused `Scope` (the record converted to and from Rhai values);
//! `--transform native` is the same transform written in Rust.
//!
//! ```text
//! rust-chain EVENTS_DIR SCHEMA OUT_DIR RUNS [--transform rhai|native]
//! ```
//!
//! Every event file is read into memory first; each run then times, from
//! the event text to the sink lines written, all the events. It prints one
//! JSON line: `{"impl": …, "records": N, "median_rps_wall": R}`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde::Deserialize;
use serde_json::{Map, Value};

/// A Kinesis event as Lambda delivers it: only the fields the handler reads.
#[derive(Deserialize)]
struct Event<'a> {
    #[serde(rename = "Records", borrow)]
    records: Vec<EventRecord<'a>>,
}

#[derive(Deserialize)]
struct EventRecord<'a> {
    #[serde(borrow)]
    kinesis: Kinesis<'a>,
}

#[derive(Deserialize)]
struct Kinesis<'a> {
    #[serde(borrow)]
    data: &'a str,
    #[serde(rename = "partitionKey", borrow)]
    partition_key: &'a str,
    #[serde(rename = "sequenceNumber", borrow)]
    sequence_number: &'a str,
}

/// The transform of the workload, in Rhai: what a team would put in a
/// script file beside its handler. It changes `record` in place (a script
/// that ended with `record` would give back a copy of it); a filtered
/// record becomes `()`.
const SCRIPT: &str = r#"
if record.customer_id.starts_with("test-") { record = (); return; }
let total = 0.0;
for item in record.items { total += item.qty * item.price; }
record.total = total;
record.tier = if total > 1000.0 { "big" } else { "small" };
record.region = record.region.to_lower();
record.processed_at = processed_at;
"#;

/// Which transform runs.
#[derive(Clone, Copy, PartialEq)]
enum Transform {
    Rhai,
    Native,
}

/// The three sinks of a run.
struct Sinks {
    archive: BufWriter<File>,
    big_orders: BufWriter<File>,
    dlq: BufWriter<File>,
}

impl Sinks {
    fn create(dir: &Path) -> std::io::Result<Sinks> {
        std::fs::create_dir_all(dir)?;
        let open =
            |name: &str| File::create(dir.join(name)).map(|f| BufWriter::with_capacity(1 << 18, f));
        Ok(Sinks {
            archive: open("archive.jsonl")?,
            big_orders: open("big_orders.jsonl")?,
            dlq: open("dlq.jsonl")?,
        })
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.archive.flush()?;
        self.big_orders.flush()?;
        self.dlq.flush()
    }
}

/// What a handler keeps from one invocation to the next.
struct Handler {
    validator: jsonschema::Validator,
    engine: rhai::Engine,
    ast: rhai::AST,
    scope: rhai::Scope<'static>,
    transform: Transform,
    buffer: Vec<u8>,
}

impl Handler {
    /// Handles one event: its text as the Lambda runtime gives it.
    fn handle(&mut self, event: &str, sinks: &mut Sinks) -> Result<usize, String> {
        let event: Event = serde_json::from_str(event).map_err(|e| format!("event: {e}"))?;
        let processed_at = now_rfc3339_millis();
        if self.transform == Transform::Rhai {
            self.scope.clear();
            self.scope.push_constant(
                "processed_at",
                rhai::ImmutableString::from(processed_at.as_str()),
            );
        }
        for r in &event.records {
            let k = &r.kinesis;
            let dead = |sinks: &mut Sinks, stage: &str, error: String, data: &str| {
                let line = serde_json::json!({
                    "stage": stage, "error": error, "data": data,
                    "partition_key": k.partition_key, "sequence_number": k.sequence_number,
                });
                serde_json::to_writer(&mut sinks.dlq, &line).map_err(|e| e.to_string())?;
                sinks.dlq.write_all(b"\n").map_err(|e| e.to_string())
            };
            self.buffer.clear();
            if let Err(e) =
                base64::engine::general_purpose::STANDARD.decode_vec(k.data, &mut self.buffer)
            {
                dead(sinks, "decode", format!("invalid base64: {e}"), k.data)?;
                continue;
            }
            let text = match std::str::from_utf8(&self.buffer) {
                Ok(t) => t,
                Err(e) => {
                    let lossy = String::from_utf8_lossy(&self.buffer).into_owned();
                    dead(sinks, "parse", format!("invalid UTF-8: {e}"), &lossy)?;
                    continue;
                }
            };
            let record: Value = match serde_json::from_str(text) {
                Ok(v) => v,
                Err(e) => {
                    dead(sinks, "parse", format!("invalid JSON: {e}"), text)?;
                    continue;
                }
            };
            if let Err(e) = self.validator.validate(&record) {
                dead(
                    sinks,
                    "validate",
                    format!("{e} at {}", e.instance_path()),
                    text,
                )?;
                continue;
            }
            match self.transform {
                Transform::Native => {
                    let Some(out) = native(record, &processed_at) else {
                        continue;
                    };
                    write_line(&mut sinks.archive, &out)?;
                    if out.get("tier").and_then(Value::as_str) == Some("big") {
                        write_line(&mut sinks.big_orders, &out)?;
                    }
                }
                Transform::Rhai => {
                    let dynamic = rhai::serde::to_dynamic(&record).map_err(|e| e.to_string())?;
                    self.scope.push_dynamic("record", dynamic);
                    let ran = self.engine.run_ast_with_scope(&mut self.scope, &self.ast);
                    let out = self
                        .scope
                        .remove::<rhai::Dynamic>("record")
                        .unwrap_or(rhai::Dynamic::UNIT);
                    if let Err(e) = ran {
                        dead(sinks, "transform", e.to_string(), text)?;
                        continue;
                    }
                    if out.is_unit() {
                        continue;
                    }
                    let big = out
                        .read_lock::<rhai::Map>()
                        .and_then(|m| {
                            m.get("tier").and_then(|t| {
                                t.read_lock::<rhai::ImmutableString>()
                                    .map(|s| s.as_str() == "big")
                            })
                        })
                        .unwrap_or(false);
                    write_line(&mut sinks.archive, &out)?;
                    if big {
                        write_line(&mut sinks.big_orders, &out)?;
                    }
                }
            }
        }
        Ok(event.records.len())
    }
}

/// The workload's transform written in Rust: `None` for a filtered record.
fn native(record: Value, processed_at: &str) -> Option<Map<String, Value>> {
    let Value::Object(mut m) = record else {
        return None;
    };
    if m.get("customer_id")
        .and_then(Value::as_str)
        .is_some_and(|c| c.starts_with("test-"))
    {
        return None;
    }
    let mut total = 0.0;
    for item in m
        .get("items")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let qty = item.get("qty").and_then(Value::as_f64).unwrap_or(0.0);
        let price = item.get("price").and_then(Value::as_f64).unwrap_or(0.0);
        total += qty * price;
    }
    let region = m
        .get("region")
        .and_then(Value::as_str)
        .map(str::to_lowercase)
        .unwrap_or_default();
    m.insert("total".into(), Value::from(total));
    m.insert(
        "tier".into(),
        Value::from(if total > 1000.0 { "big" } else { "small" }),
    );
    m.insert("region".into(), Value::from(region));
    m.insert("processed_at".into(), Value::from(processed_at));
    Some(m)
}

fn write_line(out: &mut BufWriter<File>, value: &impl serde::Serialize) -> Result<(), String> {
    serde_json::to_writer(&mut *out, value).map_err(|e| e.to_string())?;
    out.write_all(b"\n").map_err(|e| e.to_string())
}

/// Now, in UTC, as RFC 3339 with milliseconds (`2026-11-22T18:00:00.123Z`).
fn now_rfc3339_millis() -> String {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let (days, rem) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    // Days since 1970-01-01 to a civil date (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000
    )
}

fn main() {
    if let Err(e) = run() {
        eprintln!("rust-chain: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: rust-chain EVENTS_DIR SCHEMA OUT_DIR RUNS [--transform rhai|native]";
    let [events_dir, schema, out_dir, runs, rest @ ..] = args.as_slice() else {
        return Err(usage.into());
    };
    let transform = match rest {
        [] => Transform::Rhai,
        [flag, t] if flag == "--transform" && t == "rhai" => Transform::Rhai,
        [flag, t] if flag == "--transform" && t == "native" => Transform::Native,
        _ => return Err(usage.into()),
    };
    let runs: usize = runs.parse().map_err(|_| usage.to_owned())?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(events_dir)
        .map_err(|e| format!("{events_dir}: {e}"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let events: Vec<String> = files
        .iter()
        .map(|p| std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display())))
        .collect::<Result<_, _>>()?;
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(schema).map_err(|e| format!("{schema}: {e}"))?,
    )
    .map_err(|e| format!("{schema}: {e}"))?;
    let engine = rhai::Engine::new();
    let ast = engine.compile(SCRIPT).map_err(|e| e.to_string())?;
    let mut handler = Handler {
        validator: jsonschema::validator_for(&schema).map_err(|e| e.to_string())?,
        engine,
        ast,
        scope: rhai::Scope::new(),
        transform,
        buffer: Vec::with_capacity(4096),
    };
    let mut rates = Vec::with_capacity(runs);
    let mut records = 0;
    for _ in 0..runs.max(1) {
        let mut sinks = Sinks::create(Path::new(out_dir)).map_err(|e| format!("{out_dir}: {e}"))?;
        let start = Instant::now();
        records = 0;
        for event in &events {
            records += handler.handle(event, &mut sinks)?;
        }
        sinks.flush().map_err(|e| e.to_string())?;
        rates.push(records as f64 / start.elapsed().as_secs_f64());
    }
    rates.sort_by(f64::total_cmp);
    let name = match transform {
        Transform::Rhai => "rust-chain-rhai",
        Transform::Native => "rust-chain-native",
    };
    println!(
        "{}",
        serde_json::json!({ "impl": name, "records": records, "median_rps_wall": rates[rates.len() / 2] })
    );
    Ok(())
}
