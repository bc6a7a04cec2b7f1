//! Property-based fuzzing of everything that reads outside input: the
//! pipeline loader, the JSON Lines reader, every Lambda event kind, KPL
//! aggregates, DynamoDB attribute values, and the dead-letter envelope's
//! round trip. Each property holds for any input: no panic, and every record
//! that goes in comes out exactly once.
//!
//! CI runs each property for proptest's default 256 cases; `scripts/fuzz`
//! runs them for many more (`PROPTEST_CASES`). A failing case proptest
//! finds is saved under `tests/fuzz.proptest-regressions` and replayed first
//! from then on: commit it with the fix.

use std::io::Cursor;
use std::sync::Arc;

use base64::Engine as _;
use md5::Digest as _;
use proptest::prelude::*;
use serde_json::{Value, json};
use sluice::lambda::events::{self, Kind};
use sluice::sources::lines::LineReader;

/// Fragments a pipeline file is made of, so that random texts are often
/// nearly valid and reach the later passes.
const YAML: &[&str] = &[
    "version: 1\n",
    "name: p\n",
    "source: { type: file, path: in.jsonl }\n",
    "source:\n  type: kinesis\n  stream: s\n",
    "sinks:\n",
    "  out: { type: file, path: o.jsonl }\n",
    "  s3: { type: s3, bucket: b }\n",
    "dlq: { type: file, path: d.jsonl }\n",
    "routes: [{ to: [out] }]\n",
    "routes:\n  - when: 'record.x > 1'\n    to: [out]\n",
    "transforms:\n  - name: t\n    script: |\n      record\n",
    "limits: { max_operations: 99999999999999999999 }\n",
    "schemas: { o: { type: object } }\n",
    "validate: { schema: o }\n",
    "a: &a [1, 2, *a]\n",
    "b: *nope\n",
    "${HOME}",
    "${X:-7}",
    "- ",
    ": ",
    "{",
    "}",
    "[",
    "]",
    "'",
    "\"",
    "\t",
    "\n",
    "#",
    "&x ",
    "*x ",
    "!!str ",
    "|\n",
    ">\n",
    "---\n",
    "...\n",
    "\u{feff}",
    "é",
];

fn yaml_text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            4 => prop::sample::select(YAML).prop_map(str::to_owned),
            1 => "\\PC{0,12}",
        ],
        0..24,
    )
    .prop_map(|parts| parts.concat())
}

/// Any JSON value, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "\\PC{0,16}".prop_map(Value::String),
        prop::sample::select(&["e30=", "*", "", "S", "N", "B", "aws:kinesis", "aws:sqs"][..])
            .prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop::sample::select(
                    &[
                        "kinesis",
                        "data",
                        "sequenceNumber",
                        "partitionKey",
                        "dynamodb",
                        "NewImage",
                        "Keys",
                        "SequenceNumber",
                        "S",
                        "N",
                        "B",
                        "L",
                        "M",
                        "SS",
                        "NS",
                        "BS",
                        "NULL",
                        "BOOL",
                        "messageId",
                        "body",
                        "messageAttributes",
                        "binaryValue",
                        "stringValue",
                        "dataType",
                        "attributes",
                        "MessageGroupId",
                        "topic",
                        "partition",
                        "offset",
                        "value",
                        "key",
                        "headers",
                        "timestamp",
                        "eventSource",
                        "x"
                    ][..],
                ),
                inner,
                0..6,
            )
            .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
        ]
    })
}

/// A valid event record of `kind` with one field replaced by `junk`.
fn mutated_record(kind: Kind, junk: Value, at: usize) -> Value {
    let mut r = match kind.name {
        "kinesis" => {
            json!({ "kinesis": { "partitionKey": "k", "sequenceNumber": "1", "data": "e30=",
                                              "kinesisSchemaVersion": "1.0", "approximateArrivalTimestamp": 1.5 },
                                 "eventSource": "aws:kinesis", "eventID": "shardId-0:1",
                                 "eventSourceARN": "arn:aws:kinesis:us-east-1:1:stream/s" })
        }
        "dynamodb_streams" => {
            json!({ "eventID": "e", "eventName": "INSERT", "eventSource": "aws:dynamodb",
                                         "eventVersion": "1.1", "awsRegion": "us-east-1",
                                         "dynamodb": { "Keys": { "id": { "S": "1" } }, "NewImage": { "id": { "N": "1" } },
                                                       "SequenceNumber": "1", "SizeBytes": 1, "StreamViewType": "NEW_IMAGE" } })
        }
        "sqs" => {
            json!({ "messageId": "m", "receiptHandle": "h", "body": "{}", "attributes": {},
                             "messageAttributes": { "a": { "dataType": "Binary", "binaryValue": "AA==" } },
                             "md5OfBody": "", "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:1:q" })
        }
        "firehose" => {
            json!({ "recordId": "r", "approximateArrivalTimestamp": 1_700_000_000_000_i64, "data": "e30=",
                    "kinesisRecordMetadata": { "shardId": "shardId-0", "partitionKey": "k", "sequenceNumber": "1",
                                               "subsequenceNumber": 0, "approximateArrivalTimestamp": 1_700_000_000_000_i64 } })
        }
        _ => {
            json!({ "topic": "t", "partition": 0, "offset": 1, "timestamp": 1, "timestampType": "CREATE_TIME",
                               "key": "aw==", "value": "e30=", "headers": [{ "h": [104] }] })
        }
    };
    // Replace the `at`-th value found walking the record (objects only).
    fn walk(v: &mut Value, n: &mut usize, junk: &Value) -> bool {
        if let Value::Object(m) = v {
            for (_, child) in m.iter_mut() {
                if *n == 0 {
                    *child = junk.clone();
                    return true;
                }
                *n -= 1;
                if walk(child, n, junk) {
                    return true;
                }
            }
        }
        false
    }
    let mut n = at;
    walk(&mut r, &mut n, &junk);
    r
}

fn event_of(kind: Kind, records: Vec<Value>) -> Value {
    match kind.name {
        "kafka" => json!({ "eventSource": "aws:kafka", "records": { "t-0": records } }),
        "firehose" => json!({ "invocationId": "i", "region": "us-east-1", "records": records,
                              "deliveryStreamArn": "arn:aws:firehose:us-east-1:1:deliverystream/s" }),
        _ => json!({ "Records": records }),
    }
}

/// The Lambda event kinds: every source Lambda mode reads.
fn kinds() -> Vec<Kind> {
    sluice::sources::EVENTS
        .iter()
        .filter_map(|(name, events)| events.map(|events| Kind { name, events }))
        .collect()
}

/// The kind of a source type.
fn kind(name: &str) -> Kind {
    kinds().into_iter().find(|k| k.name == name).unwrap()
}

fn aggregate(body: &[u8]) -> Vec<u8> {
    let mut out = vec![0xF3, 0x89, 0x9A, 0xC2];
    out.extend_from_slice(body);
    out.extend_from_slice(md5::Md5::digest(body).as_slice());
    out
}

proptest! {
    /// The loader answers any text with a pipeline or diagnostics, never a panic or a hang.
    #[test]
    fn the_config_loader_takes_any_text(text in yaml_text()) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.yaml");
        std::fs::write(&path, &text).unwrap();
        let env = sluice::config::Env::from_pairs([("HOME", "/h")]);
        match sluice::config::load(&path, &env) {
            Ok(_) => {}
            Err(e) => prop_assert!(!e.diagnostics().list.is_empty(), "an error without a diagnostic"),
        }
    }

    /// Any bytes become one record per non-blank line, each within the
    /// limit or rejected with its head only.
    #[test]
    fn the_line_reader_frames_any_bytes(
        bytes in prop::collection::vec(prop_oneof![4 => any::<u8>(), 1 => Just(b'\n'), 1 => Just(b'\r')], 0..600),
        max in 1u64..64,
        batch in 1usize..8,
    ) {
        let mut reader = LineReader::new(Box::new(Cursor::new(bytes.clone())), "file", Some(Arc::from("in")), max);
        let mut records = Vec::new();
        loop {
            let b = reader.next_batch(batch, u64::MAX).unwrap();
            if b.is_empty() { break; }
            prop_assert!(b.len() <= batch);
            records.extend(b);
        }
        let lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
        let lines: Vec<&[u8]> = lines
            .iter()
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
            .filter(|l| !l.iter().all(u8::is_ascii_whitespace) || l.len() as u64 > max)
            .collect();
        prop_assert_eq!(records.len(), lines.len());
        for (r, l) in records.iter().zip(&lines) {
            if l.len() as u64 > max {
                prop_assert!(r.rejected.is_some());
                prop_assert_eq!(&r.data[..], &l[..l.len().min(1024)]);
            } else {
                prop_assert!(r.rejected.is_none());
                prop_assert_eq!(&r.data[..], *l);
            }
        }
    }

    /// Any JSON is either an event of the kind (every record of it read or
    /// rejected, each tied to its event record) or an event of another kind.
    #[test]
    fn every_event_kind_reads_any_json(kind_index in 0usize..64, v in json_value()) {
        let all = kinds();
        let kind = all[kind_index % all.len()];
        for event in [v.clone(), json!({ "Records": [v.clone()] }), event_of(kind, vec![v.clone()])] {
            if let Ok(batch) = events::parse(kind, event) {
                prop_assert_eq!(batch.records.len(), batch.item_of.len());
                prop_assert!(batch.item_of.iter().all(|&i| i < batch.items.len()));
            }
        }
    }

    /// A valid event record with any one field replaced is read or
    /// rejected alone; the valid record beside it is always read.
    #[test]
    fn a_damaged_event_record_costs_only_itself(kind_index in 0usize..64, junk in json_value(), at in 0usize..12) {
        let all = kinds();
        let kind = all[kind_index % all.len()];
        let good = mutated_record(kind, json!(null), usize::MAX);
        let bad = mutated_record(kind, junk, at);
        let batch = events::parse(kind, event_of(kind, vec![good, bad]));
        let batch = batch.map_err(|e| TestCaseError::fail(e.0))?;
        prop_assert!(batch.items.len() == 2, "{:?}", batch.items);
        let first: Vec<_> = batch.records.iter().zip(&batch.item_of).filter(|(_, i)| **i == 0).collect();
        prop_assert_eq!(first.len(), 1);
        prop_assert!(first[0].0.rejected.is_none(), "{:?}", first[0].0.rejected);
        prop_assert!(batch.item_of.contains(&1), "the damaged record vanished");
    }

    /// KPL: any body with a good checksum never panics; aggregates of any
    /// user records give them back.
    #[test]
    fn kpl_aggregates_of_any_bytes(body in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = sluice::sources::kinesis::kpl::deaggregate(&aggregate(&body));
        let _ = sluice::sources::kinesis::kpl::deaggregate(&body);
    }

    /// The envelope holds any record byte for byte: replaying it gives the
    /// same bytes back.
    #[test]
    fn an_envelope_gives_back_any_record(data in prop::collection::vec(any::<u8>(), 0..300)) {
        let (text, encoding) = sluice::delivery::envelope::encode_data(&data);
        let line = json!({ "pipeline": "p", "stage": "parse", "error": "e", "data": text,
                           "encoding": encoding, "source": { "type": "file", "file": "in", "line": 1 },
                           "attempts": 1, "timestamp": "2026-01-01T00:00:00.000Z" }).to_string();
        let raw = sluice::record::RawRecord {
            data: line.into_bytes(),
            position: sluice::record::Position::default(),
            rejected: None,
            attributes: None,
            fan_out: Vec::new(),
        };
        let back = sluice::sources::dlq::from_envelope(raw);
        prop_assert!(back.rejected.is_none());
        prop_assert_eq!(back.data, data);
    }
}

#[test]
fn the_fuzz_helpers_build_valid_records() {
    for kind in kinds() {
        let good = mutated_record(kind, json!(null), usize::MAX);
        let batch = events::parse(kind, event_of(kind, vec![good])).unwrap();
        assert_eq!(batch.records.len(), 1, "{}", kind.name);
        assert_eq!(batch.records[0].rejected, None, "{}", kind.name);
    }
    let b64 = base64::engine::general_purpose::STANDARD.encode(b"x");
    assert_eq!(b64, "eA==");
}

/// Found by the fuzzer: a Kafka timestamp with a fraction made the time
/// parser of aws_lambda_events panic, which took the whole invocation down.
#[test]
fn a_kafka_timestamp_that_panics_the_decoder_rejects_its_record_only() {
    let good = mutated_record(kind("kafka"), json!(null), usize::MAX);
    let mut bad = good.clone();
    bad["timestamp"] = json!(69713.39081809283);
    let batch = events::parse(kind("kafka"), event_of(kind("kafka"), vec![good, bad])).unwrap();
    assert_eq!(batch.records.len(), 2);
    assert_eq!(batch.records[0].rejected, None);
    let why = batch.records[1].rejected.as_deref().unwrap();
    assert!(
        why.starts_with("the Kafka record cannot be decoded: its decoder failed: "),
        "{why}"
    );
}
